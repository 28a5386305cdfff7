"""The ingest-path benchmark's workload: Shopify order deliveries made from the published orders/create payload.

Varied customers, amounts, currencies, refunds, duplicate deliveries and out-of-order updates, each signed
as Shopify signs it, with the totals the CRM should end up with computed independently of it. (The demo's
multi-store simulation is crm_local.simulation; this one stays fixed so bench figures compare across runs.)
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from crm.contact import normalise_email
from crm_local.wire import shopify_fixture, shopify_headers

FIRST_NAMES = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger",
               "Radia", "Tim", "Hedy", "John", "Sophie", "Yukihiro", "Anita", "Guido", "Karen", "Niklaus"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen",
              "Dijkstra", "Perlman", "Berners-Lee", "Lamarr", "McCarthy", "Wilson", "Matsumoto", "Borg", "van Rossum"]
PRESENTMENT = ["USD", "USD", "USD", "EUR", "GBP", "CAD", "AUD", "JPY"]


fixture = shopify_fixture


@dataclass(frozen=True)
class Delivery:
    """One HTTP delivery as Shopify would make it."""

    topic: str
    body: bytes
    webhook_id: str
    triggered_at: datetime

    def headers(self, shop_domain: str, secret: str) -> dict[str, str]:
        return shopify_headers(self.body, secret=secret, topic=self.topic, domain=shop_domain,
                               delivery_id=self.webhook_id,
                               triggered_at=self.triggered_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


@dataclass
class Expected:
    """What the CRM should end up with, computed independently of it: newest version of each order wins."""

    orders: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # order id -> (email, net)

    def by_email(self) -> dict[str, tuple[int, Decimal]]:
        totals: dict[str, tuple[int, Decimal]] = {}
        for email, net in self.orders.values():
            count, spent = totals.get(email, (0, Decimal("0.00")))
            totals[email] = (count + 1, spent + net)
        return totals


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def order_payload(template: dict[str, Any], order_id: int, customer: dict[str, Any], total: Decimal,
                  refunded: Decimal, created_at: datetime, updated_at: datetime, currency: str,
                  presentment: str) -> bytes:
    order = copy.deepcopy(template)
    stamp = created_at.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    order.update(
        id=order_id, name=f"#{order_id % 100000}", order_number=order_id % 100000,
        email=customer["raw_email"], contact_email=customer["raw_email"], phone=None,
        created_at=stamp, processed_at=stamp, updated_at=updated_at.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        cancelled_at=None, cancel_reason=None, financial_status="partially_refunded" if refunded else "paid",
        currency=currency, presentment_currency=presentment, test=False,
        total_price=_money(total), subtotal_price=_money(total), current_total_price=_money(total - refunded),
        total_price_set={"shop_money": {"amount": _money(total), "currency_code": currency},
                         "presentment_money": {"amount": _money(total), "currency_code": presentment}},
        refunds=[] if not refunded else [{
            "id": order_id + 1, "created_at": updated_at.isoformat(),
            "transactions": [{"kind": "refund", "status": "success", "amount": _money(refunded),
                              "currency": currency}],
        }],
    )
    order["customer"] = {**order.get("customer", {}), "id": customer["id"], "email": customer["raw_email"],
                         "first_name": customer["first_name"], "last_name": customer["last_name"]}
    return json.dumps(order, separators=(",", ":")).encode()


def simulate_orders(orders: int, customers: int, seed: int, currency: str = "USD",
                    start: datetime | None = None) -> tuple[list[Delivery], Expected]:
    """Deliveries for ``orders`` orders by ``customers`` shoppers, shuffled a little as real traffic is:
    about a fifth get a later orders/updated with a refund, a tenth are delivered twice, and some
    older updates arrive after newer ones."""
    rng = random.Random(seed)
    template = json.loads(fixture("orders/create"))
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    people: list[dict[str, Any]] = []
    for index in range(customers):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first}.{last}.{index}@example.com".lower().replace(" ", "")
        # Stores send emails as typed: mixed case, stray spaces; the CRM normalises them.
        raw = f"  {email.upper()} " if index % 7 == 0 else email
        people.append({"id": 7_000_000_000_000 + index, "raw_email": raw, "first_name": first, "last_name": last})
    deliveries: list[Delivery] = []
    expected = Expected()
    for number in range(orders):
        customer = people[min(int(rng.paretovariate(1.2)) - 1, customers - 1) if number % 3 else number % customers]
        order_id = 5_500_000_000_000 + number
        created = start + timedelta(minutes=rng.randint(0, 300 * 24 * 60))
        total = Decimal(rng.randint(1500, 45000)) / 100
        presentment = rng.choice(PRESENTMENT)
        body = order_payload(template, order_id, customer, total, Decimal("0"), created, created, currency,
                             presentment)
        placed = Delivery("orders/create", body, str(uuid.UUID(int=rng.getrandbits(128))), created)
        deliveries.append(placed)
        net = total
        if rng.random() < 0.2:
            refunded = (total * Decimal(rng.choice([10, 25, 50, 100])) / 100).quantize(Decimal("0.01"))
            updated = created + timedelta(days=rng.randint(1, 20))
            body = order_payload(template, order_id, customer, total, refunded, created, updated, currency,
                                 presentment)
            update = Delivery("orders/updated", body, str(uuid.UUID(int=rng.getrandbits(128))), updated)
            net = total - refunded
            # Out of order: the newer update overtakes the original create now and then.
            deliveries.insert(len(deliveries) - 1 if rng.random() < 0.3 else len(deliveries), update)
        if rng.random() < 0.1:
            deliveries.append(placed)  # Shopify retries with the same webhook id
        expected.orders[str(order_id)] = (normalise_email(customer["raw_email"]) or "", net)
    return deliveries, expected
