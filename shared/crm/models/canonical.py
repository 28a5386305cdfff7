"""The canonical events every connector maps its platform's deliveries to, besides orders.

A delivery becomes zero or more of these; the profiles function applies each to the profile its
identities resolve to. Every event carries enough to be applied idempotently: a version (records
that are replaced by newer ones) or an id (things that happen once).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crm.clock import UtcDateTime
from crm.models.consent import Consent
from crm.models.orders import CanonicalOrder
from crm.models.stores import Platform


class _Canonical(BaseModel):
    model_config = ConfigDict(frozen=True)

    workspace_id: str
    store_id: str
    platform: Platform


class CustomerRecord(_Canonical):
    """A platform's customer account (customers/create, customers/update, customer.updated, ...)."""

    kind: Literal["customer"] = "customer"
    customer_id: str = Field(min_length=1)
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    country: str | None = None
    tags: tuple[str, ...] = ()
    consents: tuple[Consent, ...] = ()
    created_at: UtcDateTime
    updated_at: UtcDateTime
    version: str  # crm.models.orders.version_stamp of updated_at (and the delivery's trigger time)
    deleted: bool = False  # the platform deleted the account; the CRM keeps the shopper's history



class RefundRecord(_Canonical):
    """One refund, when it arrives on its own (Shopify refunds/create)."""

    kind: Literal["refund"] = "refund"
    order_id: str = Field(min_length=1)
    refund_id: str = Field(min_length=1)
    amount: Decimal = Field(ge=0)
    created_at: UtcDateTime



class OrderRemoved(_Canonical):
    """The store deleted an order (WooCommerce order.deleted): it stops counting, like a cancellation."""

    kind: Literal["order_removed"] = "order_removed"
    order_id: str = Field(min_length=1)
    removed_at: UtcDateTime



class ActivityType(StrEnum):
    PAGE_VIEWED = "page_viewed"
    PRODUCT_VIEWED = "product_viewed"
    PRODUCT_ADDED_TO_CART = "product_added_to_cart"
    CART_VIEWED = "cart_viewed"
    CART_UPDATED = "cart_updated"
    CHECKOUT_STARTED = "checkout_started"
    CHECKOUT_UPDATED = "checkout_updated"
    IDENTIFY = "identify"
    ORDER_FULFILLED = "order_fulfilled"


class ProductRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    product_id: str | None = None
    variant_id: str | None = None
    sku: str | None = None
    title: str | None = None
    category: str | None = None
    price: Decimal | None = None
    quantity: int = Field(default=1, ge=0)
    # What a message shows of it (a cart reminder's picture and link); None when the source sends none.
    image_url: str | None = None
    url: str | None = None


class Touch(BaseModel):
    """Where a visit came from: UTM parameters, else the referrer, else "direct"."""

    model_config = ConfigDict(frozen=True)

    source: str
    medium: str | None = None
    campaign: str | None = None
    term: str | None = None
    content: str | None = None
    landing_page: str | None = None
    referrer: str | None = None
    at: UtcDateTime


    @property
    def channel(self) -> str:
        """The reporting channel: "source / medium", or the source alone."""
        return f"{self.source} / {self.medium}" if self.medium else self.source


class ActivityEvent(_Canonical):
    """Something a shopper did on the storefront, or a store event without an order of its own.

    ``event_id`` is unique per store and makes re-deliveries harmless. Identities (anonymous id,
    email, phone, customer id, cart and checkout tokens) say whose activity it is; an event that
    carries two of them links them (an identify merges the anonymous browser into the shopper).
    """

    kind: Literal["activity"] = "activity"
    event_id: str = Field(min_length=1, max_length=200)
    type: ActivityType
    occurred_at: UtcDateTime
    anonymous_id: str | None = None
    email: str | None = None
    phone: str | None = None
    customer_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    cart_token: str | None = None
    checkout_token: str | None = None
    order_id: str | None = None
    url: str | None = None
    # A checkout's link back to itself (Shopify's abandoned_checkout_url): what a reminder links to.
    recovery_url: str | None = None
    products: tuple[ProductRef, ...] = ()
    value: Decimal | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    touch: Touch | None = None
    consents: tuple[Consent, ...] = ()
    # Sent by a browser through the public /track API: nobody vouches for it (docs/consent.md).
    from_browser: bool = False
    # A double opt-in confirmation (a followed confirm link, crm.messaging.links): grants this consent only
    # through crm.consent.confirm_request, i.e. if a request is open and the address is still the profile's.
    confirms: Consent | None = None
    # The email / phone only find the profile and are not stated as its contact fields: a link followed today
    # may have been sent to an address the profile has replaced since.
    identifies_only: bool = False


    @model_validator(mode="after")
    def _someone(self) -> ActivityEvent:
        if not any((self.anonymous_id, self.email, self.phone, self.customer_id, self.cart_token,
                    self.checkout_token, self.order_id)):
            raise ValueError("an activity needs someone: an anonymous id, email, phone, customer id, cart, "
                             "checkout or order")
        return self


class ComplianceKind(StrEnum):
    CUSTOMER_REDACT = "customer_redact"
    CUSTOMER_DATA_REQUEST = "customer_data_request"
    SHOP_REDACT = "shop_redact"


class ComplianceRequest(_Canonical):
    """A privacy request (Shopify's mandatory compliance topics): export or erase a shopper, or a store."""

    kind: Literal["compliance"] = "compliance"
    request: ComplianceKind
    request_id: str = Field(min_length=1)
    customer_id: str | None = None
    email: str | None = None
    phone: str | None = None
    order_ids: tuple[str, ...] = ()
    requested_at: UtcDateTime



CanonicalEvent = (
    CanonicalOrder | CustomerRecord | RefundRecord | OrderRemoved | ActivityEvent | ComplianceRequest
)

__all__ = [
    "ActivityEvent", "ActivityType", "CanonicalEvent", "CanonicalOrder", "ComplianceKind", "ComplianceRequest",
    "Consent", "CustomerRecord", "OrderRemoved", "ProductRef", "RefundRecord", "Touch",
]
