"""The demo's reports: each one asked of the marketer API over the simulated months, its chart drawn to
``demo-output/reports/NAME.png`` (vl-convert), and the files listed with a line of what each says."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from crm.models.reports import REPORT_NAMES

from crm_local.reports import render

# GET path -> (HTTP status, JSON answer), as demo.Api.call answers.
Ask = Callable[[str], tuple[int, Any]]


def _gist(name: str, data: dict[str, Any], currency: str | None) -> str:
    money = currency or ""
    if name == "revenue":
        return f"{data['orders']} orders, {data['revenue']} {money}, AOV {data['average_order_value']} {money}"
    if name == "repeat_rate":
        return f"{data['repeat_customers']} of {data['customers']} customers ordered twice or more"
    if name == "cohorts":
        return f"{len(data['cohorts'])} monthly cohorts"
    if name == "rfm":
        largest = data["groups"][0] if data["groups"] else None
        return f"{data['buyers']} buyers" + (f", largest group {largest['name']} ({largest['profiles']})"
                                             if largest else "")
    if name == "channels":
        return f"{len({r['channel'] for r in data['rows']})} channels, {data['revenue']} {money}"
    if name == "abandonment":
        return (f"{data['checkouts']} checkouts, {data['abandoned']} abandoned; flows recovered "
                f"{data['recovered_orders']} orders, {data['recovered_revenue']} {money}")
    return f"{data['predicted']} shoppers predicted, statuses {data['statuses']}"


def draw_reports(ask: Ask, out_dir: Path, first: date) -> list[str]:
    """Every report from ``first`` to the API's today, drawn to PNG; the mismatches (a report not answered)."""
    folder = out_dir / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    print("\n== reports ==")
    wrong: list[str] = []
    for name in REPORT_NAMES:
        status, answer = ask(f"/reports/{name}?{urlencode({'from': first.isoformat()})}")
        if status != 200:
            wrong.append(f"reports: GET /reports/{name} answered {status}: {answer}")
            continue
        path = folder / f"{name}.png"
        size = render(answer["chart"], path, "png")
        report = answer["report"]
        print(f"  {path!s:<48}{size:>9,} bytes  {_gist(name, report['data'], report['currency'])}")
    for line in wrong:
        print(f"  MISMATCH {line}")
    return wrong


__all__ = ["draw_reports"]
