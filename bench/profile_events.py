"""`make bench`, part 2: the profile upsert per canonical event type, ours against a baseline in the same run.

A synthetic month of one store (a few hundred shoppers, fixed seed) is applied event by event through the
real ``crm.ingestion.apply_event`` on ``DynamoProfileRepository``, on moto's mock_aws with the stack
provisioned from template.yaml, and then through an "append every event, recompute from history" baseline
written below. Requests and capacity units are metered by ingest_path's botocore handler (one meter for
the whole bench); the domain events the outbox would publish are derived from the table's stream by the
real ``crm.outbox.events_for``. The monthly cost of DESIGN.md's reference store is built from these counts.

Request counts are deterministic and transfer to AWS; times are moto's and only compare the two designs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from crm.adapters import clients, keys
from crm.adapters.items import Item, from_item, plain_item, serializer, to_compact_item, to_item
from crm.adapters.outbox_targets import bus_types
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.throttling import transact_write
from crm.adapters.timeline_items import LINE_FIELDS, LINES_ENTITY
from crm.identity import identities_of
from crm.ingestion import apply_event, apply_events
from crm.models.canonical import (
    ActivityEvent,
    ActivityType,
    CanonicalEvent,
    CustomerRecord,
    OrderRemoved,
    ProductRef,
    RefundRecord,
)
from crm.models.events import FLOW_EVENT_TYPES
from crm.models.orders import CanonicalOrder, LineItem, version_stamp
from crm.models.profile import OrderRecord, Profile, TimelineEntry, new_profile
from crm.models.stores import Platform
from crm.outbox import events_for
from crm.ports import Change, Context, IdentityLink, Reads
from crm.profiles import apply_activity, apply_customer, apply_order_record, profile_id_for
from crm_local import moto_patches
from crm_local.event_shapes import stream_record
from crm_local.template import load_stack
from figures import RESULTS, per, record
from ingest_path import (
    PRICES,
    REGION,
    TEMPLATE,
    Bench,
    Counts,
    add,
    fake_aws_environment,
    fmt,
    harness,
    ratio,
    requests_in,
    set_up,
    table,
)
from moto import mock_aws
from track_batching import Batching, describe
from track_batching import measure as measure_batching

SHOPPERS, ANONYMOUS_BROWSERS, SEED = 300, 150, 11
START = datetime(2026, 3, 1, tzinfo=UTC)

# The event types, in the order they are reported.
ORDER_NEW = "order created (new shopper)"
ORDER_RETURNING = "order created (returning)"
ORDER_UPDATED = "order updated (newer version)"
DUPLICATE = "duplicate order delivery"
REFUND = "refund"
CANCELLATION = "cancellation"
CHECKOUT = "checkout started (email)"
PRODUCT_VIEW = "product viewed (anonymous)"
IDENTIFY = "identify (merges a browser)"
CUSTOMER = "customer update"
REMOVED = "order removed"
KINDS = (ORDER_NEW, ORDER_RETURNING, ORDER_UPDATED, DUPLICATE, REFUND, CANCELLATION, CHECKOUT, PRODUCT_VIEW,
         IDENTIFY, CUSTOMER, REMOVED)

# DESIGN.md's reference store: 100k profiles, 300k orders and 3M storefront events a month, as this mix.
MONTHLY_MIX = {
    ORDER_NEW: 90_000, ORDER_RETURNING: 210_000,  # 300k order creates, 30% by first-time shoppers
    ORDER_UPDATED: 140_000, CANCELLATION: 10_000,  # 150k order updates
    DUPLICATE: 15_000,  # at-least-once webhooks: ~5% of creates delivered twice
    REFUND: 30_000,
    PRODUCT_VIEW: 2_400_000,  # product and page views
    CHECKOUT: 300_000,  # checkouts and carts
    IDENTIFY: 150_000, CUSTOMER: 150_000,  # 300k identifies and customer updates
    REMOVED: 3_000,
}
STOREFRONT = frozenset({PRODUCT_VIEW, CHECKOUT, IDENTIFY})  # arrive by /track; the rest by webhooks
HTTP_API_PRICE = 1.00  # API Gateway HTTP API, per million requests (REST is PRICES["api_gateway"])
FRONT_DOOR_RRU = 0.5  # the store / API key lookup: one eventually consistent GetItem of a small item
DELIVERY_KB = 5  # Firehose bills each archived record in 5 KB increments
COST_TARGET = 15.0  # DESIGN.md: "around $15 a month in infrastructure"

CATALOG = [("Merino crew", "Knitwear", Decimal("89.00")), ("Trail runner", "Shoes", Decimal("129.50")),
           ("Rain shell", "Outerwear", Decimal("210.00")), ("Wool socks", "Accessories", Decimal("14.90")),
           ("Canvas tote", "Accessories", Decimal("24.00")), ("Linen shirt", "Shirts", Decimal("64.00")),
           ("Down vest", "Outerwear", Decimal("149.00")), ("Beanie", "Accessories", Decimal("19.50"))]


# --- The workload ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """One event as it reaches the profiles function, with its type for the report."""

    at: datetime
    kind: str
    event: CanonicalEvent


@dataclass
class Workload:
    arrivals: list[Arrival] = field(default_factory=list)
    # What the shoppers' profiles must hold, computed from the workload alone: email -> (orders, net spent).
    expected: dict[str, tuple[int, Decimal]] = field(default_factory=dict)


@dataclass
class _Shopper:
    index: int
    email: str
    customer_id: str
    first_name: str
    last_name: str


class _Story:
    """Builds one store's traffic: each shopper's orders and what happens to them, browsing, identifies."""

    def __init__(self, seed: int, workspace_id: str, store_id: str) -> None:
        self.rng = random.Random(seed)
        self.workspace_id, self.store_id = workspace_id, store_id
        self.workload = Workload()
        self.sequence = 0

    def add(self, at: datetime, kind: str, event: CanonicalEvent) -> None:
        self.workload.arrivals.append(Arrival(at, kind, event))

    def event_id(self) -> str:
        self.sequence += 1
        return f"evt-{self.sequence:06d}"

    def order(self, shopper: _Shopper, number: int, created: datetime, checkout: str | None) -> CanonicalOrder:
        items = tuple(LineItem(product_id=f"p-{CATALOG.index(product)}", sku=f"SKU-{CATALOG.index(product)}",
                               title=product[0], category=product[1], quantity=self.rng.randint(1, 2),
                               price=product[2])
                      for product in self.rng.sample(CATALOG, self.rng.randint(1, 3)))
        return CanonicalOrder(
            workspace_id=self.workspace_id, store_id=self.store_id, platform=Platform.SHOPIFY,
            order_id=f"{shopper.index}-{number}", order_number=f"#{1000 + shopper.index * 10 + number}",
            email=shopper.email, customer_id=shopper.customer_id, first_name=shopper.first_name,
            last_name=shopper.last_name, currency="USD", total_price=sum((i.price * i.quantity for i in items),
                                                                         Decimal("0.00")),
            financial_status="paid", created_at=created, updated_at=created, version=version_stamp(created, None),
            landing_site="/products/merino-crew?utm_source=newsletter&utm_medium=email" if number else "/",
            line_items=items, checkout_token=checkout, country="US",
        )

    def customer(self, shopper: _Shopper, created: datetime, updated: datetime, tags: tuple[str, ...]) -> None:
        self.add(updated, CUSTOMER, CustomerRecord(
            workspace_id=self.workspace_id, store_id=self.store_id, platform=Platform.SHOPIFY,
            customer_id=shopper.customer_id, email=shopper.email, first_name=shopper.first_name,
            last_name=shopper.last_name, country="US", tags=tags, created_at=created, updated_at=updated,
            version=version_stamp(updated, None)))

    def activity(self, at: datetime, kind: str, type_: ActivityType, **who: Any) -> None:
        product = self.rng.choice(CATALOG)
        self.add(at, kind, ActivityEvent(
            workspace_id=self.workspace_id, store_id=self.store_id, platform=Platform.SHOPIFY,
            event_id=self.event_id(), type=type_, occurred_at=at,
            url=f"https://bench-outfitters.example/products/{product[0].lower().replace(' ', '-')}",
            products=(ProductRef(product_id=f"p-{CATALOG.index(product)}", title=product[0], category=product[1],
                                 price=product[2]),), **who))

    def browse(self, anonymous_id: str, start: datetime, views: int) -> datetime:
        at = start
        for _ in range(views):
            at += timedelta(minutes=self.rng.randint(1, 6))
            self.activity(at, PRODUCT_VIEW, ActivityType.PRODUCT_VIEWED, anonymous_id=anonymous_id)
        return at

    def after_placing(self, order: CanonicalOrder, created: datetime) -> tuple[int, Decimal]:
        """Updates, duplicates, refunds, cancellations and removals of one order; what it finally counts for."""
        rng = self.rng
        if rng.random() < 0.2:
            self.add(created + timedelta(seconds=40), DUPLICATE, order)  # the platform retried the delivery
        fate = rng.random()
        if fate < 0.07:
            cancelled = created + timedelta(hours=2)
            self.add(cancelled, CANCELLATION, order.model_copy(update={
                "cancelled_at": cancelled, "updated_at": cancelled, "financial_status": "voided",
                "version": version_stamp(cancelled, None)}))
            return 0, Decimal("0.00")
        if fate < 0.10:
            self.add(created + timedelta(days=5), REMOVED, OrderRemoved(
                workspace_id=self.workspace_id, store_id=self.store_id, platform=Platform.SHOPIFY,
                order_id=order.order_id, removed_at=created + timedelta(days=5)))
            return 0, Decimal("0.00")
        if rng.random() < 0.55:
            fulfilled = created + timedelta(days=1, minutes=rng.randint(0, 600))
            updated = order.model_copy(update={"fulfillment_status": "fulfilled", "updated_at": fulfilled,
                                               "version": version_stamp(fulfilled, None)})
            self.add(fulfilled, ORDER_UPDATED, updated)
            if rng.random() < 0.1:
                self.add(fulfilled + timedelta(seconds=30), DUPLICATE, updated)
        refunded = Decimal("0.00")
        if rng.random() < 0.12:
            refunded = (order.total_price * Decimal(rng.choice([25, 50, 100])) / 100).quantize(Decimal("0.01"))
            self.add(created + timedelta(days=3), REFUND, RefundRecord(
                workspace_id=self.workspace_id, store_id=self.store_id, platform=Platform.SHOPIFY,
                order_id=order.order_id, refund_id=f"r-{order.order_id}", amount=refunded,
                created_at=created + timedelta(days=3)))
        return 1, order.total_price - refunded

    def shopper(self, shopper: _Shopper) -> None:
        rng = self.rng
        at = START + timedelta(minutes=rng.randrange(0, 10 * 24 * 60))
        orders, spent = 0, Decimal("0.00")
        self.customer(shopper, at - timedelta(minutes=1), at - timedelta(minutes=1), ())
        for number in range(1 + (rng.random() < 0.6) + (rng.random() < 0.3)):
            checkout = None
            if number:
                at += timedelta(days=rng.randint(2, 8), minutes=rng.randint(0, 600))
                if number == 1 and rng.random() < 0.7:
                    # A visit on another device: anonymous until the shopper signs in, which merges the two.
                    anonymous_id = f"anon-{shopper.index:04d}"
                    at = self.browse(anonymous_id, at, rng.randint(2, 5))
                    at += timedelta(minutes=2)
                    self.activity(at, IDENTIFY, ActivityType.IDENTIFY, anonymous_id=anonymous_id,
                                  email=shopper.email)
                checkout = f"chk-{shopper.index}-{number}"
                at += timedelta(minutes=3)
                self.activity(at, CHECKOUT, ActivityType.CHECKOUT_STARTED, email=shopper.email,
                              checkout_token=checkout)
                at += timedelta(minutes=4)
            order = self.order(shopper, number, at, checkout)
            self.add(at, ORDER_RETURNING if number else ORDER_NEW, order)
            counted, net = self.after_placing(order, at)
            orders, spent = orders + counted, spent + net
        if rng.random() < 0.5:
            later = at + timedelta(days=rng.randint(1, 10))
            self.customer(shopper, START, later, ("vip",) if orders > 1 else ("newsletter",))
        self.workload.expected[shopper.email] = (orders, spent)


FIRST_NAMES = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Radia", "Hedy", "Guido"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Perlman"]


def build_workload(workspace_id: str, store_id: str, shoppers: int, browsers: int, seed: int) -> Workload:
    """Every shopper's story, and anonymous browsers who never sign in, in the order the events arrive."""
    story = _Story(seed, workspace_id, store_id)
    for index in range(shoppers):
        first, last = story.rng.choice(FIRST_NAMES), story.rng.choice(LAST_NAMES)
        story.shopper(_Shopper(index, f"{first}.{last}.{index}@example.com".lower(), str(7_100_000 + index),
                               first, last))
    for index in range(browsers):
        start = START + timedelta(minutes=story.rng.randrange(0, 20 * 24 * 60))
        story.browse(f"anon-x-{index:04d}", start, story.rng.randint(1, 4))
    story.workload.arrivals.sort(key=lambda arrival: arrival.at)  # stable: ties keep the story's order
    return story.workload


