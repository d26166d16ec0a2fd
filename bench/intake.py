"""Webhook intake and worker throughput, end to end with Zendesk, beside two baselines.

::

    .venv/bin/python bench/intake.py [--seconds 10] [--databases sqlite,postgresql]
        [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--events 1000]

For each database (PostgreSQL: a scratch database on ``--url``'s server, created, migrated
with ``Database.upgrade`` and dropped; SQLite: a WAL file in a temporary directory), the
same gunicorn command line (``--server-workers`` gthread workers of ``--server-threads``
threads, keep-alive, loopback) serves in turn:

* **connector**: ``create_app`` with a Zendesk desk (bench/intake_apps.py), fed signed
  trigger deliveries on ``POST /hooks/zendesk``;
* **insert+commit**: a Flask endpoint that inserts the raw body into a table of its own and
  commits, one transaction per request, through the connector's ``Database`` (same engine
  options and pragmas);
* **bare**: a Flask endpoint that reads the body and answers 200.

Each is loaded for ``--seconds`` (after ``--warmup``) by bench/intake_load.py in a separate
process over ``--connections`` keep-alive connections (closed loop): bare, then ``--rounds``
rounds of insert, connector, connector, insert, then bare again, so that a drift in the
machine's load weighs on both sides of each ratio alike. Each figure is the mean of its runs;
each round gives a ratio of its own, and the report shows them with their median (a 2-core
virtual machine's commit rate can change by half between two runs a minute apart). Then the
connector is loaded open-loop at half its measured peak for the latency percentiles (measured from
when each request was due). Every delivery is distinct and checked: the connector must
answer ``accepted`` to all, and the database must hold exactly the events answered.

The worker: on a fresh database with customers of every plan, ``--events`` deliveries (new
tickets and comments on them, known, unknown and email-less requesters) are taken through
the intake, then ``connector.runner.drain`` runs in 1 and 2 processes at once (a fresh batch
each) against a fake Zendesk on loopback (bench/fake_helpdesk.py), timed until every event
is processed and every write-back sent; every write-back must arrive exactly once.

When the connector is below 0.6 of the insert+commit baseline, or its p99 above 50 ms, the
intake path is profiled in-process (cProfile; ``--profile`` forces it, ``--no-profile``
skips it).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing
import os
import platform
import pstats
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import fake_helpdesk  # noqa: E402
import intake_apps  # noqa: E402
import intake_load  # noqa: E402

from connector import create_app  # noqa: E402
from connector.customers import import_customers, validate_entries  # noqa: E402
from connector.db import Database, normalize_url  # noqa: E402
from connector.models import Event, InboundDelivery, LedgerEntry, OutboxAction  # noqa: E402
from connector.runner import drain  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RATIO_TARGET = 0.6
P99_TARGET_MS = 50.0
#: One round of runs, symmetric about its middle (a linear drift cancels in its ratio).
ROUND = ("insert", "connector", "connector", "insert")


def run_order(rounds: int) -> list[str]:
    """bare, ``rounds`` times :data:`ROUND`, bare."""
    return ["bare", *ROUND * rounds, "bare"]


FACTORIES = {"connector": "connector_app", "insert": "insert_app", "bare": "bare_app"}
_MARKER = re.compile(r"\[care:([^\]]+)\]")


# --------------------------------------------------------------------------------------------
# Databases, servers, load


@contextmanager
def scratch_database(kind: str, server: URL) -> Iterator[str]:
    """A migrated, empty database of ``kind`` with the insert baseline's table; removed on
    exit (the PostgreSQL database dropped, the SQLite directory deleted)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="care-bench-") as folder:
            url = f"sqlite:///{folder}/intake.sqlite3"
            _prepare(url)
            yield url
        return
    name = f"care_bench_intake_{secrets.token_hex(4)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = server.set(database=name).render_as_string(hide_password=False)
            _prepare(url)
            yield url
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _prepare(url: str) -> None:
    database = Database.from_url(url)
    try:
        database.upgrade()
        intake_apps.baseline_metadata.create_all(database.engine)
    finally:
        database.dispose()


def connections_opened(url: str) -> int:
    """PostgreSQL: connections made to ``url``'s database so far (``pg_stat_database``, this
    query's own included); 0 on SQLite. A pool too small for the server's threads shows here
    as connections opened during a run."""
    if not url.startswith("postgresql"):
        return 0
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            ).scalar()
            return int(found or 0)
    finally:
        engine.dispose()


