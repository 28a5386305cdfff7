"""A simulated workspace for `crm demo`: a Shopify store in USD and a WooCommerce store in EUR, their shoppers
over months; the workspace reports in USD at RATES (PUT /settings/currency).

Shoppers browse the storefronts (POST /track batches: page views with UTM or search referrers, product
views, carts, checkouts), some log in later (identify), and buy: Shopify orders built from Shopify's
published orders/create sample (guest checkouts, phone-only guests, the tracker's id in note_attributes,
the landing URL's UTM parameters), WooCommerce orders from its published order.created sample. Then what
real stores do: refunds (refunds/create, and inside order updates), cancellations, retried deliveries
with the same id and body, and older updates that arrive after newer ones. Not every order is paid: some
WooCommerce orders fail or stay pending, some are pending before they are paid, and some Shopify orders stay
pending; only paid ones are revenue (docs/revenue.md).

The expected outcome is computed here from the simulated facts alone, never with the CRM's code, so
the demo can check the CRM against it to the cent. Everything is drawn from one seeded generator.

Deliveries go out in three waves: anonymous browsing and orders not tied to a browser (sent together by the
demo: they write different profiles), then, once those are drained, whatever links a browser to a shopper
(logins, orders naming the tracker's id).
Which profile survives a link depends on arrival order, but with the waves the number of profiles that
exist when each link lands, and so the number of merges, is known in advance.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from crm_local.wire import compact, shopify_fixture, shopify_headers, woo_fixture, woo_headers, woo_wire

SHOPIFY = "shopify"
WOOCOMMERCE = "woocommerce"
BROWSE, ORDERS, LINKS = 1, 2, 3
WAVES = {BROWSE: "anonymous browsing", ORDERS: "orders", LINKS: "logins and orders naming the tracker's id"}
CURRENCY = "USD"  # the Shopify store's, and the workspace's reporting currency
STORE_CURRENCY = {"shopify": "USD", "woocommerce": "EUR"}
RATES = {"EUR": Decimal("1.10")}  # 1 EUR = 1.10 USD: what the demo sets with PUT /settings/currency
DOMAINS = {SHOPIFY: "demo-outfitters.myshopify.com", WOOCOMMERCE: "shop.demo-outfitters.example"}
START = datetime(2026, 1, 1, tzinfo=UTC)  # the simulated months' first day

FIRST_NAMES = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger",
               "Radia", "Tim", "Hedy", "John", "Sophie", "Yukihiro", "Anita", "Guido", "Karen", "Niklaus"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen",
              "Dijkstra", "Perlman", "Berners-Lee", "Lamarr", "McCarthy", "Wilson", "Matsumoto", "Borg", "van Rossum"]
PRODUCTS = [("632910392", "Organic tee", "19.00"), ("632910393", "Canvas tote", "24.00"),
            ("632910394", "Wool beanie", "32.00"), ("632910395", "Rain jacket", "129.00"),
            ("632910396", "Trail shoes", "98.00"), ("632910397", "Water bottle", "15.00")]
# Where visits come from, with their weights: (name, utm source, utm medium, referrer).
CHANNELS: list[tuple[str, str | None, str | None, str | None, int]] = [
    ("google / cpc", "google", "cpc", None, 30),
    ("facebook / paid_social", "facebook", "paid_social", None, 20),
    ("newsletter / email", "newsletter", "email", None, 15),
    ("google.com / organic", None, None, "https://www.google.com/", 20),
    ("direct", None, None, None, 15),
]


@dataclass(frozen=True)
class Store:
    """What a delivery needs to know about a registered store to be signed and addressed."""

    platform: str
    domain: str
    secret: str
    write_key: str

    @property
    def origin(self) -> str:
        return f"https://{self.domain}"


@dataclass(frozen=True)
class Webhook:
    """One delivery as the platform makes it (a retry repeats ``delivery_id`` and ``body``)."""

    platform: str
    topic: str
    body: bytes
    delivery_id: str
    at: datetime
    wave: int

    @property
    def path(self) -> str:
        return f"/webhooks/{self.platform}"

    def headers(self, store: Store) -> dict[str, str]:
        if self.platform == SHOPIFY:
            return shopify_headers(self.body, secret=store.secret, topic=self.topic, domain=store.domain,
                                   delivery_id=self.delivery_id,
                                   triggered_at=self.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        # WooCommerce numbers each webhook (one per topic) and names the shop by its home URL.
        return woo_headers(self.body, secret=store.secret, topic=self.topic, source=f"{store.origin}/",
                           delivery_id=self.delivery_id, webhook_id="21" if self.topic == "order.created" else "22")


@dataclass(frozen=True)
class TrackBatch:
    """One POST /track from a shopper's browser: up to 20 events, sent from the browser's own address."""

    platform: str
    anonymous_id: str
    events: tuple[dict[str, Any], ...]
    client_ip: str
    wave: int

    @property
    def path(self) -> str:
        return "/track"

    def body(self, store: Store) -> bytes:
        return json.dumps({"write_key": store.write_key, "anonymous_id": self.anonymous_id,
                           "events": list(self.events)}).encode()

    def headers(self, store: Store) -> dict[str, str]:
        # sendBeacon's content type; the page's origin, as a browser sends it.
        return {"Content-Type": "text/plain;charset=UTF-8", "Origin": store.origin}


Message = Webhook | TrackBatch


@dataclass
class ShopperOutcome:
    """What the CRM should hold for one shopper (looked up by ``key``: an email, else a phone)."""

    key: str
    by: str  # "email" or "phone"
    orders: int = 0
    net: Decimal = Decimal("0.00")  # in the reporting currency: net_by_currency at RATES, rounded to the cent
    known: bool = False  # has a profile at all (bought, or identified)
    stores: set[str] = field(default_factory=set)  # where they have counted orders
    net_by_currency: dict[str, Decimal] = field(default_factory=dict)
    unpaid: int = 0  # orders placed and never paid (failed, pending)

    def add_paid(self, currency: str, net: Decimal) -> None:
        self.net_by_currency[currency] = self.net_by_currency.get(currency, Decimal("0.00")) + net
        converted = sum((amount * (Decimal(1) if code == CURRENCY else RATES[code])
                         for code, amount in self.net_by_currency.items()), Decimal(0))
        self.net = converted.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


@dataclass
class Expected:
    shoppers: dict[str, ShopperOutcome] = field(default_factory=dict)
    merges: int = 0
    revenue: dict[str, Decimal] = field(default_factory=lambda: {SHOPIFY: Decimal("0.00"),
                                                                 WOOCOMMERCE: Decimal("0.00")})
    refunds: dict[str, Decimal] = field(default_factory=lambda: {code: Decimal("0.00")
                                                                  for code in STORE_CURRENCY.values()})
    orders_counted: int = 0
    orders_cancelled: int = 0
    orders_unpaid: int = 0

    @property
    def total_revenue(self) -> Decimal:
        """In the reporting currency: the sum of every shopper's."""
        return sum((s.net for s in self.shoppers.values()), Decimal("0.00"))

    @property
    def in_both_stores(self) -> int:
        return sum(1 for s in self.shoppers.values() if len(s.stores) == 2)


