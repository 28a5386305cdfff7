"""The templates API on the provisioned stack: CRUD, built-ins (editable, reset by a delete), the check at save
time (400 naming the part and line), 404, 409, 401 and workspace isolation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from crm.flows.defaults import BUILTIN_SINCE
from crm.messaging.defaults import ABANDONED_CHECKOUT_1, DOUBLE_OPT_IN, TEMPLATES
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.marketer_api import MarketerApi, marketer_api

pytestmark = pytest.mark.integration

THANKS = {"name": "Thanks", "subject": "Thank you, {{ profile.first_name }}",
          "html": "<style>p{color:red}</style><p>Thanks for order {{ trigger.order_number }}</p>"}
STOP = {"channel": "sms", "name": "Reminder", "body": "{{ store.name }}: your cart {{ trigger.recovery_url }}"}


@pytest.fixture
def world(provisioned: Provisioned, function_env: Callable[[str], None],
          monkeypatch: pytest.MonkeyPatch) -> MarketerApi:
    return marketer_api(provisioned, function_env, monkeypatch)


def test_create_read_replace_list_delete(world: MarketerApi) -> None:
    created = world.call("post", "/templates", body=THANKS)
    assert created.status_code == 201, created.body
    template_id = created.json_body["id"]
    assert template_id.startswith("tpl_") and created.headers["Location"] == f"/templates/{template_id}"
    got = world.ok("get", f"/templates/{template_id}")
    assert got == {"id": template_id, "channel": "email", "name": "Thanks", "builtin": False, "saved": True,
                   "subject": THANKS["subject"], "html": THANKS["html"], "marketing": True,
                   "created_at": NOW.isoformat(), "updated_at": NOW.isoformat()}

    replaced = world.ok("put", f"/templates/{template_id}", body={**THANKS, "text": "Thanks!", "marketing": False})
    assert (replaced["text"], replaced["marketing"]) == ("Thanks!", False)

    sms = world.ok("post", "/templates", body={**STOP, "id": "cart-sms"}, status=201)
    assert (sms["id"], sms["channel"], sms["body"]) == ("cart-sms", "sms", STOP["body"])

    listed = {t["id"]: t for t in world.ok("get", "/templates")["templates"]}
    assert listed[template_id] == {"id": template_id, "channel": "email", "name": "Thanks", "builtin": False,
                                   "saved": True, "updated_at": NOW.isoformat()}
    assert listed["cart-sms"]["channel"] == "sms"

    assert world.call("delete", f"/templates/{template_id}").status_code == 204
    assert world.call("get", f"/templates/{template_id}").status_code == 404
    assert world.call("delete", f"/templates/{template_id}").status_code == 404
    assert template_id not in {t["id"] for t in world.ok("get", "/templates")["templates"]}


def test_a_taken_id_is_409_and_a_bad_one_400(world: MarketerApi) -> None:
    world.ok("post", "/templates", body={**THANKS, "id": "thanks"}, status=201)
    again = world.call("post", "/templates", body={**THANKS, "id": "thanks"})
    assert again.status_code == 409 and again.json_body["Message"].startswith("id: a template thanks exists")
    for bad in (ABANDONED_CHECKOUT_1, "Thanks", "x" * 64, 7):
        refused = world.call("post", "/templates", body={**THANKS, "id": bad})
        assert refused.status_code == 400 and refused.json_body["Message"].startswith("id:"), bad


@pytest.mark.parametrize(("change", "start"), [
    ({"html": "<p>{% if profile.first_name %}Hi</p>"}, "html: line 1:"),
    ({"subject": "Hi {{ profile.frist_name }}"}, "subject:"),
    ({"html": "<p>\n\n{{ profile.__class__ }}</p>"}, "html:"),
    ({"subject": ""}, "subject:"),
    ({"name": None}, "name:"),
    ({"channel": "fax"}, "channel:"),
    ({"body": "an sms body on an email"}, "body:"),
])
def test_a_template_that_cannot_be_used_is_400_naming_the_part(world: MarketerApi, change: dict[str, Any],
                                                              start: str) -> None:
    response = world.call("post", "/templates", body={**THANKS, **change})
    assert response.status_code == 400, response.body
    assert response.json_body["Message"].startswith(start), response.json_body


def test_a_syntax_error_names_its_line(world: MarketerApi) -> None:
    html = "<p>one</p>\n<p>two</p>\n<p>{{ profile.first_name </p>"
    response = world.call("post", "/templates", body={**THANKS, "html": html})
    assert response.status_code == 400 and response.json_body["Message"].startswith("html: line 3:")


def test_builtins_are_listed_editable_and_reset_by_a_delete(world: MarketerApi) -> None:
    listed = {t["id"]: t for t in world.ok("get", "/templates")["templates"]}
    assert set(TEMPLATES) <= set(listed) and DOUBLE_OPT_IN in listed
    assert listed[ABANDONED_CHECKOUT_1] == {"id": ABANDONED_CHECKOUT_1, "channel": "email",
                                            "name": TEMPLATES[ABANDONED_CHECKOUT_1].name, "builtin": True,
                                            "saved": False, "updated_at": BUILTIN_SINCE.isoformat()}
    default = world.ok("get", f"/templates/{ABANDONED_CHECKOUT_1}")
    edited = world.ok("put", f"/templates/{ABANDONED_CHECKOUT_1}", body={**THANKS, "name": "Our cart email"})
    assert (edited["name"], edited["saved"], edited["created_at"]) == ("Our cart email", True, NOW.isoformat())
    assert world.ok("get", f"/templates/{ABANDONED_CHECKOUT_1}", key=world.b.api_key)["name"] == default["name"]

    assert world.call("delete", f"/templates/{ABANDONED_CHECKOUT_1}").status_code == 204
    assert world.ok("get", f"/templates/{ABANDONED_CHECKOUT_1}") == default


def test_unknown_templates_are_404(world: MarketerApi) -> None:
    for method, path, body in (("get", "/templates/nope", None), ("put", "/templates/nope", THANKS),
                               ("delete", "/templates/nope", None), ("get", "/templates/builtin:nope", None),
                               ("get", "/templates/NOT%20AN%20ID", None)):
        response = world.call(method, path, body=body)
        assert response.status_code == 404 and response.json_body["Message"].startswith("no template"), (method, path)


def test_without_a_key_is_401(world: MarketerApi) -> None:
    assert world.api.http.get("/templates").status_code == 401
    assert world.call("post", "/templates", key="crm_not-a-key", body=THANKS).status_code == 401


def test_another_workspace_sees_nothing(world: MarketerApi) -> None:
    template_id = world.ok("post", "/templates", body=THANKS, status=201)["id"]
    other = world.b.api_key
    assert template_id not in {t["id"] for t in world.ok("get", "/templates", key=other)["templates"]}
    for method, path, body in (("get", f"/templates/{template_id}", None), ("put", f"/templates/{template_id}", THANKS),
                               ("delete", f"/templates/{template_id}", None)):
        assert world.call(method, path, key=other, body=body).status_code == 404, (method, path)
    assert world.ok("get", f"/templates/{template_id}")["name"] == "Thanks"
