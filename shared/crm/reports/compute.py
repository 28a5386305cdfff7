"""Each report's figures from the workspace's facts: pure functions, no AWS (docs/reports.md).

Every amount is first converted to the reporting currency and rounded to the cent (half-even), order by
order, then added: so the revenue of the buckets adds up to the period's, and each touch's channels to it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from crm.clock import as_utc
from crm.models.currency import CurrencySettings
from crm.models.profile import Profile
from crm.models.reports import (
    AbandonmentData,
    AbandonmentPoint,
    ChannelRevenue,
    ChannelsData,
    ClvBin,
    CohortRow,
    CohortsData,
    Interval,
    OrderFact,
    PredictionsData,
    RepeatData,
    RepeatPoint,
    RevenueData,
    RevenuePoint,
    RfmCell,
    RfmData,
    RfmGroupSize,
    SegmentChurn,
)
from crm.money import CENT
from crm.reporting import default_currency
from crm.segments.rfm import GRID, GROUP_NAMES, RfmInputs, RfmSketch, RfmThresholds, score

RATE = Decimal("0.0001")
# A checkout followed by an order of the same shopper within this many hours was completed, not abandoned.
COMPLETION_WINDOW = timedelta(hours=24)
COMPLETION_DAYS = timedelta(days=1)  # the days of orders read past a period for it
# A churn probability at or above this puts a shopper "at risk" in the predictions report.
AT_RISK = Decimal("0.5")
CLV_BINS = 10
# The CLV histogram's bins end at this percentile, the rest in one overflow bin ">= X", when the shoppers above
# it stretch the axis to more than twice the range of the others (one big spender would leave every other
# shopper in the first of ten bins).
CLV_CLIP_PERCENTILE = 95
UNTRACKED = "(untracked)"


def rate(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    return (Decimal(part) / Decimal(whole)).quantize(RATE, rounding=ROUND_HALF_EVEN) if whole else None


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


# --- periods ----------------------------------------------------------------------------------------------

def bucket_of(day: date, interval: Interval) -> date:
    """The first day of the day's bucket: itself, its week's Monday, or its month's first day."""
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def _next_bucket(start: date, interval: Interval) -> date:
    if interval == "day":
        return start + timedelta(days=1)
    if interval == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def buckets(first: date, last: date, interval: Interval) -> list[date]:
    """Every bucket from the one holding ``first`` to the one holding ``last``, empty ones too."""
    found, start = [], bucket_of(first, interval)
    while start <= last:
        found.append(start)
        start = _next_bucket(start, interval)
    return found


def months_between(first: date, later: date) -> int:
    return (later.year - first.year) * 12 + later.month - first.month


# --- money in the reporting currency -----------------------------------------------------------------------

@dataclass(frozen=True)
class Converted:
    """The period's orders in the reporting currency (rounded to the cent each), and those left out."""

    currency: str | None
    orders: tuple[tuple[OrderFact, Decimal], ...]
    unconverted: tuple[str, ...]


def convert(orders: Iterable[OrderFact], settings: CurrencySettings | None) -> Converted:
    """Each order's worth in the workspace's reporting currency: its settings' rates; without settings, the
    currency most orders are in (as a profile without settings reports). Orders in a currency without a
    rate are left out and named."""
    facts = list(orders)
    if settings is None:
        currency = default_currency(Counter(fact.currency for fact in facts))
        rates = {currency: Decimal(1)} if currency else {}
    else:
        currency = settings.reporting_currency
        rates = {code: found for code in {f.currency for f in facts} if (found := settings.rate(code)) is not None}
    kept = tuple((fact, _cents(fact.net * rates[fact.currency])) for fact in facts if fact.currency in rates)
    return Converted(currency, kept, tuple(sorted({f.currency for f in facts} - set(rates))))


def _in_period(orders: Converted, first: date, last: date) -> list[tuple[OrderFact, Decimal]]:
    return [(fact, amount) for fact, amount in orders.orders if first <= as_utc(fact.placed_at).date() <= last]


