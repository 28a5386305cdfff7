"""The segment service over the in-memory fakes: CRUD, built-ins protected, references, runs' diffs, members.

(Exports: test_segment_exports.py.)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm.models.profile import Profile
from crm.models.segment_runs import RunPhase, SegmentRun
from crm.ports import ConcurrentUpdate
from crm.segments import service
from crm.segments.definition import parse_segment
from crm.segments.runs import start_run

from tests.builders import NOW
from tests.fakes import FakeProfileRepository, FakeSegmentRuns, FakeSegmentStore, FakeTaskQueue

WS = "ws_a"
OTHER = "ws_b"
DAY = timedelta(days=1)


def doc(definition: dict[str, Any], name: str = "Segment") -> Any:
    return parse_segment({"name": name, "definition": definition})


BUYERS = {"field": "orders_count", "op": "gte", "value": 1}
REPEAT = {"field": "orders_count", "op": "gte", "value": 2}


def shopper(repo: FakeProfileRepository, profile_id: str, orders: int = 0, workspace_id: str = WS,
            **extra: Any) -> Profile:
    profile = Profile(workspace_id=workspace_id, profile_id=profile_id, created_at=NOW - 100 * DAY,
                      updated_at=NOW - DAY, orders_count=orders,
                      total_spent=Decimal("10.00") * orders,
                      first_order_at=NOW - 50 * DAY if orders else None,
                      last_order_at=NOW - 5 * DAY if orders else None, **extra)
    repo.profiles[(workspace_id, profile_id)] = profile
    return profile


@pytest.fixture
def repo() -> FakeProfileRepository:
    return FakeProfileRepository()


@pytest.fixture
def store(repo: FakeProfileRepository) -> FakeSegmentStore:
    return FakeSegmentStore(repo)


def recompute(store: FakeSegmentStore, at: datetime, shares: int = 1) -> SegmentRun:
    """A whole recomputation run of the workspace at ``at``, its tasks carried out as the workers would."""
    runs, tasks = FakeSegmentRuns(), FakeTaskQueue()
    started = start_run(runs, tasks, WS, at, shares, "test")
    tasks.drain(store, runs, lambda: at)
    done = runs.get(WS, started.run_id)
    assert done is not None
    return done


def test_create_get_replace_delete(store: FakeSegmentStore) -> None:
    record = service.create(store, WS, doc(BUYERS, "Buyers"), NOW)

    assert record.segment_id.startswith("seg_") and len(record.segment_id) == 20
    view = service.segment_view(store, WS, record.segment_id)
    assert (view["name"], view["builtin"], view["version"], view["size"]) == ("Buyers", False, 1, 0)
    assert view["definition"] == {"field": "orders_count", "op": "gte", "value": 1}

    service.replace(store, WS, record.segment_id, doc(REPEAT, "Repeat"), NOW + DAY)
    view = service.segment_view(store, WS, record.segment_id)
    assert (view["name"], view["version"], view["definition"]["value"]) == ("Repeat", 2, 2)

    service.delete(store, WS, record.segment_id)
    with pytest.raises(service.SegmentNotFound):
        service.segment_view(store, WS, record.segment_id)


def test_a_stored_definition_round_trips_money_and_groups(store: FakeSegmentStore) -> None:
    definition = {"all": [{"field": "lifetime_value", "op": "gt", "value": "99.95"},
                          {"not": {"field": "consent.email", "op": "eq", "value": "subscribed"}}]}
    record = service.create(store, WS, doc(definition), NOW)
    assert service.segment_view(store, WS, record.segment_id)["definition"] == {
        "all": [{"field": "lifetime_value", "op": "gt", "value": "99.95"},
                {"not": {"field": "consent.email", "op": "eq", "value": "subscribed"}}]}


def test_another_workspace_does_not_see_the_segment(store: FakeSegmentStore) -> None:
    record = service.create(store, WS, doc(BUYERS), NOW)

    for call in (lambda: service.segment_view(store, OTHER, record.segment_id),
                 lambda: service.replace(store, OTHER, record.segment_id, doc(REPEAT), NOW),
                 lambda: service.delete(store, OTHER, record.segment_id)):
        with pytest.raises(service.SegmentNotFound):
            call()
    assert record.segment_id not in {s["id"] for s in service.list_segments(store, OTHER)}
    assert record.segment_id in {s["id"] for s in service.list_segments(store, WS)}


def test_builtins_are_listed_and_cannot_be_replaced_or_deleted(store: FakeSegmentStore) -> None:
    listed = {s["id"]: s for s in service.list_segments(store, WS)}
    assert listed["builtin:vip"] == {"id": "builtin:vip", "name": "VIP", "builtin": True, "size": None,
                                     "last_computed_at": None}
    with pytest.raises(service.SegmentConflict, match="built-in"):
        service.replace(store, WS, "builtin:vip", doc(BUYERS), NOW)
    with pytest.raises(service.SegmentConflict, match="built-in"):
        service.delete(store, WS, "builtin:vip")


def test_unknown_references_and_cycles_conflict_with_the_workspace(store: FakeSegmentStore) -> None:
    with pytest.raises(service.SegmentConflict, match="seg_missing"):
        service.create(store, WS, doc({"segment": "seg_missing", "op": "member"}), NOW)
    a = service.create(store, WS, doc({"segment": "builtin:vip", "op": "member"}), NOW)
    b = service.create(store, WS, doc({"segment": a.segment_id, "op": "not_member"}), NOW)

    with pytest.raises(service.SegmentConflict, match="cycle"):
        service.replace(store, WS, a.segment_id, doc({"segment": b.segment_id, "op": "member"}), NOW)
    with pytest.raises(service.SegmentConflict, match="cycle"):
        service.replace(store, WS, a.segment_id, doc({"segment": a.segment_id, "op": "member"}), NOW)
    # Another workspace's segment is as unknown as a missing one.
    with pytest.raises(service.SegmentConflict, match="does not exist"):
        service.create(store, OTHER, doc({"segment": a.segment_id, "op": "member"}), NOW)
    with pytest.raises(service.SegmentConflict, match=b.segment_id):
        service.delete(store, WS, a.segment_id)


def test_a_replace_racing_another_is_a_conflict(store: FakeSegmentStore) -> None:
    record = service.create(store, WS, doc(BUYERS), NOW)
    with pytest.raises(ConcurrentUpdate):
        store.put(record.model_copy(update={"version": 2}), 5)


def test_recompute_writes_only_the_differences(store: FakeSegmentStore, repo: FakeProfileRepository) -> None:
    for pid, orders in (("p1", 0), ("p2", 1), ("p3", 2), ("p4", 3)):
        shopper(repo, pid, orders)
    shopper(repo, "p9", 5, workspace_id=OTHER)
    shopper(repo, "p5", 4, merged_into="p4")
    record = service.create(store, WS, doc(BUYERS), NOW)

    first = recompute(store, NOW)
    assert (first.phase, first.profiles) == (RunPhase.DONE, 4)
    assert [m.profile_id for m in store.members(WS, record.segment_id, None, 10)] == ["p2", "p3", "p4"]
    writes = store.member_writes

    shopper(repo, "p2", 0)  # refunded and cancelled: no longer a buyer
    shopper(repo, "p1", 1)
    again = recompute(store, NOW + DAY)
    assert again.entered and again.exited
    assert store.member_writes - writes == again.entered + again.exited
    unchanged = recompute(store, NOW + DAY)
    assert (unchanged.entered, unchanged.exited, store.member_writes - writes) == (0, 0, again.entered + again.exited)
    members = store.members(WS, record.segment_id, None, 10)
    assert [(m.profile_id, m.entered_at) for m in members] == [("p1", NOW + DAY), ("p3", NOW), ("p4", NOW)]

    view = service.segment_view(store, WS, record.segment_id)
    assert view["size"] == 3 and view["last_computed_at"] == (NOW + DAY).isoformat()
    assert view["growth"] == [{"at": NOW.isoformat(), "size": 3}, {"at": (NOW + DAY).isoformat(), "size": 3}]


def test_growth_keeps_the_last_30(store: FakeSegmentStore, repo: FakeProfileRepository) -> None:
    shopper(repo, "p1", 1)
    record = service.create(store, WS, doc(BUYERS), NOW)
    for day in range(35):
        recompute(store, NOW + day * DAY)
    growth = service.segment_view(store, WS, record.segment_id)["growth"]
    assert len(growth) == 30 and growth[-1]["at"] == (NOW + 34 * DAY).isoformat()


def test_recompute_of_builtins_and_references(store: FakeSegmentStore, repo: FakeProfileRepository) -> None:
    for pid, orders in (("p1", 1), ("p2", 2), ("p3", 3)):
        shopper(repo, pid, orders)
    not_vip = service.create(store, WS, doc({"all": [{"segment": "builtin:repeat_buyers", "op": "member"},
                                                     {"segment": "builtin:vip", "op": "not_member"}]}), NOW)
    recompute(store, NOW)
    listed = {s["id"]: s for s in service.list_segments(store, WS)}
    assert listed["builtin:repeat_buyers"]["size"] == 2
    assert listed["builtin:vip"]["size"] == 1  # ceil(10 % of 3 buyers)
    assert [m.profile_id for m in store.members(WS, not_vip.segment_id, None, 10)] == ["p2"]


def test_event_conditions_use_the_profile_counts(store: FakeSegmentStore, repo: FakeProfileRepository) -> None:
    shopper(repo, "p1", activity_counts={"product_viewed": 3})
    shopper(repo, "p2", activity_counts={"product_viewed": 2})
    draft = doc({"event": "product_viewed", "op": "at_least", "count": 3})
    runs = FakeSegmentRuns()
    whole = {"complete": True, "fraction_read": 1.0}
    assert service.preview(store, runs, WS, draft, NOW, lambda: NOW) == {
        "size": 1, "sample": ["p1"], "profiles_read": 2, **whole}
    orders = doc({"event": "order_placed", "op": "exactly", "count": 2})
    shopper(repo, "p3", 2)
    assert service.preview(store, runs, WS, orders, NOW, lambda: NOW) == {
        "size": 1, "sample": ["p3"], "profiles_read": 3, **whole}


def test_preview_samples_at_most_20_and_saves_nothing(store: FakeSegmentStore, repo: FakeProfileRepository) -> None:
    for index in range(25):
        shopper(repo, f"p{index:02d}", 1)
    found = service.preview(store, FakeSegmentRuns(), WS, doc(BUYERS), NOW, lambda: NOW)
    assert found["size"] == 25 and len(found["sample"]) == 20 and found["complete"]
    assert store.records == {} and store.memberships == {}


def test_a_preview_of_a_large_workspace_stops_at_its_profile_bound_and_says_it_estimated(
        store: FakeSegmentStore, repo: FakeProfileRepository) -> None:
    for index in range(400):
        shopper(repo, f"p{index:03d}", index % 2)  # every other profile a buyer
    found = service.preview(store, FakeSegmentRuns(), WS, doc(BUYERS), NOW, lambda: NOW, most_profiles=100)
    assert found["complete"] is False and found["profiles_read"] == 100
    assert 0 < found["fraction_read"] < 1
    # Scaled from the parts read whole (each an even, random part): near the 200 buyers, not the ~50 seen.
    assert 120 <= found["size"] <= 280
    everything = service.preview(store, FakeSegmentRuns(), WS, doc(BUYERS), NOW, lambda: NOW)
    assert everything == {**everything, "size": 200, "complete": True, "profiles_read": 400, "fraction_read": 1.0}


def test_a_preview_stops_at_its_time_bound(store: FakeSegmentStore, repo: FakeProfileRepository) -> None:
    for index in range(100):
        shopper(repo, f"p{index:03d}", 1)
    ticks = iter(NOW + timedelta(seconds=s) for s in range(10_000))
    found = service.preview(store, FakeSegmentRuns(), WS, doc(BUYERS), NOW, lambda: next(ticks),
                            time_limit=timedelta(seconds=30))
    assert found["complete"] is False and 0 < found["profiles_read"] < 30
    assert found["size"] >= found["profiles_read"] * found["fraction_read"]


def test_scan_shares_hold_every_profile_once(repo: FakeProfileRepository) -> None:
    for index in range(40):
        shopper(repo, f"p{index}", 1)
    shares = [p.profile_id for s in range(4) for p in repo.workspace_profiles(WS, s, 4)]
    assert sorted(shares) == sorted(p.profile_id for p in repo.workspace_profiles(WS))
    assert len(shares) == 40


def test_members_page_by_cursor(store: FakeSegmentStore, repo: FakeProfileRepository) -> None:
    for index in range(5):
        shopper(repo, f"p{index}", 1, email=f"s{index}@example.com")
    record = service.create(store, WS, doc(BUYERS), NOW)
    recompute(store, NOW)

    seen: list[str] = []
    cursor = None
    while True:
        page = service.members_page(store, repo, WS, record.segment_id, 2, cursor)
        seen += [m["profile_id"] for m in page["members"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"p{i}" for i in range(5)]
    assert page["members"][0]["email"] == "s4@example.com"
    with pytest.raises(ValueError, match="limit"):
        service.members_page(store, repo, WS, record.segment_id, 0, None)
    with pytest.raises(ValueError, match="cursor"):
        service.members_page(store, repo, WS, record.segment_id, 2, "!!!")
