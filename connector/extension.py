"""The Flask extension: state in ``app.extensions["care_connector"]``, never on ``self``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from flask import Flask, current_app

from adapters import load_adapters
from adapters.base import HelpdeskAdapter, HelpdeskClient
from connector.config import ConfigError, DeskSettings, Settings, load_settings
from connector.db import Database, DatabaseError

#: The largest webhook body accepted, unless ``CARE_MAX_BODY_BYTES`` says otherwise.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def utc_now() -> datetime:
    """The real clock (the default of :attr:`ConnectorState.clock`)."""
    return datetime.now(UTC)


@dataclass
class ConnectorState:
    """Per-app state: the validated settings and the services built from them.

    :param clock: the time source; ``simulate`` and tests pass a fixed one.
    :param verify_signatures: ``False`` only in ``simulate`` without ``--secret``.
    :param session_factory: builds the ``requests`` session of each desk (``simulate``
        passes one that captures the requests instead of sending them).
    """

    settings: Settings
    database: Database
    adapters: dict[str, HelpdeskAdapter] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now
    verify_signatures: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    session_factory: Callable[[DeskSettings], requests.Session] = lambda desk: requests.Session()
    _clients: dict[str, HelpdeskClient] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def desk(self, key: str) -> DeskSettings | None:
        """The desk configured under ``key`` that has an adapter, else ``None``."""
        return self.settings.desks.get(key) if key in self.adapters else None

    def adapter(self, key: str) -> HelpdeskAdapter:
        """The adapter bound to desk ``key`` (built at init for every configured desk)."""
        return self.adapters[key]

    def client(self, key: str) -> HelpdeskClient:
        """The desk's REST client: one per desk, sharing one pooled session."""
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                desk = self.settings.desks[key]
                client = self.adapters[key].client(self.session_factory(desk))
                self._clients[key] = client
            return client


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
        - ``CARE_MAX_BODY_BYTES``: the largest webhook body accepted (default 1 MiB); larger
          ones get 413 before they are read whole.

        The database (``settings.database_url``) is set up here but not connected to: the
        embedded SQLite default migrates itself before its first transaction; PostgreSQL is
        migrated with ``care-connector db upgrade``.

        Changes to these keys after ``init_app`` are ignored.

        :raises RuntimeError: when the connector is already registered on ``app``.
        :raises connector.config.ConfigError: when the configuration is invalid (a database URL
            of an unsupported kind, a desk whose adapter is not installed).
        """
        if "care_connector" in app.extensions:
            raise RuntimeError("CareConnector is already registered on this app.")
        app.config.setdefault("CARE_CONFIG", None)
        prefix = app.config.setdefault("CARE_URL_PREFIX", "")
        max_body = app.config.setdefault("CARE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
        settings = self._settings or load_settings(app.config["CARE_CONFIG"])
        # The embedded SQLite default migrates itself (on first use); PostgreSQL is migrated
        # by `care-connector db upgrade`, run once per deploy, not by every web process.
        try:
            database = Database.from_url(settings.database_url)
        except DatabaseError as err:
            raise ConfigError(f"database.url: {err}") from err
        database.auto_upgrade = database.dialect == "sqlite"
        registry = load_adapters()
        adapters: dict[str, HelpdeskAdapter] = {}
        for key, desk in settings.desks.items():
            if desk.adapter not in registry and not settings.desks_configured:
                continue  # a built-in default desk whose adapter this install lacks
            if desk.adapter not in registry:
                raise ConfigError(
                    f"desks.{key}.adapter: no adapter {desk.adapter!r} is installed "
                    f"(known: {', '.join(sorted(registry))})"
                )
            adapters[key] = registry[desk.adapter](desk)
        app.extensions["care_connector"] = ConnectorState(
            settings=settings, database=database, adapters=adapters, max_body_bytes=max_body
        )

        from connector.blueprints.approvals import approvals_bp
        from connector.blueprints.health import health_bp
        from connector.blueprints.hooks import hooks_bp

        app.register_blueprint(health_bp, url_prefix=prefix)
        app.register_blueprint(hooks_bp, url_prefix=prefix)
        app.register_blueprint(approvals_bp, url_prefix=prefix)


def state() -> ConnectorState:
    """The connector's state for the current app."""
    return current_app.extensions["care_connector"]  # type: ignore[no-any-return]
