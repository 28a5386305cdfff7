"""Alarms and logs: every function, queue and delivery path that can fail quietly has an alarm that reaches a
person (the AlertEmail subscription), and the API writes a JSON access log. Checked generically, so a new
function or queue without its alarms fails here."""

from __future__ import annotations

import json
from typing import Any

import pytest
from crm_local.template import Stack, read_sam

from tests.builders import TEMPLATE


def _alarms(stack: Stack) -> list[dict[str, Any]]:
    return [r["Properties"] for r in stack.of_type("AWS::CloudWatch::Alarm").values()]


def _watching(stack: Stack, namespace: str, metric: str, dimension: str, value: Any) -> list[dict[str, Any]]:
    return [a for a in _alarms(stack) if a["Namespace"] == namespace and a["MetricName"] == metric
            and {"Name": dimension, "Value": value} in a["Dimensions"]]


def _functions(stack: Stack) -> list[str]:
    return sorted(stack.of_type("AWS::Lambda::Function"))


def test_every_alarm_tells_the_alerts_topic(stack: Stack) -> None:
    alarms = _alarms(stack)
    assert alarms
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": "AlertsTopic"}], alarm["AlarmName"]
        assert alarm["TreatMissingData"] == "notBreaching"  # no traffic is not an incident


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_its_errors_and_throttles_alarmed(stack: Stack, metric: str) -> None:
    functions = _functions(stack)
    assert len(functions) >= 9
    for function in functions:
        [alarm] = _watching(stack, "AWS/Lambda", metric, "FunctionName", {"Ref": function})
        assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == \
            ("Sum", 0, "GreaterThanThreshold"), function


def _queue_of(arn: Any) -> str:
    return str(arn["Fn::GetAtt"][0])


def _consumed_queues(stack: Stack) -> set[str]:
    sources = [m["Properties"]["EventSourceArn"] for m in stack.of_type("AWS::Lambda::EventSourceMapping").values()]
    return {_queue_of(arn) for arn in sources
            if arn["Fn::GetAtt"][1] == "Arn" and stack.resources[_queue_of(arn)]["Type"] == "AWS::SQS::Queue"}


def _dead_letter_queues(stack: Stack) -> set[str]:
    found = set()
    for queue in stack.of_type("AWS::SQS::Queue").values():
        if "RedrivePolicy" in queue["Properties"]:
            found.add(_queue_of(queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]))
    for mapping in stack.of_type("AWS::Lambda::EventSourceMapping").values():
        failure = mapping["Properties"].get("DestinationConfig", {}).get("OnFailure")
        if failure:
            found.add(_queue_of(failure["Destination"]))
    for function in stack.of_type("AWS::Lambda::Function").values():
        if "DeadLetterConfig" in function["Properties"]:
            found.add(_queue_of(function["Properties"]["DeadLetterConfig"]["TargetArn"]))
    return found


def _fed_queues(stack: Stack) -> set[str]:
    """Queues a bus rule sends to: work waits in them like in a consumed queue."""
    return {_queue_of(target["Arn"]) for rule in stack.of_type("AWS::Events::Rule").values()
            for target in rule["Properties"].get("Targets", [])
            if isinstance(target["Arn"], dict) and "Fn::GetAtt" in target["Arn"]
            and stack.resources[_queue_of(target["Arn"])]["Type"] == "AWS::SQS::Queue"}


def test_every_queue_is_consumed_or_a_dead_letter_queue(stack: Stack) -> None:
    # A queue neither read by a function (or fed by a rule) nor catching failures would escape the two alarm
    # rules below.
    assert set(stack.of_type("AWS::SQS::Queue")) == \
        _consumed_queues(stack) | _fed_queues(stack) | _dead_letter_queues(stack)


def test_every_consumed_queue_has_its_oldest_message_age_alarmed(stack: Stack) -> None:
    consumed = _consumed_queues(stack) | _fed_queues(stack)
    assert "FlowsQueue" in consumed
    assert {"IngestQueue", "SegmentTasksQueue", "ExportQueue"} <= consumed
    for queue in consumed:
        [alarm] = _watching(stack, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName",
                            {"Fn::GetAtt": [queue, "QueueName"]})
        # Alarmed before messages expire unprocessed.
        retention = stack.resources[queue]["Properties"]["MessageRetentionPeriod"]
        assert 0 < alarm["Threshold"] < retention / 4, queue


