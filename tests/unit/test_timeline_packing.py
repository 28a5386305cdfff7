"""Timeline lines and line groups packed against the timeline's dictionary (crm.adapters.timeline_items.line_item):
read back as written, what a read filters on kept plain, older plain items still read, a storefront's fullest
lines under 1 KB."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

from crm.adapters import keys
from crm.adapters.items import PACKED, TIMELINE, from_item, plain_item, to_item, unpack
from crm.adapters.timeline_items import LINES_ENTITY, entries_of, line_item, new_entries, type_filter
from crm.models.events import ConsentChanged, ProductViewed
from crm.models.profile import TimelineEntry
from crm.outbox import events_for
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW

WS = "ws_a"
SHOP = "https://www.northwind-outfitters.example"

_texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_values = st.recursive(st.none() | st.booleans() | st.integers(-10**9, 10**9) | _texts,
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
                       max_leaves=8)
_lines = st.builds(
    lambda minutes, kind, ref, store, summary: TimelineEntry(
        workspace_id=WS, profile_id="p1", store_id=store, occurred_at=NOW + timedelta(seconds=minutes),
        type=kind, ref=ref, summary=summary),
    st.integers(0, 600), st.sampled_from(["product_viewed", "checkout_started", "order", "consent_changed"]),
    st.text("abc-:#0123456789", min_size=1, max_size=20), st.none() | st.just("st_a"),
    st.dictionaries(_texts, _values, max_size=4))


def _size(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item, names included, as it bills it (bench/ingest_path.item_size)."""
    return sum(len(name.encode()) + _attribute_size(value) for name, value in item.items())


def _attribute_size(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "M":
        return 3 + sum(len(name.encode()) + _attribute_size(held) + 1 for name, held in data.items())
    if kind == "L":
        return 3 + sum(_attribute_size(held) + 1 for held in data)
    if kind == "SS":
        return sum(len(held.encode()) for held in data)
    return 1 if kind in ("BOOL", "NULL") else len(data.encode()) if isinstance(data, str) else len(data)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(_lines, min_size=1, max_size=6, unique_by=lambda line: line.sort_key))
def test_a_packed_line_or_group_reads_back_as_written_from_the_table_and_from_a_stream(
        lines: list[TimelineEntry]) -> None:
    lines.sort(key=lambda line: line.sort_key)
    wire = line_item(WS, lines)
    assert set(wire) == {"pk", "sk", "entity", "type" if len(lines) == 1 else "types", PACKED}
    assert wire["sk"] == {"S": lines[0].sort_key} and wire[PACKED]["B"][0] == TIMELINE
    # A stream record in Lambda's JSON event gives the Binary as base64 text.
    streamed = {**wire, PACKED: {"B": base64.b64encode(wire[PACKED]["B"]).decode()}}
    assert entries_of(from_item(wire)) == entries_of(from_item(streamed)) == lines


def test_what_a_typed_read_filters_on_stays_an_attribute_of_its_own() -> None:
    # type_filter names `type` and `types`: DynamoDB filters on attributes, never inside the pack.
    expression, names, _ = type_filter(["product_viewed", "order"])
    assert set(names.values()) == {"type", "types"} and "#types" in expression
    single, group = line_item(WS, [_view("v-1", 0)]), line_item(WS, [_view("v-1", 0), _view("v-2", 1)])
    assert single["type"] == {"S": "product_viewed"} and group["types"] == {"SS": ["product_viewed"]}
    assert group["entity"] == {"S": LINES_ENTITY} and single["entity"] == {"S": "timeline"}


def test_lines_written_plain_before_they_were_packed_still_read() -> None:
    line, second = _view("v-1", 0), _view("v-2", 1)
    key = keys.timeline(WS, "p1", line.sort_key)
    plain_line = to_item(key, "timeline", line)
    plain_group = plain_item({**key, "entity": LINES_ENTITY, "workspace_id": WS, "profile_id": "p1",
                              "occurred_at": line.occurred_at.isoformat(), "types": {"product_viewed"},
                              "lines": json.dumps([
                                  {name: value for name, value in entry.model_dump(mode="json").items()
                                   if name not in ("workspace_id", "profile_id")} for entry in (line, second)])})
    assert entries_of(from_item(plain_line)) == [line]
    assert entries_of(from_item(plain_group)) == [line, second]
    # A packed group written over the plain line alone (racing writers) adds only the line it did not hold.
    assert new_entries(from_item(line_item(WS, [line, second])), from_item(plain_line)) == [second]


