"""Backtests (crm.flows.simulate): THE EQUIVALENCE TEST (a built-in flow backtested over a scripted history does
what the live flows service does over the same events with a fast-forwarded clock: same entries, same sends,
same skips, the same runs), and what a backtest reports."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from crm.flows.builtin import ABANDONED_CHECKOUT, BROWSE_ABANDONMENT, BUILTIN_FLOWS, POST_PURCHASE, WELCOME
from crm.flows.engine import FlowEvent
from crm.flows.history import profile_after, scripted_history
from crm.flows.memory import MemoryFlowCounters, MemoryMessageLedger, MemorySplitWinners
from crm.flows.service import FlowsService, Report
from crm.flows.simulate import Backtest, HistoryEvent, SimulatedSend, messaging_of
from crm.models.consent import Consent, ConsentState
from crm.models.events import (
    CheckoutStarted,
    ConsentChanged,
    DomainEvent,
    Item,
    OrderFulfilled,
    OrderPlaced,
    ProductViewed,
)
from crm.models.flows import FlowRecord, FlowRun, FlowStatus
from crm.models.profile import Profile, new_profile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import NOW
from tests.fakes import (
    FakeEmailSender,
    FakeFlowCatalogue,
    FakeMessageComposer,
    FakeProfileRepository,
    FakeRunStore,
    FakeSegmentStore,
    FakeSmsSender,
    FakeSuppressions,
    FakeWaitScheduler,
)

WS = "ws1"
START = NOW
DAYS = 12
END = START + timedelta(days=DAYS)
FLOWS = (ABANDONED_CHECKOUT, BROWSE_ABANDONMENT, POST_PURCHASE, WELCOME)


def _flow(flow_id: str) -> FlowRecord:
    return FlowRecord(workspace_id=WS, flow_id=flow_id, status=FlowStatus.LIVE, version=1,
                      definition=BUILTIN_FLOWS[flow_id], created_at=START, updated_at=START)


def _shopper(profile_id: str, email: str | None, subscribed: bool) -> Profile:
    state = ConsentState.SUBSCRIBED if subscribed else ConsentState.NOT_SUBSCRIBED
    consent = Consent(channel="email", state=state, source="shopify:customers/update", at=START - timedelta(days=30))
    return new_profile(WS, profile_id, START - timedelta(days=30)).model_copy(
        update={"email": email, "consents": {"email": consent}})


def _flow_event(event: DomainEvent) -> FlowEvent:
    return FlowEvent.of(event.type, event.model_dump(mode="json"))  # type: ignore[attr-defined]


def _event(kind: str, profile_id: str, at: datetime, number: int, ref: int) -> FlowEvent:
    common = {"event_id": f"{kind}-{profile_id}-{number}", "workspace_id": WS, "profile_id": profile_id,
              "occurred_at": at}
    if kind == "checkout":
        return _flow_event(CheckoutStarted(**common, store_id="st", checkout_id=f"c{ref}",
                                           items=(Item(title="Mug", price="12.00"),)))
    if kind in ("order", "unpaid_order"):
        return _flow_event(OrderPlaced(**common, store_id="st", order_id=f"o{ref}", currency="USD",
                                       total_price="40.00", net_total="40.00", paid=kind == "order"))
    if kind == "fulfilled":
        return _flow_event(OrderFulfilled(**common, store_id="st", order_id=f"o{ref}"))
    if kind == "view":
        return _flow_event(ProductViewed(**common, store_id="st", product=Item(title="Mug")))
    new = "subscribed" if kind == "subscribe" else "unsubscribed"
    return _flow_event(ConsentChanged(**common, channel="email", old_state=None, new_state=new,
                                      source="shopify:customers/update"))


KINDS = ("checkout", "order", "unpaid_order", "fulfilled", "view", "subscribe", "unsubscribe")


@st.composite
def histories(draw: st.DrawFn) -> list[HistoryEvent]:
    history: list[HistoryEvent] = []
    for index in range(draw(st.integers(1, 4))):
        profile_id = f"p{index}"
        profile = _shopper(profile_id, draw(st.sampled_from(["ann@example.com", "bob@example.com", None])),
                           draw(st.booleans()))
        # within the period [START, END): an event at END is after it (a backtest leaves it out, as it should)
        moments = draw(st.lists(st.tuples(st.integers(0, DAYS * 24 * 60 - 1), st.sampled_from(KINDS),
                                          st.integers(0, 2)), max_size=10))
        events = [_event(kind, profile_id, START + timedelta(minutes=minute), number, ref)
                  for number, (minute, kind, ref) in enumerate(moments)]
        history += scripted_history(profile, events)
    return sorted(history, key=lambda h: (h.event.occurred_at, h.event.event_id))


# ---- the live side: the flows service on the fakes a unit test uses, the clock fast-forwarded ----


class Live:
    def __init__(self, flow: FlowRecord) -> None:
        self.now = START
        self.profiles = FakeProfileRepository()
        self.runs = FakeRunStore()
        self.scheduler = FakeWaitScheduler()
        self.email = FakeEmailSender()
        self.service = FlowsService(
            catalogue=FakeFlowCatalogue(flow), runs=self.runs, scheduler=self.scheduler, profiles=self.profiles,
            segments=FakeSegmentStore(self.profiles), messaging=messaging_of(WS), suppressions=FakeSuppressions(),
            email=self.email, sms=FakeSmsSender(), composer=FakeMessageComposer(), clock=lambda: self.now,
            ledger=MemoryMessageLedger(), counters=MemoryFlowCounters(), winners=MemorySplitWinners())
        self.reports: list[tuple[datetime, Report]] = []

    def later(self, until: datetime, *, inclusive: bool) -> None:
        """Move the clock to ``until``, delivering each wake-up the Scheduler fires on the way at its time."""
        while pending := [w for w in self.scheduler.schedules.values()
                          if w.due_at < until or (inclusive and w.due_at == until)]:
            self.now = min(w.due_at for w in pending)
            for wake in self.scheduler.fire_due(self.now):
                self.reports.append((self.now, self.service.on_wake(wake)))
        self.now = until

    def play(self, history: list[HistoryEvent]) -> None:
        for recorded in history:
            self.later(recorded.event.occurred_at, inclusive=True)
            # what ingestion wrote before the outbox published the event
            self.profiles.profiles[(WS, recorded.profile.profile_id)] = recorded.profile
            self.reports.append((self.now, self.service.on_event(recorded.event)))
        self.later(END, inclusive=False)

    def sends(self) -> list[tuple[datetime, str, str, str]]:
        to = {f"ses-{n}": email.to for n, email in enumerate(self.email.sent, start=1)}
        return [(at, run_id, step_id, to[message_id])
                for at, report in self.reports for run_id, step_id, message_id in report.sent]

    def skips(self) -> list[tuple[datetime, str, str, str]]:
        return [(at, *skip) for at, report in self.reports for skip in report.skipped]

    def entries(self) -> list[str]:
        return [run_id for _, report in self.reports for run_id in report.started]


def _backtest(flow: FlowRecord, history: list[HistoryEvent]) -> Backtest:
    backtest = Backtest(flow, START, END, messaging=messaging_of(WS), keep=10_000)
    backtest.report = backtest.play(history)  # type: ignore[attr-defined]
    return backtest


def _runs(store: FakeRunStore) -> dict[str, FlowRun]:
    return {run.run_id: run for run in store.runs.values()}


@pytest.mark.parametrize("flow_id", FLOWS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories())
def test_a_backtest_does_what_the_live_service_does_over_the_same_events(flow_id: str,
                                                                         history: list[HistoryEvent]) -> None:
    live = Live(_flow(flow_id))
    live.play(history)
    backtest = _backtest(_flow(flow_id), history)
    report = backtest.report  # type: ignore[attr-defined]

    assert sorted(run.run_id for run in backtest.runs.runs.values()) == sorted(live.entries())
    assert report.entered == len(live.entries())
    assert [(s.at, s.run_id, s.step_id, s.to) for s in report.sends] == live.sends()
    assert [(s.at, s.run_id, s.step_id, s.reason) for s in report.skips] == live.skips()
    assert _runs(backtest.runs) == _runs(live.runs)  # the same steps, exits and waits, run by run


def _abandoned_checkout_history() -> list[HistoryEvent]:
    ann = _shopper("ann", "ann@example.com", subscribed=True)
    bob = _shopper("bob", "bob@example.com", subscribed=False)
    cat = _shopper("cat", "cat@example.com", subscribed=True)
    return sorted([
        *scripted_history(ann, [_event("checkout", "ann", START + timedelta(hours=1), 1, 1),
                                _event("order", "ann", START + timedelta(hours=11), 2, 1)]),
        *scripted_history(bob, [_event("checkout", "bob", START + timedelta(hours=2), 1, 1)]),
        *scripted_history(cat, [_event("checkout", "cat", START + timedelta(days=1), 1, 7),
                                _event("order", "cat", START + timedelta(days=8), 2, 7)]),
    ], key=lambda h: h.event.occurred_at)


def test_the_abandoned_checkout_flow_over_a_scripted_history() -> None:
    history = _abandoned_checkout_history()
    report = _backtest(_flow(ABANDONED_CHECKOUT), history).report  # type: ignore[attr-defined]

    assert report.entered == 3
    # ann: one reminder 4 hours after her checkout, then her order ended the run; cat: both reminders
    assert [(s.profile_id, s.step_id, s.at) for s in report.sends] == [
        ("ann", "email_1", START + timedelta(hours=5)),
        ("cat", "email_1", START + timedelta(days=1, hours=4)),
        ("cat", "email_2", START + timedelta(days=2)),
    ]
    assert report.skipped == {"no_consent": 2}  # bob never subscribed: both reminders skipped
    assert report.exited == {"exit_event:OrderPlaced": 1}
    assert report.completed == 2
    assert report.reached == {"email_1": 3, "email_2": 2, "wait_24h": 2, "wait_4h": 3}
    assert report.sent == {"email": 3}
    # ann's order came 6 hours after her reminder: within 5 days; cat's 6 days after her last: not
    assert [(o.profile_id, o.step_id, o.recovered_checkout) for o in report.followed_orders] == [
        ("ann", "email_1", True)]
    assert report.revenue == {"USD": Decimal("40.00")}
    assert report.recovered_checkouts == 1
    days = {day.day: day for day in report.by_day}
    assert days[START.date()].entered == 2 and days[START.date()].sent == 1 and days[START.date()].orders == 1


def test_a_backtest_ends_early_when_out_of_time_and_says_so() -> None:
    backtest = Backtest(_flow(ABANDONED_CHECKOUT), START, END, messaging=messaging_of(WS))
    asked = iter([False, True])
    report = backtest.play(_abandoned_checkout_history(), out_of_time=lambda: next(asked, True))
    assert report.truncated and report.events_replayed == 1


def test_a_history_out_of_time_order_is_refused() -> None:
    history = _abandoned_checkout_history()
    with pytest.raises(ValueError, match="time order"):
        Backtest(_flow(ABANDONED_CHECKOUT), START, END).play(list(reversed(history)))


def test_the_profile_is_carried_forward_event_by_event() -> None:
    profile = _shopper("ann", "ann@example.com", subscribed=True)
    at = START + timedelta(hours=3)
    ordered = profile_after(profile, _event("order", "ann", at, 1, 1))
    assert (ordered.last_order_at, ordered.orders_count) == (at, 1)
    assert profile_after(profile, _event("unpaid_order", "ann", at, 1, 1)) == profile
    left = profile_after(ordered, _event("unsubscribe", "ann", at, 2, 1))
    assert left.consents["email"].state is ConsentState.UNSUBSCRIBED
    assert profile_after(left, _event("checkout", "ann", at, 3, 1)).last_checkout is not None


def test_sends_are_kept_up_to_the_limit_and_counted_beyond_it() -> None:
    backtest = Backtest(_flow(ABANDONED_CHECKOUT), START, END, messaging=messaging_of(WS), keep=1)
    report = backtest.play(_abandoned_checkout_history())
    assert report.sent == {"email": 3}
    [kept] = report.sends
    assert kept == SimulatedSend(at=START + timedelta(hours=5), profile_id="ann", run_id=kept.run_id,
                                 step_id="email_1", channel="email", to="ann@example.com",
                                 template_id="builtin:abandoned_checkout_1", message_id="ses-1")
