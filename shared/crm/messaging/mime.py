"""The raw MIME of an outgoing email, as SES v2 SendEmail (Content.Raw) takes it.

multipart/alternative (text first, HTML last: clients show the last part they understand), UTF-8, a From
with the sender's name, Reply-To, a Message-ID on the sender's domain, and for marketing messages the
RFC 8058 one-click headers Gmail and Yahoo require of bulk senders:

    List-Unsubscribe: <https://.../unsubscribe/TOKEN>
    List-Unsubscribe-Post: List-Unsubscribe=One-Click
"""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from crm.models.messaging import OutgoingEmail

ONE_CLICK = "List-Unsubscribe=One-Click"


def _address(address: str, name: str | None = None) -> Address:
    local, _, domain = address.rpartition("@")
    return Address(display_name=name or "", username=local, domain=domain)


def build_message(email: OutgoingEmail, sent_at: datetime) -> EmailMessage:
    """The message as an EmailMessage (tests parse it back; ``raw_message`` gives SES its bytes)."""
    message = EmailMessage(policy=SMTP)
    message["From"] = _address(email.from_address, email.from_name)
    message["To"] = _address(email.to)
    if email.reply_to:
        message["Reply-To"] = _address(email.reply_to)
    message["Subject"] = email.subject
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = make_msgid(domain=email.from_address.rpartition("@")[2] or None)
    if email.unsubscribe_url:
        message["List-Unsubscribe"] = f"<{email.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = ONE_CLICK
    message.set_content(email.text, subtype="plain", charset="utf-8")
    message.add_alternative(email.html, subtype="html", charset="utf-8")
    return message


def raw_message(email: OutgoingEmail, sent_at: datetime) -> bytes:
    """The bytes SES sends, CRLF line ends (SMTP policy)."""
    return build_message(email, sent_at).as_bytes()


__all__ = ["ONE_CLICK", "build_message", "raw_message"]
