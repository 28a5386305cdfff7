"""Hostile input at every ingestion endpoint (issue 9, findings 5, 6 and 13): the webhooks and track Chalice
apps and the profiles function, in-process over the fakes (so a few hundred requests take seconds).

What must hold: nothing reaches a 5xx, signed or not; a correctly signed body is enqueued, and archived by
the profiles function before anything else; and the profiles function either applies it or parks it in the
dead-letter queue with a reason on its first attempt: a body that can never be read is not retried until the
queue gives up."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from chalice.test import Client
from crm import wiring
from crm.adapters.bigcommerce import BigCommerceApiError
from crm.connectors.bigcommerce import BIGCOMMERCE, standard_webhooks_signature
from crm.models.stores import Platform
from crm_local.event_shapes import sqs_record
from crm_local.lambdas import LambdaContext, load_handler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import (
    BC_SECRET,
    BC_STORE_HASH,
    CUSTOM_DOMAIN,
    CUSTOM_SECRET,
    ROOT,
    WOO_DOMAIN,
    WOO_SECRET,
    bc_fixture_bytes,
    bc_headers,
    bc_order_json,
    bc_store,
    compact,
    custom_headers,
    custom_order_json,
    fixture_json,
    placed_order_json,
    shopify_headers,
    store,
    woo_fixture_json,
    woo_headers,
    woo_wire,
)
from tests.fakes import FakeIngestQueue, FakeProfileRepository, FakeRawArchive, FakeStoreDirectory

pytestmark = pytest.mark.integration

WRITE_KEY = "wk_hostile_test_key"
ORIGIN = "https://shop.example"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:ingest"


def _now() -> datetime:
    return datetime.now(UTC)  # the apps read the real clock (crm.clock.utc_now)


def _app(function: str, handler: str) -> Any:
    return load_handler(ROOT / "functions" / function, handler, f"hostile_{function}")


@dataclass
class Ingestion:
    """The three functions of the ingestion path wired to one set of fakes."""

    stores: FakeStoreDirectory
    archive: FakeRawArchive
    queue: FakeIngestQueue
    repository: FakeProfileRepository
    webhooks: Client = field(default_factory=lambda: Client(_app("webhooks", "app.app")))
    track: Client = field(default_factory=lambda: Client(_app("track", "app.app")))
    bc_orders: list[str] = field(default_factory=lambda: [json.dumps(bc_order_json())])
    applied: int = 0

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client = self.track if path == "/track" else self.webhooks
        response = client.http.post(path, body=body, headers=headers)
        answer = json.loads(response.body) if response.body else {}
        return response.status_code, answer

    def archived_bodies(self) -> list[bytes]:
        return [body for _, body in self.archive.deliveries()] + [o.body for o in self.archive.objects.values()]

    def run_profiles(self) -> dict[str, Any]:
        """One invocation of the profiles function with every message queued since the last one."""
        messages, self.applied = self.queue.messages[self.applied:], len(self.queue.messages)
        records = [sqs_record({"MessageId": str(uuid.uuid4()), "ReceiptHandle": "r", "Body": message}, QUEUE_ARN,
                              "us-east-1") for message in messages]
        context = LambdaContext(function_name="profiles", timeout_ms=60_000)  # the template's timeout
        outcome: dict[str, Any] = _app("profiles", "app.handler")({"Records": records}, context)
        return outcome

    def fetch_bc_order(self, store_hash: str, order_id: int, api_token: str) -> dict[str, Any] | None:
        # As crm.adapters.bigcommerce reads the API's answer (json.loads, no hooks): hostile values get through.
        payload: dict[str, Any] = json.loads(self.bc_orders[-1])
        return payload


@pytest.fixture
def ingestion(monkeypatch: pytest.MonkeyPatch) -> Iterator[Ingestion]:
    yield from _wired(monkeypatch)


def _wired(monkeypatch: pytest.MonkeyPatch) -> Iterator[Ingestion]:
    stores = FakeStoreDirectory()
    stores.register(store(write_key=WRITE_KEY, origins=(ORIGIN,)), "crm_key_shopify")
    stores.register(store(store_id="st_woo", domain=WOO_DOMAIN, secrets=(WOO_SECRET,),
                          platform=Platform.WOOCOMMERCE), "crm_key_woo", new_workspace=False)
    stores.register(bc_store(), "crm_key_bc", new_workspace=False)
    stores.register(store(store_id="st_custom", domain=CUSTOM_DOMAIN, secrets=(CUSTOM_SECRET,),
                          platform=Platform.CUSTOM), "crm_key_custom", new_workspace=False)
    harness = Ingestion(stores, FakeRawArchive(), FakeIngestQueue(), FakeProfileRepository())
    for name, fake in (("store_directory", harness.stores), ("raw_archive", harness.archive),
                       ("ingest_queue", harness.queue), ("profile_repository", harness.repository)):
        monkeypatch.setattr(wiring, name, lambda fake=fake: fake)
    monkeypatch.setattr(BIGCOMMERCE, "_fetch", harness.fetch_bc_order)
    yield harness


# --- hostile JSON: the findings' reproductions -----------------------------------------------------

NESTED_1000 = "[" * 1000 + "]" * 1000
HUGE_INTEGER = "9" * 5000
HUGE_PRICE = "1e40"


def _with(payload: dict[str, Any], path: tuple[str | int, ...], fragment: str) -> bytes:
    """``payload`` as compact JSON with the value at ``path`` replaced by a raw JSON fragment (``json.dumps``
    cannot write a 5,000-digit integer, and a fragment may be deliberately malformed)."""
    marker = f"@@hostile-{uuid.uuid4().hex}@@"
    copy = json.loads(json.dumps(payload))
    if not path:
        return fragment.encode()
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = marker
    return json.dumps(copy, separators=(",", ":")).replace(json.dumps(marker), fragment).encode()


def _bc_thin(path: tuple[str | int, ...] = (), fragment: str = "") -> bytes:
    thin = json.loads(bc_fixture_bytes("store/order/created"))
    return _with(thin, path, fragment) if path else compact(thin)


@pytest.mark.parametrize(("body", "headers"), [
    pytest.param(_bc_thin(("data",), NESTED_1000), {}, id="json-nested-1000-deep"),
    pytest.param(_bc_thin(("data", "id"), HUGE_INTEGER), {}, id="5000-digit-integer"),
    pytest.param(_bc_thin(), {"webhook-timestamp": HUGE_INTEGER}, id="5000-digit-timestamp-header"),
])
def test_an_unsigned_hostile_bigcommerce_request_is_a_4xx_not_a_500(
        ingestion: Ingestion, body: bytes, headers: dict[str, str]) -> None:
    forged = {**bc_headers(body, secret="not-the-secret", timestamp=_now()), **headers}
    status, answer = ingestion.post("/webhooks/bigcommerce", body, forged)
    assert 400 <= status < 500, answer
    assert answer["error"]
    assert ingestion.archive.empty and ingestion.queue.messages == []


@pytest.mark.parametrize("signed", [False, True], ids=["forged", "signed-by-the-store"])
def test_a_header_longer_than_any_platform_sends_is_refused_naming_it(ingestion: Ingestion, signed: bool) -> None:
    body = _bc_thin()
    headers = {**bc_headers(body, timestamp=_now()), "webhook-timestamp": HUGE_INTEGER}
    if signed:  # a sender holding the secret can sign any timestamp: it must not reach int() either
        headers["webhook-signature"] = standard_webhooks_signature(headers["webhook-id"], HUGE_INTEGER, body, BC_SECRET)
    assert ingestion.post("/webhooks/bigcommerce", body, headers) == (
        400, {"error": "header webhook-timestamp is longer than 1024 bytes"})
    shopify = compact(placed_order_json())
    long_domain = {**shopify_headers(shopify), "X-Shopify-Shop-Domain": "a" * 2000 + ".myshopify.com"}
    assert ingestion.post("/webhooks/shopify", shopify, long_domain) == (
        400, {"error": "header X-Shopify-Shop-Domain is longer than 1024 bytes"})


def _shopify_order(path: tuple[str | int, ...], fragment: str) -> bytes:
    return _with(placed_order_json(), path, fragment)


@pytest.mark.parametrize(("body", "reason"), [
    pytest.param(_shopify_order(("note_attributes",), NESTED_1000), "nested too deeply", id="json-nested-1000-deep"),
    pytest.param(_shopify_order(("id",), HUGE_INTEGER), "more than 38 digits", id="5000-digit-integer"),
    pytest.param(_shopify_order(("total_price",), json.dumps(HUGE_PRICE)), "total_price: Value error, amount",
                 id="total-price-1e40"),
    pytest.param(_shopify_order(("line_items", 0, "price"), HUGE_PRICE), "line_items.0.price: Value error, amount",
                 id="line-price-1e40-json-number"),
])
def test_a_signed_poison_body_is_parked_at_once_with_its_reason(
        ingestion: Ingestion, body: bytes, reason: str) -> None:
    status, _ = ingestion.post("/webhooks/shopify", body, shopify_headers(body, delivery_id="poison-1"))
    assert status == 200

    assert ingestion.run_profiles() == {"batchItemFailures": []}  # not left for the queue to retry
    assert ingestion.archived_bodies() == [body]  # archived, then parked
    [parked] = ingestion.queue.dead_letters
    assert parked.reason.startswith("orders/create poison-1: ")
    assert reason in parked.reason


@pytest.mark.parametrize(("order_field", "value"), [("total_inc_tax", HUGE_PRICE), ("refunded_amount", "-1e13")])
def test_a_bigcommerce_order_out_of_bounds_is_parked_at_once(
        ingestion: Ingestion, order_field: str, value: str) -> None:
    ingestion.bc_orders.append(json.dumps({**bc_order_json(), order_field: value}))
    body = _bc_thin()
    assert ingestion.post("/webhooks/bigcommerce", body, bc_headers(body, timestamp=_now()))[0] == 200
    assert ingestion.run_profiles() == {"batchItemFailures": []}
    [parked] = ingestion.queue.dead_letters
    assert f"not a BigCommerce v2 order: {order_field}: Value error, amount" in parked.reason


def test_a_platform_api_that_is_down_is_still_retried(ingestion: Ingestion, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(store_hash: str, order_id: int, api_token: str) -> None:
        raise BigCommerceApiError("GET /v2/orders/250: HTTP 503")

    monkeypatch.setattr(BIGCOMMERCE, "_fetch", down)
    body = _bc_thin()
    assert ingestion.post("/webhooks/bigcommerce", body, bc_headers(body, timestamp=_now()))[0] == 200
    with pytest.raises(BatchProcessingError, match="HTTP 503"):  # every record failed: the queue retries the batch
        ingestion.run_profiles()
    assert ingestion.queue.dead_letters == []


# --- /events signs its timestamp; one 401 for unknown store and bad signature ---------------------


def test_a_captured_events_request_cannot_be_replayed_with_another_timestamp(ingestion: Ingestion) -> None:
    body = compact(custom_order_json())
    captured = custom_headers(body, event_id="ev-captured", timestamp=_now() - timedelta(hours=1))
    assert ingestion.post("/events", body, captured)[0] == 401  # too old as sent

    replayed = {**captured, "X-CRM-Timestamp": str(int(_now().timestamp()))}
    assert ingestion.post("/events", body, replayed)[0] == 401
    unstamped = {name: value for name, value in captured.items() if name != "X-CRM-Timestamp"}
    assert ingestion.post("/events", body, unstamped)[0] == 401
    assert ingestion.archive.empty and ingestion.queue.messages == []

    fresh = custom_headers(body, event_id="ev-fresh", timestamp=_now())
    assert ingestion.post("/events", body, fresh) == (200, {"status": "accepted", "delivery_id": "ev-fresh"})


def _stranger_and_wrong_secret() -> list[Any]:
    """Per platform: a request naming a store that is not registered, and one signed with the wrong secret."""
    shopify, woo = compact(placed_order_json()), woo_wire(woo_fixture_json("order.created"))
    bc, custom = _bc_thin(), compact(custom_order_json())
    stranger_bc = bc.replace(f"stores/{BC_STORE_HASH}".encode(), b"stores/zzz999")
    return [
        pytest.param("/webhooks/shopify", (shopify, shopify_headers(shopify, domain="stranger.myshopify.com")),
                     (shopify, shopify_headers(shopify, secret="wrong")), id="shopify"),
        pytest.param("/webhooks/woocommerce", (woo, woo_headers(woo, source="https://stranger.example/")),
                     (woo, woo_headers(woo, secret="wrong")), id="woocommerce"),
        pytest.param("/webhooks/bigcommerce", (stranger_bc, bc_headers(stranger_bc, timestamp=_now())),
                     (bc, bc_headers(bc, secret="wrong", timestamp=_now())), id="bigcommerce"),
        pytest.param("/events", (custom, custom_headers(custom, domain="stranger.example", timestamp=_now())),
                     (custom, custom_headers(custom, secret="wrong", timestamp=_now())), id="events"),
    ]


@pytest.mark.parametrize(("path", "stranger", "wrong_secret"), _stranger_and_wrong_secret())
def test_an_unknown_store_and_a_wrong_signature_get_the_same_401(
        ingestion: Ingestion, path: str, stranger: tuple[bytes, dict[str, str]],
        wrong_secret: tuple[bytes, dict[str, str]]) -> None:
    unknown = ingestion.post(path, *stranger)
    forged = ingestion.post(path, *wrong_secret)
    assert unknown == forged  # one text: a 401 does not confirm that a store domain is registered
    assert unknown[0] == 401


# --- the fuzz ------------------------------------------------------------------------------------

# Raw JSON fragments put in place of a value of a valid body: what broke ingestion before, and their edges.
FRAGMENTS = [
    NESTED_1000, "[" * 999 + "]" * 999, '{"a":' * 1200 + "1" + "}" * 1200, "[" * 50 + "]" * 50,
    HUGE_INTEGER, "9" * 4301, "9" * 39, "9" * 38, "-" + "9" * 39, "1" + "0" * 20,
    HUGE_PRICE, "-1e40", "1e12", "1000000000000.01", "1E+400", "1e-400", "1e999999999", "0." + "0" * 200 + "1",
    "9" * 39 + ".99", '"1e40"', '"NaN"', '"Infinity"', '"' + "9" * 5000 + '"', '"\\ud800"', '"' + "x" * 20_000 + '"',
    "null", "true", "[]", "{}", '""', "-0", "1.5", '"2026-13-45T99:99:99Z"', '"0001-01-01T00:00:00Z"',
    '"9999-12-31T23:59:59+14:00"', "253402300800", "-62135596801",
]
# The known-hostile fragments most of the time; generated numbers and strings for the rest.
fragments = st.integers(0, 9).flatmap(lambda roll: st.sampled_from(FRAGMENTS) if roll < 7 else st.one_of(
    st.integers(min_value=-(10**45), max_value=10**45).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.text(max_size=30).map(json.dumps),
))


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every place in a JSON document a value sits, the document itself first."""
    found = [prefix]
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found += _paths(child, (*prefix, key))
    return found


