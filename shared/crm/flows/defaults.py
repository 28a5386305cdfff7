"""What the marketer API takes from the engine and the email modules: the built-in flows and templates, and
the checks a definition and a template pass before they are saved.

Each is one small function, so that the API and the catalogue depend on these names only; they delegate to
crm.flows.builtin and crm.flows.definition (the engine), crm.messaging.defaults and crm.messaging.render.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from crm.flows.builtin import BUILTIN_FLOWS
from crm.flows.definition import FlowInvalid, validate_flow
from crm.messaging import render
from crm.messaging.defaults import TEMPLATES
from crm.models.flows import FlowDefinition
from crm.models.messaging import EmailTemplate, SmsTemplate

# When a built-in the workspace never saved was "created": the release that brought them.
BUILTIN_SINCE = datetime(2026, 12, 1, tzinfo=UTC)


class DefinitionInvalid(ValueError):
    """A flow definition, a template or settings refused; the message starts with the path at fault."""


def builtin_flows() -> Mapping[str, FlowDefinition]:
    """The built-in flows by id (builtin:abandoned_checkout, ...), as every workspace starts with them."""
    return BUILTIN_FLOWS


def builtin_templates() -> Mapping[str, EmailTemplate | SmsTemplate]:
    """The built-in templates by id (builtin:abandoned_checkout_1, ..., builtin:double_opt_in)."""
    return TEMPLATES


def check_definition(definition: FlowDefinition) -> FlowDefinition:
    """The engine's checks beyond the shape (unique step ids, filters in the segment language, one kind of
    delay, ...): DefinitionInvalid naming the path ("steps[2].id: ...")."""
    try:
        return validate_flow(definition)
    except FlowInvalid as error:
        raise DefinitionInvalid(str(error)) from None


def check_template(template: EmailTemplate | SmsTemplate) -> None:
    """Each Jinja2 part parses and renders in the sandbox with every variable a template may use:
    DefinitionInvalid naming the part and the line ("html: line 3: ...")."""
    problems = render.validate_template(template)
    if problems:
        raise DefinitionInvalid("; ".join(problems))
