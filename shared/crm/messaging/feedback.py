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

**What became of each flow message** (issue 11, docs/deliverability.md "Message events"): every SES event type
(Send, Delivery, Open, Click, Bounce, Complaint, DeliveryDelay, Reject, Rendering Failure) and SNS's SMS
delivery status (its CloudWatch Logs lines) becomes a MessageEvent, recorded once per type on the message
(MessageLedger.note_event). Its first occurrence adds to the message's counters (bounced, opened, clicked,
complained, unsubscribed, an SMS's delivered; an email is counted delivered when SES accepts it and taken back
by its bounce or rejection: crm.flows.counting.message_event_counts) on the flow-wide row and its step's row
(naming its A/B variant, crm.flows.counting.message_rows), on the event's UTC day, and writes a timeline line
for what a marketer reads on a profile: email_opened, email_clicked, email_bounced, email_complained,
sms_delivered, sms_failed, sms_clicked (a delivered email is no line: every send has its ``flow_message`` line
already). A repeated event (a second open, SES's redelivery) counts nothing.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from crm.contact import normalise_email, normalise_phone
from crm.flows.counting import message_event_counts, message_rows
from crm.flows.inbox import LinkFollowed
from crm.flows.ports import FlowCounters, MessageLedger, Suppressions
from crm.messaging.statements import ShopperStatement, statement_envelope
from crm.models.consent import Channel, ConsentState
from crm.models.flow_stats import SENT_TAG, MessageEvent, MessageEventType, MessageRecord, sent_of_tag
from crm.models.messaging import MessagingSettings
from crm.models.profile import TimelineEntry
from crm.ports import Change, IngestQueue, ProfileRepository, RawArchive
from crm.webhooks import store_delivery

WORKSPACE_TAG = "workspace"  # the SES message tag naming the sending workspace (crm.adapters.ses)
PROFILE_TAG = "profile"  # the recipient's profile (crm.messaging.compose): finds the message without its pointer,
# with the moment it was sent (crm.models.flow_stats.SENT_TAG): its record's key
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

    def tag(self, name: str) -> str | None:
        values = self.tags.get(name) or []
        return values[0] if values and values[0] else None

    @property
    def workspace_id(self) -> str | None:
        return self.tag(WORKSPACE_TAG)


class Delivery(BaseModel):
    model_config = _EVENT

    timestamp: AwareDatetime
    smtp_response: str | None = Field(default=None, alias="smtpResponse")


class Open(BaseModel):
    model_config = _EVENT

    timestamp: AwareDatetime
    user_agent: str | None = Field(default=None, alias="userAgent")


class Click(BaseModel):
    model_config = _EVENT

    timestamp: AwareDatetime
    link: str = Field(min_length=1)
    link_tags: dict[str, list[str]] = Field(default_factory=dict, alias="linkTags")


class DeliveryDelay(BaseModel):
    model_config = _EVENT

    timestamp: AwareDatetime
    delay_type: str | None = Field(default=None, alias="delayType")  # InternalFailure, MailboxFull, ...


class Reject(BaseModel):
    model_config = _EVENT

    reason: str | None = None  # "Bad content" (a virus)


class RenderingFailure(BaseModel):
    model_config = _EVENT

    error_message: str | None = Field(default=None, alias="errorMessage")


class SesEventDetail(BaseModel):
    model_config = _EVENT

    # Send, Delivery, Open, Click, Bounce, Complaint, DeliveryDelay, Reject, Rendering Failure, Subscription
    event_type: str = Field(alias="eventType")
    mail: Mail
    bounce: Bounce | None = None
    complaint: Complaint | None = None
    delivery: Delivery | None = None
    open: Open | None = None
    click: Click | None = None
    delivery_delay: DeliveryDelay | None = Field(default=None, alias="deliveryDelay")
    reject: Reject | None = None
    failure: RenderingFailure | None = None  # a Rendering Failure's record is named "failure"


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


# --- message events (pure) ----------------------------------------------------------------------------------

def is_unsubscribe_link(link: str) -> bool:
    """SES wraps every link, the footer's unsubscribe link too: following it is an unsubscribe (counted by the
    link itself, crm.messaging.links), not a click that may earn the message an order."""
    return "/unsubscribe/" in urlparse(link).path


def ses_message_event(detail: SesEventDetail) -> MessageEvent | None:
    """The MessageEvent an SES event record states; None for one that says nothing about the message (a
    not-spam complaint, a Subscription event, a click on the unsubscribe link, a record missing its part).

    A transient or undetermined bounce is a delay (SES publishes it once it gave up retrying: the address
    may work tomorrow), so only a permanent one is ``bounced``. Send, Reject and Rendering Failure carry no
    time of their own: the message's is used."""
    message_id, mail_at = detail.mail.message_id, detail.mail.timestamp
    kind = detail.event_type
    if kind == "Send" and mail_at is not None:
        return MessageEvent(message_id=message_id, type=MessageEventType.SENT, at=mail_at)
    if kind == "Delivery" and detail.delivery is not None:
        return MessageEvent(message_id=message_id, type=MessageEventType.DELIVERED, at=detail.delivery.timestamp)
    if kind == "Open" and detail.open is not None:
        return MessageEvent(message_id=message_id, type=MessageEventType.OPENED, at=detail.open.timestamp)
    if kind == "Click" and detail.click is not None and not is_unsubscribe_link(detail.click.link):
        return MessageEvent(message_id=message_id, type=MessageEventType.CLICKED, at=detail.click.timestamp,
                            link=detail.click.link)
    if kind in ("Bounce", "Complaint"):
        return _feedback_event(detail)
    if kind == "DeliveryDelay" and detail.delivery_delay is not None:
        return MessageEvent(message_id=message_id, type=MessageEventType.DELIVERY_DELAYED,
                            at=detail.delivery_delay.timestamp, detail=detail.delivery_delay.delay_type)
    if kind == "Reject" and mail_at is not None:
        return MessageEvent(message_id=message_id, type=MessageEventType.REJECTED, at=mail_at,
                            detail=detail.reject.reason if detail.reject else None)
    if kind == "Rendering Failure" and mail_at is not None:
        return MessageEvent(message_id=message_id, type=MessageEventType.RENDERING_FAILED, at=mail_at,
                            detail=detail.failure.error_message if detail.failure else None)
    return None


def _feedback_event(detail: SesEventDetail) -> MessageEvent | None:
    message_id = detail.mail.message_id
    if detail.bounce is not None:
        bounce = detail.bounce
        text = " ".join(filter(None, (bounce.bounce_type, bounce.bounce_sub_type)))
        kept = MessageEventType.BOUNCED if bounce.bounce_type == "Permanent" else MessageEventType.DELIVERY_DELAYED
        return MessageEvent(message_id=message_id, type=kept, at=bounce.timestamp, detail=text)
    complaint = detail.complaint
    if complaint is None or complaint.complaint_feedback_type == _NOT_A_COMPLAINT:
        return None
    return MessageEvent(message_id=message_id, type=MessageEventType.COMPLAINED, at=complaint.timestamp,
                        detail=complaint.complaint_sub_type or complaint.complaint_feedback_type)


# SNS's SMS delivery status log line (CloudWatch Logs, sns/<region>/<account>/DirectPublishToPhoneNumber and
# .../Failure), as documented in "Viewing Amazon CloudWatch metrics and logs for SMS" (SNS developer guide).

class SmsNotificationPart(BaseModel):
    model_config = _EVENT

    message_id: str = Field(alias="messageId", min_length=1)  # what Publish answered (OutgoingSms' message id)
    timestamp: str  # "2016-06-28 00:40:34.558", UTC without a zone


class SmsDeliveryPart(BaseModel):
    model_config = _EVENT

    destination: str | None = None
    provider_response: str | None = Field(default=None, alias="providerResponse")
    sms_type: str | None = Field(default=None, alias="smsType")


class SmsDeliveryStatus(BaseModel):
    model_config = _EVENT

    notification: SmsNotificationPart
    delivery: SmsDeliveryPart = Field(default_factory=SmsDeliveryPart)
    status: Literal["SUCCESS", "FAILURE"]

    @property
    def at(self) -> datetime:
        text = self.notification.timestamp.strip().replace("T", " ").removesuffix("Z")
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=UTC)


