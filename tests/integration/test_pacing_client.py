"""A DynamoDB client metered by crm.adapters.pacing asks every consuming call for its consumed capacity and counts
it, never waiting; DYNAMODB_UNITS_PER_SECOND meters the process's shared client."""

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


def test_a_metered_client_counts_the_units_it_consumed_and_waits_for_none(aws: None) -> None:
    table = _table()
    now = [0.0]
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    meter = pacing.Meter(10.0, clock=lambda: now[0])
    pacing.install(dynamodb, meter)
    start = meter.reading()
    answers = [dynamodb.put_item(TableName=table, Item={"pk": {"S": f"p{n}"}}) for n in range(6)]
    dynamodb.describe_table(TableName=table)  # not a consuming call: not asked for capacity
    assert sum(pacing.units_of(answer) for answer in answers) == 6.0
    # Six write units weigh thirty read units (provisioned capacity's prices): at 10 a second, 3 s.
    assert meter.units == 6.0 * pacing.WRITE_UNIT_WEIGHT == 30.0
    assert now[0] == 0.0 and meter.pause_since(start) == 3


def test_read_units_count_as_they_are(aws: None) -> None:
    table = _table()
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "p"}})
    meter = pacing.Meter(1.0, clock=lambda: 0.0)
    pacing.install(dynamodb, meter)
    answers = [dynamodb.get_item(TableName=table, Key={"pk": {"S": "p"}}) for _ in range(3)]
    assert meter.units == sum(pacing.units_of(answer) for answer in answers) > 0


def test_the_setting_paces_the_shared_client_and_its_absence_does_not(aws: None,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAMODB_UNITS_PER_SECOND", "25")
    reset_crm_caches()
    paced = clients.client("dynamodb")
    table = _table()
    answer = paced.put_item(TableName=table, Item={"pk": {"S": "p"}})
    assert pacing.units_of(answer) == 1.0  # the meter asked for it
    meter = clients.dynamodb_meter()
    assert meter is not None and meter.units == pacing.WRITE_UNIT_WEIGHT and meter.per_second == 25
    monkeypatch.delenv("DYNAMODB_UNITS_PER_SECOND")
    reset_crm_caches()
    assert "ConsumedCapacity" not in clients.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": "q"}})
    assert clients.dynamodb_meter() is None


def test_a_segment_task_asks_for_the_pause_its_own_units_take_at_the_pace(aws: None,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from crm import wiring

    monkeypatch.setenv("DYNAMODB_UNITS_PER_SECOND", "2.5")
    reset_crm_caches()
    table = _table()
    clients.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": "before"}})  # not the task's
    pause = wiring.segment_task_pause()
    for n in range(3):
        clients.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": f"p{n}"}})
    assert 4 <= pause() <= 6  # 3 write units (15 at their weight) at 2.5 a second, less the calls' moment
    monkeypatch.delenv("DYNAMODB_UNITS_PER_SECOND")
    reset_crm_caches()
    assert wiring.segment_task_pause()() == 0
