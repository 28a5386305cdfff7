"""bench/capacity.py's model of a provisioned table under target tracking, and bench/cost.py's provisioned lines:
the arithmetic, on made-up loads (the figures themselves come from `make bench`, never asserted here)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from types import ModuleType

import pytest
from crm_local.template import read_sam
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import TEMPLATE
from tests.unit.test_bench_cost import _found, _load


@pytest.fixture(scope="module")
def capacity() -> ModuleType:
    return _load("capacity")


@pytest.fixture(scope="module")
def cost() -> ModuleType:
    return _load("cost")


def test_steady_traffic_is_served_at_the_target_and_priced_by_the_hour(capacity: ModuleType) -> None:
    load = capacity.Load("steady", "wru", 30 * 24 * 3600 * 7.0)  # 7 units a second on the day's mean
    day = capacity.simulate("wru", [load], 1, 1000, 0.7)
    assert day.throttled_share() == 0.0 and day.longest_wait_minutes == 0
    mean = 7.0 * 24 / sum(capacity.DIURNAL_UTC)
    busiest = math.ceil(mean * max(capacity.DIURNAL_UTC) / 0.7)
    for hour, provisioned in enumerate(day.capacity_by_hour):
        # At least the hour's demand, at most what the busiest hour wanted at the target (scaling in waits for
        # utilisation under 50 %, so the capacity lags the evening's fall).
        assert mean * capacity.DIURNAL_UTC[hour] <= provisioned <= busiest, hour
    assert min(day.capacity_by_hour) < busiest / 2  # it does come down at night
    assert day.dollars_a_month == pytest.approx(sum(day.capacity_by_hour) * 0.00065 * 30)


def test_a_burst_past_the_capacity_is_throttled_and_waits_and_pacing_it_throttles_less(capacity: ModuleType) -> None:
    steady = capacity.Load("steady", "rru", 30 * 24 * 3600 * 5.0)
    burst = capacity.Load("run", "rru", 30 * 150_000, at_hour=3, per_second=1500)
    unpaced = capacity.simulate("rru", [steady, burst], 1, 1000, 0.7)
    assert unpaced.throttled_share(burst=True) > 0.5 and unpaced.longest_wait_minutes > 0
    assert unpaced.throttled_share(burst=False) > 0  # the steady traffic shares the table with the run
    paced = capacity.simulate("rru", capacity.paced([steady, burst], 40, "run"), 1, 1000, 0.7)
    assert paced.throttled_share(burst=True) < unpaced.throttled_share(burst=True)
    assert paced.throttled_share(burst=False) <= unpaced.throttled_share(burst=False)
    assert max(paced.capacity_by_hour) < max(unpaced.capacity_by_hour)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.1, 50), st.floats(0, 500_000), st.integers(0, 23), st.floats(5, 3000))
def test_capacity_stays_within_its_bounds_and_shares_are_shares(capacity: ModuleType, mean: float, units: float,
                                                                hour: int, per_second: float) -> None:
    loads = [capacity.Load("steady", "wru", 30 * 24 * 3600 * mean),
             capacity.Load("run", "wru", 30 * units, at_hour=hour, per_second=per_second)]
    day = capacity.simulate("wru", loads, 2, 400, 0.7)
    assert all(2 <= c <= 400 for c in day.capacity_by_hour)
    assert 0.0 <= day.throttled_share() <= 1.0
    assert day.offered[False] == pytest.approx(24 * 3600 * mean, rel=1e-6)
    assert day.offered[True] == pytest.approx(units, rel=1e-6, abs=1e-6)


def test_the_bounds_are_the_templates(capacity: ModuleType) -> None:
    bounds = capacity.bounds_of(read_sam(TEMPLATE))
    assert bounds.target == 0.7 and bounds.indexes == 1
    assert bounds.minimum == {"rru": 1.0, "wru": 1.0} and bounds.maximum == {"rru": 1000.0, "wru": 1000.0}
    assert bounds.task_units_per_second > 0 and bounds.default_mode == "provisioned"
    assert bounds.fit_units_per_second > 0


def test_the_provisioned_line_sits_above_the_unchanged_headline(cost: ModuleType, capacity: ModuleType,
                                                                tmp_path: Path) -> None:
    from tests.unit.test_bench_cost import TEMPLATE as SMALL_TEMPLATE

    template = tmp_path / "template.yaml"
    template.write_text(SMALL_TEMPLATE)
    wiring = cost.wiring_of(template)
    bounds = capacity.Bounds({"rru": 1, "wru": 1}, {"rru": 1000, "wru": 1000}, 0.7, 1, 0.0)
    lines = cost.bill(_found(), wiring, 2.0)
    out = io.StringIO()
    total = cost.print_bill(_found(), wiring, 2.0, out, capacity=bounds)
    *_, provisioned, last = out.getvalue().splitlines()
    assert last.startswith(f"reference store all in: ${total:.2f} per month (target $15.00)")
    loads = [load for line in lines for load in line.loads]
    on_demand = sum(load.monthly * {"rru": 0.125, "wru": 0.625}[load.unit] / 1e6 for load in loads)
    # The upsert's counted units and the console's assumed reads (the only scripts _found recorded)
    console = cost.CONSOLE_USERS * cost.CONSOLE_VIEWS_A_DAY * cost.CONSOLE_WORKING_DAYS * cost.CONSOLE_PAGE_RRU
    assert on_demand == pytest.approx((500_000 + console) * 0.125 / 1e6 + 2_000_000 * 0.625 / 1e6)
    days = [capacity.simulate(unit, loads, 1, 1000, 0.7) for unit in ("rru", "wru")]
    expected = total - on_demand + sum(d.dollars_a_month for d in days) + capacity.index_dollars(bounds)
    assert provisioned == f"reference store all in, TableCapacity=provisioned: ${expected:.2f} per month"


def test_a_paced_run_spreads_its_reads_and_writes_over_one_paced_length(capacity: ModuleType) -> None:
    reads = capacity.Load("run", "rru", 30 * 150_000, at_hour=3, per_second=1500)
    writes = capacity.Load("run", "wru", 30 * 30_000, at_hour=3, per_second=300)
    other = capacity.Load("fit", "rru", 30 * 50_000, at_hour=2, per_second=500)
    paced = {(load.component, load.unit): load.per_second
             for load in capacity.paced([reads, writes, other], 240, "run")}
    # 180,000 units a run at 240 a second: 750 s, each kind over all of it; the other burst untouched.
    assert paced[("run", "rru")] == pytest.approx(150_000 / 750)
    assert paced[("run", "wru")] == pytest.approx(30_000 / 750)
    assert paced[("fit", "rru")] == 500
    assert capacity.paced_seconds([reads, writes, other], 240, "run") == pytest.approx(30 * (750 - 100))
    # A pace the run never reaches changes nothing.
    assert capacity.paced([reads, writes], 10_000, "run") == [reads, writes]
    assert capacity.paced_seconds([reads, writes], 10_000, "run") == 0.0


def test_a_chained_run_comes_in_hops_at_its_pace_reads_then_writes(capacity: ModuleType) -> None:
    reads = capacity.Load("run", "rru", 30 * 160_000, at_hour=3, per_second=1600)
    writes = capacity.Load("run", "wru", 30 * 32_000, at_hour=3, per_second=320)
    hourly = capacity.Load("run", "rru", 30 * 24 * 300, every_hour=True, per_second=3)
    laid_out = capacity.chained([reads, writes, hourly], 20, "run", 32)
    chained_reads, chained_writes, untouched = laid_out
    assert untouched == hourly
    # 5,000-unit read hops every 250 s, then 1,000-unit write hops every 50 s from the reads' end (8,000 s).
    _, read_minutes = capacity.minute_demand([chained_reads])
    _, write_minutes = capacity.minute_demand([chained_writes])
    assert sum(read_minutes) == pytest.approx(160_000) and sum(write_minutes) == pytest.approx(32_000)
    assert max(read_minutes) == pytest.approx(5_000) and read_minutes.index(5_000) == 180
    assert write_minutes.index(next(m for m in write_minutes if m)) == 180 + 8_000 // 60
    assert capacity.run_hours(laid_out, "run") == pytest.approx((160_000 + 32_000) / 20 / 3600)
    # Unpaced (no pace set) nothing changes.
    assert capacity.chained([reads, writes], 0, "run", 32) == [reads, writes]


def test_a_chained_runs_reading_hops_follow_the_hop_size_its_writing_hops_the_buckets(capacity: ModuleType) -> None:
    reads = capacity.Load("run", "rru", 30 * 160_000, at_hour=3, per_second=1600)
    writes = capacity.Load("run", "wru", 30 * 32_000, at_hour=3, per_second=320)
    by_bucket = capacity.chained([reads, writes], 20, "run", 32)
    by_minute = capacity.chained([reads, writes], 20, "run", 32, hop_seconds=60)
    # 160,000 units at 20 a second are 8,000 s: 134 hops of a minute of the pace (1,200 units), not 32 of 5,000.
    assert capacity.read_hops(by_bucket, "run") == 32 and capacity.read_hops(by_minute, "run") == 134
    assert [load.hops for load in by_minute if load.unit == "wru"] == [32]
    _, read_minutes = capacity.minute_demand([by_minute[0]])
    assert sum(read_minutes) == pytest.approx(160_000) and max(read_minutes) < 1_200 * 2
    assert capacity.run_hours(by_minute, "run") == capacity.run_hours(by_bucket, "run")
    # A hop never reads more than a bucket: a small run keeps one hop a bucket.
    assert capacity.read_hops(capacity.chained([reads, writes], 20, "run", 32, hop_seconds=3_600), "run") == 32


def test_a_chained_runs_writing_hops_follow_the_hop_size_when_asked(capacity: ModuleType) -> None:
    reads = capacity.Load("run", "rru", 30 * 160_000, at_hour=3, per_second=1600)
    writes = capacity.Load("run", "wru", 30 * 32_000, at_hour=3, per_second=320)
    by_bucket = capacity.chained([reads, writes], 20, "run", 32, 5, hop_seconds=60)
    by_minute = capacity.chained([reads, writes], 20, "run", 32, 5, hop_seconds=60, write_hop_seconds=60)
    # 32,000 WRU at 4 a second (a write counted as five units) are 8,000 s: 134 hops of a minute (240 WRU).
    assert capacity.write_hops(by_bucket, "run") == 32 and capacity.write_hops(by_minute, "run") == 134
    assert capacity.read_hops(by_minute, "run") == capacity.read_hops(by_bucket, "run")
    _, write_minutes = capacity.minute_demand([by_minute[1]])
    assert sum(write_minutes) == pytest.approx(32_000) and max(write_minutes) < 240 * 2
    assert capacity.run_hours(by_minute, "run") == capacity.run_hours(by_bucket, "run")
    # A hop never writes more than a bucket: a small run keeps one hop a bucket.
    small = capacity.chained([reads, writes], 20, "run", 32, 5, hop_seconds=60, write_hop_seconds=3_600)
    assert capacity.write_hops(small, "run") == 32


def test_with_provisioned_the_templates_default_the_last_line_prices_it_and_the_line_above_on_demand(
        cost: ModuleType, capacity: ModuleType, tmp_path: Path) -> None:
    from tests.unit.test_bench_cost import TEMPLATE as SMALL_TEMPLATE

    template = tmp_path / "template.yaml"
    template.write_text(SMALL_TEMPLATE)
    wiring = cost.wiring_of(template)
    lines = cost.bill(_found(), wiring, 2.0)
    on_demand_total = sum(line.dollars for line in lines)
    out = io.StringIO()
    bounds = capacity.Bounds({"rru": 1, "wru": 1}, {"rru": 1000, "wru": 1000}, 0.7, 1, 20.0, "provisioned", 5.0)
    headline = cost.print_bill(_found(), wiring, 2.0, out, capacity=bounds)
    *_, other, last = out.getvalue().splitlines()
    assert other == f"reference store all in, TableCapacity=on-demand: ${on_demand_total:.2f} per month"
    assert last.startswith(f"reference store all in: ${headline:.2f} per month (target $15.00)")
    assert headline != pytest.approx(on_demand_total)
    assert "before: the run chained on its queue, 20 units a second" in out.getvalue()
    assert "before: the same, a write unit counted as 5 read units" in out.getvalue()
    assert "before: the same; the fit's writes after the run's read phase at 5 units a second" in out.getvalue()
    assert ("before: the same, the run's reading hops 60 s of the pace each, writing hops a bucket each"
            in out.getvalue())
    assert "before: the same, the run's reading and writing hops 60 s of the pace each" in out.getvalue()
    assert "now: the same, each hourly run in 12 slices 150 s apart" in out.getvalue()


def test_the_fits_writes_come_after_the_runs_read_phase_in_hops_of_a_minute_at_its_pace(
        capacity: ModuleType) -> None:
    reads = capacity.Load("run", "rru", 30 * 160_000, at_hour=3, per_second=1600)
    writes = capacity.Load("run", "wru", 30 * 32_000, at_hour=3, per_second=320)
    fit = capacity.Load("fit", "wru", 30 * 2_900, at_hour=3, per_second=29)
    hourly = capacity.Load("run", "rru", 30 * 24 * 300, every_hour=True, per_second=3)
    run_chained = capacity.chained([reads, writes, fit, hourly], 20, "run", 32)
    after = capacity.read_phase_seconds(run_chained, "run")
    assert after == pytest.approx(160_000 / 20)  # the reads' 8,000 s; the hourly run is not the daily one
    *_, paced_fit, untouched = capacity.paced_after(run_chained, 5, "fit", 60, after)
    assert untouched == hourly
    assert paced_fit.hops == math.ceil(2_900 / 300)  # a minute at 5 units a second: 300 units a hop
    _, minutes = capacity.minute_demand([paced_fit])
    assert sum(minutes) == pytest.approx(2_900)
    assert minutes.index(next(m for m in minutes if m)) == 180 + 8_000 // 60
    # Hops a little under a minute apart (equal hops of at most a minute's units): two in a minute at most.
    assert max(minutes) <= 2 * 2_900 / paced_fit.hops + 1e-6
    assert capacity.paced_after(run_chained, 0, "fit", 60, after) == run_chained  # not paced: as it was
    # A write unit counted as five: 25 units a second are 5 write units, the same hops.
    *_, weighted, _ = capacity.paced_after(run_chained, 25, "fit", 60, after, 5)
    assert (weighted.per_second, weighted.hops) == (5, paced_fit.hops)


def test_each_bursts_throttled_share_is_its_own_and_the_chained_hops_fit_the_burst_credits(
        capacity: ModuleType) -> None:
    steady = capacity.Load("steady", "rru", 30 * 24 * 3600 * 10.0)
    run = capacity.Load("run", "rru", 30 * 150_000, at_hour=3, per_second=1500)
    fit = capacity.Load("fit", "rru", 30 * 50_000, at_hour=12, per_second=500)
    unpaced = capacity.simulate("rru", [steady, run, fit], 1, 1000, 0.7)
    assert unpaced.component_throttled_share("run") > 0.5 and unpaced.component_throttled_share("fit") > 0.5
    offered = sum(unpaced.burst_offered.values())
    assert offered == pytest.approx(unpaced.offered[True])
    assert sum(unpaced.burst_throttled.values()) == pytest.approx(unpaced.throttled[True])
    # Chained at 20 units a second in 32 hops of ~4,700 units: each hop within what the table keeps unused.
    chained = capacity.simulate("rru", capacity.chained([steady, run, fit], 20, "run", 32), 1, 1000, 0.7)
    assert chained.component_throttled_share("run") < 0.05 < unpaced.component_throttled_share("run")
    assert chained.component_throttled_share("unknown") == 0.0


def test_a_chained_run_writes_at_its_pace_divided_by_the_write_weight_after_its_reads(
        capacity: ModuleType) -> None:
    loads = [capacity.Load("run", "rru", 30 * 6_000, at_hour=3, per_second=600.0),
             capacity.Load("run", "wru", 30 * 1_200, at_hour=3, per_second=120.0)]
    reads, writes = capacity.chained(loads, 20.0, "run", 32, write_weight=5)
    assert reads.per_second == 20.0 and writes.per_second == 4.0
    assert writes.after_seconds == 300.0  # 6,000 read units at 20 a second come first
    assert capacity.run_hours([reads, writes], "run") == pytest.approx((300 + 1_200 / 4) / 3600)


def test_hourly_runs_in_slices_spread_each_hours_units_and_keep_the_table_scaled_in(capacity: ModuleType) -> None:
    steady = capacity.Load("steady", "rru", 30 * 24 * 3600 * 2.0)
    hourly = [capacity.Load("hourly", "rru", 30 * 24 * 600.0, every_hour=True, per_second=6.0),
              capacity.Load("hourly", "wru", 30 * 24 * 120.0, every_hour=True, per_second=1.2)]
    laid = capacity.sliced([steady, *hourly], 12, 150.0, "hourly", extra_rru=30 * 24 * 11 * 5.0)
    assert laid[0] == steady
    reads, writes = laid[1:]
    assert reads.monthly == pytest.approx(30 * 24 * (600 + 55)) and writes.monthly == hourly[1].monthly
    assert (reads.hops, writes.hops) == (12, 12)
    assert reads.per_second == pytest.approx(655 / 12 / 150) and writes.per_second == pytest.approx(10 / 150)
    _, bursts = capacity.minute_demand([reads])
    # Each hour's units land in the minutes its twelve slices start (one every 150 s: 0, 2, 5, 7, ... 27).
    assert sum(bursts[:60]) == pytest.approx(655) and sum(1 for b in bursts[:60] if b) == 12
    assert max(m for m in range(60) if bursts[m]) == 27
    at_once = capacity.simulate("rru", [steady, hourly[0]], 1, 1000, 0.7)
    spread = capacity.simulate("rru", [steady, reads], 1, 1000, 0.7)
    assert spread.dollars_a_month < at_once.dollars_a_month
