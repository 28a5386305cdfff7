"""The local runtime's provisioner creates the table in either capacity mode in moto, and with
TableCapacity=provisioned registers the auto scaling targets and policies as CloudFormation would."""

from __future__ import annotations

import uuid

import boto3
import pytest
from crm_local.provision import provision
from crm_local.template import Stack

from tests.aws import REGION

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", ["on-demand", "provisioned"])
def test_the_table_is_created_in_either_mode(aws: None, stack: Stack, mode: str) -> None:
    provisioned = provision(stack, stack_name=f"c{uuid.uuid4().hex[:8]}", region=REGION,
                            parameters={"TableCapacity": mode, "TableMinReadCapacity": "6",
                                        "TableMinWriteCapacity": "4"})
    name = provisioned.physical["Table"].ref
    table = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=name)["Table"]
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    targets = scaling.describe_scalable_targets(ServiceNamespace="dynamodb")["ScalableTargets"]
    policies = scaling.describe_scaling_policies(ServiceNamespace="dynamodb")["ScalingPolicies"]
    [index] = table["GlobalSecondaryIndexes"]
    if mode == "on-demand":
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert (targets, policies) == ([], [])
        return
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    for throughput in (table["ProvisionedThroughput"], index["ProvisionedThroughput"]):
        assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (6, 4)
    assert {(t["ResourceId"], t["ScalableDimension"], t["MinCapacity"]) for t in targets} == {
        (f"table/{name}", "dynamodb:table:ReadCapacityUnits", 6),
        (f"table/{name}", "dynamodb:table:WriteCapacityUnits", 4),
        (f"table/{name}/index/{index['IndexName']}", "dynamodb:index:ReadCapacityUnits", 6),
        (f"table/{name}/index/{index['IndexName']}", "dynamodb:index:WriteCapacityUnits", 4)}
    assert sorted((p["ScalableDimension"], p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"])
                  for p in policies) == sorted((t["ScalableDimension"], 70.0) for t in targets)


def test_the_local_runtime_stays_on_demand_unless_asked(aws: None, stack: Stack) -> None:
    """The template defaults to provisioned, but moto never throttles: locally the daily run would only wait."""
    assert stack.parameters["TableCapacity"]["Default"] == "provisioned"
    provisioned = provision(stack, stack_name=f"c{uuid.uuid4().hex[:8]}", region=REGION)
    table = boto3.client("dynamodb", region_name=REGION).describe_table(
        TableName=provisioned.physical["Table"].ref)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert provisioned.functions["SegmentTasksFunction"].environment["DYNAMODB_UNITS_PER_SECOND"] == "0"
    assert provisioned.functions["PredictionsFunction"].environment["DYNAMODB_UNITS_PER_SECOND"] == "0"
    assert provisioned.functions["SegmentRunsFunction"].environment["DAILY_SEGMENT_RUN_PACED"] == "false"
