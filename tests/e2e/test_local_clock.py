"""`crm clock advance` on a running `crm local`: a one-time Scheduler schedule written through the local AWS
endpoint fires onto its queue once the clock passes its time, and deletes itself; nothing fires before. And the
local SES: its default sender verified, its sends read back with the runtime's time of sending."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from crm_local.outbound import Outbox
from crm_local.runtime import DEFAULT_SENDER

from tests.builders import ROOT
from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

GROUP = "e2e-waits"


def clock(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crm_local.cli", "clock", *args, "--api", stack.api_url],
                          env=stack.env(), cwd=ROOT, capture_output=True, text=True, timeout=180)


def now(stack: LocalStack) -> datetime:
    done = clock(stack, "now")
    assert done.returncode == 0, done.stderr
    return datetime.fromisoformat(json.loads(done.stdout)["now"])


def test_advance_fires_a_due_schedule_onto_its_queue_and_deletes_it(local_stack: LocalStack) -> None:
    sqs, scheduler = local_stack.client("sqs"), local_stack.client("scheduler")
    url = sqs.create_queue(QueueName="e2e-wakes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    scheduler.create_schedule_group(Name=GROUP)
    started = now(local_stack)
    for name, hours in (("fr-run-a-first", 1.5), ("fr-run-a-second", 3)):
        due = (started + timedelta(hours=hours)).replace(tzinfo=None)
        scheduler.create_schedule(
            Name=name, GroupName=GROUP, ScheduleExpression=f"at({due:%Y-%m-%dT%H:%M:%S})",
            ScheduleExpressionTimezone="UTC", FlexibleTimeWindow={"Mode": "OFF"}, ActionAfterCompletion="DELETE",
            Target={"Arn": arn, "RoleArn": "arn:aws:iam::123456789012:role/e2e", "Input": json.dumps({"wake": name})})

    done = clock(local_stack, "advance", "1h")
    assert done.returncode == 0, done.stderr
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []

    done = clock(local_stack, "advance", "PT1H")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["advanced_by"], answer["schedules_fired"], answer["idle"]) == ("PT1H", 1, True)
    assert datetime.fromisoformat(answer["now"]) - started >= timedelta(hours=2)
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(message["Body"]) == {"wake": "fr-run-a-first"}
    left = scheduler.list_schedules(GroupName=GROUP)["Schedules"]
    assert [s["Name"] for s in left] == ["fr-run-a-second"]


def test_the_cli_names_a_bad_duration_and_a_missing_runtime(local_stack: LocalStack) -> None:
    done = clock(local_stack, "advance", "soon")
    assert done.returncode == 2 and "not a duration" in done.stderr
    done = subprocess.run([sys.executable, "-m", "crm_local.cli", "clock", "now", "--api", local_stack.aws_endpoint],
                          env=local_stack.env(), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not a local runtime" in done.stderr  # moto's server: no clock


def test_the_default_sender_is_verified_and_its_sends_are_read_back(local_stack: LocalStack) -> None:
    ses = local_stack.client("sesv2")
    assert ses.get_email_identity(EmailIdentity=DEFAULT_SENDER)["VerifiedForSendingStatus"] is True
    outbox = Outbox(local_stack.aws_endpoint)
    mark = outbox.mark()
    ses.send_email(FromEmailAddress=DEFAULT_SENDER, Destination={"ToAddresses": ["e2e@example.com"]},
                   Content={"Simple": {"Subject": {"Data": "Hello"}, "Body": {"Text": {"Data": "Hi"}}}},
                   EmailTags=[{"Name": "flow", "Value": "e2e"}])
    [sent] = outbox.since(mark).emails
    assert (sent.to, sent.subject, sent.source) == (["e2e@example.com"], "Hello", DEFAULT_SENDER)
    assert sent.sent_at is not None and sent.sent_at >= now(local_stack) - timedelta(minutes=1)
