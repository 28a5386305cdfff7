"""The console's Settings pages, the console function in-process on the provisioned stack (its every AWS call held
against its role, tests/iam.py): API keys created and revoked as the API sees them, users invited, given a role and
disabled (never the last editor), messaging and currency saved as the API's PUTs save them, a viewer refused."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from html import unescape

import pytest
from chalice.test import Client
from crm.adapters.stores import DynamoStoreDirectory
from crm.api_keys import authenticate
from crm.console.invitation import invitation_of
from crm.models.stores import StoreRegistration
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.integration import test_console_users
from tests.integration.test_console_users import _signed_in, _users

# The console function on the provisioned stack with one store's workspace (test_console_users' fixture).
settings_console = test_console_users.console

pytestmark = pytest.mark.integration


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def console_log() -> Iterator[list[logging.LogRecord]]:
    """What the console function's Powertools logger writes, on the logger itself: it does not propagate to the
    root logger caplog watches, and an earlier test may have left its level above INFO."""
    kept, logger = _Kept(), logging.getLogger("console")
    level = logger.level
    logger.addHandler(kept)
    logger.setLevel(logging.INFO)
    yield kept.records
    logger.removeHandler(kept)
    logger.setLevel(level)


def _body(response: object) -> str:
    return response.body.decode()  # type: ignore[attr-defined,no-any-return]


def _status(response: object) -> int:
    return response.status_code  # type: ignore[attr-defined,no-any-return]


def test_an_editor_creates_a_key_shown_once_and_revokes_it_and_the_api_refuses_it_after(
        provisioned: Provisioned, settings_console: tuple[Client, StoreRegistration],
        console_log: list[logging.LogRecord]) -> None:
    client, store = settings_console
    directory = DynamoStoreDirectory(provisioned.outputs["TableName"])
    editor = _signed_in(provisioned, client, store, "keys@example.com", "editor")
    listed = _body(editor.request("get", "/console/settings/keys"))
    assert store.api_key_id in listed and store.api_key not in listed  # the store's first key, by id only
    for form in ({}, {"csrf_token": "forged"}):
        assert _status(editor.request("post", "/console/settings/keys", form)) == 403
    assert len(directory.api_keys(store.workspace_id)) == 1

    created = _body(editor.request("post", "/console/settings/keys",
                                   {"csrf_token": editor.csrf("/console/settings/keys")}))
    found = re.search(r'data-secret="api-key"', created) and re.search(r'id="issued-key" readonly value="([^"]+)"',
                                                                        created)
    assert found
    key = unescape(found.group(1))
    issued = authenticate(directory, key, NOW)
    assert issued is not None and issued.workspace_id == store.workspace_id
    again = _body(editor.request("get", "/console/settings/keys"))
    assert issued.key_id in again and key not in again  # shown once
    logged = "\n".join(str(vars(record)) for record in console_log)  # messages with their extra fields
    assert "console api key created" in logged and issued.key_id in logged and key not in logged  # never logged

    revoked = editor.request("post", "/console/settings/keys/revoke",
                             {"csrf_token": editor.csrf("/console/settings/keys"), "key_id": issued.key_id})
    assert _status(revoked) == 200 and f"Key {issued.key_id} is revoked" in _body(revoked)
    assert authenticate(directory, key, NOW) is None
    unknown = editor.request("post", "/console/settings/keys/revoke",
                             {"csrf_token": editor.csrf("/console/settings/keys"), "key_id": "key_0000"})
    assert _status(unknown) == 404 and "no API key key_0000" in _body(unknown)


def test_a_viewer_sees_the_settings_and_every_change_is_refused(
        provisioned: Provisioned, settings_console: tuple[Client, StoreRegistration]) -> None:
    client, store = settings_console
    viewer = _signed_in(provisioned, client, store, "look@example.com", "viewer")
    for page in ("", "/stores", "/keys", "/users", "/messaging", "/currency"):
        shown = viewer.request("get", f"/console/settings{page}")
        assert _status(shown) == 200 and "You are a viewer" in _body(shown), page
    keys = _body(viewer.request("get", "/console/settings/keys"))
    assert re.search(r"<button type=\"submit\" disabled>Create API key</button>", keys)
    token = viewer.csrf("/console/settings/keys")
    for path, form in (("/keys", {}), ("/keys/revoke", {"key_id": store.api_key_id}),
                       ("/users", {"email": "new@example.com", "role": "editor"}),
                       ("/users/role", {"email": "look@example.com", "role": "editor"}),
                       ("/users/disable", {"email": "look@example.com"}),
                       ("/messaging", {"from_name": "Viewer"}), ("/currency", {"reporting_currency": "EUR"}),
                       ("/stores", {"platform": "custom", "domain": "viewer.example.com"}),
                       ("/stores/rotate", {"store_id": store.store_id}),
                       ("/stores/retire", {"store_id": store.store_id})):
        refused = viewer.request("post", f"/console/settings{path}", {"csrf_token": token, **form})
        assert _status(refused) == 403 and "You are a viewer" in _body(refused), path
    directory = DynamoStoreDirectory(provisioned.outputs["TableName"])
    assert authenticate(directory, store.api_key, NOW) is not None
    assert directory.workspace_stores(store.workspace_id) == directory.workspace_stores(store.workspace_id)[:1]
    assert _users(provisioned).user("new@example.com") is None
    assert _users(provisioned).user("look@example.com").role == "viewer"  # type: ignore[union-attr]


def test_an_editor_invites_changes_a_role_and_disables_but_never_the_last_editor(
        provisioned: Provisioned, settings_console: tuple[Client, StoreRegistration]) -> None:
    client, store = settings_console
    editor = _signed_in(provisioned, client, store, "boss@example.com", "editor")
    _users(provisioned).invite("ws_elsewhere", "stranger@example.com", "editor")
    token = editor.csrf("/console/settings/users")

    def post(path: str, **form: str) -> object:
        return editor.request("post", f"/console/settings/users{path}", {"csrf_token": token, **form})

    last = post("/role", email="boss@example.com", role="viewer")
    assert _status(last) == 409 and "last editor" in _body(last)
    assert _status(post("/disable", email="boss@example.com")) == 409
    stranger = post("/disable", email="stranger@example.com")
    assert _status(stranger) == 409 and "not a user of this workspace" in _body(stranger)

    invited = post("", email="Newbie@Example.com", role="viewer")
    assert _status(invited) == 200 and "newbie@example.com is invited as viewer" in _body(invited)
    link = re.search(r'id="invitation-link" readonly value="([^"]+)"', _body(invited))
    assert link and link.group(1).startswith("http") and "/console/invitation?token=" in link.group(1)
    token_of_link = unescape(link.group(1)).split("token=", 1)[1]
    from urllib.parse import unquote
    assert invitation_of(unquote(token_of_link))[0] == "newbie@example.com"  # type: ignore[index]
    assert _status(post("", email="newbie@example.com", role="viewer")) == 400  # a user exists already
    assert _status(post("", email="not-an-address", role="viewer")) == 400

    listed = _body(editor.request("get", "/console/settings/users"))
    assert "newbie@example.com" in listed and "stranger@example.com" not in listed
    promoted = post("/role", email="newbie@example.com", role="editor")
    assert _status(promoted) == 200 and _users(provisioned).user("newbie@example.com").role == "editor"  # type: ignore[union-attr]
    disabled = post("/disable", email="boss@example.com")
    assert _status(disabled) == 200 and "boss@example.com is disabled" in _body(disabled)
    # The disabled editor's own session ends at once.
    assert _status(editor.request("get", "/console/settings/users")) == 303


def test_messaging_and_currency_are_saved_as_the_api_saves_them(
        provisioned: Provisioned, settings_console: tuple[Client, StoreRegistration]) -> None:
    from crm.adapters.currency import DynamoCurrencyStore
    from crm.adapters.flow_definitions import DynamoMessagingStore

    client, store = settings_console
    editor = _signed_in(provisioned, client, store, "sender@example.com", "editor")
    token = editor.csrf("/console/settings/messaging")
    form = {"csrf_token": token, "from_address": "hello@shop.example", "from_name": "The Shop", "reply_to": "",
            "postal_address": "1 Market St", "sms_sender": "", "time_zone": "Europe/London", "quiet_start": "21:00",
            "quiet_end": "08:00", "smart_email_hours": "12", "smart_sms_hours": "24"}
    saved = editor.request("post", "/console/settings/messaging", form)
    assert _status(saved) == 200 and "Messaging settings saved." in _body(saved)
    held = DynamoMessagingStore(provisioned.outputs["TableName"]).messaging_settings(store.workspace_id)
    assert (held.from_address, held.from_name, held.time_zone) == ("hello@shop.example", "The Shop", "Europe/London")
    assert held.smart_sending.email.total_seconds() == 12 * 3600
    wrong = editor.request("post", "/console/settings/messaging", {**form, "time_zone": "Mars/Olympus"})
    assert _status(wrong) == 400 and "time_zone" in _body(wrong)

    changed = editor.request("post", "/console/settings/currency", {"csrf_token": token, "reporting_currency": "eur",
                                                                    "rates": "GBP 1.17\nUSD 0.92"})
    assert _status(changed) == 200 and "Totals are now reported in EUR" in _body(changed)
    currency = DynamoCurrencyStore(provisioned.outputs["TableName"]).settings(store.workspace_id)
    assert currency is not None and currency.reporting_currency == "EUR" and str(currency.rates["GBP"]) == "1.17"
    assert 'data-figure="reporting-currency">EUR<' in _body(editor.request("get", "/console/settings/currency"))
    bad = editor.request("post", "/console/settings/currency", {"csrf_token": token, "reporting_currency": "EURO"})
    assert _status(bad) == 400 and "reporting_currency" in _body(bad)


def test_an_editor_adds_a_store_and_rotates_then_retires_its_webhook_secret(
        provisioned: Provisioned, settings_console: tuple[Client, StoreRegistration],
        console_log: list[logging.LogRecord]) -> None:
    from crm.models.stores import Platform

    client, store = settings_console
    table = provisioned.outputs["TableName"]
    editor = _signed_in(provisioned, client, store, "stores@example.com", "editor")
    token = editor.csrf("/console/settings/stores")

    def post(path: str, **form: str) -> object:
        return editor.request("post", f"/console/settings/stores{path}", {"csrf_token": token, **form})

    added = post("", platform="woocommerce", domain="https://Woo.Example.com/shop", webhook_secret="",
                 api_token="")
    assert _status(added) == 200 and "Store woo.example.com (woocommerce) is added." in _body(added)
    secret = unescape(re.search(r'id="webhook-secret" readonly value="([^"]+)"', _body(added)).group(1))  # type: ignore[union-attr]
    api_key = unescape(re.search(r'id="store-api-key" readonly value="([^"]+)"', _body(added)).group(1))  # type: ignore[union-attr]
    woo = DynamoStoreDirectory(table).store_by_domain(Platform.WOOCOMMERCE, "woo.example.com")
    assert woo is not None and woo.workspace_id == store.workspace_id and woo.webhook_secrets == (secret,)
    assert authenticate(DynamoStoreDirectory(table), api_key, NOW) is not None
    listed = _body(editor.request("get", "/console/settings/stores"))
    assert 'data-store="woo.example.com"' in listed and secret not in listed and api_key not in listed
    taken = post("", platform="woocommerce", domain="woo.example.com", webhook_secret="x", api_token="")
    assert _status(taken) == 400 and "already registered" in _body(taken)
    no_token = post("", platform="bigcommerce", domain="big.example.com", webhook_secret="x", api_token="")
    assert _status(no_token) == 400 and "needs an API token" in _body(no_token)

    rotated = post("/rotate", store_id=woo.store_id)
    assert _status(rotated) == 200 and "the old one still verifies" in _body(rotated)
    new = unescape(re.search(r'id="webhook-secret" readonly value="([^"]+)"', _body(rotated)).group(1))  # type: ignore[union-attr]
    # A container reading the vault afresh (each does within its minute's cache) verifies with both, then the newest.
    assert DynamoStoreDirectory(table).store_by_domain(Platform.WOOCOMMERCE, "woo.example.com").webhook_secrets == (  # type: ignore[union-attr]
        secret, new)
    retired = post("/retire", store_id=woo.store_id)
    assert _status(retired) == 200 and "1 older secret retired" in _body(retired)
    assert DynamoStoreDirectory(table).store_by_domain(Platform.WOOCOMMERCE, "woo.example.com").webhook_secrets == (  # type: ignore[union-attr]
        new,)
    # Another workspace's store is not this workspace's to rotate.
    other = DynamoStoreDirectory(table)
    from crm.stores import register_store

    stranger = register_store(other, Platform.SHOPIFY, "stranger.myshopify.com", "theirs", NOW)
    refused = post("/rotate", store_id=stranger.store_id)
    assert _status(refused) == 409 and "no store" in _body(refused)
    assert other.store_by_domain(Platform.SHOPIFY, "stranger.myshopify.com").webhook_secrets == ("theirs",)  # type: ignore[union-attr]
    logged = "\n".join(str(vars(record)) for record in console_log)
    assert "console store added" in logged and secret not in logged and new not in logged and api_key not in logged
