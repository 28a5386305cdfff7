"""The segment definition language: a JSON document, validated, with errors that name the bad field.

A segment is ``{"name": ..., "definition": D}``; D is ``{"all": [D, ...]}``, ``{"any": [D, ...]}``,
``{"not": D}``, a profile field condition ``{"field", "op", "value"}``, an event condition
``{"event", "op", "count", "within_days", "since"}`` or a membership ``{"segment", "op"}``, nesting freely
up to MAX_DEPTH levels and MAX_CONDITIONS conditions. An event condition with a window or ``since`` counts
at most as many events as a profile keeps the times of (crm.recent.RECENT_KEPT), so that its answer is
exact. docs/segments.md describes the language.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from crm import recent
from crm.models.canonical import ActivityType
from crm.models.flows import MANAGED_BY
from crm.segments.fields import FIELDS, Op
from crm.segments.values import condition_value

MAX_DEPTH = 10
MAX_CONDITIONS = 100
ORDER_PLACED = "order_placed"
EVENT_TYPES: tuple[str, ...] = (*(kind.value for kind in ActivityType), ORDER_PLACED)

_NODE = ConfigDict(frozen=True, extra="forbid")
_OPS = frozenset(op.value for op in Op)
# A model-level check that is about one field: the error type carries the field, describe() puts it in the path.
_FIELD_ERROR = "segment_field"


class SegmentInvalid(ValueError):
    """A segment document that cannot be used; the message is "path: problem" (an API answers 400)."""


class EventOp(StrEnum):
    AT_LEAST = "at_least"
    AT_MOST = "at_most"
    EXACTLY = "exactly"
    NONE = "none"


class MemberOp(StrEnum):
    MEMBER = "member"
    NOT_MEMBER = "not_member"


def _event_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise ValueError(f"unknown event {value!r}; the events are {', '.join(EVENT_TYPES)}")
    return value


def _whole_decimal(value: object) -> object:
    # JSON Schema counts 3.0 as an integer, and a JSON 3.0 arrives here as Decimal("3.0"): it is the number 3.
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return value


class Condition(BaseModel):
    """A profile field compared with a value; see crm.segments.fields for each field's type and operators."""

    model_config = _NODE

    field: str
    op: Op
    value: Any = Field(default=None, validate_default=True)

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value not in FIELDS:
            raise ValueError(f"unknown field {value!r}; the fields are {', '.join(FIELDS)}")
        return value

    @field_validator("op", mode="before")
    @classmethod
    def _known_op(cls, value: object) -> object:
        if not isinstance(value, str) or value not in _OPS:
            raise ValueError(f"unknown operator {value!r}; the operators are {', '.join(Op)}")
        return value

    @field_validator("op")
    @classmethod
    def _op_fits_field(cls, value: Op, info: ValidationInfo) -> Op:
        spec = FIELDS.get(info.data.get("field", ""))
        if spec is not None and value not in spec.ops:
            raise ValueError(f"{spec.name} does not take {value}; it takes {', '.join(spec.ops)}")
        return value

    @field_validator("value", mode="before")
    @classmethod
    def _typed(cls, value: object, info: ValidationInfo) -> object:
        spec, op = FIELDS.get(info.data.get("field", "")), info.data.get("op")
        if spec is None or not isinstance(op, Op):
            return value  # the field or the operator is wrong, and that is the error to report
        return condition_value(spec, op, value)


class Since(BaseModel):
    """Count only events after the subject's last occurrence of this event."""

    model_config = _NODE

    event: str
    last: Literal[True] = True  # the only anchor so far; spelled out so "first" can come without ambiguity

    @field_validator("event")
    @classmethod
    def _known(cls, value: str) -> str:
        return _event_type(value)


class EventCondition(BaseModel):
    """How many times the subject did something, optionally within the last days and since another event."""

    model_config = _NODE

    event: str
    op: EventOp
    count: int | None = Field(default=None, validate_default=True)
    within_days: int | None = Field(default=None, ge=1, le=36500, strict=True)
    since: Since | None = None

    @field_validator("within_days", mode="before")
    @classmethod
    def _whole_days(cls, value: object) -> object:
        return _whole_decimal(value)

    @field_validator("event")
    @classmethod
    def _known(cls, value: str) -> str:
        return _event_type(value)

    @field_validator("count", mode="before")
    @classmethod
    def _count_fits_op(cls, value: object, info: ValidationInfo) -> object:
        value = _whole_decimal(value)
        op = info.data.get("op")
        if op is EventOp.NONE:
            if value is not None:
                raise ValueError("none takes no count")
            return None
        least = 1 if op is EventOp.AT_LEAST else 0
        if isinstance(op, EventOp) and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ValueError(f"{op} takes a count: a whole number of {least} or more")
        return value

    @field_validator("since")
    @classmethod
    def _another_event(cls, value: Since | None, info: ValidationInfo) -> Since | None:
        if value is not None and value.event == info.data.get("event"):
            raise ValueError("since names the event being counted: it must be another event")
        return value

    @model_validator(mode="after")
    def _count_within_kept(self) -> EventCondition:
        # A profile keeps the times of only the latest RECENT_KEPT occurrences of each event. Counting within a
        # window (or since an anchor) is exact while the answer is decided by those: "at least K" needs K of
        # them, "exactly K" / "at most K" one more to see that there are not K + 1. A whole-history count
        # reads the profile's counters, which count everything, so it has no bound.
        if self.count is None or (self.within_days is None and self.since is None):
            return self
        kept = recent.RECENT_KEPT
        limit = kept if self.op is EventOp.AT_LEAST else kept - 1
        if self.count > limit:
            raise PydanticCustomError(_FIELD_ERROR, f"{self.op} takes a count of at most {limit} with within_days or "
                                      f"since: a profile keeps the times of each event's latest {kept} occurrences",
                                      {"field": "count"})
        return self


