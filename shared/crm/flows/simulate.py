"""Backtests: the real flows service (crm.flows.service, so the same engine code as live runs) carried over a
recorded, time-ordered history on in-memory ports (crm.flows.memory) and a simulated clock. Nothing is sent:
the senders only record.

The clock stands at each recorded event's time when the event is delivered; between two events, the wake-ups
that fell due fire in time order, each at its own due time (as EventBridge Scheduler would have fired them), and
after the last event the clock runs on to the end of the period. The flow runs as if it had been live the whole
period, whatever its status. Before each event the profile is set to what the event recorded (``HistoryEvent``:
the profile as it stood once the event was applied, which is what the live flows function reads after the
outbox), so an exit the profile already shows (an order since the trigger), consent and the profile filter are
judged as they were then. The suppression list may be the workspace's own (read only, as the live service reads
it: ``crm.flows.backtests``); SNS's opted-out list is never asked (``opted_out_phones`` stands for it).

Orders that followed: crm.flows.conversions' rule (the last touch within the workspace's windows), applied as if
every message had been engaged with the moment it was sent (an email opened and clicked, an SMS delivered and
clicked): no message of a backtest was delivered, so nothing else could be credited. It is the most the flow
could have been credited in the period, not what it would have been; a recovered checkout is counted by the
same rule's ``is_recovered_checkout``.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, Field

from crm.flows.conversions import earliest_candidate, is_recovered_checkout, last_touch
from crm.flows.defaults import BUILTIN_SINCE, builtin_templates
from crm.flows.definition import find_step
from crm.flows.engine import FlowEvent
from crm.flows.memory import (
    MemoryFlowCatalogue,
    MemoryFlowCounters,
    MemoryMessageLedger,
    MemoryMessagingStore,
    MemoryRunStore,
    MemorySplitWinners,
    MemorySuppressions,
    MemoryWaitScheduler,
    RecordingEmailSender,
    RecordingSmsSender,
    UnrenderedComposer,
)
from crm.flows.ports import Suppressions
from crm.flows.service import FlowsService, Report
from crm.models.flow_stats import AttributionWindows, MessageEventType, MessageRecord
from crm.models.flows import FlowRecord, FlowStatus, RunStatus, SendEmail, SendSms
from crm.models.messaging import MessagingSettings, TemplateRecord
from crm.models.profile import Profile
from crm.models.segments import HeldSegments
from crm.ports import Change

# Events a backtest does not deliver: a double opt-in answers a browser's request, it is no flow's doing, and a
# merge of profiles moves runs that a history read per profile cannot tell apart.
NOT_REPLAYED = frozenset({"ConsentRequested", "ProfilesMerged"})


@dataclass(frozen=True)
class HistoryEvent:
    """One recorded bus event and the profile as it stood once the event was applied (with its segments)."""

    event: FlowEvent
    profile: Profile
    segments: frozenset[str] = frozenset()


class SimulatedClock:
    """The backtest's time: moved by the driver only."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class HistoryProfiles:
    """Profiles as the history recorded them (crm.flows.ports.FlowProfiles and ProfileSegments). A write of the
    service (a tag, a timeline line) lands on the profile held until the next recorded event replaces it."""

    def __init__(self) -> None:
        self.profiles: dict[tuple[str, str], tuple[Profile, frozenset[str]]] = {}
        self.timeline_lines = 0

    def stand(self, profile: Profile, segments: frozenset[str]) -> None:
        self.profiles[(profile.workspace_id, profile.profile_id)] = (profile, segments)

    def get_profile(self, workspace_id: str, profile_id: str) -> Profile | None:
        held = self.profiles.get((workspace_id, profile_id))
        return None if held is None else held[0]

    def commit(self, change: Change) -> None:
        for profile, _ in change.profiles:
            key = (profile.workspace_id, profile.profile_id)
            segments = self.profiles[key][1] if key in self.profiles else frozenset()
            self.profiles[key] = (profile, segments)
        self.timeline_lines += len(change.timeline)

    def profile_with_segments(self, workspace_id: str, profile_id: str) -> tuple[Profile, HeldSegments] | None:
        held = self.profiles.get((workspace_id, profile_id))
        if held is None:
            return None
        return held[0], HeldSegments(segment_ids=tuple(sorted(held[1])))


