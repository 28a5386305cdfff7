"""GET /reports/{name}?from=&to=&interval= and `crm report NAME` (docs/reports.md): the question checked, the
facts read through a ReportSource, the report computed (crm.reports.compute) and drawn (crm.reports.charts)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol, cast, get_args

from crm.models.currency import CurrencySettings
from crm.models.profile import Profile
from crm.models.reports import REPORT_NAMES, Interval, OrderFact, Report, ReportName
from crm.periods import query_day
from crm.reporting import default_currency
from crm.reports import charts, compute

# The period when ``from`` is not given: the year up to ``to`` (today by default), both days included.
DEFAULT_DAYS = 365
# At most two years and a day per question: a report reads every order and checkout of its period.
MAX_DAYS = 732
TITLES: dict[ReportName, str] = {
    "revenue": "Revenue, orders and average order value",
    "repeat_rate": "Repeat purchase rate",
    "cohorts": "Monthly cohort retention",
    "rfm": "RFM grid",
    "channels": "Revenue by first- and last-touch channel",
    "abandonment": "Checkout abandonment and recovered revenue",
    "predictions": "Predicted CLV and churn risk by segment",
}
# Reports of the workspace as it is now: the period is checked but not used.
AS_OF_NOW: frozenset[ReportName] = frozenset({"rfm", "predictions"})


class ReportQueryInvalid(ValueError):
    """A bad ``from``/``to``/``interval``: the message names the parameter and what is wrong (400)."""


class ReportNotFound(LookupError):
    """No report of that name (404)."""


@dataclass(frozen=True)
class PeriodFacts:
    """What the workspace's shoppers did in a period: counted orders, checkouts started, and of each shopper
    who did anything, the first counted order ever and the channel of the first touch."""

    orders: tuple[OrderFact, ...] = ()
    checkouts: tuple[tuple[str, datetime], ...] = ()
    first_order_at: Mapping[str, datetime] = field(default_factory=dict)
    first_touch: Mapping[str, str | None] = field(default_factory=dict)


class ReportSource(Protocol):
    """Where the reports read (crm.adapters.report_source)."""

    def period_facts(self, workspace_id: str, first: date, last: date) -> PeriodFacts:
        """The facts of the days ``first``..``last`` (UTC, both included)."""
        ...

    def profiles(self, workspace_id: str) -> Iterable[tuple[Profile, frozenset[str]]]:
        """Every profile of the workspace with the ids of the segments it is in."""
        ...

    def segment_names(self, workspace_id: str) -> Mapping[str, str]: ...

    def recovered(self, workspace_id: str, first: date, last: date) -> list[compute.Recovered]:
        """What the workspace's flows recovered per day (their counters)."""
        ...

    def currency_settings(self, workspace_id: str) -> CurrencySettings | None: ...


@dataclass(frozen=True)
class Question:
    name: ReportName
    first: date
    last: date
    interval: Interval


def _day(query: Mapping[str, str], name: str) -> date | None:
    return query_day(query, name, ReportQueryInvalid)


def default_interval(days: int) -> Interval:
    return "day" if days <= 31 else "week" if days <= 184 else "month"


def question(name: str, query: Mapping[str, str], today: date) -> Question:
    """The report and period asked for: ReportNotFound for an unknown name, ReportQueryInvalid for a bad
    parameter."""
    if name not in REPORT_NAMES:
        raise ReportNotFound(f"no report {name!r}: the reports are {', '.join(REPORT_NAMES)}")
    report: ReportName = name
    last = _day(query, "to") or today
    try:
        first = _day(query, "from") or last - timedelta(days=DEFAULT_DAYS - 1)
    except OverflowError:  # ?to=0001-01-05
        first = date.min
    if first > last:
        raise ReportQueryInvalid(f"from ({first}) is after to ({last})")
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise ReportQueryInvalid(f"from..to spans {days} days: at most {MAX_DAYS}")
    interval = query.get("interval") or ("month" if report == "cohorts" else default_interval(days))
    if interval not in get_args(Interval):
        raise ReportQueryInvalid(f"interval: {interval!r} is not one of {', '.join(get_args(Interval))}")
    if report == "cohorts" and interval != "month":
        raise ReportQueryInvalid(f"interval: cohorts are monthly, {interval!r} is not month")
    return Question(report, first, last, cast(Interval, interval))


def build(source: ReportSource, workspace_id: str, name: str, query: Mapping[str, str], now: datetime) -> Report:
    """The report asked for, over the period asked for."""
    asked = question(name, query, now.date())
    settings = source.currency_settings(workspace_id)
    data: Any
    unconverted: tuple[str, ...] = ()
    currency = settings.reporting_currency if settings else None
    if asked.name in AS_OF_NOW:
        members = list(source.profiles(workspace_id))
        # Without settings, the currency most profiles report in (each its own: crm.reporting).
        currency = currency or default_currency(Counter(p.currency for p, _ in members if p.currency))
        if asked.name == "rfm":
            data = compute.rfm((profile for profile, _ in members), now)
        else:
            data = compute.predictions(members, source.segment_names(workspace_id))
    else:
        # Orders up to a completion window after the period (a checkout on its last day may be completed after;
        # the other reports leave the extra day out): one read of the period serves every report of it.
        facts = source.period_facts(workspace_id, asked.first, asked.last + compute.COMPLETION_DAYS)
        orders = compute.convert(facts.orders, settings)
        currency, unconverted = orders.currency, orders.unconverted
        first, last, interval = asked.first, asked.last, asked.interval
        if asked.name == "revenue":
            data = compute.revenue(orders, first, last, interval)
        elif asked.name == "repeat_rate":
            data = compute.repeat_rate(orders, facts.first_order_at, first, last, interval)
        elif asked.name == "cohorts":
            data = compute.cohorts(orders, facts.first_order_at, first, last)
        elif asked.name == "channels":
            data = compute.channels(orders, facts.first_touch, first, last)
        else:
            data = compute.abandonment(facts.checkouts, orders, source.recovered(workspace_id, first, last),
                                       first, last, interval)
    return Report(name=asked.name, title=TITLES[asked.name], from_=asked.first, to=asked.last,
                  interval=asked.interval, currency=currency, unconverted_currencies=unconverted,
                  generated_at=now, data=data)


def report_view(report: Report) -> dict[str, Any]:
    """The report as JSON (money and rates as decimal strings, days as YYYY-MM-DD) and its Vega-Lite chart."""
    return {"report": report.model_dump(mode="json", by_alias=True), "chart": charts.chart(report)}


def day_range(first: date, last: date) -> tuple[datetime, datetime]:
    """The instants from the start of ``first`` to the end of ``last`` (UTC)."""
    return datetime.combine(first, time.min, UTC), datetime.combine(last, time.max, UTC)


__all__ = ["AS_OF_NOW", "DEFAULT_DAYS", "MAX_DAYS", "PeriodFacts", "Question", "ReportNotFound",
           "ReportQueryInvalid", "ReportSource", "build", "day_range", "question", "report_view"]
