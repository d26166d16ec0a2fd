"""Heartbeats: each background process records in the database, every few seconds, that it is
alive, so that ``/healthz`` and ``/metrics`` on any web process, on any host, can tell.

Kinds: ``worker`` (processes events), ``outbox`` (sends write-backs), ``scheduler`` (runs the
jobs). A process beats when it finishes a round of work (the worker loop) or a tick (the
scheduler), at most once every ``[health] heartbeat_seconds`` per kind; a process stuck in
one round stops beating. Times are ``st.clock``'s, like every other time the connector
stores.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from connector.models import Heartbeat

if TYPE_CHECKING:
    from connector.extension import ConnectorState

__all__ = ["Beat", "Heartbeats", "process_name", "read_beats", "record"]

log = logging.getLogger("care_connector.heartbeats")

#: The rows of a process silent this long are deleted (restarts leave one row per process).
FORGET_AFTER = timedelta(days=7)


def process_name() -> str:
    """This process, for the record: ``"host:pid"``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def record(
    session: Session, kinds: Iterable[str], runner: str, started_at: datetime, now: datetime
) -> None:
    """Upsert one row per kind for ``runner`` with ``beat_at = now``, and forget processes
    silent for :data:`FORGET_AFTER`."""
    table: Any = Heartbeat.__table__
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for kind in kinds:
        stmt = insert(table).values(kind=kind, runner=runner, started_at=started_at, beat_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["kind", "runner"], set_={"beat_at": stmt.excluded.beat_at}
        )
        session.execute(stmt)
    session.execute(delete(Heartbeat).where(Heartbeat.beat_at < now - FORGET_AFTER))


class Heartbeats:
    """Records the heartbeats of one process, each kind at most once per interval.

    :param runner: the process's name (default :func:`process_name`).
    :param monotonic: the interval's clock (tests pass their own).
    """

    def __init__(
        self,
        st: ConnectorState,
        *,
        runner: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.st = st
        self.runner = runner or process_name()
        self.started_at = st.clock()
        self.interval = float(st.settings.health.heartbeat_seconds)
        self._monotonic = monotonic
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def beat(self, *kinds: str, force: bool = False) -> bool:
        """Record ``kinds`` as alive now, unless recorded less than an interval ago (or
        ``force``). Never raises: a failed write is logged and tried again at the next call.

        :returns: whether a row was written.
        """
        now = self._monotonic()
        with self._lock:
            due = [
                kind
                for kind in kinds
                if force or now - self._last.get(kind, -math.inf) >= self.interval
            ]
            for kind in due:
                self._last[kind] = now
        if not due:
            return False
        try:
            self.st.database.run_in_transaction(
                lambda session: record(session, due, self.runner, self.started_at, self.st.clock())
            )
        except Exception as err:  # noqa: BLE001 - a heartbeat never stops the work it reports
            log.warning("heartbeat %s not recorded: %s", ", ".join(due), err)
            with self._lock:
                for kind in due:
                    self._last.pop(kind, None)
            return False
        return True


@dataclass(frozen=True, slots=True)
class Beat:
    """The latest heartbeat of one kind of process.

    :param processes: how many processes of the kind beat within the maximum age.
    """

    kind: str
    last: datetime
    age_seconds: float
    processes: int


def read_beats(session: Session, now: datetime, max_age: int) -> dict[str, Beat]:
    """The latest heartbeat of each kind that has ever beaten (within :data:`FORGET_AFTER`)."""
    recent = now - timedelta(seconds=max_age)
    rows = session.execute(
        select(
            Heartbeat.kind,
            func.max(Heartbeat.beat_at),
            func.count().filter(Heartbeat.beat_at >= recent),
        ).group_by(Heartbeat.kind)
    )
    beats: dict[str, Beat] = {}
    for kind, last, processes in rows:
        age = max(0.0, (now - last).total_seconds())
        beats[kind] = Beat(kind, last, age, int(processes))
    return beats