# --- BASELINE design (written here only to be measured against) -----------------------------------------------


_MODELS: dict[str, type[CanonicalEvent]] = {"order": CanonicalOrder, "customer": CustomerRecord,
                                            "refund": RefundRecord, "order_removed": OrderRemoved,
                                            "activity": ActivityEvent}


def _event_key(event: CanonicalEvent) -> tuple[str, str]:
    """(kind, sort key): the sort key is the event's identity, so a re-delivery finds itself."""
    store = event.store_id
    if isinstance(event, CanonicalOrder):
        return "order", f"E#order#{store}#{event.order_id}#{event.version}"
    if isinstance(event, RefundRecord):
        return "refund", f"E#refund#{store}#{event.order_id}#{event.refund_id}"
    if isinstance(event, OrderRemoved):
        return "order_removed", f"E#removed#{store}#{event.order_id}"
    if isinstance(event, CustomerRecord):
        return "customer", f"E#customer#{store}#{event.customer_id}#{event.version}"
    if isinstance(event, ActivityEvent):
        return "activity", f"E#activity#{store}#{event.event_id}"
    raise TypeError(type(event).__name__)


@dataclass
class _History:
    """A shopper's events, reduced to what the profile is folded from."""

    orders: dict[str, CanonicalOrder] = field(default_factory=dict)  # newest version of each
    refunds: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    removed: dict[str, datetime] = field(default_factory=dict)
    accounts: dict[str, CustomerRecord] = field(default_factory=dict)  # newest version of each
    activities: list[ActivityEvent] = field(default_factory=list)

    def add(self, event: CanonicalEvent) -> None:
        if isinstance(event, CanonicalOrder):
            held = self.orders.get(event.order_id)
            self.orders[event.order_id] = event if held is None or event.version > held.version else held
        elif isinstance(event, RefundRecord):
            self.refunds.setdefault(event.order_id, {})[event.refund_id] = event.amount
        elif isinstance(event, OrderRemoved):
            self.removed[event.order_id] = event.removed_at
        elif isinstance(event, CustomerRecord):
            account = self.accounts.get(event.customer_id)
            self.accounts[event.customer_id] = event if account is None or event.version > account.version else account
        elif isinstance(event, ActivityEvent):
            self.activities.append(event)


