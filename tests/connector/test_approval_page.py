"""The approval page end to end: a Zendesk delivery asks for approval, the customer answers.

Each test posts a signed Zendesk trigger for a credits customer's upgrade, runs the worker,
takes the link from the queued public reply, and drives ``/approvals/<token>`` with the Flask
test client: the ledger, the ticket, the events and the queued write-backs are then checked
in the database. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as strat
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from connector import approval_page, approvals, create_app, ledger, worker
from connector.approval_page import Page, View
from connector.customers import find_customer
from connector.db import Database
from connector.extension import ConnectorState
from connector.models import Event, LedgerEntry, OutboxAction, Ticket
from connector.serialize import event_to_json
from rules.events import EventType, TicketEvent
from tests.connector.conftest import seed_customers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "zendesk"
SECRET = "approval-page-test-secret"
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # a Tuesday, within business hours
BASE = "https://shop.zendesk.com"
PUBLIC = "https://care.shop.example"
EMAIL = "credits@shop.example"

CUSTOMERS = [
    {
        # 50 credits granted with the license, 70 bought: a balance of 120.
        "email": EMAIL,
        "name": "Anna",
        "locale": "ru",
        "licenses": [
            {"ref": "CS-1", "product": "cs-cart", "kind": "first", "purchased_on": "2025-01-10"}
        ],
        "upgrades_until": "2027-01-10",
        "credit_purchases": [{"ref": "order-1", "credits": 70, "purchased_on": "2026-02-01"}],
    },
]


def sign(ts: str, body: bytes) -> str:
    digest = hmac.new(SECRET.encode(), ts.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def trigger(
    ticket_id: str, *, description: str, locale: str = "en-US", event: str = "created"
) -> dict[str, Any]:
    """A Zendesk trigger delivery from the credits customer (as the fixture, re-addressed)."""
    body: dict[str, Any] = copy.deepcopy(
        json.loads((FIXTURES / "trigger_created.json").read_text())
    )
    body["event"] = event
    body["ticket"].update(
        id=ticket_id,
        subject=f"Upgrade <b>please</b> #{ticket_id}",
        description=description,
        tags="",
        created_at="2026-03-10T09:58:00Z",
        updated_at="2026-03-10T09:58:00Z",
        fields={"360001234567": "", "360001234568": "", "360001234569": ""},
    )
    body["requester"].update(id="5005", email=EMAIL, name="Anna", locale=locale)
    body["current_user"] = {"id": "5005"}
    return body


@pytest.fixture
def app(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CARE_TEST_ZD_SECRET", SECRET)
    # The signing key the embedded default uses: made once, kept in the database.
    monkeypatch.delenv("CARE_SECRET_KEY", raising=False)
    app = create_app(
        {
            "database": {"url": database.url},
            "server": {"public_url": PUBLIC},
            "desks": {
                "zendesk": {
                    "adapter": "zendesk",
                    "base_url": BASE,
                    "secret_env": ["CARE_TEST_ZD_SECRET"],
                    "api_user_id": "900",
                    "fields": {
                        "care_category": "360001234567",
                        "care_price": "360001234568",
                        "care_preapproval": "360001234569",
                    },
                }
            },
        }
    )
    st: ConnectorState = app.extensions["care_connector"]
    st.clock = lambda: NOW
    seed_customers(st, CUSTOMERS, at=NOW - timedelta(days=30))
    yield app
    st.database.dispose()


@pytest.fixture
def st(app: Flask) -> ConnectorState:
    return app.extensions["care_connector"]  # type: ignore[no-any-return]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def deliver(client: FlaskClient, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    stamp = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = client.post(
        "/hooks/zendesk",
        data=raw,
        content_type="application/json",
        headers={
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
            "X-Zendesk-Webhook-Signature": sign(stamp, raw),
        },
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)


def work(st: ConnectorState) -> None:
    """Run the processing worker until no event is pending (the outbox is left alone)."""
    while worker.run_once(st):
        pass


def request_approval(
    st: ConnectorState,
    client: FlaskClient,
    ticket_id: str = "102",
    *,
    to: str = "4.3.9",
    locale: str = "en-US",
) -> str:
    """Ask for approval of an upgrade from 4.3.1; the path of the link in the reply."""
    description = f"Please upgrade from 4.3.1 to {to}"
    deliver(client, trigger(ticket_id, description=description, locale=locale))
    work(st)
    with st.database.transaction(read_only=True) as session:
        bodies = session.scalars(
            select(OutboxAction.payload).where(
                OutboxAction.ticket_id == ticket_id, OutboxAction.kind == "reply"
            )
        ).all()
    links = [m for b in bodies for m in re.findall(rf"{PUBLIC}(/approvals/[\w.\-]+)", b["body"])]
    assert len(links) == 1, bodies
    return links[0]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def open_and_answer(client: FlaskClient, link: str, choice: str) -> Any:
    """GET the page (which sets the CSRF cookie), then press a button."""
    shown = client.get(link)
    assert shown.status_code == 200, shown.get_data(as_text=True)
    token = csrf_of(shown.get_data(as_text=True))
    return client.post(link, data={"csrf": token, "answer": choice})


def balance(st: ConnectorState) -> int:
    with st.database.transaction(read_only=True) as session:
        customer_id = find_customer(session, email=EMAIL)
        assert customer_id is not None
        return ledger.balance(session, customer_id)


def ticket(st: ConnectorState, external_id: str = "102") -> Ticket:
    with st.database.transaction(read_only=True) as session:
        row = session.execute(select(Ticket).where(Ticket.external_id == external_id))
        return row.scalar_one()


def charges(st: ConnectorState) -> list[tuple[int, str | None]]:
    with st.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(LedgerEntry.amount, LedgerEntry.ticket).where(LedgerEntry.kind == "charge")
        )
        return [(amount, ref) for amount, ref in rows]


def answers(st: ConnectorState) -> list[Event]:
    with st.database.transaction(read_only=True) as session:
        return list(
            session.scalars(select(Event).where(Event.type.like("approval.%")).order_by(Event.id))
        )


def token_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


# --------------------------------------------------------------------------------------------
# The page and its answers


def test_the_page_shows_the_estimate_with_two_buttons(
    st: ConnectorState, client: FlaskClient
) -> None:
    link = request_approval(st, client)
    shown = client.get(link)
    page = text(shown)
    assert shown.status_code == 200
    assert '<html lang="en">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "Do you agree to this estimate?" in page
    assert "Upgrade &lt;b&gt;please&lt;/b&gt; #102" in page  # the subject, escaped
    assert 'id="estimate">50 credits</dd>' in page
    assert 'id="balance">120 credits</dd>' in page
    assert 'id="balance-after">70 credits</dd>' in page
    assert page.count('<form method="post" action="/approvals/') == 2
    assert 'value="approve"' in page and 'value="decline"' in page
    assert "Approve and charge 50 credits" in page and ">Decline<" in page
    assert "<script" not in page
    cookie = shown.headers["Set-Cookie"]
    assert cookie.startswith(f"care_csrf={csrf_of(page)};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/approvals/" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    assert shown.headers["X-Frame-Options"] == "DENY"
    assert shown.headers["Cache-Control"] == "no-store"
    assert shown.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in shown.headers["Content-Security-Policy"]
    assert balance(st) == 120 and charges(st) == []


def test_the_csrf_cookie_is_secure_over_https(st: ConnectorState, client: FlaskClient) -> None:
    link = request_approval(st, client)
    shown = client.get(link, base_url="https://care.shop.example")
    assert "Secure" in shown.headers["Set-Cookie"]


def test_approve_charges_once_and_queues_the_confirmation(
    st: ConnectorState, client: FlaskClient
) -> None:
    link = request_approval(st, client)
    done = open_and_answer(client, link, "approve")
    page = text(done)
    assert done.status_code == 200
    assert "Thank you: the estimate is approved" in page
    assert "We have charged 50 credits for this request. Your balance is now 70 credits." in page
    assert balance(st) == 70
    assert charges(st) == [(-50, "zendesk:102")]
    row = ticket(st)
    assert (row.approval_state, row.credits_charged, row.approval_amount) == ("approved", 50, None)
    [event] = answers(st)
    assert event.type == "approval.approved" and event.status == "done"
    assert event.delivery_key == f"approval:{hashlib.sha256(token_of(link).encode()).hexdigest()}"
    assert event.payload["answer_amount"] == 50 and event.delivery_id is None
    with st.database.transaction(read_only=True) as session:
        queued = session.scalars(
            select(OutboxAction).where(OutboxAction.event_id == event.id).order_by(OutboxAction.id)
        ).all()
    # The tag changes, the internal note and the confirmation, in this order; no priority
    # write: an answer never touches the priority set when the ticket was first decided.
    kinds = [(a.kind, a.payload.get("tags"), a.payload.get("kind")) for a in queued]
    assert kinds == [
        ("tags", ["care_approved", "care_charged"], None),
        ("remove_tags", ["care_awaiting_approval", "care_insufficient_balance"], None),
        ("note", None, "note"),
        ("reply", None, "charged"),
    ]
    reply = str(queued[-1].payload["body"])
    assert "50" in reply and "70" in reply
    assert {a.status for a in queued} == {"pending"}  # the outbox worker sends them later


def test_a_second_approval_is_already_approved_and_charges_nothing(
    st: ConnectorState, client: FlaskClient
) -> None:
    link = request_approval(st, client)
    assert open_and_answer(client, link, "approve").status_code == 200
    cookie_value = client.get_cookie("care_csrf", path="/approvals/")
    assert cookie_value is not None
    again = client.post(link, data={"csrf": cookie_value.value, "answer": "approve"})
    assert again.status_code == 200
    assert "This estimate is already approved" in text(again)
    shown = client.get(link)
    assert shown.status_code == 200 and "This estimate is already approved" in text(shown)
    assert "<form" not in text(shown)
    assert charges(st) == [(-50, "zendesk:102")] and balance(st) == 70
    assert len(answers(st)) == 1


def test_an_answer_already_stored_is_not_stored_again(
    st: ConnectorState, client: FlaskClient
) -> None:
    """A double submit racing the first: its event is stored but not carried out yet."""
    link = request_approval(st, client)
    shown = client.get(link)
    first = TicketEvent(
        desk="zendesk",
        delivery_key=approval_page.delivery_key(token_of(link)),
        type=EventType.APPROVED,
        ticket_id="102",
        answer_amount=50,
    )
    with st.database.transaction() as session:
        session.add(
            Event(
                desk="zendesk",
                delivery_key=first.delivery_key,
                ticket_key="zendesk:102",
                type=first.type.value,
                payload=event_to_json(first),
                created_at=NOW,
            )
        )
    again = client.post(link, data={"csrf": csrf_of(text(shown)), "answer": "approve"})
    assert again.status_code == 200 and "Your answer is already recorded" in text(again)
    assert ticket(st).approval_state == "pending" and charges(st) == []
    work(st)  # the first submit's event: charged once
    assert charges(st) == [(-50, "zendesk:102")] and len(answers(st)) == 1


def test_decline_charges_nothing(st: ConnectorState, client: FlaskClient) -> None:
    link = request_approval(st, client)
    done = open_and_answer(client, link, "decline")
    assert done.status_code == 200 and "You have declined the estimate" in text(done)
    row = ticket(st)
    assert (row.approval_state, row.credits_charged) == ("declined", 0)
    assert balance(st) == 120 and charges(st) == []
    [event] = answers(st)
    with st.database.transaction(read_only=True) as session:
        tags = session.scalars(
            select(OutboxAction.payload).where(
                OutboxAction.event_id == event.id, OutboxAction.kind == "tags"
            )
        ).all()
    assert tags == [{"tags": ["care_declined"]}]
    later = open_and_answer_after_decline(client, link)
    assert later.status_code == 200 and "This estimate is already declined" in text(later)
    assert balance(st) == 120 and len(answers(st)) == 1


def open_and_answer_after_decline(client: FlaskClient, link: str) -> Any:
    shown = client.get(link)
    assert "This estimate is already declined" in text(shown) and "<form" not in text(shown)
    cookie = client.get_cookie("care_csrf", path="/approvals/")
    assert cookie is not None
    return client.post(link, data={"csrf": cookie.value, "answer": "approve"})


def test_insufficient_balance_then_a_top_up_then_approve(
    st: ConnectorState, client: FlaskClient
) -> None:
    link = request_approval(st, client, to="4.10.1")  # 145 credits; the balance is 120
    shown = client.get(link)
    assert "145 credits" in text(shown)
    assert "Your balance is 25 credits short of the estimate." in text(shown)
    short = client.post(link, data={"csrf": csrf_of(text(shown)), "answer": "approve"})
    page = text(short)
    assert short.status_code == 200
    assert "Your balance is too small" in page
    assert "The estimate is 145 credits, but your balance is 120 credits" in page
    assert "you need 25 credits more" in page
    assert f'href="{st.settings.policy.approval.buy_credits_url}"' in page
    assert ticket(st).approval_state == "insufficient" and charges(st) == []

    with st.database.transaction() as session:
        customer_id = find_customer(session, email=EMAIL)
        assert customer_id is not None
        ledger.grant(
            session,
            customer_id=customer_id,
            credits=30,
            key="top-up-1",
            actor="test",
            source=ledger.Source.ADMIN,
            kind=ledger.EntryKind.PURCHASE,
            at=NOW,
        )
    done = open_and_answer(client, link, "approve")
    assert done.status_code == 200
    assert "We have charged 145 credits" in text(done) and "now 5 credits" in text(done)
    assert balance(st) == 5 and charges(st) == [(-145, "zendesk:102")]
    keys = [e.delivery_key for e in answers(st)]
    first = approval_page.delivery_key(token_of(link))
    assert keys == [first, f"{first}:1"]


def test_an_answer_behind_an_earlier_event_waits_for_it(
    st: ConnectorState, client: FlaskClient
) -> None:
    link = request_approval(st, client)
    shown = client.get(link)
    comment = trigger("102", description="Any news?", event="comment")
    comment["ticket"]["updated_at"] = "2026-03-10T09:59:00Z"
    comment["comment"] = {"body": "Any news?", "public": "true", "author_id": "5005"}
    deliver(client, comment)  # not processed yet
    queued = client.post(link, data={"csrf": csrf_of(text(shown)), "answer": "approve"})
    assert queued.status_code == 202 and "Your answer is recorded" in text(queued)
    assert charges(st) == []
    work(st)
    assert charges(st) == [(-50, "zendesk:102")] and ticket(st).approval_state == "approved"


# --------------------------------------------------------------------------------------------
# Links the page refuses


def old_token(st: ConnectorState, row: Ticket, amount: int, age_days: float) -> str:
    """A token signed ``age_days`` ago with the connector's key."""

    class Backdated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_days * 86400)

    with st.database.transaction() as session:
        key = approvals.signing_key(session)
    signer = URLSafeTimedSerializer(key, salt=approvals.SALT, signer=Backdated)
    return str(signer.dumps({"ticket": row.id, "amount": amount}))