def test_every_dead_letter_queue_alarms_on_its_first_message(stack: Stack) -> None:
    dead_letters = _dead_letter_queues(stack)
    assert "SegmentRunsDeadLetterQueue" in dead_letters
    for queue in dead_letters:
        [alarm] = _watching(stack, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName",
                            {"Fn::GetAtt": [queue, "QueueName"]})
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold"), queue


def test_every_scheduled_function_keeps_the_events_it_failed(stack: Stack) -> None:
    # A schedule invokes asynchronously: without a DLQ, Lambda drops the event after its retries, unseen.
    scheduled = {t["Arn"]["Fn::GetAtt"][0] for rule in stack.of_type("AWS::Events::Rule").values()
                 if "ScheduleExpression" in rule["Properties"] for t in rule["Properties"]["Targets"]}
    assert "SegmentRunsFunction" in scheduled
    for function in scheduled:
        target = stack.resources[function]["Properties"]["DeadLetterConfig"]["TargetArn"]
        assert stack.resources[_queue_of(target)]["Type"] == "AWS::SQS::Queue"


def test_archive_delivery_failures_are_alarmed(stack: Stack) -> None:
    for stream in stack.of_type("AWS::KinesisFirehose::DeliveryStream"):
        [alarm] = _watching(stack, "AWS/Firehose", "DeliveryToS3.Success", "DeliveryStreamName", {"Ref": stream})
        assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == \
            ("Minimum", 1, "LessThanThreshold")


def test_api_5xx_is_alarmed_on_the_deployed_stage(stack: Stack) -> None:
    [api] = stack.of_type("AWS::ApiGateway::RestApi").values()
    [stage] = stack.of_type("AWS::ApiGateway::Stage").values()
    [alarm] = _watching(stack, "AWS/ApiGateway", "5XXError", "ApiName", api["Properties"]["Name"])
    assert {"Name": "Stage", "Value": stage["Properties"]["StageName"]} in alarm["Dimensions"]


def test_ingest_api_5xx_is_alarmed_on_its_stage(stack: Stack) -> None:
    [api] = stack.of_type("AWS::ApiGatewayV2::Api")
    [stage] = stack.of_type("AWS::ApiGatewayV2::Stage").values()
    [alarm] = _watching(stack, "AWS/ApiGateway", "5xx", "ApiId", {"Ref": api})
    assert {"Name": "Stage", "Value": stage["Properties"]["StageName"]} in alarm["Dimensions"]


def test_alert_email_subscribes_to_the_topic_only_when_given() -> None:
    sam = read_sam(TEMPLATE)
    assert sam["Parameters"]["AlertEmail"] == {**sam["Parameters"]["AlertEmail"], "Type": "String", "Default": ""}
    condition = sam["Conditions"]["HasAlertEmail"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlertEmail"}, ""]}]}
    [subscription] = [r for r in sam["Resources"].values() if r["Type"] == "AWS::SNS::Subscription"
                      and r["Properties"]["TopicArn"] == {"Ref": "AlertsTopic"}]
    assert subscription["Condition"] == "HasAlertEmail"
    assert subscription["Properties"] == {"TopicArn": {"Ref": "AlertsTopic"}, "Protocol": "email",
                                          "Endpoint": {"Ref": "AlertEmail"}}


def test_api_access_log_is_one_json_object_per_request_without_secrets(stack: Stack) -> None:
    [stage] = stack.of_type("AWS::ApiGateway::Stage").values()
    [ingest_stage] = stack.of_type("AWS::ApiGatewayV2::Stage").values()
    for setting in (stage["Properties"]["AccessLogSetting"], ingest_stage["Properties"]["AccessLogSettings"]):
        group = setting["DestinationArn"]["Fn::GetAtt"][0]
        assert stack.resources[group]["Type"] == "AWS::Logs::LogGroup"
        assert stack.resources[group]["Properties"]["RetentionInDays"] > 0
        line = json.loads(setting["Format"])
        assert {"requestId", "status", "path", "method", "ip"} <= set(line)
        # A header or the API Gateway key would put a credential (a key, a webhook signature) in the log.
        assert not any("header" in v.lower() or "apikey" in v.lower() for v in line.values())
    # API Gateway needs the account's CloudWatch role to write it.
    [account] = stack.of_type("AWS::ApiGateway::Account").values()
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayLogsRole", "Arn"]}
