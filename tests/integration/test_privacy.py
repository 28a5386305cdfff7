"""Shopify's compliance topics end to end on the stack from template.yaml: signed deliveries through the
webhooks function, the profiles function carrying the requests out, then the whole table and bucket read back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from chalice.test import Client
from crm.adapters.flow_stats import DynamoAttributions
from crm.adapters.items import from_item
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.archive import ArchivedDelivery, frame, unframe
from crm.models.flow_stats import Attribution
from crm.models.privacy import Terms
from crm.models.stores import Platform, StoreRegistration
from crm.privacy import mentions
from crm.stores import register_store
from crm_local.cli import main
from crm_local.lambdas import Function, load_handler
from crm_local.provision import Provisioned

from tests.aws import Countdown, client, queue_arn, receive_all, sqs_event
from tests.builders import DOMAIN, NOW, SECRET, compact, fixture_json, placed_order_json, shopify_headers

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]

# Who is erased: every way the CRM could know her.
XENA = {"email": "xena.warrior@example.com", "phone": "+12025550143", "raw_phone": "(202) 555-0143",
        "customer_id": 7_300_000_000_001, "order_id": 7_400_000_000_001, "first": "Xenophila", "last": "Quartermain",
        "street": "77 Amphipolis Lane", "checkout": "xena-checkout-token-9f3"}
XENA_TERMS = Terms(emails=frozenset({XENA["email"]}))
# Who stays.
YARA = {"email": "yara.keeps@example.com", "customer_id": 7_300_000_000_002, "order_id": 7_400_000_000_002,
        "first": "Yarrowina", "last": "Stays"}


@pytest.fixture
def registration(provisioned: Provisioned) -> StoreRegistration:
    return register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY, DOMAIN, SECRET,
                          NOW)


@pytest.fixture
def webhooks(provisioned: Provisioned, function_env: UseEnv) -> Client:
    function_env("WebhooksFunction")
    spec = provisioned.functions["WebhooksFunction"]
    return Client(load_handler(spec.code_path, spec.handler, spec.logical_id))


def _deliver(webhooks: Client, topic: str, payload: dict[str, Any], delivery_id: str) -> None:
    body = compact(payload)
    answer = webhooks.http.post("/webhooks/shopify", body=body,
                                headers=shopify_headers(body, topic=topic, delivery_id=delivery_id))
    assert answer.status_code == 200, answer.body


def _run_profiles(provisioned: Provisioned, function_env: UseEnv) -> None:
    messages = receive_all(provisioned.outputs["IngestQueueUrl"])
    function_env("ProfilesFunction")
    answer = Function(provisioned.functions["ProfilesFunction"]).invoke(
        sqs_event(messages, queue_arn(provisioned.outputs["IngestQueueUrl"])))
    assert answer == {"batchItemFailures": []}
    assert receive_all(provisioned.outputs["IngestDeadLetterQueueUrl"]) == []
    run_privacy(provisioned, function_env)
    function_env("WebhooksFunction")  # the next delivery goes through the webhooks function again


def run_privacy(provisioned: Provisioned, function_env: UseEnv, objects_per_run: int | None = None) -> int:
    """Invoke the privacy function on its queue until it is empty, as Lambda would; answers the invocations.
    With ``objects_per_run`` each run is told its time is up after that many archive objects."""
    function_env("PrivacyFunction")
    function = Function(provisioned.functions["PrivacyFunction"])
    url = provisioned.outputs["PrivacyQueueUrl"]
    invocations = 0
    while messages := receive_all(url):
        for message in messages:  # batch size 1, as the template's mapping says
            context = Countdown("PrivacyFunction", objects_per_run) if objects_per_run else None
            event = sqs_event([message], queue_arn(url))
            answer = function.invoke(event) if context is None else function.handler(event, context)
            assert answer == {"batchItemFailures": []}
            client("sqs").delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            invocations += 1
    assert receive_all(provisioned.outputs["PrivacyDeadLetterQueueUrl"]) == []
    return invocations


def _shopper_order(person: dict[str, Any], **extra: Any) -> dict[str, Any]:
    sample = placed_order_json()
    address = {**sample["billing_address"], "first_name": person["first"], "last_name": person["last"],
               "address1": person.get("street", "1 Main St"), "phone": person.get("raw_phone")}
    return {**sample, "id": person["order_id"], "email": person["email"], "contact_email": person["email"],
            "phone": person.get("raw_phone"), "billing_address": address, "shipping_address": address,
            "customer": {**sample["customer"], "id": person["customer_id"], "email": person["email"],
                         "first_name": person["first"], "last_name": person["last"],
                         "phone": person.get("phone")}, **extra}


def _everything(provisioned: Provisioned) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    table = provisioned.outputs["TableName"]
    items: list[dict[str, Any]] = []
    for page in client("dynamodb").get_paginator("scan").paginate(TableName=table):
        items += [from_item(item) for item in page["Items"]]
    bucket = provisioned.outputs["ArchiveBucketName"]
    objects = {}
    for page in client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for listed in page.get("Contents", []):
            objects[listed["Key"]] = client("s3").get_object(Bucket=bucket, Key=listed["Key"])["Body"].read()
    return items, objects


def _traces(person: dict[str, Any]) -> list[str]:
    found = [person["email"], str(person["customer_id"]), str(person["order_id"]), person["first"], person["last"]]
    return found + [person[k] for k in ("phone", "raw_phone", "street", "checkout") if k in person]


def _mentioning(term: str, items: list[dict[str, Any]], objects: dict[str, bytes]) -> list[str]:
    where = [f"table {i['pk']} / {i['sk']}" for i in items
             if term.lower() in json.dumps(i, default=str).lower().replace("\\/", "/")]
    return where + [f"bucket {key}" for key, data in objects.items() if term.lower().encode() in data.lower()]


def _credit_to_a_flow(provisioned: Provisioned, registration: StoreRegistration, person: dict[str, Any]) -> None:
    """The shopper's order attributed to a flow email (crm.flows.conversions): an erasure takes the credit too."""
    table = provisioned.outputs["TableName"]
    ws = registration.workspace_id
    profile_id = DynamoProfileRepository(table).profile_id_for_identity(ws, f"email#{person['email']}")
    assert profile_id is not None
    at = datetime(2026, 3, 1, tzinfo=UTC)
    assert DynamoAttributions(table).claim(Attribution(
        workspace_id=ws, store_id=registration.store_id, order_id=str(person["order_id"]), profile_id=profile_id,
        message_id="ses-1", flow_id="builtin:abandoned_checkout", step_id="email_1", channel="email",
        touch="email_click", touched_at=at, ordered_at=at, revenue=Decimal("10.00"), currency="USD"))


