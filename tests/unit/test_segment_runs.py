"""Keeping segments current, over the fakes: one membership decision for the incremental path and the
fanned-out run; runs that survive redelivery; and, by property, incremental updates that agree with a full
recomputation for random shoppers and event streams."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import cycle
from typing import Any

import pytest
from crm.adapters import keys
from crm.ingestion import apply_event
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.profile import Profile
from crm.models.segment_runs import RunPart, RunPhase, RunTask, SegmentRun
from crm.models.segments import HeldSegments, SegmentRecord
from crm.ports import Change, ConcurrentUpdate
from crm.segments import runs
from crm.segments.builtin import BUILTINS, BuiltinSettings, PopulationSketch, PopulationStats, SegmentContext
from crm.segments.definition import parse_segment
from crm.segments.evaluate import needs
from crm.segments.feed import ProfileChange
from crm.segments.membership import Rules, change_for, memberships_of, memberships_of_all, rfm_of, rules_for
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW
from tests.fakes import FakeProfileRepository, FakeSegmentRuns, FakeSegmentStore, FakeTaskQueue
from tests.unit.test_identity_properties import WS, World, worlds

DAY = timedelta(days=1)


def stored(segment_id: str, definition: dict[str, Any], workspace_id: str = WS) -> SegmentRecord:
    document = parse_segment({"name": segment_id, "definition": definition})
    return SegmentRecord(workspace_id=workspace_id, segment_id=segment_id, name=segment_id, created_at=NOW,
                         updated_at=NOW, definition=document.model_dump_json(by_alias=True, exclude_none=True))


def shopper(profile_id: str, orders: int = 0, spent: str = "0.00", last_order_days: int = 5, revision: int = 1,
            **extra: Any) -> Profile:
    return Profile(workspace_id=WS, profile_id=profile_id, created_at=NOW - 400 * DAY, updated_at=NOW,
                   orders_count=orders, total_spent=Decimal(spent),
                   first_order_at=NOW - 300 * DAY if orders else None,
                   last_order_at=NOW - last_order_days * DAY if orders else None, revision=revision, **extra)


# --- one profile's decision ----------------------------------------------------------------------


def test_segments_are_evaluated_after_those_they_refer_to() -> None:
    records = [stored("seg_a", {"segment": "seg_b", "op": "member"}),
               stored("seg_b", {"all": [{"segment": "builtin:repeat_buyers", "op": "member"},
                                        {"segment": "seg_c", "op": "not_member"}]}),
               stored("seg_c", {"field": "lifetime_value", "op": "gt", "value": "100.00"}),
               SegmentRecord(workspace_id=WS, segment_id="seg_broken", name="x", created_at=NOW, updated_at=NOW,
                             definition='{"name": "x", "definition": {"field": "shoe_size", "op": "eq", "value": 1}}')]
    rules = rules_for(records, SegmentContext(now=NOW))
    order = [sid for sid, _ in rules.custom]
    assert order.index("seg_c") < order.index("seg_b") < order.index("seg_a")
    assert "seg_broken" not in order and rules.unreadable == {"seg_broken"}  # left out, not failing the others

    assert memberships_of(shopper("p1", 2, "50.00"), rules) >= {"seg_a", "seg_b", "builtin:repeat_buyers"}
    assert not memberships_of(shopper("p2", 2, "150.00"), rules) & {"seg_a", "seg_b"}
    assert memberships_of(shopper("p3", 2, "50.00", merged_into="p1"), rules) == frozenset()
    # The run decides many at once, column by column: the same sets, references to other segments included.
    together = [shopper("p1", 2, "50.00"), shopper("p2", 2, "150.00"), shopper("p3", 2, "50.00", merged_into="p1"),
                shopper("p4")]
    assert memberships_of_all(together, rules) == [memberships_of(p, rules) for p in together]


def test_rfm_fields_come_from_the_population_of_the_last_run() -> None:
    buyers = [shopper(f"p{i}", orders=i, spent=f"{i * 10}.00", last_order_days=100 - i * 10) for i in range(1, 6)]
    sketch = PopulationSketch.of_profiles(buyers, NOW)
    population = PopulationStats.from_sketch(sketch, BuiltinSettings())
    context = SegmentContext(now=NOW, population=population)
    best = rfm_of(buyers[-1], context)
    assert best is not None and (best.recency, best.frequency, best.monetary, best.group) == (5, 5, 5, "champions")
    assert rfm_of(shopper("visitor"), context) is None
    assert rfm_of(buyers[-1], SegmentContext(now=NOW)) is None  # no run yet: no scores

    rules = rules_for([stored("seg_top", {"field": "rfm.group", "op": "eq", "value": "Champions"})], context)
    assert "seg_top" in memberships_of(buyers[-1], rules)
    assert "seg_top" not in memberships_of(buyers[0], rules)


def test_a_change_names_what_to_enter_and_exit_and_keeps_what_it_does_not_know() -> None:
    rules = rules_for([stored("seg_buyers", {"field": "orders_count", "op": "gte", "value": 1})],
                      SegmentContext(now=NOW))
    rules = replace(rules, unreadable=frozenset({"seg_unreadable"}))
    held = HeldSegments(segment_ids=frozenset({"builtin:window_shoppers", "seg_deleted", "seg_unreadable"}),
                        version=3, revision=4)
    change = change_for(shopper("p1", 1, "10.00", revision=5), held, rules, NOW)
    assert change is not None
    assert change.entered == ("builtin:one_time_buyers", "seg_buyers")
    assert change.exited == ("builtin:window_shoppers",)
    assert "seg_unreadable" in change.segment_ids and "seg_deleted" not in change.segment_ids
    assert change.expected_version == 3 and change.revision == 5
    # A set decided on a newer revision of the profile stands.
    assert change_for(shopper("p1", 1, "10.00", revision=3), held, rules, NOW) is None
    same = HeldSegments(segment_ids=change.segment_ids, version=4, revision=5)
    assert change_for(shopper("p1", 1, "10.00", revision=5), same, rules, NOW) is None


# --- runs ----------------------------------------------------------------------------------------


def world_of(profiles: list[Profile]) -> tuple[FakeProfileRepository, FakeSegmentStore]:
    repository = FakeProfileRepository()
    for profile in profiles:
        repository.profiles[(profile.workspace_id, profile.profile_id)] = profile
    return repository, FakeSegmentStore(repository)


def run_all(store: FakeSegmentStore, at: datetime, shares: int = 1, twice: bool = False,
            segment_runs: FakeSegmentRuns | None = None) -> SegmentRun:
    segment_runs = segment_runs or FakeSegmentRuns()
    tasks = FakeTaskQueue()
    started = runs.start_run(segment_runs, tasks, WS, at, shares, "test")
    while tasks.tasks:
        task = tasks.tasks.pop(0)
        for _ in range(2 if twice else 1):  # SQS delivers at least once
            runs.carry_out(task, store, segment_runs, tasks, lambda: at)
    done = segment_runs.get(WS, started.run_id)
    assert done is not None
    return done


def members(store: FakeSegmentStore) -> dict[str, set[str]]:
    return {sid: set(held) for (ws, sid), held in store.memberships.items() if ws == WS and held}


POPULATION = [shopper(f"p{i:02d}", orders=i % 4, spent=f"{(i * 37) % 500}.00", last_order_days=(i * 13) % 400,
                      activity_counts={"product_viewed": i % 5}) for i in range(60)]


def test_a_run_over_four_shares_decides_what_one_worker_does_and_redelivery_changes_nothing() -> None:
    _, one = world_of(POPULATION)
    _, four = world_of(POPULATION)
    single = run_all(one, NOW)
    fanned = run_all(four, NOW, shares=4, twice=True)

    assert members(four) == members(one) and members(one)
    assert (fanned.phase, fanned.shares, fanned.sketched, fanned.evaluated) == (RunPhase.DONE, 4, 4, 4)
    assert (fanned.profiles, fanned.entered, fanned.exited) == (single.profiles, single.entered, single.exited) == (
        60, sum(len(m) for m in members(one).values()), 0)
    # 45 buyers (i % 4 != 0), ceil(4.5) = 5 seats: the five highest of (i * 37) % 500 are 499, 498, 481, 462, 461.
    assert members(one)["builtin:vip"] == {"p27", "p54", "p13", "p26", "p53"}
    for sid, ids in members(one).items():
        record = one.get(WS, sid)
        assert record is not None and record.size == len(ids) and record.last_computed_at == NOW


class CountingReads(FakeSegmentStore):
    """Counts the shares' reads of the profiles with their sets."""

    def __init__(self, repository: FakeProfileRepository) -> None:
        super().__init__(repository)
        self.share_reads = 0

    def profiles_with_segments(self, workspace_id: str, share: int = 0,
                               shares: int = 1) -> Iterator[tuple[Profile, HeldSegments]]:
        self.share_reads += 1
        return super().profiles_with_segments(workspace_id, share, shares)


