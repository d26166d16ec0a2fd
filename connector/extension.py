"""The Flask extension: state in ``app.extensions["care_connector"]``, never on ``self``."""

from __future__ import annotations

import os
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
from connector.metrics import Metrics

#: The largest webhook body accepted, unless ``CARE_MAX_BODY_BYTES`` says otherwise.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def utc_now() -> datetime:
    """The real clock (the default of :attr:`ConnectorState.clock`)."""
    return datetime.now(UTC)


def desk_session(desk: DeskSettings) -> requests.Session:
    """The pooled ``requests`` session of one desk (the default session factory).

    The environment's proxy for the desk's host (``HTTPS_PROXY``, ``NO_PROXY``...) and CA
    bundle (``REQUESTS_CA_BUNDLE``) are read once, here: with ``trust_env`` on, requests
    reads them, and ``~/.netrc``, again on every request (a fifth of a write-back's time),
    and credentials found in ``~/.netrc`` would replace the desk's own.
    """
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(desk.base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session


@dataclass
class ConnectorState:
    """Per-app state: the validated settings and the services built from them.

    :param clock: the time source; ``simulate`` and tests pass a fixed one.
    :param verify_signatures: ``False`` only in ``simulate`` without ``--secret``.
    :param session_factory: builds the ``requests`` session of each desk (``simulate``
        passes one that captures the requests instead of sending them).
    :param metrics: what this app measures in this process (``GET /metrics``).
    """

    settings: Settings
    database: Database
    adapters: dict[str, HelpdeskAdapter] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now
    verify_signatures: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    session_factory: Callable[[DeskSettings], requests.Session] = desk_session
    metrics: Metrics = field(default_factory=Metrics, repr=False)
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

        from connector.admin.api import init_admin_api
        from connector.admin.pages import admin_pages_bp

        init_admin_api(app, prefix)
        app.register_blueprint(admin_pages_bp, url_prefix=prefix)


def state() -> ConnectorState:
    """The connector's state for the current app."""
    return current_app.extensions["care_connector"]  # type: ignore[no-any-return]
