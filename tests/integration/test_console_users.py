"""The console's users in the template's Cognito pool (moto's cognito-idp): invited, choosing a password with the
invitation, signing in; and the console function on the provisioned stack, in-process, its every AWS call held
against its role (tests/iam.py)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlencode

import boto3
import pytest
from chalice.test import Client
from crm.adapters.flow_runs import DynamoRunStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.adapters.users import CognitoUsers, ConsoleUser, PasswordRejected, SignInRefused, UserExists
from crm.models.flows import FlowRun, RunStatus, StepOutcome, StepRecord
from crm.models.profile import Profile
from crm.models.stores import Platform, StoreRegistration
from crm.ports import Change, IdentityLink
from crm.stores import register_store
from crm_local.lambdas import load_handler
from crm_local.provision import Provisioned

from tests.builders import NOW

pytestmark = pytest.mark.integration

PASSWORD = "Correct-horse-battery-9"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def _users(provisioned: Provisioned) -> CognitoUsers:
    return CognitoUsers(provisioned.outputs["ConsoleUserPoolId"], provisioned.outputs["ConsoleUserPoolClientId"])


def test_an_invited_user_chooses_a_password_once_then_signs_in_with_it(provisioned: Provisioned) -> None:
    users = _users(provisioned)
    invitation = users.invite("ws_1", "ada@example.com", "editor")
    assert invitation.user == ConsoleUser("ada@example.com", "ws_1", "editor")
    with pytest.raises(UserExists):
        users.invite("ws_2", "ada@example.com", "viewer")
    # The temporary password signs in only through the invitation page.
    with pytest.raises(SignInRefused, match="invitation"):
        users.sign_in("ada@example.com", invitation.temporary_password)
    with pytest.raises(PasswordRejected):
        users.accept("ada@example.com", invitation.temporary_password, "short")
    assert users.accept("ada@example.com", invitation.temporary_password, PASSWORD) == invitation.user
    with pytest.raises(SignInRefused, match="used already"):
        users.accept("ada@example.com", PASSWORD, "Another-password-1")
    assert users.sign_in("ada@example.com", PASSWORD) == invitation.user
    for email, password in (("ada@example.com", "Wrong-password-1"), ("nobody@example.com", PASSWORD)):
        with pytest.raises(SignInRefused, match="wrong email or password"):
            users.sign_in(email, password)


def test_a_disabled_user_is_refused_and_the_pool_keeps_role_and_workspace(provisioned: Provisioned) -> None:
    users = _users(provisioned)
    invitation = users.invite("ws_1", "bob@example.com", "viewer")
    users.accept("bob@example.com", invitation.temporary_password, PASSWORD)
    cognito = boto3.client("cognito-idp", region_name=provisioned.region)
    cognito.admin_disable_user(UserPoolId=users.user_pool_id, Username="bob@example.com")
    assert users.user("bob@example.com") == ConsoleUser("bob@example.com", "ws_1", "viewer", enabled=False)
    with pytest.raises(SignInRefused):
        users.sign_in("bob@example.com", PASSWORD)
    assert users.user("nobody@example.com") is None


@dataclass
class Browser:
    """The console function called in-process, with a cookie jar (the browser's part of the protocol)."""

    client: Client
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> object:
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if form is not None:
            headers.update(FORM)
        body = urlencode(form).encode() if form is not None else b""
        response = getattr(self.client.http, method)(path, headers=headers, body=body)
        set_cookie = response.headers.get("Set-Cookie")
        if set_cookie:
            name, _, rest = set_cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0;" in set_cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    def csrf(self, path: str) -> str:
        page = self.request("get", path)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.body.decode())  # type: ignore[attr-defined]
        assert found, page
        return found.group(1)


@pytest.fixture
def console(provisioned: Provisioned, function_env: Callable[[str], None],
            monkeypatch: pytest.MonkeyPatch) -> tuple[Client, StoreRegistration]:
    table = provisioned.outputs["TableName"]
    store = register_store(DynamoStoreDirectory(table), Platform.SHOPIFY, "c.myshopify.com", "secret-c", NOW)
    ada = Profile(workspace_id=store.workspace_id, profile_id="p_ada", email="ada@shop.example", first_name="Ada",
                  last_name="Lovelace", identities=("email#ada@shop.example",), orders_count=2,
                  total_spent=Decimal("1234.50"), currency="GBP", created_at=NOW, updated_at=NOW)
    DynamoProfileRepository(table).commit(Change(workspace_id=store.workspace_id, profiles=((ada, None),),
                                                 identities=(IdentityLink("email#ada@shop.example", "p_ada", None),)))
    function_env("ConsoleFunction")
    spec = provisioned.functions["ConsoleFunction"]
    handler = load_handler(spec.code_path, spec.handler, spec.logical_id)
    monkeypatch.setattr(sys.modules[f"crm_function_{spec.logical_id}"], "utc_now", lambda: NOW)
    return Client(handler), store


