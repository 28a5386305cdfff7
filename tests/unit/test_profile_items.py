"""A profile is stored without its fields at their defaults (crm.adapters.items.to_compact_item: fewer bytes, fewer
write units); read back through the model it is the profile that was written, field for field."""

from __future__ import annotations

from decimal import Decimal

from crm.adapters import keys
from crm.adapters.items import from_item, to_compact_item, to_item
from crm.models.profile import Profile, RecentTimes, new_profile
from crm.profiles import tombstone
from hypothesis import given, settings

from tests.builders import NOW
from tests.unit.segment_strategies import profiles


def _stored(profile: Profile) -> Profile:
    item = to_compact_item(keys.profile(profile.workspace_id, profile.profile_id), "profile", profile,
                           **keys.workspace_index(profile.workspace_id, profile.profile_id))
    return Profile.model_validate(from_item(item))  # the item is DynamoDB's wire form, as reads and the stream give


@given(profiles())
@settings(max_examples=60, deadline=None)
def test_a_compact_profile_reads_back_as_written(profile: Profile) -> None:
    written = profile.model_copy(update={"revision": 3, "unmarked_events": ("abc123def456",)})
    assert _stored(written) == written
    full = Profile.model_validate(from_item(to_item(keys.profile(written.workspace_id, written.profile_id),
                                                    "profile", written)))
    assert _stored(written) == full


def test_fields_at_their_defaults_are_left_out_and_come_back() -> None:
    profile = new_profile("ws_a", "p-1", NOW).model_copy(update={"revision": 1})
    item = from_item(to_compact_item(keys.profile("ws_a", "p-1"), "profile", profile))
    assert not {"orders_count", "spent_by_currency", "total_spent", "consents", "contact_sources", "merged_into",
                "currency_settings_version", "unconverted_currencies"} & set(item)
    assert set(to_item(keys.profile("ws_a", "p-1"), "profile", profile)) > set(item)
    read = _stored(profile)
    assert read.total_spent == Decimal("0.00") and str(read.total_spent) == "0.00"
    assert read.orders_count == 0 and read.spent_by_currency == {}


def test_kept_times_that_are_empty_stay_kept_not_missing() -> None:
    # None means "written before times were kept: rebuild from the timeline" (crm.changes): an empty RecentTimes
    # must not come back as None.
    profile = new_profile("ws_a", "p-1", NOW)
    assert profile.recent == RecentTimes()
    assert _stored(profile).recent == RecentTimes()
    assert _stored(profile.model_copy(update={"recent": None})).recent is None


def test_a_merged_profile_keeps_its_pointer() -> None:
    stone = tombstone(new_profile("ws_a", "p-2", NOW), "p-1", NOW).model_copy(update={"revision": 2})
    assert _stored(stone).merged_into == "p-1"
    assert _stored(stone) == stone
