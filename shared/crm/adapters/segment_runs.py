"""Recomputation runs in the table, their population sketches in S3, and their tasks on SQS."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from crm.adapters import keys
from crm.adapters.clients import client, put_if_absent, query_items
from crm.adapters.export_files import S3ExportFiles
from crm.adapters.items import Item, from_item, plain_item, to_item, wire_key
from crm.adapters.throttling import transact_write
from crm.config import settings
from crm.models.profile import Profile
from crm.models.segment_runs import EvaluatedPart, HourlyTask, RunPart, RunPhase, RunTask, SegmentRun
from crm.models.segments import HeldSegments


def _cancelled(error: ClientError) -> bool:
    return error.response["Error"]["Code"] in ("TransactionCanceledException", "ConditionalCheckFailedException")


class DynamoSegmentRuns:
    def __init__(self, table_name: str | None = None, bucket: str | None = None) -> None:
        self.table = table_name or settings().table_name
        self._bucket = bucket

    @property
    def bucket(self) -> str:
        return self._bucket or settings().require("archive_bucket")

    def indexed_profiles(self) -> int:
        """DynamoDB's item count of the workspace index (refreshed about every six hours: a sizing hint)."""
        table = client("dynamodb").describe_table(TableName=self.table)["Table"]
        return sum(int(index.get("ItemCount", 0)) for index in table.get("GlobalSecondaryIndexes", [])
                   if index["IndexName"] == keys.WORKSPACE_INDEX)

    def start(self, run: SegmentRun, stale_before: datetime) -> SegmentRun:
        ws = run.workspace_id
        lock = {**keys.active_segment_run(ws), "entity": "segment_run_lock", "run_id": run.run_id,
                "started_at": run.started_at.isoformat()}
        try:
            transact_write([
                {"Put": {"TableName": self.table, "Item": plain_item(lock),
                         "ConditionExpression": "attribute_not_exists(pk) OR started_at < :stale",
                         "ExpressionAttributeValues": {":stale": {"S": stale_before.isoformat()}}}},
                {"Put": {"TableName": self.table, "Item": to_item(keys.segment_run(ws, run.run_id), "segment_run",
                                                                  run)}},
            ])
        except ClientError as error:
            if not _cancelled(error):
                raise
            held = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.active_segment_run(ws)),
                                               ConsistentRead=True).get("Item")
            active = self.get(ws, held["run_id"]["S"]) if held else None
            if active is None:  # finished between our attempt and this read: try once more
                return self.start(run, stale_before)
            return active
        return run

    def get(self, workspace_id: str, run_id: str) -> SegmentRun | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.segment_run(workspace_id, run_id)),
                                            ConsistentRead=True)
        return _run(from_item(found["Item"])) if "Item" in found else None

    def put_sketch(self, workspace_id: str, run_id: str, share: int, sketch: str, token: str | None = None) -> None:
        client("s3").put_object(Bucket=self.bucket,
                                Key=keys.segment_sketch_object(workspace_id, run_id, share, token),
                                Body=sketch.encode(), ContentType="application/json")

    def part_sketches(self, workspace_id: str, run_id: str, share: int, tokens: Sequence[str]) -> list[str]:
        return [client("s3").get_object(
            Bucket=self.bucket, Key=keys.segment_sketch_object(workspace_id, run_id, share, token))["Body"].read()
            .decode() for token in tokens]

    def record_part(self, workspace_id: str, run_id: str, part: RunPart) -> RunPart:
        key = keys.segment_run_part(workspace_id, run_id, part.share, part.part)
        found = self._already_written(key, "segment_run_part", part.model_dump())
        return part if found is None else _part(found)

    def parts(self, workspace_id: str, run_id: str, share: int) -> list[RunPart]:
        return [_part(item) for item in self._under(keys.segment_run_parts(workspace_id, run_id, share))]

    def record_evaluated_part(self, workspace_id: str, run_id: str, part: EvaluatedPart) -> EvaluatedPart:
        key = keys.segment_run_evaluated_part(workspace_id, run_id, part.share, part.part)
        found = self._already_written(key, "segment_run_evaluated_part", part.model_dump())
        return part if found is None else _evaluated_part(found)

    def evaluated_parts(self, workspace_id: str, run_id: str, share: int) -> list[EvaluatedPart]:
        return [_evaluated_part(item)
                for item in self._under(keys.segment_run_evaluated_parts(workspace_id, run_id, share))]

    def _already_written(self, key: dict[str, str], entity: str, fields: dict[str, Any]) -> Any:
        """None when these fields are the first written at ``key``; else what its first writer wrote."""
        if put_if_absent(self.table, plain_item({**key, "entity": entity, **fields})):
            return None
        return from_item(client("dynamodb").get_item(TableName=self.table, Key=wire_key(key),
                                                     ConsistentRead=True)["Item"])

    def _under(self, prefix: dict[str, str]) -> list[Any]:
        """The items of ``prefix["pk"]`` whose sort keys begin with ``prefix["sk"]``, read consistently."""
        return [from_item(item) for item in query_items({
            "TableName": self.table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :part)",
            "ExpressionAttributeValues": {":pk": {"S": prefix["pk"]}, ":part": {"S": prefix["sk"]}}})]

    def sketches(self, workspace_id: str, run_id: str, shares: int) -> list[str]:
        return [client("s3").get_object(
            Bucket=self.bucket, Key=keys.segment_sketch_object(workspace_id, run_id, share))["Body"].read().decode()
            for share in range(shares)]

    def keep_profiles(self, workspace_id: str, run_id: str, share: int,
                      profiles: Iterable[tuple[Profile, HeldSegments]], token: str | None = None) -> None:
        # Streamed a part at a time (a share of 25,000 profiles is some 40 MB): one object, visible whole
        # once complete, so a task delivered twice replaces it and a reader sees one delivery's or the other's.
        lines = (_Kept(profile=profile, held=held).model_dump_json().encode() + b"\n" for profile, held in profiles)
        key = keys.segment_profiles_object(workspace_id, run_id, share, token)
        S3ExportFiles(self.bucket).write(key, lines, "application/x-ndjson", key.rsplit("/", 1)[-1])

    def kept_profiles(self, workspace_id: str, run_id: str,
                      share: int) -> Iterator[tuple[Profile, HeldSegments]] | None:
        tokens: list[str | None] = [part.token for part in self.parts(workspace_id, run_id, share)]
        found = [self._kept_file(workspace_id, run_id, share, token) for token in tokens or [None]]
        files = [file for file in found if file is not None]
        if len(files) < len(found):
            return None
        return (pair for file in files for pair in file())

    def _kept_file(self, workspace_id: str, run_id: str, share: int,
                   token: str | None) -> Callable[[], Iterator[tuple[Profile, HeldSegments]]] | None:
        """A kept file's reader, None when it is not there. The file is opened when read: a body held open
        while the parts before it are parsed would time out."""
        key = keys.segment_profiles_object(workspace_id, run_id, share, token)
        try:
            client("s3").head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise
            return None

        def read() -> Iterator[tuple[Profile, HeldSegments]]:
            body = client("s3").get_object(Bucket=self.bucket, Key=key)["Body"]
            for kept in map(_Kept.model_validate_json, body.iter_lines(_READ_CHUNK)):
                yield kept.profile, kept.held

        return read

    def _count_share(self, workspace_id: str, run_id: str, done: str, share: int,
                     additions: Mapping[str, int]) -> SegmentRun:
        # The share joins a set of done shares, and its figures are added, only the first time: a task
        # delivered twice is counted once. Attributes are named by placeholders: a segment id is no name.
        names = {"#done": done, **{f"#a{i}": name for i, name in enumerate(additions)}}
        values: dict[str, Any] = {":share": {"SS": [str(share)]}, ":one": {"S": str(share)},
                                  **{f":a{i}": {"N": str(v)} for i, v in enumerate(additions.values())}}
        adds = ", ".join(["#done :share", *(f"#a{i} :a{i}" for i in range(len(additions)))])
        try:
            client("dynamodb").update_item(
                TableName=self.table, Key=wire_key(keys.segment_run(workspace_id, run_id)),
                UpdateExpression=f"ADD {adds}",
                ConditionExpression="attribute_exists(pk) AND NOT contains(#done, :one)",
                ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except ClientError as error:
            if not _cancelled(error):
                raise
        run = self.get(workspace_id, run_id)
        if run is None:
            raise LookupError(f"no run {run_id} in workspace {workspace_id}")
        return run

    def sketched(self, workspace_id: str, run_id: str, share: int) -> SegmentRun:
        return self._count_share(workspace_id, run_id, "sketched_shares", share, {})

    def evaluated(self, workspace_id: str, run_id: str, share: int, profiles: int, entered: int,
                  exited: int, sizes: Mapping[str, int]) -> SegmentRun:
        return self._count_share(workspace_id, run_id, "evaluated_shares", share,
                                 {"profiles": profiles, "entered": entered, "exited": exited,
                                  **{_SIZE_PREFIX + sid: n for sid, n in sizes.items()}})

    def hourly_done(self, workspace_id: str) -> datetime | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.segment_hourly(workspace_id)),
                                            ConsistentRead=True)
        return datetime.fromisoformat(found["Item"]["hour"]["S"]) if "Item" in found else None

    def hourly_finished(self, workspace_id: str, hour: datetime) -> None:
        try:
            client("dynamodb").put_item(
                TableName=self.table, Item=plain_item({**keys.segment_hourly(workspace_id),
                                                       "entity": "segment_hourly", "hour": hour.isoformat()}),
                ConditionExpression="attribute_not_exists(pk) OR #hour < :hour",
                ExpressionAttributeNames={"#hour": "hour"},
                ExpressionAttributeValues={":hour": {"S": hour.isoformat()}})
        except ClientError as error:
            if not _cancelled(error):
                raise

    def advance(self, workspace_id: str, run_id: str, population: str) -> bool:
        stats = population
        try:
            transact_write([
                {"Update": {"TableName": self.table, "Key": wire_key(keys.segment_run(workspace_id, run_id)),
                            "UpdateExpression": "SET #phase = :next, #population = :stats",
                            "ConditionExpression": "#phase = :sketch",
                            "ExpressionAttributeNames": {"#phase": "phase", "#population": "population"},
                            "ExpressionAttributeValues": {":next": {"S": RunPhase.EVALUATE.value},
                                                          ":sketch": {"S": RunPhase.SKETCH.value},
                                                          ":stats": {"S": stats}}}},
                {"Put": {"TableName": self.table, "Item": {
                    **wire_key(keys.segment_population(workspace_id)), "entity": {"S": "segment_population"},
                    "run_id": {"S": run_id}, "population": {"S": stats}}}},
            ])
        except ClientError as error:
            if _cancelled(error):
                return False
            raise
        return True

    def finish(self, workspace_id: str, run_id: str, at: datetime) -> bool:
        try:
            client("dynamodb").update_item(
                TableName=self.table, Key=wire_key(keys.segment_run(workspace_id, run_id)),
                UpdateExpression="SET #phase = :done, finished_at = :at", ConditionExpression="#phase = :evaluate",
                ExpressionAttributeNames={"#phase": "phase"},
                ExpressionAttributeValues={":done": {"S": RunPhase.DONE.value}, ":at": {"S": at.isoformat()},
                                           ":evaluate": {"S": RunPhase.EVALUATE.value}})
        except ClientError as error:
            if _cancelled(error):
                return False
            raise
        try:
            client("dynamodb").delete_item(TableName=self.table, Key=wire_key(keys.active_segment_run(workspace_id)),
                                           ConditionExpression="run_id = :run",
                                           ExpressionAttributeValues={":run": {"S": run_id}})
        except ClientError as error:
            if not _cancelled(error):
                raise
        return True

    def request_rerun(self, workspace_id: str, run_id: str) -> None:
        try:
            client("dynamodb").update_item(
                TableName=self.table, Key=wire_key(keys.segment_run(workspace_id, run_id)),
                UpdateExpression="SET rerun = :yes", ConditionExpression="#phase <> :done",
                ExpressionAttributeNames={"#phase": "phase"},
                ExpressionAttributeValues={":yes": {"BOOL": True}, ":done": {"S": RunPhase.DONE.value}})
        except ClientError as error:
            if not _cancelled(error):
                raise

    def link_next(self, workspace_id: str, run_id: str, next_run_id: str) -> None:
        client("dynamodb").update_item(
            TableName=self.table, Key=wire_key(keys.segment_run(workspace_id, run_id)),
            UpdateExpression="SET next_run_id = :next", ExpressionAttributeValues={":next": {"S": next_run_id}})

    def population(self, workspace_id: str) -> str | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.segment_population(workspace_id)))
        if "Item" not in found:
            return None
        return str(found["Item"]["population"]["S"])

    def population_run_id(self, workspace_id: str) -> str | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.segment_population(workspace_id)),
                                            ProjectionExpression="run_id")
        return str(found["Item"]["run_id"]["S"]) if "Item" in found else None


