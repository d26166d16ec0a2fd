"""The approval page in a real browser: Debian's Chromium driven by Playwright.

The connector is served on loopback by werkzeug in a thread, on a SQLite file. A signed
Zendesk trigger asks for approval of an upgrade; the browser opens the link from the queued
reply, approves, sees the confirmation, then the link again and a tampered one. Screenshots
(phone and desktop sizes) are written to ``artifacts/approval-browser/`` at the repository root.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium``. Without it the
test is skipped, saying how to install it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from werkzeug.serving import make_server

from connector import create_app, ledger, worker
from connector.customers import find_customer, import_customers, validate_entries
from connector.extension import ConnectorState
from connector.models import LedgerEntry, OutboxAction
from tests.connector.conftest import needs_chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "approval-browser"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "zendesk"
SECRET = "approval-browser-secret"
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
EMAIL = "credits@shop.example"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}

pytestmark = needs_chromium


def signed_delivery(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    stamp = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(SECRET.encode(), stamp.encode() + raw, hashlib.sha256).digest()
    return raw, {
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
    }


def upgrade_trigger(ticket_id: str) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(
        json.loads((FIXTURES / "trigger_created.json").read_text())
    )
    body["ticket"].update(
        id=ticket_id,
        subject="Upgrade our store",
        description="Please upgrade our store from 4.3.1 to 4.3.9",
        tags="",
        created_at="2026-03-10T09:58:00Z",
        updated_at="2026-03-10T09:58:00Z",
        fields={"360001234567": "", "360001234568": "", "360001234569": ""},
    )
    body["requester"].update(id="5005", email=EMAIL, name="Anna", locale="en-US")
    body["current_user"] = {"id": "5005"}
    return body


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The connector on a free loopback port, its public URL that address."""
    monkeypatch.setenv("CARE_TEST_ZD_SECRET", SECRET)
    monkeypatch.delenv("CARE_SECRET_KEY", raising=False)
    apps: list[Flask] = []
    # Bound first, so the app can be built with the port the server got.
    server = make_server("127.0.0.1", 0, lambda env, start: apps[0](env, start), threaded=True)
    app = create_app(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'care.sqlite3'}"},
            "server": {"public_url": f"http://127.0.0.1:{server.server_port}"},
            "desks": {
                "zendesk": {
                    "adapter": "zendesk",
                    "base_url": "https://shop.zendesk.com",
                    "secret_env": ["CARE_TEST_ZD_SECRET"],
                    "api_user_id": "900",
                }
            },
        }
    )
    apps.append(app)
    st: ConnectorState = app.extensions["care_connector"]
    st.clock = lambda: NOW
    customers = [
        {
            "email": EMAIL,
            "name": "Anna",
            "licenses": [
                {"ref": "CS-1", "product": "cs-cart", "kind": "first", "purchased_on": "2025-01-10"}
            ],
            "upgrades_until": "2027-01-10",
            "credit_purchases": [{"ref": "order-1", "credits": 70, "purchased_on": "2026-02-01"}],
        }
    ]
    policy = st.settings.policy
    records = validate_entries(customers, policy=policy, desks=st.settings.desks.keys())
    with st.database.transaction() as session:
        import_customers(session, records, policy=policy, at=NOW - timedelta(days=30))
    thread = threading.Thread(target=server.serve_forever, name="approval-server", daemon=True)
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        st.database.dispose()


def approval_link(app: Flask) -> str:
    """Deliver the upgrade ticket, run the worker, and take the link from the queued reply."""
    st: ConnectorState = app.extensions["care_connector"]
    raw, headers = signed_delivery(upgrade_trigger("201"))
    answer = app.test_client().post(
        "/hooks/zendesk", data=raw, headers=headers, content_type="application/json"
    )
    assert answer.status_code == 200
    while worker.run_once(st):
        pass
    with st.database.transaction(read_only=True) as session:
        reply = session.scalars(
            select(OutboxAction.payload).where(OutboxAction.kind == "reply")
        ).one()
    found = re.search(r"http://127\.0\.0\.1:\d+/approvals/[\w.\-]+", str(reply["body"]))
    assert found is not None, reply
    return found.group(0)


def balance(app: Flask) -> int:
    st: ConnectorState = app.extensions["care_connector"]
    with st.database.transaction(read_only=True) as session:
        customer_id = find_customer(session, email=EMAIL)
        assert customer_id is not None
        return ledger.balance(session, customer_id)


def shoot(page: Page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_approve_in_a_browser(served: Flask, browser: Browser) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    link = approval_link(served)
    assert balance(served) == 120
    shots: list[Path] = []

    desktop = browser.new_page(viewport=DESKTOP)
    desktop.goto(link)
    expect(desktop.get_by_role("heading", level=1)).to_have_text("Do you agree to this estimate?")
    shots.append(shoot(desktop, "ask-desktop"))
    desktop.close()

    phone_context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    phone = phone_context.new_page()
    phone.set_default_timeout(15_000)
    shown = phone.goto(link)
    assert shown is not None and shown.status == 200
    expect(phone.locator("#estimate")).to_have_text("50 credits")
    expect(phone.locator("#balance")).to_have_text("120 credits")
    expect(phone.get_by_text("Upgrade our store")).to_be_visible()
    approve = phone.get_by_role("button", name="Approve and charge 50 credits")
    decline = phone.get_by_role("button", name="Decline")
    expect(approve).to_be_visible()
    expect(decline).to_be_visible()
    # Large enough to tap, and the page fits the phone's width (no sideways scrolling).
    box = approve.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= PHONE["width"] * 0.8
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shots.append(shoot(phone, "ask-phone"))

    approve.click()
    expect(phone.get_by_role("heading", level=1)).to_have_text(
        "Thank you: the estimate is approved"
    )
    expect(phone.get_by_text("Your balance is now 70 credits.")).to_be_visible()
    shots.append(shoot(phone, "approved-phone"))
    assert balance(served) == 70
    st: ConnectorState = served.extensions["care_connector"]
    with st.database.transaction(read_only=True) as session:
        charged = session.scalars(
            select(LedgerEntry.amount).where(LedgerEntry.kind == "charge")
        ).all()
    assert charged == [-50]

    again = phone.goto(link)
    assert again is not None and again.status == 200
    expect(phone.get_by_role("heading", level=1)).to_have_text("This estimate is already approved")
    assert phone.get_by_role("button").count() == 0
    shots.append(shoot(phone, "already-approved-phone"))

    head, _, signature = link.rpartition(".")
    tampered = f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    refused = phone.goto(tampered)
    assert refused is not None and refused.status == 404
    expect(phone.get_by_role("heading", level=1)).to_have_text("This link is not valid")
    shots.append(shoot(phone, "invalid-phone"))
    phone_context.close()

    assert balance(served) == 70
    for path in shots:
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
