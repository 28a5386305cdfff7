"""The console's customer search and a customer's orders (crm.console.pages) over the in-memory repository."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from crm.console import pages
from crm.ingestion import apply_event
from crm.models.orders import LineItem
from crm.models.profile import Profile
from crm.models.segments import GrowthPoint, SegmentRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW, order
from tests.fakes import FakeProfileRepository, FakeSegmentStore


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


def test_a_customers_orders_come_with_their_items_a_page_at_a_time_merged_profiles_included() -> None:
    repository = FakeProfileRepository()
    count = pages.ORDERS_PAGE + 3
    for n in range(count):
        placed = order(str(n), created_at=NOW - timedelta(days=n + 1)).model_copy(
            update={"line_items": (LineItem(title=f"Item {n}", quantity=n + 1, price=Decimal("2.50")),)})
        assert apply_event(repository, placed, NOW)
    # An order by phone alone makes a second profile; one by both merges it into the email's.
    assert apply_event(repository, order("by-phone", email=None, phone="+12025550123"), NOW)
    assert apply_event(repository, order("both", phone="+12025550123", created_at=NOW), NOW)
    profile_id = repository.profile_id_for_identity("ws_a", "email#shopper@example.com")
    assert profile_id is not None
    profile = repository.get_profile("ws_a", profile_id)
    assert profile is not None and profile.merged_from

    first = pages.customer_orders(repository, profile, None)
    assert first.next_cursor is not None and len(first.orders) == pages.ORDERS_PAGE
    second = pages.customer_orders(repository, profile, first.next_cursor)
    assert second.next_cursor is None
    listed = [r.order_id for r in first.orders + second.orders]
    assert sorted(listed) == sorted([*map(str, range(count)), "by-phone", "both"]) and listed[0] == "both"
    placed_at = [r.order.created_at for r in first.orders + second.orders if r.order is not None]
    assert placed_at == sorted(placed_at, reverse=True)
    assert {r.order_id: [i.title for i in r.order.line_items] for r in second.orders if r.order}[str(count - 1)] == \
        [f"Item {count - 1}"]
    with pytest.raises(ValueError):
        pages.customer_orders(repository, profile, "not-a-cursor")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400), max_size=2 * pages.ORDERS_PAGE + 5))
def test_the_pages_of_orders_hold_each_order_once_newest_first(hours_ago: list[int]) -> None:
    repository = FakeProfileRepository()
    for n, hours in enumerate(hours_ago):
        assert apply_event(repository, order(f"o{n}", created_at=NOW - timedelta(hours=hours)), NOW)
    profile_id = repository.profile_id_for_identity("ws_a", "email#shopper@example.com")
    if profile_id is None:
        assert hours_ago == []
        return
    profile = repository.get_profile("ws_a", profile_id)
    assert profile is not None
    seen: list[str] = []
    cursor = None
    while True:
        page = pages.customer_orders(repository, profile, cursor)
        assert len(page.orders) <= pages.ORDERS_PAGE
        seen += [r.order_id for r in page.orders]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(f"o{n}" for n in range(len(hours_ago)))
    placed = [hours_ago[int(order_id[1:])] for order_id in seen]
    assert placed == sorted(placed)  # hours ago ascending: newest first


def test_a_segments_growth_is_its_size_now_less_its_first_kept_size_and_a_single_size_is_no_growth() -> None:
    store = FakeSegmentStore()
    days = [NOW - timedelta(days=3), NOW - timedelta(days=2), NOW]
    for segment_id, sizes in (("grew", (10, 4, 25)), ("shrank", (8, 3)), ("once", (7,))):
        points = tuple(GrowthPoint(at=at, size=size) for at, size in zip(days, sizes, strict=False))
        store.records[("ws", segment_id)] = SegmentRecord(
            workspace_id="ws", segment_id=segment_id, name=segment_id, definition="{}", created_at=NOW,
            updated_at=NOW, size=sizes[-1], last_computed_at=NOW, growth=points)
    store.records[("other", "grew")] = store.records[("ws", "grew")].model_copy(update={"workspace_id": "other"})

    assert pages.segment_growth(store, "ws") == {"grew": (15, days[0].date().isoformat()),
                                                 "shrank": (-5, days[0].date().isoformat())}
