"""Keeping segments current: the incremental path (a profile changed) and the recomputation run.

A profile's own change re-decides its memberships within seconds (``refresh``, fed by the table's stream).
What changes with time alone (days since, windows) or with other profiles (RFM quintiles, the VIP
threshold) is settled by a *run*, on a schedule or on request, over every profile of a workspace at one
instant, fanned out over shares of the workspace's profiles (one worker per share, through a queue; the
store reads a share from the workspace's own index, never the whole table):

1. sketch: each share reads its profiles with their sets (the run's only read of them), summarises its
   buyers (a mergeable PopulationSketch) and keeps what it read in the run's S3 work file. The share that
   finishes last merges the sketches into the population statistics, which the run and then the
   incremental path use, and queues phase 2.
2. evaluate: each share decides every segment for each of its kept profiles at the run's instant and writes
   only the differences. The share that finishes last records each segment's computation and ends the run.

A *chained* run (the schedule's daily run on a provisioned table) does each phase one share after another, each
task queueing the next share, held back by the pause its own share asks (crm.adapters.pacing), before it counts
its own: the run keeps to a pace of capacity units without any task waiting. Each share goes in hops of about a
minute of the pace, in either phase, each hop's part recorded beside the run by the first delivery to record it.

Both paths decide through :func:`crm.segments.membership.change_for` and write under the version of the
profile's set of segments, so neither overwrites a decision it has not seen. Every task may be delivered
twice: a share is counted once, a phase moves on once, and a write that changes nothing is not made.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import reduce
from itertools import islice

from crm.models.profile import Profile
from crm.models.segment_runs import EvaluatedPart, HourlyTask, RunPart, RunPhase, RunTask, SegmentRun
from crm.models.segments import GROWTH_KEPT, GrowthPoint, HeldSegments
from crm.ports import ConcurrentUpdate, SegmentRuns, SegmentStore, TaskQueue
from crm.segments.boundaries import HORIZON, HOUR, due, hour_of, timed_segments
from crm.segments.builtin import BY_ID, PopulationSketch, PopulationStats, SegmentContext
from crm.segments.feed import ProfileChange
from crm.segments.inputs import moves_nothing
from crm.segments.membership import Rules, change_for, memberships_of, memberships_of_all, rules_for

# A share's profiles are decided this many at a time: columns of this length, and no more held at once.
EVALUATED_TOGETHER = 2_000
# A chained evaluation's hop asks whether it has spent its minute of the pace after this many profiles (a
# profile writes some 0.2 WRU on a day's run: about 5 s of the pace at 4 WRU a second between questions).
EVALUATED_PER_HOP_CHECK = 100
# A run whose worker died holds the workspace's lock this long; then the next schedule starts afresh. A chained
# run (the daily run on a provisioned table) takes about three hours at the reference store's size (its writes
# paced at a fifth of its reads, crm.adapters.pacing.WRITE_UNIT_WEIGHT): twice that, so a run under way is not
# taken for dead.
RUN_STALE_AFTER = timedelta(hours=6)
# No more shares than the workspace index has buckets (crm.adapters.keys.WORKSPACE_BUCKETS): a share reads
# whole buckets.
MOST_SHARES = 32
CONFLICT_RETRIES = 3
# A chained task's answer to "how long should the next share wait?": the seconds it ran ahead of its pace
# (crm.adapters.pacing measures it; at most SQS's 900 s). No task waits itself: the queue holds the next one.
Pause = Callable[[], int]
# A chained task's answer to "has this hop consumed its minute of the pace?", asked at each page a sketch reads and
# every EVALUATED_PER_HOP_CHECK profiles an evaluation writes: then it records its part and hands the rest of the
# share on (a bucket read or written whole would ask hours of the pace's capacity within a minute, and more pause
# than a queue can hold past ~550,000 profiles).
Spent = Callable[[], bool]


def _no_pause() -> int:
    return 0


def _never_spent() -> bool:
    return False


def shares_for(profiles: int, profiles_per_share: int) -> int:
    """How many workers read a workspace: enough that each reads about ``profiles_per_share`` profiles."""
    return max(1, min(MOST_SHARES, math.ceil(profiles / profiles_per_share)))


def new_run_id(now: datetime) -> str:
    return f"run_{now:%Y%m%dT%H%M%SZ}_{secrets.token_hex(4)}"


def load_rules(store: SegmentStore, workspace_id: str, now: datetime, population: PopulationStats) -> Rules:
    context = SegmentContext(now=now, settings=store.settings(workspace_id), population=population)
    return rules_for(store.custom_segments(workspace_id), context)


def population_of(stats: str | None) -> PopulationStats:
    """Population statistics as a run keeps them (JSON); empty before the first run settled any."""
    return PopulationStats.model_validate_json(stats) if stats else PopulationStats()


def current_population(runs: SegmentRuns, workspace_id: str) -> PopulationStats:
    """The statistics of the workspace's last run."""
    return population_of(runs.population(workspace_id))


