"""The flows part of `make demo`: the simulated shoppers' fates, what each must receive (computed from the
fate alone), and that what they send reads, through the real Shopify connector, as the expectations assume."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from crm.connectors.shopify import SHOPIFY as SHOPIFY_CONNECTOR
from crm.models.canonical import ActivityEvent, CustomerRecord
from crm.models.consent import Channel, ConsentState
from crm.models.flows import FlowRun, StepOutcome, StepRecord
from crm.models.orders import CanonicalOrder
from crm_local.demo_flows import FlowsOutcome, SentEmail, check, sent_email, step_templates
from crm_local.outbound import parse_raw
from crm_local.simulation import (
    ABANDONED_CHECKOUT,
    FIRST_REMINDER_AFTER,
    REMINDERS,
    SECOND_REMINDER_AFTER,
    SIMULATOR,
    UNSUBSCRIBE_AT,
    Fate,
    FlowAction,
    FlowShopper,
    FlowSimulation,
    TrackBatch,
    Webhook,
    simulate_flows,
)

from tests.builders import envelope
from tests.fakes import FakeStoreDirectory

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def flows() -> FlowSimulation:
    return simulate_flows(60, seed=7, t0=T0)


def mapped(message: Webhook) -> list[object]:
    return list(SHOPIFY_CONNECTOR.events(envelope(None, topic=message.topic, delivery_id=message.delivery_id),
                                         message.body, FakeStoreDirectory()))


def test_the_simulation_is_deterministic() -> None:
    one, two = simulate_flows(40, seed=3, t0=T0), simulate_flows(40, seed=3, t0=T0)
    assert one.shoppers == two.shoppers
    assert [(a.at, a.kind, a.message) for a in one.actions] == [(a.at, a.kind, a.message) for a in two.actions]
    assert simulate_flows(40, seed=4, t0=T0).shoppers != one.shoppers


def test_every_fate_is_played_and_every_shopper_is_distinct(flows: FlowSimulation) -> None:
    assert {s.fate for s in flows.shoppers} == set(Fate.ALL)
    assert len({s.email for s in flows.shoppers}) == len(flows.shoppers)
    assert len({s.checkout_token for s in flows.shoppers if s.checkout_token}) == flows.runs_expected()


def test_reminders_expected_follow_from_the_fate_alone(flows: FlowSimulation) -> None:
    expected = flows.expected_reminders()
    for shopper in flows.shoppers:
        if shopper.fate == Fate.BROWSES:
            assert shopper.email not in expected
            continue
        got = expected[shopper.email]
        if not shopper.consents or shopper.fate == Fate.ORDERS_SOON:
            assert got == ()
        elif shopper.fate == Fate.ABANDONS:
            assert got == REMINDERS
        else:  # ordered after the first, unsubscribed from it, or bounced / complained about it
            assert got == REMINDERS[:1]
    # The three checks of the issue each have shoppers to bite on.
    assert any(r == REMINDERS for r in expected.values())
    assert any(s.fate == Fate.ORDERS_SOON and s.consents for s in flows.shoppers)
    assert all(s.consents for s in flows.shoppers if s.fate in (Fate.UNSUBSCRIBES, Fate.BOUNCES, Fate.COMPLAINS))


def test_orders_fall_where_their_fate_says(flows: FlowSimulation) -> None:
    for shopper in flows.shoppers:
        if shopper.fate == Fate.ORDERS_SOON:
            assert shopper.order_at is not None and shopper.order_at < FIRST_REMINDER_AFTER - shopper.checkout_lead
        elif shopper.fate == Fate.ORDERS_LATER:
            assert shopper.order_at is not None
            assert FIRST_REMINDER_AFTER < shopper.order_at < SECOND_REMINDER_AFTER - shopper.checkout_lead
        else:
            assert shopper.order_at is None


def test_bouncing_shoppers_use_the_mailbox_simulator_with_distinct_labels(flows: FlowSimulation) -> None:
    for shopper in flows.shoppers:
        local, _, domain = shopper.email.partition("@")
        if shopper.fate == Fate.BOUNCES:
            assert (domain, local.split("+")[0]) == (SIMULATOR, "bounce")
        elif shopper.fate == Fate.COMPLAINS:
            assert (domain, local.split("+")[0]) == (SIMULATOR, "complaint")
        else:
            assert domain != SIMULATOR
        if shopper.bounces:
            assert shopper.silenced_at == FIRST_REMINDER_AFTER - shopper.checkout_lead
    assert flows.shoppers[0].silenced_at is None or flows.shoppers[0].fate != Fate.ABANDONS


def test_the_clock_stops_at_every_action_and_past_every_reminder(flows: FlowSimulation) -> None:
    stops = flows.checkpoints()
    assert stops == sorted(set(stops)) and stops[-1] == timedelta(days=30)
    assert {a.at for a in flows.actions if a.at > timedelta(0)} <= set(stops)
    latest_checkout = max(s.checkout_lead for s in flows.shoppers)
    assert any(FIRST_REMINDER_AFTER <= s < UNSUBSCRIBE_AT for s in stops)
    assert any(SECOND_REMINDER_AFTER + latest_checkout <= s <= SECOND_REMINDER_AFTER + timedelta(hours=1)
               for s in stops)
    # Batches, not a stop per shopper: the demo's wall time depends on it.
    assert len(stops) <= 16


def test_actions_are_in_time_order_and_unsubscribes_follow_the_first_reminder(flows: FlowSimulation) -> None:
    assert [a.at for a in flows.actions] == sorted(a.at for a in flows.actions)
    unsubscribes = [a for a in flows.actions if a.kind == "unsubscribe"]
    assert {a.shopper.email for a in unsubscribes} == {s.email for s in flows.shoppers if s.fate == Fate.UNSUBSCRIBES}
    assert all(FIRST_REMINDER_AFTER < a.at < SECOND_REMINDER_AFTER - timedelta(hours=1) for a in unsubscribes)


def test_a_duplicated_checkout_is_the_same_delivery_twice(flows: FlowSimulation) -> None:
    deliveries = Counter(a.message for a in flows.actions if isinstance(a.message, Webhook)
                         and a.message.topic == "checkouts/create")
    for shopper in flows.shoppers:
        mine = [m for m in deliveries if isinstance(m, Webhook) and shopper.checkout_token
                and shopper.checkout_token.encode() in m.body]
        if shopper.checkout_token:
            assert len(mine) == 1 and deliveries[mine[0]] == (2 if shopper.duplicated else 1)
    assert any(s.duplicated for s in flows.shoppers)


def test_consent_is_stated_before_the_flows_go_live_and_never_after(flows: FlowSimulation) -> None:
    """A consent change while flows are live would start the welcome flow, whose email Smart Sending would
    weigh against the reminders: so the checkouts and orders state nothing about consent."""
    stated: dict[str, ConsentState] = {}
    for message in flows.before_live:
        if isinstance(message, Webhook) and message.topic == "customers/create":
            [record] = mapped(message)
            assert isinstance(record, CustomerRecord) and record.email
            [consent] = [c for c in record.consents if c.channel == Channel.EMAIL]
            stated[record.email] = consent.state
    for shopper in flows.shoppers:
        if shopper.customer_id is not None:
            assert stated[shopper.email] == (ConsentState.SUBSCRIBED if shopper.consents
                                             else ConsentState.NOT_SUBSCRIBED)
        else:
            assert not shopper.consents or shopper.email not in stated
    for action in flows.actions:
        if isinstance(action.message, Webhook):
            for event in mapped(action.message):
                consents = getattr(event, "consents", ())
                assert consents == (), f"{action.message.topic} states consent"


def test_guests_who_consent_have_an_account_to_hold_it(flows: FlowSimulation) -> None:
    assert all(s.customer_id is not None for s in flows.shoppers if s.consents)


def test_checkouts_carry_the_cart_and_the_recovery_link(flows: FlowSimulation) -> None:
    for action in flows.actions:
        if isinstance(action.message, Webhook) and action.message.topic == "checkouts/create":
            [event] = mapped(action.message)
            assert isinstance(event, ActivityEvent)
            shopper = action.shopper
            assert event.email == shopper.email and event.checkout_token == shopper.checkout_token
            assert event.url and shopper.checkout_token and shopper.checkout_token in event.url
            assert event.value == shopper.value
            assert event.occurred_at == T0 - shopper.checkout_lead
            assert len(event.products) == len(shopper.items)


def test_orders_name_the_checkout_and_browsers_are_tied_by_a_signed_order(flows: FlowSimulation) -> None:
    for action in flows.actions:
        if isinstance(action.message, Webhook) and action.message.topic == "orders/create":
            [order] = mapped(action.message)
            assert isinstance(order, CanonicalOrder) and order.email == action.shopper.email
            assert order.created_at == T0 + action.at and order.paid
            assert order.checkout_token == action.shopper.checkout_token
    browsers = [s for s in flows.shoppers if s.fate == Fate.BROWSES]
    for shopper in browsers:
        ties = [m for m in flows.before_live if isinstance(m, Webhook) and m.topic == "orders/create"
                and shopper.anonymous_id and shopper.anonymous_id.encode() in m.body]
        assert len(ties) == 1
        [order] = mapped(ties[0])
        assert isinstance(order, CanonicalOrder) and order.anonymous_id == shopper.anonymous_id
        [views] = [a for a in flows.actions if a.shopper == shopper and a.kind == "track"]
        assert isinstance(views.message, TrackBatch) and views.message.anonymous_id == shopper.anonymous_id
        assert {e["type"] for e in views.message.events} == {"product_viewed"}
        assert all(datetime.fromisoformat(e["occurred_at"]) <= T0 for e in views.message.events)


def test_nothing_is_due_after_a_shopper_is_silenced() -> None:
    """The rule the demo checks, on the simulation's own terms: an unsubscribed or bounced address may only
    get what was due before it was silenced."""
    flows = simulate_flows(120, seed=11, t0=T0)
    for shopper in flows.shoppers:
        if shopper.silenced_at is None:
            continue
        due = {REMINDERS[0]: FIRST_REMINDER_AFTER - shopper.checkout_lead,
               REMINDERS[1]: SECOND_REMINDER_AFTER - shopper.checkout_lead}
        assert all(due[r] <= shopper.silenced_at for r in shopper.expected_reminders())
        assert all(due[r] > shopper.silenced_at for r in set(REMINDERS) - set(shopper.expected_reminders()))


def test_an_action_is_plain_data() -> None:
    flows = simulate_flows(10, seed=1, t0=T0)
    assert all(isinstance(a, FlowAction) for a in flows.actions)
    assert all(a.message is None for a in flows.actions if a.kind == "unsubscribe")


# --- what the demo reads back and checks ------------------------------------------------------------------------


def test_a_sent_message_gives_its_recipient_one_click_link_and_flow() -> None:
    raw = ("From: Demo <hello@demo.example>\r\nTo: Ada <Ada@Example.com>\r\nSubject: You left something\r\n"
           "List-Unsubscribe: <mailto:u@demo.example?subject=x>, <http://127.0.0.1:8000/unsubscribe/tok.sig>\r\n"
           "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain\r\n\r\nhello\r\n")
    record = parse_raw({"id": "m-1", "raw_data": raw, "destinations": ["Ada@Example.com"],
                        "tags": {"flow": ABANDONED_CHECKOUT, "step": "email_1"}, "sent_at": T0.isoformat()})
    assert sent_email(record) == SentEmail("m-1", ("ada@example.com",), "You left something",
                                           "http://127.0.0.1:8000/unsubscribe/tok.sig", "List-Unsubscribe=One-Click",
                                           T0, ABANDONED_CHECKOUT, "email_1")


def test_step_templates_walk_split_paths() -> None:
    definition = {"steps": [{"kind": "delay", "id": "wait"}, {"kind": "email", "id": "e1", "template_id": "t1"},
                            {"kind": "random", "id": "ab", "paths": [
                                {"weight": 50, "steps": [{"kind": "email", "id": "a", "template_id": "ta"}]},
                                {"weight": 50, "steps": [{"kind": "sms", "id": "b", "template_id": "tb"}]}]}]}
    assert step_templates(definition) == {"e1": "t1", "a": "ta", "b": "tb"}


def _run(shopper: FlowShopper, sends: list[tuple[str, datetime]], flow_id: str = ABANDONED_CHECKOUT) -> FlowRun:
    return FlowRun(workspace_id="ws", flow_id=flow_id, flow_version=1, run_id=f"r-{shopper.index}",
                   profile_id=f"p-{shopper.index}", trigger_type="CheckoutStarted", trigger_event_id="e",
                   trigger={}, entered_at=T0,
                   steps=tuple(StepRecord(step_id=step, outcome=StepOutcome.SENT, at=at, channel="email",
                                          message_id=f"{shopper.email}|{step}") for step, at in sends))


def _outcome(flows: FlowSimulation, sends: dict[str, list[tuple[str, datetime]]]) -> FlowsOutcome:
    runs = [_run(s, sends.get(s.email, [])) for s in flows.shoppers if s.checkout_token]
    emails = [SentEmail(f"{address}|{step}", (address,), step, None, None)
              for address, steps in sends.items() for step, _ in steps]
    sent_by = {e.message_id: (ABANDONED_CHECKOUT if e.subject in REMINDERS else "builtin:welcome", e.subject)
               for e in emails}
    sent_at = {f"{address}|{step}": at for address, steps in sends.items() for step, at in steps}
    unsubscribed = {s.email: 200 for s in flows.shoppers if s.fate == Fate.UNSUBSCRIBES}
    return FlowsOutcome(emails, sent_at, sent_by, runs, unsubscribed)


def _as_expected(flows: FlowSimulation) -> dict[str, list[tuple[str, datetime]]]:
    due = {REMINDERS[0]: FIRST_REMINDER_AFTER, REMINDERS[1]: SECOND_REMINDER_AFTER}
    return {s.email: [(r, T0 + due[r] - s.checkout_lead) for r in s.expected_reminders()] for s in flows.shoppers
            if s.expected_reminders()}


def test_the_checks_pass_on_what_the_simulation_expects(flows: FlowSimulation) -> None:
    assert check(flows, _outcome(flows, _as_expected(flows)), T0) == []


def test_the_checks_catch_a_missing_reminder_a_reminder_after_an_early_order_and_a_send_after_silence(
        flows: FlowSimulation) -> None:
    sends = _as_expected(flows)
    abandoner = next(s for s in flows.shoppers if s.expected_reminders() == REMINDERS)
    sends[abandoner.email] = sends[abandoner.email][:1]
    early = next(s for s in flows.shoppers if s.fate == Fate.ORDERS_SOON)
    sends[early.email] = [(REMINDERS[0], T0 + FIRST_REMINDER_AFTER)]
    bounced = next(s for s in flows.shoppers if s.fate == Fate.BOUNCES)
    sends[bounced.email] = [*sends[bounced.email], ("builtin:welcome_1", T0 + timedelta(days=2))]
    wrong = check(flows, _outcome(flows, sends), T0)
    assert len(wrong) == 3
    assert any(abandoner.email in w for w in wrong) and any(early.email in w for w in wrong)
    assert any(bounced.email in w and "after being silenced" in w for w in wrong)


def test_the_checks_catch_a_second_run_for_a_duplicated_checkout(flows: FlowSimulation) -> None:
    outcome = _outcome(flows, _as_expected(flows))
    duplicated = next(s for s in flows.shoppers if s.duplicated)
    outcome.runs.append(_run(duplicated, []).model_copy(update={"run_id": "again"}))
    assert [w for w in check(flows, outcome, T0) if "runs" in w]


def test_the_simulations_reminders_are_the_builtin_flows() -> None:
    """The simulation states its expectations on its own; this keeps its constants those of the built-in flow
    it checks (template ids, 4 h after entry, 24 h after the checkout)."""
    from crm.flows.builtin import ABANDONED_CHECKOUT as BUILTIN_ID
    from crm.flows.builtin import BUILTIN_FLOWS
    from crm.models.flows import Delay, SendEmail

    assert BUILTIN_ID == ABANDONED_CHECKOUT
    steps = BUILTIN_FLOWS[ABANDONED_CHECKOUT].steps
    assert tuple(s.template_id for s in steps if isinstance(s, SendEmail)) == REMINDERS
    delays = [s for s in steps if isinstance(s, Delay)]
    assert delays[0].duration == FIRST_REMINDER_AFTER
    assert delays[1].until is not None and delays[1].until.property == "trigger.occurred_at"
    assert delays[1].until.offset == SECOND_REMINDER_AFTER
