"""Issue 12, the profile item's size: what the upsert's items weigh, and which attributes weigh most.

Applies bench/profile_events.py's workload (same seed and shoppers) through the real ``crm.ingestion.apply_event``
on ``DynamoProfileRepository`` (moto, the stack from template.yaml), then reads every item of the table and sizes
it by DynamoDB's rules (bench/ingest_path.item_size: names included). Profiles and order records are also sized
in the encoding main wrote before the compact lane (``to_compact_item``: fields at their defaults left out, nothing
packed), the same items in the same run: the labelled BEFORE. A write is billed a unit per started KB, a
consistent read a unit per started 4 KB.

The timeline's items too (the linepack lane): each line the workload's events write, by type, and the line groups of
its product views folded as the snippet sends them (bench/profile_events.py section 5b's requests, on a table of
their own), each sized as stored now (packed, crm.adapters.timeline_items.line_item) and as main wrote it before
(plain, profile_events.plain_line_item: the labelled BEFORE linepack), with the bench's payloads and with the same
lines shaped as a real store's snippet sends them (storefront_shaped: event ids that are UUIDs, Shopify's product and
variant ids, long titles, product links with their variant, pictures on Shopify's CDN, a checkout's recovery link).
Identity links and account (customer) items are sized as stored.

    .venv/bin/python bench/item_sizes.py [--shoppers 60 --browsers 30]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
import timeit
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from crm.adapters.items import Item, from_item
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.timeline_items import GROUPED_TYPES, LINES_ENTITY, entries_of, is_line_item, line_item
from crm.ingestion import apply_event, apply_events
from crm.models.profile import OrderRecord, Profile, TimelineEntry
from crm_local import moto_patches
from crm_local.template import load_stack
from figures import RESULTS, record
from ingest_path import REGION, TEMPLATE, attribute_size, fake_aws_environment, harness, item_size, set_up, table
from moto import mock_aws
from profile_events import (
    ANONYMOUS_BROWSERS,
    SEED,
    SHOPPERS,
    UnpackedItems,
    build_workload,
    clone_table,
    plain_line_item,
    track_requests,
)
from track_batching import measure as measure_batching

SHOPPER, BROWSER, TOMBSTONE, ORDER = "shopper's profile", "anonymous browser's profile", "merged tombstone", \
    "order record"
KINDS = (SHOPPER, BROWSER, TOMBSTONE, ORDER)


def kind_of(item: dict[str, Any]) -> str | None:
    """The report's kind of a plain (read) item, None for the items not sized here."""
    if item.get("entity") == "order":
        return ORDER
    if item.get("entity") != "profile":
        return None
    if item.get("merged_into"):
        return TOMBSTONE
    identities = Profile.model_validate(item).identities
    return BROWSER if all(identity.startswith("anon#") for identity in identities) else SHOPPER


def as_before(wire: Item) -> Item:
    """The item as main wrote it before the compact lane: a profile without the fields at their defaults, an order
    record every field, nothing packed."""
    plain = from_item(wire)
    return before_item(OrderRecord.model_validate(plain) if plain["entity"] == "order" else
                       Profile.model_validate(plain))


def before_item(model: Profile | OrderRecord) -> Item:
    if isinstance(model, OrderRecord):
        return UnpackedItems("table")._order_item(model.workspace_id, model)
    return UnpackedItems("table")._profile_item(model.workspace_id, model)


def now_item(model: Profile | OrderRecord) -> Item:
    if isinstance(model, OrderRecord):
        return DynamoProfileRepository("table")._order_item(model.workspace_id, model)
    return DynamoProfileRepository("table")._profile_item(model.workspace_id, model)


