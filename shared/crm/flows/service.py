"""Carries flows out: what the flow engine decides (crm.flows.engine, pure), done through the ports.

- A bus event for a profile ends the runs it exits (their wake-ups cancelled), resumes the runs waiting for
  it, and starts a run of every live flow it triggers (a run's id comes from the trigger, so a duplicated
  event starts one run), which then go as far as they can at once.
- A wake-up (a Scheduler one-time schedule on the flows queue) moves its run past a wait; a stale one (the
  run ended, or is no longer at that step) is dropped.
- A send is exactly-once: the pre-send checks first, then a conditional claim of the run's step, then the
  send, then its record. A retried step finds the claim and never sends again; a claim found without a
  record (a crash between claim and send) is recorded as UNKNOWN, reported (an alarm watches it), and never
  resent blindly.
- A merge leaves one run per flow for the survivor; an erasure deletes runs and their schedules.

Time comes in as ``now``; nothing here sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from crm.flows.ports import (
    ChannelName,
    EmailSender,
    FlowCatalogue,
    MessagingStore,
    RunStore,
    SmsSender,
    StepAlreadyClaimed,
    Suppressions,
    WaitScheduler,
)
from crm.models.events import AnyDomainEvent, ProfilesMerged
from crm.models.flows import (
    FlowDefinition,
    FlowRecord,
    FlowRun,
    FlowStatus,
    RunStatus,
    SendEmail,
    SendSms,
    SkipReason,
    StepOutcome,
    StepRecord,
    WakeUp,
)
from crm.models.messaging import MessagingSettings, OutgoingEmail, OutgoingSms, TemplateRecord
from crm.models.profile import Profile, TimelineEntry
from crm.ports import Change, ConcurrentUpdate, ProfileRepository

# A claim younger than this may be a send still under way in another invocation (the flows function's
# timeout is 60 s): the delivery is retried later rather than the step declared unknown.
CLAIM_GRACE = timedelta(minutes=2)
# More steps than this in one go is a definition that loops: the run is ended rather than spun forever.
MAX_STEPS_AT_ONCE = 100
_ATTEMPTS = 5


# ---- what the engine decides (crm.flows.engine) ----
@dataclass(frozen=True)
class Send:
    step: SendEmail | SendSms
    then: str | None  # the step after it


@dataclass(frozen=True)
class Wait:
    """Wait at ``step_id`` until ``until`` (a delay, a quiet-hours hold, or a wait_for's timeout), or until
    ``waiting_for`` happens to the profile."""

    step_id: str
    until: datetime
    waiting_for: str | None = None


@dataclass(frozen=True)
class Tag:
    step_id: str
    tag: str
    then: str | None


@dataclass(frozen=True)
class Split:
    step_id: str
    path: int
    then: str | None


@dataclass(frozen=True)
class End:
    """The run is over: ``exit_reason`` None when it completed its steps."""

    exit_reason: str | None = None


Decision = Send | Wait | Tag | Split | End


@dataclass(frozen=True)
class SendFacts:
    """What the pre-send checks need that only the ports know."""

    channel: ChannelName
    address: str | None
    suppressed: bool
    last_sent: datetime | None
    carrier_opted_out: bool


class FlowEngine(Protocol):
    """The pure decisions (crm.flows.engine); the service never decides what a flow means."""

    def entry(self, flow: FlowRecord, event: AnyDomainEvent, profile: Profile, earlier: Sequence[FlowRun],
              now: datetime) -> FlowRun | None:
        """The run ``event`` starts in ``flow`` (trigger, filter, re-entry over ``earlier`` runs), or None."""
        ...

    def exit_reason(self, run: FlowRun, flow: FlowDefinition, event: AnyDomainEvent) -> str | None: ...
    def resumes(self, run: FlowRun, flow: FlowDefinition, event: AnyDomainEvent) -> bool:
        """True when the run waits at a wait_for step for this event."""
        ...

    def decide(self, run: FlowRun, flow: FlowDefinition, profile: Profile, now: datetime) -> Decision:
        """The run's next step (``run.next_step``; a wait recorded WAITED in ``run.steps`` is over)."""
        ...

    def send_check(self, run: FlowRun, flow: FlowDefinition, step: SendEmail | SendSms, profile: Profile,
                   facts: SendFacts, settings: MessagingSettings, now: datetime) -> SkipReason | datetime | None:
        """The pre-send checks in the issue's order: a reason to skip, a time to hold until (quiet hours), or
        None to send."""
        ...


class MessageComposer(Protocol):
    """Renders a template for a profile and run (crm.messaging.render)."""

    def email(self, template: TemplateRecord, settings: MessagingSettings, profile: Profile, run: FlowRun,
              step_id: str, now: datetime) -> OutgoingEmail: ...
    def sms(self, template: TemplateRecord, settings: MessagingSettings, profile: Profile, run: FlowRun,
            step_id: str, now: datetime) -> OutgoingSms: ...


class StepInFlight(Exception):
    """Another invocation claimed the step moments ago and may still be sending: try the delivery later."""


@dataclass
class Report:
    """What one delivery did (the handler logs it and turns ``unknown`` into the FlowStepUnknown metric)."""

    started: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (run, step, message id)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (run, step, reason)
    ended: list[tuple[str, str]] = field(default_factory=list)  # (run, exit reason or "completed")
    unknown: list[tuple[str, str]] = field(default_factory=list)  # (run, step)
    ignored: list[str] = field(default_factory=list)


@dataclass
class FlowsService:
    engine: FlowEngine
    catalogue: FlowCatalogue
    runs: RunStore
    scheduler: WaitScheduler
    profiles: ProfileRepository
    messaging: MessagingStore
    suppressions: Suppressions
    email: EmailSender
    sms: SmsSender
    composer: MessageComposer
    clock: Callable[[], datetime]

    # ---- a bus event ----
    def on_event(self, event: AnyDomainEvent) -> Report:
        report = Report()
        if isinstance(event, ProfilesMerged):
            self.merge(event.workspace_id, event.merged_profile_id, event.profile_id, report)
            return report
        ws = event.workspace_id
        profile = self.profiles.get_profile(ws, event.profile_id)
        if profile is None:
            report.ignored.append(f"no profile {event.profile_id}")
            return report
        flows = {f.flow_id: f for f in self.catalogue.list_flows(ws)}
        runs = self.runs.runs_of_profile(ws, profile.profile_id)
        for run in runs:
            if run.status is RunStatus.ACTIVE and run.trigger_event_id != event.event_id:
                self._follow(run, flows.get(run.flow_id), profile, event, report)
        for flow in flows.values():
            if flow.status is FlowStatus.LIVE:
                self._start(flow, [r for r in runs if r.flow_id == flow.flow_id], profile, event, report)
        return report

    def _follow(self, run: FlowRun, flow: FlowRecord | None, profile: Profile, event: AnyDomainEvent,
                report: Report) -> None:
        """An active run hears of an event: it may exit on it, or be waiting for it."""
        if flow is None:
            self._end(run, "flow_deleted", report)
            return
        reason = self.engine.exit_reason(run, flow.definition, event)
        if reason is not None:
            self._end(run, reason, report)
        elif self.engine.resumes(run, flow.definition, event):
            self._resume(run, flow, profile, event, report)

    def _start(self, flow: FlowRecord, earlier: list[FlowRun], profile: Profile, event: AnyDomainEvent,
               report: Report) -> None:
        started = self.engine.entry(flow, event, profile, earlier, self.clock())
        if started is None:
            return
        if not self.runs.create_run(started):  # the trigger was delivered before: its run exists
            report.duplicates.append(started.run_id)
            return
        report.started.append(started.run_id)
        self.advance(started, flow, profile, report)

    def _resume(self, run: FlowRun, flow: FlowRecord, profile: Profile, event: AnyDomainEvent,
                report: Report) -> None:
        step_id = run.next_step
        assert step_id is not None
        waited = StepRecord(step_id=step_id, outcome=StepOutcome.WAITED, at=self.clock(), reason=event.type)
        resumed = self._saved(run, waited, next_step=step_id, wake_at=None, waiting_for=None)
        self.scheduler.cancel(run.run_id, step_id)
        self.advance(resumed, flow, profile, report)

    # ---- a wake-up ----
    def on_wake(self, wake: WakeUp) -> Report:
        report = Report()
        run = self.runs.get_run(wake.workspace_id, wake.profile_id, wake.run_id)
        profile = self.profiles.get_profile(wake.workspace_id, wake.profile_id)
        if run is None and profile is not None and profile.profile_id != wake.profile_id:
            # The profile was merged: its runs moved to the survivor under the same ids.
            run = self.runs.get_run(wake.workspace_id, profile.profile_id, wake.run_id)
        if (run is None or profile is None or run.status is not RunStatus.ACTIVE or run.next_step != wake.step_id
                or run.wake_at is None):
            report.ignored.append(f"stale wake-up {wake.run_id}/{wake.step_id}")
            return report
        flow = self.catalogue.get_flow(wake.workspace_id, run.flow_id)
        if flow is None:
            self._end(run, "flow_deleted", report)
            return report
        step = _send_step(flow.definition, wake.step_id)
        if step is None:  # a delay or a wait_for's timeout is over; a held send is simply tried again
            waited = StepRecord(step_id=wake.step_id, outcome=StepOutcome.WAITED, at=self.clock(),
                                reason="timeout" if run.waiting_for else None)
            run = self._saved(run, waited, next_step=wake.step_id, wake_at=None, waiting_for=None)
        else:
            run = self._saved(run, None, next_step=wake.step_id, wake_at=None, waiting_for=None)
        self.advance(run, flow, profile, report)
        return report

    # ---- advancing a run ----
    def advance(self, run: FlowRun, flow: FlowRecord, profile: Profile, report: Report) -> FlowRun:
        for _ in range(MAX_STEPS_AT_ONCE):
            if run.status is not RunStatus.ACTIVE or run.wake_at is not None:
                return run
            decision = self.engine.decide(run, flow.definition, profile, self.clock())
            if isinstance(decision, End):
                return self._end(run, decision.exit_reason, report)
            if isinstance(decision, Wait):
                wake = WakeUp(workspace_id=run.workspace_id, profile_id=run.profile_id, flow_id=run.flow_id,
                              run_id=run.run_id, step_id=decision.step_id, due_at=decision.until)
                self.scheduler.schedule(wake)
                run = self._saved(run, None, next_step=decision.step_id, wake_at=decision.until,
                                  waiting_for=decision.waiting_for)
            elif isinstance(decision, Tag):
                self._tag(profile, decision.tag)
                record = StepRecord(step_id=decision.step_id, outcome=StepOutcome.TAGGED, at=self.clock(),
                                    reason=decision.tag)
                run = self._saved(run, record, next_step=decision.then)
            elif isinstance(decision, Split):
                record = StepRecord(step_id=decision.step_id, outcome=StepOutcome.SPLIT, at=self.clock(),
                                    path=decision.path)
                run = self._saved(run, record, next_step=decision.then)
            else:
                run = self._send(run, flow, profile, decision, report)
        return self._end(run, "too_many_steps", report)

    def _send(self, run: FlowRun, flow: FlowRecord, profile: Profile, decision: Send, report: Report) -> FlowRun:
        step, now = decision.step, self.clock()
        done = self.runs.step_claim(run, step.id)
        if done is not None:
            return self._claimed_before(run, done, decision, report)
        settings = self.messaging.messaging_settings(run.workspace_id)
        facts = self._facts(run, profile, step)
        verdict = self.engine.send_check(run, flow.definition, step, profile, facts, settings, now)
        if isinstance(verdict, datetime):  # quiet hours: the same step, later
            wake = WakeUp(workspace_id=run.workspace_id, profile_id=run.profile_id, flow_id=run.flow_id,
                          run_id=run.run_id, step_id=step.id, due_at=verdict)
            self.scheduler.schedule(wake)
            return self._saved(run, None, next_step=step.id, wake_at=verdict)
        try:
            self.runs.claim_step(run, step.id, now)
        except StepAlreadyClaimed:
            found = self.runs.step_claim(run, step.id)
            assert found is not None
            return self._claimed_before(run, found, decision, report)
        if verdict is not None:
            record = StepRecord(step_id=step.id, outcome=StepOutcome.SKIPPED, at=now, reason=verdict.value,
                                channel=step.kind)
            report.skipped.append((run.run_id, step.id, verdict.value))
        else:
            record = self._deliver(run, profile, step, facts, settings, now)
            report.sent.append((run.run_id, step.id, record.message_id or ""))
        self.runs.record_step(run, record)
        return self._saved(run, record, next_step=decision.then)

    def _claimed_before(self, run: FlowRun, found: StepRecord, decision: Send, report: Report) -> FlowRun:
        """A claim from an earlier delivery: its record if it has one, else UNKNOWN; never a second send."""
        if found.outcome is StepOutcome.UNKNOWN:
            if self.clock() - found.at < CLAIM_GRACE:
                raise StepInFlight(f"step {found.step_id} of run {run.run_id} claimed at {found.at.isoformat()}")
            found = found.model_copy(update={"at": self.clock(), "reason": "claimed, never recorded",
                                             "channel": decision.step.kind})
            self.runs.record_step(run, found)
            report.unknown.append((run.run_id, found.step_id))
        return self._saved(run, found, next_step=decision.then)

    def _facts(self, run: FlowRun, profile: Profile, step: SendEmail | SendSms) -> SendFacts:
        ws = run.workspace_id
        if isinstance(step, SendEmail):
            address = profile.email
            suppressed = address is not None and self.suppressions.is_suppressed(ws, address)
            return SendFacts("email", address, suppressed, self.runs.last_sent(ws, profile.profile_id, "email"),
                             False)
        phone = profile.phone
        return SendFacts("sms", phone, False, self.runs.last_sent(ws, profile.profile_id, "sms"),
                         phone is not None and self.sms.is_opted_out(phone))

    def _deliver(self, run: FlowRun, profile: Profile, step: SendEmail | SendSms, facts: SendFacts,
                 settings: MessagingSettings, now: datetime) -> StepRecord:
        template = self.messaging.get_template(run.workspace_id, step.template_id)
        if template is None or template.template.channel != step.kind:
            return StepRecord(step_id=step.id, outcome=StepOutcome.SKIPPED, at=now, channel=step.kind,
                              reason=f"template {step.template_id} missing")
        if isinstance(step, SendEmail):
            message_id = self.email.send(self.composer.email(template, settings, profile, run, step.id, now))
        else:
            message_id = self.sms.send(self.composer.sms(template, settings, profile, run, step.id, now))
        self.runs.note_sent(run.workspace_id, profile.profile_id, facts.channel, now)
        self._timeline(profile, TimelineEntry(
            workspace_id=run.workspace_id, profile_id=profile.profile_id, occurred_at=now, type="flow_message",
            ref=f"{run.run_id}:{step.id}",
            summary={"flow_id": run.flow_id, "step_id": step.id, "channel": step.kind, "message_id": message_id}))
        return StepRecord(step_id=step.id, outcome=StepOutcome.SENT, at=now, channel=step.kind,
                          message_id=message_id)

    # ---- the profile: tags and timeline lines, guarded like every profile write ----
    def _tag(self, profile: Profile, tag: str) -> None:
        for _ in range(_ATTEMPTS):
            current = self.profiles.get_profile(profile.workspace_id, profile.profile_id)
            if current is None or tag in current.tags:
                return
            tagged = current.model_copy(update={"tags": (*current.tags, tag), "updated_at": self.clock(),
                                                "revision": current.revision + 1})
            try:
                self.profiles.commit(Change(profile.workspace_id, profiles=((tagged, current.revision),)))
            except ConcurrentUpdate:
                continue
            return
        raise ConcurrentUpdate(f"profile {profile.profile_id} kept changing while it was tagged")

    def _timeline(self, profile: Profile, entry: TimelineEntry) -> None:
        self.profiles.commit(Change(profile.workspace_id, timeline=(entry,)))

    # ---- run bookkeeping ----
    def _saved(self, run: FlowRun, record: StepRecord | None, *, next_step: str | None,
               wake_at: datetime | None = None, waiting_for: str | None = None) -> FlowRun:
        steps = run.steps if record is None else (*run.steps, record)
        changed = run.model_copy(update={"steps": steps, "next_step": next_step, "wake_at": wake_at,
                                         "waiting_for": waiting_for, "revision": run.revision + 1})
        self.runs.save_run(changed, run.revision)
        return changed

    def _end(self, run: FlowRun, exit_reason: str | None, report: Report) -> FlowRun:
        if run.wake_at is not None and run.next_step is not None:
            self.scheduler.cancel(run.run_id, run.next_step)
        ended = run.model_copy(update={
            "status": RunStatus.COMPLETED if exit_reason is None else RunStatus.EXITED, "exit_reason": exit_reason,
            "ended_at": self.clock(), "next_step": None, "wake_at": None, "waiting_for": None,
            "revision": run.revision + 1})
        self.runs.save_run(ended, run.revision)
        report.ended.append((run.run_id, exit_reason or "completed"))
        return ended

    # ---- a merge, an erasure ----
    def merge(self, workspace_id: str, merged_profile_id: str, survivor_id: str, report: Report) -> None:
        """Move the merged profile's runs to the survivor under the same ids (a pending wake-up finds them by
        following ``merged_into``); where both are in the same flow, the run that entered first continues
        and the other ends ("merged"). Last sends carry over, so Smart Sending spans both."""
        moving = self.runs.runs_of_profile(workspace_id, merged_profile_id)
        held = {r.run_id: r for r in self.runs.runs_of_profile(workspace_id, survivor_id)}
        active = {r.flow_id: r for r in held.values() if r.status is RunStatus.ACTIVE}
        for run in sorted(moving, key=lambda r: (r.entered_at, r.run_id)):
            if run.run_id in held:
                continue  # moved by an earlier delivery of this merge
            moved = run.model_copy(update={"profile_id": survivor_id, "revision": 0})
            other = active.get(run.flow_id) if run.status is RunStatus.ACTIVE else None
            if other is not None:
                keep, drop = (other, moved) if (other.entered_at, other.run_id) <= (moved.entered_at,
                                                                                     moved.run_id) else (moved, other)
                if drop is moved:
                    moved = _ended(moved, "merged", self.clock())
                    if run.wake_at is not None and run.next_step is not None:
                        self.scheduler.cancel(run.run_id, run.next_step)
                    report.ended.append((run.run_id, "merged"))
                else:
                    self._end(other, "merged", report)
                    active[run.flow_id] = keep
            elif run.status is RunStatus.ACTIVE:
                active[run.flow_id] = moved
            self.runs.create_run(moved)
        for channel in ("email", "sms"):
            at = self.runs.last_sent(workspace_id, merged_profile_id, channel)
            if at is not None:
                self.runs.note_sent(workspace_id, survivor_id, channel, at)
        self.runs.delete_runs(workspace_id, merged_profile_id)

    def erase(self, workspace_id: str, profile_id: str) -> list[FlowRun]:
        return forget_runs(self.runs, self.scheduler, workspace_id, profile_id)


def forget_runs(runs: RunStore, scheduler: WaitScheduler, workspace_id: str, profile_id: str) -> list[FlowRun]:
    """An erasure: the profile's runs and step claims deleted, and every pending wake-up of theirs."""
    deleted = runs.delete_runs(workspace_id, profile_id)
    for run in deleted:
        if run.wake_at is not None and run.next_step is not None:
            scheduler.cancel(run.run_id, run.next_step)
    return deleted


def _ended(run: FlowRun, reason: str, now: datetime) -> FlowRun:
    return run.model_copy(update={"status": RunStatus.EXITED, "exit_reason": reason, "ended_at": now,
                                  "next_step": None, "wake_at": None, "waiting_for": None})


def _send_step(definition: FlowDefinition, step_id: str) -> SendEmail | SendSms | None:
    """The send step of that id anywhere in the definition (in a split's path too), if it is one."""
    pending = list(definition.steps)
    while pending:
        step = pending.pop()
        if isinstance(step, SendEmail | SendSms) and step.id == step_id:
            return step
        if step.kind in ("split", "random"):
            pending += [s for path in step.paths for s in path.steps]
    return None
