"""Consent as a legal record (docs/consent.md): signed sources are authoritative, a browser may withdraw but
only ask to subscribe, and what an unsigned identify says about a known shopper reaches nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from itertools import permutations
from typing import Any

import pytest
from crm.consent import (
    ConsentNotConfirmable,
    confirm_request,
    consent_history,
    with_consent_statements,
    with_statements,
)
from crm.models.canonical import Touch
from crm.models.consent import Channel, Consent, ConsentRequest, ConsentState
from crm.models.profile import Profile, new_profile
from crm.profiles import known_from_signed_source, with_touch, without_browser_contact
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import NOW

EMAIL, SMS = Channel.EMAIL, Channel.SMS
SUBSCRIBED, UNSUBSCRIBED, NOT_SUBSCRIBED = ConsentState.SUBSCRIBED, ConsentState.UNSUBSCRIBED, \
    ConsentState.NOT_SUBSCRIBED
VICTIM = "victim@example.com"
ATTACKER_BROWSER = "attacker-browser"
T0 = NOW - timedelta(days=3)


def stated(state: ConsentState, at: datetime, source: str = "shopify:customers/update",
           channel: Channel = EMAIL) -> Consent:
    return Consent(channel=channel, state=state, source=source, at=at)


def browser(state: ConsentState, at: datetime, channel: Channel = EMAIL) -> Consent:
    return stated(state, at, "track:identify", channel)


def profile(**fields: Any) -> Profile:
    return new_profile("ws_a", "p1", NOW).model_copy(update=fields)


# --- the rules, pure ---------------------------------------------------------------------------


def test_a_browser_subscribe_is_a_request_awaiting_confirmation_not_consent() -> None:
    consents, requests = with_statements({}, {}, [browser(SUBSCRIBED, T0)], {EMAIL: "jane@example.com"})
    assert consents == {}
    assert requests == {"email": ConsentRequest(channel=EMAIL, source="track:identify", at=T0,
                                                address="jane@example.com")}


def test_a_browser_may_withdraw_what_a_signed_source_granted() -> None:
    signed = stated(SUBSCRIBED, T0)
    consents, _ = with_statements({"email": signed}, {}, [browser(UNSUBSCRIBED, T0 + timedelta(hours=1))], {})
    assert consents["email"].state is UNSUBSCRIBED and consents["email"].source == "track:identify"


def test_a_signed_statement_after_a_request_closes_it_and_wins() -> None:
    _, requests = with_statements({}, {}, [browser(SUBSCRIBED, T0)], {})
    consents, requests = with_statements({}, requests, [stated(UNSUBSCRIBED, T0 + timedelta(minutes=1))], {})
    assert consents["email"].state is UNSUBSCRIBED
    assert requests == {}


def test_a_request_older_than_the_held_statement_or_to_a_subscriber_is_moot() -> None:
    held = {"email": stated(UNSUBSCRIBED, T0)}
    assert with_statements(held, {}, [browser(SUBSCRIBED, T0 - timedelta(hours=1))], {})[1] == {}
    subscribed = {"email": stated(SUBSCRIBED, T0)}
    assert with_statements(subscribed, {}, [browser(SUBSCRIBED, T0 + timedelta(hours=1))], {})[1] == {}


statements = st.lists(st.builds(
    Consent, channel=st.sampled_from(Channel), state=st.sampled_from(ConsentState),
    source=st.sampled_from(["track:identify", "shopify:customers/update", "custom:customer", "import:customers.csv"]),
    at=st.integers(min_value=0, max_value=20).map(lambda hours: T0 + timedelta(hours=hours))), max_size=5)


@given(statements)
def test_the_record_does_not_depend_on_the_order_statements_arrive_in(given_statements: list[Consent]) -> None:
    outcomes = {json.dumps([{k: v.model_dump(mode="json") for k, v in sorted(part.items())}
                            for part in with_statements({}, {}, order, {})])
                for order in permutations(given_statements)}
    assert len(outcomes) == 1


@given(statements)
def test_no_browser_statement_ever_grants_consent(given_statements: list[Consent]) -> None:
    consents, _ = with_statements({}, {}, given_statements, {})
    for consent in consents.values():
        assert not (consent.from_browser and consent.state is SUBSCRIBED)


def test_confirming_a_request_grants_consent_from_the_confirmation() -> None:
    typed = profile(email="jane@example.com", contact_sources={"email": f"{T0.isoformat()}|track|st_a|e-1"})
    asked = with_consent_statements(typed, [browser(SUBSCRIBED, T0)])
    confirmed = confirm_request(asked, EMAIL, "jane@example.com", T0 + timedelta(hours=2))
    assert confirmed.consents["email"] == stated(SUBSCRIBED, T0 + timedelta(hours=2), "double_opt_in")
    assert confirmed.consent_requests == {}
    assert not known_from_signed_source(asked)
    assert without_browser_contact(confirmed).email == "jane@example.com"  # the proven address is kept
    [line] = consent_history(asked, confirmed)
    assert (line.type, line.occurred_at, line.summary) == ("consent_changed", T0 + timedelta(hours=2), {
        "channel": "email", "new": "subscribed", "source": "double_opt_in"})


@pytest.mark.parametrize(("channel", "address", "message"), [
    (EMAIL, "someone-else@example.com", "another address"),
    (SMS, "+16135550100", "no sms consent request"),
])
def test_a_confirmation_without_its_request_or_to_another_address_is_refused(channel: Channel, address: str,
                                                                             message: str) -> None:
    asked = with_consent_statements(profile(email="jane@example.com", phone="+16135550100"),
                                    [browser(SUBSCRIBED, T0)])
    with pytest.raises(ConsentNotConfirmable, match=message):
        confirm_request(asked, channel, address, T0 + timedelta(hours=1))


def test_every_change_is_a_timeline_line_with_old_and_new_state_source_and_time() -> None:
    before = profile(consents={"email": stated(SUBSCRIBED, T0)})
    after = with_consent_statements(before, [stated(UNSUBSCRIBED, T0 + timedelta(days=1), "shopify:customers/update"),
                                             browser(SUBSCRIBED, T0 + timedelta(days=2), SMS)])
    lines = {line.type: line for line in consent_history(before, after)}
    assert lines["consent_changed"].occurred_at == T0 + timedelta(days=1)
    assert lines["consent_changed"].summary == {"channel": "email", "old": "subscribed", "new": "unsubscribed",
                                                "source": "shopify:customers/update"}
    assert lines["consent_requested"].occurred_at == T0 + timedelta(days=2)
    assert lines["consent_requested"].summary == {"channel": "sms", "new": "pending_confirmation",
                                                  "source": "track:identify"}
    assert consent_history(after, after) == []


def test_a_browser_touch_does_not_rewrite_a_known_shoppers_attribution() -> None:
    signed = Touch(source="google", medium="cpc", at=T0)
    known = with_touch(profile(orders_count=1), signed)
    assert known_from_signed_source(known)
    assert with_touch(known, Touch(source="evil", at=NOW), from_browser=True) == known
    anonymous = profile()
    assert with_touch(anonymous, signed, from_browser=True).last_touch == signed  # its own browser's visit
