"""One contract every adapter passes, run over the registry through the real connector.

Each adapter's test package provides ``SUPPORT`` (``tests/adapters/<key>/support.py``): how to
sign a delivery, its fixtures per event type, a ticket-created delivery and the write-back
stubs. The same ticket and the same customers go through every desk: the decision must be the
same everywhere, in the end-to-end path and in ``simulate``.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from sqlalchemy import func, select

from adapters import ADAPTERS
from adapters.base import HelpdeskClient
from adapters.errors import HelpdeskAPIError
from connector import create_app, simulate
from connector.customers import import_customers, validate_entries
from connector.extension import ConnectorState
from connector.models import Event, OutboxAction
from connector.runner import drain
from tests.adapters.support import AdapterSupport

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
SECRETS = {"CARE_CONTRACT_SECRET_NEW": "contract-new", "CARE_CONTRACT_SECRET_OLD": "contract-old"}
CUSTOMERS = [
    {
        "email": "vip@shop.example",
        "name": "Vera",
        "subscriptions": [{"plan": "vip", "starts_on": "2026-01-01", "ends_on": "2026-12-31"}],
        "upgrades_until": "lifetime",
    },
    {
        "email": "credits@shop.example",
        "name": "Anna",
        "licenses": [
            {"ref": "CS-1", "product": "cs-cart", "kind": "first", "purchased_on": "2025-01-10"}
        ],
        "upgrades_until": "2027-01-10",
        "credit_purchases": [{"ref": "o-1", "credits": 70, "purchased_on": "2026-02-01"}],
    },
]
TICKETS = [
    ("vip@shop.example", "How to set up shipping methods?", "Where are the shipping settings?"),
    ("credits@shop.example", "How to set up shipping methods?", "Where are the settings?"),
    ("credits@shop.example", "Upgrade our store", "Please upgrade from 4.3.1 to 4.3.9"),
]
COMPARED = ("plan", "category", "credits", "charged", "approval_required", "unknown_customer")


def supports() -> list[AdapterSupport]:
    found = []
    for key in sorted(ADAPTERS):
        module = importlib.import_module(f"tests.adapters.{key}.support")
        found.append(module.SUPPORT)
    return found


SUPPORTS = supports()


def test_every_registered_adapter_has_contract_support() -> None:
    assert [s.key for s in SUPPORTS] == sorted(ADAPTERS)
    assert set(BUILTIN) <= set(ADAPTERS)


BUILTIN = ["zendesk", "freshdesk", "zammad", "helpscout", "rt"]


@pytest.mark.parametrize("key", BUILTIN)
def test_every_builtin_desk_can_notify_a_customer(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Expiry notices need ``notify_customer``: no built-in desk keeps the default, which
    dead-letters them (each client's tests check its requests, test_jobs the whole path)."""
    (support,) = [s for s in SUPPORTS if s.key == key]
    app = make_app(support, tmp_path, monkeypatch)
    client = app.extensions["care_connector"].client(key)
    assert type(client).notify_customer is not HelpdeskClient.notify_customer
    app.extensions["care_connector"].database.dispose()


@pytest.fixture(params=SUPPORTS, ids=lambda s: s.key)
def support(request: pytest.FixtureRequest) -> AdapterSupport:
    return request.param  # type: ignore[no-any-return]


def make_app(
    support: AdapterSupport,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    secrets: bool = True,
) -> Flask:
    for name, value in {**support.env, **SECRETS}.items():
        monkeypatch.setenv(name, value)
    desk = dict(support.desk)
    if secrets:
        desk["secret_env"] = list(SECRETS)
    app = create_app(
        {
            "database": {"url": f"sqlite:///{tmp_path / f'{support.key}.sqlite3'}"},
            "desks": {support.key: desk},
        }
    )
    st = app.extensions["care_connector"]
    st.clock = lambda: NOW
    records = validate_entries(CUSTOMERS, policy=st.settings.policy, desks=st.settings.desks.keys())
    with st.database.transaction() as session:
        import_customers(session, records, policy=st.settings.policy, at=NOW)
    return app


