"""POST /flows/backtest on the provisioned stack: a built-in flow and a draft definition over the workspace's
recorded history (profiles through the workspace index, their timelines), nothing sent; 400s naming the field,
404 for an unknown flow, and another workspace's history never read."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from crm.adapters.profiles import DynamoProfileRepository
from crm.flows.builtin import ABANDONED_CHECKOUT
from crm.models.consent import Consent, ConsentState
from crm.models.profile import Profile, TimelineEntry, new_profile
from crm.ports import Change
from crm_local.cli import main
from crm_local.provision import ACCOUNT_ID, Provisioned
from moto.ses.models import ses_backends

from tests.builders import NOW
from tests.marketer_api import MarketerApi, marketer_api

pytestmark = pytest.mark.integration

CHECKOUT_AT = NOW - timedelta(days=3)


@pytest.fixture
def world(provisioned: Provisioned, function_env: Callable[[str], None],
          monkeypatch: pytest.MonkeyPatch) -> MarketerApi:
    return marketer_api(provisioned, function_env, monkeypatch)


def _line(profile: Profile, kind: str, at: datetime, ref: str, **summary: object) -> TimelineEntry:
    return TimelineEntry(workspace_id=profile.workspace_id, profile_id=profile.profile_id, store_id="st",
                         occurred_at=at, type=kind, ref=ref, summary=summary)


def _shopper(world: MarketerApi, workspace_id: str, profile_id: str, subscribed: bool,
             lines: Callable[[Profile], list[TimelineEntry]]) -> None:
    state = ConsentState.SUBSCRIBED if subscribed else ConsentState.NOT_SUBSCRIBED
    profile = new_profile(workspace_id, profile_id, NOW - timedelta(days=60)).model_copy(update={
        "email": f"{profile_id}@example.com",
        "consents": {"email": Consent(channel="email", state=state, source="shopify", at=NOW - timedelta(days=60))}})
    DynamoProfileRepository(world.provisioned.outputs["TableName"]).commit(
        Change(workspace_id=workspace_id, profiles=((profile, None),), timeline=tuple(lines(profile))))


def _history(world: MarketerApi, workspace_id: str) -> None:
    # ann checked out, got the 4-hour reminder, ordered 6 hours after it; bob never subscribed; cat's checkout is
    # older than the period
    _shopper(world, workspace_id, "ann", True, lambda p: [
        _line(p, "checkout_started", CHECKOUT_AT, "chk-ann", checkout="c1", items=[{"title": "Mug"}]),
        _line(p, "order", CHECKOUT_AT + timedelta(hours=10), "st:o1", currency="USD", total="40.00", net="40.00",
              counted=True)])
    _shopper(world, workspace_id, "bob", False, lambda p: [
        _line(p, "checkout_started", CHECKOUT_AT + timedelta(hours=1), "chk-bob", checkout="c2")])
    _shopper(world, workspace_id, "cat", True, lambda p: [
        _line(p, "checkout_started", NOW - timedelta(days=40), "chk-cat", checkout="c3")])


def test_a_builtin_flow_over_the_workspace_history(world: MarketerApi) -> None:
    _history(world, world.a.workspace_id)
    answer = world.ok("post", "/flows/backtest", body={"flow_id": ABANDONED_CHECKOUT, "days": 30})

    report = answer["report"]
    assert (answer["complete"], answer["profiles_read"], answer["mode"]) == (True, 3, "budget")
    assert report["entered"] == 2
    assert [(s["profile_id"], s["step_id"], s["at"]) for s in report["sends"]] == [
        ("ann", "email_1", (CHECKOUT_AT + timedelta(hours=4)).isoformat().replace("+00:00", "Z"))]
    assert report["skipped"] == {"no_consent": 2}
    assert report["exited"] == {"exit_event:OrderPlaced": 1}
    assert [(o["order_id"], o["total"], o["recovered_checkout"]) for o in report["followed_orders"]] == [
        ("o1", "40.00", True)]
    assert report["revenue"] == {"USD": "40.00"}
    assert not ses_backends[ACCOUNT_ID][world.provisioned.region].sent_messages  # nothing sent


def test_a_draft_definition_is_backtested_without_being_saved(world: MarketerApi) -> None:
    _history(world, world.a.workspace_id)
    draft = {"name": "Quick nudge", "trigger": {"kind": "event", "event": "CheckoutStarted"},
             "steps": [{"kind": "delay", "id": "wait", "duration": "PT1H"},
                       {"kind": "email", "id": "nudge", "template_id": "builtin:abandoned_checkout_1"}]}
    report = world.ok("post", "/flows/backtest", body={"definition": draft, "days": 7})["report"]
    assert [(s["profile_id"], s["step_id"]) for s in report["sends"]] == [("ann", "nudge")]
    assert report["completed"] == 2 and report["skipped"] == {"no_consent": 1}
    assert "draft" not in {f["id"] for f in world.ok("get", "/flows")["flows"]}


def test_another_workspace_history_is_never_read(world: MarketerApi) -> None:
    _history(world, world.b.workspace_id)
    answer = world.ok("post", "/flows/backtest", body={"flow_id": ABANDONED_CHECKOUT})
    assert (answer["profiles_read"], answer["report"]["entered"], answer["report"]["sends"]) == (0, 0, [])


@pytest.mark.parametrize(("body", "message"), [
    ({"days": 30}, "body: name the flow to backtest"),
    ({"flow_id": ABANDONED_CHECKOUT, "days": 0}, "days:"),
    ({"flow_id": ABANDONED_CHECKOUT, "days": 91}, "days:"),
    ({"flow_id": ABANDONED_CHECKOUT, "definition": {}}, "body: name the flow to backtest"),
    ({"definition": {"name": "x", "trigger": {"kind": "event", "event": "CheckoutStarted"}, "steps": []}},
     "steps"),
    ({"flow_id": ABANDONED_CHECKOUT, "window": 3}, "window:"),
])
def test_a_bad_request_is_a_400_naming_the_field(world: MarketerApi, body: dict[str, object], message: str) -> None:
    refused = world.call("post", "/flows/backtest", body=body)
    assert refused.status_code == 400, refused.body
    assert message in refused.json_body["Message"]


def test_an_unknown_flow_is_a_404(world: MarketerApi) -> None:
    assert world.call("post", "/flows/backtest", body={"flow_id": "flow_nope"}).status_code == 404


def test_the_cli_backtests_a_definition_file_on_the_stack(world: MarketerApi, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _history(world, world.a.workspace_id)
    flow = tmp_path / "nudge.json"
    flow.write_text(json.dumps({"name": "Nudge", "trigger": {"kind": "event", "event": "CheckoutStarted"},
                                "steps": [{"kind": "email", "id": "nudge",
                                           "template_id": "builtin:abandoned_checkout_1"}]}))
    code = main(["--stack", world.provisioned.stack_name, "flows", "backtest", str(flow), "--days", "30",
                 "--workspace", world.a.workspace_id, "--until", NOW.isoformat()])
    answer = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (answer["mode"], answer["complete"], answer["profiles_read"]) == ("unbounded", True, 3)
    assert [(s["profile_id"], s["at"]) for s in answer["report"]["sends"]] == [
        ("ann", CHECKOUT_AT.isoformat().replace("+00:00", "Z"))]
