"""Marketing consent: per channel, with where it came from and when.

Consent is a legal record (docs/consent.md). A statement from a signed source (a platform's webhook,
a custom store's signed /events, an import) is authoritative; a statement from the public /track API
(an unauthenticated browser) may withdraw consent but never grants it: a subscribe from a browser is
kept as a ConsentRequest until the shopper confirms it (double opt-in).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from crm.clock import UtcDateTime

# Sources of the storefront tracker (crm.tracking): "track:identify", "track:page_viewed", ...
BROWSER_SOURCE_PREFIX = "track:"


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class ConsentState(StrEnum):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    NOT_SUBSCRIBED = "not_subscribed"


class Consent(BaseModel):
    """One statement of consent; for each channel the latest statement wins, whatever the arrival order,
    except that a browser's statement can never grant (crm.consent)."""

    model_config = ConfigDict(frozen=True)

    channel: Channel
    state: ConsentState
    source: str  # e.g. "shopify:customers/update", "track:identify", "import:customers.csv", "double_opt_in"
    at: UtcDateTime

    @property
    def from_browser(self) -> bool:
        """Stated through the public /track API: nobody vouches for who sent it."""
        return self.source.startswith(BROWSER_SOURCE_PREFIX)

    def sort_key(self) -> tuple[str, str, str]:
        return (self.at.isoformat(), self.state.value, self.source)


class ConsentRequest(BaseModel):
    """A subscribe a browser sent: awaiting the shopper's confirmation (double opt-in) before it counts.

    ``address`` is the email or phone the profile held when it was asked: a confirmation proves that
    address's owner agreed, so it is confirmed only while the profile still holds it.
    """

    model_config = ConfigDict(frozen=True)

    channel: Channel
    source: str
    at: UtcDateTime
    address: str | None = None
