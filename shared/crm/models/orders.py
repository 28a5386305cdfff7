"""The canonical order every connector maps its platform's payload to."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crm.clock import UtcDateTime, as_utc
from crm.models.consent import Consent
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
    variant_id: str | None = None
    sku: str | None = None
    title: str
    category: str | None = None
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
    # Every refund known, by the platform's refund id: refunds that arrive on their own (refunds/create)
    # and those listed on the order are unioned by id, so neither is counted twice.
    refunds: dict[str, Decimal] = Field(default_factory=dict)
    financial_status: str | None = None
    # Whether the platform's state of the order says it is paid or authorized: only then does it count
    # towards orders_count and total_spent (each connector's table: docs/revenue.md).
    paid: bool = True
    created_at: UtcDateTime
    updated_at: UtcDateTime
    cancelled_at: UtcDateTime | None = None
    version: str
    landing_site: str | None = None
    referring_site: str | None = None
    line_items: tuple[LineItem, ...] = ()
    discount_codes: tuple[str, ...] = ()
    fulfillment_status: str | None = None
    # Links to the storefront activity that led here (cart and checkout tokens, the tracker's id).
    cart_token: str | None = None
    checkout_token: str | None = None
    anonymous_id: str | None = None
    country: str | None = None
    consents: tuple[Consent, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _refunds_by_id(cls, data: Any) -> Any:
        """A platform that only reports a total refunded (BigCommerce) gives it as ``total_refunded``:
        it becomes one refund."""
        if isinstance(data, dict) and "total_refunded" in data:
            data = dict(data)
            total = data.pop("total_refunded")
            if not data.get("refunds") and total:
                data["refunds"] = {"total": total}
        return data

    @field_validator("refunds")
    @classmethod
    def _no_negative_refund(cls, refunds: dict[str, Decimal]) -> dict[str, Decimal]:
        if any(amount < 0 for amount in refunds.values()):
            raise ValueError("a refund amount cannot be negative")
        return refunds

    @property
    def total_refunded(self) -> Decimal:
        return sum(self.refunds.values(), Decimal("0.00"))


    @property
    def net_total(self) -> Decimal:
        """What the shopper has paid and kept: the total less refunds known so far (zero once cancelled)."""
        if self.cancelled_at is not None:
            return Decimal("0.00")
        return max(self.total_price - self.total_refunded, Decimal("0.00"))
