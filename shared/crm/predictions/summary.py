"""Transactions to the per-customer summaries the models learn from: frequency, recency, age, mean repeat spend.

Time is counted in whole UTC days between order dates (several orders of one customer on one day are one
transaction, their amounts summed), then stated in ``days`` or ``weeks`` (days / 7), as in the CDNOW literature.

- ``x``: repeat transactions (distinct order days after the first), up to and including ``end``'s day;
- ``t_x``: from the first transaction to the last one; ``T``: from the first transaction to ``end``;
- ``zbar``: the mean value of the repeat transactions (0 for a customer without any).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Generic, Literal, TypeVar

import numpy as np

from crm.predictions.btyd import Array

TimeUnit = Literal["days", "weeks"]
DAYS_PER_UNIT: dict[TimeUnit, float] = {"days": 1.0, "weeks": 7.0}

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Summaries(Generic[Key]):
    """One row per customer, in ``customers`` order; times in ``time_unit``."""

    customers: tuple[Key, ...]
    x: Array
    t_x: Array
    T: Array
    zbar: Array
    time_unit: TimeUnit

    def __len__(self) -> int:
        return len(self.customers)

    @property
    def repeat_buyers(self) -> int:
        return int((self.x > 0).sum())

    @property
    def paying_repeat_buyers(self) -> int:
        """Repeat buyers whose repeat purchases cost something: the ones the spend model learns from."""
        return int(((self.x > 0) & (self.zbar > 0)).sum())


def _day(moment: date | datetime) -> date:
    if isinstance(moment, datetime):
        return (moment.astimezone(UTC) if moment.tzinfo is not None else moment).date()
    return moment


def daily_transactions(orders: Iterable[tuple[date | datetime, Decimal]]) -> list[tuple[date, Decimal]]:
    """A customer's orders as one transaction per day (amounts summed), oldest first."""
    days: dict[date, Decimal] = {}
    for moment, amount in orders:
        day = _day(moment)
        days[day] = days.get(day, Decimal(0)) + amount
    return sorted(days.items())


def summarise(histories: Mapping[Key, Sequence[tuple[date | datetime, Decimal]]], end: date | datetime,
              time_unit: TimeUnit = "days") -> Summaries[Key]:
    """Each customer with an order on or before ``end``'s day; later orders are left out."""
    last_day = _day(end)
    per_unit = DAYS_PER_UNIT[time_unit]
    customers: list[Key] = []
    rows: list[tuple[float, float, float, float]] = []
    for customer, orders in histories.items():
        days = [(day, amount) for day, amount in daily_transactions(orders) if day <= last_day]
        if not days:
            continue
        first = days[0][0]
        repeats = days[1:]
        zbar = float(sum((amount for _, amount in repeats), Decimal(0)) / len(repeats)) if repeats else 0.0
        customers.append(customer)
        rows.append((len(repeats), (days[-1][0] - first).days / per_unit, (last_day - first).days / per_unit, zbar))
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return Summaries(customers=tuple(customers), x=table[:, 0], t_x=table[:, 1], T=table[:, 2], zbar=table[:, 3],
                     time_unit=time_unit)


def repeat_purchases_between(histories: Mapping[Key, Sequence[tuple[date | datetime, Decimal]]],
                             customers: Sequence[Key], after: date | datetime, until: date | datetime) -> Array:
    """Each customer's transactions (distinct order days) after ``after``'s day up to ``until``'s day: a holdout."""
    start, stop = _day(after), _day(until)
    return np.array([sum(1 for day, _ in daily_transactions(histories.get(customer, ())) if start < day <= stop)
                     for customer in customers], dtype=np.float64)
