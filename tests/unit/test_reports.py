"""The reports' figures (crm.reports.compute), the question they answer (crm.reports.query) and their charts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from crm.models.currency import CurrencySettings
from crm.models.predictions import Prediction
from crm.models.profile import Profile, new_profile
from crm.models.reports import AbandonmentData, CohortsData, OrderFact, Report, RevenueData
from crm.reports import charts, compute, query
from crm.reports.query import PeriodFacts, ReportNotFound, ReportQueryInvalid
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
WS = "ws1"


def _order(profile_id: str, at: datetime, net: str, currency: str = "USD", channel: str | None = None) -> OrderFact:
    return OrderFact(profile_id=profile_id, placed_at=at, currency=currency, net=Decimal(net),
                     last_touch_channel=channel)


def _day(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


# --- periods ------------------------------------------------------------------------------------------------

def test_buckets_start_on_monday_and_the_first_of_the_month_and_keep_empty_ones() -> None:
    assert compute.buckets(date(2026, 3, 4), date(2026, 3, 17), "week") == [
        date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16)]
    assert compute.buckets(date(2025, 11, 30), date(2026, 2, 1), "month") == [
        date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1)]
    assert len(compute.buckets(date(2026, 2, 27), date(2026, 3, 2), "day")) == 4


def test_a_bad_question_is_named() -> None:
    today = date(2026, 6, 30)
    with pytest.raises(ReportNotFound, match="no report 'nope'"):
        query.question("nope", {}, today)
    with pytest.raises(ReportQueryInvalid, match="from: '2026-13-01' is not a date"):
        query.question("revenue", {"from": "2026-13-01"}, today)
    with pytest.raises(ReportQueryInvalid, match="interval: 'hour' is not one of day, week, month"):
        query.question("revenue", {"interval": "hour"}, today)
    with pytest.raises(ReportQueryInvalid, match=r"from .* is after to"):
        query.question("revenue", {"from": "2026-02-01", "to": "2026-01-01"}, today)
    with pytest.raises(ReportQueryInvalid, match="spans 1000 days"):
        query.question("revenue", {"from": "2023-10-05", "to": "2026-06-30"}, today)
    with pytest.raises(ReportQueryInvalid, match="cohorts are monthly"):
        query.question("cohorts", {"interval": "week"}, today)


def test_the_default_period_is_the_year_to_today_by_month_and_a_short_one_is_by_day() -> None:
    asked = query.question("revenue", {}, date(2026, 6, 30))
    assert (asked.first, asked.last, asked.interval) == (date(2025, 7, 1), date(2026, 6, 30), "month")
    assert query.question("revenue", {"from": "2026-06-01", "to": "2026-06-30"}, NOW.date()).interval == "day"
    assert query.question("revenue", {"from": "2026-03-01", "to": "2026-06-30"}, NOW.date()).interval == "week"


# --- money ---------------------------------------------------------------------------------------------------

def test_orders_are_converted_at_the_workspace_rates_and_those_without_a_rate_are_named() -> None:
    settings_ = CurrencySettings(workspace_id=WS, reporting_currency="USD", rates={"EUR": Decimal("1.1")},
                                 version=1, updated_at=NOW)
    converted = compute.convert([_order("a", _day(6, 1), "10.005", "EUR"), _order("b", _day(6, 1), "3", "USD"),
                                 _order("c", _day(6, 1), "9", "JPY")], settings_)
    assert converted.currency == "USD" and converted.unconverted == ("JPY",)
    assert [amount for _, amount in converted.orders] == [Decimal("11.01"), Decimal("3.00")]


def test_without_settings_the_currency_most_orders_are_in_reports() -> None:
    converted = compute.convert([_order("a", _day(6, 1), "1", "EUR"), _order("b", _day(6, 1), "2", "EUR"),
                                 _order("c", _day(6, 1), "3", "USD")], None)
    assert converted.currency == "EUR" and converted.unconverted == ("USD",)


def test_revenue_per_month_with_the_average_order_value() -> None:
    orders = compute.convert([_order("a", _day(4, 3), "10.00"), _order("a", _day(4, 20), "20.01"),
                              _order("b", _day(6, 30), "5.50"), _order("b", _day(7, 1), "99")], None)
    data = compute.revenue(orders, date(2026, 4, 1), date(2026, 6, 30), "month")
    assert [(p.start, p.orders, p.revenue, p.average_order_value) for p in data.points] == [
        (date(2026, 4, 1), 2, Decimal("30.01"), Decimal("15.00")), (date(2026, 5, 1), 0, Decimal("0.00"), None),
        (date(2026, 6, 1), 1, Decimal("5.50"), Decimal("5.50"))]
    assert (data.orders, data.revenue, data.average_order_value) == (3, Decimal("35.51"), Decimal("11.84"))


_amounts = st.decimals(min_value=Decimal("0"), max_value=Decimal("10000"), places=2, allow_nan=False)
_orders = st.lists(st.builds(_order, st.sampled_from(["a", "b", "c", "d"]),
                             st.datetimes(min_value=datetime(2025, 12, 1), max_value=datetime(2026, 8, 1),  # noqa: DTZ001 (naive bounds)
                                          timezones=st.just(UTC)),
                             _amounts.map(str), st.sampled_from(["USD", "EUR"]),
                             st.sampled_from([None, "google / cpc", "direct"])), max_size=40)


@settings(max_examples=60, deadline=None)
@given(_orders, st.sampled_from(["day", "week", "month"]))
def test_bucket_revenue_adds_up_to_the_orders_of_the_period(facts: list[OrderFact], interval: str) -> None:
    settings_ = CurrencySettings(workspace_id=WS, reporting_currency="USD", rates={"EUR": Decimal("1.0837")},
                                 version=1, updated_at=NOW)
    orders = compute.convert(facts, settings_)
    first, last = date(2026, 1, 1), date(2026, 6, 30)
    data = compute.revenue(orders, first, last, interval)  # type: ignore[arg-type]
    in_period = [amount for fact, amount in orders.orders if first <= fact.placed_at.date() <= last]
    assert sum(p.revenue for p in data.points) == data.revenue == sum(in_period, Decimal("0.00"))
    assert sum(p.orders for p in data.points) == data.orders == len(in_period)
    by_channel = compute.channels(orders, {"a": "email", "b": None}, first, last)
    for touch in ("first", "last"):
        assert sum(row.revenue for row in by_channel.rows if row.touch == touch) == (data.revenue if in_period
                                                                                      else Decimal(0))


@settings(max_examples=60, deadline=None)
@given(_orders)
def test_cohort_retention_is_a_share_and_month_zero_is_everyone(facts: list[OrderFact]) -> None:
    orders = compute.convert(facts, None)
    data = compute.cohorts(orders, {}, date(2026, 1, 1), date(2026, 6, 30))
    for row in data.cohorts:
        assert row.retention[0] == 1
        assert all(0 <= share <= 1 for share in row.retention)
        assert len(row.retention) == compute.months_between(row.cohort, date(2026, 6, 30)) + 1
    repeat = compute.repeat_rate(orders, {}, date(2026, 1, 1), date(2026, 6, 30), "month")
    assert 0 <= repeat.repeat_customers <= repeat.customers
    assert all(0 <= p.returning_customers <= p.customers for p in repeat.points)


def test_cohorts_count_who_ordered_again_in_each_later_month() -> None:
    facts = [_order("a", _day(1, 5), "1"), _order("a", _day(2, 5), "1"), _order("a", _day(3, 5), "1"),
             _order("b", _day(1, 9), "1"), _order("b", _day(3, 9), "1"),
             _order("c", _day(2, 1), "1"),
             _order("old", _day(2, 2), "1")]
    data = compute.cohorts(compute.convert(facts, None), {"old": datetime(2025, 1, 1, tzinfo=UTC)},
                           date(2026, 1, 1), date(2026, 3, 31))
    assert data == CohortsData(cohorts=(
        compute.CohortRow(cohort=date(2026, 1, 1), customers=2,
                          retention=(Decimal(1), Decimal("0.5"), Decimal(1))),
        compute.CohortRow(cohort=date(2026, 2, 1), customers=1, retention=(Decimal(1), Decimal(0)))))


def test_a_customer_whose_first_order_was_before_the_period_is_returning() -> None:
    facts = [_order("old", _day(5, 2), "1"), _order("new", _day(5, 3), "1"), _order("new", _day(6, 3), "1")]
    data = compute.repeat_rate(compute.convert(facts, None), {"old": datetime(2025, 1, 1, tzinfo=UTC)},
                               date(2026, 5, 1), date(2026, 6, 30), "month")
    assert [(p.customers, p.returning_customers) for p in data.points] == [(2, 1), (1, 1)]
    assert (data.customers, data.repeat_customers, data.repeat_rate) == (2, 2, Decimal(1))


def test_channels_credit_the_first_touch_of_the_shopper_and_the_last_touch_of_the_order() -> None:
    facts = [_order("a", _day(6, 1), "10", channel="email / flow"), _order("a", _day(6, 2), "5", channel=None)]
    data = compute.channels(compute.convert(facts, None), {"a": "google / cpc"}, date(2026, 6, 1), date(2026, 6, 30))
    assert [(r.touch, r.channel, r.orders, r.revenue) for r in data.rows] == [
        ("first", "google / cpc", 2, Decimal("15.00")), ("last", "email / flow", 1, Decimal("10.00")),
        ("last", "(untracked)", 1, Decimal("5.00"))]


def test_a_checkout_followed_by_an_order_within_a_day_is_not_abandoned() -> None:
    checkouts = [("a", _day(6, 1, 10)), ("b", _day(6, 1, 11)), ("c", _day(6, 30, 23))]
    orders = compute.convert([_order("a", _day(6, 1, 12), "10"), _order("b", _day(6, 3), "10"),
                              _order("c", _day(7, 1, 1), "10")], None)
    recovered = [compute.Recovered(day=date(2026, 6, 3), orders=1, revenue=Decimal("10.00"))]
    data = compute.abandonment(checkouts, orders, recovered, date(2026, 6, 1), date(2026, 6, 30), "month")
    assert (data.checkouts, data.abandoned, data.abandonment_rate) == (3, 1, Decimal("0.3333"))
    assert (data.recovered_orders, data.recovered_revenue) == (1, Decimal("10.00"))


def _buyer(profile_id: str, orders: int, spent: str, days_ago: int, prediction: Prediction | None = None) -> Profile:
    last = NOW - timedelta(days=days_ago)
    return new_profile(WS, profile_id, NOW).model_copy(update={
        "orders_count": orders, "total_spent": Decimal(spent), "currency": "USD", "last_order_at": last,
        "first_order_at": last,
        "prediction": prediction})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 20), _amounts, st.integers(0, 800)), max_size=30))
def test_the_rfm_grid_holds_every_buyer_once(buyers: list[tuple[int, Decimal, int]]) -> None:
    profiles = [_buyer(f"p{i}", n, str(spent), days) for i, (n, spent, days) in enumerate(buyers)]
    data = compute.rfm([*profiles, new_profile(WS, "browser", NOW)], NOW)
    assert len(data.cells) == 25
    assert sum(c.profiles for c in data.cells) == sum(g.profiles for g in data.groups) == data.buyers == len(buyers)


def _predicted(churn: str, clv: str) -> Prediction:
    return Prediction(status="predicted", model="bgnbd", computed_at=NOW, churn_probability=Decimal(churn),
                      p_alive=1 - Decimal(churn), clv=Decimal(clv), currency="USD")


def test_churn_risk_per_segment_of_the_predicted_members() -> None:
    members: list[tuple[Profile, frozenset[str]]] = [
        (_buyer("a", 2, "10", 5, _predicted("0.2", "100")), frozenset({"builtin:vip", "s1"})),
        (_buyer("b", 1, "10", 300, _predicted("0.8", "10")), frozenset({"s1"})),
        (_buyer("c", 1, "10", 1, Prediction(status="insufficient_history", reason="one order", computed_at=NOW)),
         frozenset({"s1"})),
        (new_profile(WS, "d", NOW), frozenset()),
    ]
    data = compute.predictions(members, {"s1": "Lapsed", "builtin:vip": "VIP"})
    assert data.statuses == {"insufficient_history": 1, "none": 1, "predicted": 2}
    assert (data.predicted, data.total_clv) == (2, Decimal("110.00"))
    assert sum(b.profiles for b in data.clv_bins) == 2
    assert [(s.name, s.predicted, s.mean_churn_probability, s.at_risk, s.mean_clv) for s in data.segments] == [
        ("Lapsed", 2, Decimal("0.5"), 1, Decimal("55.00")), ("VIP", 1, Decimal("0.2"), 0, Decimal("100.00"))]



def _clv_members(clvs: Iterable[str]) -> list[tuple[Profile, frozenset[str]]]:
    return [(_buyer(f"p{i}", 2, "10", 5, _predicted("0.2", clv)), frozenset()) for i, clv in enumerate(clvs)]


def test_one_big_spender_goes_to_an_overflow_bin_instead_of_squashing_every_bar() -> None:
    clvs = [str(10 + i) for i in range(99)] + ["3300"]  # 10..108, and one 3,300
    bins = compute.predictions(_clv_members(clvs), {}).clv_bins
    assert len(bins) == compute.CLV_BINS and [b.overflow for b in bins] == [False] * 9 + [True]
    # The 95th percentile by nearest rank: the 95th of 100, 104.00; the overflow holds 104..108 and 3,300.
    assert (bins[-1].lower, bins[-1].upper, bins[-1].profiles) == (Decimal("104.00"), Decimal("3300.00"), 6)
    assert (bins[0].lower, bins[-2].upper) == (Decimal("10.00"), Decimal("104.00"))
    assert max(b.profiles for b in bins[:-1]) <= 11  # the 94 others spread over nine bars
    report = Report(name="predictions", title="t", from_=NOW.date(), to=NOW.date(), interval="month",
                          currency="USD", generated_at=NOW, data=compute.predictions(_clv_members(clvs), {}))
    values = charts.chart(report)["hconcat"][0]["data"]["values"]
    assert [v["range"] for v in values][::9] == ["10-20", ">= 104"]


def test_a_clv_spread_without_a_long_tail_keeps_ten_even_bins() -> None:
    bins = compute.predictions(_clv_members(str(10 + i) for i in range(100)), {}).clv_bins
    assert not any(b.overflow for b in bins) and [b.profiles for b in bins] == [10] * 10


@settings(max_examples=60, deadline=None)
@given(st.lists(st.decimals(min_value=0, max_value=100_000, places=2), min_size=1, max_size=60))
def test_the_clv_bins_hold_every_predicted_shopper_once_in_order(clvs: list[Decimal]) -> None:
    bins = compute.predictions(_clv_members(str(c) for c in clvs), {}).clv_bins
    assert sum(b.profiles for b in bins) == len(clvs)
    assert all(b.lower <= b.upper for b in bins)
    assert all(a.upper == b.lower for a, b in pairwise(bins))
    assert bins[0].lower == min(clvs) and bins[-1].upper == max(clvs)
    assert sum(b.overflow for b in bins) <= 1 and not any(b.overflow for b in bins[:-1])

# --- building and drawing --------------------------------------------------------------------------------------

class _Source:
    def __init__(self, facts: PeriodFacts, profiles: Iterable[tuple[Profile, frozenset[str]]] = ()) -> None:
        self.facts = facts
        self.members = list(profiles)
        self.asked: list[tuple[date, date]] = []

    def period_facts(self, workspace_id: str, first: date, last: date) -> PeriodFacts:
        self.asked.append((first, last))
        return self.facts

    def profiles(self, workspace_id: str) -> Iterable[tuple[Profile, frozenset[str]]]:
        return self.members

    def segment_names(self, workspace_id: str) -> Mapping[str, str]:
        return {"s1": "Lapsed"}

    def recovered(self, workspace_id: str, first: date, last: date) -> list[compute.Recovered]:
        return [compute.Recovered(day=first, orders=1, revenue=Decimal("4.20"))]

    def currency_settings(self, workspace_id: str) -> CurrencySettings | None:
        return None


@pytest.mark.parametrize("name", query.TITLES)
def test_every_report_is_json_with_a_vega_lite_chart_of_its_data(name: str) -> None:
    facts = PeriodFacts(orders=(_order("a", _day(6, 1), "12.50", channel="direct"), _order("b", _day(6, 2), "7")),
                        checkouts=(("a", _day(6, 1, 8)),), first_order_at={}, first_touch={"a": "google / cpc"})
    source = _Source(facts, [(_buyer("a", 2, "19.5", 3, _predicted("0.3", "40")), frozenset({"s1"}))])
    report = query.build(source, WS, name, {"from": "2026-06-01", "to": "2026-06-30"}, NOW)
    view = query.report_view(report)
    assert view["report"]["name"] == name and view["report"]["from"] == "2026-06-01"
    assert view["report"]["currency"] == "USD"
    spec = view["chart"]
    assert spec["$schema"].endswith("vega-lite/v5.json") and spec["title"]["text"] == query.TITLES[name]
    moment = "as of 2026-06-30 12:00 UTC" if name in query.AS_OF_NOW else "2026-06-01 to 2026-06-30"
    assert spec["title"]["subtitle"].startswith(moment)


def test_the_revenue_report_reads_the_period_and_its_json_keeps_money_exact() -> None:
    source = _Source(PeriodFacts(orders=(_order("a", _day(6, 1), "0.10"), _order("a", _day(6, 2), "0.20"))))
    report = query.build(source, WS, "revenue", {"from": "2026-06-01", "to": "2026-06-30"}, NOW)
    assert source.asked == [(date(2026, 6, 1), date(2026, 7, 1))]  # a day more: abandonment's window
    assert isinstance(report.data, RevenueData)
    view = query.report_view(report)["report"]
    assert view["data"]["revenue"] == "0.30" and view["data"]["points"][0]["revenue"] == "0.10"
    assert charts.chart(report)["data"]["values"][1]["revenue"] == pytest.approx(0.2)


def test_an_order_the_day_after_the_period_counts_for_abandonment_only() -> None:
    source = _Source(PeriodFacts(orders=(_order("a", _day(7, 1, 1), "10"),), checkouts=(("a", _day(6, 30, 23)),)))
    asked = {"from": "2026-06-01", "to": "2026-06-30"}
    abandonment = query.build(source, WS, "abandonment", asked, NOW).data
    revenue = query.build(source, WS, "revenue", asked, NOW).data
    assert isinstance(abandonment, AbandonmentData) and isinstance(revenue, RevenueData)
    assert (abandonment.checkouts, abandonment.abandoned, revenue.orders) == (1, 0, 0)
