"""What flows bring in: each message sent and what became of it, the orders attributed to messages, and the
per-flow counters the stats API reads (GET /flows/{id}/stats). Written down before the code (issue 11).

- A **MessageRecord** is written when a flow message is sent (crm.flows.service) and updated, at most once
  per event type, by the SES / SMS events that come back (crm.messaging.feedback): the first open, the first
  click... so that counters count unique recipients' actions, whatever SES repeats.
- An **Attribution** ties one order to one message (crm.flows.conversions): the last message the shopper
  clicked (or opened; an SMS clicked or delivered) within the workspace's windows before the order. An order
  is attributed at most once (a conditional put on the order's key); its refunds reduce it.
- **Counters** are DynamoDB ADDs on one small item per flow, day, step and variant; the stats API sums the
  days asked for. Names are CounterName values, plus ``exited:<reason>`` and ``skipped:<reason>``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crm.clock import UtcDateTime

_MODEL = ConfigDict(frozen=True, extra="forbid")

MessageChannel = Literal["email", "sms"]


class MessageEventType(StrEnum):
    """SES event publishing's types (DELIVERY ... RENDERING_FAILURE) and SNS SMS delivery status, in our names."""

    SENT = "sent"
    DELIVERED = "delivered"
    DELIVERY_DELAYED = "delivery_delayed"
    BOUNCED = "bounced"  # a permanent bounce (a transient one is only a delay)
    COMPLAINED = "complained"
    REJECTED = "rejected"
    RENDERING_FAILED = "rendering_failed"
    FAILED = "failed"  # SMS: the carrier did not deliver
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"


class MessageEvent(BaseModel):
    """One event about one sent message, as read from SES's or SNS's report of it."""

    model_config = _MODEL

    message_id: str = Field(min_length=1)
    type: MessageEventType
    at: UtcDateTime
    link: str | None = None  # a click's URL
    detail: str | None = None  # a bounce's sub-type, a delay's reason, a failure's provider response


