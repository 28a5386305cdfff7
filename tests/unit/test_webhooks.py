from __future__ import annotations

import pytest
from crm.archive import archive_messages
from crm.connectors.base import MissingHeader, SignatureMissing, sign_base64_hmac_sha256
from crm.models.ingest import MAX_MESSAGE_BYTES
from crm.models.stores import Platform
from crm.webhooks import (
    NOT_SIGNED_BY_A_STORE,
    AcceptedWebhook,
    NotAuthenticated,
    PingAcknowledged,
    UnknownPlatform,
    accept_webhook,
    archive_key,
)

from tests.builders import (
    DOMAIN,
    NOW,
    SECRET,
    WOO_DOMAIN,
    WOO_SECRET,
    placed_order_bytes,
    shopify_headers,
    store,
    woo_fixture_bytes,
    woo_headers,
    woo_ping,
)
from tests.fakes import FakeIngestQueue, FakeRawArchive, FakeStoreDirectory


@pytest.fixture
def stores() -> FakeStoreDirectory:
    directory = FakeStoreDirectory()
    directory.register(store(), "crm_key_a")
    return directory


@pytest.fixture
def archive() -> FakeRawArchive:
    return FakeRawArchive()


@pytest.fixture
def queue() -> FakeIngestQueue:
    return FakeIngestQueue()


def _accept(headers: dict[str, str], body: bytes, stores: FakeStoreDirectory, archive: FakeRawArchive,
            queue: FakeIngestQueue, platform: str = "shopify") -> object:
    return accept_webhook(platform, headers, body, stores, archive, queue, NOW)


def test_valid_delivery_is_archived_and_enqueued(stores: FakeStoreDirectory, archive: FakeRawArchive,
                                                 queue: FakeIngestQueue) -> None:
    body = placed_order_bytes()
    accepted = accept_webhook("shopify", shopify_headers(body, delivery_id="abc/1"), body, stores, archive,
                              queue, NOW)

    assert accepted.store.store_id == "st_a"
    [envelope] = queue.envelopes
    assert envelope == accepted.envelope
    assert (envelope.platform, envelope.workspace_id, envelope.store_id) == (Platform.SHOPIFY, "ws_a", "st_a")
    assert envelope.meta.topic == "orders/create"
    assert envelope.meta.delivery_id == "abc/1"
    assert envelope.received_at == NOW
    assert envelope.body is not None
    assert envelope.body.encode() == body  # inline, byte for byte
    assert envelope.archive_key is None  # the body travels in the message; the archive is a Firehose frame
    assert archive.empty  # one request at the front door: the queue's consumer archives it
    assert archive_messages(queue.messages, archive) == 1
    [(header, archived)] = archive.deliveries()
    assert archived == body
    # A replay rebuilds exactly this message, marked as read back so the consumer does not archive it again.
    assert header.envelope(archived) == envelope.model_copy(update={"archived": True})


