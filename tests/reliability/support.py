"""What the reliability tests share: the harness of the scale-out run and one scenario's
handles (:class:`Run`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import fake_helpdesk  # noqa: E402
import scaleout_harness as harness  # noqa: E402

from connector.db import Database  # noqa: E402
from connector.models import OutboxAction  # noqa: E402

__all__ = ["Run", "Scenario", "fake_helpdesk", "harness"]


@dataclass
class Run:
    """One scenario: its workload, database, fake desks and processes."""

    workload: harness.Workload
    database_url: str
    desks: fake_helpdesk.DeskControl
    cluster: harness.Cluster
    ports: list[int]

    def sender(self, *, rate: float, per_port: int = 4) -> harness.Sender:
        return harness.Sender(self.workload, self.ports, rate=rate, per_port=per_port)

    def drain(self, timeout: float = 120.0) -> None:
        """Wait until everything is processed and sent; fail with the processes' logs if
        not, or if one of them exited."""

        def alive() -> None:
            gone = self.cluster.exited()
            if gone:
                raise AssertionError(f"processes exited: {gone}")

        if not harness.wait_drained(
            self.database_url, self.workload.deliveries, timeout=timeout, alive=alive
        ):
            logs = "\n".join(
                f"--- {name}\n{self.cluster.log_tail(name, 1500)}"
                for name in self.cluster.processes
            )
            raise AssertionError(f"not drained within {timeout:g} s\n{logs}")

    def check(self, sender: harness.Sender, *, repeats_allowed: bool) -> harness.Report:
        """Every check of the scale-out run (nothing lost, nothing applied twice)."""
        state = self.desks.state()
        return harness.check(
            self.workload, sender, self.cluster, state, repeats_allowed=repeats_allowed
        )

    def outbox_count(self, *conditions: object) -> int:
        """Outbox rows matching ``conditions`` (SQLAlchemy expressions)."""
        database = Database.from_url(self.database_url)
        try:
            with database.transaction(read_only=True) as session:
                query = select(func.count()).select_from(OutboxAction).where(*conditions)
                return int(session.scalar(query) or 0)
        finally:
            database.dispose()


Scenario = Callable[..., Run]
