"""Store secrets in AWS Secrets Manager: one secret per store, named under the stack's prefix so IAM can
grant exactly that prefix (template.yaml), and cached briefly in the container.

A webhook is verified on every request, so each container keeps what it read for ``ttl`` (60 s): a
Secrets Manager call a minute per container instead of one per webhook. The price is that a rotated or
retired secret takes up to ``ttl`` to be seen by every container (docs/security.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from botocore.exceptions import ClientError

from crm.adapters.clients import client
from crm.clock import Clock, utc_now
from crm.config import settings
from crm.messaging.unsubscribe import SigningKeys
from crm.models.stores import StoreSecrets

CACHE_TTL = timedelta(seconds=60)
_NOT_FOUND = "ResourceNotFoundException"


def secrets_prefix(table_name: str) -> str:
    """Where a stack's store secrets live; the table name is ``<stack>-table``, so it names the stack."""
    return f"crm/{table_name}/store/"


class SecretsManagerVault:
    """A store's StoreSecrets by store id (``crm/<table>/store/<store_id>``, a JSON SecretString)."""

    def __init__(self, table_name: str | None = None, *, ttl: timedelta = CACHE_TTL, clock: Clock = utc_now) -> None:
        self.prefix = secrets_prefix(table_name or settings().table_name)
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[datetime, StoreSecrets]] = {}

    def name(self, store_id: str) -> str:
        return f"{self.prefix}{store_id}"

    def store_secrets(self, store_id: str) -> StoreSecrets | None:
        """The store's secrets, at most ``ttl`` old; None if the vault holds none (not cached: a store
        registered a moment ago is found at once)."""
        now = self.clock()
        cached = self._cache.get(store_id)
        if cached is not None and now < cached[0]:
            return cached[1]
        try:
            answer = client("secretsmanager").get_secret_value(SecretId=self.name(store_id))
        except ClientError as error:
            if error.response["Error"]["Code"] == _NOT_FOUND:
                return None
            raise
        found = StoreSecrets.model_validate_json(answer["SecretString"])
        self._cache[store_id] = (now + self.ttl, found)
        return found

    def keep(self, store_id: str, secrets: StoreSecrets) -> None:
        """Create or replace the store's secret (a new version; Secrets Manager keeps the previous one)."""
        value = secrets.model_dump_json(exclude_none=True)
        manager = client("secretsmanager")
        try:
            manager.put_secret_value(SecretId=self.name(store_id), SecretString=value)
        except ClientError as error:
            if error.response["Error"]["Code"] != _NOT_FOUND:
                raise
            manager.create_secret(Name=self.name(store_id), SecretString=value,
                                  Description="crm store secrets: webhook signing secrets and platform API token")
        self._cache.pop(store_id, None)

    def forget(self, store_id: str) -> None:
        """Delete the store's secret at once (a registration that did not complete, or an erased store)."""
        try:
            client("secretsmanager").delete_secret(SecretId=self.name(store_id), ForceDeleteWithoutRecovery=True)
        except ClientError as error:
            if error.response["Error"]["Code"] != _NOT_FOUND:
                raise
        self._cache.pop(store_id, None)


class LinkSigningKeys:
    """The keys that sign the links in emails (crm.messaging.unsubscribe): the secret LINK_SIGNING_SECRET
    names (template.yaml LinkSigningSecret, generated at deploy). Its current version signs; the previous
    one (AWSPREVIOUS, after a rotation) still verifies, so links already sent keep working. Cached for
    ``ttl`` like the store secrets."""

    def __init__(self, secret_id: str | None = None, *, ttl: timedelta = CACHE_TTL, clock: Clock = utc_now) -> None:
        self.secret_id = secret_id or settings().require("link_signing_secret")
        self.ttl = ttl
        self.clock = clock
        self._cached: tuple[datetime, SigningKeys] | None = None

    def _version(self, stage: str) -> bytes | None:
        try:
            answer = client("secretsmanager").get_secret_value(SecretId=self.secret_id, VersionStage=stage)
        except ClientError as error:
            if error.response["Error"]["Code"] == _NOT_FOUND:
                return None
            raise
        return str(answer["SecretString"]).encode()

    def keys(self) -> SigningKeys:
        now = self.clock()
        if self._cached is not None and now < self._cached[0]:
            return self._cached[1]
        current = self._version("AWSCURRENT")
        if current is None:
            raise RuntimeError(f"the link signing secret {self.secret_id} does not exist (see template.yaml)")
        previous = self._version("AWSPREVIOUS")
        found = SigningKeys(current=current, previous=(previous,) if previous and previous != current else ())
        self._cached = (now + self.ttl, found)
        return found