class _Kept(BaseModel):
    """One line of a share's kept profiles."""

    profile: Profile
    held: HeldSegments


_READ_CHUNK = 1024 * 1024  # bytes of a kept file read at a time (botocore's default is 1 KB)
_SIZE_PREFIX = "size:"  # a segment's members counted by the evaluating shares: one attribute each


def _part(item: Item) -> RunPart:
    return RunPart.model_validate({k: v for k, v in item.items() if k in RunPart.model_fields})


def _evaluated_part(item: Item) -> EvaluatedPart:
    return EvaluatedPart.model_validate({k: v for k, v in item.items() if k in EvaluatedPart.model_fields})


def _run(item: Item) -> SegmentRun:
    fields = {k: v for k, v in item.items() if k in SegmentRun.model_fields}
    fields["sizes"] = {k.removeprefix(_SIZE_PREFIX): int(v) for k, v in item.items() if k.startswith(_SIZE_PREFIX)}
    fields["sketched"] = len(item.get("sketched_shares", ()))
    fields["evaluated"] = len(item.get("evaluated_shares", ()))
    phase_done = {RunPhase.SKETCH: "sketched_shares", RunPhase.EVALUATE: "evaluated_shares"}.get(
        RunPhase(item.get("phase", RunPhase.SKETCH)))
    fields["counted"] = frozenset(int(share) for share in item.get(phase_done, ())) if phase_done else frozenset()
    if "population" in item:
        fields["population"] = str(item["population"])
    return SegmentRun.model_validate(fields)


def send_tasks(queue_url: str | None, tasks: Sequence[BaseModel], kind: str, delay_seconds: int = 0) -> None:
    """Tasks onto the segment task queue (its URL from settings unless given), ten to a request, each delivered
    no sooner than ``delay_seconds`` from now (SQS's DelaySeconds: 0 to 900)."""
    url = queue_url or settings().require("segment_tasks_url")
    delay = {"DelaySeconds": delay_seconds} if delay_seconds else {}
    for start in range(0, len(tasks), 10):
        batch = [{"Id": str(i), "MessageBody": json.dumps(t.model_dump(mode="json")), **delay}
                 for i, t in enumerate(tasks[start:start + 10])]
        answer = client("sqs").send_message_batch(QueueUrl=url, Entries=batch)
        if answer.get("Failed"):
            raise RuntimeError(f"SQS refused {len(answer['Failed'])} {kind} tasks: {answer['Failed'][0]}")


class SqsTaskQueue:
    def __init__(self, queue_url: str | None = None) -> None:
        self._url = queue_url

    def send(self, tasks: Sequence[RunTask | HourlyTask], delay_seconds: int = 0) -> None:
        send_tasks(self._url, tasks, "segment", delay_seconds)
