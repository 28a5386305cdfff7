"""What the local runtime "sent": the emails SES (v1 or v2, raw or simple) and the SMS SNS accepted, read back
from moto's record of them (GET {aws_endpoint}/moto-api/data.json), for the demo's report, e2e tests and the
bench.

Example::

    outbox = Outbox(runtime.aws_endpoint)
    mark = outbox.mark()
    ...  # drive the stack
    for email in outbox.since(mark).emails:
        print(email.to, email.subject, email.list_unsubscribe, email.tags.get("flow"))

A mark counts what had been sent when it was taken: moto lists its records in the order they were made, so
``since`` returns only what came after, without ids to remember. The runtime's time of sending, the SES v2
configuration set and message tags, and the SMS attributes are there because crm_local.moto_outbound records
them; read from a plain moto server they are empty.

Open and click tracking (crm_local.ses_tracking emulates SES's): a message sent in a configuration set whose
event destination takes opens and clicks has its HTML links rewritten to the runtime's tracking route and an
open pixel added, as SES does with awstrack.me. A test or the demo "reads" it through them::

    email = outbox.since(mark).emails_to("shopper@example.com")[0]
    open_email(email)                          # GET the pixel: SES's "Email Opened" on the default bus
    landed = click(email, containing="/cart")  # GET the tracked link: "Email Clicked"; where it redirected
    email.tracked_links                        # every rewritten link: its url, the original, the anchor text
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.error import HTTPError
from urllib.parse import unquote, urlsplit
from urllib.request import HTTPRedirectHandler, Request, build_opener, urlopen

from crm.clock import UtcDateTime
from pydantic import BaseModel, ConfigDict, Field

DATA_PATH = "/moto-api/data.json"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The runtime's stand-ins for SES's awstrack.me: /_local/ses/open/{token} and
# /_local/ses/click/{token}/{link number}/{the original link, percent-encoded}.
OPEN_PATH = "/_local/ses/open/"
CLICK_PATH = "/_local/ses/click/"
DEFAULT_USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) crm-local-outbox"
_URL = re.compile(r"https?://[^\s<>\"']+")


class TrackedLink(BaseModel):
    """A link of a sent message as SES rewrote it for click tracking."""

    model_config = ConfigDict(frozen=True)

    url: str  # what the recipient's mail client opens: a GET records the click and redirects to ``original``
    original: str  # the link as the message was written
    text: str = ""  # the anchor's text


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[str, str]] = []
        self.images: list[str] = []
        self._open: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self._open.append((str(found["href"]), []))
        elif tag == "img" and found.get("src"):
            self.images.append(str(found["src"]))

    def handle_data(self, data: str) -> None:
        for _, text in self._open:
            text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            href, text = self._open.pop()
            self.anchors.append((href, " ".join("".join(text).split())))


def _links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser


def tracked_original(url: str) -> str | None:
    """The original link a tracked click URL leads to; None if ``url`` is no tracked link."""
    path = urlsplit(url).path
    if CLICK_PATH not in path:
        return None
    parts = path.split(CLICK_PATH, 1)[1].split("/", 2)
    return unquote(parts[2]) if len(parts) == 3 else None


class SentEmail(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: str
    kind: Literal["raw", "simple"]
    source: str | None  # the envelope sender SES was given (a raw send may name none: then From)
    destinations: list[str]  # every recipient SES was given, envelope and To/Cc headers
    to: list[str]  # the To header's addresses (simple sends: Destination.ToAddresses)
    from_header: str | None = None
    subject: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)  # a raw message's top-level headers, decoded
    html: str | None = None
    text: str | None = None
    configuration_set: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    sent_at: UtcDateTime | None = None  # the runtime's (fast-forwardable) clock
    raw: str | None = None

    def header(self, name: str) -> str | None:
        """A header by name, in any case."""
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)

    @property
    def list_unsubscribe(self) -> str | None:
        return self.header("List-Unsubscribe")

    @property
    def list_unsubscribe_post(self) -> str | None:
        return self.header("List-Unsubscribe-Post")

    @property
    def unsubscribe_url(self) -> str | None:
        """The https one-click URL of List-Unsubscribe (RFC 8058), if any."""
        for part in (self.list_unsubscribe or "").split(","):
            url = part.strip().strip("<>")
            if url.startswith("https://") or url.startswith("http://"):
                return url
        return None

    @property
    def tracked_links(self) -> list[TrackedLink]:
        """The HTML's links SES rewrote for click tracking, in the order they appear (none without tracking)."""
        found = []
        for href, text in _links(self.html or "").anchors:
            original = tracked_original(href)
            if original is not None:
                found.append(TrackedLink(url=href, original=original, text=text))
        return found

    @property
    def links(self) -> list[str]:
        """Every link of the HTML as the message was written (a tracked one: its original)."""
        return [tracked_original(href) or href for href, _ in _links(self.html or "").anchors]

    def tracked_link(self, containing: str = "") -> TrackedLink:
        """The first tracked link whose original contains ``containing`` (the first one if empty)."""
        for link in self.tracked_links:
            if containing in link.original:
                return link
        raise LookupError(f"no tracked link containing {containing!r} in {self.message_id} (its links: "
                          f"{self.links}); was it sent in a configuration set with click tracking?")

    @property
    def open_url(self) -> str | None:
        """The open pixel SES added (open tracking), None without one."""
        return next((src for src in _links(self.html or "").images if OPEN_PATH in urlsplit(src).path), None)


