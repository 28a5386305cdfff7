"""Event conditions are exact: a profile keeps the times of its latest RECENT_KEPT occurrences of each activity
type and of its counted orders, and counting within a window or since an anchor from them gives the answer
the whole raw history gives (within the count bound the definition language enforces).

Unit tests with hand-computed expectations first, then properties: any arrival order, duplicates and merges
give the same kept times, and evaluating event conditions on the profile that ingestion built equals
evaluating them on the raw event history ("the truth"), for random streams, windows and counts. The
properties shrink RECENT_KEPT (``keeping``) so that truncation, refills and merges of full lists are common.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from crm import recent
from crm.customers import profile_view
from crm.ingestion import apply_event
from crm.models.canonical import ActivityEvent, ActivityType, CanonicalEvent, OrderRemoved
from crm.models.orders import CanonicalOrder, version_stamp
from crm.models.profile import Profile, RecentTimes, TimelineEntry
from crm.models.stores import Platform
from crm.recent import latest, micros, moment, packed, replaced, unpacked
from crm.segments.definition import EventCondition, EventOp, Since, parse_segment
from crm.segments.evaluate import Subject, matches
from crm.segments.subject import subject_of
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW, customer_record, order
from tests.fakes import FakeProfileRepository

WS = "ws_a"
EMAIL = "shopper@example.com"
BROWSER = "anon-1"
DAY = timedelta(days=1)
VIEWED, CHECKOUT, PAGE, IDENTIFY = (ActivityType.PRODUCT_VIEWED, ActivityType.CHECKOUT_STARTED,
                                    ActivityType.PAGE_VIEWED, ActivityType.IDENTIFY)


@contextmanager
def keeping(kept: int) -> Iterator[None]:
    """Profiles keep only ``kept`` times per list while inside (the definition bound follows)."""
    with mock.patch.object(recent, "RECENT_KEPT", kept):
        yield


def activity(event_id: str, at: datetime, kind: ActivityType = VIEWED, *, email: str | None = EMAIL,
             anonymous_id: str | None = None) -> ActivityEvent:
    return ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=event_id, type=kind,
                         occurred_at=at, email=email, anonymous_id=anonymous_id)


def cancelled(placed: CanonicalOrder, at: datetime) -> CanonicalOrder:
    return placed.model_copy(update={"cancelled_at": at, "updated_at": at, "version": version_stamp(at, None)})


def removed(placed: CanonicalOrder, at: datetime) -> OrderRemoved:
    return OrderRemoved(workspace_id=WS, store_id=placed.store_id, platform=Platform.SHOPIFY,
                        order_id=placed.order_id, removed_at=at)


class CountingRepository(FakeProfileRepository):
    """Counts timeline reads: the rare path that rebuilds order dates and kept times."""

    def __init__(self) -> None:
        super().__init__()
        self.timeline_reads = 0

    def timeline(self, workspace_id: str, profile_ids: Sequence[str], before: str | None,
                 limit: int) -> list[TimelineEntry]:
        self.timeline_reads += 1
        return super().timeline(workspace_id, profile_ids, before, limit)


def deliver(events: Sequence[CanonicalEvent], repository: FakeProfileRepository | None = None) -> FakeProfileRepository:
    repository = repository if repository is not None else FakeProfileRepository()
    for step, event in enumerate(events):
        apply_event(repository, event, NOW + timedelta(seconds=step))
    return repository


def only_profile(repository: FakeProfileRepository) -> Profile:
    (profile,) = repository.live_profiles()
    return profile


def holds(definition: dict[str, Any], profile: Profile, now: datetime = NOW) -> bool:
    return matches(parse_segment({"name": "s", "definition": definition}).definition, subject_of(profile), now)


def kept_activity(profile: Profile, kind: ActivityType) -> list[datetime]:
    assert profile.recent is not None
    return [moment(value) for value in profile.recent.activity_times().get(kind.value, ())]


def kept_orders(profile: Profile) -> list[datetime]:
    assert profile.recent is not None
    return [moment(value) for value in profile.recent.order_times()]


# --- the representation -------------------------------------------------------------------------------------


def test_times_are_whole_microseconds_and_round_trip() -> None:
    at = datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
    assert micros(at) == 1770091506789012
    assert moment(micros(at)) == at
    assert micros(datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)) == -1_000_000


def test_times_are_stored_as_the_newest_then_gaps() -> None:
    newest = micros(NOW)
    times = (newest, newest - 90_000_000, newest - 90_000_000 - 3 * 86_400_000_000)
    # Gaps in whole seconds end in six zeros, which DynamoDB does not store: 90 s costs 2 bytes, 3 days 3.
    assert packed(times) == (newest, 90_000_000, 259_200_000_000)
    assert unpacked(packed(times)) == times
    assert packed(()) == unpacked(()) == ()
    kept = RecentTimes.of({"page_viewed": times, "identify": ()}, times[1:])
    assert kept.activity == {"page_viewed": packed(times)}
    assert (kept.activity_times(), kept.order_times()) == ({"page_viewed": times}, times[1:])


def test_a_new_profile_keeps_times_newest_first() -> None:
    views = [NOW - 3 * DAY, NOW - DAY, NOW - 2 * DAY]
    profile = only_profile(deliver([activity(f"v{i}", at) for i, at in enumerate(views)]))
    assert kept_activity(profile, VIEWED) == sorted(views, reverse=True)
    assert profile.activity_counts == {"product_viewed": 3}
    assert "recent" not in profile_view(profile)  # bookkeeping, not part of the marketer's view


# --- windows --------------------------------------------------------------------------------------------------


def test_window_counts_its_first_instant_and_nothing_after_now() -> None:
    views = {"edge": NOW - 30 * DAY, "just_outside": NOW - 30 * DAY - timedelta(microseconds=1),
             "inside": NOW - 10 * DAY, "now": NOW, "after_now": NOW + timedelta(hours=1)}
    profile = only_profile(deliver([activity(name, at) for name, at in views.items()]))

    def viewed(op: str, count: int) -> bool:
        return holds({"event": "product_viewed", "op": op, "count": count, "within_days": 30}, profile)

    # In the window: edge, inside, now (3); just_outside is 1 us too old; after_now is not counted yet.
    assert viewed("at_least", 3)
    assert not viewed("at_least", 4)
    assert viewed("exactly", 3)
    assert viewed("at_most", 3)
    assert not viewed("at_most", 2)
    # An hour later the future view counts and the edge has left the window.
    later = NOW + timedelta(hours=1)
    assert holds({"event": "product_viewed", "op": "exactly", "count": 3, "within_days": 30}, profile, later)
    assert kept_activity(profile, VIEWED)[0] == views["after_now"]


def test_orders_count_in_a_window_by_when_they_were_placed() -> None:
    placed = [order(str(i), created_at=NOW - days * DAY) for i, days in enumerate((400, 200, 100, 3))]
    profile = only_profile(deliver(placed))
    assert kept_orders(profile) == [NOW - 3 * DAY, NOW - 100 * DAY, NOW - 200 * DAY, NOW - 400 * DAY]
    assert holds({"event": "order_placed", "op": "exactly", "count": 3, "within_days": 365}, profile)
    assert holds({"event": "order_placed", "op": "exactly", "count": 1, "within_days": 7}, profile)
    assert holds({"event": "order_placed", "op": "exactly", "count": 4}, profile)


# --- since ----------------------------------------------------------------------------------------------------

ABANDONED = {"all": [{"event": "checkout_started", "op": "at_least", "count": 1, "within_days": 7},
                     {"event": "order_placed", "op": "none", "since": {"event": "checkout_started", "last": True}}]}


def test_since_counts_only_after_the_latest_anchor() -> None:
    checkout = activity("c1", NOW - 5 * DAY, CHECKOUT)
    older_checkout = activity("c0", NOW - 20 * DAY, CHECKOUT)
    ordered_before = order("1", created_at=NOW - 10 * DAY)
    ordered_after = order("2", created_at=NOW - 3 * DAY)

    abandoned = only_profile(deliver([older_checkout, checkout, ordered_before]))
    assert holds(ABANDONED, abandoned)  # the order came before the latest checkout
    assert holds({"event": "order_placed", "op": "exactly", "count": 1, "since": {"event": "checkout_started"}},
                 only_profile(deliver([older_checkout, ordered_before])))  # after the only checkout there was one

    bought = only_profile(deliver([checkout, ordered_after, older_checkout]))
    assert not holds(ABANDONED, bought)


def test_an_event_at_the_anchor_instant_is_not_after_it() -> None:
    at = NOW - 2 * DAY
    profile = only_profile(deliver([activity("c1", at, CHECKOUT), order("1", created_at=at)]))
    assert holds({"event": "order_placed", "op": "none", "since": {"event": "checkout_started"}}, profile)
    one_microsecond_later = only_profile(deliver([activity("c1", at, CHECKOUT),
                                                  order("1", created_at=at + timedelta(microseconds=1))]))
    assert not holds({"event": "order_placed", "op": "none", "since": {"event": "checkout_started"}},
                     one_microsecond_later)


def test_without_an_anchor_since_does_not_match_and_its_not_does() -> None:
    profile = only_profile(deliver([order("1", created_at=NOW - DAY)]))
    since = {"event": "order_placed", "op": "none", "since": {"event": "checkout_started"}}
    assert not holds(since, profile)
    assert holds({"not": since}, profile)


# --- orders that stop counting --------------------------------------------------------------------------------


def test_a_cancelled_order_leaves_the_kept_times_and_the_next_older_one_comes_back() -> None:
    placed = {days: order(f"o{days}", created_at=NOW - days * DAY) for days in (12, 10, 8, 6, 4)}
    with keeping(3):
        repository = CountingRepository()
        deliver(list(placed.values()), repository)
        assert kept_orders(only_profile(repository)) == [NOW - 4 * DAY, NOW - 6 * DAY, NOW - 8 * DAY]
        assert repository.timeline_reads == 0

        # The 10-day-old order is not kept (nor the first): cancelling it changes no kept time, reads nothing.
        deliver([cancelled(placed[10], NOW)], repository)
        assert kept_orders(only_profile(repository)) == [NOW - 4 * DAY, NOW - 6 * DAY, NOW - 8 * DAY]
        assert repository.timeline_reads == 0

        fresh = CountingRepository()
        deliver([*placed.values(), cancelled(placed[4], NOW)], fresh)
        profile = only_profile(fresh)
        # The latest left; the 10-day-old order, not kept until now, comes back from the timeline (one read).
        assert kept_orders(profile) == [NOW - 6 * DAY, NOW - 8 * DAY, NOW - 10 * DAY]
        assert fresh.timeline_reads == 1
        assert (profile.orders_count, profile.last_order_at) == (4, NOW - 6 * DAY)
        assert holds({"event": "order_placed", "op": "none", "within_days": 5}, profile)
        assert holds({"event": "order_placed", "op": "exactly", "count": 2, "within_days": 9}, profile)

        deliver([removed(placed[8], NOW)], fresh)
        profile = only_profile(fresh)
        assert kept_orders(profile) == [NOW - 6 * DAY, NOW - 10 * DAY, NOW - 12 * DAY]
        assert profile.orders_count == 3


def test_an_order_that_stops_counting_while_all_are_kept_reads_nothing() -> None:
    first, middle, last = (order(str(days), created_at=NOW - days * DAY) for days in (5, 3, 2))
    repository = CountingRepository()
    deliver([last, first, middle, cancelled(middle, NOW)], repository)
    profile = only_profile(repository)
    assert kept_orders(profile) == [NOW - 2 * DAY, NOW - 5 * DAY]
    assert repository.timeline_reads == 0
    # The first order stopping counts needs first_order_at from the timeline (the existing rare path): one read
    # gives both the date and the kept times.
    deliver([cancelled(first, NOW)], repository)
    profile = only_profile(repository)
    assert (kept_orders(profile), profile.first_order_at) == ([NOW - 2 * DAY], NOW - 2 * DAY)
    assert repository.timeline_reads == 1


# --- merges and late events -----------------------------------------------------------------------------------


def test_a_merge_keeps_the_latest_of_both_profiles() -> None:
    browsing = [activity(f"a{hours}", NOW - hours * timedelta(hours=1), email=None, anonymous_id=BROWSER)
                for hours in (1, 5, 9)]
    own = [activity(f"e{hours}", NOW - hours * timedelta(hours=1)) for hours in (3, 7)]
    identify = activity("id", NOW - timedelta(minutes=30), IDENTIFY, anonymous_id=BROWSER)
    with keeping(3):
        merged_last = only_profile(deliver([*browsing, *own, identify]))
        merged_first = only_profile(deliver([identify, *own, *browsing]))
    expected = [NOW - timedelta(hours=hours) for hours in (1, 3, 5)]
    assert kept_activity(merged_last, VIEWED) == kept_activity(merged_first, VIEWED) == expected
    assert kept_activity(merged_last, IDENTIFY) == [NOW - timedelta(minutes=30)]
    assert merged_last.activity_counts["product_viewed"] == 5


def test_a_late_older_event_counts_but_takes_no_kept_place() -> None:
    views = [activity(f"v{days}", NOW - days * DAY) for days in (1, 2, 3)]
    with keeping(3):
        repository = deliver(views)
        deliver([activity("late", NOW - 40 * DAY)], repository)
        profile = only_profile(repository)
        assert kept_activity(profile, VIEWED) == [NOW - DAY, NOW - 2 * DAY, NOW - 3 * DAY]
        assert profile.activity_counts["product_viewed"] == 4
        assert holds({"event": "product_viewed", "op": "exactly", "count": 4}, profile)  # the counter: all of them
        assert holds({"event": "product_viewed", "op": "exactly", "count": 2, "within_days": 2}, profile)

        deliver([activity("late_but_recent", NOW - DAY / 2)], repository)
        assert kept_activity(only_profile(repository), VIEWED) == [NOW - DAY / 2, NOW - DAY, NOW - 2 * DAY]


# --- the bound, at the real size ------------------------------------------------------------------------------


def test_at_the_bound_the_kept_times_decide_exactly() -> None:
    assert recent.RECENT_KEPT == 50
    # 55 views in the last 60 days, 5 of them in the last 10: 50 kept, 5 older ones known only by the counter.
    times = [NOW - timedelta(days=1 + i) for i in range(5)] + [NOW - timedelta(days=11 + i) for i in range(50)]
    profile = only_profile(deliver([activity(f"v{i}", at) for i, at in enumerate(times)]))
    assert len(kept_activity(profile, VIEWED)) == 50
    truth = Subject(profile=profile, events=tuple(("product_viewed", at) for at in times))
    for definition in (
        {"event": "product_viewed", "op": "at_least", "count": 50, "within_days": 60},
        {"event": "product_viewed", "op": "exactly", "count": 49, "within_days": 60},
        {"event": "product_viewed", "op": "at_most", "count": 49, "within_days": 60},
        {"event": "product_viewed", "op": "at_least", "count": 6, "within_days": 10},
        {"event": "product_viewed", "op": "exactly", "count": 5, "within_days": 10},
        {"event": "product_viewed", "op": "exactly", "count": 55},
        {"event": "product_viewed", "op": "at_least", "count": 56},
    ):
        parsed = parse_segment({"name": "s", "definition": definition}).definition
        assert matches(parsed, subject_of(profile), NOW) == matches(parsed, truth, NOW), definition
    assert holds({"event": "product_viewed", "op": "exactly", "count": 55}, profile)
    assert holds({"event": "product_viewed", "op": "exactly", "count": 5, "within_days": 10}, profile)


# --- profiles written before times were kept ------------------------------------------------------------------


def test_a_profile_without_kept_times_is_reconstructed_then_rebuilt_from_its_timeline() -> None:
    views = [activity(f"v{days}", NOW - days * DAY) for days in (20, 10)]
    placed = [order("1", created_at=NOW - 30 * DAY), order("2", created_at=NOW - 15 * DAY),
              order("3", created_at=NOW - 12 * DAY)]
    repository = CountingRepository()
    deliver([*views, *placed], repository)
    key = next(iter(repository.profiles))
    legacy = repository.profiles[key].model_copy(update={"recent": None})
    repository.profiles[key] = legacy

    # Until rebuilt: the old reconstruction, all views at the last browse, orders at the first and last.
    old = subject_of(legacy)
    assert old.occurrences("product_viewed") == [NOW - 10 * DAY] * 2
    assert old.occurrences("order_placed") == [NOW - 30 * DAY, NOW - 12 * DAY, NOW - 12 * DAY]

    # A customer update does not touch the kept times: still unknown, no timeline read.
    reads = repository.timeline_reads
    deliver([customer_record("c1", email=EMAIL, updated_at=NOW - DAY)], repository)
    assert only_profile(repository).recent is None
    assert repository.timeline_reads == reads
    deliver([activity("v1", NOW - DAY)], repository)
    rebuilt = only_profile(repository)
    assert repository.timeline_reads == reads + 1
    assert kept_activity(rebuilt, VIEWED) == [NOW - DAY, NOW - 10 * DAY, NOW - 20 * DAY]
    assert kept_orders(rebuilt) == [NOW - 12 * DAY, NOW - 15 * DAY, NOW - 30 * DAY]
    deliver([activity("v0", NOW - DAY / 2)], repository)
    assert repository.timeline_reads == reads + 1  # once only


def test_an_order_rebuilds_a_profile_without_kept_times() -> None:
    repository = deliver([activity("v1", NOW - 3 * DAY), order("1", created_at=NOW - 5 * DAY)])
    key = next(iter(repository.profiles))
    repository.profiles[key] = repository.profiles[key].model_copy(update={"recent": None})
    deliver([order("2", created_at=NOW - DAY)], repository)
    profile = only_profile(repository)
    assert kept_orders(profile) == [NOW - DAY, NOW - 5 * DAY]
    assert kept_activity(profile, VIEWED) == [NOW - 3 * DAY]


# --- properties: the kept-times arithmetic against a multiset model -------------------------------------------


@settings(max_examples=300, deadline=None)
@given(times=st.lists(st.integers(0, 20), max_size=12), kept=st.integers(1, 5), data=st.data())
def test_replacing_one_occurrence_matches_the_multiset_or_asks_for_a_rebuild(times: list[int], kept: int,
                                                                              data: st.DataObject) -> None:
    old = data.draw(st.none() | st.sampled_from(times)) if times else None
    new = data.draw(st.none() | st.integers(0, 20))
    after = list(times)
    if old is not None:
        after.remove(old)
    if new is not None:
        after.append(new)
    with keeping(kept):
        result, rebuild = replaced(latest(times), len(times), old, new)
        assert rebuild or result == latest(after)
        # A rebuild is asked for only when a kept time left while others were not kept.
        if rebuild:
            assert old is not None and len(times) > kept and old >= latest(times)[-1]
        assert latest(latest(times) + latest(after)) == latest(times + after)  # a merge of kept lists
        assert unpacked(packed(latest(times))) == latest(times)


# --- properties: ingestion against the raw history ------------------------------------------------------------

KINDS = (VIEWED, CHECKOUT, PAGE)
BASE = NOW - 90 * DAY


@dataclass(frozen=True)
class Stream:
    """One shopper's deliveries (a browser and an email, linked by an identify), and what really happened."""

    events: tuple[CanonicalEvent, ...]
    activity: tuple[tuple[str, datetime], ...]  # every activity, once
    orders: tuple[datetime, ...]  # placement times of the orders that count in the end


