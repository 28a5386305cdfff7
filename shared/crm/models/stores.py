"""Stores and the workspaces that own them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Platform(StrEnum):
    SHOPIFY = "shopify"
    WOOCOMMERCE = "woocommerce"
    BIGCOMMERCE = "bigcommerce"
    CUSTOM = "custom"  # any storefront, through the canonical event API (POST /events)


class Store(BaseModel):
    """A store that sends webhooks; its secrets sign them (old and new during a rotation).

    ``api_token`` is the platform API's access token, for platforms whose webhooks carry only ids
    (BigCommerce); it is stored like the secrets and never leaves the table.
    """

    model_config = ConfigDict(frozen=True)

    store_id: str
    workspace_id: str
    platform: Platform
    domain: str = Field(min_length=3)
    webhook_secrets: tuple[str, ...] = Field(min_length=1)
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


class StoreRegistration(BaseModel):
    """What `crm store add` prints: the ids, the marketer key (shown once, stored hashed) and the
    store's public write key for the storefront snippet."""

    store_id: str
    workspace_id: str
    platform: Platform
    domain: str
    api_key: str
    write_key: str
    allowed_origins: tuple[str, ...]