def test_a_run_reads_each_share_once_and_evaluates_what_its_sketch_kept() -> None:
    repository, _ = world_of(POPULATION)
    store, segment_runs = CountingReads(repository), FakeSegmentRuns()
    run = run_all(store, NOW, shares=4, segment_runs=segment_runs)
    assert store.share_reads == 4  # the sketch's; the evaluation reads the work files
    kept = [pair for share in range(4) for pair in segment_runs.kept_profiles(WS, run.run_id, share) or ()]
    assert sorted(profile.profile_id for profile, _ in kept) == sorted(p.profile_id for p in POPULATION)
    _, fresh = world_of(POPULATION)
    run_all(fresh, NOW, shares=4)
    assert members(store) == members(fresh) and members(store)


def test_a_run_sketched_without_work_files_reads_its_profiles_again() -> None:
    """A run whose sketch ran before the work files were kept (a deployment mid-run) still evaluates."""

    class Forgetful(FakeSegmentRuns):
        def keep_profiles(self, workspace_id: str, run_id: str, share: int,
                          profiles: Iterable[tuple[Profile, HeldSegments]]) -> None:
            for _ in profiles:  # read (the sketch needs them), but not kept
                pass

    _, store = world_of(POPULATION)
    _, fresh = world_of(POPULATION)
    run_all(store, NOW, shares=2, segment_runs=Forgetful())
    run_all(fresh, NOW, shares=2)
    assert members(store) == members(fresh) and members(store)


