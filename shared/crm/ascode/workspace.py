"""A workspace's definitions through the marketer HTTP API: read them, carry out a plan, export them to files.

Only the API is used (never the table), so the same commands work against AWS and the local runtime, with the
same checks and the same API key scoping as a marketer's own calls. The API is reached through
``MarketerHttp`` (crm_local.ascode sends real HTTP; the tests hand it the API function in-process).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import yaml

from crm.ascode.layout import DOCUMENT_SUFFIXES, SETTINGS_FILE, Kind, file_stem
from crm.ascode.plan import Action, Held, Plan, Step
from crm.ascode.source import reads_as_text
from crm.models.flows import FlowDefinition, FlowStatus
from crm.models.messaging import EmailTemplate, SmsTemplate
from crm.segments.definition import parse_segment


class MarketerHttp(Protocol):
    def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """The answer's status and its JSON body (None when empty)."""


class ApiRefused(RuntimeError):
    """The API answered a request with an error: what was asked, the status and the API's message."""


_VIEW_ONLY = {"id", "builtin", "saved", "updated_at", "created_at", "version", "size", "last_computed_at",
              "growth", "run", "status", "trigger"}


def _route(kind: Kind, definition_id: str | None = None) -> str:
    return f"/{kind.folder}" + (f"/{quote(definition_id, safe=':')}" if definition_id else "")


def _ask(http: MarketerHttp, method: str, path: str, body: dict[str, Any] | None = None,
         expect: Iterable[int] = (200,)) -> Any:
    status, answer = http.send(method, path, body)
    if status not in tuple(expect):
        message = answer.get("Message", answer) if isinstance(answer, dict) else answer
        raise ApiRefused(f"{method} {path}: {status} {message}")
    return answer


@dataclass(frozen=True)
class Workspace:
    """What the API answered: each definition held, its view (for export), and the built-in segments' ids."""

    held: tuple[Held, ...]
    views: dict[tuple[Kind, str], dict[str, Any]]
    builtin_segments: tuple[str, ...]


def read_workspace(http: MarketerHttp) -> Workspace:
    held: list[Held] = []
    views: dict[tuple[Kind, str], dict[str, Any]] = {}
    listed = _ask(http, "GET", "/segments")["segments"]
    for summary in listed:
        if summary["builtin"]:
            continue
        view = _ask(http, "GET", _route(Kind.SEGMENT, summary["id"]))
        document = {"name": view["name"], "description": view.get("description"),
                    "definition": view["definition"], "managed_by": view.get("managed_by")}
        held.append(Held(Kind.SEGMENT, summary["id"], parse_segment({k: v for k, v in document.items()
                                                                        if v is not None})))
        views[(Kind.SEGMENT, summary["id"])] = {k: v for k, v in document.items() if v is not None}
    for summary in _ask(http, "GET", "/templates")["templates"]:
        view = _ask(http, "GET", _route(Kind.TEMPLATE, summary["id"]))
        document = {k: v for k, v in view.items() if k not in _VIEW_ONLY and v is not None}
        # The model only: a template saved long ago is compared as it is, even if today's checks would refuse it.
        model = (SmsTemplate.model_validate(document) if document.get("channel") == "sms"
                 else EmailTemplate.model_validate(document))
        held.append(Held(Kind.TEMPLATE, summary["id"], model, saved=summary["saved"]))
        views[(Kind.TEMPLATE, summary["id"])] = document
    for summary in _ask(http, "GET", "/flows")["flows"]:
        view = _ask(http, "GET", _route(Kind.FLOW, summary["id"]))
        status = FlowStatus(view["status"])
        held.append(Held(Kind.FLOW, summary["id"], FlowDefinition.model_validate(view["definition"]), status,
                         saved=summary["saved"]))
        views[(Kind.FLOW, summary["id"])] = {**view["definition"], "status": status.value}
    return Workspace(tuple(held), views, tuple(s["id"] for s in listed if s["builtin"]))