def _signed_in(provisioned: Provisioned, client: Client, store: StoreRegistration, email: str,
               role: str) -> Browser:
    from crm.console.invitation import invitation_token

    invitation = _users(provisioned).invite(store.workspace_id, email, role)  # type: ignore[arg-type]
    browser = Browser(client)
    token = invitation_token(email, invitation.temporary_password)
    csrf = browser.csrf(f"/console/invitation?token={token}")
    accepted = browser.request("post", "/console/invitation", {"csrf_token": csrf, "token": token,
                                                                 "password": PASSWORD, "confirm": PASSWORD})
    assert accepted.status_code == 303 and "crm_console_session" in browser.cookies  # type: ignore[attr-defined]
    return browser


def test_a_signed_in_user_finds_a_customer_and_sees_their_net_total(
        provisioned: Provisioned, console: tuple[Client, StoreRegistration]) -> None:
    client, store = console
    assert Browser(client).request("get", "/console/customers").status_code == 303  # type: ignore[attr-defined]
    browser = _signed_in(provisioned, client, store, "ed@example.com", "editor")
    found = browser.request("get", "/console/customers?q=ADA%40shop.example").body.decode()  # type: ignore[attr-defined]
    assert 'href="/console/customers/p_ada">Ada Lovelace</a>' in found
    page = browser.request("get", "/console/customers/p_ada")
    assert page.status_code == 200  # type: ignore[attr-defined]
    assert '<dd data-figure="net-total">1,234.50 GBP</dd>' in page.body.decode()  # type: ignore[attr-defined]
    by_name = browser.request("get", "/console/customers?q=lovelace").body.decode()  # type: ignore[attr-defined]
    assert "found by name" in by_name and "Ada Lovelace" in by_name
    dashboard = browser.request("get", "/console")
    assert dashboard.status_code == 200  # type: ignore[attr-defined]
    assert "No flow has reached this customer." in page.body.decode()  # type: ignore[attr-defined]

    sent = StepRecord(step_id="email_1", outcome=StepOutcome.SENT, at=NOW, channel="email", message_id="m-1")
    DynamoRunStore(provisioned.outputs["TableName"]).create_run(FlowRun(
        workspace_id=store.workspace_id, flow_id="builtin:welcome", flow_version=1, run_id="run-1",
        profile_id="p_ada", trigger_type="profile_created", trigger_event_id="e-1", trigger={}, entered_at=NOW,
        status=RunStatus.COMPLETED, ended_at=NOW, steps=(sent,)))
    runs = browser.request("get", "/console/customers/p_ada").body.decode()  # type: ignore[attr-defined]
    assert "<strong>Welcome series</strong>: completed" in runs and "email_1: sent (email)" in runs


def test_a_viewer_changes_nothing_and_a_post_without_its_token_is_refused(
        provisioned: Provisioned, console: tuple[Client, StoreRegistration]) -> None:
    client, store = console
    definition = '{"all": [{"field": "orders_count", "op": "gte", "value": 1}]}'
    viewer = _signed_in(provisioned, client, store, "vi@example.com", "viewer")
    token = viewer.csrf("/console/segments")
    refused = viewer.request("post", "/console/segments", {"csrf_token": token, "name": "Buyers",
                                                            "definition": definition})
    assert refused.status_code == 403  # type: ignore[attr-defined]

    editor = _signed_in(provisioned, client, store, "ed2@example.com", "editor")
    no_token = editor.request("post", "/console/segments", {"name": "Buyers", "definition": definition})
    others_token = editor.request("post", "/console/segments", {"csrf_token": token, "name": "Buyers",
                                                                "definition": definition})
    assert no_token.status_code == others_token.status_code == 403  # type: ignore[attr-defined]
    assert "Buyers" not in editor.request("get", "/console/segments").body.decode()  # type: ignore[attr-defined]

    saved = editor.request("post", "/console/segments", {"csrf_token": editor.csrf("/console/segments"),
                                                          "name": "Buyers", "definition": definition})
    assert saved.status_code == 200 and "Segment “Buyers” saved" in saved.body.decode()  # type: ignore[attr-defined]
    bad = editor.request("post", "/console/segments", {"csrf_token": editor.csrf("/console/segments"),
                                                        "name": "Broken", "definition": "{not json"})
    assert bad.status_code == 400 and "not JSON" in bad.body.decode()  # type: ignore[attr-defined]