@pytest.mark.parametrize(
    ("age_days", "status", "heading"),
    [
        (13.9, 200, "Do you agree to this estimate?"),
        (14.1, 410, "This link has expired"),
        (400, 410, "This link has expired"),
    ],
)
def test_links_expire_after_the_policy_ttl(
    st: ConnectorState, client: FlaskClient, age_days: float, status: int, heading: str
) -> None:
    assert st.settings.policy.approval.link_ttl_days == 14
    request_approval(st, client)
    link = f"/approvals/{old_token(st, ticket(st), 50, age_days)}"
    shown = client.get(link)
    assert shown.status_code == status and heading in text(shown)
    if status == 410:
        assert "Approval links work for 14 days." in text(shown)
        client.set_cookie("care_csrf", "a" * 43, path="/approvals/")
        posted = client.post(link, data={"csrf": "a" * 43, "answer": "approve"})
        assert posted.status_code == 410 and answers(st) == [] and balance(st) == 120


def tamper(token: str) -> list[str]:
    payload, stamp, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    other_payload = base64.urlsafe_b64encode(b'{"ticket":1,"amount":1}').decode().rstrip("=")
    return [
        f"{payload}.{stamp}.{flipped}",  # a changed signature
        f"{other_payload}.{stamp}.{signature}",  # a changed payload, the old signature
        f"{payload}.{stamp}",  # truncated
        token[:-3],
        token + "x",
    ]


