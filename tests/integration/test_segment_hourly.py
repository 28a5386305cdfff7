"""The hourly run on the real adapters (moto): the daily run files the profiles that can cross a time boundary
before the next one, the hourly run reads only those (one Query per hour of the horizon, then their items),
moves their time-relative segments, and takes them off the hour it read. The refresh reads nothing for a
write that moves no membership."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from crm.adapters import keys
from crm.adapters.clients import client
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.segment_runs import DynamoSegmentRuns
from crm.adapters.segments import DynamoSegmentStore
from crm.models.profile import Profile
from crm.ports import Change
from crm.segments import runs
from crm.segments.boundaries import HOUR, hour_of
from crm.segments.feed import ProfileChange
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.fakes import FakeTaskQueue

WS = "ws_a"
DAY = timedelta(days=1)


def _buyer(profile_id: str, last_order: timedelta) -> Profile:
    return Profile(workspace_id=WS, profile_id=profile_id, created_at=NOW - 400 * DAY, updated_at=NOW,
                   orders_count=1, first_order_at=NOW - last_order, last_order_at=NOW - last_order)


@pytest.mark.parametrize("chained", [False, True], ids=["at_once", "chained"])
def test_the_hourly_run_reads_only_the_profiles_filed_and_moves_their_timed_segments(
        provisioned: Provisioned, chained: bool) -> None:
    table = provisioned.outputs["TableName"]
    repository = DynamoProfileRepository(table)
    shoppers = [_buyer("p_churn", 180 * DAY - 3 * HOUR),
                *(_buyer(f"p_fresh{i}", (5 + i) * DAY + 7 * HOUR) for i in range(5))]
    for shopper in shoppers:
        repository.commit(Change(workspace_id=WS, profiles=((shopper, None),)))
    store, segment_runs = DynamoSegmentStore(table), DynamoSegmentRuns(table, provisioned.outputs["ArchiveBucketName"])
    tasks = FakeTaskQueue()
    runs.start_run(segment_runs, tasks, WS, NOW, 1, runs.SCHEDULE)
    tasks.drain(store, segment_runs, lambda: NOW)  # type: ignore[arg-type]
    churn_hour = hour_of(NOW + 3 * HOUR)
    assert store.due_profiles(WS, churn_hour) == ["p_churn"]
    before = store.held_segments(WS, "p_churn")
    assert before is None or "builtin:churn_risk" not in before.segment_ids

    requests: Counter[str] = Counter()
    batch_keys: list[str] = []

    def seen(params: dict[str, Any], model: Any, **_: Any) -> None:
        requests[model.name] += 1
        if model.name == "BatchGetItem":
            batch_keys.extend(k["pk"]["S"] for r in params["RequestItems"].values() for k in r["Keys"])

    events = client("dynamodb").meta.events
    events.register("before-parameter-build.dynamodb", seen)
    try:
        at = NOW + 4 * HOUR + timedelta(minutes=1)
        runs.start_hourly(tasks, [WS], at, chained=chained)
        tasks.drain(store, segment_runs, lambda: at)  # type: ignore[arg-type]
    finally:
        events.unregister("before-parameter-build.dynamodb", seen)
    assert requests["Scan"] == 0
    profiles_read = {pk for pk in batch_keys if pk.startswith(keys.profile_prefix(WS))}
    assert profiles_read == {keys.profile(WS, "p_churn")["pk"]}  # the one profile filed before that hour
    held = store.held_segments(WS, "p_churn")
    assert held is not None and "builtin:churn_risk" in held.segment_ids
    assert segment_runs.hourly_done(WS) == hour_of(at) - HOUR  # its hours are not read again
    assert [m.profile_id for m in store.members(WS, "builtin:churn_risk", None, 10)] == ["p_churn"]
    assert store.get(WS, "builtin:churn_risk").size == 0  # type: ignore[union-attr]  # a run's count

    # A write that moves no membership: the refresh reads nothing and writes nothing.
    fresh = shoppers[1]
    renamed = fresh.model_copy(update={"first_name": "Ada", "revision": fresh.revision + 1})
    cache = runs.RulesCache()
    cache.rules(store, segment_runs, WS, at)  # a warm container has its rules (read once a minute)
    requests.clear()
    events.register("before-parameter-build.dynamodb", seen)
    try:
        applied = runs.refresh(store, segment_runs, [ProfileChange(fresh, renamed)], at, cache)
    finally:
        events.unregister("before-parameter-build.dynamodb", seen)
    assert requests == Counter() and (applied.entered, applied.exited) == (0, 0)
