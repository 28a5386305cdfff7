"""crm.adapters.pacing: a process's DynamoDB units held to a rate, with an injected clock and sleeper."""

from __future__ import annotations

import pytest
from crm.adapters.pacing import Pacer, units_of
from hypothesis import given
from hypothesis import strategies as st


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_within_the_rate_nothing_waits() -> None:
    time = FakeTime()
    pacer = Pacer(10, time.clock, time.sleep)
    for _ in range(20):
        pacer.wait_for_allowance()
        pacer.consumed(1.0)
        time.now += 0.1
    assert time.slept == []


def test_a_call_over_the_rate_makes_the_next_one_wait_for_the_units_it_owes() -> None:
    time = FakeTime()
    pacer = Pacer(10, time.clock, time.sleep)
    pacer.wait_for_allowance()
    pacer.consumed(35.0)  # a batch read: 25 units over the second's allowance
    pacer.wait_for_allowance()
    assert time.slept == [pytest.approx(2.5)]


def test_an_idle_process_saves_up_no_more_than_a_second() -> None:
    time = FakeTime()
    pacer = Pacer(10, time.clock, time.sleep)
    pacer.wait_for_allowance()
    time.now += 3600
    pacer.consumed(30.0)
    pacer.wait_for_allowance()
    assert time.slept == [pytest.approx(2.0)]


@given(st.lists(st.tuples(st.floats(0, 50), st.floats(0, 2)), min_size=1, max_size=40))
def test_over_any_run_the_rate_is_kept_to_within_a_second_of_allowance(calls: list[tuple[float, float]]) -> None:
    time = FakeTime()
    pacer = Pacer(10, time.clock, time.sleep)
    consumed = 0.0
    for units, pause in calls:
        pacer.wait_for_allowance()
        pacer.consumed(units)
        consumed += units
        time.now += pause
    pacer.wait_for_allowance()
    # Every unit but the first second's allowance was waited for.
    assert consumed <= 10 * (time.now + 1) + 1e-6


def test_units_are_read_from_one_table_or_several() -> None:
    assert units_of({"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 2.5}}) == 2.5
    assert units_of({"ConsumedCapacity": [{"CapacityUnits": 1.0}, {"CapacityUnits": 0.5}]}) == 1.5
    assert units_of({}) == 0.0


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)
