"""A worker killed with SIGKILL in the middle of a round, then started again."""

from __future__ import annotations

import time

from connector.models import OutboxAction
from tests.reliability.support import Run, Scenario


def _busy(run: Run) -> bool:
    """Write-backs are claimed right now (a worker is in the middle of a round)."""
    return run.outbox_count(OutboxAction.status == "sending") > 0


def test_worker_killed_mid_round_loses_nothing_and_repeats_nothing(scenario: Scenario) -> None:
    # Each desk call takes 30 ms, so a round of sends lasts seconds; a short lease brings the
    # killed worker's claims back soon after.
    run = scenario(deliveries=200, workers=2, outbox={"lease_seconds": 3}, faults={"latency": 0.03})
    sender = run.sender(rate=40)
    sender.start()
    deadline = time.monotonic() + 60
    for name in ("worker-0", "worker-1", "worker-0"):
        while not _busy(run) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        run.cluster.kill(name)
        time.sleep(1)
        run.cluster.start_worker(name)
    sender.join()
    run.drain()

    # The killed workers' claims came back after the lease, as unclear (read back first).
    assert run.outbox_count(OutboxAction.unclear.is_(True)) > 0
    report = run.check(sender, repeats_allowed=True)
    assert report.problems == [], "\n".join(report.problems + report.facts)
