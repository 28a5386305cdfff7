"""An email for one shopper: the template rendered with its context, the unsubscribe link signed, the
sender from the workspace's messaging settings. What the flows service hands to the EmailSender."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jinja2 import TemplateError

from crm.messaging.render import message_context, render_email, render_sms
from crm.messaging.unsubscribe import LinkPurpose, Links
from crm.models.consent import Channel
from crm.models.events import DomainEvent
from crm.models.messaging import EmailTemplate, MessagingSettings, OutgoingEmail, OutgoingSms, SmsTemplate
from crm.models.profile import Profile


class CannotCompose(ValueError):
    """The email cannot be made: no sender address in the messaging settings, no address or store for the
    profile, or a template that does not render for this shopper. The caller records a skip with the reason."""


def store_of(profile: Profile, trigger: DomainEvent | None) -> str | None:
    """The store an email is sent for: the trigger's, else the profile's first."""
    store = getattr(trigger, "store_id", None)
    return str(store) if store else (profile.store_ids[0] if profile.store_ids else None)


def compose_email(template: EmailTemplate, profile: Profile, settings: MessagingSettings, links: Links,
                  now: datetime, trigger: DomainEvent | None = None, tags: Mapping[str, str] | None = None,
                  **extra: Any) -> OutgoingEmail:
    """The rendered email; a marketing template gets a signed one-click unsubscribe link (the
    List-Unsubscribe header and the footer's link are the same URL)."""
    if not settings.from_address:
        raise CannotCompose("the workspace has no sender address (PUT /settings/messaging)")
    if not profile.email:
        raise CannotCompose("the profile has no email address")
    store_id = store_of(profile, trigger)
    if store_id is None:
        raise CannotCompose("the profile belongs to no store")
    unsubscribe_url = (links.url(LinkPurpose.UNSUBSCRIBE, profile.workspace_id, profile.profile_id, profile.email,
                                 Channel.EMAIL, store_id, now) if template.marketing else None)
    context = message_context(profile, settings, trigger, unsubscribe_url, **extra)
    try:
        rendered = render_email(template, context)
    except (TemplateError, TypeError, ValueError, ArithmeticError) as error:
        raise CannotCompose(f"the template does not render: {error}") from None
    return OutgoingEmail(
        workspace_id=profile.workspace_id, profile_id=profile.profile_id, to=profile.email,
        from_address=settings.from_address, from_name=settings.from_name, reply_to=settings.reply_to,
        subject=rendered.subject, html=rendered.html, text=rendered.text, unsubscribe_url=unsubscribe_url,
        tags={"workspace": profile.workspace_id, **(tags or {})},
    )


def compose_sms(template: SmsTemplate, profile: Profile, settings: MessagingSettings,
                trigger: DomainEvent | None = None) -> OutgoingSms:
    """The rendered SMS to the profile's phone, from the workspace's SMS sender (SNS's default when unset)."""
    if not profile.phone:
        raise CannotCompose("the profile has no phone number")
    try:
        body = render_sms(template, message_context(profile, settings, trigger))
    except (TemplateError, TypeError, ValueError, ArithmeticError) as error:
        raise CannotCompose(f"the template does not render: {error}") from None
    if not body:
        raise CannotCompose("the SMS renders empty")
    return OutgoingSms(workspace_id=profile.workspace_id, profile_id=profile.profile_id, to=profile.phone,
                       body=body, sender=settings.sms_sender)
