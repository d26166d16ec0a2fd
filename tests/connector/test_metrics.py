"""``GET /metrics``: real counts after deliveries go through the whole pipeline (intake,
worker, outbox, a scheduled job), read back with prometheus-client's own text parser; the
database figures the same from another app; restriction by config; and the multiprocess mode
adding up two processes. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from connector import create_app
from connector.config import ConfigError, load_settings
from connector.customers import import_customers, validate_entries
from connector.db import Database
from connector.extension import ConnectorState
from connector.metrics import Metrics, delivery_outcome
from connector.runner import drain
from connector.scheduler import JobRunner

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "zendesk"
SECRET = "metrics-test-secret"
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # Tuesday 14:00 GMT+4
BASE = "https://shop.zendesk.com"
CUSTOMERS = [
    {
        "email": "credits@shop.example",
        "name": "Anna",
        "licenses": [
            {"ref": "CS-1", "product": "cs-cart", "kind": "first", "purchased_on": "2025-01-10"}
        ],
        "credit_purchases": [{"ref": "order-1", "credits": 70, "purchased_on": "2026-02-01"}],
    },
    {
        "email": "vip@shop.example",
        "name": "Vera",
        "subscriptions": [{"plan": "vip", "starts_on": "2026-01-01", "ends_on": "2026-12-31"}],
    },
]


def sign(secret: str, ts: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), ts.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def trigger(ticket_id: str, email: str, **changes: Any) -> bytes:
    body = copy.deepcopy(json.loads((FIXTURES / "trigger_created.json").read_text()))
    body["event"] = changes.get("event", "created")
    body["ticket"].update(
        id=ticket_id,
        subject="How to set up shipping methods?",
        description="Where can I find the shipping settings?",
        tags=changes.get("tags", ""),
        priority="Normal",
        created_at="2026-03-10T09:58:00Z",
        updated_at="2026-03-10T09:58:00Z",
        fields={"360001234567": "", "360001234568": "", "360001234569": ""},
    )
    body["requester"].update(id="5005", email=email, locale="en-US")
    body["current_user"] = {"id": changes.get("actor", "5005")}
    return json.dumps(body).encode()


def config(url: str, **sections: Any) -> dict[str, Any]:
    return {
        "database": {"url": url},
        "desks": {
            "zendesk": {
                "adapter": "zendesk",
                "base_url": BASE,
                "secret_env": ["CARE_METRICS_TEST_SECRET"],
                "email": "bot@shop.example",
                "token_env": "CARE_METRICS_TEST_TOKEN",
                "api_user_id": "900",
                "max_attempts": 2,
            }
        },
        **sections,
    }


@pytest.fixture
def app(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CARE_METRICS_TEST_SECRET", SECRET)
    monkeypatch.setenv("CARE_METRICS_TEST_TOKEN", "api-token")
    app = create_app(config(database.url))
    st: ConnectorState = app.extensions["care_connector"]
    st.clock = lambda: NOW
    records = validate_entries(CUSTOMERS, policy=st.settings.policy, desks=["zendesk"])
    with st.database.transaction() as session:
        import_customers(session, records, policy=st.settings.policy, at=NOW - timedelta(days=30))
    yield app
    st.database.dispose()


@pytest.fixture
def st(app: Flask) -> ConnectorState:
    return app.extensions["care_connector"]  # type: ignore[no-any-return]


def post(app: Flask, body: bytes, *, secret: str = SECRET) -> Any:
    stamp = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Signature": sign(secret, stamp, body),
    }
    return app.test_client().post(
        "/hooks/zendesk", data=body, headers=headers, content_type="application/json"
    )


def scrape(app: Flask, **kwargs: Any) -> dict[str, list[Sample]]:
    answer = app.test_client().get("/metrics", **kwargs)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.content_type.startswith("text/plain; version=0.0.4")
    return {
        family.name: family.samples
        for family in text_string_to_metric_families(answer.get_data(as_text=True))
    }


def value(families: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The one sample called ``name`` with exactly these labels (0 when there is none)."""
    for samples in families.values():
        for sample in samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def total(families: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include these."""
    return sum(
        sample.value
        for samples in families.values()
        for sample in samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def stub_desk(fail_tags_of: str | None = None) -> None:
    if fail_tags_of is not None:
        responses.put(
            f"{BASE}/api/v2/tickets/{fail_tags_of}/tags",
            status=422,
            json={"error": "RecordInvalid", "description": "Record validation errors"},
        )
    ticket = re.compile(rf"{re.escape(BASE)}/api/v2/tickets/\d+(/tags)?")
    for method in (responses.PUT, responses.DELETE):
        responses.add(method, ticket, json={"ticket": {"id": 1}, "tags": []})


# --------------------------------------------------------------------------------------------
# Real counts after the pipeline


@responses.activate
def test_metrics_report_real_counts_after_deliveries_go_through_the_pipeline(
    app: Flask, st: ConnectorState
) -> None:
    stub_desk(fail_tags_of="102")
    assert post(app, trigger("101", "credits@shop.example")).status_code == 200  # charged 5
    assert post(app, trigger("101", "credits@shop.example")).status_code == 200  # a retry
    assert post(app, trigger("102", "vip@shop.example")).status_code == 200  # tags refused
    assert post(app, trigger("103", "vip@shop.example"), secret="wrong").status_code == 401
    drain(st)
    # An engineer's refund tag on the charged ticket gives the 5 credits back.
    refund = trigger("101", "credits@shop.example", event="updated", tags="care_refund", actor="77")
    assert post(app, refund).status_code == 200
    done = drain(st)
    assert done.processed and done.sent
    assert JobRunner(st).run("retention").status == "ran"

    families = scrape(app)

    deliveries = "care_webhook_deliveries_total"
    assert value(families, deliveries, desk="zendesk", outcome="accepted", code="200") == 3
    assert value(families, deliveries, desk="zendesk", outcome="duplicate", code="200") == 1
    assert value(families, deliveries, desk="zendesk", outcome="refused", code="401") == 1
    assert value(families, "care_credits_charged_total") == 5
    assert value(families, "care_credits_refunded_total") == 5
    processed = "care_event_processing_seconds_count"
    assert value(families, processed, desk="zendesk", status="done") == 3
    assert value(families, "care_event_delay_seconds_count", desk="zendesk") == 3
    postbacks = "care_postback_seconds_count"
    attempts = total(families, postbacks, desk="zendesk")
    sent = total(families, postbacks, desk="zendesk", status="sent")
    assert value(families, postbacks, desk="zendesk", kind="tags", status="dead") == 1
    assert attempts == sent + 1 and sent >= 4
    assert total(families, "care_postback_delay_seconds_count") == sent
    assert value(families, "care_outbox_dead_letters") == 1
    assert value(families, "care_outbox_actions", status="dead") == 1
    assert value(families, "care_outbox_backlog") == 0
    assert value(families, "care_outbox_oldest_due_seconds") == 0
    assert value(families, "care_events", status="pending") == 0
    assert value(families, "care_events", status="failed") == 0
    assert value(families, "care_job_runs_total", job="retention") == 1
    assert value(families, "care_job_run_seconds_count", job="retention") == 1
    assert value(families, "care_job_last_finished_timestamp_seconds", job="retention") == (
        NOW.timestamp()
    )
    assert value(families, "care_database_up") == 1


def test_database_figures_are_the_same_from_another_process(
    app: Flask, st: ConnectorState, database: Database
) -> None:
    """A second app on the same database (another web process) reads the same ledger and
    outbox, and has its own registry: its delivery counters start at zero, without a clash."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.PUT, re.compile(rf"{re.escape(BASE)}/.*"), json={})
        post(app, trigger("201", "credits@shop.example"))
        drain(st)
    other = create_app(config(database.url))
    other.extensions["care_connector"].clock = lambda: NOW
    try:
        families = scrape(other)
        assert value(families, "care_credits_charged_total") == 5
        assert total(families, "care_webhook_deliveries_total") == 0
        assert total(scrape(app), "care_webhook_deliveries_total") == 1
    finally:
        other.extensions["care_connector"].database.dispose()


def test_a_scrape_without_a_database_reports_it_down(tmp_path: Path) -> None:
    app = create_app(config(f"sqlite:///{tmp_path}/missing/care.sqlite3"))
    families = scrape(app)
    assert value(families, "care_database_up") == 0
    assert "care_outbox_backlog" not in families


def test_heartbeat_ages_are_reported(st: ConnectorState, app: Flask) -> None:
    from connector.heartbeats import Heartbeats

    Heartbeats(st).beat("worker", force=True)
    st.clock = lambda: NOW + timedelta(seconds=30)
    families = scrape(app)
    assert value(families, "care_heartbeat_age_seconds", kind="worker") == 30
    assert value(families, "care_heartbeat_processes", kind="worker") == 1


def test_two_apps_in_one_process_keep_their_own_registries() -> None:
    first, second = Metrics(), Metrics()
    first.delivery("zendesk", 200, {"status": "accepted"})
    assert first.deliveries.labels("zendesk", "accepted", "200")._value.get() == 1
    assert second.deliveries.labels("zendesk", "accepted", "200")._value.get() == 0


def test_the_ledger_sums_are_reused_for_a_minute() -> None:
    metrics, clock, reads = Metrics(), [0.0], []

    def read() -> tuple[int, int]:
        reads.append(clock[0])
        return (5 * len(reads), 0)

    assert metrics.ledger_totals(read, monotonic=lambda: clock[0]) == (5, 0)
    clock[0] = 59.9
    assert metrics.ledger_totals(read, monotonic=lambda: clock[0]) == (5, 0)
    clock[0] = 60.0
    assert metrics.ledger_totals(read, monotonic=lambda: clock[0]) == (10, 0)
    assert reads == [0.0, 60.0]


@pytest.mark.parametrize(
    ("code", "body", "outcome"),
    [
        (200, {"status": "accepted"}, "accepted"),
        (200, {"status": "duplicate"}, "duplicate"),
        (200, {"status": "ignored"}, "ignored"),
        (400, None, "refused"),
        (401, None, "refused"),
        (413, None, "too_large"),
        (503, None, "unavailable"),
        (500, {"status": "failed"}, "failed"),
    ],
)
def test_delivery_outcomes(code: int, body: dict[str, str] | None, outcome: str) -> None:
    assert delivery_outcome(code, body) == outcome


# --------------------------------------------------------------------------------------------
# Restriction


def restricted(tmp_path: Path, **metrics: Any) -> Flask:
    return create_app(config(f"sqlite:///{tmp_path}/care.sqlite3", metrics=metrics))


def test_metrics_are_open_by_default(tmp_path: Path) -> None:
    assert restricted(tmp_path).test_client().get("/metrics").status_code == 200


def test_disabled_metrics_are_not_found(tmp_path: Path) -> None:
    answer = restricted(tmp_path, enabled=False).test_client().get("/metrics")
    assert answer.status_code == 404
    assert answer.get_json()["message"] == "Metrics are disabled ([metrics] enabled = false)."


def test_only_allowed_networks_may_scrape(tmp_path: Path) -> None:
    client = restricted(tmp_path, allow=["10.0.0.0/8", "2001:db8::/32"]).test_client()
    assert client.get("/metrics").status_code == 403  # the test client is 127.0.0.1
    for address in ("10.1.2.3", "::ffff:10.9.9.9", "2001:db8::1"):
        answer = client.get("/metrics", environ_base={"REMOTE_ADDR": address})
        assert answer.status_code == 200, address
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "11.0.0.1"}).status_code == 403


