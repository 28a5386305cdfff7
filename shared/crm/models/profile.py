"""The shopper's profile and the order records that feed it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from crm.models.orders import CanonicalOrder
from crm.money import divide


class OrderRecord(BaseModel):
    """An order as stored: the canonical order plus the profile it counts towards."""

    model_config = ConfigDict(frozen=True)

    profile_id: str
    order: CanonicalOrder


class Profile(BaseModel):
    """One shopper in one workspace. ``revision`` guards every write (optimistic locking)."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    profile_id: str
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    orders_count: int = 0
    total_spent: Decimal = Decimal("0.00")
    currency: str | None = None
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    # Which order each contact field came from: the latest order that has one wins, whatever the
    # arrival order.
    contact_sources: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    revision: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def average_order_value(self) -> Decimal:
        return divide(self.total_spent, self.orders_count)


def new_profile(workspace_id: str, profile_id: str, now: datetime) -> Profile:
    return Profile(workspace_id=workspace_id, profile_id=profile_id, created_at=now, updated_at=now)


__all__ = ["CanonicalOrder", "OrderRecord", "Profile", "new_profile"]
