"""An email for one shopper: the template rendered with its context, the unsubscribe link signed, the
sender from the workspace's messaging settings. What the flows service hands to the EmailSender."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from crm.messaging.render import message_context, render_email
from crm.messaging.unsubscribe import LinkPurpose, Links
from crm.models.consent import Channel
from crm.models.events import DomainEvent
from crm.models.messaging import EmailTemplate, MessagingSettings, OutgoingEmail
from crm.models.profile import Profile


class CannotCompose(ValueError):
    """The email cannot be made: no sender address in the messaging settings, or no address or store for
    the profile. The caller records a skip with this reason."""


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
    rendered = render_email(template, context)
    return OutgoingEmail(
        workspace_id=profile.workspace_id, profile_id=profile.profile_id, to=profile.email,
        from_address=settings.from_address, from_name=settings.from_name, reply_to=settings.reply_to,
        subject=rendered.subject, html=rendered.html, text=rendered.text, unsubscribe_url=unsubscribe_url,
        tags={"workspace": profile.workspace_id, **(tags or {})},
    )
