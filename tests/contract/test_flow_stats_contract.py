"""One contract for what flows bring in (crm.flows.ports: MessageLedger, FlowCounters, Attributions,
SplitWinners): the in-memory ports (crm.flows.memory) and the DynamoDB adapters (crm.adapters.flow_stats).
Each write that must count once is checked by repeating it."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import boto3
import pytest
from crm.adapters import keys
from crm.adapters.flow_stats import DynamoAttributions, DynamoFlowCounters, DynamoMessageLedger, DynamoSplitWinners
from crm.flows.memory import MemoryAttributions, MemoryFlowCounters, MemoryMessageLedger, MemorySplitWinners
from crm.flows.ports import Attributions, FlowCounters, MessageLedger, SplitWinners
from crm.models.flow_stats import ALL_STEPS, Attribution, MessageEvent, MessageEventType, MessageRecord
from crm_local.provision import Provisioned

from tests.builders import NOW

WS = "ws_a"
FLOW = "builtin:abandoned_checkout"
DAY = NOW.date()
BACKENDS = ["memory", pytest.param("dynamodb", marks=pytest.mark.integration)]


def _table(request: pytest.FixtureRequest) -> str:
    provisioned: Provisioned = request.getfixturevalue("provisioned")
    return provisioned.outputs["TableName"]


@pytest.fixture(params=BACKENDS)
def ledger(request: pytest.FixtureRequest) -> MessageLedger:
    return MemoryMessageLedger() if request.param == "memory" else DynamoMessageLedger(_table(request))


@pytest.fixture(params=BACKENDS)
def counters(request: pytest.FixtureRequest) -> FlowCounters:
    return MemoryFlowCounters() if request.param == "memory" else DynamoFlowCounters(_table(request))


@pytest.fixture(params=BACKENDS)
def attributions(request: pytest.FixtureRequest) -> Attributions:
    return MemoryAttributions() if request.param == "memory" else DynamoAttributions(_table(request))


@pytest.fixture(params=BACKENDS)
def winners(request: pytest.FixtureRequest) -> SplitWinners:
    return MemorySplitWinners() if request.param == "memory" else DynamoSplitWinners(_table(request))


def sent(message_id: str = "m1", profile_id: str = "p1", minutes: int = 0, workspace_id: str = WS,
         variant: str | None = "ab:1") -> MessageRecord:
    return MessageRecord(workspace_id=workspace_id, profile_id=profile_id, message_id=message_id, channel="email",
                         flow_id=FLOW, flow_version=3, step_id="email_1", run_id="r" * 32, variant=variant,
                         trigger_type="CheckoutStarted", sent_at=NOW + timedelta(minutes=minutes))


def event(kind: MessageEventType, minutes: int = 5, link: str | None = None) -> MessageEvent:
    return MessageEvent(message_id="m1", type=kind, at=NOW + timedelta(minutes=minutes), link=link)


# --- MessageLedger --------------------------------------------------------------------------------------

def test_a_message_is_recorded_once_and_found_by_its_tags_an_sms_by_id_alone(ledger: MessageLedger) -> None:
    ledger.record_sent(sent())
    ledger.record_sent(sent().model_copy(update={"step_id": "email_2"}))  # a retried send: the first stays
    assert ledger.find("m1", WS, "p1", NOW) == sent()  # SES tags name the workspace, the profile and the moment
    assert ledger.find("m1") is None  # an email is always found by its tags: no pointer by id is written
    assert ledger.find("m1", "ws_other", "p1", NOW) is None
    text = sent("s1").model_copy(update={"channel": "sms", "step_id": "sms_1"})
    ledger.record_sent(text)
    assert ledger.find("s1") == text  # an SMS status names the message only: its pointer
    assert ledger.find("s1", WS, "p_renamed") == text  # tags that do not name its partition: the pointer
    assert ledger.find("s1", "ws_other") is None
    assert ledger.find("m_unknown") is None


def test_each_event_type_is_noted_once_whatever_ses_repeats(ledger: MessageLedger) -> None:
    ledger.record_sent(sent(variant=None))
    kinds = [MessageEventType.DELIVERED, MessageEventType.OPENED, MessageEventType.CLICKED] * 3
    random.Random(11).shuffle(kinds)
    first: dict[MessageEventType, int] = {}
    for position, kind in enumerate(kinds):
        link = "https://shop.example/a" if kind is MessageEventType.CLICKED else None
        noted = ledger.note_event(sent(variant=None), event(kind, minutes=position, link=link))
        if noted is not None:
            assert kind not in first
            first[kind] = position
    assert set(first) == {MessageEventType.DELIVERED, MessageEventType.OPENED, MessageEventType.CLICKED}
    held = ledger.find("m1", WS, "p1", NOW)
    assert held is not None and held.variant is None
    assert held.events == {kind: NOW + timedelta(minutes=at) for kind, at in first.items()}
    assert held.clicked_links == ("https://shop.example/a",)  # the first click's link


def test_a_noted_event_answers_the_record_as_it_now_stands(ledger: MessageLedger) -> None:
    ledger.record_sent(sent())
    opened = ledger.note_event(sent(), event(MessageEventType.OPENED))
    assert opened == sent().model_copy(update={"events": {MessageEventType.OPENED: NOW + timedelta(minutes=5)}})
    clicked = ledger.note_event(sent(), event(MessageEventType.CLICKED, 9, link="https://shop.example/r/1?x=1&y=2"))
    assert clicked is not None and clicked.events == {MessageEventType.OPENED: NOW + timedelta(minutes=5),
                                                      MessageEventType.CLICKED: NOW + timedelta(minutes=9)}
    assert clicked.clicked_links == ("https://shop.example/r/1?x=1&y=2",)
    assert ledger.note_event(sent(), event(MessageEventType.CLICKED, 12, link="https://shop.example/b")) is None
    assert ledger.find("m1", WS, "p1", NOW) == clicked


def test_an_event_on_a_message_never_recorded_counts_nothing(ledger: MessageLedger) -> None:
    assert ledger.note_event(sent(), event(MessageEventType.DELIVERED)) is None
    assert ledger.find("m1", WS, "p1", NOW) is None


def test_touches_are_the_profiles_messages_sent_since_in_time_order(ledger: MessageLedger) -> None:
    for message in (sent("m3", minutes=30), sent("m1", minutes=-10), sent("m2", minutes=0), sent("m0", minutes=0),
                    sent("m_other", profile_id="p2"), sent("m_ws", workspace_id="ws_b")):
        ledger.record_sent(message)
    assert [m.message_id for m in ledger.touches(WS, "p1", NOW)] == ["m0", "m2", "m3"]  # ``since`` included
    assert [m.message_id for m in ledger.touches(WS, "p1", NOW - timedelta(days=1))] == ["m1", "m0", "m2", "m3"]
    assert ledger.touches(WS, "p1", NOW + timedelta(minutes=31)) == []
    assert [m.message_id for m in ledger.touches("ws_b", "p1", NOW)] == ["m_ws"]
    ledger.note_event(sent("m3", minutes=30), MessageEvent(message_id="m3", type=MessageEventType.OPENED, at=NOW))
    [*_, last] = ledger.touches(WS, "p1", NOW)
    assert last.events == {MessageEventType.OPENED: NOW}


def test_a_steps_message_is_found_by_the_moment_its_step_was_claimed(ledger: MessageLedger) -> None:
    """A send is recorded at its claim's moment (crm.flows.service): a claim found later finds its message."""
    ledger.record_sent(sent("m1"))
    ledger.record_sent(sent("m2").model_copy(update={"run_id": "q" * 32}))  # another run's send at that moment
    found = ledger.message_of_step(WS, "p1", "r" * 32, "email_1", NOW)
    assert found is not None and found.message_id == "m1"
    assert ledger.message_of_step(WS, "p1", "r" * 32, "email_2", NOW) is None
    assert ledger.message_of_step(WS, "p1", "r" * 32, "email_1", NOW + timedelta(minutes=1)) is None
    assert ledger.message_of_step(WS, "p2", "r" * 32, "email_1", NOW) is None


