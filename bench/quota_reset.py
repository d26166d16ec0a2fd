"""The monthly quota reset over many customers, on PostgreSQL and on SQLite.

::

    .venv/bin/python bench/quota_reset.py [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
                                          [--customers 1000000] [--sqlite-customers 100000]
                                          [--skip-postgresql] [--skip-sqlite]

Each backend gets a scratch database (PostgreSQL: created on the URL's server and dropped
afterwards; SQLite: a file in a temporary folder), migrated to head and seeded in SQL
(``generate_series`` on PostgreSQL, a recursive CTE on SQLite; no Python loop per row) with
customers in ten shapes, one per last digit of their number:

====  ======================================================  ==============================
 0-3  VIP subscription for 2026                                VIP, 7
 4-6  Standard subscription for 2026 (every other 4: also VIP)  Standard 4 (VIP 7 with both)
 7    VIP subscription that ended in 2025                      none
 8    Multi-Vendor Ultimate license bought 2026-03-15          first-year VIP, 7
 9    Multi-Vendor license bought 2026-11-20 and a CS-Cart one  free period only: none
====  ======================================================  ==============================

Then the ``quota-reset`` job runs for ``2026-12`` through :func:`connector.jobs.run_period`
(one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` and the run's record, one transaction),
and the figure is checked against the shapes. A second timing re-runs the statement alone
over the month already opened: every row conflicts, nothing is written (what a duplicate
run would cost if the run record did not stop it first).
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import URL, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.config import default_settings  # noqa: E402
from connector.db import Database, normalize_url  # noqa: E402
from connector.extension import ConnectorState  # noqa: E402
from connector.jobs import jobs_for, quota_reset_statement, run_period  # noqa: E402
from connector.models import QuotaAllowance  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PERIOD = "2026-12"

# The seed, as one set of statements per backend: {n} is the number of customers and {seq}
# a row source of g = 1..n.
_SEED = [
    """INSERT INTO customers (id, email, name, locale, balance, upgrades_lifetime, created_at,
                              updated_at)
       SELECT g, 'c' || g || '@bench.example', 'Customer ' || g, 'en', 0, {false}, {now}, {now}
       FROM {seq}""",
    """INSERT INTO subscriptions (customer_id, plan, starts_on, ends_on)
       SELECT g, CASE WHEN g % 10 < 4 THEN 'vip' ELSE 'standard' END, '2026-01-01', '2026-12-31'
       FROM {seq} WHERE g % 10 < 7""",
    """INSERT INTO subscriptions (customer_id, plan, starts_on, ends_on)
       SELECT g, 'vip', '2026-06-01', '2027-05-31' FROM {seq} WHERE g % 20 = 4""",
    """INSERT INTO subscriptions (customer_id, plan, starts_on, ends_on)
       SELECT g, 'vip', '2025-01-01', '2025-12-31' FROM {seq} WHERE g % 10 = 7""",
    """INSERT INTO licenses (customer_id, ref, product, kind, purchased_on)
       SELECT g, 'MVU-' || g, 'multi-vendor-ultimate', 'first', '2026-03-15'
       FROM {seq} WHERE g % 10 = 8""",
    """INSERT INTO licenses (customer_id, ref, product, kind, purchased_on)
       SELECT g, 'MV-' || g, 'multi-vendor', 'first', '2026-11-20' FROM {seq} WHERE g % 10 = 9""",
    """INSERT INTO licenses (customer_id, ref, product, kind, purchased_on)
       SELECT g, 'CS-' || g, 'cs-cart', 'first', '2024-05-01' FROM {seq} WHERE g % 10 = 9""",
]


@dataclass(frozen=True)
class Figure:
    backend: str
    customers: int
    seed_s: float
    reset_s: float
    opened: int
    rerun_s: float


def expected_opened(customers: int) -> int:
    """Customers whose number ends in 0-6 or 8 (see the module's table)."""
    full, rest = divmod(customers, 10)
    return full * 8 + sum(
        1 for digit in range(1, rest + 1) if digit % 10 in (0, 1, 2, 3, 4, 5, 6, 8)
    )


@contextmanager
def scratch_postgresql(server: URL) -> Iterator[URL]:
    name = f"care_bench_reset_{secrets.token_hex(4)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(database: Database, customers: int) -> float:
    started = time.perf_counter()
    if database.dialect == "postgresql":
        words = {"seq": "generate_series(1, {n}) AS s(g)", "false": "false", "now": "now()"}
    else:
        words = {
            "seq": "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n})"
            " SELECT g FROM s)",
            "false": "0",
            "now": "'2026-11-01 00:00:00.000000'",
        }
    with database.engine.begin() as connection:
        for statement in _SEED:
            sql = statement.format(**words).format(n=customers)
            connection.execute(text(sql))
    with database.engine.connect() as connection:
        if database.dialect == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def measure(database: Database, backend: str, customers: int) -> Figure:
    database.upgrade()
    seed_s = seed(database, customers)
    settings = replace(default_settings(), database_url=database.url)
    now = datetime(2026, 12, 1, 0, 0, 5, tzinfo=UTC)
    st = ConnectorState(settings=settings, database=database, clock=lambda: now)
    job = jobs_for(st)["quota-reset"]
    period = job.schedule.parse(PERIOD)
    started = time.perf_counter()
    outcome = run_period(st, job, period, runner="bench")
    reset_s = time.perf_counter() - started
    opened = outcome.result["opened"]
    with database.transaction(read_only=True) as session:
        rows = session.scalar(select(func.count()).select_from(QuotaAllowance))
    if opened != expected_opened(customers) or rows != opened:
        raise SystemExit(
            f"{backend}: opened {opened} ({rows} rows), expected {expected_opened(customers)}"
        )
    statement = quota_reset_statement(
        settings.policy, PERIOD, date(2026, 12, 1), now, database.dialect
    )
    started = time.perf_counter()
    with database.transaction() as session:
        again = session.execute(statement).rowcount  # type: ignore[attr-defined]
    rerun_s = time.perf_counter() - started
    if again != 0:
        raise SystemExit(f"{backend}: the re-run wrote {again} rows")
    return Figure(backend, customers, seed_s, reset_s, opened, rerun_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=os.environ.get("CARE_BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--sqlite-customers", type=int, default=100_000)
    parser.add_argument("--skip-postgresql", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    if not args.skip_postgresql:
        with scratch_postgresql(make_url(normalize_url(args.url))) as url:
            database = Database.from_url(url.render_as_string(False))
            try:
                figures.append(measure(database, "PostgreSQL", args.customers))
            finally:
                database.dispose()
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            database = Database.from_url(f"sqlite:///{Path(folder) / 'bench.sqlite3'}")
            try:
                figures.append(measure(database, "SQLite", args.sqlite_customers))
            finally:
                database.dispose()
    print(
        f"quota reset for {PERIOD}; {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} cores"
    )
    print(
        f"{'backend':<11} {'customers':>10} {'seed s':>7} {'reset s':>8} {'opened':>9} "
        f"{'rows/s':>9} {'re-run s':>9}"
    )
    for f in figures:
        print(
            f"{f.backend:<11} {f.customers:>10,} {f.seed_s:>7.1f} {f.reset_s:>8.2f} "
            f"{f.opened:>9,} {f.opened / f.reset_s:>9,.0f} {f.rerun_s:>9.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
