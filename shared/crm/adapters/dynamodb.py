"""DynamoDB adapters: stores, API keys, profiles, orders, identities, segments and export jobs in the single table."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel

from crm.adapters import keys
from crm.adapters.clients import client, query_items
from crm.adapters.secrets import SecretsManagerVault
from crm.adapters.throttling import DEFAULT_BACKOFF, Backoff, batch_get, batch_write, transact_write
from crm.adapters.workspace_index import partition_items, profile_partitions
from crm.config import settings
from crm.models.currency import CurrencySettings
from crm.models.exports import ExportJob, ExportStatus
from crm.models.privacy import PrivacyJob
from crm.models.profile import CustomerState, OrderRecord, Profile, TimelineEntry
from crm.models.segments import (
    BUILTIN_PREFIX,
    BuiltinSettings,
    GrowthPoint,
    HeldSegments,
    Member,
    MembershipChange,
    SegmentRecord,
)
from crm.models.stores import ApiKey, Platform, Store, StoreSecrets, api_key_id
from crm.ports import (
    Change,
    ChangeRefused,
    ConcurrentUpdate,
    Context,
    Erasure,
    Holdings,
    PrivacyRecord,
    Reads,
    SecretVault,
    UnknownWorkspace,
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

Item = dict[str, Any]


def _plain(value: Any) -> Any:
    """A model dump as DynamoDB takes it: datetimes as ISO strings, no None values (empty strings are kept)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_item(key: keys.Key, entity: str, model: BaseModel, **extra: Any) -> Item:
    """The DynamoDB wire form of a model stored under ``key``."""
    body = _plain(model.model_dump(mode="python", exclude_computed_fields=True))
    return {name: _serializer.serialize(v) for name, v in {**body, **extra, **key, "entity": entity}.items()}


def from_item(item: Item) -> dict[str, Any]:
    return {name: _deserializer.deserialize(v) for name, v in item.items()}


def wire_key(key: keys.Key) -> Item:
    return {name: {"S": value} for name, value in key.items()}


