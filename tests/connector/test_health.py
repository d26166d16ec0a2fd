"""``GET /healthz``: the database, the heartbeats of the background processes (recorded by
the worker loop and the scheduler), the outbox backlog, and the request id of every answer.
Runs on SQLite and on PostgreSQL; the connector's clock is moved by hand."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from connector import create_app
from connector.config import ConfigError, load_settings
from connector.db import Database
from connector.extension import ConnectorState
from connector.heartbeats import FORGET_AFTER, Heartbeats
from connector.models import Heartbeat, OutboxAction
from connector.runner import loop, start_thread
from connector.scheduler import JobRunner

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def make_app(url: str, **health: Any) -> Flask:
    config: dict[str, Any] = {
        "database": {"url": url},
        "desks": {"zendesk": {"adapter": "zendesk", "base_url": "https://shop.zendesk.com"}},
    }
    if health:
        config["health"] = health
    return create_app(config)


@pytest.fixture
def app(database: Database) -> Iterator[Flask]:
    app = make_app(database.url)
    app.extensions["care_connector"].clock = Clock(NOW)
    yield app
    app.extensions["care_connector"].database.dispose()


@pytest.fixture
def st(app: Flask) -> ConnectorState:
    return app.extensions["care_connector"]  # type: ignore[no-any-return]


def get_health(app: Flask) -> tuple[int, dict[str, Any]]:
    answer = app.test_client().get("/healthz")
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.status_code, answer.get_json()


def beat_all(st: ConnectorState, runner: str = "web-1:100") -> None:
    Heartbeats(st, runner=runner).beat("worker", "outbox", "scheduler", force=True)


# --------------------------------------------------------------------------------------------
# Healthy and unhealthy


def test_healthy_when_the_database_answers_and_every_process_beats(
    app: Flask, st: ConnectorState
) -> None:
    beat_all(st)
    st.clock = Clock(NOW + timedelta(seconds=42))

    status, body = get_health(app)

    assert status == 200
    assert body["status"] == "ok"
    checks = body["checks"]
    assert checks["database"] == {"ok": True, "dialect": st.database.dialect}
    assert checks["heartbeats"]["ok"] is True
    assert checks["heartbeats"]["max_age_seconds"] == 300
    for kind in ("worker", "outbox", "scheduler"):
        assert checks["heartbeats"]["processes"][kind] == {
            "ok": True,
            "expected": True,
            "last_beat": NOW.isoformat(),
            "age_seconds": 42.0,
            "processes": 1,
        }
    assert checks["outbox"] == {
        "ok": True,
        "backlog": 0,
        "pending": 0,
        "sending": 0,
        "dead": 0,
        "oldest_due_seconds": 0.0,
    }


def test_no_heartbeat_yet_is_unhealthy(app: Flask) -> None:
    status, body = get_health(app)
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"]["ok"] is True
    worker = body["checks"]["heartbeats"]["processes"]["worker"]
    assert worker["ok"] is False and worker["error"] == "no heartbeat yet"
    assert worker["last_beat"] is None and worker["processes"] == 0


def test_a_stale_heartbeat_is_unhealthy(app: Flask, st: ConnectorState) -> None:
    beat_all(st)
    Heartbeats(st, runner="web-2:200").beat("worker", "scheduler", force=True)
    st.clock = Clock(NOW + timedelta(seconds=300))
    assert get_health(app)[0] == 200  # exactly the maximum age: still fresh

    st.clock = Clock(NOW + timedelta(seconds=301))
    Heartbeats(st, runner="web-2:200").beat("worker", "scheduler", force=True)
    status, body = get_health(app)

    assert status == 503
    processes = body["checks"]["heartbeats"]["processes"]
    assert processes["worker"]["ok"] is True and processes["worker"]["processes"] == 1
    assert processes["outbox"] == {
        "ok": False,
        "expected": True,
        "last_beat": NOW.isoformat(),
        "age_seconds": 301.0,
        "processes": 0,
        "error": "no heartbeat for 301 s (more than 300 s)",
    }


def test_processes_not_expected_are_shown_but_never_fail_the_check(database: Database) -> None:
    app = make_app(database.url, expect=["worker"], max_heartbeat_age=120)
    st: ConnectorState = app.extensions["care_connector"]
    st.clock = Clock(NOW)
    Heartbeats(st).beat("worker", force=True)
    try:
        status, body = get_health(app)
        assert status == 200
        processes = body["checks"]["heartbeats"]["processes"]
        assert processes["scheduler"] == {
            "ok": True,
            "expected": False,
            "last_beat": None,
            "age_seconds": None,
            "processes": 0,
        }
        st.clock = Clock(NOW + timedelta(seconds=121))
        assert get_health(app)[0] == 503
    finally:
        st.database.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///{tmp}/no/such/directory/care.sqlite3",
        "postgresql+psycopg://care:secret@127.0.0.1:1/care",  # nothing listens on port 1
    ],
    ids=["sqlite-unopenable", "postgresql-refused"],
)
def test_a_database_that_does_not_answer_is_503(tmp_path: Path, url: str) -> None:
    app = make_app(url.format(tmp=tmp_path))
    status, body = get_health(app)
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["error"] == ("the database did not answer (OperationalError)")
    assert body["checks"]["heartbeats"]["ok"] is False
    assert "secret" not in str(body)


def test_the_outbox_backlog_is_reported_and_never_fails_the_check(
    app: Flask, st: ConnectorState
) -> None:
    beat_all(st)
    with st.database.transaction() as session:
        for n, (status, due) in enumerate(
            [
                ("pending", NOW - timedelta(seconds=90)),
                ("pending", NOW - timedelta(seconds=10)),
                ("pending", NOW + timedelta(minutes=5)),  # waiting for a retry
                ("sending", NOW),
                ("dead", NOW - timedelta(days=1)),
                ("sent", NOW - timedelta(days=1)),
            ]
        ):
            session.add(
                OutboxAction(
                    desk="zendesk",
                    ticket_id="1",
                    ticket_key=f"zendesk:{n}",
                    kind="tags",
                    payload={"tags": ["a"]},
                    marker=f"m{n}",
                    status=status,
                    next_attempt_at=due,
                )
            )
    status, body = get_health(app)
    assert status == 200
    assert body["checks"]["outbox"] == {
        "ok": True,
        "backlog": 4,
        "pending": 3,
        "sending": 1,
        "dead": 1,
        "oldest_due_seconds": 90.0,
    }


# --------------------------------------------------------------------------------------------
# Who beats


def test_the_worker_loop_beats_for_the_worker_and_the_outbox(st: ConnectorState) -> None:
    stop = threading.Event()
    rounds = 0

    def wait(seconds: float | None = None) -> bool:
        nonlocal rounds
        rounds += 1
        if rounds >= 2:
            stop.set()
        return stop.is_set()

    stop.wait = wait  # type: ignore[method-assign]
    loop(st, stop, heartbeats=Heartbeats(st, runner="host-a:1"))

    with st.database.transaction(read_only=True) as session:
        rows = session.execute(select(Heartbeat.kind, Heartbeat.runner, Heartbeat.beat_at)).all()
    assert sorted(rows) == [("outbox", "host-a:1", NOW), ("worker", "host-a:1", NOW)]


def test_the_embedded_worker_thread_beats_before_it_starts(app: Flask, st: ConnectorState) -> None:
    thread, stop = start_thread(st)
    try:
        body = get_health(app)[1]
        processes = body["checks"]["heartbeats"]["processes"]
        assert processes["worker"]["ok"] and processes["outbox"]["ok"]
    finally:
        stop.set()
        thread.join(timeout=10)


def test_the_scheduler_beats_when_a_job_ticks(app: Flask, st: ConnectorState) -> None:
    runner = JobRunner(st)
    runner.tick("retention")
    beat_all_but_scheduler = Heartbeats(st, runner="w:1")
    beat_all_but_scheduler.beat("worker", "outbox", force=True)
    status, body = get_health(app)
    assert status == 200
    assert body["checks"]["heartbeats"]["processes"]["scheduler"]["processes"] == 1


def test_a_process_beats_at_most_once_an_interval(st: ConnectorState) -> None:
    ticks = [0.0]
    beats = Heartbeats(st, runner="h:1", monotonic=lambda: ticks[0])
    assert beats.beat("worker") is True
    ticks[0] = 14.9
    assert beats.beat("worker") is False
    assert beats.beat("outbox") is True  # each kind has its own interval
    ticks[0] = 15.0
    st.clock = Clock(NOW + timedelta(seconds=15))
    assert beats.beat("worker") is True
    with st.database.transaction(read_only=True) as session:
        rows = session.execute(select(Heartbeat.kind, Heartbeat.started_at, Heartbeat.beat_at))
        assert sorted(rows) == [
            ("outbox", NOW, NOW),
            ("worker", NOW, NOW + timedelta(seconds=15)),
        ]


def test_a_failed_heartbeat_is_logged_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(f"sqlite:///{tmp_path}/missing/care.sqlite3")
    st: ConnectorState = app.extensions["care_connector"]
    beats = Heartbeats(st, runner="h:1", monotonic=lambda: 0.0)
    with caplog.at_level("WARNING", logger="care_connector.heartbeats"):
        assert beats.beat("worker") is False
        assert beats.beat("worker") is False  # not throttled: the first was not recorded
    assert caplog.text.count("heartbeat worker not recorded") == 2


def test_processes_silent_for_a_week_are_forgotten(st: ConnectorState) -> None:
    old = NOW - FORGET_AFTER - timedelta(seconds=1)
    with st.database.transaction() as session:
        session.add(Heartbeat(kind="worker", runner="gone:1", started_at=old, beat_at=old))
    Heartbeats(st, runner="here:2").beat("worker", force=True)
    with st.database.transaction(read_only=True) as session:
        assert list(session.scalars(select(Heartbeat.runner))) == ["here:2"]


# --------------------------------------------------------------------------------------------
# Request ids and the [health] section


def test_every_answer_carries_a_request_id(app: Flask) -> None:
    client = app.test_client()
    given = client.get("/healthz", headers={"X-Request-Id": "lb-7f3a.2"})
    assert given.headers["X-Request-Id"] == "lb-7f3a.2"
    made = client.get("/healthz").headers["X-Request-Id"]
    assert len(made) == 32 and made != client.get("/healthz").headers["X-Request-Id"]
    unsafe = client.get("/healthz", headers={"X-Request-Id": "a b\tc"}).headers["X-Request-Id"]
    assert unsafe != "a b\tc" and len(unsafe) == 32
    assert client.post("/hooks/nowhere").headers["X-Request-Id"]  # errors too


@pytest.mark.parametrize(
    ("health", "message"),
    [
        ({"expect": ["web"]}, "health.expect[0]: unknown process 'web'"),
        ({"expect": ["worker", "worker"]}, "health.expect: a process is named twice"),
        ({"heartbeat_seconds": 300}, "health.heartbeat_seconds: must be less than"),
        ({"max_heartbeat_age": 60}, "must be more than jobs.tick_seconds (60)"),
    ],
)
def test_bad_health_settings_are_refused(health: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"health": health})
    assert message in str(caught.value)


def test_without_the_scheduler_the_age_may_be_shorter_than_a_tick() -> None:
    settings = load_settings({"health": {"expect": ["worker"], "max_heartbeat_age": 30}})
    assert settings.health.max_heartbeat_age == 30
