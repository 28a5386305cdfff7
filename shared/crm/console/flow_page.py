"""A flow's console page (docs/console.md): its steps as a diagram with each step's counts (crm.flows.stats), the
editor of its delays and messages, whose edits are saved through crm.flows.manage as the API's PUT /flows/{id}.

Plain functions over the flow's definition and its stats report: no AWS here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from crm.flows.definition import branches_of, walk_steps
from crm.models.flow_stats import Counts
from crm.models.flows import (
    ConditionalSplit,
    Delay,
    ExitStep,
    FlowDefinition,
    RandomSplit,
    SendEmail,
    SendSms,
    Step,
    TagProfile,
    WaitForEvent,
)
from crm.models.messaging import TemplateRecord

# A delay is typed as an amount of one of these units (the API's ISO 8601 duration is what is saved).
UNITS: dict[str, timedelta] = {"minutes": timedelta(minutes=1), "hours": timedelta(hours=1),
                               "days": timedelta(days=1)}
# Only keeps the arithmetic small: the definition's own check (crm.flows.definition, MAX_WAIT) says how long a
# flow may wait, as it does for the API.
MOST_DELAY_AMOUNT = 10_000_000


@dataclass(frozen=True)
class DiagramPath:
    label: str
    steps: tuple[DiagramStep, ...]


@dataclass(frozen=True)
class DiagramStep:
    """One box of the diagram: what the step does, in words, and what it did over the report's days."""

    step_id: str
    kind: str
    title: str
    detail: str | None
    counts: Counts
    paths: tuple[DiagramPath, ...] = ()
    delay: timedelta | None = None  # a fixed wait, which the editor changes
    template_id: str | None = None  # a message's template, which the editor changes


def duration_words(duration: timedelta) -> str:
    """``timedelta(days=1, hours=2)`` as "1 day 2 hours"; nothing as "no wait"."""
    seconds = int(duration.total_seconds())
    parts = []
    for name, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount} {name}{'s' if amount != 1 else ''}")
    return " ".join(parts) or "no wait"


