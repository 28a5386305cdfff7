"""`make bench`, part 3: recomputing segment memberships over 100k (and, with --sizes, 1M) synthetic profiles.

Issue 4's requirement: recomputation time and capacity units at 100k and 1M profiles, with our rule
evaluation rate (``crm.segments.evaluate.matches``) compared in the same run against DuckDB evaluating the
equivalent SQL over the same profiles, and the member counts checked to be identical for every definition.

Profiles are generated deterministically (one seeded generator per chunk of CHUNK profiles), evaluated and
loaded into DuckDB a chunk at a time, so that at most one chunk of pydantic Profiles is alive at once. Each
profile carries what ingestion would have written: counters and the times of the latest RECENT_KEPT
occurrences of each event (crm.recent). Ours evaluates the Subject built from the profile alone
(crm.segments.subject.subject_of), DuckDB the whole raw event history: identical members prove the kept
times decide every rule exactly, including counts at the bound and heavy browsers and buyers whose history
is longer than what is kept.
Both sides are timed on one thread (DuckDB with ``threads=1``): a recompute Lambda at 1769 MB has one vCPU.
Times are this machine's and are printed, never asserted; the member counts are deterministic.
"""

from __future__ import annotations

import argparse
import csv
import gc
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
from crm.adapters import keys
from crm.adapters.items import from_item, to_item
from crm.models.canonical import Touch
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.profile import Profile, RecentTimes
from crm.recent import latest, micros
from crm.segments.columns import Batch
from crm.segments.definition import Definition, parse_segment
from crm.segments.evaluate import Subject, matches
from crm.segments.rfm import RfmInputs, RfmSketch, RfmThresholds, group, score
from crm.segments.subject import subject_of
from figures import record
from ingest_path import item_size, table

SEED = 4
CHUNK = 100_000
SIZES = (100_000,)  # make bench stays within minutes; 1M is asked for: --sizes 100000 1000000
NOW = datetime(2026, 11, 1, tzinfo=UTC)
WORKSPACE = "ws-bench"
WORKERS = 4
ITEM_SAMPLE = 2_000
DAY = timedelta(days=1)

# List prices, us-east-1, USD.
RRU_PER_MILLION = 0.125
WRU_PER_MILLION = 0.625
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1e6
LAMBDA_GB = 1769 / 1024  # the memory size at which Lambda gives one full vCPU
LAMBDA_LIMIT_S = 900
RECOMPUTES_PER_MONTH = 30

COUNTRIES = (("US", 40), ("GB", 15), ("DE", 10), ("FR", 8), ("CA", 7), ("AU", 6), ("IE", 3), ("NL", 4), ("ES", 4),
             ("IT", 3))
CATEGORIES = ("Mugs", "Kitchen", "Tea", "Coffee", "Apparel", "Books", "Garden", "Toys", "Gifts", "Stationery")
PRODUCTS = (*(f"{CATEGORIES[i % len(CATEGORIES)]} item {i}" for i in range(200)), "Espresso Cup")
# Zipf-like popularity: a few products sell most, as in any catalogue.
PRODUCT_WEIGHTS = (*(1 / (rank + 1) for rank in range(len(PRODUCTS) - 1)), 0.05)
CATEGORY_OF = {name: name.split(" item ")[0] if " item " in name else "Kitchen" for name in PRODUCTS}
SOURCES = ("google", "newsletter", "instagram", "direct", "facebook")
# Tags in several spellings: text is compared without regard to case, and the SQL must do the same.
TAGS = (("vip", 3), ("newsletter", 10), ("Wholesale", 4), ("wholesale", 1), ("WHOLESALE", 1), ("b2b", 2))


# --- the segment definitions and their SQL -------------------------------------------------------------------

# In SQL an absent value is NULL and NULL compares as unknown; our language makes every comparison on an
# absent value false (so that `not` is the exact complement). Each condition is therefore wrapped in
# coalesce(..., false) before it meets NOT, AND or OR. Empty sets are loaded as NULL: they are absent too.
_NOW = f"TIMESTAMP '{NOW.replace(tzinfo=None).isoformat(sep=' ')}'"


def _events(event: str) -> str:
    return f"SELECT count(*) FROM events e WHERE e.pid = p.pid AND e.type = '{event}' AND e.ts <= {_NOW}"


_LAST_CHECKOUT = (f"SELECT max(c.ts) FROM events c WHERE c.pid = p.pid AND c.type = 'checkout_started' "
                  f"AND c.ts <= {_NOW}")


def _lower(column: str) -> str:
    return f"list_transform({column}, lambda x: lower(x))"


