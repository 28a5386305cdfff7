"""The table's DynamoDB units priced as provisioned capacity with auto scaling (template.yaml's
``TableCapacity=provisioned``), for bench/cost.py: the same counted units the on-demand lines price, laid out
over the day, with the capacity target tracking would keep and the share it would throttle.

Nothing is measured here. The month's units come from bench/cost.py's lines (counted by the other scripts); when
in the day they arrive is assumed (``DIURNAL_UTC``) and so is how auto scaling reacts (the ``SCALE_*`` rules,
from AWS's documentation of DynamoDB auto scaling). A day is stepped minute by minute, twice (the second day
starts with the capacity the first left), and the second is the month's every day.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

# Provisioned capacity, us-east-1, USD a unit-hour. Billed hourly: each hour is priced at the highest capacity
# set in it (assumed; conservative for an hour with a scale-in).
PER_UNIT_HOUR = {"wru": 0.00065, "rru": 0.00013}
# When in the day (UTC) a store's traffic arrives, relative weights by hour. Assumed: the simulation gives its
# events offsets from one another, not a time of day. A US store: evenings in the Americas (00:00-03:00 UTC)
# busiest, about 1.6x the day's mean, nights (07:00-10:00 UTC) about 0.3x. docs/scale.md's 3x busiest hours
# are a month's (a newsletter day); this is an ordinary day.
DIURNAL_UTC = (1.60, 1.55, 1.40, 1.10, 0.80, 0.55, 0.40, 0.32, 0.30, 0.32, 0.40, 0.55,
               0.70, 0.85, 0.95, 1.05, 1.10, 1.15, 1.20, 1.25, 1.30, 1.40, 1.50, 1.55)
# Target tracking on the table's consumed/provisioned utilisation (template.yaml's scaling policies: 70 %):
# capacity goes up after SCALE_OUT_MINUTES minutes above the target (CloudWatch's alarm: two datapoints of a
# minute), to what was consumed over the target, and takes SCALE_OUT_TAKES minutes to apply; it goes down after
# SCALE_IN_MINUTES minutes below the target less 20 points, to what was consumed over the target, at most once
# an hour (DynamoDB allows 4 decreases at any time a day and one more for each hour without one: 27).
SCALE_OUT_MINUTES, SCALE_OUT_TAKES = 2, 1
SCALE_IN_MINUTES, SCALE_IN_MARGIN, SCALE_IN_EVERY = 15, 0.20, 60
# Unused capacity is kept for bursts, up to five minutes of it (DynamoDB's burst capacity).
BURST_SECONDS = 300
MINUTES = 24 * 60
DAYS_PER_MONTH = 30


@dataclass(frozen=True)
class Load:
    """A month of one component's units of one kind (``rru`` or ``wru``) and when they come: spread over the day
    by ``DIURNAL_UTC`` (``at_hour`` None), or a burst each day at ``at_hour`` (``every_hour``: at the start of every
    hour) at ``per_second`` units a second until its units are done."""

    component: str
    unit: str
    monthly: float
    at_hour: int | None = None
    per_second: float = 0.0
    every_hour: bool = False
    # Chained (the daily segment run on a provisioned table): the day's units come in this many hops, each all at
    # once (a task reads its share as fast as the table serves it), one every ``units a hop / per_second``
    # seconds from ``after_seconds`` past the hour: the queue holds each next hop back (crm.adapters.pacing).
    hops: int = 0
    after_seconds: float = 0.0

    @property
    def burst(self) -> bool:
        return self.at_hour is not None or self.every_hour


@dataclass
class Dimension:
    """One scaled dimension (the table's reads or writes) through a day."""

    unit: str
    minimum: float
    maximum: float
    target: float
    capacity_by_hour: list[float] = field(default_factory=list)
    offered: dict[bool, float] = field(default_factory=lambda: {False: 0.0, True: 0.0})  # by burst or not
    throttled: dict[bool, float] = field(default_factory=lambda: {False: 0.0, True: 0.0})
    longest_wait_minutes: int = 0
    # Each burst component's units offered and refused (what ``throttled[True]`` sums).
    burst_offered: dict[str, float] = field(default_factory=dict)
    burst_throttled: dict[str, float] = field(default_factory=dict)

    @property
    def dollars_a_month(self) -> float:
        return sum(self.capacity_by_hour) * PER_UNIT_HOUR[self.unit] * DAYS_PER_MONTH

    def count(self, steady: float, bursts: float, by_component: dict[str, float], refused: float) -> None:
        """A minute's new units offered, and those refused shared out in proportion to what each offered."""
        new = steady + bursts
        for burst, part in ((False, steady), (True, bursts)):
            self.offered[burst] += part
            self.throttled[burst] += refused * part / new if new else 0.0
        for component, part in by_component.items():
            self.burst_offered[component] = self.burst_offered.get(component, 0.0) + part
            self.burst_throttled[component] = self.burst_throttled.get(component, 0.0) + (
                refused * part / new if new else 0.0)

    def component_throttled_share(self, component: str) -> float:
        offered = self.burst_offered.get(component, 0.0)
        return self.burst_throttled.get(component, 0.0) / offered if offered else 0.0

    def throttled_share(self, burst: bool | None = None) -> float:
        kinds = (False, True) if burst is None else (burst,)
        offered = sum(self.offered[k] for k in kinds)
        return sum(self.throttled[k] for k in kinds) / offered if offered else 0.0


def minute_demand(loads: Iterable[Load]) -> tuple[list[float], list[float]]:
    """Units a minute through a day: (steady, bursts)."""
    steady, bursts = [0.0] * MINUTES, [0.0] * MINUTES
    weight = sum(DIURNAL_UTC)
    for load in loads:
        daily = load.monthly / DAYS_PER_MONTH
        if not load.burst:
            for minute in range(MINUTES):
                steady[minute] += daily * DIURNAL_UTC[minute // 60] / weight / 60
            continue
        starts = range(0, MINUTES, 60) if load.every_hour else [60 * (load.at_hour or 0)]
        each = daily / len(starts)
        if load.hops:
            hop = each / load.hops
            for start in starts:
                for n in range(load.hops):
                    second = load.after_seconds + n * hop / load.per_second
                    bursts[(start + int(second // 60)) % MINUTES] += hop
            continue
        for start in starts:
            left, minute = each, start
            while left > 1e-9:
                now = min(left, load.per_second * 60)
                bursts[minute % MINUTES] += now
                left, minute = left - now, minute + 1
    return steady, bursts


def simulate(unit: str, loads: Sequence[Load], minimum: float, maximum: float, target: float) -> Dimension:
    """A day of target tracking for these loads; the units it cannot serve in a minute wait (retried: the SDK,
    the adapters' backoff, the queues) and are offered again the next minute, first."""
    steady, bursts = minute_demand(load for load in loads if load.unit == unit)
    components = {load.component for load in loads if load.unit == unit and load.burst}
    by_component = {c: minute_demand(load for load in loads if load.unit == unit and load.component == c)[1]
                    for c in sorted(components)}
    dimension = Dimension(unit, minimum, maximum, target)
    capacity = max(minimum, min(maximum, math.ceil(steady[0] / 60 / target)))
    credits, backlog, waited = 0.0, 0.0, 0
    consumed: list[float] = []  # units a second, minute by minute
    pending: tuple[int, float] | None = None  # (minute it applies, capacity)
    last_decrease = -SCALE_IN_EVERY
    for day in range(2):
        hourly = [0.0] * 24
        for minute in range(MINUTES):
            t = day * MINUTES + minute
            if pending and pending[0] <= t:
                capacity, pending = pending[1], None
            new = steady[minute] + bursts[minute]
            available = capacity * 60 + credits
            served = min(backlog + new, available)
            refused = max(0.0, new - max(0.0, available - backlog))  # the backlog goes first
            backlog = backlog + new - served
            credits = min(BURST_SECONDS * capacity, credits + capacity * 60 - served)
            waited = waited + 1 if backlog > 1e-6 else 0
            consumed.append(served / 60)
            hourly[minute // 60] = max(hourly[minute // 60], capacity)
            if day == 1:
                dimension.longest_wait_minutes = max(dimension.longest_wait_minutes, waited)
                dimension.count(steady[minute], bursts[minute],
                                {c: demand[minute] for c, demand in by_component.items()}, refused)
            if pending is None and len(consumed) >= SCALE_OUT_MINUTES and all(
                    c > target * capacity for c in consumed[-SCALE_OUT_MINUTES:]):
                wanted = min(maximum, math.ceil(max(consumed[-SCALE_OUT_MINUTES:]) / target))
                if wanted > capacity:
                    pending = (t + SCALE_OUT_TAKES, wanted)
            elif (pending is None and t - last_decrease >= SCALE_IN_EVERY and len(consumed) >= SCALE_IN_MINUTES
                  and all(c < (target - SCALE_IN_MARGIN) * capacity for c in consumed[-SCALE_IN_MINUTES:])):
                wanted = max(minimum, math.ceil(max(consumed[-SCALE_IN_MINUTES:]) / target))
                if wanted < capacity:
                    capacity, last_decrease = wanted, t
        dimension.capacity_by_hour = hourly
    return dimension


@dataclass(frozen=True)
class Bounds:
    """What template.yaml sets for TableCapacity=provisioned: the parameters' defaults and the policies' target."""

    minimum: dict[str, float]  # by unit: rru, wru
    maximum: dict[str, float]
    target: float
    indexes: int
    task_units_per_second: float  # SegmentTasksFunction's pace (crm.adapters.pacing); 0: not paced
    default_mode: str = "on-demand"  # the TableCapacity a deployment gets unless told
    fit_units_per_second: float = 0.0  # PredictionsFunction's pace for the daily fit's writes; 0: not paced


def bounds_of(sam: dict[str, Any]) -> Bounds:
    parameters, resources = sam.get("Parameters", {}), sam["Resources"]
    targets = {float(r["Properties"]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"])
               for r in resources.values() if r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"}
    if len(targets) != 1:
        raise ValueError(f"expected one target utilisation for the table's scaling policies, found {targets}")
    [target] = targets

    def default(name: str) -> float:
        return float(parameters[name]["Default"])

    indexes = sum(len(r["Properties"].get("GlobalSecondaryIndexes", [])) for r in resources.values()
                  if r["Type"] == "AWS::DynamoDB::Table")
    def pace_of(function: str) -> float:
        pace = resources.get(function, {}).get("Properties", {}).get("Environment", {}).get("Variables", {}).get(
            "DYNAMODB_UNITS_PER_SECOND", "0")
        if isinstance(pace, dict):  # !If [ProvisionedTable, provisioned's, on demand's]
            pace = pace["Fn::If"][1]
        return float(pace)

    return Bounds({"rru": default("TableMinReadCapacity"), "wru": default("TableMinWriteCapacity")},
                  {"rru": default("TableMaxReadCapacity"), "wru": default("TableMaxWriteCapacity")},
                  target / 100, indexes, pace_of("SegmentTasksFunction"),
                  str(parameters.get("TableCapacity", {}).get("Default", "on-demand")),
                  pace_of("PredictionsFunction"))


def paced(loads: Iterable[Load], per_second: float, component: str) -> list[Load]:
    """The component's bursts at no more than ``per_second`` units a second, reads and writes together (the
    pacer counts every unit): each kind spread over the run's paced length."""
    loads = list(loads)
    run = [load for load in loads if load.burst and load.component == component]
    if not run or not per_second:
        return loads
    seconds = max(sum(load.monthly for load in run) / per_second,
                  max(load.monthly / load.per_second for load in run))  # a month of runs' seconds
    return [replace(load, per_second=load.monthly / seconds) if load in run else load for load in loads]


def chained(loads: Iterable[Load], per_second: float, component: str, hops: int,
            write_weight: float = 1.0, hop_seconds: float = 0.0, write_hop_seconds: float = 0.0) -> list[Load]:
    """The component's daily run chained at ``per_second`` units a second, reads and writes together (the meter
    counts every unit, a write unit as ``write_weight``: crm.adapters.pacing.WRITE_UNIT_WEIGHT): a first phase of
    ``hops`` hops that read (the sketch reads every profile), then a second of as many that write (the
    evaluation; its few reads counted with the first phase's, which makes the read hops a little larger than
    they are). With ``hop_seconds``, a read hop stops once it has read that many seconds of the pace
    (crm.segments.runs: a hop smaller than a bucket), so the first phase has as many hops as its units make,
    never fewer than ``hops``; with ``write_hop_seconds``, so does the second (a writing hop stops after that
    many seconds of the pace's units, at a profile boundary)."""
    loads = list(loads)
    run = {load.unit: load for load in loads if load.burst and load.component == component and not load.every_hour}
    if not run or not per_second:
        return loads
    reading = run["rru"].monthly / DAYS_PER_MONTH / per_second if "rru" in run else 0.0
    read_hops = max(hops, math.ceil(reading / hop_seconds)) if hop_seconds else hops
    writing = run["wru"].monthly / DAYS_PER_MONTH / (per_second / write_weight) if "wru" in run else 0.0
    write_hops = max(hops, math.ceil(writing / write_hop_seconds)) if write_hop_seconds else hops
    return [replace(load, per_second=per_second / write_weight, hops=write_hops, after_seconds=reading)
            if load.unit == "wru" and run.get(load.unit) is load
            else replace(load, per_second=per_second, hops=read_hops) if run.get(load.unit) is load
            else load for load in loads]


def sliced(loads: Iterable[Load], slices: int, spacing_seconds: float, component: str,
           extra_rru: float = 0.0) -> list[Load]:
    """The component's hourly runs each in ``slices`` slices, one every ``spacing_seconds`` from the hour's start
    (crm.segments.runs.HOURLY_SLICES: a chained hourly run hands each next slice on through the queue, delayed),
    each all at once; ``extra_rru`` a month more reads for what each slice handed on reads again."""
    loads = list(loads)

    def laid(load: Load) -> Load:
        monthly = load.monthly + (extra_rru if load.unit == "rru" else 0.0)
        each = monthly / DAYS_PER_MONTH / 24 / slices
        return replace(load, monthly=monthly, hops=slices, per_second=each / spacing_seconds)

    return [laid(load) if load.every_hour and load.component == component else load for load in loads]


def read_phase_seconds(loads: Iterable[Load], component: str) -> float:
    """How long a chained daily run's first phase reads (seconds past its hour): what the daily fit waits for."""
    return max((load.after_seconds for load in loads
                if load.burst and load.component == component and not load.every_hour and load.hops), default=0.0)


def paced_after(loads: Iterable[Load], per_second: float, component: str, hop_seconds: float,
                after_seconds: float, write_weight: float = 1.0) -> list[Load]:
    """The component's daily burst from ``after_seconds`` past its hour at ``per_second`` units a second (a write
    unit counted as ``write_weight``), each kind in hops of ``hop_seconds`` of the pace's units, each all at
    once (the daily fit's writes on a provisioned table, crm.predictions.daily: it writes until a hop's units
    ahead, and the queue holds the rest back as long)."""
    loads = list(loads)
    if not per_second:
        return loads
    run = [load for load in loads if load.burst and load.component == component and not load.every_hour]

    def laid(load: Load) -> Load:
        pace = per_second / write_weight if load.unit == "wru" else per_second
        return replace(load, per_second=pace, after_seconds=after_seconds,
                       hops=max(1, math.ceil(load.monthly / DAYS_PER_MONTH / (pace * hop_seconds))))

    return [laid(load) if load in run else load for load in loads]


def read_hops(loads: Iterable[Load], component: str) -> int:
    """How many hops a day's chained run of the component reads in (``chained``)."""
    return max((load.hops for load in loads if load.burst and load.component == component and load.unit == "rru"
                and not load.every_hour), default=0)


def write_hops(loads: Iterable[Load], component: str) -> int:
    """How many hops a day's chained run of the component writes in (``chained``)."""
    return max((load.hops for load in loads if load.burst and load.component == component and load.unit == "wru"
                and not load.every_hour), default=0)


def run_hours(loads: Iterable[Load], component: str) -> float:
    """How long a day's run of the component takes, first unit to last (hours)."""
    run = [load for load in loads if load.burst and load.component == component and not load.every_hour]
    return max((load.after_seconds + load.monthly / DAYS_PER_MONTH / load.per_second for load in run),
               default=0.0) / 3600


def paced_seconds(loads: Iterable[Load], per_second: float, component: str) -> float:
    """How much longer a month of the component's runs takes paced than not."""
    run = [load for load in loads if load.burst and load.component == component]
    if not run or not per_second:
        return 0.0
    unpaced = max(load.monthly / load.per_second for load in run)
    return max(0.0, sum(load.monthly for load in run) / per_second - unpaced)


def index_dollars(bounds: Bounds) -> float:
    """The index at its minimum all month: its entries are keys only, written when a profile item is first
    written and read by the daily runs' Query (~1k RRU a run at 100k profiles: within a unit's burst capacity)."""
    return sum(bounds.minimum[unit] * PER_UNIT_HOUR[unit] for unit in PER_UNIT_HOUR) * 24 * DAYS_PER_MONTH \
        * bounds.indexes
