"""The outbox worker: write-backs to help desks, in order per ticket, applied once per marker.

A row is claimed (``status = 'sending'``, committed) before its request is sent, so that a
worker killed mid-request leaves a trace: a claim older than the lease is an *unclear*
failure, like a timeout, and before a note or reply is retried the ticket is read back and
the send skipped if the marker is already there. Priority and tags are idempotent writes.

Failures: 4xx other than 408/409/429 are permanent (dead-lettered at once); others are
retried with exponential backoff and full jitter, never sooner than the desk's
``Retry-After``, and dead-lettered after the desk's ``max_attempts``, the error kept.
Workers claim with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several can run at once.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import aliased

from adapters.errors import HelpdeskAPIError, HelpdeskTimeoutError
from connector.extension import ConnectorState
from connector.models import OutboxAction

log = logging.getLogger("care_connector.outbox")

#: A claim older than this is taken as a worker that died mid-request.
LEASE = timedelta(minutes=5)
BACKOFF_BASE = 2.0  # seconds, doubled per attempt
BACKOFF_CAP = 600.0


@dataclass(frozen=True)
class Sent:
    """One outbox row's outcome in this run."""

    id: int
    kind: str
    status: str  # sent | retry | dead | skipped (already there)
    error: str | None = None


def backoff(attempts: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds before the next try: full jitter over an exponential ceiling, and never less
    than what the desk asked for."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    wait = rng.uniform(0, ceiling)
    return max(wait, retry_after or 0.0)


def recover_stale(st: ConnectorState) -> int:
    """Claims older than the lease go back to pending, marked unclear (read back first)."""
    cutoff = st.clock() - LEASE
    with st.database.transaction() as session:
        result = session.execute(
            update(OutboxAction)
            .where(OutboxAction.status == "sending", OutboxAction.claimed_at < cutoff)
            .values(status="pending", unclear=True)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _claim(st: ConnectorState, limit: int) -> list[int]:
    now = st.clock()
    earlier = aliased(OutboxAction)
    blocked = (
        select(earlier.id)
        .where(
            earlier.ticket_key == OutboxAction.ticket_key,
            earlier.id < OutboxAction.id,
            earlier.status.in_(("pending", "sending")),
        )
        .exists()
    )
    with st.database.transaction() as session:
        stmt = (
            select(OutboxAction)
            .where(
                OutboxAction.status == "pending",
                OutboxAction.next_attempt_at <= now,
                ~blocked,
            )
            .order_by(OutboxAction.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(session.scalars(stmt))
        for row in rows:
            row.status = "sending"
            row.claimed_at = now
            row.attempts += 1
        return [row.id for row in rows]


def run_once(
    st: ConnectorState, *, limit: int = 50, rng: random.Random | None = None
) -> list[Sent]:
    """Send what is due now; returns each row's outcome."""
    recover_stale(st)
    rng = rng or random.Random()
    return [_send(st, row_id, rng) for row_id in _claim(st, limit)]


def _send(st: ConnectorState, row_id: int, rng: random.Random) -> Sent:
    with st.database.transaction(read_only=True) as session:
        row = session.get(OutboxAction, row_id)
        assert row is not None
        desk, ticket, kind, marker = row.desk, row.ticket_id, row.kind, row.marker
        payload: dict[str, Any] = dict(row.payload)
        unclear, attempts = row.unclear, row.attempts
    desk_settings = st.settings.desks.get(desk)
    if desk_settings is None:
        return _finish(st, row_id, kind, "dead", f"desk {desk!r} is no longer configured")
    client = st.client(desk)
    try:
        if unclear and kind in ("note", "reply") and client.has_marker(ticket, marker):
            return _finish(st, row_id, kind, "sent", None, skipped=True)
        if kind == "priority":
            client.set_priority(ticket, str(payload["value"]))
        elif kind == "tags":
            client.add_tags(ticket, list(payload["tags"]))
        elif kind == "remove_tags":
            client.remove_tags(ticket, list(payload["tags"]))
        elif kind == "note":
            client.add_note(ticket, str(payload["body"]), marker=marker)
        elif kind == "reply":
            client.add_reply(ticket, str(payload["body"]), marker=marker)
        elif kind == "notify":  # a message outside any ticket (the expiry reminders)
            client.notify_customer(
                str(payload["email"]), str(payload["subject"]), str(payload["body"]), marker=marker
            )
        else:
            return _finish(st, row_id, kind, "dead", f"unknown outbox action {kind!r}")
    except HelpdeskAPIError as err:
        message = f"{err.__class__.__name__}: {err}"[:2000]
        if err.permanent:
            log.error("outbox %s (%s %s): dead: %s", row_id, desk, kind, message)
            return _finish(st, row_id, kind, "dead", message)
        if attempts >= desk_settings.max_attempts:
            log.error(
                "outbox %s (%s %s): dead after %s tries: %s", row_id, desk, kind, attempts, message
            )
            return _finish(st, row_id, kind, "dead", message)
        wait = backoff(attempts, err.retry_after, rng)
        unclear_now = isinstance(err, HelpdeskTimeoutError)
        return _retry(st, row_id, kind, message, wait, unclear_now)
    return _finish(st, row_id, kind, "sent", None)


def _finish(
    st: ConnectorState,
    row_id: int,
    kind: str,
    status: str,
    error: str | None,
    *,
    skipped: bool = False,
) -> Sent:
    now = st.clock()
    with st.database.transaction() as session:
        row = session.get(OutboxAction, row_id)
        assert row is not None
        row.status = status
        row.last_error = error if error is not None else row.last_error
        if status == "sent":
            row.sent_at = now
    return Sent(row_id, kind, "skipped" if skipped else status, error)


def _retry(
    st: ConnectorState, row_id: int, kind: str, error: str, wait: float, unclear: bool
) -> Sent:
    now: datetime = st.clock()
    with st.database.transaction() as session:
        row = session.get(OutboxAction, row_id)
        assert row is not None
        row.status = "pending"
        row.last_error = error
        row.unclear = row.unclear or unclear
        row.next_attempt_at = now + timedelta(seconds=wait)
    return Sent(row_id, kind, "retry", error)