def recompute(workspace_id: str, profile_id: str, events: Sequence[CanonicalEvent], now: datetime) -> Profile:
    """The profile folded from a shopper's whole history, with the same per-event rules as ours."""
    history = _History()
    for event in events:
        history.add(event)
    profile = new_profile(workspace_id, profile_id, now)
    for order in sorted(history.orders.values(), key=lambda o: (o.created_at, o.order_id)):
        record = OrderRecord(workspace_id=workspace_id, store_id=order.store_id, order_id=order.order_id,
                             profile_id=profile_id, order=order, refunds=history.refunds.get(order.order_id, {}),
                             removed_at=history.removed.get(order.order_id))
        profile = apply_order_record(profile, None, record, now).profile
    for activity in sorted(history.activities, key=lambda a: (a.occurred_at, a.event_id)):
        profile = apply_activity(profile, activity, now)
    for account in history.accounts.values():
        profile = apply_customer(profile, account, now)
    return profile


class AppendAndRecompute:
    """BASELINE profile upsert: the straightforward event-sourced design, without identity resolution.

    Each event goes to its shopper's partition, named by its strongest identity (email, else the account,
    else the browser id): Query the whole partition, stop if the event is already there (a re-delivery),
    PutItem the event, PutItem the profile recomputed from every event held. A refund or removal names only
    its order, so the order's first version also writes a pointer item, which they GetItem first. An
    anonymous browser's history stays in its own partition: nothing merges.
    """

    def __init__(self, table: str) -> None:
        self.table = table

    def _partition(self, event: CanonicalEvent) -> str:
        workspace = event.workspace_id
        if isinstance(event, RefundRecord | OrderRemoved):
            found = clients.client("dynamodb").get_item(TableName=self.table, Key=self._pointer(event),
                                                        ConsistentRead=True)
            if "Item" in found:
                return str(found["Item"]["shopper"]["S"])
            return f"WS#{workspace}#SHOPPER#order#{event.store_id}#{event.order_id}"  # waits for its order
        return f"WS#{workspace}#SHOPPER#{identities_of(event)[0]}"

    @staticmethod
    def _pointer(event: CanonicalOrder | RefundRecord | OrderRemoved) -> dict[str, Any]:
        return {"pk": {"S": f"WS#{event.workspace_id}#ORDER#{event.store_id}#{event.order_id}"},
                "sk": {"S": "ORDER"}}

    def _history(self, pk: str) -> dict[str, dict[str, Any]]:
        dynamodb, held = clients.client("dynamodb"), {}
        request: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": "pk = :pk",
                                   "ExpressionAttributeValues": {":pk": {"S": pk}}, "ConsistentRead": True}
        while True:
            page = dynamodb.query(**request)
            held.update({item["sk"]["S"]: item for item in page["Items"]})
            if "LastEvaluatedKey" not in page:
                return held
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def apply(self, event: CanonicalEvent, now: datetime) -> bool:
        pk = self._partition(event)
        kind, sk = _event_key(event)
        history = self._history(pk)
        if sk in history:
            return False
        dynamodb = clients.client("dynamodb")
        first_of_order = isinstance(event, CanonicalOrder) and not any(
            key.startswith(f"E#order#{event.store_id}#{event.order_id}#") for key in history)
        events = [_MODELS[str(item["kind"]["S"])].model_validate_json(item["body"]["S"])
                  for key, item in history.items() if key.startswith("E#")]
        dynamodb.put_item(TableName=self.table, Item={"pk": {"S": pk}, "sk": {"S": sk}, "entity": {"S": "event"},
                                                      "kind": {"S": kind}, "body": {"S": event.model_dump_json()}})
        profile = recompute(event.workspace_id, profile_id_for(event.workspace_id, pk), [*events, event], now)
        dynamodb.put_item(TableName=self.table, Item=to_item({"pk": pk, "sk": "PROFILE"}, "profile", profile))
        if first_of_order and isinstance(event, CanonicalOrder):
            dynamodb.put_item(TableName=self.table, Item={**self._pointer(event), "shopper": {"S": pk}})
        return True


# --- Measuring --------------------------------------------------------------------------------------------------


@dataclass
class TypeRun:
    """One design over the workload, by event type."""

    counts: dict[str, Counts] = field(default_factory=dict)
    seconds: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    applied: Counter[str] = field(default_factory=Counter)
    published: Counter[str] = field(default_factory=Counter)  # entries the outbox would put on the bus
    queued: Counter[str] = field(default_factory=Counter)  # flow events it would send to the flows queue
    every: Counter[str] = field(default_factory=Counter)  # every domain event: the bus's entries before issue 12

    def per_event(self, kind: str, key: tuple[str, ...]) -> float:
        return self.counts.get(kind, {}).get(key, 0) / self.events[kind] if self.events[kind] else 0.0

    def requests(self, kind: str) -> float:
        return requests_in(self.counts.get(kind, {})) / self.events[kind] if self.events[kind] else 0.0

    def rate(self, kind: str | None = None) -> float:
        seconds = self.seconds[kind] if kind else sum(self.seconds.values())
        events = self.events[kind] if kind else sum(self.events.values())
        return events / seconds if seconds else 0.0


