"""docs/openapi.yaml describes exactly the routes the marketer API (functions/api) serves."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import schemathesis
import yaml
from crm.customers import PHONE_SHAPE
from crm.flows.builtin import BUILTIN_FLOWS
from crm.flows.defaults import DefinitionInvalid
from crm.flows.manage import flow_view, new_flow_id, parse_definition
from crm.flows.schema import schemas as flow_schemas
from crm.messaging.defaults import TEMPLATES
from crm.messaging.manage import TEMPLATE_ID, new_template_id, time_zones
from crm.models.exports import EXPORT_FIELDS
from crm.models.flows import FLOW_ID, FlowRecord
from crm.models.messaging import EmailTemplate, MessagingSettings, SmsTemplate
from crm.profiles import profile_id_for
from crm.segments.builtin import BY_ID
from crm.segments.definition import check_limits, parse_segment
from crm.segments.exports import new_export_id
from crm.segments.runs import new_run_id
from crm.segments.schema import schemas as definition_schemas
from crm.segments.service import new_segment_id
from crm_local.lambdas import load_handler
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate  # installed with moto[server]

from tests.builders import NOW, ROOT

DOC = ROOT / "docs" / "openapi.yaml"
METHODS = {"get", "put", "post", "delete", "patch", "options", "head"}


def _documented() -> set[tuple[str, str]]:
    document: dict[str, Any] = yaml.safe_load(DOC.read_text())
    assert document["openapi"].startswith("3.1")
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item
            if method in METHODS}


def _served(function: str = "api", logical_id: str = "ApiFunction") -> set[tuple[str, str]]:
    app = load_handler(ROOT / "functions" / function, "app.app", logical_id)
    return {(method.upper(), path) for path, entries in app.routes.items() for method in entries}


def _public() -> set[tuple[str, str]]:
    """Operations without the API key (``security: []``): the links in emails, served by the track function."""
    return {(method, path) for method, path, operation in _operations() if operation.get("security") == []}


def test_every_route_is_documented_and_every_documented_route_is_served() -> None:
    served, documented = _served(), _documented() - _public()
    assert served - documented == set(), "routes missing from docs/openapi.yaml"
    assert documented - served == set(), "documented routes the app does not serve"


def test_the_public_operations_are_the_links_in_messages_the_track_function_serves() -> None:
    links = {(method, path) for method, path in _served("track", "TrackFunction") if path != "/track"}
    assert _public() == links == {("GET", "/unsubscribe/{token}"), ("POST", "/unsubscribe/{token}"),
                                  ("GET", "/confirm/{token}"), ("POST", "/confirm/{token}"), ("GET", "/r/{code}")}


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
    public = _public()
    for method, path, operation in _operations():
        if (method, path) in public:  # no key to refuse; their answers are HTML pages (or a redirect), errors too
            assert "401" not in operation["responses"] and set(operation["responses"]) <= {
                "200", "302", "400", "404", "410", "503"}, (method, path)
            continue
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


# --- flows, templates, messaging settings ----------------------------------------------------------------------

def test_the_flow_definition_schemas_are_the_ones_derived_from_the_models() -> None:
    published = _document()["components"]["schemas"]
    for name, schema in flow_schemas().items():
        assert published.get(name) == schema, f"{name}: regenerate with `python -m crm.flows.schema`"


def _validator(name: str) -> Draft202012Validator:
    # The components beside the reference, so "#/components/schemas/..." resolves within the one schema.
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": _document()["components"]})


def test_every_builtin_flow_is_valid_by_the_document() -> None:
    validator = _validator("FlowDefinition")
    for flow_id in BUILTIN_FLOWS:
        errors = [error.message for error in validator.iter_errors(flow_view(_record(flow_id))["definition"])]
        assert errors == [], flow_id


def _record(flow_id: str) -> FlowRecord:
    return FlowRecord(workspace_id="ws", flow_id=flow_id, definition=BUILTIN_FLOWS[flow_id], created_at=NOW,
                      updated_at=NOW)


def test_a_flow_document_valid_by_the_document_has_the_models_shape() -> None:
    # What the document allows the models take; the engine's checks beyond the shape (a property the event does
    # not have, a step id used twice, ...) are stated in the operation's description and refused with a 400.
    documents = schemathesis.openapi.from_dict(_document())["/flows"]["POST"].as_strategy()

    @settings(max_examples=150, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(documents)
    def shaped(case: Any) -> None:
        body = dict(case.body)
        body.pop("id", None)
        try:
            check_limits(body.get("profile_filter") or {"field": "orders_count", "op": "exists"})
        except ValueError:
            return
        try:
            parse_definition(json.loads(json.dumps(body, default=str), parse_float=Decimal))
        except DefinitionInvalid as error:
            assert not _shape_problem(str(error)), str(error)

    shaped()


def _shape_problem(message: str) -> bool:
    """A refusal by pydantic (the shape), as opposed to the engine's checks or the segment language's."""
    return any(phrase in message for phrase in ("Field required", "Extra inputs", "Input should", "String should"))


def test_the_messaging_documents_name_the_models_fields() -> None:
    schemas = _document()["components"]["schemas"]
    assert set(schemas["MessagingSettingsDocument"]["properties"]) == set(MessagingSettings.model_fields)
    assert set(schemas["MessagingSettings"]["properties"]) == {*MessagingSettings.model_fields, "sender_verification"}
    email, sms = schemas["TemplateDocument"]["oneOf"]
    assert set(email["properties"]) == set(EmailTemplate.model_fields)
    assert set(sms["properties"]) == set(SmsTemplate.model_fields)
    new_email, new_sms = schemas["NewTemplate"]["oneOf"]
    assert set(new_email["properties"]) == {"id", *EmailTemplate.model_fields}
    assert set(new_sms["properties"]) == {"id", *SmsTemplate.model_fields}
    assert set(schemas["TimeZone"]["enum"]) == time_zones()


def test_flow_and_template_id_patterns_match_the_ids_the_code_mints() -> None:
    parameters = _document()["components"]["parameters"]
    flow_id = re.compile(parameters["FlowId"]["schema"]["pattern"])
    assert flow_id.fullmatch(new_flow_id()) and all(flow_id.fullmatch(i) for i in BUILTIN_FLOWS)
    template_id = re.compile(parameters["TemplateId"]["schema"]["pattern"])
    assert template_id.fullmatch(new_template_id()) and all(template_id.fullmatch(i) for i in TEMPLATES)
    assert parameters["FlowId"]["schema"]["pattern"] == FLOW_ID
    assert parameters["TemplateId"]["schema"]["pattern"] == TEMPLATE_ID