def test_a_merge_moves_the_merged_profiles_messages_to_the_survivor_events_kept(ledger: MessageLedger) -> None:
    for message in (sent("m1"), sent("m2", minutes=3), sent("m_survivor", profile_id="p2"),
                    sent("m_elsewhere", workspace_id="ws_b")):
        ledger.record_sent(message)
    opened = ledger.note_event(sent("m1"), event(MessageEventType.OPENED))
    assert ledger.move_messages(WS, "p1", "p2") == 2
    assert ledger.move_messages(WS, "p1", "p2") == 0  # a redelivered merge
    assert [m.message_id for m in ledger.touches(WS, "p2", NOW)] == ["m1", "m_survivor", "m2"]
    assert ledger.touches(WS, "p1", NOW - timedelta(days=1)) == []
    moved = ledger.find("m1", WS, "p1", NOW)  # SES's tags still name the merged profile: the pointer follows
    assert opened is not None and moved == opened.model_copy(update={"profile_id": "p2"})
    assert ledger.note_event(moved, event(MessageEventType.OPENED, 20)) is None  # still noted once
    assert ledger.note_event(moved, event(MessageEventType.CLICKED, 21, "https://a")) is not None
    assert ledger.touches("ws_b", "p1", NOW)[0].profile_id == "p1"


