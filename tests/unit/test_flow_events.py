"""The events flows start from, derived by the outbox from the stream records the profiles pipeline writes.

The deliveries are the published platform samples (and /track bodies as a page sends them), applied by the
same pipeline the profiles function runs; ``StreamTap`` turns each committed change into the DynamoDB stream
records (NEW_AND_OLD_IMAGES, the table adapter's item shapes) the outbox function would receive.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, TypeVar

from crm.adapters import keys
from crm.adapters.items import to_item
from crm.connectors.shopify import ANONYMOUS_ID_ATTRIBUTE, SHOPIFY
from crm.connectors.woocommerce import WOOCOMMERCE
from crm.ingestion import apply_event
from crm.models.canonical import CanonicalEvent, CustomerRecord
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.events import (
    AnyDomainEvent,
    CheckoutStarted,
    ConsentChanged,
    ContactCreated,
    CustomerCreated,
    OrderFulfilled,
    OrderPlaced,
    ProductViewed,
)
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.stores import Platform
from crm.outbox import events_for
from crm.ports import Change
from crm.tracking import track_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import (
    FIXTURE_ORDER_ID,
    NOW,
    compact,
    customer_record,
    envelope,
    fixture_json,
    placed_order_json,
    woo_fixture_json,
    woo_wire,
)
from tests.fakes import FakeProfileRepository, FakeStoreDirectory

E = TypeVar("E")
WS, STORE = "ws_a", "st_a"
IMAGE = "https://cdn.example/products/ipod-nano.png"


class StreamTap(FakeProfileRepository):
    """The fake repository, recording each commit as the stream records its items would produce."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, Any]] = []

    def commit(self, change: Change) -> None:
        ws = change.workspace_id
        before: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []
        for profile, _ in change.profiles:
            held = self.profiles.get((ws, profile.profile_id))
            key = keys.profile(ws, profile.profile_id)
            before.append((to_item(key, "profile", held) if held else None, to_item(key, "profile", profile)))
        if change.order is not None:
            record = change.order[0]
            held_order = self.orders.get((ws, record.store_id, record.order_id))
            key = keys.order(ws, record.store_id, record.order_id)
            before.append((to_item(key, "order", held_order, version=held_order.version) if held_order else None,
                           to_item(key, "order", record, version=record.version)))
        for entry in change.timeline:
            held_entry = self.timelines.get((ws, entry.profile_id), {}).get(entry.sort_key)
            key = keys.timeline(ws, entry.profile_id, entry.sort_key)
            before.append((to_item(key, "timeline", held_entry) if held_entry else None,
                           to_item(key, "timeline", entry)))
        super().commit(change)
        for old, new in before:
            data: dict[str, Any] = {"NewImage": new, "SequenceNumber": str(len(self.records) + 1),
                                    "StreamViewType": "NEW_AND_OLD_IMAGES"}
            if old is not None:
                data["OldImage"] = old
            self.records.append({"eventName": "MODIFY" if old else "INSERT", "dynamodb": data})

    def published(self) -> list[AnyDomainEvent]:
        return [event for record in self.records for event in events_for(record)]


def apply(tap: StreamTap, events: list[CanonicalEvent], now: Any = NOW) -> list[AnyDomainEvent]:
    """Apply the events; the flow events their stream records publish."""
    start = len(tap.records)
    for event in events:
        apply_event(tap, event, now)
    return [event for record in tap.records[start:] for event in events_for(record)]


def shopify(topic: str, payload: dict[str, Any]) -> list[CanonicalEvent]:
    return SHOPIFY.events(envelope(None, topic=topic), compact(payload), FakeStoreDirectory())


def track(anonymous_id: str, *events: dict[str, Any]) -> list[CanonicalEvent]:
    raw = json.dumps({"anonymous_id": anonymous_id, "events": list(events)}).encode()
    message = IngestEnvelope(platform=Platform.SHOPIFY, source="track", workspace_id=WS, store_id=STORE,
                             meta=DeliveryMeta(topic="track", delivery_id="d"), received_at=NOW, body=raw.decode())
    return list(track_events(message, raw))


