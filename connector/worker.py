"""The processing worker: pending events in, decisions carried out, write-backs queued.

Pending events are claimed in order per ticket (an event waits while an earlier one of the
same ticket is pending, so a round holds at most one event per ticket) and handled in
batches:

1. resolve each requester to a customer: an identity in that desk, else the email the event
   carries, else the desk's API (``GET`` the user), cached in ``requester_cache``; these
   network lookups happen before the transaction, so no lock is held across them;
2. in ONE transaction per batch, under one savepoint: lock the batch's events (``FOR UPDATE
   SKIP LOCKED`` on PostgreSQL, so several workers can run) and each event's customer row
   (skipped, never waited for, when another worker holds it), load the facts, call
   :func:`rules.decide.decide`, and write the ticket state, the ledger postings, the quota
   usage and the outbox actions, then mark the event done. The batch's rows are flushed
   together (:class:`_Batch`). Should an event fail, the savepoint is rolled back and every
   event is decided again in a savepoint of its own: the failing one is rolled back and its
   failure counted, the others commit. A worker killed before the commit leaves the batch
   pending: the next run processes each event exactly once.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, delete, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from adapters.base import marker_tag
from adapters.errors import HelpdeskAPIError
from connector import ledger
from connector.customers import find_customer, load_customer
from connector.db import Database, is_retryable
from connector.extension import ConnectorState
from connector.logging_setup import log_context
from connector.models import (
    Customer,
    Event,
    OutboxAction,
    QuotaAllowance,
    QuotaUsage,
    RequesterCache,
    Ticket,
    TicketStatusHistory,
)
from connector.serialize import event_from_json
from rules import coverage, priorities
from rules.decide import ApprovalState, CategorySource, Decision, TicketState, decide
from rules.events import EventType, TicketEvent, TicketStatus
from rules.messages import render
from rules.model import Customer as CustomerFacts
from rules.model import Facts

log = logging.getLogger("care_connector.worker")

#: An event that fails this many times is marked failed (kept, with its error, for replay).
MAX_EVENT_ATTEMPTS = 5
#: How long a negative requester lookup (the desk has no such user) is remembered.
NEGATIVE_CACHE = timedelta(hours=1)
QUOTA_KIND = "modification"


# The tables the worker's statements (built once, below) are written on.
_EVENTS = cast(Table, Event.__table__)
_TICKETS = cast(Table, Ticket.__table__)
_QUOTA_USAGE = cast(Table, QuotaUsage.__table__)
_ALLOWANCES = cast(Table, QuotaAllowance.__table__)
_CUSTOMERS = cast(Table, Customer.__table__)


@dataclass(frozen=True)
class Processed:
    """What one event came to (``simulate`` and the admin pages read it)."""

    event_id: int
    status: str  # done | ignored | failed | skipped | pending (failed, tried again) | waiting
    decision: dict[str, Any] | None = None


#: Events decided in one transaction, each in a savepoint of its own: one commit (one WAL
#: flush on PostgreSQL) for the batch instead of one per event.
BATCH = 25

#: An event whose desk read failed for a passing reason (the desk down or slow, a 429, a 5xx)
#: is not counted as failed: it stays pending ("waiting"), and this worker tries it again
#: after a wait that starts at this many seconds and doubles up to ``DESK_WAIT_CAP``. The
#: waits are kept in memory, per process: a restart or another worker may try sooner.
DESK_WAIT_FIRST = 1.0
DESK_WAIT_CAP = 60.0


@dataclass
class _Wait:
    until: float  # time.monotonic()
    failures: int


_WAITS: weakref.WeakKeyDictionary[Database, dict[int, _Wait]] = weakref.WeakKeyDictionary()


def _waits(st: ConnectorState) -> dict[int, _Wait]:
    """This process's waiting events of ``st``'s database, by event id."""
    return _WAITS.setdefault(st.database, {})


def run_once(st: ConnectorState, *, limit: int = 100) -> list[Processed]:
    """Process up to ``limit`` pending events whose ticket has no earlier pending event
    (events waiting for the desk in this process are left out until their wait is over)."""
    now = time.monotonic()
    held = [event_id for event_id, wait in _waits(st).items() if wait.until > now]
    # At most 1,000 left out by id (a statement's parameters are bounded); any others come
    # back into the round early and simply wait again.
    query = _CLAIM_BESIDES if held else _CLAIM
    with st.database.transaction(read_only=True) as session:
        params = {"limit": limit, "held": held[:1000]}
        rows = [_Pending(*row) for row in session.connection().execute(query, params)]
    done: list[Processed] = []
    for start in range(0, len(rows), BATCH):
        done += _process_batch(st, rows[start : start + BATCH])
    return done


def _claimable(*, besides: bool) -> Select[Any]:
    """Pending events whose ticket has no earlier pending event, oldest first, up to
    ``:limit``; with ``besides``, those in ``:held`` left out."""
    earlier = _EVENTS.alias("earlier")
    blocked = (
        select(earlier.c.id)
        .where(
            earlier.c.ticket_key == _EVENTS.c.ticket_key,
            earlier.c.id < _EVENTS.c.id,
            earlier.c.status == "pending",
        )
        .exists()
    )
    query = select(
        _EVENTS.c.id, _EVENTS.c.payload, _EVENTS.c.created_at, _EVENTS.c.ticket_key
    ).where(_EVENTS.c.status == "pending", ~blocked)
    if besides:
        query = query.where(_EVENTS.c.id.not_in(bindparam("held", expanding=True)))
    return query.order_by(_EVENTS.c.id).limit(bindparam("limit"))


# Built once: each round runs one of these.
_CLAIM = _claimable(besides=False)
_CLAIM_BESIDES = _claimable(besides=True)


def process_event(st: ConnectorState, event_id: int) -> Processed:
    """Process one event exactly once; safe to call concurrently from several workers."""
    with st.database.transaction(read_only=True) as session:
        row = session.get(Event, event_id)
        if row is None or row.status != "pending":
            return Processed(event_id, "skipped")
        pending = _Pending(row.id, row.payload, row.created_at, row.ticket_key)
    return _process_batch(st, [pending])[0]


@dataclass(frozen=True)
class _Pending:
    """A pending event as claimed: its id, stored payload, time of receipt and ticket key."""

    id: int
    payload: dict[str, Any]
    received_at: datetime
    ticket_key: str


@dataclass(frozen=True)
class _Prepared:
    """An event with what was read from the desk for it, before the transaction."""

    id: int
    event: TicketEvent
    received_at: datetime
    ticket_key: str
    requester: _Requester | None = None
    tags: tuple[str, ...] | None = None
    error: Exception | None = None  # the desk lookup failed in an unexpected way
    passing: bool = False  # the error will pass (the desk down or slow): wait, not fail


class _CustomerBusy(Exception):
    """Another worker holds the customer's row: the event waits for the next round."""


