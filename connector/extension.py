"""The Flask extension: state in ``app.extensions["care_connector"]``, never on ``self``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from connector.config import ConfigError, Settings, load_settings
from connector.db import Database, DatabaseError


@dataclass
class ConnectorState:
    """Per-app state: the validated settings (and, as the connector grows, its services)."""

    settings: Settings
    database: Database


class CareConnector:
    """Mount the Care Connector on a Flask app.

    ``CareConnector(app)`` or ``ext = CareConnector(); ext.init_app(app)``.
    """

    def __init__(self, app: Flask | None = None, *, settings: Any = None) -> None:
        self._settings = settings
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Validate the configuration once and register the connector's blueprints.

        Keys read from ``app.config`` (each defaulted with ``setdefault``):

        - ``CARE_CONFIG``: a dict of settings or a path to a TOML file (default: discovery,
          see :func:`connector.config.load_settings`).
        - ``CARE_URL_PREFIX``: where the blueprints are mounted (default ``""``).

        The database (``settings.database_url``) is set up here but not connected to: the
        embedded SQLite default migrates itself before its first transaction; PostgreSQL is
        migrated with ``care-connector db upgrade``.

        Changes to these keys after ``init_app`` are ignored.

        :raises RuntimeError: when the connector is already registered on ``app``.
        :raises connector.config.ConfigError: when the configuration is invalid (a database URL
            of an unsupported kind included).
        """
        if "care_connector" in app.extensions:
            raise RuntimeError("CareConnector is already registered on this app.")
        app.config.setdefault("CARE_CONFIG", None)
        prefix = app.config.setdefault("CARE_URL_PREFIX", "")
        settings = self._settings or load_settings(app.config["CARE_CONFIG"])
        # The embedded SQLite default migrates itself (on first use); PostgreSQL is migrated
        # by `care-connector db upgrade`, run once per deploy, not by every web process.
        try:
            database = Database.from_url(settings.database_url)
        except DatabaseError as err:
            raise ConfigError(f"database.url: {err}") from err
        database.auto_upgrade = database.dialect == "sqlite"
        app.extensions["care_connector"] = ConnectorState(settings=settings, database=database)

        from connector.blueprints.health import health_bp

        app.register_blueprint(health_bp, url_prefix=prefix)


def state() -> ConnectorState:
    """The connector's state for the current app."""
    return current_app.extensions["care_connector"]  # type: ignore[no-any-return]
