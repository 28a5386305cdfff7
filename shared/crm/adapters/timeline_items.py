"""Timeline lines as the table stores them, and read back: the one place that knows a line group.

A line is an item keyed by its sort key (``T#<occurred_at>#<type>#<ref>``). The activity lines one folded write of
a /track request makes for one profile (crm.changes.fold) are one item instead, a line group: DynamoDB bills a
write per KB of each item, and a view's line is far under a KB, so 1.64 views a request cost one write unit, not
1.64. The group is keyed like its earliest line (its key is that line's key, so a read of that event's line finds
it), holds lines whose times lie within LINES_SPAN of that one, and names the types it holds (``types``) so that
a query filtered by type finds it. Every reader sees lines: ``entries_of`` expands an item, ``newest_first``
orders the lines of items read newest key first, ``type_filter`` is the filter of a typed read. Every item, a line
or a group, is packed against the timeline's dictionary (``line_item``); items written plain before still read.

docs/profile-writes.md ("A /track request's lines in one item").
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from crm.adapters import keys
from crm.adapters.items import DICTIONARY_OF, PACKED, Item, pack, plain_item, to_packed_item
from crm.models.canonical import ActivityType
from crm.models.profile import TimelineEntry

LINES_ENTITY = "timeline_lines"
# A group's lines lie within this of its earliest, so a reader of lines newest first knows how far past a page the
# next key can still hold a newer line. The snippet sends a page's events within seconds; the bench's simulated
# requests spread their views over minutes (bench/profile_events.py section 5b).
LINES_SPAN = timedelta(minutes=10)
MOST_LINES_A_GROUP = 20  # a /track request's most (storefront/crm-track.js); far under DynamoDB's 400 KB
GROUPED_TYPES = frozenset(kind.value for kind in ActivityType)
LINE_FIELDS = ("store_id", "occurred_at", "type", "ref", "summary")


def line_groups(lines: Sequence[TimelineEntry]) -> list[tuple[TimelineEntry, ...]]:
    """The items ``lines`` are written as: each profile's activity lines, by time, in groups within LINES_SPAN
    of each group's first; every other line (an order's, rewritten in place by its next version) alone."""
    items: list[tuple[TimelineEntry, ...]] = []
    open_groups: dict[str, list[TimelineEntry]] = {}
    for line in sorted(lines, key=lambda entry: (entry.profile_id, entry.sort_key)):
        if line.type not in GROUPED_TYPES:
            items.append((line,))
            continue
        group = open_groups.get(line.profile_id)
        if group and line.occurred_at - group[0].occurred_at <= LINES_SPAN and len(group) < MOST_LINES_A_GROUP:
            group.append(line)
            continue
        if group:
            items.append(tuple(group))
        open_groups[line.profile_id] = [line]
    return items + [tuple(group) for group in open_groups.values()]


def line_item(workspace_id: str, lines: Sequence[TimelineEntry]) -> Item:
    """The wire item of one line, or of a group of one profile's lines (its earliest first): packed against the
    timeline's dictionary (crm.adapters.items.TIMELINE), but for what a read filters on (a line's ``type``, a
    group's ``types``, ``type_filter``) and the keys. DynamoDB bills a write per started KB: a group of a few views,
    or a checkout's line with its items' pictures and links, passes 1 KB plain and deflates to about a third."""
    first = lines[0]
    key = keys.timeline(workspace_id, first.profile_id, first.sort_key)
    if len(lines) == 1:
        return to_packed_item(key, "timeline", first, kept=("type",))
    body = {"workspace_id": workspace_id, "profile_id": first.profile_id, "occurred_at": first.occurred_at.isoformat(),
            "lines": [{name: value for name, value in line.model_dump(mode="json", include=set(LINE_FIELDS)).items()
                       if value not in (None, {})} for line in lines]}
    packed = pack(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(), DICTIONARY_OF[LINES_ENTITY])
    return {**plain_item({**key, "entity": LINES_ENTITY, "types": {line.type for line in lines}}),
            PACKED: {"B": packed}}


def is_line_item(item: Mapping[str, Any]) -> bool:
    return item.get("entity") in ("timeline", LINES_ENTITY)


def entries_of(item: Mapping[str, Any]) -> list[TimelineEntry]:
    """The lines a plain (deserialized) timeline item holds: itself, or each line of its group."""
    if item.get("entity") != LINES_ENTITY:
        return [TimelineEntry.model_validate(item)]
    owner = {"workspace_id": item["workspace_id"], "profile_id": item["profile_id"]}
    lines = item["lines"]  # a list unpacked; one JSON string in a group written before groups were packed
    return [TimelineEntry.model_validate({**owner, **line}) for line in (json.loads(lines) if isinstance(lines, str)
                                                                         else lines)]


def new_entries(item: Mapping[str, Any] | None, before: Mapping[str, Any] | None) -> list[TimelineEntry]:
    """The lines a write of ``item`` over ``before`` (a stream record's images) added: a line written again is not
    news, whether it was alone or in a group before."""
    if item is None or not is_line_item(item):
        return []
    held = {entry.sort_key for entry in entries_of(before)} if before is not None and is_line_item(before) else set()
    return [entry for entry in entries_of(item) if entry.sort_key not in held]


def _time_of(sort_key: str) -> datetime:
    return datetime.fromisoformat(sort_key.split("#", 2)[1])


def newest_first(pages: Iterable[tuple[list[Item], str | None]], may_group: bool = True) -> Iterator[TimelineEntry]:
    """The lines of timeline items read newest key first, a page at a time (its items, deserialized, and the sort
    key it stopped at, None when none is left), newest first and each once (a line written twice, alone and in a
    group, by writers that raced, is one line). An item not yet read holds lines no later than LINES_SPAN past the
    key a page stopped at, so a line is given once it is later than that (``may_group`` False: the items read
    can hold no group, and every line read is given)."""
    waiting: list[TimelineEntry] = []  # by sort key: the newest last
    given: set[tuple[str, str]] = set()

    def ready(stopped: str | None) -> Iterator[TimelineEntry]:
        while waiting:
            line = waiting[-1]
            if stopped is not None and (line.sort_key < stopped if not may_group
                                        else line.occurred_at <= _time_of(stopped) + LINES_SPAN):
                return
            waiting.pop()
            if (line.profile_id, line.sort_key) not in given:
                given.add((line.profile_id, line.sort_key))
                yield line

    for items, stopped in pages:
        for item in items:
            for line in entries_of(item):
                bisect.insort(waiting, line, key=lambda entry: entry.sort_key)
        yield from ready(stopped)
        if stopped is None:
            return
    yield from ready(None)


def type_filter(types: Collection[str]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A typed read's FilterExpression, names and values: a line of one of ``types``, or a group holding one."""
    wanted = sorted(types)
    values = {f":t{i}": {"S": kind} for i, kind in enumerate(wanted)}
    expression = f"#type IN ({', '.join(values)})"
    grouped = [name for name, kind in zip(values, wanted, strict=True) if kind in GROUPED_TYPES]
    if grouped:
        expression += "".join(f" OR contains(#types, {name})" for name in grouped)
        return expression, {"#type": "type", "#types": "types"}, values
    return expression, {"#type": "type"}, values


def may_group(types: Collection[str]) -> bool:
    """Whether a read of lines of these types can meet a group."""
    return not GROUPED_TYPES.isdisjoint(types)


def activities_in(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(store_id, event id) of each activity whose line the item holds: each is applied (crm.ports.Reads.lines)."""
    return [(entry.store_id or "", entry.ref) for entry in entries_of(item) if entry.type in GROUPED_TYPES]
