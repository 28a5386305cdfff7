"""The raw archive's record format: every delivery, byte for byte, with who sent it and when.

Deliveries that fit an SQS message travel in the ingest queue's message, and the queue's consumer (the
profiles function) archives a batch's bodies through Kinesis Data Firehose before it applies any of them
(``archive_messages``): one PutRecordBatch a batch, the batch's frames packed into as few records as fit, so
Firehose bills the bytes, not 5 KB a delivery, and batches many into one S3 object (one S3 PUT per delivery
is the most expensive part of a naive archive). The front door makes one request a delivery, the queue's
(docs/hostile-input.md says why nothing is lost). Each frame is one JSON header line, then exactly
``body_length`` raw bytes, then a newline, so the body is stored verbatim whatever it contains, and frames
packed together read back one by one (``unframe``). Larger or non-UTF-8 bodies are stored by the front door as
S3 objects of their own, with the header as object metadata, and the message points at them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import PurePath

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from crm.models.ingest import DeliveryMeta, DeliverySource, IngestEnvelope
from crm.models.stores import Platform
from crm.ports import RawArchive

FIREHOSE_PREFIX = "deliveries/"
OBJECT_PREFIX = "raw/"
# Firehose takes at most 1,000 KiB a record.
FIREHOSE_RECORD_BYTES = 1_000 * 1024


class ArchiveFormatError(ValueError):
    """An archive object that is not in the format written here."""


class ArchiveRefused(RuntimeError):
    """The archive did not take every frame of a batch: the batch is not applied, the queue delivers it again."""


class ArchivedDelivery(BaseModel):
    """A frame's header: the envelope without its body, and the body's length in bytes."""

    model_config = ConfigDict(frozen=True)

    platform: Platform
    # Frames written before /track existed have no source: they are all webhooks.
    source: DeliverySource = "webhook"
    workspace_id: str
    store_id: str
    meta: DeliveryMeta
    received_at: AwareDatetime
    body_length: int = Field(ge=0)

    def envelope(self, body: bytes, archive_key: str | None = None) -> IngestEnvelope:
        """The ingest message this delivery becomes again when replayed."""
        text = None if archive_key else body.decode("utf-8")
        return IngestEnvelope(platform=self.platform, source=self.source, workspace_id=self.workspace_id,
                              store_id=self.store_id,
                              meta=self.meta, received_at=self.received_at, archive_key=archive_key, body=text,
                              archived=True)


def header_of(envelope: IngestEnvelope, raw_body: bytes) -> ArchivedDelivery:
    return ArchivedDelivery(platform=envelope.platform, source=envelope.source, workspace_id=envelope.workspace_id,
                            store_id=envelope.store_id, meta=envelope.meta, received_at=envelope.received_at,
                            body_length=len(raw_body))


def frame(envelope: IngestEnvelope, raw_body: bytes) -> bytes:
    return header_of(envelope, raw_body).model_dump_json().encode() + b"\n" + raw_body + b"\n"


def unframe(data: bytes) -> Iterator[tuple[ArchivedDelivery, bytes]]:
    """The deliveries in one Firehose-written object, in the order they were archived."""
    position = 0
    while position < len(data):
        end_of_header = data.find(b"\n", position)
        if end_of_header < 0:
            raise ArchiveFormatError(f"truncated frame header at byte {position}")
        header = ArchivedDelivery.model_validate_json(data[position:end_of_header])
        start = end_of_header + 1
        end = start + header.body_length
        if data[end:end + 1] != b"\n":
            raise ArchiveFormatError(f"frame at byte {position} does not end where its length says")
        yield header, data[start:end]
        position = end + 1


def pack(frames: Iterable[bytes], record_limit: int = FIREHOSE_RECORD_BYTES) -> list[bytes]:
    """The frames, in order, joined into as few records as ``record_limit`` allows, none split: a record lands
    in one S3 object whole, so every frame of it reads back (a frame larger than the limit, which a queue
    message cannot carry, would be a record alone)."""
    records: list[bytes] = []
    pending: list[bytes] = []
    size = 0
    for framed in frames:
        if pending and size + len(framed) > record_limit:
            records.append(b"".join(pending))
            pending, size = [], 0
        pending.append(framed)
        size += len(framed)
    if pending:
        records.append(b"".join(pending))
    return records


def frames_to_archive(messages: Iterable[str]) -> list[bytes]:
    """The frames of a batch of ingest messages that the consumer archives: every body that travelled in its
    message. Not one already in the archive: a body the front door stored as an object of its own (the message
    names its ``archive_key``) or one read back by a replay (``archived``). A message that is not an ingest
    envelope has no header to frame it with; no sender of ours writes one, and it is dead-lettered verbatim."""
    frames: list[bytes] = []
    for message in messages:
        try:
            envelope = IngestEnvelope.model_validate_json(message)
        except ValidationError:
            continue
        if envelope.body is not None and not envelope.archived:
            frames.append(frame(envelope, envelope.body.encode()))
    return frames


def archive_messages(messages: Sequence[str], archive: RawArchive) -> int:
    """Archive a batch's bodies before any of it is applied; raises when the archive refuses, so the queue
    delivers the whole batch again (nothing is applied unarchived; what was archived is archived again, and
    a replay applies a delivery twice as it does once). Answers how many frames were archived."""
    frames = frames_to_archive(messages)
    if frames:
        archive.append(frames)
    return len(frames)


def object_metadata(envelope: IngestEnvelope) -> dict[str, str]:
    """S3 user metadata (ASCII only) from which a stand-alone object's envelope is rebuilt."""
    meta = envelope.meta
    fields = {
        "platform": envelope.platform.value,
        "source": envelope.source,
        "workspace-id": envelope.workspace_id,
        "store-id": envelope.store_id,
        "topic": meta.topic,
        "delivery-id": meta.delivery_id,
        "event-id": meta.event_id,
        "triggered-at": meta.triggered_at.isoformat() if meta.triggered_at else None,
        "api-version": meta.api_version,
        "received-at": envelope.received_at.isoformat(),
    }
    return {k: v.encode("ascii", "replace").decode() for k, v in fields.items() if v}


_SOURCES: dict[str, DeliverySource] = {"webhook": "webhook", "track": "track", "link": "link",
                                      "statement": "statement"}


def header_from_metadata(metadata: Mapping[str, str], body_length: int) -> ArchivedDelivery:
    return ArchivedDelivery(
        platform=Platform(metadata["platform"]), source=_SOURCES.get(metadata.get("source", ""), "webhook"),
        workspace_id=metadata["workspace-id"],
        store_id=metadata["store-id"], received_at=datetime.fromisoformat(metadata["received-at"]),
        meta=DeliveryMeta(topic=metadata["topic"], delivery_id=metadata["delivery-id"],
                          event_id=metadata.get("event-id"), triggered_at=metadata.get("triggered-at"),
                          api_version=metadata.get("api-version")),
        body_length=body_length,
    )


IMPORT_PREFIX = "imports/"


def import_key(store_id: str, imported_at: datetime, data: bytes, filename: str) -> str:
    """Where an imported file is kept as-is: by store, time and content hash (the same file imported twice
    at different times is two objects; its hash says it is the same file)."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    # Keys become paths when someone syncs the bucket to disk: keep the name to portable characters.
    name = re.sub(r"[^A-Za-z0-9._-]", "_", PurePath(filename).name) or "upload.csv"
    # To the microsecond: two imports of one file within a second are still two objects, two records of the import.
    stamp = imported_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{IMPORT_PREFIX}{store_id}/{stamp}-{digest}-{name}"