def read_sms_status(line: str) -> SmsDeliveryStatus:
    """One delivery status log line; raises ValueError (pydantic's, JSON's, or a bad timestamp)."""
    status = SmsDeliveryStatus.model_validate_json(line)
    status.at  # noqa: B018 -- the timestamp is checked now, not when it is first used
    return status


def sms_message_event(status: SmsDeliveryStatus) -> MessageEvent:
    """SUCCESS: the carrier accepted it (``delivered``); FAILURE: it did not (``failed``, with its reason)."""
    if status.status == "SUCCESS":
        return MessageEvent(message_id=status.notification.message_id, type=MessageEventType.DELIVERED,
                            at=status.at)
    return MessageEvent(message_id=status.notification.message_id, type=MessageEventType.FAILED, at=status.at,
                        detail=status.delivery.provider_response)


def read_log_lines(event: Mapping[str, Any]) -> list[str]:
    """The log lines of a CloudWatch Logs subscription's Lambda event (``{"awslogs": {"data": <base64 of the
    gzipped JSON>}}``); none for its CONTROL_MESSAGE (the check Logs sends when the subscription is made).
    Raises ValueError when the event is no such payload."""
    try:
        data = event["awslogs"]["data"]
        body = json.loads(gzip.decompress(base64.b64decode(data, validate=True)))
    except (KeyError, TypeError, binascii.Error, OSError, EOFError, zlib.error, json.JSONDecodeError) as error:
        raise ValueError(f"not a CloudWatch Logs subscription event: {error}") from None
    if not isinstance(body, dict) or body.get("messageType") != "DATA_MESSAGE":
        return []
    return [str(line["message"]) for line in body.get("logEvents", []) if isinstance(line, dict)
            and "message" in line]


