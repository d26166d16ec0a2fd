"""``care-connector scheduler`` and ``care-connector jobs list | run``."""

from __future__ import annotations

import json
import logging
import signal
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click
from flask.cli import with_appcontext

from connector.commands.pipeline import CommandError
from connector.extension import state
from connector.jobs import JobError, Outcome, runner_name

if TYPE_CHECKING:
    from connector.scheduler import JobRunner


def _runner(kind: str) -> JobRunner:
    # Imported here: APScheduler is not needed by the commands that do not schedule.
    from connector.scheduler import JobRunner

    return JobRunner(state(), runner=runner_name(kind))


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).isoformat(" ", "seconds") if value is not None else "-"


@click.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """Run the scheduled jobs until SIGTERM or Ctrl-C (catching up on missed periods first)."""
    from connector.scheduler import build_scheduler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # APScheduler logs every tick at INFO; the jobs log what they did themselves.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    runner = _runner("scheduler")
    click.echo(f"scheduler: {', '.join(runner.jobs)} (Ctrl-C to stop)")
    scheduler = build_scheduler(runner, blocking=True)

    def stop(signum: int, frame: object) -> None:
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.start()


@click.group("jobs")
def jobs_group() -> None:
    """The scheduled jobs: when they last ran and run next, and running one by hand."""


@jobs_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_appcontext
def list_command(as_json: bool) -> None:
    """Each job, its schedule, its last recorded period and its next one."""
    runner = _runner("manual")
    zone = ZoneInfo(runner.st.settings.policy.calendar.zone)
    now = runner.st.clock()
    rows = []
    for planned in runner.plan():
        rows.append(
            {
                "job": planned.job.name,
                "schedule": planned.job.schedule.describe(),
                "last_period": planned.last_period,
                "last_run": _when(planned.last_finished_at, zone)
                if planned.last_finished_at
                else None,
                "next_period": planned.next_period.key,
                "next_run": "due now"
                if planned.next_period.start <= now
                else _when(planned.next_period.start, zone),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    header = ("job", "schedule", "last run", "next run")
    table = [
        (
            row["job"],
            row["schedule"],
            f"{row['last_period']} at {row['last_run']}" if row["last_period"] else "never",
            f"{row['next_period']} at {row['next_run']}"
            if row["next_run"] != "due now"
            else f"{row['next_period']} due now",
        )
        for row in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *table]) for i in range(len(header))]
    for line in [header, *table]:
        click.echo(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)
            ).rstrip()
        )


def _describe(outcome: Outcome, zone: ZoneInfo) -> str:
    counts = ", ".join(f"{name} {value}" for name, value in outcome.result.items()) or "nothing"
    if outcome.status == "ran":
        return f"{outcome.key}: done ({counts})"
    return (
        f"{outcome.key}: already ran at {_when(outcome.finished_at, zone)} ({counts}); "
        "nothing done"
    )


@jobs_group.command("run")
@click.argument("name")
@click.option("--period", "period", help="The period (2026-12, 2026-12-01...): default the latest.")
@with_appcontext
def run_job_command(name: str, period: str | None) -> None:
    """Run job NAME for one period now; a period already recorded is not run again."""
    runner = _runner("manual")
    zone = ZoneInfo(runner.st.settings.policy.calendar.zone)
    try:
        outcome = runner.run(name, period)
    except JobError as err:
        raise CommandError(str(err)) from err
    except Exception as err:  # noqa: BLE001 - one line, not a traceback; nothing was kept
        raise CommandError(f"{name}: failed, nothing kept: {type(err).__name__}: {err}", 1) from err
    click.echo(_describe(outcome, zone))
