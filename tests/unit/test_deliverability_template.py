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
    assert destination["EventDestination"]["EventBridgeDestination"]["EventBusArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"}


def test_the_configuration_set_publishes_every_event_type_of_issue_11(stack: Stack) -> None:
    # The issue's DELIVERY, OPEN, CLICK, BOUNCE, COMPLAINT, DELIVERY_DELAY, REJECT, RENDERING_FAILURE, in the
    # spelling AWS::SES::ConfigurationSetEventDestination takes; open and click are what turn tracking on.
    destination = _resource(stack, "MessagesEventDestination")["EventDestination"]
    assert set(destination["MatchingEventTypes"]) == {"send", "delivery", "open", "click", "bounce", "complaint",
                                                      "deliveryDelay", "reject", "renderingFailure"}


def test_every_ses_event_of_our_configuration_set_but_send_and_delivery_reaches_the_flows_queue(stack: Stack) -> None:
    rule = _resource(stack, "SesFeedbackRule")
    assert rule["EventBusName"] == "default"
    assert rule["EventPattern"] == {
        "source": ["aws.ses"],
        # Not "Email Delivered": a send counts as delivered until its bounce or rejection (crm.flows.counting).
        "detail-type": ["Email Bounced", "Email Complaint Received", "Email Opened", "Email Clicked",
                        "Email Delivery Delayed", "Email Rejected", "Email Rendering Failed"],
        "detail": {"mail": {"tags": {"ses:configuration-set": [{"Ref": "MessagesConfigurationSet"}]}}}}
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["FlowsQueue", "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["FlowsDeadLetterQueue", "Arn"]}}


def test_sns_sms_delivery_status_logs_are_subscribed_by_the_flows_function(stack: Stack) -> None:
    groups = {name: _resource(stack, name)["LogGroupName"] for name in ("SmsDeliveryStatusLogs",
                                                                        "SmsDeliveryFailureLogs")}
    # SNS's own names for them: it writes there, whatever the stack is called.
    assert groups == {
        "SmsDeliveryStatusLogs": {"Fn::Sub": "sns/${AWS::Region}/${AWS::AccountId}/DirectPublishToPhoneNumber"},
        "SmsDeliveryFailureLogs": {
            "Fn::Sub": "sns/${AWS::Region}/${AWS::AccountId}/DirectPublishToPhoneNumber/Failure"}}
    filters = [r["Properties"] for r in stack.of_type("AWS::Logs::SubscriptionFilter").values()]
    assert sorted(str(f["LogGroupName"]) for f in filters) == sorted(
        str({"Ref": name}) for name in groups)
    assert {str(f["DestinationArn"]) for f in filters} == {str({"Fn::GetAtt": ["FlowsFunction", "Arn"]})}
    assert _resource(stack, "FlowsFunction")["DeadLetterConfig"] == {
        "TargetArn": {"Fn::GetAtt": ["FlowsDeadLetterQueue", "Arn"]}}
    role = _resource(stack, "SmsDeliveryStatusRole")
    assert [s["Principal"] for s in role["AssumeRolePolicyDocument"]["Statement"]] == [
        {"Service": "sns.amazonaws.com"}]


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
    # Its statements are archived by the profiles function, which applies them (crm.archive.archive_messages).
    assert not {action for action, _ in granted if action.startswith("firehose:")}
    assert ("sqs:SendMessage", str({"Fn::GetAtt": ["IngestQueue", "Arn"]})) in granted
    assert [s["Resource"] for s in statements if s["Effect"] == "Deny"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:sns:*:*:*"}]
