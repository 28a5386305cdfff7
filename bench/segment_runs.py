"""`make bench`, part 4: the real segment recomputation path on moto, metered, against a rewrite-all baseline.

bench/segments.py measures rule evaluation and *models* what a recompute costs on DynamoDB. This script
runs the real thing: the stack provisioned from template.yaml on moto's mock_aws, synthetic profiles from
bench/segments.py's generator (with their timelines, so the Scan reads a realistic table), nine custom
segments beside the built-ins, and full recomputation runs through ``crm.segments.runs`` with the real
``DynamoSegmentStore`` and ``DynamoSegmentRuns`` (sketches in the archive bucket), each task carried out in
this process as the segment-tasks function would. Then ``runs.refresh``, the incremental path, for
profiles that changed. Every request is counted by ingest_path's meter; what that meter does not price
(Scan, BatchWriteItem) and what it approximates (an update or a condition check costs what the whole item
weighs, not its key) is priced here from the items as moto stores them.

Request counts and units are deterministic (fixed seed, one thread) and transfer to AWS; times are moto's.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest.mock import patch

from botocore.exceptions import ClientError
from crm.adapters import clients, keys
from crm.adapters.items import from_item, plain_item, to_item, wire_key
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.segment_runs import DynamoSegmentRuns
from crm.adapters.segments import DynamoSegmentStore, _profile_with_segments
from crm.adapters.throttling import transact_write
from crm.adapters.workspace_index import partition_items, profile_partitions
from crm.config import Settings
from crm.models.profile import Activity, Profile, TimelineEntry
from crm.models.segment_runs import HourlyTask, RunPhase, RunTask, SegmentRun
from crm.models.segments import BUILTIN_PREFIX, HeldSegments, MembershipChange, SegmentRecord
from crm.ports import ConcurrentUpdate
from crm.segments import runs
from crm.segments.boundaries import HOUR, due, hour_of, next_change, timed_segments
from crm.segments.builtin import PopulationStats, SegmentContext
from crm.segments.feed import ProfileChange
from crm.segments.inputs import moves_nothing
from crm.segments.membership import memberships_of, rules_for
from crm_local import moto_patches
from crm_local.template import load_stack
from figures import record
from ingest_path import (
    PRICES,
    REGION,
    TEMPLATE,
    Bench,
    Counts,
    add,
    fake_aws_environment,
    item_size,
    ratio,
    read_units,
    requests_in,
    set_up,
    table,
)
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table as MotoTable
from profile_events import (
    CANCELLATION,
    CUSTOMER,
    DUPLICATE,
    IDENTIFY,
    MONTHLY_MIX,
    ORDER_NEW,
    ORDER_RETURNING,
    ORDER_UPDATED,
    PRODUCT_VIEW,
    REFUND,
    REMOVED,
)
from profile_events import CHECKOUT as CHECKOUT_STARTED
from segments import NOW, RULES, WORKSPACE, chunks

PROFILES = 1_000
SHARES = 4
CHURN = 0.05  # the share of profiles that change between the first and the second run
REFRESHED = 40
# A refreshed profile takes this many writes of the mix in a row: the reference month's 3.5M writes are ~35
# a profile (a profile taking one write would make every write its first in months, and overstate how many
# writes move a membership); the profiles are drawn by activity (active_sample).
VISIT_WRITES = 35
WRITES_APART = timedelta(seconds=2)
REFRESH_BATCH = 1  # ~1.3 profile writes a second and a 1 s batching window: stream batches of about one
TARGETS = (100_000, 1_000_000)
REFERENCE_PROFILES = 100_000
OTHER_WORKSPACE = "ws-other"  # DESIGN.md's reference store
# Profile writes a month at the reference store (each is a stream record the refresh reads); duplicate
# deliveries write nothing.
PROFILE_WRITES = sum(n for kind, n in MONTHLY_MIX.items() if kind != DUPLICATE)
RUNS_PER_MONTH = 30
ITEMS_PER_SHARE = int(Settings.model_fields["segment_items_per_share"].default)
TASK_GB = 1024 / 1024  # template.yaml: SegmentTasksFunction MemorySize
REFRESH_GB = 256 / 1024  # SegmentRefreshFunction: the Globals' MemorySize
LAMBDA_LIMIT_S = 900
LAMBDA_GB_SECOND = 0.0000166667
SEED = 12
# Assumed round trips from a Lambda (moto's in-process time says nothing about AWS's): a request of a few
# items ~10 ms, a 1 MB Scan page ~100 ms.
AWS_SECONDS = {"Scan": 0.1}
AWS_SECONDS_DEFAULT = 0.01
KB = 1024

# Which item a write touches, for the breakdown of write units.
HELD, MEMBER, SIZE, BOOKKEEPING = "segment set", "member item", "segment size", "bookkeeping"
DUE = "filed for the hourly run"  # crm.segments.boundaries: a key-only item per profile and hour
HOURS_MEASURED = 22  # hourly runs measured one after another, from the refresh to the next daily run
HOURLY_RUNS_A_DAY = 24
MEMBERSHIP_KINDS = (HELD, MEMBER, SIZE)
EVALUATING_ALL = "refresh, every write evaluated (before)"

Item = dict[str, Any]
Key = tuple[str, str]


# --- What moto holds: item sizes for writes and scans -------------------------------------------------------


class StoredItems:
    """Item sizes as moto stores them (read from its backend, no request): DynamoDB bills an update by the
    larger of the item before and after, a delete by the item deleted, a Scan by every item it reads."""

    def __init__(self, table_name: str) -> None:
        self.table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(table_name)
        self._sizes: dict[Key, tuple[Any, int]] = {}

    def _size_of(self, key: Key, stored: Any) -> int:
        cached = self._sizes.get(key)
        if cached is not None and cached[0] is stored:
            return cached[1]
        size = item_size(stored.to_json()["Attributes"])
        self._sizes[key] = (stored, size)
        return size

    def items(self) -> Iterator[tuple[Key, Any]]:
        for hash_value, by_range in self.table.items.items():
            for range_value, stored in by_range.items():
                yield (str(hash_value.value), str(range_value.value)), stored

    def forget(self, key: Key) -> None:
        """An item moto updated in place is the same object with another size."""
        self._sizes.pop(key, None)

    def size(self, key: Key) -> int:
        """The stored item's size, 0 when there is none (``.get``: the table's defaultdict must not grow)."""
        stored = self.table.items.get(DynamoType({"S": key[0]}), {}).get(DynamoType({"S": key[1]}))
        return 0 if stored is None else self._size_of(key, stored)

    def scanned(self, share: tuple[int, int] | None, start: Key | None, last: Key | None) -> int:
        """Bytes of the items one Scan page read: those of its share after ``start``, up to ``last``."""
        total = 0
        for key, stored in self.items():
            if (start is not None and key <= start) or (last is not None and key > last):
                continue
            if share is None or stored.is_within_segment(share):
                total += self._size_of(key, stored)
        return total

    def members(self, workspace_id: str, segment_id: str) -> int:
        return len(self.table.items.get(DynamoType({"S": keys.segment_members_pk(workspace_id, segment_id)}), {}))

    def count(self) -> int:
        return sum(len(by_range) for by_range in self.table.items.values())


class SortedTable:
    """moto sorts every item of a table for each Query and each Scan page (``Table.all_items``), so a Query of
    one small partition costs O(n log n) in the table's size (0.8 s at 1,000 profiles). This keeps each table's
    items in order as they are put and deleted (updates change items in place). moto's answers are unchanged;
    only its time, which this bench does not price, is saved."""

    _all_items = MotoTable.all_items
    _put_item = MotoTable.put_item
    _delete_item = MotoTable.delete_item

    @staticmethod
    def _key(item: Any) -> Key:
        return str(item.hash_key.value), str(item.range_key.value)

    @staticmethod
    def _order(table: Any) -> tuple[list[Key], list[Any]] | None:
        return table.__dict__.get("_bench_order") if table.range_key_attr else None

    @staticmethod
    def all_items(table: Any) -> list[Any]:
        order = SortedTable._order(table)
        if order is None:
            items = SortedTable._all_items(table)
            if not table.range_key_attr:
                return items
            order = table.__dict__["_bench_order"] = ([SortedTable._key(i) for i in items], list(items))
        return list(order[1])

    @staticmethod
    def put_item(table: Any, *args: Any, **kwargs: Any) -> Any:
        item = SortedTable._put_item(table, *args, **kwargs)
        order = SortedTable._order(table)
        if order is not None:
            key = SortedTable._key(item)
            at = bisect.bisect_left(order[0], key)
            if at < len(order[0]) and order[0][at] == key:
                order[1][at] = item
            else:
                order[0].insert(at, key)
                order[1].insert(at, item)
        return item

    @staticmethod
    def delete_item(table: Any, *args: Any, **kwargs: Any) -> Any:
        item = SortedTable._delete_item(table, *args, **kwargs)
        order = SortedTable._order(table)
        if item is not None and order is not None:
            at = bisect.bisect_left(order[0], SortedTable._key(item))
            del order[0][at], order[1][at]
        return item

    @classmethod
    def install(cls) -> None:
        MotoTable.all_items = cls.all_items  # type: ignore[method-assign,assignment]
        MotoTable.put_item = cls.put_item  # type: ignore[method-assign,assignment]
        MotoTable.delete_item = cls.delete_item  # type: ignore[method-assign,assignment]


# --- Pricing what the meter leaves out -------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    table: str
    action: str  # Put, Update, Delete or ConditionCheck
    key: Key
    kind: str
    written: int = 0  # a Put's item size


def _key_of(wire: Item) -> Key:
    return str(wire["pk"]["S"]), str(wire["sk"]["S"])


def _kind(action: str, op: Item, key: Key) -> str:
    if key[1] == keys.PROFILE_SEGMENTS_SK:
        return HELD
    if key[0].endswith("#MEMBERS"):
        return MEMBER
    if key[1] == "SIZE" and "ADD" in op.get("UpdateExpression", ""):
        return SIZE  # a change's addition (the 00847b9 baseline); a run recording its count is bookkeeping
    if "#SEGDUE#" in key[0]:
        return DUE
    return BOOKKEEPING


def _write(table_name: str, action: str, op: Item) -> Write:
    key = _key_of(op["Item"] if action == "Put" else op["Key"])
    return Write(table_name, action, key, _kind(action, op, key), item_size(op["Item"]) if action == "Put" else 0)


def writes_of(operation: str, params: Item) -> list[Write]:
    if operation == "TransactWriteItems":
        return [_write(op["TableName"], action, op) for entry in params["TransactItems"]
                for action, op in entry.items()]
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return [_write(params["TableName"], operation.removesuffix("Item").capitalize(), params)]
    if operation == "BatchWriteItem":
        return [_write(name, "Put", r["PutRequest"]) if "PutRequest" in r
                else _write(name, "Delete", r["DeleteRequest"])
                for name, requests in params["RequestItems"].items() for r in requests]
    return []


class Ledger:
    """A second botocore handler beside ingest_path's meter, adding to the same counts what the meter does not
    price: a Scan's read units (0.5 per 4 KB of every item read, filtered out or not), BatchWriteItem (by
    the meter's own rules), and ``sized`` write units: each item written billed as DynamoDB bills it, by the
    larger of the item before and after (the meter sizes an update, a delete or a condition check by its key),
    x2 in a transaction. Writes are broken down by what they touch (the profile check, the profile's set of
    segments, member items, segment sizes, the run's bookkeeping)."""

    def __init__(self, counts: Counter[tuple[str, ...]]) -> None:
        self.counts = counts
        self._tables: dict[str, StoredItems] = {}
        self.profiles_moved: list[str] = []

    def stored(self, table_name: str) -> StoredItems:
        if table_name not in self._tables:
            self._tables[table_name] = StoredItems(table_name)
        return self._tables[table_name]

    def attach(self, client: Any) -> None:
        events = client.meta.events
        if client.meta.service_model.service_name == "dynamodb":
            events.register("before-parameter-build.dynamodb", self._before, unique_id="bench-ledger-before")
            events.register("after-call.dynamodb", self._after, unique_id="bench-ledger-after")
        # The time a request spends in moto (and botocore's sending and parsing), to tell it from ours.
        events.register("before-call", self._sent, unique_id="bench-ledger-sent")
        events.register("response-received", self._received, unique_id="bench-ledger-received")

    def _sent(self, context: Item, **_: Any) -> None:
        context["ledger_sent"] = time.perf_counter()

    def _received(self, context: Item, **_: Any) -> None:
        if "ledger_sent" in context:
            self._add(("time", "aws"), time.perf_counter() - context.pop("ledger_sent"))

    def _add(self, key: tuple[str, ...], amount: float) -> None:
        self.counts[key] += amount  # type: ignore[assignment]  # units are fractional

    def _before(self, params: Item, model: Any, context: Item, **_: Any) -> None:
        started = time.perf_counter()
        context["ledger_params"] = params
        context["ledger_writes"] = [(w, self.stored(w.table).size(w.key)) for w in writes_of(model.name, params)]
        self._add(("time", "ledger"), time.perf_counter() - started)

    def _after(self, parsed: Item, model: Any, context: Item, **_: Any) -> None:
        started = time.perf_counter()
        params = context.get("ledger_params", {})
        if model.name == "Scan":
            self._scan(params, parsed)
        elif model.name in ("Query", "BatchGetItem"):
            self._workspace_read(model.name, params, parsed)
        writes = context.get("ledger_writes") or []
        if writes:
            self._written(model.name, writes, failed="Error" in parsed)
        self._add(("time", "ledger"), time.perf_counter() - started)

    def _scan(self, params: Item, parsed: Item) -> None:
        share = (int(params["Segment"]), int(params["TotalSegments"])) if "TotalSegments" in params else None
        start = _key_of(params["ExclusiveStartKey"]) if "ExclusiveStartKey" in params else None
        last = _key_of(parsed["LastEvaluatedKey"]) if "LastEvaluatedKey" in parsed else None
        scanned = self.stored(params["TableName"]).scanned(share, start, last)
        units = max(1, math.ceil(scanned / 4096)) * (1.0 if params.get("ConsistentRead") else 0.5)
        self._add(("unit", "rru"), units)
        self._add(("scan", "rru"), units)
        self._add(("scan", "bytes"), scanned)
        self._read(units, scanned)

    def _read(self, units: float, read: int) -> None:
        """What reading the workspace's profiles cost, whichever way (a Scan, or the index and BatchGetItem)."""
        self._add(("read", "rru"), units)
        self._add(("read", "bytes"), read)
        self._add(("read", "requests"), 1)

    def _workspace_read(self, operation: str, params: Item, parsed: Item) -> None:
        """The index's Queries and the BatchGetItem calls of profiles and their sets, priced as the meter prices
        them (which adds them to the RRU already): a Query by what it returned, a key by its own item."""
        if operation == "Query":
            if params.get("IndexName"):
                read = sum(item_size(i) for i in parsed.get("Items", []))
                self._read(read_units(read, bool(params.get("ConsistentRead"))), read)
            return
        for table_name, request in params["RequestItems"].items():
            if not all(k["sk"]["S"] in (keys.PROFILE_SK, keys.PROFILE_SEGMENTS_SK) for k in request["Keys"]):
                return
            returned = {_key_of(i): item_size(i) for i in parsed.get("Responses", {}).get(table_name, [])}
            unprocessed = parsed.get("UnprocessedKeys", {}).get(table_name, {}).get("Keys", [])
            wanted = [_key_of(k) for k in request["Keys"] if k not in unprocessed]
            self._read(sum(read_units(returned.get(k, 0), bool(request.get("ConsistentRead"))) for k in wanted),
                       sum(returned.values()))

    def _written(self, operation: str, writes: list[tuple[Write, int]], failed: bool) -> None:
        factor = 2 if operation == "TransactWriteItems" else 1
        for write, before in writes:
            self.stored(write.table).forget(write.key)
            after = write.written if write.action == "Put" else 0 if write.action == "Delete" \
                else self.stored(write.table).size(write.key)
            units = factor * max(1, math.ceil(max(before, before if failed else after) / KB))
            self._add(("sized", write.kind), units)
            # What ingest_path's meter counts for the same write: a Put by its item, anything else by its key.
            self._add(("meter", write.kind), factor * max(1, math.ceil(
                (write.written if write.action == "Put" else 4 + len(write.key[0]) + len(write.key[1])) / KB)))
            self._add(("unit", "wru_sized"), units)
            if write.kind == MEMBER:
                self._add(("moves", write.key[0].removesuffix("#MEMBERS")), 1)
            if operation == "BatchWriteItem":  # the meter's rules: a put by its item, a delete as 1
                self._add(("unit", "wru"), max(1, math.ceil(write.written / KB)) if write.action == "Put" else 1)
        sets = [w.key for w, _ in writes if w.kind == HELD]  # one set written per profile moved
        if sets and not failed:
            self.profiles_moved += [pk.removeprefix(keys.profile_prefix(WORKSPACE)) for pk, _ in sets]
            self._add(("moved", "profiles"), len(sets))
            self._add(("moved", "segments"), sum(1 for w, _ in writes if w.kind == MEMBER))


# --- The workspace: synthetic profiles with their timelines, nine custom segments ------------------------------


def _timeline(profile: Profile, orders: Sequence[datetime], events: Sequence[tuple[str, datetime]],
              fixed: int | None) -> list[TimelineEntry]:
    """What apply_event would have left on the profile's timeline: an entry per order and per event."""
    entries = [TimelineEntry(
        workspace_id=WORKSPACE, profile_id=profile.profile_id, store_id="store-1", occurred_at=at, type="order",
        ref=f"store-1:{profile.profile_id}-{i}", summary={
            "number": f"#{1001 + i}", "currency": "USD", "total": "84.20", "net": "84.20", "counted": True,
            "version": at.isoformat(), "items": 2, "channel": "email"}) for i, at in enumerate(orders)]
    entries += [TimelineEntry(
        workspace_id=WORKSPACE, profile_id=profile.profile_id, store_id="store-1", occurred_at=at, type=kind,
        ref=f"evt-{profile.profile_id}-{i}", summary={
            "url": "https://shop.example.com/products/mug-classic", "products": ["Mugs item 0"], "channel": "search"})
        for i, (kind, at) in enumerate(events)]
    if fixed is None:
        return entries
    while 0 < len(entries) < fixed:
        entries += [e.model_copy(update={"ref": f"{e.ref}-{len(entries)}"}) for e in entries[:fixed - len(entries)]]
    if not entries and fixed:
        at = profile.created_at
        entries = [TimelineEntry(workspace_id=WORKSPACE, profile_id=profile.profile_id, store_id="store-1",
                                 occurred_at=at, type="page_viewed", ref=f"evt-{profile.profile_id}-{i}",
                                 summary={"url": "https://shop.example.com/"}) for i in range(fixed)]
    return entries[:fixed]


def batch_write(table_name: str, items: Iterable[Item]) -> None:
    """The bench's own writes (set-up, and the profile changes the upsert would make), put straight into moto's
    table: no request, so nothing metered, and none of the HTTP round trip that was a sixth of this script's time.
    moto's table keeps them as a PutItem would (the stream and the indexes included)."""
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    for item in items:
        backend.put_item(table_name, item)


@dataclass
class Workspace:
    profiles: dict[str, Profile]
    timeline_items: int
    segment_ids: list[str]


def _profile_item(profile: Profile) -> Item:
    """The profile as DynamoProfileRepository.commit writes it (packed, with the workspace index's attributes)."""
    return DynamoProfileRepository("table")._profile_item(profile.workspace_id, profile)


def populate(table_name: str, n: int, timeline: int | None, workspace_id: str = WORKSPACE) -> Workspace:
    profiles: dict[str, Profile] = {}
    entries = 0

    def items() -> Iterator[Item]:
        nonlocal entries
        for shoppers in chunks(n):
            for shopper in shoppers:
                profile = shopper.profile.model_copy(update={"workspace_id": workspace_id})
                profiles[profile.profile_id] = profile
                yield _profile_item(profile)
                for entry in _timeline(profile, shopper.orders, shopper.events, timeline):
                    entries += 1
                    entry = entry.model_copy(update={"workspace_id": workspace_id})
                    yield to_item(keys.timeline(workspace_id, profile.profile_id, entry.sort_key), "timeline", entry)

    batch_write(table_name, items())
    return Workspace(profiles, entries, [])


def create_segments(store: DynamoSegmentStore) -> list[str]:
    """bench/segments.py's nine rules as custom segments, saved as the API saves them (a month ago)."""
    ids = []
    for rule in RULES:
        record = SegmentRecord(workspace_id=WORKSPACE, segment_id=f"seg_{rule.name}", name=rule.name,
                               definition=json.dumps({"name": rule.name, "definition": rule.document}),
                               created_at=NOW - timedelta(days=30), updated_at=NOW - timedelta(days=30))
        store.put(record, None)
        ids.append(record.segment_id)
    return ids


PURCHASES = (("Mugs item 0", "Mugs"), ("Tea item 2", "Tea"), ("Espresso Cup", "Kitchen"), ("Books item 5", "Books"))
# One profile write of the reference store's month, by what caused it (profile_events' MONTHLY_MIX).
ORDER, AMENDMENT, VIEW, CHECKOUT, CONTACT = "order", "amendment", "view", "checkout", "contact"
WRITE_MIX = {
    ORDER: MONTHLY_MIX[ORDER_NEW] + MONTHLY_MIX[ORDER_RETURNING],
    AMENDMENT: MONTHLY_MIX[ORDER_UPDATED] + MONTHLY_MIX[CANCELLATION] + MONTHLY_MIX[REFUND] + MONTHLY_MIX[REMOVED],
    VIEW: MONTHLY_MIX[PRODUCT_VIEW],
    CHECKOUT: MONTHLY_MIX[CHECKOUT_STARTED],
    CONTACT: MONTHLY_MIX[IDENTIFY] + MONTHLY_MIX[CUSTOMER],
}


def _order(profile: Profile, rng: random.Random, at: datetime) -> dict[str, Any]:
    product, category = rng.choice(PURCHASES)
    return {"orders_count": profile.orders_count + 1,
            "total_spent": profile.total_spent + Decimal(int(rng.lognormvariate(8.3, 0.7))) / 100,
            "first_order_at": profile.first_order_at or at, "last_order_at": at,
            "products": {**profile.products, product: profile.products.get(product, 0) + 1},
            "categories": {**profile.categories, category: profile.categories.get(category, 0) + 1}}


def _activity(profile: Profile, kind: str, at: datetime) -> dict[str, Any]:
    counts = {**profile.activity_counts, kind: profile.activity_counts.get(kind, 0) + 1}
    latest = Activity(at=at, event_id=f"evt-{profile.profile_id}-{int(at.timestamp())}", type=kind,
                      url="https://shop.example.com/products/mug-classic")
    return {"activity_counts": counts, "last_checkout" if kind == "checkout_started" else "last_browse": latest}


def changed(profile: Profile, rng: random.Random, at: datetime) -> Profile:
    """The profile after one write of the reference mix: an order; an update, refund or cancellation of one
    (its net spend moves); a product view; a checkout; a contact or account change (nothing segments read)."""
    cause = rng.choices(tuple(WRITE_MIX), tuple(WRITE_MIX.values()))[0]
    update: dict[str, Any] = {}
    if cause == ORDER:
        update = _order(profile, rng, at)
    elif cause == AMENDMENT and profile.orders_count:
        refunded = (profile.total_spent * Decimal("0.1")).quantize(Decimal("0.01"))
        update = {"total_spent": profile.total_spent - refunded, "total_refunded": profile.total_refunded + refunded}
    elif cause in (VIEW, CHECKOUT):
        update = _activity(profile, "product_viewed" if cause == VIEW else "checkout_started", at)
    return profile.model_copy(update={**update, "last_seen_at": at, "updated_at": at, "revision": profile.revision + 1})


def change_profiles(table_name: str, workspace: Workspace, profile_ids: Sequence[str], rng: random.Random,
                    at: datetime) -> list[ProfileChange]:
    """Change these profiles in the table (unmetered: the profile upsert is ingest_path's to measure); each
    change as the stream carries it, the profile before and after."""
    changes = [ProfileChange(workspace.profiles[pid], changed(workspace.profiles[pid], rng, at + timedelta(seconds=i)))
               for i, pid in enumerate(profile_ids)]
    for change in changes:
        workspace.profiles[change.after.profile_id] = change.after
    batch_write(table_name, (_profile_item(c.after) for c in changes))
    return changes


# --- Runs and refreshes, measured ------------------------------------------------------------------------------


class InProcessQueue:
    """The segment-tasks queue, carried out in this process one task at a time (as tests/fakes.py's
    FakeTaskQueue.drain does): each task is what one SegmentTasksFunction invocation does with one message."""

    def __init__(self) -> None:
        self.tasks: list[RunTask | HourlyTask] = []

    def send(self, tasks: Sequence[RunTask | HourlyTask], delay_seconds: int = 0) -> None:
        self.tasks.extend(tasks)

    def drain(self, store: DynamoSegmentStore, segment_runs: DynamoSegmentRuns, clock: Callable[[], datetime]) -> int:
        """Carry out every queued task (and those they queue); how many there were."""
        done = 0
        while self.tasks:
            task = self.tasks.pop(0)
            if isinstance(task, HourlyTask):
                runs.run_hour(task, store, segment_runs, clock, self)
            else:
                runs.carry_out(task, store, segment_runs, self, clock)
            done += 1
        return done


@dataclass
class Measured:
    label: str
    counts: Counts
    seconds: float
    profiles: int  # profiles evaluated
    entered: int = 0
    exited: int = 0
    moved: list[str] = field(default_factory=list)  # profiles whose set of segments was written
    tasks: int = 0  # Lambda invocations: a run's tasks, the refresh's batches
    run: SegmentRun | None = None
    skipped: int = 0  # refreshed writes whose images agree on what every rule reads (crm.segments.inputs)
    check_seconds: float = 0.0  # CPU time of that comparison over every refreshed write
    evaluation_seconds: float = 0.0  # CPU time of the evaluation it saves (both images' memberships and boundary)

    def get(self, *key: str) -> float:
        return self.counts.get(key, 0.0)

    @property
    def changes(self) -> int:
        return self.entered + self.exited

    def sized(self, kinds: Iterable[str]) -> float:
        return sum(self.get("sized", kind) for kind in kinds)

    @property
    def own_seconds(self) -> float:
        """Wall time less the time spent in moto (and in this bench's own metering)."""
        return max(0.0, self.seconds - self.get("time", "aws") - self.get("time", "ledger"))

    @property
    def lambda_seconds(self) -> float:
        """What a Lambda would spend: our own time, and each request's round trip to AWS (assumed, not measured)."""
        return self.own_seconds + sum(v * AWS_SECONDS.get(k[2], AWS_SECONDS_DEFAULT) for k, v in self.counts.items()
                                      if k[0] == "req")


@dataclass
class Rig:
    """The stack provisioned, its meter and ledger, and the adapters under test."""

    bench: Bench
    ledger: Ledger
    store: DynamoSegmentStore
    segment_runs: DynamoSegmentRuns
    queue: InProcessQueue = field(default_factory=InProcessQueue)

    @property
    def table_name(self) -> str:
        return self.store.table


def measure_run(rig: Rig, label: str, now: datetime, shares: int, profiles: int) -> Measured:
    """One recomputation run from its start (as the schedule starts it) until its last share finishes."""
    meter = rig.bench.meter
    rig.ledger.profiles_moved = []
    mark, started = meter.mark(), time.perf_counter()
    run = runs.start_run(rig.segment_runs, rig.queue, WORKSPACE, now, shares, "bench")
    done = rig.queue.drain(rig.store, rig.segment_runs, lambda: now)
    seconds, counts = time.perf_counter() - started, meter.since(mark)
    final = rig.segment_runs.get(WORKSPACE, run.run_id)
    return Measured(label, counts, seconds, profiles, final.entered if final else 0, final.exited if final else 0,
                    list(rig.ledger.profiles_moved), done, final)


Refresher = Callable[[DynamoSegmentStore, DynamoSegmentRuns, Sequence[ProfileChange], datetime, runs.RulesCache],
                      runs.Applied]


class SizedSegmentStore(DynamoSegmentStore):
    """BASELINE (bench only): membership changes as at 00847b9, before this lane: the profile's set, each
    member item and each segment's size (an atomic ADD) in one transaction, so every item is billed twice and
    the size moves with every change."""

    def apply_membership(self, change: MembershipChange) -> None:
        moves = [(sid, True) for sid in change.entered] + [(sid, False) for sid in change.exited]
        current = set(change.segment_ids - set(change.entered)) | set(change.exited)
        version = change.expected_version
        for start in range(0, len(moves), 49):  # two items a move and the set: within 100
            chunk = moves[start:start + 49]
            for segment_id, entering in chunk:
                (current.add if entering else current.discard)(segment_id)
            held = frozenset(change.segment_ids if start + 49 >= len(moves) else current)
            writes = [self._held_write(change, held, version)]
            for segment_id, entering in chunk:
                writes += [self._member_write(change, segment_id, entering),
                           self._size_write(change, segment_id, 1 if entering else -1)]
            try:
                transact_write(writes, self.backoff)
            except ClientError as error:
                if error.response["Error"]["Code"] == "TransactionCanceledException":
                    raise ConcurrentUpdate(f"the segments of {change.profile_id} changed meanwhile") from None
                raise
            version += 1

    def _held_write(self, change: MembershipChange, segment_ids: frozenset[str], expected: int) -> dict[str, Any]:
        item = {**keys.profile_segments(change.workspace_id, change.profile_id), "entity": "profile_segments",
                "workspace_id": change.workspace_id, "profile_id": change.profile_id,
                "segment_ids": sorted(segment_ids), "version": expected + 1, "revision": change.revision,
                "updated_at": change.at.isoformat()}
        put: dict[str, Any] = {"TableName": self.table, "Item": plain_item(item)}
        if expected == 0:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put.update(ConditionExpression="#version = :expected", ExpressionAttributeNames={"#version": "version"},
                       ExpressionAttributeValues={":expected": {"N": str(expected)}})
        return {"Put": put}

    def _member_write(self, change: MembershipChange, segment_id: str, entering: bool) -> dict[str, Any]:
        key = keys.segment_member(change.workspace_id, segment_id, change.profile_id)
        if not entering:
            return {"Delete": {"TableName": self.table, "Key": wire_key(key)}}
        return {"Put": {"TableName": self.table, "Item": plain_item({
            **key, "entity": "segment_member", "workspace_id": change.workspace_id, "segment_id": segment_id,
            "profile_id": change.profile_id, "entered_at": change.at.isoformat()})}}

    def _size_write(self, change: MembershipChange, segment_id: str, delta: int) -> dict[str, Any]:
        update: dict[str, Any] = {
            "TableName": self.table, "Key": wire_key(keys.segment_size(change.workspace_id, segment_id)),
            "UpdateExpression": "ADD #size :delta SET #entity = :entity, #created = if_not_exists(#created, :at)",
            "ExpressionAttributeNames": {"#size": "size", "#entity": "entity", "#created": "created_at"},
            "ExpressionAttributeValues": {":delta": {"N": str(delta)}, ":entity": {"S": "segment_size"},
                                          ":at": {"S": change.at.isoformat()}}}
        if not segment_id.startswith(BUILTIN_PREFIX):
            update["ConditionExpression"] = "attribute_exists(pk)"
        return {"Update": update}


def refresh_before(store: DynamoSegmentStore, segment_runs: DynamoSegmentRuns, changes: Sequence[ProfileChange],
                   now: datetime, cache: runs.RulesCache) -> runs.Applied:
    """BASELINE (bench only): the refresh as at 00847b9, writing through SizedSegmentStore."""
    return runs.refresh(SizedSegmentStore(store.table, store.backoff), segment_runs, changes, now, cache)


def measure_visits(rig: Rig, workspace: Workspace, rng: random.Random, start: datetime, visits: int, batch: int,
                   samples: Sequence[tuple[str, Sequence[str], Refresher]],
                   own_rngs: Sequence[random.Random | None] = ()) -> list[Measured]:
    """Each sample's profiles take ``visits`` writes of the mix in turn, WRITES_APART, and each write's records
    are refreshed a second after it (the stream delivers within seconds), by that sample's refresher in a warm
    container of its own. The writes are unmetered and untimed (the upsert is ingest_path's to measure)."""
    meter = rig.bench.meter
    measured = []
    rngs = [*own_rngs, *[None] * (len(samples) - len(own_rngs))]  # a sample added later draws its own writes
    for label, _, _ in samples:
        measured.append(Measured(label, {}, 0.0, 0))
    caches = [runs.RulesCache() for _ in samples]
    for cache in caches:  # the rules are read once a minute, priced apart (measure_rules), not per write
        cache.rules(rig.store, rig.segment_runs, WORKSPACE, start)
    for visit in range(visits):
        written = start + visit * WRITES_APART
        for i, (_, profile_ids, refresher) in enumerate(samples):
            changes = change_profiles(rig.table_name, workspace, profile_ids, rngs[i] or rng, written)
            rig.ledger.profiles_moved = []
            mark, started = meter.mark(), time.perf_counter()
            applied = runs.Applied()
            for first in range(0, len(changes), batch):
                # A second after the sample's last write (each profile's is a second after the one before):
                # earlier, a write still in the future would not count, and its move would fall to a run.
                applied += refresher(rig.store, rig.segment_runs, changes[first:first + batch],
                                     written + timedelta(seconds=len(changes)), caches[i])
            m = measured[i]
            counts, seconds = add(m.counts, meter.since(mark)), m.seconds + time.perf_counter() - started
            skipped, check, evaluation = _add_skips(m, changes, caches[i])  # after the timing: not the refresh's
            measured[i] = Measured(m.label, counts, seconds, m.profiles + len(changes), m.entered + applied.entered,
                                   m.exited + applied.exited, m.moved + list(rig.ledger.profiles_moved),
                                   m.tasks + math.ceil(len(changes) / batch), skipped=skipped, check_seconds=check,
                                   evaluation_seconds=evaluation)
    return measured


def _add_skips(m: Measured, changes: Sequence[ProfileChange], cache: runs.RulesCache) -> tuple[int, float, float]:
    """How many of these writes the refresh decides without evaluating a segment (the rules as its cache holds
    them: no request), the CPU time of deciding so for each, and of the evaluation of both images (memberships
    and next boundary) that each skipped write saves; added to ``m``'s."""
    rules = cache.held[WORKSPACE][1]
    skipped, check, evaluation = m.skipped, m.check_seconds, m.evaluation_seconds
    for c in changes:
        assert c.before is not None
        started = time.process_time()
        skip = moves_nothing(c.before, c.after, rules)
        check += time.process_time() - started
        if skip:
            skipped += 1
            started = time.process_time()
            for image in (c.before, c.after):
                memberships_of(image, rules)
                due(image, rules, rules.context.now)
            evaluation += time.process_time() - started
    return skipped, check, evaluation


def refresh_evaluating_all(store: DynamoSegmentStore, segment_runs: DynamoSegmentRuns,
                           changes: Sequence[ProfileChange], now: datetime, cache: runs.RulesCache) -> runs.Applied:
    """BASELINE (bench only): the refresh before it skipped a write no rule reads (crm.segments.inputs): both
    images of every write evaluated."""
    with patch.object(runs, "moves_nothing", lambda *_: False):
        return runs.refresh(store, segment_runs, changes, now, cache)


def active_sample(workspace: Workspace, candidates: Sequence[str], count: int, rng: random.Random) -> list[str]:
    """``count`` profiles drawn without replacement with weights 1 + their orders and activities: the reference
    month's writes come from the shoppers who browse and buy, not evenly from every profile."""
    def weight(pid: str) -> int:
        p = workspace.profiles[pid]
        return 1 + p.orders_count + sum(p.activity_counts.values())

    keyed = sorted(candidates, key=lambda pid: rng.random() ** (1 / weight(pid)), reverse=True)
    return keyed[:count]


def measure_hourly(rig: Rig, label: str, first: datetime, hours: int = HOURS_MEASURED) -> Measured:
    """``hours`` hourly runs, each as the schedule queues it at ``first`` and every hour after."""
    meter = rig.bench.meter
    rig.ledger.profiles_moved = []
    mark, started = meter.mark(), time.perf_counter()
    applied, tasks = runs.Applied(), 0
    for hour in range(hours):
        at = first + hour * HOUR
        for task in runs.start_hourly(rig.queue, [WORKSPACE], at):
            rig.queue.tasks.remove(task)
            applied += runs.run_hour(task, rig.store, rig.segment_runs, lambda at=at: at,  # type: ignore[misc]
                                     rig.queue)
            tasks += 1
    seconds, counts = time.perf_counter() - started, meter.since(mark)
    return Measured(label, counts, seconds, applied.profiles, applied.entered, applied.exited,
                    list(rig.ledger.profiles_moved), tasks)


def check_hourly(rig: Rig, workspace: Workspace, at: datetime, left_out: set[str]) -> list[str]:
    """After the hourly runs, each profile's time-relative memberships are those it has at ``at`` (with the
    last run's statistics), unless its next boundary falls in the hour ``at`` is in (the next run's)."""
    rules = runs.load_rules(rig.store, WORKSPACE, at, runs.current_population(rig.segment_runs, WORKSPACE))
    timed = timed_segments(rules)
    problems = []
    for (profile, held) in rig.store.profiles_by_id(WORKSPACE, sorted(workspace.profiles)):
        pending = next_change(profile, rules, hour_of(at))
        if profile.profile_id in left_out or (pending is not None and pending <= at):
            continue
        expected = memberships_of(profile, rules) & timed
        if held.segment_ids & timed != expected:
            problems.append(f"hourly: {profile.profile_id} is in {sorted(held.segment_ids & timed)} of the "
                            f"time-relative segments, not {sorted(expected)}")
    return problems[:5]


def measure_rules(rig: Rig, now: datetime) -> Counts:
    """What every refresh invocation reads before its first profile: the population and every segment."""
    mark = rig.bench.meter.mark()
    runs.load_rules(rig.store, WORKSPACE, now, runs.current_population(rig.segment_runs, WORKSPACE))
    return rig.bench.meter.since(mark)


def measure_rules_before(rig: Rig, now: datetime) -> Counts:
    """BASELINE: the rules as loaded before they read the custom records alone (every segment's record and size
    item, the built-ins' too), on the same table in the same run."""
    mark = rig.bench.meter.mark()
    context = SegmentContext(now=now, settings=rig.store.settings(WORKSPACE),
                             population=runs.current_population(rig.segment_runs, WORKSPACE))
    rules_for(rig.store.list_segments(WORKSPACE), context)
    return rig.bench.meter.since(mark)


# --- BASELINE (written here only to be measured against) --------------------------------------------------------


class RewriteAll:
    """BASELINE: a recompute that rewrites every membership each run, the way a batch job over a table of
    member rows usually does. It reads the profiles as ours does (counted from ours' run rather than
    repeated) and decides with the same ``memberships_of``; then, per segment, it Queries the
    member items, deletes them all and puts every member again (BatchWriteItem, 25 a request), and sets the
    segment's size (UpdateItem). Its member items are ours' (same keys and attributes), in a table of its own."""

    def __init__(self, table_name: str) -> None:
        self.table = table_name

    def run(self, rig: Rig, profiles: Iterable[Profile], run: SegmentRun) -> dict[str, int]:
        rules = runs.load_rules(rig.store, WORKSPACE, run.now, runs.population_of(run.population))
        members: dict[str, list[str]] = {sid: [] for sid in sorted(rules.segment_ids)}
        for profile in profiles:
            for segment_id in memberships_of(profile, rules):
                members[segment_id].append(profile.profile_id)
        dynamodb = clients.client("dynamodb")  # metered
        for segment_id, profile_ids in members.items():
            pk = keys.segment_members_pk(WORKSPACE, segment_id)
            old = [{"DeleteRequest": {"Key": {"pk": {"S": pk}, "sk": {"S": sk}}}} for sk in self._members(pk)]
            new = [{"PutRequest": {"Item": {
                "pk": {"S": pk}, "sk": {"S": pid}, "entity": {"S": "segment_member"}, "workspace_id": {"S": WORKSPACE},
                "segment_id": {"S": segment_id}, "profile_id": {"S": pid}, "entered_at": {"S": run.now.isoformat()}}}}
                for pid in profile_ids]
            for requests in (old, new):  # one batch may not delete and put the same key
                for start in range(0, len(requests), 25):
                    pending: dict[str, Any] = {self.table: requests[start:start + 25]}
                    while pending:
                        pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            dynamodb.update_item(TableName=self.table, Key={"pk": {"S": f"WS#{WORKSPACE}#SEGMENT#{segment_id}"},
                                                            "sk": {"S": "SIZE"}},
                                 UpdateExpression="SET #size = :size", ExpressionAttributeNames={"#size": "size"},
                                 ExpressionAttributeValues={":size": {"N": str(len(profile_ids))}})
        return {sid: len(pids) for sid, pids in members.items()}

    def _members(self, pk: str) -> Iterator[str]:
        request: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": "pk = :pk",
                                   "ExpressionAttributeValues": {":pk": {"S": pk}}}
        while True:
            answer = clients.client("dynamodb").query(**request)
            yield from (str(item["sk"]["S"]) for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def measure_baseline(rig: Rig, baseline: RewriteAll, label: str, profiles: Iterable[Profile],
                     ours: Measured) -> tuple[Measured, dict[str, int]]:
    assert ours.run is not None
    meter = rig.bench.meter
    mark, started = meter.mark(), time.perf_counter()
    sizes = baseline.run(rig, profiles, ours.run)
    seconds, counts = time.perf_counter() - started, meter.since(mark)
    reads: Counts = {k: v for k, v in ours.counts.items() if k[0] in ("read", "scan")}
    counts = add(counts, reads, {("unit", "rru"): ours.get("read", "rru"),
                                 ("req", "dynamodb", "workspace reads"): ours.get("read", "requests")})
    return Measured(label, counts, seconds, ours.profiles), sizes


class ScanningSegmentStore(DynamoSegmentStore):
    """BASELINE (bench only): how runs and previews read a workspace before the workspace index, a share of a
    parallel Scan of the whole table filtered to the workspace's profiles and their sets. Every item of the
    table is read (and billed) by some share, whatever its workspace or entity, then filtered out."""

    def profiles_with_segments(self, workspace_id: str, share: int = 0,
                               shares: int = 1) -> Iterator[tuple[Profile, HeldSegments]]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "begins_with(pk, :prefix) AND (sk = :profile OR sk = :segments)",
            "ExpressionAttributeValues": {":prefix": {"S": keys.profile_prefix(workspace_id)},
                                          ":profile": {"S": keys.PROFILE_SK},
                                          ":segments": {"S": keys.PROFILE_SEGMENTS_SK}},
        }
        if shares > 1:
            request.update(Segment=share, TotalSegments=shares)
        partition: list[Item] = []
        while True:
            answer = clients.client("dynamodb").scan(**request)
            for item in answer.get("Items", []):
                if partition and partition[0]["pk"] != item["pk"]:
                    yield from _profile_with_segments(partition)
                    partition = []
                partition.append(item)
            if "LastEvaluatedKey" not in answer:
                break
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        yield from _profile_with_segments(partition)