def test_tampered_links_are_not_valid(st: ConnectorState, client: FlaskClient) -> None:
    link = request_approval(st, client)
    shown = client.get(link)
    csrf = csrf_of(text(shown))
    for bad in tamper(token_of(link)):
        got = client.get(f"/approvals/{bad}")
        assert got.status_code == 404, bad
        assert "This link is not valid" in text(got)
        posted = client.post(f"/approvals/{bad}", data={"csrf": csrf, "answer": "approve"})
        assert posted.status_code == 404
    assert answers(st) == [] and balance(st) == 120


def test_a_link_signed_with_another_key_is_not_valid(
    st: ConnectorState, client: FlaskClient
) -> None:
    request_approval(st, client)
    forged = URLSafeTimedSerializer("not-our-key", salt=approvals.SALT).dumps(
        {"ticket": ticket(st).id, "amount": 50}
    )
    assert client.get(f"/approvals/{forged}").status_code == 404


def test_a_link_to_an_unknown_ticket_is_not_valid(st: ConnectorState, client: FlaskClient) -> None:
    with st.database.transaction() as session:
        token = approvals.make_token(session, Ticket(id=987654), 50)
    shown = client.get(f"/approvals/{token}")
    assert shown.status_code == 404 and "This link is not valid" in text(shown)


