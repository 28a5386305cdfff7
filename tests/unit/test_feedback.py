"""SES feedback and inbound SMS (crm.messaging.feedback): what suppresses, what withdraws consent, what is only
noted, on real-shaped records (events/flows-*.json, after SES's and two-way SMS's documented examples)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from crm.archive import archive_messages
from crm.flows.memory import MemoryFlowCounters, MemoryMessageLedger
from crm.ingestion import apply_envelope, apply_events
from crm.messaging.feedback import (
    COMPLAINT_SOURCE,
    SMS_STOP_SOURCE,
    FeedbackDeps,
    InboundSms,
    MessageEvents,
    apply_inbound_sms,
    apply_ses_event,
    read_inbound_sms,
    read_ses_event,
    ses_feedback,
    workspaces_sending_from,
)
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.messaging import MessagingSettings
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import customer_record
from tests.fakes import FakeIngestQueue, FakeProfileRepository, FakeRawArchive, FakeStoreDirectory, FakeSuppressions

EVENTS = Path(__file__).parents[2] / "events"
NOW = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
WORKSPACE = "ws_0123456789abcdef"
OUR_NUMBER = "+12125550101"
SHOPPER_PHONE = "+14255550182"


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


class World:
    """The ports feedback needs, in memory, with one known shopper (email and phone, both subscribed)."""

    def __init__(self, sms_sender: str | None = OUR_NUMBER) -> None:
        self.suppressions = FakeSuppressions()
        self.profiles = FakeProfileRepository()
        self.archive = FakeRawArchive()
        self.queue = FakeIngestQueue()
        self.settings = {WORKSPACE: MessagingSettings(sms_sender=sms_sender), "ws_other": MessagingSettings()}
        self.ledger, self.counters = MemoryMessageLedger(), MemoryFlowCounters()
        self.deps = FeedbackDeps(suppressions=self.suppressions, profiles=self.profiles, archive=self.archive,
                                 ingest=self.queue, workspaces=lambda: iter(self.settings),
                                 messaging_settings=lambda w: self.settings[w],
                                 events=MessageEvents(self.ledger, self.counters, self.profiles))

    def shopper(self, email: str = "recipient@example.com", phone: str | None = SHOPPER_PHONE) -> None:
        stated = NOW - timedelta(days=10)
        record = customer_record(email=email, phone=phone, workspace_id=WORKSPACE, updated_at=stated)
        record = record.model_copy(update={"consents": (
            Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="shopify:customers/update", at=stated),
            Consent(channel=Channel.SMS, state=ConsentState.SUBSCRIBED, source="shopify:customers/update", at=stated),
        )})
        apply_events(self.profiles, [record], stated)

    def profile_consent(self, channel: Channel, identity: str) -> Consent | None:
        profile_id = self.profiles.profile_id_for_identity(WORKSPACE, identity)
        assert profile_id is not None
        profile = self.profiles.get_profile(WORKSPACE, profile_id)
        assert profile is not None
        return profile.consents.get(channel.value)

    def run_ingest(self) -> None:
        """The profiles function: archive what was enqueued, then apply it, as it would."""
        archive_messages(self.queue.messages, self.archive)
        for message in self.queue.messages:
            outcome = apply_envelope(message, self.profiles, self.archive, self.queue, NOW, FakeStoreDirectory())
            assert outcome.dead_lettered is None, outcome


# --- SES: hard bounces ---------------------------------------------------------------------------------------

def test_a_hard_bounce_suppresses_the_normalised_address_in_the_sending_workspace_only() -> None:
    world = World()
    outcome = apply_ses_event(sample("flows-ses-bounce.json")["detail"], world.deps, NOW)
    assert (outcome.suppressed, outcome.workspaces, outcome.ignored) == (1, (WORKSPACE,), None)
    reason, at = world.suppressions.held[(WORKSPACE, "recipient@example.com")]
    assert reason == "hard bounce (General, 5.1.1)"
    assert at == datetime(2026, 3, 5, 0, 41, 2, 669000, tzinfo=UTC)  # SES's time, not the clock's
    assert not world.suppressions.is_suppressed("ws_other", "recipient@example.com")
    assert world.queue.messages == []  # a bounce says nothing about consent


def test_a_redelivered_bounce_keeps_the_first_reason_and_time() -> None:
    world = World()
    event = sample("flows-ses-bounce.json")["detail"]
    apply_ses_event(event, world.deps, NOW)
    later = copy.deepcopy(event)
    later["bounce"]["timestamp"] = "2026-04-01T00:00:00Z"
    later["bounce"]["bounceSubType"] = "NoEmail"
    apply_ses_event(later, world.deps, NOW)
    assert world.suppressions.held == {(WORKSPACE, "recipient@example.com"):
                                       ("hard bounce (General, 5.1.1)", datetime(2026, 3, 5, 0, 41, 2, 669000, UTC))}


def test_an_address_on_the_ses_account_suppression_list_is_suppressed_for_the_workspace() -> None:
    world = World()
    event = sample("flows-ses-bounce.json")["detail"]
    event["bounce"].update(bounceSubType="OnAccountSuppressionList",
                           bouncedRecipients=[{"emailAddress": "recipient@example.com"}])
    apply_ses_event(event, world.deps, NOW)
    assert world.suppressions.held[(WORKSPACE, "recipient@example.com")][0] == \
        "hard bounce (OnAccountSuppressionList)"


@pytest.mark.parametrize("bounce_type", ["Transient", "Undetermined"])
def test_a_soft_bounce_is_only_noted(bounce_type: str) -> None:
    world = World()
    event = sample("flows-ses-bounce.json")["detail"]
    event["bounce"].update(bounceType=bounce_type, bounceSubType="MailboxFull")
    outcome = apply_ses_event(event, world.deps, NOW)
    assert outcome.suppressed == 0 and world.suppressions.held == {}
    assert outcome.note == f"{bounce_type.lower()} bounce (MailboxFull): noted, not suppressed"


# --- SES: complaints -----------------------------------------------------------------------------------------

def test_a_complaint_suppresses_and_withdraws_email_consent_through_the_profiles_path() -> None:
    world = World()
    world.shopper()
    outcome = apply_ses_event(sample("flows-ses-complaint.json")["detail"], world.deps, NOW)
    assert (outcome.suppressed, outcome.withdrawn) == (1, 1)
    assert world.suppressions.held[(WORKSPACE, "recipient@example.com")][0] == "complaint (abuse)"
    [envelope] = world.queue.envelopes
    assert (envelope.source, envelope.workspace_id, envelope.store_id) == ("statement", WORKSPACE, "st_a")
    world.run_ingest()
    assert [d.meta.delivery_id for d, _ in world.archive.deliveries()] == [envelope.meta.delivery_id]  # kept raw
    consent = world.profile_consent(Channel.EMAIL, "email#recipient@example.com")
    assert consent == Consent(channel=Channel.EMAIL, state=ConsentState.UNSUBSCRIBED, source=COMPLAINT_SOURCE,
                              at=datetime(2026, 3, 5, 1, 11, 58, tzinfo=UTC))
    assert world.profile_consent(Channel.SMS, "email#recipient@example.com").state is ConsentState.SUBSCRIBED  # type: ignore[union-attr]
    profile_id = world.profiles.profile_id_for_identity(WORKSPACE, "email#recipient@example.com")
    lines = [e for e in world.profiles.timeline(WORKSPACE, [profile_id or ""], None, 50) if e.type == "consent_changed"]
    assert [(e.occurred_at, e.summary.get("old"), e.summary["new"]) for e in lines
            if e.summary["source"] == COMPLAINT_SOURCE] == [(consent.at, "subscribed", "unsubscribed")]


def test_a_redelivered_complaint_changes_the_profile_once() -> None:
    world = World()
    world.shopper()
    detail = sample("flows-ses-complaint.json")["detail"]
    apply_ses_event(detail, world.deps, NOW)
    apply_ses_event(detail, world.deps, NOW + timedelta(minutes=5))
    first, second = world.queue.messages
    assert apply_envelope(first, world.profiles, world.archive, world.queue, NOW, FakeStoreDirectory()).applied == 1
    assert apply_envelope(second, world.profiles, world.archive, world.queue, NOW, FakeStoreDirectory()).applied == 0


def test_a_complaint_about_an_address_no_profile_holds_suppresses_and_changes_no_profile() -> None:
    world = World()
    outcome = apply_ses_event(sample("flows-ses-complaint.json")["detail"], world.deps, NOW)
    assert (outcome.suppressed, outcome.withdrawn) == (1, 0)
    assert world.queue.messages == [] and world.profiles.profiles == {}


def test_a_complaint_whose_complainant_was_redacted_names_the_messages_recipient() -> None:
    world = World()
    detail = sample("flows-ses-complaint.json")["detail"]
    detail["complaint"]["complainedRecipients"] = []
    assert apply_ses_event(detail, world.deps, NOW).suppressed == 1
    assert world.suppressions.is_suppressed(WORKSPACE, "recipient@example.com")


def test_not_spam_feedback_is_no_complaint() -> None:
    world = World()
    world.shopper()
    detail = sample("flows-ses-complaint.json")["detail"]
    detail["complaint"]["complaintFeedbackType"] = "not-spam"
    outcome = apply_ses_event(detail, world.deps, NOW)
    assert (outcome.suppressed, outcome.withdrawn, world.queue.messages) == (0, 0, [])


# --- SES: what is ignored ------------------------------------------------------------------------------------

def test_an_event_of_a_message_the_crm_did_not_send_is_ignored() -> None:
    world = World()
    detail = sample("flows-ses-bounce.json")["detail"]
    del detail["mail"]["tags"]["workspace"]
    outcome = apply_ses_event(detail, world.deps, NOW)
    assert outcome.ignored is not None and "'workspace' tag" in outcome.ignored
    assert world.suppressions.held == {}


@pytest.mark.parametrize("detail", [{}, {"eventType": "Bounce"}, {"eventType": "Bounce", "mail": {"messageId": 3}},
                                    {"eventType": "Bounce", "mail": {"messageId": "m"}, "bounce": {"bounceType": 1}}])
def test_an_unreadable_record_is_ignored_with_the_reason_never_raised(detail: dict[str, Any]) -> None:
    world = World()
    outcome = apply_ses_event(detail, world.deps, NOW)
    assert outcome.ignored is not None and outcome.ignored.startswith("not an SES event record")
    assert world.suppressions.held == {}


_EVENT_TYPES = st.sampled_from(["Bounce", "Complaint", "Send", "Delivery", "Reject", "Open", "Click",
                                "Rendering Failure", "DeliveryDelay", "Subscription"]) | st.text(max_size=20)


@given(event_type=_EVENT_TYPES, with_bounce=st.booleans(), with_complaint=st.booleans(),
       bounce_type=st.sampled_from(["Permanent", "Transient", "Undetermined"]))
def test_only_a_permanent_bounce_or_a_complaint_ever_suppresses(event_type: str, with_bounce: bool,
                                                                with_complaint: bool, bounce_type: str) -> None:
    """Whatever else an event carries (a bounce object on a Delivery, a complaint on a Send...), only the event
    types Bounce (Permanent) and Complaint suppress or touch consent."""
    bounce = sample("flows-ses-bounce.json")["detail"]
    detail: dict[str, Any] = {"eventType": event_type, "mail": bounce["mail"]}
    if with_bounce:
        detail["bounce"] = {**bounce["bounce"], "bounceType": bounce_type}
    if with_complaint:
        detail["complaint"] = sample("flows-ses-complaint.json")["detail"]["complaint"]
    feedback = ses_feedback(read_ses_event(detail))
    suppresses = (event_type == "Bounce" and with_bounce and bounce_type == "Permanent") or \
        (event_type == "Complaint" and with_complaint)
    assert bool(feedback.suppress) is suppresses
    assert bool(feedback.withdraw) is (event_type == "Complaint" and with_complaint)


# --- inbound SMS ---------------------------------------------------------------------------------------------

def test_a_stop_reply_withdraws_sms_consent_in_the_workspace_sending_from_that_number() -> None:
    world = World()
    world.shopper()
    outcome = apply_inbound_sms(json.dumps(sample("flows-sns-inbound-sms.json")), world.deps, NOW)
    assert (outcome.withdrawn, outcome.workspaces, outcome.ignored) == (1, (WORKSPACE,), None)
    [envelope] = world.queue.envelopes
    assert envelope.meta.delivery_id == "sms:cae173d2-66b9-564c-8309-21f858e9fb84"
    world.run_ingest()
    identity = f"phone#{SHOPPER_PHONE}"
    assert world.profile_consent(Channel.SMS, identity) == Consent(
        channel=Channel.SMS, state=ConsentState.UNSUBSCRIBED, source=SMS_STOP_SOURCE, at=NOW)
    assert world.profile_consent(Channel.EMAIL, identity).state is ConsentState.SUBSCRIBED  # type: ignore[union-attr]


def test_a_stop_reply_wrapped_in_an_sns_notification_reads_the_same() -> None:
    raw = sample("flows-sns-inbound-sms.json")
    wrapped = {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:inbound",
               "Message": json.dumps(raw)}
    assert read_inbound_sms(json.dumps(wrapped)) == read_inbound_sms(raw)


@pytest.mark.parametrize(("body", "opts_out"), [
    ("STOP", True), ("stop", True), (" Stop. ", True), ("STOPALL", True), ("unsubscribe", True), ("Cancel", True),
    ("end", True), ("QUIT", True), ("revoke", True), ("opt out", True), ("Opt-out", True),
    ("stop texting me", True), ("START", False), ("HELP", False), ("don't stop", False), ("", False),
    ("Where is my order?", False), ("stopwatch", False),
])
def test_which_replies_opt_out(body: str, opts_out: bool) -> None:
    message = InboundSms.model_validate({**sample("flows-sns-inbound-sms.json"), "messageBody": body,
                                         "messageKeyword": "KEYWORD_123456789012"})
    assert message.opts_out is opts_out


def test_a_reply_that_is_no_opt_out_changes_nothing() -> None:
    world = World()
    world.shopper()
    outcome = apply_inbound_sms({**sample("flows-sns-inbound-sms.json"), "messageBody": "HELP"}, world.deps, NOW)
    assert outcome.withdrawn == 0 and world.queue.messages == []


def test_a_stop_to_a_number_no_workspace_sends_from_is_ignored() -> None:
    world = World(sms_sender="MyShop")  # a sender id: replies cannot come back to it
    world.shopper()
    outcome = apply_inbound_sms(sample("flows-sns-inbound-sms.json"), world.deps, NOW)
    assert outcome.ignored is not None and world.queue.messages == []


def test_a_stop_from_a_phone_the_workspace_does_not_know_changes_no_profile() -> None:
    world = World()
    outcome = apply_inbound_sms(sample("flows-sns-inbound-sms.json"), world.deps, NOW)
    assert (outcome.withdrawn, outcome.workspaces) == (0, (WORKSPACE,))
    assert world.profiles.profiles == {}


@pytest.mark.parametrize("message", ["not json", "[]", json.dumps({"originationNumber": "+14255550182"}),
                                     json.dumps({"Type": "Notification", "Message": "{}"})])
def test_an_unreadable_inbound_message_is_ignored(message: str) -> None:
    outcome = apply_inbound_sms(message, World().deps, NOW)
    assert outcome.ignored is not None and outcome.ignored.startswith("not an inbound SMS message")


def test_numbers_match_in_e164_whatever_their_spelling() -> None:
    settings = [("ws_a", MessagingSettings(sms_sender="+1 (212) 555-0101")), ("ws_b", MessagingSettings()),
                ("ws_c", MessagingSettings(sms_sender="Shop")), ("ws_d", MessagingSettings(sms_sender="+12125550101"))]
    assert workspaces_sending_from("+12125550101", settings) == ["ws_a", "ws_d"]
    assert workspaces_sending_from("garbage", settings) == []
