"""The local runtime's EventBridge Scheduler against moto: schedules written through the Scheduler API reach the
book without any listing, fire onto their SQS queue with their Input as the body, and delete themselves."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from crm_local import scheduler
from crm_local.provision import ACCOUNT_ID
from crm_local.scheduler import ScheduleBook, ScheduleRunner, Targets
from moto.scheduler.models import scheduler_backends

from tests.aws import REGION

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def emulated(aws: None) -> Iterator[tuple[Clock, ScheduleRunner]]:
    scheduler.install()
    clock = Clock()
    book = ScheduleBook(clock)
    backend = scheduler_backends[ACCOUNT_ID][REGION]
    scheduler.listen(backend, book)
    try:
        yield clock, ScheduleRunner(book, Targets(REGION))
    finally:
        scheduler.unlisten(book)
        scheduler.uninstall()


def queue() -> tuple[str, str]:
    url = boto3.client("sqs").create_queue(QueueName="flows")["QueueUrl"]
    return url, f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:flows"


def create(client: Any, name: str, when: datetime, target_arn: str, group: str = "crm-flows",
           target: dict[str, Any] | None = None, **extra: Any) -> None:
    client.create_schedule(
        Name=name, GroupName=group, ScheduleExpression=f"at({when:%Y-%m-%dT%H:%M:%S})",
        ScheduleExpressionTimezone="UTC", FlexibleTimeWindow={"Mode": "OFF"}, ActionAfterCompletion="DELETE",
        Target={"Arn": target_arn, "RoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/scheduler",
                "Input": json.dumps({"kind": "wake", "name": name}), **(target or {})}, **extra)


def bodies(url: str) -> list[str]:
    messages = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [m["Body"] for m in messages]


def test_a_due_schedule_lands_on_its_queue_and_is_deleted(emulated: tuple[Clock, ScheduleRunner]) -> None:
    clock, runner = emulated
    url, arn = queue()
    client = boto3.client("scheduler")
    client.create_schedule_group(Name="crm-flows")
    create(client, "fr-run-1-reminder", NOW + timedelta(hours=4), arn)
    create(client, "fr-run-2-reminder", NOW + timedelta(hours=2), arn)
    create(client, "fr-run-3-reminder", NOW + timedelta(hours=3), arn, State="DISABLED")
    create(client, "fr-run-4-reminder", NOW + timedelta(hours=1), arn)
    client.delete_schedule(GroupName="crm-flows", Name="fr-run-4-reminder")  # an exit cancelled it

    clock.now = NOW + timedelta(hours=1, minutes=59)
    assert runner.fire_due() == [] and bodies(url) == []
    clock.now = NOW + timedelta(hours=5)
    assert [f.name for f in runner.fire_due()] == ["fr-run-2-reminder", "fr-run-1-reminder"]
    assert [json.loads(b)["name"] for b in bodies(url)] == ["fr-run-2-reminder", "fr-run-1-reminder"]
    left = client.list_schedules(GroupName="crm-flows")["Schedules"]
    assert [s["Name"] for s in left] == ["fr-run-3-reminder"]  # disabled: neither fired nor deleted


def test_a_clock_moved_by_fire_after_fires_its_due_schedules_there_whoever_else_checks(
        emulated: tuple[Clock, ScheduleRunner]) -> None:
    """`crm clock advance` reports what its move fired: the runner's own check, running the moment the clock
    moved, waits for the advance's delivery and finds nothing left."""
    clock, runner = emulated
    url, arn = queue()
    client = boto3.client("scheduler")
    client.create_schedule_group(Name="crm-flows")
    create(client, "fr-run-1-reminder", NOW + timedelta(hours=1), arn)
    checked: list[list[str]] = []
    check = threading.Thread(target=lambda: checked.append([f.name for f in runner.fire_due()]))

    def move() -> None:
        clock.now = NOW + timedelta(hours=2)
        check.start()
        check.join(timeout=0.2)  # it cannot take the schedule while the move's delivery holds the runner

    assert [f.name for f in runner.fire_after(move)] == ["fr-run-1-reminder"]
    check.join(timeout=10)
    assert checked == [[]] and len(bodies(url)) == 1


def test_schedules_written_before_the_book_listened_are_found_once(aws: None) -> None:
    scheduler.install()
    _, arn = queue()
    client = boto3.client("scheduler")
    create(client, "early", NOW, arn, group="default")
    book = ScheduleBook(Clock())
    scheduler.listen(scheduler_backends[ACCOUNT_ID][REGION], book)
    try:
        assert book.next_due() == NOW and len(book) == 1
    finally:
        scheduler.unlisten(book)
        scheduler.uninstall()


def test_an_updated_schedule_fires_at_its_new_time(emulated: tuple[Clock, ScheduleRunner]) -> None:
    clock, runner = emulated
    url, arn = queue()
    client = boto3.client("scheduler")
    client.create_schedule_group(Name="crm-flows")
    create(client, "moved", NOW + timedelta(hours=1), arn)
    client.update_schedule(Name="moved", GroupName="crm-flows", ScheduleExpression="at(2026-12-04T10:00:00)",
                           FlexibleTimeWindow={"Mode": "OFF"},
                           Target={"Arn": arn, "RoleArn": "arn:aws:iam::123456789012:role/s", "Input": "moved"})
    clock.now = NOW + timedelta(hours=2)
    assert runner.fire_due() == []
    clock.now = NOW + timedelta(days=1)
    assert [f.name for f in runner.fire_due()] == ["moved"] and bodies(url) == ["moved"]


def test_deleting_the_group_cancels_its_schedules(emulated: tuple[Clock, ScheduleRunner]) -> None:
    _, runner = emulated
    url, arn = queue()
    client = boto3.client("scheduler")
    client.create_schedule_group(Name="crm-flows")
    create(client, "gone", NOW, arn)
    client.delete_schedule_group(Name="crm-flows")
    assert runner.fire_due(NOW + timedelta(days=1)) == [] and bodies(url) == []


def test_a_missing_queue_dead_letters_the_input_with_the_error(emulated: tuple[Clock, ScheduleRunner]) -> None:
    _, runner = emulated
    dlq_url = boto3.client("sqs").create_queue(QueueName="scheduler-dlq")["QueueUrl"]
    create(boto3.client("scheduler"), "lost", NOW, f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:no-such-queue",
           group="default", target={"DeadLetterConfig": {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:scheduler-dlq"}})
    [fired] = runner.fire_due()
    assert not fired.delivered
    [message] = boto3.client("sqs").receive_message(QueueUrl=dlq_url, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(message["Body"])["name"] == "lost"
    assert "no-such-queue" in message["MessageAttributes"]["TARGET_ARN"]["StringValue"]