def test_after_customers_redact_nothing_of_the_shopper_is_left_but_the_record(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client
) -> None:
    _deliver(webhooks, "orders/create", _shopper_order(XENA), "x-order")
    _deliver(webhooks, "orders/create", _shopper_order(YARA), "y-order")
    checkout = {**fixture_json("checkouts/create"), "token": XENA["checkout"], "email": XENA["email"],
                "customer": {"id": XENA["customer_id"], "email": XENA["email"]}}
    _deliver(webhooks, "checkouts/create", checkout, "x-checkout")
    account = {**fixture_json("customers/update"), "id": XENA["customer_id"], "email": XENA["email"],
               "first_name": XENA["first"], "last_name": XENA["last"], "phone": XENA["phone"]}
    _deliver(webhooks, "customers/update", account, "x-account")
    _run_profiles(provisioned, function_env)
    _credit_to_a_flow(provisioned, registration, XENA)
    items, objects = _everything(provisioned)
    assert _mentioning(XENA["email"], items, objects) and _mentioning(XENA["last"], items, objects)

    redact = {**fixture_json("customers/redact"), "shop_domain": DOMAIN,
              "customer": {"id": XENA["customer_id"], "email": XENA["email"], "phone": XENA["phone"]},
              "orders_to_redact": [XENA["order_id"]]}
    _deliver(webhooks, "customers/redact", redact, "x-redact")
    _run_profiles(provisioned, function_env)

    items, objects = _everything(provisioned)
    left = {term: where for term in _traces(XENA) if (where := _mentioning(term, items, objects))}
    assert left == {}
    [record] = [i for i in items if i["entity"] == "privacy_request"]
    assert record["request"] == "customer_redact" and record["counts"]["profiles"] == 1
    # The other shopper is untouched.
    for term in _traces(YARA):
        assert _mentioning(term, items, objects), term
    repository = DynamoProfileRepository(provisioned.outputs["TableName"])
    assert repository.profile_id_for_identity(registration.workspace_id, f"email#{XENA['email']}") is None

    # Erased stays erased: the same order delivered again (a retry, a replay) makes no profile.
    _deliver(webhooks, "orders/updated", _shopper_order(XENA, updated_at="2030-01-01T00:00:00Z"), "x-late")
    _run_profiles(provisioned, function_env)
    items, _ = _everything(provisioned)
    assert [i for i in items if i["entity"] == "profile" and i.get("email") == XENA["email"]] == []


