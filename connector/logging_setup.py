"""Logs: one JSON object per line (or plain text), with the request id and the ticket of the
work in hand, and secrets masked.

Every record carries ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, plus
``request_id`` while a web request is handled (taken from its ``X-Request-Id`` header, or
made up, and echoed in the response) and ``ticket`` (``"<desk>:<ticket id>"``) while the
worker or the outbox works on one, both from :mod:`contextvars`, so any logger called
underneath gets them. ``extra={...}`` fields are added; an exception comes as ``exception``.

:class:`SecretFilter` masks, in the message, the exception and the extra fields: the
configured secret values (webhook secrets, desk credentials, the metrics and admin tokens,
the database password, and every ``CARE_*`` environment variable whose name ends in SECRET,
TOKEN, KEY or PASSWORD), the values of credential headers (``Authorization``, signatures,
cookies), URL passwords and secret-looking query parameters. Values shorter than
:data:`MIN_SECRET_LENGTH` are left alone: they would mask ordinary words.

:func:`configure_logging` installs it all on the root logger: ``care-connector run``,
``worker`` and ``scheduler`` and ``connector.wsgi`` (gunicorn) call it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connector.config import Settings

__all__ = [
    "JsonFormatter",
    "SecretFilter",
    "TextFormatter",
    "configure_logging",
    "log_context",
    "new_request_id",
    "request_id_var",
    "secrets_of",
    "ticket_var",
]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "care_request_id", default=None
)
ticket_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("care_ticket", default=None)

#: Secret values shorter than this are not masked: they would mask ordinary words.
MIN_SECRET_LENGTH = 6
MASK = "***"

#: Headers whose values are credentials (lower case).
SECRET_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "x-csrf-token",
    "x-zendesk-webhook-signature",
    "x-helpscout-signature",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-freshdesk-signature",
    "x-care-token",
)
_SECRET_ENV_RE = re.compile(r"CARE_[A-Z0-9_]*(SECRET|TOKEN|KEY|PASSWORD)S?")
_HEADER_RE = re.compile(
    r"(?i)(?<![\w-])(" + "|".join(re.escape(name) for name in SECRET_HEADERS) + r")"
    r"(['\"]?\s*[:=]\s*['\"]?)"
    r"((?:bearer|basic|token|digest)\s+)?"
    r"([^\s'\",;}]+)"
)
_URL_PASSWORD_RE = re.compile(r"([a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)", re.IGNORECASE)
_QUERY_SECRET_RE = re.compile(
    r"(?i)([?&;\s](?:token|access_token|api_key|apikey|password|secret|client_secret)=)"
    r"([^&\s'\"]+)"
)
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Attributes every LogRecord has; anything else came in ``extra``.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "request_id", "ticket", "context"}
)


def new_request_id(header: str | None = None) -> str:
    """The client's ``X-Request-Id`` when it is a plain token (letters, digits, ``._:-``, at
    most 128), else a new random one."""
    if header and _REQUEST_ID_RE.fullmatch(header):
        return header
    return uuid.uuid4().hex


@contextmanager
def log_context(*, request_id: str | None = None, ticket: str | None = None) -> Iterator[None]:
    """Within the block, records carry ``request_id`` and/or ``ticket`` (those given)."""
    tokens: list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]] = []
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    if ticket is not None:
        tokens.append((ticket_var, ticket_var.set(ticket)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def secrets_of(settings: Settings | None, environ: Mapping[str, str] | None = None) -> set[str]:
    """The secret values to mask: desk secrets and credentials, the metrics and admin tokens,
    the database password, and the ``CARE_*`` variables named like secrets."""
    environ = os.environ if environ is None else environ
    found: set[str] = {
        value for name, value in environ.items() if _SECRET_ENV_RE.fullmatch(name) and value
    }
    if settings is not None:
        for desk in settings.desks.values():
            found.update(desk.secrets)
            found.update((desk.token, desk.api_key, desk.client_secret, desk.password))
        found.add(settings.metrics.token)
        found.update(getattr(getattr(settings, "admin", None), "tokens", {}).values())
        try:
            found.add(make_url(settings.database_url).password or "")
        except ArgumentError:
            pass
    return {value for value in found if value and len(value) >= MIN_SECRET_LENGTH}


class SecretFilter(logging.Filter):
    """Masks secrets in every record that passes (see the module); never drops one.

    The record is changed in place: its message is rendered and masked, its exception
    rendered and masked, so every handler after this one sees the masked text.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._values = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def mask(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        if self._values is not None:
            text = self._values.sub(MASK, text)
        text = _HEADER_RE.sub(lambda m: f"{m[1]}{m[2]}{m[3] or ''}{MASK}", text)
        text = _URL_PASSWORD_RE.sub(rf"\1{MASK}\3", text)
        return _QUERY_SECRET_RE.sub(rf"\1{MASK}", text)

    def mask_value(self, value: Any) -> Any:
        """A string masked; in a mapping or a list, every string, and the value of every
        credential header, masked."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, Mapping):
            return {
                key: MASK if str(key).lower() in SECRET_HEADERS else self.mask_value(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.mask_value(item) for item in value]
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_care_masked", False):
            return True
        record.msg = self.mask(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD and not name.startswith("_"):
                setattr(record, name, self.mask_value(value))
        record._care_masked = True
        return True


class _ContextFilter(logging.Filter):
    """Gives every record ``request_id`` and ``ticket`` from the context (``None`` outside)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "ticket", None) is None:
            record.ticket = ticket_var.get()
        return True