class StreamTail:
    """The table's stream from now on, read after each event (unmetered: Lambda reads streams for free)."""

    def __init__(self, stream_arn: str) -> None:
        self.streams, self.arn = harness("dynamodbstreams"), stream_arn
        shards = self.streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        self.iterators = [self.streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"],
                                                          ShardIteratorType="LATEST")["ShardIterator"]
                          for shard in shards]
        # None: every type (BusEventTypes "*")
        self.bus_types = bus_types(load_stack(TEMPLATE, region=REGION).parameters["BusEventTypes"]["Default"])

    def published(self) -> tuple[int, int, int]:
        """The domain events the outbox makes of the records written since the last call: how many it puts on the
        bus (the template's BusEventTypes), how many it sends to the flows queue (crm.adapters.outbox_targets), how
        many there are (each was an entry on the bus before issue 12 routed them)."""
        bus = self.bus_types
        on_bus, queued, every, following = 0, 0, 0, []
        for iterator in self.iterators:
            answer = self.streams.get_records(ShardIterator=iterator)
            for change in answer["Records"]:
                for event in events_for(stream_record(change, self.arn)):
                    on_bus += bus is None or event.type in bus
                    queued += event.type in FLOW_EVENT_TYPES
                    every += 1
            following.append(answer["NextShardIterator"])
        self.iterators = following
        return on_bus, queued, every


def run_design(bench: Bench, workload: Workload, apply: Callable[[CanonicalEvent, datetime], bool],
               stream: StreamTail | None) -> TypeRun:
    run = TypeRun()
    for arrival in workload.arrivals:
        now = arrival.at + timedelta(seconds=1)  # applied a moment after it happened, as the queue would
        mark = bench.meter.mark()
        started = time.perf_counter()
        changed = apply(arrival.event, now)
        run.seconds[arrival.kind] += time.perf_counter() - started  # type: ignore[assignment]
        run.counts[arrival.kind] = add(run.counts.get(arrival.kind, {}), bench.meter.since(mark))
        run.events[arrival.kind] += 1
        run.applied[arrival.kind] += changed
        if stream is not None:
            on_bus, queued, every = stream.published()
            run.published[arrival.kind] += on_bus
            run.queued[arrival.kind] += queued
            run.every[arrival.kind] += every
    return run


def plain_line_item(workspace_id: str, lines: Sequence[TimelineEntry]) -> Item:
    """A timeline item as main wrote it before the linepack lane (issue 12): a line's fields each an attribute, a
    group's lines one JSON string beside its owner and time, nothing packed (crm.adapters.timeline_items.line_item
    packs them)."""
    first = lines[0]
    key = keys.timeline(workspace_id, first.profile_id, first.sort_key)
    if len(lines) == 1:
        return to_item(key, "timeline", first)
    body = [{name: value for name, value in line.model_dump(mode="json", include=set(LINE_FIELDS)).items()
             if value not in (None, {})} for line in lines]
    return plain_item({**key, "entity": LINES_ENTITY, "workspace_id": workspace_id, "profile_id": first.profile_id,
                       "occurred_at": first.occurred_at.isoformat(), "types": {line.type for line in lines},
                       "lines": json.dumps(body, separators=(",", ":"), ensure_ascii=False)})


class LinesUnpacked(DynamoProfileRepository):
    """BEFORE the linepack lane (issue 12), kept to be measured against: ours, but a timeline line or a folded
    request's line group written plain (``plain_line_item``), not packed."""

    def _line_item(self, workspace_id: str, lines: Sequence[TimelineEntry]) -> Item:
        return plain_line_item(workspace_id, lines)


class EveryReadConsistent(DynamoProfileRepository):
    """BEFORE issue 12's upreads lane, kept to be measured against: ours, but every read consistent (the identities,
    records and currency settings in one BatchGetItem, the profiles in another), as crm.ingestion's first read was
    before it read the identities, profiles and settings eventually consistent (crm.ports.Reads.consistent)."""

    def load(self, reads: Reads) -> Context:
        return super().load(replace(reads, consistent=True))


class UnpackedItems(LinesUnpacked):
    """BEFORE the compact lane (issue 12; main at 4759afa), kept to be measured against: ours, but a profile item
    holds its fields each as an attribute (those at their defaults left out) and an order record every field, none
    packed into one deflated attribute (crm.adapters.items.to_packed_item)."""

    def _profile_item(self, workspace_id: str, profile: Profile) -> Item:
        if self.profile_defaults:
            return super()._profile_item(workspace_id, profile)
        return to_compact_item(keys.profile(workspace_id, profile.profile_id), "profile", profile,
                               **keys.workspace_index(workspace_id, profile.profile_id))

    def _order_item(self, workspace_id: str, record: OrderRecord) -> Item:
        return to_item(keys.order(workspace_id, record.store_id, record.order_id), "order", record,
                       version=record.version)


class EveryChangeATransaction(UnpackedItems, EveryReadConsistent):
    """BEFORE (issue 12's starting point, kept to be measured against): every change, a guard-last activity's
    or order's too, in one TransactWriteItems, and profiles without the event digests and order states that
    writing guard last adds, every field of a profile and of an order record written, none packed; and each
    activity's marker item, which ours no longer writes (its timeline line is its marker), here in a transaction
    after the change's: the same units; every read consistent."""

    profile_defaults = True

    def commit(self, change: Change) -> None:
        change = _merge_in_one_transaction(change)
        if change.guard_last:
            change = replace(change, guard_last=False, profiles=tuple(
                (profile.model_copy(update={"unmarked_events": (), "unwritten_orders": {}}), revision)
                for profile, revision in change.profiles))
        super().commit(change)
        markers = [{**keys.event(change.workspace_id, store_id, event_id), "entity": "event", "profile_id": profile}
                   for store_id, event_id, profile in (*([change.event] if change.event else []), *change.folded)]
        if markers:
            transact_write([{"Put": {"TableName": self.table, "Item": {k: serializer.serialize(v)
                                                                        for k, v in marker.items()}}}
                            for marker in markers], self.backoff)


def _merge_in_one_transaction(change: Change) -> Change:
    """A merge as BEFORE wrote it: no profile marked as merging first, each tombstone under the revision read."""
    read = {profile.profile_id: revision or 0 for profile, revision in change.merging}
    return replace(change, merging=(), profiles=tuple(
        (profile.model_copy(update={"revision": read[profile.profile_id] + 1}), read[profile.profile_id])
        if profile.profile_id in read else (profile, revision) for profile, revision in change.profiles))


class EveryFieldWritten(LinesUnpacked):
    """Ours (guard last, folding, lines as markers), but a profile item carries every field, those at their
    defaults too, as main did before bc3f065's compact items: what the compact item saves."""

    profile_defaults = True
    lines_grouped = False  # main at bc3f065 wrote a line item per activity


class LinePerActivity(LinesUnpacked):
    """Ours, but a folded request's activity lines written an item each, as before issue 12's viewlines lane
    (crm.adapters.timeline_items groups them): what the line group saves."""

    lines_grouped = False


class OwnLinkWritten(DynamoProfileRepository):
    """BEFORE the ownlink2 lane (issue 12; main at 05d01b5), kept to be measured against: ours, but a new profile's
    link for the identity it is named after written too (before it, with the others; ours leaves out a browser's
    only), and read back through that link alone: no profile looked for at a browser's derived key, so no link
    takes a browser's name either (crm.ports.IdentityLink.named_tombstone)."""

    def _named(self, workspace_id: str, identities: Sequence[str]) -> dict[str, str]:
        return {}

    def commit(self, change: Change) -> None:
        ws = change.workspace_id
        linked = {link.identity for link in change.identities}
        order = [f"order#{change.order[0].store_id}#{change.order[0].order_id}"] if change.order else []
        own = tuple(
            IdentityLink(identity, profile.profile_id, None)
            for profile, revision in change.profiles if revision is None and not profile.merged_into
            for identity in (*profile.identities, *order)
            if identity not in linked and profile_id_for(ws, identity) == profile.profile_id)
        super().commit(replace(change, identities=(*own, *change.identities)) if own else change)


