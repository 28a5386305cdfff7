"""SES's event publishing and open / click tracking as the local runtime emulates them, on the provisioned stack:
a send in the template's configuration set publishes "Email Sent" and "Email Delivered" for any address; with
open and click tracking, the stored message (what crm_local.outbound reads) has its links rewritten to the
runtime's tracking routes and an open pixel, and a GET on them puts "Email Opened" / "Email Clicked" on the
default bus in SES's format, then answers a GIF / redirects to the original link."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.request import urlopen

import pytest
from crm_local import mailbox_simulator, moto_outbound, ses_tracking
from crm_local.demo import free_port
from crm_local.http import api_server
from crm_local.outbound import Outbox, SentEmail, click, open_email
from crm_local.provision import Provisioned
from moto.server import ThreadedMotoServer

from tests.aws import client, queue_arn, receive_all

pytestmark = pytest.mark.integration

SENDER = "store@crm-local.example"
CART = "https://shop.example/cart/recover?token=abc&utm_source=crm"


@dataclass(frozen=True)
class Emulated:
    provisioned: Provisioned
    outbox: Outbox
    api_url: str
    ses_events: str  # a queue taking every aws.ses event of the default bus
    configuration_set: str


def _with_types(provisioned: Provisioned, types: list[str] | None) -> Provisioned:
    """The stack, its configuration set's event destination taking ``types`` (None: the template's)."""
    if types is None:
        return provisioned
    tracked = copy.copy(provisioned)
    tracked.ses_event_destinations = {name: [{**d, "MatchingEventTypes": types} for d in destinations]
                                      for name, destinations in provisioned.ses_event_destinations.items()}
    return tracked


def _emulate(provisioned: Provisioned, types: list[str] | None) -> Iterator[Emulated]:
    moto_port, api_port = free_port(), free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    moto_outbound.install()
    mailbox_simulator.install(_with_types(provisioned, types))
    api_url = f"http://127.0.0.1:{api_port}"
    ses_tracking.install(api_url)
    server = api_server("127.0.0.1", api_port, [], prefix_routes=ses_tracking.routes())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sqs, events = client("sqs"), client("events")
    url = sqs.create_queue(QueueName="ses-events")["QueueUrl"]
    events.put_rule(Name="ses-events", EventBusName="default", EventPattern=json.dumps({"source": ["aws.ses"]}))
    events.put_targets(Rule="ses-events", EventBusName="default", Targets=[{"Id": "q", "Arn": queue_arn(url)}])
    try:
        yield Emulated(provisioned, Outbox(f"http://127.0.0.1:{moto_port}"), api_url, url,
                       provisioned.outputs["MessagesConfigurationSetName"])
    finally:
        server.shutdown()
        server.server_close()
        ses_tracking.uninstall()
        mailbox_simulator.uninstall()
        moto_outbound.uninstall()
        moto.stop()


@pytest.fixture
def tracked(provisioned: Provisioned) -> Iterator[Emulated]:
    yield from _emulate(provisioned, None)  # the template's destination takes every type


@pytest.fixture
def untracked(provisioned: Provisioned) -> Iterator[Emulated]:
    yield from _emulate(provisioned, ["send", "delivery", "bounce", "complaint"])


def _html() -> str:
    return (f'<html><body><p>Hi</p><a class="button" href="{CART.replace("&", "&amp;")}" '
            'ses:tags="step:reminder;variant:a">Return to your cart</a>'
            '<a href="https://shop.example/unsubscribe" ses:no-track>Unsubscribe</a>'
            '<a href="mailto:help@shop.example">Help</a></body></html>')


def _send(emulated: Emulated, to: str, *, configuration_set: bool = True) -> str:
    message = EmailMessage()
    message["From"] = f"Demo Outfitters <{SENDER}>"
    message["To"] = to
    message["Subject"] = "You left something behind"
    message.set_content(f"Return to your cart: {CART}")
    message.add_alternative(_html(), subtype="html")
    request: dict[str, Any] = {
        "FromEmailAddress": SENDER, "Destination": {"ToAddresses": [to]},
        "Content": {"Raw": {"Data": message.as_bytes()}},
        "EmailTags": [{"Name": "workspace", "Value": "ws_1"}, {"Name": "flow", "Value": "builtin_abandoned"}]}
    if configuration_set:
        request["ConfigurationSetName"] = emulated.configuration_set
    ses: Any = client("sesv2")
    ses.create_email_identity(EmailIdentity=SENDER)
    return str(ses.send_email(**request)["MessageId"])


def _events(emulated: Emulated) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in receive_all(emulated.ses_events)]


def _sent(emulated: Emulated, message_id: str) -> SentEmail:
    [email] = [e for e in emulated.outbox.read().emails if e.message_id == message_id]
    return email


def test_any_address_is_sent_and_delivered_in_its_configuration_set(tracked: Emulated) -> None:
    message_id = _send(tracked, "shopper@example.com")
    _send(tracked, "other@example.com", configuration_set=False)  # no configuration set: no events
    found = _events(tracked)
    assert sorted(e["detail-type"] for e in found) == ["Email Delivered", "Email Sent"]
    by_type = {e["detail-type"]: e["detail"] for e in found}
    assert by_type["Email Sent"]["eventType"] == "Send" and by_type["Email Sent"]["send"] == {}
    delivered = by_type["Email Delivered"]
    assert (delivered["eventType"], delivered["delivery"]["recipients"]) == ("Delivery", ["shopper@example.com"])
    assert delivered["mail"]["messageId"] == message_id
    assert delivered["mail"]["tags"]["ses:configuration-set"] == [tracked.configuration_set]
    assert delivered["mail"]["commonHeaders"]["subject"] == "You left something behind"
    assert {e["source"] for e in found} == {"aws.ses"}


def test_the_sent_html_is_rewritten_as_ses_does_and_the_text_is_not(tracked: Emulated) -> None:
    email = _sent(tracked, _send(tracked, "shopper@example.com"))
    [cart] = email.tracked_links
    assert cart.original == CART and cart.text == "Return to your cart"
    assert cart.url.startswith(tracked.api_url + "/_local/ses/click/")
    assert email.links == [CART, "https://shop.example/unsubscribe", "mailto:help@shop.example"]
    assert email.open_url is not None and email.open_url.startswith(tracked.api_url + "/_local/ses/open/")
    assert email.html is not None and email.html.index(email.open_url) < email.html.index("</body>")
    assert email.text is not None and CART in email.text  # SES tracks the HTML part only
    assert email.subject == "You left something behind" and email.to == ["shopper@example.com"]


def test_opening_puts_email_opened_on_the_bus_and_answers_a_gif(tracked: Emulated) -> None:
    message_id = _send(tracked, "shopper@example.com")
    email = _sent(tracked, message_id)
    _events(tracked)  # the send's own
    open_email(email, user_agent="Mozilla/5.0 (iPhone)", ip_address="198.51.100.7")
    assert email.open_url is not None
    with urlopen(email.open_url) as pixel:
        assert (pixel.status, pixel.headers["Content-Type"], pixel.read()) == (200, "image/gif", ses_tracking.PIXEL_GIF)
    first, second = _events(tracked)  # each load is an event, as in SES
    assert (first["detail-type"], first["source"]) == ("Email Opened", "aws.ses")
    detail = first["detail"]
    assert detail["eventType"] == "Open" and detail["mail"]["messageId"] == message_id
    assert (detail["open"]["userAgent"], detail["open"]["ipAddress"]) == ("Mozilla/5.0 (iPhone)", "198.51.100.7")
    assert detail["open"]["timestamp"].endswith("Z")
    assert second["detail"]["open"]["ipAddress"] == "127.0.0.1"  # no proxy header: the connection's peer
    assert detail["mail"]["tags"]["flow"] == ["builtin_abandoned"]


def test_clicking_puts_email_clicked_on_the_bus_and_redirects_to_the_original(tracked: Emulated) -> None:
    message_id = _send(tracked, "shopper@example.com")
    email = _sent(tracked, message_id)
    _events(tracked)
    assert click(email, containing="/cart/") == CART
    [clicked] = _events(tracked)
    assert clicked["detail-type"] == "Email Clicked"
    detail = clicked["detail"]
    assert detail["eventType"] == "Click" and detail["mail"]["messageId"] == message_id
    assert detail["click"]["link"] == CART
    assert detail["click"]["linkTags"] == {"step": ["reminder"], "variant": ["a"]}
    assert set(detail["click"]) == {"timestamp", "userAgent", "ipAddress", "link", "linkTags"}


def test_the_templates_rule_queues_opens_and_clicks_for_the_flows_function(tracked: Emulated) -> None:
    email = _sent(tracked, _send(tracked, "shopper@example.com"))
    open_email(email)
    click(email)
    queued = [json.loads(m["Body"]) for m in receive_all(tracked.provisioned.physical["FlowsQueue"].ref)]
    # "Email Sent" and "Email Delivered" stay on the default bus: the flows service knows what it sent, and
    # counts it delivered until a bounce says otherwise.
    assert sorted(e["detail-type"] for e in queued) == ["Email Clicked", "Email Opened"]
    assert {e["detail"]["mail"]["messageId"] for e in queued} == {email.message_id}


def test_a_tampered_or_unknown_link_redirects_nowhere(tracked: Emulated) -> None:
    email = _sent(tracked, _send(tracked, "shopper@example.com"))
    url = email.tracked_links[0].url
    tampered = url.rsplit("/", 1)[0] + "/https%3A%2F%2Fevil.example%2F"
    assert click(email.model_copy(update={"html": f'<a href="{tampered}">x</a>'})) == CART  # the recorded link
    _events(tracked)
    for bad in (url.replace("/0/", "/7/"), tracked.api_url + "/_local/ses/click/unknown/0/x",
                tracked.api_url + "/_local/ses/open/unknown"):
        with pytest.raises(OSError, match="404"):
            urlopen(bad)
    assert _events(tracked) == []


def test_without_open_and_click_destinations_nothing_is_tracked(untracked: Emulated) -> None:
    email = _sent(untracked, _send(untracked, "shopper@example.com"))
    assert email.tracked_links == [] and email.open_url is None
    assert email.links == [CART, "https://shop.example/unsubscribe", "mailto:help@shop.example"]
    with pytest.raises(LookupError, match="open pixel"):
        open_email(email)
    with pytest.raises(LookupError, match="tracked link"):
        click(email)


def test_a_simple_html_send_is_tracked_too(tracked: Emulated) -> None:
    ses: Any = client("sesv2")
    ses.create_email_identity(EmailIdentity=SENDER)
    message_id = ses.send_email(
        FromEmailAddress=SENDER, Destination={"ToAddresses": ["shopper@example.com"]},
        ConfigurationSetName=tracked.configuration_set,
        Content={"Simple": {"Subject": {"Data": "Hi"}, "Body": {"Html": {"Data": _html()}}}})["MessageId"]
    email = _sent(tracked, message_id)
    assert [link.original for link in email.tracked_links] == [CART] and email.open_url is not None


def test_a_raw_message_keeps_its_headers_and_parts(tracked: Emulated) -> None:
    email = _sent(tracked, _send(tracked, "shopper@example.com"))
    assert email.raw is not None
    assert email.header("From") == f"Demo Outfitters <{SENDER}>"
    assert email.text is not None and email.text.strip() == f"Return to your cart: {CART}"
    assert email.raw.count("Content-Type: text/html") == 1 and "MIME-Version" in email.raw
