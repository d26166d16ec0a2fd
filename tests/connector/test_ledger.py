"""The ledger's rules, one at a time, on SQLite and PostgreSQL (the ``database`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from connector import ledger
from connector.db import Database
from connector.ledger import EntryKind, Source
from connector.models import Customer, LedgerEntry

AT = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


def new_customer(database: Database, email: str = "owner@shop.example") -> int:
    with database.transaction() as session:
        customer = Customer(email=email, name=email.split("@")[0])
        session.add(customer)
        session.flush()
        return customer.id


def post(database: Database, customer_id: int, **fields: Any) -> ledger.LedgerEntry:
    fields.setdefault("actor", "agent@vendor.example")
    fields.setdefault("source", Source.ADMIN)
    fields.setdefault("at", AT)
    with database.transaction() as session:
        return ledger.post(session, customer_id=customer_id, **fields)


def balance(database: Database, customer_id: int) -> int:
    with database.transaction() as session:
        return ledger.balance(session, customer_id)


def entries(database: Database, customer_id: int) -> list[LedgerEntry]:
    with database.transaction() as session:
        return list(ledger.history(session, customer_id))


@pytest.fixture
def funded(database: Database) -> int:
    """A customer who bought 100 credits."""
    customer_id = new_customer(database)
    post(database, customer_id, kind=EntryKind.PURCHASE, amount=100, key="order-1")
    return customer_id


def test_charge_records_every_field_and_moves_the_balance(database: Database, funded: int) -> None:
    entry = post(
        database,
        funded,
        kind=EntryKind.CHARGE,
        amount=-30,
        key="zendesk:delivery-9:charge",
        actor="system",
        source=Source.WEBHOOK,
        reason="configuration",
        ticket="zendesk:4711",
        at=AT + timedelta(hours=1),
    )
    assert (entry.kind, entry.amount, entry.balance_after) == ("charge", -30, 70)
    assert (entry.ticket, entry.actor, entry.source) == ("zendesk:4711", "system", "webhook")
    assert (entry.reason, entry.key, entry.reverses_id) == (
        "configuration",
        "zendesk:delivery-9:charge",
        None,
    )
    assert entry.at == AT + timedelta(hours=1)
    assert balance(database, funded) == 70
    stored = entries(database, funded)[-1]
    assert (stored.id, stored.at, stored.at.tzinfo is not None) == (entry.id, entry.at, True)


@pytest.mark.parametrize(
    ("kind", "amount", "message"),
    [
        (EntryKind.CHARGE, 10, "must be negative"),
        (EntryKind.REFUND, -10, "must be positive"),
        (EntryKind.GRANT, -1, "must be positive"),
        (EntryKind.PURCHASE, -5, "must be positive"),
        (EntryKind.LICENSE_GRANT, -50, "must be positive"),
        (EntryKind.ADJUSTMENT, 0, "must not be zero"),
        (EntryKind.CHARGE, 0, "must not be zero"),
        (EntryKind.GRANT, 2.0, "whole number"),
        (EntryKind.GRANT, True, "whole number"),
        (EntryKind.GRANT, 2**31, "at most 2147483647"),
        (EntryKind.CHARGE, -(2**31), "at most 2147483647"),
    ],
)
def test_malformed_amounts_are_refused(
    database: Database, funded: int, kind: EntryKind, amount: Any, message: str
) -> None:
    with pytest.raises(ledger.InvalidEntryError, match=message):
        post(database, funded, kind=kind, amount=amount, key="bad")
    assert balance(database, funded) == 100
    assert len(entries(database, funded)) == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("key", "", "idempotency key is required"),
        ("actor", "", "an actor is required"),
        ("at", datetime(2026, 3, 2, 10, 30), "aware datetime"),
        ("kind", "gift", "is not a valid EntryKind"),
        ("source", "email", "is not a valid Source"),
    ],
)
def test_malformed_entries_are_refused(
    database: Database, funded: int, field: str, value: Any, message: str
) -> None:
    fields: dict[str, Any] = {"kind": EntryKind.GRANT, "amount": 5, "key": "k", field: value}
    with pytest.raises(ledger.InvalidEntryError, match=message):
        post(database, funded, **fields)
    assert balance(database, funded) == 100


def test_a_charge_beyond_the_balance_is_refused_with_the_shortfall(
    database: Database, funded: int
) -> None:
    with pytest.raises(ledger.InsufficientCreditsError) as caught:
        post(database, funded, kind=EntryKind.CHARGE, amount=-130, key="upgrade")
    assert (caught.value.balance, caught.value.shortfall) == (100, 30)
    assert caught.value.customer_id == funded
    assert isinstance(caught.value, ledger.LedgerError)
    assert balance(database, funded) == 100
    assert [e.key for e in entries(database, funded)] == ["order-1"]


def test_a_charge_of_the_whole_balance_leaves_zero(database: Database, funded: int) -> None:
    entry = post(database, funded, kind=EntryKind.CHARGE, amount=-100, key="all")
    assert entry.balance_after == 0
    assert balance(database, funded) == 0


def test_a_negative_adjustment_cannot_go_below_zero_either(database: Database, funded: int) -> None:
    with pytest.raises(ledger.InsufficientCreditsError) as caught:
        post(database, funded, kind=EntryKind.ADJUSTMENT, amount=-101, key="fix")
    assert (caught.value.balance, caught.value.shortfall) == (100, 1)
    assert (
        post(database, funded, kind=EntryKind.ADJUSTMENT, amount=-40, key="fix2").balance_after
        == 60
    )


def test_a_repeated_key_returns_the_first_entry_unchanged(database: Database, funded: int) -> None:
    first = post(database, funded, kind=EntryKind.CHARGE, amount=-20, key="delivery-1")
    again = post(
        database, funded, kind=EntryKind.CHARGE, amount=-20, key="delivery-1", reason="retry"
    )
    assert (again.id, again.balance_after, again.reason) == (first.id, 80, "")
    assert balance(database, funded) == 80
    assert [e.key for e in entries(database, funded)] == ["order-1", "delivery-1"]


def test_a_repeat_is_not_refused_after_the_balance_dropped(database: Database, funded: int) -> None:
    first = post(database, funded, kind=EntryKind.CHARGE, amount=-60, key="a")
    post(database, funded, kind=EntryKind.CHARGE, amount=-30, key="b")
    # Balance is 10 now; repeating "a" must return it, not refuse a fresh 60-credit charge.
    assert post(database, funded, kind=EntryKind.CHARGE, amount=-60, key="a").id == first.id
    assert balance(database, funded) == 10


@pytest.mark.parametrize(
    ("change", "value"),
    [("amount", -21), ("kind", EntryKind.ADJUSTMENT), ("customer", None)],
)
def test_a_key_reused_for_another_movement_is_a_conflict(
    database: Database, funded: int, change: str, value: Any
) -> None:
    first = post(database, funded, kind=EntryKind.CHARGE, amount=-20, key="delivery-1")
    fields: dict[str, Any] = {"kind": EntryKind.CHARGE, "amount": -20, "key": "delivery-1"}
    customer_id = funded
    if change == "customer":
        customer_id = new_customer(database, "other@shop.example")
        post(database, customer_id, kind=EntryKind.GRANT, amount=50, key="welcome")
    else:
        fields[change] = value
    with pytest.raises(ledger.IdempotencyConflictError) as caught:
        post(database, customer_id, **fields)
    assert (caught.value.key, caught.value.existing_id) == ("delivery-1", first.id)
    assert (caught.value.existing_kind, caught.value.existing_amount) == (EntryKind.CHARGE, -20)
    assert caught.value.existing_customer_id == funded
    assert balance(database, funded) == 80


def test_unknown_customers_are_refused(database: Database) -> None:
    with pytest.raises(ledger.UnknownCustomerError) as caught:
        post(database, 404, kind=EntryKind.GRANT, amount=5, key="k")
    assert caught.value.customer_id == 404
    with database.transaction() as session:
        with pytest.raises(ledger.UnknownCustomerError):
            ledger.balance(session, 404)
        with pytest.raises(ledger.UnknownCustomerError):
            ledger.history(session, 404)
        assert session.scalars(select(LedgerEntry)).all() == []


@pytest.mark.parametrize(
    ("helper", "kind", "sign"),
    [
        (ledger.charge, EntryKind.CHARGE, -1),
        (ledger.refund, EntryKind.REFUND, 1),
        (ledger.grant, EntryKind.GRANT, 1),
    ],
)
def test_helpers_take_positive_credits_and_sign_them(
    database: Database, funded: int, helper: Any, kind: EntryKind, sign: int
) -> None:
    with database.transaction() as session:
        entry = helper(
            session,
            customer_id=funded,
            credits=15,
            key="h",
            actor="a",
            source=Source.JOB,
            at=AT,
        )
    assert (entry.kind, entry.amount, entry.balance_after) == (kind, 15 * sign, 100 + 15 * sign)
    with database.transaction() as session, pytest.raises(ledger.InvalidEntryError):
        helper(session, customer_id=funded, credits=-15, key="h2", actor="a", source="job", at=AT)
    assert balance(database, funded) == 100 + 15 * sign


@pytest.mark.parametrize("kind", [EntryKind.PURCHASE, EntryKind.LICENSE_GRANT])
def test_grant_posts_purchases_and_license_grants(
    database: Database, funded: int, kind: EntryKind
) -> None:
    with database.transaction() as session:
        entry = ledger.grant(
            session,
            customer_id=funded,
            credits=50,
            key="L-1001",
            actor="import",
            source=Source.IMPORT,
            at=AT,
            kind=kind,
        )
    assert (entry.kind, entry.balance_after) == (kind, 150)


def test_grant_refuses_a_debit_kind(database: Database, funded: int) -> None:
    with database.transaction() as session, pytest.raises(ledger.InvalidEntryError):
        ledger.grant(
            session,
            customer_id=funded,
            credits=5,
            key="k",
            actor="a",
            source=Source.CLI,
            at=AT,
            kind=EntryKind.CHARGE,
        )


def test_reverse_posts_the_opposite_amount_and_keeps_the_original(
    database: Database, funded: int
) -> None:
    charge = post(
        database, funded, kind=EntryKind.CHARGE, amount=-40, key="c", ticket="rt:7", reason="x"
    )
    before = [(e.id, e.amount, e.balance_after, e.key) for e in entries(database, funded)]
    with database.transaction() as session:
        reversal = ledger.reverse(
            session, charge.id, actor="lead", source=Source.ADMIN, reason="charged twice", at=AT
        )
    assert (reversal.kind, reversal.amount, reversal.balance_after) == ("adjustment", 40, 100)
    assert (reversal.reverses_id, reversal.key, reversal.ticket) == (
        charge.id,
        f"reverse:{charge.id}",
        "rt:7",
    )
    after = [(e.id, e.amount, e.balance_after, e.key) for e in entries(database, funded)]
    assert after[:-1] == before  # Nothing earlier was touched.
    assert balance(database, funded) == 100


def test_reverse_is_idempotent_and_happens_once(database: Database, funded: int) -> None:
    charge = post(database, funded, kind=EntryKind.CHARGE, amount=-40, key="c")
    with database.transaction() as session:
        first = ledger.reverse(
            session, charge.id, actor="a", source=Source.ADMIN, reason="r", at=AT
        )
    with database.transaction() as session:
        again = ledger.reverse(
            session, charge.id, actor="a", source=Source.ADMIN, reason="r", at=AT
        )
    assert again.id == first.id
    with database.transaction() as session, pytest.raises(ledger.AlreadyReversedError) as caught:
        ledger.reverse(
            session, charge.id, actor="a", source=Source.ADMIN, reason="r", at=AT, key="other"
        )
    assert (caught.value.entry_id, caught.value.reversal_id) == (charge.id, first.id)
    assert balance(database, funded) == 100


def test_reversing_credits_already_spent_is_refused(database: Database, funded: int) -> None:
    gift = post(database, funded, kind=EntryKind.GRANT, amount=50, key="gift")
    post(database, funded, kind=EntryKind.CHARGE, amount=-120, key="big")
    with (
        database.transaction() as session,
        pytest.raises(ledger.InsufficientCreditsError) as caught,
    ):
        ledger.reverse(session, gift.id, actor="a", source=Source.ADMIN, reason="r", at=AT)
    assert (caught.value.balance, caught.value.shortfall) == (30, 20)


def test_reversing_an_unknown_entry_is_refused(database: Database) -> None:
    with database.transaction() as session, pytest.raises(ledger.UnknownEntryError) as caught:
        ledger.reverse(session, 99, actor="a", source=Source.ADMIN, reason="r", at=AT)
    assert caught.value.entry_id == 99


def test_history_is_in_posting_order_and_replays_to_each_balance(
    database: Database, funded: int
) -> None:
    post(database, funded, kind=EntryKind.CHARGE, amount=-50, key="upgrade")
    post(database, funded, kind=EntryKind.REFUND, amount=10, key="recat")
    post(database, funded, kind=EntryKind.GRANT, amount=5, key="sorry")
    history = entries(database, funded)
    assert [(e.key, e.amount, e.balance_after) for e in history] == [
        ("order-1", 100, 100),
        ("upgrade", -50, 50),
        ("recat", 10, 60),
        ("sorry", 5, 65),
    ]
    running = 0
    for entry in history:
        running += entry.amount
        assert entry.balance_after == running


def test_history_is_per_customer(database: Database, funded: int) -> None:
    other = new_customer(database, "other@shop.example")
    post(database, other, kind=EntryKind.GRANT, amount=7, key="other-gift")
    assert [e.key for e in entries(database, funded)] == ["order-1"]
    assert [e.key for e in entries(database, other)] == ["other-gift"]


def test_verify_is_empty_for_a_consistent_ledger(database: Database, funded: int) -> None:
    new_customer(database, "nobody@shop.example")  # No entries, balance 0: consistent.
    post(database, funded, kind=EntryKind.CHARGE, amount=-25, key="c")
    with database.transaction() as session:
        assert ledger.verify(session) == []


def test_verify_names_the_customers_whose_balance_drifted(database: Database, funded: int) -> None:
    stranger = new_customer(database, "stranger@shop.example")
    new_customer(database, "fine@shop.example")
    with database.transaction() as session:
        # Writes that bypass the ledger, as a careless script would.
        session.execute(text("UPDATE customers SET balance = 90 WHERE id = :id"), {"id": funded})
        session.execute(text("UPDATE customers SET balance = 3 WHERE id = :id"), {"id": stranger})
    with database.transaction() as session:
        found = ledger.verify(session)
    assert found == [
        ledger.Discrepancy("owner@shop.example", 90, 100),
        ledger.Discrepancy("stranger@shop.example", 3, 0),
    ]
    assert found[0].email == "owner@shop.example" and found[0].total == 100


def test_the_posting_and_the_callers_work_commit_or_roll_back_together(
    database: Database, funded: int
) -> None:
    with pytest.raises(RuntimeError), database.transaction() as session:
        ledger.post(
            session,
            customer_id=funded,
            kind=EntryKind.CHARGE,
            amount=-10,
            key="c",
            actor="a",
            source=Source.WEBHOOK,
            at=AT,
        )
        raise RuntimeError("the ticket update failed")
    assert balance(database, funded) == 100
    assert [e.key for e in entries(database, funded)] == ["order-1"]


def test_the_maintained_balance_is_visible_on_the_customer_in_the_same_session(
    database: Database, funded: int
) -> None:
    with database.transaction() as session:
        customer = session.get(Customer, funded)
        assert customer is not None and customer.balance == 100
        ledger.post(
            session,
            customer_id=funded,
            kind=EntryKind.CHARGE,
            amount=-10,
            key="c",
            actor="a",
            source=Source.WEBHOOK,
            at=AT,
        )
        assert customer.balance == 90
