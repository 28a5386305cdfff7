"""A flow's console page (crm.console.flow_page): the diagram of its steps with their counts, the editor's delays
and messages put into the definition the API saves, a refusal traced to its step; the template editor's preview
(crm.console.template_page) rendered as a send renders it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from crm.console import flow_page, template_page
from crm.flows.defaults import builtin_flows
from crm.flows.manage import parse_definition
from crm.models.flow_stats import Counts
from crm.models.messaging import MessagingSettings
from crm.models.profile import Profile
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import NOW
from tests.fakes import FakeProfileRepository

SPLIT_FLOW = {
    "name": "Split", "trigger": {"kind": "event", "event": "OrderPlaced"},
    "steps": [
        {"kind": "delay", "id": "wait_1", "duration": "PT2H"},
        {"kind": "random", "id": "ab", "paths": [
            {"weight": 50, "steps": [{"kind": "email", "id": "mail_a", "template_id": "tpl_a"}]},
            {"weight": 50, "steps": [{"kind": "delay", "id": "wait_b", "duration": "P1D"},
                                     {"kind": "sms", "id": "text_b", "template_id": "tpl_b"}]}]},
        {"kind": "delay", "id": "evening", "until_time": "18:00"},
    ]}


def test_the_diagram_draws_each_step_in_order_with_its_counts_and_a_split_s_paths_side_by_side() -> None:
    definition = parse_definition(SPLIT_FLOW)
    counts = {"mail_a": Counts(recipients=4, sent=3, skipped={"no_consent": 1})}
    drawn = flow_page.diagram(definition, counts, {"tpl_a": "Thanks"})
    assert [(s.step_id, s.title) for s in drawn] == [("wait_1", "Wait 2 hours"), ("ab", "A/B split"),
                                                     ("evening", "Wait until 18:00")]
    assert drawn[0].delay == timedelta(hours=2) and drawn[2].delay is None  # only a fixed wait is edited
    paths = drawn[1].paths
    assert [p.label for p in paths] == ["Path A · 50 %", "Path B · 50 %"]
    mail_a = paths[0].steps[0]
    assert (mail_a.title, mail_a.template_id, mail_a.counts.sent, mail_a.counts.skipped) == \
        ("Email: Thanks", "tpl_a", 3, {"no_consent": 1})
    # A step the counters never saw shows zeros, and a template without a name its id.
    assert [(s.title, s.counts.recipients) for s in paths[1].steps] == [("Wait 1 day", 0), ("SMS: tpl_b", 0)]
    assert flow_page.email_steps(definition, {"tpl_a": "Thanks"}) == [("mail_a", "mail_a: Thanks")]


def test_every_built_in_flow_is_drawn_step_for_step() -> None:
    for definition in builtin_flows().values():
        drawn = flow_page.diagram(definition, {}, {})
        assert [s.step_id for s in drawn] == [s.id for s in definition.steps]


def test_the_editor_s_delays_and_templates_become_the_definition_the_api_checks() -> None:
    definition = parse_definition(SPLIT_FLOW)
    edited = flow_page.edited_definition(definition, {
        "wait.wait_1": "45", "wait.wait_1.unit": "minutes", "wait.wait_b": "3", "wait.wait_b.unit": "days",
        "template.mail_a": "tpl_c", "wait.evening": "9", "wait.evening.unit": "hours"})
    saved = parse_definition(edited)
    assert saved.steps[0].duration == timedelta(minutes=45)  # type: ignore[union-attr]
    path_b = saved.steps[1].paths[1].steps  # type: ignore[union-attr]
    assert path_b[0].duration == timedelta(days=3)
    assert saved.steps[1].paths[0].steps[0].template_id == "tpl_c"  # type: ignore[union-attr]
    # A wait until a time of day is not a duration: the form's field for it is ignored.
    assert saved.steps[2].until_time == "18:00" and saved.steps[2].duration is None  # type: ignore[union-attr]
    assert parse_definition(flow_page.edited_definition(definition, {})) == definition


@pytest.mark.parametrize(("amount", "unit", "problem"), [
    ("-1", "hours", "the amount: Input should be greater than or equal to 0"),
    ("two", "hours", "the amount: Input should be a valid integer, unable to parse string as an integer"),
    ("2", "weeks", "the unit: Input should be 'minutes', 'hours' or 'days'"),
])
def test_a_wrong_delay_is_refused_beside_its_step(amount: str, unit: str, problem: str) -> None:
    definition = parse_definition(SPLIT_FLOW)
    with pytest.raises(flow_page.EditRefused) as refused:
        flow_page.edited_definition(definition, {"wait.wait_b": amount, "wait.wait_b.unit": unit,
                                                 "wait.wait_1": "1", "wait.wait_1.unit": "hours"})
    assert refused.value.problems == {"wait_b": problem}


def test_a_refusal_of_the_definition_is_traced_to_the_step_it_names() -> None:
    document = parse_definition(SPLIT_FLOW).model_dump(mode="json")
    assert flow_page.step_of_problem(document, "steps[1].paths[1].steps[0].duration: too long") == "wait_b"
    assert flow_page.step_of_problem(document, "steps[2].until_time: bad") == "evening"
    assert flow_page.step_of_problem(document, "steps[9].duration: nothing there") is None
    assert flow_page.step_of_problem(document, "name: required") is None


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=365)).map(
    lambda d: timedelta(minutes=int(d.total_seconds() // 60))))
def test_a_delay_shown_in_the_editor_is_saved_unchanged(duration: timedelta) -> None:
    amount, unit = flow_page.delay_amount(duration)
    assert flow_page.DelayEdit(amount=amount, unit=unit).duration == duration  # type: ignore[arg-type]


def test_durations_read_as_words() -> None:
    assert flow_page.duration_words(timedelta(days=1, hours=2)) == "1 day 2 hours"
    assert flow_page.duration_words(timedelta(minutes=90)) == "1 hour 30 minutes"
    assert flow_page.duration_words(timedelta(0)) == "no wait"


# --- the template editor's preview ----------------------------------------------------------------------

SETTINGS = MessagingSettings(from_address="hello@shop.example", from_name="Shop",
                             postal_address="1 Main St")
DRAFT = {"name": "Hello", "subject": "Hi {{ profile.first_name }}", "html": "<p>Dear {{ profile.first_name }}</p>",
         "text": "", "marketing": "on"}


def _profiles() -> FakeProfileRepository:
    repository = FakeProfileRepository()
    grace = Profile(workspace_id="ws", profile_id="p_grace", email="grace@example.com", first_name="Grace",
                    identities=("email#grace@example.com",), created_at=NOW, updated_at=NOW)
    repository.profiles[("ws", "p_grace")] = grace
    repository.identities[("ws", "email#grace@example.com")] = "p_grace"
    return repository


def test_a_draft_is_rendered_for_the_sample_shopper_or_a_chosen_customer_as_a_send_renders_it() -> None:
    sample = template_page.preview(_profiles(), SETTINGS, "ws", "email", DRAFT, None)
    assert (sample.problems, sample.subject) == ((), "Hi Ada")
    assert sample.html is not None and "Dear Ada" in sample.html
    assert "1 Main St" in sample.html  # a marketing email's footer, as sent
    chosen = template_page.preview(_profiles(), SETTINGS, "ws", "email", DRAFT, " grace@example.com ")
    assert (chosen.subject, chosen.for_whom) == ("Hi Grace", "grace@example.com")
    assert template_page.preview(_profiles(), SETTINGS, "ws", "email", DRAFT, "nobody@example.com").problems == \
        ("customer: no customer has the email nobody@example.com",)


def test_a_draft_the_api_would_refuse_shows_each_problem_with_its_line() -> None:
    broken = {**DRAFT, "subject": "{{ profile.first_name ", "html": "<p>\n{% if %}</p>"}
    shown = template_page.preview(_profiles(), SETTINGS, "ws", "email", broken, None)
    assert [p.split(":")[0] for p in shown.problems] == ["subject", "html"]
    assert "line 2" in shown.problems[1] and shown.html is None


def test_an_sms_draft_is_its_body_and_a_saved_template_fills_the_form_back() -> None:
    sms = {"name": "T", "body": "Hey {{ profile.first_name }}"}
    shown = template_page.preview(_profiles(), SETTINGS, "ws", "sms", sms, None)
    assert shown.body == "Hey Ada"
    template = template_page.parse_draft("email", DRAFT)
    assert template_page.draft_document("email", template_page.form_of(template)) == \
        template_page.draft_document("email", DRAFT)
