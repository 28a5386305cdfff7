"""Flow definitions (crm.flows.definition): what is refused, and the path each error names."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from crm.flows.builtin import BUILTIN_FLOWS
from crm.flows.definition import (
    MAX_STEPS,
    FlowInvalid,
    find_step,
    parse_flow,
    template_ids,
    validate_flow,
    walk_steps,
)
from crm.models.flows import FlowDefinition

CHECKOUT = {
    "name": "Abandoned checkout",
    "trigger": {"kind": "event", "event": "CheckoutStarted"},
    "profile_filter": {"field": "email_domain", "op": "exists"},
    "exits": [{"event": "OrderPlaced"}],
    "reentry": {"mode": "once_per", "days": 7},
    "steps": [
        {"kind": "delay", "id": "wait_4h", "duration": "PT4H"},
        {"kind": "split", "id": "big_cart", "paths": [
            {"when": {"field": "orders_count", "op": "gte", "value": 1}, "steps": [
                {"kind": "email", "id": "returning", "template_id": "t_returning"}]},
            {"steps": [{"kind": "random", "id": "ab", "paths": [
                {"weight": 50, "steps": [{"kind": "email", "id": "a", "template_id": "t_a"}]},
                {"weight": 50, "steps": [{"kind": "sms", "id": "b", "template_id": "t_b"}]},
            ]}]},
        ]},
        {"kind": "tag", "id": "tagged", "tag": "reminded"},
    ],
}


def with_(path: str, value: Any) -> dict[str, Any]:
    """CHECKOUT with the value at a dotted path (list indices as numbers) replaced."""
    document = copy.deepcopy(CHECKOUT)
    *parents, last = path.split(".")
    node: Any = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return document


def problem(document: dict[str, Any]) -> str:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(document)
    return str(caught.value)


def test_a_full_definition_parses_from_bytes() -> None:
    definition = parse_flow(json.dumps(CHECKOUT).encode())
    assert [step.id for _, step in walk_steps(definition.steps)] == ["wait_4h", "big_cart", "returning", "ab", "a",
                                                                    "b", "tagged"]
    assert template_ids(definition) == {"t_returning", "t_a", "t_b"}
    assert find_step(definition, "b") is not None and find_step(definition, "nope") is None


def test_the_paths_walk_gives_are_the_documents_paths() -> None:
    paths = dict((step.id, path) for path, step in walk_steps(parse_flow(CHECKOUT).steps))
    assert paths["b"] == "steps[1].paths[1].steps[0].paths[1].steps[0]"


@pytest.mark.parametrize("flow_id", sorted(BUILTIN_FLOWS))
def test_every_builtin_flow_is_valid_and_survives_json(flow_id: str) -> None:
    definition = BUILTIN_FLOWS[flow_id]
    assert validate_flow(definition) is definition
    assert parse_flow(definition.model_dump_json().encode()) == definition


@pytest.mark.parametrize(("body", "message"), [
    (b"{", "body is not JSON"),
    (b"[]", "body must be a JSON object"),
])
def test_a_body_that_is_not_a_json_object(body: bytes, message: str) -> None:
    with pytest.raises(FlowInvalid, match=message):
        parse_flow(body)


ERRORS: list[tuple[dict[str, Any], str]] = [
    # shape, with the document's own path (no union tags)
    (with_("steps.0.id", "Wait 4h"), "steps[0].id: String should match pattern"),
    (with_("steps.1.paths.1.steps.0.paths.0.weight", 101), "steps[1].paths[1].steps[0].paths[0].weight: Input should "
                                                           "be less than or equal to 100"),
    (with_("trigger", {"kind": "event", "event": "Nope"}), "trigger.event: Input should be"),
    (with_("steps", []), "steps: Tuple should have at least 1 item"),
    # unique step ids across the whole tree
    (with_("steps.2.id", "a"), "steps[2].id: step id 'a' is used twice (also at steps[1].paths[1].steps[0].paths[0]"
                               ".steps[0].id)"),
    # the segment language, with its path under the flow's
    (with_("profile_filter", {"field": "ltv", "op": "gt", "value": 1}), "profile_filter.field: unknown field 'ltv'"),
    (with_("steps.1.paths.0.when", {"all": [{"field": "country", "op": "eq", "value": "GB"},
                                            {"field": "orders_count", "op": "gt", "value": "2"}]}),
     "steps[1].paths[0].when.all[1].value: orders_count takes a whole number"),
    (with_("steps.1.paths.0.when", {"field": "nope", "op": "eq", "value": 1}),
     "steps[1].paths[0].when.field: unknown field 'nope'"),
    # re-entry
    (with_("reentry", {"mode": "once_per"}), "reentry.days: once_per needs days"),
    (with_("reentry", {"mode": "once", "days": 3}), "reentry.days: only once_per takes days, not once"),
    # delays
    (with_("steps.0", {"kind": "delay", "id": "wait_4h"}), "steps[0]: a delay takes exactly one of duration, "
                                                           "until_time or until; none given"),
    (with_("steps.0", {"kind": "delay", "id": "wait_4h", "duration": "PT4H", "until_time": "09:00"}),
     "steps[0]: a delay takes exactly one of duration, until_time or until; duration, until_time given"),
    (with_("steps.0.duration", "P400D"), "steps[0].duration: a flow waits at most 365 days"),
    (with_("steps.0.duration", "PT0S"), "steps[0].duration: must be longer than 0"),
    (with_("steps.0", {"kind": "delay", "id": "d", "until_time": "25:00"}), "steps[0].until_time: String should "
                                                                            "match pattern"),
    (with_("steps.0", {"kind": "delay", "id": "d", "until": {"property": "profile.birthday"}}),
     "steps[0].until.property: the profile's moments are profile.first_order_at"),
    (with_("steps.0", {"kind": "delay", "id": "d", "until": {"property": "trigger.checkout_id"}}),
     "steps[0].until.property: CheckoutStarted.checkout_id is not a moment"),
    (with_("steps.0", {"kind": "delay", "id": "d", "until": {"property": "trigger.occurred_at",
                                                             "offset": "P400D"}}),
     "steps[0].until.offset: at most 365 days either way"),
    # splits
    (with_("steps.1.paths", [{"steps": []}, {"when": {"field": "country", "op": "eq", "value": "GB"}}]),
     "steps[1].paths[0].when: only the last path may be \"otherwise\" (no when)"),
    (with_("steps.1.paths.1.steps.0.paths", [{"weight": 0}, {"weight": 0}]),
     "steps[1].paths[1].steps[0].paths: the weights add up to 0"),
    # filters on the trigger's properties
    (with_("trigger.where", [{"property": "totl", "op": "eq", "value": 1}]),
     "trigger.where[0].property: CheckoutStarted has no property 'totl'; its properties are "),
    (with_("trigger.where", [{"property": "items.title", "op": "eq", "value": "x"}]),
     "trigger.where[0].property: items is a list: name an index, e.g. .0"),
    (with_("trigger.where", [{"property": "checkout_id.x", "op": "eq", "value": "x"}]),
     "trigger.where[0].property: CheckoutStarted: checkout_id has no parts"),
    (with_("trigger.where", [{"property": "checkout_id", "op": "eq", "value": {"trigger": "checkout_id"}}]),
     "trigger.where[0].value: a trigger's own filter cannot refer to the trigger"),
    (with_("trigger.where", [{"property": "checkout_id", "op": "in", "value": "x"}]),
     "trigger.where[0].value: in takes a non-empty list"),
    (with_("trigger.where", [{"property": "checkout_id", "op": "exists", "value": "x"}]),
     "trigger.where[0].value: exists takes no value"),
    (with_("trigger.where", [{"property": "checkout_id", "op": "eq"}]), "trigger.where[0].value: eq takes a value"),
    (with_("trigger.where", [{"property": "checkout_id", "op": "eq", "value": {"x": 1}}]),
     "trigger.where[0].value: an object value must be {\"trigger\": \"<path>\"}"),
    # exits and waits
    (with_("exits", [{"event": "OrderPlaced", "where": [{"property": "order", "op": "exists"}]}]),
     "exits[0].where[0].property: OrderPlaced has no property 'order'"),
    (with_("steps.2", {"kind": "wait_for", "id": "w", "event": "OrderFulfilled", "timeout": "P400D"}),
     "steps[2].timeout: a flow waits at most 365 days"),
    # a step after an exit is never reached
    (with_("steps.1", {"kind": "exit", "id": "stop"}), "steps[2]: never reached: the exit step before it ends the run"),
]


@pytest.mark.parametrize(("document", "message"), ERRORS, ids=[message.split(":")[0] + f"-{n}"
                                                             for n, (_, message) in enumerate(ERRORS)])
def test_each_problem_is_named_with_its_path(document: dict[str, Any], message: str) -> None:
    assert problem(document).startswith(message)


def test_filters_may_refer_to_the_trigger_in_exits_and_waits() -> None:
    document = with_("exits", [{"event": "CheckoutStarted", "where": [
        {"property": "checkout_id", "op": "neq", "value": {"trigger": "checkout_id"}}]}])
    document["steps"].append({"kind": "wait_for", "id": "w", "event": "OrderFulfilled", "where": [
        {"property": "items.0.sku", "op": "in", "value": ["a", "b"]}]})
    parse_flow(document)


def test_segment_events_and_any_value_under_a_free_form_property() -> None:
    document = with_("trigger", {"kind": "segment", "segment_id": "builtin:vip", "on": "exited"})
    document["steps"][0] = {"kind": "delay", "id": "wait_4h", "until": {"property": "trigger.entered_at"}}
    document["exits"] = [{"event": "SegmentEntered", "where": [{"property": "segment_id", "op": "eq", "value": "x"}]}]
    parse_flow(document)


def test_too_many_steps() -> None:
    steps = [{"kind": "tag", "id": f"t{n}", "tag": "x"} for n in range(MAX_STEPS + 1)]
    assert problem(with_("steps", steps)) == f"steps: more than {MAX_STEPS} steps"


def test_splits_nested_too_deep() -> None:
    step: dict[str, Any] = {"kind": "tag", "id": "leaf", "tag": "x"}
    for level in range(12):
        step = {"kind": "split", "id": f"s{level}", "paths": [{"steps": [step]}]}
    assert "splits nested deeper than 10 levels" in problem(with_("steps", [step]))


def test_a_built_definition_is_checked_too() -> None:
    definition = FlowDefinition.model_validate(with_("reentry", {"mode": "once_per"}))
    with pytest.raises(FlowInvalid, match=r"^reentry\.days: once_per needs days"):
        validate_flow(definition)
