"""The tables' own guarantees: CHECK constraints, unique keys, foreign keys, defaults."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.db import Database
from connector.models import (
    Base,
    CreditPurchase,
    Customer,
    Identity,
    LedgerEntry,
    License,
    QuotaAllowance,
    QuotaUsage,
    Subscription,
    Ticket,
)

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DAY = date(2026, 3, 2)


def customer(session: Session, email: str = "owner@shop.example") -> Customer:
    row = Customer(email=email)
    session.add(row)
    session.flush()
    return row


def entry(customer_id: int, key: str, *, amount: int = 10, balance_after: int = 10) -> LedgerEntry:
    return LedgerEntry(
        customer_id=customer_id,
        at=AT,
        kind="grant",
        amount=amount,
        balance_after=balance_after,
        actor="test",
        source="cli",
        key=key,
    )


def ticket(external_id: str = "4711", desk: str = "zendesk") -> Ticket:
    return Ticket(desk=desk, external_id=external_id, created_at=AT)


def test_defaults_of_a_new_customer(database: Database) -> None:
    with database.transaction() as session:
        row = customer(session)
        session.refresh(row)
        assert (row.name, row.locale, row.timezone, row.balance) == ("", "en", None, 0)
        assert (row.upgrades_until, row.upgrades_lifetime, row.erased_at) == (None, False, None)
        assert row.created_at.tzinfo == UTC and row.updated_at.tzinfo == UTC


def test_updated_at_moves_on_update(database: Database) -> None:
    with database.transaction() as session:
        row = customer(session)
        row.updated_at = AT
    with database.transaction() as session:
        session.execute(update(Customer).values(name="Renamed"))
    with database.transaction() as session:
        updated = session.scalar(select(Customer.updated_at))
    assert updated is not None and updated > AT


Build = Callable[[Session, int], list[Base]]


def allowance_twice(session: Session, customer_id: int) -> list[object]:
    """Two allowances of one month, as Core inserts: the ORM would refuse the second by its
    identity before the database is asked."""
    for allowance in (7, 4):
        session.execute(
            insert(QuotaAllowance).values(
                customer_id=customer_id, period="2026-03", kind="modification", allowance=allowance
            )
        )
    return []


# Each case: rows that break one constraint, given an existing customer's id.
VIOLATIONS: dict[str, Build] = {
    "balance below zero": lambda s, cid: [Customer(email="b@shop.example", balance=-1)],
    "email twice": lambda s, cid: [Customer(email="owner@shop.example")],
    "identity twice in a desk": lambda s, cid: [
        Identity(customer_id=cid, desk="zendesk", external_id="1"),
        Identity(customer_id=cid, desk="zendesk", external_id="1"),
    ],
    "identity of no customer": lambda s, cid: [
        Identity(customer_id=cid + 100, desk="zendesk", external_id="1")
    ],
    "license ref twice": lambda s, cid: [
        License(customer_id=cid, ref="L-1", product="cs-cart", kind="first", purchased_on=DAY),
        License(customer_id=cid, ref="L-1", product="cs-cart", kind="first", purchased_on=DAY),
    ],
    "license of an unknown kind": lambda s, cid: [
        License(customer_id=cid, ref="L-1", product="cs-cart", kind="second", purchased_on=DAY)
    ],
    "subscription ending before it starts": lambda s, cid: [
        Subscription(customer_id=cid, plan="vip", starts_on=DAY, ends_on=date(2026, 3, 1))
    ],
    "purchase ref twice": lambda s, cid: [
        CreditPurchase(customer_id=cid, ref="order-1", credits=10, purchased_on=DAY),
        CreditPurchase(customer_id=cid, ref="order-1", credits=20, purchased_on=DAY),
    ],
    "purchase of no credits": lambda s, cid: [
        CreditPurchase(customer_id=cid, ref="order-1", credits=0, purchased_on=DAY)
    ],
    "ledger key twice": lambda s, cid: [entry(cid, "k-1"), entry(cid, "k-1")],
    "ledger balance_after below zero": lambda s, cid: [
        entry(cid, "k-1", amount=-5, balance_after=-5)
    ],
    "ledger entry of no customer": lambda s, cid: [entry(cid + 100, "k-1")],
    "quota allowance twice a month": lambda s, cid: allowance_twice(s, cid),
    "ticket twice in a desk": lambda s, cid: [ticket(), ticket()],
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_constraints_refuse_bad_rows(database: Database, case: str) -> None:
    with database.transaction() as session:
        owner_id = customer(session).id
    with pytest.raises(IntegrityError), database.transaction() as session:
        for row in VIOLATIONS[case](session, owner_id):
            session.add(row)
            session.flush()


def test_balance_cannot_be_updated_below_zero(database: Database) -> None:
    with database.transaction() as session:
        customer(session).balance = 5
    with pytest.raises(IntegrityError), database.transaction() as session:
        session.execute(update(Customer).values(balance=Customer.balance - 6))
    with database.transaction() as session:
        assert session.scalar(select(Customer.balance)) == 5


def test_quota_usage_counts_a_ticket_once_per_kind(database: Database) -> None:
    with database.transaction() as session:
        owner_id = customer(session).id
        row = ticket()
        session.add(row)
        session.flush()
        usage = {"customer_id": owner_id, "period": "2026-03", "ticket_id": row.id}
        session.add(QuotaUsage(**usage, kind="modification"))
        session.add(QuotaUsage(**usage, kind="configuration"))  # Another kind: fine.
        ticket_id = row.id
    with pytest.raises(IntegrityError), database.transaction() as session:
        session.add(
            QuotaUsage(
                customer_id=owner_id, period="2026-03", ticket_id=ticket_id, kind="modification"
            )
        )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("zendesk", "1"), ("freshdesk", "1")),  # The same user id in two desks.
        (("zendesk", "1"), ("zendesk", "2")),
    ],
)
def test_identities_are_unique_per_desk_only(
    database: Database, first: tuple[str, str], second: tuple[str, str]
) -> None:
    with database.transaction() as session:
        owner_id = customer(session).id
        other_id = customer(session, "other@shop.example").id
        session.add(Identity(customer_id=owner_id, desk=first[0], external_id=first[1]))
        session.add(Identity(customer_id=other_id, desk=second[0], external_id=second[1]))
    with database.transaction() as session:
        assert len(session.scalars(select(Identity)).all()) == 2


def test_a_ledger_entry_can_point_at_the_entry_it_reverses(database: Database) -> None:
    with database.transaction() as session:
        owner_id = customer(session).id
        original = entry(owner_id, "k-1")
        session.add(original)
        session.flush()
        reversal = entry(owner_id, "k-1:reversal", amount=-10, balance_after=0)
        reversal.reverses_id = original.id
        session.add(reversal)
    with database.transaction() as session:
        pairs = session.execute(select(LedgerEntry.key, LedgerEntry.reverses_id)).all()
    assert sorted(pairs, key=lambda p: p[0]) == [("k-1", None), ("k-1:reversal", 1)]
