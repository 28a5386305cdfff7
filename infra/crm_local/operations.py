"""Operator commands against a deployed stack (local or AWS): stores and the ingest dead-letter queue."""

from __future__ import annotations

import json
from typing import Any

import boto3
from crm.adapters.dynamodb import DynamoStoreDirectory
from crm.adapters.messaging import dead_letter_reason
from crm.clock import utc_now
from crm.models.stores import Platform, StoreRegistration
from crm.stores import register_store


def stack_outputs(stack_name: str) -> dict[str, str]:
    """The Outputs of the stack, as `sam deploy` (or `crm local`) recorded them in CloudFormation."""
    stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def add_store(stack_name: str, platform: str, domain: str, webhook_secret: str) -> StoreRegistration:
    table = stack_outputs(stack_name)["TableName"]
    return register_store(DynamoStoreDirectory(table), Platform(platform), domain, webhook_secret, utc_now())


def _dead_letters(url: str, limit: int) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    seen: list[Any] = []
    while len(seen) < limit:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30,
                                    MessageAttributeNames=["All"], AttributeNames=["All"]).get("Messages", [])
        if not batch:
            break
        seen += batch
    return seen[:limit]


def list_dead_letters(stack_name: str, limit: int = 100) -> list[dict[str, Any]]:
    """What is parked in the ingest DLQ, with why (messages stay; they reappear after 30 s)."""
    url = stack_outputs(stack_name)["IngestDeadLetterQueueUrl"]
    listed = []
    for message in _dead_letters(url, limit):
        try:
            envelope = json.loads(message["Body"])
        except json.JSONDecodeError:
            envelope = {}
        listed.append({
            "message_id": message["MessageId"],
            "reason": dead_letter_reason(message.get("MessageAttributes", {})),
            "topic": envelope.get("meta", {}).get("topic"),
            "delivery_id": envelope.get("meta", {}).get("delivery_id"),
            "archive_key": envelope.get("archive_key"),
        })
    return listed


def redrive_dead_letters(stack_name: str, limit: int = 10_000) -> int:
    """Move parked messages back to the ingest queue (after a fix); applying them again is idempotent."""
    outputs = stack_outputs(stack_name)
    sqs = boto3.client("sqs")
    moved = 0
    for message in _dead_letters(outputs["IngestDeadLetterQueueUrl"], limit):
        sqs.send_message(QueueUrl=outputs["IngestQueueUrl"], MessageBody=message["Body"])
        sqs.delete_message(QueueUrl=outputs["IngestDeadLetterQueueUrl"], ReceiptHandle=message["ReceiptHandle"])
        moved += 1
    return moved
