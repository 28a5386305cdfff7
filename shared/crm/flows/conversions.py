"""What flows earn: an order credited to the last flow message the shopper engaged with (docs/attribution.md).

The rule (pure, ``last_touch``): a flow message *touches* the shopper when an email is clicked or opened, or
an SMS is clicked or delivered, each at the first time the message ledger holds for that event. A touch is
eligible for an order placed at ``ordered_at`` when ``touched_at <= ordered_at <= touched_at + window`` (both
edges included; ``within_window``), the window being the workspace's for that kind of touch
(MessagingSettings.attribution, Klaviyo's defaults: 5 days for email clicks and opens and SMS clicks, 1 day for
SMS deliveries; a zero window turns that kind of touch off). The order goes to the eligible touch with the
latest time; on a tie, a click before an open before a delivery, then the greater message id (only so that the
answer never depends on the order the ledger lists messages in). Candidates are the profile's messages sent at
most the longest window plus 30 days (ENGAGEMENT_AFTER_SEND) before the order.

The service (``ConversionsService``): on OrderPlaced in a workspace that ever saved a flow (else nothing is
read beyond the flows listing the container holds), the touches are read (MessageLedger.touches), the rule
picks one, the order is claimed (Attributions.claim: never twice), and the counters ``converted`` and
``revenue`` (plus ``recovered`` and ``recovered_revenue`` for a recovered checkout) are added on the order's
day (UTC) to the flow-wide row and the message's step row (its variant named, on an A/B path), and an
``order_attributed`` line goes on the profile's timeline. On OrderRefunded, the refund (once per refund id)
takes its amount off the same rows, on the order's day.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from crm.flows.catalogue import ever_saved
from crm.flows.ports import Attributions, FlowCatalogue, FlowCounters, MessageLedger, MessagingStore, RunStore
from crm.models.currency import CurrencySettings
from crm.models.events import OrderPlaced, OrderRefunded
from crm.models.flow_stats import (
    ALL_STEPS,
    Attribution,
    AttributionWindows,
    CounterName,
    MessageEventType,
    MessageRecord,
    TouchKind,
)
from crm.models.profile import TimelineEntry
from crm.money import CENT, format_money, to_money
from crm.ports import Change, CurrencyStore, ProfileRepository

CHECKOUT_TRIGGER = "CheckoutStarted"
# A message is opened or clicked days, rarely weeks, after it is sent: one sent longer than this before its
# touch's window began is not a candidate (it bounds the read of the profile's messages).
ENGAGEMENT_AFTER_SEND = timedelta(days=30)
ORDER_ATTRIBUTED = "order_attributed"  # the timeline line's type

# Which event of which channel touches the shopper, and the strength that breaks a tie in time.
_TOUCH_EVENTS: dict[str, tuple[tuple[TouchKind, MessageEventType], ...]] = {
    "email": (("email_click", MessageEventType.CLICKED), ("email_open", MessageEventType.OPENED)),
    "sms": (("sms_click", MessageEventType.CLICKED), ("sms_delivery", MessageEventType.DELIVERED)),
}
_STRENGTH: dict[TouchKind, int] = {"email_click": 2, "sms_click": 2, "email_open": 1, "sms_delivery": 0}


@dataclass(frozen=True)
class Touch:
    """One engagement with one flow message: the candidate an order may be attributed to."""

    message: MessageRecord
    kind: TouchKind
    at: datetime


def window_for(kind: TouchKind, windows: AttributionWindows) -> timedelta:
    """How long after a touch of this kind an order is still credited to it."""
    return {"email_click": windows.email_click, "email_open": windows.email_open,
            "sms_click": windows.sms_click, "sms_delivery": windows.sms_delivery}[kind]


def longest_window(windows: AttributionWindows) -> timedelta:
    return max(windows.email_click, windows.email_open, windows.sms_click, windows.sms_delivery)


def within_window(touched_at: datetime, ordered_at: datetime, window: timedelta) -> bool:
    """The order came at or after the touch and at most ``window`` after it (both edges included)."""
    return touched_at <= ordered_at <= touched_at + window


def touches_of(message: MessageRecord) -> list[Touch]:
    """The message's touches: the first click and first open of an email, the first click and the delivery
    of an SMS (as the ledger holds them)."""
    found: list[Touch] = []
    for kind, event in _TOUCH_EVENTS.get(message.channel, ()):
        at = message.events.get(event)
        if at is not None:
            found.append(Touch(message=message, kind=kind, at=at))
    return found


def last_touch(messages: Iterable[MessageRecord], ordered_at: datetime, windows: AttributionWindows) -> Touch | None:
    """The touch an order placed at ``ordered_at`` is attributed to, or None (the rule in this module's doc)."""
    oldest = earliest_candidate(ordered_at, windows)
    eligible = [touch for message in messages if message.sent_at >= oldest for touch in touches_of(message)
                if (window := window_for(touch.kind, windows)) and within_window(touch.at, ordered_at, window)]
    if not eligible:
        return None
    return max(eligible, key=lambda t: (t.at, _STRENGTH[t.kind], t.message.message_id))


def earliest_candidate(ordered_at: datetime, windows: AttributionWindows) -> datetime:
    """The oldest send a candidate may have: the longest window plus ENGAGEMENT_AFTER_SEND before the order
    (so the candidates are one bounded read of the profile's messages)."""
    return ordered_at - longest_window(windows) - ENGAGEMENT_AFTER_SEND


def is_recovered_checkout(message: MessageRecord, trigger: dict[str, Any] | None, checkout_token: str | None,
                          cart_token: str | None) -> bool:
    """An attributed order recovers a checkout when the message it is credited to was sent by a run that a
    CheckoutStarted started (a reminder of an abandoned checkout, and the order came after it, since the touch
    did), and, when both the order and the run's checkout name it, the order came from that same checkout
    (its checkout token or cart token is the run's ``checkout_id``)."""
    if message.trigger_type != CHECKOUT_TRIGGER:
        return False
    checkout_id = (trigger or {}).get("checkout_id")
    named = {token for token in (checkout_token, cart_token) if token}
    return not checkout_id or not named or checkout_id in named


@dataclass(frozen=True)
class Converted:
    """An amount in the reporting currency; ``rate`` None when the workspace holds no rate for the order's
    currency (the conversion counts, its revenue does not: never added at face value, as crm.reporting)."""

    amount: Decimal
    currency: str
    rate: Decimal | None


def in_reporting_currency(amount: Decimal, currency: str, settings: CurrencySettings | None) -> Converted:
    """``amount`` of ``currency`` at the workspace's rates (crm.reporting); a workspace without currency
    settings reports in the order's own currency."""
    if settings is None:
        return Converted(amount.quantize(CENT, rounding=ROUND_HALF_EVEN), currency, Decimal(1))
    rate = settings.rate(currency)
    if rate is None:
        return Converted(Decimal("0.00"), settings.reporting_currency, None)
    return Converted((amount * rate).quantize(CENT, rounding=ROUND_HALF_EVEN), settings.reporting_currency, rate)


def order_day_rows(attribution: Attribution) -> list[tuple[str, str]]:
    """The (step, variant) counter rows an attribution counts on: the flow-wide row and its message's step
    row (naming the A/B path, when the message was sent on one)."""
    return [(ALL_STEPS, ALL_STEPS), (attribution.step_id, attribution.variant or ALL_STEPS)]


# --- the service -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What one order or refund event did: the attribution made or changed, else why nothing was."""

    attribution: Attribution | None = None
    ignored: str | None = None
    refunded: Decimal = Decimal("0")


@dataclass
class ConversionsService:
    ledger: MessageLedger
    attributions: Attributions
    counters: FlowCounters
    runs: RunStore
    profiles: ProfileRepository
    messaging: MessagingStore
    currency: CurrencyStore
    clock: Callable[[], datetime]
    # Held a while per container (crm.flows.catalogue.HeldCatalogue), as the flows service reads it.
    catalogue: FlowCatalogue

    def on_order_placed(self, event: OrderPlaced) -> Outcome:
        if not event.paid:
            return Outcome(ignored="unpaid")  # only paid revenue is attributed (docs/revenue.md)
        if to_money(event.net_total) == 0 < to_money(event.total_price):
            return Outcome(ignored="cancelled or refunded in full")  # when its first version was stored
        ws, ordered_at = event.workspace_id, event.occurred_at
        if not ever_saved(self.catalogue.list_flows(ws)):
            # The flows service's own check (crm.flows.catalogue): no flow ever saved, so no flow message was
            # ever sent here and there is nothing to credit (most stores' orders, until they turn a flow on).
            return Outcome(ignored="no flow ever saved in the workspace")
        windows = self.messaging.messaging_settings(ws).attribution
        shopper = self._shopper_ids(ws, event.profile_id)
        since = earliest_candidate(ordered_at, windows)
        candidates = [m for profile_id in shopper for m in self.ledger.touches(ws, profile_id, since)]
        touch = last_touch(candidates, ordered_at, windows)
        if touch is None:
            return Outcome(ignored="no touch within the windows")
        message = touch.message
        run = None
        if message.trigger_type == CHECKOUT_TRIGGER:
            # A merge moves runs to the survivor under the same ids; the message stays where it was sent.
            run = self.runs.get_run(ws, message.profile_id, message.run_id) or \
                self.runs.get_run(ws, shopper[0], message.run_id)
        revenue = in_reporting_currency(to_money(event.net_total), event.currency, self.currency.settings(ws))
        attribution = Attribution(
            workspace_id=ws, store_id=event.store_id, order_id=event.order_id, profile_id=event.profile_id,
            message_id=message.message_id, flow_id=message.flow_id, step_id=message.step_id,
            variant=message.variant, channel=message.channel, touch=touch.kind, touched_at=touch.at,
            ordered_at=ordered_at, revenue=revenue.amount, currency=revenue.currency,
            order_currency=event.currency, order_revenue=to_money(event.net_total), rate=revenue.rate,
            recovered_checkout=is_recovered_checkout(message, run.trigger if run else None,
                                                     event.checkout_token, event.cart_token))
        if not self.attributions.claim(attribution):
            return Outcome(ignored="attributed before")
        counts: dict[str, int | Decimal] = {CounterName.CONVERTED: 1, CounterName.REVENUE: attribution.revenue}
        if attribution.recovered_checkout:
            counts |= {CounterName.RECOVERED: 1, CounterName.RECOVERED_REVENUE: attribution.revenue}
        self._count(attribution, counts)
        self.profiles.commit(Change(ws, timeline=(TimelineEntry(
            workspace_id=ws, profile_id=shopper[0], store_id=event.store_id, occurred_at=ordered_at,
            type=ORDER_ATTRIBUTED, ref=f"{event.store_id}:{event.order_id}", summary=_summary(attribution)),)))
        return Outcome(attribution=attribution)

    def _shopper_ids(self, workspace_id: str, profile_id: str) -> list[str]:
        """The live profile the order's profile is (merges followed) first, then every profile merged into
        it: their messages were sent to the same shopper."""
        live = self.profiles.get_profile(workspace_id, profile_id)
        if live is None:
            return [profile_id]
        return list(dict.fromkeys((live.profile_id, profile_id, *live.merged_from)))

    def on_order_refunded(self, event: OrderRefunded) -> Outcome:
        ws = event.workspace_id
        held = self.attributions.get(ws, event.store_id, event.order_id)
        if held is None:
            return Outcome(ignored="order not attributed")
        if event.refund_id in held.refund_ids:
            return Outcome(ignored="refund counted before")
        amount = self._refund_amount(held, to_money(event.amount), event.currency)
        updated = self.attributions.add_refund(ws, event.store_id, event.order_id, event.refund_id, amount)
        if updated is None:
            return Outcome(ignored="refund counted before")
        if amount:
            counts: dict[str, int | Decimal] = {CounterName.REVENUE: -amount}
            if held.recovered_checkout:
                counts[CounterName.RECOVERED_REVENUE] = -amount
            self._count(updated, counts)
        return Outcome(attribution=updated, refunded=amount)

    def _refund_amount(self, held: Attribution, amount: Decimal, currency: str) -> Decimal:
        """The refund in the attribution's currency, at the rate the order was converted at (so a full refund
        takes off exactly what was added), never more than is left of the attributed revenue."""
        if currency == held.order_currency and held.rate is not None:
            converted = (amount * held.rate).quantize(CENT, rounding=ROUND_HALF_EVEN)
        else:
            converted = in_reporting_currency(amount, currency, self.currency.settings(held.workspace_id)).amount
        return max(min(converted, held.revenue - held.refunded), Decimal("0.00"))

    def _count(self, attribution: Attribution, counts: dict[str, int | Decimal]) -> None:
        day = attribution.ordered_at.astimezone(UTC).date()
        self.counters.add_rows(attribution.workspace_id, attribution.flow_id, day,
                               dict.fromkeys(order_day_rows(attribution), counts))


def _summary(attribution: Attribution) -> dict[str, Any]:
    return {"order": f"{attribution.store_id}:{attribution.order_id}", "flow_id": attribution.flow_id,
            "step_id": attribution.step_id, "variant": attribution.variant, "message_id": attribution.message_id,
            "channel": attribution.channel, "touch": attribution.touch,
            "touched_at": attribution.touched_at.isoformat(), "revenue": format_money(attribution.revenue),
            "currency": attribution.currency, "recovered_checkout": attribution.recovered_checkout}
