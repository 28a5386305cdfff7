"""GET /flows/{id}/stats and GET /flows/{id}/steps/{step}/stats on the provisioned stack: counters written by
the DynamoDB adapter (as the flows function and the feedback write them) summed over the days asked for, the
A/B paths with their probability of being best and the stored winner, the reporting currency, the 400s
naming the bad parameter and the 404s (another workspace's flow too)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from crm.adapters.currency import DynamoCurrencyStore
from crm.adapters.flow_stats import DynamoFlowCounters, DynamoSplitWinners
from crm.flows.abtest import Arm, probability_best
from crm.flows.builtin import ABANDONED_CHECKOUT
from crm.reporting import initial_settings
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.marketer_api import MarketerApi, marketer_api

pytestmark = pytest.mark.integration

TODAY = NOW.date()
AB_FLOW = {
    "id": "ab-reminder", "name": "A/B reminder", "trigger": {"kind": "event", "event": "CheckoutStarted"},
    "steps": [
        {"kind": "delay", "id": "wait", "duration": "PT4H"},
        {"kind": "random", "id": "ab", "winner": {"metric": "click", "min_recipients": 100, "probability": 0.9},
         "paths": [{"weight": 50, "steps": [{"kind": "email", "id": "email_a", "template_id": "a"}]},
                   {"weight": 50, "steps": [{"kind": "email", "id": "email_b", "template_id": "b"}]}]}]}


@pytest.fixture
def world(provisioned: Provisioned, function_env: Callable[[str], None],
          monkeypatch: pytest.MonkeyPatch) -> MarketerApi:
    world = marketer_api(provisioned, function_env, monkeypatch)
    table = provisioned.outputs["TableName"]
    assert initial_settings(DynamoCurrencyStore(table), world.a.workspace_id, "EUR", NOW)
    world.ok("post", "/flows", body=AB_FLOW, status=201)
    counters, ws = DynamoFlowCounters(table), world.a.workspace_id
    yesterday, long_ago = TODAY - timedelta(days=1), TODAY - timedelta(days=40)
    # Flow-wide rows: two days in the default period, one day long before it.
    counters.add(ws, "ab-reminder", yesterday, {"entered": 120, "completed": 20, "exited:exit_event:OrderPlaced": 5,
                                                "sent": 100, "delivered": 98, "opened": 49, "clicked": 14,
                                                "converted": 4, "revenue": "200.70"})
    counters.add(ws, "ab-reminder", TODAY, {"entered": 10, "completed": 70, "skipped:no_consent": 2})
    counters.add(ws, "ab-reminder", long_ago, {"entered": 1000})
    # The split's paths and their steps.
    counters.add(ws, "ab-reminder", yesterday, {"recipients": 120}, step_id="ab")
    for path, (recipients, clicked) in enumerate(((60, 2), (60, 12))):
        counters.add(ws, "ab-reminder", yesterday, {"recipients": recipients}, step_id="ab", variant=f"ab:{path}")
        counters.add(ws, "ab-reminder", yesterday, {"recipients": recipients, "sent": 50, "delivered": 49,
                                                    "clicked": clicked}, step_id=f"email_{'ab'[path]}",
                     variant=f"ab:{path}")
    DynamoSplitWinners(table).decide(ws, "ab-reminder", "ab", 1, NOW)
    return world


def test_the_flow_s_stats_over_the_default_30_days(world: MarketerApi) -> None:
    stats = world.ok("get", "/flows/ab-reminder/stats")
    assert (stats["flow_id"], stats["step_id"], stats["currency"]) == ("ab-reminder", None, "EUR")
    assert (stats["from"], stats["to"]) == (str(TODAY - timedelta(days=29)), str(TODAY))
    totals = stats["totals"]
    assert (totals["entered"], totals["completed"], totals["in_progress"]) == (130, 90, 130 - 90 - 5)
    assert totals["exited"] == {"exit_event:OrderPlaced": 5} and totals["skipped"] == {"no_consent": 2}
    assert (totals["revenue"], totals["revenue_per_recipient"], totals["open_rate"]) == ("200.70", "2.01", "0.5000")
    assert [day["day"] for day in stats["by_day"]] == [str(TODAY - timedelta(days=1)), str(TODAY)]
    assert stats["steps"]["email_b"]["clicked"] == 12 and stats["steps"]["ab"]["recipients"] == 120
    [split] = stats["splits"]
    assert (split["split_id"], split["metric"], split["winner"]) == ("ab", "click", 1)
    expected = probability_best([Arm(60, 2), Arm(60, 12)])
    assert [v["recipients"] for v in split["variants"]] == [60, 60]
    assert [v["probability_best"] for v in split["variants"]] == [round(p, 4) for p in expected]


def test_a_period_and_one_step(world: MarketerApi) -> None:
    long_ago = TODAY - timedelta(days=40)
    old = world.ok("get", f"/flows/ab-reminder/stats?from={long_ago}&to={long_ago}")
    assert old["totals"]["entered"] == 1000 and old["splits"][0]["variants"][0]["recipients"] == 0
    step = world.ok("get", "/flows/ab-reminder/steps/email_a/stats")
    assert (step["step_id"], step["totals"]["sent"], step["totals"]["clicked"], step["splits"]) == (
        "email_a", 50, 2, [])
    split = world.ok("get", "/flows/ab-reminder/steps/ab/stats")
    assert split["totals"]["recipients"] == 120 and split["splits"][0]["winner"] == 1


def test_a_built_in_flow_never_saved_answers_zeros(world: MarketerApi) -> None:
    stats = world.ok("get", f"/flows/{ABANDONED_CHECKOUT}/stats")
    assert stats["totals"]["entered"] == 0 and stats["by_day"] == [] and "email_1" in stats["steps"]


@pytest.mark.parametrize(("query", "named"), [
    ("from=yesterday", "from: 'yesterday' is not a date"),
    ("to=2026-13-01", "to: '2026-13-01' is not a date"),
    ("from=2026-11-10&to=2026-11-01", "from (2026-11-10) is after to (2026-11-01)"),
    ("from=2025-01-01&to=2026-11-01", "from..to spans 670 days: at most 366"),
])
def test_a_bad_period_is_a_400_naming_it(world: MarketerApi, query: str, named: str) -> None:
    for path in ("/flows/ab-reminder/stats", "/flows/ab-reminder/steps/email_a/stats"):
        answer = world.call("get", f"{path}?{query}")
        assert answer.status_code == 400 and answer.json_body["Message"].startswith(named), answer.body


def test_unknown_flows_and_steps_are_404_and_so_is_another_workspace_s_flow(world: MarketerApi) -> None:
    assert world.call("get", "/flows/nope/stats").status_code == 404
    missing_step = world.call("get", "/flows/ab-reminder/steps/nope/stats")
    assert missing_step.status_code == 404 and "no step nope" in missing_step.json_body["Message"]
    assert world.call("get", "/flows/ab-reminder/stats", key=world.b.api_key).status_code == 404
    assert world.call("get", "/flows/ab-reminder/stats", key="not-a-key").status_code == 401


def test_a_workspace_without_a_reporting_currency_says_so(world: MarketerApi) -> None:
    world.ok("post", "/flows", body=AB_FLOW, status=201, key=world.b.api_key)
    stats = world.ok("get", "/flows/ab-reminder/stats", key=world.b.api_key)
    assert stats["currency"] is None and stats["totals"]["entered"] == 0


def test_the_day_boundaries_are_inclusive(world: MarketerApi) -> None:
    yesterday = TODAY - timedelta(days=1)
    one_day = world.ok("get", f"/flows/ab-reminder/stats?from={yesterday}&to={yesterday}")
    assert one_day["totals"]["entered"] == 120 and [d["day"] for d in one_day["by_day"]] == [str(yesterday)]
    assert date.fromisoformat(one_day["from"]) == date.fromisoformat(one_day["to"]) == yesterday
