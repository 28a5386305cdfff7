"""docs/flows.md says what the code does: every example parses, the errors are real, the order is the engine's."""

from __future__ import annotations

import re
from typing import Any

import pytest
from crm.flows.builtin import BUILTIN_FLOWS
from crm.flows.definition import FlowInvalid, parse_flow, template_ids
from crm.flows.engine import CHECK_ORDER

from tests.builders import ROOT

DOC = (ROOT / "docs" / "flows.md").read_text()
JSON_EXAMPLES = re.findall(r"^```json\n(.*?)^```", DOC, re.MULTILINE | re.DOTALL)
ERROR_LINES = re.findall(r"^```text\n(.*?)^```", DOC.split("## Errors", 1)[1], re.MULTILINE | re.DOTALL)[0].splitlines()


@pytest.mark.parametrize("example", JSON_EXAMPLES, ids=[f"json-{n}" for n in range(len(JSON_EXAMPLES))])
def test_every_json_example_is_a_valid_flow(example: str) -> None:
    parse_flow(example.encode())


def test_the_first_example_is_the_builtin_abandoned_checkout() -> None:
    example = parse_flow(JSON_EXAMPLES[0].encode())
    builtin = BUILTIN_FLOWS["builtin:abandoned_checkout"]
    assert (example.trigger, example.exits, example.reentry, example.steps) == (
        builtin.trigger, builtin.exits, builtin.reentry, builtin.steps)


def test_the_builtin_table_lists_every_builtin_flow_and_its_templates() -> None:
    table = DOC.split("## Built-in flows", 1)[1].split("## Errors", 1)[0]
    rows = {re.findall(r"`(builtin:[a-z_]+)`", row)[0]: row for row in table.splitlines() if row.startswith("| `")}
    assert set(rows) == set(BUILTIN_FLOWS)
    for flow_id, row in rows.items():
        assert template_ids(BUILTIN_FLOWS[flow_id]) <= set(re.findall(r"`(builtin:[a-z_0-9]+)`", row))


def test_the_check_order_is_the_engines() -> None:
    section = DOC.split("## Before every step, before every send", 1)[1].split("## Time zones", 1)[0]
    named = [reason for reason in re.findall(r"`([a-z_]+)`", section) if reason in {r.value for r in CHECK_ORDER}]
    assert named == [reason.value for reason in CHECK_ORDER]


def _flow(**parts: Any) -> dict[str, Any]:
    return {"name": "x", "trigger": {"kind": "event", "event": "CheckoutStarted"},
            "steps": [{"kind": "tag", "id": "t", "tag": "x"}], **parts}


TAG = {"kind": "tag", "id": "email_1", "tag": "x"}
DOC_ERRORS: list[dict[str, Any]] = [
    _flow(steps=[{"kind": "tag", "id": "a", "tag": "x"}, TAG, TAG]),
    _flow(steps=[{"kind": "delay", "id": "d", "duration": "PT1H", "until_time": "09:00"}]),
    _flow(steps=[{"kind": "delay", "id": "d", "duration": "P366D"}]),
    _flow(steps=[TAG, {"kind": "split", "id": "s", "paths": [{"when": {"field": "ltv", "op": "gt", "value": 1}}]}]),
    _flow(steps=[TAG, {"kind": "split", "id": "s", "paths": [{}, {"when": {"field": "country", "op": "eq",
                                                                           "value": "GB"}}]}]),
    _flow(steps=[TAG, {"kind": "random", "id": "s", "paths": [{"weight": 0}, {"weight": 0}]}]),
    _flow(profile_filter={"all": [{"field": "country", "op": "eq", "value": "GB"},
                                  {"field": "orders_count", "op": "gt", "value": "2"}]}),
    _flow(reentry={"mode": "once_per"}),
    _flow(trigger={"kind": "event", "event": "CheckoutStarted", "where": [{"property": "total", "op": "gt",
                                                                           "value": 1}]}),
    _flow(trigger={"kind": "event", "event": "CheckoutStarted", "where": [
        {"property": "checkout_id", "op": "eq", "value": {"trigger": "checkout_id"}}]}),
    _flow(exits=[{"event": "OrderPlaced", "where": [{"property": "order_id", "op": "in", "value": []}]}]),
    _flow(steps=[TAG, {"kind": "tag", "id": "b", "tag": "x"}, {"kind": "exit", "id": "stop"},
                 {"kind": "tag", "id": "c", "tag": "x"}]),
]


def test_the_doc_shows_every_listed_error_and_each_is_the_error_given() -> None:
    assert len(ERROR_LINES) == len(DOC_ERRORS)
    for line, document in zip(ERROR_LINES, DOC_ERRORS, strict=True):
        with pytest.raises(FlowInvalid) as caught:
            parse_flow(document)
        shown = line.removesuffix("...")
        assert str(caught.value).startswith(shown), (line, str(caught.value))