# What a marketer reads on a profile's timeline, by channel.
TIMELINE_LINES: Mapping[tuple[str, MessageEventType], str] = {
    ("email", MessageEventType.OPENED): "email_opened", ("email", MessageEventType.CLICKED): "email_clicked",
    ("email", MessageEventType.BOUNCED): "email_bounced", ("email", MessageEventType.COMPLAINED): "email_complained",
    ("sms", MessageEventType.DELIVERED): "sms_delivered", ("sms", MessageEventType.FAILED): "sms_failed",
    ("sms", MessageEventType.CLICKED): "sms_clicked",
}


def timeline_entry(message: MessageRecord, event: MessageEvent) -> TimelineEntry | None:
    line = TIMELINE_LINES.get((message.channel, event.type))
    if line is None:
        return None
    summary: dict[str, Any] = {"flow_id": message.flow_id, "step_id": message.step_id, "channel": message.channel,
                               "message_id": message.message_id}
    if event.link is not None:
        summary["link"] = event.link
    if event.detail is not None:
        summary["detail"] = event.detail
    return TimelineEntry(workspace_id=message.workspace_id, profile_id=message.profile_id, occurred_at=event.at,
                         type=line, ref=f"{message.message_id}:{event.type.value}", summary=summary)


# --- applying them ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MessageEvents:
    """Records what became of flow messages: on the message, in the flow's counters, on the timeline (the
    flows function for SES and SMS status, the track function for SMS clicks and unsubscribe links)."""

    ledger: MessageLedger
    counters: FlowCounters
    profiles: ProfileRepository

    def record(self, event: MessageEvent, workspace_id: str | None = None, profile_id: str | None = None,
               message: MessageRecord | None = None, sent_at: datetime | None = None) -> str:
        """Record the event on its message; answers what was done, for the log: "recorded", "repeated" (this
        type was recorded on the message before: nothing counted) or "not a flow message" (a double opt-in
        email, or a message sent before messages were recorded)."""
        found = message or self.ledger.find(event.message_id, workspace_id, profile_id, sent_at)
        if found is None:
            return "not a flow message"
        if event.type is MessageEventType.CLICKED and found.channel == "email" and \
                MessageEventType.OPENED not in found.events:
            # Images off: the pixel never loaded, yet whoever clicked read the email. Counting the click as an
            # open keeps clicks <= opens, as every rate that divides one by the other assumes.
            opened = self._note(found, event.model_copy(update={"type": MessageEventType.OPENED, "link": None}))
            found = opened or found
        return "recorded" if self._note(found, event) is not None else "repeated"

    def _note(self, message: MessageRecord, event: MessageEvent) -> MessageRecord | None:
        updated = self.ledger.note_event(message, event)
        if updated is None:
            return None
        counts = message_event_counts(updated, event)
        if counts:
            self.counters.add_rows(updated.workspace_id, updated.flow_id, event.at.date(),
                                   dict.fromkeys(message_rows(updated), counts))
        entry = timeline_entry(updated, event)
        if entry is not None:
            self.profiles.commit(Change(updated.workspace_id, timeline=(entry,)))
        return updated


