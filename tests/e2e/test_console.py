"""The console in a real browser: Playwright driving the system's Chromium against `crm local` over HTTP.

A user invited with `crm users add` chooses a password and signs in; finds a customer by email and sees the net
total the API reports; an editor saves a segment, a viewer cannot (the button is disabled and the server refuses
the post anyway); a form whose CSRF token is missing is refused with 403.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from crm_local.browser import INSTALL_HINT, LAUNCH_ARGS, find_chromium
from crm_local.demo import http

from tests.builders import compact, placed_order_json, shopify_headers
from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
CHROMIUM = find_chromium()
if CHROMIUM is None:
    pytest.skip(f"no Chromium found: {INSTALL_HINT}", allow_module_level=True)

SHOP, SHOP_SECRET = "e2e-console.myshopify.com", "e2e-console-secret"
ADA = "ada.console@example.com"
PASSWORD = "Correct-horse-battery-9"
# The local runtime's SES has this sender verified from the start (crm_local.runtime.DEFAULT_SENDER).
SENDER = {"from_address": "store@crm-local.example", "from_name": "Console Outfitters",
          "postal_address": "1 Market Street, San Francisco, CA 94105"}


@pytest.fixture(scope="module")
def workspace(local_stack: LocalStack) -> dict[str, str]:
    """A store with one paid order of Ada's, placed now (so the dashboard's default range has it)."""
    store: dict[str, str] = json.loads(local_stack.crm("store", "add", "--platform", "shopify", "--domain", SHOP,
                                                       "--webhook-secret", SHOP_SECRET))
    now = datetime.now(UTC).isoformat()
    order = placed_order_json(email=ADA, created_at=now, updated_at=now, processed_at=now)
    order["customer"] = {**order["customer"], "email": ADA, "first_name": "Ada", "last_name": "Lovelace"}
    body = compact(order)
    status, _ = local_stack.post("/webhooks/shopify", body, shopify_headers(body, secret=SHOP_SECRET, domain=SHOP,
                                                                            delivery_id="console-order-1"))
    assert status == 200
    local_stack.wait_drained()
    return store


def _invite(stack: LocalStack, workspace: dict[str, str], email: str, role: str) -> str:
    invited = json.loads(stack.crm("users", "add", "--workspace", workspace["workspace_id"], "--email", email,
                                   "--role", role, "--api", stack.api_url))
    assert invited["role"] == role
    return str(invited["invitation_url"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(LAUNCH_ARGS))
        yield launched
        launched.close()


def _signed_in(browser: Any, invitation_url: str) -> Any:
    """A page of a fresh browser context whose user accepted the invitation (choosing a password) and signed in
    with it."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(invitation_url)
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD)
    page.get_by_role("button", name="Set password and sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    page.get_by_label("Email").fill(invitation_email(invitation_url))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    return page


def _open(page: Any, name: str) -> None:
    page.get_by_role("navigation", name="Console").get_by_role("link", name=name).click()


def invitation_email(url: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    from crm.console.invitation import invitation_of

    invited = invitation_of(parse_qs(urlsplit(url).query)["token"][0])
    assert invited is not None
    return invited[0]


def test_an_invited_user_signs_in_and_finds_a_customer_by_email_with_their_net_total(
        local_stack: LocalStack, workspace: dict[str, str], browser: Any) -> None:
    page = _signed_in(browser, _invite(local_stack, workspace, "editor.one@example.com", "editor"))
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["crm_console_session"]
    assert (session["httpOnly"], session["secure"], session["sameSite"]) == (True, True, "Strict")
    # The dashboard counts the order placed today.
    assert page.locator("[data-figure=orders]").inner_text() == "1"

    _open(page, "Customers")
    page.get_by_label("Search customers").fill(ADA)
    page.get_by_label("Search customers").press("Enter")
    page.get_by_role("link", name="Ada Lovelace").click()

    status, customer = local_stack.get(f"/customers?email={ADA}", workspace["api_key"])
    assert status == 200
    shown = page.locator("[data-figure=net-total]").inner_text()
    assert shown == f"{Decimal(customer['total_spent']):,.2f} {customer['currency']}"
    assert Decimal(customer["total_spent"]) > 0


def test_an_editor_saves_a_segment_and_a_viewer_cannot(local_stack: LocalStack, workspace: dict[str, str],
                                                       browser: Any) -> None:
    editor = _signed_in(browser, _invite(local_stack, workspace, "editor.two@example.com", "editor"))
    _open(editor, "Segments")
    editor.get_by_label("Name", exact=True).fill("Ordered once")
    editor.get_by_label("Definition").fill('{"all": [{"field": "orders_count", "op": "gte", "value": 1}]}')
    editor.get_by_role("button", name="Save segment").click()
    editor.get_by_text("Segment “Ordered once” saved").wait_for()
    assert editor.get_by_role("link", name="Ordered once").count() == 1

    viewer = _signed_in(browser, _invite(local_stack, workspace, "viewer@example.com", "viewer"))
    _open(viewer, "Segments")
    assert viewer.get_by_role("button", name="Save segment").is_disabled()
    _open(viewer, "Flows")
    assert viewer.get_by_role("button", name="Go live: Welcome series").is_disabled()
    _open(viewer, "Segments")
    # The server refuses it too: the same form posted with the viewer's own session and CSRF token.
    token = viewer.locator("form[action$='/segments'] input[name=csrf_token]").get_attribute("value")
    answer = viewer.request.post(viewer.url, form={"csrf_token": token, "name": "Sneaky",
                                                   "definition": '{"all": [{"field": "orders_count", "op": "gte", '
                                                                 '"value": 0}]}'})
    assert answer.status == 403
    assert "viewer" in answer.text()
    _, listed = local_stack.get("/segments", workspace["api_key"])
    assert [s["name"] for s in listed["segments"] if not s["builtin"]] == ["Ordered once"]


def test_the_builder_counts_a_draft_as_the_api_does(local_stack: LocalStack, workspace: dict[str, str],
                                                     browser: Any) -> None:
    definition = {"all": [{"field": "orders_count", "op": "gte", "value": 1}]}
    page = _signed_in(browser, _invite(local_stack, workspace, "editor.six@example.com", "editor"))
    refused: list[str] = []  # what the Content-Security-Policy blocked (htmx runs under it, inline nothing)
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text
            else None)
    _open(page, "Segments")
    page.get_by_label("Definition").fill(json.dumps(definition))
    count = page.locator("[data-figure=draft-count]")
    count.wait_for()  # typed: htmx asks for the count after a pause, the page stays as it is
    assert page.get_by_label("Definition").input_value() == json.dumps(definition)
    draft = json.dumps({"name": "draft", "definition": definition}).encode()
    status, preview = local_stack.post("/segments/preview", draft, {"x-api-key": workspace["api_key"],
                                                                    "Content-Type": "application/json"})
    assert status == 200 and preview["size"] >= 1
    assert count.inner_text() == f"{preview['size']:,}"
    page.get_by_label("Definition").fill('{"all": [{"field": "no_such_field", "op": "eq", "value": 1}]}')
    page.locator("#segment-count .problem").wait_for()
    assert refused == []


def test_a_form_without_its_csrf_token_is_refused(local_stack: LocalStack, workspace: dict[str, str],
                                                  browser: Any) -> None:
    page = _signed_in(browser, _invite(local_stack, workspace, "editor.three@example.com", "editor"))
    _open(page, "Segments")
    page.get_by_label("Name", exact=True).fill("No token")
    page.locator("form[action$='/segments'] input[name=csrf_token]").evaluate("field => field.remove()")
    with page.expect_response(lambda response: response.request.method == "POST") as posted:
        page.get_by_role("button", name="Save segment").click()
    assert posted.value.status == 403
    page.get_by_role("heading", name="Form refused").wait_for()
    _, listed = local_stack.get("/segments", workspace["api_key"])
    assert "No token" not in [s["name"] for s in listed["segments"]]


def test_a_segment_s_members_download_as_csv_with_the_count_the_api_gives(
        local_stack: LocalStack, workspace: dict[str, str], browser: Any, tmp_path: Path) -> None:
    status, created = local_stack.post("/segments", json.dumps({
        "name": "Spent something", "definition": {"all": [{"field": "lifetime_value", "op": "gt", "value": "0"}]},
    }).encode(), {"x-api-key": workspace["api_key"], "Content-Type": "application/json"})
    assert status == 201
    page = _signed_in(browser, _invite(local_stack, workspace, "editor.four@example.com", "editor"))
    _open(page, "Segments")
    page.get_by_role("link", name="Spent something").click()
    for _ in range(60):  # its first computation runs beside the page
        size = page.locator("[data-figure=segment-size]").inner_text()
        if size.isdigit():
            break
        page.wait_for_timeout(500)
        page.reload()
    _, listed = local_stack.get(f"/segments/{created['id']}", workspace["api_key"])
    assert size == f"{listed['size']:,}" and listed["size"] >= 1
    with page.expect_download() as downloading:
        page.get_by_role("link", name="CSV").click()
    saved = tmp_path / downloading.value.suggested_filename
    downloading.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert len(rows) == listed["size"] and ADA in {row["email"] for row in rows}


def test_an_editor_switches_a_built_in_flow_live_and_back(local_stack: LocalStack, workspace: dict[str, str],
                                                           browser: Any) -> None:
    page = _signed_in(browser, _invite(local_stack, workspace, "editor.five@example.com", "editor"))
    _open(page, "Flows")
    page.get_by_role("button", name="Go live: Welcome series").click()
    # Without a sender the flow cannot send its emails: the page says what is missing.
    assert "no from address" in page.get_by_role("alert").inner_text()
    status, _ = http("PUT", f"{local_stack.api_url}/settings/messaging", json.dumps(SENDER).encode(),
                     {"x-api-key": workspace["api_key"], "Content-Type": "application/json"})
    assert status == 200
    page.get_by_role("button", name="Go live: Welcome series").click()
    page.get_by_text("Welcome series is live.").wait_for()
    assert page.locator("[data-flow-status='builtin:welcome']").inner_text() == "live"
    _, listed = local_stack.get("/flows", workspace["api_key"])
    assert {f["id"]: f["status"] for f in listed["flows"]}["builtin:welcome"] == "live"
    page.get_by_role("button", name="Back to draft: Welcome series").click()
    page.get_by_text("Welcome series is back to draft.").wait_for()
    _, listed = local_stack.get("/flows", workspace["api_key"])
    assert {f["id"]: f["status"] for f in listed["flows"]}["builtin:welcome"] == "draft"


def test_signed_out_pages_lead_to_the_sign_in_and_a_wrong_password_is_refused(
        local_stack: LocalStack, workspace: dict[str, str], browser: Any) -> None:
    page = browser.new_context().new_page()
    page.goto(f"{local_stack.api_url}/console/customers")
    page.get_by_role("heading", name="Sign in").wait_for()
    page.get_by_label("Email").fill("nobody@example.com")
    page.get_by_label("Password").fill("Not-the-password-1")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "wrong email or password"


# --- a flow's page and the template editor -------------------------------------------------------------------

ABANDONED = "builtin:abandoned_checkout"


def _set_sender(stack: LocalStack, workspace: dict[str, str]) -> None:
    status, _ = http("PUT", f"{stack.api_url}/settings/messaging", json.dumps(SENDER).encode(),
                     {"x-api-key": workspace["api_key"], "Content-Type": "application/json"})
    assert status == 200


def test_a_built_in_flow_s_page_draws_its_steps_with_their_counts_and_saves_a_delay(
        local_stack: LocalStack, workspace: dict[str, str], browser: Any) -> None:
    page = _signed_in(browser, _invite(local_stack, workspace, "editor.flow@example.com", "editor"))
    _open(page, "Flows")
    page.get_by_role("link", name="Abandoned checkout").click()
    page.get_by_role("heading", name="Abandoned checkout").wait_for()
    _, flow = local_stack.get(f"/flows/{ABANDONED}", workspace["api_key"])
    drawn = page.locator(".flow-diagram > .step").evaluate_all("steps => steps.map(s => s.dataset.step)")
    assert drawn == [step["id"] for step in flow["definition"]["steps"]]
    _, stats = local_stack.get(f"/flows/{ABANDONED}/stats", workspace["api_key"])
    for step_id, counts in stats["steps"].items():
        box = page.locator(f"[data-step='{step_id}']")
        assert box.locator("[data-count=reached]").inner_text() == f"{counts['recipients']:,}"
        if step_id.startswith("email"):
            assert [box.locator(f"[data-count={name}]").inner_text() for name in ("sent", "opened", "converted")] \
                == [f"{counts[name]:,}" for name in ("sent", "opened", "converted")]

    page.get_by_label("Wait (wait_4h)", exact=True).fill("6")
    page.get_by_label("Unit of the wait (wait_4h)").select_option("hours")
    page.get_by_role("button", name="Save changes").click()
    page.get_by_text(re.compile(r"Saved: version \d+\.")).wait_for()
    _, saved = local_stack.get(f"/flows/{ABANDONED}", workspace["api_key"])
    assert saved["definition"]["steps"][0] == {**flow["definition"]["steps"][0], "duration": "PT6H"}
    assert saved["version"] == flow["version"] + 1
    # A wait longer than a flow may wait is refused beside its field, and nothing is saved.
    page.get_by_label("Wait (wait_4h)", exact=True).fill("400")
    page.get_by_label("Unit of the wait (wait_4h)").select_option("days")
    page.get_by_role("button", name="Save changes").click()
    assert "at most 365 days" in page.locator("#problem-wait_4h").inner_text()
    _, unchanged = local_stack.get(f"/flows/{ABANDONED}", workspace["api_key"])
    assert unchanged["version"] == saved["version"]


def test_a_flow_s_test_send_lands_in_the_local_ses(local_stack: LocalStack, workspace: dict[str, str],
                                                   browser: Any) -> None:
    from crm_local.outbound import Outbox

    _set_sender(local_stack, workspace)
    outbox = Outbox(local_stack.aws_endpoint)
    mark = outbox.mark()
    page = _signed_in(browser, _invite(local_stack, workspace, "editor.test@example.com", "editor"))
    _open(page, "Flows")
    page.get_by_role("link", name="Abandoned checkout").click()
    page.get_by_label("Send a test to (email address)").fill("proof.reader@example.com")
    page.get_by_label("Email step").select_option("email_2")
    page.get_by_role("button", name="Send test").click()
    notice = page.locator("[data-sent-message]")
    notice.wait_for()
    message_id = notice.get_attribute("data-sent-message")
    sent = [email for email in outbox.since(mark).emails if email.message_id == message_id]
    assert len(sent) == 1 and sent[0].to == ["proof.reader@example.com"]
    assert sent[0].subject is not None and sent[0].subject.startswith("[Test] ")
    assert sent[0].tags.get("step") == "email_2" and sent[0].tags.get("test") == "true"


def test_a_template_edit_shows_in_the_live_preview(local_stack: LocalStack, workspace: dict[str, str],
                                                   browser: Any) -> None:
    _, template = local_stack.get("/templates/builtin:abandoned_checkout_1", workspace["api_key"])
    page = _signed_in(browser, _invite(local_stack, workspace, "editor.template@example.com", "editor"))
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text
            else None)
    _open(page, "Templates")
    page.get_by_role("link", name=template["name"]).click()
    frame = page.frame_locator("iframe[name=email-preview]")
    frame.locator("body").wait_for()
    page.get_by_label("Subject").fill("A note for {{ profile.first_name }}")
    page.get_by_label("HTML", exact=True).fill("<html><body><p class='x'>Still thinking it over, "
                                               "{{ profile.first_name }}?</p></body></html>")
    # htmx checks the draft after a pause; then the frame is posted the draft and shows the email as sent.
    page.locator("[data-preview=subject]", has_text="A note for Ada").wait_for()
    frame.get_by_text("Still thinking it over, Ada?").wait_for()
    page.get_by_label("Preview for a customer (their email; empty: the sample shopper)").fill(ADA)
    page.get_by_text(f"Rendered for {ADA}.").wait_for()  # the demo's Ada, not the sample shopper
    frame.get_by_text("Still thinking it over, Ada?").wait_for()
    page.get_by_label("HTML", exact=True).fill("<p>{% if %}</p>")
    page.locator("[data-template-problems]").wait_for()
    assert "html: line 1" in page.locator("[data-template-problems]").inner_text()
    assert refused == []
    _, unchanged = local_stack.get("/templates/builtin:abandoned_checkout_1", workspace["api_key"])
    assert unchanged["subject"] == template["subject"]  # a preview saves nothing
