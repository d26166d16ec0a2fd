"""The three apps bench/intake.py puts under gunicorn, as app factories, and their settings.

::

    gunicorn --pythonpath bench 'intake_apps:connector_app()'   # POST /hooks/zendesk
    gunicorn --pythonpath bench 'intake_apps:insert_app()'      # baseline: insert and commit
    gunicorn --pythonpath bench 'intake_apps:bare_app()'        # baseline: read the body

The factories read their database and help desk from the environment (:data:`ENV_DATABASE`,
:data:`ENV_DESK_URL`, the secret in :data:`ENV_SECRET`), so that one gunicorn command line
serves every database. Both baselines answer on the same path as the connector and with the
same small JSON body, so the three differ only in what happens between reading the body and
answering.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, Table, insert

from connector import create_app
from connector.db import Database

#: The database URL every factory uses.
ENV_DATABASE = "BENCH_INTAKE_DATABASE_URL"
#: The fake help desk's base URL (the worker writes back there; the intake never calls it).
ENV_DESK_URL = "BENCH_INTAKE_DESK_URL"
#: The variable the bench desk's ``secret_env`` names.
ENV_SECRET = "BENCH_INTAKE_ZENDESK_SECRET"
#: The variable the bench desk's ``token_env`` names.
ENV_TOKEN = "BENCH_INTAKE_ZENDESK_TOKEN"
#: The connector's own user in the bench desk: deliveries from it would be ignored.
API_USER_ID = "900"
#: Zendesk custom field ids of the bench desk.
FIELDS = {
    "care_category": "360001234567",
    "care_price": "360001234568",
    "care_preapproval": "360001234569",
}

#: The insert baseline's own table: the raw body and when it came, nothing else.
baseline_metadata = MetaData()
baseline_deliveries = Table(
    "bench_raw_deliveries",
    baseline_metadata,
    Column("id", Integer, primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("body", LargeBinary, nullable=False),
)


def bench_config(database_url: str, desk_url: str) -> dict[str, Any]:
    """The connector configuration of the benchmark: one Zendesk desk on ``desk_url``.

    :param database_url: a SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
    :param desk_url: the base URL of the fake help desk (``http://127.0.0.1:PORT``).
    """
    return {
        "database": {"url": database_url},
        "server": {"public_url": "https://care.bench.example"},
        "desks": {
            "zendesk": {
                "adapter": "zendesk",
                "base_url": desk_url,
                "secret_env": [ENV_SECRET],
                "email": "bot@bench.example",
                "token_env": ENV_TOKEN,
                "api_user_id": API_USER_ID,
                "fields": dict(FIELDS),
            }
        },
    }


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"{name} is not set")
    return value


def connector_app() -> Flask:
    """The connector itself (``create_app`` with :func:`bench_config`)."""
    return create_app(
        bench_config(_required(ENV_DATABASE), os.environ.get(ENV_DESK_URL, "http://127.0.0.1:9"))
    )


def bare_app() -> Flask:
    """Baseline (a): read the body whole, answer 200."""
    app = Flask("bench_bare")

    @app.post("/hooks/<desk>")
    def hook(desk: str) -> Response:
        request.get_data(cache=False)
        return jsonify({"status": "accepted"})

    return app


def insert_app() -> Flask:
    """Baseline (b): insert the raw body into a table of its own and commit, one transaction
    per request, through the connector's own :class:`~connector.db.Database` (the same engine
    options, SQLite pragmas and ``BEGIN IMMEDIATE``)."""
    database = Database.from_url(_required(ENV_DATABASE))
    app = Flask("bench_insert")

    @app.post("/hooks/<desk>")
    def hook(desk: str) -> Response:
        body = request.get_data(cache=False)
        with database.transaction() as session:
            session.execute(
                insert(baseline_deliveries).values(received_at=datetime.now(UTC), body=body)
            )
        return jsonify({"status": "accepted"})

    return app
