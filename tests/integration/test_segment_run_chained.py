"""A chained segment run on the real adapters (moto): each share is handed on to the queue with the pause its
task asked for (SQS DelaySeconds), the run's record says which shares of the phase are counted, and a share
delivered again once counted reads nothing."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import boto3
import pytest
from crm.adapters.clients import client
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.segment_runs import DynamoSegmentRuns, SqsTaskQueue
from crm.adapters.segments import DynamoSegmentStore
from crm.models.profile import Profile
from crm.models.segment_runs import RunPhase, RunTask
from crm.ports import Change
from crm.segments import runs
from crm.segments.snapshot import latest_snapshot
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.fakes import FakeTaskQueue

WS = "ws_chain"
DAY = timedelta(days=1)


def _twelve_profiles(provisioned: Provisioned) -> str:
    """Twelve profiles of WS, a third without orders; the table's name."""
    table = provisioned.outputs["TableName"]
    repository = DynamoProfileRepository(table)
    for n in range(12):
        repository.commit(Change(workspace_id=WS, profiles=((Profile(
            workspace_id=WS, profile_id=f"p{n:02d}", created_at=NOW - 90 * DAY, updated_at=NOW,
            orders_count=n % 3, first_order_at=NOW - n * DAY if n % 3 else None,
            last_order_at=NOW - n * DAY if n % 3 else None), None),)))
    return table


def test_a_chained_run_hands_each_share_on_and_skips_one_counted(provisioned: Provisioned) -> None:
    table = _twelve_profiles(provisioned)
    store, segment_runs = DynamoSegmentStore(table), DynamoSegmentRuns(table, provisioned.outputs["ArchiveBucketName"])
    tasks = FakeTaskQueue()
    started = runs.start_run(segment_runs, tasks, WS, NOW, 4, runs.SCHEDULE, chained=True)
    first = tasks.tasks[0]
    assert isinstance(first, RunTask) and first.chained and len(tasks.tasks) == 1

    requests: Counter[str] = Counter()

    def seen(model: Any, **_: Any) -> None:
        requests[model.name] += 1

    runs.carry_out(tasks.tasks.pop(0), store, segment_runs, tasks, lambda: NOW, lambda: 7)
    run = segment_runs.get(WS, started.run_id)
    assert run is not None and run.counted == {0} and len(tasks.tasks) == 1
    client("dynamodb").meta.events.register("before-call.dynamodb.*", seen)
    try:
        runs.carry_out(first, store, segment_runs, tasks, lambda: NOW, lambda: 7)  # delivered again
    finally:
        client("dynamodb").meta.events.unregister("before-call.dynamodb.*", seen)
    assert set(requests) == {"GetItem"} and len(tasks.tasks) == 1  # the run's record only: its share is counted
    while tasks.tasks:
        task = tasks.tasks.pop(0)
        assert isinstance(task, RunTask)
        runs.carry_out(task, store, segment_runs, tasks, lambda: NOW, lambda: 7)
        run = segment_runs.get(WS, started.run_id)
        assert run is not None
        if run.phase is task.phase:
            assert task.share in run.counted
    assert tasks.delays == [0] + [7] * 7
    done = segment_runs.get(WS, started.run_id)
    assert done is not None and (done.phase, done.profiles, done.counted) == (RunPhase.DONE, 12, frozenset())


