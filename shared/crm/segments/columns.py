"""Whether each of many subjects matches a definition, evaluated a column at a time: the scheduled run's way.

:func:`crm.segments.evaluate.matches` walks the definition once per subject; over a run's thousands of
profiles that walk, and a Python call per node per profile, is most of the time. Here the walk is made once
per definition for a whole :class:`Batch`: each field a definition names is read once into a column (a list,
one value per subject, through the same readers and normalisation as ``matches``), each condition becomes one
list comprehension over its column, and ``all``/``any``/``not`` combine the answers as bit masks (one byte
per subject, so ``&``, ``|`` and ``^`` on Python integers do a whole column at once).

The answers are those of ``matches`` for every subject, definition and instant: the same readers, the same
tests, the same absent-value rule (tests/unit/test_segment_columns.py checks it with hypothesis).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from itertools import compress
from operator import attrgetter
from typing import Any

from crm.clock import as_utc
from crm.segments.definition import (
    ORDER_PLACED,
    All,
    Any_,
    Condition,
    Definition,
    EventCondition,
    MemberOf,
    MemberOp,
    Not,
    referenced_events,
    referenced_fields,
)
from crm.segments.evaluate import COUNTS, DAY, READERS, Subject, normal, resolve
from crm.segments.fields import FIELDS, Kind, Op

Mask = int  # byte i is 1 when subject i matches, 0 otherwise (little-endian)
Column = list[Any]

# Each test over a whole column: an absent value (None) fails every comparison, as in matches().
_COLUMN_TESTS: dict[Op, Callable[[Column, Any], list[bool]]] = {
    Op.EQ: lambda column, x: [v is not None and v == x for v in column],
    Op.NEQ: lambda column, x: [v is not None and v != x for v in column],
    Op.GT: lambda column, x: [v is not None and v > x for v in column],
    Op.GTE: lambda column, x: [v is not None and v >= x for v in column],
    Op.LT: lambda column, x: [v is not None and v < x for v in column],
    Op.LTE: lambda column, x: [v is not None and v <= x for v in column],
    Op.BETWEEN: lambda column, x: [v is not None and x[0] <= v <= x[1] for v in column],
    Op.IN: lambda column, x: [v is not None and v in x for v in column],
    Op.NOT_IN: lambda column, x: [v is not None and v not in x for v in column],
    Op.CONTAINS: lambda column, x: [v is not None and x in v for v in column],
    Op.CONTAINS_ANY: lambda column, x: [v is not None and not v.isdisjoint(x) for v in column],
    Op.CONTAINS_ALL: lambda column, x: [v is not None and v.issuperset(x) for v in column],
    Op.BEFORE: lambda column, x: [v is not None and v < x for v in column],
    Op.AFTER: lambda column, x: [v is not None and v > x for v in column],
    Op.WITHIN_LAST: lambda column, x: [v is not None and v >= x for v in column],
    Op.NOT_WITHIN_LAST: lambda column, x: [v is not None and v < x for v in column],
    Op.EXISTS: lambda column, _: [v is not None for v in column],
    Op.NOT_EXISTS: lambda column, _: [v is None for v in column],
}


# Fields that are a profile attribute as it is (READERS reads them so too): read with one C-level getter.
_ATTRIBUTES = {"lifetime_value": "total_spent", "orders_count": "orders_count", "cancelled_count": "cancelled_count",
               "total_refunded": "total_refunded", "first_order_at": "first_order_at",
               "last_order_at": "last_order_at"}
_DAYS_SINCE = {"days_since_last_order": "last_order_at", "days_since_first_order": "first_order_at"}
_TEXT_ATTRIBUTES = {"country": "country"}
_CONSENTS = {"consent.email": "email", "consent.sms": "sms"}
_COUNTER_SETS = {"products": "products", "categories": "categories", "skus": "skus", "coupons": "coupons"}


def _mask(answers: Iterable[bool]) -> Mask:
    return int.from_bytes(bytes(answers), "little")


class Batch:
    """Subjects evaluated together at ``now``. Columns are read on first use and kept for every later
    definition; memberships set with :meth:`set_members` stand in for the subjects' own ``segments``."""

    def __init__(self, subjects: Sequence[Subject], now: datetime) -> None:
        self.subjects = subjects
        self.now = as_utc(now)
        self.size = len(subjects)
        self.everyone: Mask = _mask([True] * self.size)
        self._columns: dict[str, Column] = {}
        self._profile_column: Column | None = None
        self._times: dict[str, list[list[datetime]]] = {}
        self._members: dict[str, Mask] = {}

    def prepare(self, definitions: Iterable[Definition]) -> None:
        """Read now every column these definitions name (otherwise each is read on first use)."""
        for definition in definitions:
            for field in referenced_fields(definition):
                self._column(field)
            for event in referenced_events(definition):
                self._event_times(event)

    def set_members(self, segment_id: str, mask: Mask) -> None:
        self._members[segment_id] = mask

    def matching(self, definition: Definition) -> Mask:
        if isinstance(definition, All):
            found = self.everyone
            for part in definition.all:
                found &= self.matching(part)
                if not found:
                    break  # nobody left: the other parts cannot add anyone
            return found
        if isinstance(definition, Any_):
            found = 0
            for part in definition.any:
                found |= self.matching(part)
                if found == self.everyone:
                    break
            return found
        if isinstance(definition, Not):
            return self.everyone ^ self.matching(definition.not_)
        if isinstance(definition, Condition):
            return self._condition(definition)
        if isinstance(definition, EventCondition):
            return self._event(definition)
        return self._member_of(definition)

    def indices(self, mask: Mask) -> list[int]:
        """The positions of the subjects a mask holds, in order."""
        return list(compress(range(self.size), mask.to_bytes(self.size, "little")))

    def _column(self, name: str) -> Column:
        column = self._columns.get(name)
        if column is None:
            column = self._columns[name] = self._read(name)
        return column

    def _profiles(self) -> Column:
        if self._profile_column is None:
            self._profile_column = [subject.profile for subject in self.subjects]
        return self._profile_column

    def _read(self, name: str) -> Column:
        # The common fields straight from the profiles, each exactly as READERS and normal() give it (the
        # hypothesis test compares every field with matches()); the rest through READERS.
        if name in _ATTRIBUTES:
            return list(map(attrgetter(_ATTRIBUTES[name]), self._profiles()))
        if name in _DAYS_SINCE:
            now = self.now
            return [None if at is None else (now - at) // DAY for at in self._column(_DAYS_SINCE[name])]
        if name in _TEXT_ATTRIBUTES:
            return [text if text is None else text.casefold()
                    for text in map(attrgetter(_TEXT_ATTRIBUTES[name]), self._profiles())]
        if name in _COUNTER_SETS:
            # Net of cancellations: a key whose units came back to 0 was not bought; an empty set is absent.
            return [frozenset([key.casefold() for key, units in counter.items() if units > 0]) or None
                    if counter else None for counter in map(attrgetter(_COUNTER_SETS[name]), self._profiles())]
        if name in _CONSENTS:
            channel = _CONSENTS[name]
            return [None if statement is None else statement.state.value
                    for statement in (consents.get(channel) for consents in map(attrgetter("consents"),
                                                                                  self._profiles()))]
        if name == "tags":
            return [frozenset(map(str.casefold, tags)) or None if tags else None
                    for tags in map(attrgetter("tags"), self._profiles())]
        read, kind, now = READERS[name], FIELDS[name].kind, self.now
        if kind in (Kind.TEXT, Kind.TEXT_SET):
            return [normal(kind, read(subject, now)) for subject in self.subjects]
        return [read(subject, now) for subject in self.subjects]  # normal() leaves the other kinds as they are

    def _condition(self, condition: Condition) -> Mask:
        kind = FIELDS[condition.field].kind
        value = None if condition.op in (Op.EXISTS, Op.NOT_EXISTS) else resolve(kind, condition.value, self.now)
        return _mask(_COLUMN_TESTS[condition.op](self._column(condition.field), value))

    def _event_times(self, event: str) -> list[list[datetime]]:
        """Each subject's occurrences of the event up to now, oldest first."""
        times = self._times.get(event)
        if times is None:
            now = self.now
            if event == ORDER_PLACED:
                times = [sorted([at for at in subject.orders if at <= now]) for subject in self.subjects]
            else:
                times = [sorted([at for kind, at in subject.events if kind == event and at <= now])
                         for subject in self.subjects]
            self._times[event] = times
        return times

    def _event(self, condition: EventCondition) -> Mask:
        test, wanted = COUNTS[condition.op], condition.count or 0
        seen = self._event_times(condition.event)
        start = None if condition.within_days is None else self.now - condition.within_days * DAY
        if condition.since is None:
            if start is None:
                return _mask([test(len(times), wanted) for times in seen])
            return _mask([test(len(times) - bisect_left(times, start), wanted) for times in seen])
        anchors = self._event_times(condition.since.event)
        # "since" with no anchor at all is false; otherwise count what came after the latest anchor.
        return _mask([bool(marks) and test(len(times) - max(
            bisect_right(times, marks[-1]), 0 if start is None else bisect_left(times, start)), wanted)
            for times, marks in zip(seen, anchors, strict=True)])

    def _member_of(self, member_of: MemberOf) -> Mask:
        held = self._members.get(member_of.segment)
        if held is None:
            held = _mask([member_of.segment in subject.segments for subject in self.subjects])
        return held if member_of.op is MemberOp.MEMBER else self.everyone ^ held


def members(definition: Definition, subjects: Sequence[Subject], now: datetime) -> list[bool]:
    """Whether each subject matches, in order: ``[matches(definition, s, now) for s in subjects]``."""
    batch = Batch(subjects, now)
    return [bool(byte) for byte in batch.matching(definition).to_bytes(batch.size, "little")]


__all__ = ["Batch", "Mask", "members"]