def clone_table(name: str, source: str) -> tuple[str, str]:
    """A table with ``source``'s keys, indexes and stream, empty: (name, stream ARN)."""
    dynamodb = harness("dynamodb")
    held = dynamodb.describe_table(TableName=source)["Table"]
    created = dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=held["AttributeDefinitions"],
        KeySchema=held["KeySchema"],
        GlobalSecondaryIndexes=[{"IndexName": index["IndexName"], "KeySchema": index["KeySchema"],
                                 "Projection": index["Projection"]}
                                for index in held.get("GlobalSecondaryIndexes", [])],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    return name, created["TableDescription"]["LatestStreamArn"]


def check_ours(repository: DynamoProfileRepository, workspace_id: str, workload: Workload) -> str:
    wrong = []
    for email, (orders, spent) in workload.expected.items():
        profile_id = repository.profile_id_for_identity(workspace_id, f"email#{email}")
        profile = repository.get_profile(workspace_id, profile_id) if profile_id else None
        if profile is None or (profile.orders_count, profile.total_spent) != (orders, spent):
            wrong.append(email)
    if wrong:
        raise SystemExit(f"ours: {len(wrong)} profiles do not match the workload, e.g. {wrong[0]}")
    return f"{len(workload.expected)}/{len(workload.expected)} shoppers' orders and net spend match"


def check_baseline(table_name: str, workspace_id: str, workload: Workload) -> str:
    dynamodb, wrong = harness("dynamodb"), []
    for email, (orders, spent) in workload.expected.items():
        key = {"pk": {"S": f"WS#{workspace_id}#SHOPPER#email#{email}"}, "sk": {"S": "PROFILE"}}
        item = from_item(dynamodb.get_item(TableName=table_name, Key=key).get("Item", {}))
        if (int(item.get("orders_count", -1)), Decimal(item.get("total_spent", "-1"))) != (orders, spent):
            wrong.append(email)
    if wrong:
        raise SystemExit(f"baseline: {len(wrong)} profiles do not match the workload, e.g. {wrong[0]}")
    return f"{len(workload.expected)}/{len(workload.expected)} match"


def merged_profiles(table_name: str) -> int:
    count = 0
    for page in harness("dynamodb").get_paginator("scan").paginate(TableName=table_name):
        count += sum(1 for item in map(from_item, page["Items"]) if item.get("entity") == "profile"
                     and item.get("merged_into"))
    return count


# --- 5b. A /track request's views folded into one write ---------------------------------------------------------

def track_requests(workload: Workload, views_per_request: Sequence[int]) -> list[list[ActivityEvent]]:
    """The workload's product views, each browser's in time order, cut into /track requests of the sizes the
    storefront snippet sends them in (bench/track_batching.py: the views a request carries, taken in turn)."""
    by_browser: dict[str, list[ActivityEvent]] = {}
    for arrival in workload.arrivals:
        if arrival.kind == PRODUCT_VIEW and isinstance(arrival.event, ActivityEvent):
            by_browser.setdefault(arrival.event.anonymous_id or "", []).append(arrival.event)
    sizes = itertools.cycle(views_per_request)
    requests = []
    for views in by_browser.values():
        while views:
            size = next(sizes)
            requests.append(views[:size])
            views = views[size:]
    return requests


@dataclass
class FoldRun:
    design: str
    counts: Counts
    views: int
    seconds: float
    checked: str

    def per_view(self, key: tuple[str, ...]) -> float:
        return self.counts.get(key, 0) / self.views


def run_requests(bench: Bench, design: str, repository: DynamoProfileRepository, requests: list[list[ActivityEvent]],
                 folded: bool) -> FoldRun:
    mark, started = bench.meter.mark(), time.perf_counter()
    for request in requests:
        now = request[-1].occurred_at + timedelta(seconds=1)
        if folded:
            apply_events(repository, request, now)
        else:
            for event in request:
                apply_event(repository, event, now)
    seconds, counts = time.perf_counter() - started, bench.meter.since(mark)
    views = sum(len(request) for request in requests)
    counted = 0
    for anonymous_id in {request[0].anonymous_id for request in requests}:
        profile_id = repository.profile_id_for_identity(bench.store.workspace_id,
                                                        f"anon#{bench.store.store_id}#{anonymous_id}")
        profile = repository.get_profile(bench.store.workspace_id, profile_id) if profile_id else None
        counted += profile.activity_counts.get(ActivityType.PRODUCT_VIEWED.value, 0) if profile else 0
    if counted != views:
        raise SystemExit(f"{design}: profiles count {counted} views of {views}")
    return FoldRun(design, counts, views, seconds, f"{counted}/{views} views counted on their profiles")


def measure_folding(bench: Bench, workload: Workload, batching: Batching) -> list[FoldRun]:
    requests, source = track_requests(workload, batching.views_per_request), bench.outputs["TableName"]
    designs = (("ours, a request folded (apply_events)", DynamoProfileRepository, True),
               ("ours folded, every profile field written (pre-bc3f065 item)", EveryFieldWritten, True),
               ("ours, one event at a time (apply_event)", DynamoProfileRepository, False),
               ("BEFORE: one event at a time, each a transaction", EveryChangeATransaction, False),
               ("BEFORE viewlines: ours folded, a line item per view", LinePerActivity, True),
               ("BEFORE linepack: ours folded, lines and groups unpacked", LinesUnpacked, True),
               ("BEFORE upreads: ours folded, every read consistent", EveryReadConsistent, True),
               ("BEFORE ownlink2: ours folded, a browser's own link written (main)", OwnLinkWritten, True))
    runs = []
    for number, (design, repository, folded) in enumerate(designs):
        table_name, _ = clone_table(f"{source}-views-{number}", source)
        runs.append(run_requests(bench, design, repository(table_name), requests, folded))
    return runs


@dataclass
class Results:
    workload: Workload
    ours: TypeRun
    before: TypeRun  # today's design at issue 12's start: every change a transaction
    baseline: TypeRun
    checks: tuple[str, str, str]
    unpacked: TypeRun  # ours with items as main wrote them before the compact lane
    consistent: TypeRun  # ours with every read consistent, as before the upreads lane
    unpacked_check: str
    merged: int
    folding: list[FoldRun]
    batching: Batching
    own_link: TypeRun  # ours with a new browser's own link written, as main at 05d01b5 (BEFORE ownlink2)
    own_link_check: str


