"""A flow's stats from its counters (docs/flow-stats.md): what GET /flows/{id}/stats and
GET /flows/{id}/steps/{step}/stats answer. Pure: CounterRows in, a FlowStatsReport out.

The counters (crm.models.flow_stats.CounterRow) are one item per flow, day, step and variant:

- the flow-wide row (step ``-``, variant ``-``) holds the runs (entered, completed, exited:<reason>) and
  every message count of the flow; it makes the totals and the days;
- a step's rows (step ``<id>``; variant ``<split>:<path>`` on an A/B path, else ``-``) hold what happened
  at that step; a step's counts sum its rows over variants;
- a random split's rows naming its own paths (step ``<split id>``, variant ``<split id>:<path>``) hold the
  runs that took each path (``recipients``): they are the paths', not the split step's;
- an A/B path's counts sum the rows of every step on the path (nested ones too). Its recipients are the
  ``recipients`` of the rows naming the path that are not a step on it (the split's row), else (no such row)
  those of the path's first step.

crm.flows.counting (the writing side) says which doings add to which row.

Rates: opens and clicks per delivered message, conversions and revenue per message sent; 0 without a
denominator. ``in_progress``: runs entered in the period less those that ended in it, never below 0 (a run
entered before the period and ended in it lowers it: the counters do not tell runs apart).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from crm.flows.abtest import Arm, split_probabilities, winner
from crm.flows.definition import find_step, parse_variant, variant_name, walk_steps
from crm.models.flow_stats import (
    ALL_STEPS,
    CounterName,
    CounterRow,
    Counts,
    DayCounts,
    FlowStatsReport,
    SplitStats,
    VariantStats,
)
from crm.models.flows import FlowDefinition, RandomSplit, WinnerRule

RATE_PLACES = Decimal("0.0001")
MONEY_PLACES = Decimal("0.01")
# The metric an A/B split without a winner rule is compared on.
DEFAULT_METRIC = WinnerRule().metric
_METRIC_COUNTER = {"conversion": CounterName.CONVERTED, "click": CounterName.CLICKED, "open": CounterName.OPENED}
_EXITED = f"{CounterName.EXITED.value}:"
_SKIPPED = f"{CounterName.SKIPPED.value}:"


class StepNotFound(LookupError):
    """The flow has no step of that id."""


def summed(rows: Iterable[CounterRow]) -> dict[str, Decimal]:
    """The rows' counts added up, name by name."""
    total: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        for name, value in row.counts.items():
            total[name] += value
    return dict(total)


def counts_of(total: Mapping[str, Decimal], *, runs: bool = True) -> Counts:
    """Counts (and their rates) from summed counters; ``runs``: the runs' in-progress figure applies (the
    flow-wide rows), not a step's."""
    def whole(name: str) -> int:
        return int(total.get(name, Decimal(0)))

    exited = _by_reason(total, _EXITED)
    skipped = _by_reason(total, _SKIPPED)
    entered, completed = whole(CounterName.ENTERED), whole(CounterName.COMPLETED)
    ended = completed + (sum(exited.values()) if exited else whole(CounterName.EXITED))
    sent, delivered = whole(CounterName.SENT), whole(CounterName.DELIVERED)
    opened, clicked, converted = whole(CounterName.OPENED), whole(CounterName.CLICKED), whole(CounterName.CONVERTED)
    revenue = total.get(CounterName.REVENUE, Decimal(0))
    return Counts(
        entered=entered, recipients=whole(CounterName.RECIPIENTS),
        in_progress=max(0, entered - ended) if runs else 0, completed=completed, exited=exited, skipped=skipped,
        sent=sent, delivered=delivered, bounced=whole(CounterName.BOUNCED), opened=opened, clicked=clicked,
        unsubscribed=whole(CounterName.UNSUBSCRIBED), complained=whole(CounterName.COMPLAINED),
        converted=converted, revenue=revenue, revenue_per_recipient=_ratio(revenue, sent, MONEY_PLACES),
        recovered=whole(CounterName.RECOVERED),
        recovered_revenue=total.get(CounterName.RECOVERED_REVENUE, Decimal(0)),
        open_rate=_ratio(Decimal(opened), delivered, RATE_PLACES),
        click_rate=_ratio(Decimal(clicked), delivered, RATE_PLACES),
        conversion_rate=_ratio(Decimal(converted), sent, RATE_PLACES))


def _by_reason(total: Mapping[str, Decimal], prefix: str) -> dict[str, int]:
    return {name.removeprefix(prefix): int(value) for name, value in sorted(total.items())
            if name.startswith(prefix) and value}


def _ratio(part: Decimal, whole: int, places: Decimal) -> Decimal:
    if whole <= 0:
        return Decimal(0)
    return (part / whole).quantize(places, rounding=ROUND_HALF_EVEN)


def _by_day(rows: Sequence[CounterRow], *, runs: bool) -> tuple[DayCounts, ...]:
    days: dict[date, list[CounterRow]] = defaultdict(list)
    for row in rows:
        days[row.day].append(row)
    return tuple(DayCounts(day=day, counts=counts_of(summed(days[day]), runs=runs)) for day in sorted(days))


def _names_own_path(row: CounterRow) -> bool:
    """A random split's row of one of its own paths (the runs that took it)."""
    named = parse_variant(row.variant)
    return named is not None and named[0] == row.step_id


# --- A/B paths ---------------------------------------------------------------------------------------------