SCHEDULE = "schedule"


def start_run(runs: SegmentRuns, tasks: TaskQueue, workspace_id: str, now: datetime, shares: int,
              reason: str, chained: bool = False) -> SegmentRun:
    """Start a run of the workspace, or return the one already under way (one at a time per workspace).
    A chained run queues its first share only: each share hands the next one on (``RunTask.chained``).

    A request that finds a run under way (other than the schedule's own) asks for another run after it:
    the one under way may have read the segments before the change that prompted the request. The run
    answered then names its successor in ``next_run_id`` once it is done."""
    run = SegmentRun(workspace_id=workspace_id, run_id=new_run_id(now), now=now, shares=shares, reason=reason,
                     started_at=now)
    started = runs.start(run, now - RUN_STALE_AFTER)
    if started.run_id == run.run_id:
        tasks.send(_phase_tasks(workspace_id, run.run_id, RunPhase.SKETCH, shares, chained))
    elif reason != SCHEDULE:
        runs.request_rerun(workspace_id, started.run_id)
    return started


def start_runs(runs: SegmentRuns, tasks: TaskQueue, workspace_ids: Iterable[str], now: datetime,
               items_per_share: int, reason: str, paced: bool = False) -> dict[str, SegmentRun]:
    """A run of each workspace (see start_run), fanned out over as many shares as the index's size asks; or,
    ``paced``, chained over one share per index bucket, the smallest hop a share can be."""
    shares = MOST_SHARES if paced else shares_for(runs.indexed_profiles(), items_per_share)
    return {ws: start_run(runs, tasks, ws, now, shares, reason, paced) for ws in workspace_ids}


def _phase_tasks(workspace_id: str, run_id: str, phase: RunPhase, shares: int, chained: bool) -> list[RunTask]:
    return [RunTask(workspace_id=workspace_id, run_id=run_id, phase=phase, share=share, shares=shares,
                    chained=chained) for share in range(1 if chained else shares)]


def _hand_on(task: RunTask, tasks: TaskQueue, pause: Pause) -> None:
    """A chained task queues the next share before its own is counted: a crash in between leaves the task to be
    delivered again, which hands the share on again (a share counted already is skipped: see carry_out)."""
    if task.chained and task.share + 1 < task.shares:
        tasks.send([task.model_copy(update={"share": task.share + 1, "part": 0, "after": None, "start": 0})],
                   pause())


def carry_out(task: RunTask, store: SegmentStore, runs: SegmentRuns, tasks: TaskQueue,
              clock: Callable[[], datetime], pause: Pause = _no_pause, spent: Spent = _never_spent) -> None:
    """One worker's share of one phase; a task for a phase the run has left, or a chained share counted in it
    already, is done already. ``pause`` says how long the next chained share (or part) waits; ``spent``, when a
    chained hop has consumed enough of the pace (read or written enough of its share)."""
    run = runs.get(task.workspace_id, task.run_id)
    if run is None or run.phase is not task.phase or (task.chained and task.share in run.counted):
        return
    if task.phase is RunPhase.SKETCH:
        _sketch(task, run, store, runs, tasks, pause, spent)
    else:
        _evaluate(task, run, store, runs, tasks, clock, pause, spent)


