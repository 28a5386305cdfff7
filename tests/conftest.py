"""Shared fixtures: fake AWS credentials, moto, and the stack provisioned from template.yaml."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from crm_local.provision import Provisioned, provision
from crm_local.template import Stack, load_stack
from moto import mock_aws

from tests.aws import REGION, reset_crm_caches
from tests.builders import TEMPLATE


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fake credentials, no endpoint override, no profile: nothing can reach a real AWS account."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            monkeypatch.delenv(name)
    empty = tmp_path_factory.mktemp("aws") / "none"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    reset_crm_caches()
    yield
    reset_crm_caches()


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[None]:
    """moto's in-memory AWS for the duration of one test."""
    assert "AWS_ENDPOINT_URL" not in os.environ
    with mock_aws():
        yield


@pytest.fixture(scope="session")
def stack() -> Stack:
    """template.yaml translated by SAM (pure: no AWS calls)."""
    return load_stack(TEMPLATE, region=REGION)


@pytest.fixture
def provisioned(aws: None, stack: Stack) -> Provisioned:
    """Every template resource created in moto under a stack name of this test's own."""
    return provision(stack, stack_name=f"t{uuid.uuid4().hex[:12]}", region=REGION)


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch, provisioned: Provisioned) -> Callable[[str], None]:
    """Switch the process environment to one function's, as Lambda would set it, and reset crm caches."""
    names = {name for spec in provisioned.functions.values() for name in spec.environment}

    def use(logical_id: str) -> None:
        for name in names:
            monkeypatch.delenv(name, raising=False)
        for name, value in provisioned.functions[logical_id].environment.items():
            monkeypatch.setenv(name, value)
        reset_crm_caches()

    return use
