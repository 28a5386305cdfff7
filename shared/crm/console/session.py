"""The console's session cookie and CSRF tokens: plain functions over a signing key, no AWS.

A session is a signed, expiring claim (who, which workspace, which role, until when) kept in an HttpOnly,
Secure, SameSite=Strict cookie; the server checks its signature and expiry on every request, and the console
function also checks the user still exists and is enabled (crm.adapters.users), so a disabled user or a changed
role counts from the next request. A CSRF token is an HMAC of the session's (or a visitor's) random id, so a form
can only be posted by a page the server rendered for that browser: a token is worthless in another browser.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crm.clock import UtcDateTime
from crm.messaging.unsubscribe import SigningKeys

Role = Literal["viewer", "editor"]
ROLES: tuple[Role, ...] = ("viewer", "editor")
SESSION_COOKIE = "crm_console_session"
# A browser that has not signed in yet gets a visitor id, so the sign-in form has a CSRF token too.
VISITOR_COOKIE = "crm_console_visitor"
SESSION_LIFETIME = timedelta(hours=8)
VISITOR_LIFETIME = timedelta(hours=1)
MAX_COOKIE_LENGTH = 2048


class Session(BaseModel):
    """Who is signed in. ``session_id`` is random: the CSRF tokens of this session derive from it."""

    model_config = ConfigDict(frozen=True)

    session_id: str = Field(min_length=16)
    email: str
    workspace_id: str
    role: Role
    expires_at: UtcDateTime

    @property
    def can_change(self) -> bool:
        """A viewer changes nothing; an editor may save segments and the rest the console offers."""
        return self.role == "editor"


class Visitor(BaseModel):
    model_config = ConfigDict(frozen=True)

    visitor_id: str = Field(min_length=16)
    expires_at: UtcDateTime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, purpose: str, text: str) -> bytes:
    return hmac.new(key, f"crm-console-{purpose}:{text}".encode(), hashlib.sha256).digest()


def _seal(purpose: str, claims: BaseModel, keys: SigningKeys) -> str:
    body = _b64(json.dumps(claims.model_dump(mode="json"), separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_b64(_mac(keys.current, purpose, body))}"


def _opened(purpose: str, value: str | None, keys: SigningKeys) -> bytes | None:
    """The signed body of a cookie value, if any current or previous key signed it."""
    if not value or len(value) > MAX_COOKIE_LENGTH or value.count(".") != 1:
        return None
    body, signature = value.split(".")
    try:
        given = _unb64(signature)
        if not any(hmac.compare_digest(given, _mac(key, purpose, body)) for key in (keys.current, *keys.previous)):
            return None
        return _unb64(body)
    except ValueError:  # not base64 (binascii.Error is a ValueError)
        return None


def new_session(email: str, workspace_id: str, role: Role, now: datetime) -> Session:
    return Session(session_id=secrets.token_urlsafe(24), email=email, workspace_id=workspace_id, role=role,
                   expires_at=now + SESSION_LIFETIME)


def new_visitor(now: datetime) -> Visitor:
    return Visitor(visitor_id=secrets.token_urlsafe(24), expires_at=now + VISITOR_LIFETIME)


def seal_session(session: Session, keys: SigningKeys) -> str:
    return _seal("session", session, keys)


def seal_visitor(visitor: Visitor, keys: SigningKeys) -> str:
    return _seal("visitor", visitor, keys)


def open_session(value: str | None, keys: SigningKeys, now: datetime) -> Session | None:
    """The session a cookie carries; None when absent, tampered, signed by an unknown key or expired."""
    body = _opened("session", value, keys)
    try:
        session = Session.model_validate_json(body) if body else None
    except ValidationError:
        return None
    return session if session is not None and now < session.expires_at else None


def open_visitor(value: str | None, keys: SigningKeys, now: datetime) -> Visitor | None:
    body = _opened("visitor", value, keys)
    try:
        visitor = Visitor.model_validate_json(body) if body else None
    except ValidationError:
        return None
    return visitor if visitor is not None and now < visitor.expires_at else None


def csrf_token(holder_id: str, keys: SigningKeys) -> str:
    """The CSRF token of the forms rendered for a session's (or visitor's) id."""
    return _b64(_mac(keys.current, "csrf", holder_id))


def csrf_valid(token: str | None, holder_id: str, keys: SigningKeys) -> bool:
    """Whether a posted token was rendered for this id (by the current or a previous key)."""
    if not token:
        return False
    try:
        given = _unb64(token)
    except ValueError:
        return False
    return any(hmac.compare_digest(given, _mac(key, "csrf", holder_id)) for key in (keys.current, *keys.previous))


def cookie(name: str, value: str, path: str, expires_at: datetime | None, now: datetime) -> str:
    """A Set-Cookie value: HttpOnly (no script reads it), Secure (HTTPS only; browsers allow it on localhost),
    SameSite=Strict (no other site's page sends it). ``expires_at`` None clears the cookie."""
    max_age = 0 if expires_at is None else max(0, int((expires_at - now).total_seconds()))
    return f"{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"


def read_cookies(header: str | None) -> dict[str, str]:
    """The cookies of a Cookie header (the first of a repeated name)."""
    found: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name and name not in found:
            found[name] = value
    return found
