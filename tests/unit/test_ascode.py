"""crm.ascode without AWS: reading files (YAML 1.2 scalars, errors naming file, line and field), the plan."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from crm.ascode.layout import Desired, Directory, DirectoryInvalid, Kind, file_stem, id_for, load_directory
from crm.ascode.plan import Action, Held, PlanRefused, comparable, describe_plan, make_plan
from crm.ascode.source import SourceInvalid, read
from crm.ascode.workspace import Workspace, exported, json_text, to_yaml
from crm.flows.manage import parse_definition
from crm.messaging.manage import parse_template
from crm.models.flows import FlowStatus
from crm.segments.definition import SegmentDocument, parse_segment
from hypothesis import HealthCheck, given, settings

from tests.unit.segment_strategies import definitions, texts

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "crm-config"

FLOW = """\
name: Cart reminder
trigger: {kind: event, event: CheckoutStarted}
steps:
  - kind: delay
    id: wait
    duration: PT4H
  - kind: email
    id: remind
    template_id: cart
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def problems(root: Path) -> list[str]:
    with pytest.raises(DirectoryInvalid) as refused:
        load_directory(root)
    return [str(problem) for problem in refused.value.problems]


# --- reading ---------------------------------------------------------------------------------------------

def test_yaml_is_read_with_the_core_schema_and_amounts_as_decimals() -> None:
    source = read("on: entered\nuntil_time: 21:00\nvalue: 250.50\ncount: 012\nyes: no\nat: 2026-01-01\n")
    assert source.data == {"on": "entered", "until_time": "21:00", "value": Decimal("250.50"), "count": 12,
                           "yes": "no", "at": "2026-01-01"}
    assert read('{"a": [1, 2.5, true, null]}').data == {"a": [1, Decimal("2.5"), True, None]}


@pytest.mark.parametrize(("text", "line", "says"), [
    ("name: a\nname: b\n", 2, "name: written twice"),
    ("steps:\n  - [1\n", 3, "not valid YAML"),
    ("value: .nan\n", 1, "not a number"),
    ("", 1, "empty"),
])
def test_an_unreadable_document_names_its_line(text: str, line: int, says: str) -> None:
    with pytest.raises(SourceInvalid) as refused:
        read(text)
    assert refused.value.line == line and says in str(refused.value)


def test_the_example_directory_loads(tmp_path: Path) -> None:
    directory = load_directory(EXAMPLE)
    assert directory.managed_by == "shop-config"
    assert {(d.kind, d.id) for d in directory.definitions} == {
        (Kind.SEGMENT, "big-spenders"), (Kind.SEGMENT, "lapsing-big-spenders"), (Kind.TEMPLATE, "we-miss-you"),
        (Kind.TEMPLATE, "we-miss-you-sms"), (Kind.FLOW, "win-back-big-spenders")}
    template = next(d for d in directory.definitions if d.id == "we-miss-you")
    assert template.document["html"] == (EXAMPLE / "templates" / "we-miss-you.html").read_text()


def test_a_flow_error_names_the_file_the_line_and_the_field(tmp_path: Path) -> None:
    root = write(tmp_path, {"flows/cart.yaml": FLOW.replace("duration: PT4H", "duration: soon")})
    [problem] = problems(root)
    assert problem.startswith("flows/cart.yaml:6: steps[0].duration: "), problem


def test_a_nested_segment_error_names_the_line_of_the_field(tmp_path: Path) -> None:
    root = write(tmp_path, {"segments/buyers.yaml": "name: Buyers\ndefinition:\n  all:\n"
                            "    - {field: orders_count, op: gte, value: 1}\n"
                            "    - field: lifetime_value\n      op: gte\n      value: lots\n"})
    [problem] = problems(root)
    assert problem.startswith("segments/buyers.yaml:7: definition.all.1.value: "), problem


