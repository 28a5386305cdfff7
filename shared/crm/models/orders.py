"""The canonical order every connector maps its platform's payload to."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crm.clock import as_utc
from crm.models.stores import Platform


def version_stamp(updated_at: datetime, triggered_at: datetime | None) -> str:
    """A string that sorts like (updated_at, triggered_at): newer deliveries sort later.

    Shopify's updated_at has second precision, so the delivery's trigger time breaks ties
    between two updates within the same second.
    """
    trigger = triggered_at or datetime.min.replace(tzinfo=UTC)
    # isoformat pads the year to four digits on every platform (strftime's %Y does not for year 1).
    return "|".join(as_utc(moment).isoformat(timespec="microseconds").replace("+00:00", "Z")
                    for moment in (updated_at, trigger))


class LineItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    product_id: str | None = None
    sku: str | None = None
    title: str
    quantity: int = Field(ge=0)
    price: Decimal


class CanonicalOrder(BaseModel):
    """One order as the CRM understands it, whatever platform it came from."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    store_id: str
    platform: Platform
    order_id: str = Field(min_length=1)
    order_number: str | None = None
    email: str | None = None
    phone: str | None = None
    customer_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    total_price: Decimal = Field(ge=0)
    total_refunded: Decimal = Field(default=Decimal("0.00"), ge=0)
    financial_status: str | None = None
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None = None
    version: str
    landing_site: str | None = None
    referring_site: str | None = None
    line_items: tuple[LineItem, ...] = ()

    @field_validator("created_at", "updated_at", "cancelled_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @property
    def net_total(self) -> Decimal:
        """What the shopper has paid and kept: the total less refunds known so far."""
        return max(self.total_price - self.total_refunded, Decimal("0.00"))
