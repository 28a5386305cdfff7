"""Stores and the workspaces that own them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


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


class StoreRegistration(BaseModel):
    """What `crm store add` prints: the ids and the marketer key (shown once, stored hashed)."""

    store_id: str
    workspace_id: str
    platform: Platform
    domain: str
    api_key: str
