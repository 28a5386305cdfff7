"""A flow message's links on the stack provisioned from template.yaml: an SMS's short link on the public track
function (302 to the shop, the click noted on the flows queue) and a flow email's unsubscribe link, each then
recorded by the flows function on its message and counted on its flow's rows; an erasure takes the short links
of the shopper."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

import pytest
from chalice.test import Client
from crm.adapters.flow_stats import DynamoFlowCounters, DynamoMessageLedger
from crm.adapters.links import DynamoShortLinks
from crm.adapters.privacy import DynamoPrivacyStore
from crm.adapters.secrets import LinkSigningKeys
from crm.adapters.stores import DynamoStoreDirectory
from crm.clock import utc_now
from crm.messaging.shortlinks import SmsLinks
from crm.messaging.unsubscribe import LinkOrigin, LinkPurpose, claims_for, sign
from crm.models.consent import Channel
from crm.models.flow_stats import MessageRecord
from crm.models.stores import Platform, StoreRegistration
from crm.ports import Erasure
from crm.stores import register_store
from crm_local.lambdas import Function, load_handler
from crm_local.provision import Provisioned

from tests.aws import client, queue_arn, receive_all, sqs_event

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]
FLOW = "builtin:abandoned_checkout"
PROFILE = "p_0123456789abcdef"


@pytest.fixture
def registration(provisioned: Provisioned) -> StoreRegistration:
    return register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY,
                          "short-links.myshopify.com", "secret", utc_now())


def _track(provisioned: Provisioned, function_env: UseEnv) -> Client:
    function_env("TrackFunction")
    spec = provisioned.functions["TrackFunction"]
    return Client(load_handler(spec.code_path, spec.handler, spec.logical_id))


def _sent(provisioned: Provisioned, workspace_id: str, message_id: str, channel: str, step_id: str) -> None:
    DynamoMessageLedger(provisioned.outputs["TableName"]).record_sent(MessageRecord(
        workspace_id=workspace_id, profile_id=PROFILE, message_id=message_id, channel=channel,  # type: ignore[arg-type]
        flow_id=FLOW, flow_version=1, step_id=step_id, run_id="run_1", trigger_type="CheckoutStarted",
        sent_at=utc_now()))


def _flows_function_takes_the_notes(provisioned: Provisioned, function_env: UseEnv) -> list[dict[str, object]]:
    queue = provisioned.physical["FlowsQueue"].ref
    messages = receive_all(queue)
    function_env("FlowsFunction")
    assert Function(provisioned.functions["FlowsFunction"]).invoke(sqs_event(messages, queue_arn(queue))) == {
        "batchItemFailures": []}
    return [json.loads(m["Body"]) for m in messages]


def _counts(provisioned: Provisioned, workspace_id: str) -> dict[tuple[str, str], dict[str, Decimal]]:
    today = utc_now().date()
    rows = DynamoFlowCounters(provisioned.outputs["TableName"]).rows(workspace_id, FLOW, date(2020, 1, 1),
                                                                      today + timedelta(days=1))
    return {(row.step_id, row.variant): row.counts for row in rows}


def test_an_sms_short_link_redirects_and_its_click_is_counted_once(
        provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration) -> None:
    workspace = registration.workspace_id
    keys = LinkSigningKeys(provisioned.physical["LinkSigningSecret"].ref).keys()
    body = SmsLinks(keys, "https://crm.example/v1", DynamoShortLinks(provisioned.outputs["TableName"])).rewrite(
        "Your cart: https://shop.example/recover/c1?utm_source=sms", workspace, PROFILE,
        LinkOrigin(FLOW, "run_1", "sms_1"), utc_now())
    _sent(provisioned, workspace, "sns-message-1", "sms", "sms_1")
    code = body.removeprefix("Your cart: https://crm.example/v1/r/")

    track = _track(provisioned, function_env)
    for agent in ("Mozilla/5.0 (iPhone)", "Mozilla/5.0 (iPhone)", "facebookexternalhit/1.1 Facebot Twitterbot/1.0"):
        answer = track.http.get(f"/r/{code}", headers={"user-agent": agent})
        assert (answer.status_code, answer.headers["Location"]) == (302, "https://shop.example/recover/c1?utm_source=sms")
    assert track.http.get("/r/AAAAAAAAAAAAAAAA").status_code == 404  # well-formed, never made
    assert track.http.get("/r/not-a-code").status_code == 404

    notes = _flows_function_takes_the_notes(provisioned, function_env)
    assert [(n["kind"], n["type"], n["step_id"]) for n in notes] == [("link_followed", "clicked", "sms_1")] * 2
    assert _counts(provisioned, workspace) == {("-", "-"): {"clicked": Decimal(1)},
                                               ("sms_1", "-"): {"clicked": Decimal(1)}}
    held = DynamoMessageLedger(provisioned.outputs["TableName"]).find("sns-message-1")
    assert held is not None and held.clicked_links == ("https://shop.example/recover/c1?utm_source=sms",)


def test_a_flow_emails_unsubscribe_link_counts_on_its_step(
        provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration) -> None:
    workspace = registration.workspace_id
    keys = LinkSigningKeys(provisioned.physical["LinkSigningSecret"].ref).keys()
    _sent(provisioned, workspace, "ses-message-1", "email", "email_2")
    token = sign(claims_for(LinkPurpose.UNSUBSCRIBE, workspace, PROFILE, "ada@example.com", Channel.EMAIL,
                            registration.store_id, utc_now(), LinkOrigin(FLOW, "run_1", "email_2")), keys)
    answer = _track(provisioned, function_env).http.post(
        f"/unsubscribe/{token}", body="List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    assert receive_all(provisioned.outputs["IngestQueueUrl"])  # the consent statement, as before
    notes = _flows_function_takes_the_notes(provisioned, function_env)
    assert [(n["type"], n["channel"], n["run_id"]) for n in notes] == [("unsubscribed", "email", "run_1")]
    assert _counts(provisioned, workspace) == {("-", "-"): {"unsubscribed": Decimal(1)},
                                               ("email_2", "-"): {"unsubscribed": Decimal(1)}}


def test_an_erasure_takes_the_shoppers_short_links_and_leaves_anothers(provisioned: Provisioned) -> None:
    table = provisioned.outputs["TableName"]
    links = SmsLinks(LinkSigningKeys(provisioned.physical["LinkSigningSecret"].ref).keys(), "https://crm.example/v1",
                     DynamoShortLinks(table))
    codes = {profile: links.rewrite("https://shop.example/c?for=" + profile, "ws_a", profile,
                                    LinkOrigin(FLOW, f"run_{profile}", "sms_1"), utc_now())
             .removeprefix("https://crm.example/v1/r/") for profile in ("p_x", "p_y")}
    DynamoPrivacyStore(table).erase(Erasure(workspace_id="ws_a", profile_ids=("p_x",), orders=(), customers=(),
                                            events=(), identities=()))
    assert DynamoShortLinks(table).get(codes["p_x"]) is None
    held = DynamoShortLinks(table).get(codes["p_y"])
    assert held is not None and held.url == "https://shop.example/c?for=p_y"
    items = [item for page in client("dynamodb").get_paginator("scan").paginate(TableName=table)
             for item in page["Items"]]
    assert [item["pk"] for item in items if "p_x" in str(item) or codes["p_x"] in str(item)] == []