def of_type(events: list[AnyDomainEvent], kind: type[E]) -> list[E]:
    return [event for event in events if isinstance(event, kind)]


def checkout_payload(**overrides: Any) -> dict[str, Any]:
    payload = fixture_json("checkouts/create")
    payload["line_items"][0]["image_url"] = IMAGE
    payload.update(overrides)
    return payload


# --- CheckoutStarted --------------------------------------------------------------------------------


def test_a_shopify_checkout_is_checkout_started_with_its_cart_and_recovery_link() -> None:
    payload = checkout_payload()
    published = apply(StreamTap(), shopify("checkouts/create", payload))

    [started] = of_type(published, CheckoutStarted)
    line = payload["line_items"][0]
    assert started.checkout_id == payload["token"]
    assert started.recovery_url == payload["abandoned_checkout_url"]
    assert (started.value, started.currency) == (payload["total_price"], payload["currency"])
    assert started.store_id == STORE and started.workspace_id == WS
    first = started.items[0]
    assert (first.title, first.quantity, first.price, first.sku, first.image_url) == \
        (line["title"], line["quantity"], line["price"], line["sku"], IMAGE)
    assert first.product_id == str(line["product_id"])
    assert started.from_browser is False  # Shopify signed the delivery
    assert started.event_id.startswith(f"CheckoutStarted:{WS}:{STORE}:checkout_started:{payload['token']}:")
    # Events carry ids and what a message shows, never contact data.
    assert payload["email"] not in started.model_dump_json()


def test_a_checkout_update_is_not_a_new_checkout_started() -> None:
    tap = StreamTap()
    apply(tap, shopify("checkouts/create", checkout_payload()))
    later = checkout_payload(updated_at="2099-01-01T00:00:00Z")
    assert of_type(apply(tap, shopify("checkouts/update", later)), CheckoutStarted) == []


def test_a_tracked_checkout_carries_pictures_links_and_the_recovery_url() -> None:
    body = {"type": "checkout_started", "event_id": "co-1", "occurred_at": "2026-03-01T11:00:00Z",
            "cart_token": "cart-9", "value": "25.00", "currency": "eur",
            "recovery_url": "https://shop.example/cart/recover/cart-9",
            "products": [{"product_id": 7, "title": "Mug", "price": "12.50", "quantity": 2,
                          "image_url": "https://shop.example/mug.png", "url": "https://shop.example/p/mug"}]}
    [started] = of_type(apply(StreamTap(), track("browser-1", body)), CheckoutStarted)
    assert started.checkout_id == "cart-9"
    assert started.recovery_url == "https://shop.example/cart/recover/cart-9"
    [item] = started.items
    assert (item.title, item.quantity, item.price, item.image_url, item.product_url) == \
        ("Mug", 2, "12.50", "https://shop.example/mug.png", "https://shop.example/p/mug")
    assert (started.value, started.currency) == ("25.00", "EUR")
    assert started.from_browser is True  # nobody signed anything about this browser


# --- from_browser: who vouches that the browser is the shopper's -----------------------------------


SHOPPER = "shopper@example.com"


def _signed_order_from(browser: str) -> list[CanonicalEvent]:
    payload = placed_order_json(email=SHOPPER, note_attributes=[{"name": ANONYMOUS_ID_ATTRIBUTE, "value": browser}])
    return shopify("orders/create", payload)


def _view(event_id: str) -> dict[str, Any]:
    return {"type": "product_viewed", "event_id": event_id, "occurred_at": "2026-03-01T11:30:00Z",
            "url": "https://shop.example/p/mug",
            "product": {"product_id": "7", "title": "Mug", "price": "12.50", "image_url": "https://shop.example/m.png"}}


def test_views_from_a_browser_an_order_named_are_the_shoppers() -> None:
    tap = StreamTap()
    apply(tap, _signed_order_from("own-browser"))
    [viewed] = of_type(apply(tap, track("own-browser", _view("v-1"))), ProductViewed)
    assert viewed.from_browser is False
    assert (viewed.product.title, viewed.product.image_url, viewed.url) == \
        ("Mug", "https://shop.example/m.png", "https://shop.example/p/mug")
    assert viewed.profile_id == tap.profile_id_for_identity(WS, f"email#{SHOPPER}")


