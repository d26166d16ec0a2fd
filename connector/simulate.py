"""``care-connector simulate``: the whole pipeline on a throw-away database, HTTP captured.

Admins use it to try a payload before going live; the acceptance checks use it too. The
payloads go through the real intake (signature checks only with ``--secret``), the worker and
the outbox; nothing leaves the machine: every request to the desk is recorded, writes are
answered 200 and reads 404 unless the desk's ``options.simulate_reads`` gives a body for the
path.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from sqlalchemy import func, select

from connector.config import DeskSettings, Settings
from connector.customers import find_customer, import_customers, read_import_file, validate_entries
from connector.extension import CareConnector, ConnectorState
from connector.models import Event, InboundDelivery, OutboxAction
from connector.runner import drain
from rules.events import PriorityLevel


class SimulationError(Exception):
    """A payload the intake refused, or bad input to the simulation: exit code 1 or 2."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Capture(BaseAdapter):
    """A ``requests`` transport that records requests instead of sending them."""

    reads: Mapping[str, Any] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        raw = request.body
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        url = request.url or ""
        path = urlsplit(url).path
        if not path.endswith("/oauth2/token"):
            self.log.append({"method": request.method, "url": url, "json": body})
        response = requests.Response()
        response.request = request
        response.url = url
        response.encoding = "utf-8"
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
        if request.method == "GET":
            found = self.reads.get(path)
            response.status_code = 200 if found is not None else 404
            response._content = json.dumps(
                found if found is not None else {"error": "not found"}
            ).encode()
        elif path.endswith("/oauth2/token"):
            # An OAuth2 client-credentials desk (Help Scout) asks for a token before writing.
            response.status_code = 200
            token = {"access_token": "simulated", "token_type": "bearer", "expires_in": 7200}
            response._content = json.dumps(token).encode()
        else:
            response.status_code = 200
            response._content = b"{}"
        return response

    def close(self) -> None:
        return None


@dataclass
class Simulation:
    """The outcome: one result per payload and the final balances."""

    results: list[dict[str, Any]]
    balances: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return {"results": self.results, "balances": self.balances}


