"""The crm layer (shared/Makefile): it ships every module the functions import, and nothing of chalice's CLI."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from tests.builders import TEMPLATE

ROOT = TEMPLATE.parent
SHARED = ROOT / "shared"
# What Lambda's python3.12 runtime carries besides the standard library.
IN_THE_RUNTIME = {"boto3", "botocore"}
# The one part of chalice the layer ships (shared/Makefile extracts these two files from its wheel).
CHALICE_SHIPPED = {"chalice", "chalice.app"}
# Parts of phonenumbers the layer drops (shared/Makefile): the geocoder's and carrier names' data.
PHONENUMBERS_DROPPED = {"phonenumbers.geocoder", "phonenumbers.carrier", "phonenumbers.geodata",
                        "phonenumbers.carrierdata"}


def _imported_modules(path: Path) -> Iterator[str]:
    """Every absolute import in the file, at module level or inside a function (lazy imports count too)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _source_of(module: str) -> Path | None:
    base = SHARED.joinpath(*module.split("."))
    return next((path for path in (base.with_suffix(".py"), base / "__init__.py") if path.is_file()), None)


# The code folders whose functions also carry the science layer (layers/science: numpy and scipy).
FITTING_FOLDERS = {"predictions"}
SCIENCE = ROOT / "layers" / "science"


def imports_of_the_functions(folders: set[str] | None = None) -> set[str]:
    """What the functions' code can import at run time: their app modules and every crm module they reach.

    Modules of shared/crm that no function reaches (the command line's flows-as-code, the schema printers)
    may use what only the CLI installs (PyYAML).
    """
    found: set[str] = set()
    todo = [path for path in (ROOT / "functions").glob("*/app.py") if folders is None or path.parent.name in folders]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imported_modules(path):
            found.add(module)
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):
                source = _source_of(".".join(parts[:depth])) if parts[0] == "crm" else None
                if source is not None:
                    todo.append(source)
    return found


def layer_requirements(folder: Path = SHARED) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in (folder / "requirements.txt").read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def _name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def distributions_in_the_layer(folder: Path = SHARED) -> set[str]:
    """The listed requirements and, as pip installs them, their own dependencies (extras left out)."""
    found: set[str] = set()
    todo = [requirement.name for requirement in layer_requirements(folder)]
    while todo:
        name = _name(todo.pop())
        if name in found:
            continue
        found.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"python_version": "3.12", "extra": ""}):
                todo.append(requirement.name)
    return found


def test_the_layer_is_built_by_the_makefile_in_its_content_uri() -> None:
    text = TEMPLATE.read_text()
    layer = text[text.index("  CrmLayer:"):text.index("\n\n", text.index("  CrmLayer:"))]
    assert "BuildMethod: makefile" in layer and "ContentUri: shared/" in layer
    assert re.search(r"^build-CrmLayer:", (SHARED / "Makefile").read_text(), re.MULTILINE)


def _not_shipped(modules: set[str], in_layers: set[str]) -> set[str]:
    owners = metadata.packages_distributions()
    missing = set()
    for module in modules:
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in IN_THE_RUNTIME or top == "crm" or top == "chalice":
            continue
        if not {_name(d) for d in owners.get(top, [])} & in_layers:
            missing.add(module)
    return missing


def test_every_third_party_module_the_functions_import_is_in_the_layer_or_the_runtime() -> None:
    others = {path.parent.name for path in (ROOT / "functions").glob("*/app.py")} - FITTING_FOLDERS
    missing = _not_shipped(imports_of_the_functions(others), distributions_in_the_layer())
    assert not missing, f"imported by shared/crm or functions/ but not shipped in the layer: {sorted(missing)}"


def test_the_functions_that_fit_find_their_imports_in_the_crm_or_the_science_layer() -> None:
    shipped = distributions_in_the_layer() | distributions_in_the_layer(SCIENCE)
    missing = _not_shipped(imports_of_the_functions(FITTING_FOLDERS), shipped)
    assert not missing, f"imported by functions/predictions but not shipped in a layer: {sorted(missing)}"


def test_numpy_and_scipy_stay_off_every_other_function() -> None:
    others = {path.parent.name for path in (ROOT / "functions").glob("*/app.py")} - FITTING_FOLDERS
    numeric = {m for m in imports_of_the_functions(others) if m.split(".")[0] in ("numpy", "scipy")}
    assert not numeric
    assert not distributions_in_the_layer() & {"numpy", "scipy"}
    assert re.search(r"^build-ScienceLayer:", (SCIENCE / "Makefile").read_text(), re.MULTILINE)


def test_the_functions_use_only_the_part_of_chalice_the_layer_ships() -> None:
    from_chalice = {m for m in imports_of_the_functions() if m.split(".")[0] == "chalice"}
    names_in_init = set(vars(__import__("chalice")))
    beyond = {m for m in from_chalice if m not in CHALICE_SHIPPED
              and not (m.startswith("chalice.app.") or m.removeprefix("chalice.") in names_in_init)}
    assert not beyond, f"chalice modules the layer does not ship: {sorted(beyond)}"


def test_nothing_reads_the_phone_data_the_layer_drops() -> None:
    used = {m for m in imports_of_the_functions() for dropped in PHONENUMBERS_DROPPED
            if m == dropped or m.startswith(dropped + ".")}
    assert not used


def test_the_layer_leaves_out_chalices_command_line() -> None:
    in_layer = distributions_in_the_layer()
    assert "chalice" not in in_layer
    assert not in_layer & {"pip", "setuptools", "wheel", "inquirer", "blessed", "click", "botocore", "pyyaml"}
