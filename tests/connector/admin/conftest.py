"""Fixtures for the admin API tests: a connector with one Zendesk desk, named admin tokens,
four customers, and helpers that send real-shaped, signed Zendesk deliveries through the
pipeline (intake, worker, outbox against ``responses``).

Runs on SQLite and on PostgreSQL (the ``database`` fixture of ``tests/connector``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from connector import create_app
from connector.db import Database
from connector.extension import ConnectorState
from connector.models import Ticket
from connector.runner import drain
from tests.connector.conftest import seed_customers

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "zendesk"
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # Tuesday 14:00 in the support zone (GMT+4)
BASE = "https://shop.zendesk.com"
SECRET = "admin-test-webhook-secret"
ALICE = "alice-admin-token-0123456789"
BOB = "bob-admin-token-9876543210"

CUSTOMERS: list[dict[str, Any]] = [
    {
        "email": "vip@shop.example",
        "name": "Vera Viper",
        "subscriptions": [{"plan": "vip", "starts_on": "2026-01-01", "ends_on": "2026-12-31"}],
        "upgrades_until": "lifetime",
        "identities": {"zendesk": ["1001"]},
    },
    {
        "email": "std@shop.example",
        "name": "Stan Standard",
        "subscriptions": [{"plan": "standard", "starts_on": "2026-01-01", "ends_on": "2026-12-31"}],
    },
    {
        "email": "free@shop.example",
        "name": "Fred Free",
        "licenses": [
            {
                "ref": "MV-1",
                "product": "multi-vendor",
                "kind": "first",
                "purchased_on": "2026-03-01",
            }
        ],
    },
    {
        "email": "credits@shop.example",
        "name": "Anna Credits",
        "locale": "ru",
        "licenses": [
            {"ref": "CS-1", "product": "cs-cart", "kind": "first", "purchased_on": "2025-01-10"}
        ],
        "upgrades_until": "2027-01-10",
        "credit_purchases": [{"ref": "order-1", "credits": 70, "purchased_on": "2026-02-01"}],
        "identities": {"zendesk": ["5005"]},
    },
]


def config(database: Database, *, tokens: dict[str, str] | None = None) -> dict[str, Any]:
    """The connector's settings for these tests (a dict in the TOML's shape)."""
    return {
        "database": {"url": database.url},
        "server": {"public_url": "https://care.shop.example"},
        "admin": {
            "tokens": tokens
            if tokens is not None
            else {
                "alice": "CARE_TEST_ADMIN_ALICE",
                "bob": "CARE_TEST_ADMIN_BOB",
                "carol": "CARE_TEST_ADMIN_CAROL_UNSET",
            }
        },
        "desks": {
            "zendesk": {
                "adapter": "zendesk",
                "base_url": BASE,
                "secret_env": ["CARE_TEST_ZD_SECRET"],
                "email": "bot@shop.example",
                "token_env": "CARE_TEST_ZD_TOKEN",
                "api_user_id": "900",
                "max_attempts": 3,
                "fields": {
                    "care_category": "360001234567",
                    "care_price": "360001234568",
                    "care_preapproval": "360001234569",
                },
            }
        },
    }


def desk_environment(monkeypatch: pytest.MonkeyPatch, *, approval_key: bool = True) -> None:
    """The Zendesk desk's webhook secret and API token in the environment, and the approval
    key (``approval_key=False``: none, so the connector keeps its own in the database)."""
    monkeypatch.setenv("CARE_TEST_ZD_SECRET", SECRET)
    monkeypatch.setenv("CARE_TEST_ZD_TOKEN", "api-token")
    if approval_key:
        monkeypatch.setenv("CARE_SECRET_KEY", "approval-key")
    else:
        monkeypatch.delenv("CARE_SECRET_KEY", raising=False)


def admin_app(
    settings: dict[str, Any], *, imported_at: datetime = NOW - timedelta(days=30)
) -> Flask:
    """``create_app(settings)`` with its clock stopped at ``NOW`` and ``CUSTOMERS`` imported
    as of ``imported_at``."""
    app = create_app(settings)
    st: ConnectorState = app.extensions["care_connector"]
    st.clock = lambda: NOW
    seed_customers(st, CUSTOMERS, at=imported_at)
    return app


@pytest.fixture
def app(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CARE_TEST_ADMIN_ALICE", ALICE)
    monkeypatch.setenv("CARE_TEST_ADMIN_BOB", BOB)
    monkeypatch.delenv("CARE_TEST_ADMIN_CAROL_UNSET", raising=False)
    desk_environment(monkeypatch)
    app = admin_app(config(database))
    yield app
    app.extensions["care_connector"].database.dispose()


@pytest.fixture
def st(app: Flask) -> ConnectorState:
    return app.extensions["care_connector"]  # type: ignore[no-any-return]


@dataclass
class Api:
    """A test client that sends a bearer token (``token=None``: none)."""

    client: FlaskClient
    token: str | None = ALICE

    def _headers(self, token: str | None, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def get(self, path: str, *, token: str | None = ALICE, **kwargs: Any) -> Any:
        headers = self._headers(token, kwargs.pop("headers", None))
        return self.client.get(f"/admin/api{path}", headers=headers, **kwargs)

    def post(self, path: str, json: Any = None, *, token: str | None = ALICE, **kwargs: Any) -> Any:
        headers = self._headers(token, kwargs.pop("headers", None))
        if json is None and "data" not in kwargs:
            return self.client.post(f"/admin/api{path}", headers=headers, **kwargs)
        return self.client.post(f"/admin/api{path}", json=json, headers=headers, **kwargs)


@pytest.fixture
def api(app: Flask) -> Api:
    return Api(app.test_client())


def sign(secret: str, ts: str, body: bytes) -> str:
    """Zendesk's webhook signature: base64(HMAC-SHA256(secret, timestamp + body))."""
    digest = hmac.new(secret.encode(), ts.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def ticket_body(
    ticket_id: str,
    email: str,
    *,
    subject: str = "How to set up shipping methods?",
    description: str = "Where can I find the shipping settings?",
    tags: str = "",
    requester_id: str = "7007",
    event: str = "created",
) -> dict[str, Any]:
    """A Zendesk trigger delivery (the fixture) for one ticket."""
    body = copy.deepcopy(json.loads((FIXTURES / "trigger_created.json").read_text()))
    body["event"] = event
    body["ticket"].update(
        id=ticket_id,
        subject=subject,
        description=description,
        tags=tags,
        priority="Normal",
        created_at="2026-03-10T09:58:00Z",
        updated_at="2026-03-10T09:58:00Z",
        fields={"360001234567": "", "360001234568": "", "360001234569": ""},
    )
    body["requester"].update(id=requester_id, email=email, locale="en-US")
    body["current_user"] = {"id": requester_id}
    return body


Deliver = Callable[..., Any]


def signed_sender(client: FlaskClient) -> Deliver:
    """``send(body, secret=SECRET)``: POST a delivery to ``/hooks/zendesk`` through
    ``client``, signed with ``secret`` as Zendesk signs."""

    def send(body: dict[str, Any], *, secret: str = SECRET) -> Any:
        raw = json.dumps(body).encode()
        stamp = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = {
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
            "X-Zendesk-Webhook-Signature": sign(secret, stamp, raw),
            "X-Zendesk-Webhook-Invocation-Id": f"inv-{hashlib.sha256(raw).hexdigest()[:12]}",
        }
        return client.post(
            "/hooks/zendesk", data=raw, headers=headers, content_type="application/json"
        )

    return send


@pytest.fixture
def deliver(app: Flask) -> Deliver:
    """POST a delivery to ``/hooks/zendesk``, signed with ``secret``."""
    return signed_sender(app.test_client())


ZENDESK_WRITES = re.compile(rf"{re.escape(BASE)}/api/v2/tickets/\d+(/tags)?")


def desk_accepts_everything() -> None:
    """Every write-back to the desk succeeds (inside ``responses.activate``)."""
    responses.add(responses.PUT, ZENDESK_WRITES, json={"ticket": {}})


def run_pipeline(st: ConnectorState, *, status: int = 200) -> None:
    """Process pending events and send write-backs; the desk answers ``status`` to each."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.PUT, ZENDESK_WRITES, status=status, json={"ticket": {}})
        drain(st)


def make_ticket(st: ConnectorState, deliver: Deliver, ticket_id: str, email: str, **kw: Any) -> int:
    """A ticket created through the pipeline (the desk accepts every write-back); its id
    here."""
    assert deliver(ticket_body(ticket_id, email, **kw)).status_code == 200
    run_pipeline(st)
    with st.database.transaction(read_only=True) as session:
        found = session.scalar(select(Ticket.id).where(Ticket.external_id == ticket_id))
    assert found is not None
    return found


def customer_id(st: ConnectorState, email: str) -> int:
    from connector.customers import find_customer

    with st.database.transaction(read_only=True) as session:
        found = find_customer(session, email=email)
    assert found is not None
    return found
