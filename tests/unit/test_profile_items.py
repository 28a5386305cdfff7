"""A profile is stored without its fields at their defaults, packed into one deflated attribute beside the attributes
its guards name (crm.adapters.items.to_packed_item: fewer bytes, fewer write units); read back through the model it
is the profile that was written, field for field, whichever way it was written and whoever reads it."""

from __future__ import annotations

import base64
from datetime import timedelta
from decimal import Decimal
from typing import Any

from crm.adapters import keys
from crm.adapters.items import PACKED, Item, from_item, serializer, to_compact_item, to_item, unpack
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.streams import image
from crm.models.canonical import ProductRef, Touch
from crm.models.consent import Channel, Consent, ConsentRequest, ConsentState
from crm.models.predictions import Prediction
from crm.models.profile import Activity, OrderInFlight, OrderRecord, Profile, RecentTimes, new_profile
from crm.profiles import tombstone
from crm.unwritten_orders import order_state
from hypothesis import given, settings

from tests.builders import NOW, order
from tests.unit.segment_strategies import profiles

_REPOSITORY = DynamoProfileRepository("table")


def _item(profile: Profile) -> Item:
    """The profile's item as the repository writes it (DynamoDB's wire form, as reads and the stream give it)."""
    return _REPOSITORY._profile_item(profile.workspace_id, profile)


def _stored(profile: Profile) -> Profile:
    return Profile.model_validate(from_item(_item(profile)))


def _in_lambdas_stream_event(item: Item) -> dict[str, Any]:
    """A stream record's image as Lambda's JSON event carries it: binary values as base64 text."""
    wire = {name: {"B": base64.b64encode(value["B"]).decode()} if "B" in value else value
            for name, value in item.items()}
    return {"dynamodb": {"NewImage": wire}}


def _shopper() -> Profile:
    """A shopper with most of what a profile holds: sums, consents, touches, kept times, digests, a prediction."""
    at = NOW - timedelta(days=3)
    product = ProductRef(product_id="p-1", sku="SKU-1", title="Merino crew", category="Knitwear",
                         price=Decimal("89.00"))
    return new_profile("ws_a", "p-1", at).model_copy(update={
        "email": "ada@example.com", "first_name": "Ada", "country": "GB",
        "contact_sources": {"email": f"{at.isoformat()}|order|st_a|1001|v1"},
        "identities": ("email#ada@example.com", "anon#st_a#b-1"), "signed_browsers": ("anon#st_a#b-1",),
        "store_ids": ("st_a",), "tags": ("vip",), "orders_count": 2,
        "spent_by_currency": {"GBP": Decimal("178.10")}, "refunded_by_currency": {"GBP": Decimal("0.00")},
        "orders_by_currency": {"GBP": 2}, "total_spent": Decimal("178.10"), "currency": "GBP",
        "first_order_at": at, "last_order_at": NOW, "products": {"Merino crew": 2}, "skus": {"SKU-1": 2},
        "consents": {"email": Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="shopify:x",
                                      at=at)},
        "consent_requests": {"sms": ConsentRequest(channel=Channel.SMS, source="track:identify", at=at)},
        "first_touch": Touch(source="google", medium="cpc", landing_page="/?utm_source=google", at=at),
        "activity_counts": {"product_viewed": 3},
        "last_browse": Activity(at=NOW, event_id="e-1", type="product_viewed", products=(product,)),
        "last_checkout": Activity(at=NOW, event_id="e-2", type="checkout_started", value=Decimal("89.00"),
                                  currency="GBP"),
        "last_seen_at": NOW, "recent": RecentTimes.of({"product_viewed": [3_000_000, 2_000_000]}, [1_000_000]),
        "unmarked_events": ("abc123def456",),
        "unwritten_orders": {"st_a:1001": OrderInFlight(state="0123456789abcdef", since=NOW)},
        "prediction": Prediction(status="predicted", model="bgnbd", computed_at=NOW, p_alive=Decimal("0.93"),
                                 clv=Decimal("120.50"), currency="GBP"),
        "revision": 7,
    })


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


