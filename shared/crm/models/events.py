"""Domain events the outbox publishes to the bus. They carry ids and money, never contact data."""

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


AnyDomainEvent = OrderPlaced | CustomerCreated | ProfilesMerged | SegmentEntered | SegmentExited
