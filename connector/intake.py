"""The fast path of a webhook: store, verify, parse, deduplicate, answer. No network IO.

The order is fixed (architecture.md): the raw delivery is saved first, in its own
transaction, so a refused or broken delivery keeps its body and error; then the signature is
checked over the raw bytes, the body parsed into events, and the events inserted unique on
(desk, delivery key) and marked pending for the worker. Each step commits before the next
starts, so a slow or unreachable help desk can never make a webhook fail.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, bindparam, insert, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from adapters.base import HeaderSource
from adapters.errors import MissingSecretError, UnsupportedEventError, WebhookError
from connector.errors import error_body
from connector.extension import ConnectorState
from connector.models import Event, InboundDelivery, UTCDateTime
from connector.serialize import event_to_json
from rules.events import TicketEvent

log = logging.getLogger("care_connector.intake")
security_log = logging.getLogger("care_connector.intake.security")
config_log = logging.getLogger("care_connector.config")

#: Seconds a sender is asked to wait when the database is unreachable.
RETRY_AFTER_SECONDS = 30

_JSON_TYPES = ("application/json",)


@dataclass(frozen=True)
class IntakeResult:
    """The answer to one delivery."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delivery_id: int | None = None
    events: tuple[int, ...] = ()


def _error(
    status: int, message: str, errors: Mapping[str, list[str]] | None = None
) -> IntakeResult:
    return IntakeResult(status, error_body(status, message, errors))


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


