"""A stored segment: its definition (custom ones only) and what its last computation found."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from crm.segments.builtin import PopulationStats

GROWTH_KEPT = 30
BUILTIN_PREFIX = "builtin:"  # the ids of the built-in segments; custom ones are seg_...


class GrowthPoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: datetime
    size: int


class SegmentRecord(BaseModel):
    """A custom segment, or the computed state of a built-in one (``definition`` None: its rule is code).

    ``definition`` is the SegmentDocument as JSON text: stored as the marketer wrote it (once validated),
    so a later reader re-validates it with the registry of its own time.
    """

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    segment_id: str
    name: str
    definition: str | None = None
    description: str | None = None
    created_at: datetime
    updated_at: datetime
    version: int = 1
    size: int = 0
    last_computed_at: datetime | None = None
    growth: tuple[GrowthPoint, ...] = Field(default=(), max_length=GROWTH_KEPT)


class Member(BaseModel):
    model_config = ConfigDict(frozen=True)

    profile_id: str
    entered_at: datetime


class HeldSegments(BaseModel):
    """The segments one profile is in, as last written: the guard every membership change goes through.

    ``version`` is 0 when nothing was ever written for the profile; ``revision`` is the profile revision
    the set was decided on.
    """

    model_config = ConfigDict(frozen=True)

    segment_ids: frozenset[str] = frozenset()
    version: int = 0
    revision: int = 0


class MembershipChange(BaseModel):
    """One profile's new set of segments, the ones it entered and exited, and the version it replaces."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    profile_id: str
    segment_ids: frozenset[str]
    entered: tuple[str, ...]
    exited: tuple[str, ...]
    expected_version: int
    revision: int
    at: datetime


class RunPhase(StrEnum):
    SKETCH = "sketch"  # summarise the buyers of each share (RFM quintiles, the VIP threshold)
    EVALUATE = "evaluate"  # evaluate every segment for each profile of each share, write the differences
    DONE = "done"


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
    started_at: datetime
    finished_at: datetime | None = None
    population: PopulationStats | None = None  # settled by the sketch phase, used by every evaluating share


class RunTask(BaseModel):
    """One worker's job: a phase of a run over one share of the parallel scan."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace_id: str
    run_id: str
    phase: RunPhase
    share: int = Field(ge=0)
    shares: int = Field(ge=1)
