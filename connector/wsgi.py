"""The WSGI application for gunicorn: ``gunicorn connector.wsgi:app``.

The configuration is discovered as for every command (``CARE_CONFIG``, then ``./config.toml``,
then the defaults) and checked at import, so a broken file stops the worker at start with its
message. Logs go through the connector's handler (``[logging]``, ``CARE_LOG_FORMAT=json`` for
JSON lines).
"""

from __future__ import annotations

from connector.app import create_app
from connector.logging_setup import configure_logging

app = create_app()
configure_logging(app.extensions["care_connector"].settings)
