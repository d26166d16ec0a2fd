"""``simulate``, ``replay``, ``webhooks install``, ``worker`` and ``run`` through the CLI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from click.testing import CliRunner
from sqlalchemy import select

from connector import create_app
from connector.cli import cli
from connector.models import Event
from connector.runner import loop
from tests.adapters.openapi import assert_zendesk_request

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "zendesk"
NOW = "2026-11-27T10:00:05+00:00"
CUSTOMERS = {
    "customers": [
        {
            "email": "owner@shop.example",
            "name": "Shop Owner",
            "locale": "en",
            "licenses": [
                {"ref": "L-1", "product": "cs-cart", "kind": "first", "purchased_on": "2025-01-10"}
            ],
            "upgrades_until": "2027-01-10",
            "credit_purchases": [{"ref": "o-77", "credits": 70, "purchased_on": "2026-02-01"}],
        },
        {
            "email": "vip@shop.example",
            "subscriptions": [{"plan": "vip", "starts_on": "2026-01-01", "ends_on": "2026-12-31"}],
        },
    ]
}


def payload(tmp_path: Path, name: str, **ticket: Any) -> Path:
    body = json.loads((FIXTURES / "trigger_created.json").read_text())
    body["ticket"].update(created_at="2026-11-27T10:00:00Z", tags="", fields={}, **ticket)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CARE_CONFIG", raising=False)
    monkeypatch.setenv("CARE_DATABASE_URL", f"sqlite:///{tmp_path / 'care.sqlite3'}")
    (tmp_path / "customers.json").write_text(json.dumps(CUSTOMERS), encoding="utf-8")
    return tmp_path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), prog_name="care-connector")


def simulate(*args: str) -> Any:
    return invoke("simulate", "--desk", "zendesk", "--customers", "customers.json", *args)


def test_simulate_prints_each_decision_the_requests_and_the_balances(sandbox: Path) -> None:
    upgrade = payload(sandbox, "upgrade")
    vip = payload(sandbox, "vip", id="8", subject="How to set up taxes?", description="")
    vip_body = json.loads(vip.read_text())
    vip_body["requester"].update(email="vip@shop.example", id="99", locale="en")
    vip.write_text(json.dumps(vip_body))
    result = simulate("--now", NOW, "--json", str(upgrade), str(upgrade), str(vip))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    first, duplicate, third = out["results"]
    assert {k: first[k] for k in ("plan", "category", "credits", "charged")} == {
        "plan": "credits",
        "category": "upgrade",
        "credits": 50,
        "charged": 0,
    }
    assert first["approval_required"] is True
    assert first["priority"] == "normal"
    assert first["tags"] == ["care_plan_credits", "care_category_upgrade", "care_awaiting_approval"]
    assert [r["method"] for r in first["requests"]] == ["PUT", "PUT", "PUT"]
    assert first["requests"][2]["json"]["ticket"]["comment"]["public"] is True
    assert duplicate == {"status": "duplicate"}
    assert (third["plan"], third["priority"], third["charged"]) == ("vip", "urgent", 0)
    assert third["requests"][0] == {
        "method": "PUT",
        "url": "https://example.zendesk.com/api/v2/tickets/8",
        "json": {"ticket": {"priority": "urgent"}},
    }
    for result_ in (first, third):
        for request in result_["requests"]:
            assert_zendesk_request(request["method"], request["url"], request["json"])
    assert out["balances"] == {"owner@shop.example": 120, "vip@shop.example": 0}


def sign(secret: str, ts: str, body: bytes) -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), ts.encode() + body, hashlib.sha256).digest()
    ).decode()


def test_simulate_with_a_secret_checks_signatures_like_production(sandbox: Path) -> None:
    path = payload(sandbox, "signed")
    ts = "2026-11-27T10:00:00Z"
    good = sign("s3cret", ts, path.read_bytes())
    header = f"X-Zendesk-Webhook-Signature-Timestamp:{ts}"
    ok = simulate(
        "--now",
        NOW,
        "--secret",
        "s3cret",
        "--header",
        header,
        "--header",
        f"X-Zendesk-Webhook-Signature:{good}",
        "--json",
        str(path),
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["results"][0]["credits"] == 50
    # The same headers from a sidecar file beside the payload.
    (sandbox / "signed.headers.json").write_text(
        json.dumps(
            {
                "X-Zendesk-Webhook-Signature-Timestamp": ts,
                "X-Zendesk-Webhook-Signature": sign("wrong", ts, path.read_bytes()),
            }
        )
    )
    bad = simulate("--now", NOW, "--secret", "s3cret", "--json", str(path))
    assert bad.exit_code == 1
    assert bad.stderr.strip().startswith("Error: ") and "401" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--desk", "nope"], "no such desk"),
        (["--desk", "zendesk", "--now", "yesterday"], "--now"),
        (["--desk", "zendesk", "--now", "2026-11-27T10:00:00"], "time zone"),
        (["--desk", "zendesk", "--header", "no-colon"], "NAME:VALUE"),
        (["--desk", "zendesk", "--customers", "missing.json"], "--customers"),
    ],
)
def test_simulate_bad_arguments(sandbox: Path, args: list[str], fragment: str) -> None:
    path = payload(sandbox, "p")
    result = invoke("simulate", *args, str(path))
    assert result.exit_code == 2
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_simulate_refused_payload_stops_the_run(sandbox: Path) -> None:
    (sandbox / "broken.json").write_text('{"care_connector": 1, "ticket": {')
    result = simulate("--now", NOW, "--json", "broken.json")
    assert result.exit_code == 1 and "400" in result.stderr


def test_replay_processes_a_failed_delivery_once(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (sandbox / "config.toml").write_text(
        '[desks.zendesk]\nadapter = "zendesk"\nbase_url = "https://example.zendesk.com"\n'
        'secret_env = ["CARE_REPLAY_SECRET"]\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CARE_REPLAY_SECRET", "s")
    app = create_app()
    st = app.extensions["care_connector"]
    body = payload(sandbox, "replayed").read_bytes()
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    headers = {
        "X-Zendesk-Webhook-Signature-Timestamp": ts,
        "X-Zendesk-Webhook-Signature": sign("s", ts, body),
    }
    client = app.test_client()
    answer = client.post(
        "/hooks/zendesk", data=body, content_type="application/json", headers=headers
    )
    assert answer.status_code == 200
    with st.database.transaction() as session:
        event = session.execute(select(Event)).scalar_one()
        event.status, event.error = "failed", "the worker gave up"
    with responses.RequestsMock() as mock:
        mock.put("https://example.zendesk.com/api/v2/tickets/7", json={})
        mock.put("https://example.zendesk.com/api/v2/tickets/7/tags", json={})
        replayed = invoke("replay", "1")
        assert replayed.exit_code == 0, replayed.output
        assert replayed.stdout.startswith("delivery 1: accepted; 1 event(s) processed")
    again = invoke("replay", "1")
    assert again.exit_code == 0 and again.stdout.startswith("delivery 1: duplicate; 0 event(s)")
    with st.database.transaction(read_only=True) as session:
        assert session.scalar(select(Event.status)) == "done"
    # A refused delivery (bad signature) is stored, and replay refuses it again.
    forged = client.post(
        "/hooks/zendesk",
        data=body,
        content_type="application/json",
        headers={**headers, "X-Zendesk-Webhook-Signature": sign("forged", ts, body)},
    )
    assert forged.status_code == 401
    refused = invoke("replay", "2")
    assert refused.exit_code == 1 and "signature" in refused.stderr.lower()
    st.database.dispose()


def test_replay_unknown_delivery(sandbox: Path) -> None:
    result = invoke("replay", "999")
    assert result.exit_code == 1 and "No delivery 999" in result.stderr


@responses.activate
def test_webhooks_install_reports_a_refusing_desk(sandbox: Path) -> None:
    responses.get(
        "https://example.zendesk.com/api/v2/webhooks",
        status=401,
        json={"error": "Couldn't authenticate you"},
    )
    result = invoke("webhooks", "install", "--desk", "zendesk", "--url", "https://care.example")
    assert result.exit_code == 1 and "refused" in result.stderr
    bad = invoke("webhooks", "install", "--desk", "zendesk", "--url", "not a url")
    assert bad.exit_code == 2
    unknown = invoke("webhooks", "install", "--desk", "nope", "--url", "https://care.example")
    assert unknown.exit_code == 2


def test_worker_loop_stops_when_asked(sandbox: Path) -> None:
    app = create_app()
    st = app.extensions["care_connector"]
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(st, stop), kwargs={"idle_seconds": 0.05})
    thread.start()
    time.sleep(0.2)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    st.database.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_serves_webhooks_and_processes_them_in_its_own_threads(tmp_path: Path) -> None:
    """The README's first command, minus the install: a real server on loopback."""
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        '[desks.zendesk]\nadapter = "zendesk"\nbase_url = "http://127.0.0.1:9"\n'
        'secret_env = ["CARE_RUN_TEST_SECRET"]\n',
        encoding="utf-8",
    )
    env = {**os.environ, "CARE_CONFIG": str(config), "CARE_RUN_TEST_SECRET": "s"}
    env.pop("CARE_DATABASE_URL", None)
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "run", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail(f"the server did not start: {(tmp_path / 'server.log').read_text()}")
        body = payload(tmp_path, "live").read_bytes()
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        answer = requests.post(
            f"{base}/hooks/zendesk",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Zendesk-Webhook-Signature-Timestamp": ts,
                "X-Zendesk-Webhook-Signature": sign("s", ts, body),
            },
            timeout=5,
        )
        assert answer.status_code == 200 and answer.json() == {"status": "accepted"}
        app = create_app(str(config))
        st = app.extensions["care_connector"]
        st.database.dispose()
        from connector.db import Database

        database = Database.from_url(f"sqlite:///{tmp_path / 'care-connector.sqlite3'}")
        for _ in range(100):
            with database.transaction(read_only=True) as session:
                status = session.scalar(select(Event.status))
            if status == "done":
                break
            time.sleep(0.1)
        database.dispose()
        assert status == "done"  # processed by the worker thread of `run`
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
