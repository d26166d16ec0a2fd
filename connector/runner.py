"""Running the workers: until idle (``simulate``, tests, ``replay``) or forever (``worker``,
and threads of ``run`` in the embedded default)."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field

from connector import outbox, worker
from connector.extension import ConnectorState
from connector.heartbeats import Heartbeats

log = logging.getLogger("care_connector.runner")

#: After a round that found nothing to do, a loop waits this long, then twice as long after
#: each further empty round, up to its ``idle_seconds``: work that arrives while the loop is
#: busy or just idle waits milliseconds, and an idle loop still asks only every
#: ``idle_seconds``.
IDLE_FIRST = 0.02


class _Idle:
    """The wait after an empty round: :data:`IDLE_FIRST`, doubling up to ``most``."""

    def __init__(self, most: float) -> None:
        self.most = most
        self.next = min(IDLE_FIRST, most)

    def after(self, busy: bool, stop: threading.Event) -> None:
        if busy:
            self.next = min(IDLE_FIRST, self.most)
            return
        stop.wait(self.next)
        self.next = min(self.most, self.next * 2)


@dataclass
class Drained:
    """Everything one :func:`drain` did."""

    processed: list[worker.Processed] = field(default_factory=list)
    sent: list[outbox.Sent] = field(default_factory=list)


def drain(st: ConnectorState, *, rng: random.Random | None = None, rounds: int = 1000) -> Drained:
    """Process every pending event, then send every outbox row due now; repeat until neither
    has anything left (rows waiting for a later retry stay)."""
    done = Drained()
    for _ in range(rounds):
        processed = worker.run_once(st)
        sent = outbox.run_once(st, rng=rng)
        done.processed += processed
        done.sent += sent
        if not processed and not sent:
            break
    return done


def loop(
    st: ConnectorState,
    stop: threading.Event,
    *,
    idle_seconds: float = 0.5,
    heartbeats: Heartbeats | None = None,
) -> None:
    """Run both workers until ``stop`` is set; an error is logged and the loop goes on.

    Each worker records its heartbeat after a round that did not fail.
    """
    heartbeats = heartbeats or Heartbeats(st)
    idle = _Idle(idle_seconds)
    while not stop.is_set():
        try:
            processed = worker.run_once(st)
            heartbeats.beat("worker")
            sent = outbox.run_once(st)
            heartbeats.beat("outbox")
            busy = bool(processed) or bool(sent)
        except Exception:  # noqa: BLE001 - a worker never dies of one bad round
            log.exception("worker round failed")
            busy = False
        idle.after(busy, stop)


def loop_in_threads(
    st: ConnectorState,
    stop: threading.Event,
    *,
    idle_seconds: float = 0.5,
    heartbeats: Heartbeats | None = None,
) -> None:
    """Run the processing worker and the outbox worker each in a thread of its own until
    ``stop`` is set (``care-connector worker``): while one waits on the database the other
    waits on a desk, instead of taking turns. Errors are logged and the loops go on."""
    heartbeats = heartbeats or Heartbeats(st)
    sender = threading.Thread(
        target=_loop_one,
        args=(st, stop, "outbox", idle_seconds, heartbeats),
        name="care-outbox",
        daemon=True,
    )
    sender.start()
    try:
        _loop_one(st, stop, "worker", idle_seconds, heartbeats)
    finally:
        sender.join()


def _loop_one(
    st: ConnectorState,
    stop: threading.Event,
    kind: str,
    idle_seconds: float,
    heartbeats: Heartbeats,
) -> None:
    """One worker's rounds (``kind``: ``worker`` or ``outbox``) until ``stop`` is set."""
    run_once = worker.run_once if kind == "worker" else outbox.run_once
    idle = _Idle(idle_seconds)
    while not stop.is_set():
        try:
            busy = bool(run_once(st))
            heartbeats.beat(kind)
        except Exception:  # noqa: BLE001 - a worker never dies of one bad round
            log.exception("%s round failed", kind)
            busy = False
        idle.after(busy, stop)


def start_thread(st: ConnectorState) -> tuple[threading.Thread, threading.Event]:
    """Both workers in a daemon thread of this process (the embedded default); their first
    heartbeats are recorded before it starts, so ``/healthz`` is green from the first request."""
    heartbeats = Heartbeats(st)
    heartbeats.beat("worker", "outbox", force=True)
    stop = threading.Event()
    thread = threading.Thread(
        target=loop,
        args=(st, stop),
        kwargs={"heartbeats": heartbeats},
        name="care-worker",
        daemon=True,
    )
    thread.start()
    return thread, stop