@dataclass(frozen=True)
class Endpoint:
    """A body of a valid delivery to an endpoint, and how a sender signs it (None: an unsigned request)."""

    path: str
    payload: dict[str, Any] = field(repr=False)
    sign: Callable[[bytes, str], dict[str, str]] = field(repr=False)
    forge: Callable[[bytes, str], dict[str, str]] = field(repr=False)
    keep: tuple[str, ...] = ()  # top-level fields the fuzz leaves alone (BigCommerce names its store in one)

    def paths(self) -> list[tuple[str | int, ...]]:
        return [p for p in _paths(self.payload) if not (p and p[0] in self.keep)]


# /track refuses events a week old (docs/consent.md): the body is sent as a page would, a moment ago.
_TRACKED_AT = datetime.now(UTC) - timedelta(minutes=5)


def _track_body(**extra: Any) -> dict[str, Any]:
    return {"write_key": WRITE_KEY, "anonymous_id": "anon-1", "events": [
        {"type": "product_added_to_cart", "event_id": "e-1", "occurred_at": _TRACKED_AT.isoformat(),
         "url": "https://shop.example/p?utm_source=ig", "utm": {"source": "ig"},
         "product": {"product_id": 7, "title": "Mug", "price": "12.50", "quantity": 2}, "value": "25.00",
         "currency": "usd"},
        {"type": "identify", "event_id": "e-2", "occurred_at": (_TRACKED_AT + timedelta(minutes=1)).isoformat(),
         "email": "Anon@Example.com", "consent": {"email": "unsubscribed"}},
    ], **extra}


