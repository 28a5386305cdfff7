"""docs/segments.md says what the code does: every example parses, every field is listed, the errors are real."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from crm.segments.definition import SegmentInvalid, parse_segment
from crm.segments.evaluate import matches
from crm.segments.fields import FIELDS

from tests.builders import NOW, ROOT
from tests.unit.test_segment_evaluate import ADA, CHECKOUT_NO_ORDER_SINCE, VIEWED_3_IN_30

DOC = (ROOT / "docs" / "segments.md").read_text()
JSON_EXAMPLES = re.findall(r"^```json\n(.*?)^```", DOC, re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("example", JSON_EXAMPLES, ids=[f"json-{n}" for n in range(len(JSON_EXAMPLES))])
def test_every_json_example_is_a_valid_segment(example: str) -> None:
    document = parse_segment(example.encode())
    matches(document.definition, ADA, NOW)  # and evaluates


def test_the_issue_sentences_in_the_doc_are_the_tested_ones() -> None:
    definitions = [json.loads(example)["definition"] for example in JSON_EXAMPLES]
    assert VIEWED_3_IN_30 in definitions
    assert CHECKOUT_NO_ORDER_SINCE in definitions


def test_the_fields_table_lists_every_field() -> None:
    table = DOC.split("## Profile fields", 1)[1].split("Values:", 1)[0]
    listed = {name for row in table.splitlines() if row.startswith("| `")
              for name in re.findall(r"`([a-z_.]+)`", row.split("|")[1])}
    assert listed == set(FIELDS)


ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"all": [{"field": "country", "op": "eq", "value": "GB"}, {"field": "orders_count", "op": "gt", "value": "2"}]},
     "definition.all.1.value: orders_count takes a whole number"),
    ({"field": "tags", "op": "eq", "value": "vip"},
     "definition.op: tags does not take eq; it takes contains, contains_any, contains_all, exists, not_exists"),
    ({"any": [{"field": "ltv", "op": "gt", "value": "1"}]},
     "definition.any.0.field: unknown field 'ltv'; the fields are lifetime_value, "),
    ({"event": "order_placed", "op": "none", "since": {"event": "order_placed", "last": True}},
     "definition.since: since names the event being counted: it must be another event"),
    ({"all": [{"event": "product_viewed", "op": "exactly", "count": 50, "within_days": 30}]},
     "definition.all.0.count: exactly takes a count of at most 49 with within_days or since: a profile keeps the "
     "times of each event's latest 50 occurrences"),
    ({"all": [{"field": "country", "op": "eq", "value": "GB"}] * 101}, "definition: more than 100 conditions"),
]


@pytest.mark.parametrize(("definition", "message"), ERRORS)
def test_the_errors_the_doc_shows_are_the_errors_given(definition: dict[str, Any], message: str) -> None:
    with pytest.raises(SegmentInvalid) as caught:
        parse_segment({"name": "s", "definition": definition})
    assert str(caught.value).startswith(message)
    shown = message.removesuffix(", ") + (", ..." if message.endswith(", ") else "")
    assert f"- `{shown}`" in DOC


def test_the_depth_error_the_doc_shows_is_the_error_given() -> None:
    node: dict[str, Any] = {"segment": "s", "op": "member"}
    for _ in range(10):
        node = {"not": node}
    with pytest.raises(SegmentInvalid) as caught:
        parse_segment({"name": "s", "definition": node})
    assert f"- `{caught.value}`" in DOC
