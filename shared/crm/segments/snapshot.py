"""The workspace's profiles as the last segment run read them, for another daily job to read instead of the table.

A segment run reads every profile of a workspace once and keeps what it read in its S3 work files, one per
share (crm.segments.runs, phase 1). Once every share is kept the run advances, and the workspace's
population statistics name that run (``SegmentRuns.population_run_id``): from then until the files expire
(two days, template.yaml's lifecycle rule) the run's profiles can be read back whole, at the run's instant,
without a read of the table. The predictions' daily fit reads them so (docs/predictions-in-product.md).
This is the one place outside the run that knows how a run's work files are laid out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from crm.models.profile import Profile
from crm.models.segment_runs import SegmentRun
from crm.ports import SegmentRuns


class SnapshotGone(LookupError):
    """A share's work file was not there when its turn came (expired, or removed): the snapshot is not whole."""


@dataclass(frozen=True)
class Snapshot:
    """A run's profiles (merged ones too, as the run keeps them), read from its work files as iterated; the
    iteration raises SnapshotGone when a share's file is missing."""

    run_id: str
    taken_at: datetime  # the run's instant: each share read its profiles within minutes after it
    profiles: Iterator[Profile]


def _profiles(runs: SegmentRuns, run: SegmentRun) -> Iterator[Profile]:
    # A share's file is opened when its turn comes: an S3 body held open while the shares before it are
    # parsed (minutes at 25,000 profiles a share) would time out.
    for share in range(run.shares):
        kept = runs.kept_profiles(run.workspace_id, run.run_id, share)
        if kept is None:
            raise SnapshotGone(f"run {run.run_id} of workspace {run.workspace_id} keeps no file for share {share}")
        for profile, _ in kept:
            yield profile


def latest_snapshot(runs: SegmentRuns, workspace_id: str, taken_since: datetime) -> Snapshot | None:
    """The profiles of the workspace's last run whose every share was read, if that run's instant is at or
    after ``taken_since``; None when there is no such run."""
    run_id = runs.population_run_id(workspace_id)
    run = runs.get(workspace_id, run_id) if run_id else None
    if run is None or run.now < taken_since:
        return None
    return Snapshot(run_id=run.run_id, taken_at=run.now, profiles=_profiles(runs, run))


def snapshot_of(runs: SegmentRuns, workspace_id: str, run_id: str) -> Snapshot | None:
    """The profiles of this run of the workspace, read again (a paced fit's rest); None when the run is gone."""
    run = runs.get(workspace_id, run_id)
    return None if run is None else Snapshot(run_id=run.run_id, taken_at=run.now, profiles=_profiles(runs, run))


__all__ = ["Snapshot", "SnapshotGone", "latest_snapshot", "snapshot_of"]
