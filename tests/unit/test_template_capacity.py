"""template.yaml's TableCapacity: provisioned by default, the table and its index getting capacity that
Application Auto Scaling tracks at 70 % between the parameters' bounds; on demand, none. Both modes lint and
translate, and the local runtime resolves the table each way (docs/scale.md)."""

from __future__ import annotations

from typing import Any

import pytest
from cfnlint.api import lint
from crm.config import Settings
from crm_local.provision import Physical, Provisioner
from crm_local.template import Stack

from tests.builders import TEMPLATE

SCALING = {"TableReadScaling": ("dynamodb:table:ReadCapacityUnits", "DynamoDBReadCapacityUtilization"),
           "TableWriteScaling": ("dynamodb:table:WriteCapacityUnits", "DynamoDBWriteCapacityUtilization"),
           "IndexReadScaling": ("dynamodb:index:ReadCapacityUnits", "DynamoDBReadCapacityUtilization"),
           "IndexWriteScaling": ("dynamodb:index:WriteCapacityUnits", "DynamoDBWriteCapacityUtilization")}


def _defaulting_to(mode: str) -> str:
    text = TEMPLATE.read_text()
    default = "    Default: provisioned\n    AllowedValues: [on-demand, provisioned]\n"
    assert text.count(default) == 1
    return text.replace(default, f"    Default: {mode}\n    AllowedValues: [on-demand, provisioned]\n")


@pytest.mark.parametrize("mode", ["on-demand", "provisioned"])
def test_cfn_lint_passes_in_either_mode(mode: str) -> None:
    assert [str(m) for m in lint(_defaulting_to(mode), regions=["us-east-1"])] == []


def test_provisioned_is_the_default(stack: Stack) -> None:
    assert stack.parameters["TableCapacity"]["Default"] == "provisioned"
    assert set(stack.parameters["TableCapacity"]["AllowedValues"]) == {"on-demand", "provisioned"}


def _table(stack: Stack, parameters: dict[str, str]) -> tuple[dict[str, Any], Provisioner]:
    provisioner = Provisioner(stack, "capacity", "us-east-1", parameters)
    return provisioner.resolver.resolve(stack.resources["Table"]["Properties"]), provisioner


def test_on_demand_the_table_and_its_index_have_no_capacity_and_nothing_scales(stack: Stack) -> None:
    table, provisioner = _table(stack, {"TableCapacity": "on-demand"})
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in table
    assert all("ProvisionedThroughput" not in index for index in table["GlobalSecondaryIndexes"])
    for name in SCALING:
        for resource in (name, f"{name}Policy"):
            assert not provisioner.condition(stack.resources[resource].get("Condition"))


def test_provisioned_the_table_and_every_index_start_at_the_minimum_and_scale_at_70_percent(stack: Stack) -> None:
    bounds = {"TableMinReadCapacity": "7", "TableMaxReadCapacity": "300", "TableMinWriteCapacity": "3",
              "TableMaxWriteCapacity": "200"}
    table, provisioner = _table(stack, {"TableCapacity": "provisioned", **bounds})
    assert table["BillingMode"] == "PROVISIONED"
    minimum = {"ReadCapacityUnits": "7", "WriteCapacityUnits": "3"}
    assert table["ProvisionedThroughput"] == minimum
    assert [index["ProvisionedThroughput"] for index in table["GlobalSecondaryIndexes"]] == [minimum]
    # One target a dimension of the table and of each index, none forgotten.
    indexes = [index["IndexName"] for index in table["GlobalSecondaryIndexes"]]
    provisioner.physical["Table"] = Physical(table["TableName"])  # as if created
    targets = {name: provisioner.resolver.resolve(r["Properties"])
               for name, r in stack.of_type("AWS::ApplicationAutoScaling::ScalableTarget").items()}
    assert set(targets) == set(SCALING)
    expected_ids = {"capacity-table", *(f"capacity-table/index/{name}" for name in indexes)}
    assert {target["ResourceId"].removeprefix("table/") for target in targets.values()} == expected_ids
    for name, (dimension, metric) in SCALING.items():
        target = targets[name]
        kind = "Read" if "Read" in dimension else "Write"
        assert provisioner.condition(stack.resources[name]["Condition"])
        assert (target["ServiceNamespace"], target["ScalableDimension"]) == ("dynamodb", dimension)
        assert (target["MinCapacity"], target["MaxCapacity"]) == (bounds[f"TableMin{kind}Capacity"],
                                                                  bounds[f"TableMax{kind}Capacity"])
        policy = stack.resources[f"{name}Policy"]
        assert policy["Properties"]["ScalingTargetId"] == {"Ref": name}
        tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        assert tracking == {"TargetValue": 70, "PredefinedMetricSpecification": {"PredefinedMetricType": metric}}


def test_an_unknown_parameter_is_refused(stack: Stack) -> None:
    with pytest.raises(ValueError, match="TableCapacityy"):
        Provisioner(stack, "capacity", "us-east-1", {"TableCapacityy": "provisioned"})


@pytest.mark.parametrize("function", ["SegmentTasksFunction", "PredictionsFunction"])
def test_the_segment_runs_tasks_and_the_predictions_fit_are_paced_on_a_provisioned_table_only(
        stack: Stack, function: str) -> None:
    variables = stack.resources[function]["Properties"]["Environment"]["Variables"]
    paces = {mode: float(Provisioner(stack, "capacity", "us-east-1", {"TableCapacity": mode}).resolver.resolve(
        variables["DYNAMODB_UNITS_PER_SECOND"])) for mode in ("on-demand", "provisioned")}
    assert paces["on-demand"] == 0  # crm.config: 0 does not pace
    assert paces["provisioned"] > 0
    # No other function is paced: the webhooks' consumers keep what the table has.
    paced = [name for name, r in stack.of_type("AWS::Lambda::Function").items()
             if "DYNAMODB_UNITS_PER_SECOND" in r["Properties"].get("Environment", {}).get("Variables", {})]
    assert sorted(paced) == ["PredictionsFunction", "SegmentTasksFunction"]


def test_provisioned_by_default_the_daily_run_is_chained_at_a_pace_whose_hops_a_queue_can_hold_back(
        stack: Stack) -> None:
    """Each hop reads (or writes) one index bucket at once and asks the queue to hold the next back for its
    units at the pace; SQS holds a message at most 900 s, so a bucket at the reference size must fit in that."""
    def variable(function: str, name: str, parameters: dict[str, str]) -> Any:
        variables = stack.resources[function]["Properties"]["Environment"]["Variables"]
        return Provisioner(stack, "capacity", "us-east-1", parameters).resolver.resolve(variables[name])

    paced = {mode: variable("SegmentRunsFunction", "DAILY_SEGMENT_RUN_PACED", {"TableCapacity": mode})
             for mode in ("on-demand", "provisioned")}
    assert paced == {"on-demand": "false", "provisioned": "true"}
    assert Settings.model_validate({"TABLE_NAME": "t", "DAILY_SEGMENT_RUN_PACED": "true"}).daily_segment_run_paced
    pace = float(variable("SegmentTasksFunction", "DYNAMODB_UNITS_PER_SECOND", {}))
    # bench/segment_runs: a daily run reads ~1.02 RRU a profile (phase 1) at 100k profiles over 32 buckets.
    units_a_bucket = 100_000 / 32 * 1.02
    assert 0 < units_a_bucket / pace <= 900
