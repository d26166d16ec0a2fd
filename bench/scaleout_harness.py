"""The scale-out harness: PostgreSQL, the connector's processes, the fake desks, a workload of
signed deliveries, and the checks that nothing was lost or done twice.

bench/scaleout.py runs it at scale on the local PostgreSQL server; tests/reliability runs it
small, against a private throw-away PostgreSQL (:class:`PrivatePostgres`), with faults.

The pieces:

* :class:`PrivatePostgres`: ``initdb`` in a temporary folder, on its own port (as the
  ``postgres`` user when run as root: initdb refuses root), started, stopped and restarted
  with ``pg_ctl``.
* :class:`Workload`: customers (the four plans in turn, as bench/intake.py makes them),
  tickets over the four desks (texts of known category, unknown and email-less requesters),
  the customers' comments on them (an approval where one is asked for), a share of the
  deliveries sent twice, and the charges the run must end with (:meth:`Workload.build`
  explains the model).
* :class:`Cluster`: the connector as in production: gunicorn web processes, ``care-connector
  worker`` and ``care-connector scheduler`` processes, one config file.
* :class:`Sender`: the deliveries in a fixed order, open loop at a given rate, alternating
  over the web processes' ports, each signed when sent; a delivery answered 503 or refused at
  the socket is sent again, as a desk does; a delivery that depends on another (a comment on
  its ticket, a repeat) waits until that one was answered.
* :func:`check`: every delivery processed exactly once, every write-back applied exactly once
  and in order per ticket, the ledger balanced and equal to the model's charges, no outbox row
  left unsent; and the latencies.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import desk_payloads as dp  # noqa: E402
import fake_helpdesk  # noqa: E402
from intake import PLANS, customer_entries  # noqa: E402
from intake_load import Connection, percentile  # noqa: E402

from connector.config import default_policy  # noqa: E402
from connector.db import Database, normalize_url  # noqa: E402
from connector.models import (  # noqa: E402
    Event,
    Heartbeat,
    InboundDelivery,
    LedgerEntry,
    OutboxAction,
)

# --------------------------------------------------------------------------------------------
# PostgreSQL


def _postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: Debian's ``/usr/lib/postgresql/<v>/bin``
    (newest first), else wherever ``initdb`` is on the PATH."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    if found:
        return found[0].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class PrivatePostgres:
    """A throw-away PostgreSQL server: its own data folder and port, loopback only.

    Run as root, the server's commands run as the ``postgres`` user (``runuser``) and the
    folder is given to it; otherwise as the current user. ``fsync`` is off: the data lives
    as long as the object.
    """

    def __init__(self, *, fsync: bool = False) -> None:
        binaries = _postgres_bin()
        if binaries is None:
            raise RuntimeError("no initdb: install PostgreSQL's server binaries")
        self.bin = binaries
        self.port = fake_helpdesk.free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="care-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.fsync = fsync
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )

    @staticmethod
    def available() -> str | None:
        """Why a private server cannot be made here, or ``None`` when it can."""
        if _postgres_bin() is None:
            return "PostgreSQL's server binaries (initdb) are not installed"
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                return "running as root and runuser is missing"
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no postgres user to run initdb as"
        return None

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bin / tool), *args]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr[-1500:]}")

    @property
    def url(self) -> str:
        """The server's ``postgres`` database (for creating others)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=100"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m mode``: ``fast`` (clients disconnected, clean shutdown) or
        ``immediate`` (as if the server crashed: recovery at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        argv = [str(self.bin / "pg_ctl"), "-D", str(self.data), "status"]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0

    def remove(self) -> None:
        """Stop the server if it runs and delete its folder."""
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def recreate_database(server_url: str, name: str) -> str:
    """Drop database ``name`` on the server of ``server_url`` if it exists, create it empty,
    migrate it (``Database.upgrade``); its URL."""
    server = make_url(normalize_url(server_url))
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = server.set(database=name).render_as_string(hide_password=False)
    database = Database.from_url(url)
    try:
        database.upgrade()
    finally:
        database.dispose()
    return url


def drop_database(server_url: str, name: str) -> None:
    server = make_url(normalize_url(server_url))
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# --------------------------------------------------------------------------------------------
# The workload

#: Ticket texts and the category the policy's detection gives them (checked at build).
TEXTS = (
    ("question", "How to set up shipping methods?", "Where can I find the shipping settings?"),
    ("question", "Как настроить способы оплаты?", "Подскажите, где включить оплату картой?"),
    ("question", "Where is the product import?", "How do I import products from a CSV file?"),
    (
        "investigation",
        "Error 500 on checkout",
        "Server log shows a fatal error, probably the database.",
    ),
    (
        "modification",
        "Custom modification",
        "We need a custom modification: add a field to checkout.",
    ),
    (None, "Help", "Something is wrong, please help."),
)
#: The customer's answer to an approval request (one of the policy's approve words).
APPROVE = "Yes, I agree. Go ahead."
#: A comment that changes nothing.
NEUTRAL = "Thanks, any news?"


@dataclass
class Ticket:
    """One ticket of the workload."""

    desk: str
    id: str
    requester: str
    email: str  # "" : the worker asks the desk
    plan: str  # a customer's plan, or "unknown"
    label: str | None
    subject: str
    text: str
    comments: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.desk}:{self.id}"


