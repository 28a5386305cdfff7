"""Each report as a Vega-Lite chart: a pure dict (the API returns it beside the data; the CLI and the demo
render it to PNG/SVG with vl-convert, which the Lambda layer never ships).

The values plotted are the report's own, as numbers: a chart is a picture of the data, the JSON keeps the
exact Decimal strings.
"""

from __future__ import annotations

from typing import Any

from crm.models.reports import (
    AbandonmentData,
    ChannelsData,
    CohortsData,
    PredictionsData,
    RepeatData,
    Report,
    RevenueData,
    RfmData,
)
from crm.segments.rfm import GROUP_NAMES, RfmGroup

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
WIDTH = 640
HEIGHT = 320
BAR = "#4c78a8"
ACCENT = "#f58518"
_TIME_FORMAT = {"day": "%b %d", "week": "%b %d", "month": "%b %Y"}
_TIME_UNIT = {"day": "yearmonthdate", "week": "yearmonthdate", "month": "yearmonth"}


def _money_axis(title: str, currency: str | None) -> dict[str, Any]:
    # ",.2~f": whole amounts print whole, small ones keep their cents (",.0f" printed 0.5 and 1 both as "1").
    return {"title": f"{title} ({currency})" if currency else title, "format": ",.2~f"}


def _spec(report: Report, subtitle: str, body: dict[str, Any]) -> dict[str, Any]:
    period = (f"as of {report.generated_at:%Y-%m-%d %H:%M} UTC" if report.name in ("rfm", "predictions")
              else f"{report.from_.isoformat()} to {report.to.isoformat()}")
    return {"$schema": SCHEMA, "title": {"text": report.title, "subtitle": f"{period} · {subtitle}",
                                         "anchor": "start", "fontSize": 16},
            "config": {"view": {"stroke": None}, "axis": {"labelFontSize": 11,
                                                                               "titleFontSize": 12}},
            "background": "white", "padding": 16, **body}


def _time_x(report: Report) -> dict[str, Any]:
    label = {"day": "Day", "week": "Week starting", "month": "Month"}[report.interval]
    # Ordinal: one band per bucket, its label under its middle (a temporal axis ticks the buckets' edges).
    return {"field": "start", "type": "ordinal", "timeUnit": _TIME_UNIT[report.interval], "title": label,
            "axis": {"format": _TIME_FORMAT[report.interval], "labelAngle": -40}}


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def revenue(report: Report, data: RevenueData) -> dict[str, Any]:
    values = [{"start": p.start.isoformat(), "revenue": float(p.revenue), "orders": p.orders,
               "aov": _number(p.average_order_value)} for p in data.points]
    currency = report.currency or ""
    subtitle = (f"revenue {data.revenue:,} {currency}, {data.orders:,} orders, "
                f"AOV {data.average_order_value or 0:,} {currency}; bars revenue, line AOV")
    x = _time_x(report)
    tooltip = [{"field": "start", "type": "temporal", "title": x["title"]},
               {"field": "revenue", "format": ",.2f"}, {"field": "orders"}, {"field": "aov", "format": ",.2f"}]
    return _spec(report, subtitle, {
        "width": WIDTH, "height": HEIGHT, "data": {"values": values},
        "layer": [
            {"mark": {"type": "bar", "color": BAR, "opacity": 0.85},
             "encoding": {"x": x, "y": {"field": "revenue", "type": "quantitative",
                                        "axis": _money_axis("Revenue", report.currency) | {"titleColor": BAR}},
                          "tooltip": tooltip}},
            {"mark": {"type": "line", "color": ACCENT, "point": {"color": ACCENT}, "strokeWidth": 2},
             "encoding": {"x": x, "y": {"field": "aov", "type": "quantitative",
                                        "axis": _money_axis("Average order value", report.currency)
                                        | {"titleColor": ACCENT, "orient": "right"}},
                          "tooltip": tooltip}}],
        "resolve": {"scale": {"y": "independent"}}})


