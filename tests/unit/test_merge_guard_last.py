"""A merge an activity makes, written without a transaction (crm.changes._merge_guard_last), met half written by
the events that come at the same time: another identify of the same browser, an order naming the browser."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from crm.ingestion import apply_event
from crm.models.canonical import ActivityEvent, ActivityType
from crm.models.profile import Profile
from crm.models.stores import Platform
from crm.ports import Change

from tests.builders import NOW, order
from tests.fakes import FakeProfileRepository

WS = "ws_a"


class _MarkThenOthers(FakeProfileRepository):
    """Runs ``between`` once a merge's marks are written and before its survivor is (or, ``first``, before its
    marks), as another invocation would."""

    between: Callable[[], None] | None = None
    first = False

    def commit(self, change: Change) -> None:
        hook = self.between
        if hook is None or not change.merging:
            super().commit(change)
            return
        self.between = None
        if self.first:
            hook()
            super().commit(change)
            return
        super().commit(Change(change.workspace_id, profiles=change.merging))
        hook()
        super().commit(replace(change, merging=()))


def _identify(event_id: str, browser: str) -> ActivityEvent:
    return ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=event_id,
                         type=ActivityType.IDENTIFY, occurred_at=NOW, anonymous_id=browser,
                         email="shopper@example.com")


def _known_browser(repository: FakeProfileRepository, browser: str) -> None:
    assert apply_event(repository, ActivityEvent(
        workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id="v-1", occurred_at=NOW,
        type=ActivityType.PRODUCT_VIEWED, anonymous_id=browser), NOW)
    assert apply_event(repository, order("1", total=Decimal("40.00")), NOW)


def _one_shopper(repository: FakeProfileRepository) -> Profile:
    (profile,) = repository.live_profiles()
    assert not [p for p in repository.profiles.values() if p.merging]
    assert len(profile.merged_from) == 1
    return profile


# b-1: the browser's profile is the one merged (marked); b-2: the email's is (their ids fall that way).
@pytest.mark.parametrize("browser", ["b-1", "b-2"])
@pytest.mark.parametrize("first", [True, False], ids=["before the mark", "after the mark"])
def test_two_identifies_of_one_browser_at_once_merge_it_once_and_count_both(browser: str, first: bool) -> None:
    repository = _MarkThenOthers()
    _known_browser(repository, browser)
    repository.first = first
    repository.between = lambda: None if apply_event(repository, _identify("i-2", browser), NOW) else pytest.fail(
        "the second identify was not applied")
    assert apply_event(repository, _identify("i-1", browser), NOW + timedelta(seconds=1))
    profile = _one_shopper(repository)
    assert (profile.orders_count, profile.total_spent, profile.activity_counts) == (
        1, Decimal("40.00"), {"identify": 2, "product_viewed": 1})
    merges = [e for line in repository.timelines.values() for e in line.values() if e.type == "profile_merged"]
    assert len(merges) == 1


@pytest.mark.parametrize("browser", ["b-1", "b-2"])
def test_an_order_naming_the_browser_during_a_merge_finishes_it_and_counts_once(browser: str) -> None:
    repository = _MarkThenOthers()
    _known_browser(repository, browser)
    placed = order("2", total=Decimal("10.00")).model_copy(update={"anonymous_id": browser})
    repository.between = lambda: None if apply_event(repository, placed, NOW) else pytest.fail("not applied")
    assert apply_event(repository, _identify("i-1", browser), NOW + timedelta(seconds=1))
    assert not apply_event(repository, _identify("i-1", browser), NOW + timedelta(seconds=2))
    profile = _one_shopper(repository)
    assert (profile.orders_count, profile.total_spent, profile.activity_counts) == (
        2, Decimal("50.00"), {"identify": 1, "product_viewed": 1})
