"""Registering a store: new ids, a marketer API key shown once and stored only as a hash, and the
store's public write key for storefront tracking; rotating its webhook secret in the vault."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlsplit

from crm.models.stores import Platform, Store, StoreRegistration, StoreSecrets, api_key_id
from crm.ports import SecretVault, StoreDirectory, UnknownWorkspace

__all__ = ["UnknownStore", "UnknownWorkspace", "api_token_for", "new_api_key", "new_write_key", "normalise_domain",
           "normalise_origin", "register_store", "retire_webhook_secrets", "rotate_webhook_secret"]


class UnknownStore(ValueError):
    """The vault holds no secrets for that store id (unknown, or registered before the vault and not yet
    migrated: `crm store migrate-secrets`)."""


def normalise_domain(domain: str) -> str:
    """The store's host: lowercase, without scheme, path or trailing dot."""
    host = domain.strip().lower().removeprefix("https://").removeprefix("http://")
    return host.split("/", 1)[0].rstrip(".")


def normalise_origin(origin: str) -> str:
    """An origin as browsers send it in the Origin header: ``scheme://host[:port]``, lowercase, no path.

    ValueError for anything else, so a typo at registration does not silently refuse every page view.
    """
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{origin!r} is not an origin (expected https://host or https://host:port)")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{origin!r} is not an origin: drop the path, query and credentials")
    host = parts.hostname.rstrip(".")
    default_port = {"https": 443, "http": 80}[parts.scheme]
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    return f"{parts.scheme}://{host}{port}"


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


def new_write_key() -> str:
    # 24 url-safe characters (144 bits): unguessable, though it is public once pasted into a theme.
    return f"wk_{secrets.token_urlsafe(18)}"


def new_api_key() -> str:
    return f"crm_{secrets.token_urlsafe(32)}"


def register_store(
    directory: StoreDirectory, platform: Platform, domain: str, webhook_secret: str, now: datetime,
    api_token: str | None = None, *, workspace_id: str | None = None, origins: Iterable[str] = (),
) -> StoreRegistration:
    """Register a store in a new workspace, or in ``workspace_id`` (UnknownWorkspace if there is none).

    Either way a new marketer key for the workspace is issued: keys are kept only as hashes, so an
    earlier one cannot be shown again. ``origins`` are the storefront origins allowed to send
    tracking events (default: https://<domain>). ``api_token`` is required for (and only kept for)
    platforms in NEEDS_API_TOKEN.
    """
    if not webhook_secret.strip():
        raise ValueError("the webhook secret must not be empty")
    token = api_token_for(platform, api_token)
    allowed = tuple(dict.fromkeys(normalise_origin(o) for o in origins))
    if workspace_id is not None and not directory.workspace_exists(workspace_id):
        raise UnknownWorkspace(f"workspace {workspace_id} does not exist (omit --workspace to create one)")
    write_key = new_write_key()
    store = Store(
        store_id=f"st_{secrets.token_hex(8)}",
        workspace_id=workspace_id or f"ws_{secrets.token_hex(8)}",
        platform=platform,
        domain=normalise_domain(domain),
        webhook_secrets=(webhook_secret,),
        created_at=now,
        api_token=token,
        write_key=write_key,
        allowed_origins=allowed,
    )
    api_key = new_api_key()
    directory.register(store, api_key, new_workspace=workspace_id is None)
    return StoreRegistration(store_id=store.store_id, workspace_id=store.workspace_id, platform=platform,
                             domain=store.domain, api_key=api_key, api_key_id=api_key_id(api_key),
                             write_key=write_key, allowed_origins=store.allowed_origins)


def _secrets_of(vault: SecretVault, store_id: str) -> StoreSecrets:
    found = vault.store_secrets(store_id)
    if found is None:
        raise UnknownStore(f"no secrets for store {store_id} in the vault (an unknown store id, or one "
                           "registered before the vault: run `crm store migrate-secrets` first)")
    return found


def rotate_webhook_secret(vault: SecretVault, store_id: str, new_secret: str | None = None) -> str:
    """Add a webhook secret beside the store's current ones (given by the platform, or a new random one
    for platforms where the owner chooses it); until retire_webhook_secrets, old and new both verify.
    Returns the new secret."""
    secret = (new_secret if new_secret is not None else secrets.token_urlsafe(32)).strip()
    if not secret:
        raise ValueError("the webhook secret must not be empty")
    current = _secrets_of(vault, store_id)
    kept = tuple(s for s in current.webhook_secrets if s != secret)
    vault.keep(store_id, current.model_copy(update={"webhook_secrets": (*kept, secret)}))
    return secret


def retire_webhook_secrets(vault: SecretVault, store_id: str) -> int:
    """Keep only the newest webhook secret; returns how many older ones stop verifying (once every
    container's cache has expired, within a minute)."""
    current = _secrets_of(vault, store_id)
    vault.keep(store_id, current.model_copy(update={"webhook_secrets": current.webhook_secrets[-1:]}))
    return len(current.webhook_secrets) - 1