# ---- the answer ----------------------------------------------------------------------------------------------

_ANSWER = ConfigDict(frozen=True)


class SimulatedSend(BaseModel):
    """A message the flow would have sent: when, to whom, from which run and step."""

    model_config = _ANSWER

    at: datetime
    profile_id: str
    run_id: str
    step_id: str
    channel: str
    to: str
    template_id: str | None = None
    message_id: str


class SimulatedSkip(BaseModel):
    model_config = _ANSWER

    at: datetime
    profile_id: str
    run_id: str
    step_id: str
    reason: str


class FollowedOrder(BaseModel):
    """A paid order placed within the attribution window after a message of the flow (the last one before it)."""

    model_config = _ANSWER

    at: datetime
    profile_id: str
    store_id: str
    order_id: str
    currency: str
    total: Decimal
    step_id: str
    message_sent_at: datetime
    recovered_checkout: bool = False


class BacktestDay(BaseModel):
    model_config = _ANSWER

    day: date
    entered: int = 0
    sent: int = 0
    skipped: int = 0
    exited: int = 0
    completed: int = 0
    orders: int = 0


class BacktestReport(BaseModel):
    """What the flow would have done over the period (``truncated``: the time budget ran out after
    ``events_replayed`` events; the figures cover those)."""

    model_config = _ANSWER

    flow_id: str
    start: datetime
    end: datetime
    events_replayed: int
    wake_ups: int
    entered: int
    reached: dict[str, int]
    sent: dict[str, int]
    skipped: dict[str, int]
    exited: dict[str, int]
    completed: int
    in_progress: int
    by_day: list[BacktestDay]
    orders: int
    revenue: dict[str, Decimal]
    recovered_checkouts: int
    sends: list[SimulatedSend] = Field(default_factory=list)
    skips: list[SimulatedSkip] = Field(default_factory=list)
    followed_orders: list[FollowedOrder] = Field(default_factory=list)
    truncated: bool = False


# ---- the driver ----------------------------------------------------------------------------------------------


def engaged(message: MessageRecord) -> MessageRecord:
    """The message as if the shopper had engaged with it as it was sent (see the module's docstring)."""
    kinds = ((MessageEventType.OPENED, MessageEventType.CLICKED) if message.channel == "email"
             else (MessageEventType.DELIVERED, MessageEventType.CLICKED))
    return message.model_copy(update={"events": {kind: message.sent_at for kind in kinds}})


