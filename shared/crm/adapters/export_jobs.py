"""Segment export jobs: their records and claims."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from crm.adapters import keys
from crm.adapters.clients import client
from crm.adapters.items import from_item, to_item, wire_key
from crm.config import settings
from crm.models.exports import ExportJob, ExportStatus
from crm.ports import (
    ConcurrentUpdate,
)


class DynamoExportJobStore:
    """Export jobs, one item each; every write is conditional, so two workers never both record an outcome."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def get(self, workspace_id: str, export_id: str) -> ExportJob | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.export_job(workspace_id,
                                                                                                export_id)),
                                            ConsistentRead=True)
        return ExportJob.model_validate(from_item(found["Item"])) if "Item" in found else None

    def save(self, job: ExportJob, expected_attempts: int | None) -> None:
        put: dict[str, Any] = {"TableName": self.table,
                               "Item": to_item(keys.export_job(job.workspace_id, job.export_id), "export_job", job)}
        if expected_attempts is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#attempts = :expected"
            put["ExpressionAttributeNames"] = {"#attempts": "attempts"}
            put["ExpressionAttributeValues"] = {":expected": {"N": str(expected_attempts)}}
        try:
            client("dynamodb").put_item(**put)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConcurrentUpdate(f"export {job.export_id} changed since it was read") from None
            raise

    def claim(self, workspace_id: str, export_id: str, now: datetime) -> ExportJob | None:
        try:
            answer = client("dynamodb").update_item(
                TableName=self.table, Key=wire_key(keys.export_job(workspace_id, export_id)),
                UpdateExpression="SET #status = :running, #attempts = #attempts + :one, #started = :now, "
                                 "#updated = :now",
                ConditionExpression="#status IN (:queued, :running)",
                ExpressionAttributeNames={"#status": "status", "#attempts": "attempts", "#started": "started_at",
                                          "#updated": "updated_at"},
                ExpressionAttributeValues={":running": {"S": ExportStatus.RUNNING.value},
                                           ":queued": {"S": ExportStatus.QUEUED.value}, ":one": {"N": "1"},
                                           ":now": {"S": now.isoformat()}},
                ReturnValues="ALL_NEW")
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None  # done, failed, or no such job
            raise
        return ExportJob.model_validate(from_item(answer["Attributes"]))
