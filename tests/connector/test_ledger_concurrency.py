"""Many threads posting to one customer: no lost update, never negative, each key once.

PostgreSQL (``CARE_TEST_DATABASE_URL``) runs 32 threads and 1,000 movements; SQLite, whose
writers queue on one lock, 4 threads and 200. Keys repeat on purpose, so the same movement
is often posted by two threads at the same moment.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from connector import ledger
from connector.db import Database
from connector.ledger import EntryKind, Source
from connector.models import Customer

AT = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)

#: dialect -> (threads, movements)
LOAD = {"postgresql": (32, 1_000), "sqlite": (4, 200)}

OPENING_BALANCE = 150


@dataclass(frozen=True)
class Movement:
    key: str
    kind: EntryKind
    amount: int


@dataclass
class Outcome:
    movement: Movement
    entry_id: int | None = None  # Set when the post returned an entry.
    refused: ledger.InsufficientCreditsError | None = None


@pytest.fixture
def pool(database: Database) -> Iterator[Database]:
    """The test database with a connection for every thread.

    On PostgreSQL the default pool (5 + 10 overflow) would queue 32 threads in the pool
    instead of in the database, so build an engine with one connection per thread.
    """
    if database.dialect != "postgresql":
        yield database
        return
    threads, _ = LOAD["postgresql"]
    wide = Database(create_engine(database.engine.url, pool_size=threads, max_overflow=0))
    yield wide
    wide.dispose()


def new_customer(database: Database, email: str, opening: int) -> int:
    with database.transaction() as session:
        customer = Customer(email=email)
        session.add(customer)
        session.flush()
        if opening:
            ledger.grant(
                session,
                customer_id=customer.id,
                credits=opening,
                key=f"opening:{email}",
                actor="test",
                source=Source.ADMIN,
                at=AT,
            )
        return customer.id


def run_threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` in ``count`` threads released together; re-raise the first failure."""
    start = threading.Barrier(count)
    failures: list[BaseException] = []

    def target(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as err:  # Reported to the test thread below.
            failures.append(err)

    workers = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert not any(worker.is_alive() for worker in workers), "a worker hung"
    if failures:
        raise failures[0]


def planned_movements(total: int, seed: int) -> list[Movement]:
    """``total`` attempts over about ``total / 2.5`` distinct movements, shuffled.

    Charges outnumber refunds, so the balance keeps hitting zero and some charges are refused.
    """
    rng = random.Random(seed)
    attempts: list[Movement] = []
    index = 0
    while len(attempts) < total:
        index += 1
        if rng.random() < 0.6:
            movement = Movement(f"charge-{index}", EntryKind.CHARGE, -rng.randint(1, 25))
        else:
            movement = Movement(f"refund-{index}", EntryKind.REFUND, rng.randint(1, 20))
        attempts.extend([movement] * rng.randint(1, 4))
    attempts = attempts[:total]
    rng.shuffle(attempts)
    return attempts


def post(database: Database, customer_id: int, movement: Movement) -> Outcome:
    def work(session: Session) -> int:
        entry = ledger.post(
            session,
            customer_id=customer_id,
            kind=movement.kind,
            amount=movement.amount,
            key=movement.key,
            actor="worker",
            source=Source.WEBHOOK,
            at=AT,
        )
        return entry.id

    try:
        return Outcome(movement, entry_id=database.run_in_transaction(work))
    except ledger.InsufficientCreditsError as err:
        return Outcome(movement, refused=err)


def test_concurrent_charges_and_refunds_with_repeated_keys(pool: Database) -> None:
    threads, total = LOAD[pool.dialect]
    customer_id = new_customer(pool, "busy@shop.example", OPENING_BALANCE)
    attempts = planned_movements(total, seed=20260302)
    outcomes: list[list[Outcome]] = [[] for _ in range(threads)]

    def work(index: int) -> None:
        for movement in attempts[index::threads]:
            outcomes[index].append(post(pool, customer_id, movement))

    run_threads(threads, work)

    done = [outcome for per_thread in outcomes for outcome in per_thread]
    assert len(done) == total
    with pool.transaction() as session:
        history = list(ledger.history(session, customer_id))
        final = ledger.balance(session, customer_id)
        assert ledger.verify(session) == []

    # Never negative, and each balance_after is the running sum in posting order.
    running = 0
    for entry in history:
        running += entry.amount
        assert entry.balance_after == running
        assert entry.balance_after >= 0
    assert final == running

    # Each key took effect once, as planned.
    by_key = {entry.key: entry for entry in history}
    assert len(by_key) == len(history)
    planned = {movement.key: movement for movement in attempts}
    assert set(by_key) - set(planned) == {"opening:busy@shop.example"}
    for key, entry in by_key.items():
        if key in planned:
            assert (entry.kind, entry.amount) == (planned[key].kind, planned[key].amount)

    # Every thread that got an entry for a key got the same one: the losers of a race got
    # the winner's entry, not a second posting.
    ids_by_key: dict[str, set[int]] = defaultdict(set)
    for outcome in done:
        if outcome.entry_id is not None:
            ids_by_key[outcome.movement.key].add(outcome.entry_id)
    assert {key: ids for key, ids in ids_by_key.items()} == {
        key: {by_key[key].id} for key in ids_by_key
    }
    assert set(ids_by_key) == set(by_key) - {"opening:busy@shop.example"}

    # A refusal names a real shortfall: what the charge needed beyond the balance it saw.
    refusals = [outcome for outcome in done if outcome.refused is not None]
    for outcome in refusals:
        assert outcome.refused is not None
        assert outcome.movement.kind is EntryKind.CHARGE
        assert outcome.refused.balance >= 0
        assert outcome.refused.shortfall == -outcome.movement.amount - outcome.refused.balance

    # The run exercised what it claims to: repeats that returned the existing entry, refusals.
    successes = Counter(o.movement.key for o in done if o.entry_id is not None)
    assert any(count > 1 for count in successes.values())
    assert refusals


@pytest.mark.parametrize("shape", ["same customer", "different customers"])
def test_threads_racing_with_one_key(pool: Database, shape: str) -> None:
    threads, _ = LOAD[pool.dialect]
    if shape == "same customer":
        shared = new_customer(pool, "one@shop.example", 100)
        customers = [shared] * threads
    else:
        customers = [new_customer(pool, f"c{i}@shop.example", 100) for i in range(threads)]
    results: list[int | str] = [""] * threads

    def work(index: int) -> None:
        movement = Movement("delivery-42:charge", EntryKind.CHARGE, -30)
        try:
            outcome = post(pool, customers[index], movement)
            results[index] = outcome.entry_id if outcome.entry_id is not None else "refused"
        except ledger.IdempotencyConflictError as err:
            results[index] = f"conflict with {err.existing_id}"

    run_threads(threads, work)

    with pool.transaction() as session:
        charged = [
            (customer_id, entry.id)
            for customer_id in sorted(set(customers))
            for entry in ledger.history(session, customer_id)
            if entry.key == "delivery-42:charge"
        ]
        balances = sorted(ledger.balance(session, c) for c in set(customers))
        assert ledger.verify(session) == []
    assert len(charged) == 1  # One entry for the key, whoever won.
    winner_customer, winner = charged[0]
    if shape == "same customer":
        assert results == [winner] * threads
        assert balances == [70]
    else:
        assert [r for r in results if r == winner] == [winner]
        assert sorted(r for r in results if r != winner) == [f"conflict with {winner}"] * (
            threads - 1
        )
        assert results[customers.index(winner_customer)] == winner
        assert balances == [70] + [100] * (threads - 1)
