"""Messaging: the workspace's sender and rules (GET/PUT /settings/messaging), templates, outgoing messages."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crm.clock import UtcDateTime
from crm.models.flow_stats import AttributionWindows
from crm.models.flows import MANAGED_BY

_MODEL = ConfigDict(frozen=True, extra="forbid")


class QuietHours(BaseModel):
    """No SMS between ``start`` and ``end`` in the shopper's time zone (TCPA: 21:00-08:00)."""

    model_config = _MODEL

    start: str = Field(default="21:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(default="08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")


class SmartSending(BaseModel):
    """At most one message per channel within these windows, across all flows (Klaviyo: 16 h / 24 h)."""

    model_config = _MODEL

    email: timedelta = timedelta(hours=16)
    sms: timedelta = timedelta(hours=24)


class MessagingSettings(BaseModel):
    model_config = _MODEL

    from_address: str | None = Field(default=None, max_length=254)  # normalised by crm.contact
    from_name: str | None = Field(default=None, max_length=100)
    reply_to: str | None = Field(default=None, max_length=254)
    postal_address: str | None = Field(default=None, max_length=500)  # the footer's (CAN-SPAM)
    sms_sender: str | None = Field(default=None, max_length=20)  # a sender id or an E.164 origination number
    time_zone: str = "UTC"  # the store's: for shoppers whose zone neither phone nor address tells
    quiet_hours: QuietHours = QuietHours()
    smart_sending: SmartSending = SmartSending()
    attribution: AttributionWindows = AttributionWindows()


class EmailTemplate(BaseModel):
    """Jinja2 (sandboxed, autoescaped); ``html`` gets its CSS inlined when rendered."""

    model_config = _MODEL

    channel: Literal["email"] = "email"
    name: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=500)
    html: str = Field(min_length=1, max_length=200_000)
    text: str | None = Field(default=None, max_length=100_000)  # derived from the HTML when absent
    marketing: bool = True  # carries List-Unsubscribe and the footer; a double opt-in email does not
    managed_by: str | None = Field(default=None, pattern=MANAGED_BY)  # crm apply's directory (crm.ascode)


class SmsTemplate(BaseModel):
    model_config = _MODEL

    channel: Literal["sms"] = "sms"
    name: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=1600)
    managed_by: str | None = Field(default=None, pattern=MANAGED_BY)  # crm apply's directory (crm.ascode)


class TemplateRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    workspace_id: str
    template_id: str
    template: EmailTemplate | SmsTemplate
    created_at: UtcDateTime
    updated_at: UtcDateTime


class OutgoingEmail(BaseModel):
    """A rendered email, ready for SES (crm.messaging.mime builds the raw MIME)."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    profile_id: str
    to: str
    from_address: str
    from_name: str | None = None
    reply_to: str | None = None
    subject: str
    html: str
    text: str
    unsubscribe_url: str | None = None  # List-Unsubscribe (one-click, RFC 8058) when set
    tags: dict[str, str] = Field(default_factory=dict)  # SES message tags: workspace, flow, step, run


class OutgoingSms(BaseModel):
    model_config = ConfigDict(frozen=True)

    workspace_id: str
    profile_id: str
    to: str  # E.164
    body: str
    sender: str | None = None
    transactional: bool = False  # SNS's SMSType: Promotional for marketing, Transactional for a confirmation
