"""The public /track API's request body: what a storefront page sends with the store's write key.

Every field is bounded: the endpoint is public, so a page (or anyone holding the public key) can
send only what a shopper's browser plausibly would. Unknown fields are refused rather than ignored
so a misspelt field is a 400 that names it, not silently lost data.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from crm.models.consent import ConsentState

MAX_EVENTS = 20
MAX_WRITE_KEY_LENGTH = 100

TrackType = Literal["page_viewed", "product_viewed", "product_added_to_cart", "cart_viewed", "checkout_started",
                    "identify"]

Short = Annotated[str, Field(min_length=1, max_length=200)]
Url = Annotated[str, Field(max_length=2048)]
# A link a message may show (a product's page or picture, a checkout's recovery link): web addresses only, so
# nothing a page sends becomes a javascript: or data: link in an email.
WebUrl = Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s]+$")]
# Client-made ids end up inside canonical event ids (at most 200 characters) and table keys.
ClientId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]


class _Strict(BaseModel):
    # Platforms' ids are often JSON numbers (Shopify's product ids): accept them as the strings they are.
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True, str_strip_whitespace=True)


class TrackUtm(_Strict):
    source: Short | None = None
    medium: Short | None = None
    campaign: Short | None = None
    term: Short | None = None
    content: Short | None = None

    @model_validator(mode="after")
    def _source_required(self) -> TrackUtm:
        # Reports group visits by source; a medium or campaign without one cannot be attributed.
        if self.source is None and any((self.medium, self.campaign, self.term, self.content)):
            raise ValueError("utm.source is required when any other utm field is given")
        return self


class TrackProduct(_Strict):
    product_id: Short | None = None
    variant_id: Short | None = None
    sku: Short | None = None
    title: Annotated[str, Field(max_length=500)] | None = None
    category: Short | None = None
    price: Money | None = None
    quantity: int = Field(default=1, ge=0, le=10_000)
    image_url: WebUrl | None = None
    url: WebUrl | None = None


class TrackConsent(_Strict):
    email: ConsentState | None = None
    sms: ConsentState | None = None


class TrackEvent(_Strict):
    type: TrackType
    event_id: ClientId
    occurred_at: AwareDatetime
    url: Url | None = None
    referrer: Url | None = None
    utm: TrackUtm | None = None
    product: TrackProduct | None = None
    products: list[TrackProduct] = Field(default_factory=list, max_length=100)
    cart_token: Short | None = None
    recovery_url: WebUrl | None = None  # checkout_started: the link back to this checkout
    value: Money | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")] | None = None
    email: Annotated[str, Field(max_length=320)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    consent: TrackConsent | None = None

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class TrackRequest(_Strict):
    # Optional here: it may come as the X-CRM-Write-Key header instead (crm.tracking.accept_track).
    write_key: Annotated[str, Field(min_length=1, max_length=MAX_WRITE_KEY_LENGTH)] | None = None
    anonymous_id: ClientId
    events: list[TrackEvent] = Field(min_length=1, max_length=MAX_EVENTS)