# A flow message's record is its line on the profile's timeline, of this type (crm.adapters.flow_stats).
MESSAGE_LINE = "flow_message"
# The SES message tag holding the moment the message was sent (its record's time, so its line's key): whole
# microseconds since the epoch, as a tag's characters allow (crm.messaging.compose sets it, the feedback reads it).
SENT_TAG = "sent"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def sent_tag(sent_at: datetime) -> str:
    return str((sent_at - _EPOCH) // timedelta(microseconds=1))


def sent_of_tag(value: str | None) -> datetime | None:
    """The moment a ``sent`` tag holds; None for none or one that is no number (an email sent before the tag)."""
    if value is None or not value.isdigit():
        return None
    return _EPOCH + timedelta(microseconds=int(value))


class MessageRecord(BaseModel):
    """A flow message sent, and the first time each event happened to it.

    Stored as its ``flow_message`` line on the profile's timeline (crm.adapters.flow_stats; before, an item of its
    own, crm.adapters.keys.flow_message, still read), so an erasure takes it with the profile; SES's tags
    (workspace, profile, ``sent``) find it, and crm.adapters.keys.message_pointer from the message id alone (SMS
    status carries no tags)."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    profile_id: str
    message_id: str
    channel: MessageChannel
    flow_id: str
    flow_version: int
    step_id: str
    run_id: str
    # The A/B path the message was sent on: "<random split id>:<path number>" of the innermost random split
    # the step is in (crm.flows.definition.variant_of); None outside any.
    variant: str | None = None
    trigger_type: str
    sent_at: UtcDateTime
    events: dict[MessageEventType, UtcDateTime] = Field(default_factory=dict)  # first time of each
    clicked_links: tuple[str, ...] = ()


class AttributionWindows(BaseModel):
    """How long after a message an order is credited to it (Klaviyo's defaults): per workspace, in
    MessagingSettings.attribution."""

    model_config = _MODEL

    # ISO 8601 durations in JSON ("P5D", "PT12H"); zero turns that kind of touch off; at most 90 days (an
    # order months after a message owes it nothing, and the candidates' read grows with the longest window).
    email_click: timedelta = Field(default=timedelta(days=5), ge=timedelta(0), le=timedelta(days=90))
    email_open: timedelta = Field(default=timedelta(days=5), ge=timedelta(0), le=timedelta(days=90))
    sms_click: timedelta = Field(default=timedelta(days=5), ge=timedelta(0), le=timedelta(days=90))
    sms_delivery: timedelta = Field(default=timedelta(days=1), ge=timedelta(0), le=timedelta(days=90))


TouchKind = Literal["email_click", "email_open", "sms_click", "sms_delivery"]


class Attribution(BaseModel):
    """One order credited to one flow message. ``revenue`` is the order's paid total in the workspace's
    reporting currency at the time it was attributed; ``refunded`` grows with its refunds (same currency)."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    store_id: str
    order_id: str
    profile_id: str
    message_id: str
    flow_id: str
    step_id: str
    variant: str | None = None
    channel: MessageChannel
    touch: TouchKind
    touched_at: UtcDateTime
    ordered_at: UtcDateTime
    revenue: Decimal
    currency: str
    refunded: Decimal = Decimal("0")
    refund_ids: tuple[str, ...] = ()
    # The run's trigger was a checkout and the order ended it: a recovered checkout.
    recovered_checkout: bool = False
    # The order's own amount (net of refunds known when placed) and currency, and the rate it was converted
    # at (None: the workspace held no rate for it, so ``revenue`` is 0 and refunds take nothing off).
    order_revenue: Decimal | None = None
    order_currency: str | None = None
    rate: Decimal | None = None


class CounterName(StrEnum):
    ENTERED = "entered"
    COMPLETED = "completed"
    EXITED = "exited"  # also "exited:<reason>"
    SKIPPED = "skipped"  # also "skipped:<reason>"
    SENT = "sent"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"
    CONVERTED = "converted"
    REVENUE = "revenue"  # attributed, reporting currency, net of refunds
    RECOVERED = "recovered"  # recovered checkouts
    RECOVERED_REVENUE = "recovered_revenue"
    RECIPIENTS = "recipients"  # runs that reached a step (an A/B path: runs that took it)


ALL_STEPS = "-"  # the step or variant dimension of a flow-wide counter


class CounterRow(BaseModel):
    """One counters item: a flow's counts on one day (UTC), for one step (or ALL_STEPS) and variant."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    flow_id: str
    day: date
    step_id: str = ALL_STEPS
    variant: str = ALL_STEPS
    counts: dict[str, Decimal] = Field(default_factory=dict)


# --- what GET /flows/{id}/stats and GET /flows/{id}/steps/{step}/stats answer (crm.flows.stats) -----------

class Counts(BaseModel):
    """Counts over a period. Rates are fractions of ``delivered`` (opens, clicks) and of recipients
    (``sent``) for conversions; money is in ``FlowStatsReport.currency``, net of refunds."""

    model_config = ConfigDict(frozen=True)

    entered: int = 0
    recipients: int = 0  # runs that reached the step / took the A/B path (the "recipients" counter)
    in_progress: int = 0  # runs entered in the period and not ended by its last day
    completed: int = 0
    exited: dict[str, int] = Field(default_factory=dict)  # by reason
    skipped: dict[str, int] = Field(default_factory=dict)  # by reason
    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    complained: int = 0
    converted: int = 0
    revenue: Decimal = Decimal("0")
    revenue_per_recipient: Decimal = Decimal("0")
    recovered: int = 0
    recovered_revenue: Decimal = Decimal("0")
    open_rate: Decimal = Decimal("0")
    click_rate: Decimal = Decimal("0")
    conversion_rate: Decimal = Decimal("0")


class DayCounts(BaseModel):
    model_config = ConfigDict(frozen=True)

    day: date
    counts: Counts


class VariantStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    variant: str  # "<split id>:<path>"
    path: int
    weight: int
    recipients: int
    counts: Counts
    probability_best: float  # on the split's metric (its WinnerRule's, else conversion)


class SplitStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    split_id: str
    metric: Literal["conversion", "click", "open"]
    winner: int | None = None  # the path every run takes since it was decided
    variants: tuple[VariantStats, ...] = ()


class FlowStatsReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    flow_id: str
    step_id: str | None = None  # the step asked for (GET /flows/{id}/steps/{step}/stats)
    from_day: date = Field(serialization_alias="from")
    to_day: date = Field(serialization_alias="to")
    # The workspace's reporting currency (docs/currency.md); None until it has one: revenue is then the
    # orders' amounts in their own currencies (crm.flows.conversions), as a single-currency store has them.
    currency: str | None
    totals: Counts
    by_day: tuple[DayCounts, ...] = ()
    steps: dict[str, Counts] = Field(default_factory=dict)  # flow-wide answer: each step's counts
    splits: tuple[SplitStats, ...] = ()
