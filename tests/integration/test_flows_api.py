"""The flows API on the provisioned stack: CRUD, status, versions (409), 400s naming the path, 404, 401 and
workspace isolation."""

from __future__ import annotations

import email
from collections.abc import Callable
from typing import Any

import pytest
from crm.adapters.flow_runs import DynamoRunStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.flows.builtin import ABANDONED_CHECKOUT, BUILTIN_FLOWS, WELCOME
from crm.flows.defaults import BUILTIN_SINCE
from crm.models.flows import FlowRun, run_id_for
from crm.models.profile import Profile
from crm.ports import Change
from crm_local.provision import ACCOUNT_ID, Provisioned
from moto.ses.models import ses_backends

from tests.builders import NOW
from tests.marketer_api import MarketerApi, marketer_api

pytestmark = pytest.mark.integration

REMINDER = {
    "name": "Cart reminder",
    "trigger": {"kind": "event", "event": "CheckoutStarted"},
    "exits": [{"event": "OrderPlaced"}],
    "reentry": {"mode": "once_per", "days": 7},
    "steps": [{"kind": "delay", "id": "wait", "duration": "PT4H"},
              {"kind": "email", "id": "remind", "template_id": "cart"}],
}
CART_TEMPLATE = {"id": "cart", "name": "Cart", "subject": "You left {{ trigger.items|length }} items",
                 "html": "<p>Hello {{ profile.first_name }}</p>"}


@pytest.fixture
def world(provisioned: Provisioned, function_env: Callable[[str], None],
          monkeypatch: pytest.MonkeyPatch) -> MarketerApi:
    return marketer_api(provisioned, function_env, monkeypatch)


def test_create_read_replace_list_delete(world: MarketerApi) -> None:
    created = world.call("post", "/flows", body=REMINDER)
    assert created.status_code == 201, created.body
    flow_id = created.json_body["id"]
    assert flow_id.startswith("flow_") and created.headers["Location"] == f"/flows/{flow_id}"
    assert (created.json_body["status"], created.json_body["version"]) == ("draft", 1)

    got = world.ok("get", f"/flows/{flow_id}")
    assert got["definition"]["steps"][0] == {"kind": "delay", "id": "wait", "duration": "PT4H"}
    assert got["definition"]["trigger"] == {"kind": "event", "event": "CheckoutStarted", "where": []}
    assert (got["created_at"], got["builtin"], got["saved"]) == (NOW.isoformat(), False, True)

    renamed = world.ok("put", f"/flows/{flow_id}", body={**REMINDER, "name": "Cart reminder, 2 h",
                                                           "steps": [{"kind": "delay", "id": "wait",
                                                                      "duration": "PT2H"}]})
    assert (renamed["name"], renamed["version"], renamed["definition"]["steps"][0]["duration"]) == (
        "Cart reminder, 2 h", 2, "PT2H")

    listed = {f["id"]: f for f in world.ok("get", "/flows")["flows"]}
    assert listed[flow_id] == {"id": flow_id, "name": "Cart reminder, 2 h", "status": "draft", "version": 2,
                               "builtin": False, "saved": True, "trigger": "CheckoutStarted",
                               "updated_at": NOW.isoformat()}

    assert world.call("delete", f"/flows/{flow_id}").status_code == 204
    assert world.call("get", f"/flows/{flow_id}").status_code == 404
    assert world.call("delete", f"/flows/{flow_id}").status_code == 404
    assert flow_id not in {f["id"] for f in world.ok("get", "/flows")["flows"]}


def test_a_given_id_is_kept_and_a_taken_one_is_409(world: MarketerApi) -> None:
    assert world.ok("post", "/flows", body={**REMINDER, "id": "cart-reminder"}, status=201)["id"] == "cart-reminder"
    again = world.call("post", "/flows", body={**REMINDER, "id": "cart-reminder"})
    assert again.status_code == 409 and again.json_body["Message"].startswith("id: a flow cart-reminder exists")
    for bad in ("builtin:mine", "Cart", "", "x" * 64):
        refused = world.call("post", "/flows", body={**REMINDER, "id": bad})
        assert refused.status_code == 400 and refused.json_body["Message"].startswith("id:"), bad


