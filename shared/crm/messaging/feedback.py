"""What comes back from the messages sent: SES's bounces and complaints, and SMS replies (docs/deliverability.md).

- **Hard bounce** (SES ``bounceType`` Permanent, including an address on SES's account-level suppression
  list) or **complaint**: the address goes on the workspace's suppression list at once, with the reason and
  the time SES gives; every later email to it is skipped (the flows' pre-send check).
- **A complaint also withdraws email consent** (source ``ses complaint``). Gmail and Yahoo count a "report
  spam" as the strongest unsubscribe there is, and their bulk-sender rules expect no more marketing to that
  address: suppression stops our sends, and the withdrawn consent tells every other use of the profile
  (segment exports to other tools, the profile page) the same, on the timeline like any other source.
  A complaint whose feedback type is ``not-spam`` (the reader took it back) is no complaint.
- **Transient** and undetermined bounces (SES publishes a soft bounce only once it gave up retrying) are only
  noted: a full mailbox today is not a dead address.
- **An inbound SMS** whose message is an opt-out keyword (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT,
  REVOKE, OPTOUT / OPT OUT: the carriers' list and the FCC's 2025 revocation rule) withdraws SMS consent (source
  ``sms STOP``) for the sender's phone in every workspace that sends from the number it was sent to
  (``MessagingSettings.sms_sender``). A START reply grants nothing: consent to marketing texts comes from a
  signed source again.

Consent changes take the ingest path (crm.messaging.statements); only a phone or address the workspace
already knows has consent to withdraw, so an unknown one changes no profile. SNS keeps its own opted-out list
(a STOP also lands there), which the SMS sender checks before every message, whatever the profiles say.

The event formats are SES event publishing's (through an EventBridge event destination, on the default bus)
and two-way SMS's JSON message on an SNS topic; both are validated here, and a body that is neither, or an
event for another sender (no workspace tag), is ignored with the reason, never retried.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from crm.contact import normalise_email, normalise_phone
from crm.flows.ports import Suppressions
from crm.messaging.statements import ShopperStatement, statement_envelope
from crm.models.consent import Channel, ConsentState
from crm.models.messaging import MessagingSettings
from crm.ports import IngestQueue, ProfileRepository, RawArchive
from crm.webhooks import store_delivery

WORKSPACE_TAG = "workspace"  # the SES message tag naming the sending workspace (crm.adapters.ses)
COMPLAINT_SOURCE = "ses complaint"
SMS_STOP_SOURCE = "sms STOP"
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
                              "OPT OUT", "OPT-OUT"})
_NOT_A_COMPLAINT = "not-spam"
_PUNCTUATION = re.compile(r"[^\w\s-]")

_EVENT = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


# --- SES event publishing's records (the "detail" of an aws.ses EventBridge event) ---------------------------

class BouncedRecipient(BaseModel):
    model_config = _EVENT

    email_address: str = Field(alias="emailAddress")
    action: str | None = None
    status: str | None = None
    diagnostic_code: str | None = Field(default=None, alias="diagnosticCode")


class Bounce(BaseModel):
    model_config = _EVENT

    bounce_type: str = Field(alias="bounceType")  # Permanent | Transient | Undetermined
    bounce_sub_type: str = Field(default="", alias="bounceSubType")  # General, NoEmail, OnAccountSuppressionList...
    bounced_recipients: tuple[BouncedRecipient, ...] = Field(alias="bouncedRecipients")
    timestamp: AwareDatetime
    feedback_id: str | None = Field(default=None, alias="feedbackId")


class ComplainedRecipient(BaseModel):
    model_config = _EVENT

    email_address: str = Field(alias="emailAddress")


class Complaint(BaseModel):
    model_config = _EVENT

    complained_recipients: tuple[ComplainedRecipient, ...] = Field(default=(), alias="complainedRecipients")
    timestamp: AwareDatetime
    feedback_id: str | None = Field(default=None, alias="feedbackId")
    complaint_feedback_type: str | None = Field(default=None, alias="complaintFeedbackType")
    complaint_sub_type: str | None = Field(default=None, alias="complaintSubType")


class Mail(BaseModel):
    model_config = _EVENT

    message_id: str = Field(alias="messageId")
    timestamp: AwareDatetime | None = None
    destination: tuple[str, ...] = ()
    # Event publishing's tags: every tag the message was sent with, plus SES's own (ses:configuration-set, ...).
    tags: dict[str, list[str]] = Field(default_factory=dict)

    @property
    def workspace_id(self) -> str | None:
        values = self.tags.get(WORKSPACE_TAG) or []
        return values[0] if values and values[0] else None


class SesEventDetail(BaseModel):
    model_config = _EVENT

    event_type: str = Field(alias="eventType")  # Bounce, Complaint, Delivery, Send, Reject, DeliveryDelay, ...
    mail: Mail
    bounce: Bounce | None = None
    complaint: Complaint | None = None


# --- two-way SMS through SNS -------------------------------------------------------------------------------

class InboundSms(BaseModel):
    """The JSON message SNS carries for an SMS sent to one of the account's numbers."""

    model_config = _EVENT

    origination_number: str = Field(alias="originationNumber")  # the shopper's phone
    destination_number: str = Field(alias="destinationNumber")  # ours
    message_body: str = Field(default="", alias="messageBody", max_length=1600)
    message_keyword: str | None = Field(default=None, alias="messageKeyword")
    inbound_message_id: str = Field(alias="inboundMessageId", min_length=1)

    @property
    def opts_out(self) -> bool:
        """The message is an opt-out: a keyword alone (as carriers read it), or leading the message ("stop
        texting me"): erring towards withdrawing is the safe side of a consent rule."""
        text = " ".join(_PUNCTUATION.sub(" ", self.message_body).upper().split())
        first = text.split(" ", 1)[0] if text else ""
        return text in OPT_OUT_KEYWORDS or first in OPT_OUT_KEYWORDS or \
            (self.message_keyword or "").strip().upper() in OPT_OUT_KEYWORDS


