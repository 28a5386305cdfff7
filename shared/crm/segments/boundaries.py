"""When a profile's memberships can next change with time alone, so an hourly run reads only those profiles.

A time-relative condition (a window, days since, a relative date, the built-ins that count days) compares
the distance between ``now`` and a time the profile holds with a fixed number of days. Its answer can only
change when ``now`` passes one of those times plus one of those distances: the *candidates*. Nothing else
the profile holds moves with time, so between two candidates every time-relative membership stays as it is.

``next_change`` is the earliest candidate at or after an instant. It is conservative: a candidate may change
nothing (the condition was decided by another part of the definition), never the reverse, so a profile read
at each candidate misses no change. The hourly run (crm.segments.runs.run_hour) reads the profiles whose next
change fell in the past hour, evaluates their time-relative segments, and files each profile under its next
candidate again. The daily run files every profile whose next candidate falls before the next daily run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from crm.clock import as_utc
from crm.models.profile import Profile
from crm.segments.builtin import BUILTINS
from crm.segments.definition import Condition, EventCondition, nodes
from crm.segments.evaluate import DAY, needs
from crm.segments.membership import Rules
from crm.segments.subject import subject_of
from crm.segments.values import Days, DaysAgo

# A profile is filed under its next candidate only when it falls this soon: the daily run (every 24 hours)
# files the rest, and an hour more covers a late schedule.
HORIZON = timedelta(hours=25)
HOUR = timedelta(hours=1)
_DAY_COUNTS = {"days_since_last_order": "last_order_at", "days_since_first_order": "first_order_at"}
_TIMES = ("first_order_at", "last_order_at")


def timed_segments(rules: Rules) -> frozenset[str]:
    """The segments whose membership can change with time alone: the time-relative built-ins, the custom
    segments with a time-relative condition, and those that refer to one of these."""
    timed = {b.id for b in BUILTINS if b.time_relative}
    for segment_id, definition in rules.custom:  # in dependency order: a reference is decided first
        found = needs(definition)
        if found.time_relative or found.segments & timed:
            timed.add(segment_id)
    return frozenset(timed)


def hour_of(at: datetime) -> datetime:
    """The hour an instant falls in (its bucket)."""
    return as_utc(at).replace(minute=0, second=0, microsecond=0)


def next_change(profile: Profile, rules: Rules, at: datetime) -> datetime | None:
    """The earliest instant at or after ``at`` at which a time-relative membership of the profile may change;
    None when none can (no time-relative segment looks at a time the profile holds)."""
    if profile.merged_into is not None:
        return None
    at = as_utc(at)
    return min((c for c in _candidates(profile, rules) if c >= at), default=None)


def due(profile: Profile, rules: Rules, at: datetime) -> datetime | None:
    """``next_change`` when it falls within the horizon (the profile is to be filed under its hour)."""
    change = next_change(profile, rules, at)
    return change if change is not None and change < as_utc(at) + HORIZON else None


@dataclass(frozen=True)
class _Plan:
    """What the rules compare with time, gathered once per Rules: for each time field of the profile the
    distances (whole days) it is compared at, and for each event type its windows."""

    offsets: dict[str, frozenset[int]]
    windows: dict[str, frozenset[int]]


_last_plan: tuple[Rules, _Plan] | None = None


def _plan(rules: Rules) -> _Plan:
    global _last_plan
    if _last_plan is not None and _last_plan[0] is rules:
        return _last_plan[1]
    settings = rules.context.settings
    offsets: dict[str, set[int]] = {"last_order_at": {settings.churn_after_days},
                                    "first_order_at": {settings.new_customer_days},
                                    "last_checkout": {settings.cart_abandon_days}}
    if rules.context.population.rfm is not None:
        # Recency is whole days since the last order; a day count above an edge scores in the next bucket.
        offsets["last_order_at"].update(edge + 1 for edge in rules.context.population.rfm.recency.edges)
    windows: dict[str, set[int]] = {}
    for _, definition in rules.custom:
        for node in nodes(definition):
            if isinstance(node, Condition) and node.field in _DAY_COUNTS:
                # Whole days elapsed: N from the anchor + N days, N + 1 from the day after.
                offsets[_DAY_COUNTS[node.field]].update(d + k for d in _whole_days(node.value) for k in (0, 1))
            elif isinstance(node, Condition) and node.field in _TIMES:
                offsets[node.field].update(_relative_days(node.value))
            elif isinstance(node, EventCondition) and node.within_days is not None:
                windows.setdefault(node.event, set()).add(node.within_days)
    plan = _Plan({k: frozenset(v) for k, v in offsets.items()}, {k: frozenset(v) for k, v in windows.items()})
    _last_plan = (rules, plan)
    return plan


def _candidates(profile: Profile, rules: Rules) -> Iterator[datetime]:
    plan = _plan(rules)
    anchors = {"first_order_at": _utc(profile.first_order_at), "last_order_at": _utc(profile.last_order_at),
               "last_checkout": _utc(profile.last_checkout.at) if profile.last_checkout else None}
    for name, anchor in anchors.items():
        if anchor is not None:
            yield anchor  # a time in the future (a clock ahead) is compared from then on
            yield from (anchor + days * DAY for days in plan.offsets[name])
    if plan.windows:
        subject = subject_of(profile)
        for event, windows in plan.windows.items():
            for occurred in map(as_utc, subject.occurrences(event)):
                yield occurred  # one in the future counts from then
                yield from (occurred + days * DAY for days in windows)


def _relative_days(value: object) -> Iterator[int]:
    for part in _parts(value):
        if isinstance(part, DaysAgo):
            yield part.days_ago
        elif isinstance(part, Days):
            yield part.days


def _parts(value: object) -> tuple[object, ...]:
    return value if isinstance(value, tuple) else (value,)


def _whole_days(value: object) -> Iterator[int]:
    for part in _parts(value):
        if isinstance(part, int) and not isinstance(part, bool) and part >= 0:
            yield part


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment).astimezone(UTC)


__all__ = ["HORIZON", "HOUR", "due", "hour_of", "next_change", "timed_segments"]
