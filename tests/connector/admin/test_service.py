"""The admin service layer on its own: header masking, chart figures, ids out of range, the
explanation of a ticket nobody could match, and the audit of every change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from connector import ledger
from connector.admin import service
from connector.admin.service import AdminError
from connector.db import Database
from connector.models import AdminAudit, Customer, Ticket
from rules.policy import Policy

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


def test_mask_headers_hides_every_secret_by_name() -> None:
    headers = {
        "X-Zendesk-Webhook-Signature": "c2lnbmF0dXJl",
        "x-hub-signature": "sha1=abc",
        "Authorization": "Basic dXNlcjpwYXNz",
        "X-Care-Secret": "shared",
        "X-Api-Key": "key",
        "X-Auth-Token": "tok",
        "Cookie": "session=1",
        "X-Password": "pw",
        "Content-Type": "application/json",
        "X-Zammad-Delivery": "d-1",
        "X-Empty-Token": "",
    }
    masked = service.mask_headers(headers)
    kept = {"Content-Type", "X-Zammad-Delivery", "X-Empty-Token"}
    assert {k for k, v in masked.items() if v == service.MASK} == set(headers) - kept
    assert masked["Content-Type"] == "application/json" and masked["X-Empty-Token"] == ""


def _customer(session: object, email: str = "a@shop.example") -> int:
    row = Customer(email=email, name="A")
    session.add(row)  # type: ignore[attr-defined]
    session.flush()  # type: ignore[attr-defined]
    return row.id


def test_daily_credits_counts_charges_and_refunds_per_support_day(database: Database) -> None:
    with database.transaction() as session:
        cid = _customer(session)
        ledger.grant(
            session, customer_id=cid, credits=100, key="g", actor="t", source="admin", at=NOW
        )
        # 21:00 UTC on the 8th is 01:00 on the 9th at GMT+4.
        late = datetime(2026, 3, 8, 21, 0, tzinfo=UTC)
        ledger.charge(
            session, customer_id=cid, credits=20, key="c1", actor="t", source="webhook", at=late
        )
        ledger.charge(
            session, customer_id=cid, credits=5, key="c2", actor="t", source="webhook", at=NOW
        )
        ledger.refund(
            session, customer_id=cid, credits=5, key="r1", actor="t", source="webhook", at=NOW
        )
        days = service.daily_credits(session, days=3, now=NOW, zone="Etc/GMT-4")
    assert days == [
        {"day": "2026-03-08", "charged": 0, "refunded": 0},
        {"day": "2026-03-09", "charged": 20, "refunded": 0},
        {"day": "2026-03-10", "charged": 5, "refunded": 5},
    ]
    with database.transaction() as session, pytest.raises(AdminError) as err:
        service.daily_credits(session, days=0, now=NOW, zone="Etc/GMT-4")
    assert err.value.status == 422


def test_first_reply_targets_met_missed_and_open(database: Database) -> None:
    due = NOW + timedelta(hours=1)
    rows = [
        ("vip", due, NOW),  # met
        ("vip", due, due + timedelta(minutes=1)),  # missed: replied late
        ("vip", NOW - timedelta(hours=1), None),  # missed: overdue, no reply
        ("credits", due, None),  # open
        ("credits", None, None),  # no target: not counted
    ]
    with database.transaction() as session:
        for n, (plan, first_due, replied) in enumerate(rows):
            session.add(
                Ticket(
                    desk="zendesk",
                    external_id=str(n),
                    plan=plan,
                    created_at=NOW - timedelta(hours=2),
                    first_reply_due=first_due,
                    first_agent_reply_at=replied,
                )
            )
        session.add(
            Ticket(
                desk="zendesk",
                external_id="old",
                plan="vip",
                created_at=NOW - timedelta(days=40),
                first_reply_due=due,
            )
        )
    with database.transaction(read_only=True) as session:
        found = service.first_reply_by_plan(session, days=30, now=NOW, plans=["vip", "standard"])
    assert found == [
        {"plan": "vip", "met": 1, "missed": 2, "open": 0, "total": 3},
        {"plan": "standard", "met": 0, "missed": 0, "open": 0, "total": 0},
        {"plan": "credits", "met": 0, "missed": 0, "open": 1, "total": 1},
    ]


@pytest.mark.parametrize("bad_id", [0, -1, 2**31, 2**70])
def test_ids_no_row_can_have_are_not_found(database: Database, policy: Policy, bad_id: int) -> None:
    with database.transaction() as session:
        for call in (
            lambda: service.customer_detail(session, bad_id, policy=policy, now=NOW),
            lambda: service.ticket_detail(session, bad_id, policy=policy),
            lambda: service.delivery_detail(session, bad_id),
            lambda: service.outbox_detail(session, bad_id),
            lambda: service.reverse_entry(session, bad_id, reason="x", actor="t", now=NOW),
            lambda: service.erase_customer(session, bad_id, actor="t", now=NOW),
        ):
            with pytest.raises(AdminError) as err:
                call()
            assert err.value.status == 404


def test_explanation_of_an_unmatched_requester(database: Database, policy: Policy) -> None:
    with database.transaction() as session:
        session.add(
            Ticket(
                desk="zendesk",
                external_id="9",
                plan="credits",
                category=None,
                category_source="none",
                created_at=NOW,
            )
        )
    with database.transaction(read_only=True) as session:
        ticket = session.scalars(select(Ticket)).one()
        steps = {s["step"]: s for s in service.explain_ticket(session, ticket, policy=policy)}
    assert "matched no customer" in steps["plan"]["detail"]
    assert steps["category"]["outcome"] == "none"
    assert steps["estimate"]["outcome"] == "none"
    assert steps["coverage"]["outcome"] == "not assessed"
    assert steps["first_reply"]["outcome"] == "no target"


def test_every_change_needs_an_actor_and_is_audited(database: Database) -> None:
    with database.transaction() as session:
        cid = _customer(session)
        with pytest.raises(AdminError) as err:
            service.grant_credits(session, cid, 5, reason="x", actor="", now=NOW)
        assert err.value.status == 422
    with database.transaction() as session:
        service.grant_credits(session, cid, 5, reason="x", actor="dora", now=NOW)
        service.adjust_credits(session, cid, -2, reason="y", actor="dora", now=NOW)
    with database.transaction(read_only=True) as session:
        rows = session.scalars(select(AdminAudit).order_by(AdminAudit.id)).all()
        assert [(r.actor, r.action, r.details["amount"]) for r in rows] == [
            ("dora", "credits.grant", 5),
            ("dora", "credits.adjust", -2),
        ]
        page = service.audit_page(session, target=f"customer:{cid}", per_page=1)
        assert (page.total, page.pages, page.items[0]["action"]) == (2, 2, "credits.adjust")
