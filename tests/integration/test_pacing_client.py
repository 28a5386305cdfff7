"""A DynamoDB client paced by crm.adapters.pacing asks every consuming call for its consumed capacity and waits
when the process is ahead of its rate; DYNAMODB_UNITS_PER_SECOND paces the process's shared client."""

from __future__ import annotations

import boto3
import pytest
from crm.adapters import clients, pacing

from tests.aws import REGION, reset_crm_caches

pytestmark = pytest.mark.integration


def _table() -> str:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(TableName="paced", BillingMode="PROVISIONED",
                          ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    return "paced"


def test_a_paced_client_waits_for_the_units_it_consumed(aws: None) -> None:
    table = _table()
    slept: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    pacing.install(dynamodb, pacing.Pacer(2.0, clock=lambda: now[0], sleep=sleep))
    answers = [dynamodb.put_item(TableName=table, Item={"pk": {"S": f"p{n}"}}) for n in range(6)]
    dynamodb.describe_table(TableName=table)  # not a consuming call: not asked for capacity, not paced
    consumed = sum(pacing.units_of(answer) for answer in answers)
    assert consumed == 6.0
    # The first second's allowance (2 units) is free; the last call's unit is owed by the next call.
    assert sum(slept) == pytest.approx((consumed - 2.0 - 1.0) / 2.0)


def test_the_setting_paces_the_shared_client_and_its_absence_does_not(aws: None,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAMODB_UNITS_PER_SECOND", "25")
    reset_crm_caches()
    paced = clients.client("dynamodb")
    table = _table()
    answer = paced.put_item(TableName=table, Item={"pk": {"S": "p"}})
    assert pacing.units_of(answer) == 1.0  # the pacer asked for it
    monkeypatch.delenv("DYNAMODB_UNITS_PER_SECOND")
    reset_crm_caches()
    assert "ConsumedCapacity" not in clients.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": "q"}})
