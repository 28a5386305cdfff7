"""`make bench`: what the predictions functions ask of AWS, counted, for bench/cost.py's bill.

bench/predictions.py times the models; this script counts the requests around them. On moto's mock_aws with
the stack provisioned from template.yaml, a workspace of synthetic profiles (bench/segments.py's generator,
written as segment_runs writes them, with their order times) goes through the real ``crm.predictions.refresh``
on ``DynamoPredictionStore`` and ``DynamoProfileRepository``, metered by ingest_path's meter:

1. the daily run, first at NOW, then on each of the next ``--days`` days, reading the profiles from the day's
   segment run's work files (crm.predictions.daily; the segment run itself is segment_runs' to measure and is
   taken out of the counts): the first fit writes every profile's
   prediction; the later ones, the steady state, write only what moved past the precision each figure is kept
   to (docs/predictions-in-product.md). The month is 30 of their mean. Between two runs the store takes
   its orders of a day (its history's own rate over the last 90 days), each profile refreshed with the kept
   fit as the worker does, unmetered: the runs after see what a live store's would.
   **Before** (labelled, the same run), the same profiles each in a workspace of their own: "reads the
   table", the fit reading every profile itself through the workspace index (23396a8; its predictions must
   equal the work file's, else exit 1); "to the day", reading the table under the write rule of 4759afa
   (every figure to a fixed step, the next order date to the day, money to 2 %).
2. the refresh after an order: profiles that just took an order predicted again with the kept fit (what the
   worker does for each OrderPlaced and OrderRefunded the bus hands it); the fit's read, once a batch of
   orders, is counted apart.

Requests and units per profile (daily) and per refreshed order transfer to AWS; cost.py scales them to the
reference store's profiles and orders and prices them with the Lambda time stated here. Times are this
machine's (the models' CPU time per profile is what the daily run's Lambda time is scaled from).

    .venv/bin/python bench/predictions_requests.py                  # 1,000 profiles, about a minute alone
    .venv/bin/python bench/predictions_requests.py --profiles 10000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from crm.adapters.predictions import DynamoPredictionStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.segment_runs import DynamoSegmentRuns
from crm.adapters.segments import DynamoSegmentStore
from crm.models.predictions import FitTask, Prediction
from crm.models.profile import RecentTimes
from crm.predictions import predict, refresh
from crm.predictions.daily import fit_daily
from crm.predictions.histories import order_times
from crm.predictions.refresh import Models, Outcome, refresh_profiles, run_workspace
from crm.recent import micros, with_time
from crm.segments import runs
from crm_local import moto_patches
from crm_local.template import load_stack
from figures import Counts, per, record
from ingest_path import REGION, TEMPLATE, Bench, add, fake_aws_environment, requests_in, set_up
from moto import mock_aws
from segment_runs import InProcessQueue, Workspace, _order, _profile_item, batch_write, populate
from segments import NOW, WORKSPACE

PROFILES = 1_000
REFRESHED = 100
RATE_DAYS = 90  # between two runs the store takes its orders a day of these last days (its history's own rate)
DAYS = 4
SEED = 17
BEFORE_WORKSPACE = f"{WORKSPACE}-before"
TABLE_WORKSPACE = f"{WORKSPACE}-table"
BATCH_READ: tuple[str, ...] = ("req", "dynamodb", "BatchGetItem")


def moved_to_the_day(held: Prediction | None, new: Prediction) -> bool:
    """Before: crm.predictions.refresh.moved at 4759afa. A probability by 0.01, an expected count by 0.05, money
    by 2 % (at least 0.50), the next order date by a day: that date slides with the day of the run, so every
    shopper expected back within a year was written daily."""
    def step(old: Decimal | None, fresh: Decimal | None, by: Decimal, share: Decimal = Decimal(0)) -> bool:
        return old is not fresh if old is None or fresh is None else abs(fresh - old) >= max(by, abs(old) * share)

    if held is None or (held.status, held.reason, held.model, held.currency) != (
            new.status, new.reason, new.model, new.currency):
        return True
    old, fresh = held.next_order_expected_at, new.next_order_expected_at
    if old is None or fresh is None:
        if old is not fresh:
            return True
    elif abs(fresh - old) >= timedelta(days=1):
        return True
    return (any(step(getattr(held, n), getattr(new, n), Decimal("0.01")) for n in ("p_alive", "churn_probability"))
            or any(step(getattr(held, n), getattr(new, n), Decimal("0.05"))
                   for n in ("expected_orders_90d", "expected_orders_365d"))
            or any(step(getattr(held, n), getattr(new, n), Decimal("0.50"), Decimal("0.02"))
                   for n in ("clv", "expected_order_value")))


@contextmanager
def write_rule(rule: Callable[[Prediction | None, Prediction], bool] | None) -> Iterator[None]:
    """Run crm.predictions.refresh under another write rule (the labelled before), then put its own back."""
    own = refresh.moved
    refresh.moved = rule or own  # type: ignore[assignment]
    try:
        yield
    finally:
        refresh.moved = own


class Timed:
    """The models' own time (fit and predict), apart from the requests around them."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def models(self) -> Models:
        def fit(*args: Any) -> Any:
            started = time.process_time()
            try:
                return predict.fit_workspace(*args)
            finally:
                self.seconds += time.process_time() - started

        def predicted(*args: Any) -> Any:
            started = time.process_time()
            try:
                return predict.predict(*args)
            finally:
                self.seconds += time.process_time() - started

        return Models(fit=fit, predict=predicted)


