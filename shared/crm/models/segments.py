"""A stored segment: its definition (custom ones only) and what its last computation found; a workspace's
settings for its built-in segments."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

GROWTH_KEPT = 30
BUILTIN_PREFIX = "builtin:"  # the ids of the built-in segments; custom ones are seg_...


class BuiltinSettings(BaseModel):
    """A workspace's choices for its built-in segments (crm.segments.builtin); absent ones take the defaults.

    Stored one item per workspace: a new setting added here with a default reads back from older items.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    vip_top_percent: int = Field(default=10, ge=1, le=50)
    churn_after_days: int = Field(default=180, ge=1, le=3650)
    window_shopper_min_views: int = Field(default=3, ge=1, le=10_000)
    new_customer_days: int = Field(default=30, ge=1, le=365)
    cart_abandon_days: int = Field(default=7, ge=1, le=90)


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
