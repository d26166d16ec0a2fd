"""The production web process: gunicorn with ``deploy/gunicorn.conf.py`` serving
``connector.wsgi:app``, on loopback, logging JSON lines (its own access log included) with the
request id."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_gunicorn_serves_health_metrics_and_webhooks_with_json_logs(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[database]\nurl = "sqlite:///' + str(tmp_path / "care.sqlite3") + '"\n'
        "[health]\nexpect = []\n"
        '[desks.zendesk]\nadapter = "zendesk"\nbase_url = "https://shop.zendesk.com"\n'
        'secret_env = ["CARE_WSGI_TEST_SECRET"]\n',
        encoding="utf-8",
    )
    port = free_port()
    env = {
        **os.environ,
        "CARE_CONFIG": str(config),
        "CARE_LOG_FORMAT": "json",
        "CARE_WSGI_TEST_SECRET": "wsgi-secret-value",
        "WEB_CONCURRENCY": "1",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "deploy" / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "connector.wsgi:app",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = requests.get(
                    f"{base}/healthz", headers={"X-Request-Id": "gx-1"}, timeout=2
                )
                break
            except requests.ConnectionError:
                if server.poll() is not None:
                    pytest.fail(f"gunicorn exited: {server.communicate()[1]}")
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not start")
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
        assert health.headers["X-Request-Id"] == "gx-1"

        refused = requests.post(
            f"{base}/hooks/zendesk", json={}, headers={"X-Request-Id": "gx-2"}, timeout=5
        )
        assert refused.status_code == 401

        metrics = requests.get(f"{base}/metrics", timeout=5)
        assert metrics.status_code == 200
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(metrics.text)
            for sample in family.samples
        }
        key = (
            "care_webhook_deliveries_total",
            (("code", "401"), ("desk", "zendesk"), ("outcome", "refused")),
        )
        assert samples[key] == 1
        assert samples[("care_database_up", ())] == 1
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, err = server.communicate(timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
                server.communicate()

    lines = [json.loads(line) for line in err.splitlines()]
    assert {line["logger"] for line in lines} >= {
        "gunicorn.error",
        "gunicorn.access",
        "care_connector.intake.security",
    }
    access = [line["message"] for line in lines if line["logger"] == "gunicorn.access"]
    assert any('"GET /healthz HTTP/1.1" 200' in m and "request_id=gx-1" in m for m in access)
    [security] = [line for line in lines if line["logger"] == "care_connector.intake.security"]
    assert security["request_id"] == "gx-2"
    assert "wsgi-secret-value" not in err
