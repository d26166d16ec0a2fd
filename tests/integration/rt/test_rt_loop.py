"""The whole loop against a real Request Tracker 5 on loopback: a ticket created in RT reaches
the connector through the scrip ``webhooks install`` put there, the connector decides, and its
write-backs are read back from RT itself (``GET /ticket/{id}`` and its history), never from the
connector.

One RT and one connector serve the whole module (starting RT takes seconds); the tests run in
file order. Skipped only where RT is not installed (CI installs it in .ci/run).
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from adapters.rt import RTAdapter
from connector.config import load_settings
from tests.integration.rt.harness import (
    CONNECTOR_PASSWORD,
    CONNECTOR_USER,
    HAVE_RT,
    ROOT_PASSWORD,
    ConnectorServer,
    Customer,
    RTApi,
    RTServer,
    Transaction,
    wait_for,
)

pytestmark = pytest.mark.skipif(not HAVE_RT, reason="Request Tracker 5 is not installed")

VIP = Customer("vip@shop.example", "vip-pass-5123")
CREDITS = Customer("credits@shop.example", "credits-pass-5123")
OFFLINE = Customer("offline@shop.example", "offline-pass-5123")
MARKER = re.compile(r"\[care:[0-9]+\.[0-9]+\]")
TAGS_FIELD = "Care"
SCRIP = "Care Connector (rt): webhook"


def customers() -> list[dict[str, object]]:
    today = datetime.now(UTC).date()
    return [
        {
            "email": VIP.email,
            "name": "Vera",
            "subscriptions": [
                {
                    "plan": "vip",
                    "starts_on": (today - timedelta(days=30)).isoformat(),
                    "ends_on": (today + timedelta(days=330)).isoformat(),
                }
            ],
            "upgrades_until": "lifetime",
        },
        {
            "email": CREDITS.email,
            "name": "Anna",
            "upgrades_until": (today + timedelta(days=365)).isoformat(),
            "credit_purchases": [
                {
                    "ref": "o-1",
                    "credits": 70,
                    "purchased_on": (today - timedelta(days=9)).isoformat(),
                }
            ],
        },
        {
            "email": OFFLINE.email,
            "name": "Oleg",
            "subscriptions": [
                {
                    "plan": "vip",
                    "starts_on": (today - timedelta(days=30)).isoformat(),
                    "ends_on": (today + timedelta(days=330)).isoformat(),
                }
            ],
        },
    ]


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RTServer]:
    server = RTServer(tmp_path_factory.mktemp("rt"))
    server.init_database()
    server.add_users([VIP, CREDITS, OFFLINE])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def root(rt: RTServer) -> RTApi:
    return rt.api("root", ROOT_PASSWORD)


@pytest.fixture(scope="module")
def connector(
    rt: RTServer, root: RTApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConnectorServer]:
    server = ConnectorServer(
        tmp_path_factory.mktemp("connector"),
        rt,
        api_user_id=root.user_id(CONNECTOR_USER),
        secret=secrets.token_urlsafe(24),
    )
    server.import_customers(customers())
    server.install_output = server.install()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def as_customer(rt: RTServer, customer: Customer) -> RTApi:
    return rt.api(customer.email, customer.password)


def by_connector(history: list[Transaction], kind: str) -> list[Transaction]:
    return [t for t in history if t.creator == CONNECTOR_USER and t.type == kind]


def rt_rows(rt: RTServer, sql: str, *params: object) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(f"file:{rt.database}?mode=ro", uri=True, timeout=10)) as db:
        return list(db.execute(sql, params))


def settled(
    api: RTApi, ticket_id: str, check: Callable[[list[Transaction]], object]
) -> list[Transaction]:
    """The ticket's history once ``check(history)`` holds."""

    def probe() -> list[Transaction] | None:
        history = api.history(ticket_id)
        return history if check(history) else None

    return wait_for(f"ticket {ticket_id} in RT", probe, timeout=60)


def test_the_install_created_one_scrip_and_one_field_and_is_safe_to_rerun(
    rt: RTServer, connector: ConnectorServer
) -> None:
    first = connector.install_output
    assert f"created custom field '{TAGS_FIELD}'" in first
    assert f"created scrip '{SCRIP}'" in first
    again = connector.install()
    assert f"unchanged scrip '{SCRIP}'" in again
    assert f"unchanged custom field '{TAGS_FIELD}'" in again
    assert rt_rows(rt, "SELECT COUNT(*) FROM Scrips WHERE Description = ?", SCRIP) == [(1,)]
    check = connector.cli("config", "check").stdout
    assert f"ok: user {connector.api_user_id} {CONNECTOR_USER} (RT 5." in check
    assert rt_rows(
        rt, "SELECT MaxValues FROM CustomFields WHERE Name = ? AND Disabled = 0", TAGS_FIELD
    ) == [(0,)]


