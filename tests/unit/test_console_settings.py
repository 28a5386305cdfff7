"""The Settings pages' rules (crm.console.settings), without AWS: the workspace keeps an editor whatever is changed,
and the messaging and currency forms become the documents the API's parsers judge."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from crm import reporting
from crm.adapters.users import ConsoleUser, Invitation
from crm.console import settings
from crm.console.session import Role
from crm.messaging.manage import parse_settings
from crm.models.messaging import MessagingSettings
from hypothesis import given
from hypothesis import strategies as st


class Pool:
    """The WorkspaceUsers port over a dict, as Cognito would hold them (several workspaces in one pool)."""

    def __init__(self, users: list[ConsoleUser]) -> None:
        self.users = {u.email: u for u in users}

    def workspace_users(self, workspace_id: str) -> list[ConsoleUser]:
        return sorted((u for u in self.users.values() if u.workspace_id == workspace_id), key=lambda u: u.email)

    def invite(self, workspace_id: str, email: str, role: Role) -> Invitation:
        self.users[email] = ConsoleUser(email, workspace_id, role)
        return Invitation(self.users[email], "Temporary-1")

    def set_role(self, email: str, role: Role) -> None:
        self.users[email] = replace(self.users[email], role=role)

    def disable(self, email: str) -> None:
        self.users[email] = replace(self.users[email], enabled=False)


def _editors(pool: Pool, workspace_id: str) -> list[str]:
    return [u.email for u in pool.workspace_users(workspace_id) if u.enabled and u.role == "editor"]


def test_the_last_editor_is_neither_demoted_nor_disabled_while_another_one_may_be() -> None:
    pool = Pool([ConsoleUser("ed@x.example", "ws_1", "editor"), ConsoleUser("vi@x.example", "ws_1", "viewer"),
                 ConsoleUser("other@x.example", "ws_2", "editor")])
    with pytest.raises(settings.SettingRefused, match="last editor"):
        settings.change_role(pool, "ws_1", "ed@x.example", "viewer")
    with pytest.raises(settings.SettingRefused, match="last editor"):
        settings.disable(pool, "ws_1", "ed@x.example")
    # Another workspace's editor does not count, and is not this workspace's to change.
    with pytest.raises(settings.SettingRefused, match="not a user of this workspace"):
        settings.disable(pool, "ws_1", "other@x.example")
    assert settings.change_role(pool, "ws_1", "vi@x.example", "editor").role == "editor"
    assert settings.disable(pool, "ws_1", "ed@x.example").enabled is False
    assert _editors(pool, "ws_1") == ["vi@x.example"]


def test_an_invitation_needs_an_address_and_a_known_role() -> None:
    pool = Pool([])
    assert settings.invite(pool, "ws_1", "  Ada@Example.com ", "viewer").user == ConsoleUser("ada@example.com", "ws_1",
                                                                                           "viewer")
    with pytest.raises(settings.SettingRefused, match="email"):
        settings.invite(pool, "ws_1", "ada", "viewer")
    with pytest.raises(settings.SettingRefused, match="role"):
        settings.invite(pool, "ws_1", "bob@example.com", "owner")
    with pytest.raises(settings.SettingRefused, match="role"):
        settings.change_role(pool, "ws_1", "ada@example.com", "admin")


EMAILS = [f"u{n}@x.example" for n in range(4)]
users = st.lists(st.tuples(st.sampled_from(("viewer", "editor")), st.booleans()), min_size=4, max_size=4)
changes = st.lists(st.tuples(st.sampled_from(EMAILS), st.sampled_from(("viewer", "editor", "disable"))), max_size=12)


@given(users, changes)
def test_a_workspace_with_an_editor_keeps_one_whatever_is_changed(
        start: list[tuple[Role, bool]], steps: list[tuple[str, str]]) -> None:
    pool = Pool([ConsoleUser(email, "ws_1", role, enabled)
                 for email, (role, enabled) in zip(EMAILS, start, strict=True)])
    had_editor = bool(_editors(pool, "ws_1"))
    for email, change in steps:
        try:
            if change == "disable":
                settings.disable(pool, "ws_1", email)
            else:
                settings.change_role(pool, "ws_1", email, change)
        except settings.SettingRefused:
            pass
        assert bool(_editors(pool, "ws_1")) >= had_editor


def test_the_messaging_form_keeps_what_it_does_not_show_and_the_api_parser_judges_it() -> None:
    held = MessagingSettings(from_address="old@shop.example", attribution={"email_click": "P3D"})  # type: ignore[arg-type]
    form = {"from_address": " new@shop.example ", "from_name": "", "reply_to": "", "postal_address": "1 Main St",
            "sms_sender": "", "time_zone": "Europe/Paris", "quiet_start": "22:00", "quiet_end": "07:30",
            "smart_email_hours": "12", "smart_sms_hours": "1.5"}
    parsed = parse_settings(settings.messaging_document(held.model_dump(mode="json"), form))
    assert (parsed.from_address, parsed.from_name, parsed.postal_address, parsed.time_zone) == (
        "new@shop.example", None, "1 Main St", "Europe/Paris")
    assert (parsed.quiet_hours.start, parsed.quiet_hours.end) == ("22:00", "07:30")
    assert (parsed.smart_sending.email, parsed.smart_sending.sms) == (timedelta(hours=12), timedelta(minutes=90))
    assert parsed.attribution == held.attribution
    assert settings.hours(parsed.smart_sending.sms) == "1.5" and settings.hours(parsed.smart_sending.email) == "12"
    with pytest.raises(settings.SettingRefused, match=r"smart_sending\.email"):
        settings.messaging_document({}, {"smart_email_hours": "soon"})


def test_the_currency_form_is_the_api_document_one_rate_a_line() -> None:
    document = settings.currency_document({"reporting_currency": " eur ", "rates": "usd 0.92\n\nGBP=1.17\n"})
    request = reporting.parse_settings(json.dumps(document))
    assert request.reporting_currency == "EUR" and {c: str(r) for c, r in request.rates.items()} == {
        "USD": "0.92", "GBP": "1.17"}
    with pytest.raises(settings.SettingRefused, match="line 1"):
        settings.currency_document({"reporting_currency": "EUR", "rates": "USD"})
    with pytest.raises(reporting.CurrencySettingsInvalid, match="reporting_currency"):
        reporting.parse_settings(json.dumps(settings.currency_document({"reporting_currency": "EURO"})))