def repeat_rate(report: Report, data: RepeatData) -> dict[str, Any]:
    values = []
    for p in data.points:
        share = _number(p.repeat_rate)
        values.append({"start": p.start.isoformat(), "kind": "New", "customers": p.customers - p.returning_customers,
                       "rate": share})
        values.append({"start": p.start.isoformat(), "kind": "Returning", "customers": p.returning_customers,
                       "rate": share})
    overall = f"{data.repeat_rate:.1%}" if data.repeat_rate is not None else "n/a"
    subtitle = (f"{data.customers:,} customers ordered; {data.repeat_customers:,} of them "
                f"have ordered twice or more ({overall}); line: returning share of each bucket's customers")
    x = _time_x(report)
    return _spec(report, subtitle, {
        "width": WIDTH, "height": HEIGHT, "data": {"values": values},
        "layer": [
            {"mark": {"type": "bar"},
             "encoding": {"x": x,
                          "y": {"field": "customers", "type": "quantitative", "stack": "zero",
                                "title": "Customers who ordered"},
                          "color": {"field": "kind", "type": "nominal", "title": None,
                                    "scale": {"domain": ["New", "Returning"], "range": ["#9ecae9", BAR]},
                                    "legend": {"orient": "top"}},
                          "order": {"field": "kind", "sort": "descending"},
                          "tooltip": [{"field": "start", "type": "temporal"}, {"field": "kind"},
                                      {"field": "customers"}]}},
            {"transform": [{"filter": "datum.kind === 'Returning'"}],
             "mark": {"type": "line", "color": ACCENT, "point": {"color": ACCENT}, "strokeWidth": 2},
             "encoding": {"x": x, "y": {"field": "rate", "type": "quantitative", "scale": {"domain": [0, 1]},
                                        "axis": {"title": "Returning share", "format": ".0%", "orient": "right",
                                                 "titleColor": ACCENT}}}}],
        "resolve": {"scale": {"y": "independent"}}})