def units(size: int, per: int) -> int:
    return max(1, -(-size // per))


def summary(sizes: Sequence[int]) -> list[str]:
    ordered = sorted(sizes)
    return [str(len(ordered)), f"{statistics.fmean(ordered):,.0f}", f"{ordered[len(ordered) // 2]:,}",
            f"{ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]:,}", f"{ordered[-1]:,}",
            f"{sum(s <= 1024 for s in ordered) / len(ordered):.0%}",
            f"{statistics.fmean(units(s, 1024) for s in ordered):.2f}",
            f"{statistics.fmean(units(s, 4096) for s in ordered):.2f}"]


def weights(items: Sequence[Item]) -> list[tuple[str, float, float]]:
    """(attribute, mean bytes over the items, share of the items carrying it), heaviest first."""
    total: dict[str, int] = defaultdict(int)
    carried: dict[str, int] = defaultdict(int)
    for item in items:
        for name, value in item.items():
            total[name] += len(name.encode()) + attribute_size(value)
            carried[name] += 1
    return sorted(((name, total[name] / len(items), carried[name] / len(items)) for name in total),
                  key=lambda row: -row[1])


@dataclass
class Held:
    models: dict[str, dict[str, list[Item]]]  # profiles and order records, by kind: "now" and "before"
    lines: dict[str, list[tuple[TimelineEntry, ...]]]  # each timeline item's lines, by kind
    others: dict[str, list[Item]]  # identity links and account items, as stored
    workspace_id: str


def measure(shoppers: int, browsers: int) -> Held:
    """Every sized item of the workload's table, by kind (profiles and orders as stored now and as main stored
    them before), and the line items of its product views folded into /track requests on a table of their own."""
    bench = set_up(load_stack(TEMPLATE, region=REGION))
    workspace_id = bench.store.workspace_id
    workload = build_workload(workspace_id, bench.store.store_id, shoppers, browsers, SEED)
    table_name = bench.outputs["TableName"]
    folded_table, _ = clone_table(f"{table_name}-folded", table_name)
    repository = DynamoProfileRepository(table_name)
    for arrival in workload.arrivals:
        apply_event(repository, arrival.event, arrival.at + timedelta(seconds=1))
    folded = DynamoProfileRepository(folded_table)
    for request in track_requests(workload, measure_batching().views_per_request):
        apply_events(folded, request, request[-1].occurred_at + timedelta(seconds=1))
    held = Held({kind: {"now": [], "before": []} for kind in KINDS}, defaultdict(list), defaultdict(list),
                workspace_id)
    for wire in scan(table_name):
        plain = from_item(wire)
        kind = kind_of(plain)
        if kind is not None:
            held.models[kind]["now"].append(wire)
            held.models[kind]["before"].append(as_before(wire))
        elif is_line_item(plain):
            held.lines[f"line: {plain['type']}"].append(tuple(entries_of(plain)))
        elif plain.get("entity") in ("identity", "customer"):
            held.others[f"{plain['entity']} item"].append(wire)
    for wire in scan(folded_table):
        plain = from_item(wire)
        if is_line_item(plain):
            lines = tuple(entries_of(plain))
            held.lines[GROUP if plain["entity"] == LINES_ENTITY else FOLDED_ALONE].append(lines)
    return held


def scan(table_name: str) -> Iterator[Item]:
    for page in harness("dynamodb").get_paginator("scan").paginate(TableName=table_name):
        yield from page["Items"]


GROUP, FOLDED_ALONE = "folded request's line group", "folded request's line alone"
_STORE_DOMAIN = "www.northwind-outfitters.com"
_CDN = "https://cdn.shopify.com/s/files/1/0612/3456/7890/files/"


def storefront_shaped(line: TimelineEntry) -> TimelineEntry:
    """The line as a real store's snippet and webhooks make it: an activity's event id a UUID, Shopify's product and
    variant ids, a title with its variant, the product's link with its variant, its picture on Shopify's CDN, a
    checkout's recovery link (the bench's workload sends short titles, ids and links and no pictures)."""
    def digest(text: str) -> int:
        return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)

    def item(product: dict[str, Any]) -> dict[str, Any]:
        title = str(product.get("title") or "Product")
        handle = f"{title.lower().replace(' ', '-')}-organic-cotton-blend"
        product_id, variant_id = 8 * 10**12 + digest(title) % 10**12, 44 * 10**12 + digest(handle) % 10**12
        return {**product, "title": f"{title} - Organic Cotton Blend, Charcoal / M", "product_id": str(product_id),
                "variant_id": str(variant_id), "sku": f"{title[:3].upper()}-CHR-M",
                "image_url": f"{_CDN}{handle}-charcoal-front.jpg?v=1698765432",
                "product_url": f"https://{_STORE_DOMAIN}/products/{handle}"}

    summary = dict(line.summary)
    held = summary.get("items")  # an order line's is a count
    items = [item(product) for product in held] if isinstance(held, list) else []
    if items:
        summary["items"] = items
        summary["products"] = [product["title"] for product in items]
    if summary.get("url"):
        summary["url"] = (f"{items[0]['product_url']}?variant={items[0]['variant_id']}" if items
                          else f"https://{_STORE_DOMAIN}/collections/all?utm_source=newsletter&utm_medium=email")
    if line.type == "checkout_started":
        token = hashlib.sha256(line.ref.encode()).hexdigest()
        summary["checkout"] = token[:32]
        summary["recovery_url"] = f"https://{_STORE_DOMAIN}/checkouts/cn/{token[:32]}/recover?key={token[32:]}"
    ref = str(uuid.UUID(int=digest(line.ref) << 64 | digest(line.ref[::-1]))) if line.type in GROUPED_TYPES \
        else line.ref
    return line.model_copy(update={"ref": ref, "summary": summary})


def report(held: dict[str, dict[str, list[Item]]], show: Callable[[str], None] = print) -> dict[str, Any]:
    """Profiles and order records, before and now."""
    header = ["item", "encoding", "n", "mean B", "p50", "p90", "max", "<= 1 KB", "WRU a write", "RRU a read"]
    rows, figures = [], {}
    for kind in KINDS:
        for encoding in ("before", "now"):
            sizes = [item_size(item) for item in held[kind][encoding]]
            if sizes:
                rows.append([kind, encoding, *summary(sizes)])
                figures[f"{kind} {encoding}"] = {"n": len(sizes), "mean": statistics.fmean(sizes),
                                                 "wru": statistics.fmean(units(s, 1024) for s in sizes)}
    show(table(header, rows))
    for kind in (SHOPPER, ORDER):
        for encoding in ("before", "now"):
            items = held[kind][encoding]
            if not items:
                continue
            show(f"\n  {kind}, {encoding}: the heaviest attributes (mean bytes with their names; share carrying it)")
            show(table(["attribute", "mean B", "carried"],
                       [[name, f"{mean:,.0f}", f"{share:.0%}"] for name, mean, share in weights(items)[:14]]))
    return figures


def _per_item(work: Callable[[Any], object], items: Sequence[Any], repeats: int = 5) -> float:
    """Microseconds an item, the best of a few rounds over every item (the machine is shared)."""
    return min(timeit.repeat(lambda: [work(item) for item in items], number=1, repeat=repeats)) / len(items) * 1e6


def _read(model: type[Profile | OrderRecord], item: Item) -> Profile | OrderRecord:
    return model.model_validate(from_item(item))


def line_report(held: Held, show: Callable[[str], None] = print) -> dict[str, Any]:
    """Every timeline item by kind, with the bench's payloads and shaped as a real store's, BEFORE linepack (plain)
    and now (packed); identity links and account items as stored."""
    header = ["item", "payload", "encoding", "lines", "n", "mean B", "p50", "p90", "max", "<= 1 KB", "WRU a write",
              "RRU a read"]
    rows, figures = [], {}
    encoders = {"before": plain_line_item, "now": line_item}
    for kind in sorted(held.lines, key=lambda name: (name.startswith("line:"), name)):
        found = held.lines[kind]
        shaped = [tuple(storefront_shaped(line) for line in lines) for lines in found]
        for payload, items in (("bench", found), ("storefront", shaped)):
            for encoding, encode in encoders.items():
                sizes = [item_size(encode(held.workspace_id, lines)) for lines in items]
                rows.append([kind, payload, encoding, f"{statistics.fmean(len(lines) for lines in items):.2f}",
                             *summary(sizes)])
                figures[f"{kind} {payload} {encoding}"] = {
                    "n": len(sizes), "mean": statistics.fmean(sizes),
                    "over_1kb": sum(size > 1024 for size in sizes) / len(sizes),
                    "wru": statistics.fmean(units(size, 1024) for size in sizes)}
    for kind, stored in sorted(held.others.items()):
        sizes = [item_size(item) for item in stored]
        rows.append([kind, "bench", "as stored", "", *summary(sizes)])
        figures[kind] = {"n": len(sizes), "mean": statistics.fmean(sizes)}
    show(table(header, rows))
    folded = [*held.lines.get(GROUP, []), *held.lines.get(FOLDED_ALONE, [])]
    if folded:  # the line items a request's views cost, the rest of a view's writes being its profile's
        views = sum(len(lines) for lines in folded)
        for payload in ("bench", "storefront"):
            per_view = {encoding: sum(units(item_size(encode(held.workspace_id, tuple(
                storefront_shaped(line) for line in lines) if payload == "storefront" else lines)), 1024)
                for lines in folded) / views for encoding, encode in encoders.items()}
            figures[f"folded line items {payload} wru_a_view"] = per_view
            show(f"  {payload} payloads: the folded requests' line items {per_view['before']:.2f} -> "
                 f"{per_view['now']:.2f} WRU a view (before -> now, {views} views in {len(folded)} items)")
    return figures


def cpu(held: dict[str, dict[str, list[Item]]]) -> list[list[str]]:
    """What packing costs: a model's item written, and an item read back into its model, before and now."""
    rows = []
    for kind in KINDS:
        if not held[kind]["now"]:
            continue
        model: type[Profile | OrderRecord] = OrderRecord if kind == ORDER else Profile
        models = [model.model_validate(from_item(item)) for item in held[kind]["now"]]
        figures = [_per_item(write, models) for write in (before_item, now_item)]
        figures += [_per_item(partial(_read, model), held[kind][encoding]) for encoding in ("before", "now")]
        rows.append([kind, *(f"{figure:.0f}" for figure in figures)])
    return rows


def _line_read(item: Item) -> list[TimelineEntry]:
    return entries_of(from_item(item))


def line_cpu(held: Held) -> list[list[str]]:
    """What packing a timeline item costs: written from its lines, and read back into lines, before and now."""
    rows = []
    for kind in (GROUP, "line: checkout_started"):
        found = held.lines.get(kind)
        if not found:
            continue
        figures = [_per_item(partial(encode, held.workspace_id), found) for encode in (plain_line_item, line_item)]
        figures += [_per_item(_line_read, [encode(held.workspace_id, lines) for lines in found])
                    for encode in (plain_line_item, line_item)]
        rows.append([kind, *(f"{figure:.0f}" for figure in figures)])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=SHOPPERS)
    parser.add_argument("--browsers", type=int, default=ANONYMOUS_BROWSERS)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    fake_aws_environment()
    moto_patches.install()
    with mock_aws():
        held = measure(args.shoppers, args.browsers)
    print(f"Item sizes after bench/profile_events.py's workload ({args.shoppers} shoppers, {args.browsers} browsers, "
          f"seed {SEED}); before = main's plain compact item, now = as stored")
    figures = report(held.models)
    print("\n  CPU, microseconds an item (best of 5 rounds over the workload's items, this machine): an item from its "
          "model, and back")
    print(table(["item", "write before", "write now", "read before", "read now"], cpu(held.models) + line_cpu(held)))
    print("\nTimeline items (the workload's lines one event at a time; its product views folded into /track requests "
          "on a table of their own);\n  before = BEFORE linepack (plain), now = as stored (packed); storefront = the "
          "same lines shaped as a real store's (storefront_shaped)")
    figures["timeline"] = line_report(held)
    print(f"\n(item sizes ran in {time.perf_counter() - started:.0f} s)")
    record("item_sizes", figures, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
