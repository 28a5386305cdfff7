"""Products bought together on the provisioned stack: the daily predictions run stores each product's
related products from its read of the profiles, rewrites only what moved, and GET /products/{id}/related
answers them (by title or id; 404 for a product no paid order holds). Every AWS call is checked against the
functions' roles (tests/integration/conftest.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from chalice.test import Client
from crm.adapters.affinity import DynamoAffinityStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.ingestion import apply_event
from crm.models.canonical import ActivityEvent, ActivityType, ProductRef
from crm.models.orders import LineItem
from crm.models.stores import Platform, StoreRegistration
from crm.stores import register_store
from crm_local.demo_predictions import _print_affinity
from crm_local.lambdas import load_handler
from crm_local.provision import Provisioned

from tests.builders import NOW, order
from tests.integration.test_predictions_function import LATER, Predictions

pytestmark = pytest.mark.integration

# Eight shoppers: shirts go with ties (4 of 5 shirt buyers), belts with socks (3 of 3 belt buyers).
BASKETS = [["Shirt", "Tie"], ["Shirt", "Tie"], ["Shirt", "Tie"], ["Shirt", "Tie", "Belt", "Socks"], ["Shirt"],
           ["Belt", "Socks"], ["Belt", "Socks"], ["Hat"]]


def _buy(store: StoreRegistration, repository: DynamoProfileRepository, number: int, titles: list[str]) -> None:
    items = [LineItem(product_id=f"id-{title.lower()}", title=title, quantity=1, price=Decimal("10.00"))
             for title in titles]
    placed = order(f"o{number}", workspace_id=store.workspace_id, store_id=store.store_id,
                   email=f"shopper{number}@example.com", total=Decimal(10 * len(titles)))
    apply_event(repository, placed.model_copy(update={"line_items": tuple(items)}), NOW)


@pytest.fixture
def predictions(provisioned: Provisioned, function_env: Callable[[str], None],
                monkeypatch: pytest.MonkeyPatch) -> Predictions:
    return Predictions(provisioned, function_env, monkeypatch)


def test_the_daily_run_stores_related_products_and_the_api_answers_them(
        provisioned: Provisioned, function_env: Callable[[str], None], predictions: Predictions,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    table = provisioned.outputs["TableName"]
    directory, repository = DynamoStoreDirectory(table), DynamoProfileRepository(table)
    shop = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "secret-a", NOW)
    for number, titles in enumerate(BASKETS):
        _buy(shop, repository, number, titles)
    # A shopper who viewed the tie's page: where the tie's link comes from.
    assert apply_event(repository, ActivityEvent(
        workspace_id=shop.workspace_id, store_id=shop.store_id, platform=Platform.SHOPIFY, event_id="view-tie",
        type=ActivityType.PRODUCT_VIEWED, occurred_at=NOW, email="shopper7@example.com",
        url="https://a.example/tie", products=(ProductRef(title="Tie", product_id="id-tie"),)), NOW)

    predictions.segment_run(shop.workspace_id)  # the day's run, whose work files the fit reads
    predictions.schedule()
    predictions.drain()
    store = DynamoAffinityStore(table)
    stored = store.products(shop.workspace_id)
    assert set(stored) == {"Shirt", "Tie", "Belt", "Socks", "Hat"}
    # Shirt -> Tie: 4 of 8 shoppers together; 4 of Shirt's 5; lift 4 * 8 / (5 * 4) = 1.6.
    (tie,) = stored["Shirt"].related
    assert (tie.title, tie.buyers_together, tie.support, tie.confidence, tie.lift) == (
        "Tie", 4, Decimal("0.5"), Decimal("0.8"), Decimal("1.6"))
    assert (tie.product_id, tie.url, tie.image_url) == ("id-tie", "https://a.example/tie", None)
    assert [r.title for r in stored["Belt"].related] == ["Socks"]  # Belt and Shirt: 1 shopper, too few

    # Nothing moved: the next run, an hour later, rewrites nothing (each item keeps its first computed_at).
    first_run = {title: a.computed_at for title, a in stored.items()}
    worker = sys.modules[f"crm_function_{provisioned.functions['PredictionsFunction'].logical_id}"]
    monkeypatch.setattr(worker, "utc_now", lambda: LATER + timedelta(hours=1))
    predictions.schedule()
    predictions.drain()
    assert {title: a.computed_at for title, a in store.products(shop.workspace_id).items()} == first_run
    assert set(first_run.values()) == {LATER}
    # `make demo` prints the best pairs from the same items.
    _print_affinity(table, shop.workspace_id)
    assert capsys.readouterr().out.splitlines()[-3:] == [
        "products bought together: 5 products bought, 2 related pairs (GET /products/{product}/related)",
        "  Belt + Socks: 3 shoppers, lift 2.6667", "  Shirt + Tie: 4 shoppers, lift 1.6000"]

    function_env("ApiFunction")
    spec = provisioned.functions["ApiFunction"]
    api = Client(load_handler(spec.code_path, spec.handler, spec.logical_id))
    headers = {"x-api-key": shop.api_key}
    by_title = api.http.get(f"/products/{quote('Shirt')}/related", headers=headers)
    assert by_title.status_code == 200, by_title.json_body
    assert by_title.json_body["buyers"] == 5 and by_title.json_body["shoppers"] == 8
    assert [(r["title"], r["lift"]) for r in by_title.json_body["related"]] == [("Tie", "1.6000")]
    escaped = api.http.get(f"/products/{quote('Shirt & Tie combo')}/related", headers=headers)
    assert escaped.status_code == 404 and "'Shirt & Tie combo'" in escaped.json_body["Message"]
    by_id = api.http.get("/products/id-tie/related", headers=headers)
    assert by_id.status_code == 200 and by_id.json_body["title"] == "Tie"
    assert api.http.get("/products/Umbrella/related", headers=headers).status_code == 404
    refused = api.http.get("/products/Shirt/related?limit=0", headers=headers)
    assert refused.status_code == 400 and refused.json_body["Message"].startswith("limit")
    assert api.http.get("/products/Shirt/related?colour=red", headers=headers).status_code == 400
    other = register_store(directory, Platform.SHOPIFY, "b.myshopify.com", "secret-b", NOW)
    assert api.http.get("/products/Shirt/related", headers={"x-api-key": other.api_key}).status_code == 404
    assert json.dumps(by_title.json_body)  # plain JSON

