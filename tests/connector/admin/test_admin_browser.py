"""The admin pages in a real browser: Debian's Chromium driven by Playwright.

The connector is served on loopback by werkzeug in a thread, on a SQLite file, with the admin
tests' customers. Signed Zendesk deliveries go through the real pipeline: one ticket's
write-backs reach the desk, another's are refused by it (422) and dead-lettered. The browser
signs in (a wrong token first), finds a customer, grants credits and sees the ledger change,
reads why a ticket was charged, opens a dead-lettered post-back and retries it; the desk then
accepts it. Screenshots are written to ``artifacts/admin-browser/`` at the repository root.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium`` (the ``browser``
fixture of ``tests/connector``). Without it the test is skipped, saying how to install it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, ViewportSize, expect
from sqlalchemy import select
from werkzeug.serving import make_server

from connector import ledger
from connector.db import Database
from connector.extension import ConnectorState
from connector.models import OutboxAction, Ticket
from tests.connector.admin.conftest import (
    ALICE,
    NOW,
    SECRET,
    admin_app,
    config,
    customer_id,
    desk_environment,
    run_pipeline,
    sign,
    ticket_body,
)
from tests.connector.admin.test_pages import agent_reply
from tests.connector.conftest import needs_chromium

ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts" / "admin-browser"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}

pytestmark = needs_chromium


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Flask, str]]:
    """The connector on a free loopback port, and its address."""
    monkeypatch.setenv("CARE_TEST_ADMIN_ALICE", ALICE)
    # No CARE_SECRET_KEY: the session is signed with the key the connector keeps in its
    # database, as in a stand-alone install.
    desk_environment(monkeypatch, approval_key=False)
    apps: list[Flask] = []
    # Bound first, so the app can be built with the port the server got.
    server = make_server("127.0.0.1", 0, lambda env, start: apps[0](env, start), threaded=True)
    address = f"http://127.0.0.1:{server.server_port}"
    settings = config(Database.from_url(f"sqlite:///{tmp_path / 'care.sqlite3'}"))
    settings["server"] = {"public_url": address}
    app = admin_app(settings)
    apps.append(app)
    st: ConnectorState = app.extensions["care_connector"]
    thread = threading.Thread(target=server.serve_forever, name="admin-server", daemon=True)
    thread.start()
    try:
        yield app, address
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        st.database.dispose()


def deliver(app: Flask, body: dict[str, Any]) -> None:
    """A signed Zendesk delivery, through the intake."""
    raw = json.dumps(body)
    stamp = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Signature": sign(SECRET, stamp, raw.encode()),
    }
    answer = app.test_client().post(
        "/hooks/zendesk", data=raw, headers=headers, content_type="application/json"
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)


def shoot(page: Page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def balance(st: ConnectorState, email: str) -> int:
    with st.database.transaction(read_only=True) as session:
        return ledger.balance(session, customer_id(st, email))


def statuses(st: ConnectorState, ticket_id: str) -> list[str]:
    with st.database.transaction(read_only=True) as session:
        return list(
            session.scalars(
                select(OutboxAction.status)
                .where(OutboxAction.ticket_id == ticket_id)
                .order_by(OutboxAction.id)
            )
        )


def test_admin_console_in_a_browser(served: tuple[Flask, str], browser: Browser) -> None:
    app, address = served
    st: ConnectorState = app.extensions["care_connector"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # A question from the pay-per-ticket customer (5 credits), written back to the desk, and
    # an agent's first reply 25 minutes later...
    deliver(app, ticket_body("401", "credits@shop.example", requester_id="5005"))
    deliver(app, agent_reply("401", "credits@shop.example", "5005", "2026-03-10T10:23:00Z"))
    run_pipeline(st)
    assert balance(st, "credits@shop.example") == 115
    # ...and a Standard customer's ticket whose write-backs the desk refuses.
    body = ticket_body("402", "std@shop.example", subject="Where are the tax settings?")
    deliver(app, body)
    run_pipeline(st, status=422)
    dead = statuses(st, "402")
    assert dead and set(dead) == {"dead"}
    shots: list[Path] = []

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)

    # Sign in: the pages send a visitor without a session to the sign-in form.
    page.goto(f"{address}/admin/")
    expect(page).to_have_url(re.compile(r"/admin/sign-in$"))
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_have_text("That token is not valid.")
    shots.append(shoot(page, "sign-in-refused"))
    page.get_by_label("Admin token").fill(ALICE)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    expect(page.locator("#signed-in-as")).to_have_text("alice")
    cookie = next(c for c in context.cookies() if c["name"] == "care_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/admin"
    expect(page.locator("#charged-chart svg rect.bar")).to_have_count(30)
    expect(page.locator("#count-dead")).to_have_text(str(len(dead)))
    expect(page.locator("#replies-chart svg rect.met")).to_have_count(1)
    expect(page.locator("#replies-chart svg rect.open")).to_have_count(1)
    shots.append(shoot(page, "dashboard"))

    # Find the customer and grant credits.
    page.get_by_label("Email or name").fill("credits@shop")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="credits@shop.example").click()
    expect(page.locator("#balance")).to_have_text("115 credits")
    expect(page.locator("#ledger tbody tr")).to_have_count(3)  # grant, purchase, charge
    shots.append(shoot(page, "customer"))
    page.get_by_label("Movement").select_option("grant")
    page.get_by_role("textbox", name=re.compile(r"^Credits")).fill("20")
    page.get_by_label("Reason").fill("Goodwill for the outage")
    page.get_by_role("button", name="Record").click()
    expect(page.get_by_role("status")).to_have_text("Granted +20 credits; the balance is now 135.")
    expect(page.locator("#balance")).to_have_text("135 credits")
    newest = page.locator("#ledger tbody tr").first
    expect(newest).to_contain_text("+20")
    expect(newest).to_contain_text("Goodwill for the outage")
    expect(newest).to_contain_text("alice")
    assert balance(st, "credits@shop.example") == 135
    shots.append(shoot(page, "customer-granted"))

    # Why was the ticket charged? Its page says, step by step.
    page.locator("#tickets").get_by_role("link", name="zendesk:401").click()
    expect(page.locator("#explanation li")).to_have_count(7)
    expect(page.locator("#step-category")).to_contain_text("question")
    expect(page.locator("#step-charge")).to_contain_text("5 credits")
    expect(page.locator("#charged")).to_have_text("5 credits")
    shots.append(shoot(page, "ticket"))

    # Did the note reach Zendesk? The dead-lettered post-backs, and a retry.
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Outbox").click()
    page.get_by_role("link", name=re.compile(r"^Dead-lettered")).click()
    first = _first_dead(st, "402")
    row = page.locator(f"#action-{first}")
    expect(row).to_contain_text("dead")
    expect(row).to_contain_text("422")
    shots.append(shoot(page, "outbox-dead"))
    row.get_by_role("link", name=str(first)).click()
    expect(page.locator("#state")).to_contain_text("dead")
    expect(page.locator("#last-error")).to_contain_text("422")
    shots.append(shoot(page, "dead-letter"))
    page.get_by_role("button", name=f"Retry write-back {first}").click()
    expect(page.get_by_role("status")).to_have_text(
        f"Write-back {first} queued to be sent again now."
    )
    expect(page.locator("#state")).to_contain_text("pending")
    assert statuses(st, "402")[0] == "pending"
    shots.append(shoot(page, "retried"))
    # The outbox worker sends it; the desk accepts it this time.
    run_pipeline(st)
    page.reload()
    expect(page.locator("#state")).to_contain_text("sent")
    assert statuses(st, "402")[0] == "sent"
    shots.append(shoot(page, "sent"))

    # The raw delivery behind the ticket, its signature masked.
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Deliveries").click()
    page.locator("#deliveries tbody tr").last.get_by_role("link").click()
    expect(page.locator("#verification")).to_contain_text("signature valid")
    expect(page.locator("#headers")).to_contain_text("********")
    shots.append(shoot(page, "delivery"))

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/admin/sign-in$"))
    page.goto(f"{address}/admin/")
    expect(page).to_have_url(re.compile(r"/admin/sign-in$"))
    context.close()

    # On a phone: the dashboard fits the width (tables scroll inside their cards).
    phone_context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    phone = phone_context.new_page()
    phone.goto(f"{address}/admin/sign-in")
    phone.get_by_label("Admin token").fill(ALICE)
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("Dashboard")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shots.append(shoot(phone, "dashboard-phone"))
    phone_context.close()

    with st.database.transaction(read_only=True) as session:
        assert (
            session.scalar(select(Ticket.credits_charged).where(Ticket.external_id == "401")) == 5
        )
    for path in shots:
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


def _first_dead(st: ConnectorState, ticket_id: str) -> int:
    with st.database.transaction(read_only=True) as session:
        found = session.scalar(
            select(OutboxAction.id)
            .where(OutboxAction.ticket_id == ticket_id, OutboxAction.status == "dead")
            .order_by(OutboxAction.id)
        )
    assert found is not None
    return found