class MemberOf(BaseModel):
    """Membership of another segment, by its id."""

    model_config = _NODE

    segment: str = Field(min_length=1, max_length=200)
    op: MemberOp


class All(BaseModel):
    model_config = _NODE

    all: tuple[Definition, ...] = Field(min_length=1)


class Any_(BaseModel):  # the underscore: "Any" is typing's
    model_config = _NODE

    any: tuple[Definition, ...] = Field(min_length=1)


class Not(BaseModel):
    # "not" is a Python keyword: the attribute is not_, the JSON key is "not", both ways.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    not_: Definition = Field(alias="not")


# A node's shape is told by its key, so an error reports the member it was meant to be, not all six.
_SHAPES = (("all", "all"), ("any", "any"), ("not", "not"), ("field", "condition"), ("event", "event"),
           ("segment", "segment"))
_TAGS = frozenset(tag for _, tag in _SHAPES)
_TAG_OF: dict[type[BaseModel], str] = {All: "all", Any_: "any", Not: "not", Condition: "condition",
                                       EventCondition: "event", MemberOf: "segment"}


def _shape(node: object) -> str | None:
    if isinstance(node, BaseModel):
        return _TAG_OF.get(type(node))
    if isinstance(node, Mapping):
        return next((tag for key, tag in _SHAPES if key in node), None)
    return None


Definition = Annotated[
    Annotated[All, Tag("all")]
    | Annotated[Any_, Tag("any")]
    | Annotated[Not, Tag("not")]
    | Annotated[Condition, Tag("condition")]
    | Annotated[EventCondition, Tag("event")]
    | Annotated[MemberOf, Tag("segment")],
    Discriminator(
        _shape,
        custom_error_type="segment_node",
        custom_error_message="a definition is an object with one of the keys all, any, not, field, event or segment",
    ),
]

for _model in (All, Any_, Not):
    _model.model_rebuild()


class SegmentDocument(BaseModel):
    model_config = _NODE

    name: str = Field(min_length=1, max_length=200)
    definition: Definition
    description: str | None = Field(default=None, max_length=2000)
    managed_by: str | None = Field(default=None, pattern=MANAGED_BY)  # crm apply's directory (crm.ascode)

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value

    @model_validator(mode="before")
    @classmethod
    def _within_limits(cls, data: object) -> object:
        # Checked on the raw document, before pydantic descends into it: a hostile nesting is refused cheaply.
        if isinstance(data, Mapping) and "definition" in data:
            check_limits(data["definition"])
        return data


def _children(node: object) -> list[tuple[str, object]]:
    """A group's parts with their path steps; works on parsed nodes and on raw JSON alike."""
    if isinstance(node, All | Any_):
        key = "all" if isinstance(node, All) else "any"
        return [(f"{key}.{index}", part) for index, part in enumerate(getattr(node, key))]
    if isinstance(node, Not):
        return [("not", node.not_)]
    if isinstance(node, Mapping):
        for key in ("all", "any"):
            if key in node:
                parts = node[key]
                return [(f"{key}.{index}", part) for index, part in enumerate(parts)] if isinstance(
                    parts, list | tuple) else []
        if "not" in node:
            return [("not", node["not"])]
    return []


def check_limits(definition: object) -> None:
    """ValueError when a definition nests deeper than MAX_DEPTH or holds more than MAX_CONDITIONS conditions."""
    stack: list[tuple[str, object, int]] = [("definition", definition, 1)]
    conditions = 0
    while stack:
        path, node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{path}: nested deeper than {MAX_DEPTH} levels")
        children = _children(node)
        if not children and not isinstance(node, All | Any_) and not (
                isinstance(node, Mapping) and ("all" in node or "any" in node)):
            conditions += 1
            if conditions > MAX_CONDITIONS:
                raise ValueError(f"definition: more than {MAX_CONDITIONS} conditions")
        stack.extend((f"{path}.{step}", child, depth + 1) for step, child in reversed(children))


