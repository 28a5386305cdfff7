"""A recomputation run of a workspace's segments, and the tasks its workers carry out."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class RunPhase(StrEnum):
    SKETCH = "sketch"  # summarise the buyers of each share (RFM quintiles, the VIP threshold)
    EVALUATE = "evaluate"  # evaluate every segment for each profile of each share, write the differences
    DONE = "done"


class RunPart(BaseModel):
    """A part of a chained share's sketch, as the run recorded it first: the hop that read it kept its profiles
    and sketch under ``token``, and the share goes on at ``resume`` (None: the share ended with it). A hop
    delivered twice records nothing new: it goes on from what was recorded, so the parts never overlap."""

    model_config = ConfigDict(frozen=True)

    share: int = Field(ge=0)
    part: int = Field(ge=0)
    token: str
    resume: str | None


class EvaluatedPart(BaseModel):
    """A part of a chained share's evaluation, as the run recorded it first: the hop evaluated the share's kept
    profiles from ``start`` up to ``end`` (their fixed order) and counted these figures. The share is counted
    once, with its parts' sums, when a part ends it; a hop delivered again goes on from ``end`` as recorded and
    counts nothing of its own, so every profile is counted in exactly one part."""

    model_config = ConfigDict(frozen=True)

    share: int = Field(ge=0)
    part: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    ended: bool  # the share's last part
    profiles: int = Field(default=0, ge=0)
    entered: int = Field(default=0, ge=0)
    exited: int = Field(default=0, ge=0)
    sizes: dict[str, int] = Field(default_factory=dict)


class SegmentRun(BaseModel):
    """A recomputation of every segment of a workspace at one instant, fanned out over scan shares."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    run_id: str
    now: datetime  # every share evaluates at this instant
    shares: int = Field(ge=1)
    reason: str
    phase: RunPhase = RunPhase.SKETCH
    sketched: int = 0
    evaluated: int = 0
    profiles: int = 0
    entered: int = 0
    exited: int = 0
    # Each segment's members at ``now`` as the evaluating shares decided them, summed over the shares: the
    # sizes the run records (membership changes between runs do not move sizes).
    sizes: dict[str, int] = Field(default_factory=dict)
    started_at: datetime
    finished_at: datetime | None = None
    # Settled by the sketch phase, used by every evaluating share: the JSON of crm.segments.builtin's
    # PopulationStats, which only the segments' own code reads (a model does not import the logic above it).
    population: str | None = None
    # Asked for while this run was under way (a segment saved, the refresh button): another run follows it,
    # so that what was asked is computed with everything changed before the asking.
    rerun: bool = False
    next_run_id: str | None = None
    # The shares counted in the run's current phase (a chained task delivered again after its share was counted
    # has nothing left to do: the next share was handed on before this one was counted). Read from the sets the
    # run's record keeps, never stored as a field of its own.
    counted: frozenset[int] = Field(default=frozenset(), exclude=True)


class RunTask(BaseModel):
    """One worker's job: a phase of a run over one share of the parallel scan."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace_id: str
    run_id: str
    phase: RunPhase
    share: int = Field(ge=0)
    shares: int = Field(ge=1)
    # The shares one after another, not side by side: each task hands the next share back to the queue, delayed
    # as long as its own share ran ahead of the pace (crm.segments.runs, docs/scale.md). The schedule's daily run
    # on a provisioned table is chained; a run someone asked for is not.
    chained: bool = False
    # A chained sketch's share is read in hops of about a minute of the pace: the hop's part of the share and
    # where in the share it starts (crm.ports.ProfilePage.resume; None: at the share's start).
    part: int = Field(default=0, ge=0)
    after: str | None = None
    # A chained evaluation's share is written in hops of about a minute of the pace too: the hop starts at this
    # index of the share's kept profiles (an EvaluatedPart's ``end``).
    start: int = Field(default=0, ge=0)


class HourlyTask(BaseModel):
    """The hourly run of one workspace: its time-relative segments, for the profiles filed under the hours
    before ``hour`` (crm.segments.boundaries)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace_id: str
    hour: datetime
    # Hourly slices, one after another (crm.segments.runs.run_hour): the schedule's on a provisioned table. A
    # slice handed on names the hour it reads and the last profile decided before it (None: the hour's first).
    chained: bool = False
    reading: datetime | None = None
    after: str | None = None
