"""SQL only through bound parameters.

A scan of ``adapters/`` and ``connector/`` finds every string built with an f-string,
``%`` or ``.format`` that reads as SQL, and checks that what it interpolates is on a short
list of identifiers and constants of the connector's own (table and column names from the
models, a pragma's number, a transaction mode); values always go as parameters. Then SQL
injection payloads go through the whole pipeline, on SQLite and PostgreSQL, and come back
verbatim, with every table intact.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from flask import Flask
from sqlalchemy import func, inspect, select

from connector import create_app
from connector.db import Database
from connector.extension import ConnectorState
from connector.models import Event, InboundDelivery, Ticket
from connector.runner import drain
from tests.adapters.hostile import NOW, Desk, registered_desks

ROOT = Path(__file__).resolve().parents[2]
SQL = re.compile(
    r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|PRAGMA|BEGIN|COPY|TRUNCATE|CREATE|DROP|ALTER|"
    r"WHERE|VALUES|ON CONFLICT|RETURNING)\b"
)
#: file -> the interpolations its SQL may contain: identifiers and constants, never values.
ALLOWED = {
    "connector/ledger.py": {"table.name", "names", "marks", "returned", "exprs", "selected"},
    "connector/db.py": {"SQLITE_BUSY_TIMEOUT_MS", "mode"},
    "connector/customers.py": {"quote(table.name)", "listed"},
    # The VALUES rows of the one-statement intake: numbered placeholders only.
    "connector/intake.py": {"rows"},
}


def _literal_text(node: ast.AST) -> str:
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def interpolated_sql() -> Iterator[tuple[str, int, str]]:
    """(file, line, interpolated expression) of every SQL string built from pieces."""
    for package in ("adapters", "connector"):
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            relative = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.JoinedStr) and SQL.search(_literal_text(node)):
                    for value in node.values:
                        if isinstance(value, ast.FormattedValue):
                            code = ast.get_source_segment(source, value.value) or "?"
                            yield relative, node.lineno, code
                elif (
                    isinstance(node, ast.BinOp)
                    and isinstance(node.op, ast.Mod | ast.Add)
                    and SQL.search(_literal_text(node.left) + _literal_text(node.right))
                ):
                    yield relative, node.lineno, ast.get_source_segment(source, node) or "?"
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "format"
                    and SQL.search(_literal_text(node.func.value))
                ):
                    yield relative, node.lineno, ast.get_source_segment(source, node) or "?"


def test_sql_interpolates_only_identifiers_and_constants() -> None:
    found = [
        f"{path}:{line}: {code}"
        for path, line, code in interpolated_sql()
        if code not in ALLOWED.get(path, set())
    ]
    assert not found, "pass values as bound parameters:\n" + "\n".join(found)


def test_the_allowed_list_is_still_needed() -> None:
    seen: dict[str, set[str]] = {}
    for path, _, code in interpolated_sql():
        seen.setdefault(path, set()).add(code)
    for path, codes in ALLOWED.items():
        assert codes <= seen.get(path, set()), (path, codes - seen.get(path, set()))


# --------------------------------------------------------------------------------------------
# Injection payloads through the pipeline

PAYLOADS = (
    "1'; DROP TABLE events; --",
    '" OR "1"="1',
    "x') ON CONFLICT DO NOTHING; DELETE FROM customers; --",
    "Robert'); TRUNCATE inbound_deliveries; --",
)
ZENDESK = next(d for d in registered_desks() if d.key == "zendesk")


@pytest.fixture
def app(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    for name, value in ZENDESK.env().items():
        monkeypatch.setenv(name, value)
    app = create_app({"database": {"url": database.url}, "desks": {"zendesk": ZENDESK.section()}})
    st: ConnectorState = app.extensions["care_connector"]
    st.clock = lambda: NOW
    yield app
    st.database.dispose()


def deliver(app: Flask, desk: Desk, ticket_id: str, email: str, subject: str) -> int:
    assert desk.support is not None
    body, headers = desk.support.ticket_created(ticket_id, ticket_id, email, subject, subject)
    signed = desk.sign(body, headers)
    answer = app.test_client().post(f"/hooks/{desk.key}", data=body, headers=signed)
    return answer.status_code


def test_injection_payloads_are_stored_verbatim(app: Flask) -> None:
    st: ConnectorState = app.extensions["care_connector"]
    for n, payload in enumerate(PAYLOADS):
        assert deliver(app, ZENDESK, f"{900 + n}", f"user{n}@shop.example", payload) == 200
        assert deliver(app, ZENDESK, payload, payload, payload) in (200, 400)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        base = re.escape(str(ZENDESK.section()["base_url"]))
        for method in ("GET", "PUT", "POST", "DELETE"):
            mock.add(method, re.compile(base + r"/.*"), json={"ticket": {"id": 1}, "tags": []})
        drain(st)
    with st.database.transaction(read_only=True) as session:
        tables = set(inspect(session.get_bind()).get_table_names())
        assert {"events", "customers", "inbound_deliveries", "tickets"} <= tables
        assert session.scalar(select(func.count()).select_from(InboundDelivery)) == 2 * len(
            PAYLOADS
        )
        subjects = set(session.scalars(select(Ticket.subject)))
        assert set(PAYLOADS) <= subjects
        stored = [json.loads(json.dumps(p)) for p in session.scalars(select(Event.payload))]
        assert {p["subject"] for p in stored} >= set(PAYLOADS)
