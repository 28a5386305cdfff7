"""SES's open and click tracking, emulated on the local runtime's own routes.

In AWS, a message sent in a configuration set whose event destination takes ``open`` / ``click`` events leaves
SES changed: each http(s) link of its HTML points at SES's tracking domain (``awstrack.me``), which records the
click and redirects to the original link, and a 1x1 image from that domain is added at the end of the body,
whose load records an open. SES then publishes "Email Opened" / "Email Clicked" to the destination, each load
and each click an event (``open``: timestamp, userAgent, ipAddress; ``click``: the same, the link and its
linkTags).

Here the same happens on the runtime's API server: links become ``{api}/_local/ses/click/{token}/{n}/{original}``
and the pixel ``{api}/_local/ses/open/{token}``; a GET on them puts SES's event on the default bus (as the
template's event destination says) and answers 302 to the original link, or a 1x1 GIF. As in SES: only
``<a href>`` links with http or https are tracked, a link with the ``ses:no-track`` attribute is left alone,
``ses:tags="name:value;..."`` become the click's linkTags, the text part is not changed, and tracking depends
only on the event destination's types (no event destination taking clicks: links unchanged). The redirect goes
to the link recorded at the send, never to what the URL's last segment says (it is there to be read).

The hook wraps SES v2 SendEmail outside crm_local.mailbox_simulator's: the message is rewritten before moto
stores it (so crm_local.outbound reads what the recipient would get), and its token bound to the message id
moto answers. Tokens live in this process, as long as moto's record of the message.
"""

from __future__ import annotations

import base64
import email
import email.policy
import html
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.charset import Charset
from typing import Any
from urllib.parse import quote

from crm.clock import utc_now
from moto.sesv2.responses import SESV2Response

from crm_local.http import LocalAnswer, LocalRequest, PrefixRoute
from crm_local.mailbox_simulator import (
    EventDestination,
    SentEmail,
    bus_entry,
    installed_destinations,
    mail_object,
    matching,
    put_on_bus,
)
from crm_local.outbound import CLICK_PATH, OPEN_PATH

# The smallest transparent GIF (1x1), as tracking pixels are.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