def test_a_link_for_an_older_amount_has_changed(st: ConnectorState, client: FlaskClient) -> None:
    link = request_approval(st, client)
    with st.database.transaction() as session:
        stale = approvals.make_token(session, session.get(Ticket, ticket(st).id), 40)
    shown = client.get(f"/approvals/{stale}")
    assert shown.status_code == 409
    assert "This estimate has changed" in text(shown)
    assert "Use the newest link" in text(shown)
    csrf = csrf_of(text(client.get(link)))
    posted = client.post(f"/approvals/{stale}", data={"csrf": csrf, "answer": "approve"})
    assert posted.status_code == 409 and answers(st) == [] and balance(st) == 120


def test_a_ticket_waiting_for_no_answer_is_closed(st: ConnectorState, client: FlaskClient) -> None:
    deliver(client, trigger("103", description="How do I set up shipping?"))
    work(st)
    row = ticket(st, "103")
    assert row.approval_state != "pending"
    with st.database.transaction() as session:
        token = approvals.make_token(session, row, 5)
    shown = client.get(f"/approvals/{token}")
    assert shown.status_code == 409 and "No answer is needed" in text(shown)


# --------------------------------------------------------------------------------------------
# CSRF


@pytest.mark.parametrize(
    ("cookie", "field"),
    [
        (None, None),  # neither
        ("page", None),  # no hidden field
        (None, "page"),  # no cookie (a cross-site POST)
        ("page", "b" * 43),  # a wrong field
        ("b" * 43, "page"),  # a wrong cookie
        ("", ""),  # both empty
        ("short", "short"),  # equal, but not a value the page makes
    ],
)
def test_a_missing_or_wrong_csrf_token_records_nothing(
    st: ConnectorState, client: FlaskClient, cookie: str | None, field: str | None
) -> None:
    link = request_approval(st, client)
    issued = csrf_of(text(client.get(link)))
    client.delete_cookie("care_csrf", path="/approvals/")
    if cookie is not None:
        client.set_cookie("care_csrf", issued if cookie == "page" else cookie, path="/approvals/")
    form = {"answer": "approve"}
    if field is not None:
        form["csrf"] = issued if field == "page" else field
    refused = client.post(link, data=form)
    assert refused.status_code == 400
    assert "Please try again" in text(refused) and f'href="{link}"' in text(refused)
    assert answers(st) == [] and balance(st) == 120
    assert ticket(st).approval_state == "pending"


