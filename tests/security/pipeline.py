"""One desk's whole path with secrets everywhere, for the leakage tests: the connector with
webhook secrets (two, a rotation), desk credentials, a signing key, an admin token and a
metrics token, all from the environment; then forged, unsigned and genuine deliveries, an
approval estimate, and write-backs to a desk that answers 401 and 500 echoing the request's
``Authorization`` header and body, as a badly behaved proxy would.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import responses
from flask import Flask
from requests import PreparedRequest
from sqlalchemy import select

from connector import create_app
from connector.customers import import_customers, validate_entries
from connector.extension import ConnectorState
from connector.models import OutboxAction
from connector.runner import drain
from tests.adapters.hostile import NOW, Desk, registered_desks

WEBHOOK_SECRETS = {
    "CARE_LEAK_WEBHOOK_NEW": "leak-webhook-new-1234",
    "CARE_LEAK_WEBHOOK_OLD": "leak-webhook-old-5678",
}
OTHER_SECRETS = {
    "CARE_SECRET_KEY": "leak-approval-signing-key",
    "CARE_LEAK_ADMIN_A": "leak-admin-token-abcdef",
    "CARE_LEAK_METRICS": "leak-metrics-token-abcdef",
}
ADMIN_TOKEN = OTHER_SECRETS["CARE_LEAK_ADMIN_A"]
METRICS_TOKEN = OTHER_SECRETS["CARE_LEAK_METRICS"]
CUSTOMERS = [
    {
        "email": "credits@shop.example",
        "name": "Anna",
        "licenses": [
            {"ref": "CS-1", "product": "cs-cart", "kind": "first", "purchased_on": "2025-01-10"}
        ],
        "upgrades_until": "2027-01-10",
        "credit_purchases": [{"ref": "o-1", "credits": 500, "purchased_on": "2026-02-01"}],
    }
]
#: Every registered desk with test support (to sign with).
DESKS = [d for d in registered_desks() if d.support is not None]


def make_app(desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    assert desk.support is not None
    for name, value in {**desk.support.env, **WEBHOOK_SECRETS, **OTHER_SECRETS}.items():
        monkeypatch.setenv(name, value)
    section = {**desk.support.desk, "secret_env": list(WEBHOOK_SECRETS), "max_attempts": 2}
    app = create_app(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'leak.sqlite3'}"},
            "server": {"public_url": "https://care.shop.example"},
            "admin": {"tokens": {"alice": "CARE_LEAK_ADMIN_A"}},
            "metrics": {"token_env": "CARE_LEAK_METRICS"},
            "desks": {desk.key: section},
        }
    )
    st: ConnectorState = app.extensions["care_connector"]
    st.clock = lambda: NOW
    records = validate_entries(CUSTOMERS, policy=st.settings.policy, desks=[desk.key])
    with st.database.transaction() as session:
        import_customers(session, records, policy=st.settings.policy, at=NOW)
    return app


def secret_values(app: Flask, desk: Desk) -> dict[str, str]:
    """Name -> value of every secret configured (an OAuth client id is an identifier, not a
    secret, and is left out)."""
    configured = app.extensions["care_connector"].settings.desks[desk.key]
    credentials = {
        name: getattr(configured, name)
        for name in ("token", "api_key", "client_secret", "password")
        if len(getattr(configured, name)) >= 6
    }
    return {**credentials, **WEBHOOK_SECRETS, **OTHER_SECRETS}


@dataclass
class Traffic:
    """What the run sent: the credentials of every ``Authorization`` header (after the
    scheme), and the approval links' tokens."""

    credentials: list[str] = field(default_factory=list)
    approval_tokens: set[str] = field(default_factory=set)


def post(app: Flask, desk: Desk, body: bytes, headers: dict[str, str]) -> int:
    headers = {"Content-Type": "application/json", **headers}
    return app.test_client().post(f"/hooks/{desk.key}", data=body, headers=headers).status_code


def run_pipeline(app: Flask, desk: Desk) -> Traffic:
    assert desk.support is not None
    st: ConnectorState = app.extensions["care_connector"]
    traffic = Traffic()

    def echo(request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        authorization = request.headers.get("Authorization", "")
        traffic.credentials.append(authorization.partition(" ")[2] or authorization)
        body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
        echoed = {"error": "denied", "authorization": authorization, "request": body}
        status = 401 if len(traffic.credentials) % 2 else 500
        return status, {"Content-Type": "application/json"}, json.dumps(echoed)

    new, old = WEBHOOK_SECRETS.values()
    upgrade, headers = desk.support.ticket_created(
        "4401", "r-4401", "credits@shop.example", "Upgrade our store", "Upgrade 4.3.1 to 4.3.9"
    )
    question, question_headers = desk.support.ticket_created(
        "4402", "r-4402", "credits@shop.example", "Where is the setting?", "How to set it up"
    )
    assert post(app, desk, upgrade, desk.sign(upgrade, headers, secret="forged-secret")) == 401
    assert post(app, desk, upgrade, dict(headers)) == 401
    assert post(app, desk, upgrade, desk.sign(upgrade, headers, secret=new)) == 200
    assert post(app, desk, question, desk.sign(question, question_headers, secret=old)) == 200
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        base = re.escape(str(desk.support.desk["base_url"]).rstrip("/"))
        for method in ("GET", "PUT", "POST", "DELETE", "PATCH"):
            mock.add_callback(method, re.compile(base + r"/.*"), callback=echo)
        drain(st)
    with st.database.transaction(read_only=True) as session:
        payloads = [json.dumps(p) for p in session.scalars(select(OutboxAction.payload))]
    traffic.approval_tokens = set(re.findall(r"/approvals/([\w.\-]+)", " ".join(payloads)))
    assert traffic.credentials, "the outbox sent nothing: the write-back path was not exercised"
    assert traffic.approval_tokens, "no approval link was made"
    return traffic


def leaks(text: str, app: Flask, desk: Desk, traffic: Traffic) -> set[str]:
    """What of the secrets, the credentials sent and the approval tokens ``text`` shows."""
    found = {name for name, value in secret_values(app, desk).items() if value in text}
    found |= {f"Authorization {c[:6]}..." for c in traffic.credentials if len(c) >= 6 and c in text}
    found |= {f"approval token {t[:6]}..." for t in traffic.approval_tokens if t in text}
    return found
