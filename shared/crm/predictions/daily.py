"""The daily fit reads the profiles the day's segment run already read, not the table.

The segment run reads every profile of a workspace once a day and keeps them in its S3 work files
(crm.segments.snapshot). The schedule queues each workspace's fit at the run's hour; the fit waits, handed
back to its queue a quarter of an hour at a time, until the run has read every share, then fits on those
profiles: the same data a read of the table would have given at the run's instant, without the day's
burst of some 0.5 RRU a profile. A run that does not come (it failed) leaves the fit to read the table
itself, as it always did, once it has waited ``MOST_WAITS`` times; so does a run whose files are gone, at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from crm.models.predictions import FitTask
from crm.ports import AffinityStore, PredictionStore, ProfileRepository, SegmentRuns
from crm.predictions.refresh import Models, Outcome, run_workspace
from crm.segments.snapshot import SnapshotGone, latest_snapshot

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


def fit_daily(task: FitTask, now: datetime, store: PredictionStore, profiles: ProfileRepository,
              runs: SegmentRuns, models: Models, affinity: AffinityStore | None = None) -> Outcome | Later:
    """Fit the task's workspace on the day's snapshot of its profiles; wait for it while it may still come;
    read the table when it does not (or for a task queued by hand, without ``queued_at``)."""
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
                                    snapshot=snapshot.profiles)
            return replace(outcome, read_from=snapshot.run_id)
        except SnapshotGone:
            pass
    return run_workspace(store, profiles, models, task.fit_workspace, now, affinity)


__all__ = ["MOST_WAITS", "SNAPSHOT_BEFORE", "Later", "fit_daily"]
