"""Column-at-a-time evaluation (crm.segments.columns) answers as matches() does, subject by subject."""

from __future__ import annotations

from datetime import timedelta

from crm.models.profile import new_profile
from crm.segments.columns import Batch, members
from crm.segments.definition import Definition, parse_segment
from crm.segments.evaluate import Subject, matches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import NOW
from tests.unit.segment_strategies import definitions, moments, subjects
from tests.unit.test_segment_evaluate import ADA, NOBODY

DAY = timedelta(days=1)


# Subjects are large to draw: the machine's load must not fail the test, only a wrong answer.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(definition=definitions, batch=st.lists(subjects, min_size=1, max_size=4), now=moments)
def test_every_subject_gets_the_answer_matches_gives(definition: Definition, batch: list[Subject],
                                                     now: object) -> None:
    assert members(definition, batch, now) == [matches(definition, s, now) for s in batch]  # type: ignore[arg-type]


def _definition(node: dict[str, object]) -> Definition:
    return parse_segment({"name": "s", "definition": node}).definition


def test_a_column_is_read_once_for_every_definition_that_names_it() -> None:
    batch = Batch([ADA, NOBODY], NOW)
    spent = _definition({"field": "lifetime_value", "op": "gte", "value": "100"})
    assert batch.indices(batch.matching(spent)) == [0]
    column = batch._columns["lifetime_value"]
    assert batch.indices(batch.matching(_definition({"not": {"field": "lifetime_value", "op": "gte",
                                                               "value": "100"}}))) == [1]
    assert batch._columns["lifetime_value"] is column


def test_memberships_set_for_the_batch_stand_in_for_the_subjects_own() -> None:
    batch = Batch([ADA, NOBODY, Subject(profile=new_profile("ws_a", "p-3", NOW))], NOW)
    member = _definition({"segment": "seg_vip", "op": "member"})
    assert batch.indices(batch.matching(member)) == [0]  # ADA holds seg_vip
    batch.set_members("seg_vip", batch.matching(_definition({"field": "orders_count", "op": "eq", "value": 0})))
    assert batch.indices(batch.matching(member)) == [1, 2]


def test_an_empty_batch_matches_nobody() -> None:
    assert members(_definition({"field": "country", "op": "eq", "value": "GB"}), [], NOW) == []
