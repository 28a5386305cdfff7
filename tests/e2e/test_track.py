"""Storefront tracking over real HTTP on `crm local`: POST /track with the store's write key, CORS included;
and `crm store add --workspace` adding a second store to a workspace."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime

import pytest

from tests.builders import ROOT
from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

ORIGIN = "https://e2e-track.example"


def send(stack: LocalStack, method: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, dict[str, str],
                                                                                              bytes]:
    request = urllib.request.Request(stack.api_url + "/track", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def page_views(write_key: str, count: int = 1) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps({"write_key": write_key, "anonymous_id": str(uuid.uuid4()), "events": [
        {"type": "page_viewed", "event_id": str(uuid.uuid4()), "occurred_at": now, "url": f"{ORIGIN}/",
         "referrer": "https://news.example/story"} for _ in range(count)]}).encode()


@pytest.fixture(scope="module")
def tracked_store(local_stack: LocalStack) -> dict[str, str]:
    registered: dict[str, str] = json.loads(local_stack.crm(
        "store", "add", "--platform", "custom", "--domain", "e2e-track.example", "--webhook-secret", "unused",
        "--origin", ORIGIN))
    return registered


def test_store_add_prints_one_object_with_both_keys_and_joins_existing_workspaces(
        local_stack: LocalStack, tracked_store: dict[str, str]) -> None:
    assert tracked_store["write_key"].startswith("wk_") and len(tracked_store["write_key"]) == 27
    assert tracked_store["api_key"].startswith("crm_")
    assert tracked_store["allowed_origins"] == [ORIGIN]

    joined = json.loads(local_stack.crm(
        "store", "add", "--platform", "shopify", "--domain", "e2e-second.myshopify.com", "--webhook-secret", "s",
        "--workspace", tracked_store["workspace_id"]))
    assert joined["workspace_id"] == tracked_store["workspace_id"]
    assert joined["store_id"] != tracked_store["store_id"]
    assert joined["api_key"] != tracked_store["api_key"]
    assert local_stack.get("/customers?email=nobody@example.com", joined["api_key"])[0] == 404  # a working key

    missing = subprocess.run(
        [sys.executable, "-m", "crm_local.cli", "store", "add", "--platform", "shopify", "--domain",
         "e2e-third.myshopify.com", "--webhook-secret", "s", "--workspace", "ws_does_not_exist"],
        env=local_stack.env(), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2
    assert "ws_does_not_exist does not exist" in missing.stderr
    assert missing.stdout == ""


def test_track_over_http(local_stack: LocalStack, tracked_store: dict[str, str]) -> None:
    write_key = tracked_store["write_key"]
    # What the snippet's navigator.sendBeacon sends: a text/plain body, no custom headers, so no preflight.
    status, headers, body = send(local_stack, "POST", page_views(write_key, 3),
                                 {"Content-Type": "text/plain;charset=UTF-8", "Origin": ORIGIN})
    assert status == 202, body
    assert json.loads(body) == {"status": "accepted", "events": 3}
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Vary"] == "Origin"

    status, headers, _ = send(local_stack, "OPTIONS", None, {
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-crm-write-key"})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-CRM-Write-Key" in headers["Access-Control-Allow-Headers"]
    assert int(headers["Access-Control-Max-Age"]) > 0

    status, _, body = send(local_stack, "POST", page_views("wk_unknownUnknownUnknown0"),
                           {"Content-Type": "application/json", "Origin": ORIGIN})
    assert status == 401 and json.loads(body)["error"] == "unknown write key"

    status, headers, _ = send(local_stack, "POST", page_views(write_key),
                              {"Content-Type": "application/json", "Origin": "https://elsewhere.example"})
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers

    status, _, body = send(local_stack, "POST", b" " * (32 * 1024 + 1),
                           {"Content-Type": "application/json", "Origin": ORIGIN})
    assert status == 413, body

    status, _, body = send(local_stack, "POST", page_views(write_key).replace(b'"page_viewed"', b'"page_seen"'),
                           {"Content-Type": "application/json", "Origin": ORIGIN})
    assert status == 400 and "events.0.type" in json.loads(body)["error"]

    local_stack.wait_drained()  # the profiles function read the accepted request without parking it
    dlq = local_stack.client("sqs").receive_message(QueueUrl=local_stack.outputs()["IngestDeadLetterQueueUrl"])
    assert dlq.get("Messages", []) == []
