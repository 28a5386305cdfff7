"""What a profile says of order changes written before their records (crm.unwritten_orders)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from crm.models.profile import OrderRecord, new_profile
from crm.unwritten_orders import (
    RETRY_WINDOW,
    OrderWriteUnfinished,
    counted_in_flight,
    order_state,
    with_in_flight,
    without_in_flight,
)

from tests.builders import NOW, order


def _record(order_id: str, refunds: dict[str, Decimal] | None = None, minutes: int = 0) -> OrderRecord:
    return OrderRecord(workspace_id="ws_a", store_id="st_a", order_id=order_id,
                       order=order(order_id, updated_at=NOW + timedelta(minutes=minutes)), refunds=refunds or {})


def test_the_state_names_version_refunds_amounts_and_removal() -> None:
    held = _record("1", {"r-1": Decimal("5.00")})
    assert order_state(held) == order_state(_record("1", {"r-1": Decimal("5.00")}))
    assert len({order_state(held), order_state(_record("1")), order_state(_record("1", {"r-1": Decimal("5.01")})),
                order_state(_record("1", {"r-1": Decimal("5.00")}, minutes=1)),
                order_state(held.model_copy(update={"removed_at": NOW}))}) == 5


def test_a_profile_counting_the_record_read_has_nothing_in_flight() -> None:
    written = _record("1")
    profile = with_in_flight(new_profile("ws_a", "p-1", NOW), written, NOW)
    assert counted_in_flight(profile, written, [_record("1", minutes=1)]) is None


def test_the_retried_event_finds_its_own_change_and_another_waits() -> None:
    read, update = _record("1"), _record("1", minutes=1)
    profile = with_in_flight(new_profile("ws_a", "p-1", NOW), update, NOW)
    assert counted_in_flight(profile, read, [update]) == update
    with pytest.raises(OrderWriteUnfinished):
        counted_in_flight(profile, read, [_record("1", {"r-1": Decimal("1.00")})])


def test_entries_older_than_any_retry_are_dropped_and_a_transaction_drops_its_own() -> None:
    profile = with_in_flight(new_profile("ws_a", "p-1", NOW), _record("1"), NOW)
    profile = with_in_flight(profile, _record("2"), NOW + timedelta(days=1))
    later = with_in_flight(profile, _record("3"), NOW + RETRY_WINDOW + timedelta(seconds=1))
    assert sorted(later.unwritten_orders) == ["st_a:2", "st_a:3"]
    assert sorted(without_in_flight(profile, _record("2"), NOW + timedelta(days=1)).unwritten_orders) == ["st_a:1"]