def durability(url: str) -> str:
    """The settings that decide what a commit waits for, as the apps' engine sees them."""
    database = Database.from_url(url)
    try:
        with database.engine.connect() as connection:
            if database.dialect == "postgresql":
                values = [
                    f"{name}={connection.execute(text(f'SHOW {name}')).scalar()}"
                    for name in ("synchronous_commit", "fsync", "wal_sync_method")
                ]
                return ", ".join(values)
            mode = connection.execute(text("PRAGMA journal_mode")).scalar()
            sync = connection.execute(text("PRAGMA synchronous")).scalar()
            names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
            return f"journal_mode={mode}, synchronous={names.get(int(sync or 0), sync)}"
    finally:
        database.dispose()


@dataclass(frozen=True)
class ServerSettings:
    """The gunicorn settings every app is served with."""

    workers: int
    threads: int

    def argv(self, port: int, factory: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--pythonpath",
            str(BENCH),
            "--worker-class",
            "gthread",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--keep-alive",
            "75",
            "--graceful-timeout",
            "5",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            f"intake_apps:{factory}()",
        ]

    def describe(self) -> str:
        return (
            f"gunicorn {_gunicorn_version()}, {self.workers} gthread workers x "
            f"{self.threads} threads, keep-alive 75 s, 127.0.0.1"
        )


def _gunicorn_version() -> str:
    import gunicorn

    return str(gunicorn.__version__)


@contextmanager
def serving(app: str, settings: ServerSettings, url: str, desk_url: str) -> Iterator[int]:
    """``app`` under gunicorn on a free loopback port; yields the port once a worker answers;
    stopped (SIGTERM, then SIGKILL of its process group) on exit."""
    port = fake_helpdesk.free_port()
    env = {
        **os.environ,
        intake_apps.ENV_DATABASE: url,
        intake_apps.ENV_DESK_URL: desk_url,
    }
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        settings.argv(port, FACTORIES[app]),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        _wait_until_serving(port, process, log)
        yield port
    finally:
        fake_helpdesk.stop(process)
        log.close()


