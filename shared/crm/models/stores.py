"""Stores and the workspaces that own them."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crm.clock import UtcDateTime


class Platform(StrEnum):
    SHOPIFY = "shopify"
    WOOCOMMERCE = "woocommerce"
    BIGCOMMERCE = "bigcommerce"
    CUSTOM = "custom"  # any storefront, through the canonical event API (POST /events)


class Store(BaseModel):
    """A store that sends webhooks; its secrets sign them (old and new during a rotation).

    ``api_token`` is the platform API's access token, for platforms whose webhooks carry only ids
    (BigCommerce). Both are StoreSecrets, kept in the secret vault (docs/security.md), not in the table:
    a store read without them (the tracking path, which must not see them) has none.
    """

    model_config = ConfigDict(frozen=True)

    store_id: str
    workspace_id: str
    platform: Platform
    domain: str = Field(min_length=3)
    webhook_secrets: tuple[str, ...] = ()
    created_at: datetime
    api_token: str | None = None
    # The storefront's public tracking key (POST /track): safe to embed in a page, so it only lets a
    # browser on one of ``allowed_origins`` add activity; it reads nothing. Stores registered before
    # tracking existed have none until one is issued.
    write_key: str | None = None
    allowed_origins: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _default_origin(cls, data: Any) -> Any:
        # A storefront is usually served from the store's own domain; other origins are named at registration.
        if isinstance(data, dict) and not data.get("allowed_origins") and data.get("domain"):
            return {**data, "allowed_origins": (f"https://{data['domain']}",)}
        return data


class StoreSecrets(BaseModel):
    """What signs a store's webhooks and reads its platform's API: one secret in the vault per store.

    ``webhook_secrets`` are in the order they were added; during a rotation the old and the new are both
    accepted until the old ones are retired (only the last is kept).
    """

    model_config = ConfigDict(frozen=True)

    webhook_secrets: tuple[str, ...] = Field(min_length=1)
    api_token: str | None = None


class ApiKey(BaseModel):
    """A marketer API key as the CRM keeps it: an id to name it by, never the key (only its hash is stored)."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    workspace_id: str
    created_at: UtcDateTime
    expires_at: UtcDateTime | None = None
    revoked_at: UtcDateTime | None = None

    def valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


def api_key_id(api_key: str) -> str:
    """The id a key is named by in listings and logs: the first 64 bits of the SHA-256 the table keeps.
    It tells nothing about the key (a 256-bit random string) and needs no second record to find it."""
    return f"key_{hashlib.sha256(api_key.encode()).hexdigest()[:16]}"


class IssuedApiKey(BaseModel):
    """A key just created: the only time its text is shown."""

    api_key: str
    key: ApiKey


class StoreRegistration(BaseModel):
    """What `crm store add` prints: the ids, the marketer key (shown once, stored hashed) and the
    store's public write key for the storefront snippet."""

    store_id: str
    workspace_id: str
    platform: Platform
    domain: str
    api_key: str
    api_key_id: str
    write_key: str
    allowed_origins: tuple[str, ...]
