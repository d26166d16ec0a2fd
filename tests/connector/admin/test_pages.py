"""The admin pages: sign-in, CSRF, every page over real data, and the forms' effects.

Tickets, deliveries and write-backs are made by the real pipeline (signed Zendesk deliveries,
the worker, the outbox against ``responses``), as in the API tests, whose fixtures these use.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from connector import create_app, ledger
from connector.admin import charts, pages
from connector.db import Database
from connector.extension import CareConnector, ConnectorState
from connector.models import AdminAudit, InboundDelivery, LedgerEntry, OutboxAction
from tests.connector.admin.conftest import (
    ALICE,
    BOB,
    Deliver,
    config,
    customer_id,
    make_ticket,
    run_pipeline,
    ticket_body,
)

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
FORM_KEY = re.compile(r'name="key" value="([^"]+)"')

# --------------------------------------------------------------------------------------------
# Helpers


def csrf_of(response: Any) -> str:
    found = CSRF.search(response.get_data(as_text=True))
    assert found is not None, response.get_data(as_text=True)[:500]
    return found.group(1)


def sign_in(client: FlaskClient, token: str = ALICE, **extra: str) -> Any:
    """Open the sign-in page and post ``token`` with the page's CSRF token."""
    form = client.get("/admin/sign-in")
    assert form.status_code == 200
    return client.post("/admin/sign-in", data={"csrf": csrf_of(form), "token": token, **extra})


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    """A test client signed in as ``alice``."""
    client = app.test_client()
    assert sign_in(client).status_code == 303
    return client


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def balance(st: ConnectorState, email: str) -> int:
    with st.database.transaction(read_only=True) as session:
        return ledger.balance(session, customer_id(st, email))


def agent_reply(ticket_id: str, email: str, requester_id: str, at: str) -> dict[str, Any]:
    """A Zendesk trigger delivery: an agent's public reply on the ticket at ``at``."""
    body = ticket_body(ticket_id, email, requester_id=requester_id, event="comment")
    body["ticket"]["updated_at"] = at
    body["current_user"] = {"id": AGENT}
    body["comment"] = {"body": "Here is how.", "public": "true", "author_id": AGENT}
    return body


#: An agent of the desk (neither the requester nor the connector's own API user).
AGENT = "8000"


def dead_letters(st: ConnectorState, deliver: Deliver, ticket_id: str) -> list[int]:
    """A ticket whose write-backs the desk refuses (422, permanent): they are dead-lettered."""
    assert deliver(ticket_body(ticket_id, "std@shop.example")).status_code == 200
    run_pipeline(st, status=422)
    with st.database.transaction(read_only=True) as session:
        ids = list(
            session.scalars(
                select(OutboxAction.id)
                .where(OutboxAction.ticket_id == ticket_id, OutboxAction.status == "dead")
                .order_by(OutboxAction.id)
            )
        )
    assert ids
    return ids


def action(st: ConnectorState, action_id: int) -> OutboxAction:
    with st.database.transaction(read_only=True) as session:
        row = session.get(OutboxAction, action_id)
        assert row is not None
        session.expunge(row)
        return row


# --------------------------------------------------------------------------------------------
# Sign-in, sessions, CSRF


def test_pages_need_a_session(app: Flask) -> None:
    client = app.test_client()
    answer = client.get("/admin/customers?q=vip")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/admin/sign-in?next=/admin/customers?q%3Dvip"


def test_sign_in_with_a_good_token(app: Flask) -> None:
    client = app.test_client()
    answer = sign_in(client, next="/admin/customers?q=vip")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/admin/customers?q=vip"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{pages.COOKIE_NAME}=")
    # The connector's public URL is https in these tests, so the cookie is Secure.
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/admin", "Secure"):
        assert attribute in cookie, cookie
    assert ALICE not in cookie
    page = client.get("/admin/customers?q=vip")
    assert page.status_code == 200
    assert 'id="signed-in-as">alice<' in text(page)
    assert "vip@shop.example" in text(page)


def test_sign_in_with_a_bad_token(app: Flask) -> None:
    client = app.test_client()
    for token in ("not-the-token", "", ALICE[:-1], ALICE + "x"):
        refused = sign_in(client, token)
        assert refused.status_code == 401
        assert "That token is not valid." in text(refused)
        assert client.get("/admin/").status_code == 302
    # A named token whose variable is unset is no token at all.
    assert sign_in(client, "CARE_TEST_ADMIN_CAROL_UNSET").status_code == 401


