"""The writing side of flow stats: which A/B variant a step is on (crm.flows.definition.variant_of), and what
the flows service counts and records as runs move (crm.flows.counting, crm.flows.service), once each however
deliveries repeat or die."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from crm.flows.builtin import ABANDONED_CHECKOUT
from crm.flows.counting import CounterAdd, counter_reason, message_rows, run_counts
from crm.flows.definition import parse_variant, variant_name, variant_of
from crm.models.events import ProfilesMerged
from crm.models.flow_stats import ALL_STEPS, MessageRecord
from crm.models.flows import (
    ConditionalSplit,
    ExitStep,
    FlowDefinition,
    FlowRun,
    RandomSplit,
    RunStatus,
    SendEmail,
    SplitPath,
    StepOutcome,
    StepRecord,
    TagProfile,
    WeightedPath,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW
from tests.fakes import FakeRunStore
from tests.unit.test_flow_service import WS, Retrying, World, _live, checkout, order

DAY = NOW.date()
A_B = "ab"

def _email(step_id: str) -> SendEmail:
    return SendEmail(id=step_id, template_id="thanks", smart_sending=False)  # every message goes


# An A/B test of two reminders; the second path holds a nested test of subject lines inside a conditional.
SPLIT_TEST = FlowDefinition(
    name="A/B", trigger={"kind": "event", "event": "CheckoutStarted"}, reentry={"mode": "every_time"},
    steps=(
        TagProfile(id="tag", tag="shopper"),
        RandomSplit(id=A_B, paths=(
            WeightedPath(weight=50, steps=(_email("email_a"),)),
            WeightedPath(weight=50, steps=(ConditionalSplit(id="vip", paths=(SplitPath(steps=(
                RandomSplit(id="subject", paths=(
                    WeightedPath(weight=1, steps=(_email("subject_0"),)),
                    WeightedPath(weight=1, steps=(_email("subject_1"),)))),
                _email("after"))),)),)),
        )),
        _email("last"),
    ))


def _run(*splits: tuple[str, int]) -> FlowRun:
    return FlowRun(workspace_id=WS, flow_id="ab_flow", flow_version=1, run_id="r" * 32, profile_id="p1",
                   trigger_type="CheckoutStarted", trigger_event_id="e1", trigger={}, entered_at=NOW,
                   steps=tuple(StepRecord(step_id=split, outcome=StepOutcome.SPLIT, at=NOW, path=path)
                               for split, path in splits))


def _totals(world: World, flow_id: str) -> dict[tuple[str, str], dict[str, Decimal]]:
    """Each row's counts summed over the days."""
    summed: dict[tuple[str, str], Counter[str]] = {}
    for row in world.counters.rows(WS, flow_id, date(2000, 1, 1), date(2100, 1, 1)):
        summed.setdefault((row.step_id, row.variant), Counter()).update(row.counts)
    return {key: dict(counts) for key, counts in summed.items()}


# --- variants -------------------------------------------------------------------------------------------

def test_a_steps_variant_is_the_innermost_random_split_it_is_in_and_the_path_the_run_took() -> None:
    run = _run((A_B, 1), ("vip", 0), ("subject", 0))
    assert variant_of(SPLIT_TEST, "email_a", _run((A_B, 0))) == "ab:0"
    assert variant_of(SPLIT_TEST, "subject_0", run) == "subject:0"  # the nested test, through the conditional
    assert variant_of(SPLIT_TEST, "after", run) == "ab:1"  # after the nested split, on the outer path
    assert variant_of(SPLIT_TEST, "subject", run) == "ab:1"  # a split is not inside itself
    assert variant_of(SPLIT_TEST, "vip", run) == "ab:1"
    assert variant_of(SPLIT_TEST, "last", run) is None  # after the split: outside it
    assert variant_of(SPLIT_TEST, "tag", run) is None
    assert variant_of(SPLIT_TEST, "email_a", _run()) is None  # the run never took the split
    assert variant_of(SPLIT_TEST, "no_such_step", run) is None


def test_a_variant_name_reads_back_and_nothing_else_does() -> None:
    assert parse_variant(variant_name("subject_test", 12)) == ("subject_test", 12)
    assert parse_variant(ALL_STEPS) is None and parse_variant("ab:") is None and parse_variant("ab:x") is None


def test_a_counted_reason_stops_before_its_free_text() -> None:
    assert counter_reason("not_composed: no email template x") == "not_composed"
    assert counter_reason("exit_event:OrderPlaced") == "exit_event:OrderPlaced"
    assert counter_reason(None) == "unknown"