def measured(bench: Bench, label: str, work: Any) -> tuple[Counts, Outcome, float]:
    timed = Timed()
    mark = bench.meter.mark()
    started = time.perf_counter()
    outcome = work(timed.models())
    wall = time.perf_counter() - started
    counts = bench.meter.since(mark)
    print(f"  {label:<34} {outcome.profiles:>7,} profiles {outcome.written:>7,} written "
          f"{requests_in(counts):>8,.0f} requests  models {timed.seconds:6.2f} s CPU  wall {wall:6.1f} s")
    return counts, outcome, timed.seconds


@dataclass
class Daily:
    """A workspace's daily runs after the first fit, summed."""

    counts: Counts
    profiles: int
    written: int
    cpu_s: float
    first: Counts


def orders_a_day(workspace: Workspace) -> int:
    """The generated store's orders a day over its last RATE_DAYS (about 4 at 1,000 profiles): the rate its
    history was fitted at. The reference store's (a tenth of its profiles a day) would be a store changing
    its ways overnight, and every refit would move with it."""
    since = NOW - timedelta(days=RATE_DAYS)
    return round(sum(1 for p in workspace.profiles.values() for at in order_times(p) if at > since) / RATE_DAYS)


@dataclass
class Fit:
    """How a design's daily fit runs: ``before`` what happens ahead of it, unmeasured (another bench's to
    measure); ``run`` the fit itself, measured."""

    run: Callable[[Models, str, datetime], Outcome]
    before: Callable[[str, datetime], None] = lambda workspace_id, at: None


def table_read(store: DynamoPredictionStore, profiles: DynamoProfileRepository) -> Fit:
    """Before (labelled, the same run): the fit reads every live profile from the table, as at 23396a8."""
    return Fit(lambda models, workspace_id, at: run_workspace(store, profiles, models, workspace_id, at))


def from_the_segment_run(bench: Bench, store: DynamoPredictionStore, profiles: DynamoProfileRepository) -> Fit:
    """Now: the day's segment run reads the profiles (unmetered: segment_runs measures it), and the fit, queued at
    the run's hour, reads its work files (crm.predictions.daily)."""
    table = bench.outputs["TableName"]
    segment_store = DynamoSegmentStore(table)
    segment_runs = DynamoSegmentRuns(table, bench.outputs["ArchiveBucketName"])

    def segment_run(workspace_id: str, at: datetime) -> None:
        tasks = InProcessQueue()
        with bench_unmetered(bench):
            runs.start_run(segment_runs, tasks, workspace_id, at, 1, runs.SCHEDULE)
            tasks.drain(segment_store, segment_runs, lambda: at)

    def fit(models: Models, workspace_id: str, at: datetime) -> Outcome:
        outcome = fit_daily(FitTask(fit_workspace=workspace_id, queued_at=at), at, store, profiles, segment_runs,
                            models)
        assert isinstance(outcome, Outcome) and outcome.read_from != "table", "the fit did not find the run's files"
        return outcome

    return Fit(fit, segment_run)


