"""A network timeout on every third call to the desks."""

from __future__ import annotations

from connector.models import OutboxAction
from tests.reliability.support import Scenario


def test_timeout_on_every_third_call_applies_each_note_once(scenario: Scenario) -> None:
    # Every third call is carried out by the desk, but its answer comes only after the
    # client gave up (0.3 s): the worst case, a write done whose answer is lost. Notes and
    # replies are then looked for on the ticket before being sent again; priority and tags
    # may be written again (they are idempotent), never doubled in effect.
    run = scenario(
        deliveries=100,
        workers=2,
        desk_timeout=0.3,
        max_attempts=30,
        outbox={"retry_base_seconds": 0.1, "retry_cap_seconds": 1},
        faults={"timeout_every": 3, "hang_seconds": 0.5},
    )
    sender = run.sender(rate=40)
    sender.start()
    sender.join()
    run.drain(timeout=180)

    calls = run.desks.state()["calls"]
    assert sum(n for k, n in calls.items() if k.endswith(" hang")) > 0, calls
    # Timed-out writes were marked unclear (and read back before any second try).
    assert run.outbox_count(OutboxAction.unclear.is_(True)) > 0
    report = run.check(sender, repeats_allowed=True)
    assert report.problems == [], "\n".join(report.problems + report.facts)
