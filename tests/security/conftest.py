"""The connector tests' databases (a migrated SQLite file, and PostgreSQL when
``CARE_TEST_DATABASE_URL`` is set) for the security tests that run the pipeline, and the
per-desk app of tests/security/pipeline.py (a module's own ``app`` fixture wins over it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.adapters.hostile import Desk
from tests.connector.conftest import (  # noqa: F401  (fixtures, found by name)
    _postgresql,
    _sqlite_template,
    database,
    postgresql_database,
)
from tests.security.pipeline import DESKS, make_app


@pytest.fixture(params=DESKS, ids=lambda d: d.key)
def desk(request: pytest.FixtureRequest) -> Desk:
    """Each registered desk in turn."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def app(desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The connector with ``desk`` alone (:func:`tests.security.pipeline.make_app`)."""
    app = make_app(desk, tmp_path, monkeypatch)
    yield app
    app.extensions["care_connector"].database.dispose()