def test_a_data_request_exports_what_is_held_and_records_where(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client
) -> None:
    _deliver(webhooks, "orders/create", _shopper_order(YARA), "y-order")
    request = {**fixture_json("customers/data_request"), "shop_domain": DOMAIN,
               "customer": {"id": YARA["customer_id"], "email": YARA["email"], "phone": None},
               "orders_requested": [YARA["order_id"]]}
    _deliver(webhooks, "customers/data_request", request, "y-request")
    _run_profiles(provisioned, function_env)

    items, objects = _everything(provisioned)
    [record] = [i for i in items if i["entity"] == "privacy_request"]
    assert record["request"] == "customer_data_request"
    exported = json.loads(objects[record["export_key"]])
    assert [p["email"] for p in exported["profiles"]] == [YARA["email"]]
    assert [o["order_id"] for o in exported["orders"]] == [str(YARA["order_id"])]
    assert {e["type"] for e in exported["timeline"]} >= {"order"}


def test_shop_redact_erases_the_store_and_keeps_the_rest_of_the_workspace(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client
) -> None:
    directory = DynamoStoreDirectory(provisioned.outputs["TableName"])
    other = register_store(directory, Platform.SHOPIFY, "other-shop.myshopify.com", "other-secret", NOW)
    _deliver(webhooks, "orders/create", _shopper_order(XENA), "x-order")
    other_body = compact(_shopper_order(YARA))
    answer = webhooks.http.post("/webhooks/shopify", body=other_body, headers=shopify_headers(
        other_body, secret="other-secret", domain="other-shop.myshopify.com", delivery_id="y-order"))
    assert answer.status_code == 200
    _run_profiles(provisioned, function_env)

    _deliver(webhooks, "shop/redact", {**fixture_json("shop/redact"), "shop_domain": DOMAIN}, "shop-redact")
    _run_profiles(provisioned, function_env)

    items, objects = _everything(provisioned)
    assert {term: where for term in _traces(XENA) if (where := _mentioning(term, items, objects))} == {}
    assert directory.store_by_domain(Platform.SHOPIFY, DOMAIN) is None
    assert directory.store_by_domain(Platform.SHOPIFY, "other-shop.myshopify.com") is not None
    for term in _traces(YARA):
        assert _mentioning(term, items, objects), term
    assert [i for i in items if i["entity"] == "order"] == [
        i for i in items if i["entity"] == "order" and i["store_id"] == other.store_id]


OTHER_DOMAIN, OTHER_SECRET = "other-tenant.myshopify.com", "other-tenant-secret"


def _deliver_to_other(webhooks: Client, topic: str, payload: dict[str, Any], delivery_id: str) -> None:
    body = compact(payload)
    answer = webhooks.http.post("/webhooks/shopify", body=body, headers=shopify_headers(
        body, topic=topic, secret=OTHER_SECRET, domain=OTHER_DOMAIN, delivery_id=delivery_id))
    assert answer.status_code == 200, answer.body


def _frames(objects: dict[str, bytes]) -> list[tuple[ArchivedDelivery, bytes]]:
    return [found for key, data in sorted(objects.items()) if key.startswith("deliveries/")
            for found in unframe(data)]


def _batch_archive_as_firehose_does(provisioned: Provisioned, deliveries_per_object: int) -> None:
    """Firehose writes many deliveries, of every tenant, into one object: put the archive in that shape."""
    bucket = provisioned.outputs["ArchiveBucketName"]
    _, objects = _everything(provisioned)
    framed = [frame(header.envelope(body), body) for header, body in _frames(objects)]
    for key in objects:
        if key.startswith("deliveries/"):
            client("s3").delete_object(Bucket=bucket, Key=key)
    for start in range(0, len(framed), deliveries_per_object):
        client("s3").put_object(Bucket=bucket, Key=f"deliveries/2026/05/01/12/batch-{start:04d}",
                                Body=b"".join(framed[start:start + deliveries_per_object]))


def _two_workspaces_know_xena(provisioned: Provisioned, function_env: UseEnv, webhooks: Client) -> str:
    other = register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY, OTHER_DOMAIN,
                           OTHER_SECRET, NOW)
    for n in range(3):
        _deliver(webhooks, "orders/create", _shopper_order({**XENA, "order_id": XENA["order_id"] + 1000 * n}), f"x-{n}")
        _deliver_to_other(webhooks, "orders/create", _shopper_order({**XENA, "order_id": XENA["order_id"] + 1000 * n}),
                          f"bx-{n}")
    _deliver(webhooks, "orders/create", _shopper_order(YARA), "y-order")
    _run_profiles(provisioned, function_env)
    return other.workspace_id


