"""The console's session cookie and CSRF tokens (crm.console.session): signed, expiring, bound to one session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm.console import session as sessions
from crm.console.invitation import invitation_of, invitation_token, invitation_url
from crm.messaging.unsubscribe import SigningKeys
from hypothesis import given
from hypothesis import strategies as st

NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
KEYS = SigningKeys(current=b"k" * 32)
ROTATED = SigningKeys(current=b"n" * 32, previous=(b"k" * 32,))
OTHER = SigningKeys(current=b"x" * 32)


def _sealed(role: sessions.Role = "viewer") -> tuple[sessions.Session, str]:
    session = sessions.new_session("ada@example.com", "ws_1", role, NOW)
    return session, sessions.seal_session(session, KEYS)


def test_a_sealed_session_opens_as_itself_until_it_expires() -> None:
    session, sealed = _sealed()
    assert sessions.open_session(sealed, KEYS, NOW) == session
    assert sessions.open_session(sealed, KEYS, NOW + sessions.SESSION_LIFETIME - timedelta(seconds=1)) == session
    assert sessions.open_session(sealed, KEYS, NOW + sessions.SESSION_LIFETIME) is None


def test_a_session_opens_with_the_previous_key_after_a_rotation_but_not_with_another() -> None:
    session, sealed = _sealed()
    assert sessions.open_session(sealed, ROTATED, NOW) == session
    assert sessions.open_session(sealed, OTHER, NOW) is None


def test_a_session_whose_claims_were_changed_does_not_open() -> None:
    _, sealed = _sealed("viewer")
    body, signature = sealed.split(".")
    promoted = sessions.seal_session(sessions.new_session("ada@example.com", "ws_1", "editor", NOW), KEYS)
    assert sessions.open_session(f"{promoted.split('.')[0]}.{signature}", KEYS, NOW) is None
    assert sessions.open_session(f"{body}.{signature[:-2]}AA", KEYS, NOW) is None


@given(st.text(max_size=300))
def test_no_cookie_value_but_a_sealed_one_opens(value: str) -> None:
    assert sessions.open_session(value, KEYS, NOW) is None
    assert sessions.open_visitor(value, KEYS, NOW) is None


def test_a_visitor_cookie_is_no_session_and_a_session_no_visitor_cookie() -> None:
    visitor = sessions.new_visitor(NOW)
    sealed_visitor = sessions.seal_visitor(visitor, KEYS)
    assert sessions.open_visitor(sealed_visitor, KEYS, NOW) == visitor
    assert sessions.open_session(sealed_visitor, KEYS, NOW) is None
    _, sealed = _sealed()
    assert sessions.open_visitor(sealed, KEYS, NOW) is None


def test_a_csrf_token_is_valid_for_its_session_only() -> None:
    mine, theirs = sessions.new_session("a@example.com", "ws_1", "editor", NOW), \
        sessions.new_session("b@example.com", "ws_1", "editor", NOW)
    token = sessions.csrf_token(mine.session_id, KEYS)
    assert sessions.csrf_valid(token, mine.session_id, KEYS)
    assert sessions.csrf_valid(token, mine.session_id, ROTATED)  # a rotation does not void open forms
    assert not sessions.csrf_valid(token, theirs.session_id, KEYS)
    assert not sessions.csrf_valid(token, mine.session_id, OTHER)
    for missing in (None, "", "not base64 !", token[:-4]):
        assert not sessions.csrf_valid(missing, mine.session_id, KEYS)


def test_only_an_editor_can_change() -> None:
    assert [sessions.new_session("a@example.com", "ws_1", role, NOW).can_change for role in sessions.ROLES] == \
        [False, True]


def test_the_cookie_is_http_only_secure_strict_and_expires_with_the_session() -> None:
    session, sealed = _sealed()
    header = sessions.cookie(sessions.SESSION_COOKIE, sealed, "/v1/console", session.expires_at, NOW)
    assert header == (f"crm_console_session={sealed}; Path=/v1/console; Max-Age=28800; HttpOnly; Secure; "
                      "SameSite=Strict")
    assert "Max-Age=0;" in sessions.cookie(sessions.SESSION_COOKIE, "", "/console", None, NOW)


def test_cookies_are_read_from_the_header_first_name_first() -> None:
    assert sessions.read_cookies("a=1; crm_console_session=x.y; a=2") == {"a": "1", "crm_console_session": "x.y"}
    assert sessions.read_cookies(None) == {}


@given(st.emails(), st.text(min_size=1, max_size=40))
def test_an_invitation_token_carries_its_email_and_temporary_password(email: str, code: str) -> None:
    assert invitation_of(invitation_token(email, code)) == (email, code)


def test_a_mangled_invitation_token_is_not_recognised() -> None:
    for token in (None, "", "not-base64!", invitation_token("a@example.com", "x")[:-3], "e30"):
        assert invitation_of(token) is None
    url = invitation_url("http://127.0.0.1:8000/console/", "ab+c")
    assert url == "http://127.0.0.1:8000/console/invitation?token=ab%2Bc"
