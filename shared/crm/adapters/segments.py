"""Segments: definitions, sizes, members, each profile's held segments and the built-in settings."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from crm.adapters import keys
from crm.adapters.clients import client, query_items
from crm.adapters.items import Item, from_item, plain, plain_item, serializer, to_item, wire_key
from crm.adapters.throttling import DEFAULT_BACKOFF, Backoff, batch_get, batch_write, transact_write
from crm.adapters.workspace_index import partition_items, partition_pages, profile_partitions
from crm.clock import as_utc
from crm.config import settings
from crm.models.profile import Profile
from crm.models.segments import (
    BUILTIN_PREFIX,
    BuiltinSettings,
    GrowthPoint,
    HeldSegments,
    Member,
    MembershipChange,
    SegmentRecord,
)
from crm.ports import (
    ConcurrentUpdate,
    ProfilePage,
)


def _write_batches(table: str, requests: list[dict[str, Any]], backoff: Backoff = DEFAULT_BACKOFF) -> None:
    """BatchWriteItem, 25 a request, until DynamoDB has processed every one (the rest after a backoff)."""
    batch_write(table, requests, backoff)


class DynamoSegmentStore:
    """Segment definitions, a catalogue partition per workspace, and a membership partition per segment."""

    def __init__(self, table_name: str | None = None, backoff: Backoff = DEFAULT_BACKOFF) -> None:
        self.table = table_name or settings().table_name
        self.backoff = backoff

    def get(self, workspace_id: str, segment_id: str) -> SegmentRecord | None:
        """The record and its size: one Query of the segment's partition (both items)."""
        items = list(self._query(keys.segment(workspace_id, segment_id)["pk"], None, None))
        return _record(workspace_id, segment_id, {str(item["sk"]): item for item in items})

    def _query(self, pk: str, after: str | None, limit: int | None) -> Iterator[Item]:
        request: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": "pk = :pk",
                                   "ExpressionAttributeValues": {":pk": {"S": pk}}, "ConsistentRead": True}
        if after is not None:
            request["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": after}}
        if limit is not None:
            request["Limit"] = limit
        return map(from_item, query_items(request))

    def list_segments(self, workspace_id: str) -> list[SegmentRecord]:
        ids = [str(item["sk"]) for item in self._query(keys.segment_catalogue_pk(workspace_id), None, None)]
        found: dict[str, dict[str, Item]] = {}
        for start in range(0, len(ids), 50):
            wanted = [key for i in ids[start:start + 50]
                      for key in (keys.segment(workspace_id, i), keys.segment_size(workspace_id, i))]
            for raw in batch_get(self.table, [wire_key(k) for k in wanted], consistent=False, backoff=self.backoff):
                item = from_item(raw)
                found.setdefault(str(item["pk"]), {})[str(item["sk"])] = item
        records = (_record(workspace_id, i, found.get(keys.segment(workspace_id, i)["pk"], {})) for i in ids)
        return sorted((r for r in records if r is not None), key=lambda r: r.segment_id)

    def custom_segments(self, workspace_id: str) -> list[SegmentRecord]:
        """The workspace's own segments' records, by id, without their sizes (0): the definitions alone, for
        the rules. A built-in has no definition to read, and a record holds its growth points, so each size
        item and built-in record left out is a read saved on every load of the rules (each refresh container's
        minute, each run)."""
        ids = [str(item["sk"]) for item in self._query(keys.segment_catalogue_pk(workspace_id), None, None)]
        custom = [i for i in ids if not i.startswith(BUILTIN_PREFIX)]
        found: dict[str, Item] = {}
        for start in range(0, len(custom), 100):
            wanted = [wire_key(keys.segment(workspace_id, i)) for i in custom[start:start + 100]]
            for raw in batch_get(self.table, wanted, consistent=False, backoff=self.backoff):
                item = from_item(raw)
                found[str(item["pk"])] = item
        records = (_record(workspace_id, i, {"SEGMENT": found[pk]} if (pk := keys.segment(workspace_id, i)["pk"])
                           in found else {}) for i in custom)
        return sorted((r for r in records if r is not None), key=lambda r: r.segment_id)

    def put(self, record: SegmentRecord, expected_version: int | None) -> None:
        ws, segment_id = record.workspace_id, record.segment_id
        put: dict[str, Any] = {"TableName": self.table, "Item": to_item(keys.segment(ws, segment_id), "segment",
                                                                         record)}
        if expected_version is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#version = :expected"
            put["ExpressionAttributeNames"] = {"#version": "version"}
            put["ExpressionAttributeValues"] = {":expected": {"N": str(expected_version)}}
        catalogue = plain_item({**keys.segment_catalogue(ws, segment_id), "entity": "segment_catalogue"})
        writes: list[dict[str, Any]] = [{"Put": put}, {"Put": {"TableName": self.table, "Item": catalogue}}]
        if expected_version is None:  # a new segment starts empty; its size item exists while it does
            size = plain_item({**keys.segment_size(ws, segment_id), "entity": "segment_size", "size": 0,
                                "created_at": record.created_at.isoformat()})
            writes.append({"Put": {"TableName": self.table, "Item": size}})
        try:
            transact_write(writes, self.backoff)
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                raise ConcurrentUpdate(f"segment {segment_id} changed since it was read") from None
            raise

    def delete(self, workspace_id: str, segment_id: str) -> None:
        # Definition and catalogue entry first: a crash half-way leaves orphaned members nobody can reach,
        # never a listed segment whose members are gone.
        _write_batches(self.table, [{"DeleteRequest": {"Key": wire_key(k)}} for k in (
            keys.segment(workspace_id, segment_id), keys.segment_size(workspace_id, segment_id),
            keys.segment_catalogue(workspace_id, segment_id))], self.backoff)
        pk = keys.segment_members_pk(workspace_id, segment_id)
        _write_batches(self.table, [{"DeleteRequest": {"Key": {"pk": {"S": pk}, "sk": {"S": str(item["sk"])}}}}
                                    for item in self._query(pk, None, None)], self.backoff)

    def record_computation(self, workspace_id: str, segment_id: str, at: datetime,
                           growth: Sequence[GrowthPoint], expected_version: int | None, *, size: int) -> None:
        values: dict[str, Any] = {":at": {"S": at.isoformat()},
                                  ":growth": serializer.serialize([plain(p.model_dump()) for p in growth])}
        names = {"#at": "last_computed_at", "#growth": "growth"}
        update = "SET #at = :at, #growth = :growth"
        if expected_version is None:
            condition = "attribute_not_exists(#definition)"
            update += ", " + _BUILTIN_RECORD
            values.update(_builtin_record_values(workspace_id, segment_id, at))
            names.update(_BUILTIN_RECORD_NAMES, **{"#definition": "definition"})
        else:
            condition = "#version = :expected"
            values[":expected"] = {"N": str(expected_version)}
            names["#version"] = "version"
        writes: list[dict[str, Any]] = [{"Update": {
            "TableName": self.table, "Key": wire_key(keys.segment(workspace_id, segment_id)),
            "UpdateExpression": update, "ConditionExpression": condition, "ExpressionAttributeValues": values,
            "ExpressionAttributeNames": names}}]
        writes.append({"Update": {
            "TableName": self.table, "Key": wire_key(keys.segment_size(workspace_id, segment_id)),
            "UpdateExpression": "SET #size = :size, #entity = :entity, #created = if_not_exists(#created, :at)",
            "ExpressionAttributeNames": {"#size": "size", "#entity": "entity", "#created": "created_at"},
            "ExpressionAttributeValues": {":size": {"N": str(size)}, ":entity": {"S": "segment_size"},
                                          ":at": {"S": at.isoformat()}}}})
        if expected_version is None:  # a built-in's first computation: list it from now on
            writes.append({"Put": {"TableName": self.table, "Item": plain_item(
                {**keys.segment_catalogue(workspace_id, segment_id), "entity": "segment_catalogue"})}})
        try:
            transact_write(writes, self.backoff)
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                raise ConcurrentUpdate(f"segment {segment_id} changed since it was computed") from None
            raise

    def members(self, workspace_id: str, segment_id: str, after: str | None, limit: int) -> list[Member]:
        found: list[Member] = []
        for item in self._query(keys.segment_members_pk(workspace_id, segment_id), after, limit):
            found.append(Member.model_validate(item))
            if len(found) == limit:
                break
        return found

    def profile_with_segments(self, workspace_id: str, profile_id: str) -> tuple[Profile, HeldSegments] | None:
        """The profile and its set of segments, as they are now: one strongly consistent Query of the two
        neighbouring items of its partition (the timeline sorts after them). None when it was erased."""
        key = keys.profile(workspace_id, profile_id)
        answer = client("dynamodb").query(
            TableName=self.table, ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :profile AND :segments",
            ExpressionAttributeValues={":pk": {"S": key["pk"]}, ":profile": {"S": keys.PROFILE_SK},
                                       ":segments": {"S": keys.PROFILE_SEGMENTS_SK}})
        return next(_profile_with_segments(answer.get("Items", [])), None)

    def profiles_with_segments(self, workspace_id: str, share: int = 0,
                               shares: int = 1) -> Iterator[tuple[Profile, HeldSegments]]:
        """One share of the workspace index's buckets: each profile (merged ones too: their memberships must go)
        with the segments it is in, both read from the profile's partition by BatchGetItem."""
        partitions = profile_partitions(self.table, workspace_id, share, shares)
        for partition in partition_items(self.table, partitions, (keys.PROFILE_SK, keys.PROFILE_SEGMENTS_SK),
                                         self.backoff):
            yield from _profile_with_segments(partition)

    def profile_pages(self, workspace_id: str, share: int = 0, shares: int = 1,
                      after: str | None = None) -> Iterator[ProfilePage]:
        for partitions, resume in partition_pages(self.table, workspace_id, share, shares, after):
            profiles = [pair for partition in partition_items(
                self.table, partitions, (keys.PROFILE_SK, keys.PROFILE_SEGMENTS_SK), self.backoff)
                for pair in _profile_with_segments(partition)]
            yield ProfilePage(profiles, resume)

    def held_segments(self, workspace_id: str, profile_id: str) -> HeldSegments | None:
        """The profile's set of segments as it is now (one strongly consistent GetItem); None when it has none."""
        found = client("dynamodb").get_item(TableName=self.table, ConsistentRead=True,
                                            Key=wire_key(keys.profile_segments(workspace_id, profile_id)))
        return _held(from_item(found["Item"])) if "Item" in found else None

    def profiles_by_id(self, workspace_id: str, profile_ids: Iterable[str]) -> Iterator[tuple[Profile, HeldSegments]]:
        """These profiles (those that exist) with their sets, read as a run's share reads them."""
        partitions = (keys.profile(workspace_id, pid)["pk"] for pid in profile_ids)
        for partition in partition_items(self.table, partitions, (keys.PROFILE_SK, keys.PROFILE_SEGMENTS_SK),
                                         self.backoff):
            yield from _profile_with_segments(partition)

    def file_due(self, workspace_id: str, due: Iterable[tuple[str, datetime]]) -> None:
        """File each profile under the hour of its next time-relative change (a small item each). Nobody
        deletes it (a delete costs what a write does): the table's TTL does, once no hourly run can read it."""
        _write_batches(self.table, [{"PutRequest": {"Item": plain_item(
            {**keys.segment_due(workspace_id, _hour(at), pid), "entity": "segment_due",
             EXPIRES_AT: int((as_utc(at) + DUE_KEPT).timestamp())})}}
            for pid, at in due], self.backoff)

    def due_profiles(self, workspace_id: str, hour: datetime) -> list[str]:
        """The profiles filed under this hour."""
        # Filed an hour or more before: an eventually consistent read sees them, at half the price.
        request = {"TableName": self.table, "KeyConditionExpression": "pk = :pk", "ProjectionExpression": "sk",
                   "ExpressionAttributeValues": {":pk": {"S": keys.segment_due_pk(workspace_id, _hour(hour))}}}
        return [str(item["sk"]["S"]) for item in query_items(request)]

    def apply_membership(self, change: MembershipChange) -> None:
        """One change as ``apply_memberships`` writes it; ConcurrentUpdate when it did not land."""
        if self.apply_memberships([change]):
            raise ConcurrentUpdate(f"the segments of {change.profile_id} changed meanwhile")

    def apply_memberships(self, changes: Sequence[MembershipChange]) -> list[MembershipChange]:
        """The member items entered and exited, then each profile's new set, guarded by the version of the set
        it replaces; the changes that did not land. No transaction (it would bill every item twice): the
        member writes are idempotent (a Put of the same item, a Delete of an absent one), so writing them
        first and the set last leaves nothing a retry cannot finish, and the members of many profiles go
        together (BatchWriteItem, 25 a request). When a set moved meanwhile, another decision on newer data
        holds it: the segments that change touched are set back to that decision (``_settle``). A change
        entering a custom segment deleted since the rules were read writes nothing. Sizes are not moved
        here: a run counts them (``record_computation``)."""
        gone = self._deleted(changes)
        landing = [c for c in changes if not gone & set(c.entered)]
        _write_batches(self.table, [self._member_request(c, sid, True) for c in landing for sid in c.entered]
                       + [self._member_request(c, sid, False) for c in landing for sid in c.exited], self.backoff)
        lost = [c for c in changes if c not in landing]
        for change in landing:
            if not self._put_set(change):
                self._settle(change)
                lost.append(change)
        return lost

    def _deleted(self, changes: Sequence[MembershipChange]) -> set[str]:
        """The custom segments these changes enter that are gone (a strongly consistent read of each once, at
        a fifth of a write's price)."""
        entered = sorted({(c.workspace_id, sid) for c in changes for sid in c.entered
                          if not sid.startswith(BUILTIN_PREFIX)})
        if not entered:
            return set()
        found = {str(item["pk"]["S"]) for item in batch_get(
            self.table, [wire_key(keys.segment_size(ws, sid)) for ws, sid in entered], consistent=True,
            backoff=self.backoff)}
        return {sid for ws, sid in entered if keys.segment_size(ws, sid)["pk"] not in found}

    def _put_set(self, change: MembershipChange) -> bool:
        ws, pid = change.workspace_id, change.profile_id
        put: dict[str, Any] = {"TableName": self.table, "Item": plain_item({
            **keys.profile_segments(ws, pid), "entity": "profile_segments", "workspace_id": ws, "profile_id": pid,
            "segment_ids": sorted(change.segment_ids), "version": change.expected_version + 1,
            "revision": change.revision, "updated_at": change.at.isoformat()})}
        if change.expected_version == 0:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put.update(ConditionExpression="#version = :expected", ExpressionAttributeNames={"#version": "version"},
                       ExpressionAttributeValues={":expected": {"N": str(change.expected_version)}})
        try:
            client("dynamodb").put_item(**put)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def _member_request(self, change: MembershipChange, segment_id: str, entering: bool) -> dict[str, Any]:
        key = keys.segment_member(change.workspace_id, segment_id, change.profile_id)
        if not entering:
            return {"DeleteRequest": {"Key": wire_key(key)}}
        return {"PutRequest": {"Item": plain_item({
            **key, "entity": "segment_member", "workspace_id": change.workspace_id, "segment_id": segment_id,
            "profile_id": change.profile_id, "entered_at": change.at.isoformat()})}}

    def _settle(self, change: MembershipChange) -> None:
        """Make the member items of the segments ``change`` touched agree with the set as it is now, until the
        set stays the same over the writes (a decision made meanwhile writes its own members after its set)."""
        touched = sorted({*change.entered, *change.exited})
        held = self.held_segments(change.workspace_id, change.profile_id)
        for _ in range(_SETTLE_ROUNDS):
            members = held.segment_ids if held else frozenset()
            for segment_id in touched:
                self._assert_member(change, segment_id, segment_id in members)
            again = self.held_segments(change.workspace_id, change.profile_id)
            if again == held:
                return
            held = again
        raise ConcurrentUpdate(f"the segments of {change.profile_id} kept changing")

    def _assert_member(self, change: MembershipChange, segment_id: str, member: bool) -> None:
        request = self._member_request(change, segment_id, member)
        try:
            if member:  # a stay already recorded keeps its entry time
                client("dynamodb").put_item(TableName=self.table, Item=request["PutRequest"]["Item"],
                                            ConditionExpression="attribute_not_exists(pk)")
            else:
                client("dynamodb").delete_item(TableName=self.table, Key=request["DeleteRequest"]["Key"])
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def forget_profile(self, workspace_id: str, profile_id: str, segment_ids: Iterable[str], at: datetime) -> None:
        """An erased profile's member items (its set went with its partition); deleting one twice is no error."""
        _write_batches(self.table, [{"DeleteRequest": {"Key": wire_key(keys.segment_member(workspace_id, sid,
                                                                                            profile_id))}}
                                    for sid in sorted(segment_ids)], self.backoff)

    def settings(self, workspace_id: str) -> BuiltinSettings:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.segment_settings(workspace_id)),
                                            ConsistentRead=True)
        if "Item" not in found:
            return BuiltinSettings()
        held = from_item(found["Item"])
        # Only the settings this code knows: one added later reads as its default, one dropped is ignored.
        return BuiltinSettings.model_validate({name: held[name] for name in BuiltinSettings.model_fields
                                               if name in held})

    def put_settings(self, workspace_id: str, settings: BuiltinSettings) -> None:
        client("dynamodb").put_item(TableName=self.table, Item=to_item(keys.segment_settings(workspace_id),
                                                                         "segment_settings", settings))


