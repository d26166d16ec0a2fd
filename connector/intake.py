"""The fast path of a webhook: store, verify, parse, deduplicate, answer. No network IO.

The signature is checked over the raw bytes and the body parsed into events in memory
first (pure computation); then ONE transaction stores the raw delivery with its outcome and
inserts its events unique on (desk, delivery key), pending for the worker. A refused, ignored
or broken delivery is stored all the same, with its error. The help desk is never called, so
a slow or unreachable desk can never make a webhook fail; a database that cannot be reached
is answered 503 and the desk retries (docs/decisions.md, "One transaction per delivery").
"""

from __future__ import annotations

import functools
import json
import logging
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, LargeBinary, bindparam, select, text
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
    # Everything is computed before the transaction starts, so the write lock (SQLite) and
    # the row locks (PostgreSQL) are held for two statements and the commit only.
    delivery_row = _delivery_row(raw, 200, "accepted", None, key)
    event_rows = event_params(desk_key, key, events, now)
    try:
        if st.database.dialect == "postgresql":
            delivery_id, inserted = _store_in_one_statement(st, delivery_row, event_rows)
        else:
            with st.database.connection() as connection:
                delivery_id = int(connection.execute(_INSERT_DELIVERY, delivery_row).scalar_one())
                inserted = _insert_event_rows(connection, event_rows, delivery_id)
                if not inserted:  # every event was taken before: a retry of the desk
                    connection.execute(_MARK_DUPLICATE, {"id": delivery_id})
    except (OperationalError, DBAPIError) as err:
        return _unavailable(err)
    outcome = "accepted" if inserted else "duplicate"
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


# The intake's statements are SQL written once: building an ORM or Core insert per delivery
# (and, for ON CONFLICT, compiling it: SQLAlchemy does not cache the dialect constructs) cost
# more than the database's own work. SQLite (3.35+) and PostgreSQL both take them.
_INSERT_DELIVERY = text(
    "INSERT INTO inbound_deliveries (desk, received_at, remote_ip, content_type, headers, body,"
    " delivery_key, status_code, outcome, error)"
    " VALUES (:desk, :received_at, :remote_ip, :content_type, :headers, :body,"
    " :delivery_key, :status_code, :outcome, :error) RETURNING id"
).bindparams(
    bindparam("received_at", type_=UTCDateTime()),
    bindparam("headers", type_=JSON()),
    bindparam("body", type_=LargeBinary()),
)

_MARK_DUPLICATE = text("UPDATE inbound_deliveries SET outcome = 'duplicate' WHERE id = :id")


@functools.cache
def _one_statement(events: int) -> str:
    """PostgreSQL: a delivery and its ``events`` events stored by ONE statement, in one round
    trip with no BEGIN or COMMIT, run on the driver (psycopg placeholders). The delivery's
    id is drawn first; the events are inserted unless their key was taken before; the
    delivery row then records "accepted", or "duplicate" when no event was new (the foreign
    key is checked at the statement's end)."""
    rows = ", ".join(
        f"(CAST(%(delivery_key_{i})s AS VARCHAR), CAST(%(ticket_key_{i})s AS VARCHAR),"
        f" CAST(%(type_{i})s AS VARCHAR), CAST(%(payload_{i})s AS JSON))"
        for i in range(events)
    )
    return (
        "WITH n AS (SELECT nextval(pg_get_serial_sequence('inbound_deliveries', 'id')) AS id),"
        " e AS (INSERT INTO events (desk, delivery_key, delivery_id, ticket_key, type, payload,"
        " status, attempts, created_at)"
        " SELECT %(desk)s, v.delivery_key, n.id, v.ticket_key, v.type, v.payload, 'pending', 0,"
        " %(received_at)s"
        f" FROM n, (VALUES {rows}) AS v (delivery_key, ticket_key, type, payload)"
        " ON CONFLICT (desk, delivery_key) DO NOTHING RETURNING id),"
        " d AS (INSERT INTO inbound_deliveries (id, desk, received_at, remote_ip, content_type,"
        " headers, body, delivery_key, status_code, outcome, error)"
        " SELECT n.id, %(desk)s, %(received_at)s, %(remote_ip)s, %(content_type)s,"
        " CAST(%(headers)s AS JSON), %(body)s, %(delivery_key)s, %(status_code)s,"
        " CASE WHEN EXISTS (SELECT 1 FROM e) THEN 'accepted' ELSE 'duplicate' END, %(error)s"
        " FROM n RETURNING id)"
        " SELECT (SELECT id FROM d) AS delivery_id, ARRAY(SELECT id FROM e ORDER BY id) AS events"
    )


