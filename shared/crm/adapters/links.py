"""SMS short links (crm.messaging.shortlinks) in the single table, and the note of a followed link the public
track function puts on the flows queue (crm.flows.inbox.LinkFollowed)."""

from __future__ import annotations

from crm.adapters import keys
from crm.adapters.clients import client, put_if_absent
from crm.adapters.items import wire_key
from crm.config import settings
from crm.flows.inbox import LinkFollowed
from crm.messaging.shortlinks import ShortLink


class DynamoShortLinks:
    """One item per code, written when the SMS is composed, read by code alone (keys.short_link: the track
    function's role may read only LINK# items of the table, besides its write keys and stores), and a mark in
    the profile's partition (keys.short_link_mark) that an erasure deletes it by (crm.adapters.privacy)."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def save(self, link: ShortLink) -> None:
        # The mark first: a link is never stored without the mark an erasure finds it by.
        mark = {**wire_key(keys.short_link_mark(link.workspace_id, link.profile_id, link.code)),
                "entity": {"S": "short_link_mark"}}
        client("dynamodb").put_item(TableName=self.table, Item=mark)
        item = {**wire_key(keys.short_link(link.code)), "entity": {"S": "short_link"},
                "link": {"S": link.model_dump_json()}}
        put_if_absent(self.table, item)

    def get(self, code: str) -> ShortLink | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.short_link(code))).get("Item")
        return ShortLink.model_validate_json(found["link"]["S"]) if found else None


class SqsLinkNotices:
    """Followed links, for the flows function to record on their messages (FLOWS_QUEUE_URL)."""

    def __init__(self, queue_url: str | None = None) -> None:
        self.queue_url = queue_url

    def notify(self, notice: LinkFollowed) -> None:
        url = self.queue_url or settings().require("flows_queue_url")
        client("sqs").send_message(QueueUrl=url, MessageBody=notice.model_dump_json())
