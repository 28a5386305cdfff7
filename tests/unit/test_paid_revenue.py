"""Revenue is paid revenue: each platform's table of order states (docs/revenue.md), from payload to profile."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm.connectors.bigcommerce import map_order
from crm.connectors.shopify import SHOPIFY
from crm.connectors.woocommerce import WOOCOMMERCE
from crm.ingestion import apply_event
from crm.models.canonical import CanonicalEvent
from crm.models.orders import CanonicalOrder
from crm.models.profile import Profile
from crm.models.stores import Platform
from crm_local.wire import compact, woo_wire

from tests.builders import NOW, bc_order_json, envelope, order, placed_order_json, woo_fixture_json
from tests.fakes import FakeProfileRepository, FakeStoreDirectory


def _woo(status: str, order_id: int, total: str, modified: str = "2026-01-02T10:00:00") -> CanonicalOrder:
    payload: dict[str, Any] = {**woo_fixture_json("order.created"), "id": order_id, "status": status,
                               "total": total, "refunds": [], "date_modified_gmt": modified}
    [mapped] = WOOCOMMERCE.events(envelope(None, topic="order.updated", platform=Platform.WOOCOMMERCE),
                                  woo_wire(payload), FakeStoreDirectory())
    assert isinstance(mapped, CanonicalOrder)
    return mapped


def _shopify(financial_status: str, order_id: int = 1, updated_at: str = "2026-01-02T10:00:00Z") -> CanonicalOrder:
    payload = placed_order_json(id=order_id, financial_status=financial_status, updated_at=updated_at, refunds=[])
    [mapped] = SHOPIFY.events(envelope(None, topic="orders/updated"), compact(payload), FakeStoreDirectory())
    assert isinstance(mapped, CanonicalOrder)
    return mapped


def _profile(*events: CanonicalEvent) -> Profile:
    repository = FakeProfileRepository()
    for event in events:
        apply_event(repository, event, NOW)
    [profile] = [p for p in repository.profiles.values() if not p.merged_into]
    return profile


def test_woocommerce_failed_and_pending_orders_are_not_revenue() -> None:
    # The reproduction: failed 500 and pending 300 gave orders_count 2 and total_spent 800.00.
    profile = _profile(_woo("failed", 501, "500.00"), _woo("pending", 502, "300.00"))
    assert (profile.orders_count, profile.total_spent) == (0, Decimal("0.00"))
    assert profile.unpaid_orders_count == 2
    assert profile.average_order_value == Decimal("0.00")


@pytest.mark.parametrize(("status", "paid"), [
    ("processing", True), ("completed", True), ("refunded", True),
    ("pending", False), ("on-hold", False), ("failed", False), ("checkout-draft", False), ("trash", False),
])
def test_the_woocommerce_table(status: str, paid: bool) -> None:
    assert _woo(status, 7, "10.00").paid is paid


@pytest.mark.parametrize(("financial_status", "paid"), [
    ("paid", True), ("authorized", True), ("partially_paid", True), ("partially_refunded", True), ("refunded", True),
    ("pending", False), ("voided", False), ("expired", False),
])
def test_the_shopify_table(financial_status: str, paid: bool) -> None:
    assert _shopify(financial_status).paid is paid


def test_shopify_voided_and_pending_orders_are_kept_as_unpaid() -> None:
    profile = _profile(_shopify("voided", 1), _shopify("pending", 2))
    assert (profile.orders_count, profile.total_spent) == (0, Decimal("0.00"))
    assert profile.unpaid_orders_count == 2


@pytest.mark.parametrize(("status_id", "status", "paid"), [
    (6, "Declined", False), (7, "Awaiting Payment", False), (1, "Pending", False), (0, "Incomplete", False),
    (12, "Manual Verification Required", False), (11, "Awaiting Fulfillment", True), (10, "Completed", True),
    (2, "Shipped", True), (14, "Partially Refunded", True),
])
def test_the_bigcommerce_table(status_id: int, status: str, paid: bool) -> None:
    payload = {**bc_order_json(), "status_id": status_id, "status": status}
    assert map_order(payload, envelope(b"{}", topic="store/order/created", platform=Platform.BIGCOMMERCE)).paid is paid


def test_a_bigcommerce_declined_order_is_not_revenue() -> None:
    payload = {**bc_order_json(), "status_id": 6, "status": "Declined"}
    declined = map_order(payload, envelope(b"{}", topic="store/order/created", platform=Platform.BIGCOMMERCE))
    profile = _profile(declined)
    assert (profile.orders_count, profile.total_spent) == (0, Decimal("0.00"))
    assert profile.unpaid_orders_count == 1


def test_an_order_that_becomes_paid_counts_from_then_whatever_the_arrival_order() -> None:
    pending = order("9", total=Decimal("40.00"), paid=False)
    paid = order("9", total=Decimal("40.00"), updated_at=pending.updated_at + timedelta(hours=1))
    for events in ((pending,), (pending, paid), (paid, pending), (pending, paid, paid)):
        profile = _profile(*events)
        counted = paid in events
        assert profile.orders_count == int(counted)
        assert profile.unpaid_orders_count == int(not counted)
        assert profile.total_spent == (Decimal("40.00") if counted else Decimal("0.00"))


def test_an_order_voided_after_it_was_paid_stops_counting() -> None:
    paid = order("9", total=Decimal("40.00"))
    voided = order("9", total=Decimal("40.00"), paid=False, updated_at=paid.updated_at + timedelta(hours=1))
    for events in ((paid, voided), (voided, paid)):
        profile = _profile(*events)
        assert (profile.orders_count, profile.unpaid_orders_count, profile.total_spent) == (0, 1, Decimal("0.00"))


def test_the_timeline_says_an_order_is_unpaid_and_its_state() -> None:
    repository = FakeProfileRepository()
    apply_event(repository, _woo("failed", 501, "500.00"), NOW)
    [entry] = [e for entries in repository.timelines.values() for e in entries.values() if e.type == "order"]
    assert entry.summary["counted"] is False
    assert entry.summary["unpaid"] is True
    assert entry.summary["status"] == "failed"


def test_a_shopify_order_is_counted_in_the_shops_money_whatever_the_shopper_paid_in() -> None:
    payload = placed_order_json(id=5, refunds=[], currency="EUR", total_price="92.00", presentment_currency="EUR",
                                total_price_set={"shop_money": {"amount": "100.00", "currency_code": "USD"},
                                                 "presentment_money": {"amount": "92.00", "currency_code": "EUR"}})
    [mapped] = SHOPIFY.events(envelope(None, topic="orders/create"), compact(payload), FakeStoreDirectory())
    assert isinstance(mapped, CanonicalOrder)
    assert (mapped.currency, mapped.total_price) == ("USD", Decimal("100.00"))
