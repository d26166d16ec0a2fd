"""Fake help desks on loopback that answer the connector's write-backs and record them.

Two fakes, each run in a process of its own so that serving takes no CPU from the process
being measured:

* :class:`FakeHelpdesk` (``--port P``): a Zendesk at the root, for bench/intake.py. Answers
  ``PUT /api/v2/tickets/{id}`` (priority, notes, replies), ``PUT`` and ``DELETE
  /api/v2/tickets/{id}/tags``, ``GET /api/v2/users/{id}`` (a user whose email is made from
  the id) and ``GET /api/v2/tickets/{id}/comments`` (none). Every ``PUT`` and ``DELETE`` is
  recorded; ``GET /_bench/requests`` returns them as JSON (``[[method, path, body], ...]`` in
  arrival order) and ``POST /_bench/reset`` forgets them (:func:`running`).
* :class:`FakeDesks` (``--desks --port P --control-port C``): Zendesk, Freshdesk, Zammad and
  Help Scout under ``/zendesk``, ``/freshdesk``, ``/zammad`` and ``/helpscout``, for
  bench/scaleout.py and tests/reliability. Stateful: a ticket's tags, priority, notes and
  replies are kept, so the reads the clients make (tags before a merge, the marker read-back
  after a timeout, the customer of a reply) see the writes. Faults are injected on request:
  a share of calls answered 429 (``Retry-After: 1``) or 500 without being applied, a hang
  longer than the client's timeout on every n-th call (after the call is applied: the worst
  case, a write done whose answer is lost), a fixed latency, and the whole desk down (the
  port closed, open connections dropped) for some seconds. A control server on its own port
  stays up throughout (:class:`DeskControl`, :func:`running_desks`).
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

_TICKET = re.compile(r"/api/v2/tickets/([0-9]+)(/tags|/comments)?")
_USER = re.compile(r"/api/v2/users/([0-9]+)")


class FakeHelpdesk:
    """The WSGI app: answers like Zendesk and keeps what it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        """One request: a write-back is recorded and answered as Zendesk does."""
        path, method = request.path, request.method
        if path == "/_bench/requests" and method == "GET":
            with self.lock:
                return _json(list(self.requests))
        if path == "/_bench/reset" and method == "POST":
            with self.lock:
                self.requests.clear()
            return _json({"ok": True})
        user = _USER.fullmatch(path)
        if user is not None and method == "GET":
            uid = user.group(1)
            return _json(
                {"user": {"id": int(uid), "email": f"user{uid}@bench.example", "name": f"U{uid}"}}
            )
        ticket = _TICKET.fullmatch(path)
        if ticket is None:
            return _json({"error": "RecordNotFound"}, 404)
        tid, tail = ticket.group(1), ticket.group(2)
        if tail == "/comments" and method == "GET":
            return _json({"comments": [], "meta": {"has_more": False}})
        if method not in ("PUT", "DELETE") or tail == "/comments":
            return _json({"error": "InvalidEndpoint"}, 405)
        body = request.get_json(silent=True)
        with self.lock:
            self.requests.append((method, path, body))
        if tail == "/tags":
            tags = body.get("tags", []) if isinstance(body, dict) else []
            return _json({"tags": tags})
        return _json({"ticket": {"id": int(tid)}})


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def serve(port: int) -> None:
    """Serve on ``127.0.0.1:port`` until SIGTERM (threaded, HTTP/1.1 keep-alive)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", port, FakeHelpdesk(), threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("ready", flush=True)
    server.serve_forever()


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running() -> Iterator[str]:
    """Start the fake desk in a process of its own; yield its base URL; stop it on exit."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the fake help desk did not start (exit {process.poll()})")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def stop(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM ``process`` (and its process group), then SIGKILL after ``grace`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def recorded(base_url: str) -> list[tuple[str, str, Any]]:
    """Every write-back the desk at ``base_url`` received, in order."""
    answer = requests.get(f"{base_url}/_bench/requests", timeout=30)
    answer.raise_for_status()
    return [(m, p, b) for m, p, b in answer.json()]


def reset(base_url: str) -> None:
    """Forget the recorded write-backs."""
    requests.post(f"{base_url}/_bench/reset", timeout=30).raise_for_status()


# --------------------------------------------------------------------------------------------
# Four stateful desks with faults (bench/scaleout.py, tests/reliability)

_MARKER = re.compile(r"\[care:([^\]]+)\]")
#: Zammad's default priorities, as ``GET /api/v1/ticket_priorities`` lists them.
ZAMMAD_PRIORITIES = [
    {"id": 1, "name": "1 low", "default_create": False, "active": True},
    {"id": 2, "name": "2 normal", "default_create": True, "active": True},
    {"id": 3, "name": "3 high", "default_create": False, "active": True},
]
_ZAMMAD_PRIORITY_NAMES = {p["id"]: str(p["name"]) for p in ZAMMAD_PRIORITIES}


class _Ticket:
    """What a fake desk keeps of one ticket."""

    __slots__ = ("bodies", "priority", "tags", "version")

    def __init__(self) -> None:
        self.tags: list[str] = []
        self.priority: str | None = None
        self.bodies: list[str] = []  # notes and replies, oldest first
        self.version = 0  # moves on every write (Freshdesk's updated_at)


class _Answer:
    """A fake desk's answer, and the writes it applied."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


class FakeDesks:
    """The four desks' APIs over one state; thread-safe.

    ``writes`` lists every applied write in order: ``{"seq", "at", "desk", "ticket", "kind",
    "value"}`` with ``kind`` one of ``note``, ``reply`` (``value``: the marker in the body),
    ``priority`` (the desk's value) and ``tags`` (the ticket's tags after the write, sorted);
    ``notify`` for a message outside any ticket. ``calls`` counts every request by desk and
    outcome (``ok``, ``429``, ``500``, ``hang``, ``dropped``).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tickets: dict[tuple[str, str], _Ticket] = {}
        self.writes: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.seq = 0
        self.call_number = 0
        self.error_share = 0.0
        self.timeout_every = 0
        self.hang_seconds = 0.0
        self.latency = 0.0
        self.random = random.Random(0)
        self.down = False

    # ---- control

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Set the faults: ``error_share`` (0-1), ``timeout_every`` (0: never),
        ``hang_seconds``, ``latency`` (seconds), ``seed``."""
        with self.lock:
            self.error_share = float(settings.get("error_share", self.error_share))
            self.timeout_every = int(settings.get("timeout_every", self.timeout_every))
            self.hang_seconds = float(settings.get("hang_seconds", self.hang_seconds))
            self.latency = float(settings.get("latency", self.latency))
            if "seed" in settings:
                self.random = random.Random(int(settings["seed"]))
            return self.settings()

    def settings(self) -> dict[str, Any]:
        return {
            "error_share": self.error_share,
            "timeout_every": self.timeout_every,
            "hang_seconds": self.hang_seconds,
            "latency": self.latency,
            "down": self.down,
        }

    def reset(self) -> None:
        with self.lock:
            self.tickets.clear()
            self.writes.clear()
            self.calls.clear()
            self.seq = self.call_number = 0

    def snapshot(self) -> dict[str, Any]:
        """Writes, call counts and every ticket's final state, as JSON."""
        with self.lock:
            return {
                "writes": list(self.writes),
                "calls": dict(self.calls),
                "tickets": {
                    f"{desk}:{tid}": {"tags": sorted(t.tags), "priority": t.priority}
                    for (desk, tid), t in self.tickets.items()
                },
            }

    # ---- one request

    def count(self, desk: str, outcome: str) -> None:
        with self.lock:
            key = f"{desk} {outcome}"
            self.calls[key] = self.calls.get(key, 0) + 1

    def fault(self) -> str | None:
        """The fault this call gets: ``"429"``, ``"500"``, ``"hang"`` or ``None``."""
        with self.lock:
            self.call_number += 1
            if self.error_share and self.random.random() < self.error_share:
                return "429" if self.random.random() < 0.5 else "500"
            if self.timeout_every and self.call_number % self.timeout_every == 0:
                return "hang"
            return None

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[str, _Answer]:
        """Route one desk request; returns the desk and the answer (writes applied)."""
        _, desk, *rest = path.split("/", 2)
        tail = "/" + rest[0] if rest else "/"
        route = _ROUTES.get(desk)
        if route is None:
            return desk, _Answer(404, {"error": "no such desk"})
        with self.lock:
            try:
                return desk, route(self, method, tail, query, body)
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                return desk, _Answer(400, {"error": f"{err.__class__.__name__}: {err}"})

    # ---- state helpers (the lock is held)

    def ticket(self, desk: str, tid: str) -> _Ticket:
        found = self.tickets.get((desk, tid))
        if found is None:
            found = self.tickets[(desk, tid)] = _Ticket()
        return found

    def record(self, desk: str, tid: str, kind: str, value: Any) -> None:
        self.seq += 1
        self.writes.append(
            {
                "seq": self.seq,
                "at": time.time(),
                "desk": desk,
                "ticket": tid,
                "kind": kind,
                "value": value,
            }
        )

    def comment(self, desk: str, tid: str, text: str, public: bool) -> None:
        ticket = self.ticket(desk, tid)
        ticket.bodies.append(text)
        ticket.version += 1
        markers = _MARKER.findall(html.unescape(text))
        self.record(desk, tid, "reply" if public else "note", markers[0] if markers else None)

    def set_tags(self, desk: str, tid: str, tags: list[str]) -> None:
        ticket = self.ticket(desk, tid)
        ticket.tags = list(dict.fromkeys(tags))
        ticket.version += 1
        self.record(desk, tid, "tags", sorted(ticket.tags))

    def set_priority(self, desk: str, tid: str, value: str) -> None:
        ticket = self.ticket(desk, tid)
        ticket.priority = value
        ticket.version += 1
        self.record(desk, tid, "priority", value)


def _id(text: str) -> str:
    if not text.isdigit():
        raise ValueError(f"not an id: {text!r}")
    return text


def _zendesk(desks: FakeDesks, method: str, path: str, query: dict[str, str], body: Any) -> _Answer:
    parts = path.strip("/").split("/")  # api v2 tickets 7 [tags|comments]
    if parts[:2] != ["api", "v2"] or len(parts) < 3:
        return _Answer(404, {"error": "InvalidEndpoint"})
    what, rest = parts[2], parts[3:]
    if what == "users" and len(rest) == 1 and method == "GET":
        uid = _id(rest[0])
        return _Answer(200, {"user": {"id": int(uid), "email": f"user{uid}@bench.example"}})
    if what != "tickets":
        return _Answer(404, {"error": "InvalidEndpoint"})
    if not rest:
        if method == "GET":  # ?external_id=care:<marker> (notify_customer's check)
            wanted = query.get("external_id", "")
            found = [w for w in desks.writes if w["kind"] == "notify" and w["value"] == wanted]
            return _Answer(200, {"tickets": [{"id": 1} for _ in found]})
        if method == "POST":
            desks.record("zendesk", "-", "notify", body["ticket"]["external_id"])
            return _Answer(201, {"ticket": {"id": 1}})
        return _Answer(405, {"error": "method"})
    tid = _id(rest[0])
    ticket = desks.ticket("zendesk", tid)
    if len(rest) == 1:
        if method == "GET":
            return _Answer(200, {"ticket": {"id": int(tid), "priority": ticket.priority}})
        if method == "PUT":
            update = body["ticket"]
            if "comment" in update:
                comment = update["comment"]
                desks.comment("zendesk", tid, str(comment["body"]), bool(comment["public"]))
            if "priority" in update:
                desks.set_priority("zendesk", tid, str(update["priority"]))
            return _Answer(200, {"ticket": {"id": int(tid)}})
    elif rest[1] == "tags" and method in ("PUT", "DELETE"):
        given = [str(t) for t in body["tags"]]
        if method == "PUT":
            desks.set_tags("zendesk", tid, ticket.tags + given)
        else:
            desks.set_tags("zendesk", tid, [t for t in ticket.tags if t not in given])
        return _Answer(200, {"tags": ticket.tags})
    elif rest[1] == "comments" and method == "GET":
        comments = [{"id": n, "body": text} for n, text in enumerate(ticket.bodies)]
        return _Answer(200, {"comments": comments, "meta": {"has_more": False}})
    return _Answer(404, {"error": "InvalidEndpoint"})


def _freshdesk(
    desks: FakeDesks, method: str, path: str, query: dict[str, str], body: Any
) -> _Answer:
    parts = path.strip("/").split("/")  # api v2 tickets 7 [notes|reply|conversations]
    if parts[:2] != ["api", "v2"] or len(parts) < 4:
        return _Answer(404, {"code": "invalid_endpoint"})
    what, key, rest = parts[2], _id(parts[3]), parts[4:]
    if what == "contacts" and not rest and method == "GET":
        return _Answer(200, {"id": int(key), "email": f"user{key}@bench.example", "name": ""})
    if what != "tickets":
        return _Answer(404, {"code": "invalid_endpoint"})
    ticket = desks.ticket("freshdesk", key)
    if not rest:
        if method == "PUT":
            if "priority" in body:
                desks.set_priority("freshdesk", key, str(body["priority"]))
            if "tags" in body:
                desks.set_tags("freshdesk", key, [str(t) for t in body["tags"]])
        elif method != "GET":
            return _Answer(405, {"code": "method"})
        stamp = f"2026-01-01T00:00:00.{ticket.version:06d}Z"
        return _Answer(
            200, {"id": int(key), "tags": list(ticket.tags), "updated_at": stamp, "priority": 2}
        )
    if rest == ["notes"] and method == "POST":
        desks.comment("freshdesk", key, str(body["body"]), False)
        return _Answer(201, {"id": len(ticket.bodies), "private": True})
    if rest == ["reply"] and method == "POST":
        desks.comment("freshdesk", key, str(body["body"]), True)
        return _Answer(201, {"id": len(ticket.bodies), "private": False})
    if rest == ["conversations"] and method == "GET":
        page, size = int(query.get("page", "1")), int(query.get("per_page", "30"))
        items = [{"id": n, "body": text} for n, text in enumerate(ticket.bodies)]
        return _Answer(200, items[(page - 1) * size : page * size])
    return _Answer(404, {"code": "invalid_endpoint"})


def _zammad(desks: FakeDesks, method: str, path: str, query: dict[str, str], body: Any) -> _Answer:
    parts = path.strip("/").split("/")  # api v1 ...
    if parts[:2] != ["api", "v1"] or len(parts) < 3:
        return _Answer(404, {"error": "No route"})
    what, rest = parts[2], parts[3:]
    if what == "ticket_priorities" and method == "GET":
        return _Answer(200, ZAMMAD_PRIORITIES)
    if what == "users" and len(rest) == 1 and method == "GET":
        uid = _id(rest[0])
        user = {"id": int(uid), "email": f"user{uid}@bench.example", "preferences": {}}
        return _Answer(200, user)
    if what == "tickets" and len(rest) == 1:
        tid = _id(rest[0])
        ticket = desks.ticket("zammad", tid)
        if method == "PUT":
            name = _ZAMMAD_PRIORITY_NAMES[int(body["priority_id"])]
            desks.set_priority("zammad", tid, name)
        elif method != "GET":
            return _Answer(405, {"error": "method"})
        # The customer of ticket N is user N + 10^6 (the fake knows no requesters).
        return _Answer(200, {"id": int(tid), "customer_id": int(tid) + 1_000_000})
    if what == "tags" and not rest and method == "GET":
        tid = _id(query["o_id"])
        return _Answer(200, {"tags": list(desks.ticket("zammad", tid).tags)})
    if what == "tags" and rest in (["add"], ["remove"]):
        tid = _id(str(body["o_id"]))
        ticket, item = desks.ticket("zammad", tid), str(body["item"])
        if rest == ["add"] and method == "POST":
            desks.set_tags("zammad", tid, [*ticket.tags, item])
            return _Answer(201, True)
        if rest == ["remove"] and method == "DELETE":
            desks.set_tags("zammad", tid, [t for t in ticket.tags if t != item])
            return _Answer(200, True)
    if what == "ticket_articles" and not rest and method == "POST":
        tid = _id(str(body["ticket_id"]))
        desks.comment("zammad", tid, str(body["body"]), not body.get("internal", False))
        return _Answer(201, {"id": desks.seq})
    if what == "ticket_articles" and rest[:1] == ["by_ticket"] and method == "GET":
        ticket = desks.ticket("zammad", _id(rest[1]))
        return _Answer(200, [{"id": n, "body": text} for n, text in enumerate(ticket.bodies)])
    return _Answer(404, {"error": "No route"})


def _helpscout(
    desks: FakeDesks, method: str, path: str, query: dict[str, str], body: Any
) -> _Answer:
    parts = path.strip("/").split("/")  # v2 ...
    if parts[:1] != ["v2"] or len(parts) < 2:
        return _Answer(404, {"message": "Not Found"})
    if parts[1:] == ["oauth2", "token"] and method == "POST":
        token = {"token_type": "bearer", "access_token": "bench-token", "expires_in": 172800}
        return _Answer(200, token)
    what, rest = parts[1], parts[2:]
    if what == "customers" and len(rest) == 1 and method == "GET":
        uid = _id(rest[0])
        return _Answer(
            200,
            {"id": int(uid), "firstName": "", "emails": [{"value": f"user{uid}@bench.example"}]},
        )
    if what != "conversations" or not rest:
        return _Answer(404, {"message": "Not Found"})
    cid = _id(rest[0])
    ticket = desks.ticket("helpscout", cid)
    if len(rest) == 1 and method == "GET":
        conversation = {
            "id": int(cid),
            "tags": [{"id": n, "tag": tag} for n, tag in enumerate(ticket.tags)],
            "primaryCustomer": {"id": int(cid) + 1_000_000, "type": "customer"},
        }
        return _Answer(200, conversation)
    if rest[1:] == ["tags"] and method == "PUT":
        desks.set_tags("helpscout", cid, [str(t) for t in body["tags"]])
        return _Answer(204)
    if rest[1:] == ["notes"] and method == "POST":
        desks.comment("helpscout", cid, str(body["text"]), False)
        return _Answer(201, None, {"Resource-ID": str(desks.seq)})
    if rest[1:] == ["reply"] and method == "POST":
        desks.comment("helpscout", cid, str(body["text"]), True)
        return _Answer(201, None, {"Resource-ID": str(desks.seq)})
    if rest[1:] == ["threads"] and method == "GET":
        threads = [{"id": n, "type": "note", "body": text} for n, text in enumerate(ticket.bodies)]
        page = {"number": 1, "totalPages": 1, "size": len(threads)}
        return _Answer(200, {"_embedded": {"threads": threads}, "page": page})
    return _Answer(404, {"message": "Not Found"})


_ROUTES = {
    "zendesk": _zendesk,
    "freshdesk": _freshdesk,
    "zammad": _zammad,
    "helpscout": _helpscout,
}


class _DeskHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive; ``server.desks`` is the shared :class:`FakeDesks`."""

    protocol_version = "HTTP/1.1"
    server: _DeskServer

    def setup(self) -> None:
        super().setup()
        # The headers and the body of an answer are two writes: without TCP_NODELAY the
        # second waits for the client's delayed ACK (about 40 ms on Linux loopback).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def _serve(self) -> None:
        desks = self.server.desks
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if desks.down:  # the desk is down: drop the connection, answer nothing
            self.close_connection = True
            desks.count(self.path.split("/")[1], "dropped")
            return
        target = urlsplit(self.path)
        query = dict(parse_qsl(target.query))
        body: Any = None
        if raw:
            kind = self.headers.get("Content-Type", "")
            body = dict(parse_qsl(raw.decode())) if "form" in kind else json.loads(raw)
        desk = target.path.split("/")[1]
        fault = desks.fault()
        if fault in ("429", "500"):
            desks.count(desk, fault)
            status = int(fault)
            extra = {"Retry-After": "1"} if status == 429 else {}
            self._send(_Answer(status, {"error": "injected"}, extra))
            return
        if desks.latency:
            time.sleep(desks.latency)
        desk, answer = desks.handle(self.command, target.path, query, body)
        if fault == "hang":
            desks.count(desk, "hang")
            time.sleep(desks.hang_seconds)
        else:
            desks.count(desk, "ok" if answer.status < 400 else str(answer.status))
        try:
            self._send(answer)
        except OSError:
            self.close_connection = True  # the client gave up waiting

    def _send(self, answer: _Answer) -> None:
        data = b"" if answer.body is None else json.dumps(answer.body).encode()
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve


class _ControlHandler(BaseHTTPRequestHandler):
    """``/_bench/...`` on the control port."""

    protocol_version = "HTTP/1.1"
    server: _DeskServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        desks, path, status = self.server.desks, self.path, 200
        if path == "/_bench/state" and self.command == "GET":
            result: Any = desks.snapshot()
        elif path == "/_bench/faults" and self.command == "POST":
            result = desks.configure(body)
        elif path == "/_bench/reset" and self.command == "POST":
            desks.reset()
            result = {"ok": True}
        elif path == "/_bench/down" and self.command == "POST":
            self.server.owner.take_down(float(body["seconds"]))
            result = {"ok": True}
        else:
            result, status = {"error": f"no {self.command} {path}"}, 404
        data = json.dumps(result).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _serve


class _DeskServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    desks: FakeDesks
    owner: DesksServer


class DesksServer:
    """The desk port and the control port of one :class:`FakeDesks`, in threads."""

    def __init__(self, port: int, control_port: int) -> None:
        self.desks = FakeDesks()
        self.port = port
        self.control = self._server(control_port, _ControlHandler)
        self.api: _DeskServer | None = None
        self._lock = threading.Lock()
        self._listen()

    def _server(self, port: int, handler: type[BaseHTTPRequestHandler]) -> _DeskServer:
        server = _DeskServer(("127.0.0.1", port), handler)
        server.desks, server.owner = self.desks, self
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def _listen(self) -> None:
        for _ in range(100):  # the port may linger for a moment after it was closed
            try:
                self.api = self._server(self.port, _DeskHandler)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"cannot listen on port {self.port} again")

    def take_down(self, seconds: float) -> None:
        """Close the desk port and drop open connections for ``seconds``; then listen
        again (the control port stays up)."""

        def outage() -> None:
            with self._lock:
                self.desks.down = True
                if self.api is not None:
                    self.api.shutdown()
                    self.api.server_close()
                    self.api = None
                time.sleep(seconds)
                self._listen()
                self.desks.down = False

        threading.Thread(target=outage, daemon=True).start()

    def wait(self) -> None:
        """Serve until SIGTERM."""
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()


class DeskControl:
    """The control API of a running :class:`FakeDesks` (see :func:`running_desks`)."""

    def __init__(self, url: str, control_url: str) -> None:
        #: The desks' base URL: desk ``k`` is at ``{url}/{k}``.
        self.url = url
        self.control_url = control_url
        self.session = requests.Session()
        #: The desks' process (its own session), when started by :func:`running_desks`.
        self.pid: int | None = None

    def faults(self, **settings: Any) -> dict[str, Any]:
        """Set faults: ``error_share``, ``timeout_every``, ``hang_seconds``, ``latency``,
        ``seed``."""
        answer = self.session.post(f"{self.control_url}/_bench/faults", json=settings, timeout=30)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def down(self, seconds: float) -> None:
        """Take the desks down for ``seconds`` (returns at once)."""
        answer = self.session.post(
            f"{self.control_url}/_bench/down", json={"seconds": seconds}, timeout=30
        )
        answer.raise_for_status()

    def state(self) -> dict[str, Any]:
        """``{"writes": [...], "calls": {...}, "tickets": {...}}`` (see :class:`FakeDesks`)."""
        answer = self.session.get(f"{self.control_url}/_bench/state", timeout=120)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def reset(self) -> None:
        self.session.post(f"{self.control_url}/_bench/reset", timeout=30).raise_for_status()


@contextmanager
def running_desks(port: int | None = None) -> Iterator[DeskControl]:
    """Start :class:`FakeDesks` in a process of its own; yield its control; stop it on exit."""
    port = port or free_port()
    control = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--desks",
            "--port",
            str(port),
            "--control-port",
            str(control),
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the fake help desks did not start (exit {process.poll()})")
        control_api = DeskControl(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{control}")
        control_api.pid = process.pid
        try:
            yield control_api
        finally:
            control_api.session.close()
    finally:
        stop(process)
        if process.stdout is not None:
            process.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--desks", action="store_true", help="the four stateful desks")
    parser.add_argument("--control-port", type=int, help="with --desks: the control API")
    args = parser.parse_args(argv)
    if not args.desks:
        serve(args.port)
        return 0
    if args.control_port is None:
        parser.error("--desks needs --control-port")
    logging.getLogger().setLevel(logging.ERROR)
    server = DesksServer(args.port, args.control_port)
    print("ready", flush=True)
    server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
