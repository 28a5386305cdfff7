from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm.identity import identities_of
from crm.ingestion import (
    FOLD_LIMIT,
    MAX_CONFLICT_RETRIES,
    Outcome,
    TooManyConflicts,
    apply_envelope,
    apply_event,
    apply_events,
)
from crm.models.canonical import ActivityEvent, ActivityType
from crm.models.ingest import IngestEnvelope
from crm.models.profile import Profile, new_profile
from crm.models.stores import Platform
from crm.ports import Change, ConcurrentUpdate
from crm.profiles import UNMARKED_KEPT, combine, event_digest, profile_id_for, with_unmarked

from tests.builders import (
    FIXTURE_ORDER_ID,
    NOW,
    compact,
    envelope,
    fixture_bytes,
    order,
    placed_order_bytes,
    placed_order_json,
    woo_fixture_bytes,
    woo_fixture_json,
    woo_wire,
)
from tests.fakes import FakeIngestQueue, FakeProfileRepository, FakeRawArchive, FakeStoreDirectory

TRIGGER = datetime(2025, 7, 10, 16, 15, 47, tzinfo=UTC)


@pytest.fixture
def repository() -> FakeProfileRepository:
    return FakeProfileRepository()


@pytest.fixture
def archive() -> FakeRawArchive:
    return FakeRawArchive()


@pytest.fixture
def queue() -> FakeIngestQueue:
    return FakeIngestQueue()


def _apply(message: IngestEnvelope | str, repository: FakeProfileRepository, archive: FakeRawArchive,
           queue: FakeIngestQueue, now: datetime = NOW, stores: FakeStoreDirectory | None = None) -> Outcome:
    text = message if isinstance(message, str) else message.model_dump_json()
    return apply_envelope(text, repository, archive, queue, now, stores or FakeStoreDirectory())


def _the_profile(repository: FakeProfileRepository, email: str = "jon@example.com") -> Profile:
    profile_id = repository.profile_id_for_identity("ws_a", f"email#{email}")
    assert profile_id is not None
    profile = repository.get_profile("ws_a", profile_id)
    assert profile is not None
    return profile


def _updated(payload: dict[str, Any], updated_at: str, refunded: str | None = None) -> bytes:
    changed = {**payload, "updated_at": updated_at}
    if refunded is not None:
        refund = {"kind": "refund", "status": "success", "amount": refunded}
        changed["refunds"] = [{"id": 901, "transactions": [refund]}]
    return compact(changed)


def test_published_order_creates_a_profile(repository: FakeProfileRepository, archive: FakeRawArchive,
                                           queue: FakeIngestQueue) -> None:
    outcome = _apply(envelope(placed_order_bytes(), triggered_at=TRIGGER), repository, archive, queue)

    assert outcome == Outcome(applied=1, unchanged=0)
    profile = _the_profile(repository)
    assert profile.profile_id == profile_id_for("ws_a", "email#jon@example.com")
    assert profile.orders_count == 1
    assert profile.total_spent == Decimal("404.95")
    assert profile.average_order_value == Decimal("404.95")
    assert profile.currency == "USD"
    assert profile.email == "jon@example.com"
    assert (profile.first_name, profile.last_name) == ("John", "Smith")
    assert profile.first_order_at == profile.last_order_at == datetime(2022, 1, 1, tzinfo=UTC)
    assert profile.created_at == profile.updated_at == NOW
    assert profile.revision == 1
    assert repository.orders[("ws_a", "st_a", FIXTURE_ORDER_ID)].profile_id == profile.profile_id
    assert queue.dead_letters == []


def test_non_json_body_is_dead_lettered_with_a_reason(repository: FakeProfileRepository, archive: FakeRawArchive,
                                                      queue: FakeIngestQueue) -> None:
    message = envelope(b"this is not json", delivery_id="d-bad")
    outcome = _apply(message, repository, archive, queue)

    assert outcome.applied == 0
    assert outcome.dead_lettered is not None
    [dead] = queue.dead_letters
    assert dead.message == message.model_dump_json()  # the message as received, for a redrive
    assert dead.reason == outcome.dead_lettered
    assert "orders/create" in dead.reason
    assert "d-bad" in dead.reason
    assert "not valid JSON" in dead.reason
    assert repository.profiles == {}
    assert repository.orders == {}


