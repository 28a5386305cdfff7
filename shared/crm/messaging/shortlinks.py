"""Short links in flow SMS, so an SMS click is known and can earn the message an order (docs/deliverability.md
"SMS clicks").

SNS tracks no clicks. Each link an SMS template renders is replaced by ``<public API>/r/<code>`` before the
message is sent; the public track function answers ``GET /r/<code>`` with a 302 to the original link and tells
the flows function that the message was clicked (crm.messaging.feedback.apply_link_followed).

The code is 16 characters of base64url HMAC-SHA256 (96 bits) of the workspace, run, step and link under the
link signing key: nobody without the key can make one, guessing one is hopeless, and composing the same SMS
again (a retried delivery) makes the same code. The original link is stored under the code
(crm.adapters.keys.short_link), never carried in the URL: a text message stays short.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from crm.clock import UtcDateTime
from crm.flows.inbox import LinkFollowed
from crm.messaging.unsubscribe import LinkClaims, LinkOrigin, SigningKeys
from crm.models.consent import Channel
from crm.models.flow_stats import MessageEventType

SHORT_LINK_PATH = "r"
CODE_LENGTH = 16
CODE = re.compile(rf"^[A-Za-z0-9_-]{{{CODE_LENGTH}}}$")
# A link in a text message: up to the first space or quote; punctuation ending a sentence is not part of it.
_LINK = re.compile(r"https?://[^\s<>\"']+")
_TRAILING = ".,;:!?)]}"
# Apps that fetch a link to preview it in the conversation: a fetch of theirs is no shopper's click.
PREVIEW_AGENTS = ("facebookexternalhit", "twitterbot", "whatsapp", "telegrambot", "slackbot", "discordbot",
                  "googlebot", "bingbot", "skypeuripreview")


class ShortLink(BaseModel):
    """One short link: where it goes and the flow message it is in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=CODE.pattern)
    url: str = Field(min_length=1, max_length=2048)
    workspace_id: str
    profile_id: str
    flow_id: str
    run_id: str
    step_id: str
    created_at: UtcDateTime


class ShortLinks(Protocol):
    """Short links by code (crm.adapters.links.DynamoShortLinks)."""

    def save(self, link: ShortLink) -> None:
        """Store it (the same code stores the same link: a second save changes nothing)."""
        ...

    def get(self, code: str) -> ShortLink | None: ...


def short_code(key: bytes, workspace_id: str, run_id: str, step_id: str, url: str) -> str:
    mac = hmac.new(key, f"short-link\n{workspace_id}\n{run_id}\n{step_id}\n{url}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode("ascii")[:CODE_LENGTH]


def links_in(text: str) -> list[str]:
    """The http(s) links of a text, in order, without a sentence's closing punctuation."""
    return [match.group(0).rstrip(_TRAILING) for match in _LINK.finditer(text)]


@dataclass(frozen=True)
class SmsLinks:
    """Rewrites an SMS's links to short ones (``base_url``: the public API, config PUBLIC_API_URL)."""

    keys: SigningKeys
    base_url: str
    store: ShortLinks

    def rewrite(self, body: str, workspace_id: str, profile_id: str, origin: LinkOrigin, now: datetime) -> str:
        def shorten(match: re.Match[str]) -> str:
            found = match.group(0)
            url = found.rstrip(_TRAILING)
            code = short_code(self.keys.current, workspace_id, origin.run_id, origin.step_id, url)
            self.store.save(ShortLink(code=code, url=url, workspace_id=workspace_id, profile_id=profile_id,
                                      flow_id=origin.flow_id, run_id=origin.run_id, step_id=origin.step_id,
                                      created_at=now))
            return f"{self.base_url.rstrip('/')}/{SHORT_LINK_PATH}/{code}{found[len(url):]}"

        return _LINK.sub(shorten, body)


class LinkNotices(Protocol):
    """Where the public track function notes a flow message's followed link (crm.adapters.links.SqsLinkNotices:
    the flows queue)."""

    def notify(self, notice: LinkFollowed) -> None: ...


def is_preview(user_agent: str | None) -> bool:
    agent = (user_agent or "").lower()
    return any(name in agent for name in PREVIEW_AGENTS)


def clicked(link: ShortLink, now: datetime) -> LinkFollowed:
    return LinkFollowed(type=MessageEventType.CLICKED, channel="sms", workspace_id=link.workspace_id,
                        profile_id=link.profile_id, flow_id=link.flow_id, run_id=link.run_id, step_id=link.step_id,
                        issued_at=link.created_at, at=now, link=link.url)


def unsubscribed(claims: LinkClaims, now: datetime) -> LinkFollowed | None:
    """The unsubscribe of a flow email, to count on its step (None for a link that names no flow message)."""
    if claims.flow_id is None or claims.run_id is None or claims.step_id is None or claims.channel != Channel.EMAIL:
        return None
    return LinkFollowed(type=MessageEventType.UNSUBSCRIBED, channel="email", workspace_id=claims.workspace_id,
                        profile_id=claims.profile_id, flow_id=claims.flow_id, run_id=claims.run_id,
                        step_id=claims.step_id, issued_at=claims.issued, at=now)