class SketchReadBefore(DynamoSegmentStore):
    """BASELINE (bench only): a run before it kept the sketch's read for its evaluation (S3 work files): the
    sketch read each share's profiles alone (the evaluation then read them again with their sets)."""

    def profiles_with_segments(self, workspace_id: str, share: int = 0,
                               shares: int = 1) -> Iterator[tuple[Profile, HeldSegments]]:
        partitions = profile_partitions(self.table, workspace_id, share, shares)
        for partition in partition_items(self.table, partitions, (keys.PROFILE_SK,), self.backoff):
            yield Profile.model_validate(from_item(partition[0])), HeldSegments()


def measure_read(rig: Rig, store: DynamoSegmentStore, label: str, shares: int) -> Measured:
    """One pass over the workspace's profiles and their sets, every share, as each phase of a run reads them."""
    meter = rig.bench.meter
    mark, started = meter.mark(), time.perf_counter()
    profiles = sum(1 for share in range(shares) for _ in store.profiles_with_segments(WORKSPACE, share, shares))
    return Measured(label, meter.since(mark), time.perf_counter() - started, profiles)


# --- Checks ---------------------------------------------------------------------------------------------------


def check_state(rig: Rig, segment_ids: Iterable[str], label: str, sizes: bool = False) -> list[str]:
    """The profiles' sets hold as many memberships as the member items; after a run (``sizes``), each
    segment's size also equals its member items (between runs sizes stay the last run's count)."""
    stored = rig.ledger.stored(rig.table_name)
    problems, members = [], 0
    for segment_id in sorted(segment_ids):
        record = stored.table.items.get(DynamoType({"S": keys.segment(WORKSPACE, segment_id)["pk"]}), {}).get(
            DynamoType({"S": keys.segment_size(WORKSPACE, segment_id)["sk"]}))
        size = int(record.attrs["size"].value) if record is not None and "size" in record.attrs else 0
        count = stored.members(WORKSPACE, segment_id)
        members += count
        if sizes and size != count:
            problems.append(f"{label}: {segment_id} has size {size} but {count} member items")
    held = sum(len(item.attrs["segment_ids"].value) for key, item in stored.items()
               if key[1] == keys.PROFILE_SEGMENTS_SK and "segment_ids" in item.attrs)
    if held != members:
        problems.append(f"{label}: the profiles' sets hold {held} memberships, the member items are {members}")
    return problems