# --- FlowCounters ---------------------------------------------------------------------------------------

def _held(counters: FlowCounters, first: date, last: date, flow_id: str = FLOW,
          workspace_id: str = WS) -> dict[tuple[date, str, str], dict[str, Decimal]]:
    return {(row.day, row.step_id, row.variant): row.counts
            for row in counters.rows(workspace_id, flow_id, first, last)}


def test_counters_add_up_per_flow_day_step_and_variant(counters: FlowCounters) -> None:
    counters.add(WS, FLOW, DAY, {"entered": 1})
    counters.add(WS, FLOW, DAY, {"entered": 1, "exited:exit_event:OrderPlaced": 1})
    counters.add(WS, FLOW, DAY, {"sent": 1, "recipients": 1}, step_id="email_1", variant="ab:0")
    counters.add(WS, FLOW, DAY, {"sent": 2}, step_id="email_1", variant="ab:0")
    counters.add(WS, FLOW, DAY, {"revenue": Decimal("78.10"), "converted": 1}, step_id="email_1", variant="ab:1")
    counters.add(WS, FLOW, DAY, {"revenue": Decimal("-8.05")}, step_id="email_1", variant="ab:1")  # a refund
    counters.add(WS, FLOW, DAY + timedelta(days=1), {"entered": 5})
    counters.add(WS, "builtin:welcome", DAY, {"entered": 7})
    counters.add("ws_b", FLOW, DAY, {"entered": 9})
    assert _held(counters, DAY, DAY) == {
        (DAY, ALL_STEPS, ALL_STEPS): {"entered": Decimal(2), "exited:exit_event:OrderPlaced": Decimal(1)},
        (DAY, "email_1", "ab:0"): {"sent": Decimal(3), "recipients": Decimal(1)},
        (DAY, "email_1", "ab:1"): {"revenue": Decimal("70.05"), "converted": Decimal(1)},
    }
    [row, *_] = counters.rows(WS, FLOW, DAY, DAY)
    assert (row.workspace_id, row.flow_id) == (WS, FLOW)
    assert _held(counters, DAY, DAY, "builtin:welcome") == {(DAY, ALL_STEPS, ALL_STEPS): {"entered": Decimal(7)}}
    assert _held(counters, DAY, DAY, workspace_id="ws_b") == {(DAY, ALL_STEPS, ALL_STEPS): {"entered": Decimal(9)}}


def test_rows_are_the_days_asked_for_both_ends_included(counters: FlowCounters) -> None:
    for offset in range(-2, 4):
        counters.add(WS, FLOW, DAY + timedelta(days=offset), {"entered": offset + 10}, step_id="wait_4h")
    held = _held(counters, DAY - timedelta(days=1), DAY + timedelta(days=2))
    assert sorted(day for day, _, _ in held) == [DAY + timedelta(days=offset) for offset in (-1, 0, 1, 2)]
    assert held[(DAY + timedelta(days=2), "wait_4h", ALL_STEPS)] == {"entered": Decimal(12)}
    assert counters.rows(WS, FLOW, DAY + timedelta(days=9), DAY + timedelta(days=12)) == []
    assert counters.rows(WS, FLOW, DAY, DAY - timedelta(days=1)) == []  # an empty range


