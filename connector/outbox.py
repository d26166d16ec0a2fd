"""The outbox worker: write-backs to help desks, in order per ticket, applied once per marker.

A row is claimed (``status = 'sending'``, committed) before its request is sent, so that a
worker killed mid-request leaves a trace: a claim older than the lease is an *unclear*
failure, like a timeout, and before a note or reply is retried the ticket is read back and
the send skipped if the marker is already there. Priority and tags are idempotent writes.

Failures: 4xx other than 408/409/429 are permanent (dead-lettered at once); others are
retried with exponential backoff and "equal" jitter (half the ceiling fixed, half random),
never sooner than the desk's ``Retry-After``, and dead-lettered after the desk's
``max_attempts``, the error kept. The fixed halves bound how soon a row can be dead-lettered:
with the defaults (1 s, 10 tries) no sooner than 255 s after its first failure, so a desk
down for four minutes loses nothing (full jitter could use up every try within seconds),
while a passing error (one 500, one 429) is tried again within a second.
Workers claim with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several can run at once.
"""

from __future__ import annotations

import logging
import random
import time
import weakref
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, select, update
from sqlalchemy.orm import aliased

from adapters.base import HelpdeskClient
from adapters.errors import HelpdeskAPIError, HelpdeskTimeoutError
from connector.db import Database
from connector.extension import ConnectorState
from connector.logging_setup import log_context
from connector.models import OutboxAction, UTCDateTime

log = logging.getLogger("care_connector.outbox")

#: The defaults of ``[outbox]`` (st.settings.outbox): the lease, the first retry's ceiling
#: in seconds (doubled per attempt) and the longest wait.
LEASE = timedelta(minutes=5)
BACKOFF_BASE = 1.0
BACKOFF_CAP = 600.0


@dataclass(frozen=True)
class Sent:
    """One outbox row's outcome in this run."""

    id: int
    kind: str
    status: str  # sent | retry | dead | skipped (already there)
    error: str | None = None


def backoff(
    attempts: int,
    retry_after: float | None,
    rng: random.Random,
    *,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
) -> float:
    """Seconds before the next try: half an exponential ceiling plus a random share of the
    other half ("equal jitter"), and never less than what the desk asked for."""
    ceiling: float = min(cap, base * 2 ** max(0, attempts - 1))
    wait = ceiling / 2 + rng.uniform(0, ceiling / 2)
    return max(wait, retry_after or 0.0)


#: When each database's stale claims were last looked for by this process (``st.clock``).
_LOOKED: weakref.WeakKeyDictionary[Database, datetime] = weakref.WeakKeyDictionary()


def _recover_due(st: ConnectorState) -> bool:
    """Whether a quarter of the lease has passed since this process last looked for stale
    claims (or the clock went back): a claim then waits at most 1.25 leases to be taken back,
    and a busy worker does not scan the claimed rows every round."""
    now = st.clock()
    last = _LOOKED.get(st.database)
    if last is not None and last <= now < last + timedelta(
        seconds=st.settings.outbox.lease_seconds / 4
    ):
        return False
    _LOOKED[st.database] = now
    return True