def _moment(draw: st.DrawFn) -> datetime:
    # A few shared instants make ties common; some times carry a fraction of a second.
    minutes = draw(st.sampled_from((0, 60, 1440)) | st.integers(0, 90 * 1440))
    return BASE + timedelta(minutes=minutes, microseconds=draw(st.sampled_from((0, 0, 1, 250_000))))


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    events: list[CanonicalEvent] = []
    happened: list[tuple[str, datetime]] = []
    for index in range(draw(st.integers(0, 14))):
        kind, at = draw(st.sampled_from(KINDS)), _moment(draw)
        who = draw(st.sampled_from(("browser", "email", "both")))
        events.append(activity(f"a{index}", at, kind, email=None if who == "browser" else EMAIL,
                               anonymous_id=None if who == "email" else BROWSER))
        happened.append((kind.value, at))
    identify_at = _moment(draw)
    events.append(activity("identify", identify_at, IDENTIFY, anonymous_id=BROWSER))
    happened.append((IDENTIFY.value, identify_at))
    counted: list[datetime] = []
    for index in range(draw(st.integers(0, 7))):
        created = _moment(draw)
        latest_version = order(f"o{index}", created_at=created).model_copy(
            update={"anonymous_id": BROWSER if draw(st.booleans()) else None})
        events.append(latest_version)
        if draw(st.integers(0, 4)) == 0:  # an edit that moves the placement time
            created = _moment(draw)
            latest_version = latest_version.model_copy(update={
                "created_at": created, "updated_at": latest_version.updated_at + timedelta(minutes=1),
                "version": version_stamp(latest_version.updated_at + timedelta(minutes=1), None)})
            events.append(latest_version)
        fate = draw(st.sampled_from(("counts", "counts", "cancelled", "removed")))
        if fate == "cancelled":
            events.append(cancelled(latest_version, latest_version.updated_at + timedelta(hours=1)))
        elif fate == "removed":
            events.append(removed(latest_version, created + DAY))
        else:
            counted.append(created)
    return Stream(tuple(events), tuple(happened), tuple(counted))


