"""Which counters a flow's doings add to (crm.models.flow_stats.CounterRow), as plain functions.

The flows service counts a run's doings from the run itself: what a save adds to it (new step records, its
end) is counted once that save succeeded. The save is conditional on the revision read, so a redelivered
event or wake-up that decides the same steps again finds them saved and counts nothing twice; a crash between
the save and the counters' write loses that count rather than doubling it.

The rows (``step`` and ``variant`` of CounterRow):

- flow-wide (``-``, ``-``): entered, completed, ``exited:<reason>``, ``skipped:<reason>``, sent, and every
  message event and conversion (crm.messaging.feedback, crm.flows.conversions: ``message_rows``);
- a step (``<step id>``, the run's variant there or ``-``): ``recipients`` (runs that did the step, once per
  run: its first record; a wait is done once waited out, so a run that exits during it is not counted), sent,
  ``skipped:<reason>``, and the events and conversions of the messages sent at it;
- an A/B path (``<random split id>``, ``<random split id>:<path>``): ``recipients``, the runs that took it.
  A variant's other counts are the sum of the step rows naming it.

Days are the UTC day of the doing itself (the record's time, the run's entry or end), so a backtest on a
simulated clock counts as a live run does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from crm.flows.definition import find_step, variant_name, variant_of
from crm.models.flow_stats import ALL_STEPS, CounterName, MessageRecord
from crm.models.flows import FlowDefinition, FlowRun, RandomSplit, RunStatus, StepOutcome


@dataclass(frozen=True)
class CounterAdd:
    """What to add to one counters row (crm.flows.ports.FlowCounters.add)."""

    day: date
    counts: Mapping[str, int]
    step_id: str = ALL_STEPS
    variant: str = ALL_STEPS


def counter_reason(reason: str | None) -> str:
    """A reason as a counter names it: up to its free text (``not_composed: no email template x`` counts as
    ``not_composed``), so counter names stay a small set."""
    return (reason or "unknown").split(": ", 1)[0].strip() or "unknown"


def message_rows(message: MessageRecord) -> tuple[tuple[str, str], ...]:
    """The (step, variant) rows a message's events and conversions count on: flow-wide and its step's."""
    return (ALL_STEPS, ALL_STEPS), (message.step_id, message.variant or ALL_STEPS)


def entry_counts(run: FlowRun) -> list[CounterAdd]:
    return [CounterAdd(run.entered_at.date(), {CounterName.ENTERED.value: 1})]


def run_counts(before: FlowRun, after: FlowRun, definition: FlowDefinition | None) -> list[CounterAdd]:
    """What a run's save from ``before`` to ``after`` adds (``definition``: the flow's, to name variants and
    A/B paths; None when the flow is gone: flow-wide counts only)."""
    rows: dict[tuple[date, str, str], Counter[str]] = {}

    def add(day: date, name: str, step_id: str = ALL_STEPS, variant: str = ALL_STEPS) -> None:
        rows.setdefault((day, step_id, variant), Counter())[name] += 1

    reached = {record.step_id for record in before.steps}
    for record in after.steps[len(before.steps):] if after.steps[:len(before.steps)] == before.steps else ():
        day, step_id = record.at.date(), record.step_id
        variant = (variant_of(definition, step_id, after) if definition is not None else None) or ALL_STEPS
        if definition is not None and step_id not in reached:
            add(day, CounterName.RECIPIENTS.value, step_id, variant)
        reached.add(step_id)
        if record.outcome is StepOutcome.SENT:
            add(day, CounterName.SENT.value)
            if definition is not None:
                add(day, CounterName.SENT.value, step_id, variant)
        elif record.outcome is StepOutcome.SKIPPED:
            name = f"{CounterName.SKIPPED.value}:{counter_reason(record.reason)}"
            add(day, name)
            if definition is not None:
                add(day, name, step_id, variant)
        elif record.outcome is StepOutcome.SPLIT and record.path is not None and definition is not None and (
                isinstance(find_step(definition, step_id), RandomSplit)):
            add(day, CounterName.RECIPIENTS.value, step_id, variant_name(step_id, record.path))
    if before.status is RunStatus.ACTIVE and after.status is not RunStatus.ACTIVE:
        ended = (after.ended_at or after.entered_at).date()
        add(ended, CounterName.COMPLETED.value if after.status is RunStatus.COMPLETED
            else f"{CounterName.EXITED.value}:{after.exit_reason or 'unknown'}")
    return [CounterAdd(day, dict(counts), step_id, variant) for (day, step_id, variant), counts in rows.items()]


def merged_exit_counts(run: FlowRun) -> list[CounterAdd]:
    """A run a merge ended as it moved it (created ended, so no save counts it)."""
    if run.status is RunStatus.ACTIVE or run.ended_at is None:
        return []
    return [CounterAdd(run.ended_at.date(), {f"{CounterName.EXITED.value}:{run.exit_reason or 'unknown'}": 1})]

