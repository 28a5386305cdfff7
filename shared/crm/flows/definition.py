"""Flow definitions beyond their shape: the checks pydantic alone cannot make, with errors that name the path.

crm.models.flows gives a definition its shape; ``parse_flow`` adds what a marketer can still get wrong: a
step id used twice anywhere in the tree, a profile filter or a split condition that is not the segment
language (crm.segments.definition), a re-entry ``once_per`` without days, a delay that is not exactly one
kind or waits too long, an "otherwise" path that is not the last, random weights that are all zero, a filter
on a property the event does not have. Every problem is a FlowInvalid "path: problem", the path in the
document's own keys (``steps[2].paths[0].when.field``), which the API answers with a 400. docs/flows.md
describes the language.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from crm.models import events
from crm.models.flows import (
    MAX_WAIT,
    ConditionalSplit,
    DateAnchor,
    Delay,
    EventTrigger,
    ExitStep,
    FilterOp,
    FlowDefinition,
    FlowRun,
    PropertyFilter,
    RandomSplit,
    SegmentTrigger,
    SendEmail,
    SendSms,
    SplitPath,
    Step,
    StepOutcome,
    WaitForEvent,
    WeightedPath,
)
from crm.models.profile import Profile
from crm.segments.definition import Definition, SegmentInvalid, parse_segment

MAX_STEPS = 200
MAX_NESTING = 10  # splits within splits
# The moments a delay may be anchored on: the profile's datetimes (``profile.<name>``).
PROFILE_MOMENTS: tuple[str, ...] = (
    "first_order_at", "last_order_at", "last_seen_at", "created_at", "last_browse.at", "last_cart.at",
    "last_checkout.at",
)
# The bus events a trigger, an exit or a wait may name, by detail-type.
EVENT_MODELS: dict[str, type[events.DomainEvent]] = {
    "CheckoutStarted": events.CheckoutStarted, "ProductViewed": events.ProductViewed,
    "OrderPlaced": events.OrderPlaced, "OrderFulfilled": events.OrderFulfilled,
    "ContactCreated": events.ContactCreated, "ConsentChanged": events.ConsentChanged,
    "SegmentEntered": events.SegmentEntered, "SegmentExited": events.SegmentExited,
}
_STEP_TAGS = frozenset({"delay", "wait_for", "email", "sms", "tag", "exit", "split", "random"})
_TRIGGER_TAGS = frozenset({"event", "segment"})


class FlowInvalid(ValueError):
    """A flow definition that cannot be used; the message is "path: problem" (an API answers 400)."""


# --- parsing -------------------------------------------------------------------------------------------


def parse_flow(raw: Mapping[str, object] | bytes) -> FlowDefinition:
    """A checked definition from a request body or a decoded object; FlowInvalid naming the first problem.

    Example: ``parse_flow(b'{"name": "x", "trigger": {"kind": "event", "event": "OrderPlaced"},
    "steps": [{"kind": "email", "id": "thanks", "template_id": "t"}]}')``.
    """
    data = _json(raw) if isinstance(raw, bytes | bytearray) else raw
    if not isinstance(data, Mapping):
        raise FlowInvalid("body must be a JSON object")
    try:
        definition = FlowDefinition.model_validate(data)
    except ValidationError as error:
        raise FlowInvalid(describe(error)) from None
    except RecursionError:
        raise FlowInvalid("body is nested too deeply") from None
    return validate_flow(definition)


def validate_flow(definition: FlowDefinition) -> FlowDefinition:
    """The checks beyond the shape, on a definition already built (a built-in, a stored one); returns it or
    raises FlowInvalid."""
    _check_trigger(definition)
    if definition.profile_filter is not None:
        segment_filter(definition.profile_filter, "profile_filter")
    _check_exits(definition)
    _check_reentry(definition)
    _check_steps(definition)
    return definition


def segment_filter(document: Mapping[str, Any], path: str = "when") -> Definition:
    """A segment-language definition (a profile filter, a split's ``when``), parsed; FlowInvalid with the
    problem's path under ``path`` (``profile_filter.all[1].value: ...``)."""
    try:
        return parse_segment({"name": "flow filter", "definition": document}).definition
    except SegmentInvalid as error:
        location, _, problem = str(error).partition(": ")
        if not problem:  # a message without a location
            raise FlowInvalid(f"{path}: {location}") from None
        inner = location.removeprefix("definition").lstrip(".")
        raise FlowInvalid(f"{_join(path, _bracketed(inner.split('.')) if inner else '')}: {problem}") from None


def _json(raw: bytes | bytearray) -> object:
    try:
        return json.loads(raw, parse_float=Decimal)
    except RecursionError:
        raise FlowInvalid("body is nested too deeply") from None
    except ValueError as error:
        raise FlowInvalid(f"body is not JSON: {error}") from None


def describe(error: ValidationError) -> str:
    """The first error as "path: message", the path in the document's keys (``steps[1].duration``)."""
    first = error.errors(include_url=False)[0]
    location = _bracketed(_document_path(first["loc"]))
    message = first["msg"].removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def _document_path(loc: Sequence[int | str]) -> list[int | str]:
    # pydantic puts the union member's tag (the step's kind) after every place a step or trigger sits.
    path: list[int | str] = []
    for index, part in enumerate(loc):
        previous = loc[index - 1] if index else None
        if isinstance(part, str) and ((part in _STEP_TAGS and isinstance(previous, int))
                                      or (part in _TRIGGER_TAGS and previous == "trigger" and index == 1)):
            continue
        path.append(part)
    return path


def _bracketed(parts: Sequence[int | str]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _join(path: str, inner: str) -> str:
    if not inner:
        return path
    return f"{path}{inner}" if inner.startswith("[") else f"{path}.{inner}"


# --- the step tree -------------------------------------------------------------------------------------


def walk_steps(steps: Sequence[Step], path: str = "steps") -> Iterator[tuple[str, Step]]:
    """Every step of the tree with its path (``steps[2].paths[0].steps[1]``), parents first, in order."""
    for index, step in enumerate(steps):
        here = f"{path}[{index}]"
        yield here, step
        if isinstance(step, ConditionalSplit | RandomSplit):
            for number, branch in enumerate(branches_of(step)):
                yield from walk_steps(branch.steps, f"{here}.paths[{number}].steps")


def find_step(definition: FlowDefinition, step_id: str) -> Step | None:
    return next((step for _, step in walk_steps(definition.steps) if step.id == step_id), None)


def template_ids(definition: FlowDefinition) -> frozenset[str]:
    """The templates a definition sends (the API may check that each exists)."""
    return frozenset(step.template_id for _, step in walk_steps(definition.steps)
                     if isinstance(step, SendEmail | SendSms))


def branches_of(split: ConditionalSplit | RandomSplit) -> Sequence[SplitPath | WeightedPath]:
    return split.paths


# --- A/B variants ----------------------------------------------------------------------------------------


def variant_name(split_id: str, path: int) -> str:
    """An A/B variant's name in stats and message records: ``"<random split id>:<path number>"``."""
    return f"{split_id}:{path}"


def parse_variant(variant: str) -> tuple[str, int] | None:
    """``(split id, path number)`` of a variant name; None for anything else (ALL_STEPS' ``"-"``)."""
    split_id, _, path = variant.rpartition(":")
    return (split_id, int(path)) if split_id and path.isdigit() else None


def enclosing_random_splits(steps: Sequence[Step], step_id: str) -> tuple[tuple[RandomSplit, int], ...] | None:
    """The random splits the step is in, outermost first, each with the path number holding it; None when
    no such step (a step directly under ``steps`` is in none: ``()``)."""
    for step in steps:
        if step.id == step_id:
            return ()
        if isinstance(step, ConditionalSplit | RandomSplit):
            for number, branch in enumerate(branches_of(step)):
                inner = enclosing_random_splits(branch.steps, step_id)
                if inner is not None:
                    return ((step, number), *inner) if isinstance(step, RandomSplit) else inner
    return None


def variant_of(definition: FlowDefinition, step_id: str, run: FlowRun) -> str | None:
    """The A/B variant a run is on at ``step_id``: the innermost random split the step is in and the path
    the run took there (its SPLIT record), as ``variant_name`` puts it; None outside any random split (a
    split's own step is not inside itself) or when the run has no record of taking that split."""
    enclosing = enclosing_random_splits(definition.steps, step_id)
    if not enclosing:
        return None
    split, _ = enclosing[-1]
    taken = next((record.path for record in reversed(run.steps)
                  if record.step_id == split.id and record.outcome is StepOutcome.SPLIT
                  and record.path is not None), None)
    return None if taken is None else variant_name(split.id, taken)


def _check_steps(definition: FlowDefinition) -> None:
    seen: dict[str, str] = {}
    for count, (path, step) in enumerate(walk_steps(definition.steps), start=1):
        if count > MAX_STEPS:
            raise FlowInvalid(f"steps: more than {MAX_STEPS} steps")
        if path.count(".paths[") > MAX_NESTING:
            raise FlowInvalid(f"{path}: splits nested deeper than {MAX_NESTING} levels")
        if step.id in seen:
            raise FlowInvalid(f"{path}.id: step id {step.id!r} is used twice (also at {seen[step.id]}.id)")
        seen[step.id] = path
        _check_step(path, step, definition)
    _check_unreachable(definition.steps, "steps")


def _check_step(path: str, step: Step, definition: FlowDefinition) -> None:
    if isinstance(step, Delay):
        _check_delay(path, step, definition)
    elif isinstance(step, WaitForEvent):
        _check_wait_for(path, step)
    elif isinstance(step, ConditionalSplit):
        _check_conditional(path, step)
    elif isinstance(step, RandomSplit) and sum(branch.weight for branch in step.paths) <= 0:
        raise FlowInvalid(f"{path}.paths: the weights add up to 0; at least one path needs a weight above 0")


def _check_unreachable(steps: Sequence[Step], path: str) -> None:
    for index, step in enumerate(steps[:-1]):
        if isinstance(step, ExitStep):
            raise FlowInvalid(f"{path}[{index + 1}]: never reached: the exit step before it ends the run")
    for index, step in enumerate(steps):
        if isinstance(step, ConditionalSplit | RandomSplit):
            for number, branch in enumerate(branches_of(step)):
                _check_unreachable(branch.steps, f"{path}[{index}].paths[{number}].steps")


def _check_delay(path: str, delay: Delay, definition: FlowDefinition) -> None:
    given = [name for name in ("duration", "until_time", "until") if getattr(delay, name) is not None]
    if len(given) != 1:
        raise FlowInvalid(f"{path}: a delay takes exactly one of duration, until_time or until; "
                          f"{'none' if not given else ', '.join(given)} given")
    if delay.duration is not None:
        _check_wait_length(f"{path}.duration", delay.duration)
    if delay.until is not None:
        _check_anchor(f"{path}.until", delay.until, definition)


def _check_wait_length(path: str, length: timedelta) -> None:
    if length <= timedelta(0):
        raise FlowInvalid(f"{path}: must be longer than 0")
    if length > MAX_WAIT:
        raise FlowInvalid(f"{path}: a flow waits at most {MAX_WAIT.days} days")


def _check_anchor(path: str, anchor: DateAnchor, definition: FlowDefinition) -> None:
    if abs(anchor.offset) > MAX_WAIT:
        raise FlowInvalid(f"{path}.offset: at most {MAX_WAIT.days} days either way")
    source, _, name = anchor.property.partition(".")
    if source == "profile":
        if name not in PROFILE_MOMENTS:
            raise FlowInvalid(f"{path}.property: the profile's moments are "
                              f"{', '.join('profile.' + moment for moment in PROFILE_MOMENTS)}")
        return
    model = _trigger_model(definition)
    problem = property_problem(model, name, moment=True)
    if problem:
        raise FlowInvalid(f"{path}.property: {problem}")


def _check_wait_for(path: str, step: WaitForEvent) -> None:
    _check_wait_length(f"{path}.timeout", step.timeout)
    _check_filters(f"{path}.where", step.where, EVENT_MODELS[step.event], references=True)


def _check_conditional(path: str, split: ConditionalSplit) -> None:
    last = len(split.paths) - 1
    for number, branch in enumerate(split.paths):
        if branch.when is None and number != last:
            raise FlowInvalid(f"{path}.paths[{number}].when: only the last path may be \"otherwise\" (no when)")
        if branch.when is not None:
            segment_filter(branch.when, f"{path}.paths[{number}].when")


# --- trigger, exits, re-entry --------------------------------------------------------------------------


def _trigger_model(definition: FlowDefinition) -> type[events.DomainEvent]:
    trigger = definition.trigger
    if isinstance(trigger, SegmentTrigger):
        return events.SegmentEntered if trigger.on == "entered" else events.SegmentExited
    return EVENT_MODELS[trigger.event]


def _check_trigger(definition: FlowDefinition) -> None:
    if isinstance(definition.trigger, EventTrigger):
        _check_filters("trigger.where", definition.trigger.where, EVENT_MODELS[definition.trigger.event],
                       references=False)


def _check_exits(definition: FlowDefinition) -> None:
    for index, exit_event in enumerate(definition.exits):
        _check_filters(f"exits[{index}].where", exit_event.where, EVENT_MODELS[exit_event.event], references=True)


def _check_reentry(definition: FlowDefinition) -> None:
    reentry = definition.reentry
    if reentry.mode == "once_per" and reentry.days is None:
        raise FlowInvalid("reentry.days: once_per needs days (once per how many days)")
    if reentry.mode != "once_per" and reentry.days is not None:
        raise FlowInvalid(f"reentry.days: only once_per takes days, not {reentry.mode}")


def trigger_reference(value: object) -> str | None:
    """The path of a ``{"trigger": "<path>"}`` value (the same property on the run's trigger), else None."""
    if isinstance(value, Mapping) and set(value) == {"trigger"} and isinstance(value["trigger"], str):
        return value["trigger"]
    return None


def _check_filters(path: str, filters: Sequence[PropertyFilter], model: type[BaseModel], *,
                   references: bool) -> None:
    for index, condition in enumerate(filters):
        here = f"{path}[{index}]"
        problem = property_problem(model, condition.property)
        if problem:
            raise FlowInvalid(f"{here}.property: {problem}")
        _check_filter_value(here, condition, references)


def _check_filter_value(path: str, condition: PropertyFilter, references: bool) -> None:
    value, op = condition.value, condition.op
    reference = trigger_reference(value)
    if reference is not None and not references:
        raise FlowInvalid(f"{path}.value: a trigger's own filter cannot refer to the trigger")
    if op in (FilterOp.EXISTS, FilterOp.NOT_EXISTS):
        if value is not None:
            raise FlowInvalid(f"{path}.value: {op} takes no value")
    elif op is FilterOp.IN:
        if not isinstance(value, list | tuple) or not value:
            raise FlowInvalid(f"{path}.value: in takes a non-empty list")
    elif value is None:
        raise FlowInvalid(f"{path}.value: {op} takes a value")
    elif isinstance(value, Mapping) and reference is None:
        raise FlowInvalid(f"{path}.value: an object value must be {{\"trigger\": \"<path>\"}}")


# --- property paths ------------------------------------------------------------------------------------


def property_problem(model: type[BaseModel], dotted: str, *, moment: bool = False) -> str | None:
    """Why ``dotted`` (``items.0.sku``) is not a property of the event ``model``, or None when it is (and,
    with ``moment``, a datetime)."""
    annotation: Any = model
    for position, part in enumerate(dotted.split(".")):
        annotation = _unwrap(annotation)
        if _is_sequence(annotation):
            if not part.isdigit():
                return f"{'.'.join(dotted.split('.')[:position]) or dotted} is a list: name an index, e.g. .0"
            annotation = typing.get_args(annotation)[0]
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if part not in annotation.model_fields:
                return (f"{model.__name__} has no property {dotted!r}; "
                        f"its properties are {', '.join(annotation.model_fields)}")
            annotation = annotation.model_fields[part].annotation
            continue
        if annotation is Any or typing.get_origin(annotation) in (dict, Mapping):
            return None  # free-form below here
        return f"{model.__name__}: {'.'.join(dotted.split('.')[:position])} has no parts"
    if moment and _unwrap(annotation) is not datetime:
        return f"{model.__name__}.{dotted} is not a moment"
    return None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` as ``X``."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return members[0] if len(members) == 1 else Any
    return annotation


def _is_sequence(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (tuple, list) and bool(typing.get_args(annotation))


def profile_moment(profile: Profile, name: str) -> datetime | None:
    """A profile moment PROFILE_MOMENTS names (``last_checkout.at``), or None when the profile has none."""
    value: object = profile
    for part in name.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value if isinstance(value, datetime) else None


def detail_value(detail: Mapping[str, Any], dotted: str) -> object:
    """The value at ``dotted`` in an event's detail (``items.0.sku``), or None when it is not there."""
    value: object = detail
    for part in dotted.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list | tuple) and re.fullmatch(r"\d+", part) and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


__all__ = [
    "EVENT_MODELS",
    "MAX_NESTING",
    "MAX_STEPS",
    "PROFILE_MOMENTS",
    "FlowInvalid",
    "branches_of",
    "describe",
    "detail_value",
    "find_step",
    "parse_flow",
    "profile_moment",
    "property_problem",
    "segment_filter",
    "template_ids",
    "trigger_reference",
    "validate_flow",
    "walk_steps",
]