def check_run(measured: Measured, shares: int) -> list[str]:
    run = measured.run
    if run is None or run.phase is not RunPhase.DONE or run.evaluated != shares or run.profiles != measured.profiles:
        state = "missing" if run is None else f"{run.phase.value}, {run.evaluated}/{shares} shares, {run.profiles} " \
                                               "profiles"
        return [f"{measured.label}: run did not finish over every share and profile ({state})"]
    return []


# --- Report ---------------------------------------------------------------------------------------------------


def n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _per(value: float, count: float, digits: int = 2) -> str:
    return f"{value / count:,.{digits}f}" if count else "-"


def _other_dynamodb(m: Measured) -> float:
    return sum(v for k, v in m.counts.items() if k[:2] == ("req", "dynamodb")) \
        - m.get("req", "dynamodb", "Scan") - m.get("req", "dynamodb", "TransactWriteItems")


def print_measured(rows: Sequence[Measured]) -> None:
    header = ["", "profiles moved", "entered", "exited", "requests", "Scan", "TransactWrite", "other DynamoDB", "S3",
              "RRU", "WRU meter", "WRU sized", "wall s", "own s", "Lambda s"]
    print(table(header, [[
        m.label, *((n(len(m.moved)), n(m.entered), n(m.exited)) if m.tasks else ("-", "-", "-")),
        n(requests_in(m.counts)),
        n(m.get("req", "dynamodb", "Scan")),
        n(m.get("req", "dynamodb", "TransactWriteItems")), n(_other_dynamodb(m)),
        n(sum(v for k, v in m.counts.items() if k[:2] == ("req", "s3"))), n(m.get("unit", "rru"), 1),
        n(m.get("unit", "wru")), n(m.get("unit", "wru_sized")), n(m.seconds, 1), n(m.own_seconds, 1),
        n(m.lambda_seconds, 1)] for m in rows]))


