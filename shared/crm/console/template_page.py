"""The template editor's preview (docs/console.md): a draft checked as the API's PUT /templates/{id} checks it
(crm.messaging.manage.parse_template), then rendered as a send renders it (crm.messaging.render, the context a
test send uses: crm.flows.proofs) for the sample shopper or a customer chosen by email. No AWS here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError
from jinja2.exceptions import SecurityError

from crm.customers import find_profile
from crm.flows.defaults import DefinitionInvalid
from crm.messaging.manage import parse_template
from crm.messaging.render import profile_context, render_email, render_sms, sample_context, store_context
from crm.models.messaging import EmailTemplate, MessagingSettings, SmsTemplate
from crm.ports import ProfileRepository

# The form's fields, as the API's template document names them.
EMAIL_FIELDS = ("name", "subject", "html", "text")
SMS_FIELDS = ("name", "body")


@dataclass(frozen=True)
class Preview:
    """What the editor shows beside the draft: the problems (each "part: line n: what"), or the message as
    sent (``html`` for an email, ``body`` for an SMS) and whom it was rendered for."""

    problems: tuple[str, ...] = ()
    for_whom: str = "the sample shopper (Ada Lovelace)"
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    body: str | None = None


def draft_document(channel: str, form: Mapping[str, str]) -> dict[str, Any]:
    """The template document (as POST/PUT /templates take it) that the editor's form describes: an empty
    plain-text part means "derived from the HTML", as the API's absent ``text``; ``marketing`` is a checkbox."""
    fields = EMAIL_FIELDS if channel == "email" else SMS_FIELDS
    document: dict[str, Any] = {"channel": channel, **{name: form.get(name, "") for name in fields}}
    if channel == "email":
        if not document["text"].strip():
            del document["text"]
        document["marketing"] = form.get("marketing") == "on"
    return document


def form_of(template: EmailTemplate | SmsTemplate) -> dict[str, str]:
    """The editor's fields for a saved template (the inverse of draft_document)."""
    if isinstance(template, SmsTemplate):
        return {"name": template.name, "body": template.body}
    return {"name": template.name, "subject": template.subject, "html": template.html, "text": template.text or "",
            "marketing": "on" if template.marketing else ""}


def parse_draft(channel: str, form: Mapping[str, str]) -> EmailTemplate | SmsTemplate:
    """The draft as the API would save it: DefinitionInvalid naming each problem ("html: line 3: ...")."""
    return parse_template(draft_document(channel, form))


def preview(profiles: ProfileRepository, settings: MessagingSettings, workspace_id: str, channel: str,
            form: Mapping[str, str], customer_email: str | None) -> Preview:
    """The draft rendered for the customer whose email is given (else the sample shopper), with the workspace's
    sender as ``store``; its problems instead when the API would refuse it or it does not render."""
    try:
        template = parse_draft(channel, form)
    except DefinitionInvalid as invalid:
        return Preview(problems=tuple(str(invalid).split("; ")))
    context = {**sample_context(), "store": store_context(settings)}
    for_whom = Preview.for_whom
    if customer_email and customer_email.strip():
        try:
            found = find_profile(profiles, workspace_id, email=customer_email.strip())
        except ValueError as error:
            return Preview(problems=(str(error),))
        if found is None:
            return Preview(problems=(f"customer: no customer has the email {customer_email.strip()}",))
        context["profile"] = profile_context(found)
        for_whom = found.email or customer_email.strip()
    try:
        if isinstance(template, SmsTemplate):
            return Preview(for_whom=for_whom, body=render_sms(template, context))
        rendered = render_email(template, context)
    except (TemplateError, SecurityError, TypeError, ValueError, ArithmeticError) as error:
        # A customer's own values can fail where the sample's did not (a name the template slices as a number).
        return Preview(problems=(f"rendering for {for_whom}: {error}",))
    return Preview(for_whom=for_whom, subject=rendered.subject, html=rendered.html, text=rendered.text)