@pytest.mark.parametrize(("change", "path"), [
    ({"name": ""}, "name"),
    ({"trigger": {"kind": "event", "event": "OrderShipped"}}, "trigger.event"),
    ({"trigger": {"kind": "segment"}}, "trigger.segment_id"),
    ({"steps": []}, "steps"),
    ({"steps": [{"kind": "email", "id": "Remind!", "template_id": "cart"}]}, "steps[0].id"),
    ({"steps": [{"kind": "delay", "id": "a", "duration": "PT1H"}, {"kind": "delay", "id": "a",
                                                                    "duration": "PT1H"}]}, "steps[1].id"),
    ({"steps": [{"kind": "random", "id": "ab", "paths": [
        {"weight": 50, "steps": [{"kind": "email", "id": "x", "template_id": "t", "colour": "red"}]},
        {"weight": 50}]}]}, "steps[0].paths[0].steps[0].colour"),
    ({"reentry": {"mode": "sometimes"}}, "reentry.mode"),
    ({"surprise": 1}, "surprise"),
])
def test_an_invalid_definition_is_400_naming_the_path(world: MarketerApi, change: dict[str, Any], path: str) -> None:
    response = world.call("post", "/flows", body={**REMINDER, **change})
    assert response.status_code == 400, response.body
    assert response.json_body["Message"].startswith(f"{path}:"), response.json_body
    assert [f for f in world.ok("get", "/flows")["flows"] if not f["builtin"]] == []


@pytest.mark.parametrize("raw", [b"", b"[1]", b"{not json", b'{"name": NaN}'])
def test_a_body_that_is_no_json_object_is_400(world: MarketerApi, raw: bytes) -> None:
    response = world.call("post", "/flows", raw=raw)
    assert response.status_code == 400 and response.json_body["Message"].startswith("body:"), response.json_body


def test_if_match_names_the_version_a_change_is_made_to(world: MarketerApi) -> None:
    flow_id = world.ok("post", "/flows", body=REMINDER, status=201)["id"]
    stale = world.call("put", f"/flows/{flow_id}", body=REMINDER, headers={"if-match": '"2"'})
    assert stale.status_code == 409 and "version 1, not 2" in stale.json_body["Message"]
    assert world.call("put", f"/flows/{flow_id}", body=REMINDER, headers={"if-match": '"1"'}).status_code == 200
    assert world.call("delete", f"/flows/{flow_id}", headers={"if-match": "1"}).status_code == 409
    assert world.call("put", f"/flows/{flow_id}", body=REMINDER, headers={"if-match": "one"}).status_code == 400
    assert world.call("delete", f"/flows/{flow_id}", headers={"if-match": "2"}).status_code == 204


def test_going_live_needs_its_templates_and_a_sender(world: MarketerApi) -> None:
    flow_id = world.ok("post", "/flows", body=REMINDER, status=201)["id"]
    refused = world.call("put", f"/flows/{flow_id}/status", body={"status": "live"})
    assert refused.status_code == 409
    assert refused.json_body["Message"] == (f"flow {flow_id} cannot go live: template cart does not exist; "
                                            "no from address: PUT /settings/messaging first")
    world.ok("post", "/templates", body=CART_TEMPLATE, status=201)
    world.ok("put", "/settings/messaging", body={"from_address": "Shop@Example.com"})

    live = world.ok("put", f"/flows/{flow_id}/status", body={"status": "live"})
    assert (live["status"], live["version"]) == ("live", 2)
    assert world.ok("get", "/flows")["flows"][-1]["status"] == "live" or any(
        f["status"] == "live" for f in world.ok("get", "/flows")["flows"] if f["id"] == flow_id)
    # A live flow is neither deleted nor is the template it sends.
    deleting = world.call("delete", f"/flows/{flow_id}")
    assert deleting.status_code == 409 and "set its status to draft" in deleting.json_body["Message"]
    assert world.call("delete", "/templates/cart").status_code == 409
    assert world.ok("put", f"/flows/{flow_id}/status", body={"status": "draft"})["version"] == 3
    assert world.call("delete", "/templates/cart").status_code == 204
    assert world.call("delete", f"/flows/{flow_id}").status_code == 204


@pytest.mark.parametrize("body", [{"status": "paused"}, {}, {"status": "live", "at": "now"}])
def test_a_status_other_than_live_or_draft_is_400(world: MarketerApi, body: dict[str, Any]) -> None:
    flow_id = world.ok("post", "/flows", body=REMINDER, status=201)["id"]
    response = world.call("put", f"/flows/{flow_id}/status", body=body)
    assert response.status_code == 400 and response.json_body["Message"].split(":")[0] in ("status", "at")


