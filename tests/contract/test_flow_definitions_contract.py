"""One contract for the flow catalogue and the messaging store: the in-memory fakes and the DynamoDB adapters
(crm.adapters.flow_definitions), with the built-in defaults the adapters add checked on their own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from crm.adapters.flow_definitions import DynamoFlowCatalogue, DynamoMessagingStore
from crm.flows.builtin import ABANDONED_CHECKOUT, BUILTIN_FLOWS
from crm.flows.defaults import BUILTIN_SINCE
from crm.flows.ports import FlowCatalogue, MessagingStore
from crm.messaging.defaults import ABANDONED_CHECKOUT_1, TEMPLATES
from crm.models.flows import FlowDefinition, FlowRecord, FlowStatus
from crm.models.messaging import EmailTemplate, MessagingSettings, QuietHours, SmsTemplate, TemplateRecord
from crm.ports import ConcurrentUpdate
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.fakes import FakeFlowCatalogue, FakeMessagingStore

WS = "ws_a"
DEFINITION = FlowDefinition.model_validate({
    "name": "Big orders", "trigger": {"kind": "event", "event": "OrderPlaced",
                                      "where": [{"property": "total_price", "op": "gte", "value": Decimal("100.50")}]},
    "reentry": {"mode": "once_per", "days": 30},
    "steps": [{"kind": "delay", "id": "wait", "duration": timedelta(hours=36)},
              {"kind": "random", "id": "ab", "paths": [
                  {"weight": 50, "steps": [{"kind": "email", "id": "a", "template_id": "thanks"}]},
                  {"weight": 50, "steps": [{"kind": "tag", "id": "b", "tag": "big"}]}]}]})


@dataclass
class Backend:
    flows: FlowCatalogue
    messaging: MessagingStore


@pytest.fixture(params=["fake", pytest.param("dynamodb", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "fake":
        return Backend(FakeFlowCatalogue(), FakeMessagingStore())
    provisioned: Provisioned = request.getfixturevalue("provisioned")
    table = provisioned.outputs["TableName"]
    # Without the built-in defaults, which the fakes do not have (tested below on their own).
    return Backend(DynamoFlowCatalogue(table, defaults=dict), DynamoMessagingStore(table, defaults=dict))


def flow(flow_id: str = "big", workspace_id: str = WS, version: int = 1) -> FlowRecord:
    return FlowRecord(workspace_id=workspace_id, flow_id=flow_id, version=version, definition=DEFINITION,
                      created_at=NOW, updated_at=NOW + timedelta(minutes=version))


def test_a_flow_round_trips_with_its_amounts_and_durations(backend: Backend) -> None:
    backend.flows.put_flow(flow(), None)
    got = backend.flows.get_flow(WS, "big")
    assert got == flow()
    assert got is not None and got.definition.trigger.where[0].value == Decimal("100.50")  # type: ignore[union-attr]


def test_a_flow_is_created_once_and_saved_at_the_version_read(backend: Backend) -> None:
    backend.flows.put_flow(flow(), None)
    with pytest.raises(ConcurrentUpdate):
        backend.flows.put_flow(flow(), None)
    live = flow(version=2).model_copy(update={"status": FlowStatus.LIVE})
    backend.flows.put_flow(live, 1)
    with pytest.raises(ConcurrentUpdate):
        backend.flows.put_flow(flow(version=3), 1)
    assert backend.flows.get_flow(WS, "big") == live


def test_flows_are_listed_by_id_per_workspace_and_deleted(backend: Backend) -> None:
    for flow_id, workspace_id in (("b", WS), ("a", WS), ("c", "ws_b")):
        backend.flows.put_flow(flow(flow_id, workspace_id), None)
    assert [f.flow_id for f in backend.flows.list_flows(WS)] == ["a", "b"]
    assert backend.flows.delete_flow(WS, "a") is True
    assert backend.flows.delete_flow(WS, "a") is False
    assert backend.flows.get_flow(WS, "a") is None and backend.flows.get_flow(WS, "c") is None
    assert [f.flow_id for f in backend.flows.list_flows("ws_b")] == ["c"]


def test_templates_and_settings_per_workspace(backend: Backend) -> None:
    email = TemplateRecord(workspace_id=WS, template_id="thanks", created_at=NOW, updated_at=NOW,
                           template=EmailTemplate(name="Thanks", subject="Hi", html="<p>x</p>", marketing=False))
    sms = TemplateRecord(workspace_id=WS, template_id="nudge", created_at=NOW, updated_at=NOW,
                         template=SmsTemplate(name="Nudge", body="Come back"))
    for record in (email, sms, sms.model_copy(update={"workspace_id": "ws_b"})):
        backend.messaging.put_template(record)
    assert [t.template_id for t in backend.messaging.list_templates(WS)] == ["nudge", "thanks"]
    assert backend.messaging.get_template(WS, "thanks") == email
    assert backend.messaging.delete_template(WS, "thanks") is True
    assert backend.messaging.delete_template(WS, "thanks") is False
    assert backend.messaging.get_template(WS, "thanks") is None

    chosen = MessagingSettings(from_address="a@shop.example", time_zone="Europe/Paris",
                               quiet_hours=QuietHours(start="20:30", end="09:00"))
    backend.messaging.put_messaging_settings(WS, chosen)
    assert backend.messaging.messaging_settings(WS) == chosen
    assert backend.messaging.messaging_settings("ws_b") != chosen


@pytest.mark.integration
def test_builtins_are_drafts_at_version_0_until_saved(provisioned: Provisioned) -> None:
    table = provisioned.outputs["TableName"]
    flows, messaging = DynamoFlowCatalogue(table), DynamoMessagingStore(table)
    default = flows.get_flow(WS, ABANDONED_CHECKOUT)
    assert default is not None and (default.version, default.status, default.created_at) == (
        0, FlowStatus.DRAFT, BUILTIN_SINCE)
    assert {f.flow_id for f in flows.list_flows(WS)} == set(BUILTIN_FLOWS)
    saved = default.model_copy(update={"version": 1, "status": FlowStatus.LIVE})
    flows.put_flow(saved, 0)
    with pytest.raises(ConcurrentUpdate):
        flows.put_flow(saved, 0)
    assert flows.get_flow(WS, ABANDONED_CHECKOUT) == saved
    assert flows.get_flow("ws_b", ABANDONED_CHECKOUT) == default.model_copy(update={"workspace_id": "ws_b"})
    assert flows.delete_flow(WS, ABANDONED_CHECKOUT) is True
    assert flows.get_flow(WS, ABANDONED_CHECKOUT) == default
    assert messaging.get_template(WS, ABANDONED_CHECKOUT_1) is not None
    assert {t.template_id for t in messaging.list_templates(WS)} == set(TEMPLATES)
