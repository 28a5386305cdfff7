"""The flows service over in-memory ports, with the real engine and injected time: the issue's "exactly once"
list (a duplicated trigger, a retried step, a crash between claim and send), exits that cancel wake-ups, a merge
in mid-flow, an erasure."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

import pytest
from crm.flows.builtin import ABANDONED_CHECKOUT, BUILTIN_FLOWS, POST_PURCHASE, VIP, VIP_SEGMENT
from crm.flows.engine import FlowEvent
from crm.flows.memory import MemoryFlowCounters, MemoryMessageLedger, MemorySplitWinners
from crm.flows.service import CLAIM_GRACE, FlowsService, Report, StepInFlight, forget_runs
from crm.models.consent import Consent, ConsentState
from crm.models.events import (
    CheckoutStarted,
    DomainEvent,
    Item,
    OrderFulfilled,
    OrderPlaced,
    ProfilesMerged,
    SegmentEntered,
)
from crm.models.flows import (
    FlowDefinition,
    FlowRecord,
    FlowRun,
    FlowStatus,
    RunStatus,
    SendEmail,
    SendSms,
    StepOutcome,
    TagProfile,
    WakeUp,
    schedule_name,
)
from crm.models.messaging import EmailTemplate, SmsTemplate, TemplateRecord
from crm.models.profile import Profile, new_profile
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.builders import NOW
from tests.fakes import (
    FakeEmailSender,
    FakeFlowCatalogue,
    FakeMessageComposer,
    FakeMessagingStore,
    FakeProfileRepository,
    FakeRunStore,
    FakeSegmentStore,
    FakeSmsSender,
    FakeSuppressions,
    FakeWaitScheduler,
)

WS = "ws1"


def _template(template_id: str) -> TemplateRecord:
    return TemplateRecord(workspace_id=WS, template_id=template_id, created_at=NOW, updated_at=NOW,
                          template=EmailTemplate(name=template_id, subject=f"subject of {template_id}",
                                                 html="<p>{{ profile.first_name }}</p>"))


def _live(flow_id: str, definition: FlowDefinition) -> FlowRecord:
    return FlowRecord(workspace_id=WS, flow_id=flow_id, status=FlowStatus.LIVE, definition=definition,
                      created_at=NOW, updated_at=NOW)


class World:
    """The ports a flows function has, as fakes, and a clock the test moves."""

    def __init__(self, *flows: FlowRecord) -> None:
        self.now = NOW
        self.profiles = FakeProfileRepository()
        self.runs = FakeRunStore()
        self.scheduler = FakeWaitScheduler()
        self.email = FakeEmailSender()
        self.ledger = MemoryMessageLedger()
        self.counters = MemoryFlowCounters()
        self.winners = MemorySplitWinners()
        templates = [_template(t) for t in ("builtin:abandoned_checkout_1", "builtin:abandoned_checkout_2",
                                            "thanks")]
        self.service = FlowsService(
            catalogue=FakeFlowCatalogue(*(flows or (_live(ABANDONED_CHECKOUT, BUILTIN_FLOWS[ABANDONED_CHECKOUT]),))),
            runs=self.runs, scheduler=self.scheduler, profiles=self.profiles,
            segments=FakeSegmentStore(self.profiles), messaging=FakeMessagingStore(*templates),
            suppressions=FakeSuppressions(), email=self.email, sms=FakeSmsSender(),
            composer=FakeMessageComposer(), clock=lambda: self.now, ledger=self.ledger, counters=self.counters,
            winners=self.winners)

    def shopper(self, profile_id: str, email: str | None = "ann@example.com") -> Profile:
        consent = Consent(channel="email", state=ConsentState.SUBSCRIBED, source="shopify:customers/update",
                          at=NOW - timedelta(days=30))
        profile = new_profile(WS, profile_id, NOW - timedelta(days=30)).model_copy(
            update={"email": email, "consents": {"email": consent}, "identities": (f"email#{email}",)})
        self.profiles.profiles[(WS, profile_id)] = profile
        return profile

    def deliver(self, event: DomainEvent) -> Report:
        return self.service.on_event(FlowEvent.of(event.type, event.model_dump(mode="json")))  # type: ignore[attr-defined]

    def later(self, by: timedelta) -> list[Report]:
        """Move the clock, delivering each wake-up the Scheduler fires on the way at its time."""
        until = self.now + by
        reports = []
        while pending := [w for w in self.scheduler.schedules.values() if w.due_at <= until]:
            self.now = max(self.now, min(w.due_at for w in pending))
            reports += [self.service.on_wake(wake) for wake in self.scheduler.fire_due(self.now)]
        self.now = until
        return reports

    def run_of(self, profile_id: str) -> FlowRun:
        [run] = self.runs.runs_of_profile(WS, profile_id)
        return run


def checkout(profile_id: str, checkout_id: str = "c1", at: datetime = NOW) -> CheckoutStarted:
    return CheckoutStarted(event_id=f"checkout-{checkout_id}", workspace_id=WS, profile_id=profile_id,
                           occurred_at=at, store_id="st", checkout_id=checkout_id,
                           items=(Item(title="Mug", price="12.00"),), recovery_url="https://shop.example/r/1")


def order(profile_id: str, at: datetime) -> OrderPlaced:
    return OrderPlaced(event_id=f"order-{at.isoformat()}", workspace_id=WS, profile_id=profile_id, occurred_at=at,
                       store_id="st", order_id="o1", currency="USD", total_price="12.00", net_total="12.00")


def test_reminders_at_4_and_24_hours_and_no_more() -> None:
    world = World()
    world.shopper("p1")
    started = world.deliver(checkout("p1"))
    assert len(started.started) == 1 and world.email.sent == []
    [wake] = world.scheduler.schedules.values()
    assert (wake.step_id, wake.due_at) == ("wait_4h", NOW + timedelta(hours=4))

    world.later(timedelta(hours=3, minutes=59))
    assert world.email.sent == []
    world.later(timedelta(minutes=1))
    assert [e.subject for e in world.email.sent] == ["subject of builtin:abandoned_checkout_1"]
    world.later(timedelta(hours=20))
    assert len(world.email.sent) == 2
    world.later(timedelta(days=30))
    assert len(world.email.sent) == 2
    run = world.run_of("p1")
    assert run.status is RunStatus.COMPLETED
    assert [(s.step_id, s.outcome) for s in run.steps] == [
        ("wait_4h", StepOutcome.WAITED), ("email_1", StepOutcome.SENT), ("wait_24h", StepOutcome.WAITED),
        ("email_2", StepOutcome.SENT)]
    # Each send is recorded with its flow, step, run, channel, message id and time: the record is its line on the
    # profile's timeline (crm.adapters.flow_stats; tests/integration/test_flows_function.py reads it there), no
    # line written apart.
    records = world.ledger.touches(WS, "p1", NOW)
    assert [(m.flow_id, m.step_id, m.run_id, m.channel, m.message_id, m.sent_at) for m in records] == [
        (ABANDONED_CHECKOUT, "email_1", run.run_id, "email", "ses-1", NOW + timedelta(hours=4)),
        (ABANDONED_CHECKOUT, "email_2", run.run_id, "email", "ses-2", NOW + timedelta(hours=24))]
    assert (WS, "p1") not in world.profiles.timelines


def test_a_duplicated_trigger_starts_one_run() -> None:
    world = World()
    world.shopper("p1")
    first = world.deliver(checkout("p1"))
    again = world.deliver(checkout("p1"))
    assert len(first.started) == 1 and again.started == [] and again.duplicates == first.started
    assert len(world.runs.runs) == 1 and world.scheduler.created == 1
    world.later(timedelta(days=2))
    assert len(world.email.sent) == 2


def test_an_order_within_the_4_hours_exits_and_cancels_the_wake_up() -> None:
    world = World()
    world.shopper("p1")
    world.deliver(checkout("p1"))
    run = world.run_of("p1")
    world.later(timedelta(hours=1))
    report = world.deliver(order("p1", NOW + timedelta(hours=1)))
    assert report.ended == [(run.run_id, "exit_event:OrderPlaced")]
    assert world.scheduler.schedules == {} and world.scheduler.cancelled == [schedule_name(run.run_id, "wait_4h")]
    world.later(timedelta(days=2))
    assert world.email.sent == []
    assert world.run_of("p1").status is RunStatus.EXITED


def test_a_wake_up_delivered_twice_or_after_a_lost_save_never_sends_twice() -> None:
    world = World()
    world.shopper("p1")
    world.deliver(checkout("p1"))
    before = world.run_of("p1")
    [wake] = world.scheduler.schedules.values()
    world.later(timedelta(hours=4))
    assert len(world.email.sent) == 1

    # SQS delivers the same wake-up again: the run is past that step.
    assert world.service.on_wake(wake).ignored
    # The send happened and was recorded, but the run's save was lost (the function died just before it).
    world.runs.runs[(WS, "p1", before.run_id)] = before.model_copy(update={"revision": world.run_of("p1").revision})
    again = world.service.on_wake(wake)
    assert again.sent == [] and len(world.email.sent) == 1
    run = world.run_of("p1")
    assert [s.outcome for s in run.steps if s.step_id == "email_1"] == [StepOutcome.SENT]
    assert run.next_step == "wait_24h"


def test_a_crash_between_claim_and_send_is_unknown_alarmed_and_never_resent() -> None:
    world = World()
    world.shopper("p1")
    world.deliver(checkout("p1"))
    [wake] = world.scheduler.schedules.values()
    world.email.crash_next = True
    world.now += timedelta(hours=4)
    with pytest.raises(TimeoutError):
        world.service.on_wake(wake)  # SQS will deliver it again
    # Moments later the claim may be a send still under way: the delivery is retried, not judged.
    with pytest.raises(StepInFlight):
        world.service.on_wake(wake)
    world.now += CLAIM_GRACE
    report = world.service.on_wake(wake)
    run = world.run_of("p1")
    assert report.unknown == [(run.run_id, "email_1")] and world.email.sent == []
    assert [s.outcome for s in run.steps if s.step_id == "email_1"] == [StepOutcome.UNKNOWN]
    # The run goes on to its next step; the unknown one is not tried again.
    world.later(timedelta(days=2))
    assert [e.subject for e in world.email.sent] == ["subject of builtin:abandoned_checkout_2"]


def test_a_merge_in_mid_flow_leaves_one_run_that_carries_on() -> None:
    world = World()
    world.shopper("p1")
    world.shopper("p2", email="ann.other@example.com")
    world.deliver(checkout("p1", "c1"))
    world.now += timedelta(minutes=10)
    world.deliver(checkout("p2", "c2", at=world.now))
    first, second = world.run_of("p1"), world.run_of("p2")
    # p2 is merged into p1 (the identity service did it; the bus tells flows).
    world.profiles.profiles[(WS, "p2")] = world.profiles.profiles[(WS, "p2")].model_copy(
        update={"merged_into": "p1"})
    merge = ProfilesMerged(event_id="merge-1", workspace_id=WS, profile_id="p1", occurred_at=world.now,
                           merged_profile_id="p2")
    report = world.deliver(merge)
    assert report.ended == [(second.run_id, "merged")]
    world.deliver(merge)  # a redelivery changes nothing
    runs = world.runs.runs_of_profile(WS, "p1")
    assert {(r.run_id, r.status) for r in runs} == {(first.run_id, RunStatus.ACTIVE),
                                                   (second.run_id, RunStatus.EXITED)}
    assert world.runs.runs_of_profile(WS, "p2") == []
    assert list(world.scheduler.schedules) == [schedule_name(first.run_id, "wait_4h")]
    world.later(timedelta(days=2))
    assert len(world.email.sent) == 2 and {e.to for e in world.email.sent} == {"ann@example.com"}


def test_a_merged_profiles_run_moves_to_the_survivor_and_its_wake_up_finds_it() -> None:
    world = World()
    world.shopper("p1")
    world.shopper("p2", email="ann.other@example.com")
    world.deliver(checkout("p2", "c2"))
    moved = world.run_of("p2")
    world.profiles.profiles[(WS, "p2")] = world.profiles.profiles[(WS, "p2")].model_copy(
        update={"merged_into": "p1"})
    world.deliver(ProfilesMerged(event_id="merge-1", workspace_id=WS, profile_id="p1", occurred_at=NOW,
                                 merged_profile_id="p2"))
    assert world.run_of("p1").run_id == moved.run_id
    # The pending wake-up still names p2: it follows the merge to the survivor.
    world.later(timedelta(hours=4))
    assert [e.to for e in world.email.sent] == ["ann@example.com"]


def test_smart_sending_spans_a_merge_the_merged_profiles_send_moving_with_its_run() -> None:
    thanks = FlowDefinition(name="Thanks", trigger={"kind": "event", "event": "OrderPlaced"},
                            reentry={"mode": "every_time"}, steps=(SendEmail(id="thanks", template_id="thanks"),))
    world = World(_live("thanks", thanks), _live(ABANDONED_CHECKOUT, BUILTIN_FLOWS[ABANDONED_CHECKOUT]))
    world.shopper("p1")
    world.shopper("p2", email="ann.other@example.com")
    world.deliver(checkout("p2", "c2"))
    world.later(timedelta(hours=4))
    assert [e.to for e in world.email.sent] == ["ann.other@example.com"]  # the merged profile's reminder
    world.profiles.profiles[(WS, "p2")] = world.profiles.profiles[(WS, "p2")].model_copy(
        update={"merged_into": "p1"})
    world.deliver(ProfilesMerged(event_id="merge-1", workspace_id=WS, profile_id="p1", occurred_at=world.now,
                                 merged_profile_id="p2"))
    world.now += timedelta(hours=1)
    report = world.deliver(order("p1", world.now))
    # The survivor was never sent anything itself: the reminder's record moved with its run.
    assert [(step, reason) for _, step, reason in report.skipped] == [("thanks", "smart_sending")]
    assert len(world.email.sent) == 1


def test_an_erasure_deletes_runs_and_their_wake_ups() -> None:
    world = World()
    world.shopper("p1")
    world.deliver(checkout("p1"))
    run = world.run_of("p1")
    deleted = forget_runs(world.runs, world.scheduler, WS, "p1")
    assert [r.run_id for r in deleted] == [run.run_id]
    assert world.runs.runs == {} and world.runs.claims == {} and world.scheduler.schedules == {}
    # A wake-up already on the queue finds nothing to do.
    stale = WakeUp(workspace_id=WS, profile_id="p1", flow_id=ABANDONED_CHECKOUT, run_id=run.run_id,
                   step_id="wait_4h", due_at=NOW + timedelta(hours=4))
    assert world.service.on_wake(stale).ignored
    assert world.email.sent == []


def test_a_tag_step_tags_the_profile_under_its_revision_and_smart_sending_spans_flows() -> None:
    tagging = FlowDefinition(name="Thanks", trigger={"kind": "event", "event": "OrderPlaced"},
                             reentry={"mode": "every_time"},
                             steps=(TagProfile(id="tag", tag="buyer"), SendEmail(id="thanks", template_id="thanks")))
    world = World(_live("thanks", tagging), _live(ABANDONED_CHECKOUT, BUILTIN_FLOWS[ABANDONED_CHECKOUT]))
    profile = world.shopper("p1")
    world.deliver(checkout("p1"))
    world.later(timedelta(hours=4))
    assert len(world.email.sent) == 1  # the reminder
    world.now += timedelta(hours=1)
    report = world.deliver(order("p1", world.now))
    tagged = world.profiles.profiles[(WS, "p1")]
    assert tagged.tags == ("buyer",) and tagged.revision == profile.revision + 1
    # The thank-you came an hour after the reminder: Smart Sending (16 h, across flows) skips it.
    assert [(step, reason) for _, step, reason in report.skipped] == [("thanks", "smart_sending")]
    assert len(world.email.sent) == 1


def test_a_message_that_cannot_be_composed_is_a_recorded_skip_not_a_claim() -> None:
    missing = FlowDefinition(name="Broken", trigger={"kind": "event", "event": "OrderPlaced"},
                             reentry={"mode": "every_time"}, steps=(SendEmail(id="gone", template_id="nowhere"),))
    world = World(_live("broken", missing))
    world.shopper("p1")
    report = world.deliver(order("p1", NOW))
    run = world.run_of("p1")
    assert report.skipped == [(run.run_id, "gone", "not_composed: no email template nowhere")]
    assert run.status is RunStatus.COMPLETED and world.runs.claims == {} and world.email.sent == []


def test_a_wait_for_is_resumed_by_its_event_and_its_timeout_schedule_goes() -> None:
    world = World(_live(POST_PURCHASE, BUILTIN_FLOWS[POST_PURCHASE]))
    for template_id in ("builtin:post_purchase_thanks", "builtin:post_purchase_review"):
        world.service.messaging.put_template(_template(template_id))
    world.shopper("p1")
    world.deliver(order("p1", NOW))
    run = world.run_of("p1")
    assert [e.subject for e in world.email.sent] == ["subject of builtin:post_purchase_thanks"]
    assert (run.next_step, run.waiting_for, run.wake_at) == ("fulfilled", "OrderFulfilled", NOW + timedelta(days=60))

    world.now += timedelta(days=2)
    other = OrderFulfilled(event_id="f-0", workspace_id=WS, profile_id="p1", occurred_at=world.now, store_id="st",
                           order_id="another")
    world.deliver(other)  # another order's fulfilment: still waiting
    assert world.run_of("p1").next_step == "fulfilled"
    world.deliver(OrderFulfilled(event_id="f-1", workspace_id=WS, profile_id="p1", occurred_at=world.now,
                                 store_id="st", order_id="o1"))
    run = world.run_of("p1")
    assert world.scheduler.cancelled == [schedule_name(run.run_id, "fulfilled")]
    assert (run.next_step, run.wake_at) == ("wait_7d", world.now + timedelta(days=7))
    world.later(timedelta(days=7))
    assert [e.subject for e in world.email.sent][-1] == "subject of builtin:post_purchase_review"
    assert world.run_of("p1").status is RunStatus.COMPLETED


class Retrying(World):
    """A World whose deliveries may die (SQS then retries them): every wake-up fired is kept for redelivery."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered: list[WakeUp] = []

    def wake_up(self, wake: WakeUp) -> None:
        with contextlib.suppress(TimeoutError, StepInFlight):  # back on the queue, retried later
            self.service.on_wake(wake)

    def tick(self, by: timedelta) -> None:
        """As the Scheduler does: each wake-up at its time."""
        until = self.now + by
        while pending := [w for w in self.scheduler.schedules.values() if w.due_at <= until]:
            self.now = max(self.now, min(w.due_at for w in pending))
            for wake in self.scheduler.fire_due(self.now):
                self.delivered.append(wake)
                self.wake_up(wake)
        self.now = until