def _shopify(topic: str, payload: dict[str, Any]) -> Endpoint:
    return Endpoint(
        "/webhooks/shopify", payload,
        lambda body, delivery: shopify_headers(body, topic=topic, delivery_id=delivery),
        lambda body, delivery: shopify_headers(body, topic=topic, delivery_id=delivery, secret="forged"))


def _woo(topic: str, payload: dict[str, Any]) -> Endpoint:
    return Endpoint(
        "/webhooks/woocommerce", payload,
        lambda body, delivery: woo_headers(body, topic=topic, delivery_id=delivery),
        lambda body, delivery: woo_headers(body, topic=topic, delivery_id=delivery, secret="forged"))


def _custom(path: str, payload: dict[str, Any]) -> Endpoint:
    return Endpoint(
        path, payload,
        lambda body, delivery: custom_headers(body, event_id=delivery, timestamp=_now()),
        lambda body, delivery: custom_headers(body, event_id=delivery, timestamp=_now(), secret="forged"))


ENDPOINTS = [
    _shopify("orders/create", placed_order_json()),
    _shopify("orders/updated", fixture_json("orders/updated")),
    _shopify("refunds/create", fixture_json("refunds/create")),
    _shopify("customers/create", fixture_json("customers/create")),
    _shopify("checkouts/create", fixture_json("checkouts/create")),
    _shopify("carts/update", fixture_json("carts/update")),
    _shopify("fulfillments/create", fixture_json("fulfillments/create")),
    _woo("order.created", woo_fixture_json("order.created")),
    _woo("customer.updated", woo_fixture_json("customer.updated")),
    _woo("order.deleted", {"id": 727}),
    Endpoint("/webhooks/bigcommerce", json.loads(_bc_thin()),
             lambda body, delivery: bc_headers(body, webhook_id=delivery, timestamp=_now()),
             lambda body, delivery: bc_headers(body, webhook_id=delivery, timestamp=_now(), secret="forged"),
             keep=("producer",)),
    _custom("/events", custom_order_json()),
    _custom("/webhooks/custom", {"events": [custom_order_json(), {
        "type": "activity", "event_id": "ev-1", "activity": "identify", "occurred_at": 1772358960,
        "anonymous_id": "anon-5b1e", "email": "ada@example.com",
        "consents": [{"channel": "email", "state": "subscribed", "at": "2026-02-01T08:00:00Z"}]}]}),
    Endpoint("/track", _track_body(), lambda body, delivery: {"Content-Type": "text/plain", "Origin": ORIGIN},
             lambda body, delivery: {"Content-Type": "text/plain", "X-CRM-Write-Key": "wk_forged_" + delivery}),
]
# The BigCommerce order the API answers with: the fuzz also puts hostile values there.
BC_ORDER_PATHS = _paths(bc_order_json())[1:]

