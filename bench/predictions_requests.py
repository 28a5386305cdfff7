"""`make bench`: what the predictions functions ask of AWS, counted, for bench/cost.py's bill.

bench/predictions.py times the models; this script counts the requests around them. On moto's mock_aws with
the stack provisioned from template.yaml, a workspace of synthetic profiles (bench/segments.py's generator,
written as segment_runs writes them, with their order times) goes through the real ``crm.predictions.refresh``
on ``DynamoPredictionStore`` and ``DynamoProfileRepository``, metered by ingest_path's meter:

1. the daily run twice, a day apart: the first fit writes every profile's prediction; the second, the steady
   state, writes only what moved (docs/predictions-in-product.md). The month is 30 of the second.
2. the refresh after an order: profiles that just took an order predicted again with the kept fit (what the
   worker does for each OrderPlaced and OrderRefunded the bus hands it); the fit's read, once a batch of
   orders, is counted apart.

Requests and units per profile (daily) and per refreshed order transfer to AWS; cost.py scales them to the
reference store's profiles and orders and prices them with the Lambda time stated here. Times are this
machine's (the models' CPU time per profile is what the daily run's Lambda time is scaled from).

    .venv/bin/python bench/predictions_requests.py                  # 1,000 profiles, about half a minute alone
    .venv/bin/python bench/predictions_requests.py --profiles 10000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from crm.adapters.predictions import DynamoPredictionStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.predictions import predict
from crm.predictions.refresh import Models, Outcome, refresh_profiles, run_workspace
from crm_local import moto_patches
from crm_local.template import load_stack
from figures import Counts, per, record
from ingest_path import REGION, TEMPLATE, Bench, fake_aws_environment, requests_in, set_up
from moto import mock_aws
from segment_runs import Workspace, _order, _profile_item, batch_write, populate
from segments import NOW, WORKSPACE

PROFILES = 1_000
REFRESHED = 100
SEED = 17


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


def took_an_order(table_name: str, workspace: Workspace, profile_ids: Sequence[str], at: datetime) -> None:
    """These profiles took one more order (unmetered: the upsert is profile_events' to measure)."""
    rng = random.Random(SEED)
    for pid in profile_ids:
        profile = workspace.profiles[pid]
        workspace.profiles[pid] = profile.model_copy(update={**_order(profile, rng, at), "updated_at": at,
                                                             "revision": profile.revision + 1})
    batch_write(table_name, (_profile_item(workspace.profiles[pid]) for pid in profile_ids))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profiles", type=int, default=PROFILES)
    parser.add_argument("--refreshed", type=int, default=REFRESHED, help="profiles refreshed after an order")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print("Predictions functions on moto: crm.predictions.refresh on the provisioned stack, metered")
    fake_aws_environment()
    moto_patches.install()
    with mock_aws():
        bench = set_up(load_stack(TEMPLATE, region=REGION))
        table_name = bench.outputs["TableName"]
        workspace = populate(table_name, args.profiles, timeline=0)
        store, profiles = DynamoPredictionStore(table_name), DynamoProfileRepository(table_name)
        day = NOW + timedelta(days=1)
        first, _, _ = measured(bench, "daily run 1 (first fit)", lambda models: run_workspace(
            store, profiles, models, WORKSPACE, NOW))
        daily, daily_outcome, daily_cpu = measured(bench, "daily run 2 (a day later)", lambda models: run_workspace(
            store, profiles, models, WORKSPACE, day))
        buyers = sorted(pid for pid, p in workspace.profiles.items() if p.orders_count)[:args.refreshed]
        at = day + timedelta(hours=3)
        took_an_order(table_name, workspace, buyers, at)
        # The worker reads the workspace's kept fit once a batch (a minute of orders, template.yaml): that read
        # is counted apart, and cost.py spreads it over the batches the template's window makes.
        mark = bench.meter.mark()
        kept = store.fit(WORKSPACE)
        fit_read = bench.meter.since(mark)
        refresh, refreshed, refresh_cpu = measured(
            bench, "refresh after an order", lambda models: refresh_profiles(
                store, profiles, models, WORKSPACE, buyers, at + timedelta(seconds=5), kept))
    n = daily_outcome.profiles
    print(f"  per profile, daily run 2: {requests_in(daily) / n:.3f} requests, "
          f"{daily.get(('unit', 'rru'), 0) / n:.3f} RRU, {daily.get(('unit', 'wru'), 0) / n:.3f} WRU; "
          f"written {daily_outcome.written / n:.1%} (run 1: {requests_in(first) / n:.3f} requests)")
    print(f"  per order refreshed: {requests_in(refresh) / len(buyers):.2f} requests, "
          f"{refresh.get(('unit', 'rru'), 0) / len(buyers):.2f} RRU, "
          f"{refresh.get(('unit', 'wru'), 0) / len(buyers):.2f} WRU; written {refreshed.written}/{len(buyers)}; "
          f"the kept fit read once a batch: {requests_in(fit_read):.0f} request, "
          f"{fit_read.get(('unit', 'rru'), 0):.1f} RRU")
    print(f"(predictions_requests ran in {time.perf_counter() - started:.0f} s)")
    record("predictions_requests", {
        "profiles": n, "refreshed": len(buyers),
        "daily_per_profile": per(daily, n), "daily_written_share": daily_outcome.written / n,
        "first_run_per_profile": per(first, n),
        "daily_models_cpu_s_per_profile": daily_cpu / n,
        "refresh_per_order": per(refresh, len(buyers)), "refresh_models_cpu_s_per_order": refresh_cpu / len(buyers),
        "refresh_fit_read": per(fit_read, 1),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