def _redact_xena(webhooks: Client) -> None:
    _deliver(webhooks, "customers/redact", {
        **fixture_json("customers/redact"), "shop_domain": DOMAIN,
        "customer": {"id": XENA["customer_id"], "email": XENA["email"], "phone": XENA["phone"]},
        "orders_to_redact": [XENA["order_id"]]}, "x-redact")


def test_a_redaction_in_one_workspace_leaves_another_workspaces_archive_and_records_intact(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client
) -> None:
    other_workspace = _two_workspaces_know_xena(provisioned, function_env, webhooks)
    _batch_archive_as_firehose_does(provisioned, deliveries_per_object=4)  # tenants mixed in each object
    _, before = _everything(provisioned)
    others_before = [f for f in _frames(before) if f[0].workspace_id == other_workspace]
    assert len(others_before) == 3 and all(XENA["email"].encode() in body for _, body in others_before)

    _redact_xena(webhooks)
    _run_profiles(provisioned, function_env)

    items, after = _everything(provisioned)
    # The other workspace's deliveries are there, byte for byte, and so are its records of her.
    assert [f for f in _frames(after) if f[0].workspace_id == other_workspace] == others_before
    assert DynamoProfileRepository(provisioned.outputs["TableName"]).profile_id_for_identity(
        other_workspace, f"email#{XENA['email']}") is not None
    # Nothing of her is left in the requesting workspace.
    own = [body for header, body in _frames(after) if header.workspace_id == registration.workspace_id]
    assert own and not [body for body in own if XENA["email"].encode() in body.lower()]
    assert [i for i in items if str(i["pk"]).startswith(f"WS#{registration.workspace_id}#")
            and XENA["email"] in json.dumps(i, default=str)] == []
    [record] = [i for i in items if i["entity"] == "privacy_request"]
    assert record["counts"]["archived_deliveries_removed"] == 4  # three orders and the redaction itself


def test_a_redaction_stopped_for_time_resumes_from_its_cursor_and_ends_as_one_uninterrupted_run_would(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other_workspace = _two_workspaces_know_xena(provisioned, function_env, webhooks)
    _batch_archive_as_firehose_does(provisioned, deliveries_per_object=2)
    _, before = _everything(provisioned)
    kept_by_one_run = {key: b"".join(frame(h.envelope(b), b) for h, b in unframe(data)
                                     if h.workspace_id == other_workspace or not mentions(b, XENA_TERMS))
                       for key, data in before.items() if key.startswith("deliveries/")}

    _redact_xena(webhooks)
    messages = receive_all(provisioned.outputs["IngestQueueUrl"])
    function_env("ProfilesFunction")
    Function(provisioned.functions["ProfilesFunction"]).invoke(
        sqs_event(messages, queue_arn(provisioned.outputs["IngestQueueUrl"])))
    [job] = [i for i in _everything(provisioned)[0] if i["entity"] == "privacy_job"]
    assert job["stage"] == "queued"

    invocations = run_privacy(provisioned, function_env, objects_per_run=1)

    items, after = _everything(provisioned)
    assert invocations > 3  # one archive object per run: it stopped and resumed
    [job] = [i for i in items if i["entity"] == "privacy_job"]
    assert (job["stage"], job["runs"]) == ("done", invocations)
    assert "terms" not in job or not any(job["terms"].values())
    # The redaction's own delivery (archived after the snapshot) is gone too; everything else is as one run
    # would leave it: the other tenant's frames and the requesting tenant's other shoppers' frames, in order.
    survived = {key: data for key, data in after.items() if key.startswith("deliveries/")}
    assert {k: v for k, v in survived.items() if k in kept_by_one_run} == {
        k: v for k, v in kept_by_one_run.items() if v}
    assert not [b for h, b in _frames(after) if h.workspace_id == registration.workspace_id
                and XENA["email"].encode() in b.lower()]
    [record] = [i for i in items if i["entity"] == "privacy_request"]
    assert record["counts"]["archived_deliveries_removed"] == 4

    # What an operator sees of it: progress, no personal data.
    assert main(["--stack", provisioned.stack_name, "privacy", "status", "--workspace", registration.workspace_id,
                 "--request", "x-redact"]) == 0
    status = json.loads(capsys.readouterr().out.splitlines()[-1])  # after the functions' own log lines
    assert (status["stage"], status["runs"], status["profiles_erased"]) == ("done", invocations, 1)
    assert status["archive"]["objects_scanned"] >= 5 and status["archive"]["deliveries_removed"] == 4
    assert "terms" not in status and XENA["email"] not in json.dumps(status)