HOSTILE_HEADER_VALUES = ["", " ", HUGE_INTEGER, "-1", "1e10", "x" * 2000, "\u00e9\u00e8" * 600, "not base64!",
                         "v1,AAAA v2,BBBB", "https://", "..", "\t"]


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[Endpoint, bytes, tuple[str | int, ...], str]:
    endpoint = draw(st.sampled_from(ENDPOINTS))
    path = draw(st.sampled_from(endpoint.paths()))
    fragment = draw(fragments)
    body = draw(st.binary(max_size=64)) if draw(st.integers(0, 9)) == 0 else _with(endpoint.payload, path, fragment)
    return endpoint, body, path, fragment


FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_fuzz_unsigned_requests_never_reach_a_5xx_and_store_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    harness = next(_wired(monkeypatch))
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(request=hostile_requests(), data=st.data())
    def unsigned(request: tuple[Endpoint, bytes, tuple[str | int, ...], str], data: st.DataObject) -> None:
        endpoint, body, _, _ = request
        headers = endpoint.forge(body, "fuzz")
        if headers and data.draw(st.booleans()):  # one header made hostile (or dropped)
            name = data.draw(st.sampled_from(sorted(headers)))
            value = data.draw(st.sampled_from([*HOSTILE_HEADER_VALUES, None]))
            headers = {k: v for k, v in headers.items() if k != name} | ({} if value is None else {name: value})
        before = (len(harness.queue.messages), harness.archived_bodies())
        status, answer = harness.post(endpoint.path, body, headers)
        assert 400 <= status < 500, (status, answer)  # ours name the problem; chalice's 415 has its own shape
        statuses[status] += 1
        assert (len(harness.queue.messages), harness.archived_bodies()) == before

    unsigned()
    print(f"unsigned fuzz: {sum(statuses.values())} requests, answers {dict(sorted(statuses.items()))}")


