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


class CustomerCreated(DomainEvent):
    type: Literal["CustomerCreated"] = "CustomerCreated"


class ProfilesMerged(DomainEvent):
    """``merged_profile_id`` is now part of ``profile_id``: consumers move its state (segments, flow runs)."""

    type: Literal["ProfilesMerged"] = "ProfilesMerged"
    merged_profile_id: str


AnyDomainEvent = OrderPlaced | CustomerCreated | ProfilesMerged
