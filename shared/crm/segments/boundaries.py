"""When a profile's memberships can next change with time alone, so an hourly run reads only those profiles.

A time-relative condition (a window, days since, a relative date, the built-ins that count days) compares
the distance between ``now`` and a time the profile holds with a fixed number of days. Its answer can only
change when ``now`` passes one of those times plus one of those distances: the *candidates*. Nothing else
the profile holds moves with time, so between two candidates every time-relative membership stays as it is.

``next_change`` is the earliest candidate at or after an instant. It is conservative: a candidate may change
nothing (the condition was decided by another part of the definition), never the reverse, so a profile read
at each candidate misses no change. The hourly run (crm.segments.runs.run_hour) reads the profiles whose next
change fell in the past hour, evaluates their time-relative segments, and files each profile under its next
candidate again. The daily run files every profile whose next candidate falls before the next daily run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from crm.clock import as_utc
from crm.models.profile import Profile
from crm.segments.builtin import BUILTINS
from crm.segments.definition import Condition, EventCondition, nodes
from crm.segments.evaluate import DAY, needs
from crm.segments.membership import Rules
from crm.segments.subject import subject_of
from crm.segments.values import Days, DaysAgo

# A profile is filed under its next candidate only when it falls this soon: the daily run (every 24 hours)
# files the rest, and an hour more covers a late schedule.
HORIZON = timedelta(hours=25)
HOUR = timedelta(hours=1)
_DAY_COUNTS = {"days_since_last_order": "last_order_at", "days_since_first_order": "first_order_at"}
_TIMES = ("first_order_at", "last_order_at")


def timed_segments(rules: Rules) -> frozenset[str]:
    """The segments whose membership can change with time alone: the time-relative built-ins, the custom
    segments with a time-relative condition, and those that refer to one of these."""
    timed = {b.id for b in BUILTINS if b.time_relative}
    for segment_id, definition in rules.custom:  # in dependency order: a reference is decided first
        found = needs(definition)
        if found.time_relative or found.segments & timed:
            timed.add(segment_id)
    return frozenset(timed)


def hour_of(at: datetime) -> datetime:
    """The hour an instant falls in (its bucket)."""
    return as_utc(at).replace(minute=0, second=0, microsecond=0)


def next_change(profile: Profile, rules: Rules, at: datetime) -> datetime | None:
    """The earliest instant at or after ``at`` at which a time-relative membership of the profile may change;
    None when none can (no time-relative segment looks at a time the profile holds)."""
    if profile.merged_into is not None:
        return None
    at = as_utc(at)
    return min((c for c in _candidates(profile, rules) if c >= at), default=None)


def due(profile: Profile, rules: Rules, at: datetime) -> datetime | None:
    """``next_change`` when it falls within the horizon (the profile is to be filed under its hour)."""
    change = next_change(profile, rules, at)
    return change if change is not None and change < as_utc(at) + HORIZON else None


def _candidates(profile: Profile, rules: Rules) -> Iterator[datetime]:
    yield from _builtin_candidates(profile, rules)
    subject = None
    for _, definition in rules.custom:
        for node in nodes(definition):
            if isinstance(node, Condition):
                yield from _field_candidates(profile, node)
            elif isinstance(node, EventCondition) and node.within_days is not None:
                subject = subject or subject_of(profile)
                window = node.within_days * DAY
                for occurred in subject.occurrences(node.event):
                    yield as_utc(occurred)  # one in the future (a clock ahead) counts from then
                    yield as_utc(occurred) + window


def _builtin_candidates(profile: Profile, rules: Rules) -> Iterator[datetime]:
    settings = rules.context.settings
    first, last = _utc(profile.first_order_at), _utc(profile.last_order_at)
    if last is not None:
        yield last + settings.churn_after_days * DAY  # churn risk from that instant on
        thresholds = rules.context.population.rfm
        if thresholds is not None:
            # Recency is whole days since the last order; a day count above an edge scores in the next bucket.
            for edge in thresholds.recency.edges:
                yield last + (edge + 1) * DAY
    if first is not None:
        yield first + settings.new_customer_days * DAY  # a new customer until just after this instant
    if profile.last_checkout is not None:
        yield as_utc(profile.last_checkout.at) + settings.cart_abandon_days * DAY
    for moment in (first, last, _utc(profile.last_checkout.at) if profile.last_checkout else None):
        if moment is not None:
            yield moment  # a time in the future (a clock ahead) is compared from then on


def _field_candidates(profile: Profile, condition: Condition) -> Iterator[datetime]:
    if condition.field in _DAY_COUNTS:
        anchor = _utc(getattr(profile, _DAY_COUNTS[condition.field]))
        if anchor is None:
            return
        yield anchor
        for days in _whole_days(condition.value):
            # Whole days elapsed: N from anchor + N days, N + 1 from the day after.
            yield anchor + days * DAY
            yield anchor + (days + 1) * DAY
    elif condition.field in _TIMES:
        anchor = _utc(getattr(profile, condition.field))
        if anchor is None:
            return
        yield anchor
        for value in _parts(condition.value):
            if isinstance(value, DaysAgo):
                yield anchor + value.days_ago * DAY
            elif isinstance(value, Days):
                yield anchor + value.days * DAY


def _parts(value: object) -> tuple[object, ...]:
    return value if isinstance(value, tuple) else (value,)


def _whole_days(value: object) -> Iterator[int]:
    for part in _parts(value):
        if isinstance(part, int) and not isinstance(part, bool) and part >= 0:
            yield part


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment).astimezone(UTC)


__all__ = ["HORIZON", "HOUR", "due", "hour_of", "next_change", "timed_segments"]
