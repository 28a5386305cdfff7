"""Stores, workspaces and API keys in the single table (secrets in Secrets Manager).

The two lookups on the public front door (a webhook's store by domain, a /track request's store by write
key) are kept per container for ``cache_ttl`` (60 s, like the secrets): a warm container then makes no
DynamoDB read per request. Why that is safe (docs/security.md): a store is never cached as missing, so one
registered a moment ago is found at once; its secrets are not part of the cached store but come from the
vault's own 60 s cache, so a rotation or a retirement is seen within a minute as before; a changed store
item (its origins, or one deleted by hand) is seen within a minute too. Only stores that exist are
cached, so the cache holds at most one entry per registered store and write key. API keys are never
cached: a revoked key must be refused from the next request on.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from botocore.exceptions import ClientError

from crm.adapters import keys
from crm.adapters.clients import client, query_items
from crm.adapters.items import Item, from_item, plain_item, to_item, wire_key
from crm.adapters.secrets import SecretsManagerVault
from crm.clock import Clock, utc_now
from crm.config import settings
from crm.models.stores import ApiKey, Platform, Store, StoreSecrets, api_key_id
from crm.ports import (
    SecretVault,
    UnknownWorkspace,
)

STORE_CACHE_TTL = timedelta(seconds=60)


Found = TypeVar("Found")


class FoundStores(Generic[Found]):
    """What a container has found, each for ``ttl`` after it was read; misses are never kept."""

    def __init__(self, ttl: timedelta, clock: Clock) -> None:
        self.ttl = ttl
        self.clock = clock
        self._kept: dict[tuple[str, ...], tuple[datetime, Found]] = {}

    def get(self, key: tuple[str, ...]) -> Found | None:
        kept = self._kept.get(key)
        if kept is None or self.clock() >= kept[0]:
            return None
        return kept[1]

    def keep(self, key: tuple[str, ...], found: Found) -> None:
        if self.ttl > timedelta(0):
            self._kept[key] = (self.clock() + self.ttl, found)


class DynamoStoreDirectory:
    """Stores by platform + domain (their secrets in the vault, not the table), and marketer API keys
    (stored as hashes) by key and by workspace. Stores found are cached for ``cache_ttl`` (module
    docstring); ``cache_ttl=timedelta(0)`` reads the table on every lookup."""

    def __init__(self, table_name: str | None = None, vault: SecretVault | None = None, *,
                 cache_ttl: timedelta = STORE_CACHE_TTL, clock: Clock = utc_now) -> None:
        self.table = table_name or settings().table_name
        self.vault = vault or SecretsManagerVault(self.table)
        self._store_items: FoundStores[dict[str, Any]] = FoundStores(cache_ttl, clock)
        self._by_write_key: FoundStores[Store] = FoundStores(cache_ttl, clock)

    def _store_item(self, platform: Platform | str, domain: str) -> dict[str, Any] | None:
        key = keys.store(platform, domain)
        cached = self._store_items.get((key["pk"], key["sk"]))
        if cached is not None:
            return cached
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(key))
        if "Item" not in found:
            return None
        item = from_item(found["Item"])
        self._store_items.keep((key["pk"], key["sk"]), item)
        return item

    def store_by_domain(self, platform: Platform, domain: str) -> Store | None:
        """The store with its secrets from the vault. A store registered before the vault (its secrets
        still in the item until `crm store migrate-secrets`) is read as it is."""
        item = self._store_item(platform, domain)
        if item is None:
            return None
        secrets = self.vault.store_secrets(str(item["store_id"]))
        return Store.model_validate({**item, **(secrets.model_dump() if secrets else {})})

    def store_by_write_key(self, write_key: str) -> Store | None:
        """Two eventually consistent reads (the pointer, then the store), then none for ``cache_ttl``: the
        store item stays the one copy of its origins, so a change is seen everywhere within the TTL. No secrets."""
        cached = self._by_write_key.get((write_key,))
        if cached is not None:
            return cached
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.write_key(write_key)))
        if "Item" not in found:
            return None
        pointer = from_item(found["Item"])
        item = self._store_item(str(pointer["platform"]), str(pointer["domain"]))
        if item is None:
            return None
        store = Store.model_validate(_without_secrets(item))
        self._by_write_key.keep((write_key,), store)
        return store

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
        entry = {name: value for name, value in to_item(keys.workspace_store(store.workspace_id, store.store_id),
                                                        "store_entry", store).items() if name not in _SECRET_FIELDS}
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table, "Item": store_item, "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": self.table, "Item": entry}},
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

    def workspace_stores(self, workspace_id: str) -> list[Store]:
        """The workspace's stores (without their secrets), oldest first, from its catalogue (WS#<ws>#STORES),
        which registration writes: a store registered before the catalogue existed is not in it."""
        request: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": "pk = :pk",
                                   "ExpressionAttributeValues": {":pk": {"S": keys.workspace_stores(workspace_id)}}}
        found = [Store.model_validate(from_item(item)) for item in query_items(request)]
        return sorted(found, key=lambda store: (store.created_at, store.store_id))

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

