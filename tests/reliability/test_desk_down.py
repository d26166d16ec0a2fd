"""The help desks down (port closed, open connections dropped) for a while."""

from __future__ import annotations

import time

from connector.models import OutboxAction
from tests.reliability.support import Scenario


def test_desk_down_for_seconds_loses_nothing(scenario: Scenario) -> None:
    # The minute-long variant is bench/scaleout.py --desk-down 60 (default retry timing: a
    # row is dead-lettered no sooner than 127 s after its first failure). Here the outage
    # lasts 8 s and the retries are scaled down to match: no sooner than 9.75 s.
    run = scenario(
        deliveries=200,
        workers=2,
        outbox={"retry_base_seconds": 0.5, "retry_cap_seconds": 4},
    )
    sender = run.sender(rate=40)
    sender.start()
    time.sleep(1.5)
    run.desks.down(8)
    sender.join()
    run.drain()

    # The outage was met: write-backs failed to reach the desk, and were sent later.
    assert run.outbox_count(OutboxAction.last_error.contains("cannot reach")) > 0
    report = run.check(sender, repeats_allowed=False)
    assert report.problems == [], "\n".join(report.problems + report.facts)
