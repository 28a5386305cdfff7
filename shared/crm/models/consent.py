"""Marketing consent: per channel, with where it came from and when."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from crm.clock import UtcDateTime


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class ConsentState(StrEnum):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    NOT_SUBSCRIBED = "not_subscribed"


class Consent(BaseModel):
    """One statement of consent; for each channel the latest statement wins, whatever the arrival order."""

    model_config = ConfigDict(frozen=True)

    channel: Channel
    state: ConsentState
    source: str  # e.g. "shopify:customers/update", "track:identify", "import:customers.csv"
    at: UtcDateTime


    def sort_key(self) -> tuple[str, str, str]:
        return (self.at.isoformat(), self.state.value, self.source)
