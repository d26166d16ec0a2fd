"""``care-connector hours``: the support window of one date, as clock times in another zone.

::

    care-connector hours --tz Asia/Tokyo --on 2026-07-15 --json
    {"date": "2026-07-15", "zone": "Asia/Tokyo", "open": true, "local_start": "14:00",
     "local_end": "23:00", "local_start_date": "2026-07-15", "local_end_date": "2026-07-15", ...}

The date is a date in the support zone (the calendar's), by default today there. A weekend or
holiday prints ``{"open": false}`` (with the date) and exits 0. An unknown zone or a malformed
date is one line on stderr and exit code 2; an invalid configuration is one line and exit 1.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import IO, Any

import click
from flask import has_app_context
from flask.cli import ScriptInfo

from rules.business_hours import (
    SupportWindow,
    UnknownZoneError,
    load_zone,
    support_window,
)
from rules.policy import BusinessCalendar

# date.fromisoformat() also takes "20260715" and "2026-W29-3"; the contract is YYYY-MM-DD.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class HoursUsageError(click.UsageError):
    """A usage error shown as one line (``Error: ...``), exit code 2.

    click attaches the command's context to a usage error raised in a callback and then prints
    the usage and a help hint above the message; this error prints the message alone.
    """

    def show(self, file: IO[Any] | None = None) -> None:
        click.ClickException.show(self, file)


def _parse_day(text: str) -> date:
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError as err:
            raise HoursUsageError(f"--on: no such date {text!r}") from err
    raise HoursUsageError(f"--on must be a date YYYY-MM-DD, not {text!r}")


def _calendar() -> BusinessCalendar:
    """The configured calendar, from the current app (loaded as ``with_appcontext`` would)."""
    from connector.config import ConfigError
    from connector.extension import state

    if not has_app_context():
        ctx = click.get_current_context()
        try:
            app = ctx.ensure_object(ScriptInfo).load_app()
        except ConfigError as err:
            raise click.ClickException(str(err)) from err
        ctx.with_resource(app.app_context())
    return state().settings.policy.calendar


def _closed_reason(day: date, cal: BusinessCalendar) -> str:
    return "holiday" if day in cal.holidays else "weekend"


def _as_json(day: date, zone: str, cal: BusinessCalendar, window: SupportWindow | None) -> str:
    data: dict[str, Any] = {"date": day.isoformat(), "zone": zone, "support_zone": cal.zone}
    if window is None:
        data.update(open=False, reason=_closed_reason(day, cal))
    else:
        data.update(
            open=True,
            local_start=window.local_start,
            local_end=window.local_end,
            local_start_date=window.local_start_date,
            local_end_date=window.local_end_date,
            start=window.start.isoformat(),
            end=window.end.isoformat(),
        )
    return json.dumps(data)


def _as_text(day: date, zone: str, cal: BusinessCalendar, window: SupportWindow | None) -> str:
    if window is None:
        return f"{day.isoformat()}: support is closed ({_closed_reason(day, cal)})."
    support_hours = f"{cal.start:%H:%M}-{cal.end:%H:%M} {cal.zone}"
    if window.local_start_date == window.local_end_date == day.isoformat():
        span = f"{window.local_start}-{window.local_end}"
    else:
        # The window falls on other dates in the requester's zone: name them.
        span = (
            f"{window.local_start_date} {window.local_start} - "
            f"{window.local_end_date} {window.local_end}"
        )
    return f"{day.isoformat()}: support is open {span} {zone} time ({support_hours})."


@click.command("hours")
@click.option("--tz", "zone", required=True, metavar="ZONE", help="IANA zone, e.g. Asia/Tokyo.")
@click.option(
    "--on",
    "on",
    metavar="YYYY-MM-DD",
    help="A date in the support zone (default: today there).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def hours_command(zone: str, on: str | None, as_json: bool) -> None:
    """Print the support window of a date as clock times in ZONE.

    Midnight is 00:00 of the next date. A weekend or holiday prints that support is closed.
    """
    # The arguments first: a typo is reported without loading the configuration.
    try:
        load_zone(zone)
    except UnknownZoneError as err:
        raise HoursUsageError(f"--tz: {err}") from err
    day = _parse_day(on) if on is not None else None
    cal = _calendar()
    try:
        if day is None:
            # Today in the support zone: the command reads the clock, the rules never do.
            day = datetime.now(load_zone(cal.zone)).date()
        window = support_window(day, zone, cal)
    except UnknownZoneError as err:  # only the calendar's zone can still be unknown here
        raise click.ClickException(f"[hours] zone: {err}") from err
    click.echo(_as_json(day, zone, cal, window) if as_json else _as_text(day, zone, cal, window))
