"""Flows: a definition a marketer writes (trigger, filter, exits, re-entry, steps) and the runs it starts.

A definition is stored per workspace and validated here; docs/flows.md describes it with examples. A run is
one profile's way through one flow for one trigger occurrence: its id comes from the trigger, so a trigger
delivered twice starts one run. crm.flows.engine decides what a run does next; crm.flows.service carries it
out (claims, sends, schedules).
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field

from crm.clock import UtcDateTime

FLOW_ID = r"^(builtin:[a-z_]{1,40}|[a-z0-9][a-z0-9_-]{0,62})$"
STEP_ID = r"^[a-z0-9_]{1,24}$"
# The label of the directory that `crm apply` keeps a definition from (crm.ascode): the only definitions an
# apply deletes are those it labelled and whose files are gone.
MANAGED_BY = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
# EventBridge Scheduler waits any time; a flow waits at most this long (Shopify Flow: 90 days).
MAX_WAIT = timedelta(days=365)

_MODEL = ConfigDict(frozen=True, extra="forbid")

TriggerEvent = Literal["CheckoutStarted", "ProductViewed", "OrderPlaced", "OrderFulfilled", "ContactCreated",
                       "ConsentChanged"]


class FilterOp(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    IN = "in"
    EXISTS = "exists"
    NOT_EXISTS = "not_exists"


class PropertyFilter(BaseModel):
    """A condition on an event's detail: ``property`` is a dotted path (``paid``, ``items.0.sku``); ``value``
    may be ``{"trigger": "<path>"}``, the same path's value on the run's trigger (an exit on the trigger's own
    order id, say)."""

    model_config = _MODEL

    property: str = Field(min_length=1, max_length=200)
    op: FilterOp
    value: Any = None


class EventTrigger(BaseModel):
    kind: Literal["event"] = "event"
    model_config = _MODEL

    event: TriggerEvent
    where: tuple[PropertyFilter, ...] = ()


class SegmentTrigger(BaseModel):
    model_config = _MODEL

    kind: Literal["segment"] = "segment"
    segment_id: str = Field(min_length=1, max_length=100)
    on: Literal["entered", "exited"] = "entered"


Trigger = Annotated[EventTrigger | SegmentTrigger, Discriminator("kind")]


class ExitEvent(BaseModel):
    """The run ends when this event happens to the profile after its trigger (never the trigger itself): an
    event of the trigger's own kind is a newer occurrence, e.g. a newer checkout (crm.flows.engine)."""

    model_config = _MODEL

    event: Literal[TriggerEvent, "SegmentEntered", "SegmentExited"]
    where: tuple[PropertyFilter, ...] = ()


class Reentry(BaseModel):
    """Whether a profile may start the flow again: ``once`` ever, ``once_per`` ``days`` (counted from the last
    entry), or ``every_time``."""

    model_config = _MODEL

    mode: Literal["once", "once_per", "every_time"] = "once_per"
    days: int | None = Field(default=None, ge=1, le=3650)


class DateAnchor(BaseModel):
    """A moment on the profile or the trigger (``trigger.occurred_at``, ``profile.last_order_at``), shifted."""

    model_config = _MODEL

    property: str = Field(pattern=r"^(trigger|profile)\.[a-z_.0-9]+$")
    offset: timedelta = timedelta(0)


class Delay(BaseModel):
    """Wait: a ``duration``; or ``until_time`` "HH:MM" in the shopper's time zone (the next such time); or
    ``until`` a moment on the profile or trigger. Exactly one is given."""

    model_config = _MODEL

    kind: Literal["delay"] = "delay"
    id: str = Field(pattern=STEP_ID)
    duration: timedelta | None = None
    until_time: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    until: DateAnchor | None = None


class WaitForEvent(BaseModel):
    """Wait until ``event`` happens to the profile (e.g. the trigger's order is fulfilled), at most
    ``timeout``; then go on, or end the run (``on_timeout``)."""

    model_config = _MODEL

    kind: Literal["wait_for"] = "wait_for"
    id: str = Field(pattern=STEP_ID)
    event: TriggerEvent
    where: tuple[PropertyFilter, ...] = ()
    timeout: timedelta = timedelta(days=30)
    on_timeout: Literal["continue", "exit"] = "exit"


class SendEmail(BaseModel):
    model_config = _MODEL

    kind: Literal["email"] = "email"
    id: str = Field(pattern=STEP_ID)
    template_id: str = Field(min_length=1, max_length=100)
    # Transactional-like messages (a receipt, a double opt-in) may skip Smart Sending; marketing ones do not.
    smart_sending: bool = True


class SendSms(BaseModel):
    model_config = _MODEL

    kind: Literal["sms"] = "sms"
    id: str = Field(pattern=STEP_ID)
    template_id: str = Field(min_length=1, max_length=100)
    smart_sending: bool = True


class TagProfile(BaseModel):
    model_config = _MODEL

    kind: Literal["tag"] = "tag"
    id: str = Field(pattern=STEP_ID)
    tag: str = Field(min_length=1, max_length=100)


class ExitStep(BaseModel):
    model_config = _MODEL

    kind: Literal["exit"] = "exit"
    id: str = Field(pattern=STEP_ID)


class SplitPath(BaseModel):
    """One path of a conditional split: taken when the profile matches ``when`` (the segment language,
    crm.segments.definition), or always when ``when`` is None (the last path, "otherwise")."""

    model_config = _MODEL

    when: dict[str, Any] | None = None
    steps: tuple[Step, ...] = ()