def test_a_messages_events_count_flow_wide_and_on_its_steps_row() -> None:
    message = MessageRecord(workspace_id=WS, profile_id="p1", message_id="m1", channel="sms", flow_id="f",
                            flow_version=1, step_id="text", run_id="r", trigger_type="OrderPlaced", sent_at=NOW)
    assert message_rows(message) == ((ALL_STEPS, ALL_STEPS), ("text", ALL_STEPS))
    assert message_rows(message.model_copy(update={"variant": "ab:1"})) == ((ALL_STEPS, ALL_STEPS), ("text", "ab:1"))


# --- what the service counts and records ----------------------------------------------------------------

def test_a_run_of_the_abandoned_checkout_flow_is_counted_step_by_step_and_its_sends_recorded() -> None:
    world = World()
    world.shopper("p1")
    world.deliver(checkout("p1"))
    world.later(timedelta(days=2))
    run = world.run_of("p1")
    one = Decimal(1)
    assert _totals(world, ABANDONED_CHECKOUT) == {
        # An email counts as delivered when SES accepts it (its bounce would take that back).
        (ALL_STEPS, ALL_STEPS): {"entered": one, "sent": Decimal(2), "delivered": Decimal(2), "completed": one},
        ("wait_4h", ALL_STEPS): {"recipients": one},
        ("email_1", ALL_STEPS): {"recipients": one, "sent": one, "delivered": one},
        ("wait_24h", ALL_STEPS): {"recipients": one},
        ("email_2", ALL_STEPS): {"recipients": one, "sent": one, "delivered": one},
    }
    # Each count on the day it happened: the second reminder went out the next day (UTC).
    [second] = [r for r in world.counters.rows(WS, ABANDONED_CHECKOUT, DAY, DAY + timedelta(days=5))
                if r.step_id == "email_2"]
    assert second.day == (NOW + timedelta(hours=24)).date()
    assert [(m.message_id, m.step_id, m.channel, m.run_id, m.profile_id, m.variant, m.flow_version, m.sent_at)
            for m in world.ledger.touches(WS, "p1", NOW)] == [
        ("ses-1", "email_1", "email", run.run_id, "p1", None, run.flow_version, NOW + timedelta(hours=4)),
        ("ses-2", "email_2", "email", run.run_id, "p1", None, run.flow_version, NOW + timedelta(hours=24))]
    assert {m.trigger_type for m in world.ledger.messages.values()} == {"CheckoutStarted"}


def test_an_exit_is_counted_by_its_reason_and_a_duplicated_trigger_enters_once() -> None:
    world = World()
    world.shopper("p1")
    world.deliver(checkout("p1"))
    world.deliver(checkout("p1"))
    world.later(timedelta(hours=1))
    world.deliver(order("p1", world.now))
    world.deliver(order("p1", world.now))
    # A wait counts the runs that waited it out as recipients: this one left during it, its exit counted there.
    assert _totals(world, ABANDONED_CHECKOUT) == {
        (ALL_STEPS, ALL_STEPS): {"entered": Decimal(1), "exited:exit_event:OrderPlaced": Decimal(1)},
        ("wait_4h", ALL_STEPS): {"exited:exit_event:OrderPlaced": Decimal(1)}}
    assert world.ledger.messages == {}


def test_an_exit_step_inside_an_ab_path_is_counted_on_its_row_and_variant() -> None:
    leaving = FlowDefinition(name="Leave", trigger={"kind": "event", "event": "OrderPlaced"},
                             reentry={"mode": "every_time"}, steps=(
                                 RandomSplit(id=A_B, paths=(WeightedPath(weight=1, steps=(ExitStep(id="leave"),)),
                                                            WeightedPath(weight=0, steps=()))),
                                 _email("never")))
    world = World(_live("leave", leaving))
    world.shopper("p1")
    world.deliver(order("p1", NOW))
    assert _totals(world, "leave") == {
        (ALL_STEPS, ALL_STEPS): {"entered": Decimal(1), "exited:exit_step": Decimal(1)},
        (A_B, ALL_STEPS): {"recipients": Decimal(1)},
        (A_B, "ab:0"): {"recipients": Decimal(1)},
        ("leave", "ab:0"): {"exited:exit_step": Decimal(1)}}


def test_skips_are_counted_by_reason_flow_wide_and_on_their_step() -> None:
    missing = FlowDefinition(name="Broken", trigger={"kind": "event", "event": "OrderPlaced"},
                             reentry={"mode": "every_time"}, steps=(SendEmail(id="gone", template_id="nowhere"),))
    world = World(_live("broken", missing))
    world.shopper("p1")
    world.shopper("p2", email=None)
    world.deliver(order("p1", NOW))
    world.deliver(order("p2", NOW + timedelta(minutes=1)).model_copy(update={"event_id": "o2"}))
    assert _totals(world, "broken") == {
        (ALL_STEPS, ALL_STEPS): {"entered": Decimal(2), "completed": Decimal(2), "skipped:not_composed": Decimal(1),
                                 "skipped:no_address": Decimal(1)},
        ("gone", ALL_STEPS): {"recipients": Decimal(2), "skipped:not_composed": Decimal(1),
                              "skipped:no_address": Decimal(1)}}