@dataclass
class _Batch:
    """What the events of one batch share: each customer's facts, loaded once, and the
    customers whose rows the session holds unflushed.

    A batch's writes are flushed together (one INSERT for its outbox rows, one for its status
    history), except that an event's reads that count its customer's other tickets (quota
    units, open tickets) first flush what earlier events of the same customer wrote: those
    reads go to the connection, past the ORM, which does not autoflush.
    """

    customers: dict[int, CustomerFacts] = field(default_factory=dict)
    unflushed: set[int] = field(default_factory=set)

    def before_reads_of(self, session: Session, customer_id: int) -> None:
        if customer_id in self.unflushed:
            session.flush()
            self.unflushed.clear()


def _process_batch(st: ConnectorState, rows: list[_Pending]) -> list[Processed]:
    """Decide ``rows`` (at most one per ticket) in one transaction (:func:`_apply_all`).

    The desk lookups (requester, tags) come first, outside the transaction, so no lock is
    held across the network. An event that fails is rolled back to its savepoint and its
    failure recorded, without touching the others. The time taken and, once decided, the
    delay since receipt go to ``st.metrics`` after the commit; log records carry the ticket.
    """
    started = time.perf_counter()
    prepared = [_prepare(st, row) for row in rows]
    done = st.database.run_in_transaction(lambda session: _apply_all(st, session, prepared))
    _note_waits(st, done)
    seconds = time.perf_counter() - started
    now = st.clock()
    for item, result in zip(prepared, done, strict=True):
        if result.status != "skipped":
            delay = now - item.received_at if result.status == "done" else None
            st.metrics.event_processed(item.event.desk, result.status, seconds, delay)
    return done