class ConditionalSplit(BaseModel):
    model_config = _MODEL

    kind: Literal["split"] = "split"
    id: str = Field(pattern=STEP_ID)
    paths: tuple[SplitPath, ...] = Field(min_length=1, max_length=20)


class WeightedPath(BaseModel):
    model_config = _MODEL

    weight: int = Field(ge=0, le=100)
    steps: tuple[Step, ...] = ()


class WinnerRule(BaseModel):
    """Pick an A/B winner automatically: once every path has ``min_recipients`` and one path is the best on
    ``metric`` with probability >= ``probability`` (Beta-binomial, crm.flows.abtest), every later run takes it.
    The winner is stored once decided (crm.flows.ports.SplitWinners) and never changes."""

    model_config = _MODEL

    metric: Literal["conversion", "click", "open"] = "conversion"
    min_recipients: int = Field(default=500, ge=1, le=10_000_000)
    probability: float = Field(default=0.9, gt=0.5, lt=1.0)


class RandomSplit(BaseModel):
    """A/B: the path is drawn from the run id, so a retried step takes the same path."""

    model_config = _MODEL

    kind: Literal["random"] = "random"
    id: str = Field(pattern=STEP_ID)
    paths: tuple[WeightedPath, ...] = Field(min_length=2, max_length=20)
    winner: WinnerRule | None = None


Step = Annotated[Delay | WaitForEvent | SendEmail | SendSms | TagProfile | ExitStep | ConditionalSplit
                 | RandomSplit, Discriminator("kind")]


class FlowStatus(StrEnum):
    DRAFT = "draft"
    LIVE = "live"


class FlowDefinition(BaseModel):
    """What a marketer writes (POST/PUT /flows); the API adds ids, status and times (FlowRecord)."""

    model_config = _MODEL

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    trigger: Trigger
    # The segment language (crm.segments.definition), checked on entry and again before every step.
    profile_filter: dict[str, Any] | None = None
    exits: tuple[ExitEvent, ...] = ()
    reentry: Reentry = Reentry(mode="once_per", days=7)
    steps: tuple[Step, ...] = Field(min_length=1)
    managed_by: str | None = Field(default=None, pattern=MANAGED_BY)


class FlowRecord(BaseModel):
    """A stored flow: its definition, status and version (a PUT makes a new version; runs keep theirs)."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    flow_id: str = Field(pattern=FLOW_ID)
    status: FlowStatus = FlowStatus.DRAFT
    version: int = 1
    definition: FlowDefinition
    created_at: UtcDateTime
    updated_at: UtcDateTime


class RunStatus(StrEnum):
    ACTIVE = "active"  # doing steps, or waiting for a scheduled wake-up
    COMPLETED = "completed"
    EXITED = "exited"


class StepOutcome(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    TAGGED = "tagged"
    WAITED = "waited"
    SPLIT = "split"
    # Claimed but the send's answer was never recorded (a crash in between): never resent blindly; alarmed.
    UNKNOWN = "unknown"


class SkipReason(StrEnum):
    """Why a send did not happen, in the order the checks run (crm.flows.engine)."""

    EXITED = "exit_event"
    FILTER = "profile_filter"
    NO_ADDRESS = "no_address"
    NO_CONSENT = "no_consent"
    SUPPRESSED = "suppressed"
    SMART_SENDING = "smart_sending"
    CARRIER_OPT_OUT = "carrier_opt_out"
    BROWSER_ONLY = "browser_only"


class StepRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    step_id: str
    outcome: StepOutcome
    at: UtcDateTime
    reason: str | None = None
    channel: Literal["email", "sms"] | None = None
    message_id: str | None = None
    path: int | None = None  # of a split


class FlowRun(BaseModel):
    """One profile's way through one flow, started by one trigger occurrence."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    flow_id: str
    flow_version: int
    run_id: str
    profile_id: str
    trigger_type: str
    trigger_event_id: str
    trigger: dict[str, Any]  # the trigger event's detail, for templates (cart items) and date anchors
    entered_at: UtcDateTime
    status: RunStatus = RunStatus.ACTIVE
    exit_reason: str | None = None
    ended_at: UtcDateTime | None = None
    next_step: str | None = None  # the id of the step to do next; None when done
    wake_at: UtcDateTime | None = None  # while waiting: when the scheduled wake-up is due
    waiting_for: str | None = None  # while at a wait_for step: the event type it waits for
    steps: tuple[StepRecord, ...] = ()
    revision: int = 0


def run_id_for(flow_id: str, trigger_event_id: str) -> str:
    """A run's id from its trigger: a duplicated or re-delivered trigger names the same run."""
    return hashlib.sha256(f"{flow_id}|{trigger_event_id}".encode()).hexdigest()[:32]


def schedule_name(run_id: str, step_id: str) -> str:
    """The EventBridge Scheduler schedule that wakes ``run_id`` for ``step_id`` (<= 64 characters; an exit or
    an erasure deletes it by this name)."""
    return f"fr-{run_id}-{step_id}"


def is_step_id(value: str) -> bool:
    return re.fullmatch(STEP_ID, value) is not None


class WakeUp(BaseModel):
    """The message a one-time schedule puts on the flows queue when a wait ends."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["wake"] = "wake"
    workspace_id: str
    profile_id: str
    flow_id: str
    run_id: str
    step_id: str
    due_at: UtcDateTime


SplitPath.model_rebuild()
WeightedPath.model_rebuild()
ConditionalSplit.model_rebuild()
RandomSplit.model_rebuild()
FlowDefinition.model_rebuild()
