"""Waits in the shopper's own time (crm.flows.timing): time zones, "until HH:MM", anchors, quiet hours, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from crm.flows.timing import (
    anchor_moment,
    delay_end,
    in_quiet_hours,
    local_instant,
    next_local_time,
    quiet_hours_end,
    shopper_zone,
    trigger_moment,
)
from crm.models.flows import DateAnchor, Delay, FlowRun
from crm.models.messaging import QuietHours
from crm.models.profile import Profile, new_profile
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
SYDNEY = ZoneInfo("Australia/Sydney")
TCPA = QuietHours(start="21:00", end="08:00")
# Zones with and without daylight saving, half-hour offsets and shifts, and transitions at midnight (Havana).
ZONES = tuple(ZoneInfo(name) for name in (
    "UTC", "America/New_York", "America/Los_Angeles", "Europe/London", "Europe/Berlin", "Australia/Sydney",
    "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata", "Pacific/Chatham", "America/Havana",
    "Asia/Tokyo", "America/Sao_Paulo", "Africa/Casablanca"))


def profile(**fields: object) -> Profile:
    return new_profile("w1", "p1", NOW).model_copy(update=fields)


def run(trigger: dict[str, object] | None = None) -> FlowRun:
    return FlowRun(workspace_id="w1", flow_id="f", flow_version=1, run_id="r1", profile_id="p1",
                   trigger_type="CheckoutStarted", trigger_event_id="e1",
                   trigger=trigger if trigger is not None else {"occurred_at": "2026-03-01T10:00:00+00:00"},
                   entered_at=NOW)


# --- the shopper's time zone -----------------------------------------------------------------------------


def test_the_zone_comes_from_the_phone_first() -> None:
    shopper = profile(phone="+12125550123", country="GB")  # a New York number, an address in Britain
    assert shopper_zone(shopper, "Asia/Tokyo") == NEW_YORK


def test_a_number_phonenumbers_cannot_place_takes_its_country_zone() -> None:
    # UK mobiles have no geographic zone in phonenumbers' data ("Etc/Unknown"); the number is still British.
    assert shopper_zone(profile(phone="+447700900123"), "Asia/Tokyo") == LONDON


def test_a_number_spanning_a_country_takes_its_main_zone_not_the_first_listed() -> None:
    # +1 800 lists every North American zone, America/Adak first.
    assert shopper_zone(profile(phone="+18005550123"), "UTC") == NEW_YORK


def test_without_a_phone_the_country_decides() -> None:
    assert shopper_zone(profile(country="AU"), "UTC") == SYDNEY
    assert shopper_zone(profile(country="gb"), "UTC") == LONDON


def test_without_phone_or_country_the_store_zone_decides() -> None:
    assert shopper_zone(profile(), "Europe/Berlin") == ZoneInfo("Europe/Berlin")


def test_an_unplaceable_phone_or_country_falls_through_to_the_store() -> None:
    assert shopper_zone(profile(phone="not a number", country="ZZ"), "Asia/Tokyo") == ZoneInfo("Asia/Tokyo")
    assert shopper_zone(profile(), "Not/AZone") == ZoneInfo("UTC")


# --- local times and DST -------------------------------------------------------------------------------


def test_a_local_time_in_the_spring_gap_is_the_end_of_the_gap() -> None:
    # 8 March 2026, New York: 02:00 EST jumps to 03:00 EDT; 02:30 never happens.
    instant = local_instant(date(2026, 3, 8), time(2, 30), NEW_YORK)
    assert instant == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert instant.astimezone(NEW_YORK).time() == time(3, 0)


def test_an_ambiguous_local_time_is_its_first_occurrence_unless_asked_for_the_second() -> None:
    # 1 November 2026, New York: 01:30 happens at EDT then again at EST.
    assert local_instant(date(2026, 11, 1), time(1, 30), NEW_YORK) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert local_instant(date(2026, 11, 1), time(1, 30), NEW_YORK, later=True) == datetime(2026, 11, 1, 6, 30,
                                                                                            tzinfo=UTC)


def test_until_a_time_today_or_tomorrow() -> None:
    morning = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 08:00 in New York
    assert next_local_time("09:30", NEW_YORK, morning) == datetime(2026, 6, 1, 13, 30, tzinfo=UTC)
    assert next_local_time("07:00", NEW_YORK, morning) == datetime(2026, 6, 2, 11, 0, tzinfo=UTC)
    assert next_local_time("08:00", NEW_YORK, morning) == morning  # the time is now: no wait


def test_until_a_time_across_the_spring_change_is_23_real_hours_away() -> None:
    before = datetime(2026, 3, 7, 14, 0, tzinfo=UTC)  # 09:00 EST on the Saturday
    until = next_local_time("09:00", NEW_YORK, before + timedelta(minutes=1))
    assert until.astimezone(NEW_YORK).isoformat() == "2026-03-08T09:00:00-04:00"
    assert until - before == timedelta(hours=23)


def test_until_an_ambiguous_time_between_its_two_occurrences_is_the_second() -> None:
    between = datetime(2026, 11, 1, 5, 45, tzinfo=UTC)  # 01:45 EDT: 01:30 EDT is past, 01:30 EST is ahead
    assert next_local_time("01:30", NEW_YORK, between) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


# --- delays --------------------------------------------------------------------------------------------


def test_a_duration_counts_from_now() -> None:
    assert delay_end(Delay(id="d", duration=timedelta(hours=4)), run(), profile(), NEW_YORK, NOW) == NOW + timedelta(
        hours=4)


def test_until_the_trigger_plus_an_offset() -> None:
    delay = Delay(id="d", until=DateAnchor(property="trigger.occurred_at", offset=timedelta(hours=24)))
    assert delay_end(delay, run(), profile(), NEW_YORK, NOW) == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_until_a_profile_moment_and_a_missing_one() -> None:
    delay = Delay(id="d", until=DateAnchor(property="profile.last_order_at", offset=timedelta(days=30)))
    ordered = datetime(2026, 2, 1, tzinfo=UTC)
    assert delay_end(delay, run(), profile(last_order_at=ordered), UTC_ZONE, NOW) == ordered + timedelta(days=30)
    assert delay_end(delay, run(), profile(), UTC_ZONE, NOW) is None


def test_an_anchor_on_another_trigger_moment() -> None:
    anchor = DateAnchor(property="trigger.entered_at", offset=timedelta(0))
    assert anchor_moment(anchor, run({"entered_at": "2026-01-05T00:00:00Z"}), profile()) == datetime(
        2026, 1, 5, tzinfo=UTC)
    assert anchor_moment(anchor, run({"entered_at": "not a time"}), profile()) is None


def test_a_trigger_without_its_time_is_placed_at_entry() -> None:
    assert trigger_moment(run({})) == NOW


UTC_ZONE = ZoneInfo("UTC")


# --- quiet hours ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("local", "quiet"), [
    (time(21, 0), True), (time(23, 59), True), (time(0, 0), True), (time(7, 59), True),
    (time(8, 0), False), (time(12, 0), False), (time(20, 59), False),
])
def test_quiet_hours_spanning_midnight(local: time, quiet: bool) -> None:
    moment = datetime.combine(date(2026, 6, 1), local, tzinfo=NEW_YORK)
    assert in_quiet_hours(moment, NEW_YORK, TCPA) is quiet


def test_quiet_hours_within_a_day_and_none() -> None:
    lunch = QuietHours(start="12:00", end="14:00")
    assert in_quiet_hours(datetime(2026, 6, 1, 13, 0, tzinfo=UTC), UTC_ZONE, lunch)
    assert not in_quiet_hours(datetime(2026, 6, 1, 14, 0, tzinfo=UTC), UTC_ZONE, lunch)
    assert not in_quiet_hours(datetime(2026, 6, 1, 3, 0, tzinfo=UTC), UTC_ZONE, QuietHours(start="08:00", end="08:00"))


def test_an_evening_sms_waits_for_eight_the_next_morning() -> None:
    evening = datetime(2026, 6, 1, 22, 30, tzinfo=NEW_YORK)
    assert quiet_hours_end(evening, NEW_YORK, TCPA) == datetime(2026, 6, 2, 8, 0, tzinfo=NEW_YORK)
    assert quiet_hours_end(datetime(2026, 6, 2, 3, 0, tzinfo=NEW_YORK), NEW_YORK, TCPA) == datetime(
        2026, 6, 2, 8, 0, tzinfo=NEW_YORK)
    assert quiet_hours_end(datetime(2026, 6, 2, 9, 0, tzinfo=NEW_YORK), NEW_YORK, TCPA) is None


def test_quiet_hours_on_the_night_clocks_go_forward_last_an_hour_less() -> None:
    evening = datetime(2026, 3, 7, 21, 0, tzinfo=NEW_YORK)  # 21:00 EST
    end = quiet_hours_end(evening, NEW_YORK, TCPA)
    assert end is not None
    assert end.astimezone(NEW_YORK).isoformat() == "2026-03-08T08:00:00-04:00"
    assert end - evening == timedelta(hours=10)


def test_quiet_hours_on_the_night_clocks_go_back_last_an_hour_more() -> None:
    evening = datetime(2026, 10, 31, 21, 0, tzinfo=NEW_YORK)  # 21:00 EDT
    end = quiet_hours_end(evening, NEW_YORK, TCPA)
    assert end is not None and end - evening == timedelta(hours=12)


def test_the_same_instant_is_quiet_in_one_zone_and_not_in_another() -> None:
    instant = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)  # 09:00 New York, 23:00 Sydney
    assert quiet_hours_end(instant, NEW_YORK, TCPA) is None
    assert quiet_hours_end(instant, SYDNEY, TCPA) == datetime(2026, 6, 2, 8, 0, tzinfo=SYDNEY)


# --- properties ----------------------------------------------------------------------------------------

# hypothesis takes naive bounds and attaches the zone itself.
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31),  # noqa: DTZ001
                       timezones=st.just(UTC))
zones = st.sampled_from(ZONES)
clock_times = st.builds(lambda hour, minute: f"{hour:02d}:{minute:02d}", st.integers(0, 23), st.integers(0, 59))


@settings(max_examples=300, deadline=None)
@given(moment=moments, zone=zones, start=clock_times, end=clock_times)
def test_a_deferred_sms_never_lands_in_quiet_hours(moment: datetime, zone: ZoneInfo, start: str, end: str) -> None:
    quiet = QuietHours(start=start, end=end)
    resume = quiet_hours_end(moment, zone, quiet)
    if resume is None:
        assert not in_quiet_hours(moment, zone, quiet)
    else:
        assert resume > moment
        assert not in_quiet_hours(resume, zone, quiet)
        assert resume - moment <= timedelta(hours=26)


@settings(max_examples=300, deadline=None)
@given(moment=moments, zone=zones, until=clock_times)
def test_until_hh_mm_lands_within_a_day_on_that_wall_time(moment: datetime, zone: ZoneInfo, until: str) -> None:
    end = next_local_time(until, zone, moment)
    assert end >= moment
    # 24 h, and the day's daylight-saving shift (Lord Howe's is half an hour, the others' an hour).
    assert end - moment <= timedelta(hours=25)
    wall = end.astimezone(zone).time()
    hour, minute = (int(part) for part in until.split(":"))
    in_gap = wall != time(hour, minute)
    if in_gap:  # the wall time did not exist that day: the end of the jump, a little later on the clock
        assert wall > time(hour, minute)


@settings(max_examples=200, deadline=None)
@given(moment=moments, zone=zones, hours=st.integers(1, 24 * 365), until=clock_times)
def test_a_wait_never_ends_before_it_starts(moment: datetime, zone: ZoneInfo, hours: int, until: str) -> None:
    end = delay_end(Delay(id="d", duration=timedelta(hours=hours)), run(), profile(), zone, moment)
    assert end is not None and end > moment
    end = delay_end(Delay(id="d", until_time=until), run(), profile(), zone, moment)
    assert end is not None and end >= moment
