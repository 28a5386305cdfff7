"""The segment builder's form and the segment DSL it writes (docs/console.md, docs/segments.md), both ways.

A definition is a tree of nodes; the form posts each node's inputs flat, named by the node's path and the input
(``n-0-1-field``: the second part of the root's first part, its field). ``from_form`` reads those fields back
into the tree, ``to_definition`` writes the DSL's JSON from it and ``to_tree`` shows a parsed definition as a
tree. The DSL itself judges every value (crm.segments.definition): the form only chooses the JSON shape the
field and operator take, so the message a marketer sees is the DSL's own.

A definition the form cannot show (a list item holding a comma, say) is the one whose tree does not write it
back unchanged: ``load`` answers None for it, and the page keeps the JSON as it was typed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from crm.segments.definition import (
    EVENT_TYPES,
    MAX_CONDITIONS,
    MAX_DEPTH,
    All,
    Any_,
    Condition,
    Definition,
    EventCondition,
    EventOp,
    MemberOf,
    MemberOp,
    Not,
    SegmentInvalid,
    parse_segment,
)
from crm.segments.fields import FIELDS, Kind, Op
from crm.segments.values import Days, DaysAgo

GROUPS = ("all", "any", "not")
LEAVES = ("condition", "event", "segment")
ROOT = "n"
LISTS = frozenset({Op.IN, Op.NOT_IN, Op.CONTAINS_ANY, Op.CONTAINS_ALL})
NO_VALUE = frozenset({Op.EXISTS, Op.NOT_EXISTS})
WINDOWS = frozenset({Op.WITHIN_LAST, Op.NOT_WITHIN_LAST})
# A time is typed as an instant with its zone, or as a number of days before now.
AT, DAYS_AGO = "at", "days_ago"
_PATH = re.compile(r"n(-\d{1,3})*")
_WHOLE = re.compile(r"-?\d{1,12}")
# More nodes than a definition may hold conditions (each group adds one): a larger post is not the form's.
MOST_NODES = 2 * MAX_CONDITIONS + 1


@dataclass
class Node:
    """One node of the form: a group (all, any, not) with its parts, or a leaf with its inputs as typed."""

    kind: str
    inputs: dict[str, str] = field(default_factory=dict)
    parts: list[Node] = field(default_factory=list)

    @property
    def group(self) -> bool:
        return self.kind in GROUPS


def new_condition() -> Node:
    return Node("condition", {"field": "orders_count", "op": Op.GTE.value, "value": "1"})


def new_event() -> Node:
    return Node("event", {"event": "product_viewed", "op": EventOp.AT_LEAST.value, "count": "2",
                          "within_days": "14"})


def new_segment(segment_ids: list[str]) -> Node:
    return Node("segment", {"segment": segment_ids[0] if segment_ids else "", "op": MemberOp.MEMBER.value})


def new_group() -> Node:
    return Node("any", parts=[new_condition()])


# --- the DSL shown as a tree ------------------------------------------------------------------------


def _text(value: object) -> tuple[str, str]:
    """A scalar value as the form types it, with its unit (only a time has one)."""
    if isinstance(value, DaysAgo):
        return str(value.days_ago), DAYS_AGO
    if isinstance(value, datetime):
        return value.isoformat(), AT
    return str(value), ""


def to_tree(definition: Definition) -> Node:
    """A parsed definition as the form's tree."""
    if isinstance(definition, All | Any_):
        kind = "all" if isinstance(definition, All) else "any"
        return Node(kind, parts=[to_tree(part) for part in getattr(definition, kind)])
    if isinstance(definition, Not):
        return Node("not", parts=[to_tree(definition.not_)])
    if isinstance(definition, EventCondition):
        return Node("event", {
            "event": definition.event, "op": definition.op.value,
            "count": "" if definition.count is None else str(definition.count),
            "within_days": "" if definition.within_days is None else str(definition.within_days),
            "since": definition.since.event if definition.since else ""})
    if isinstance(definition, MemberOf):
        return Node("segment", {"segment": definition.segment, "op": definition.op.value})
    return Node("condition", {"field": definition.field, "op": definition.op.value, **_condition_inputs(definition)})