@pytest.mark.parametrize("choice", ["", "yes", "APPROVE", "approve " * 50, "decline\x00"])
def test_an_unknown_answer_records_nothing(
    st: ConnectorState, client: FlaskClient, choice: str
) -> None:
    link = request_approval(st, client)
    csrf = csrf_of(text(client.get(link)))
    refused = client.post(link, data={"csrf": csrf, "answer": choice})
    assert refused.status_code == 400 and answers(st) == []


def test_an_oversized_form_is_refused_unread(st: ConnectorState, client: FlaskClient) -> None:
    link = request_approval(st, client)
    csrf = csrf_of(text(client.get(link)))
    big = client.post(link, data={"csrf": csrf, "answer": "approve", "pad": "x" * 100_000})
    assert big.status_code == 413 and answers(st) == []


# --------------------------------------------------------------------------------------------
# Languages


def test_a_russian_ticket_gets_the_page_in_russian(st: ConnectorState, client: FlaskClient) -> None:
    link = request_approval(st, client, locale="")  # no ticket locale: the customer's (ru)
    assert ticket(st).locale == "ru"
    shown = client.get(link)
    page = text(shown)
    assert '<html lang="ru">' in page
    assert "Вы согласны с оценкой?" in page
    assert "50 кредитов" in page and "120 кредитов" in page
    assert "Согласиться и списать 50 кредитов" in page and "Отказаться" in page
    done = client.post(link, data={"csrf": csrf_of(page), "answer": "approve"})
    assert "Спасибо, оценка подтверждена" in text(done)
    assert "Ваш баланс теперь 70 кредитов" in text(done)
    assert balance(st) == 70