def test_a_shoppers_profile_reads_back_from_every_form_a_reader_gets() -> None:
    shopper = _shopper()
    item = _item(shopper)
    assert _stored(shopper) == shopper
    # The stream's images (the segment feed, the outbox) as boto3 gives them locally and as Lambda's event does.
    assert Profile.model_validate(image({"dynamodb": {"NewImage": item}}, "NewImage")) == shopper
    assert Profile.model_validate(image(_in_lambdas_stream_event(item), "NewImage")) == shopper
    assert str(_stored(shopper).total_spent) == "178.10"


def test_only_what_keys_indexes_and_guards_name_stays_an_attribute_of_its_own() -> None:
    item = _item(_shopper())
    assert set(item) == {"pk", "sk", "entity", "ws_bucket", "ws_order", "revision", PACKED}
    assert item["revision"] == {"N": "7"}
    record = OrderRecord(workspace_id="ws_a", store_id="st_a", order_id="1001", profile_id="p-1", order=order())
    order_item = _REPOSITORY._order_item("ws_a", record)
    assert set(order_item) == {"pk", "sk", "entity", "version", "state", PACKED}
    assert order_item["version"] == {"S": record.version}
    assert order_item["state"] == {"S": order_state(record)}
    assert OrderRecord.model_validate(from_item(order_item)) == record


def test_a_guarded_attribute_is_written_at_its_default_too() -> None:
    # The predictions' UpdateItem is conditioned on ``revision = :held``: a profile at revision 0 (as a bulk
    # load writes it) must carry the attribute, or the condition never holds.
    item = _item(_shopper().model_copy(update={"revision": 0}))
    assert item["revision"] == {"N": "0"}


def test_items_written_before_packing_still_read() -> None:
    # No migration: a profile or order record written every field, or compact, reads as it did.
    shopper = _shopper()
    key = keys.profile("ws_a", "p-1")
    for form in (to_item, to_compact_item):
        assert Profile.model_validate(from_item(form(key, "profile", shopper))) == shopper
    record = OrderRecord(workspace_id="ws_a", store_id="st_a", order_id="1001", order=order())
    assert OrderRecord.model_validate(from_item(to_item(keys.order("ws_a", "st_a", "1001"), "order", record))) == record


def test_an_attribute_updated_on_its_own_is_read_over_the_packed_one() -> None:
    # The predictions' run sets ``prediction`` and ``revision`` with UpdateItem, not rewriting the pack.
    shopper = _shopper()
    newer = Prediction(status="insufficient_history", computed_at=NOW + timedelta(days=1))
    item = {**_item(shopper), "prediction": serializer.serialize(newer.model_dump(mode="json", exclude_none=True)),
            "revision": {"N": "8"}}
    read = Profile.model_validate(from_item(item))
    assert read == shopper.model_copy(update={"prediction": newer, "revision": 8})


def test_a_shoppers_profile_fits_one_write_unit() -> None:
    # DynamoDB bills a write per started KB of the item, names included (bench/item_sizes.py measures the workload's).
    item = _item(_shopper())
    size = sum(len(name) + len(value.get("S", "")) + len(value.get("B", b"")) + len(value.get("N", ""))
               for name, value in item.items())
    assert size < 1024
    assert len(item[PACKED]["B"]) < len(_shopper().model_dump_json(exclude_defaults=True)) / 2


def test_a_packed_item_of_the_first_dictionary_reads_for_good() -> None:
    # Items stay in the table: the dictionary they were packed against must never change (a new one takes a new
    # version byte). This one was packed when the first dictionary was written.
    assert unpack(base64.b64decode(_PACKED_BY_THE_FIRST_DICTIONARY)) == _ITS_JSON


_ITS_JSON = b'{"workspace_id":"ws_a","profile_id":"p-1","identities":["anon#st_a#b-1"],"revision":1}'
_PACKED_BY_THE_FIRST_DICTIONARY = "AcNmYSK6jQW6hjgL6UTlJKBsLCgIyzKh5UQtAA=="
