"""The segment builder's form <-> the segment DSL (crm.console.builder): no AWS, no browser."""

from __future__ import annotations

import json

import pytest
from crm.console import builder
from crm.console.builder import Node, form_fields, from_form, load, parsed, to_definition, to_json, to_tree
from crm.segments.definition import Definition, SegmentInvalid
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.segment_strategies import definitions


@settings(max_examples=300, deadline=None)  # timings vary on a shared machine; the property does not
@given(definitions)
def test_every_definition_the_form_shows_is_written_back_unchanged_through_its_posted_fields(
        definition: Definition) -> None:
    posted = form_fields(to_tree(definition))
    assert parsed(to_definition(from_form(posted))) == definition


@settings(max_examples=100, deadline=None)  # timings vary on a shared machine; the property does not
@given(definitions)
def test_json_typed_in_loads_into_the_form_and_the_form_writes_the_same_definition(definition: Definition) -> None:
    typed = to_json(to_tree(definition))
    tree = load(typed)
    assert tree is not None
    assert parsed(json.loads(to_json(tree))) == definition


def test_the_form_names_each_input_by_its_node_path() -> None:
    tree = load(json.dumps({"any": [{"field": "country", "op": "in", "value": ["GB", "IE"]},
                                    {"not": {"event": "product_viewed", "op": "at_least", "count": 2,
                                             "within_days": 14}}]}))
    assert tree is not None
    assert form_fields(tree) == {
        "n-kind": "any",
        "n-0-kind": "condition", "n-0-field": "country", "n-0-op": "in", "n-0-value": "GB, IE",
        "n-1-kind": "not",
        "n-1-0-kind": "event", "n-1-0-event": "product_viewed", "n-1-0-op": "at_least", "n-1-0-count": "2",
        "n-1-0-within_days": "14", "n-1-0-since": "",
    }


def test_values_are_written_in_the_json_shape_their_field_and_operator_take() -> None:
    def written(**inputs: str) -> object:
        return to_definition(Node("condition", dict(inputs))).get("value")

    assert written(field="orders_count", op="gte", value="2") == 2
    assert written(field="lifetime_value", op="gt", value=" 49.90 ") == "49.90"  # a decimal string, never a float
    assert written(field="last_order_at", op="after", value="30", unit="days_ago") == {"days_ago": 30}
    assert written(field="last_order_at", op="before", value="2026-01-31T00:00:00+00:00", unit="at") == \
        "2026-01-31T00:00:00+00:00"
    assert written(field="last_order_at", op="within_last", value="7") == {"days": 7}
    assert written(field="lifetime_value", op="between", value="10", value2="20") == ["10", "20"]
    assert written(field="tags", op="contains_any", value="vip, , wholesale") == ["vip", "wholesale"]
    assert written(field="country", op="exists", value="GB") is None
    # What the DSL refuses is passed on for it to name.
    with pytest.raises(SegmentInvalid, match="orders_count takes a whole number"):
        parsed(to_definition(Node("condition", {"field": "orders_count", "op": "gte", "value": "two"})))


def test_an_event_condition_writes_its_count_window_and_anchor() -> None:
    inputs = {"event": "product_viewed", "op": "at_least", "count": "2", "within_days": "14", "since": "order_placed"}
    assert to_definition(Node("event", inputs)) == {"event": "product_viewed", "op": "at_least", "count": 2,
                                                    "within_days": 14, "since": {"event": "order_placed",
                                                                                 "last": True}}
    never = {**inputs, "op": "none", "within_days": "", "since": ""}
    assert to_definition(Node("event", never)) == {"event": "product_viewed", "op": "none"}


def test_a_field_changed_gets_its_first_operator_when_the_old_one_does_not_fit() -> None:
    tree = from_form({"n-kind": "all", "n-0-kind": "condition", "n-0-field": "country", "n-0-op": "gte",
                      "n-0-value": "GB"})
    assert tree.parts[0].inputs["op"] == "eq"
    kept = from_form({"n-kind": "all", "n-0-kind": "condition", "n-0-field": "lifetime_value", "n-0-op": "gte",
                      "n-0-value": "5"})
    assert kept.parts[0].inputs["op"] == "gte"


def test_parts_are_read_in_index_order_and_a_not_of_several_parts_negates_them_together() -> None:
    form = {"n-kind": "not", "n-10-kind": "condition", "n-10-field": "country", "n-10-op": "eq", "n-10-value": "B",
            "n-2-kind": "condition", "n-2-field": "country", "n-2-op": "eq", "n-2-value": "A"}
    assert to_definition(from_form(form)) == {"not": {"all": [{"field": "country", "op": "eq", "value": "A"},
                                                              {"field": "country", "op": "eq", "value": "B"}]}}


