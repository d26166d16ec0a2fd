"""Ledger throughput on PostgreSQL, beside pgbench's own simple-update on the same server.

::

    .venv/bin/python bench/ledger.py [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
                                     [--duration 10] [--clients 1,8,32] [--customers 1000]

For each client count, N workers (threads spread over one process per core, each with its
own connection) charge 1 credit at a time
through :func:`connector.ledger.charge` for ``--duration`` seconds, each charge its own
transaction run through ``Database.run_in_transaction``: once spread over ``--customers``
customers, once all on one customer (every charge waits for the customer's row lock).
``pgbench -b simple-update`` runs with the same client count and duration before and after
them; the table shows the mean of the two, so a change in the machine's load during the run
weighs on both sides alike. Both run against scratch databases created on the URL's server
and dropped afterwards. The table shows charges per second, pgbench's transactions per
second and their ratio.

A ledger charge is the same shape of work as a pgbench simple-update transaction: one row
read, one row updated, one row inserted, one commit.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector import ledger  # noqa: E402
from connector.db import Database, normalize_url  # noqa: E402
from connector.models import Customer  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PGBENCH_CANDIDATES = ("pgbench", "/usr/lib/postgresql/15/bin/pgbench")
OPENING_BALANCE = 1_000_000_000


@dataclass(frozen=True)
class Row:
    clients: int
    shape: str
    ours: float
    pgbench: float

    @property
    def ratio(self) -> float:
        return self.ours / self.pgbench if self.pgbench else float("nan")


@contextmanager
def scratch_database(server: URL, prefix: str) -> Iterator[URL]:
    """Create an empty database on ``server``; drop it on exit."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(database: Database, customers: int) -> list[int]:
    """``customers`` customers, each granted a balance no benchmark can exhaust."""
    now = datetime.now(UTC)
    with database.transaction() as session:
        rows = [Customer(email=f"bench{i}@shop.example") for i in range(customers)]
        session.add_all(rows)
        session.flush()
        for row in rows:
            ledger.grant(
                session,
                customer_id=row.id,
                credits=OPENING_BALANCE,
                key=f"bench:opening:{row.id}",
                actor="bench",
                source=ledger.Source.ADMIN,
                at=now,
            )
        return [row.id for row in rows]


def charge_rate(url: URL, customer_ids: list[int], clients: int, duration: float) -> float:
    """Charges per second with ``clients`` concurrent workers, each picking a customer.

    Like a deployment (one worker process per core, threads inside) and like pgbench's own
    ``-j``, the clients are spread over one process per core, each running its share as
    threads with their own connections.
    """
    processes = max(1, min(clients, os.cpu_count() or 1))
    shares = [
        clients // processes + (1 if i < clients % processes else 0) for i in range(processes)
    ]
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(processes + 1)
    results = context.Queue()
    run = secrets.token_hex(4)
    children = [
        context.Process(
            target=_charge_process,
            args=(
                url.render_as_string(False),
                customer_ids,
                share,
                duration,
                ready,
                results,
                f"{run}:{i}",
            ),
        )
        for i, share in enumerate(shares)
    ]
    for child in children:
        child.start()
    ready.wait()
    outcomes = [results.get() for _ in children]
    for child in children:
        child.join()
    failures = [o for o in outcomes if isinstance(o, str)]
    if failures:
        raise RuntimeError(failures[0])
    database = Database.from_url(url.render_as_string(False))
    with database.transaction() as session:
        problems = ledger.verify(session)
    database.dispose()
    if problems:
        raise RuntimeError(f"ledger inconsistent after the run: {problems[:3]}")
    return sum(count for count, _ in outcomes) / max(elapsed for _, elapsed in outcomes)