def _prepare(st: ConnectorState, row: _Pending) -> _Prepared:
    event = event_from_json(row.payload)
    with log_context(ticket=f"{event.desk}:{event.ticket_id}"):
        try:
            requester = _resolve_requester(st, event)
            tags = _read_tags(st, event)
        except DBAPIError:
            raise  # the database went away: the batch stays pending, nothing is counted
        except HelpdeskAPIError as err:
            if err.permanent:
                log.exception("event %s failed", row.id)
                return _Prepared(row.id, event, row.received_at, row.ticket_key, error=err)
            log.warning("event %s waits: the desk did not answer: %s", row.id, err)
            return _Prepared(
                row.id, event, row.received_at, row.ticket_key, error=err, passing=True
            )
        except Exception as err:  # noqa: BLE001 - recorded on the event, never lost
            log.exception("event %s failed", row.id)
            return _Prepared(row.id, event, row.received_at, row.ticket_key, error=err)
    return _Prepared(row.id, event, row.received_at, row.ticket_key, requester, tags)


def _note_waits(st: ConnectorState, done: list[Processed]) -> None:
    """Start or lengthen the wait of each event left waiting; forget the others'."""
    waits = _waits(st)
    now = time.monotonic()
    for result in done:
        if result.status == "waiting":
            failures = waits[result.event_id].failures + 1 if result.event_id in waits else 1
            pause = min(DESK_WAIT_CAP, DESK_WAIT_FIRST * 2 ** (failures - 1))
            waits[result.event_id] = _Wait(now + pause, failures)
        elif result.status != "skipped":
            waits.pop(result.event_id, None)


def _apply_all(st: ConnectorState, session: Session, batch: list[_Prepared]) -> list[Processed]:
    """Decide the batch: first all of it under one savepoint; should any event fail, that is
    rolled back and every event is decided again in a savepoint of its own, so the failure
    is recorded on its event alone. Events almost never fail, and a savepoint per event is
    two more statements each."""
    mine = _lock_batch(session, [item.id for item in batch])
    together = _apply_together(st, session, batch, mine)
    if together is not None:
        return together
    shared = _Batch()
    done: list[Processed] = []
    for item in batch:
        with log_context(ticket=f"{item.event.desk}:{item.event.ticket_id}"):
            done.append(_apply_one(st, session, item, shared, mine))
    return done


def _apply_together(
    st: ConnectorState, session: Session, batch: list[_Prepared], mine: set[int] | None
) -> list[Processed] | None:
    """The batch decided under one savepoint; ``None`` (and nothing written) if any event
    raised, for :func:`_apply_all` to decide each in a savepoint of its own."""
    shared = _Batch()
    done: list[Processed] = []
    savepoint = session.begin_nested()
    try:
        for item in batch:
            with log_context(ticket=f"{item.event.desk}:{item.event.ticket_id}"):
                done.append(_decide(st, session, item, shared, mine))
        savepoint.commit()
    except DBAPIError as err:
        if err.connection_invalidated:
            raise  # the database went away: the whole batch is retried or left pending
        _abandon(savepoint)
        return None
    except Exception:  # noqa: BLE001 - decided again event by event, where it is recorded
        _abandon(savepoint)
        return None
    return done


def _abandon(savepoint: SessionTransaction) -> None:
    if savepoint.is_active:
        savepoint.rollback()


def _decide(
    st: ConnectorState,
    session: Session,
    item: _Prepared,
    shared: _Batch,
    mine: set[int] | None,
) -> Processed:
    """One event of a batch: skipped when another worker holds it (or its customer), its desk
    failure recorded when the lookups before the transaction failed, else decided."""
    if mine is not None and item.id not in mine:
        return Processed(item.id, "skipped")  # another worker has it, or it is done
    if item.error is not None and item.passing:
        return _record_wait(session, item.id, item.error)
    if item.error is not None:
        return _record_failure(session, item.id, item.error)
    try:
        return _apply(st, session, item, shared, locked=mine is not None)
    except _CustomerBusy:
        return Processed(item.id, "skipped")  # nothing of it written yet


