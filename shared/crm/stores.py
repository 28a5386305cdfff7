"""Registering a store: new ids, a marketer API key shown once and stored only as a hash."""

from __future__ import annotations

import secrets
from datetime import datetime

from crm.models.stores import Platform, Store, StoreRegistration
from crm.ports import StoreDirectory


def normalise_domain(domain: str) -> str:
    """The store's host: lowercase, without scheme, path or trailing dot."""
    host = domain.strip().lower().removeprefix("https://").removeprefix("http://")
    return host.split("/", 1)[0].rstrip(".")


def register_store(
    directory: StoreDirectory, platform: Platform, domain: str, webhook_secret: str, now: datetime
) -> StoreRegistration:
    if not webhook_secret.strip():
        raise ValueError("the webhook secret must not be empty")
    store = Store(
        store_id=f"st_{secrets.token_hex(8)}",
        workspace_id=f"ws_{secrets.token_hex(8)}",
        platform=platform,
        domain=normalise_domain(domain),
        webhook_secrets=(webhook_secret,),
        created_at=now,
    )
    api_key = f"crm_{secrets.token_urlsafe(32)}"
    directory.register(store, api_key)
    return StoreRegistration(store_id=store.store_id, workspace_id=store.workspace_id, platform=platform,
                             domain=store.domain, api_key=api_key)