@dataclass
class Simulation:
    messages: list[Message]
    expected: Expected
    currency: str = CURRENCY

    def wave(self, number: int) -> list[Message]:
        return [m for m in self.messages if m.wave == number]

    def counts(self) -> Counter[str]:
        return Counter("track" if isinstance(m, TrackBatch) else f"{m.platform} {m.topic}" for m in self.messages)


@dataclass
class _Shopper:
    index: int
    first: str
    last: str
    email: str | None
    raw_email: str | None
    phone: str | None
    stores: tuple[str, ...]
    customer_ids: dict[str, int | None]


@dataclass
class _Browser:
    store: str
    anonymous_id: str
    client_ip: str
    first_visit: datetime
    channel: tuple[str, str | None, str | None, str | None, int]
    linked: bool = False


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Generator:
    def __init__(self, shoppers: int, seed: int, start: datetime, days: int) -> None:
        self.rng = random.Random(seed)
        self.count, self.start, self.days = shoppers, start, days
        self.messages: list[Message] = []
        self.expected = Expected()
        self.shopify_order = json.loads(shopify_fixture("orders/create"))
        self.woo_order = json.loads(woo_fixture("order.created"))
        self.next_order = {SHOPIFY: 5_500_000_000_000, WOOCOMMERCE: 9000}
        self.browsers = 0

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def moment(self, after: datetime | None = None, within_days: int | None = None) -> datetime:
        base = after or self.start
        span = within_days * 86400 if within_days else int((self.start + timedelta(days=self.days) - base)
                                                           .total_seconds())
        return base + timedelta(seconds=self.rng.randint(60, max(120, span)))

    def channel(self) -> tuple[str, str | None, str | None, str | None, int]:
        return self.rng.choices(CHANNELS, weights=[c[4] for c in CHANNELS])[0]

    # --- shoppers -------------------------------------------------------------------------------

    def shopper(self, index: int) -> _Shopper:
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        phone = f"+1415{2_000_000 + index:07d}"
        if rng.random() < 0.06:  # a guest who only ever gives a phone number
            return _Shopper(index, first, last, None, None, phone, (SHOPIFY,), {SHOPIFY: None})
        email = f"{first}.{last}.{index}@example.com".lower().replace(" ", "")
        # Stores send emails as typed: mixed case, stray spaces; the CRM normalises them.
        raw = rng.choice([email, email, email, email.title(), f"  {email.upper()} ", f"{email} "])
        r = rng.random()
        stores = (SHOPIFY,) if r < 0.62 else (WOOCOMMERCE,) if r < 0.88 else (SHOPIFY, WOOCOMMERCE)
        accounts = {s: (7_000_000_000_000 + index if s == SHOPIFY else 100 + index) if rng.random() < 0.7 else None
                    for s in stores}
        return _Shopper(index, first, last, email, raw, phone if rng.random() < 0.3 else None, stores, accounts)

    def run(self) -> Simulation:
        for index in range(self.count):
            self.simulate(self.shopper(index))
        # Visitors who browse and never say who they are: live anonymous profiles.
        for _ in range(self.count // 5):
            self.browse(self.rng.choice([SHOPIFY, WOOCOMMERCE]))
        return Simulation(self.messages, self.expected)

    def simulate(self, shopper: _Shopper) -> None:
        rng = self.rng
        key, by = (shopper.email, "email") if shopper.email else (shopper.phone or "", "phone")
        outcome = self.expected.shoppers.setdefault(key, ShopperOutcome(key, by))
        browsers = [self.browse(store) for store in shopper.stores if rng.random() < 0.55]
        buys = rng.random() < 0.7
        unlinked_orders = False
        for store in shopper.stores:
            if not buys:
                break
            browser = next((b for b in browsers if b.store == store), None)
            placed = browser.first_visit if browser else self.moment(within_days=self.days // 2)
            for _ in range(1 + int(rng.paretovariate(2.0)) - 1 + (rng.random() < 0.4)):
                placed = self.moment(after=placed, within_days=25)
                # Only Shopify orders can carry the tracker's id (the snippet's cart attribute).
                via = browser if browser and store == SHOPIFY and rng.random() < 0.6 else None
                if via:
                    via.linked = True
                else:
                    unlinked_orders = True
                self.order(shopper, store, placed, via, browser, outcome)
        for browser in browsers:
            if shopper.email and rng.random() < 0.4:
                self.identify(shopper, browser)
                browser.linked = True
        linked = sum(b.linked for b in browsers)
        outcome.known = outcome.known or linked > 0 or unlinked_orders
        # Profiles that exist when the links land: each linked browser's, and the one the shopper's
        # unlinked orders made. All of them end as one profile: every other one is merged into it.
        self.expected.merges += max(linked + unlinked_orders - 1, 0)

    # --- the storefront tracker -----------------------------------------------------------------

    def browse(self, store: str) -> _Browser:
        rng = self.rng
        self.browsers += 1
        n = self.browsers
        browser = _Browser(store, self.uid(), f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255 or 1}",
                           self.moment(within_days=self.days - 20), self.channel())
        at = browser.first_visit
        _, source, medium, referrer, _ = browser.channel
        home = f"https://{DOMAINS[store]}/"
        landing: dict[str, Any] = {"type": "page_viewed", "event_id": "e-1", "occurred_at": _iso(at), "url": home}
        if source:
            landing["url"] = f"{home}?utm_source={source}&utm_medium={medium}&utm_campaign=spring"
            landing["utm"] = {"source": source, "medium": medium, "campaign": "spring"}
        if referrer:
            landing["referrer"] = referrer
        events = [landing]
        for product_id, title, price in rng.sample(PRODUCTS, rng.randint(1, 3)):
            at += timedelta(seconds=rng.randint(5, 120))
            events.append({"type": "product_viewed", "event_id": f"e-{len(events) + 1}", "occurred_at": _iso(at),
                           "product": {"product_id": product_id, "title": title, "price": price},
                           "value": price, "currency": CURRENCY})
        if rng.random() < 0.5:
            product_id, title, price = rng.choice(PRODUCTS)
            at += timedelta(seconds=rng.randint(5, 60))
            events.append({"type": "product_added_to_cart", "event_id": f"e-{len(events) + 1}",
                           "occurred_at": _iso(at), "product": {"product_id": product_id, "price": price}})
            if rng.random() < 0.5:
                events.append({"type": "checkout_started", "event_id": f"e-{len(events) + 1}",
                               "occurred_at": _iso(at + timedelta(seconds=30)), "value": price,
                               "currency": CURRENCY})
        self.messages.append(TrackBatch(store, browser.anonymous_id, tuple(events), browser.client_ip, BROWSE))
        return browser

    def identify(self, shopper: _Shopper, browser: _Browser) -> None:
        at = self.moment(after=browser.first_visit, within_days=20)
        identify: dict[str, Any] = {"type": "identify", "event_id": "login-1", "occurred_at": _iso(at),
                                    "email": shopper.raw_email}
        if shopper.phone:
            identify["phone"] = shopper.phone
        page = {"type": "page_viewed", "event_id": "login-0", "occurred_at": _iso(at - timedelta(seconds=20)),
                "url": f"https://{DOMAINS[browser.store]}/account/login"}
        self.messages.append(TrackBatch(browser.store, browser.anonymous_id, (page, identify), browser.client_ip,
                                        LINKS))

    # --- orders ---------------------------------------------------------------------------------

    def order(self, shopper: _Shopper, store: str, placed: datetime, via: _Browser | None,
              browser: _Browser | None, outcome: ShopperOutcome) -> None:
        rng = self.rng
        total = Decimal(rng.randint(1500, 45000)) / 100
        r = rng.random()
        cancelled = r < 0.08
        # How it is paid: WooCommerce orders fail, stay pending, or are pending a while before being paid;
        # some Shopify orders stay pending (a manual payment never made).
        p = rng.random()
        payment = "paid" if cancelled else (
            ("failed" if p < 0.05 else "pending" if p < 0.10 else "pending, then paid" if p < 0.30 else "paid")
            if store == WOOCOMMERCE else ("pending" if p < 0.05 else "paid"))
        paid = payment in ("paid", "pending, then paid")
        refund = Decimal("0.00") if cancelled or not paid or r > 0.3 else (
            total * Decimal(rng.choice([10, 25, 50, 100])) / 100).quantize(Decimal("0.01"))
        wave = LINKS if via else ORDERS
        self.next_order[store] += 1
        order_id = self.next_order[store]
        # Mostly the channel that brought the shopper's browser; the rest came back some other way.
        channel = browser.channel if browser and rng.random() < 0.8 else self.channel()
        if store == SHOPIFY:
            deliveries = self.shopify_deliveries(shopper, order_id, placed, total, refund, cancelled, via, channel,
                                                 paid)
        else:
            deliveries = self.woo_deliveries(shopper, order_id, placed, total, refund, cancelled, payment)
        late = [d for d in deliveries if d[0] == "late"]
        ordered = [d for d in deliveries if d[0] != "late"]
        for _, topic, body, at in ordered + late:  # an older update overtaken by newer ones arrives last
            self.messages.append(Webhook(store, topic, body, self.uid(), at, wave))
        if rng.random() < 0.1:  # the platform retries a delivery it saw no answer to: same id, same body
            self.messages.append(self.messages[-1 - rng.randrange(len(deliveries))])
        outcome.known = True
        if cancelled:
            self.expected.orders_cancelled += 1
            return
        if not paid:
            outcome.unpaid += 1
            self.expected.orders_unpaid += 1
            return
        outcome.stores.add(store)
        outcome.orders += 1
        outcome.add_paid(STORE_CURRENCY[store], total - refund)
        self.expected.orders_counted += 1
        self.expected.revenue[store] += total - refund
        self.expected.refunds[STORE_CURRENCY[store]] += refund

    def shopify_deliveries(self, shopper: _Shopper, order_id: int, placed: datetime, total: Decimal,
                           refund: Decimal, cancelled: bool, via: _Browser | None,
                           channel: tuple[str, str | None, str | None, str | None, int], paid: bool = True,
                           ) -> list[tuple[str, str, bytes, datetime]]:
        rng = self.rng
        order = copy.deepcopy(self.shopify_order)
        stamp = placed.isoformat()
        guest = shopper.customer_ids.get(SHOPIFY) is None
        _, source, medium, referrer, _ = channel
        landing = f"/?utm_source={source}&utm_medium={medium}&utm_campaign=spring" if source else "/"
        order.update(
            id=order_id, name=f"#{order_id % 100000}", order_number=order_id % 100000,
            email=shopper.raw_email, contact_email=shopper.raw_email,
            phone=shopper.phone if shopper.phone and (not shopper.email or rng.random() < 0.5) else None,
            created_at=stamp, processed_at=stamp, updated_at=stamp, cancelled_at=None, cancel_reason=None,
            financial_status="paid" if paid else "pending", currency=CURRENCY, presentment_currency=CURRENCY,
            test=False,
            total_price=_money(total), current_total_price=_money(total), refunds=[],
            landing_site=landing, referring_site=referrer,
            note_attributes=[{"name": "crm_anonymous_id", "value": via.anonymous_id}] if via else [],
            total_price_set={"shop_money": {"amount": _money(total), "currency_code": CURRENCY},
                             "presentment_money": {"amount": _money(total), "currency_code": CURRENCY}},
        )
        if guest:
            order["customer"] = None
        else:
            order["customer"] = {**order["customer"], "id": shopper.customer_ids[SHOPIFY], "email": shopper.raw_email,
                                 "first_name": shopper.first, "last_name": shopper.last, "phone": None}
        deliveries = [("create", "orders/create", compact(order), placed)]
        if not paid:
            return deliveries
        if cancelled:
            at = placed + timedelta(hours=rng.randint(1, 72))
            order.update(cancelled_at=at.isoformat(), cancel_reason="customer", updated_at=at.isoformat(),
                         financial_status="voided", current_total_price="0.00")
            deliveries.append(("cancel", "orders/cancelled", compact(order), at))
            return deliveries
        fulfilled = placed + timedelta(hours=rng.randint(2, 48))
        if refund or rng.random() < 0.3:
            order.update(updated_at=fulfilled.isoformat(), fulfillment_status="fulfilled")
            shipped = compact(order)
        else:
            shipped = b""
        if refund:
            refunded_at = fulfilled + timedelta(days=rng.randint(1, 20))
            refund_id = order_id + 1
            listed = {"id": refund_id, "created_at": refunded_at.isoformat(), "transactions": [
                {"kind": "refund", "status": "success", "amount": _money(refund), "currency": CURRENCY}]}
            order.update(refunds=[listed], updated_at=refunded_at.isoformat(),
                         financial_status="refunded" if refund == total else "partially_refunded",
                         current_total_price=_money(total - refund))
            how = rng.random()
            if how < 0.7:  # Shopify sends both: refunds/create and the order's update listing it
                deliveries.append(("refund", "refunds/create", compact({**listed, "order_id": order_id}),
                                   refunded_at))
            if how > 0.3:
                deliveries.append(("update", "orders/updated", compact(order), refunded_at))
        if shipped:
            # The fulfilment update, older than the refund, is delivered after it now and then.
            deliveries.append(("late" if refund and rng.random() < 0.5 else "update", "orders/updated", shipped,
                               fulfilled))
        return deliveries

    def woo_deliveries(self, shopper: _Shopper, order_id: int, placed: datetime, total: Decimal,
                       refund: Decimal, cancelled: bool, payment: str = "paid",
                       ) -> list[tuple[str, str, bytes, datetime]]:
        rng = self.rng
        order = copy.deepcopy(self.woo_order)
        naive = "%Y-%m-%dT%H:%M:%S"
        order.update(
            id=order_id, number=str(order_id), status="processing" if payment == "paid" else "pending",
            currency=STORE_CURRENCY[WOOCOMMERCE], total=_money(total),
            customer_id=shopper.customer_ids.get(WOOCOMMERCE) or 0,
            date_created=placed.strftime(naive), date_created_gmt=placed.strftime(naive),
            date_modified=placed.strftime(naive), date_modified_gmt=placed.strftime(naive), refunds=[],
        )
        order["billing"] = {**order["billing"], "first_name": shopper.first, "last_name": shopper.last,
                            "email": shopper.raw_email or "", "phone": shopper.phone or ""}
        deliveries = [("create", "order.created", woo_wire(order), placed)]
        if payment != "paid":
            # The payment's outcome minutes later; the pending creation arrives after it now and then.
            at = placed + timedelta(minutes=rng.randint(1, 90))
            if rng.random() < 0.3:
                deliveries = [("late", *deliveries[0][1:])]
            if payment == "pending":
                return deliveries
            order.update(status="failed" if payment == "failed" else "processing", date_modified_gmt=at.strftime(naive))
            deliveries.append(("update", "order.updated", woo_wire(order), at))
            if payment == "failed":
                return deliveries
        if cancelled:
            at = placed + timedelta(hours=rng.randint(1, 72))
            order.update(status="cancelled", date_modified_gmt=at.strftime(naive))
            deliveries.append(("cancel", "order.updated", woo_wire(order), at))
            return deliveries
        completed = placed + timedelta(hours=rng.randint(2, 48))
        order.update(status="completed", date_modified_gmt=completed.strftime(naive))
        shipped = woo_wire(order)
        if refund:
            at = completed + timedelta(days=rng.randint(1, 20))
            # WooCommerce lists refunds on the order as negative amounts.
            order.update(status="refunded" if refund == total else "completed", date_modified_gmt=at.strftime(naive),
                         refunds=[{"id": order_id * 10 + 1, "reason": "", "total": f"-{_money(refund)}"}])
            deliveries.append(("update", "order.updated", woo_wire(order), at))
            deliveries.append(("late" if rng.random() < 0.5 else "update", "order.updated", shipped, completed))
        elif rng.random() < 0.5:
            deliveries.append(("update", "order.updated", shipped, completed))
        return deliveries


def catalogue(platform: str) -> tuple[str, ...]:
    """The product titles a simulated store's orders carry (its published sample's line items): the two stores
    sell different things, so what a shopper bought says in which store they bought it."""
    sample = json.loads(shopify_fixture("orders/create") if platform == SHOPIFY else woo_fixture("order.created"))
    return tuple(sorted({str(item.get("title") or item["name"]) for item in sample["line_items"]}))


def simulate(shoppers: int, seed: int, start: datetime | None = None, days: int = 182) -> Simulation:
    """``shoppers`` shoppers (and a fifth as many anonymous visitors) over ``days`` from ``start``."""
    return _Generator(shoppers, seed, start or START, days).run()


# --- flows: a day of carts, then a month fast-forwarded -------------------------------------------------------
#
# A second, separate cast for the flows part of `make demo`: shoppers of the Shopify store who abandon checkouts,
# browse, order, unsubscribe and bounce. Their times are offsets from the moment the built-in flows go live (T0,
# the runtime's clock then); the demo delivers each action when its fast-forwarded clock reaches it. What each
# shopper must receive is computed here from their fate alone, never with the CRM's code.

ABANDONED_CHECKOUT = "builtin:abandoned_checkout"
BROWSE_ABANDONMENT = "builtin:browse_abandonment"
REMINDERS = ("builtin:abandoned_checkout_1", "builtin:abandoned_checkout_2")  # the reminders' template ids
FIRST_REMINDER_AFTER = timedelta(hours=4)
SECOND_REMINDER_AFTER = timedelta(hours=24)  # after the checkout
# When the demo acts, as offsets from T0. Orders come in a few batches, each a clock step of its own; each batch
# is well clear of the reminders' due times (a checkout starts up to CHECKOUT_SPREAD before T0).
CHECKOUT_SPREAD = timedelta(minutes=10)
SOON_ORDERS = (timedelta(hours=2),)
LATER_ORDERS = (timedelta(hours=12),)
UNSUBSCRIBE_AT = timedelta(hours=5)  # after the first reminders, before the second
MONTH = timedelta(days=30)
SIMULATOR = "simulator.amazonses.com"  # SES's mailbox simulator (the local runtime emulates it)


class Fate:
    """What a flow shopper does after starting a checkout (or, for BROWSES, instead of one)."""

    ABANDONS = "abandons"  # never orders
    ORDERS_SOON = "orders within 4 h"
    ORDERS_LATER = "orders after 4 h, before 24 h"
    UNSUBSCRIBES = "unsubscribes from the first reminder"
    BOUNCES = "hard-bounces"
    COMPLAINS = "complains"
    BROWSES = "browses products, no checkout"

    ALL = (ABANDONS, ORDERS_SOON, ORDERS_LATER, UNSUBSCRIBES, BOUNCES, COMPLAINS, BROWSES)
    WEIGHTS = (30, 18, 14, 10, 8, 6, 14)


@dataclass(frozen=True)
class FlowShopper:
    """One shopper of the flows part; ``consents``: subscribed to email before the flows go live."""

    index: int
    first: str
    last: str
    email: str
    customer_id: int | None  # None: a guest, no account
    fate: str
    consents: bool
    checkout_token: str | None = None  # None for BROWSES
    items: tuple[tuple[str, str, str, int], ...] = ()  # (product id, title, price, quantity)
    checkout_lead: timedelta = timedelta(0)  # how long before T0 the checkout started
    duplicated: bool = False  # Shopify delivers the checkout webhook twice (same id, same body)
    anonymous_id: str | None = None  # BROWSES: the storefront tracker's id, tied by a signed order
    order_at: timedelta | None = None

    @property
    def value(self) -> Decimal:
        return sum((Decimal(price) * quantity for _, _, price, quantity in self.items), Decimal("0.00"))

    @property
    def bounces(self) -> bool:
        return self.fate in (Fate.BOUNCES, Fate.COMPLAINS)

    def expected_reminders(self) -> tuple[str, ...]:
        """The abandoned-checkout reminders (template ids) this shopper must get: both when they consent and
        never order; none when they order within 4 h or do not consent; only the first when they order later,
        unsubscribe from it, or bounce or complain about it (suppressed)."""
        if self.checkout_token is None or not self.consents or self.fate == Fate.ORDERS_SOON:
            return ()
        if self.fate == Fate.ABANDONS:
            return REMINDERS
        return REMINDERS[:1]

    @property
    def silenced_at(self) -> timedelta | None:
        """From when nothing more may reach the address (unsubscribed, bounced, complained), from T0; a
        bounce or complaint comes back with the first reminder, so that is the earliest it can count."""
        if self.fate == Fate.UNSUBSCRIBES:
            return UNSUBSCRIBE_AT
        if self.bounces:
            return FIRST_REMINDER_AFTER - self.checkout_lead
        return None


@dataclass(frozen=True)
class FlowAction:
    """Something the demo does at ``at`` (from T0): deliver a message, or unsubscribe a shopper."""

    at: timedelta
    kind: str  # "webhook", "track" or "unsubscribe"
    shopper: FlowShopper
    message: Message | None = None


@dataclass
class FlowSimulation:
    shoppers: list[FlowShopper]
    t0: datetime
    # Consent and the browsers' ties, delivered and drained before the flows go live: each shopper's in order.
    before_live_by_shopper: list[list[Message]]
    actions: list[FlowAction]  # ordered by ``at``

    @property
    def before_live(self) -> list[Message]:
        return [message for messages in self.before_live_by_shopper for message in messages]

    def checkpoints(self) -> list[timedelta]:
        """The clock's stops, from T0: every action's time, each reminder's due time (plus a margin), then the
        rest of the month in one large step, so that due schedules fire in batches."""
        margin = CHECKOUT_SPREAD
        stops = {a.at for a in self.actions} | {FIRST_REMINDER_AFTER + margin, SECOND_REMINDER_AFTER + margin}
        # Then the month in one step: what falls due on the way fires in due order on arrival (a wake-up that
        # schedules the next one fires too), and the daily segment run, which would run at every stop over the
        # whole workspace, runs once (a jump over several of its occurrences fires it once, as a late catch-up).
        stops.add(MONTH)
        return sorted(s for s in stops if s > timedelta(0))

    def expected_reminders(self) -> dict[str, tuple[str, ...]]:
        return {s.email: s.expected_reminders() for s in self.shoppers if s.checkout_token}

    def count(self, fate: str) -> int:
        return sum(1 for s in self.shoppers if s.fate == fate)

    def runs_expected(self) -> int:
        """Abandoned-checkout runs: one per checkout, a duplicated webhook included."""
        return sum(1 for s in self.shoppers if s.checkout_token)


class _FlowGenerator:
    def __init__(self, shoppers: int, seed: int, t0: datetime, store: str) -> None:
        self.rng = random.Random(seed)
        self.count, self.t0, self.domain = shoppers, t0, store
        self.checkout = json.loads(shopify_fixture("checkouts/create"))
        self.order = json.loads(shopify_fixture("orders/create"))
        self.next_order = 6_600_000_000_000

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def shopper(self, index: int, fate: str) -> FlowShopper:
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        label = f"f{index}"
        if fate == Fate.BOUNCES:
            email = f"bounce+{label}@{SIMULATOR}"
        elif fate == Fate.COMPLAINS:
            email = f"complaint+{label}@{SIMULATOR}"
        else:
            email = f"{first}.{last}.{label}@example.com".lower().replace(" ", "")
        # Those who unsubscribe or bounce must first get something: they consent. Consent lives on an account
        # (customers/create, before the flows go live); browsers have one too; half of the rest are guests.
        consents = fate in (Fate.UNSUBSCRIBES, Fate.BOUNCES, Fate.COMPLAINS) or rng.random() < 0.75
        account = consents or fate == Fate.BROWSES or rng.random() < 0.5
        customer_id = 8_000_000_000_000 + index if account else None
        if fate == Fate.BROWSES:
            return FlowShopper(index, first, last, email, customer_id, fate, consents, anonymous_id=self.uid())
        items = tuple((pid, title, price, rng.randint(1, 2)) for pid, title, price in rng.sample(PRODUCTS,
                                                                                             rng.randint(1, 3)))
        order_at = (rng.choice(SOON_ORDERS) if fate == Fate.ORDERS_SOON
                    else rng.choice(LATER_ORDERS) if fate == Fate.ORDERS_LATER else None)
        return FlowShopper(index, first, last, email, customer_id, fate, consents,
                           checkout_token=uuid.UUID(int=rng.getrandbits(128)).hex, items=items,
                           checkout_lead=timedelta(seconds=rng.randint(0, int(CHECKOUT_SPREAD.total_seconds()))),
                           duplicated=rng.random() < 0.15, order_at=order_at)

    def run(self) -> FlowSimulation:
        # Every fate at least once, then drawn by weight.
        fates = list(Fate.ALL) + self.rng.choices(Fate.ALL, weights=Fate.WEIGHTS, k=max(0, self.count - len(Fate.ALL)))
        shoppers = [self.shopper(index, fate) for index, fate in enumerate(fates[:self.count])]
        before: list[list[Message]] = []
        actions: list[FlowAction] = []
        for shopper in shoppers:
            before.append(self.before_live(shopper))
            if shopper.checkout_token:
                checkout = self.webhook("checkouts/create", self.checkout_body(shopper),
                                        self.t0 - shopper.checkout_lead)
                actions.append(FlowAction(timedelta(0), "webhook", shopper, checkout))
                if shopper.duplicated:
                    actions.append(FlowAction(timedelta(0), "webhook", shopper, checkout))
            else:
                actions.append(FlowAction(timedelta(0), "track", shopper, self.views(shopper)))
            if shopper.order_at is not None:
                at = self.t0 + shopper.order_at
                actions.append(FlowAction(shopper.order_at, "webhook", shopper,
                                          self.webhook("orders/create", self.order_body(shopper, at), at)))
            if shopper.fate == Fate.UNSUBSCRIBES:
                actions.append(FlowAction(UNSUBSCRIBE_AT, "unsubscribe", shopper))
        actions.sort(key=lambda a: a.at)
        return FlowSimulation(shoppers, self.t0, before, actions)

    def webhook(self, topic: str, body: dict[str, Any], at: datetime, wave: int = 0) -> Webhook:
        return Webhook(SHOPIFY, topic, compact(body), self.uid(), at, wave)

    def before_live(self, shopper: FlowShopper) -> list[Message]:
        """The shopper's account with their email consent (or its absence), and for a browser the signed order
        that names the tracker's id (the cart attribute): the tie that lets flows act on their browsing."""
        at = self.t0 - timedelta(hours=2)
        messages: list[Message] = []
        if shopper.customer_id is not None:
            messages.append(self.webhook("customers/create", self.customer(shopper, at), at))
        if shopper.anonymous_id:
            visited = at + timedelta(minutes=5)
            page = {"type": "page_viewed", "event_id": "tie-1", "occurred_at": _iso(visited),
                    "url": f"https://{self.domain}/"}
            messages.append(TrackBatch(SHOPIFY, shopper.anonymous_id, (page,), _browser_ip(shopper), 0))
            ordered = at + timedelta(minutes=30)
            messages.append(self.webhook("orders/create", self.order_body(shopper, ordered, tie=True), ordered))
        return messages

    def customer(self, shopper: FlowShopper, at: datetime) -> dict[str, Any]:
        stamp = at.isoformat()
        return {"id": shopper.customer_id, "email": shopper.email, "first_name": shopper.first,
                "last_name": shopper.last, "phone": None, "created_at": stamp, "updated_at": stamp,
                "state": "enabled", "verified_email": True, "currency": CURRENCY, "addresses": [],
                "email_marketing_consent": {"state": "subscribed" if shopper.consents else "not_subscribed",
                                            "opt_in_level": "single_opt_in", "consent_updated_at": stamp}}

    def line_items(self, shopper: FlowShopper, sample: dict[str, Any]) -> list[dict[str, Any]]:
        items = shopper.items or ((PRODUCTS[0][0], PRODUCTS[0][1], PRODUCTS[0][2], 1),)
        lines = []
        for n, (product_id, title, price, quantity) in enumerate(items):
            line = copy.deepcopy(sample)
            line.update(product_id=int(product_id), variant_id=int(product_id) * 10 + 1, title=title,
                        price=price, quantity=quantity, line_price=_money(Decimal(price) * quantity),
                        sku=f"SKU-{product_id}", presentment_title=title)
            if "id" in line:  # an order's line has an id; a checkout's has a key
                line["id"] = int(product_id) * 100 + n
            lines.append(line)
        return lines

    def buyer(self, shopper: FlowShopper) -> dict[str, Any] | None:
        # No consent objects on the checkout's or order's customer: they state nothing about consent.
        if shopper.customer_id is None:
            return None
        return {"id": shopper.customer_id, "email": shopper.email, "first_name": shopper.first,
                "last_name": shopper.last, "phone": None, "state": "enabled", "verified_email": True,
                "currency": CURRENCY}

    def checkout_body(self, shopper: FlowShopper) -> dict[str, Any]:
        body: dict[str, Any] = copy.deepcopy(self.checkout)
        started = (self.t0 - shopper.checkout_lead).isoformat()
        token = shopper.checkout_token or ""
        total = _money(shopper.value)
        names = {"first_name": shopper.first, "last_name": shopper.last, "name": f"{shopper.first} {shopper.last}",
                 "phone": None}
        body.update(
            token=token, cart_token=f"cart-{token[:16]}", email=shopper.email, created_at=started,
            updated_at=started, buyer_accepts_marketing=False, buyer_accepts_sms_marketing=False, phone=None,
            sms_marketing_phone=None, completed_at=None, closed_at=None, currency=CURRENCY,
            presentment_currency=CURRENCY, note_attributes=[],
            abandoned_checkout_url=f"https://{self.domain}/checkouts/{token}/recover?key={token[16:]}",
            line_items=self.line_items(shopper, self.checkout["line_items"][0]),
            total_price=total, subtotal_price=total, total_line_items_price=total, total_tax="0.00",
            total_discounts="0.00", customer=self.buyer(shopper),
            billing_address={**body["billing_address"], **names},
            shipping_address={**body["shipping_address"], **names},
        )
        return body

    def order_body(self, shopper: FlowShopper, at: datetime, tie: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = copy.deepcopy(self.order)
        self.next_order += 1
        stamp = at.isoformat()
        lines = self.line_items(shopper, self.order["line_items"][0])
        total = _money(sum((Decimal(line["price"]) * line["quantity"] for line in lines), Decimal("0.00")))
        body.update(
            id=self.next_order, name=f"#{self.next_order % 100000}", order_number=self.next_order % 100000,
            email=shopper.email, contact_email=shopper.email, phone=None, buyer_accepts_marketing=False,
            created_at=stamp, processed_at=stamp, updated_at=stamp, cancelled_at=None, cancel_reason=None,
            financial_status="paid", currency=CURRENCY, presentment_currency=CURRENCY, test=False,
            checkout_token=shopper.checkout_token, line_items=lines, refunds=[], total_price=total,
            current_total_price=total, subtotal_price=total,
            total_price_set={"shop_money": {"amount": total, "currency_code": CURRENCY},
                             "presentment_money": {"amount": total, "currency_code": CURRENCY}},
            note_attributes=[{"name": "crm_anonymous_id", "value": shopper.anonymous_id}] if tie else [],
            customer=self.buyer(shopper),
        )
        return body

    def views(self, shopper: FlowShopper) -> TrackBatch:
        """A known shopper's browsing at T0: two or three products viewed, nothing added to a cart."""
        events: list[dict[str, Any]] = []
        at = self.t0 - timedelta(minutes=5)
        for product_id, title, price in self.rng.sample(PRODUCTS, self.rng.randint(2, 3)):
            at += timedelta(seconds=self.rng.randint(5, 60))
            events.append({"type": "product_viewed", "event_id": f"view-{len(events) + 1}", "occurred_at": _iso(at),
                           "url": f"https://{self.domain}/products/{product_id}",
                           "product": {"product_id": product_id, "title": title, "price": price},
                           "value": price, "currency": CURRENCY})
        return TrackBatch(SHOPIFY, shopper.anonymous_id or "", tuple(events), _browser_ip(shopper), 0)


def _browser_ip(shopper: FlowShopper) -> str:
    return f"127.200.{shopper.index // 250}.{shopper.index % 250 + 1}"


def simulate_flows(shoppers: int, seed: int, t0: datetime, domain: str = DOMAINS[SHOPIFY]) -> FlowSimulation:
    """``shoppers`` shoppers of the Shopify store for the flows part, acting from ``t0`` (when flows go live)."""
    return _FlowGenerator(shoppers, seed, t0, domain).run()
