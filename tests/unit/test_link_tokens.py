"""Signed links (crm.messaging.unsubscribe): tampering, other keys, rotation, purposes, expiry; and what a
followed link becomes on the ingest path (crm.messaging.links), applied by crm.profiles's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from crm.archive import frame, header_from_metadata, object_metadata, unframe
from crm.messaging.links import LinkStatement, link_events
from crm.messaging.unsubscribe import (
    CONFIRM_MAX_AGE,
    LinkClaims,
    LinkInvalid,
    LinkPurpose,
    Links,
    SigningKeys,
    claims_for,
    key_id,
    sign,
    verify,
)
from crm.models.consent import Channel, Consent, ConsentRequest, ConsentState
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.profile import new_profile
from crm.models.stores import Platform
from crm.profiles import apply_activity
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import NOW

KEY = b"k" * 32
OTHER = b"o" * 32
KEYS = SigningKeys(current=KEY)


def _claims(purpose: LinkPurpose = LinkPurpose.UNSUBSCRIBE, at: datetime = NOW) -> LinkClaims:
    return claims_for(purpose, "w1", "p1", "ada@example.com", Channel.EMAIL, "s1", at)


def test_a_signed_token_verifies_and_is_url_safe() -> None:
    token = sign(_claims(), KEYS)
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    assert verify(token, KEYS, LinkPurpose.UNSUBSCRIBE, NOW + timedelta(days=3650)) == _claims()
    assert token.split(".")[0] == key_id(KEY)


@given(at=st.integers(min_value=0, max_value=2**31), replacement=st.sampled_from("AB_-Qgw09"))
def test_any_changed_character_is_refused(at: int, replacement: str) -> None:
    token = sign(_claims().model_copy(update={"issued_at": at}), KEYS)
    for index in range(len(token)):
        if token[index] in (".", replacement):
            continue
        changed = token[:index] + replacement + token[index + 1:]
        with pytest.raises(LinkInvalid):
            verify(changed, KEYS, LinkPurpose.UNSUBSCRIBE, NOW)


def test_claims_swapped_under_a_valid_signature_are_refused() -> None:
    kid, _, signature = sign(_claims(), KEYS).split(".")
    _, other_body, _ = sign(claims_for(LinkPurpose.UNSUBSCRIBE, "w1", "p2", "eve@example.com", Channel.EMAIL,
                                       "s1", NOW), KEYS).split(".")
    with pytest.raises(LinkInvalid) as raised:
        verify(f"{kid}.{other_body}.{signature}", KEYS, LinkPurpose.UNSUBSCRIBE, NOW)
    assert raised.value.status == 404


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "x" * 5000, "k.%%%.sig", "..", "a.b.!!!"])
def test_malformed_tokens_are_a_clear_4xx(token: str) -> None:
    with pytest.raises(LinkInvalid) as raised:
        verify(token, KEYS, LinkPurpose.UNSUBSCRIBE, NOW)
    assert raised.value.status in (400, 404)


def test_after_a_rotation_old_links_still_verify_and_new_ones_use_the_new_key() -> None:
    old_token = sign(_claims(), SigningKeys(current=KEY))
    rotated = SigningKeys(current=OTHER, previous=(KEY,))
    assert verify(old_token, rotated, LinkPurpose.UNSUBSCRIBE, NOW) == _claims()
    assert sign(_claims(), rotated).split(".")[0] == key_id(OTHER)
    with pytest.raises(LinkInvalid):  # two rotations later the old key is gone
        verify(old_token, SigningKeys(current=b"n" * 32, previous=(OTHER,)), LinkPurpose.UNSUBSCRIBE, NOW)


def test_a_token_is_good_for_its_purpose_only_and_a_confirmation_expires() -> None:
    confirm = sign(_claims(LinkPurpose.CONFIRM), KEYS)
    with pytest.raises(LinkInvalid):
        verify(confirm, KEYS, LinkPurpose.UNSUBSCRIBE, NOW)
    assert verify(confirm, KEYS, LinkPurpose.CONFIRM, NOW + CONFIRM_MAX_AGE).purpose is LinkPurpose.CONFIRM
    with pytest.raises(LinkInvalid) as raised:
        verify(confirm, KEYS, LinkPurpose.CONFIRM, NOW + CONFIRM_MAX_AGE + timedelta(seconds=1))
    assert raised.value.status == 410


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        SigningKeys(current=b"short")


def test_links_point_at_the_public_api() -> None:
    url = Links(KEYS, "http://127.0.0.1:8000/").url(LinkPurpose.UNSUBSCRIBE, "w1", "p1", "ada@example.com",
                                                    Channel.EMAIL, "s1", NOW)
    prefix = "http://127.0.0.1:8000/unsubscribe/"
    assert url.startswith(prefix)
    assert verify(url.removeprefix(prefix), KEYS, LinkPurpose.UNSUBSCRIBE, NOW) == _claims()


@given(workspace=st.text(min_size=1, max_size=40), profile=st.text(min_size=1, max_size=60),
       address=st.emails(), channel=st.sampled_from(Channel), store=st.text(min_size=1, max_size=40),
       purpose=st.sampled_from(LinkPurpose),
       # hypothesis takes naive bounds and makes the values aware with ``timezones``
       at=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1),  # noqa: DTZ001
                       timezones=st.just(UTC)),
       key=st.binary(min_size=16, max_size=64))
def test_every_claim_round_trips(workspace: str, profile: str, address: str, channel: Channel, store: str,
                                 purpose: LinkPurpose, at: datetime, key: bytes) -> None:
    claims = claims_for(purpose, workspace, profile, address, channel, store, at)
    assert verify(sign(claims, SigningKeys(current=key)), SigningKeys(current=key), purpose, at) == claims


# --- what a followed link becomes --------------------------------------------------------------


def _followed(purpose: LinkPurpose, at: datetime) -> list:  # type: ignore[type-arg]
    statement = LinkStatement(claims=_claims(purpose), followed_at=at, token_digest="d" * 32)
    envelope = IngestEnvelope(platform=Platform.CUSTOM, source="link", workspace_id="w1", store_id="s1",
                              meta=DeliveryMeta(topic="link/x", delivery_id="d"), received_at=at,
                              body=statement.model_dump_json())
    return link_events(envelope, statement.model_dump_json().encode())


def _subscribed_profile():  # type: ignore[no-untyped-def]
    profile = new_profile("w1", "p1", NOW).model_copy(update={"email": "ada@example.com"})
    return profile.model_copy(update={"consents": {"email": Consent(
        channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="shopify:customers/update", at=NOW)}})


def test_an_unsubscribe_withdraws_email_consent_with_its_source() -> None:
    at = NOW + timedelta(days=2)
    [event] = _followed(LinkPurpose.UNSUBSCRIBE, at)
    assert (event.email, event.from_browser, event.confirms) == ("ada@example.com", False, None)
    after = apply_activity(_subscribed_profile(), event, at)
    assert after.consents["email"] == Consent(channel=Channel.EMAIL, state=ConsentState.UNSUBSCRIBED,
                                              source="unsubscribe link", at=at)


def test_a_confirmation_grants_only_an_open_request_for_the_profiles_address() -> None:
    at = NOW + timedelta(hours=1)
    [event] = _followed(LinkPurpose.CONFIRM, at)
    bare = new_profile("w1", "p1", NOW).model_copy(update={"email": "ada@example.com"})
    assert apply_activity(bare, event, at).consents == {}  # nothing was requested: nothing to confirm
    asked = bare.model_copy(update={"consent_requests": {"email": _request(NOW, "ada@example.com")}})
    confirmed = apply_activity(asked, event, at)
    assert confirmed.consents["email"].state is ConsentState.SUBSCRIBED
    assert confirmed.consents["email"].source == "double_opt_in"
    assert confirmed.consent_requests == {}
    # The profile's address changed since the email was sent: the old address cannot confirm, nor come back.
    moved = asked.model_copy(update={"email": "new@example.com"})
    after_move = apply_activity(moved, event, at)
    assert (after_move.consents, after_move.email) == ({}, "new@example.com")


def _request(at: datetime, address: str) -> ConsentRequest:
    return ConsentRequest(channel=Channel.EMAIL, source="track:identify", at=at, address=address)


def test_a_followed_link_is_archived_and_replayed_as_a_link() -> None:
    statement = LinkStatement(claims=_claims(), followed_at=NOW, token_digest="d" * 32).model_dump_json()
    envelope = IngestEnvelope(platform=Platform.CUSTOM, source="link", workspace_id="w1", store_id="s1",
                              meta=DeliveryMeta(topic="link/unsubscribe", delivery_id="d"), received_at=NOW,
                              body=statement)
    [(header, body)] = unframe(frame(envelope, statement.encode()))
    assert header.envelope(body) == envelope.model_copy(update={"archived": True})
    stored = header_from_metadata(object_metadata(envelope), len(statement))
    assert stored.source == "link"
    [event] = link_events(stored.envelope(statement.encode()), statement.encode())
    assert event.consents[0].state is ConsentState.UNSUBSCRIBED
