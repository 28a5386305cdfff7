"""The marketer API (functions/api) in-process on the provisioned stack, with two workspaces' keys: the world
of the flows, templates and messaging settings integration tests."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from chalice.test import Client
from crm.adapters.stores import DynamoStoreDirectory
from crm.models.stores import Platform, StoreRegistration
from crm.stores import register_store
from crm_local.lambdas import load_handler
from crm_local.provision import Provisioned

from tests.builders import NOW


@dataclass
class MarketerApi:
    api: Client
    a: StoreRegistration
    b: StoreRegistration
    provisioned: Provisioned

    def call(self, method: str, path: str, key: str | None = None, body: Any = None, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> Any:
        sent = {"x-api-key": key or self.a.api_key, "content-type": "application/json", **(headers or {})}
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
        return getattr(self.api.http, method)(path, headers=sent, body=data)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200, key: str | None = None) -> Any:
        answer = self.call(method, path, key=key, body=body)
        assert answer.status_code == status, (method, path, answer.status_code, answer.body)
        return answer.json_body


def marketer_api(provisioned: Provisioned, function_env: Callable[[str], None],
                 monkeypatch: pytest.MonkeyPatch) -> MarketerApi:
    """Workspaces a and b, each with a store and an API key; the API function's clock held at NOW."""
    directory = DynamoStoreDirectory(provisioned.outputs["TableName"])
    a = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "secret-a", NOW)
    b = register_store(directory, Platform.SHOPIFY, "b.myshopify.com", "secret-b", NOW)
    function_env("ApiFunction")
    spec = provisioned.functions["ApiFunction"]
    handler = load_handler(spec.code_path, spec.handler, spec.logical_id)
    monkeypatch.setattr(sys.modules[f"crm_function_{spec.logical_id}"], "utc_now", lambda: NOW)
    return MarketerApi(Client(handler), a, b, provisioned)
