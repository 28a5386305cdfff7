"""The flow engine: what a flow does for one profile, decided from values alone (no AWS, ``now`` injected).

crm.flows.service gathers the inputs (the flow, the run, the profile, the segments it is in, and for a
send the SendFacts) and carries the decisions out (claims, sends, schedules, saves). The decisions:

- ``enter``: does a bus event start a run of a flow for its profile (trigger, trigger filter, profile filter,
  re-entry)? The run's id comes from the trigger (crm.models.flows.run_id_for): a duplicate names the same run.
- ``on_event``: does an event arriving for the profile end a run (an exit event) or end its wait_for?
- ``decide``: the run's next action at ``now``, from ``run.next_step``; before every step the exit facts the
  profile holds (an order placed since the trigger) and the profile filter are checked again; before every
  send, in this order: exit events and profile filter, browser-only trigger, channel address and consent,
  suppression (and SNS's opt-out list), Smart Sending, quiet hours (SMS: deferred, not skipped).
- ``apply``: the run after a decision was carried out.

A run records at most one StepRecord per step (the tree has no loops): a wait's record is written when it
ends, a send's when it is sent or skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from crm.clock import as_utc
from crm.flows.actions import (
    Action,
    Channel,
    Complete,
    Decision,
    Entry,
    Exit,
    ExitReason,
    FlowEvent,
    Proceed,
    Refusal,
    Send,
    SendFacts,
    Tag,
    Wait,
    WaitFor,
)
from crm.flows.definition import branches_of, find_step, segment_filter
from crm.flows.filters import filters_hold
from crm.flows.timing import delay_end, quiet_hours_end, shopper_zone, trigger_moment
from crm.models.canonical import ActivityType
from crm.models.consent import ConsentState
from crm.models.flows import (
    MAX_WAIT,
    ConditionalSplit,
    Delay,
    EventTrigger,
    ExitStep,
    FlowDefinition,
    FlowRecord,
    FlowRun,
    FlowStatus,
    RandomSplit,
    Reentry,
    RunStatus,
    SegmentTrigger,
    SendEmail,
    SendSms,
    SkipReason,
    Step,
    StepOutcome,
    StepRecord,
    TagProfile,
    WaitForEvent,
    run_id_for,
)
from crm.models.messaging import MessagingSettings
from crm.models.profile import Profile
from crm.segments.evaluate import matches
from crm.segments.subject import subject_of

# Flows that show browsing or carts do not act on activity only a browser vouched for (docs/consent.md,
# "Residual risk"): a trigger of these kinds with ``from_browser`` is skipped at every send (browser_only).
BROWSING_TRIGGERS = frozenset({"CheckoutStarted", "ProductViewed"})
# The checks before a send, in the order they run (the order; docs/flows.md): the first that fails names
# the skip. Exit events and the profile filter end the run as well; quiet hours hold an SMS, never skip it.
CHECK_ORDER: tuple[SkipReason, ...] = (
    SkipReason.EXITED, SkipReason.FILTER, SkipReason.BROWSER_ONLY, SkipReason.NO_ADDRESS, SkipReason.NO_CONSENT,
    SkipReason.SUPPRESSED, SkipReason.CARRIER_OPT_OUT, SkipReason.SMART_SENDING,
)
# What one occurrence of a trigger is about: a platform that re-sends an order or a checkout (another event
# id, the same order) must not start a second run, even in a flow entered every time.
OCCURRENCE_KEYS: dict[str, str] = {"OrderPlaced": "order_id", "OrderFulfilled": "order_id",
                                   "CheckoutStarted": "checkout_id"}


# --- the decisions -------------------------------------------------------------------------------------


def enter(flow: FlowRecord, event: FlowEvent, profile: Profile, previous_runs: Sequence[FlowRun], now: datetime,
          *, segments: frozenset[str] = frozenset()) -> Entry:
    """Whether ``event`` starts a run of ``flow`` for ``profile``; ``previous_runs`` are the profile's runs of
    this flow (RunStore.runs_of_profile), ``segments`` the ids of the segments it is in (for the filter).

    Re-entry: ``once`` refuses after any previous run, ``once_per`` after one entered within ``days`` before
    ``now``, ``every_time`` never. A previous run that a newer occurrence of the trigger's own kind superseded
    (exit reason ``superseded``) before it sent anything does not count, nor does an active one this very
    event supersedes (whichever the service handles first): a shopper who starts a second checkout an hour
    after the first gets the reminders for the second.
    """
    definition = flow.definition
    refusal = _refusal(flow, event, profile, previous_runs, now, segments)
    if refusal is not None:
        return Entry(refusal=refusal)
    run = FlowRun(workspace_id=flow.workspace_id, flow_id=flow.flow_id, flow_version=flow.version,
                  run_id=run_id_for(flow.flow_id, event.event_id), profile_id=profile.profile_id,
                  trigger_type=event.type, trigger_event_id=event.event_id, trigger=dict(event.detail),
                  entered_at=now, next_step=definition.steps[0].id)
    return Entry(run=run)


def _refusal(flow: FlowRecord, event: FlowEvent, profile: Profile, previous_runs: Sequence[FlowRun],
             now: datetime, segments: frozenset[str]) -> Refusal | None:
    definition = flow.definition
    if flow.status is not FlowStatus.LIVE:
        return Refusal.NOT_LIVE
    if not triggers(definition, event):
        return Refusal.NOT_TRIGGER
    if profile.merged_into is not None:
        return Refusal.MERGED
    if any(_same_occurrence(previous, flow.flow_id, event) for previous in previous_runs):
        return Refusal.DUPLICATE
    if not passes_filter(definition, profile, now, segments):
        return Refusal.FILTER
    counted = [previous for previous in previous_runs if not _superseded(definition, previous, event, now)]
    if _reentry_refuses(definition.reentry, counted, now):
        return Refusal.REENTRY
    return None


def _same_occurrence(previous: FlowRun, flow_id: str, event: FlowEvent) -> bool:
    if previous.run_id == run_id_for(flow_id, event.event_id):
        return True
    key = OCCURRENCE_KEYS.get(event.type)
    if key is None or event.detail.get(key) is None:
        return False
    return previous.trigger_type == event.type and previous.trigger.get(key) == event.detail[key]


def triggers(definition: FlowDefinition, event: FlowEvent) -> bool:
    """Whether ``event`` is the flow's trigger: its event type and filter, or entering / leaving its segment."""
    trigger = definition.trigger
    if isinstance(trigger, SegmentTrigger):
        wanted = "SegmentEntered" if trigger.on == "entered" else "SegmentExited"
        return event.type == wanted and event.detail.get("segment_id") == trigger.segment_id
    return event.type == trigger.event and filters_hold(trigger.where, event.detail, {})


