"""GET /reports/{name} on the provisioned stack: orders and checkouts ingested as the profiles function applies
them, read back through the workspace index and the timelines (nothing of workspace b), exact to the cent in
the reporting currency; the 400s and 404 naming what is wrong; and `crm report` drawing the chart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from crm.adapters.currency import DynamoCurrencyStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.ingestion import apply_event
from crm.models.canonical import ActivityEvent, ActivityType
from crm.models.stores import Platform
from crm.reporting import initial_settings
from crm_local.cli import main
from crm_local.provision import Provisioned

from tests.builders import NOW, order
from tests.marketer_api import MarketerApi, marketer_api

pytestmark = pytest.mark.integration

TODAY = NOW.date()
# NOW's month and the two before it: the orders below fall in January, February and March.
FIRST = date(2026, 1, 1)
MONTHS = (datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 2, 10, 9, tzinfo=UTC), NOW.replace(hour=9))
PERIOD = f"from={FIRST}&to={TODAY}"


@pytest.fixture
def world(provisioned: Provisioned, function_env: Callable[[str], None],
          monkeypatch: pytest.MonkeyPatch) -> MarketerApi:
    world = marketer_api(provisioned, function_env, monkeypatch)
    table = provisioned.outputs["TableName"]
    assert initial_settings(DynamoCurrencyStore(table), world.a.workspace_id, "USD", NOW)
    repository = DynamoProfileRepository(table)
    a, b = world.a, world.b
    at = dict(enumerate(MONTHS))
    placed = [("ann@example.com", at[0], "10.00"), ("ann@example.com", at[1], "20.05"),
              ("ann@example.com", at[2], "5.00"), ("bob@example.com", at[0] + timedelta(hours=1), "7.77"),
              ("cy@example.com", at[1] + timedelta(hours=2), "100.10")]
    for number, (email, when, total) in enumerate(placed):
        assert apply_event(repository, order(f"a{number}", workspace_id=a.workspace_id, store_id=a.store_id,
                                             email=email, total=Decimal(total), created_at=when), NOW)
    # Refunded in part: its net counts. Unpaid: it does not.
    assert apply_event(repository, order("a-refund", workspace_id=a.workspace_id, store_id=a.store_id,
                                         email="cy@example.com", total=Decimal("50.00"),
                                         refunded=Decimal("20.00"), created_at=at[2]), NOW)
    assert apply_event(repository, order("a-unpaid", workspace_id=a.workspace_id, store_id=a.store_id,
                                         email="cy@example.com", total=Decimal("999.00"), paid=False,
                                         created_at=at[2]), NOW)
    for email, when in (("bob@example.com", at[2]), ("ann@example.com", at[2] - timedelta(hours=1))):
        assert apply_event(repository, ActivityEvent(
            workspace_id=a.workspace_id, store_id=a.store_id, platform=Platform.SHOPIFY, event_id=f"co-{email}",
            type=ActivityType.CHECKOUT_STARTED, occurred_at=when, email=email), NOW)
    assert apply_event(repository, order("b1", workspace_id=b.workspace_id, store_id=b.store_id,
                                         email="bob@example.com", total=Decimal("1000.00"), created_at=at[2]), NOW)
    return world


def test_revenue_orders_and_aov_by_month_exact_to_the_cent(world: MarketerApi) -> None:
    view = world.ok("get", f"/reports/revenue?{PERIOD}&interval=month")
    report, chart = view["report"], view["chart"]
    assert (report["name"], report["currency"], report["interval"]) == ("revenue", "USD", "month")
    data = report["data"]
    assert (data["orders"], data["revenue"]) == (6, "172.92")  # 10 + 20.05 + 5 + 7.77 + 100.10 + 30
    assert [(p["orders"], p["revenue"]) for p in data["points"]] == [(2, "17.77"), (2, "120.15"), (2, "35.00")]
    assert data["points"][0]["average_order_value"] == "8.88"  # 8.885, rounded half to even
    assert chart["$schema"].endswith("v5.json") and len(chart["data"]["values"]) == 3


def test_cohorts_repeat_rate_channels_and_abandonment(world: MarketerApi) -> None:
    cohorts = world.ok("get", f"/reports/cohorts?{PERIOD}")["report"]["data"]["cohorts"]
    assert [(c["customers"], c["retention"]) for c in cohorts] == [
        (2, ["1.0000", "0.5000", "0.5000"]), (1, ["1.0000", "1.0000"])]
    repeat = world.ok("get", f"/reports/repeat_rate?{PERIOD}&interval=month")["report"]["data"]
    assert (repeat["customers"], repeat["repeat_customers"], repeat["repeat_rate"]) == (3, 2, "0.6667")
    channels = world.ok("get", f"/reports/channels?{PERIOD}")["report"]["data"]
    assert channels["revenue"] == "172.92"
    assert {r["touch"]: r["revenue"] for r in channels["rows"]} == {"first": "172.92", "last": "172.92"}
    abandonment = world.ok("get", f"/reports/abandonment?{PERIOD}&interval=month")["report"]["data"]
    # Ann's checkout was followed by her order an hour later; Bob's by nothing.
    assert (abandonment["checkouts"], abandonment["abandoned"], abandonment["abandonment_rate"]) == (2, 1, "0.5000")


def test_rfm_and_predictions_are_the_workspace_now(world: MarketerApi) -> None:
    rfm = world.ok("get", "/reports/rfm")["report"]["data"]
    assert rfm["buyers"] == 3 and sum(cell["profiles"] for cell in rfm["cells"]) == 3
    predictions = world.ok("get", "/reports/predictions")["report"]["data"]
    assert predictions["statuses"] == {"none": 3} and predictions["segments"] == []


def test_bad_questions_are_named(world: MarketerApi) -> None:
    answer = world.call("get", "/reports/profit")
    assert answer.status_code == 404 and "no report 'profit'" in answer.json_body["Message"]
    answer = world.call("get", "/reports/revenue?interval=hourly")
    assert answer.status_code == 400 and "interval: 'hourly'" in answer.json_body["Message"]
    answer = world.call("get", "/reports/revenue?from=2026-02-30")
    assert answer.status_code == 400 and "from: '2026-02-30' is not a date" in answer.json_body["Message"]


def test_another_workspace_sees_only_its_own_orders(world: MarketerApi) -> None:
    data = world.ok("get", f"/reports/revenue?{PERIOD}", key=world.b.api_key)["report"]["data"]
    assert (data["orders"], data["revenue"]) == (1, "1000.00")


@pytest.mark.parametrize(("flag", "signature"), [("--png", b"\x89PNG\r\n\x1a\n"), ("--svg", b"<svg")])
def test_crm_report_draws_the_chart(world: MarketerApi, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    flag: str, signature: bytes) -> None:
    path = tmp_path / f"cohorts{flag.replace('--', '.')}"
    code = main(["--stack", world.provisioned.stack_name, "report", "cohorts", "--workspace", world.a.workspace_id,
                 "--from", str(FIRST), "--to", str(TODAY), flag, str(path)])
    assert code == 0
    drawn = path.read_bytes()
    assert drawn.startswith(signature) and len(drawn) > 5_000
    assert '"name": "cohorts"' in capsys.readouterr().out


def test_orders_written_before_a_merge_count_on_the_survivor(world: MarketerApi, provisioned: Provisioned) -> None:
    """A guest's order by phone and an order by email are two profiles; an order naming both merges them, and
    the order line written before the merge stays on the merged profile: the report reads it there too."""
    b, repository = world.b, DynamoProfileRepository(provisioned.outputs["TableName"])
    placed = [("b-phone", None, "+14155550123", "3.00"), ("b-email", "dee@example.com", None, "4.00"),
              ("b-both", "dee@example.com", "+14155550123", "5.00")]
    for order_id, email, phone, total in placed:
        assert apply_event(repository, order(order_id, workspace_id=b.workspace_id, store_id=b.store_id, email=email,
                                             phone=phone, total=Decimal(total), created_at=MONTHS[2]), NOW)
    merged = [p for p in repository.workspace_profiles(b.workspace_id) if p.merged_from]
    assert len(merged) == 1 and merged[0].orders_count == 3
    data = world.ok("get", f"/reports/revenue?{PERIOD}", key=b.api_key)["report"]["data"]
    assert (data["orders"], data["revenue"]) == (4, "1012.00")