def test_no_token_configured_refuses_sign_in(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARE_SECRET_KEY", "approval-key")
    app = create_app(config(database, tokens={}))
    refused = sign_in(app.test_client(), "")
    assert refused.status_code == 401
    assert "No admin token is configured" in text(refused)


def test_sign_in_refuses_a_missing_or_foreign_csrf_token(app: Flask) -> None:
    client = app.test_client()
    client.get("/admin/sign-in")
    assert client.post("/admin/sign-in", data={"token": ALICE}).status_code == 400
    other = app.test_client()
    foreign = csrf_of(other.get("/admin/sign-in"))
    refused = client.post("/admin/sign-in", data={"csrf": foreign, "token": ALICE})
    assert refused.status_code == 400
    assert client.get("/admin/").status_code == 302


def test_forms_refuse_a_missing_or_wrong_csrf_token(
    app: Flask, admin: FlaskClient, st: ConnectorState
) -> None:
    cid = customer_id(st, "credits@shop.example")
    page = admin.get(f"/admin/customers/{cid}")
    key = FORM_KEY.search(text(page))
    assert key is not None
    form = {"kind": "grant", "amount": "20", "reason": "goodwill", "key": key.group(1)}
    for csrf in (None, "", "x" * 43, csrf_of(sign_in_page(app))):
        data = dict(form) if csrf is None else {**form, "csrf": csrf}
        refused = admin.post(f"/admin/customers/{cid}/credits", data=data)
        assert refused.status_code == 400
        assert "Nothing was changed" in text(refused)
    assert balance(st, "credits@shop.example") == 120
    assert admin.post("/admin/sign-out", data={}).status_code == 400
    assert admin.get("/admin/").status_code == 200


def sign_in_page(app: Flask) -> Any:
    """The sign-in page of another browser (its CSRF token belongs to another session)."""
    return app.test_client().get("/admin/sign-in")


def test_sign_out_ends_the_session(admin: FlaskClient) -> None:
    home = admin.get("/admin/")
    answer = admin.post("/admin/sign-out", data={"csrf": csrf_of(home)})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/admin/sign-in"
    assert "Signed out." in text(admin.get("/admin/sign-in"))
    assert admin.get("/admin/").status_code == 302


def test_a_session_ends_when_its_token_changes(
    app: Flask, admin: FlaskClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    cookie = admin.get_cookie(pages.COOKIE_NAME, path="/admin")
    assert cookie is not None
    # The same deployment restarted with alice's token replaced.
    monkeypatch.setenv("CARE_TEST_ADMIN_ALICE", "a-new-token-for-alice-000")
    restarted = create_app(config(database)).test_client()
    restarted.set_cookie(pages.COOKIE_NAME, cookie.value, path="/admin")
    assert restarted.get("/admin/").status_code == 302
    # Bob's unchanged token keeps working there.
    assert sign_in(restarted, BOB).status_code == 303
    assert restarted.get("/admin/").status_code == 200


def test_a_session_ends_after_its_hours(
    admin: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert admin.get("/admin/").status_code == 200
    later = pages.wall_clock() + pages.SESSION_HOURS * 3600 + 5
    monkeypatch.setattr(pages, "wall_clock", lambda: later)
    assert admin.get("/admin/").status_code == 302


def test_sign_in_ignores_a_next_address_off_the_admin_pages(app: Flask) -> None:
    for target in ("//evil.example/admin/", "https://evil.example/admin/", "/approvals/x"):
        answer = sign_in(app.test_client(), next=target)
        assert answer.status_code == 303
        assert answer.headers["Location"] == "/admin/"


def test_pages_are_not_cached_framed_or_scripted(admin: FlaskClient) -> None:
    page = admin.get("/admin/")
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src" not in policy and "<script" not in text(page)


def test_a_host_app_with_its_own_secret_key_keeps_its_session(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARE_TEST_ADMIN_ALICE", ALICE)
    host = Flask("host")
    host.secret_key = "the-host-app-key"
    host.config["CARE_CONFIG"] = config(database)
    CareConnector(host)
    client = host.test_client()
    answer = sign_in(client)
    assert answer.status_code == 303
    assert answer.headers["Set-Cookie"].startswith("session=")
    assert client.get("/admin/").status_code == 200


def test_pages_under_a_url_prefix(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARE_TEST_ADMIN_ALICE", ALICE)
    monkeypatch.setenv("CARE_SECRET_KEY", "approval-key")
    host = Flask("host")
    host.config.update(CARE_CONFIG=config(database), CARE_URL_PREFIX="/care")
    CareConnector(host)
    client = host.test_client()
    assert client.get("/care/admin/").headers["Location"] == "/care/admin/sign-in"
    form = client.get("/care/admin/sign-in")
    answer = client.post("/care/admin/sign-in", data={"csrf": csrf_of(form), "token": ALICE})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/care/admin/"
    assert "Path=/care/admin;" in answer.headers["Set-Cookie"]
    assert 'href="/care/admin/outbox"' in text(client.get("/care/admin/"))
    # Other routes of the app get no session cookie (the host set no key).
    assert "Set-Cookie" not in client.get("/care/healthz").headers


def test_an_unreachable_database_is_a_503_page(monkeypatch: pytest.MonkeyPatch) -> None:
    unreachable = {
        "database": {"url": "postgresql+psycopg://care@127.0.0.1:1/care"},
        "admin": {"tokens": {"alice": "CARE_TEST_ADMIN_ALICE"}},
    }
    monkeypatch.setenv("CARE_TEST_ADMIN_ALICE", ALICE)
    # Without CARE_SECRET_KEY the session key is in the database: no session, no sign-in.
    monkeypatch.delenv("CARE_SECRET_KEY", raising=False)
    answer = create_app(unreachable).test_client().get("/admin/sign-in")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == str(pages.RETRY_AFTER_SECONDS)
    assert "The database is unreachable" in text(answer)
    # With it, sign-in works and the pages that read the database answer 503.
    monkeypatch.setenv("CARE_SECRET_KEY", "approval-key")
    client = create_app(unreachable).test_client()
    assert sign_in(client).status_code == 303
    for path in ("/admin/", "/admin/customers?q=a", "/admin/outbox?state=dead"):
        answer = client.get(path)
        assert answer.status_code == 503, path
        assert "The database is unreachable" in text(answer)


# --------------------------------------------------------------------------------------------
# Every page, with data made by the pipeline


def test_dashboard_shows_charges_and_first_reply_targets(
    admin: FlaskClient, st: ConnectorState, deliver: Deliver
) -> None:
    make_ticket(
        st,
        deliver,
        "301",
        "credits@shop.example",
        subject="Shipping settings question",
        requester_id="5005",
    )
    # The first agent reply 25 minutes later: the target (16 business hours) is met.
    reply = agent_reply("301", "credits@shop.example", "5005", "2026-03-10T10:23:00Z")
    assert deliver(reply).status_code == 200
    run_pipeline(st)
    dead_letters(st, deliver, "302")
    page = admin.get("/admin/?days=7")
    assert page.status_code == 200
    html = text(page)
    # The question cost 5 credits today; its plan (credits) has an open first-reply target.
    assert "5 credits charged, 0 refunded in the last 7 days" in html
    assert "2026-03-10: 5 credits" in html
    assert re.search(r'<a id="count-dead" href="/admin/outbox\?state=dead">[1-9]\d*</a>', html)
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 2
    for svg in svgs:
        ET.fromstring(svg)  # well-formed XML
    credits_plan = st.settings.policy.plans["credits"].title_en
    standard = st.settings.policy.plans["standard"].title_en
    assert f"{credits_plan}: 1 met, 0 missed, 0 open (100% met)" in html
    assert f"{standard}: 0 met, 0 missed, 1 open" in html
    rows = re.findall(r"<tr><td>([^<]+)</td>((?:<td class=\"num\">\d+</td>){4})</tr>", html)
    table = {name: re.findall(r"\d+", cells) for name, cells in rows}
    assert table[credits_plan] == ["1", "0", "0", "1"]
    assert table[standard] == ["0", "0", "1", "1"]
    # A bad period falls back to 30 days.
    assert "last 30 days" in text(admin.get("/admin/?days=abc"))


def test_customer_search_and_page(admin: FlaskClient, st: ConnectorState, deliver: Deliver) -> None:
    tid = make_ticket(st, deliver, "310", "credits@shop.example", requester_id="5005")
    found = admin.get("/admin/customers?q=CREDITS@shop")
    assert found.status_code == 200
    cid = customer_id(st, "credits@shop.example")
    assert f'href="/admin/customers/{cid}"' in text(found)
    assert "vip@shop.example" not in text(found)
    assert 'id="no-customers"' in text(admin.get("/admin/customers?q=nobody-here"))

    page = admin.get(f"/admin/customers/{cid}")
    assert page.status_code == 200
    html = text(page)
    assert 'id="balance">115 credits<' in html
    assert f"<strong>{st.settings.policy.plans['credits'].title_en}</strong>" in html
    assert "0 used, no quota on this plan" in html
    assert f'href="/admin/tickets/{tid}"' in html
    assert "license_grant" in html and "purchase" in html and "charge" in html
    assert admin.get("/admin/customers/999999").status_code == 404


def test_grant_form_changes_the_balance(admin: FlaskClient, st: ConnectorState) -> None:
    cid = customer_id(st, "credits@shop.example")
    page = admin.get(f"/admin/customers/{cid}")
    key = FORM_KEY.search(text(page))
    assert key is not None
    form = {
        "csrf": csrf_of(page),
        "kind": "grant",
        "amount": "20",
        "reason": "Goodwill for the outage",
        "key": key.group(1),
    }
    done = admin.post(f"/admin/customers/{cid}/credits", data=form)
    assert done.status_code == 303
    assert done.headers["Location"] == f"/admin/customers/{cid}"
    assert balance(st, "credits@shop.example") == 140
    # A double submit of the same form moves nothing more.
    assert admin.post(f"/admin/customers/{cid}/credits", data=form).status_code == 303
    assert balance(st, "credits@shop.example") == 140
    after = text(admin.get(f"/admin/customers/{cid}"))
    assert "Granted +20 credits; the balance is now 140." in after
    assert 'id="balance">140 credits<' in after
    assert "Goodwill for the outage" in after
    with st.database.transaction(read_only=True) as session:
        entry = session.scalars(
            select(LedgerEntry).where(LedgerEntry.customer_id == cid).order_by(LedgerEntry.id)
        ).all()[-1]
        assert (entry.kind, entry.amount, entry.actor, entry.source) == (
            "grant",
            20,
            "alice",
            "admin",
        )
        audit = session.scalars(select(AdminAudit).order_by(AdminAudit.id)).all()
        assert [(a.actor, a.action) for a in audit][-1] == ("alice", "credits.grant")

    # An adjustment may be negative; a new form has a new key.
    page = admin.get(f"/admin/customers/{cid}")
    form.update(csrf=csrf_of(page), kind="adjust", amount="-15", reason="Double purchase")
    form["key"] = FORM_KEY.search(text(page)).group(1)  # type: ignore[union-attr]
    assert admin.post(f"/admin/customers/{cid}/credits", data=form).status_code == 303
    assert balance(st, "credits@shop.example") == 125


@pytest.mark.parametrize(
    ("kind", "amount", "reason", "status", "shown"),
    [
        ("grant", "twenty", "r", 422, "A whole number of credits"),
        ("grant", "1.5", "r", 422, "A whole number of credits"),
        ("grant", "\u0661\u0662", "r", 422, "A whole number of credits"),
        ("grant", "99999999999", "r", 422, "A whole number of credits"),
        ("grant", "-5", "r", 422, "credits must be a positive whole number"),
        ("grant", "0", "r", 422, "credits must be a positive whole number"),
        ("adjust", "0", "r", 422, "not zero"),
        ("grant", "5", "   ", 422, "a reason is required"),
        ("adjust", "-500", "r", 409, "insufficient credits: balance 120"),
        ("refund", "5", "r", 422, "Choose grant or adjust."),
    ],
)
def test_grant_form_refuses_bad_input(
    admin: FlaskClient,
    st: ConnectorState,
    kind: str,
    amount: str,
    reason: str,
    status: int,
    shown: str,
) -> None:
    cid = customer_id(st, "credits@shop.example")
    page = admin.get(f"/admin/customers/{cid}")
    key = FORM_KEY.search(text(page))
    assert key is not None
    data = {"csrf": csrf_of(page), "kind": kind, "amount": amount, "reason": reason}
    refused = admin.post(f"/admin/customers/{cid}/credits", data={**data, "key": key.group(1)})
    assert refused.status_code == status
    assert shown in text(refused)
    # The form comes back with what was typed.
    assert f'value="{amount}"' in text(refused)
    assert balance(st, "credits@shop.example") == 120


def test_grant_form_for_an_unknown_customer_is_404(admin: FlaskClient) -> None:
    home = admin.get("/admin/")
    data = {"csrf": csrf_of(home), "kind": "grant", "amount": "5", "reason": "r", "key": "k" * 22}
    assert admin.post("/admin/customers/999999/credits", data=data).status_code == 404


def test_ticket_page_explains_the_decision(
    admin: FlaskClient, st: ConnectorState, deliver: Deliver
) -> None:
    tid = make_ticket(
        st,
        deliver,
        "320",
        "credits@shop.example",
        subject="Upgrade our store",
        description="Please upgrade our store from 4.3.1 to 4.3.9",
        requester_id="5005",
    )
    found = admin.get("/admin/tickets?desk=zendesk&ref=320")
    assert found.status_code == 302
    assert found.headers["Location"] == f"/admin/tickets/{tid}"
    page = admin.get(f"/admin/tickets/{tid}")
    assert page.status_code == 200
    html = text(page)
    steps = re.findall(r'<li id="step-(\w+)">', html)
    assert steps == [
        "plan",
        "category",
        "estimate",
        "coverage",
        "approval",
        "charge",
        "first_reply",
    ]
    step = {
        key: re.sub(r"<[^>]+>", "", body)
        for key, body in re.findall(r'<li id="step-(\w+)">(.*?)</li>', html, flags=re.S)
    }
    assert step["plan"].startswith("Plan: credits")
    assert step["category"].startswith("Category: upgrade")
    assert step["estimate"].startswith("Estimate: 50 credits")
    assert "(4.3.1 → 4.3.9)" in step["estimate"]
    assert step["approval"].startswith("Approval: pending")
    assert "amount asked: 50 credits" in step["approval"]
    assert step["charge"].startswith("Credits charged: 0 credits")
    assert 'id="events"' in html and 'id="ticket-outbox"' in html
    assert 'id="no-tickets"' in text(admin.get("/admin/tickets?desk=zendesk&ref=nope"))
    assert admin.get("/admin/tickets/999999").status_code == 404


def test_deliveries_list_detail_and_replay(
    admin: FlaskClient, st: ConnectorState, deliver: Deliver
) -> None:
    make_ticket(st, deliver, "330", "vip@shop.example", requester_id="1001")
    with st.database.transaction(read_only=True) as session:
        delivery_id = session.scalars(select(InboundDelivery.id)).one()
    listed = admin.get("/admin/deliveries?desk=zendesk&outcome=accepted")
    assert f'href="/admin/deliveries/{delivery_id}"' in text(listed)
    assert "/admin/deliveries/" not in text(admin.get("/admin/deliveries?outcome=refused"))
    page = admin.get(f"/admin/deliveries/{delivery_id}")
    assert page.status_code == 200
    html = text(page)
    assert 'X-Zendesk-Webhook-Signature</th><td class="wrap">********' in html
    assert "signature valid" in html
    assert "&#34;subject&#34;: &#34;How to set up shipping methods?&#34;" in html

    replayed = admin.post(f"/admin/deliveries/{delivery_id}/replay", data={"csrf": csrf_of(page)})
    assert replayed.status_code == 303
    assert f"Replayed delivery {delivery_id}: the intake answered 200" in text(
        admin.get(replayed.headers["Location"])
    )
    with st.database.transaction(read_only=True) as session:
        audit = session.scalars(select(AdminAudit.action)).all()
    assert "delivery.replay" in audit
    assert admin.get("/admin/deliveries/999999").status_code == 404


def test_retry_button_requeues_a_dead_lettered_action(
    admin: FlaskClient, st: ConnectorState, deliver: Deliver
) -> None:
    dead = dead_letters(st, deliver, "340")
    listed = admin.get("/admin/outbox?state=dead")
    assert listed.status_code == 200
    html = text(listed)
    for action_id in dead:
        assert f'id="action-{action_id}"' in html
    assert "HTTP 422" in html

    first = dead[0]
    detail = admin.get(f"/admin/outbox/{first}")
    assert detail.status_code == 200
    answer = admin.post(
        f"/admin/outbox/{first}/retry",
        data={"csrf": csrf_of(detail), "next": "/admin/outbox?state=dead"},
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/admin/outbox?state=dead"
    row = action(st, first)
    assert (row.status, row.attempts) == ("pending", 0)
    assert f"Write-back {first} queued to be sent again now." in text(
        admin.get("/admin/outbox?state=dead")
    )
    # The desk accepts it now: it is sent.
    run_pipeline(st)
    assert action(st, first).status == "sent"
    # A sent action cannot be retried: the page says so and nothing changes.
    again = admin.post(f"/admin/outbox/{first}/retry", data={"csrf": csrf_of(detail)})
    assert again.status_code == 303
    assert "is sent: nothing to retry" in text(admin.get(again.headers["Location"]))


def test_cancel_button_gives_up_a_dead_lettered_action(
    admin: FlaskClient, st: ConnectorState, deliver: Deliver
) -> None:
    last = dead_letters(st, deliver, "350")[-1]
    page = admin.get(f"/admin/outbox/{last}")
    answer = admin.post(f"/admin/outbox/{last}/cancel", data={"csrf": csrf_of(page)})
    assert answer.status_code == 303
    assert action(st, last).status == "cancelled"
    assert f'id="action-{last}"' in text(admin.get("/admin/outbox?state=cancelled"))
    assert (
        admin.post("/admin/outbox/999999/cancel", data={"csrf": csrf_of(page)}).status_code == 404
    )


def test_outbox_tabs_and_bad_arguments(admin: FlaskClient) -> None:
    for state in ("pending", "failed", "dead", "sent", "cancelled", "all", "bogus"):
        assert admin.get(f"/admin/outbox?state={state}&page=abc").status_code == 200
    assert admin.get("/admin/customers?page=-1").status_code == 200
    assert admin.get("/admin/customers?page=%C2%B2").status_code == 200  # "²"
    assert admin.get("/admin/?days=%C2%B2").status_code == 200
    assert admin.get("/admin/deliveries?outcome=<b>&page=999").status_code == 200


def test_a_too_large_form_is_refused(admin: FlaskClient) -> None:
    answer = admin.post("/admin/sign-out", data={"csrf": "x", "pad": "y" * pages.MAX_FORM_BYTES})
    assert answer.status_code == 413


# --------------------------------------------------------------------------------------------
# The SVG charts


def test_nice_ticks() -> None:
    assert charts.nice_ticks(0) == [0, 1]
    assert charts.nice_ticks(3) == [0, 1, 2, 3]
    assert charts.nice_ticks(47) == [0, 20, 40, 60]
    assert charts.nice_ticks(100) == [0, 50, 100]
    assert charts.nice_ticks(101) == [0, 50, 100, 150]
    for top in range(1, 2000, 7):
        ticks = charts.nice_ticks(top)
        assert ticks[0] == 0 and ticks[-1] >= top and len(ticks) <= 6


def test_daily_bars_draws_a_bar_per_day() -> None:
    days = [(date(2026, 3, d), v) for d, v in ((1, 0), (2, 20), (3, 5))]
    svg = charts.daily_bars(days, title="Credits <charged>")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.find(f"{ns}title").text == "Credits <charged>"  # type: ignore[union-attr]
    bars = root.findall(f"{ns}rect[@class='bar']")
    assert [b.find(f"{ns}title").text for b in bars] == [  # type: ignore[union-attr]
        "2026-03-01: 0 credits",
        "2026-03-02: 20 credits",
        "2026-03-03: 5 credits",
    ]
    assert float(bars[1].get("height", 0)) > float(bars[2].get("height", 0)) > 0
    assert "25 credits in 3 days" in root.find(f"{ns}desc").text  # type: ignore[union-attr,operator]
    ET.fromstring(charts.daily_bars([], title="empty"))


def test_share_bars_splits_met_missed_and_open() -> None:
    rows = [charts.Share("VIP & co", 3, 1, 2), charts.Share("Standard", 0, 0, 0)]
    assert rows[0].percent == 75 and rows[1].percent is None
    assert charts.Share("x", 1, 2).percent == 33 and charts.Share("x", 1, 1).percent == 50
    root = ET.fromstring(charts.share_bars(rows, title="Targets"))
    ns = "{http://www.w3.org/2000/svg}"
    widths = {
        r.get("class"): float(r.get("width", 0)) for r in root.iter(f"{ns}rect") if r.get("class")
    }
    assert widths["met"] == pytest.approx(3 * widths["missed"], abs=0.2)
    assert widths["open"] == pytest.approx(2 * widths["missed"], abs=0.2)
    assert "VIP &amp; co" in charts.share_bars(rows, title="Targets")
    with pytest.raises(ValueError):
        charts.share_bars([charts.Share("bad", -1, 0)], title="t")