@dataclass(frozen=True)
class Rule:
    name: str
    document: dict[str, Any]
    sql: str  # a boolean expression over profiles p (and events e), written by hand from the document

    @property
    def definition(self) -> Definition:
        return parse_segment({"name": self.name, "definition": self.document}).definition


RULES: tuple[Rule, ...] = (
    Rule("vip_like", {"field": "lifetime_value", "op": "gte", "value": "500.00"},
         "coalesce(lifetime_value >= 500.00, false)"),
    Rule("recent_repeat", {"all": [{"field": "orders_count", "op": "gte", "value": 2},
                                   {"field": "last_order_at", "op": "within_last", "value": {"days": 90}}]},
         f"coalesce(orders_count >= 2, false) AND coalesce(last_order_at >= {_NOW} - INTERVAL 90 DAY, false)"),
    Rule("reachable", {"any": [{"field": "consent.email", "op": "eq", "value": "subscribed"},
                               {"field": "country", "op": "in", "value": ["gb", "IE", "us"]}]},
         "coalesce(lower(consent_email) = 'subscribed', false) OR coalesce(lower(country) IN ('gb', 'ie', 'us'), "
         "false)"),
    Rule("not_wholesale", {"not": {"field": "tags", "op": "contains", "value": "wholesale"}},
         f"NOT coalesce(list_contains({_lower('tags')}, 'wholesale'), false)"),
    Rule("browsing_hard", {"event": "product_viewed", "op": "at_least", "count": 3, "within_days": 30},
         f"({_events('product_viewed')} AND e.ts >= {_NOW} - INTERVAL 30 DAY) >= 3"),
    Rule("lapsing_regulars", {"all": [{"field": "orders_count", "op": "gte", "value": 3},
                                      {"field": "last_order_at", "op": "not_within_last", "value": {"days": 90}},
                                      {"field": "consent.email", "op": "eq", "value": "subscribed"}]},
         f"coalesce(orders_count >= 3, false) AND coalesce(last_order_at < {_NOW} - INTERVAL 90 DAY, false) "
         "AND coalesce(lower(consent_email) = 'subscribed', false)"),
    Rule("nested_mugs", {"all": [
        {"any": [{"field": "categories", "op": "contains_any", "value": ["Mugs", "kitchen"]},
                 {"field": "products", "op": "contains", "value": "espresso cup"}]},
        {"not": {"any": [{"field": "consent.email", "op": "eq", "value": "unsubscribed"},
                         {"field": "days_since_last_order", "op": "gt", "value": 365}]}},
        {"field": "orders_count", "op": "between", "value": [1, 5]}]},
        # days_since_* counts whole days elapsed (floor), not calendar boundaries as date_diff would.
        f"(coalesce(list_has_any({_lower('categories')}, ['mugs', 'kitchen']), false) "
        f"OR coalesce(list_contains({_lower('products')}, 'espresso cup'), false)) "
        f"AND NOT (coalesce(lower(consent_email) = 'unsubscribed', false) "
        f"OR coalesce(floor((epoch({_NOW}) - epoch(last_order_at)) / 86400) > 365, false)) "
        "AND coalesce(orders_count BETWEEN 1 AND 5, false)"),
    Rule("abandoned_checkout", {"all": [
        {"event": "checkout_started", "op": "at_least", "count": 1, "within_days": 7},
        {"event": "order_placed", "op": "none", "since": {"event": "checkout_started", "last": True}}]},
        # A shopper with no checkout at all has no anchor and does not match the `since` condition.
        f"({_events('checkout_started')} AND e.ts >= {_NOW} - INTERVAL 7 DAY) >= 1 "
        f"AND ({_events('checkout_started')}) >= 1 "
        f"AND ({_events('order_placed')} AND e.ts > ({_LAST_CHECKOUT})) = 0"),
    Rule("yearly_repeat", {"event": "order_placed", "op": "at_least", "count": 2, "within_days": 365},
         f"({_events('order_placed')} AND e.ts >= {_NOW} - INTERVAL 365 DAY) >= 2"),
    # At the bound: 50 is as many as a profile keeps times of, and heavy browsers have more than that.
    Rule("heavy_browsers", {"event": "product_viewed", "op": "at_least", "count": 50, "within_days": 60},
         f"({_events('product_viewed')} AND e.ts >= {_NOW} - INTERVAL 60 DAY) >= 50"),
    Rule("browsing_within_bound", {"all": [
        {"event": "product_viewed", "op": "at_least", "count": 1, "within_days": 90},
        {"event": "product_viewed", "op": "at_most", "count": 49, "within_days": 90}]},
        f"({_events('product_viewed')} AND e.ts >= {_NOW} - INTERVAL 90 DAY) BETWEEN 1 AND 49"),
    # A whole-history count past what is kept: read from the counter.
    Rule("lifetime_browsers", {"event": "product_viewed", "op": "at_least", "count": 60},
         f"({_events('product_viewed')}) >= 60"),
)


