"""A desk so slow that a worker's round of sends outlasts the lease on its claims."""

from __future__ import annotations

from tests.reliability.support import Scenario


def test_round_longer_than_the_lease_sends_nothing_twice(scenario: Scenario) -> None:
    # Every desk call takes 50 ms, so a round (up to 50 tickets' write-backs) lasts several
    # seconds, longer than the 2 s lease: the other worker must not take the rows back while
    # the round still sends them (the round renews its claim), or notes would go out twice.
    run = scenario(deliveries=200, workers=2, outbox={"lease_seconds": 2}, faults={"latency": 0.05})
    sender = run.sender(rate=40)
    sender.start()
    sender.join()
    run.drain()

    report = run.check(sender, repeats_allowed=False)
    assert report.problems == [], "\n".join(report.problems + report.facts)
