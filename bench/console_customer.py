"""The console's customer page: what one page of a customer's orders reads (DynamoDB requests and read units),
against the way without `ProfileRepository.timeline_of` in the same run: the plain timeline read 20 lines a
request until as many order lines are found, then the same batch read of the orders.

One customer on moto (the stack provisioned from template.yaml), ``--orders`` orders with ``--views`` product
views between each two; a filtered query is billed for every line it reads, not only the ones it returns, so
each filtered page is sized by reading the same lines again unfiltered, unmetered.
`bench/console_customer.py [--orders 25] [--views 0 3 10 40]`
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from crm.adapters import clients
from crm.adapters.profiles import DynamoProfileRepository
from crm.changes import distinct_entries
from crm.clock import utc_now
from crm.console import pages
from crm.ingestion import apply_event
from crm.models.canonical import ActivityEvent, ActivityType, ProductRef
from crm.models.orders import CanonicalOrder, LineItem
from crm.models.profile import Profile, TimelineEntry
from crm.models.stores import Platform
from crm_local import moto_patches
from crm_local.provision import provision
from crm_local.template import load_stack
from figures import record
from ingest_path import REGION, TEMPLATE, Meter, fake_aws_environment, harness, item_size, read_units
from moto import mock_aws

WS, STORE = "ws_bench", "st_bench"
EMAIL = "shopper@bench.example"
PAGE = pages.ORDERS_PAGE
PLAIN_PAGE = 20  # the console's timeline page


class FilteredMeter(Meter):
    """A query with a filter is billed for what it read before the filter: read it again unfiltered to size it."""

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **rest: Any) -> None:
        params = context.get("bench_params", {})
        if model.name == "Query" and "FilterExpression" in params:
            unfiltered = {k: v for k, v in params.items() if k != "FilterExpression"}
            values = unfiltered["ExpressionAttributeValues"]
            unfiltered["ExpressionAttributeValues"] = {k: v for k, v in values.items() if not k.startswith(":t")}
            unfiltered.pop("ExpressionAttributeNames", None)
            read = harness("dynamodb").query(**unfiltered)
            self.counts["req", "dynamodb", "Query"] += 1
            size = sum(item_size(i) for i in read.get("Items", []))
            self.counts["unit", "rru"] += read_units(size, bool(params.get("ConsistentRead")))  # type: ignore[assignment]
            return
        super()._after(parsed=parsed, model=model, context=context, **rest)


def fill(repository: DynamoProfileRepository, orders: int, views: int) -> Profile:
    """One shopper's history, newest last: each order follows ``views`` product views."""
    hat = ProductRef(product_id="9", title="Hat")
    now = utc_now()
    at = now - timedelta(days=orders + 1)
    for n in range(orders):
        for v in range(views):
            at += timedelta(minutes=1)
            assert apply_event(repository, ActivityEvent(
                workspace_id=WS, store_id=STORE, platform=Platform.SHOPIFY, event_id=f"v-{n}-{v}",
                type=ActivityType.PRODUCT_VIEWED, occurred_at=at, email=EMAIL, products=(hat,)), now)
        at += timedelta(minutes=1)
        assert apply_event(repository, CanonicalOrder(
            workspace_id=WS, store_id=STORE, platform=Platform.SHOPIFY, order_id=f"o-{n}", email=EMAIL,
            currency="USD", total_price=Decimal("20.00"), created_at=at, updated_at=at, version=f"{at.isoformat()}#0",
            line_items=(LineItem(title="Hat", quantity=2, price=Decimal("10.00")),)), now)
    profile_id = repository.profile_id_for_identity(WS, f"email#{EMAIL}")
    assert profile_id is not None
    profile = repository.get_profile(WS, profile_id)
    assert profile is not None
    return profile


def plain_timeline_orders(repository: DynamoProfileRepository, profile: Profile) -> list[str]:
    """The way without timeline_of: the timeline a page at a time until a page of orders is found."""
    ids: list[str] = [profile.profile_id, *profile.merged_from]
    before: str | None = None
    lines: list[TimelineEntry] = []
    while len(lines) < PAGE:
        read = repository.timeline(WS, ids, before, PLAIN_PAGE)
        lines += [e for e in distinct_entries(read) if e.type == "order"]
        if len(read) < PLAIN_PAGE:
            break
        before = read[-1].sort_key
    refs = [(e.ref.partition(":")[0], e.ref.partition(":")[2]) for e in lines[:PAGE]]
    found = repository.order_records(WS, refs)
    return [found[ref].order_id for ref in refs if ref in found]


def metered(meter: Meter, read: Callable[[], list[str]]) -> tuple[list[str], float, float]:
    mark = meter.mark()
    shown = read()
    spent = meter.since(mark)
    requests = sum(v for k, v in spent.items() if k[0] == "req")
    return shown, requests, spent.get(("unit", "rru"), 0.0)


def measure(orders: int, views: int) -> dict[str, float]:
    """One customer's page of orders read both ways, on a table of its own."""
    with mock_aws():
        table = provision(load_stack(TEMPLATE, region=REGION), stack_name=f"bench-console-{views}",
                          region=REGION).outputs["TableName"]
        clients.reset()
        repository = DynamoProfileRepository(table)
        profile = fill(repository, orders, views)
        meter = FilteredMeter()
        meter.attach(clients.client("dynamodb"))
        ours, ours_requests, ours_rru = metered(meter, lambda: [
            r.order_id for r in pages.customer_orders(repository, profile, None).orders])
        plain, plain_requests, plain_rru = metered(meter, lambda: plain_timeline_orders(repository, profile))
        assert ours == plain and len(ours) == min(PAGE, orders), (ours, plain)
    return {"views_between_orders": views, "requests": ours_requests, "rru": ours_rru,
            "baseline_requests": plain_requests, "baseline_rru": plain_rru}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=25)
    parser.add_argument("--views", type=int, nargs="+", default=[0, 3, 10, 40])
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print("The console's customer page: one page of a customer's orders, metered on moto")
    print(f"command: bench/console_customer.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    fake_aws_environment()
    moto_patches.install()
    rows = [measure(args.orders, views) for views in args.views]
    print(f"\n{args.orders} orders, a page of {PAGE} (newest first, each with its items):")
    print(f"  {'views between orders':>20}  {'timeline_of: requests':>21}  {'RRU':>6}  "
          f"{'plain timeline: requests':>24}  {'RRU':>6}  {'RRU ratio':>9}")
    for row in rows:
        print(f"  {row['views_between_orders']:>20}  {row['requests']:>21.0f}  {row['rru']:>6.1f}  "
              f"{row['baseline_requests']:>24.0f}  {row['baseline_rru']:>6.1f}  "
              f"{row['rru'] / row['baseline_rru']:>8.2f}x")
    print(f"\n(bench ran in {time.perf_counter() - started:.0f} s)")
    record("console_customer", {"orders": args.orders, "page": PAGE, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