def test_a_token_is_asked_for_when_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARE_METRICS_TOKEN", "scrape-me-please")
    client = restricted(tmp_path, token_env="CARE_METRICS_TOKEN").test_client()
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Basic x"}).status_code == 401
    good = client.get("/metrics", headers={"Authorization": "Bearer scrape-me-please"})
    assert good.status_code == 200


def test_a_token_variable_left_empty_refuses_every_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARE_METRICS_TOKEN", raising=False)
    answer = restricted(tmp_path, token_env="CARE_METRICS_TOKEN").test_client().get("/metrics")
    assert answer.status_code == 401
    assert "CARE_METRICS_TOKEN is empty" in answer.get_json()["message"]


def test_network_and_token_both_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARE_METRICS_TOKEN", "scrape-me-please")
    client = restricted(tmp_path, allow=["10.0.0.0/8"], token_env="CARE_METRICS_TOKEN")
    auth = {"Authorization": "Bearer scrape-me-please"}
    inside = {"REMOTE_ADDR": "10.0.0.7"}
    test = client.test_client()
    assert test.get("/metrics", headers=auth).status_code == 403
    assert test.get("/metrics", environ_base=inside).status_code == 401
    assert test.get("/metrics", headers=auth, environ_base=inside).status_code == 200


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"allow": ["10.0.0.1/8"]}, "metrics.allow[0]: not a network '10.0.0.1/8'"),
        ({"allow": ["intranet"]}, "metrics.allow[0]: not a network 'intranet'"),
        ({"allow": "10.0.0.0/8"}, "metrics.allow: must be a list"),
        ({"token_env": "not a name"}, "metrics.token_env: 'not a name' is not an environment"),
        ({"enabled": "yes"}, "metrics.enabled: must be true or false"),
    ],
)
def test_bad_metrics_settings_are_refused(metrics: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"metrics": metrics})
    assert message in str(caught.value)


# --------------------------------------------------------------------------------------------
# Several processes on one host


def test_multiprocess_mode_adds_up_the_processes_of_a_host(tmp_path: Path) -> None:
    """Two processes with PROMETHEUS_MULTIPROC_DIR: one answers a delivery, the other is
    scraped and reports it."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "CARE_METRICS_TEST_SECRET": SECRET,
    }
    url = f"sqlite:///{tmp_path / 'care.sqlite3'}"
    setup = textwrap.dedent(
        f"""
        from connector import create_app
        app = create_app({config(url)!r})
        client = app.test_client()
        """
    )
    deliver = setup + "assert client.post('/hooks/zendesk', json={}).status_code == 401\n"
    read = setup + "print(client.get('/metrics').get_data(as_text=True))\n"
    for script in (deliver, deliver):
        subprocess.run([sys.executable, "-c", script], env=env, check=True)
    output = subprocess.run(
        [sys.executable, "-c", read],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    families = {f.name: f.samples for f in text_string_to_metric_families(output)}
    deliveries = "care_webhook_deliveries_total"
    assert value(families, deliveries, desk="zendesk", outcome="refused", code="401") == 2
    assert value(families, "care_database_up") == 1
