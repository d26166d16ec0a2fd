"""``create_app``: the connector as a stand-alone Flask application."""

from __future__ import annotations

from typing import Any

from flask import Flask

from connector.extension import CareConnector


def create_app(config: dict[str, Any] | str | None = None) -> Flask:
    """Build the stand-alone connector app.

    :param config: a dict of settings (the TOML's shape), a path to a TOML file, or ``None``
        for discovery: ``CARE_CONFIG``, then ``./config.toml``, then the built-in defaults
        with SQLite in the working directory.
    """
    app = Flask("connector")
    app.config["CARE_CONFIG"] = config
    CareConnector(app)
    return app
