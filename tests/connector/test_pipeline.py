"""The webhook pipeline end to end with Zendesk: intake, worker, outbox, write-back.

Each test posts real-shaped Zendesk deliveries through the Flask test client with computed
signatures, runs the workers until idle, and checks with ``responses`` the exact write-backs
(every request also validated against Zendesk's OpenAPI document), the ledger and the
database. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from flask import Flask
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from connector import create_app, ledger, outbox, worker
from connector.customers import find_customer
from connector.db import Database
from connector.extension import ConnectorState
from connector.models import (
    Event,
    InboundDelivery,
    LedgerEntry,
    OutboxAction,
    QuotaAllowance,
    QuotaUsage,
    Ticket,
    TicketStatusHistory,
)
from connector.runner import drain
from tests.adapters.openapi import assert_zendesk_calls
from tests.connector.conftest import seed_customers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "zendesk"
SECRET = "pipeline-test-secret"
OLD_SECRET = "pipeline-rotated-out"
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # Tuesday 14:00 GMT+4
BASE = "https://shop.zendesk.com"
API_USER = "900"

CUSTOMERS = [
    {
        "email": "vip@shop.example",
        "name": "Vera",
        "subscriptions": [{"plan": "vip", "starts_on": "2026-01-01", "ends_on": "2026-12-31"}],
        "upgrades_until": "lifetime",
        "identities": {"zendesk": ["1001"]},
    },
    {
        "email": "std@shop.example",
        "name": "Stan",
        "subscriptions": [{"plan": "standard", "starts_on": "2026-01-01", "ends_on": "2026-12-31"}],
    },
    {
        "email": "free@shop.example",
        "name": "Fred",
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
        "name": "Anna",
        "locale": "ru",
        "licenses": [
            {"ref": "CS-1", "product": "cs-cart", "kind": "first", "purchased_on": "2025-01-10"}
        ],
        "upgrades_until": "2027-01-10",
        "credit_purchases": [{"ref": "order-1", "credits": 70, "purchased_on": "2026-02-01"}],
    },
]


def sign(secret: str, ts: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), ts.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def trigger(
    ticket_id: str,
    email: str,
    *,
    subject: str = "How to set up shipping methods?",
    description: str = "Where can I find the shipping settings?",
    tags: str = "",
    fields: dict[str, str] | None = None,
    event: str = "created",
    requester_id: str = "5005",
    actor: str | None = None,
    priority: str = "Normal",
    locale: str = "en-US",
) -> dict[str, Any]:
    body = copy.deepcopy(json.loads((FIXTURES / "trigger_created.json").read_text()))
    body["event"] = event
    body["ticket"].update(
        id=ticket_id,
        subject=subject,
        description=description,
        tags=tags,
        priority=priority,
        created_at="2026-03-10T09:58:00Z",
        updated_at="2026-03-10T09:58:00Z",
        fields={"360001234567": "", "360001234568": "", "360001234569": "", **(fields or {})},
    )
    body["requester"].update(id=requester_id, email=email, locale=locale)
    body["current_user"] = {"id": actor or requester_id}
    return body


@pytest.fixture
def app(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CARE_TEST_ZD_SECRET", SECRET)
    monkeypatch.setenv("CARE_TEST_ZD_OLD", OLD_SECRET)
    monkeypatch.setenv("CARE_TEST_ZD_TOKEN", "api-token")
    monkeypatch.setenv("CARE_SECRET_KEY", "approval-key")
    app = create_app(
        {
            "database": {"url": database.url},
            "server": {"public_url": "https://care.shop.example"},
            "desks": {
                "zendesk": {
                    "adapter": "zendesk",
                    "base_url": BASE,
                    "secret_env": ["CARE_TEST_ZD_SECRET", "CARE_TEST_ZD_OLD"],
                    "email": "bot@shop.example",
                    "token_env": "CARE_TEST_ZD_TOKEN",
                    "api_user_id": API_USER,
                    "max_attempts": 3,
                    "fields": {
                        "care_category": "360001234567",
                        "care_price": "360001234568",
                        "care_preapproval": "360001234569",
                    },
                },
                "observer": {
                    "adapter": "zendesk",
                    "base_url": BASE,
                    "mode": "observe",
                    "secret_env": ["CARE_TEST_ZD_SECRET"],
                },
            },
        }
    )
    st = app.extensions["care_connector"]
    st.clock = lambda: NOW
    seed_customers(st, CUSTOMERS, at=NOW - timedelta(days=30))
    yield app
    st.database.dispose()


@pytest.fixture
def st(app: Flask) -> ConnectorState:
    return app.extensions["care_connector"]  # type: ignore[no-any-return]


Post = Callable[..., Any]


@pytest.fixture
def post(app: Flask) -> Post:
    client = app.test_client()

    def send(
        body: dict[str, Any] | bytes,
        *,
        desk: str = "zendesk",
        secret: str | None = SECRET,
        ts: str | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        stamp = ts or NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
        sent = {"X-Zendesk-Webhook-Signature-Timestamp": stamp}
        if secret is not None:
            sent["X-Zendesk-Webhook-Signature"] = sign(secret, stamp, raw)
        sent.update(headers or {})
        return client.post(f"/hooks/{desk}", data=raw, headers=sent, content_type=content_type)

    return send


def ticket_calls() -> list[tuple[str, str, Any]]:
    calls = []
    for call in responses.calls:
        request = call.request
        body = json.loads(request.body) if request.body else None
        calls.append((request.method, request.url, body))
    return calls


def stub_writes(ticket_id: str) -> None:
    responses.put(f"{BASE}/api/v2/tickets/{ticket_id}", json={"ticket": {"id": int(ticket_id)}})
    responses.put(f"{BASE}/api/v2/tickets/{ticket_id}/tags", json={"tags": []})


def balance(st: ConnectorState, email: str) -> int:
    from connector.customers import find_customer

    with st.database.transaction(read_only=True) as session:
        customer_id = find_customer(session, email=email)
        assert customer_id is not None
        return ledger.balance(session, customer_id)


def note_text(body: dict[str, Any]) -> str:
    return str(body["ticket"]["comment"]["body"])


# --------------------------------------------------------------------------------------------
# A ticket created under each plan


@pytest.mark.parametrize(
    ("email", "priority", "plan", "charged", "approval"),
    [
        ("vip@shop.example", "urgent", "vip", 0, False),
        ("std@shop.example", "high", "standard", 0, False),
        ("free@shop.example", None, "free_period", 0, False),
        ("credits@shop.example", None, "credits", 5, False),
    ],
)
@responses.activate
def test_ticket_created_for_each_plan(
    st: ConnectorState,
    post: Post,
    email: str,
    priority: str | None,
    plan: str,
    charged: int,
    approval: bool,
) -> None:
    stub_writes("101")
    before = balance(st, email)
    answer = post(trigger("101", email))
    assert answer.status_code == 200 and answer.get_json() == {"status": "accepted"}
    assert len(responses.calls) == 0  # the webhook itself does no network IO

    drain(st)

    calls = ticket_calls()
    expected: list[tuple[str, str, Any]] = []
    if priority is not None:
        expected.append(("PUT", f"{BASE}/api/v2/tickets/101", {"ticket": {"priority": priority}}))
    tags = [f"care_plan_{plan}", "care_category_question"] + (["care_charged"] if charged else [])
    expected.append(("PUT", f"{BASE}/api/v2/tickets/101/tags", {"tags": tags}))
    assert calls[: len(expected)] == expected
    assert len(calls) == len(expected) + 1  # then the internal note
    method, url, body = calls[-1]
    assert (method, url) == ("PUT", f"{BASE}/api/v2/tickets/101")
    assert body["ticket"]["comment"]["public"] is False
    note = note_text(body)
    assert "[care:" in note
    assert "Care Connector estimate" in note  # the ticket's locale (en-US) wins
    assert ("Charged: 5 credits" in note) is (charged == 5)
    assert_zendesk_calls(responses.calls)
    assert balance(st, email) == before - charged
    with st.database.transaction(read_only=True) as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert (ticket.plan, ticket.category, ticket.credits_charged) == (plan, "question", charged)
        assert ticket.first_reply_due is not None
        assert session.scalar(select(func.count()).select_from(OutboxAction)) == len(calls)
        assert set(session.scalars(select(OutboxAction.status))) == {"sent"}


@responses.activate
def test_a_new_tickets_first_decision_is_one_insert(st: ConnectorState, post: Post) -> None:
    # The ticket row is written with its decided state (plan, charge, status) in one INSERT,
    # not inserted bare and updated; its status history row carries the new id.
    stub_writes("105")
    post(trigger("105", "credits@shop.example"))
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()[:3]))

    sa_event.listen(st.database.engine, "before_cursor_execute", record)
    try:
        assert [r.status for r in worker.run_once(st)] == ["done"]
    finally:
        sa_event.remove(st.database.engine, "before_cursor_execute", record)
    assert [s for s in statements if "tickets" in s.split()] == ["INSERT INTO tickets"]
    with st.database.transaction(read_only=True) as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert (ticket.plan, ticket.credits_charged, ticket.status) == ("credits", 5, "new")
        history = session.execute(select(TicketStatusHistory)).scalars().all()
        assert [(h.ticket_id, h.status) for h in history] == [(ticket.id, "new")]


@responses.activate
def test_credits_upgrade_asks_for_approval_in_russian(st: ConnectorState, post: Post) -> None:
    stub_writes("102")
    body = trigger(
        "102",
        "credits@shop.example",
        subject="Upgrade",
        description="Please upgrade our store from 4.3.1 to 4.3.9",
        locale="",
    )
    assert post(body).status_code == 200
    drain(st)
    calls = ticket_calls()
    assert calls[0] == (
        "PUT",
        f"{BASE}/api/v2/tickets/102/tags",
        {"tags": ["care_plan_credits", "care_category_upgrade", "care_awaiting_approval"]},
    )
    note, reply = calls[1][2], calls[2][2]
    assert note["ticket"]["comment"]["public"] is False
    assert reply["ticket"]["comment"]["public"] is True
    text = note_text(reply)
    assert text.startswith("Здравствуйте, Anna")  # the customer's locale: ru
    assert "50 кредитов" in text and "120" in text and "70" in text
    assert "https://care.shop.example/approvals/" in text
    assert_zendesk_calls(responses.calls)
    assert balance(st, "credits@shop.example") == 120  # nothing charged before agreement


@responses.activate
def test_preapproved_upgrade_within_ceiling_is_charged_at_once(
    st: ConnectorState, post: Post
) -> None:
    stub_writes("103")
    body = trigger(
        "103",
        "credits@shop.example",
        subject="Upgrade",
        description="from 4.3.1 to 4.3.9",
        fields={"360001234569": "60"},
    )
    post(body)
    drain(st)
    assert balance(st, "credits@shop.example") == 70
    with st.database.transaction(read_only=True) as session:
        entry = session.execute(
            select(LedgerEntry).where(LedgerEntry.kind == "charge")
        ).scalar_one()
        assert (entry.amount, entry.ticket, entry.source) == (-50, "zendesk:103", "webhook")


@responses.activate
def test_event_subscription_resolves_the_requester_through_the_api(
    st: ConnectorState, post: Post
) -> None:
    envelope = json.loads((FIXTURES / "event_ticket_created.json").read_text())
    envelope["detail"]["requester_id"] = "7007"
    envelope["detail"]["actor_id"] = "7007"
    envelope["detail"]["subject"] = "How to set up shipping methods?"
    envelope["detail"]["description"] = "Where can I find the shipping settings?"
    envelope["detail"]["created_at"] = "2026-03-10T09:58:00Z"
    ticket_id = envelope["detail"]["id"]
    responses.get(
        f"{BASE}/api/v2/users/7007",
        json={"user": {"id": 7007, "email": "std@shop.example", "name": "Stan", "locale": "en"}},
    )
    stub_writes(ticket_id)
    post(envelope)
    drain(st)
    post({**envelope, "id": "another-delivery"})  # a later event of another ticket? same one
    drain(st)
    lookups = [c for c in responses.calls if c.request.method == "GET"]
    assert len(lookups) == 1  # cached after the first lookup
    with st.database.transaction(read_only=True) as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert ticket.plan == "standard"
    assert_zendesk_calls(responses.calls)


@responses.activate
def test_unknown_requester_is_tagged_and_noted_never_charged(
    st: ConnectorState, post: Post
) -> None:
    stub_writes("104")
    post(trigger("104", "stranger@example.com"))
    drain(st)
    calls = ticket_calls()
    assert "care_unknown_customer" in calls[0][2]["tags"]
    assert [c[2]["ticket"]["comment"]["public"] for c in calls[1:]] == [False]
    assert "matches no customer" in note_text(calls[1][2])


@responses.activate
def test_observe_mode_posts_only_the_note(st: ConnectorState, post: Post) -> None:
    stub_writes("105")
    post(trigger("105", "credits@shop.example"), desk="observer")
    drain(st)
    calls = ticket_calls()
    assert len(calls) == 1 and calls[0][2]["ticket"]["comment"]["public"] is False
    assert balance(st, "credits@shop.example") == 120


@responses.activate
def test_the_connectors_own_changes_are_ignored(st: ConnectorState, post: Post) -> None:
    answer = post(trigger("106", "vip@shop.example", event="updated", actor=API_USER))
    assert answer.get_json() == {"status": "ignored"}
    drain(st)
    assert len(responses.calls) == 0


@responses.activate
def test_engineer_category_re_estimates_before_a_charge(st: ConnectorState, post: Post) -> None:
    stub_writes("107")
    post(trigger("107", "credits@shop.example", subject="Upgrade", description="4.3.1 to 4.3.9"))
    drain(st)
    first = len(responses.calls)
    later = trigger(
        "107",
        "credits@shop.example",
        event="updated",
        tags="care_category_configuration",
        actor="42",
    )
    post(later)
    drain(st)
    new = ticket_calls()[first:]
    assert "care_category_configuration" in new[0][2]["tags"]
    texts = [note_text(body) for _, _, body in new[1:]]
    assert any("10 кредитов" in t or "10 credits" in t for t in texts)
    with st.database.transaction(read_only=True) as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert (ticket.category, ticket.credits_estimated, ticket.approval_state) == (
            "configuration",
            10,
            "pending",
        )


# --------------------------------------------------------------------------------------------
# Intake: every bad input gets its clear 4xx, and is kept


def test_duplicate_delivery_is_processed_once(st: ConnectorState, post: Post) -> None:
    with responses.RequestsMock() as mock:
        mock.put(f"{BASE}/api/v2/tickets/108", json={})
        mock.put(f"{BASE}/api/v2/tickets/108/tags", json={})
        body = trigger("108", "credits@shop.example")
        headers = {"X-Zendesk-Webhook-Invocation-Id": "inv-1"}
        assert post(body, headers=headers).get_json() == {"status": "accepted"}
        assert post(body, headers=headers).get_json() == {"status": "duplicate"}
        drain(st)
        assert post(body, headers=headers).get_json() == {"status": "duplicate"}
        drain(st)
    assert balance(st, "credits@shop.example") == 115
    with st.database.transaction(read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(InboundDelivery)) == 3
        assert session.scalar(select(func.count()).select_from(Event)) == 1


def test_an_accepted_delivery_is_stored_whole_with_its_event(
    st: ConnectorState, post: Post
) -> None:
    # PostgreSQL stores it with one statement on the driver, SQLite through SQLAlchemy: the
    # rows read back the same on both.
    body = trigger("107", "vip@shop.example")
    answer = post(body, headers={"X-Zendesk-Webhook-Invocation-Id": "inv-whole"})
    assert answer.get_json() == {"status": "accepted"}
    with st.database.transaction(read_only=True) as session:
        delivery = session.scalars(select(InboundDelivery)).one()
        event = session.scalars(select(Event)).one()
    assert delivery.desk == "zendesk" and delivery.received_at == NOW
    assert delivery.received_at.tzinfo is not None
    assert delivery.body == json.dumps(body).encode()
    assert delivery.headers["X-Zendesk-Webhook-Invocation-Id"] == "inv-whole"
    assert delivery.content_type == "application/json" and delivery.remote_ip == "127.0.0.1"
    assert (delivery.status_code, delivery.outcome, delivery.error) == (200, "accepted", None)
    assert delivery.delivery_key == event.delivery_key
    assert (event.desk, event.delivery_id, event.ticket_key) == (
        "zendesk",
        delivery.id,
        "zendesk:107",
    )
    assert (event.type, event.status, event.attempts) == ("ticket.created", "pending", 0)
    assert event.created_at == NOW
    assert event.payload["ticket_id"] == "107"
    assert event.payload["requester_email"] == "vip@shop.example"
    assert event.payload["delivery_key"] == event.delivery_key


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        ({"secret": "wrong"}, 401, "signature"),
        ({"secret": None}, 401, "signature"),
        ({"ts": "2026-03-10T09:40:00Z"}, 401, "timestamp"),  # 20 minutes old
        ({"ts": "2026-03-10T10:20:00Z"}, 401, "timestamp"),  # 20 minutes ahead
        ({"content_type": "text/plain"}, 400, "JSON body"),
        ({"desk": "nope"}, 404, "Unknown desk"),
    ],
)
def test_refused_deliveries(
    st: ConnectorState, post: Post, kwargs: dict[str, Any], status: int, fragment: str
) -> None:
    answer = post(trigger("109", "vip@shop.example"), **kwargs)
    assert answer.status_code == status
    body = answer.get_json()
    assert set(body) == {"code", "status", "message", "errors"} and body["code"] == status
    assert fragment.lower() in body["message"].lower()
    with st.database.transaction(read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 0
        kept = session.scalar(select(func.count()).select_from(InboundDelivery))
        assert kept == (0 if status == 404 else 1)  # refused deliveries are kept


def test_rotated_secret_is_accepted(post: Post) -> None:
    assert post(trigger("110", "vip@shop.example"), secret=OLD_SECRET).status_code == 200


def test_malformed_json_names_the_problem(st: ConnectorState, post: Post) -> None:
    answer = post(b'{"care_connector": 1, "ticket": ')
    assert answer.status_code == 400
    assert answer.get_json()["errors"]
    bad_field = trigger("111", "vip@shop.example")
    bad_field["ticket"]["id"] = {"not": "an id"}
    answer = post(bad_field)
    assert answer.status_code == 400
    assert any("ticket" in path for path in answer.get_json()["errors"])


def test_missing_secret_fails_closed(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    st = app.extensions["care_connector"]
    unsigned = create_app({"database": {"url": st.database.url}})  # default desks: no secrets
    unsigned.extensions["care_connector"].clock = lambda: NOW
    body = json.dumps(trigger("112", "vip@shop.example")).encode()
    stamp = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = unsigned.test_client().post(
        "/hooks/zendesk",
        data=body,
        content_type="application/json",
        headers={
            "X-Zendesk-Webhook-Signature": sign("anything", stamp, body),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        },
    )
    assert answer.status_code == 401
    unsigned.extensions["care_connector"].database.dispose()


def test_oversized_body_is_refused_before_it_is_read(app: Flask, post: Post) -> None:
    limit = app.extensions["care_connector"].max_body_bytes
    answer = post(b"{" + b" " * limit + b"}")
    assert answer.status_code == 413
    assert answer.get_json()["code"] == 413


def test_other_methods_get_405(app: Flask) -> None:
    answer = app.test_client().get("/hooks/zendesk")
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    assert answer.get_json()["code"] == 405


def test_database_down_answers_503_with_retry_after(
    app: Flask, post: Post, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = app.extensions["care_connector"]
    broken = Database.from_url("postgresql+psycopg://nobody@127.0.0.1:1/none")
    monkeypatch.setattr(st, "database", broken)
    answer = post(trigger("113", "vip@shop.example"))
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "30"
    broken.dispose()


# --------------------------------------------------------------------------------------------
# Outbox: retries, dead letters, exactly once per marker


def queue_one(st: ConnectorState, post: Post, ticket_id: str) -> None:
    post(trigger(ticket_id, "vip@shop.example"))
    worker.run_once(st)


def advance(st: ConnectorState, seconds: float) -> None:
    current = st.clock()
    st.clock = lambda: current + timedelta(seconds=seconds)


@responses.activate
def test_429_then_200_honours_retry_after(st: ConnectorState, post: Post) -> None:
    queue_one(st, post, "120")
    responses.put(
        f"{BASE}/api/v2/tickets/120",
        status=429,
        headers={"Retry-After": "30"},
        body="Too Many Requests",
    )
    responses.put(f"{BASE}/api/v2/tickets/120", json={})
    responses.put(f"{BASE}/api/v2/tickets/120/tags", json={})
    first = outbox.run_once(st)
    assert [s.status for s in first] == ["retry"]
    with st.database.transaction(read_only=True) as session:
        row = session.execute(select(OutboxAction).order_by(OutboxAction.id)).scalars().first()
        assert row is not None and row.next_attempt_at >= NOW + timedelta(seconds=30)
    assert outbox.run_once(st) == []  # not before Retry-After
    advance(st, 31)
    assert {s.status for s in drain(st).sent} == {"sent"}
    statuses = [c.response.status_code for c in responses.calls]
    assert statuses == [429, 200, 200, 200]


@responses.activate
def test_500_three_times_dead_letters_and_blocks_nothing_else(
    st: ConnectorState, post: Post
) -> None:
    queue_one(st, post, "121")
    for _ in range(3):
        responses.put(f"{BASE}/api/v2/tickets/121", status=500, json={"error": "boom"})
    responses.put(f"{BASE}/api/v2/tickets/121", json={})
    responses.put(f"{BASE}/api/v2/tickets/121/tags", json={})
    for _ in range(3):
        outbox.run_once(st)
        advance(st, 700)
    with st.database.transaction(read_only=True) as session:
        rows = session.execute(select(OutboxAction).order_by(OutboxAction.id)).scalars().all()
        assert rows[0].kind == "priority" and rows[0].status == "dead"
        assert rows[0].attempts == 3 and "500" in (rows[0].last_error or "")
    drain(st)
    with st.database.transaction(read_only=True) as session:
        assert [
            r.status for r in session.scalars(select(OutboxAction).order_by(OutboxAction.id))
        ] == [
            "dead",
            "sent",
            "sent",
        ]


@responses.activate
def test_404_is_permanent(st: ConnectorState, post: Post) -> None:
    queue_one(st, post, "122")
    responses.put(f"{BASE}/api/v2/tickets/122", status=404, json={"error": "RecordNotFound"})
    responses.put(f"{BASE}/api/v2/tickets/122/tags", status=404, json={})
    drain(st)
    with st.database.transaction(read_only=True) as session:
        statuses = set(session.scalars(select(OutboxAction.status)))
        assert statuses == {"dead"}
    assert len(responses.calls) == 3  # each tried once, none retried


@responses.activate
def test_an_action_the_client_refuses_is_dead_lettered_not_stuck(st: ConnectorState) -> None:
    with st.database.transaction() as session:
        session.add(
            OutboxAction(
                desk="zendesk",
                ticket_id="",
                ticket_key="zendesk:notice:1",
                kind="notify",
                marker="expiry.bad",
                payload={
                    "email": "not an address",
                    "subject": "s",
                    "body": "b\n[care:expiry.bad]",
                },
                next_attempt_at=st.clock(),
            )
        )
    drain(st)
    with st.database.transaction(read_only=True) as session:
        row = session.scalars(select(OutboxAction)).one()
    assert row.status == "dead"
    assert row.last_error is not None and "cannot be sent" in row.last_error
    assert len(responses.calls) == 0


@responses.activate
def test_timeout_reads_back_and_posts_the_note_once(st: ConnectorState, post: Post) -> None:
    queue_one(st, post, "123")
    responses.put(f"{BASE}/api/v2/tickets/123/tags", json={})
    with st.database.transaction(read_only=True) as session:
        note = session.execute(select(OutboxAction).where(OutboxAction.kind == "note")).scalar_one()
        body = note.payload["body"]
    # priority goes through; the note times out after Zendesk applied it
    responses.put(f"{BASE}/api/v2/tickets/123", json={})
    responses.put(f"{BASE}/api/v2/tickets/123", body=requests.exceptions.ReadTimeout("slow"))
    responses.get(
        f"{BASE}/api/v2/tickets/123/comments",
        json={"comments": [{"id": 1, "body": body, "public": False}], "next_page": None},
    )
    drain(st)
    advance(st, 700)
    drain(st)
    puts = [c for c in responses.calls if c.request.method == "PUT"]
    notes = [c for c in puts if b'"comment"' in (c.request.body or b"")]
    assert len(notes) == 1  # sent once (timed out), then found by its marker, not sent again
    reads = [c for c in responses.calls if c.request.method == "GET"]
    assert len(reads) == 1
    with st.database.transaction(read_only=True) as session:
        assert set(session.scalars(select(OutboxAction.status))) == {"sent"}


@responses.activate
def test_worker_killed_before_commit_processes_exactly_once(
    st: ConnectorState, post: Post, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub_writes("124")
    post(trigger("124", "credits@shop.example"))

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed between claim and commit")

    monkeypatch.setattr(worker, "_queue_writebacks", crash)
    with pytest.raises(KeyboardInterrupt):
        worker.run_once(st)
    monkeypatch.undo()
    with st.database.transaction(read_only=True) as session:
        assert session.scalar(select(Event.status)) == "pending"
        assert (
            session.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "charge")
            )
            == 0
        )
    drain(st)
    drain(st)
    assert balance(st, "credits@shop.example") == 115
    with st.database.transaction(read_only=True) as session:
        assert session.scalar(select(Event.status)) == "done"
        assert session.scalar(select(func.count()).select_from(OutboxAction)) == 2


@responses.activate
def test_an_event_that_fails_leaves_the_rest_of_its_batch_decided_once(
    st: ConnectorState, post: Post, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch is first decided under one savepoint; the failure sends it through the
    # event-by-event path, and the events decided before the failure are not done twice.
    for ticket in ("301", "302", "303"):
        stub_writes(ticket)
        post(trigger(ticket, "credits@shop.example", requester_id=f"70{ticket}"))
    real_decide = worker.decide

    def decide(event: Any, *args: Any, **kwargs: Any) -> Any:
        if event.ticket_id == "302":
            raise ValueError("a rule that cannot decide this ticket")
        return real_decide(event, *args, **kwargs)

    monkeypatch.setattr(worker, "decide", decide)
    results = {r.status for r in worker.run_once(st)}
    assert results == {"done", "pending"}
    with st.database.transaction(read_only=True) as session:
        events = {
            e.ticket_key: (e.status, e.attempts, e.error) for e in session.scalars(select(Event))
        }
        assert events["zendesk:301"][0] == events["zendesk:303"][0] == "done"
        assert events["zendesk:302"][:2] == ("pending", 1)
        assert "cannot decide this ticket" in (events["zendesk:302"][2] or "")
        charges = session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "charge")
        )
        assert charges == 2  # one question each for 301 and 303, once
        rows = session.execute(select(OutboxAction.ticket_id, OutboxAction.kind)).all()
        per_ticket = {t: sorted(k for t2, k in rows if t2 == t) for t, _ in rows}
        assert sorted(per_ticket) == ["301", "303"]
        assert per_ticket["301"] == per_ticket["303"]  # one decision's write-backs each
        assert len(per_ticket["301"]) == len(set(per_ticket["301"]))
    monkeypatch.undo()
    drain(st)
    assert balance(st, "credits@shop.example") == 120 - 3 * 5  # a question is 5 credits
    with st.database.transaction(read_only=True) as session:
        assert set(session.scalars(select(Event.status))) == {"done"}
        assert (
            session.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "charge")
            )
            == 3
        )


@responses.activate
def test_events_decided_in_one_batch_see_each_others_quota_units(
    st: ConnectorState, post: Post
) -> None:
    # Two of a customer's tickets re-categorised as modifications in one batch, with one unit
    # left this month: the first takes it, the second must see it taken.
    for ticket in ("401", "402"):
        stub_writes(ticket)
        post(trigger(ticket, "std@shop.example", requester_id="7401"))
    drain(st)
    with st.database.transaction() as session:
        customer_id = find_customer(session, email="std@shop.example")
        session.add(
            QuotaAllowance(
                customer_id=customer_id,
                period="2026-03",
                kind=worker.QUOTA_KIND,
                allowance=1,
                opened_at=NOW,
            )
        )
    for ticket in ("401", "402"):
        later = trigger(
            ticket,
            "std@shop.example",
            event="updated",
            tags="care_category_modification",
            actor="42",
            requester_id="7401",
        )
        post(later)
    assert {r.status for r in worker.run_once(st)} == {"done"}
    with st.database.transaction(read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(QuotaUsage)) == 1
        counted = session.scalars(select(Ticket.external_id).join(QuotaUsage)).all()
        assert counted == ["401"]


@pytest.mark.parametrize("solved", [False, True], ids=["first-open", "first-solved"])
@responses.activate
def test_events_decided_in_one_batch_see_each_others_ticket_status(
    st: ConnectorState, post: Post, solved: bool
) -> None:
    # A customer's ticket solved and their next ticket opened, in one batch: the new ticket's
    # queue count must see the first one solved (the note says nothing of a queue); with the
    # first one still open, the note counts both.
    for ticket in ("501", "502"):
        stub_writes(ticket)
    post(trigger("501", "std@shop.example", requester_id="7501"))
    drain(st)
    if solved:
        update = trigger("501", "std@shop.example", event="updated", actor="42")
        update["ticket"]["status"] = "Solved"
        post(update)
    post(trigger("502", "std@shop.example", requester_id="7501"))
    assert {r.status for r in worker.run_once(st)} == {"done"}
    with st.database.transaction(read_only=True) as session:
        notes = session.scalars(
            select(OutboxAction.payload).where(
                OutboxAction.ticket_id == "502", OutboxAction.kind == "note"
            )
        ).all()
    assert len(notes) == 1
    assert ("Queue: ticket 2 of 2" in notes[0]["body"]) is not solved
    assert ("Queue:" in notes[0]["body"]) is not solved


# --------------------------------------------------------------------------------------------
# Approvals through the desk: a reply, an engineer's tag; reminders


def comment(
    ticket_id: str, email: str, body: str, *, tags: str, author: str = "5005"
) -> dict[str, Any]:
    payload = trigger(ticket_id, email, event="comment", tags=tags, actor=author)
    payload["comment"] = {"body": body, "public": "true", "author_id": author}
    return payload


def upgrade_pending(st: ConnectorState, post: Post, ticket_id: str) -> None:
    body = trigger(
        ticket_id, "credits@shop.example", subject="Upgrade", description="from 4.3.1 to 4.3.9"
    )
    post(body)
    drain(st)


@pytest.mark.parametrize(
    ("text", "locale", "confirmation"),
    [
        ("I agree, go ahead", "en-US", "50 credits have been charged"),
        ("Согласен, подтверждаю.\n\n> Please approve 50 credits", "ru", "списано 50 кредитов"),
    ],
)
@responses.activate
def test_requester_reply_approves_and_is_charged_once(
    st: ConnectorState, post: Post, text: str, locale: str, confirmation: str
) -> None:
    stub_writes("130")
    responses.delete(f"{BASE}/api/v2/tickets/130/tags", json={"tags": []})
    upgrade_pending(st, post, "130")
    before = len(responses.calls)
    answer = comment("130", "credits@shop.example", text, tags="care_awaiting_approval")
    answer["requester"]["locale"] = locale
    post(answer)
    drain(st)
    post(answer, headers={"X-Zendesk-Webhook-Invocation-Id": "again"})  # a second delivery
    drain(st)
    calls = ticket_calls()[before:]
    assert calls[0] == (
        "PUT",
        f"{BASE}/api/v2/tickets/130/tags",
        {"tags": ["care_approved", "care_charged"]},
    )
    assert calls[1] == (
        "DELETE",
        f"{BASE}/api/v2/tickets/130/tags",
        {"tags": ["care_awaiting_approval", "care_insufficient_balance"]},
    )
    public = [b for _, _, b in calls if b and "ticket" in b and b["ticket"]["comment"]["public"]]
    assert len(public) == 1 and confirmation in note_text(public[0])
    assert "70" in note_text(public[0])
    assert balance(st, "credits@shop.example") == 70
    assert_zendesk_calls(responses.calls)


@responses.activate
def test_engineer_tag_declines(st: ConnectorState, post: Post) -> None:
    stub_writes("131")
    responses.delete(f"{BASE}/api/v2/tickets/131/tags", json={"tags": []})
    upgrade_pending(st, post, "131")
    post(trigger("131", "credits@shop.example", event="updated", tags="care_declined", actor="42"))
    drain(st)
    assert balance(st, "credits@shop.example") == 120
    with st.database.transaction(read_only=True) as session:
        assert session.scalar(select(Ticket.approval_state)) == "declined"


@responses.activate
def test_one_reminder_after_two_business_days(st: ConnectorState, post: Post) -> None:
    from connector.reminders import send_approval_reminders

    stub_writes("132")
    upgrade_pending(st, post, "132")  # asked Tuesday 14:00 GMT+4
    assert send_approval_reminders(st, NOW + timedelta(days=1)) == 0  # 9 business hours
    thursday = NOW + timedelta(days=2, hours=1)  # 18 business hours and one more
    assert send_approval_reminders(st, thursday) == 1
    assert send_approval_reminders(st, thursday + timedelta(days=5)) == 0  # once
    st.clock = lambda: thursday
    drain(st)
    texts = [note_text(b) for _, _, b in ticket_calls() if b and "ticket" in b]
    reminders = [t for t in texts if "A reminder" in t]
    assert len(reminders) == 1 and "/approvals/" in reminders[0]
