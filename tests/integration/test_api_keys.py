"""Marketer API keys: `crm keys list|create|revoke`, refused from the next request once revoked or expired,
and the API's access log, which names the key by id and never contains the key."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from chalice.test import Client
from crm import clock
from crm.adapters.stores import DynamoStoreDirectory
from crm.models.stores import Platform, StoreRegistration
from crm.stores import register_store
from crm_local.cli import main
from crm_local.lambdas import load_handler
from crm_local.provision import Provisioned

from tests.builders import DOMAIN, NOW

pytestmark = pytest.mark.integration


@pytest.fixture
def registration(provisioned: Provisioned) -> StoreRegistration:
    return register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY, DOMAIN, "s", NOW)


@pytest.fixture
def api(provisioned: Provisioned, function_env: Callable[[str], None]) -> Client:
    function_env("ApiFunction")
    spec = provisioned.functions["ApiFunction"]
    return Client(load_handler(spec.code_path, spec.handler, spec.logical_id))


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    """Everything the API function logs (its Powertools logger, and any other logger), as written."""
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    api_logger, root = logging.getLogger("api"), logging.getLogger()
    formatter = next((h.formatter for h in api_logger.handlers if h.formatter), None)
    handler.setFormatter(formatter)
    levels = api_logger.level, root.level
    api_logger.setLevel(logging.INFO)
    root.setLevel(logging.DEBUG)
    watched = [root] if api_logger.propagate else [root, api_logger]
    for logger in watched:
        logger.addHandler(handler)
    yield written
    for logger in watched:
        logger.removeHandler(handler)
    api_logger.setLevel(levels[0])
    root.setLevel(levels[1])


def _crm(provisioned: Provisioned, capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    code = main(["--stack", provisioned.stack_name, "keys", *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines()]


def _status(api: Client, key: str) -> int:
    status: int = api.http.get("/segments", headers={"x-api-key": key}).status_code
    return status


def test_keys_are_created_listed_and_revoked_from_the_cli(
    provisioned: Provisioned, registration: StoreRegistration, api: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = registration.workspace_id
    [created] = _crm(provisioned, capsys, "create", "--workspace", workspace)
    assert created["api_key"].startswith("crm_") and created["key_id"].startswith("key_")
    assert _status(api, created["api_key"]) == 200 and _status(api, registration.api_key) == 200

    listed = _crm(provisioned, capsys, "list", "--workspace", workspace)
    assert [(k["key_id"], k["state"]) for k in listed] == [(registration.api_key_id, "active"),
                                                            (created["key_id"], "active")]
    assert registration.api_key not in json.dumps(listed) and created["api_key"] not in json.dumps(listed)

    [revoked] = _crm(provisioned, capsys, "revoke", "--workspace", workspace, "--key-id", registration.api_key_id)
    assert revoked["state"] == "revoked" and revoked["revoked_at"] is not None
    # Key lookups are not cached: the very next request is refused; the other key still works.
    assert _status(api, registration.api_key) == 401
    assert _status(api, created["api_key"]) == 200
    assert [k["state"] for k in _crm(provisioned, capsys, "list", "--workspace", workspace)] == ["revoked", "active"]

    assert main(["--stack", provisioned.stack_name, "keys", "revoke", "--workspace", workspace,
                 "--key-id", "key_0000000000000000"]) == 2
    assert "has no api key key_0000000000000000" in capsys.readouterr().err


def test_a_key_with_an_expiry_is_refused_from_that_moment(
    provisioned: Provisioned, registration: StoreRegistration, api: Client, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expires_at = clock.utc_now() + timedelta(hours=1)
    [created] = _crm(provisioned, capsys, "create", "--workspace", registration.workspace_id,
                     "--expires-at", expires_at.isoformat())
    assert _status(api, created["api_key"]) == 200

    monkeypatch.setattr(clock, "_shift", timedelta(minutes=59))  # the function's clock, moved forward
    assert _status(api, created["api_key"]) == 200
    monkeypatch.setattr(clock, "_shift", timedelta(minutes=60, seconds=1))
    assert _status(api, created["api_key"]) == 401
    assert _status(api, registration.api_key) == 200
    assert [k["state"] for k in _crm(provisioned, capsys, "list", "--workspace", registration.workspace_id)] == [
        "active", "expired"]


def test_the_access_log_names_workspace_and_key_id_and_never_the_key(
    provisioned: Provisioned, registration: StoreRegistration, api: Client, access_log: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong_key = registration.api_key[:-4] + "AAAA"
    assert api.http.get("/segments", headers={"x-api-key": registration.api_key}).status_code == 200
    assert api.http.get("/customers/0123456789abcdef", headers={"x-api-key": registration.api_key}).status_code == 404
    assert api.http.get("/segments", headers={"x-api-key": wrong_key}).status_code == 401
    assert api.http.post("/segments", headers={"x-api-key": registration.api_key, "content-type": "application/json"},
                         body=b"{not json").status_code == 400

    written = access_log.getvalue() + "".join(capsys.readouterr())
    assert registration.api_key not in written and wrong_key not in written
    lines = [json.loads(line) for line in access_log.getvalue().splitlines() if '"api request"' in line]
    assert [(line["method"], line["route"], line["path"], line["status"], line.get("workspace_id"), line.get("key_id"))
            for line in lines] == [
        ("GET", "/segments", "/segments", 200, registration.workspace_id, registration.api_key_id),
        ("GET", "/customers/{profile_id}", "/customers/0123456789abcdef", 404, registration.workspace_id,
         registration.api_key_id),
        ("GET", "/segments", "/segments", 401, None, None),
        ("POST", "/segments", "/segments", 400, registration.workspace_id, registration.api_key_id),
    ]
    assert all(isinstance(line["latency_ms"], float | int) and line["latency_ms"] >= 0 for line in lines)
