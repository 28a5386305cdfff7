"""The transactional outbox: domain events derived from the table's stream, never a second write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from crm.adapters.streams import image
from crm.adapters.timeline_items import is_line_item, new_entries
from crm.models.events import (
    AnyDomainEvent,
    CheckoutStarted,
    ConsentChanged,
    ConsentRequested,
    ContactCreated,
    CustomerCreated,
    Item,
    OrderFulfilled,
    OrderPlaced,
    OrderRefunded,
    ProductViewed,
    ProfilesMerged,
    SegmentEntered,
    SegmentExited,
)
from crm.models.orders import CanonicalOrder
from crm.models.profile import OrderRecord, Profile, TimelineEntry
from crm.money import format_money
from crm.ports import EventPublisher

_FULFILLED = "fulfilled"  # the canonical order's fulfillment_status once everything shipped (each connector)


def _segment_event(record: Mapping[str, Any], new: dict[str, Any] | None,
                   old: dict[str, Any] | None) -> list[AnyDomainEvent]:
    # A member item is only ever inserted (entered) or deleted (exited); its key and times name the stay.
    if new is not None and old is None:
        return [SegmentEntered(
            event_id=f"SegmentEntered:{new['workspace_id']}:{new['segment_id']}:{new['profile_id']}:"
                     f"{new['entered_at']}",
            workspace_id=new["workspace_id"], profile_id=new["profile_id"], segment_id=new["segment_id"],
            occurred_at=new["entered_at"])]
    if new is None and old is not None:
        exited_at = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
        return [SegmentExited(
            event_id=f"SegmentExited:{old['workspace_id']}:{old['segment_id']}:{old['profile_id']}:"
                     f"{old['entered_at']}",
            workspace_id=old["workspace_id"], profile_id=old["profile_id"], segment_id=old["segment_id"],
            entered_at=old["entered_at"],
            occurred_at=datetime.fromtimestamp(float(exited_at), UTC) if exited_at else old["entered_at"])]
    return []


def _order_items(order: CanonicalOrder) -> tuple[Item, ...]:
    return tuple(Item(title=line.title or None, quantity=line.quantity, price=format_money(line.price),
                      product_id=line.product_id, variant_id=line.variant_id, sku=line.sku)
                 for line in order.line_items)


def _fulfilled_id(workspace_id: str, store_id: str, order_id: str) -> str:
    # One per order, whichever way it is learnt (an order's status, a fulfillment of its own): the copies a
    # platform sends both ways are one event to a consumer.
    return f"OrderFulfilled:{workspace_id}:{store_id}:{order_id}"


def _order_events(item: dict[str, Any], old: dict[str, Any]) -> list[AnyDomainEvent]:
    stored = OrderRecord.model_validate(item)
    order = stored.order
    if order is None or stored.profile_id is None:
        return []
    ids = (order.workspace_id, order.store_id, order.order_id)
    items = _order_items(order)
    events: list[AnyDomainEvent] = []
    held = old.get("order") or {}
    # A refund may arrive before its order and wait in a record without one: the order is "placed" when its
    # first version lands, by insert or by filling that record.
    if not held:
        events.append(OrderPlaced(
            event_id="OrderPlaced:{}:{}:{}".format(*ids),
            workspace_id=order.workspace_id, profile_id=stored.profile_id, occurred_at=order.created_at,
            store_id=order.store_id, order_id=order.order_id, currency=order.currency,
            total_price=format_money(order.total_price), net_total=format_money(stored.net_total), paid=order.paid,
            order_number=order.order_number, items=items, checkout_token=order.checkout_token,
            cart_token=order.cart_token,
        ))
    else:
        events.extend(_refund_events(stored, {**(held.get("refunds") or {}), **(old.get("refunds") or {})}))
    if (order.fulfillment_status or "").lower() == _FULFILLED and order.cancelled_at is None \
            and str(held.get("fulfillment_status") or "").lower() != _FULFILLED:
        events.append(OrderFulfilled(
            event_id=_fulfilled_id(*ids), workspace_id=order.workspace_id, profile_id=stored.profile_id,
            occurred_at=order.updated_at, store_id=order.store_id, order_id=order.order_id, items=items))
    return events


def _refund_events(stored: OrderRecord, known: Mapping[str, Any]) -> list[AnyDomainEvent]:
    """A refund the placed order did not have before (``known``: the old image's refunds, read raw: a hot
    path): one OrderRefunded each. A known refund whose amount grew (BigCommerce reports one running total)
    publishes the increase, named by refund id and new amount. Refunds known when the order was placed are
    already out of its OrderPlaced's ``net_total``; a refund seen again is not news."""
    order = stored.order
    if order is None or stored.profile_id is None:
        return []
    events: list[AnyDomainEvent] = []
    for refund_id, amount in sorted(stored.all_refunds.items()):
        before = Decimal(str(known[refund_id])) if refund_id in known else None
        if before is not None and amount <= before:
            continue
        named = refund_id if before is None else f"{refund_id}@{format_money(amount)}"
        events.append(OrderRefunded(
            event_id=f"OrderRefunded:{order.workspace_id}:{order.store_id}:{order.order_id}:{named}",
            workspace_id=order.workspace_id, profile_id=stored.profile_id,
            occurred_at=stored.refund_dates.get(refund_id, order.updated_at), store_id=order.store_id,
            order_id=order.order_id, refund_id=named, amount=format_money(amount - (before or 0)),
            currency=order.currency))
    return events