def parse_header(text: str) -> tuple[str, str]:
    """``K:V`` split at the first colon."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise SimulationError(f"--header {text!r}: expected NAME:VALUE", exit_code=2)
    return name.strip(), value.strip()


def _payload_headers(path: Path) -> dict[str, str]:
    sidecar = path.with_name(path.name.removesuffix(".json") + ".headers.json")
    if not sidecar.exists():
        sidecar = Path(f"{path}.headers.json")
    if not sidecar.exists():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SimulationError(
            f"{sidecar}: not a JSON object of headers ({err})", exit_code=2
        ) from err
    if not isinstance(data, dict):
        raise SimulationError(f"{sidecar}: not a JSON object of headers", exit_code=2)
    return {str(k): str(v) for k, v in data.items()}


def run(
    settings: Settings,
    *,
    desk: str,
    payloads: Sequence[Path],
    customers: Path | None = None,
    now: datetime,
    secret: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> Simulation:
    """Run the payloads through the pipeline of a fresh app on a temporary SQLite file."""
    if desk not in settings.desks:
        known = ", ".join(sorted(settings.desks))
        raise SimulationError(f"--desk {desk!r}: no such desk (configured: {known})", exit_code=2)
    bodies = []
    for path in payloads:
        try:
            bodies.append((path, path.read_bytes()))
        except OSError as err:
            raise SimulationError(f"{path}: {err.strerror or err}", exit_code=2) from err
    desk_settings = settings.desks[desk]
    if secret is not None:
        desk_settings = replace(desk_settings, secrets=(secret,))
    with tempfile.TemporaryDirectory(prefix="care-simulate-") as folder:
        sandbox = replace(
            settings,
            database_url=f"sqlite:///{Path(folder) / 'simulate.sqlite3'}",
            desks={**settings.desks, desk: desk_settings},
        )
        from flask import Flask

        app = Flask("connector.simulate")
        CareConnector(app, settings=sandbox)
        st: ConnectorState = app.extensions["care_connector"]
        capture = Capture(reads=dict(desk_settings.options.get("simulate_reads") or {}))
        st.session_factory = lambda _desk: _session(capture)
        st.clock = lambda: now
        st.verify_signatures = secret is not None
        try:
            emails = _import(st, customers, now) if customers else []
            results = [
                _one(st, app, desk, path, body, headers, capture, desk_settings)
                for path, body in bodies
            ]
            balances = _balances(st, emails)
        finally:
            st.database.dispose()
    return Simulation(results, balances)


def _session(capture: Capture) -> requests.Session:
    session = requests.Session()
    session.mount("http://", capture)
    session.mount("https://", capture)
    return session


def _import(st: ConnectorState, path: Path, now: datetime) -> list[str]:
    from connector.customers import CustomerImportError

    try:
        entries = read_import_file(path)
        records = validate_entries(
            entries, policy=st.settings.policy, desks=st.settings.desks.keys()
        )
        with st.database.transaction() as session:
            import_customers(session, records, policy=st.settings.policy, at=now)
    except CustomerImportError as err:
        raise SimulationError(f"--customers: {err}", exit_code=2) from err
    return [record.email for record in records]


def _one(
    st: ConnectorState,
    app: Any,
    desk: str,
    path: Path,
    body: bytes,
    headers: Sequence[tuple[str, str]],
    capture: Capture,
    desk_settings: DeskSettings,
) -> dict[str, Any]:
    sent = dict(headers)
    sent.update(_payload_headers(path))
    sent.setdefault("Content-Type", "application/json")
    answer = app.test_client().post(f"/hooks/{desk}", data=body, headers=sent)
    reply = answer.get_json(silent=True) or {}
    if answer.status_code >= 400:
        reason = reply.get("message") or answer.status
        raise SimulationError(f"{path}: {answer.status_code} {reason}", exit_code=1)
    status = reply.get("status")
    if status in ("duplicate", "ignored"):
        return {"status": status}
    start = len(capture.log)
    drain(st)
    writes = [r for r in capture.log[start:] if r["method"] != "GET"]
    with st.database.transaction(read_only=True) as session:
        delivery = session.scalar(select(func.max(InboundDelivery.id)))
        event = session.scalars(
            select(Event).where(Event.delivery_id == delivery).order_by(Event.id.desc())
        ).first()
        decision = dict(event.decision or {}) if event is not None else {}
        actions = list(
            session.scalars(
                select(OutboxAction)
                .join(Event, Event.id == OutboxAction.event_id)
                .where(Event.delivery_id == delivery)
                .order_by(OutboxAction.id)
            )
        )
    if event is not None and event.status != "done":
        return {"status": event.status, "error": event.error}
    priority: Any = next((a.payload["value"] for a in actions if a.kind == "priority"), None)
    level = decision.get("priority_level")
    if priority is None and isinstance(level, str):
        # Nothing written (already at that level, or an agent raised it): the desk's value of
        # the decided level.
        priority = desk_settings.priority.value(PriorityLevel(level))
    tags: list[Any] = next(
        (list(a.payload["tags"]) for a in actions if a.kind == "tags"),  # type: ignore[call-overload]
        [],
    )
    return {
        "status": "processed",
        "plan": decision.get("plan"),
        "category": decision.get("category"),
        "credits": decision.get("credits"),
        "steps": decision.get("steps"),
        "charged": decision.get("charged", 0),
        "approval_required": decision.get("approval_required", False),
        "priority": priority,
        "tags": tags,
        "requests": writes,
    }


def _balances(st: ConnectorState, emails: Sequence[str]) -> dict[str, int]:
    from connector import ledger

    out: dict[str, int] = {}
    with st.database.transaction(read_only=True) as session:
        for email in emails:
            customer_id = find_customer(session, email=email)
            if customer_id is not None:
                out[email] = ledger.balance(session, customer_id)
    return out
