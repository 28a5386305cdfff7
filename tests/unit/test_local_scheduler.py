"""The local runtime's EventBridge Scheduler: schedules fire in due order, once, not before their time, and a
one-time schedule with ActionAfterCompletion DELETE is deleted once fired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crm_local.runtime import LocalRuntime
from crm_local.scheduler import (
    Firing,
    ScheduleBook,
    ScheduleEntry,
    ScheduleRunner,
    TargetError,
    Targets,
)
from hypothesis import given
from hypothesis import strategies as st

START = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
QUEUE = "arn:aws:sqs:us-east-1:123456789012:crm-FlowsQueue"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def at(moment: datetime, name: str, **changes: Any) -> ScheduleEntry:
    return ScheduleEntry(group="flows", name=name, expression=f"at({moment:%Y-%m-%dT%H:%M:%S})",
                         target={"Arn": QUEUE, "Input": f'{{"wake": "{name}"}}'},
                         action_after_completion="DELETE", **changes)


def names(firings: list[Firing]) -> list[str]:
    return [f.entry.name for f in firings]


def test_nothing_fires_before_its_time_and_each_fires_once_at_it() -> None:
    clock = Clock()
    book = ScheduleBook(clock)
    book.observe(at(START + timedelta(hours=4), "four-hours"))
    clock.now = START + timedelta(hours=4) - timedelta(seconds=1)
    assert book.take_due() == [] and not book.has_due()
    clock.now += timedelta(seconds=1)
    assert book.has_due()
    [firing] = book.take_due()
    assert (firing.entry.name, firing.due, firing.completes) == ("four-hours", START + timedelta(hours=4), True)
    assert book.take_due(START + timedelta(days=30)) == [] and len(book) == 0


def test_a_jump_fires_everything_due_once_in_due_order() -> None:
    book = ScheduleBook(Clock())
    for hours, name in ((24, "day"), (4, "four"), (30 * 24, "month"), (4, "four-too"), (1, "one")):
        book.observe(at(START + timedelta(hours=hours), name))
    firings = book.take_due(START + timedelta(days=2))
    assert names(firings) == ["one", "four", "four-too", "day"]  # equal times: in the order written
    assert [f.due for f in firings] == sorted(f.due for f in firings)
    assert book.take_due(START + timedelta(days=2)) == []
    assert names(book.take_due(START + timedelta(days=31))) == ["month"]


def test_at_is_read_in_the_schedules_time_zone() -> None:
    book = ScheduleBook(Clock())
    noon_in_paris = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # at() has no zone: read as Europe/Paris, 11:00 UTC
    book.observe(at(noon_in_paris, "paris", timezone="Europe/Paris"))
    assert book.take_due(datetime(2026, 12, 3, 10, 59, 59, tzinfo=UTC)) == []
    assert names(book.take_due(datetime(2026, 12, 3, 11, 0, tzinfo=UTC))) == ["paris"]


def test_a_disabled_schedule_does_not_fire_until_enabled_again() -> None:
    book = ScheduleBook(Clock())
    entry = at(START + timedelta(hours=1), "paused")
    book.observe(ScheduleEntry(**{**entry.__dict__, "enabled": False}))
    assert book.take_due(START + timedelta(days=1)) == [] and not book.has_due(START + timedelta(days=1))
    book.observe(entry)
    assert names(book.take_due(START + timedelta(days=1))) == ["paused"]


def test_an_update_moves_the_schedule_and_a_deletion_cancels_it() -> None:
    book = ScheduleBook(Clock())
    book.observe(at(START + timedelta(hours=1), "moved"))
    book.observe(at(START + timedelta(hours=5), "moved"))  # UpdateSchedule: the earlier time no longer holds
    book.observe(at(START + timedelta(hours=2), "cancelled"))
    book.forget(("flows", "cancelled"))
    assert book.take_due(START + timedelta(hours=3)) == []
    assert names(book.take_due(START + timedelta(hours=5))) == ["moved"]


def test_deleting_a_group_cancels_its_schedules_only() -> None:
    book = ScheduleBook(Clock())
    book.observe(at(START, "in-flows"))
    book.observe(ScheduleEntry(**{**at(START, "elsewhere").__dict__, "group": "other"}))
    book.forget_group("flows")
    assert names(book.take_due(START)) == ["elsewhere"]


def test_one_time_schedules_ignore_start_and_end_dates_recurring_ones_keep_to_them() -> None:
    clock = Clock()
    book = ScheduleBook(clock)
    book.observe(at(START + timedelta(hours=1), "one-time", start=START + timedelta(days=9),
                    end=START + timedelta(minutes=1)))
    book.observe(ScheduleEntry(group="g", name="hourly", expression="rate(1 hour)", start=START + timedelta(hours=3),
                               end=START + timedelta(hours=5, minutes=30), target={"Arn": QUEUE},
                               action_after_completion="DELETE"))
    assert names(book.take_due(START + timedelta(hours=2))) == ["one-time"]
    assert book.next_due() == START + timedelta(hours=3)  # a rate schedule first fires at its StartDate
    assert [f.completes for f in book.take_due(START + timedelta(hours=3, minutes=10))] == [False]
    assert book.next_due() == START + timedelta(hours=4)  # every hour from StartDate, not from the late firing
    assert [f.completes for f in book.take_due(START + timedelta(hours=4))] == [False]
    [last] = book.take_due(START + timedelta(hours=5))
    assert last.completes and len(book) == 0  # the next hour falls after EndDate


def test_a_rate_schedule_without_start_date_fires_at_once_then_every_period() -> None:
    book = ScheduleBook(Clock())
    book.observe(ScheduleEntry(group="g", name="every-5", expression="rate(5 minutes)", target={"Arn": QUEUE},
                               created=START))
    assert book.next_due() == START
    book.take_due(START + timedelta(minutes=12))  # late: once
    assert book.next_due() == START + timedelta(minutes=15)


def test_a_recurring_schedule_catches_up_once_after_a_jump() -> None:
    book = ScheduleBook(Clock())
    book.observe(ScheduleEntry(group="g", name="daily", expression="cron(0 3 * * ? *)", target={"Arn": QUEUE}))
    assert [f.due for f in book.take_due(START + timedelta(days=10))] == [datetime(2026, 12, 4, 3, tzinfo=UTC)]
    assert book.next_due() == datetime(2026, 12, 14, 3, tzinfo=UTC)


def test_cron_follows_the_schedules_time_zone_across_dst() -> None:
    book = ScheduleBook(Clock())
    book.observe(ScheduleEntry(group="g", name="nine", expression="cron(0 9 * * ? *)", timezone="America/New_York",
                               target={"Arn": QUEUE}))
    assert book.next_due() == datetime(2026, 12, 3, 14, tzinfo=UTC)  # EST
    book.take_due(datetime(2027, 3, 15, 0, tzinfo=UTC))
    assert book.next_due() == datetime(2027, 3, 15, 13, tzinfo=UTC)  # EDT


def test_a_malformed_schedule_is_left_unscheduled() -> None:
    book = ScheduleBook(Clock())
    book.observe(at(START, "bad-zone", timezone="Mars/Olympus"))
    book.observe(ScheduleEntry(group="g", name="bad-at", expression="at(tomorrow)"))
    assert book.take_due(START + timedelta(days=1)) == [] and book.next_due() is None


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=40),
       st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=6))
def test_whatever_the_jumps_every_schedule_fires_once_in_due_order(minutes: list[int], jumps: list[int]) -> None:
    book = ScheduleBook(Clock())
    for index, offset in enumerate(minutes):
        book.observe(at(START + timedelta(minutes=offset), f"s{index}"))
    fired: list[Firing] = []
    for jump in [*sorted(jumps), 10_000]:
        now = START + timedelta(minutes=jump)
        taken = book.take_due(now)
        assert all(f.due <= now for f in taken)
        fired += taken
    assert sorted(names(fired)) == sorted(f"s{i}" for i in range(len(minutes)))
    assert [f.due for f in fired] == sorted(f.due for f in fired)


class RecordingTargets(Targets):
    def __init__(self, failing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        super().__init__("us-east-1")
        self.failing = failing
        self.delivered: list[str] = []
        self.deleted: list[str] = []
        self.dead_lettered: list[str] = []

    def deliver(self, entry: ScheduleEntry) -> None:
        if entry.name in self.failing:
            raise TargetError("queue gone")
        self.delivered.append(str(entry.target["Input"]))

    def to_dead_letter_queue(self, entry: ScheduleEntry, error: Exception) -> bool:
        self.dead_lettered.append(entry.name)
        return True

    def delete(self, entry: ScheduleEntry) -> None:
        self.deleted.append(entry.name)


def test_the_runner_delivers_in_due_order_and_deletes_only_what_asks_for_it() -> None:
    clock = Clock()
    book, targets = ScheduleBook(clock), RecordingTargets()
    runner = ScheduleRunner(book, targets)
    book.observe(at(START + timedelta(hours=24), "second"))
    book.observe(ScheduleEntry(**{**at(START + timedelta(hours=4), "first").__dict__,
                                  "action_after_completion": "NONE"}))
    clock.now = START + timedelta(hours=3)
    assert runner.fire_due() == [] and not runner.busy()
    clock.now = START + timedelta(days=2)
    assert runner.busy()
    fired = runner.fire_due()
    assert [(f.name, f.delivered) for f in fired] == [("first", True), ("second", True)]
    assert targets.delivered == ['{"wake": "first"}', '{"wake": "second"}']
    assert targets.deleted == ["second"]
    assert runner.fire_due() == [] and not runner.busy()


def test_a_failed_delivery_goes_to_the_dead_letter_queue_and_the_schedule_still_completes() -> None:
    book, targets = ScheduleBook(Clock()), RecordingTargets(failing={"broken"})
    book.observe(at(START, "broken"))
    [fired] = ScheduleRunner(book, targets).fire_due()
    assert not fired.delivered
    assert (targets.dead_lettered, targets.deleted) == (["broken"], ["broken"])


@pytest.mark.parametrize("arn", ["arn:aws:states:us-east-1:123456789012:stateMachine:x", ""])
def test_a_target_the_runtime_does_not_emulate_is_an_error_naming_it(arn: str) -> None:
    with pytest.raises(TargetError, match="not emulated"):
        Targets("us-east-1").deliver(ScheduleEntry(group="g", name="n", expression="at(2026-12-03T10:00:00)",
                                                   target={"Arn": arn}))


class ChainingTargets(RecordingTargets):
    """A target whose delivery writes the next wait, due at once (a flow step's zero wait)."""

    def __init__(self, book: ScheduleBook) -> None:
        super().__init__()
        self.book = book

    def deliver(self, entry: ScheduleEntry) -> None:
        super().deliver(entry)
        if entry.name == "first":
            self.book.observe(at(START, "chained"))


def test_wait_idle_is_idle_only_once_nothing_due_is_left_unfired() -> None:
    clock = Clock()
    book = ScheduleBook(clock)
    targets = ChainingTargets(book)
    runtime = LocalRuntime(port=0, aws_port=0)
    runtime.scheduler = ScheduleRunner(book, targets)  # not started: only wait_idle fires
    book.observe(at(START + timedelta(hours=4), "first"))
    book.observe(at(START + timedelta(hours=30), "later"))
    clock.now = START + timedelta(hours=4)
    assert runtime.wait_idle(timeout=5)
    assert targets.delivered == ['{"wake": "first"}', '{"wake": "chained"}']
    assert not runtime.scheduler.busy() and book.next_due() == START + timedelta(hours=30)