_BROWSER_IDENTITIES = frozenset({"anon", "cart", "checkout"})  # what a storefront browser alone is known by


def _known(item: Mapping[str, Any]) -> bool:
    """Whether a profile item (raw image: a hot path) names a shopper rather than only a browser: an email, a
    phone, an order, or an identity a browser alone does not have (crm.identity)."""
    return bool(item.get("email") or item.get("phone") or item.get("orders_count")
                or any(str(identity).partition("#")[0] not in _BROWSER_IDENTITIES
                       for identity in item.get("identities") or ()))


def _statement_time(profile: Profile, field: str) -> str:
    """When the contact field was stated (its stamp's first part: "timestamp|source|...")."""
    return profile.contact_sources.get(field, "").partition("|")[0] or profile.updated_at.isoformat()


def _profile_events(item: dict[str, Any], old: dict[str, Any]) -> list[AnyDomainEvent]:
    profile = Profile.model_validate(item)
    ws, profile_id = profile.workspace_id, profile.profile_id
    if profile.merged_into:
        # A tombstone new to the table is the name a link took (crm.ports.IdentityLink.named_tombstone): nothing
        # was merged.
        if not old or old.get("merged_into"):
            return []
        return [ProfilesMerged(event_id=f"ProfilesMerged:{ws}:{profile_id}", workspace_id=ws,
                               profile_id=profile.merged_into, occurred_at=profile.updated_at,
                               merged_profile_id=profile_id)]
    events: list[AnyDomainEvent] = []
    if _known(item) and not (old and _known(old)):
        # A shopper the CRM did not know: a new profile, or a browser's profile that now names its shopper (an
        # address, an account or an order). A browser alone is most storefront traffic and nobody acts on it.
        events.append(CustomerCreated(event_id=f"CustomerCreated:{ws}:{profile_id}", workspace_id=ws,
                                      profile_id=profile_id, occurred_at=profile.created_at))
    gained = [(channel, field) for channel, field in (("email", "email"), ("sms", "phone"))
              if getattr(profile, field) and not old.get(field)]
    if gained:
        # Named by when each address was stated: a replayed record gives the same id, a later address a new one.
        stated = [_statement_time(profile, field) for _, field in gained]
        events.append(ContactCreated(
            event_id=f"ContactCreated:{ws}:{profile_id}:" + ",".join(
                f"{channel}@{at}" for (channel, _), at in zip(gained, stated, strict=True)),
            workspace_id=ws, profile_id=profile_id, occurred_at=_moment(min(stated), profile.updated_at),
            channels=tuple(channel for channel, _ in gained)))
    return events


def _moment(value: str, fallback: datetime) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return fallback
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _items(summary: Mapping[str, Any]) -> tuple[Item, ...]:
    return tuple(Item.model_validate(line) for line in summary.get("items") or ())