_DELIVERIES = st.lists(st.one_of(st.just("checkout"), st.just("redeliver"), st.just("crash"), st.just("catch_up"),
                                 st.integers(min_value=1, max_value=30 * 60)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(_DELIVERIES)
def test_whatever_is_duplicated_or_crashes_each_reminder_goes_at_most_once(steps: list[str | int]) -> None:
    """Deliveries duplicated, replayed late, or dying mid-send (SQS retries them): a step is sent once, or
    recorded unknown and never sent; and once everything has been retried, the run has done both steps."""
    _each_reminder_at_most_once(Retrying(), steps)


@settings(max_examples=60, deadline=None)
@given(_DELIVERIES)
# email_2's UNKNOWN recorded by a try whose save was refused, then taken as it is (not as a send in flight)
@example(["catch_up", 1, 431, "crash", 1, 1007])
def test_read_from_a_replica_behind_each_reminder_still_goes_at_most_once(steps: list[str | int]) -> None:
    """The same, with the wake-ups' eventually consistent reads of the runs served by a replica that catches up
    only now and then (``catch_up``): what they decide on an older run is refused by its save and decided again."""
    world = Retrying()
    _lagging(world)
    _each_reminder_at_most_once(world, steps)


def _each_reminder_at_most_once(world: Retrying, steps: list[str | int]) -> None:
    world.shopper("p1")
    world.deliver(checkout("p1"))
    crashed = False
    for step in steps:
        if step == "checkout":
            world.deliver(checkout("p1"))
        elif step == "redeliver" and world.delivered:
            world.wake_up(world.delivered[-1])
        elif step == "crash":
            world.email.crash_next, crashed = True, True
        elif step == "catch_up" and isinstance(world.runs, LaggingRuns):
            world.runs.catch_up()
        elif isinstance(step, int):
            world.tick(timedelta(minutes=step))
    world.email.crash_next = False
    world.now += CLAIM_GRACE  # the queue's retries
    for wake in list(world.delivered):
        world.wake_up(wake)
    world.tick(timedelta(days=3))

    sent = [e.tags["step"] for e in world.email.sent]
    assert sorted(sent) == sorted(set(sent))
    run = world.run_of("p1")
    outcomes = {s.step_id: s.outcome for s in run.steps}
    assert run.status is RunStatus.COMPLETED
    for step_id in ("email_1", "email_2"):
        assert (step_id in sent) == (outcomes[step_id] is StepOutcome.SENT)
        assert outcomes[step_id] in ((StepOutcome.SENT, StepOutcome.UNKNOWN) if crashed else (StepOutcome.SENT,))


def test_an_sms_in_quiet_hours_waits_for_their_end_and_a_carrier_opt_out_is_a_skip() -> None:
    texting = FlowDefinition(name="Text", trigger={"kind": "event", "event": "OrderPlaced"},
                             reentry={"mode": "every_time"}, steps=(SendSms(id="text", template_id="text"),))
    world = World(_live("text", texting))
    world.service.messaging.put_template(TemplateRecord(workspace_id=WS, template_id="text", created_at=NOW,
                                                        updated_at=NOW, template=SmsTemplate(name="t", body="Thanks")))
    sms_consent = Consent(channel="sms", state=ConsentState.SUBSCRIBED, source="shopify:customers/update",
                          at=NOW - timedelta(days=30))
    for profile_id, phone in (("p1", "+12025550143"), ("p2", "+12025550199")):
        profile = world.shopper(profile_id)
        world.profiles.profiles[(WS, profile_id)] = profile.model_copy(
            update={"phone": phone, "consents": {**profile.consents, "sms": sms_consent}})
    assert isinstance(world.service.sms, FakeSmsSender)
    world.service.sms.opted_out.add("+12025550199")
    sms = world.service.sms

    # 12:00 UTC is 07:00 in Washington (the number's zone): quiet until 08:00, 13:00 UTC.
    world.deliver(order("p1", NOW))
    assert sms.sent == [] and world.run_of("p1").wake_at == NOW + timedelta(hours=1)
    world.later(timedelta(hours=1))
    assert [(m.to, m.body) for m in sms.sent] == [("+12025550143", "Thanks")]

    report = world.deliver(order("p2", world.now))
    assert [reason for _, _, reason in report.skipped] == ["carrier_opt_out"] and len(sms.sent) == 1


def test_in_a_merge_the_run_that_entered_first_continues_whoever_survives() -> None:
    world = World()
    world.shopper("p1")
    world.shopper("p2", email="ann.other@example.com")
    world.deliver(checkout("p2", "c2"))  # the merged profile's checkout came first
    world.now += timedelta(minutes=10)
    world.deliver(checkout("p1", "c1", at=world.now))
    earlier, later = world.run_of("p2"), world.run_of("p1")
    world.profiles.profiles[(WS, "p2")] = world.profiles.profiles[(WS, "p2")].model_copy(
        update={"merged_into": "p1"})
    report = world.deliver(ProfilesMerged(event_id="merge-1", workspace_id=WS, profile_id="p1",
                                          occurred_at=world.now, merged_profile_id="p2"))
    assert report.ended == [(later.run_id, "merged")]
    assert {r.run_id: r.status for r in world.runs.runs_of_profile(WS, "p1")} == {
        earlier.run_id: RunStatus.ACTIVE, later.run_id: RunStatus.EXITED}
    assert list(world.scheduler.schedules) == [schedule_name(earlier.run_id, "wait_4h")]
    world.later(timedelta(days=2))
    assert len(world.email.sent) == 2 and {e.tags["step"] for e in world.email.sent} == {"email_1", "email_2"}


def test_a_workspace_that_never_saved_a_flow_reads_nothing_but_its_catalogue() -> None:
    # Built-ins a workspace never saved are drafts at version 0 (crm.adapters.flow_definitions): no run can
    # exist, so the store's every event costs one catalogue read and no profile read.
    never_saved = FlowRecord(workspace_id=WS, flow_id=ABANDONED_CHECKOUT, status=FlowStatus.DRAFT, version=0,
                             definition=BUILTIN_FLOWS[ABANDONED_CHECKOUT], created_at=NOW, updated_at=NOW)
    world = World(never_saved)
    world.shopper("p1")
    reads: list[str] = []
    segments = world.service.segments
    original = segments.profile_with_segments
    segments.profile_with_segments = lambda ws, pid: reads.append(pid) or original(ws, pid)  # type: ignore[method-assign]
    report = world.deliver(checkout("p1"))
    assert report.started == [] and reads == [] and report.ignored == ["no flow ever saved in the workspace"]

    world.service.catalogue.put_flow(_live(ABANDONED_CHECKOUT, BUILTIN_FLOWS[ABANDONED_CHECKOUT]), 0)
    assert len(world.deliver(checkout("p1", "c2", NOW + timedelta(minutes=1))).started) == 1 and reads == ["p1"]


def test_an_event_no_saved_flow_listens_to_reads_neither_the_profile_nor_its_runs() -> None:
    world = World()  # the abandoned checkout: CheckoutStarted starts it, OrderPlaced ends it
    world.shopper("p1")
    reads: list[str] = []
    segments = world.service.segments
    original = segments.profile_with_segments
    segments.profile_with_segments = lambda ws, pid: reads.append(pid) or original(ws, pid)  # type: ignore[method-assign]
    fulfilled = OrderFulfilled(event_id="fulfilled-1", workspace_id=WS, profile_id="p1", occurred_at=NOW,
                               store_id="st", order_id="o1")
    report = world.deliver(fulfilled)
    assert reads == [] and report.ignored == ["no flow starts, ends or resumes a run on this OrderFulfilled"]
    assert world.deliver(order("p1", NOW)).ignored == [] and reads == ["p1"]  # an exit event: read


def test_a_segment_entry_no_flow_starts_on_reads_nothing_and_the_flows_own_segment_starts_its_run() -> None:
    # A segment-triggered flow hears the entries of its own segment, not every segment's: each membership a
    # refresh or a run moves reaches the flows queue, and only these can start a run.
    world = World(_live(VIP, BUILTIN_FLOWS[VIP]))
    world.shopper("p1")
    reads: list[str] = []
    segments = world.service.segments
    original = segments.profile_with_segments
    segments.profile_with_segments = lambda ws, pid: reads.append(pid) or original(ws, pid)  # type: ignore[method-assign]
    other = SegmentEntered(event_id="entered-other", workspace_id=WS, profile_id="p1", occurred_at=NOW,
                           segment_id="builtin:window_shoppers")
    report = world.deliver(other)
    assert reads == [] and report.started == []
    assert report.ignored == ["no flow starts, ends or resumes a run on this SegmentEntered"]
    own = SegmentEntered(event_id="entered-vip", workspace_id=WS, profile_id="p1", occurred_at=NOW,
                         segment_id=VIP_SEGMENT)
    assert len(world.deliver(own).started) == 1 and reads == ["p1"]


def test_a_flow_paused_since_the_listing_was_read_starts_no_run() -> None:
    world = World()
    world.shopper("p1")
    listed = world.service.catalogue.list_flows(WS)
    catalogue = world.service.catalogue
    world.service.catalogue = HeldListing(catalogue, listed)  # type: ignore[assignment]
    [flow] = listed
    catalogue.put_flow(flow.model_copy(update={"status": FlowStatus.DRAFT, "version": 2}), flow.version)
    assert world.deliver(checkout("p1")).started == [] and world.runs.runs_of_profile(WS, "p1") == []
    catalogue.put_flow(flow.model_copy(update={"version": 3}), 2)  # live again: the next checkout starts one
    assert len(world.deliver(checkout("p1", "c2", NOW + timedelta(minutes=1))).started) == 1
    assert world.run_of("p1").flow_version == 3


class HeldListing:
    """A catalogue whose listing is an older read (as crm.flows.catalogue holds it); single flows read now."""

    def __init__(self, source: FakeFlowCatalogue, listing: list[FlowRecord]) -> None:
        self.source, self.listing = source, listing

    def list_flows(self, workspace_id: str) -> list[FlowRecord]:
        return self.listing

    def get_flow(self, workspace_id: str, flow_id: str) -> FlowRecord | None:
        return self.source.get_flow(workspace_id, flow_id)


class CountedRuns(FakeRunStore):
    """The run store, counting the reads a delivery makes of it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get_run(self, workspace_id: str, profile_id: str, run_id: str) -> FlowRun | None:
        self.reads.append("get_run")
        return super().get_run(workspace_id, profile_id, run_id)

    def runs_of_profile(self, workspace_id: str, profile_id: str, flow_id: str | None = None, *,
                        consistent: bool = True) -> list[FlowRun]:
        self.reads.append("runs_of_profile" if consistent else "runs_of_profile, eventually")
        return super().runs_of_profile(workspace_id, profile_id, flow_id)


def test_a_delivery_reads_the_profiles_runs_once_for_its_run_and_every_sends_smart_sending() -> None:
    """A wake-up finds its run among the profile's runs and its send's Smart Sending reads the same (one Query,
    not a GetItem and a Query); an event's starts read the runs it already read, with its own saves."""
    both = FlowDefinition.model_validate({**BUILTIN_FLOWS[ABANDONED_CHECKOUT].model_dump(mode="json"),
                                          "name": "second reminder flow"})
    world = World(_live(ABANDONED_CHECKOUT, BUILTIN_FLOWS[ABANDONED_CHECKOUT]), _live("second", both))
    world.runs = world.service.runs = CountedRuns()
    world.shopper("p1")
    world.deliver(checkout("p1"))
    assert world.runs.reads == ["runs_of_profile"]
    world.runs.reads.clear()
    [first, second] = world.later(timedelta(hours=4))
    assert world.runs.reads == ["runs_of_profile, eventually"] * 2  # one a wake-up
    # Smart Sending held the second flow's reminder: it read the first's send, saved by the first wake-up.
    assert len(first.sent) == 1 and second.sent == [] and len(world.email.sent) == 1


class LaggingRuns(FakeRunStore):
    """A run store whose eventually consistent reads come from a replica that has seen the writes up to its last
    ``catch_up`` only; strongly consistent reads see them all."""

    def __init__(self) -> None:
        super().__init__()
        self.replica: dict[tuple[str, str], list[FlowRun]] = {}
        self.reads: list[str] = []

    def catch_up(self) -> None:
        self.replica = {key: FakeRunStore.runs_of_profile(self, *key) for key in self._by_profile}

    def runs_of_profile(self, workspace_id: str, profile_id: str, flow_id: str | None = None, *,
                        consistent: bool = True) -> list[FlowRun]:
        self.reads.append("consistent" if consistent else "eventual")
        held = super().runs_of_profile(workspace_id, profile_id) if consistent else self.replica.get(
            (workspace_id, profile_id), [])
        return [run for run in held if flow_id is None or run.flow_id == flow_id]


def _lagging(world: World) -> LaggingRuns:
    world.runs = world.service.runs = LaggingRuns()
    return world.runs


def test_a_wake_up_redelivered_before_the_replica_saw_its_save_is_refused_by_the_save_and_sends_once() -> None:
    """The second delivery decides on the replica's run (still at wait_4h): the claim keeps email_1 from going
    again, the save's revision refuses what it decided, and the consistent read again finds it stale."""
    world = World()
    runs = _lagging(world)
    world.shopper("p1")
    world.deliver(checkout("p1"))
    runs.catch_up()
    [wake] = world.scheduler.fire_due(NOW + timedelta(hours=4))
    world.now = wake.due_at
    runs.reads.clear()
    first = world.service.on_wake(wake)
    second = world.service.on_wake(wake)

    assert len(first.sent) == 1 and second.sent == [] and len(world.email.sent) == 1
    assert second.ignored == [f"stale wake-up {wake.run_id}/wait_4h"]
    assert runs.reads == ["eventual", "eventual", "consistent"]
    run = world.run_of("p1")
    assert (run.next_step, run.revision) == ("wait_24h", 1)  # created, then saved once
    sent = {(row.step_id, name): value for row in world.counters.rows(WS, ABANDONED_CHECKOUT, NOW.date(), NOW.date())
            for name, value in row.counts.items() if name == "sent"}
    assert sent == {("-", "sent"): 1, ("email_1", "sent"): 1}  # counted by the save that held, once


def test_a_wake_up_the_replica_finds_stale_is_read_again_consistently_before_it_is_dropped() -> None:
    world = World()
    runs = _lagging(world)
    world.shopper("p1")
    world.deliver(checkout("p1"))  # the replica has not seen the run yet
    runs.reads.clear()
    world.later(timedelta(hours=4))
    assert runs.reads == ["eventual", "consistent"] and len(world.email.sent) == 1
    assert world.run_of("p1").next_step == "wait_24h"
