"""The credit ledger: the one module that moves credits.

Design overview
===============

Every change to a customer's credit balance is one row in ``ledger_entries``, written here and
nowhere else. The ledger is *single-entry per customer*: an entry belongs to one customer and
carries a signed ``amount`` (positive credits the customer, negative charges them) together with
the ``balance_after`` it produced. ``customers.balance`` is the maintained balance, updated in the
same transaction as the entry, so reading a balance never has to sum the history.

Rules the module enforces:

- **Append-only.** Entries are inserted, never updated or deleted. A mistake is corrected by a
  new entry: :func:`reverse` posts the opposite amount and points at the entry it undoes with
  ``reverses_id`` (the TigerBeetle way: history is never rewritten).
- **Never below zero.** A movement that would leave the balance negative is refused with
  :class:`InsufficientCreditsError`, which carries the balance and the shortfall so the customer
  can be told what is missing. The database backs this with ``CHECK (balance >= 0)`` and
  ``CHECK (balance_after >= 0)``.
- **Idempotent.** Every entry has a unique ``key`` chosen by the caller from what caused it (a
  webhook delivery, a license ref, a job's period). Posting a key again returns the entry that
  already holds it, unchanged, provided it describes the same movement (customer, kind and
  amount); otherwise :class:`IdempotencyConflictError` is raised, because one key naming two
  different movements is a bug in the caller.
- **Provable.** :func:`verify` lists every customer whose maintained balance differs from the
  sum of their entries; each entry's ``balance_after`` replays the running sum in id order.

Concurrency
-----------

:func:`post` first locks the customer's row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite
serialises writers already, since every write transaction begins with ``BEGIN IMMEDIATE``), so
movements of one customer happen one after the other and never lose an update. The idempotency
check is folded into the insert (``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING``): when two
transactions race with the same key, the loser's insert waits for the winner, finds the key taken
and returns the winner's entry.

On SQLite a posting is three statements: lock (a plain read there), insert, update. On
PostgreSQL, where each statement is a network round trip, the same three steps run as one
statement with data-modifying CTEs (see :func:`_post_postgresql_statement`); the balance it
computes is checked against :mod:`rules.credits`. Refusals and repeated keys cost one more
query, to find the existing entry. Statements are built once at import, so a posting compiles
nothing.

Callers own the transaction: every function takes a SQLAlchemy ``Session`` and leaves the commit
to the caller, so a charge commits atomically with the ticket state and outbox actions it belongs
to. Callers that post on PostgreSQL should run their transaction through
``Database.run_in_transaction`` so serialization failures and deadlocks are retried.

The credit arithmetic (the balance after a movement, the shortfall of a refused charge) comes
from :mod:`rules.credits`, which accepts ``int`` credits only; floats never appear. Amounts and
balances fit the database's 32-bit ``INTEGER``: a larger amount is refused as malformed.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Integer, Table, bindparam, column, func, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.selectable import ExecutableReturnsRows

from connector.models import Base, Customer, LedgerEntry, utcnow
from rules import credits as credit_math

__all__ = [
    "AlreadyReversedError",
    "Discrepancy",
    "EntryKind",
    "IdempotencyConflictError",
    "InsufficientCreditsError",
    "InvalidEntryError",
    "LedgerError",
    "Source",
    "UnknownCustomerError",
    "UnknownEntryError",
    "balance",
    "charge",
    "entry_json",
    "grant",
    "history",
    "post",
    "refund",
    "reverse",
    "verify",
]


class EntryKind(enum.StrEnum):
    """Why credits moved."""

    LICENSE_GRANT = "license_grant"
    PURCHASE = "purchase"
    GRANT = "grant"
    CHARGE = "charge"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


class Source(enum.StrEnum):
    """Where a movement came from."""

    WEBHOOK = "webhook"
    JOB = "job"
    ADMIN = "admin"
    IMPORT = "import"
    CLI = "cli"


#: Kinds whose amount credits the customer (positive); ``charge`` is the only debit kind and
#: ``adjustment`` may go either way.
CREDIT_KINDS = frozenset(
    {EntryKind.LICENSE_GRANT, EntryKind.PURCHASE, EntryKind.GRANT, EntryKind.REFUND}
)


#: The largest amount one entry may move: the database stores credits as 32-bit INTEGER.
MAX_AMOUNT = 2**31 - 1


class LedgerError(Exception):
    """Root of the ledger's errors."""