def test_a_second_run_writes_only_what_time_changed() -> None:
    _, store = world_of(POPULATION)
    run_all(store, NOW)
    writes = store.member_writes
    later = run_all(store, NOW + 30 * DAY)
    assert later.entered + later.exited == store.member_writes - writes > 0
    assert run_all(store, NOW + 30 * DAY).entered == 0


def test_one_run_at_a_time_per_workspace_and_a_stale_one_is_replaced() -> None:
    segment_runs, tasks = FakeSegmentRuns(), FakeTaskQueue()
    first = runs.start_run(segment_runs, tasks, WS, NOW, 2, "schedule")
    again = runs.start_run(segment_runs, tasks, WS, NOW + timedelta(minutes=5), 2, "button")
    assert again.run_id == first.run_id and len(tasks.tasks) == 2
    other = runs.start_run(segment_runs, tasks, "ws_b", NOW, 1, "schedule")
    assert other.run_id != first.run_id
    late = runs.start_run(segment_runs, tasks, WS, NOW + runs.RUN_STALE_AFTER + DAY, 2, "schedule")
    assert late.run_id != first.run_id


def test_a_chained_run_goes_one_share_at_a_time_each_handed_on_after_the_pause_its_task_asks() -> None:
    _, one = world_of(POPULATION)
    _, chained = world_of(POPULATION)
    single = run_all(one, NOW)
    segment_runs, tasks = FakeSegmentRuns(items=len(POPULATION)), FakeTaskQueue()
    [started] = runs.start_runs(segment_runs, tasks, [WS], NOW, 25_000, runs.SCHEDULE, paced=True).values()
    assert started.shares == runs.MOST_SHARES and len(tasks.tasks) == 1  # one share per index bucket
    pauses = iter(range(1, 1000))
    carried = []
    while tasks.tasks:
        assert len(tasks.tasks) == 1  # never two shares side by side
        task = tasks.tasks.pop(0)
        assert isinstance(task, RunTask) and task.chained
        carried.append((task.phase, task.share))
        runs.carry_out(task, chained, segment_runs, tasks, lambda: NOW, lambda: next(pauses))
    assert carried == [(phase, share) for phase in (RunPhase.SKETCH, RunPhase.EVALUATE)
                       for share in range(runs.MOST_SHARES)]
    # The start's task went at once; every later one after the pause the task before it asked for.
    assert tasks.delays == list(range(0, 2 * runs.MOST_SHARES))
    done = segment_runs.get(WS, started.run_id)
    assert done is not None and done.phase is RunPhase.DONE
    assert members(chained) == members(one) and members(one)
    assert (done.profiles, done.entered, done.exited) == (single.profiles, single.entered, single.exited)
    for sid, ids in members(chained).items():
        record = chained.get(WS, sid)
        assert record is not None and record.size == len(ids)


