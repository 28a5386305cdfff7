"""A folded request's lines stored as one item a profile (crm.adapters.timeline_items), and read back as lines."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from crm.adapters.items import from_item
from crm.adapters.timeline_items import LINES_SPAN, entries_of, line_groups, line_item, newest_first
from crm.models.events import ProductViewed
from crm.models.profile import TimelineEntry
from crm.outbox import events_for
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW

WS = "ws_a"


def _line(ref: str, minutes: float, kind: str = "product_viewed", profile_id: str = "p1") -> TimelineEntry:
    return TimelineEntry(workspace_id=WS, profile_id=profile_id, store_id="st_a",
                         occurred_at=NOW + timedelta(minutes=minutes), type=kind, ref=ref,
                         summary={"url": f"https://shop.example/{ref}", "reachable": True,
                                  "items": [{"title": "Hat", "quantity": 2, "price": "10.10", "product_id": "7"}]})


def test_a_group_reads_back_as_the_lines_written() -> None:
    lines = (_line("v-1", 0), _line("v-2", 1.5, "product_added_to_cart"), _line("v-3", 3))
    item = from_item(line_item(WS, lines))
    assert item["sk"] == lines[0].sort_key and item["types"] == {"product_viewed", "product_added_to_cart"}
    assert entries_of(item) == list(lines)
    assert entries_of(from_item(line_item(WS, lines[:1]))) == list(lines[:1])


def test_each_profiles_activities_group_within_the_span_and_other_lines_stay_alone() -> None:
    span = LINES_SPAN / timedelta(minutes=1)
    order = _line("st_a:1", 1, "order")
    groups = line_groups([_line("v-3", span + 1), _line("v-1", 0), order, _line("v-2", span),
                          _line("w-1", 2, profile_id="p2")])
    assert sorted([line.ref for line in group] for group in groups) == [
        ["st_a:1"], ["v-1", "v-2"], ["v-3"], ["w-1"]]


@settings(max_examples=200, deadline=None)
@given(minutes=st.lists(st.integers(0, 60), min_size=1, max_size=30), folds=st.data(), page=st.integers(1, 5))
def test_lines_read_a_page_of_items_at_a_time_come_newest_first_each_once(
        minutes: list[int], folds: st.DataObject, page: int) -> None:
    """Lines written by folds of any sizes (each fold's lines grouped), some written twice (alone and in a group,
    by writers that raced), read as a Query reads them: items newest key first, ``page`` at a time."""
    lines = [_line(f"v-{n}", at, "order" if n % 7 == 3 else "page_viewed") for n, at in enumerate(minutes)]
    items: dict[str, dict[str, Any]] = {}
    rest = lines
    while rest:
        size = folds.draw(st.integers(1, len(rest)), label="lines in a fold")
        for group in line_groups(rest[:size]):
            items[group[0].sort_key] = from_item(line_item(WS, group))
        rest = rest[size:]
    for line in folds.draw(st.lists(st.sampled_from(lines), max_size=3), label="written again alone"):
        items.setdefault(line.sort_key, from_item(line_item(WS, [line])))
    ordered = [items[key] for key in sorted(items, reverse=True)]
    pages = [(ordered[n:n + page], ordered[n + page - 1]["sk"] if n + page < len(ordered) else None)
             for n in range(0, len(ordered), page)]
    assert list(newest_first(pages)) == sorted(lines, key=lambda line: line.sort_key, reverse=True)


def _record(new: TimelineEntry | tuple[TimelineEntry, ...], old: tuple[TimelineEntry, ...] = ()) -> dict[str, Any]:
    data: dict[str, Any] = {"NewImage": line_item(WS, new if isinstance(new, tuple) else (new,)),
                            "SequenceNumber": "1"}
    if old:
        data["OldImage"] = line_item(WS, old)
    return {"eventName": "MODIFY" if old else "INSERT", "dynamodb": data}


def test_the_outbox_publishes_each_line_a_group_adds_once() -> None:
    first, second, third = _line("v-1", 0), _line("v-2", 1), _line("v-3", 2)
    assert [e.event_id for e in events_for(_record((first, second)))] == [
        "ProductViewed:ws_a:st_a:v-1", "ProductViewed:ws_a:st_a:v-2"]
    assert all(isinstance(e, ProductViewed) for e in events_for(_record((first, second))))
    # Racing writers: a group written over the line alone, and again with one line more.
    assert [e.event_id for e in events_for(_record((first, second), (first,)))] == ["ProductViewed:ws_a:st_a:v-2"]
    assert [e.event_id for e in events_for(_record((first, second, third), (first, second)))] == [
        "ProductViewed:ws_a:st_a:v-3"]
    assert events_for(_record(first, (first, second))) == []
