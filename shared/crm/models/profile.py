"""The shopper's 360 profile, the records that feed it, and its timeline.

Every aggregate on the profile is kept so that two profiles can be combined (a merge) and so that the
result does not depend on the order events arrived in: sums and counters, earliest and latest, and
"latest statement wins" fields that carry the stamp they were chosen by.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from crm.models.canonical import ProductRef, Touch
from crm.models.consent import Consent, ConsentRequest
from crm.models.orders import CanonicalOrder
from crm.models.predictions import Prediction
from crm.money import divide
from crm.recent import packed, unpacked


class OrderRecord(BaseModel):
    """An order as stored: its newest version, every refund known by id, and the profile it counts towards.

    ``order`` is None while only a refund or a removal has arrived: they wait here for the order.
    """

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    store_id: str
    order_id: str
    profile_id: str | None = None
    order: CanonicalOrder | None = None
    refunds: dict[str, Decimal] = Field(default_factory=dict)
    refund_dates: dict[str, datetime] = Field(default_factory=dict)  # of refunds that arrived on their own
    removed_at: datetime | None = None
    # The attribution the order was placed under: the profile's first touch, and the touch that led to it.
    first_touch: Touch | None = None
    last_touch: Touch | None = None

    @property
    def version(self) -> str:
        return self.order.version if self.order else ""

    @property
    def all_refunds(self) -> dict[str, Decimal]:
        return {**(self.order.refunds if self.order else {}), **self.refunds}

    @property
    def counts(self) -> bool:
        """An order counts towards totals while it is paid (or authorized), and not cancelled or deleted."""
        return self.open and self.order is not None and self.order.paid

    @property
    def open(self) -> bool:
        return self.order is not None and self.order.cancelled_at is None and self.removed_at is None

    @property
    def unpaid(self) -> bool:
        """Placed but not paid (pending, failed, voided, declined): kept apart, never revenue."""
        return self.open and self.order is not None and not self.order.paid

    @property
    def refunded(self) -> Decimal:
        return sum(self.all_refunds.values(), Decimal("0.00"))

    @property
    def net_total(self) -> Decimal:
        if not self.counts or self.order is None:
            return Decimal("0.00")
        return max(self.order.total_price - self.refunded, Decimal("0.00"))


class CustomerState(BaseModel):
    """A platform customer account as last seen (its newest version), and the profile it belongs to."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    store_id: str
    customer_id: str
    profile_id: str
    version: str
    deleted: bool = False


