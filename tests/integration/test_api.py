"""The marketer API (Chalice) on the provisioned stack: keys, workspaces, money as decimal strings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from chalice.test import Client
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.ingestion import apply_event
from crm.models.stores import Platform, StoreRegistration
from crm.profiles import profile_id_for
from crm.stores import register_store
from crm_local.lambdas import load_handler
from crm_local.provision import Provisioned

from tests.aws import client
from tests.builders import NOW, order

pytestmark = pytest.mark.integration

EMAIL = "shopper@example.com"


@dataclass
class World:
    api: Client
    a: StoreRegistration
    b: StoreRegistration
    profile_a: str
    profile_b: str


@pytest.fixture
def world(provisioned: Provisioned, function_env: Callable[[str], None]) -> World:
    """Two workspaces, each with a shopper of the same email address."""
    table = provisioned.outputs["TableName"]
    directory, repository = DynamoStoreDirectory(table), DynamoProfileRepository(table)
    a = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "secret-a", NOW)
    b = register_store(directory, Platform.SHOPIFY, "b.myshopify.com", "secret-b", NOW)
    for placed in (
        order("1", workspace_id=a.workspace_id, store_id=a.store_id, total=Decimal("10.00"),
              created_at=NOW - timedelta(days=3), first_name="Ann"),
        order("2", workspace_id=a.workspace_id, store_id=a.store_id, total=Decimal("5.01"),
              created_at=NOW - timedelta(days=1)),
        order("1", workspace_id=b.workspace_id, store_id=b.store_id, total=Decimal("0.10")),
    ):
        assert apply_event(repository, placed, NOW)
    function_env("ApiFunction")
    spec = provisioned.functions["ApiFunction"]
    api = Client(load_handler(spec.code_path, spec.handler, spec.logical_id))
    return World(api, a, b, profile_id_for(a.workspace_id, f"email#{EMAIL}"),
                 profile_id_for(b.workspace_id, f"email#{EMAIL}"))


@pytest.mark.parametrize("headers", [{}, {"x-api-key": ""}, {"x-api-key": "crm_not_a_key"}])
def test_without_a_valid_key_is_401(world: World, headers: dict[str, str]) -> None:
    for path in (f"/customers/{world.profile_a}", f"/customers?email={EMAIL}"):
        response = world.api.http.get(path, headers=headers)
        assert response.status_code == 401, path
        assert world.profile_a not in response.body.decode()


def test_unknown_customer_is_404(world: World) -> None:
    response = world.api.http.get("/customers/0123456789abcdef", headers={"x-api-key": world.a.api_key})
    assert response.status_code == 404


def test_customer_with_money_as_decimal_strings(world: World) -> None:
    response = world.api.http.get(f"/customers/{world.profile_a}", headers={"x-api-key": world.a.api_key})

    assert response.status_code == 200
    body = response.json_body
    assert body["profile_id"] == world.profile_a
    assert body["email"] == EMAIL
    assert body["orders_count"] == 2
    assert body["total_spent"] == "15.01"
    assert body["average_order_value"] == "7.50"
    assert body["currency"] == "USD"
    assert body["first_order_at"] == (NOW - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    assert body["last_order_at"] == (NOW - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert body["first_name"] == "Ann"
    raw = response.body.decode()
    assert '"total_spent":"15.01"' in raw.replace(" ", "")  # a JSON string, never a float


def test_a_key_of_workspace_a_cannot_read_workspace_b(world: World) -> None:
    key_a, key_b = {"x-api-key": world.a.api_key}, {"x-api-key": world.b.api_key}

    assert world.api.http.get(f"/customers/{world.profile_b}", headers=key_a).status_code == 404
    assert world.api.http.get(f"/customers/{world.profile_a}", headers=key_b).status_code == 404
    own_b = world.api.http.get(f"/customers/{world.profile_b}", headers=key_b)
    assert own_b.status_code == 200
    assert own_b.json_body["total_spent"] == "0.10"


def test_find_by_email_is_normalised_and_scoped_to_the_workspace(world: World) -> None:
    found_a = world.api.http.get("/customers?email=%20Shopper%40Example.COM", headers={"x-api-key": world.a.api_key})
    found_b = world.api.http.get(f"/customers?email={EMAIL}", headers={"x-api-key": world.b.api_key})

    assert found_a.status_code == 200
    assert found_a.json_body["profile_id"] == world.profile_a
    assert found_b.status_code == 200
    assert found_b.json_body["profile_id"] == world.profile_b
    assert world.api.http.get("/customers?email=nobody@example.com",
                              headers={"x-api-key": world.a.api_key}).status_code == 404


@pytest.mark.parametrize("query", ["", "?email=", "?email=not-an-email"])
def test_find_without_a_usable_email_is_400(world: World, query: str) -> None:
    response = world.api.http.get(f"/customers{query}", headers={"x-api-key": world.a.api_key})
    assert response.status_code == 400


def test_api_keys_are_stored_only_as_hashes(provisioned: Provisioned, world: World) -> None:
    items = client("dynamodb").scan(TableName=provisioned.outputs["TableName"])["Items"]
    assert items
    dump = repr(items)
    assert world.a.api_key not in dump
    assert world.b.api_key not in dump