def _lock_batch(session: Session, ids: list[int]) -> set[int] | None:
    """Lock the batch's pending events in one statement, skipping those another worker holds
    (PostgreSQL; ``None`` on SQLite, whose write transactions never overlap). Two workers that
    read the same pending events thus split them at once instead of event by event."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return set(session.connection().execute(_LOCK_BATCH, {"ids": ids}).scalars())


_LOCK_BATCH = (
    select(_EVENTS.c.id)
    .where(_EVENTS.c.id.in_(bindparam("ids", expanding=True)))
    .where(_EVENTS.c.status == "pending")
    .with_for_update(skip_locked=True)
)


def _apply_one(
    st: ConnectorState,
    session: Session,
    item: _Prepared,
    shared: _Batch,
    mine: set[int] | None,
) -> Processed:
    """:func:`_decide` in a savepoint of its own: a failure rolls back this event only and is
    counted on it."""
    try:
        with session.begin_nested():
            return _decide(st, session, item, shared, mine)
    except DBAPIError as err:
        if err.connection_invalidated:
            raise  # the database went away: the whole batch is retried or left pending
        if is_retryable(err):
            return Processed(item.id, "skipped")  # a deadlock or serialization failure
        log.exception("event %s failed", item.id)
        return _record_failure(session, item.id, err)
    except Exception as err:  # noqa: BLE001 - any failure is recorded on the event, never lost
        log.exception("event %s failed", item.id)
        return _record_failure(session, item.id, err)


@dataclass(frozen=True)
class _Requester:
    email: str | None
    name: str | None
    locale: str | None


def _resolve_requester(st: ConnectorState, event: TicketEvent) -> _Requester:
    """The requester's email, name and locale: from the event, the cache, or the desk's API."""
    if event.requester_email or not event.requester_id:
        return _Requester(event.requester_email, event.requester_name, event.locale)
    now = st.clock()
    with st.database.transaction(read_only=True) as session:
        if find_customer(session, desk=event.desk, external_id=event.requester_id) is not None:
            return _Requester(None, event.requester_name, event.locale)
        cached = session.execute(
            select(RequesterCache).where(
                RequesterCache.desk == event.desk,
                RequesterCache.external_id == event.requester_id,
            )
        ).scalar_one_or_none()
        if cached is not None and (cached.email or cached.fetched_at > now - NEGATIVE_CACHE):
            return _Requester(cached.email, cached.name, cached.locale)
    try:
        found = st.client(event.desk).get_requester(event.requester_id)
    except HelpdeskAPIError as err:
        # The desk is unreachable: decide with what the event has; an unknown requester is
        # handled as such (tagged, nothing charged) rather than the event being held up.
        log.warning("desk %s: requester %s lookup failed: %s", event.desk, event.requester_id, err)
        return _Requester(None, event.requester_name, event.locale)
    try:
        with st.database.transaction() as session:
            cached = session.execute(
                select(RequesterCache).where(
                    RequesterCache.desk == event.desk,
                    RequesterCache.external_id == event.requester_id,
                )
            ).scalar_one_or_none()
            if cached is None:
                cached = RequesterCache(
                    desk=event.desk, external_id=event.requester_id, fetched_at=now
                )
                session.add(cached)
            cached.email = found.email if found else None
            cached.name = found.name if found else None
            cached.locale = found.locale if found else None
            cached.fetched_at = now
    except IntegrityError:
        pass  # another worker cached the same requester meanwhile: its row serves as well
    if found is None:
        return _Requester(None, event.requester_name, event.locale)
    return _Requester(found.email, found.name, found.locale or event.locale)


def _read_tags(st: ConnectorState, event: TicketEvent) -> tuple[str, ...] | None:
    """The ticket's tags from the desk when its webhook bodies carry none (Zammad), for the
    events where an engineer's tag can matter; read outside the transaction."""
    if event.tags is not None or event.type is EventType.TICKET_CREATED:
        return None
    if event.type in (EventType.APPROVED, EventType.DECLINED):
        return None
    return st.client(event.desk).get_tags(event.ticket_id)


# Statements run for every event, built once with bound parameters on the tables (Core):
# a call then costs SQLAlchemy a cache lookup instead of building and keying a statement.
_EVENT_PENDING = select(_EVENTS.c.id).where(
    _EVENTS.c.id == bindparam("event_id"), _EVENTS.c.status == "pending"
)
_EVENT_DONE = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("event_id"))
    .values(
        status=bindparam("status"),
        processed_at=bindparam("now"),
        decision=bindparam("decision"),
        error=None,
    )
)
# The ticket, and whether it counts against its customer's monthly quota, in one statement.
_TICKET = select(
    Ticket,
    select(_QUOTA_USAGE.c.id)
    .where(_QUOTA_USAGE.c.ticket_id == Ticket.id, _QUOTA_USAGE.c.kind == QUOTA_KIND)
    .exists()
    .label("counted"),
).where(Ticket.desk == bindparam("desk"), Ticket.external_id == bindparam("external_id"))


