"""DynamoDB adapters: stores, API keys, profiles, orders and identities in the single table."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel

from crm.adapters import keys
from crm.adapters.clients import client
from crm.config import settings
from crm.models.profile import OrderRecord, Profile
from crm.models.stores import Platform, Store
from crm.ports import ConcurrentUpdate, OrderContext, UnknownWorkspace

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


def _wire_key(key: keys.Key) -> Item:
    return {name: {"S": value} for name, value in key.items()}


class DynamoStoreDirectory:
    """Stores by platform + domain, and marketer API keys (stored as hashes) by key."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def store_by_domain(self, platform: Platform, domain: str) -> Store | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=_wire_key(keys.store(platform, domain)))
        return Store.model_validate(from_item(found["Item"])) if "Item" in found else None

    def store_by_write_key(self, write_key: str) -> Store | None:
        """Two eventually consistent reads (the pointer, then the store): the store item stays the one
        copy of its secrets and origins, so changing them never leaves a stale duplicate behind."""
        found = client("dynamodb").get_item(TableName=self.table, Key=_wire_key(keys.write_key(write_key)))
        if "Item" not in found:
            return None
        pointer = from_item(found["Item"])
        return self.store_by_domain(Platform(pointer["platform"]), str(pointer["domain"]))

    def workspace_exists(self, workspace_id: str) -> bool:
        found = client("dynamodb").get_item(TableName=self.table, Key=_wire_key(keys.workspace(workspace_id)),
                                            ProjectionExpression="pk")
        return "Item" in found

    def workspace_for_api_key(self, api_key: str) -> str | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=_wire_key(keys.api_key(api_key)))
        return str(from_item(found["Item"])["workspace_id"]) if "Item" in found else None

    def register(self, store: Store, api_key: str, *, new_workspace: bool = True) -> None:
        """Store, write-key pointer, workspace (new) or its check (existing) and key in one transaction."""
        now = store.created_at.isoformat()
        workspace_key = keys.workspace(store.workspace_id)
        key_item = {**keys.api_key(api_key), "entity": "api_key", "workspace_id": store.workspace_id,
                    "created_at": now}
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table, "Item": to_item(keys.store(store.platform, store.domain),
                                                              "store", store),
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": self.table, "Item": _plain_item(key_item)}},
        ]
        if store.write_key is not None:
            pointer = {**keys.write_key(store.write_key), "entity": "write_key", "platform": store.platform.value,
                       "domain": store.domain, "workspace_id": store.workspace_id, "store_id": store.store_id}
            items.append({"Put": {"TableName": self.table, "Item": _plain_item(pointer),
                                  "ConditionExpression": "attribute_not_exists(pk)"}})
        if new_workspace:
            workspace = {**workspace_key, "entity": "workspace", "workspace_id": store.workspace_id,
                         "created_at": now}
            items.append({"Put": {"TableName": self.table, "Item": _plain_item(workspace)}})
        else:
            # The workspace may be deleted between the CLI's check and this write: check it in the transaction.
            items.append({"ConditionCheck": {"TableName": self.table, "Key": _wire_key(workspace_key),
                                             "ConditionExpression": "attribute_exists(pk)"}})
        try:
            client("dynamodb").transact_write_items(TransactItems=items)
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            if not new_workspace and not self.workspace_exists(store.workspace_id):
                raise UnknownWorkspace(f"workspace {store.workspace_id} does not exist") from None
            raise ValueError(f"{store.platform} store {store.domain} (or its write key) is already registered") \
                from None


def _plain_item(values: dict[str, Any]) -> Item:
    return {k: _serializer.serialize(v) for k, v in values.items()}


class DynamoProfileRepository:
    """Profiles, orders and identities; every write is conditional on what was read."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def _batch_get(self, wanted: list[keys.Key]) -> dict[str, Item]:
        """Items by pk, read consistently in one request (retrying what DynamoDB leaves unprocessed)."""
        found: dict[str, Item] = {}
        request: dict[str, Any] = {self.table: {"Keys": [_wire_key(k) for k in wanted], "ConsistentRead": True}}
        while request:
            answer = client("dynamodb").batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(self.table, []):
                plain = from_item(item)
                found[plain["pk"]] = plain
            request = answer.get("UnprocessedKeys") or {}
        return found

    def load_for_order(
        self, workspace_id: str, store_id: str, order_id: str, identity: str, candidate_profile_id: str
    ) -> OrderContext:
        order_key = keys.order(workspace_id, store_id, order_id)
        identity_key = keys.identity(workspace_id, identity)
        found = self._batch_get([order_key, identity_key, keys.profile(workspace_id, candidate_profile_id)])
        previous = OrderRecord.model_validate(found[order_key["pk"]]) if order_key["pk"] in found else None
        identity_item = found.get(identity_key["pk"])
        if previous is not None:
            profile_id = previous.profile_id
        elif identity_item is not None:
            profile_id = str(identity_item["profile_id"])
        else:
            profile_id = candidate_profile_id
        profile_item = found.get(keys.profile(workspace_id, profile_id)["pk"])
        if profile_item is None and profile_id != candidate_profile_id:
            return OrderContext(previous, self.get_profile(workspace_id, profile_id), profile_id,
                                identity_item is not None)
        profile = Profile.model_validate(profile_item) if profile_item else None
        return OrderContext(previous, profile, profile_id, identity_item is not None)

    def save_order(
        self,
        record: OrderRecord,
        previous: OrderRecord | None,
        profile: Profile,
        profile_before: Profile | None,
        identity: str | None,
    ) -> None:
        order = record.order
        writes: list[dict[str, Any]] = [
            self._guarded_put(
                to_item(keys.order(order.workspace_id, order.store_id, order.order_id), "order", record,
                        version=order.version),
                "version", previous.order.version if previous else None,
            ),
            self._guarded_put(
                to_item(keys.profile(profile.workspace_id, profile.profile_id), "profile", profile),
                "revision", profile_before.revision if profile_before else None,
            ),
        ]
        if identity is not None:
            identity_item = {**keys.identity(profile.workspace_id, identity), "entity": "identity",
                             "workspace_id": profile.workspace_id, "profile_id": profile.profile_id,
                             "identity": identity}
            writes.append(self._guarded_put({k: _serializer.serialize(v) for k, v in identity_item.items()},
                                            "profile_id", None))
        try:
            client("dynamodb").transact_write_items(TransactItems=writes)
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                raise ConcurrentUpdate(str(error)) from None
            raise

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
        found = client("dynamodb").get_item(TableName=self.table, ConsistentRead=True,
                                            Key=_wire_key(keys.profile(workspace_id, profile_id)))
        return Profile.model_validate(from_item(found["Item"])) if "Item" in found else None

    def profile_id_for_identity(self, workspace_id: str, identity: str) -> str | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=_wire_key(keys.identity(workspace_id,
                                                                                                identity)))
        return str(from_item(found["Item"])["profile_id"]) if "Item" in found else None
