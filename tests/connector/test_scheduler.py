"""When jobs run: the exact start of a period, catching up after downtime, failures retried,
one run at a time, APScheduler's settings, and two schedulers against one database. The
connector's clock is set by hand; nothing waits for real time to pass."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector import create_app
from connector.customers import import_customers, validate_entries
from connector.db import Database
from connector.extension import ConnectorState
from connector.jobs import Daily, Job, JobError, Monthly, Outcome, Period, jobs_for
from connector.models import Customer, JobRun, OutboxAction, QuotaAllowance, Ticket
from connector.scheduler import CATCH_UP_JOB, JobRunner, build_scheduler

GST = timezone(timedelta(hours=4))
ZONE = ZoneInfo("Etc/GMT-4")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def make_state(database: Database, **jobs: Any) -> ConnectorState:
    app = create_app(
        {
            "database": {"url": database.url},
            "desks": {"zendesk": {"adapter": "zendesk", "base_url": "https://shop.zendesk.com"}},
            "jobs": jobs,
        }
    )
    st: ConnectorState = app.extensions["care_connector"]
    st.clock = Clock(datetime(2026, 11, 1, 0, 0, tzinfo=GST))
    return st


CUSTOMERS = [
    {
        "email": f"c{n}@shop.example",
        "subscriptions": [
            {
                "plan": "vip" if n % 2 else "standard",
                "starts_on": "2026-01-01",
                "ends_on": "2027-12-31",
            }
        ],
    }
    for n in range(20)
]


def add_customers(st: ConnectorState) -> None:
    policy = st.settings.policy
    records = validate_entries(CUSTOMERS, policy=policy, desks=st.settings.desks.keys())
    with st.database.transaction() as session:
        import_customers(session, records, policy=policy, at=datetime(2026, 1, 1, tzinfo=GST))


@pytest.fixture
def st(database: Database) -> Iterator[ConnectorState]:
    state = make_state(database)
    add_customers(state)
    yield state
    state.database.dispose()


def runs(st: ConnectorState, job: str | None = None) -> list[tuple[str, str]]:
    with st.database.transaction(read_only=True) as session:
        stmt = select(JobRun.job, JobRun.period).order_by(JobRun.job, JobRun.period)
        if job is not None:
            stmt = stmt.where(JobRun.job == job)
        return [(row.job, row.period) for row in session.execute(stmt)]


def allowances(st: ConnectorState) -> Counter[str]:
    with st.database.transaction(read_only=True) as session:
        return Counter(session.scalars(select(QuotaAllowance.period)))


def at(st: ConnectorState, when: datetime) -> None:
    st.clock = Clock(when)


def ran(outcomes: list[Outcome]) -> list[str]:
    return [o.period for o in outcomes if o.status == "ran"]


# --------------------------------------------------------------------------------------------
# The start of a period


def test_the_reset_runs_at_midnight_on_the_first_and_not_a_second_before(
    st: ConnectorState,
) -> None:
    runner = JobRunner(st)
    at(st, datetime(2026, 11, 1, 0, 0, tzinfo=GST))
    assert ran(runner.tick("quota-reset")) == ["2026-11"]
    at(st, datetime(2026, 11, 30, 23, 59, 59, tzinfo=GST))
    assert runner.tick("quota-reset") == []
    assert allowances(st) == {"2026-11": 20}
    at(st, datetime(2026, 12, 1, 0, 0, 0, tzinfo=GST))  # 2026-11-30 20:00 UTC
    assert ran(runner.tick("quota-reset")) == ["2026-12"]
    assert allowances(st) == {"2026-11": 20, "2026-12": 20}
    assert runs(st) == [("quota-reset", "2026-11"), ("quota-reset", "2026-12")]


def test_a_scheduler_down_over_month_end_catches_up_once(st: ConnectorState) -> None:
    runner = JobRunner(st)
    at(st, datetime(2026, 11, 1, 0, 0, 30, tzinfo=GST))
    runner.tick("quota-reset")
    # Down from 30 November to 2 December; at start every job ticks once.
    at(st, datetime(2026, 12, 2, 9, 15, tzinfo=GST))
    started = runner.tick_all()
    assert ran(started["quota-reset"]) == ["2026-12"]
    assert ran(started["expiry-reminders"]) == ["2026-12-01"]  # the latest day only
    assert ran(started["retention"]) == ["2026-12-02"]
    again = runner.tick_all()
    assert all(outcomes == [] for outcomes in again.values())
    assert runs(st, "quota-reset") == [("quota-reset", "2026-11"), ("quota-reset", "2026-12")]
    assert allowances(st) == {"2026-11": 20, "2026-12": 20}


@pytest.mark.parametrize(
    ("limit", "caught_up"),
    [(12, ["2026-12", "2027-01", "2027-02"]), (2, ["2027-01", "2027-02"])],
)
def test_months_missed_are_opened_oldest_first_up_to_the_limit(
    database: Database, limit: int, caught_up: list[str]
) -> None:
    st = make_state(database, catch_up_periods=limit)
    add_customers(st)
    runner = JobRunner(st)
    runner.tick("quota-reset")  # 2026-11
    at(st, datetime(2027, 2, 10, 12, 0, tzinfo=GST))
    assert ran(runner.tick("quota-reset")) == caught_up
    assert sorted(allowances(st)) == ["2026-11", *caught_up]
    st.database.dispose()


def test_a_fresh_install_runs_only_the_latest_period(st: ConnectorState) -> None:
    at(st, datetime(2027, 3, 5, 8, 0, tzinfo=GST))
    assert ran(JobRunner(st).tick("quota-reset")) == ["2027-03"]


# --------------------------------------------------------------------------------------------
# Failures and overlapping runs


def _monthly(name: str, body: Any) -> Job:
    return Job(name, Monthly(1, time(0, 0), ZONE), body, "test job", catch_up="all")


def test_a_failure_is_logged_with_job_and_period_and_retried_at_the_next_tick(
    st: ConnectorState, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def flaky(
        state: ConnectorState, session: Session, period: Period, now: datetime
    ) -> dict[str, int]:
        calls.append(period.key)
        if len(calls) == 1:
            raise RuntimeError("desk directory unavailable")
        return {"done": 1}

    def steady(
        state: ConnectorState, session: Session, period: Period, now: datetime
    ) -> dict[str, int]:
        return {"done": 1}

    runner = JobRunner(
        st, {"flaky": _monthly("flaky", flaky), "steady": _monthly("steady", steady)}
    )
    at(st, datetime(2026, 12, 1, 0, 1, tzinfo=GST))
    with caplog.at_level(logging.ERROR, logger="care_connector.scheduler"):
        first = runner.tick_all()
    assert first["flaky"] == [] and ran(first["steady"]) == ["2026-12"]
    assert "job flaky period 2026-12 failed; retried at the next tick" in caplog.text
    assert "desk directory unavailable" in caplog.text  # the traceback is logged
    assert runs(st) == [("steady", "2026-12")]
    at(st, datetime(2026, 12, 1, 0, 2, tzinfo=GST))
    assert ran(runner.tick("flaky")) == ["2026-12"]
    assert calls == ["2026-12", "2026-12"]
    assert runs(st) == [("flaky", "2026-12"), ("steady", "2026-12")]


def test_a_job_still_running_is_not_started_again_by_another_tick(st: ConnectorState) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(
        state: ConnectorState, session: Session, period: Period, now: datetime
    ) -> dict[str, int]:
        entered.set()
        assert release.wait(10)
        return {"done": 1}

    runner = JobRunner(st, {"slow": _monthly("slow", slow)})
    at(st, datetime(2026, 12, 1, 0, 0, tzinfo=GST))
    results: list[list[Outcome]] = []
    worker = threading.Thread(target=lambda: results.append(runner.tick("slow")))
    worker.start()
    assert entered.wait(10)
    assert runner.tick("slow") == []  # returns at once, while the first run goes on
    release.set()
    worker.join(10)
    assert [ran(r) for r in results] == [["2026-12"]]
    assert runs(st) == [("slow", "2026-12")]


def test_apscheduler_runs_each_job_on_its_tick_one_instance_coalesced(st: ConnectorState) -> None:
    scheduler = build_scheduler(JobRunner(st), blocking=False)
    scheduler.start(paused=True)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {*jobs_for(st), CATCH_UP_JOB}
        assert isinstance(jobs[CATCH_UP_JOB].trigger, DateTrigger)
        for name in jobs_for(st):
            job = jobs[name]
            assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, None)
            assert isinstance(job.trigger, IntervalTrigger)
            assert job.trigger.interval == timedelta(seconds=st.settings.jobs.tick_seconds)
            assert job.next_run_time.second == 0  # ticks on whole minutes
    finally:
        scheduler.shutdown(wait=False)


def test_apscheduler_does_not_start_a_job_that_is_still_running(st: ConnectorState) -> None:
    entered, release, skipped = threading.Event(), threading.Event(), threading.Event()
    calls: list[str] = []

    def slow(
        state: ConnectorState, session: Session, period: Period, now: datetime
    ) -> dict[str, int]:
        calls.append(period.key)
        entered.set()
        assert release.wait(10)
        return {"done": 1}

    events: list[JobExecutionEvent] = []

    def on_max_instances(event: JobExecutionEvent) -> None:
        events.append(event)
        skipped.set()

    scheduler = build_scheduler(JobRunner(st, {"slow": _monthly("slow", slow)}), blocking=False)
    scheduler.remove_job(CATCH_UP_JOB)
    scheduler.add_listener(on_max_instances, EVENT_JOB_MAX_INSTANCES)
    scheduler.start(paused=True)
    try:
        at(st, datetime(2026, 12, 1, 0, 0, tzinfo=GST))
        scheduler.modify_job("slow", next_run_time=datetime.now(ZONE))
        scheduler.resume()
        assert entered.wait(10)
        scheduler.modify_job("slow", next_run_time=datetime.now(ZONE))  # due again, still busy
        assert skipped.wait(10)
        release.set()
    finally:
        release.set()
        scheduler.shutdown(wait=True)
    assert [event.job_id for event in events] == ["slow"]
    assert calls == ["2026-12"]
    assert runs(st) == [("slow", "2026-12")]


# --------------------------------------------------------------------------------------------
# By hand


def test_a_manual_run_is_safe_and_refuses_a_period_not_started(st: ConnectorState) -> None:
    runner = JobRunner(st, runner="manual test")
    at(st, datetime(2026, 12, 15, 12, 0, tzinfo=GST))
    first = runner.run("quota-reset", "2026-10")
    second = runner.run("quota-reset", "2026-10")
    latest = runner.run("quota-reset")
    assert (first.status, second.status, latest.key) == (
        "ran",
        "done-before",
        "quota-reset:2026-12",
    )
    with pytest.raises(JobError, match=r"quota-reset:2027-01 is not due until 2027-01-01 00:00"):
        runner.run("quota-reset", "2027-01")
    with pytest.raises(JobError, match="no job 'quota'"):
        runner.run("quota")
    with st.database.transaction(read_only=True) as session:
        who = session.scalars(select(JobRun.runner)).all()
    assert who == ["manual test", "manual test"]


def test_plan_shows_last_and_next_periods(st: ConnectorState) -> None:
    runner = JobRunner(st)
    at(st, datetime(2026, 12, 1, 0, 0, tzinfo=GST))
    runner.tick("quota-reset")
    at(st, datetime(2026, 12, 1, 9, 59, tzinfo=GST))
    plan = {p.job.name: p for p in runner.plan()}
    assert (plan["quota-reset"].last_period, plan["quota-reset"].next_period.key) == (
        "2026-12",
        "2027-01",
    )
    # Never ran: its latest period is the next one, due already.
    expiry = plan["expiry-reminders"]
    assert (expiry.last_period, expiry.next_period.key) == (None, "2026-11-30")
    assert isinstance(jobs_for(st)["expiry-reminders"].schedule, Daily)


# --------------------------------------------------------------------------------------------
# Two schedulers, one database


def _pending_approvals(st: ConnectorState, count: int) -> None:
    asked = datetime(2026, 11, 23, 10, 0, tzinfo=GST)
    with st.database.transaction() as session:
        customer = session.scalar(select(Customer.id).order_by(Customer.id))
        for n in range(count):
            session.add(
                Ticket(
                    desk="zendesk",
                    external_id=str(700 + n),
                    customer_id=customer,
                    plan="credits",
                    category="configuration",
                    approval_state="pending",
                    approval_amount=10,
                    approval_requested_at=asked,
                    created_at=asked,
                )
            )


@pytest.mark.postgres
def test_two_schedulers_against_one_postgresql_run_each_period_once(
    postgresql_database: Database,
) -> None:
    one, two = make_state(postgresql_database), make_state(postgresql_database)
    add_customers(one)
    _pending_approvals(one, 5)
    clock = Clock(datetime(2026, 11, 1, 0, 0, tzinfo=GST))
    one.clock = two.clock = clock
    runners = [JobRunner(one, runner="one"), JobRunner(two, runner="two")]
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    moments = [
        datetime(2026, 11, 1, 0, 0, tzinfo=GST),
        datetime(2026, 11, 25, 10, 0, tzinfo=GST),  # the reminders are due
        datetime(2026, 11, 25, 10, 0, 1, tzinfo=GST),
        datetime(2026, 12, 1, 0, 0, tzinfo=GST),
        datetime(2027, 2, 3, 4, 5, tzinfo=GST),  # two months missed
    ]
    for moment in moments:
        clock.at = moment
        barrier = threading.Barrier(2)

        def race(runner: JobRunner, barrier: threading.Barrier) -> None:
            barrier.wait(10)
            done = runner.tick_all()
            with lock:
                outcomes.extend(o for found in done.values() for o in found)

        threads = [threading.Thread(target=race, args=(r, barrier)) for r in runners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    ran_keys = Counter(o.key for o in outcomes if o.status == "ran")
    assert ran_keys and set(ran_keys.values()) == {1}
    recorded = runs(one)
    assert len(recorded) == len(set(recorded)) == len(ran_keys)
    assert [p for j, p in recorded if j == "quota-reset"] == [
        "2026-11",
        "2026-12",
        "2027-01",
        "2027-02",
    ]
    assert allowances(one) == {"2026-11": 20, "2026-12": 20, "2027-01": 20, "2027-02": 20}
    with one.database.transaction(read_only=True) as session:
        reminders = session.scalar(
            select(func.count()).select_from(OutboxAction).where(OutboxAction.kind == "reply")
        )
    assert reminders == 5
    one.database.dispose()
    two.database.dispose()


@pytest.mark.postgres
def test_a_run_waiting_on_another_schedulers_claim_does_nothing_once_it_commits(
    postgresql_database: Database,
) -> None:
    one, two = make_state(postgresql_database), make_state(postgresql_database)
    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def held(
        state: ConnectorState, session: Session, period: Period, now: datetime
    ) -> dict[str, int]:
        calls.append(period.key)
        entered.set()
        assert release.wait(10)
        return {"done": 1}

    jobs = {"held": _monthly("held", held)}
    at(one, datetime(2026, 12, 1, 0, 0, tzinfo=GST))
    at(two, datetime(2026, 12, 1, 0, 0, tzinfo=GST))
    results: dict[str, Outcome] = {}
    first = threading.Thread(target=lambda: results.update(one=JobRunner(one, jobs).run("held")))
    first.start()
    assert entered.wait(10)
    second = threading.Thread(target=lambda: results.update(two=JobRunner(two, jobs).run("held")))
    second.start()
    # Wait until the second run is blocked on the first one's uncommitted run row.
    with postgresql_database.engine.connect() as probe:
        for _ in range(1000):
            waiting = probe.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE NOT granted"
            ).scalar_one()
            probe.rollback()
            if waiting:
                break
            threading.Event().wait(0.01)
    assert waiting
    release.set()
    first.join(10)
    second.join(10)
    assert (results["one"].status, results["two"].status) == ("ran", "done-before")
    assert calls == ["2026-12"]
    one.database.dispose()
    two.database.dispose()
