"""One contract for the segment store and the workspace scan: the in-memory fakes and the DynamoDB adapters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from crm.adapters.dynamodb import DynamoProfileRepository, DynamoSegmentStore
from crm.models.profile import Profile
from crm.models.segments import BuiltinSettings, GrowthPoint, Member, SegmentRecord
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
        return Backend(FakeSegmentStore(), FakeProfileRepository())
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
    backend.segments.record_computation(WS, "seg_1", 3, NOW, growth, 1)
    held = backend.segments.get(WS, "seg_1")
    assert held is not None and (held.size, held.last_computed_at, held.growth, held.version) == (3, NOW, growth, 1)
    with pytest.raises(ConcurrentUpdate):
        backend.segments.record_computation(WS, "seg_1", 4, NOW, growth, 7)


def test_a_builtin_computation_creates_its_record_and_lists_it(backend: Backend) -> None:
    backend.segments.record_computation(WS, "builtin:vip", 2, NOW, (GrowthPoint(at=NOW, size=2),), None)
    backend.segments.record_computation(WS, "builtin:vip", 5, NOW + timedelta(days=1), (), None)
    held = backend.segments.get(WS, "builtin:vip")
    assert held is not None and (held.size, held.definition, held.created_at) == (5, None, NOW)
    assert [r.segment_id for r in backend.segments.list_segments(WS)] == ["builtin:vip"]


def test_members_page_by_profile_id_and_go_with_the_segment(backend: Backend) -> None:
    backend.segments.put(record(), None)
    ids = [f"p{i:03d}" for i in range(30)]
    backend.segments.change_members(WS, "seg_1", [Member(profile_id=pid, entered_at=NOW) for pid in ids], [])
    backend.segments.change_members(WS, "seg_1", [], ["p000", "p005", "absent"])
    kept = [pid for pid in ids if pid not in ("p000", "p005")]

    first = backend.segments.members(WS, "seg_1", None, 10)
    assert [m.profile_id for m in first] == kept[:10] and first[0].entered_at == NOW
    assert [m.profile_id for m in backend.segments.members(WS, "seg_1", kept[9], 100)] == kept[10:]
    assert backend.segments.members("ws_b", "seg_1", None, 10) == []

    backend.segments.delete(WS, "seg_1")
    assert backend.segments.get(WS, "seg_1") is None
    assert backend.segments.members(WS, "seg_1", None, 10) == []
    assert backend.segments.list_segments(WS) == []


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