def test_a_forged_identify_does_not_make_the_forgers_views_the_shoppers() -> None:
    """docs/consent.md, residual risk: a browser that names a known shopper's email joins their profile,
    but what it does there stays marked as a browser's claim, so abandonment flows do not act on it."""
    tap = StreamTap()
    apply(tap, _signed_order_from("own-browser"))
    forged = {"type": "identify", "event_id": "forged", "occurred_at": "2026-03-01T11:00:00Z", "email": SHOPPER}
    apply(tap, track("attacker-browser", forged))
    assert tap.profile_id_for_identity(WS, f"anon#{STORE}#attacker-browser") == \
        tap.profile_id_for_identity(WS, f"email#{SHOPPER}")  # the browser did join the shopper's profile

    published = apply(tap, track("attacker-browser", _view("v-2"), {
        "type": "checkout_started", "event_id": "co-2", "occurred_at": "2026-03-01T11:40:00Z",
        "recovery_url": "https://evil.example/phish", "products": [{"title": "Mug"}]}))

    [viewed] = of_type(published, ProductViewed)
    [started] = of_type(published, CheckoutStarted)
    assert viewed.from_browser is True and started.from_browser is True
    assert viewed.profile_id == started.profile_id == tap.profile_id_for_identity(WS, f"email#{SHOPPER}")


def test_a_signed_checkout_naming_the_browser_vouches_for_its_later_activity() -> None:
    tap = StreamTap()
    apply(tap, track("browser-2", {"type": "identify", "event_id": "i-1", "occurred_at": "2026-03-01T10:00:00Z",
                                   "email": SHOPPER}))
    [before] = of_type(apply(tap, track("browser-2", _view("v-3"))), ProductViewed)
    assert before.from_browser is True
    signed = checkout_payload(email=SHOPPER, note_attributes=[{"name": ANONYMOUS_ID_ATTRIBUTE, "value": "browser-2"}])
    apply(tap, shopify("checkouts/create", signed))
    [after] = of_type(apply(tap, track("browser-2", _view("v-4"))), ProductViewed)
    assert after.from_browser is False


def test_anonymous_browsing_publishes_no_product_viewed_until_the_browser_has_an_address() -> None:
    tap = StreamTap()
    assert of_type(apply(tap, track("browser-6", _view("v-7"), _view("v-8"))), ProductViewed) == []
    apply(tap, track("browser-6", {"type": "identify", "event_id": "i-4", "occurred_at": "2026-03-01T10:00:00Z",
                                   "email": "new@example.com"}))
    [viewed] = of_type(apply(tap, track("browser-6", _view("v-9"))), ProductViewed)
    assert viewed.from_browser is True


# --- OrderPlaced, OrderFulfilled -------------------------------------------------------------------


def test_order_placed_names_its_number_and_items() -> None:
    payload = placed_order_json()
    [placed] = of_type(apply(StreamTap(), shopify("orders/create", payload)), OrderPlaced)
    assert placed.order_number == payload["name"]
    assert [(i.title, i.quantity, i.price) for i in placed.items] == \
        [(line["title"], line["quantity"], line["price"]) for line in payload["line_items"]]


def test_a_shopify_order_fulfilled_is_order_fulfilled_once() -> None:
    tap = StreamTap()
    apply(tap, shopify("orders/create", placed_order_json(fulfillment_status=None)))
    shipped = placed_order_json(fulfillment_status="fulfilled", updated_at="2026-03-02T09:00:00-05:00")
    [fulfilled] = of_type(apply(tap, shopify("orders/fulfilled", shipped)), OrderFulfilled)
    assert fulfilled.event_id == f"OrderFulfilled:{WS}:{STORE}:{FIXTURE_ORDER_ID}"
    assert fulfilled.order_id == FIXTURE_ORDER_ID
    assert [i.title for i in fulfilled.items] == [line["title"] for line in shipped["line_items"]]
    assert fulfilled.occurred_at.isoformat() == "2026-03-02T14:00:00+00:00"
    # A later update of the shipped order is not a second fulfilment.
    again = placed_order_json(fulfillment_status="fulfilled", updated_at="2026-03-03T09:00:00-05:00")
    assert of_type(apply(tap, shopify("orders/updated", again)), OrderFulfilled) == []


