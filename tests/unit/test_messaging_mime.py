"""The raw MIME SES sends: both parts, UTF-8, the sender's name, and RFC 8058 one-click headers on marketing."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

from crm.messaging.mime import ONE_CLICK, raw_message
from crm.models.messaging import OutgoingEmail

from tests.builders import NOW

URL = "https://crm.example/unsubscribe/k.c.s"


def _email(**fields: object) -> OutgoingEmail:
    values: dict[str, object] = {
        "workspace_id": "w1", "profile_id": "p1", "to": "zoë@example.com".replace("ë", "e"),
        "from_address": "hello@shop.example", "from_name": "Café Ünïcode, Ltd.", "reply_to": "help@shop.example",
        "subject": "Votre panier — 2 articles", "html": "<p>Bonjour Zoë</p>", "text": "Bonjour Zoë\n",
        "unsubscribe_url": URL, **fields}
    return OutgoingEmail.model_validate(values)


def _parsed(email: OutgoingEmail) -> EmailMessage:
    parsed = message_from_bytes(raw_message(email, NOW), policy=default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_a_marketing_message_has_both_parts_the_sender_and_the_one_click_headers() -> None:
    raw = raw_message(_email(), NOW)
    assert b"\r\n" in raw  # SMTP line ends
    message = _parsed(_email())
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert text.get_content().replace("\r\n", "\n") == "Bonjour Zoë\n"
    assert html.get_content().strip() == "<p>Bonjour Zoë</p>"
    assert message["List-Unsubscribe"] == f"<{URL}>"
    assert message["List-Unsubscribe-Post"] == ONE_CLICK == "List-Unsubscribe=One-Click"
    assert message["Subject"] == "Votre panier — 2 articles"
    assert message["From"].addresses[0].display_name == "Café Ünïcode, Ltd."
    assert message["From"].addresses[0].addr_spec == "hello@shop.example"
    assert message["Reply-To"] == "help@shop.example"
    assert message["To"] == "zoe@example.com"
    assert message["Message-ID"].endswith("@shop.example>")
    assert message["Date"] == "Sun, 01 Mar 2026 12:00:00 +0000"


def test_a_transactional_message_has_no_list_unsubscribe() -> None:
    message = _parsed(_email(unsubscribe_url=None, reply_to=None, from_name=None))
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
    assert message["Reply-To"] is None
    assert message["From"] == "hello@shop.example"


def test_every_message_gets_its_own_id() -> None:
    assert _parsed(_email())["Message-ID"] != _parsed(_email())["Message-ID"]
