"""What docs/openapi.yaml cannot say in JSON Schema, for the schemathesis run of test_openapi_conformance.py."""

from __future__ import annotations

from typing import Any

import schemathesis
from crm.flows.defaults import DefinitionInvalid, check_template
from crm.messaging.manage import parse_template
from crm.segments.definition import check_limits


@schemathesis.hook("filter_query").apply_to(path="/customers", method="GET")
def email_or_phone(context: schemathesis.HookContext, query: dict[str, Any] | None) -> bool:
    # OpenAPI has no "at least one of these query parameters"; the document says it in the description.
    return bool(query) and ("email" in query or "phone" in query)


@schemathesis.hook("filter_body").apply_to(path_regex="^/segments(/preview|/{segment_id})?$")
def within_the_stated_limits(context: schemathesis.HookContext, body: Any) -> bool:
    # A recursive JSON Schema cannot count levels or conditions; SegmentDefinition's description states the limits
    # (MAX_DEPTH, MAX_CONDITIONS), which a deeper or larger document is refused for with a 400.
    if not isinstance(body, dict) or "definition" not in body:
        return True
    try:
        check_limits(body["definition"])
    except ValueError:
        return False
    return True


@schemathesis.hook("filter_body").apply_to(path_regex="^/templates(/{template_id})?$")
def templates_that_render(context: schemathesis.HookContext, body: Any) -> bool:
    # Generated text may hold "{{", "{%" or "{#": Jinja2 the template check refuses, and the description says so
    # (a 400 naming the part and the line). JSON Schema cannot describe a language's grammar.
    if not isinstance(body, dict):
        return True
    try:
        check_template(parse_template({k: v for k, v in body.items() if k != "id"}))
    except DefinitionInvalid:
        return False
    except ValueError:
        return True
    return True
