"""BigCommerce: Standard Webhooks signatures, the store named in the body, v2 orders mapped by hand-checked values."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm.archive import archive_messages
from crm.connectors import connector_for
from crm.connectors.base import PayloadNotUnderstood, SignatureMissing
from crm.connectors.bigcommerce import (
    BIGCOMMERCE,
    BigCommerceConnector,
    BodyNotUnderstood,
    map_order,
    standard_webhooks_signature,
)
from crm.ingestion import apply_envelope
from crm.models.ingest import IngestEnvelope
from crm.models.orders import version_stamp
from crm.models.stores import Platform
from crm.stores import register_store
from crm.webhooks import NOT_SIGNED_BY_A_STORE, AcceptedWebhook, NotAuthenticated, accept_webhook

from tests.builders import (
    BC_ORDER_SCOPES,
    BC_SECRET,
    BC_STORE_HASH,
    BC_TOKEN,
    NOW,
    bc_fixture_bytes,
    bc_headers,
    bc_order_json,
    bc_store,
    envelope,
)
from tests.fakes import FakeIngestQueue, FakeProfileRepository, FakeRawArchive, FakeStoreDirectory


@pytest.fixture
def stores() -> FakeStoreDirectory:
    directory = FakeStoreDirectory()
    directory.register(bc_store(), "crm_key_bc")
    return directory


def _accept(headers: dict[str, str], body: bytes, stores: FakeStoreDirectory, archive: FakeRawArchive,
            queue: FakeIngestQueue, now: datetime = NOW) -> object:
    return accept_webhook("bigcommerce", headers, body, stores, archive, queue, now)


def bc_envelope(body: bytes, scope: str = "store/order/created", store_id: str = "st_bc") -> IngestEnvelope:
    return envelope(body, topic=scope, platform=Platform.BIGCOMMERCE, store_id=store_id, delivery_id="msg_1")


def test_connector_for_names_bigcommerce() -> None:
    assert connector_for("bigcommerce") is BIGCOMMERCE
    assert BIGCOMMERCE.platform is Platform.BIGCOMMERCE


# --- signature -----------------------------------------------------------------------------------


def test_signature_is_standard_webhooks_v1_over_id_timestamp_and_raw_body() -> None:
    body = bc_fixture_bytes("store/order/created")
    headers = bc_headers(body, webhook_id="msg_1", timestamp=NOW)
    stamp = str(int(NOW.timestamp()))
    expected = base64.b64encode(hmac.new(BC_SECRET.encode(), f"msg_1.{stamp}.".encode() + body,
                                         hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert BIGCOMMERCE.is_signed_by(headers, body, BIGCOMMERCE.signature(headers), [BC_SECRET])


def test_tampered_body_does_not_verify() -> None:
    body = bc_fixture_bytes("store/order/created")
    headers = bc_headers(body)
    tampered = body.replace(b'"id": 250', b'"id": 251')
    assert tampered != body
    assert not BIGCOMMERCE.is_signed_by(headers, tampered, headers["webhook-signature"], [BC_SECRET])


def test_wrong_secret_does_not_verify() -> None:
    body = bc_fixture_bytes("store/order/created")
    headers = bc_headers(body, secret="someone-else")
    assert not BIGCOMMERCE.is_signed_by(headers, body, headers["webhook-signature"], [BC_SECRET])


def test_signed_id_and_timestamp_cannot_be_swapped() -> None:
    body = bc_fixture_bytes("store/order/created")
    headers = bc_headers(body)
    assert not BIGCOMMERCE.is_signed_by({**headers, "webhook-id": "msg_other"}, body, headers["webhook-signature"],
                                        [BC_SECRET])
    assert not BIGCOMMERCE.is_signed_by({**headers, "webhook-timestamp": "1"}, body, headers["webhook-signature"],
                                        [BC_SECRET])


def test_any_of_several_signatures_may_match() -> None:
    body = bc_fixture_bytes("store/order/created")
    stamp = str(int(NOW.timestamp()))
    good = standard_webhooks_signature("msg_2b9Qn1", stamp, body, BC_SECRET)
    bad = standard_webhooks_signature("msg_2b9Qn1", stamp, body, "old-secret")
    headers = bc_headers(body, signatures=(bad, good))
    assert BIGCOMMERCE.is_signed_by(headers, body, headers["webhook-signature"], [BC_SECRET])
    only_bad = bc_headers(body, signatures=(bad, "v1,not-base64!", "v2," + good.removeprefix("v1,")))
    assert not BIGCOMMERCE.is_signed_by(only_bad, body, only_bad["webhook-signature"], [BC_SECRET])


def test_either_secret_of_a_rotation_verifies() -> None:
    body = bc_fixture_bytes("store/order/created")
    headers = bc_headers(body, secret="new-secret")
    assert BIGCOMMERCE.is_signed_by(headers, body, headers["webhook-signature"], ["old-secret", "new-secret"])


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_standard_webhooks_header_is_signature_missing_401(missing: str) -> None:
    headers = bc_headers(b"{}")
    del headers[missing]
    with pytest.raises(SignatureMissing, match=missing) as raised:
        BIGCOMMERCE.signature(headers)
    assert raised.value.status == 401


def test_timestamp_tolerance_is_five_minutes_either_way() -> None:
    headers = bc_headers(b"{}", timestamp=NOW)
    assert BIGCOMMERCE.is_fresh(headers, NOW + timedelta(minutes=5))
    assert BIGCOMMERCE.is_fresh(headers, NOW - timedelta(minutes=5))
    assert not BIGCOMMERCE.is_fresh(headers, NOW + timedelta(minutes=5, seconds=1))
    assert not BIGCOMMERCE.is_fresh(headers, NOW - timedelta(minutes=5, seconds=1))
    assert not BIGCOMMERCE.is_fresh({**headers, "webhook-timestamp": "yesterday"}, NOW)


# --- accepting a delivery ------------------------------------------------------------------------


def test_signed_delivery_is_accepted_with_scope_as_topic_and_webhook_id_as_delivery_id(
        stores: FakeStoreDirectory) -> None:
    archive, queue = FakeRawArchive(), FakeIngestQueue()
    body = bc_fixture_bytes("store/order/statusUpdated")
    accepted = _accept(bc_headers(body, webhook_id="msg_42"), body, stores, archive, queue)

    assert isinstance(accepted, AcceptedWebhook)
    assert accepted.store.store_id == "st_bc"
    [queued] = queue.envelopes
    assert (queued.platform, queued.store_id, queued.workspace_id) == (Platform.BIGCOMMERCE, "st_bc", "ws_a")
    assert (queued.meta.topic, queued.meta.delivery_id) == ("store/order/statusUpdated", "msg_42")
    assert queued.body == body.decode()
    assert archive_messages(queue.messages, archive) == 1
    assert len(archive.deliveries()) == 1


def test_stale_delivery_is_401_and_nothing_is_kept(stores: FakeStoreDirectory) -> None:
    archive, queue = FakeRawArchive(), FakeIngestQueue()
    body = bc_fixture_bytes("store/order/created")
    headers = bc_headers(body, timestamp=NOW - timedelta(minutes=6))
    with pytest.raises(NotAuthenticated, match="timestamp") as raised:
        _accept(headers, body, stores, archive, queue)
    assert raised.value.status == 401
    assert archive.empty and queue.messages == []


def test_wrong_secret_is_401_and_nothing_is_kept(stores: FakeStoreDirectory) -> None:
    archive, queue = FakeRawArchive(), FakeIngestQueue()
    body = bc_fixture_bytes("store/order/created")
    with pytest.raises(NotAuthenticated, match="signature"):
        _accept(bc_headers(body, secret="guess"), body, stores, archive, queue)
    assert archive.empty and queue.messages == []


def test_store_is_found_from_the_producer_in_the_body(stores: FakeStoreDirectory) -> None:
    body = bc_fixture_bytes("store/order/created", store_hash="ABC123")
    assert BIGCOMMERCE.store_domain({}, body) == BC_STORE_HASH
    other = bc_fixture_bytes("store/order/created", store_hash="zzz999")
    with pytest.raises(NotAuthenticated) as raised:
        _accept(bc_headers(other), other, stores, FakeRawArchive(), FakeIngestQueue())
    assert str(raised.value) == NOT_SIGNED_BY_A_STORE  # the same 401 as a wrong signature: no domain is confirmed


@pytest.mark.parametrize(("body", "problem"), [
    (b"not json", "not a JSON object"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"scope": "store/order/created"}', "producer"),
    (b'{"scope": "store/order/created", "producer": "apps/123"}', "apps/123"),
])
def test_a_body_that_does_not_name_the_store_is_400_and_nothing_is_kept(
        stores: FakeStoreDirectory, body: bytes, problem: str) -> None:
    archive, queue = FakeRawArchive(), FakeIngestQueue()
    with pytest.raises(BodyNotUnderstood, match=problem) as raised:
        _accept(bc_headers(body), body, stores, archive, queue)
    assert raised.value.status == 400
    assert archive.empty and queue.messages == []


def test_delivery_id_falls_back_to_the_body_hash() -> None:
    body = bc_fixture_bytes("store/order/created")
    meta = BIGCOMMERCE.delivery_meta({}, body)
    assert (meta.topic, meta.delivery_id) == ("store/order/created", "dd70c0976e06b67aaf671e73f49dcb79230ebf9d")


# --- registering a store -------------------------------------------------------------------------


def test_a_bigcommerce_store_needs_an_api_token() -> None:
    directory = FakeStoreDirectory()
    with pytest.raises(ValueError, match="--api-token"):
        register_store(directory, Platform.BIGCOMMERCE, BC_STORE_HASH, BC_SECRET, NOW)
    with pytest.raises(ValueError, match="--api-token"):
        register_store(directory, Platform.BIGCOMMERCE, BC_STORE_HASH, BC_SECRET, NOW, api_token="  ")
    assert directory.stores == {}

    register_store(directory, Platform.BIGCOMMERCE, BC_STORE_HASH, BC_SECRET, NOW, api_token=BC_TOKEN)
    found = directory.store_by_domain(Platform.BIGCOMMERCE, BC_STORE_HASH)
    assert found is not None and found.api_token == BC_TOKEN


def test_other_platforms_ignore_an_api_token() -> None:
    directory = FakeStoreDirectory()
    register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "s", NOW, api_token="unused")
    found = directory.store_by_domain(Platform.SHOPIFY, "a.myshopify.com")
    assert found is not None and found.api_token is None


# --- mapping the v2 order ------------------------------------------------------------------------


def test_v2_order_maps_to_the_canonical_order() -> None:
    order = map_order(bc_order_json(), bc_envelope(bc_fixture_bytes("store/order/created")))

    assert (order.platform, order.workspace_id, order.store_id) == (Platform.BIGCOMMERCE, "ws_a", "st_bc")
    assert (order.order_id, order.order_number) == ("250", "250")
    assert order.email == "janedoe@example.com"  # " JaneDoe@Example.com " trimmed and lowercased
    assert order.phone == "+15128675309"  # "(512) 867-5309" in the US
    assert order.customer_id == "11"
    assert (order.first_name, order.last_name) == ("Jane", "Doe")
    assert order.currency == "USD"
    assert order.total_price == Decimal("60.98")  # total_inc_tax "60.9800"
    assert order.total_refunded == Decimal("10.98")  # refunded_amount "10.9800"
    assert order.net_total == Decimal("50.00")
    assert order.financial_status == "Awaiting Fulfillment"
    assert order.created_at == datetime(2019, 6, 25, 16, 15, 35, tzinfo=UTC)  # "Tue, 25 Jun 2019 16:15:35 +0000"
    assert order.updated_at == datetime(2019, 6, 26, 9, 2, 11, tzinfo=UTC)  # "Wed, 26 Jun 2019 09:02:11 +0000"
    assert order.cancelled_at is None
    assert order.version == version_stamp(datetime(2019, 6, 26, 9, 2, 11, tzinfo=UTC), None)
    assert order.line_items == ()  # v2 lists products at a sub-resource URL


def test_guest_cancelled_order_in_another_zone() -> None:
    payload: dict[str, Any] = {**bc_order_json(), "customer_id": 0, "status": "Cancelled",
                               "date_modified": "Thu, 27 Jun 2019 10:00:00 +0200", "currency_code": "eur"}
    order = map_order(payload, bc_envelope(b"{}"))
    assert order.customer_id is None
    assert order.currency == "EUR"
    assert order.updated_at == datetime(2019, 6, 27, 8, 0, 0, tzinfo=UTC)
    assert order.cancelled_at == order.updated_at


@pytest.mark.parametrize(("change", "problem"), [
    ({"date_created": "25/06/2019"}, "date_created"),
    ({"total_inc_tax": None}, "total_inc_tax"),
    ({"currency_code": None}, "currency_code"),
])
def test_an_unreadable_v2_order_is_not_understood(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(PayloadNotUnderstood, match=problem):
        map_order({**bc_order_json(), **change}, bc_envelope(b"{}"))


# --- orders(): the scope, the store, the fetch ---------------------------------------------------


class _Api:
    def __init__(self, answer: dict[str, Any] | Exception | None) -> None:
        self.answer = answer
        self.calls: list[tuple[str, int, str]] = []

    def __call__(self, store_hash: str, order_id: int, token: str) -> dict[str, Any] | None:
        self.calls.append((store_hash, order_id, token))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize("scope", BC_ORDER_SCOPES)
def test_order_scopes_fetch_the_order_with_the_store_token(stores: FakeStoreDirectory, scope: str) -> None:
    api = _Api(bc_order_json())
    body = bc_fixture_bytes(scope)
    [order] = BigCommerceConnector(fetch=api).events(bc_envelope(body, scope), body, stores)
    assert api.calls == [(BC_STORE_HASH, 250, BC_TOKEN)]
    assert order.order_id == "250"


@pytest.mark.parametrize("scope", ["store/order/archived", "store/cart/created", "store/customer/created"])
def test_other_scopes_are_not_understood(stores: FakeStoreDirectory, scope: str) -> None:
    api = _Api(bc_order_json())
    with pytest.raises(PayloadNotUnderstood, match="unsupported BigCommerce scope"):
        BigCommerceConnector(fetch=api).events(bc_envelope(b"{}", scope), b"{}", stores)
    assert api.calls == []


def test_an_order_the_api_does_not_know_is_not_understood(stores: FakeStoreDirectory) -> None:
    body = bc_fixture_bytes("store/order/created")
    with pytest.raises(PayloadNotUnderstood, match="order 250 not found in store abc123"):
        BigCommerceConnector(fetch=_Api(None)).events(bc_envelope(body), body, stores)


def test_an_api_failure_is_raised_for_the_queue_to_retry(stores: FakeStoreDirectory) -> None:
    body = bc_fixture_bytes("store/order/created")
    with pytest.raises(TimeoutError):
        BigCommerceConnector(fetch=_Api(TimeoutError("timed out"))).events(bc_envelope(body), body, stores)


def test_a_store_no_longer_registered_is_not_understood(stores: FakeStoreDirectory) -> None:
    body = bc_fixture_bytes("store/order/created")
    with pytest.raises(PayloadNotUnderstood, match="no longer registered"):
        BigCommerceConnector(fetch=_Api(bc_order_json())).events(bc_envelope(body, store_id="st_gone"), body,
                                                                  stores)
    other = bc_fixture_bytes("store/order/created", store_hash="zzz999")
    with pytest.raises(PayloadNotUnderstood, match="no longer registered"):
        BigCommerceConnector(fetch=_Api(bc_order_json())).events(bc_envelope(other), other, stores)


@pytest.mark.parametrize("data", [b'{"type": "order"}', b'{"id": "250"}', b'"250"'])
def test_a_body_without_an_order_id_is_accepted_then_not_understood(stores: FakeStoreDirectory, data: bytes) -> None:
    body = b'{"scope": "store/order/created", "producer": "stores/abc123", "data": ' + data + b"}"
    accepted = _accept(bc_headers(body), body, stores, FakeRawArchive(), FakeIngestQueue())
    assert isinstance(accepted, AcceptedWebhook)  # signed: kept, and the profiles function decides
    with pytest.raises(PayloadNotUnderstood, match=r"data\.id"):
        BigCommerceConnector(fetch=_Api(bc_order_json())).events(bc_envelope(body), body, stores)


def test_rfc2822_dates_without_a_zone_are_utc() -> None:
    payload: dict[str, Any] = {**bc_order_json(), "date_created": "Tue, 25 Jun 2019 16:15:35 -0000",
                               "date_modified": ""}
    order = map_order(payload, bc_envelope(b"{}"))
    assert order.created_at == order.updated_at == datetime(2019, 6, 25, 16, 15, 35, tzinfo=UTC)


def test_ingestion_dead_letters_an_unsupported_scope_with_its_reason(stores: FakeStoreDirectory) -> None:
    queue = FakeIngestQueue()
    body = bc_fixture_bytes("store/order/archived")
    outcome = apply_envelope(bc_envelope(body, "store/order/archived").model_dump_json(), FakeProfileRepository(),
                             FakeRawArchive(), queue, NOW, stores)
    assert outcome.dead_lettered is not None
    assert "unsupported BigCommerce scope 'store/order/archived'" in outcome.dead_lettered
    assert len(queue.dead_letters) == 1


def test_crm_store_add_refuses_bigcommerce_without_a_token_before_touching_aws(
        capsys: pytest.CaptureFixture[str]) -> None:
    from crm_local.cli import main

    code = main(["store", "add", "--platform", "bigcommerce", "--domain", BC_STORE_HASH, "--webhook-secret", "s"])

    assert code == 2
    assert "bigcommerce store needs an API token (--api-token)" in capsys.readouterr().err
