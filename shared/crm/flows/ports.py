"""What the flows service needs from AWS, as protocols: adapters (crm.adapters.flows, crm.adapters.scheduler,
crm.adapters.outbound) implement them over DynamoDB, EventBridge Scheduler, SES and SNS; tests use fakes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, Protocol

from crm.models.flow_stats import ALL_STEPS, Attribution, CounterRow, MessageEvent, MessageRecord
from crm.models.flows import FlowRecord, FlowRun, StepRecord, WakeUp
from crm.models.messaging import MessagingSettings, OutgoingEmail, OutgoingSms, TemplateRecord
from crm.models.profile import Profile
from crm.models.segments import HeldSegments
from crm.ports import Change

ChannelName = Literal["email", "sms"]


class StepAlreadyClaimed(Exception):
    """Another delivery claimed this run's step first: it is being done, or was done."""


class FlowCatalogue(Protocol):
    """The workspace's flow definitions (crm.adapters.flow_definitions). A built-in flow never saved is listed
    from crm.flows.builtin as a draft."""

    def list_flows(self, workspace_id: str) -> list[FlowRecord]: ...
    def get_flow(self, workspace_id: str, flow_id: str) -> FlowRecord | None: ...
    def put_flow(self, record: FlowRecord, expected_version: int | None) -> None:
        """Raises crm.ports.ConcurrentUpdate when the stored version is not ``expected_version``."""
        ...

    def delete_flow(self, workspace_id: str, flow_id: str) -> bool: ...


class FlowProfiles(Protocol):
    """What the flows service reads and writes of profiles: a crm.ports.ProfileRepository is one, and a backtest
    (crm.flows.simulate) holds the profiles as they stood at each recorded event."""

    def get_profile(self, workspace_id: str, profile_id: str) -> Profile | None: ...
    def commit(self, change: Change) -> None:
        """Raises crm.ports.ConcurrentUpdate when an item changed since it was read."""
        ...


class ProfileSegments(Protocol):
    """A profile and the segments it is in, in one read: a crm.ports.SegmentStore is one."""

    def profile_with_segments(self, workspace_id: str, profile_id: str) -> tuple[Profile, HeldSegments] | None: ...


class RunStore(Protocol):
    """Flow runs, step claims and last sends (crm.adapters.flow_runs; keys in crm.adapters.keys)."""

    def create_run(self, run: FlowRun) -> bool:
        """Store a new run; False when a run with its id exists (the trigger was delivered before)."""
        ...

    def get_run(self, workspace_id: str, profile_id: str, run_id: str) -> FlowRun | None: ...
    def save_run(self, run: FlowRun, expected_revision: int) -> None:
        """Raises crm.ports.ConcurrentUpdate when the run changed since it was read."""
        ...

    def runs_of_profile(self, workspace_id: str, profile_id: str, flow_id: str | None = None, *,
                        consistent: bool = True) -> list[FlowRun]:
        """The profile's runs (of ``flow_id`` only, if given). ``consistent=False``: read eventually consistently
        (half the read units), so perhaps missing the last moments' saves: only for a decision a condition of
        the run's save refuses when it was made on an older run (crm.flows.service ``_on_wake``)."""
        ...
    def delete_runs(self, workspace_id: str, profile_id: str) -> list[FlowRun]:
        """Delete every run of the profile (an erasure); returns them, so their schedules can go too."""
        ...

    def claim_step(self, run: FlowRun, step_id: str, at: datetime) -> None:
        """Claim a step before doing it (conditional put): raises StepAlreadyClaimed if claimed before."""
        ...

    def step_claim(self, run: FlowRun, step_id: str) -> StepRecord | None:
        """What a claimed step came to: None if unclaimed; outcome UNKNOWN if claimed and never recorded."""
        ...

    def record_step(self, run: FlowRun, record: StepRecord) -> None: ...



class WaitScheduler(Protocol):
    """One-time EventBridge Scheduler schedules that put a WakeUp on the flows queue (crm.adapters.scheduler)."""

    def schedule(self, wake: WakeUp) -> None: ...
    def cancel(self, run_id: str, step_id: str) -> None:
        """Delete the schedule if it exists (an exit, an erasure); a missing one is not an error."""
        ...


class Suppressions(Protocol):
    """The workspace's suppression list (hard bounces, complaints), by normalised address."""

    def is_suppressed(self, workspace_id: str, address: str) -> bool: ...
    def suppress(self, workspace_id: str, address: str, reason: str, at: datetime) -> None: ...


class EmailSender(Protocol):
    def send(self, email: OutgoingEmail) -> str:
        """Send by SES v2 (raw MIME); returns SES's message id."""
        ...


class SmsSender(Protocol):
    def is_opted_out(self, phone: str) -> bool:
        """SNS's opted-out list (CheckIfPhoneNumberIsOptedOut)."""
        ...

    def send(self, sms: OutgoingSms) -> str:
        """SNS Publish to the E.164 number; returns the message id."""
        ...


