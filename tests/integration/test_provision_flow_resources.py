"""The resource types flows add to template.yaml, created by the local runtime's provisioner in moto from a small
template fragment: schedule group, SES configuration set and its EventBridge destination, an SNS topic feeding a
queue raw, a default-bus rule onto that queue, a queue policy, generated secrets; conditioned resources follow
their condition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from crm_local.provision import Provisioned, dynamic_references, provision
from crm_local.template import Stack

from tests.aws import REGION

pytestmark = pytest.mark.integration

QUEUE_ARN = {"Fn::GetAtt": ["FlowsQueue", "Arn"]}
FRAGMENT: dict[str, Any] = {
    "Parameters": {"AlertEmail": {"Type": "String", "Default": ""}},
    "Conditions": {"HasAlertEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlertEmail"}, ""]}]}},
    "Resources": {
        "FlowsQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-flows"}}},
        "FlowsQueuePolicy": {"Type": "AWS::SQS::QueuePolicy", "Properties": {
            "Queues": [{"Ref": "FlowsQueue"}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": ["events.amazonaws.com", "sns.amazonaws.com"]},
                "Action": "sqs:SendMessage", "Resource": QUEUE_ARN}]}}},
        "InboundSmsTopic": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "InboundSmsToFlows": {"Type": "AWS::SNS::Subscription", "Properties": {
            "TopicArn": {"Ref": "InboundSmsTopic"}, "Protocol": "sqs", "Endpoint": QUEUE_ARN,
            "RawMessageDelivery": True}},
        "InboundSmsTopicPolicy": {"Type": "AWS::SNS::TopicPolicy", "Properties": {
            "Topics": [{"Ref": "InboundSmsTopic"}],
            "PolicyDocument": {"Statement": [{"Effect": "Allow", "Principal": {"Service": "sms-voice.amazonaws.com"},
                                              "Action": "sns:Publish", "Resource": {"Ref": "InboundSmsTopic"}}]}}},
        "AlertsEmail": {"Type": "AWS::SNS::Subscription", "Condition": "HasAlertEmail", "Properties": {
            "TopicArn": {"Ref": "InboundSmsTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlertEmail"}}},
        "FlowWaits": {"Type": "AWS::Scheduler::ScheduleGroup",
                      "Properties": {"Name": {"Fn::Sub": "${AWS::StackName}-flow-waits"}}},
        "EmailEvents": {"Type": "AWS::SES::ConfigurationSet",
                        "Properties": {"Name": {"Fn::Sub": "${AWS::StackName}-email"}}},
        "EmailEventsToBus": {"Type": "AWS::SES::ConfigurationSetEventDestination", "Properties": {
            "ConfigurationSetName": {"Ref": "EmailEvents"},
            "EventDestination": {"Name": "to-default-bus", "Enabled": True,
                                 "MatchingEventTypes": ["BOUNCE", "COMPLAINT", "DELIVERY"],
                                 "EventBridgeDestination": {"EventBusArn": {"Fn::Sub": (
                                     "arn:aws:events:${AWS::Region}:${AWS::AccountId}:event-bus/default")}}}}},
        "EmailFeedbackRule": {"Type": "AWS::Events::Rule", "Properties": {
            "EventPattern": {"source": ["crm.test.ses"], "detail-type": ["Email Bounced"]},
            "Targets": [{"Id": "flows", "Arn": QUEUE_ARN}]}},
        "UnsubscribeTokenSecret": {"Type": "AWS::SecretsManager::Secret", "Properties": {
            "GenerateSecretString": {"PasswordLength": 48, "ExcludePunctuation": True}}},
        "ServiceAccount": {"Type": "AWS::SecretsManager::Secret", "Properties": {
            "Name": {"Fn::Sub": "${AWS::StackName}/service"},
            "GenerateSecretString": {"SecretStringTemplate": "{\"user\": \"crm\"}", "GenerateStringKey": "password",
                                     "PasswordLength": 20, "ExcludeCharacters": "\"@/\\"}}},
    },
}


@pytest.fixture
def fragment(aws: None) -> Provisioned:
    """Not named `provisioned`: the IAM check of the integration tests holds that one against template.yaml."""
    stack = Stack(root=Path("."), resources=FRAGMENT["Resources"], outputs={}, code_paths={},
                  parameters=FRAGMENT["Parameters"], conditions=FRAGMENT["Conditions"])
    return provision(stack, stack_name="frag", region=REGION)


def received(url: str) -> list[str]:
    messages = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [m["Body"] for m in messages]


def test_the_schedule_group_takes_schedules(fragment: Provisioned) -> None:
    group = fragment.physical["FlowWaits"]
    assert group.ref == "frag-flow-waits" and group.attributes["Arn"].endswith(":schedule-group/frag-flow-waits")
    scheduler = boto3.client("scheduler")
    scheduler.create_schedule(Name="fr-run-step", GroupName=group.ref, ScheduleExpression="at(2026-12-03T14:00:00)",
                              FlexibleTimeWindow={"Mode": "OFF"},
                              Target={"Arn": fragment.physical["FlowsQueue"].attributes["Arn"],
                                      "RoleArn": "arn:aws:iam::123456789012:role/r"})
    assert [s["Name"] for s in scheduler.list_schedules(GroupName=group.ref)["Schedules"]] == ["fr-run-step"]


def test_the_configuration_set_and_its_eventbridge_destination(fragment: Provisioned) -> None:
    assert boto3.client("sesv2").get_configuration_set(ConfigurationSetName="frag-email")["ConfigurationSetName"] \
        == "frag-email"
    [destination] = fragment.ses_event_destinations["frag-email"]
    assert destination["EventBridgeDestination"]["EventBusArn"] == \
        f"arn:aws:events:{REGION}:123456789012:event-bus/default"
    assert destination["MatchingEventTypes"] == ["BOUNCE", "COMPLAINT", "DELIVERY"]


def test_an_sns_topic_feeds_the_queue_raw(fragment: Provisioned) -> None:
    url = fragment.physical["FlowsQueue"].ref
    boto3.client("sns").publish(TopicArn=fragment.physical["InboundSmsTopic"].ref, Message='{"messageBody":"STOP"}')
    assert received(url) == ['{"messageBody":"STOP"}']  # raw: no SNS envelope around it


def test_a_default_bus_rule_delivers_to_the_queue(fragment: Provisioned) -> None:
    url = fragment.physical["FlowsQueue"].ref
    boto3.client("events").put_events(Entries=[{"Source": "crm.test.ses", "DetailType": "Email Bounced",
                                                "Detail": json.dumps({"bounce": "permanent"})}])
    [body] = received(url)
    assert json.loads(body)["detail"] == {"bounce": "permanent"}


def test_the_queue_and_topic_policies_are_set(fragment: Provisioned) -> None:
    url = fragment.physical["FlowsQueue"].ref
    policy = json.loads(boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
                        ["Attributes"]["Policy"])
    assert policy["Statement"][0]["Principal"]["Service"] == ["events.amazonaws.com", "sns.amazonaws.com"]
    topic = boto3.client("sns").get_topic_attributes(TopicArn=fragment.physical["InboundSmsTopic"].ref)
    assert "sms-voice.amazonaws.com" in topic["Attributes"]["Policy"]


def test_secrets_are_generated_as_asked_and_dynamic_references_resolve(fragment: Provisioned) -> None:
    secrets = boto3.client("secretsmanager")
    token = secrets.get_secret_value(SecretId=fragment.physical["UnsubscribeTokenSecret"].ref)["SecretString"]
    assert len(token) == 48 and token.isalnum()
    account = json.loads(secrets.get_secret_value(SecretId="frag/service")["SecretString"])
    assert account["user"] == "crm" and len(account["password"]) == 20
    assert not set(account["password"]) & set('"@/\\')
    arn = fragment.physical["UnsubscribeTokenSecret"].attributes["Id"]
    assert dynamic_references({"TOKEN": f"{{{{resolve:secretsmanager:{arn}:SecretString}}}}",
                               "USER": "u={{resolve:secretsmanager:frag/service:SecretString:user}}"}, secrets) == {
        "TOKEN": token, "USER": "u=crm"}


def test_a_resource_whose_condition_fails_is_not_created(fragment: Provisioned) -> None:
    assert "AlertsEmail" not in fragment.physical
    topic = fragment.physical["InboundSmsTopic"].ref
    subscriptions = boto3.client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [s["Protocol"] for s in subscriptions] == ["sqs"]