# --- synthetic profiles ---------------------------------------------------------------------------------------


@dataclass
class Shopper:
    """One synthetic profile and its whole raw history (what DuckDB counts; ours reads only the profile)."""

    pid: int
    profile: Profile
    orders: tuple[datetime, ...]
    events: tuple[tuple[str, datetime], ...]


def _orders_count(rng: random.Random) -> int:
    # Most shoppers have 0-3 orders; a Pareto tail gives the few heavy buyers every store has.
    roll = rng.random()
    if roll < 0.35:
        return 0
    if roll < 0.70:
        return 1
    if roll < 0.82:
        return 2
    if roll < 0.89:
        return 3
    return min(3 + int(rng.paretovariate(1.3)), 300)


def _second(at: datetime) -> datetime:
    return at.replace(microsecond=0)


def _before_now(rng: random.Random, days: float) -> datetime:
    return _second(NOW - timedelta(seconds=rng.uniform(0, days * 86400)))


def _order_times(rng: random.Random, count: int) -> tuple[datetime, ...]:
    if count == 0:
        return ()
    first = _before_now(rng, 730)
    span = (NOW - first).total_seconds()
    rest = sorted(_second(first + timedelta(seconds=rng.uniform(0, span))) for _ in range(count - 1))
    return (first, *rest)


def _events_of(rng: random.Random, orders: int) -> list[tuple[str, datetime]]:
    events: list[tuple[str, datetime]] = []
    if rng.random() < 0.6:
        # A few heavy browsers view more products than a profile keeps the times of.
        views = rng.randint(40, 150) if rng.random() < 0.02 else min(int(rng.expovariate(1 / 4)) + 1, 60)
        events += [("product_viewed", _before_now(rng, 120)) for _ in range(views)]
        events += [("page_viewed", _before_now(rng, 120)) for _ in range(views * 2)]
    if rng.random() < 0.12 + 0.05 * min(orders, 3):
        events += [("checkout_started", _before_now(rng, 30)) for _ in range(rng.randint(1, 2))]
    return events


def _bought(rng: random.Random, orders: int) -> tuple[dict[str, int], dict[str, int]]:
    products: dict[str, int] = {}
    for _ in range(min(orders, 20) * rng.randint(1, 2)):
        name = rng.choices(PRODUCTS, PRODUCT_WEIGHTS)[0]
        products[name] = products.get(name, 0) + rng.randint(1, 3)
    if products and rng.random() < 0.05:
        # A product whose only order was cancelled: counted at 0 units, it was not bought.
        products[rng.choice(PRODUCTS)] = 0
    categories: dict[str, int] = {}
    for name, units in products.items():
        categories[CATEGORY_OF[name]] = categories.get(CATEGORY_OF[name], 0) + units
    return products, categories


def _consents(rng: random.Random, at: datetime) -> dict[str, Consent]:
    consents: dict[str, Consent] = {}
    for channel, share in ((Channel.EMAIL, 0.55), (Channel.SMS, 0.2)):
        if rng.random() < share:
            state = rng.choices(tuple(ConsentState), (60, 25, 15))[0]
            consents[channel.value] = Consent.model_construct(channel=channel, state=state, source="bench", at=at)
    return consents


def _spent(rng: random.Random, orders: int) -> tuple[Decimal, Decimal]:
    cents = sum(int(rng.lognormvariate(8.3, 0.7)) for _ in range(orders))
    refunded = int(cents * rng.uniform(0.05, 0.5)) if orders and rng.random() < 0.1 else 0
    return Decimal(cents - refunded) / 100, Decimal(refunded) / 100


