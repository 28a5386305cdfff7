"""The flow engine: what a flow does for one profile, decided from values alone (no AWS, ``now`` injected).

crm.flows.service gathers the inputs (the flow, the run, the profile, the segments it is in, and for a
send the SendFacts) and carries the decisions out (claims, sends, schedules, saves). The decisions:

- ``enter``: does a bus event start a run of a flow for its profile (trigger, trigger filter, profile filter,
  re-entry)? The run's id comes from the trigger (crm.models.flows.run_id_for): a duplicate names the same run.
- ``on_event``: does an event arriving for the profile end a run (an exit event) or end its wait_for?
- ``decide``: the run's next action at ``now``, from ``run.next_step``; before every step the exit facts the
  profile holds (an order placed since the trigger) and the profile filter are checked again; before every
  send, in this order: exit events and profile filter, browser-only trigger, channel address and consent,
  suppression (and SNS's opt-out list), Smart Sending, quiet hours (SMS: deferred, not skipped).
- ``apply``: the run after a decision was carried out.

A run records at most one StepRecord per step (the tree has no loops): a wait's record is written when it
ends, a send's when it is sent or skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from crm.clock import UtcDateTime
from crm.models.flows import FlowDefinition, FlowRecord, FlowRun, SendEmail, SendSms, StepRecord
from crm.models.messaging import MessagingSettings
from crm.models.profile import Profile

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
    DUPLICATE = "duplicate"  # this trigger occurrence already started its run


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


# --- the decisions -------------------------------------------------------------------------------------


def enter(flow: FlowRecord, event: FlowEvent, profile: Profile, previous_runs: Sequence[FlowRun], now: datetime,
          *, segments: frozenset[str] = frozenset()) -> Entry:
    """Whether ``event`` starts a run of ``flow`` for ``profile``; ``previous_runs`` are the profile's runs of
    this flow (RunStore.runs_of_profile), ``segments`` the ids of the segments it is in (for the filter).

    Re-entry: ``once`` refuses after any previous run, ``once_per`` after one entered within ``days`` before
    ``now``, ``every_time`` never. A previous run that a newer occurrence of the trigger's own kind superseded
    (exit reason ``superseded``) before it sent anything does not count: a shopper who starts a second
    checkout an hour after the first gets the reminders for the second.
    """
    raise NotImplementedError


def on_event(definition: FlowDefinition, run: FlowRun, event: FlowEvent, now: datetime) -> Decision | None:
    """What an event arriving for the run's profile does to an active run: an Exit (one of the flow's exit
    events since the trigger; the trigger's own kind with another id is ``superseded``), a Proceed past the
    wait_for the run is waiting at (the service cancels the timeout's schedule and goes on with ``decide``), or
    None. The trigger itself, and events before it, do nothing."""
    raise NotImplementedError


def exit_from_profile(definition: FlowDefinition, run: FlowRun, profile: Profile) -> str | None:
    """An exit reason the profile already shows, whatever the bus delivered so far: an order placed after the
    trigger (``profile.last_order_at``) for an OrderPlaced exit, a later checkout (``last_checkout``) or product
    view (``last_browse``) for those exits without filters. Checked before every step."""
    raise NotImplementedError


def send_step(definition: FlowDefinition, run: FlowRun) -> SendEmail | SendSms | None:
    """The send step the run is at, if any: the service gathers SendFacts for its channel before ``decide``."""
    raise NotImplementedError


def address_of(profile: Profile, channel: Channel) -> str | None:
    """The profile's email or phone for the channel."""
    raise NotImplementedError


def decide(definition: FlowDefinition, run: FlowRun, profile: Profile, now: datetime, *,
           settings: MessagingSettings, segments: frozenset[str] = frozenset(),
           facts: SendFacts | None = None) -> Decision:
    """The run's next action at ``now``. ``facts`` are required when the run is at a send step (send_step):
    a ValueError otherwise, so that a send is never checked without them."""
    raise NotImplementedError


def apply(run: FlowRun, decision: Decision, now: datetime, *, message_id: str | None = None) -> FlowRun:
    """The run once ``decision`` was carried out (``message_id``: the sent message's, for a Send)."""
    raise NotImplementedError


__all__ = ["Action", "Channel", "Complete", "Decision", "Entry", "Exit", "ExitReason", "FlowEvent", "Proceed",
           "Refusal", "Send", "SendFacts", "Tag", "Wait", "WaitFor", "address_of", "apply", "decide", "enter",
           "exit_from_profile", "on_event", "send_step"]
