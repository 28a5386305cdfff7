"""Flow runs, step claims and last sends in the single table (keys in crm.adapters.keys).

Everything a run touches lives in its profile's partition: an erasure of the partition takes it, and one
Query lists a profile's runs. A run is stored as one attribute beside the few attributes a condition needs
(``revision``): its JSON without the fields at their defaults (its trigger is an event's detail, which may hold
floats DynamoDB's types refuse), deflated against a dictionary of what every run repeats (``packed``, Binary:
crm.adapters.items.pack; nothing filters on it, the stream's filters name keys only), since a write costs a unit
per started KB and a checkout's run with its send records passed 1 KB as zlib and base64. Runs stored before,
that way (``run_z``) or as plain JSON (``run``), are still read.
"""

from __future__ import annotations

import base64
import zlib
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from crm.adapters import keys
from crm.adapters.clients import client, put_if_absent, query_items
from crm.adapters.items import FLOW_RUNS, PACKED, Item, pack, unpack, wire_key
from crm.adapters.throttling import DEFAULT_BACKOFF, Backoff, batch_write
from crm.config import settings
from crm.flows.ports import StepAlreadyClaimed
from crm.models.flows import FlowRun, StepOutcome, StepRecord
from crm.ports import ConcurrentUpdate

# The stream's readers (the outbox's crm.adapters.streams) unpack the attribute as any packed item's: a Binary
# under another name is a type their deserializer cannot read from Lambda's JSON (base64 text).
PACKED_RUN = PACKED


def _refused(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def run_item(run: FlowRun) -> Item:
    packed = pack(run.model_dump_json(exclude_defaults=True).encode(), FLOW_RUNS)
    return {**wire_key(keys.flow_run(run.workspace_id, run.profile_id, run.run_id)),
            "entity": {"S": "flow_run"}, "flow_id": {"S": run.flow_id}, "status": {"S": run.status.value},
            "revision": {"N": str(run.revision)}, PACKED_RUN: {"B": packed}}


def run_of_item(item: Item) -> FlowRun:
    """The run of a stored item (wire form): packed, or as stored before, zlib and base64 or plain JSON."""
    if PACKED_RUN in item:
        return FlowRun.model_validate_json(unpack(item[PACKED_RUN]["B"]))
    if "run_z" in item:
        return FlowRun.model_validate_json(zlib.decompress(base64.b64decode(item["run_z"]["S"])))
    return FlowRun.model_validate_json(item["run"]["S"])



class DynamoRunStore:
    """A send costs one conditional put to claim it (its outcome is its message's record, crm.adapters.
    flow_stats; a double opt-in's is written on the claim); a run one conditional put per delivery that moved it.
    Smart Sending's last send is read off the profile's runs (crm.flows.engine.last_send), not written apart."""

    def __init__(self, table_name: str | None = None, backoff: Backoff = DEFAULT_BACKOFF) -> None:
        self.table = table_name or settings().table_name
        self.backoff = backoff

    def _run_item(self, run: FlowRun) -> Item:
        return run_item(run)

    def create_run(self, run: FlowRun) -> bool:
        return put_if_absent(self.table, self._run_item(run))

    def get_run(self, workspace_id: str, profile_id: str, run_id: str) -> FlowRun | None:
        found = client("dynamodb").get_item(TableName=self.table, ConsistentRead=True,
                                            Key=wire_key(keys.flow_run(workspace_id, profile_id, run_id)))
        return run_of_item(found["Item"]) if "Item" in found else None

    def save_run(self, run: FlowRun, expected_revision: int) -> None:
        try:
            client("dynamodb").put_item(TableName=self.table, Item=self._run_item(run),
                                        ConditionExpression="revision = :expected",
                                        ExpressionAttributeValues={":expected": {"N": str(expected_revision)}})
        except ClientError as error:
            if _refused(error):
                raise ConcurrentUpdate(f"flow run {run.run_id} changed since revision {expected_revision}") from None
            raise

    def _partition(self, workspace_id: str, profile_id: str, prefix: str, consistent: bool = True) -> list[Item]:
        pk = keys.flow_run(workspace_id, profile_id, "")["pk"]
        request: dict[str, Any] = {"TableName": self.table, "ConsistentRead": consistent,
                                   "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                                   "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}}}
        return list(query_items(request))

    def runs_of_profile(self, workspace_id: str, profile_id: str, flow_id: str | None = None, *,
                        consistent: bool = True) -> list[FlowRun]:
        runs = [run_of_item(item) for item in self._partition(workspace_id, profile_id, keys.FLOW_RUN_PREFIX,
                                                              consistent)]
        return [run for run in runs if flow_id is None or run.flow_id == flow_id]

    def delete_runs(self, workspace_id: str, profile_id: str) -> list[FlowRun]:
        runs = self._partition(workspace_id, profile_id, keys.FLOW_RUN_PREFIX)
        claims = self._partition(workspace_id, profile_id, keys.FLOW_STEP_PREFIX)
        batch_write(self.table, [{"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}}
                                 for item in (*runs, *claims)], self.backoff)
        return [run_of_item(item) for item in runs]

    def _step_key(self, run: FlowRun, step_id: str) -> Item:
        return wire_key(keys.flow_step(run.workspace_id, run.profile_id, run.run_id, step_id))

    def claim_step(self, run: FlowRun, step_id: str, at: datetime) -> None:
        item = {**self._step_key(run, step_id), "entity": {"S": "flow_step"}, "claimed_at": {"S": at.isoformat()}}
        if not put_if_absent(self.table, item):
            raise StepAlreadyClaimed(f"step {step_id} of run {run.run_id}")

    def step_claim(self, run: FlowRun, step_id: str) -> StepRecord | None:
        found = client("dynamodb").get_item(TableName=self.table, Key=self._step_key(run, step_id),
                                            ConsistentRead=True).get("Item")
        if found is None:
            return None
        if "record" in found:
            return StepRecord.model_validate_json(found["record"]["S"])
        return StepRecord(step_id=step_id, outcome=StepOutcome.UNKNOWN, at=datetime.fromisoformat(
            found["claimed_at"]["S"]))

    def record_step(self, run: FlowRun, record: StepRecord) -> None:
        client("dynamodb").update_item(TableName=self.table, Key=self._step_key(run, record.step_id),
                                       UpdateExpression="SET #record = :record, entity = :entity, "
                                                        "claimed_at = if_not_exists(claimed_at, :at)",
                                       ExpressionAttributeNames={"#record": "record"},
                                       ExpressionAttributeValues={":record": {"S": record.model_dump_json()},
                                                                  ":entity": {"S": "flow_step"},
                                                                  ":at": {"S": record.at.isoformat()}})
