"""The dashboard's charts as bars an SVG element draws (the page carries no script to draw charts with):
the same series the reports' Vega-Lite charts plot (crm.reports.charts), scaled to a fixed viewBox that the
browser stretches to the page's width."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

WIDTH, HEIGHT = 600, 160
AXIS = 20  # room under the bars for the first and last labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str  # the tooltip and the accessible text of the bar: "2026-03-01: 1,204.50"


@dataclass(frozen=True)
class BarChart:
    label: str  # what the chart shows, for screen readers (role="img" aria-label)
    bars: tuple[Bar, ...]
    first: str
    last: str
    top: str  # the largest value, written at the top of the axis
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def baseline(self) -> int:
        return self.height - AXIS


def bar_chart(label: str, points: Sequence[tuple[date, Decimal | int | None]], shown: str = "{:,}") -> BarChart:
    """One bar a point (None draws none); heights relative to the largest value."""
    values = [Decimal(v) if v is not None else None for _, v in points]
    largest = max((v for v in values if v is not None), default=Decimal(0))
    plot = HEIGHT - AXIS - 4
    step = WIDTH / max(len(points), 1)
    bars = []
    for index, ((day, _), value) in enumerate(zip(points, values, strict=True)):
        if value is None:
            continue
        height = float(value / largest) * plot if largest > 0 else 0.0
        bars.append(Bar(x=round(index * step + step * 0.1, 2), y=round(HEIGHT - AXIS - height, 2),
                        width=round(step * 0.8, 2), height=round(height, 2),
                        title=f"{day.isoformat()}: {shown.format(value)}"))
    return BarChart(label, tuple(bars), points[0][0].isoformat() if points else "",
                    points[-1][0].isoformat() if points else "", shown.format(largest))
