"""The database restarted while deliveries arrive and the workers run."""

from __future__ import annotations

import time

from tests.reliability.support import Scenario, harness


def test_database_restart_answers_503_then_recovers_alone(
    scenario: Scenario, postgres_server: harness.PrivatePostgres
) -> None:
    run = scenario(deliveries=200, workers=2, outbox={"lease_seconds": 5})
    sender = run.sender(rate=40)
    sender.start()
    time.sleep(2)
    # As if the server crashed: every connection cut, crash recovery at the next start.
    postgres_server.stop("immediate")
    try:
        time.sleep(4)
    finally:
        postgres_server.start()
    sender.join()
    run.drain()

    answers = sender.statuses()
    # While the database was down the web process answered 503 (the sender, like a desk,
    # sent those deliveries again); never a 500, and the process stayed up throughout.
    assert answers[503] > 0, answers
    assert set(answers) <= {200, 503}, answers
    assert run.cluster.exited() == []
    report = run.check(sender, repeats_allowed=True)
    assert report.problems == [], "\n".join(report.problems + report.facts)
