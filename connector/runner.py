"""Running the workers: until idle (``simulate``, tests, ``replay``) or forever (``worker``,
and threads of ``run`` in the embedded default)."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field

from connector import outbox, worker
from connector.extension import ConnectorState

log = logging.getLogger("care_connector.runner")


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


def loop(st: ConnectorState, stop: threading.Event, *, idle_seconds: float = 0.5) -> None:
    """Run both workers until ``stop`` is set; an error is logged and the loop goes on."""
    while not stop.is_set():
        try:
            busy = bool(worker.run_once(st)) | bool(outbox.run_once(st))
        except Exception:  # noqa: BLE001 - a worker never dies of one bad round
            log.exception("worker round failed")
            busy = False
        if not busy:
            stop.wait(idle_seconds)


def start_thread(st: ConnectorState) -> tuple[threading.Thread, threading.Event]:
    """Both workers in a daemon thread of this process (the embedded default)."""
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(st, stop), name="care-worker", daemon=True)
    thread.start()
    return thread, stop