def test_an_unknown_key_and_a_missing_one_are_named(tmp_path: Path) -> None:
    root = write(tmp_path, {"flows/cart.yaml": FLOW + "colour: blue\n",
                            "templates/hello.yaml": "name: Hello\nhtml: <p>Hi</p>\n"})
    assert problems(root) == ["templates/hello.yaml:1: subject: Field required",
                              "flows/cart.yaml:10: colour: Extra inputs are not permitted"]


def test_a_template_error_in_the_html_file_names_its_line(tmp_path: Path) -> None:
    root = write(tmp_path, {"templates/hello.yaml": "name: Hello\nsubject: Hi\n",
                            "templates/hello.html": "<p>Hello</p>\n<p>{{ profile.first_name </p>\n"})
    [problem] = problems(root)
    assert problem.startswith("templates/hello.html:2: "), problem


def test_a_template_error_in_a_block_names_the_yaml_line(tmp_path: Path) -> None:
    root = write(tmp_path, {"templates/hello.yaml": "name: Hello\nsubject: Hi\nhtml: |\n  <p>Hello</p>\n"
                            "  <p>{{ profile.first_name </p>\n"})
    [problem] = problems(root)
    assert problem.startswith("templates/hello.yaml:5: html: "), problem


@pytest.mark.parametrize(("files", "expected"), [
    ({"flows/Cart.yaml": FLOW}, "flows/Cart.yaml: the file name is the flow's id"),
    ({"flows/cart.yaml": FLOW, "flows/cart.json": "{}"}, "flows/cart.yaml: cart.json defines the same flow"),
    ({"flows/cart.yaml": "id: other\n" + FLOW}, "flows/cart.yaml:1: id: the file's name is the flow's id"),
    ({"flows/cart.yaml": FLOW + "managed_by: me\n"}, "flows/cart.yaml:10: managed_by: crm.yaml sets it"),
    ({"flows/cart.yaml": FLOW + "status: paused\n"}, "flows/cart.yaml:10: status: draft or live"),
    ({"templates/lonely.html": "<p>Hi</p>"}, "templates/lonely.html: no lonely.yaml beside it"),
    ({"crm.yaml": "managed_by: Shop Config\n"}, "crm.yaml:1: managed_by: 1 to 63 lowercase"),
    ({"segments/builtin.vip.yaml": "name: VIP\ndefinition: {field: orders_count, op: gte, value: 1}\n"},
     "segments/builtin.vip.yaml: the file name is the segment's id"),
])
def test_layout_mistakes_are_named(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    [problem] = problems(write(tmp_path, files))
    assert problem.startswith(expected), problem


def test_every_problem_of_the_directory_is_reported_at_once(tmp_path: Path) -> None:
    root = write(tmp_path, {"flows/a.yaml": "name: A\n", "flows/b.yaml": "[", "segments/c.yaml": "name: C\n"})
    assert [p.split(":")[0] for p in problems(root)] == ["segments/c.yaml", "flows/a.yaml", "flows/b.yaml"]


def test_builtin_ids_and_file_names() -> None:
    assert id_for(Kind.FLOW, "builtin.abandoned_checkout") == "builtin:abandoned_checkout"
    assert file_stem("builtin:abandoned_checkout") == "builtin.abandoned_checkout"
    assert id_for(Kind.SEGMENT, "builtin.vip") is None and id_for(Kind.TEMPLATE, "we-miss-you") == "we-miss-you"


# --- the plan --------------------------------------------------------------------------------------------

def desired_flow(document_text: str = FLOW, status: FlowStatus | None = None, flow_id: str = "cart") -> Desired:
    document = read(document_text).data
    return Desired(Kind.FLOW, flow_id, f"flows/{flow_id}.yaml", document, parse_definition(dict(document)),
                   status)


CART = Held(Kind.TEMPLATE, "cart", parse_template({"name": "Cart", "subject": "Hi", "html": "<p>Hi</p>"}))


def held_flow(document_text: str = FLOW, status: FlowStatus = FlowStatus.DRAFT, flow_id: str = "cart",
              managed_by: str | None = None) -> Held:
    document = read(document_text).data
    model = parse_definition({**document, **({"managed_by": managed_by} if managed_by else {})})
    return Held(Kind.FLOW, flow_id, model, status)


def test_the_same_definition_written_otherwise_is_unchanged() -> None:
    spelled_out = FLOW.replace("steps:", "reentry: {mode: once_per, days: 7}\nexits: []\nsteps:").replace(
        "duration: PT4H", "duration: PT240M")
    plan = make_plan(Directory(None, (desired_flow(spelled_out),)), [held_flow(), CART])
    assert plan.empty and plan.count(Action.UNCHANGED) == 1


def test_changes_name_the_fields_and_the_status() -> None:
    changed = desired_flow(FLOW.replace("Cart reminder", "Cart reminder, 2 h"), FlowStatus.LIVE)
    [step] = make_plan(Directory(None, (changed,)), [held_flow(), CART]).steps
    assert (step.action, step.changes) == (Action.CHANGE, ("name", "status: draft -> live"))
    assert step.body is not None and step.status is FlowStatus.LIVE


def test_a_status_only_change_sends_no_definition() -> None:
    [step] = make_plan(Directory(None, (desired_flow(status=FlowStatus.DRAFT),)),
                       [held_flow(status=FlowStatus.LIVE), CART]).steps
    assert (step.action, step.body, step.status) == (Action.CHANGE, None, FlowStatus.DRAFT)


def test_a_file_without_status_leaves_the_status_alone() -> None:
    assert make_plan(Directory(None, (desired_flow(),)), [held_flow(status=FlowStatus.LIVE), CART]).empty


def test_only_labelled_definitions_without_a_file_are_deleted() -> None:
    workspace = [held_flow(flow_id="mine", managed_by="shop"), held_flow(flow_id="theirs", managed_by="other"),
                 held_flow(flow_id="made-in-the-api"), held_flow(flow_id="cart", managed_by="shop"), CART]
    plan = make_plan(Directory("shop", (desired_flow(),)), workspace)
    assert [(s.action, s.id) for s in plan.steps] == [(Action.UNCHANGED, "cart"), (Action.DELETE, "mine")]
    assert make_plan(Directory(None, (desired_flow(),)), workspace).empty  # no label: nothing deleted


def test_a_label_is_added_as_a_change_and_kept_without_one() -> None:
    [adopt] = make_plan(Directory("shop", (desired_flow(),)), [held_flow(), CART]).steps
    assert adopt.changes == ("managed_by: None -> shop",) and adopt.body is not None
    assert adopt.body["managed_by"] == "shop"
    [kept] = make_plan(Directory(None, (desired_flow(FLOW.replace("PT4H", "PT5H")),)),
                       [held_flow(managed_by="shop"), CART]).steps
    assert kept.body is not None and kept.body["managed_by"] == "shop"


def test_segments_are_created_referenced_first_and_deleted_referrers_first() -> None:
    def segment(segment_id: str, refers_to: str | None) -> tuple[Desired, Held]:
        document = {"name": segment_id, "definition": {"segment": refers_to, "op": "member"} if refers_to else
                    {"field": "orders_count", "op": "gte", "value": 1}}
        model = parse_segment(document)
        return (Desired(Kind.SEGMENT, segment_id, f"segments/{segment_id}.yaml", document, model),
                Held(Kind.SEGMENT, segment_id, model.model_copy(update={"managed_by": "shop"})))

    pairs = [segment("a", "b"), segment("b", "c"), segment("c", None)]
    created = make_plan(Directory("shop", tuple(d for d, _ in pairs)), [])
    assert [s.id for s in created.steps] == ["c", "b", "a"]
    deleted = make_plan(Directory("shop", ()), [h for _, h in pairs])
    assert [(s.action, s.id) for s in deleted.steps] == [(Action.DELETE, "a"), (Action.DELETE, "b"),
                                                         (Action.DELETE, "c")]


def test_a_reference_to_nothing_refuses_the_plan() -> None:
    trigger = FLOW.replace("{kind: event, event: CheckoutStarted}", "{kind: segment, segment_id: ghosts}")
    with pytest.raises(PlanRefused) as refused:
        make_plan(Directory(None, (desired_flow(trigger),)), [])
    assert str(refused.value).splitlines() == [
        "flows/cart.yaml: refers to template cart, which is neither in the directory nor in the workspace",
        "flows/cart.yaml: refers to segment ghosts, which is neither in the directory nor in the workspace"]
    with pytest.raises(PlanRefused, match="no built-in flow builtin:nope"):
        make_plan(Directory(None, (desired_flow(flow_id="builtin:nope"),)), [CART])


def test_the_printed_plan() -> None:
    plan = make_plan(Directory("shop", (desired_flow(status=FlowStatus.LIVE),)),
                     [held_flow(flow_id="old", managed_by="shop", status=FlowStatus.LIVE), CART])
    assert describe_plan(plan) == ["+ create  flow     cart  [flows/cart.yaml]", "- delete  flow     old",
                                   "plan: 1 to create, 0 to change, 1 to delete, 0 unchanged"]
    assert plan.steps[1].live_now


# --- export and the wire -----------------------------------------------------------------------------------

def test_an_export_reads_back_as_the_same_definitions(tmp_path: Path) -> None:
    held = held_flow(FLOW.replace("PT4H", "P1DT2H"), status=FlowStatus.LIVE, managed_by="shop")
    view = {**held.model.model_dump(mode="json", exclude_none=True), "status": "live"}
    files = exported(Workspace((held,), {(Kind.FLOW, "cart"): view}, ()), "shop")
    assert set(files) == {"crm.yaml", "flows/cart.yaml"} and "managed_by" not in files["flows/cart.yaml"]
    for name, text in files.items():
        write(tmp_path, {name: text})
    directory = load_directory(tmp_path)
    assert directory.managed_by == "shop" and directory.definitions[0].status is FlowStatus.LIVE
    plan = make_plan(directory, [held, CART], ())
    assert plan.empty, plan


def test_decimals_go_over_the_wire_exactly() -> None:
    assert json_text({"value": Decimal("250.10"), "whole": Decimal("3.0")}) == b'{"value": 250.1, "whole": 3}'
    with pytest.raises(ValueError, match="more digits"):
        json_text({"value": Decimal("0.12345678901234567890")})
    assert read(to_yaml({"value": Decimal("10.50"), "text": "a\nb\n", "time": "21:00", "on": "x"})).data == {
        "value": Decimal("10.50"), "text": "a\nb\n", "time": "21:00", "on": "x"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definition=definitions, name=texts)
def test_any_segment_written_as_yaml_reads_back_and_crosses_the_wire_as_the_same_definition(
        definition: Any, name: str) -> None:
    """What export writes (the API's JSON view as YAML) is read back, and sent as JSON, into the same model: the
    plan of an export is empty whatever the definition holds (amounts, dates, on/off, times of day)."""
    held = SegmentDocument(name=name, definition=definition)
    view = json.loads(held.model_dump_json(by_alias=True, exclude_none=True), parse_float=Decimal)
    from_file = read(to_yaml(view)).data
    assert comparable(parse_segment(from_file)) == comparable(held)
    over_the_wire = json.loads(json_text(from_file), parse_float=Decimal)
    assert comparable(parse_segment(over_the_wire)) == comparable(held)


def test_text_that_yaml_1_1_writes_plain_but_1_2_reads_as_a_number_is_quoted() -> None:
    for text in ("08", "0o17", "8", "true", "1e3", "on", "21:00"):
        assert read(to_yaml({"value": text})).data == {"value": text}