@pytest.mark.parametrize("form", [
    {},
    {"n-kind": "everything"},
    {"n-kind": "all", "n-x-kind": "condition"},
    {"n-kind": "all", **{f"n-{i}-kind": "condition" for i in range(builder.MOST_NODES)}},
])
def test_fields_that_are_not_the_builder_s_are_refused(form: dict[str, str]) -> None:
    with pytest.raises(SegmentInvalid):
        from_form(form)


def test_buttons_add_and_remove_parts_and_keep_every_group_non_empty() -> None:
    tree = Node("all", parts=[builder.new_condition()])
    builder.apply(tree, "add-event:n", [])
    builder.apply(tree, "add-group:n", [])
    builder.apply(tree, "add-segment:n", ["vip"])
    assert [part.kind for part in tree.parts] == ["condition", "event", "any", "segment"]
    assert tree.parts[3].inputs["segment"] == "vip"
    builder.apply(tree, "remove:n-0", [])
    builder.apply(tree, "remove:n-1-0", [])  # the group's only part stays
    assert [part.kind for part in tree.parts] == ["event", "any", "segment"]
    assert len(tree.parts[1].parts) == 1
    builder.apply(tree, "remove:n-9", [])  # no such part: nothing changes
    assert builder.apply(tree, "remove:n", []) is tree and len(tree.parts) == 3
    wrapped = builder.apply(builder.new_condition(), "wrap:n", [])
    assert wrapped.kind == "all" and [part.kind for part in wrapped.parts] == ["condition"]
    assert parsed(to_definition(tree))  # what the buttons leave is a definition the DSL takes


def test_a_definition_the_form_cannot_show_exactly_is_left_as_json() -> None:
    assert load(json.dumps({"field": "tags", "op": "contains_any", "value": ["a,b"]})) is None
    with pytest.raises(SegmentInvalid, match="not JSON"):
        load("{")
    with pytest.raises(SegmentInvalid, match="unknown field"):
        load(json.dumps({"field": "shoe_size", "op": "eq", "value": 1}))


def test_json_typed_in_is_the_source_and_the_form_is_otherwise() -> None:
    start = builder.start(json.dumps({"all": [{"field": "orders_count", "op": "gte", "value": 2}]}))
    assert start.tree is not None and start.written == start.definition
    posted = {**form_fields(start.tree), "definition": start.definition, "written": start.written}
    # The form changed (the JSON beside it is the server's copy): the form counts.
    changed = builder.state({**posted, "n-0-value": "5"})
    assert json.loads(changed.definition) == {"all": [{"field": "orders_count", "op": "gte", "value": 5}]}
    # JSON typed in over the server's copy counts, and is shown as the form.
    typed = builder.state({**posted, "n-0-value": "5", "definition": '{"field": "country", "op": "eq", "value": "GB"}'})
    assert typed.tree is not None and typed.tree.kind == "condition"
    refused = builder.state({**posted, "definition": '{"field": "shoe_size"}'})
    assert refused.tree is None and refused.notice is not None and "unknown field" in refused.notice
    assert refused.definition == '{"field": "shoe_size"}'
    # A button's change applies to the posted form.
    added = builder.state({**posted, "action": "add-event:n"})
    assert added.tree is not None and [part.kind for part in added.tree.parts] == ["condition", "event"]


_PATHS = ("n", "n-0", "n-1", "n-0-0", "n-0-1", "n-00", "n-x", "m")
_KEYS = ("kind", "field", "op", "value", "value2", "unit", "event", "count", "within_days", "since", "segment")
_VALUES = st.one_of(st.sampled_from(["all", "any", "not", "condition", "event", "segment", "orders_count", "gte",
                                     "between", "in", "exists", "within_last", "last_order_at", "days_ago",
                                     "at_least", "none", "product_viewed", "1", "-2", "x,y", ""]), st.text(max_size=5))


@settings(max_examples=200, deadline=None)  # timings vary on a shared machine; the property does not
@given(st.lists(st.tuples(st.sampled_from(_PATHS), st.sampled_from(_KEYS), _VALUES), max_size=12).map(
    lambda fields: {f"{path}-{key}": value for path, key, value in fields}))
def test_any_posted_fields_are_a_tree_the_dsl_judges_or_refused_with_a_message(form: dict[str, str]) -> None:
    try:
        tree = from_form(form)
    except SegmentInvalid as refused:
        assert str(refused).startswith("definition:")
        return
    written = to_definition(tree)
    try:
        parsed(written)
    except SegmentInvalid as invalid:
        assert str(invalid)  # the DSL names the problem: the builder shows it beside the count
