"""SES's event publishing, emulated: moto accepts a send and publishes no event, so here a send through SES v2
in a configuration set produces the events SES would publish, on the same path as in AWS.

SES publishes, per the configuration set's event destinations (template.yaml's
``AWS::SES::ConfigurationSetEventDestination``, kept by provisioning in ``Provisioned.ses_event_destinations``)
that are EventBridge and match the event type: "Email Sent" once per message, then for each recipient its
outcome. Any address is delivered ("Email Delivered"), except SES's mailbox simulator's (docs: "Using the
mailbox simulator"): ``success@``, ``bounce@``, ``ooto@``, ``complaint@`` and
``suppressionlist@simulator.amazonses.com``, each also with a ``+label`` (so that many tests or simulated
shoppers can each have their own address), which bounce, complain or are suppressed as SES's do. The events go
on the default bus as source ``aws.ses`` with the detail of event publishing (mail with its headers and tags,
then send, delivery, bounce or complaint); the template's rule on the default bus routes them to the flows
queue. Opens and clicks: crm_local.ses_tracking.

The hook is moto's SES v2 SendEmail handler, wrapped in the runtime's process (moto's server runs there), and
the event goes to moto's EventBridge backend in the same process, at once: SES takes seconds, and a test or
the demo waiting for the runtime to be idle then finds the event already queued. Times are the runtime's
clock (crm.clock), which ``crm clock advance`` moves.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr
from typing import Any

from crm.clock import utc_now
from moto.events.models import events_backends
from moto.sesv2.responses import SESV2Response

from crm_local.provision import Provisioned

SIMULATOR_DOMAIN = "simulator.amazonses.com"
DEFAULT_BUS = "default"

# What each simulator mailbox does: (event type as MatchingEventTypes names it, SES's eventType, detail-type).
# Any other address is delivered.
DELIVERED = "delivered"
_OUTCOMES = {
    DELIVERED: ("delivery", "Delivery", "Email Delivered"),
    "success": ("delivery", "Delivery", "Email Delivered"),
    "ooto": ("delivery", "Delivery", "Email Delivered"),  # delivered; the out-of-office reply is not an event
    "bounce": ("bounce", "Bounce", "Email Bounced"),
    "suppressionlist": ("bounce", "Bounce", "Email Bounced"),
    "complaint": ("complaint", "Complaint", "Email Complaint Received"),
}


def simulator_mailbox(address: str) -> str | None:
    """``bounce`` for ``bounce+alice@simulator.amazonses.com`` (any case); None for any other address."""
    local, _, domain = parseaddr(address)[1].lower().rpartition("@")
    mailbox = local.split("+", 1)[0]
    return mailbox if domain == SIMULATOR_DOMAIN and mailbox in _OUTCOMES and mailbox != DELIVERED else None


@dataclass(frozen=True)
class EventDestination:
    configuration_set: str
    matching_types: frozenset[str]  # lower case, as CloudFormation lists them: bounce, complaint, delivery...
    bus_arn: str


def event_destinations(provisioned: Provisioned) -> list[EventDestination]:
    """The template's SES event destinations that publish to EventBridge (as provisioning kept them: moto's SES
    has none)."""
    return [EventDestination(configuration_set, frozenset(t.lower() for t in destination["MatchingEventTypes"]),
                             str(destination["EventBridgeDestination"]["EventBusArn"]))
            for configuration_set, destinations in provisioned.ses_event_destinations.items()
            for destination in destinations
            if destination.get("EventBridgeDestination") and destination.get("Enabled", False)]


@dataclass(frozen=True)
class SentEmail:
    """What SES v2 SendEmail was asked, and the message id it answered."""

    message_id: str
    from_address: str
    destinations: tuple[str, ...]
    configuration_set: str | None
    tags: Mapping[str, str]
    headers: tuple[tuple[str, str], ...] = ()  # a raw message's top-level headers, in order
    subject: str | None = None
    to_header: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, request: Mapping[str, Any], message_id: str) -> SentEmail:
        destination = request.get("Destination", {})
        recipients = [a for field in ("ToAddresses", "CcAddresses", "BccAddresses") for a in destination.get(field, [])]
        content = request.get("Content") or {}
        headers: tuple[tuple[str, str], ...] = ()
        subject = (content.get("Simple") or {}).get("Subject", {}).get("Data")
        to_header = tuple(destination.get("ToAddresses", []))
        if "Raw" in content:
            headers = raw_headers(content["Raw"].get("Data", ""))
            subject = next((v for k, v in headers if k.lower() == "subject"), None)
            to_header = tuple(a for _, a in getaddresses([v for k, v in headers if k.lower() == "to"]) if a)
        return cls(message_id=message_id, from_address=str(request.get("FromEmailAddress", "")),
                   destinations=tuple(recipients), configuration_set=request.get("ConfigurationSetName"),
                   tags={str(t["Name"]): str(t["Value"]) for t in request.get("EmailTags", [])},
                   headers=headers, subject=subject, to_header=to_header)


def raw_headers(data: str | bytes) -> tuple[tuple[str, str], ...]:
    """The top-level headers of a raw message as SendEmail takes it (base64), decoded (the body is not parsed:
    this runs on every send)."""
    try:
        raw = base64.b64decode(data)
    except (binascii.Error, ValueError):
        return ()
    message = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    return tuple((name, " ".join(str(make_header(decode_header(value))).split())) for name, value in message.items())


def mail_object(sent: SentEmail, account: str, region: str, sent_at: datetime) -> dict[str, Any]:
    """The ``mail`` object of every event SES publishes for the message (the send's time, not the event's)."""
    sender = parseaddr(sent.from_address)[1]
    tags: dict[str, list[str]] = {"ses:operation": ["SendEmail"], "ses:source-ip": ["127.0.0.1"],
                                  "ses:from-domain": [sender.rpartition("@")[2]],
                                  "ses:caller-identity": ["crm-local"]}
    if sent.configuration_set:
        tags["ses:configuration-set"] = [sent.configuration_set]
    tags.update({name: [value] for name, value in sent.tags.items()})
    common: dict[str, Any] = {"from": [sent.from_address], "to": list(sent.to_header),
                              "messageId": sent.message_id}
    if sent.subject is not None:
        common["subject"] = sent.subject
    for name, value in sent.headers:
        if name.lower() == "date":
            common["date"] = value
    return {"timestamp": _iso(sent_at), "source": sent.from_address,
            "sourceArn": f"arn:aws:ses:{region}:{account}:identity/{sender}", "sendingAccountId": account,
            "messageId": sent.message_id, "destination": list(sent.destinations), "headersTruncated": False,
            "headers": [{"name": name, "value": value} for name, value in sent.headers],
            "commonHeaders": common, "tags": tags}


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _outcome_detail(mailbox: str, recipients: list[str], at: datetime) -> tuple[str, dict[str, Any]]:
    feedback_id = f"{uuid.uuid4().hex}-000000"
    if mailbox == "bounce":
        return "bounce", {"bounceType": "Permanent", "bounceSubType": "General", "timestamp": _iso(at),
                          "feedbackId": feedback_id, "reportingMTA": "dns; amazonses.com",
                          "bouncedRecipients": [{"emailAddress": r, "action": "failed", "status": "5.1.1",
                                                 "diagnosticCode": "smtp; 550 5.1.1 user unknown"} for r in recipients]}
    if mailbox == "suppressionlist":
        return "bounce", {"bounceType": "Permanent", "bounceSubType": "OnAccountSuppressionList",
                          "timestamp": _iso(at), "feedbackId": feedback_id, "reportingMTA": "dns; amazonses.com",
                          "bouncedRecipients": [{"emailAddress": r, "action": "failed", "diagnosticCode":
                                                 "Amazon SES did not send the message to this address because it "
                                                 "is on the suppression list for your account."}
                                                for r in recipients]}
    if mailbox == "complaint":
        return "complaint", {"complainedRecipients": [{"emailAddress": r} for r in recipients],
                             "timestamp": _iso(at), "feedbackId": feedback_id,
                             "userAgent": "Amazon SES Mailbox Simulator", "complaintFeedbackType": "abuse",
                             "arrivalDate": _iso(at)}
    return "delivery", {"timestamp": _iso(at), "processingTimeMillis": 0, "recipients": recipients,
                        "smtpResponse": "250 2.6.0 Message received", "reportingMTA": "a8-70.smtp-out.amazonses.com",
                        "remoteMtaIp": "127.0.0.1"}


def outcome_of(address: str) -> str:
    """What SES does with a recipient: a simulator mailbox's outcome, else delivered (one delivery event lists
    every delivered recipient, the simulator's success and ooto mailboxes included)."""
    mailbox = simulator_mailbox(address) or DELIVERED
    return DELIVERED if _OUTCOMES[mailbox][0] == "delivery" else mailbox


