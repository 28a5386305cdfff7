"""An email for one shopper: the template rendered with its context, the unsubscribe link signed, the
sender from the workspace's messaging settings. What the flows service hands to the EmailSender."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from jinja2 import TemplateError

from crm.affinity import cross_sell, cross_sell_basis
from crm.messaging.render import cross_sell_context, message_context, render_email, render_sms, trigger_event
from crm.messaging.shortlinks import SmsLinks
from crm.messaging.unsubscribe import LinkOrigin, LinkPurpose, Links
from crm.models.consent import Channel
from crm.models.events import DomainEvent
from crm.models.flow_stats import SENT_TAG, sent_tag
from crm.models.flows import FlowRun
from crm.models.messaging import (
    EmailTemplate,
    MessagingSettings,
    OutgoingEmail,
    OutgoingSms,
    SmsTemplate,
    TemplateRecord,
)
from crm.models.profile import Profile
from crm.ports import AffinityStore


class CannotCompose(ValueError):
    """The email cannot be made: no sender address in the messaging settings, no address or store for the
    profile, or a template that does not render for this shopper. The caller records a skip with the reason."""


def store_of(profile: Profile, trigger: DomainEvent | None) -> str | None:
    """The store an email is sent for: the trigger's, else the profile's first."""
    store = getattr(trigger, "store_id", None)
    return str(store) if store else (profile.store_ids[0] if profile.store_ids else None)


def compose_email(template: EmailTemplate, profile: Profile, settings: MessagingSettings, links: Links,
                  now: datetime, trigger: DomainEvent | None = None, tags: Mapping[str, str] | None = None,
                  to: str | None = None, origin: LinkOrigin | None = None, **extra: Any) -> OutgoingEmail:
    """The rendered email to ``to`` (default: the profile's address); a marketing template gets a signed
    one-click unsubscribe link for that address (the List-Unsubscribe header and the footer's link are the
    same URL); ``origin`` (a flow's email) goes into it, so an unsubscribe is counted on the flow's step."""
    if not settings.from_address:
        raise CannotCompose("the workspace has no sender address (PUT /settings/messaging)")
    address = to or profile.email
    if not address:
        raise CannotCompose("the profile has no email address")
    store_id = store_of(profile, trigger)
    if store_id is None:
        raise CannotCompose("the profile belongs to no store")
    unsubscribe_url = (links.url(LinkPurpose.UNSUBSCRIBE, profile.workspace_id, profile.profile_id, address,
                                 Channel.EMAIL, store_id, now, origin) if template.marketing else None)
    context = message_context(profile, settings, trigger, unsubscribe_url, **extra)
    try:
        rendered = render_email(template, context)
    except (TemplateError, TypeError, ValueError, ArithmeticError) as error:
        raise CannotCompose(f"the template does not render: {error}") from None
    return OutgoingEmail(
        workspace_id=profile.workspace_id, profile_id=profile.profile_id, to=address,
        from_address=settings.from_address, from_name=settings.from_name, reply_to=settings.reply_to,
        subject=rendered.subject, html=rendered.html, text=rendered.text, unsubscribe_url=unsubscribe_url,
        tags={"workspace": profile.workspace_id, **(tags or {})},
    )


def compose_sms(template: SmsTemplate, profile: Profile, settings: MessagingSettings,
                trigger: DomainEvent | None = None, to: str | None = None) -> OutgoingSms:
    """The rendered SMS to ``to`` (default: the profile's phone), from the workspace's SMS sender (SNS's
    default when unset)."""
    phone = to or profile.phone
    if not phone:
        raise CannotCompose("the profile has no phone number")
    try:
        body = render_sms(template, message_context(profile, settings, trigger))
    except (TemplateError, TypeError, ValueError, ArithmeticError) as error:
        raise CannotCompose(f"the template does not render: {error}") from None
    if not body:
        raise CannotCompose("the SMS renders empty")
    return OutgoingSms(workspace_id=profile.workspace_id, profile_id=profile.profile_id, to=phone,
                       body=body, sender=settings.sms_sender)


def uses_cross_sell(template: EmailTemplate) -> bool:
    """Whether the template shows ``cross_sell``: only then are the related products read for it."""
    return any("cross_sell" in part for part in (template.subject, template.html, template.text or ""))


def cross_sell_products(store: AffinityStore, profile: Profile, trigger: DomainEvent | None) -> list[dict[str, Any]]:
    """The template's ``cross_sell``: products bought by the same shoppers as the trigger's lines (an order's,
    a cart's) or the profile's latest cart, that this shopper has not bought (crm.affinity)."""
    titles = [item.title for item in getattr(trigger, "items", ()) if item.title]
    basis = cross_sell_basis(profile, titles)
    found = store.related_to(profile.workspace_id, basis) if basis else []
    return cross_sell_context(cross_sell(found, bought=profile.products))


class FlowMessages:
    """The flows service's MessageComposer (crm.flows.service): a flow step's template rendered for the run's
    profile, with the run's trigger (``FlowRun.trigger``) as ``trigger`` and SES tags naming the workspace,
    flow, step, run and profile. ``links`` gives the link signer of the moment (crm.wiring.links: keys re-read as
    their cache expires); ``sms_links`` the SMS link shortener (crm.messaging.shortlinks; None leaves an SMS's
    links as written: a backtest sends nothing). Raises CannotCompose (a ValueError) when the message cannot be
    made."""

    def __init__(self, links: Callable[[], Links], sms_links: Callable[[], SmsLinks] | None = None,
                 affinity: Callable[[], AffinityStore] | None = None) -> None:
        self.links = links
        self.sms_links = sms_links
        self.affinity = affinity

    def email(self, template: TemplateRecord, settings: MessagingSettings, profile: Profile, run: FlowRun,
              step_id: str, to: str, now: datetime) -> OutgoingEmail:
        if not isinstance(template.template, EmailTemplate):
            raise CannotCompose(f"template {template.template_id} is not an email template")
        # ``profile`` and ``sent`` (the send's moment, ``now``): the message record's partition and key, its timeline
        # line's (crm.flows.ports.MessageLedger.find reads it directly).
        tags = {"flow": run.flow_id, "step": step_id, "run": run.run_id, "profile": run.profile_id,
                SENT_TAG: sent_tag(now)}
        trigger = trigger_event(run.trigger_type, run.trigger)
        extra = ({"cross_sell": cross_sell_products(self.affinity(), profile, trigger)}
                 if self.affinity is not None and uses_cross_sell(template.template) else {})
        return compose_email(template.template, profile, settings, self.links(), now, trigger, tags, to=to,
                             origin=LinkOrigin(run.flow_id, run.run_id, step_id), **extra)

    def sms(self, template: TemplateRecord, settings: MessagingSettings, profile: Profile, run: FlowRun,
            step_id: str, to: str, now: datetime) -> OutgoingSms:
        if not isinstance(template.template, SmsTemplate):
            raise CannotCompose(f"template {template.template_id} is not an SMS template")
        sms = compose_sms(template.template, profile, settings, trigger_event(run.trigger_type, run.trigger), to)
        if self.sms_links is None:
            return sms
        body = self.sms_links().rewrite(sms.body, profile.workspace_id, run.profile_id,
                                        LinkOrigin(run.flow_id, run.run_id, step_id), now)
        return sms.model_copy(update={"body": body})
