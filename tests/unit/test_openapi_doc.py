"""docs/openapi.yaml describes exactly the routes the marketer API (functions/api) serves."""

from __future__ import annotations

import json
import re
from typing import Any

import schemathesis
import yaml
from crm.customers import PHONE_SHAPE
from crm.models.exports import EXPORT_FIELDS
from crm.profiles import profile_id_for
from crm.segments.builtin import BY_ID
from crm.segments.definition import check_limits, parse_segment
from crm.segments.exports import new_export_id
from crm.segments.runs import new_run_id
from crm.segments.schema import schemas as definition_schemas
from crm.segments.service import new_segment_id
from crm_local.lambdas import load_handler
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate  # installed with moto[server]

from tests.builders import NOW, ROOT

DOC = ROOT / "docs" / "openapi.yaml"
METHODS = {"get", "put", "post", "delete", "patch", "options", "head"}


def _documented() -> set[tuple[str, str]]:
    document: dict[str, Any] = yaml.safe_load(DOC.read_text())
    assert document["openapi"].startswith("3.1")
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item
            if method in METHODS}


def _served() -> set[tuple[str, str]]:
    app = load_handler(ROOT / "functions" / "api", "app.app", "ApiFunction")
    return {(method.upper(), path) for path, entries in app.routes.items() for method in entries}


def test_every_route_is_documented_and_every_documented_route_is_served() -> None:
    served, documented = _served(), _documented()
    assert served - documented == set(), "routes missing from docs/openapi.yaml"
    assert documented - served == set(), "documented routes the app does not serve"


def test_every_documented_path_parameter_is_declared() -> None:
    document: dict[str, Any] = yaml.safe_load(DOC.read_text())
    parameters = document["components"]["parameters"]
    for path, item in document["paths"].items():
        declared = set()
        for operation in [item, *(item[m] for m in item if m in METHODS)]:
            for parameter in operation.get("parameters", []):
                resolved = parameters[parameter["$ref"].rsplit("/", 1)[-1]] if "$ref" in parameter else parameter
                if resolved["in"] == "path":
                    declared.add(resolved["name"])
        wanted = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        assert wanted <= declared, path


def test_the_document_is_valid_openapi() -> None:
    # YAML's flow style reads "{description: a, b}" as two keys: only a validator notices.
    validate(yaml.safe_load(DOC.read_text()))


# --- the document states what the code enforces --------------------------------------------------------------

def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOC.read_text())
    return loaded


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, operation) for path, item in _document()["paths"].items()
            for method, operation in item.items() if method in METHODS]


def test_the_segment_definition_schemas_are_the_ones_derived_from_the_parsers_registries() -> None:
    published = _document()["components"]["schemas"]
    for name, schema in definition_schemas().items():
        assert published.get(name) == schema, f"{name}: regenerate with `python -m crm.segments.schema`"
    body = _document()["components"]["requestBodies"]["SegmentDocument"]["content"]["application/json"]["schema"]
    assert body["properties"]["definition"] == {"$ref": "#/components/schemas/SegmentDefinition"}


def test_a_segment_document_valid_by_the_document_is_one_the_parser_accepts() -> None:
    documents = schemathesis.openapi.from_dict(_document())["/segments"]["POST"].as_strategy()

    @settings(max_examples=200, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(documents)
    def accepted(case: Any) -> None:
        try:
            check_limits(case.body["definition"])
        except ValueError:
            return  # the two limits the description states and a recursive schema cannot count
        parse_segment(json.dumps(case.body).encode())

    accepted()


def test_export_fields_are_the_exportable_profile_fields() -> None:
    schemas = _document()["components"]["schemas"]
    assert schemas["ExportField"]["enum"] == list(EXPORT_FIELDS)
    pattern = re.compile(schemas["ExportFieldList"]["pattern"])
    assert pattern.fullmatch(",".join(EXPORT_FIELDS)) and pattern.fullmatch("email, email ,phone")
    assert not pattern.fullmatch("email,password") and not pattern.fullmatch(",")


def test_path_parameter_patterns_match_the_ids_the_code_mints() -> None:
    document = _document()
    parameters = document["components"]["parameters"]
    segment_id = re.compile(parameters["SegmentId"]["schema"]["pattern"])
    assert segment_id.fullmatch(new_segment_id())
    assert all(segment_id.fullmatch(builtin_id) for builtin_id in BY_ID)
    assert re.fullmatch(parameters["ProfileId"]["schema"]["pattern"], profile_id_for("ws_1", "email#a@example.com"))
    run_id, = document["paths"]["/segment-runs/{run_id}"]["parameters"]
    assert re.fullmatch(run_id["schema"]["pattern"], new_run_id(NOW))
    export_id = next(p for p in document["paths"]["/segments/{segment_id}/exports/{export_id}"]["parameters"]
                     if p.get("name") == "export_id")
    assert re.fullmatch(export_id["schema"]["pattern"], new_export_id())


def test_the_phone_query_parameter_has_the_shape_the_code_checks() -> None:
    phone = next(p for p in _document()["paths"]["/customers"]["get"]["parameters"] if p["name"] == "phone")
    assert phone["schema"]["pattern"] == f"^{PHONE_SHAPE.pattern}$"


def test_every_operation_documents_401_and_every_error_has_the_error_shape() -> None:
    document = _document()
    assert document["security"] == [{"apiKey": []}]
    assert document["components"]["securitySchemes"]["apiKey"] == {"type": "apiKey", "in": "header",
                                                                    "name": "x-api-key"}
    assert document["components"]["schemas"]["Error"]["required"] == ["Code", "Message"]
    responses = document["components"]["responses"]
    for method, path, operation in _operations():
        assert "401" in operation["responses"], (method, path)
        for status, response in operation["responses"].items():
            if status.startswith("4"):
                resolved = responses[response["$ref"].rsplit("/", 1)[-1]] if "$ref" in response else response
                schema = resolved["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_a_definition_that_refers_to_a_missing_segment_is_documented_as_a_conflict() -> None:
    for method, path, operation in _operations():
        if "requestBody" in operation and operation["requestBody"].get("$ref", "").endswith("/SegmentDocument"):
            assert "409" in operation["responses"], (method, path)
