"""template.yaml's messaging feedback wiring (docs/deliverability.md): SES events of the stack's configuration set
and inbound SMS reach the flows queue, and nothing else does."""

from __future__ import annotations

from typing import Any

from crm_local.template import Stack, read_sam

from tests.builders import TEMPLATE


def _resource(stack: Stack, name: str) -> dict[str, Any]:
    properties: dict[str, Any] = stack.resources[name]["Properties"]
    return properties


def test_the_configuration_set_uses_the_account_suppression_list_and_publishes_to_the_default_bus(
        stack: Stack) -> None:
    assert _resource(stack, "MessagesConfigurationSet")["SuppressionOptions"] == {
        "SuppressedReasons": ["BOUNCE", "COMPLAINT"]}
    destination = _resource(stack, "MessagesEventDestination")
    assert destination["ConfigurationSetName"] == {"Ref": "MessagesConfigurationSet"}
    assert {"bounce", "complaint"} <= set(destination["EventDestination"]["MatchingEventTypes"])
    assert destination["EventDestination"]["EventBridgeDestination"]["EventBusArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"}


def test_only_bounces_and_complaints_of_our_configuration_set_reach_the_flows_queue(stack: Stack) -> None:
    rule = _resource(stack, "SesFeedbackRule")
    assert rule["EventBusName"] == "default"
    assert rule["EventPattern"] == {
        "source": ["aws.ses"], "detail-type": ["Email Bounced", "Email Complaint Received"],
        "detail": {"mail": {"tags": {"ses:configuration-set": [{"Ref": "MessagesConfigurationSet"}]}}}}
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["FlowsQueue", "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["FlowsDeadLetterQueue", "Arn"]}}


def test_inbound_sms_arrive_encrypted_and_wrapped_on_the_flows_queue(stack: Stack) -> None:
    assert _resource(stack, "InboundSmsTopic")["KmsMasterKeyId"] == {"Ref": "InboundSmsKey"}
    key = _resource(stack, "InboundSmsKey")
    assert key["EnableKeyRotation"] is True
    assert {"sms-voice.amazonaws.com"} == {s["Principal"].get("Service") for s in key["KeyPolicy"]["Statement"]
                                            if "Service" in s["Principal"]}
    subscriptions = [r["Properties"] for r in stack.of_type("AWS::SNS::Subscription").values()
                     if r["Properties"]["TopicArn"] == {"Ref": "InboundSmsTopic"}]
    assert subscriptions == [{"TopicArn": {"Ref": "InboundSmsTopic"}, "Protocol": "sqs",
                              "Endpoint": {"Fn::GetAtt": ["FlowsQueue", "Arn"]}, "RawMessageDelivery": False}]


def test_the_flows_queue_admits_each_feedback_sender_by_its_own_arn() -> None:
    resources = read_sam(TEMPLATE)["Resources"]
    statements = {s["Sid"]: s for s in resources["FlowsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]}
    assert statements["SesFeedbackRule"]["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["SesFeedbackRule", "Arn"]}}}
    assert statements["InboundSmsTopic"]["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "InboundSmsTopic"}}}
    assert {s["Principal"]["Service"] for s in statements.values()} >= {"events.amazonaws.com", "sns.amazonaws.com"}


def test_the_flows_function_sends_in_the_configuration_set_and_may_queue_statements(stack: Stack) -> None:
    function = _resource(stack, "FlowsFunction")
    assert function["Environment"]["Variables"]["SES_CONFIGURATION_SET"] == {"Ref": "MessagesConfigurationSet"}
    role = stack.resources[function["Role"]["Fn::GetAtt"][0]]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    granted = {(a, str(s["Resource"])) for s in statements if s["Effect"] == "Allow"
               for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert ("firehose:PutRecord", str({"Fn::GetAtt": ["ArchiveStream", "Arn"]})) in granted
    assert ("sqs:SendMessage", str({"Fn::GetAtt": ["IngestQueue", "Arn"]})) in granted
    assert [s["Resource"] for s in statements if s["Effect"] == "Deny"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:sns:*:*:*"}]
