"""The console's customer search (crm.console.pages.search_customers) over the in-memory repository."""

from __future__ import annotations

from crm.console import pages
from crm.models.profile import Profile

from tests.builders import NOW
from tests.fakes import FakeProfileRepository


def _repository(*names: tuple[str, str]) -> FakeProfileRepository:
    repository = FakeProfileRepository()
    for index, (first, last) in enumerate(names):
        profile = Profile(workspace_id="ws", profile_id=f"p{index:03}", first_name=first, last_name=last,
                          created_at=NOW, updated_at=NOW)
        repository.profiles[("ws", profile.profile_id)] = profile
    return repository


def test_what_is_typed_decides_how_customers_are_found() -> None:
    assert [pages.search_kind(text) for text in ("ada@example.com", "+44 20 7946 0958", "Ada Lovelace")] == \
        ["email", "phone", "name"]


def test_a_name_search_matches_every_word_in_any_case_and_stops_at_its_bounds() -> None:
    repository = _repository(("Ada", "Lovelace"), ("Ada", "Byron"), ("Charles", "Babbage"))
    found = pages.search_customers(repository, "ws", "  ada LOVE ")
    assert [p.profile_id for p in found.profiles] == ["p000"] and not found.incomplete
    assert pages.search_customers(repository, "other", "ada").profiles == ()
    assert pages.search_customers(repository, "ws", "").problem


def test_a_name_search_says_when_it_read_only_part_of_the_workspace() -> None:
    repository = _repository(*[("Grace", f"Hopper{i}") for i in range(pages.MOST_NAME_MATCHES + 5)])
    found = pages.search_customers(repository, "ws", "grace")
    assert len(found.profiles) == pages.MOST_NAME_MATCHES and found.incomplete


def test_an_unusable_phone_or_email_is_a_problem_not_an_error() -> None:
    found = pages.search_customers(_repository(), "ws", "not-an-email@")
    assert found.kind == "email" and found.problem and found.profiles == ()
