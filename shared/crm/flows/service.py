"""Carries flows out: what the flow engine decides (crm.flows.engine, pure) done through the ports.

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
- A browser's subscribe (``ConsentRequested``) gets the double opt-in email (crm.messaging.optin), exactly
  once per request by the same claim as a flow step (``_double_opt_in``).

Time comes in as ``now``; nothing here sleeps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal, Protocol, overload

from crm.flows import counting, engine
from crm.flows.catalogue import ever_saved, hears
from crm.flows.definition import find_step, variant_of
from crm.flows.engine import Decision, FlowEvent, Proceed
from crm.flows.ports import (
    EmailSender,
    FlowCatalogue,
    FlowCounters,
    FlowProfiles,
    MessageLedger,
    MessagingStore,
    ProfileSegments,
    RunStore,
    SmsSender,
    SplitWinners,
    StepAlreadyClaimed,
    Suppressions,
    WaitScheduler,
)
from crm.flows.stats import settled_winner
from crm.messaging.defaults import DOUBLE_OPT_IN as DOUBLE_OPT_IN_TEMPLATE
from crm.messaging.optin import double_opt_in_claim, open_email_request
from crm.models.flow_stats import MessageRecord
from crm.models.flows import (
    FlowRecord,
    FlowRun,
    FlowStatus,
    RandomSplit,
    RunStatus,
    SkipReason,
    StepOutcome,
    StepRecord,
    WakeUp,
    run_id_for,
)
from crm.models.messaging import MessagingSettings, OutgoingEmail, OutgoingSms, TemplateRecord
from crm.models.profile import Profile, TimelineEntry
from crm.ports import Change, ConcurrentUpdate

# A claim younger than this may be a send still under way in another invocation (the flows function's
# timeout is 60 s): the delivery is retried later rather than the step declared unknown.
CLAIM_GRACE = timedelta(minutes=2)
# More steps than this in one go is a definition that loops: the run is ended rather than spun forever.
MAX_STEPS_AT_ONCE = 100
_ATTEMPTS = 5
_MERGE_HOPS = 10


class MessageComposer(Protocol):
    """Renders a template for a profile and run (crm.messaging.compose), addressed to ``to``; a ValueError
    when it cannot (the send is then skipped with its message as the reason)."""

    def email(self, template: TemplateRecord, settings: MessagingSettings, profile: Profile, run: FlowRun,
              step_id: str, to: str, now: datetime) -> OutgoingEmail: ...
    def sms(self, template: TemplateRecord, settings: MessagingSettings, profile: Profile, run: FlowRun,
            step_id: str, to: str, now: datetime) -> OutgoingSms: ...
    def double_opt_in(self, template: TemplateRecord | None, settings: MessagingSettings, profile: Profile,
                      now: datetime) -> OutgoingEmail | None:
        """The confirmation email for the profile's open email consent request (``template``: the workspace's
        ``builtin:double_opt_in``, else the default); None when there is nothing to confirm or it cannot be
        made."""
        ...


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


@dataclass(frozen=True)
class Shopper:
    """The live profile (merges followed) and the segments it is in, read in one Query."""

    profile: Profile
    segments: frozenset[str]


@dataclass
class FlowsService:
    catalogue: FlowCatalogue
    runs: RunStore
    scheduler: WaitScheduler
    profiles: FlowProfiles
    segments: ProfileSegments
    messaging: MessagingStore
    suppressions: Suppressions
    email: EmailSender
    sms: SmsSender
    composer: MessageComposer
    clock: Callable[[], datetime]
    # What flows bring in (crm.models.flow_stats): a record of every message sent, counters per flow, day,
    # step and A/B variant, and the A/B winners once decided.
    ledger: MessageLedger
    counters: FlowCounters
    winners: SplitWinners
    # Read once per workspace by this service (the flows function builds one per record).
    _settings: dict[str, MessagingSettings] = field(default_factory=dict, init=False, repr=False)
    # Where each run ended by an exit in this invocation (the step it was at), for its save's counters.
    _exit_steps: dict[str, str | None] = field(default_factory=dict, init=False, repr=False)
    # What this delivery's saves added to the counters, by row: handed to ``counters`` when it is done
    # (flush_counts), one add per flow and day (the flows function's counters hold them for its whole batch,
    # crm.flows.batch_counts), so a run that enters, sends and ends adds to its rows once, not once per doing.
    _pending: dict[tuple[str, str, date, str, str], Counter[str]] = field(default_factory=dict, init=False,
                                                                         repr=False)
    # The profile's runs as this delivery read them (one Query) and then saved them, by (workspace, profile) and
    # run id: a wake-up finds its run among them, and every send's Smart Sending reads them, not the table again.
    _held_runs: dict[tuple[str, str], dict[str, FlowRun]] = field(default_factory=dict, init=False, repr=False)

    def _shopper(self, workspace_id: str, profile_id: str) -> Shopper | None:
        for _ in range(_MERGE_HOPS):
            found = self.segments.profile_with_segments(workspace_id, profile_id)
            if found is None:
                return None
            profile, held = found
            if profile.merged_into is None:
                return Shopper(profile, held.segment_ids)
            profile_id = profile.merged_into
        return None

    # ---- a bus event ----
    def on_event(self, event: FlowEvent) -> Report:
        try:
            return self._on_event(event)
        finally:
            self._held_runs.clear()
            self.flush_counts()

    def _on_event(self, event: FlowEvent) -> Report:
        report = Report()
        ws = event.workspace_id
        flows: dict[str, FlowRecord] = {}
        if event.type != "ConsentRequested":
            flows = {f.flow_id: f for f in self.catalogue.list_flows(ws)}
            unread = _nothing_to_read(event, flows.values())
            if unread is not None:
                report.ignored.append(unread)
                return report
        if event.type == "ProfilesMerged":
            self.merge(ws, str(event.detail["merged_profile_id"]), event.profile_id, report)
            return report
        shopper = self._shopper(ws, event.profile_id)
        if shopper is None:
            report.ignored.append(f"no profile {event.profile_id}")
            return report
        if event.type == "ConsentRequested":  # no flow starts, waits or exits on it (models.flows.TriggerEvent)
            self._confirm_request(event, shopper, report)
            return report
        runs = list(self._runs_of(ws, shopper.profile.profile_id).values())
        for run in runs:
            if run.status is RunStatus.ACTIVE:
                self._follow(run, flows.get(run.flow_id), shopper, event, report)
        for flow in flows.values():
            if flow.status is FlowStatus.LIVE:
                self._start(flow, [r for r in runs if r.flow_id == flow.flow_id], shopper, event, report)
        return report

    def _confirm_request(self, event: FlowEvent, shopper: Shopper, report: Report) -> None:
        if event.detail.get("channel") == "email":
            self._double_opt_in(shopper.profile, report)
        else:
            report.ignored.append("no double opt-in by SMS")  # only email confirmations are sent

    def _in_motion(self, run: FlowRun, flow: FlowRecord | None) -> bool:
        """An active run neither waiting nor ended: a delivery died while it was doing steps (its redelivery
        must carry it on, since nothing else will)."""
        return flow is not None and run.status is RunStatus.ACTIVE and run.wake_at is None

    def _follow(self, run: FlowRun, flow: FlowRecord | None, shopper: Shopper, event: FlowEvent,
                report: Report) -> None:
        """An active run hears of an event: it may exit on it, or be waiting for it."""
        now = self.clock()
        if flow is None:
            self._save(run, self._carry_out(run, Decision(action=engine.Exit("flow_deleted")), shopper, report))
            return
        decision = engine.on_event(flow.definition, run, event, now)
        moved = run if decision is None else self._carry_out(run, decision, shopper, report)
        if self._in_motion(moved, flow):
            self.advance(moved, flow, shopper, report, stored=run)
        else:
            self._save(run, moved, flow)

    def _start(self, flow: FlowRecord, earlier: list[FlowRun], shopper: Shopper, event: FlowEvent,
               report: Report, *, read_now: bool = False) -> None:
        """``flow`` as listed (the listing may be held a while, crm.flows.catalogue): a run starts only from
        the flow as read now, so a flow paused or changed since it was listed never starts a stale run."""
        entry = engine.enter(flow, event, shopper.profile, earlier, self.clock(), segments=shopper.segments)
        if entry.refusal is engine.Refusal.DUPLICATE:
            report.duplicates.append(run_id_for(flow.flow_id, event.event_id))
        if entry.run is None:
            return
        if not read_now:
            current = self.catalogue.get_flow(flow.workspace_id, flow.flow_id)
            if current is None:
                report.ignored.append(f"flow {flow.flow_id} deleted")
                return
            self._start(current, earlier, shopper, event, report, read_now=True)
            return
        # The run is stored once, as far as it went (waiting or ended): one write, not a create and a save. A
        # delivery that dies before storing it leaves no run, so its redelivery starts it again and decides the
        # same steps: a send's claim stops a second send, a schedule or a tag is made once by name or by value.
        started = self.advance(entry.run, flow, shopper, report, new=True)
        if started is None:  # a concurrent delivery of the trigger stored it first (and counts it)
            report.duplicates.append(entry.run.run_id)
            return
        report.started.append(entry.run.run_id)

    # ---- a wake-up ----
    def on_wake(self, wake: WakeUp) -> Report:
        try:
            return self._on_wake(wake)
        finally:
            self._held_runs.clear()
            self.flush_counts()

    def _on_wake(self, wake: WakeUp) -> Report:
        """The runs are read eventually consistently first (half the read units): what is decided on a run older
        than the stored one is refused by the run's save (its condition on the revision read), and then decided
        again on a strongly consistent read; a wake-up is dropped only on a strongly consistent read."""
        report = Report()
        try:
            self._wake(wake, report, consistent=False)
        except ConcurrentUpdate:
            # What the first try sent stays sent and reported (its claims keep it from going again); nothing it
            # decided was saved or counted.
            report = Report(sent=report.sent, unknown=report.unknown)
            self._held_runs.clear()
            self._exit_steps.clear()
            self._wake(wake, report, consistent=True)
        return report

    def _wake(self, wake: WakeUp, report: Report, *, consistent: bool) -> None:
        shopper = self._shopper(wake.workspace_id, wake.profile_id)
        run = None
        if shopper is not None:
            # A merged profile's runs moved to the survivor under the same ids. The run is found among the
            # profile's runs (one Query, in place of a GetItem), which its sends' Smart Sending reads too.
            held = (wake.workspace_id, shopper.profile.profile_id)
            run = self._runs_of(*held, consistent=consistent).get(wake.run_id)
            if not consistent and not _acts_on(wake, run):
                # Perhaps read from before the run's last save: read again, consistently, before dropping it.
                del self._held_runs[held]
                run = self._runs_of(*held).get(wake.run_id)
        if shopper is None or run is None or not _acts_on(wake, run):
            report.ignored.append(f"stale wake-up {wake.run_id}/{wake.step_id}")
            return
        flow = self.catalogue.get_flow(wake.workspace_id, run.flow_id)
        if flow is None:
            self._save(run, self._carry_out(run, Decision(action=engine.Exit("flow_deleted")), shopper, report))
            return
        self.advance(run, flow, shopper, report)

    # ---- advancing a run ----
    @overload
    def advance(self, run: FlowRun, flow: FlowRecord, shopper: Shopper, report: Report,
                stored: FlowRun | None = None, *, new: Literal[False] = False) -> FlowRun: ...
    @overload
    def advance(self, run: FlowRun, flow: FlowRecord, shopper: Shopper, report: Report,
                stored: FlowRun | None = None, *, new: bool) -> FlowRun | None: ...
    def advance(self, run: FlowRun, flow: FlowRecord, shopper: Shopper, report: Report,
                stored: FlowRun | None = None, *, new: bool = False) -> FlowRun | None:
        """Do the run's steps until it waits or ends, then save it once (``stored``: the run as the table holds
        it, ``run`` by default; ``new``: a run just entered, not stored yet, created now, or None when a
        concurrent delivery created it first). Nothing between needs saving: a send's claim is its own guard,
        and a delivery that dies part-way is redelivered and decides the same steps again from the stored run
        (or, for a new run, from its trigger)."""
        stored = stored or run
        settings = self._settings_of(run.workspace_id)

        def save(after: FlowRun) -> FlowRun | None:
            return self._create(stored, after, flow) if new else self._save(stored, after, flow)

        for _ in range(MAX_STEPS_AT_ONCE):
            if run.status is not RunStatus.ACTIVE:
                return save(run)
            step = engine.send_step(flow.definition, run)
            facts = None if step is None else self._facts(run, shopper.profile, step.kind)
            decision = engine.decide(flow.definition, run, shopper.profile, self.clock(), settings=settings,
                                     segments=shopper.segments, facts=facts, winners=self._winners(flow, run))
            if isinstance(decision.action, engine.Send):
                run = self._send(run, decision, decision.action, shopper, settings, report, flow)
            elif step is not None and isinstance(decision.action, Proceed) and (
                    found := self._step_claim(run, step.id)) is not None:
                # Skipped now, but claimed before: the run's save after that send was lost. The claim tells.
                run = self._claimed_before(run, decision, found, report)
            else:
                run = self._carry_out(run, decision, shopper, report)
            if decision.pauses:
                return save(run)
        return save(self._carry_out(run, Decision(action=engine.Exit("too_many_steps")), shopper, report))

    def _winners(self, flow: FlowRecord, run: FlowRun) -> dict[str, int]:
        """At a random split: the flow's A/B winners, and this split's decided now from the counters of all
        the flow's days when it has a winner rule and none yet (crm.flows.stats.settled_winner)."""
        split = find_step(flow.definition, run.next_step) if run.next_step else None
        if not isinstance(split, RandomSplit):
            return {}
        held = self.winners.winners(run.workspace_id, run.flow_id)
        if split.winner is None or split.id in held or not self.winners.due_for_check(run.workspace_id, run.flow_id,
                                                                                      split.id):
            return held
        now = self.clock()
        rows = self.counters.rows(run.workspace_id, run.flow_id, flow.created_at.date(), now.date())
        path = settled_winner(split, rows)
        if path is not None:
            held[split.id] = self.winners.decide(run.workspace_id, run.flow_id, split.id, path, now)
        return held

    def _carry_out(self, run: FlowRun, decision: Decision, shopper: Shopper, report: Report) -> FlowRun:
        """Everything but a send: schedule a wake-up, tag, end (cancelling a pending wake-up), or just record."""
        action, now = decision.action, self.clock()
        if isinstance(action, engine.Wait | engine.WaitFor):
            self.scheduler.schedule(WakeUp(workspace_id=run.workspace_id, profile_id=run.profile_id,
                                           flow_id=run.flow_id, run_id=run.run_id, step_id=action.step_id,
                                           due_at=action.until))
        elif run.wake_at is not None and run.next_step is not None and run.wake_at > now:
            # Leaving a wait early (an exit, or the event a wait_for waited for): its schedule goes. One that
            # came due has fired and deleted itself (ActionAfterCompletion DELETE).
            self.scheduler.cancel(run.run_id, run.next_step)
        if isinstance(action, engine.Tag):
            self._tag(shopper.profile, action.tag)
        if decision.record is not None and decision.record.outcome is StepOutcome.SKIPPED:
            report.skipped.append((run.run_id, decision.record.step_id, decision.record.reason or ""))
        if isinstance(action, engine.Exit | engine.Complete):
            report.ended.append((run.run_id, action.reason if isinstance(action, engine.Exit) else "completed"))
        if isinstance(action, engine.Exit):
            self._exit_steps[run.run_id] = run.next_step
        return engine.apply(run, decision, now)

    def _send(self, run: FlowRun, decision: Decision, send: engine.Send, shopper: Shopper,
              settings: MessagingSettings, report: Report, flow: FlowRecord) -> FlowRun:
        """Compose, claim, send, record. Composing comes first: a message that cannot be made (no template, no
        sender address) is a recorded skip, not a claim that would later read as "unknown"."""
        now = self.clock()
        try:
            message = self._compose(run, shopper.profile, send, settings, now)
        except MessageNotComposed as error:
            skipped = StepRecord(step_id=send.step_id, outcome=StepOutcome.SKIPPED, at=now, channel=send.channel,
                                 reason=f"not_composed: {error}")
            report.skipped.append((run.run_id, send.step_id, skipped.reason or ""))
            return engine.apply(run, Decision(Proceed(send.step_id), record=skipped, next_step=decision.next_step),
                                now)
        try:
            self.runs.claim_step(run, send.step_id, now)
        except StepAlreadyClaimed:
            found = self._step_claim(run, send.step_id)
            assert found is not None
            return self._claimed_before(run, decision, found, report)
        message_id = self.email.send(message) if isinstance(message, OutgoingEmail) else self.sms.send(message)
        # Before anything else: SES may report the delivery within a second (crm.messaging.feedback finds it). The
        # record is the step's outcome (its claim is not written again: _step_claim reads the ledger) and the
        # send's line on the profile's timeline (one write: crm.adapters.flow_stats).
        self.ledger.record_sent(MessageRecord(
            workspace_id=run.workspace_id, profile_id=run.profile_id, message_id=message_id, channel=send.channel,
            flow_id=run.flow_id, flow_version=run.flow_version, step_id=send.step_id, run_id=run.run_id,
            variant=variant_of(flow.definition, send.step_id, run), trigger_type=run.trigger_type, sent_at=now))
        done = engine.apply(run, decision, now, message_id=message_id)
        report.sent.append((run.run_id, send.step_id, message_id))
        return done

    # ---- the double opt-in email ----
    def _double_opt_in(self, profile: Profile, report: Report) -> None:
        """Mail the confirmation of the profile's open email request as the profile stands now (the request may
        have been confirmed, withdrawn or overtaken, or the address changed, since the event): to an address not
        suppressed, exactly once per request (the claim is named after the request's time, so an older event
        read after a newer request claims the newer one too), without Smart Sending (the shopper asked for
        it) and without counting as a send for it: a welcome email right after the confirmation still goes."""
        now = self.clock()
        claim = double_opt_in_claim(profile)
        if claim is None or open_email_request(profile, now) is None or profile.email is None:
            report.ignored.append(f"no open email consent request for {profile.profile_id}")
            return
        run = _double_opt_in_run(profile)
        if self.suppressions.is_suppressed(profile.workspace_id, profile.email):
            report.skipped.append((run.run_id, claim, SkipReason.SUPPRESSED.value))
            return
        settings = self._settings_of(profile.workspace_id)
        template = self.messaging.get_template(profile.workspace_id, DOUBLE_OPT_IN_TEMPLATE)
        message = self.composer.double_opt_in(template, settings, profile, now)
        if message is None:
            report.skipped.append((run.run_id, claim, "not_composed"))
            return
        try:
            self.runs.claim_step(run, claim, now)
        except StepAlreadyClaimed:
            found = self.runs.step_claim(run, claim)
            assert found is not None
            if found.outcome is not StepOutcome.UNKNOWN or found.reason is not None:
                report.duplicates.append(f"{run.run_id}/{claim}")  # sent, or already reported unknown
                return
            if now - found.at < CLAIM_GRACE:
                raise StepInFlight(f"the double opt-in {claim} of {profile.profile_id} claimed at "
                                   f"{found.at.isoformat()}") from None
            self.runs.record_step(run, found.model_copy(update={"at": now, "reason": "claimed, never recorded"}))
            report.unknown.append((run.run_id, claim))
            return
        message_id = self.email.send(message)
        self.runs.record_step(run, StepRecord(step_id=claim, outcome=StepOutcome.SENT, at=now, channel="email",
                                              message_id=message_id))
        self.profiles.commit(Change(profile.workspace_id, timeline=(TimelineEntry(
            workspace_id=profile.workspace_id, profile_id=profile.profile_id, occurred_at=now,
            type="double_opt_in_sent", ref=claim, summary={"channel": "email", "message_id": message_id}),)))
        report.sent.append((run.run_id, claim, message_id))

    def _settings_of(self, workspace_id: str) -> MessagingSettings:
        settings = self._settings.get(workspace_id)
        if settings is None:
            settings = self._settings[workspace_id] = self.messaging.messaging_settings(workspace_id)
        return settings

    def _compose(self, run: FlowRun, profile: Profile, send: engine.Send, settings: MessagingSettings,
                 now: datetime) -> OutgoingEmail | OutgoingSms:
        template = self.messaging.get_template(run.workspace_id, send.template_id)
        if template is None or template.template.channel != send.channel:
            raise MessageNotComposed(f"no {send.channel} template {send.template_id}")
        try:
            if send.channel == "email":
                return self.composer.email(template, settings, profile, run, send.step_id, send.to, now)
            return self.composer.sms(template, settings, profile, run, send.step_id, send.to, now)
        except ValueError as error:  # the renderer's refusals (crm.messaging.compose.CannotCompose, ...)
            raise MessageNotComposed(str(error)) from error

    def _step_claim(self, run: FlowRun, step_id: str) -> StepRecord | None:
        """What a claimed step of the run came to: a send is recorded as its message (MessageLedger.record_sent,
        right after the send, at the claim's moment), not on its claim, so a claim without a record is looked up
        there first."""
        found = self.runs.step_claim(run, step_id)
        if found is None or found.outcome is not StepOutcome.UNKNOWN or found.reason is not None:
            return found
        message = self.ledger.message_of_step(run.workspace_id, run.profile_id, run.run_id, step_id, found.at)
        if message is not None:
            return StepRecord(step_id=step_id, outcome=StepOutcome.SENT, at=message.sent_at, channel=message.channel,
                              message_id=message.message_id)
        return found

    def _claimed_before(self, run: FlowRun, decision: Decision, found: StepRecord, report: Report) -> FlowRun:
        """A claim from an earlier delivery: its record if it has one, else UNKNOWN; never a second send. An
        UNKNOWN recorded on the claim before (``reason``: by a delivery whose run's save was then refused) is
        taken as it is: reported once, and not a send in flight."""
        if found.outcome is StepOutcome.UNKNOWN and found.reason is None:
            if self.clock() - found.at < CLAIM_GRACE:
                raise StepInFlight(f"step {found.step_id} of run {run.run_id} claimed at {found.at.isoformat()}")
            found = found.model_copy(update={"at": self.clock(), "reason": "claimed, never recorded"})
            self.runs.record_step(run, found)
            report.unknown.append((run.run_id, found.step_id))
        moved_on = Decision(action=Proceed(found.step_id), record=found, next_step=decision.next_step)
        return engine.apply(run, moved_on, self.clock())

    def _runs_of(self, workspace_id: str, profile_id: str, *, consistent: bool = True) -> dict[str, FlowRun]:
        """The profile's runs, read once per delivery (one Query) and kept as its saves leave them: what the
        table holds, as far as this delivery can know without reading it again."""
        held = self._held_runs.get((workspace_id, profile_id))
        if held is None:
            read = self.runs.runs_of_profile(workspace_id, profile_id, consistent=consistent)
            held = self._held_runs[workspace_id, profile_id] = {run.run_id: run for run in read}
        return held

    def _stored(self, run: FlowRun) -> None:
        """A run this delivery stored: the profile's held runs (if it read them) hold it as stored."""
        held = self._held_runs.get((run.workspace_id, run.profile_id))
        if held is not None:
            held[run.run_id] = run

    def _facts(self, run: FlowRun, profile: Profile, channel: engine.Channel) -> engine.SendFacts:
        address = engine.address_of(profile, channel)
        # The runs as stored (read once by this delivery, with its own saves), this one as it is now (a send
        # earlier in this delivery is not saved yet).
        stored = self._runs_of(run.workspace_id, profile.profile_id).values()
        last = engine.last_send([run, *(other for other in stored if other.run_id != run.run_id)], channel)
        if address is None:
            return engine.SendFacts(last_sent=last)
        if channel == "email":
            return engine.SendFacts(suppressed=self.suppressions.is_suppressed(run.workspace_id, address),
                                    last_sent=last)
        return engine.SendFacts(carrier_opted_out=self.sms.is_opted_out(address), last_sent=last)

    def _tag(self, profile: Profile, tag: str) -> None:
        """Tags are a profile field: written like every profile write, guarded by the revision read."""
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

    def _save(self, before: FlowRun, after: FlowRun, flow: FlowRecord | None = None) -> FlowRun:
        """Save the run over the revision read, then count what the save added (crm.flows.counting: the
        condition makes a redelivery's second save of the same steps fail, so nothing is counted twice)."""
        if after == before:
            return before
        saved = after.model_copy(update={"revision": before.revision + 1})
        self.runs.save_run(saved, before.revision)
        self._stored(saved)
        self._count(counting.run_counts(before, saved, flow.definition if flow else None,
                                        exit_step=self._exit_steps.pop(saved.run_id, None)), saved)
        return saved

    def _create(self, entered: FlowRun, after: FlowRun, flow: FlowRecord) -> FlowRun | None:
        """Store a new run as ``after`` (conditional on its id being new), then count its entry and what it
        did; None, counting nothing, when a run with its id exists."""
        if not self.runs.create_run(after):
            self._exit_steps.pop(after.run_id, None)
            return None
        self._stored(after)
        self._count(counting.entry_counts(entered), after)
        self._count(counting.run_counts(entered, after, flow.definition,
                                        exit_step=self._exit_steps.pop(after.run_id, None)), after)
        return after

    def _count(self, adds: list[counting.CounterAdd], run: FlowRun) -> None:
        for add in adds:
            row = self._pending.setdefault((run.workspace_id, run.flow_id, add.day, add.step_id, add.variant),
                                           Counter())
            row.update(add.counts)

    def flush_counts(self) -> None:
        """Write what this delivery counted, its rows of a flow and day together (a crash before it loses those
        counts rather than doubling them, as a crash between a save and its counters always did:
        crm.flows.counting)."""
        pending, self._pending = self._pending, {}
        by_day: dict[tuple[str, str, date], dict[tuple[str, str], dict[str, int]]] = {}
        for (workspace_id, flow_id, day, step_id, variant), counts in pending.items():
            if counts:
                by_day.setdefault((workspace_id, flow_id, day), {})[step_id, variant] = dict(counts)
        for (workspace_id, flow_id, day), rows in by_day.items():
            self.counters.add_rows(workspace_id, flow_id, day, rows)

    # ---- a merge, an erasure ----
    def merge(self, workspace_id: str, merged_profile_id: str, survivor_id: str, report: Report) -> None:
        try:
            self._merge(workspace_id, merged_profile_id, survivor_id, report)
        finally:
            self.flush_counts()

    def _merge(self, workspace_id: str, merged_profile_id: str, survivor_id: str, report: Report) -> None:
        """Move the merged profile's runs to the survivor under the same ids (a pending wake-up finds them by
        following ``merged_into``); where both are active in the same flow, the run that entered first
        continues and the other ends ("merged", its wake-up cancelled). Last sends carry over, so Smart
        Sending spans both, and so do the messages sent (an order of the survivor is attributed to them)."""
        moving = self.runs.runs_of_profile(workspace_id, merged_profile_id)
        held = {r.run_id: r for r in self.runs.runs_of_profile(workspace_id, survivor_id)}
        active = {r.flow_id: r for r in held.values() if r.status is RunStatus.ACTIVE}
        now = self.clock()
        for run in sorted(moving, key=lambda r: (r.entered_at, r.run_id)):
            if run.run_id in held:
                continue  # moved by an earlier delivery of this merge
            moved = run.model_copy(update={"profile_id": survivor_id, "revision": 0})
            other = active.get(run.flow_id) if run.status is RunStatus.ACTIVE else None
            if other is not None and (other.entered_at, other.run_id) <= (moved.entered_at, moved.run_id):
                _cancel_wake(self.scheduler, run)
                moved = moved.model_copy(update={"status": RunStatus.EXITED, "exit_reason": "merged",
                                                 "ended_at": now, "next_step": None, "wake_at": None,
                                                 "waiting_for": None})
                report.ended.append((run.run_id, "merged"))
            elif other is not None:
                _cancel_wake(self.scheduler, other)
                ended = other.model_copy(update={"status": RunStatus.EXITED, "exit_reason": "merged",
                                                 "ended_at": now, "next_step": None, "wake_at": None,
                                                 "waiting_for": None})
                self._save(other, ended)
                report.ended.append((other.run_id, "merged"))
                active[run.flow_id] = moved
            elif run.status is RunStatus.ACTIVE:
                active[run.flow_id] = moved
            if self.runs.create_run(moved) and moved.status is not run.status:
                self._count(counting.merged_exit_counts(moved), moved)
        self.ledger.move_messages(workspace_id, merged_profile_id, survivor_id)
        self.runs.delete_runs(workspace_id, merged_profile_id)


