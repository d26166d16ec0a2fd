"""When the jobs run: due periods, catching up after downtime, and APScheduler around them.

:class:`JobRunner` decides which periods of a job are due at a given time (the clock is
``st.clock``, so tests move it by hand) and runs them through :func:`connector.jobs.run_period`,
which records each period once. APScheduler only supplies the ticks and the threads:

- every job is an APScheduler job on an interval trigger of ``jobs.tick_seconds``, aligned on
  whole multiples of it, with ``max_instances = 1`` and ``coalesce``: a run that takes longer
  than the interval is never started twice, and ticks missed meanwhile fold into one;
- at start, a one-off job ticks every job at once: that is the catch-up (a monthly reset due
  on the 1st runs at start on the 2nd; for ``catch_up = "all"`` jobs every missed period
  since the last recorded one, oldest first);
- a failing run is logged with its job and period and leaves nothing behind, so the next
  tick tries it again; an exception never reaches APScheduler, and the scheduler goes on.

``care-connector scheduler`` runs a :class:`~apscheduler.schedulers.blocking.BlockingScheduler`;
``care-connector run`` starts a :class:`~apscheduler.schedulers.background.BackgroundScheduler`
thread. Several schedulers against one database are safe: each period is claimed by one.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.extension import ConnectorState
from connector.heartbeats import Heartbeats
from connector.jobs import Job, JobError, Outcome, Period, jobs_for, last_runs, run_period

log = logging.getLogger("care_connector.scheduler")

__all__ = ["CATCH_UP_JOB", "JobRunner", "Planned", "build_scheduler", "start_background"]

#: The id of the one-off APScheduler job that ticks every job at start.
CATCH_UP_JOB = "catch-up"


@dataclass(frozen=True, slots=True)
class Planned:
    """A job's state for ``jobs list``: its latest recorded period and the next one due."""

    job: Job
    last_period: str | None
    last_finished_at: datetime | None
    next_period: Period


