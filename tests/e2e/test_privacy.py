"""Erasure on `crm local`: two tenants know one shopper; a signed redaction in one leaves the other's data whole,
and `crm privacy status` follows the privacy function's job, which the local runtime polls from the template."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from crm.archive import unframe

from tests.builders import compact, fixture_json, placed_order_json, shopify_headers
from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

EMAIL = "shared.shopper@example.com"
TENANTS = {"a": ("e2e-privacy-a.myshopify.com", "privacy-a-secret"),
           "b": ("e2e-privacy-b.myshopify.com", "privacy-b-secret")}


def _send(stack: LocalStack, tenant: str, topic: str, payload: dict[str, Any], delivery_id: str) -> None:
    domain, secret = TENANTS[tenant]
    body = compact(payload)
    status, answer = stack.post("/webhooks/shopify", body, shopify_headers(body, secret=secret, domain=domain,
                                                                            topic=topic, delivery_id=delivery_id))
    assert status == 200, answer


def _frames_naming_the_shopper(stack: LocalStack) -> dict[str, int]:
    s3, bucket = stack.client("s3"), stack.outputs()["ArchiveBucketName"]
    found: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="deliveries/"):
        for listed in page.get("Contents", []):
            for header, body in unframe(s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read()):
                if EMAIL.encode() in body:
                    found[header.workspace_id] = found.get(header.workspace_id, 0) + 1
    return found


def test_a_redaction_erases_the_shopper_from_its_own_workspace_only(local_stack: LocalStack) -> None:
    stack = local_stack
    stores = {tenant: json.loads(stack.crm("store", "add", "--platform", "shopify", "--domain", domain,
                                           "--webhook-secret", secret))
              for tenant, (domain, secret) in TENANTS.items()}
    order = placed_order_json(id=7_700_000_000_001, email=EMAIL, contact_email=EMAIL,
                              customer={**placed_order_json()["customer"], "id": 7_600_000_000_001, "email": EMAIL})
    for tenant in TENANTS:
        _send(stack, tenant, "orders/create", order, f"{tenant}-order")
    stack.wait_drained()
    workspaces = {tenant: stores[tenant]["workspace_id"] for tenant in TENANTS}
    assert _frames_naming_the_shopper(stack) == {workspaces["a"]: 1, workspaces["b"]: 1}

    _send(stack, "a", "customers/redact", {**fixture_json("customers/redact"), "shop_domain": TENANTS["a"][0],
                                           "customer": {"id": 7_600_000_000_001, "email": EMAIL, "phone": None},
                                           "orders_to_redact": [7_700_000_000_001]}, "a-redact")
    deadline, status = time.monotonic() + 60, {}
    while time.monotonic() < deadline and status.get("stage") != "done":
        time.sleep(0.5)
        if _known(stack, workspaces["a"]):
            status = json.loads(stack.crm("privacy", "status", "--workspace", workspaces["a"], "--request",
                                          "a-redact"))
    assert status.get("stage") == "done", status
    assert status["profiles_erased"] == 1 and status["archive"]["deliveries_removed"] >= 1

    assert _frames_naming_the_shopper(stack) == {workspaces["b"]: 1}
    found = {tenant: stack.get(f"/customers?email={EMAIL}", stores[tenant]["api_key"]) for tenant in TENANTS}
    assert (found["b"][0], found["b"][1]["email"]) == (200, EMAIL)
    assert found["a"][0] == 404, found["a"]


def _known(stack: LocalStack, workspace_id: str) -> bool:
    """The job exists (the profiles function has handed the request over): `crm privacy status` answers 0."""
    table = stack.outputs()["TableName"]
    found = stack.client("dynamodb").get_item(TableName=table, Key={
        "pk": {"S": f"WS#{workspace_id}#PRIVACY#a-redact"}, "sk": {"S": "JOB"}})
    return "Item" in found