class InvalidEntryError(LedgerError, ValueError):
    """The movement itself is malformed (a zero amount, a sign that contradicts the kind, ...)."""


class UnknownCustomerError(LedgerError, LookupError):
    """No customer with this id.

    :ivar customer_id: the id that was looked up.
    """

    def __init__(self, customer_id: int) -> None:
        super().__init__(f"no customer with id {customer_id}")
        self.customer_id = customer_id


class UnknownEntryError(LedgerError, LookupError):
    """No ledger entry with this id.

    :ivar entry_id: the id that was looked up.
    """

    def __init__(self, entry_id: int) -> None:
        super().__init__(f"no ledger entry with id {entry_id}")
        self.entry_id = entry_id


class InsufficientCreditsError(LedgerError):
    """A movement would take the balance below zero; nothing was posted.

    :ivar balance: the customer's balance when the movement was refused.
    :ivar shortfall: the credits missing for the movement to go through (always > 0).
    :ivar customer_id: the customer, when known.
    """

    def __init__(self, balance: int, shortfall: int, *, customer_id: int | None = None) -> None:
        super().__init__(f"insufficient credits: balance {balance}, short by {shortfall}")
        self.balance = balance
        self.shortfall = shortfall
        self.customer_id = customer_id


class IdempotencyConflictError(LedgerError):
    """The key is already used by a different movement.

    The error carries plain values, not the entry: the transaction it was found in is usually
    rolled back by the time the error is handled.

    :ivar key: the idempotency key.
    :ivar existing_id: the id of the entry that holds the key.
    :ivar existing_customer_id: that entry's customer.
    :ivar existing_kind: that entry's kind.
    :ivar existing_amount: that entry's amount.
    """

    def __init__(self, key: str, existing: LedgerEntry) -> None:
        super().__init__(
            f"idempotency key {key!r} already used by entry {existing.id} "
            f"(customer {existing.customer_id}, {existing.kind} {existing.amount})"
        )
        self.key = key
        self.existing_id = existing.id
        self.existing_customer_id = existing.customer_id
        self.existing_kind = EntryKind(existing.kind)
        self.existing_amount = existing.amount


class AlreadyReversedError(LedgerError):
    """The entry has already been reversed by another entry.

    :ivar entry_id: the entry asked to be reversed.
    :ivar reversal_id: the entry that reversed it.
    """

    def __init__(self, entry_id: int, reversal_id: int) -> None:
        super().__init__(f"ledger entry {entry_id} is already reversed by entry {reversal_id}")
        self.entry_id = entry_id
        self.reversal_id = reversal_id


class Discrepancy(NamedTuple):
    """A customer whose maintained balance differs from the sum of their entries."""

    email: str
    balance: int
    total: int