_QUOTA_USED = (
    select(func.count())
    .where(
        _QUOTA_USAGE.c.customer_id == bindparam("customer_id"),
        _QUOTA_USAGE.c.period == bindparam("period"),
        _QUOTA_USAGE.c.kind == QUOTA_KIND,
        _QUOTA_USAGE.c.ticket_id != bindparam("ticket_id"),
    )
    .scalar_subquery()
)
_ALLOWANCE = (
    select(_ALLOWANCES.c.allowance)
    .where(
        _ALLOWANCES.c.customer_id == bindparam("customer_id"),
        _ALLOWANCES.c.period == bindparam("period"),
        _ALLOWANCES.c.kind == QUOTA_KIND,
    )
    .scalar_subquery()
)


def _customer_row(skip_locked: bool) -> Select[Any]:
    """The customer's balance (their row locked), the quota units other tickets used in the
    period and the period's allowance: one statement."""
    stmt = select(
        _CUSTOMERS.c.balance, _QUOTA_USED.label("used"), _ALLOWANCE.label("allowance")
    ).where(_CUSTOMERS.c.id == bindparam("customer_id"))
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True, of=_CUSTOMERS)
    return stmt


_CUSTOMER_ROW = {True: _customer_row(True), False: _customer_row(False)}
_QUOTA = select(_QUOTA_USED.label("used"), _ALLOWANCE.label("allowance"))


def quota_of(
    session: Session, customer_id: int, period: str, *, besides: int | None = None
) -> tuple[int, int | None]:
    """The modifications the customer's tickets used in ``period`` (those of ticket id
    ``besides`` left out) and the period's allowance from the monthly reset, if opened."""
    params = {"customer_id": customer_id, "period": period, "ticket_id": besides or 0}
    row = session.connection().execute(_QUOTA, params).one()
    return int(row.used), row.allowance


_RECENT_TICKETS = (
    select(_TICKETS.c.external_id)
    .where(
        _TICKETS.c.customer_id == bindparam("customer_id"),
        _TICKETS.c.desk == bindparam("desk"),
        _TICKETS.c.external_id != bindparam("external_id"),
        _TICKETS.c.created_at >= bindparam("since"),
        _TICKETS.c.created_at <= bindparam("until"),
        _TICKETS.c.status.not_in([TicketStatus.SOLVED.value, TicketStatus.CLOSED.value]),
    )
    .order_by(_TICKETS.c.created_at, _TICKETS.c.id)
)
_UNCOUNT = delete(_QUOTA_USAGE).where(
    _QUOTA_USAGE.c.ticket_id == bindparam("ticket_id"), _QUOTA_USAGE.c.kind == QUOTA_KIND
)


@dataclass(frozen=True)
class _CustomerRow:
    balance: int
    quota_used: int
    allowance: int | None