@dataclass
class Send:
    """One POST of the run: a delivery, or a repeat of one (``repeat_of``)."""

    index: int
    delivery: dp.Delivery
    after: int | None = None  # the send that must have been answered first
    repeat_of: int | None = None

    @property
    def identity(self) -> int:
        """The index of the original delivery (itself, unless a repeat)."""
        return self.repeat_of if self.repeat_of is not None else self.index


@dataclass
class Workload:
    """Customers, tickets, the sends in order, and the charges expected."""

    customers: list[dict[str, Any]]
    tickets: list[Ticket]
    sends: list[Send]
    expected_charges: dict[str, int]
    secrets: dict[str, str]

    @property
    def deliveries(self) -> int:
        """Distinct deliveries (repeats not counted)."""
        return sum(1 for s in self.sends if s.repeat_of is None)

    @property
    def repeats(self) -> int:
        return sum(1 for s in self.sends if s.repeat_of is not None)

    @classmethod
    def build(
        cls,
        *,
        deliveries: int,
        customers: int,
        duplicate_share: float = 0.1,
        seed: int = 1,
        now: datetime | None = None,
        first_ticket: int = 100_000,
    ) -> Workload:
        """``deliveries`` distinct deliveries over the four desks in turn, and a repeat of
        ``duplicate_share`` of them.

        Tickets: the requester is one of ``customers`` customers (plans vip, standard, free,
        credits in turn), else (one in ten) an address no customer has, else (one in forty)
        none at all, so the worker asks the desk; the text is one of :data:`TEXTS`. A ticket
        gets 0, 1 or 2 comments by its requester: a credits customer's first comment on an
        ``investigation`` ticket agrees to the price (:data:`APPROVE`), every other comment
        is :data:`NEUTRAL`.

        The expected charges (the model the ledger is checked against, independent of the
        worker): a ticket is charged only when its requester is a credits customer (each has
        1,000,000 credits, enough for anything); then the policy's free category
        (``question``) is charged its price at once, and an ``investigation`` its price when
        the customer agreed. Everything else (plans covering the category, free periods,
        unknown requesters, categories needing an engineer's price or no agreement) is
        charged nothing.
        """
        if deliveries < 1 or customers < 1:
            raise ValueError("deliveries and customers must be positive")
        rng = random.Random(seed)
        now = now or datetime.now(UTC)
        policy = default_policy()
        _check_labels(policy)
        entries = customer_entries(customers, now.date())
        secrets = {desk: f"bench-{desk}-{rng.getrandbits(64):016x}" for desk in dp.DESKS}

        tickets: list[Ticket] = []
        total = 0
        counter = itertools.count()
        while total < deliveries:
            k = next(counter)
            desk = dp.DESKS[k % len(dp.DESKS)]
            draw = rng.random()
            if draw < 0.025:
                requester, email, plan = str(900_000 + k), "", "unknown"
            elif draw < 0.1:
                requester, email, plan = str(800_000 + k), f"stranger{k}@bench.example", "unknown"
            else:
                c = rng.randrange(customers)
                requester, email, plan = str(500_000 + c), entries[c]["email"], PLANS[c % 4]
            label, subject, body = TEXTS[rng.randrange(len(TEXTS))]
            room = deliveries - total - 1
            count = min(room, rng.choice((0, 0, 1, 1, 2)))
            comments = [NEUTRAL] * count
            if count and plan == "credits" and label == "investigation":
                comments[0] = APPROVE
            tickets.append(
                Ticket(
                    desk=desk,
                    id=str(first_ticket + k),
                    requester=requester,
                    email=email,
                    plan=plan,
                    label=label,
                    subject=subject,
                    text=body,
                    comments=comments,
                )
            )
            total += 1 + count

        expected: dict[str, int] = {}
        question = policy.category(policy.free_category).credits
        investigation = policy.category("investigation").credits
        for ticket in tickets:
            if ticket.plan != "credits":
                continue
            if ticket.label == policy.free_category:
                expected[ticket.key] = question
            elif ticket.label == "investigation" and ticket.comments[:1] == [APPROVE]:
                expected[ticket.key] = investigation

        # When each delivery goes, as a fraction of the run: creations over the first 85 %,
        # each comment a little after the event before it, each repeat soon after its
        # original. The order of sends is the order of these times.
        timed: list[tuple[float, int, dp.Delivery, int | None]] = []  # time, id, delivery, after
        created_at = now - timedelta(seconds=1)
        ids = itertools.count()
        for n, ticket in enumerate(tickets):
            when = n / len(tickets) * 0.85
            first = next(ids)
            timed.append(
                (
                    when,
                    first,
                    dp.created(
                        ticket.desk,
                        ticket.id,
                        requester=ticket.requester,
                        email=ticket.email,
                        subject=ticket.subject,
                        text=ticket.text,
                        at=created_at,
                    ),
                    None,
                )
            )
            previous = first
            for c, words in enumerate(ticket.comments, start=1):
                when += rng.uniform(0.005, 0.05)
                own = next(ids)
                timed.append(
                    (
                        when,
                        own,
                        dp.comment(
                            ticket.desk,
                            ticket.id,
                            requester=ticket.requester,
                            email=ticket.email,
                            subject=ticket.subject,
                            text=words,
                            created_at=created_at,
                            at=created_at + timedelta(seconds=c),
                            n=c,
                        ),
                        previous,
                    )
                )
                previous = own
        originals = list(timed)
        repeated = rng.sample(range(len(originals)), round(len(originals) * duplicate_share))
        for position in repeated:
            when, own, delivery, _ = originals[position]
            timed.append((when + rng.uniform(0.001, 0.03), -1 - own, delivery, own))
        timed.sort(key=lambda item: item[0])
        index_of = {own: i for i, (_, own, _, _) in enumerate(timed)}
        sends = []
        for i, (_, own, delivery, after) in enumerate(timed):
            repeat_of = index_of[-1 - own] if own < 0 else None
            sends.append(
                Send(
                    index=i,
                    delivery=delivery,
                    after=index_of[after] if after is not None else None,
                    repeat_of=repeat_of,
                )
            )
        return cls(entries, tickets, sends, expected, secrets)


