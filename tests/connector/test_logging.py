"""Logs: one JSON object per line with the request id and the ticket, secrets masked; the
plain text format; the service commands configuring it and the others not."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner
from flask import Flask

from connector import create_app
from connector.config import ConfigError, load_settings
from connector.extension import ConnectorState
from connector.logging_setup import (
    SecretFilter,
    configure_logging,
    log_context,
    secrets_of,
)
from connector.runner import drain

SECRET = "logging-webhook-secret"
TOKEN = "zendesk-api-token-123"
BASE = "https://shop.zendesk.com"
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    scheduler_level = logging.getLogger("apscheduler").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(scheduler_level)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CARE_LOGGING_TEST_SECRET", SECRET)
    monkeypatch.setenv("CARE_LOGGING_TEST_TOKEN", TOKEN)
    app = create_app(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'care.sqlite3'}"},
            "desks": {
                "zendesk": {
                    "adapter": "zendesk",
                    "base_url": BASE,
                    "secret_env": ["CARE_LOGGING_TEST_SECRET"],
                    "email": "bot@shop.example",
                    "token_env": "CARE_LOGGING_TEST_TOKEN",
                    "max_attempts": 1,
                }
            },
        }
    )
    st: ConnectorState = app.extensions["care_connector"]
    st.clock = lambda: NOW
    yield app
    st.database.dispose()


def capture(app: Flask, fmt: str = "json") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(app.extensions["care_connector"].settings, fmt=fmt, stream=stream)
    return stream


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_log_line_is_one_json_object_with_the_request_id(app: Flask) -> None:
    stream = capture(app)
    answer = app.test_client().post(
        "/hooks/zendesk",
        data=b"{}",
        content_type="application/json",
        headers={"X-Request-Id": "req-42"},
    )
    assert answer.status_code == 401 and answer.headers["X-Request-Id"] == "req-42"

    [line] = [r for r in records(stream) if r["logger"] == "care_connector.intake.security"]
    assert set(line) == {"time", "level", "logger", "message", "request_id"}
    assert line["level"] == "WARNING"
    assert line["request_id"] == "req-42"
    assert line["message"].startswith("desk zendesk: refused (401)")
    assert datetime.fromisoformat(line["time"]).tzinfo is not None
    assert line["time"].endswith("Z")


def test_the_request_id_is_made_up_when_none_comes_and_gone_after(app: Flask) -> None:
    stream = capture(app)
    answer = app.test_client().post("/hooks/zendesk", data=b"{}", content_type="application/json")
    logging.getLogger("care_connector.test").warning("after the request")
    during, after = records(stream)[-2:]
    assert during["request_id"] == answer.headers["X-Request-Id"]
    assert "request_id" not in after


@responses.activate
def test_the_outbox_logs_with_the_ticket_reference(app: Flask) -> None:
    st: ConnectorState = app.extensions["care_connector"]
    responses.put(f"{BASE}/api/v2/tickets/7/tags", status=403, json={"error": "Forbidden"})
    responses.put(f"{BASE}/api/v2/tickets/7", json={"ticket": {"id": 7}})
    from connector.models import OutboxAction

    with st.database.transaction() as session:
        session.add(
            OutboxAction(
                desk="zendesk",
                ticket_id="7",
                ticket_key="zendesk:7",
                kind="tags",
                payload={"tags": ["care_x"]},
                marker="m1",
                next_attempt_at=NOW,
            )
        )
    stream = capture(app)
    drain(st)
    [dead] = [r for r in records(stream) if r["logger"] == "care_connector.outbox"]
    assert dead["level"] == "ERROR" and dead["ticket"] == "zendesk:7"
    assert "dead" in dead["message"] and "403" in dead["message"]
    assert TOKEN not in stream.getvalue()


def test_secrets_are_masked_in_messages_extras_and_exceptions(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARE_ADMIN_TOKEN", "admin-token-value")
    stream = capture(app)
    log = logging.getLogger("care_connector.test")
    log.warning("desk token %s and secret %s", TOKEN, SECRET)
    log.warning("sent Authorization: Bearer abc.def.ghi and X-Zendesk-Webhook-Signature: c2ln")
    log.warning("headers %s", {"Authorization": "Basic dXNlcjpwdw==", "Accept": "a/b"})
    log.warning("connect postgresql+psycopg://care:pg-pass-word@db/care failed")
    log.warning("GET https://desk.example/api?api_key=key-in-query&page=2")
    log.warning("admin %s", "admin-token-value")
    log.warning("extra", extra={"headers": {"authorization": "Bearer zzz", "x-ok": TOKEN}})
    try:
        raise RuntimeError(f"the desk refused {TOKEN}")
    except RuntimeError:
        log.exception("failed")

    text = stream.getvalue()
    for secret in (
        TOKEN,
        SECRET,
        "abc.def.ghi",
        "c2ln",
        "dXNlcjpwdw==",
        "pg-pass-word",
        "key-in-query",
        "admin-token-value",
        "zzz",
    ):
        assert secret not in text, secret
    lines = records(stream)
    assert lines[0]["message"] == "desk token *** and secret ***"
    assert lines[1]["message"] == (
        "sent Authorization: Bearer *** and X-Zendesk-Webhook-Signature: ***"
    )
    assert "'Authorization': 'Basic ***'" in lines[2]["message"] and "a/b" in lines[2]["message"]
    assert lines[3]["message"] == "connect postgresql+psycopg://care:***@db/care failed"
    assert lines[4]["message"].endswith("?api_key=***&page=2")
    assert lines[6]["headers"] == {"authorization": "***", "x-ok": "***"}
    assert "the desk refused ***" in lines[7]["exception"]


def test_the_database_password_and_admin_tokens_are_secrets() -> None:
    settings = load_settings(
        {
            "database": {"url": "postgresql+psycopg://care:db-pass-1234@db.internal/care"},
            "admin": {"tokens": {"alice": "ADMIN_ALICE"}},
        },
        environ={"ADMIN_ALICE": "alice-admin-token"},
    )
    found = secrets_of(settings, environ={})
    assert {"db-pass-1234", "alice-admin-token"} <= found
    assert SecretFilter(found).mask("pw db-pass-1234, token alice-admin-token") == (
        "pw ***, token ***"
    )


def test_one_record_is_one_line_whatever_its_text(app: Flask) -> None:
    stream = capture(app)
    logging.getLogger("care_connector.test").warning("a\nb\rc\u2028d\u2029e\x85f")
    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "a\nb\rc\u2028d\u2029e\x85f"


def test_short_values_are_not_masked() -> None:
    masker = SecretFilter(secrets_of(None, {"CARE_X_TOKEN": "abc", "CARE_Y_SECRET": "abcdef"}))
    assert masker.mask("abc abcdef") == "abc ***"


def test_plain_text_carries_the_context(app: Flask) -> None:
    stream = capture(app, "text")
    with log_context(request_id="r-1", ticket="zendesk:9"):
        logging.getLogger("care_connector.test").info("hello %s", TOKEN)
    line = stream.getvalue().strip()
    assert line.endswith("care_connector.test INFO [request=r-1 ticket=zendesk:9] hello ***")


def test_configuring_twice_replaces_the_handler(app: Flask) -> None:
    capture(app)
    capture(app)
    marked = [h for h in logging.getLogger().handlers if getattr(h, "_care_connector_handler", 0)]
    assert len(marked) == 1


def test_the_environment_wins_over_the_logging_section() -> None:
    settings = load_settings(
        {"logging": {"format": "json", "level": "WARNING"}},
        environ={"CARE_LOG_FORMAT": "Text", "CARE_LOG_LEVEL": "debug"},
    )
    assert (settings.logging.format, settings.logging.level) == ("text", "DEBUG")
    with pytest.raises(ConfigError, match="CARE_LOG_FORMAT: unknown format 'xml'"):
        load_settings({}, environ={"CARE_LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="logging.level: unknown level 'loud'"):
        load_settings({"logging": {"level": "loud"}})


def test_other_commands_leave_logging_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CARE_CONFIG", raising=False)
    monkeypatch.setenv("CARE_DATABASE_URL", f"sqlite:///{tmp_path / 'care.sqlite3'}")
    result = CliRunner().invoke(cli, ["jobs", "list"])
    assert result.exit_code == 0, result.output
    assert not any(getattr(h, "_care_connector_handler", 0) for h in logging.getLogger().handlers)


def test_the_worker_command_logs_json_lines(tmp_path: Path) -> None:
    """`care-connector worker` against a database that refuses connections: each failed
    round is one JSON line with the exception, and nothing else goes to stderr."""
    env = {
        **os.environ,
        "CARE_DATABASE_URL": "postgresql+psycopg://care:pw-never-logged@127.0.0.1:1/care",
        "CARE_LOG_FORMAT": "json",
    }
    env.pop("CARE_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "worker", "--idle", "0.2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda: out.extend(process.stdout or ()), daemon=True),
        threading.Thread(target=lambda: err.extend(process.stderr or ()), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 60
        # The banner is printed once SIGTERM is handled; then wait for two failed rounds.
        while time.monotonic() < deadline and process.poll() is None:
            if out and sum("worker round failed" in line for line in err) >= 2:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for reader in readers:
        reader.join(timeout=10)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    text = "".join(err)
    assert process.returncode == 0, text
    assert out[0].startswith("worker: processing events")
    lines = [json.loads(line) for line in err]
    failed = [line for line in lines if line["message"] == "worker round failed"]
    assert len(failed) >= 2
    assert failed[0]["level"] == "ERROR" and failed[0]["logger"] == "care_connector.runner"
    assert "OperationalError" in failed[0]["exception"]
    assert "pw-never-logged" not in text
