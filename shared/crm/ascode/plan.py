"""What `crm apply` would do: the directory's definitions against the workspace's, as create, change, delete and
unchanged (pure).

Two definitions are the same when the API's models read them the same (defaults written out or not, 4 or 4.0,
key order: none of it is a change). A flow's ``status`` is compared only when its file states one.

Deleting: a directory deletes only what it manages. With ``managed_by: LABEL`` in its crm.yaml, every
definition it creates or changes carries that label (the models' ``managed_by`` field), and a definition of the
workspace that carries the label but has no file any more is deleted (a built-in flow or template goes back to
its default). Without a label nothing is ever deleted, and labels already on definitions are kept as they are.
Definitions made in the API or by another directory (another label, or none) are never deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from crm.ascode.layout import BUILTIN_PREFIX, Desired, Directory, Kind
from crm.flows.manage import templates_used
from crm.models.flows import FlowDefinition, FlowStatus, SegmentTrigger
from crm.models.messaging import EmailTemplate, SmsTemplate
from crm.segments.definition import SegmentDocument, referenced_segments


class Action(StrEnum):
    CREATE = "create"
    CHANGE = "change"
    DELETE = "delete"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Held:
    """A definition as the workspace holds it (read back through the API)."""

    kind: Kind
    id: str
    model: SegmentDocument | FlowDefinition | EmailTemplate | SmsTemplate
    status: FlowStatus | None = None  # flows only
    saved: bool = True  # False: a built-in the workspace never changed


@dataclass(frozen=True)
class Step:
    """One thing to do. ``body`` is the request body to send (create, change); ``status`` the flow status to set
    afterwards, when it changes; ``changes`` names what differs, for the printed plan."""

    action: Action
    kind: Kind
    id: str
    file: str | None = None
    changes: tuple[str, ...] = ()
    body: dict[str, Any] | None = None
    status: FlowStatus | None = None
    live_now: bool = False  # a flow to delete that is live: set to draft first


@dataclass(frozen=True)
class Plan:
    managed_by: str | None
    steps: tuple[Step, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return all(step.action is Action.UNCHANGED for step in self.steps)

    def count(self, action: Action) -> int:
        return sum(1 for step in self.steps if step.action is action)


class PlanRefused(ValueError):
    """The directory names what the workspace cannot have (an unknown built-in, a missing reference)."""


def comparable(model: SegmentDocument | FlowDefinition | EmailTemplate | SmsTemplate) -> dict[str, Any]:
    return model.model_dump(mode="python", by_alias=True, exclude_none=True, exclude={"managed_by"})


def _differences(desired: dict[str, Any], held: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(key for key in desired.keys() | held.keys() if desired.get(key) != held.get(key)))


def make_plan(directory: Directory, workspace: Iterable[Held], builtin_segments: Iterable[str] = ()) -> Plan:
    """The steps, in the order they can be carried out: templates, segments (a referenced segment before its
    referrers), flows (definitions, then status); then deletions of flows, templates, segments (referrers
    first). ``builtin_segments``: the ids of the built-in segments (they have no definition to hold)."""
    held = {(h.kind, h.id): h for h in workspace}
    label = directory.managed_by
    _check_references(directory, held.keys() | {(Kind.SEGMENT, s) for s in builtin_segments})
    steps: list[Step] = []
    for kind in (Kind.TEMPLATE, Kind.SEGMENT, Kind.FLOW):
        wanted = directory.of(kind)
        if kind is Kind.SEGMENT:
            wanted = _referenced_first(wanted)
        steps.extend(_step(desired, held.get((kind, desired.id)), label) for desired in wanted)
    if label is not None:
        named = {(d.kind, d.id) for d in directory.definitions}
        for kind in (Kind.FLOW, Kind.TEMPLATE, Kind.SEGMENT):
            gone = [h for (k, _), h in sorted(held.items()) if k is kind and (k, h.id) not in named
                    and h.model.managed_by == label]
            if kind is Kind.SEGMENT:
                gone = list(reversed(_referenced_first(gone)))
            steps.extend(Step(Action.DELETE, kind, h.id, live_now=h.status is FlowStatus.LIVE,
                              changes=("back to its default",) if h.id.startswith(BUILTIN_PREFIX) else ())
                         for h in gone)
    return Plan(label, tuple(steps))


def _step(desired: Desired, held: Held | None, label: str | None) -> Step:
    marker = label if label is not None else (held.model.managed_by if held else None)
    body = {**desired.document, **({"managed_by": marker} if marker else {})}
    if held is None:
        if desired.id.startswith(BUILTIN_PREFIX):
            raise PlanRefused(f"{desired.file}: the workspace has no built-in {desired.kind.value} {desired.id}")
        return Step(Action.CREATE, desired.kind, desired.id, desired.file, body=body,
                    status=desired.status if desired.status is FlowStatus.LIVE else None)
    changes = list(_differences(comparable(desired.model), comparable(held.model)))
    if held.model.managed_by != marker:
        changes.append(f"managed_by: {held.model.managed_by} -> {marker}")
    status = desired.status if desired.status is not None and desired.status is not held.status else None
    if status is not None:
        changes.append(f"status: {held.status} -> {status}")
    if not changes:
        return Step(Action.UNCHANGED, desired.kind, desired.id, desired.file)
    definition_changed = any(not change.startswith("status:") for change in changes)
    return Step(Action.CHANGE, desired.kind, desired.id, desired.file, tuple(changes),
                body=body if definition_changed else None, status=status)


def _referenced_first(segments: list[Any]) -> list[Any]:
    """Segments ordered so that one a segment refers to comes before it (among those given)."""
    by_id = {s.id: s for s in segments}
    done: list[Any] = []
    seen: set[str] = set()

    def visit(segment_id: str, trail: frozenset[str]) -> None:
        if segment_id in seen or segment_id in trail:
            return  # a cycle is the API's to refuse (409), naming it
        model = by_id[segment_id].model
        for ref in sorted(referenced_segments(model.definition)):
            if ref in by_id:
                visit(ref, trail | {segment_id})
        seen.add(segment_id)
        done.append(by_id[segment_id])

    for segment_id in sorted(by_id):
        visit(segment_id, frozenset())
    return done


def _check_references(directory: Directory, workspace: AbstractSet[tuple[Kind, str]]) -> None:
    """A segment or a template that a file refers to exists in the directory or in the workspace: else the plan
    is refused before anything is applied (the API would refuse the flow or segment halfway)."""
    known = workspace | {(d.kind, d.id) for d in directory.definitions}
    problems: list[str] = []
    for desired in directory.definitions:
        wanted: list[tuple[Kind, str]] = []
        if isinstance(desired.model, SegmentDocument):
            wanted = [(Kind.SEGMENT, ref) for ref in sorted(referenced_segments(desired.model.definition))]
        elif isinstance(desired.model, FlowDefinition):
            wanted = [(Kind.TEMPLATE, template_id) for _, template_id in templates_used(desired.model)]
            if isinstance(desired.model.trigger, SegmentTrigger):
                wanted.append((Kind.SEGMENT, desired.model.trigger.segment_id))
        problems.extend(f"{desired.file}: refers to {kind.value} {ref}, which is neither in the directory nor in "
                        "the workspace" for kind, ref in wanted if (kind, ref) not in known)
    if problems:
        raise PlanRefused("\n".join(dict.fromkeys(problems)))


def describe_plan(plan: Plan) -> list[str]:
    """The plan as lines a person reads: one per create, change and delete, then the totals."""
    signs = {Action.CREATE: "+", Action.CHANGE: "~", Action.DELETE: "-"}
    lines = []
    for step in plan.steps:
        if step.action is Action.UNCHANGED:
            continue
        what = f"{signs[step.action]} {step.action.value:<7} {step.kind.value:<8} {step.id}"
        if step.changes:
            what += f" ({', '.join(step.changes)})"
        if step.file:
            what += f"  [{step.file}]"
        lines.append(what)
    totals = ", ".join(f"{plan.count(action)} to {action.value}" if action is not Action.UNCHANGED
                       else f"{plan.count(action)} unchanged" for action in Action)
    lines.append(f"plan: {totals}" + ("" if plan.managed_by else " (no managed_by in crm.yaml: nothing is deleted)"))
    return lines