class DynamoStoreDirectory:
    """Stores by platform + domain (their secrets in the vault, not the table), and marketer API keys
    (stored as hashes) by key and by workspace."""

    def __init__(self, table_name: str | None = None, vault: SecretVault | None = None) -> None:
        self.table = table_name or settings().table_name
        self.vault = vault or SecretsManagerVault(self.table)

    def _store_item(self, platform: Platform | str, domain: str) -> dict[str, Any] | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.store(platform, domain)))
        return from_item(found["Item"]) if "Item" in found else None

    def store_by_domain(self, platform: Platform, domain: str) -> Store | None:
        """The store with its secrets from the vault. A store registered before the vault (its secrets
        still in the item until `crm store migrate-secrets`) is read as it is."""
        item = self._store_item(platform, domain)
        if item is None:
            return None
        secrets = self.vault.store_secrets(str(item["store_id"]))
        return Store.model_validate({**item, **(secrets.model_dump() if secrets else {})})

    def store_by_write_key(self, write_key: str) -> Store | None:
        """Two eventually consistent reads (the pointer, then the store): the store item stays the one
        copy of its origins, so changing them never leaves a stale duplicate behind. No secrets."""
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.write_key(write_key)))
        if "Item" not in found:
            return None
        pointer = from_item(found["Item"])
        item = self._store_item(str(pointer["platform"]), str(pointer["domain"]))
        return Store.model_validate(_without_secrets(item)) if item is not None else None

    def workspace_exists(self, workspace_id: str) -> bool:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.workspace(workspace_id)),
                                            ProjectionExpression="pk")
        return "Item" in found

    def workspaces(self) -> Iterator[str]:
        request: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": "pk = :pk",
                                   "ExpressionAttributeValues": {":pk": {"S": keys.WORKSPACES_PK}}}
        return (str(item["sk"]["S"]) for item in query_items(request))

    def register(self, store: Store, api_key: str, *, new_workspace: bool = True) -> None:
        """Secrets into the vault first (a store item never exists without them), then store, write-key
        pointer, workspace (new) or its check (existing) and key in one transaction; the secret is
        deleted again if the transaction is refused."""
        now = store.created_at.isoformat()
        workspace_key = keys.workspace(store.workspace_id)
        self.vault.keep(store.store_id, StoreSecrets(webhook_secrets=store.webhook_secrets, api_token=store.api_token))
        key = ApiKey(key_id=api_key_id(api_key), workspace_id=store.workspace_id, created_at=store.created_at)
        store_item = {name: value for name, value in to_item(keys.store(store.platform, store.domain), "store",
                                                             store).items() if name not in _SECRET_FIELDS}
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table, "Item": store_item, "ConditionExpression": "attribute_not_exists(pk)"}},
            *self._api_key_puts(api_key, key),
        ]
        if store.write_key is not None:
            pointer = {**keys.write_key(store.write_key), "entity": "write_key", "platform": store.platform.value,
                       "domain": store.domain, "workspace_id": store.workspace_id, "store_id": store.store_id}
            items.append({"Put": {"TableName": self.table, "Item": plain_item(pointer),
                                  "ConditionExpression": "attribute_not_exists(pk)"}})
        if new_workspace:
            workspace = {**workspace_key, "entity": "workspace", "workspace_id": store.workspace_id,
                         "created_at": now}
            entry = {**keys.workspace_entry(store.workspace_id), "entity": "workspace_entry",
                     "workspace_id": store.workspace_id}
            items += [{"Put": {"TableName": self.table, "Item": plain_item(workspace)}},
                      {"Put": {"TableName": self.table, "Item": plain_item(entry)}}]
        else:
            # The workspace may be deleted between the CLI's check and this write: check it in the transaction.
            items.append({"ConditionCheck": {"TableName": self.table, "Key": wire_key(workspace_key),
                                             "ConditionExpression": "attribute_exists(pk)"}})
        try:
            client("dynamodb").transact_write_items(TransactItems=items)
        except ClientError as error:
            self.vault.forget(store.store_id)
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            if not new_workspace and not self.workspace_exists(store.workspace_id):
                raise UnknownWorkspace(f"workspace {store.workspace_id} does not exist") from None
            raise ValueError(f"{store.platform} store {store.domain} (or its write key) is already registered") \
                from None

    # --- marketer API keys -------------------------------------------------------------------------

    def _api_key_puts(self, api_key: str, key: ApiKey) -> list[dict[str, Any]]:
        """The key's lookup item (by hash) and its catalogue entry (by id, holding the hash to revoke it)."""
        digest = keys.api_key_digest(api_key)
        lookup = {**key.model_dump(mode="json", exclude_none=True), **keys.api_key_by_digest(digest),
                  "entity": "api_key"}
        return [{"Put": {"TableName": self.table, "Item": plain_item(lookup),
                         "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": self.table, "Item": _key_entry(digest, key)}}]

    def api_key(self, api_key: str) -> ApiKey | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.api_key(api_key)))
        if "Item" not in found:
            return None
        item = from_item(found["Item"])
        # A key issued before keys had ids (until `crm store migrate-secrets` names it): its id from its hash.
        item.setdefault("key_id", api_key_id(api_key))
        return ApiKey.model_validate(item)

    def add_api_key(self, api_key: str, key: ApiKey) -> None:
        check = {"ConditionCheck": {"TableName": self.table, "Key": wire_key(keys.workspace(key.workspace_id)),
                                    "ConditionExpression": "attribute_exists(pk)"}}
        try:
            client("dynamodb").transact_write_items(TransactItems=[*self._api_key_puts(api_key, key), check])
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            if not self.workspace_exists(key.workspace_id):
                raise UnknownWorkspace(f"workspace {key.workspace_id} does not exist") from None
            raise ValueError(f"api key {key.key_id} already exists") from None

    def api_keys(self, workspace_id: str) -> list[ApiKey]:
        request: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": "pk = :pk",
                                   "ExpressionAttributeValues": {":pk": {"S": keys.workspace_api_keys(workspace_id)}}}
        found = [ApiKey.model_validate(from_item(item)) for item in query_items(request)]
        return sorted(found, key=lambda k: (k.created_at, k.key_id))

    def revoke_api_key(self, workspace_id: str, key_id: str, now: datetime) -> ApiKey | None:
        entry = self._key_entry(workspace_id, key_id)
        if entry is None or entry.get("revoked_at") is not None:
            return ApiKey.model_validate(entry) if entry else None
        revoked_at = {":now": {"S": now.isoformat()}}
        try:
            client("dynamodb").transact_write_items(TransactItems=[
                {"Update": {"TableName": self.table, "Key": wire_key(keys.workspace_api_key(workspace_id, key_id)),
                            "UpdateExpression": "SET revoked_at = :now", "ExpressionAttributeValues": revoked_at,
                            "ConditionExpression": "attribute_not_exists(revoked_at)"}},
                {"Update": {"TableName": self.table, "Key": wire_key(keys.api_key_by_digest(str(entry["key_digest"]))),
                            "UpdateExpression": "SET revoked_at = :now", "ExpressionAttributeValues": revoked_at,
                            "ConditionExpression": "attribute_exists(pk)"}}])
        except ClientError as error:
            again = self._key_entry(workspace_id, key_id)
            if error.response["Error"]["Code"] != "TransactionCanceledException" or again is None \
                    or again.get("revoked_at") is None:
                raise
            return ApiKey.model_validate(again)  # revoked meanwhile: the first revocation's time stands
        return ApiKey.model_validate({**entry, "revoked_at": now})

    def _key_entry(self, workspace_id: str, key_id: str) -> dict[str, Any] | None:
        found = client("dynamodb").get_item(TableName=self.table, ConsistentRead=True,
                                            Key=wire_key(keys.workspace_api_key(workspace_id, key_id)))
        return from_item(found["Item"]) if "Item" in found else None

    # --- stores registered before the vault ----------------------------------------------------------

    def migrate_plaintext(self) -> dict[str, int]:
        """Move secrets still in store items into the vault and name keys issued before keys had ids
        (one Scan of the table: an operator's one-off command). Safe to run again: counts what it changed."""
        counts = {"stores": 0, "api_keys": 0}
        request: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "(#e = :store AND (attribute_exists(webhook_secrets) OR attribute_exists(api_token)))"
                                " OR (#e = :key AND attribute_not_exists(key_id))",
            "ExpressionAttributeNames": {"#e": "entity"},
            "ExpressionAttributeValues": {":store": {"S": "store"}, ":key": {"S": "api_key"}}}
        while True:
            answer = client("dynamodb").scan(**request)
            for item in map(from_item, answer.get("Items", [])):
                if item["entity"] == "store":
                    self._move_store_secrets(item)
                    counts["stores"] += 1
                else:
                    self._name_api_key(item)
                    counts["api_keys"] += 1
            if "LastEvaluatedKey" not in answer:
                return counts
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _move_store_secrets(self, item: dict[str, Any]) -> None:
        store_id = str(item["store_id"])
        if self.vault.store_secrets(store_id) is None:  # a rotation already made in the vault wins
            self.vault.keep(store_id, StoreSecrets(webhook_secrets=tuple(item.get("webhook_secrets") or ()),
                                                   api_token=item.get("api_token")))
        client("dynamodb").update_item(TableName=self.table, Key=wire_key({"pk": item["pk"], "sk": item["sk"]}),
                                       UpdateExpression="REMOVE webhook_secrets, api_token")

    def _name_api_key(self, item: dict[str, Any]) -> None:
        digest = str(item["pk"]).removeprefix("APIKEY#")
        key = ApiKey(key_id=f"key_{digest[:16]}", workspace_id=str(item["workspace_id"]),
                     created_at=datetime.fromisoformat(str(item["created_at"])))
        client("dynamodb").transact_write_items(TransactItems=[
            {"Put": {"TableName": self.table, "Item": _key_entry(digest, key)}},
            {"Update": {"TableName": self.table, "Key": wire_key(keys.api_key_by_digest(digest)),
                        "UpdateExpression": "SET key_id = :id",
                        "ExpressionAttributeValues": {":id": {"S": key.key_id}}}}])


