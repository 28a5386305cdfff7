"""The demo's reports part: every report asked, drawn to demo-output/reports/NAME.png, a failed one named."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from crm.models.reports import REPORT_NAMES, OrderFact
from crm.reports import query
from crm.reports.query import PeriodFacts
from crm_local.demo_reports import draw_reports

from tests.unit.test_reports import _Source

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


def _ask_a_source(failing: str | None) -> Any:
    orders = (OrderFact(profile_id="a", placed_at=datetime(2026, 6, 1, tzinfo=UTC), currency="USD",
                        net=Decimal("12.50")),)
    source = _Source(PeriodFacts(orders=orders))
    asked: list[str] = []

    def ask(path: str) -> tuple[int, Any]:
        asked.append(path)
        parts = urlsplit(path)
        name = parts.path.rsplit("/", 1)[-1]
        if name == failing:
            return 500, {"Message": "boom"}
        params = {key: values[0] for key, values in parse_qs(parts.query).items()}
        return 200, query.report_view(query.build(source, "ws", name, params, NOW))

    return ask, asked


def test_every_report_is_drawn_to_a_png_and_listed(tmp_path: Path, capsys: Any) -> None:
    ask, asked = _ask_a_source(failing=None)
    assert draw_reports(ask, tmp_path, date(2026, 1, 1)) == []
    assert asked == [f"/reports/{name}?from=2026-01-01" for name in REPORT_NAMES]
    for name in REPORT_NAMES:
        drawn = (tmp_path / "reports" / f"{name}.png").read_bytes()
        assert drawn.startswith(b"\x89PNG\r\n\x1a\n") and len(drawn) > 5_000
    printed = capsys.readouterr().out
    assert "1 orders, 12.50 USD, AOV 12.50 USD" in printed and printed.count(".png") == len(REPORT_NAMES)


def test_a_report_not_answered_is_a_mismatch(tmp_path: Path) -> None:
    ask, _ = _ask_a_source(failing="cohorts")
    wrong = draw_reports(ask, tmp_path, date(2026, 1, 1))
    assert wrong == ["reports: GET /reports/cohorts answered 500: {'Message': 'boom'}"]
    assert not (tmp_path / "reports" / "cohorts.png").exists()
