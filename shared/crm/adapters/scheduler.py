"""Durable waits: EventBridge Scheduler one-time schedules that put a WakeUp on the flows queue.

A schedule is named by run and step (crm.models.flows.schedule_name), so an exit or an erasure deletes it by
name without having kept anything, and a retried wait finds its schedule made already.
"""

from __future__ import annotations

from datetime import UTC, timedelta

from botocore.exceptions import ClientError

from crm.adapters.clients import client
from crm.config import settings
from crm.models.flows import WakeUp, schedule_name

# Scheduler's at() takes the moment without a zone; ScheduleExpressionTimezone says which (UTC here).
_AT_FORMAT = "%Y-%m-%dT%H:%M:%S"


def at_expression(wake: WakeUp) -> str:
    """``at(yyyy-mm-ddThh:mm:ss)`` in UTC, rounded up to the second so a wake-up is never early."""
    due = wake.due_at.astimezone(UTC)
    if due.microsecond:
        due = due.replace(microsecond=0) + timedelta(seconds=1)
    return f"at({due.strftime(_AT_FORMAT)})"


class EventBridgeWaitScheduler:
    def __init__(self, group: str | None = None, queue_arn: str | None = None, role_arn: str | None = None) -> None:
        self._group = group
        self._queue_arn = queue_arn
        self._role_arn = role_arn

    @property
    def group(self) -> str:
        return self._group or settings().require("schedule_group")

    def schedule(self, wake: WakeUp) -> None:
        target = {"Arn": self._queue_arn or settings().require("flows_queue_arn"),
                  "RoleArn": self._role_arn or settings().require("scheduler_role_arn"),
                  "Input": wake.model_dump_json(),
                  # A wake-up that cannot be delivered is retried for a day; a late one is still acted on
                  # (the run checks it is at that step), an early one never happens.
                  "RetryPolicy": {"MaximumEventAgeInSeconds": 86_400, "MaximumRetryAttempts": 185}}
        try:
            client("scheduler").create_schedule(
                Name=schedule_name(wake.run_id, wake.step_id), GroupName=self.group,
                ScheduleExpression=at_expression(wake), ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"}, ActionAfterCompletion="DELETE", State="ENABLED",
                Target=target)
        except ClientError as error:
            # The same run and step scheduled before: a retried delivery of the step that made it.
            if error.response["Error"]["Code"] != "ConflictException":
                raise

    def cancel(self, run_id: str, step_id: str) -> None:
        try:
            client("scheduler").delete_schedule(Name=schedule_name(run_id, step_id), GroupName=self.group)
        except ClientError as error:
            # Fired and deleted itself already, or never made: either way nothing will wake the run.
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
