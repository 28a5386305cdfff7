"""What docs/openapi.yaml cannot say in JSON Schema, for the schemathesis run of test_openapi_conformance.py."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook("filter_query").apply_to(path="/customers", method="GET")
def email_or_phone(context: schemathesis.HookContext, query: dict[str, Any] | None) -> bool:
    # OpenAPI has no "at least one of these query parameters"; the document says it in the description.
    return bool(query) and ("email" in query or "phone" in query)