def test_unknown_flows_are_404(world: MarketerApi) -> None:
    for method, path, body in (("get", "/flows/nope", None), ("put", "/flows/nope", REMINDER),
                               ("delete", "/flows/nope", None), ("put", "/flows/nope/status", {"status": "live"}),
                               ("get", "/flows/builtin:nope", None), ("get", "/flows/NOT%20AN%20ID", None)):
        response = world.call(method, path, body=body)
        assert response.status_code == 404, (method, path, response.body)
        assert response.json_body["Message"].startswith("no flow"), response.json_body


def test_without_a_key_is_401(world: MarketerApi) -> None:
    assert world.api.http.get("/flows").status_code == 401
    assert world.call("post", "/flows", key="crm_not-a-key", body=REMINDER).status_code == 401


def test_another_workspace_sees_nothing(world: MarketerApi) -> None:
    flow_id = world.ok("post", "/flows", body=REMINDER, status=201)["id"]
    other = world.b.api_key
    assert flow_id not in {f["id"] for f in world.ok("get", "/flows", key=other)["flows"]}
    for method, path, body in (("get", f"/flows/{flow_id}", None), ("put", f"/flows/{flow_id}", REMINDER),
                               ("put", f"/flows/{flow_id}/status", {"status": "draft"}),
                               ("delete", f"/flows/{flow_id}", None)):
        assert world.call(method, path, key=other, body=body).status_code == 404, (method, path)
    assert world.ok("get", f"/flows/{flow_id}")["version"] == 1


def test_builtins_are_drafts_until_saved_and_a_delete_resets_them(world: MarketerApi) -> None:
    listed = {f["id"]: f for f in world.ok("get", "/flows")["flows"]}
    assert set(BUILTIN_FLOWS) <= set(listed)
    assert listed[ABANDONED_CHECKOUT] == {
        "id": ABANDONED_CHECKOUT, "name": BUILTIN_FLOWS[ABANDONED_CHECKOUT].name, "status": "draft", "version": 0,
        "builtin": True, "saved": False, "trigger": "CheckoutStarted", "updated_at": BUILTIN_SINCE.isoformat()}
    default = world.ok("get", f"/flows/{ABANDONED_CHECKOUT}")["definition"]

    edited = world.ok("put", f"/flows/{ABANDONED_CHECKOUT}", body={**default, "name": "Our cart reminder"})
    assert (edited["version"], edited["saved"], edited["name"]) == (1, True, "Our cart reminder")
    world.ok("put", "/settings/messaging", body={"from_address": "shop@example.com"})
    assert world.ok("put", f"/flows/{ABANDONED_CHECKOUT}/status", body={"status": "live"})["status"] == "live"
    # Another workspace still has the default draft.
    theirs = world.ok("get", f"/flows/{ABANDONED_CHECKOUT}", key=world.b.api_key)
    assert (theirs["name"], theirs["status"], theirs["version"]) == (
        BUILTIN_FLOWS[ABANDONED_CHECKOUT].name, "draft", 0)

    assert world.call("delete", f"/flows/{ABANDONED_CHECKOUT}").status_code == 409  # live
    world.ok("put", f"/flows/{ABANDONED_CHECKOUT}/status", body={"status": "draft"})
    assert world.call("delete", f"/flows/{ABANDONED_CHECKOUT}").status_code == 204
    reset = world.ok("get", f"/flows/{ABANDONED_CHECKOUT}")
    assert (reset["definition"], reset["status"], reset["version"], reset["saved"]) == (default, "draft", 0, False)


def test_a_builtin_goes_live_with_the_builtin_templates(world: MarketerApi) -> None:
    refused = world.call("put", f"/flows/{WELCOME}/status", body={"status": "live"})
    assert refused.status_code == 409 and refused.json_body["Message"].endswith(
        "no from address: PUT /settings/messaging first")
    world.ok("put", "/settings/messaging", body={"from_address": "shop@example.com"})
    assert world.ok("put", f"/flows/{WELCOME}/status", body={"status": "live"})["version"] == 1


def _sent(world: MarketerApi) -> list[Any]:
    """What moto's SES accepted (sesv2 SendEmail raw lands in the v1 backend's sent messages)."""
    return list(ses_backends[ACCOUNT_ID][world.provisioned.region].sent_messages)


def _shopper(world: MarketerApi, workspace_id: str, profile_id: str, first_name: str) -> None:
    profile = Profile(workspace_id=workspace_id, profile_id=profile_id, email=f"{profile_id}@example.com",
                      first_name=first_name, created_at=NOW, updated_at=NOW)
    DynamoProfileRepository(world.provisioned.outputs["TableName"]).commit(
        Change(workspace_id=workspace_id, profiles=((profile, None),)))


