"""template.yaml, read and translated by SAM's own translator into plain CloudFormation.

The local runtime and the tests read the wiring from here, never from a second list.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str
from samtranslator.translator.transform import transform

# SAM wants an S3 location for code; locally the code stays where it is.
_CODE_PLACEHOLDER = "s3://crm-local-code/"


def find_template(start: Path | None = None) -> Path:
    """template.yaml of this checkout: the CRM_TEMPLATE setting, else found upwards from here or the cwd."""
    if os.environ.get("CRM_TEMPLATE"):
        return Path(os.environ["CRM_TEMPLATE"])
    for base in [start or Path.cwd(), Path(__file__).resolve()]:
        for folder in [base, *base.parents]:
            if (folder / "template.yaml").is_file():
                return folder / "template.yaml"
    raise FileNotFoundError("template.yaml not found; set CRM_TEMPLATE")


@dataclass(frozen=True)
class Stack:
    """The translated template and where each function's code lives on disk."""

    root: Path
    resources: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    code_paths: dict[str, Path]
    parameters: dict[str, dict[str, Any]] = dataclass_field(default_factory=dict)
    conditions: dict[str, Any] = dataclass_field(default_factory=dict)

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.resources.items() if r["Type"] == resource_type}


def read_sam(path: Path) -> dict[str, Any]:
    template, problems = decode_str(path.read_text())
    if template is None:
        raise ValueError(f"{path} cannot be read: {problems}")
    plain: dict[str, Any] = json.loads(json.dumps(template))
    return plain


def load_stack(path: Path | None = None, region: str = "us-east-1") -> Stack:
    path = path or find_template()
    sam = read_sam(path)
    code_paths: dict[str, Path] = {}
    for name, resource in sam["Resources"].items():
        properties = resource.get("Properties", {})
        for field in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(field), str) and not properties[field].startswith("s3://"):
                code_paths[name] = (path.parent / properties[field]).resolve()
                properties[field] = _CODE_PLACEHOLDER + properties[field]
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    cloudformation = transform(copy.deepcopy(sam), {}, None)
    return Stack(root=path.parent, resources=cloudformation["Resources"],
                 outputs=cloudformation.get("Outputs", {}), code_paths=code_paths,
                 parameters=cloudformation.get("Parameters", {}), conditions=cloudformation.get("Conditions", {}))
