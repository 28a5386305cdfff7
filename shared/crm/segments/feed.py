"""What the table's stream tells the incremental path: profiles that changed (each as it was and as it is),
and profiles erased.

The handler decodes the stream's wire shape (crm.adapters.streams.images); this reads plain images."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crm.models.profile import Profile


@dataclass(frozen=True)
class Erased:
    workspace_id: str
    profile_id: str
    segment_ids: frozenset[str]


@dataclass(frozen=True)
class ProfileChange:
    """One profile write: the profile before it (None for a new item) and after it."""

    before: Profile | None
    after: Profile


@dataclass(frozen=True)
class Feed:
    changed: list[ProfileChange] = field(default_factory=list)
    erased: list[Erased] = field(default_factory=list)


Image = Mapping[str, Any] | None


def read_feed(changes: Iterable[tuple[Image, Image]]) -> Feed:
    """Profile items written (inserted or modified), and sets of segments removed with an erased profile's
    partition. Everything else on the stream is not this path's business (the template filters it out
    already; this is the second line)."""
    feed = Feed()
    for new, old in changes:
        if new is not None and new.get("entity") == "profile":
            before = Profile.model_validate(old) if old is not None and old.get("entity") == "profile" else None
            feed.changed.append(ProfileChange(before, Profile.model_validate(new)))
        elif new is None and old is not None and old.get("entity") == "profile_segments":
            feed.erased.append(Erased(str(old["workspace_id"]), str(old["profile_id"]),
                                      frozenset(old.get("segment_ids", ()))))
    return feed


__all__ = ["Erased", "Feed", "ProfileChange", "read_feed"]
