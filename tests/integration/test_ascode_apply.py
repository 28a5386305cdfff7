"""`crm apply` and `crm export` through the marketer API function on the provisioned stack: apply twice gives an
empty plan, export then apply gives an empty plan, a removed file deletes only what the directory labelled, and a
refusal of the API stops the apply naming the file."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from crm.ascode.layout import load_directory
from crm.ascode.plan import Action, Plan, make_plan
from crm.ascode.workspace import apply_plan, json_text, read_workspace
from crm_local.ascode import run_apply, run_export
from crm_local.provision import Provisioned

from tests.marketer_api import MarketerApi, marketer_api

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "crm-config"


class InProcessHttp:
    """crm.ascode's MarketerHttp over the API function in-process (chalice's test client)."""

    def __init__(self, world: MarketerApi, key: str | None = None) -> None:
        self.world, self.key = world, key

    def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        answer = self.world.call(method.lower(), path, key=self.key,
                                 raw=json_text(body) if body is not None else b"")
        return answer.status_code, json.loads(answer.body) if answer.body else None


@pytest.fixture
def world(provisioned: Provisioned, function_env: Callable[[str], None],
          monkeypatch: pytest.MonkeyPatch) -> MarketerApi:
    return marketer_api(provisioned, function_env, monkeypatch)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    copied = tmp_path / "crm-config"
    shutil.copytree(EXAMPLE, copied)
    return copied


def plan_for(http: InProcessHttp, directory: Path) -> Plan:
    workspace = read_workspace(http)
    return make_plan(load_directory(directory), workspace.held, workspace.builtin_segments)


def actions(plan: Plan) -> dict[tuple[str, str], Action]:
    return {(step.kind.value, step.id): step.action for step in plan.steps}


def test_apply_creates_everything_then_a_second_apply_has_nothing_to_do(world: MarketerApi, config: Path) -> None:
    http = InProcessHttp(world)
    out = io.StringIO()
    assert run_apply(http, config, dry_run=False, out=out) == 0, out.getvalue()
    assert "plan: 5 to create, 0 to change, 0 to delete, 0 unchanged" in out.getvalue()

    flow = world.ok("get", "/flows/win-back-big-spenders")
    assert (flow["status"], flow["definition"]["managed_by"]) == ("draft", "shop-config")
    assert flow["definition"]["trigger"] == {"kind": "segment", "segment_id": "lapsing-big-spenders", "on": "entered"}
    segment = world.ok("get", "/segments/big-spenders")
    assert (segment["managed_by"], segment["definition"]["all"][1]["value"]) == ("shop-config", "250")
    template = world.ok("get", "/templates/we-miss-you")
    assert template["html"] == (config / "templates" / "we-miss-you.html").read_text()

    again = plan_for(http, config)
    assert again.empty and again.count(Action.UNCHANGED) == 5
    second = io.StringIO()
    assert run_apply(http, config, dry_run=False, out=second) == 0
    assert "plan: 0 to create, 0 to change, 0 to delete, 5 unchanged" in second.getvalue()
    assert world.ok("get", "/flows/win-back-big-spenders")["version"] == 1  # nothing was saved again


def test_dry_run_changes_nothing(world: MarketerApi, config: Path) -> None:
    out = io.StringIO()
    assert run_apply(InProcessHttp(world), config, dry_run=True, out=out) == 0
    assert "+ create  flow     win-back-big-spenders" in out.getvalue()
    assert world.call("get", "/flows/win-back-big-spenders").status_code == 404


@pytest.mark.parametrize("label", [None, "shop-config"])
def test_export_then_apply_is_an_empty_plan(world: MarketerApi, config: Path, tmp_path: Path,
                                            label: str | None) -> None:
    http = InProcessHttp(world)
    assert run_apply(http, config, dry_run=False, out=io.StringIO()) == 0
    # Definitions made through the API, not by the directory: a custom flow, a changed built-in, a live flow.
    world.ok("post", "/templates", {"id": "hello", "name": "Hello", "subject": "Hi", "html": "<p>Hi</p>"}, 201)
    world.ok("put", "/templates/builtin:win_back", {"name": "Win back", "subject": "Come back {{ profile.first_name "
                                                    "or '' }}", "html": "<p>We kept a 10.50 coupon for you</p>"})
    world.ok("put", "/settings/messaging", {"from_address": "store@crm-local.example"})
    world.ok("post", "/flows", {"id": "hello-flow", "name": "Hello", "trigger": {"kind": "event",
                                                                               "event": "ContactCreated"},
                                "steps": [{"kind": "email", "id": "hello", "template_id": "hello"}]}, 201)
    world.ok("put", "/flows/hello-flow/status", {"status": "live"})

    exported = tmp_path / "exported"
    out = io.StringIO()
    assert run_export(http, exported, label, out=out) == 0
    written = json.loads(out.getvalue())["written"]
    if label is None:
        assert {"flows/hello-flow.yaml", "templates/builtin.win_back.yaml", "templates/builtin.win_back.html",
                "flows/win-back-big-spenders.yaml"} <= set(written)
        assert "status: live" in (exported / "flows" / "hello-flow.yaml").read_text()
    else:
        assert "flows/hello-flow.yaml" not in written and "crm.yaml" in written

    plan = plan_for(http, exported)
    assert plan.empty, [step for step in plan.steps if step.action is not Action.UNCHANGED]
    assert plan.count(Action.UNCHANGED) == (8 if label is None else 5)


def test_a_removed_file_deletes_only_what_the_directory_labelled(world: MarketerApi, config: Path) -> None:
    http = InProcessHttp(world)
    assert run_apply(http, config, dry_run=False, out=io.StringIO()) == 0
    world.ok("post", "/segments", {"id": "made-in-the-api", "name": "Buyers",
                                   "definition": {"field": "orders_count", "op": "gte", "value": 1}}, 201)
    for name in ("flows/win-back-big-spenders.yaml", "templates/we-miss-you-sms.yaml", "segments/big-spenders.yaml"):
        (config / name).unlink()
    # The remaining segment must not refer to the removed one.
    (config / "segments" / "lapsing-big-spenders.yaml").write_text(
        "name: Lapsing\ndefinition: {field: days_since_last_order, op: gte, value: 90}\n")

    plan = plan_for(http, config)
    assert actions(plan) == {("template", "we-miss-you"): Action.UNCHANGED,
                             ("segment", "lapsing-big-spenders"): Action.CHANGE,
                             ("flow", "win-back-big-spenders"): Action.DELETE,
                             ("template", "we-miss-you-sms"): Action.DELETE,
                             ("segment", "big-spenders"): Action.DELETE}
    apply_plan(http, plan)
    assert world.call("get", "/segments/big-spenders").status_code == 404
    assert world.call("get", "/flows/win-back-big-spenders").status_code == 404
    assert world.call("get", "/segments/made-in-the-api").status_code == 200
    assert plan_for(http, config).empty


def test_without_a_label_nothing_is_deleted_and_labels_are_kept(world: MarketerApi, config: Path) -> None:
    http = InProcessHttp(world)
    assert run_apply(http, config, dry_run=False, out=io.StringIO()) == 0
    (config / "crm.yaml").unlink()
    (config / "flows" / "win-back-big-spenders.yaml").unlink()
    (config / "templates" / "we-miss-you.yaml").write_text("name: We miss you\nsubject: Come back\n")
    plan = plan_for(http, config)
    assert actions(plan)[("template", "we-miss-you")] is Action.CHANGE
    assert ("flow", "win-back-big-spenders") not in actions(plan)
    apply_plan(http, plan)
    assert world.ok("get", "/templates/we-miss-you")["managed_by"] == "shop-config"
    assert plan_for(http, config).empty


def test_a_live_flow_goes_live_after_its_templates_and_the_api_refusal_names_the_file(world: MarketerApi,
                                                                                      config: Path) -> None:
    http = InProcessHttp(world)
    flow_file = config / "flows" / "win-back-big-spenders.yaml"
    flow_file.write_text(flow_file.read_text().replace("status: draft", "status: live"))
    err = io.StringIO()
    # No from address yet: the API refuses to set the flow live (409), and the error names the file.
    assert run_apply(http, config, dry_run=False, out=io.StringIO(), err=err) == 2
    assert err.getvalue().startswith("crm: flows/win-back-big-spenders.yaml: PUT /flows/win-back-big-spenders/"
                                     "status: 409"), err.getvalue()
    world.ok("put", "/settings/messaging", {"from_address": "store@crm-local.example"})
    plan = plan_for(http, config)
    assert [(s.action, s.changes) for s in plan.steps if s.action is not Action.UNCHANGED] == [
        (Action.CHANGE, ("status: draft -> live",))]
    apply_plan(http, plan)
    assert world.ok("get", "/flows/win-back-big-spenders")["status"] == "live"
    assert plan_for(http, config).empty


def test_post_segments_takes_a_chosen_id(world: MarketerApi) -> None:
    body = {"id": "buyers", "name": "Buyers", "definition": {"field": "orders_count", "op": "gte", "value": 1}}
    created = world.call("post", "/segments", body=body)
    assert (created.status_code, created.headers["Location"]) == (201, "/segments/buyers")
    assert world.call("post", "/segments", body=body).status_code == 409
    for bad in ("settings", "Buyers", "builtin:vip"):
        refused = world.call("post", "/segments", body={**body, "id": bad})
        assert refused.status_code == 400 and refused.json_body["Message"].startswith("id: "), refused.body


def test_a_wrong_key_is_named_and_nothing_is_written(world: MarketerApi, config: Path, tmp_path: Path) -> None:
    http = InProcessHttp(world, key="not-a-key")
    err = io.StringIO()
    assert run_apply(http, config, dry_run=False, out=io.StringIO(), err=err) == 2
    assert err.getvalue().startswith("crm: GET /segments: 401 "), err.getvalue()
    assert run_export(http, tmp_path / "out", None, out=io.StringIO(), err=io.StringIO()) == 2
    assert not (tmp_path / "out").exists()


def test_workspaces_do_not_see_each_others_definitions(world: MarketerApi, config: Path) -> None:
    assert run_apply(InProcessHttp(world), config, dry_run=False, out=io.StringIO()) == 0
    other = plan_for(InProcessHttp(world, key=world.b.api_key), config)
    assert other.count(Action.CREATE) == 5
