"""A workspace's currency settings and re-derivation jobs in the table, and the jobs' tasks on SQS."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from crm.adapters import keys
from crm.adapters.clients import client
from crm.adapters.items import Item, from_item, to_item, wire_key
from crm.adapters.segment_runs import send_tasks
from crm.config import settings
from crm.models.currency import CurrencyJob, CurrencySettings, CurrencyTask
from crm.ports import ConcurrentUpdate


def _refused(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class DynamoCurrencyStore:
    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or settings().table_name

    def settings(self, workspace_id: str) -> CurrencySettings | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.currency_settings(workspace_id)),
                                            ConsistentRead=True)
        return CurrencySettings.model_validate(from_item(found["Item"])) if "Item" in found else None

    def put_settings(self, currency: CurrencySettings, held_version: int | None) -> None:
        if held_version is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {"ConditionExpression": "version = :held",
                         "ExpressionAttributeValues": {":held": {"N": str(held_version)}}}
        try:
            client("dynamodb").put_item(TableName=self.table, Item=to_item(
                keys.currency_settings(currency.workspace_id), "currency_settings", currency), **condition)
        except ClientError as error:
            if _refused(error):
                raise ConcurrentUpdate(f"the currency settings of {currency.workspace_id} changed meanwhile") from None
            raise

    def start_job(self, job: CurrencyJob) -> None:
        client("dynamodb").put_item(TableName=self.table, Item=to_item(
            keys.currency_job(job.workspace_id, job.job_id), "currency_job", job))

    def job(self, workspace_id: str, job_id: str) -> CurrencyJob | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=wire_key(keys.currency_job(workspace_id, job_id)),
                                            ConsistentRead=True)
        return _job(found["Item"]) if "Item" in found else None

    def share_done(self, workspace_id: str, job_id: str, share: int, profiles: int, rederived: int,
                   at: datetime) -> CurrencyJob:
        # The share joins the set of done shares, and its counts are added, only the first time.
        try:
            client("dynamodb").update_item(
                TableName=self.table, Key=wire_key(keys.currency_job(workspace_id, job_id)),
                UpdateExpression="ADD done_shares :share, profiles :profiles, rederived :rederived "
                                 "SET finished_at = :at",
                ConditionExpression="attribute_exists(pk) AND NOT contains(done_shares, :one)",
                ExpressionAttributeValues={":share": {"NS": [str(share)]}, ":one": {"N": str(share)},
                                           ":profiles": {"N": str(profiles)}, ":rederived": {"N": str(rederived)},
                                           ":at": {"S": at.isoformat()}})
        except ClientError as error:
            if not _refused(error):
                raise
        job = self.job(workspace_id, job_id)
        if job is None:
            raise LookupError(f"no currency job {job_id} in workspace {workspace_id}")
        return job


def _job(item: Item) -> CurrencyJob:
    plain = from_item(item)
    fields = {k: v for k, v in plain.items() if k in CurrencyJob.model_fields}
    fields["shares_done"] = tuple(sorted(int(share) for share in plain.get("done_shares", ())))
    if len(fields["shares_done"]) < int(plain["shares"]):
        fields["finished_at"] = None  # the time the latest share finished, the job's end once all have
    return CurrencyJob.model_validate(fields)


class SqsCurrencyTasks:
    """The re-derivation's tasks travel on the segment task queue: the same workers, the same scan shares."""

    def __init__(self, queue_url: str | None = None) -> None:
        self._url = queue_url

    def send(self, tasks: Sequence[CurrencyTask]) -> None:
        send_tasks(self._url, tasks, "currency")
