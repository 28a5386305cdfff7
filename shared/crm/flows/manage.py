"""Flows as the marketer API manages them: list, create, read, replace, delete (a built-in: reset), status.

Pure over ports (FlowCatalogue, MessagingStore). A definition is checked by the engine (crm.flows.definition,
through crm.flows.defaults); a refusal names the path at fault ("steps[1].duration: ..."). A stored flow has a
version: every save makes the next one, and a save refuses (409) when the flow changed since it was read, or
when the caller's ``If-Match`` version is not the current one.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from crm.flows.defaults import DefinitionInvalid, builtin_flows, check_definition
from crm.flows.ports import FlowCatalogue, MessagingStore
from crm.models.flows import FLOW_ID, EventTrigger, FlowDefinition, FlowRecord, FlowRun, FlowStatus, SendEmail, SendSms
from crm.ports import ConcurrentUpdate

CUSTOM_FLOW_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_Model = TypeVar("_Model", bound=BaseModel)


class FlowNotFound(LookupError):
    """No such flow in this workspace (another workspace's flow is not found either): 404."""


class FlowConflict(Exception):
    """The request cannot be carried out on the flow as it is (changed meanwhile, live, taken id): 409."""


def new_flow_id() -> str:
    return f"flow_{secrets.token_hex(8)}"


# --- reading a request ------------------------------------------------------------------------------------

def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def json_body(raw: bytes | str | None) -> dict[str, Any]:
    """A JSON object from a request body (numbers with a fraction as Decimal, never float)."""
    try:
        data = json.loads(raw or b"null", parse_float=Decimal, parse_constant=_refuse_constant)
    except RecursionError:
        raise DefinitionInvalid("body: nested too deeply") from None
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DefinitionInvalid(f"body: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise DefinitionInvalid("body: must be a JSON object")
    return data


def describe(error: ValidationError, document: object) -> str:
    """The first error as "path: message", the path in the document's own keys ("steps[1].duration", as the
    engine's checks name it): pydantic puts a discriminated
    union's tag into the location right after the union's field (trigger.event.event), and that is left out."""
    first = error.errors(include_url=False)[0]
    path: list[str] = []
    node: object = document
    fresh = True  # node was just entered: the next part may be its tag
    for part in first["loc"]:
        if fresh and isinstance(node, Mapping) and part in (node.get("kind"), node.get("channel")):
            fresh = False
            continue
        path.append(f"[{part}]" if isinstance(part, int) else f".{part}")
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        fresh = True
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{''.join(path).lstrip('.') or 'body'}: {message}"


def parse_model(model: type[_Model], document: dict[str, Any]) -> _Model:
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise DefinitionInvalid(describe(error, document)) from None


def parse_definition(document: dict[str, Any]) -> FlowDefinition:
    return check_definition(parse_model(FlowDefinition, document))


class StatusChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    status: FlowStatus


def expected_version(if_match: str | None) -> int | None:
    """The version an ``If-Match`` header names ("3" or the ETag form "\\"3\\""); None without one."""
    if if_match is None:
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 9:
        raise DefinitionInvalid(f"If-Match: {if_match!r} is not a flow version (a whole number, as GET answers)")
    return int(text)


# --- views ------------------------------------------------------------------------------------------------

def trigger_summary(definition: FlowDefinition) -> str:
    trigger = definition.trigger
    if isinstance(trigger, EventTrigger):
        return trigger.event + (f" where {len(trigger.where)} condition(s)" if trigger.where else "")
    return f"segment {trigger.segment_id} {trigger.on}"


def _is_builtin(flow_id: str) -> bool:
    return flow_id.startswith("builtin:")


def flow_summary(record: FlowRecord) -> dict[str, Any]:
    return {"id": record.flow_id, "name": record.definition.name, "status": record.status.value,
            "version": record.version, "builtin": _is_builtin(record.flow_id), "saved": record.version > 0,
            "trigger": trigger_summary(record.definition), "updated_at": record.updated_at.isoformat()}


def flow_view(record: FlowRecord) -> dict[str, Any]:
    return {**flow_summary(record), "created_at": record.created_at.isoformat(),
            "definition": record.definition.model_dump(mode="json", exclude_none=True)}


def run_view(run: FlowRun) -> dict[str, Any]:
    return {"run_id": run.run_id, "flow_id": run.flow_id, "flow_version": run.flow_version,
            "profile_id": run.profile_id, "trigger_type": run.trigger_type, "status": run.status.value,
            "entered_at": run.entered_at.isoformat(), "exit_reason": run.exit_reason,
            "ended_at": run.ended_at.isoformat() if run.ended_at else None, "next_step": run.next_step,
            "wake_at": run.wake_at.isoformat() if run.wake_at else None, "waiting_for": run.waiting_for,
            "steps": [step.model_dump(mode="json") for step in run.steps]}


# --- operations -------------------------------------------------------------------------------------------

def get(catalogue: FlowCatalogue, workspace_id: str, flow_id: str) -> FlowRecord:
    record = catalogue.get_flow(workspace_id, flow_id) if re.fullmatch(FLOW_ID, flow_id) else None
    if record is None:
        raise FlowNotFound(f"no flow {flow_id}")
    return record


def create(catalogue: FlowCatalogue, workspace_id: str, document: dict[str, Any], now: datetime) -> FlowRecord:
    """A new draft flow; its id is ``document["id"]`` when given (lowercase letters, digits, - and _), else
    minted. The id of a flow that exists is a conflict."""
    given = document.pop("id", None)
    if given is not None and (not isinstance(given, str) or not re.fullmatch(CUSTOM_FLOW_ID, given)):
        raise DefinitionInvalid("id: must be 1 to 63 lowercase letters, digits, - or _, starting with a letter or "
                                "digit (builtin: ids are the built-in flows')")
    definition = parse_definition(document)
    flow_id = given or new_flow_id()
    record = FlowRecord(workspace_id=workspace_id, flow_id=flow_id, definition=definition, created_at=now,
                        updated_at=now)
    try:
        catalogue.put_flow(record, None)
    except ConcurrentUpdate:
        raise FlowConflict(f"id: a flow {flow_id} exists already") from None
    return record


def _save(catalogue: FlowCatalogue, current: FlowRecord, update: dict[str, Any], held: int | None) -> FlowRecord:
    if held is not None and held != current.version:
        raise FlowConflict(f"flow {current.flow_id} is at version {current.version}, not {held}: read it again")
    record = current.model_copy(update={**update, "version": current.version + 1})
    try:
        catalogue.put_flow(record, current.version)
    except ConcurrentUpdate:
        raise FlowConflict(f"flow {current.flow_id} was changed meanwhile: read it again") from None
    return record


def replace(catalogue: FlowCatalogue, workspace_id: str, flow_id: str, document: dict[str, Any], now: datetime,
            held: int | None = None) -> FlowRecord:
    """The flow's new definition (a built-in's too: the workspace's copy replaces the default). A live flow
    stays live: runs already started keep the version they started with."""
    current = get(catalogue, workspace_id, flow_id)
    definition = parse_definition(document)
    return _save(catalogue, current, {"definition": definition, "updated_at": now}, held)


def delete(catalogue: FlowCatalogue, workspace_id: str, flow_id: str, held: int | None = None) -> None:
    """A custom flow is deleted; a built-in goes back to its default definition, as a draft. A live flow is
    refused (409): set it to draft first, so that no run starts from a flow that is going away."""
    current = get(catalogue, workspace_id, flow_id)
    if held is not None and held != current.version:
        raise FlowConflict(f"flow {flow_id} is at version {current.version}, not {held}: read it again")
    if current.status is FlowStatus.LIVE:
        raise FlowConflict(f"flow {flow_id} is live: set its status to draft before deleting it")
    catalogue.delete_flow(workspace_id, flow_id)


def templates_used(definition: FlowDefinition) -> Iterator[tuple[str, str]]:
    def walk(steps: tuple[Any, ...]) -> Iterator[tuple[str, str]]:
        for step in steps:
            if isinstance(step, SendEmail | SendSms):
                yield step.kind, step.template_id
            for branch in getattr(step, "paths", ()):
                yield from walk(branch.steps)
    return walk(definition.steps)


def readiness_problems(messaging: MessagingStore, workspace_id: str, definition: FlowDefinition) -> list[str]:
    """Why the flow cannot go live yet: a template it sends missing or of the wrong channel, no sender set."""
    problems: list[str] = []
    channels: set[str] = set()
    for channel, template_id in templates_used(definition):
        channels.add(channel)
        found = messaging.get_template(workspace_id, template_id)
        if found is None:
            problems.append(f"template {template_id} does not exist")
        elif found.template.channel != channel:
            problems.append(f"template {template_id} is an {found.template.channel} template, not {channel}")
    sender = messaging.messaging_settings(workspace_id)
    if "email" in channels and sender.from_address is None:
        problems.append("no from address: PUT /settings/messaging first")
    return problems


def set_status(catalogue: FlowCatalogue, messaging: MessagingStore, workspace_id: str, flow_id: str,
               document: dict[str, Any], now: datetime, held: int | None = None) -> FlowRecord:
    change = parse_model(StatusChange, document)
    current = get(catalogue, workspace_id, flow_id)
    if change.status is FlowStatus.LIVE:
        problems = readiness_problems(messaging, workspace_id, current.definition)
        if problems:
            raise FlowConflict(f"flow {flow_id} cannot go live: {'; '.join(problems)}")
    if current.status is change.status and held is None:
        return current
    return _save(catalogue, current, {"status": change.status, "updated_at": now}, held)


def builtin_ids() -> list[str]:
    return sorted(builtin_flows())
