"""Predictions and products bought together on `crm local`, over HTTP: signed Shopify orders for 30 shoppers
over two years, then `crm clock advance` past 02:00 fires the daily predictions schedule. Every buyer's profile
shows a `prediction`, a segment on `predicted.churn_probability` holds exactly the buyers the predictions
say, and GET /products/{product}/related answers the pairs the orders hold (docs/predictions-in-product.md,
docs/affinity.md)."""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from crm_local.demo import http

from tests.builders import ROOT, compact, placed_order_json, shopify_headers
from tests.e2e.conftest import LocalStack, start_local_stack

pytestmark = pytest.mark.e2e

SHOP, SECRET = "e2e-predict.myshopify.com", "e2e-predict-secret"
CHURN = Decimal("0.6")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    local = start_local_stack()
    yield local
    local.stop()


def _clock(stack: LocalStack, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "crm_local.cli", "clock", *args, "--api", stack.api_url],
                          env=stack.env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _order(number: int, shopper: int, placed: datetime, titles: list[str]) -> bytes:
    payload = placed_order_json()
    line = payload["line_items"][0]
    items = [{**copy.deepcopy(line), "id": 9_000_000 + number * 10 + k, "title": title, "name": title,
              "product_id": 8_000 + sum(map(ord, title)), "quantity": 1, "price": "25.00"}
             for k, title in enumerate(titles)]
    total = f"{25 * len(titles)}.00"
    stamp = placed.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    email = f"shopper{shopper}@example.com"
    payload.update(id=6_000_000 + number, name=f"#{number}", order_number=number, email=email, contact_email=email,
                   phone=None, created_at=stamp, processed_at=stamp, updated_at=stamp, line_items=items,
                   total_price=total, subtotal_price=total, current_total_price=total, refunds=[],
                   total_price_set={"shop_money": {"amount": total, "currency_code": "USD"},
                                    "presentment_money": {"amount": total, "currency_code": "USD"}})
    payload["customer"] = {**payload["customer"], "id": 7_200_000 + shopper, "email": email}
    return compact(payload)


def _history(now: datetime) -> dict[str, list[tuple[datetime, list[str]]]]:
    """20 repeat buyers (a shirt and, mostly, a tie each time; 5 of them quiet for over a year) and 10 one-time
    buyers (a hat)."""
    rng = random.Random(13)
    orders: dict[str, list[tuple[datetime, list[str]]]] = {}
    for shopper in range(30):
        if shopper < 5:  # bought often, then went quiet over a year ago: likely to churn
            days = sorted(rng.sample(range(420, 700), 6), reverse=True)
            baskets = [["Shirt", "Tie"] for _ in days]
        elif shopper < 20:
            days = sorted(rng.sample(range(5, 700), rng.randint(2, 6)), reverse=True)
            baskets = [["Shirt", "Tie"] if rng.random() < 0.8 else ["Shirt"] for _ in days]
        else:
            days, baskets = [rng.randint(5, 700)], [["Hat"]]
        orders[f"shopper{shopper}@example.com"] = [(now - timedelta(days=d), b) for d, b in zip(days, baskets,
                                                                                                   strict=True)]
    return orders


def test_the_daily_run_predicts_every_buyer_a_churn_segment_follows_and_related_products_answer(
        stack: LocalStack) -> None:
    shop = json.loads(stack.crm("store", "add", "--platform", "shopify", "--domain", SHOP, "--webhook-secret",
                                SECRET))
    key = shop["api_key"]
    now = datetime.fromisoformat(_clock(stack, "now")["now"])
    history = _history(now)
    number = 0
    for shopper, (email, orders) in enumerate(sorted(history.items())):
        for placed, titles in orders:
            number += 1
            body = _order(number, int(email.removeprefix("shopper").split("@")[0]), placed, titles)
            status, answer = stack.post("/webhooks/shopify", body, shopify_headers(
                body, secret=SECRET, domain=SHOP, delivery_id=f"d-{shopper}-{number}"))
            assert status == 200, answer
    headers = {"x-api-key": key, "content-type": "application/json"}
    status, _ = http("PUT", stack.api_url + "/settings/predictions", json.dumps({"min_repeat_buyers": 10}).encode(),
                     headers)
    assert status == 200
    status, segment = stack.post("/segments", json.dumps({
        "name": "Likely to churn", "definition": {"all": [
            {"field": "predicted.churn_probability", "op": "gte", "value": str(CHURN)}]}}).encode(), headers)
    assert status in (200, 201), segment
    stack.wait_drained()

    # Past 02:00: the daily fit, then every profile written; the stream re-decides the segment.
    advanced = _clock(stack, "advance", "1d", "--wait", "120")
    assert advanced["idle"], advanced  # (schedules_fired counts the Scheduler's one-time schedules only)
    status, settings = stack.get("/settings/predictions", key)
    assert status == 200 and settings["last_fit"]["status"] == "fitted", settings
    assert settings["last_fit"]["customers"] == 30 and settings["last_fit"]["repeat_buyers"] == 20

    churning = set()
    for email in history:
        status, profile = stack.get(f"/customers?{urlencode({'email': email})}", key)
        assert status == 200, profile
        prediction = profile["prediction"]
        assert prediction is not None and prediction["status"] == "predicted", prediction
        assert Decimal(prediction["p_alive"]) + Decimal(prediction["churn_probability"]) == 1
        if Decimal(prediction["churn_probability"]) >= CHURN:
            churning.add(profile["profile_id"])
    assert churning and len(churning) < len(history)  # some, not all: the segment's test can fail either way
    members = _members(stack, key, segment["id"])
    assert members == churning

    status, related = stack.get(f"/products/{quote('Shirt')}/related", key)
    assert status == 200, related
    tie_buyers = sum(1 for orders in history.values() if any("Tie" in b for _, b in orders))
    assert related["buyers"] == 20 and related["shoppers"] == 30
    assert [(r["title"], r["buyers_together"]) for r in related["related"]] == [("Tie", tie_buyers)]
    status, _ = stack.get("/products/Umbrella/related", key)
    assert status == 404


def _members(stack: LocalStack, key: str, segment_id: str) -> set[str]:
    """The segment's members once its computation settled (a few polls: membership follows the stream)."""
    found: set[str] = set()
    for _ in range(20):
        status, page = stack.get(f"/segments/{segment_id}/members", key)
        assert status == 200, page
        again = {m["profile_id"] for m in page["members"]}
        if again == found and found:
            return found
        found = again
        time.sleep(0.5)
    return found
