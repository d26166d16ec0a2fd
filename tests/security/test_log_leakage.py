"""No secret reaches the logs, end to end, on every registered desk.

The connector's logging (``configure_logging``, at DEBUG, so that every library logs too)
is captured while the whole path of tests/security/pipeline.py runs, then the approval page,
the admin sign-in and a metrics scrape, with good and bad credentials. The captured text
must hold none of the configured secrets (webhook secrets, desk credentials, the signing
key, admin and metrics tokens), none of the credentials sent in ``Authorization`` headers,
and no approval link's token.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from flask import Flask

from connector.logging_setup import configure_logging
from tests.adapters.hostile import Desk
from tests.security.pipeline import METRICS_TOKEN, leaks, run_pipeline


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_no_secret_reaches_the_logs(app: Flask, desk: Desk) -> None:
    stream = io.StringIO()
    configure_logging(
        app.extensions["care_connector"].settings, fmt="json", stream=stream, level="DEBUG"
    )
    traffic = run_pipeline(app, desk)
    client = app.test_client()
    for token in traffic.approval_tokens:
        client.get(f"/approvals/{token}")
    client.get("/admin/sign-in")
    client.post("/admin/sign-in", data={"token": "wrong-admin-token", "csrf": "x"})
    client.get("/metrics", headers={"Authorization": "Bearer wrong-metrics-token"})
    client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    logged = stream.getvalue()
    assert "dead" in logged and "***" in logged, "the write-back errors were not logged masked"
    leaked = leaks(logged, app, desk, traffic)
    assert not leaked, f"in the logs: {sorted(leaked)}"