def _sketch_part(task: RunTask, run: SegmentRun, store: SegmentStore, runs: SegmentRuns, tasks: TaskQueue,
                 pause: Pause, spent: Spent) -> bool:
    """A chained hop: read the share from ``task.after`` until ``spent`` (at a page's end) or the share ends,
    keep the part and its sketch under a token of this delivery's, and record the part (the first delivery to
    record it wins; another goes on from what was recorded, its own files left unread). True when the share is
    read to its end (its parts' sketches then merged into the share's)."""
    recorded = next((p for p in runs.parts(task.workspace_id, task.run_id, task.share) if p.part == task.part),
                    None)
    if recorded is None:
        token, sketch, resume = secrets.token_hex(4), PopulationSketch(), task.after

        def read() -> Iterator[tuple[Profile, HeldSegments]]:
            nonlocal sketch, resume
            for page in store.profile_pages(task.workspace_id, task.share, task.shares, task.after):
                sketch = sketch.merge(PopulationSketch.of_profiles([profile for profile, _ in page.profiles], run.now))
                yield from page.profiles
                resume = page.resume
                if resume is None or spent():
                    return

        runs.keep_profiles(task.workspace_id, task.run_id, task.share, read(), token)
        runs.put_sketch(task.workspace_id, task.run_id, task.share, sketch.model_dump_json(), token)
        recorded = runs.record_part(task.workspace_id, task.run_id,
                                    RunPart(share=task.share, part=task.part, token=token, resume=resume))
    if recorded.resume is not None:
        tasks.send([task.model_copy(update={"part": task.part + 1, "after": recorded.resume})], pause())
        return False
    parts = runs.part_sketches(task.workspace_id, task.run_id, task.share,
                               [part.token for part in runs.parts(task.workspace_id, task.run_id, task.share)])
    merged = reduce(PopulationSketch.merge, map(PopulationSketch.model_validate_json, parts))
    runs.put_sketch(task.workspace_id, task.run_id, task.share, merged.model_dump_json())
    return True


def _sketch(task: RunTask, run: SegmentRun, store: SegmentStore, runs: SegmentRuns, tasks: TaskQueue,
            pause: Pause, spent: Spent) -> None:
    """Read the share's profiles with their sets (the run's one read of them), sketch its buyers, and keep
    what was read for the share's evaluation; a chained share in hops (``_sketch_part``)."""
    if task.chained:
        if not _sketch_part(task, run, store, runs, tasks, pause, spent):
            return
    else:
        sketch = PopulationSketch()

        def sketched() -> Iterator[tuple[Profile, HeldSegments]]:
            nonlocal sketch
            read = iter(store.profiles_with_segments(task.workspace_id, task.share, task.shares))
            while together := list(islice(read, EVALUATED_TOGETHER)):
                sketch = sketch.merge(PopulationSketch.of_profiles([profile for profile, _ in together], run.now))
                yield from together

        runs.keep_profiles(task.workspace_id, task.run_id, task.share, sketched())
        runs.put_sketch(task.workspace_id, task.run_id, task.share, sketch.model_dump_json())
    _hand_on(task, tasks, pause)
    run = runs.sketched(task.workspace_id, task.run_id, task.share)
    if run.sketched < run.shares:
        return
    merged = reduce(PopulationSketch.merge, map(PopulationSketch.model_validate_json,
                                                runs.sketches(task.workspace_id, task.run_id, run.shares)))
    population = PopulationStats.from_sketch(merged, store.settings(task.workspace_id))
    if runs.advance(task.workspace_id, task.run_id, population.model_dump_json()):
        tasks.send(_phase_tasks(task.workspace_id, task.run_id, RunPhase.EVALUATE, run.shares, task.chained),
                   pause() if task.chained else 0)


@dataclass(frozen=True)
class Applied:
    profiles: int = 0
    entered: int = 0
    exited: int = 0
    conflicts: int = 0

    def __add__(self, other: Applied) -> Applied:
        return Applied(self.profiles + other.profiles, self.entered + other.entered, self.exited + other.exited,
                       self.conflicts + other.conflicts)