def test_errors_are_pages_without_a_stack_trace(provisioned: Provisioned, console: tuple[Client, StoreRegistration],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    client, store = console
    browser = _signed_in(provisioned, client, store, "ed3@example.com", "editor")
    missing = browser.request("get", "/console/customers/p_nobody")
    assert missing.status_code == 404 and "No such customer" in missing.body.decode()  # type: ignore[attr-defined]
    bad_range = browser.request("get", "/console?from=2026-05-01&to=2026-01-01")
    assert bad_range.status_code == 400 and "is after" in bad_range.body.decode()  # type: ignore[attr-defined]

    from crm import wiring

    def broken() -> object:
        raise RuntimeError("the table is on fire")

    monkeypatch.setattr(wiring, "report_source", broken)
    failed = browser.request("get", "/console")
    body = failed.body.decode()  # type: ignore[attr-defined]
    assert failed.status_code == 500 and "Something went wrong" in body  # type: ignore[attr-defined]
    assert "Traceback" not in body and "on fire" not in body


def test_a_draft_is_counted_and_a_flow_switched_only_by_an_editor_within_the_role(
        provisioned: Provisioned, console: tuple[Client, StoreRegistration]) -> None:
    client, store = console
    editor = _signed_in(provisioned, client, store, "ed4@example.com", "editor")
    token = editor.csrf("/console/segments")
    definition = '{"all": [{"field": "orders_count", "op": "gte", "value": 2}]}'
    draft = {"csrf_token": token, "name": "", "definition": definition}
    counted = editor.client.http.post("/console/segments/preview", body=urlencode(draft).encode(), headers={
        **FORM, "hx-request": "true", "cookie": "; ".join(f"{k}={v}" for k, v in editor.cookies.items())})
    assert counted.status_code == 200
    assert '<strong data-figure="draft-count">1</strong>' in counted.body.decode()
    assert "<html" not in counted.body.decode()  # htmx gets the count alone; a plain post the whole page
    whole = editor.request("post", "/console/segments/preview", draft)
    assert '<strong data-figure="draft-count">1</strong>' in whole.body.decode()  # type: ignore[attr-defined]
    assert "<html" in whole.body.decode()  # type: ignore[attr-defined]

    viewer = _signed_in(provisioned, client, store, "vi2@example.com", "viewer")
    switch = {"flow_id": "builtin:welcome", "status": "live"}
    refused = viewer.request("post", "/console/flows/status", {**switch, "csrf_token": viewer.csrf("/console/flows")})
    assert refused.status_code == 403  # type: ignore[attr-defined]
    not_ready = editor.request("post", "/console/flows/status", {**switch, "csrf_token": token})
    assert not_ready.status_code == 409 and "no from address" in not_ready.body.decode()  # type: ignore[attr-defined]
    back = editor.request("post", "/console/flows/status", {**switch, "status": "draft", "csrf_token": token})
    assert back.status_code == 200  # type: ignore[attr-defined]
    assert "Welcome series is back to draft." in back.body.decode()  # type: ignore[attr-defined]


def test_a_customer_s_orders_show_their_items_and_a_bad_cursor_is_a_page(
        provisioned: Provisioned, console: tuple[Client, StoreRegistration]) -> None:
    from crm.ingestion import apply_event
    from crm.models.orders import LineItem

    from tests.builders import order

    client, store = console
    repository = DynamoProfileRepository(provisioned.outputs["TableName"])
    placed = order("o-1", workspace_id=store.workspace_id, store_id=store.store_id, email="grace@shop.example",
                   total=Decimal("30.00")).model_copy(update={"line_items": (
                       LineItem(sku="HAT-1", title="Felt hat", quantity=2, price=Decimal("15.00")),)})
    assert apply_event(repository, placed, NOW)
    profile_id = repository.profile_id_for_identity(store.workspace_id, "email#grace@shop.example")
    browser = _signed_in(provisioned, client, store, "orders@example.com", "viewer")
    page = browser.request("get", f"/console/customers/{profile_id}").body.decode()  # type: ignore[attr-defined]
    assert "Order o-1" in page and "<td>Felt hat</td><td>HAT-1</td><td class=\"number\">2</td>" in page
    assert '<span data-figure="order-net">30.00 USD</span>' in page
    older = browser.request("get", f"/console/customers/{profile_id}/orders?orders=nonsense")
    assert older.status_code == 400 and "Traceback" not in older.body.decode()  # type: ignore[attr-defined]
    missing = browser.request("get", "/console/customers/p_nobody/orders")
    assert missing.status_code == 404  # type: ignore[attr-defined]