def _acts_on(wake: WakeUp, run: FlowRun | None) -> bool:
    """Whether the wake-up moves the run: it is still at that step for that moment, or was left mid-way (a
    delivery died while it was doing steps); any other is stale."""
    return run is not None and run.status is RunStatus.ACTIVE and (
        (run.next_step, run.wake_at) == (wake.step_id, wake.due_at) or run.wake_at is None)


def _nothing_to_read(event: FlowEvent, flows: Iterable[FlowRecord]) -> str | None:
    """Why the event needs nothing more read, if it does not: only built-ins never saved (never live, no run can
    exist: most of a store's events, until it turns a flow on), or no saved flow starts, ends or resumes a run
    on it (a merge still moves the merged profile's runs)."""
    if not ever_saved(flows):
        return "no flow ever saved in the workspace"
    if event.type != "ProfilesMerged" and not hears(flows, event):
        return f"no flow starts, ends or resumes a run on this {event.type}"
    return None


class MessageNotComposed(Exception):
    """The step's message cannot be made (no such template, no sender address...): the send is skipped with
    this reason, recorded on the run."""


DOUBLE_OPT_IN_RUN = "double_opt_in"


def _double_opt_in_run(profile: Profile) -> FlowRun:
    """Where the double opt-in's claims live: a run never stored, so only its step claims are written, in the
    profile's partition (an erasure deletes them with the runs; its runs_of_profile never lists them)."""
    return FlowRun(workspace_id=profile.workspace_id, flow_id=DOUBLE_OPT_IN_RUN, flow_version=0,
                   run_id=DOUBLE_OPT_IN_RUN, profile_id=profile.profile_id, trigger_type="ConsentRequested",
                   trigger_event_id="", trigger={}, entered_at=profile.created_at, status=RunStatus.COMPLETED)


def _cancel_wake(scheduler: WaitScheduler, run: FlowRun) -> None:
    if run.wake_at is not None and run.next_step is not None:
        scheduler.cancel(run.run_id, run.next_step)


def forget_runs(runs: RunStore, scheduler: WaitScheduler, workspace_id: str, profile_id: str) -> list[FlowRun]:
    """An erasure: the profile's runs and step claims deleted, and every pending wake-up of theirs."""
    deleted = runs.delete_runs(workspace_id, profile_id)
    for run in deleted:
        _cancel_wake(scheduler, run)
    return deleted