def recover_stale(st: ConnectorState) -> int:
    """Claims older than the lease go back to pending, marked unclear (read back first)."""
    cutoff = st.clock() - timedelta(seconds=st.settings.outbox.lease_seconds)
    with st.database.transaction() as session:
        result = session.execute(
            update(OutboxAction)
            .where(OutboxAction.status == "sending", OutboxAction.claimed_at < cutoff)
            .values(status="pending", unclear=True)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _Claimed:
    """A claimed row, as read in the claiming transaction (no other read is needed)."""

    id: int
    desk: str
    ticket: str
    ticket_key: str
    kind: str
    marker: str
    payload: dict[str, Any]
    unclear: bool
    attempts: int  # this attempt included
    queued_at: datetime


@dataclass(frozen=True)
class _Outcome:
    """What one send came to, written back with the others of its round."""

    sent: Sent
    values: dict[str, Any]


#: Actions of one ticket claimed in one round at most (the first due one and those after it).
PER_TICKET = 8


def _claim_statements(postgres: bool) -> tuple[Select[Any], Select[Any]]:
    """The claim's two reads, built once: the due heads of ticket queues (no earlier row of
    the ticket pending or being sent), then the pending rows of those tickets after them."""
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
    heads = (
        select(OutboxAction)
        .where(
            OutboxAction.status == "pending",
            OutboxAction.next_attempt_at <= bindparam("now", type_=UTCDateTime()),
            ~blocked,
        )
        .order_by(OutboxAction.id)
        .limit(bindparam("limit"))
    )
    rest = (
        select(OutboxAction)
        .where(
            OutboxAction.ticket_key.in_(bindparam("keys", expanding=True)),
            OutboxAction.status == "pending",
            OutboxAction.id.not_in(bindparam("heads", expanding=True)),
        )
        .order_by(OutboxAction.id)
    )
    if postgres:
        heads = heads.with_for_update(skip_locked=True)
        rest = rest.with_for_update(skip_locked=True)
    return heads, rest


_CLAIM_STATEMENTS = {True: _claim_statements(True), False: _claim_statements(False)}


def _claim(st: ConnectorState, limit: int) -> tuple[datetime, list[list[_Claimed]]]:
    """Claim up to ``limit`` tickets' due actions, in one transaction: per ticket, its first
    pending action (none earlier is pending or being sent) and the due ones right after it,
    in order. Rows locked by another worker are skipped (PostgreSQL). Returns the claim's
    time (the rows' ``claimed_at``) with the queues."""
    now = st.clock()
    with st.database.transaction() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        heads_stmt, rest_stmt = _CLAIM_STATEMENTS[postgres]
        heads = list(session.scalars(heads_stmt, {"now": now, "limit": limit}))
        if not heads:
            return now, []
        # The rest of each ticket's queue: taken while it is due, up to the first that is not.
        rest = session.scalars(
            rest_stmt,
            {"keys": [row.ticket_key for row in heads], "heads": [row.id for row in heads]},
        )
        queues: dict[str, list[OutboxAction]] = {row.ticket_key: [row] for row in heads}
        stopped: set[str] = set()
        for row in rest:
            queue = queues[row.ticket_key]
            if row.ticket_key in stopped or row.id < queue[0].id:
                continue
            if row.next_attempt_at > now or len(queue) >= PER_TICKET:
                stopped.add(row.ticket_key)
                continue
            queue.append(row)
        claimed: list[list[_Claimed]] = []
        for queue in queues.values():
            for row in queue:
                row.status, row.claimed_at, row.attempts = "sending", now, row.attempts + 1
            claimed.append(
                [
                    _Claimed(
                        row.id,
                        row.desk,
                        row.ticket_id,
                        row.ticket_key,
                        row.kind,
                        row.marker,
                        dict(row.payload),
                        row.unclear,
                        row.attempts,
                        row.created_at,
                    )
                    for row in queue
                ]
            )
        return now, claimed


class _Lease:
    """The rows of one round, still this worker's.

    A round can outlast the lease (a slow desk: each send may take the desk's timeout), and
    another worker then takes its rows back as abandoned. So the round renews its claim
    (``claimed_at``, the time of the rows' claim) every third of the lease, rows still
    ``sending`` under the claim it holds; a row that is no longer its own is neither sent
    nor recorded by it.
    """

    def __init__(self, st: ConnectorState, claimed_at: datetime, ids: list[int]) -> None:
        self.st = st
        self.claimed_at = claimed_at
        self.ids = set(ids)
        self.renewed = time.monotonic()
        self.every = st.settings.outbox.lease_seconds / 3

    def holds(self, row_id: int) -> bool:
        """Whether the row is still this round's (the claim renewed first when due)."""
        return row_id in self.current()

    def current(self) -> set[int]:
        """The rows still this round's, the claim renewed first when due."""
        if time.monotonic() - self.renewed >= self.every:
            self._renew()
        return self.ids

    def _renew(self) -> None:
        now = self.st.clock()
        with self.st.database.transaction() as session:
            kept = session.scalars(
                update(OutboxAction)
                .where(
                    OutboxAction.id.in_(self.ids),
                    OutboxAction.status == "sending",
                    OutboxAction.claimed_at == self.claimed_at,
                )
                .values(claimed_at=now)
                .returning(OutboxAction.id)
            )
            held, self.ids = len(self.ids), set(kept)
        self.claimed_at, self.renewed = now, time.monotonic()
        if len(self.ids) < held:
            log.warning("outbox: %s claimed rows were taken back", held - len(self.ids))


def run_once(
    st: ConnectorState, *, limit: int = 50, rng: random.Random | None = None
) -> list[Sent]:
    """Send what is due now; returns each row's outcome.

    One round: claim (one transaction), send each ticket's actions in order, then record
    every outcome (one transaction). A ticket whose action is to be retried stops there; its
    later actions go back to pending untried. A worker killed mid-round leaves its rows
    claimed: after the lease they are unclear, and notes and replies are read back first.
    """
    if _recover_due(st):
        recover_stale(st)
    rng = rng or random.Random()
    outcomes: list[_Outcome] = []
    claimed_at, queues = _claim(st, limit)
    lease = _Lease(st, claimed_at, [row.id for queue in queues for row in queue])
    for queue in queues:
        for position, row in enumerate(queue):
            if not lease.holds(row.id):
                break  # taken back by another worker (this round outlasted the lease)
            outcome = _send(st, _superseded_left_out(row, queue[position + 1 :]), rng)
            outcomes.append(outcome)
            if outcome.sent.status == "retry":
                outcomes += [_release(later) for later in queue[position + 1 :]]
                break
    _record(st, outcomes, lease)
    return [o.sent for o in outcomes if o.sent.status != "released"]


def _superseded_left_out(row: _Claimed, later: list[_Claimed]) -> _Claimed:
    """An unclear tag write, without the tags a later tag write of its round touches.

    After a worker died mid-round, a ticket's earlier tag write is sent again although a
    later one may have been applied already (adding back a tag the later one removed, until
    that one is sent again too). The later writes follow in this round and decide those
    tags, so the earlier write leaves them out: the ticket never goes back to an earlier
    state of its tags.
    """
    if not row.unclear or row.kind not in ("tags", "remove_tags"):
        return row
    touched = {
        str(tag).casefold()
        for other in later
        if other.kind in ("tags", "remove_tags")
        for tag in other.payload.get("tags", [])
    }
    kept = [tag for tag in row.payload["tags"] if str(tag).casefold() not in touched]
    if len(kept) == len(row.payload["tags"]):
        return row
    return replace(row, payload={**row.payload, "tags": kept})


def _send(st: ConnectorState, row: _Claimed, rng: random.Random) -> _Outcome:
    """One attempt, timed for ``st.metrics``; log records carry the ticket."""
    started = time.perf_counter()
    with log_context(ticket=f"{row.desk}:{row.ticket}" if row.ticket else None):
        outcome = _attempt(st, row, rng)
    # created_at is the real clock's (a column default), so the delay is too.
    sent = outcome.sent
    delay = datetime.now(UTC) - row.queued_at if sent.status == "sent" else None
    st.metrics.postback(row.desk, row.kind, sent.status, time.perf_counter() - started, delay)
    return outcome


def _attempt(st: ConnectorState, row: _Claimed, rng: random.Random) -> _Outcome:
    desk, ticket, kind, marker, payload = row.desk, row.ticket, row.kind, row.marker, row.payload
    desk_settings = st.settings.desks.get(desk)
    if desk_settings is None:
        return _finished(st, row, "dead", f"desk {desk!r} is no longer configured")
    client = st.client(desk)
    try:
        if row.unclear and kind in ("note", "reply") and client.has_marker(ticket, marker):
            return _finished(st, row, "sent", None, skipped=True)
        if kind == "priority":
            client.set_priority(ticket, str(payload["value"]))
        elif kind == "tags":
            tags = _tags_to_write(client, ticket, list(payload["tags"]), row.unclear, True)
            if tags:
                client.add_tags(ticket, tags)
        elif kind == "remove_tags":
            tags = _tags_to_write(client, ticket, list(payload["tags"]), row.unclear, False)
            if tags:
                client.remove_tags(ticket, tags)
        elif kind == "note":
            client.add_note(ticket, str(payload["body"]), marker=marker)
        elif kind == "reply":
            client.add_reply(ticket, str(payload["body"]), marker=marker)
        elif kind == "notify":  # a message outside any ticket (the expiry reminders)
            client.notify_customer(
                str(payload["email"]), str(payload["subject"]), str(payload["body"]), marker=marker
            )
        else:
            return _finished(st, row, "dead", f"unknown outbox action {kind!r}")
    except HelpdeskAPIError as err:
        message = f"{err.__class__.__name__}: {err}"[:2000]
        if err.permanent:
            log.error("outbox %s (%s %s): dead: %s", row.id, desk, kind, message)
            return _finished(st, row, "dead", message)
        if row.attempts >= desk_settings.max_attempts:
            log.error(
                "outbox %s (%s %s): dead after %s tries: %s",
                row.id,
                desk,
                kind,
                row.attempts,
                message,
            )
            return _finished(st, row, "dead", message)
        timing = st.settings.outbox
        wait = backoff(
            row.attempts,
            err.retry_after,
            rng,
            base=timing.retry_base_seconds,
            cap=timing.retry_cap_seconds,
        )
        # A timed-out write may have been applied; a timed-out read (the reads a client makes
        # before writing) was not, and leaves the row as clear as it was.
        timed_out_write = isinstance(err, HelpdeskTimeoutError) and err.method != "GET"
        unclear = row.unclear or timed_out_write
        values = {
            "status": "pending",
            "last_error": message,
            "unclear": unclear,
            "next_attempt_at": st.clock() + timedelta(seconds=wait),
        }
        return _Outcome(Sent(row.id, kind, "retry", message), values)
    except (KeyError, TypeError, ValueError) as err:
        # The action itself is unusable (a payload without its field, an address the client
        # refuses): no retry can help, and left "sending" it would come back for ever.
        message = f"the action cannot be sent: {err.__class__.__name__}: {err}"[:2000]
        log.error("outbox %s (%s %s): dead: %s", row.id, desk, kind, message)
        return _finished(st, row, "dead", message)
    return _finished(st, row, "sent", None)


def _tags_to_write(
    client: HelpdeskClient, ticket: str, tags: list[str], unclear: bool, adding: bool
) -> list[str]:
    """The tags a (re)try still has to add or remove.

    After an unclear failure, on a desk whose client reads tags (Zammad writes one tag per
    call), the ticket's tags are read back and only the tags not yet added (or not yet
    removed) are written: each try then moves on from where the last one stopped, instead of
    starting over and timing out at the same call again.
    """
    if not unclear:
        return tags
    current = client.get_tags(ticket)
    if current is None:
        return tags  # the desk's own write merges (or it cannot read tags): send them all
    present = {tag.casefold() for tag in current}
    return [tag for tag in tags if (tag.casefold() in present) != adding]


def _finished(
    st: ConnectorState, row: _Claimed, status: str, error: str | None, *, skipped: bool = False
) -> _Outcome:
    values: dict[str, Any] = {"status": status}
    if error is not None:
        values["last_error"] = error
    if status == "sent":
        values["sent_at"] = st.clock()
    return _Outcome(Sent(row.id, row.kind, "skipped" if skipped else status, error), values)


def _release(row: _Claimed) -> _Outcome:
    """An action not tried because an earlier one of its ticket is to be retried first."""
    values = {"status": "pending", "attempts": row.attempts - 1}
    return _Outcome(Sent(row.id, row.kind, "released"), values)


def _record(st: ConnectorState, outcomes: list[_Outcome], lease: _Lease) -> None:
    """Every outcome of a round, in one transaction; only for rows still the round's (a row
    another worker took back is its to finish)."""
    if not outcomes:
        return
    held = lease.current()
    # One statement per set of columns written (sent, retried, dead, released), each run
    # over all of its rows at once (executemany).
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for outcome in outcomes:
        if outcome.sent.id in held:
            values = {f"new_{name}": value for name, value in outcome.values.items()}
            groups.setdefault(tuple(sorted(outcome.values)), []).append(
                {"row_id": outcome.sent.id, **values}
            )
    table = cast(Table, OutboxAction.__table__)
    with st.database.transaction() as session:
        connection = session.connection()
        for names, rows in groups.items():
            statement = (
                update(table)
                .where(
                    table.c.id == bindparam("row_id"),
                    table.c.status == "sending",
                    table.c.claimed_at == lease.claimed_at,
                )
                .values({name: bindparam(f"new_{name}") for name in names})
            )
            connection.execute(statement, rows)
