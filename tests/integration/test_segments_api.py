"""The segments API (Chalice) on the provisioned stack: CRUD, preview, recompute, members, export, isolation."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from chalice.test import Client
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.profile import Profile
from crm.models.stores import Platform, StoreRegistration
from crm.ports import Change
from crm.stores import register_store
from crm_local.lambdas import load_handler
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.segment_workers import SegmentWorkers

pytestmark = pytest.mark.integration

BUYERS = {"name": "Buyers", "definition": {"field": "orders_count", "op": "gte", "value": 1}}
TRICKY = 'Ann "Nan", Jr'


@dataclass
class World:
    api: Client
    a: StoreRegistration
    b: StoreRegistration
    workers: SegmentWorkers

    def call(self, method: str, path: str, key: str | None = None, body: Any = None) -> Any:
        headers = {"x-api-key": key or self.a.api_key, "content-type": "application/json"}
        raw = json.dumps(body).encode() if body is not None else b""
        return getattr(self.api.http, method)(path, headers=headers, body=raw)

    def recompute(self, segment_id: str, key: str | None = None) -> dict[str, Any]:
        """Ask for a run, let the task workers carry it out, and answer the finished run."""
        started = self.call("post", f"/segments/{segment_id}/recompute", key=key)
        assert started.status_code == 202, started.body
        assert started.headers["Location"] == f"/segment-runs/{started.json_body['run_id']}"
        self.workers.drain()
        done = self.call("get", started.headers["Location"], key=key).json_body
        assert done["status"] == "done", done
        return done  # type: ignore[no-any-return]


def profile(workspace_id: str, profile_id: str, orders: int, **extra: Any) -> Profile:
    return Profile(workspace_id=workspace_id, profile_id=profile_id, created_at=NOW - timedelta(days=40),
                   updated_at=NOW, orders_count=orders, total_spent=Decimal("12.50") * orders,
                   first_order_at=NOW - timedelta(days=30) if orders else None,
                   last_order_at=NOW - timedelta(days=2) if orders else None, **extra)


@pytest.fixture
def world(provisioned: Provisioned, function_env: Callable[[str], None]) -> World:
    """Workspace a: 5 buyers (one with a comma and quotes in the name, one UTF-8, some subscribed by email),
    one visitor and a merged profile; workspace b: one buyer."""
    table = provisioned.outputs["TableName"]
    directory, repository = DynamoStoreDirectory(table), DynamoProfileRepository(table)
    a = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "secret-a", NOW)
    b = register_store(directory, Platform.SHOPIFY, "b.myshopify.com", "secret-b", NOW)
    subscribed = Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="test", at=NOW)
    unsubscribed = subscribed.model_copy(update={"state": ConsentState.UNSUBSCRIBED})
    ws = a.workspace_id
    held = [
        profile(ws, "pa1", 1, email="ann@example.com", first_name=TRICKY, consents={"email": subscribed}),
        profile(ws, "pa2", 2, email="zoe@example.com", first_name="Zoë", consents={"email": unsubscribed}),
        profile(ws, "pa3", 3, email="bo@example.com", first_name="Bo", consents={"email": subscribed}),
        profile(ws, "pa4", 1, email="cy@example.com"),
        profile(ws, "pa5", 4, email="di@example.com"),
        profile(ws, "pa6", 0, email="visitor@example.com"),
        profile(ws, "pa7", 9, email="gone@example.com", merged_into="pa5"),
        profile(b.workspace_id, "pb1", 1, email="other@example.com", first_name="Other"),
    ]
    for item in held:
        repository.commit(Change(workspace_id=item.workspace_id, profiles=((item, None),)))
    workers = SegmentWorkers(provisioned, function_env)
    workers.drain()  # creating a segment starts a run: the world starts with none pending
    function_env("ApiFunction")
    spec = provisioned.functions["ApiFunction"]
    return World(Client(load_handler(spec.code_path, spec.handler, spec.logical_id)), a, b, workers)


def test_create_get_replace_list_delete(world: World) -> None:
    created = world.call("post", "/segments", body=BUYERS)
    assert created.status_code == 201
    segment_id = created.json_body["id"]
    assert segment_id.startswith("seg_") and created.headers["Location"] == f"/segments/{segment_id}"

    got = world.call("get", f"/segments/{segment_id}").json_body
    assert (got["name"], got["version"], got["definition"]) == ("Buyers", 1, BUYERS["definition"])

    repeat = {"name": "Repeat", "definition": {"field": "orders_count", "op": "gte", "value": 2}}
    replaced = world.call("put", f"/segments/{segment_id}", body=repeat)
    assert replaced.status_code == 200 and replaced.json_body["version"] == 2

    listed = {s["id"]: s for s in world.call("get", "/segments").json_body["segments"]}
    assert listed[segment_id] == {"id": segment_id, "name": "Repeat", "builtin": False, "size": 0,
                                  "last_computed_at": None}
    assert listed["builtin:vip"]["builtin"] is True

    assert world.call("delete", f"/segments/{segment_id}").status_code == 204
    assert world.call("get", f"/segments/{segment_id}").status_code == 404
    assert segment_id not in {s["id"] for s in world.call("get", "/segments").json_body["segments"]}


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "definition": {"field": "shoe_size", "op": "eq", "value": 1}}, "definition.field"),
    ({"definition": {"field": "orders_count", "op": "gte", "value": 1}}, "name"),
])
def test_an_invalid_definition_is_400_naming_the_field(world: World, body: dict[str, Any], field: str) -> None:
    response = world.call("post", "/segments", body=body)
    assert response.status_code == 400
    assert response.json_body["Message"].startswith(f"{field}:")


def test_a_reference_to_a_segment_the_workspace_does_not_have_is_a_409(world: World) -> None:
    # Well formed by the published schema: what it conflicts with is the workspace's segments, not the document.
    body = {"name": "x", "definition": {"segment": "seg_0000000000000000", "op": "member"}}
    for method, path in (("post", "/segments"), ("post", "/segments/preview")):
        response = world.call(method, path, body=body)
        assert response.status_code == 409, (path, response.json_body)
        assert response.json_body["Message"].startswith("definition: refers to segment 'seg_0000000000000000'")


def test_builtins_cannot_be_replaced_or_deleted(world: World) -> None:
    assert world.call("put", "/segments/builtin:vip", body=BUYERS).status_code == 409
    response = world.call("delete", "/segments/builtin:vip")
    assert response.status_code == 409 and "built-in" in response.json_body["Message"]


def test_preview_saves_nothing(world: World) -> None:
    response = world.call("post", "/segments/preview", body=BUYERS)
    assert response.status_code == 200
    assert response.json_body == {"size": 5, "sample": ["pa1", "pa2", "pa3", "pa4", "pa5"], "complete": True,
                                  "profiles_read": 7, "fraction_read": 1.0}
    assert [s for s in world.call("get", "/segments").json_body["segments"] if not s["builtin"]] == []


def test_recompute_then_page_members(world: World) -> None:
    created = world.call("post", "/segments", body=BUYERS).json_body
    segment_id = created["id"]
    assert created["run"]["status"] == "running" and created["size"] == 0
    world.workers.drain()  # the run creating it started
    first = world.call("get", f"/segments/{segment_id}").json_body
    assert first["size"] == 5 and len(first["growth"]) == 1
    again = world.recompute(segment_id)
    assert (again["profiles"], again["entered"], again["exited"], again["shares"]) == (6, 0, 0, 1)

    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = world.call("get", f"/segments/{segment_id}/members?limit=2{cursor}").json_body
        seen += page["members"]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert [(m["profile_id"], m["email"]) for m in seen] == [
        ("pa1", "ann@example.com"), ("pa2", "zoe@example.com"), ("pa3", "bo@example.com"), ("pa4", "cy@example.com"),
        ("pa5", "di@example.com")]
    view = world.call("get", f"/segments/{segment_id}").json_body
    assert view["size"] == 5 and len(view["growth"]) == 2
    assert world.call("get", f"/segments/{segment_id}/members?limit=0").status_code == 400
    assert world.call("get", f"/segments/{segment_id}/members?cursor=***").status_code == 400


def test_builtin_recompute_is_listed_with_its_size(world: World) -> None:
    world.recompute("builtin:repeat_buyers")
    listed = {s["id"]: s for s in world.call("get", "/segments").json_body["segments"]}
    assert listed["builtin:repeat_buyers"]["size"] == 3  # pa2, pa3 and pa5; pa7's nine orders count on pa5 only
    assert listed["builtin:vip"]["size"] == 1  # ceil(10 % of 5 buyers)


def test_csv_export_round_trips_quotes_and_utf8(world: World) -> None:
    segment_id = world.call("post", "/segments", body=BUYERS).json_body["id"]
    world.workers.drain()

    response = world.call("get", f"/segments/{segment_id}/export?format=csv&fields=email,first_name,total_spent")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.body.startswith(b"\xef\xbb\xbf")  # a UTF-8 BOM, so Excel reads UTF-8
    text = response.body.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["email", "first_name", "total_spent"]
    assert rows[1:] == [["ann@example.com", TRICKY, "12.50"], ["zoe@example.com", "Zoë", "25.00"],
                        ["bo@example.com", "Bo", "37.50"], ["cy@example.com", "", "12.50"],
                        ["di@example.com", "", "50.00"]]
    assert '"Ann ""Nan"", Jr"' in text


def test_jsonl_export_with_the_consent_filter(world: World) -> None:
    segment_id = world.call("post", "/segments", body=BUYERS).json_body["id"]
    world.workers.drain()

    everyone = world.call("get", f"/segments/{segment_id}/export?format=jsonl")
    assert everyone.headers["Content-Type"].startswith("application/x-ndjson")
    assert len(everyone.body.decode().splitlines()) == 5
    response = world.call("get", f"/segments/{segment_id}/export?format=jsonl&fields=email,first_name&consent=email")
    lines = [json.loads(line) for line in response.body.decode("utf-8").splitlines()]
    assert lines == [{"email": "ann@example.com", "first_name": TRICKY}, {"email": "bo@example.com",
                                                                           "first_name": "Bo"}]
    assert world.call("get", f"/segments/{segment_id}/export?fields=password").status_code == 400


def test_another_workspace_cannot_reach_the_segment(world: World) -> None:
    segment_id = world.call("post", "/segments", body=BUYERS).json_body["id"]
    world.workers.drain()
    key_b = world.b.api_key

    run_id = world.call("post", f"/segments/{segment_id}/recompute").json_body["run_id"]
    for method, path in (("get", f"/segments/{segment_id}"), ("post", f"/segments/{segment_id}/recompute"),
                         ("get", f"/segments/{segment_id}/members"), ("get", f"/segments/{segment_id}/export"),
                         ("get", f"/segment-runs/{run_id}"),
                         ("delete", f"/segments/{segment_id}")):
        response = world.call(method, path, key=key_b)
        assert response.status_code == 404, (method, path)
        assert "ann@example.com" not in response.body.decode()
    assert world.call("put", f"/segments/{segment_id}", key=key_b, body=BUYERS).status_code == 404
    assert segment_id not in {s["id"] for s in world.call("get", "/segments", key=key_b).json_body["segments"]}
    # Workspace b's own built-in holds only its own profiles.
    run_a = world.call("get", "/segments/builtin:one_time_buyers").json_body
    world.recompute("builtin:one_time_buyers", key=key_b)
    assert world.call("get", "/segments/builtin:one_time_buyers", key=key_b).json_body["size"] == 1
    assert world.call("get", "/segments/builtin:one_time_buyers").json_body["size"] == run_a["size"] == 2
    assert world.call("get", f"/segments/{segment_id}").status_code == 200


def test_without_a_key_is_401(world: World) -> None:
    assert world.api.http.get("/segments").status_code == 401
