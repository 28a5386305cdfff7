"""A batch's counts held and written once per flow and day (crm.flows.batch_counts): the same sums as writing
each delivery's, in fewer writes, however deliveries repeat, die or share a batch."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal

import pytest
from crm.flows.batch_counts import BatchCounters
from crm.flows.builtin import ABANDONED_CHECKOUT
from crm.flows.memory import MemoryFlowCounters
from crm.models.flow_stats import ALL_STEPS
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW
from tests.unit.test_flow_counting import _totals, do_step
from tests.unit.test_flow_service import WS, Retrying, checkout

DAY = NOW.date()
Rows = dict[tuple[str, str], dict[str, int | Decimal]]


class Recording(MemoryFlowCounters):
    """Memory counters that keep each write (one ``add_rows`` is one UpdateItem in DynamoDB)."""

    def __init__(self, fail_for: str | None = None) -> None:
        super().__init__()
        self.writes: list[tuple[str, str, date]] = []
        self.fail_for = fail_for

    def add_rows(self, workspace_id: str, flow_id: str, day: date,
                 rows: Mapping[tuple[str, str], Mapping[str, int | Decimal]]) -> None:
        if flow_id == self.fail_for:
            raise TimeoutError(f"the write of {flow_id} timed out")
        self.writes.append((workspace_id, flow_id, day))
        super().add_rows(workspace_id, flow_id, day, rows)


_ROWS = st.sampled_from([(ALL_STEPS, ALL_STEPS), ("email_1", ALL_STEPS), ("wait_4h", ALL_STEPS),
                         ("split", "split:1")])
_ADDS = st.lists(st.tuples(st.sampled_from(["ws1", "ws2"]), st.sampled_from(["f1", "f2", "f3"]),
                           st.sampled_from([DAY, DAY + timedelta(days=1)]),
                           st.dictionaries(_ROWS, st.dictionaries(st.sampled_from(["sent", "opened", "revenue"]),
                                                                  st.integers(min_value=-3, max_value=3),
                                                                  min_size=1),
                                           min_size=1)),
                 max_size=40)


@settings(max_examples=80, deadline=None)
@given(_ADDS)
def test_a_flush_writes_each_flow_and_day_once_with_the_sums_of_what_was_added(
        adds: list[tuple[str, str, date, Rows]]) -> None:
    direct, written = MemoryFlowCounters(), Recording()
    batch = BatchCounters(written)
    for workspace_id, flow_id, day, rows in adds:
        direct.add_rows(workspace_id, flow_id, day, rows)
        batch.add_rows(workspace_id, flow_id, day, rows)
    assert written.writes == []
    expected_writes = batch.held
    batch.flush()
    assert len(written.writes) == len(set(written.writes)) == expected_writes
    for workspace_id, flow_id in {(ws, flow) for ws, flow, _, _ in adds}:
        def nonzero(counters: MemoryFlowCounters, ws: str = workspace_id, flow: str = flow_id) -> set[tuple[
                date, str, str, str, Decimal]]:
            return {(row.day, row.step_id, row.variant, name, value)
                    for row in counters.rows(ws, flow, DAY, DAY + timedelta(days=1))
                    for name, value in row.counts.items() if value}
        assert nonzero(written) == nonzero(direct)
    batch.flush()  # nothing held: nothing written again
    assert len(written.writes) == expected_writes


def test_counts_that_sum_to_zero_are_not_written() -> None:
    written = Recording()
    batch = BatchCounters(written)
    for sign in (1, -1):  # an email sent, then reported bounced
        batch.add_rows(WS, "f1", DAY, {(ALL_STEPS, ALL_STEPS): {"delivered": sign},
                                       ("email_1", ALL_STEPS): {"delivered": sign}})
    batch.add(WS, "f2", DAY, {"opened": 1}, "email_1")
    assert batch.held == 1
    batch.flush()
    assert written.writes == [(WS, "f2", DAY)]


def test_a_failed_write_leaves_the_other_flows_written_and_is_raised_once() -> None:
    written = Recording(fail_for="f1")
    batch = BatchCounters(written)
    for flow_id in ("f1", "f2", "f3"):
        batch.add(WS, flow_id, DAY, {"entered": 1})
    with pytest.raises(TimeoutError, match="f1"):
        batch.flush()
    assert written.writes == [(WS, "f2", DAY), (WS, "f3", DAY)]
    batch.flush()  # what failed is lost, never written twice
    assert len(written.writes) == 2


def test_reads_see_what_was_written_before_the_batch() -> None:
    written = Recording()
    written.add(WS, "f1", DAY, {"sent": 2}, "email_1")
    batch = BatchCounters(written)
    batch.add(WS, "f1", DAY, {"sent": 1}, "email_1")
    assert [row.counts for row in batch.rows(WS, "f1", DAY, DAY)] == [{"sent": 2}]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.just("checkout"), st.just("redeliver"), st.just("crash"), st.just("batch ends"),
                          st.integers(min_value=1, max_value=30 * 60)), max_size=30))
def test_batched_counts_match_each_delivery_writing_its_own(steps: list[str | int]) -> None:
    """The exactly-once property of crm.flows.counting with the counts held per batch: deliveries duplicated,
    replayed late or dying mid-send, batches ending anywhere (a dying delivery's batch still writes what its
    saves counted): the rows come to what each delivery writing its own counts comes to, in no more writes."""
    direct, batched = Retrying(), Retrying()
    table = Recording()
    batch = BatchCounters(table)
    batched.counters = table
    batched.service.counters = batch
    direct_writes = Recording()
    direct.counters = direct.service.counters = direct_writes
    for world in (direct, batched):
        world.shopper("p1")
        world.deliver(checkout("p1"))
    for step in steps:
        if step == "batch ends":
            batch.flush()
        for world in (direct, batched):
            do_step(world, step)
    for world in (direct, batched):
        world.email.crash_next = False
        world.now += timedelta(minutes=5)
        for wake in list(world.delivered):
            world.wake_up(wake)
        world.tick(timedelta(days=3))
    batch.flush()
    assert _totals(batched, ABANDONED_CHECKOUT) == _totals(direct, ABANDONED_CHECKOUT)
    assert _totals(batched, ABANDONED_CHECKOUT)[(ALL_STEPS, ALL_STEPS)]["entered"] == 1
    assert len(table.writes) <= len(direct_writes.writes)
