"""crm.adapters.pacing: how far a process's DynamoDB units ran ahead of a pace, with an injected clock."""

from __future__ import annotations

import pytest
from crm.adapters.pacing import LONGEST_PAUSE_SECONDS, Meter, units_of
from hypothesis import given
from hypothesis import strategies as st


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_work_within_the_pace_asks_no_pause() -> None:
    clock = FakeClock()
    meter = Meter(10, clock)
    start = meter.reading()
    meter.consumed(50.0)
    clock.now += 5.0
    assert meter.pause_since(start) == 0


def test_a_burst_asks_for_the_seconds_its_units_take_at_the_pace_less_those_it_took() -> None:
    clock = FakeClock()
    meter = Meter(20, clock)
    meter.consumed(999.0)  # before the task: not its units
    start = meter.reading()
    meter.consumed(3_200.0)  # a bucket of profiles read in 4 s
    clock.now += 4.0
    assert meter.pause_since(start) == 156  # 3,200 / 20 = 160 s of pace


def test_the_pause_is_at_most_what_a_queue_can_hold_a_message_back() -> None:
    clock = FakeClock()
    meter = Meter(1, clock)
    start = meter.reading()
    meter.consumed(10_000.0)
    assert meter.pause_since(start) == LONGEST_PAUSE_SECONDS == 900


@given(st.lists(st.tuples(st.floats(0, 5_000), st.floats(0, 60)), min_size=1, max_size=40),
       st.floats(1, 100))
def test_work_and_its_pauses_together_keep_to_the_pace(hops: list[tuple[float, float]], pace: float) -> None:
    """A chain of tasks each followed by the pause it asks: its units over its time stay within the pace (as
    long as no pause is cut short by the queue's limit)."""
    clock = FakeClock()
    meter = Meter(pace, clock)
    consumed = 0.0
    for units, seconds in hops:
        start = meter.reading()
        meter.consumed(units)
        consumed += units
        clock.now += seconds
        pause = meter.pause_since(start)
        if pause == LONGEST_PAUSE_SECONDS:
            return
        clock.now += pause
    assert consumed <= pace * clock.now + 1e-6


def test_units_are_read_from_one_table_or_several() -> None:
    assert units_of({"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 2.5}}) == 2.5
    assert units_of({"ConsumedCapacity": [{"CapacityUnits": 1.0}, {"CapacityUnits": 0.5}]}) == 1.5
    assert units_of({}) == 0.0


def test_a_pace_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Meter(0)


def test_a_hop_measures_the_seconds_its_own_units_take_at_the_pace_however_fast_it_ran() -> None:
    clock = FakeClock()
    meter = Meter(20, clock)
    meter.consumed(500.0)  # before the hop: not its units
    start = meter.reading()
    meter.consumed(1_200.0)
    clock.now += 3.0
    assert meter.paced_seconds_since(start) == 60.0
