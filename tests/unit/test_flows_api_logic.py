"""The marketer API's flow and messaging logic without AWS: paths named in refusals, If-Match versions,
duration patterns of the published schema, settings normalisation."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from crm.flows.defaults import DefinitionInvalid
from crm.flows.manage import expected_version, json_body, parse_definition
from crm.flows.schema import duration_pattern
from crm.messaging.manage import parse_settings, parse_template
from crm.models.flows import MAX_WAIT
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

FLOW = {"name": "x", "trigger": {"kind": "event", "event": "OrderPlaced"}, "reentry": {"mode": "every_time"},
        "steps": [{"kind": "email", "id": "thanks", "template_id": "t"}]}
DURATION: TypeAdapter[timedelta] = TypeAdapter(timedelta)


@pytest.mark.parametrize(("change", "path"), [
    ({"trigger": {"kind": "event", "event": "Nope"}}, "trigger.event"),  # not trigger.event.event
    ({"trigger": {"kind": "segment", "segment_id": "builtin:vip", "on": "left"}}, "trigger.on"),
    ({"steps": [{"kind": "delay", "id": "w", "duration": "soon"}]}, "steps[0].duration"),
    ({"steps": [{"kind": "split", "id": "s", "paths": [{"steps": [{"kind": "tag", "id": "t"}]}]}]},
     "steps[0].paths[0].steps[0].tag"),
    ({"steps": [{"kind": "delay", "id": "w", "duration": "P400D"}]}, "steps[0].duration"),  # the engine's bound
    ({"reentry": {"mode": "once_per"}}, "reentry.days"),
])
def test_a_refusal_names_the_path_in_the_documents_keys(change: dict[str, Any], path: str) -> None:
    with pytest.raises(DefinitionInvalid) as refused:
        parse_definition({**FLOW, **change})
    assert str(refused.value).startswith(f"{path}:"), str(refused.value)


@pytest.mark.parametrize(("header", "version"), [(None, None), ("3", 3), ('"3"', 3), ('W/"12"', 12)])
def test_if_match_names_a_version(header: str | None, version: int | None) -> None:
    assert expected_version(header) == version


@pytest.mark.parametrize("header", ["", "three", '"-1"', "1" * 10])
def test_if_match_that_names_no_version_is_refused(header: str) -> None:
    with pytest.raises(DefinitionInvalid, match=r"^If-Match:"):
        expected_version(header)


@pytest.mark.parametrize("raw", [b"", b"null", b"[]", b"{", b'{"a": NaN}', b"\xff"])
def test_a_body_that_is_no_json_object_is_refused_as_the_body(raw: bytes) -> None:
    with pytest.raises(DefinitionInvalid, match=r"^body:"):
        json_body(raw)


def test_amounts_in_a_body_stay_decimal() -> None:
    assert str(json_body(b'{"value": 12.10}')["value"]) == "12.10"


@given(st.timedeltas(min_value=timedelta(minutes=1), max_value=MAX_WAIT))
def test_durations_the_schema_allows_are_waits_the_engine_takes(length: timedelta) -> None:
    for text in (f"P{length.days}D" if length.days else None, f"PT{int(length.total_seconds() // 3600)}H"
                 if length >= timedelta(hours=1) else None, f"PT{int(length.total_seconds() // 60)}M"):
        if text is None:
            continue
        assert re.fullmatch(duration_pattern(), text), text
        assert timedelta(0) < DURATION.validate_python(text) <= MAX_WAIT


@pytest.mark.parametrize("text", ["P0D", "PT0H", "P366D", "PT8761H", "PT525601M", "P01D", "P", "PT", "-P1D"])
def test_durations_outside_the_engines_bounds_are_not_in_the_schema(text: str) -> None:
    assert re.fullmatch(duration_pattern(), text) is None


def test_settings_are_normalised_and_refusals_name_the_field() -> None:
    held = parse_settings({"from_address": " A@Shop.Example ", "sms_sender": "+44 20 7946 0958",
                           "time_zone": "Europe/London"})
    assert (held.from_address, held.sms_sender) == ("a@shop.example", "+442079460958")
    assert parse_settings({"sms_sender": "SHOP"}).sms_sender == "SHOP"
    refused: list[tuple[dict[str, Any], str]] = [
        ({"from_address": "nobody"}, "from_address"), ({"time_zone": "Europe/Atlantis"}, "time_zone"),
        ({"sms_sender": "123"}, "sms_sender"), ({"quiet_hours": {"end": "8am"}}, "quiet_hours.end")]
    for document, field in refused:
        with pytest.raises(DefinitionInvalid, match=f"^{re.escape(field)}:"):
            parse_settings(document)


def test_a_template_defaults_to_email_and_an_sms_one_says_so() -> None:
    assert parse_template({"name": "n", "subject": "s", "html": "<p>h</p>"}).channel == "email"
    assert parse_template({"channel": "sms", "name": "n", "body": "b"}).channel == "sms"
    with pytest.raises(DefinitionInvalid, match=r"^body: line 1:"):
        parse_template({"channel": "sms", "name": "n", "body": "{% if %}"})