def measure(bench: Bench, workload: Workload, batching: Batching) -> Results:
    table_name = bench.outputs["TableName"]
    repository = DynamoProfileRepository(table_name)
    stream = StreamTail(bench.provisioned.physical["Table"].attributes["StreamArn"])
    ours = run_design(bench, workload, lambda event, now: apply_event(repository, event, now), stream)
    unpacked_table, _ = clone_table(f"{table_name}-unpacked", table_name)
    unpacked_items = UnpackedItems(unpacked_table)
    unpacked = run_design(bench, workload, lambda event, now: apply_event(unpacked_items, event, now), None)
    before_table, before_stream = clone_table(f"{table_name}-before", table_name)
    transactional = EveryChangeATransaction(before_table)
    before = run_design(bench, workload, lambda event, now: apply_event(transactional, event, now),
                        StreamTail(before_stream))
    consistent_table, _ = clone_table(f"{table_name}-consistent", table_name)
    every_read_consistent = EveryReadConsistent(consistent_table)
    consistent = run_design(bench, workload, lambda event, now: apply_event(every_read_consistent, event, now),
                            None)
    own_link_table, _ = clone_table(f"{table_name}-ownlink", table_name)
    own_link_written = OwnLinkWritten(own_link_table)
    own_link = run_design(bench, workload, lambda event, now: apply_event(own_link_written, event, now), None)
    naive = AppendAndRecompute(bench.baseline.table)
    baseline = run_design(bench, workload, naive.apply, None)
    workspace_id = bench.store.workspace_id
    checks = (check_ours(repository, workspace_id, workload), check_ours(transactional, workspace_id, workload),
              check_baseline(bench.baseline.table, workspace_id, workload))
    merged = merged_profiles(table_name)
    return Results(workload, ours, before, baseline, checks, unpacked, consistent,
                   check_ours(unpacked_items, workspace_id, workload), merged,
                   measure_folding(bench, workload, batching), batching, own_link,
                   check_ours(own_link_written, workspace_id, workload))


# --- The report -----------------------------------------------------------------------------------------------


def operation_rows(run: TypeRun) -> tuple[list[str], list[list[str]]]:
    found = sorted({key[2] for counts in run.counts.values() for key in counts if key[0] == "req"})
    rows = [[kind, str(run.events[kind]), str(run.applied[kind]), fmt(run.requests(kind)),
             *(fmt(run.per_event(kind, ("req", "dynamodb", op))) for op in found),
             fmt(run.per_event(kind, ("unit", "rru"))), fmt(run.per_event(kind, ("unit", "wru"))),
             f"{run.rate(kind):.0f}"] for kind in KINDS]
    return ["event type", "n", "changed", "requests", *found, "RRU", "WRU", "events/s"], rows


def print_types(r: Results) -> None:
    ours, baseline = r.ours, r.baseline
    print("\n5. Profile upsert per event type: crm.ingestion.apply_event on DynamoProfileRepository, one event at a "
          "time")
    print(f"   workload: {len(r.workload.expected)} shoppers, seed {SEED}: {len(r.workload.arrivals)} events in "
          "arrival order")
    print("   per event; events/s is wall time through apply_event on moto (in-process, moto-dominated: compare the")
    print("   designs with it, do not quote it as AWS throughput)")
    header, rows = operation_rows(ours)
    print(table(header, rows))
    per_event = requests_in(add(*ours.counts.values())) / len(r.workload.arrivals)
    print(f"  events/s overall: {ours.rate():.0f} ({per_event:.2f} requests/event); checked: {r.checks[0]};")
    print(f"  {r.merged} anonymous profiles merged into shoppers by identifies")
    published = ", ".join(f"{kind} {ours.published[kind] / ours.events[kind]:.2f}" for kind in KINDS
                          if ours.events[kind])
    queued = ", ".join(f"{kind} {ours.queued[kind] / ours.events[kind]:.2f}" for kind in KINDS if ours.events[kind])
    print(f"  PutEvents entries per event (the outbox's domain events of BusEventTypes, docs/events.md): {published}")
    print(f"  flow events per event (the outbox sends them to the flows queue, priced with flows): {queued}")
    month_entries = {name: sum(n * getattr(ours, name)[k] / ours.events[k] for k, n in MONTHLY_MIX.items()
                               if ours.events[k]) for name in ("published", "every")}
    print(f"  bus entries a month, reference mix: {month_entries['published'] / 1e6:.2f}M "
          f"(before issue 12 routed the flows' events to their queue: every event, "
          f"{month_entries['every'] / 1e6:.2f}M)")
    print("\n   BEFORE (issue 12's start, same run, its own table): every change in one TransactWriteItems")
    header, rows = operation_rows(r.before)
    print(table(header, rows))
    print(f"  checked: {r.checks[1]}")
    print("\n   ours/before per event type (lower is cheaper; time is moto's)")
    print(table(["event type", "requests", "RRU", "WRU", "time"], ratio_rows(ours, r.before)))
    print("\n   BEFORE the compact lane (main at 4759afa, same run, its own table): ours with a profile's fields each")
    print("   an attribute (those at their defaults left out) and an order record's every field, none packed")
    header, rows = operation_rows(r.unpacked)
    print(table(header, rows))
    print(f"  checked: {r.unpacked_check}")
    print("\n   ours/unpacked per event type: profiles and order records packed into one deflated attribute")
    print(table(["event type", "requests", "RRU", "WRU", "time"], ratio_rows(ours, r.unpacked)))
    print("\n   BEFORE upreads (same run, its own table): ours with every read consistent, the identities, records and")
    print("   settings in one BatchGetItem (ours reads the records first, consistently, and the identities, profiles")
    print("   and settings eventually consistent: half the units; a duplicate reads its record alone)")
    header, rows = operation_rows(r.consistent)
    print(table(header, rows))
    print("\n   ours/every read consistent per event type")
    print(table(["event type", "requests", "RRU", "WRU", "time"], ratio_rows(ours, r.consistent)))
    print("\n   BEFORE ownlink2 (main at 05d01b5, same run, its own table): ours, but a new browser's profile's link")
    print("   for the browser written too, and identities read through their links alone")
    header, rows = operation_rows(r.own_link)
    print(table(header, rows))
    print(f"  checked: {r.own_link_check}")
    print("\n   ours/BEFORE ownlink2 per event type: no link item for a browser's own profile (a link elsewhere")
    print("   takes the browser's name when it has no profile: the race's guard)")
    print(table(["event type", "requests", "RRU", "WRU", "time"], ratio_rows(ours, r.own_link)))
    print("\n   baseline: append every event to its shopper's partition and recompute the profile from all of it")
    print("   (Query partition + PutItem event + PutItem profile; refunds/removals GetItem an order pointer first;")
    print("   no identity merge), on a fresh table")
    header, rows = operation_rows(baseline)
    print(table(header, rows))
    per_event = requests_in(add(*baseline.counts.values())) / len(r.workload.arrivals)
    print(f"  events/s overall: {baseline.rate():.0f} ({per_event:.2f} requests/event); checked: {r.checks[2]}")
    print("\n   ours/baseline per event type (lower is cheaper; time is moto's)")
    print(table(["event type", "requests", "RRU", "WRU", "time"], ratio_rows(ours, baseline)))
    print("  ours writes an event's items in one TransactWriteItems (2 WRU per KB: the price of atomicity and of the")
    print("  guards that make retries and merges safe) only for merges, consent lines and new shoppers' orders; any")
    print("  other change of one profile is single writes, the item that says the event is applied last (an")
    print("  activity's timeline line, its marker; an account's item; an order's record, after the profile that says")
    print("  what state it brings the record to, crm.unwritten_orders): guard last, crm.changes. The baseline's")
    print("  PutItems are neither atomic nor merged.")


