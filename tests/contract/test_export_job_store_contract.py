"""One contract for export jobs: the in-memory fake and the DynamoDB adapter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from crm.adapters.export_jobs import DynamoExportJobStore
from crm.models.consent import Channel
from crm.models.exports import ExportFormat, ExportJob, ExportOptions, ExportStatus
from crm.ports import ConcurrentUpdate, ExportJobStore
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.fakes import FakeExportJobStore

WS = "ws_a"
LATER = NOW + timedelta(minutes=1)


@pytest.fixture(params=["fake", pytest.param("dynamodb", marks=pytest.mark.integration)])
def jobs(request: pytest.FixtureRequest) -> ExportJobStore:
    if request.param == "fake":
        return FakeExportJobStore()
    provisioned: Provisioned = request.getfixturevalue("provisioned")
    return DynamoExportJobStore(provisioned.outputs["TableName"])


def queued(export_id: str = "exp_1", workspace_id: str = WS) -> ExportJob:
    options = ExportOptions(format=ExportFormat.JSONL, fields=("email", "first_name"), consent=Channel.SMS)
    return ExportJob(workspace_id=workspace_id, export_id=export_id, segment_id="seg_1", options=options,
                     created_at=NOW, updated_at=NOW)


def test_a_job_round_trips_in_its_workspace_only(jobs: ExportJobStore) -> None:
    jobs.save(queued(), None)
    assert jobs.get(WS, "exp_1") == queued()
    assert jobs.get("ws_b", "exp_1") is None
    with pytest.raises(ConcurrentUpdate):
        jobs.save(queued(), None)  # must be new


def test_claims_count_attempts_and_only_the_latest_claimer_may_record(jobs: ExportJobStore) -> None:
    jobs.save(queued(), None)
    first = jobs.claim(WS, "exp_1", NOW)
    assert first is not None and (first.status, first.attempts, first.started_at) == (ExportStatus.RUNNING, 1, NOW)
    second = jobs.claim(WS, "exp_1", LATER)  # a duplicate delivery while the first still runs
    assert second is not None and (second.attempts, second.started_at) == (2, LATER)
    assert second.options == queued().options

    done = second.model_copy(update={"status": ExportStatus.DONE, "rows": 3, "size_bytes": 120,
                                     "object_key": "exports/ws_a/exp_1/2.jsonl", "finished_at": LATER})
    with pytest.raises(ConcurrentUpdate):
        jobs.save(done.model_copy(update={"attempts": 1}), 1)  # the overtaken first attempt
    jobs.save(done, 2)
    assert jobs.get(WS, "exp_1") == done


def test_a_finished_or_unknown_job_is_not_claimed(jobs: ExportJobStore) -> None:
    assert jobs.claim(WS, "exp_missing", NOW) is None
    jobs.save(queued(), None)
    claimed = jobs.claim(WS, "exp_1", NOW)
    assert claimed is not None
    jobs.save(claimed.model_copy(update={"status": ExportStatus.FAILED, "error": "gone"}), 1)
    assert jobs.claim(WS, "exp_1", LATER) is None
    held = jobs.get(WS, "exp_1")
    assert held is not None and (held.status, held.attempts) == (ExportStatus.FAILED, 1)
