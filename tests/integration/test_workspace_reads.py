"""Per-workspace reads (issue 9, finding 11): a segment run and a preview read the workspace's own profile items
(and each profile's set of segments) through the workspace index, never a Scan of the table, and never an item
of another workspace, a timeline, an order, an identity or a member item. Every item DynamoDB reads is metered
from the answers themselves: a Query's or Scan's ScannedCount (read, filtered out or not) and BatchGetItem's
responses."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from crm.adapters import keys
from crm.adapters.clients import client
from crm.adapters.items import plain_item
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.segment_runs import DynamoSegmentRuns
from crm.adapters.segments import DynamoSegmentStore
from crm.models.profile import Profile, TimelineEntry
from crm.models.segments import HeldSegments, SegmentRecord
from crm.ports import Change, IdentityLink
from crm.segments import runs, service
from crm.segments.definition import SegmentDocument, parse_segment
from crm_local.provision import Provisioned

from tests.builders import NOW
from tests.fakes import FakeTaskQueue

WS, OTHER = "ws_a", "ws_b"
BUYERS = {"name": "Buyers", "definition": {"field": "orders_count", "op": "gte", "value": 1}}


@dataclass
class ItemsRead:
    """What DynamoDB read, request by request: (operation, index or None, items read, the items' keys)."""

    requests: Counter[str] = field(default_factory=Counter)
    read: int = 0
    returned: list[tuple[str, str]] = field(default_factory=list)
    index_entries: list[tuple[str, str]] = field(default_factory=list)

    def after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        self.requests[model.name] += 1
        if model.name in ("Query", "Scan"):
            self.read += int(parsed.get("ScannedCount", 0))
            found = [(i["pk"]["S"], i["sk"]["S"]) for i in parsed.get("Items", [])]
            (self.index_entries if context.get("index") else self.returned).extend(found)
        elif model.name == "BatchGetItem":
            found = [(i["pk"]["S"], i["sk"]["S"]) for items in parsed.get("Responses", {}).values() for i in items]
            self.read += len(found)
            self.returned.extend(found)
        elif model.name == "GetItem":
            self.read += int("Item" in parsed)
            if "Item" in parsed:
                self.returned.append((parsed["Item"]["pk"]["S"], parsed["Item"]["sk"]["S"]))

    def before(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["index"] = params.get("IndexName")


@pytest.fixture
def items_read(provisioned: Provisioned) -> Iterator[ItemsRead]:
    meter = ItemsRead()
    events = client("dynamodb").meta.events
    events.register("before-parameter-build.dynamodb", meter.before)
    events.register("after-call.dynamodb", meter.after)
    yield meter
    events.unregister("before-parameter-build.dynamodb", meter.before)
    events.unregister("after-call.dynamodb", meter.after)


def _profile(workspace_id: str, profile_id: str, orders: int, merged_into: str | None = None) -> Profile:
    return Profile(workspace_id=workspace_id, profile_id=profile_id, created_at=NOW - timedelta(days=40),
                   updated_at=NOW, orders_count=orders, email=f"{profile_id}@example.com",
                   first_order_at=NOW - timedelta(days=30) if orders else None,
                   last_order_at=NOW - timedelta(days=2) if orders else None, merged_into=merged_into)


def _populate(table: str, workspace_id: str, count: int) -> None:
    """Profiles with what a real table holds beside them: timelines, identities, orders."""
    repository = DynamoProfileRepository(table)
    for index in range(count):
        pid = f"{workspace_id}_p{index:03d}"
        merged_into = f"{workspace_id}_p000" if index == count - 1 else None
        held = _profile(workspace_id, pid, index % 3, merged_into=merged_into)
        timeline = tuple(TimelineEntry(workspace_id=workspace_id, profile_id=pid, occurred_at=NOW - timedelta(days=d),
                                       type="product_viewed", ref=f"view{d}") for d in range(3))
        repository.commit(Change(workspace_id=workspace_id, profiles=((held, None),), timeline=timeline,
                                 identities=(IdentityLink(f"email:{pid}@example.com", pid, None),)))
        client("dynamodb").put_item(TableName=table, Item=plain_item(
            {**keys.order(workspace_id, "store_1", f"o{index}"), "entity": "order", "profile_id": pid}))


@pytest.fixture
def table(provisioned: Provisioned) -> str:
    name = provisioned.outputs["TableName"]
    _populate(name, WS, 12)
    _populate(name, OTHER, 12)
    store = DynamoSegmentStore(name)
    for workspace_id in (WS, OTHER):
        store.put(SegmentRecord(workspace_id=workspace_id, segment_id="seg_buyers", name="Buyers",
                                definition=parse_segment(BUYERS).model_dump_json(), created_at=NOW, updated_at=NOW),
                  None)
    return name


def _run(table: str, provisioned: Provisioned, workspace_id: str) -> None:
    store, segment_runs = DynamoSegmentStore(table), DynamoSegmentRuns(table, provisioned.outputs["ArchiveBucketName"])
    tasks = FakeTaskQueue()
    runs.start_run(segment_runs, tasks, workspace_id, NOW, 3, "test")
    while tasks.tasks:
        runs.carry_out(tasks.tasks.pop(0), store, segment_runs, tasks, lambda: NOW)


def _assert_only_the_workspaces_profiles(meter: ItemsRead, workspace_id: str) -> None:
    assert meter.requests["Scan"] == 0
    profile_items = [(pk, sk) for pk, sk in meter.returned if "#PROFILE#" in pk]
    assert profile_items, "the profiles were read"
    own = f"WS#{workspace_id}"
    assert all(pk == own or pk.startswith(f"{own}#") for pk, _ in meter.returned + meter.index_entries)
    assert {sk for _, sk in profile_items} <= {keys.PROFILE_SK, keys.PROFILE_SEGMENTS_SK}
    assert not [pk for pk, _ in meter.returned if any(part in pk for part in ("#ORDER#", "#IDENTITY#", "#MEMBERS"))]
    # Nothing read and then filtered away: every item read is an item answered.
    assert meter.read == len(meter.returned) + len(meter.index_entries)


def test_a_run_reads_only_its_workspaces_profiles_and_their_sets(
        table: str, provisioned: Provisioned, items_read: ItemsRead) -> None:
    _run(table, provisioned, WS)
    _assert_only_the_workspaces_profiles(items_read, WS)
    profiles = {pk for pk, sk in items_read.returned if sk == keys.PROFILE_SK}
    # Each profile (the merged one too) and its set read once a run: the sketch keeps them for the evaluation.
    assert len(profiles) == 12
    assert sorted(pk for pk, sk in items_read.returned if sk == keys.PROFILE_SK) == sorted(profiles)
    members = DynamoSegmentStore(table).members(WS, "seg_buyers", None, 100)
    assert sorted(m.profile_id for m in members) == [f"{WS}_p{i:03d}" for i in range(11) if i % 3]


def test_a_preview_reads_only_its_workspaces_profiles(table: str, items_read: ItemsRead,
                                                      provisioned: Provisioned) -> None:
    store, segment_runs = DynamoSegmentStore(table), DynamoSegmentRuns(table, provisioned.outputs["ArchiveBucketName"])
    found = service.preview(store, segment_runs, WS, SegmentDocument.model_validate(BUYERS), NOW)
    _assert_only_the_workspaces_profiles(items_read, WS)
    assert (found["size"], found["complete"], found["profiles_read"]) == (7, True, 12)


def test_a_bounded_preview_reads_no_more_than_its_bound(table: str, items_read: ItemsRead,
                                                         provisioned: Provisioned) -> None:
    store, segment_runs = DynamoSegmentStore(table), DynamoSegmentRuns(table, provisioned.outputs["ArchiveBucketName"])
    found = service.preview(store, segment_runs, WS, SegmentDocument.model_validate(BUYERS), NOW, lambda: NOW,
                            most_profiles=4)
    assert found["complete"] is False and found["profiles_read"] == 4
    profiles_fetched = [pk for pk, sk in items_read.returned if sk == keys.PROFILE_SK]
    assert len(profiles_fetched) < 12  # it stopped reading, not only counting


def test_profiles_written_before_the_index_are_read_once_backfilled(provisioned: Provisioned) -> None:
    from crm.adapters.workspace_index import backfill

    name = provisioned.outputs["TableName"]
    _populate(name, WS, 5)
    for pk in {pk for pk in _profile_keys(name)}:
        client("dynamodb").update_item(TableName=name, Key={"pk": {"S": pk}, "sk": {"S": keys.PROFILE_SK}},
                                       UpdateExpression="REMOVE ws_bucket, ws_order")
    repository = DynamoProfileRepository(name)
    assert list(repository.workspace_profiles(WS)) == []
    assert backfill(name) == 5
    assert backfill(name) == 0
    assert sorted(p.profile_id for p in repository.workspace_profiles(WS)) == [f"{WS}_p{i:03d}" for i in range(4)]


def _profile_keys(table: str) -> list[str]:
    items = client("dynamodb").scan(TableName=table, FilterExpression="sk = :sk",
                                    ExpressionAttributeValues={":sk": {"S": keys.PROFILE_SK}})["Items"]
    return [i["pk"]["S"] for i in items]


def test_the_rules_read_the_custom_segments_records_alone(table: str, provisioned: Provisioned,
                                                          items_read: ItemsRead) -> None:
    store, segment_runs = DynamoSegmentStore(table), DynamoSegmentRuns(table, provisioned.outputs["ArchiveBucketName"])
    _run(table, provisioned, WS)  # every built-in computed: listed, each with its record and size
    listed = store.list_segments(WS)
    assert len(listed) > 1 and next(r for r in listed if r.segment_id == "seg_buyers").size == 7
    items_read.returned.clear()
    rules = runs.load_rules(store, WS, NOW, runs.current_population(segment_runs, WS))
    assert [segment_id for segment_id, _ in rules.custom] == ["seg_buyers"]
    custom = keys.segment(WS, "seg_buyers")
    assert (custom["pk"], custom["sk"]) in items_read.returned
    sizes = [keys.segment_size(WS, r.segment_id) for r in listed]
    builtins = [keys.segment(WS, r.segment_id) for r in listed if not r.definition]
    unread = {(k["pk"], k["sk"]) for k in sizes + builtins}
    assert not unread & set(items_read.returned)
    assert store.custom_segments(WS) == [r.model_copy(update={"size": 0}) for r in listed if r.definition]


def test_many_profiles_are_read_together_a_merged_id_followed(table: str, items_read: ItemsRead) -> None:
    """The predictions' refresh of a batch's orders reads their profiles in one BatchGetItem (and one more
    for the profiles merged ones were merged into), not one request per order."""
    repository = DynamoProfileRepository(table)
    merged = f"{WS}_p011"  # merged into p000 (_populate)
    wanted = [f"{WS}_p001", f"{WS}_p002", f"{WS}_p001", merged, f"{WS}_nobody"]
    found = repository.get_profiles(WS, wanted)
    assert {pid: p.profile_id for pid, p in found.items()} == {
        f"{WS}_p001": f"{WS}_p001", f"{WS}_p002": f"{WS}_p002", merged: f"{WS}_p000"}
    assert found[merged] == repository.get_profile(WS, merged)
    assert items_read.requests["BatchGetItem"] == 2 + 2  # the batch and its merge; then get_profile's two


def test_a_shares_kept_profiles_come_back_whole_and_in_order_past_one_upload_part(provisioned: Provisioned) -> None:
    """The run's work file: more than one 5 MiB part (a multipart upload), read back line by line as written."""
    segment_runs = DynamoSegmentRuns(provisioned.outputs["TableName"], provisioned.outputs["ArchiveBucketName"])
    assert segment_runs.kept_profiles(WS, "run_1", 0) is None  # none kept: the evaluation reads the share again
    tags = tuple(f"tag-{i:04d}" for i in range(150))  # ~2 KB a line: 3,000 lines pass one part
    kept = [(_profile(WS, f"p{i:05d}", i % 3).model_copy(update={"tags": tags}),
             HeldSegments(segment_ids=frozenset({"seg_buyers"} if i % 2 else ()), version=i % 4, revision=i))
            for i in range(3_000)]
    segment_runs.keep_profiles(WS, "run_1", 0, iter(kept))
    parts = client("s3").head_object(Bucket=provisioned.outputs["ArchiveBucketName"],
                                     Key=keys.segment_profiles_object(WS, "run_1", 0))["ETag"]
    assert parts.strip('"').endswith("-2")  # a multipart object's ETag names its parts
    assert list(segment_runs.kept_profiles(WS, "run_1", 0) or ()) == kept
