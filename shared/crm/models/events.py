"""Domain events the outbox publishes to the bus. They carry ids, money and what a message needs to show (cart
and order items, links), never contact data: a consumer reads the profile for that."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

EVENT_SOURCE = "crm"


class DomainEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Deterministic, so a consumer can drop the duplicates an at-least-once bus delivers.
    event_id: str
    workspace_id: str
    profile_id: str
    occurred_at: datetime


class Item(BaseModel):
    """A cart, checkout or order line as a message shows it (money as a decimal string)."""

    model_config = ConfigDict(frozen=True)

    title: str | None = None
    quantity: int = 1
    price: str | None = None
    product_id: str | None = None
    variant_id: str | None = None
    sku: str | None = None
    image_url: str | None = None
    product_url: str | None = None


class OrderPlaced(DomainEvent):
    type: Literal["OrderPlaced"] = "OrderPlaced"
    store_id: str
    order_id: str
    currency: str
    total_price: str
    net_total: str
    # As placed: an order placed unpaid (pending, failed; docs/revenue.md) is not revenue, and a post-purchase
    # message should wait for a paid one.
    paid: bool = True
    order_number: str | None = None
    items: tuple[Item, ...] = ()
    # The storefront checkout and cart it came from, when the platform says (a recovered checkout is one whose
    # checkout became this order: crm.flows.conversions).
    checkout_token: str | None = None
    cart_token: str | None = None


class OrderRefunded(DomainEvent):
    """A refund was applied to a placed order: once per refund id (``amount`` in ``currency``, a decimal
    string). ``occurred_at`` is the refund's time when the platform gave it, else the order's update."""

    type: Literal["OrderRefunded"] = "OrderRefunded"
    store_id: str
    order_id: str
    refund_id: str
    amount: str
    currency: str


class OrderFulfilled(DomainEvent):
    """The store shipped the order (Shopify fulfillments, WooCommerce "completed")."""

    type: Literal["OrderFulfilled"] = "OrderFulfilled"
    store_id: str
    order_id: str
    items: tuple[Item, ...] = ()


class CheckoutStarted(DomainEvent):
    """A shopper started a checkout (``checkout_id``: the platform's token); ``recovery_url`` takes them
    back to it."""

    type: Literal["CheckoutStarted"] = "CheckoutStarted"
    store_id: str
    checkout_id: str
    items: tuple[Item, ...] = ()
    recovery_url: str | None = None
    value: str | None = None
    currency: str | None = None
    # The activity reached the profile only through an unsigned browser link (docs/consent.md): flows that
    # show browsing or carts do not act on it.
    from_browser: bool = False


class ProductViewed(DomainEvent):
    type: Literal["ProductViewed"] = "ProductViewed"
    store_id: str
    product: Item
    url: str | None = None
    from_browser: bool = False


class ContactCreated(DomainEvent):
    """A profile gained a way to reach it: an email or a phone it did not have (``CustomerCreated`` still
    says a profile came to be, reachable or not)."""

    type: Literal["ContactCreated"] = "ContactCreated"
    channels: tuple[Literal["email", "sms"], ...]


class ConsentChanged(DomainEvent):
    """A channel's consent changed (crm.consent): old and new state, who said so."""

    type: Literal["ConsentChanged"] = "ConsentChanged"
    channel: Literal["email", "sms"]
    old_state: str | None
    new_state: str
    source: str


class ConsentRequested(DomainEvent):
    """A browser asked to subscribe (crm.consent: a request, not consent): the flows service mails the
    double opt-in confirmation (crm.messaging.optin) to the address the profile holds. ``occurred_at`` is when
    it was asked."""

    type: Literal["ConsentRequested"] = "ConsentRequested"
    channel: Literal["email", "sms"]
    source: str


class CustomerCreated(DomainEvent):
    type: Literal["CustomerCreated"] = "CustomerCreated"


class ProfilesMerged(DomainEvent):
    """``merged_profile_id`` is now part of ``profile_id``: consumers move its state (segments, flow runs)."""

    type: Literal["ProfilesMerged"] = "ProfilesMerged"
    merged_profile_id: str


class SegmentEntered(DomainEvent):
    """The profile is now in the segment (``occurred_at``: when membership was decided)."""

    type: Literal["SegmentEntered"] = "SegmentEntered"
    segment_id: str


class SegmentExited(DomainEvent):
    """The profile left the segment: it no longer matches, was merged into another or was erased, or the
    segment was deleted. ``entered_at`` says which stay in the segment ended."""

    type: Literal["SegmentExited"] = "SegmentExited"
    segment_id: str
    entered_at: datetime


AnyDomainEvent = (
    OrderPlaced | OrderRefunded | OrderFulfilled | CheckoutStarted | ProductViewed | CustomerCreated | ContactCreated
    | ConsentChanged | ConsentRequested | ProfilesMerged | SegmentEntered | SegmentExited
)
# The detail-types the flows read: the outbox sends them to the flows queue (crm.adapters.outbox_targets).
FLOW_EVENT_TYPES: tuple[str, ...] = (
    "CheckoutStarted", "ProductViewed", "OrderPlaced", "OrderFulfilled", "ContactCreated", "ConsentChanged",
    "CustomerCreated", "ProfilesMerged", "SegmentEntered", "SegmentExited", "ConsentRequested", "OrderRefunded",
)
