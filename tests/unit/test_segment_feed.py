"""What the segment refresh takes from the table's stream: profiles written, and sets removed with an
erased profile's partition; nothing else."""

from __future__ import annotations

from typing import Any

from crm.adapters import keys
from crm.adapters.items import to_item
from crm.adapters.streams import images
from crm.models.profile import new_profile
from crm.segments.feed import Erased, read_feed

from tests.builders import NOW


def _record(event_name: str, new: dict[str, Any] | None = None, old: dict[str, Any] | None = None) -> dict[str, Any]:
    change: dict[str, Any] = {"Keys": {}, "SequenceNumber": "1"}
    if new is not None:
        change["NewImage"] = new
    if old is not None:
        change["OldImage"] = old
    return {"eventName": event_name, "dynamodb": change}


def _set_image() -> dict[str, Any]:
    return {**{k: {"S": v} for k, v in keys.profile_segments("ws_a", "p1").items()},
            "entity": {"S": "profile_segments"}, "workspace_id": {"S": "ws_a"}, "profile_id": {"S": "p1"},
            "segment_ids": {"L": [{"S": "builtin:vip"}, {"S": "seg_1"}]}, "version": {"N": "3"}}


def test_profiles_written_and_sets_removed_are_read_the_rest_is_not() -> None:
    profile = new_profile("ws_a", "p1", NOW)
    image = to_item(keys.profile("ws_a", "p1"), "profile", profile)
    feed = read_feed(images([
        _record("INSERT", image), _record("MODIFY", image, image),
        _record("REMOVE", old=image),  # the profile item itself going: its set's removal says what to undo
        _record("REMOVE", old=_set_image()),
        _record("INSERT", _set_image()),  # the refresh's own writes
        _record("INSERT", {**{k: {"S": v} for k, v in keys.identity("ws_a", "email#a@example.com").items()},
                           "entity": {"S": "identity"}}),
    ]))
    assert [c.after.profile_id for c in feed.changed] == ["p1", "p1"]
    # A new item has no image before it; a modified one carries both (the refresh compares them).
    assert [c.before for c in feed.changed] == [None, profile]
    assert feed.erased == [Erased("ws_a", "p1", frozenset({"builtin:vip", "seg_1"}))]