@dataclass(frozen=True)
class FeedbackDeps:
    """What applying feedback needs (the flows function builds it in its composition root)."""

    suppressions: Suppressions
    profiles: ProfileRepository
    archive: RawArchive
    ingest: IngestQueue
    workspaces: Callable[[], Iterable[str]]  # every workspace (crm.ports.StoreDirectory.workspaces)
    messaging_settings: Callable[[str], MessagingSettings]  # crm.flows.ports.MessagingStore.messaging_settings
    events: MessageEvents


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
    message_event = ses_message_event(event)
    recorded = deps.events.record(message_event, workspace, event.mail.tag(PROFILE_TAG),
                                  sent_at=sent_of_tag(event.mail.tag(SENT_TAG))) \
        if message_event is not None else "no message event"
    return FeedbackOutcome(suppressed=len(feedback.suppress), withdrawn=withdrawn, workspaces=(workspace,),
                           note=feedback.note, details={"event_type": event.event_type,
                                                        "message_id": event.mail.message_id,
                                                        "message_event": recorded})


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



def apply_sms_statuses(event: Mapping[str, Any], deps: FeedbackDeps) -> FeedbackOutcome:
    """Record each SMS delivery status line of a CloudWatch Logs subscription event on its message (found by
    SNS's message id alone: the status names no workspace). A line that is no delivery status is ignored
    with the reason; only AWS errors raise (Lambda retries the event, then keeps it in the dead-letter queue)."""
    try:
        lines = read_log_lines(event)
    except ValueError as error:
        return FeedbackOutcome(ignored=str(error))
    outcomes: dict[str, int] = {}
    for line in lines:
        try:
            status = read_sms_status(line)
        except ValueError:
            outcomes["not a delivery status"] = outcomes.get("not a delivery status", 0) + 1
            continue
        done = deps.events.record(sms_message_event(status))
        outcomes[done] = outcomes.get(done, 0) + 1
    return FeedbackOutcome(details={"sms_statuses": outcomes})


# A link is made as its message is composed, moments before the send (seconds, whole, in an unsubscribe token).
_COMPOSED_BEFORE_SENT = timedelta(minutes=5)


def _link_message(notice: LinkFollowed, deps: FeedbackDeps) -> MessageRecord | None:
    """The run's message at the step among the profile's messages sent since the link was made; when the profile
    was merged since, its messages moved to the live profile (MessageLedger.move_messages): looked for there."""
    since = notice.issued_at - _COMPOSED_BEFORE_SENT

    def among(profile_id: str) -> MessageRecord | None:
        found = [m for m in deps.events.ledger.touches(notice.workspace_id, profile_id, since)
                 if (m.run_id, m.step_id, m.channel) == (notice.run_id, notice.step_id, notice.channel)]
        return found[0] if found else None

    message = among(notice.profile_id)
    if message is None:
        live = deps.profiles.get_profile(notice.workspace_id, notice.profile_id)  # follows merges
        if live is not None and live.profile_id != notice.profile_id:
            message = among(live.profile_id)
    return message


def apply_link_followed(notice: LinkFollowed, deps: FeedbackDeps) -> FeedbackOutcome:
    """Record an SMS click or an unsubscribe on the message its link is in."""
    message = _link_message(notice, deps)
    if message is None:
        return FeedbackOutcome(workspaces=(notice.workspace_id,),
                               ignored=f"no {notice.channel} message of run {notice.run_id} at {notice.step_id}")
    event = MessageEvent(message_id=message.message_id, type=notice.type, at=notice.at, link=notice.link)
    done = deps.events.record(event, message=message)
    return FeedbackOutcome(workspaces=(notice.workspace_id,),
                           details={"message_id": message.message_id, "message_event": f"{notice.type.value} {done}"})
