"""What one event costs the processing worker: CPU milliseconds and SQL statements per event.

::

    .venv/bin/python bench/worker_cost.py [--deliveries 3000] [--customers 1000]
        [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--profile 25]

The scale-out workload (bench/scaleout_harness.py) is received by a gunicorn web process
with no worker running; then, in this process, the processing worker (``worker.run_once``,
the outbox left out) decides every event while the CPU time of this process
(``time.process_time``) and the statements sent to the database are counted. The fake desks
answer the requester lookups and tag reads, as in the scale-out run. ``--profile N`` prints
the N functions with the most cumulative time under cProfile (a second pass, on a fresh
database, since profiling slows everything down).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import fake_helpdesk  # noqa: E402
import scaleout_harness as harness  # noqa: E402
from sqlalchemy import event as sa_event  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _received(
    args: argparse.Namespace, workload: harness.Workload, desks: object
) -> harness.Cluster:
    """A fresh database holding the workload's deliveries as pending events; the (stopped)
    cluster that received them, whose configuration and environment the worker then uses."""
    url = harness.recreate_database(args.url, args.database)
    folder = Path(tempfile.mkdtemp(prefix="care-worker-cost-"))
    cluster = harness.Cluster(url, desks, workload.secrets, folder=folder)  # type: ignore[arg-type]
    try:
        cluster.import_customers(workload.customers)
        ports = cluster.start(web=1, workers=0, schedulers=0)
        sender = harness.Sender(workload, ports, rate=1000.0)
        sender.start()
        sender.join()
    finally:
        cluster.stop_all()
    return cluster


def _decide_all(config: Path, profile: cProfile.Profile | None) -> dict[str, float]:
    from connector.app import create_app
    from connector.extension import state
    from connector.worker import run_once

    app = create_app(str(config))
    with app.app_context():
        st = state()
        statements = 0

        def count(*_: object) -> None:
            nonlocal statements
            statements += 1

        sa_event.listen(st.database.engine, "before_cursor_execute", count)
        events = 0
        cpu = time.process_time()
        wall = time.perf_counter()
        if profile is not None:
            profile.enable()
        while True:
            done = run_once(st, limit=100)
            if not done:
                break
            events += sum(1 for d in done if d.status in ("done", "ignored"))
        if profile is not None:
            profile.disable()
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        st.database.dispose()
    return {"events": events, "cpu": cpu, "wall": wall, "statements": float(statements)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--url", default=DEFAULT_URL, help="a PostgreSQL server URL")
    parser.add_argument("--database", default="care_worker_cost", help="dropped and made anew")
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
    args = parser.parse_args(argv)
    if args.database in ("test", "postgres", "template0", "template1"):
        parser.error(f"--database {args.database!r} is not a scratch database")
    workload = harness.Workload.build(
        deliveries=args.deliveries, customers=args.customers, duplicate_share=0.0, seed=1
    )
    passes = [False, True] if args.profile else [False]
    with fake_helpdesk.running_desks() as desks:
        for profiled in passes:
            cluster = _received(args, workload, desks)
            os.environ.update(cluster.env)  # the desks' secrets, as the worker has them
            profile = cProfile.Profile() if profiled else None
            figures = _decide_all(cluster.config_path, profile)
            if profile is None:
                n = figures["events"]
                print(
                    f"{n} events decided in {figures['wall']:.1f} s "
                    f"({n / figures['wall']:.0f} events/s, one worker, one thread): "
                    f"{1000 * figures['cpu'] / n:.2f} ms of CPU and "
                    f"{figures['statements'] / n:.1f} SQL statements per event"
                )
            else:
                out = io.StringIO()
                pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.profile)
                print(out.getvalue())
            harness.drop_database(args.url, args.database)
            shutil.rmtree(cluster.folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