_SETTLE_ROUNDS = 5  # a profile's set rewritten more often than that while one change settles: the caller retries
_BUILTIN_RECORD = ("#entity = if_not_exists(#entity, :entity), #ws = if_not_exists(#ws, :ws), "
                   "#id = if_not_exists(#id, :id), #name = if_not_exists(#name, :id), "
                   "#created = if_not_exists(#created, :created), #updated = if_not_exists(#updated, :created), "
                   "#version = if_not_exists(#version, :one)")
_BUILTIN_RECORD_NAMES = {"#entity": "entity", "#ws": "workspace_id", "#id": "segment_id", "#name": "name",
                         "#created": "created_at", "#updated": "updated_at", "#version": "version"}


def _builtin_record_values(workspace_id: str, segment_id: str, at: datetime) -> dict[str, Any]:
    return {":entity": {"S": "segment"}, ":ws": {"S": workspace_id}, ":id": {"S": segment_id},
            ":created": {"S": at.isoformat()}, ":one": {"N": "1"}}


def _record(workspace_id: str, segment_id: str, items: dict[str, Item]) -> SegmentRecord | None:
    """A segment's record with the size from its size item; a built-in's record before its first computation
    is its size alone."""
    size = items.get("SIZE")
    if "SEGMENT" in items:
        record = SegmentRecord.model_validate(items["SEGMENT"])
    elif size is not None and segment_id.startswith(BUILTIN_PREFIX):
        record = SegmentRecord(workspace_id=workspace_id, segment_id=segment_id, name=segment_id,
                               created_at=size["created_at"], updated_at=size["created_at"])
    else:
        return None
    return record.model_copy(update={"size": int(size["size"]) if size else 0})


# The table's TimeToLiveSpecification attribute (template.yaml): DynamoDB deletes an item, for free, some
# time after this epoch second.
EXPIRES_AT = "expires_at"
# An hour's entries are read by the hourly run after that hour, or by a later one within the horizon (25
# hours, crm.segments.boundaries.HORIZON) when a run failed (crm.segments.runs.run_hour); kept longer.
DUE_KEPT = timedelta(days=2)


def _hour(at: datetime) -> str:
    return f"{at:%Y-%m-%dT%H}"


def _held(item: Item) -> HeldSegments:
    return HeldSegments(segment_ids=frozenset(item.get("segment_ids", ())), version=int(item["version"]),
                        revision=int(item.get("revision", 0)))


def _profile_with_segments(partition: list[Item]) -> Iterator[tuple[Profile, HeldSegments]]:
    found = {str(raw["sk"]["S"]): from_item(raw) for raw in partition}
    if keys.PROFILE_SK in found:
        held = found.get(keys.PROFILE_SEGMENTS_SK)
        yield Profile.model_validate(found[keys.PROFILE_SK]), _held(held) if held else HeldSegments()
