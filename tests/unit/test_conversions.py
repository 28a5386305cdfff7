"""Attribution of orders to flow messages (crm.flows.conversions; docs/attribution.md): the windows at their
edges, the last touch, never twice (whatever the order and repetition of deliveries), refunds, recovered
checkouts and the reporting currency."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm.flows.builtin import ABANDONED_CHECKOUT, BUILTIN_FLOWS
from crm.flows.conversions import (
    ENGAGEMENT_AFTER_SEND,
    ORDER_ATTRIBUTED,
    ConversionsService,
    in_reporting_currency,
    is_recovered_checkout,
    last_touch,
    within_window,
)
from crm.flows.defaults import DefinitionInvalid
from crm.flows.memory import MemoryAttributions, MemoryFlowCatalogue, MemoryFlowCounters, MemoryMessageLedger
from crm.messaging.manage import parse_settings
from crm.models.currency import CurrencySettings
from crm.models.events import OrderPlaced, OrderRefunded
from crm.models.flow_stats import (
    ALL_STEPS,
    AttributionWindows,
    MessageChannel,
    MessageEvent,
    MessageEventType,
    MessageRecord,
)
from crm.models.flows import FlowRecord, FlowRun, FlowStatus
from crm.models.messaging import MessagingSettings
from crm.models.profile import new_profile
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import ROOT
from tests.fakes import FakeCurrencyStore, FakeMessagingStore, FakeProfileRepository, FakeRunStore

WS, PROFILE, FLOW, STORE = "ws_a", "p" * 32, "builtin:abandoned_checkout", "st_a"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEFAULT = AttributionWindows()
CLICKED, OPENED, DELIVERED = MessageEventType.CLICKED, MessageEventType.OPENED, MessageEventType.DELIVERED


def message(message_id: str = "m1", *, channel: MessageChannel = "email", sent_at: datetime = T0,
            events: dict[MessageEventType, datetime] | None = None, step_id: str = "email_1",
            variant: str | None = None, trigger_type: str = "CheckoutStarted", run_id: str = "run1",
            flow_id: str = FLOW) -> MessageRecord:
    return MessageRecord(workspace_id=WS, profile_id=PROFILE, message_id=message_id, channel=channel,
                         flow_id=flow_id, flow_version=1, step_id=step_id, run_id=run_id, variant=variant,
                         trigger_type=trigger_type, sent_at=sent_at, events=events or {})


def placed(order_id: str = "o1", *, at: datetime, total: str = "100.00", currency: str = "USD", paid: bool = True,
           checkout_token: str | None = None, cart_token: str | None = None) -> OrderPlaced:
    return OrderPlaced(event_id=f"OrderPlaced:{WS}:{STORE}:{order_id}", workspace_id=WS, profile_id=PROFILE,
                       occurred_at=at, store_id=STORE, order_id=order_id, currency=currency, total_price=total,
                       net_total=total, paid=paid, checkout_token=checkout_token, cart_token=cart_token)


def refunded(order_id: str = "o1", refund_id: str = "r1", amount: str = "10.00",
             currency: str = "USD") -> OrderRefunded:
    return OrderRefunded(event_id=f"OrderRefunded:{WS}:{STORE}:{order_id}:{refund_id}", workspace_id=WS,
                         profile_id=PROFILE, occurred_at=T0 + timedelta(days=20), store_id=STORE, order_id=order_id,
                         refund_id=refund_id, amount=amount, currency=currency)


def saved_flow(version: int = 1) -> FlowRecord:
    """A flow the workspace saved (version 1), or a built-in it never saved (version 0)."""
    return FlowRecord(workspace_id=WS, flow_id=ABANDONED_CHECKOUT, status=FlowStatus.LIVE, version=version,
                      definition=BUILTIN_FLOWS[ABANDONED_CHECKOUT], created_at=T0, updated_at=T0)


class World:
    """The service over the in-memory ports (crm.flows.memory) and the test fakes."""

    def __init__(self, windows: AttributionWindows = DEFAULT, currency: CurrencySettings | None = None,
                 flow: FlowRecord | None = None) -> None:
        self.ledger = MemoryMessageLedger()
        self.attributions = MemoryAttributions()
        self.counters = MemoryFlowCounters()
        self.runs = FakeRunStore()
        self.profiles = FakeProfileRepository()
        self.currency = FakeCurrencyStore({WS: currency} if currency else {})
        self.messaging = FakeMessagingStore(settings=MessagingSettings(from_address="shop@example.com",
                                                                       attribution=windows))
        self.service = ConversionsService(ledger=self.ledger, attributions=self.attributions,
                                          counters=self.counters, runs=self.runs, profiles=self.profiles,
                                          messaging=self.messaging, currency=self.currency, clock=lambda: T0,
                                          catalogue=MemoryFlowCatalogue(flow or saved_flow()))

    def send(self, record: MessageRecord) -> MessageRecord:
        self.ledger.record_sent(record.model_copy(update={"events": {}}))
        for kind, at in record.events.items():
            self.ledger.note_event(record, MessageEvent(message_id=record.message_id, type=kind, at=at))
        return record

    def row(self, day: date, step_id: str = ALL_STEPS, variant: str = ALL_STEPS) -> dict[str, Decimal]:
        return self.counters.items.get((WS, FLOW, day, step_id, variant), {})

    def totals(self) -> dict[str, Decimal]:
        summed: dict[str, Decimal] = {}
        for (_, _, _, step, variant), counts in self.counters.items.items():
            if (step, variant) == (ALL_STEPS, ALL_STEPS):
                for name, value in counts.items():
                    summed[name] = summed.get(name, Decimal(0)) + value
        return summed


# --- the windows at their edges ----------------------------------------------------------------------------

EDGES = [("email", CLICKED, "email_click", DEFAULT.email_click), ("email", OPENED, "email_open", DEFAULT.email_open),
         ("sms", CLICKED, "sms_click", DEFAULT.sms_click), ("sms", DELIVERED, "sms_delivery", DEFAULT.sms_delivery)]


@pytest.mark.parametrize(("channel", "event", "kind", "window"), EDGES)
def test_an_order_exactly_a_window_after_the_touch_is_attributed(channel: MessageChannel, event: MessageEventType,
                                                                 kind: str, window: timedelta) -> None:
    touched = T0 + timedelta(minutes=5)
    found = last_touch([message(channel=channel, events={event: touched})], touched + window, DEFAULT)
    assert found is not None and (found.kind, found.at) == (kind, touched)


@pytest.mark.parametrize(("channel", "event", "kind", "window"), EDGES)
def test_an_order_a_microsecond_past_the_window_is_not(channel: MessageChannel, event: MessageEventType,
                                                       kind: str, window: timedelta) -> None:
    touched = T0 + timedelta(minutes=5)
    late = touched + window + timedelta(microseconds=1)
    assert last_touch([message(channel=channel, events={event: touched})], late, DEFAULT) is None


@pytest.mark.parametrize(("channel", "event", "kind", "window"), EDGES)
def test_a_touch_at_the_orders_instant_counts_and_one_after_it_does_not(
        channel: MessageChannel, event: MessageEventType, kind: str, window: timedelta) -> None:
    ordered = T0 + timedelta(hours=2)
    assert last_touch([message(channel=channel, events={event: ordered})], ordered, DEFAULT) is not None
    after = message(channel=channel, events={event: ordered + timedelta(microseconds=1)})
    assert last_touch([after], ordered, DEFAULT) is None


def test_a_sent_email_never_opened_or_clicked_and_an_sms_not_delivered_touch_nothing() -> None:
    quiet = [message("m1", events={MessageEventType.DELIVERED: T0, MessageEventType.SENT: T0}),
             message("m2", channel="sms", events={MessageEventType.SENT: T0, MessageEventType.FAILED: T0})]
    assert last_touch(quiet, T0 + timedelta(hours=1), DEFAULT) is None


def test_the_workspaces_windows_decide() -> None:
    windows = AttributionWindows(email_open=timedelta(hours=12))
    opened = message(events={OPENED: T0})
    assert last_touch([opened], T0 + timedelta(hours=12), windows) is not None
    assert last_touch([opened], T0 + timedelta(hours=13), windows) is None
    # the SMS delivery window (1 day) is narrower than the SMS click window (5 days) of the same message
    sms = message(channel="sms", events={DELIVERED: T0, CLICKED: T0 + timedelta(hours=1)})
    found = last_touch([sms], T0 + timedelta(days=3), DEFAULT)
    assert found is not None and found.kind == "sms_click"
    only_delivered = message(channel="sms", events={DELIVERED: T0})
    assert last_touch([only_delivered], T0 + timedelta(days=3), DEFAULT) is None


def test_a_message_sent_more_than_the_longest_window_and_30_days_before_the_order_is_no_candidate() -> None:
    ordered = T0 + timedelta(days=60)
    oldest = ordered - timedelta(days=5) - ENGAGEMENT_AFTER_SEND
    clicked = {CLICKED: ordered - timedelta(days=1)}  # a late click, well within its window
    assert last_touch([message(sent_at=oldest, events=clicked)], ordered, DEFAULT) is not None
    too_old = message(sent_at=oldest - timedelta(microseconds=1), events=clicked)
    assert last_touch([too_old], ordered, DEFAULT) is None
    world = World()
    world.send(message(sent_at=oldest, events=clicked))
    assert world.service.on_order_placed(placed(at=ordered)).attribution is not None


def test_within_window_is_inclusive_at_both_ends() -> None:
    assert within_window(T0, T0, timedelta(0))
    assert within_window(T0, T0 + timedelta(days=5), timedelta(days=5))
    assert not within_window(T0, T0 - timedelta(microseconds=1), timedelta(days=5))


# --- the last touch --------------------------------------------------------------------------------------

def test_the_last_touch_wins_across_messages_and_channels() -> None:
    first = message("m1", events={CLICKED: T0 + timedelta(hours=1)})
    later = message("m2", channel="sms", events={DELIVERED: T0 + timedelta(hours=3)}, step_id="sms_1")
    opened = message("m3", events={OPENED: T0 + timedelta(hours=2)}, step_id="email_2")
    found = last_touch([first, later, opened], T0 + timedelta(hours=4), DEFAULT)
    assert found is not None and (found.message.message_id, found.kind) == ("m2", "sms_delivery")


def test_a_click_beats_an_open_at_the_same_instant() -> None:
    both = [message("m1", events={OPENED: T0}), message("m0", events={CLICKED: T0})]
    found = last_touch(both, T0 + timedelta(hours=1), DEFAULT)
    assert found is not None and (found.message.message_id, found.kind) == ("m0", "email_click")


def test_an_open_after_a_click_of_the_same_email_is_its_last_touch() -> None:
    found = last_touch([message(events={CLICKED: T0, OPENED: T0 + timedelta(hours=1)})], T0 + timedelta(days=1),
                       DEFAULT)
    assert found is not None and found.kind == "email_open"


# --- the service -----------------------------------------------------------------------------------------

def test_an_order_after_a_click_is_attributed_once_and_counted_on_the_orders_day() -> None:
    world = World()
    world.send(message(events={CLICKED: T0 + timedelta(hours=1)}, variant="split_1:1"))
    ordered = datetime(2026, 3, 3, 23, 59, 59, tzinfo=UTC)  # counted on the 3rd, whenever the event is read
    outcome = world.service.on_order_placed(placed(at=ordered, total="80.50"))
    assert outcome.attribution is not None
    assert (outcome.attribution.message_id, outcome.attribution.touch) == ("m1", "email_click")
    assert world.row(date(2026, 3, 3)) == {"converted": Decimal(1), "revenue": Decimal("80.50"),
                                           "recovered": Decimal(1), "recovered_revenue": Decimal("80.50")}
    assert world.row(date(2026, 3, 3), "email_1", "split_1:1")["revenue"] == Decimal("80.50")
    again = world.service.on_order_placed(placed(at=ordered, total="80.50"))
    assert again.attribution is None and again.ignored == "attributed before"
    assert world.totals()["converted"] == 1
    [line] = world.profiles.timelines[(WS, PROFILE)].values()
    assert line.type == ORDER_ATTRIBUTED and line.ref == f"{STORE}:o1" and line.occurred_at == ordered
    assert line.summary["message_id"] == "m1" and line.summary["revenue"] == "80.50"


def test_an_order_in_a_workspace_that_never_saved_a_flow_reads_no_message() -> None:
    class Unread(MemoryMessageLedger):
        def touches(self, workspace_id: str, profile_id: str, since: datetime) -> list[MessageRecord]:
            raise AssertionError("the ledger was read")

    world = World(flow=saved_flow(version=0))
    world.ledger = world.service.ledger = Unread()
    outcome = world.service.on_order_placed(placed(at=T0 + timedelta(hours=2)))
    assert outcome.attribution is None and outcome.ignored == "no flow ever saved in the workspace"
    assert world.counters.items == {}


def test_a_message_outside_any_window_is_not_read_as_a_candidate() -> None:
    world = World()
    world.send(message(sent_at=T0 - timedelta(days=6), events={CLICKED: T0 - timedelta(days=6)}))
    assert world.service.on_order_placed(placed(at=T0)).ignored == "no touch within the windows"
    assert world.counters.items == {}
    assert (WS, PROFILE) not in world.profiles.timelines


def test_an_unpaid_order_is_not_attributed() -> None:
    world = World()
    world.send(message(events={CLICKED: T0}))
    assert world.service.on_order_placed(placed(at=T0 + timedelta(hours=1), paid=False)).ignored == "unpaid"
    assert world.attributions.items == {}


def test_an_order_cancelled_or_refunded_in_full_when_first_stored_is_not_a_conversion_but_a_free_one_is() -> None:
    world = World()
    world.send(message(events={CLICKED: T0}))
    gone = placed("o1", at=T0 + timedelta(hours=1), total="30.00").model_copy(update={"net_total": "0.00"})
    assert world.service.on_order_placed(gone).ignored == "cancelled or refunded in full"
    free = placed("o2", at=T0 + timedelta(hours=1), total="0.00")
    assert world.service.on_order_placed(free).attribution is not None
    assert world.totals()["converted"] == 1 and world.totals()["revenue"] == 0


def test_a_step_outside_any_split_counts_on_its_step_row_without_a_variant() -> None:
    world = World()
    world.send(message(events={OPENED: T0}, trigger_type="SegmentEntered", step_id="welcome"))
    world.service.on_order_placed(placed(at=T0 + timedelta(days=1), total="12.00"))
    day = (T0 + timedelta(days=1)).date()
    assert world.row(day, "welcome", ALL_STEPS) == {"converted": Decimal(1), "revenue": Decimal("12.00")}


# --- refunds ---------------------------------------------------------------------------------------------

def test_a_refund_reduces_attributed_revenue_on_the_orders_day_once_per_refund_id() -> None:
    world = World()
    world.send(message(events={CLICKED: T0}))
    day = (T0 + timedelta(hours=1)).date()
    world.service.on_order_placed(placed(at=T0 + timedelta(hours=1), total="100.00"))
    first = world.service.on_order_refunded(refunded(amount="30.00"))
    assert first.refunded == Decimal("30.00")
    assert world.service.on_order_refunded(refunded(amount="30.00")).ignored == "refund counted before"
    world.service.on_order_refunded(refunded(refund_id="r2", amount="20.00"))
    assert world.row(day)["revenue"] == Decimal("50.00")
    assert world.row(day)["recovered_revenue"] == Decimal("50.00")
    assert world.row(day, "email_1")["revenue"] == Decimal("50.00")
    assert world.row(day)["converted"] == 1  # a refund takes money off, not the conversion
    held = world.attributions.get(WS, STORE, "o1")
    assert held is not None and held.refunded == Decimal("50.00") and held.refund_ids == ("r1", "r2")


def test_refunds_never_take_off_more_than_was_attributed() -> None:
    world = World()
    world.send(message(events={CLICKED: T0}))
    world.service.on_order_placed(placed(at=T0 + timedelta(hours=1), total="40.00"))
    world.service.on_order_refunded(refunded(amount="30.00"))
    over = world.service.on_order_refunded(refunded(refund_id="r2", amount="30.00"))
    assert over.refunded == Decimal("10.00")
    assert world.totals()["revenue"] == Decimal("0.00")


def test_a_refund_of_an_order_not_attributed_changes_nothing() -> None:
    world = World()
    assert world.service.on_order_refunded(refunded()).ignored == "order not attributed"
    assert world.counters.items == {}


# --- recovered checkouts ---------------------------------------------------------------------------------

def _checkout_run(checkout_id: str | None) -> FlowRun:
    trigger: dict[str, Any] = {"checkout_id": checkout_id} if checkout_id else {}
    return FlowRun(workspace_id=WS, flow_id=FLOW, flow_version=1, run_id="run1", profile_id=PROFILE,
                   trigger_type="CheckoutStarted", trigger_event_id="CheckoutStarted:x", trigger=trigger,
                   entered_at=T0 - timedelta(hours=1))


@pytest.mark.parametrize(("run_checkout", "checkout_token", "cart_token", "recovered"), [
    ("chk_1", "chk_1", None, True),      # the order came from the reminded checkout
    ("cart_9", "chk_2", "cart_9", True),  # the run's checkout was named by its cart
    ("chk_1", "chk_2", "cart_2", False),  # another checkout: attributed, not a recovery
    ("chk_1", None, None, True),          # the order names no checkout: the reminder's run decides
    (None, "chk_2", None, True),          # the run's checkout is unnamed
])
def test_a_recovered_checkout_is_an_order_from_the_reminded_checkout(
        run_checkout: str | None, checkout_token: str | None, cart_token: str | None, recovered: bool) -> None:
    world = World()
    world.runs.create_run(_checkout_run(run_checkout))
    world.send(message(events={OPENED: T0}))
    outcome = world.service.on_order_placed(placed(at=T0 + timedelta(hours=2), checkout_token=checkout_token,
                                                   cart_token=cart_token))
    assert outcome.attribution is not None and outcome.attribution.recovered_checkout is recovered
    assert world.totals().get("recovered", Decimal(0)) == (1 if recovered else 0)
    assert world.totals()["converted"] == 1


def test_an_order_credited_to_another_flows_message_is_no_recovered_checkout() -> None:
    assert not is_recovered_checkout(message(trigger_type="SegmentEntered"), {"checkout_id": "c"}, "c", None)
    world = World()
    world.send(message(events={CLICKED: T0}, trigger_type="OrderFulfilled"))
    outcome = world.service.on_order_placed(placed(at=T0 + timedelta(hours=1)))
    assert outcome.attribution is not None and not outcome.attribution.recovered_checkout
    assert "recovered" not in world.totals()


# --- the reporting currency ------------------------------------------------------------------------------

EUR_TO_USD = CurrencySettings(workspace_id=WS, reporting_currency="USD", rates={"EUR": Decimal("1.10")}, version=1)


def test_an_order_in_another_currency_is_attributed_at_the_workspaces_rate() -> None:
    world = World(currency=EUR_TO_USD)
    world.send(message(events={CLICKED: T0}))
    outcome = world.service.on_order_placed(placed(at=T0 + timedelta(hours=1), total="50.00", currency="EUR"))
    held = outcome.attribution
    assert held is not None
    assert (held.revenue, held.currency, held.order_revenue, held.order_currency) == (
        Decimal("55.00"), "USD", Decimal("50.00"), "EUR")
    world.service.on_order_refunded(refunded(amount="50.00", currency="EUR"))
    assert world.totals()["revenue"] == Decimal("0.00")  # a full refund takes off exactly what was added


def test_an_order_in_a_currency_without_a_rate_converts_without_revenue() -> None:
    world = World(currency=EUR_TO_USD)
    world.send(message(events={CLICKED: T0}))
    outcome = world.service.on_order_placed(placed(at=T0 + timedelta(hours=1), total="50.00", currency="GBP"))
    assert outcome.attribution is not None and outcome.attribution.rate is None
    assert world.totals() == {"converted": Decimal(1), "revenue": Decimal("0.00"), "recovered": Decimal(1),
                              "recovered_revenue": Decimal("0.00")}
    world.service.on_order_refunded(refunded(amount="10.00", currency="GBP"))
    assert world.totals()["revenue"] == Decimal("0.00")


def test_without_currency_settings_the_order_reports_in_its_own_currency() -> None:
    converted = in_reporting_currency(Decimal("19.999"), "CAD", None)
    assert (converted.amount, converted.currency, converted.rate) == (Decimal("20.00"), "CAD", Decimal(1))
    rounded = in_reporting_currency(Decimal("10.00"), "EUR", EUR_TO_USD.model_copy(
        update={"rates": {"EUR": Decimal("1.0825")}}))
    assert rounded.amount == Decimal("10.82")  # banker's rounding of 10.825, as crm.reporting


# --- never twice, whatever the order and repetition of deliveries ------------------------------------------

KINDS = {"email": (CLICKED, OPENED), "sms": (CLICKED, DELIVERED)}
WINDOW = {("email", CLICKED): DEFAULT.email_click, ("email", OPENED): DEFAULT.email_open,
          ("sms", CLICKED): DEFAULT.sms_click, ("sms", DELIVERED): DEFAULT.sms_delivery}
STRENGTH = {CLICKED: 2, OPENED: 1, DELIVERED: 0}


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[MessageRecord], list[tuple[str, datetime, Decimal]],
                                        list[tuple[str, str, Decimal]]]:
    hours = st.integers(min_value=0, max_value=24 * 12)
    messages = []
    for index in range(draw(st.integers(min_value=0, max_value=5))):
        channel: MessageChannel = draw(st.sampled_from(["email", "sms"]))
        sent = T0 + timedelta(hours=draw(hours))
        events = {kind: sent + timedelta(hours=draw(st.integers(min_value=0, max_value=48)))
                  for kind in KINDS[channel] if draw(st.booleans())}
        messages.append(message(f"m{index}", channel=channel, sent_at=sent, events=events,
                                step_id=draw(st.sampled_from(["email_1", "email_2", "sms_1"])),
                                variant=draw(st.sampled_from([None, "split:1", "split:2"]))))
    orders = [(f"o{index}", T0 + timedelta(hours=draw(hours)), Decimal(draw(st.integers(1, 50_000))) / 100)
              for index in range(draw(st.integers(min_value=1, max_value=6)))]
    refunds = [(order_id, f"r{index}", Decimal(draw(st.integers(1, 30_000))) / 100)
               for index in range(draw(st.integers(min_value=0, max_value=5)))
               for order_id in [draw(st.sampled_from([o for o, _, _ in orders]))]]
    return messages, orders, refunds


def _expected_touch(messages: list[MessageRecord], ordered_at: datetime) -> MessageRecord | None:
    """Written apart from the rule: every (time, strength, id) that falls within its window, the greatest."""
    best: tuple[datetime, int, str] | None = None
    chosen = None
    for held in messages:
        for kind, at in held.events.items():
            if at <= ordered_at <= at + WINDOW[(held.channel, kind)]:
                key = (at, STRENGTH[kind], held.message_id)
                if best is None or key > best:
                    best, chosen = key, held
    return chosen


@settings(max_examples=150, deadline=None)
@given(history=histories(), data=st.data())
def test_each_order_is_attributed_at_most_once_whatever_the_deliveries(
        history: tuple[list[MessageRecord], list[tuple[str, datetime, Decimal]], list[tuple[str, str, Decimal]]],
        data: st.DataObject) -> None:
    messages, orders, refunds = history
    world = World()
    # SES's events arrive in any order and some twice; only the first of each type per message is kept.
    for held in messages:
        world.ledger.record_sent(held.model_copy(update={"events": {}}))
    deliveries = [(held, kind, at) for held in messages for kind, at in held.events.items()]
    deliveries += data.draw(st.lists(st.sampled_from(deliveries), max_size=4)) if deliveries else []
    for held, kind, at in data.draw(st.permutations(deliveries)):
        world.ledger.note_event(held, MessageEvent(message_id=held.message_id, type=kind, at=at))
    # Orders arrive in any order, some twice; a refund after its order, some twice.
    placements = [placed(order_id, at=at, total=str(total)) for order_id, at, total in orders]
    placements += data.draw(st.lists(st.sampled_from(placements), max_size=4))
    for event in data.draw(st.permutations(placements)):
        world.service.on_order_placed(event)
    repeated = refunds + data.draw(st.lists(st.sampled_from(refunds), max_size=3)) if refunds else []
    for order_id, refund_id, amount in data.draw(st.permutations(repeated)):
        world.service.on_order_refunded(refunded(order_id, refund_id, str(amount)))

    expected_revenue = Decimal(0)
    attributed = 0
    for order_id, at, total in orders:
        expected = _expected_touch(messages, at)
        held = world.attributions.get(WS, STORE, order_id)
        assert (held.message_id if held else None) == (expected.message_id if expected else None)
        if held is not None:
            attributed += 1
            taken = sum({r: a for o, r, a in refunds if o == order_id}.values(), Decimal(0))
            assert held.refunded == min(taken, total)
            expected_revenue += max(total - taken, Decimal(0))
    totals = world.totals()
    assert totals.get("converted", Decimal(0)) == attributed
    assert totals.get("revenue", Decimal(0)) == expected_revenue
    step_rows = sum(counts.get("converted", Decimal(0)) for (_, _, _, step, _), counts
                    in world.counters.items.items() if step != ALL_STEPS)
    assert step_rows == attributed  # each conversion on exactly one step row
    assert len(world.profiles.timelines.get((WS, PROFILE), {})) == attributed


# --- the windows a workspace sets (PUT /settings/messaging) -------------------------------------------------

@pytest.mark.parametrize(("windows", "refusal"), [
    ({"email_open": "P91D"}, "attribution.email_open: Input should be less than or equal to 90 days"),
    ({"sms_click": "-PT1H"}, "attribution.sms_click: Input should be greater than or equal to 0 seconds"),
    ({"email_click": "soon"}, "attribution.email_click: Input should be a valid timedelta"),
    ({"sms_delivery": "P1D", "web_click": "P1D"}, "attribution.web_click: Extra inputs are not permitted"),
])
def test_windows_out_of_bounds_are_refused_naming_the_field(windows: dict[str, str], refusal: str) -> None:
    with pytest.raises(DefinitionInvalid) as refused:
        parse_settings({"attribution": windows})
    assert str(refused.value).startswith(refusal)


def test_windows_are_iso_durations_and_zero_turns_a_touch_off() -> None:
    held = parse_settings({"attribution": {"email_open": "PT12H", "sms_delivery": "P0D"}}).attribution
    assert held == AttributionWindows(email_open=timedelta(hours=12), sms_delivery=timedelta(0))
    delivered = message(channel="sms", events={DELIVERED: T0})
    assert last_touch([delivered], T0 + timedelta(seconds=1), held) is None
    assert last_touch([delivered], T0, held) is None  # not even at the order's very instant


def test_the_docs_example_sets_the_windows_it_says() -> None:
    doc = (ROOT / "docs" / "attribution.md").read_text()
    [example] = re.findall(r"```json\n(.*?)```", doc, re.DOTALL)
    held = parse_settings(json.loads(example)).attribution
    assert held == AttributionWindows(email_open=timedelta(hours=12), sms_delivery=timedelta(0))
    assert "attribution.email_open: Input should be less than or equal to 90 days" in doc


# --- merges ----------------------------------------------------------------------------------------------

def test_messages_sent_to_a_profile_merged_into_the_buyer_count() -> None:
    world = World()
    survivor = "s" * 32
    world.profiles.profiles[(WS, survivor)] = new_profile(WS, survivor, T0).model_copy(
        update={"merged_from": (PROFILE,)})
    world.profiles.profiles[(WS, PROFILE)] = new_profile(WS, PROFILE, T0).model_copy(
        update={"merged_into": survivor})
    world.runs.create_run(_checkout_run("chk_1").model_copy(update={"profile_id": survivor}))  # moved by the merge
    world.send(message(events={CLICKED: T0}))  # sent before the merge, to the merged profile
    order = placed(at=T0 + timedelta(hours=1), checkout_token="chk_2").model_copy(update={"profile_id": survivor})
    outcome = world.service.on_order_placed(order)
    assert outcome.attribution is not None and outcome.attribution.message_id == "m1"
    assert not outcome.attribution.recovered_checkout  # the moved run was found: its checkout is another
    [line] = world.profiles.timelines[(WS, survivor)].values()
    assert line.type == ORDER_ATTRIBUTED
    # An order event naming the merged profile (placed before the merge) is credited once all the same.
    again = placed(at=T0 + timedelta(hours=1), checkout_token="chk_2")
    assert world.service.on_order_placed(again).ignored == "attributed before"
