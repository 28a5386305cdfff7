"""Issue 12, the profile item's size: what the upsert's items weigh, and which attributes weigh most.

Applies bench/profile_events.py's workload (same seed and shoppers) through the real ``crm.ingestion.apply_event``
on ``DynamoProfileRepository`` (moto, the stack from template.yaml), then reads every item of the table and sizes
it by DynamoDB's rules (bench/ingest_path.item_size: names included). Profiles and order records are also sized
in the encoding main wrote before the compact lane (``to_compact_item``: fields at their defaults left out, nothing
packed), the same items in the same run: the labelled BEFORE. A write is billed a unit per started KB, a
consistent read a unit per started 4 KB.

    .venv/bin/python bench/item_sizes.py [--shoppers 60 --browsers 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from crm.adapters.items import Item, from_item
from crm.adapters.profiles import DynamoProfileRepository
from crm.ingestion import apply_event
from crm.models.profile import OrderRecord, Profile
from crm_local import moto_patches
from crm_local.template import load_stack
from figures import RESULTS, record
from ingest_path import REGION, TEMPLATE, attribute_size, fake_aws_environment, harness, item_size, set_up, table
from moto import mock_aws
from profile_events import ANONYMOUS_BROWSERS, SEED, SHOPPERS, UnpackedItems, build_workload

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


def measure(shoppers: int, browsers: int) -> dict[str, dict[str, list[Item]]]:
    """Every sized item of the workload's table, by kind: as stored now and as main stored it before."""
    bench = set_up(load_stack(TEMPLATE, region=REGION))
    workload = build_workload(bench.store.workspace_id, bench.store.store_id, shoppers, browsers, SEED)
    table_name = bench.outputs["TableName"]
    repository = DynamoProfileRepository(table_name)
    for arrival in workload.arrivals:
        apply_event(repository, arrival.event, arrival.at + timedelta(seconds=1))
    held: dict[str, dict[str, list[Item]]] = {kind: {"now": [], "before": []} for kind in KINDS}
    for page in harness("dynamodb").get_paginator("scan").paginate(TableName=table_name):
        for wire in page["Items"]:
            kind = kind_of(from_item(wire))
            if kind is not None:
                held[kind]["now"].append(wire)
                held[kind]["before"].append(as_before(wire))
    return held


def report(held: dict[str, dict[str, list[Item]]], show: Callable[[str], None] = print) -> dict[str, Any]:
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
    figures = report(held)
    print("\n  CPU, microseconds an item (best of 5 rounds over the workload's items, this machine): an item from its "
          "model, and back")
    print(table(["item", "write before", "write now", "read before", "read now"], cpu(held)))
    print(f"\n(item sizes ran in {time.perf_counter() - started:.0f} s)")
    record("item_sizes", figures, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
