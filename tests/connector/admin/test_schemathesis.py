"""Property-based run of the admin API against its own OpenAPI document: no input gives a 500.

schemathesis loads ``/admin/api/openapi.json`` from the Flask app over WSGI (with a valid
token) and, for every documented operation, sends generated requests (valid and invalid ids,
query strings and bodies), checking only ``not_a_server_error``. The example count is
bounded so the run takes seconds. The database is SQLite with the test customers and a few
tickets, deliveries and write-backs made by the real pipeline, so small ids hit real rows.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from connector.db import Database
from connector.extension import ConnectorState
from tests.connector.admin.conftest import (
    ALICE,
    NOW,
    SECRET,
    admin_app,
    config,
    desk_environment,
    run_pipeline,
    sign,
    ticket_body,
)

AUTH = {"Authorization": f"Bearer {ALICE}"}


@pytest.fixture
def seeded_app(
    tmp_path: Path, _sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    """The connector on a SQLite copy, with customers, tickets and a dead-lettered write-back."""
    import json

    path = tmp_path / "care.sqlite3"
    shutil.copyfile(_sqlite_template, path)
    database = Database.from_url(f"sqlite:///{path}")
    monkeypatch.setenv("CARE_TEST_ADMIN_ALICE", ALICE)
    desk_environment(monkeypatch)
    app = admin_app(config(database), imported_at=NOW)
    st: ConnectorState = app.extensions["care_connector"]
    client = app.test_client()
    stamp = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    for n, email in enumerate(("credits@shop.example", "vip@shop.example", "nobody@x.example")):
        raw = json.dumps(ticket_body(str(500 + n), email)).encode()
        client.post(
            "/hooks/zendesk",
            data=raw,
            content_type="application/json",
            headers={
                "X-Zendesk-Webhook-Signature-Timestamp": stamp,
                "X-Zendesk-Webhook-Signature": sign(SECRET, stamp, raw),
            },
        )
    run_pipeline(st, status=422)  # every write-back dead-lettered
    yield app
    database.dispose()
    st.database.dispose()


@pytest.fixture
def admin_schema(seeded_app: Flask) -> Any:
    return schemathesis.openapi.from_wsgi("/admin/api/openapi.json", seeded_app, headers=AUTH)


schema = schemathesis.pytest.from_fixture("admin_schema")


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gives_a_server_error(case: Any) -> None:
    response = case.call(headers=AUTH)
    case.validate_response(response, checks=[not_a_server_error])