def apply_plan(http: MarketerHttp, plan: Plan, progress: Callable[[Step], None] = lambda step: None) -> int:
    """Every step carried out in order; the number of requests that changed something. The first refusal
    stops it (ApiRefused naming the file): what was done stays done, and applying again carries on."""
    requests = 0
    for step in plan.steps:
        if step.action is Action.UNCHANGED:
            continue
        try:
            requests += _carry_out(http, step)
        except ApiRefused as refused:
            raise ApiRefused(f"{step.file or f'{step.kind.value} {step.id}'}: {refused}") from None
        progress(step)
    return requests


def _carry_out(http: MarketerHttp, step: Step) -> int:
    route = _route(step.kind, step.id)
    if step.action is Action.DELETE:
        if step.live_now:
            _ask(http, "PUT", f"{route}/status", {"status": FlowStatus.DRAFT.value})
        _ask(http, "DELETE", route, expect=(204,))
        return 2 if step.live_now else 1
    requests = 0
    if step.body is not None:
        if step.action is Action.CREATE:
            _ask(http, "POST", _route(step.kind), {"id": step.id, **step.body}, expect=(201,))
        else:
            _ask(http, "PUT", route, step.body)
        requests += 1
    if step.status is not None:
        _ask(http, "PUT", f"{route}/status", {"status": step.status.value})
        requests += 1
    return requests


# --- export ----------------------------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """Decimals as numbers, text of several lines as a literal block."""


def _decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:float", str(value))


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # The reader takes YAML 1.2's core schema, the dumper 1.1's: text such as "08" is plain to one, a number to
    # the other, so it is quoted.
    style = "|" if "\n" in value else None if reads_as_text(value) else "'"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(Decimal, _decimal)
_Dumper.add_representer(str, _text)


def to_yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def exported(workspace: Workspace, managed_by: str | None) -> dict[str, str]:
    """The files of the workspace's definitions (relative path -> text): its own segments, flows and
    templates and the built-ins it saved; with ``managed_by``, only those that carry that label (and a
    crm.yaml naming it)."""
    files: dict[str, str] = {}
    if managed_by is not None:
        files[SETTINGS_FILE] = to_yaml({"managed_by": managed_by})
    for held in workspace.held:
        if not held.saved or (managed_by is not None and held.model.managed_by != managed_by):
            continue
        document = {k: v for k, v in workspace.views[(held.kind, held.id)].items() if k != "managed_by"}
        stem = f"{held.kind.folder}/{file_stem(held.id)}"
        if held.kind is Kind.TEMPLATE and document.get("channel") == "email":
            files[f"{stem}.html"] = document.pop("html")
            if "text" in document:
                files[f"{stem}.txt"] = document.pop("text")
        files[f"{stem}.yaml"] = to_yaml(document)
    return files


def write_files(root: Path, files: dict[str, str]) -> list[str]:
    """The files written under ``root``; definition files already there that the export does not hold are
    removed (an export mirrors the workspace; keep the directory under version control). Answers the removed."""
    removed: list[str] = []
    for kind in Kind:
        folder = root / kind.folder
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                relative = path.relative_to(root).as_posix()
                if path.is_file() and path.suffix in (*DOCUMENT_SUFFIXES, ".html", ".txt") and relative not in files:
                    path.unlink()
                    removed.append(relative)
    if SETTINGS_FILE not in files and (root / SETTINGS_FILE).exists():
        (root / SETTINGS_FILE).unlink()
        removed.append(SETTINGS_FILE)
    for relative, text in sorted(files.items()):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return removed


def json_text(document: Any) -> bytes:
    """A request body as JSON, a Decimal written as the number it is (never through a lossy float)."""
    return json.dumps(_plain(document), ensure_ascii=False).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        if Decimal(repr(as_float)) != value:
            raise ValueError(f"{value} has more digits than a JSON number carries exactly here")
        return as_float
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