class MessagingStore(Protocol):
    """Messaging settings and templates per workspace (crm.adapters.flow_definitions). A built-in template
    (crm.messaging.defaults) is read from there until the workspace saves its own under the same id."""

    def messaging_settings(self, workspace_id: str) -> MessagingSettings: ...
    def put_messaging_settings(self, workspace_id: str, settings: MessagingSettings) -> None: ...
    def list_templates(self, workspace_id: str) -> Sequence[TemplateRecord]: ...
    def get_template(self, workspace_id: str, template_id: str) -> TemplateRecord | None: ...
    def put_template(self, record: TemplateRecord) -> None: ...
    def delete_template(self, workspace_id: str, template_id: str) -> bool: ...


class SenderIdentities(Protocol):
    """SES identities a workspace sends from (crm.adapters.sender_identities): the from address is asked to be
    verified when the messaging settings name it."""

    def verification_status(self, identity: str) -> str | None:
        """SES's status for an address or domain identity (SUCCESS, PENDING, FAILED, ...); None if it is none."""
        ...

    def request_verification(self, address: str) -> str:
        """Create the address's identity (SES mails it a link to confirm); answers its status."""
        ...


class MessageLedger(Protocol):
    """Flow messages and what became of them (crm.adapters.flow_stats: a message's record is its ``flow_message``
    line on the profile's timeline; keys.message_pointer)."""

    def record_sent(self, message: MessageRecord) -> None:
        """Store the message as sent, as its timeline line (and its pointer by message id where tags cannot find
        it); a second call for the same id does nothing."""
        ...

    def find(self, message_id: str, workspace_id: str | None = None, profile_id: str | None = None,
             sent_at: datetime | None = None) -> MessageRecord | None:
        """The message by id and the ``workspace_id``/``profile_id``/``sent_at`` its SES tags carry
        (crm.models.flow_stats.SENT_TAG; without it, an email sent before the tag); by id alone only an SMS (its
        status carries no tags) or a message a merge moved (its tags name the merged profile)."""
        ...

    def message_of_step(self, workspace_id: str, profile_id: str, run_id: str, step_id: str,
                        claimed_at: datetime) -> MessageRecord | None:
        """The message the run's step sent, the step claimed at ``claimed_at`` (a send is recorded at its
        claim's moment); None when there is none (a claim whose send never happened, or not yet)."""
        ...

    def note_event(self, message: MessageRecord, event: MessageEvent) -> MessageRecord | None:
        """Record the event's first occurrence on the message (conditional update); the updated record, or
        None when this event type was recorded before (a repeated open, SES's redelivery): count nothing."""
        ...

    def touches(self, workspace_id: str, profile_id: str, since: datetime) -> list[MessageRecord]:
        """The profile's messages sent at or after ``since`` (attribution's candidates)."""
        ...

    def move_messages(self, workspace_id: str, from_profile_id: str, to_profile_id: str) -> int:
        """A merge: the merged profile's messages become the survivor's, events kept, so an order of the
        survivor finds them; the number moved (a repeated call moves what is left: nothing)."""
        ...


class FlowCounters(Protocol):
    """Per flow, day, step and variant counters (crm.adapters.flow_stats; keys.flow_counters)."""

    def add(self, workspace_id: str, flow_id: str, day: date, counts: Mapping[str, int | Decimal],
            step_id: str = ALL_STEPS, variant: str = ALL_STEPS) -> None: ...

    def add_rows(self, workspace_id: str, flow_id: str, day: date,
                 rows: Mapping[tuple[str, str], Mapping[str, int | Decimal]]) -> None:
        """Add to several (step, variant) rows of one flow and day at once: what one batch, delivery, message event or
        attribution counted (DynamoDB: one write, crm.adapters.flow_stats)."""
        ...

    def rows(self, workspace_id: str, flow_id: str, first_day: date, last_day: date) -> list[CounterRow]: ...


class Attributions(Protocol):
    """Orders credited to flow messages (crm.adapters.flow_stats; keys.attribution)."""

    def claim(self, attribution: Attribution) -> bool:
        """Store it unless the order was attributed before (then False: never attributed twice)."""
        ...

    def get(self, workspace_id: str, store_id: str, order_id: str) -> Attribution | None: ...

    def add_refund(self, workspace_id: str, store_id: str, order_id: str, refund_id: str,
                   amount: Decimal) -> Attribution | None:
        """Add a refund once per ``refund_id``; the updated attribution, or None (no attribution, or the
        refund was counted before)."""
        ...


class SplitWinners(Protocol):
    """A/B winners once decided (crm.adapters.flow_stats; keys.split_winner)."""

    def winners(self, workspace_id: str, flow_id: str) -> dict[str, int]:
        """Split id -> the winning path number."""
        ...

    def decide(self, workspace_id: str, flow_id: str, split_id: str, path: int, at: datetime) -> int:
        """Store the winner unless one was stored before; answers the stored one."""
        ...

    def due_for_check(self, workspace_id: str, flow_id: str, split_id: str) -> bool:
        """Whether a run at this undecided split should read the flow's counters to settle it now (a container
        holding the winners checks a split at most once a while: crm.flows.catalogue.HeldWinners)."""
        ...
