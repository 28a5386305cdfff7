"""GET and PUT /segments/settings on the provisioned stack: the built-ins follow the workspace's own settings
at their next computation, each workspace its own, and a bad setting is a 400 naming it."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from chalice.test import Client
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.models.profile import Profile
from crm.models.stores import Platform, StoreRegistration
from crm.ports import Change
from crm.stores import register_store
from crm_local.lambdas import load_handler
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.segment_workers import SegmentWorkers

pytestmark = pytest.mark.integration

DEFAULTS = {"vip_top_percent": 10, "churn_after_days": 180, "window_shopper_min_views": 3, "new_customer_days": 30,
            "cart_abandon_days": 7}
# Workspace a's ten buyers: (profile id, lifetime value, days since their one order). p07 spent what p08 did.
BUYERS = [("p01", 100, 400), ("p02", 200, 200), ("p03", 300, 180), ("p04", 400, 179), ("p05", 500, 120),
          ("p06", 600, 100), ("p07", 800, 99), ("p08", 800, 30), ("p09", 900, 10), ("p10", 1000, 1)]


@dataclass
class World:
    api: Client
    a: StoreRegistration
    b: StoreRegistration
    workers: SegmentWorkers

    def call(self, method: str, path: str, key: str | None = None, body: Any = None, raw: bytes | None = None) -> Any:
        headers = {"x-api-key": key or self.a.api_key, "content-type": "application/json"}
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
        return getattr(self.api.http, method)(path, headers=headers, body=data)

    def members(self, segment_id: str, key: str | None = None) -> list[str]:
        page = self.call("get", f"/segments/{segment_id}/members?limit=1000", key=key).json_body
        return [m["profile_id"] for m in page["members"]]

    def recompute(self, segment_id: str, key: str | None = None) -> list[str]:
        assert self.call("post", f"/segments/{segment_id}/recompute", key=key).status_code == 202
        self.workers.drain()
        return self.members(segment_id, key)


def buyer(workspace_id: str, profile_id: str, spent: int, days_ago: int) -> Profile:
    at = NOW - timedelta(days=days_ago)
    return Profile(workspace_id=workspace_id, profile_id=profile_id, created_at=at, updated_at=at, orders_count=1,
                   total_spent=Decimal(spent), first_order_at=at, last_order_at=at)


@pytest.fixture
def world(provisioned: Provisioned, function_env: Callable[[str], None], monkeypatch: pytest.MonkeyPatch) -> World:
    """Workspace a: BUYERS and a visitor; workspace b: one buyer whose order is 150 days old."""
    table = provisioned.outputs["TableName"]
    directory, repository = DynamoStoreDirectory(table), DynamoProfileRepository(table)
    a = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "secret-a", NOW)
    b = register_store(directory, Platform.SHOPIFY, "b.myshopify.com", "secret-b", NOW)
    held = [buyer(a.workspace_id, pid, spent, days) for pid, spent, days in BUYERS]
    held += [Profile(workspace_id=a.workspace_id, profile_id="v01", created_at=NOW, updated_at=NOW),
             buyer(b.workspace_id, "pb1", 50, 150)]
    for item in held:
        repository.commit(Change(workspace_id=item.workspace_id, profiles=((item, None),)))
    workers = SegmentWorkers(provisioned, function_env)
    function_env("ApiFunction")
    spec = provisioned.functions["ApiFunction"]
    handler = load_handler(spec.code_path, spec.handler, spec.logical_id)
    monkeypatch.setattr(sys.modules[f"crm_function_{spec.logical_id}"], "utc_now", lambda: NOW)
    return World(Client(handler), a, b, workers)


def test_the_defaults_until_replaced_and_a_put_replaces_the_whole_document(world: World) -> None:
    got = world.call("get", "/segments/settings")
    assert got.status_code == 200 and got.json_body == DEFAULTS  # the literal route, not segment "settings"

    put = world.call("put", "/segments/settings", body={"churn_after_days": 90, "vip_top_percent": 20})
    assert put.status_code == 200
    assert put.json_body == {**DEFAULTS, "churn_after_days": 90, "vip_top_percent": 20}
    assert world.call("get", "/segments/settings").json_body == put.json_body

    # PUT replaces: what is left out goes back to its default; {} restores every default.
    assert world.call("put", "/segments/settings", body={"vip_top_percent": 30}).json_body == {
        **DEFAULTS, "vip_top_percent": 30}
    assert world.call("put", "/segments/settings", body={}).json_body == DEFAULTS
    assert world.call("get", "/segments/settings").json_body == DEFAULTS


def test_a_shorter_churn_window_takes_effect_at_the_next_recompute(world: World) -> None:
    # 180 days by default, the boundary included: p01 (400 days), p02 (200) and p03 (180); p04 (179) is not.
    assert world.recompute("builtin:churn_risk") == ["p01", "p02", "p03"]

    assert world.call("put", "/segments/settings", body={"churn_after_days": 100}).status_code == 200
    assert world.members("builtin:churn_risk") == ["p01", "p02", "p03"]  # nothing moves until computed
    # 100 days: p04 (179), p05 (120) and p06 (exactly 100) join; p07 (99 days) does not.
    assert world.recompute("builtin:churn_risk") == ["p01", "p02", "p03", "p04", "p05", "p06"]
    assert world.call("get", "/segments/builtin:churn_risk").json_body["size"] == 6

    world.call("put", "/segments/settings", body={"churn_after_days": 365})
    assert world.recompute("builtin:churn_risk") == ["p01"]


def test_a_larger_vip_share_takes_more_buyers_and_whoever_ties_with_the_last_seat(world: World) -> None:
    # 10 buyers: 10 % is ceil(1.0) = 1 seat, the 1000 spender.
    assert world.recompute("builtin:vip") == ["p10"]
    # 30 % is 3 seats: 1000, 900 and 800 (the 3rd highest); p07 spent 800 too, so it is in as well.
    world.call("put", "/segments/settings", body={"vip_top_percent": 30})
    assert world.recompute("builtin:vip") == ["p07", "p08", "p09", "p10"]
    # 11 % is ceil(1.1) = 2 seats.
    world.call("put", "/segments/settings", body={"vip_top_percent": 11})
    assert world.recompute("builtin:vip") == ["p09", "p10"]


def test_another_workspace_keeps_its_own_settings(world: World) -> None:
    key_b = world.b.api_key
    world.call("put", "/segments/settings", body={"churn_after_days": 100, "vip_top_percent": 50})

    assert world.call("get", "/segments/settings", key=key_b).json_body == DEFAULTS
    assert world.recompute("builtin:churn_risk", key=key_b) == []  # pb1's 150 days are short of b's 180
    assert world.recompute("builtin:churn_risk") == ["p01", "p02", "p03", "p04", "p05", "p06"]

    world.call("put", "/segments/settings", key=key_b, body={"churn_after_days": 150})
    assert world.recompute("builtin:churn_risk", key=key_b) == ["pb1"]
    assert world.call("get", "/segments/settings").json_body == {**DEFAULTS, "churn_after_days": 100,
                                                                 "vip_top_percent": 50}


@pytest.mark.parametrize(("body", "message"), [
    ({"vip_top_percent": 80}, "vip_top_percent: must be a whole number from 1 to 50; got 80"),
    ({"vip_top_percent": 0}, "vip_top_percent: must be a whole number from 1 to 50; got 0"),
    ({"churn_after_days": "90"}, 'churn_after_days: must be a whole number from 1 to 3650; got "90"'),
    ({"new_customer_days": 7.5}, "new_customer_days: must be a whole number from 1 to 365; got 7.5"),
    ({"cart_abandon_days": None}, "cart_abandon_days: must be a whole number from 1 to 90; got null"),
    ({"window_shopper_min_views": True}, "window_shopper_min_views: must be a whole number from 1 to 10000; got true"),
    ({"churn_after_days": 90, "shoe_size": 42}, "shoe_size: unknown setting; the settings are vip_top_percent, "
                                                "churn_after_days, window_shopper_min_views, new_customer_days, "
                                                "cart_abandon_days"),
    ([90], "body: must be an object of settings"),
])
def test_a_bad_setting_is_400_naming_it_and_its_range_and_nothing_is_stored(world: World, body: Any,
                                                                            message: str) -> None:
    world.call("put", "/segments/settings", body={"churn_after_days": 120})
    response = world.call("put", "/segments/settings", body=body)
    assert response.status_code == 400
    assert response.json_body["Message"].startswith(message)
    assert world.call("get", "/segments/settings").json_body == {**DEFAULTS, "churn_after_days": 120}


def test_a_body_that_is_not_json_is_400_and_a_whole_float_is_a_whole_number(world: World) -> None:
    response = world.call("put", "/segments/settings", raw=b"churn_after_days=90")
    assert response.status_code == 400 and response.json_body["Message"].startswith("body: not JSON")
    assert world.call("put", "/segments/settings", raw=b"").status_code == 400
    assert world.call("put", "/segments/settings", body={"churn_after_days": 90.0}).json_body["churn_after_days"] == 90


def test_settings_need_a_key(world: World) -> None:
    assert world.api.http.get("/segments/settings").status_code == 401
    assert world.api.http.put("/segments/settings", body=b"{}").status_code == 401