@pytest.fixture
def app(
    support: AdapterSupport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    app = make_app(support, tmp_path, monkeypatch)
    yield app
    app.extensions["care_connector"].database.dispose()


def deliver(
    app: Flask, support: AdapterSupport, body: bytes, headers: dict[str, str], secret: str | None
) -> Any:
    sent = dict(headers)
    if secret is not None:
        sent = support.sign(body, headers, secret, NOW)
    sent.setdefault("Content-Type", "application/json")
    return app.test_client().post(f"/hooks/{support.key}", data=body, headers=sent)


def test_every_event_type_has_a_fixture_that_parses(support: AdapterSupport) -> None:
    adapter_cls = ADAPTERS[support.key]
    missing = set(adapter_cls.event_types) - set(support.event_fixtures)
    assert not missing, f"no fixture for {sorted(missing)}"
    for code, name in support.event_fixtures.items():
        body = support.fixture(name)
        headers = support.fixture_headers(name)
        adapter = adapter_cls(_desk(support))
        events = adapter.parse(headers, body, delivery_key="k")
        assert events, f"{code}: {name} parsed into no event"
        assert all(e.desk == support.key and e.ticket_id for e in events)


def _desk(support: AdapterSupport) -> Any:
    from connector.config import load_settings

    settings = load_settings(
        {"desks": {support.key: dict(support.desk)}},
        environ=dict(support.env),
    )
    return settings.desks[support.key]


def test_bad_signature_is_refused(app: Flask, support: AdapterSupport) -> None:
    body, headers = support.ticket_created("900", "1", "vip@shop.example", "Hi", "there")
    answer = deliver(app, support, body, headers, "not-the-secret")
    assert answer.status_code == 401
    assert answer.get_json()["code"] == 401


def test_missing_signature_is_refused(app: Flask, support: AdapterSupport) -> None:
    body, headers = support.ticket_created("900", "1", "vip@shop.example", "Hi", "there")
    assert deliver(app, support, body, headers, None).status_code == 401


def test_no_secret_configured_fails_closed_and_logs_it(
    support: AdapterSupport,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(support, tmp_path, monkeypatch, secrets=False)
    body, headers = support.ticket_created("900", "1", "vip@shop.example", "Hi", "there")
    with caplog.at_level(logging.ERROR, logger="care_connector.config"):
        answer = deliver(app, support, body, headers, "contract-new")
    assert answer.status_code == 401
    assert any(r.name == "care_connector.config" for r in caplog.records)
    app.extensions["care_connector"].database.dispose()


def test_rotated_secret_is_accepted(app: Flask, support: AdapterSupport) -> None:
    body, headers = support.ticket_created("901", "1", "vip@shop.example", "Hi", "there")
    assert deliver(app, support, body, headers, "contract-old").status_code == 200


def test_unknown_event_is_ignored_and_logged(
    app: Flask, support: AdapterSupport, caplog: pytest.LogCaptureFixture
) -> None:
    body, headers = support.unknown_event()
    with caplog.at_level(logging.INFO, logger="care_connector.intake"):
        answer = deliver(app, support, body, headers, "contract-new")
    assert answer.status_code == 200 and answer.get_json() == {"status": "ignored"}
    assert any("ignored" in r.getMessage() for r in caplog.records)


def test_duplicate_delivery_is_taken_once(app: Flask, support: AdapterSupport) -> None:
    body, headers = support.ticket_created("902", "1", "vip@shop.example", "Hi", "there")
    assert deliver(app, support, body, headers, "contract-new").get_json()["status"] == "accepted"
    assert deliver(app, support, body, headers, "contract-new").get_json()["status"] == "duplicate"
    st: ConnectorState = app.extensions["care_connector"]
    with st.database.transaction(read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 1


def run_ticket(
    app: Flask, support: AdapterSupport, ticket_id: str, ticket: tuple[str, str, str]
) -> dict[str, Any]:
    email, subject, description = ticket
    body, headers = support.ticket_created(ticket_id, f"r-{ticket_id}", email, subject, description)
    st: ConnectorState = app.extensions["care_connector"]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        support.stub_writes(mock, ticket_id)
        assert deliver(app, support, body, headers, "contract-new").status_code == 200
        drain(st)
        writes = [c for c in mock.calls if c.request.method != "GET"]
    with st.database.transaction(read_only=True) as session:
        event = session.scalars(select(Event).order_by(Event.id.desc())).first()
        assert event is not None and event.status == "done", event and event.error
        statuses = set(session.scalars(select(OutboxAction.status)))
    assert statuses == {"sent"}, statuses
    assert writes, "no write-back reached the desk"
    return {k: (event.decision or {}).get(k) for k in COMPARED}


def test_whole_path_for_a_vip_and_a_credits_customer(app: Flask, support: AdapterSupport) -> None:
    vip = run_ticket(app, support, "910", TICKETS[0])
    credits = run_ticket(app, support, "911", TICKETS[1])
    assert (vip["plan"], vip["charged"]) == ("vip", 0)
    assert (credits["plan"], credits["charged"], credits["category"]) == ("credits", 5, "question")


def test_server_errors_are_retried_not_lost(app: Flask, support: AdapterSupport) -> None:
    body, headers = support.ticket_created("920", "r-920", "vip@shop.example", "Hi", "how to")
    st: ConnectorState = app.extensions["care_connector"]
    base = re.escape(str(support.desk["base_url"]).rstrip("/"))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in ("GET", "PUT", "POST", "DELETE", "PATCH"):
            mock.add(method, re.compile(base + r"/.*"), status=503, json={"error": "down"})
        deliver(app, support, body, headers, "contract-new")
        drain(st)
    with st.database.transaction(read_only=True) as session:
        rows = list(session.scalars(select(OutboxAction)))
    assert rows and {r.status for r in rows} == {"pending"}
    assert all(r.attempts >= 1 and "503" in (r.last_error or "") for r in rows if r.attempts)


def test_rate_limit_is_a_retryable_error_with_the_wait(support: AdapterSupport) -> None:
    adapter = ADAPTERS[support.key](_desk(support))
    client = adapter.client()
    base = str(support.desk["base_url"]).rstrip("/")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in ("GET", "PUT", "POST", "DELETE"):
            mock.add(
                method,
                re.compile(re.escape(base) + r"/.*"),
                status=429,
                headers={"Retry-After": "17", "X-RateLimit-Retry-After": "17"},
                body="slow down",
            )
        with pytest.raises(HelpdeskAPIError) as caught:
            client.add_note("930", "note\n\n[care:m]", marker="m")
    assert caught.value.retry_after == 17 and not caught.value.permanent


def test_same_decision_on_every_desk_and_in_simulate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    customers = tmp_path / "customers.json"
    customers.write_text(json.dumps({"customers": CUSTOMERS}), encoding="utf-8")
    seen: dict[str, list[dict[str, Any]]] = {}
    for support in SUPPORTS:
        app = make_app(support, tmp_path, monkeypatch)
        st: ConnectorState = app.extensions["care_connector"]
        results = [run_ticket(app, support, str(940 + i), t) for i, t in enumerate(TICKETS)]
        paths = []
        for i, ticket in enumerate(TICKETS):
            body, headers = support.ticket_created(str(940 + i), f"r-{940 + i}", *ticket)
            path = tmp_path / f"{support.key}-{i}.json"
            path.write_bytes(body)
            if headers:
                (tmp_path / f"{support.key}-{i}.headers.json").write_text(json.dumps(headers))
            paths.append(path)
        outcome = simulate.run(
            st.settings, desk=support.key, payloads=paths, customers=customers, now=NOW
        )
        simulated = [{k: r.get(k) for k in COMPARED if k in r} for r in outcome.results]
        assert simulated == [{k: v for k, v in r.items() if k in simulated[0]} for r in results]
        seen[support.key] = results
        st.database.dispose()
    first = next(iter(seen.values()))
    assert all(results == first for results in seen.values()), seen