_SECRET_FIELDS = frozenset({"webhook_secrets", "api_token"})


def _without_secrets(item: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in item.items() if name not in _SECRET_FIELDS}


def _key_entry(digest: str, key: ApiKey) -> Item:
    return plain_item({**key.model_dump(mode="json", exclude_none=True),
                       **keys.workspace_api_key(key.workspace_id, key.key_id), "entity": "api_key_entry",
                       "key_digest": digest})


def plain_item(values: dict[str, Any]) -> Item:
    return {k: _serializer.serialize(v) for k, v in values.items()}


def _write_change(writes: list[dict[str, Any]], backoff: Backoff) -> None:
    """One change's writes in one transaction: a refused condition is a concurrent update (read again), a
    refused item (over 400 KB, say) a change that can never be stored."""
    try:
        transact_write(writes, backoff)
    except ClientError as error:
        if error.response["Error"]["Code"] == "TransactionCanceledException":
            raise ConcurrentUpdate(str(error)) from None
        if error.response["Error"]["Code"] == "ValidationException":
            raise ChangeRefused(error.response["Error"].get("Message", str(error))) from None
        raise


class DynamoProfileRepository:
    """Profiles, identities, orders, customer accounts, timelines; every write is guarded by what was read."""

    def __init__(self, table_name: str | None = None, backoff: Backoff = DEFAULT_BACKOFF) -> None:
        self.table = table_name or settings().table_name
        self.backoff = backoff

    def _batch_get(self, wanted: list[keys.Key]) -> dict[str, Item]:
        """Items by pk, read consistently (what DynamoDB leaves unprocessed is asked again after a backoff)."""
        found: dict[str, Item] = {}
        unique = list({k["pk"]: k for k in wanted}.values())
        for item in batch_get(self.table, [wire_key(k) for k in unique], consistent=True, backoff=self.backoff):
            plain = from_item(item)
            found[plain["pk"]] = plain
        return found

    def _live_profiles(self, workspace_id: str, profile_ids: set[str]) -> dict[str, Profile]:
        """Each id's live profile: merged profiles are followed to the profile they were merged into."""
        held: dict[str, Profile] = {}
        pending = set(profile_ids)
        while pending:
            found = self._batch_get([keys.profile(workspace_id, pid) for pid in pending])
            for item in found.values():
                profile = Profile.model_validate(item)
                held[profile.profile_id] = profile
            pending = {p.merged_into for p in held.values() if p.merged_into and p.merged_into not in held}
            pending -= set(held)
        live: dict[str, Profile] = {}
        for pid in profile_ids:
            current, hops = held.get(pid), 0
            while current is not None and current.merged_into and hops < 50:
                current, hops = held.get(current.merged_into), hops + 1
            if current is not None:
                live[pid] = current
        return live

    def load(self, reads: Reads) -> Context:
        ws = reads.workspace_id
        identity_keys = {identity: keys.identity(ws, identity) for identity in reads.identities}
        wanted = list(identity_keys.values())
        order_key = keys.order(ws, *reads.order) if reads.order else None
        customer_key = keys.customer(ws, *reads.customer) if reads.customer else None
        event_key = keys.event(ws, *reads.event) if reads.event else None
        currency_key = keys.currency_settings(ws)
        wanted += [k for k in (order_key, customer_key, event_key, currency_key) if k is not None]
        found = self._batch_get(wanted)
        pointers: dict[str, str] = {}
        redacted: set[str] = set()
        for identity, key in identity_keys.items():
            item = found.get(key["pk"])
            if item is None:
                continue
            if item.get("redacted"):
                redacted.add(identity)
            else:
                pointers[identity] = str(item["profile_id"])
        order = OrderRecord.model_validate(found[order_key["pk"]]) if order_key and order_key["pk"] in found else None
        customer = (CustomerState.model_validate(found[customer_key["pk"]])
                    if customer_key and customer_key["pk"] in found else None)
        event_seen = event_key is not None and event_key["pk"] in found
        held_version = order.version if order else customer.version if customer else None
        if event_seen or (reads.version is not None and reads.version == held_version):
            return Context(owners={}, pointers=pointers, redacted=frozenset(redacted), order=order, order_owner=None,
                           customer=customer, event_seen=event_seen, already_held=True)
        profile_ids = set(pointers.values())
        for owner in (order.profile_id if order else None, customer.profile_id if customer else None):
            if owner:
                profile_ids.add(owner)
        live = self._live_profiles(ws, profile_ids)
        owners = {identity: live[pid] for identity, pid in pointers.items() if pid in live}
        if customer is not None and customer.profile_id in live and reads.customer:
            owners.setdefault(f"customer#{reads.customer[0]}#{reads.customer[1]}", live[customer.profile_id])
        return Context(
            owners=owners, pointers=pointers, redacted=frozenset(redacted), order=order,
            order_owner=live.get(order.profile_id) if order and order.profile_id else None, customer=customer,
            event_seen=event_seen,
            currency=(CurrencySettings.model_validate(found[currency_key["pk"]])
                      if currency_key["pk"] in found else None),
        )

    def commit(self, change: Change) -> None:
        ws = change.workspace_id
        writes: list[dict[str, Any]] = []
        for profile, revision in change.profiles:
            writes.append(self._guarded_put(to_item(keys.profile(ws, profile.profile_id), "profile", profile,
                                                    **keys.workspace_index(ws, profile.profile_id)),
                                            "revision", revision))
        if change.order is not None:
            record, version = change.order
            writes.append(self._guarded_put(
                to_item(keys.order(ws, record.store_id, record.order_id), "order", record, version=record.version),
                "version", version))
        if change.customer is not None:
            state, version = change.customer
            writes.append(self._guarded_put(
                to_item(keys.customer(ws, state.store_id, state.customer_id), "customer", state), "version", version))
        for link in change.identities:
            item = {**keys.identity(ws, link.identity), "entity": "identity", "workspace_id": ws,
                    "profile_id": link.profile_id}
            writes.append(self._guarded_put({k: _serializer.serialize(v) for k, v in item.items()}, "profile_id",
                                            link.previous_profile_id))
        for entry in change.timeline:
            writes.append({"Put": {"TableName": self.table, "Item": to_item(
                keys.timeline(ws, entry.profile_id, entry.sort_key), "timeline", entry)}})
        if change.event is not None:
            store_id, event_id, profile_id = change.event
            item = {**keys.event(ws, store_id, event_id), "entity": "event", "profile_id": profile_id}
            writes.append(self._guarded_put({k: _serializer.serialize(v) for k, v in item.items()}, "pk", None))
        if not writes:
            return
        _write_change(writes, self.backoff)

    def _guarded_put(self, item: Item, attribute: str, expected: str | int | None) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.table, "Item": item}
        if expected is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#guard = :expected"
            put["ExpressionAttributeNames"] = {"#guard": attribute}
            put["ExpressionAttributeValues"] = {":expected": _serializer.serialize(
                Decimal(expected) if isinstance(expected, int) else expected)}
        return {"Put": put}

    def get_profile(self, workspace_id: str, profile_id: str) -> Profile | None:
        return self._live_profiles(workspace_id, {profile_id}).get(profile_id)

    def profile_id_for_identity(self, workspace_id: str, identity: str) -> str | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.identity(workspace_id,
                                                                                                identity)))
        item = from_item(found["Item"]) if "Item" in found else {}
        return str(item["profile_id"]) if item.get("profile_id") else None

    def timeline(self, workspace_id: str, profile_ids: Sequence[str], before: str | None,
                 limit: int) -> list[TimelineEntry]:
        entries: list[TimelineEntry] = []
        for profile_id in profile_ids:
            pk = keys.profile(workspace_id, profile_id)["pk"]
            condition = "pk = :pk AND begins_with(sk, :prefix)"
            values: dict[str, Any] = {":pk": {"S": pk}, ":prefix": {"S": keys.TIMELINE_PREFIX}}
            if before is not None:
                condition = "pk = :pk AND sk BETWEEN :prefix AND :before"
                values = {":pk": {"S": pk}, ":prefix": {"S": keys.TIMELINE_PREFIX}, ":before": {"S": before}}
            answer = client("dynamodb").query(TableName=self.table, KeyConditionExpression=condition,
                                              ExpressionAttributeValues=values, ScanIndexForward=False,
                                              Limit=limit + 1, ConsistentRead=True)
            entries += [TimelineEntry.model_validate(from_item(item)) for item in answer.get("Items", [])]
        entries = [e for e in entries if before is None or e.sort_key < before]
        entries.sort(key=lambda e: (e.sort_key, e.profile_id), reverse=True)
        return entries[:limit]


    def workspace_profiles(self, workspace_id: str, segment: int = 0, total_segments: int = 1) -> Iterator[Profile]:
        """Through the workspace index (crm.adapters.workspace_index): this workspace's profile items only."""
        partitions = profile_partitions(self.table, workspace_id, segment, total_segments)
        for (item,) in partition_items(self.table, partitions, (keys.PROFILE_SK,), self.backoff):
            profile = Profile.model_validate(from_item(item))
            if profile.merged_into is None:
                yield profile

    def profiles_by_id(self, workspace_id: str, profile_ids: Sequence[str]) -> dict[str, Profile]:
        found = self._batch_get([keys.profile(workspace_id, pid) for pid in profile_ids])
        held = (Profile.model_validate(item) for item in found.values())
        return {p.profile_id: p for p in held if p.merged_into is None}


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
                           growth: Sequence[GrowthPoint], expected_version: int | None) -> None:
        # The size is not set here: membership changes keep it with atomic additions, and a computation
        # running beside them would otherwise write back a size it read before their additions.
        values: dict[str, Any] = {":at": {"S": at.isoformat()},
                                  ":growth": _serializer.serialize([_plain(p.model_dump()) for p in growth])}
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

    def apply_membership(self, change: MembershipChange) -> None:
        """The profile's new set, its member items and the segments' sizes, all or nothing, guarded by the
        version of the set it replaces. More than one transaction's worth (100 items) goes in several, each
        guarded by the version the one before wrote."""
        moves = [(sid, True) for sid in change.entered] + [(sid, False) for sid in change.exited]
        current = set(change.segment_ids - set(change.entered)) | set(change.exited)
        version = change.expected_version
        for start in range(0, len(moves), _MOVES_PER_TRANSACTION):
            chunk = moves[start:start + _MOVES_PER_TRANSACTION]
            for segment_id, entering in chunk:
                (current.add if entering else current.discard)(segment_id)
            last = start + _MOVES_PER_TRANSACTION >= len(moves)
            held = frozenset(change.segment_ids if last else current)
            writes = [self._held_write(change, held, version)]
            for segment_id, entering in chunk:
                writes += self._member_writes(change, segment_id, entering)
            try:
                transact_write(writes, self.backoff)
            except ClientError as error:
                if error.response["Error"]["Code"] == "TransactionCanceledException":
                    raise ConcurrentUpdate(f"the segments of {change.profile_id} changed meanwhile") from None
                raise
            version += 1

    def _held_write(self, change: MembershipChange, segment_ids: frozenset[str], expected: int) -> dict[str, Any]:
        item = plain_item({**keys.profile_segments(change.workspace_id, change.profile_id),
                            "entity": "profile_segments", "workspace_id": change.workspace_id,
                            "profile_id": change.profile_id, "segment_ids": sorted(segment_ids),
                            "version": expected + 1, "revision": change.revision,
                            "updated_at": change.at.isoformat()})
        put: dict[str, Any] = {"TableName": self.table, "Item": item}
        if expected == 0:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put.update(ConditionExpression="#version = :expected", ExpressionAttributeNames={"#version": "version"},
                       ExpressionAttributeValues={":expected": {"N": str(expected)}})
        return {"Put": put}

    def _member_writes(self, change: MembershipChange, segment_id: str, entering: bool) -> list[dict[str, Any]]:
        ws, pid = change.workspace_id, change.profile_id
        member_key = keys.segment_member(ws, segment_id, pid)
        if entering:
            member: dict[str, Any] = {"Put": {"TableName": self.table, "Item": plain_item({
                **member_key, "entity": "segment_member", "workspace_id": ws, "segment_id": segment_id,
                "profile_id": pid, "entered_at": change.at.isoformat()})}}
        else:
            member = {"Delete": {"TableName": self.table, "Key": wire_key(member_key)}}
        return [member, self._size_write(ws, segment_id, 1 if entering else -1, change.at)]

    def _size_write(self, workspace_id: str, segment_id: str, delta: int, at: datetime) -> dict[str, Any]:
        update: dict[str, Any] = {
            "TableName": self.table, "Key": wire_key(keys.segment_size(workspace_id, segment_id)),
            "UpdateExpression": "ADD #size :delta SET #entity = :entity, #created = if_not_exists(#created, :at)",
            "ExpressionAttributeNames": {"#size": "size", "#entity": "entity", "#created": "created_at"},
            "ExpressionAttributeValues": {":delta": {"N": str(delta)}, ":entity": {"S": "segment_size"},
                                          ":at": {"S": at.isoformat()}}}
        if not segment_id.startswith(BUILTIN_PREFIX):
            # A custom segment's size item goes with it: one deleted meanwhile must not come back.
            update["ConditionExpression"] = "attribute_exists(pk)"
        return {"Update": update}

    def forget_profile(self, workspace_id: str, profile_id: str, segment_ids: Iterable[str], at: datetime) -> None:
        """An erased profile's member items and their share of the sizes (its set went with its partition).
        Each segment on its own, guarded by the member item, so a retry never subtracts twice."""
        for segment_id in sorted(segment_ids):
            member = {"Delete": {"TableName": self.table,
                                 "Key": wire_key(keys.segment_member(workspace_id, segment_id, profile_id)),
                                 "ConditionExpression": "attribute_exists(pk)"}}
            size = self._size_write(workspace_id, segment_id, -1, at)
            try:
                transact_write([member, size], self.backoff)
            except ClientError as error:
                if error.response["Error"]["Code"] != "TransactionCanceledException":
                    raise

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


