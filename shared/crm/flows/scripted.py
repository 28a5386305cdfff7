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
An invalid file is a ``ScriptInvalid`` naming the file and the field.
"""

from __future__ import annotations

import json
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


def _refusal(name: str, error: ValidationError, prefix: str = "") -> ScriptInvalid:
    first = error.errors()[0]
    where = _path((*((prefix,) if prefix else ()), *first["loc"]))
    return ScriptInvalid(f"{name}: {where}: {first['msg']}")


def load_script(text: str, name: str) -> FlowScript:
    """The file's content parsed (YAML, of which JSON is a part) and validated."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ScriptInvalid(f"{name}: not YAML or JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ScriptInvalid(f"{name}: expected a mapping with flow, profile and events")
    try:
        script = FlowScript.model_validate(json.loads(json.dumps(raw, default=str)))
    except ValidationError as error:
        raise _refusal(name, error) from None
    if isinstance(script.flow, str) and script.flow not in BUILTIN_FLOWS:
        raise ScriptInvalid(f"{name}: flow: {script.flow!r} is not a built-in flow ({', '.join(BUILTIN_FLOWS)}) "
                            "nor a definition")
    try:
        validate_flow(_definition(script))
    except FlowInvalid as error:
        raise ScriptInvalid(f"{name}: flow: {error}") from None
    return script


def _definition(script: FlowScript) -> FlowDefinition:
    return BUILTIN_FLOWS[script.flow] if isinstance(script.flow, str) else script.flow


def _profile(script: FlowScript, name: str, since: datetime) -> Profile:
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
        raise _refusal(name, error, "profile") from None


def _events(script: FlowScript, name: str) -> list[FlowEvent]:
    events = []
    for index, scripted in enumerate(script.events):
        detail = {"event_id": f"event-{index}", "store_id": "store", **scripted.event, "workspace_id": WORKSPACE,
                  "profile_id": PROFILE, "occurred_at": scripted.at.isoformat()}
        kind = _EVENTS.get(detail["type"])
        if kind is None:
            raise ScriptInvalid(f"{name}: events[{index}].event.type: {detail['type']!r} is not a bus event "
                                f"({', '.join(sorted(_EVENTS))})")
        try:
            event = kind.model_validate(detail)
        except ValidationError as error:
            raise _refusal(name, error, f"events[{index}].event") from None
        events.append(FlowEvent.of(detail["type"], event.model_dump(mode="json")))
    return events


def run_script(script: FlowScript, name: str) -> BacktestReport:
    """What the flow would do over the scripted events (nothing sent)."""
    first = min(e.at for e in script.events)
    last = max(e.at for e in script.events)
    end = script.until or last + RUN_ON
    if end <= last:
        raise ScriptInvalid(f"{name}: until: {end.isoformat()} is not after the last event ({last.isoformat()})")
    start = first - timedelta(seconds=1)
    history = scripted_history(_profile(script, name, start), _events(script, name))
    flow = FlowRecord(workspace_id=WORKSPACE, flow_id=script.flow if isinstance(script.flow, str) else FLOW_ID,
                      status=FlowStatus.LIVE, version=1, definition=_definition(script), created_at=start,
                      updated_at=start)
    backtest = Backtest(flow, start, end, messaging=messaging_of(WORKSPACE, script.settings), keep=100_000)
    return backtest.play(history)


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


__all__ = ["FlowScript", "ScriptInvalid", "described", "load_script", "run_script"]
