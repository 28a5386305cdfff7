"""The composition root: the one place adapters are built (lazily, once per process)."""

from __future__ import annotations

from functools import cache

from crm.adapters.dynamodb import DynamoProfileRepository, DynamoStoreDirectory
from crm.adapters.messaging import EventBridgePublisher, FirehoseS3Archive, SqsIngestQueue
from crm.ports import EventPublisher, IngestQueue, ProfileRepository, RawArchive, StoreDirectory


@cache
def store_directory() -> StoreDirectory:
    return DynamoStoreDirectory()


@cache
def profile_repository() -> ProfileRepository:
    return DynamoProfileRepository()


@cache
def raw_archive() -> RawArchive:
    return FirehoseS3Archive()


@cache
def ingest_queue() -> IngestQueue:
    return SqsIngestQueue()


@cache
def event_publisher() -> EventPublisher:
    return EventBridgePublisher()


def reset() -> None:
    """Forget built adapters (tests and the local runtime change the environment)."""
    for factory in (store_directory, profile_repository, raw_archive, ingest_queue, event_publisher):
        factory.cache_clear()