# --- the reports -------------------------------------------------------------------------------------------

def revenue(orders: Converted, first: date, last: date, interval: Interval) -> RevenueData:
    """Revenue, orders and average order value per bucket and over the period."""
    count: Counter[date] = Counter()
    total: dict[date, Decimal] = defaultdict(Decimal)
    for fact, amount in _in_period(orders, first, last):
        start = bucket_of(as_utc(fact.placed_at).date(), interval)
        count[start] += 1
        total[start] += amount
    points = tuple(RevenuePoint(start=start, orders=count[start], revenue=_cents(total[start]),
                                average_order_value=_cents(total[start] / count[start]) if count[start] else None)
                   for start in buckets(first, last, interval))
    orders_count, revenue_total = sum(count.values()), _cents(sum(total.values(), Decimal(0)))
    return RevenueData(orders=orders_count, revenue=revenue_total,
                       average_order_value=_cents(revenue_total / orders_count) if orders_count else None,
                       points=points)


def _first_orders(orders: Sequence[OrderFact], first_order_at: Mapping[str, datetime]) -> dict[str, datetime]:
    """Each customer's first counted order: the profile's, or the earliest one read when it says none."""
    found: dict[str, datetime] = {}
    for fact in orders:
        placed = as_utc(fact.placed_at)
        known = first_order_at.get(fact.profile_id)
        candidate = min(as_utc(known), placed) if known is not None else placed
        found[fact.profile_id] = min(found.get(fact.profile_id, candidate), candidate)
    return found


def repeat_rate(orders: Converted, first_order_at: Mapping[str, datetime], first: date, last: date,
                interval: Interval) -> RepeatData:
    """Per bucket, the customers who ordered and those of them returning (a counted order before); over the
    period, the customers who ordered and those with two orders or more by its end."""
    facts = [fact for fact, _ in _in_period(orders, first, last)]
    firsts = _first_orders(facts, first_order_at)
    customers: dict[date, set[str]] = defaultdict(set)
    returning: dict[date, set[str]] = defaultdict(set)
    orders_of: Counter[str] = Counter()
    for fact in facts:
        start = bucket_of(as_utc(fact.placed_at).date(), interval)
        customers[start].add(fact.profile_id)
        orders_of[fact.profile_id] += 1
        if firsts[fact.profile_id] < as_utc(fact.placed_at):
            returning[start].add(fact.profile_id)
    points = tuple(RepeatPoint(start=start, customers=len(customers[start]),
                               returning_customers=len(returning[start]),
                               repeat_rate=rate(len(returning[start]), len(customers[start])))
                   for start in buckets(first, last, interval))
    # Two orders by the period's end: two in the period, or one in it after an earlier first order.
    repeaters = {pid for pid, n in orders_of.items() if n >= 2} | {pid for ids in returning.values() for pid in ids}
    return RepeatData(customers=len(orders_of), repeat_customers=len(repeaters),
                      repeat_rate=rate(len(repeaters), len(orders_of)), points=points)


def cohorts(orders: Converted, first_order_at: Mapping[str, datetime], first: date, last: date) -> CohortsData:
    """Customers by the month of their first counted order (in the period), and for each later month up to
    the period's end the share of them who ordered in it."""
    facts = [fact for fact, _ in _in_period(orders, first, last)]
    firsts = _first_orders(facts, first_order_at)
    members: dict[date, set[str]] = defaultdict(set)
    for profile_id, at in firsts.items():
        if first <= at.date() <= last:
            members[at.date().replace(day=1)].add(profile_id)
    active: dict[tuple[date, int], set[str]] = defaultdict(set)
    for fact in facts:
        cohort = firsts[fact.profile_id].date().replace(day=1)
        if fact.profile_id in members.get(cohort, ()):
            active[(cohort, months_between(cohort, as_utc(fact.placed_at).date()))].add(fact.profile_id)
    rows = []
    for cohort in sorted(members):
        size = len(members[cohort])
        shares = tuple(rate(len(active[(cohort, k)]), size) or Decimal(0)
                       for k in range(months_between(cohort, last) + 1))
        rows.append(CohortRow(cohort=cohort, customers=size, retention=shares))
    return CohortsData(cohorts=tuple(rows))