@st.composite
def event_conditions(draw: st.DrawFn, kept: int) -> EventCondition:
    """Any event condition the language accepts while profiles keep ``kept`` times (build it inside keeping)."""
    event = draw(st.sampled_from([*(kind.value for kind in (*KINDS, IDENTIFY)), "order_placed"]))
    op = draw(st.sampled_from(list(EventOp)))
    within_days = draw(st.none() | st.integers(1, 100))
    anchor = draw(st.none() | st.sampled_from([k for k in ("checkout_started", "order_placed", "identify")
                                                if k != event]))
    bounded = within_days is not None or anchor is not None
    if op is EventOp.NONE:
        count = None
    elif op is EventOp.AT_LEAST:
        count = draw(st.integers(1, kept if bounded else 20))
    else:
        count = draw(st.integers(0, kept - 1 if bounded else 20))
    return EventCondition(event=event, op=op, count=count, within_days=within_days,
                          since=Since(event=anchor) if anchor else None)


def _arrival(data: st.DataObject, stream: Stream) -> list[CanonicalEvent]:
    every = list(stream.events)
    duplicates = data.draw(st.lists(st.sampled_from(every), max_size=5), label="duplicates")
    return data.draw(st.permutations(every + duplicates), label="arrival")


@settings(max_examples=150, deadline=None)
@given(data=st.data(), stream=streams(), kept=st.sampled_from((1, 2, 3, 5, 50)))
def test_any_arrival_order_duplicates_and_merges_keep_the_latest_of_the_truth(data: st.DataObject, stream: Stream,
                                                                              kept: int) -> None:
    with keeping(kept):
        in_order = only_profile(deliver(list(stream.events)))
        shuffled = only_profile(deliver(_arrival(data, stream)))

        assert shuffled.recent == in_order.recent
        assert shuffled.recent is not None
        for kind in {kind for kind, _ in stream.activity}:
            assert shuffled.recent.activity_times()[kind] == latest(
                micros(at) for k, at in stream.activity if k == kind)
        assert shuffled.recent.order_times() == latest(micros(at) for at in stream.orders)
        assert shuffled.orders_count == len(stream.orders)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), stream=streams(), kept=st.sampled_from((1, 2, 3, 5)),
       later=st.sampled_from((timedelta(0), timedelta(microseconds=1), DAY)) | st.integers(0, 120 * 1440).map(
           lambda minutes: timedelta(minutes=minutes)))
def test_event_conditions_on_the_ingested_profile_agree_with_the_whole_history(
        data: st.DataObject, stream: Stream, kept: int, later: timedelta) -> None:
    with keeping(kept):
        profile = only_profile(deliver(_arrival(data, stream)))
        truth = Subject(profile=profile, events=stream.activity, orders=stream.orders)
        # Evaluated at the present: at or after every occurrence (see docs/segments.md for a past now).
        now = max((*(at for _, at in stream.activity), *stream.orders)) + later
        for condition in data.draw(st.lists(event_conditions(kept), min_size=1, max_size=6), label="conditions"):
            assert matches(condition, subject_of(profile), now) == matches(condition, truth, now), condition


@pytest.mark.parametrize("kept", [1, 3])
def test_the_bound_follows_what_profiles_keep(kept: int) -> None:
    with keeping(kept):
        parse_segment({"name": "s", "definition": {"event": "page_viewed", "op": "at_least", "count": kept,
                                                   "within_days": 3}})
        with pytest.raises(ValueError, match=f"at most {kept - 1} with within_days or since"):
            parse_segment({"name": "s", "definition": {"event": "page_viewed", "op": "exactly", "count": kept,
                                                       "since": {"event": "identify"}}})
