"""The connector's error family and the JSON error body of every HTTP answer.

Adapters raise :mod:`adapters.errors` (they may not import the connector); they are
re-exported here so the connector has one place to look. Error bodies follow
flask-smorest's shape: ``{"code", "status", "message", "errors"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from adapters.errors import (
    AnomalousPayloadError,
    HelpdeskAPIError,
    HelpdeskHostError,
    HelpdeskTimeoutError,
    MissingSecretError,
    SignatureError,
    UnsupportedEventError,
    WebhookError,
)

__all__ = [
    "AnomalousPayloadError",
    "ConnectorError",
    "HelpdeskAPIError",
    "HelpdeskHostError",
    "HelpdeskTimeoutError",
    "MissingSecretError",
    "SignatureError",
    "UnsupportedEventError",
    "WebhookError",
    "error_body",
]


class ConnectorError(Exception):
    """Root of the connector's own errors."""


def error_body(
    code: int, message: str, errors: Mapping[str, list[str]] | None = None
) -> dict[str, Any]:
    """The JSON body of an error answer."""
    return {
        "code": code,
        "status": HTTPStatus(code).phrase,
        "message": message,
        "errors": dict(errors or {}),
    }