def test_a_vip_ticket_gets_the_vip_priority_the_plan_and_the_internal_note(
    rt: RTServer, root: RTApi, connector: ConnectorServer
) -> None:
    ticket = as_customer(rt, VIP).create_ticket(
        "How to set up shipping methods?", "Where are the shipping settings?", VIP.email
    )
    history = settled(root, ticket, lambda h: by_connector(h, "Comment"))
    assert int(root.ticket(ticket)["Priority"]) == 90
    values = root.field_values(ticket, TAGS_FIELD)
    assert "care_plan_vip" in values and "care_category_question" in values
    (note,) = by_connector(history, "Comment")
    assert "VIP" in note.text and MARKER.search(note.text)
    assert "Estimate" in note.text
    assert by_connector(history, "Correspond") == []  # nothing to agree to: no reply


def test_a_credits_upgrade_is_estimated_agreed_charged_and_confirmed(
    rt: RTServer, root: RTApi, connector: ConnectorServer
) -> None:
    customer = as_customer(rt, CREDITS)
    ticket = customer.create_ticket(
        "Upgrade our store", "Please upgrade from 4.3.1 to 4.3.9", CREDITS.email
    )
    history = settled(root, ticket, lambda h: by_connector(h, "Correspond"))
    (note,) = by_connector(history, "Comment")
    (request,) = by_connector(history, "Correspond")
    assert "Estimate: 50 credits" in note.text
    assert "Estimate: 50 credits" in request.text and "I agree" in request.text
    assert f"{connector.url}/" in request.text  # the approval link
    assert "Your balance: 70 credits; after this charge it would be 20" in request.text
    assert int(root.ticket(ticket)["Priority"]) == 50
    assert "care_awaiting_approval" in root.field_values(ticket, TAGS_FIELD)

    customer.correspond(ticket, "I agree, please go ahead.")
    history = settled(root, ticket, lambda h: len(by_connector(h, "Correspond")) >= 2)
    confirmation = by_connector(history, "Correspond")[-1]
    assert "50 credits have been charged" in confirmation.text
    assert "Your balance is now 20 credits" in confirmation.text
    values = root.field_values(ticket, TAGS_FIELD)
    assert "care_charged" in values and "care_awaiting_approval" not in values
    balance = json.loads(connector.cli("credits", "balance", CREDITS.email, "--json").stdout)
    assert balance["balance"] == 20


def test_the_connectors_own_writes_trigger_nothing(
    rt: RTServer, root: RTApi, connector: ConnectorServer
) -> None:
    time.sleep(2)  # anything the last writes could still cause has arrived by now
    delivered = {
        str(json.loads(headers)["X-Care-Delivery"])
        for (headers,) in connector.query("SELECT headers FROM inbound_deliveries")
    }
    tickets = [item["id"] for item in root.get("/tickets", query="id > 0", per_page=100)["items"]]
    assert tickets  # the tests above ran first (file order)
    written = 0
    for ticket in tickets:
        for txn in root.history(str(ticket)):
            if txn.creator == CONNECTOR_USER:
                written += 1
                assert txn.id not in delivered, f"the connector's own {txn.type} was sent back"
    assert written >= 4 * len(tickets)  # priority or field values, notes, replies
    # Every delivery was taken: none refused, none failed.
    outcomes = {row[0] for row in connector.query("SELECT outcome FROM inbound_deliveries")}
    assert outcomes <= {"accepted", "ignored"}, outcomes