def test_a_flows_winners_are_not_counter_rows(counters: FlowCounters, request: pytest.FixtureRequest) -> None:
    counters.add(WS, FLOW, DAY, {"entered": 1})
    winners = MemorySplitWinners() if isinstance(counters, MemoryFlowCounters) else DynamoSplitWinners(
        _table(request))
    winners.decide(WS, FLOW, "ab", 1, NOW)
    assert _held(counters, date(2000, 1, 1), date(2100, 1, 1)) == {(DAY, ALL_STEPS, ALL_STEPS): {"entered": 1}}



ROWS = [(ALL_STEPS, ALL_STEPS), ("wait_4h", ALL_STEPS), ("email_1", "ab:0"), ("email_1", "ab:1"), ("ab", "ab:0")]
NAMES = ["entered", "sent", "recipients", "skipped:no_consent", "exited:exit_event:OrderPlaced"]


def test_rows_added_together_read_as_the_sum_of_every_add(counters: FlowCounters) -> None:
    """What one delivery counts on several rows is written together (DynamoDB: one item carries the others'
    counters); rows read back are the sums per row, however the adds were grouped, on the day each named."""
    draw = random.Random(12)
    expected: dict[tuple[date, str, str], dict[str, Decimal]] = {}
    for _ in range(60):
        day = DAY + timedelta(days=draw.randrange(2))
        rows = {row: {name: draw.randint(-1, 3) for name in draw.sample(NAMES, draw.randint(1, 3))}
                for row in draw.sample(ROWS, draw.randint(1, len(ROWS)))}
        if draw.random() < 0.3:
            for (step_id, variant), counts in rows.items():
                counters.add(WS, FLOW, day, counts, step_id, variant)
        else:
            counters.add_rows(WS, FLOW, day, rows)
        for (step_id, variant), counts in rows.items():
            held = expected.setdefault((day, step_id, variant), {})
            for name, value in counts.items():
                held[name] = held.get(name, Decimal(0)) + value
    assert _held(counters, DAY, DAY + timedelta(days=1)) == expected
    counters.add_rows(WS, FLOW, DAY, {})  # nothing counted, nothing written
    counters.add_rows(WS, FLOW, DAY, {(ALL_STEPS, ALL_STEPS): {}})
    assert _held(counters, DAY, DAY + timedelta(days=1)) == expected