def rfm(profiles: Iterable[Profile], now: datetime) -> RfmData:
    """The R x FM grid of the workspace's buyers, scored by the quintiles of the same buyers (as the
    segments' run scores them), and each RFM group's size."""
    inputs = [found for profile in profiles if (found := RfmInputs.from_profile(profile, now)) is not None]
    cells: Counter[tuple[int, int]] = Counter()
    if inputs:
        thresholds = RfmThresholds.from_sketch(RfmSketch.of(inputs, exact_limit=None))
        for one in inputs:
            scored = score(one, thresholds)
            cells[(scored.r, scored.fm)] += 1
    grid = tuple(RfmCell(recency=r, frequency_monetary=fm, group=GRID[fm][r - 1].value, profiles=cells[(r, fm)])
                 for fm in range(5, 0, -1) for r in range(1, 6))
    sizes: Counter[str] = Counter()
    for cell in grid:
        sizes[cell.group] += cell.profiles
    groups = tuple(RfmGroupSize(group=g.value, name=GROUP_NAMES[g], profiles=sizes[g.value])
                   for g in sorted(GROUP_NAMES, key=lambda g: (-sizes[g.value], g.value)))
    return RfmData(buyers=len(inputs), cells=grid, groups=groups)


def channels(orders: Converted, first_touch: Mapping[str, str | None], first: date, last: date) -> ChannelsData:
    """The period's revenue by the channel of the shopper's first touch and by the order's last touch."""
    count: Counter[tuple[str, str]] = Counter()
    total: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    everything = Decimal(0)
    for fact, amount in _in_period(orders, first, last):
        everything += amount
        for touch, channel in (("first", first_touch.get(fact.profile_id)), ("last", fact.last_touch_channel)):
            key = (touch, channel or UNTRACKED)
            count[key] += 1
            total[key] += amount
    rows = tuple(ChannelRevenue(touch=touch, channel=channel, orders=count[(touch, channel)],
                                revenue=_cents(total[(touch, channel)]))
                 for touch, channel in sorted(count, key=lambda key: (key[0], -total[key], key[1])))
    return ChannelsData(revenue=_cents(everything), rows=rows)


@dataclass(frozen=True)
class Recovered:
    """What the flows recovered on one day (their counters: crm.flows.stats), in the reporting currency."""

    day: date
    orders: int
    revenue: Decimal


