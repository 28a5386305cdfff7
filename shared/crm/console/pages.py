"""What each console page shows, read through the ports the marketer API uses (no AWS here): plain
functions returning plain values for the templates (crm.console.render)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from crm.customers import PHONE_SHAPE, find_profile, timeline_page, typed_page
from crm.flows import stats_query
from crm.flows.ports import FlowCatalogue, FlowCounters, RunStore, SplitWinners
from crm.models.flows import FlowRun
from crm.models.profile import OrderRecord, Profile, TimelineEntry
from crm.models.reports import RepeatData, RevenueData
from crm.ports import CurrencyStore, ProfileRepository, SegmentStore
from crm.reports import query as reports
from crm.segments import service as segments

# A name search reads the workspace's profiles one by one (no index holds names): it stops at this many
# matches, and the page says to search by email or phone for a sure answer.
MOST_NAME_MATCHES = 20
# ... and reads at most this many profiles (a few seconds, a few hundred read units): a larger workspace is
# searched by name in part, and the page says so.
MOST_NAME_READS = 20_000
TIMELINE_PAGE = 20
ORDERS_PAGE = 10
CONSENT_LINES = 20  # the newest statements and requests shown beside the consents (the rest: the timeline)
CONSENT_TYPES = ("consent_changed", "consent_requested")
LARGEST_SEGMENTS = 5


@dataclass(frozen=True)
class FlowRevenue:
    flow_id: str
    name: str
    status: str
    revenue: Decimal
    converted: int


@dataclass(frozen=True)
class Dashboard:
    first: date
    last: date
    currency: str | None
    revenue: RevenueData
    repeat: RepeatData
    flows: tuple[FlowRevenue, ...]
    segments: tuple[dict[str, Any], ...]

    @property
    def flows_revenue(self) -> Decimal:
        return sum((f.revenue for f in self.flows), Decimal("0"))

    @property
    def empty(self) -> bool:
        return self.revenue.orders == 0 and not any(s["size"] for s in self.segments)


@dataclass(frozen=True)
class FlowDeps:
    catalogue: FlowCatalogue
    counters: FlowCounters
    winners: SplitWinners
    currency: CurrencyStore


def flows_earned(flows: FlowDeps, workspace_id: str, first: date, last: date, today: date) -> tuple[FlowRevenue, ...]:
    """Each flow of the workspace (the built-ins first) with what it earned from ``first`` to ``last``."""
    period = {"from": first.isoformat(), "to": last.isoformat()}
    earned = []
    for record in flows.catalogue.list_flows(workspace_id):
        stats = stats_query.flow_stats(flows.catalogue, flows.counters, flows.winners, flows.currency, workspace_id,
                                       record.flow_id, period, today)
        earned.append(FlowRevenue(record.flow_id, record.definition.name, record.status.value, stats.totals.revenue,
                                  stats.totals.converted))
    return tuple(earned)


def dashboard(source: reports.ReportSource, flows: FlowDeps, segment_store: SegmentStore, workspace_id: str,
              query: Mapping[str, str], now: datetime) -> Dashboard:
    """Revenue, orders, AOV and repeat rate over ``?from=&to=`` (the reports' defaults: the last year), what
    the flows earned over the same days, and the largest segments with their growth. ReportQueryInvalid or
    StatsQueryInvalid name a bad parameter."""
    revenue = reports.build(source, workspace_id, "revenue", query, now)
    repeat = reports.build(source, workspace_id, "repeat_rate", query, now)
    earned = flows_earned(flows, workspace_id, revenue.from_, revenue.to, now.date())
    listed = sorted(segments.list_segments(segment_store, workspace_id), key=lambda s: -(s["size"] or 0))
    largest = tuple({**s, "growth": segments.segment_view(segment_store, workspace_id, s["id"])["growth"]}
                    for s in listed[:LARGEST_SEGMENTS] if s["size"])
    assert isinstance(revenue.data, RevenueData) and isinstance(repeat.data, RepeatData)
    return Dashboard(revenue.from_, revenue.to, revenue.currency, revenue.data, repeat.data,
                     tuple(sorted(earned, key=lambda f: -f.revenue)), largest)


def segment_growth(segment_store: SegmentStore, workspace_id: str) -> dict[str, tuple[int, str]]:
    """Each listed segment's growth since its size was first kept, and that day (the segment list's "Growth")."""
    return {record.segment_id: (record.growth[-1].size - record.growth[0].size, record.growth[0].at.date().isoformat())
            for record in segment_store.list_segments(workspace_id) if len(record.growth) > 1}


@dataclass(frozen=True)
class SearchResult:
    asked: str
    kind: str  # "email", "phone" or "name"
    profiles: tuple[Profile, ...] = ()
    problem: str | None = None
    incomplete: bool = False  # a name search stopped at MOST_NAME_MATCHES


def search_kind(text: str) -> str:
    if "@" in text:
        return "email"
    return "phone" if PHONE_SHAPE.fullmatch(text.strip()) else "name"


def _name_matches(profile: Profile, words: list[str]) -> bool:
    name = f"{profile.first_name or ''} {profile.last_name or ''}".lower()
    return all(word in name for word in words)


def search_customers(repository: ProfileRepository, workspace_id: str, text: str) -> SearchResult:
    """Customers by email or phone (exact, through their identity), or by name (every word a part of the first
    or last name, case aside)."""
    asked = text.strip()
    kind = search_kind(asked)
    if not asked:
        return SearchResult(asked, kind, problem="type an email, a phone number or a name")
    if kind == "name":
        words = asked.lower().split()
        found: list[Profile] = []
        for read, profile in enumerate(repository.workspace_profiles(workspace_id), start=1):
            if profile.merged_into is None and _name_matches(profile, words):
                found.append(profile)
            if len(found) >= MOST_NAME_MATCHES or read >= MOST_NAME_READS:
                return SearchResult(asked, kind, tuple(found), incomplete=True)
        return SearchResult(asked, kind, tuple(found))
    try:
        one = find_profile(repository, workspace_id, **{kind: asked})
    except ValueError as error:
        return SearchResult(asked, kind, problem=str(error).split(": ", 1)[-1])
    return SearchResult(asked, kind, (one,) if one else ())


@dataclass(frozen=True)
class OrdersPage:
    profile_id: str
    orders: tuple[OrderRecord, ...]  # newest first, each with its items
    next_cursor: str | None = None


def customer_orders(repository: ProfileRepository, profile: Profile, cursor: str | None) -> OrdersPage:
    """A page of the customer's orders (its merged profiles' too) with their items, read through the order lines
    of its timeline. ValueError for a cursor this page did not hand out."""
    lines, next_cursor = typed_page(repository, profile, ("order",), ORDERS_PAGE, cursor)
    refs = [(store_id, order_id) for store_id, _, order_id in (line.ref.partition(":") for line in lines)]
    records = repository.order_records(profile.workspace_id, refs)
    placed = (records.get(ref) for ref in refs)
    return OrdersPage(profile.profile_id, tuple(r for r in placed if r is not None and r.order is not None),
                      next_cursor)


@dataclass(frozen=True)
class Customer:
    profile: Profile
    segments: tuple[tuple[str, str], ...]  # (id, name) of the segments it is in
    timeline: dict[str, Any] = field(default_factory=dict)
    runs: tuple[tuple[str, FlowRun], ...] = ()  # (flow name, run), newest first: each step says what was sent
    orders: OrdersPage | None = None
    consent_history: tuple[TimelineEntry, ...] = ()  # newest first


def customer(repository: ProfileRepository, segment_store: SegmentStore, flows: FlowDeps, runs: RunStore,
             workspace_id: str, profile_id: str, cursor: str | None,
             orders_cursor: str | None = None) -> Customer | None:
    """A customer's 360 page: the profile (a merged one's survivor), its consents' history, its segments, its flow
    runs with the messages they sent, a page of its orders and one of its timeline. ValueError for a cursor this
    page did not hand out."""
    profile = repository.get_profile(workspace_id, profile_id)
    if profile is None:
        return None
    names = {s["id"]: s["name"] for s in segments.list_segments(segment_store, workspace_id)}
    held = segment_store.held_segments(workspace_id, profile.profile_id)
    member_of = sorted(held.segment_ids if held else ())
    flow_names = {f.flow_id: f.definition.name for f in flows.catalogue.list_flows(workspace_id)}
    its_runs = sorted(runs.runs_of_profile(workspace_id, profile.profile_id), key=lambda r: r.entered_at, reverse=True)
    return Customer(profile, tuple((s, names.get(s, s)) for s in member_of),
                    timeline_page(repository, profile, TIMELINE_PAGE, cursor),
                    tuple((flow_names.get(r.flow_id, r.flow_id), r) for r in its_runs),
                    customer_orders(repository, profile, orders_cursor),
                    tuple(typed_page(repository, profile, CONSENT_TYPES, CONSENT_LINES, None)[0]))