def passes_filter(definition: FlowDefinition, profile: Profile, now: datetime,
                  segments: frozenset[str] = frozenset()) -> bool:
    """Whether the profile matches the flow's profile filter (the segment language) at ``now``."""
    if definition.profile_filter is None:
        return True
    return matches(segment_filter(definition.profile_filter, "profile_filter"), subject_of(profile, segments), now)


def _sent_anything(run: FlowRun) -> bool:
    # UNKNOWN: claimed and never recorded, so perhaps sent.
    return any(record.outcome in (StepOutcome.SENT, StepOutcome.UNKNOWN) for record in run.steps)


def _superseded(definition: FlowDefinition, previous: FlowRun, event: FlowEvent, now: datetime) -> bool:
    if _sent_anything(previous):
        return False
    if previous.status is RunStatus.EXITED:
        return previous.exit_reason == ExitReason.SUPERSEDED
    decision = on_event(definition, previous, event, now)
    return decision is not None and decision.action == Exit(ExitReason.SUPERSEDED)


def _reentry_refuses(reentry: Reentry, previous_runs: Sequence[FlowRun], now: datetime) -> bool:
    if reentry.mode == "every_time" or not previous_runs:
        return False
    if reentry.mode == "once":
        return True
    window = timedelta(days=reentry.days or 0)
    return any(now - previous.entered_at < window for previous in previous_runs)


def on_event(definition: FlowDefinition, run: FlowRun, event: FlowEvent, now: datetime) -> Decision | None:
    """What an event arriving for the run's profile does to an active run: an Exit (one of the flow's exit
    events since the trigger; the trigger's own kind with another id is ``superseded``), a Proceed past the
    wait_for the run is waiting at (the service cancels the timeout's schedule and goes on with ``decide``), or
    None. The trigger itself, and events before it, do nothing."""
    if run.status is not RunStatus.ACTIVE or event.event_id == run.trigger_event_id:
        return None
    if event.occurred_at < trigger_moment(run):
        return None
    for exit_event in definition.exits:
        if exit_event.event == event.type and filters_hold(exit_event.where, event.detail, run.trigger):
            return Decision(Exit(_exit_reason(run, event.type)))
    return _resumed(definition, run, event, now)