def _condition_inputs(condition: Condition) -> dict[str, str]:
    value = condition.value
    if condition.op in NO_VALUE:
        return {}
    if isinstance(value, Days):
        return {"value": str(value.days)}
    if condition.op is Op.BETWEEN:
        (low, unit), (high, unit2) = _text(value[0]), _text(value[1])
        return {"value": low, "unit": unit, "value2": high, "unit2": unit2}
    if condition.op in LISTS:
        return {"value": ", ".join(_text(item)[0] for item in value)}
    text, unit = _text(value)
    return {"value": text, "unit": unit}


# --- the tree written as the DSL ----------------------------------------------------------------------


def _scalar(kind: Kind | None, text: str, unit: str) -> object:
    """A typed scalar as JSON: whole numbers as numbers, days before now as {"days_ago": N}, the rest as typed
    (an amount stays a decimal string: the DSL reads it exactly)."""
    if kind is Kind.TIME and unit == DAYS_AGO:
        return {"days_ago": int(text) if _WHOLE.fullmatch(text.strip()) else text}
    if kind in (Kind.COUNT, Kind.DAYS) and _WHOLE.fullmatch(text.strip()):
        return int(text)
    if kind in (Kind.MONEY, Kind.PROBABILITY):
        return text.strip()
    return text


def _condition(inputs: Mapping[str, str]) -> dict[str, Any]:
    name, op = inputs.get("field", ""), inputs.get("op", "")
    spec = FIELDS.get(name)
    kind = spec.kind if spec else None
    written: dict[str, Any] = {"field": name, "op": op}
    value = inputs.get("value", "")
    if op in NO_VALUE:
        return written
    if op in WINDOWS:
        written["value"] = {"days": int(value) if _WHOLE.fullmatch(value.strip()) else value}
    elif op == Op.BETWEEN:
        written["value"] = [_scalar(kind, value, inputs.get("unit", "")),
                            _scalar(kind, inputs.get("value2", ""), inputs.get("unit2", ""))]
    elif op in LISTS:
        written["value"] = [_scalar(kind, item.strip(), "") for item in value.split(",") if item.strip()]
    else:
        written["value"] = _scalar(kind, value, inputs.get("unit", ""))
    return written


def _event(inputs: Mapping[str, str]) -> dict[str, Any]:
    op, count, days, since = (inputs.get(key, "").strip() for key in ("op", "count", "within_days", "since"))
    written: dict[str, Any] = {"event": inputs.get("event", ""), "op": op}
    if op != EventOp.NONE:
        written["count"] = int(count) if _WHOLE.fullmatch(count) else (count or None)
    if days:
        written["within_days"] = int(days) if _WHOLE.fullmatch(days) else days
    if since:
        written["since"] = {"event": since, "last": True}
    return written


def to_definition(node: Node) -> dict[str, Any]:
    """The DSL's JSON the tree writes (the DSL checks it: parse_segment)."""
    if node.kind == "not":
        return {"not": to_definition(node.parts[0])}
    if node.group:
        return {node.kind: [to_definition(part) for part in node.parts]}
    if node.kind == "event":
        return _event(node.inputs)
    if node.kind == "segment":
        return {"segment": node.inputs.get("segment", ""), "op": node.inputs.get("op", "")}
    return _condition(node.inputs)


def to_json(node: Node) -> str:
    return json.dumps(to_definition(node), indent=2)


def parsed(definition: object) -> Definition:
    """A JSON definition parsed by the DSL (SegmentInvalid naming the problem)."""
    if not isinstance(definition, Mapping):
        raise SegmentInvalid("definition: a definition is a JSON object")
    return parse_segment({"name": "draft", "definition": definition}).definition


def load(text: str) -> Node | None:
    """The tree of a definition typed as JSON, or None when the form cannot show it exactly; SegmentInvalid
    when the DSL refuses it."""
    try:
        raw = json.loads(text, parse_float=Decimal)
    except ValueError as error:
        raise SegmentInvalid(f"the definition is not JSON: {error}") from None
    definition = parsed(raw)
    tree = to_tree(definition)
    try:
        shown = parsed(to_definition(tree))
    except SegmentInvalid:
        return None
    return tree if shown == definition else None