def _wait_until_serving(port: int, process: subprocess.Popen[Any], log: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"gunicorn exited ({process.returncode}):\n{log.read()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(16).startswith(b"HTTP/1."):
                    return  # a worker has booted and answers (404 here is fine)
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("gunicorn did not answer within 60 s")


def load(
    port: int,
    *,
    connections: int,
    seconds: float,
    warmup: float,
    tag: str,
    first_ticket: int,
    rate: float | None = None,
) -> dict[str, Any]:
    """Run bench/intake_load.py in its own process against ``port``; its JSON result."""
    argv = [
        sys.executable,
        str(BENCH / "intake_load.py"),
        "--url",
        f"http://127.0.0.1:{port}/hooks/zendesk",
        "--connections",
        str(connections),
        "--seconds",
        str(seconds),
        "--warmup",
        str(warmup),
        "--tag",
        tag,
        "--first-ticket",
        str(first_ticket),
    ]
    if rate is not None:
        argv += ["--rate", f"{rate:.1f}"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if result["errors"]:
        raise RuntimeError(f"the load generator's connections failed: {result['errors']}")
    return result


# --------------------------------------------------------------------------------------------
# Intake


@dataclass
class IntakeFigures:
    """One database's intake figures."""

    runs: dict[str, list[float]] = field(default_factory=dict)
    #: Database connections opened during each run (PostgreSQL; 0 on SQLite).
    opened: dict[str, list[int]] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    def rate(self, app: str) -> float:
        values = self.runs.get(app, [])
        return sum(values) / len(values) if values else float("nan")

    def round_ratios(self) -> list[float]:
        """connector / insert+commit of each round (the runs taken in :data:`ROUND` order)."""
        ours, insert = self.runs.get("connector", []), self.runs.get("insert", [])
        return [
            (ours[i] + ours[i + 1]) / (insert[i] + insert[i + 1])
            for i in range(0, min(len(ours), len(insert)) - 1, 2)
        ]


def measure_intake(
    kind: str, url: str, desk_url: str, settings: ServerSettings, args: argparse.Namespace
) -> IntakeFigures:
    """The three apps' peak rates (:func:`run_order`), then the connector's latency at half
    its peak."""
    figures = IntakeFigures()
    accepted = Counter[str]()
    sent = Counter[str]()
    order = run_order(args.rounds)
    for index, app in enumerate(order):
        with serving(app, settings, url, desk_url) as port:
            opened = connections_opened(url)
            result = load(
                port,
                connections=args.connections,
                seconds=args.seconds,
                warmup=args.warmup,
                tag=f"{kind}-{index}-{secrets.token_hex(3)}",
                first_ticket=(index + 1) * 10_000_000,
            )
            opened = connections_opened(url) - opened
        _check_answers(app, result)
        figures.runs.setdefault(app, []).append(result["rate"])
        figures.opened.setdefault(app, []).append(opened)
        accepted[app] += result["accepted_total"]
        sent[app] += result["sent_total"]
        lat = result["latency_ms"]
        _progress(
            f"{kind:<10} {app:<9} {result['rate']:8.0f}/s  p50 {lat['p50']:6.1f} ms  "
            f"p99 {lat['p99']:6.1f} ms  ({result['completed']} in {args.seconds:g} s, "
            f"load {_loadavg()}; {opened} database connections opened)"
        )

    rate = figures.rate("connector") / 2
    with serving("connector", settings, url, desk_url) as port:
        result = load(
            port,
            connections=args.latency_connections,
            seconds=args.seconds,
            warmup=args.warmup,
            tag=f"{kind}-latency-{secrets.token_hex(3)}",
            first_ticket=(len(order) + 1) * 10_000_000,
            rate=rate,
        )
    _check_answers("connector", result)
    accepted["connector"] += result["accepted_total"]
    sent["connector"] += result["sent_total"]
    figures.latency = result
    lat = result["latency_ms"]
    _progress(
        f"{kind:<10} latency at {rate:.0f}/s: achieved {result['rate']:.0f}/s, "
        f"p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms "
        f"(load {_loadavg()})"
    )
    figures.checks = _check_database(url, accepted, sent)
    return figures


def _check_answers(app: str, result: dict[str, Any]) -> None:
    if result["accepted_total"] != result["sent_total"]:
        raise RuntimeError(
            f"{app}: {result['sent_total'] - result['accepted_total']} of "
            f"{result['sent_total']} deliveries not accepted, e.g. {result['others']}"
        )


def _check_database(url: str, accepted: Counter[str], sent: Counter[str]) -> list[str]:
    """Every accepted delivery is stored once and its event is pending; the baseline's table
    holds one row per request."""
    database = Database.from_url(url)
    try:
        with database.transaction(read_only=True) as session:
            deliveries = session.scalar(select(func.count()).select_from(InboundDelivery))
            events = session.scalar(select(func.count()).select_from(Event))
            pending = session.scalar(
                select(func.count()).select_from(Event).where(Event.status == "pending")
            )
            raw = session.scalar(select(func.count()).select_from(intake_apps.baseline_deliveries))
    finally:
        database.dispose()
    problems = []
    if deliveries != sent["connector"]:
        problems.append(f"{deliveries} deliveries stored for {sent['connector']} sent")
    if events != accepted["connector"] or pending != events:
        problems.append(f"{events} events ({pending} pending) for {accepted['connector']}")
    if raw != accepted["insert"]:
        problems.append(f"{raw} baseline rows for {accepted['insert']} answered")
    if problems:
        raise RuntimeError("; ".join(problems))
    return [
        f"{deliveries} deliveries stored, {events} events pending, {raw} baseline rows: "
        "one per answered request"
    ]


# --------------------------------------------------------------------------------------------
# Worker

TEXTS = [
    ("How to set up shipping methods?", "Where can I find the shipping settings?"),
    ("Как настроить способы оплаты?", "Подскажите, где включить оплату картой?"),
    ("Error 500 on checkout", "Server log shows a fatal error, probably the database."),
    ("Upgrade our store", "Please upgrade us from 4.3.1 to 4.3.9."),
    ("Custom modification", "We need a custom modification: add a field to checkout."),
    ("Help", "Something is wrong, please help."),
]
PLANS = ("vip", "standard", "free", "credits")


def customer_entries(count: int, today: date) -> list[dict[str, Any]]:
    """``count`` customers, the four plans in turn; credits customers can pay for anything."""
    entries: list[dict[str, Any]] = []
    for i in range(count):
        plan = PLANS[i % len(PLANS)]
        entry: dict[str, Any] = {"email": f"c{i}@bench.example", "name": f"Customer {i}"}
        if plan in ("vip", "standard"):
            entry["subscriptions"] = [
                {
                    "plan": plan,
                    "starts_on": (today - timedelta(days=30)).isoformat(),
                    "ends_on": (today + timedelta(days=300)).isoformat(),
                }
            ]
            entry["upgrades_until"] = "lifetime"
        elif plan == "free":
            entry["licenses"] = [
                {
                    "ref": f"MV-{i}",
                    "product": "multi-vendor",
                    "kind": "first",
                    "purchased_on": (today - timedelta(days=5)).isoformat(),
                }
            ]
        else:
            entry["licenses"] = [
                {
                    "ref": f"CS-{i}",
                    "product": "cs-cart",
                    "kind": "first",
                    "purchased_on": (today - timedelta(days=400)).isoformat(),
                }
            ]
            entry["upgrades_until"] = (today + timedelta(days=300)).isoformat()
            entry["credit_purchases"] = [
                {"ref": f"order-{i}", "credits": 1_000_000, "purchased_on": today.isoformat()}
            ]
        entries.append(entry)
    return entries


def worker_bodies(batch: int, count: int, customers: int) -> list[dict[str, Any]]:
    """``count`` trigger bodies: mostly new tickets, every fifth a customer's comment on a
    ticket created earlier in the batch; every tenth requester unknown, every twentieth
    without an email (the worker asks the desk for it)."""
    bodies: list[dict[str, Any]] = []
    created: list[tuple[str, str, str]] = []
    for i in range(count):
        subject, description = TEXTS[i % len(TEXTS)]
        if i % 5 == 4 and created:
            ticket, email, requester = created[(i * 7) % len(created)]
            bodies.append(
                intake_load.trigger_body(
                    ticket,
                    email=email,
                    requester_id=requester,
                    subject=subject,
                    description=description,
                    event="comment",
                    comment="Thanks, any news?",
                    tags="",
                )
            )
            continue
        ticket = str(batch * 1_000_000 + i + 1)
        requester = str(100_000 + i)
        if i % 20 == 19:
            email = ""
        elif i % 10 == 9:
            email = f"unknown{batch}-{i}@bench.example"
        else:
            email = f"c{i % customers}@bench.example"
        created.append((ticket, email, requester))
        bodies.append(
            intake_load.trigger_body(
                ticket,
                email=email,
                requester_id=requester,
                subject=subject,
                description=description,
                tags="",
            )
        )
    return bodies


@dataclass
class WorkerRun:
    processes: int
    events: int
    writebacks: int
    seconds: float
    charges: int
    kinds: dict[str, int]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def writebacks_per_second(self) -> float:
        return self.writebacks / self.seconds


def measure_worker(
    url: str, desk_url: str, events: int, levels: list[int]
) -> tuple[list[WorkerRun], list[str]]:
    """Pre-load ``events`` deliveries through the intake, then time ``drain`` in N processes;
    once per level, each with a fresh batch."""
    app = create_app(intake_apps.bench_config(url, desk_url))
    st = app.extensions["care_connector"]
    secret = os.environ[intake_apps.ENV_SECRET]
    today = datetime.now(UTC).date()
    customers = 200
    records = validate_entries(
        customer_entries(customers, today), policy=st.settings.policy, desks=["zendesk"]
    )
    with st.database.transaction() as session:
        import_customers(
            session, records, policy=st.settings.policy, at=datetime.now(UTC) - timedelta(days=1)
        )
    client = app.test_client()
    fake_helpdesk.reset(desk_url)  # the write-backs of this database only
    runs: list[WorkerRun] = []
    checks: list[str] = []
    try:
        for batch, processes in enumerate(levels, start=1):
            ids: list[int] = []
            for n, body in enumerate(worker_bodies(batch, events, customers)):
                raw = json.dumps(body).encode()
                headers = intake_load.signed_headers(
                    secret, raw, f"worker-{batch}-{n}", datetime.now(UTC)
                )
                answer = client.post("/hooks/zendesk", data=raw, headers=headers)
                if answer.status_code != 200 or answer.get_json() != {"status": "accepted"}:
                    raise RuntimeError(f"pre-load: {answer.status_code} {answer.get_data()!r}")
            with st.database.transaction(read_only=True) as session:
                ids = list(session.scalars(select(Event.id).where(Event.status == "pending")))
                charges_before = session.scalar(select(func.count()).select_from(LedgerEntry))
                sent_before = session.scalar(
                    select(func.count())
                    .select_from(OutboxAction)
                    .where(OutboxAction.status == "sent")
                )
            if len(ids) != events:
                raise RuntimeError(f"pre-load: {len(ids)} pending events for {events} posted")
            elapsed, processed = _drain_in_processes(url, desk_url, processes)
            with st.database.transaction(read_only=True) as session:
                statuses = dict(
                    session.execute(
                        select(Event.status, func.count())
                        .where(Event.id.in_(ids))
                        .group_by(Event.status)
                    ).all()
                )
                kinds = dict(
                    session.execute(
                        select(OutboxAction.kind, func.count())
                        .where(OutboxAction.event_id.in_(ids))
                        .group_by(OutboxAction.kind)
                    ).all()
                )
                sent = session.scalar(
                    select(func.count())
                    .select_from(OutboxAction)
                    .where(OutboxAction.status == "sent")
                )
                charges = session.scalar(select(func.count()).select_from(LedgerEntry))
            if statuses.get("done", 0) + statuses.get("ignored", 0) != events:
                raise RuntimeError(f"batch {batch}: events left {statuses}")
            if processed != events:
                raise RuntimeError(f"batch {batch}: drain reported {processed} of {events}")
            checks.append(_check_writebacks(st.database, desk_url))
            runs.append(
                WorkerRun(
                    processes=processes,
                    events=events,
                    writebacks=int(sent or 0) - int(sent_before or 0),
                    seconds=elapsed,
                    charges=int(charges or 0) - int(charges_before or 0),
                    kinds=kinds,
                )
            )
            run = runs[-1]
            _progress(
                f"worker     {processes} process(es): {events} events in {elapsed:.2f} s "
                f"= {run.events_per_second:.0f}/s, {run.writebacks} write-backs "
                f"= {run.writebacks_per_second:.0f}/s, {run.charges} charges, {kinds}"
            )
    finally:
        st.database.dispose()
    return runs, checks


def _check_writebacks(database: Database, desk_url: str) -> str:
    """Every outbox row is sent, and the desk received each exactly once: notes and replies
    by their marker, priority and tag writes by their exact request."""
    from adapters.base import marker_tag

    with database.transaction(read_only=True) as session:
        rows = session.execute(
            select(
                OutboxAction.status,
                OutboxAction.kind,
                OutboxAction.ticket_id,
                OutboxAction.payload,
                OutboxAction.marker,
            )
        ).all()
    unsent = Counter(status for status, *_ in rows if status != "sent")
    if unsent:
        raise RuntimeError(f"outbox rows not sent: {dict(unsent)}")
    expected = Counter[tuple[str, ...]]()
    for _, kind, ticket, payload, marker in rows:
        path = f"/api/v2/tickets/{ticket}"
        if kind in ("note", "reply"):
            expected[("marker", marker)] += 1
            assert marker_tag(marker) in str(payload["body"])
        elif kind == "priority":
            body = {"ticket": {"priority": str(payload["value"]).lower()}}
            expected[("PUT", path, json.dumps(body, sort_keys=True))] += 1
        elif kind == "tags":
            tags = list(dict.fromkeys(t.strip() for t in payload["tags"] if t.strip()))
            expected[("PUT", f"{path}/tags", json.dumps({"tags": tags}, sort_keys=True))] += 1
        else:
            raise RuntimeError(f"unexpected outbox kind {kind!r}")
    received = Counter[tuple[str, ...]]()
    for method, path, body in fake_helpdesk.recorded(desk_url):
        comment = (body or {}).get("ticket", {}).get("comment") if path.count("/") == 4 else None
        if comment is not None:
            found = _MARKER.findall(str(comment.get("body", "")))
            if len(found) != 1:
                raise RuntimeError(f"a comment with {len(found)} markers: {comment!r:.200}")
            received[("marker", found[0])] += 1
        else:
            received[(method, path, json.dumps(body, sort_keys=True))] += 1
    if received != expected:
        missing = expected - received
        extra = received - expected
        raise RuntimeError(
            f"write-backs differ: {sum(missing.values())} missing (e.g. {list(missing)[:2]}), "
            f"{sum(extra.values())} extra or repeated (e.g. {list(extra)[:2]})"
        )
    return f"{len(rows)} outbox rows sent, each received by the desk exactly once"


def _drain_in_processes(url: str, desk_url: str, processes: int) -> tuple[float, int]:
    """``drain`` in ``processes`` spawned processes started together; the wall time from the
    first start to the last finish, and the events they processed."""
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes + 1)
    results = context.Queue()
    children = [
        context.Process(target=_drain_child, args=(url, desk_url, ready, results))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        ready.wait(timeout=120)
        outcomes = [results.get(timeout=1800) for _ in children]
        for child in children:
            child.join(timeout=60)
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
                child.join()
    failures = [o for o in outcomes if isinstance(o, str)]
    if failures:
        raise RuntimeError(f"a drain process failed: {failures[0]}")
    began = min(o["began"] for o in outcomes)
    ended = max(o["ended"] for o in outcomes)
    return ended - began, sum(o["processed"] for o in outcomes)


def _drain_child(url: str, desk_url: str, ready: Any, results: Any) -> None:
    """One worker process: its own app and connections, then ``drain`` until idle."""
    try:
        app = create_app(intake_apps.bench_config(url, desk_url))
        st = app.extensions["care_connector"]
        with st.database.transaction(read_only=True) as session:
            session.execute(select(1))  # connect (and, on SQLite, the schema check) first
        ready.wait(timeout=120)
        began = time.time()
        done = drain(st, rounds=100_000)
        ended = time.time()
        processed = sum(1 for p in done.processed if p.status in ("done", "ignored"))
        st.database.dispose()
        results.put({"began": began, "ended": ended, "processed": processed})
    except BaseException as err:  # noqa: BLE001 - reported to the parent, never a hang
        results.put(f"{err.__class__.__name__}: {err}")


# --------------------------------------------------------------------------------------------
# Profile


def profile_intake(url: str, desk_url: str, count: int) -> str:
    """The intake path in-process (Flask test client, one thread): the wall time per request
    of the three apps, the wall time of each step of ``receive``, and where the connector's
    CPU goes by package (cProfile)."""
    import connector.blueprints.hooks as hooks_module
    import connector.intake as intake_module
    from adapters.zendesk.adapter import ZendeskAdapter

    secret = os.environ[intake_apps.ENV_SECRET]
    os.environ[intake_apps.ENV_DATABASE] = url
    apps = {
        "connector": create_app(intake_apps.bench_config(url, desk_url)),
        "insert": intake_apps.insert_app(),
        "bare": intake_apps.bare_app(),
    }
    tag = secrets.token_hex(3)
    bodies = [
        json.dumps(intake_load.trigger_body(str(80_000_000 + n))).encode() for n in range(count)
    ]

    cpu: dict[str, float] = {}

    def post_all(app_name: str, prefix: str) -> float:
        """Wall time per request in ms (and its CPU time, in ``cpu``)."""
        client = apps[app_name].test_client()
        began, began_cpu = time.perf_counter(), time.process_time()
        for n, raw in enumerate(bodies):
            headers = intake_load.signed_headers(
                secret, raw, f"profile-{tag}-{prefix}-{n}", datetime.now(UTC)
            )
            answer = client.post("/hooks/zendesk", data=raw, headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"profile: {answer.status_code} {answer.get_data()!r}")
        cpu[app_name] = (time.process_time() - began_cpu) / count * 1000
        return (time.perf_counter() - began) / count * 1000

    for name in apps:  # warm: imports, connections, the SQLite schema check
        post_all(name, f"warm-{name}")
    per_request = {name: post_all(name, f"time-{name}") for name in apps}
    cpu_per_request = dict(cpu)  # before the timed and profiled passes below

    # Wall time of each step: the steps wrapped with a timer for one more pass.
    spent: dict[str, float] = defaultdict(float)
    steps = [
        (hooks_module, ("receive",), "receive (the whole intake)"),
        (ZendeskAdapter, ("verify",), "ZendeskAdapter.verify"),
        (ZendeskAdapter, ("delivery_key",), "ZendeskAdapter.delivery_key"),
        (ZendeskAdapter, ("parse",), "ZendeskAdapter.parse"),
        (intake_module, ("_store_in_one_statement",), "store: one statement (PostgreSQL)"),
        (intake_module, ("_insert_event_rows",), "store: insert events (SQLite)"),
    ]
    # The names as they are in this checkout; a step that is not found is left out.
    found = []
    for owner, names, label in steps:
        present = next((n for n in names if hasattr(owner, n)), None)
        if present is not None:
            found.append((owner, present, label))
    for _owner, _name, label in found:
        spent[label] = 0.0  # the table's order
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in found]
    for owner, name, label in found:
        setattr(owner, name, _timed(getattr(owner, name), label, spent))
    try:
        post_all("connector", "steps")
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    accounted = sum(v for k, v in spent.items() if not k.startswith("receive"))
    spent["the rest of receive (rows, SQLite delivery insert and commit)"] = (
        spent["receive (the whole intake)"] - accounted
    )

    profiler = cProfile.Profile()
    profiler.enable()
    post_all("connector", "profiled")
    profiler.disable()
    apps["connector"].extensions["care_connector"].database.dispose()

    out = io.StringIO()
    out.write(
        "  in-process, one thread, wall time per request: "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in per_request.items())
        + f"\n  (connector / insert+commit, as rates: "
        f"{per_request['insert'] / per_request['connector']:.2f})\n"
        "  CPU time per request (signing included): "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu_per_request.items())
        + "\n"
    )
    out.write("  the connector's steps, wall time per request:\n")
    for label, seconds in spent.items():
        out.write(f"    {label:<56} {seconds / count * 1000:7.3f} ms\n")
    out.write("  the connector's own time by package (cProfile, inflates call-heavy code):\n")
    packages = _by_package(pstats.Stats(profiler))
    total = sum(packages.values())
    for package, seconds in packages.most_common(9):
        out.write(f"    {package:<30} {seconds / total * 100:5.1f} %\n")
    out.write("  top functions by own time:\n")
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(10)
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    out.writelines(f"    {_shorten(line.strip())}\n" for line in lines[start:])
    return out.getvalue()