def random_splits(definition: FlowDefinition) -> tuple[RandomSplit, ...]:
    """The definition's random splits, outermost first, in order."""
    return tuple(step for _, step in walk_steps(definition.steps) if isinstance(step, RandomSplit))


def path_totals(split: RandomSplit, rows: Sequence[CounterRow]) -> list[dict[str, Decimal]]:
    """Each path's summed counters (by path number), with its recipients (the module's docstring)."""
    totals = []
    for number, branch in enumerate(split.paths):
        on_path = {step.id for _, step in walk_steps(branch.steps)}
        name = variant_name(split.id, number)
        total = summed(row for row in rows if row.step_id in on_path)
        own = [row for row in rows if row.variant == name and row.step_id not in on_path]
        if any(CounterName.RECIPIENTS in row.counts for row in own):
            recipients = summed(own).get(CounterName.RECIPIENTS, Decimal(0))
        else:
            first = branch.steps[0].id if branch.steps else None
            recipients = summed(row for row in rows if row.step_id == first).get(CounterName.RECIPIENTS, Decimal(0))
        totals.append(total | {CounterName.RECIPIENTS.value: recipients})
    return totals


def arms_of(split: RandomSplit, totals: Sequence[Mapping[str, Decimal]], metric: str) -> list[Arm]:
    """Each path's evidence on ``metric``: recipients, and those counted for the metric (at most as many)."""
    counter = _METRIC_COUNTER[metric]
    arms = []
    for total in totals:
        trials = int(total.get(CounterName.RECIPIENTS, Decimal(0)))
        arms.append(Arm(trials=trials, successes=min(trials, int(total.get(counter, Decimal(0))))))
    return arms


def split_stats(split: RandomSplit, rows: Sequence[CounterRow], winner: int | None = None) -> SplitStats:
    """A random split's paths over the rows given, each with its probability of being the best."""
    metric = split.winner.metric if split.winner else DEFAULT_METRIC
    totals = path_totals(split, rows)
    arms = arms_of(split, totals, metric)
    probabilities = split_probabilities(split, arms)
    variants = tuple(
        VariantStats(variant=variant_name(split.id, number), path=number, weight=branch.weight,
                     recipients=arms[number].trials, counts=counts_of(totals[number], runs=False),
                     probability_best=round(probabilities[number], 4))
        for number, branch in enumerate(split.paths))
    return SplitStats(split_id=split.id, metric=metric, winner=winner, variants=variants)


def settled_winner(split: RandomSplit, rows: Sequence[CounterRow]) -> int | None:
    """The path the split's winner rule picks on these counters (all of the split's days), or None yet."""
    if split.winner is None:
        return None
    return winner(split, arms_of(split, path_totals(split, rows), split.winner.metric))


# --- the reports -------------------------------------------------------------------------------------------


def flow_stats(flow_id: str, definition: FlowDefinition, rows: Sequence[CounterRow], first_day: date,
               last_day: date, currency: str | None, winners: Mapping[str, int] | None = None) -> FlowStatsReport:
    """GET /flows/{id}/stats: the flow-wide totals and days, each step's counts and each A/B split's paths,
    over the rows of ``first_day``..``last_day`` (others are ignored)."""
    rows = [row for row in rows if first_day <= row.day <= last_day]
    flow_wide = [row for row in rows if row.step_id == ALL_STEPS and row.variant == ALL_STEPS]
    by_step: dict[str, list[CounterRow]] = defaultdict(list)
    for row in rows:
        if not _names_own_path(row):
            by_step[row.step_id].append(row)
    steps = {step.id: counts_of(summed(by_step.get(step.id, ())), runs=False)
             for _, step in walk_steps(definition.steps)}
    winners = winners or {}
    return FlowStatsReport(
        flow_id=flow_id, from_day=first_day, to_day=last_day, currency=currency,
        totals=counts_of(summed(flow_wide)), by_day=_by_day(flow_wide, runs=True), steps=steps,
        splits=tuple(split_stats(split, rows, winners.get(split.id)) for split in random_splits(definition)))


def step_stats(flow_id: str, definition: FlowDefinition, step_id: str, rows: Sequence[CounterRow],
               first_day: date, last_day: date, currency: str | None,
               winners: Mapping[str, int] | None = None) -> FlowStatsReport:
    """GET /flows/{id}/steps/{step}/stats: one step's counts (all its variants) and days; a random split's
    own paths. StepNotFound for a step the flow does not have."""
    step = find_step(definition, step_id)
    if step is None:
        raise StepNotFound(f"flow {flow_id} has no step {step_id}")
    rows = [row for row in rows if first_day <= row.day <= last_day]
    mine = [row for row in rows if row.step_id == step_id and not _names_own_path(row)]
    splits: tuple[SplitStats, ...] = ()
    if isinstance(step, RandomSplit):
        splits = (split_stats(step, rows, (winners or {}).get(step.id)),)
    return FlowStatsReport(flow_id=flow_id, step_id=step_id, from_day=first_day, to_day=last_day,
                           currency=currency, totals=counts_of(summed(mine), runs=False),
                           by_day=_by_day(mine, runs=False), splits=splits)


__all__ = ["DEFAULT_METRIC", "StepNotFound", "arms_of", "counts_of", "flow_stats", "path_totals", "random_splits",
           "settled_winner", "split_stats", "step_stats", "summed"]
