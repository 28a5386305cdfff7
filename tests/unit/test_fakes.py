"""The fakes and the adapters offer exactly the methods of the ports they implement, with the same parameters.

(Behaviour is checked by the contract suite in tests/contract, against the fakes and DynamoDB alike.)
"""

from __future__ import annotations

import inspect

import pytest
from crm.adapters.export_files import S3ExportFiles
from crm.adapters.export_jobs import DynamoExportJobStore
from crm.adapters.messaging import EventBridgePublisher, FirehoseS3Archive, SqsExportQueue, SqsIngestQueue
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.segments import DynamoSegmentStore
from crm.adapters.stores import DynamoStoreDirectory
from crm.ports import (
    EventPublisher,
    ExportFiles,
    ExportJobStore,
    ExportQueue,
    IngestQueue,
    ProfileRepository,
    RawArchive,
    SegmentStore,
    StoreDirectory,
)

from tests.fakes import (
    FakeEventPublisher,
    FakeExportFiles,
    FakeExportJobStore,
    FakeExportQueue,
    FakeIngestQueue,
    FakeProfileRepository,
    FakeRawArchive,
    FakeSegmentStore,
    FakeStoreDirectory,
)

IMPLEMENTATIONS = [
    (StoreDirectory, FakeStoreDirectory), (StoreDirectory, DynamoStoreDirectory),
    (ProfileRepository, FakeProfileRepository), (ProfileRepository, DynamoProfileRepository),
    (SegmentStore, FakeSegmentStore), (SegmentStore, DynamoSegmentStore),
    (RawArchive, FakeRawArchive), (RawArchive, FirehoseS3Archive),
    (IngestQueue, FakeIngestQueue), (IngestQueue, SqsIngestQueue),
    (EventPublisher, FakeEventPublisher), (EventPublisher, EventBridgePublisher),
    (ExportJobStore, FakeExportJobStore), (ExportJobStore, DynamoExportJobStore),
    (ExportQueue, FakeExportQueue), (ExportQueue, SqsExportQueue),
    (ExportFiles, FakeExportFiles), (ExportFiles, S3ExportFiles),
]


def _methods(port: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(port).items()
            if inspect.isfunction(member) and not name.startswith("_")}


@pytest.mark.parametrize(("port", "implementation"), IMPLEMENTATIONS,
                         ids=[f"{i.__name__}" for _, i in IMPLEMENTATIONS])
def test_implementation_has_every_port_method_with_the_same_parameters(port: type, implementation: type) -> None:
    methods = _methods(port)
    assert methods
    for name, expected in methods.items():
        actual = inspect.signature(getattr(implementation, name))
        assert [(p.name, p.kind) for p in actual.parameters.values()] == [
            (p.name, p.kind) for p in expected.parameters.values()], f"{implementation.__name__}.{name}"