def ratio_rows(ours: TypeRun, other: TypeRun) -> list[list[str]]:
    rows = []
    for kind in [*KINDS, None]:
        kinds = KINDS if kind is None else (kind,)
        o = add(*(ours.counts.get(k, {}) for k in kinds))
        b = add(*(other.counts.get(k, {}) for k in kinds))
        o_seconds, b_seconds = sum(ours.seconds[k] for k in kinds), sum(other.seconds[k] for k in kinds)
        rows.append([kind or "all events", ratio(requests_in(o), requests_in(b)),
                     ratio(o.get(("unit", "rru"), 0), b.get(("unit", "rru"), 0)),
                     ratio(o.get(("unit", "wru"), 0), b.get(("unit", "wru"), 0)), ratio(o_seconds, b_seconds)])
    return rows


def print_folding(r: Results) -> None:
    requests = len(track_requests(r.workload, r.batching.views_per_request))
    print(f"\n5b. A /track request's views folded into one write of their profile: the workload's {r.folding[0].views} "
          f"product views,")
    print(f"   each browser's cut into {requests} requests as {describe(r.batching)};")
    print("   each design on a table of its own")
    found = sorted({key[2] for run in r.folding for key in run.counts if key[0] == "req"})
    rows = [[run.design, fmt(requests_in(run.counts) / run.views),
             *(fmt(run.per_view(("req", "dynamodb", op))) for op in found), fmt(run.per_view(("unit", "rru"))),
             fmt(run.per_view(("unit", "wru"))), f"{run.views / run.seconds:.0f}"] for run in r.folding]
    print(table(["per view", "requests", *found, "RRU", "WRU", "views/s"], rows))
    print("  checked: " + "; ".join(f"{run.design.split(',')[0]}: {run.checked}" for run in r.folding[:1]) +
          " (each design's count is checked the same way)")


def product_view_cost(run: FoldRun) -> float:
    per_m = {key: price for key, (_, price) in PRICES.items()}
    return MONTHLY_MIX[PRODUCT_VIEW] * (run.per_view(("unit", "wru")) * per_m["wru"] +
                                        run.per_view(("unit", "rru")) * per_m["rru"]) / 1e6


def monthly_lines(ours: TypeRun, events_per_track_request: float) -> list[tuple[str, float, str]]:
    """(component, $ per month, how it is counted) for MONTHLY_MIX, from the measured per-event figures."""
    mix = MONTHLY_MIX
    events = sum(mix.values())
    webhooks = events - sum(mix[k] for k in STOREFRONT)
    track = round(sum(mix[k] for k in STOREFRONT) / events_per_track_request)
    messages = webhooks + track  # a queued message per webhook delivery and per /track request
    # the outbox is invoked per batch of the stream: about once per profile write
    transactions = sum(n * (ours.per_event(k, ("req", "dynamodb", "TransactWriteItems"))
                            + ours.per_event(k, ("req", "dynamodb", "PutItem"))) for k, n in mix.items())
    rru = sum(n * ours.per_event(k, ("unit", "rru")) for k, n in mix.items())
    wru = sum(n * ours.per_event(k, ("unit", "wru")) for k, n in mix.items())
    published = sum(n * ours.published[k] / ours.events[k] for k, n in mix.items())
    per_m = {key: price for key, (_, price) in PRICES.items()}
    return [
        ("API Gateway REST: webhooks", webhooks * per_m["api_gateway"] / 1e6, f"{webhooks:,} requests"),
        ("API Gateway REST: /track", track * per_m["api_gateway"] / 1e6,
         f"{track:,} requests ({events_per_track_request:.2f} events each)"),
        ("Lambda invocations", (2 * messages + transactions) * per_m["lambda"] / 1e6,
         f"{messages:,} front + {messages:,} profiles + {transactions:,.0f} outbox"),
        ("SQS requests", 3 * messages * per_m["sqs"] / 1e6, "send + receive + delete per message"),
        ("Firehose archive", messages * DELIVERY_KB / 2**20 * per_m["firehose_gb"] / 1e6,
         f"{DELIVERY_KB} KB/message"),
        ("DynamoDB RRU: front door", messages * FRONT_DOOR_RRU * per_m["rru"] / 1e6, "store/key GetItem"),
        ("DynamoDB RRU: profile upsert", rru * per_m["rru"] / 1e6, f"{rru / 1e6:.2f}M measured"),
        ("DynamoDB WRU: profile upsert", wru * per_m["wru"] / 1e6, f"{wru / 1e6:.2f}M measured"),
        ("EventBridge (outbox)", published * per_m["eventbridge"] / 1e6, f"{published:,.0f} events measured"),
    ]


