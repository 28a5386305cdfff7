"""Templates and messaging settings as the marketer API manages them (GET/POST/PUT/DELETE /templates,
GET/PUT /settings/messaging).

Pure over ports (MessagingStore, FlowCatalogue, SenderIdentities). A template is checked when saved (its
Jinja2 parses: a refusal names the field and the line); a built-in template can be edited, and deleting it
brings the default back. Saving the settings asks SES to verify the from address unless it, or its domain,
is an identity already.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Annotated, Any

from pydantic import Discriminator, TypeAdapter, ValidationError

from crm.contact import normalise_email, normalise_phone
from crm.flows.defaults import BUILTIN_SINCE, DefinitionInvalid, check_template
from crm.flows.manage import describe, parse_model, templates_used
from crm.flows.ports import FlowCatalogue, MessagingStore, SenderIdentities
from crm.models.flows import FlowStatus
from crm.models.messaging import EmailTemplate, MessagingSettings, SmsTemplate, TemplateRecord

TEMPLATE_ID = r"^(builtin:[a-z0-9_]{1,60}|[a-z0-9][a-z0-9_-]{0,62})$"
CUSTOM_TEMPLATE_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}$")  # an alphanumeric SMS sender id
_TEMPLATE: TypeAdapter[EmailTemplate | SmsTemplate] = TypeAdapter(
    Annotated[EmailTemplate | SmsTemplate, Discriminator("channel")])


class TemplateNotFound(LookupError):
    """No such template in this workspace: 404."""


class TemplateConflict(Exception):
    """A taken id, or a template a live flow sends: 409."""


def new_template_id() -> str:
    return f"tpl_{secrets.token_hex(8)}"


# --- templates --------------------------------------------------------------------------------------------

def parse_template(document: dict[str, Any]) -> EmailTemplate | SmsTemplate:
    body = {"channel": "email", **document}
    if body["channel"] not in ("email", "sms"):
        raise DefinitionInvalid(f"channel: must be 'email' or 'sms', not {body['channel']!r}")
    try:
        template = _TEMPLATE.validate_python(body)
    except ValidationError as error:
        raise DefinitionInvalid(describe(error, body)) from None
    check_template(template)
    return template


def template_summary(record: TemplateRecord) -> dict[str, Any]:
    return {"id": record.template_id, "channel": record.template.channel, "name": record.template.name,
            "builtin": record.template_id.startswith("builtin:"), "saved": not _is_default(record),
            "updated_at": record.updated_at.isoformat()}


def _is_default(record: TemplateRecord) -> bool:
    """A built-in the workspace never saved (crm.adapters.flow_definitions lists those from the defaults)."""
    return record.template_id.startswith("builtin:") and record.created_at == BUILTIN_SINCE


def template_view(record: TemplateRecord) -> dict[str, Any]:
    return {**template_summary(record), "created_at": record.created_at.isoformat(),
            **record.template.model_dump(mode="json", exclude_none=True)}


def get_template(store: MessagingStore, workspace_id: str, template_id: str) -> TemplateRecord:
    found = store.get_template(workspace_id, template_id) if re.fullmatch(TEMPLATE_ID, template_id) else None
    if found is None:
        raise TemplateNotFound(f"no template {template_id}")
    return found


def create_template(store: MessagingStore, workspace_id: str, document: dict[str, Any],
                    now: datetime) -> TemplateRecord:
    given = document.pop("id", None)
    if given is not None and (not isinstance(given, str) or not re.fullmatch(CUSTOM_TEMPLATE_ID, given)):
        raise DefinitionInvalid("id: must be 1 to 63 lowercase letters, digits, - or _, starting with a letter or "
                                "digit (builtin: ids are the built-in templates')")
    template = parse_template(document)
    template_id = given or new_template_id()
    if store.get_template(workspace_id, template_id) is not None:
        raise TemplateConflict(f"id: a template {template_id} exists already")
    record = TemplateRecord(workspace_id=workspace_id, template_id=template_id, template=template,
                            created_at=now, updated_at=now)
    store.put_template(record)
    return record


def _sent_by_live_flows(catalogue: FlowCatalogue, workspace_id: str, template_id: str) -> list[str]:
    return [flow.flow_id for flow in catalogue.list_flows(workspace_id) if flow.status is FlowStatus.LIVE
            and any(used == template_id for _, used in templates_used(flow.definition))]


def replace_template(store: MessagingStore, catalogue: FlowCatalogue, workspace_id: str, template_id: str,
                     document: dict[str, Any], now: datetime) -> TemplateRecord:
    current = get_template(store, workspace_id, template_id)
    if document.pop("id", template_id) != template_id:
        raise DefinitionInvalid(f"id: the body names another template than the path ({template_id})")
    template = parse_template(document)
    if template.channel != current.template.channel:
        live = _sent_by_live_flows(catalogue, workspace_id, template_id)
        if live:
            raise TemplateConflict(f"channel: live flows {', '.join(live)} send {template_id} as "
                                   f"{current.template.channel}")
    created = now if _is_default(current) else current.created_at
    record = TemplateRecord(workspace_id=workspace_id, template_id=template_id, template=template,
                            created_at=created, updated_at=now)
    store.put_template(record)
    return record


def delete_template(store: MessagingStore, catalogue: FlowCatalogue, workspace_id: str, template_id: str) -> None:
    """A custom template is deleted (refused while a live flow sends it); a built-in goes back to its
    default."""
    get_template(store, workspace_id, template_id)
    if not template_id.startswith("builtin:"):
        live = _sent_by_live_flows(catalogue, workspace_id, template_id)
        if live:
            raise TemplateConflict(f"template {template_id} is sent by live flows {', '.join(live)}: change them "
                                   "or set them to draft first")
    store.delete_template(workspace_id, template_id)


# --- settings ---------------------------------------------------------------------------------------------

@cache
def time_zones() -> frozenset[str]:
    """The IANA zones of the tzdata package (a dependency, so the same on every machine and in Lambda)."""
    return frozenset(files("tzdata").joinpath("zones").read_text().split())


def parse_settings(document: dict[str, Any]) -> MessagingSettings:
    """The settings with addresses normalised (crm.contact): a from or reply-to address that is none, an
    unknown time zone or an SMS sender that is neither E.164 nor a sender id is refused naming the field."""
    held = parse_model(MessagingSettings, document)
    update: dict[str, Any] = {}
    for field in ("from_address", "reply_to"):
        value = getattr(held, field)
        if value is not None:
            normal = normalise_email(value)
            if normal is None or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", normal):
                raise DefinitionInvalid(f"{field}: {value!r} is not an email address")
            update[field] = normal
    if held.sms_sender is not None:
        # An origination number SNS gave the workspace: E.164, though not always a number phonenumbers knows.
        phone = (normalise_phone(held.sms_sender) or (held.sms_sender if _E164.fullmatch(held.sms_sender) else None)
                 if held.sms_sender.startswith("+") else None)
        if phone is None and not _SENDER_ID.fullmatch(held.sms_sender):
            raise DefinitionInvalid("sms_sender: an E.164 number (+15550100) or a sender id of 1 to 11 letters "
                                    "and digits")
        update["sms_sender"] = phone or held.sms_sender
    if held.time_zone not in time_zones():
        raise DefinitionInvalid(f"time_zone: {held.time_zone!r} is not an IANA time zone (Europe/Paris)")
    return held.model_copy(update=update)


def sender_verification(identities: SenderIdentities, address: str | None, request: bool) -> dict[str, Any] | None:
    """The from address's SES status: its domain's when the domain is verified, else the address's own; with
    ``request``, an address that is no identity yet is created (SES mails it a confirmation link)."""
    if address is None:
        return None
    domain = address.rsplit("@", 1)[1]
    if identities.verification_status(domain) == "SUCCESS":
        return {"identity": domain, "status": "SUCCESS"}
    status = identities.verification_status(address)
    if status is None and request:
        status = identities.request_verification(address)
    return {"identity": address, "status": status or "NOT_REQUESTED"}


def settings_view(held: MessagingSettings, verification: dict[str, Any] | None) -> dict[str, Any]:
    return {**held.model_dump(mode="json"), "sender_verification": verification}


def replace_settings(store: MessagingStore, identities: SenderIdentities, workspace_id: str,
                     document: dict[str, Any]) -> dict[str, Any]:
    held = parse_settings(document)
    store.put_messaging_settings(workspace_id, held)
    return settings_view(held, sender_verification(identities, held.from_address, request=True))
