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
  ``skipped:<reason>``, ``exited:<reason>`` of the runs an exit ended at it (waiting there, or about to do
  it), and the events and conversions of the messages sent at it;
- an A/B path (``<random split id>``, ``<random split id>:<path>``): ``recipients``, the runs that took it.
  A variant's other counts are the sum of the step rows naming it.

Days are the UTC day of the doing itself (the record's time, the run's entry or end), so a backtest on a
simulated clock counts as a live run does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from crm.flows.definition import find_step, variant_name, variant_of
from crm.models.flow_stats import ALL_STEPS, CounterName, MessageEvent, MessageEventType, MessageRecord
from crm.models.flows import FlowDefinition, FlowRun, RandomSplit, RunStatus, StepOutcome, StepRecord


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


# The first occurrence of these adds one to the counter of the same name (an email's delivery excepted, below).
_EVENT_COUNTERS: Mapping[MessageEventType, CounterName] = {
    MessageEventType.DELIVERED: CounterName.DELIVERED, MessageEventType.BOUNCED: CounterName.BOUNCED,
    MessageEventType.OPENED: CounterName.OPENED, MessageEventType.CLICKED: CounterName.CLICKED,
    MessageEventType.COMPLAINED: CounterName.COMPLAINED, MessageEventType.UNSUBSCRIBED: CounterName.UNSUBSCRIBED,
}
# What tells that an email SES accepted never reached the mailbox.
EMAIL_NOT_DELIVERED = frozenset({MessageEventType.BOUNCED, MessageEventType.REJECTED,
                                 MessageEventType.RENDERING_FAILED})


def message_event_counts(message: MessageRecord, event: MessageEvent) -> dict[str, int]:
    """What the first occurrence of ``event`` on ``message`` adds to the message's rows (``message``: as the
    event's note left it, its events included).

    An email is counted ``delivered`` when SES accepts it (``_count_record``), not on SES's Delivery event:
    that event is not subscribed (template.yaml SesFeedbackRule), since it would cost a queue message, a read
    and three writes per email to learn what almost every send becomes. The first of a bounce, a rejection or a
    rendering failure takes the delivery back, so ``delivered`` is the emails SES accepted less those it
    reports undelivered (a late Delivery event counts nothing). An SMS's delivery is its carrier's status."""
    counts: dict[str, int] = {}
    counter = _EVENT_COUNTERS.get(event.type)
    if counter is not None and not (message.channel == "email" and event.type is MessageEventType.DELIVERED):
        counts[counter.value] = 1
    if message.channel == "email" and event.type in EMAIL_NOT_DELIVERED and not any(
            kind in message.events for kind in EMAIL_NOT_DELIVERED - {event.type}):
        counts[CounterName.DELIVERED.value] = -1
    return counts


def message_rows(message: MessageRecord) -> tuple[tuple[str, str], ...]:
    """The (step, variant) rows a message's events and conversions count on: flow-wide and its step's."""
    return (ALL_STEPS, ALL_STEPS), (message.step_id, message.variant or ALL_STEPS)


def entry_counts(run: FlowRun) -> list[CounterAdd]:
    return [CounterAdd(run.entered_at.date(), {CounterName.ENTERED.value: 1})]


@dataclass
class _Tally:
    """Counts by (day, step, variant) row for one run; a step's row names the run's variant there."""

    definition: FlowDefinition | None
    run: FlowRun
    rows: dict[tuple[date, str, str], Counter[str]] = field(default_factory=dict)

    def add(self, day: date, name: str, step_id: str = ALL_STEPS, variant: str = ALL_STEPS) -> None:
        self.rows.setdefault((day, step_id, variant), Counter())[name] += 1

    def on_step(self, day: date, name: str, step_id: str) -> None:
        """On the step's row, when the flow still has that step."""
        if self.definition is not None and find_step(self.definition, step_id) is not None:
            self.add(day, name, step_id, variant_of(self.definition, step_id, self.run) or ALL_STEPS)

    def adds(self) -> list[CounterAdd]:
        return [CounterAdd(day, dict(counts), step_id, variant)
                for (day, step_id, variant), counts in self.rows.items()]


def run_counts(before: FlowRun, after: FlowRun, definition: FlowDefinition | None,
               exit_step: str | None = None) -> list[CounterAdd]:
    """What a run's save from ``before`` to ``after`` adds (``definition``: the flow's, to name variants and
    A/B paths; None when the flow is gone: flow-wide counts only; ``exit_step``: the step the run was at when
    an exit ended it, which counts the exit on its row too)."""
    tally = _Tally(definition, after)
    reached = {record.step_id for record in before.steps}
    for record in after.steps[len(before.steps):] if after.steps[:len(before.steps)] == before.steps else ():
        if record.step_id not in reached:
            tally.on_step(record.at.date(), CounterName.RECIPIENTS.value, record.step_id)
            reached.add(record.step_id)
        _count_record(tally, record)
    if before.status is RunStatus.ACTIVE and after.status is not RunStatus.ACTIVE:
        ended = (after.ended_at or after.entered_at).date()
        if after.status is RunStatus.COMPLETED:
            tally.add(ended, CounterName.COMPLETED.value)
        else:
            name = f"{CounterName.EXITED.value}:{after.exit_reason or 'unknown'}"
            tally.add(ended, name)
            if exit_step is not None:
                tally.on_step(ended, name, exit_step)
    return tally.adds()


def _count_record(tally: _Tally, record: StepRecord) -> None:
    day, step_id = record.at.date(), record.step_id
    if record.outcome in (StepOutcome.SENT, StepOutcome.SKIPPED):
        name = (CounterName.SENT.value if record.outcome is StepOutcome.SENT
                else f"{CounterName.SKIPPED.value}:{counter_reason(record.reason)}")
        tally.add(day, name)
        tally.on_step(day, name, step_id)
        if record.outcome is StepOutcome.SENT and record.channel == "email":  # message_event_counts says why
            tally.add(day, CounterName.DELIVERED.value)
            tally.on_step(day, CounterName.DELIVERED.value, step_id)
    elif record.outcome is StepOutcome.SPLIT and record.path is not None and tally.definition is not None and (
            isinstance(find_step(tally.definition, step_id), RandomSplit)):
        tally.add(day, CounterName.RECIPIENTS.value, step_id, variant_name(step_id, record.path))


def merged_exit_counts(run: FlowRun) -> list[CounterAdd]:
    """A run a merge ended as it moved it (created ended, so no save counts it)."""
    if run.status is RunStatus.ACTIVE or run.ended_at is None:
        return []
    return [CounterAdd(run.ended_at.date(), {f"{CounterName.EXITED.value}:{run.exit_reason or 'unknown'}": 1})]

