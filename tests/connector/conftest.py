"""Shared fixtures for connector tests: a migrated, empty database on SQLite and PostgreSQL.

``database`` runs each test twice: on a SQLite file and on PostgreSQL. The PostgreSQL run needs
``CARE_TEST_DATABASE_URL`` (for example
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) and is skipped without it. One
throw-away database ``care_test_<random>`` is created on that server per test session and
dropped at the end; each test starts from empty tables.

The browser tests share ``browser``: Debian's Chromium (:data:`CHROMIUM`) launched headless by
Playwright, which never downloads a browser here; mark them ``needs_chromium``.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from werkzeug.test import EnvironBuilder, run_wsgi_app

from connector.customers import import_customers, validate_entries
from connector.db import Database, normalize_url

if TYPE_CHECKING:
    from flask import Flask
    from playwright.sync_api import Browser

    from connector.extension import ConnectorState

TEST_URL_VARIABLE = "CARE_TEST_DATABASE_URL"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: install Debian's Chromium with "
    "`apt-get update && apt-get install -y chromium` to run the browser test",
)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; each test gets a copy (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    database = Database.from_url(f"sqlite:///{path}")
    database.upgrade()
    database.dispose()  # The last connection to close checkpoints the WAL into the file.
    return path


@pytest.fixture(scope="session")
def _postgresql() -> Iterator[tuple[Database, list[str]]]:
    """A fresh PostgreSQL database for this session, migrated, and its table names."""
    url = os.environ.get(TEST_URL_VARIABLE)
    if not url:
        pytest.skip(f"{TEST_URL_VARIABLE} is not set: PostgreSQL tests skipped")
    server_url = make_url(normalize_url(url))
    name = f"care_test_{secrets.token_hex(6)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database = Database.from_url(server_url.set(database=name).render_as_string(False))
    try:
        database.upgrade()
        tables = [t for t in inspect(database.engine).get_table_names() if t != "alembic_version"]
        yield database, tables
    finally:
        database.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database with empty tables (SQLite file, then PostgreSQL)."""
    if request.param == "sqlite":
        path = tmp_path / "care.sqlite3"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        database = Database.from_url(f"sqlite:///{path}")
        yield database
        database.dispose()
        return
    yield request.getfixturevalue("postgresql_database")


@pytest.fixture
def postgresql_database(_postgresql: tuple[Database, list[str]]) -> Database:
    """The session's PostgreSQL database with empty tables (for PostgreSQL-only behaviour)."""
    database, tables = _postgresql
    with database.engine.begin() as connection:
        listed = ", ".join(f'"{table}"' for table in tables)
        connection.execute(text(f"TRUNCATE {listed} RESTART IDENTITY CASCADE"))
    return database


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def seed_customers(st: ConnectorState, entries: Sequence[dict[str, Any]], *, at: datetime) -> None:
    """Import ``entries`` (customers as in the import file) into ``st``'s database, as of
    ``at``, the way ``care-connector customers import`` does."""
    policy = st.settings.policy
    records = validate_entries(entries, policy=policy, desks=st.settings.desks.keys())
    with st.database.transaction() as session:
        import_customers(session, records, policy=policy, at=at)


class CountingBody(io.RawIOBase):
    """A request body of ``size`` spaces, made as it is read (never held whole), that counts
    how many bytes the server read from it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = b" " * n
        self.read_bytes += n
        return n


def post_stream(
    app: Flask,
    path: str,
    stream: io.RawIOBase,
    *,
    headers: dict[str, str] | None = None,
    **environ: Any,
) -> tuple[int, Any]:
    """POST ``stream`` as JSON to ``path`` through the WSGI interface, with no Content-Length
    unless ``environ`` sets one (the test client always computes one); the status and the
    JSON answer."""
    built = EnvironBuilder(
        path=path, method="POST", content_type="application/json", headers=headers
    ).get_environ()
    built.pop("CONTENT_LENGTH", None)
    built.update({"wsgi.input": stream, **environ})
    chunks, status, _ = run_wsgi_app(app.wsgi_app, built, buffered=True)
    return int(status.split()[0]), json.loads(b"".join(chunks))
