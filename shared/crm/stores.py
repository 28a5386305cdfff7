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


# Platforms whose webhooks carry only ids: the CRM reads the order from the platform's API with this token.
NEEDS_API_TOKEN = frozenset({Platform.BIGCOMMERCE})


def api_token_for(platform: Platform, api_token: str | None) -> str | None:
    """The token to keep: required for platforms in NEEDS_API_TOKEN (ValueError), dropped for the others."""
    token = (api_token or "").strip() or None
    if platform not in NEEDS_API_TOKEN:
        return None
    if token is None:
        raise ValueError(f"a {platform} store needs an API token (--api-token): its webhooks carry only ids")
    return token


def register_store(
    directory: StoreDirectory, platform: Platform, domain: str, webhook_secret: str, now: datetime,
    api_token: str | None = None,
) -> StoreRegistration:
    """Register a store; ``api_token`` is required for (and only kept for) platforms in NEEDS_API_TOKEN."""
    if not webhook_secret.strip():
        raise ValueError("the webhook secret must not be empty")
    token = api_token_for(platform, api_token)
    store = Store(
        store_id=f"st_{secrets.token_hex(8)}",
        workspace_id=f"ws_{secrets.token_hex(8)}",
        platform=platform,
        domain=normalise_domain(domain),
        webhook_secrets=(webhook_secret,),
        created_at=now,
        api_token=token,
    )
    api_key = f"crm_{secrets.token_urlsafe(32)}"
    directory.register(store, api_key)
    return StoreRegistration(store_id=store.store_id, workspace_id=store.workspace_id, platform=platform,
                             domain=store.domain, api_key=api_key)
