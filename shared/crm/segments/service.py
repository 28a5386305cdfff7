"""Segments as the marketer API manages them: custom definitions, the built-ins, computing membership, members.

Pure over ports (SegmentStore, ProfileRepository): the API handlers call these, and so can the scheduled
and incremental recomputation that comes later (``recompute`` takes the profiles to evaluate from the
repository's workspace scan, which can be fanned out by share). Exports are ``crm.segments.exports``.

Event conditions are evaluated against what the profile itself holds, not the timeline: each activity
type counts ``activity_counts[type]`` events, all placed at the latest time the profile knows for that
type (``last_browse``/``last_cart``/``last_checkout`` when they are of that type, else ``last_seen_at``),
and orders are ``orders_count`` placements at ``first_order_at`` (one) and ``last_order_at`` (the rest).
"Ever" counts are exact; a ``within_days`` window or a ``since`` anchor may count events older than the
window as recent. Reading the timeline for windows is later work.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm.models.profile import Profile
from crm.models.segments import GROWTH_KEPT, GrowthPoint, Member, SegmentRecord
from crm.ports import ConcurrentUpdate, ProfileRepository, SegmentStore
from crm.segments.builtin import BUILTINS, BY_ID, BuiltinSegment, PopulationSketch, PopulationStats, SegmentContext
from crm.segments.definition import SegmentDocument, SegmentInvalid, parse_segment, referenced_segments, segment_cycle
from crm.segments.evaluate import Subject, matches

MAX_MEMBERS_PAGE = 1000
PREVIEW_SAMPLE = 20


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
    """Every referenced segment exists (a built-in or one of this workspace's), and no cycle forms."""
    stored = {r.segment_id: r for r in store.list_segments(workspace_id) if r.definition is not None}
    for ref in sorted(referenced_segments(document.definition)):
        if ref not in BY_ID and ref not in stored and ref != segment_id:
            raise SegmentInvalid(f"definition: refers to segment {ref!r}, which does not exist")
    references = {sid: referenced_segments(_document(r).definition) for sid, r in stored.items()}
    own = segment_id or "(this segment)"
    references[own] = referenced_segments(document.definition)
    cycle = segment_cycle(references)
    if cycle is not None:
        raise SegmentInvalid(f"definition: segments refer to each other in a cycle: {' -> '.join(cycle)}")


def _dump(document: SegmentDocument) -> str:
    return document.model_dump_json(by_alias=True, exclude_none=True)


def create(store: SegmentStore, workspace_id: str, document: SegmentDocument, now: datetime,
           segment_id: str | None = None) -> SegmentRecord:
    segment_id = segment_id or new_segment_id()
    _check_references(store, workspace_id, segment_id, document)
    record = SegmentRecord(workspace_id=workspace_id, segment_id=segment_id, name=document.name,
                           definition=_dump(document), description=document.description, created_at=now,
                           updated_at=now)
    store.put(record, None)
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
    referrers = sorted(r.segment_id for r in store.list_segments(workspace_id) if r.definition is not None
                       and segment_id in referenced_segments(_document(r).definition))
    if referrers:
        raise SegmentConflict(f"segment {segment_id} is used by {', '.join(referrers)}: change those first")
    store.delete(workspace_id, segment_id)


def _summary(segment_id: str, name: str, record: SegmentRecord | None, builtin: bool) -> dict[str, Any]:
    return {"id": segment_id, "name": name, "builtin": builtin, "size": record.size if record else None,
            "last_computed_at": record.last_computed_at.isoformat() if record and record.last_computed_at else None}


def list_segments(store: SegmentStore, workspace_id: str) -> list[dict[str, Any]]:
    """The built-ins first (size None until first computed), then the workspace's own by id."""
    stored = {r.segment_id: r for r in store.list_segments(workspace_id)}
    return [*(_summary(b.id, b.name, stored.get(b.id), True) for b in BUILTINS),
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
        view.update(description=record.description, definition=json.loads(record.definition or "{}")["definition"],
                    created_at=record.created_at.isoformat(), updated_at=record.updated_at.isoformat(),
                    version=record.version)
    view["growth"] = [{"at": p.at.isoformat(), "size": p.size} for p in record.growth] if record else []
    return view


# --- evaluation ----------------------------------------------------------------------------------

_LAST_ACTIVITY = ("last_browse", "last_cart", "last_checkout")


def subject_of(profile: Profile, segments: frozenset[str] = frozenset()) -> Subject:
    """The profile as a Subject; its events reconstructed from counts (see the module's note)."""
    known = {a.type: a.at for a in (getattr(profile, name) for name in _LAST_ACTIVITY) if a is not None}
    fallback = profile.last_seen_at or profile.updated_at
    events = tuple((kind, known.get(kind, fallback)) for kind, count in sorted(profile.activity_counts.items())
                   for _ in range(max(count, 0)))
    orders: tuple[datetime, ...] = ()
    if profile.orders_count and profile.first_order_at and profile.last_order_at:
        orders = (profile.first_order_at, *([profile.last_order_at] * (profile.orders_count - 1)))
    return Subject(profile=profile, events=events, orders=orders, segments=segments)


@dataclass(frozen=True)
class _Rule:
    """How membership is decided: a built-in's code, or a definition with the memberships it refers to."""

    builtin: BuiltinSegment | None
    document: SegmentDocument | None
    referenced: Mapping[str, frozenset[str]]  # segment id -> member profile ids

    def admits(self, profile: Profile, context: SegmentContext) -> bool:
        if self.builtin is not None:
            return self.builtin.contains(profile, context)
        assert self.document is not None
        segments = frozenset(sid for sid, ids in self.referenced.items() if profile.profile_id in ids)
        return matches(self.document.definition, subject_of(profile, segments), context.now)


def member_ids(store: SegmentStore, workspace_id: str, segment_id: str) -> Iterator[str]:
    after: str | None = None
    while True:
        page = store.members(workspace_id, segment_id, after, MAX_MEMBERS_PAGE)
        yield from (m.profile_id for m in page)
        if len(page) < MAX_MEMBERS_PAGE:
            return
        after = page[-1].profile_id


def _rule(store: SegmentStore, workspace_id: str, builtin: BuiltinSegment | None,
          document: SegmentDocument | None) -> _Rule:
    # Referenced memberships are read whole into sets of ids: fine for the sizes a store has today; the
    # scheduler will want to evaluate in dependency order with a streamed join instead.
    refs = referenced_segments(document.definition) if document is not None else frozenset()
    return _Rule(builtin, document, {sid: frozenset(member_ids(store, workspace_id, sid)) for sid in sorted(refs)})


def _context(profiles: ProfileRepository, workspace_id: str, builtin: BuiltinSegment | None,
             now: datetime, shares: Sequence[int], total_shares: int) -> SegmentContext:
    if builtin is None or not builtin.population_relative:
        return SegmentContext(now=now)
    # A first pass summarises the buyers (VIP threshold, RFM quintiles); default settings until the
    # workspace can store its own.
    sketch = PopulationSketch()
    for share in shares:
        sketch = sketch.merge(PopulationSketch.of_profiles(
            profiles.workspace_profiles(workspace_id, share, total_shares), now))
    context = SegmentContext(now=now)
    return context.model_copy(update={"population": PopulationStats.from_sketch(sketch, context.settings)})


def _matching(profiles: ProfileRepository, workspace_id: str, rule: _Rule, context: SegmentContext,
              shares: Sequence[int], total_shares: int) -> Iterator[str]:
    for share in shares:
        for profile in profiles.workspace_profiles(workspace_id, share, total_shares):
            if rule.admits(profile, context):
                yield profile.profile_id


def preview(store: SegmentStore, profiles: ProfileRepository, workspace_id: str, document: SegmentDocument,
            now: datetime) -> dict[str, Any]:
    """A draft's size and a sample of its members, nothing saved."""
    _check_references(store, workspace_id, None, document)
    rule = _rule(store, workspace_id, None, document)
    size, sample = 0, list[str]()
    for profile_id in _matching(profiles, workspace_id, rule, SegmentContext(now=now), (0,), 1):
        size += 1
        if len(sample) < PREVIEW_SAMPLE:
            sample.append(profile_id)
    return {"size": size, "sample": sorted(sample)}


@dataclass(frozen=True)
class Recomputed:
    segment_id: str
    size: int
    entered: int
    exited: int
    computed_at: datetime


def recompute(store: SegmentStore, profiles: ProfileRepository, workspace_id: str, segment_id: str,
              now: datetime, shares: Sequence[int] = (0,), total_shares: int = 1) -> Recomputed:
    """Evaluate every live profile and write only the membership differences, then the size and growth.

    ``shares`` of ``total_shares`` let a caller evaluate a parallel scan's shares; this function still
    writes one membership for the whole workspace, so it must be given every share (the default).
    """
    builtin = BY_ID.get(segment_id)
    record = store.get(workspace_id, segment_id)
    if builtin is None and (record is None or record.definition is None):
        raise SegmentNotFound(f"no segment {segment_id}")
    document = _document(record) if builtin is None and record is not None else None
    rule = _rule(store, workspace_id, builtin, document)
    context = _context(profiles, workspace_id, builtin, now, shares, total_shares)
    current = set(_matching(profiles, workspace_id, rule, context, shares, total_shares))
    held = set(member_ids(store, workspace_id, segment_id))
    entered = sorted(current - held)
    exited = sorted(held - current)
    store.change_members(workspace_id, segment_id, [Member(profile_id=pid, entered_at=now) for pid in entered],
                         exited)
    growth = (*(record.growth if record else ()), GrowthPoint(at=now, size=len(current)))[-GROWTH_KEPT:]
    try:
        store.record_computation(workspace_id, segment_id, len(current), now, growth,
                                 None if builtin is not None else record.version if record else None)
    except ConcurrentUpdate:
        raise SegmentConflict(f"segment {segment_id} was changed during the computation: compute it again") \
            from None
    return Recomputed(segment_id, len(current), len(entered), len(exited), now)


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


__all__ = ["Recomputed", "SegmentConflict", "SegmentInvalid", "SegmentNotFound", "create", "delete", "list_segments",
           "member_ids", "members_page", "new_segment_id", "preview", "recompute", "replace", "segment_view",
           "subject_of"]