def nodes(definition: Definition) -> Iterator[Definition]:
    """Every node of a definition, groups and conditions, parents first."""
    stack: list[Definition] = [definition]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, All):
            stack.extend(reversed(node.all))
        elif isinstance(node, Any_):
            stack.extend(reversed(node.any))
        elif isinstance(node, Not):
            stack.append(node.not_)


def referenced_segments(definition: Definition) -> frozenset[str]:
    """The ids of the segments a definition asks membership of."""
    return frozenset(node.segment for node in nodes(definition) if isinstance(node, MemberOf))


def referenced_fields(definition: Definition) -> frozenset[str]:
    """The profile fields a definition's conditions read."""
    return frozenset(node.field for node in nodes(definition) if isinstance(node, Condition))


def referenced_events(definition: Definition) -> frozenset[str]:
    """The event types a definition's event conditions count or anchor on."""
    return frozenset(event for node in nodes(definition) if isinstance(node, EventCondition)
                     for event in (node.event, *((node.since.event,) if node.since is not None else ())))


def segment_cycle(references: Mapping[str, Iterable[str]]) -> tuple[str, ...] | None:
    """A cycle among segments that refer to each other (``("a", "b", "a")``), or None.

    ``references`` maps each segment id to the ids its definition refers to (referenced_segments); a
    segment that refers to itself is the cycle ``("a", "a")``. Ids no one defines are leaves.
    """
    done: set[str] = set()
    for start in sorted(references):
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, Iterator[str]]] = []
        if start in done:
            continue
        stack.append((start, iter(sorted(references[start]))))
        path.append(start)
        on_path.add(start)
        while stack:
            node, pending = stack[-1]
            step = next(pending, None)
            if step is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif step in on_path:
                return (*path[path.index(step):], step)
            elif step not in done and step in references:
                stack.append((step, iter(sorted(references[step]))))
                path.append(step)
                on_path.add(step)
    return None


def parse_segment(raw: Mapping[str, object] | bytes) -> SegmentDocument:
    """A segment document from a request body or a decoded object; SegmentInvalid naming the first problem."""
    data = _json(raw) if isinstance(raw, bytes | bytearray) else raw
    if not isinstance(data, Mapping):
        raise SegmentInvalid("body must be a JSON object")
    try:
        return SegmentDocument.model_validate(data)
    except ValidationError as error:
        raise SegmentInvalid(describe(error)) from None


# Custom ids a caller chooses; not the literal routes beside /segments/{segment_id}.
CUSTOM_SEGMENT_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_ROUTE_WORDS = frozenset({"settings", "preview"})


def parse_new_segment(raw: bytes) -> tuple[SegmentDocument, str | None]:
    """A POST /segments body: the document and the id the caller chose (``"id"``, optional), else None."""
    data = _json(raw)
    if not isinstance(data, dict):
        raise SegmentInvalid("body must be a JSON object")
    given = data.pop("id", None)
    if given is not None and (not isinstance(given, str) or not re.fullmatch(CUSTOM_SEGMENT_ID, given)
                              or given in _ROUTE_WORDS):
        raise SegmentInvalid("id: must be 1 to 63 lowercase letters, digits, - or _, starting with a letter or digit "
                             f"(and not {' or '.join(sorted(_ROUTE_WORDS))})")
    return parse_segment(data), given


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def _json(raw: bytes | bytearray) -> object:
    try:
        # Numbers with a fraction become Decimal: an amount must never pass through a float.
        return json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except RecursionError:
        raise SegmentInvalid("body is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise SegmentInvalid(f"body is not JSON: {error}") from None


def describe(error: ValidationError) -> str:
    """The first error as "path: message", the path in the document's own keys."""
    first = error.errors(include_url=False)[0]
    path = _document_path(first["loc"])
    if first["type"] == _FIELD_ERROR:
        path.append(str(first.get("ctx", {})["field"]))
    location = ".".join(str(part) for part in path)
    message = first["msg"].removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def _document_path(loc: tuple[int | str, ...]) -> list[int | str]:
    # pydantic puts the union member's tag after every place a definition sits; the document has no such key.
    path: list[int | str] = []
    tag_next = False
    for part in loc:
        if tag_next and part in _TAGS:
            tag_next = False
            continue
        tag_next = part in ("definition", "not") or (isinstance(part, int) and bool(path) and path[-1] in (
            "all", "any"))
        path.append(part)
    return path


__all__ = [
    "EVENT_TYPES",
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "ORDER_PLACED",
    "All",
    "Any_",
    "Condition",
    "Definition",
    "EventCondition",
    "EventOp",
    "MemberOf",
    "MemberOp",
    "Not",
    "SegmentDocument",
    "SegmentInvalid",
    "Since",
    "check_limits",
    "describe",
    "nodes",
    "parse_new_segment",
    "parse_segment",
    "referenced_segments",
    "segment_cycle",
]
