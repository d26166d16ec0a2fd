"""Benchmark: import 100,000 customers, then the same file again (nothing changes).

    .venv/bin/python bench/import_customers.py [--customers N] [--postgresql SERVER_URL]

Generates an import file of N customers (licenses of every product and kind, subscriptions,
upgrade dates including lifetime, credit purchases, identities in two desks), imports it into
a fresh database, imports it again, checks the ledger, and prints the time of each phase, run
the way ``care-connector customers import`` runs them. The database is a SQLite file in a
temporary directory, or with ``--postgresql`` a throw-away database created on that server
(for example ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) and dropped at the end.
The goal: a first import of 100,000 customers in under 30 seconds on SQLite. Exit code 1 when
the counts or the ledger are not as expected.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from connector import ledger
from connector.config import load_settings
from connector.customers import (
    import_customers,
    paused_gc,
    read_import_file,
    validate_entries,
)
from connector.db import Database, normalize_url

PRODUCTS = [
    ("cs-cart", "first"),
    ("cs-cart", "additional"),
    ("cs-cart", "additional_storefront"),
    ("cs-cart-ultimate", "first"),
    ("multi-vendor", "first"),
    ("multi-vendor-plus", "additional"),
    ("multi-vendor-ultimate", "first"),
]


def generate(count: int, seed: int = 7) -> dict[str, Any]:
    """An import document of ``count`` customers, the same for the same seed."""
    rng = random.Random(seed)
    start = date(2024, 1, 1)
    customers = []
    for n in range(count):
        day = start + timedelta(days=rng.randrange(900))
        entry: dict[str, Any] = {
            "email": f"Owner{n}@Shop{n % 997}.example",
            "name": f"Shop Owner {n}",
            "locale": rng.choice(["en", "ru"]),
            "timezone": rng.choice(["Europe/Berlin", "Asia/Dubai", "America/New_York"]),
            "licenses": [
                {
                    "ref": f"L-{n}-{i}",
                    "product": product,
                    "kind": kind,
                    "purchased_on": (day + timedelta(days=30 * i)).isoformat(),
                }
                for i, (product, kind) in enumerate(rng.sample(PRODUCTS, rng.randint(1, 2)))
            ],
            "identities": {"zendesk": [str(9_000_000 + n)], "helpscout": [str(n)]},
        }
        if n % 3 == 0:
            entry["subscriptions"] = [
                {
                    "plan": rng.choice(["vip", "standard"]),
                    "starts_on": day.isoformat(),
                    "ends_on": (day + timedelta(days=364)).isoformat(),
                }
            ]
        if n % 2 == 0:
            entry["credit_purchases"] = [
                {
                    "ref": f"order-{n}",
                    "credits": rng.choice([50, 100, 200]),
                    "purchased_on": "2025-06-01",
                }
            ]
        until = (day + timedelta(days=365)).isoformat()
        entry["upgrades_until"] = "lifetime" if n % 10 == 0 else until
        customers.append(entry)
    return {"customers": customers}


def run_import(database: Database, path: Path) -> tuple[dict[str, int], dict[str, float]]:
    """One import, step by step as the command runs it: the counts and each phase's time."""
    settings = load_settings({})
    with paused_gc():
        t0 = time.perf_counter()
        entries = read_import_file(path)
        t1 = time.perf_counter()
        records = validate_entries(entries, policy=settings.policy, desks=settings.desks.keys())
        t2 = time.perf_counter()
        with database.transaction() as session:
            counts = import_customers(
                session, records, policy=settings.policy, at=datetime.now(UTC), actor="bench"
            )
        t3 = time.perf_counter()
    times = {"read": t1 - t0, "validate": t2 - t1, "write": t3 - t2, "total": t3 - t0}
    return counts.as_dict(), times


@contextmanager
def fresh_database(server_url: str | None, directory: Path) -> Iterator[Database]:
    """A migrated empty database: a SQLite file, or a throw-away PostgreSQL database."""
    if server_url is None:
        database = Database.from_url(f"sqlite:///{directory / 'bench.sqlite3'}")
        database.upgrade()
        yield database
        database.dispose()
        return
    server = make_url(normalize_url(server_url))
    name = f"care_bench_{secrets.token_hex(4)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database = Database.from_url(server.set(database=name).render_as_string(False))
    try:
        database.upgrade()
        yield database
    finally:
        database.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description="Time an import of N customers.")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--postgresql", metavar="SERVER_URL", help="run on PostgreSQL")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "customers.json"
        started = time.perf_counter()
        path.write_text(json.dumps(generate(args.customers)), encoding="utf-8")
        size = path.stat().st_size / 1e6
        took = time.perf_counter() - started
        print(f"generated {args.customers} customers ({size:.1f} MB) in {took:.1f} s")

        with fresh_database(args.postgresql, Path(tmp)) as database:
            print(f"database: {database.dialect}")
            ok = True
            for label in ("first import", "re-import"):
                cpu = time.process_time()
                counts, times = run_import(database, path)
                cpu = time.process_time() - cpu
                phases = ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
                print(f"{label}: {phases} (CPU {cpu:.2f} s)")
                print(f"  {json.dumps(counts)}")
                if label == "first import":
                    ok &= counts["customers_created"] == args.customers
                else:
                    ok &= counts["customers_unchanged"] == args.customers
                    ok &= counts["credits_granted"] == 0
            with database.transaction(read_only=True) as session:
                started = time.perf_counter()
                discrepancies = ledger.verify(session)
                took = time.perf_counter() - started
            print(f"ledger verify: {len(discrepancies)} discrepancies ({took:.2f} s)")
            ok &= not discrepancies
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