def shopper(rng: random.Random, pid: int) -> Shopper:
    count = _orders_count(rng)
    orders = _order_times(rng, count)
    events = _events_of(rng, count)
    products, categories = _bought(rng, count)
    spent, refunded = _spent(rng, count)
    created = orders[0] - DAY if orders else _before_now(rng, 730)
    country = rng.choices(COUNTRIES, [w for _, w in COUNTRIES])[0][0] if rng.random() < 0.9 else None
    if country and rng.random() < 0.02:
        country = country.lower()  # a platform that sends "gb": matched without regard to case
    tags = tuple(sorted({name for name, per_cent in TAGS if rng.random() * 100 < per_cent}))
    touch = Touch.model_construct(source=rng.choice(SOURCES), at=created) if rng.random() < 0.7 else None
    counts: dict[str, int] = {}
    for kind, _ in events:
        counts[kind] = counts.get(kind, 0) + 1
    # What ingestion keeps (crm.profiles): the latest times of each activity type and of the counted orders.
    kept = RecentTimes.of({kind: latest(micros(at) for k, at in events if k == kind) for kind in counts},
                          latest(micros(at) for at in orders))
    profile = Profile.model_construct(
        workspace_id=WORKSPACE, profile_id=f"p{pid:08d}", email=f"shopper{pid}@example.com",
        first_name="Sam", last_name=f"Shopper{pid}", country=country, identities=(f"email:shopper{pid}@example.com",),
        store_ids=("store-1",) if rng.random() < 0.8 else ("store-1", "store-2"), tags=tags, orders_count=count,
        cancelled_count=int(rng.random() < 0.04), total_spent=spent, total_refunded=refunded, currency="USD",
        first_order_at=orders[0] if orders else None, last_order_at=orders[-1] if orders else None,
        products=products, categories=categories, skus={f"SKU-{PRODUCTS.index(n)}": u for n, u in products.items()},
        coupons={"WELCOME10": 1} if count and rng.random() < 0.15 else {},
        consents=_consents(rng, created), first_touch=touch, last_touch=touch,
        activity_counts=dict(sorted(counts.items())), recent=kept,
        last_seen_at=max((at for _, at in events), default=created), created_at=created, updated_at=created,
        revision=count + len(events))
    return Shopper(pid, profile, orders, tuple(events))


def chunk(index: int, size: int) -> list[Shopper]:
    """The profiles pid index*CHUNK .. +size: the same every run, whichever chunks are generated."""
    rng = random.Random(SEED * 1_000_003 + index)
    return [shopper(rng, index * CHUNK + offset) for offset in range(size)]


def chunks(n: int) -> Iterator[list[Shopper]]:
    for index in range(math.ceil(n / CHUNK)):
        yield chunk(index, min(CHUNK, n - index * CHUNK))


# --- DuckDB ---------------------------------------------------------------------------------------------------

PROFILE_COLUMNS = {
    "pid": "INTEGER", "lifetime_value": "DECIMAL(18,2)", "orders_count": "INTEGER",
    "first_order_at": "TIMESTAMP", "last_order_at": "TIMESTAMP", "consent_email": "VARCHAR",
    "country": "VARCHAR", "tags": "VARCHAR", "products": "VARCHAR", "categories": "VARCHAR",
}
LIST_COLUMNS = ("tags", "products", "categories")


def connect() -> duckdb.DuckDBPyConnection:
    db = duckdb.connect(":memory:")
    db.execute("SET threads = 1")
    db.execute("CREATE TABLE profiles (pid INTEGER, lifetime_value DECIMAL(18,2), orders_count INTEGER, "
               "first_order_at TIMESTAMP, last_order_at TIMESTAMP, consent_email VARCHAR, country VARCHAR, "
               "tags VARCHAR[], products VARCHAR[], categories VARCHAR[])")
    db.execute("CREATE TABLE events (pid INTEGER, type VARCHAR, ts TIMESTAMP)")
    return db


def _naive(at: datetime | None) -> str:
    # DuckDB's TIMESTAMP holds UTC wall time; NOW is written the same way, so comparisons are in UTC.
    return "" if at is None else at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def _positive(counter: dict[str, int]) -> str:
    # Counters are net of cancellations: the set is what has units left, as the evaluator reads it.
    return "|".join(key for key, units in counter.items() if units > 0)


