"""Operator commands for a stack's credentials: store secrets in Secrets Manager, marketer API keys.

They run with the operator's (deployer's) credentials, not a function's role: the functions may only read
the store secrets (template.yaml), the operator writes them (docs/security.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm.adapters.secrets import SecretsManagerVault
from crm.adapters.stores import DynamoStoreDirectory
from crm.api_keys import create_api_key, key_view, revoke_api_key
from crm.clock import utc_now
from crm.stores import retire_webhook_secrets, rotate_webhook_secret

from crm_local.operations import stack_outputs


def _directory(stack_name: str) -> DynamoStoreDirectory:
    return DynamoStoreDirectory(stack_outputs(stack_name)["TableName"])


def _vault(stack_name: str) -> SecretsManagerVault:
    return SecretsManagerVault(stack_outputs(stack_name)["TableName"])


def rotate_secret(stack_name: str, store_id: str, secret: str | None = None) -> dict[str, Any]:
    vault = _vault(stack_name)
    new_secret = rotate_webhook_secret(vault, store_id, secret)
    kept = vault.store_secrets(store_id)
    return {"store_id": store_id, "webhook_secret": new_secret,
            "valid_secrets": len(kept.webhook_secrets) if kept else 0}


def retire_secret(stack_name: str, store_id: str) -> dict[str, Any]:
    return {"store_id": store_id, "retired": retire_webhook_secrets(_vault(stack_name), store_id)}


def migrate_secrets(stack_name: str) -> dict[str, int]:
    return _directory(stack_name).migrate_plaintext()


def list_keys(stack_name: str, workspace_id: str) -> list[dict[str, str | None]]:
    now = utc_now()
    return [key_view(key, now) for key in _directory(stack_name).api_keys(workspace_id)]


def create_key(stack_name: str, workspace_id: str, expires_at: datetime | None = None) -> dict[str, Any]:
    now = utc_now()
    issued = create_api_key(_directory(stack_name), workspace_id, now, expires_at)
    return {"api_key": issued.api_key, **key_view(issued.key, now)}


def revoke_key(stack_name: str, workspace_id: str, key_id: str) -> dict[str, str | None]:
    now = utc_now()
    return key_view(revoke_api_key(_directory(stack_name), workspace_id, key_id, now), now)
