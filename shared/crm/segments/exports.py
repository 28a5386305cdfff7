"""Segment exports: every member of a segment with the profile fields asked for, as CSV or JSON Lines.

One streaming path serves both ways out. ``export_rows`` reads a page of members (and one batch read of
their profiles) at a time, ``export_lines`` turns each row into a line, ``export_chunks`` into UTF-8 bytes:
nothing holds more than a page.

- ``GET /segments/{id}/export`` answers in one body, because Chalice (and Lambda behind API Gateway)
  answers with whole bodies: ``direct_export`` refuses (ExportTooLarge, a 413) a segment of more than
  MAX_DIRECT_MEMBERS members or a body larger than MAX_DIRECT_BYTES, pointing at the asynchronous export.
- ``POST /segments/{id}/exports`` records a job and queues it (``start_export``); the exports function
  carries it out (``run_export``), streaming the same chunks into an S3 multipart upload, and
  ``export_view`` answers its status with a presigned download URL when it is done.

CSV is written for spreadsheets: a header row, RFC 4180 quoting (quotes doubled, fields holding a comma,
quote or line break quoted, CRLF line ends), UTF-8 with a byte order mark (without one, Excel reads a
CSV file in the machine's legacy code page and "Zoë" becomes "ZoÃ«"; Google Sheets, Numbers, LibreOffice,
pandas and Python's ``utf-8-sig`` all skip it). Text cells that a spreadsheet would run as a formula are
defused (``spreadsheet_safe``). JSON Lines is UTF-8 without a BOM (RFC 8259) and is not defused: it is
read by programs, not spreadsheets. The ``meta_audience`` and ``google_audience`` formats are an ad platform's
customer file instead (crm.audiences, docs/audiences.md): its own columns, hashed, without a BOM.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from crm.audiences import COLUMNS, AdPlatform, audience_row
from crm.customers import profile_view
from crm.models.consent import ConsentState
from crm.models.exports import (
    EXPORT_FIELDS,
    TEXT_FIELDS,
    ExportFormat,
    ExportJob,
    ExportMessage,
    ExportOptions,
    ExportStatus,
)
from crm.models.profile import Profile
from crm.models.segments import SegmentRecord
from crm.ports import ConcurrentUpdate, ExportFiles, ExportJobStore, ExportQueue, ProfileRepository, SegmentStore
from crm.segments.builtin import BY_ID
from crm.segments.service import SegmentNotFound

EXPORT_PAGE = 100  # BatchGetItem's limit: one page of members, one read of their profiles
CONTENT_TYPES = {ExportFormat.CSV: "text/csv; charset=utf-8", ExportFormat.JSONL: "application/x-ndjson; charset=utf-8",
                 ExportFormat.META_AUDIENCE: "text/csv; charset=utf-8",
                 ExportFormat.GOOGLE_AUDIENCE: "text/csv; charset=utf-8"}
AUDIENCES = {ExportFormat.META_AUDIENCE: AdPlatform.META, ExportFormat.GOOGLE_AUDIENCE: AdPlatform.GOOGLE}
BOM = "\ufeff"

# A direct (GET) export is one Lambda response: at most 6 MB of JSON, the body escaped inside it. The
# member limit refuses a large segment before reading anything; the byte limit (counted as the body will
# be escaped, so non-ASCII and quotes count for what they cost) catches wide rows.
MAX_DIRECT_MEMBERS = 10_000
MAX_DIRECT_BYTES = 5 * 1024 * 1024

DOWNLOAD_URL_VALID_FOR = timedelta(hours=1)
# Export files hold personal data: the exports bucket's lifecycle rule deletes them after this many days
# (template.yaml; tests/unit/test_template.py checks the two agree).
EXPORT_FILES_KEPT_DAYS = 7
# A job the worker never finished (its function timed out on every attempt, so it could not say so)
# is reported as failed once it has been quiet for longer than all its attempts can take.
GIVE_UP_AFTER = timedelta(hours=6)


class ExportInvalid(ValueError):
    """Export options that cannot be used; the message starts with the option's name."""


class ExportNotFound(LookupError):
    """No such export job for this segment in this workspace."""


class ExportTooLarge(Exception):
    """A direct export bigger than one response can carry: the asynchronous export is the way."""


# --- options -------------------------------------------------------------------------------------