class JobRunner:
    """Runs the connector's jobs for their due periods.

    :param jobs: the jobs by name (default: :func:`connector.jobs.jobs_for`).
    :param runner: who runs, for the record (``"scheduler host:pid"``).
    """

    def __init__(
        self,
        st: ConnectorState,
        jobs: Mapping[str, Job] | None = None,
        *,
        runner: str | None = None,
    ) -> None:
        self.st = st
        self.jobs = dict(jobs) if jobs is not None else jobs_for(st)
        self.runner = runner
        # One run of a job at a time in this process, whoever asks (interval tick, catch-up).
        self._locks = {name: threading.Lock() for name in self.jobs}
        #: The scheduler's heartbeat, recorded when a job ticks (see connector.heartbeats).
        self.heartbeats = Heartbeats(st)

    def job(self, name: str) -> Job:
        """The job called ``name``.

        :raises JobError: no such job (the message lists them).
        """
        job = self.jobs.get(name)
        if job is None:
            raise JobError(f"no job {name!r} (one of: {', '.join(self.jobs)})")
        return job

    def due(self, job: Job, now: datetime) -> list[Period]:
        """The periods of ``job`` due at ``now`` and not recorded yet, oldest first.

        The latest period that has started is always a candidate; for a ``catch_up = "all"``
        job so is every period since the last recorded one (at most ``jobs.catch_up_periods``,
        the latest ones).
        """
        latest = job.schedule.latest(now)
        last = last_runs(self.st.database, [job.name]).get(job.name)
        if last is not None and last.period >= latest.key:
            return []
        if job.catch_up == "latest" or last is None:
            return [latest]
        try:
            period = job.schedule.following(job.schedule.parse(last.period))
        except JobError:  # recorded under other settings: start afresh
            return [latest]
        missed: list[Period] = []
        while period.start <= now:
            missed.append(period)
            period = job.schedule.following(period)
        return missed[-self.st.settings.jobs.catch_up_periods :]

    def tick(self, name: str) -> list[Outcome]:
        """Run every due period of job ``name``, oldest first; never raises.

        A failure is logged with the job and period and stops this tick for the job (later
        periods wait for the earlier one); the next tick tries again. When this process is
        already running the job, returns at once.
        """
        self.heartbeats.beat("scheduler")
        lock = self._locks[name]
        if not lock.acquire(blocking=False):
            log.info("job %s: still running, this tick skipped", name)
            return []
        try:
            job = self.jobs[name]
            outcomes: list[Outcome] = []
            try:
                periods = self.due(job, self.st.clock())
            except Exception:  # noqa: BLE001 - e.g. the database is down: the next tick retries
                log.exception("job %s: could not read its runs; retried at the next tick", name)
                return outcomes
            for period in periods:
                try:
                    outcome = run_period(self.st, job, period, runner=self.runner)
                except Exception:  # noqa: BLE001 - a job never stops the scheduler
                    log.exception(
                        "job %s period %s failed; retried at the next tick", name, period.key
                    )
                    self.st.metrics.job_failed(name)
                    break
                if outcome.status == "ran":
                    log.info("job %s period %s: %s", name, period.key, dict(outcome.result))
                outcomes.append(outcome)
            return outcomes
        finally:
            lock.release()

    def tick_all(self) -> dict[str, list[Outcome]]:
        """:meth:`tick` every job, in order (the catch-up at start)."""
        return {name: self.tick(name) for name in self.jobs}

    def run(self, name: str, period_key: str | None = None) -> Outcome:
        """Run job ``name`` for one period by hand: ``period_key``, else the latest started.

        Safe at any time: a period already recorded is not run again.

        :raises JobError: unknown job, a malformed period, or one that has not started.
        :raises Exception: whatever the job raised (nothing of the run is kept).
        """
        job = self.job(name)
        now = self.st.clock()
        if period_key is None:
            period = job.schedule.latest(now)
        else:
            period = job.schedule.parse(period_key)
            if period.start > now:
                raise JobError(
                    f"{name}:{period.key} is not due until {period.start.isoformat(' ', 'minutes')}"
                )
        with self._locks[name]:
            return run_period(self.st, job, period, runner=self.runner)

    def plan(self) -> list[Planned]:
        """Each job's latest recorded period and its next period, for ``jobs list``."""
        now = self.st.clock()
        runs = last_runs(self.st.database, list(self.jobs))
        out: list[Planned] = []
        for name, job in self.jobs.items():
            last = runs.get(name)
            latest = job.schedule.latest(now)
            upcoming = latest if last is None or last.period < latest.key else None
            if upcoming is None:
                upcoming = job.schedule.following(latest)
            out.append(
                Planned(
                    job,
                    last.period if last else None,
                    last.finished_at if last else None,
                    upcoming,
                )
            )
        return out


def _aligned_start(seconds: int, zone: ZoneInfo) -> datetime:
    """The next whole multiple of ``seconds`` since the epoch: ticks at hh:mm:00 for 60."""
    now = datetime.now(UTC).timestamp()
    return datetime.fromtimestamp(math.ceil(now / seconds) * seconds, zone)


def build_scheduler(runner: JobRunner, *, blocking: bool) -> BaseScheduler:
    """An APScheduler scheduler ticking every job of ``runner``, not started.

    APScheduler reads the real clock for its ticks; what is due is decided by
    ``runner.st.clock``.
    """
    st = runner.st
    zone = ZoneInfo(st.settings.policy.calendar.zone)
    tick = st.settings.jobs.tick_seconds
    defaults = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    scheduler: BaseScheduler = (
        BlockingScheduler(timezone=zone, job_defaults=defaults)
        if blocking
        else BackgroundScheduler(timezone=zone, job_defaults=defaults, daemon=True)
    )
    start = _aligned_start(tick, zone)
    for name, job in runner.jobs.items():
        scheduler.add_job(
            runner.tick,
            IntervalTrigger(seconds=tick, start_date=start, timezone=zone),
            args=[name],
            id=name,
            name=f"{name} ({job.schedule.describe()})",
        )
    scheduler.add_job(
        runner.tick_all, DateTrigger(timezone=zone), id=CATCH_UP_JOB, name="catch up at start"
    )
    return scheduler


def start_background(st: ConnectorState) -> BaseScheduler:
    """The scheduler as a daemon thread of this process (the embedded ``run``); its first
    heartbeat is recorded before it starts, so ``/healthz`` is green from the first request."""
    runner = JobRunner(st)
    runner.heartbeats.beat("scheduler", force=True)
    scheduler = build_scheduler(runner, blocking=False)
    scheduler.start()
    return scheduler
