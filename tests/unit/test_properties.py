"""Order-safety of profile totals, by property: any arrival order, any duplicates, same totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from crm.ingestion import apply_event
from crm.models.orders import CanonicalOrder
from crm.models.profile import Profile
from crm.money import CENT, divide
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW, cents, order
from tests.fakes import FakeProfileRepository

EMAILS = ("ann@example.com", "bob@example.com", "cy@example.com")
BASE = datetime(2024, 1, 1, tzinfo=UTC)
HALF_CENT = Decimal("0.005")

amounts = st.integers(min_value=0, max_value=10_000_000)  # up to 100,000.00 in cents


@dataclass(frozen=True)
class History:
    """Every version of one order, oldest first."""

    versions: tuple[CanonicalOrder, ...]

    @property
    def newest(self) -> CanonicalOrder:
        return self.versions[-1]


@st.composite
def histories(draw: st.DrawFn) -> list[History]:
    keys = draw(st.lists(st.tuples(st.sampled_from(["st_a", "st_b"]), st.sampled_from(["1", "2", "3", "4"])),
                         min_size=1, max_size=6, unique=True))
    found = []
    for store_id, order_id in keys:
        email = draw(st.sampled_from(EMAILS))
        created = BASE + timedelta(minutes=draw(st.integers(0, 525_600)))
        # (seconds after creation, trigger offset in ms): distinct pairs, so every version is strictly newer;
        # equal seconds exercise the tie-break on the delivery's trigger time.
        stamps = sorted(draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)),
                                      min_size=1, max_size=4, unique=True)))
        versions = []
        for seconds, trigger_ms in stamps:
            total = draw(amounts)
            refunded = draw(st.integers(0, total + 1_000))  # refunds beyond the total clamp to zero
            versions.append(order(
                order_id, store_id=store_id, email=email, total=cents(total), refunded=cents(refunded),
                created_at=created, updated_at=created + timedelta(seconds=seconds),
                triggered_at=BASE + timedelta(milliseconds=trigger_ms),
            ))
        found.append(History(tuple(versions)))
    return found


def _profile(repository: FakeProfileRepository, email: str) -> Profile | None:
    profile_id = repository.profile_id_for_identity("ws_a", f"email#{email}")
    return repository.get_profile("ws_a", profile_id) if profile_id else None


def _totals(profile: Profile | None) -> tuple[object, ...] | None:
    if profile is None:
        return None
    return (profile.profile_id, profile.orders_count, profile.total_spent, profile.first_order_at,
            profile.last_order_at, profile.currency)


def _deliver(deliveries: list[CanonicalOrder]) -> FakeProfileRepository:
    repository = FakeProfileRepository()
    for step, delivered in enumerate(deliveries):
        apply_event(repository, delivered, NOW + timedelta(seconds=step))
    return repository


@settings(max_examples=150, deadline=None)
@given(data=st.data(), orders=histories())
def test_any_arrival_order_with_duplicates_gives_the_in_order_totals(data: st.DataObject,
                                                                     orders: list[History]) -> None:
    every_version = [v for history in orders for v in history.versions]
    duplicates = data.draw(st.lists(st.sampled_from(every_version), max_size=8), label="duplicates")
    arrival = data.draw(st.permutations(every_version + duplicates), label="arrival")

    in_order = _deliver(every_version)
    shuffled = _deliver(arrival)

    for email in EMAILS:
        mine = [h for h in orders if h.newest.email == email]
        expected = _profile(in_order, email)
        assert _totals(_profile(shuffled, email)) == _totals(expected)
        if not mine:
            assert expected is None
            continue
        assert expected is not None
        assert expected.orders_count == len(mine)
        assert expected.total_spent == sum((h.newest.net_total for h in mine), Decimal("0.00"))
        assert expected.total_spent == expected.total_spent.quantize(CENT)
        assert expected.first_order_at == min(h.newest.created_at for h in mine)
        assert expected.last_order_at == max(h.newest.created_at for h in mine)
    assert len(shuffled.orders) == len(orders)
    for history in orders:
        newest = history.newest
        assert shuffled.orders[("ws_a", newest.store_id, newest.order_id)].order == newest


@settings(max_examples=150, deadline=None)
@given(totals=st.lists(amounts, min_size=1, max_size=25))
def test_average_order_value_times_count_is_within_half_a_cent_per_order(totals: list[int]) -> None:
    deliveries = [order(str(i), total=cents(amount)) for i, amount in enumerate(totals)]
    profile = _profile(_deliver(deliveries), "shopper@example.com")

    assert profile is not None
    assert profile.orders_count == len(totals)
    assert profile.total_spent == cents(sum(totals))
    error = abs(profile.average_order_value * profile.orders_count - profile.total_spent)
    assert error <= HALF_CENT * profile.orders_count
    assert profile.average_order_value == profile.average_order_value.quantize(CENT)


@given(total=st.integers(0, 10**12), count=st.integers(1, 10_000))
def test_divide_is_within_half_a_cent_of_the_exact_average(total: int, count: int) -> None:
    amount = cents(total)
    average = divide(amount, count)
    assert average == average.quantize(CENT)
    assert abs(average - amount / count) <= HALF_CENT
