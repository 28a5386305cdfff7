"""crm.flows.history.workspace_history over the in-memory repositories: which timeline lines become which
events, the profile rolled back to the period's start and carried forward, trigger-segment entries, merged
profiles and the time budget."""

from __future__ import annotations

from datetime import datetime, timedelta

from crm.flows.builtin import ABANDONED_CHECKOUT, BUILTIN_FLOWS, WIN_BACK
from crm.flows.history import workspace_history
from crm.models.consent import Consent, ConsentState
from crm.models.profile import Activity, Profile, TimelineEntry, new_profile
from crm.models.segments import HeldSegments, Member
from crm.ports import Change

from tests.builders import NOW
from tests.fakes import FakeProfileRepository, FakeSegmentStore

WS = "ws1"
START, END = NOW - timedelta(days=30), NOW


def _line(profile_id: str, kind: str, at: datetime, ref: str, **summary: object) -> TimelineEntry:
    return TimelineEntry(workspace_id=WS, profile_id=profile_id, store_id="st", occurred_at=at, type=kind, ref=ref,
                         summary=summary)


def _store(*entries: tuple[Profile, list[TimelineEntry]]) -> tuple[FakeProfileRepository, FakeSegmentStore]:
    profiles = FakeProfileRepository()
    for profile, lines in entries:
        profiles.commit(Change(WS, profiles=((profile, None),), timeline=tuple(lines)))
    return profiles, FakeSegmentStore(profiles)


def _ann(**update: object) -> Profile:
    return new_profile(WS, "ann", NOW - timedelta(days=90)).model_copy(update={"email": "ann@example.com", **update})


def test_lines_become_events_and_the_profile_stands_as_it_was_at_each() -> None:
    unsubscribed_at = NOW - timedelta(days=5)
    current = _ann(consents={"email": Consent(channel="email", state=ConsentState.UNSUBSCRIBED, source="shopify",
                                              at=unsubscribed_at)},
                   orders_count=3, last_order_at=NOW - timedelta(days=10),
                   last_checkout=Activity(at=NOW - timedelta(days=20), event_id="chk", type="checkout_started"))
    profiles, segments = _store((current, [
        _line("ann", "checkout_started", NOW - timedelta(days=40), "old", checkout="c0"),  # before the period
        _line("ann", "checkout_started", NOW - timedelta(days=20), "chk", checkout="c1"),
        _line("ann", "order", NOW - timedelta(days=10), "st:o1", currency="USD", total="40.00", net="40.00",
              counted=True),
        _line("ann", "order", NOW - timedelta(days=9), "st:o2", currency="USD", total="5.00", net="0.00",
              unpaid=True),
        _line("ann", "consent_changed", unsubscribed_at, "c", channel="email", old="subscribed", new="unsubscribed",
              source="shopify"),
        _line("ann", "product_viewed", NOW - timedelta(days=3), "anon"),  # anonymous browsing: no flow event
        _line("ann", "email_delivered", NOW - timedelta(days=2), "m1"),  # not a bus event
    ]))
    history, read, complete = workspace_history(profiles, segments, WS, BUILTIN_FLOWS[ABANDONED_CHECKOUT], START,
                                                END)
    assert (read, complete) == (1, True)
    assert [(h.event.type, h.event.occurred_at) for h in history] == [
        ("CheckoutStarted", NOW - timedelta(days=20)), ("OrderPlaced", NOW - timedelta(days=10)),
        ("OrderPlaced", NOW - timedelta(days=9)), ("ConsentChanged", unsubscribed_at)]
    checkout, paid, unpaid, consent = history
    assert checkout.event.detail["checkout_id"] == "c1"
    # rolled back: subscribed until the change, no order in the period yet, the checkout just made
    assert checkout.profile.consents["email"].state is ConsentState.SUBSCRIBED
    assert (checkout.profile.last_order_at, checkout.profile.orders_count) == (None, 2)
    held = checkout.profile.last_checkout
    assert held is not None and held.event_id == checkout.event.event_id
    assert paid.event.detail["order_id"] == "o1" and paid.event.detail["paid"] is True
    assert (paid.profile.last_order_at, paid.profile.orders_count) == (NOW - timedelta(days=10), 3)
    assert unpaid.event.detail["paid"] is False and unpaid.profile.orders_count == 3
    assert consent.profile.consents["email"].state is ConsentState.UNSUBSCRIBED
    assert consent.profile.email == "ann@example.com"  # current, not rebuilt


def test_members_who_entered_a_trigger_segment_in_the_period_enter_at_their_time() -> None:
    joined = NOW - timedelta(days=4)
    profiles, segments = _store((_ann(), []), (new_profile(WS, "bob", NOW - timedelta(days=90)), []))
    segments.held_sets[(WS, "ann")] = HeldSegments(segment_ids=("builtin:churn_risk", "vip"))
    segments.memberships[(WS, "builtin:churn_risk")] = {
        "ann": Member(profile_id="ann", entered_at=joined),
        "bob": Member(profile_id="bob", entered_at=NOW - timedelta(days=60))}  # before the period
    history, read, _ = workspace_history(profiles, segments, WS, BUILTIN_FLOWS[WIN_BACK], START, END)
    assert read == 2
    [entered] = history
    assert (entered.event.type, entered.event.profile_id, entered.event.occurred_at) == (
        "SegmentEntered", "ann", joined)
    assert entered.event.detail["segment_id"] == "builtin:churn_risk"
    assert entered.segments == frozenset({"builtin:churn_risk", "vip"})


def test_a_merged_profile_is_read_through_its_survivor_and_the_budget_stops_the_reading() -> None:
    merged = new_profile(WS, "old", NOW - timedelta(days=90)).model_copy(update={"merged_into": "ann"})
    profiles, segments = _store(
        (_ann(merged_from=("old",)), [_line("ann", "checkout_started", NOW - timedelta(days=2), "a", checkout="c")]),
        (merged, [_line("old", "checkout_started", NOW - timedelta(days=3), "o", checkout="d")]))
    history, read, complete = workspace_history(profiles, segments, WS, BUILTIN_FLOWS[ABANDONED_CHECKOUT], START,
                                                END)
    assert (read, complete) == (1, True)
    assert [h.event.detail["checkout_id"] for h in history] == ["d", "c"]
    assert {h.profile.profile_id for h in history} == {h.event.profile_id for h in history} == {"ann"}
    assert workspace_history(profiles, segments, WS, BUILTIN_FLOWS[ABANDONED_CHECKOUT], START, END,
                             out_of_time=lambda: True) == ([], 0, False)
