"""One contract for the segment store and the workspace scan: the in-memory fakes and the DynamoDB adapters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from itertools import islice

import pytest
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.segments import DynamoSegmentStore
from crm.models.profile import Profile
from crm.models.segments import BuiltinSettings, GrowthPoint, HeldSegments, MembershipChange, SegmentRecord
from crm.ports import Change, ConcurrentUpdate, ProfileRepository, SegmentStore
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.fakes import FakeProfileRepository, FakeSegmentStore

WS = "ws_a"


@dataclass
class Backend:
    segments: SegmentStore
    profiles: ProfileRepository


@pytest.fixture(params=["fake", pytest.param("dynamodb", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "fake":
        profiles = FakeProfileRepository()
        return Backend(FakeSegmentStore(profiles), profiles)
    provisioned: Provisioned = request.getfixturevalue("provisioned")
    table = provisioned.outputs["TableName"]
    return Backend(DynamoSegmentStore(table), DynamoProfileRepository(table))


def record(segment_id: str = "seg_1", workspace_id: str = WS, version: int = 1) -> SegmentRecord:
    return SegmentRecord(workspace_id=workspace_id, segment_id=segment_id, name="Buyers",
                         definition='{"name":"Buyers","definition":{"field":"orders_count","op":"gte","value":1}}',
                         created_at=NOW, updated_at=NOW, version=version)


def test_a_record_round_trips_and_is_listed_in_its_workspace_only(backend: Backend) -> None:
    backend.segments.put(record("seg_2"), None)
    backend.segments.put(record("seg_1"), None)
    backend.segments.put(record("seg_9", workspace_id="ws_b"), None)

    assert backend.segments.get(WS, "seg_1") == record("seg_1")
    assert backend.segments.get("ws_b", "seg_1") is None
    assert [r.segment_id for r in backend.segments.list_segments(WS)] == ["seg_1", "seg_2"]


def test_puts_are_guarded_by_version(backend: Backend) -> None:
    backend.segments.put(record(), None)
    with pytest.raises(ConcurrentUpdate):
        backend.segments.put(record(), None)
    with pytest.raises(ConcurrentUpdate):
        backend.segments.put(record(version=3), 2)
    backend.segments.put(record(version=2), 1)
    held = backend.segments.get(WS, "seg_1")
    assert held is not None and held.version == 2


def test_computation_is_recorded_for_the_version_read(backend: Backend) -> None:
    backend.segments.put(record(), None)
    growth = (GrowthPoint(at=NOW, size=3),)
    backend.segments.record_computation(WS, "seg_1", NOW, growth, 1, size=0)
    held = backend.segments.get(WS, "seg_1")
    assert held is not None and (held.last_computed_at, held.growth, held.version) == (NOW, growth, 1)
    with pytest.raises(ConcurrentUpdate):
        backend.segments.record_computation(WS, "seg_1", NOW, growth, 7, size=0)


def test_a_builtin_computation_creates_its_record_and_lists_it(backend: Backend) -> None:
    backend.segments.record_computation(WS, "builtin:vip", NOW, (GrowthPoint(at=NOW, size=2),), None, size=2)
    backend.segments.record_computation(WS, "builtin:vip", NOW + timedelta(days=1), (), None, size=2)
    held = backend.segments.get(WS, "builtin:vip")
    assert held is not None and (held.last_computed_at, held.definition, held.created_at) == (
        NOW + timedelta(days=1), None, NOW)
    assert [r.segment_id for r in backend.segments.list_segments(WS)] == ["builtin:vip"]


def _profile(workspace_id: str, profile_id: str, merged_into: str | None = None, revision: int = 1) -> Profile:
    return Profile(workspace_id=workspace_id, profile_id=profile_id, created_at=NOW, updated_at=NOW,
                   merged_into=merged_into, revision=revision)


def _save(backend: Backend, *profiles: Profile) -> None:
    for item in profiles:
        backend.profiles.commit(Change(workspace_id=item.workspace_id, profiles=((item, None),)))


def _held(backend: Backend, profile_id: str) -> HeldSegments:
    found = backend.segments.profile_with_segments(WS, profile_id)
    assert found is not None
    return found[1]


def _change(profile_id: str, entered: tuple[str, ...], exited: tuple[str, ...], held: frozenset[str],
            expected: int, revision: int = 1) -> MembershipChange:
    return MembershipChange(workspace_id=WS, profile_id=profile_id, segment_ids=(held | set(entered)) - set(exited),
                            entered=entered, exited=exited, expected_version=expected, revision=revision, at=NOW)


def test_membership_changes_move_members_and_the_profiles_set_not_sizes(backend: Backend) -> None:
    backend.segments.put(record(), None)
    _save(backend, *(_profile(WS, f"p{i:03d}") for i in range(30)))
    for i in range(30):
        backend.segments.apply_membership(_change(f"p{i:03d}", ("seg_1", "builtin:vip"), (), frozenset(), 0))
    for pid in ("p000", "p005"):
        backend.segments.apply_membership(_change(pid, (), ("seg_1",), frozenset({"seg_1", "builtin:vip"}), 1))
    kept = [f"p{i:03d}" for i in range(30) if i not in (0, 5)]

    first = backend.segments.members(WS, "seg_1", None, 10)
    assert [m.profile_id for m in first] == kept[:10] and first[0].entered_at == NOW
    assert [m.profile_id for m in backend.segments.members(WS, "seg_1", kept[9], 100)] == kept[10:]
    assert backend.segments.members("ws_b", "seg_1", None, 10) == []
    assert _held(backend, "p005") == HeldSegments(segment_ids=frozenset({"builtin:vip"}), version=2,
                                                            revision=1)
    assert _held(backend, "p001") == HeldSegments(segment_ids=frozenset({"seg_1", "builtin:vip"}), version=1,
                                                  revision=1)
    # Sizes are what a run counted (record_computation), not moved by each change.
    assert backend.segments.get(WS, "seg_1").size == 0  # type: ignore[union-attr]
    backend.segments.record_computation(WS, "seg_1", NOW, (), 1, size=28)
    assert backend.segments.get(WS, "seg_1").size == 28  # type: ignore[union-attr]

    backend.segments.delete(WS, "seg_1")
    assert backend.segments.get(WS, "seg_1") is None
    assert backend.segments.members(WS, "seg_1", None, 10) == []
    assert [r.segment_id for r in backend.segments.list_segments(WS)] == []


def test_a_membership_change_is_guarded(backend: Backend) -> None:
    backend.segments.put(record(), None)
    _save(backend, _profile(WS, "p1"))
    backend.segments.apply_membership(_change("p1", ("seg_1",), (), frozenset(), 0))
    with pytest.raises(ConcurrentUpdate):  # decided on a set that is no longer there
        backend.segments.apply_membership(_change("p1", ("builtin:vip",), ("seg_1",), frozenset(), 0))
    # The members it touched agree with the set that is there, whatever it wrote before it lost.
    assert backend.segments.members(WS, "builtin:vip", None, 10) == []
    assert [m.profile_id for m in backend.segments.members(WS, "seg_1", None, 10)] == ["p1"]
    backend.segments.delete(WS, "seg_1")
    _save(backend, _profile(WS, "p2"))
    with pytest.raises(ConcurrentUpdate):  # a deleted custom segment does not come back
        backend.segments.apply_membership(_change("p2", ("seg_1",), (), frozenset(), 0))
    assert backend.segments.get(WS, "seg_1") is None
    assert backend.segments.members(WS, "seg_1", None, 10) == [] and _held(backend, "p2") == HeldSegments()
    # Leaving it is no harm: its id goes from the set.
    backend.segments.apply_membership(_change("p1", (), ("seg_1",), frozenset({"seg_1"}), 1))
    assert _held(backend, "p1").segment_ids == set()


def test_changes_written_together_land_but_the_stale_one(backend: Backend) -> None:
    backend.segments.put(record(), None)
    _save(backend, *(_profile(WS, f"p{i}") for i in range(3)))
    backend.segments.apply_membership(_change("p1", ("seg_1",), (), frozenset(), 0))
    stale = _change("p1", ("builtin:vip",), (), frozenset(), 0)  # p1's set is at version 1 now
    lost = backend.segments.apply_memberships([_change("p0", ("seg_1",), (), frozenset(), 0), stale,
                                               _change("p2", ("builtin:vip",), (), frozenset(), 0)])
    assert lost == [stale]
    assert [m.profile_id for m in backend.segments.members(WS, "seg_1", None, 10)] == ["p0", "p1"]
    assert [m.profile_id for m in backend.segments.members(WS, "builtin:vip", None, 10)] == ["p2"]
    assert _held(backend, "p1") == HeldSegments(segment_ids=frozenset({"seg_1"}), version=1, revision=1)


def test_a_profile_is_read_with_its_set_of_segments(backend: Backend) -> None:
    backend.segments.put(record(), None)
    _save(backend, _profile(WS, "p1", revision=4), _profile(WS, "p2"))
    backend.segments.apply_membership(_change("p1", ("seg_1",), (), frozenset(), 0, revision=4))
    found = backend.segments.profile_with_segments(WS, "p1")
    assert found is not None and found[0].revision == 4
    assert found[1] == HeldSegments(segment_ids=frozenset({"seg_1"}), version=1, revision=4)
    assert backend.segments.profile_with_segments(WS, "p2") == (_profile(WS, "p2"), HeldSegments())
    assert backend.segments.profile_with_segments(WS, "erased") is None
    assert backend.segments.profile_with_segments("ws_b", "p1") is None


def test_a_change_of_more_than_one_transaction_lands_whole(backend: Backend) -> None:
    ids = [f"seg_{i:03d}" for i in range(120)]
    for sid in ids:
        backend.segments.put(record(sid), None)
    _save(backend, _profile(WS, "p1"))
    backend.segments.apply_membership(_change("p1", tuple(ids), (), frozenset(), 0))
    assert _held(backend, "p1").segment_ids == set(ids)
    assert all(backend.segments.members(WS, sid, None, 5)[0].profile_id == "p1" for sid in ids)
    version = _held(backend, "p1").version
    backend.segments.apply_membership(_change("p1", (), tuple(ids[:60]), frozenset(ids), version))
    assert _held(backend, "p1").segment_ids == set(ids[60:])
    assert {sid for sid in ids if backend.segments.members(WS, sid, None, 5)} == set(ids[60:])


def test_forgetting_an_erased_profile_is_idempotent(backend: Backend) -> None:
    backend.segments.put(record(), None)
    _save(backend, _profile(WS, "p1"), _profile(WS, "p2"))
    for pid in ("p1", "p2"):
        backend.segments.apply_membership(_change(pid, ("seg_1",), (), frozenset(), 0))
    for _ in range(2):
        backend.segments.forget_profile(WS, "p1", ["seg_1"], NOW)
    assert [m.profile_id for m in backend.segments.members(WS, "seg_1", None, 10)] == ["p2"]


def test_the_membership_scan_pairs_every_profile_with_its_set_and_shares_partition_it(backend: Backend) -> None:
    backend.segments.put(record(), None)
    _save(backend, *(_profile(WS, f"p{i}") for i in range(12)), _profile(WS, "gone", "p1"), _profile("ws_b", "x"))
    backend.segments.apply_membership(_change("p3", ("seg_1",), (), frozenset(), 0))

    everyone = {p.profile_id: held for p, held in backend.segments.profiles_with_segments(WS)}
    assert sorted(everyone) == sorted([f"p{i}" for i in range(12)] + ["gone"])
    assert everyone["p3"].segment_ids == {"seg_1"} and everyone["p4"] == HeldSegments()
    shared = [p.profile_id for share in range(3) for p, _ in backend.segments.profiles_with_segments(WS, share, 3)]
    assert sorted(shared) == sorted(everyone)


def test_settings_are_the_defaults_until_stored_then_replaced_whole_per_workspace(backend: Backend) -> None:
    assert backend.segments.settings(WS) == BuiltinSettings()
    chosen = BuiltinSettings(vip_top_percent=25, churn_after_days=90, window_shopper_min_views=7,
                             new_customer_days=14, cart_abandon_days=3)
    backend.segments.put_settings(WS, chosen)
    assert backend.segments.settings(WS) == chosen
    assert backend.segments.settings("ws_b") == BuiltinSettings()

    backend.segments.put_settings(WS, BuiltinSettings(churn_after_days=365))
    assert backend.segments.settings(WS) == BuiltinSettings(churn_after_days=365)


def test_settings_are_not_a_segment_and_leave_the_segments_alone(backend: Backend) -> None:
    backend.segments.put(record(), None)
    backend.segments.put_settings(WS, BuiltinSettings(vip_top_percent=20))
    assert [r.segment_id for r in backend.segments.list_segments(WS)] == ["seg_1"]
    backend.segments.delete(WS, "seg_1")
    assert backend.segments.list_segments(WS) == []
    assert backend.segments.settings(WS) == BuiltinSettings(vip_top_percent=20)


def test_the_workspace_scan_skips_merged_profiles_and_shares_partition_it(backend: Backend) -> None:
    def profile(workspace_id: str, profile_id: str, merged_into: str | None = None) -> Profile:
        return Profile(workspace_id=workspace_id, profile_id=profile_id, created_at=NOW, updated_at=NOW,
                       merged_into=merged_into)

    held = [profile(WS, f"p{i}") for i in range(12)] + [profile(WS, "gone", "p1"), profile("ws_b", "other")]
    for item in held:
        backend.profiles.commit(Change(workspace_id=item.workspace_id, profiles=((item, None),)))

    everyone = sorted(p.profile_id for p in backend.profiles.workspace_profiles(WS))
    assert everyone == sorted(f"p{i}" for i in range(12))
    shared = [p.profile_id for share in range(3) for p in backend.profiles.workspace_profiles(WS, share, 3)]
    assert sorted(shared) == everyone
    assert sorted(backend.profiles.profiles_by_id(WS, ["p1", "gone", "missing", "other"])) == ["p1"]


def test_a_share_read_page_by_page_resumes_where_any_page_stopped(backend: Backend,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that stops after any page and hands its ``resume`` on reads every profile of the share once."""
    monkeypatch.setattr("crm.adapters.workspace_index.INDEX_PAGE", 3)
    if isinstance(backend.segments, FakeSegmentStore):
        backend.segments.page_size = 3
    _save(backend, *(_profile(WS, f"p{i:02d}") for i in range(20)), _profile("ws_b", "x"))
    for share, shares in ((0, 1), (1, 4)):
        whole = sorted(p.profile_id for p, _ in backend.segments.profiles_with_segments(WS, share, shares))
        for stop_after in (1, 2):
            read: list[str] = []
            after: str | None = None
            hops = 0
            while True:
                hops += 1
                pages = backend.segments.profile_pages(WS, share, shares, after)
                for page in islice(pages, stop_after):
                    read += [p.profile_id for p, _ in page.profiles]
                    after = page.resume
                    if after is None:
                        break
                if after is None:
                    break
            assert sorted(read) == whole
            assert hops > 1 or len(whole) <= 3 * stop_after