def _charge_process(
    url: str,
    customer_ids: list[int],
    clients: int,
    duration: float,
    ready: Any,
    results: Any,
    run: str,
) -> None:
    """One worker process: ``clients`` threads charging for ``duration`` seconds."""
    try:
        # Database.from_url's engine options, with a pool as wide as the clients.
        database = Database(create_engine(url, pool_size=clients, max_overflow=0))
        # Open every connection before the clock starts, as pgbench does.
        held = [database.engine.connect() for _ in range(clients)]
        for connection in held:
            connection.close()
        counts = [0] * clients
        errors: list[BaseException] = []
        start = threading.Barrier(clients + 1)
        deadline = 0.0

        def worker(index: int) -> None:
            rng = random.Random(f"{run}:{index}")
            n = 0
            try:
                start.wait()
                while time.perf_counter() < deadline:
                    customer_id = rng.choice(customer_ids)
                    key = f"bench:{run}:{index}:{n}"

                    def charge(
                        session: Session, customer_id: int = customer_id, key: str = key
                    ) -> None:
                        ledger.charge(
                            session,
                            customer_id=customer_id,
                            credits=1,
                            key=key,
                            actor="bench",
                            source=ledger.Source.JOB,
                            at=datetime.now(UTC),
                        )

                    database.run_in_transaction(charge)
                    n += 1
            except BaseException as err:
                errors.append(err)
            counts[index] = n

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        ready.wait()
        began = time.perf_counter()
        deadline = began + duration
        start.wait()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        database.dispose()
        if errors:
            results.put(f"{errors[0].__class__.__name__}: {errors[0]}")
        else:
            results.put((sum(counts), elapsed))
    except BaseException as err:  # report, never hang the parent
        results.put(f"{err.__class__.__name__}: {err}")


def pgbench_binary() -> str:
    for candidate in PGBENCH_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise SystemExit("pgbench not found (install postgresql-client or put it on PATH)")


def pgbench_args(url: URL) -> list[str]:
    return [
        "-h",
        url.host or "127.0.0.1",
        "-p",
        str(url.port or 5432),
        "-U",
        url.username or "postgres",
    ]


def pgbench_rate(binary: str, url: URL, clients: int, duration: float) -> float:
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = url.password
    command = [
        binary,
        *pgbench_args(url),
        "-b",
        "simple-update",
        "-c",
        str(clients),
        "-j",
        str(min(clients, os.cpu_count() or 1)),
        "-T",
        str(int(duration)),
        "-n",  # No vacuum before the run: the tables were just initialised.
        url.database or "postgres",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"pgbench failed: {done.stderr.strip()}")
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
    if match is None:
        raise SystemExit(f"cannot read pgbench's tps from:\n{done.stdout}")
    return float(match.group(1))


def pgbench_init(binary: str, url: URL) -> None:
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = url.password
    command = [binary, *pgbench_args(url), "-i", "-q", url.database or "postgres"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"pgbench -i failed: {done.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("CARE_TEST_DATABASE_URL", DEFAULT_URL),
        help="a PostgreSQL server URL; scratch databases are created there",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--customers", type=int, default=1000)
    args = parser.parse_args(argv)
    clients = [int(n) for n in args.clients.split(",")]
    server = make_url(normalize_url(args.url))
    if server.get_backend_name() != "postgresql":
        raise SystemExit("the benchmark needs a PostgreSQL URL")
    binary = pgbench_binary()

    rows: list[Row] = []
    with (
        scratch_database(server, "care_bench") as ours_url,
        scratch_database(server, "care_pgbench") as pgbench_url,
    ):
        setup = Database.from_url(ours_url.render_as_string(False))
        setup.upgrade()
        spread = seed(setup, args.customers)
        setup.dispose()
        pgbench_init(binary, pgbench_url)
        for n in clients:
            # pgbench before and after our runs: the mean evens out drift in the machine's load.
            before = pgbench_rate(binary, pgbench_url, n, args.duration)
            ours = {
                shape: charge_rate(ours_url, ids, n, args.duration)
                for shape, ids in (
                    (f"{args.customers} customers", spread),
                    ("1 customer", spread[:1]),
                )
            }
            after = pgbench_rate(binary, pgbench_url, n, args.duration)
            theirs = (before + after) / 2
            for shape, rate in ours.items():
                rows.append(Row(n, shape, rate, theirs))
                print(
                    f"  clients={n:<3} {shape:<15} ours {rate:8.0f}/s  "
                    f"pgbench {before:8.0f}/s then {after:8.0f}/s",
                    file=sys.stderr,
                    flush=True,
                )

    print(
        f"ledger charges vs pgbench -b simple-update, {args.duration:g} s each, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'clients':>7}  {'customers':<15} {'ours/s':>9} {'pgbench/s':>10} {'ratio':>6}")
    for row in rows:
        print(
            f"{row.clients:>7}  {row.shape:<15} {row.ours:>9.0f} {row.pgbench:>10.0f} "
            f"{row.ratio:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
