"""``crm flows test FILE``: a flow run against a scripted timeline, so a store can test its flows in CI.

The file (YAML or JSON), validated by the same models as the API::

    flow: builtin:abandoned_checkout     # a built-in's id, or a definition inline (as PUT /flows/{id} takes it)
    profile:                             # the shopper before the first event (fields of a profile)
      email: ann@example.com
      consents: {email: subscribed}      # a state per channel, or a full consent statement
    settings: {quiet_hours: ...}         # optional: the workspace's messaging settings
    until: 2026-03-20T00:00:00Z          # optional: when to stop (default: 30 days after the last event)
    events:
      - at: 2026-03-01T12:00:00Z
        event: {type: CheckoutStarted, checkout_id: c1, store_id: shop}
      - at: 2026-03-01T20:00:00Z
        event: {type: OrderPlaced, order_id: o1, store_id: shop, currency: USD, total_price: "40.00",
                net_total: "40.00"}

Each event is a bus event of that ``type`` (crm.models.events; the envelope, ``event_id``, ``workspace_id``,
``profile_id`` and ``occurred_at``, is filled in), and the profile is carried forward by each event
(crm.flows.history.profile_after). The run is a backtest (crm.flows.simulate: the real service and engine,
nothing sent); built-in templates are used, and a template the workspace would have written is not known here.
An invalid file is a ``ScriptInvalid`` naming the file, the line and the field ("FILE:7: events[1].event.order_id:
Field required").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crm.clock import UtcDateTime
from crm.flows.builtin import BUILTIN_FLOWS
from crm.flows.definition import FlowInvalid, validate_flow
from crm.flows.engine import FlowEvent
from crm.flows.history import scripted_history
from crm.flows.simulate import Backtest, BacktestReport, messaging_of
from crm.models.events import AnyDomainEvent
from crm.models.flows import FlowDefinition, FlowRecord, FlowStatus
from crm.models.messaging import MessagingSettings
from crm.models.profile import Profile

WORKSPACE = "flow-test"
PROFILE = "shopper"
FLOW_ID = "flow-under-test"
RUN_ON = timedelta(days=30)
# By type: a discriminated read names the missing field of the event the file means, not of every kind
_EVENTS: dict[str, type[BaseModel]] = {kind.model_fields["type"].default: kind for kind in get_args(AnyDomainEvent)}


class ScriptInvalid(ValueError):
    """The file cannot be run: the message names the file and the field at fault."""


class ScriptedEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: UtcDateTime
    event: dict[str, Any]

    @field_validator("event")
    @classmethod
    def _typed(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("type"), str):
            raise ValueError("an event names its type (CheckoutStarted, OrderPlaced, ...)")
        return value


class FlowScript(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow: str | FlowDefinition
    profile: dict[str, Any] = Field(default_factory=dict)
    settings: MessagingSettings = Field(default_factory=MessagingSettings)
    until: UtcDateTime | None = None
    events: list[ScriptedEvent] = Field(min_length=1)


def _path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


@dataclass(frozen=True)
class _Source:
    """The file's name and YAML nodes: a refusal names the file, the line and the field."""

    name: str
    root: yaml.Node | None

    def line_of(self, location: Sequence[int | str]) -> int | None:
        """The line of the deepest node the location reaches (a missing field: the mapping that lacks it)."""
        node = self.root
        if node is None:
            return None
        for part in location:
            found: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                found = next((value for key, value in node.value if getattr(key, "value", None) == part), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                found = node.value[part]
            if found is None:
                break
            node = found
        return node.start_mark.line + 1

    def refusal(self, location: Sequence[int | str], message: str) -> ScriptInvalid:
        line = self.line_of(location)
        return ScriptInvalid(f"{self.name}:{line}: {_path(tuple(location))}: {message}" if line is not None
                             else f"{self.name}: {_path(tuple(location))}: {message}")

    def invalid(self, error: ValidationError, prefix: Sequence[int | str] = ()) -> ScriptInvalid:
        first = error.errors(include_url=False)[0]
        return self.refusal((*prefix, *first["loc"]), str(first["msg"]).removeprefix("Value error, "))


@dataclass(frozen=True)
class LoadedScript:
    """A file validated to its last event: ready to run."""

    script: FlowScript
    profile: Profile
    events: list[FlowEvent]
    start: datetime
    end: datetime


def load_script(text: str, name: str) -> LoadedScript:
    """The file's content parsed (YAML, of which JSON is a part) and validated, the profile and each event by
    their own models; a ScriptInvalid ("FILE:LINE: path: what") at the first problem."""
    try:
        raw, root = yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise ScriptInvalid(f"{name}: not YAML or JSON: {error}") from None
    source = _Source(name, root)
    if not isinstance(raw, dict):
        raise ScriptInvalid(f"{name}: expected a mapping with flow, profile and events")
    try:
        script = FlowScript.model_validate(json.loads(json.dumps(raw, default=str)))
    except ValidationError as error:
        raise source.invalid(error) from None
    if isinstance(script.flow, str) and script.flow not in BUILTIN_FLOWS:
        raise source.refusal(("flow",), f"{script.flow!r} is not a built-in flow ({', '.join(BUILTIN_FLOWS)}) "
                                        "nor a definition")
    try:
        validate_flow(_definition(script))
    except FlowInvalid as error:
        raise source.refusal(("flow",), str(error)) from None
    first, last = min(e.at for e in script.events), max(e.at for e in script.events)
    end = script.until or last + RUN_ON
    if end <= last:
        raise source.refusal(("until",), f"{end.isoformat()} is not after the last event ({last.isoformat()})")
    start = first - timedelta(seconds=1)
    return LoadedScript(script, _profile(script, source, start), _events(script, source), start, end)


def _definition(script: FlowScript) -> FlowDefinition:
    return BUILTIN_FLOWS[script.flow] if isinstance(script.flow, str) else script.flow


def _profile(script: FlowScript, source: _Source, since: datetime) -> Profile:
    fields = dict(script.profile)
    consents = fields.get("consents") or {}
    if isinstance(consents, dict):
        fields["consents"] = {
            channel: {"channel": channel, "state": stated, "source": "flow-test", "at": since.isoformat()}
            if isinstance(stated, str) else stated for channel, stated in consents.items()}
    fields |= {"workspace_id": WORKSPACE, "profile_id": PROFILE, "created_at": fields.get("created_at") or since,
               "updated_at": fields.get("updated_at") or since}
    try:
        return Profile.model_validate(fields)
    except ValidationError as error:
        raise source.invalid(error, ("profile",)) from None


def _events(script: FlowScript, source: _Source) -> list[FlowEvent]:
    events = []
    for index, scripted in enumerate(script.events):
        detail = {"event_id": f"event-{index}", "store_id": "store", **scripted.event, "workspace_id": WORKSPACE,
                  "profile_id": PROFILE, "occurred_at": scripted.at.isoformat()}
        kind = _EVENTS.get(detail["type"])
        if kind is None:
            raise source.refusal(("events", index, "event", "type"),
                                 f"{detail['type']!r} is not a bus event ({', '.join(sorted(_EVENTS))})")
        try:
            event = kind.model_validate(detail)
        except ValidationError as error:
            raise source.invalid(error, ("events", index, "event")) from None
        events.append(FlowEvent.of(detail["type"], event.model_dump(mode="json")))
    return events


def run_script(loaded: LoadedScript) -> BacktestReport:
    """What the flow would do over the scripted events (nothing sent)."""
    script = loaded.script
    flow = FlowRecord(workspace_id=WORKSPACE, flow_id=script.flow if isinstance(script.flow, str) else FLOW_ID,
                      status=FlowStatus.LIVE, version=1, definition=_definition(script), created_at=loaded.start,
                      updated_at=loaded.start)
    backtest = Backtest(flow, loaded.start, loaded.end, messaging=messaging_of(WORKSPACE, script.settings),
                        keep=100_000)
    return backtest.play(scripted_history(loaded.profile, loaded.events))


def described(report: BacktestReport) -> list[str]:
    """The report as lines a person reads: every send and skip in time order, then how the runs ended."""
    lines = [(send.at, f"send {send.channel} {send.step_id} ({send.template_id}) to {send.to}")
             for send in report.sends]
    lines += [(skip.at, f"skip {skip.step_id}: {skip.reason}") for skip in report.skips]
    out = [f"{at.isoformat()}  {what}" for at, what in sorted(lines, key=lambda line: line[0])]
    ended = {**{f"exited {reason}": n for reason, n in report.exited.items()}, "completed": report.completed,
             "in progress": report.in_progress}
    out.append(f"entered {report.entered}; " + "; ".join(f"{what} {n}" for what, n in ended.items() if n))
    for order in report.followed_orders:
        out.append(f"{order.at.isoformat()}  order {order.order_id} {order.total} {order.currency} followed "
                   f"{order.step_id} (sent {order.message_sent_at.isoformat()})")
    return out


__all__ = ["FlowScript", "LoadedScript", "ScriptInvalid", "described", "load_script", "run_script"]
