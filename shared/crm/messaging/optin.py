"""The double opt-in email: a browser's subscribe (a ConsentRequest, crm.consent) counts only once the
shopper confirms it from the address it names.

Who sends it: the flows service, on a ``ConsentChanged`` bus event, or whenever it reads a profile with an
open email request, calls ``double_opt_in_email`` and sends what it returns, once per request: claim
``double_opt_in_claim(profile)`` (the request's time is in it) before sending, as for a flow step, so a
re-delivered event never sends it twice. The confirm link (POST /confirm/{token}, crm.messaging.links)
grants consent through crm.consent.confirm_request.
"""

from __future__ import annotations

from datetime import datetime

from crm.messaging.compose import CannotCompose, compose_email, store_of
from crm.messaging.defaults import DOUBLE_OPT_IN, EMAIL_TEMPLATES
from crm.messaging.unsubscribe import CONFIRM_MAX_AGE, LinkPurpose, Links
from crm.models.consent import Channel, ConsentRequest, ConsentState
from crm.models.messaging import EmailTemplate, MessagingSettings, OutgoingEmail
from crm.models.profile import Profile


def open_email_request(profile: Profile, now: datetime) -> ConsentRequest | None:
    """The profile's email consent request that a confirmation email can still settle: open, younger than a
    confirmation link lives, for the address the profile holds, and the shopper not subscribed already."""
    request = profile.consent_requests.get(Channel.EMAIL.value)
    held = profile.consents.get(Channel.EMAIL.value)
    if request is None or not profile.email or now - request.at > CONFIRM_MAX_AGE:
        return None
    if request.address not in (None, profile.email):
        return None
    if held is not None and held.state is ConsentState.SUBSCRIBED:
        return None
    return request


def double_opt_in_claim(profile: Profile) -> str | None:
    """What to claim before sending (one email per request), None when there is no request."""
    request = profile.consent_requests.get(Channel.EMAIL.value)
    return f"double_opt_in#{request.at.isoformat()}" if request else None


def double_opt_in_email(profile: Profile, settings: MessagingSettings, now: datetime, links: Links,
                        template: EmailTemplate | None = None) -> OutgoingEmail | None:
    """The confirmation email for the profile's open email request, or None when there is nothing to confirm
    or the workspace cannot send (no sender address, no store). Not a marketing email: no List-Unsubscribe."""
    if open_email_request(profile, now) is None or profile.email is None:
        return None
    store_id = store_of(profile, None)
    if store_id is None:
        return None
    confirm_url = links.url(LinkPurpose.CONFIRM, profile.workspace_id, profile.profile_id, profile.email,
                            Channel.EMAIL, store_id, now)
    try:
        return compose_email(template or EMAIL_TEMPLATES[DOUBLE_OPT_IN], profile, settings, links, now,
                             tags={"flow": "double_opt_in"}, confirm_url=confirm_url)
    except CannotCompose:
        return None
