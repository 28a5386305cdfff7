"""Segments kept current on `crm local`, over real HTTP: a shopper's own events move her into a segment
within seconds (the stream refresh), SegmentEntered reaches the flows (the outbox sends it to their queue:
a live flow on the segment starts a run for her), and a recomputation run fans out
through the task queue, started by the API, by `crm segments run`, and by creating a segment."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from crm_local.demo import http

from tests.e2e import waiting
from tests.e2e.conftest import LocalStack
from tests.e2e.test_track import send

pytestmark = pytest.mark.e2e

ORIGIN = "https://e2e-segments.example"
WITHIN_SECONDS = 20.0


def eventually(check: Callable[[], Any], what: str, timeout: float = WITHIN_SECONDS) -> Any:
    return waiting.eventually(check, what, timeout)


@pytest.fixture(scope="module")
def shop(local_stack: LocalStack) -> dict[str, str]:
    registered: dict[str, str] = json.loads(local_stack.crm(
        "store", "add", "--platform", "custom", "--domain", "e2e-segments.example", "--webhook-secret", "unused",
        "--origin", ORIGIN))
    return registered


@pytest.fixture(scope="module")
def segment_flow(local_stack: LocalStack, shop: dict[str, str]) -> str:
    """A live flow started by entering the window shoppers segment, as a store would set one up; its id."""
    headers = {"x-api-key": shop["api_key"], "content-type": "application/json"}
    status, created = local_stack.post("/flows", json.dumps({
        "name": "Window shoppers", "trigger": {"kind": "segment", "segment_id": "builtin:window_shoppers",
                                               "on": "entered"},
        "reentry": {"mode": "every_time"}, "steps": [{"kind": "tag", "id": "label", "tag": "window"}]}).encode(),
        headers)
    assert status == 201, created
    flow_id = str(created["id"])
    status, answer = http("PUT", f"{local_stack.api_url}/flows/{quote(flow_id, safe=':')}/status",
                          json.dumps({"status": "live"}).encode(), headers)
    assert status == 200, answer
    return flow_id


def track(stack: LocalStack, shop: dict[str, str], anonymous_id: str, *events: dict[str, Any]) -> None:
    now = datetime.now(UTC).isoformat()
    body = json.dumps({"write_key": shop["write_key"], "anonymous_id": anonymous_id, "events": [
        {"event_id": str(uuid.uuid4()), "occurred_at": now, "url": f"{ORIGIN}/p/1", **event} for event in events]})
    status, _, answer = send(stack, "POST", body.encode(), {"Origin": ORIGIN, "Content-Type": "application/json"})
    assert status == 202, answer


def members(stack: LocalStack, shop: dict[str, str], segment_id: str) -> set[str]:
    status, page = stack.get(f"/segments/{segment_id}/members?limit=1000", shop["api_key"])
    assert status == 200, page
    return {m["profile_id"] for m in page["members"]}


def run_done(stack: LocalStack, shop: dict[str, str], run_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        status, run = stack.get(f"/segment-runs/{run_id}", shop["api_key"])
        assert status == 200, run
        return run if run["status"] == "done" else None

    done: dict[str, Any] = eventually(check, f"run {run_id} done")
    return done


def test_a_shoppers_own_events_move_her_into_a_segment_within_seconds(
        local_stack: LocalStack, shop: dict[str, str], segment_flow: str) -> None:
    browser = str(uuid.uuid4())
    track(local_stack, shop, browser, {"type": "page_viewed"}, {"type": "product_viewed"},
          {"type": "identify", "email": "Window.Shopper@Example.com"})
    _, profile = eventually(
        lambda: (answer := local_stack.get("/customers?email=window.shopper@example.com", shop["api_key"]))[0] == 200
        and answer, "the profile")
    assert members(local_stack, shop, "builtin:window_shoppers") == set()  # two views: not yet

    started = time.monotonic()
    track(local_stack, shop, browser, {"type": "product_viewed"})
    eventually(lambda: profile["profile_id"] in members(local_stack, shop, "builtin:window_shoppers"),
               "window shopper after the third view")
    moved_in = time.monotonic() - started
    assert moved_in < WITHIN_SECONDS

    def runs() -> list[dict[str, Any]]:
        status, answer = local_stack.get(f"/flows/{quote(segment_flow, safe=':')}/runs"
                                         f"?profile_id={quote(profile['profile_id'])}", shop["api_key"])
        assert status == 200, answer
        found: list[dict[str, Any]] = answer["runs"] if isinstance(answer, dict) else answer
        return found

    [run] = eventually(runs, "a run of the segment's flow (SegmentEntered on the flows queue)")
    assert run["profile_id"] == profile["profile_id"]
    # A size is what a run counted (docs/segments.md), and none has run: members move, the size waits.
    listed = {s["id"]: s for s in local_stack.get("/segments", shop["api_key"])[1]["segments"]}
    assert listed["builtin:window_shoppers"]["size"] is None


def test_runs_fan_out_through_the_task_queue_on_request_and_for_a_new_segment(
        local_stack: LocalStack, shop: dict[str, str]) -> None:
    status, created = local_stack.post("/segments", json.dumps({"name": "Browsers", "definition": {
        "event": "product_viewed", "op": "at_least", "count": 2}}).encode(),
        {"x-api-key": shop["api_key"], "content-type": "application/json"})
    assert status == 201, created
    done = run_done(local_stack, shop, created["run"]["run_id"])
    assert done["shares_evaluated"] == done["shares"] >= 1
    window_shoppers = members(local_stack, shop, "builtin:window_shoppers")
    assert members(local_stack, shop, created["id"]) == window_shoppers != set()

    status, requested = local_stack.post(f"/segments/{created['id']}/recompute", b"",
                                         {"x-api-key": shop["api_key"]})
    assert status == 202
    again = run_done(local_stack, shop, requested["run_id"])
    assert (again["entered"], again["exited"]) == (0, 0)  # nothing changed: nothing written

    runs = json.loads(local_stack.crm("segments", "run", "--workspace", shop["workspace_id"]))["runs"]
    assert run_done(local_stack, shop, runs[shop["workspace_id"]])["reason"] == "operator"


def test_another_workspace_sees_neither_the_run_nor_the_members(local_stack: LocalStack,
                                                                 shop: dict[str, str]) -> None:
    other: dict[str, str] = json.loads(local_stack.crm(
        "store", "add", "--platform", "shopify", "--domain", "e2e-segments-other.myshopify.com",
        "--webhook-secret", "s"))
    status, requested = local_stack.post("/segments/builtin:window_shoppers/recompute", b"",
                                         {"x-api-key": shop["api_key"]})
    assert status == 202
    assert local_stack.get(f"/segment-runs/{requested['run_id']}", other["api_key"])[0] == 404
    status, page = local_stack.get("/segments/builtin:window_shoppers/members", other["api_key"])
    assert status == 200 and page["members"] == []
