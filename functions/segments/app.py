"""Keeps segments current: the schedule starts runs, workers carry out their shares, the stream refreshes
profiles that changed. Three handlers of one code folder (template.yaml names each)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from crm import reporting, wiring
from crm.adapters.streams import images
from crm.clock import utc_now
from crm.config import settings
from crm.models.currency import CurrencyTask, JobStatus
from crm.models.segment_runs import HourlyTask, RunTask
from crm.segments import runs
from crm.segments.feed import read_feed
from pydantic import TypeAdapter

logger = Logger(service="segments")
processor = BatchProcessor(event_type=EventType.SQS)
rules_cache = runs.RulesCache()  # lives as long as the Lambda container
# The queue carries the segment runs' tasks, the hourly runs' and the currency re-derivation's
# (crm.reporting): each forbids fields it does not know, so a body is exactly one of them.
_TASKS: TypeAdapter[RunTask | HourlyTask | CurrencyTask] = TypeAdapter(RunTask | HourlyTask | CurrencyTask)


@logger.inject_lambda_context
def on_schedule(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Start a run of every workspace (one already under way is left to finish) at the daily hour, or when
    invoked by hand; at every other hour of the schedule, queue each workspace's hourly run instead."""
    scheduled = event.get("time")
    if isinstance(scheduled, str) and not runs.is_daily(datetime.fromisoformat(scheduled)):
        hourly = runs.start_hourly(wiring.segment_tasks(), wiring.store_directory().workspaces(), utc_now(),
                                   chained=settings().daily_segment_run_paced)
        logger.info("hourly segment runs queued", extra={"workspaces": len(hourly)})
        return {"hourly": len(hourly)}
    started = runs.start_runs(wiring.segment_runs(), wiring.segment_tasks(), wiring.store_directory().workspaces(),
                              utc_now(), settings().segment_items_per_share, runs.SCHEDULE,
                              paced=settings().daily_segment_run_paced)
    ids = {workspace_id: run.run_id for workspace_id, run in started.items()}
    logger.info("segment runs started", extra={"runs": ids})
    return {"runs": ids}


def _carry_out(record: SQSRecord) -> None:
    task = _TASKS.validate_json(record.body)
    if isinstance(task, CurrencyTask):
        _rederive(task)
        return
    if isinstance(task, HourlyTask):
        applied = runs.run_hour(task, wiring.segment_store(), wiring.segment_runs(), utc_now, wiring.segment_tasks())
        logger.info("hourly segment run done", extra={"workspace_id": task.workspace_id, "profiles": applied.profiles,
                                                      "entered": applied.entered, "exited": applied.exited})
        return
    runs.carry_out(task, wiring.segment_store(), wiring.segment_runs(), wiring.segment_tasks(), utc_now,
                   wiring.segment_task_pause(), wiring.segment_hop_spent())
    logger.info("segment task done", extra={"task": task.model_dump(mode="json")})


def _rederive(task: CurrencyTask) -> None:
    job = reporting.carry_out(task, wiring.profile_repository(), wiring.currency_store(), utc_now())
    if job is not None and job.status is JobStatus.DONE:
        # Totals moved: VIP thresholds and RFM quintiles are settled again by a run over the new figures.
        runs.start_run(wiring.segment_runs(), wiring.segment_tasks(), task.workspace_id, utc_now(), task.shares,
                       f"currency {task.job_id}")
    logger.info("currency task done", extra={"task": task.model_dump(mode="json")})


@logger.inject_lambda_context
def on_task(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=_carry_out, processor=processor, context=context)


@logger.inject_lambda_context
def on_profile_change(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Any failure fails the batch: Lambda retries it (bisecting), and re-deciding is idempotent."""
    feed = read_feed(images(event.get("Records", [])))
    now = utc_now()
    applied = runs.refresh(wiring.segment_store(), wiring.segment_runs(), feed.changed, now, rules_cache)
    for erased in feed.erased:  # its set went with its partition: its member items and sizes follow
        wiring.segment_store().forget_profile(erased.workspace_id, erased.profile_id, erased.segment_ids, now)
    logger.info("memberships refreshed", extra={"profiles": applied.profiles, "entered": applied.entered,
                                                "exited": applied.exited, "erased": len(feed.erased)})
    return {}