def bus_entry(destination: EventDestination, region: str, account: str, detail_type: str, detail: dict[str, Any],
              at: datetime) -> dict[str, Any]:
    """A PutEvents entry as SES puts one on the destination's bus."""
    configuration_set = f"arn:aws:ses:{region}:{account}:configuration-set/{destination.configuration_set}"
    # Time in epoch seconds, as boto3 sends PutEvents' Time and moto's backend takes it.
    return {"Source": "aws.ses", "DetailType": detail_type, "Detail": json.dumps(detail),
            "Resources": [configuration_set], "EventBusName": destination.bus_arn, "Time": at.timestamp()}


def matching(destinations: Iterable[EventDestination], configuration_set: str | None,
             kind: str) -> list[EventDestination]:
    """The destinations of the message's configuration set that take ``kind`` (send, delivery, open, ...)."""
    return [d for d in destinations if d.configuration_set == configuration_set and kind in d.matching_types]


def ses_events(sent: SentEmail, destinations: list[EventDestination], account: str, region: str,
               at: datetime) -> Iterator[dict[str, Any]]:
    """The PutEvents entries SES would publish for a send: "Email Sent", then one per outcome (delivered,
    bounced, complained), each for every matching destination."""
    mail = mail_object(sent, account, region, at)
    for destination in matching(destinations, sent.configuration_set, "send"):
        yield bus_entry(destination, region, account, "Email Sent", {"eventType": "Send", "mail": mail, "send": {}},
                        at)
    by_outcome: dict[str, list[str]] = {}
    for recipient in sent.destinations:
        by_outcome.setdefault(outcome_of(recipient), []).append(parseaddr(recipient)[1])
    for mailbox, recipients in by_outcome.items():
        kind, event_type, detail_type = _OUTCOMES[mailbox]
        field_name, outcome = _outcome_detail(mailbox, recipients, at)
        for destination in matching(destinations, sent.configuration_set, kind):
            yield bus_entry(destination, region, account, detail_type,
                            {"eventType": event_type, "mail": mail, field_name: outcome}, at)


