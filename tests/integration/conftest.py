from __future__ import annotations

from collections.abc import Iterator

import botocore.client
import pytest
from crm_local.template import Stack

from tests.iam import Recorder, Roles


@pytest.fixture(autouse=True)
def calls_within_each_functions_role(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                                     stack: Stack) -> Iterator[None]:
    """Every integration test on the provisioned stack also checks that each AWS call a function's code made
    is one its role in template.yaml allows (moto allows everything): a missing grant or a key outside its
    LeadingKeys fails the test that made the call."""
    if "provisioned" not in request.fixturenames:
        yield
        return
    provisioned = request.getfixturevalue("provisioned")
    recorder = Recorder(provisioned.region)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call",
                        recorder(botocore.client.BaseClient._make_api_call))
    yield
    denied = Roles(stack, provisioned).denied(recorder.calls)
    assert denied == [], "calls template.yaml does not allow:\n" + "\n".join(map(str, denied))