class Activity(BaseModel):
    """The latest activity of one kind (browse, cart, checkout) and what it was about."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    event_id: str
    type: str
    url: str | None = None
    value: Decimal | None = None
    currency: str | None = None
    products: tuple[ProductRef, ...] = ()

    def sort_key(self) -> tuple[str, str]:
        return (self.at.isoformat(), self.event_id)


class OrderInFlight(BaseModel):
    """An order change written to its profile before its order record (crm.changes, "guard last"): the state
    the record is being brought to, and when. Until the record holds that state, the profile already counts it."""

    model_config = ConfigDict(frozen=True)

    state: str  # crm.profiles.order_state of the record being written
    since: datetime


class RecentTimes(BaseModel):
    """When the latest occurrences happened (crm.recent): per activity type, and the placement of counted
    orders; each newest first, at most crm.recent.RECENT_KEPT, in microseconds since the epoch.

    The fields hold the times packed as they are stored (crm.recent.packed: the newest, then gaps); build
    with ``of`` and read with ``activity_times`` and ``order_times``. Kept alongside the counters
    (``activity_counts``, ``orders_count``), which still count everything.
    """

    model_config = ConfigDict(frozen=True)

    activity: dict[str, tuple[int, ...]] = Field(default_factory=dict)
    orders: tuple[int, ...] = ()

    @classmethod
    def of(cls, activity: Mapping[str, Sequence[int]], orders: Sequence[int]) -> RecentTimes:
        """From times newest first (types with none are left out)."""
        return cls(activity={kind: packed(times) for kind, times in sorted(activity.items()) if times},
                   orders=packed(orders))

    def activity_times(self) -> dict[str, tuple[int, ...]]:
        return {kind: unpacked(gaps) for kind, gaps in self.activity.items()}

    def order_times(self) -> tuple[int, ...]:
        return unpacked(self.orders)


class Profile(BaseModel):
    """One shopper in one workspace. ``revision`` guards every write (optimistic locking).

    A profile merged into another keeps only ``merged_into``: it redirects readers to the survivor.
    """

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    profile_id: str
    merged_into: str | None = None
    # Set with ``merged_into`` while a merge written guard last is under way (crm.changes._merge_guard_last): the
    # profile keeps its contents until its survivor, which lists it in ``merged_from`` once it holds them, has
    # them; then it is written as a tombstone. Readers follow ``merged_into`` either way.
    merging: bool = False
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    country: str | None = None
    # Which record each contact field came from ("timestamp|source"): the latest wins, whatever the arrival
    # order.
    contact_sources: dict[str, str] = Field(default_factory=dict)
    identities: tuple[str, ...] = ()
    # The tracker's browser ids (``anon#...``) a signed source tied to this shopper (an order or checkout
    # carrying the tracker's cart attribute): their /track activity is the shopper's, not only a browser's
    # claim (docs/consent.md).
    signed_browsers: tuple[str, ...] = ()
    merged_from: tuple[str, ...] = ()
    store_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    orders_count: int = 0
    cancelled_count: int = 0
    unpaid_orders_count: int = 0
    # Exact, per ISO code, of counted orders: what was spent net of refunds, refunded, and how many.
    spent_by_currency: dict[str, Decimal] = Field(default_factory=dict)
    refunded_by_currency: dict[str, Decimal] = Field(default_factory=dict)
    orders_by_currency: dict[str, int] = Field(default_factory=dict)
    # Derived from the above in the workspace's reporting currency (crm.reporting): ``currency`` names it,
    # and orders in a currency without a rate are left out and named in ``unconverted_currencies``.
    total_spent: Decimal = Decimal("0.00")
    total_refunded: Decimal = Decimal("0.00")
    currency: str | None = None
    unconverted_currencies: tuple[str, ...] = ()
    currency_settings_version: int = 0  # of the workspace's currency settings the figures were derived at
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    products: dict[str, int] = Field(default_factory=dict)  # product title -> units bought, net of cancellations
    categories: dict[str, int] = Field(default_factory=dict)
    skus: dict[str, int] = Field(default_factory=dict)
    coupons: dict[str, int] = Field(default_factory=dict)  # code -> orders it was used on
    consents: dict[str, Consent] = Field(default_factory=dict)  # channel -> latest statement
    # channel -> a browser's subscribe awaiting the shopper's confirmation (crm.consent)
    consent_requests: dict[str, ConsentRequest] = Field(default_factory=dict)
    first_touch: Touch | None = None
    last_touch: Touch | None = None
    activity_counts: dict[str, int] = Field(default_factory=dict)  # activity type -> events
    last_browse: Activity | None = None
    last_cart: Activity | None = None
    last_checkout: Activity | None = None
    last_seen_at: datetime | None = None
    # None on a profile written before the times were kept: the next order or activity written to it
    # rebuilds them from its timeline (crm.changes).
    recent: RecentTimes | None = None
    # Short digests of the latest activity events written to this profile before their markers (crm.changes
    # "guard last"): a retry that finds its event here writes only the marker and the timeline line.
    unmarked_events: tuple[str, ...] = ()
    # Order changes counted here whose order record may not be written yet, by "store_id:order_id": a
    # retry that finds its own writes only the rest; another change of that order waits for it (crm.changes).
    unwritten_orders: dict[str, OrderInFlight] = Field(default_factory=dict)
    # The buy-till-you-die models' view of the shopper (crm.predictions), refreshed by the scheduled run.
    prediction: Prediction | None = None
    created_at: datetime
    updated_at: datetime
    revision: int = 0

    @model_validator(mode="before")
    @classmethod
    def _single_currency_before(cls, data: Any) -> Any:
        # A profile written before sums were kept per currency held them in its one ``currency``.
        if (isinstance(data, dict) and data.get("orders_count") and data.get("currency")
                and not data.get("orders_by_currency")):
            currency = data["currency"]
            data = {**data, "orders_by_currency": {currency: data["orders_count"]},
                    "spent_by_currency": {currency: data.get("total_spent", "0.00")},
                    "refunded_by_currency": {currency: data.get("total_refunded", "0.00")}}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def average_order_value(self) -> Decimal:
        """In the reporting currency, over the orders that could be converted into it."""
        left_out = sum(self.orders_by_currency.get(code, 0) for code in self.unconverted_currencies)
        return divide(self.total_spent, self.orders_count - left_out)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def mean_days_between_orders(self) -> Decimal | None:
        if self.orders_count < 2 or self.first_order_at is None or self.last_order_at is None:
            return None
        days = Decimal((self.last_order_at - self.first_order_at).total_seconds()) / Decimal(86400)
        return (days / (self.orders_count - 1)).quantize(Decimal("0.1"))


class TimelineEntry(BaseModel):
    """One line of a profile's timeline. ``ref`` makes it unique (an order re-written by a newer version
    keeps its line)."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    profile_id: str
    store_id: str | None = None
    occurred_at: datetime
    type: str
    ref: str
    summary: dict[str, Any] = Field(default_factory=dict)

    @property
    def sort_key(self) -> str:
        return f"T#{self.occurred_at.isoformat()}#{self.type}#{self.ref}"


def new_profile(workspace_id: str, profile_id: str, now: datetime) -> Profile:
    return Profile(workspace_id=workspace_id, profile_id=profile_id, recent=RecentTimes(), created_at=now,
                   updated_at=now)


__all__ = ["Activity", "CanonicalOrder", "CustomerState", "OrderInFlight", "OrderRecord", "Profile", "RecentTimes",
           "TimelineEntry", "new_profile"]
