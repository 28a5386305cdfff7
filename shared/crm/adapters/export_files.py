"""Export files in S3: written from a stream with a multipart upload, fetched with presigned URLs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from crm.adapters.clients import client
from crm.config import settings

# S3's smallest part (every part but the last must be at least this): the memory an export holds.
MIN_PART_SIZE = 5 * 1024 * 1024


class S3ExportFiles:
    """The exports bucket. ``write`` buffers one part at a time: an export of any size holds about
    ``part_size`` bytes of it in memory. A file smaller than one part is a single PutObject instead."""

    def __init__(self, bucket: str | None = None, part_size: int = MIN_PART_SIZE, s3: Any = None) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts are at least {MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.part_size = part_size
        self._s3 = s3

    @property
    def s3(self) -> Any:
        return self._s3 or client("s3")

    def _bucket(self) -> str:
        return self.bucket or settings().require("export_bucket")

    def write(self, key: str, chunks: Iterable[bytes], content_type: str, filename: str) -> int:
        headers = {"ContentType": content_type, "ContentDisposition": f'attachment; filename="{filename}"'}
        upload = _MultipartUpload(self.s3, self._bucket(), key, headers)
        # One buffer of exactly a part, allocated once and refilled in place: every part but the last is
        # exactly ``part_size`` bytes, and a growing buffer never over-allocates past it.
        part = bytearray(self.part_size)
        filled = size = 0
        try:
            for chunk in chunks:
                size += len(chunk)
                taken = 0
                while taken < len(chunk):
                    step = min(len(chunk) - taken, self.part_size - filled)
                    part[filled:filled + step] = chunk[taken:taken + step]  # same length: no resize
                    filled += step
                    taken += step
                    if filled == self.part_size:
                        upload.send_part(part)
                        filled = 0
            del part[filled:]  # the rest, shrunk in place (botocore takes bytes or bytearray, not a memoryview)
            if upload.upload_id is None:  # smaller than one part: one request instead of three
                self.s3.put_object(Bucket=self._bucket(), Key=key, Body=part, **headers)
            else:
                if part:
                    upload.send_part(part)
                upload.complete()
        except BaseException:
            upload.abort()  # parts of an unfinished upload are stored (and billed) until aborted
            raise
        return size

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self._bucket(), Key=key)

    def download_url(self, key: str, valid_for: timedelta) -> str:
        url: str = self.s3.generate_presigned_url("get_object", Params={"Bucket": self._bucket(), "Key": key},
                                                  ExpiresIn=int(valid_for.total_seconds()))
        return url


class _MultipartUpload:
    """One multipart upload, started by its first part."""

    def __init__(self, s3: Any, bucket: str, key: str, headers: dict[str, str]) -> None:
        self.s3, self.bucket, self.key, self.headers = s3, bucket, key, headers
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def send_part(self, body: bytearray) -> None:
        if self.upload_id is None:
            self.upload_id = str(self.s3.create_multipart_upload(Bucket=self.bucket, Key=self.key,
                                                                 **self.headers)["UploadId"])
        number = len(self.parts) + 1
        answer = self.s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number,
                                     Body=body)
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def complete(self) -> None:
        self.s3.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                          MultipartUpload={"Parts": self.parts})

    def abort(self) -> None:
        if self.upload_id is None:
            return
        # The original error matters more; the bucket's lifecycle rule aborts a left-over upload later anyway.
        with contextlib.suppress(Exception):
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