def _timed(function: Any, label: str, spent: dict[str, float]) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - began

    return timed


_PACKAGES = (
    ("marshmallow", "marshmallow (adapter.parse)"),
    ("copy.py", "copy.deepcopy (marshmallow schemas)"),
    ("sqlalchemy", "sqlalchemy"),
    ("psycopg", "psycopg"),
    ("sqlite3", "sqlite3 (C)"),
    ("werkzeug", "flask, werkzeug"),
    ("flask", "flask, werkzeug"),
    ("/connector/", "connector"),
    ("/adapters/", "adapters"),
    ("json", "json"),
)


def _by_package(stats: pstats.Stats) -> Counter[str]:
    found: Counter[str] = Counter()
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename} {function}"
        label = next((name for key, name in _PACKAGES if key in where), "other")
        found[label] += row[2]
    return found


def _shorten(line: str) -> str:
    return re.sub(r"\S*/(site-packages|lib/python3\.\d+|work/main)/", "", line)[:140]


# --------------------------------------------------------------------------------------------
# Report


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model or platform.processor()}), {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def postgres_version(server: URL) -> str:
    engine = create_engine(server)
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar()).split()[0]
    finally:
        engine.dispose()


def report(
    header: list[str],
    intake: dict[str, IntakeFigures],
    workers: dict[str, list[WorkerRun]],
    durabilities: dict[str, str],
    checks: list[str],
) -> str:
    out = io.StringIO()
    w = out.write
    for line in header:
        w(line + "\n")
    w("\nIntake: signed Zendesk deliveries through POST /hooks/zendesk (closed loop)\n")
    w(
        f"{'database':<11}{'connector/s':>12}{'insert+commit/s':>16}{'bare/s':>9}"
        f"{'conn/insert':>12}{'conn/bare':>10}\n"
    )
    for kind, figures in intake.items():
        ours, insert, bare = (figures.rate(a) for a in ("connector", "insert", "bare"))
        w(
            f"{kind:<11}{ours:>12.0f}{insert:>16.0f}{bare:>9.0f}"
            f"{ours / insert:>12.2f}{ours / bare:>10.2f}\n"
        )
    w("  each figure the mean of its runs; connector / insert+commit by round:\n")
    for kind, figures in intake.items():
        ratios = figures.round_ratios()
        if ratios:
            listed = ", ".join(f"{r:.2f}" for r in ratios)
            w(f"    {kind}: {listed} (median {statistics.median(ratios):.2f})\n")
    w("  the runs, in order (database connections opened during each run):\n")
    for kind, figures in intake.items():
        each = "; ".join(
            f"{app} "
            + ", ".join(
                f"{v:.0f} ({n})"
                for v, n in zip(figures.runs[app], figures.opened[app], strict=True)
            )
            for app in ("connector", "insert", "bare")
        )
        w(f"    {kind}: {each}\n")
    w("\nConnector latency at half its peak (open loop, from when each request was due)\n")
    w(f"{'database':<11}{'rate/s':>8}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'max ms':>8}\n")
    for kind, figures in intake.items():
        lat = figures.latency["latency_ms"]
        w(
            f"{kind:<11}{figures.latency['rate']:>8.0f}{lat['p50']:>8.1f}{lat['p90']:>8.1f}"
            f"{lat['p99']:>8.1f}{lat['max']:>8.1f}\n"
        )
    w("\nWorker: connector.runner.drain against the fake Zendesk (loopback)\n")
    w(
        f"{'database':<11}{'procs':>6}{'events':>8}{'events/s':>10}{'write-backs':>13}"
        f"{'write-backs/s':>15}{'charges':>9}\n"
    )
    for kind, runs in workers.items():
        for run in runs:
            w(
                f"{kind:<11}{run.processes:>6}{run.events:>8}{run.events_per_second:>10.0f}"
                f"{run.writebacks:>13}{run.writebacks_per_second:>15.0f}{run.charges:>9}\n"
            )
    if workers:
        first = next(iter(workers.values()))[0]
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(first.kinds.items()))
        w(f"  write-backs of one batch: {kinds}\n")
    w("\nDurability as the apps' connections see it\n")
    for kind, value in durabilities.items():
        w(f"  {kind}: {value}\n")
    w("\nChecks\n")
    for line in checks:
        w(f"  {line}\n")
    return out.getvalue()


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--url",
        default=os.environ.get("CARE_TEST_DATABASE_URL", DEFAULT_URL),
        help="a PostgreSQL server URL; a scratch database is created there and dropped",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of insert, connector, connector, insert"
    )
    parser.add_argument("--connections", type=int, default=16, help="closed-loop connections")
    parser.add_argument("--latency-connections", type=int, default=32, help="open-loop connections")
    parser.add_argument("--server-workers", type=int, default=2)
    parser.add_argument("--server-threads", type=int, default=8)
    parser.add_argument("--events", type=int, default=1000, help="events per worker batch")
    parser.add_argument("--drain-processes", default="1,2", help="worker process counts")
    parser.add_argument("--profile", action="store_true", help="profile the intake always")
    parser.add_argument("--no-profile", action="store_true", help="never profile")
    parser.add_argument("--no-worker", action="store_true", help="measure the intake only")
    parser.add_argument("--profile-requests", type=int, default=300)
    args = parser.parse_args(argv)

    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in ("sqlite", "postgresql")]
    if unknown or not kinds:
        parser.error(f"--databases: sqlite and/or postgresql, not {unknown or kinds}")
    try:
        levels = [int(n) for n in args.drain_processes.split(",") if n.strip()]
    except ValueError:
        parser.error("--drain-processes: comma-separated integers")
    if args.seconds <= 0 or args.events <= 0 or args.rounds < 1 or not levels or min(levels) < 1:
        parser.error("--seconds, --events, --rounds and --drain-processes must be positive")
    try:
        server = make_url(normalize_url(args.url))
    except Exception as err:  # noqa: BLE001 - a bad URL is a one-line error
        parser.error(f"--url: {err}")
    if "postgresql" in kinds and server.get_backend_name() != "postgresql":
        parser.error("--url must be a PostgreSQL server URL")

    # A signal ends the run through the same clean-up as an error.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ[intake_apps.ENV_SECRET] = secrets.token_urlsafe(24)
    os.environ[intake_apps.ENV_TOKEN] = "bench-token"
    os.environ.setdefault("CARE_SECRET_KEY", secrets.token_urlsafe(24))
    for name in ("CARE_DATABASE_URL", "CARE_CONFIG"):
        os.environ.pop(name, None)  # the bench's own settings, not the shell's

    settings = ServerSettings(args.server_workers, args.server_threads)
    started = datetime.now(UTC)
    load_before = _loadavg()
    versions = [machine()]
    if "postgresql" in kinds:
        try:
            versions.append(f"PostgreSQL {postgres_version(server)}")
        except Exception as err:  # noqa: BLE001 - a one-line error, not a traceback
            reason = str(err).splitlines()[0]
            print(f"error: cannot reach PostgreSQL at {server!r}: {reason}", file=sys.stderr)
            return 1
    _progress(f"load average before: {load_before}")

    intake: dict[str, IntakeFigures] = {}
    workers: dict[str, list[WorkerRun]] = {}
    durabilities: dict[str, str] = {}
    checks: list[str] = []
    profiles: dict[str, str] = {}
    try:
        with ExitStack() as stack:
            desk_url = stack.enter_context(fake_helpdesk.running())
            for kind in kinds:
                with scratch_database(kind, server) as url:
                    durabilities[kind] = durability(url)
                    figures = measure_intake(kind, url, desk_url, settings, args)
                    intake[kind] = figures
                    checks += [f"{kind} intake: {c}" for c in figures.checks]
                    short = (
                        figures.rate("connector") / figures.rate("insert") < RATIO_TARGET
                        or figures.latency["latency_ms"]["p99"] > P99_TARGET_MS
                    )
                    if args.profile or (short and not args.no_profile):
                        _progress(f"{kind:<10} profiling the intake in-process")
                        profiles[kind] = profile_intake(url, desk_url, args.profile_requests)
                if args.no_worker:
                    continue
                with scratch_database(kind, server) as url:
                    runs, found = measure_worker(url, desk_url, args.events, levels)
                    workers[kind] = runs
                    checks += [f"{kind} worker: {c}" for c in found]
    except (RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    header = [
        "Webhook intake and worker (bench/intake.py)",
        f"date: {started:%Y-%m-%d %H:%M} UTC; machine: {'; '.join(versions)}",
        f"server: {settings.describe()} (the same for the three apps)",
        f"load: bench/intake_load.py in its own process, {args.connections} keep-alive "
        f"connections, {args.seconds:g} s measured after {args.warmup:g} s warm-up",
        f"load average (1, 5, 15 min) before: {load_before}; after: {_loadavg()}",
    ]
    print(report(header, intake, workers, durabilities, checks), end="")
    for kind, text_ in profiles.items():
        print(f"\nProfile of the intake, {kind}\n{text_}", end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
