"""The segment definition language as JSON Schema, derived from the registries the parser checks against.

docs/openapi.yaml carries these schemas (tests/unit/test_openapi_doc.py holds them equal), so a document that
is valid by the published schema is one parse_segment accepts, short of the two limits a recursive JSON Schema
cannot count (MAX_DEPTH levels, MAX_CONDITIONS conditions in all: the description states them; unrolling
the levels makes a schema that grows exponentially in tools that inline references) and of references to
segments, which depend on the workspace (an unknown or circular one is a 409).
Regenerate with ``python -m crm.segments.schema``.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from crm import recent
from crm.models.consent import ConsentState
from crm.segments.definition import EVENT_TYPES, MAX_CONDITIONS, MAX_DEPTH, EventOp, MemberOp
from crm.segments.fields import FIELDS, Kind, Op
from crm.segments.values import MAX_DAYS, MAX_TEXT, MAX_VALUES

REF = "#/components/schemas/"
# Not blank: some character that neither JSON Schema's \s nor Python's str.strip() counts as white space.
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"
DECIMAL = r"^-?[0-9]{1,20}(\.[0-9]{1,20})?$"
# RFC 3339 with its zone, as datetime.fromisoformat reads it (days to 28: every month has them).
MOMENT = (r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
          r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
_SCALAR_OPS = (Op.EQ, Op.NEQ, Op.GT, Op.GTE, Op.LT, Op.LTE, Op.CONTAINS, Op.BEFORE, Op.AFTER)
_LIST_OPS = (Op.IN, Op.NOT_IN, Op.CONTAINS_ANY, Op.CONTAINS_ALL)
_WINDOW_OPS = (Op.WITHIN_LAST, Op.NOT_WITHIN_LAST)
_PRESENCE_OPS = (Op.EXISTS, Op.NOT_EXISTS)


def _whole(least: int, most: int | None = None) -> dict[str, Any]:
    bound = {"type": "integer", "minimum": least}
    return bound if most is None else {**bound, "maximum": most}


def _scalar(kind: Kind) -> dict[str, Any]:
    match kind:
        case Kind.MONEY:
            return {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": DECIMAL}]}
        case Kind.PROBABILITY:
            return {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 1},
                              {"type": "string", "pattern": r"^(0(\.[0-9]{1,20})?|1(\.0{1,20})?)$"}]}
        case Kind.COUNT | Kind.DAYS:
            return {"type": "integer"}
        case Kind.TIME:
            return {"anyOf": [{"type": "string", "pattern": MOMENT},
                              {"type": "object", "required": ["days_ago"], "additionalProperties": False,
                               "properties": {"days_ago": _whole(0, MAX_DAYS)}}]}
        case Kind.CONSENT:
            return {"type": "string", "enum": [state.value for state in ConsentState]}
        case _:
            return {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": NOT_BLANK}


def _condition(fields: list[str], ops: list[Op], value: dict[str, Any] | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"field": {"type": "string", "enum": fields},
                                  "op": {"type": "string", "enum": [op.value for op in ops]}}
    properties["value"] = {"type": "null"} if value is None else value
    return {"type": "object", "required": ["field", "op"] if value is None else ["field", "op", "value"],
            "additionalProperties": False, "properties": properties}


def field_condition_schema() -> dict[str, Any]:
    """A profile field compared with a value: one branch per kind of field and shape of value."""
    branches = []
    for kind in Kind:
        fields = [name for name, spec in FIELDS.items() if spec.kind is kind]
        ops = FIELDS[fields[0]].ops
        scalar = _scalar(kind)
        shapes: list[tuple[tuple[Op, ...], dict[str, Any] | None]] = [
            (_PRESENCE_OPS, None),
            (_SCALAR_OPS, scalar),
            (_LIST_OPS, {"type": "array", "minItems": 1, "maxItems": MAX_VALUES, "items": scalar}),
            ((Op.BETWEEN,), {"type": "array", "minItems": 2, "maxItems": 2, "items": scalar,
                             "description": "the two bounds, in either order, both included"}),
            (_WINDOW_OPS, {"type": "object", "required": ["days"], "additionalProperties": False,
                           "properties": {"days": _whole(1, MAX_DAYS)}}),
        ]
        for shape_ops, value in shapes:
            chosen = [op for op in shape_ops if op in ops]
            if chosen:
                branches.append(_condition(fields, chosen, value))
    return {"description": "A profile field compared with a value (docs/segments.md lists each field's meaning)",
            "anyOf": branches}


def event_condition_schema() -> dict[str, Any]:
    """How many times the subject did something; within_days or since bound the count to what is kept."""
    kept = recent.RECENT_KEPT
    branches = []
    for event in EVENT_TYPES:
        others = [other for other in EVENT_TYPES if other != event]
        since = {"type": "object", "required": ["event"], "additionalProperties": False,
                 "properties": {"event": {"type": "string", "enum": others}, "last": {"const": True}}}
        base = {"event": {"const": event}, "within_days": _whole(1, MAX_DAYS), "since": since}
        for ops, least, most in (([EventOp.AT_LEAST], 1, kept), ([EventOp.EXACTLY, EventOp.AT_MOST], 0, kept - 1)):
            branches.append({"type": "object", "required": ["event", "op", "count"], "additionalProperties": False,
                             "properties": {**base, "op": {"enum": [op.value for op in ops]},
                                            "count": _whole(least, most)}})
        branches.append({"type": "object", "required": ["event", "op"], "additionalProperties": False,
                         "properties": {**base, "op": {"const": EventOp.NONE.value}, "count": {"type": "null"}}})
    return {"description": (f"How many times the subject did an event, optionally within the last days and since "
                            f"its last occurrence of another event. A count of more than {kept - 1} ({kept} for "
                            f"at_least) is taken over the whole history only, without within_days or since."),
            "anyOf": branches}


def group_schema(key: str) -> dict[str, Any]:
    inner = {"$ref": REF + "SegmentDefinition"}
    items = {"type": "array", "minItems": 1, "maxItems": MAX_CONDITIONS, "items": inner} if key != "not" else inner
    return {"type": "object", "required": [key], "additionalProperties": False, "properties": {key: items}}


def schemas() -> dict[str, dict[str, Any]]:
    """The components/schemas entries of docs/openapi.yaml for the definition language, by name."""
    member_of = {"type": "object", "required": ["segment", "op"], "additionalProperties": False,
                 "properties": {"segment": {"type": "string", "minLength": 1, "maxLength": 200,
                                            "description": "a segment id of the workspace (an unknown one is 409)"},
                                "op": {"type": "string", "enum": [op.value for op in MemberOp]}}}
    parts = ("AllOf", "AnyOf", "NotOf", "FieldCondition", "EventCondition", "SegmentCondition")
    return {
        "SegmentDefinition": {
            "description": (f"all / any / not, a field, event or segment condition (docs/segments.md), nested at "
                            f"most {MAX_DEPTH} levels deep and holding at most {MAX_CONDITIONS} conditions in all"),
            "anyOf": [{"$ref": REF + name} for name in parts]},
        "AllOf": group_schema("all"),
        "AnyOf": group_schema("any"),
        "NotOf": group_schema("not"),
        "FieldCondition": field_condition_schema(),
        "EventCondition": event_condition_schema(),
        "SegmentCondition": member_of,
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # repeated enums written out: a reader of the document should not chase anchors


def yaml_text(indent: int = 4) -> str:
    """The schemas as docs/openapi.yaml writes them under components/schemas: each branch on a few lines."""
    lines = []
    for name, schema in schemas().items():
        rest = {key: value for key, value in schema.items() if key != "anyOf"}
        # A mapping of scalars alone would be written in flow style, and "anyOf:" cannot follow it.
        lines += yaml.dump({name: rest}, Dumper=_Dumper, default_flow_style=None if "anyOf" not in schema else False,
                           sort_keys=False, width=110).splitlines()
        if "anyOf" in schema:
            lines.append("  anyOf:")
            for branch in schema["anyOf"]:
                flow = yaml.dump(branch, Dumper=_Dumper, default_flow_style=True, sort_keys=False, width=110)
                lines += ["    - " + flow.splitlines()[0], *("      " + line for line in flow.splitlines()[1:])]
    return "".join(" " * indent + line + "\n" for line in lines)


if __name__ == "__main__":
    sys.stdout.write(yaml_text())
