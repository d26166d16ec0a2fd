"""Operations: ``GET /healthz``, ``GET /metrics``, and the request id of every request.

``/healthz`` answers 200 when the database answers and every expected background process
(``[health] expect``) has beaten within ``[health] max_heartbeat_age`` seconds, else 503; its
JSON body shows each check, and the outbox backlog (reported, never failing the check: a desk
that is down fills it, and that is what retries are for).

``/metrics`` is the Prometheus text format (see :mod:`connector.metrics`), open unless
``[metrics]`` restricts it: ``enabled = false`` answers 404, ``allow`` limits the client
networks (403 otherwise), ``token_env`` asks for ``Authorization: Bearer <token>`` (401).

Every request gets a request id: the client's ``X-Request-Id`` when it is a plain token,
else a new one; it is echoed in the response's ``X-Request-Id`` and carried by every log
record written while the request is handled.
"""

from __future__ import annotations

import hmac
import logging
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from prometheus_client.exposition import choose_encoder
from sqlalchemy import text

from connector.config import HEARTBEAT_KINDS
from connector.errors import error_body
from connector.extension import ConnectorState, state
from connector.heartbeats import read_beats
from connector.logging_setup import new_request_id, request_id_var
from connector.metrics import read_outbox

health_bp = Blueprint("care_health", __name__)

log = logging.getLogger("care_connector.health")

REQUEST_ID_HEADER = "X-Request-Id"
_NOT_CHECKED = {"ok": False, "error": "not checked: the database did not answer"}


@health_bp.before_app_request
def _begin_request() -> None:
    request_id = new_request_id(request.headers.get(REQUEST_ID_HEADER))
    g.care_request_id = request_id
    g.care_request_id_token = request_id_var.set(request_id)


@health_bp.after_app_request
def _echo_request_id(response: Response) -> Response:
    request_id = g.get("care_request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


@health_bp.teardown_app_request
def _end_request(exc: BaseException | None) -> None:
    token = g.pop("care_request_id_token", None)
    if token is not None:
        try:
            request_id_var.reset(token)
        except ValueError:  # set in another context: nothing of ours to undo here
            pass


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@health_bp.get("/healthz")
def healthz() -> Response:
    st = state()
    checks = health_checks(st)
    healthy = all(check["ok"] for check in checks.values())
    response = jsonify({"status": "ok" if healthy else "unhealthy", "checks": checks})
    response.status_code = 200 if healthy else 503
    return _no_store(response)


def health_checks(st: ConnectorState) -> dict[str, dict[str, Any]]:
    """Each check of ``/healthz``: ``database``, ``heartbeats``, ``outbox``; each with ``ok``."""
    health = st.settings.health
    now = st.clock()
    try:
        with st.database.transaction(read_only=True) as session:
            session.execute(text("SELECT 1"))
            beats = read_beats(session, now, health.max_heartbeat_age)
            outbox, waited = read_outbox(session, now)
    except Exception as err:  # noqa: BLE001 - whatever the cause, the answer is 503
        log.warning("healthz: the database did not answer: %s", err)
        reason = f"the database did not answer ({type(err).__name__})"
        return {
            "database": {"ok": False, "error": reason},
            "heartbeats": dict(_NOT_CHECKED),
            "outbox": dict(_NOT_CHECKED),
        }
    processes: dict[str, dict[str, Any]] = {}
    for kind in HEARTBEAT_KINDS:
        beat = beats.get(kind)
        expected = kind in health.expect
        fresh = beat is not None and beat.age_seconds <= health.max_heartbeat_age
        entry: dict[str, Any] = {
            "ok": fresh or not expected,
            "expected": expected,
            "last_beat": beat.last.isoformat() if beat is not None else None,
            "age_seconds": round(beat.age_seconds, 1) if beat is not None else None,
            "processes": beat.processes if beat is not None else 0,
        }
        if expected and not fresh:
            entry["error"] = (
                "no heartbeat yet"
                if beat is None
                else f"no heartbeat for {beat.age_seconds:.0f} s "
                f"(more than {health.max_heartbeat_age} s)"
            )
        processes[kind] = entry
    return {
        "database": {"ok": True, "dialect": st.database.dialect},
        "heartbeats": {
            "ok": all(entry["ok"] for entry in processes.values()),
            "max_age_seconds": health.max_heartbeat_age,
            "processes": processes,
        },
        "outbox": {
            "ok": True,
            "backlog": outbox["pending"] + outbox["sending"],
            **outbox,
            "oldest_due_seconds": round(waited, 1),
        },
    }


def _error(status: int, message: str) -> Response:
    response = jsonify(error_body(status, message))
    response.status_code = status
    return _no_store(response)


def _client_allowed(remote: str | None, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    if not remote:
        return False
    try:
        address = ip_address(remote)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    candidates = (address,) if mapped is None else (address, mapped)
    return any(candidate in network for candidate in candidates for network in networks)


def _token_matches(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


@health_bp.get("/metrics")
def metrics() -> Response:
    st = state()
    cfg = st.settings.metrics
    if not cfg.enabled:
        return _error(404, "Metrics are disabled ([metrics] enabled = false).")
    if cfg.allow and not _client_allowed(request.remote_addr, cfg.allow):
        return _error(403, "This client may not read the metrics ([metrics] allow).")
    if cfg.token_env:
        if not cfg.token:
            return _error(401, f"No metrics token is set ({cfg.token_env} is empty).")
        if not _token_matches(request.headers.get("Authorization"), cfg.token):
            response = _error(401, "Send the metrics token: Authorization: Bearer <token>.")
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(st.metrics.scrape_registry(st))
    return _no_store(Response(body, status=200, content_type=content_type))
