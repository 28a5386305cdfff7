"""The products bought together (crm.affinity) in the table: one item per product of a workspace, in one
partition, so the scheduled run lists them in one Query and rewrites only what moved, and a reader gets one
product (GET /products/{id}/related) or a few (an email's cross-sell block) by key."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from crm.adapters import keys
from crm.adapters.clients import client, query_items
from crm.adapters.items import from_item, to_compact_item, wire_key
from crm.adapters.throttling import batch_get, batch_write
from crm.config import settings
from crm.models.affinity import ProductAffinity

_ENTITY = "product_affinity"


def _read(item: dict[str, object]) -> ProductAffinity:
    values = from_item(item)
    return ProductAffinity.model_validate({k: v for k, v in values.items() if k not in ("pk", "sk", "entity")})


class DynamoAffinityStore:
    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def products(self, workspace_id: str) -> dict[str, ProductAffinity]:
        """Every product of the workspace as last stored, by title."""
        request = {"TableName": self.table, "KeyConditionExpression": "pk = :pk",
                   "ExpressionAttributeValues": {":pk": {"S": keys.product_affinity_pk(workspace_id)}}}
        found = (_read(item) for item in query_items(request))
        return {affinity.title: affinity for affinity in found}

    def product(self, workspace_id: str, title: str) -> ProductAffinity | None:
        answer = client("dynamodb").get_item(TableName=self.table,
                                             Key=wire_key(keys.product_affinity(workspace_id, title)))
        return _read(answer["Item"]) if "Item" in answer else None

    def product_by_id(self, workspace_id: str, product_id: str) -> ProductAffinity | None:
        # The items are keyed by title; an id is found by reading the partition (a few hundred bytes a product).
        request = {"TableName": self.table, "KeyConditionExpression": "pk = :pk",
                   "FilterExpression": "product_id = :id",
                   "ExpressionAttributeValues": {":pk": {"S": keys.product_affinity_pk(workspace_id)},
                                                 ":id": {"S": product_id}}}
        return next((_read(item) for item in query_items(request)), None)

    def related_to(self, workspace_id: str, titles: Iterable[str]) -> list[ProductAffinity]:
        wanted = [wire_key(keys.product_affinity(workspace_id, title)) for title in dict.fromkeys(titles)]
        return [_read(item) for item in batch_get(self.table, wanted, consistent=False)] if wanted else []

    def replace(self, workspace_id: str, put: Sequence[ProductAffinity], deleted: Iterable[str]) -> None:
        requests = [{"PutRequest": {"Item": to_compact_item(keys.product_affinity(workspace_id, a.title), _ENTITY, a)}}
                    for a in put]
        requests += [{"DeleteRequest": {"Key": wire_key(keys.product_affinity(workspace_id, title))}}
                     for title in deleted]
        batch_write(self.table, requests)


__all__ = ["DynamoAffinityStore"]