# --- decisions (pure) ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Suppression:
    address: str  # normalised
    reason: str
    at: datetime


@dataclass(frozen=True)
class SesFeedback:
    """What one SES event asks for: addresses to suppress, email consents to withdraw, or a note only."""

    workspace_id: str | None
    suppress: tuple[Suppression, ...] = ()
    withdraw: tuple[ShopperStatement, ...] = ()
    note: str | None = None


def _address(value: str) -> str | None:
    return normalise_email(parseaddr(value)[1] or value)


def ses_feedback(detail: SesEventDetail) -> SesFeedback:
    """Decide what an SES event means for the sending workspace."""
    workspace = detail.mail.workspace_id
    if detail.event_type == "Bounce" and detail.bounce is not None:
        bounce = detail.bounce
        if bounce.bounce_type != "Permanent":
            return SesFeedback(workspace, note=f"{bounce.bounce_type.lower()} bounce ({bounce.bounce_sub_type}): "
                                                "noted, not suppressed")
        suppressions = []
        for recipient in bounce.bounced_recipients:
            address = _address(recipient.email_address)
            if address is not None:
                detail_text = ", ".join(filter(None, (bounce.bounce_sub_type, recipient.status)))
                suppressions.append(Suppression(address, f"hard bounce ({detail_text})", bounce.timestamp))
        return SesFeedback(workspace, suppress=tuple(suppressions))
    if detail.event_type == "Complaint" and detail.complaint is not None:
        complaint = detail.complaint
        if complaint.complaint_feedback_type == _NOT_A_COMPLAINT:
            return SesFeedback(workspace, note="not-spam feedback: no complaint")
        kind = complaint.complaint_sub_type or complaint.complaint_feedback_type or "complaint"
        # A mailbox provider may redact the complainant (RFC 6590); our messages have one recipient, so the
        # message's destination is who complained.
        named = [r.email_address for r in complaint.complained_recipients] or list(detail.mail.destination)
        addresses = [a for a in map(_address, named) if a]
        return SesFeedback(
            workspace,
            suppress=tuple(Suppression(a, f"complaint ({kind})", complaint.timestamp) for a in addresses),
            withdraw=tuple(ShopperStatement(
                statement_id=f"ses-complaint:{detail.mail.message_id}:{n}", channel=Channel.EMAIL,
                state=ConsentState.UNSUBSCRIBED, source=COMPLAINT_SOURCE, at=complaint.timestamp, email=a)
                for n, a in enumerate(addresses)))
    return SesFeedback(workspace, note=f"{detail.event_type}: nothing to do")


def sms_statement(message: InboundSms, at: datetime) -> ShopperStatement | None:
    """The SMS consent withdrawal an inbound message states, if it opts out (None otherwise)."""
    phone = normalise_phone(message.origination_number)
    if not message.opts_out or phone is None:
        return None
    return ShopperStatement(statement_id=f"sms:{message.inbound_message_id}", channel=Channel.SMS,
                            state=ConsentState.UNSUBSCRIBED, source=SMS_STOP_SOURCE, at=at, phone=phone)


def workspaces_sending_from(number: str, settings: Iterable[tuple[str, MessagingSettings]]) -> list[str]:
    """The workspaces whose SMS sender is ``number`` (compared in E.164; a sender id never matches)."""
    wanted = normalise_phone(number)
    return [workspace for workspace, held in settings
            if wanted is not None and held.sms_sender and normalise_phone(held.sms_sender) == wanted]


