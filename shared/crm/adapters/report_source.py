"""Where the reports read (crm.reports.query.ReportSource; docs/reports.md "Where the data comes from").

A period's orders and checkouts are the order and ``checkout_started`` lines of the profiles' timelines: the
workspace's profiles are read through the sparse index ProfilesByWorkspace (never a Scan of the table), and
of those whose latest order or checkout falls on or after the period's first day, one Query each reads the
timeline of the period's days only (the timeline's sort key starts with the time; a filter keeps only order
and checkout lines in the answer). An order line carries the order's newest version: counted or not, its
net after refunds and its currency, and the channel of the touch that led to it.

A container keeps a period's facts for FACTS_TTL: the reports of one screen (or one `make demo`) asked one
after another read the workspace once, and a report is at most that much behind.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from datetime import time as dt_time
from decimal import Decimal
from typing import Any

from crm.adapters import keys
from crm.adapters.clients import query_items
from crm.adapters.items import from_item
from crm.adapters.timeline_items import LINES_SPAN, entries_of, type_filter
from crm.changes import distinct_entries
from crm.clock import as_utc
from crm.config import settings
from crm.flows.ports import FlowCatalogue, FlowCounters
from crm.models.canonical import ActivityType
from crm.models.currency import CurrencySettings
from crm.models.flow_stats import ALL_STEPS, CounterName
from crm.models.profile import Profile, TimelineEntry
from crm.models.reports import OrderFact
from crm.ports import CurrencyStore, ProfileRepository, SegmentStore
from crm.reports.compute import Recovered
from crm.reports.query import PeriodFacts
from crm.segments.builtin import BUILTINS

# Timelines read at once: each is one small Query, so the wait is the round trips, not the units.
PARALLEL_READS = 16
FACTS_TTL = 60.0  # seconds
_CHECKOUT = ActivityType.CHECKOUT_STARTED.value
_FACTS: dict[tuple[str, str, date, date], tuple[float, PeriodFacts]] = {}


def _active_since(profile: Profile, since: datetime) -> bool:
    """Whether the profile can hold an order or a checkout line on or after ``since``: its latest of each is."""
    latest = [at for at in (profile.last_order_at, profile.last_checkout.at if profile.last_checkout else None)
              if at is not None]
    return any(as_utc(at) >= since for at in latest)


class DynamoReportSource:
    def __init__(self, profiles: ProfileRepository, segments: SegmentStore, catalogue: FlowCatalogue,
                 counters: FlowCounters, currency: CurrencyStore, table_name: str | None = None) -> None:
        self.profiles_repository = profiles
        self.segments = segments
        self.catalogue = catalogue
        self.counters = counters
        self.currency = currency
        self.table = table_name or settings().table_name

    def _lines(self, profile: Profile, first: date, last: date) -> list[TimelineEntry]:
        """The period's order and checkout lines of a live profile and of every profile merged into it: lines
        written before a merge stay on the merged profile (crm.changes.distinct_entries picks one per order)."""
        return [entry for profile_id in (profile.profile_id, *profile.merged_from)
                for entry in self._timeline(profile.workspace_id, profile_id, first, last)]

    def _timeline(self, workspace_id: str, profile_id: str, first: date, last: date) -> list[TimelineEntry]:
        pk = keys.profile(workspace_id, profile_id)["pk"]
        # Lines sort by "T#<ISO time>#...": the period's days lie between "T#<first>" and "T#<last>~". A group of a
        # folded request's lines is keyed like its earliest, up to LINES_SPAN before its others.
        start, end = f"{keys.TIMELINE_PREFIX}{first.isoformat()}", f"{keys.TIMELINE_PREFIX}{last.isoformat()}~"
        earliest = datetime.combine(first, dt_time.min, UTC) - LINES_SPAN
        expression, names, values = type_filter(("order", _CHECKOUT))
        request: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "FilterExpression": expression, "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {":pk": {"S": pk},
                                          ":first": {"S": f"{keys.TIMELINE_PREFIX}{earliest.isoformat()}"},
                                          ":last": {"S": end}, **values}}
        return [entry for item in query_items(request) for entry in entries_of(from_item(item))
                if entry.type in ("order", _CHECKOUT) and start <= entry.sort_key <= end]

    def period_facts(self, workspace_id: str, first: date, last: date) -> PeriodFacts:
        key = (self.table, workspace_id, first, last)
        held = _FACTS.get(key)
        if held is not None and time.monotonic() < held[0]:
            return held[1]
        facts = self._read_facts(workspace_id, first, last)
        _FACTS[key] = (time.monotonic() + FACTS_TTL, facts)
        return facts

    def _read_facts(self, workspace_id: str, first: date, last: date) -> PeriodFacts:
        since = datetime.combine(first, dt_time.min, UTC)
        active = [p for p in self.profiles_repository.workspace_profiles(workspace_id) if _active_since(p, since)]
        orders: list[OrderFact] = []
        checkouts: list[tuple[str, datetime]] = []
        with ThreadPoolExecutor(PARALLEL_READS) as pool:
            timelines = pool.map(lambda profile: (profile, self._lines(profile, first, last)), active)
            for profile, entries in timelines:
                for entry in distinct_entries(entries):
                    if entry.type == "order" and entry.summary.get("counted"):
                        orders.append(OrderFact(profile_id=profile.profile_id, placed_at=entry.occurred_at,
                                                currency=str(entry.summary["currency"]),
                                                net=Decimal(str(entry.summary.get("net", "0"))),
                                                last_touch_channel=entry.summary.get("channel")))
                    elif entry.type == _CHECKOUT:
                        checkouts.append((profile.profile_id, entry.occurred_at))
        return PeriodFacts(
            orders=tuple(orders), checkouts=tuple(checkouts),
            first_order_at={p.profile_id: p.first_order_at for p in active if p.first_order_at is not None},
            first_touch={p.profile_id: p.first_touch.channel for p in active if p.first_touch is not None})

    def profiles(self, workspace_id: str) -> Iterator[tuple[Profile, frozenset[str]]]:
        for profile, held in self.segments.profiles_with_segments(workspace_id):
            if profile.merged_into is None:
                yield profile, held.segment_ids

    def segment_names(self, workspace_id: str) -> Mapping[str, str]:
        return {**{b.id: b.name for b in BUILTINS},
                **{r.segment_id: r.name for r in self.segments.list_segments(workspace_id)}}

    def recovered(self, workspace_id: str, first: date, last: date) -> list[Recovered]:
        found: list[Recovered] = []
        for flow in self.catalogue.list_flows(workspace_id):
            found += [Recovered(day=row.day, orders=int(row.counts.get(CounterName.RECOVERED, 0)),
                                revenue=row.counts.get(CounterName.RECOVERED_REVENUE, Decimal(0)))
                      for row in self.counters.rows(workspace_id, flow.flow_id, first, last)
                      if row.step_id == ALL_STEPS and row.variant == ALL_STEPS]
        return found

    def currency_settings(self, workspace_id: str) -> CurrencySettings | None:
        return self.currency.settings(workspace_id)
