"""What flows bring in, in the single table (keys in crm.adapters.keys): the four ports of crm.flows.ports that
the stats read (MessageLedger, FlowCounters, Attributions, SplitWinners).

Each write that must count once is a condition DynamoDB checks, so a redelivered SES event, a repeated order
event or two invocations racing count nothing twice:

- a message record: put if absent; each event type set once (``attribute_not_exists(events.#type)``);
- counters: one item per flow, day, step and variant, ``ADD`` per name (short attribute names,
  crm.adapters.counter_names), the rows one batch counted on written as one item's update;
- an attribution: put if absent on the order's key; a refund adds once per refund id (``NOT contains``);
- an A/B winner: put if absent, then whoever lost the race reads the stored one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from crm.adapters import counter_names, keys
from crm.adapters.clients import client, put_if_absent, query_items
from crm.adapters.items import Item, wire_key
from crm.adapters.ses import tag_value
from crm.adapters.throttling import batch_write
from crm.config import settings
from crm.models.flow_stats import ALL_STEPS, Attribution, CounterRow, MessageEvent, MessageEventType, MessageRecord

# A counter is its own attribute (ADD needs a top-level or existing path), named short (counter_names.short_name).
# The long form, written before and read still: ``n:<name>`` the item's own row's counter, and another row's
# carried on it ``o:<step>|<variant>|<name>`` (step ids and variants hold no ``|``); written yet for what the
# short form cannot hold (a name with a ``|``).
COUNTER_PREFIX = "n:"
CARRIED_PREFIX = "o:"
# Above every character a step id or a variant holds: the end of a day's sort keys.
_END_OF_DAY = "#\uffff"


def _refused(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def _number(value: int | Decimal) -> dict[str, str]:
    return {"N": str(value)}


# --- message records ------------------------------------------------------------------------------------

def _message_item(message: MessageRecord) -> Item:
    static = message.model_dump_json(exclude={"events", "clicked_links"})
    return {**wire_key(keys.flow_message(message.workspace_id, message.profile_id, message.message_id)),
            "entity": {"S": "flow_message"}, "message": {"S": static},
            "sent_epoch": _number(Decimal(str(message.sent_at.timestamp()))),
            "events": {"M": {kind.value: {"S": at.isoformat()} for kind, at in message.events.items()}},
            "clicked_links": {"L": [{"S": link} for link in message.clicked_links]}}


def _message(item: Item) -> MessageRecord:
    return MessageRecord.model_validate_json(item["message"]["S"]).model_copy(update={
        "events": {MessageEventType(kind): datetime.fromisoformat(at["S"])
                   for kind, at in item.get("events", {}).get("M", {}).items()},
        "clicked_links": tuple(link["S"] for link in item.get("clicked_links", {}).get("L", []))})


class DynamoMessageLedger:
    """An email sent costs one put: the record in the profile's partition (an erasure takes it), found by the
    workspace and profile SES's tags carry (where a tag would alter them, a pointer too). An SMS adds a pointer
    by message id, holding ids only, as its status carries no tags; and so does a message a merge moved (its
    tags name the merged profile). An event costs one conditional update."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def record_sent(self, message: MessageRecord) -> None:
        put_if_absent(self.table, _message_item(message))
        tagged = (tag_value(message.workspace_id), tag_value(message.profile_id))
        if message.channel != "email" or tagged != (message.workspace_id, message.profile_id):
            self._point(message)

    def _point(self, message: MessageRecord) -> None:
        pointer = {**wire_key(keys.message_pointer(message.message_id)), "entity": {"S": "message_pointer"},
                   "workspace_id": {"S": message.workspace_id}, "profile_id": {"S": message.profile_id}}
        client("dynamodb").put_item(TableName=self.table, Item=pointer)

    def find(self, message_id: str, workspace_id: str | None = None,
             profile_id: str | None = None) -> MessageRecord | None:
        if workspace_id is not None and profile_id is not None:
            found = self._get(workspace_id, profile_id, message_id)
            if found is not None:
                return found
        # No tags (SMS), or tags that no longer name the partition (a profile id SES's tag rules changed).
        pointer = client("dynamodb").get_item(TableName=self.table, ConsistentRead=True,
                                              Key=wire_key(keys.message_pointer(message_id))).get("Item")
        if pointer is None or (workspace_id is not None and pointer["workspace_id"]["S"] != workspace_id):
            return None
        return self._get(pointer["workspace_id"]["S"], pointer["profile_id"]["S"], message_id)

    def _get(self, workspace_id: str, profile_id: str, message_id: str) -> MessageRecord | None:
        found = client("dynamodb").get_item(TableName=self.table, ConsistentRead=True,
                                            Key=wire_key(keys.flow_message(workspace_id, profile_id, message_id)))
        return _message(found["Item"]) if "Item" in found else None

    def note_event(self, message: MessageRecord, event: MessageEvent) -> MessageRecord | None:
        update = "SET #events.#type = :at"
        values: dict[str, Any] = {":at": {"S": event.at.isoformat()}}
        if event.link is not None:
            update += ", clicked_links = list_append(clicked_links, :link)"
            values[":link"] = {"L": [{"S": event.link}]}
        try:
            answer = client("dynamodb").update_item(
                TableName=self.table,
                Key=wire_key(keys.flow_message(message.workspace_id, message.profile_id, message.message_id)),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#events.#type)",
                ExpressionAttributeNames={"#events": "events", "#type": event.type.value},
                ExpressionAttributeValues=values, ReturnValues="ALL_NEW")
        except ClientError as error:
            if _refused(error):
                return None  # seen before, or no such message (erased with its profile)
            raise
        return _message(answer["Attributes"])

    def touches(self, workspace_id: str, profile_id: str, since: datetime) -> list[MessageRecord]:
        pk = keys.flow_message(workspace_id, profile_id, "")["pk"]
        request = {"TableName": self.table, "ConsistentRead": True,
                   "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                   "FilterExpression": "sent_epoch >= :since",
                   "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": keys.FLOW_MESSAGE_PREFIX},
                                                 ":since": _number(Decimal(str(since.timestamp())))}}
        found = [_message(item) for item in query_items(request)]
        return sorted((m for m in found if m.sent_at >= since), key=lambda m: (m.sent_at, m.message_id))

    def move_messages(self, workspace_id: str, from_profile_id: str, to_profile_id: str) -> int:
        """Each message put in the survivor's partition (if absent) and pointed to, then the old ones
        deleted in batches (the flows function's role deletes only so); a retry after a crash finds what is left
        in the old partition and does the rest."""
        pk = keys.flow_message(workspace_id, from_profile_id, "")["pk"]
        request = {"TableName": self.table, "ConsistentRead": True,
                   "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                   "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": keys.FLOW_MESSAGE_PREFIX}}}
        moving = [_message(item) for item in query_items(request)]
        for message in moving:
            moved = message.model_copy(update={"profile_id": to_profile_id})
            put_if_absent(self.table, _message_item(moved))
            self._point(moved)
        batch_write(self.table, [{"DeleteRequest": {"Key": wire_key(keys.flow_message(
            workspace_id, from_profile_id, message.message_id))}} for message in moving])
        return len(moving)


# --- counters -------------------------------------------------------------------------------------------

class DynamoFlowCounters:
    """One UpdateItem per ``add_rows``: per flow and day a batch of the flows function counted on
    (crm.flows.batch_counts), however many rows it touched; the stats read one
    Query per flow and range of days.

    A delivery counts on the flow-wide row and a step's (a run's entry and its first wait, a send, an open):
    rows written together are one item's update, the first step row's (its ``carrier``), the other rows'
    counters carried on it beside its own (``counter_attribute``: short names). A flow-wide item is
    then written only by what counts on it alone (a batch that counted on no step of the flow). An item gathers
    the rows carried on it over a day: at a built-in flow's fullest under 1 KB, one write unit a write
    (docs/flow-runs.md).
    The read sums every counter into the row it names, carried or not, short or long (items written before,
    with long names, are read alike)."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def add(self, workspace_id: str, flow_id: str, day: date, counts: Mapping[str, int | Decimal],
            step_id: str = ALL_STEPS, variant: str = ALL_STEPS) -> None:
        self.add_rows(workspace_id, flow_id, day, {(step_id, variant): counts})

    def add_rows(self, workspace_id: str, flow_id: str, day: date,
                 rows: Mapping[tuple[str, str], Mapping[str, int | Decimal]]) -> None:
        counted = {row: counts for row, counts in rows.items() if counts}
        if not counted:
            return
        step_id, variant = _carrier(counted)
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        for row, counts in counted.items():
            for name, value in counts.items():
                index = len(names)
                names[f"#n{index}"] = counter_attribute((step_id, variant), row, name)
                values[f":n{index}"] = _number(value)
        values |= {":ws": {"S": workspace_id}, ":flow": {"S": flow_id}, ":day": {"S": day.isoformat()},
                   ":step": {"S": step_id}, ":variant": {"S": variant}, ":entity": {"S": "flow_counters"}}
        update = ("SET #entity = :entity, #ws = :ws, #flow = :flow, #day = :day, #step = :step, #variant = :variant "
                  "ADD " + ", ".join(f"{name} :{name[1:]}" for name in names))
        names |= {"#entity": "entity", "#ws": "workspace_id", "#flow": "flow_id", "#day": "day", "#step": "step_id",
                  "#variant": "variant"}
        key = keys.flow_counters(workspace_id, flow_id, day.isoformat(), step_id, variant)
        client("dynamodb").update_item(TableName=self.table, Key=wire_key(key), UpdateExpression=update,
                                       ExpressionAttributeNames=names, ExpressionAttributeValues=values)

    def rows(self, workspace_id: str, flow_id: str, first_day: date, last_day: date) -> list[CounterRow]:
        if last_day < first_day:
            return []
        request = {"TableName": self.table,
                   "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
                   "ExpressionAttributeValues": {":pk": {"S": keys.flow_counters_pk(workspace_id, flow_id)},
                                                 ":first": {"S": first_day.isoformat()},
                                                 ":last": {"S": last_day.isoformat() + _END_OF_DAY}}}
        totals: dict[tuple[date, str, str], dict[str, Decimal]] = {}
        for item in query_items(request):
            if item.get("entity", {}).get("S") != "flow_counters":
                continue
            day = date.fromisoformat(item["day"]["S"])
            own = item["step_id"]["S"], item["variant"]["S"]
            for attribute, value in item.items():
                counter = _counter(own, attribute)
                if counter is None:
                    continue
                step_id, variant, name = counter
                held = totals.setdefault((day, step_id, variant), {})
                held[name] = held.get(name, Decimal(0)) + Decimal(value["N"])
        return [CounterRow(workspace_id=workspace_id, flow_id=flow_id, day=day, step_id=step_id, variant=variant,
                           counts=counts) for (day, step_id, variant), counts in sorted(totals.items())]


def counter_attribute(own: tuple[str, str], row: tuple[str, str], name: str) -> str:
    """The attribute of ``row``'s counter ``name`` on the item of row ``own``: short, else the long form."""
    short = counter_names.short_name(own, row, name)
    if short is not None:
        return short
    return f"{COUNTER_PREFIX}{name}" if row == own else f"{CARRIED_PREFIX}{row[0]}|{row[1]}|{name}"


def _counter(own: tuple[str, str], attribute: str) -> tuple[str, str, str] | None:
    """(step, variant, name) of a counter attribute of the item of row ``own``, in either form; None if not one."""
    if attribute.startswith(COUNTER_PREFIX):
        return own[0], own[1], attribute[len(COUNTER_PREFIX):]
    if attribute.startswith(CARRIED_PREFIX):
        step_id, variant, name = attribute[len(CARRIED_PREFIX):].split("|", 2)
        return step_id, variant, name
    return counter_names.parse(own, attribute)


def _carrier(rows: Mapping[tuple[str, str], object]) -> tuple[str, str]:
    """The row whose item a write of ``rows`` updates: the first step row, so the flow-wide item, which every
    delivery counts on, does not gather every step's counters (an item over 1 KB costs a second write unit)."""
    steps = [row for row in rows if row != (ALL_STEPS, ALL_STEPS)]
    return min(steps) if steps else (ALL_STEPS, ALL_STEPS)


# --- attributions ---------------------------------------------------------------------------------------

def _attribution(item: Item) -> Attribution:
    return Attribution.model_validate_json(item["attribution"]["S"]).model_copy(update={
        "refunded": Decimal(item["refunded"]["N"]),
        "refund_ids": tuple(refund["S"] for refund in item["refund_ids"]["L"])})


class DynamoAttributions:
    """One item per attributed order, on the order's key: the claim is a put if absent."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def _key(self, workspace_id: str, store_id: str, order_id: str) -> Item:
        return wire_key(keys.attribution(workspace_id, store_id, order_id))

    def claim(self, attribution: Attribution) -> bool:
        item = {**self._key(attribution.workspace_id, attribution.store_id, attribution.order_id),
                "entity": {"S": "attribution"},
                "attribution": {"S": attribution.model_dump_json(exclude={"refunded", "refund_ids"})},
                "refunded": _number(attribution.refunded),
                "refund_ids": {"L": [{"S": refund} for refund in attribution.refund_ids]}}
        return put_if_absent(self.table, item)

    def get(self, workspace_id: str, store_id: str, order_id: str) -> Attribution | None:
        found = client("dynamodb").get_item(TableName=self.table, ConsistentRead=True,
                                            Key=self._key(workspace_id, store_id, order_id))
        return _attribution(found["Item"]) if "Item" in found else None

    def add_refund(self, workspace_id: str, store_id: str, order_id: str, refund_id: str,
                   amount: Decimal) -> Attribution | None:
        try:
            answer = client("dynamodb").update_item(
                TableName=self.table, Key=self._key(workspace_id, store_id, order_id),
                UpdateExpression="SET refunded = refunded + :amount, refund_ids = list_append(refund_ids, :ids)",
                ConditionExpression="attribute_exists(pk) AND NOT contains(refund_ids, :id)",
                ExpressionAttributeValues={":amount": _number(amount), ":ids": {"L": [{"S": refund_id}]},
                                           ":id": {"S": refund_id}},
                ReturnValues="ALL_NEW")
        except ClientError as error:
            if _refused(error):
                return None  # not attributed, or this refund was counted before
            raise
        return _attribution(answer["Attributes"])


# --- A/B winners ----------------------------------------------------------------------------------------

class DynamoSplitWinners:
    """Beside the flow's counters (one Query lists a flow's winners); never overwritten once stored."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def winners(self, workspace_id: str, flow_id: str) -> dict[str, int]:
        request = {"TableName": self.table, "ConsistentRead": True,
                   "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                   "ExpressionAttributeValues": {":pk": {"S": keys.flow_counters_pk(workspace_id, flow_id)},
                                                 ":prefix": {"S": keys.SPLIT_WINNER_PREFIX}}}
        return {item["split_id"]["S"]: int(item["path"]["N"]) for item in query_items(request)}

    def decide(self, workspace_id: str, flow_id: str, split_id: str, path: int, at: datetime) -> int:
        key = wire_key(keys.split_winner(workspace_id, flow_id, split_id))
        item = {**key, "entity": {"S": "split_winner"}, "split_id": {"S": split_id}, "path": _number(path),
                "decided_at": {"S": at.isoformat()}}
        if put_if_absent(self.table, item):
            return path
        stored = client("dynamodb").get_item(TableName=self.table, ConsistentRead=True, Key=key)["Item"]
        return int(stored["path"]["N"])

    def due_for_check(self, workspace_id: str, flow_id: str, split_id: str) -> bool:
        return True
