"""The workspace's suppression list (crm.flows.ports.Suppressions) over DynamoDB: hard bounces and complaints.

One item per workspace and address, keyed by a hash of the normalised address (crm.adapters.keys): the item
holds the reason and the time, never the address, so an erasure can leave it in place (the address must
stay unmailable) without keeping personal data.

SES's own account-level suppression list is respected on bounce, not per send: SES checks it on every send
made with the stack's configuration set (its SuppressionOptions, template.yaml) and, for an address on it,
delivers nothing and publishes a Permanent bounce of subtype OnAccountSuppressionList, which
crm.messaging.feedback turns into this list's item. So a send costs one GetItem here (0.5 read unit) and no SES
request; an address SES suppressed costs at most one (unbilled-delivery) send per workspace
(docs/deliverability.md).
"""

from __future__ import annotations

from datetime import datetime

from crm.adapters import keys
from crm.adapters.clients import client
from crm.adapters.items import wire_key
from crm.config import settings
from crm.contact import normalise_email


def suppression_address(address: str) -> str:
    """The address as the list keys it: one spelling however it was typed (crm.contact)."""
    return normalise_email(address) or address.strip().lower()


class DynamoSuppressions:
    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def is_suppressed(self, workspace_id: str, address: str) -> bool:
        key = keys.suppression(workspace_id, suppression_address(address))
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(key), ProjectionExpression="pk")
        return "Item" in found

    def suppress(self, workspace_id: str, address: str, reason: str, at: datetime) -> None:
        """Suppress the address; the first reason and time are kept when it is suppressed again (a redelivered
        bounce, a complaint after a bounce): one write either way, no read."""
        key = keys.suppression(workspace_id, suppression_address(address))
        client("dynamodb").update_item(
            TableName=self.table, Key=wire_key(key),
            UpdateExpression="SET entity = :entity, workspace_id = :ws, #reason = if_not_exists(#reason, :reason), "
                             "suppressed_at = if_not_exists(suppressed_at, :at)",
            ExpressionAttributeNames={"#reason": "reason"},
            ExpressionAttributeValues={":entity": {"S": "suppression"}, ":ws": {"S": workspace_id},
                                       ":reason": {"S": reason}, ":at": {"S": at.isoformat()}})

    def suppression(self, workspace_id: str, address: str) -> tuple[str, datetime] | None:
        """Why and since when the address is suppressed (the API and tests), or None."""
        key = keys.suppression(workspace_id, suppression_address(address))
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(key))
        if "Item" not in found:
            return None
        item = found["Item"]
        return str(item["reason"]["S"]), datetime.fromisoformat(str(item["suppressed_at"]["S"]))