def post(
    session: Session,
    *,
    customer_id: int,
    kind: EntryKind,
    amount: int,
    key: str,
    actor: str,
    source: Source,
    reason: str = "",
    ticket: str | None = None,
    at: datetime,
    reverses_id: int | None = None,
) -> LedgerEntry:
    """Post one credit movement and update the customer's balance, in the caller's transaction.

    :param customer_id: the customer whose balance moves.
    :param kind: why credits move; ``charge`` needs a negative amount, ``license_grant``,
        ``purchase``, ``grant`` and ``refund`` a positive one, ``adjustment`` either.
    :param amount: the signed change in credits (negative charges the customer).
    :param key: the idempotency key; a repeat with the same customer, kind and amount returns
        the existing entry unchanged.
    :param actor: who caused it (an agent, ``system``, a user name).
    :param source: where it came from.
    :param reason: free text shown in the history.
    :param ticket: the ticket it concerns, as ``"<desk>:<external_id>"``.
    :param at: when it happened (an aware datetime).
    :param reverses_id: the entry this one reverses (see :func:`reverse`).
    :returns: the new entry, or the existing one for a repeated key.
    :raises InvalidEntryError: an unknown kind or source, an amount that is not a whole
        number, is zero, exceeds :data:`MAX_AMOUNT` or has the wrong sign for the kind, an
        empty key or actor, or a naive ``at``.
    :raises UnknownCustomerError: no such customer.
    :raises InsufficientCreditsError: the balance would go below zero.
    :raises IdempotencyConflictError: the key is taken by a different movement.
    """
    try:
        kind, source = EntryKind(kind), Source(source)
    except ValueError as err:
        raise InvalidEntryError(str(err)) from err
    _check_movement(kind, amount, key, at)
    if not actor:
        raise InvalidEntryError("an actor is required: who caused the movement")

    values: dict[str, object] = {
        "customer_id": customer_id,
        "at": at,
        "kind": kind.value,
        "amount": amount,
        "ticket": ticket,
        "actor": actor,
        "source": source.value,
        "reason": reason,
        "key": key,
        "reverses_id": reverses_id,
    }
    if session.get_bind().dialect.name == "postgresql":
        entry, current = _post_postgresql(session, customer_id, amount, values)
    else:
        entry, current = _post_stepwise(session, customer_id, amount, values)
    if entry is not None:
        return entry

    # Nothing was inserted: the key is taken, or the balance is too small. An existing key
    # wins over the balance check, so the repeat of a charge that went through earlier is
    # not refused now that the balance is lower.
    existing = _entry_by_key(session, key)
    if existing is not None:
        return _same_movement(existing, key, customer_id, kind, amount)
    missing = _shortfall(current, amount)
    if missing:
        raise InsufficientCreditsError(current, missing, customer_id=customer_id)
    raise LedgerError(  # pragma: no cover - a conflicting key cannot vanish under the lock
        f"entry {key!r} was neither inserted nor found"
    )


def charge(
    session: Session,
    *,
    customer_id: int,
    credits: int,
    key: str,
    actor: str,
    source: Source,
    reason: str = "",
    ticket: str | None = None,
    at: datetime,
) -> LedgerEntry:
    """Charge ``credits`` (a positive number) to the customer; see :func:`post`.

    :raises InsufficientCreditsError: the balance is smaller than ``credits``.
    """
    _check_positive(credits)
    return post(
        session,
        customer_id=customer_id,
        kind=EntryKind.CHARGE,
        amount=-credits,
        key=key,
        actor=actor,
        source=source,
        reason=reason,
        ticket=ticket,
        at=at,
    )


def refund(
    session: Session,
    *,
    customer_id: int,
    credits: int,
    key: str,
    actor: str,
    source: Source,
    reason: str = "",
    ticket: str | None = None,
    at: datetime,
) -> LedgerEntry:
    """Give ``credits`` (a positive number) back to the customer; see :func:`post`."""
    _check_positive(credits)
    return post(
        session,
        customer_id=customer_id,
        kind=EntryKind.REFUND,
        amount=credits,
        key=key,
        actor=actor,
        source=source,
        reason=reason,
        ticket=ticket,
        at=at,
    )


def grant(
    session: Session,
    *,
    customer_id: int,
    credits: int,
    key: str,
    actor: str,
    source: Source,
    reason: str = "",
    at: datetime,
    kind: EntryKind = EntryKind.GRANT,
) -> LedgerEntry:
    """Credit the customer with ``credits`` (a positive number); see :func:`post`.

    :param kind: ``grant`` (a goodwill gift), ``purchase`` or ``license_grant``.
    """
    _check_positive(credits)
    if kind not in (EntryKind.GRANT, EntryKind.PURCHASE, EntryKind.LICENSE_GRANT):
        raise InvalidEntryError(f"grant() posts grant, purchase or license_grant, not {kind}")
    return post(
        session,
        customer_id=customer_id,
        kind=kind,
        amount=credits,
        key=key,
        actor=actor,
        source=source,
        reason=reason,
        at=at,
    )


