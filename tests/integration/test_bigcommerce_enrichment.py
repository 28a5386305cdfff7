"""Enrichment over real HTTP: the profiles path reads the order from a BigCommerce-shaped API on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from crm import config
from crm.adapters.bigcommerce import BigCommerceApiError, fetch_order
from crm.ingestion import apply_envelope
from crm.models.ingest import IngestEnvelope
from crm.models.stores import Platform

from tests.bigcommerce_api import ORDER_PATH, FakeBigCommerceApi, fake_bigcommerce_api
from tests.builders import BC_STORE_HASH, BC_TOKEN, NOW, bc_fixture_bytes, bc_order_json, bc_store, envelope
from tests.fakes import FakeIngestQueue, FakeProfileRepository, FakeRawArchive, FakeStoreDirectory


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBigCommerceApi]:
    """The loopback API, and BIGCOMMERCE_API_URL pointing at it (read through crm.config)."""
    with fake_bigcommerce_api() as served:
        monkeypatch.setenv("TABLE_NAME", "unused")
        monkeypatch.setenv("BIGCOMMERCE_API_URL", served.url)
        config.reset()
        try:
            yield served
        finally:
            config.reset()


def _message(scope: str = "store/order/created", store_hash: str = BC_STORE_HASH) -> str:
    body = bc_fixture_bytes(scope, store_hash=store_hash)
    queued: IngestEnvelope = envelope(body, topic=scope, platform=Platform.BIGCOMMERCE, store_id="st_bc",
                                      delivery_id="msg_1")
    return queued.model_dump_json()


def test_fetch_order_sends_the_token_and_reads_the_order(api: FakeBigCommerceApi) -> None:
    assert fetch_order(BC_STORE_HASH, 250, BC_TOKEN) == bc_order_json()
    [(path, headers)] = api.requests
    assert path == ORDER_PATH
    assert headers["x-auth-token"] == BC_TOKEN
    assert headers["accept"] == "application/json"


def test_fetch_order_is_none_for_a_404(api: FakeBigCommerceApi) -> None:
    assert fetch_order(BC_STORE_HASH, 251, BC_TOKEN) is None
    assert fetch_order(BC_STORE_HASH, 250, "wrong-token") is None  # this server hides what a bad token can't see


def test_fetch_order_raises_on_a_server_error(api: FakeBigCommerceApi) -> None:
    api.fail_with = 503
    with pytest.raises(BigCommerceApiError, match="HTTP 503"):
        fetch_order(BC_STORE_HASH, 250, BC_TOKEN)


def test_a_thin_delivery_becomes_a_profile_through_the_api(api: FakeBigCommerceApi) -> None:
    stores, repository, queue = FakeStoreDirectory(), FakeProfileRepository(), FakeIngestQueue()
    stores.register(bc_store(), "crm_key_bc")

    outcome = apply_envelope(_message(), repository, FakeRawArchive(), queue, NOW, stores)

    assert (outcome.applied, outcome.dead_lettered) == (1, None)
    profile_id = repository.profile_id_for_identity("ws_a", "email#janedoe@example.com")
    assert profile_id is not None
    [record] = repository.orders.values()
    assert (record.order.order_id, record.order.total_price, record.order.total_refunded) == ("250", Decimal("60.98"),
                                                                                            Decimal("10.98"))
    # The same delivery again (BigCommerce retries) changes nothing.
    again = apply_envelope(_message("store/order/updated"), repository, FakeRawArchive(), queue, NOW, stores)
    assert (again.applied, again.unchanged) == (0, 1)
    assert [path for path, _ in api.requests] == [ORDER_PATH, ORDER_PATH]


def test_an_order_the_store_does_not_have_is_dead_lettered(api: FakeBigCommerceApi) -> None:
    stores, queue = FakeStoreDirectory(), FakeIngestQueue()
    stores.register(bc_store(api_token="revoked-token"), "crm_key_bc")

    outcome = apply_envelope(_message(), FakeProfileRepository(), FakeRawArchive(), queue, NOW, stores)

    assert outcome.dead_lettered is not None and "order 250 not found in store abc123" in outcome.dead_lettered
    assert [d.reason for d in queue.dead_letters] == [outcome.dead_lettered]


def test_an_api_outage_raises_so_the_queue_retries(api: FakeBigCommerceApi) -> None:
    api.fail_with = 500
    stores, queue = FakeStoreDirectory(), FakeIngestQueue()
    stores.register(bc_store(), "crm_key_bc")

    with pytest.raises(BigCommerceApiError):
        apply_envelope(_message(), FakeProfileRepository(), FakeRawArchive(), queue, NOW, stores)
    assert queue.dead_letters == []