def test_an_ab_path_counts_the_runs_that_took_it_and_its_messages_carry_the_variant() -> None:
    world = World(_live("ab_flow", SPLIT_TEST))
    shoppers = [f"p{number}" for number in range(24)]
    for number, profile_id in enumerate(shoppers):
        world.shopper(profile_id, email=f"s{number}@example.com")
        world.now = NOW + timedelta(minutes=number)
        world.deliver(checkout(profile_id, f"c{number}", at=world.now))
    taken = Counter(next(record.path for record in world.run_of(p).steps if record.step_id == A_B)
                    for p in shoppers)
    assert set(taken) == {0, 1}  # both paths taken (the draw is the run id's)
    totals = _totals(world, "ab_flow")
    for path in (0, 1):
        assert totals[(A_B, f"ab:{path}")] == {"recipients": taken[path]}
    assert totals[(A_B, ALL_STEPS)] == {"recipients": len(shoppers)}
    assert totals[("email_a", "ab:0")] == {"recipients": taken[0], "sent": taken[0], "delivered": taken[0]}
    assert totals[("vip", "ab:1")] == {"recipients": taken[1]}
    assert totals[("after", "ab:1")] == {"recipients": taken[1], "sent": taken[1], "delivered": taken[1]}
    nested = Counter(m.variant for m in world.ledger.messages.values() if m.step_id.startswith("subject_"))
    assert sum(nested.values()) == taken[1] and set(nested) <= {"subject:0", "subject:1"}
    for message in world.ledger.messages.values():
        run = world.runs.get_run(WS, message.profile_id, message.run_id)
        assert run is not None
        assert message.variant == variant_of(SPLIT_TEST, message.step_id, run)
        assert message.step_id != "last" or message.variant is None
    assert totals[("last", ALL_STEPS)] == {"recipients": len(shoppers), "sent": len(shoppers),
                                           "delivered": len(shoppers)}
    assert totals[(ALL_STEPS, ALL_STEPS)]["sent"] == len(world.email.sent) == 2 * taken[0] + 3 * taken[1]


def test_a_merge_counts_the_run_it_ends_once() -> None:
    world = World()
    world.shopper("p1")
    world.shopper("p2", email="ann.other@example.com")
    world.deliver(checkout("p2", "c2"))  # the merged profile's run came first and carries on
    world.now += timedelta(minutes=10)
    world.deliver(checkout("p1", "c1", at=world.now))
    world.profiles.profiles[(WS, "p2")] = world.profiles.profiles[(WS, "p2")].model_copy(
        update={"merged_into": "p1"})
    merge = ProfilesMerged(event_id="merge-1", workspace_id=WS, profile_id="p1", occurred_at=world.now,
                           merged_profile_id="p2")
    world.deliver(merge)
    world.deliver(merge)
    flow_wide = _totals(world, ABANDONED_CHECKOUT)[(ALL_STEPS, ALL_STEPS)]
    assert flow_wide == {"entered": Decimal(2), "exited:merged": Decimal(1)}


def test_a_merge_hands_the_merged_profiles_messages_to_the_survivor() -> None:
    world = World()
    world.shopper("p1")
    world.shopper("p2", email="ann.other@example.com")
    world.deliver(checkout("p2", "c2"))
    world.later(timedelta(hours=5))
    [reminder] = world.ledger.touches(WS, "p2", NOW)
    world.profiles.profiles[(WS, "p2")] = world.profiles.profiles[(WS, "p2")].model_copy(
        update={"merged_into": "p1"})
    world.deliver(ProfilesMerged(event_id="merge-1", workspace_id=WS, profile_id="p1", occurred_at=world.now,
                                 merged_profile_id="p2"))
    assert world.ledger.touches(WS, "p1", NOW) == [reminder.model_copy(update={"profile_id": "p1"})]
    assert world.ledger.touches(WS, "p2", NOW) == []


def test_nothing_is_counted_for_a_save_that_adds_nothing_new() -> None:
    run = _run((A_B, 0))
    assert run_counts(run, run, SPLIT_TEST) == []
    # A run whose stored steps are not the start of the new ones (never saved so): no step counted twice.
    assert run_counts(run, _run((A_B, 1)), SPLIT_TEST) == []


class LosingSaves(FakeRunStore):
    """A run store whose next save is lost: the function dies just before it (the send and its record done)."""

    lose_next = False

    def save_run(self, run: FlowRun, expected_revision: int) -> None:
        if self.lose_next:
            self.lose_next = False
            raise TimeoutError("the function timed out before the run was saved")
        super().save_run(run, expected_revision)


