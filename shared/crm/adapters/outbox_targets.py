"""Where the outbox's domain events go (crm.outbox, docs/events.md): the flows' events straight to the flows queue,
ten to a SendMessageBatch, and to the bus only the types something subscribes to there (``BUS_EVENT_TYPES``).

EventBridge bills every entry, and the flows' rule sent each one on to the flows queue (an SQS send each): for the
reference store 1.27M entries and 1.27M sends a month, most of them no other consumer read. A queue message now
carries the envelope EventBridge's rule delivered (source ``crm``, the type as ``detail-type``, the event as
``detail``), so the flows function reads it as before (crm.flows.inbox.BusEvent)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

from crm.adapters.clients import client
from crm.adapters.messaging import EventBridgePublisher
from crm.config import settings
from crm.models.events import EVENT_SOURCE, FLOW_EVENT_TYPES, AnyDomainEvent
from crm.ports import EventPublisher

# SendMessageBatch takes at most 10 messages and 256 KiB in all.
_BATCH_MESSAGES = 10
_BATCH_BYTES = 256 * 1024
# BUS_EVENT_TYPES' word for every type (the bus as it was before issue 12).
ALL_TYPES = "*"


def queue_body(event: AnyDomainEvent) -> str:
    """The event as EventBridge's rule put it on a queue (the fields the flows function reads, and an id)."""
    return json.dumps({"version": "0", "id": event.event_id, "source": EVENT_SOURCE, "detail-type": event.type,
                       "time": event.occurred_at.isoformat(), "resources": [],
                       "detail": json.loads(event.model_dump_json())}, separators=(",", ":"))


def send_batches(bodies: Sequence[str]) -> list[list[int]]:
    batches: list[list[int]] = []
    size = 0
    for index, body in enumerate(bodies):
        length = len(body.encode())
        if not batches or len(batches[-1]) == _BATCH_MESSAGES or size + length > _BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(index)
        size += length
    return batches


class SqsFlowEvents:
    """The flows queue as an event publisher: one SendMessageBatch per ten events."""

    def __init__(self, queue_url: str | None = None) -> None:
        self.queue_url = queue_url or settings().require("flows_queue_url")

    def publish(self, events: Sequence[AnyDomainEvent]) -> list[int]:
        bodies = [queue_body(event) for event in events]
        failed: list[int] = []
        for batch in send_batches(bodies):
            answer = client("sqs").send_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(index), "MessageBody": bodies[index]} for index in batch])
            failed += [int(entry["Id"]) for entry in answer.get("Failed", [])]
        return sorted(failed)


def bus_types(configured: str) -> frozenset[str] | None:
    """``BUS_EVENT_TYPES`` read: the types named (comma-separated), or None for every type (``*``)."""
    names = frozenset(name.strip() for name in configured.split(",") if name.strip())
    return None if ALL_TYPES in names else names


class RoutedPublisher:
    """Each event to the flows queue if flows read its type, and to the bus if its type is published there; an
    event whose either send failed is reported failed (the outbox retries it and what follows: both consumers
    drop what they have seen, docs/events.md)."""

    def __init__(self, flows: EventPublisher, bus: EventPublisher, published: Collection[str] | None,
                 flow_types: Collection[str] = FLOW_EVENT_TYPES) -> None:
        self.flows, self.bus, self.published, self.flow_types = flows, bus, published, frozenset(flow_types)

    def publish(self, events: Sequence[AnyDomainEvent]) -> list[int]:
        failed: set[int] = set()
        for target, wanted in ((self.flows, self.flow_types), (self.bus, self.published)):
            chosen = [index for index, event in enumerate(events) if wanted is None or event.type in wanted]
            if chosen:
                failed.update(chosen[i] for i in target.publish([events[index] for index in chosen]))
        return sorted(failed)


def outbox_publisher() -> RoutedPublisher:
    return RoutedPublisher(SqsFlowEvents(), EventBridgePublisher(), bus_types(settings().bus_event_types))