def reverse(
    session: Session,
    entry_id: int,
    *,
    actor: str,
    source: Source,
    reason: str,
    at: datetime,
    key: str | None = None,
) -> LedgerEntry:
    """Correct an entry by posting its opposite amount as an ``adjustment``.

    The reversal points at the original through ``reverses_id``; an entry is reversed at most
    once. Reversing a credit the customer has already spent is refused like any charge.

    :param entry_id: the entry to undo.
    :param key: the idempotency key (default ``"reverse:<entry_id>"``).
    :returns: the reversal (the existing one for a repeated key).
    :raises UnknownEntryError: no such entry.
    :raises AlreadyReversedError: another entry, under another key, already reversed it.
    :raises InsufficientCreditsError: reversing a credit would take the balance below zero.
    """
    original = session.get(LedgerEntry, entry_id)
    if original is None:
        raise UnknownEntryError(entry_id)
    key = key if key is not None else f"reverse:{entry_id}"
    # Lock before looking for an earlier reversal, so that two concurrent reversals of the
    # same entry are serialised and the second one sees the first.
    _lock_balance(session, original.customer_id)
    earlier = session.scalars(
        select(LedgerEntry).where(LedgerEntry.reverses_id == entry_id).limit(1)
    ).first()
    if earlier is not None and earlier.key != key:
        raise AlreadyReversedError(entry_id, earlier.id)
    return post(
        session,
        customer_id=original.customer_id,
        kind=EntryKind.ADJUSTMENT,
        amount=-original.amount,
        key=key,
        actor=actor,
        source=source,
        reason=reason,
        ticket=original.ticket,
        at=at,
        reverses_id=entry_id,
    )


def balance(session: Session, customer_id: int) -> int:
    """The customer's maintained balance.

    :raises UnknownCustomerError: no such customer.
    """
    value = session.scalar(select(Customer.balance).where(Customer.id == customer_id))
    if value is None:
        raise UnknownCustomerError(customer_id)
    return value


def history(session: Session, customer_id: int) -> Sequence[LedgerEntry]:
    """The customer's entries, oldest first (in posting order).

    :raises UnknownCustomerError: no such customer.
    """
    balance(session, customer_id)
    return session.scalars(
        select(LedgerEntry).where(LedgerEntry.customer_id == customer_id).order_by(LedgerEntry.id)
    ).all()


def entry_json(entry: LedgerEntry) -> dict[str, Any]:
    """One entry as JSON values, in the shape ``credits history --json`` prints."""
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "kind": str(entry.kind),
        "amount": entry.amount,
        "balance_after": entry.balance_after,
        "ticket": entry.ticket,
        "actor": entry.actor,
        "source": str(entry.source),
        "reason": entry.reason,
        "key": entry.key,
    }


def verify(session: Session) -> list[Discrepancy]:
    """Every customer whose maintained balance differs from the sum of their entries.

    :returns: one :class:`Discrepancy` (email, balance, sum of entries) per such customer,
        ordered by email; an empty list when the ledger is consistent.
    """
    totals = (
        select(
            LedgerEntry.customer_id.label("customer_id"),
            func.sum(LedgerEntry.amount).label("total"),
        )
        .group_by(LedgerEntry.customer_id)
        .subquery()
    )
    total = func.coalesce(totals.c.total, 0)
    rows = session.execute(
        select(Customer.email, Customer.balance, total)
        .outerjoin(totals, totals.c.customer_id == Customer.id)
        .where(Customer.balance != total)
        .order_by(Customer.email)
    ).all()
    return [Discrepancy(email, current, int(summed)) for email, current, summed in rows]


def _check_movement(kind: EntryKind, amount: int, key: str, at: datetime) -> None:
    # bool is an int subclass; a True amount is a bug, not one credit.
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise InvalidEntryError(f"amount must be a whole number of credits, not {amount!r}")
    if amount == 0:
        raise InvalidEntryError("amount must not be zero")
    if abs(amount) > MAX_AMOUNT:
        raise InvalidEntryError(f"amount must be at most {MAX_AMOUNT} credits either way")
    if kind is EntryKind.CHARGE and amount > 0:
        raise InvalidEntryError(f"a charge takes credits: amount must be negative, not {amount}")
    if kind in CREDIT_KINDS and amount < 0:
        raise InvalidEntryError(f"a {kind} gives credits: amount must be positive, not {amount}")
    if not key:
        raise InvalidEntryError("an idempotency key is required")
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidEntryError("at must be an aware datetime")


