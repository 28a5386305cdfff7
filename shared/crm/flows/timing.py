"""When a wait ends, in the shopper's own time: delays, "until HH:MM", date anchors, quiet hours, time zones.

A shopper's time zone comes from their phone number (the phonenumbers time-zone data: the first zone when
the number spans several), else from their country, else the store's (MessagingSettings.time_zone). Local
times are turned into instants with zoneinfo (tzdata), so a wait is right across daylight-saving changes:
a local time that does not exist on the night clocks go forward (02:30) is taken as the first instant after
the gap; one that happens twice on the night they go back is its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones

from crm.clock import as_utc
from crm.flows.definition import detail_value, profile_moment
from crm.models.flows import DateAnchor, Delay, FlowRun
from crm.models.messaging import QuietHours
from crm.models.profile import Profile

UNKNOWN_ZONE = "Etc/Unknown"  # phonenumbers' answer for a number it cannot place (most mobiles)
# Quiet hours that end inside a daylight-saving gap end at the gap's end; a window almost a day long could
# then end in the next one. A few rounds settle any real setting.
_QUIET_ROUNDS = 3


def shopper_zone(profile: Profile, store_zone: str) -> ZoneInfo:
    """The shopper's time zone: from ``profile.phone`` (its zone; for a number phonenumbers cannot place, the
    main zone of the number's country), else ``profile.country``, else ``store_zone`` (else UTC)."""
    name = (_phone_zone(profile.phone) if profile.phone else None) or (
        _country_zone(profile.country.upper()) if profile.country else None)
    return _zone(name) or _zone(store_zone) or ZoneInfo("UTC")


@lru_cache(maxsize=4096)
def _phone_zone(phone: str) -> str | None:
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    zones = [zone for zone in phone_zones.time_zones_for_number(number) if zone != UNKNOWN_ZONE]
    # A number not in a valid range has no region of its own: the main country of its calling code (44: GB).
    region = phonenumbers.region_code_for_number(number) or next(
        iter(phonenumbers.region_codes_for_country_code(number.country_code or 0)), "")
    country = _country_zone(region)
    if len(zones) > 1 and country in zones:
        return country  # a number spanning a country's zones (US toll-free): its main zone, not the first listed
    return zones[0] if zones else country


@lru_cache(maxsize=512)
def _country_zone(region: str) -> str | None:
    """A country's main zone: the zone of phonenumbers' example number for it (a fixed line in the capital's
    zone, as a rule)."""
    example = phonenumbers.example_number(region) if region else None
    if example is None:
        return None
    zones = [zone for zone in phone_zones.time_zones_for_number(example) if zone != UNKNOWN_ZONE]
    return zones[0] if zones else None


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_instant(day: date, at: time, zone: ZoneInfo, *, later: bool = False) -> datetime:
    """The UTC instant the wall clock in ``zone`` reads ``at`` on ``day``. A wall time that does not exist
    (the clocks jumped over it) is the instant the jump ends; one that happens twice is its first occurrence
    (``later``: its second)."""
    wall = datetime.combine(day, at).replace(tzinfo=zone, fold=1 if later else 0)
    instant = wall.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return instant
    return _gap_end(datetime.combine(day, at).replace(tzinfo=zone), zone)


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant after the gap ``wall`` falls in: the two readings of ``wall`` (with the offsets from
    before and after the jump) bracket the jump; bisect to the second."""
    low, high = sorted((wall.replace(fold=0).astimezone(UTC), wall.replace(fold=1).astimezone(UTC)))
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high


def _clock(hhmm: str) -> time:
    hours, minutes = hhmm.split(":")
    return time(int(hours), int(minutes))


def next_local_time(hhmm: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The first instant at or after ``now`` at which the wall clock in ``zone`` reads ``hhmm`` (within a day;
    a day and the daylight-saving shift on the nights clocks change)."""
    now = as_utc(now)
    today = now.astimezone(zone).date()
    at = _clock(hhmm)
    for days in range(3):
        for later in (False, True):
            candidate = local_instant(today + timedelta(days=days), at, zone, later=later)
            if candidate >= now:
                return candidate
    raise AssertionError("unreachable: a wall time comes round within two days")


def trigger_moment(run: FlowRun) -> datetime:
    """When the run's trigger happened (its detail's ``occurred_at``; the entry time if it has none)."""
    value = run.trigger.get("occurred_at")
    moment = _moment(value)
    return moment or run.entered_at


def _moment(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return as_utc(value) if value.tzinfo else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return as_utc(parsed) if parsed.tzinfo else None
    return None


def anchor_moment(anchor: DateAnchor, run: FlowRun, profile: Profile) -> datetime | None:
    """The anchored moment (``trigger.occurred_at`` + offset, ``profile.last_order_at`` + offset), or None
    when the trigger or the profile has no such moment."""
    source, _, name = anchor.property.partition(".")
    if source == "profile":
        moment = profile_moment(profile, name)
        moment = as_utc(moment) if moment is not None and moment.tzinfo else None
    elif name == "occurred_at":
        moment = trigger_moment(run)
    else:
        moment = _moment(detail_value(run.trigger, name))
    return moment + anchor.offset if moment is not None else None


def delay_end(delay: Delay, run: FlowRun, profile: Profile, zone: ZoneInfo, now: datetime) -> datetime | None:
    """When a delay step that starts at ``now`` ends (at or before ``now`` when its anchor is already past);
    None when its anchor is missing."""
    if delay.duration is not None:
        return as_utc(now) + delay.duration
    if delay.until_time is not None:
        return next_local_time(delay.until_time, zone, now)
    if delay.until is not None:
        return anchor_moment(delay.until, run, profile)
    raise ValueError("a delay takes one of duration, until_time or until (crm.flows.definition checks it)")


def in_quiet_hours(moment: datetime, zone: ZoneInfo, quiet: QuietHours) -> bool:
    """Whether the wall clock in ``zone`` at ``moment`` reads within [start, end) (start > end spans midnight;
    start == end means no quiet hours)."""
    start, end = _clock(quiet.start), _clock(quiet.end)
    wall = as_utc(moment).astimezone(zone).time().replace(tzinfo=None)
    if start == end:
        return False
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def quiet_hours_end(moment: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime | None:
    """The first instant after ``moment`` outside the quiet hours (UTC), or None when ``moment`` is not in them."""
    if not in_quiet_hours(moment, zone, quiet):
        return None
    current = as_utc(moment)
    for _ in range(_QUIET_ROUNDS):
        current = _window_end(current, zone, quiet)
        if not in_quiet_hours(current, zone, quiet):
            return current
    return current


def _window_end(moment: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    start, end = _clock(quiet.start), _clock(quiet.end)
    local = moment.astimezone(zone)
    day = local.date()
    if start > end and local.time().replace(tzinfo=None) >= start:
        day += timedelta(days=1)  # in the evening part of a window that spans midnight: it ends tomorrow
    for later in (False, True):
        candidate = local_instant(day, end, zone, later=later)
        if candidate > moment:
            return candidate
    return local_instant(day + timedelta(days=1), end, zone)


__all__ = ["UNKNOWN_ZONE", "anchor_moment", "delay_end", "in_quiet_hours", "local_instant", "next_local_time",
           "quiet_hours_end", "shopper_zone", "trigger_moment"]
