"""``care-connector hours`` through the real CLI group, app and configuration."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from connector.app import create_app
from connector.cli import cli
from connector.commands.hours import hours_command

Invoke = Callable[..., Result]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory without connector variables: the built-in defaults apply,
    unless a test writes ``config.toml`` there."""
    monkeypatch.chdir(tmp_path)
    for name in ("CARE_CONFIG", "CARE_DATABASE_URL", "CARE_PUBLIC_URL", "FLASK_APP"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def run(workdir: Path) -> Invoke:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["hours", *args], prog_name="care-connector")

    return invoke


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# The vendor page's cities, summer (Wednesday 2026-07-15) and winter (Wednesday 2026-01-14).
# The page's figures ("Los Angeles 22:00-7:00, New York 1:00-10:00, London 6:00-15:00,
# Berlin/Rome 7:00-16:00, Hong Kong/Tokyo 13:00-22:00, Sydney 15:00-0:00") are rounded summer
# figures; the rows are exact, and the comments say where the page differs.
CITIES = [
    ("America/Los_Angeles", "2026-07-15", ("2026-07-14", "22:00", "2026-07-15", "07:00")),
    # PST: an hour earlier than the page.
    ("America/Los_Angeles", "2026-01-14", ("2026-01-13", "21:00", "2026-01-14", "06:00")),
    ("America/New_York", "2026-07-15", ("2026-07-15", "01:00", "2026-07-15", "10:00")),
    ("America/New_York", "2026-01-14", ("2026-01-14", "00:00", "2026-01-14", "09:00")),
    ("Europe/London", "2026-07-15", ("2026-07-15", "06:00", "2026-07-15", "15:00")),
    ("Europe/London", "2026-01-14", ("2026-01-14", "05:00", "2026-01-14", "14:00")),
    ("Europe/Berlin", "2026-07-15", ("2026-07-15", "07:00", "2026-07-15", "16:00")),
    ("Europe/Rome", "2026-01-14", ("2026-01-14", "06:00", "2026-01-14", "15:00")),
    ("Asia/Hong_Kong", "2026-07-15", ("2026-07-15", "13:00", "2026-07-15", "22:00")),
    ("Asia/Hong_Kong", "2026-01-14", ("2026-01-14", "13:00", "2026-01-14", "22:00")),
    # UTC+9 all year: the page's 13:00-22:00 is really 14:00-23:00.
    ("Asia/Tokyo", "2026-07-15", ("2026-07-15", "14:00", "2026-07-15", "23:00")),
    ("Asia/Tokyo", "2026-01-14", ("2026-01-14", "14:00", "2026-01-14", "23:00")),
    # July (AEST) matches the page, closing at midnight: 00:00 of the next date.
    ("Australia/Sydney", "2026-07-15", ("2026-07-15", "15:00", "2026-07-16", "00:00")),
    # January (AEDT): 16:00-01:00, not the page's 15:00-0:00.
    ("Australia/Sydney", "2026-01-14", ("2026-01-14", "16:00", "2026-01-15", "01:00")),
]


