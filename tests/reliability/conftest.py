"""The connector under faults: a private PostgreSQL, the production processes, fake desks.

Every test here runs the connector as deployed (gunicorn, ``care-connector worker``) against
a throw-away PostgreSQL server made with ``initdb`` for this session on a port of its own
(never the shared server: one test restarts it) and the fake help desks of
bench/fake_helpdesk.py, through the harness of the scale-out run (bench/scaleout_harness.py).
Skipped only when PostgreSQL's server binaries are not installed.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.support import Run, Scenario, fake_helpdesk, harness


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[harness.PrivatePostgres]:
    """A PostgreSQL server of this session's own (initdb in a temporary folder)."""
    reason = harness.PrivatePostgres.available()
    if reason is not None:
        pytest.skip(f"no private PostgreSQL: {reason}")
    server = harness.PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def scenario(postgres_server: harness.PrivatePostgres) -> Iterator[Scenario]:
    """Makes a :class:`Run`: a fresh database on the private server, the fake desks, the
    customers imported, and the connector's processes started."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="care-fault-")))

        def make(
            *,
            deliveries: int = 200,
            customers: int = 40,
            web: int = 1,
            workers: int = 2,
            desk_timeout: float = 5.0,
            max_attempts: int = 10,
            outbox: dict[str, Any] | None = None,
            faults: dict[str, Any] | None = None,
            seed: int = 7,
        ) -> Run:
            name = f"care_fault_{secrets.token_hex(4)}"
            url = harness.recreate_database(postgres_server.url, name)
            stack.callback(_drop, postgres_server, name)
            workload = harness.Workload.build(deliveries=deliveries, customers=customers, seed=seed)
            desks = stack.enter_context(fake_helpdesk.running_desks())
            desks.faults(seed=seed, **(faults or {}))
            cluster = harness.Cluster(
                url,
                desks,
                workload.secrets,
                folder=folder,
                desk_timeout=desk_timeout,
                max_attempts=max_attempts,
                worker_idle=0.2,
                outbox=outbox,
            )
            stack.callback(cluster.stop_all)
            cluster.import_customers(workload.customers)
            ports = cluster.start(web=web, workers=workers, schedulers=0)
            return Run(workload, url, desks, cluster, ports)

        yield make


def _drop(server: harness.PrivatePostgres, name: str) -> None:
    if server.running():
        harness.drop_database(server.url, name)
