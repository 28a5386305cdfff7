"""Segment exports: the options a marketer chooses, and the record of an asynchronous export job."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from crm.clock import UtcDateTime
from crm.models.consent import Channel

# The profile fields an export can hold, in the order the API lists them. Text fields are what a shopper
# or a store typed (names, tags): only those can carry a spreadsheet formula. The others are numbers,
# decimal strings and ISO times the CRM writes itself.
EXPORT_FIELDS = ("profile_id", "email", "phone", "first_name", "last_name", "country", "currency", "orders_count",
                 "cancelled_count", "total_spent", "total_refunded", "average_order_value", "first_order_at",
                 "last_order_at", "last_seen_at", "created_at", "tags", "store_ids",
                 # the profile's prediction (docs/predictions-in-product.md): empty where it has none
                 "prediction_status", "predicted_clv", "predicted_churn_probability", "predicted_p_alive",
                 "predicted_orders_365d", "next_order_expected_at")
NUMERIC_FIELDS = frozenset({"orders_count", "cancelled_count", "total_spent", "total_refunded",
                            "average_order_value", "predicted_clv", "predicted_churn_probability",
                            "predicted_p_alive", "predicted_orders_365d"})
TIME_FIELDS = frozenset({"first_order_at", "last_order_at", "last_seen_at", "created_at", "next_order_expected_at"})
TEXT_FIELDS = frozenset(EXPORT_FIELDS) - NUMERIC_FIELDS - TIME_FIELDS


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    # Customer files for ads (crm.audiences, docs/audiences.md): CSV with the platform's own columns, hashed.
    META_AUDIENCE = "meta_audience"
    GOOGLE_AUDIENCE = "google_audience"


def _known_field(name: str) -> str:
    if name not in EXPORT_FIELDS:
        raise ValueError(f"unknown field {name!r}; the fields are {', '.join(EXPORT_FIELDS)}")
    return name


class ExportOptions(BaseModel):
    """What to export: the GET query's parameters, or the body of POST /segments/{id}/exports."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: ExportFormat = ExportFormat.CSV
    fields: tuple[Annotated[str, AfterValidator(_known_field)], ...] = Field(default=("email",), min_length=1)
    consent: Channel | None = None  # keep only the members subscribed on this channel

    @field_validator("fields", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # The query string's form ("email,first_name"), also taken in a body for symmetry.
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("fields")
    @classmethod
    def _each_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # A field named twice is one column: the first place it is named.
        return tuple(dict.fromkeys(value))


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ExportMessage(BaseModel):
    """What the export queue carries: which job to carry out (the job record holds the rest)."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    export_id: str


class ExportJob(BaseModel):
    """An asynchronous export, as the table holds it. No personal data: options, counts and where the file is.

    ``attempts`` counts the workers that claimed it; only the latest claimer may record the outcome, so a
    duplicate or late delivery of the queue message never overwrites a newer attempt's result.
    """

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    export_id: str
    segment_id: str
    options: ExportOptions
    status: ExportStatus = ExportStatus.QUEUED
    attempts: int = 0
    created_at: UtcDateTime
    updated_at: UtcDateTime
    started_at: UtcDateTime | None = None
    finished_at: UtcDateTime | None = None
    rows: int | None = None
    size_bytes: int | None = None
    object_key: str | None = None
    error: str | None = None
