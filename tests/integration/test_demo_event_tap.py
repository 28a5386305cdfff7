"""The demo's count of what the outbox published (crm_local.demo.EventTap): every CRM event on the bus counted
once by its detail type, other sources ignored, the queue emptied as events arrive."""

from __future__ import annotations

import json

import boto3
import pytest
from crm_local.demo import EventTap

from tests.aws import REGION

pytestmark = pytest.mark.integration


def publish(bus: str, source: str, detail_type: str, count: int) -> None:
    events = boto3.client("events", region_name=REGION)
    for _ in range(count):
        events.put_events(Entries=[{"EventBusName": bus, "Source": source, "DetailType": detail_type,
                                    "Detail": json.dumps({"n": 1})}])


def test_the_tap_counts_every_crm_event_once_by_type(aws: None) -> None:
    boto3.client("events", region_name=REGION).create_event_bus(Name="crm-bus")
    tap = EventTap("crm-bus")
    publish("crm-bus", "crm", "OrderPlaced", 23)
    publish("crm-bus", "crm", "SegmentEntered", 4)
    publish("crm-bus", "someone.else", "OrderPlaced", 5)
    assert tap.drain() == {"OrderPlaced": 23, "SegmentEntered": 4}
    publish("crm-bus", "crm", "OrderPlaced", 2)
    assert tap.stop() == {"OrderPlaced": 25, "SegmentEntered": 4}
    depth = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=tap.url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert depth["ApproximateNumberOfMessages"] == "0"


def test_events_are_counted_once_whether_the_thread_or_the_report_drains_them(aws: None) -> None:
    boto3.client("events", region_name=REGION).create_event_bus(Name="crm-bus")
    tap = EventTap("crm-bus")
    tap.EVERY_SECONDS = 0.01
    tap.start()
    publish("crm-bus", "crm", "OrderPlaced", 12)
    assert tap.stop() == {"OrderPlaced": 12}