# --- the form's fields --------------------------------------------------------------------------------


def form_fields(node: Node, path: str = ROOT) -> dict[str, str]:
    """The fields a browser posts for the tree (the template names its inputs the same way)."""
    fields = {f"{path}-kind": node.kind, **{f"{path}-{key}": value for key, value in node.inputs.items()}}
    for index, part in enumerate(node.parts):
        fields.update(form_fields(part, f"{path}-{index}"))
    return fields


def has_tree(form: Mapping[str, str]) -> bool:
    return f"{ROOT}-kind" in form


def from_form(form: Mapping[str, str]) -> Node:
    """The tree a posted form describes; SegmentInvalid when its fields cannot be a tree."""
    kinds = {key[: -len("-kind")]: value for key, value in form.items() if key.endswith("-kind")}
    if len(kinds) > MOST_NODES:
        raise SegmentInvalid(f"definition: more than {MAX_CONDITIONS} conditions")
    if ROOT not in kinds:
        raise SegmentInvalid("definition: the form has no conditions")
    for path, kind in kinds.items():
        if not _PATH.fullmatch(path) or path.count("-") > MAX_DEPTH or kind not in GROUPS + LEAVES:
            raise SegmentInvalid(f"definition: the form's field {path}-kind is not the builder's")
    return _node(ROOT, kinds, form)


def _node(path: str, kinds: Mapping[str, str], form: Mapping[str, str]) -> Node:
    kind = kinds[path]
    if kind not in GROUPS:
        prefix = f"{path}-"
        inputs = {key[len(prefix):]: value for key, value in form.items()
                  if key.startswith(prefix) and "-" not in key[len(prefix):] and key[len(prefix):] != "kind"}
        return _fitted(Node(kind, inputs))
    prefix = f"{path}-"
    indices = sorted(int(child[len(prefix):]) for child in kinds
                     if child.startswith(prefix) and "-" not in child[len(prefix):])
    parts = [_node(f"{path}-{index}", kinds, form) for index in indices]
    if not parts:
        parts = [new_condition()]
    if kind == "not" and len(parts) > 1:
        # "not" takes one part: the parts it was given stay together, all of them negated.
        parts = [Node("all", parts=parts)]
    return Node(kind, parts=parts)


def _fitted(node: Node) -> Node:
    """A leaf whose operator fits what it was changed to: a new field gets its first operator."""
    inputs = node.inputs
    if node.kind == "condition":
        spec = FIELDS.get(inputs.get("field", ""))
        if spec is not None and inputs.get("op") not in spec.ops:
            inputs["op"] = spec.ops[0].value
    return node


# --- adding and removing parts ------------------------------------------------------------------------


def _at(tree: Node, path: str) -> tuple[Node | None, Node | None]:
    """The node at ``path`` and its group (None for the root); (None, None) for no such node."""
    if not _PATH.fullmatch(path):
        return None, None
    node, parent = tree, None
    for step in path.split("-")[1:]:
        index = int(step)
        if not node.group or index >= len(node.parts):
            return None, None
        node, parent = node.parts[index], node
    return node, parent


def apply(tree: Node, action: str, segment_ids: list[str]) -> Node:
    """The tree after a builder button: ``add-condition:PATH``, ``add-event:PATH``, ``add-segment:PATH``,
    ``add-group:PATH`` (to the group at PATH), ``remove:PATH`` and ``wrap:PATH`` (put the node in a group).
    Anything else leaves it as it is."""
    verb, _, path = action.partition(":")
    node, parent = _at(tree, path)
    if node is None:
        return tree
    made: dict[str, Callable[[], Node]] = {
        "add-condition": new_condition, "add-event": new_event, "add-group": new_group,
        "add-segment": lambda: new_segment(segment_ids)}
    if verb in made and node.group and (node.kind != "not" or not node.parts):
        node.parts.append(made[verb]())
    elif verb == "remove" and parent is not None and len(parent.parts) > 1:
        parent.parts.remove(node)
    elif verb == "wrap":
        wrapped = Node("all", parts=[node])
        if parent is None:
            return wrapped
        parent.parts[parent.parts.index(node)] = wrapped
    return tree


