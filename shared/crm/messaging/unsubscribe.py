"""Signed links in emails: unsubscribe (one-click, RFC 8058) and confirm a subscribe (double opt-in).

No login: the link itself proves that whoever follows it received the email at ``address``. A token is

    <key id>.<claims: base64url JSON>.<HMAC-SHA256 of "<key id>.<claims>": base64url>

URL-safe, compared in constant time. The claims carry the purpose, workspace, profile id, the address the
email went to, the channel, the store (the statement's store when it is applied) and the issue time; a flow
email's unsubscribe link also names its flow, run and step, so the unsubscribe is counted on that step
(crm.messaging.feedback.apply_link_followed). Absent claims are left out of the token, so links signed before
they existed read the same.

The key comes from a Secrets Manager secret (template.yaml ``LinkSigningSecret``, generated at deploy). Its
key id is derived from the key itself, so rotating the secret needs no bookkeeping: new links are signed
with the current version and links already in inboxes still verify with the previous version
(AWSPREVIOUS) until the next rotation. An unsubscribe link never expires (an old email must still let its
reader out); a confirmation link does after ``CONFIRM_MAX_AGE``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crm.models.consent import Channel

CONFIRM_MAX_AGE = timedelta(days=30)
MAX_TOKEN_LENGTH = 2048


class LinkPurpose(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    CONFIRM = "confirm"


class LinkInvalid(ValueError):
    """A token that is malformed (``status`` 400) or not ours: tampered, signed by an unknown key,
    expired, or for another purpose (404: the link does not exist as far as anyone outside is concerned)."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


class LinkClaims(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    purpose: LinkPurpose = Field(alias="p")
    workspace_id: str = Field(alias="w", min_length=1)
    profile_id: str = Field(alias="i", min_length=1)
    address: str = Field(alias="a", min_length=1)
    channel: Channel = Field(alias="c")
    store_id: str = Field(alias="s", min_length=1)
    issued_at: int = Field(alias="t", ge=0)  # Unix seconds
    # The flow message the link is in (None in a double opt-in email, or a link signed before issue 11).
    flow_id: str | None = Field(default=None, alias="f", min_length=1)
    run_id: str | None = Field(default=None, alias="r", min_length=1)
    step_id: str | None = Field(default=None, alias="st", min_length=1)

    @property
    def issued(self) -> datetime:
        return datetime.fromtimestamp(self.issued_at, UTC)


def key_id(key: bytes) -> str:
    """A key's public name: the first 8 hex digits of its SHA-256 (the key cannot be derived from it)."""
    return hashlib.sha256(b"crm-link-key:" + key).hexdigest()[:8]


@dataclass(frozen=True)
class SigningKeys:
    """The current key (signs) and the previous ones (still verify), by their key id."""

    current: bytes
    previous: Sequence[bytes] = ()

    def __post_init__(self) -> None:
        if len(self.current) < 16:
            raise ValueError("a link signing key needs at least 16 bytes")

    def by_id(self, kid: str) -> bytes | None:
        for key in (self.current, *self.previous):
            if hmac.compare_digest(key_id(key), kid):
                return key
        return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, signed: str) -> bytes:
    return hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest()


def sign(claims: LinkClaims, keys: SigningKeys) -> str:
    kid = key_id(keys.current)
    body = _b64(json.dumps(claims.model_dump(by_alias=True, mode="json", exclude_none=True), separators=(",", ":"),
                           sort_keys=True).encode())
    signed = f"{kid}.{body}"
    return f"{signed}.{_b64(_mac(keys.current, signed))}"


def verify(token: str, keys: SigningKeys, purpose: LinkPurpose, now: datetime) -> LinkClaims:
    """The token's claims; LinkInvalid when it is malformed, tampered, unknown, expired or for another purpose."""
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise LinkInvalid("this link is malformed; copy the whole link from the email", 400)
    kid, body, signature = token.split(".")
    key = keys.by_id(kid)
    try:
        given = _unb64(signature)
    except (binascii.Error, ValueError):
        raise LinkInvalid("this link is malformed; copy the whole link from the email", 400) from None
    # The signature's own spelling must be the canonical one: base64 ignores a last character's spare bits,
    # and a token that still verifies after a character changed would make "tampered" ambiguous.
    if key is None or _b64(given) != signature or not hmac.compare_digest(_mac(key, f"{kid}.{body}"), given):
        raise LinkInvalid("this link is not valid (it was changed, or is not one of ours)")
    try:
        claims = LinkClaims.model_validate_json(_unb64(body))
    except (binascii.Error, ValueError, ValidationError):
        raise LinkInvalid("this link is malformed", 400) from None
    if claims.purpose is not purpose:
        raise LinkInvalid(f"this is not a {purpose.value} link")
    if purpose is LinkPurpose.CONFIRM and now - claims.issued > CONFIRM_MAX_AGE:
        raise LinkInvalid("this confirmation link has expired; subscribe again to get a new one", 410)
    return claims


def link_url(base_url: str, purpose: LinkPurpose, token: str) -> str:
    """``https://<public API>/unsubscribe/<token>`` (or /confirm/)."""
    return f"{base_url.rstrip('/')}/{purpose.value}/{quote(token, safe='.-_')}"


@dataclass(frozen=True)
class LinkOrigin:
    """The flow message a link is in."""

    flow_id: str
    run_id: str
    step_id: str


def claims_for(purpose: LinkPurpose, workspace_id: str, profile_id: str, address: str, channel: Channel,
               store_id: str, at: datetime, origin: LinkOrigin | None = None) -> LinkClaims:
    return LinkClaims(purpose=purpose, workspace_id=workspace_id, profile_id=profile_id, address=address,
                      channel=channel, store_id=store_id, issued_at=int(at.timestamp()),
                      flow_id=origin.flow_id if origin else None, run_id=origin.run_id if origin else None,
                      step_id=origin.step_id if origin else None)


@dataclass(frozen=True)
class Links:
    """Makes the signed links of one email: ``base_url`` is the public API (config PUBLIC_API_URL)."""

    keys: SigningKeys
    base_url: str

    def url(self, purpose: LinkPurpose, workspace_id: str, profile_id: str, address: str, channel: Channel,
            store_id: str, at: datetime, origin: LinkOrigin | None = None) -> str:
        claims = claims_for(purpose, workspace_id, profile_id, address, channel, store_id, at, origin)
        return link_url(self.base_url, purpose, sign(claims, self.keys))


__all__ = [
    "CONFIRM_MAX_AGE", "LinkClaims", "LinkInvalid", "LinkOrigin", "LinkPurpose", "Links", "SigningKeys", "claims_for",
    "key_id", "link_url", "sign", "verify",
]