def test_a_webhook_replayed_by_hand_is_processed_once(
    rt: RTServer, root: RTApi, connector: ConnectorServer
) -> None:
    ticket = as_customer(rt, VIP).create_ticket(
        "Where is the orders page?", "How do I find the orders page?", VIP.email
    )
    settled(root, ticket, lambda h: by_connector(h, "Comment"))
    rows = connector.query(
        "SELECT headers, body FROM inbound_deliveries WHERE outcome = 'accepted' ORDER BY id DESC"
    )
    headers, body = next(
        (json.loads(h), bytes(b)) for h, b in rows if json.loads(b)["ticket"]["id"] == int(ticket)
    )
    sent = {k: v for k, v in headers.items() if k.lower().startswith(("x-care", "content-type"))}
    for _ in range(2):
        answer = requests.post(f"{connector.url}/hooks/rt", data=body, headers=sent, timeout=10)
        assert answer.status_code == 200 and answer.json() == {"status": "duplicate"}
    forged = requests.post(
        f"{connector.url}/hooks/rt",
        data=body.replace(b"orders page", b"orders PAGE"),
        headers=sent,
        timeout=10,
    )
    assert forged.status_code == 401
    time.sleep(2)
    history = root.history(ticket)
    assert len(by_connector(history, "Comment")) == 1
    assert len([t for t in history if t.creator == CONNECTOR_USER and t.type == "Set"]) == 1


def test_rt_stopped_while_the_outbox_has_work_loses_nothing(
    rt: RTServer, root: RTApi, connector: ConnectorServer
) -> None:
    rt.stop()
    try:
        # RT's web server is down; RT's own Perl API opens the ticket and runs the scrip.
        ticket = rt.offline_ticket(OFFLINE.email, "Shipping settings", "Where are the settings?")

        def failing() -> bool:
            rows = connector.query(
                "SELECT status, attempts, last_error FROM outbox WHERE ticket_id = ?", ticket
            )
            # One ticket's write-backs go in order: the first is tried, the others wait.
            return (
                bool(rows)
                and all(status == "pending" for status, _, _ in rows)
                and any(
                    attempts >= 1 and "cannot reach the desk" in (error or "")
                    for _, attempts, error in rows
                )
            )

        wait_for(
            "write-backs failing while RT is down",
            failing,
            timeout=60,
            about=lambda: connector.query("SELECT kind, status, attempts FROM outbox"),
        )
    finally:
        rt.start()
    history = settled(root, ticket, lambda h: by_connector(h, "Comment"))
    assert len(by_connector(history, "Comment")) == 1
    assert int(root.ticket(ticket)["Priority"]) == 90
    assert "care_plan_vip" in root.field_values(ticket, TAGS_FIELD)
    statuses = {row[0] for row in connector.query("SELECT status FROM outbox")}
    assert statuses == {"sent"}, statuses


def test_tickets_per_second_through_the_real_loop(
    rt: RTServer, root: RTApi, connector: ConnectorServer, tmp_path: Path
) -> None:
    """Ten tickets created back to back; the figure is printed (``-s``) and kept loose: the
    machine is shared."""
    count = 10
    customer = as_customer(rt, VIP)
    start = time.monotonic()
    ids = [
        customer.create_ticket(f"How to set up taxes #{n}?", "Where are the taxes?", VIP.email)
        for n in range(count)
    ]
    for ticket in ids:
        settled(root, ticket, lambda h: by_connector(h, "Comment"))
    elapsed = time.monotonic() - start
    print(f"\nrt loop: {count} tickets in {elapsed:.1f} s = {count / elapsed:.2f} tickets/s")
    assert elapsed < 120


def test_the_client_against_rt_itself(
    rt: RTServer, root: RTApi, connector: ConnectorServer
) -> None:
    """The calls the pipeline above made only in passing: a notice opened once per marker
    (the search by requestor and subject is TicketSQL), markers read back, tags removed."""
    settings = load_settings(
        connector.config,
        environ={"CARE_IT_RT_SECRET": connector.secret, "CARE_IT_RT_PASSWORD": CONNECTOR_PASSWORD},
    )
    client = RTAdapter(settings.desks["rt"]).client()
    body = "Your VIP plan ends in 7 days.\n\n[care:notice.1]"
    client.notify_customer(VIP.email, "Your plan ends soon", body, marker="notice.1")
    client.notify_customer(VIP.email, "Your plan ends soon", body, marker="notice.1")
    found = root.get(
        "/tickets",
        query=f"Requestor.EmailAddress = '{VIP.email}' AND Subject = 'Your plan ends soon'",
    )["items"]
    assert len(found) == 1
    notice = str(found[0]["id"])
    assert client.has_marker(notice, "notice.1") and not client.has_marker(notice, "notice.2")
    client.add_tags(notice, ["care_a", "care_b"])
    client.remove_tags(notice, ["care_a"])
    assert root.field_values(notice, TAGS_FIELD) == ["care_b"]
    assert client.get_priority(notice) == str(root.ticket(notice)["Priority"])
    requester = client.get_requester(root.user_id(VIP.email))
    assert requester is not None and requester.email == VIP.email