@pytest.mark.integration
def test_a_deliverys_rows_are_one_write_on_its_first_step_row(provisioned: Provisioned) -> None:
    """The flow-wide row rides on a step row's item (one UpdateItem a delivery); alone, it has its own."""
    counters, table = DynamoFlowCounters(provisioned.outputs["TableName"]), provisioned.outputs["TableName"]
    counters.add_rows(WS, FLOW, DAY, {(ALL_STEPS, ALL_STEPS): {"entered": 1}, ("wait_4h", ALL_STEPS): {"recipients": 1},
                                      ("email_1", "ab:0"): {"sent": 1}})
    counters.add_rows(WS, FLOW, DAY, {(ALL_STEPS, ALL_STEPS): {"completed": 1}})
    items = boto3.client("dynamodb").query(
        TableName=table, KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": keys.flow_counters_pk(WS, FLOW)}})["Items"]
    assert sorted(item["sk"]["S"] for item in items) == [f"{DAY}#-#-", f"{DAY}#email_1#ab:0"]
    assert _held(counters, DAY, DAY) == {
        (DAY, ALL_STEPS, ALL_STEPS): {"entered": Decimal(1), "completed": Decimal(1)},
        (DAY, "wait_4h", ALL_STEPS): {"recipients": Decimal(1)}, (DAY, "email_1", "ab:0"): {"sent": Decimal(1)}}



@pytest.mark.integration
def test_items_written_with_long_names_add_up_with_the_short_names_written_now(provisioned: Provisioned) -> None:
    """Items written before hold ``n:<name>`` and ``o:<step>|<variant>|<name>``: a day's counts sum both; what is
    written now is short (a name the short form cannot hold, with a ``|``, long)."""
    table = provisioned.outputs["TableName"]
    counters = DynamoFlowCounters(table)
    key = keys.flow_counters(WS, FLOW, DAY.isoformat(), "email_1", ALL_STEPS)
    boto3.client("dynamodb").put_item(TableName=table, Item={
        "pk": {"S": key["pk"]}, "sk": {"S": key["sk"]}, "entity": {"S": "flow_counters"},
        "workspace_id": {"S": WS}, "flow_id": {"S": FLOW}, "day": {"S": DAY.isoformat()},
        "step_id": {"S": "email_1"}, "variant": {"S": ALL_STEPS}, "n:sent": {"N": "4"},
        "o:-|-|exited:exit_event:OrderPlaced": {"N": "2"}, "o:wait_4h|-|recipients": {"N": "3"}})
    counters.add_rows(WS, FLOW, DAY, {("email_1", ALL_STEPS): {"sent": 1, "odd|name": 1},
                                      (ALL_STEPS, ALL_STEPS): {"exited:exit_event:OrderPlaced": 1, "entered": 1},
                                      ("wait_4h", ALL_STEPS): {"recipients": 5},
                                      ("split", "split:1"): {"recipients": 1}})
    assert _held(counters, DAY, DAY) == {
        (DAY, ALL_STEPS, ALL_STEPS): {"exited:exit_event:OrderPlaced": Decimal(3), "entered": Decimal(1)},
        (DAY, "email_1", ALL_STEPS): {"sent": Decimal(5), "odd|name": Decimal(1)},
        (DAY, "wait_4h", ALL_STEPS): {"recipients": Decimal(8)}, (DAY, "split", "split:1"): {"recipients": Decimal(1)}}
    [item] = boto3.client("dynamodb").query(
        TableName=table, KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": keys.flow_counters_pk(WS, FLOW)}})["Items"]
    assert {name for name in item if "|" in name or ":" in name} == {
        "n:sent", "o:-|-|exited:exit_event:OrderPlaced", "o:wait_4h|-|recipients",  # as written before
        "|s", "n:odd|name", "-|EOrderPlaced", "-|e", "wait_4h|n", "split|split:1|n"}

# --- Attributions ---------------------------------------------------------------------------------------

def attributed(order_id: str = "o1", message_id: str = "m1", revenue: str = "78.10") -> Attribution:
    return Attribution(workspace_id=WS, store_id="st", order_id=order_id, profile_id="p1", message_id=message_id,
                       flow_id=FLOW, step_id="email_1", variant="ab:1", channel="email", touch="email_click",
                       touched_at=NOW, ordered_at=NOW + timedelta(days=2), revenue=Decimal(revenue),
                       currency="USD", recovered_checkout=True)


def test_an_order_is_attributed_at_most_once(attributions: Attributions) -> None:
    assert attributions.claim(attributed()) is True
    assert attributions.claim(attributed(message_id="m2", revenue="1.00")) is False  # a later touch loses
    assert attributions.get(WS, "st", "o1") == attributed()
    assert attributions.get(WS, "st_other", "o1") is None
    assert attributions.get("ws_b", "st", "o1") is None
    assert attributions.claim(attributed("o2")) is True


def test_a_refund_counts_once_per_refund_id(attributions: Attributions) -> None:
    assert attributions.add_refund(WS, "st", "o1", "rf1", Decimal("5")) is None  # nothing attributed
    attributions.claim(attributed())
    first = attributions.add_refund(WS, "st", "o1", "rf1", Decimal("10.05"))
    assert first is not None and (first.refunded, first.refund_ids) == (Decimal("10.05"), ("rf1",))
    assert attributions.add_refund(WS, "st", "o1", "rf1", Decimal("10.05")) is None  # redelivered
    second = attributions.add_refund(WS, "st", "o1", "rf2", Decimal("0.95"))
    assert second == attributed().model_copy(update={"refunded": Decimal("11.00"), "refund_ids": ("rf1", "rf2")})
    assert attributions.get(WS, "st", "o1") == second


# --- SplitWinners ---------------------------------------------------------------------------------------

def test_a_winner_once_decided_never_changes(winners: SplitWinners) -> None:
    assert winners.winners(WS, FLOW) == {}
    assert winners.decide(WS, FLOW, "ab", 1, NOW) == 1
    assert winners.decide(WS, FLOW, "ab", 0, NOW + timedelta(hours=1)) == 1  # a racing decision reads the first
    assert winners.decide(WS, FLOW, "subject_test", 0, NOW) == 0
    assert winners.decide(WS, "builtin:welcome", "ab", 2, NOW) == 2
    assert winners.winners(WS, FLOW) == {"ab": 1, "subject_test": 0}
    assert winners.winners("ws_b", FLOW) == {}
