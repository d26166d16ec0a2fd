"""The connector tests' databases (a migrated SQLite file, and PostgreSQL when
``CARE_TEST_DATABASE_URL`` is set) for the security tests that run the pipeline."""

from __future__ import annotations

from tests.connector.conftest import (  # noqa: F401  (fixtures, found by name)
    _postgresql,
    _sqlite_template,
    database,
    postgresql_database,
)
