"""Segment exports: every member of a segment with the profile fields asked for, as CSV or JSON Lines.

Rows are produced by a generator, a page of members (and one batch read of their profiles) at a time.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from crm.customers import profile_view
from crm.models.consent import ConsentState
from crm.models.profile import Profile
from crm.ports import ProfileRepository, SegmentStore
from crm.segments.builtin import BY_ID
from crm.segments.service import SegmentNotFound

EXPORT_PAGE = 100  # BatchGetItem's limit: one page of members, one read of their profiles
EXPORT_FIELDS = ("profile_id", "email", "phone", "first_name", "last_name", "country", "currency", "orders_count",
                 "cancelled_count", "total_spent", "total_refunded", "average_order_value", "first_order_at",
                 "last_order_at", "last_seen_at", "created_at", "tags", "store_ids")
CONSENT_CHANNELS = ("email", "sms")


def _known(store: SegmentStore, workspace_id: str, segment_id: str) -> None:
    if segment_id in BY_ID:
        return
    record = store.get(workspace_id, segment_id)
    if record is None or record.definition is None:
        raise SegmentNotFound(f"no segment {segment_id}")


@dataclass(frozen=True)
class ExportRequest:
    format: str
    fields: tuple[str, ...]
    consent: str | None


def export_request(query: Mapping[str, str]) -> ExportRequest:
    """The export's options from a query string; ValueError naming the bad parameter."""
    fmt = query.get("format", "csv")
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"format: {fmt!r} is not csv or jsonl")
    fields = tuple(f.strip() for f in query.get("fields", "email").split(",") if f.strip()) or ("email",)
    for name in fields:
        if name not in EXPORT_FIELDS:
            raise ValueError(f"fields: unknown field {name!r}; the fields are {', '.join(EXPORT_FIELDS)}")
    consent = query.get("consent") or None
    if consent is not None and consent not in CONSENT_CHANNELS:
        raise ValueError(f"consent: {consent!r} is not one of {', '.join(CONSENT_CHANNELS)}")
    return ExportRequest(fmt, fields, consent)


def _row(profile: Profile, fields: Iterable[str]) -> dict[str, Any]:
    view = profile_view(profile)
    row: dict[str, Any] = {}
    for name in fields:
        value = view.get(name)
        row[name] = ";".join(value) if isinstance(value, list) else value
    return row


def export_rows(store: SegmentStore, profiles: ProfileRepository, workspace_id: str, segment_id: str,
                request: ExportRequest) -> Iterator[dict[str, Any]]:
    """Every member's requested fields, one page of members (and one batch read of profiles) at a time."""
    _known(store, workspace_id, segment_id)
    after: str | None = None
    while True:
        page = store.members(workspace_id, segment_id, after, EXPORT_PAGE)
        found = profiles.profiles_by_id(workspace_id, [m.profile_id for m in page])
        for member in page:
            profile = found.get(member.profile_id)
            if profile is None:
                continue  # merged or erased since the last computation: the next one drops it
            if request.consent is not None:
                statement = profile.consents.get(request.consent)
                if statement is None or statement.state is not ConsentState.SUBSCRIBED:
                    continue
            yield _row(profile, request.fields)
        if len(page) < EXPORT_PAGE:
            return
        after = page[-1].profile_id


def export_lines(rows: Iterable[Mapping[str, Any]], request: ExportRequest) -> Iterator[str]:
    """CSV (a header row, RFC 4180 quoting, CRLF line ends) or JSON Lines, one line at a time."""
    if request.format == "jsonl":
        for row in rows:
            yield json.dumps(row, ensure_ascii=False) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # the excel dialect is RFC 4180: quotes doubled, CRLF
    writer.writerow(request.fields)
    for row in rows:
        writer.writerow(["" if row[name] is None else row[name] for name in request.fields])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


__all__ = ["EXPORT_FIELDS", "ExportRequest", "export_lines", "export_request", "export_rows"]
