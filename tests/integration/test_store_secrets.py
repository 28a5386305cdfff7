"""Store secrets in Secrets Manager (never in the table), their rotation, and the migration of stores
registered before: on moto, through the `crm` command the operator runs."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from crm.adapters.secrets import SecretsManagerVault
from crm.adapters.stores import DynamoStoreDirectory
from crm.models.stores import Platform, api_key_id
from crm.stores import register_store
from crm.webhooks import NotAuthenticated, accept_webhook
from crm_local.cli import main
from crm_local.provision import Provisioned

from tests.aws import client
from tests.builders import BC_STORE_HASH, DOMAIN, NOW, placed_order_bytes, shopify_headers
from tests.fakes import FakeIngestQueue, FakeRawArchive

pytestmark = pytest.mark.integration

OLD, NEW = "shpss_old_secret_1", "shpss_new_secret_2"


class Clock:
    """The webhooks container's clock, moved by hand (nothing sleeps)."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _crm(provisioned: Provisioned, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code = main(["--stack", provisioned.stack_name, *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def _table_item(table: str, pk: str, sk: str) -> dict[str, Any]:
    item: dict[str, Any] = client("dynamodb").get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})["Item"]
    return item


def _secret(table: str, store_id: str) -> dict[str, Any]:
    answer = client("secretsmanager").get_secret_value(SecretId=f"crm/{table}/store/{store_id}")
    found: dict[str, Any] = json.loads(answer["SecretString"])
    return found


def test_store_secrets_live_in_secrets_manager_not_in_the_table(provisioned: Provisioned) -> None:
    table = provisioned.outputs["TableName"]
    directory = DynamoStoreDirectory(table)
    shopify = register_store(directory, Platform.SHOPIFY, DOMAIN, OLD, NOW)
    bigcommerce = register_store(directory, Platform.BIGCOMMERCE, BC_STORE_HASH, "bc_client_secret", NOW,
                                 "bc_api_token_xyz")

    for registration, secret in ((shopify, OLD), (bigcommerce, "bc_client_secret")):
        item = _table_item(table, f"STORE#{registration.platform}#{registration.domain}", "STORE")
        assert item["store_id"] == {"S": registration.store_id}
        assert secret not in json.dumps(item) and "bc_api_token_xyz" not in json.dumps(item)
        assert {"webhook_secrets", "api_token"}.isdisjoint(item)
    assert _secret(table, shopify.store_id) == {"webhook_secrets": [OLD]}
    assert _secret(table, bigcommerce.store_id) == {"webhook_secrets": ["bc_client_secret"],
                                                    "api_token": "bc_api_token_xyz"}
    found = directory.store_by_domain(Platform.BIGCOMMERCE, BC_STORE_HASH)  # what the profiles function reads
    assert found is not None and (found.webhook_secrets, found.api_token) == (("bc_client_secret",), "bc_api_token_xyz")


def test_a_refused_registration_leaves_no_secret_behind(provisioned: Provisioned) -> None:
    table = provisioned.outputs["TableName"]
    directory = DynamoStoreDirectory(table)
    register_store(directory, Platform.SHOPIFY, DOMAIN, OLD, NOW)
    with pytest.raises(ValueError, match="already registered"):
        register_store(directory, Platform.SHOPIFY, DOMAIN, "another", NOW)
    # The stack's own secrets (the link signing key) are there too; the stores' are under crm/{table}/store/.
    names = [s["Name"] for s in client("secretsmanager").list_secrets()["SecretList"]
             if s["Name"].startswith(f"crm/{table}/")]
    assert len(names) == 1 and names[0].startswith(f"crm/{table}/store/st_")