# --- the builder's state after a post --------------------------------------------------------------------


@dataclass(frozen=True)
class Builder:
    """What the builder shows: the tree (None when the JSON cannot be shown as a form), the JSON beside it, the
    JSON as the server last wrote it (so that a post tells JSON typed in from a stale copy) and a notice."""

    tree: Node | None
    definition: str
    written: str
    notice: str | None = None


def start(definition: str) -> Builder:
    return state({"definition": definition})


def state(form: Mapping[str, str], segment_ids: list[str] | None = None) -> Builder:
    """The builder after a post. The JSON is the source when it was typed in (it differs from what the server
    wrote), when the form has no tree or when asked to load it; else the tree, changed by the button pressed."""
    action = form.get("action", "")
    typed = form.get("definition", "")
    if action == "reset":
        fresh = Node("all", parts=[new_condition()])
        return Builder(fresh, to_json(fresh), to_json(fresh))
    if action == "load" or not has_tree(form) or typed != form.get("written", typed):
        try:
            tree = load(typed)
        except SegmentInvalid as invalid:
            return Builder(None, typed, typed, f"The form cannot show this JSON: {invalid}")
        if tree is None:
            return Builder(None, typed, typed, "The form cannot show this definition exactly (a list value holding a "
                                               "comma, say): edit it as JSON, or start a new form.")
        return Builder(tree, to_json(tree), to_json(tree))
    tree = apply(from_form(form), action, segment_ids or [])
    return Builder(tree, to_json(tree), to_json(tree))


# --- what the form offers -----------------------------------------------------------------------------


def path_label(path: str) -> str:
    """A node's place for people: "1.2" is the second part of the first part."""
    steps = path.split("-")[1:]
    return ".".join(str(int(step) + 1) for step in steps) if steps else "top"


OP_LABELS = {
    "eq": "is", "neq": "is not", "gt": "more than", "gte": "at least", "lt": "less than", "lte": "at most",
    "between": "between", "in": "is one of", "not_in": "is none of", "contains": "contains",
    "contains_any": "contains any of", "contains_all": "contains all of", "exists": "is set",
    "not_exists": "is not set", "before": "before", "after": "after", "within_last": "within the last (days)",
    "not_within_last": "not within the last (days)",
    "at_least": "at least", "at_most": "at most", "exactly": "exactly", "none": "never",
    "member": "is a member of", "not_member": "is not a member of",
}
GROUP_LABELS = {"all": "all of these", "any": "any of these", "not": "not this"}
KIND_HINTS = {
    Kind.MONEY: "an amount, such as 49.90",
    Kind.COUNT: "a whole number",
    Kind.DAYS: "a number of days",
    Kind.PROBABILITY: "from 0 to 1, such as 0.25",
    Kind.TIME: "2026-01-31T00:00:00+00:00, or a number of days ago",
    Kind.TEXT: "text",
    Kind.TEXT_SET: "text",
    Kind.CONSENT: "a consent state",
}


def choices() -> dict[str, Any]:
    """What the template offers: every field with its kind and operators, the events and their operators."""
    return {
        "fields": [(spec.name, spec.kind.value, [op.value for op in spec.ops]) for spec in FIELDS.values()],
        "kinds": {spec.name: spec.kind.value for spec in FIELDS.values()},
        "ops": {spec.name: [op.value for op in spec.ops] for spec in FIELDS.values()},
        "events": list(EVENT_TYPES),
        "event_ops": [op.value for op in EventOp],
        "member_ops": [op.value for op in MemberOp],
        "op_labels": OP_LABELS,
        "group_labels": GROUP_LABELS,
        "hints": {kind.value: hint for kind, hint in KIND_HINTS.items()},
        "lists": {op.value for op in LISTS},
        "windows": {op.value for op in WINDOWS},
        "no_value": {op.value for op in NO_VALUE},
    }


__all__ = ["AT", "DAYS_AGO", "ROOT", "Builder", "Node", "apply", "choices", "form_fields", "from_form",
           "has_tree", "load", "parsed", "path_label", "start", "state", "to_definition", "to_json", "to_tree"]