@dataclass
class _Tally:
    keep: int
    entered: int = 0
    wake_ups: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    exited: Counter[str] = field(default_factory=Counter)
    days: dict[date, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    sends: list[SimulatedSend] = field(default_factory=list)
    skips: list[SimulatedSkip] = field(default_factory=list)
    orders: list[FollowedOrder] = field(default_factory=list)
    recovered: int = 0


class Backtest:
    """One flow over one period. ``play`` the history once; the service is the real one, on memory ports."""

    def __init__(self, flow: FlowRecord, start: datetime, end: datetime, *,
                 messaging: MemoryMessagingStore | None = None, suppressions: Suppressions | None = None,
                 opted_out_phones: Iterable[str] = (), windows: AttributionWindows | None = None,
                 keep: int = 1000) -> None:
        if end <= start:
            raise ValueError("the backtest's period ends before it starts")
        # Live for the whole period, saved at least once (a never-saved workspace reads no runs at all).
        self.flow = flow.model_copy(update={"status": FlowStatus.LIVE, "version": max(flow.version, 1)})
        self.start, self.end = start, end
        self.clock = SimulatedClock(start)
        self.profiles = HistoryProfiles()
        self.runs = MemoryRunStore()
        self.scheduler = MemoryWaitScheduler()
        self.email = RecordingEmailSender()
        self.sms = RecordingSmsSender(opted_out_phones)
        self.messaging = messaging or MemoryMessagingStore()
        self.ledger = MemoryMessageLedger()
        self.windows = windows or self.messaging.messaging_settings(flow.workspace_id).attribution
        self.service = FlowsService(
            catalogue=MemoryFlowCatalogue(self.flow), runs=self.runs, scheduler=self.scheduler,
            profiles=self.profiles, segments=self.profiles, messaging=self.messaging,
            suppressions=suppressions or MemorySuppressions(), email=self.email, sms=self.sms,
            composer=UnrenderedComposer(), clock=self.clock, ledger=self.ledger, counters=MemoryFlowCounters(),
            winners=MemorySplitWinners())
        self._tally = _Tally(keep=keep)
        self._messages: dict[str, list[MessageRecord]] = defaultdict(list)

    def play(self, history: Iterable[HistoryEvent], *, out_of_time: Callable[[], bool] = lambda: False
             ) -> BacktestReport:
        """Deliver each event in the period (in time order; a ValueError if the history is not) and the wake-ups
        between them; ``out_of_time`` is asked between events and ends the replay early (``truncated``)."""
        replayed, truncated, last = 0, False, None
        for recorded in history:
            event = recorded.event
            if last is not None and event.occurred_at < last:
                raise ValueError(f"the history is not in time order at event {event.event_id}")
            last = event.occurred_at
            if not self.start <= event.occurred_at < self.end or event.type in NOT_REPLAYED:
                continue
            if out_of_time():
                truncated = True
                break
            self._wake_until(event.occurred_at)
            self.clock.now = event.occurred_at
            self.profiles.stand(recorded.profile, recorded.segments)
            if event.type == "OrderPlaced":
                self._order(event)
            self._note(self.service.on_event(event), event.profile_id)
            replayed += 1
        if not truncated:
            self._wake_until(self.end, before=True)
            self.clock.now = self.end
        return self._report(replayed, truncated)

    def _wake_until(self, moment: datetime, *, before: bool = False) -> None:
        while (wake := self.scheduler.next_due()) is not None and (
                wake.due_at < moment or (not before and wake.due_at == moment)):
            self.clock.now = max(self.clock.now, wake.due_at)
            for due in self.scheduler.fire_due(self.clock.now):
                self._tally.wake_ups += 1
                self._note(self.service.on_wake(due), due.profile_id)

    def _order(self, event: FlowEvent) -> None:
        detail, at = event.detail, event.occurred_at
        if detail.get("paid") is False:
            return
        since = earliest_candidate(at, self.windows)
        messages = [m for m in self._messages.get(event.profile_id, ()) if since <= m.sent_at <= at]
        touch = last_touch([engaged(m) for m in messages], at, self.windows)
        if touch is None:
            return
        message = touch.message
        run = self.runs.get_run(message.workspace_id, message.profile_id, message.run_id)
        recovered = is_recovered_checkout(message, run.trigger if run else None, detail.get("checkout_token"),
                                          detail.get("cart_token"))
        try:
            total = Decimal(str(detail.get("total_price") or "0"))
        except InvalidOperation:
            total = Decimal(0)
        self._tally.orders.append(FollowedOrder(
            at=at, profile_id=event.profile_id, store_id=str(detail.get("store_id") or ""),
            order_id=str(detail.get("order_id") or event.event_id), currency=str(detail.get("currency") or ""),
            total=total, step_id=message.step_id, message_sent_at=message.sent_at, recovered_checkout=recovered))
        self._tally.recovered += recovered
        self._tally.days[at.date()]["orders"] += 1

    def _note(self, report: Report, profile_id: str) -> None:
        tally, now = self._tally, self.clock.now
        day = tally.days[now.date()]
        tally.entered += len(report.started)
        day["entered"] += len(report.started)
        for run_id, step_id, message_id in report.sent:
            send = self._send(run_id, step_id, message_id, profile_id, now)
            tally.sent[send.channel] += 1
            day["sent"] += 1
            self._ledger_holds(send)
            if len(tally.sends) < tally.keep:
                tally.sends.append(send)
        for run_id, step_id, reason in report.skipped:
            tally.skipped[reason] += 1
            day["skipped"] += 1
            if len(tally.skips) < tally.keep:
                tally.skips.append(SimulatedSkip(at=now, profile_id=profile_id, run_id=run_id, step_id=step_id,
                                                 reason=reason))
        for _, reason in report.ended:
            if reason == "completed":
                day["completed"] += 1
            else:
                tally.exited[reason] += 1
                day["exited"] += 1

    def _ledger_holds(self, send: SimulatedSend) -> None:
        """The service records each message it sends (MessageLedger.record_sent); a record it already made is
        kept as it is (the first record of a message id wins), so this only fills in a service that does not."""
        run = self.runs.get_run(self.flow.workspace_id, send.profile_id, send.run_id)
        self.ledger.record_sent(MessageRecord(
            workspace_id=self.flow.workspace_id, profile_id=send.profile_id, message_id=send.message_id,
            channel="email" if send.channel == "email" else "sms", flow_id=self.flow.flow_id,
            flow_version=self.flow.version, step_id=send.step_id, run_id=send.run_id,
            trigger_type=run.trigger_type if run else "", sent_at=send.at))
        # The profile's messages at hand (MessageLedger.touches reads them all in memory): an order reads its own
        held = self.ledger.find(send.message_id, self.flow.workspace_id, send.profile_id)
        if held is not None:
            self._messages[send.profile_id].append(held)

    def _send(self, run_id: str, step_id: str, message_id: str, profile_id: str, now: datetime) -> SimulatedSend:
        # The recording senders' ids number their messages: "ses-3" is the third email.
        channel, _, number = message_id.partition("-")
        step = find_step(self.flow.definition, step_id)
        template_id = step.template_id if isinstance(step, SendEmail | SendSms) else None
        to = (self.email.sent[int(number) - 1].to if channel == "ses" else self.sms.sent[int(number) - 1].to)
        return SimulatedSend(at=now, profile_id=profile_id, run_id=run_id, step_id=step_id,
                             channel="email" if channel == "ses" else "sms", to=to, template_id=template_id,
                             message_id=message_id)

    def _report(self, replayed: int, truncated: bool) -> BacktestReport:
        tally = self._tally
        reached: Counter[str] = Counter()
        completed = in_progress = 0
        for run in self.runs.runs.values():
            reached.update({record.step_id for record in run.steps})
            if run.status is RunStatus.ACTIVE:
                in_progress += 1
                if run.next_step is not None and run.next_step not in {r.step_id for r in run.steps}:
                    reached[run.next_step] += 1
            completed += run.status is RunStatus.COMPLETED
        revenue: dict[str, Decimal] = defaultdict(Decimal)
        for order in tally.orders:
            revenue[order.currency] += order.total
        days = [BacktestDay(day=day, **counts) for day, counts in sorted(tally.days.items()) if any(counts.values())]
        return BacktestReport(
            flow_id=self.flow.flow_id, start=self.start, end=self.end, events_replayed=replayed,
            wake_ups=tally.wake_ups, entered=tally.entered, reached=dict(sorted(reached.items())),
            sent=dict(sorted(tally.sent.items())), skipped=dict(sorted(tally.skipped.items())),
            exited=dict(sorted(tally.exited.items())), completed=completed, in_progress=in_progress, by_day=days,
            orders=len(tally.orders), revenue=dict(sorted(revenue.items())), recovered_checkouts=tally.recovered,
            sends=tally.sends, skips=tally.skips,
            followed_orders=tally.orders[:tally.keep], truncated=truncated)


def messaging_of(workspace_id: str, settings: MessagingSettings | None = None,
                 templates: Iterable[TemplateRecord] = ()) -> MemoryMessagingStore:
    """A backtest's messaging store: the workspace's settings and templates (``templates``, read from its own
    store), and the built-in templates it never saved, as crm.adapters.flow_definitions answers them."""
    held = {t.template_id: t for t in templates}
    for template_id, template in builtin_templates().items():
        held.setdefault(template_id, TemplateRecord(workspace_id=workspace_id, template_id=template_id,
                                                    template=template, created_at=BUILTIN_SINCE,
                                                    updated_at=BUILTIN_SINCE))
    return MemoryMessagingStore(*held.values(), settings=settings or MessagingSettings())


def deadline(seconds: float) -> Callable[[], bool]:
    """``out_of_time`` for ``play``: true once ``seconds`` of wall time have passed since this call."""
    until = time.monotonic() + seconds
    return lambda: time.monotonic() >= until


def period(end: datetime, days: int) -> tuple[datetime, datetime]:
    if not 1 <= days <= 90:
        raise ValueError(f"days: {days} is not between 1 and 90")
    return end - timedelta(days=days), end


__all__ = ["NOT_REPLAYED", "Backtest", "BacktestDay", "BacktestReport", "FollowedOrder", "HistoryEvent",
           "HistoryProfiles", "SimulatedClock", "SimulatedSend", "SimulatedSkip", "deadline", "engaged",
           "messaging_of", "period"]
