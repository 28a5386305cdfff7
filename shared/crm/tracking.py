"""Storefront tracking: the public POST /track API, and its events as canonical activity events.

A page sends a batch of browse / cart / identify events with the store's public write key. The
request is checked at the edge (size, shape, key, origin, rate) and then treated like a webhook:
the raw body is archived and enqueued (crm.webhooks.store_delivery), and the profiles function
turns it into ActivityEvents with ``track_events``. One request of up to 20 events costs one
Firehose record and one SQS message, whatever it holds.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from crm.attribution import referral_medium
from crm.connectors.base import DeliveryRejected, PayloadNotUnderstood
from crm.contact import normalise_email, normalise_phone
from crm.models.canonical import ActivityEvent, ActivityType, ProductRef, Touch
from crm.models.consent import Channel, Consent
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.stores import Store
from crm.models.tracking import MAX_WRITE_KEY_LENGTH, TrackEvent, TrackProduct, TrackRequest
from crm.ports import IngestQueue, RawArchive, StoreDirectory
from crm.webhooks import store_delivery

MAX_BODY_BYTES = 32 * 1024
WRITE_KEY_HEADER = "x-crm-write-key"
TOPIC = "track"
ALLOWED_METHODS = "POST, OPTIONS"
ALLOWED_HEADERS = "Content-Type, X-CRM-Write-Key"
PREFLIGHT_MAX_AGE_SECONDS = 7200  # Chrome caps preflight caching at two hours
# A page sends its events within seconds; older ones are a replay or a forgery (docs/consent.md).
MAX_EVENT_AGE = timedelta(days=7)


class TrackRejected(DeliveryRejected):
    """A /track request refused with ``status``; ``headers`` go on the answer (CORS, Retry-After)."""

    def __init__(self, message: str, status: int = 400, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


# --- rate limiting -------------------------------------------------------------------------------


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class TokenBucketLimiter:
    """Requests per key (write key + client IP) as token buckets: ``rate`` per second, bursts of ``burst``.

    It lives in one function instance, so it only damps one noisy browser or script hitting a warm
    container; API Gateway's method throttling (template.yaml) is the limit across instances.
    ``clock`` is monotonic seconds; nothing here sleeps. At most ``max_keys`` buckets are kept
    (least recently used dropped first), so a flood of distinct IPs cannot grow memory without bound.
    """

    rate: float = 20.0
    burst: float = 40.0
    clock: Callable[[], float] = field(default=lambda: 0.0)
    max_keys: int = 10_000
    _buckets: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def take(self, key: str) -> float | None:
        """None when the request may go ahead; otherwise the seconds until a token is available."""
        with self._lock:
            now = self.clock()
            bucket = self._buckets.pop(key, None) or _Bucket(tokens=self.burst, updated=now)
            bucket.tokens = min(self.burst, bucket.tokens + max(0.0, now - bucket.updated) * self.rate)
            bucket.updated = now
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1.0 - 1e-9:  # float refills land a hair short of whole tokens
                bucket.tokens = max(0.0, bucket.tokens - 1.0)
                return None
            return (1.0 - bucket.tokens) / self.rate


# --- CORS ----------------------------------------------------------------------------------------


def origin_allowed(store: Store, origin: str | None) -> bool:
    """A browser's request must come from one of the store's origins.

    A request without an Origin header is not from a page's script (browsers always send one on a
    cross-origin POST) but from a server, e.g. a custom storefront's backend. It is let through: the
    check only stops other sites' pages from using the public key, and anything outside a browser
    can send whatever Origin it likes anyway.
    """
    if origin is None:
        return True
    return origin.strip().lower().rstrip("/") in store.allowed_origins


def cors_headers(origin: str | None) -> dict[str, str]:
    """Headers for an answer to ``origin`` once it is allowed: the origin itself, never ``*``, so one
    store's key cannot be used from every site; Vary keeps caches from serving it to another origin."""
    headers = {"Vary": "Origin"}
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
    return headers


