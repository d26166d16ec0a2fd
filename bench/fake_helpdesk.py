"""A fake Zendesk on loopback that answers the connector's write-backs and records them.

::

    .venv/bin/python bench/fake_helpdesk.py --port 8765

Answers ``PUT /api/v2/tickets/{id}`` (priority, notes, replies), ``PUT`` and ``DELETE
/api/v2/tickets/{id}/tags``, ``GET /api/v2/users/{id}`` (a user whose email is made from the
id) and ``GET /api/v2/tickets/{id}/comments`` (none). Every ``PUT`` and ``DELETE`` is
recorded; ``GET /_bench/requests`` returns them as JSON (``[[method, path, body], ...]`` in
arrival order) and ``POST /_bench/reset`` forgets them. It runs in a process of its own
(:func:`running`), so serving it takes no CPU from the process being measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args(argv).port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