@pytest.mark.parametrize("message", ["not json at all", "{}", json.dumps({"platform": "shopify"}), "[]"])
def test_message_that_is_not_an_envelope_is_dead_lettered(message: str, repository: FakeProfileRepository,
                                                          archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    outcome = _apply(message, repository, archive, queue)
    assert outcome.dead_lettered is not None
    assert outcome.dead_lettered.startswith("not an ingest envelope")
    assert [(d.message, d.reason) for d in queue.dead_letters] == [(message, outcome.dead_lettered)]
    assert repository.saves == 0


def test_unsupported_topic_is_dead_lettered(repository: FakeProfileRepository, archive: FakeRawArchive,
                                            queue: FakeIngestQueue) -> None:
    message = envelope(fixture_bytes("app/uninstalled"), topic="app/uninstalled")
    outcome = _apply(message, repository, archive, queue)
    assert outcome.dead_lettered is not None
    assert "unsupported Shopify topic" in outcome.dead_lettered
    assert len(queue.dead_letters) == 1
    assert repository.saves == 0


def test_body_not_inlined_is_read_from_the_archive(repository: FakeProfileRepository, archive: FakeRawArchive,
                                                   queue: FakeIngestQueue) -> None:
    archive.put("raw/shopify/st_a/big", placed_order_bytes(), {})
    outcome = _apply(envelope(None, archive_key="raw/shopify/st_a/big"), repository, archive, queue)
    assert outcome == Outcome(applied=1)
    assert _the_profile(repository).total_spent == Decimal("404.95")


def test_missing_archived_body_raises_so_the_queue_retries(repository: FakeProfileRepository,
                                                           archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    with pytest.raises(KeyError):
        _apply(envelope(None, archive_key="raw/shopify/st_a/missing"), repository, archive, queue)
    assert queue.dead_letters == []


def test_duplicate_delivery_changes_nothing(repository: FakeProfileRepository, archive: FakeRawArchive,
                                            queue: FakeIngestQueue) -> None:
    message = envelope(placed_order_bytes(), triggered_at=TRIGGER)
    _apply(message, repository, archive, queue)
    before = (dict(repository.profiles), dict(repository.orders), dict(repository.identities))

    outcome = _apply(message, repository, archive, queue, now=NOW + timedelta(hours=1))

    assert outcome == Outcome(applied=0, unchanged=1)
    assert (repository.profiles, repository.orders, repository.identities) == before
    assert repository.saves == 1


def test_newer_update_replaces_the_order_total(repository: FakeProfileRepository, archive: FakeRawArchive,
                                               queue: FakeIngestQueue) -> None:
    payload = placed_order_json()
    _apply(envelope(compact(payload), triggered_at=TRIGGER), repository, archive, queue)
    newer = envelope(_updated(payload, "2022-01-05T10:00:00-05:00", refunded="100.00"), topic="orders/updated",
                     delivery_id="d-2", triggered_at=TRIGGER)

    assert _apply(newer, repository, archive, queue) == Outcome(applied=1)

    profile = _the_profile(repository)
    assert profile.orders_count == 1  # the same order, counted once
    assert profile.total_spent == Decimal("304.95")
    assert profile.revision == 2


def test_older_update_after_a_newer_one_changes_nothing(repository: FakeProfileRepository,
                                                        archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    payload = placed_order_json()
    newer = envelope(_updated(payload, "2022-01-05T10:00:00-05:00", refunded="100.00"), topic="orders/updated",
                     delivery_id="d-new", triggered_at=TRIGGER)
    older = envelope(_updated(payload, "2022-01-03T10:00:00-05:00", refunded="5.00"), topic="orders/updated",
                     delivery_id="d-old", triggered_at=TRIGGER)
    _apply(newer, repository, archive, queue)
    before = _the_profile(repository)

    assert _apply(older, repository, archive, queue) == Outcome(applied=0, unchanged=1)
    assert _apply(envelope(compact(payload), triggered_at=TRIGGER), repository, archive, queue).unchanged == 1

    assert _the_profile(repository) == before
    assert before.total_spent == Decimal("304.95")
    assert repository.orders[("ws_a", "st_a", FIXTURE_ORDER_ID)].order.total_refunded == Decimal("100.00")


def test_stale_retry_in_the_same_second_loses_to_the_later_trigger(
    repository: FakeProfileRepository, archive: FakeRawArchive, queue: FakeIngestQueue
) -> None:
    body_paid = _updated(placed_order_json(), "2022-01-05T10:00:00-05:00", refunded="1.00")
    body_refunded = _updated(placed_order_json(), "2022-01-05T10:00:00-05:00", refunded="50.00")
    later = envelope(body_refunded, delivery_id="d-2", triggered_at=TRIGGER + timedelta(milliseconds=5))
    earlier = envelope(body_paid, delivery_id="d-1", triggered_at=TRIGGER)
    _apply(later, repository, archive, queue)
    assert _apply(earlier, repository, archive, queue).unchanged == 1
    assert _the_profile(repository).total_spent == Decimal("354.95")


def test_two_orders_of_one_shopper_share_a_profile(repository: FakeProfileRepository) -> None:
    first = order("1", total=Decimal("10.00"), created_at=NOW - timedelta(days=3))
    second = order("2", total=Decimal("5.01"), created_at=NOW - timedelta(days=1))
    assert apply_event(repository, second, NOW)
    assert apply_event(repository, first, NOW)
    [profile] = repository.profiles.values()
    assert profile.orders_count == 2
    assert profile.total_spent == Decimal("15.01")
    assert profile.average_order_value == Decimal("7.50")  # 7.505 -> half to even
    assert profile.first_order_at == first.created_at
    assert profile.last_order_at == second.created_at


def test_orders_of_different_workspaces_never_share_a_profile(repository: FakeProfileRepository) -> None:
    apply_event(repository, order("1", workspace_id="ws_a"), NOW)
    apply_event(repository, order("1", workspace_id="ws_b"), NOW)
    assert len(repository.profiles) == 2
    assert {p.workspace_id for p in repository.profiles.values()} == {"ws_a", "ws_b"}


def test_guest_order_without_contact_gets_a_profile_of_its_own(repository: FakeProfileRepository) -> None:
    guest = order("77", email=None)
    assert identities_of(guest)[0] == "order#st_a#77"
    assert apply_event(repository, guest, NOW)
    assert repository.profile_id_for_identity("ws_a", "order#st_a#77") is not None


def test_conflict_is_retried_against_what_the_other_writer_saved(repository: FakeProfileRepository) -> None:
    mine = order("1", total=Decimal("10.00"))
    theirs = order("2", total=Decimal("2.50"))

    def other_writer() -> None:
        assert apply_event(repository, theirs, NOW)

    repository.before_save = other_writer

    assert apply_event(repository, mine, NOW)

    assert repository.conflicts == 1
    [profile] = repository.profiles.values()
    assert profile.orders_count == 2
    assert profile.total_spent == Decimal("12.50")
    assert profile.revision == 2


class _AlwaysConflicting(FakeProfileRepository):
    def commit(self, change: Change) -> None:
        self.conflicts += 1
        raise ConcurrentUpdate("someone else, again")


def test_endless_conflicts_raise_so_the_queue_retries_later() -> None:
    repository = _AlwaysConflicting()
    with pytest.raises(TooManyConflicts):
        apply_event(repository, order("1"), NOW)
    assert repository.conflicts == MAX_CONFLICT_RETRIES
    assert repository.profiles == {}


# --- timestamps and contact fields ----------


@pytest.mark.parametrize("change", [{"updated_at": "2022-01-05T10:00:00"},
                                    {"created_at": "2022-01-05T10:00:00", "updated_at": None}])
def test_order_timestamps_without_a_zone_are_dead_lettered(change: dict[str, Any], repository: FakeProfileRepository,
                                                           archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    body = compact({**placed_order_json(), **change})
    outcome = _apply(envelope(body, triggered_at=TRIGGER), repository, archive, queue)
    assert outcome.dead_lettered is not None
    assert "updated_at" in outcome.dead_lettered or "created_at" in outcome.dead_lettered


@pytest.mark.parametrize("same_order", [True, False], ids=["two-versions", "two-orders"])
def test_contact_fields_do_not_depend_on_arrival_order(same_order: bool) -> None:
    """A field any version supplied is kept: an older version arriving late still fills what the newer lacks."""
    created = NOW - timedelta(days=2)
    older = order("1", phone="+12024561111", created_at=created, updated_at=created)
    newer = order("1" if same_order else "2", phone=None, created_at=created + timedelta(hours=1),
                  updated_at=created + timedelta(hours=1))
    phones = []
    for arrival in ((older, newer), (newer, older)):
        repository = FakeProfileRepository()
        for delivered in arrival:
            apply_event(repository, delivered, NOW)
        [profile] = repository.profiles.values()
        phones.append(profile.phone)
    assert phones[0] == phones[1]


# --- WooCommerce ---------------------------------------------------------------------------------


def _woo(body: bytes, topic: str = "order.created", delivery_id: str = "wc-1") -> IngestEnvelope:
    return envelope(body, topic=topic, delivery_id=delivery_id, platform=Platform.WOOCOMMERCE)


def test_woocommerce_orders_update_one_profile_newest_version_wins(
        repository: FakeProfileRepository, archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    created = woo_fixture_bytes("order.created")
    refunded = woo_wire({**woo_fixture_json("order.updated"), "refunds": [{"id": 730, "total": "-9.35"}]})
    assert _apply(_woo(refunded, "order.updated", "wc-2"), repository, archive, queue) == Outcome(applied=1)
    # The older order.created after the newer order.updated: stale, changes nothing.
    assert _apply(_woo(created), repository, archive, queue) == Outcome(unchanged=1)
    # WooCommerce's delivery id is a per-second hash: the same one again is still only the same version.
    assert _apply(_woo(refunded, "order.updated", "wc-2"), repository, archive, queue) == Outcome(unchanged=1)
    profile = _the_profile(repository, "john.doe@example.com")
    assert profile.orders_count == 1
    assert profile.total_spent == Decimal("20.00")  # 29.35 less the 9.35 refund
    assert (profile.first_name, profile.last_name) == ("John", "Doe")
    assert profile.first_order_at == datetime(2017, 3, 22, 19, 28, 2, tzinfo=UTC)
    assert repository.orders[("ws_a", "st_a", "727")].profile_id == profile.profile_id
    assert queue.dead_letters == []


@pytest.mark.parametrize("topic", ["product.updated", "coupon.deleted"])
def test_woocommerce_topics_without_canonical_events_are_dead_lettered(
        topic: str, repository: FakeProfileRepository, archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    outcome = _apply(_woo(b'{"id":727}', topic, "wc-del"), repository, archive, queue)
    assert outcome.dead_lettered == f"{topic} wc-del: unsupported WooCommerce topic '{topic}'"
    assert repository.orders == {}


@pytest.mark.parametrize("topic", ["order.deleted", "customer.deleted"])
def test_woocommerce_deletions_are_understood_not_dead_lettered(
        topic: str, repository: FakeProfileRepository, archive: FakeRawArchive, queue: FakeIngestQueue) -> None:
    outcome = _apply(_woo(b'{"id":727}', topic, "wc-del"), repository, archive, queue)
    assert outcome.dead_lettered is None
    assert queue.dead_letters == []
    if topic == "order.deleted":
        # The order was never seen: the removal waits in a record of its own, so it stays removed if it
        # arrives late, and no profile is made for nobody.
        [waiting] = repository.orders.values()
        assert (waiting.order, waiting.removed_at, waiting.profile_id) == (None, NOW, None)
    else:
        assert repository.orders == {}
    assert repository.profiles == {}


def test_a_merge_keeps_the_unmarked_events_of_both_profiles_and_a_bounded_list() -> None:
    survivor, other = new_profile("ws_a", "p-1", NOW), new_profile("ws_a", "p-2", NOW)
    for n in range(UNMARKED_KEPT + 3):
        survivor = with_unmarked(survivor, event_digest("st_a", f"e-{n}"))
    other = with_unmarked(other, event_digest("st_a", "theirs"))
    assert len(survivor.unmarked_events) == UNMARKED_KEPT
    assert event_digest("st_a", "e-0") not in survivor.unmarked_events
    merged = combine(survivor, [other], NOW)
    assert event_digest("st_a", "theirs") in merged.unmarked_events
    assert event_digest("st_a", f"e-{UNMARKED_KEPT + 2}") in merged.unmarked_events
    assert event_digest("st_a", "e-1") != event_digest("st_b", "e-1")


def _viewed(event_id: str, anonymous_id: str = "a-1") -> ActivityEvent:
    return ActivityEvent(workspace_id="ws_a", store_id="st_a", platform=Platform.SHOPIFY, event_id=event_id,
                         type=ActivityType.PRODUCT_VIEWED, occurred_at=NOW, anonymous_id=anonymous_id)


def test_a_browsers_request_is_one_write_new_or_known(repository: FakeProfileRepository) -> None:
    outcome = apply_events(repository, [_viewed(f"e-{n}") for n in range(4)], NOW)
    assert (outcome.applied, repository.saves) == (4, 1)  # the new profile with every view folded into it
    profile_id = repository.profile_id_for_identity("ws_a", "anon#st_a#a-1")
    assert profile_id is not None
    profile = repository.get_profile("ws_a", profile_id)
    assert profile is not None and profile.activity_counts == {"product_viewed": 4}
    outcome = apply_events(repository, [_viewed(f"e-{n}") for n in range(4, 8)], NOW)
    assert (outcome.applied, repository.saves) == (4, 2)


def test_only_one_shoppers_consecutive_activities_fold(repository: FakeProfileRepository) -> None:
    apply_events(repository, [_viewed("a-0"), _viewed("b-0", "b")], NOW)
    saves = repository.saves
    events = [_viewed("a-1"), _viewed("a-2"), _viewed("b-1", "b"), _viewed("a-3")]
    assert apply_events(repository, events, NOW).applied == 4
    assert repository.saves - saves == 3  # a-1 and a-2 together, then b-1, then a-3


def test_a_fold_is_at_most_what_a_profile_remembers(repository: FakeProfileRepository) -> None:
    apply_events(repository, [_viewed("e-0")], NOW)
    saves = repository.saves
    assert apply_events(repository, [_viewed(f"e-{n}") for n in range(1, 2 * FOLD_LIMIT + 1)], NOW).applied == (
        2 * FOLD_LIMIT)
    assert repository.saves - saves == 2