@contextmanager
def bench_unmetered(bench: Bench) -> Iterator[None]:
    """What happens inside is taken back out of the meter's counts (another bench's to measure)."""
    mark = bench.meter.mark()
    try:
        yield
    finally:
        for key, value in bench.meter.since(mark).items():
            bench.meter.counts[key] -= value  # type: ignore[assignment]


def daily_runs(bench: Bench, store: DynamoPredictionStore, profiles: DynamoProfileRepository, workspace_id: str,
               profile_ids: Sequence[str], a_day: int, days: int, label: str, fit: Fit) -> Daily:
    """The first fit, then ``days`` daily runs, measured; between two runs ``a_day`` profiles take an order
    and are refreshed as the worker refreshes them (unmetered: the refresh is measured apart)."""
    fit.before(workspace_id, NOW)
    first, outcome, _ = measured(bench, f"{label}: run 1 (first fit)",
                                 lambda models: fit.run(models, workspace_id, NOW))
    total, written, cpu = Counts(), 0, 0.0
    for day in range(1, days + 1):
        ordered = NOW + timedelta(days=day - 1, hours=9)
        buyers = random.Random(SEED + day).sample(sorted(profile_ids), a_day)
        took_an_order(profiles, workspace_id, buyers, ordered, SEED + day)
        refresh_profiles(store, profiles, Timed().models(), workspace_id, buyers, ordered + timedelta(minutes=1))
        at = NOW + timedelta(days=day)
        fit.before(workspace_id, at)
        counts, outcome, seconds = measured(bench, f"{label}: run {day + 1} ({day} d later)",
                                            lambda models, at=at: fit.run(models, workspace_id, at))
        total, written, cpu = add(total, counts), written + outcome.written, cpu + seconds
    return Daily(total, outcome.profiles * days, written, cpu, first)


def same_predictions(profiles: DynamoProfileRepository, one: str, other: str) -> bool:
    """Whether two workspaces of the same generated profiles (the same ids) hold the same prediction on each."""
    def held(workspace_id: str) -> dict[str, Any]:
        return {p.profile_id: p.prediction for p in profiles.workspace_profiles(workspace_id)}

    return held(one) == held(other)