def print_breakdown(rows: Sequence[Measured]) -> None:
    """Write units by what they touch, as the meter counts them and as DynamoDB bills them."""
    header = ["WRU by item written", *(f"{m.label}: {how}" for m in rows for how in ("meter", "sized"))]
    lines = [[kind, *(n(m.get(how, kind)) for m in rows for how in ("meter", "sized"))]
             for kind in (*MEMBERSHIP_KINDS, DUE)]
    # The meter's own total, less its membership writes (its plain UpdateItem/DeleteItem rules differ from Puts').
    lines.append([BOOKKEEPING, *(n(m.get("unit", "wru") - sum(m.get("meter", k) for k in (*MEMBERSHIP_KINDS, DUE))
                                   if how == "meter" else m.get("sized", BOOKKEEPING)) for m in rows
                                 for how in ("meter", "sized"))])
    lines.append(["per membership change (entered or exited)", *(
        _per(sum(m.get(how, kind) for kind in MEMBERSHIP_KINDS), m.changes) for m in rows
        for how in ("meter", "sized"))])
    lines.append(["per profile moved", *(
        _per(sum(m.get(how, kind) for kind in MEMBERSHIP_KINDS), len(m.moved)) for m in rows
        for how in ("meter", "sized"))])
    print(table(header, lines))