def test_a_fulfillment_and_the_orders_status_are_one_event_to_a_consumer() -> None:
    tap = StreamTap()
    apply(tap, shopify("orders/create", placed_order_json(fulfillment_status=None)))
    fulfillment = fixture_json("fulfillments/create")
    fulfillment.update(order_id=int(FIXTURE_ORDER_ID), email=placed_order_json()["email"])
    [by_fulfillment] = of_type(apply(tap, shopify("fulfillments/create", fulfillment)), OrderFulfilled)
    assert by_fulfillment.order_id == FIXTURE_ORDER_ID
    assert [i.title for i in by_fulfillment.items] == [line["title"] for line in fulfillment["line_items"]]
    [by_status] = of_type(apply(tap, shopify("orders/fulfilled", placed_order_json(
        fulfillment_status="fulfilled", updated_at="2026-03-02T09:00:00-05:00"))), OrderFulfilled)
    assert by_fulfillment.event_id == by_status.event_id
    assert by_fulfillment.profile_id == by_status.profile_id


def test_a_woocommerce_order_completed_is_order_fulfilled() -> None:
    tap = StreamTap()
    created = woo_fixture_json("order.created")
    woo = envelope(None, topic="order.created", platform=Platform.WOOCOMMERCE)
    apply(tap, WOOCOMMERCE.events(woo, woo_wire(created), FakeStoreDirectory()))
    completed = {**created, "status": "completed", "date_modified_gmt": "2099-01-01T00:00:00"}
    woo_update = envelope(None, topic="order.updated", platform=Platform.WOOCOMMERCE)
    published = apply(tap, WOOCOMMERCE.events(woo_update, woo_wire(completed), FakeStoreDirectory()))
    [fulfilled] = of_type(published, OrderFulfilled)
    assert fulfilled.order_id == str(created["id"])
    assert fulfilled.items[0].title == created["line_items"][0]["name"]


# --- ContactCreated, ConsentChanged, CustomerCreated ----------------------------------------------


def test_a_profile_that_gains_an_email_is_contact_created() -> None:
    tap = StreamTap()
    first = apply(tap, track("browser-3", _view("v-5")))
    # Anonymous: a browser's profile comes to be, but it names no shopper and nobody can be messaged about the
    # view, so nothing is published.
    assert first == []
    gained = apply(tap, _signed_order_from("browser-3"))
    [contact] = of_type(gained, ContactCreated)
    assert contact.channels == ("email",)
    assert contact.profile_id == tap.profile_id_for_identity(WS, f"anon#{STORE}#browser-3")
    assert contact.event_id.startswith(f"ContactCreated:{WS}:{contact.profile_id}:email@")
    # The shopper is new to the CRM now: the browser's profile is created as a customer, once.
    [created] = of_type(gained, CustomerCreated)
    assert created.event_id == f"CustomerCreated:{WS}:{contact.profile_id}"
    assert of_type(apply(tap, _signed_order_from("browser-3")), CustomerCreated) == []


def test_a_new_profile_with_an_email_and_a_phone_is_contact_created_for_both() -> None:
    record = customer_record(email=SHOPPER, updated_at=NOW).model_copy(update={"phone": "+16135550123"})
    published = apply(StreamTap(), [record])
    assert [type(e) for e in published][:2] == [CustomerCreated, ContactCreated]
    [contact] = of_type(published, ContactCreated)
    assert contact.channels == ("email", "sms")


