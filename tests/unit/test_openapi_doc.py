"""docs/openapi.yaml describes exactly the routes the marketer API (functions/api) serves."""

from __future__ import annotations

from typing import Any

import yaml
from crm_local.lambdas import load_handler
from openapi_spec_validator import validate  # installed with moto[server]

from tests.builders import ROOT

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
