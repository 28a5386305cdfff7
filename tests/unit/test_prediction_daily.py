"""The daily fit on the profiles the day's segment run read (crm.predictions.daily, crm.segments.snapshot), over
the fakes: the same fit and predictions as a read of the table, no read of the table, a wait for the run, and
the table when the run does not come."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal

from crm.adapters.pacing import Meter
from crm.ingestion import apply_event
from crm.models.predictions import FitTask, Prediction, PredictionSettings
from crm.models.profile import Profile
from crm.predictions import predict
from crm.predictions.daily import MOST_WAITS, Later, Rest, fit_daily
from crm.predictions.histories import history_of
from crm.predictions.refresh import HOP_AHEAD_SECONDS, Models, Outcome, run_workspace
from crm.profiles import profile_id_for
from crm.segments import runs
from crm.segments.snapshot import latest_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW, order
from tests.fakes import FakePredictionStore, FakeProfileRepository, FakeSegmentRuns, FakeSegmentStore, FakeTaskQueue

WS = "ws_a"
REAL = Models(fit=predict.fit_workspace, predict=predict.predict)
FEW = PredictionSettings(min_repeat_buyers=5)
RUN_AT = NOW.replace(hour=3, minute=0, second=0, microsecond=0)


class Unread(FakeProfileRepository):
    """A repository whose workspace read fails: the fit must not make it."""

    def workspace_profiles(self, workspace_id: str, segment: int = 0, total_segments: int = 1) -> Iterator[Profile]:
        raise AssertionError("the fit read the table")


def _shop(repository: FakeProfileRepository, shoppers: int = 40, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    ids = []
    for n in range(shoppers):
        email = f"s{n}@example.com"
        for k, days in enumerate(sorted(rng.sample(range(1, 500), rng.randint(1, 5)), reverse=True)):
            apply_event(repository, order(f"{n}-{k}", email=email, total=Decimal(rng.randint(500, 20000)) / 100,
                                          created_at=RUN_AT - timedelta(days=days)), RUN_AT)
        ids.append(profile_id_for(WS, f"email#{email}"))
    return ids


def _world(repository: FakeProfileRepository) -> tuple[FakePredictionStore, FakeSegmentRuns]:
    store = FakePredictionStore(repository)
    store.put_settings(WS, FEW)
    return store, FakeSegmentRuns()


def _segment_run(repository: FakeProfileRepository, segment_runs: FakeSegmentRuns, at: datetime,
                 shares: int = 3) -> None:
    tasks = FakeTaskQueue()
    runs.start_run(segment_runs, tasks, WS, at, shares, runs.SCHEDULE)
    tasks.drain(FakeSegmentStore(repository), segment_runs, lambda: at + timedelta(minutes=5))


def _twins() -> tuple[FakeProfileRepository, Unread]:
    """The same shop twice: one to fit from the table, one whose table may not be read."""
    table, unread = FakeProfileRepository(), Unread()
    assert _shop(table) == _shop(unread)
    return table, unread


def test_the_fit_on_the_runs_profiles_is_the_fit_on_the_table_and_reads_no_table() -> None:
    table, unread = _twins()
    from_table, _ = _world(table)
    from_file, segment_runs = _world(unread)
    _segment_run(unread, segment_runs, RUN_AT)
    now = RUN_AT + timedelta(minutes=20)
    task = FitTask(fit_workspace=WS, queued_at=RUN_AT)
    expected = run_workspace(from_table, table, REAL, WS, now)
    outcome = fit_daily(task, now, from_file, unread, segment_runs, REAL)
    assert isinstance(outcome, Outcome) and outcome.read_from.startswith("run_")
    assert expected.fit is not None and expected.fit.status == "fitted"
    assert outcome.fit == expected.fit  # the same parameters to the last bit, whatever order the shares gave
    assert (outcome.profiles, outcome.written) == (expected.profiles, expected.written) == (40, 40)
    predictions = {pid: p.prediction for (_, pid), p in table.profiles.items()}
    assert {pid: p.prediction for (_, pid), p in unread.profiles.items()} == predictions


def test_a_profile_written_after_the_run_read_it_is_predicted_on_what_it_holds_now() -> None:
    _, unread = _twins()
    store, segment_runs = _world(unread)
    _segment_run(unread, segment_runs, RUN_AT)
    buyer = profile_id_for(WS, "email#s7@example.com")
    read = unread.get_profile(WS, buyer)
    apply_event(unread, order("late", email="s7@example.com", total=Decimal("80.00"),  # after the run's read
                              created_at=RUN_AT + timedelta(minutes=10)), RUN_AT + timedelta(minutes=10))
    now = RUN_AT + timedelta(minutes=20)
    outcome = fit_daily(FitTask(fit_workspace=WS, queued_at=RUN_AT), now, store, unread, segment_runs, REAL)
    assert isinstance(outcome, Outcome) and outcome.fit is not None
    held = unread.get_profile(WS, buyer)
    assert read is not None and held is not None and held.orders_count == read.orders_count + 1
    # The day's fit (learnt from the run's read), applied to the profile with its late order.
    expected = REAL.predict(outcome.fit, {buyer: history_of(held)}, now)[buyer]
    on_the_read = REAL.predict(outcome.fit, {buyer: history_of(read)}, now)[buyer]
    assert held.prediction is not None and expected.expected_orders_365d != on_the_read.expected_orders_365d
    assert held.prediction.model_copy(update={"currency": None}) == expected


def test_the_fit_waits_for_the_days_run_then_reads_it() -> None:
    _, unread = _twins()
    store, segment_runs = _world(unread)
    _segment_run(unread, segment_runs, RUN_AT - timedelta(days=1))  # yesterday's: not the day's
    task = FitTask(fit_workspace=WS, queued_at=RUN_AT)
    waiting = fit_daily(task, RUN_AT + timedelta(seconds=1), store, unread, segment_runs, REAL)
    assert waiting == Later(task.model_copy(update={"waited": 1}))
    assert store.fit(WS) is None
    _segment_run(unread, segment_runs, RUN_AT)
    outcome = fit_daily(task, RUN_AT + timedelta(minutes=30), store, unread, segment_runs, REAL)
    assert isinstance(outcome, Outcome) and outcome.written == 40


def test_without_the_days_run_the_fit_reads_the_table_once_it_has_waited_its_most() -> None:
    repository = FakeProfileRepository()
    _shop(repository)
    store, segment_runs = _world(repository)
    task = FitTask(fit_workspace=WS, queued_at=RUN_AT, waited=MOST_WAITS - 1)
    assert fit_daily(task, RUN_AT, store, repository, segment_runs, REAL) == Later(
        task.model_copy(update={"waited": MOST_WAITS}))
    outcome = fit_daily(task.model_copy(update={"waited": MOST_WAITS}), RUN_AT, store, repository, segment_runs,
                        REAL)
    assert isinstance(outcome, Outcome) and outcome.read_from == "table" and outcome.written == 40


def test_a_run_whose_work_file_is_gone_leaves_the_fit_to_the_table_at_once() -> None:
    repository = FakeProfileRepository()
    _shop(repository)
    store, segment_runs = _world(repository)
    _segment_run(repository, segment_runs, RUN_AT)
    del segment_runs.kept[max(segment_runs.kept)]  # the last share's: the shares before it were read already
    outcome = fit_daily(FitTask(fit_workspace=WS, queued_at=RUN_AT), RUN_AT, store, repository, segment_runs, REAL)
    assert isinstance(outcome, Outcome) and outcome.read_from == "table" and outcome.written == 40


def test_a_fit_queued_by_hand_reads_the_table_at_once() -> None:
    repository = FakeProfileRepository()
    _shop(repository)
    store, segment_runs = _world(repository)
    _segment_run(repository, segment_runs, RUN_AT)
    outcome = fit_daily(FitTask(fit_workspace=WS), RUN_AT, store, repository, segment_runs, REAL)
    assert isinstance(outcome, Outcome) and outcome.read_from == "table"


def test_the_snapshot_is_every_profile_the_run_read_merged_ones_too() -> None:
    repository = FakeProfileRepository()
    ids = _shop(repository, shoppers=12)
    merged = repository.profiles[(WS, ids[0])].model_copy(update={"merged_into": ids[1]})
    repository.profiles[(WS, ids[0])] = merged
    _, segment_runs = _world(repository)
    assert latest_snapshot(segment_runs, WS, RUN_AT) is None  # no run yet
    _segment_run(repository, segment_runs, RUN_AT, shares=4)
    snapshot = latest_snapshot(segment_runs, WS, RUN_AT)
    assert snapshot is not None and snapshot.taken_at == RUN_AT
    assert sorted(p.profile_id for p in snapshot.profiles) == sorted(ids)
    assert latest_snapshot(segment_runs, WS, RUN_AT + timedelta(seconds=1)) is None  # older than asked


class Metered(FakePredictionStore):
    """Each prediction written a unit on the meter, as DynamoDB would report a small profile item's write."""

    def __init__(self, profiles: FakeProfileRepository, meter: Meter) -> None:
        super().__init__(profiles)
        self.meter = meter

    def write_prediction(self, profile: Profile, prediction: Prediction) -> None:
        super().write_prediction(profile, prediction)
        self.meter.consumed(1)