def _store_in_one_statement(
    st: ConnectorState, delivery_row: dict[str, Any], event_rows: list[dict[str, Any]]
) -> tuple[int, list[int]]:
    """The delivery and its events, in one statement (PostgreSQL); its id and the new events'.

    The values go to the driver as they are, but for what SQLAlchemy's column types would
    have done: JSON encoded, the time checked aware and put in UTC."""
    params = dict(delivery_row)
    params["received_at"] = _UTC.process_bind_param(
        delivery_row["received_at"], st.database.engine.dialect
    )
    params["headers"] = json.dumps(delivery_row["headers"])
    for i, row in enumerate(event_rows):
        params[f"delivery_key_{i}"] = row["delivery_key"]
        params[f"ticket_key_{i}"] = row["ticket_key"]
        params[f"type_{i}"] = row["type"]
        params[f"payload_{i}"] = json.dumps(row["payload"])
    found = st.database.fetch_first_autocommit(_one_statement(len(event_rows)), params)
    if found is None:  # the statement always returns its one row
        raise RuntimeError("the intake statement returned no row")
    delivery_id, events = found
    return int(delivery_id), [int(i) for i in events]


_UTC = UTCDateTime()


def _delivery_row(
    raw: _Raw, status: int, outcome: str | None, error: str | None, key: str | None
) -> dict[str, Any]:
    return {
        "desk": raw.desk,
        "received_at": raw.received_at,
        "remote_ip": raw.remote_ip,
        "content_type": raw.content_type,
        "headers": {str(k): str(v) for k, v in raw.headers.items()},
        "body": raw.body,
        "delivery_key": key,
        "status_code": status,
        "outcome": outcome,
        "error": error,
    }


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
    row = _delivery_row(raw, status, outcome, message, key)
    try:
        with st.database.connection() as connection:
            delivery_id = int(connection.execute(_INSERT_DELIVERY, row).scalar_one())
    except (OperationalError, DBAPIError) as db_err:
        return _unavailable(db_err)
    if body is None:
        body = error_body(status, message, err.errors if err is not None else None)
    return IntakeResult(status, body, delivery_id=delivery_id)


def event_key(delivery_key: str, index: int) -> str:
    """The dedup key of the ``index``-th event of a delivery (most deliveries carry one)."""
    return delivery_key if index == 0 else f"{delivery_key}#{index}"


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


def event_params(
    desk_key: str, key: str, events: Sequence[TicketEvent], now: datetime
) -> list[dict[str, Any]]:
    """The rows of ``events`` as pending, without their delivery id (see :func:`insert_events`)."""
    return [
        {
            "desk": desk_key,
            "delivery_key": event_key(key, i),
            "ticket_key": f"{desk_key}:{event.ticket_id}",
            "type": event.type.value,
            "payload": event_to_json(event),
            "status": "pending",
            "attempts": 0,
            "created_at": now,
        }
        for i, event in enumerate(events)
    ]


def _insert_event_rows(
    executor: Connection | Session, rows: list[dict[str, Any]], delivery_id: int | None
) -> list[int]:
    inserted: list[int] = []
    for row in rows:
        row["delivery_id"] = delivery_id
        new_id = executor.execute(_INSERT_EVENT, row).scalar_one_or_none()
        if new_id is not None:
            inserted.append(new_id)
    return inserted


def insert_events(
    executor: Connection | Session,
    desk_key: str,
    key: str,
    delivery_id: int | None,
    events: Sequence[TicketEvent],
    now: datetime,
) -> list[int]:
    """Insert ``events`` as pending, unique on (desk, delivery key); the ids of those new.

    ``delivery_id`` is ``None`` for events that came with no delivery (the approval page).
    """
    return _insert_event_rows(executor, event_params(desk_key, key, events, now), delivery_id)


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
