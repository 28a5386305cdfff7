"""The dashboard's SVG bars (crm.console.charts)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from crm.console.charts import HEIGHT, bar_chart


def test_bars_are_scaled_to_the_largest_value_and_a_missing_value_draws_none() -> None:
    chart = bar_chart("Revenue", [(date(2026, 1, 1), Decimal("50")), (date(2026, 2, 1), None),
                                  (date(2026, 3, 1), Decimal("200"))], "{:,.2f}")
    first, last = chart.bars
    assert last.height == HEIGHT - 20 - 4 and first.height == last.height / 4
    assert first.y + first.height == last.y + last.height == chart.baseline
    assert (first.title, last.title) == ("2026-01-01: 50.00", "2026-03-01: 200.00")
    assert (chart.first, chart.last, chart.top) == ("2026-01-01", "2026-03-01", "200.00")
    assert first.x < last.x


def test_an_empty_or_all_zero_series_draws_flat() -> None:
    assert bar_chart("Orders", []).bars == ()
    assert {bar.height for bar in bar_chart("Orders", [(date(2026, 1, 1), 0), (date(2026, 2, 1), 0)]).bars} == {0.0}
