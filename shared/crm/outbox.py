"""The transactional outbox: domain events derived from the table's stream, never a second write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from crm.adapters.streams import image
from crm.models.events import (
    AnyDomainEvent,
    CustomerCreated,
    OrderPlaced,
    ProfilesMerged,
    SegmentEntered,
    SegmentExited,
)
from crm.models.profile import OrderRecord, Profile
from crm.money import format_money
from crm.ports import EventPublisher


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


def events_for(record: Mapping[str, Any]) -> list[AnyDomainEvent]:
    """The domain events one stream record stands for: an order that arrived, a new profile, a merge, a
    profile entering or leaving a segment."""
    item, before = image(record, "NewImage"), image(record, "OldImage")  # each image read once: a hot path
    if (item or before or {}).get("entity") == "segment_member":
        return _segment_event(record, item, before)
    if item is None:
        return []
    old = before or {}
    if item.get("entity") == "order":
        stored = OrderRecord.model_validate(item)
        order = stored.order
        # A refund may arrive before its order and wait in a record without one: the order is "placed"
        # when its first version lands, by insert or by filling that record.
        if order is None or stored.profile_id is None or old.get("order"):
            return []
        return [OrderPlaced(
            event_id=f"OrderPlaced:{order.workspace_id}:{order.store_id}:{order.order_id}",
            workspace_id=order.workspace_id, profile_id=stored.profile_id, occurred_at=order.created_at,
            store_id=order.store_id, order_id=order.order_id, currency=order.currency,
            total_price=format_money(order.total_price), net_total=format_money(order.net_total), paid=order.paid,
        )]
    if item.get("entity") == "profile":
        profile = Profile.model_validate(item)
        if profile.merged_into and not old.get("merged_into"):
            return [ProfilesMerged(
                event_id=f"ProfilesMerged:{profile.workspace_id}:{profile.profile_id}",
                workspace_id=profile.workspace_id, profile_id=profile.merged_into, occurred_at=profile.updated_at,
                merged_profile_id=profile.profile_id,
            )]
        if old:
            return []
        return [CustomerCreated(
            event_id=f"CustomerCreated:{profile.workspace_id}:{profile.profile_id}",
            workspace_id=profile.workspace_id, profile_id=profile.profile_id,
            occurred_at=profile.created_at,
        )]
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