class SentSms(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: str
    phone_number: str
    message: str
    attributes: dict[str, str] = Field(default_factory=dict)  # AWS.SNS.SMS.SenderID, AWS.SNS.SMS.SMSType, ...
    sent_at: UtcDateTime | None = None

    @property
    def links(self) -> list[str]:
        """The http(s) links of the text (the flows' short links, ``{api}/r/{code}``, for a flow's SMS)."""
        return [url.rstrip(".,;:!?)") for url in _URL.findall(self.message)]


class Mark(BaseModel):
    """How many of each kind of record moto held when the mark was taken."""

    model_config = ConfigDict(frozen=True)

    raw_emails: int = 0
    simple_emails: int = 0
    sms: int = 0


class Sent(BaseModel):
    model_config = ConfigDict(frozen=True)

    emails: list[SentEmail]  # by time of sending
    sms: list[SentSms]
    mark: Mark  # what to pass to ``since`` next time

    def emails_to(self, address: str) -> list[SentEmail]:
        wanted = address.lower()
        return [e for e in self.emails if wanted in (a.lower() for a in e.to)]

    def sms_to(self, phone: str) -> list[SentSms]:
        return [s for s in self.sms if s.phone_number == phone]


def _sent_at(record: dict[str, Any]) -> datetime | None:
    value = record.get("sent_at")
    return datetime.fromisoformat(value) if value else None


def _part(message: EmailMessage, subtype: str) -> str | None:
    body = message.get_body(preferencelist=(subtype,))
    return str(body.get_content()) if body is not None and body.get_content_subtype() == subtype else None


def parse_raw(record: dict[str, Any]) -> SentEmail:
    raw = str(record.get("raw_data") or "")
    message = email.message_from_string(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)  # the default policy's class
    headers: dict[str, str] = {}
    for name, value in message.items():
        headers.setdefault(name, str(value))
    return SentEmail(
        message_id=str(record["id"]), kind="raw", source=record.get("source"),
        destinations=list(record.get("destinations") or []),
        to=[address for _, address in getaddresses([str(v) for v in message.get_all("To", [])]) if address],
        from_header=headers.get("From"), subject=message.get("Subject"), headers=headers,
        html=_part(message, "html"), text=_part(message, "plain"),
        configuration_set=record.get("configuration_set"), tags=dict(record.get("tags") or {}),
        sent_at=_sent_at(record), raw=raw)


def parse_simple(record: dict[str, Any]) -> SentEmail:
    destinations: dict[str, list[str]] = record.get("destinations") or {}
    body = str(record.get("body") or "")
    html = body if body.lstrip().startswith("<") else None
    return SentEmail(
        message_id=str(record["id"]), kind="simple", source=record.get("source"),
        destinations=[a for kind in ("ToAddresses", "CcAddresses", "BccAddresses") for a in destinations.get(kind, [])],
        to=list(destinations.get("ToAddresses", [])), subject=record.get("subject"),
        html=html, text=None if html is not None else body, configuration_set=record.get("configuration_set"),
        tags=dict(record.get("tags") or {}), sent_at=_sent_at(record))


def parse_sms(record: dict[str, Any]) -> SentSms:
    return SentSms(message_id=str(record["message_id"]), phone_number=str(record["phone_number"]),
                   message=str(record["message"]), attributes=dict(record.get("attributes") or {}),
                   sent_at=_sent_at(record))


def read_sent(data: dict[str, Any], since: Mark | None = None) -> Sent:
    """The sends in moto's model data (data.json's content), those after ``since`` only if given."""
    since = since or Mark()
    raw = data.get("ses", {}).get("RawMessage", [])
    simple = data.get("ses", {}).get("Message", [])
    sms = data.get("sns", {}).get("SMS", [])
    emails = [parse_raw(r) for r in raw[since.raw_emails:]] + [parse_simple(r) for r in simple[since.simple_emails:]]
    # Records without a time (a plain moto server) keep moto's order, after those with one.
    emails.sort(key=lambda e: (e.sent_at is None, e.sent_at or _EPOCH))
    return Sent(emails=emails, sms=[parse_sms(r) for r in sms[since.sms:]],
                mark=Mark(raw_emails=len(raw), simple_emails=len(simple), sms=len(sms)))


class Outbox:
    """The sends of the moto server at ``aws_endpoint`` (the local runtime's AWS endpoint)."""

    def __init__(self, aws_endpoint: str, timeout: float = 60.0) -> None:
        self.url = aws_endpoint.rstrip("/") + DATA_PATH
        self.timeout = timeout

    def _data(self) -> dict[str, Any]:
        with urlopen(self.url, timeout=self.timeout) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data

    def read(self) -> Sent:
        """Everything sent since the runtime started."""
        return read_sent(self._data())

    def since(self, mark: Mark) -> Sent:
        """What was sent after ``mark`` was taken."""
        return read_sent(self._data(), mark)

    def mark(self) -> Mark:
        return self.read().mark


class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _get(url: str, user_agent: str, ip_address: str | None, timeout: float) -> tuple[int, dict[str, str]]:
    headers = {"User-Agent": user_agent}
    if ip_address:
        headers["X-Forwarded-For"] = ip_address  # the reader's address in SES's event (else the connection's)
    try:
        with build_opener(_NoRedirect).open(Request(url, headers=headers), timeout=timeout) as response:
            return response.status, dict(response.headers.items())
    except HTTPError as answer:
        if 300 <= answer.code < 400:
            return answer.code, dict(answer.headers.items())
        raise


def open_email(email: SentEmail, *, user_agent: str = DEFAULT_USER_AGENT, ip_address: str | None = None,
               timeout: float = 30.0) -> None:
    """Open the message as a mail client showing images does: GET its open pixel (SES publishes "Email
    Opened" per its configuration set). LookupError if it was sent without open tracking."""
    url = email.open_url
    if url is None:
        raise LookupError(f"{email.message_id} has no open pixel: was it sent in a configuration set with open "
                          "tracking?")
    status, _ = _get(url, user_agent, ip_address, timeout)
    if status != 200:
        raise OSError(f"the open pixel of {email.message_id} answered {status}")


def click(email: SentEmail, containing: str = "", *, user_agent: str = DEFAULT_USER_AGENT,
          ip_address: str | None = None, timeout: float = 30.0) -> str:
    """Click the message's first tracked link whose original contains ``containing``: GET it (SES publishes
    "Email Clicked") without following the redirect; the address it redirected to."""
    link = email.tracked_link(containing)
    status, headers = _get(link.url, user_agent, ip_address, timeout)
    location = next((v for k, v in headers.items() if k.lower() == "location"), None)
    if status != 302 or location is None:
        raise OSError(f"the tracked link {link.url} answered {status}, not a redirect")
    return location


def click_sms(sms: SentSms, containing: str = "", *, user_agent: str = DEFAULT_USER_AGENT,
              ip_address: str | None = None, timeout: float = 30.0) -> str:
    """Tap the text's first link containing ``containing``: GET it without following the redirect (a flow's short
    link records the click); the address it redirected to."""
    link = next((url for url in sms.links if containing in url), None)
    if link is None:
        raise LookupError(f"no link containing {containing!r} in SMS {sms.message_id} (its links: {sms.links})")
    status, headers = _get(link, user_agent, ip_address, timeout)
    location = next((v for k, v in headers.items() if k.lower() == "location"), None)
    if status not in (301, 302, 303, 307, 308) or location is None:
        raise OSError(f"the link {link} answered {status}, not a redirect")
    return location