def _describe(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{location}: unknown option; the options are {', '.join(ExportOptions.model_fields)}"
    return f"{location}: {first['msg'].removeprefix('Value error, ')}"


def _as_asked(options: ExportOptions) -> ExportOptions:
    if options.format in AUDIENCES and "fields" in options.model_fields_set:
        raise ExportInvalid(f"fields: the {options.format} format has the platform's own columns; leave fields out")
    return options


def options_from_query(query: Mapping[str, str]) -> ExportOptions:
    """The GET export's options from its query string (``fields`` comma-separated)."""
    try:
        return _as_asked(ExportOptions.model_validate(dict(query)))
    except ValidationError as error:
        raise ExportInvalid(_describe(error)) from None


def options_from_body(raw: bytes) -> ExportOptions:
    """POST /segments/{id}/exports's body: the same options as a JSON object (``fields`` a list); empty is
    every default."""
    if not raw.strip():
        return ExportOptions()
    try:
        data = json.loads(raw)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise ExportInvalid(f"body is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ExportInvalid("body must be a JSON object")
    try:
        return _as_asked(ExportOptions.model_validate(data))
    except ValidationError as error:
        raise ExportInvalid(_describe(error)) from None


# --- rows ----------------------------------------------------------------------------------------


def _segment(store: SegmentStore, workspace_id: str, segment_id: str) -> SegmentRecord | None:
    """The segment's record (None for a built-in never computed); SegmentNotFound if the workspace has no
    such segment."""
    record = store.get(workspace_id, segment_id)
    if segment_id not in BY_ID and (record is None or record.definition is None):
        raise SegmentNotFound(f"no segment {segment_id}")
    return record


def _prediction_columns(profile: Profile) -> dict[str, Any]:
    held = profile.prediction
    if held is None:
        return {}
    return {"prediction_status": held.status, "predicted_clv": _text(held.clv),
            "predicted_churn_probability": _text(held.churn_probability), "predicted_p_alive": _text(held.p_alive),
            "predicted_orders_365d": _text(held.expected_orders_365d),
            "next_order_expected_at": _iso(held.next_order_expected_at)}


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _row(profile: Profile, fields: Iterable[str]) -> dict[str, Any]:
    view = {**profile_view(profile), **_prediction_columns(profile)}
    row: dict[str, Any] = {}
    for name in fields:
        value = view.get(name)
        row[name] = ";".join(value) if isinstance(value, list) else value
    return row


def _consents(profile: Profile, options: ExportOptions) -> bool:
    if options.consent is None:
        return True
    statement = profile.consents.get(options.consent)
    return statement is not None and statement.state is ConsentState.SUBSCRIBED


def export_rows(store: SegmentStore, profiles: ProfileRepository, workspace_id: str, segment_id: str,
                options: ExportOptions) -> Iterator[dict[str, Any]]:
    """Every member's requested fields, by profile id, one page of members (and one batch read of profiles)
    at a time. Members merged or erased but still listed are left out."""
    _segment(store, workspace_id, segment_id)
    after: str | None = None
    platform = AUDIENCES.get(options.format)
    while True:
        page = store.members(workspace_id, segment_id, after, EXPORT_PAGE)
        found = profiles.profiles_by_id(workspace_id, [m.profile_id for m in page])
        for member in page:
            profile = found.get(member.profile_id)
            if profile is None or not _consents(profile, options):
                continue
            if platform is None:
                yield _row(profile, options.fields)
            elif (row := audience_row(profile, platform)) is not None:
                yield row
        if len(page) < EXPORT_PAGE:
            return
        after = page[-1].profile_id


# --- writing -------------------------------------------------------------------------------------

# OWASP's CSV injection advice: a cell starting with one of these is read by spreadsheets as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def spreadsheet_safe(text: str) -> str:
    """A text cell a spreadsheet shows as text: one starting like a formula gets a leading single quote.

    A cell that is wholly a number ("+442071838750", a phone in E.164, or "-5") is left alone: no formula
    can hide in digits, and the quote would corrupt it for every tool the file is imported into.
    """
    if text.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _cell(name: str, value: Any) -> Any:
    if value is None:
        return ""
    if name in TEXT_FIELDS:
        return spreadsheet_safe(str(value))
    return value  # numbers, decimal strings ("-5.00" stays a number) and ISO times: written by the CRM


def export_columns(options: ExportOptions) -> tuple[str, ...]:
    """The columns (and JSON keys) of an export: the fields asked for, or an ad platform's own."""
    platform = AUDIENCES.get(options.format)
    return COLUMNS[platform] if platform is not None else options.fields


def file_extension(export_format: ExportFormat) -> str:
    return "csv" if export_format in AUDIENCES else export_format.value


def _csv_lines(rows: Iterable[Mapping[str, Any]], fields: tuple[str, ...], for_spreadsheets: bool) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # the excel dialect is RFC 4180: quotes doubled, minimal quoting, CRLF

    def line(values: Iterable[Any]) -> str:
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    if not for_spreadsheets:
        # An ad platform's upload reads the header names exactly (a BOM would become part of the first), and
        # every cell is a hash or a country code this module wrote.
        yield line(fields)
        yield from (line(row[name] for name in fields) for row in rows)
        return
    yield BOM + line(fields)
    for row in rows:
        yield line(_cell(name, row[name]) for name in fields)


def export_lines(rows: Iterable[Mapping[str, Any]], options: ExportOptions) -> Iterator[str]:
    """CSV (a BOM and a header row first; an ad platform's customer file without the BOM) or JSON Lines, one line
    at a time."""
    if options.format is not ExportFormat.JSONL:
        yield from _csv_lines(rows, export_columns(options), for_spreadsheets=options.format is ExportFormat.CSV)
        return
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


def export_chunks(lines: Iterable[str]) -> Iterator[bytes]:
    for line in lines:
        yield line.encode("utf-8")


def download_name(segment_id: str, options: ExportOptions, export_id: str | None = None) -> str:
    """The file name a browser saves the export as (no ":", which Windows refuses in file names)."""
    stem = segment_id.replace(":", "-") + (f"-{export_id}" if export_id else "")
    if options.format in AUDIENCES:
        stem += f"-{options.format.value}"
    return f"{stem}.{file_extension(options.format)}"


# --- the direct export (GET) ---------------------------------------------------------------------


def direct_export(store: SegmentStore, profiles: ProfileRepository, workspace_id: str, segment_id: str,
                  options: ExportOptions) -> str:
    """The whole export as one body, for segments small enough to answer at once (ExportTooLarge if not)."""
    record = _segment(store, workspace_id, segment_id)
    size = record.size if record is not None else 0
    instead = f"POST /segments/{segment_id}/exports writes it to a file to download instead"
    if size > MAX_DIRECT_MEMBERS:
        raise ExportTooLarge(f"segment {segment_id} has {size} members, more than the {MAX_DIRECT_MEMBERS:,} a "
                             f"direct export answers: {instead}")
    parts: list[str] = []
    escaped = 0
    for line in export_lines(export_rows(store, profiles, workspace_id, segment_id, options), options):
        escaped += len(json.dumps(line)) - 2  # as the response's JSON will carry it
        if escaped > MAX_DIRECT_BYTES:
            raise ExportTooLarge(f"this export is larger than the {MAX_DIRECT_BYTES // (1024 * 1024)} MiB a "
                                 f"direct export answers: {instead}")
        parts.append(line)
    return "".join(parts)


# --- the asynchronous export (POST, then the exports function) ----------------------------------


def new_export_id() -> str:
    return f"exp_{secrets.token_hex(8)}"


def start_export(jobs: ExportJobStore, queue: ExportQueue, store: SegmentStore, workspace_id: str,
                 segment_id: str, options: ExportOptions, now: datetime,
                 export_id: str | None = None) -> ExportJob:
    """Record a queued job and queue it for the exports function."""
    _segment(store, workspace_id, segment_id)
    job = ExportJob(workspace_id=workspace_id, export_id=export_id or new_export_id(), segment_id=segment_id,
                    options=options, created_at=now, updated_at=now)
    jobs.save(job, None)
    try:
        queue.enqueue(ExportMessage(workspace_id=workspace_id, export_id=job.export_id))
    except Exception:
        # Nothing will ever carry it out: say so rather than leave it queued.
        jobs.save(job.model_copy(update={"status": ExportStatus.FAILED, "error": "the export could not be queued",
                                         "updated_at": now, "finished_at": now}), job.attempts)
        raise
    return job


def export_object_key(job: ExportJob) -> str:
    """Where an attempt writes its file: its own key, so a late attempt never overwrites the recorded one."""
    return f"exports/{job.workspace_id}/{job.export_id}/{job.attempts}.{file_extension(job.options.format)}"


class _Counted:
    """Rows passing through, counted."""

    def __init__(self, rows: Iterable[dict[str, Any]]) -> None:
        self.rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in self.rows:
            self.count += 1
            yield row


def _record(jobs: ExportJobStore, files: ExportFiles, outcome: ExportJob, claimed: ExportJob) -> ExportJob | None:
    try:
        jobs.save(outcome, claimed.attempts)
    except ConcurrentUpdate:
        # A later attempt claimed the job meanwhile (a duplicate delivery): its result is the one that counts.
        if outcome.object_key is not None:
            files.delete(outcome.object_key)
        return None
    return outcome


def run_export(message: ExportMessage, jobs: ExportJobStore, store: SegmentStore, profiles: ProfileRepository,
               files: ExportFiles, clock: Callable[[], datetime], last_attempt: bool) -> ExportJob | None:
    """Carry out a queued export: stream it into a file, then record it done with its rows and bytes.

    Idempotent: a job already done (or failed) is not redone, and None is answered. An error is raised for
    the queue to retry, and recorded as the job's failure on the ``last_attempt``; a segment deleted
    meanwhile fails the job at once.
    """
    job = jobs.claim(message.workspace_id, message.export_id, clock())
    if job is None:
        return None
    key = export_object_key(job)
    rows = _Counted(export_rows(store, profiles, job.workspace_id, job.segment_id, job.options))

    def failed(error: str) -> ExportJob:
        now = clock()
        return job.model_copy(update={"status": ExportStatus.FAILED, "error": error, "updated_at": now,
                                      "finished_at": now})

    try:
        size = files.write(key, export_chunks(export_lines(rows, job.options)), CONTENT_TYPES[job.options.format],
                           download_name(job.segment_id, job.options, job.export_id))
    except SegmentNotFound:
        return _record(jobs, files, failed(f"segment {job.segment_id} was deleted"), job)
    except Exception:
        if last_attempt:
            _record(jobs, files, failed(f"the export failed on every attempt ({job.attempts}); start a new one"), job)
        raise
    now = clock()
    done = job.model_copy(update={"status": ExportStatus.DONE, "rows": rows.count, "size_bytes": size,
                                  "object_key": key, "updated_at": now, "finished_at": now})
    return _record(jobs, files, done, job)


def export_job(jobs: ExportJobStore, workspace_id: str, segment_id: str, export_id: str) -> ExportJob:
    job = jobs.get(workspace_id, export_id)
    if job is None or job.segment_id != segment_id:
        raise ExportNotFound(f"no export {export_id} of segment {segment_id}")
    return job


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_view(job: ExportJob, files: ExportFiles, now: datetime) -> dict[str, Any]:
    """The job as the API answers it; a done job's file gets a fresh presigned URL while it is kept."""
    status, error = job.status, job.error
    if status in (ExportStatus.QUEUED, ExportStatus.RUNNING) and now - job.updated_at > GIVE_UP_AFTER:
        status, error = ExportStatus.FAILED, "the export did not finish (its worker timed out); start a new one"
    url = url_expires_at = file_expires_at = None
    if status is ExportStatus.DONE and job.finished_at is not None and job.object_key is not None:
        file_expires = job.finished_at + timedelta(days=EXPORT_FILES_KEPT_DAYS)
        file_expires_at = file_expires.isoformat()
        if now < file_expires:
            url = files.download_url(job.object_key, DOWNLOAD_URL_VALID_FOR)
            url_expires_at = (now + DOWNLOAD_URL_VALID_FOR).isoformat()
    return {
        "export_id": job.export_id, "segment_id": job.segment_id, "status": status.value,
        "format": job.options.format.value, "fields": list(export_columns(job.options)),
        "consent": job.options.consent.value if job.options.consent else None,
        "created_at": job.created_at.isoformat(), "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at), "rows": job.rows, "bytes": job.size_bytes, "error": error,
        "url": url, "url_expires_at": url_expires_at, "file_expires_at": file_expires_at,
    }


__all__ = ["AUDIENCES", "BOM", "CONTENT_TYPES", "DOWNLOAD_URL_VALID_FOR", "EXPORT_FIELDS", "EXPORT_FILES_KEPT_DAYS",
           "EXPORT_PAGE", "GIVE_UP_AFTER", "MAX_DIRECT_BYTES", "MAX_DIRECT_MEMBERS", "ExportInvalid", "ExportNotFound",
           "ExportOptions", "ExportTooLarge", "direct_export", "download_name", "export_chunks", "export_columns",
           "export_job", "export_lines", "export_object_key", "export_rows", "export_view", "file_extension",
           "new_export_id", "options_from_body", "options_from_query", "run_export", "spreadsheet_safe",
           "start_export"]
