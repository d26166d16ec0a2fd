"""Business hours: windows, SLA clocks, due times, and the duty window in other cities."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.business_hours import (
    BusinessHoursError,
    NaiveDatetimeError,
    SupportWindow,
    UnknownZoneError,
    _add_fixed,
    _add_walking,
    add_business_time,
    business_seconds_between,
    is_business_day,
    is_business_time,
    load_zone,
    support_window,
)
from rules.policy import BusinessCalendar

GMT4 = ZoneInfo("Etc/GMT-4")
UTC = ZoneInfo("UTC")
H = 3600
CAL = BusinessCalendar()  # Mon-Fri 09:00-18:00 at Etc/GMT-4, no holidays
EVERY_DAY = frozenset(range(7))


def at(text: str, zone: ZoneInfo = GMT4) -> datetime:
    """``"2026-07-13 10:00"`` as an aware datetime, by default in the support zone."""
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def cal_with(**changes: Any) -> BusinessCalendar:
    return replace(CAL, **changes)


# --- the calendar's own defaults ------------------------------------------------------------


def test_default_calendar_is_gmt_plus_4_weekdays_9_to_18() -> None:
    # POSIX zones invert the sign: Etc/GMT-4 is UTC+4.
    assert CAL.zone == "Etc/GMT-4"
    assert at("2026-07-13 09:00").utcoffset() == timedelta(hours=4)
    assert (CAL.start, CAL.end, CAL.weekdays) == (time(9), time(18), frozenset(range(5)))


# --- the duty window in the vendor page's cities -------------------------------------------

SUMMER = date(2026, 7, 15)  # a Wednesday: northern summer time, Sydney standard time
WINTER = date(2026, 1, 14)  # a Wednesday: northern standard time, Sydney summer time

# The page lists "Los Angeles 22:00-7:00, New York 1:00-10:00, London 6:00-15:00,
# Berlin/Rome 7:00-16:00, Hong Kong/Tokyo 13:00-22:00, Sydney 15:00-0:00": rounded figures
# for the northern summer. Where the exact window differs, the row's comment says so.
CITIES = [
    # zone, day, start date, start, end date, end
    ("America/Los_Angeles", SUMMER, "2026-07-14", "22:00", "2026-07-15", "07:00"),
    # Winter (PST, UTC-8): an hour earlier than the page.
    ("America/Los_Angeles", WINTER, "2026-01-13", "21:00", "2026-01-14", "06:00"),
    ("America/New_York", SUMMER, "2026-07-15", "01:00", "2026-07-15", "10:00"),
    # Winter (EST, UTC-5): opens at midnight, the start of the same date.
    ("America/New_York", WINTER, "2026-01-14", "00:00", "2026-01-14", "09:00"),
    ("Europe/London", SUMMER, "2026-07-15", "06:00", "2026-07-15", "15:00"),
    # Winter (GMT): an hour earlier than the page.
    ("Europe/London", WINTER, "2026-01-14", "05:00", "2026-01-14", "14:00"),
    ("Europe/Berlin", SUMMER, "2026-07-15", "07:00", "2026-07-15", "16:00"),
    ("Europe/Rome", SUMMER, "2026-07-15", "07:00", "2026-07-15", "16:00"),
    # Winter (CET, UTC+1): an hour earlier than the page.
    ("Europe/Berlin", WINTER, "2026-01-14", "06:00", "2026-01-14", "15:00"),
    ("Europe/Rome", WINTER, "2026-01-14", "06:00", "2026-01-14", "15:00"),
    # Hong Kong and Tokyo keep no daylight saving: the same all year.
    ("Asia/Hong_Kong", SUMMER, "2026-07-15", "13:00", "2026-07-15", "22:00"),
    ("Asia/Hong_Kong", WINTER, "2026-01-14", "13:00", "2026-01-14", "22:00"),
    # Tokyo is UTC+9, an hour ahead of Hong Kong: the page's 13:00-22:00 is really 14:00-23:00.
    ("Asia/Tokyo", SUMMER, "2026-07-15", "14:00", "2026-07-15", "23:00"),
    ("Asia/Tokyo", WINTER, "2026-01-14", "14:00", "2026-01-14", "23:00"),
    # Sydney in July (AEST, UTC+10) matches the page; it closes at midnight, the next date.
    ("Australia/Sydney", SUMMER, "2026-07-15", "15:00", "2026-07-16", "00:00"),
    # Sydney in January (AEDT, UTC+11): 16:00-01:00, not the page's 15:00-0:00.
    ("Australia/Sydney", WINTER, "2026-01-14", "16:00", "2026-01-15", "01:00"),
]


@pytest.mark.parametrize(("zone", "day", "start_date", "start", "end_date", "end"), CITIES)
def test_duty_window_in_the_pages_cities(
    zone: str, day: date, start_date: str, start: str, end_date: str, end: str
) -> None:
    window = support_window(day, zone, CAL)
    assert window is not None
    assert (window.local_start_date, window.local_start) == (start_date, start)
    assert (window.local_end_date, window.local_end) == (end_date, end)
    assert window.start.tzinfo == ZoneInfo(zone)
    assert window.seconds == 9 * H
    # The same instants as 09:00-18:00 in the support zone.
    assert window.start == datetime.combine(day, time(9), GMT4)
    assert window.end == datetime.combine(day, time(18), GMT4)


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # Half-hour and three-quarter-hour offsets come out exactly too.
        ("Asia/Kolkata", SUMMER, ("2026-07-15", "10:30", "2026-07-15", "19:30")),
        ("Asia/Kathmandu", SUMMER, ("2026-07-15", "10:45", "2026-07-15", "19:45")),
        ("Etc/GMT-4", SUMMER, ("2026-07-15", "09:00", "2026-07-15", "18:00")),
        ("UTC", WINTER, ("2026-01-14", "05:00", "2026-01-14", "14:00")),
        # Kiritimati (UTC+14): opens in the evening, closes early next morning.
        ("Pacific/Kiritimati", SUMMER, ("2026-07-15", "19:00", "2026-07-16", "04:00")),
        # Honolulu (UTC-10): opens the evening before the support date.
        ("Pacific/Honolulu", SUMMER, ("2026-07-14", "19:00", "2026-07-15", "04:00")),
    ],
)
def test_window_in_other_offsets(zone: str, day: date, expected: tuple[str, ...]) -> None:
    window = support_window(day, zone, CAL)
    assert window is not None
    got = (window.local_start_date, window.local_start, window.local_end_date, window.local_end)
    assert got == expected


# --- daylight saving ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # New York springs forward on Sunday 2026-03-08; London only on 2026-03-29, so for three
        # weeks New York is four hours behind London instead of five.
        ("America/New_York", date(2026, 3, 6), ("2026-03-06", "00:00", "2026-03-06", "09:00")),
        ("America/New_York", date(2026, 3, 9), ("2026-03-09", "01:00", "2026-03-09", "10:00")),
        ("America/Los_Angeles", date(2026, 3, 9), ("2026-03-08", "22:00", "2026-03-09", "07:00")),
        ("Europe/London", date(2026, 3, 9), ("2026-03-09", "05:00", "2026-03-09", "14:00")),
        ("Europe/London", date(2026, 3, 30), ("2026-03-30", "06:00", "2026-03-30", "15:00")),
        # Sydney leaves summer time on Sunday 2026-04-05.
        ("Australia/Sydney", date(2026, 4, 3), ("2026-04-03", "16:00", "2026-04-04", "01:00")),
        ("Australia/Sydney", date(2026, 4, 6), ("2026-04-06", "15:00", "2026-04-07", "00:00")),
    ],
)
def test_window_either_side_of_a_transition(
    zone: str, day: date, expected: tuple[str, ...]
) -> None:
    window = support_window(day, zone, CAL)
    assert window is not None
    assert window.seconds == 9 * H
    got = (window.local_start_date, window.local_start, window.local_end_date, window.local_end)
    assert got == expected


# Support open every day, so the window falls on the requester's transition Sunday.
SEVEN_DAYS = cal_with(weekdays=EVERY_DAY)


@pytest.mark.parametrize(
    ("day", "expected", "wall_hours"),
    [
        # 02:00 EST jumps to 03:00 EDT at 07:00 UTC, inside the window (05:00-14:00 UTC):
        # ten hours on the wall clock, nine real hours.
        (date(2026, 3, 8), ("2026-03-08", "00:00", "2026-03-08", "10:00"), 10),
        # 02:00 EDT falls back to 01:00 EST at 06:00 UTC: eight hours on the wall, nine real.
        (date(2026, 11, 1), ("2026-11-01", "01:00", "2026-11-01", "09:00"), 8),
    ],
)
def test_window_spanning_the_requesters_transition(
    day: date, expected: tuple[str, ...], wall_hours: int
) -> None:
    window = support_window(day, "America/New_York", SEVEN_DAYS)
    assert window is not None
    got = (window.local_start_date, window.local_start, window.local_end_date, window.local_end)
    assert got == expected
    assert window.seconds == 9 * H
    wall = window.end.replace(tzinfo=None) - window.start.replace(tzinfo=None)
    assert wall == timedelta(hours=wall_hours)


# A calendar kept in a zone with daylight saving: windows on the wall clock of that zone.
BERLIN_NIGHT = BusinessCalendar(
    zone="Europe/Berlin", weekdays=EVERY_DAY, start=time(0), end=time(6)
)
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("day", "real_hours", "utc_window"),
    [
        # 02:00 CET jumps to 03:00 CEST: the 00:00-06:00 window lasts five hours.
        (date(2026, 3, 29), 5, ("2026-03-28", "23:00", "2026-03-29", "04:00")),
        # 03:00 CEST falls back to 02:00 CET: seven hours.
        (date(2026, 10, 25), 7, ("2026-10-24", "22:00", "2026-10-25", "05:00")),
        (date(2026, 7, 15), 6, ("2026-07-14", "22:00", "2026-07-15", "04:00")),
    ],
)
def test_calendar_zone_with_daylight_saving(
    day: date, real_hours: int, utc_window: tuple[str, ...]
) -> None:
    midnight = datetime.combine(day, time(0), BERLIN)
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), BERLIN)
    assert business_seconds_between(midnight, next_midnight, BERLIN_NIGHT) == real_hours * H
    window = support_window(day, "UTC", BERLIN_NIGHT)
    assert window is not None
    assert window.seconds == real_hours * H
    got = (window.local_start_date, window.local_start, window.local_end_date, window.local_end)
    assert got == utc_window
    # The due time at the end of the day's allowance is the window's closing, 06:00 Berlin.
    due = add_business_time(midnight, real_hours * H, BERLIN_NIGHT)
    assert due == datetime.combine(day, time(6), BERLIN)
    assert due.tzinfo == BERLIN


def test_weekend_of_a_transition_in_a_calendar_zone_with_daylight_saving() -> None:
    cal = cal_with(zone="Europe/Berlin")
    # Friday 17:00 CET to Monday 10:00 CEST: one hour each side, the weekend's lost hour
    # does not count.
    start = datetime(2026, 3, 27, 17, 0, tzinfo=BERLIN)
    end = datetime(2026, 3, 30, 10, 0, tzinfo=BERLIN)
    assert business_seconds_between(start, end, cal) == 2 * H
    assert add_business_time(start, 2 * H, cal) == end


# --- business days and instants -----------------------------------------------------------

HOLIDAYS = frozenset({date(2026, 7, 17), date(2026, 7, 20), date(2026, 12, 25)})
HOLIDAY_CAL = cal_with(holidays=HOLIDAYS)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 7, 13), True),  # Monday
        (date(2026, 7, 16), True),  # Thursday
        (date(2026, 7, 17), False),  # Friday, a holiday
        (date(2026, 7, 18), False),  # Saturday
        (date(2026, 7, 19), False),  # Sunday
        (date(2026, 7, 20), False),  # Monday, a holiday
        (date(2026, 7, 21), True),  # Tuesday
    ],
)
def test_is_business_day(day: date, expected: bool) -> None:
    assert is_business_day(day, HOLIDAY_CAL) is expected


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (at("2026-07-13 08:59:59"), False),
        (at("2026-07-13 09:00"), True),  # opening counts as open
        (at("2026-07-13 12:00"), True),
        (at("2026-07-13 17:59:59.999999"), True),
        (at("2026-07-13 18:00"), False),  # closing counts as closed
        (at("2026-07-18 12:00"), False),  # Saturday
        (at("2026-07-17 12:00"), False),  # a holiday
        # The same rule for an instant given in another zone.
        (at("2026-07-13 05:00", UTC), True),
        (at("2026-07-13 04:59:59", UTC), False),
        (at("2026-07-13 14:00", UTC), False),
        (at("2026-07-12 22:00", ZoneInfo("America/Los_Angeles")), True),  # Mon 09:00 GMT+4
    ],
)
def test_is_business_time(instant: datetime, expected: bool) -> None:
    assert is_business_time(instant, HOLIDAY_CAL) is expected


# --- business_seconds_between -------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "cal", "expected"),
    [
        (at("2026-07-13 10:00"), at("2026-07-13 12:00"), CAL, 2 * H),
        (at("2026-07-13 09:00"), at("2026-07-13 18:00"), CAL, 9 * H),  # exactly one window
        (at("2026-07-13 18:00"), at("2026-07-14 09:00"), CAL, 0),  # closing to opening
        (at("2026-07-13 07:00"), at("2026-07-13 20:00"), CAL, 9 * H),  # beyond both ends
        (at("2026-07-13 17:59:59"), at("2026-07-14 09:00:01"), CAL, 2),
        (at("2026-07-13 10:00:00.9"), at("2026-07-13 10:00:02"), CAL, 1),  # rounded down
        # Friday 17:00 to Monday 10:00: the weekend does not count.
        (at("2026-07-10 17:00"), at("2026-07-13 10:00"), CAL, 2 * H),
        (at("2026-07-11 00:00"), at("2026-07-13 00:00"), CAL, 0),  # a whole weekend
        # Thursday 17:00 to Tuesday 10:00 with Friday and Monday holidays.
        (at("2026-07-16 17:00"), at("2026-07-21 10:00"), HOLIDAY_CAL, 2 * H),
        (at("2026-07-16 17:00"), at("2026-07-21 10:00"), CAL, 2 * H + 2 * 9 * H),
        # Whole weeks and a whole year (2026 has 261 weekdays; two holidays on weekdays).
        (at("2026-07-13 00:00"), at("2026-07-20 00:00"), CAL, 5 * 9 * H),
        (at("2026-07-06 00:00"), at("2026-08-03 00:00"), CAL, 4 * 5 * 9 * H),
        (at("2026-01-01 00:00"), at("2027-01-01 00:00"), CAL, 261 * 9 * H),
        (
            at("2026-01-01 00:00"),
            at("2027-01-01 00:00"),
            cal_with(holidays=frozenset({date(2026, 1, 1), date(2026, 1, 3), date(2026, 5, 1)})),
            259 * 9 * H,  # 3 January 2026 is a Saturday
        ),
        # Instants in other zones: Monday 09:00-10:00 GMT+4 is 05:00-06:00 UTC.
        (at("2026-07-13 05:00", UTC), at("2026-07-13 06:00", UTC), CAL, H),
        (at("2026-07-12 20:00", UTC), at("2026-07-13 06:00", UTC), CAL, H),
        # End before start, or equal.
        (at("2026-07-13 12:00"), at("2026-07-13 10:00"), CAL, 0),
        (at("2026-07-13 12:00"), at("2026-07-13 12:00"), CAL, 0),
    ],
)
def test_business_seconds_between(
    start: datetime, end: datetime, cal: BusinessCalendar, expected: int
) -> None:
    assert business_seconds_between(start, end, cal) == expected


@pytest.mark.parametrize(
    ("start", "end", "paused", "expected"),
    [
        # Monday 10:00-16:00 is six business hours; each row stops the clock somewhere.
        (at("2026-07-13 10:00"), at("2026-07-13 16:00"), [], 6 * H),
        (
            at("2026-07-13 10:00"),
            at("2026-07-13 16:00"),
            [(at("2026-07-13 11:00"), at("2026-07-13 12:00"))],
            5 * H,
        ),
        # Overlapping pauses count once: 11:00-14:00.
        (
            at("2026-07-13 10:00"),
            at("2026-07-13 16:00"),
            [
                (at("2026-07-13 11:00"), at("2026-07-13 13:00")),
                (at("2026-07-13 12:00"), at("2026-07-13 14:00")),
            ],
            3 * H,
        ),
        # A pause inside another, given out of order, and an adjacent one: 11:00-14:00.
        (
            at("2026-07-13 10:00"),
            at("2026-07-13 16:00"),
            [
                (at("2026-07-13 13:00"), at("2026-07-13 14:00")),
                (at("2026-07-13 11:00"), at("2026-07-13 13:00")),
                (at("2026-07-13 11:30"), at("2026-07-13 12:00")),
            ],
            3 * H,
        ),
        # Pauses outside business hours change nothing.
        (
            at("2026-07-13 10:00"),
            at("2026-07-14 16:00"),
            [(at("2026-07-13 18:00"), at("2026-07-14 09:00"))],
            15 * H,
        ),
        # Pauses reaching beyond start and end are cut to them.
        (
            at("2026-07-13 10:00"),
            at("2026-07-13 16:00"),
            [
                (at("2026-07-13 08:00"), at("2026-07-13 11:00")),
                (at("2026-07-13 15:00"), at("2026-07-13 20:00")),
            ],
            4 * H,
        ),
        (
            at("2026-07-13 10:00"),
            at("2026-07-13 16:00"),
            [(at("2026-07-10 00:00"), at("2026-07-20 00:00"))],
            0,
        ),
        # A pause over a weekend: Friday 17:00-17:30 and Monday 09:30-11:00 still run.
        (
            at("2026-07-10 17:00"),
            at("2026-07-13 11:00"),
            [(at("2026-07-10 17:30"), at("2026-07-13 09:30"))],
            2 * H,
        ),
        # An empty or backwards pause is nothing.
        (
            at("2026-07-13 10:00"),
            at("2026-07-13 16:00"),
            [
                (at("2026-07-13 12:00"), at("2026-07-13 12:00")),
                (at("2026-07-13 14:00"), at("2026-07-13 11:00")),
            ],
            6 * H,
        ),
        # Pauses in another zone: 07:00-08:00 UTC is 11:00-12:00 GMT+4.
        (
            at("2026-07-13 10:00"),
            at("2026-07-13 16:00"),
            [(at("2026-07-13 07:00", UTC), at("2026-07-13 08:00", UTC))],
            5 * H,
        ),
        # End before start stays zero whatever the pauses.
        (
            at("2026-07-13 16:00"),
            at("2026-07-13 10:00"),
            [(at("2026-07-13 11:00"), at("2026-07-13 12:00"))],
            0,
        ),
    ],
)
def test_business_seconds_with_pauses(
    start: datetime,
    end: datetime,
    paused: list[tuple[datetime, datetime]],
    expected: int,
) -> None:
    assert business_seconds_between(start, end, CAL, paused=paused) == expected


@pytest.mark.parametrize("zone", ["Etc/GMT-4", "Asia/Dubai"])
def test_business_seconds_over_ten_years(zone: str) -> None:
    # 2026-01-01 .. 2036-01-01 holds 2608 weekdays; Etc/GMT-4 counts them arithmetically,
    # Asia/Dubai (the same offset) day by day.
    weekdays = sum(
        1
        for n in range((date(2036, 1, 1) - date(2026, 1, 1)).days)
        if (date(2026, 1, 1) + timedelta(days=n)).weekday() < 5
    )
    assert weekdays == 2608
    cal = cal_with(zone=zone, holidays=HOLIDAYS)  # three holidays, all on weekdays
    start = datetime(2026, 1, 1, tzinfo=ZoneInfo(zone))
    end = datetime(2036, 1, 1, tzinfo=ZoneInfo(zone))
    assert business_seconds_between(start, end, cal) == (weekdays - 3) * 9 * H


# --- add_business_time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "seconds", "cal", "expected"),
    [
        (at("2026-07-13 10:00"), 2 * H, CAL, at("2026-07-13 12:00")),
        (at("2026-07-13 09:00"), 0, CAL, at("2026-07-13 09:00")),
        # Ending exactly at closing gives the closing instant, not the next opening.
        (at("2026-07-13 09:00"), 9 * H, CAL, at("2026-07-13 18:00")),
        (at("2026-07-13 09:00"), 9 * H + 1, CAL, at("2026-07-14 09:00:01")),
        # A start outside hours begins at the next opening.
        (at("2026-07-13 18:00"), 0, CAL, at("2026-07-14 09:00")),
        (at("2026-07-13 06:00"), 2 * H, CAL, at("2026-07-13 11:00")),
        (at("2026-07-11 12:00"), 2 * H, CAL, at("2026-07-13 11:00")),  # Saturday
        # Over a weekend: Friday 17:00 + 2 business hours is Monday 10:00.
        (at("2026-07-10 17:00"), 2 * H, CAL, at("2026-07-13 10:00")),
        # Over a weekend and holidays on Friday and Monday.
        (at("2026-07-16 17:00"), 2 * H, HOLIDAY_CAL, at("2026-07-21 10:00")),
        (at("2026-07-17 10:00"), 0, HOLIDAY_CAL, at("2026-07-21 09:00")),
        # First-reply targets: VIP 2 h, Standard 8 h, the rest 16 h, from Friday 20:00.
        (at("2026-07-10 20:00"), 2 * H, CAL, at("2026-07-13 11:00")),
        (at("2026-07-10 20:00"), 8 * H, CAL, at("2026-07-13 17:00")),
        (at("2026-07-10 20:00"), 16 * H, CAL, at("2026-07-14 16:00")),
        # Christmas Friday: Thursday 16:00 + 16 h is Tuesday 14:00 after the long weekend.
        (at("2026-12-24 16:00"), 16 * H, HOLIDAY_CAL, at("2026-12-29 14:00")),
        # A start given in UTC: Monday 12:00 UTC is 16:00 GMT+4.
        (at("2026-07-13 12:00", UTC), 4 * H, CAL, at("2026-07-14 11:00")),
        # Three whole weeks of business time from a Monday opening.
        (at("2026-07-06 09:00"), 3 * 5 * 9 * H, CAL, at("2026-07-24 18:00")),
    ],
)
def test_add_business_time(
    start: datetime, seconds: int, cal: BusinessCalendar, expected: datetime
) -> None:
    due = add_business_time(start, seconds, cal)
    assert due == expected
    # The result is in the calendar's zone.
    assert due.tzinfo == ZoneInfo(cal.zone)
    assert due.utcoffset() == timedelta(hours=4)


# --- an overnight calendar ----------------------------------------------------------------

NIGHT_SHIFT = cal_with(start=time(22), end=time(6))  # Mon-Fri nights, to the next morning


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (at("2026-07-13 21:59"), False),
        (at("2026-07-13 22:00"), True),
        (at("2026-07-14 02:00"), True),  # Monday's window, still running on Tuesday
        (at("2026-07-18 05:59"), True),  # Friday's window runs into Saturday
        (at("2026-07-18 06:00"), False),
        (at("2026-07-18 23:00"), False),  # Saturday night: no window
        (at("2026-07-13 02:00"), False),  # Sunday's night was off
    ],
)
def test_overnight_window(instant: datetime, expected: bool) -> None:
    assert is_business_time(instant, NIGHT_SHIFT) is expected


def test_overnight_window_clocks_and_midnight_end() -> None:
    assert (
        business_seconds_between(at("2026-07-13 00:00"), at("2026-07-20 00:00"), NIGHT_SHIFT)
        == 5 * 8 * H
    )
    assert add_business_time(at("2026-07-17 23:00"), 8 * H, NIGHT_SHIFT) == at("2026-07-20 23:00")
    # An end of 00:00 means midnight: 09:00-24:00, fifteen hours.
    till_midnight = cal_with(end=time(0))
    window = support_window(date(2026, 7, 13), "Etc/GMT-4", till_midnight)
    assert window is not None
    assert (window.local_end_date, window.local_end, window.seconds) == (
        "2026-07-14",
        "00:00",
        15 * H,
    )


# --- closed days, the window object, and errors -------------------------------------------


@pytest.mark.parametrize(
    "day",
    [date(2026, 7, 18), date(2026, 7, 19), date(2026, 7, 17), date(2026, 12, 25)],
)
def test_no_window_on_weekends_and_holidays(day: date) -> None:
    assert support_window(day, "Europe/Berlin", HOLIDAY_CAL) is None


def test_support_window_is_a_frozen_value() -> None:
    window = support_window(SUMMER, "Asia/Tokyo", CAL)
    assert isinstance(window, SupportWindow)
    assert window == support_window(SUMMER, "Asia/Tokyo", CAL)
    with pytest.raises(AttributeError):
        window.zone = "UTC"  # type: ignore[misc]
    assert (window.day, window.zone) == (SUMMER, "Asia/Tokyo")


@pytest.mark.parametrize(
    "zone", ["Mars/Phobos", "", "Europe/Berlin/", "/etc/localtime", "../x", "Europe/"]
)
def test_unknown_zone(zone: str) -> None:
    with pytest.raises(UnknownZoneError) as info:
        support_window(SUMMER, zone, CAL)
    assert isinstance(info.value, ValueError)
    assert info.value.zone == zone
    assert repr(zone) in str(info.value)
    assert "\n" not in str(info.value)
    # Checked on a closed day too, so a typo never passes silently.
    with pytest.raises(UnknownZoneError):
        support_window(date(2026, 7, 18), zone, CAL)
    with pytest.raises(UnknownZoneError):
        load_zone(zone)


def test_unknown_calendar_zone() -> None:
    bad = cal_with(zone="Nowhere/City")
    with pytest.raises(UnknownZoneError):
        is_business_time(at("2026-07-13 10:00"), bad)
    with pytest.raises(UnknownZoneError):
        business_seconds_between(at("2026-07-13 10:00"), at("2026-07-13 12:00"), bad)
    with pytest.raises(UnknownZoneError):
        add_business_time(at("2026-07-13 10:00"), H, bad)


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 7, 13, 10, 0)
    with pytest.raises(NaiveDatetimeError, match="start must be an aware datetime"):
        business_seconds_between(naive, at("2026-07-13 12:00"), CAL)
    with pytest.raises(NaiveDatetimeError, match="pause end"):
        business_seconds_between(
            at("2026-07-13 10:00"),
            at("2026-07-13 12:00"),
            CAL,
            paused=[(at("2026-07-13 11:00"), naive)],
        )
    with pytest.raises(NaiveDatetimeError):
        is_business_time(naive, CAL)
    with pytest.raises(NaiveDatetimeError):
        add_business_time(naive, H, CAL)


def test_a_calendar_without_weekdays_has_no_business_time() -> None:
    for zone in ("Etc/GMT-4", "Asia/Dubai"):
        never = cal_with(zone=zone, weekdays=frozenset())
        assert business_seconds_between(at("2026-07-13 00:00"), at("2026-08-13 00:00"), never) == 0
        assert is_business_time(at("2026-07-13 10:00"), never) is False


def test_bad_arguments_to_add_business_time() -> None:
    with pytest.raises(BusinessHoursError, match="negative"):
        add_business_time(at("2026-07-13 10:00"), -1, CAL)
    with pytest.raises(BusinessHoursError, match="no business weekdays"):
        add_business_time(at("2026-07-13 10:00"), H, cal_with(weekdays=frozenset()))


# --- properties ---------------------------------------------------------------------------

_instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
_calendars = st.sampled_from(
    [CAL, HOLIDAY_CAL, NIGHT_SHIFT, cal_with(zone="Europe/Berlin"), BERLIN_NIGHT]
)


@settings(max_examples=300, deadline=None, database=None)
@given(start=_instants, seconds=st.integers(min_value=0, max_value=30 * 9 * H), cal=_calendars)
def test_adding_then_measuring_gives_the_seconds_back(
    start: datetime, seconds: int, cal: BusinessCalendar
) -> None:
    due = add_business_time(start, seconds, cal)
    assert due >= start
    assert business_seconds_between(start, due, cal) == seconds


@settings(max_examples=300, deadline=None, database=None)
@given(instant=_instants, cal=_calendars)
def test_one_second_counts_exactly_when_open(instant: datetime, cal: BusinessCalendar) -> None:
    instant = instant.replace(microsecond=0)
    counted = business_seconds_between(instant, instant + timedelta(seconds=1), cal)
    assert counted == (1 if is_business_time(instant, cal) else 0)


@settings(max_examples=100, deadline=None, database=None)
@given(a=_instants, b=_instants, c=_instants, cal=_calendars)
def test_business_time_adds_up_over_a_split(
    a: datetime, b: datetime, c: datetime, cal: BusinessCalendar
) -> None:
    lo, mid, hi = sorted(x.replace(microsecond=0) for x in (a, b, c))
    whole = business_seconds_between(lo, hi, cal)
    assert whole == business_seconds_between(lo, mid, cal) + business_seconds_between(mid, hi, cal)
    # A pause over [lo, mid) leaves exactly the second part.
    assert business_seconds_between(lo, hi, cal, paused=[(lo, mid)]) == (
        business_seconds_between(mid, hi, cal)
    )


_pauses = st.lists(st.tuples(_instants, _instants), max_size=4)


@settings(max_examples=200, deadline=None, database=None)
@given(
    a=_instants,
    b=_instants,
    paused=_pauses,
    cal=st.sampled_from(
        [
            CAL,
            HOLIDAY_CAL,
            NIGHT_SHIFT,
            cal_with(weekdays=frozenset({5, 6}), holidays=HOLIDAYS),
            cal_with(weekdays=frozenset({2}), start=time(8, 30), end=time(8, 30)),
        ]
    ),
)
def test_fixed_offset_shortcut_agrees_with_the_day_by_day_walk(
    a: datetime, b: datetime, paused: list[tuple[datetime, datetime]], cal: BusinessCalendar
) -> None:
    # Etc/GMT-4 counts whole days arithmetically; Asia/Dubai, also UTC+4 (without daylight
    # saving since 1920) but not a fixed-offset zone by name, walks the calendar day by day.
    dubai = replace(cal, zone="Asia/Dubai")
    assert business_seconds_between(a, b, cal, paused=paused) == business_seconds_between(
        a, b, dubai, paused=paused
    )


# The fixed-offset fast path of add_business_time must agree with the general window walk.
@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    seconds=st.integers(min_value=0, max_value=40 * 9 * 3600),
    holiday_offsets=st.lists(st.integers(min_value=-3, max_value=30), max_size=5),
)
def test_fixed_offset_fast_path_agrees_with_the_walk(
    start: datetime, seconds: int, holiday_offsets: list[int]
) -> None:
    local_day = start.astimezone(ZoneInfo("Etc/GMT-4")).date()
    cal = BusinessCalendar(
        holidays=frozenset(local_day + timedelta(days=d) for d in holiday_offsets)
    )
    zone = ZoneInfo(cal.zone)
    assert _add_fixed(start, seconds, cal, zone) == _add_walking(start, seconds, cal, zone)