def _apply(
    st: ConnectorState,
    session: Session,
    item: _Prepared,
    shared: _Batch,
    *,
    locked: bool = False,
) -> Processed:
    """Decide one event and write what follows from it.

    :param locked: the batch already holds the event's row (:func:`_lock_batch`); else its
        status is read again here, inside the write transaction.
    """
    event_id, who = item.id, item.requester
    assert who is not None
    connection = session.connection()
    if not locked and connection.execute(_EVENT_PENDING, {"event_id": event_id}).first() is None:
        return Processed(event_id, "skipped")  # another worker has it, or it is done
    event = item.event
    if item.tags is not None:
        event = replace(event, tags=item.tags)
    now = st.clock()
    desk = st.settings.desks[event.desk]
    policy = st.settings.policy
    if st.adapter(event.desk).is_own_event(event):
        _finish(session, event_id, "ignored", now, None)
        return Processed(event_id, "ignored")

    found = session.execute(
        _TICKET, {"desk": event.desk, "external_id": event.ticket_id}
    ).one_or_none()
    ticket, counted = (found[0], bool(found.counted)) if found is not None else (None, False)
    customer_id = ticket.customer_id if ticket is not None else None
    if ticket is None:
        customer_id = find_customer(
            session,
            desk=event.desk,
            external_id=event.requester_id,
            email=who.email,
            flush=False,  # the batch's writes touch no customer or identity
        )
    created_at = ticket.created_at if ticket is not None else event.created_at(now)
    period = coverage.quota_period(created_at, policy.calendar.zone)
    facts_row = _CustomerRow(0, 0, None)
    customer = None
    if customer_id is not None:
        shared.before_reads_of(session, customer_id)
        facts_row = _lock_customer(session, customer_id, period, ticket)
        customer = shared.customers.get(customer_id) or load_customer(
            session, customer_id, flush=False
        )
        shared.customers[customer_id] = customer
    balance = facts_row.balance
    facts = Facts(
        customer=customer,
        balance=balance,
        modifications_used=facts_row.quota_used,
        modifications_allowance=facts_row.allowance,
        recent_tickets=_recent_tickets(session, customer_id, event, created_at, policy),
    )
    if event.locale is None and who.locale:
        event = _with_locale(event, who.locale)
    previous = _state_of(ticket, counted)
    decision = decide(event, facts, policy, now, state=previous, observe=desk.observe)

    if ticket is None:
        ticket = Ticket(
            desk=event.desk,
            external_id=event.ticket_id,
            customer_id=customer_id,
            requester_email=(who.email or event.requester_email or None),
            subject=event.subject,
            locale=decision.language,
            created_at=decision.created_at,
            approval_state=ApprovalState.NOT_APPLICABLE.value,
            credits_charged=0,
        )
        session.add(ticket)
    status_changed = _take_status(ticket, event)
    _record_first_reply(ticket, event, now)
    if decision.changed:
        _decision_onto_ticket(ticket, decision, now)
    if ticket.id is None:
        # One INSERT with everything decided, not an INSERT and an UPDATE; the rows below
        # carry its id.
        session.flush([ticket])
    if status_changed:
        session.add(
            TicketStatusHistory(
                ticket_id=ticket.id, status=ticket.status, at=event.occurred_at or now
            )
        )
    if decision.changed:
        _count_quota(session, ticket, decision, customer_id, period, counted)
        _post_credits(session, event, decision, customer_id, event_id, now)
        _queue_writebacks(
            st, session, item, ticket, event, decision, now, state_was_new=previous is None
        )
    if customer_id is not None:
        shared.unflushed.add(customer_id)
    summary = _summary(decision, balance)
    _finish(session, event_id, "done", now, summary)
    return Processed(event_id, "done", summary)


def _finish(
    session: Session, event_id: int, status: str, now: datetime, decision: dict[str, Any] | None
) -> None:
    """Mark the event ``status`` (done or ignored), with its decision."""
    session.connection().execute(
        _EVENT_DONE, {"event_id": event_id, "status": status, "now": now, "decision": decision}
    )


def _post_credits(
    session: Session,
    event: TicketEvent,
    decision: Decision,
    customer_id: int | None,
    event_id: int,
    now: datetime,
) -> None:
    """The decision's charge or refund, in the ledger with the ticket reference."""
    if not (decision.charge or decision.refund):
        return
    assert customer_id is not None
    common: dict[str, Any] = {
        "customer_id": customer_id,
        "actor": "connector",
        "source": ledger.Source.WEBHOOK,
        "ticket": f"{event.desk}:{event.ticket_id}",
        "at": now,
    }
    if decision.charge:
        ledger.charge(
            session,
            credits=decision.charge,
            key=f"charge:{event.desk}:{event.ticket_id}:{event_id}",
            reason=f"{decision.category} ({decision.plan})",
            **common,
        )
    if decision.refund:
        ledger.refund(
            session,
            credits=decision.refund,
            key=f"refund:{event.desk}:{event.ticket_id}:{event_id}",
            reason=f"refund on {decision.category} ({event.type.value})",
            **common,
        )


