"""The refresh's skip (crm.segments.inputs): a profile write whose images agree on what the rules and time
boundaries read is decided without evaluating a segment, and such a write never moves a membership."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm.models.canonical import Touch
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.predictions import Prediction
from crm.models.profile import Activity, Profile, RecentTimes
from crm.recent import micros
from crm.segments import runs
from crm.segments.boundaries import next_change
from crm.segments.builtin import BuiltinSettings, PopulationSketch, PopulationStats, SegmentContext
from crm.segments.definition import Definition, referenced_segments
from crm.segments.feed import ProfileChange
from crm.segments.inputs import moves_nothing
from crm.segments.membership import Rules, memberships_of, rules_for
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW
from tests.fakes import FakeProfileRepository, FakeSegmentRuns, FakeSegmentStore
from tests.unit.segment_strategies import ACTIVITIES, WORDS, amounts, definitions, moments, profiles
from tests.unit.test_segment_runs import WS, stored

DAY = timedelta(days=1)


def _population() -> PopulationStats:
    buyers = [Profile(workspace_id=WS, profile_id=f"b{i}", created_at=NOW - 400 * DAY, updated_at=NOW,
                      orders_count=1 + i % 4, total_spent=Decimal(i * 17 % 900),
                      first_order_at=NOW - (300 + i) * DAY, last_order_at=NOW - (i * 7 % 365) * DAY)
              for i in range(40)]
    return PopulationStats.from_sketch(PopulationSketch.of_profiles(buyers, NOW), BuiltinSettings())


POPULATION = _population()


def _rules(custom: dict[str, Definition | None], now: datetime, min_views: int = 2) -> Rules:
    records = [stored(sid, d.model_dump(mode="json", by_alias=True, exclude_none=True))
               for sid, d in custom.items() if d is not None]
    return rules_for(records, SegmentContext(now=now, settings=BuiltinSettings(window_shopper_min_views=min_views),
                                             population=POPULATION))


@st.composite
def shoppers(draw: st.DrawFn) -> Profile:
    """segment_strategies' profiles with events: kept times (or none kept, as before times were), counters that
    may run past them, a last checkout, a prediction, and sometimes merged."""
    base = draw(profiles())
    kinds = draw(st.lists(st.sampled_from(("product_viewed", "page_viewed", *ACTIVITIES)), unique=True, max_size=3))
    times = {kind: sorted((micros(t) for t in draw(st.lists(moments, max_size=4))), reverse=True) for kind in kinds}
    orders = sorted((micros(t) for t in (base.first_order_at, base.last_order_at) if t is not None), reverse=True)
    counts = {kind: len(kept) + draw(st.sampled_from((0, 0, 1, 3))) for kind, kept in times.items()}
    checkout = draw(st.none() | moments)
    return base.model_copy(update={
        "activity_counts": counts,
        "recent": draw(st.sampled_from([None, RecentTimes.of(times, orders)])),
        "last_checkout": None if checkout is None else Activity(at=checkout, event_id="c", type="checkout_started"),
        "last_seen_at": draw(st.none() | moments),
        "prediction": draw(st.none() | st.builds(
            lambda clv: Prediction(status="predicted", computed_at=NOW, clv=clv, churn_probability=Decimal("0.4")),
            amounts)),
        "merged_into": draw(st.sampled_from([None, None, None, "p-2"])),
    })


def _activity(kind: str, at: datetime) -> Callable[[Profile], dict[str, Any]]:
    def view(profile: Profile) -> dict[str, Any]:
        kept = profile.recent.activity_times() if profile.recent else {}
        times = {k: list(v) for k, v in kept.items()}
        times[kind] = sorted([*times.get(kind, []), micros(at)], reverse=True)
        return {"activity_counts": {**profile.activity_counts, kind: profile.activity_counts.get(kind, 0) + 1},
                "recent": RecentTimes.of(times, profile.recent.order_times()) if profile.recent else None}

    return view


@st.composite
def writes(draw: st.DrawFn) -> Callable[[Profile], dict[str, Any]]:
    """One write's changes: mostly what no rule reads (names, identities, last seen, bookkeeping), often one
    thing some rule may read (a contact field, consent, tags, an order's figures, an activity, a checkout)."""
    at = draw(moments)
    text = st.sampled_from(WORDS)
    unread: list[dict[str, Any]] = [
        {"first_name": draw(text)}, {"last_name": draw(text)}, {"phone": "+447700900123"},
        {"identities": ("email:ada@example.com",)}, {"last_seen_at": at}, {"updated_at": at},
        {"unmarked_events": ("abc",)}, {"contact_sources": {"email": "1|test"}},
    ]
    read: list[Callable[[Profile], dict[str, Any]]] = [
        lambda p: {"email": draw(st.sampled_from([None, "ada@Example.com", "bo@shop.io"]))},
        lambda p: {"country": draw(st.none() | text)},
        lambda p: {"tags": (*p.tags, draw(text))},
        lambda p: {"store_ids": (draw(text),)},
        lambda p: {"consents": {"email": Consent(channel=Channel.EMAIL, state=draw(st.sampled_from(list(ConsentState))),
                                                  source="test", at=NOW)}},
        lambda p: {"first_touch": Touch(source=draw(text), at=NOW)},
        lambda p: {"last_touch": Touch(source=draw(text), at=NOW)},
        lambda p: {"products": {**p.products, draw(text): 1}, "categories": {draw(text): 1}},
        lambda p: {"skus": {draw(text): 1}, "coupons": {draw(text): 1}},
        lambda p: {"total_spent": p.total_spent + draw(amounts), "total_refunded": draw(amounts)},
        lambda p: {"cancelled_count": p.cancelled_count + 1},
        lambda p: {"orders_count": p.orders_count + 1, "last_order_at": at,
                   "first_order_at": p.first_order_at or at},
        lambda p: {"last_checkout": Activity(at=at, event_id="c2", type="checkout_started")},
        lambda p: {"prediction": None},
        lambda p: {"merged_into": "p-3"},
        lambda p: {"last_order_at": at if p.orders_count else None},  # an order re-placed, or the last cancelled
        lambda p: {"first_order_at": at if p.orders_count else None},
        _activity(draw(st.sampled_from(("product_viewed", "page_viewed", *ACTIVITIES))), at),
        *[_activity(draw(st.sampled_from(("product_viewed", "page_viewed"))), at)] * 4,  # most writes are views
    ]
    chosen = draw(st.lists(st.sampled_from(unread), max_size=3))
    touched = draw(st.sampled_from(([], [draw(st.sampled_from(read))], [draw(st.sampled_from(read))],
                                    draw(st.lists(st.sampled_from(read), min_size=2, max_size=2)))))

    def write(profile: Profile) -> dict[str, Any]:
        update = {key: value for change in chosen for key, value in change.items()}
        for change in touched:
            update.update(change(profile.model_copy(update=update)))
        return {**update, "revision": profile.revision + 1}

    return write


def _no_references(definition: Definition) -> bool:
    return not referenced_segments(definition)


def _refers_to_first(definition: Definition) -> bool:
    return referenced_segments(definition) <= {"seg_1"}


@settings(max_examples=400, deadline=None)
@given(before=shoppers(), write=writes(), first=st.none() | definitions.filter(_no_references),
       second=st.none() | definitions.filter(_refers_to_first), third=st.none() | definitions,
       min_views=st.integers(1, 6), hours=st.integers(0, 24 * 200))
def test_a_write_the_refresh_skips_moves_no_membership_and_no_time_boundary(
        before: Profile, write: Callable[[Profile], dict[str, Any]], first: Definition | None,
        second: Definition | None, third: Definition | None, min_views: int, hours: int) -> None:
    # seg_2 may refer to seg_1, seg_3 to either (a reference to a segment left out is never a membership)
    custom = {"seg_1": first, "seg_2": second, "seg_3": third}
    rules = _rules(custom, NOW, min_views)
    after = before.model_copy(update=write(before))
    if not moves_nothing(before, after, rules):
        return
    assert memberships_of(after, rules) == memberships_of(before, rules)
    assert next_change(after, rules, NOW) == next_change(before, rules, NOW)
    later = _rules(custom, NOW + timedelta(hours=hours), min_views)  # and at any later instant
    assert moves_nothing(before, after, later)
    assert memberships_of(after, later) == memberships_of(before, later)


BROWSING = {"seg_browsing": {"event": "product_viewed", "op": "at_least", "count": 3, "within_days": 30},
            "seg_uk": {"field": "country", "op": "eq", "value": "GB"}}


def _browser(**update: Any) -> Profile:
    views = [NOW - timedelta(hours=h) for h in (1, 5, 9)]
    return Profile(workspace_id=WS, profile_id="p1", created_at=NOW - 90 * DAY, updated_at=NOW - DAY,
                   last_seen_at=NOW - DAY, activity_counts={"product_viewed": 3},
                   recent=RecentTimes.of({"product_viewed": [micros(t) for t in views]}, [])).model_copy(update=update)


@pytest.mark.parametrize(("update", "skipped"), [
    ({"first_name": "Ada", "phone": "+447700900123", "last_seen_at": NOW, "updated_at": NOW}, True),
    ({"tags": ("vip",), "email": "ada@example.com"}, True),  # no rule reads tags or the email's domain
    ({"country": "GB"}, False),  # seg_uk reads it
    ({"activity_counts": {"product_viewed": 4}}, False),  # window shoppers count views
    ({"last_checkout": Activity(at=NOW, event_id="c", type="checkout_started")}, False),  # cart abandoners
])
def test_only_what_a_rule_or_built_in_reads_makes_the_refresh_evaluate(update: dict[str, Any], skipped: bool) -> None:
    rules = rules_for([stored(sid, d) for sid, d in BROWSING.items()], SegmentContext(now=NOW))
    before = _browser()
    assert moves_nothing(before, before.model_copy(update={**update, "revision": 1}), rules) is skipped


def test_last_seen_places_the_events_of_a_profile_without_kept_times() -> None:
    """Before times were kept, a counter's occurrences sit at the latest time known: last seen may move them."""
    rules = rules_for([stored(sid, d) for sid, d in BROWSING.items()], SegmentContext(now=NOW))
    before = _browser(recent=None).model_copy(update={"last_seen_at": NOW - 40 * DAY})
    after = before.model_copy(update={"last_seen_at": NOW})
    assert not moves_nothing(before, after, rules)
    assert memberships_of(before, rules) != memberships_of(after, rules)


def test_the_refresh_evaluates_no_segment_for_a_write_no_rule_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    repository = FakeProfileRepository()
    before = _browser()
    repository.profiles[(WS, "p1")] = before
    store = FakeSegmentStore(repository)
    for sid, definition in BROWSING.items():
        store.put(stored(sid, definition), None)

    def evaluated(*_: Any) -> frozenset[str]:
        raise AssertionError("a segment was evaluated")

    monkeypatch.setattr(runs, "memberships_of", evaluated)
    after = before.model_copy(update={"first_name": "Ada", "last_seen_at": NOW, "revision": 1})
    applied = runs.refresh(store, FakeSegmentRuns(), [ProfileChange(before, after)], NOW)
    assert (applied.profiles, applied.entered, applied.exited, store.held_reads) == (1, 0, 0, 0)