def test_a_send_whose_run_save_was_lost_is_counted_once_when_the_retry_saves_it() -> None:
    world = World()
    world.runs = world.service.runs = LosingSaves()  # type: ignore[misc]
    world.shopper("p1")
    world.deliver(checkout("p1"))
    [wake] = world.scheduler.schedules.values()
    world.now += timedelta(hours=4)
    world.runs.lose_next = True
    with pytest.raises(TimeoutError):
        world.service.on_wake(wake)
    assert len(world.email.sent) == 1 and _totals(world, ABANDONED_CHECKOUT)[(ALL_STEPS, ALL_STEPS)] == {
        "entered": 1}  # nothing counted before the save
    world.service.on_wake(wake)  # SQS delivers it again: the claim's record stands for the send
    world.service.on_wake(wake)
    assert len(world.email.sent) == 1
    totals = _totals(world, ABANDONED_CHECKOUT)
    assert totals[(ALL_STEPS, ALL_STEPS)] == {"entered": 1, "sent": 1, "delivered": 1}
    assert totals[("email_1", ALL_STEPS)] == {"recipients": 1, "sent": 1, "delivered": 1}
    assert list(world.ledger.messages) == ["ses-1"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.just("checkout"), st.just("redeliver"), st.just("crash"),
                          st.integers(min_value=1, max_value=30 * 60)), max_size=30))
def test_whatever_is_duplicated_or_crashes_the_counters_match_what_was_done(steps: list[str | int]) -> None:
    """Deliveries duplicated, replayed late, or dying mid-send: one entry, one completion, as many sends
    counted as were sent and recorded, each reached step's recipient once, a message record per send."""
    world = Retrying()
    world.shopper("p1")
    world.deliver(checkout("p1"))
    for step in steps:
        do_step(world, step)
    world.email.crash_next = False
    world.now += timedelta(minutes=5)
    for wake in list(world.delivered):
        world.wake_up(wake)
    world.tick(timedelta(days=3))

    run = world.run_of("p1")
    sent = [s.step_id for s in run.steps if s.outcome is StepOutcome.SENT]
    totals = _totals(world, ABANDONED_CHECKOUT)
    assert totals[(ALL_STEPS, ALL_STEPS)] == {"entered": 1, "completed": 1,
                                              **({"sent": len(sent), "delivered": len(sent)} if sent else {})}
    for step_id in ("wait_4h", "email_1", "wait_24h", "email_2"):
        assert totals[(step_id, ALL_STEPS)]["recipients"] == 1
        assert totals[(step_id, ALL_STEPS)].get("sent", 0) == (step_id in sent)
        assert totals[(step_id, ALL_STEPS)].get("delivered", 0) == (step_id in sent)
    assert sorted(m.step_id for m in world.ledger.messages.values()) == sorted(e.tags["step"]
                                                                               for e in world.email.sent)


def _summed(adds: list[CounterAdd]) -> Counter[tuple[date, str, str, str]]:
    summed: Counter[tuple[date, str, str, str]] = Counter()
    for add in adds:
        summed.update({(add.day, add.step_id, add.variant, name): value for name, value in add.counts.items()})
    return summed


def do_step(world: Retrying, step: str | int) -> None:
    """One step of a drawn history: a checkout, the last wake-up delivered again, a crash of the next send, or
    minutes passing."""
    if step == "checkout":
        world.deliver(checkout("p1"))
    elif step == "redeliver" and world.delivered:
        world.wake_up(world.delivered[-1])
    elif step == "crash":
        world.email.crash_next = True
    elif isinstance(step, int):
        world.tick(timedelta(minutes=step))


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=12)), st.integers(min_value=0, max_value=23))
def test_a_runs_counts_are_the_same_however_many_saves_it_took(cuts: set[int], shopper: int) -> None:
    """Counting per save adds up: a run saved once at its end counts what it counts saved step by step."""
    world = World(_live("ab_flow", SPLIT_TEST))
    world.shopper("p1")
    world.deliver(checkout("p1", f"c{shopper}"))
    final = world.run_of("p1")
    start = final.model_copy(update={"steps": (), "status": RunStatus.ACTIVE, "ended_at": None})
    saves = [final.model_copy(update={"steps": final.steps[:cut], "status": RunStatus.ACTIVE, "ended_at": None})
             for cut in sorted(cuts) if cut < len(final.steps)]
    states = [start, *saves, final]
    stepwise = _summed([add for before, after in pairwise(states)
                        for add in run_counts(before, after, SPLIT_TEST)])
    assert stepwise == _summed(run_counts(start, final, SPLIT_TEST))
    assert stepwise[(DAY, ALL_STEPS, ALL_STEPS, "completed")] == 1
    assert stepwise[(DAY, ALL_STEPS, ALL_STEPS, "sent")] == len(world.email.sent)