def test_a_storefronts_fullest_lines_pass_1_kb_plain_and_fit_one_write_unit_packed() -> None:
    views = [_view(f"0d4a3f0e-5d51-4c55-bf0a-5d0e0a1f4b{n:02}", n, first=n) for n in range(6)]
    checkout = _view("0d4a3f0e-5d51-4c55-bf0a-5d0e0a1f4bff", 7, kind="checkout_started", items=4)
    key = keys.timeline(WS, "p1", views[0].sort_key)
    plain_group = plain_item({**key, "entity": LINES_ENTITY, "types": {"product_viewed"}, "lines": json.dumps(
        [line.model_dump(mode="json") for line in views])})
    assert _size(plain_group) > 3 * 1024 and _size(to_item(key, "timeline", checkout)) > 1024
    assert _size(line_item(WS, views)) < 1024 and _size(line_item(WS, [checkout])) < 1024


def test_the_outbox_gives_a_packed_lines_events_the_ids_a_plain_line_gave() -> None:
    consent = TimelineEntry(workspace_id=WS, profile_id="p1", occurred_at=NOW, type="consent_changed", ref="c-1",
                            summary={"channel": "email", "new": "subscribed", "source": "shopify:customers/update"})
    view = _view("v-1", 0, reachable=True)
    for line in (consent, view):
        plain = to_item(keys.timeline(WS, "p1", line.sort_key), "timeline", line)
        records = [{"eventName": "INSERT", "dynamodb": {"NewImage": item, "SequenceNumber": "1"}}
                   for item in (plain, line_item(WS, [line]))]
        before, now = (events_for(record) for record in records)
        assert [event.event_id for event in now] == [event.event_id for event in before]
        assert len(now) == 1 and isinstance(now[0], ConsentChanged | ProductViewed)
    # Written again (an order's newer version, a retry): not news.
    again = {"eventName": "MODIFY", "dynamodb": {"NewImage": line_item(WS, [view]),
                                                 "OldImage": line_item(WS, [view]), "SequenceNumber": "2"}}
    assert events_for(again) == []


def test_a_packed_line_of_the_timeline_dictionary_reads_for_good() -> None:
    # Items stay in the table: the dictionary they were packed against must never change (a new one takes a new
    # version byte). This one was packed when the timeline's dictionary was written.
    assert unpack(base64.b64decode(_PACKED_BY_THE_TIMELINE_DICTIONARY)) == _ITS_JSON


_ITS_JSON = (b'{"workspace_id":"ws_a","profile_id":"p-1","occurred_at":"2026-12-04T10:00:00Z","ref":"v-1",'
             b'"summary":{"url":"https://shop.example/products/hat"}}')
_PACKED_BY_THE_TIMELINE_DICTIONARY = "A8Pm+0R07xfoGmLxsJGZrqGRroFJiCE0b0XBfVgG1oDTk6A0opdakZhbkJOK8HAG0NzaWgA="


_HANDLES = ("merino-wool-crew-neck-sweater", "organic-cotton-oxford-shirt", "waxed-canvas-field-jacket",
            "selvedge-denim-slim-jeans", "cashmere-ribbed-beanie", "leather-chelsea-boots")


def _view(ref: str, minutes: float, kind: str = "product_viewed", items: int = 1, first: int = 0,
          reachable: bool = False) -> TimelineEntry:
    """A line as a real store's snippet makes it: a long title, Shopify's ids, the product's link and picture."""
    products = [{"title": f"{handle.replace('-', ' ').title()} - Charcoal / M", "quantity": 1, "price": "89.00",
                 "product_id": f"80123456789{n:02}", "variant_id": f"440123456789{n:02}", "sku": f"{n:02}-CHR-M",
                 "image_url": f"https://cdn.shopify.com/s/files/1/0612/3456/7890/files/{handle}-charcoal-front.jpg"
                              "?v=1698765432",
                 "product_url": f"{SHOP}/products/{handle}"}
                for n, handle in enumerate(_HANDLES[first:first + items], start=first)]
    summary: dict[str, Any] = {"url": f"{products[0]['product_url']}?variant={products[0]['variant_id']}",
                               "products": [product["title"] for product in products], "items": products,
                               "from_browser": True}
    if reachable:
        summary["reachable"] = True
    if kind == "checkout_started":
        summary |= {"checkout": "c1f4a9e0b7d24f8e9a6b3c2d1e0f9a8b", "value": "356.00", "currency": "USD",
                    "recovery_url": f"{SHOP}/checkouts/cn/c1f4a9e0b7d24f8e9a6b3c2d1e0f9a8b/recover?key=5e2d"}
    return TimelineEntry(workspace_id=WS, profile_id="p1", store_id="st_a", type=kind, ref=ref, summary=summary,
                         occurred_at=NOW + timedelta(minutes=minutes))
