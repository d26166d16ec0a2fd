"""The database layer: URLs, SQLite settings, transactions, retries, migrations."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session

from connector.app import create_app
from connector.config import ConfigError
from connector.db import (
    DEFAULT_SQLITE_FILE,
    Database,
    DatabaseError,
    _switch_to_wal,
    alembic_config,
    default_url,
    normalize_url,
)
from connector.extension import state
from connector.models import Base, Customer, LedgerEntry

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def sqlite_file(tmp_path: Path, name: str = "care.sqlite3") -> Database:
    return Database.from_url(f"sqlite:///{tmp_path / name}")


def run_in_threads(work: Callable[[], object], count: int) -> list[BaseException]:
    """Run ``work`` in ``count`` threads at once; what they raised."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as err:  # Returned to the test, which asserts on it.
            errors.append(err)

    threads = [threading.Thread(target=guarded) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@db/care", "postgresql+psycopg://u:p@db/care"),
        ("postgres://u@db:5433/care", "postgresql+psycopg://u@db:5433/care"),
        ("postgresql+psycopg://u@db/care", "postgresql+psycopg://u@db/care"),
        ("sqlite:////var/lib/care.sqlite3", "sqlite:////var/lib/care.sqlite3"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_normalize_url_gives_postgresql_the_psycopg_driver(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def test_an_empty_url_is_the_sqlite_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    expected = f"sqlite:///{tmp_path.resolve() / DEFAULT_SQLITE_FILE}"
    assert normalize_url("") == expected == default_url()
    assert Database.from_url(None).dialect == "sqlite"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@db/care", "Unsupported database 'mysql'"),
        ("not a url", "Not a valid database URL"),
    ],
)
def test_unusable_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(DatabaseError, match=message):
        Database.from_url(url)


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    database = sqlite_file(tmp_path)
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    database.dispose()


def test_an_in_memory_sqlite_database_is_shared_by_its_sessions() -> None:
    database = Database.from_url("sqlite://")
    database.upgrade()
    with database.transaction() as session:
        session.add(Customer(email="a@shop.example"))
    with database.transaction() as session:
        assert session.scalars(select(Customer.email)).all() == ["a@shop.example"]


def test_transaction_commits_on_success(database: Database) -> None:
    with database.transaction() as session:
        session.add(Customer(email="a@shop.example", name="A"))
    with database.transaction() as session:
        assert session.scalars(select(Customer.name)).all() == ["A"]


def test_transaction_rolls_back_on_error(database: Database) -> None:
    with pytest.raises(RuntimeError, match="boom"), database.transaction() as session:
        session.add(Customer(email="a@shop.example"))
        session.flush()
        raise RuntimeError("boom")
    with database.transaction() as session:
        assert session.scalars(select(Customer)).all() == []


def test_read_only_transaction_reads(database: Database) -> None:
    with database.transaction() as session:
        session.add(Customer(email="a@shop.example"))
    with database.transaction(read_only=True) as session:
        assert session.scalar(select(Customer.email)) == "a@shop.example"


def test_sqlite_writers_queue_instead_of_failing(tmp_path: Path) -> None:
    """Read-then-write from many threads: BEGIN IMMEDIATE serialises them, nothing is lost."""
    database = sqlite_file(tmp_path)
    database.upgrade()
    with database.transaction() as session:
        session.add(Customer(email="a@shop.example", balance=0))

    def bump() -> None:
        for _ in range(5):
            with database.transaction() as session:
                balance = session.scalar(select(Customer.balance)) or 0
                time.sleep(0.002)  # Widen the window a deferred transaction would lose in.
                session.execute(text("UPDATE customers SET balance = :b"), {"b": balance + 1})

    assert run_in_threads(bump, 6) == []
    with database.transaction() as session:
        assert session.scalar(select(Customer.balance)) == 30
    database.dispose()


def test_concurrent_upgrades_of_one_sqlite_file_both_succeed(tmp_path: Path) -> None:
    # Connections opened together on a NEW file race to switch it to WAL; a few rounds, since
    # the race is lost only now and then.
    # Each thread its own Database, as separate processes would have.
    for round_ in range(4):
        folder = tmp_path / f"round-{round_}"
        folder.mkdir()

        def upgrade(where: Path = folder) -> None:
            sqlite_file(where).upgrade()

        assert run_in_threads(upgrade, 4) == []
        assert sqlite_file(folder).current_revision() == HEAD


class _LockedCursor:
    """A cursor whose first ``locked`` statements fail as SQLite's do on a locked file."""

    def __init__(self, locked: int, message: str = "database is locked") -> None:
        self.locked, self.message, self.statements = locked, message, 0

    def execute(self, sql: str) -> None:
        self.statements += 1
        if self.statements <= self.locked:
            raise sqlite3.OperationalError(self.message)


def test_switching_a_new_sqlite_file_to_wal_waits_for_the_lock() -> None:
    cursor = _LockedCursor(locked=3)
    _switch_to_wal(cursor)
    assert cursor.statements == 4  # three refusals, then done


def test_other_sqlite_errors_while_switching_to_wal_are_not_retried() -> None:
    cursor = _LockedCursor(locked=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _switch_to_wal(cursor)
    assert cursor.statements == 1


def test_upgrade_creates_every_table_and_is_idempotent(database: Database) -> None:
    database.upgrade()  # The fixture migrated already: a second run changes nothing.
    assert database.current_revision() == HEAD
    assert set(database.table_names()) == set(Base.metadata.tables) | {"alembic_version"}


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_auto_upgrade_migrates_on_first_use_only(tmp_path: Path) -> None:
    path = tmp_path / "lazy.sqlite3"
    database = Database.from_url(f"sqlite:///{path}", auto_upgrade=True)
    assert not path.exists()  # Creating the object touches nothing.
    with database.transaction() as session:
        assert session.scalars(select(Customer)).all() == []
    assert database.current_revision() == HEAD
    assert database.auto_upgrade is False


def test_an_empty_database_has_no_revision(tmp_path: Path) -> None:
    assert sqlite_file(tmp_path).current_revision() is None


def test_timestamps_come_back_aware_and_in_utc(database: Database) -> None:
    dubai = timezone(timedelta(hours=4))
    at = datetime(2026, 3, 1, 13, 30, 15, 123456, tzinfo=dubai)
    with database.transaction() as session:
        session.add(Customer(email="a@shop.example", created_at=at, updated_at=at))
    with database.transaction() as session:
        created = session.scalar(select(Customer.created_at))
    assert created == at
    assert created is not None and created.tzinfo == UTC
    assert created.hour == 9


def test_naive_timestamps_are_refused(database: Database) -> None:
    naive = datetime(2026, 3, 1, 9, 0)
    with pytest.raises(StatementError, match="Naive datetime"), database.transaction() as s:
        s.add(Customer(email="a@shop.example", created_at=naive, updated_at=naive))


def raise_in_database(session: Session, sqlstate: str) -> None:
    """Make PostgreSQL itself fail with ``sqlstate`` (a real server error, not a mock)."""
    session.execute(
        text(
            f"DO $$ BEGIN RAISE EXCEPTION 'raised by the test' USING ERRCODE = '{sqlstate}'; END $$"
        )
    )


@pytest.mark.postgres
@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_run_in_transaction_retries_serialization_failures_and_deadlocks(
    postgresql_database: Database, sqlstate: str
) -> None:
    attempts: list[int] = []

    def work(session: Session) -> int:
        attempts.append(len(attempts) + 1)
        session.add(Customer(email=f"try{len(attempts)}@shop.example"))
        session.flush()
        if len(attempts) < 3:
            raise_in_database(session, sqlstate)
        return len(attempts)

    assert postgresql_database.run_in_transaction(work) == 3
    with postgresql_database.transaction() as session:
        # The failed attempts were rolled back; only the third one's row is there.
        assert session.scalars(select(Customer.email)).all() == ["try3@shop.example"]


@pytest.mark.postgres
def test_run_in_transaction_gives_up_after_its_attempts(postgresql_database: Database) -> None:
    attempts: list[int] = []

    def work(session: Session) -> None:
        attempts.append(1)
        raise_in_database(session, "40001")

    with pytest.raises(DBAPIError, match="raised by the test"):
        postgresql_database.run_in_transaction(work, attempts=2)
    assert len(attempts) == 2


def test_run_in_transaction_does_not_retry_other_errors(database: Database) -> None:
    attempts: list[int] = []

    def work(session: Session) -> None:
        attempts.append(1)
        session.add(Customer(email="a@shop.example", balance=-1))
        session.flush()

    with pytest.raises(IntegrityError):
        database.run_in_transaction(work)
    assert attempts == [1]


# --------------------------------------------------------------------------------------------
# One statement on the driver (the PostgreSQL intake)

_INSERT_CUSTOMER = (
    "INSERT INTO customers (email, balance, created_at, updated_at)"
    " VALUES (%(email)s, %(balance)s, now(), now())"
    " RETURNING id, email"
)


@pytest.mark.postgres
def test_a_driver_statement_commits_alone_and_gives_its_first_row(
    postgresql_database: Database,
) -> None:
    row = postgresql_database.fetch_first_autocommit(
        _INSERT_CUSTOMER, {"email": "raw@shop.example", "balance": 3}
    )
    assert row is not None and row[1] == "raw@shop.example"
    # Committed: another connection sees it at once.
    with postgresql_database.transaction(read_only=True) as session:
        assert session.scalars(select(Customer.email)).all() == ["raw@shop.example"]
    empty = "SELECT id FROM customers WHERE email = %(email)s"
    assert postgresql_database.fetch_first_autocommit(empty, {"email": "none@x"}) is None


@pytest.mark.postgres
def test_a_driver_statement_fails_as_sqlalchemy_would_and_keeps_the_pool_usable(
    postgresql_database: Database,
) -> None:
    with pytest.raises(IntegrityError):  # the balance check, as a SQLAlchemy error
        postgresql_database.fetch_first_autocommit(
            _INSERT_CUSTOMER, {"email": "neg@shop.example", "balance": -1}
        )
    for n in range(3):  # the connection went back to the pool in working order
        postgresql_database.fetch_first_autocommit(
            _INSERT_CUSTOMER, {"email": f"ok{n}@shop.example", "balance": 0}
        )
    # A plain transaction on the same pool is not left in autocommit: it still rolls back.
    with pytest.raises(RuntimeError), postgresql_database.transaction() as session:
        session.add(Customer(email="rolled@shop.example"))
        session.flush()
        raise RuntimeError("roll back")
    with postgresql_database.transaction(read_only=True) as session:
        assert len(session.scalars(select(Customer.id)).all()) == 3


@pytest.mark.postgres
def test_a_lost_connection_invalidates_the_pool_and_the_next_statement_reconnects(
    postgresql_database: Database,
) -> None:
    engine = postgresql_database.engine
    held = [engine.raw_connection() for _ in range(3)]  # three pooled connections
    pids = [c.driver_connection.info.backend_pid for c in held]  # type: ignore[union-attr]
    for pooled in held:
        pooled.close()
    killer = create_engine(engine.url)  # as if the server had restarted
    with killer.begin() as connection:
        for pid in pids:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()
    with pytest.raises(DBAPIError) as failed:
        postgresql_database.fetch_first_autocommit(
            _INSERT_CUSTOMER, {"email": "lost@shop.example", "balance": 0}
        )
    assert failed.value.connection_invalidated
    # The other two stale connections are replaced too: the next statements succeed.
    for n in range(3):
        postgresql_database.fetch_first_autocommit(
            _INSERT_CUSTOMER, {"email": f"back{n}@shop.example", "balance": 0}
        )


def test_a_driver_statement_to_an_unreachable_server_is_a_sqlalchemy_error() -> None:
    unreachable = Database.from_url("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(OperationalError):
        unreachable.fetch_first_autocommit("SELECT 1", {})
    unreachable.dispose()


def test_run_in_transaction_returns_the_result(database: Database) -> None:
    def work(session: Session) -> int:
        customer = Customer(email="a@shop.example")
        session.add(customer)
        session.flush()
        session.add(
            LedgerEntry(
                customer_id=customer.id,
                at=datetime(2026, 1, 1, tzinfo=UTC),
                kind="grant",
                amount=5,
                balance_after=5,
                actor="test",
                source="cli",
                key="k-1",
            )
        )
        return customer.id

    assert database.run_in_transaction(work) == 1


def test_the_app_gets_a_self_migrating_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    app = create_app({"database": {"url": f"sqlite:///{path}"}})
    with app.app_context():
        database = state().database
    assert (database.dialect, database.auto_upgrade, path.exists()) == ("sqlite", True, False)
    with database.transaction() as session:
        assert session.scalars(select(Customer)).all() == []
    assert database.current_revision() == HEAD


def test_the_app_leaves_postgresql_to_db_upgrade() -> None:
    app = create_app({"database": {"url": "postgresql+psycopg://nobody@127.0.0.1:1/none"}})
    with app.app_context():
        database = state().database
    assert (database.dialect, database.auto_upgrade) == ("postgresql", False)


def test_an_unsupported_database_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="database.url: Unsupported database 'mysql'"):
        create_app({"database": {"url": "mysql://u@db/care"}})
