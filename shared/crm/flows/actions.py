"""What the flow engine decides, as values: the event it reads, why a run did not start or ended, the facts a
send needs, and each action with the step record it leaves (crm.flows.engine makes them; the service carries
them out). crm.flows.engine re-exports all of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from crm.clock import UtcDateTime
from crm.models.flows import FlowRun, StepRecord

Channel = Literal["email", "sms"]


class FlowEvent(BaseModel):
    """A bus event as the engine reads it: its detail-type and its detail (the domain event as JSON)."""

    model_config = ConfigDict(frozen=True)

    type: str
    event_id: str
    workspace_id: str
    profile_id: str
    occurred_at: UtcDateTime
    detail: dict[str, Any]

    @classmethod
    def of(cls, event_type: str, detail: Mapping[str, Any]) -> FlowEvent:
        """From EventBridge's ``detail-type`` and ``detail``; pydantic's ValidationError when the detail lacks
        the envelope (event_id, workspace_id, profile_id, occurred_at)."""
        return cls.model_validate({**{key: detail.get(key) for key in ("event_id", "workspace_id", "profile_id",
                                                                      "occurred_at")},
                                   "type": event_type, "detail": dict(detail)})


class Refusal(StrEnum):
    """Why an event did not start a run of a flow."""

    NOT_LIVE = "not_live"  # the flow is a draft
    NOT_TRIGGER = "not_trigger"  # another event, or the trigger's filter does not hold
    MERGED = "merged"  # the profile was merged into another: the survivor's event starts its run
    FILTER = "profile_filter"
    REENTRY = "reentry"  # the re-entry rule refuses: the profile entered too recently (or ever, for once)
    DUPLICATE = "duplicate"  # this trigger (or another event about the same order or checkout) started a run


@dataclass(frozen=True)
class Entry:
    """``run`` to create (RunStore.create_run) when the event starts one, else ``refusal``."""

    run: FlowRun | None = None
    refusal: Refusal | None = None


class ExitReason(StrEnum):
    """The prefixes of FlowRun.exit_reason (an exit event's reason is ``exit_event:<EventType>``)."""

    EXIT_EVENT = "exit_event"  # an exit event arrived on the bus, or the profile shows one (exit facts)
    SUPERSEDED = "superseded"  # a newer occurrence of the trigger's own kind (a newer checkout)
    FILTER = "profile_filter"  # the profile no longer matches the flow's filter
    EXIT_STEP = "exit_step"
    WAIT_TIMEOUT = "wait_timeout"  # a wait_for with on_timeout "exit" saw no event
    NO_MOMENT = "no_moment"  # a delay until a moment the profile or trigger does not have
    TOO_LONG = "wait_too_long"  # a delay until a moment beyond MAX_WAIT
    STEP_GONE = "step_removed"  # the flow was edited and the step the run stood at is no more
    MERGED = "merged"  # the profile was merged into another (the service moves the run to the survivor)


@dataclass(frozen=True)
class SendFacts:
    """What a send's checks need beyond the profile, gathered by the service for the step's channel and
    address (engine.send_step and engine.address_of say which)."""

    suppressed: bool = False  # the address is on the workspace's suppression list (or SES's account list)
    carrier_opted_out: bool = False  # SMS: the number is on SNS's opted-out list
    last_sent: datetime | None = None  # the profile's last message on this channel, by any flow (Smart Sending)


# --- actions -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wait:
    """Sleep until ``until`` (schedule a WakeUp for ``step_id``): a delay, or an SMS held in quiet hours."""

    step_id: str
    until: datetime
    why: Literal["delay", "quiet_hours"] = "delay"


@dataclass(frozen=True)
class WaitFor:
    """Wait for ``event`` (on_event resumes the run) and schedule a WakeUp at ``until`` (the timeout)."""

    step_id: str
    event: str
    until: datetime


@dataclass(frozen=True)
class Send:
    """Claim the step, render ``template_id`` and send it to ``to``; then apply with the message id."""

    step_id: str
    channel: Channel
    template_id: str
    to: str


@dataclass(frozen=True)
class Tag:
    step_id: str
    tag: str


@dataclass(frozen=True)
class Proceed:
    """Nothing to do outside: a split chose its path, a send was skipped, a wait ended. Record and go on."""

    step_id: str


@dataclass(frozen=True)
class Exit:
    reason: str


@dataclass(frozen=True)
class Complete:
    """The run did its last step."""


Action = Wait | WaitFor | Send | Tag | Proceed | Exit | Complete


@dataclass(frozen=True)
class Decision:
    """What to do now (``action``), what to append to the run's steps (``record``; a Send's gets its message
    id in ``apply``) and where the run stands afterwards (``next_step``)."""

    action: Action
    record: StepRecord | None = None
    next_step: str | None = None

    @property
    def pauses(self) -> bool:
        """The run sleeps after this action (until a WakeUp or an event)."""
        return isinstance(self.action, Wait | WaitFor)

    @property
    def ends(self) -> bool:
        return isinstance(self.action, Exit | Complete)


__all__ = ["Action", "Channel", "Complete", "Decision", "Entry", "Exit", "ExitReason", "FlowEvent", "Proceed",
           "Refusal", "Send", "SendFacts", "Tag", "Wait", "WaitFor"]