def abandonment(checkouts: Iterable[tuple[str, datetime]], orders: Converted, recovered: Iterable[Recovered],
                first: date, last: date, interval: Interval) -> AbandonmentData:
    """Checkouts started per bucket, those not followed by a counted order of the same shopper within
    COMPLETION_WINDOW (orders up to a window after the period are read for it), and what flows recovered."""
    placed: dict[str, list[datetime]] = defaultdict(list)
    for fact, _ in orders.orders:
        placed[fact.profile_id].append(as_utc(fact.placed_at))
    started: Counter[date] = Counter()
    abandoned: Counter[date] = Counter()
    for profile_id, at in checkouts:
        at = as_utc(at)
        if not first <= at.date() <= last:
            continue
        start = bucket_of(at.date(), interval)
        started[start] += 1
        if not any(at <= when <= at + COMPLETION_WINDOW for when in placed.get(profile_id, ())):
            abandoned[start] += 1
    won: Counter[date] = Counter()
    won_revenue: dict[date, Decimal] = defaultdict(Decimal)
    for day in recovered:
        if first <= day.day <= last:
            won[bucket_of(day.day, interval)] += day.orders
            won_revenue[bucket_of(day.day, interval)] += day.revenue
    points = tuple(AbandonmentPoint(start=start, checkouts=started[start], abandoned=abandoned[start],
                                    abandonment_rate=rate(abandoned[start], started[start]),
                                    recovered_orders=won[start], recovered_revenue=_cents(won_revenue[start]))
                   for start in buckets(first, last, interval))
    return AbandonmentData(completion_window_hours=int(COMPLETION_WINDOW.total_seconds() // 3600),
                           checkouts=sum(started.values()), abandoned=sum(abandoned.values()),
                           abandonment_rate=rate(sum(abandoned.values()), sum(started.values())),
                           recovered_orders=sum(won.values()),
                           recovered_revenue=_cents(sum(won_revenue.values(), Decimal(0))), points=points)


def _even_bins(values: Sequence[Decimal], low: Decimal, high: Decimal, count: int) -> list[ClvBin]:
    width = (high - low) / count
    counts = Counter(min(int((value - low) / width), count - 1) for value in values)
    return [ClvBin(lower=_cents(low + width * k), upper=_cents(low + width * (k + 1)), profiles=counts[k])
            for k in range(count)]


def _clv_bins(values: Sequence[Decimal]) -> tuple[ClvBin, ...]:
    """Ten even bins from the lowest CLV to the highest, or, when the highest few would squash the rest, nine
    up to the CLV_CLIP_PERCENTILE-th percentile (nearest rank, to the cent) and one overflow bin above."""
    if not values:
        return ()
    ordered = sorted(values)
    low, high = ordered[0], ordered[-1]
    if low == high:
        return (ClvBin(lower=_cents(low), upper=_cents(high), profiles=len(values)),)
    clip = _cents(ordered[math.ceil(len(ordered) * CLV_CLIP_PERCENTILE / 100) - 1])
    if not low < clip < high or high - low <= 2 * (clip - low):
        return tuple(_even_bins(values, low, high, CLV_BINS))
    below = [value for value in values if value < clip]
    overflow = ClvBin(lower=clip, upper=_cents(high), profiles=len(values) - len(below), overflow=True)
    return (*_even_bins(below, low, clip, CLV_BINS - 1), overflow)


def predictions(members: Iterable[tuple[Profile, frozenset[str]]], segment_names: Mapping[str, str]) -> PredictionsData:
    """The distribution of predicted 12-month CLV, and churn risk per segment (of the predicted members)."""
    statuses: Counter[str] = Counter()
    clvs: list[Decimal] = []
    churn: dict[str, list[Decimal]] = defaultdict(list)
    clv_of: dict[str, list[Decimal]] = defaultdict(list)
    for profile, segment_ids in members:
        if profile.merged_into is not None:
            continue
        found = profile.prediction
        statuses[found.status if found else "none"] += 1
        if found is None or found.status != "predicted" or found.churn_probability is None:
            continue
        if found.clv is not None:
            clvs.append(found.clv)
        for segment_id in segment_ids:
            churn[segment_id].append(found.churn_probability)
            if found.clv is not None:
                clv_of[segment_id].append(found.clv)
    segments = [SegmentChurn(segment_id=sid, name=segment_names.get(sid, sid), predicted=len(values),
                             mean_churn_probability=rate(sum(values, Decimal(0)), len(values)) or Decimal(0),
                             at_risk=sum(1 for value in values if value >= AT_RISK),
                             mean_clv=_cents(sum(clv_of[sid], Decimal(0)) / len(clv_of[sid])) if clv_of[sid] else None)
                for sid, values in churn.items()]
    segments.sort(key=lambda s: (-s.mean_churn_probability, s.segment_id))
    return PredictionsData(at_risk_threshold=AT_RISK, statuses=dict(sorted(statuses.items())),
                           predicted=statuses["predicted"], total_clv=_cents(sum(clvs, Decimal(0))),
                           clv_bins=_clv_bins(clvs), segments=tuple(segments))


__all__ = ["AT_RISK", "COMPLETION_DAYS", "COMPLETION_WINDOW", "Converted", "Recovered", "abandonment", "bucket_of",
           "buckets", "channels", "cohorts", "convert", "predictions", "repeat_rate", "revenue", "rfm"]
