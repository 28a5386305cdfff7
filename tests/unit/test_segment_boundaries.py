"""When a profile's time-relative memberships can next change (crm.segments.boundaries), and the hourly run
that reads only the profiles whose boundary has passed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from crm.models.profile import Activity, Profile, RecentTimes
from crm.recent import micros
from crm.segments import runs
from crm.segments.boundaries import HORIZON, due, hour_of, next_change, timed_segments
from crm.segments.builtin import BuiltinSettings, PopulationSketch, PopulationStats, SegmentContext
from crm.segments.feed import ProfileChange
from crm.segments.membership import Rules, memberships_of, rules_for
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW
from tests.fakes import FakeProfileRepository, FakeSegmentRuns, FakeSegmentStore, FakeTaskQueue
from tests.unit.test_segment_runs import WS, stored

DAY, HOUR = timedelta(days=1), timedelta(hours=1)

TIMED = {
    "seg_recent": {"field": "days_since_last_order", "op": "lte", "value": 30},
    "seg_band": {"field": "days_since_first_order", "op": "between", "value": [10, 20]},
    "seg_lapsed": {"field": "last_order_at", "op": "not_within_last", "value": {"days": 60}},
    "seg_old_first": {"field": "first_order_at", "op": "before", "value": {"days_ago": 90}},
    "seg_browsing": {"event": "product_viewed", "op": "at_least", "count": 2, "within_days": 3},
    "seg_quiet_viewer": {"all": [{"event": "product_viewed", "op": "exactly", "count": 1, "within_days": 1},
                                 {"field": "lifetime_value", "op": "gt", "value": "10.00"}]},
    "seg_refers": {"segment": "seg_recent", "op": "not_member"},
}
PLAIN = {"seg_big": {"field": "lifetime_value", "op": "gt", "value": "100.00"},
         "seg_refers_plain": {"segment": "seg_big", "op": "member"}}


def rules_at(now: datetime, population: PopulationStats | None = None) -> Rules:
    records = [stored(sid, d) for sid, d in {**TIMED, **PLAIN}.items()]
    return rules_for(records, SegmentContext(now=now, population=population or PopulationStats()))


def profile(pid: str, *, first: timedelta | None = None, last: timedelta | None = None,
            views: tuple[timedelta, ...] = (), checkout: timedelta | None = None, spent: str = "50.00",
            at: datetime = NOW) -> Profile:
    """A profile as of ``at`` with orders and views that many days (or hours) before it."""
    orders = [at - ago for ago in (last, first) if ago is not None]
    extra: dict[str, Any] = {}
    if checkout is not None:
        extra["last_checkout"] = Activity(at=at - checkout, event_id=f"{pid}-c", type="checkout_started")
    return Profile(workspace_id=WS, profile_id=pid, created_at=at - 400 * DAY, updated_at=at,
                   orders_count=len(orders), total_spent=Decimal(spent) if orders else Decimal("0.00"),
                   first_order_at=at - first if first is not None else None,
                   last_order_at=at - last if last is not None else None,
                   activity_counts={"product_viewed": len(views)} if views else {},
                   recent=RecentTimes.of({"product_viewed": sorted((micros(at - v) for v in views), reverse=True)},
                                         sorted((micros(o) for o in orders), reverse=True)),
                   **extra)


def test_segments_that_move_with_time_are_the_time_relative_ones_and_those_referring_to_them() -> None:
    timed = timed_segments(rules_at(NOW))
    assert set(TIMED) <= timed and not set(PLAIN) & timed
    assert {"builtin:churn_risk", "builtin:new_customers", "builtin:cart_abandoners"} <= timed
    assert not {"builtin:vip", "builtin:repeat_buyers", "builtin:window_shoppers"} & timed


def test_the_next_change_is_the_earliest_boundary_a_time_the_profile_holds_reaches() -> None:
    rules = rules_at(NOW)
    # Last ordered 29.5 days ago: "days since <= 30" holds until 31 whole days have passed.
    buyer = profile("p1", first=200 * DAY, last=29 * DAY + 12 * HOUR)
    assert next_change(buyer, rules, NOW) == NOW - (29 * DAY + 12 * HOUR) + 30 * DAY
    # A view 2.5 days ago leaves the 3-day window in half a day; the cart abandoner's checkout in 7 days.
    viewer = profile("p2", views=(2 * DAY + 12 * HOUR, 5 * HOUR), checkout=3 * DAY)
    assert next_change(viewer, rules, NOW) == NOW + 12 * HOUR
    assert next_change(profile("p3"), rules, NOW) is None  # nothing timed about someone with no times
    assert next_change(buyer.model_copy(update={"merged_into": "p9"}), rules, NOW) is None
    # Filed only within the horizon: the next daily run files what is further off.
    assert due(buyer, rules, NOW) is not None and due(profile("p4", first=200 * DAY, last=2 * DAY), rules, NOW) is None


def _population() -> PopulationStats:
    buyers = [profile(f"b{i}", first=300 * DAY, last=i * 7 * DAY, spent=f"{i}0.00") for i in range(1, 12)]
    return PopulationStats.from_sketch(PopulationSketch.of_profiles(buyers, NOW), BuiltinSettings())


spans = st.integers(min_value=0, max_value=200 * 24 * 60).map(lambda minutes: timedelta(minutes=minutes))


@settings(max_examples=200, deadline=None)
@given(first=st.none() | spans, last=st.none() | spans, views=st.lists(spans, max_size=4),
       checkout=st.none() | spans, later=st.integers(min_value=0, max_value=3 * 24 * 60))
def test_no_time_relative_membership_changes_before_the_next_change(
        first: timedelta | None, last: timedelta | None, views: list[timedelta], checkout: timedelta | None,
        later: int) -> None:
    """Soundness: between ``at`` and the next change, every membership is what it is at ``at``."""
    if first is not None and last is not None and last > first:
        first, last = last, first
    shopper = profile("p1", first=first, last=last, views=tuple(views), checkout=checkout)
    population = _population()
    change = next_change(shopper, rules_at(NOW, population), NOW)
    then = NOW + timedelta(minutes=later)
    if change is not None and then >= change:
        return
    assert memberships_of(shopper, rules_at(then, population)) == memberships_of(shopper, rules_at(NOW, population))


# --- the hourly run ----------------------------------------------------------------------------------


def _world() -> tuple[FakeProfileRepository, FakeSegmentStore]:
    repository = FakeProfileRepository()
    shoppers = [
        profile("p_churn", first=300 * DAY, last=179 * DAY + 20 * HOUR),  # crosses 180 days in 4 hours
        profile("p_recent", first=200 * DAY, last=30 * DAY + 2 * HOUR),  # leaves "<= 30 days" in 22 hours
        profile("p_views", views=(2 * DAY + 23 * HOUR, 2 * DAY + 22 * HOUR)),  # leaves the 3-day window soon
        profile("p_cart", checkout=6 * DAY + 18 * HOUR),  # stops abandoning after 7 days
        profile("p_steady", first=100 * DAY, last=50 * DAY, spent="500.00"),  # nothing due for days
        *(profile(f"p_idle{i}") for i in range(20)),
    ]
    for shopper in shoppers:
        repository.profiles[(WS, shopper.profile_id)] = shopper
    store = FakeSegmentStore(repository)
    for sid, definition in {**TIMED, **PLAIN}.items():
        store.put(stored(sid, definition), None)
    return repository, store


def test_hourly_runs_keep_time_relative_segments_current_reading_only_the_profiles_due() -> None:
    repository, store = _world()
    segment_runs, tasks = FakeSegmentRuns(), FakeTaskQueue()
    runs.start_run(segment_runs, tasks, WS, NOW, 1, runs.SCHEDULE)
    tasks.drain(store, segment_runs, lambda: NOW)
    filed = {pid for pids in store.due.values() for pid in pids}
    # Not the idle ones (the steady buyer's recency sits on an RFM quintile edge of this small population).
    assert {"p_churn", "p_recent", "p_views", "p_cart"} <= filed <= {"p_churn", "p_recent", "p_views", "p_cart",
                                                                      "p_steady"}

    read: list[str] = []
    reading = store.profiles_by_id

    def counted(workspace_id: str, profile_ids: Any) -> Any:
        read.extend(profile_ids)
        return reading(workspace_id, profile_ids)

    store.profiles_by_id = counted  # type: ignore[method-assign]
    end = NOW + 23 * HOUR + 30 * timedelta(minutes=1)
    for hour in range(1, 24):
        at = NOW + hour * HOUR + timedelta(minutes=1)
        runs.start_hourly(tasks, [WS], at)
        tasks.drain(store, segment_runs, lambda at=at: at)  # type: ignore[misc]

    rules = runs.load_rules(store, WS, end, runs.current_population(segment_runs, WS))
    timed = timed_segments(rules)
    for (ws, pid), shopper in repository.profiles.items():
        pending = next_change(shopper, rules, hour_of(end))
        if pending is not None and pending <= end:
            continue
        assert store.held(ws, pid).segment_ids & timed == memberships_of(shopper, rules) & timed, pid
    assert "builtin:churn_risk" in store.held(WS, "p_churn").segment_ids
    assert "seg_recent" not in store.held(WS, "p_recent").segment_ids
    assert "seg_refers" in store.held(WS, "p_recent").segment_ids  # a segment referring to a timed one moves too
    assert "builtin:cart_abandoners" not in store.held(WS, "p_cart").segment_ids
    assert set(read) <= filed
    # The hours read are not read again (their entries stay until they expire): the same task once more,
    # delivered twice, reads nothing.
    assert segment_runs.hourly_done(WS) == hour_of(end) - HOUR
    read.clear()
    runs.start_hourly(tasks, [WS], end)
    tasks.drain(store, segment_runs, lambda: end)
    assert read == []
    # Sizes are the run's counts: the hourly runs move members, not sizes.
    for (_, sid), record in store.records.items():
        assert record.growth and record.size == record.growth[-1].size, sid


def test_an_hourly_run_leaves_the_segments_that_do_not_move_with_time_as_held() -> None:
    repository, store = _world()
    segment_runs, tasks = FakeSegmentRuns(), FakeTaskQueue()
    runs.start_run(segment_runs, tasks, WS, NOW, 1, runs.SCHEDULE)
    tasks.drain(store, segment_runs, lambda: NOW)
    # The profile's spend changed, but no refresh ran: the hourly run moves its timed segments only.
    churner = repository.profiles[(WS, "p_churn")]
    repository.profiles[(WS, "p_churn")] = churner.model_copy(update={"total_spent": Decimal("900.00"),
                                                                       "revision": churner.revision + 1})
    at = NOW + 5 * HOUR
    runs.start_hourly(tasks, [WS], at)
    tasks.drain(store, segment_runs, lambda: at)
    held = store.held(WS, "p_churn").segment_ids
    assert "builtin:churn_risk" in held and "seg_big" not in held


def test_a_write_that_moves_no_membership_reads_and_writes_nothing_and_one_that_does_files_its_boundary() -> None:
    repository, store = _world()
    segment_runs, tasks = FakeSegmentRuns(), FakeTaskQueue()
    runs.start_run(segment_runs, tasks, WS, NOW, 1, runs.SCHEDULE)
    tasks.drain(store, segment_runs, lambda: NOW)
    filed = {key: set(pids) for key, pids in store.due.items()}
    steady = repository.profiles[(WS, "p_steady")]
    renamed = steady.model_copy(update={"first_name": "Ada", "revision": steady.revision + 1})
    writes, reads = store.member_writes, store.held_reads
    applied = runs.refresh(store, segment_runs, [ProfileChange(steady, renamed)], NOW + HOUR)
    assert (applied.entered, applied.exited, store.member_writes, store.held_reads) == (0, 0, writes, reads)
    assert store.due == filed

    # Two views: into the browsing windows (one read of its set, the change written), and filed under the
    # hour of its next boundary (unless the write left that hour as it was).
    at = NOW + HOUR
    viewer = renamed.model_copy(update={
        "activity_counts": {"product_viewed": 2}, "revision": renamed.revision + 1,
        "recent": RecentTimes.of({"product_viewed": [micros(at - timedelta(minutes=1)), micros(at - 2 * DAY)]},
                                 renamed.recent.order_times() if renamed.recent else ())})
    applied = runs.refresh(store, segment_runs, [ProfileChange(renamed, viewer)], at)
    assert applied.entered == 2 and store.held_reads == reads + 1
    assert {"seg_browsing", "seg_quiet_viewer"} <= store.held(WS, "p_steady").segment_ids
    rules = runs.load_rules(store, WS, at, runs.current_population(segment_runs, WS))
    change = next_change(viewer, rules, at)
    assert change is not None and change <= at + DAY - timedelta(minutes=1)  # the one-day window's view at most
    assert "p_steady" in store.due[(WS, hour_of(change))] and change < at + HORIZON


def test_the_hourly_schedule_is_the_full_run_at_the_daily_hour_only() -> None:
    daily = NOW.replace(hour=runs.DAILY_RUN_HOUR, minute=0, second=0, microsecond=0)
    assert runs.is_daily(daily) and not runs.is_daily(daily + HOUR)
    assert runs.is_daily(daily.astimezone(timezone(timedelta(hours=2))))  # the same instant elsewhere
    tasks = FakeTaskQueue()
    queued = runs.start_hourly(tasks, [WS, "ws_b"], daily + HOUR + timedelta(minutes=1))
    assert tasks.tasks == queued and {t.hour for t in queued} == {daily + HOUR}


def _crossing_together(count: int) -> tuple[FakeProfileRepository, FakeSegmentStore, datetime]:
    """The world, with ``count`` more buyers who all cross 180 days since their last order within one hour."""
    repository, store = _world()
    crossing = hour_of(NOW) + 5 * HOUR
    for i in range(count):
        last = NOW - (crossing + timedelta(minutes=i % 60) - 180 * DAY)
        shopper = profile(f"p_lapse{i:02d}", first=300 * DAY, last=last)
        repository.profiles[(WS, shopper.profile_id)] = shopper
    return repository, store, crossing


def test_a_chained_hourly_run_decides_the_hour_in_slices_handed_on_and_the_same_as_at_once() -> None:
    decided: dict[bool, dict[str, frozenset[str]]] = {}
    for chained in (False, True):
        repository, store, crossing = _crossing_together(50)
        segment_runs, tasks = FakeSegmentRuns(), FakeTaskQueue()
        runs.start_run(segment_runs, tasks, WS, NOW, 1, runs.SCHEDULE)
        tasks.drain(store, segment_runs, lambda: NOW)
        for hour in range(1, 6):  # the hours before the crossing, read as they end
            at = hour_of(NOW) + hour * HOUR + timedelta(minutes=1)
            runs.start_hourly(tasks, [WS], at, chained=chained)
            tasks.drain(store, segment_runs, lambda at=at: at)  # type: ignore[misc]
        filed = store.due_profiles(WS, crossing)
        assert {f"p_lapse{i:02d}" for i in range(50)} <= set(filed)

        read: list[list[str]] = []
        reading = store.profiles_by_id

        def counted(workspace_id: str, profile_ids: Any, read: list[list[str]] = read,
                    reading: Any = reading) -> Any:
            read.append(list(profile_ids))
            return reading(workspace_id, profile_ids)

        store.profiles_by_id = counted  # type: ignore[method-assign]
        at = crossing + HOUR + timedelta(minutes=1)
        tasks.delays.clear()
        queued = runs.start_hourly(tasks, [WS], at, chained=chained)
        hops = 0
        while tasks.tasks:
            task = tasks.tasks.pop(0)
            runs.run_hour(task, store, segment_runs, lambda at=at: at, tasks)  # type: ignore[misc]
            hops += 1
            if hops == 2:  # the second slice delivered twice: the rest is handed on twice, decided the same
                runs.run_hour(task, store, segment_runs, lambda at=at: at, tasks)  # type: ignore[misc]
        assert segment_runs.hourly_done(WS) == crossing
        assert [pid for pids in read for pid in pids if pid in filed] == [pid for pids in read for pid in pids]
        decided[chained] = {pid: store.held(WS, pid).segment_ids for (_, pid) in repository.profiles}
        if not chained:
            assert hops == 1 and read == [filed] and tasks.delays == [0]
            continue
        slice_size = -(-len(filed) // runs.HOURLY_SLICES)
        assert max(len(pids) for pids in read) == slice_size < len(filed)
        slices = -(-len(filed) // slice_size)
        assert slices <= runs.HOURLY_SLICES and hops == slices + slices - 2  # the twice-delivered slice's rest
        # Each slice after the first is held back, so the hour is spread over half an hour at most.
        delay = int(runs.HOURLY_SLICE_DELAY.total_seconds())
        assert queued[0].chained and tasks.delays[0] == 0 and set(tasks.delays[1:]) == {delay}
        assert (slices - 1) * delay <= 30 * 60
        # Each profile filed is decided once, but the twice-delivered slice's rest is decided twice.
        assert sorted(pid for pids in read for pid in pids) == sorted(filed + filed[slice_size:])
    assert decided[True] == decided[False]
    assert all("builtin:churn_risk" in decided[True][f"p_lapse{i:02d}"] for i in range(50))
