"""Storefront tracking: request checks, CORS decisions, the rate limiter and the mapping to ActivityEvents."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from crm.archive import archive_messages
from crm.attribution import touch_from_urls
from crm.connectors.base import PayloadNotUnderstood
from crm.interpret import canonical_events
from crm.models.canonical import ActivityEvent, ActivityType, ProductRef, Touch
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.stores import Platform
from crm.tracking import (
    MAX_BODY_BYTES,
    TokenBucketLimiter,
    TrackRejected,
    accept_track,
    cors_headers,
    origin_allowed,
    preflight_headers,
    track_events,
)

from tests.builders import NOW, store
from tests.fakes import FakeIngestQueue, FakeRawArchive, FakeStoreDirectory

WRITE_KEY = "wk_abcdefghijklmnopqrstuvwx"
ORIGIN = "https://shop.example"
ANON = "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"


@dataclass
class ManualClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def event(**fields: Any) -> dict[str, Any]:
    return {"type": "page_viewed", "event_id": "e-1", "occurred_at": "2026-03-01T12:00:00+01:00", **fields}


def body(*events: dict[str, Any], write_key: str | None = WRITE_KEY, **fields: Any) -> bytes:
    payload: dict[str, Any] = {"anonymous_id": ANON, "events": list(events) or [event()], **fields}
    if write_key is not None:
        payload["write_key"] = write_key
    return json.dumps(payload).encode()


@pytest.fixture
def stores() -> FakeStoreDirectory:
    directory = FakeStoreDirectory()
    directory.register(store(domain="shop.example", platform=Platform.CUSTOM, write_key=WRITE_KEY,
                             origins=(ORIGIN, "https://www.shop.example")), "crm_key_a")
    return directory


@dataclass
class Edge:
    stores: FakeStoreDirectory
    archive: FakeRawArchive
    queue: FakeIngestQueue
    limiter: TokenBucketLimiter

    def post(self, raw: bytes, headers: dict[str, str] | None = None, ip: str = "198.51.100.1") -> Any:
        return accept_track({"Origin": ORIGIN} if headers is None else headers, raw, ip, self.stores, self.archive,
                            self.queue, self.limiter, NOW)

    def refused(self, raw: bytes, headers: dict[str, str] | None = None) -> TrackRejected:
        with pytest.raises(TrackRejected) as refused:
            self.post(raw, headers)
        assert self.archive.empty and not self.queue.messages  # nothing of a refused request is kept
        return refused.value


@pytest.fixture
def edge(stores: FakeStoreDirectory) -> Edge:
    return Edge(stores, FakeRawArchive(), FakeIngestQueue(), TokenBucketLimiter(clock=ManualClock()))


# --- accepting -----------------------------------------------------------------------------------


def test_an_accepted_request_is_archived_verbatim_and_enqueued_as_a_track_delivery(edge: Edge) -> None:
    raw = body(event(), event(event_id="e-2", type="product_viewed"))
    accepted = edge.post(raw)

    assert accepted.events == 2
    assert accepted.headers == {"Access-Control-Allow-Origin": ORIGIN, "Vary": "Origin"}
    [envelope] = edge.queue.envelopes
    assert (envelope.source, envelope.platform, envelope.store_id, envelope.workspace_id) == (
        "track", Platform.CUSTOM, "st_a", "ws_a")
    assert envelope.meta.topic == "track"
    assert envelope.meta.delivery_id == hashlib.sha256(raw).hexdigest()
    assert envelope.body == raw.decode()
    assert edge.archive.empty  # the queue's consumer archives it
    archive_messages(edge.queue.messages, edge.archive)
    [(header, archived)] = edge.archive.deliveries()
    assert archived == raw
    # A replay reads it as tracking again, not as a webhook.
    assert header.envelope(archived) == envelope.model_copy(update={"archived": True})


def test_the_write_key_may_come_as_a_header(edge: Edge) -> None:
    accepted = edge.post(body(write_key=None), {"Origin": ORIGIN, "X-CRM-Write-Key": WRITE_KEY})
    assert accepted.store.store_id == "st_a"


def test_a_request_without_origin_comes_from_a_server_and_is_accepted(edge: Edge) -> None:
    accepted = edge.post(body(), {})
    assert accepted.headers == {"Vary": "Origin"}


@pytest.mark.parametrize(("raw", "status", "message"), [
    (body(write_key="wk_unknown"), 401, "unknown write key"),
    (body(write_key=None), 401, "write_key is required"),
    (b"x" * (MAX_BODY_BYTES + 1), 413, "larger than"),
    (b"{not json", 400, "body is not JSON"),
    (b'{"anonymous_id": "\xff"}', 400, "not UTF-8"),
    (body(event(type="order_placed")), 400, "events.0.type"),
    (body(event(occurred_at="2026-03-01T12:00:00")), 400, "events.0.occurred_at"),
    (body(event(), event(event_id="e-2", value="twelve")), 400, "events.1.value"),
    (body(event(currency="dollars")), 400, "events.0.currency"),
    (body(event(utm={"medium": "email"})), 400, "events.0.utm: utm.source is required"),
    (body(event(consent={"email": "yes please"})), 400, "events.0.consent.email"),
    (body(event(colour="red")), 400, "events.0.colour: Extra inputs are not permitted"),
    (body(*[event(event_id=f"e-{i}") for i in range(21)]), 400, "events: List should have at most 20 items"),
    (json.dumps({"write_key": WRITE_KEY, "anonymous_id": ANON, "events": []}).encode(), 400, "events"),
    (json.dumps({"write_key": WRITE_KEY, "events": [event()]}).encode(), 400, "anonymous_id: Field required"),
    (body(anonymous_id="has spaces"), 400, "anonymous_id"),
    # NOW is 2026-03-01T12:00Z: eight days before it is too old, whatever else the request holds.
    (body(event(), event(event_id="e-2", occurred_at="2026-02-21T11:59:59Z")), 400,
     "events.1.occurred_at: 2026-02-21T11:59:59+00:00 is more than 7 days before the request"),
])
def test_refused_requests_name_the_problem(edge: Edge, raw: bytes, status: int, message: str) -> None:
    refused = edge.refused(raw)
    assert refused.status == status
    assert message in str(refused)


def test_a_foreign_origin_is_refused_without_cors_headers(edge: Edge) -> None:
    refused = edge.refused(body(), {"Origin": "https://evil.example"})
    assert refused.status == 403
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_origin_decisions() -> None:
    shop = store(domain="shop.example", origins=(ORIGIN,))
    assert origin_allowed(shop, ORIGIN)
    assert origin_allowed(shop, "HTTPS://Shop.Example/")  # browsers send lowercase; be lenient anyway
    assert origin_allowed(shop, None)
    assert not origin_allowed(shop, "http://shop.example")  # another scheme is another origin
    assert not origin_allowed(shop, "https://shop.example.evil.example")
    assert not origin_allowed(shop, "null")  # sandboxed frames and file:// pages
    assert store(domain="default.example").allowed_origins == ("https://default.example",)


def test_cors_answers_name_the_origin_never_a_wildcard() -> None:
    assert cors_headers(ORIGIN) == {"Access-Control-Allow-Origin": ORIGIN, "Vary": "Origin"}
    preflight = preflight_headers(ORIGIN)
    assert preflight["Access-Control-Allow-Origin"] == ORIGIN
    assert preflight["Vary"] == "Origin"
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    assert {h.strip().lower() for h in preflight["Access-Control-Allow-Headers"].split(",")} == {
        "content-type", "x-crm-write-key"}
    assert int(preflight["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Origin" not in preflight_headers("not an origin")
    assert "Access-Control-Allow-Origin" not in preflight_headers(None)


# --- rate limiting -------------------------------------------------------------------------------


def test_the_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = ManualClock()
    limiter = TokenBucketLimiter(rate=20.0, burst=40.0, clock=clock)
    assert all(limiter.take("k") is None for _ in range(40))
    wait = limiter.take("k")
    assert wait == pytest.approx(0.05)
    clock.now += 0.05
    assert limiter.take("k") is None
    assert limiter.take("k") is not None
    clock.now += 10  # refills, but never beyond the burst
    assert sum(limiter.take("k") is None for _ in range(50)) == 40


def test_buckets_are_per_key_and_bounded_in_number() -> None:
    limiter = TokenBucketLimiter(rate=1.0, burst=1.0, clock=ManualClock(), max_keys=2)
    assert limiter.take("a") is None and limiter.take("a") is not None
    assert limiter.take("b") is None
    assert limiter.take("c") is None  # "a", least recently used, is forgotten
    assert limiter.take("a") is None


def test_a_client_over_its_rate_gets_429_with_retry_after(edge: Edge) -> None:
    edge.limiter = TokenBucketLimiter(rate=0.5, burst=1.0, clock=ManualClock())
    edge.post(body())
    with pytest.raises(TrackRejected) as refused:
        edge.post(body())
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "2"
    assert edge.post(body(), ip="198.51.100.2").events == 1  # another client is not held back
    assert len(edge.queue.messages) == 2


# --- mapping -------------------------------------------------------------------------------------


def envelope_for(raw: bytes) -> IngestEnvelope:
    return IngestEnvelope(platform=Platform.SHOPIFY, source="track", workspace_id="ws_a", store_id="st_a",
                          meta=DeliveryMeta(topic="track", delivery_id="d"), received_at=NOW, body=raw.decode())


def mapped(*events: dict[str, Any]) -> list[ActivityEvent]:
    raw = body(*events)
    return track_events(envelope_for(raw), raw)


AT = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)


def test_a_page_view_with_utm_parameters_is_a_touch() -> None:
    [page] = mapped(event(url="https://shop.example/?utm_source=news", referrer="https://mail.example/",
                          utm={"source": "newsletter", "medium": "email", "campaign": "spring"}))
    assert page == ActivityEvent(
        workspace_id="ws_a", store_id="st_a", platform=Platform.SHOPIFY, event_id=f"track:{ANON}:e-1",
        type=ActivityType.PAGE_VIEWED, occurred_at=AT, anonymous_id=ANON, url="https://shop.example/?utm_source=news",
        touch=Touch(source="newsletter", medium="email", campaign="spring", landing_page=page.url,
                    referrer="https://mail.example/", at=AT), from_browser=True)
    assert page.occurred_at.tzinfo is UTC


def test_without_utm_another_site_as_referrer_is_the_touch_and_the_store_itself_is_not() -> None:
    search, external, internal, direct = mapped(
        event(url="https://shop.example/a", referrer="https://www.google.com/search?q=tee"),
        event(event_id="e-4", url="https://shop.example/a", referrer="https://blog.example/post"),
        event(event_id="e-2", url="https://www.shop.example/b", referrer="https://shop.example/a"),
        event(event_id="e-3", url="https://shop.example/c"),
    )
    # A search engine is organic, as it is on an order's landing URL (crm.attribution).
    assert search.touch == Touch(source="google.com", medium="organic", landing_page="https://shop.example/a",
                                 referrer="https://www.google.com/search?q=tee", at=AT)
    assert external.touch is not None and external.touch.channel == "blog.example / referral"
    assert internal.touch is None
    assert direct.touch is None


def test_product_and_cart_events_carry_products_value_and_cart_token() -> None:
    viewed, added, cart, checkout = mapped(
        event(type="product_viewed", product={"product_id": 632910392, "variant_id": "808950810", "sku": "TEE-M",
                                              "title": "Tee", "price": "19.00"}, value="19.00", currency="usd"),
        event(event_id="e-2", type="product_added_to_cart", product={"product_id": "632910392", "quantity": 2},
              cart_token="c1"),
        event(event_id="e-3", type="cart_viewed", cart_token="c1", value=38.5, currency="EUR",
              products=[{"product_id": "1", "price": 19.25, "quantity": 2}]),
        event(event_id="e-4", type="checkout_started", cart_token="c1", value="38.50", currency="EUR"),
    )
    assert viewed.type is ActivityType.PRODUCT_VIEWED
    assert viewed.products == (ProductRef(product_id="632910392", variant_id="808950810", sku="TEE-M", title="Tee",
                                          price=Decimal("19.00")),)
    assert (viewed.value, viewed.currency) == (Decimal("19.00"), "USD")
    assert added.type is ActivityType.PRODUCT_ADDED_TO_CART
    assert added.products == (ProductRef(product_id="632910392", quantity=2),)
    assert added.cart_token == "c1"
    assert cart.type is ActivityType.CART_VIEWED
    assert cart.products == (ProductRef(product_id="1", price=Decimal("19.25"), quantity=2),)
    assert cart.value == Decimal("38.5") and isinstance(cart.value, Decimal)
    assert (checkout.type, checkout.cart_token, checkout.value) == (ActivityType.CHECKOUT_STARTED, "c1",
                                                                    Decimal("38.50"))


def test_an_event_of_seven_days_ago_is_still_accepted(edge: Edge) -> None:
    assert edge.post(body(event(occurred_at="2026-02-22T12:00:00Z"))).events == 1


def test_a_browser_time_in_the_future_is_taken_as_the_receipt_time() -> None:
    [forged, early] = mapped(event(type="identify", email="victim@example.com", occurred_at="2099-01-01T00:00:00Z",
                                   consent={"email": "subscribed"}, utm={"source": "evil"}),
                             event(event_id="e-2", occurred_at="2026-03-01T11:00:00Z"))
    assert forged.occurred_at == NOW  # the envelope's received_at
    assert forged.consents[0].at == NOW
    assert forged.touch is not None and forged.touch.at == NOW
    assert early.occurred_at == AT  # a past time is kept as sent


def test_identify_normalises_contacts_and_states_consent_from_the_tracker() -> None:
    [identify] = mapped(event(type="identify", email="  Jane.Doe@Example.COM ", phone="+1 (613) 555-0100",
                              consent={"email": "subscribed", "sms": "unsubscribed"}))
    assert identify.type is ActivityType.IDENTIFY
    assert (identify.email, identify.phone, identify.anonymous_id) == ("jane.doe@example.com", "+16135550100", ANON)
    assert identify.consents == (
        Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="track:identify", at=AT),
        Consent(channel=Channel.SMS, state=ConsentState.UNSUBSCRIBED, source="track:identify", at=AT),
    )


def test_event_ids_are_namespaced_by_browser() -> None:
    first, second = mapped(event(), event(event_id="e-2"))
    assert (first.event_id, second.event_id) == (f"track:{ANON}:e-1", f"track:{ANON}:e-2")


def test_track_deliveries_are_read_by_the_tracker_not_a_connector() -> None:
    raw = body(event())
    assert canonical_events(envelope_for(raw), raw, FakeStoreDirectory()) == track_events(envelope_for(raw), raw)


@pytest.mark.parametrize("raw", [b"", b"not json", b'{"anonymous_id": "a", "events": [{"type": "nope"}]}'])
def test_an_unreadable_body_is_not_understood(raw: bytes) -> None:
    with pytest.raises(PayloadNotUnderstood):
        track_events(envelope_for(b"{}"), raw)


def test_a_visit_and_the_order_it_led_to_report_the_same_channel() -> None:
    page, search = mapped(
        event(url="https://shop.example/?utm_source=Google&utm_medium=CPC", utm={"source": "Google", "medium": "CPC"}),
        event(event_id="e-2", url="https://shop.example/", referrer="https://www.bing.com/search?q=tee"),
    )
    ordered = touch_from_urls("/?utm_source=Google&utm_medium=CPC", None, AT)
    ordered_from_search = touch_from_urls("/", "https://www.bing.com/search?q=tee", AT)
    assert page.touch is not None and ordered is not None and ordered_from_search is not None
    assert page.touch.channel == ordered.channel == "google / cpc"
    assert search.touch is not None and search.touch.channel == ordered_from_search.channel == "bing.com / organic"