def print_costs(r: Results) -> None:
    print("\n6. Monthly cost for DESIGN.md's reference store (100k profiles, 300k orders, 3M storefront events), "
          "list prices us-east-1")
    mix = [f"{n:,} {kind}" for kind, n in MONTHLY_MIX.items()]
    print("   mix (a month, assumed): " + ", ".join(mix[:4]))
    for start in range(4, len(mix), 4):
        print("     " + ", ".join(mix[start:start + 4]))
    lines = monthly_lines(r.ours, r.batching.events_per_request)
    rows = [[name, f"${cost:.2f}", how] for name, cost, how in lines]
    total = sum(cost for _, cost, _ in lines)
    track = sum(MONTHLY_MIX[k] for k in STOREFRONT) / r.batching.events_per_request
    http_total = total - track * (PRICES["api_gateway"][1] - HTTP_API_PRICE) / 1e6
    rows.append(["total, /track on REST API", f"${total:.2f}", ""])
    rows.append(["total, /track on HTTP API ($1/M)", f"${http_total:.2f}", f"target ~${COST_TARGET:.0f}/month"])
    print(table(["component", "$/month", "counted as"], rows))
    upsert = sum(cost for name, cost, _ in lines if "profile upsert" in name)
    views = MONTHLY_MIX[PRODUCT_VIEW] * r.ours.per_event(PRODUCT_VIEW, ("unit", "wru")) * PRICES["wru"][1] / 1e6
    print(f"  the profile upsert itself (DynamoDB) is ${upsert:.2f} of it, product views' writes alone ${views:.2f}.")
    before_lines = monthly_lines(r.before, r.batching.events_per_request)
    before_upsert = sum(cost for name, cost, _ in before_lines if "profile upsert" in name)
    before_wru = next(cost for name, cost, _ in before_lines if name == "DynamoDB WRU: profile upsert")
    before_views = (MONTHLY_MIX[PRODUCT_VIEW] * r.before.per_event(PRODUCT_VIEW, ("unit", "wru")) * PRICES["wru"][1]
                    / 1e6)
    wru = next(cost for name, cost, _ in lines if name == "DynamoDB WRU: profile upsert")
    print(f"  BEFORE (every change a transaction, same run): WRU ${before_wru:.2f} -> ${wru:.2f}, product views' "
          f"writes ${before_views:.2f} -> ${views:.2f},")
    print(f"  the upsert (DynamoDB) ${before_upsert:.2f} -> ${upsert:.2f}, total on REST "
          f"${sum(c for _, c, _ in before_lines):.2f} -> ${total:.2f}.")
    unpacked_lines = monthly_lines(r.unpacked, r.batching.events_per_request)
    unpacked_units = {name: cost for name, cost, _ in unpacked_lines if "profile upsert" in name}
    print("  BEFORE the compact lane (items unpacked, same run): "
          + ", ".join(f"{name.split(':')[0].removeprefix('DynamoDB ')} ${unpacked_units[name]:.2f} -> ${cost:.2f}"
                      for name, cost, _ in lines if name in unpacked_units)
          + f", the upsert (DynamoDB) ${sum(unpacked_units.values()):.2f} -> ${upsert:.2f}.")
    folded, main, single, before, *lines_apart = (product_view_cost(run) for run in r.folding)
    print(f"  Product views' DynamoDB (RRU + WRU) from 5b: ${before:.2f} before issue 12, ${main:.2f} ours with "
          f"every profile field written, ${single:.2f} one at a time, ${folded:.2f} folded as the snippet "
          "sends them:")
    print(f"  the upsert (DynamoDB) with views folded: ${upsert - single + folded:.2f}; total on REST "
          f"${total - single + folded:.2f}, on HTTP API ${http_total - single + folded:.2f}.")
    own_lines = monthly_lines(r.own_link, r.batching.events_per_request)
    own_units = {name: cost for name, cost, _ in own_lines if "profile upsert" in name}
    own_folded = product_view_cost(r.folding[7]) if len(r.folding) > 7 else single
    print("  BEFORE ownlink2 (same run, a browser's own link written): "
          + ", ".join(f"{name.split(':')[0].removeprefix('DynamoDB ')} ${own_units[name]:.2f} -> ${cost:.2f}"
                      for name, cost, _ in lines if name in own_units)
          + f" one event at a time; product views folded ${own_folded:.2f} -> ${folded:.2f}; the upsert with views "
            f"folded ${sum(own_units.values()) - single + own_folded:.2f} -> ${upsert - single + folded:.2f}.")
    if lines_apart:
        print(f"  BEFORE viewlines (same run, a line item per view): product views' DynamoDB ${lines_apart[0]:.2f} -> "
              f"${folded:.2f} with a request's lines in one item; the upsert with views folded "
              f"${upsert - single + lines_apart[0]:.2f} -> ${upsert - single + folded:.2f}.")
    if len(lines_apart) > 1:
        print(f"  BEFORE linepack (same run, lines and groups unpacked): product views' DynamoDB "
              f"${lines_apart[1]:.2f} -> ${folded:.2f} with them packed; the upsert with views folded "
              f"${upsert - single + lines_apart[1]:.2f} -> ${upsert - single + folded:.2f}.")
    consistent_lines = monthly_lines(r.consistent, r.batching.events_per_request)
    read_before, read_now = (next((cost, how) for name, cost, how in figures if name == "DynamoDB RRU: profile upsert")
                             for figures in (consistent_lines, lines))
    print(f"  BEFORE upreads (every read consistent, same run): the upsert's RRU ${read_before[0]:.2f} -> "
          f"${read_now[0]:.2f} ({read_before[1]} -> {read_now[1]}, views one at a time)"
          + (f"; product views' DynamoDB folded ${lines_apart[2]:.2f} -> ${folded:.2f}" if len(lines_apart) > 2
             else "") + ".")
    print("  Assumes ~1.3 events/s, so SQS batches of one (a profiles invocation + ReceiveMessage + DeleteMessage per")
    print("  event) and one outbox invocation per transaction. The front door (one API request, one Lambda invocation,")
    print("  one SendMessage, a 5 KB Firehose record per event) is assumed, not measured here (section 1 measures the")
    print("  webhook path). Excludes Lambda duration, storage, data transfer and idle long polls.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=SHOPPERS,
                        help=f"shoppers in the workload (default {SHOPPERS}; fewer to iterate quickly)")
    parser.add_argument("--browsers", type=int, default=ANONYMOUS_BROWSERS,
                        help=f"anonymous browsers in the workload (default {ANONYMOUS_BROWSERS})")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where its JSON is recorded")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    fake_aws_environment()
    moto_patches.install()  # moto's own TransactWriteItems deep-copies the table on every call
    with mock_aws():
        bench = set_up(load_stack(TEMPLATE, region=REGION))
        workload = build_workload(bench.store.workspace_id, bench.store.store_id, args.shoppers, args.browsers,
                                  SEED)
        results = measure(bench, workload, measure_batching())
    print_types(results)
    print_folding(results)
    print_costs(results)
    print(f"\n(profile events bench ran in {time.perf_counter() - started:.0f} s)")
    def figures_of(run: TypeRun) -> dict[str, Any]:
        kinds = [kind for kind in KINDS if run.events[kind]]
        return {"per_event": {kind: per(run.counts.get(kind, {}), run.events[kind]) for kind in kinds},
                "published_per_event": {kind: run.published[kind] / run.events[kind] for kind in kinds},
                "queued_per_event": {kind: run.queued[kind] / run.events[kind] for kind in kinds},
                "changed_per_event": {kind: run.applied[kind] / run.events[kind] for kind in kinds}}

    before = getattr(results, "before", None)  # today's design at issue 12's start, when measured in this run
    folded = next(iter(getattr(results, "folding", [])), None)  # section 5b: a /track request's views in one write
    views = results.batching.views_per_request
    folded_figures = {"folded": {"kind": PRODUCT_VIEW, "views_per_request": round(sum(views) / len(views), 2),
                                 "per_view": per(folded.counts, folded.views)},
                      "folded_main_bc3f065": {"per_view": per(results.folding[1].counts, results.folding[1].views)},
                      **({"folded_line_per_view": {"per_view": per(results.folding[4].counts,
                                                                   results.folding[4].views)}}
                         if len(results.folding) > 4 else {}),
                      **({"folded_lines_unpacked": {"per_view": per(results.folding[5].counts,
                                                                    results.folding[5].views)}}
                          if len(results.folding) > 5 else {}),
                      **({"folded_every_read_consistent": {"per_view": per(results.folding[6].counts,
                                                                           results.folding[6].views)}}
                         if len(results.folding) > 6 else {}),
                      **({"folded_own_link_written": {"per_view": per(results.folding[7].counts,
                                                                      results.folding[7].views)}}
                         if len(results.folding) > 7 else {})} if folded else {}
    record("profile_events", {"monthly_mix": MONTHLY_MIX, "storefront": STOREFRONT, "checks": results.checks,
                              "events_per_track_request": results.batching.events_per_request,
                              **figures_of(results.ours), "baseline": figures_of(results.baseline),
                              **({"before": figures_of(before)} if before is not None else {}), **folded_figures,
                              "unpacked_items": figures_of(results.unpacked),
                              "every_read_consistent": figures_of(results.consistent),
                              "own_link_written": figures_of(results.own_link)},
           args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
