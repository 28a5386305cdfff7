"""An email's writes before issue 12's ledger lane, the labelled "before" bench/flows.py measures in the same run:
the message record an item of its own (``MSG#<message id>``, put if absent), beside the send's ``flow_message``
line on the profile's timeline (a plain put through the profile repository, keyed by the run's step): with the
step's claim, 3 writes an email. Today's ledger writes the record as that line (crm.adapters.flow_stats): 2.

Only the record's write and reads are copied (its find ignores the moment the composer now tags every email with;
the profile's messages are one Query of their prefix); the rest is today's service."""

from __future__ import annotations

from datetime import datetime

from crm.adapters import keys
from crm.adapters.clients import put_if_absent
from crm.adapters.flow_stats import DynamoMessageLedger, _message, legacy_message_item
from crm.adapters.items import wire_key
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.ses import tag_value
from crm.models.flow_stats import MessageEvent, MessageRecord
from crm.models.profile import TimelineEntry
from crm.ports import Change, ProfileRepository


class ThreeWritesLedger(DynamoMessageLedger):
    def __init__(self, profiles: ProfileRepository | None = None, table_name: str | None = None) -> None:
        super().__init__(table_name)
        self.profiles = profiles or DynamoProfileRepository()

    def record_sent(self, message: MessageRecord) -> None:
        put_if_absent(self.table, legacy_message_item(message))
        tagged = (tag_value(message.workspace_id), tag_value(message.profile_id))
        if message.channel != "email" or tagged != (message.workspace_id, message.profile_id):
            self._point(message, legacy=True)
        self.profiles.commit(Change(message.workspace_id, timeline=(TimelineEntry(
            workspace_id=message.workspace_id, profile_id=message.profile_id, occurred_at=message.sent_at,
            type="flow_message", ref=f"{message.run_id}:{message.step_id}",
            summary={"flow_id": message.flow_id, "step_id": message.step_id, "channel": message.channel,
                     "message_id": message.message_id}),)))

    def find(self, message_id: str, workspace_id: str | None = None, profile_id: str | None = None,
             sent_at: datetime | None = None) -> MessageRecord | None:
        return super().find(message_id, workspace_id, profile_id)  # a record of its own: its key has no moment

    def note_event(self, message: MessageRecord, event: MessageEvent) -> MessageRecord | None:
        return self._note(wire_key(keys.flow_message(message.workspace_id, message.profile_id, message.message_id)),
                          event)[1]

    def touches(self, workspace_id: str, profile_id: str, since: datetime) -> list[MessageRecord]:
        found = [_message(item) for item in self._legacy_items(workspace_id, profile_id, since)]
        return sorted((m for m in found if m.sent_at >= since), key=lambda m: (m.sent_at, m.message_id))

    def message_of_step(self, workspace_id: str, profile_id: str, run_id: str, step_id: str,
                        claimed_at: datetime) -> MessageRecord | None:
        return next((m for m in self.touches(workspace_id, profile_id, claimed_at)
                     if (m.run_id, m.step_id) == (run_id, step_id)), None)
