"""What flows bring in, in the single table (keys in crm.adapters.keys): the four ports of crm.flows.ports that
the stats read (MessageLedger, FlowCounters, Attributions, SplitWinners).

Each write that must count once is a condition DynamoDB checks, so a redelivered SES event, a repeated order
event or two invocations racing count nothing twice:

- a message record (its timeline line): put if absent; each event type set once
  (``attribute_not_exists(events.#type)``);
- counters: one item per flow, day, step and variant, ``ADD`` per name (short attribute names,
  crm.adapters.counter_names), the rows one batch counted on written as one item's update;
- an attribution: put if absent on the order's key; a refund adds once per refund id (``NOT contains``);
- an A/B winner: put if absent, then whoever lost the race reads the stored one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from crm.adapters import counter_names, keys
from crm.adapters.clients import client, put_if_absent, query_items
from crm.adapters.items import Item, from_item, to_item, wire_key
from crm.adapters.ses import tag_value
from crm.adapters.throttling import batch_write
from crm.config import settings
from crm.models.flow_stats import (
    ALL_STEPS,
    MESSAGE_LINE,
    Attribution,
    CounterRow,
    MessageEvent,
    MessageEventType,
    MessageRecord,
)
from crm.models.profile import TimelineEntry

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

def _line_key(workspace_id: str, profile_id: str, sent_at: datetime, message_id: str) -> Item:
    """The key of a message's record: its ``flow_message`` timeline line (TimelineEntry.sort_key's form)."""
    return wire_key(keys.timeline(workspace_id, profile_id,
                                  f"{keys.TIMELINE_PREFIX}{sent_at.astimezone(UTC).isoformat()}#{MESSAGE_LINE}#{message_id}"))


def _line_item(message: MessageRecord) -> Item:
    """The message as its timeline line (what the profile's timeline shows: flow, step, channel, message id), with
    what the record adds in the line's summary and beside it (its events, its clicked links)."""
    summary = {"flow_id": message.flow_id, "step_id": message.step_id, "channel": message.channel,
               "message_id": message.message_id, "run_id": message.run_id, "flow_version": message.flow_version,
               "trigger_type": message.trigger_type, "variant": message.variant}
    line = TimelineEntry(workspace_id=message.workspace_id, profile_id=message.profile_id,
                         occurred_at=message.sent_at, type=MESSAGE_LINE, ref=message.message_id,
                         summary={name: value for name, value in summary.items() if value is not None})
    item = to_item(keys.timeline(message.workspace_id, message.profile_id, line.sort_key), "timeline", line)
    return {**item, **_events_attributes(message)}


def _events_attributes(message: MessageRecord) -> Item:
    return {"events": {"M": {kind.value: {"S": at.isoformat()} for kind, at in message.events.items()}},
            "clicked_links": {"L": [{"S": link} for link in message.clicked_links]}}


def legacy_message_item(message: MessageRecord) -> Item:
    """A record as written before issue 12's ledger lane (``MSG#<message id>``, apart from its timeline line): a
    merge moves such a record as it is, so that its own line, left where it was, is not shown twice."""
    static = message.model_dump_json(exclude={"events", "clicked_links"})
    return {**wire_key(keys.flow_message(message.workspace_id, message.profile_id, message.message_id)),
            "entity": {"S": "flow_message"}, "message": {"S": static},
            "sent_epoch": _number(Decimal(str(message.sent_at.timestamp()))), **_events_attributes(message)}


def _message(item: Item) -> MessageRecord:
    """The record of a line or of a legacy item (wire form)."""
    events = {MessageEventType(kind): datetime.fromisoformat(at["S"])
              for kind, at in item.get("events", {}).get("M", {}).items()}
    links = tuple(link["S"] for link in item.get("clicked_links", {}).get("L", []))
    if "message" in item:
        return MessageRecord.model_validate_json(item["message"]["S"]).model_copy(update={
            "events": events, "clicked_links": links})
    line = from_item(item)
    summary = line["summary"]
    return MessageRecord(workspace_id=line["workspace_id"], profile_id=line["profile_id"],
                         message_id=summary["message_id"], channel=summary["channel"], flow_id=summary["flow_id"],
                         flow_version=int(summary["flow_version"]), step_id=summary["step_id"],
                         run_id=summary["run_id"], variant=summary.get("variant"),
                         trigger_type=summary["trigger_type"], sent_at=datetime.fromisoformat(line["occurred_at"]),
                         events=events, clicked_links=links)


def message_id_of_key(key: keys.Key) -> str | None:
    """The message id a profile partition's key names, if it is a message record's (a privacy erasure deletes its
    pointer, listed so; a ``flow_message`` line of before names a run's step, a pointer that is not there)."""
    sort_key = str(key["sk"])
    if sort_key.startswith(keys.FLOW_MESSAGE_PREFIX):
        return sort_key.removeprefix(keys.FLOW_MESSAGE_PREFIX)
    marker = f"#{MESSAGE_LINE}#"
    if sort_key.startswith(keys.TIMELINE_PREFIX) and marker in sort_key:
        return sort_key.split(marker, 1)[1]
    return None


def _is_legacy(item: Item) -> bool:
    return str(item["sk"]["S"]).startswith(keys.FLOW_MESSAGE_PREFIX)


def _is_record(item: Item) -> bool:
    """A legacy record, or a line that is one (a ``flow_message`` line written beside a legacy record is not)."""
    return _is_legacy(item) or "run_id" in item.get("summary", {}).get("M", {})


class DynamoMessageLedger:
    """An email sent costs one put: its record is its ``flow_message`` timeline line, in the profile's partition
    (an erasure takes it; the timeline shows it), found by the workspace, profile and send time SES's tags carry
    (where a tag would alter them, a pointer too). An SMS adds a pointer by message id (to the line's key), as its
    status carries no tags; and so does a message a merge moved (its tags name the merged profile). An event
    costs one conditional update. Records written before as items of their own (``MSG#<message id>``, beside a
    line of their own) are read, noted, found and moved still (``legacy_message_item``)."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def record_sent(self, message: MessageRecord) -> None:
        put_if_absent(self.table, _line_item(message))
        tagged = (tag_value(message.workspace_id), tag_value(message.profile_id))
        if message.channel != "email" or tagged != (message.workspace_id, message.profile_id):
            self._point(message)

    def _point(self, message: MessageRecord, legacy: bool = False) -> None:
        pointer = {**wire_key(keys.message_pointer(message.message_id)), "entity": {"S": "message_pointer"},
                   "workspace_id": {"S": message.workspace_id}, "profile_id": {"S": message.profile_id}}
        if not legacy:
            pointer["sent_at"] = {"S": message.sent_at.isoformat()}
        client("dynamodb").put_item(TableName=self.table, Item=pointer)

    def find(self, message_id: str, workspace_id: str | None = None, profile_id: str | None = None,
             sent_at: datetime | None = None) -> MessageRecord | None:
        if workspace_id is not None and profile_id is not None:
            found = self._get(workspace_id, profile_id, message_id, sent_at)
            if found is not None:
                return found
        # No tags (SMS), or tags that no longer name the partition (a profile id SES's tag rules changed).
        pointer = client("dynamodb").get_item(TableName=self.table, ConsistentRead=True,
                                              Key=wire_key(keys.message_pointer(message_id))).get("Item")
        if pointer is None or (workspace_id is not None and pointer["workspace_id"]["S"] != workspace_id):
            return None
        pointed = datetime.fromisoformat(pointer["sent_at"]["S"]) if "sent_at" in pointer else None
        return self._get(pointer["workspace_id"]["S"], pointer["profile_id"]["S"], message_id, pointed)

    def _get(self, workspace_id: str, profile_id: str, message_id: str,
             sent_at: datetime | None) -> MessageRecord | None:
        """The line sent at ``sent_at``; without it (an email sent before its tag was set), the legacy item."""
        key = (_line_key(workspace_id, profile_id, sent_at, message_id) if sent_at is not None
               else wire_key(keys.flow_message(workspace_id, profile_id, message_id)))
        found = client("dynamodb").get_item(TableName=self.table, ConsistentRead=True, Key=key).get("Item")
        return _message(found) if found is not None else None

    def note_event(self, message: MessageRecord, event: MessageEvent) -> MessageRecord | None:
        """On the message's line; on its legacy item when it has no line (one refused update more, for those only:
        the refusal's old image tells a line that holds the event already from no line)."""
        line = _line_key(message.workspace_id, message.profile_id, message.sent_at, message.message_id)
        held, noted = self._note(line, event)
        if held:
            return noted
        return self._note(wire_key(keys.flow_message(message.workspace_id, message.profile_id,
                                                     message.message_id)), event)[1]

    def _note(self, key: Item, event: MessageEvent) -> tuple[bool, MessageRecord | None]:
        """Whether the item exists, and it updated (None: the event's type was on it before, or no item)."""
        update = "SET #events.#type = :at"
        values: dict[str, Any] = {":at": {"S": event.at.isoformat()}}
        if event.link is not None:
            update += ", clicked_links = list_append(clicked_links, :link)"
            values[":link"] = {"L": [{"S": event.link}]}
        try:
            answer = client("dynamodb").update_item(
                TableName=self.table, Key=key, UpdateExpression=update,
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#events.#type)",
                ExpressionAttributeNames={"#events": "events", "#type": event.type.value},
                ExpressionAttributeValues=values, ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as error:
            if _refused(error):
                # seen before; or no such item (a legacy record, or one erased with its profile)
                return "Item" in error.response, None
            raise
        return True, _message(answer["Attributes"])

    def touches(self, workspace_id: str, profile_id: str, since: datetime) -> list[MessageRecord]:
        """The lines from ``since`` on (one Query of the timeline's keys from there, its messages' lines kept by
        the filter), and the legacy items (one Query of their prefix)."""
        pk = keys.profile(workspace_id, profile_id)["pk"]
        start = f"{keys.TIMELINE_PREFIX}{since.astimezone(UTC).isoformat()}"
        lines = {"TableName": self.table, "ConsistentRead": True,
                 "KeyConditionExpression": "pk = :pk AND sk BETWEEN :from AND :to",
                 "FilterExpression": "#type = :type", "ExpressionAttributeNames": {"#type": "type"},
                 "ExpressionAttributeValues": {":pk": {"S": pk}, ":from": {"S": start},
                                               ":to": {"S": f"{keys.TIMELINE_PREFIX}\uffff"},
                                               ":type": {"S": MESSAGE_LINE}}}
        items = (*query_items(lines), *self._legacy_items(workspace_id, profile_id, since))
        found = [_message(item) for item in items if _is_record(item)]
        return sorted((m for m in found if m.sent_at >= since), key=lambda m: (m.sent_at, m.message_id))

    def _legacy_items(self, workspace_id: str, profile_id: str, since: datetime | None = None) -> list[Item]:
        pk = keys.flow_message(workspace_id, profile_id, "")["pk"]
        request: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": keys.FLOW_MESSAGE_PREFIX}}}
        if since is not None:
            request["FilterExpression"] = "sent_epoch >= :since"
            request["ExpressionAttributeValues"][":since"] = _number(Decimal(str(since.timestamp())))
        return list(query_items(request))

    def message_of_step(self, workspace_id: str, profile_id: str, run_id: str, step_id: str,
                        claimed_at: datetime) -> MessageRecord | None:
        """The line whose time is the claim's (the service sends and records at the moment it claimed: one Query
        of that moment's keys), else a legacy record sent since the claim."""
        prefix = f"{keys.TIMELINE_PREFIX}{claimed_at.astimezone(UTC).isoformat()}#{MESSAGE_LINE}#"
        request = {"TableName": self.table, "ConsistentRead": True,
                   "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                   "ExpressionAttributeValues": {":pk": {"S": keys.profile(workspace_id, profile_id)["pk"]},
                                                 ":prefix": {"S": prefix}}}
        for items in (query_items(request), self._legacy_items(workspace_id, profile_id, claimed_at)):
            records = (_message(item) for item in items if _is_record(item))
            found = next((m for m in records if (m.run_id, m.step_id) == (run_id, step_id)), None)
            if found is not None:
                return found
        return None

    def move_messages(self, workspace_id: str, from_profile_id: str, to_profile_id: str) -> int:
        """Each message put in the survivor's partition (if absent; a line as a line, a legacy item as one) and
        pointed to, then the old ones deleted in batches (the flows function's role deletes only so); a retry
        after a crash finds what is left in the old partition and does the rest."""
        pk = keys.profile(workspace_id, from_profile_id)["pk"]
        lines = {"TableName": self.table, "ConsistentRead": True,
                 "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                 "FilterExpression": "#type = :type", "ExpressionAttributeNames": {"#type": "type"},
                 "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": keys.TIMELINE_PREFIX},
                                               ":type": {"S": MESSAGE_LINE}}}
        moving = [item for item in (*query_items(lines), *self._legacy_items(workspace_id, from_profile_id))
                  if _is_record(item)]
        for item in moving:
            moved = _message(item).model_copy(update={"profile_id": to_profile_id})
            legacy = _is_legacy(item)
            put_if_absent(self.table, legacy_message_item(moved) if legacy else _line_item(moved))
            self._point(moved, legacy)
        batch_write(self.table, [{"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}}
                                 for item in moving])
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