def _unavailable(err: Exception) -> IntakeResult:
    log.error("database unreachable during intake: %s", err.__class__.__name__)
    return IntakeResult(
        503,
        error_body(503, "The database is unreachable; retry later."),
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def receive(
    st: ConnectorState,
    desk_key: str,
    headers: HeaderSource,
    body: bytes,
    *,
    content_type: str | None,
    remote_ip: str | None,
) -> IntakeResult:
    """Take one delivery to ``/hooks/<desk_key>``; never raises for any input.

    Verification and parsing are pure computation, so they run first and the delivery is
    then stored with its outcome (and, when accepted, its events) in ONE transaction: one
    commit per delivery. A refused, ignored or failing delivery is stored all the same, with
    its error; a bug in an adapter is stored with its traceback before the 500.
    """
    desk = st.desk(desk_key)
    if desk is None:
        return _error(404, f"Unknown desk {desk_key!r}.")
    now = st.clock()
    raw = _Raw(desk_key, headers, body, content_type, remote_ip, now)
    adapter = st.adapter(desk_key)
    key: str | None = None
    try:
        if not _is_json(content_type):
            raise WebhookError(
                f"Expected a JSON body (Content-Type: application/json), got {content_type!r}.",
                adapter=adapter.key,
                errors={"$": ["wrong content type"]},
            )
        if st.verify_signatures:
            adapter.verify(headers, body, now=now)
        key = adapter.delivery_key(headers, body)
        events = adapter.parse(headers, body, delivery_key=key)
    except UnsupportedEventError as err:
        log.info("desk %s: ignored: %s", desk_key, err.message)
        return _record(st, raw, 200, "ignored", err.message, {"status": "ignored"}, key=key)
    except MissingSecretError as err:
        config_log.error("desk %s: %s (set one of %s)", desk_key, err.message, desk.secret_env)
        return _record(st, raw, 401, "refused", err.message, None, err)
    except WebhookError as err:
        target = security_log if err.http_status == 401 else log
        target.warning("desk %s: refused (%s): %s", desk_key, err.http_status, err.message)
        return _record(st, raw, err.http_status, "refused", err.message, None, err)
    except Exception as err:
        # An adapter bug: keep the delivery and its traceback, then let the 500 happen so the
        # desk retries (and `replay` can take it once the bug is fixed).
        _record(st, raw, 500, "failed", traceback.format_exc()[-4000:], {"status": "failed"})
        raise err

    own = [e for e in events if adapter.is_own_event(e)]
    events = [e for e in events if not adapter.is_own_event(e)]
    if not events:
        reason = "caused by the connector itself" if own else "no ticket event"
        return _record(st, raw, 200, "ignored", reason, {"status": "ignored"}, key=key)
    try:
        with st.database.transaction() as session:
            delivery_id = _insert_delivery(session, raw, 200, None, None, key)
            inserted = insert_events(session, desk_key, key, delivery_id, events, now)
            outcome = "accepted" if inserted else "duplicate"
            session.execute(
                update(InboundDelivery)
                .where(InboundDelivery.id == delivery_id)
                .values(outcome=outcome)
            )
    except (OperationalError, DBAPIError) as err:
        return _unavailable(err)
    return IntakeResult(200, {"status": outcome}, delivery_id=delivery_id, events=tuple(inserted))


@dataclass(frozen=True)
class _Raw:
    """A delivery as received, before it is stored."""

    desk: str
    headers: HeaderSource
    body: bytes
    content_type: str | None
    remote_ip: str | None
    received_at: datetime


def _insert_delivery(
    session: Session,
    raw: _Raw,
    status: int,
    outcome: str | None,
    error: str | None,
    key: str | None,
) -> int:
    stmt = (
        insert(InboundDelivery)
        .values(
            desk=raw.desk,
            received_at=raw.received_at,
            remote_ip=raw.remote_ip,
            content_type=raw.content_type,
            headers={str(k): str(v) for k, v in raw.headers.items()},
            body=raw.body,
            delivery_key=key,
            status_code=status,
            outcome=outcome,
            error=error,
        )
        .returning(InboundDelivery.id)
    )
    return int(session.execute(stmt).scalar_one())


def _record(
    st: ConnectorState,
    raw: _Raw,
    status: int,
    outcome: str,
    message: str,
    body: dict[str, Any] | None,
    err: WebhookError | None = None,
    *,
    key: str | None = None,
) -> IntakeResult:
    """Store a delivery that brings no event (refused, ignored, failed) with its answer."""
    try:
        with st.database.transaction() as session:
            delivery_id = _insert_delivery(session, raw, status, outcome, message, key)
    except (OperationalError, DBAPIError) as db_err:
        return _unavailable(db_err)
    if body is None:
        body = error_body(status, message, err.errors if err is not None else None)
    return IntakeResult(status, body, delivery_id=delivery_id)


def event_key(delivery_key: str, index: int) -> str:
    """The dedup key of the ``index``-th event of a delivery (most deliveries carry one)."""
    return delivery_key if index == 0 else f"{delivery_key}#{index}"


# Written once as SQL: SQLAlchemy does not cache its dialect-specific INSERT ... ON CONFLICT
# constructs, and compiling one per delivery cost more than the database's work. SQLite (3.35+)
# and PostgreSQL both take this statement.
_INSERT_EVENT = text(
    "INSERT INTO events (desk, delivery_key, delivery_id, ticket_key, type, payload, status,"
    " attempts, created_at)"
    " VALUES (:desk, :delivery_key, :delivery_id, :ticket_key, :type, :payload, :status,"
    " :attempts, :created_at)"
    " ON CONFLICT (desk, delivery_key) DO NOTHING RETURNING id"
).bindparams(
    bindparam("payload", type_=JSON()),
    bindparam("created_at", type_=UTCDateTime()),
)


def insert_events(
    session: Session,
    desk_key: str,
    key: str,
    delivery_id: int | None,
    events: Sequence[TicketEvent],
    now: datetime,
) -> list[int]:
    """Insert ``events`` as pending, unique on (desk, delivery key); the ids of those new.

    ``delivery_id`` is ``None`` for events that came with no delivery (the approval page).
    """
    rows = [
        {
            "desk": desk_key,
            "delivery_key": event_key(key, i),
            "delivery_id": delivery_id,
            "ticket_key": f"{desk_key}:{event.ticket_id}",
            "type": event.type.value,
            "payload": event_to_json(event),
            "status": "pending",
            "attempts": 0,
            "created_at": now,
        }
        for i, event in enumerate(events)
    ]
    inserted: list[int] = []
    for row in rows:
        new_id = session.execute(_INSERT_EVENT, row).scalar_one_or_none()
        if new_id is not None:
            inserted.append(new_id)
    return inserted


def replay(st: ConnectorState, delivery_id: int) -> IntakeResult:
    """Take a stored delivery again (``care-connector replay``).

    The signature is checked again, with the timestamp window anchored at the time the
    delivery was first received, so only a delivery that was genuine can be replayed. Events
    already taken are not duplicated; one that failed is set pending again.
    """
    with st.database.transaction(read_only=True) as session:
        row = session.get(InboundDelivery, delivery_id)
        if row is None:
            return _error(404, f"No delivery {delivery_id}.")
        desk_key, headers, body, received_at = (
            row.desk,
            dict(row.headers),
            row.body,
            row.received_at,
        )
    if st.desk(desk_key) is None:
        return _error(
            404, f"Delivery {delivery_id} came to desk {desk_key!r}, no longer configured."
        )
    adapter = st.adapter(desk_key)
    try:
        adapter.verify(headers, body, now=received_at)
        key = adapter.delivery_key(headers, body)
        events = [
            e for e in adapter.parse(headers, body, delivery_key=key) if not adapter.is_own_event(e)
        ]
    except UnsupportedEventError as err:
        return IntakeResult(
            200, {"status": "ignored", "message": err.message}, delivery_id=delivery_id
        )
    except WebhookError as err:
        return IntakeResult(
            err.http_status,
            error_body(err.http_status, err.message, err.errors),
            delivery_id=delivery_id,
        )
    with st.database.transaction() as session:
        inserted = insert_events(session, desk_key, key, delivery_id, events, st.clock())
        revived = 0
        for i in range(len(events)):
            existing = session.execute(
                select(Event).where(Event.desk == desk_key, Event.delivery_key == event_key(key, i))
            ).scalar_one()
            if existing.status == "failed":
                existing.status, existing.attempts, existing.error = "pending", 0, None
                revived += 1
    status = "accepted" if inserted or revived else "duplicate"
    return IntakeResult(200, {"status": status}, delivery_id=delivery_id, events=tuple(inserted))