_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _iso(created: float) -> str:
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        ticket = getattr(record, "ticket", None) or ticket_var.get()
        if request_id:
            entry["request_id"] = request_id
        if ticket:
            entry["ticket"] = ticket
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        line = json.dumps(entry, ensure_ascii=False, default=str)
        # Characters some readers take for line breaks stay escaped: one record, one line.
        return line.translate(_LINE_BREAKS)


class TextFormatter(logging.Formatter):
    """Plain lines for a terminal: time, logger, level, [request id, ticket], message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s%(context)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"request={value}"
            for value in (getattr(record, "request_id", None) or request_id_var.get(),)
            if value
        ]
        ticket = getattr(record, "ticket", None) or ticket_var.get()
        if ticket:
            parts.append(f"ticket={ticket}")
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return super().format(record)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record comes (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own convention
            self.handleError(record)


#: Marks the handler :func:`configure_logging` installs, so a second call replaces it.
_HANDLER_MARK = "_care_connector_handler"


def configure_logging(
    settings: Settings | None = None,
    *,
    fmt: str | None = None,
    level: str | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send every logger's records through the connector's handler on the root logger.

    :param settings: ``[logging]`` (format and level, ``CARE_LOG_*`` applied) and the secrets
        to mask; ``None``: text at INFO, secrets from the environment only.
    :param fmt: ``"json"`` or ``"text"``, over the settings.
    :param stream: where to write (default: ``sys.stderr`` at the time of each record).
    :returns: the handler installed (a second call replaces it, never adds one).
    """
    chosen = fmt or (settings.logging.format if settings is not None else "text")
    level_name = level or (settings.logging.level if settings is not None else "INFO")
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    handler.addFilter(SecretFilter(secrets_of(settings)))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_name)
    # APScheduler logs every tick at INFO; the jobs log what they did themselves.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
    return handler


def gunicorn_logconfig(settings: Settings | None = None) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its error and access logs in the connector's format,
    secrets masked (the application's own records go through :func:`configure_logging`,
    called by :mod:`connector.wsgi`).

    :param settings: default: loaded as the application will (``CARE_CONFIG``, ...).
    """
    if settings is None:
        from connector.config import load_settings

        settings = load_settings()
    formatter = "JsonFormatter" if settings.logging.format == "json" else "TextFormatter"
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "care",
        "filters": ["secrets"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": settings.logging.level, "handlers": []},
        "loggers": {
            name: {"level": "INFO", "handlers": ["care"], "propagate": False}
            for name in ("gunicorn.error", "gunicorn.access")
        },
        "handlers": {"care": handler},
        "filters": {
            "secrets": {
                "()": "connector.logging_setup.SecretFilter",
                "secrets": sorted(secrets_of(settings)),
            }
        },
        "formatters": {"care": {"()": f"connector.logging_setup.{formatter}"}},
    }
