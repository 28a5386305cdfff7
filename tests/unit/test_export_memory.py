"""The export of a 100,000-member segment streams: the worker's whole path (member pages, profile reads, lines,
the S3 multipart writer) holds about one part in memory, not the file.

The table is simulated: members and profiles are made page by page as DynamoDB would answer them (holding
100,000 profiles in a fake would itself take hundreds of MB and make the measurement meaningless), and the
S3 client keeps only a digest and the sizes of what it is sent. Everything between them is the real code.
tracemalloc counts every allocation Python makes during the export. The export is JSON Lines of every field
(about 49 MiB): CSV goes through the same stream and writer, but its 20 MiB file is too close to the fixed
cost (one 5 MiB part and a page of profiles, about 6.5 MiB in all) for a ratio to mean much, and tracemalloc
makes each run take half a minute.
"""

from __future__ import annotations

import hashlib
import time
import tracemalloc
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from crm.adapters.export_files import MIN_PART_SIZE, S3ExportFiles
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.exports import EXPORT_FIELDS, ExportFormat, ExportMessage, ExportOptions, ExportStatus
from crm.models.profile import Profile
from crm.models.segments import Member, SegmentRecord
from crm.segments import exports

from tests.builders import NOW
from tests.fakes import FakeExportJobStore, FakeExportQueue

WS = "ws_big"
SEGMENT = "seg_0123456789abcdef"
MEMBERS = 100_000
NAMES = ("Ann", "Zoë", 'Bo "B", Jr', "=SUM(A1)", "Łukasz", "Line\nbreak", "山田")


def profile_id(index: int) -> str:
    return f"p{index:06d}"


class SimulatedSegmentStore:
    """One segment of MEMBERS members, paged by profile id without holding them."""

    def get(self, workspace_id: str, segment_id: str) -> SegmentRecord | None:
        if (workspace_id, segment_id) != (WS, SEGMENT):
            return None
        return SegmentRecord(workspace_id=WS, segment_id=SEGMENT, name="Everyone", definition="{}", created_at=NOW,
                             updated_at=NOW, size=MEMBERS, last_computed_at=NOW)

    def members(self, workspace_id: str, segment_id: str, after: str | None, limit: int) -> list[Member]:
        start = 0 if after is None else int(after[1:]) + 1
        return [Member(profile_id=profile_id(i), entered_at=NOW) for i in range(start, min(start + limit, MEMBERS))]


class SimulatedProfiles:
    """Profiles made on each batch read, as the DynamoDB adapter makes them from the items it gets."""

    def profiles_by_id(self, workspace_id: str, profile_ids: Sequence[str]) -> dict[str, Profile]:
        return {pid: self._profile(int(pid[1:])) for pid in profile_ids}

    @staticmethod
    def _profile(i: int) -> Profile:
        subscribed = Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="test", at=NOW)
        return Profile(
            workspace_id=WS, profile_id=profile_id(i), email=f"shopper.{i}@example.com", phone=f"+4420718{i:05d}",
            first_name=NAMES[i % len(NAMES)], last_name=f"Smith-{i}", country="GB", currency="GBP",
            orders_count=i % 7, cancelled_count=i % 2, total_spent=Decimal(i % 900) + Decimal("0.99"),
            total_refunded=Decimal("5.00") if i % 5 == 0 else Decimal("0.00"),
            first_order_at=NOW - timedelta(days=400), last_order_at=NOW - timedelta(days=i % 300),
            last_seen_at=NOW - timedelta(hours=i % 48), created_at=NOW - timedelta(days=500), updated_at=NOW,
            tags=("vip", "newsletter") if i % 3 == 0 else (), store_ids=("st_0123456789abcdef",),
            consents={"email": subscribed} if i % 2 else {})


class DigestingS3:
    """An S3 client that keeps what a test needs to know of the upload, not the bytes."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.part_sizes: list[int] = []
        self.lines = 0
        self.head = b""
        self.completed = False

    def _take(self, body: bytes | bytearray) -> None:
        self.digest.update(body)
        self.lines += body.count(b"\n")
        if not self.head:
            self.head = bytes(body[:200])

    def create_multipart_upload(self, **_: Any) -> dict[str, str]:
        return {"UploadId": "upload-1"}

    def upload_part(self, Body: bytes | bytearray, PartNumber: int, **_: Any) -> dict[str, str]:
        assert PartNumber == len(self.part_sizes) + 1
        self.part_sizes.append(len(Body))
        self._take(Body)
        return {"ETag": f'"etag-{PartNumber}"'}

    def complete_multipart_upload(self, MultipartUpload: dict[str, Any], **_: Any) -> None:
        assert [p["PartNumber"] for p in MultipartUpload["Parts"]] == list(range(1, len(self.part_sizes) + 1))
        self.completed = True

    def put_object(self, **_: Any) -> None:
        raise AssertionError("a 100,000-member export is a multipart upload")

    def abort_multipart_upload(self, **_: Any) -> None:
        raise AssertionError("nothing failed")


def test_a_100k_member_export_streams_in_bounded_memory() -> None:
    jobs, queue, s3 = FakeExportJobStore(), FakeExportQueue(), DigestingS3()
    store, profiles = SimulatedSegmentStore(), SimulatedProfiles()
    options = ExportOptions(format=ExportFormat.JSONL, fields=EXPORT_FIELDS)
    exports.start_export(jobs, queue, store, WS, SEGMENT, options, NOW)  # type: ignore[arg-type]
    [message] = queue.messages
    files = S3ExportFiles(bucket="exports-bucket", s3=s3)

    tracemalloc.start()
    started = time.perf_counter()
    job = exports.run_export(ExportMessage.model_validate(message.model_dump()), jobs, store,  # type: ignore[arg-type]
                             profiles, files, lambda: NOW, last_attempt=False)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert job is not None and job.status is ExportStatus.DONE
    assert job.rows == MEMBERS and job.size_bytes == sum(s3.part_sizes) and s3.completed
    assert s3.head.startswith(b'{"profile_id": "p000000", "email": "shopper.0@example.com"')
    assert s3.lines == MEMBERS  # one per member: a line break in a name is escaped in JSON
    assert all(size >= MIN_PART_SIZE for size in s3.part_sizes[:-1]) and s3.part_sizes[-1] > 0
    mib = 1024 * 1024
    print(f"\n100k-member JSON Lines export: {job.size_bytes / mib:.1f} MiB in {len(s3.part_sizes)} parts "
          f"({', '.join(f'{s / mib:.2f}' for s in s3.part_sizes)} MiB), peak traced memory {peak / mib:.2f} MiB "
          f"({peak / job.size_bytes:.1%} of the file), {seconds:.1f} s under tracemalloc")
    # The file is several parts long; memory holds about one part (and a page of 100 profiles).
    assert job.size_bytes > 4 * MIN_PART_SIZE
    assert peak < job.size_bytes / 4
    assert peak < 2 * MIN_PART_SIZE