@dataclass(frozen=True)
class Scaled:
    """A run at ``profiles``, extrapolated linearly from the measured per-profile figures."""

    profiles: int
    items: int
    shares: int
    read_rru: float
    wru_daily: float
    wru_first: float
    wru_baseline: float
    task_seconds_daily: float
    task_seconds_first: float
    s3_requests: float
    transactions_first: float
    read_rru_before: float = 0.0  # BASELINE: a read of the profiles per phase of the run

    @property
    def lambda_daily(self) -> float:
        invocations = 2 * self.shares * PRICES["lambda"][1] / 1e6
        return self.task_seconds_daily * TASK_GB * LAMBDA_GB_SECOND + invocations

    @property
    def sqs(self) -> float:  # per task: a share of a SendMessageBatch, the poller's receive and delete
        return 2 * self.shares * 2.1 * PRICES["sqs"][1] / 1e6

    def daily(self, wru: float) -> float:
        s3 = self.s3_requests / 2 * (PRICES["s3_put"][1] + PRICES["s3_get"][1]) / 1e6
        return (self.read_rru * PRICES["rru"][1] + wru * PRICES["wru"][1]) / 1e6 + self.lambda_daily + self.sqs + s3


def scale(target: int, n_profiles: int, first: Measured, daily: Measured, baseline: Measured,
          items_per_profile: float, read_before: float = 0.0) -> Scaled:
    def per(value: float) -> float:
        return value / n_profiles * target

    def wru(m: Measured) -> float:
        # Membership writes and boundaries filed scale with the profiles; bookkeeping is per run.
        return per(m.sized(MEMBERSHIP_KINDS) + m.get("sized", DUE)) + m.get("sized", BOOKKEEPING)

    items = round(items_per_profile * target)
    s3 = sum(v for k, v in daily.counts.items() if k[:2] == ("req", "s3")) / SHARES
    shares = runs.shares_for(target, ITEMS_PER_SHARE)
    return Scaled(target, items, shares, per(daily.get("read", "rru")), wru(daily), wru(first),
                  per(baseline.get("unit", "wru_sized")), per(daily.lambda_seconds), per(first.lambda_seconds),
                  s3 * shares, per(first.get("req", "dynamodb", "TransactWriteItems")), per(read_before))


