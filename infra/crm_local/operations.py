"""Operator commands against a deployed stack (local or AWS): stores, the ingest DLQ, replay of the archive."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from crm.adapters.currency import DynamoCurrencyStore
from crm.adapters.messaging import FirehoseS3Archive, dead_letter_reason
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.archive import FIREHOSE_PREFIX, OBJECT_PREFIX, ArchivedDelivery, header_from_metadata, unframe
from crm.clock import utc_now
from crm.imports.service import ExportKind, ImportResult, import_export
from crm.models.currency import ISO_4217
from crm.models.stores import Platform, StoreRegistration
from crm.reporting import initial_settings
from crm.stores import api_token_for, normalise_domain, normalise_origin, register_store


def stack_outputs(stack_name: str) -> dict[str, str]:
    """The Outputs of the stack, as `sam deploy` (or `crm local`) recorded them in CloudFormation."""
    stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def add_store(stack_name: str, platform: str, domain: str, webhook_secret: str,
              api_token: str | None = None, *, workspace_id: str | None = None,
              origins: Sequence[str] = (), currency: str | None = None) -> StoreRegistration:
    """Register a store in a new workspace, or in ``workspace_id`` (crm.ports.UnknownWorkspace if none).

    ``currency`` is the store's: the first store of a workspace that names one sets the workspace's
    reporting currency (crm.reporting.initial_settings)."""
    api_token_for(Platform(platform), api_token)  # refuse a missing token before touching the stack
    for origin in origins:
        normalise_origin(origin)  # and a malformed origin
    if currency is not None and currency not in ISO_4217:
        raise ValueError(f"--currency: {currency!r} is not an ISO 4217 currency code")
    table = stack_outputs(stack_name)["TableName"]
    registration = register_store(DynamoStoreDirectory(table), Platform(platform), domain, webhook_secret,
                                  utc_now(), api_token, workspace_id=workspace_id, origins=origins)
    if currency is not None:
        initial_settings(DynamoCurrencyStore(table), registration.workspace_id, currency, utc_now())
    return registration


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


@dataclass
class ReplayReport:
    deliveries: int = 0
    skipped: int = 0
    enqueued: int = 0
    unreadable_objects: list[str] = field(default_factory=list)


def archived_deliveries(bucket: str) -> Iterator[tuple[ArchivedDelivery, bytes, str | None] | str]:
    """Every archived delivery (header, body, stand-alone key or None); an unreadable object yields its key."""
    s3 = boto3.client("s3")
    for prefix in (FIREHOSE_PREFIX, OBJECT_PREFIX):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for listed in page.get("Contents", []):
                found = s3.get_object(Bucket=bucket, Key=listed["Key"])
                data = found["Body"].read()
                try:
                    if prefix == FIREHOSE_PREFIX:
                        for header, body in unframe(data):
                            yield header, body, None
                    else:
                        yield header_from_metadata(found.get("Metadata", {}), len(data)), data, listed["Key"]
                except (ValueError, KeyError):
                    yield str(listed["Key"])


def replay_archive(stack_name: str, store_id: str | None = None, since: datetime | None = None,
                   until: datetime | None = None) -> ReplayReport:
    """Send archived deliveries (all, one store's, or a time range of received_at) through the ingest
    queue again. Applying a delivery twice changes nothing, so a replay rebuilds, never double-counts."""
    outputs = stack_outputs(stack_name)
    sqs, report = boto3.client("sqs"), ReplayReport()
    batch: list[str] = []

    def flush() -> None:
        if batch:
            sqs.send_message_batch(QueueUrl=outputs["IngestQueueUrl"], Entries=[
                {"Id": str(i), "MessageBody": body} for i, body in enumerate(batch)])
            report.enqueued += len(batch)
            batch.clear()

    chosen: list[tuple[datetime, str]] = []
    for found in archived_deliveries(outputs["ArchiveBucketName"]):
        if isinstance(found, str):
            report.unreadable_objects.append(found)
            continue
        header, body, key = found
        report.deliveries += 1
        if (store_id and header.store_id != store_id) or (since and header.received_at < since) or (
                until and header.received_at >= until):
            report.skipped += 1
            continue
        chosen.append((header.received_at, header.envelope(body, key).model_dump_json()))
    # In the order they first arrived (objects list by key, not by arrival), so a replay into an empty table
    # rebuilds the same profiles, ids included.
    for _, message in sorted(chosen, key=lambda pair: pair[0]):
        batch.append(message)
        if len(batch) == 10:  # SendMessageBatch takes at most 10 entries
            flush()
    flush()
    return report


class UnknownStore(ValueError):
    """No store of that platform and domain is registered in the stack."""


def import_file(stack_name: str, platform: str, domain: str, kind: ExportKind, path: Path,
                dry_run: bool = False, now: datetime | None = None) -> ImportResult:
    """Import a platform's own export (e.g. Shopify's orders or customers CSV) into the stack's CRM:
    the file is archived as-is under imports/, then its events go through crm.ingestion.apply_events."""
    data = path.read_bytes()
    outputs = stack_outputs(stack_name)
    store = DynamoStoreDirectory(outputs["TableName"]).store_by_domain(Platform(platform), normalise_domain(domain))
    if store is None:
        raise UnknownStore(f"no {platform} store {domain!r} is registered in stack {stack_name!r} "
                           "(crm store add registers one)")
    return import_export(kind, data, path.name, store, now or utc_now(), dry_run=dry_run,
                         repository=DynamoProfileRepository(outputs["TableName"]),
                         archive=FirehoseS3Archive(bucket=outputs["ArchiveBucketName"]))


def index_profiles(stack_name: str) -> int:
    """Give profiles written before the workspace index its attributes (docs/workspace-reads.md); how many."""
    from crm.adapters.workspace_index import backfill

    return backfill(stack_outputs(stack_name)["TableName"])


def start_segment_runs(stack_name: str, workspace_id: str | None = None) -> dict[str, str]:
    """Recompute segments now, as the daily schedule does: a run per workspace (or just ``workspace_id``),
    carried out by the stack's task workers. Workspace id -> run id (an active run is answered as it is)."""
    from crm.adapters.segment_runs import DynamoSegmentRuns, SqsTaskQueue
    from crm.config import Settings
    from crm.segments.runs import start_runs

    outputs = stack_outputs(stack_name)
    runs = DynamoSegmentRuns(outputs["TableName"], outputs["ArchiveBucketName"])
    tasks = SqsTaskQueue(outputs["SegmentTasksQueueUrl"])
    workspaces = [workspace_id] if workspace_id else list(DynamoStoreDirectory(outputs["TableName"]).workspaces())
    started = start_runs(runs, tasks, workspaces, utc_now(), Settings.model_fields["segment_items_per_share"].default,
                         "operator")
    return {ws: run.run_id for ws, run in started.items()}


def privacy_status(stack_name: str, workspace_id: str, request_id: str) -> dict[str, object] | None:
    """How far a privacy request has got (stage, runs, archive objects scanned and changed, profiles erased),
    without the shopper's personal data; None for a request the stack has not received."""
    from crm.adapters.privacy import DynamoPrivacyStore

    job = DynamoPrivacyStore(stack_outputs(stack_name)["TableName"]).job(workspace_id, request_id)
    return None if job is None else job.public()
