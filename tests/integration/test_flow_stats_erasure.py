"""An erasure takes what flow stats hold of a shopper: the message records (in the profile's partition), their
pointers by message id, and the attributions of the erased orders; the flows' counters (sums) stay."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from crm.adapters.clients import put_if_absent
from crm.adapters.flow_stats import DynamoAttributions, DynamoFlowCounters, DynamoMessageLedger, legacy_message_item
from crm.adapters.items import from_item
from crm.adapters.privacy import DynamoPrivacyStore
from crm.models.flow_stats import Attribution, MessageRecord
from crm.ports import Erasure
from crm_local.provision import Provisioned

from tests.aws import client
from tests.builders import NOW

pytestmark = pytest.mark.integration

WS = "ws_a"
FLOW = "builtin:abandoned_checkout"


def _message(message_id: str, profile_id: str) -> MessageRecord:
    return MessageRecord(workspace_id=WS, profile_id=profile_id, message_id=message_id, channel="email",
                         flow_id=FLOW, flow_version=1, step_id="email_1", run_id="r" * 32,
                         trigger_type="CheckoutStarted", sent_at=NOW)


def _attribution(order_id: str, profile_id: str, message_id: str) -> Attribution:
    return Attribution(workspace_id=WS, store_id="st", order_id=order_id, profile_id=profile_id,
                       message_id=message_id, flow_id=FLOW, step_id="email_1", channel="email", touch="email_click",
                       touched_at=NOW, ordered_at=NOW + timedelta(days=1), revenue=Decimal("12.00"), currency="USD")


def test_an_erasure_takes_the_shoppers_messages_their_pointers_and_her_orders_attributions(
        provisioned: Provisioned) -> None:
    table = provisioned.outputs["TableName"]
    ledger, attributions = DynamoMessageLedger(table), DynamoAttributions(table)
    for message_id, profile_id, order_id in (("m_x1", "p_x", "o_x"), ("m_x2", "p_x", None),
                                             ("m_y", "p_y", "o_y")):
        ledger.record_sent(_message(message_id, profile_id))
        if order_id:
            attributions.claim(_attribution(order_id, profile_id, message_id))
    # A message recorded before its record was its timeline line (an item of its own), a merge's pointer to it, and
    # an SMS's pointer to its line.
    put_if_absent(table, legacy_message_item(_message("m_x3", "p_x")))
    ledger._point(_message("m_x3", "p_x"), legacy=True)
    ledger.record_sent(_message("m_x4", "p_x").model_copy(update={"channel": "sms"}))
    DynamoFlowCounters(table).add(WS, FLOW, NOW.date(), {"sent": 3})

    DynamoPrivacyStore(table).erase(Erasure(workspace_id=WS, profile_ids=("p_x",), orders=(("st", "o_x"),),
                                            customers=(), events=(), identities=()))

    assert ledger.find("m_x1", WS, "p_x", NOW) is None and ledger.find("m_x2", WS, "p_x", NOW) is None
    assert ledger.find("m_x3") is None and ledger.find("m_x4") is None
    assert attributions.get(WS, "st", "o_x") is None
    items = [from_item(item) for page in client("dynamodb").get_paginator("scan").paginate(TableName=table)
             for item in page["Items"]]
    assert [i["pk"] for i in items if "p_x" in str(i) or "m_x" in str(i) or "o_x" in str(i)] == []
    # The other shopper's are untouched, and the flow's sums stay.
    assert ledger.find("m_y", WS, "p_y", NOW) == _message("m_y", "p_y")
    assert attributions.get(WS, "st", "o_y") is not None
    [row] = DynamoFlowCounters(table).rows(WS, FLOW, NOW.date(), NOW.date())
    assert row.counts == {"sent": 3}
