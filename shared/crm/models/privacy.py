"""A privacy request as a job: carried out by the privacy function in steps, with progress and a cursor."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from crm.clock import UtcDateTime


class PrivacyStage(StrEnum):
    QUEUED = "queued"  # handed over by the profiles function, not started
    RECORDS = "records"  # erasing the table's records
    ARCHIVE = "archive"  # scrubbing the archive, key by key after ``cursor``
    DONE = "done"


class Terms(BaseModel):
    """What names the shopper in a raw delivery: contact points, and the ids platforms use for them.

    Personal data: a job keeps them only while it runs (the table's records are gone by then, so a resumed
    run could not find them again), and drops them when it is done."""

    model_config = ConfigDict(frozen=True)

    emails: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()  # E.164
    ids: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.emails or self.phones or self.ids)

    @field_serializer("emails", "phones", "ids")
    def _in_order(self, values: frozenset[str]) -> list[str]:
        # A list, not a set: the table refuses an empty set, and a sorted one reads the same every time.
        return sorted(values)

    def __or__(self, other: Terms) -> Terms:
        return Terms(emails=self.emails | other.emails, phones=self.phones | other.phones, ids=self.ids | other.ids)


class ArchiveProgress(BaseModel):
    """What the archive scrub has done so far; ``cursor`` is the last key fully handled (keys go in order)."""

    model_config = ConfigDict(frozen=True)

    cursor: str | None = None
    objects_scanned: int = 0
    objects_rewritten: int = 0
    objects_deleted: int = 0
    deliveries_removed: int = 0
    rows_removed: int = 0


class PrivacyJob(BaseModel):
    """One privacy request's progress. ``store_ids``: the workspace's stores whose archive prefixes are
    scrubbed (never another workspace's)."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    store_id: str
    request_id: str
    request: str
    stage: PrivacyStage = PrivacyStage.QUEUED
    created_at: UtcDateTime
    updated_at: UtcDateTime
    runs: int = Field(default=0, ge=0)  # invocations that worked on it (more than one: it was resumed)
    profiles_erased: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    archive: ArchiveProgress = ArchiveProgress()
    store_ids: tuple[str, ...] = ()
    terms: Terms = Terms()
    export_key: str | None = None  # a data request's document

    def public(self) -> dict[str, object]:
        """The job as `crm privacy status` shows it: progress, never the terms."""
        return self.model_dump(mode="json", exclude={"terms"})
