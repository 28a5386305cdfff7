"""The console's Settings in a real browser (Playwright driving the system's Chromium against `crm local`): a store
added with its webhook secret shown once, whose webhooks that secret signs, then rotated; an API key
created is shown once, works on the API, and is refused by it once revoked; a user invited from the Users page
chooses a password with the link shown there; a viewer's controls are disabled and the server refuses them anyway.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.builders import compact, placed_order_json, shopify_headers
from tests.e2e import test_console
from tests.e2e.conftest import LocalStack
from tests.e2e.test_console import PASSWORD, _invite, _open, _signed_in

pytestmark = pytest.mark.e2e

# The Chromium the console's browser tests drive (test_console's fixture, which skips without one).
settings_browser = test_console.browser


@pytest.fixture(scope="module")
def settings_workspace(local_stack: LocalStack) -> dict[str, str]:
    added: dict[str, str] = json.loads(local_stack.crm("store", "add", "--platform", "shopify", "--domain",
                                                       "e2e-settings.myshopify.com", "--webhook-secret", "s3cret"))
    return added


def _settings(page: Any, name: str) -> None:
    _open(page, "Settings")
    page.get_by_role("navigation", name="Settings").get_by_role("link", name=name).click()
    page.get_by_role("heading", name=name, exact=True).wait_for()


def test_an_api_key_is_shown_once_works_and_is_refused_once_revoked(
        local_stack: LocalStack, settings_workspace: dict[str, str], settings_browser: Any) -> None:
    page = _signed_in(settings_browser, _invite(local_stack, settings_workspace, "keys.editor@example.com", "editor"))
    _settings(page, "API keys")
    page.get_by_role("button", name="Create API key").click()
    key = page.get_by_label("API key", exact=True).input_value()
    assert key.startswith("crm_")
    status, _ = local_stack.get("/segments", key)
    assert status == 200
    key_id = page.get_by_role("heading", name="New key").inner_text().removeprefix("New key ")
    assert page.locator(f"[data-key-state='{key_id}']").inner_text() == "active"

    page.goto(page.url)  # the page again: the key by its id, never the key itself
    assert key not in page.content() and key_id in page.content()
    page.get_by_role("button", name=f"Revoke {key_id}").click()
    page.get_by_text(f"Key {key_id} is revoked").wait_for()
    assert page.locator(f"[data-key-state='{key_id}']").inner_text().startswith("revoked")
    status, _ = local_stack.get("/segments", key)
    assert status == 401
    status, _ = local_stack.get("/segments", settings_workspace["api_key"])  # the others still work
    assert status == 200


def test_a_user_invited_from_the_users_page_signs_in_with_the_link_shown(
        local_stack: LocalStack, settings_workspace: dict[str, str], settings_browser: Any) -> None:
    page = _signed_in(settings_browser, _invite(local_stack, settings_workspace, "users.editor@example.com", "editor"))
    _settings(page, "Users")
    page.get_by_label("Email").fill("Invited.Viewer@example.com")
    page.get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_role("button", name="Invite").click()
    page.get_by_text("invited.viewer@example.com is invited as viewer.").wait_for()
    link = page.get_by_role("textbox", name="Invitation link").input_value()
    assert link.startswith(local_stack.api_url + "/console/invitation?token=")

    invited = settings_browser.new_context().new_page()
    invited.goto(link)
    invited.get_by_label("New password").fill(PASSWORD)
    invited.get_by_label("The same password again").fill(PASSWORD)
    invited.get_by_role("button", name="Set password and sign in").click()
    invited.get_by_role("heading", name="Dashboard").wait_for()
    assert "invited.viewer@example.com · viewer" in invited.locator(".who").inner_text()

    # Made an editor, then disabled: their next page is the sign-in.
    page.goto(page.url)
    page.get_by_label("Role of invited.viewer@example.com", exact=True).select_option("editor")
    page.get_by_role("button", name="Change the role of invited.viewer@example.com").click()
    page.get_by_text("invited.viewer@example.com is now an editor.").wait_for()
    page.get_by_role("button", name="Disable invited.viewer@example.com").click()
    page.get_by_text("invited.viewer@example.com is disabled").wait_for()
    invited.reload()
    invited.get_by_role("heading", name="Sign in").wait_for()


def test_a_viewer_cannot_change_a_setting(local_stack: LocalStack, settings_workspace: dict[str, str],
                                          settings_browser: Any) -> None:
    viewer = _signed_in(settings_browser, _invite(local_stack, settings_workspace, "settings.viewer@example.com",
                                                  "viewer"))
    _settings(viewer, "API keys")
    assert viewer.get_by_role("button", name="Create API key").is_disabled()
    _settings(viewer, "Users")
    assert viewer.get_by_role("button", name="Invite").is_disabled()
    _settings(viewer, "Currency")
    assert viewer.get_by_label("Reporting currency (ISO 4217, like USD)").is_disabled()
    assert viewer.get_by_role("button", name="Save currency settings").is_disabled()
    # The server refuses it too: the key form posted with the viewer's own session and CSRF token.
    _settings(viewer, "API keys")
    token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = viewer.request.post(viewer.url, form={"csrf_token": token})
    assert answer.status == 403 and "viewer" in answer.text()
    assert "crm_" not in answer.text()


def _webhook(stack: LocalStack, domain: str, secret: str, delivery: str) -> int:
    body = compact(placed_order_json())
    status, _ = stack.post("/webhooks/shopify", body, shopify_headers(body, secret=secret, domain=domain,
                                                                      delivery_id=delivery))
    return status


def test_a_store_added_shows_its_secret_once_and_a_rotation_keeps_the_old_one_until_retired(
        local_stack: LocalStack, settings_workspace: dict[str, str], settings_browser: Any) -> None:
    domain = "e2e-rotate.myshopify.com"
    page = _signed_in(settings_browser, _invite(local_stack, settings_workspace, "stores.editor@example.com",
                                                "editor"))
    _settings(page, "Stores")
    page.get_by_label("Platform", exact=True).select_option("shopify")
    page.get_by_label("Domain", exact=True).fill(domain)
    page.get_by_role("button", name="Add store").click()
    page.get_by_text(f"Store {domain} (shopify) is added.").wait_for()
    secret = page.get_by_role("textbox", name="Webhook secret", exact=True).input_value()
    api_key = page.get_by_role("textbox", name="API key", exact=False).input_value()
    assert len(secret) >= 32 and api_key.startswith("crm_")
    assert _webhook(local_stack, domain, secret, "rotate-1") == 200
    assert _webhook(local_stack, domain, "not-the-secret", "rotate-2") == 401
    status, _ = local_stack.get("/segments", api_key)  # the workspace's new key, the same workspace
    assert status == 200
    page.goto(page.url)  # listed, never shown again
    assert page.locator(f"[data-store='{domain}']").count() == 1 and secret not in page.content()

    page.get_by_role("button", name=f"Rotate the webhook secret of {domain}").click()
    page.get_by_text("the old one still verifies until you retire it").wait_for()
    rotated = page.get_by_role("textbox", name="Webhook secret", exact=True).input_value()
    assert rotated != secret
    assert _webhook(local_stack, domain, secret, "rotate-3") == 200  # between rotation and retirement, both verify
    page.get_by_role("button", name=f"Retire the older webhook secrets of {domain}").click()
    page.get_by_text(f"{domain}: 1 older secret retired: refused within a minute.").wait_for()
    # The webhooks function stops accepting the old one once its minute's cache of the vault expires
    # (docs/security.md); tests/integration/test_console_settings.py reads the vault afresh and sees it gone.
