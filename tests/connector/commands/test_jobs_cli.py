"""``care-connector jobs list | run`` and ``care-connector scheduler`` through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from connector.cli import cli
from connector.db import Database
from connector.models import JobRun

JOBS = ["quota-reset", "expiry-reminders", "approval-reminders", "sla-watch", "retention"]
CUSTOMERS = {
    "customers": [
        {
            "email": "vip@shop.example",
            "subscriptions": [{"plan": "vip", "starts_on": "2025-01-01", "ends_on": "2026-12-31"}],
        },
        {
            "email": "std@shop.example",
            "subscriptions": [
                {"plan": "standard", "starts_on": "2025-01-01", "ends_on": "2026-12-31"}
            ],
        },
    ]
}


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CARE_CONFIG", raising=False)
    monkeypatch.setenv("CARE_DATABASE_URL", f"sqlite:///{tmp_path / 'care.sqlite3'}")
    (tmp_path / "customers.json").write_text(json.dumps(CUSTOMERS), encoding="utf-8")
    return tmp_path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), prog_name="care-connector")


def test_jobs_list_shows_every_job_never_run_and_due(sandbox: Path) -> None:
    result = invoke("jobs", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["job", "schedule", "last", "run", "next", "run"]
    assert [line.split()[0] for line in lines[1:]] == JOBS
    assert all(" never " in line and line.endswith("due now") for line in lines[1:])


def test_jobs_run_opens_a_month_once_and_list_shows_it(sandbox: Path) -> None:
    assert invoke("customers", "import", "customers.json").exit_code == 0
    first = invoke("jobs", "run", "quota-reset", "--period", "2026-01")
    second = invoke("jobs", "run", "quota-reset", "--period", "2026-01")
    assert (first.exit_code, first.output) == (0, "quota-reset:2026-01: done (opened 2)\n")
    assert second.exit_code == 0
    assert second.output.startswith("quota-reset:2026-01: already ran at 2026-")
    assert second.output.endswith("(opened 2); nothing done\n")
    listed = json.loads(invoke("jobs", "list", "--json").output)
    reset = next(row for row in listed if row["job"] == "quota-reset")
    assert reset["last_period"] == "2026-01" and reset["schedule"] == "monthly, day 1 at 00:00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["quota-reset", "--period", "2999-01"], "Error: quota-reset:2999-01 is not due until"),
        (["quota-reset", "--period", "2026-1"], "Error: period '2026-1': expected a month"),
        (["sla-watch", "--period", "2026-01-01T10:03"], "on a 5-minute step"),
        (["expiry-reminders", "--period", "2026-02-30"], "expected a day, YYYY-MM-DD"),
        (["nope"], "Error: no job 'nope' (one of: quota-reset, expiry-reminders,"),
    ],
)
def test_jobs_run_refuses_bad_input_in_one_line(
    sandbox: Path, args: list[str], message: str
) -> None:
    result = invoke("jobs", "run", *args)
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_the_scheduler_process_catches_up_at_start_and_stops_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'care.sqlite3'}"
    env = {**os.environ, "CARE_DATABASE_URL": url}
    env.pop("CARE_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "scheduler"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    database = Database.from_url(url)
    try:
        recorded: list[str] = []
        for _ in range(900):  # the catch-up runs every job once at start (90 s on a busy machine)
            if process.poll() is not None:
                break
            if "job_runs" in database.table_names():
                with database.transaction(read_only=True) as session:
                    recorded = sorted(session.scalars(select(JobRun.job)))
            if len(recorded) == len(JOBS):
                break
            threading.Event().wait(0.1)
        if process.poll() is not None:
            pytest.fail(f"the scheduler exited early:\n{process.communicate()[0]}")
        assert recorded == sorted(JOBS)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        database.dispose()
    assert process.returncode == 0, output
    assert output.startswith("scheduler: quota-reset, expiry-reminders,")
    assert "care_connector.scheduler INFO job quota-reset period " in output
