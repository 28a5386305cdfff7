"""Segments as the marketer API manages them: custom definitions, the built-ins, previews, members.

Pure over ports (SegmentStore, SegmentRuns, ProfileRepository). Membership itself is decided in
:mod:`crm.segments.membership` and kept current by :mod:`crm.segments.runs`; exports are
:mod:`crm.segments.exports`.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from crm.clock import Clock, utc_now
from crm.models.segments import SegmentRecord
from crm.ports import ConcurrentUpdate, ProfileRepository, SegmentRuns, SegmentStore
from crm.segments.builtin import BUILTINS, BY_ID
from crm.segments.definition import SegmentDocument, SegmentInvalid, parse_segment, referenced_segments, segment_cycle
from crm.segments.membership import memberships_of
from crm.segments.runs import current_population, load_rules

MAX_MEMBERS_PAGE = 1000
PREVIEW_SAMPLE = 20
# A preview answers inside an API request (29 s at most): it reads at most this many profiles, for at most
# this long, a part of the workspace at a time (each part an even, random share of its profiles, so the
# parts read whole are a fair sample to estimate from).
PREVIEW_MOST_PROFILES = 20_000
PREVIEW_TIME = timedelta(seconds=10)
PREVIEW_PARTS = 32


class SegmentNotFound(LookupError):
    """No such segment in this workspace (another workspace's segment is not found either)."""


class SegmentConflict(Exception):
    """The request cannot be carried out on the segment as it is (a built-in, or changed meanwhile): 409."""


def new_segment_id() -> str:
    return f"seg_{secrets.token_hex(8)}"


# --- definitions ---------------------------------------------------------------------------------


def _document(record: SegmentRecord) -> SegmentDocument:
    assert record.definition is not None
    return parse_segment(json.loads(record.definition))


def _check_references(store: SegmentStore, workspace_id: str, segment_id: str | None,
                      document: SegmentDocument) -> None:
    """Every referenced segment exists (a built-in or one of this workspace's), and no cycle forms: a conflict
    with the workspace's other segments (409), not a malformed document (400)."""
    stored = {r.segment_id: r for r in store.custom_segments(workspace_id)}
    for ref in sorted(referenced_segments(document.definition)):
        if ref not in BY_ID and ref not in stored and ref != segment_id:
            raise SegmentConflict(f"definition: refers to segment {ref!r}, which does not exist")
    references = {sid: referenced_segments(_document(r).definition) for sid, r in stored.items()}
    own = segment_id or "(this segment)"
    references[own] = referenced_segments(document.definition)
    cycle = segment_cycle(references)
    if cycle is not None:
        raise SegmentConflict(f"definition: segments refer to each other in a cycle: {' -> '.join(cycle)}")


def _dump(document: SegmentDocument) -> str:
    return document.model_dump_json(by_alias=True, exclude_none=True)


def create(store: SegmentStore, workspace_id: str, document: SegmentDocument, now: datetime,
           segment_id: str | None = None) -> SegmentRecord:
    segment_id = segment_id or new_segment_id()
    _check_references(store, workspace_id, segment_id, document)
    record = SegmentRecord(workspace_id=workspace_id, segment_id=segment_id, name=document.name,
                           definition=_dump(document), description=document.description, created_at=now,
                           updated_at=now)
    try:
        store.put(record, None)
    except ConcurrentUpdate:
        raise SegmentConflict(f"id: a segment {segment_id} exists already") from None
    return record


def _builtin_refused(segment_id: str, action: str) -> None:
    if segment_id in BY_ID:
        raise SegmentConflict(f"{segment_id} is a built-in segment: it cannot be {action} (its settings can)")


def _custom(store: SegmentStore, workspace_id: str, segment_id: str) -> SegmentRecord:
    record = store.get(workspace_id, segment_id)
    if record is None or record.definition is None:
        raise SegmentNotFound(f"no segment {segment_id}")
    return record


def replace(store: SegmentStore, workspace_id: str, segment_id: str, document: SegmentDocument,
            now: datetime) -> SegmentRecord:
    _builtin_refused(segment_id, "replaced")
    current = _custom(store, workspace_id, segment_id)
    _check_references(store, workspace_id, segment_id, document)
    record = current.model_copy(update={"name": document.name, "definition": _dump(document),
                                        "description": document.description, "updated_at": now,
                                        "version": current.version + 1})
    try:
        store.put(record, current.version)
    except ConcurrentUpdate:
        raise SegmentConflict(f"segment {segment_id} was changed meanwhile: read it again") from None
    return record


def delete(store: SegmentStore, workspace_id: str, segment_id: str) -> None:
    _builtin_refused(segment_id, "deleted")
    _custom(store, workspace_id, segment_id)
    referrers = sorted(r.segment_id for r in store.custom_segments(workspace_id)
                       if segment_id in referenced_segments(_document(r).definition))
    if referrers:
        raise SegmentConflict(f"segment {segment_id} is used by {', '.join(referrers)}: change those first")
    store.delete(workspace_id, segment_id)


def _summary(segment_id: str, name: str, record: SegmentRecord | None, builtin: bool) -> dict[str, Any]:
    return {"id": segment_id, "name": name, "builtin": builtin, "size": record.size if record else None,
            "last_computed_at": record.last_computed_at.isoformat() if record and record.last_computed_at else None}


def list_segments(store: SegmentStore, workspace_id: str) -> list[dict[str, Any]]:
    """The built-ins first (size None until first computed), then the workspace's own by id."""
    stored = {r.segment_id: r for r in store.list_segments(workspace_id)}
    # A built-in is catalogued by its first run; before that, changes to its members may have made a record.
    builtins = {b.id: stored[b.id] if b.id in stored else store.get(workspace_id, b.id) for b in BUILTINS}
    return [*(_summary(b.id, b.name, builtins[b.id], True) for b in BUILTINS),
            *(_summary(r.segment_id, r.name, r, False) for r in stored.values() if r.definition is not None)]


def segment_view(store: SegmentStore, workspace_id: str, segment_id: str) -> dict[str, Any]:
    if segment_id in BY_ID:
        builtin = BY_ID[segment_id]
        record = store.get(workspace_id, segment_id)
        view = _summary(builtin.id, builtin.name, record, True)
        view.update(description=builtin.description, definition=None, time_relative=builtin.time_relative,
                    population_relative=builtin.population_relative)
    else:
        record = _custom(store, workspace_id, segment_id)
        view = _summary(record.segment_id, record.name, record, False)
        stored = json.loads(record.definition or "{}")
        view.update(description=record.description, definition=stored["definition"],
                    managed_by=stored.get("managed_by"),
                    created_at=record.created_at.isoformat(), updated_at=record.updated_at.isoformat(),
                    version=record.version)
    view["growth"] = [{"at": p.at.isoformat(), "size": p.size} for p in record.growth] if record else []
    return view


# --- evaluation ----------------------------------------------------------------------------------

DRAFT_ID = "draft"


def preview(store: SegmentStore, runs: SegmentRuns, workspace_id: str, document: SegmentDocument,
            now: datetime, clock: Clock = utc_now, most_profiles: int = PREVIEW_MOST_PROFILES,
            time_limit: timedelta = PREVIEW_TIME) -> dict[str, Any]:
    """A draft's size and a sample of its members, evaluated at ``now``, nothing saved.

    Bounded: at most ``most_profiles`` profiles and ``time_limit`` by ``clock``. The workspace is read one
    part at a time; when the bounds stop it early, the size is scaled up from the parts read whole, and the
    answer says so (``complete``, ``profiles_read``, ``fraction_read``)."""
    _check_references(store, workspace_id, None, document)
    rules = load_rules(store, workspace_id, now, current_population(runs, workspace_id)).with_draft(
        DRAFT_ID, document.definition)
    started = clock()
    read = matched = matched_in_whole_parts = whole_parts = 0
    sample: list[str] = []

    def bounded() -> bool:
        return read >= most_profiles or clock() - started >= time_limit

    for part in range(PREVIEW_PARTS):
        if bounded():
            break
        for profile, _ in store.profiles_with_segments(workspace_id, part, PREVIEW_PARTS):
            if bounded():
                break
            read += 1
            if DRAFT_ID in memberships_of(profile, rules):
                matched += 1
                if len(sample) < PREVIEW_SAMPLE:
                    sample.append(profile.profile_id)
        else:
            whole_parts, matched_in_whole_parts = whole_parts + 1, matched
            continue
        break
    complete = whole_parts == PREVIEW_PARTS
    size = round(matched_in_whole_parts * PREVIEW_PARTS / whole_parts) if whole_parts else matched
    return {"size": size, "sample": sorted(sample), "complete": complete, "profiles_read": read,
            "fraction_read": whole_parts / PREVIEW_PARTS}


# --- members -------------------------------------------------------------------------------------


def _cursor(token: str | None) -> str | None:
    if not token:
        return None
    try:
        value = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not value:
        raise ValueError("cursor is not one this API returned")
    return value


def _known(store: SegmentStore, workspace_id: str, segment_id: str) -> None:
    if segment_id not in BY_ID:
        _custom(store, workspace_id, segment_id)


def members_page(store: SegmentStore, profiles: ProfileRepository, workspace_id: str, segment_id: str, limit: int,
                 cursor: str | None) -> dict[str, Any]:
    if not 1 <= limit <= MAX_MEMBERS_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_MEMBERS_PAGE}")
    _known(store, workspace_id, segment_id)
    page = store.members(workspace_id, segment_id, _cursor(cursor), limit + 1)
    more, page = len(page) > limit, page[:limit]
    found = profiles.profiles_by_id(workspace_id, [m.profile_id for m in page])
    return {
        "segment_id": segment_id,
        "members": [{"profile_id": m.profile_id, "email": found[m.profile_id].email if m.profile_id in found else None,
                     "entered_at": m.entered_at.isoformat()} for m in page],
        "next_cursor": base64.urlsafe_b64encode(page[-1].profile_id.encode()).decode() if more else None,
    }


__all__ = ["SegmentConflict", "SegmentInvalid", "SegmentNotFound", "create", "delete", "list_segments",
           "members_page", "new_segment_id", "preview", "replace", "segment_view"]