def print_scaled(scaled: Sequence[Scaled]) -> None:
    rows = []
    for s in scaled:
        rows.append([f"{s.profiles:,}", f"{s.items:,}", str(s.shares), n(s.read_rru), n(s.wru_daily), n(s.wru_first),
                     n(s.wru_baseline), f"{s.task_seconds_daily / s.shares:,.0f}",
                     f"{s.task_seconds_first / s.shares:,.0f}", n(s.transactions_first / s.shares),
                     f"${s.daily(s.wru_daily):.3f}",
                     f"${s.daily(s.wru_baseline):.3f}"])
    print(table(["profiles", "table items", "shares", "read RRU", "WRU daily", "WRU first run", "WRU baseline",
                 "s/share daily", "s/share first", "transactions/share, first", "$ daily run", "$ baseline run"], rows))
    over = [s for s in scaled if max(s.task_seconds_daily, s.task_seconds_first) / s.shares > LAMBDA_LIMIT_S]
    for s in over:
        print(f"  !! at {s.profiles:,} profiles a share would run longer than Lambda's {LAMBDA_LIMIT_S} s "
              "(SEGMENT_ITEMS_PER_SHARE sets the fan-out)")


@dataclass(frozen=True)
class Refresh:
    rru: float  # per profile write
    wru: float
    seconds: float
    moving: float  # the share of refreshes that changed a membership


@dataclass(frozen=True)
class HourlyDay:
    """A day of hourly runs at ``profiles``: what scales with the profiles filed, and each run's fixed Queries
    of the horizon's hours (HORIZON of them, small or empty partitions)."""

    profiles: int
    rru: float
    wru: float
    seconds: float
    runs: int = HOURLY_RUNS_A_DAY


def hourly_day(m: Measured, idle: Measured, n_profiles: int, target: int) -> HourlyDay:
    """A day of hourly runs at ``target`` profiles: each run's fixed part (``idle``: the rules read, the
    horizon's Queries) as measured, the rest (the profiles filed, read, decided and filed again) scaled."""
    factor = target / n_profiles

    def day(value: Callable[[Measured], float]) -> float:
        fixed = value(idle) * HOURS_MEASURED
        return HOURLY_RUNS_A_DAY / HOURS_MEASURED * (fixed + max(0.0, value(m) - fixed) * factor)

    return HourlyDay(target, day(lambda x: x.get("unit", "rru")), day(lambda x: x.get("unit", "wru_sized")),
                     day(lambda x: x.lambda_seconds))


def refresh_of(m: Measured) -> Refresh:
    """The refresh's figures per profile write."""
    return Refresh(m.get("unit", "rru") / m.profiles, m.get("unit", "wru_sized") / m.profiles,
                   m.lambda_seconds / m.profiles, len(m.moved) / m.profiles)


def refresh_lines(s: Scaled, refresh: Refresh, label: str = "refresh") -> list[tuple[str, float, str]]:
    writes = PROFILE_WRITES * s.profiles / REFERENCE_PROFILES
    invocations = writes / REFRESH_BATCH
    return [
        (f"{label}: DynamoDB RRU", writes * refresh.rru * PRICES["rru"][1] / 1e6,
         f"{writes / 1e6:.2f}M profile writes x {refresh.rru:.2f}"),
        (f"{label}: DynamoDB WRU", writes * refresh.wru * PRICES["wru"][1] / 1e6,
         f"x {refresh.wru:.2f} ({refresh.moving:.0%} move a membership)"),
        (f"{label}: Lambda", invocations * PRICES["lambda"][1] / 1e6
         + writes * refresh.seconds * REFRESH_GB * LAMBDA_GB_SECOND,
         f"{invocations / 1e6:.2f}M invocations, {refresh.seconds * 1000:.0f} ms a profile at "
         f"{REFRESH_GB * 1024:.0f} MB"),
    ]


def monthly(s: Scaled, refresh: Refresh, hourly: HourlyDay, rules_rru: float) -> list[tuple[str, float, str]]:
    days = RUNS_PER_MONTH
    tasks = days * hourly.runs
    minutes = days * 24 * 60
    return [
        ("daily runs: DynamoDB read RRU", RUNS_PER_MONTH * s.read_rru * PRICES["rru"][1] / 1e6,
         f"{RUNS_PER_MONTH} x {n(s.read_rru)}"),
        ("daily runs: DynamoDB WRU", RUNS_PER_MONTH * s.wru_daily * PRICES["wru"][1] / 1e6,
         f"{RUNS_PER_MONTH} x {n(s.wru_daily)} (filing the day's boundaries included)"),
        ("daily runs: Lambda, SQS, S3", RUNS_PER_MONTH * (s.daily(s.wru_daily) - (
            s.read_rru * PRICES["rru"][1] + s.wru_daily * PRICES["wru"][1]) / 1e6),
         f"{2 * s.shares} tasks a run, {s.task_seconds_daily:,.0f} s at {TASK_GB * 1024:.0f} MB"),
        ("hourly runs: DynamoDB RRU", days * hourly.rru * PRICES["rru"][1] / 1e6, f"{days} x {n(hourly.rru)} a day"),
        ("hourly runs: DynamoDB WRU", days * hourly.wru * PRICES["wru"][1] / 1e6, f"{days} x {n(hourly.wru)} a day"),
        ("hourly runs: Lambda, SQS", tasks * PRICES["lambda"][1] / 1e6
         + days * hourly.seconds * TASK_GB * LAMBDA_GB_SECOND + tasks * 3 * PRICES["sqs"][1] / 1e6,
         f"{tasks} tasks, {hourly.seconds:,.0f} s a day at {TASK_GB * 1024:.0f} MB"),
        *refresh_lines(s, refresh),
        # Not "refresh: ..." (bench/cost.py prices the refresh from refresh_per_write and skips those lines).
        ("rules read by the refresh: DynamoDB RRU", minutes * rules_rru * PRICES["rru"][1] / 1e6,
         f"once a minute by a warm container: {n(rules_rru, 1)} RRU"),
    ]


