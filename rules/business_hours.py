"""Business hours and SLA clocks over a :class:`~rules.policy.BusinessCalendar`.

The model:

- A **business day** is a date in the calendar's zone whose ``weekday()`` is in
  ``calendar.weekdays`` and which is not in ``calendar.holidays``.
- Each business day has one **window**, from ``calendar.start`` to ``calendar.end`` on the wall
  clock of the calendar's zone. Windows are half-open: at exactly 09:00 support is open, at
  exactly 18:00 it is closed. When ``end <= start`` the window ends on the next date (an
  overnight shift; ``end == start`` is a whole day), so an end of ``00:00`` means midnight.
- Wall-clock times become instants through :mod:`zoneinfo`, so a calendar in a zone with
  daylight saving gets windows that really are shorter or longer on a transition day. A wall
  time that does not exist or occurs twice resolves with ``fold=0`` (the offset in force
  before the transition).

All arithmetic runs on UTC instants: Python subtracts two aware datetimes that share a
``tzinfo`` by their wall clocks, which is wrong across a transition. Every function takes and
returns aware datetimes only, and never reads the clock: the caller passes the time in.

Cost: nothing iterates by hour or second. In a fixed-offset zone (the ``Etc`` area, such as
the default ``Etc/GMT-4``) every window lasts the same, so :func:`business_seconds_between`
counts whole days by weekday arithmetic and a binary search over the holidays: O(log H) per
running stretch between pauses, whatever the span. In a zone with daylight saving it walks
the span one date at a time (a handful of operations per date). :func:`add_business_time`
walks from the start to the due date one date at a time.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rules.policy import BusinessCalendar

__all__ = [
    "BusinessHoursError",
    "NaiveDatetimeError",
    "SupportWindow",
    "UnknownZoneError",
    "add_business_time",
    "business_seconds_between",
    "is_business_day",
    "is_business_time",
    "load_zone",
    "support_window",
]

_ONE_DAY = timedelta(days=1)
_ONE_SECOND = timedelta(seconds=1)
_ZERO = timedelta(0)
_ALL_WEEKDAYS = frozenset(range(7))


class BusinessHoursError(ValueError):
    """Bad input to a business-hours function (the root of this module's errors)."""


class UnknownZoneError(BusinessHoursError):
    """A time-zone name that is not in the IANA database.

    :param zone: the name as given.
    """

    def __init__(self, zone: str) -> None:
        self.zone = zone
        super().__init__(
            f"unknown time zone {zone!r}: use an IANA name such as 'Europe/Berlin' or 'Etc/GMT-4'"
        )


class NaiveDatetimeError(BusinessHoursError):
    """A datetime without a time zone where an instant is needed."""

    def __init__(self, what: str, value: datetime) -> None:
        self.value = value
        super().__init__(f"{what} must be an aware datetime, got naive {value.isoformat()}")


def load_zone(name: str) -> ZoneInfo:
    """The :class:`~zoneinfo.ZoneInfo` for an IANA name.

    :param name: for example ``"Europe/Berlin"``; names are case-sensitive.
    :raises UnknownZoneError: when there is no such zone (or the name is malformed).
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        # ZoneInfoNotFoundError for a missing key; ValueError for an absolute or
        # non-normalised path, or a file under the zone directory that is not a zone.
        raise UnknownZoneError(name) from err


def is_business_day(day: date, cal: BusinessCalendar) -> bool:
    """Whether ``day`` (a date in the calendar's zone) is a business day.

    :param day: a date in the support zone.
    :param cal: the business calendar.
    """
    return day.weekday() in cal.weekdays and day not in cal.holidays


def is_business_time(at: datetime, cal: BusinessCalendar) -> bool:
    """Whether support is open at the instant ``at``.

    Opening time counts as open, closing time as closed.

    :param at: an aware datetime, in any zone.
    :param cal: the business calendar.
    :raises NaiveDatetimeError: when ``at`` is naive.
    :raises UnknownZoneError: when the calendar's zone is unknown.
    """
    instant = _as_utc(at, "at")
    zone = load_zone(cal.zone)
    local_day = instant.astimezone(zone).date()
    # An overnight window that opened yesterday may still be running.
    for day in (local_day - _ONE_DAY, local_day):
        if is_business_day(day, cal):
            opens, closes = _window_utc(day, cal, zone)
            if opens <= instant < closes:
                return True
    return False


def business_seconds_between(
    start: datetime,
    end: datetime,
    cal: BusinessCalendar,
    *,
    paused: Sequence[tuple[datetime, datetime]] = (),
) -> int:
    """Whole seconds of business time from ``start`` to ``end``, with the clock stopped while
    paused.

    :param start: an aware datetime.
    :param end: an aware datetime; when it is not after ``start`` the result is ``0``.
    :param cal: the business calendar.
    :param paused: ``(from, to)`` intervals when the ticket waited on the customer; they may
        overlap each other or reach outside ``start``-``end``; an interval whose ``to`` is
        not after its ``from`` is empty.
    :returns: the business seconds, rounded down.
    :raises NaiveDatetimeError: when any datetime is naive.
    :raises UnknownZoneError: when the calendar's zone is unknown.
    """
    lo = _as_utc(start, "start")
    hi = _as_utc(end, "end")
    pauses = [(_as_utc(a, "pause start"), _as_utc(b, "pause end")) for a, b in paused]
    zone = load_zone(cal.zone)
    if hi <= lo or not _weekdays(cal):
        return 0
    running = _subtract(lo, hi, pauses)
    if _is_fixed_offset(cal.zone):
        total = sum((_elapsed(b, cal, zone) - _elapsed(a, cal, zone) for a, b in running), _ZERO)
        return total // _ONE_SECOND
    total = _ZERO
    i = 0
    first_day = lo.astimezone(zone).date() - _ONE_DAY  # an overnight window may reach in
    for opens, closes in _windows_from(first_day, cal, zone):
        if opens >= hi or i == len(running):
            break
        # Segments are sorted and disjoint: drop those that ended before this window, then
        # add the overlap of each segment that starts before it closes.
        while i < len(running) and running[i][1] <= opens:
            i += 1
        j = i
        while j < len(running) and running[j][0] < closes:
            seg_lo, seg_hi = running[j]
            total += max(_ZERO, min(closes, seg_hi) - max(opens, seg_lo))
            j += 1
    return total // _ONE_SECOND


def add_business_time(start: datetime, seconds: int, cal: BusinessCalendar) -> datetime:
    """The instant at which ``seconds`` of business time have elapsed after ``start``.

    A ``start`` outside business hours begins counting at the next opening; with
    ``seconds == 0`` the result is therefore ``start`` itself during business hours, else the
    next opening. When the time runs out exactly at closing, the result is the closing instant
    (not the next opening): the earliest instant at which the time has elapsed.

    :param start: an aware datetime, in any zone.
    :param seconds: business seconds to add, ``>= 0``.
    :param cal: the business calendar.
    :returns: an aware datetime in the calendar's zone.
    :raises NaiveDatetimeError: when ``start`` is naive.
    :raises UnknownZoneError: when the calendar's zone is unknown.
    :raises BusinessHoursError: when ``seconds`` is negative, or the calendar has no business
        weekdays.
    """
    if seconds < 0:
        raise BusinessHoursError(f"seconds must not be negative, got {seconds}")
    cursor = _as_utc(start, "start")
    zone = load_zone(cal.zone)
    if _is_fixed_offset(cal.zone) and cal.end > cal.start and _weekdays(cal):
        return _add_fixed(cursor, seconds, cal, zone)
    return _add_walking(cursor, seconds, cal, zone)


def _add_walking(cursor: datetime, seconds: int, cal: BusinessCalendar, zone: ZoneInfo) -> datetime:
    """:func:`add_business_time` for any zone: walk the windows one by one."""
    remaining = timedelta(seconds=seconds)
    first_day = cursor.astimezone(zone).date() - _ONE_DAY
    for opens, closes in _windows_from(first_day, cal, zone):
        if closes <= cursor:
            continue
        begin = max(opens, cursor)
        if begin + remaining <= closes:
            return (begin + remaining).astimezone(zone)
        remaining -= closes - begin
    raise AssertionError("unreachable: _windows_from never ends")  # pragma: no cover


def _add_fixed(cursor: datetime, seconds: int, cal: BusinessCalendar, zone: ZoneInfo) -> datetime:
    """:func:`add_business_time` for a fixed-offset zone and a same-day window.

    Every window there has the same wall-clock bounds, so the walk is integer arithmetic on
    microseconds of the day instead of building aware datetimes for each window.
    """
    local = cursor.astimezone(zone)
    opens = _micros(cal.start)
    closes = _micros(cal.end)
    day = local.date()
    now = _micros(local.timetz())
    remaining = seconds * 1_000_000
    while True:
        if is_business_day(day, cal):
            begin = max(now, opens)
            if begin < closes:
                if remaining <= closes - begin:
                    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
                    return midnight + timedelta(microseconds=begin + remaining)
                remaining -= closes - begin
        day += _ONE_DAY
        now = 0


def _micros(clock: time) -> int:
    """Microseconds since midnight of a wall-clock time."""
    return ((clock.hour * 60 + clock.minute) * 60 + clock.second) * 1_000_000 + clock.microsecond


@dataclass(frozen=True, slots=True)
class SupportWindow:
    """One business day's support window, as seen from a requester's time zone.

    :param day: the business day, a date in the support zone.
    :param zone: the requester's IANA zone name.
    :param start: opening, an aware datetime in ``zone``.
    :param end: closing, an aware datetime in ``zone``.
    """

    day: date
    zone: str
    start: datetime
    end: datetime

    @property
    def local_start(self) -> str:
        """Opening on the requester's clock, ``"HH:MM"``."""
        return self.start.strftime("%H:%M")

    @property
    def local_end(self) -> str:
        """Closing on the requester's clock, ``"HH:MM"`` (midnight is ``"00:00"``)."""
        return self.end.strftime("%H:%M")

    @property
    def local_start_date(self) -> str:
        """The requester's date at opening, ``"YYYY-MM-DD"``."""
        return self.start.date().isoformat()

    @property
    def local_end_date(self) -> str:
        """The requester's date at closing, ``"YYYY-MM-DD"``; a window closing at local
        midnight ends on the next date."""
        return self.end.date().isoformat()

    @property
    def seconds(self) -> int:
        """The window's real length in seconds (differs from the nominal on a transition day
        of the calendar's zone)."""
        # Via UTC: two datetimes sharing a tzinfo subtract by their wall clocks.
        return (self.end.astimezone(UTC) - self.start.astimezone(UTC)) // _ONE_SECOND


def support_window(day: date, zone: str, cal: BusinessCalendar) -> SupportWindow | None:
    """The support window of ``day`` as clock times in the requester's ``zone``.

    :param day: a date in the SUPPORT zone (the calendar's), not the requester's.
    :param zone: the requester's IANA zone name, for example ``"America/Los_Angeles"``.
    :param cal: the business calendar.
    :returns: ``None`` when ``day`` is a weekend day or a holiday.
    :raises UnknownZoneError: when ``zone`` or the calendar's zone is unknown (checked even
        when the day is closed, so a typo never passes silently).
    """
    requester = load_zone(zone)
    support = load_zone(cal.zone)
    if not is_business_day(day, cal):
        return None
    opens, closes = _window_utc(day, cal, support)
    return SupportWindow(
        day=day,
        zone=zone,
        start=opens.astimezone(requester),
        end=closes.astimezone(requester),
    )


def _as_utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(what, value)
    return value.astimezone(UTC)


def _window_utc(day: date, cal: BusinessCalendar, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The window of ``day`` (assumed a business day) as UTC instants."""
    start, end = cal.start.replace(tzinfo=None), cal.end.replace(tzinfo=None)
    end_day = day if end > start else day + _ONE_DAY
    opens = datetime.combine(day, start, tzinfo=zone)
    closes = datetime.combine(end_day, end, tzinfo=zone)
    return opens.astimezone(UTC), closes.astimezone(UTC)


def _weekdays(cal: BusinessCalendar) -> frozenset[int]:
    return cal.weekdays & _ALL_WEEKDAYS


def _is_fixed_offset(name: str) -> bool:
    """Whether the zone never changes its offset: the tz database keeps fixed offsets (and UTC)
    in its ``Etc`` area, and ``UTC`` and ``GMT`` are links into it."""
    return name.startswith("Etc/") or name in ("UTC", "GMT")


@functools.lru_cache(maxsize=64)
def _closing_holidays(holidays: frozenset[date], weekdays: frozenset[int]) -> tuple[int, ...]:
    """Ordinals of the holidays that close a business weekday, sorted."""
    return tuple(sorted(day.toordinal() for day in holidays if day.weekday() in weekdays))


def _business_days_before(day: date, cal: BusinessCalendar) -> int:
    """How many business days there are from 0001-01-01 (a Monday) up to ``day``, exclusive."""
    weekdays = _weekdays(cal)
    weeks, rest = divmod(day.toordinal() - 1, 7)
    count = weeks * len(weekdays) + sum(1 for w in weekdays if w < rest)
    return count - bisect.bisect_left(_closing_holidays(cal.holidays, weekdays), day.toordinal())


def _elapsed(instant: datetime, cal: BusinessCalendar, zone: ZoneInfo) -> timedelta:
    """Business time from 0001-01-01 up to ``instant``, for a fixed-offset zone only.

    There every window lasts the same, so whole days count in O(1) by weekday arithmetic; only
    the windows of the instant's date and the day before (overnight) are measured.
    """
    day = instant.astimezone(zone).date()
    opens, closes = _window_utc(day, cal, zone)
    total = (closes - opens) * _business_days_before(day - _ONE_DAY, cal)
    for other in (day - _ONE_DAY, day):
        if is_business_day(other, cal):
            opens, closes = _window_utc(other, cal, zone)
            total += min(max(instant - opens, _ZERO), closes - opens)
    return total


def _windows_from(
    first_day: date, cal: BusinessCalendar, zone: ZoneInfo
) -> Iterator[tuple[datetime, datetime]]:
    """Every non-empty window from ``first_day`` on, in order; endless, so callers break."""
    if not _weekdays(cal):
        # Holidays are finite, so with one valid weekday a business day always comes.
        raise BusinessHoursError("the business calendar has no business weekdays")
    day = first_day
    while True:
        if is_business_day(day, cal):
            opens, closes = _window_utc(day, cal, zone)
            if closes > opens:  # a window inside a skipped hour can be empty
                yield opens, closes
        day += _ONE_DAY


def _subtract(
    lo: datetime, hi: datetime, pauses: Sequence[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """``[lo, hi)`` minus the union of ``pauses``: sorted, disjoint, non-empty segments."""
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in pauses if min(b, hi) > max(a, lo))
    segments: list[tuple[datetime, datetime]] = []
    cursor = lo
    for a, b in clipped:
        if a > cursor:
            segments.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < hi:
        segments.append((cursor, hi))
    return segments
