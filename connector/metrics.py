"""Prometheus metrics for ``GET /metrics``: what this process measured, and figures read from
the database when scraped.

Web processes, workers and schedulers are separate processes in production, so there are two
kinds of metric:

- **Measured in the process** (a :class:`Metrics` per app, with its own
  :class:`~prometheus_client.CollectorRegistry`, so that several apps in one process never
  clash): webhook deliveries by desk and outcome (counted by the web process that answered),
  event processing time and delay (the worker), write-back time and delay (the outbox
  worker), job run times and failures (the scheduler). A process counts only its own work:
  scrape each process, or set ``PROMETHEUS_MULTIPROC_DIR`` for every process on a host, and
  ``/metrics`` adds up the figures of all of them (prometheus-client's multiprocess mode).
- **Read from the database at scrape time** (:class:`DatabaseCollector`), right whichever
  process is scraped: the outbox backlog and dead letters, events pending and failed, credits
  charged and refunded (sums over the ledger, which is never pruned, so they only grow), job
  runs recorded, and the heartbeat of each background process. The ledger sums scan the
  whole ledger (about 0.2 s for a million entries on PostgreSQL), so a process computes them
  at most once every :data:`LEDGER_TTL` seconds and reports the last ones in between.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.heartbeats import Beat, read_beats
from connector.models import Event, JobRun, LedgerEntry, OutboxAction

if TYPE_CHECKING:
    from connector.extension import ConnectorState

__all__ = [
    "DatabaseCollector",
    "Figures",
    "Metrics",
    "delivery_outcome",
    "read_figures",
]

log = logging.getLogger("care_connector.metrics")

#: Set for every process on a host to add up the per-process metrics of all of them.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

PROCESSING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DELAY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
POSTBACK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOB_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

#: Seconds the ledger sums are reused before they are read again.
LEDGER_TTL = 60.0

#: Outbox and event statuses reported (the finished ones are pruned or only grow).
OUTBOX_STATUSES = ("pending", "sending", "dead")
EVENT_STATUSES = ("pending", "failed")

_ANSWERS = ("accepted", "duplicate", "ignored")


def delivery_outcome(code: int, body: Mapping[str, object] | None) -> str:
    """The outcome label of a webhook answer: accepted, duplicate or ignored (200), refused
    (4xx), too_large (413), unavailable (503) or failed (other 5xx)."""
    if code < 400:
        status = body.get("status") if body is not None else None
        return status if isinstance(status, str) and status in _ANSWERS else "accepted"
    if code == 413:
        return "too_large"
    if code == 503:
        return "unavailable"
    return "failed" if code >= 500 else "refused"


class Metrics:
    """The metrics one app measures in this process (``st.metrics``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.deliveries = Counter(
            "care_webhook_deliveries",
            "Webhook deliveries answered by this process, by desk, outcome and HTTP status.",
            ("desk", "outcome", "code"),
            registry=registry,
        )
        self.event_seconds = Histogram(
            "care_event_processing_seconds",
            "Time to process one event (requester lookup, decision, transaction), by desk and "
            "result (done, ignored, pending: failed and retried, failed).",
            ("desk", "status"),
            buckets=PROCESSING_BUCKETS,
            registry=registry,
        )
        self.event_delay = Histogram(
            "care_event_delay_seconds",
            "From a delivery's receipt to its event's decision, by desk.",
            ("desk",),
            buckets=DELAY_BUCKETS,
            registry=registry,
        )
        self.postback_seconds = Histogram(
            "care_postback_seconds",
            "One write-back attempt to a help desk, by desk, action and result "
            "(sent, skipped: already there, retry, dead).",
            ("desk", "kind", "status"),
            buckets=POSTBACK_BUCKETS,
            registry=registry,
        )
        self.postback_delay = Histogram(
            "care_postback_delay_seconds",
            "From a write-back being queued to the desk accepting it, by desk and action.",
            ("desk", "kind"),
            buckets=DELAY_BUCKETS,
            registry=registry,
        )
        self.job_seconds = Histogram(
            "care_job_run_seconds",
            "Duration of a scheduled job's run of one period, by job.",
            ("job",),
            buckets=JOB_BUCKETS,
            registry=registry,
        )
        self.job_failures = Counter(
            "care_job_failures",
            "Runs of a scheduled job that failed (retried at the next tick), by job.",
            ("job",),
            registry=registry,
        )
        self._database: DatabaseCollector | None = None
        self._lock = threading.Lock()
        self._ledger: tuple[float, tuple[int, int]] | None = None
        self._ledger_lock = threading.Lock()

    # Recording ------------------------------------------------------------------------------

    def delivery(self, desk: str, code: int, body: Mapping[str, object] | None = None) -> None:
        """Count a webhook answer."""
        self.deliveries.labels(desk, delivery_outcome(code, body), str(code)).inc()

    def event_processed(
        self, desk: str, status: str, seconds: float, delay: timedelta | None = None
    ) -> None:
        """An event's processing time and, when decided, its delay since receipt."""
        self.event_seconds.labels(desk, status).observe(seconds)
        if delay is not None:
            self.event_delay.labels(desk).observe(max(0.0, delay.total_seconds()))

    def postback(
        self, desk: str, kind: str, status: str, seconds: float, delay: timedelta | None = None
    ) -> None:
        """A write-back attempt's time and, once sent, its delay since it was queued."""
        self.postback_seconds.labels(desk, kind, status).observe(seconds)
        if delay is not None:
            self.postback_delay.labels(desk, kind).observe(max(0.0, delay.total_seconds()))

    def job_ran(self, job: str, seconds: float) -> None:
        self.job_seconds.labels(job).observe(seconds)

    def job_failed(self, job: str) -> None:
        self.job_failures.labels(job).inc()

    # Scraping -------------------------------------------------------------------------------

    def ledger_totals(
        self,
        compute: Callable[[], tuple[int, int]],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> tuple[int, int]:
        """Credits ``(charged, refunded)``: ``compute()``'s answer, reused for
        :data:`LEDGER_TTL` seconds."""
        with self._ledger_lock:
            now = monotonic()
            if self._ledger is None or now - self._ledger[0] >= LEDGER_TTL:
                self._ledger = (now, compute())
            return self._ledger[1]

    def scrape_registry(self, st: ConnectorState) -> CollectorRegistry:
        """The registry ``/metrics`` renders: this app's metrics and the database figures, or
        in multiprocess mode every process's files and the database figures."""
        collector = DatabaseCollector(st)
        if os.environ.get(MULTIPROCESS_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(collector)
            return registry
        with self._lock:
            if self._database is None:
                self._database = collector
                self.registry.register(collector)
        return self.registry


# --------------------------------------------------------------------------------------------
# Figures read from the database


@dataclass(frozen=True)
class Figures:
    """What the database says now; read by ``/metrics`` and ``/healthz``."""

    outbox: Mapping[str, int]
    oldest_due_seconds: float
    events: Mapping[str, int]
    credits_charged: int
    credits_refunded: int
    job_runs: Mapping[str, tuple[int, datetime | None]]
    heartbeats: Mapping[str, Beat]

    @property
    def outbox_backlog(self) -> int:
        """Write-backs not sent yet: pending (due or waiting for a retry) and being sent."""
        return self.outbox["pending"] + self.outbox["sending"]


def read_outbox(session: Session, now: datetime) -> tuple[dict[str, int], float]:
    """Outbox rows per unfinished status, and how long the oldest due row has waited."""
    counts = dict.fromkeys(OUTBOX_STATUSES, 0)
    for status, count in session.execute(
        select(OutboxAction.status, func.count())
        .where(OutboxAction.status.in_(OUTBOX_STATUSES))
        .group_by(OutboxAction.status)
    ):
        counts[status] = int(count)
    oldest = session.execute(
        select(func.min(OutboxAction.next_attempt_at)).where(
            OutboxAction.status == "pending", OutboxAction.next_attempt_at <= now
        )
    ).scalar_one()
    waited = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return counts, waited


def read_ledger_totals(session: Session) -> tuple[int, int]:
    """Credits ``(charged, refunded)`` over the whole ledger (charges are negative entries)."""
    sums = dict.fromkeys(("charge", "refund"), 0)
    for kind, total in session.execute(
        select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.kind.in_(tuple(sums)))
        .group_by(LedgerEntry.kind)
    ):
        sums[kind] = int(total or 0)
    return -sums["charge"], sums["refund"]


def read_figures(
    session: Session,
    now: datetime,
    max_heartbeat_age: int,
    ledger: Callable[[Callable[[], tuple[int, int]]], tuple[int, int]] | None = None,
) -> Figures:
    """Every figure of :class:`Figures`, in the caller's transaction (a few indexed queries
    and the ledger sums).

    :param ledger: given the function reading the ledger sums, returns them (a cache);
        default: read them now.
    """
    outbox, waited = read_outbox(session, now)
    events = dict.fromkeys(EVENT_STATUSES, 0)
    for status, count in session.execute(
        select(Event.status, func.count())
        .where(Event.status.in_(EVENT_STATUSES))
        .group_by(Event.status)
    ):
        events[status] = int(count)

    def totals() -> tuple[int, int]:
        return read_ledger_totals(session)

    charged, refunded = ledger(totals) if ledger is not None else totals()
    runs = {
        job: (int(count), finished)
        for job, count, finished in session.execute(
            select(JobRun.job, func.count(), func.max(JobRun.finished_at)).group_by(JobRun.job)
        )
    }
    return Figures(
        outbox=outbox,
        oldest_due_seconds=waited,
        events=events,
        credits_charged=charged,
        credits_refunded=refunded,
        job_runs=runs,
        heartbeats=read_beats(session, now, max_heartbeat_age),
    )


class DatabaseCollector(Collector):
    """Figures read from the database at each scrape, the same from every process.

    When the database does not answer, only ``care_database_up 0`` is reported. The state is
    held weakly (the state holds the registry that holds this collector).
    """

    def __init__(self, st: ConnectorState) -> None:
        self._state = weakref.ref(st)

    def describe(self) -> Iterator[Metric]:
        # Names only (checked for clashes at registration); no query.
        yield from self._families(None)

    def collect(self) -> Iterator[Metric]:
        st = self._state()
        if st is None:
            return
        try:
            with st.database.transaction(read_only=True) as session:
                max_age = st.settings.health.max_heartbeat_age
                figures = read_figures(session, st.clock(), max_age, st.metrics.ledger_totals)
        except Exception as err:  # noqa: BLE001 - a scrape reports the outage, never fails
            log.warning("metrics: the database did not answer: %s", err.__class__.__name__)
            up = GaugeMetricFamily("care_database_up", "1 when the database answered.")
            up.add_metric([], 0)
            yield up
            return
        yield from self._families(figures)

    def _families(self, figures: Figures | None) -> Iterator[Metric]:
        up = GaugeMetricFamily("care_database_up", "1 when the database answered.")
        outbox = GaugeMetricFamily(
            "care_outbox_actions",
            "Write-backs not finished, by status (pending, sending, dead).",
            labels=("status",),
        )
        backlog = GaugeMetricFamily(
            "care_outbox_backlog", "Write-backs waiting to be sent (pending and sending)."
        )
        dead = GaugeMetricFamily(
            "care_outbox_dead_letters", "Write-backs given up on (dead-lettered), kept for retry."
        )
        waited = GaugeMetricFamily(
            "care_outbox_oldest_due_seconds",
            "How long the oldest write-back due now has waited to be sent (0: none waiting).",
        )
        events = GaugeMetricFamily(
            "care_events", "Events not processed, by status (pending, failed).", labels=("status",)
        )
        charged = CounterMetricFamily(
            "care_credits_charged", "Credits charged for tickets, in all (from the ledger)."
        )
        refunded = CounterMetricFamily(
            "care_credits_refunded", "Credits refunded on tickets, in all (from the ledger)."
        )
        runs = CounterMetricFamily(
            "care_job_runs", "Periods run by each scheduled job (recorded runs).", labels=("job",)
        )
        last_run = GaugeMetricFamily(
            "care_job_last_finished_timestamp_seconds",
            "When each job last finished a run (Unix time).",
            labels=("job",),
        )
        beat_age = GaugeMetricFamily(
            "care_heartbeat_age_seconds",
            "Seconds since the latest heartbeat of each kind of background process.",
            labels=("kind",),
        )
        alive = GaugeMetricFamily(
            "care_heartbeat_processes",
            "Processes of each kind whose heartbeat is recent (within [health] max age).",
            labels=("kind",),
        )
        if figures is not None:
            up.add_metric([], 1)
            for status, count in figures.outbox.items():
                outbox.add_metric([status], count)
            backlog.add_metric([], figures.outbox_backlog)
            dead.add_metric([], figures.outbox["dead"])
            waited.add_metric([], figures.oldest_due_seconds)
            for status, count in figures.events.items():
                events.add_metric([status], count)
            charged.add_metric([], figures.credits_charged)
            refunded.add_metric([], figures.credits_refunded)
            for job, (count, finished) in sorted(figures.job_runs.items()):
                runs.add_metric([job], count)
                if finished is not None:
                    last_run.add_metric([job], finished.timestamp())
            for kind, beat in sorted(figures.heartbeats.items()):
                beat_age.add_metric([kind], beat.age_seconds)
                alive.add_metric([kind], beat.processes)
        yield from (up, outbox, backlog, dead, waited, events, charged, refunded, runs, last_run)
        yield from (beat_age, alive)
