"""DynamoDB stream records as plain dicts: the one place their wire shape is read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from crm.adapters.items import from_item


def image(record: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The record's ``NewImage`` or ``OldImage`` as plain values (a packed item unpacked, crm.adapters.items); None
    when the record has none."""
    wire = record.get("dynamodb", {}).get(name)
    return from_item(wire) if wire else None


def images(records: Iterable[Mapping[str, Any]]) -> list[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Each record's (new image, old image) as plain values, for domain code that must not read the wire."""
    return [(image(record, "NewImage"), image(record, "OldImage")) for record in records]