def _evaluate(task: RunTask, run: SegmentRun, store: SegmentStore, runs: SegmentRuns, tasks: TaskQueue,
              clock: Callable[[], datetime], pause: Pause, spent: Spent) -> None:
    rules = load_rules(store, task.workspace_id, run.now, population_of(run.population))
    # As the sketch read them: a profile written since is the refresh's to decide, and the set's version
    # guards each change (one whose set moved meanwhile is left, as below).
    kept = runs.kept_profiles(task.workspace_id, task.run_id, task.share)
    profiles = iter(kept if kept is not None else store.profiles_with_segments(task.workspace_id, task.share,
                                                                               task.shares))
    if task.chained:
        counted = _evaluate_part(task, run, store, runs, tasks, clock, pause, spent, rules, profiles)
        if counted is None:
            return
        applied, sizes = counted
    else:
        applied, sizes, _ = _evaluate_profiles(task, run, store, clock, rules, profiles, EVALUATED_TOGETHER,
                                               _never_spent)
    _hand_on(task, tasks, pause)
    run = runs.evaluated(task.workspace_id, task.run_id, task.share, applied.profiles, applied.entered,
                         applied.exited, dict(sizes))
    if run.evaluated == run.shares:
        _record(store, run, rules)
        if runs.finish(task.workspace_id, task.run_id, clock()):
            _follow_up(task, runs, tasks, clock())


def _evaluate_profiles(task: RunTask, run: SegmentRun, store: SegmentStore, clock: Callable[[], datetime],
                       rules: Rules, profiles: Iterator[tuple[Profile, HeldSegments]], together_at_most: int,
                       spent: Spent) -> tuple[Applied, Counter[str], int]:
    """Decide and write ``profiles`` ``together_at_most`` at a time until they end or ``spent`` (asked after
    each group); what was counted, each segment's members among them, and how many were evaluated."""
    applied, evaluated = Applied(), 0
    sizes = Counter({segment_id: 0 for segment_id in rules.segment_ids})
    while together := list(islice(profiles, together_at_most)):
        decided = memberships_of_all([profile for profile, _ in together], rules)
        applied += _apply_all(store, together, decided, rules, clock())
        for computed in decided:
            sizes.update(computed)
        # Whoever can cross a time boundary before the next daily run is filed for the hourly run.
        store.file_due(task.workspace_id, _due_of((profile for profile, _ in together), rules, run.now))
        evaluated += len(together)
        if spent():
            break
    return applied, sizes, evaluated


def _evaluate_part(task: RunTask, run: SegmentRun, store: SegmentStore, runs: SegmentRuns, tasks: TaskQueue,
                   clock: Callable[[], datetime], pause: Pause, spent: Spent, rules: Rules,
                   profiles: Iterator[tuple[Profile, HeldSegments]]) -> tuple[Applied, Counter[str]] | None:
    """A chained hop: evaluate the share's kept profiles from ``task.start`` until ``spent`` (asked every
    EVALUATED_PER_HOP_CHECK profiles) or the share ends, and record the part with its figures (the first delivery
    to record it wins; another goes on from what was recorded, its own figures dropped). The share's figures,
    its parts' sums, once its last part is recorded; None while the rest of the share is handed on."""
    recorded = next((p for p in runs.evaluated_parts(task.workspace_id, task.run_id, task.share)
                     if p.part == task.part), None)
    if recorded is None:
        applied, sizes, evaluated = _evaluate_profiles(task, run, store, clock, rules,
                                                       islice(profiles, task.start, None),
                                                       EVALUATED_PER_HOP_CHECK, spent)
        end = task.start + evaluated
        recorded = runs.record_evaluated_part(task.workspace_id, task.run_id, EvaluatedPart(
            share=task.share, part=task.part, start=task.start, end=end, ended=next(profiles, None) is None,
            profiles=applied.profiles, entered=applied.entered, exited=applied.exited, sizes=dict(sizes)))
    if not recorded.ended:
        tasks.send([task.model_copy(update={"part": task.part + 1, "start": recorded.end})], pause())
        return None
    parts = runs.evaluated_parts(task.workspace_id, task.run_id, task.share)
    applied = sum((Applied(p.profiles, p.entered, p.exited) for p in parts), Applied())
    sizes = Counter({segment_id: 0 for segment_id in rules.segment_ids})
    for part in parts:
        sizes.update(part.sizes)
    return applied, sizes


