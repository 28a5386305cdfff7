"""A flow's console page and the template editor, the console function in-process on the provisioned stack (its
every AWS call held against its role by tests/iam.py): the diagram with the counters' counts, a delay saved as
the API saves it (and a wrong one refused beside its field), a viewer refused, a template's live check and the
rendered email under its own Content-Security-Policy."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from chalice.test import Client
from crm.adapters.flow_definitions import DynamoFlowCatalogue
from crm.adapters.flow_stats import DynamoFlowCounters
from crm.models.stores import StoreRegistration
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.integration.test_console_users import _signed_in, console  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration

FLOW = "builtin:abandoned_checkout"


def _body(response: object) -> str:
    return response.body.decode()  # type: ignore[attr-defined]


def _status(response: object) -> int:
    return response.status_code  # type: ignore[attr-defined]


def test_a_flow_s_page_draws_its_steps_with_their_counts_and_saves_a_delay(
        provisioned: Provisioned, console: tuple[Client, StoreRegistration]) -> None:  # noqa: F811
    client, store = console
    table = provisioned.outputs["TableName"]
    counters = DynamoFlowCounters(table)
    counters.add(store.workspace_id, FLOW, NOW.date(), {"recipients": 7, "sent": 5, "opened": 3, "clicked": 2,
                                                        "converted": 1, "skipped:no_consent": 2}, step_id="email_1")
    editor = _signed_in(provisioned, client, store, "flow.editor@example.com", "editor")
    page = _body(editor.request("get", f"/console/flows/{FLOW}"))
    assert re.findall(r'data-step="([a-z0-9_]+)"', page) == ["wait_4h", "email_1", "wait_24h", "email_2"]
    email_1 = page.split('data-step="email_1"', 1)[1].split('data-step="wait_24h"', 1)[0]
    shown = dict(re.findall(r'data-count="(\w+)">([\d,]+)<', email_1))
    assert shown == {"reached": "7", "sent": "5", "opened": "3", "clicked": "2", "converted": "1"}
    assert "no consent 2" in email_1

    token = editor.csrf(f"/console/flows/{FLOW}")
    saved = editor.request("post", f"/console/flows/{FLOW}", {"csrf_token": token, "version": "0",
                                                              "wait.wait_4h": "90", "wait.wait_4h.unit": "minutes"})
    assert _status(saved) == 200 and "Saved: version 1." in _body(saved)
    record = DynamoFlowCatalogue(table).get_flow(store.workspace_id, FLOW)
    assert record is not None and record.definition.steps[0].duration == timedelta(minutes=90)  # type: ignore[union-attr]

    too_long = editor.request("post", f"/console/flows/{FLOW}", {"csrf_token": token, "version": "1",
                                                                 "wait.wait_4h": "400", "wait.wait_4h.unit": "days"})
    assert _status(too_long) == 400
    beside = _body(too_long).split('data-step="wait_4h"', 1)[1].split('data-step="email_1"', 1)[0]
    assert 'id="problem-wait_4h" role="alert">steps[0].duration: a flow waits at most 365 days' in beside
    assert 'value="400"' in beside  # the form keeps what was typed
    stale = editor.request("post", f"/console/flows/{FLOW}", {"csrf_token": token, "version": "0",
                                                              "wait.wait_4h": "2", "wait.wait_4h.unit": "hours"})
    assert _status(stale) == 409 and "read it again" in _body(stale)

    viewer = _signed_in(provisioned, client, store, "flow.viewer@example.com", "viewer")
    page = _body(viewer.request("get", f"/console/flows/{FLOW}"))
    # A draft's backtest reads and sends nothing: a viewer runs it too.
    tested = viewer.request("get", f"/console/flows/{FLOW}?backtest_days=30")
    assert _status(tested) == 200 and '<dd data-figure="backtest-entered">0</dd>' in _body(tested)
    too_far = viewer.request("get", f"/console/flows/{FLOW}?backtest_days=500")
    assert _status(too_far) == 400 and "days: Input should be less than or equal to 90" in _body(too_far)
    assert "<fieldset disabled>" in page
    refused = viewer.request("post", f"/console/flows/{FLOW}", {"csrf_token": viewer.csrf(f"/console/flows/{FLOW}"),
                                                                "version": "1", "wait.wait_4h": "1",
                                                                "wait.wait_4h.unit": "hours"})
    assert _status(refused) == 403
    record = DynamoFlowCatalogue(table).get_flow(store.workspace_id, FLOW)
    assert record is not None and record.version == 1
    assert _status(editor.request("get", "/console/flows/no-such-flow")) == 404


def test_a_template_draft_is_checked_live_and_rendered_under_its_own_policy(
        provisioned: Provisioned, console: tuple[Client, StoreRegistration]) -> None:  # noqa: F811
    client, store = console
    editor = _signed_in(provisioned, client, store, "tpl.editor@example.com", "editor")
    listed = _body(editor.request("get", "/console/templates"))
    assert 'href="/console/templates/builtin:welcome_1"' in listed
    token = editor.csrf("/console/templates/builtin:welcome_1")
    draft = {"csrf_token": token, "name": "Welcome", "subject": "Hello {{ profile.first_name }}",
             "html": "<html><body><p>Hi {{ profile.first_name }}</p></body></html>", "text": "", "marketing": "on",
             "customer": ""}
    checked = client.http.post("/console/templates/builtin:welcome_1/preview", body=_form(draft), headers={
        **_headers(editor), "hx-request": "true"})
    assert _status(checked) == 200 and '<span data-preview="subject">Hello Ada</span>' in _body(checked)
    assert "<html" not in _body(checked)  # the fragment alone

    broken = client.http.post("/console/templates/builtin:welcome_1/preview", body=_form(
        {**draft, "html": "<p>{{ profile.first_name </p>"}), headers={**_headers(editor), "hx-request": "true"})
    assert "data-template-problems" in _body(broken) and "html: line 1:" in _body(broken)

    rendered = editor.request("post", "/console/templates/builtin:welcome_1/rendered", draft)
    assert _status(rendered) == 200 and "<p>Hi Ada</p>" in _body(rendered)
    policy = rendered.headers["Content-Security-Policy"]  # type: ignore[attr-defined]
    assert "frame-ancestors 'self'" in policy and "script-src" not in policy and "sandbox" in policy

    saved = editor.request("post", "/console/templates/builtin:welcome_1", draft)
    assert _status(saved) == 200 and "Template “Welcome” saved" in _body(saved)
    refused = editor.request("post", "/console/templates/builtin:welcome_1", {**draft, "html": "{% if %}"})
    assert _status(refused) == 400 and "Nothing was saved: html: line 1" in _body(refused)

    viewer = _signed_in(provisioned, client, store, "tpl.viewer@example.com", "viewer")
    refused = viewer.request("post", "/console/templates/builtin:welcome_1",
                             {**draft, "csrf_token": viewer.csrf("/console/templates/builtin:welcome_1")})
    assert _status(refused) == 403


def _form(fields: dict[str, str]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()


def _headers(browser: object) -> dict[str, str]:
    cookies = browser.cookies  # type: ignore[attr-defined]
    return {"cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
            "content-type": "application/x-www-form-urlencoded"}