def test_a_body_that_cannot_travel_in_the_message_is_an_object_of_its_own(
        stores: FakeStoreDirectory, archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    body = b"\xff\xfe not UTF-8"
    _accept(shopify_headers(body, delivery_id="abc/1"), body, stores, archive, queue)
    [envelope] = queue.envelopes
    assert envelope.archive_key == archive_key("shopify", "st_a", NOW, "abc/1", body)
    assert envelope.archive_key.startswith("raw/shopify/st_a/2026/03/01/120000-abc_1-")
    assert archive.frames == []
    stored = archive.objects[envelope.archive_key]
    assert stored.body == body
    assert stored.metadata["topic"] == "orders/create"
    assert stored.metadata["delivery-id"] == "abc/1"
    assert stored.metadata["workspace-id"] == "ws_a"
    assert stored.metadata["store-id"] == "st_a"


def test_lowercase_headers_as_sent_over_http2_are_accepted(stores: FakeStoreDirectory, archive: FakeRawArchive,
                                                            queue: FakeIngestQueue) -> None:
    body = placed_order_bytes()
    headers = {name.lower(): value for name, value in shopify_headers(body).items()}
    _accept(headers, body, stores, archive, queue)
    assert len(queue.messages) == 1


def test_unknown_store_is_401_and_nothing_is_kept(stores: FakeStoreDirectory, archive: FakeRawArchive,
                                                  queue: FakeIngestQueue) -> None:
    body = placed_order_bytes()
    with pytest.raises(NotAuthenticated) as raised:
        _accept(shopify_headers(body, domain="stranger.myshopify.com"), body, stores, archive, queue)
    assert raised.value.status == 401
    assert archive.empty
    assert queue.messages == []


def test_bad_signature_is_401_and_nothing_is_kept(stores: FakeStoreDirectory, archive: FakeRawArchive,
                                                  queue: FakeIngestQueue) -> None:
    body = placed_order_bytes()
    with pytest.raises(NotAuthenticated, match="signature") as raised:
        _accept(shopify_headers(body, secret="not-the-store-secret"), body, stores, archive, queue)
    assert raised.value.status == 401
    assert archive.empty
    assert queue.messages == []


def test_tampered_body_is_401(stores: FakeStoreDirectory, archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    body = placed_order_bytes()
    headers = shopify_headers(body)
    with pytest.raises(NotAuthenticated):
        _accept(headers, body.replace(b"404.95", b"0.01"), stores, archive, queue)
    assert archive.empty
    assert queue.messages == []


def test_missing_signature_is_401_and_nothing_is_kept(stores: FakeStoreDirectory, archive: FakeRawArchive,
                                                      queue: FakeIngestQueue) -> None:
    body = placed_order_bytes()
    headers = shopify_headers(body)
    del headers["X-Shopify-Hmac-Sha256"]
    with pytest.raises(SignatureMissing) as raised:
        _accept(headers, body, stores, archive, queue)
    assert raised.value.status == 401
    assert archive.empty
    assert queue.messages == []


def test_signed_delivery_without_topic_is_400_and_nothing_is_kept(
    stores: FakeStoreDirectory, archive: FakeRawArchive, queue: FakeIngestQueue
) -> None:
    body = placed_order_bytes()
    headers = shopify_headers(body)
    del headers["X-Shopify-Topic"]
    with pytest.raises(MissingHeader) as raised:
        _accept(headers, body, stores, archive, queue)
    assert raised.value.status == 400
    assert archive.empty
    assert queue.messages == []


def test_unknown_platform_is_404(stores: FakeStoreDirectory, archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    body = b"{}"
    with pytest.raises(UnknownPlatform) as raised:
        _accept(shopify_headers(body), body, stores, archive, queue, platform="magento")
    assert raised.value.status == 404
    assert queue.messages == []


def test_either_secret_of_a_rotation_is_accepted(archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    stores = FakeStoreDirectory()
    stores.register(store(secrets=("old-secret", "new-secret")), "crm_key")
    body = placed_order_bytes()
    _accept(shopify_headers(body, secret="old-secret", delivery_id="1"), body, stores, archive, queue)
    _accept(shopify_headers(body, secret="new-secret", delivery_id="2"), body, stores, archive, queue)
    with pytest.raises(NotAuthenticated):
        _accept(shopify_headers(body, secret=SECRET, delivery_id="3"), body, stores, archive, queue)
    assert [e.meta.delivery_id for e in queue.envelopes] == ["1", "2"]


def test_a_signed_body_that_is_not_json_is_still_kept(stores: FakeStoreDirectory, archive: FakeRawArchive,
                                                      queue: FakeIngestQueue) -> None:
    body = b"\x00\x01 definitely not json \xff"
    _accept(shopify_headers(body), body, stores, archive, queue)
    [envelope] = queue.envelopes
    assert envelope.body is None  # not UTF-8: not inlined, read back from the archive
    assert envelope.archive_key is not None
    assert archive.objects[envelope.archive_key].body == body


def test_large_body_is_not_inlined_but_archived(stores: FakeStoreDirectory, archive: FakeRawArchive,
                                                queue: FakeIngestQueue) -> None:
    body = b'{"pad":"' + b"x" * MAX_MESSAGE_BYTES + b'"}'
    _accept(shopify_headers(body), body, stores, archive, queue)
    [envelope] = queue.envelopes
    assert envelope.body is None
    assert envelope.archive_key is not None
    assert archive.objects[envelope.archive_key].body == body
    assert len(queue.messages[0]) < 256 * 1024


def test_a_body_that_grows_when_escaped_is_not_inlined(stores: FakeStoreDirectory, archive: FakeRawArchive,
                                                       queue: FakeIngestQueue) -> None:
    """Under the limit as bytes, over it once JSON-escaped into the envelope: read from the archive."""
    body = b'{"pad":"' + b'\\"' * (MAX_MESSAGE_BYTES // 4) + b'"}'
    assert len(body) < MAX_MESSAGE_BYTES
    _accept(shopify_headers(body), body, stores, archive, queue)
    [envelope] = queue.envelopes
    assert envelope.body is None
    assert len(queue.messages[0]) < 256 * 1024


def test_a_small_body_travels_inline(stores: FakeStoreDirectory, archive: FakeRawArchive,
                                     queue: FakeIngestQueue) -> None:
    body = placed_order_bytes()
    _accept(shopify_headers(body), body, stores, archive, queue)
    assert queue.envelopes[0].body == body.decode()


def test_domain_header_in_another_case_finds_the_store(stores: FakeStoreDirectory, archive: FakeRawArchive,
                                                       queue: FakeIngestQueue) -> None:
    body = b"{}"
    headers = {**shopify_headers(body), "X-Shopify-Shop-Domain": DOMAIN.upper()}
    headers["X-Shopify-Hmac-Sha256"] = sign_base64_hmac_sha256(body, SECRET)
    _accept(headers, body, stores, archive, queue)
    assert queue.envelopes[0].store_id == "st_a"


def test_archive_key_is_safe_for_any_delivery_id() -> None:
    key = archive_key("shopify", "st_a", NOW, "../../etc/passwd?x=1 y" + "z" * 300, b"{}")
    assert key.startswith("raw/shopify/st_a/2026/03/01/120000-")
    delivery_part = key.removeprefix("raw/shopify/st_a/2026/03/01/120000-").rsplit("-", 1)[0]
    assert "/" not in key.removeprefix("raw/shopify/st_a/2026/03/01/")
    assert len(delivery_part) <= 128


def test_two_bodies_under_one_delivery_id_in_one_second_are_both_kept() -> None:
    """WooCommerce's delivery id is a per-second hash: the key must not let one body replace another."""
    first = archive_key("woocommerce", "st_a", NOW, "same-id", b'{"id":1}')
    second = archive_key("woocommerce", "st_a", NOW, "same-id", b'{"id":2}')
    assert first != second
    assert first == archive_key("woocommerce", "st_a", NOW, "same-id", b'{"id":1}')


# --- WooCommerce ---------------------------------------------------------------------------------


@pytest.fixture
def woo_stores() -> FakeStoreDirectory:
    """A Shopify store and a WooCommerce store, each with its own secret."""
    directory = FakeStoreDirectory()
    directory.register(store(), "crm_key_a")
    directory.register(store(workspace_id="ws_w", store_id="st_w", domain=WOO_DOMAIN, secrets=(WOO_SECRET,),
                             platform=Platform.WOOCOMMERCE), "crm_key_w")
    return directory


def test_a_signed_woocommerce_order_is_archived_and_enqueued(woo_stores: FakeStoreDirectory, archive: FakeRawArchive,
                                                             queue: FakeIngestQueue) -> None:
    body = woo_fixture_bytes("order.created")
    accepted = accept_webhook("woocommerce", woo_headers(body, delivery_id="wc-abc"), body, woo_stores, archive,
                              queue, NOW)
    assert isinstance(accepted, AcceptedWebhook)
    assert accepted.store.store_id == "st_w"
    [envelope] = queue.envelopes
    assert envelope == accepted.envelope
    assert (envelope.platform, envelope.workspace_id, envelope.store_id) == (Platform.WOOCOMMERCE, "ws_w", "st_w")
    assert (envelope.meta.topic, envelope.meta.delivery_id) == ("order.created", "wc-abc")
    assert envelope.meta.triggered_at is None
    assert envelope.body is not None and envelope.body.encode() == body
    assert archive.empty
    archive_messages(queue.messages, archive)
    [(header, archived)] = archive.deliveries()
    assert archived == body
    assert header.envelope(archived) == envelope.model_copy(update={"archived": True})


def test_a_woocommerce_delivery_with_the_wrong_secret_is_401_and_nothing_is_kept(
        woo_stores: FakeStoreDirectory, archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    body = woo_fixture_bytes("order.created")
    with pytest.raises(NotAuthenticated, match="signature") as raised:
        _accept(woo_headers(body, secret="not-the-store-secret"), body, woo_stores, archive, queue,
                platform="woocommerce")
    assert raised.value.status == 401
    with pytest.raises(NotAuthenticated) as unknown:
        _accept(woo_headers(body, source="https://stranger.example/"), body, woo_stores, archive, queue,
                platform="woocommerce")
    assert str(unknown.value) == str(raised.value) == NOT_SIGNED_BY_A_STORE
    assert archive.empty
    assert queue.messages == []


def test_the_woocommerce_creation_ping_is_acknowledged_and_nothing_is_kept(
        woo_stores: FakeStoreDirectory, archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    headers, body = woo_ping(17)
    acknowledged = _accept(headers, body, woo_stores, archive, queue, platform="woocommerce")
    assert acknowledged == PingAcknowledged(platform="woocommerce")
    assert archive.empty
    assert queue.messages == []


def test_a_ping_body_sent_to_shopify_is_still_401(woo_stores: FakeStoreDirectory, archive: FakeRawArchive,
                                                  queue: FakeIngestQueue) -> None:
    headers, body = woo_ping(17)
    with pytest.raises(SignatureMissing) as raised:
        _accept(headers, body, woo_stores, archive, queue, platform="shopify")
    assert raised.value.status == 401
    assert archive.empty
    assert queue.messages == []


def test_a_shopify_signed_body_sent_to_the_woocommerce_route_is_refused(
        woo_stores: FakeStoreDirectory, archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    body = placed_order_bytes()
    with pytest.raises(SignatureMissing) as raised:
        _accept(shopify_headers(body), body, woo_stores, archive, queue, platform="woocommerce")
    assert raised.value.status == 401
    # Even dressed up with WooCommerce headers naming the store, the Shopify secret does not verify.
    headers = {**woo_headers(body), "X-WC-Webhook-Signature": shopify_headers(body)["X-Shopify-Hmac-Sha256"]}
    with pytest.raises(NotAuthenticated):
        _accept(headers, body, woo_stores, archive, queue, platform="woocommerce")
    assert archive.empty
    assert queue.messages == []


def test_a_woocommerce_signed_body_sent_to_the_shopify_route_is_refused(
        woo_stores: FakeStoreDirectory, archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    body = woo_fixture_bytes("order.created")
    with pytest.raises(SignatureMissing):
        _accept(woo_headers(body), body, woo_stores, archive, queue, platform="shopify")
    assert queue.messages == []


def test_a_signed_ping_shaped_body_is_verified_like_any_delivery(
        woo_stores: FakeStoreDirectory, archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    _, body = woo_ping(17)
    with pytest.raises(NotAuthenticated):
        _accept(woo_headers(body, secret="forged"), body, woo_stores, archive, queue, platform="woocommerce")
    assert archive.empty
    assert queue.messages == []