def _due_of(profiles: Iterable[Profile], rules: Rules, now: datetime) -> list[tuple[str, datetime]]:
    return [(profile.profile_id, at) for profile in profiles if (at := due(profile, rules, now)) is not None]


def _follow_up(task: RunTask, runs: SegmentRuns, tasks: TaskQueue, now: datetime) -> None:
    run = runs.get(task.workspace_id, task.run_id)
    if run is not None and run.rerun:
        following = start_run(runs, tasks, task.workspace_id, now, run.shares, f"follows {run.run_id}")
        runs.link_next(task.workspace_id, task.run_id, following.run_id)


def _apply_all(store: SegmentStore, together: Sequence[tuple[Profile, HeldSegments]],
               decided: Sequence[frozenset[str]], rules: Rules, at: datetime) -> Applied:
    """A run's chunk of profiles decided: the changes written together; one whose set changed since the
    run read it is left (whoever changed it decided on newer data)."""
    applied, changes = Applied(), []
    for (profile, held), computed in zip(together, decided, strict=True):
        applied += Applied(profiles=int(profile.merged_into is None))
        if (change := change_for(profile, held, rules, at, computed)) is not None:
            changes.append(change)
    lost = store.apply_memberships(changes)
    for change in changes:
        applied += Applied(conflicts=1) if change in lost else Applied(0, len(change.entered), len(change.exited))
    return applied


def _apply_once(store: SegmentStore, profile: Profile, held: HeldSegments, rules: Rules, at: datetime,
                computed: frozenset[str] | None = None) -> Applied:
    live = int(profile.merged_into is None)
    change = change_for(profile, held, rules, at, computed)
    if change is None:
        return Applied(profiles=live)
    try:
        store.apply_membership(change)
    except ConcurrentUpdate:
        # The profile's set changed since the scan read it: whoever changed it decided on newer data.
        return Applied(profiles=live, conflicts=1)
    return Applied(live, len(change.entered), len(change.exited))


def _record(store: SegmentStore, run: SegmentRun, rules: Rules) -> None:
    """Each segment's computation: when, its size (the members the shares counted at the run's instant) and
    a growth point at that size. Between runs the members move with the refresh and the sizes stay: a size
    kept by every membership change would double what each change writes (docs/segments.md)."""
    for segment_id in sorted(rules.segment_ids):
        record = store.get(run.workspace_id, segment_id)
        if record is None and segment_id not in BY_ID:
            continue  # deleted during the run
        # A point at this instant is this run's (an earlier delivery) or a run's at the same instant: replaced.
        growth = tuple(p for p in record.growth if p.at != run.now) if record else ()
        size = run.sizes.get(segment_id, 0)
        point = GrowthPoint(at=run.now, size=size)
        try:
            store.record_computation(run.workspace_id, segment_id, run.now, (*growth, point)[-GROWTH_KEPT:],
                                     None if segment_id in BY_ID else record.version if record else None,
                                     size=size)
        except ConcurrentUpdate:
            continue  # edited during the run: the edit started a run of its own


# --- the hourly run: time-relative segments, for the profiles that can cross a boundary -------------


# The hour (UTC) of the full run: the schedule fires every hour, and this one recomputes everything.
DAILY_RUN_HOUR = 3


def is_daily(scheduled_at: datetime) -> bool:
    """Whether the schedule's firing at this time is the full daily run (else an hourly run)."""
    return scheduled_at.astimezone(UTC).hour == DAILY_RUN_HOUR


# On a provisioned table an hourly run all at once at the hour is a burst target tracking answers by scaling the
# table out, and it scales in only so often: most of an hour billed at the burst's capacity, every hour. A chained
# hourly run (the schedule's, on a provisioned table) takes each hour's profiles in this many slices instead, one
# every HOURLY_SLICE_DELAY: a trickle within the steady traffic, done within half an hour (bench/capacity.py).
HOURLY_SLICES = 12
HOURLY_SLICE_DELAY = timedelta(seconds=150)