def _resumed(definition: FlowDefinition, run: FlowRun, event: FlowEvent, now: datetime) -> Decision | None:
    if run.waiting_for != event.type or run.next_step is None:
        return None
    step = find_step(definition, run.next_step)
    if not isinstance(step, WaitForEvent) or not filters_hold(step.where, event.detail, run.trigger):
        return None
    record = StepRecord(step_id=step.id, outcome=StepOutcome.WAITED, at=now, reason="event")
    return Decision(Proceed(step.id), record=record, next_step=_following(definition).get(step.id))


def _exit_reason(run: FlowRun, event_type: str) -> str:
    if event_type == run.trigger_type:
        return ExitReason.SUPERSEDED.value
    return f"{ExitReason.EXIT_EVENT.value}:{event_type}"


def exit_from_profile(definition: FlowDefinition, run: FlowRun, profile: Profile) -> str | None:
    """An exit reason the profile already shows, whatever the bus delivered so far: an order placed after the
    trigger (``profile.last_order_at``) for an OrderPlaced exit, a later checkout (``last_checkout``) or product
    view (``last_browse``) for those exits without filters. Checked before every step."""
    since = trigger_moment(run)
    for exit_event in definition.exits:
        if exit_event.where:
            continue  # a filter on the event's detail: only the event itself can tell
        moment = _latest(profile, exit_event.event)
        if moment is not None and moment.tzinfo is not None and as_utc(moment) > since:
            return _exit_reason(run, exit_event.event)
    return None


def _latest(profile: Profile, event_type: str) -> datetime | None:
    if event_type == "OrderPlaced":
        return profile.last_order_at
    activity = {"CheckoutStarted": profile.last_checkout, "ProductViewed": profile.last_browse}.get(event_type)
    if activity is None or (event_type == "ProductViewed" and activity.type != ActivityType.PRODUCT_VIEWED):
        return None
    return activity.at


def send_step(definition: FlowDefinition, run: FlowRun) -> SendEmail | SendSms | None:
    """The send step the run is at, if any: the service gathers SendFacts for its channel before ``decide``."""
    step = find_step(definition, run.next_step) if run.next_step else None
    return step if isinstance(step, SendEmail | SendSms) else None


def last_send(runs: Iterable[FlowRun], channel: Channel) -> datetime | None:
    """When the profile's runs last sent on ``channel``, by any flow (Smart Sending): a send is a record of its
    run, which a merge moves with the run, so nothing is written apart for it."""
    return max((record.at for run in runs for record in run.steps
                if record.outcome is StepOutcome.SENT and record.channel == channel), default=None)


def address_of(profile: Profile, channel: Channel) -> str | None:
    """The profile's email or phone for the channel."""
    return profile.email if channel == "email" else profile.phone


def decide(definition: FlowDefinition, run: FlowRun, profile: Profile, now: datetime, *,
           settings: MessagingSettings, segments: frozenset[str] = frozenset(),
           facts: SendFacts | None = None, winners: Mapping[str, int] | None = None) -> Decision:
    """The run's next action at ``now``. ``facts`` are required when the run is at a send step (send_step):
    a ValueError otherwise, so that a send is never checked without them. ``winners``: the A/B winners decided
    so far (random split id -> path, crm.flows.ports.SplitWinners), which every run takes at their split."""
    if run.status is not RunStatus.ACTIVE:
        raise ValueError(f"run {run.run_id} is {run.status}: nothing to decide")
    if run.next_step is None:
        return Decision(Complete())
    step = find_step(definition, run.next_step)
    if step is None:
        return Decision(Exit(ExitReason.STEP_GONE.value))
    if profile.merged_into is not None:
        return Decision(Exit(ExitReason.MERGED.value))
    reason = exit_from_profile(definition, run, profile)
    if reason is not None:
        return _exit_before(step, reason, SkipReason.EXITED, now)
    if not passes_filter(definition, profile, now, segments):
        return _exit_before(step, ExitReason.FILTER.value, SkipReason.FILTER, now)
    context = _Context(definition, run, profile, as_utc(now), settings, facts, segments, winners or {})
    return _step(step, context)


@dataclass(frozen=True)
class _Context:
    definition: FlowDefinition
    run: FlowRun
    profile: Profile
    now: datetime
    settings: MessagingSettings
    facts: SendFacts | None
    segments: frozenset[str]
    winners: Mapping[str, int]

    def following(self, step_id: str) -> str | None:
        return _following(self.definition).get(step_id)

    def zone(self) -> ZoneInfo:
        return shopper_zone(self.profile, self.settings.time_zone)


