"""GET and PUT /settings/currency on the provisioned stack: the settings, the job that re-derives every profile
of the workspace (and only it), its progress, and the 4xx of a refused document."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from chalice.test import Client
from crm.adapters.currency import DynamoCurrencyStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.ingestion import apply_event
from crm.models.stores import Platform, StoreRegistration
from crm.reporting import initial_settings
from crm.stores import register_store
from crm_local.lambdas import load_handler
from crm_local.provision import Provisioned

from tests.builders import NOW, order
from tests.segment_workers import SegmentWorkers

pytestmark = pytest.mark.integration


@dataclass
class World:
    api: Client
    a: StoreRegistration
    b: StoreRegistration
    repository: DynamoProfileRepository
    workers: SegmentWorkers

    def call(self, method: str, path: str, key: str | None = None, body: Any = None, raw: bytes | None = None) -> Any:
        headers = {"x-api-key": key or self.a.api_key, "content-type": "application/json"}
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
        return getattr(self.api.http, method)(path, headers=headers, body=data)

    def customer(self, email: str, key: str | None = None) -> dict[str, Any]:
        answer = self.call("get", f"/customers?email={email}", key=key)
        assert answer.status_code == 200, answer.json_body
        view: dict[str, Any] = answer.json_body
        return view


@pytest.fixture
def world(provisioned: Provisioned, function_env: Callable[[str], None], monkeypatch: pytest.MonkeyPatch) -> World:
    """Workspace a (a USD store) holds one shopper with orders in USD, EUR and JPY; workspace b one in EUR."""
    table = provisioned.outputs["TableName"]
    directory, repository = DynamoStoreDirectory(table), DynamoProfileRepository(table)
    a = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "secret-a", NOW)
    b = register_store(directory, Platform.SHOPIFY, "b.myshopify.com", "secret-b", NOW)
    assert initial_settings(DynamoCurrencyStore(table), a.workspace_id, "USD", NOW)
    assert not initial_settings(DynamoCurrencyStore(table), a.workspace_id, "EUR", NOW)  # the first store's
    for number, (currency, total) in enumerate([("USD", "100.00"), ("EUR", "100.00"), ("JPY", "10000")]):
        apply_event(repository, order(f"a{number}", workspace_id=a.workspace_id, store_id=a.store_id,
                                      email="ann@example.com", currency=currency, total=Decimal(total)), NOW)
    apply_event(repository, order("b1", workspace_id=b.workspace_id, store_id=b.store_id, email="bob@example.com",
                                  currency="EUR", total=Decimal("40.00")), NOW)
    workers = SegmentWorkers(provisioned, function_env)
    function_env("ApiFunction")
    spec = provisioned.functions["ApiFunction"]
    handler = load_handler(spec.code_path, spec.handler, spec.logical_id)
    monkeypatch.setattr(sys.modules[f"crm_function_{spec.logical_id}"], "utc_now", lambda: NOW)
    return World(Client(handler), a, b, repository, workers)


def test_the_first_stores_currency_until_replaced(world: World) -> None:
    got = world.call("get", "/settings/currency")
    assert got.status_code == 200
    assert got.json_body == {"reporting_currency": "USD", "rates": {}, "version": 0,
                             "updated_at": NOW.isoformat()}
    assert world.call("get", "/settings/currency", key=world.b.api_key).json_body["reporting_currency"] is None
    # Without rates only the USD order is stated; EUR and JPY are named, never added at face value.
    ann = world.customer("ann@example.com")
    assert (ann["currency"], ann["total_spent"], ann["unconverted_currencies"]) == ("USD", "100.00", ["EUR", "JPY"])
    assert ann["spent_by_currency"] == {"EUR": "100.00", "JPY": "10000.00", "USD": "100.00"}


def test_new_rates_re_derive_every_profile_of_the_workspace_through_a_job(world: World) -> None:
    put = world.call("put", "/settings/currency", body={"reporting_currency": "USD", "rates": {"EUR": "1.10"}})
    assert put.status_code == 202, put.json_body
    job = put.json_body["job"]
    assert put.headers["Location"] == f"/settings/currency/jobs/{job['job_id']}"
    assert (put.json_body["rates"], put.json_body["version"], job["status"]) == ({"EUR": "1.10"}, 1, "running")
    assert world.call("get", "/settings/currency").json_body["rates"] == {"EUR": "1.10"}

    world.workers.drain()
    followed = world.call("get", f"/settings/currency/jobs/{job['job_id']}").json_body
    assert (followed["status"], followed["profiles"], followed["rederived"]) == ("done", 1, 1)
    assert followed["shares_done"] == followed["shares"]
    ann = world.customer("ann@example.com")
    # The reproduction: 100 USD + 100 EUR + 10000 JPY was total_spent 10200.00 "EUR", AOV 3400.
    assert (ann["currency"], ann["total_spent"], ann["average_order_value"]) == ("USD", "210.00", "105.00")
    assert ann["unconverted_currencies"] == ["JPY"]
    # Workspace b is another tenant: its settings, profiles and jobs are its own.
    bob = world.customer("bob@example.com", key=world.b.api_key)
    assert (bob["currency"], bob["total_spent"]) == ("EUR", "40.00")
    assert world.call("get", f"/settings/currency/jobs/{job['job_id']}", key=world.b.api_key).status_code == 404

    # A new order is stated at the held rates as it is applied.
    apply_event(world.repository, order("a9", workspace_id=world.a.workspace_id, store_id=world.a.store_id,
                                        email="ann@example.com", currency="EUR", total=Decimal("10.00")), NOW)
    assert world.customer("ann@example.com")["total_spent"] == "221.00"


@pytest.mark.parametrize(("body", "problem"), [
    ({"reporting_currency": "usd"}, "reporting_currency: 'usd' is not an ISO 4217"),
    ({"reporting_currency": "USD", "rates": {"EUR": 1.1}}, "rates.EUR: a rate is given as a decimal string"),
    ({"reporting_currency": "USD", "rates": {"EUR": "-2"}}, "rates.EUR: a rate is a positive decimal"),
    ({"reporting_currency": "USD", "rate": {}}, "rate: Extra inputs are not permitted"),
    ([], "body: must be an object"),
])
def test_a_refused_document_is_a_400_naming_the_field(world: World, body: Any, problem: str) -> None:
    answer = world.call("put", "/settings/currency", body=body)
    assert answer.status_code == 400
    assert problem in answer.json_body["Message"]
    assert world.call("get", "/settings/currency").json_body["version"] == 0


def test_without_a_key_nothing_is_read_or_changed(world: World) -> None:
    assert world.api.http.get("/settings/currency").status_code == 401
    assert world.api.http.put("/settings/currency", body=b'{"reporting_currency": "EUR"}').status_code == 401
    assert world.call("get", "/settings/currency/jobs/cur_unknown").status_code == 404
