"""crm.flows.stats: counter rows -> what GET /flows/{id}/stats answers (totals, days, steps, A/B paths)."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from crm.flows.abtest import Arm, probability_best
from crm.flows.stats import StepNotFound, counts_of, flow_stats, settled_winner, step_stats, summed
from crm.flows.stats_query import StatsQueryInvalid, period, report_view
from crm.models.flow_stats import ALL_STEPS, CounterRow, Counts
from crm.models.flows import FlowDefinition, RandomSplit
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import ROOT

WS, FLOW = "ws1", "f1"
DAY = date(2026, 11, 2)

# email_0, then an A/B split "ab": path 0 sends email_a then a nested split "inner" (email_c | email_d);
# path 1 sends email_b.
DEFINITION = FlowDefinition.model_validate({
    "name": "stats", "trigger": {"kind": "event", "event": "CheckoutStarted"},
    "steps": [
        {"kind": "email", "id": "email_0", "template_id": "t0"},
        {"kind": "random", "id": "ab", "winner": {"metric": "click", "min_recipients": 10, "probability": 0.9},
         "paths": [
             {"weight": 50, "steps": [
                 {"kind": "email", "id": "email_a", "template_id": "ta"},
                 {"kind": "random", "id": "inner", "paths": [
                     {"weight": 1, "steps": [{"kind": "email", "id": "email_c", "template_id": "tc"}]},
                     {"weight": 1, "steps": [{"kind": "email", "id": "email_d", "template_id": "td"}]}]}]},
             {"weight": 50, "steps": [{"kind": "email", "id": "email_b", "template_id": "tb"}]}]}]})


def row(day: date, counts: dict[str, int | str], step: str = ALL_STEPS, variant: str = ALL_STEPS) -> CounterRow:
    return CounterRow(workspace_id=WS, flow_id=FLOW, day=day, step_id=step, variant=variant,
                      counts={name: Decimal(value) for name, value in counts.items()})


def test_totals_and_days_come_from_the_flow_wide_rows_of_the_period() -> None:
    rows = [
        row(DAY, {"entered": 10, "completed": 3, "exited:exit_event:OrderPlaced": 2, "skipped:no_consent": 1,
                  "sent": 8, "delivered": 8, "opened": 4, "clicked": 2, "converted": 1, "revenue": "40.00"}),
        row(DAY + timedelta(days=1), {"entered": 5, "exited:filter": 1, "sent": 2, "delivered": 2,
                                      "unsubscribed": 1, "bounced": 0, "recovered": 1, "recovered_revenue": "40.00"}),
        row(DAY + timedelta(days=5), {"entered": 100}),  # after the period
        row(DAY, {"sent": 99}, step="email_0"),  # a step's row: not the totals
    ]
    report = flow_stats(FLOW, DEFINITION, rows, DAY, DAY + timedelta(days=1), "USD")
    totals = report.totals
    assert (totals.entered, totals.completed, totals.sent, totals.delivered) == (15, 3, 10, 10)
    assert totals.exited == {"exit_event:OrderPlaced": 2, "filter": 1} and totals.skipped == {"no_consent": 1}
    assert totals.in_progress == 15 - 3 - 3
    assert totals.open_rate == Decimal("0.4000") and totals.click_rate == Decimal("0.2000")
    assert totals.conversion_rate == Decimal("0.1000") and totals.revenue == Decimal("40.00")
    assert totals.revenue_per_recipient == Decimal("4.00")
    assert (totals.recovered, totals.recovered_revenue, totals.unsubscribed) == (1, Decimal("40.00"), 1)
    assert [d.day for d in report.by_day] == [DAY, DAY + timedelta(days=1)]
    assert report.by_day[1].counts.entered == 5 and report.by_day[1].counts.in_progress == 4
    assert report.model_dump(by_alias=True)["from"] == DAY and report.currency == "USD"


def test_rates_without_a_denominator_are_zero_and_in_progress_never_negative() -> None:
    counts = counts_of(summed([row(DAY, {"opened": 3, "completed": 4, "revenue": "9.99"})]))
    assert (counts.open_rate, counts.conversion_rate, counts.revenue_per_recipient) == (0, 0, 0)
    assert counts.in_progress == 0


def test_a_step_sums_its_rows_over_variants_and_every_step_is_listed() -> None:
    rows = [row(DAY, {"sent": 4, "recipients": 4}, step="email_c", variant="inner:0"),
            row(DAY, {"sent": 1}, step="email_c", variant="-"),
            row(DAY, {"recipients": 7}, step="email_0")]
    report = flow_stats(FLOW, DEFINITION, rows, DAY, DAY, "EUR")
    assert report.steps["email_c"].sent == 5 and report.steps["email_0"].recipients == 7
    assert set(report.steps) == {"email_0", "ab", "email_a", "inner", "email_c", "email_d", "email_b"}
    assert report.steps["email_d"].sent == 0


def _ab_rows(recipients: tuple[int, int], clicked: tuple[int, int]) -> list[CounterRow]:
    # As crm.flows.counting writes them: the split step's own row (runs that reached it), then its paths'.
    return [
        row(DAY, {"recipients": sum(recipients)}, step="ab"),
        row(DAY, {"recipients": recipients[0]}, step="ab", variant="ab:0"),
        row(DAY, {"recipients": recipients[1]}, step="ab", variant="ab:1"),
        row(DAY, {"sent": recipients[0], "delivered": recipients[0], "clicked": clicked[0] - 1, "revenue": "10"},
            step="email_a", variant="ab:0"),
        # The nested split's steps count for the outer path too.
        row(DAY, {"sent": 1, "clicked": 1, "converted": 1, "revenue": "5"}, step="email_d", variant="inner:1"),
        row(DAY, {"sent": recipients[1], "delivered": recipients[1], "clicked": clicked[1]}, step="email_b",
            variant="ab:1"),
    ]


def test_an_ab_split_reports_each_path_with_its_probability_of_being_best_on_its_metric() -> None:
    report = flow_stats(FLOW, DEFINITION, _ab_rows((40, 42), (4, 12)), DAY, DAY, "USD", winners={"ab": 1})
    [outer, inner] = report.splits
    assert (outer.split_id, outer.metric, outer.winner, inner.winner) == ("ab", "click", 1, None)
    first, second = outer.variants
    assert (first.variant, first.path, first.weight, first.recipients) == ("ab:0", 0, 50, 40)
    assert (first.counts.sent, first.counts.clicked, first.counts.revenue) == (41, 4, Decimal("15"))
    assert (second.recipients, second.counts.clicked) == (42, 12)
    expected = probability_best([Arm(40, 4), Arm(42, 12)])
    assert first.probability_best == pytest.approx(expected[0], abs=1e-4)
    assert second.probability_best == pytest.approx(expected[1], abs=1e-4)
    # A split without a rule is compared on conversions.
    assert inner.metric == "conversion" and inner.variants[1].counts.converted == 1


def test_a_path_without_its_own_recipients_row_counts_the_runs_at_its_first_step() -> None:
    rows = [row(DAY, {"recipients": 30, "sent": 30}, step="email_a", variant="ab:0"),
            row(DAY, {"recipients": 28, "sent": 28}, step="email_b", variant="ab:1")]
    [outer, _] = flow_stats(FLOW, DEFINITION, rows, DAY, DAY, "USD").splits
    assert [v.recipients for v in outer.variants] == [30, 28]


def test_the_winner_rule_reads_every_path_s_recipients_and_metric() -> None:
    [split] = [s for s in DEFINITION.steps if isinstance(s, RandomSplit)]
    assert settled_winner(split, _ab_rows((40, 42), (4, 30))) == 1
    assert settled_winner(split, _ab_rows((9, 42), (1, 30))) is None  # path 0 below min_recipients (10)
    assert settled_winner(split, _ab_rows((40, 42), (8, 9))) is None  # no path sure enough


def test_step_stats_answer_one_step_and_a_split_s_paths() -> None:
    rows = [*_ab_rows((40, 42), (4, 12)), row(DAY, {"sent": 7}), row(DAY, {"sent": 3}, step="email_0")]
    email = step_stats(FLOW, DEFINITION, "email_b", rows, DAY, DAY, "USD")
    assert (email.step_id, email.totals.sent, email.totals.clicked, email.splits) == ("email_b", 42, 12, ())
    split = step_stats(FLOW, DEFINITION, "ab", rows, DAY, DAY, "USD")
    assert split.totals.recipients == 82 and [s.split_id for s in split.splits] == ["ab"]
    with pytest.raises(StepNotFound):
        step_stats(FLOW, DEFINITION, "nope", rows, DAY, DAY, "USD")


names = st.sampled_from(["entered", "completed", "exited:filter", "sent", "delivered", "opened", "clicked",
                         "converted", "revenue"])
rows_strategy = st.lists(st.builds(
    lambda offset, counts: row(DAY + timedelta(days=offset), counts),
    st.integers(0, 6), st.dictionaries(names, st.integers(0, 1000), max_size=5)), max_size=20)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, first=st.integers(0, 6), length=st.integers(0, 6))
def test_the_totals_are_the_sum_of_the_days_asked_for(rows: list[CounterRow], first: int, length: int) -> None:
    first_day = DAY + timedelta(days=first)
    last_day = first_day + timedelta(days=length)
    report = flow_stats(FLOW, DEFINITION, rows, first_day, last_day, "USD")
    assert all(first_day <= d.day <= last_day for d in report.by_day)
    for name in ("entered", "completed", "sent", "delivered", "opened", "clicked", "converted", "revenue"):
        assert getattr(report.totals, name) == sum(getattr(d.counts, name) for d in report.by_day)
        expected = sum(r.counts.get(name, 0) for r in rows if first_day <= r.day <= last_day)
        assert getattr(report.totals, name) == expected


# --- docs/flow-stats.md says what the code answers -----------------------------------------------------------

DOC = (ROOT / "docs" / "flow-stats.md").read_text()
ANSWER, SPLIT = (json.loads(block) for block in re.findall(r"^```json\n(.*?)^```", DOC, re.MULTILINE | re.DOTALL))


def test_the_documented_answer_has_the_report_s_fields_and_the_split_example_parses() -> None:
    report = flow_stats(FLOW, DEFINITION, [], DAY, DAY, "USD")
    assert set(ANSWER) == set(report_view(report))
    assert set(ANSWER["totals"]) == set(report_view(report)["totals"])
    assert set(ANSWER["splits"][0]["variants"][0]) == set(report_view(report)["splits"][0]["variants"][0])
    split = RandomSplit.model_validate(SPLIT)
    assert split.winner is not None and split.winner.metric == "click"


def test_the_documented_field_table_names_every_count() -> None:
    table = DOC.split("| Field | Meaning |", 1)[1].split("\n\n", 1)[0]
    documented = set(re.findall(r"`([a-z_]+)`", table))
    assert set(Counts.model_fields) <= documented


def test_the_period_defaults_to_30_days_to_today_and_refuses_what_is_not_one() -> None:
    today = date(2026, 12, 4)
    assert period({}, today) == (date(2026, 11, 5), today)
    assert period({"to": "2026-01-31"}, today) == (date(2026, 1, 2), date(2026, 1, 31))
    assert period({"to": "0001-01-05"}, today) == (date.min, date(1, 1, 5))  # no overflow below year 1
    assert period({"from": "2025-12-04", "to": "2026-12-04"}, today)[0] == date(2025, 12, 4)  # 366 days
    with pytest.raises(StatsQueryInvalid, match="spans 367 days"):
        period({"from": "2025-12-03", "to": "2026-12-04"}, today)
    with pytest.raises(StatsQueryInvalid, match=r"^from: '' is not a date"):
        period({"from": ""}, today)