def test_a_consent_statement_is_consent_changed() -> None:
    tap = StreamTap()
    granted = Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="shopify:customers/update",
                      at=NOW - timedelta(days=2))
    withdrawn = Consent(channel=Channel.EMAIL, state=ConsentState.UNSUBSCRIBED, source="shopify:customers/update",
                        at=NOW - timedelta(days=1))
    first: CustomerRecord = customer_record(email=SHOPPER, updated_at=NOW - timedelta(days=2))
    second: CustomerRecord = customer_record(email=SHOPPER, updated_at=NOW - timedelta(days=1))
    [subscribed] = of_type(apply(tap, [first.model_copy(update={"consents": (granted,)})]), ConsentChanged)
    [unsubscribed] = of_type(apply(tap, [second.model_copy(update={"consents": (withdrawn,)})]), ConsentChanged)
    assert (subscribed.channel, subscribed.old_state, subscribed.new_state) == ("email", None, "subscribed")
    assert (unsubscribed.old_state, unsubscribed.new_state, unsubscribed.source) == \
        ("subscribed", "unsubscribed", "shopify:customers/update")
    assert unsubscribed.occurred_at == withdrawn.at
    assert subscribed.event_id != unsubscribed.event_id


def test_a_browser_subscribe_is_a_request_not_a_consent_change() -> None:
    published = apply(StreamTap(), track("browser-4", {
        "type": "identify", "event_id": "i-2", "occurred_at": "2026-03-01T10:00:00Z", "email": SHOPPER,
        "consent": {"email": "subscribed"}}))
    assert of_type(published, ConsentChanged) == []


# --- determinism: a replayed record, a duplicated delivery ----------------------------------------


_DELIVERIES: list[list[CanonicalEvent]] = [
    shopify("checkouts/create", checkout_payload()),
    shopify("orders/create", placed_order_json(fulfillment_status=None)),
    shopify("orders/fulfilled", placed_order_json(fulfillment_status="fulfilled",
                                                  updated_at="2026-03-02T09:00:00-05:00")),
    track("browser-5", _view("v-6")),
    track("browser-5", {"type": "identify", "event_id": "i-3", "occurred_at": "2026-03-01T10:00:00Z",
                        "email": "jon@example.com", "consent": {"email": "unsubscribed"}}),
    [customer_record(email="jon@example.com", updated_at=NOW).model_copy(update={"consents": (Consent(
        channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="shopify:customers/update",
        at=NOW - timedelta(hours=1)),)})],
]


def _ids(deliveries: list[int]) -> set[str]:
    tap = StreamTap()
    for index in deliveries:
        apply(tap, _DELIVERIES[index])
    return {event.event_id for event in tap.published()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(_DELIVERIES) - 1), min_size=1, max_size=8))
def test_duplicated_deliveries_publish_no_new_event_ids(order: list[int]) -> None:
    """Stores re-deliver: whatever arrives twice, the bus sees the same event ids as if it arrived once."""
    once = list(dict.fromkeys(order))
    assert _ids(order) == _ids(once)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(_DELIVERIES) - 1), min_size=1, max_size=6, unique=True))
def test_a_replayed_stream_record_publishes_the_same_events(order: list[int]) -> None:
    tap = StreamTap()
    for index in order:
        apply(tap, _DELIVERIES[index])
    for record in tap.records:
        assert events_for(json.loads(json.dumps(record))) == events_for(record)


def test_pictures_and_links_stay_on_the_timeline_not_on_the_profile() -> None:
    """The profile is read and written by every event of the shopper: what only a message shows is kept on
    the activity's own timeline line."""
    tap = StreamTap()
    apply(tap, shopify("checkouts/create", checkout_payload()))
    profile_id = tap.profile_id_for_identity(WS, f"checkout#{STORE}#{checkout_payload()['token']}")
    assert profile_id is not None
    profile = tap.get_profile(WS, profile_id)
    assert profile is not None and profile.last_checkout is not None
    assert profile.last_checkout.products[0].title == checkout_payload()["line_items"][0]["title"]
    assert all(p.image_url is None and p.url is None for p in profile.last_checkout.products)
    assert IMAGE not in json.dumps(to_item(keys.profile(WS, profile_id), "profile", profile))
