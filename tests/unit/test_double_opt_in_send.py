"""The double opt-in email end to end over in-memory ports: a browser's subscribe (POST /track) is published as
ConsentRequested by the outbox, the flows service mails one confirmation to the profile's address (not twice
for a re-delivered event, never to a suppressed address, not for a request that was settled since), and its
link, followed, grants consent (crm.consent.confirm_request) with source double_opt_in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from crm.flows.engine import FlowEvent, last_send
from crm.flows.memory import MemoryFlowCounters, MemoryMessageLedger, MemorySplitWinners
from crm.flows.service import CLAIM_GRACE, DOUBLE_OPT_IN_RUN, FlowsService, Report, StepInFlight
from crm.messaging.defaults import DOUBLE_OPT_IN
from crm.messaging.links import follow_link, link_events
from crm.messaging.optin import OptInMessages
from crm.messaging.unsubscribe import LinkPurpose, Links, SigningKeys
from crm.models.consent import ConsentState
from crm.models.events import ConsentChanged, ConsentRequested
from crm.models.flows import FlowRun, StepOutcome, StepRecord
from crm.models.ingest import IngestEnvelope
from crm.models.messaging import EmailTemplate, MessagingSettings, TemplateRecord
from crm.models.profile import Profile

from tests.builders import NOW
from tests.fakes import (
    FakeEmailSender,
    FakeFlowCatalogue,
    FakeIngestQueue,
    FakeMessagingStore,
    FakeRawArchive,
    FakeRunStore,
    FakeSegmentStore,
    FakeSmsSender,
    FakeSuppressions,
    FakeWaitScheduler,
)
from tests.unit.test_flow_events import WS, StreamTap, apply, of_type, track

KEYS = SigningKeys(current=b"k" * 32)
BASE_URL = "https://crm.example"
SHOPPER = "ada@example.com"
ASKED_AT = "2026-03-01T10:00:00Z"


def _subscribe(browser: str = "browser-1", email: str = SHOPPER, at: str = ASKED_AT,
               event_id: str = "i-1") -> list[Any]:
    return track(browser, {"type": "identify", "event_id": event_id, "occurred_at": at, "email": email,
                           "consent": {"email": "subscribed"}})


class World:
    """The profiles pipeline's table (a StreamTap: what it writes is published as the outbox would) and the
    flows service over fakes, with a clock the test moves."""

    def __init__(self, *templates: TemplateRecord, settings: MessagingSettings | None = None) -> None:
        self.now = NOW
        self.tap = StreamTap()
        self.runs = FakeRunStore()
        self.email = FakeEmailSender()
        self.suppressions = FakeSuppressions()
        self.service = FlowsService(
            catalogue=FakeFlowCatalogue(), runs=self.runs, scheduler=FakeWaitScheduler(), profiles=self.tap,
            segments=FakeSegmentStore(self.tap),
            messaging=FakeMessagingStore(*templates, settings=settings or MessagingSettings(
                from_address="hello@shop.example", from_name="Shop")),
            suppressions=self.suppressions, email=self.email, sms=FakeSmsSender(),
            composer=OptInMessages(lambda: Links(KEYS, BASE_URL)), clock=lambda: self.now,
            ledger=MemoryMessageLedger(), counters=MemoryFlowCounters(), winners=MemorySplitWinners())

    def publish(self, events: list[Any]) -> list[ConsentRequested]:
        return of_type(apply(self.tap, events, self.now), ConsentRequested)

    def deliver(self, event: ConsentRequested) -> Report:
        return self.service.on_event(FlowEvent.of(event.type, event.model_dump(mode="json")))

    def profile(self, profile_id: str) -> Profile:
        found = self.tap.get_profile(WS, profile_id)
        assert found is not None
        return found

    def lines(self, profile_id: str, kind: str) -> list[dict[str, Any]]:
        return [entry.summary for entry in self.tap.timelines[(WS, profile_id)].values() if entry.type == kind]

    def follow(self, url: str) -> list[Any]:
        """The shopper clicks the confirmation and presses the button: the link's statement goes through the
        ingest queue and the profiles pipeline, like the public POST /confirm/{token}."""
        queue = FakeIngestQueue()
        follow_link(url.removeprefix(f"{BASE_URL}/confirm/"), LinkPurpose.CONFIRM, KEYS, FakeRawArchive(), queue,
                    self.now)
        [message] = queue.messages
        envelope = IngestEnvelope.model_validate_json(message)
        return apply(self.tap, list(link_events(envelope, envelope.body.encode())), self.now)


def _confirm_url(html: str) -> str:
    start = html.index(f"{BASE_URL}/confirm/")
    return html[start:html.index('"', start)]


def test_a_browser_subscribe_gets_one_confirmation_email_whose_link_grants_consent() -> None:
    world = World()
    [requested] = world.publish(_subscribe())
    assert (requested.channel, requested.source) == ("email", "track:identify")
    assert requested.event_id == (f"ConsentRequested:{WS}:{requested.profile_id}:{requested.occurred_at.isoformat()}"
                                  ":email:track:identify")
    assert SHOPPER not in requested.model_dump_json()  # events carry no contact data

    world.now = NOW + timedelta(minutes=1)
    report = world.deliver(requested)
    [email] = world.email.sent
    assert (email.to, email.from_address) == (SHOPPER, "hello@shop.example")
    assert email.unsubscribe_url is None  # a confirmation, not marketing
    assert report.sent == [(DOUBLE_OPT_IN_RUN, f"double_opt_in#{requested.occurred_at.isoformat()}", "ses-1")]
    assert world.lines(requested.profile_id, "double_opt_in_sent") == [{"channel": "email", "message_id": "ses-1"}]
    assert world.profile(requested.profile_id).consents.get("email") is None  # nothing granted yet

    world.now = NOW + timedelta(hours=2)
    [granted] = of_type(world.follow(_confirm_url(email.html)), ConsentChanged)
    assert (granted.new_state, granted.source) == ("subscribed", "double_opt_in")
    consent = world.profile(requested.profile_id).consents["email"]
    assert (consent.state, consent.source, consent.at) == (ConsentState.SUBSCRIBED, "double_opt_in", world.now)
    assert world.profile(requested.profile_id).consent_requests == {}
    # The event delivered again after the confirmation sends nothing: the request is settled.
    assert world.deliver(requested).sent == [] and len(world.email.sent) == 1


def test_a_duplicated_event_sends_one_email() -> None:
    world = World()
    [requested] = world.publish(_subscribe())
    first, second = world.deliver(requested), world.deliver(requested)
    assert len(first.sent) == 1 and second.sent == [] and len(second.duplicates) == 1
    assert len(world.email.sent) == 1
    assert len(world.lines(requested.profile_id, "double_opt_in_sent")) == 1


def test_a_suppressed_address_gets_nothing() -> None:
    world = World()
    world.suppressions.suppress(WS, "Ada@Example.com", "hard_bounce", NOW - timedelta(days=1))
    [requested] = world.publish(_subscribe())
    report = world.deliver(requested)
    assert world.email.sent == [] and report.sent == []
    assert [reason for _, _, reason in report.skipped] == ["suppressed"]
    # Nothing claimed: should the address leave the list, the request can still be confirmed by a redelivery.
    assert world.runs.claims == {}


def test_smart_sending_does_not_hold_back_the_confirmation_nor_count_it() -> None:
    world = World()
    [requested] = world.publish(_subscribe())
    reminded = NOW - timedelta(minutes=5)
    world.runs.create_run(FlowRun(  # a flow's email five minutes ago: well inside Smart Sending's 16 h
        workspace_id=WS, flow_id="f", flow_version=1, run_id="r1", profile_id=requested.profile_id,
        trigger_type="CheckoutStarted", trigger_event_id="e1", trigger={}, entered_at=reminded,
        steps=(StepRecord(step_id="mail", outcome=StepOutcome.SENT, at=reminded, channel="email"),)))
    world.deliver(requested)
    assert len(world.email.sent) == 1
    assert last_send(world.runs.runs_of_profile(WS, requested.profile_id), "email") == reminded


def test_a_new_subscribe_is_a_new_request_and_gets_its_own_email() -> None:
    world = World()
    [first] = world.publish(_subscribe())
    world.deliver(first)
    [again] = world.publish(_subscribe(at="2026-03-02T10:00:00Z", event_id="i-2"))
    world.now = NOW + timedelta(days=1)
    world.deliver(again)
    world.deliver(first)  # the old event, late: it names the request now open, already mailed
    assert len(world.email.sent) == 2


def test_nothing_is_sent_for_an_address_the_profile_no_longer_holds_or_without_a_sender() -> None:
    world = World(settings=MessagingSettings())
    [requested] = world.publish(_subscribe())
    assert world.deliver(requested).skipped and world.email.sent == []
    changed = World()
    [requested] = changed.publish(_subscribe())
    profile = changed.profile(requested.profile_id)
    changed.tap.profiles[(WS, profile.profile_id)] = profile.model_copy(update={"email": "other@example.com"})
    report = changed.deliver(requested)
    assert changed.email.sent == [] and report.ignored


def test_the_workspaces_own_confirmation_template_is_used() -> None:
    own = TemplateRecord(workspace_id=WS, template_id=DOUBLE_OPT_IN, created_at=NOW, updated_at=NOW,
                         template=EmailTemplate(name="ours", subject="Say yes to {{ store.name or 'us' }}",
                                                html='<a href="{{ confirm_url }}">Yes</a>', marketing=False))
    world = World(own)
    [requested] = world.publish(_subscribe())
    world.deliver(requested)
    [email] = world.email.sent
    assert email.subject.startswith("Say yes to") and f"{BASE_URL}/confirm/" in email.html


def test_a_crash_between_claim_and_send_is_unknown_not_resent() -> None:
    world = World()
    [requested] = world.publish(_subscribe())
    world.email.crash_next = True
    with pytest.raises(TimeoutError):
        world.deliver(requested)
    with pytest.raises(StepInFlight):  # moments later: maybe another invocation still sending
        world.deliver(requested)
    world.now = NOW + CLAIM_GRACE
    report = world.deliver(requested)
    assert world.email.sent == [] and len(report.unknown) == 1
    [(_, record)] = world.runs.claims.values()
    assert record is not None and record.outcome is StepOutcome.UNKNOWN
    assert world.deliver(requested).unknown == []  # reported once
