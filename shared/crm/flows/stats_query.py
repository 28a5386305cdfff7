"""GET /flows/{id}/stats and GET /flows/{id}/steps/{step}/stats (docs/flow-stats.md): the period asked for,
the counters, winners and reporting currency read through the ports, and crm.flows.stats's report."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from crm.flows import stats
from crm.flows.manage import get as get_flow
from crm.flows.ports import FlowCatalogue, FlowCounters, SplitWinners
from crm.flows.stats import StepNotFound
from crm.models.flow_stats import FlowStatsReport
from crm.periods import query_day
from crm.ports import CurrencyStore

# The period when ``from`` is not given: the 30 days up to ``to`` (today by default), both included.
DEFAULT_DAYS = 30
# At most a year and a day per question: the counters read grow with the days (one Query, paged).
MAX_DAYS = 366


class StatsQueryInvalid(ValueError):
    """A bad ``from``/``to``: the message names the parameter and what is wrong."""


def _day(query: Mapping[str, str], name: str) -> date | None:
    return query_day(query, name, StatsQueryInvalid)


def _days_before(day: date, days: int) -> date:
    try:
        return day - timedelta(days=days)
    except OverflowError:  # ?to=0001-01-05
        return date.min


def period(query: Mapping[str, str], today: date) -> tuple[date, date]:
    """The first and last days (UTC, both included) of ``?from=&to=``."""
    last = _day(query, "to") or today
    first = _day(query, "from") or _days_before(last, DEFAULT_DAYS - 1)
    if first > last:
        raise StatsQueryInvalid(f"from ({first}) is after to ({last})")
    if (last - first).days + 1 > MAX_DAYS:
        raise StatsQueryInvalid(f"from..to spans {(last - first).days + 1} days: at most {MAX_DAYS}")
    return first, last


def flow_stats(catalogue: FlowCatalogue, counters: FlowCounters, winners: SplitWinners, currency: CurrencyStore,
               workspace_id: str, flow_id: str, query: Mapping[str, str], today: date,
               step_id: str | None = None) -> FlowStatsReport:
    """The flow's (or its step's) report over the period asked for: FlowNotFound, StepNotFound (404) or
    StatsQueryInvalid (400)."""
    first, last = period(query, today)
    flow = get_flow(catalogue, workspace_id, flow_id)
    rows = counters.rows(workspace_id, flow_id, first, last)
    held = winners.winners(workspace_id, flow_id) if stats.random_splits(flow.definition) else {}
    settings = currency.settings(workspace_id)
    reporting = settings.reporting_currency if settings else None
    if step_id is None:
        return stats.flow_stats(flow_id, flow.definition, rows, first, last, reporting, held)
    return stats.step_stats(flow_id, flow.definition, step_id, rows, first, last, reporting, held)


def report_view(report: FlowStatsReport) -> dict[str, Any]:
    """The report as JSON: money and rates as decimal strings, days as YYYY-MM-DD, ``from``/``to``."""
    return report.model_dump(mode="json", by_alias=True)


__all__ = ["DEFAULT_DAYS", "MAX_DAYS", "StatsQueryInvalid", "StepNotFound", "flow_stats", "period", "report_view"]
