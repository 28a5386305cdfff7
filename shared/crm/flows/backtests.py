"""POST /flows/backtest and ``crm flows backtest``: a flow (a saved one by id, or a definition, draft or not)
backtested over a workspace's last days (crm.flows.history.workspace_history, crm.flows.simulate.Backtest).

Within an API's time limit: the history is read and replayed under one wall-clock budget (``budget_seconds``;
the API gives 20 s of API Gateway's 29): profiles are read through the workspace index one after another until
the budget is three quarters spent, then the events of the profiles read are replayed in the rest. A workspace
too big for the budget answers for the profiles read (``profiles_read``, ``complete`` false), never a timeout;
``crm flows backtest`` runs without a budget by default.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from crm.flows.history import Timelines, WorkspaceSegments, workspace_history
from crm.flows.manage import describe, get, parse_definition
from crm.flows.ports import FlowCatalogue, MessagingStore, Suppressions
from crm.flows.simulate import Backtest, BacktestReport, messaging_of, period
from crm.models.flows import FlowRecord, FlowStatus

API_BUDGET_SECONDS = 20.0
DRAFT_ID = "draft"


class BacktestRequest(BaseModel):
    """The body: ``flow_id`` (a saved or built-in flow) or ``definition`` (as POST /flows takes it), and
    ``days`` back from now (1 to 90, default 30)."""

    model_config = ConfigDict(extra="forbid")

    flow_id: str | None = None
    definition: dict[str, Any] | None = None
    days: int = Field(default=30, ge=1, le=90)

    @model_validator(mode="after")
    def _one_flow(self) -> BacktestRequest:
        if (self.flow_id is None) == (self.definition is None):
            raise ValueError("name the flow to backtest: flow_id or definition (one of them)")
        return self


class BacktestAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    report: BacktestReport
    profiles_read: int
    # every profile of the workspace read and every event replayed
    complete: bool
    mode: Literal["budget", "unbounded"]


def parse_request(document: dict[str, Any]) -> BacktestRequest:
    try:
        return BacktestRequest.model_validate(document)
    except ValidationError as error:
        raise ValueError(describe(error, document)) from None


def flow_to_test(catalogue: FlowCatalogue, workspace_id: str, request: BacktestRequest, now: datetime) -> FlowRecord:
    """The saved flow (crm.flows.manage.FlowNotFound if none), or the definition checked as POST /flows does."""
    if request.flow_id is not None:
        return get(catalogue, workspace_id, request.flow_id)
    assert request.definition is not None
    return FlowRecord(workspace_id=workspace_id, flow_id=DRAFT_ID, status=FlowStatus.DRAFT, version=1,
                      definition=parse_definition(request.definition), created_at=now, updated_at=now)


def backtest_workspace(flow: FlowRecord, days: int, now: datetime, *, timelines: Timelines,
                       segments: WorkspaceSegments, messaging: MessagingStore, suppressions: Suppressions,
                       budget_seconds: float | None = None) -> BacktestAnswer:
    """The flow over the workspace's ``days`` before ``now`` (this module's docstring for the budget)."""
    start, end = period(now, days)
    began = time.monotonic()

    def spent(share: float) -> bool:
        return budget_seconds is not None and time.monotonic() - began >= budget_seconds * share

    ws = flow.workspace_id
    history, read, all_read = workspace_history(timelines, segments, ws, flow.definition, start, end,
                                                out_of_time=lambda: spent(0.75))
    store = messaging_of(ws, messaging.messaging_settings(ws), messaging.list_templates(ws))
    backtest = Backtest(flow, start, end, messaging=store, suppressions=suppressions)
    report = backtest.play(history, out_of_time=lambda: spent(1.0))
    return BacktestAnswer(report=report, profiles_read=read, complete=all_read and not report.truncated,
                          mode="unbounded" if budget_seconds is None else "budget")


__all__ = ["API_BUDGET_SECONDS", "BacktestAnswer", "BacktestRequest", "backtest_workspace", "flow_to_test",
           "parse_request"]