def _lock_customer(
    session: Session, customer_id: int, period: str, ticket: Ticket | None
) -> _CustomerRow:
    """The customer's balance, their row locked until the batch commits, with the quota
    units their other tickets used in ``period`` and the period's allowance.

    On PostgreSQL a row another worker holds is skipped, never waited for (:class:`_CustomerBusy`):
    two batches that lock customers in different orders would otherwise deadlock.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    params = {
        "customer_id": customer_id,
        "period": period,
        "ticket_id": ticket.id if ticket is not None else 0,  # ids start at 1
    }
    row = session.connection().execute(_CUSTOMER_ROW[postgres], params).first()
    if row is None:
        raise _CustomerBusy(customer_id)
    return _CustomerRow(int(row.balance), int(row.used), row.allowance)


def _recent_tickets(
    session: Session, customer_id: int | None, event: TicketEvent, created_at: datetime, policy: Any
) -> tuple[str, ...]:
    """The customer's other open tickets created within the queue window, oldest first."""
    if customer_id is None:
        return ()
    window = timedelta(minutes=policy.queue_window_minutes)
    rows = session.connection().execute(
        _RECENT_TICKETS,
        {
            "customer_id": customer_id,
            "desk": event.desk,
            "external_id": event.ticket_id,
            "since": created_at - window,
            "until": created_at,
        },
    )
    return tuple(rows.scalars())


def _state_of(ticket: Ticket | None, counted: bool) -> TicketState | None:
    if ticket is None or ticket.plan is None:
        return None
    approval = ticket.approval_state
    return TicketState(
        plan=ticket.plan,
        created_at=ticket.created_at,
        category=ticket.category,
        category_source=CategorySource(ticket.category_source or "none"),
        credits_estimated=ticket.credits_estimated,
        credits_charged=ticket.credits_charged,
        approval_state=ApprovalState(approval)
        if approval in ApprovalState.__members__.values()
        else ApprovalState.NOT_APPLICABLE,
        counts_quota=counted,
        approval_amount=ticket.approval_amount,
    )


def _with_locale(event: TicketEvent, locale: str) -> TicketEvent:
    return replace(event, locale=locale)


def _take_status(ticket: Ticket, event: TicketEvent) -> bool:
    """Set the ticket's status from the event; whether it changed (for its history)."""
    if event.status is TicketStatus.UNKNOWN or event.status.value == ticket.status:
        return False
    ticket.status = event.status.value
    return True


def _record_first_reply(ticket: Ticket, event: TicketEvent, now: datetime) -> None:
    """The first public reply by an agent (not the requester) stops the first-reply clock."""
    comment = event.comment
    if (
        ticket.first_agent_reply_at is None
        and event.type is EventType.COMMENT_ADDED
        and comment is not None
        and comment.public
        and not comment.by_requester
        and (comment.author_id is None or comment.author_id != event.requester_id)
    ):
        ticket.first_agent_reply_at = event.occurred_at or now


def _decision_onto_ticket(ticket: Ticket, decision: Decision, now: datetime) -> None:
    """The decided state on the ticket row; the credits charged are those the ledger posts
    in the same savepoint (:func:`_post_credits`)."""
    ticket.plan = decision.plan
    ticket.category = decision.category
    ticket.category_source = decision.category_source.value
    ticket.credits_estimated = decision.credits
    ticket.approval_state = decision.approval_state.value
    ticket.approval_amount = decision.approval_amount
    if decision.first_reply_due is not None and ticket.first_reply_due is None:
        ticket.first_reply_due = decision.first_reply_due
    ticket.locale = decision.language
    ticket.credits_charged += decision.charge - decision.refund
    if any(m.kind == "approval_request" for m in decision.messages):
        ticket.approval_requested_at, ticket.approval_reminded_at = now, None


def _count_quota(
    session: Session,
    ticket: Ticket,
    decision: Decision,
    customer_id: int | None,
    period: str,
    counted: bool,
) -> None:
    """Count the ticket against the customer's monthly quota, or give its unit back."""
    if customer_id is None:
        return
    if decision.counts_quota and not counted:
        session.add(
            QuotaUsage(customer_id=customer_id, period=period, kind=QUOTA_KIND, ticket_id=ticket.id)
        )
    elif not decision.counts_quota and counted:
        # Re-categorised away from a counted modification: the unit goes back.
        session.flush()
        session.connection().execute(_UNCOUNT, {"ticket_id": ticket.id})