def test_a_test_send_renders_the_step_for_a_profile_and_sends_one_marked_email(world: MarketerApi) -> None:
    flow_id = world.ok("post", "/flows", body=REMINDER, status=201)["id"]
    world.ok("post", "/templates", body=CART_TEMPLATE, status=201)
    proof = {"to": "Marketer@Example.com", "profile_id": "pa1"}
    assert world.call("post", f"/flows/{flow_id}/test-send", body=proof).json_body["Message"] == (
        "no from address: PUT /settings/messaging first")
    world.ok("put", "/settings/messaging", body={"from_address": "shop@example.com", "from_name": "Shop"})
    _shopper(world, world.a.workspace_id, "pa1", "Ann")

    sent = world.ok("post", f"/flows/{flow_id}/test-send", body=proof)
    assert {k: sent[k] for k in ("step_id", "template_id", "to", "test")} == {
        "step_id": "remind", "template_id": "cart", "to": "marketer@example.com", "test": True}
    [message] = _sent(world)
    assert set(message.destinations) == {"marketer@example.com"} and message.source == "shop@example.com"
    mail = email.message_from_string(message.raw_data)
    assert mail["Subject"] == "[Test] You left 1 items"  # the sample cart
    html = next(part for part in mail.walk() if part.get_content_type() == "text/html")
    assert "Hello Ann" in html.get_payload(decode=True).decode()

    sample = world.ok("post", f"/flows/{flow_id}/test-send", body={"to": "m@example.com", "step_id": "remind"})
    assert sample["profile_id"] is None and len(_sent(world)) == 2


@pytest.mark.parametrize(("body", "status", "start"), [
    ({"to": "not an address"}, 400, "to:"),
    ({}, 400, "to:"),
    ({"to": "m@example.com", "step_id": "wait"}, 409, "step_id: step 'wait' is a delay step"),
    ({"to": "m@example.com", "step_id": "nope"}, 404, "step_id: flow"),
    ({"to": "m@example.com", "profile_id": "missing"}, 404, "no customer missing"),
    ({"to": "m@example.com", "cc": "x@example.com"}, 400, "cc:"),
])
def test_a_test_send_refused_names_the_problem(world: MarketerApi, body: dict[str, Any], status: int,
                                               start: str) -> None:
    flow_id = world.ok("post", "/flows", body=REMINDER, status=201)["id"]
    world.ok("post", "/templates", body=CART_TEMPLATE, status=201)
    world.ok("put", "/settings/messaging", body={"from_address": "shop@example.com"})
    response = world.call("post", f"/flows/{flow_id}/test-send", body=body)
    assert response.status_code == status and response.json_body["Message"].startswith(start), response.json_body
    assert _sent(world) == []


def test_a_profiles_runs_of_a_flow(world: MarketerApi) -> None:
    ws = world.a.workspace_id
    _shopper(world, ws, "pa1", "Ann")
    runs = DynamoRunStore(world.provisioned.outputs["TableName"])
    for flow_id, trigger in ((ABANDONED_CHECKOUT, "evt-1"), (ABANDONED_CHECKOUT, "evt-2"), (WELCOME, "evt-3")):
        assert runs.create_run(FlowRun(
            workspace_id=ws, flow_id=flow_id, flow_version=1, run_id=run_id_for(flow_id, trigger), profile_id="pa1",
            trigger_type="CheckoutStarted", trigger_event_id=trigger, trigger={}, entered_at=NOW,
            next_step="wait_4h"))
    answer = world.ok("get", f"/flows/{ABANDONED_CHECKOUT}/runs?profile_id=pa1")
    assert answer["profile_id"] == "pa1"
    assert sorted(run["run_id"] for run in answer["runs"]) == sorted(
        run_id_for(ABANDONED_CHECKOUT, t) for t in ("evt-1", "evt-2"))
    assert answer["runs"][0]["status"] == "active" and answer["runs"][0]["next_step"] == "wait_4h"
    assert world.call("get", f"/flows/{ABANDONED_CHECKOUT}/runs").status_code == 400
    assert world.call("get", f"/flows/{ABANDONED_CHECKOUT}/runs?profile_id=nobody").status_code == 404
    assert world.call("get", "/flows/nope/runs?profile_id=pa1").status_code == 404
    # Another workspace's key finds no such customer.
    assert world.call("get", f"/flows/{ABANDONED_CHECKOUT}/runs?profile_id=pa1", key=world.b.api_key).status_code == 404
