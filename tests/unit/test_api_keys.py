"""Marketer keys and store secret rotation as plain functions over the fakes (the adapters pass the same
contract in tests/contract and on moto in tests/integration/test_store_secrets.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from crm.api_keys import UnknownApiKey, authenticate, create_api_key, key_view, revoke_api_key
from crm.models.stores import Platform, StoreSecrets
from crm.stores import UnknownStore, register_store, retire_webhook_secrets, rotate_webhook_secret

from tests.builders import NOW
from tests.fakes import FakeSecretVault, FakeStoreDirectory


def test_a_key_is_valid_until_its_expiry_or_revocation() -> None:
    directory = FakeStoreDirectory()
    registration = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "s", NOW)
    issued = create_api_key(directory, registration.workspace_id, NOW, expires_at=NOW + timedelta(days=1))

    assert authenticate(directory, issued.api_key, NOW + timedelta(hours=23)) == issued.key
    assert authenticate(directory, issued.api_key, NOW + timedelta(days=1)) is None  # the expiry is exclusive
    assert key_view(issued.key, NOW + timedelta(days=2))["state"] == "expired"

    assert authenticate(directory, registration.api_key, NOW) is not None
    revoke_api_key(directory, registration.workspace_id, registration.api_key_id, NOW + timedelta(seconds=1))
    assert authenticate(directory, registration.api_key, NOW + timedelta(seconds=1)) is None
    assert authenticate(directory, None, NOW) is None and authenticate(directory, "", NOW) is None


def test_a_key_cannot_be_created_already_expired_nor_an_unknown_one_revoked() -> None:
    directory = FakeStoreDirectory()
    registration = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "s", NOW)
    with pytest.raises(ValueError, match="not in the future"):
        create_api_key(directory, registration.workspace_id, NOW, expires_at=NOW)
    with pytest.raises(UnknownApiKey, match="key_nope"):
        revoke_api_key(directory, registration.workspace_id, "key_nope", NOW)


def test_a_key_view_never_holds_the_key() -> None:
    directory = FakeStoreDirectory()
    registration = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "s", NOW)
    issued = create_api_key(directory, registration.workspace_id, NOW)
    assert issued.api_key not in str(key_view(issued.key, NOW))
    assert key_view(issued.key, NOW) == {"key_id": issued.key.key_id, "workspace_id": registration.workspace_id,
                                         "state": "active", "created_at": NOW.isoformat(), "expires_at": None,
                                         "revoked_at": None}


def test_rotation_adds_a_secret_and_retirement_keeps_the_newest() -> None:
    vault = FakeSecretVault()
    vault.keep("st_a", StoreSecrets(webhook_secrets=("old",), api_token="token"))

    assert rotate_webhook_secret(vault, "st_a", " new ") == "new"
    assert vault.secrets["st_a"] == StoreSecrets(webhook_secrets=("old", "new"), api_token="token")
    assert rotate_webhook_secret(vault, "st_a", "old") == "old"  # adding one already there moves it last
    assert vault.secrets["st_a"].webhook_secrets == ("new", "old")

    assert retire_webhook_secrets(vault, "st_a") == 1
    assert vault.secrets["st_a"] == StoreSecrets(webhook_secrets=("old",), api_token="token")
    assert retire_webhook_secrets(vault, "st_a") == 0

    generated = rotate_webhook_secret(vault, "st_a")
    assert len(generated) >= 40 and vault.secrets["st_a"].webhook_secrets == ("old", generated)
    with pytest.raises(ValueError, match="must not be empty"):
        rotate_webhook_secret(vault, "st_a", "  ")
    with pytest.raises(UnknownStore, match="migrate-secrets"):
        rotate_webhook_secret(vault, "st_unknown", "x")