_MOVES_PER_TRANSACTION = 49  # two items each (member, size) and the set: within TransactWriteItems' 100
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


def _held(item: Item) -> HeldSegments:
    return HeldSegments(segment_ids=frozenset(item.get("segment_ids", ())), version=int(item["version"]),
                        revision=int(item.get("revision", 0)))


def _profile_with_segments(partition: list[Item]) -> Iterator[tuple[Profile, HeldSegments]]:
    found = {str(raw["sk"]["S"]): from_item(raw) for raw in partition}
    if keys.PROFILE_SK in found:
        held = found.get(keys.PROFILE_SEGMENTS_SK)
        yield Profile.model_validate(found[keys.PROFILE_SK]), _held(held) if held else HeldSegments()

class DynamoPrivacyStore:
    """What privacy requests read and erase; deletes are batched (25 a request) and idempotent."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name
        self.profiles = DynamoProfileRepository(self.table)

    def _partition(self, pk: str) -> list[Item]:
        request: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": "pk = :pk",
                                   "ExpressionAttributeValues": {":pk": {"S": pk}}, "ConsistentRead": True}
        return [from_item(item) for item in query_items(request)]

    def gather(self, workspace_id: str, profiles: Sequence[Profile], store_id: str,
               order_ids: Sequence[str]) -> Holdings:
        ids = sorted({pid for p in profiles for pid in (p.profile_id, *p.merged_from)})
        held: list[Profile] = []
        timeline: list[TimelineEntry] = []
        for profile_id in ids:
            for item in self._partition(keys.profile(workspace_id, profile_id)["pk"]):
                if item["entity"] == "profile":
                    held.append(Profile.model_validate(item))
                elif item["entity"] == "timeline":
                    timeline.append(TimelineEntry.model_validate(item))
        order_refs = {tuple(e.ref.split(":", 1)) for e in timeline if e.type == "order"}
        order_refs |= {(store_id, order_id) for order_id in order_ids}
        accounts = {tuple(i.split("#", 2)[1:]) for p in held for i in p.identities if i.startswith("customer#")}
        found = self.profiles._batch_get([keys.order(workspace_id, s, o) for s, o in order_refs]
                                         + [keys.customer(workspace_id, s, c) for s, c in accounts])
        orders = tuple(OrderRecord.model_validate(i) for i in found.values() if i["entity"] == "order")
        customers = tuple(CustomerState.model_validate(i) for i in found.values() if i["entity"] == "customer")
        return Holdings(tuple(held), tuple(timeline), orders, customers)

    def _write_batches(self, requests: list[dict[str, Any]]) -> None:
        batch_write(self.table, requests, self.profiles.backoff)

    def _delete(self, wanted: Iterable[keys.Key]) -> None:
        self._write_batches([{"DeleteRequest": {"Key": wire_key(k)}} for k in wanted])

    def _profile_partition(self, workspace_id: str, profile_id: str) -> list[keys.Key]:
        """A profile partition's keys, led by the pointers of its flow messages and its SMS short links (outside
        the partition, so listed from it: a retry after a crash still finds them)."""
        held: list[keys.Key] = [{"pk": i["pk"], "sk": i["sk"]}
                                for i in self._partition(keys.profile(workspace_id, profile_id)["pk"])]
        pointers = [keys.message_pointer(str(k["sk"]).removeprefix(keys.FLOW_MESSAGE_PREFIX))
                    for k in held if str(k["sk"]).startswith(keys.FLOW_MESSAGE_PREFIX)]
        pointers += [keys.short_link(str(k["sk"]).removeprefix(keys.SHORT_LINK_PREFIX))
                     for k in held if str(k["sk"]).startswith(keys.SHORT_LINK_PREFIX)]
        return [*pointers, *held]

    def erase(self, erasure: Erasure) -> None:
        ws = erasure.workspace_id
        # Records first, the profile partitions next, identities last: a retry after a crash finds the
        # profiles through their identities and carries on. An order's attribution to a flow message goes with
        # the order (the flows' counters keep only sums).
        self._delete([*(keys.order(ws, s, o) for s, o in erasure.orders),
                      *(keys.attribution(ws, s, o) for s, o in erasure.orders),
                      *(keys.customer(ws, s, c) for s, c in erasure.customers),
                      *(keys.event(ws, s, e) for s, e in erasure.events)])
        for profile_id in erasure.profile_ids:
            self._delete(self._profile_partition(ws, profile_id))
        self._write_batches([{"PutRequest": {"Item": {
            k: _serializer.serialize(v)
            for k, v in {**keys.identity(ws, identity), "entity": "identity", "redacted": True}.items()}}}
            for identity in erasure.identities])

    def erase_store(self, workspace_id: str, store_id: str) -> dict[str, int]:
        """A scan of the workspace's items: a shop redaction is rare (48 hours after an uninstall)."""
        prefix = f"WS#{workspace_id}#"
        doomed: list[keys.Key] = []
        profiles: list[Profile] = []
        stores: list[Item] = []
        request: dict[str, Any] = {"TableName": self.table}
        while True:
            answer = client("dynamodb").scan(**request)
            for raw in answer.get("Items", []):
                item = from_item(raw)
                pk = str(item["pk"])
                if item.get("entity") == "store" and item.get("store_id") == store_id:
                    stores.append(item)
                elif not pk.startswith(prefix):
                    continue
                elif pk.startswith((f"{prefix}ORDER#{store_id}#", f"{prefix}CUSTOMER#{store_id}#",
                                    f"{prefix}EVENT#{store_id}#", f"{prefix}ATTRIBUTION#{store_id}#")):
                    doomed.append({"pk": pk, "sk": str(item["sk"])})
                elif item.get("entity") == "profile":
                    profile = Profile.model_validate(item)
                    if profile.store_ids == (store_id,):
                        profiles.append(profile)
            if "LastEvaluatedKey" not in answer:
                break
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        self._delete(doomed)
        identities = sorted({i for p in profiles for i in p.identities})
        for profile in profiles:
            self._delete(self._profile_partition(workspace_id, profile.profile_id))
        self._delete(keys.identity(workspace_id, identity) for identity in identities)
        self._delete([{"pk": str(s["pk"]), "sk": str(s["sk"])} for s in stores])
        return {"records": len(doomed), "profiles": len(profiles), "identities": len(identities),
                "stores": len(stores)}

    def record(self, record: PrivacyRecord) -> None:
        client("dynamodb").put_item(TableName=self.table, Item=to_item(
            keys.privacy_request(record.workspace_id, record.request_id), "privacy_request", record))

    def job(self, workspace_id: str, request_id: str) -> PrivacyJob | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.privacy_job(workspace_id,
                                                                                                 request_id)),
                                            ConsistentRead=True)
        return PrivacyJob.model_validate(from_item(found["Item"])) if "Item" in found else None

    def save_job(self, job: PrivacyJob) -> None:
        client("dynamodb").put_item(TableName=self.table, Item=to_item(
            keys.privacy_job(job.workspace_id, job.request_id), "privacy_job", job))


