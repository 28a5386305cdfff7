"""The security review's reproduction of forged consent through the public /track API (issue 9, finding 3),
through the same pipeline the profiles function runs: what an unsigned identify naming a known shopper's
email may change (docs/consent.md). Only modules that existed before the fix are imported, so these
tests fail on the old code by their assertions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crm.ingestion import apply_event
from crm.models.canonical import CustomerRecord
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.profile import Profile, new_profile
from crm.models.stores import Platform
from crm.profiles import apply_activity
from crm.tracking import track_events

from tests.builders import NOW, customer_record, order
from tests.fakes import FakeProfileRepository

VICTIM = "victim@example.com"
ATTACKER_BROWSER = "attacker-browser"
T0 = NOW - timedelta(days=3)
UNSUBSCRIBED, NOT_SUBSCRIBED = ConsentState.UNSUBSCRIBED, ConsentState.NOT_SUBSCRIBED


def stated(state: ConsentState, at: datetime, source: str = "shopify:customers/update") -> Consent:
    return Consent(channel=Channel.EMAIL, state=state, source=source, at=at)


def track(*events: dict[str, Any], anonymous_id: str = ATTACKER_BROWSER, received_at: datetime = NOW) -> list[Any]:
    raw = json.dumps({"anonymous_id": anonymous_id, "events": list(events)}).encode()
    envelope = IngestEnvelope(platform=Platform.SHOPIFY, source="track", workspace_id="ws_a", store_id="st_a",
                              meta=DeliveryMeta(topic="track", delivery_id="d"), received_at=received_at,
                              body=raw.decode())
    return list(track_events(envelope, raw))


FORGED_IDENTIFY = {"type": "identify", "event_id": "forged", "occurred_at": "2099-01-01T00:00:00Z",
                   "email": VICTIM, "phone": "+16135550199", "consent": {"email": "subscribed", "sms": "subscribed"},
                   "url": "https://shop.example/?utm_source=evil", "utm": {"source": "evil", "medium": "forged"}}


def the_profile(repository: FakeProfileRepository, identity: str = f"email#{VICTIM}") -> Profile:
    profile_id = repository.profile_id_for_identity("ws_a", identity)
    assert profile_id is not None
    found = repository.get_profile("ws_a", profile_id)
    assert found is not None
    return found


def signed_customer(state: ConsentState, at: datetime) -> CustomerRecord:
    record = customer_record(email=VICTIM, first_name="Vic", updated_at=at)
    return record.model_copy(update={"consents": (stated(state, at),)})


@pytest.fixture
def victim() -> FakeProfileRepository:
    """A shopper known from signed sources: a Shopify account, not subscribed, and an order from Google Ads."""
    repository = FakeProfileRepository()
    apply_event(repository, signed_customer(NOT_SUBSCRIBED, T0), NOW)
    placed = order(email=VICTIM, created_at=T0).model_copy(
        update={"landing_site": "/?utm_source=google&utm_medium=cpc"})
    apply_event(repository, placed, NOW)
    return repository


def test_a_forged_identify_subscribes_nobody_and_a_later_signed_unsubscribe_wins(
        victim: FakeProfileRepository) -> None:
    for event in track(FORGED_IDENTIFY):
        apply_event(victim, event, NOW)
    forged = the_profile(victim)
    assert forged.consents["email"].state is NOT_SUBSCRIBED  # still what Shopify said
    assert "sms" not in forged.consents
    assert forged.consent_requests["email"].at == NOW  # the year 2099 clamped to the receipt time

    apply_event(victim, signed_customer(UNSUBSCRIBED, NOW + timedelta(minutes=5)), NOW + timedelta(minutes=5))
    after = the_profile(victim)
    assert after.consents["email"] == stated(UNSUBSCRIBED, NOW + timedelta(minutes=5))
    assert "email" not in after.consent_requests  # the shopper's later statement closed the request


def test_a_forged_identify_leaves_the_victims_contact_fields_and_touches_alone(
        victim: FakeProfileRepository) -> None:
    # The attacker's browser first lands from its own campaign, then claims the victim's email.
    for event in track({"type": "page_viewed", "event_id": "land", "occurred_at": NOW.isoformat(),
                        "url": "https://shop.example/?utm_source=attacker", "utm": {"source": "attacker"}}):
        apply_event(victim, event, NOW)
    before = the_profile(victim)
    for event in track(FORGED_IDENTIFY):
        apply_event(victim, event, NOW)
    after = the_profile(victim)
    assert (after.first_touch, after.last_touch) == (before.first_touch, before.last_touch)
    assert after.last_touch is not None and after.last_touch.source == "google"
    assert (after.email, after.phone, after.first_name) == (VICTIM, None, "Vic")


def test_the_login_flow_still_joins_the_browser_and_its_shoppers_orders() -> None:
    repository = FakeProfileRepository()
    for event in track({"type": "page_viewed", "event_id": "e-1", "occurred_at": T0.isoformat(),
                        "url": "https://shop.example/?utm_source=news", "utm": {"source": "news"}},
                       {"type": "identify", "event_id": "login", "occurred_at": (T0 + timedelta(minutes=1)).isoformat(),
                        "email": "Jane@Example.com", "consent": {"email": "subscribed"}},
                       anonymous_id="jane-browser"):
        apply_event(repository, event, NOW)
    jane = the_profile(repository, "email#jane@example.com")
    assert jane.profile_id == the_profile(repository, "anon#st_a#jane-browser").profile_id
    assert jane.email == "jane@example.com" and jane.first_touch is not None  # her own visit, her own profile
    assert "email" in jane.consent_requests and "email" not in jane.consents

    placed = order(email="jane@example.com", created_at=NOW - timedelta(hours=1)).model_copy(
        update={"anonymous_id": "jane-browser"})
    apply_event(repository, placed, NOW)
    assert the_profile(repository, "email#jane@example.com").profile_id == jane.profile_id
    assert the_profile(repository, "email#jane@example.com").orders_count == 1


def test_consent_changes_are_on_the_profiles_timeline(victim: FakeProfileRepository) -> None:
    for event in track(FORGED_IDENTIFY):
        apply_event(victim, event, NOW)
    apply_event(victim, signed_customer(UNSUBSCRIBED, NOW + timedelta(minutes=5)), NOW + timedelta(minutes=5))
    profile_id = the_profile(victim).profile_id
    lines = [(e.type, e.summary.get("old"), e.summary["new"], e.summary["source"], e.occurred_at)
             for e in reversed(victim.timeline("ws_a", [profile_id], None, 100)) if e.type.startswith("consent")]
    assert lines == [
        ("consent_changed", None, "not_subscribed", "shopify:customers/update", T0),
        ("consent_requested", "not_subscribed", "pending_confirmation", "track:identify", NOW),
        ("consent_requested", None, "pending_confirmation", "track:identify", NOW),  # sms: nothing held
        ("consent_changed", "not_subscribed", "unsubscribed", "shopify:customers/update", NOW + timedelta(minutes=5)),
    ]


def test_a_browser_identify_on_an_unknown_email_keeps_its_contact_fields_until_a_signed_source_knows_them() -> None:
    anonymous = apply_activity(new_profile("ws_a", "p2", NOW), track(FORGED_IDENTIFY)[0], NOW)
    assert anonymous.phone == "+16135550199"
    # The same shopper through the pipeline: once a signed order names the email, the browser's phone goes.
    repository = FakeProfileRepository()
    for event in track(FORGED_IDENTIFY):
        apply_event(repository, event, NOW)
    assert the_profile(repository).phone == "+16135550199"
    apply_event(repository, order(email=VICTIM, created_at=NOW - timedelta(hours=1)), NOW)
    assert the_profile(repository).phone is None
    assert datetime(2099, 1, 1, tzinfo=UTC) not in {c.at for c in the_profile(repository).consents.values()}
