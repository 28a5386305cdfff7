"""The daily fit reads the profiles the day's segment run already read, not the table.

The segment run reads every profile of a workspace once a day and keeps them in its S3 work files
(crm.segments.snapshot). The schedule queues each workspace's fit at the run's hour; the fit waits, handed
back to its queue a quarter of an hour at a time, until the run has read every share, then fits on those
profiles: the same data a read of the table would have given at the run's instant, without the day's
burst of some 0.5 RRU a profile. A run that does not come (it failed) leaves the fit to read the table
itself, as it always did, once it has waited ``MOST_WAITS`` times; so does a run whose files are gone, at once.

On a provisioned table the fit's writes keep to a pace (crm.adapters.pacing's meter, given as ``pace``): once
a minute ahead of it, the fit stops and hands the rest back to its queue (:class:`Rest`), held back as long as
it ran ahead. The rest reads the run's files again and writes, with the kept fit, the profiles after the last
one written, in id order: the predictions one pass would have written, and none of them twice (a rest
delivered again finds the profiles it wrote at a newer revision, reads them and writes nothing; a rest whose
fit was replaced, by a fit delivered again or the next day's, stops). A fit that read the table writes at once:
its rest would read the table again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from crm.models.predictions import FitTask
from crm.models.profile import Profile
from crm.ports import AffinityStore, PredictionStore, ProfileRepository, SegmentRuns
from crm.predictions.refresh import Models, Outcome, Pace, run_workspace, write_moved
from crm.segments.snapshot import SnapshotGone, latest_snapshot, snapshot_of

# A segment run whose instant is at most this long before the fit was queued read the day's profiles (the
# daily run starts at the schedule's hour, the fit's too; a recompute just before serves as well).
SNAPSHOT_BEFORE = timedelta(hours=1)
# How often a fit goes back to its queue to wait for the day's run to have read every profile: 6 hours at SQS's
# longest delay (a paced run reads for a few hours). Counted, not timed: `crm local`'s clock stands still while
# a fit waits there (it waits no time: crm.config's fit_recheck_seconds).
MOST_WAITS = 24


@dataclass(frozen=True)
class Later:
    """Not yet: the fit goes back to its queue (for SQS's longest delay, 900 s: crm.config's
    fit_recheck_seconds)."""

    task: FitTask


@dataclass(frozen=True)
class Rest:
    """Written so far: the rest goes back to the queue, held back as long as the writes ran ahead of their pace."""

    outcome: Outcome
    task: FitTask


def _rest(task: FitTask, outcome: Outcome, read_from: str) -> Outcome | Rest:
    if outcome.rest_after is None or outcome.fit is None:
        return outcome
    return Rest(outcome, task.model_copy(update={"rest_after": outcome.rest_after,
                                                 "fitted_at": outcome.fit.fitted_at, "read_from": read_from}))


def write_rest(task: FitTask, store: PredictionStore, profiles: ProfileRepository, runs: SegmentRuns,
               models: Models, pace: Pace | None = None) -> Outcome | Rest:
    """The rest of a paced fit: the profiles after ``rest_after``, read again from the run's files, predicted
    with the kept fit as of its instant; nothing when that fit was replaced meanwhile."""
    fit = store.fit(task.fit_workspace)
    if fit is None or fit.fitted_at != task.fitted_at or task.read_from is None:
        return Outcome(profiles=0, written=0, read_from=task.read_from or "table")
    snapshot = snapshot_of(runs, task.fit_workspace, task.read_from)
    read: Iterable[Profile] | None = None
    if snapshot is not None:
        try:
            read = list(snapshot.profiles)
        except SnapshotGone:
            read = None
    if read is None:  # the files expired meanwhile: the rest from the table, at once (its read is the burst)
        read, pace = profiles.workspace_profiles(task.fit_workspace), None
    held = {p.profile_id: p for p in read if p.merged_into is None}
    outcome = write_moved(store, profiles, models, fit, held, fit.fitted_at, after=task.rest_after, pace=pace)
    return _rest(task, replace(outcome, read_from=task.read_from), task.read_from)


def fit_daily(task: FitTask, now: datetime, store: PredictionStore, profiles: ProfileRepository,
              runs: SegmentRuns, models: Models, affinity: AffinityStore | None = None,
              pace: Pace | None = None) -> Outcome | Later | Rest:
    """Fit the task's workspace on the day's snapshot of its profiles; wait for it while it may still come;
    read the table when it does not (or for a task queued by hand, without ``queued_at``). ``pace``: the
    writes' pace (none: written at once)."""
    if task.rest_after is not None:
        return write_rest(task, store, profiles, runs, models, pace)
    if task.queued_at is None:
        return run_workspace(store, profiles, models, task.fit_workspace, now, affinity)
    snapshot = latest_snapshot(runs, task.fit_workspace, task.queued_at - SNAPSHOT_BEFORE)
    if snapshot is None and task.waited < MOST_WAITS:
        return Later(task.model_copy(update={"waited": task.waited + 1}))
    if snapshot is not None:
        try:
            # The profiles are all read before anything is written (run_workspace), so a file found missing
            # midway leaves nothing half done.
            outcome = run_workspace(store, profiles, models, task.fit_workspace, now, affinity,
                                    snapshot=snapshot.profiles, pace=pace)
            return _rest(task, replace(outcome, read_from=snapshot.run_id), snapshot.run_id)
        except SnapshotGone:
            pass
    return run_workspace(store, profiles, models, task.fit_workspace, now, affinity)


__all__ = ["MOST_WAITS", "SNAPSHOT_BEFORE", "Later", "Rest", "fit_daily", "write_rest"]
