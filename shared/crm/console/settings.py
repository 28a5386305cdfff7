"""The console's Settings pages (docs/console.md): the workspace's API keys, users, messaging and currency, through
the same domain code the API and the CLI use (no AWS here). Each refusal is a SettingRefused whose message says
what to do."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from crm.adapters.users import ConsoleUser, Invitation
from crm.console.session import ROLES, Role
from crm.models.stores import Platform, Store, StoreRegistration
from crm.ports import SecretVault, StoreDirectory
from crm.stores import normalise_domain, register_store, retire_webhook_secrets, rotate_webhook_secret

# What the console checks of an address before Cognito sees it (the pool keeps it as the user's name).
EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# The messaging settings the Messaging page edits: the sender, its rules and Smart Sending's windows in hours.
SENDER_FIELDS = ("from_address", "from_name", "reply_to", "postal_address", "sms_sender", "time_zone")


class SettingRefused(ValueError):
    """A change the settings pages refuse; the message names the problem."""


class WorkspaceUsers(Protocol):
    def workspace_users(self, workspace_id: str) -> list[ConsoleUser]: ...

    def invite(self, workspace_id: str, email: str, role: Role) -> Invitation: ...

    def set_role(self, email: str, role: Role) -> None: ...

    def disable(self, email: str) -> None: ...


def role_of(text: str) -> Role:
    for role in ROLES:
        if text == role:
            return role
    raise SettingRefused(f"role: choose one of {', '.join(ROLES)}")


def invite(users: WorkspaceUsers, workspace_id: str, email: str, role: str) -> Invitation:
    """A new user of the workspace with a temporary password, as `crm users add` makes one (UserExists if the
    address has a user, in this workspace or another)."""
    address = email.strip().lower()
    if not EMAIL_SHAPE.fullmatch(address):
        raise SettingRefused("email: type the address the user signs in with, like ada@example.com")
    return users.invite(workspace_id, address, role_of(role))


def _member(listed: list[ConsoleUser], email: str) -> ConsoleUser:
    for user in listed:
        if user.email == email:
            return user
    raise SettingRefused(f"{email} is not a user of this workspace")


def _still_an_editor(listed: list[ConsoleUser], changed: ConsoleUser) -> None:
    """Refuse a change after which no enabled user of the workspace could change anything (nobody in the console
    could give the editor role back: only an operator's `aws cognito-idp` could)."""
    editors = [u for u in listed if u.enabled and u.role == "editor" and u.email != changed.email]
    if not editors and changed.enabled and changed.role == "editor":
        raise SettingRefused(f"{changed.email} is the workspace's last editor: make another user an editor first")


def change_role(users: WorkspaceUsers, workspace_id: str, email: str, role: str) -> ConsoleUser:
    chosen = role_of(role)
    listed = users.workspace_users(workspace_id)
    user = _member(listed, email)
    if chosen != "editor":
        _still_an_editor(listed, user)
    users.set_role(user.email, chosen)
    return ConsoleUser(user.email, workspace_id, chosen, user.enabled)


def disable(users: WorkspaceUsers, workspace_id: str, email: str) -> ConsoleUser:
    listed = users.workspace_users(workspace_id)
    user = _member(listed, email)
    _still_an_editor(listed, user)
    users.disable(user.email)
    return ConsoleUser(user.email, workspace_id, user.role, enabled=False)


def messaging_document(held: Mapping[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
    """The PUT /settings/messaging document a Messaging form describes: the held settings with the form's sender
    fields (blank: none), quiet hours and Smart Sending windows (hours) in place; the API's parser judges it."""
    document = {**held}
    for name in SENDER_FIELDS:
        if name in form:
            document[name] = form[name].strip() or None
    if not document.get("time_zone"):
        document["time_zone"] = "UTC"
    if "quiet_start" in form or "quiet_end" in form:
        document["quiet_hours"] = {"start": form.get("quiet_start", "").strip(),
                                   "end": form.get("quiet_end", "").strip()}
    windows = {}
    for channel in ("email", "sms"):
        text = form.get(f"smart_{channel}_hours")
        if text is None:
            continue
        try:
            hours = float(text.strip())
        except ValueError:
            raise SettingRefused(f"smart_sending.{channel}: type a number of hours, like 16") from None
        if not 0 <= hours <= 24 * 30:
            raise SettingRefused(f"smart_sending.{channel}: between 0 and 720 hours")
        windows[channel] = timedelta(hours=hours).total_seconds()
    if windows:
        document["smart_sending"] = {**(held.get("smart_sending") or {}), **windows}
    return document


def hours(window: Any) -> str:
    """A Smart Sending window as the form shows it: hours, without a needless ``.0``."""
    seconds = window.total_seconds() if isinstance(window, timedelta) else float(window)
    figure = seconds / 3600
    return f"{figure:g}"


def currency_document(form: Mapping[str, str]) -> dict[str, Any]:
    """The PUT /settings/currency document of a Currency form: the reporting currency and one rate a line
    (``EUR 1.10``: one EUR is 1.10 of the reporting currency)."""
    rates: dict[str, str] = {}
    for number, line in enumerate(form.get("rates", "").splitlines(), start=1):
        parts = line.replace("=", " ").split()
        if not parts:
            continue
        if len(parts) != 2:
            raise SettingRefused(f"rates, line {number}: write a currency and its rate, like EUR 1.10")
        rates[parts[0].upper()] = parts[1]
    return {"reporting_currency": form.get("reporting_currency", "").strip().upper(), "rates": rates}


# --- stores ------------------------------------------------------------------------------------------


def add_store(directory: StoreDirectory, workspace_id: str, platform: str, domain: str, webhook_secret: str,
              api_token: str, now: datetime) -> tuple[StoreRegistration, str]:
    """A store registered in the workspace as `crm store add --workspace` registers it, and the webhook secret it
    verifies with: the platform's (typed in) or, left blank, a new random one to paste into the platform."""
    try:
        chosen = Platform(platform)
    except ValueError:
        raise SettingRefused(f"platform: choose one of {', '.join(p.value for p in Platform)}") from None
    host = normalise_domain(domain)
    if "." not in host or any(c.isspace() for c in host):
        raise SettingRefused("domain: type the store's host, like shop.example.com")
    secret = webhook_secret.strip() or secrets.token_urlsafe(32)
    try:
        registration = register_store(directory, chosen, host, secret, now, api_token or None,
                                      workspace_id=workspace_id)
    except ValueError as refused:  # taken domain, a BigCommerce store without its token
        raise SettingRefused(str(refused)) from None
    return registration, secret


def _own_store(directory: StoreDirectory, workspace_id: str, store_id: str) -> Store:
    for store in directory.workspace_stores(workspace_id):
        if store.store_id == store_id:
            return store
    raise SettingRefused(f"this workspace has no store {store_id}")


def rotate_secret(directory: StoreDirectory, vault: SecretVault, workspace_id: str, store_id: str,
                  new_secret: str) -> tuple[Store, str]:
    """A new webhook secret beside the store's current ones (the platform's, or a new random one): both verify
    until ``retire_secrets`` (docs/security.md)."""
    store = _own_store(directory, workspace_id, store_id)
    return store, rotate_webhook_secret(vault, store.store_id, new_secret.strip() or None)


def retire_secrets(directory: StoreDirectory, vault: SecretVault, workspace_id: str, store_id: str) -> tuple[
        Store, int]:
    """Only the newest webhook secret verifies from now on (each container within its minute's cache)."""
    store = _own_store(directory, workspace_id, store_id)
    return store, retire_webhook_secrets(vault, store.store_id)