def _exit_before(step: Step, reason: str, skip: SkipReason, now: datetime) -> Decision:
    # The send that would have happened is recorded as skipped, so a report can say why it did not.
    record = None
    if isinstance(step, SendEmail | SendSms):
        record = StepRecord(step_id=step.id, outcome=StepOutcome.SKIPPED, at=now, reason=skip.value,
                            channel=step.kind)
    return Decision(Exit(reason), record=record)


def _step(step: Step, context: _Context) -> Decision:
    if isinstance(step, Delay):
        return _delay(step, context)
    if isinstance(step, WaitForEvent):
        return _wait_for(step, context)
    if isinstance(step, SendEmail | SendSms):
        return _send(step, context)
    if isinstance(step, TagProfile):
        record = StepRecord(step_id=step.id, outcome=StepOutcome.TAGGED, at=context.now, reason=step.tag)
        return Decision(Tag(step.id, step.tag), record=record, next_step=context.following(step.id))
    if isinstance(step, ExitStep):
        return Decision(Exit(ExitReason.EXIT_STEP.value))
    if isinstance(step, ConditionalSplit):
        return _split(step, _conditional_path(step, context), context)
    return _split(step, random_path(step, context.run.run_id, context.winners.get(step.id)), context)


def _delay(step: Delay, context: _Context) -> Decision:
    run, now = context.run, context.now
    if run.wake_at is not None:  # the run was waiting here: the wake-up came
        if now < run.wake_at:
            return Decision(Wait(step.id, run.wake_at), next_step=step.id)
        return _waited(step.id, "delay", context)
    end = delay_end(step, run, context.profile, context.zone(), now)
    if end is None:
        return Decision(Exit(ExitReason.NO_MOMENT.value))
    if end <= now:
        return _waited(step.id, "already_past", context)
    if end - now > MAX_WAIT:
        return Decision(Exit(ExitReason.TOO_LONG.value))
    return Decision(Wait(step.id, end), next_step=step.id)


def _waited(step_id: str, why: str, context: _Context) -> Decision:
    record = StepRecord(step_id=step_id, outcome=StepOutcome.WAITED, at=context.now, reason=why)
    return Decision(Proceed(step_id), record=record, next_step=context.following(step_id))


def _wait_for(step: WaitForEvent, context: _Context) -> Decision:
    run, now = context.run, context.now
    if run.waiting_for is None or run.wake_at is None:
        return Decision(WaitFor(step.id, step.event, now + step.timeout), next_step=step.id)
    if now < run.wake_at:
        return Decision(WaitFor(step.id, step.event, run.wake_at), next_step=step.id)
    if step.on_timeout == "exit":
        return Decision(Exit(ExitReason.WAIT_TIMEOUT.value))
    return _waited(step.id, "timeout", context)


def _send(step: SendEmail | SendSms, context: _Context) -> Decision:
    """The checks before a send, in the issue's order (exit events and profile filter were checked for every
    step): browser-only trigger, address and consent, suppression, Smart Sending, quiet hours."""
    channel: Channel = step.kind
    address = address_of(context.profile, channel)
    skip = _skip_reason(step, address, context)
    if skip is not None:
        record = StepRecord(step_id=step.id, outcome=StepOutcome.SKIPPED, at=context.now, reason=skip.value,
                            channel=channel)
        return Decision(Proceed(step.id), record=record, next_step=context.following(step.id))
    if channel == "sms":
        end = quiet_hours_end(context.now, context.zone(), context.settings.quiet_hours)
        if end is not None:
            return Decision(Wait(step.id, end, why="quiet_hours"), next_step=step.id)
    assert address is not None  # _skip_reason refuses a send without one
    record = StepRecord(step_id=step.id, outcome=StepOutcome.SENT, at=context.now, channel=channel)
    return Decision(Send(step.id, channel, step.template_id, address), record=record,
                    next_step=context.following(step.id))


def _skip_reason(step: SendEmail | SendSms, address: str | None, context: _Context) -> SkipReason | None:
    channel: Channel = step.kind
    if _browser_only(context.definition, context.run):
        return SkipReason.BROWSER_ONLY
    if not address:
        return SkipReason.NO_ADDRESS
    consent = context.profile.consents.get(channel)
    if consent is None or consent.state is not ConsentState.SUBSCRIBED:
        return SkipReason.NO_CONSENT
    facts = context.facts
    if facts is None:
        raise ValueError(f"step {step.id} sends: decide needs the SendFacts for {channel}")
    if facts.suppressed:
        return SkipReason.SUPPRESSED
    if channel == "sms" and facts.carrier_opted_out:
        return SkipReason.CARRIER_OPT_OUT
    window = context.settings.smart_sending.email if channel == "email" else context.settings.smart_sending.sms
    if step.smart_sending and facts.last_sent is not None and context.now - as_utc(facts.last_sent) < window:
        return SkipReason.SMART_SENDING
    return None


