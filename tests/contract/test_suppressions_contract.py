"""One contract for the workspace suppression list: the in-memory fake and the DynamoDB adapter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from crm.adapters import keys
from crm.adapters.suppressions import DynamoSuppressions
from crm_local.provision import Provisioned

from tests.aws import client
from tests.builders import NOW
from tests.fakes import FakeSuppressions

WS = "ws_a"
Store = FakeSuppressions | DynamoSuppressions


@pytest.fixture(params=["fake", pytest.param("dynamodb", marks=pytest.mark.integration)])
def suppressions(request: pytest.FixtureRequest) -> Store:
    if request.param == "fake":
        return FakeSuppressions()
    provisioned: Provisioned = request.getfixturevalue("provisioned")
    return DynamoSuppressions(provisioned.outputs["TableName"])


def test_an_address_is_suppressed_in_its_workspace_only(suppressions: Store) -> None:
    assert not suppressions.is_suppressed(WS, "shopper@example.com")
    suppressions.suppress(WS, "shopper@example.com", "hard bounce (General, 5.1.1)", NOW)
    assert suppressions.is_suppressed(WS, "shopper@example.com")
    assert not suppressions.is_suppressed("ws_b", "shopper@example.com")
    assert not suppressions.is_suppressed(WS, "other@example.com")


def test_an_address_is_one_however_it_is_spelt(suppressions: Store) -> None:
    suppressions.suppress(WS, " Shopper@Example.COM", "complaint (abuse)", NOW)
    assert suppressions.is_suppressed(WS, "shopper@example.com")
    assert suppressions.is_suppressed(WS, "shop\u200bper@example.com")  # a zero-width space is invisible


def test_the_first_reason_and_time_are_kept(suppressions: Store) -> None:
    suppressions.suppress(WS, "shopper@example.com", "hard bounce (General, 5.1.1)", NOW)
    suppressions.suppress(WS, "shopper@example.com", "complaint (abuse)", NOW + timedelta(days=1))
    assert suppressions.suppression(WS, "shopper@example.com") == ("hard bounce (General, 5.1.1)", NOW)
    assert suppressions.suppression(WS, "other@example.com") is None


@pytest.mark.integration
def test_the_item_holds_no_address(provisioned: Provisioned) -> None:
    """The list outlives an erasure: its key is a hash and its item names no one."""
    DynamoSuppressions(provisioned.outputs["TableName"]).suppress(WS, "shopper@example.com", "complaint (abuse)", NOW)
    item = client("dynamodb").get_item(TableName=provisioned.outputs["TableName"],
                                       Key={k: {"S": v} for k, v in keys.suppression(WS, "shopper@example.com").items()}
                                       )["Item"]
    assert "shopper" not in str(item)
    assert {name: value["S"] for name, value in item.items() if name not in ("pk", "sk")} == {
        "entity": "suppression", "workspace_id": WS, "reason": "complaint (abuse)", "suppressed_at": NOW.isoformat()}