def delay_amount(duration: timedelta) -> tuple[int, str]:
    """The editor's amount and unit for a duration: the largest unit that divides it."""
    for unit in ("days", "hours", "minutes"):
        amount, rest = divmod(duration, UNITS[unit])
        if not rest:
            return int(amount), unit
    return int(duration // UNITS["minutes"]), "minutes"


def _title(step: Step, template_names: Mapping[str, str]) -> tuple[str, str | None]:
    if isinstance(step, Delay):
        if step.duration is not None:
            return f"Wait {duration_words(step.duration)}", None
        if step.until_time is not None:
            return f"Wait until {step.until_time}", "in the shopper's time zone"
        assert step.until is not None
        offset = f" {'+' if step.until.offset >= timedelta(0) else '-'} {duration_words(abs(step.until.offset))}" \
            if step.until.offset else ""
        return f"Wait until {step.until.property}{offset}", None
    if isinstance(step, SendEmail | SendSms):
        channel = "Email" if isinstance(step, SendEmail) else "SMS"
        name = template_names.get(step.template_id, step.template_id)
        return f"{channel}: {name}", None if step.smart_sending else "sent whatever Smart Sending says"
    if isinstance(step, WaitForEvent):
        return (f"Wait for {step.event}", f"at most {duration_words(step.timeout)}, then "
                                          f"{'continue' if step.on_timeout == 'continue' else 'exit'}")
    if isinstance(step, TagProfile):
        return f"Tag “{step.tag}”", None
    if isinstance(step, ExitStep):
        return "Exit", None
    if isinstance(step, ConditionalSplit):
        return "Split by condition", None
    assert isinstance(step, RandomSplit)
    return "A/B split", None if step.winner is None else f"a winner picked on {step.winner.metric}"


def _path_label(split: ConditionalSplit | RandomSplit, number: int) -> str:
    if isinstance(split, RandomSplit):
        return f"Path {chr(ord('A') + number)} · {split.paths[number].weight} %"
    when = split.paths[number].when
    return f"Path {number + 1}: matches its condition" if when else f"Path {number + 1}: everyone else"


def diagram(definition: FlowDefinition, counts: Mapping[str, Counts],
            template_names: Mapping[str, str]) -> tuple[DiagramStep, ...]:
    """The flow's steps in order, each with its counts (zero for a step that has none yet); a split's paths
    side by side, each with its own steps."""

    def boxes(steps: Sequence[Step]) -> tuple[DiagramStep, ...]:
        drawn = []
        for step in steps:
            title, detail = _title(step, template_names)
            paths: tuple[DiagramPath, ...] = ()
            if isinstance(step, ConditionalSplit | RandomSplit):
                paths = tuple(DiagramPath(_path_label(step, n), boxes(branch.steps))
                              for n, branch in enumerate(branches_of(step)))
            drawn.append(DiagramStep(
                step.id, step.kind, title, detail, counts.get(step.id, Counts()), paths,
                delay=step.duration if isinstance(step, Delay) else None,
                template_id=step.template_id if isinstance(step, SendEmail | SendSms) else None))
        return tuple(drawn)
    return boxes(definition.steps)


def email_steps(definition: FlowDefinition, template_names: Mapping[str, str]) -> list[tuple[str, str]]:
    """(step id, "step id: template name") of each email the flow sends, for the test send's choice."""
    return [(step.id, f"{step.id}: {template_names.get(step.template_id, step.template_id)}")
            for _, step in walk_steps(definition.steps) if isinstance(step, SendEmail)]


def templates_by_channel(records: Sequence[TemplateRecord]) -> dict[str, list[tuple[str, str]]]:
    """(id, name) of each email and SMS template, for the editor's choice of a message."""
    chosen: dict[str, list[tuple[str, str]]] = {"email": [], "sms": []}
    for record in records:
        chosen[record.template.channel].append((record.template_id, record.template.name))
    return chosen


# --- the editor --------------------------------------------------------------------------------------------

class DelayEdit(BaseModel):
    """A delay as the editor's form gives it: a whole amount of minutes, hours or days."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: int = Field(ge=0, le=MOST_DELAY_AMOUNT)
    unit: Literal["minutes", "hours", "days"]

    @property
    def duration(self) -> timedelta:
        return self.amount * UNITS[self.unit]


class EditRefused(ValueError):
    """The editor's form is wrong: ``problems`` maps a step id to what is wrong with its field."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{step}: {problem}" for step, problem in problems.items()))
        self.problems = dict(problems)


def _delay_edit(form: Mapping[str, str], step_id: str) -> DelayEdit:
    try:
        return DelayEdit.model_validate({"amount": form.get(f"wait.{step_id}", "").strip(),
                                         "unit": form.get(f"wait.{step_id}.unit", "")})
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        field = "the amount" if first["loc"][0] == "amount" else "the unit"
        raise EditRefused({step_id: f"{field}: {first['msg']}"}) from None


def edited_definition(definition: FlowDefinition, form: Mapping[str, str]) -> dict[str, Any]:
    """The definition as the document PUT /flows/{id} takes, with the form's delays (``wait.<step>`` and
    ``wait.<step>.unit``) and templates (``template.<step>``) in place of the flow's. A field the form does not
    carry leaves its step as it is; EditRefused names the step of a field that is not a delay."""
    document = definition.model_dump(mode="json", exclude_none=True)
    problems: dict[str, str] = {}

    def edit(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            step_id = step["id"]
            if step["kind"] == "delay" and "duration" in step and f"wait.{step_id}" in form:
                try:
                    step["duration"] = _iso_duration(_delay_edit(form, step_id).duration)
                except EditRefused as refused:
                    problems.update(refused.problems)
            if step["kind"] in ("email", "sms") and form.get(f"template.{step_id}"):
                step["template_id"] = form[f"template.{step_id}"]
            for path in step.get("paths", ()):
                edit(path.get("steps", []))
    edit(document["steps"])
    if problems:
        raise EditRefused(problems)
    return document


def _iso_duration(duration: timedelta) -> str:
    return str(_DURATION.dump_python(duration, mode="json"))


_DURATION = TypeAdapter(timedelta)


_STEP_PATH = re.compile(r"^steps\[(\d+)\]((?:\.paths\[\d+\]\.steps\[\d+\])*)")


def step_of_problem(document: Mapping[str, Any], message: str) -> str | None:
    """The id of the step a definition's refusal names ("steps[1].paths[0].steps[2].duration: ..."), so that
    the page shows it beside that step's field; None when it names no step."""
    found = _STEP_PATH.match(message)
    if found is None:
        return None
    try:
        step = document["steps"][int(found.group(1))]
        for path, index in re.findall(r"\.paths\[(\d+)\]\.steps\[(\d+)\]", found.group(2)):
            step = step["paths"][int(path)]["steps"][int(index)]
        return str(step["id"])
    except (IndexError, KeyError, TypeError):
        return None