def _paced(repository: FakeProfileRepository, units_a_hop: int) -> tuple[Metered, FakeSegmentRuns, Meter]:
    # A clock that stands still: each hop runs ahead by all it writes, HOP_AHEAD_SECONDS' worth at most.
    meter = Meter(per_second=units_a_hop / HOP_AHEAD_SECONDS, clock=lambda: 0.0)
    store = Metered(repository, meter)
    store.put_settings(WS, FEW)
    return store, FakeSegmentRuns(), meter


def _ahead(meter: Meter) -> Callable[[], Callable[[], int]]:
    def pace() -> Callable[[], int]:
        start = meter.reading()
        return lambda: meter.pause_since(start)
    return pace


def _until_done(task: FitTask, store: Metered, repository: FakeProfileRepository, segment_runs: FakeSegmentRuns,
                meter: Meter, now: datetime) -> list[Rest]:
    """Each message as the worker takes it (a meter reading of its own), every rest delivered in turn."""
    rests = []
    while isinstance(outcome := fit_daily(task, now, store, repository, segment_runs, REAL, pace=_ahead(meter)),
                     Rest):
        rests.append(outcome)
        task = outcome.task
    return rests


@settings(max_examples=12, deadline=None)
@given(units_a_hop=st.integers(min_value=1, max_value=45))
def test_a_paced_fit_writes_what_one_pass_writes_each_once_in_hops_a_minute_ahead_at_most(units_a_hop: int) -> None:
    table, unread = _twins()
    from_table, _ = _world(table)
    store, segment_runs, meter = _paced(unread, units_a_hop)
    _segment_run(unread, segment_runs, RUN_AT)
    now = RUN_AT + timedelta(minutes=20)
    run_workspace(from_table, table, REAL, WS, now)
    rests = _until_done(FitTask(fit_workspace=WS, queued_at=RUN_AT), store, unread, segment_runs, meter, now)
    assert len(rests) == -(-40 // units_a_hop) - 1  # a hop a minute's units, the last one done
    assert all(r.outcome.written == units_a_hop for r in rests)
    assert store.writes == from_table.writes == 40  # none twice
    assert {pid: p.prediction for (_, pid), p in unread.profiles.items()} == {
        pid: p.prediction for (_, pid), p in table.profiles.items()}


def test_a_rest_delivered_again_writes_nothing_twice_and_a_rest_of_a_replaced_fit_stops() -> None:
    repository = FakeProfileRepository()
    _shop(repository)
    store, segment_runs, meter = _paced(repository, units_a_hop=15)
    _segment_run(repository, segment_runs, RUN_AT)
    now = RUN_AT + timedelta(minutes=20)
    first = fit_daily(FitTask(fit_workspace=WS, queued_at=RUN_AT), now, store, repository, segment_runs, REAL,
                      pace=_ahead(meter))
    assert isinstance(first, Rest) and first.task.read_from == first.outcome.read_from
    second = fit_daily(first.task, now, store, repository, segment_runs, REAL, pace=_ahead(meter))
    assert isinstance(second, Rest) and store.writes == 30
    # The first rest delivered again: the profiles the second hop wrote are found newer and not written again
    # (they wrote no units either), the ones after them are; the second hop's own rest then finds them written.
    again = fit_daily(first.task, now, store, repository, segment_runs, REAL, pace=_ahead(meter))
    assert isinstance(again, Outcome) and again.written == 10 and store.writes == 40
    after = fit_daily(second.task, now, store, repository, segment_runs, REAL, pace=_ahead(meter))
    assert isinstance(after, Outcome) and after.written == 0 and store.writes == 40
    store.put_fit(store.fits[WS].model_copy(update={"fitted_at": now + timedelta(days=1)}))  # the next day's fit
    stopped = fit_daily(first.task, now, store, repository, segment_runs, REAL, pace=_ahead(meter))
    assert isinstance(stopped, Outcome) and stopped.profiles == 0 and store.writes == 40


def test_a_fit_that_read_the_table_writes_at_once_paced_or_not() -> None:
    repository = FakeProfileRepository()
    _shop(repository)
    store, segment_runs, meter = _paced(repository, units_a_hop=5)
    outcome = fit_daily(FitTask(fit_workspace=WS), RUN_AT, store, repository, segment_runs, REAL,
                        pace=_ahead(meter))
    assert isinstance(outcome, Outcome) and outcome.read_from == "table" and outcome.written == 40


def test_a_rest_whose_files_are_gone_writes_the_rest_from_the_table_at_once() -> None:
    repository = FakeProfileRepository()
    _shop(repository)
    store, segment_runs, meter = _paced(repository, units_a_hop=10)
    _segment_run(repository, segment_runs, RUN_AT)
    first = fit_daily(FitTask(fit_workspace=WS, queued_at=RUN_AT), RUN_AT, store, repository, segment_runs, REAL,
                      pace=_ahead(meter))
    assert isinstance(first, Rest)
    segment_runs.kept.clear()
    rest = fit_daily(first.task, RUN_AT, store, repository, segment_runs, REAL, pace=_ahead(meter))
    assert isinstance(rest, Outcome) and rest.written == 30 and store.writes == 40
