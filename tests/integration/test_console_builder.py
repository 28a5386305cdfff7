"""The console's segment builder and a segment's asynchronous export, the console function in-process on the
provisioned stack (its every AWS call held against its role: tests/iam.py)."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest
from chalice.test import Client
from crm.console.builder import form_fields, load
from crm.models.stores import StoreRegistration
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.integration.test_console_users import FORM, Browser, _signed_in, console

pytestmark = pytest.mark.integration
__all__ = ["console"]  # the fixture, used by name


def _htmx(browser: Browser, path: str, form: dict[str, str]) -> str:
    answer = browser.client.http.post(path, body=urlencode(form).encode(), headers={
        **FORM, "hx-request": "true", "cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items())})
    assert answer.status_code == 200, answer.body
    return str(answer.body.decode())


def _posted(definition: dict[str, object]) -> dict[str, str]:
    """What the builder's form posts for a definition shown in it (the JSON beside it as the server wrote it)."""
    tree = load(json.dumps(definition))
    assert tree is not None
    written = json.dumps(definition, indent=2)
    return {**form_fields(tree), "definition": written, "written": written}


def test_the_builder_form_writes_the_definition_counts_it_and_saves_it(
        provisioned: Provisioned, console: tuple[Client, StoreRegistration]) -> None:
    client, store = console
    editor = _signed_in(provisioned, client, store, "builder@example.com", "editor")
    token = editor.csrf("/console/segments")
    page = editor.request("get", "/console/segments").body.decode()  # type: ignore[attr-defined]
    assert 'id="n-0-field"' in page and 'name="written"' in page  # the sample definition, shown as a form

    posted = {**_posted({"all": [{"field": "orders_count", "op": "gte", "value": 5}]}), "csrf_token": token}
    # A value changed in the form: htmx gets the builder alone, its JSON and the count written anew.
    changed = _htmx(editor, "/console/segments/builder", {**posted, "n-0-value": "2"})
    assert "<html" not in changed and 'id="builder"' in changed
    assert '<strong data-figure="draft-count">1</strong>' in changed  # Ada has two orders
    assert "&#34;value&#34;: 2" in changed
    # A button without script: the whole page, with an event condition added.
    added = editor.request("post", "/console/segments/builder", {**posted, "action": "add-event:n"})
    body = added.body.decode()  # type: ignore[attr-defined]
    assert "<html" in body and 'id="n-1-event"' in body and "product_viewed" in body
    # A field changed to another kind: its operators follow, and the DSL's message names a bad value.
    refused = _htmx(editor, "/console/segments/builder", {**posted, "n-0-field": "last_order_at",
                                                          "n-0-value": "yesterday"})
    assert '<option value="before" selected>' in refused and "last_order_at takes a time" in refused

    # Saved from the form (the JSON beside it untouched): the tree's definition is the one stored.
    saved = editor.request("post", "/console/segments", {**posted, "n-0-value": "2", "name": "Two orders"})
    assert saved.status_code == 200  # type: ignore[attr-defined]
    from crm import wiring
    from crm.segments import service

    listed = {s["name"]: s["id"] for s in service.list_segments(wiring.segment_store(), store.workspace_id)}
    view = service.segment_view(wiring.segment_store(), store.workspace_id, listed["Two orders"])
    assert view["definition"] == {"all": [{"field": "orders_count", "op": "gte", "value": 2}]}

    # The form's own fields out of shape are a 400 page, not a stack trace.
    broken = editor.request("post", "/console/segments/builder", {**posted, "n-x-kind": "condition"})
    assert broken.status_code == 400  # type: ignore[attr-defined]


def test_a_segment_s_export_is_started_from_its_page_and_linked_when_done(
        provisioned: Provisioned, console: tuple[Client, StoreRegistration]) -> None:
    from crm import wiring
    from crm.models.exports import ExportMessage
    from crm.segments import exports, service

    client, store = console
    viewer = _signed_in(provisioned, client, store, "exporter@example.com", "viewer")
    listed = service.list_segments(wiring.segment_store(), store.workspace_id)
    segment_id = listed[0]["id"]
    page = viewer.request("get", f"/console/segments/{segment_id}").body.decode()  # type: ignore[attr-defined]
    assert "Start the export" in page
    token = viewer.csrf(f"/console/segments/{segment_id}")
    started = viewer.request("post", f"/console/segments/{segment_id}/exports", {"csrf_token": token,
                                                                                 "format": "jsonl"})
    assert started.status_code == 303  # type: ignore[attr-defined]
    location = started.headers["Location"]  # type: ignore[attr-defined]
    export_id = location.rsplit("/", 1)[1]
    queued = viewer.request("get", location).body.decode()  # type: ignore[attr-defined]
    assert '<dd data-figure="export-status">queued</dd>' in queued and 'hx-trigger="every 2s"' in queued

    # The exports function carries it out (here called in the test's own name).
    done = exports.run_export(ExportMessage(workspace_id=store.workspace_id, export_id=export_id),
                              wiring.export_jobs(), wiring.segment_store(), wiring.profile_repository(),
                              wiring.export_files(), lambda: NOW, True)
    assert done is not None and done.status.value == "done"
    shown = viewer.request("get", location).body.decode()  # type: ignore[attr-defined]
    assert '<dd data-figure="export-status">done</dd>' in shown and "every 2s" not in shown
    link = re.search(r'<a href="([^"]+)" download>Download the file</a>', shown)
    assert link and f"exports/{store.workspace_id}/{export_id}/" in link.group(1)

    no_token = viewer.request("post", f"/console/segments/{segment_id}/exports", {"format": "csv"})
    unknown = viewer.request("get", f"/console/segments/{segment_id}/exports/exp_nothing")
    bad_format = viewer.request("post", f"/console/segments/{segment_id}/exports", {"csrf_token": token,
                                                                                    "format": "pdf"})
    assert (no_token.status_code, unknown.status_code, bad_format.status_code) == (  # type: ignore[attr-defined]
        403, 404, 400)