_ANCHOR = re.compile(r"<a\s[^>]*>", re.IGNORECASE | re.DOTALL)
_HREF = re.compile(r"""(\shref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_NO_TRACK = re.compile(r"\sses:no-track(?=[\s=/>])", re.IGNORECASE)
_TAGS = re.compile(r"""\sses:tags\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_RAW = email.policy.compat32.clone(linesep="\r\n")


@dataclass(frozen=True)
class Link:
    original: str
    tags: Mapping[str, list[str]]


@dataclass(frozen=True)
class Tracking:
    """What a send's message tracks: its open pixel, its links."""

    opens: bool
    clicks: bool


@dataclass(frozen=True)
class TrackedMessage:
    sent: SentEmail
    sent_at: datetime
    account: str
    region: str
    links: tuple[Link, ...]


def link_tags(text: str) -> dict[str, list[str]]:
    """``ses:tags="campaign:spring;step:1"`` -> {"campaign": ["spring"], "step": ["1"]}."""
    tags: dict[str, list[str]] = {}
    for pair in text.split(";"):
        name, _, value = pair.partition(":")
        if name.strip():
            tags.setdefault(name.strip(), []).append(value.strip())
    return tags


def rewrite_html(body: str, base_url: str, token: str, tracking: Tracking) -> tuple[str, list[Link]]:
    """The HTML as SES sends it with tracking: links rewritten (clicks), the pixel added (opens)."""
    links: list[Link] = []

    def anchor(match: re.Match[str]) -> str:
        tag = match.group(0)
        href = _HREF.search(tag)
        if href is None or _NO_TRACK.search(tag):
            return tag
        original = html.unescape(next(g for g in href.groups()[1:] if g is not None))
        if not original.lower().startswith(("http://", "https://")):
            return tag
        tags = _TAGS.search(tag)
        links.append(Link(original, link_tags(html.unescape(tags.group(1) or tags.group(2) or "")) if tags else {}))
        url = f"{base_url}{CLICK_PATH}{token}/{len(links) - 1}/{quote(original, safe='')}"
        return tag[:href.start()] + f'{href.group(1)}"{url}"' + tag[href.end():]

    rewritten = _ANCHOR.sub(anchor, body) if tracking.clicks else body
    if tracking.opens:
        pixel = f'<img alt="" src="{base_url}{OPEN_PATH}{token}" style="display: none; width: 1px; height: 1px;">'
        ends = list(_BODY_END.finditer(rewritten))
        at = ends[-1].start() if ends else len(rewritten)
        rewritten = rewritten[:at] + pixel + rewritten[at:]
    return rewritten, links


def rewrite_request(request: dict[str, Any], base_url: str, token: str,
                    tracking: Tracking) -> tuple[dict[str, Any], list[Link]]:
    """A SendEmail request with its HTML (raw MIME or simple content) as SES would send it."""
    content = request.get("Content") or {}
    if "Raw" in content:
        # compat32: the modern policy parses every header it is asked for, ten times slower on a reminder.
        message = email.message_from_bytes(base64.b64decode(content["Raw"]["Data"]), policy=_RAW)
        links: list[Link] = []
        for part in message.walk():
            if part.get_content_type() != "text/html" or part.get_content_disposition() == "attachment":
                continue
            charset = part.get_content_charset() or "utf-8"
            payload = part.get_payload(decode=True)
            body, found = rewrite_html(payload.decode(charset, "replace") if isinstance(payload, bytes) else "",
                                       base_url, token, tracking)
            del part["Content-Transfer-Encoding"]  # set_payload encodes afresh, as the charset says
            part.set_payload(body, Charset(charset))
            links.extend(found)
        data = base64.b64encode(message.as_bytes(policy=_RAW)).decode()
        return {**request, "Content": {**content, "Raw": {**content["Raw"], "Data": data}}}, links
    html_body = ((content.get("Simple") or {}).get("Body") or {}).get("Html")
    if html_body is None:
        return request, []
    body, found = rewrite_html(str(html_body.get("Data", "")), base_url, token, tracking)
    simple = content["Simple"]
    return {**request, "Content": {**content, "Simple": {
        **simple, "Body": {**simple["Body"], "Html": {**html_body, "Data": body}}}}}, found


def tracking_of(configuration_set: str | None, destinations: list[EventDestination]) -> Tracking:
    return Tracking(opens=bool(matching(destinations, configuration_set, "open")),
                    clicks=bool(matching(destinations, configuration_set, "click")))


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def open_events(message: TrackedMessage, destinations: list[EventDestination], at: datetime, user_agent: str,
                ip_address: str) -> list[dict[str, Any]]:
    """SES's "Email Opened" entries for one load of the pixel."""
    detail = {"eventType": "Open",
              "mail": mail_object(message.sent, message.account, message.region, message.sent_at),
              "open": {"timestamp": _iso(at), "userAgent": user_agent, "ipAddress": ip_address}}
    return [bus_entry(d, message.region, message.account, "Email Opened", detail, at)
            for d in matching(destinations, message.sent.configuration_set, "open")]


def click_events(message: TrackedMessage, link: Link, destinations: list[EventDestination], at: datetime,
                 user_agent: str, ip_address: str) -> list[dict[str, Any]]:
    """SES's "Email Clicked" entries for one click of a link."""
    click: dict[str, Any] = {"timestamp": _iso(at), "userAgent": user_agent, "ipAddress": ip_address,
                             "link": link.original}
    if link.tags:
        click["linkTags"] = {name: list(values) for name, values in link.tags.items()}
    detail = {"eventType": "Click",
              "mail": mail_object(message.sent, message.account, message.region, message.sent_at),
              "click": click}
    return [bus_entry(d, message.region, message.account, "Email Clicked", detail, at)
            for d in matching(destinations, message.sent.configuration_set, "click")]


_lock = threading.Lock()
_base_url: list[str] = []
_messages: dict[str, TrackedMessage] = {}
# The SendEmail handler this wraps (crm_local.mailbox_simulator's, which wraps moto_outbound's, or moto's).
_wrapped: list[Callable[[SESV2Response], str]] = []


def tracked(token: str) -> TrackedMessage | None:
    with _lock:
        return _messages.get(token)


def _send_email(self: SESV2Response) -> str:
    request = json.loads(self.body)
    tracking = tracking_of(request.get("ConfigurationSetName"), installed_destinations())
    with _lock:
        base_url = _base_url[0] if _base_url else ""
    if not (tracking.opens or tracking.clicks) or not base_url:
        return _wrapped[0](self)
    token = uuid.uuid4().hex
    rewritten, links = rewrite_request(request, base_url, token, tracking)
    self.body = json.dumps(rewritten)
    answer = _wrapped[0](self)
    sent = SentEmail.of(rewritten, str(json.loads(answer)["MessageId"]))
    with _lock:
        _messages[token] = TrackedMessage(sent, utc_now(), self.current_account, self.region, tuple(links))
    return answer


def _reader(request: LocalRequest) -> tuple[str, str]:
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    return request.headers.get("user-agent", ""), forwarded or request.peer


def _not_found(what: str) -> LocalAnswer:
    return LocalAnswer(404, json.dumps({"error": f"no tracked {what}"}).encode(),
                       {"Content-Type": "application/json"})


def open_route(request: LocalRequest) -> LocalAnswer:
    """GET {OPEN_PATH}{token}: "Email Opened" on the bus, then the pixel."""
    message = tracked(request.rest.split("/", 1)[0])
    if message is None:
        return _not_found("message")
    user_agent, ip_address = _reader(request)
    entries = open_events(message, installed_destinations(), utc_now(), user_agent, ip_address)
    put_on_bus(entries, message.account, message.region)
    return LocalAnswer(200, PIXEL_GIF, {"Content-Type": "image/gif", "Cache-Control": "no-cache, no-store"})


def click_route(request: LocalRequest) -> LocalAnswer:
    """GET {CLICK_PATH}{token}/{n}/...: "Email Clicked" on the bus, then 302 to the link as it was sent."""
    token, _, rest = request.rest.partition("/")
    number = rest.split("/", 1)[0]
    message = tracked(token)
    if message is None or not number.isdigit() or int(number) >= len(message.links):
        return _not_found("link")
    link = message.links[int(number)]
    user_agent, ip_address = _reader(request)
    put_on_bus(click_events(message, link, installed_destinations(), utc_now(), user_agent, ip_address),
               message.account, message.region)
    return LocalAnswer(302, b"", {"Location": link.original, "Cache-Control": "no-cache, no-store"})


def routes() -> dict[tuple[str, str], PrefixRoute]:
    """The tracking routes, for the runtime's API server."""
    return {("GET", OPEN_PATH): open_route, ("GET", CLICK_PATH): click_route}


def install(base_url: str) -> None:
    """Track opens and clicks of what is sent from now on, with links to the API server at ``base_url``
    (install after crm_local.mailbox_simulator: its event destinations say what is tracked)."""
    with _lock:
        _base_url[:] = [base_url.rstrip("/")]
        if not _wrapped:
            _wrapped.append(SESV2Response.send_email)
            SESV2Response.send_email = _send_email  # type: ignore[method-assign]


def uninstall() -> None:
    with _lock:
        _base_url.clear()
        _messages.clear()
        if _wrapped:
            SESV2Response.send_email = _wrapped.pop()  # type: ignore[method-assign,assignment]