def print_monthly(scaled: Sequence[Scaled], refresh: Refresh, hourly: Sequence[HourlyDay], rules_rru: float,
                  baseline_daily: Sequence[float], refresh_baseline: Refresh | None,
                  refresh_unskipped: Refresh | None = None) -> None:
    costs = [monthly(s, refresh, h, rules_rru) for s, h in zip(scaled, hourly, strict=True)]
    rows = [[name, *(f"${c[i][1]:.2f}" for c in costs), costs[0][i][2]] for i, (name, _, _) in enumerate(costs[0])]
    rows.append(["total", *(f"${sum(d for _, d, _ in c):.2f}" for c in costs), ""])
    rows.append(["daily runs' read RRU before (a read per phase)", *(
        f"${RUNS_PER_MONTH * s.read_rru_before * PRICES['rru'][1] / 1e6:.2f}" for s in scaled),
        f"{RUNS_PER_MONTH} x {n(scaled[0].read_rru_before)}"])
    rows.append(["baseline's daily runs instead (rewrite all)", *(
        f"${RUNS_PER_MONTH * b:.2f}" for b in baseline_daily), "its refresh not counted"])
    if refresh_baseline is not None:
        before = [refresh_lines(s, refresh_baseline, "refresh (00847b9)") for s in scaled]
        rows += [[name, *(f"${c[i][1]:.2f}" for c in before), before[0][i][2]] for i, (name, _, _) in
                 enumerate(before[0])]
        ours = [sum(d for _, d, _ in refresh_lines(s, refresh)) for s in scaled]
        old = [sum(d for _, d, _ in c) for c in before]
        rows.append(["refresh: ours/before", *(ratio(a, b) for a, b in zip(ours, old, strict=True)), "same run"])
    if refresh_unskipped is not None:
        before = [refresh_lines(s, refresh_unskipped, EVALUATING_ALL) for s in scaled]
        rows += [[name, *(f"${c[i][1]:.2f}" for c in before), before[0][i][2]] for i, (name, _, _) in
                 enumerate(before[0])]
        # Its sample is other profiles (their moves, so units, differ): the Lambda line alone compares the skip.
        ours = [refresh_lines(s, refresh)[2][1] for s in scaled]
        old = [c[2][1] for c in before]
        rows.append([f"refresh Lambda: ours/{EVALUATING_ALL}", *(ratio(a, b) for a, b in zip(ours, old, strict=True)),
                     "same run, other profiles"])
    print(table(["$/month", *(f"{s.profiles:,} profiles" for s in scaled), f"how ({scaled[0].profiles:,})"], rows))


# --- The bench ------------------------------------------------------------------------------------------------


@dataclass
class Results:
    args: argparse.Namespace
    workspace: Workspace
    first: Measured
    daily: Measured
    quiet: Measured
    refresh: Measured
    baseline_first: Measured
    baseline_daily: Measured
    rules: Counts
    changed: list[str]
    items_before: int
    bytes_before: int
    items_after: int
    problems: list[str]
    reads: list[Measured] = field(default_factory=list)
    refresh_baseline: Measured | None = None
    hourly: Measured | None = None
    hourly_idle: Measured | None = None
    rules_before: Counts = field(default_factory=dict)
    refresh_unskipped: Measured | None = None


def _compare(label: str, baseline: dict[str, int], rig: Rig) -> list[str]:
    stored = rig.ledger.stored(rig.table_name)
    return [f"{label}: {sid} has {count} members in the baseline, {stored.members(WORKSPACE, sid)} in ours"
            for sid, count in baseline.items() if count != stored.members(WORKSPACE, sid)]


def run_bench(rig: Rig, args: argparse.Namespace) -> Results:
    profiles, shares = args.profiles, args.shares
    workspace = populate(rig.table_name, profiles, args.timeline)
    if args.other_profiles:  # another tenant in the same table: the Scan reads it, the index does not
        populate(rig.table_name, args.other_profiles, args.timeline, OTHER_WORKSPACE)
    workspace.segment_ids = sorted(runs.load_rules(rig.store, WORKSPACE, NOW, PopulationStats()).segment_ids
                                   | set(create_segments(rig.store)))
    stored = rig.ledger.stored(rig.table_name)
    items_before, bytes_before = stored.count(), stored.scanned(None, None, None)
    baseline = RewriteAll(rig.bench.baseline.table)
    rng = random.Random(SEED)

    first = measure_run(rig, "run 1", NOW, shares, profiles)
    problems = check_run(first, shares) + check_state(rig, workspace.segment_ids, first.label, sizes=True)
    baseline_first, sizes = measure_baseline(rig, baseline, "baseline 1", workspace.profiles.values(), first)
    problems += _compare(baseline_first.label, sizes, rig)
    # The same read both ways, on the same table: the workspace index (ours) and a Scan (before it).
    reads = [measure_read(rig, rig.store, "index", shares),
             measure_read(rig, ScanningSegmentStore(rig.table_name), "Scan (before)", shares),
             measure_read(rig, SketchReadBefore(rig.table_name), "index, profiles alone", shares)]
    problems += [f"{m.label} read {m.profiles} profiles, not {profiles}" for m in reads if m.profiles != profiles]

    ids = sorted(workspace.profiles)
    chosen = rng.sample(ids, round(profiles * args.churn_percent / 100))
    change_profiles(rig.table_name, workspace, chosen, rng, NOW + timedelta(hours=12))
    day = NOW + timedelta(days=1)
    daily = measure_run(rig, "run 2", day, shares, profiles)
    problems += check_run(daily, shares) + check_state(rig, workspace.segment_ids, daily.label, sizes=True)
    baseline_daily, sizes = measure_baseline(rig, baseline, "baseline 2", workspace.profiles.values(), daily)
    problems += _compare(baseline_daily.label, sizes, rig)

    # At run 2's instant: a minute later a time window may already have moved someone (it did at 5,000 profiles).
    quiet = measure_run(rig, "run 3", day, shares, profiles)
    problems += check_run(quiet, shares) + check_state(rig, workspace.segment_ids, quiet.label, sizes=True)
    if quiet.changes or quiet.sized(MEMBERSHIP_KINDS):
        problems.append(f"run 3 changed nothing but wrote {quiet.changes} memberships "
                        f"({quiet.sized(MEMBERSHIP_KINDS):,.0f} WRU)")

    # Two samples of the same size take one write each: the refresh before (baseline) re-decides one, ours the other.
    at = day + timedelta(hours=2)
    untouched = sorted(set(ids) - set(chosen))
    sampled = active_sample(workspace, untouched, min(2 * args.refreshed, len(untouched)), rng)
    half = len(sampled) // 2
    # The skip's labelled before: a third sample with a generator of its own, so the first two draw as they did.
    own = random.Random(SEED + 1)
    unskipped = active_sample(workspace, sorted(set(untouched) - set(sampled)), half, own)
    rules, rules_before = measure_rules(rig, at), measure_rules_before(rig, at)
    refresh, refresh_baseline, refresh_unskipped = measure_visits(
        rig, workspace, rng, at - timedelta(hours=1), args.visit_writes, args.refresh_batch,
        [("refresh", sampled[half:], runs.refresh), ("refresh (00847b9)", sampled[:half], refresh_before),
         (EVALUATING_ALL, unskipped, refresh_evaluating_all)], [None, None, own])
    problems += check_state(rig, workspace.segment_ids, refresh.label)

    # A day of hourly runs after the refresh (a day's: up to the next daily run, which files the day after).
    first_hour = hour_of(at) + HOUR
    hourly = measure_hourly(rig, "hourly runs", first_hour)
    problems += check_state(rig, workspace.segment_ids, hourly.label)
    problems += check_hourly(rig, workspace, first_hour + (HOURS_MEASURED - 1) * HOUR, set())
    # The next hour's run: what every run costs whatever is filed (the cursor, the rules, the hour's Query),
    # and that hour's few profiles.
    idle = measure_hourly(rig, "hourly run, next hour", first_hour + HOURS_MEASURED * HOUR, 1)
    return Results(args, workspace, first, daily, quiet, refresh, baseline_first, baseline_daily, rules, chosen,
                   items_before, bytes_before, stored.count(), problems, reads, refresh_baseline, hourly, idle,
                   rules_before, refresh_unskipped)