def test_a_chained_share_delivered_again_hands_on_again_until_counted_and_counts_once() -> None:
    repository, _ = world_of(POPULATION)
    store, segment_runs, tasks = CountingReads(repository), FakeSegmentRuns(), FakeTaskQueue()
    run = runs.start_run(segment_runs, tasks, WS, NOW, 3, runs.SCHEDULE, chained=True)
    first = tasks.tasks.pop(0)
    assert isinstance(first, RunTask)

    # The worker dies after handing share 1 on and before counting share 0: SQS delivers share 0 again.
    counted = segment_runs.sketched
    segment_runs.sketched = lambda *args: (_ for _ in ()).throw(RuntimeError("killed"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="killed"):
        runs.carry_out(first, store, segment_runs, tasks, lambda: NOW)
    segment_runs.sketched = counted  # type: ignore[method-assign]
    runs.carry_out(first, store, segment_runs, tasks, lambda: NOW)
    assert [(t.share, t.phase) for t in tasks.tasks if isinstance(t, RunTask)] == [(1, RunPhase.SKETCH)] * 2
    reads = store.share_reads
    runs.carry_out(first, store, segment_runs, tasks, lambda: NOW)  # counted now: nothing to do
    assert store.share_reads == reads and len(tasks.tasks) == 2
    while tasks.tasks:  # share 1 twice: the second delivery finds it counted and stops there
        task = tasks.tasks.pop(0)
        assert isinstance(task, RunTask)
        runs.carry_out(task, store, segment_runs, tasks, lambda: NOW)
    done = segment_runs.get(WS, run.run_id)
    assert done is not None and (done.phase, done.sketched, done.evaluated) == (RunPhase.DONE, 3, 3)
    assert done.profiles == len(POPULATION)
    _, fresh = world_of(POPULATION)
    run_all(fresh, NOW)
    assert members(store) == members(fresh)


def after_pages(pages: int) -> runs.Spent:
    """A hop's budget: spent once it has read this many pages (it is asked at the end of each)."""
    asked = iter(range(pages - 1))
    return lambda: next(asked, None) is None


def test_a_chained_share_read_in_hops_keeps_every_profile_once_however_often_and_wherever_a_hop_stops() -> None:
    _, one = world_of(POPULATION)
    single = run_all(one, NOW)
    _, chained = world_of(POPULATION)
    chained.page_size = 2
    segment_runs, tasks = FakeSegmentRuns(), FakeTaskQueue()
    run = runs.start_run(segment_runs, tasks, WS, NOW, 3, runs.SCHEDULE, chained=True)
    budgets = cycle([1, 2, 100])  # pages each delivery reads before it has read enough: two deliveries differ
    carried: list[RunTask] = []
    delivered: Counter[RunTask] = Counter()
    while tasks.tasks:
        task = tasks.tasks.pop(0)
        assert isinstance(task, RunTask)
        delivered[task] += 1
        if delivered[task] > 2:
            continue  # every distinct task is delivered twice; more copies are more of the same
        if delivered[task] == 1:
            carried.append(task)
            tasks.tasks.append(task)  # delivered again later: after the part it handed on was read
        runs.carry_out(task, chained, segment_runs, tasks, lambda: NOW, spent=after_pages(next(budgets)))
    done = segment_runs.get(WS, run.run_id)
    assert done is not None and (done.phase, done.sketched, done.evaluated) == (RunPhase.DONE, 3, 3)
    hops = [t for t in carried if t.phase is RunPhase.SKETCH]
    assert len(hops) > 3 and {t.part for t in hops} > {0}  # the shares were read in parts
    assert sum(len(segment_runs.parts(WS, run.run_id, share)) for share in range(3)) == len(hops)
    for share in range(3):  # each share's kept profiles, part after part: its profiles once each, in order
        kept = segment_runs.kept_profiles(WS, run.run_id, share)
        assert kept is not None
        assert [p.profile_id for p, _ in kept] == sorted(p.profile_id for p, _ in chained.profiles_with_segments(
            WS, share, 3))
    assert (done.profiles, done.entered, done.exited) == (single.profiles, single.entered, single.exited)
    assert members(chained) == members(one) and members(one)
    assert done.population == single.population


@pytest.mark.parametrize(("step", "checks"), [(1, [1]), (2, [1]), (1, [3, 1, 7]), (4, [2, 5])])
def test_a_chained_share_written_in_hops_counts_each_profile_once_however_often_each_hop_is_delivered(
        monkeypatch: pytest.MonkeyPatch, step: int, checks: list[int]) -> None:
    """Every task delivered twice, the second after the one it handed on: the members, figures and sizes of a
    one-worker run, and the share's recorded parts cover its kept profiles end to end, once each."""
    _, one = world_of(POPULATION)
    single = run_all(one, NOW)
    _, chained = world_of(POPULATION)
    monkeypatch.setattr(runs, "EVALUATED_PER_HOP_CHECK", step)
    segment_runs, tasks = FakeSegmentRuns(), FakeTaskQueue()
    run = runs.start_run(segment_runs, tasks, WS, NOW, 3, runs.SCHEDULE, chained=True)
    budgets = cycle(checks)  # the groups of ``step`` profiles a delivery writes before its minute is spent
    delivered: Counter[RunTask] = Counter()
    hops: list[RunTask] = []
    while tasks.tasks:
        task = tasks.tasks.pop(0)
        assert isinstance(task, RunTask)
        delivered[task] += 1
        if delivered[task] > 2:
            continue
        if delivered[task] == 1:
            hops.append(task)
            tasks.tasks.append(task)  # again, after its successor
        runs.carry_out(task, chained, segment_runs, tasks, lambda: NOW, spent=after_pages(next(budgets)))
    done = segment_runs.get(WS, run.run_id)
    assert done is not None and (done.phase, done.evaluated) == (RunPhase.DONE, 3)
    assert members(chained) == members(one) and members(one)
    assert (done.profiles, done.entered, done.exited) == (single.profiles, single.entered, single.exited)
    assert {sid: n for sid, n in done.sizes.items() if n} == {sid: n for sid, n in single.sizes.items() if n}
    for sid, ids in members(chained).items():
        record = chained.get(WS, sid)
        assert record is not None and record.size == len(ids)
    written = [t for t in hops if t.phase is RunPhase.EVALUATE]
    assert len(written) > 3 and {t.part for t in written} > {0}  # the shares were written in parts
    for share in range(3):
        parts = segment_runs.evaluated_parts(WS, run.run_id, share)
        kept = segment_runs.kept_profiles(WS, run.run_id, share)
        assert kept is not None
        assert [(p.start, p.end) for p in parts] == list(zip([0, *(p.end for p in parts[:-1])],
                                                             [p.end for p in parts], strict=True))
        assert parts[-1].end == len(list(kept)) and [p.ended for p in parts] == [False] * (len(parts) - 1) + [True]
        assert all(p.end - p.start <= step * max(checks) for p in parts)
    assert sum(len(segment_runs.evaluated_parts(WS, run.run_id, share)) for share in range(3)) == len(written)


def test_two_deliveries_of_a_hop_at_once_go_on_from_the_part_recorded_first() -> None:
    _, one = world_of(POPULATION)
    run_all(one, NOW)
    _, chained = world_of(POPULATION)
    chained.page_size = 2
    segment_runs, tasks = FakeSegmentRuns(), FakeTaskQueue()
    run = runs.start_run(segment_runs, tasks, WS, NOW, 1, runs.SCHEDULE, chained=True)
    first = tasks.tasks.pop(0)
    assert isinstance(first, RunTask)
    record = segment_runs.record_part

    def the_other_delivery_records_first(workspace_id: str, run_id: str, part: RunPart) -> RunPart:
        segment_runs.record_part = record  # type: ignore[method-assign]
        runs.carry_out(first, chained, segment_runs, tasks, lambda: NOW, spent=lambda: True)  # one page
        return record(workspace_id, run_id, part)

    segment_runs.record_part = the_other_delivery_records_first  # type: ignore[method-assign]
    runs.carry_out(first, chained, segment_runs, tasks, lambda: NOW, spent=after_pages(2))
    # Both handed on the rest of the share from where the first recorded part stopped: after one page.
    recorded = segment_runs.parts(WS, run.run_id, 0)[0]
    assert [t.after for t in tasks.tasks if isinstance(t, RunTask)] == [recorded.resume] * 2
    tasks.drain(chained, segment_runs, lambda: NOW)
    kept = segment_runs.kept_profiles(WS, run.run_id, 0)
    assert kept is not None and [p.profile_id for p, _ in kept] == sorted(p.profile_id for p in POPULATION)
    assert members(chained) == members(one)


def test_shares_scale_with_the_index_up_to_its_buckets() -> None:
    assert [runs.shares_for(n, 100_000) for n in (0, 1, 100_000, 100_001, 3_000_000, 10**10)] == [1, 1, 1, 2, 30,
                                                                                                  32]
    # A share reads whole buckets of the workspace index: there are never more shares than buckets.
    assert runs.MOST_SHARES <= keys.WORKSPACE_BUCKETS


# --- the incremental path ------------------------------------------------------------------------


def test_refresh_decides_with_the_last_runs_population_and_retries_a_conflict() -> None:
    repository, store = world_of(POPULATION)
    segment_runs = FakeSegmentRuns()
    run_all(store, NOW, segment_runs=segment_runs)
    vip_before = members(store)["builtin:vip"]

    whale = shopper("p_new", orders=1, spent="100000.00")
    repository.profiles[(WS, "p_new")] = whale
    applied = runs.refresh(store, segment_runs, [ProfileChange(None, whale)], NOW)
    assert "p_new" in members(store)["builtin:vip"] and applied.entered >= 2
    assert members(store)["builtin:vip"] - {"p_new"} == vip_before  # thresholds stay until the next run

    calls = {"n": 0}
    original = store.apply_membership

    def racing(change: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConcurrentUpdate("a run wrote the set meanwhile")
        original(change)

    store.apply_membership = racing  # type: ignore[method-assign]
    lapsed = whale.model_copy(update={"orders_count": 0, "total_spent": Decimal("0.00"), "first_order_at": None,
                                      "last_order_at": None, "revision": 2})
    repository.profiles[(WS, "p_new")] = lapsed
    # The batch's first image before and last image after count.
    runs.refresh(store, segment_runs, [ProfileChange(whale, whale), ProfileChange(whale, lapsed)], NOW)
    assert calls["n"] == 2 and "p_new" not in members(store).get("builtin:vip", set())


def test_an_erased_profile_leaves_its_segments_and_is_not_brought_back() -> None:
    repository, store = world_of([shopper("p1", 2, "20.00")])
    segment_runs = FakeSegmentRuns()
    runs.refresh(store, segment_runs, [ProfileChange(None, repository.profiles[(WS, "p1")])], NOW)
    held = store.held(WS, "p1")
    assert "builtin:repeat_buyers" in held.segment_ids

    profile = repository.profiles.pop((WS, "p1"))
    store.forget_profile(WS, "p1", held.segment_ids, NOW)
    store.forget_profile(WS, "p1", held.segment_ids, NOW)
    assert members(store) == {}
    # A stream record from before the erasure, processed after it, writes nothing.
    stale = ProfileChange(None, profile.model_copy(update={"revision": 9}))
    assert runs.refresh(store, segment_runs, [stale], NOW).entered == 0
    assert members(store) == {}


# --- by property: incremental updates agree with a full recomputation -----------------------------

CUSTOM = {
    "seg_buyers": {"field": "orders_count", "op": "gte", "value": 1},
    "seg_big": {"field": "lifetime_value", "op": "gt", "value": "1500.00"},
    "seg_viewers": {"event": "product_viewed", "op": "at_least", "count": 1},
    "seg_subscribed": {"field": "consent.email", "op": "eq", "value": "subscribed"},
    "seg_product": {"field": "products", "op": "contains", "value": "product-1"},
    "seg_coupon_repeat": {"all": [{"field": "coupons", "op": "contains", "value": "save"},
                                  {"segment": "builtin:repeat_buyers", "op": "member"}]},
    "seg_not_big": {"all": [{"segment": "seg_buyers", "op": "member"}, {"segment": "seg_big", "op": "not_member"}]},
    "seg_recent": {"field": "days_since_last_order", "op": "lte", "value": 400},
    "seg_top_rfm": {"field": "rfm.monetary", "op": "gte", "value": 4},
}


class StreamingRepository(FakeProfileRepository):
    """Profiles written since the last look: what the table's stream carries to the refresh."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[ProfileChange] = []

    def commit(self, change: Change) -> None:
        before = {p.profile_id: self.profiles.get((p.workspace_id, p.profile_id)) for p, _ in change.profiles}
        super().commit(change)
        self.written += [ProfileChange(before[p.profile_id], p) for p, _ in change.profiles]


def _profile_only(rules: Rules) -> set[str]:
    """Segments that depend on nothing but the profile (not on time, not on other profiles)."""
    simple = {b.id for b in BUILTINS if not b.time_relative and not b.population_relative}
    for sid, definition in rules.custom:
        need = needs(definition)
        if not need.time_relative and not need.population and not need.segments & {
                b.id for b in BUILTINS if b.time_relative or b.population_relative}:
            simple.add(sid)
    return simple


@settings(max_examples=150, deadline=None)
@given(world=worlds(), data=st.data())
def test_incremental_updates_agree_with_a_full_recomputation(world: World, data: st.DataObject) -> None:
    events = data.draw(st.permutations(list(world.events)), label="arrival")
    repository = StreamingRepository()
    store = FakeSegmentStore(repository)
    for sid, definition in CUSTOM.items():
        store.put(stored(sid, definition), None)
    segment_runs = FakeSegmentRuns()
    end = NOW + timedelta(seconds=len(events) + 1)
    # A run at the start (an empty workspace) and then every event refreshed as it lands, at its own time.
    run_all(store, NOW, segment_runs=segment_runs)
    for step, event in enumerate(events):
        at = NOW + timedelta(seconds=step)
        apply_event(repository, event, at)
        runs.refresh(store, segment_runs, repository.written, at)
        repository.written = []

    fresh = FakeSegmentStore(repository)
    fresh.records = {key: record.model_copy(update={"size": 0, "growth": (), "last_computed_at": None})
                     for key, record in store.records.items() if record.definition is not None}
    run_all(fresh, end)
    simple = _profile_only(runs.load_rules(store, WS, end, PopulationStats()))
    incremental = {sid: ids for sid, ids in members(store).items() if sid in simple}
    assert incremental == {sid: ids for sid, ids in members(fresh).items() if sid in simple}

    # The next scheduled run settles what time and the population moved: then every segment agrees.
    run_all(store, end, segment_runs=segment_runs)
    assert members(store) == members(fresh)
    for store_ in (store, fresh):
        for (ws, sid), record in store_.records.items():
            assert record.size == len(store_.memberships.get((ws, sid), {})), sid
        sets: dict[str, set[str]] = {}
        for (_, pid), held in store_.held_sets.items():
            for sid in held.segment_ids:
                sets.setdefault(sid, set()).add(pid)
        assert sets == members(store_)


def test_the_property_covers_every_kind_of_segment() -> None:
    rules = runs.load_rules(FakeSegmentStore(), WS, NOW, PopulationStats())
    assert rules.custom == ()
    kinds = {sid: needs(parse_segment({"name": sid, "definition": d}).definition) for sid, d in CUSTOM.items()}
    assert any(k.time_relative for k in kinds.values()) and any(k.population for k in kinds.values())
    assert any(k.segments for k in kinds.values()) and any(k.events for k in kinds.values())
    assert json.dumps(CUSTOM)  # plain JSON, as the API takes them


@pytest.mark.parametrize("consent", [ConsentState.SUBSCRIBED, ConsentState.UNSUBSCRIBED])
def test_consent_segments_follow_the_latest_statement(consent: ConsentState) -> None:
    statement = Consent(channel=Channel.EMAIL, state=consent, source="test", at=NOW)
    rules = rules_for([stored("seg_subscribed", CUSTOM["seg_subscribed"])], SegmentContext(now=NOW))
    found = memberships_of(shopper("p1", consents={"email": statement}), rules)
    assert ("seg_subscribed" in found) is (consent is ConsentState.SUBSCRIBED)


def test_a_request_during_a_run_gets_a_follow_up_run_the_schedule_does_not() -> None:
    _, store = world_of(POPULATION[:10])
    segment_runs, tasks = FakeSegmentRuns(), FakeTaskQueue()
    first = runs.start_run(segment_runs, tasks, WS, NOW, 1, runs.SCHEDULE)
    assert runs.start_run(segment_runs, tasks, WS, NOW, 1, runs.SCHEDULE).run_id == first.run_id
    assert not segment_runs.runs[(WS, first.run_id)].rerun
    store.put(stored("seg_new", {"field": "orders_count", "op": "gte", "value": 3}), None)
    answered = runs.start_run(segment_runs, tasks, WS, NOW + timedelta(seconds=1), 1, "created seg_new")
    assert answered.run_id == first.run_id

    tasks.drain(store, segment_runs, lambda: NOW + timedelta(seconds=2))
    done = segment_runs.get(WS, first.run_id)
    assert done is not None and done.phase is RunPhase.DONE and done.rerun and done.next_run_id
    following = segment_runs.get(WS, done.next_run_id)
    assert following is not None and following.phase is RunPhase.DONE and following.next_run_id is None
    assert following.reason == f"follows {first.run_id}"
    record = store.get(WS, "seg_new")
    assert record is not None and record.last_computed_at == following.now
