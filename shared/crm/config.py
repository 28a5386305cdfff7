"""Configuration, read from the environment in one place and validated once."""

from __future__ import annotations

import os
from datetime import timedelta
from functools import cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """What a function needs to know about the stack it runs in (template.yaml sets these)."""

    model_config = ConfigDict(frozen=True)

    table_name: str = Field(alias="TABLE_NAME")
    archive_bucket: str | None = Field(default=None, alias="ARCHIVE_BUCKET")
    archive_stream: str | None = Field(default=None, alias="ARCHIVE_STREAM")
    ingest_queue_url: str | None = Field(default=None, alias="INGEST_QUEUE_URL")
    ingest_dlq_url: str | None = Field(default=None, alias="INGEST_DLQ_URL")
    event_bus_name: str | None = Field(default=None, alias="EVENT_BUS_NAME")
    # The domain event types the outbox puts on the bus, comma-separated, or "*" for all (crm.adapters.outbox_targets:
    # the flows' events go to their queue whatever this says; template.yaml's BusEventTypes sets it).
    bus_event_types: str = Field(default="*", alias="BUS_EVENT_TYPES")
    export_bucket: str | None = Field(default=None, alias="EXPORT_BUCKET")
    export_queue_url: str | None = Field(default=None, alias="EXPORT_QUEUE_URL")
    # The export queue's maxReceiveCount: the worker records a job as failed on its last attempt.
    export_max_receives: int = Field(default=3, alias="EXPORT_MAX_RECEIVES")
    privacy_queue_url: str | None = Field(default=None, alias="PRIVACY_QUEUE_URL")
    segment_tasks_url: str | None = Field(default=None, alias="SEGMENT_TASKS_URL")
    # The predictions function's queue: the schedule's fit of each workspace, and orders placed or refunded.
    predictions_queue_url: str | None = Field(default=None, alias="PREDICTIONS_QUEUE_URL")
    # How long a daily fit waiting for the segment run's read goes back to its queue for (SQS's longest delay);
    # `crm local` sets 0: moto's delays are wall-clock time, which the local clock's fast-forward does not move.
    fit_recheck_seconds: int = Field(default=900, ge=0, le=900, alias="FIT_RECHECK_SECONDS")
    # How many profiles (items of the workspace index) one worker of a segment recomputation reads: about as
    # many as when a worker scanned 500,000 table items (~21 a profile), well inside Lambda's 900 s on
    # bench/segment_runs.py's figures. The run fans out over ceil(indexed profiles / this) shares (at most 32).
    segment_items_per_share: int = Field(default=25_000, ge=1, alias="SEGMENT_ITEMS_PER_SHARE")
    # The schedule's daily run chained, one share after another at the segment tasks' pace, and its hourly runs in
    # slices spread over half an hour (crm.segments.runs; template.yaml sets it on a provisioned table only, where
    # the tasks' DYNAMODB_UNITS_PER_SECOND is set).
    daily_segment_run_paced: bool = Field(default=False, alias="DAILY_SEGMENT_RUN_PACED")
    bigcommerce_api_url: str = Field(default="https://api.bigcommerce.com", alias="BIGCOMMERCE_API_URL")
    # Flows (crm.flows.service): where a wait's one-time schedule goes, and who may put its wake-up there.
    flows_queue_arn: str | None = Field(default=None, alias="FLOWS_QUEUE_ARN")
    # The public track function notes followed links of flow messages there (SMS clicks, unsubscribes).
    flows_queue_url: str | None = Field(default=None, alias="FLOWS_QUEUE_URL")
    schedule_group: str | None = Field(default=None, alias="SCHEDULE_GROUP")
    scheduler_role_arn: str | None = Field(default=None, alias="SCHEDULER_ROLE_ARN")
    # Where the links in emails point (unsubscribe, confirm): the stack's public API; `crm local` sets the
    # local API, http://127.0.0.1:8000. LINK_SIGNING_SECRET names the secret their tokens are signed with.
    public_api_url: str | None = Field(default=None, alias="PUBLIC_API_URL")
    link_signing_secret: str | None = Field(default=None, alias="LINK_SIGNING_SECRET")
    ses_configuration_set: str | None = Field(default=None, alias="SES_CONFIGURATION_SET")
    # The console (docs/console.md): its users' Cognito pool and app client, and the secret its sessions are
    # signed with.
    console_user_pool_id: str | None = Field(default=None, alias="CONSOLE_USER_POOL_ID")
    console_client_id: str | None = Field(default=None, alias="CONSOLE_CLIENT_ID")
    console_session_secret: str | None = Field(default=None, alias="CONSOLE_SESSION_SECRET")

    def require(self, name: str) -> str:
        """The value of an optional setting this code path cannot run without."""
        value = getattr(self, name)
        if not value:
            alias = type(self).model_fields[name].alias
            raise RuntimeError(f"{alias} is not set for this function (see template.yaml)")
        return str(value)


@cache
def settings() -> Settings:
    """The settings of this process; read lazily so tests and the local runtime can set the env first."""
    return Settings.model_validate(dict(os.environ))


class TrackSettings(BaseModel):
    """What the public /track edge needs, read on its own: it needs no table to refuse an event."""

    model_config = ConfigDict(frozen=True)

    # Events older than this are refused (docs/consent.md); only a replay of months of browsing (make demo,
    # an e2e test) sets it longer.
    max_event_age_days: int = Field(default=7, ge=1, alias="TRACK_MAX_EVENT_AGE_DAYS")

    @property
    def max_event_age(self) -> timedelta:
        return timedelta(days=self.max_event_age_days)


@cache
def track_settings() -> TrackSettings:
    return TrackSettings.model_validate(dict(os.environ))


class ClientSettings(BaseModel):
    """How this process's AWS clients behave, read on their own: a client is made before any table is named."""

    model_config = ConfigDict(frozen=True)

    # DynamoDB capacity units a second a chained segment run's tasks keep to on average, the queue holding each
    # next share back as long as one ran ahead (crm.adapters.pacing); 0, the default, does not pace.
    # template.yaml sets it for the segment runs' tasks on a provisioned table only.
    dynamodb_units_per_second: float = Field(default=0.0, ge=0, alias="DYNAMODB_UNITS_PER_SECOND")
    # A chained sketch's hop reads its share until it has consumed this many seconds of the pace's units, then
    # hands the rest on (crm.segments.runs): a hop's burst stays within a minute of the pace, not a whole bucket.
    segment_hop_seconds: float = Field(default=60.0, gt=0, alias="SEGMENT_HOP_SECONDS")


@cache
def client_settings() -> ClientSettings:
    return ClientSettings.model_validate(dict(os.environ))


def reset() -> None:
    """Forget the cached settings (the local runtime and tests change the environment)."""
    settings.cache_clear()
    track_settings.cache_clear()
    client_settings.cache_clear()