def load(db: duckdb.DuckDBPyConnection, shoppers: Sequence[Shopper], folder: Path) -> None:
    """Append the shoppers through CSV files (the fastest load that needs no pandas/pyarrow)."""
    profiles, events = folder / "profiles.csv", folder / "events.csv"
    with profiles.open("w", newline="") as out:
        writer = csv.writer(out)
        for s in shoppers:
            p = s.profile
            email = p.consents.get("email")
            writer.writerow([s.pid, p.total_spent, p.orders_count, _naive(p.first_order_at), _naive(p.last_order_at),
                             email.state.value if email else "", p.country or "", "|".join(p.tags),
                             _positive(p.products), _positive(p.categories)])
    with events.open("w", newline="") as out:
        writer = csv.writer(out)
        for s in shoppers:
            writer.writerows([s.pid, kind, _naive(at)] for kind, at in s.events)
            writer.writerows([s.pid, "order_placed", _naive(at)] for at in s.orders)
    types = ", ".join(f"'{name}': '{kind}'" for name, kind in PROFILE_COLUMNS.items())
    lists = {name: f"CASE WHEN {name} IS NULL THEN NULL ELSE string_split({name}, '|') END" for name in LIST_COLUMNS}
    select = ", ".join(lists.get(name, name) for name in PROFILE_COLUMNS)
    db.execute(f"INSERT INTO profiles SELECT {select} FROM read_csv('{profiles}', header = false, "
               f"columns = {{{types}}}, nullstr = '')")
    db.execute(f"INSERT INTO events SELECT * FROM read_csv('{events}', header = false, "
               "columns = {'pid': 'INTEGER', 'type': 'VARCHAR', 'ts': 'TIMESTAMP'})")


def duckdb_members(db: duckdb.DuckDBPyConnection, rule: Rule) -> tuple[int, int, float]:
    """(members, sum of member pids, CPU seconds) for one rule's SQL over every loaded profile."""
    # With threads=1 DuckDB runs the query on this thread: its CPU time compares with ours, and neither
    # counts the time the shared machine gave to other processes.
    started = time.process_time()
    row = db.execute(f"SELECT count(*), coalesce(sum(pid), 0) FROM profiles p WHERE {rule.sql}").fetchone()
    elapsed = time.process_time() - started
    assert row is not None
    return int(row[0]), int(row[1]), elapsed


# --- ours -----------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    members: int = 0
    pid_sum: int = 0
    cpu_s: float = 0.0


def subjects_of(shoppers: Sequence[Shopper]) -> list[tuple[int, Subject]]:
    """The Subjects a recompute evaluates: built from each profile alone (its kept times and counters)."""
    return [(s.pid, subject_of(s.profile)) for s in shoppers]


def evaluate(rule: Definition, subjects: Sequence[tuple[int, Subject]], tally: Tally) -> None:
    """Today's design before issue 12: matches() walking the definition once per subject."""
    started = time.process_time()
    members = [pid for pid, subject in subjects if matches(rule, subject, NOW)]
    tally.cpu_s += time.process_time() - started
    tally.members += len(members)
    tally.pid_sum += sum(members)


def batch_of(subjects: Sequence[tuple[int, Subject]], definitions: Iterable[Definition], tally: Tally) -> Batch:
    """The chunk's Batch with every column the rules name read once (a run's share does the same)."""
    started = time.process_time()
    batch = Batch([subject for _, subject in subjects], NOW)
    batch.prepare(definitions)
    tally.cpu_s += time.process_time() - started
    return batch


def evaluate_columns(rule: Definition, batch: Batch, pids: Sequence[int], tally: Tally) -> None:
    """The scheduled run's way (crm.segments.columns): one pass per condition over columns read already."""
    started = time.process_time()
    members = [pids[i] for i in batch.indices(batch.matching(rule))]
    tally.cpu_s += time.process_time() - started
    tally.members += len(members)
    tally.pid_sum += sum(members)


