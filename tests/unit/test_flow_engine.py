"""The flow engine's decisions (crm.flows.engine): entry, re-entry, exits, steps and the checks before a send."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crm.flows import builtin
from crm.flows.definition import parse_flow
from crm.flows.engine import (
    Complete,
    Decision,
    Exit,
    FlowEvent,
    Proceed,
    Refusal,
    Send,
    SendFacts,
    Tag,
    Wait,
    WaitFor,
    apply,
    decide,
    enter,
    exit_from_profile,
    last_send,
    on_event,
    random_path,
    send_step,
)
from crm.flows.timing import in_quiet_hours, shopper_zone
from crm.models.canonical import ActivityType
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.flows import (
    FlowDefinition,
    FlowRecord,
    FlowRun,
    FlowStatus,
    RandomSplit,
    RunStatus,
    SkipReason,
    StepOutcome,
    StepRecord,
    run_id_for,
)
from crm.models.messaging import MessagingSettings
from crm.models.profile import Activity, Profile, new_profile
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)  # 10:00 in New York
HOUR = timedelta(hours=1)
SETTINGS = MessagingSettings(time_zone="America/New_York")
NO_FACTS = SendFacts()


def consent(channel: str, state: ConsentState = ConsentState.SUBSCRIBED) -> Consent:
    return Consent(channel=Channel(channel), state=state, source="shopify:customers/update", at=T0 - 30 * 24 * HOUR)


def shopper(**fields: Any) -> Profile:
    base = new_profile("w1", "p1", T0 - 60 * 24 * HOUR).model_copy(update={
        "email": "ada@example.com", "phone": "+12125550123", "consents": {"email": consent("email"),
                                                                          "sms": consent("sms")}})
    return base.model_copy(update=fields)


def live(flow_id: str, definition: FlowDefinition | None = None) -> FlowRecord:
    return FlowRecord(workspace_id="w1", flow_id=flow_id, status=FlowStatus.LIVE, version=3,
                      definition=definition or builtin.BUILTIN_FLOWS[flow_id], created_at=T0, updated_at=T0)


def event(event_type: str, event_id: str = "e1", at: datetime = T0, **detail: Any) -> FlowEvent:
    return FlowEvent.of(event_type, {"event_id": event_id, "workspace_id": "w1", "profile_id": "p1",
                                     "occurred_at": at.isoformat(), "type": event_type, **detail})


def checkout(event_id: str = "e1", at: datetime = T0, checkout_id: str = "c1", **detail: Any) -> FlowEvent:
    return event("CheckoutStarted", event_id, at, store_id="s1", checkout_id=checkout_id,
                 items=[{"title": "Mug", "quantity": 1, "price": "12.00"}], **detail)


def started(flow: FlowRecord, trigger: FlowEvent, profile: Profile | None = None,
            previous: list[FlowRun] | None = None) -> FlowRun:
    entry = enter(flow, trigger, profile or shopper(), previous or [], trigger.occurred_at)
    assert entry.run is not None, entry.refusal
    return entry.run


def step_on(definition: FlowDefinition, run: FlowRun, profile: Profile, now: datetime,
            facts: SendFacts = NO_FACTS, settings_: MessagingSettings = SETTINGS) -> tuple[FlowRun, list[Decision]]:
    """What the service does at a wake-up: decide and apply until the run sleeps or ends."""
    decisions = []
    while run.status is RunStatus.ACTIVE:
        decision = decide(definition, run, profile, now, settings=settings_, facts=facts)
        decisions.append(decision)
        message_id = f"m-{decision.action.step_id}" if isinstance(decision.action, Send) else None
        run = apply(run, decision, now, message_id=message_id)
        if decision.pauses:
            break
    return run, decisions


def sends(run: FlowRun) -> list[str]:
    return [record.step_id for record in run.steps if record.outcome is StepOutcome.SENT]


# --- entry ---------------------------------------------------------------------------------------------


def test_a_checkout_starts_one_run_named_by_its_trigger() -> None:
    run = started(live(builtin.ABANDONED_CHECKOUT), checkout())
    assert run.run_id == run_id_for(builtin.ABANDONED_CHECKOUT, "e1")
    assert (run.flow_version, run.profile_id, run.next_step, run.entered_at) == (3, "p1", "wait_4h", T0)
    assert run.trigger["checkout_id"] == "c1" and run.trigger["items"][0]["title"] == "Mug"


def test_a_duplicated_trigger_is_refused_as_such() -> None:
    flow = live(builtin.ABANDONED_CHECKOUT)
    run = started(flow, checkout())
    assert enter(flow, checkout(), shopper(), [run], T0 + HOUR).refusal is Refusal.DUPLICATE


@pytest.mark.parametrize(("flow", "trigger", "profile", "refusal"), [
    (live(builtin.ABANDONED_CHECKOUT).model_copy(update={"status": FlowStatus.DRAFT}), checkout(), shopper(),
     Refusal.NOT_LIVE),
    (live(builtin.ABANDONED_CHECKOUT), event("ProductViewed", store_id="s1", product={"title": "Mug"}), shopper(),
     Refusal.NOT_TRIGGER),
    (live(builtin.POST_PURCHASE), event("OrderPlaced", store_id="s1", order_id="o1", currency="GBP",
                                        total_price="10", net_total="10", paid=False), shopper(), Refusal.NOT_TRIGGER),
    (live(builtin.WIN_BACK), event("SegmentEntered", segment_id="builtin:vip"), shopper(), Refusal.NOT_TRIGGER),
    (live(builtin.ABANDONED_CHECKOUT), checkout(), shopper(email=None), Refusal.FILTER),
    (live(builtin.ABANDONED_CHECKOUT), checkout(), shopper(merged_into="p2"), Refusal.MERGED),
])
def test_what_does_not_start_a_run(flow: FlowRecord, trigger: FlowEvent, profile: Profile, refusal: Refusal) -> None:
    entry = enter(flow, trigger, profile, [], T0)
    assert entry.run is None and entry.refusal is refusal


def test_segment_triggers() -> None:
    churn = event("SegmentEntered", segment_id="builtin:churn_risk")
    assert started(live(builtin.WIN_BACK), churn).next_step == "email"
    leaving = live("left_vip", parse_flow({
        "name": "left", "trigger": {"kind": "segment", "segment_id": "builtin:vip", "on": "exited"},
        "reentry": {"mode": "every_time"}, "steps": [{"kind": "tag", "id": "t", "tag": "ex-vip"}]}))
    assert enter(leaving, event("SegmentEntered", segment_id="builtin:vip"), shopper(), [], T0).refusal is (
        Refusal.NOT_TRIGGER)
    assert enter(leaving, event("SegmentExited", segment_id="builtin:vip", entered_at=T0.isoformat()), shopper(), [],
                 T0).run is not None


def test_the_welcome_starts_on_email_consent_granted_only() -> None:
    flow = live(builtin.WELCOME)
    granted = event("ConsentChanged", channel="email", old_state=None, new_state="subscribed", source="s")
    assert enter(flow, granted, shopper(), [], T0).run is not None
    sms = event("ConsentChanged", channel="sms", old_state=None, new_state="subscribed", source="s")
    assert enter(flow, sms, shopper(), [], T0).refusal is Refusal.NOT_TRIGGER


def _previous(flow_id: str, entered: datetime, **fields: Any) -> FlowRun:
    return FlowRun(workspace_id="w1", flow_id=flow_id, flow_version=1, run_id=f"old-{entered.isoformat()}",
                   profile_id="p1", trigger_type="CheckoutStarted", trigger_event_id="old", entered_at=entered,
                   trigger={"occurred_at": entered.isoformat(), "checkout_id": "c0"}, **fields)


def test_the_same_order_sent_again_under_another_event_id_starts_no_second_run() -> None:
    flow = live(builtin.POST_PURCHASE)  # entered every time: once per order
    first = started(flow, order("e-1", T0, "o1"))
    assert enter(flow, order("e-2", T0 + HOUR, "o1"), shopper(), [first], T0 + HOUR).refusal is Refusal.DUPLICATE
    assert enter(flow, order("e-3", T0 + HOUR, "o2"), shopper(), [first], T0 + HOUR).run is not None


def test_once_per_days_counts_from_the_last_entry() -> None:
    flow = live(builtin.ABANDONED_CHECKOUT)  # once per 7 days
    done = {"status": RunStatus.COMPLETED}
    recent = _previous(flow.flow_id, T0 - 6 * 24 * HOUR, **done)
    assert enter(flow, checkout(), shopper(), [recent], T0).refusal is Refusal.REENTRY
    assert enter(flow, checkout(), shopper(), [_previous(flow.flow_id, T0 - 8 * 24 * HOUR, **done)], T0).run


def test_once_and_every_time() -> None:
    long_ago = _previous(builtin.VIP, T0 - 900 * 24 * HOUR, status=RunStatus.COMPLETED)
    assert enter(live(builtin.VIP), event("SegmentEntered", segment_id="builtin:vip"), shopper(), [long_ago],
                 T0).refusal is Refusal.REENTRY
    order = event("OrderPlaced", store_id="s1", order_id="o2", currency="GBP", total_price="10", net_total="10",
                  paid=True)
    yesterday = _previous(builtin.POST_PURCHASE, T0 - 24 * HOUR)
    assert enter(live(builtin.POST_PURCHASE), order, shopper(), [yesterday], T0).run is not None


def test_a_run_superseded_before_it_sent_does_not_block_the_newer_checkout() -> None:
    flow = live(builtin.ABANDONED_CHECKOUT)
    superseded = _previous(flow.flow_id, T0 - HOUR, status=RunStatus.EXITED, exit_reason="superseded")
    assert enter(flow, checkout(), shopper(), [superseded], T0).run is not None


def test_a_superseded_run_that_had_sent_still_counts() -> None:
    flow = live(builtin.ABANDONED_CHECKOUT)
    sent = StepRecord(step_id="email_1", outcome=StepOutcome.SENT, at=T0 - HOUR, channel="email", message_id="m")
    superseded = _previous(flow.flow_id, T0 - 5 * HOUR, status=RunStatus.EXITED, exit_reason="superseded",
                           steps=(sent,))
    assert enter(flow, checkout(), shopper(), [superseded], T0).refusal is Refusal.REENTRY


def test_an_active_run_this_checkout_supersedes_does_not_block_it_whichever_is_handled_first() -> None:
    flow = live(builtin.ABANDONED_CHECKOUT)
    first = started(flow, checkout("e1", T0, "c1"))
    newer = checkout("e2", T0 + HOUR, "c2")
    assert enter(flow, newer, shopper(), [first], T0 + HOUR).run is not None
    # the same checkout sent again (a platform's update) is no newer checkout: the first run goes on
    again = checkout("e3", T0 + HOUR, "c1")
    assert enter(flow, again, shopper(), [first], T0 + HOUR).refusal is Refusal.DUPLICATE
    assert on_event(flow.definition, first, again, T0 + HOUR) is None


# --- events for a run ----------------------------------------------------------------------------------


def order(event_id: str = "o-e", at: datetime = T0 + HOUR, order_id: str = "o1", **detail: Any) -> FlowEvent:
    return event("OrderPlaced", event_id, at, store_id="s1", order_id=order_id, currency="GBP", total_price="10",
                 net_total="10", **{"paid": True, **detail})


def test_an_order_after_the_checkout_ends_the_run() -> None:
    flow = live(builtin.ABANDONED_CHECKOUT)
    run = started(flow, checkout())
    decision = on_event(flow.definition, run, order(), T0 + HOUR)
    assert decision is not None and decision.action == Exit("exit_event:OrderPlaced")
    ended = apply(run, decision, T0 + HOUR)
    assert (ended.status, ended.exit_reason, ended.ended_at, ended.next_step) == (
        RunStatus.EXITED, "exit_event:OrderPlaced", T0 + HOUR, None)
    assert on_event(flow.definition, ended, order("o-2"), T0 + 2 * HOUR) is None  # an ended run ignores events


def test_events_before_the_trigger_and_the_trigger_itself_do_nothing() -> None:
    flow = live(builtin.ABANDONED_CHECKOUT)
    run = started(flow, checkout())
    assert on_event(flow.definition, run, order(at=T0 - HOUR), T0 + HOUR) is None
    assert on_event(flow.definition, run, checkout(), T0 + HOUR) is None


def test_a_newer_checkout_supersedes_the_run() -> None:
    flow = live(builtin.ABANDONED_CHECKOUT)
    run = started(flow, checkout())
    decision = on_event(flow.definition, run, checkout("e2", T0 + HOUR, "c2"), T0 + HOUR)
    assert decision is not None and decision.action == Exit("superseded")


def test_the_fulfilment_of_the_trigger_order_ends_the_wait() -> None:
    flow = live(builtin.POST_PURCHASE)
    placed = order("o-e", T0, "o1", items=[{"title": "Mug"}])
    run, decisions = step_on(flow.definition, started(flow, placed), shopper(), T0)
    assert [type(d.action) for d in decisions] == [Send, WaitFor]
    assert (run.waiting_for, run.wake_at, run.next_step) == ("OrderFulfilled", T0 + 60 * 24 * HOUR, "fulfilled")
    other = event("OrderFulfilled", "f1", T0 + 24 * HOUR, store_id="s1", order_id="o0")
    assert on_event(flow.definition, run, other, T0 + 24 * HOUR) is None
    mine = event("OrderFulfilled", "f2", T0 + 48 * HOUR, store_id="s1", order_id="o1")
    decision = on_event(flow.definition, run, mine, T0 + 48 * HOUR)
    assert decision is not None and decision.action == Proceed("fulfilled") and decision.next_step == "wait_7d"
    run = apply(run, decision, T0 + 48 * HOUR)
    run, decisions = step_on(flow.definition, run, shopper(), T0 + 48 * HOUR)
    assert decisions[-1].action == Wait("wait_7d", T0 + 9 * 24 * HOUR)
    run, _ = step_on(flow.definition, run, shopper(), T0 + 9 * 24 * HOUR)
    assert sends(run) == ["thanks", "review"] and run.status is RunStatus.COMPLETED


def test_a_wait_for_that_times_out_exits_or_goes_on() -> None:
    flow = live(builtin.POST_PURCHASE)
    run, _ = step_on(flow.definition, started(flow, order("o-e", T0)), shopper(), T0)
    late = T0 + 60 * 24 * HOUR
    early = decide(flow.definition, run, shopper(), late - HOUR, settings=SETTINGS)
    assert early.action == WaitFor("fulfilled", "OrderFulfilled", late)
    assert decide(flow.definition, run, shopper(), late, settings=SETTINGS).action == Exit("wait_timeout")
    going_on = flow.definition.model_copy(update={"steps": (
        flow.definition.steps[0], flow.definition.steps[1].model_copy(update={"on_timeout": "continue"}),
        *flow.definition.steps[2:])})
    assert decide(going_on, run, shopper(), late, settings=SETTINGS).next_step == "wait_7d"


def test_the_profile_shows_an_order_the_bus_has_not_delivered_yet() -> None:
    flow = live(builtin.ABANDONED_CHECKOUT)
    run = started(flow, checkout())
    assert exit_from_profile(flow.definition, run, shopper(last_order_at=T0 - HOUR)) is None
    ordered = shopper(last_order_at=T0 + HOUR)
    assert exit_from_profile(flow.definition, run, ordered) == "exit_event:OrderPlaced"
    run, _ = step_on(flow.definition, run, ordered, T0)
    assert run.status is RunStatus.EXITED and run.steps == ()


def test_browse_abandonment_ends_on_a_later_checkout_the_profile_shows() -> None:
    flow = live(builtin.BROWSE_ABANDONMENT)
    run = started(flow, event("ProductViewed", store_id="s1", product={"title": "Mug"}))
    later = Activity(at=T0 + HOUR, event_id="x", type=ActivityType.CHECKOUT_STARTED.value)
    assert exit_from_profile(flow.definition, run, shopper(last_checkout=later)) == "exit_event:CheckoutStarted"
    viewed = Activity(at=T0 + HOUR, event_id="x", type=ActivityType.PRODUCT_VIEWED.value)
    assert exit_from_profile(flow.definition, run, shopper(last_browse=viewed)) is None  # no exit on views


# --- the abandoned checkout, step by step --------------------------------------------------------------


def test_the_abandoned_checkout_sends_at_4_hours_and_24_hours_after_the_checkout() -> None:
    flow = live(builtin.ABANDONED_CHECKOUT)
    definition, ada = flow.definition, shopper()
    run, decisions = step_on(definition, started(flow, checkout()), ada, T0)
    assert decisions[-1].action == Wait("wait_4h", T0 + 4 * HOUR) and run.wake_at == T0 + 4 * HOUR
    # a wake-up that comes early (a re-delivery) waits again for the same moment
    assert decide(definition, run, ada, T0 + HOUR, settings=SETTINGS).action == Wait("wait_4h", T0 + 4 * HOUR)
    run, decisions = step_on(definition, run, ada, T0 + 4 * HOUR)
    assert decisions[1].action == Send("email_1", "email", "builtin:abandoned_checkout_1", "ada@example.com")
    assert decisions[-1].action == Wait("wait_24h", T0 + 24 * HOUR)  # 24 h after the checkout, not after email 1
    sent = next(record for record in run.steps if record.step_id == "email_1")
    assert (sent.channel, sent.message_id, sent.at) == ("email", "m-email_1", T0 + 4 * HOUR)
    run, _ = step_on(definition, run, ada, T0 + 24 * HOUR, facts=SendFacts(last_sent=T0 + 4 * HOUR))
    assert sends(run) == ["email_1", "email_2"] and run.status is RunStatus.COMPLETED
    assert [record.step_id for record in run.steps] == ["wait_4h", "email_1", "wait_24h", "email_2"]


def test_a_late_wake_up_past_the_anchor_goes_straight_on() -> None:
    flow = live(builtin.ABANDONED_CHECKOUT)
    run, _ = step_on(flow.definition, started(flow, checkout()), shopper(), T0)
    run, _ = step_on(flow.definition, run, shopper(), T0 + 30 * HOUR)
    assert sends(run) == ["email_1", "email_2"]
    assert next(r for r in run.steps if r.step_id == "wait_24h").reason == "already_past"


def test_decide_refuses_to_check_a_send_without_its_facts() -> None:
    flow = live(builtin.WIN_BACK)
    run = started(flow, event("SegmentEntered", segment_id="builtin:churn_risk"))
    assert send_step(flow.definition, run) is not None
    with pytest.raises(ValueError, match="needs the SendFacts"):
        decide(flow.definition, run, shopper(), T0, settings=SETTINGS)


def test_apply_wants_the_message_id_of_a_send() -> None:
    flow = live(builtin.WIN_BACK)
    run = started(flow, event("SegmentEntered", segment_id="builtin:churn_risk"))
    decision = decide(flow.definition, run, shopper(), T0, settings=SETTINGS, facts=NO_FACTS)
    with pytest.raises(ValueError, match="message id"):
        apply(run, decision, T0)


def test_a_finished_run_has_nothing_to_decide() -> None:
    flow = live(builtin.WIN_BACK)
    run, _ = step_on(flow.definition, started(flow, event("SegmentEntered", segment_id="builtin:churn_risk")),
                     shopper(), T0)
    assert run.status is RunStatus.COMPLETED
    with pytest.raises(ValueError, match="nothing to decide"):
        decide(flow.definition, run, shopper(), T0, settings=SETTINGS)


# --- the checks before a send, in order ----------------------------------------------------------------

FLOW = parse_flow({
    "name": "one of each", "trigger": {"kind": "event", "event": "CheckoutStarted"},
    "reentry": {"mode": "every_time"},
    "steps": [{"kind": "email", "id": "mail", "template_id": "m"}, {"kind": "sms", "id": "text", "template_id": "s"}],
})


def first_send(profile: Profile, facts: SendFacts = NO_FACTS, at: datetime = T0, trigger: FlowEvent | None = None,
               definition: FlowDefinition = FLOW) -> Decision:
    run = started(live("each", definition), trigger or checkout(at=at), profile)
    return decide(definition, run, profile, at, settings=SETTINGS, facts=facts)


def skipped(decision: Decision) -> str | None:
    assert decision.record is not None
    return decision.record.reason if decision.record.outcome is StepOutcome.SKIPPED else None


SUPPRESSED = SendFacts(suppressed=True)
RECENT = SendFacts(last_sent=T0 - HOUR)


@pytest.mark.parametrize(("profile", "facts", "reason"), [
    (shopper(), NO_FACTS, None),
    (shopper(email=None), SUPPRESSED, SkipReason.NO_ADDRESS),
    (shopper(consents={}), SUPPRESSED, SkipReason.NO_CONSENT),
    (shopper(consents={"email": consent("email", ConsentState.UNSUBSCRIBED)}), SUPPRESSED, SkipReason.NO_CONSENT),
    (shopper(), SendFacts(suppressed=True, last_sent=T0 - HOUR), SkipReason.SUPPRESSED),
    (shopper(), RECENT, SkipReason.SMART_SENDING),
    (shopper(), SendFacts(last_sent=T0 - 17 * HOUR), None),
])
def test_the_email_checks_in_their_order(profile: Profile, facts: SendFacts, reason: SkipReason | None) -> None:
    decision = first_send(profile, facts)
    assert skipped(decision) == (reason.value if reason else None)
    assert isinstance(decision.action, Proceed if reason else Send) and decision.next_step == "text"


def test_a_skip_records_the_step_channel_and_reason() -> None:
    decision = first_send(shopper(consents={}))
    assert decision.record == StepRecord(step_id="mail", outcome=StepOutcome.SKIPPED, at=T0, reason="no_consent",
                                         channel="email")


def test_the_last_send_is_the_latest_sent_record_on_the_channel_across_runs() -> None:
    def run(run_id: str, *records: StepRecord) -> FlowRun:
        return FlowRun(workspace_id="ws", flow_id=run_id, flow_version=1, run_id=run_id, profile_id="p1",
                       trigger_type="OrderPlaced", trigger_event_id=run_id, trigger={}, entered_at=T0, steps=records)

    welcome = run("welcome", StepRecord(step_id="w1", outcome=StepOutcome.SENT, at=T0 + HOUR, channel="email"),
                  StepRecord(step_id="w2", outcome=StepOutcome.SKIPPED, at=T0 + 5 * HOUR, channel="email"))
    texts = run("texts", StepRecord(step_id="t1", outcome=StepOutcome.SENT, at=T0 + 3 * HOUR, channel="sms"),
                StepRecord(step_id="t2", outcome=StepOutcome.UNKNOWN, at=T0 + 4 * HOUR, channel="email"))
    reminder = run("reminder", StepRecord(step_id="r1", outcome=StepOutcome.SENT, at=T0 + 2 * HOUR, channel="email"))
    assert last_send([welcome, texts, reminder], "email") == T0 + 2 * HOUR  # a skip or an unknown is no send
    assert last_send([welcome, texts, reminder], "sms") == T0 + 3 * HOUR
    assert last_send([welcome], "sms") is None and last_send([], "email") is None


def test_a_step_exempt_from_smart_sending() -> None:
    exempt = FLOW.model_copy(update={"steps": (FLOW.steps[0].model_copy(update={"smart_sending": False}),)})
    assert isinstance(first_send(shopper(), RECENT, definition=exempt).action, Send)
    assert skipped(first_send(shopper(), SendFacts(suppressed=True), definition=exempt)) == "suppressed"


def test_browser_only_activity_is_not_acted_on_before_any_other_check() -> None:
    decision = first_send(shopper(consents={}), SUPPRESSED, trigger=checkout(from_browser=True))
    assert skipped(decision) == SkipReason.BROWSER_ONLY.value


def test_a_profile_filter_no_longer_met_ends_the_run_with_the_send_skipped() -> None:
    filtered = FLOW.model_copy(update={"profile_filter": {"field": "orders_count", "op": "eq", "value": 0}})
    run = started(live("each", filtered), checkout())
    decision = decide(filtered, run, shopper(orders_count=1), T0, settings=SETTINGS, facts=NO_FACTS)
    assert decision.action == Exit("profile_filter") and skipped(decision) == "profile_filter"


def test_an_exit_the_profile_shows_comes_before_every_other_check() -> None:
    flow = live(builtin.ABANDONED_CHECKOUT)
    ordered = shopper(consents={}, last_order_at=T0 + HOUR)
    at_email = started(flow, checkout()).model_copy(update={"next_step": "email_1"})
    run, decisions = step_on(flow.definition, at_email, ordered, T0 + 4 * HOUR, facts=SUPPRESSED)
    assert decisions[-1].action == Exit("exit_event:OrderPlaced")
    assert run.steps[-1].reason == "exit_event" and run.status is RunStatus.EXITED
    # at a step that sends nothing, the run just ends
    run, _ = step_on(flow.definition, started(flow, checkout()), ordered, T0 + 4 * HOUR)
    assert run.exit_reason == "exit_event:OrderPlaced" and run.steps == ()


def sms_send(profile: Profile, facts: SendFacts, at: datetime) -> Decision:
    definition = FLOW.model_copy(update={"steps": (FLOW.steps[1],)})
    return first_send(profile, facts, at, definition=definition)


def test_the_sms_checks_carrier_opt_out_and_its_own_smart_sending_window() -> None:
    assert skipped(sms_send(shopper(), SendFacts(carrier_opted_out=True), T0)) == "carrier_opt_out"
    assert skipped(sms_send(shopper(), SendFacts(last_sent=T0 - 23 * HOUR), T0)) == "smart_sending"
    assert isinstance(sms_send(shopper(), SendFacts(last_sent=T0 - 25 * HOUR), T0).action, Send)
    assert skipped(sms_send(shopper(phone=None), NO_FACTS, T0)) == "no_address"


def test_an_sms_due_in_quiet_hours_waits_for_their_end_in_the_shoppers_zone() -> None:
    late = datetime(2026, 6, 2, 2, 0, tzinfo=UTC)  # 22:00 in New York, 03:00 in London
    decision = sms_send(shopper(), NO_FACTS, late)  # a New York phone
    assert decision.action == Wait("text", datetime(2026, 6, 2, 12, 0, tzinfo=UTC), why="quiet_hours")
    assert decision.record is None and decision.next_step == "text"
    london = shopper(phone="+442079460000")
    assert sms_send(london, NO_FACTS, late).action == Wait("text", datetime(2026, 6, 2, 7, 0, tzinfo=UTC),
                                                           why="quiet_hours")
    assert isinstance(sms_send(london, NO_FACTS, datetime(2026, 6, 2, 7, 0, tzinfo=UTC)).action, Send)


def test_a_held_sms_is_checked_again_when_the_quiet_hours_end() -> None:
    definition = FLOW.model_copy(update={"steps": (FLOW.steps[1],)})
    late = datetime(2026, 6, 2, 2, 0, tzinfo=UTC)
    run, _ = step_on(definition, started(live("each", definition), checkout(at=late)), shopper(), late)
    assert run.wake_at == datetime(2026, 6, 2, 12, 0, tzinfo=UTC)
    morning = run.wake_at
    withdrawn = shopper(consents={"sms": consent("sms", ConsentState.UNSUBSCRIBED)})
    run, _ = step_on(definition, run, withdrawn, morning)
    assert run.steps[-1].reason == "no_consent" and run.status is RunStatus.COMPLETED and run.wake_at is None


# --- other steps ---------------------------------------------------------------------------------------

BRANCHY = parse_flow({
    "name": "branchy", "trigger": {"kind": "event", "event": "CheckoutStarted"}, "reentry": {"mode": "every_time"},
    "steps": [
        {"kind": "split", "id": "by_country", "paths": [
            {"when": {"field": "country", "op": "eq", "value": "FR"}, "steps": [{"kind": "tag", "id": "fr",
                                                                                  "tag": "french"}]},
            {"when": {"field": "country", "op": "eq", "value": "GB"}, "steps": [{"kind": "exit", "id": "stop"}]},
        ]},
        {"kind": "delay", "id": "morning", "until_time": "09:00"},
        {"kind": "tag", "id": "done", "tag": "done"},
    ],
})


def run_branchy(profile: Profile) -> tuple[FlowRun, list[Decision]]:
    return step_on(BRANCHY, started(live("branchy", BRANCHY), checkout(), profile), profile, T0)


def test_a_conditional_split_takes_the_first_matching_path() -> None:
    run, decisions = run_branchy(shopper(country="FR", phone=None))
    assert decisions[0].record is not None and decisions[0].record.path == 0
    assert decisions[1].action == Tag("fr", "french")
    assert run.next_step == "morning"


def test_an_exit_step_ends_the_run() -> None:
    run, decisions = run_branchy(shopper(country="GB", phone=None))
    assert decisions[-1].action == Exit("exit_step") and run.exit_reason == "exit_step"


def test_no_matching_path_goes_on_after_the_split() -> None:
    _, decisions = run_branchy(shopper(country="DE", phone=None))
    assert decisions[0].record is not None and decisions[0].record.path is None
    assert decisions[0].record.reason == "no_path" and decisions[0].next_step == "morning"


def test_until_a_time_of_day_in_the_shoppers_zone() -> None:
    # 14:00 UTC: 10:00 in New York (the store's zone: no phone, no country), 16:00 in Berlin
    _, decisions = run_branchy(shopper(country="DE", phone=None))
    assert decisions[-1].action == Wait("morning", datetime(2026, 6, 2, 7, 0, tzinfo=UTC))
    _, decisions = run_branchy(shopper(country=None, phone=None))
    assert decisions[-1].action == Wait("morning", datetime(2026, 6, 2, 13, 0, tzinfo=UTC))


def test_a_delay_until_a_moment_the_profile_lacks_exits() -> None:
    definition = FLOW.model_copy(update={"steps": (parse_flow({
        "name": "x", "trigger": {"kind": "event", "event": "CheckoutStarted"},
        "steps": [{"kind": "delay", "id": "d", "until": {"property": "profile.last_order_at", "offset": "P30D"}}],
    }).steps[0],)})
    run = started(live("each", definition), checkout())
    assert decide(definition, run, shopper(), T0, settings=SETTINGS).action == Exit("no_moment")
    assert decide(definition, run, shopper(last_order_at=T0 - 24 * HOUR), T0, settings=SETTINGS).action == Wait(
        "d", T0 + 29 * 24 * HOUR)


def test_a_run_at_a_step_the_flow_no_longer_has_exits() -> None:
    run = started(live("each", FLOW), checkout()).model_copy(update={"next_step": "gone"})
    assert decide(FLOW, run, shopper(), T0, settings=SETTINGS).action == Exit("step_removed")


def test_a_run_of_a_merged_profile_stops() -> None:
    run = started(live("each", FLOW), checkout())
    assert decide(FLOW, run, shopper(merged_into="p2"), T0, settings=SETTINGS).action == Exit("merged")


def test_the_end_of_the_steps_completes_the_run() -> None:
    run = started(live("each", FLOW), checkout()).model_copy(update={"next_step": None})
    decision = decide(FLOW, run, shopper(), T0, settings=SETTINGS)
    assert decision.action == Complete() and apply(run, decision, T0).status is RunStatus.COMPLETED


AB = RandomSplit.model_validate({"kind": "random", "id": "ab", "paths": [{"weight": 90}, {"weight": 10},
                                                                         {"weight": 0}]})


def test_a_random_split_is_drawn_from_the_run_so_a_retry_takes_the_same_path() -> None:
    assert {random_path(AB, "run-1") for _ in range(5)} == {random_path(AB, "run-1")}


def test_a_random_split_spreads_runs_by_weight() -> None:
    drawn = Counter(random_path(AB, run_id_for("f", f"e{n}")) for n in range(4000))
    assert drawn[2] == 0
    assert 0.87 < drawn[0] / 4000 < 0.93


# --- properties ----------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(ordered_after=st.one_of(st.none(), st.integers(1, 40 * 60)),
       wake_delays=st.lists(st.integers(0, 90), min_size=4, max_size=4),
       last_sent_before=st.one_of(st.none(), st.integers(0, 48 * 60)))
def test_the_abandoned_checkout_sends_at_most_the_two_reminders_and_none_after_an_order(
        ordered_after: int | None, wake_delays: list[int], last_sent_before: int | None) -> None:
    """Wake-ups come late by up to 90 minutes; an order may come at any minute; another flow may have sent."""
    flow = live(builtin.ABANDONED_CHECKOUT)
    ordered_at = T0 + timedelta(minutes=ordered_after) if ordered_after is not None else None
    facts = SendFacts(last_sent=T0 - timedelta(minutes=last_sent_before) if last_sent_before is not None else None)
    run, now = started(flow, checkout()), T0
    for delay in [0, *wake_delays]:
        if run.status is not RunStatus.ACTIVE:
            break
        now = max(now, run.wake_at or now) + timedelta(minutes=delay)
        ordered = ordered_at is not None and ordered_at <= now
        profile = shopper(last_order_at=ordered_at if ordered else None)
        run, _ = step_on(flow.definition, run, profile, now, facts=facts)
        assert run.wake_at is None or run.wake_at > now
        facts = SendFacts(last_sent=max((r.at for r in run.steps if r.outcome is StepOutcome.SENT),
                                        default=facts.last_sent))
    assert len({record.step_id for record in run.steps}) == len(run.steps)  # a step is recorded once
    sent = [r for r in run.steps if r.outcome is StepOutcome.SENT]
    assert len(sent) <= 2
    if ordered_at is not None:
        assert all(record.at < ordered_at for record in sent)
    if ordered_at is None and last_sent_before is None:
        assert [r.step_id for r in sent] == ["email_1", "email_2"]
        assert sent[0].at >= T0 + 4 * HOUR and sent[1].at >= T0 + 24 * HOUR


def _leaf(kind: str, step_id: str, minutes: int) -> dict[str, Any]:
    return {
        "delay": {"kind": "delay", "id": step_id, "duration": f"PT{minutes + 1}M"},
        "until": {"kind": "delay", "id": step_id, "until_time": f"{minutes % 24:02d}:{minutes % 60:02d}"},
        "wait_for": {"kind": "wait_for", "id": step_id, "event": "OrderFulfilled", "timeout": f"PT{minutes + 1}H",
                     "on_timeout": "continue" if minutes % 2 else "exit"},
        "email": {"kind": "email", "id": step_id, "template_id": "t"},
        "sms": {"kind": "sms", "id": step_id, "template_id": "t", "smart_sending": minutes % 3 == 0},
        "tag": {"kind": "tag", "id": step_id, "tag": "x"},
        "exit": {"kind": "exit", "id": step_id},
    }[kind]


@st.composite
def step_trees(draw: st.DrawFn, depth: int = 0, counter: list[int] | None = None) -> list[dict[str, Any]]:
    """A list of steps (splits within splits) with ids unique across the tree; an exit only last."""
    counter = counter if counter is not None else [0]
    steps: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 4))):
        counter[0] += 1
        step_id = f"s{counter[0]}"
        kinds = ["delay", "until", "wait_for", "email", "sms", "tag"] + (["split", "random"] if depth < 2 else [])
        kind = draw(st.sampled_from(kinds))
        if kind in ("split", "random"):
            paths = [draw(step_trees(depth + 1, counter)) for _ in range(draw(st.integers(2, 3)))]
            if kind == "split":
                steps.append({"kind": "split", "id": step_id, "paths": [
                    {"when": {"field": "country", "op": "eq", "value": code}, "steps": branch}
                    for code, branch in zip(("FR", "GB"), paths[:-1], strict=False)] + [{"steps": paths[-1]}]})
            else:
                steps.append({"kind": "random", "id": step_id, "paths": [
                    {"weight": draw(st.integers(1, 5)), "steps": branch} for branch in paths]})
        else:
            steps.append(_leaf(kind, step_id, draw(st.integers(0, 300))))
    if draw(st.booleans()) and depth > 0:
        counter[0] += 1
        steps.append(_leaf("exit", f"s{counter[0]}", 0))
    return steps


@settings(max_examples=150, deadline=None)
@given(tree=step_trees(), country=st.sampled_from(["FR", "GB", "DE"]), late=st.lists(st.integers(0, 600),
                                                                                   min_size=30, max_size=30),
       fulfilled_after=st.one_of(st.none(), st.integers(0, 72 * 60)))
def test_any_flow_runs_to_its_end_recording_each_step_once_and_never_waking_in_the_past(
        tree: list[dict[str, Any]], country: str, late: list[int], fulfilled_after: int | None) -> None:
    definition = parse_flow({"name": "any", "trigger": {"kind": "event", "event": "CheckoutStarted"},
                             "reentry": {"mode": "every_time"}, "steps": tree})
    profile = shopper(country=country)
    run, now = started(live("any", definition), checkout(), profile), T0
    fulfilment = event("OrderFulfilled", "f1", T0 + timedelta(minutes=fulfilled_after or 0), store_id="s1",
                       order_id="o1") if fulfilled_after is not None else None
    for minutes in late:
        if run.status is not RunStatus.ACTIVE:
            break
        if fulfilment is not None and run.waiting_for and fulfilment.occurred_at <= (run.wake_at or now):
            now = max(now, fulfilment.occurred_at)
            resumed = on_event(definition, run, fulfilment, now)
            run = apply(run, resumed, now) if resumed is not None else run
        else:
            now = max(now, run.wake_at or now) + timedelta(minutes=minutes)
        run, decisions = step_on(definition, run, profile, now, facts=SendFacts(last_sent=T0 - 48 * HOUR))
        assert run.wake_at is None or run.wake_at > now
        assert all(not isinstance(d.action, Wait) or d.action.until > now for d in decisions)
    assert run.status is not RunStatus.ACTIVE, "30 wake-ups finish any flow of this size"
    recorded = [record.step_id for record in run.steps]
    assert len(set(recorded)) == len(recorded)
    assert all(record.at <= now for record in run.steps)
    zone = shopper_zone(profile, SETTINGS.time_zone)
    assert not any(in_quiet_hours(record.at, zone, SETTINGS.quiet_hours) for record in run.steps
                   if record.channel == "sms" and record.outcome is StepOutcome.SENT)
