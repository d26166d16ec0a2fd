"""The errors adapters raise, and how the intake and the outbox read them.

Two families:

* :class:`WebhookError` and its subclasses are raised while a delivery is verified and parsed.
  Each carries the HTTP status the intake answers with (``connector/errors.py`` re-exports
  them and maps them to the JSON error body of architecture.md):

  ===========================  =====  ================================================
  error                        HTTP   when
  ===========================  =====  ================================================
  :class:`SignatureError`      401    bad or missing signature, stale or future stamp
  :class:`MissingSecretError`  401    no secret configured: every delivery is refused
  :class:`AnomalousPayloadError` 400  a handled event whose body does not parse
  :class:`UnsupportedEventError` 200  an event the connector does not handle
  ===========================  =====  ================================================

* :class:`HelpdeskAPIError` and its subclasses are raised by the REST clients. ``permanent``
  tells the outbox whether retrying can help; ``retry_after`` is the wait the desk asked for.
  The clients never retry themselves.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    import requests

__all__ = [
    "AdapterRegistryError",
    "AnomalousPayloadError",
    "HelpdeskAPIError",
    "HelpdeskHostError",
    "HelpdeskTimeoutError",
    "MissingSecretError",
    "SignatureError",
    "UnsupportedEventError",
    "UnsupportedOperationError",
    "WebhookError",
    "parse_retry_after",
]

#: How much of a response body an error keeps (bodies can be whole HTML error pages).
BODY_LIMIT = 2000


class WebhookError(Exception):
    """A delivery the intake refuses or ignores.

    :param message: one line, safe to log and to return to the sender.
    :param adapter: the adapter key (``"zendesk"``).
    :param errors: json path (``"detail.id"``) -> messages; ``"$"`` is the body itself.
    """

    http_status: ClassVar[int] = 400
    #: Short machine-readable code for the JSON error body.
    code: ClassVar[str] = "webhook_error"

    def __init__(
        self,
        message: str,
        *,
        adapter: str = "",
        errors: Mapping[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.adapter = adapter
        self.errors: dict[str, list[str]] = {
            key: list(value) for key, value in (errors or {}).items()
        }


class SignatureError(WebhookError):
    """Bad or missing signature, or a timestamp outside the accepted window."""

    http_status = 401
    code = "bad_signature"


class MissingSecretError(SignatureError):
    """The desk has no webhook secret configured, so nothing can be verified: fail closed.

    The connector logs this as a configuration error, not as an attack.
    """

    code = "no_secret"


class AnomalousPayloadError(WebhookError):
    """A delivery of an event the connector handles whose body does not parse."""

    http_status = 400
    code = "bad_payload"


class UnsupportedEventError(WebhookError):
    """An event type the connector does not handle; answered 200 ``{"status": "ignored"}``.

    :param event_type: the vendor's event code, for the log.
    """

    http_status = 200
    code = "ignored"

    def __init__(self, message: str, *, adapter: str = "", event_type: str = "") -> None:
        super().__init__(message, adapter=adapter)
        self.event_type = event_type


class AdapterRegistryError(Exception):
    """The adapter registry cannot be built: a duplicate key or a broken plugin."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    :param now: the current time (aware) for an HTTP-date; default the system clock.
    :returns: ``None`` when absent or unreadable; never negative (a date in the past is 0).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


class HelpdeskAPIError(Exception):
    """A help-desk REST call failed.

    :param status: the HTTP status, ``None`` when no response came back.
    :param retry_after: seconds the desk asked to wait (``Retry-After``), if it said.
    :param body: the start of the response body, as text.
    :param permanent: retrying cannot help (a 4xx other than 408, 409 and 429); default
        derived from ``status``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        body: str = "",
        permanent: bool | None = None,
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.body = body[:BODY_LIMIT]
        self.method = method
        self.url = url
        self.permanent = _is_permanent(status) if permanent is None else permanent

    @classmethod
    def from_response(
        cls, response: requests.Response, *, now: datetime | None = None
    ) -> HelpdeskAPIError:
        """The error for a non-2xx ``response``; never assumes the body is JSON.

        :param now: the current time, to read a ``Retry-After`` HTTP-date.
        """
        request = response.request
        method = (request.method or "") if request is not None else ""
        url = (request.url or "") if request is not None else (response.url or "")
        try:
            body = response.text
        except Exception:  # a body in an unknown encoding must not hide the status
            body = ""
        # A proxy or a desk may echo the request: its credentials must not end up in the
        # message, which is logged, stored with the write-back and shown to admins.
        for secret in _sent_credentials(request):
            body = body.replace(secret, "***")
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        summary = " ".join(body.split())[:200]
        message = f"{method} {url}: HTTP {response.status_code}" + (
            f": {summary}" if summary else ""
        )
        return cls(
            message,
            status=response.status_code,
            retry_after=retry_after,
            body=body,
            method=method,
            url=url,
        )


_SECRET_FIELD = re.compile(r"secret|password|token|key", re.IGNORECASE)


def _sent_credentials(request: Any) -> list[str]:
    """The credentials ``request`` carried, longest first: its ``Authorization`` value (whole,
    after the scheme, after ``token=``, and a Basic pair decoded) and the values of form
    fields named like secrets (an OAuth token request's ``client_secret``)."""
    if request is None:
        return []
    found: list[str] = []
    authorization = str(request.headers.get("Authorization") or "")
    scheme, _, credential = authorization.strip().partition(" ")
    found += [authorization, credential, credential.partition("=")[2]]
    if scheme.lower() == "basic":
        try:
            pair = base64.b64decode(credential, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            pair = ""
        found += [pair, pair.partition(":")[2]]
    body = request.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and "=" in body and not body.lstrip().startswith(("{", "[")):
        found += [value for name, value in parse_qsl(body) if _SECRET_FIELD.search(name)]
    return sorted({s for s in found if len(s) >= 6}, key=len, reverse=True)


class HelpdeskHostError(HelpdeskAPIError):
    """The desk could not be reached (connection refused, DNS, TLS): retryable."""

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        super().__init__(message, permanent=False, method=method, url=url)


class HelpdeskTimeoutError(HelpdeskAPIError):
    """The desk did not answer in time: retryable, and *unclear*, since the write may have
    happened; the outbox reads the ticket back (``has_marker``) before sending again."""

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        super().__init__(message, permanent=False, method=method, url=url)


class UnsupportedOperationError(HelpdeskAPIError):
    """The desk's adapter does not implement this call: permanent, so the outbox dead-letters
    the write-back with this message instead of retrying it.

    :param operation: the client method (``"notify_customer"``).
    :param adapter: the adapter key.
    """

    def __init__(self, operation: str, *, adapter: str = "") -> None:
        who = f"the {adapter} adapter" if adapter else "this adapter"
        super().__init__(f"{who} does not support {operation}", permanent=True)
        self.operation = operation
        self.adapter = adapter


def _is_permanent(status: int | None) -> bool:
    return status is not None and 400 <= status < 500 and status not in (408, 409, 429)
