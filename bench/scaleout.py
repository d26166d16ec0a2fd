"""Scale-out on PostgreSQL: the connector as in production, fed signed deliveries of four desks.

::

    .venv/bin/python bench/scaleout.py [--deliveries 20000] [--customers 2000]
        [--error-share 0.02] [--seconds 120] [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
        [--desk-down 60]
    .venv/bin/python bench/scaleout.py --deliveries 400 --customers 100 --seconds 5   # smoke

On the PostgreSQL server of ``--url``, database ``--database`` (``care_scaleout``) is dropped,
created and migrated. Then, all on this machine:

* a fake help desk server (bench/fake_helpdesk.py, ``FakeDesks``): Zendesk, Freshdesk,
  Zammad and Help Scout on loopback, keeping every write, answering ``--error-share`` of all
  calls 429 or 500 (not applied);
* the connector: two gunicorn web processes on two ports (``--web``), two ``care-connector
  worker`` processes (``--workers``) and two ``care-connector scheduler`` processes
  (``--schedulers``), one config file; customers imported with ``care-connector customers
  import`` (``--customers``, the four plans in turn);
* this process sends ``--deliveries`` distinct signed deliveries (ticket creations and the
  customers' comments, the four desks in turn) and a repeat of a tenth of them, open loop
  over ``--seconds`` seconds, alternating between the two ports (bench/scaleout_harness.py,
  ``Sender``).

When every event is processed and every write-back sent, the checks run
(``scaleout_harness.check``): every delivery processed exactly once, every write-back applied
exactly once by the fake desk (notes and replies by marker) and in order per ticket, the
ledger balanced (``care-connector credits verify``) and equal to the charges a model computes
from the customers and texts alone (``Workload.build``), no outbox row left unsent. It prints
the throughput (deliveries accepted per second while sending; distinct deliveries per second
end to end, from the first delivery received to the last write-back acknowledged;
write-backs per second) and the latency per event from its delivery's arrival to its last
write-back acknowledged (p50, p99). Exit code 1 when a check fails.

``--preload`` measures the workers alone: every delivery is sent with no worker running, then
the workers start and the time to process everything is taken (the end-to-end figures then
include the wait).

``--desk-down N`` takes the fake desk down (port closed, connections dropped) for ``N``
seconds, starting a third into the sending: the minute-long variant of the reliability test.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import fake_helpdesk  # noqa: E402
import scaleout_harness as harness  # noqa: E402
from cpu_meter import CpuMeter  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TARGET_RATE = 150.0
TARGET_P99_MS = 2000.0


def _progress(message: str) -> None:
    print(f"  [{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _loadavg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def _machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpu = model or platform.processor()
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--deliveries", type=int, default=20_000, help="distinct deliveries")
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--duplicate-share", type=float, default=0.1)
    parser.add_argument(
        "--error-share", type=float, default=0.02, help="desk calls answered 429 or 500"
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="sending window (default: at 160/s)"
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="a PostgreSQL server URL")
    parser.add_argument("--database", default="care_scaleout", help="dropped and made anew")
    parser.add_argument("--web", type=int, default=2, help="gunicorn web processes")
    parser.add_argument("--web-threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--schedulers", type=int, default=2)
    parser.add_argument("--worker-idle", type=float, default=0.5)
    parser.add_argument("--connections", type=int, default=8, help="per web process")
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--desk-down", type=float, default=0.0, help="seconds the desk is down")
    parser.add_argument(
        "--preload", action="store_true", help="send everything first, then start the workers"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the database and logs")
    args = parser.parse_args(argv)
    if args.deliveries < 1 or args.customers < 1 or not 0 <= args.error_share < 1:
        parser.error("--deliveries and --customers must be positive, --error-share in [0, 1)")
    if args.database in ("test", "postgres", "template0", "template1"):
        parser.error(f"--database {args.database!r} is not a scratch database")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = datetime.now(UTC)
    load_before = _loadavg()
    _progress(f"load average before: {load_before}")
    workload = harness.Workload.build(
        deliveries=args.deliveries,
        customers=args.customers,
        duplicate_share=args.duplicate_share,
        seed=args.seed,
    )
    sends = len(workload.sends)
    seconds = args.seconds or workload.deliveries / 160.0
    rate = sends / seconds
    _progress(
        f"{workload.deliveries} deliveries + {workload.repeats} repeats on {len(workload.tickets)}"
        f" tickets; {sends} sends at {rate:.0f}/s over {seconds:.0f} s"
    )
    url = harness.recreate_database(args.url, args.database)
    folder = Path(tempfile.mkdtemp(prefix="care-scaleout-"))
    cluster: harness.Cluster | None = None
    report: harness.Report | None = None
    timings: dict[str, Any] = {}
    try:
        with fake_helpdesk.running_desks() as desks:
            desks.faults(error_share=args.error_share, seed=args.seed)
            cluster = harness.Cluster(
                url,
                desks,
                workload.secrets,
                folder=folder,
                web_threads=args.web_threads,
                worker_idle=args.worker_idle,
            )
            began = time.perf_counter()
            counts = cluster.import_customers(workload.customers)
            timings["import"] = time.perf_counter() - began
            _progress(f"customers imported in {timings['import']:.1f} s: {counts}")
            workers = 0 if args.preload else args.workers
            ports = cluster.start(web=args.web, workers=workers, schedulers=args.schedulers)
            cluster.wait_ready()
            _progress(f"web on ports {ports}; {args.workers} workers, {args.schedulers} schedulers")
            sender = harness.Sender(workload, ports, rate=rate, per_port=args.connections)
            meter = CpuMeter()
            meter.sessions = {p.pid: n.split("-")[0] for n, p in cluster.processes.items()}
            if desks.pid is not None:
                meter.sessions[desks.pid] = "fake desk"
            meter.start()
            sender.start()
            if args.desk_down:
                time.sleep(seconds / 3)
                _progress(f"the desk goes down for {args.desk_down:g} s")
                desks.down(args.desk_down)
            sender.join()
            _progress(
                f"sent in {sender.finished - sender.started:.1f} s: {dict(sender.statuses())}"
            )
            if args.preload:
                for i in range(args.workers):
                    meter.sessions[cluster.start_worker(f"worker-{i}").pid] = "worker"
                timings["workers_started"] = time.time()

            def alive() -> None:
                gone = cluster.exited() if cluster is not None else []
                if gone:
                    raise RuntimeError(f"processes exited: {gone}")

            drained = harness.wait_drained(
                url,
                workload.deliveries,
                timeout=args.drain_timeout,
                alive=alive,
                progress=_progress,
            )
            timings["drained"] = time.time()
            meter.stop()
            timings["cpu"] = meter.seconds()
            if not drained:
                _progress(f"not drained within {args.drain_timeout:g} s")
            load_after = _loadavg()
            state = desks.state()
            cluster.stop_all()
            report = harness.check(workload, sender, cluster, state)
    finally:
        if cluster is not None:
            cluster.stop_all()
        if not args.keep:
            harness.drop_database(args.url, args.database)

    print(_render(args, workload, sender, report, started, load_before, load_after, timings))
    if report.problems:
        print(f"\nlogs: {folder}", file=sys.stderr)
        return 1
    if not args.keep:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    return 0


def _render(
    args: argparse.Namespace,
    workload: harness.Workload,
    sender: harness.Sender,
    report: harness.Report,
    started: datetime,
    load_before: str,
    load_after: str,
    timings: dict[str, Any],
) -> str:
    f = report.figures
    sending = sender.finished - sender.started
    accepted = sum(1 for r in sender.results if r.status == 200)
    e2e_seconds = f["last_done"] - f["first_received"]
    e2e_rate = workload.deliveries / e2e_seconds
    writebacks = f["writebacks"]
    lat = f["latency_ms"]
    lat_w = f["latency_with_writebacks_ms"]
    intake = sender.intake_latency_ms()
    lines = [
        "Scale-out on PostgreSQL (bench/scaleout.py)",
        f"date: {started:%Y-%m-%d %H:%M} UTC; machine: {_machine()}",
        f"load average (1/5/15 min) before: {load_before}; after: {load_after}",
        f"processes: {args.web} gunicorn web (1 gthread worker x {args.web_threads} threads), "
        f"{args.workers} workers, {args.schedulers} schedulers, the fake desks, this sender",
        f"workload: {workload.deliveries} distinct deliveries + {workload.repeats} repeats "
        f"({len(workload.sends)} POSTs) on {len(workload.tickets)} tickets over 4 desks, "
        f"{len(workload.customers)} customers; desk errors {args.error_share:.0%} (429/500)"
        + (f"; desk down {args.desk_down:g} s" if args.desk_down else ""),
        f"customers import: {timings.get('import', float('nan')):.1f} s",
        "",
        f"sending: {sending:.1f} s, {accepted / sending:.0f} deliveries accepted/s "
        f"(offered {len(workload.sends) / sending:.0f}/s); intake answer p50 "
        f"{intake['p50']:.1f} ms, p99 {intake['p99']:.1f} ms",
        f"end to end: {workload.deliveries} deliveries in {e2e_seconds:.1f} s = "
        f"{e2e_rate:.0f} deliveries/s (target >= {TARGET_RATE:.0f}); "
        f"{writebacks} write-backs = {writebacks / e2e_seconds:.0f}/s",
        f"latency per event, delivery received -> last write-back acknowledged: p50 "
        f"{lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms (target < {TARGET_P99_MS:.0f}), "
        f"max {lat['max']:.0f} ms; events with write-backs only: p50 {lat_w['p50']:.0f} ms, "
        f"p99 {lat_w['p99']:.0f} ms",
        "  of which: received -> decided p50 {decided_p50:.0f} ms, p99 {decided_p99:.0f} ms; "
        "decided -> last write-back acknowledged p50 {written_p50:.0f} ms, p99 "
        "{written_p99:.0f} ms".format(**f["latency_parts_ms"]),
        f"write-backs by kind {f['writeback_kinds']}; desk calls {f['desk_calls']}",
    ]
    if "workers_started" in timings:
        drain = f["last_done"] - timings["workers_started"]
        lines.append(
            f"workers alone (--preload): {workload.deliveries} events and {writebacks} "
            f"write-backs in {drain:.1f} s = {workload.deliveries / drain:.0f} events/s, "
            f"{writebacks / drain:.0f} write-backs/s"
        )
    cpu = timings.get("cpu") or {}
    if cpu:
        total = sum(cpu.values())
        lines.append(
            f"CPU from the first send to the last write-back: {total:.0f} s in all "
            f"({total / e2e_seconds:.2f} cores busy), "
            f"{1000 * total / workload.deliveries:.1f} ms per delivery; by part: "
            + ", ".join(
                f"{role} {secs:.0f} s ({1000 * secs / workload.deliveries:.2f} ms)"
                for role, secs in cpu.items()
            )
        )
    lines += [
        "",
        "checks:",
    ]
    lines += [f"  ok: {fact}" for fact in report.facts]
    lines += [f"  FAILED: {problem}" for problem in report.problems]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