def test_a_rotation_verifies_old_and_new_until_the_old_is_retired(
    provisioned: Provisioned, capsys: pytest.CaptureFixture[str]
) -> None:
    table = provisioned.outputs["TableName"]
    registration = register_store(DynamoStoreDirectory(table), Platform.SHOPIFY, DOMAIN, OLD, NOW)
    clock = Clock()
    # The webhooks function's directory, with its own 60-second cache of the vault.
    webhooks = DynamoStoreDirectory(table, SecretsManagerVault(table, clock=clock))
    archive, queue = FakeRawArchive(), FakeIngestQueue()
    body = placed_order_bytes()
    deliveries = iter(range(100))

    def accepted(secret: str) -> bool:
        try:
            accept_webhook("shopify", shopify_headers(body, secret=secret, delivery_id=f"d-{next(deliveries)}"),
                           body, webhooks, archive, queue, clock.now)
        except NotAuthenticated:
            return False
        return True

    assert accepted(OLD) and not accepted(NEW)
    rotated = _crm(provisioned, capsys, "store", "rotate-secret", "--store", registration.store_id,
                   "--webhook-secret", NEW)
    assert rotated == {"store_id": registration.store_id, "webhook_secret": NEW, "valid_secrets": 2}

    clock.now += timedelta(seconds=61)  # every container's cached copy has expired
    assert accepted(OLD) and accepted(NEW)

    assert _crm(provisioned, capsys, "store", "retire-secret", "--store", registration.store_id) == {
        "store_id": registration.store_id, "retired": 1}
    clock.now += timedelta(seconds=30)
    assert accepted(OLD)  # this container's copy is 30 s old: the retirement is not seen yet
    clock.now += timedelta(seconds=31)
    assert not accepted(OLD) and accepted(NEW)
    assert _secret(table, registration.store_id) == {"webhook_secrets": [NEW]}


def test_a_generated_secret_is_printed_once_and_an_unknown_store_is_refused(
    provisioned: Provisioned, capsys: pytest.CaptureFixture[str]
) -> None:
    table = provisioned.outputs["TableName"]
    registration = register_store(DynamoStoreDirectory(table), Platform.WOOCOMMERCE, "shop.example", OLD, NOW)
    rotated = _crm(provisioned, capsys, "store", "rotate-secret", "--store", registration.store_id)
    assert len(rotated["webhook_secret"]) >= 40
    assert _secret(table, registration.store_id) == {"webhook_secrets": [OLD, rotated["webhook_secret"]]}

    assert main(["--stack", provisioned.stack_name, "store", "rotate-secret", "--store", "st_nobody"]) == 2
    assert "no secrets for store st_nobody" in capsys.readouterr().err


def test_migrate_secrets_moves_an_older_store_out_of_the_table(
    provisioned: Provisioned, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store and key written as the code before the vault wrote them: secrets in the item, a key without id."""
    table = provisioned.outputs["TableName"]
    dynamodb = client("dynamodb")
    store_pk = f"STORE#shopify#{DOMAIN}"
    dynamodb.put_item(TableName=table, Item={
        "pk": {"S": store_pk}, "sk": {"S": "STORE"}, "entity": {"S": "store"}, "store_id": {"S": "st_old"},
        "workspace_id": {"S": "ws_old"}, "platform": {"S": "shopify"}, "domain": {"S": DOMAIN},
        "webhook_secrets": {"L": [{"S": OLD}]}, "created_at": {"S": NOW.isoformat()},
        "allowed_origins": {"L": [{"S": f"https://{DOMAIN}"}]}})
    old_key = "crm_an_older_key_issued_before_key_ids"
    dynamodb.put_item(TableName=table, Item={  # the lookup item as it was: hash, workspace, time
        "pk": {"S": f"APIKEY#{hashlib.sha256(old_key.encode()).hexdigest()}"}, "sk": {"S": "APIKEY"},
        "entity": {"S": "api_key"}, "workspace_id": {"S": "ws_old"}, "created_at": {"S": NOW.isoformat()}})
    for item in ({"pk": "WS#ws_old", "sk": "WORKSPACE"}, {"pk": "WORKSPACES", "sk": "ws_old"}):
        dynamodb.put_item(TableName=table, Item={k: {"S": v} for k, v in item.items()})
    directory = DynamoStoreDirectory(table)
    older = directory.api_key(old_key)
    assert older is not None and (older.key_id, older.workspace_id) == (api_key_id(old_key), "ws_old")

    # Read as it is until migrated (deploy first, then migrate: no webhook is refused meanwhile).
    before = directory.store_by_domain(Platform.SHOPIFY, DOMAIN)
    assert before is not None and before.webhook_secrets == (OLD,)

    assert _crm(provisioned, capsys, "store", "migrate-secrets") == {"stores": 1, "api_keys": 1}
    assert {"webhook_secrets", "api_token"}.isdisjoint(_table_item(table, store_pk, "STORE"))
    assert _secret(table, "st_old") == {"webhook_secrets": [OLD]}
    after = DynamoStoreDirectory(table).store_by_domain(Platform.SHOPIFY, DOMAIN)
    assert after is not None and after.webhook_secrets == (OLD,)
    listed = _crm(provisioned, capsys, "keys", "list", "--workspace", "ws_old")
    assert listed["key_id"] == api_key_id(old_key) and listed["state"] == "active"
    assert _crm(provisioned, capsys, "store", "migrate-secrets") == {"stores": 0, "api_keys": 0}