def cohorts(report: Report, data: CohortsData) -> dict[str, Any]:
    values = [{"cohort": row.cohort.strftime("%Y-%m") + f" ({row.customers:,})", "month": k,
               "retention": float(share)}
              for row in data.cohorts for k, share in enumerate(row.retention)]
    subtitle = "share of each month's new customers who ordered again k months later (month 0: all of them)"
    base = {"x": {"field": "month", "type": "ordinal", "title": "Months since first order",
                  "axis": {"labelAngle": 0}},
            "y": {"field": "cohort", "type": "ordinal", "title": "Cohort: first order month (customers)"}}
    return _spec(report, subtitle, {
        "width": max(WIDTH // 2, 48 * (max((len(r.retention) for r in data.cohorts), default=1))),
        "height": max(60, 28 * len(data.cohorts)), "data": {"values": values},
        "layer": [
            {"mark": "rect", "encoding": base | {
                "color": {"field": "retention", "type": "quantitative", "title": "Retention",
                          "scale": {"scheme": "blues", "domain": [0, 1]}, "legend": {"format": ".0%"}},
                "tooltip": [{"field": "cohort"}, {"field": "month"}, {"field": "retention", "format": ".1%"}]}},
            {"mark": {"type": "text", "fontSize": 11},
             "encoding": base | {"text": {"field": "retention", "type": "quantitative", "format": ".0%"},
                                 "color": {"condition": {"test": "datum.retention > 0.5", "value": "white"},
                                           "value": "black"}}}]})


def rfm(report: Report, data: RfmData) -> dict[str, Any]:
    names = {group.value: GROUP_NAMES[group] for group in RfmGroup}
    values = [{"recency": c.recency, "fm": c.frequency_monetary, "profiles": c.profiles,
               "group": names.get(c.group, c.group), "label": f"{names.get(c.group, c.group)}\n{c.profiles:,}"}
              for c in data.cells]
    sizes = [{"group": g.name, "profiles": g.profiles} for g in data.groups]
    darkest = max((c.profiles for c in data.cells), default=0)
    subtitle = f"{data.buyers:,} buyers scored 1-5 by quintiles; a cell: its RFM group and buyers; right: each group"
    base = {"x": {"field": "recency", "type": "ordinal", "title": "Recency score (5 = ordered most recently)",
                  "axis": {"labelAngle": 0}},
            "y": {"field": "fm", "type": "ordinal", "sort": "descending",
                  "title": "Frequency & monetary score (5 = most)"}}
    grid = {"width": 520, "height": 340, "data": {"values": values}, "layer": [
        {"mark": {"type": "rect", "stroke": "white", "strokeWidth": 2}, "encoding": base | {
            "color": {"field": "profiles", "type": "quantitative", "title": "Buyers", "scale": {"scheme": "greens"},
                      "legend": None},
            "tooltip": [{"field": "group"}, {"field": "recency"}, {"field": "fm"}, {"field": "profiles"}]}},
        {"mark": {"type": "text", "fontSize": 10, "lineBreak": "\n"},
         "encoding": base | {"text": {"field": "label"},
                             "color": {"condition": {"test": f"datum.profiles > {darkest * 0.6}", "value": "white"},
                                       "value": "black"}}}]}
    bars = {"width": 220, "height": {"step": 24}, "data": {"values": sizes},
            "encoding": {"y": {"field": "group", "type": "nominal", "title": None, "sort": "-x"},
                         "x": {"field": "profiles", "type": "quantitative", "title": "Buyers in the group"}},
            "layer": [{"mark": {"type": "bar", "color": "#54a24b"}},
                      {"mark": {"type": "text", "align": "left", "dx": 3, "fontSize": 10},
                       "encoding": {"text": {"field": "profiles", "format": ","}}}]}
    return _spec(report, subtitle, {"hconcat": [grid, bars], "spacing": 30})


def channels(report: Report, data: ChannelsData) -> dict[str, Any]:
    values = [{"touch": f"{row.touch.capitalize()} touch", "channel": row.channel, "revenue": float(row.revenue),
               "orders": row.orders} for row in data.rows]
    subtitle = f"revenue {data.revenue:,} {report.currency or ''}: each touch's bars add up to it"
    return _spec(report, subtitle, {
        "width": WIDTH, "data": {"values": values},
        "mark": {"type": "bar"},
        "encoding": {"y": {"field": "channel", "type": "nominal", "title": "Channel (source / medium)",
                           "sort": "-x"},
                     "yOffset": {"field": "touch"},
                     "x": {"field": "revenue", "type": "quantitative",
                           "axis": _money_axis("Revenue", report.currency)},
                     "color": {"field": "touch", "type": "nominal", "title": None,
                               "scale": {"range": [BAR, ACCENT]}, "legend": {"orient": "top"}},
                     "tooltip": [{"field": "touch"}, {"field": "channel"}, {"field": "orders"},
                                 {"field": "revenue", "format": ",.2f"}]},
        "height": {"step": 14}})


def abandonment(report: Report, data: AbandonmentData) -> dict[str, Any]:
    values = [{"start": p.start.isoformat(), "rate": _number(p.abandonment_rate), "checkouts": p.checkouts,
               "recovered": float(p.recovered_revenue)} for p in data.points]
    overall = f"{data.abandonment_rate:.1%}" if data.abandonment_rate is not None else "n/a"
    subtitle = (f"{data.checkouts:,} checkouts, {overall} abandoned (no order within "
                f"{data.completion_window_hours} h); flows recovered {data.recovered_orders:,} orders, "
                f"{data.recovered_revenue:,} {report.currency or ''}")
    x = _time_x(report)
    return _spec(report, subtitle, {
        "width": WIDTH, "height": HEIGHT, "data": {"values": values},
        "layer": [
            {"mark": {"type": "bar", "color": "#54a24b", "opacity": 0.8},
             "encoding": {"x": x, "y": {"field": "recovered", "type": "quantitative",
                                        # Nothing recovered yet: an axis from 0, not a lone 0 in the middle.
                                        "scale": {"domainMin": 0} if data.recovered_revenue else {"domain": [0, 1]},
                                        "axis": _money_axis("Recovered by flows", report.currency)
                                        | {"titleColor": "#54a24b"}
                                        | ({} if data.recovered_revenue else {"values": [0]})}}},
            {"mark": {"type": "line", "color": "#e45756", "point": {"color": "#e45756"}, "strokeWidth": 2},
             "encoding": {"x": x, "y": {"field": "rate", "type": "quantitative", "scale": {"domain": [0, 1]},
                                        "axis": {"title": "Checkout abandonment rate", "format": ".0%",
                                                 "orient": "right", "titleColor": "#e45756"}}}}],
        "resolve": {"scale": {"y": "independent"}}})


def predictions(report: Report, data: PredictionsData) -> dict[str, Any]:
    # Bars named by their range, not placed on a continuous axis: an overflow bin (">= X") has no width to
    # draw, and a range label says exactly what each bar counts.
    places = 0 if data.clv_bins and data.clv_bins[-1].upper >= 100 else 2
    bins = [{"range": f">= {b.lower:,.{places}f}" if b.overflow else f"{b.lower:,.{places}f}-{b.upper:,.{places}f}",
             "order": k, "lower": float(b.lower), "upper": float(b.upper), "profiles": b.profiles}
            for k, b in enumerate(data.clv_bins)]
    segments = [{"segment": s.name, "churn": float(s.mean_churn_probability), "members": s.predicted,
                 "at_risk": s.at_risk,
                 "label": f"{s.mean_churn_probability:.0%} ({s.at_risk:,} of {s.predicted:,} at risk)"}
                for s in data.segments]
    subtitle = (f"{data.predicted:,} shoppers predicted, 12-month CLV {data.total_clv:,} {report.currency or ''} "
                f"in all; at risk: churn probability >= {data.at_risk_threshold}" if data.predicted else
                "no shopper predicted yet (the scheduled run fits the models): "
                + ", ".join(f"{status} {count:,}" for status, count in data.statuses.items()))
    money = report.currency or ""
    if not data.predicted:  # nothing to plot but why: the profiles by prediction status
        statuses = [{"status": status, "profiles": count} for status, count in data.statuses.items()]
        return _spec(report, subtitle, {
            "width": 400, "height": {"step": 28}, "data": {"values": statuses},
            "encoding": {"y": {"field": "status", "type": "nominal", "title": "Prediction status"},
                         "x": {"field": "profiles", "type": "quantitative", "title": "Profiles"}},
            "layer": [{"mark": {"type": "bar", "color": "#bab0ac"}},
                      {"mark": {"type": "text", "align": "left", "dx": 3},
                       "encoding": {"text": {"field": "profiles", "format": ","}}}]})
    return _spec(report, subtitle, {
        "hconcat": [
            {"title": "Predicted 12-month CLV", "width": 320, "height": HEIGHT, "data": {"values": bins},
             "encoding": {"x": {"field": "range", "type": "ordinal", "sort": {"field": "order"},
                                "title": f"CLV ({money})" if money else "CLV", "axis": {"labelAngle": -40}},
                          "y": {"field": "profiles", "type": "quantitative", "title": "Shoppers"},
                          "tooltip": [{"field": "range", "title": "CLV"}, {"field": "profiles", "format": ","}]},
             "layer": [{"mark": {"type": "bar", "color": BAR}},
                       {"mark": {"type": "text", "baseline": "bottom", "dy": -2, "fontSize": 10},
                        "encoding": {"text": {"field": "profiles", "format": ","}}}]},
            {"title": "Mean churn probability by segment", "width": 320, "data": {"values": segments},
             "height": {"step": 18},
             "encoding": {"y": {"field": "segment", "type": "nominal", "title": None, "sort": "-x"},
                          "x": {"field": "churn", "type": "quantitative", "scale": {"domain": [0, 1]},
                                "title": "Mean churn probability", "axis": {"format": ".0%"}},
                          "tooltip": [{"field": "segment"}, {"field": "members"}, {"field": "at_risk"},
                                      {"field": "churn", "format": ".1%"}]},
             "layer": [{"mark": {"type": "bar", "color": "#e45756"}},
                       {"mark": {"type": "text", "align": "left", "dx": 3, "fontSize": 10},
                        "encoding": {"text": {"field": "label"}}}]}],
        "spacing": 40})


def chart(report: Report) -> dict[str, Any]:
    """The report's Vega-Lite spec."""
    data = report.data
    if isinstance(data, RevenueData):
        return revenue(report, data)
    if isinstance(data, RepeatData):
        return repeat_rate(report, data)
    if isinstance(data, CohortsData):
        return cohorts(report, data)
    if isinstance(data, RfmData):
        return rfm(report, data)
    if isinstance(data, ChannelsData):
        return channels(report, data)
    if isinstance(data, AbandonmentData):
        return abandonment(report, data)
    if isinstance(data, PredictionsData):
        return predictions(report, data)
    raise TypeError(f"no chart for {type(data).__name__}")


__all__ = ["chart"]
