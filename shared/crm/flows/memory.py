"""The flow ports held in memory: what a backtest or ``crm flows test`` runs the real flows service on (no
AWS, nothing sent), and what unit tests use. Each behaves as its DynamoDB adapter does (the contract tests in
tests/contract run the same cases over both)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from crm.messaging.shortlinks import ShortLink
from crm.models.flow_stats import ALL_STEPS, Attribution, CounterRow, MessageEvent, MessageRecord


@dataclass
class MemoryMessageLedger:
    messages: dict[str, MessageRecord] = field(default_factory=dict)

    def record_sent(self, message: MessageRecord) -> None:
        self.messages.setdefault(message.message_id, message)

    def find(self, message_id: str, workspace_id: str | None = None,
             profile_id: str | None = None) -> MessageRecord | None:
        found = self.messages.get(message_id)
        if found is None or (workspace_id is not None and found.workspace_id != workspace_id):
            return None
        return found

    def note_event(self, message: MessageRecord, event: MessageEvent) -> MessageRecord | None:
        stored = self.messages.get(message.message_id)
        if stored is None or event.type in stored.events:
            return None
        links = stored.clicked_links
        if event.link is not None and event.link not in links:
            links = (*links, event.link)
        updated = stored.model_copy(update={"events": {**stored.events, event.type: event.at},
                                            "clicked_links": links})
        self.messages[message.message_id] = updated
        return updated

    def touches(self, workspace_id: str, profile_id: str, since: datetime) -> list[MessageRecord]:
        return sorted((m for m in self.messages.values()
                       if m.workspace_id == workspace_id and m.profile_id == profile_id and m.sent_at >= since),
                      key=lambda m: (m.sent_at, m.message_id))

    def move_messages(self, workspace_id: str, from_profile_id: str, to_profile_id: str) -> int:
        moving = [m for m in self.messages.values()
                  if m.workspace_id == workspace_id and m.profile_id == from_profile_id]
        for message in moving:
            self.messages[message.message_id] = message.model_copy(update={"profile_id": to_profile_id})
        return len(moving)


@dataclass
class MemoryFlowCounters:
    items: dict[tuple[str, str, date, str, str], dict[str, Decimal]] = field(default_factory=dict)

    def add(self, workspace_id: str, flow_id: str, day: date, counts: Mapping[str, int | Decimal],
            step_id: str = ALL_STEPS, variant: str = ALL_STEPS) -> None:
        held = self.items.setdefault((workspace_id, flow_id, day, step_id, variant), {})
        for name, value in counts.items():
            held[name] = held.get(name, Decimal(0)) + Decimal(value)

    def rows(self, workspace_id: str, flow_id: str, first_day: date, last_day: date) -> list[CounterRow]:
        return [CounterRow(workspace_id=ws, flow_id=flow, day=day, step_id=step, variant=variant,
                           counts=dict(counts))
                for (ws, flow, day, step, variant), counts in sorted(self.items.items())
                if ws == workspace_id and flow == flow_id and first_day <= day <= last_day]


@dataclass
class MemoryAttributions:
    items: dict[tuple[str, str, str], Attribution] = field(default_factory=dict)

    def claim(self, attribution: Attribution) -> bool:
        key = (attribution.workspace_id, attribution.store_id, attribution.order_id)
        if key in self.items:
            return False
        self.items[key] = attribution
        return True

    def get(self, workspace_id: str, store_id: str, order_id: str) -> Attribution | None:
        return self.items.get((workspace_id, store_id, order_id))

    def add_refund(self, workspace_id: str, store_id: str, order_id: str, refund_id: str,
                   amount: Decimal) -> Attribution | None:
        held = self.items.get((workspace_id, store_id, order_id))
        if held is None or refund_id in held.refund_ids:
            return None
        updated = held.model_copy(update={"refunded": held.refunded + amount,
                                          "refund_ids": (*held.refund_ids, refund_id)})
        self.items[(workspace_id, store_id, order_id)] = updated
        return updated


@dataclass
class MemorySplitWinners:
    items: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    def winners(self, workspace_id: str, flow_id: str) -> dict[str, int]:
        return dict(self.items.get((workspace_id, flow_id), {}))

    def decide(self, workspace_id: str, flow_id: str, split_id: str, path: int, at: datetime) -> int:
        return self.items.setdefault((workspace_id, flow_id), {}).setdefault(split_id, path)


@dataclass
class MemoryShortLinks:
    """crm.messaging.shortlinks.ShortLinks in memory."""

    items: dict[str, ShortLink] = field(default_factory=dict)

    def save(self, link: ShortLink) -> None:
        self.items.setdefault(link.code, link)

    def get(self, code: str) -> ShortLink | None:
        return self.items.get(code)