def _check_labels(policy: Any) -> None:
    from rules.detection import detect_category

    for label, subject, body in TEXTS:
        found = detect_category(subject, body, policy.detection).category
        if found != label:
            raise RuntimeError(f"{subject!r} is detected as {found!r}, not {label!r}")


# --------------------------------------------------------------------------------------------
# The connector's processes


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def to_toml(config: dict[str, Any], prefix: str = "") -> str:
    """A nested dict of tables and plain values as TOML."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in config.items():
        if isinstance(value, dict):
            tables.append((f"{prefix}{key}", value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for name, table in tables:
        out += f"\n[{name}]\n" + to_toml(table, prefix=f"{name}.")
    return out


class Cluster:
    """The connector's processes against one database and the fake desks.

    :param outbox: the ``[outbox]`` settings (lease and retry timing), if any.
    """

    def __init__(
        self,
        database_url: str,
        desks: fake_helpdesk.DeskControl,
        secrets: dict[str, str],
        *,
        folder: Path,
        web_threads: int = 8,
        desk_timeout: float = 10.0,
        max_attempts: int = 10,
        worker_idle: float = 0.5,
        outbox: dict[str, Any] | None = None,
    ) -> None:
        self.database_url = database_url
        self.folder = folder
        self.web_threads = web_threads
        self.worker_idle = worker_idle
        config: dict[str, Any] = {
            "database": {"url": database_url},
            "server": {"public_url": "https://care.bench.example"},
            "desks": dp.desk_sections(desks.url, timeout=desk_timeout, max_attempts=max_attempts),
        }
        if outbox:
            config["outbox"] = dict(outbox)
        self.config_path = folder / "config.toml"
        self.config_path.write_text(to_toml(config), encoding="utf-8")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CARE_")},
            **dp.environment(secrets),
            "CARE_CONFIG": str(self.config_path),
            "CARE_SECRET_KEY": "bench-approval-key",
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: dict[str, subprocess.Popen[Any]] = {}
        self.ports: dict[str, int] = {}
        self._logs: list[Any] = []

    # ---- commands

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``care-connector ARGS`` with the run's configuration."""
        return subprocess.run(
            [*_cli(), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def import_customers(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """``care-connector customers import FILE --json``; its counts."""
        path = self.folder / "customers.json"
        path.write_text(json.dumps({"customers": entries}), encoding="utf-8")
        done = self.cli("customers", "import", str(path), "--json")
        if done.returncode != 0:
            raise RuntimeError(f"customers import failed: {done.stderr.strip()[-1500:]}")
        counts: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return counts

    # ---- processes

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[Any]:
        log = open(self.folder / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115
        self._logs.append(log)
        process = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True
        )
        self.processes[name] = process
        return process

    def start_web(self, name: str, port: int | None = None) -> int:
        """A gunicorn (one gthread worker) serving ``create_app()``; its port, once it
        answers."""
        port = port or self.ports.get(name) or fake_helpdesk.free_port()
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "--worker-class",
            "gthread",
            "--workers",
            "1",
            "--threads",
            str(self.web_threads),
            "--keep-alive",
            "75",
            "--graceful-timeout",
            "5",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "connector.app:create_app()",
        ]
        process = self._spawn(name, argv)
        self.ports[name] = port
        _wait_serving(port, process, self.folder / f"{name}.log")
        return port

    def start_worker(self, name: str) -> subprocess.Popen[Any]:
        return self._spawn(name, [*_cli(), "worker", "--idle", str(self.worker_idle)])

    def start_scheduler(self, name: str) -> subprocess.Popen[Any]:
        return self._spawn(name, [*_cli(), "scheduler"])

    def start(self, *, web: int, workers: int, schedulers: int) -> list[int]:
        """The web processes, workers and schedulers; the web ports."""
        ports = [self.start_web(f"web-{i}") for i in range(web)]
        for i in range(workers):
            self.start_worker(f"worker-{i}")
        for i in range(schedulers):
            self.start_scheduler(f"scheduler-{i}")
        return ports

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every worker and scheduler started has recorded its first heartbeat
        (it is connected and has run a round), as an operator waits for a green /healthz."""
        wanted = {
            (kind, process.pid)
            for name, process in self.processes.items()
            for kind in (("worker", "outbox") if name.startswith("worker") else ("scheduler",))
            if not name.startswith("web")
        }
        database = Database.from_url(self.database_url)
        deadline = time.monotonic() + timeout
        try:
            while True:
                with database.transaction(read_only=True) as session:
                    rows = session.execute(select(Heartbeat.kind, Heartbeat.runner)).all()
                beating = {(kind, int(runner.rpartition(":")[2])) for kind, runner in rows}
                if wanted <= beating:
                    return
                gone = self.exited()
                if gone or time.monotonic() > deadline:
                    missing = sorted(wanted - beating)
                    raise RuntimeError(f"not ready: no heartbeat from {missing}; exited {gone}")
                time.sleep(0.1)
        finally:
            database.dispose()

    def kill(self, name: str) -> None:
        """SIGKILL process ``name`` (and its process group) and reap it."""
        process = self.processes[name]
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def stop(self, name: str) -> None:
        fake_helpdesk.stop(self.processes[name])

    def exited(self) -> list[str]:
        """Processes that have exited (each a name and its exit code)."""
        return [f"{n} ({p.returncode})" for n, p in self.processes.items() if p.poll() is not None]

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            fake_helpdesk.stop(process)
        for log in self._logs:
            log.close()
        self._logs.clear()

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace")[-chars:] if path.exists() else ""


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("care-connector")
    return [str(script)] if script.exists() else [sys.executable, "-m", "connector.cli"]


def _wait_serving(port: int, process: subprocess.Popen[Any], log: Path) -> None:
    """Until a gunicorn worker answers (any answer: ``/healthz`` also reports on the workers,
    which may not have started yet)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text()[-2000:]
            raise RuntimeError(f"gunicorn exited ({process.returncode}):\n{output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(16).startswith(b"HTTP/1.1 "):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn on port {port} did not answer within 60 s")


# --------------------------------------------------------------------------------------------
# Sending


@dataclass
class Sent:
    """What became of one send."""

    due: float = 0.0  # perf_counter
    first: float = 0.0  # wall clock (time.time) of the first attempt
    answered: float = 0.0  # wall clock of the final answer
    status: int = 0
    body: bytes = b""
    attempts: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    refused: int = 0  # connections refused or dropped


class Sender:
    """Sends a workload's deliveries open loop at ``rate`` per second over ``ports`` in turn
    (send *i* to ``ports[i % len(ports)]``), ``per_port`` keep-alive connections each.

    A send waits until the send it depends on was answered; a 503 or a refused or dropped
    connection is sent again after ``retry_wait`` seconds, until ``give_up`` seconds after
    the send was due. Any other answer is final (the checks look at it).
    """

    def __init__(
        self,
        workload: Workload,
        ports: Sequence[int],
        *,
        rate: float,
        per_port: int = 8,
        retry_wait: float = 0.25,
        give_up: float = 300.0,
    ) -> None:
        self.workload = workload
        self.ports = list(ports)
        self.rate = rate
        self.per_port = per_port
        self.retry_wait = retry_wait
        self.give_up = give_up
        self.results = [Sent() for _ in workload.sends]
        self._answered = [threading.Event() for _ in workload.sends]
        self._counters = [itertools.count(p, len(self.ports)) for p in range(len(self.ports))]
        self.errors: list[str] = []
        self.started = 0.0  # wall clock
        self.finished = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Send in the background (:meth:`join` waits)."""
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        assert self._thread is not None
        self._thread.join(timeout)

    def run(self) -> None:
        began = time.perf_counter()
        self.started = time.time()
        threads = [
            threading.Thread(target=self._loop, args=(p, began), daemon=True)
            for p in range(len(self.ports))
            for _ in range(self.per_port)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.finished = time.time()

    def _loop(self, p: int, began: float) -> None:
        port = self.ports[p]
        connection = Connection("127.0.0.1", port)
        host = f"127.0.0.1:{port}"
        sends = self.workload.sends
        try:
            while True:
                i = next(self._counters[p])
                if i >= len(sends):
                    return
                send = sends[i]
                result = self.results[i]
                result.due = began + i / self.rate
                if send.after is not None:
                    self._answered[send.after].wait()
                wait = result.due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                self._send(connection, send, result, host)
                self._answered[i].set()
        except Exception as err:  # noqa: BLE001 - reported, and the other threads go on
            self.errors.append(f"{err.__class__.__name__}: {err}")
            for event in self._answered:
                event.set()  # never leave a dependent send waiting for ever
        finally:
            connection.close()

    def _send(self, connection: Connection, send: Send, result: Sent, host: str) -> None:
        delivery = send.delivery
        secret = self.workload.secrets[delivery.desk]
        while True:
            now = datetime.now(UTC)
            if not result.attempts:
                result.first = now.timestamp()
            result.attempts += 1
            request = dp.raw_request(delivery, secret, now, host)
            try:
                status, body = connection.exchange(request)
            except (OSError, EOFError):
                connection.close()
                result.refused += 1
                status, body = 0, b""
            result.statuses[status] += 1
            late = time.perf_counter() - result.due > self.give_up
            if status in (0, 503) and not late:
                time.sleep(self.retry_wait)
                continue
            result.status, result.body, result.answered = status, body, time.time()
            return

    # ---- summary

    def statuses(self) -> Counter[int]:
        """Every answer, retries included, by status (0: refused or dropped)."""
        total: Counter[int] = Counter()
        for result in self.results:
            total.update(result.statuses)
        return total

    def intake_latency_ms(self) -> dict[str, float]:
        """From the first attempt to the final answer, per send."""
        values = [(r.answered - r.first) * 1000 for r in self.results if r.answered]
        return {"p50": percentile(values, 50), "p99": percentile(values, 99)}


# --------------------------------------------------------------------------------------------
# Waiting and checking


def _counts(session: Any, column: Any) -> dict[Any, int]:
    """Rows per value of ``column``."""
    query = select(column, func.count()).group_by(column)
    return {value: int(n) for value, n in session.execute(query).tuples()}


def wait_drained(
    database_url: str,
    expected_events: int,
    *,
    timeout: float,
    alive: Any = None,
    progress: Any = None,
) -> bool:
    """Wait until ``expected_events`` events exist, none is pending, and no outbox row is
    pending or being sent; ``False`` after ``timeout`` seconds."""
    database = Database.from_url(database_url)
    deadline = time.monotonic() + timeout
    last_report = 0.0
    try:
        while time.monotonic() < deadline:
            try:
                with database.transaction(read_only=True) as session:
                    events = _counts(session, Event.status)
                    outbox = _counts(session, OutboxAction.status)
            except DBAPIError:  # the database may be restarting
                time.sleep(0.5)
                continue
            total = sum(events.values())
            busy = events.get("pending", 0) + outbox.get("pending", 0) + outbox.get("sending", 0)
            if progress is not None and time.monotonic() - last_report > 10:
                progress(f"events {events}, outbox {outbox}")
                last_report = time.monotonic()
            if total >= expected_events and busy == 0:
                return True
            if alive is not None:
                alive()
            time.sleep(0.25)
        return False
    finally:
        database.dispose()


@dataclass
class Report:
    """The checks' findings: ``problems`` empty means everything held."""

    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def check(
    workload: Workload,
    sender: Sender,
    cluster: Cluster,
    desk_state: dict[str, Any],
    *,
    repeats_allowed: bool = False,
) -> Report:
    """Every check of the run, against the database and the fake desks' records.

    :param repeats_allowed: an idempotent write (priority, tags) sent again after an unclear
        failure (a timeout, a worker killed mid-round) is not counted as a duplicate when it
        changes nothing: per ticket, the desk must go through the same changes in the same
        order, and every note and reply must be applied exactly once, in order.
    """
    report = Report()
    _check_sends(workload, sender, report)
    database = Database.from_url(cluster.database_url)
    try:
        with database.transaction(read_only=True) as session:
            _check_events(workload, session, report)
            _check_ledger(workload, session, report)
            rows = session.execute(
                select(
                    OutboxAction.id,
                    OutboxAction.desk,
                    OutboxAction.ticket_id,
                    OutboxAction.event_id,
                    OutboxAction.kind,
                    OutboxAction.payload,
                    OutboxAction.marker,
                    OutboxAction.status,
                    OutboxAction.attempts,
                    OutboxAction.sent_at,
                    OutboxAction.last_error,
                ).order_by(OutboxAction.id)
            ).all()
            _check_writebacks(rows, desk_state, report, repeats_allowed=repeats_allowed)
            _latencies(session, rows, desk_state, report)
    finally:
        database.dispose()
    verify = cluster.cli("credits", "verify")
    if verify.returncode != 0:
        report.problems.append(f"credits verify: {verify.stdout.strip()} {verify.stderr.strip()}")
    else:
        report.facts.append(f"credits verify: {verify.stdout.strip()}")
    return report


def _check_sends(workload: Workload, sender: Sender, report: Report) -> None:
    finals = Counter(r.status for r in sender.results)
    bad = [
        (s.index, r.status, r.body[:150])
        for s, r in zip(workload.sends, sender.results, strict=True)
        if r.status != 200
    ]
    if sender.errors:
        report.problems.append(f"sender errors: {sender.errors[:3]}")
    if bad:
        report.problems.append(f"{len(bad)} sends not answered 200 in the end, e.g. {bad[:3]}")
    every = sender.statuses()
    if every.get(500):
        report.problems.append(f"{every[500]} answers were 500")
    report.figures["answers"] = dict(sorted(every.items()))
    report.facts.append(f"final answers {dict(finals)}; every answer {dict(sorted(every.items()))}")
    outcomes: Counter[str] = Counter()
    for result in sender.results:
        if result.status == 200:
            outcomes[json.loads(result.body).get("status", "?")] += 1
    report.figures["outcomes"] = dict(outcomes)


def _check_events(workload: Workload, session: Any, report: Report) -> None:
    """One event per distinct delivery, each done; one accepted delivery per event, and the
    repeats stored as duplicates."""
    statuses = _counts(session, Event.status)
    total = sum(statuses.values())
    distinct = workload.deliveries
    if total != distinct or set(statuses) - {"done"}:
        report.problems.append(f"{total} events for {distinct} deliveries, by status {statuses}")
    failed = session.execute(
        select(Event.id, Event.error).where(Event.status != "done").limit(3)
    ).all()
    if failed:
        report.problems.append(f"events not done, e.g. {[(i, (e or '')[:200]) for i, e in failed]}")
    per_key = session.execute(
        select(Event.desk, Event.delivery_key, func.count()).group_by(
            Event.desk, Event.delivery_key
        )
    ).all()
    doubled = [(d, k) for d, k, n in per_key if n != 1]
    if doubled:
        report.problems.append(f"{len(doubled)} delivery keys with several events: {doubled[:3]}")
    outcomes = _counts(session, InboundDelivery.outcome)
    accepted = outcomes.get("accepted", 0)
    if accepted != distinct:
        report.problems.append(f"{accepted} deliveries accepted for {distinct} distinct")
    if outcomes.get("duplicate", 0) < workload.repeats:
        report.problems.append(
            f"{outcomes.get('duplicate', 0)} deliveries stored as duplicates for "
            f"{workload.repeats} repeats sent"
        )
    report.facts.append(
        f"{total} events for {distinct} distinct deliveries, all done; inbox outcomes {outcomes}"
    )


def _check_ledger(workload: Workload, session: Any, report: Report) -> None:
    """The charges per ticket equal the model's; nothing else moved but the imports."""
    rows = session.execute(
        select(LedgerEntry.ticket, LedgerEntry.kind, func.sum(LedgerEntry.amount)).group_by(
            LedgerEntry.ticket, LedgerEntry.kind
        )
    ).all()
    charged: dict[str, int] = defaultdict(int)
    kinds: Counter[str] = Counter()
    for ticket, kind, amount in rows:
        kinds[str(kind)] += int(amount or 0)
        if ticket is not None:
            charged[str(ticket)] -= int(amount or 0)
    charged = {k: v for k, v in charged.items() if v}
    expected = workload.expected_charges
    if charged != expected:
        missing = {k: v for k, v in expected.items() if charged.get(k) != v}
        extra = {k: v for k, v in charged.items() if k not in expected}
        report.problems.append(
            f"charges differ from the model: {len(missing)} tickets differ "
            f"(e.g. {list(missing.items())[:3]} expected, charged "
            f"{[(k, charged.get(k)) for k in list(missing)[:3]]}); "
            f"{len(extra)} charged unexpectedly (e.g. {list(extra.items())[:3]})"
        )
    total = sum(expected.values())
    report.figures["charged"] = sum(charged.values())
    report.facts.append(
        f"ledger: {sum(charged.values())} credits charged on {len(charged)} tickets; the model "
        f"expects {total} on {len(expected)}; sums by kind {dict(kinds)}"
    )


def _expected_effects(rows: Sequence[Any]) -> dict[str, list[tuple[str, Any]]]:
    """Per ticket, what the desk must see, in order, from the outbox rows (by id): notes and
    replies by marker, priority values, and the tags after each write that changes them."""
    effects: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    tags: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        key = f"{row.desk}:{row.ticket_id}"
        if row.kind in ("note", "reply"):
            effects[key].append((row.kind, row.marker))
        elif row.kind == "priority":
            effects[key].append(("priority", str(row.payload["value"])))
        elif row.kind in ("tags", "remove_tags"):
            given = {str(t).strip() for t in row.payload["tags"] if str(t).strip()}
            after = tags[key] | given if row.kind == "tags" else tags[key] - given
            if after != tags[key]:
                tags[key] = after
                effects[key].append(("tags", tuple(sorted(after))))
        else:
            effects[key].append((row.kind, row.marker))
    return {key: _fold_tags(seq) for key, seq in effects.items()}


def _received_effects(writes: Iterable[dict[str, Any]]) -> dict[str, list[tuple[str, Any]]]:
    effects: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    tags: dict[str, tuple[str, ...]] = defaultdict(tuple)
    for write in sorted(writes, key=lambda w: w["seq"]):
        key = f"{write['desk']}:{write['ticket']}"
        if write["kind"] == "tags":
            after = tuple(write["value"])
            if after != tags[key]:
                tags[key] = after
                effects[key].append(("tags", after))
        else:
            effects[key].append((write["kind"], write["value"]))
    return {key: _fold_tags(seq) for key, seq in effects.items()}


def _fold_tags(seq: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Consecutive tag states fold into the last (one tag write per call on Zammad)."""
    out: list[tuple[str, Any]] = []
    for item in seq:
        if out and item[0] == "tags" and out[-1][0] == "tags":
            out[-1] = item
        else:
            out.append(item)
    return out


def _changes_only(seq: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """A priority write that sets the value the ticket already has changes nothing: left
    out. (Tag writes that change nothing are left out already.) What remains is the
    ticket's changes in order, and every note and reply."""
    out: list[tuple[str, Any]] = []
    priority = None
    for item in seq:
        if item[0] == "priority":
            if item[1] == priority:
                continue
            priority = item[1]
        out.append(item)
    return _fold_tags(out)


def _recovered_alike(want: list[tuple[str, Any]], got: list[tuple[str, Any]]) -> bool:
    """After an unclear failure a ticket's tag writes of one round are re-sent together, and
    an earlier one leaves out what a later one decides (``outbox._superseded_left_out``): a
    passing tag state may then never show, or show in part. Alike means: the same notes,
    replies and priority changes in the same order, and the tags never going back to an
    expected state older than one already reached (the final tags are checked apart)."""
    others = [item for item in want if item[0] != "tags"]
    if others != [item for item in got if item[0] != "tags"]:
        return False
    order = {item[1]: n for n, item in enumerate(i for i in want if i[0] == "tags")}
    reached = -1
    for item in got:
        if item[0] != "tags" or item[1] not in order:
            continue
        if order[item[1]] < reached:
            return False  # back to an older state of the tags
        reached = order[item[1]]
    return True


def _check_writebacks(
    rows: Sequence[Any], desk_state: dict[str, Any], report: Report, *, repeats_allowed: bool
) -> None:
    statuses = Counter(row.status for row in rows)
    if set(statuses) - {"sent"}:
        left = [(r.id, r.kind, r.status, r.last_error) for r in rows if r.status != "sent"][:3]
        report.problems.append(f"outbox rows not sent: {dict(statuses)}, e.g. {left}")
    expected = _expected_effects(rows)
    received = _received_effects(desk_state["writes"])
    markers = Counter(
        w["value"] for w in desk_state["writes"] if w["kind"] in ("note", "reply", "notify")
    )
    doubled = {m: n for m, n in markers.items() if n > 1}
    if doubled:
        report.problems.append(f"{len(doubled)} markers applied more than once: {doubled}")
    unmarked = markers.get(None, 0)
    if unmarked:
        report.problems.append(f"{unmarked} notes or replies without a marker")
    differ = []
    for key in sorted(set(expected) | set(received)):
        want, got = expected.get(key, []), received.get(key, [])
        if repeats_allowed:
            want, got = _changes_only(want), _changes_only(got)
            if _recovered_alike(want, got):
                continue
        if want != got:
            differ.append((key, want, got))
    if differ:
        key, want, got = differ[0]
        report.problems.append(
            f"write-backs differ from the outbox on {len(differ)} tickets; e.g. {key}: "
            f"expected {want}, the desk saw {got}"
        )
    finals = desk_state["tickets"]
    wrong_tags = [
        key
        for key, seq in expected.items()
        if [e for e in seq if e[0] == "tags"]
        and tuple(finals.get(key, {}).get("tags", ())) != [e for e in seq if e[0] == "tags"][-1][1]
    ]
    if wrong_tags:
        report.problems.append(
            f"{len(wrong_tags)} tickets end with other tags, e.g. {wrong_tags[:3]}"
        )
    kinds = Counter(row.kind for row in rows)
    report.figures["writebacks"] = len(rows)
    report.figures["writeback_kinds"] = dict(kinds)
    report.figures["desk_calls"] = desk_state["calls"]
    report.facts.append(
        f"{len(rows)} outbox rows {dict(statuses)} ({dict(kinds)}); the desks applied "
        f"{len(desk_state['writes'])} writes; per ticket the same effects in the same order on "
        f"{len(expected) - len(differ)} of {len(expected)} tickets; "
        f"{sum(markers.values())} notes and replies, each marker once: {not doubled}"
    )


def _latencies(
    session: Any, rows: Sequence[Any], desk_state: dict[str, Any], report: Report
) -> None:
    """Per event: from its delivery's arrival (``received_at``) to the last write-back the
    desk acknowledged (``sent_at``), or to its processing when it writes nothing back."""
    last_sent: dict[int, datetime] = {}
    for row in rows:
        if row.event_id is not None and row.sent_at is not None:
            if row.event_id not in last_sent or row.sent_at > last_sent[row.event_id]:
                last_sent[row.event_id] = row.sent_at
    events = session.execute(
        select(Event.id, InboundDelivery.received_at, Event.processed_at).join(
            InboundDelivery, InboundDelivery.id == Event.delivery_id
        )
    ).all()
    all_ms: list[float] = []
    with_writes: list[float] = []
    decided: list[float] = []  # receipt -> the event decided (its write-backs queued)
    written: list[float] = []  # the event decided -> its last write-back acknowledged
    firsts: list[datetime] = []
    lasts: list[datetime] = []
    for event_id, received, processed in events:
        firsts.append(received)
        if processed is not None:
            decided.append((processed - received).total_seconds() * 1000)
        end = last_sent.get(event_id)
        if end is not None and processed is not None:
            written.append((end - processed).total_seconds() * 1000)
        if end is not None:
            with_writes.append((end - received).total_seconds() * 1000)
        else:
            end = processed
        if end is None:
            continue
        lasts.append(end)
        all_ms.append((end - received).total_seconds() * 1000)
    report.figures["latency_ms"] = {
        "p50": percentile(list(all_ms), 50),
        "p99": percentile(list(all_ms), 99),
        "max": max(all_ms) if all_ms else float("nan"),
    }
    report.figures["latency_with_writebacks_ms"] = {
        "p50": percentile(list(with_writes), 50),
        "p99": percentile(list(with_writes), 99),
    }
    report.figures["latency_parts_ms"] = {
        "decided_p50": percentile(decided, 50),
        "decided_p99": percentile(decided, 99),
        "written_p50": percentile(written, 50),
        "written_p99": percentile(written, 99),
    }
    if firsts and lasts:
        report.figures["first_received"] = min(firsts).timestamp()
        report.figures["last_done"] = max(lasts).timestamp()
    writes = desk_state["writes"]
    if writes:
        report.figures["first_write"] = min(w["at"] for w in writes)
        report.figures["last_write"] = max(w["at"] for w in writes)