class DynamoExportJobStore:
    """Export jobs, one item each; every write is conditional, so two workers never both record an outcome."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def get(self, workspace_id: str, export_id: str) -> ExportJob | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.export_job(workspace_id,
                                                                                                export_id)),
                                            ConsistentRead=True)
        return ExportJob.model_validate(from_item(found["Item"])) if "Item" in found else None

    def save(self, job: ExportJob, expected_attempts: int | None) -> None:
        put: dict[str, Any] = {"TableName": self.table,
                               "Item": to_item(keys.export_job(job.workspace_id, job.export_id), "export_job", job)}
        if expected_attempts is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#attempts = :expected"
            put["ExpressionAttributeNames"] = {"#attempts": "attempts"}
            put["ExpressionAttributeValues"] = {":expected": {"N": str(expected_attempts)}}
        try:
            client("dynamodb").put_item(**put)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConcurrentUpdate(f"export {job.export_id} changed since it was read") from None
            raise

    def claim(self, workspace_id: str, export_id: str, now: datetime) -> ExportJob | None:
        try:
            answer = client("dynamodb").update_item(
                TableName=self.table, Key=wire_key(keys.export_job(workspace_id, export_id)),
                UpdateExpression="SET #status = :running, #attempts = #attempts + :one, #started = :now, "
                                 "#updated = :now",
                ConditionExpression="#status IN (:queued, :running)",
                ExpressionAttributeNames={"#status": "status", "#attempts": "attempts", "#started": "started_at",
                                          "#updated": "updated_at"},
                ExpressionAttributeValues={":running": {"S": ExportStatus.RUNNING.value},
                                           ":queued": {"S": ExportStatus.QUEUED.value}, ":one": {"N": "1"},
                                           ":now": {"S": now.isoformat()}},
                ReturnValues="ALL_NEW")
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None  # done, failed, or no such job
            raise
        return ExportJob.model_validate(from_item(answer["Attributes"]))