def print_report(r: Results, seconds: float) -> None:
    a, profiles = r.args, r.args.profiles
    changed = set(r.changed)
    print(f"\n{profiles:,} profiles ({r.workspace.timeline_items / profiles:.1f} timeline items each), "
          f"{len(r.workspace.segment_ids)} segments ({len(RULES)} custom), {a.shares} shares; table before run 1: "
          f"{r.items_before:,} items, {r.bytes_before / profiles:,.0f} B a profile")
    print(f"run 1 at {NOW:%Y-%m-%d}: every membership is new. Then {len(changed):,} profiles ({a.churn_percent:g} %) "
          "each take one profile write of the reference mix (an order, an order amended, a product view, a checkout")
    print("or a contact change, weighted as profile_events' MONTHLY_MIX; written unmetered); run 2 a day later; run 3 "
          f"at the same instant (nothing changed); then {r.refresh.profiles:,} other profiles")
    print(f"take one such write each and runs.refresh re-decides them, in stream batches of {a.refresh_batch}. "
          "Baseline: rewrite every membership each run (BatchWriteItem).")
    print("\n1. What each run and the refresh did and cost (requests by the meter; RRU includes each Scan's items,")
    print("   filtered out or not; 'WRU sized' bills each written item by its size before and after, as DynamoDB does)")
    print_measured([r.first, r.daily, r.quiet, r.refresh, *([r.refresh_baseline] if r.refresh_baseline else []),
                    *([r.refresh_unskipped] if r.refresh_unskipped else []),
                    *(m for m in (r.hourly, r.hourly_idle) if m), r.baseline_first, r.baseline_daily])
    for m in (r.daily, r.refresh, *([r.hourly] if r.hourly else [])):
        moves = sorted(((v, k[1].removeprefix(f"WS#{WORKSPACE}#SEGMENT#")) for k, v in m.counts.items()
                        if k[0] == "moves"), reverse=True)
        print(f"  {m.label} moved memberships of: " + ", ".join(f"{sid} {v:.0f}" for v, sid in moves))
    print("  run 3 ran at run 2's instant: the segments' growth points were recorded already, so its bookkeeping is "
          "the run's own items")
    moved = set(r.daily.moved)
    print(f"  run 2 moved {len(moved):,} profiles: {len(moved & changed):,} of the {len(changed):,} changed, "
          f"{len(moved - changed):,} unchanged ones that time moved (windows, days since, quintiles); "
          f"{_per(r.daily.get('unit', 'wru_sized'), len(changed))} WRU sized a changed profile, "
          f"{_per(r.daily.sized(MEMBERSHIP_KINDS), len(changed))} without the run's bookkeeping")
    fresh, rules_rru = r.refresh, r.rules.get(("unit", "rru"), 0.0)
    print(f"  refresh: {fresh.profiles:,} profiles, {len(fresh.moved):,} moved; per profile "
          f"{_per(requests_in(fresh.counts), fresh.profiles)} requests, "
          f"{_per(fresh.get('unit', 'rru'), fresh.profiles)} RRU, "
          f"{_per(fresh.get('unit', 'wru_sized'), fresh.profiles)} WRU sized; "
          "loading the rules (once a minute per warm container): "
          f"{requests_in(r.rules):.0f} requests, {rules_rru:.1f} RRU (before, every record and size item: "
          f"{requests_in(r.rules_before):.0f} requests, {r.rules_before.get(('unit', 'rru'), 0.0):.1f} RRU)")
    print(f"  refresh: {fresh.skipped:,} of {fresh.profiles:,} writes "
          f"({_per(100 * fresh.skipped, fresh.profiles, 0)} %) changed nothing any rule, built-in or time boundary "
          f"reads and were decided without evaluating a segment ('{EVALUATING_ALL}' evaluates them all); "
          f"CPU: the comparison {_per(1e6 * fresh.check_seconds, fresh.profiles, 0)} us a write, the evaluation a "
          f"skipped write saves {_per(1e6 * fresh.evaluation_seconds, fresh.skipped, 0)} us; net "
          f"{_per(1e6 * (fresh.evaluation_seconds - fresh.check_seconds), fresh.profiles, 0)} us saved a write")
    for extra in (r.refresh_baseline, r.refresh_unskipped, r.hourly):
        if extra is not None:
            m = extra
            print(f"  {m.label}: {m.profiles:,} profiles evaluated, {len(m.moved):,} moved; per profile "
                  f"{_per(requests_in(m.counts), m.profiles)} requests, {_per(m.get('unit', 'rru'), m.profiles)} RRU, "
                  f"{_per(m.get('unit', 'wru_sized'), m.profiles)} WRU sized ({m.tasks} invocations)")
    print(f"  refresh per membership change: {_per(requests_in(fresh.counts), fresh.changes)} requests, "
          f"{_per(fresh.get('unit', 'rru'), fresh.changes)} RRU, {_per(fresh.get('unit', 'wru_sized'), fresh.changes)} "
          "WRU sized")
    for label, ours, base in (("run 1", r.first, r.baseline_first), ("run 2", r.daily, r.baseline_daily)):
        wru = ratio(ours.get("unit", "wru_sized"), base.get("unit", "wru_sized"))
        print(f"  ours/baseline, {label}: WRU sized {wru}, "
              f"requests {ratio(requests_in(ours.counts), requests_in(base.counts))}, "
              f"RRU {ratio(ours.get('unit', 'rru'), base.get('unit', 'rru'))}")
    print_reads(r)
    print("\n2. Write units by the item written, per membership change and per profile moved")
    print_breakdown([r.first, r.daily, r.refresh, *([r.hourly] if r.hourly else [])])
    print_extrapolation(r)
    print(f"\n(segment runs bench ran in {seconds:.0f} s)")


def print_reads(r: Results) -> None:
    other = f" beside {r.args.other_profiles:,} profiles of another workspace" if r.args.other_profiles else ""
    print(f"\n1b. Reading the workspace's profiles and their sets once (each phase of a run does; all {r.args.shares} "
          f"shares), table of {r.items_before:,} items{other}: the workspace index (ours) and the Scan it replaced")
    rows = [[m.label, n(m.profiles), n(m.get("read", "requests")), n(m.get("read", "rru"), 1),
             n(m.get("read", "bytes") / KB), _per(m.get("read", "rru"), m.profiles, 3),
             _per(m.get("read", "bytes"), m.profiles, 0)] for m in r.reads]
    print(table(["read by", "profiles", "requests", "RRU", "KB read", "RRU a profile", "B read a profile"], rows))
    print(f"  index/Scan: RRU {ratio(r.reads[0].get('read', 'rru'), r.reads[1].get('read', 'rru'))}, "
          f"bytes read {ratio(r.reads[0].get('read', 'bytes'), r.reads[1].get('read', 'bytes'))}")
    ours, before = r.daily.get("read", "rru"), run_read_before(r)
    print(f"  a run reads each profile once, with its set, and keeps them in S3 for its evaluation: run 2 read "
          f"{_per(ours, r.args.profiles, 3)} RRU a profile; before (labelled): the sketch read the profiles alone "
          f"and the evaluation again with their sets, {_per(before, r.args.profiles, 3)} (the two reads above); "
          f"ours/before {ratio(ours, before)}")


def run_read_before(r: Results) -> float:
    """BASELINE: what a run read when each phase read the profiles (index rows 'profiles alone' and 'index')."""
    return r.reads[0].get("read", "rru") + r.reads[2].get("read", "rru")


def print_extrapolation(r: Results) -> None:
    profiles = r.args.profiles
    scaled = [scale(t, profiles, r.first, r.daily, r.baseline_daily, r.items_after / profiles, run_read_before(r))
              for t in TARGETS]
    print(f"\n3. Extrapolated linearly from these {profiles:,} profiles ({r.items_after / profiles:.1f} table items a "
          f"profile after the runs; shares = crm.segments.runs.shares_for(items, {ITEMS_PER_SHARE:,})). Lambda")
    print(f"   seconds: our own time here + {AWS_SECONDS_DEFAULT * 1000:.0f} ms a request, "
          f"{AWS_SECONDS['Scan'] * 1000:.0f} ms a Scan page (assumed); s/share: a share's sketch + evaluate tasks")
    print_scaled(scaled)
    assert r.hourly is not None and r.hourly_idle is not None
    hourly = [hourly_day(r.hourly, r.hourly_idle, profiles, t) for t in TARGETS]
    print("\n4. Monthly: a daily run at run 2's churn (it counts again the changes the refresh already made: an upper "
          "bound), 24 hourly runs a day")
    print(f"   (measured: {HOURS_MEASURED}) and the refresh for every profile write: {PROFILE_WRITES:,} a month at "
          "the reference store (profile_events' MONTHLY_MIX less")
    print("   duplicates), scaled with profiles; list prices us-east-1. 'refresh (00847b9)': the refresh before this "
          "change, on a sample of as many profiles in the same run")
    print_monthly(scaled, refresh_of(r.refresh), hourly, r.rules.get(("unit", "rru"), 0.0),
                  [s.daily(s.wru_baseline) for s in scaled],
                  refresh_of(r.refresh_baseline) if r.refresh_baseline else None,
                  refresh_of(r.refresh_unskipped) if r.refresh_unskipped else None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profiles", type=int, default=PROFILES)
    parser.add_argument("--shares", type=int, default=SHARES)
    parser.add_argument("--churn-percent", type=float, default=CHURN * 100,
                        help="profiles changed between run 1 and run 2")
    parser.add_argument("--refreshed", type=int, default=REFRESHED, help="profiles changed for runs.refresh")
    parser.add_argument("--refresh-batch", type=int, default=REFRESH_BATCH, help="stream records per invocation")
    parser.add_argument("--visit-writes", type=int, default=VISIT_WRITES,
                        help="profile writes each refreshed profile takes in a row (a visit)")
    parser.add_argument("--other-profiles", type=int, default=0,
                        help="profiles of another workspace in the same table (read by a Scan, not by the index)")
    parser.add_argument("--timeline", type=int, default=None,
                        help="timeline items per profile (default: one per order and event of the shopper)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print("Segment recomputation on moto: crm.segments.runs with DynamoSegmentStore/DynamoSegmentRuns, metered")
    print(f"command: bench/segment_runs.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    fake_aws_environment()
    moto_patches.install()  # moto's own TransactWriteItems deep-copies the table on every call
    SortedTable.install()
    with mock_aws():
        bench = set_up(load_stack(TEMPLATE, region=REGION))
        ledger = Ledger(bench.meter.counts)
        ledger.attach(clients.client("dynamodb"))
        ledger.attach(clients.client("s3"))
        table_name = bench.outputs["TableName"]
        rig = Rig(bench, ledger, DynamoSegmentStore(table_name),
              DynamoSegmentRuns(table_name, bench.outputs["ArchiveBucketName"]))
        results = run_bench(rig, args)
    print_report(results, time.perf_counter() - started)
    for problem in results.problems:
        print(f"!!! {problem}", file=sys.stderr)
    r, measured = results, results.args.profiles
    reference = scale(REFERENCE_PROFILES, measured, r.first, r.daily, r.baseline_daily, r.items_after / measured)
    refreshed = refresh_of(r.refresh)
    assert r.hourly is not None and r.hourly_idle is not None
    hourly = hourly_day(r.hourly, r.hourly_idle, measured, REFERENCE_PROFILES)
    record("segment_runs", {"profiles": REFERENCE_PROFILES, "profile_writes": PROFILE_WRITES,
                            "refresh_batch": results.args.refresh_batch, "refresh_per_write": refreshed,
                            "refresh_per_write_before": refresh_of(r.refresh_baseline) if r.refresh_baseline else None,
                            # What an hourly run's slice handed on reads again (bench/cost.py: on a provisioned
                            # table each run is HOURLY_SLICES of them): the rules and the hour's Query, as the
                            # next hour's run reads them (its cursor's read too, so a little more).
                            "hourly_slice": {"rru": r.hourly_idle.get("unit", "rru"),
                                             "seconds": r.hourly_idle.lambda_seconds},
                            "monthly": [{"component": c, "dollars": d, "how": h}
                                        for c, d, h in monthly(reference, refreshed, hourly,
                                                               r.rules.get(("unit", "rru"), 0.0))],
                            "problems": results.problems})
    return 1 if results.problems else 0


if __name__ == "__main__":
    sys.exit(main())
