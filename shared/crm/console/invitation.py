"""The invitation link `crm users add` prints: the user's email and the temporary password Cognito holds for
them, which the invitation page spends on the password the user chooses (Cognito's NEW_PASSWORD_REQUIRED).
It is as secret as the temporary password, as an email from Cognito with it would be; it works once, and not
after the pool's temporary password validity (template.yaml ConsoleUserPool)."""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import quote

MAX_TOKEN_LENGTH = 1024


def invitation_token(email: str, temporary_password: str) -> str:
    text = json.dumps({"email": email, "code": temporary_password}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def invitation_of(token: str | None) -> tuple[str, str] | None:
    """(email, temporary password) of a token, None for one this console did not make."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("email"), str) or not isinstance(data.get("code"), str):
        return None
    return data["email"], data["code"]


def invitation_url(console_url: str, token: str) -> str:
    return f"{console_url.rstrip('/')}/invitation?token={quote(token)}"
