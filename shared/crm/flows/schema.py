"""The flow definition as JSON Schema for docs/openapi.yaml, derived from the pydantic models (crm.models.flows).

pydantic writes the shape; this module adds what the models say in code rather than in types: a step's or a
trigger's ``kind`` is required (it picks the model), a delay takes exactly one of its three forms, ``once_per``
needs ``days`` and only it takes them, durations are ISO 8601 within the engine's bounds, and filters are the
segment language's SegmentDefinition. What no JSON Schema can say (a filter's property must be one the event
has, step ids unique across the tree, weights not all 0, nothing after an exit step) the engine checks with a
400 naming the path. tests/unit/test_openapi_doc.py holds the document equal to these schemas.
Regenerate with ``python -m crm.flows.schema``.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import yaml

from crm.flows.manage import CUSTOM_FLOW_ID
from crm.models.flows import MAX_WAIT, FlowDefinition

REF = "#/components/schemas/"
_DAYS = MAX_WAIT.days


def _up_to(most: int) -> str:
    """A regex alternation of the whole numbers 1..most, without leading zeros."""
    text = str(most)
    if len(text) == 1:
        return f"[1-{text}]"
    options = ["[1-9]"] + [f"[1-9][0-9]{{{n}}}" for n in range(1, len(text) - 1)]
    for position, digit in enumerate(text):  # as many digits as ``most``: below it at ``position``, then any
        low = 1 if position == 0 else 0
        if int(digit) - 1 >= low:
            below = f"[{low}-{int(digit) - 1}]" if int(digit) - 1 > low else str(low)
            rest = len(text) - position - 1
            options.append(text[:position] + below + (f"[0-9]{{{rest}}}" if rest > 1 else "[0-9]" * rest))
    options.append(text)
    return "|".join(options)


def duration_pattern(signed: bool = False, zero: bool = False) -> str:
    """ISO 8601 durations pydantic reads, in days, hours or minutes, at most the engine's longest wait."""
    days, hours, minutes = _up_to(_DAYS), _up_to(_DAYS * 24), _up_to(_DAYS * 24 * 60)
    forms = [f"P({days})D", f"PT({hours})H", f"PT({minutes})M"] + (["P0D"] if zero else [])
    return f"^{'-?' if signed else ''}({'|'.join(forms)})$"


def _name(model: str) -> str:
    return model if model.startswith("Flow") else f"Flow{model}"


def _clean(node: Any) -> Any:
    """pydantic's output without titles, with references renamed into the document's namespace."""
    if isinstance(node, dict):
        cleaned: dict[str, Any] = {}
        for key, value in node.items():
            if key == "title":
                continue
            if key == "$ref":
                cleaned[key] = REF + _name(str(value).rsplit("/", 1)[-1])
            elif key == "mapping" and isinstance(value, dict):
                cleaned[key] = {tag: REF + _name(ref.rsplit("/", 1)[-1]) for tag, ref in value.items()}
            else:
                cleaned[key] = _clean(value)
        return cleaned
    if isinstance(node, list):
        return [_clean(item) for item in node]
    return node


def _duration(description: str, signed: bool = False, zero: bool = False) -> dict[str, Any]:
    return {"type": "string", "pattern": duration_pattern(signed, zero), "description": description}


_FILTER = {"anyOf": [{"$ref": REF + "SegmentDefinition"}, {"type": "null"}],
           "description": "the segment language (docs/segments.md)"}


def schemas() -> dict[str, dict[str, Any]]:
    """The components/schemas entries of docs/openapi.yaml for the flow definition, by name."""
    derived = FlowDefinition.model_json_schema(ref_template=REF + "{model}")
    found: dict[str, dict[str, Any]] = {_name(n): _clean(s) for n, s in derived.pop("$defs").items()}
    found["FlowDefinition"] = _clean(derived)
    for schema in found.values():
        schema.pop("description", None)  # the models' docstrings: docs/flows.md describes them for marketers
        properties = schema.get("properties", {})
        if "kind" in properties:
            schema["required"] = ["kind", *schema.get("required", [])]
    positive = f"more than 0, at most {_DAYS} days: P7D, PT4H, PT30M"
    delay = found["FlowDelay"]["properties"]
    delay["duration"] = _duration(positive)
    delay["until_time"] = {"type": "string", "pattern": delay["until_time"]["anyOf"][0]["pattern"],
                           "description": "HH:MM in the shopper's time zone"}
    delay["until"] = {"$ref": REF + "FlowDateAnchor"}
    found["FlowDelay"]["oneOf"] = [{"required": [form]} for form in ("duration", "until_time", "until")]
    found["FlowWaitForEvent"]["properties"]["timeout"] = _duration(positive)
    found["FlowDateAnchor"]["properties"]["offset"] = _duration(f"at most {_DAYS} days either way", signed=True,
                                                                zero=True)
    reentry = found["FlowReentry"]
    reentry["properties"]["days"] = {"type": "integer", "minimum": 1, "maximum": 3650}
    reentry["oneOf"] = [{"required": ["mode", "days"], "properties": {"mode": {"const": "once_per"}}},
                        {"required": ["mode"], "properties": {"mode": {"enum": ["once", "every_time"]}},
                         "not": {"required": ["days"]}}]
    found["FlowDefinition"]["properties"]["profile_filter"] = copy.deepcopy(_FILTER)
    found["FlowSplitPath"]["properties"]["when"] = {
        **copy.deepcopy(_FILTER), "description": "the segment language; none on the last path only (otherwise)"}
    found["FlowPropertyFilter"]["properties"]["value"] = {
        "description": 'compared with the event\'s property; {"trigger": "<path>"} is the trigger\'s own value'}
    new = copy.deepcopy(found["FlowDefinition"])
    new["description"] = "A new flow (POST /flows): a definition, and its id if the caller chooses it"
    new["properties"] = {"id": {"type": "string", "pattern": CUSTOM_FLOW_ID,
                                "description": "minted (flow_ and 16 hex digits) when left out"},
                         **new["properties"]}
    found["FlowNew"] = new
    for schema in found.values():
        schema.pop("default", None)
    return dict(sorted(found.items()))


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def yaml_text(indent: int = 4) -> str:
    """The schemas as docs/openapi.yaml writes them under components/schemas."""
    text = yaml.dump(schemas(), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
    return "".join(" " * indent + line if line.strip() else line for line in text.splitlines(keepends=True))


if __name__ == "__main__":
    sys.stdout.write(yaml_text())
