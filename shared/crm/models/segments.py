"""A stored segment: its definition (custom ones only) and what its last computation found."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

GROWTH_KEPT = 30


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