def took_an_order(profiles: DynamoProfileRepository, workspace_id: str, profile_ids: Sequence[str], at: datetime,
                  seed: int) -> None:
    """These profiles took one more order, on the profile as the table holds it (its stored prediction
    kept) and with the order's time kept as the upsert keeps it (unmetered: the upsert is profile_events' to
    measure)."""
    rng = random.Random(seed)
    held = profiles.get_profiles(workspace_id, profile_ids)
    changed = []
    for pid in profile_ids:
        profile = held[pid]
        recent = profile.recent or RecentTimes()
        kept = RecentTimes.of(recent.activity_times(), with_time(recent.order_times(), micros(at)))
        changed.append(profile.model_copy(update={**_order(profile, rng, at), "recent": kept, "updated_at": at,
                                                  "revision": profile.revision + 1}))
    batch_write(profiles.table, (_profile_item(profile) for profile in changed))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profiles", type=int, default=PROFILES)
    parser.add_argument("--refreshed", type=int, default=REFRESHED, help="profiles refreshed after an order")
    parser.add_argument("--days", type=int, default=DAYS, help="daily runs after the first fit, averaged")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print("Predictions functions on moto: crm.predictions.refresh on the provisioned stack, metered")
    fake_aws_environment()
    moto_patches.install()
    with mock_aws():
        bench = set_up(load_stack(TEMPLATE, region=REGION))
        table_name = bench.outputs["TableName"]
        workspace = populate(table_name, args.profiles, timeline=0)
        populate(table_name, args.profiles, timeline=0, workspace_id=BEFORE_WORKSPACE)
        populate(table_name, args.profiles, timeline=0, workspace_id=TABLE_WORKSPACE)
        store, profiles = DynamoPredictionStore(table_name), DynamoProfileRepository(table_name)
        ids, a_day = list(workspace.profiles), orders_a_day(workspace)
        print(f"  between two runs {a_day} orders (the store's rate over its last {RATE_DAYS} days), refreshed")
        with write_rule(moved_to_the_day):
            before = daily_runs(bench, store, profiles, BEFORE_WORKSPACE, ids, a_day, args.days,
                                "before (to the day)", table_read(store, profiles))
        table_runs = daily_runs(bench, store, profiles, TABLE_WORKSPACE, ids, a_day, args.days,
                                "before (reads the table)", table_read(store, profiles))
        daily = daily_runs(bench, store, profiles, WORKSPACE, ids, a_day, args.days, "now (the run's work file)",
                           from_the_segment_run(bench, store, profiles))
        same = same_predictions(profiles, TABLE_WORKSPACE, WORKSPACE)
        print(f"  the same predictions from the table and from the run's work file: {same}")
        if not same:
            print("!!! the fit on the run's work file predicted otherwise than on the table", file=sys.stderr)
            return 1
        buyers = sorted(pid for pid, p in workspace.profiles.items() if p.orders_count)[:args.refreshed]
        at = NOW + timedelta(days=args.days, hours=3)
        took_an_order(profiles, WORKSPACE, buyers, at, SEED)
        # The worker reads the workspace's kept fit once a batch (a minute of orders, template.yaml): that read
        # is counted apart, and cost.py spreads it over the batches the template's window makes.
        mark = bench.meter.mark()
        kept = store.fit(WORKSPACE)
        fit_read = bench.meter.since(mark)
        refresh, refreshed, refresh_cpu = measured(
            bench, "refresh after an order", lambda models: refresh_profiles(
                store, profiles, models, WORKSPACE, buyers, at + timedelta(seconds=5), kept))
    # The batch's profiles are read in one BatchGetItem: that request is the batch's, as the fit's read is (its
    # units are each profile's, per order).
    batch_read: Counts = {key: value for key, value in refresh.items() if key == BATCH_READ}
    per_order = {key: value for key, value in refresh.items() if key != BATCH_READ}
    for label, runs_of in (("before (to the day)", before), ("before (reads the table)", table_runs),
                           ("now (the run's work file)", daily)):
        n = runs_of.profiles
        print(f"  per profile a day, {label}, runs 2-{args.days + 1}: {requests_in(runs_of.counts) / n:.3f} "
              f"requests, {runs_of.counts.get(('unit', 'rru'), 0) / n:.3f} RRU, "
              f"{runs_of.counts.get(('unit', 'wru'), 0) / n:.3f} WRU; written {runs_of.written / n:.1%}; "
              f"models {runs_of.cpu_s / n * 1e6:.0f} us CPU a profile")
    print(f"  per order refreshed: {requests_in(per_order) / len(buyers):.2f} requests, "
          f"{refresh.get(('unit', 'rru'), 0) / len(buyers):.2f} RRU, "
          f"{refresh.get(('unit', 'wru'), 0) / len(buyers):.2f} WRU; written {refreshed.written}/{len(buyers)}; "
          f"once a batch: the profiles' read {requests_in(batch_read):.0f} request, the kept fit's "
          f"{requests_in(fit_read):.0f} request, {fit_read.get(('unit', 'rru'), 0):.1f} RRU")
    print(f"(predictions_requests ran in {time.perf_counter() - started:.0f} s)")
    n = daily.profiles
    record("predictions_requests", {
        "profiles": args.profiles, "refreshed": len(buyers), "days": args.days,
        "daily_per_profile": per(daily.counts, n), "daily_written_share": daily.written / n,
        "first_run_per_profile": per(daily.first, args.profiles),
        "daily_models_cpu_s_per_profile": daily.cpu_s / n,
        "refresh_per_order": per(per_order, len(buyers)),
        "refresh_models_cpu_s_per_order": refresh_cpu / len(buyers),
        "refresh_fit_read": per(fit_read, 1), "refresh_profiles_read": per(batch_read, 1),
        # The same run's before (moved_to_the_day), for cost.py's comparison; its models' time is the same work.
        "daily_before_write_rule": {"daily_per_profile": per(before.counts, before.profiles),
                                    "daily_written_share": before.written / before.profiles,
                                    "daily_models_cpu_s_per_profile": before.cpu_s / before.profiles},
        # The same run's before of the fit reading the table itself (at 23396a8), for cost.py's comparison.
        "daily_before_table_read": {"daily_per_profile": per(table_runs.counts, table_runs.profiles),
                                    "daily_written_share": table_runs.written / table_runs.profiles,
                                    "daily_models_cpu_s_per_profile": table_runs.cpu_s / table_runs.profiles},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