def _check_positive(credits: int) -> None:
    if not isinstance(credits, int) or isinstance(credits, bool) or credits <= 0:
        raise InvalidEntryError(f"credits must be a positive whole number, not {credits!r}")


def _lock_balance(session: Session, customer_id: int) -> int:
    """Lock the customer's row for the rest of the transaction and return its balance.

    ``with_for_update`` renders ``FOR UPDATE`` on PostgreSQL and nothing on SQLite, where the
    ``BEGIN IMMEDIATE`` write transaction already holds the database's write lock.
    """
    value = session.scalar(_LOCK_BALANCE, {"customer_id": customer_id})
    if value is None:
        raise UnknownCustomerError(customer_id)
    return value


def _entry_by_key(session: Session, key: str) -> LedgerEntry | None:
    return session.scalars(_ENTRY_BY_KEY, {"key": key}).first()


def _same_movement(
    existing: LedgerEntry, key: str, customer_id: int, kind: EntryKind, amount: int
) -> LedgerEntry:
    if (existing.customer_id, existing.kind, existing.amount) != (customer_id, kind, amount):
        raise IdempotencyConflictError(key, existing)
    return existing


def _shortfall(current: int, amount: int) -> int:
    # rules.credits counts a charge as positive; the ledger's amount is the signed delta.
    return credit_math.shortfall(current, -amount) if amount < 0 else 0


def _post_stepwise(
    session: Session, customer_id: int, amount: int, values: dict[str, object]
) -> tuple[LedgerEntry | None, int]:
    """Lock, insert unless the key exists, update the balance: three statements (SQLite).

    :returns: the new entry (``None`` when refused or the key is taken) and the balance the
        movement was checked against.
    """
    current = _lock_balance(session, customer_id)
    if _shortfall(current, amount):
        return None, current
    new_balance = credit_math.balance_after(current, -amount)
    entry: LedgerEntry | None = session.scalars(
        _INSERT_ENTRY, {**values, "balance_after": new_balance}
    ).first()
    if entry is not None:
        session.execute(_STORE_BALANCE, {"customer_id": customer_id, "balance": new_balance})
        _sync_loaded_customer(session, customer_id, new_balance)
    return entry, current


def _post_postgresql(
    session: Session, customer_id: int, amount: int, values: dict[str, object]
) -> tuple[LedgerEntry | None, int]:
    """Lock, insert and update in one statement, one round trip (PostgreSQL).

    :returns: as :func:`_post_stepwise`.
    :raises UnknownCustomerError: no such customer.
    """
    row = session.execute(_POST_POSTGRESQL, {**values, "updated_at": utcnow()}).first()
    if row is None:
        raise UnknownCustomerError(customer_id)
    entry: LedgerEntry | None = row[0]
    current: int = row[1]
    if entry is not None:
        # The statement did the sum; rules.credits stays the authority on what it must be.
        if entry.balance_after != credit_math.balance_after(current, -amount):
            raise LedgerError(f"entry {entry.id}: balance_after disagrees with rules.credits")
        _sync_loaded_customer(session, customer_id, entry.balance_after)
    return entry, current


def _sync_loaded_customer(session: Session, customer_id: int, new_balance: int) -> None:
    # The balance is written with Core statements, which leave the session alone: keep a
    # Customer already loaded in this session in step with its row.
    loaded = session.identity_map.get(session.identity_key(Customer, customer_id))
    if isinstance(loaded, Customer):
        set_committed_value(loaded, "balance", new_balance)
        session.expire(loaded, ["updated_at"])


