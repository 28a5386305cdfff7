"""Marketer API keys: created (shown once, kept as a hash), listed by id, revoked, optionally expiring.

Every request looks its key up in the table (one GetItem, not cached), so a revoked or expired key is
refused from the next request on.
"""

from __future__ import annotations

from datetime import datetime

from crm.models.stores import ApiKey, IssuedApiKey, api_key_id
from crm.ports import StoreDirectory
from crm.stores import new_api_key

__all__ = ["UnknownApiKey", "authenticate", "create_api_key", "key_view", "revoke_api_key"]


class UnknownApiKey(ValueError):
    """The workspace has no key of that id."""


def create_api_key(directory: StoreDirectory, workspace_id: str, now: datetime,
                   expires_at: datetime | None = None) -> IssuedApiKey:
    """A new key for the workspace (UnknownWorkspace if there is none); ``expires_at`` must be later than now."""
    if expires_at is not None and expires_at <= now:
        raise ValueError(f"the expiry {expires_at.isoformat()} is not in the future")
    api_key = new_api_key()
    key = ApiKey(key_id=api_key_id(api_key), workspace_id=workspace_id, created_at=now, expires_at=expires_at)
    directory.add_api_key(api_key, key)
    return IssuedApiKey(api_key=api_key, key=key)


def revoke_api_key(directory: StoreDirectory, workspace_id: str, key_id: str, now: datetime) -> ApiKey:
    revoked = directory.revoke_api_key(workspace_id, key_id, now)
    if revoked is None:
        raise UnknownApiKey(f"workspace {workspace_id} has no api key {key_id}")
    return revoked


def authenticate(directory: StoreDirectory, api_key: str | None, now: datetime) -> ApiKey | None:
    """The key's record if it may be used now: known, not revoked, not expired."""
    if not api_key:
        return None
    key = directory.api_key(api_key)
    return key if key is not None and key.valid_at(now) else None


def key_view(key: ApiKey, now: datetime) -> dict[str, str | None]:
    """A key as `crm keys list` shows it: never the key itself (it is not kept)."""
    state = "revoked" if key.revoked_at else ("expired" if not key.valid_at(now) else "active")
    return {"key_id": key.key_id, "workspace_id": key.workspace_id, "state": state,
            "created_at": key.created_at.isoformat(),
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None}