def put_on_bus(entries: Iterable[dict[str, Any]], account: str, region: str) -> None:
    """Put SES's events on moto's EventBridge (this process's backend: at once)."""
    backend = events_backends[account][region]
    for entry in entries:
        [result] = backend.put_events([entry])
        if "ErrorCode" in result:
            raise RuntimeError(f"the SES emulation could not publish {entry['DetailType']}: {result}")


def installed_destinations() -> list[EventDestination]:
    with _lock:
        return list(_destinations)


_lock = threading.Lock()
_destinations: list[EventDestination] = []
# The SendEmail handler this wraps: whatever was installed before (crm_local.moto_outbound's stamping, or moto's).
_wrapped: list[Callable[[SESV2Response], str]] = []


def _send_email(self: SESV2Response) -> str:
    answer = _wrapped[0](self)
    sent = SentEmail.of(json.loads(self.body), str(json.loads(answer)["MessageId"]))
    put_on_bus(ses_events(sent, installed_destinations(), self.current_account, self.region, utc_now()),
               self.current_account, self.region)
    return answer


def install(provisioned: Provisioned) -> list[EventDestination]:
    """Emulate SES's event publishing for the provisioned stack's event destinations (in this process's moto)."""
    found = event_destinations(provisioned)
    with _lock:
        _destinations[:] = found
        if not _wrapped:
            _wrapped.append(SESV2Response.send_email)
            SESV2Response.send_email = _send_email  # type: ignore[method-assign]
    return found


def uninstall() -> None:
    with _lock:
        _destinations.clear()
        if _wrapped:
            SESV2Response.send_email = _wrapped.pop()  # type: ignore[method-assign,assignment]
