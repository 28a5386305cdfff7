"""When a wait ends, in the shopper's own time: delays, "until HH:MM", date anchors, quiet hours, time zones.

A shopper's time zone comes from their phone number (the phonenumbers time-zone data: the first zone when
the number spans several), else from their country, else the store's (MessagingSettings.time_zone). Local
times are turned into instants with zoneinfo (tzdata), so a wait is right across daylight-saving changes:
a local time that does not exist on the night clocks go forward (02:30) is taken as the first instant after
the gap; one that happens twice on the night they go back is its first occurrence.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from crm.models.flows import DateAnchor, Delay, FlowRun
from crm.models.messaging import QuietHours
from crm.models.profile import Profile


def shopper_zone(profile: Profile, store_zone: str) -> ZoneInfo:
    """The shopper's time zone: from ``profile.phone``, else ``profile.country``, else ``store_zone``."""
    raise NotImplementedError


def local_instant(day: datetime, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of the local wall time ``at`` on ``day``'s local date in ``zone`` (a time in a DST gap
    moves to the gap's end; an ambiguous one is its first occurrence)."""
    raise NotImplementedError


def next_local_time(hhmm: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The next instant after ``now`` (strictly) at which the wall clock in ``zone`` reads ``hhmm``."""
    raise NotImplementedError


def anchor_moment(anchor: DateAnchor, run: FlowRun, profile: Profile) -> datetime | None:
    """The anchored moment (``trigger.occurred_at`` + offset, ``profile.last_order_at`` + offset), or None
    when the trigger or the profile has no such moment."""
    raise NotImplementedError


def delay_end(delay: Delay, run: FlowRun, profile: Profile, zone: ZoneInfo, now: datetime) -> datetime | None:
    """When a delay step that starts at ``now`` ends (may be <= now: an anchor already past); None when its
    anchor is missing."""
    raise NotImplementedError


def in_quiet_hours(moment: datetime, zone: ZoneInfo, quiet: QuietHours) -> bool:
    """Whether ``moment`` falls in the quiet hours [start, end) of the local day in ``zone`` (start > end spans
    midnight; start == end means no quiet hours)."""
    raise NotImplementedError


def quiet_hours_end(moment: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime | None:
    """The instant the quiet hours around ``moment`` end (UTC), or None when ``moment`` is not in them."""
    raise NotImplementedError


__all__ = ["anchor_moment", "delay_end", "in_quiet_hours", "local_instant", "next_local_time", "quiet_hours_end",
           "shopper_zone"]

_ = timedelta  # used by the implementation
