"""The latest occurrences a profile keeps of each activity type and of its counted orders.

Segment conditions such as "viewed a product at least 3 times in the last 30 days" need *when* things
happened, not only how often. A profile keeps, per activity type and for its counted orders, the times of
the latest RECENT_KEPT occurrences (crm.models.profile.RecentTimes), newest first. Any window or ``since``
count up to RECENT_KEPT is then exact (docs/segments.md, "How exact event counts are").

Every operation here is a function of the multiset of occurrence times only, so the result never depends
on arrival order: adding a time is ``top-N(times + [t])``, a merge is ``top-N(a + b)``, and
``top-N(top-N(a) + top-N(b)) == top-N(a + b)``. Activity events are applied once each (the event marker
de-duplicates them); an order's time is taken out by the value it was put in with, which the order's
previous record says.

Times are whole microseconds since the Unix epoch (a Python datetime's own resolution, so nothing is
rounded). They are stored packed (``packed``): the newest as it is, then each older one as its gap to the
one before. DynamoDB stores a number by its significant digits with trailing zeros trimmed, so a gap in
whole seconds costs 1 byte per two digits of seconds plus 1: minutes apart within a browsing session, 2 or 3
bytes; days apart, 4. Only a sub-second time pays for its fraction. Absolute epoch seconds would cost 6
bytes each, ISO strings 25 or more.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

# How many of the latest occurrences are kept per activity type, and of counted orders. Read at call time
# (tests shrink it to make truncation common); the definition language's count bound follows it.
RECENT_KEPT = 50

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(at: datetime) -> int:
    """An aware moment as whole microseconds since the epoch: exact, and it sorts as the moment does."""
    return (at - _EPOCH) // _MICROSECOND


def moment(value: int) -> datetime:
    return _EPOCH + value * _MICROSECOND


def packed(times: Sequence[int]) -> tuple[int, ...]:
    """Times newest first as stored: the newest, then each gap to the next older one (never negative)."""
    return tuple(times[:1]) + tuple(newer - older for newer, older in itertools.pairwise(times))


def unpacked(gaps: Sequence[int]) -> tuple[int, ...]:
    """The times, newest first, that ``packed`` stored as ``gaps``."""
    times: list[int] = []
    for index, gap in enumerate(gaps):
        times.append(gap if index == 0 else times[-1] - gap)
    return tuple(times)


def latest(times: Iterable[int]) -> tuple[int, ...]:
    """The RECENT_KEPT latest of ``times`` (repeats are separate occurrences), newest first."""
    return tuple(sorted(times, reverse=True)[:RECENT_KEPT])


def with_time(kept: tuple[int, ...], at: int) -> tuple[int, ...]:
    return latest((*kept, at))


def merged(first: tuple[int, ...], second: tuple[int, ...]) -> tuple[int, ...]:
    return latest((*first, *second))


def replaced(kept: tuple[int, ...], total: int, old: int | None, new: int | None) -> tuple[tuple[int, ...], bool]:
    """The kept times after one occurrence at ``old`` (None: none) became one at ``new`` (None: none).

    ``total`` is how many occurrences there were before, kept or not. The second value is True when the
    result cannot be told from the kept times alone and must be rebuilt from the whole history: a kept
    occurrence left, some were not kept, and nothing at least as late took its place (the next older one
    must come back), or ``old`` is not where the kept times say it must be.
    """
    times = list(kept)
    not_kept = max(total - len(times), 0)
    oldest_kept = times[-1] if times else None
    left_the_kept = False
    if old is not None:
        if not_kept and oldest_kept is not None and old < oldest_kept:
            pass  # one of those not kept: the kept times do not change
        elif old in times:
            times.remove(old)
            left_the_kept = True
        else:
            return kept, True
    if new is not None:
        times.append(new)
    refill = left_the_kept and bool(not_kept) and (new is None or oldest_kept is None or new < oldest_kept)
    return latest(times), refill


def complete(kept: tuple[int, ...], total: int) -> bool:
    """Whether ``kept`` holds what it should for ``total`` occurrences: all of them, or the latest RECENT_KEPT.

    Not so only when occurrences were counted while their times were not recorded (profiles written
    before the times were kept, or a history that lost entries).
    """
    return len(kept) == min(max(total, 0), RECENT_KEPT)


__all__ = ["RECENT_KEPT", "complete", "latest", "merged", "micros", "moment", "packed", "replaced", "unpacked",
           "with_time"]
