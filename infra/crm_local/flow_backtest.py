"""`crm flows backtest` and `crm flows test`: the flow to try read from a file or named by id, then either the
stack's table read directly (crm.flows.backtests, no time budget) or the marketer API's POST /flows/backtest
(``--api``: the same answer, within the API's budget)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import yaml
from crm.adapters.flow_definitions import DynamoFlowCatalogue, DynamoMessagingStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.segments import DynamoSegmentStore
from crm.adapters.suppressions import DynamoSuppressions
from crm.flows.backtests import BacktestAnswer, backtest_workspace, flow_to_test, parse_request
from crm.flows.scripted import described, load_script, run_script

from crm_local.operations import stack_outputs

API_TIMEOUT_SECONDS = 35  # API Gateway answers within 29 s


def request_body(flow: str, days: int) -> dict[str, Any]:
    """``flow``: a JSON or YAML file holding a definition (as POST /flows takes it), else a flow's id."""
    path = Path(flow)
    if not path.is_file():
        return {"flow_id": flow, "days": days}
    try:
        definition = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{flow}: not JSON or YAML: {error}") from None
    if not isinstance(definition, dict):
        raise ValueError(f"{flow}: a flow definition is a mapping (name, trigger, steps, ...)")
    return {"definition": json.loads(json.dumps(definition, default=str)), "days": days}


def on_stack(stack_name: str, workspace_id: str, body: dict[str, Any], now: datetime) -> BacktestAnswer:
    table = stack_outputs(stack_name)["TableName"]
    request = parse_request(body)
    flow = flow_to_test(DynamoFlowCatalogue(table), workspace_id, request, now)
    return backtest_workspace(flow, request.days, now, timelines=DynamoProfileRepository(table),
                              segments=DynamoSegmentStore(table), messaging=DynamoMessagingStore(table),
                              suppressions=DynamoSuppressions(table))


def through_api(api: str, key: str | None, body: dict[str, Any]) -> dict[str, Any]:
    key = key or os.environ.get("CRM_API_KEY")
    if not key:
        raise ValueError("--api needs the workspace's API key: --key or CRM_API_KEY")
    request = Request(f"{api.rstrip('/')}/flows/backtest", data=json.dumps(body).encode(), method="POST",
                      headers={"content-type": "application/json", "x-api-key": key})
    try:
        with urlopen(request, timeout=API_TIMEOUT_SECONDS) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except HTTPError as error:
        raise ValueError(f"{api}: {error.code}: {error.read().decode(errors='replace')}") from None


def flow_test(path: Path) -> list[str]:
    """The lines `crm flows test` prints; crm.flows.scripted.ScriptInvalid (a ValueError) for a bad file."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror}") from None
    return described(run_script(load_script(text, str(path))))
