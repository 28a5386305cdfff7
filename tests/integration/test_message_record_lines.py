"""A flow message's record is its ``flow_message`` line on the profile's timeline (crm.adapters.flow_stats): one
item a send, which the timeline shows and the feedback, attribution and a found claim read; records written before
as items of their own (``MSG#``, beside a line of their own) are still found, noted, touched and moved."""

from __future__ import annotations

from datetime import timedelta

import pytest
from crm.adapters import keys
from crm.adapters.clients import put_if_absent, query_items
from crm.adapters.flow_stats import DynamoMessageLedger, legacy_message_item
from crm.adapters.profiles import DynamoProfileRepository
from crm.models.flow_stats import MessageEvent, MessageEventType, MessageRecord
from crm.models.profile import TimelineEntry
from crm.ports import Change
from crm_local.provision import Provisioned

from tests.builders import NOW

pytestmark = pytest.mark.integration

WS = "ws_lines"
RUN = "flowrun:abc#1"  # a run id holds what an SES tag cannot: the record's key does not need it


def _message(message_id: str, profile_id: str = "p1", minutes: int = 0, step_id: str = "email_1") -> MessageRecord:
    return MessageRecord(workspace_id=WS, profile_id=profile_id, message_id=message_id, channel="email",
                         flow_id="builtin:abandoned_checkout", flow_version=2, step_id=step_id, run_id=RUN,
                         variant="split_1:2", trigger_type="CheckoutStarted", sent_at=NOW + timedelta(minutes=minutes))


def _partition(table: str, profile_id: str) -> list[dict[str, object]]:
    return list(query_items({"TableName": table, "KeyConditionExpression": "pk = :pk",
                             "ExpressionAttributeValues": {":pk": {"S": keys.profile(WS, profile_id)["pk"]}}}))


def _before(table: str, message: MessageRecord) -> None:
    """A send as recorded before: the record an item of its own, and its timeline line keyed by the run's step."""
    put_if_absent(table, legacy_message_item(message))
    DynamoProfileRepository(table).commit(Change(WS, timeline=(TimelineEntry(
        workspace_id=WS, profile_id=message.profile_id, occurred_at=message.sent_at, type="flow_message",
        ref=f"{message.run_id}:{message.step_id}", summary={"flow_id": message.flow_id, "step_id": message.step_id,
                                                            "channel": "email", "message_id": message.message_id}),)))


def test_a_send_is_one_item_its_timeline_line_which_the_feedback_finds_by_its_tags(provisioned: Provisioned) -> None:
    table = provisioned.outputs["TableName"]
    ledger = DynamoMessageLedger(table)
    ledger.record_sent(_message("m1"))
    ledger.record_sent(_message("m1").model_copy(update={"step_id": "email_2"}))  # a repeat: the first stays
    [item] = _partition(table, "p1")
    assert item["entity"] == {"S": "timeline"} and "message" not in item
    [line] = DynamoProfileRepository(table).timeline(WS, ["p1"], None, 10)
    assert (line.type, line.ref, line.occurred_at) == ("flow_message", "m1", NOW)
    assert line.summary == {"flow_id": "builtin:abandoned_checkout", "step_id": "email_1", "channel": "email",
                            "message_id": "m1", "run_id": RUN, "flow_version": 2, "trigger_type": "CheckoutStarted",
                            "variant": "split_1:2"}
    assert ledger.find("m1", WS, "p1", NOW) == _message("m1")
    assert ledger.find("m1", WS, "p1", NOW + timedelta(microseconds=1)) is None  # the moment is the key's
    opened = MessageEvent(message_id="m1", type=MessageEventType.OPENED, at=NOW + timedelta(minutes=5))
    assert ledger.note_event(_message("m1"), opened) is not None
    assert ledger.note_event(_message("m1"), opened) is None  # once
    [line] = DynamoProfileRepository(table).timeline(WS, ["p1"], None, 10)  # noting it leaves the line as it was
    assert (line.type, line.ref) == ("flow_message", "m1")
    assert ledger.note_event(_message("m_never"), opened) is None


def test_records_written_before_are_found_noted_touched_and_moved_still(provisioned: Provisioned) -> None:
    table = provisioned.outputs["TableName"]
    ledger = DynamoMessageLedger(table)
    old, new = _message("m_old", minutes=-60, step_id="email_1"), _message("m_new", step_id="email_2")
    _before(table, old)
    ledger.record_sent(new)
    # An email sent before the ``sent`` tag: found by its tags' partition alone.
    assert ledger.find("m_old", WS, "p1") == old
    clicked = MessageEvent(message_id="m_old", type=MessageEventType.CLICKED, at=NOW, link="https://shop.example/a")
    noted = ledger.note_event(old, clicked)
    assert noted is not None and noted.clicked_links == ("https://shop.example/a",)
    assert ledger.note_event(old, clicked) is None
    # The old line beside the old record is no record: each message once, in time order.
    assert [m.message_id for m in ledger.touches(WS, "p1", NOW - timedelta(days=1))] == ["m_old", "m_new"]
    assert [m.message_id for m in ledger.touches(WS, "p1", NOW)] == ["m_new"]
    # A claim found later finds its send, old or new.
    found = ledger.message_of_step(WS, "p1", RUN, "email_1", old.sent_at)
    assert found is not None and found.message_id == "m_old"
    found = ledger.message_of_step(WS, "p1", RUN, "email_2", new.sent_at)
    assert found is not None and found.message_id == "m_new"
    # A merge moves both, each as it was stored, and their pointers find them from the merged profile's tags.
    assert ledger.move_messages(WS, "p1", "p2") == 2
    assert ledger.move_messages(WS, "p1", "p2") == 0
    assert [m.message_id for m in ledger.touches(WS, "p2", NOW - timedelta(days=1))] == ["m_old", "m_new"]
    moved_old, moved_new = ledger.find("m_old", WS, "p1"), ledger.find("m_new", WS, "p1", NOW)
    assert moved_old is not None and moved_old.profile_id == "p2" and moved_old.events == noted.events
    assert moved_new == new.model_copy(update={"profile_id": "p2"})
    # The merged profile keeps the old line (its timeline is read with the survivor's), the new one moved.
    lines = DynamoProfileRepository(table).timeline(WS, ["p1", "p2"], None, 10)
    assert sorted((e.profile_id, e.ref) for e in lines) == [("p1", f"{RUN}:email_1"), ("p2", "m_new")]
