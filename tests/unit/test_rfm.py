"""RFM: quintiles from mergeable sketches, scores, the named-group grid, and a check on the CDNOW purchases."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from crm.models.profile import Profile
from crm.segments.rfm import (
    GRID,
    GROUP_DESCRIPTIONS,
    GROUP_NAMES,
    Quintiles,
    RfmGroup,
    RfmInputs,
    RfmScore,
    RfmSketch,
    RfmThresholds,
    ValueSketch,
    group,
    quintile_thresholds,
    round_up_significant,
    score,
    to_cents,
)
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CDNOW = Path(__file__).resolve().parents[1] / "fixtures" / "cdnow" / "CDNOW_master.txt"
CDNOW_END = datetime(1998, 7, 1, tzinfo=UTC)  # the day after the last day of the data


def buyer(profile_id: str, orders: int, spent: str, last_days_ago: float, **extra: object) -> Profile:
    last = NOW - timedelta(days=last_days_ago)
    return Profile.model_validate({
        "workspace_id": "w1", "profile_id": profile_id, "orders_count": orders, "total_spent": Decimal(spent),
        "first_order_at": last, "last_order_at": last, "created_at": last, "updated_at": last, **extra})


def inputs(recency: int, frequency: int, monetary: str, profile_id: str = "p") -> RfmInputs:
    return RfmInputs(profile_id=profile_id, recency_days=recency, frequency=frequency, monetary=Decimal(monetary))


# --- inputs -------------------------------------------------------------------------------------------------


def test_inputs_from_a_buyer_count_whole_days_since_the_last_order() -> None:
    got = RfmInputs.from_profile(buyer("p1", 3, "120.50", 10.9), NOW)
    assert got == RfmInputs(profile_id="p1", recency_days=10, frequency=3, monetary=Decimal("120.50"))


def test_inputs_are_none_for_non_buyers_and_merged_profiles() -> None:
    assert RfmInputs.from_profile(buyer("p1", 0, "0", 1), NOW) is None
    assert RfmInputs.from_profile(buyer("p2", 2, "10", 1, merged_into="p3"), NOW) is None


def test_an_order_stamped_after_now_is_zero_days_old() -> None:
    got = RfmInputs.from_profile(buyer("p1", 1, "5", -0.5), NOW)
    assert got is not None and got.recency_days == 0


# --- quintiles ----------------------------------------------------------------------------------------------


def test_quintiles_of_ten_distinct_values() -> None:
    # n = 10: thresholds at ranks ceil(2), ceil(4), ceil(6), ceil(8) -> values 2, 4, 6, 8.
    q = quintile_thresholds(ValueSketch.of(range(1, 11)))
    assert q.edges == (2, 4, 6, 8)
    assert [q.bucket(v) for v in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_quintiles_of_seven_values_split_two_one_two_one_one() -> None:
    # n = 7: ranks ceil(1.4)=2, ceil(2.8)=3, ceil(4.2)=5, ceil(5.6)=6.
    q = quintile_thresholds(ValueSketch.of([70, 10, 60, 20, 50, 30, 40]))
    assert q.edges == (20, 30, 50, 60)
    assert [q.bucket(v) for v in (10, 20, 30, 40, 50, 60, 70)] == [1, 1, 2, 3, 3, 4, 5]


def test_a_value_equal_to_a_threshold_takes_the_lower_bucket_and_ties_never_split() -> None:
    # n = 10, ranks 2, 4, 6, 8 -> 1, 1, 1, 2: the six 1s all land in bucket 1, bucket 2 and 3 stay empty.
    q = quintile_thresholds(ValueSketch.of([1, 1, 1, 1, 1, 1, 2, 2, 3, 5]))
    assert q.edges == (1, 1, 1, 2)
    assert [q.bucket(v) for v in (1, 2, 3, 5)] == [1, 4, 5, 5]


def test_a_single_buyer_is_in_the_lowest_bucket_of_everything() -> None:
    q = quintile_thresholds(ValueSketch.of([42]))
    assert q.edges == (42, 42, 42, 42)
    assert q.bucket(42) == 1


def test_no_quintiles_of_an_empty_population() -> None:
    with pytest.raises(ValueError, match="empty"):
        quintile_thresholds(ValueSketch())


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=200, unique=True))
def test_distinct_values_fill_each_bucket_by_the_quintile_ranks(values: list[int]) -> None:
    q = quintile_thresholds(ValueSketch.of(values))
    n = len(values)
    sizes = Counter(q.bucket(v) for v in values)
    ranks = [0, *(-(-k * n // 5) for k in range(1, 5)), n]
    assert [sizes.get(b, 0) for b in range(1, 6)] == [ranks[b] - ranks[b - 1] for b in range(1, 6)]


# --- sketches merge ----------------------------------------------------------------------------------------


def test_round_up_significant() -> None:
    assert [round_up_significant(v) for v in (0, 7, 999, 1000, 1001, 12345, 99951, -12345)] == [
        0, 7, 999, 1000, 1010, 12400, 100000, -12400]


def test_sketch_switches_to_rounded_amounts_beyond_its_limit_and_stays_so() -> None:
    small = ValueSketch.of([1001, 1002], exact_limit=3)
    assert not small.rounded and small.counts == {1001: 1, 1002: 1}
    merged = small.merge(ValueSketch.of([1003, 2000], exact_limit=3))
    assert merged.rounded and merged.counts == {1010: 3, 2000: 1}
    assert merged.merge(ValueSketch(exact_limit=3)).rounded  # an empty share does not undo it


def test_sketches_with_different_limits_refuse_to_merge() -> None:
    with pytest.raises(ValueError, match="exact limits"):
        ValueSketch.of([1], exact_limit=3).merge(ValueSketch.of([1], exact_limit=4))


def test_sketch_survives_json_between_workers() -> None:
    sketch = RfmSketch.of([inputs(3, 2, "10.00"), inputs(40, 1, "99.99")], exact_limit=1)
    assert RfmSketch.model_validate_json(sketch.model_dump_json()) == sketch


def _split(values: list[int], cuts: list[int]) -> list[list[int]]:
    points = sorted({c % (len(values) + 1) for c in cuts})
    bounds = [0, *points, len(values)]
    return [values[a:b] for a, b in itertools.pairwise(bounds)]


@given(st.lists(st.integers(0, 10**7), max_size=120), st.lists(st.integers(0, 1000), max_size=6),
       st.sampled_from([None, 1, 5, 40]), st.randoms(use_true_random=False))
def test_merging_the_sketches_of_any_split_equals_the_sketch_of_the_whole(
    values: list[int], cuts: list[int], limit: int | None, rnd: random.Random
) -> None:
    shuffled = list(values)
    rnd.shuffle(shuffled)
    shares = [ValueSketch.of(part, exact_limit=limit) for part in _split(shuffled, cuts)]
    rnd.shuffle(shares)
    merged = ValueSketch(exact_limit=limit)
    for share in shares:
        merged = merged.merge(share) if rnd.random() < 0.5 else share.merge(merged)
    assert merged == ValueSketch.of(values, exact_limit=limit)


RFM_INPUTS = st.builds(
    RfmInputs, profile_id=st.just("p"), recency_days=st.integers(0, 3000), frequency=st.integers(1, 50),
    monetary=st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False))


@given(st.lists(RFM_INPUTS, max_size=60), st.integers(0, 60))
def test_fan_out_of_rfm_sketches_equals_one_worker(population: list[RfmInputs], cut: int) -> None:
    left, right = population[:cut], population[cut:]
    assert RfmSketch.of(left, 10).merge(RfmSketch.of(right, 10)) == RfmSketch.of(population, 10)
    assert RfmSketch.of(right, 10).merge(RfmSketch.of(left, 10)) == RfmSketch.of(population, 10)


# --- scores ------------------------------------------------------------------------------------------------


def test_hand_computed_scores() -> None:
    # Five buyers: recency 1, 5, 10, 30, 90 days; 1, 1, 2, 3, 8 orders; $10, $20, $30, $40, $50.
    people = [inputs(1, 1, "10"), inputs(5, 1, "20"), inputs(10, 2, "30"), inputs(30, 3, "40"), inputs(90, 8, "50")]
    thresholds = RfmThresholds.from_sketch(RfmSketch.of(people))
    assert thresholds.recency.edges == (1, 5, 10, 30)
    assert thresholds.frequency.edges == (1, 1, 2, 3)
    assert thresholds.monetary_edges == (Decimal("10.00"), Decimal("20.00"), Decimal("30.00"), Decimal("40.00"))
    assert [score(p, thresholds).code for p in people] == ["511", "412", "333", "244", "155"]
    assert [group(score(p, thresholds)) for p in people] == [
        RfmGroup.NEW_CUSTOMERS, RfmGroup.PROMISING, RfmGroup.NEED_ATTENTION, RfmGroup.AT_RISK,
        RfmGroup.CANNOT_LOSE_THEM]


@settings(max_examples=200)
@given(st.lists(RFM_INPUTS, min_size=1, max_size=40), RFM_INPUTS, st.sampled_from([None, 3]))
def test_scores_are_always_1_to_5(population: list[RfmInputs], someone: RfmInputs, limit: int | None) -> None:
    thresholds = RfmThresholds.from_sketch(RfmSketch.of(population, limit))
    got = score(someone, thresholds)
    assert {got.r, got.f, got.m} <= {1, 2, 3, 4, 5}


@settings(max_examples=200)
@given(st.lists(RFM_INPUTS, min_size=1, max_size=40), RFM_INPUTS, st.decimals(0, 10**5, places=2),
       st.integers(0, 500), st.sampled_from([None, 3]))
def test_more_money_never_scores_lower_and_fewer_days_never_score_lower(
    population: list[RfmInputs], someone: RfmInputs, more: Decimal, fewer: int, limit: int | None
) -> None:
    thresholds = RfmThresholds.from_sketch(RfmSketch.of(population, limit))
    richer = someone.model_copy(update={"monetary": someone.monetary + more})
    fresher = someone.model_copy(update={"recency_days": max(someone.recency_days - fewer, 0)})
    assert score(richer, thresholds).m >= score(someone, thresholds).m
    assert score(fresher, thresholds).r >= score(someone, thresholds).r


@given(st.lists(st.integers(0, 10**8), min_size=1, max_size=150))
def test_rounded_quintiles_are_within_one_percent_and_only_move_buyers_near_a_threshold(values: list[int]) -> None:
    exact = quintile_thresholds(ValueSketch.of(values))
    rounded = quintile_thresholds(ValueSketch.of(values, exact_limit=1))
    for e, r in zip(exact.edges, rounded.edges, strict=True):
        assert e <= r <= e + e // 100 + 1
    for v in values:
        if rounded.bucket(v) != exact.bucket(v):
            assert rounded.bucket(v) < exact.bucket(v)
            assert any(e < v <= r for e, r in zip(exact.edges, rounded.edges, strict=True))


# --- named groups ------------------------------------------------------------------------------------------


def test_every_score_maps_to_exactly_one_group_and_every_group_is_reachable() -> None:
    cells = Counter(group(RfmScore(r=r, f=f, m=m)) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6))
    # Per FM row, the (F, M) pairs: FM1 3, FM2 7, FM3 9, FM4 5, FM5 1 (a half point rounds down).
    assert cells == {
        RfmGroup.CHAMPIONS: 12, RfmGroup.LOYAL: 24, RfmGroup.POTENTIAL_LOYALISTS: 14, RfmGroup.NEW_CUSTOMERS: 3,
        RfmGroup.PROMISING: 3, RfmGroup.NEED_ATTENTION: 9, RfmGroup.ABOUT_TO_SLEEP: 10, RfmGroup.AT_RISK: 24,
        RfmGroup.CANNOT_LOSE_THEM: 6, RfmGroup.HIBERNATING: 10, RfmGroup.LOST: 10}
    assert sum(cells.values()) == 125
    assert set(GRID) == {1, 2, 3, 4, 5}
    assert set(GROUP_NAMES) == set(GROUP_DESCRIPTIONS) == set(RfmGroup)


@pytest.mark.parametrize(("code", "expected"), [
    ("555", RfmGroup.CHAMPIONS), ("445", RfmGroup.CHAMPIONS), ("454", RfmGroup.CHAMPIONS),
    ("435", RfmGroup.CHAMPIONS), ("433", RfmGroup.LOYAL), ("534", RfmGroup.LOYAL), ("355", RfmGroup.LOYAL),
    ("522", RfmGroup.POTENTIAL_LOYALISTS), ("413", RfmGroup.POTENTIAL_LOYALISTS),
    ("511", RfmGroup.NEW_CUSTOMERS), ("512", RfmGroup.NEW_CUSTOMERS), ("412", RfmGroup.PROMISING),
    ("333", RfmGroup.NEED_ATTENTION), ("334", RfmGroup.NEED_ATTENTION), ("311", RfmGroup.ABOUT_TO_SLEEP),
    ("255", RfmGroup.AT_RISK), ("133", RfmGroup.AT_RISK), ("155", RfmGroup.CANNOT_LOSE_THEM),
    ("145", RfmGroup.CANNOT_LOSE_THEM), ("222", RfmGroup.HIBERNATING), ("111", RfmGroup.LOST),
    ("123", RfmGroup.LOST),
])
def test_grid_cells(code: str, expected: RfmGroup) -> None:
    r, f, m = (int(ch) for ch in code)
    assert group(RfmScore(r=r, f=f, m=m)) is expected


# --- the CDNOW purchases -----------------------------------------------------------------------------------


@cache
def cdnow_profiles() -> tuple[Profile, ...]:
    """One profile per CDNOW customer; every row of the file is one order (same-day rows stay separate)."""
    orders: dict[str, tuple[int, Decimal, datetime, datetime]] = {}
    for line in CDNOW.read_text().splitlines()[1:]:
        customer, day, _cds, dollars = line.split()
        at = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC)
        count, total, first, last = orders.get(customer, (0, Decimal("0.00"), at, at))
        orders[customer] = (count + 1, total + Decimal(dollars), min(first, at), max(last, at))
    return tuple(
        Profile(workspace_id="cdnow", profile_id=c, orders_count=n, total_spent=total, first_order_at=first,
                last_order_at=last, created_at=first, updated_at=last)
        for c, (n, total, first, last) in orders.items())


def test_cdnow_fan_out_over_four_workers_equals_one_worker() -> None:
    profiles = cdnow_profiles()
    assert len(profiles) == 23_570
    assert sum(p.orders_count for p in profiles) == 69_659
    shares = [RfmSketch.of_profiles(profiles[i::4], CDNOW_END) for i in range(4)]
    merged = shares[3].merge(shares[1]).merge(shares[0].merge(shares[2]))
    whole = RfmSketch.of_profiles(profiles, CDNOW_END)
    assert merged == whole
    assert whole.buyers == 23_570 and not whole.monetary.rounded  # 10,078 distinct amounts: exact


def test_cdnow_rfm_grid_at_the_end_of_the_period() -> None:
    profiles = cdnow_profiles()
    thresholds = RfmThresholds.from_sketch(RfmSketch.of_profiles(profiles, CDNOW_END))
    # Checked independently (sorting the per-customer sums of the raw file): values at ranks ceil(k n / 5).
    assert thresholds.recency.edges == (142, 433, 486, 513)
    assert thresholds.frequency.edges == (1, 1, 2, 4)
    assert thresholds.monetary_edges == (Decimal("15.36"), Decimal("31.35"), Decimal("59.92"), Decimal("133.95"))

    scores = {p.profile_id: score(i, thresholds) for p in profiles if (i := RfmInputs.from_profile(p, CDNOW_END))}
    n = len(scores)
    for measure in ("r", "m"):  # distinct enough: each fifth holds 20 % give or take the ties at its edge
        sizes = Counter(getattr(s, measure) for s in scores.values())
        assert all(abs(Decimal(sizes[b]) / n - Decimal("0.2")) < Decimal("0.01") for b in range(1, 6)), sizes
    # Half the buyers ordered once: all of them share F = 1 (ties never split), F = 2 stays empty.
    f_sizes = Counter(s.f for s in scores.values())
    assert f_sizes[1] == sum(p.orders_count == 1 for p in profiles) == 11_908 and f_sizes[2] == 0

    groups = Counter(group(s) for s in scores.values())
    assert sum(groups.values()) == n == 23_570
    # Everyone first bought in Q1 1997, so nobody is new 15 months later: New customers and Promising
    # (recent buyers with one small order) are rightly empty.
    assert groups == {
        RfmGroup.CHAMPIONS: 6564, RfmGroup.HIBERNATING: 4261, RfmGroup.LOST: 4247, RfmGroup.ABOUT_TO_SLEEP: 3679,
        RfmGroup.LOYAL: 2651, RfmGroup.NEED_ATTENTION: 810, RfmGroup.AT_RISK: 733,
        RfmGroup.POTENTIAL_LOYALISTS: 579, RfmGroup.CANNOT_LOSE_THEM: 46}

    # By hand from the file's rows:
    # 00001: one order of $11.77 on 1997-01-01, 546 days before 1998-07-01 -> R1 F1 M1 -> Lost.
    # 00002: two orders on 1997-01-12 ($12.00 + $77.00 = $89.00), 535 days -> R1 F3 M4, FM 3 -> At risk.
    # 00004: four orders, $100.50, the last on 1997-12-12, 201 days -> R4 F4 M4 -> Champions.
    # 12345: one order of $15.36 (exactly the first M threshold: the lower score), 502 days -> R2 F1 M1
    #        -> Hibernating.
    assert {c: (scores[c].code, group(scores[c])) for c in ("00001", "00002", "00004", "12345")} == {
        "00001": ("111", RfmGroup.LOST), "00002": ("134", RfmGroup.AT_RISK),
        "00004": ("444", RfmGroup.CHAMPIONS), "12345": ("211", RfmGroup.HIBERNATING)}


def test_cdnow_rounded_monetary_sketch_stays_within_one_percent() -> None:
    profiles = cdnow_profiles()
    exact = RfmSketch.of_profiles(profiles, CDNOW_END).monetary
    rounded = RfmSketch.of_profiles(profiles, CDNOW_END, exact_limit=1000).monetary
    # Below $10.00 amounts stay exact (1,000 cents values), then 900 keys per power of ten: amounts reach
    # $13,990.93 (7 digits of cents), so at most 1,000 + 4 * 900 keys, whatever the number of buyers.
    assert rounded.rounded and len(rounded.counts) <= 1000 + 4 * 900
    assert len(rounded.counts) == 1700 < len(exact.counts) == 10_078
    qe, qr = quintile_thresholds(exact), quintile_thresholds(rounded)
    assert qr.edges == (1540, 3140, 6000, 13400)
    assert all(Decimal(r - e) / e < Decimal("0.01") for e, r in zip(qe.edges, qr.edges, strict=True))
    moved = [p for p in profiles if qr.bucket(to_cents(p.total_spent)) != qe.bucket(to_cents(p.total_spent))]
    assert len(moved) < len(profiles) // 100  # 30 of 23,570


def test_quintiles_model_is_plain_data() -> None:
    assert Quintiles(t1=1, t2=2, t3=3, t4=4).bucket(3) == 3