# --- applying them ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeedbackDeps:
    """What applying feedback needs (the flows function builds it in its composition root)."""

    suppressions: Suppressions
    profiles: ProfileRepository
    archive: RawArchive
    ingest: IngestQueue
    workspaces: Callable[[], Iterable[str]]  # every workspace (crm.ports.StoreDirectory.workspaces)
    messaging_settings: Callable[[str], MessagingSettings]  # crm.flows.ports.MessagingStore.messaging_settings


@dataclass(frozen=True)
class FeedbackOutcome:
    """What was done, for the log (no addresses: they are personal data)."""

    suppressed: int = 0
    withdrawn: int = 0
    workspaces: tuple[str, ...] = ()
    note: str | None = None
    ignored: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _statement(deps: FeedbackDeps, workspace_id: str, identity: str, statement: ShopperStatement,
               now: datetime) -> bool:
    """Enqueue the statement for the profile holding ``identity``; False when the workspace knows no one by it."""
    profile_id = deps.profiles.profile_id_for_identity(workspace_id, identity)
    profile = deps.profiles.get_profile(workspace_id, profile_id) if profile_id else None
    if profile is None or not profile.store_ids:
        return False
    envelope, body = statement_envelope(statement, workspace_id, sorted(profile.store_ids)[0], now)
    store_delivery(envelope, body, deps.archive, deps.ingest, "statements")
    return True


def read_ses_event(detail: Mapping[str, Any]) -> SesEventDetail:
    """The detail of an ``aws.ses`` EventBridge event (raises pydantic's ValidationError)."""
    return SesEventDetail.model_validate(detail)


def apply_ses_event(detail: Mapping[str, Any], deps: FeedbackDeps, now: datetime) -> FeedbackOutcome:
    """Suppress, withdraw or note what one SES event says. Idempotent: a redelivered event suppresses the same
    address again (the first time is kept) and its consent statement applies once (its id is the message's).

    Raises only what may succeed on a retry (AWS errors); an unreadable or foreign event is ignored."""
    try:
        event = read_ses_event(detail)
    except ValidationError as error:
        return FeedbackOutcome(ignored=f"not an SES event record: {error.errors()[0]['loc']} "
                                       f"{error.errors()[0]['msg']}")
    feedback = ses_feedback(event)
    if feedback.workspace_id is None:
        return FeedbackOutcome(ignored=f"{event.event_type} of a message without a {WORKSPACE_TAG!r} tag "
                                       "(not sent by the CRM)")
    workspace = feedback.workspace_id
    for suppression in feedback.suppress:
        deps.suppressions.suppress(workspace, suppression.address, suppression.reason, suppression.at)
    withdrawn = sum(_statement(deps, workspace, f"email#{statement.email}", statement, now)
                    for statement in feedback.withdraw)
    return FeedbackOutcome(suppressed=len(feedback.suppress), withdrawn=withdrawn, workspaces=(workspace,),
                           note=feedback.note, details={"event_type": event.event_type,
                                                        "message_id": event.mail.message_id})


def read_inbound_sms(message: str | Mapping[str, Any]) -> InboundSms:
    """Two-way SMS's JSON message, as raw delivery hands it over or wrapped in an SNS notification
    (``{"Type": "Notification", "Message": "..."}``). Raises ValueError (pydantic's or JSON's) if neither."""
    body: Any = json.loads(message) if isinstance(message, str) else dict(message)
    if isinstance(body, dict) and body.get("Type") == "Notification" and isinstance(body.get("Message"), str):
        body = json.loads(body["Message"])
    return InboundSms.model_validate(body)


def apply_inbound_sms(message: str | Mapping[str, Any], deps: FeedbackDeps, now: datetime) -> FeedbackOutcome:
    """Withdraw SMS consent for an opt-out reply, in each workspace sending from the number it was sent to."""
    try:
        sms = read_inbound_sms(message)
    except ValueError as error:  # pydantic's ValidationError and json's JSONDecodeError are ValueErrors
        return FeedbackOutcome(ignored=f"not an inbound SMS message: {str(error).splitlines()[0]}")
    statement = sms_statement(sms, now)
    if statement is None:
        return FeedbackOutcome(note="inbound SMS is no opt-out: nothing to do")
    workspaces = workspaces_sending_from(sms.destination_number,
                                         ((w, deps.messaging_settings(w)) for w in deps.workspaces()))
    if not workspaces:
        return FeedbackOutcome(ignored="an opt-out to a number no workspace sends from (SNS's opted-out list "
                                       "still holds it)")
    withdrawn = sum(_statement(deps, workspace, f"phone#{statement.phone}", statement, now)
                    for workspace in workspaces)
    return FeedbackOutcome(withdrawn=withdrawn, workspaces=tuple(workspaces))