def timed(work: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """The result of work(*args) and the CPU seconds it took."""
    started = time.process_time()
    result = work(*args)
    return result, time.process_time() - started


@dataclass
class RfmRun:
    single: RfmSketch = field(default_factory=RfmSketch)
    workers: list[RfmSketch] = field(default_factory=lambda: [RfmSketch() for _ in range(WORKERS)])
    single_s: float = 0.0
    worker_s: list[float] = field(default_factory=lambda: [0.0] * WORKERS)
    merge_s: float = 0.0
    scored: int = 0
    score_s: float = 0.0
    same_thresholds: bool = False
    thresholds: RfmThresholds | None = None


def sketch_chunk(run: RfmRun, profiles: Sequence[Profile]) -> None:
    """One worker streaming every chunk, against WORKERS each summarising an interleaved share."""
    sketch, seconds = timed(RfmSketch.of_profiles, profiles, NOW)
    run.single, merge_s = timed(run.single.merge, sketch)
    run.single_s += seconds + merge_s
    for worker in range(WORKERS):
        sketch, seconds = timed(RfmSketch.of_profiles, profiles[worker::WORKERS], NOW)
        run.workers[worker], merge_s = timed(run.workers[worker].merge, sketch)
        run.worker_s[worker] += seconds + merge_s


def finish_rfm(run: RfmRun, last: Sequence[Profile]) -> None:
    def merge_all() -> RfmSketch:
        total = run.workers[0]
        for other in run.workers[1:]:
            total = total.merge(other)
        return total

    merged, run.merge_s = timed(merge_all)
    single = RfmThresholds.from_sketch(run.single)
    run.same_thresholds = merged == run.single and RfmThresholds.from_sketch(merged) == single
    run.thresholds = single
    # Scoring needs the whole population's thresholds, so it is measured on the chunk still in memory.
    buyers = [i for p in last if (i := RfmInputs.from_profile(p, NOW)) is not None]
    _, run.score_s = timed(lambda: [group(score(buyer, single)) for buyer in buyers])
    run.scored = len(buyers)


# --- one size -------------------------------------------------------------------------------------------------


@dataclass
class SizeRun:
    n: int
    ours: dict[str, Tally]  # crm.segments.columns, as the scheduled run evaluates
    before: dict[str, Tally]  # matches() one subject at a time: the run before issue 12
    columns: Tally  # reading every column the rules name into each chunk's Batch (once, for all rules)
    duck: dict[str, tuple[int, int, float]]
    subject_s: float
    generate_s: float
    load_s: float
    rfm: RfmRun
    item_bytes: float = 0.0
    deserialise_s: float = 0.0  # per profile: from_item + Profile.model_validate, as a scan would
    chunked: bool = False
    mismatches: list[str] = field(default_factory=list)

    @property
    def ours_cpu_s(self) -> float:
        return sum(t.cpu_s for t in self.ours.values())

    @property
    def ours_all_in_s(self) -> float:
        return self.ours_cpu_s + self.columns.cpu_s

    @property
    def before_cpu_s(self) -> float:
        return sum(t.cpu_s for t in self.before.values())

    @property
    def duck_s(self) -> float:
        return sum(d[2] for d in self.duck.values())


def warm_up(shoppers: Sequence[Shopper], definitions: dict[str, Definition]) -> None:
    """Run every timed path once first: the first calls pay for pydantic's and DuckDB's one-off set-up."""
    subjects = subjects_of(shoppers)
    batch = batch_of(subjects, definitions.values(), Tally())
    for definition in definitions.values():
        evaluate(definition, subjects, Tally())
        evaluate_columns(definition, batch, [pid for pid, _ in subjects], Tally())
    RfmSketch.of_profiles([s.profile for s in shoppers], NOW)


def measure_items(shoppers: Sequence[Shopper]) -> tuple[float, float]:
    """Mean profile item size in bytes and CPU seconds per profile to read one back from its item."""
    sample = [s.profile for s in shoppers[:ITEM_SAMPLE]]
    items = [to_item(keys.profile(WORKSPACE, p.profile_id), "profile", p) for p in sample]
    size = sum(item_size(item) for item in items) / len(items)
    _, seconds = timed(lambda: [Profile.model_validate(from_item(item)) for item in items])
    return size, seconds / len(items)


def run_size(n: int, definitions: dict[str, Definition], compare_before: bool = True) -> SizeRun:
    db = connect()
    ours = {name: Tally() for name in definitions}
    before = {name: Tally() for name in definitions}
    columns = Tally()
    rfm = RfmRun()
    generate_s = load_s = subject_s = 0.0
    item_bytes = deserialise_s = 0.0
    last: list[Shopper] = []
    with tempfile.TemporaryDirectory(prefix="bench-segments-") as folder:
        for index in range(math.ceil(n / CHUNK)):
            started = time.perf_counter()
            gc.unfreeze()
            last = []  # drop the previous chunk before making the next: one chunk of Profiles at a time
            last = chunk(index, min(CHUNK, n - index * CHUNK))
            generate_s += time.perf_counter() - started
            # Millions of live objects make every full collection slow; frozen, they are not traversed, so a
            # section's time no longer depends on whether a collection happened to fall inside it.
            gc.collect()
            gc.freeze()
            if index == 0:
                item_bytes, deserialise_s = measure_items(last)
                warm_up(last[:200], definitions)
            subjects, seconds = timed(subjects_of, last)
            subject_s += seconds
            batch, pids = batch_of(subjects, definitions.values(), columns), [pid for pid, _ in subjects]
            for name, definition in definitions.items():
                evaluate_columns(definition, batch, pids, ours[name])
                if compare_before:
                    evaluate(definition, subjects, before[name])
            del batch
            sketch_chunk(rfm, [s.profile for s in last])
            started = time.perf_counter()
            load(db, last, Path(folder))
            load_s += time.perf_counter() - started
            print(f"  .. {n:,}: chunk {index + 1}/{math.ceil(n / CHUNK)} done", file=sys.stderr, flush=True)
    finish_rfm(rfm, [s.profile for s in last])
    gc.unfreeze()
    duck = {rule.name: duckdb_members(db, rule) for rule in RULES if rule.name in definitions}
    db.close()
    run = SizeRun(n, ours, before, columns, duck, subject_s, generate_s, load_s, rfm, item_bytes, deserialise_s,
                  n > CHUNK)
    for name, tally in ours.items():
        members, pid_sum, _ = duck[name]
        if (tally.members, tally.pid_sum) != (members, pid_sum):
            run.mismatches.append(f"{name}: ours {tally.members} members (pid sum {tally.pid_sum}), "
                                  f"DuckDB {members} (pid sum {pid_sum})")
        old = before[name]
        if compare_before and (old.members, old.pid_sum) != (members, pid_sum):
            run.mismatches.append(f"{name}: matches() {old.members} members (pid sum {old.pid_sum}), "
                                  f"DuckDB {members} (pid sum {pid_sum})")
    return run


def compare_counts(n: int) -> dict[str, tuple[int, int]]:
    """Member counts, ours and DuckDB's, for every rule over n profiles (the unit test's entry point)."""
    run = run_size(n, {rule.name: rule.definition for rule in RULES}, compare_before=False)
    return {name: (tally.members, run.duck[name][0]) for name, tally in run.ours.items()} | {
        f"{name} (pid sum)": (tally.pid_sum, run.duck[name][1]) for name, tally in run.ours.items()}


# --- report ---------------------------------------------------------------------------------------------------


def times(ours: float, duck: float) -> str:
    # Three significant digits: the rates differ by orders of magnitude, and 0.00x would hide which.
    return f"{ours / duck:.3g}x" if duck else "n/a"


def rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds else "-"


def print_rules(run: SizeRun) -> None:
    rows = []
    for name, tally in run.ours.items():
        members, _, seconds = run.duck[name]
        old = run.before[name]
        rows.append([name, f"{tally.members:,}", f"{members:,}", "yes" if tally.members == members else "NO",
                     rate(run.n, tally.cpu_s), rate(run.n, seconds), times(seconds, tally.cpu_s),
                     rate(run.n, old.cpu_s), times(seconds, old.cpu_s)])
    pairs = run.n * len(run.ours)
    rows.append(["all rules (profiles x rules / s)", "", "", "", rate(pairs, run.ours_cpu_s),
                 rate(pairs, run.duck_s), times(run.duck_s, run.ours_cpu_s), rate(pairs, run.before_cpu_s),
                 times(run.duck_s, run.before_cpu_s)])
    rows.append([f"  + columns read ({run.columns.cpu_s:.2f} s)", "", "", "", rate(pairs, run.ours_all_in_s),
                 rate(pairs, run.duck_s), times(run.duck_s, run.ours_all_in_s), "", ""])
    print(table(["rule", "ours members", "DuckDB members", "same", "ours profiles/s", "DuckDB rows/s",
                 "ours/DuckDB rate", "before: matches()/s", "before/DuckDB"], rows))


def print_rfm(run: SizeRun) -> None:
    r = run.rfm
    buyers = r.single.buyers
    slowest = max(r.worker_s)
    print(f"  RFM sketch ({buyers:,} buyers): 1 worker {rate(run.n, r.single_s)} profiles/s ({r.single_s:.2f} s); "
          f"{WORKERS} workers {sum(r.worker_s):.2f} s CPU in all, slowest {slowest:.2f} s + merge "
          f"{r.merge_s * 1000:.1f} ms -> {rate(run.n, slowest + r.merge_s)} profiles/s wall if parallel; "
          f"merged sketch and thresholds identical to 1 worker's: {'yes' if r.same_thresholds else 'NO'}")
    print(f"  RFM scoring + group: {rate(r.scored, r.score_s)} buyers/s (the {r.scored:,} buyers of the last chunk)")


@dataclass(frozen=True)
class Cost:
    rru: float
    segments: int
    cpu_s: float
    wru: float
    monthly: dict[str, float]


def recompute_cost(run: SizeRun, n: int, churn_percent: float) -> Cost:
    """A daily recompute: Scan every profile item, evaluate every rule, write the membership differences."""
    # Eventually consistent Scan: 0.5 RRU per 4 KB of items read, the size summed over each 1 MB page.
    rru = math.ceil(n * run.item_bytes / 4096) * 0.5
    per_profile = run.deserialise_s + (run.subject_s + run.ours_all_in_s + run.rfm.single_s + run.rfm.score_s * (
        run.rfm.single.buyers / max(run.rfm.scored, 1))) / run.n
    cpu_s = per_profile * n
    segments = max(1, math.ceil(cpu_s / (LAMBDA_LIMIT_S * 0.8)))  # 20 % headroom for Scan's own latency
    members = sum(t.members for t in run.ours.values()) * n / run.n
    wru = math.ceil(members * churn_percent / 100)  # one put or delete of a small (< 1 KB) membership item each
    monthly = {
        "DynamoDB Scan RRU": rru * RECOMPUTES_PER_MONTH * RRU_PER_MILLION / 1e6,
        "DynamoDB membership WRU": wru * RECOMPUTES_PER_MONTH * WRU_PER_MILLION / 1e6,
        "Lambda duration (1769 MB)": cpu_s * LAMBDA_GB * LAMBDA_GB_SECOND * RECOMPUTES_PER_MONTH,
        "Lambda requests": segments * RECOMPUTES_PER_MONTH * LAMBDA_REQUEST,
    }
    return Cost(rru, segments, cpu_s, wru, monthly)


def print_cost(run: SizeRun, churn_percent: float) -> None:
    cost = recompute_cost(run, run.n, churn_percent)
    print(f"  recompute on DynamoDB: profile item {run.item_bytes:,.0f} B (mean of {ITEM_SAMPLE:,} to_item), "
          f"read back (from_item + model_validate) {run.deserialise_s * 1e6:.0f} us/profile")
    print(f"    full Scan {cost.rru:,.0f} RRU; CPU {cost.cpu_s:,.0f} s (read back + subjects + {len(run.ours)} rules "
          f"+ RFM) -> {cost.segments} parallel scan segment(s) of <= {LAMBDA_LIMIT_S * 0.8:.0f} s")
    print(f"    {churn_percent:g} % of {sum(t.members for t in run.ours.values()):,} memberships change: "
          f"{cost.wru:,.0f} WRU")
    rows = [[name, f"${dollars:.4f}"] for name, dollars in cost.monthly.items()]
    rows.append(["total, daily recompute", f"${sum(cost.monthly.values()):.2f}"])
    print(table([f"monthly, {run.n:,} profiles", "$/month"], rows, indent="    "))


def print_size(run: SizeRun, churn_percent: float) -> None:
    chunks_note = f", generated and evaluated in chunks of {CHUNK:,}" if run.chunked else ""
    print(f"\n{run.n:,} profiles{chunks_note}: generated in {run.generate_s:.0f} s, loaded into DuckDB in "
          f"{run.load_s:.0f} s, Subjects built in {run.subject_s:.1f} s CPU")
    print_rules(run)
    print_rfm(run)
    print_cost(run, churn_percent)
    for mismatch in run.mismatches:
        print(f"  !!! MEMBER COUNT MISMATCH: {mismatch}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--churn-percent", type=float, default=5.0,
                        help="the share of memberships that change per daily recompute")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    definitions = {rule.name: rule.definition for rule in RULES}
    print("Segment recompute benchmark: crm.segments.columns (the run's evaluation) and, as the labelled baseline,")
    print("crm.segments.evaluate.matches one subject at a time, against DuckDB's SQL; same profiles, one run")
    print(f"python {platform.python_version()}, duckdb {metadata.version('duckdb')} (threads=1), pydantic "
          f"{metadata.version('pydantic')}, {os.cpu_count()} cpus; seed {SEED}, now {NOW.isoformat()}")
    print("ours: CPU time over prebuilt Subjects, one thread, each field's column read once a chunk for every rule")
    print("(like DuckDB's load; its time is shown, and the rate with it); DuckDB: CPU time of SELECT count(*)")
    print("with the rule as WHERE, one thread. Members are also checked by the sum of their ids.")
    failed = False
    rates: dict[int, dict[str, Any]] = {}
    for n in args.sizes:
        run = run_size(n, definitions)
        print_size(run, args.churn_percent)
        failed = failed or bool(run.mismatches) or not run.rfm.same_thresholds
        rates[n] = {"ours_to_duckdb": run.duck_s / run.ours_cpu_s, "before_to_duckdb": run.duck_s / run.before_cpu_s,
                    "same_members": not run.mismatches}
    print(f"\n(bench ran in {time.perf_counter() - started:.0f} s)")
    record("segments", {"sizes": rates})
    if failed:
        print("!!! FAILED: member counts or RFM thresholds differ (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