def preflight_headers(origin: str | None) -> dict[str, str]:
    """The OPTIONS answer. A preflight carries no body and no header values, so it cannot name the
    store: it is answered for any well-formed origin, and the POST itself is checked against the
    store's allowed origins (a refused origin gets no Access-Control-Allow-Origin and a 403)."""
    headers = {"Vary": "Origin", "Access-Control-Allow-Methods": ALLOWED_METHODS,
               "Access-Control-Allow-Headers": ALLOWED_HEADERS,
               "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS)}
    if origin and _is_origin(origin):
        headers["Access-Control-Allow-Origin"] = origin
    return headers


def _is_origin(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("https", "http") and bool(parts.hostname) and parts.path in ("", "/")


# --- accepting a request -------------------------------------------------------------------------


@dataclass(frozen=True)
class AcceptedTrack:
    store: Store
    envelope: IngestEnvelope
    events: int
    headers: dict[str, str]


def parse_request(raw_body: bytes) -> TrackRequest:
    """The body as a TrackRequest; TrackRejected (400) naming the first bad field."""
    try:
        return TrackRequest.model_validate_json(raw_body)
    except ValidationError as error:
        raise TrackRejected(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"])
    if first["type"] == "json_invalid":
        return f"body is not JSON: {first['msg']}"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{location}: {message}{more}" if location else f"{message}{more}"


def accept_track(
    headers: Mapping[str, str],
    raw_body: bytes,
    client_ip: str,
    stores: StoreDirectory,
    archive: RawArchive,
    queue: IngestQueue,
    limiter: TokenBucketLimiter,
    now: datetime,
    max_age: timedelta = MAX_EVENT_AGE,
) -> AcceptedTrack:
    """Check, archive and enqueue one /track request; raises TrackRejected with the answer's status.

    Checked cheapest first, so refused requests cost no table read: size (413), shape and age (400),
    rate (429), write key (401), origin (403). A time in the future is not refused but taken as the
    receipt time when the events are read (``track_events``).
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    origin = lowered.get("origin")
    if len(raw_body) > MAX_BODY_BYTES:
        raise TrackRejected(f"body is larger than {MAX_BODY_BYTES} bytes; send fewer events per request", 413)
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise TrackRejected("body is not UTF-8 JSON") from None
    request = parse_request(raw_body)
    refuse_stale(request, now, max_age)
    write_key = (lowered.get(WRITE_KEY_HEADER) or request.write_key or "").strip()
    if not write_key:
        raise TrackRejected(f"write_key is required (in the body or the {WRITE_KEY_HEADER} header)", 401)
    if len(write_key) > MAX_WRITE_KEY_LENGTH:  # as the body's field is bounded, before it becomes a table key
        raise TrackRejected(f"header {WRITE_KEY_HEADER} is longer than {MAX_WRITE_KEY_LENGTH} characters")
    wait = limiter.take(f"{write_key}|{client_ip}")
    if wait is not None:
        raise TrackRejected("too many requests; slow down", 429, {"Retry-After": str(max(1, math.ceil(wait)))})
    store = stores.store_by_write_key(write_key)
    if store is None:
        raise TrackRejected("unknown write key", 401)
    if not origin_allowed(store, origin):
        raise TrackRejected(f"origin {origin} may not send events for this store", 403, {"Vary": "Origin"})
    envelope = IngestEnvelope(
        platform=store.platform, source="track", workspace_id=store.workspace_id, store_id=store.store_id,
        # The body's digest: a beacon the browser sends twice is the same delivery.
        meta=DeliveryMeta(topic=TOPIC, delivery_id=hashlib.sha256(raw_body).hexdigest()),
        received_at=now, body=text,
    )
    stored = store_delivery(envelope, raw_body, archive, queue, "track")
    return AcceptedTrack(store=store, envelope=stored, events=len(request.events), headers=cors_headers(origin))


def refuse_stale(request: TrackRequest, now: datetime, max_age: timedelta = MAX_EVENT_AGE) -> None:
    """TrackRejected (400) naming the first event that happened more than ``max_age`` before ``now``."""
    oldest = now - max_age
    for index, event in enumerate(request.events):
        if event.occurred_at < oldest:
            raise TrackRejected(f"events.{index}.occurred_at: {event.occurred_at.isoformat()} is more than "
                                f"{max_age.days} days before the request; send events as they happen")


# --- what a request means ------------------------------------------------------------------------


def track_events(envelope: IngestEnvelope, body: bytes) -> list[ActivityEvent]:
    """The request's events as canonical ActivityEvents (PayloadNotUnderstood for an unreadable body)."""
    try:
        request = TrackRequest.model_validate_json(body)
    except ValidationError as error:
        raise PayloadNotUnderstood(f"not a /track request: {_describe(error)}") from None
    return [_activity(envelope, request.anonymous_id, event) for event in request.events]


def _activity(envelope: IngestEnvelope, anonymous_id: str, event: TrackEvent) -> ActivityEvent:
    products = ((event.product,) if event.product else ()) + tuple(event.products)
    # A browser's clock (or whoever holds the public key) may say anything: never later than the receipt,
    # or a forged date far ahead would outrank every later statement.
    occurred_at = min(event.occurred_at, envelope.received_at)
    event = event.model_copy(update={"occurred_at": occurred_at})
    return ActivityEvent(
        workspace_id=envelope.workspace_id, store_id=envelope.store_id, platform=envelope.platform,
        # Namespaced by browser: client ids are only unique per browser, and never collide with a platform's.
        event_id=f"track:{anonymous_id}:{event.event_id}",
        type=ActivityType(event.type),
        occurred_at=event.occurred_at,
        anonymous_id=anonymous_id,
        email=normalise_email(event.email),
        phone=normalise_phone(event.phone),
        cart_token=event.cart_token,
        url=event.url,
        recovery_url=event.recovery_url,
        products=tuple(_product(p) for p in products),
        value=event.value,
        currency=event.currency,
        touch=touch_of(event),
        consents=_consents(event),
        from_browser=True,
    )


def _product(product: TrackProduct) -> ProductRef:
    return ProductRef(**product.model_dump())


def _consents(event: TrackEvent) -> tuple[Consent, ...]:
    if event.consent is None:
        return ()
    stated = ((Channel.EMAIL, event.consent.email), (Channel.SMS, event.consent.sms))
    return tuple(Consent(channel=channel, state=state, source=f"track:{event.type}", at=event.occurred_at)
                 for channel, state in stated if state is not None)


def touch_of(event: TrackEvent) -> Touch | None:
    """Where the visit came from: its UTM parameters; else the referring site when it is another
    site (a click within the store is not a source); else nothing (direct, or not a landing)."""
    # Classified as crm.attribution classifies an order's landing URL, so a visit and the order it led to
    # report the same channel ("google / cpc", "google.com / organic").
    utm = event.utm
    if utm is not None and utm.source is not None:
        return Touch(source=utm.source.lower(), medium=utm.medium.lower() if utm.medium else None,
                     campaign=utm.campaign, term=utm.term,
                     content=utm.content, landing_page=event.url, referrer=event.referrer, at=event.occurred_at)
    referrer_host = _host(event.referrer)
    if referrer_host and referrer_host != _host(event.url):
        return Touch(source=referrer_host, medium=referral_medium(referrer_host), landing_page=event.url,
                     referrer=event.referrer, at=event.occurred_at)
    return None


def _host(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.removeprefix("www.") if host else None


def accepted_body(accepted: AcceptedTrack) -> dict[str, Any]:
    return {"status": "accepted", "events": accepted.events}


__all__ = [
    "MAX_BODY_BYTES", "MAX_EVENT_AGE", "AcceptedTrack", "TokenBucketLimiter", "TrackRejected", "accept_track",
    "accepted_body", "cors_headers", "origin_allowed", "parse_request", "preflight_headers", "refuse_stale",
    "touch_of", "track_events",
]