def test_an_invalid_link_follows_the_browser_language(client: FlaskClient) -> None:
    shown = client.get("/approvals/nonsense", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert shown.status_code == 404 and "Ссылка недействительна" in text(shown)
    english = client.get("/approvals/nonsense", headers={"Accept-Language": "de, fr"})
    assert "This link is not valid" in text(english)


@pytest.mark.parametrize(
    ("n", "lang", "expected"),
    [
        (1, "en", "1 credit"),
        (0, "en", "0 credits"),
        (50, "en", "50 credits"),
        (1, "ru", "1 кредит"),
        (2, "ru", "2 кредита"),
        (5, "ru", "5 кредитов"),
        (11, "ru", "11 кредитов"),
        (14, "ru", "14 кредитов"),
        (21, "ru", "21 кредит"),
        (24, "ru", "24 кредита"),
        (111, "ru", "111 кредитов"),
    ],
)
def test_credits_agree_with_the_number(n: int, lang: str, expected: str) -> None:
    assert approval_page.credits_text(n, lang) == expected


def test_every_view_has_its_texts_in_both_languages() -> None:
    for view in View:
        for lang in approval_page.PAGE_LANGUAGES:
            words = approval_page.texts(Page(view, lang, amount=7, balance=3, ttl_days=2))
            assert words["heading"] and words["text"] and "{" not in words["text"]
        assert Page(view).status == approval_page.STATUS[view]


# --------------------------------------------------------------------------------------------
# Junk never makes a 500


@pytest.mark.parametrize(
    "payload",
    [{"ticket": True, "amount": 5}, {"ticket": 1}, {"ticket": 1, "amount": -5}, [1, 50], "x"],
)
def test_a_genuine_token_with_a_foreign_payload_is_not_valid(
    st: ConnectorState, payload: object
) -> None:
    with st.database.transaction() as session:
        token = approvals.serializer(session).dumps(payload)
        with pytest.raises(approvals.InvalidLinkError):
            approvals.read_token(session, token, max_age=3600)


def test_huge_tokens_and_junk_queries_are_refused(st: ConnectorState, client: FlaskClient) -> None:
    link = request_approval(st, client)
    assert client.get("/approvals/" + "A" * 100_000).status_code == 404
    assert client.get("/approvals/%ff%fe%00.x").status_code == 404
    assert client.get(f"{link}?answer=approve&csrf=%ff%00&x=" + "y" * 5000).status_code == 200
    assert client.put(link).status_code == 405
    junk = b"\xff\x00garbage"
    multipart = "multipart/form-data; boundary=x"
    assert client.post(link, data=junk, content_type=multipart).status_code == 400
    assert answers(st) == []


def test_an_unreachable_database_is_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARE_SECRET_KEY", raising=False)
    # Nothing listens on port 1: every connection is refused at once.
    app = create_app({"database": {"url": "postgresql+psycopg://care@127.0.0.1:1/care"}})
    got = app.test_client().get("/approvals/abc.def.ghi")
    assert got.status_code == 503 and got.headers["Retry-After"] == "30"
    assert "Please try again in a minute" in text(got)
    app.extensions["care_connector"].database.dispose()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(token=strat.text(min_size=1, max_size=300), answer=strat.text(max_size=20))
def test_random_tokens_never_fail(client: FlaskClient, token: str, answer: str) -> None:
    path = "/approvals/" + quote(token, safe="")
    got = client.get(path)
    assert got.status_code in (404, 308), got.status_code
    client.set_cookie("care_csrf", "c" * 43, path="/approvals/")
    posted = client.post(path, data={"csrf": "c" * 43, "answer": answer})
    assert posted.status_code in (404, 400, 405, 308), posted.status_code
