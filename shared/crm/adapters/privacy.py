"""Privacy requests: gathering and erasing a shopper's items, a store's redaction, the jobs' records."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from crm.adapters import keys
from crm.adapters.clients import client, query_items
from crm.adapters.flow_stats import message_id_of_key
from crm.adapters.items import Item, from_item, serializer, to_item, wire_key
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.throttling import batch_write
from crm.adapters.timeline_items import entries_of, is_line_item
from crm.config import settings
from crm.models.privacy import PrivacyJob
from crm.models.profile import CustomerState, OrderRecord, Profile, TimelineEntry
from crm.ports import (
    Erasure,
    Holdings,
    PrivacyRecord,
)


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
                elif is_line_item(item):
                    timeline += entries_of(item)
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
        pointers = [keys.message_pointer(message_id) for message_id in map(message_id_of_key, held) if message_id]
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
            k: serializer.serialize(v)
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