def start_hourly(tasks: TaskQueue, workspace_ids: Iterable[str], now: datetime,
                 chained: bool = False) -> list[HourlyTask]:
    """A task per workspace for the hour that just ended (carried out by the task workers)."""
    hourly = [HourlyTask(workspace_id=ws, hour=hour_of(now), chained=chained) for ws in workspace_ids]
    tasks.send(hourly)
    return hourly


def run_hour(task: HourlyTask, store: SegmentStore, runs: SegmentRuns, clock: Callable[[], datetime],
             tasks: TaskQueue) -> Applied:
    """Re-decide the time-relative segments of the profiles filed under the hours before ``task.hour``.

    The hours read are those after the last one an hourly run finished (within the horizon), so an hour a
    failed task left behind is taken up by the next one, and a task delivered twice reads nothing again
    (re-reading would only re-decide, and change nothing). Only the time-relative segments move
    (``timed_segments``): the profile's other memberships are kept as held (its own changes keep them
    current). Each profile is filed again under its next boundary; an hour's entries are never deleted
    (a delete costs what a write does): they expire (``crm.adapters.segments.DUE_KEPT``).

    A chained task decides one slice of an hour's profiles (``HOURLY_SLICES`` an hour) and hands the rest on,
    delayed, as a task that names the hour it is reading and the last profile decided. A hop delivered twice
    hands the rest on twice: the rest is decided twice, the same way."""
    if task.reading is None:
        done = runs.hourly_done(task.workspace_id)
        hour = task.hour - HORIZON if done is None else max(task.hour - HORIZON, done + HOUR)
    else:
        hour = task.reading
    if hour >= task.hour:
        return Applied()
    now = clock()
    rules = load_rules(store, task.workspace_id, now, current_population(runs, task.workspace_id))
    applied, after = Applied(), task.after
    while hour < task.hour:
        filed = store.due_profiles(task.workspace_id, hour)
        left = [pid for pid in filed if after is None or pid > after]  # filed in key order
        if task.chained and len(left) > (slice_size := math.ceil(len(filed) / HOURLY_SLICES)):
            applied += _decide_due(store, task.workspace_id, left[:slice_size], rules, now, clock)
            tasks.send([task.model_copy(update={"reading": hour, "after": left[slice_size - 1]})],
                       int(HOURLY_SLICE_DELAY.total_seconds()))
            return applied
        applied += _decide_due(store, task.workspace_id, left, rules, now, clock)
        hour, after = hour + HOUR, None
        if task.chained and left and hour < task.hour:  # an hour a failed run left behind: its own slices
            tasks.send([task.model_copy(update={"reading": hour, "after": None})],
                       int(HOURLY_SLICE_DELAY.total_seconds()))
            return applied
    runs.hourly_finished(task.workspace_id, task.hour - HOUR)
    return applied


def _decide_due(store: SegmentStore, workspace_id: str, filed: Sequence[str], rules: Rules, now: datetime,
                clock: Callable[[], datetime]) -> Applied:
    """Re-decide the time-relative segments of these filed profiles, and file each under its next boundary."""
    timed = timed_segments(rules)
    applied = Applied()
    for start in range(0, len(filed), EVALUATED_TOGETHER):
        chunk = filed[start:start + EVALUATED_TOGETHER]
        together = list(store.profiles_by_id(workspace_id, chunk))
        decided = memberships_of_all([profile for profile, _ in together], rules)
        kept = (held.segment_ids & rules.segment_ids - timed for _, held in together)
        applied += _apply_all(store, together, [c & timed | k for c, k in zip(decided, kept, strict=True)],
                              rules, clock())
        store.file_due(workspace_id, _due_of((profile for profile, _ in together), rules, now))
    return applied


# --- the incremental path --------------------------------------------------------------------------