def _timeline_event(line: dict[str, Any]) -> list[AnyDomainEvent]:
    """The flow event a new timeline line stands for (crm.changes writes what each needs into its summary)."""
    kind, summary = line.get("type"), line.get("summary") or {}
    if kind not in _TIMELINE_EVENTS:
        return []
    ws, profile_id, ref = line["workspace_id"], line["profile_id"], line["ref"]
    store_id = line.get("store_id") or ""
    common: dict[str, Any] = {"workspace_id": ws, "profile_id": profile_id, "occurred_at": line["occurred_at"]}
    if kind == "consent_changed":
        return [ConsentChanged(event_id=f"ConsentChanged:{ws}:{profile_id}:{line['occurred_at']}:{ref}", **common,
                               channel=summary["channel"], old_state=summary.get("old"), new_state=summary["new"],
                               source=summary["source"])]
    if kind == "consent_requested":
        return [ConsentRequested(event_id=f"ConsentRequested:{ws}:{profile_id}:{line['occurred_at']}:{ref}",
                                 **common, channel=summary["channel"], source=summary["source"])]
    if kind == "checkout_started":
        return [CheckoutStarted(event_id=f"CheckoutStarted:{ws}:{store_id}:{ref}", **common, store_id=store_id,
                                checkout_id=summary.get("checkout") or ref, items=_items(summary),
                                recovery_url=summary.get("recovery_url"), value=summary.get("value"),
                                currency=summary.get("currency"), from_browser=bool(summary.get("from_browser")))]
    if kind == "product_viewed":
        if not summary.get("reachable"):
            return []  # anonymous browsing (crm.changes): no flow can message it
        items = _items(summary)
        return [ProductViewed(event_id=f"ProductViewed:{ws}:{store_id}:{ref}", **common, store_id=store_id,
                              product=items[0] if items else Item(), url=summary.get("url"),
                              from_browser=bool(summary.get("from_browser")))]
    order_ref = str(summary.get("order") or "")  # "store_id:order_id"
    order_id = order_ref[len(store_id) + 1:] if order_ref.startswith(f"{store_id}:") else ""
    return [OrderFulfilled(event_id=_fulfilled_id(ws, store_id, order_id or ref), **common, store_id=store_id,
                           order_id=order_id, items=_items(summary))]


def _as_written(line: TimelineEntry) -> dict[str, Any]:
    """A line's values as a plain line item held them: its time as ``isoformat`` writes it (a consent event's id
    holds it), not JSON's ``Z``."""
    return {**line.model_dump(mode="json"), "occurred_at": line.occurred_at.isoformat()}


_TIMELINE_EVENTS = frozenset({"consent_changed", "consent_requested", "checkout_started", "product_viewed",
                              "order_fulfilled"})


def events_for(record: Mapping[str, Any]) -> list[AnyDomainEvent]:
    """The domain events one stream record stands for (docs/events.md): an order placed or fulfilled, a new
    profile or one that can now be reached, a merge, a profile entering or leaving a segment, and the
    timeline lines flows start from (checkouts, product views, fulfillments, consent changes and requests)."""
    item, before = image(record, "NewImage"), image(record, "OldImage")  # each image read once: a hot path
    entity = (item or before or {}).get("entity")
    if entity == "segment_member":
        return _segment_event(record, item, before)
    if item is None:
        return []
    old = before or {}
    if entity == "order":
        return _order_events(item, old)
    if entity == "profile":
        return _profile_events(item, old)
    if is_line_item(item):  # the lines a write added (a line written again, an order's newer version, is not news)
        return [event for line in new_entries(item, before) for event in _timeline_event(_as_written(line))]
    return []


def publish_stream_batch(records: Sequence[Mapping[str, Any]], publisher: EventPublisher) -> list[str]:
    """Publish the events of a stream batch in order; returns the sequence number to retry from.

    Lambda resumes a stream batch at the lowest failed sequence number, so reporting the first
    record whose event failed retries it and everything after it: no event overtakes an earlier one.
    """
    events: list[AnyDomainEvent] = []
    owners: list[int] = []
    for index, record in enumerate(records):
        for event in events_for(record):
            events.append(event)
            owners.append(index)
    failed = publisher.publish(events)
    if not failed:
        return []
    first = min(owners[i] for i in failed)
    return [str(records[first]["dynamodb"]["SequenceNumber"])]


def timeline_line_events(line: TimelineEntry) -> list[AnyDomainEvent]:
    """The flow events a timeline line stood for when it was written (a backtest reads history back this way:
    crm.flows.history)."""
    return _timeline_event(line.model_dump(mode="json"))