def test_a_task_handed_on_is_held_back_by_the_queue(provisioned: Provisioned) -> None:
    url = provisioned.outputs["SegmentTasksQueueUrl"]
    sent: list[dict[str, Any]] = []
    sqs = client("sqs")

    def capture(params: dict[str, Any], **_: Any) -> None:
        sent.extend(params["Entries"])

    sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", capture)
    try:
        task = RunTask(workspace_id=WS, run_id="run_1", phase=RunPhase.SKETCH, share=1, shares=32, chained=True)
        SqsTaskQueue(url).send([task], 120)
        SqsTaskQueue(url).send([task.model_copy(update={"share": 2})])
    finally:
        sqs.meta.events.unregister("provide-client-params.sqs.SendMessageBatch", capture)
    assert [entry.get("DelaySeconds") for entry in sent] == [120, None]
    # Not delivered before its delay (moto keeps SQS's DelaySeconds); the undelayed one is.
    received = boto3.client("sqs", region_name=provisioned.region).receive_message(
        QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [RunTask.model_validate_json(m["Body"]).share for m in received] == [2]


def test_a_chained_share_read_in_hops_keeps_every_profile_once_for_the_run_and_the_fit(
        provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each hop reads one index page and hands the rest of its share on (the Query's LastEvaluatedKey in the task):
    the run counts every profile once, and its work files, read back part after part, hold each once."""
    monkeypatch.setattr("crm.adapters.workspace_index.INDEX_PAGE", 2)
    table = provisioned.outputs["TableName"]
    repository = DynamoProfileRepository(table)
    ids = [f"p{n:02d}" for n in range(12)]
    for pid in ids:
        repository.commit(Change(workspace_id=WS, profiles=((Profile(
            workspace_id=WS, profile_id=pid, created_at=NOW - 90 * DAY, updated_at=NOW), None),)))
    store, segment_runs = DynamoSegmentStore(table), DynamoSegmentRuns(table, provisioned.outputs["ArchiveBucketName"])
    tasks = FakeTaskQueue()
    started = runs.start_run(segment_runs, tasks, WS, NOW, 2, runs.SCHEDULE, chained=True)
    carried: list[RunTask] = []
    while tasks.tasks:
        task = tasks.tasks.pop(0)
        assert isinstance(task, RunTask)
        if task in carried:
            continue  # the copies handed on by a second delivery
        carried.append(task)
        for _ in range(2):  # every task delivered twice: the second goes on from the part the first recorded
            runs.carry_out(task, store, segment_runs, tasks, lambda: NOW, lambda: 0, lambda: True)
    done = segment_runs.get(WS, started.run_id)
    assert done is not None and (done.phase, done.profiles) == (RunPhase.DONE, len(ids))
    hops = sum(task.phase is RunPhase.SKETCH for task in carried)
    assert hops > 2 and sum(len(segment_runs.parts(WS, started.run_id, share)) for share in range(2)) == hops
    snapshot = latest_snapshot(segment_runs, WS, NOW)
    assert snapshot is not None and sorted(p.profile_id for p in snapshot.profiles) == ids


def test_a_chained_share_written_in_hops_counts_every_member_once_however_often_a_hop_is_delivered(
        provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each evaluation hop writes two profiles and hands the rest of its share on (the start in the task), every
    hop delivered twice, the second after its successor: on a first run every member entered once, and the
    sizes recorded are the members the parts counted."""
    monkeypatch.setattr(runs, "EVALUATED_PER_HOP_CHECK", 2)
    table = _twelve_profiles(provisioned)
    store, segment_runs = DynamoSegmentStore(table), DynamoSegmentRuns(table, provisioned.outputs["ArchiveBucketName"])
    tasks = FakeTaskQueue()
    started = runs.start_run(segment_runs, tasks, WS, NOW, 2, runs.SCHEDULE, chained=True)
    delivered: Counter[RunTask] = Counter()
    while tasks.tasks:
        task = tasks.tasks.pop(0)
        assert isinstance(task, RunTask)
        delivered[task] += 1
        if delivered[task] > 2:
            continue
        if delivered[task] == 1:
            tasks.tasks.append(task)  # again, after its successor
        runs.carry_out(task, store, segment_runs, tasks, lambda: NOW, lambda: 0, lambda: True)
    done = segment_runs.get(WS, started.run_id)
    assert done is not None and (done.phase, done.profiles, done.exited) == (RunPhase.DONE, 12, 0)
    parts = [segment_runs.evaluated_parts(WS, started.run_id, share) for share in range(2)]
    assert [[(p.start, p.end, p.ended) for p in share] for share in parts] == [
        [(0, 2, False), (2, 4, False), (4, 6, True)]] * 2
    assert done.entered == sum(done.sizes.values()) > 0
    for segment_id, size in done.sizes.items():
        record = store.get(WS, segment_id)
        assert record is not None and record.size == size
