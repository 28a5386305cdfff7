"""The archive written by the ingest queue's consumer: every body of a batch framed, packed, read back whole."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from crm.archive import ArchiveRefused, archive_messages, frame, frames_to_archive, pack, unframe
from crm.ingestion import apply_envelope
from crm.models.ingest import MAX_MESSAGE_BYTES, DeliveryMeta, IngestEnvelope
from crm.models.stores import Platform
from crm.webhooks import accept_webhook
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import placed_order_bytes, shopify_headers, store
from tests.fakes import FakeIngestQueue, FakeProfileRepository, FakeRawArchive, FakeStoreDirectory

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _envelope(body: str | None, delivery_id: str = "d-1", **fields: object) -> IngestEnvelope:
    return IngestEnvelope(platform=Platform.SHOPIFY, workspace_id="ws_a", store_id="st_a",
                          meta=DeliveryMeta(topic="orders/create", delivery_id=delivery_id), received_at=NOW,
                          body=body, **fields)


_bodies = st.lists(st.binary(max_size=300).map(lambda raw: raw.decode("latin-1")), max_size=12)


@given(_bodies, st.integers(min_value=1, max_value=2_000))
def test_packed_records_hold_every_frame_whole_in_order_within_the_limit(bodies: list[str], limit: int) -> None:
    frames = [frame(_envelope(body, f"d-{n}"), body.encode()) for n, body in enumerate(bodies)]
    records = pack(frames, limit)
    assert b"".join(records) == b"".join(frames)
    read_back = [(header.meta.delivery_id, body) for record in records for header, body in unframe(record)]
    assert read_back == [(f"d-{n}", body.encode()) for n, body in enumerate(bodies)]
    for record in records:
        # Over the limit only as a frame alone (a queue message is far below Firehose's record limit).
        assert len(record) <= limit or len(list(unframe(record))) == 1
    assert len(records) <= len(frames)


def test_a_queue_batch_is_one_record() -> None:
    frames = [frame(_envelope(body := "x" * 20_000, f"d-{n}"), body.encode()) for n in range(10)]
    assert len(pack(frames)) == 1


def test_a_batch_of_the_largest_messages_is_several_records_of_whole_frames() -> None:
    body = "x" * (MAX_MESSAGE_BYTES - 1_000)
    frames = [frame(_envelope(body, f"d-{n}"), body.encode()) for n in range(10)]
    records = pack(frames)
    assert len(records) == 3  # four frames of ~249 KB fit 1,000 KiB
    assert [len(list(unframe(record))) for record in records] == [4, 4, 2]


def test_only_bodies_that_travelled_in_their_message_are_archived() -> None:
    inline = _envelope('{"id": 1}', "inline")
    messages = [
        inline.model_dump_json(),
        _envelope(None, "large", archive_key="raw/shopify/st_a/x").model_dump_json(),  # its own object already
        _envelope('{"id": 2}', "replayed", archived=True).model_dump_json(),  # read back by `crm replay`
        '{"not": "an envelope"}',
    ]
    assert frames_to_archive(messages) == [frame(inline, b'{"id": 1}')]


def test_the_consumer_archives_the_bytes_the_front_door_accepted() -> None:
    stores, archive, queue = FakeStoreDirectory(), FakeRawArchive(), FakeIngestQueue()
    stores.register(store(), "crm_key_a")
    bodies = [placed_order_bytes(id=n) for n in (1, 2)] + [b"signed, but not JSON"]
    for n, body in enumerate(bodies):
        accept_webhook("shopify", shopify_headers(body, delivery_id=f"d-{n}"), body, stores, archive, queue, NOW)
    assert archive.empty  # the front door's one request is the queue's
    assert archive_messages(queue.messages, archive) == 3
    assert [(header.meta.delivery_id, body) for header, body in archive.deliveries()] == [
        (f"d-{n}", body) for n, body in enumerate(bodies)]
    # A replay's messages are applied again but not archived a second time.
    replayed = [header.envelope(body).model_dump_json() for header, body in archive.deliveries()]
    assert archive_messages(replayed, archive) == 0


class RefusingArchive(FakeRawArchive):
    def append(self, framed_deliveries: Sequence[bytes]) -> None:
        raise ArchiveRefused("Firehose refused 1 of 1 records: ServiceUnavailableException")


def test_a_batch_the_archive_refuses_raises_before_anything_is_applied() -> None:
    """The handler archives first: the exception fails the invocation and SQS delivers the whole batch again."""
    queue = FakeIngestQueue()
    queue.enqueue(_envelope(placed_order_bytes().decode()))
    with pytest.raises(ArchiveRefused):
        archive_messages(queue.messages, RefusingArchive())
    # What a retry then does: archive, and apply once however often the batch came.
    archive, repository = FakeRawArchive(), FakeProfileRepository()
    for _ in range(2):
        archive_messages(queue.messages, archive)
        outcomes = [apply_envelope(m, repository, archive, queue, NOW, FakeStoreDirectory()) for m in queue.messages]
    assert len(archive.deliveries()) == 2  # archived on each delivery of the batch ...
    assert [o.applied for o in outcomes] == [0]  # ... applied once: the second time changes nothing