def test_fuzz_signed_bodies_are_archived_then_applied_or_parked_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    harness = next(_wired(monkeypatch))
    counts = {"accepted": 0, "parked": 0, "refused": 0}

    @FUZZ
    @given(request=hostile_requests(), order_path=st.sampled_from(BC_ORDER_PATHS), order_fragment=fragments)
    def signed(request: tuple[Endpoint, bytes, tuple[str | int, ...], str], order_path: tuple[str | int, ...],
               order_fragment: str) -> None:
        endpoint, body, _, _ = request
        harness.bc_orders.append(_with(bc_order_json(), order_path, order_fragment).decode())
        delivery = f"fuzz-{uuid.uuid4().hex[:12]}"
        parked_before, archived_before = len(harness.queue.dead_letters), harness.archived_bodies()
        status, answer = harness.post(endpoint.path, body, endpoint.sign(body, delivery))
        assert status < 500, (status, answer)
        if status >= 400:
            # Only what names no store (BigCommerce's body) or that /track checks at the door may be refused.
            assert endpoint.path in ("/webhooks/bigcommerce", "/track"), (status, answer)
            counts["refused"] += 1
            return
        counts["accepted"] += 1
        assert harness.run_profiles() == {"batchItemFailures": []}, "left for the queue to retry"
        archived = harness.archived_bodies()
        assert len(archived) == len(archived_before) + 1 and body in archived
        parked = harness.queue.dead_letters[parked_before:]
        assert all(dead.reason.strip() for dead in parked)
        counts["parked"] += len(parked)

    signed()
    print(f"signed fuzz: {counts}")  # the figures in docs/hostile-input.md (pytest -s)
    assert counts["accepted"] > 100 and counts["parked"] > 50, counts
