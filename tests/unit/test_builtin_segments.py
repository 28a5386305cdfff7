"""Built-in segments: hand-computed memberships on small fixtures, every boundary, and the VIP seat count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm.models.profile import Activity, Profile
from crm.segments.builtin import (
    BUILTINS,
    BuiltinSettings,
    PopulationSketch,
    PopulationStats,
    SegmentContext,
    builtin,
    memberships,
    rfm_group_of,
    vip_threshold,
)
from crm.segments.rfm import RfmGroup, ValueSketch
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def shopper(profile_id: str = "p", orders: int = 0, spent: str = "0.00", first: timedelta | None = None,
            last: timedelta | None = None, **extra: Any) -> Profile:
    """A profile whose first / last order was ``first`` / ``last`` before NOW (``last`` defaults to ``first``)."""
    last = last if last is not None else first
    return Profile.model_validate({
        "workspace_id": "w1", "profile_id": profile_id, "orders_count": orders, "total_spent": Decimal(spent),
        "first_order_at": NOW - first if first is not None else None,
        "last_order_at": NOW - last if last is not None else None,
        "created_at": NOW - timedelta(days=400), "updated_at": NOW, **extra})


def checkout(ago: timedelta) -> Activity:
    return Activity(at=NOW - ago, event_id="e1", type="checkout_started")


def stats_of(profiles: list[Profile], settings: BuiltinSettings | None = None) -> SegmentContext:
    settings = settings or BuiltinSettings()
    sketch = PopulationSketch.of_profiles(profiles, NOW)
    return SegmentContext(now=NOW, settings=settings, population=PopulationStats.from_sketch(sketch, settings))


def members(segment_id: str, profiles: list[Profile], context: SegmentContext) -> list[str]:
    return [p.profile_id for p in profiles if builtin(segment_id).contains(p, context)]


PLAIN = SegmentContext(now=NOW)
DAYS = timedelta(days=1)

# --- settings and the registry ------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    assert BuiltinSettings().model_dump() == {
        "vip_top_percent": 10, "churn_after_days": 180, "window_shopper_min_views": 3, "new_customer_days": 30,
        "cart_abandon_days": 7}


@pytest.mark.parametrize("bad", [
    {"vip_top_percent": 0}, {"vip_top_percent": 51}, {"churn_after_days": 0}, {"churn_after_days": 3651},
    {"window_shopper_min_views": 0}, {"new_customer_days": 0}, {"new_customer_days": 366},
    {"cart_abandon_days": 0}, {"cart_abandon_days": 91}, {"churn_days": 30},
])
def test_settings_out_of_range_or_unknown_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        BuiltinSettings.model_validate(bad)


def test_every_builtin_has_a_stable_id_and_says_what_it_depends_on() -> None:
    flags = {s.id: (s.time_relative, s.population_relative) for s in BUILTINS}
    rfm = {f"builtin:rfm:{g.value}": (True, True) for g in RfmGroup}
    assert flags == {
        "builtin:vip": (False, True), "builtin:churn_risk": (True, False), "builtin:window_shoppers": (False, False),
        "builtin:one_time_buyers": (False, False), "builtin:repeat_buyers": (False, False),
        "builtin:new_customers": (True, False), "builtin:cart_abandoners": (True, False), **rfm}
    assert "builtin:rfm:champions" in flags and "builtin:rfm:cannot_lose_them" in flags
    assert all(s.name and s.description for s in BUILTINS)
    assert builtin("builtin:rfm:champions").name == "RFM: Champions"


# --- VIP ---------------------------------------------------------------------------------------------------


def test_vip_is_the_top_ten_percent_rounded_up() -> None:
    ten = [shopper(f"b{i}", 1, f"{i * 10}.00", DAYS) for i in range(1, 11)]  # $10 .. $100
    assert members("builtin:vip", ten, stats_of(ten)) == ["b10"]  # ceil(10 * 10 %) = 1 seat
    eleven = [*ten, shopper("b11", 2, "55.00", DAYS)]
    assert members("builtin:vip", eleven, stats_of(eleven)) == ["b9", "b10"]  # ceil(1.1) = 2 seats
    five = ten[:5]
    assert members("builtin:vip", five, stats_of(five)) == ["b5"]  # even a small store has one VIP


def test_buyers_tied_with_the_last_vip_seat_are_all_in() -> None:
    buyers = [shopper(f"b{i}", 1, f"{i * 10}.00", DAYS) for i in range(1, 9)]
    buyers += [shopper("t1", 1, "100.00", DAYS), shopper("t2", 3, "100.00", DAYS)]
    context = stats_of(buyers)
    assert context.population.vip is not None and context.population.vip.min_cents == 10000
    assert members("builtin:vip", buyers, context) == ["t1", "t2"]  # one seat, two tied for it


def test_vip_counts_only_buyers_and_needs_money_spent() -> None:
    browsers = [shopper(f"v{i}", 0, "0.00") for i in range(50)]
    buyers = [shopper("a", 1, "20.00", DAYS), shopper("b", 1, "30.00", DAYS)]
    context = stats_of(browsers + buyers)  # the 50 browsers do not lower the bar: the population is 2 buyers
    assert members("builtin:vip", browsers + buyers, context) == ["b"]
    refunded = [shopper("r1", 1, "0.00", DAYS), shopper("r2", 2, "0.00", DAYS)]
    assert members("builtin:vip", refunded, stats_of(refunded)) == []


def test_no_buyers_no_population_segments() -> None:
    context = stats_of([shopper("v", 0)])
    assert context.population == PopulationStats()
    # stats from before this buyer arrived: no VIP or RFM group until the next run
    assert memberships(shopper("x", 1, "5.00", DAYS), context) == {"builtin:one_time_buyers", "builtin:new_customers"}


@given(st.lists(st.integers(1, 10**7), min_size=1, max_size=150, unique=True), st.integers(1, 50))
def test_vip_with_distinct_values_is_exactly_the_top_ceil_percent(cents: list[int], percent: int) -> None:
    buyers = [shopper(f"b{i}", 1, str(Decimal(c) / 100), DAYS) for i, c in enumerate(cents)]
    context = stats_of(buyers, BuiltinSettings(vip_top_percent=percent))
    vip = set(members("builtin:vip", buyers, context))
    seats = -(-len(cents) * percent // 100)
    by_value = sorted(buyers, key=lambda p: p.total_spent, reverse=True)
    assert vip == {p.profile_id for p in by_value[:seats]}


@given(st.lists(st.integers(0, 300), min_size=1, max_size=150), st.integers(0, 150))
def test_vip_with_ties_is_the_top_ceil_ten_percent_plus_those_tied_and_fans_out(cents: list[int], cut: int) -> None:
    buyers = [shopper(f"b{i}", 1, str(Decimal(c) / 100), DAYS) for i, c in enumerate(cents)]
    sketch = PopulationSketch.of_profiles(buyers[:cut], NOW).merge(PopulationSketch.of_profiles(buyers[cut:], NOW))
    assert sketch == PopulationSketch.of_profiles(buyers, NOW)
    context = SegmentContext(now=NOW, population=PopulationStats.from_sketch(sketch, BuiltinSettings()))
    vip = {p.profile_id for p in buyers if builtin("builtin:vip").contains(p, context)}
    kth = sorted(cents, reverse=True)[-(-len(cents) // 10) - 1]
    assert vip == {f"b{i}" for i, c in enumerate(cents) if c >= kth and c > 0}


def test_vip_threshold_on_a_rounded_sketch_compares_rounded_amounts() -> None:
    sketch = ValueSketch.of([100_001, 100_002, 100_003, 200_000], exact_limit=2)  # keys 101000 x3, 200000
    threshold = vip_threshold(sketch, 50)  # 2 seats: the 2nd highest key is 101000
    assert threshold is not None and threshold.rounded and threshold.min_cents == 101_000
    assert threshold.admits(shopper("x", 1, "1000.01", DAYS))  # 100001 cents rounds up to 101000: tied, in
    assert not threshold.admits(shopper("y", 1, "1000.00", DAYS))  # 100000 is its own key, below
    assert vip_threshold(ValueSketch(), 10) is None


# --- time-relative ----------------------------------------------------------------------------------------


def test_churn_risk_starts_at_exactly_180_days() -> None:
    people = [shopper("exact", 2, "10.00", 300 * DAYS, 180 * DAYS),
              shopper("almost", 2, "10.00", 300 * DAYS, 180 * DAYS - SECOND),
              shopper("long", 1, "10.00", 900 * DAYS), shopper("never", 0)]
    assert members("builtin:churn_risk", people, PLAIN) == ["exact", "long"]
    shorter = SegmentContext(now=NOW, settings=BuiltinSettings(churn_after_days=90))
    assert members("builtin:churn_risk", [shopper("q", 1, "1.00", 90 * DAYS)], shorter) == ["q"]


def test_new_customers_are_those_whose_first_order_is_at_most_30_days_old() -> None:
    people = [shopper("exact", 1, "10.00", 30 * DAYS), shopper("late", 1, "10.00", 30 * DAYS + SECOND),
              shopper("old_but_recent", 3, "10.00", 200 * DAYS, DAYS), shopper("today", 1, "10.00", 0 * DAYS),
              shopper("never", 0)]
    assert members("builtin:new_customers", people, PLAIN) == ["exact", "today"]


def test_cart_abandoners_checked_out_within_7_days_and_ordered_nothing_since() -> None:
    people = [
        shopper("exact", last_checkout=checkout(7 * DAYS)),
        shopper("too_old", last_checkout=checkout(7 * DAYS + SECOND)),
        shopper("bought_after", 1, "9.00", 2 * DAYS, last_checkout=checkout(3 * DAYS)),
        shopper("bought_before", 1, "9.00", 30 * DAYS, last_checkout=checkout(3 * DAYS)),
        shopper("same_instant", 1, "9.00", 3 * DAYS, last_checkout=checkout(3 * DAYS)),  # the checkout's own order
        shopper("no_checkout", 0),
    ]
    assert members("builtin:cart_abandoners", people, PLAIN) == ["exact", "bought_before"]
    longer = SegmentContext(now=NOW, settings=BuiltinSettings(cart_abandon_days=14))
    assert members("builtin:cart_abandoners", people, longer) == ["exact", "too_old", "bought_before"]


# --- behaviour without time or population ----------------------------------------------------------------


def test_window_shoppers_viewed_at_least_3_times_and_never_bought() -> None:
    people = [
        shopper("three", activity_counts={"page_viewed": 2, "product_viewed": 1}),
        shopper("two", activity_counts={"page_viewed": 1, "product_viewed": 1, "cart_viewed": 5}),
        shopper("buyer", 1, "5.00", DAYS, activity_counts={"product_viewed": 9}),
        shopper("many", activity_counts={"product_viewed": 40}),
    ]
    assert members("builtin:window_shoppers", people, PLAIN) == ["three", "many"]
    five = SegmentContext(now=NOW, settings=BuiltinSettings(window_shopper_min_views=5))
    assert members("builtin:window_shoppers", people, five) == ["many"]


def test_one_time_and_repeat_buyers() -> None:
    people = [shopper("none", 0), shopper("one", 1, "5.00", DAYS), shopper("two", 2, "9.00", DAYS),
              shopper("ten", 10, "99.00", DAYS)]
    assert members("builtin:one_time_buyers", people, PLAIN) == ["one"]
    assert members("builtin:repeat_buyers", people, PLAIN) == ["two", "ten"]


def test_a_merged_profile_is_in_no_segment() -> None:
    gone = shopper("gone", 3, "500.00", 200 * DAYS, merged_into="survivor",
                   activity_counts={"page_viewed": 10}, last_checkout=checkout(DAYS))
    assert memberships(gone, stats_of([gone, shopper("x", 1, "1.00", DAYS)])) == frozenset()


# --- RFM groups as segments -----------------------------------------------------------------------------------


def test_rfm_group_segments_on_a_hand_computed_population() -> None:
    # Recency 1, 5, 10, 30, 90 days; 1, 1, 2, 3, 8 orders; $10 .. $50: quintile edges are the first four of
    # each, so the scores are 511, 412, 333, 244 and 155 (see test_rfm.test_hand_computed_scores).
    people = [shopper("a", 1, "10.00", DAYS), shopper("b", 1, "20.00", 5 * DAYS),
              shopper("c", 2, "30.00", 10 * DAYS), shopper("d", 3, "40.00", 30 * DAYS),
              shopper("e", 8, "50.00", 90 * DAYS), shopper("browser", 0, activity_counts={"page_viewed": 3})]
    context = stats_of(people)
    assert {p.profile_id: rfm_group_of(p, context) for p in people} == {
        "a": RfmGroup.NEW_CUSTOMERS, "b": RfmGroup.PROMISING, "c": RfmGroup.NEED_ATTENTION, "d": RfmGroup.AT_RISK,
        "e": RfmGroup.CANNOT_LOSE_THEM, "browser": None}
    assert {p.profile_id: memberships(p, context) for p in people} == {
        "a": {"builtin:rfm:new_customers", "builtin:one_time_buyers", "builtin:new_customers"},
        "b": {"builtin:rfm:promising", "builtin:one_time_buyers", "builtin:new_customers"},
        "c": {"builtin:rfm:need_attention", "builtin:repeat_buyers", "builtin:new_customers"},
        "d": {"builtin:rfm:at_risk", "builtin:repeat_buyers", "builtin:new_customers"},
        "e": {"builtin:rfm:cannot_lose_them", "builtin:repeat_buyers", "builtin:vip"},
        "browser": {"builtin:window_shoppers"},
    }


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 500), st.integers(0, 400)), max_size=40))
def test_every_buyer_is_in_exactly_one_rfm_group_and_non_buyers_in_none(people: list[tuple[int, int, int]]) -> None:
    profiles = [shopper(f"p{i}", n, f"{d}.00", days * DAYS if n else None) for i, (n, d, days) in enumerate(people)]
    context = stats_of(profiles)
    rfm_ids = {f"builtin:rfm:{g.value}" for g in RfmGroup}
    for p in profiles:
        assert len(memberships(p, context) & rfm_ids) == (1 if p.orders_count else 0)
