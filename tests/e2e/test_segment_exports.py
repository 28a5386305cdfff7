"""A segment export on `crm local` over real HTTP: signed orders in, a segment computed, an export started,
carried out by the exports function (its queue, poller and bucket all made from template.yaml), and the
presigned URL fetched from moto's server like any download link."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import urllib.request
from typing import Any

import pytest
from crm_local.demo import http

from tests.builders import compact, placed_order_json, shopify_headers
from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

DOMAIN = "e2e-shop.myshopify.com"  # the conftest's store
SECRET = "e2e-secret"
SHOPPERS = {"ann.export@example.com": 'Ann "Nan", Jr', "zoe.export@example.com": "Zoë", "bo.export@example.com": "Bo"}


def send_order(stack: LocalStack, email: str, first_name: str, order_id: int) -> None:
    sample = placed_order_json()
    account = {**sample["customer"], "id": int(hashlib.sha256(email.encode()).hexdigest()[:12], 16), "email": email,
               "first_name": first_name}
    body = compact({**sample, "id": order_id, "email": email, "contact_email": email, "customer": account})
    headers = shopify_headers(body, secret=SECRET, domain=DOMAIN, delivery_id=f"export-{order_id}")
    assert stack.post("/webhooks/shopify", body, headers)[0] == 200


def call(stack: LocalStack, method: str, path: str, api_key: str, body: Any = None) -> tuple[int, Any]:
    raw = json.dumps(body).encode() if body is not None else None
    return http(method, stack.api_url + path, raw, {"x-api-key": api_key, "content-type": "application/json"})


def wait_for(stack: LocalStack, path: str, api_key: str, states: tuple[str, ...], timeout: float = 30.0) -> Any:
    """GET ``path`` until its status is one of ``states``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, answer = call(stack, "GET", path, api_key)
        assert status == 200, answer
        if answer["status"] in states:
            return answer
        time.sleep(0.2)
    raise AssertionError(f"{path} never reached {states}: {answer}")


def test_an_export_is_written_by_the_exports_function_and_downloaded_over_http(
        local_stack: LocalStack, store: dict[str, str]) -> None:
    assert "ExportQueueUrl" in local_stack.outputs() and "ExportsBucketName" in local_stack.outputs()
    for number, (email, name) in enumerate(SHOPPERS.items()):
        send_order(local_stack, email, name, 9_100_000_000 + number)
    local_stack.wait_drained()
    key = store["api_key"]
    customers = {}
    for email in SHOPPERS:
        status, customer = call(local_stack, "GET", f"/customers?email={email}", key)
        assert status == 200, customer
        customers[email] = customer

    document = {"name": "Example shoppers", "definition": {"field": "email_domain", "op": "eq", "value": "example.com"}}
    status, segment = call(local_stack, "POST", "/segments", key, document)
    assert status == 201, segment
    status, run = call(local_stack, "POST", f"/segments/{segment['id']}/recompute", key)
    assert status == 202, run
    wait_for(local_stack, f"/segment-runs/{run['run_id']}", key, ("done",))

    status, job = call(local_stack, "POST", f"/segments/{segment['id']}/exports", key,
                       {"format": "csv", "fields": ["email", "first_name", "total_spent"]})
    assert (status, job["status"]) == (202, "queued"), job
    path = f"/segments/{segment['id']}/exports/{job['export_id']}"
    done = wait_for(local_stack, path, key, ("done", "failed"))
    assert done["status"] == "done", done
    assert done["url"].startswith(local_stack.aws_endpoint + "/")  # moto's server: the endpoint configured

    with urllib.request.urlopen(done["url"], timeout=10) as response:  # no credentials, as a browser would
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        content = response.read()
    assert len(content) == done["bytes"] and content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["email", "first_name", "total_spent"]
    exported = {row[0]: row for row in rows[1:]}
    assert len(rows) - 1 == done["rows"] and set(SHOPPERS) <= set(exported)
    for email, customer in customers.items():
        assert exported[email] == [email, customer["first_name"] or "", customer["total_spent"]]

    # The same segment as a Meta customer file: a shopper's hashed email is in it exactly when subscribed.
    status, audience = call(local_stack, "POST", f"/segments/{segment['id']}/exports", key,
                            {"format": "meta_audience"})
    assert status == 202, audience
    written = wait_for(local_stack, f"/segments/{segment['id']}/exports/{audience['export_id']}", key,
                       ("done", "failed"))
    assert written["status"] == "done", written
    with urllib.request.urlopen(written["url"], timeout=10) as response:
        file = list(csv.reader(io.StringIO(response.read().decode("utf-8"), newline="")))
    assert file[0] == ["email", "phone", "fn", "ln", "country"]
    hashed = {row[0] for row in file[1:]}
    subscribed = {email for email, customer in customers.items()
                  if (customer["consents"].get("email") or {}).get("state") == "subscribed"}
    assert subscribed, customers  # the sample order accepts marketing: the check below must have something to find
    for email in SHOPPERS:
        assert (hashlib.sha256(email.encode()).hexdigest() in hashed) == (email in subscribed)

    # Another workspace's key sees neither the job nor the segment.
    other = json.loads(local_stack.crm("store", "add", "--platform", "shopify", "--domain",
                                       "export-other.myshopify.com", "--webhook-secret", "other-secret"))
    assert call(local_stack, "GET", path, other["api_key"])[0] == 404
    assert call(local_stack, "POST", f"/segments/{segment['id']}/exports", other["api_key"])[0] == 404
