"""DynamoDB items from pydantic models and back: the one place that serializes the single table's items."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from pydantic import BaseModel

from crm.adapters import keys

serializer = TypeSerializer()
_deserializer = TypeDeserializer()

Item = dict[str, Any]


def plain(value: Any) -> Any:
    """A model dump as DynamoDB takes it: datetimes as ISO strings, no None values (empty strings are kept)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def to_item(key: keys.Key, entity: str, model: BaseModel, **extra: Any) -> Item:
    """The DynamoDB wire form of a model stored under ``key``."""
    return _wire(key, entity, plain(model.model_dump(mode="python", exclude_computed_fields=True)), extra)


def to_compact_item(key: keys.Key, entity: str, model: BaseModel, **extra: Any) -> Item:
    """The same without the fields (nested ones too) at their defaults: DynamoDB bills a write per KB of the whole
    item, names included, and reading the item back through the model restores them."""
    body = plain(model.model_dump(mode="python", exclude_computed_fields=True, exclude_defaults=True))
    return _wire(key, entity, body, extra)


def _wire(key: keys.Key, entity: str, body: dict[str, Any], extra: dict[str, Any]) -> Item:
    return {name: serializer.serialize(v) for name, v in {**body, **extra, **key, "entity": entity}.items()}


def from_item(item: Item) -> dict[str, Any]:
    return {name: _deserializer.deserialize(v) for name, v in item.items()}


def wire_key(key: keys.Key) -> Item:
    return {name: {"S": value} for name, value in key.items()}


def plain_item(values: dict[str, Any]) -> Item:
    return {k: serializer.serialize(v) for k, v in values.items()}