@pytest.mark.parametrize(("zone", "on", "expected"), CITIES)
def test_hours_json_in_the_pages_cities(
    run: Invoke, zone: str, on: str, expected: tuple[str, str, str, str]
) -> None:
    result = run("--tz", zone, "--on", on, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    got = (data["local_start_date"], data["local_start"], data["local_end_date"], data["local_end"])
    assert got == expected
    assert data["open"] is True
    assert (data["date"], data["zone"], data["support_zone"]) == (on, zone, "Etc/GMT-4")
    # The instants behind the clock times: 09:00 and 18:00 at GMT+4 on that date.
    gmt4 = ZoneInfo("Etc/GMT-4")
    assert datetime.fromisoformat(data["start"]) == datetime.fromisoformat(f"{on}T09:00").replace(
        tzinfo=gmt4
    )
    assert datetime.fromisoformat(data["end"]) == datetime.fromisoformat(f"{on}T18:00").replace(
        tzinfo=gmt4
    )


def test_window_on_the_requesters_transition_day(workdir: Path, run: Invoke) -> None:
    # Support open on Sundays too, so the window covers New York's spring-forward (02:00 EST
    # becomes 03:00 EDT at 07:00 UTC): 00:00 EST to 10:00 EDT, nine real hours.
    (workdir / "config.toml").write_text(
        '[hours]\ndays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n', encoding="utf-8"
    )
    result = run("--tz", "America/New_York", "--on", "2026-03-08", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["local_start"], data["local_end"]) == ("00:00", "10:00")
    assert data["start"].endswith("-05:00") and data["end"].endswith("-04:00")


@pytest.mark.parametrize(
    ("on", "reason"),
    [("2026-07-18", "weekend"), ("2026-07-19", "weekend"), ("2026-07-16", "holiday")],
)
def test_closed_days_print_open_false_and_exit_0(
    workdir: Path, run: Invoke, on: str, reason: str
) -> None:
    (workdir / "config.toml").write_text('[hours]\nholidays = ["2026-07-16"]\n', encoding="utf-8")
    result = run("--tz", "Asia/Tokyo", "--on", on, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["open"] is False
    assert (data["date"], data["reason"]) == (on, reason)
    assert "local_start" not in data
    text = run("--tz", "Asia/Tokyo", "--on", on)
    assert text.exit_code == 0
    assert text.stdout == f"{on}: support is closed ({reason}).\n"


def test_calendar_comes_from_the_configuration(workdir: Path, run: Invoke) -> None:
    # A calendar kept in Berlin time, 08:00-17:00: in July (CEST, UTC+2) that is 06:00-15:00 UTC.
    (workdir / "config.toml").write_text(
        '[hours]\nzone = "Europe/Berlin"\nstart = "08:00"\nend = "17:00"\n', encoding="utf-8"
    )
    result = run("--tz", "UTC", "--on", "2026-07-15", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["local_start"], data["local_end"], data["support_zone"]) == (
        "06:00",
        "15:00",
        "Europe/Berlin",
    )


def test_inside_a_host_apps_cli(workdir: Path) -> None:
    # Embedded: the host app registers the command and supplies its own app context.
    app = create_app({"hours": {"holidays": ["2026-07-15"]}})
    app.cli.add_command(hours_command)
    runner = app.test_cli_runner()
    closed = runner.invoke(hours_command, ["--tz", "UTC", "--on", "2026-07-15", "--json"])
    assert closed.exit_code == 0, closed.stderr
    assert json.loads(closed.stdout)["open"] is False
    with app.app_context():
        opened = CliRunner().invoke(hours_command, ["--tz", "UTC", "--on", "2026-07-14", "--json"])
    assert opened.exit_code == 0, opened.stderr
    assert json.loads(opened.stdout)["local_start"] == "05:00"


def test_default_date_is_today_in_the_support_zone(run: Invoke) -> None:
    gmt4 = ZoneInfo("Etc/GMT-4")
    before = datetime.now(gmt4).date()
    result = run("--tz", "Asia/Tokyo", "--json")
    after = datetime.now(gmt4).date()
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    day = date.fromisoformat(data["date"])
    assert day in {before, after}  # the run may straddle midnight at GMT+4
    assert data["open"] is (day.weekday() < 5)
    if data["open"]:
        assert (data["local_start"], data["local_end"]) == ("14:00", "23:00")


@pytest.mark.parametrize(
    ("zone", "on", "line"),
    [
        (
            "Asia/Tokyo",
            "2026-07-15",
            "2026-07-15: support is open 14:00-23:00 Asia/Tokyo time (09:00-18:00 Etc/GMT-4).",
        ),
        # The window falls on other dates in the requester's zone: both are named.
        (
            "America/Los_Angeles",
            "2026-07-15",
            "2026-07-15: support is open 2026-07-14 22:00 - 2026-07-15 07:00 "
            "America/Los_Angeles time (09:00-18:00 Etc/GMT-4).",
        ),
        (
            "Australia/Sydney",
            "2026-01-14",
            "2026-01-14: support is open 2026-01-14 16:00 - 2026-01-15 01:00 "
            "Australia/Sydney time (09:00-18:00 Etc/GMT-4).",
        ),
    ],
)
def test_hours_text(run: Invoke, zone: str, on: str, line: str) -> None:
    result = run("--tz", zone, "--on", on)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == line + "\n"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--tz", "Mars/Phobos", "--on", "2026-07-15"], ["--tz", "'Mars/Phobos'"]),
        (["--tz", "Mars/Phobos", "--json"], ["--tz", "unknown time zone"]),
        (["--tz", "", "--json"], ["--tz", "unknown time zone"]),
        (["--tz", "/etc/localtime", "--json"], ["--tz", "unknown time zone"]),
        (["--tz", "Europe/Berlin/", "--json"], ["--tz", "unknown time zone"]),
        (["--tz", "UTC", "--on", "2026-02-30"], ["--on", "'2026-02-30'"]),
        (["--tz", "UTC", "--on", "2026-13-01", "--json"], ["--on", "'2026-13-01'"]),
        (["--tz", "UTC", "--on", "2026-7-15"], ["--on", "YYYY-MM-DD"]),
        (["--tz", "UTC", "--on", "15.07.2026"], ["--on", "YYYY-MM-DD"]),
        (["--tz", "UTC", "--on", "20260715"], ["--on", "YYYY-MM-DD"]),
        (["--tz", "UTC", "--on", "2026-W29-3"], ["--on", "YYYY-MM-DD"]),
        (["--tz", "UTC", "--on", "tomorrow"], ["--on", "'tomorrow'"]),
        (["--tz", "UTC", "--on", ""], ["--on", "YYYY-MM-DD"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    run: Invoke, args: list[str], fragments: list[str]
) -> None:
    assert_one_line_error(run(*args), 2, *fragments)


def test_bad_arguments_are_reported_before_the_configuration(workdir: Path, run: Invoke) -> None:
    (workdir / "config.toml").write_text('[hours]\nzone = "Nowhere/City"\n', encoding="utf-8")
    assert_one_line_error(run("--tz", "Mars/Phobos"), 2, "'Mars/Phobos'")
    # Good arguments and a bad configuration: the loader's one-line message, exit 1.
    assert_one_line_error(run("--tz", "UTC", "--on", "2026-07-15"), 1, "hours.zone", "Nowhere/City")


def test_missing_tz_is_a_usage_error(run: Invoke) -> None:
    result = run("--json")
    assert result.exit_code == 2
    assert "Missing option '--tz'" in result.stderr
    assert "Traceback" not in result.stderr