def _browser_only(definition: FlowDefinition, run: FlowRun) -> bool:
    """A flow that shows browsing or a cart, started by activity only a browser vouched for (docs/consent.md,
    "Residual risk"): its messages are not sent."""
    trigger = definition.trigger
    return (isinstance(trigger, EventTrigger) and trigger.event in BROWSING_TRIGGERS
            and run.trigger.get("from_browser") is True)


def _conditional_path(split: ConditionalSplit, context: _Context) -> int | None:
    subject = subject_of(context.profile, context.segments)
    for number, branch in enumerate(split.paths):
        if branch.when is None or matches(segment_filter(branch.when), subject, context.now):
            return number
    return None


def random_path(split: RandomSplit, run_id: str, winner: int | None = None) -> int:
    """The path a run takes at a random split: the decided ``winner`` (crm.flows.abtest) once there is one,
    else drawn from the run id and the step id, by weight, so that a retried step takes the same path and runs
    spread over the paths as the weights say."""
    if winner is not None and 0 <= winner < len(split.paths):
        return winner
    total = sum(branch.weight for branch in split.paths)
    if total <= 0:
        return 0  # crm.flows.definition refuses such a split; a stored one still takes a path
    digest = hashlib.sha256(f"{run_id}|{split.id}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") % total
    for number, branch in enumerate(split.paths):
        if draw < branch.weight:
            return number
        draw -= branch.weight
    raise AssertionError("unreachable: the draw is below the total weight")


def _split(split: ConditionalSplit | RandomSplit, path: int | None, context: _Context) -> Decision:
    record = StepRecord(step_id=split.id, outcome=StepOutcome.SPLIT, at=context.now, path=path,
                        reason=None if path is not None else "no_path")
    branch_steps = branches_of(split)[path].steps if path is not None else ()
    next_step = branch_steps[0].id if branch_steps else context.following(split.id)
    return Decision(Proceed(split.id), record=record, next_step=next_step)


def _following(definition: FlowDefinition) -> dict[str, str | None]:
    """Each step's successor: the next step on its path, else the step after the split it is in, and so on."""
    following: dict[str, str | None] = {}

    def visit(steps: Sequence[Step], after: str | None) -> None:
        for index, step in enumerate(steps):
            successor = steps[index + 1].id if index + 1 < len(steps) else after
            following[step.id] = successor
            if isinstance(step, ConditionalSplit | RandomSplit):
                for branch in branches_of(step):
                    visit(branch.steps, successor)

    visit(definition.steps, None)
    return following


def apply(run: FlowRun, decision: Decision, now: datetime, *, message_id: str | None = None) -> FlowRun:
    """The run once ``decision`` was carried out (``message_id``: the sent message's, for a Send)."""
    action = decision.action
    record = decision.record
    if isinstance(action, Send):
        if message_id is None:
            raise ValueError("a Send is applied with the message id it was sent under")
        record = record.model_copy(update={"message_id": message_id}) if record else None
    steps = (*run.steps, record) if record is not None else run.steps
    update: dict[str, Any] = {"steps": steps, "wake_at": None, "waiting_for": None}
    if isinstance(action, Wait):
        update |= {"next_step": action.step_id, "wake_at": action.until}
    elif isinstance(action, WaitFor):
        update |= {"next_step": action.step_id, "wake_at": action.until, "waiting_for": action.event}
    elif isinstance(action, Exit | Complete):
        update |= {"next_step": None, "ended_at": now,
                   "status": RunStatus.EXITED if isinstance(action, Exit) else RunStatus.COMPLETED,
                   "exit_reason": action.reason if isinstance(action, Exit) else None}
    else:
        update["next_step"] = decision.next_step
    return run.model_copy(update=update)


__all__ = ["BROWSING_TRIGGERS", "CHECK_ORDER", "OCCURRENCE_KEYS", "Action", "Channel", "Complete", "Decision",
           "Entry", "Exit", "ExitReason", "FlowEvent", "Proceed", "Refusal", "Send", "SendFacts", "Tag", "Wait",
           "WaitFor", "address_of", "apply", "decide", "enter", "exit_from_profile", "on_event", "passes_filter",
           "random_path", "send_step", "triggers"]