def _insert_entry_statement() -> ExecutableReturnsRows:
    """``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING *`` loading a :class:`LedgerEntry`.

    The stepwise path (SQLite 3.35+; the SQL is PostgreSQL's too). Written as text because
    SQLAlchemy does not cache its dialect-specific ``Insert`` constructs
    (``inherit_cache = False``): building and compiling the statement on every call cost
    more CPU than the database's work on the row. Columns are listed by name, in the
    model's order, because the result columns are matched to the model by position.
    """
    table = _table(LedgerEntry)
    columns = [c for c in table.columns if c.name != "id"]
    names = ", ".join(f'"{c.name}"' for c in columns)
    marks = ", ".join(f":{c.name}" for c in columns)
    returned = ", ".join(f'"{c.name}"' for c in table.columns)
    sql = (
        f'INSERT INTO "{table.name}" ({names}) VALUES ({marks}) '
        f'ON CONFLICT ("key") DO NOTHING RETURNING {returned}'
    )
    # Typed binds and result columns, so UTCDateTime stores and reads ``at`` as on the ORM.
    statement = text(sql).bindparams(*(bindparam(c.name, type_=c.type) for c in columns))
    return select(LedgerEntry).from_statement(statement.columns(*table.columns))


def _post_postgresql_statement() -> ExecutableReturnsRows:
    """The whole posting as one PostgreSQL statement, returning the new entry (if any) and
    the balance it was checked against.

    ``locked`` takes the row lock. Under READ COMMITTED a ``FOR UPDATE`` that had to wait
    returns the row as the lock holder committed it, so the balance read is the latest.
    ``posted`` inserts the entry only when the balance stays at or above zero, and nothing
    when the key exists (``ON CONFLICT DO NOTHING`` waits for an in-flight holder of the key
    to finish). ``moved`` writes the entry's ``balance_after`` to the customer. The final
    ``SELECT`` returns no row for an unknown customer and a NULL entry when nothing was
    posted; data-modifying CTEs run whether or not the ``SELECT`` reads them.
    """
    table = _table(LedgerEntry)
    columns = [c for c in table.columns if c.name != "id"]
    names = ", ".join(f'"{c.name}"' for c in columns)
    sources = {"customer_id": "locked.id", "balance_after": "locked.balance + :amount"}
    exprs = ", ".join(sources.get(c.name, f":{c.name}") for c in columns)
    # Named, in the model's order: the result columns are matched to the model by position.
    returned = ", ".join(f'"{c.name}"' for c in table.columns)
    selected = ", ".join(f'posted."{c.name}"' for c in table.columns)
    sql = f"""
        WITH locked AS (
            SELECT id, balance FROM customers WHERE id = :customer_id FOR UPDATE
        ), posted AS (
            INSERT INTO "{table.name}" ({names})
            SELECT {exprs} FROM locked WHERE locked.balance + :amount >= 0
            ON CONFLICT ("key") DO NOTHING
            RETURNING {returned}
        ), moved AS (
            UPDATE customers SET balance = posted.balance_after, updated_at = :updated_at
            FROM posted WHERE customers.id = posted.customer_id
        )
        SELECT {selected}, locked.balance AS current_balance
        FROM locked LEFT JOIN posted ON true
    """
    binds = [bindparam(c.name, type_=c.type) for c in columns if c.name != "balance_after"]
    binds.append(bindparam("updated_at", type_=_table(Customer).c.updated_at.type))
    current = column("current_balance", Integer)
    statement = text(sql).bindparams(*binds).columns(*table.columns, current)
    # The ORM builds the entry from the returned columns; an all-NULL entry comes back None.
    return select(LedgerEntry, current).from_statement(statement)


def _table(model: type[Base]) -> Table:
    return model.metadata.tables[model.__tablename__]


# Built once: SQLAlchemy caches the compiled form of each, so a posting compiles nothing.
_LOCK_BALANCE = (
    select(Customer.balance).where(Customer.id == bindparam("customer_id")).with_for_update()
)
_ENTRY_BY_KEY = select(LedgerEntry).where(LedgerEntry.key == bindparam("key"))
_INSERT_ENTRY = _insert_entry_statement()
_POST_POSTGRESQL = _post_postgresql_statement()
_CUSTOMERS = _table(Customer)
_STORE_BALANCE = (
    update(_CUSTOMERS)
    .where(_CUSTOMERS.c.id == bindparam("customer_id"))
    .values(balance=bindparam("balance"))
)