def _queue_writebacks(
    st: ConnectorState,
    session: Session,
    item: _Prepared,
    ticket: Ticket,
    event: TicketEvent,
    decision: Decision,
    now: datetime,
    *,
    state_was_new: bool,
) -> None:
    """The outbox actions of a decision, in the order they are sent."""
    desk = st.settings.desks[event.desk]
    pmap = desk.priority
    observe = desk.observe
    actions: list[tuple[str, dict[str, Any]]] = []
    tags = list(decision.tags)
    # The plan, and so the priority, is fixed when the ticket is first decided: later events
    # (an answer from the approval page carries no desk priority at all) never touch it, so an
    # agent's raise is never undone.
    if not observe and state_was_new:
        if pmap.kind == "field":
            value = priorities.priority_update(event.priority, decision.priority, pmap)
            if value is not None:
                actions.append(("priority", {"value": value}))
        else:
            tag = priorities.priority_update(
                pmap.current_tag(event.tags or ()), decision.priority, pmap
            )
            if tag is not None:
                tags.append(tag)
    if not observe:
        if tags:
            actions.append(("tags", {"tags": tags}))
        if decision.tags_remove:
            actions.append(("remove_tags", {"tags": list(decision.tags_remove)}))
    extra = {"approval_url": _approval_url(st, session, ticket, decision)}
    for message in decision.messages:
        if message.public and observe:
            continue
        text = render(message, decision.language, extra)
        actions.append(
            ("reply" if message.public else "note", {"body": text, "kind": message.kind})
        )
    for n, (kind, payload) in enumerate(actions):
        marker = f"{item.id}.{n}"  # event ids are unique, so markers are too
        if kind in ("note", "reply"):
            payload = {**payload, "body": f"{payload['body']}\n\n{marker_tag(marker)}"}
        session.add(
            OutboxAction(
                desk=event.desk,
                ticket_id=event.ticket_id,
                ticket_key=item.ticket_key,
                event_id=item.id,
                kind=kind,
                payload=payload,
                marker=marker,
                next_attempt_at=now,
            )
        )


def _approval_url(
    st: ConnectorState, session: Session, ticket: Ticket, decision: Decision
) -> str | None:
    if decision.approval_amount is None:
        return None
    from connector.approvals import approval_link

    return approval_link(st, session, ticket, decision.approval_amount)


def _summary(decision: Decision, balance_before: int) -> dict[str, Any]:
    return {
        "changed": decision.changed,
        "plan": decision.plan,
        "category": decision.category,
        "category_source": decision.category_source.value,
        "confidence": round(decision.confidence, 3),
        "credits": decision.credits,
        "steps": decision.steps,
        "charged": decision.charge,
        "refunded": decision.refund,
        "approval_required": decision.approval_required,
        "approval_state": decision.approval_state.value,
        "priority_level": decision.priority.value,
        "tags": list(decision.tags),
        "first_reply_due": decision.first_reply_due.isoformat()
        if decision.first_reply_due
        else None,
        "language": decision.language,
        "balance_before": balance_before,
        "balance_after": decision.balance_after,
        "unknown_customer": decision.unknown_customer,
    }


def _record_failure(session: Session, event_id: int, err: Exception) -> Processed:
    """Count a failed attempt on the event (kept pending until the last one, then failed).

    Only a pending event's: another worker may have processed it meanwhile (both read it
    before either committed), and its outcome stands.
    """
    row = session.get(Event, event_id, with_for_update=_skip_locked(session))
    if row is None or row.status != "pending":
        return Processed(event_id, "skipped")
    row.attempts += 1
    row.error = f"{err.__class__.__name__}: {err}"[:2000]
    if row.attempts >= MAX_EVENT_ATTEMPTS:
        row.status = "failed"
    return Processed(event_id, row.status if row.status == "failed" else "pending")


def _record_wait(session: Session, event_id: int, err: Exception) -> Processed:
    """Note why a pending event waits (the desk did not answer), counting no attempt."""
    row = session.get(Event, event_id, with_for_update=_skip_locked(session))
    if row is None or row.status != "pending":
        return Processed(event_id, "skipped")
    row.error = f"waiting for the desk: {err.__class__.__name__}: {err}"[:2000]
    return Processed(event_id, "waiting")


def _skip_locked(session: Session) -> dict[str, bool] | None:
    """Lock the row, skipping it if another worker holds it (PostgreSQL)."""
    return {"skip_locked": True} if session.get_bind().dialect.name == "postgresql" else None


__all__ = ["QUOTA_KIND", "Processed", "process_event", "quota_of", "run_once"]
