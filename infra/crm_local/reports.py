"""`crm report NAME`: a report read from the stack's table (or asked of the marketer API), printed as JSON,
and its Vega-Lite chart drawn to PNG or SVG with vl-convert (here, never in the Lambda layer)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.error import HTTPError
from urllib.parse import quote, urlencode
from urllib.request import Request, urlopen

from crm.adapters.currency import DynamoCurrencyStore
from crm.adapters.flow_definitions import DynamoFlowCatalogue
from crm.adapters.flow_stats import DynamoFlowCounters
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.report_source import DynamoReportSource
from crm.adapters.segments import DynamoSegmentStore
from crm.reports.query import build, report_view

from crm_local.operations import stack_outputs

API_TIMEOUT_SECONDS = 35  # API Gateway answers within 29 s
# Pixels per Vega-Lite pixel in a PNG: sharp on a high-density screen and in a slide.
PNG_SCALE = 2


def source_for(table: str) -> DynamoReportSource:
    return DynamoReportSource(profiles=DynamoProfileRepository(table), segments=DynamoSegmentStore(table),
                              catalogue=DynamoFlowCatalogue(table), counters=DynamoFlowCounters(table),
                              currency=DynamoCurrencyStore(table))


def on_stack(stack_name: str, workspace_id: str, name: str, query: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """The report and its chart, read from the stack's table as the API reads it."""
    table = stack_outputs(stack_name)["TableName"]
    return report_view(build(source_for(table), workspace_id, name, query, now))


def through_api(api: str, key: str | None, name: str, query: Mapping[str, str]) -> dict[str, Any]:
    key = key or os.environ.get("CRM_API_KEY")
    if not key:
        raise ValueError("--api needs the workspace's API key: --key or CRM_API_KEY")
    url = f"{api.rstrip('/')}/reports/{quote(name, safe='')}"
    if query:
        url += "?" + urlencode(query)
    try:
        with urlopen(Request(url, headers={"x-api-key": key}), timeout=API_TIMEOUT_SECONDS) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except HTTPError as error:
        raise ValueError(f"{api}: {error.code}: {error.read().decode(errors='replace')}") from None


def render(chart: Mapping[str, Any], path: Path, kind: Literal["png", "svg"]) -> int:
    """Draw the Vega-Lite spec to ``path`` as PNG or SVG; the bytes written."""
    import vl_convert

    data = (vl_convert.vegalite_to_png(vl_spec=dict(chart), scale=PNG_SCALE) if kind == "png"
            else vl_convert.vegalite_to_svg(vl_spec=dict(chart)).encode())
    path.write_bytes(data)
    return len(data)


__all__ = ["on_stack", "render", "source_for", "through_api"]
