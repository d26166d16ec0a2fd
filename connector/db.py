"""The database: one SQLAlchemy engine and session factory per connector app.

SQLite (the embedded default) and PostgreSQL (production) behave the same to callers:

- ``with db.transaction() as session:`` commits on success and rolls back on any error.
- On SQLite every write transaction starts with ``BEGIN IMMEDIATE``, so concurrent writers
  queue on the write lock (``busy_timeout``) instead of failing half-way with "database is
  locked" when a deferred transaction tries to upgrade its read lock. The connection runs in
  WAL mode with foreign keys on.
- On PostgreSQL (psycopg 3) serialization failures and deadlocks are retried by
  :meth:`Database.run_in_transaction`.

Migrations are Alembic scripts in ``connector/migrations`` run by :meth:`Database.upgrade`,
configured in code (no ``alembic.ini``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

T = TypeVar("T")

#: The SQLite file used when no database URL is configured (relative to the working directory).
DEFAULT_SQLITE_FILE = "care-connector.sqlite3"

#: How long a SQLite connection waits for the write lock before giving up, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: PostgreSQL connections each process keeps open between uses: at least a web process's
#: threads (gunicorn ``--threads``), or every request past the pool opens a connection and
#: closes it again (a new server process each time). POOL_OVERFLOW more are opened when busier.
POOL_SIZE = 10
POOL_OVERFLOW = 10

# SQLSTATEs worth retrying on PostgreSQL: serialization_failure, deadlock_detected.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class DatabaseError(Exception):
    """The database cannot be used as configured (bad URL, unknown driver)."""


def default_url(directory: str | Path | None = None) -> str:
    """The URL of the default SQLite file in ``directory`` (the working directory if omitted)."""
    base = Path(directory) if directory is not None else Path.cwd()
    return f"sqlite:///{(base / DEFAULT_SQLITE_FILE).resolve()}"


def normalize_url(url: str | None) -> str:
    """Give ``url`` its driver: ``postgresql://`` and ``postgres://`` become psycopg 3.

    An empty or missing URL is the default SQLite file (see :func:`default_url`).

    :raises DatabaseError: for a URL SQLAlchemy cannot parse or a backend other than
        SQLite and PostgreSQL.
    """
    if not url:
        return default_url()
    if url.startswith("postgres://"):  # Heroku-style alias.
        url = "postgresql://" + url[len("postgres://") :]
    try:
        parsed = make_url(url)
    except Exception as err:  # ArgumentError; the message names the bad URL.
        raise DatabaseError(f"Not a valid database URL: {url!r}.") from err
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed.render_as_string(hide_password=False)
    if backend == "sqlite":
        return url
    raise DatabaseError(
        f"Unsupported database {backend!r}: use sqlite:///PATH or postgresql+psycopg://..."
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite opens transactions itself at the first DML and never for SELECT; turn that off
    # so the "begin" listener below decides (SQLAlchemy's documented pysqlite recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # Safe in WAL mode; commits skip an fsync.
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, tried again while the file is locked.

    Switching a new file to WAL needs it to itself, and SQLite answers "database is locked" at
    once, busy timeout or not, when connections opened together all try it (processes started
    side by side on a new file). Once a file is in WAL mode it stays so and the pragma takes
    no lock, so this only ever waits on a brand-new file.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """An engine, its session factory, and the connector's transaction helpers.

    Build one with :meth:`from_url`; keep one per process (the engine pools connections).
    """

    def __init__(self, engine: Engine, *, auto_upgrade: bool = False) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = sessionmaker(
            bind=engine, expire_on_commit=False, autoflush=False
        )
        #: Migrate to the latest revision before the first transaction (see :meth:`ensure_schema`).
        self.auto_upgrade = auto_upgrade
        # The same engine and pool, but SQLite transactions begin DEFERRED (no write lock).
        self._deferred = engine.execution_options(sqlite_begin="DEFERRED")
        # Close the pooled connections when this object goes away (an app built for one CLI
        # command, a test's app) instead of leaving them to the driver's garbage collection.
        weakref.finalize(self, engine.dispose)
        self._upgrade_lock = threading.Lock()

    @classmethod
    def from_url(
        cls, url: str | None, *, auto_upgrade: bool = False, echo: bool = False
    ) -> Database:
        """Connect to ``url`` (``sqlite:///file``, ``postgresql+psycopg://...``).

        An empty URL means the default SQLite file in the working directory. Nothing is
        connected until first use.

        :param auto_upgrade: migrate the schema to the latest revision before the first
            transaction (the embedded SQLite default); otherwise ``care-connector db upgrade``
            does it.
        :raises DatabaseError: for an unusable URL.
        """
        full = normalize_url(url)
        backend = make_url(full).get_backend_name()
        if backend == "sqlite":
            options: dict[str, Any] = {}
            if make_url(full).database in (None, "", ":memory:"):
                # An in-memory database lives in its connection: share that one connection.
                options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
            engine = create_engine(full, echo=echo, **options)
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            # No pool_pre_ping: a ping is a round trip on every checkout (a fifth of the ledger's
            # throughput). A connection lost to a restart is invalidated on first use instead,
            # and run_in_transaction retries on it.
            engine = create_engine(full, echo=echo, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
        return cls(engine, auto_upgrade=auto_upgrade)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        """The URL with its password hidden, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error.

        :param read_only: on SQLite, begin a deferred transaction that does not take the
            write lock (a write inside it may then fail with "database is locked").
        """
        self.ensure_schema()
        bind = self._deferred if read_only and self.dialect == "sqlite" else self.engine
        with self.sessions(bind=bind) as session, session.begin():
            yield session

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A Core connection in one write transaction: committed on success, rolled back on
        error. For hot paths that run a few prepared statements and need no ORM (the intake).
        """
        self.ensure_schema()
        with self.engine.begin() as connection:
            yield connection

    def fetch_first_autocommit(self, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run ONE statement as a transaction of its own straight on a pooled driver
        connection (psycopg: ``%(name)s`` placeholders, values already in the driver's types);
        its first row. PostgreSQL only.

        The intake's hot path (docs/decisions.md, "On PostgreSQL the intake is one
        statement, run on the driver"): no BEGIN or COMMIT round trip, and none of
        SQLAlchemy's per-statement work (compiled-cache lookup, bind processors, result
        wrapping), which cost more CPU than the rest of a delivery together. Errors come out
        as SQLAlchemy's :class:`DBAPIError` like everywhere else, and a lost connection
        invalidates the pool the way SQLAlchemy's own ``Connection`` does, so the next
        statement reconnects.
        """
        self.ensure_schema()
        dialect = self.engine.dialect
        driver_error = dialect.loaded_dbapi.Error
        try:
            pooled = self.engine.raw_connection()
        except driver_error as err:  # the server is unreachable: no connection to invalidate
            raise DBAPIError.instance(sql, params, err, driver_error, dialect=dialect) from err
        try:
            driver = pooled.driver_connection
            assert driver is not None  # a checked-out connection has one
            driver.autocommit = True
            try:
                row: tuple[Any, ...] | None = driver.execute(sql, params).fetchone()
            finally:
                if not driver.closed:
                    driver.autocommit = False
            return row
        except driver_error as err:
            lost = dialect.is_disconnect(err, pooled.dbapi_connection, None)
            if lost:
                # As Connection._handle_dbapi_exception: every connection pooled before now
                # is replaced at its next checkout, this one at once.
                self.engine.pool._invalidate(pooled, err)
            raise DBAPIError.instance(
                sql, params, err, driver_error, connection_invalidated=lost, dialect=dialect
            ) from err
        finally:
            pooled.close()

    def run_in_transaction(self, fn: Callable[[Session], T], *, attempts: int = 5) -> T:
        """Run ``fn(session)`` in a transaction, retried on serialization failures.

        On PostgreSQL a serialization failure or deadlock, or a lost connection, rolls the
        transaction back and runs ``fn`` again in a new one, up to ``attempts`` times in all,
        with a short backoff.
        ``fn`` must therefore have no effects outside the session. Other errors propagate at
        once.
        """
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction() as session:
                    return fn(session)
            except DBAPIError as err:
                if attempt == attempts or not is_retryable(err):
                    raise
                time.sleep(min(0.01 * 2**attempt, 0.5))
        raise AssertionError("unreachable")  # pragma: no cover

    def ensure_schema(self) -> None:
        """Run the pending automatic upgrade, once (a no-op without ``auto_upgrade``).

        Deferred to first use so that commands which never touch the database (``quote``,
        ``hours``) neither create the SQLite file nor pay for Alembic.
        """
        if not self.auto_upgrade:
            return
        with self._upgrade_lock:
            if self.auto_upgrade:
                self.upgrade()
                self.auto_upgrade = False

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema to ``revision`` (Alembic) in one transaction.

        Safe to run from several processes at once: on SQLite the write lock serialises
        them; on PostgreSQL Alembic's version table does.
        """
        from alembic import command

        config = alembic_config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        if revision == "head":
            self.auto_upgrade = False

    def current_revision(self) -> str | None:
        """The schema's Alembic revision, ``None`` for an empty database."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def table_names(self) -> list[str]:
        """The tables present in the database (for diagnostics and tests)."""
        return sorted(inspect(self.engine).get_table_names())

    def dispose(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()


def alembic_config() -> Any:
    """An Alembic ``Config`` pointing at the packaged migrations (no ini file)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def is_retryable(err: DBAPIError) -> bool:
    """A serialization failure or deadlock, or a connection that was lost (the database
    restarted): SQLAlchemy has then invalidated the pool, and the next try reconnects."""
    if err.connection_invalidated:
        return True
    sqlstate = getattr(err.orig, "sqlstate", None)
    return sqlstate in _RETRY_SQLSTATES