@dataclass
class RulesCache:
    """Each workspace's rules as last read, for ``ttl``: the refresh runs on every profile write, and reading
    the segments, settings and statistics (some thirty items) each time would be most of its cost. A new or
    changed segment starts a run of its own, so a refresh that misses it for a minute loses nothing."""

    ttl: timedelta = timedelta(minutes=1)
    held: dict[str, tuple[datetime, Rules]] = field(default_factory=dict)

    def rules(self, store: SegmentStore, runs: SegmentRuns, workspace_id: str, now: datetime) -> Rules:
        hit = self.held.get(workspace_id)
        if hit is None or not timedelta(0) <= now - hit[0] < self.ttl:
            rules = load_rules(store, workspace_id, now, current_population(runs, workspace_id))
            self.held[workspace_id] = (now, rules)
            return rules
        return replace(hit[1], context=hit[1].context.model_copy(update={"now": now}))


def refresh(store: SegmentStore, runs: SegmentRuns, changes: Iterable[ProfileChange], now: datetime,
            cache: RulesCache | None = None) -> Applied:
    """Re-decide the memberships of profiles that just changed, at ``now``, with the last run's statistics.

    The stream's images carry the profile before and after the write. When they agree on everything the rules
    and time boundaries read (crm.segments.inputs), the write moved nothing and nothing is evaluated; else
    both are evaluated at ``now``, and when they are in the same segments the write moved nothing either (what
    time moves is the runs'): nothing is read or written. Otherwise the profile's set is read and the change
    written under its version. A profile written several times in a batch is decided once, from its first
    image before to its last image after."""
    cache = cache or RulesCache()
    latest: dict[tuple[str, str], ProfileChange] = {}
    for change in changes:
        key = (change.after.workspace_id, change.after.profile_id)
        first = latest.pop(key, None)
        latest[key] = ProfileChange(first.before if first else change.before, change.after)
    applied = Applied()
    for (workspace_id, _), change in latest.items():
        applied += _refresh_one(store, change, cache.rules(store, runs, workspace_id, now), now)
    return applied


def _refresh_one(store: SegmentStore, change: ProfileChange, rules: Rules, now: datetime) -> Applied:
    profile = change.after
    if change.before is not None and moves_nothing(change.before, profile, rules):
        # Nothing any segment or time boundary reads changed (a name, an identity, the upsert's bookkeeping):
        # no segment is evaluated, and what time moves is the runs'.
        return Applied(profiles=int(profile.merged_into is None))
    _file_if_moved(store, change, rules, now)
    computed = memberships_of(profile, rules)
    before = memberships_of(change.before, rules) if change.before is not None else frozenset()
    if before == computed:  # a new profile in no segment has nothing to write either
        return Applied(profiles=int(profile.merged_into is None))
    for _ in range(CONFLICT_RETRIES):
        held = store.held_segments(profile.workspace_id, profile.profile_id)
        if held is None:  # its first set: the profile must still be there (an erasure takes both)
            found = store.profile_with_segments(profile.workspace_id, profile.profile_id)
            if found is None:
                return Applied()
            held = found[1]
        outcome = _apply_once(store, profile, held, rules, now, computed)
        if not outcome.conflicts:
            return outcome
    raise ConcurrentUpdate(f"the segments of {profile.profile_id} kept changing; the batch is retried")


def _file_if_moved(store: SegmentStore, change: ProfileChange, rules: Rules, now: datetime) -> None:
    """File the profile for the hourly run when the write moved its next time boundary to another hour
    (the one before was filed by whoever decided the profile before the write)."""
    after = due(change.after, rules, now)
    if after is None:
        return
    before = due(change.before, rules, now) if change.before is not None else None
    if before is None or hour_of(before) != hour_of(after):
        store.file_due(change.after.workspace_id, [(change.after.profile_id, after)])


__all__ = [
    "DAILY_RUN_HOUR",
    "RUN_STALE_AFTER",
    "SCHEDULE",
    "Applied",
    "Pause",
    "RulesCache",
    "Spent",
    "carry_out",
    "current_population",
    "is_daily",
    "load_rules",
    "new_run_id",
    "population_of",
    "refresh",
    "run_hour",
    "shares_for",
    "start_hourly",
    "start_run",
    "start_runs",
]
