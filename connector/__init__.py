"""The Care Connector: a Flask add-on between a help desk and a support policy.

Public API: :func:`create_app` and :class:`CareConnector`.
"""

from __future__ import annotations

from connector.app import create_app
from connector.extension import CareConnector

__all__ = ["CareConnector", "create_app"]
__version__ = "0.1.0"
