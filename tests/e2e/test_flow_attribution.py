"""Attribution on `crm local`, over real HTTP (issue 11's "End-to-end"): a shopper clicks the abandoned-checkout
reminder through the runtime's click tracking (what SES's rewritten link does), orders within 5 days, and
GET /flows/builtin:abandoned_checkout/stats shows one conversion with the order's revenue; a shopper who only
opened it (the open pixel) and orders more than 5 days later is not attributed.

Each test has a store (and so a workspace, and counters) of its own; the clock is the stack's, moved forward
with `crm clock advance` (tests.e2e.test_flows.Shop).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from crm_local.outbound import Outbox, SentEmail, click, open_email

from tests.builders import placed_order_json
from tests.e2e.conftest import LocalStack, start_local_stack
from tests.e2e.test_flows import SENDER, Shop, eventually

pytestmark = pytest.mark.e2e

ABANDONED = "builtin:abandoned_checkout"
TOTAL = Decimal("123.45")  # the order's paid total, in the workspace's reporting currency (USD)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    # Its own runtime: these tests move its clock by days.
    started = start_local_stack()
    yield started
    started.stop()


def new_shop(stack: LocalStack, name: str) -> Shop:
    """A Shopify store in USD in a workspace of its own, the abandoned-checkout flow live."""
    domain, secret = f"e2e-attribution-{name}-{uuid.uuid4().hex[:6]}.myshopify.com", f"e2e-attribution-{name}"
    registered = json.loads(stack.crm("store", "add", "--platform", "shopify", "--domain", domain,
                                      "--webhook-secret", secret, "--currency", "USD"))
    shop = Shop(stack, domain, secret, registered["api_key"], registered["workspace_id"])
    shop.ok("PUT", "/settings/messaging", SENDER)
    shop.live(ABANDONED)
    return shop


def reminded(shop: Shop) -> tuple[str, str, int, SentEmail]:
    """A subscribed shopper's checkout, 4 h on: their first reminder, as moto recorded it (HTML and all)."""
    email, account = f"attributed.{uuid.uuid4().hex[:8]}@example.com", 9_100_000_000_000 + uuid.uuid4().int % 10**9
    shop.customer(email, account)
    token = shop.checkout(email, customer_id=account)
    shop.advance_to(shop.now() + timedelta(hours=4, minutes=10))
    outbox = Outbox(shop.stack.aws_endpoint)
    [reminder] = eventually(lambda: outbox.read().emails_to(email), "the first reminder")
    return email, token, account, reminder


def order(shop: Shop, email: str, token: str, account: int) -> None:
    """The abandoned cart becomes a paid order of TOTAL (USD)."""
    at = shop.now().isoformat()
    order_id = uuid.uuid4().int % 10**13
    amount = str(TOTAL)
    shop.webhook("orders/create", placed_order_json(
        id=order_id, name=f"#{order_id % 10000}", email=email, contact_email=email, checkout_token=token,
        created_at=at, processed_at=at, updated_at=at, buyer_accepts_marketing=False, test=False, currency="USD",
        total_price=amount, current_total_price=amount, subtotal_price=amount, refunds=[],
        total_price_set={"shop_money": {"amount": amount, "currency_code": "USD"},
                         "presentment_money": {"amount": amount, "currency_code": "USD"}},
        customer={"id": account, "email": email, "first_name": "Ada", "last_name": "Lovelace", "phone": None}))


def stats(shop: Shop, since: datetime, step: str | None = None) -> dict[str, Any]:
    path = f"/flows/{quote(ABANDONED, safe=':')}" + (f"/steps/{step}" if step else "")
    answer: dict[str, Any] = shop.ok("GET", f"{path}/stats?from={since.date()}&to={shop.now().date()}")
    return answer


def test_a_clicked_reminder_then_an_order_within_5_days_is_one_conversion(stack: LocalStack) -> None:
    shop = new_shop(stack, "clicked")
    started = shop.now()
    email, token, account, reminder = reminded(shop)
    # The cart's recovery link, as the runtime rewrote it for click tracking: the click redirects to it.
    assert click(reminder, containing="/recover") == reminder.tracked_link("/recover").original
    clicked = shop.now()
    eventually(lambda: stats(shop, started)["totals"]["clicked"] == 1, "the click counted")
    shop.advance_to(clicked + timedelta(days=4, hours=20))  # the second reminder goes out, unopened
    order(shop, email, token, account)
    totals = eventually(lambda: (t := stats(shop, started)["totals"])["converted"] and t, "the order attributed")
    assert (totals["converted"], Decimal(totals["revenue"])) == (1, TOTAL)
    assert (totals["sent"], totals["clicked"]) == (2, 1)
    assert stats(shop, started)["currency"] == "USD"
    # The click was on the first reminder: the order is that message's.
    first = stats(shop, started, "email_1")["totals"]
    assert (first["converted"], Decimal(first["revenue"])) == (1, TOTAL)
    assert stats(shop, started, "email_2")["totals"]["converted"] == 0


def test_an_open_then_an_order_outside_the_window_is_not_attributed(stack: LocalStack) -> None:
    shop = new_shop(stack, "opened")
    started = shop.now()
    email, token, account, reminder = reminded(shop)
    open_email(reminder)  # the open pixel
    opened = shop.now()
    eventually(lambda: stats(shop, started)["totals"]["opened"] == 1, "the open counted")
    shop.advance_to(opened + timedelta(days=5, hours=1))  # past the 5-day open window
    order(shop, email, token, account)
    # The order arrived (the profile counts it) and was not attributed.
    eventually(lambda: shop.profile(email)["orders_count"] == 1, "the order on the profile")
    shop.advance(timedelta(minutes=1))
    totals = stats(shop, started)["totals"]
    assert (totals["opened"], totals["converted"], Decimal(totals["revenue"])) == (1, 0, Decimal("0"))
