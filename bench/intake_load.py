"""Load generator for bench/intake.py: signed Zendesk deliveries over keep-alive connections.

::

    BENCH_INTAKE_ZENDESK_SECRET=... .venv/bin/python bench/intake_load.py \\
        --url http://127.0.0.1:8000/hooks/zendesk --connections 16 --seconds 10 [--rate 500]

Runs in a process of its own and prints one JSON object (:func:`run`'s result) on stdout.

Every request is a distinct delivery of the connector's trigger body
(``tests/fixtures/zendesk/trigger_created.json``) with its own ticket id and
``X-Zendesk-Webhook-Invocation-Id``, signed when it is built with the current time as its
``X-Zendesk-Webhook-Signature-Timestamp``, so every timestamp is inside the ±5 minute window.

Each connection is one thread with a blocking socket that writes a prebuilt HTTP/1.1 request
and reads the answer by its ``Content-Length``: a few microseconds of Python per request, so
the generator takes little of the two cores from the server under test (``http.client``
costs several times more per request).

* Closed loop (no ``--rate``): each connection sends its next request as soon as the last is
  answered; the rate is the requests answered inside the measured window.
* Open loop (``--rate R``): request *i* is due at ``start + i / R`` whatever happened before;
  its latency runs from when it was due (not from when a free connection sent it), so a
  server that falls behind shows its queue in the percentiles.

The first ``--warmup`` seconds are sent but not measured.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import itertools
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "zendesk" / "trigger_created.json"
ENV_SECRET = "BENCH_INTAKE_ZENDESK_SECRET"
_PLACEHOLDER = "@@TICKET@@"


def trigger_body(
    ticket_id: str,
    *,
    email: str = "owner@shop.example",
    requester_id: str = "5005",
    subject: str | None = None,
    description: str | None = None,
    event: str = "created",
    comment: str | None = None,
    tags: str | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """The fixture's trigger body for ``ticket_id``, from ``requester_id`` (never the
    connector's own user, so the delivery is not ignored as its own), the ticket created and
    updated at ``created_at`` (default: now), its custom fields empty."""
    body: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    body["event"] = event
    when = stamp(created_at or datetime.now(UTC))
    body["ticket"].update(id=ticket_id, created_at=when, updated_at=when)
    body["ticket"]["fields"] = dict.fromkeys(body["ticket"]["fields"], "")
    if subject is not None:
        body["ticket"]["subject"] = subject
    if description is not None:
        body["ticket"]["description"] = description
    if tags is not None:
        body["ticket"]["tags"] = tags
    body["requester"].update(id=requester_id, email=email)
    body["current_user"] = {"id": requester_id}
    if comment is not None:
        body["comment"] = {"body": comment, "public": "true", "author_id": requester_id}
    return body


def stamp(now: datetime) -> str:
    """A signature timestamp as Zendesk writes it (``2026-03-10T10:00:00Z``)."""
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def signature(secret: bytes, timestamp: bytes, body: bytes) -> bytes:
    """``base64(HMAC-SHA256(secret, timestamp + body))``."""
    return base64.b64encode(hmac.new(secret, timestamp + body, hashlib.sha256).digest())


def signed_headers(secret: str, body: bytes, invocation: str, now: datetime) -> dict[str, str]:
    """The headers Zendesk sends with ``body`` at ``now``."""
    ts = stamp(now)
    return {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Signature": signature(secret.encode(), ts.encode(), body).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": ts,
        "X-Zendesk-Webhook-Invocation-Id": invocation,
    }


class Requests:
    """Builds request *n*: body, signature and headers, as raw HTTP/1.1 bytes."""

    def __init__(self, host: str, port: int, path: str, secret: str, tag: str, first: int) -> None:
        text = json.dumps(trigger_body(_PLACEHOLDER), separators=(",", ":"))
        before, after = text.split(_PLACEHOLDER)
        self._before, self._after = before.encode(), after.encode()
        self._secret = secret.encode()
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n" "Content-Type: application/json\r\n"
        ).encode()
        self._tag = tag.encode()
        self._first = first
        self._second = -1
        self._stamp = b""

    def _timestamp(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self._second:  # one strftime a second, not one a request
            self._stamp = stamp(datetime.fromtimestamp(second, UTC)).encode()
            self._second = second
        return self._stamp

    def build(self, n: int) -> bytes:
        ticket = str(self._first + n).encode()
        body = self._before + ticket + self._after
        ts = self._timestamp()
        return b"".join(
            (
                self._head,
                b"Content-Length: %d\r\n" % len(body),
                b"X-Zendesk-Webhook-Signature: " + signature(self._secret, ts, body) + b"\r\n",
                b"X-Zendesk-Webhook-Signature-Timestamp: " + ts + b"\r\n",
                b"X-Zendesk-Webhook-Invocation-Id: " + self._tag + b"-" + ticket + b"\r\n\r\n",
                body,
            )
        )


class Connection:
    """One keep-alive HTTP/1.1 connection with a blocking socket."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.sock: socket.socket | None = None
        self.buffer = bytearray()
        self.reconnects = 0

    def open(self) -> None:
        sock = socket.create_connection(self.address, timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buffer = sock, bytearray()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request``; return the status and body. A connection the server had closed
        while idle is opened again once (the request was not read, so it is sent again)."""
        if self.sock is None:
            self.open()
        try:
            assert self.sock is not None
            self.sock.sendall(request)
            return self._read()
        except (ConnectionError, EOFError):
            self.close()
            self.reconnects += 1
            self.open()
            assert self.sock is not None
            self.sock.sendall(request)
            return self._read()

    def _read(self) -> tuple[int, bytes]:
        assert self.sock is not None
        buffer = self.buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            buffer += chunk
        head = bytes(buffer[:end]).lower()
        status = int(head[9:12])
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError("an answer without Content-Length")
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else len(head)])
        need = end + 4 + length
        while len(buffer) < need:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection mid-answer")
            buffer += chunk
        body = bytes(buffer[end + 4 : need])
        del buffer[:need]
        if b"\r\nconnection: close" in head:
            self.close()
        return status, body


@dataclass
class Tally:
    """What one connection saw (merged over all connections at the end)."""

    latencies: list[float] = field(default_factory=list)
    service: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    accepted: int = 0
    accepted_total: int = 0
    sent_total: int = 0
    others: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (sorted in place); NaN for none."""
    if not values:
        return float("nan")
    values.sort()
    rank = max(1, min(len(values), int(round(q / 100 * len(values) + 0.5))))
    return values[rank - 1]


def run(
    url: str,
    secret: str,
    *,
    connections: int,
    seconds: float,
    warmup: float,
    rate: float | None,
    tag: str,
    first_ticket: int,
) -> dict[str, Any]:
    """Drive ``url`` for ``warmup + seconds``; return the measured window's figures."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    builder = Requests(host, port, path, secret, tag, first_ticket)
    pool = [Connection(host, port) for _ in range(connections)]
    for conn in pool:  # every connection open before the clock starts
        conn.open()
    tallies = [Tally() for _ in pool]
    counter = itertools.count()  # next() on a count is atomic under the GIL
    go = threading.Barrier(connections + 1)
    began = 0.0

    def closed_loop(conn: Connection, tally: Tally) -> None:
        go.wait()
        measure_from, end = began + warmup, began + warmup + seconds
        while True:
            request = builder.build(next(counter))
            sent = time.perf_counter()
            if sent >= end:
                return
            status, body = conn.exchange(request)
            done = time.perf_counter()
            _count(tally, status, body, sent >= measure_from and done <= end, done - sent, None)

    def open_loop(conn: Connection, tally: Tally) -> None:
        assert rate
        go.wait()
        measure_from, end = began + warmup, began + warmup + seconds
        while True:
            n = next(counter)
            due = began + n / rate
            if due >= end:
                return
            request = builder.build(n)
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent = time.perf_counter()
            status, body = conn.exchange(request)
            done = time.perf_counter()
            _count(tally, status, body, due >= measure_from, done - due, done - sent)

    def guarded(target: Any, conn: Connection, tally: Tally) -> None:
        try:
            target(conn, tally)
        except Exception as err:  # noqa: BLE001 - reported in the result, never lost
            tally.errors.append(f"{err.__class__.__name__}: {err}")

    target = open_loop if rate else closed_loop
    threads = [
        threading.Thread(target=guarded, args=(target, conn, tally))
        for conn, tally in zip(pool, tallies, strict=True)
    ]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    go.wait()
    for thread in threads:
        thread.join()
    for conn in pool:
        conn.close()

    latencies = [x for t in tallies for x in t.latencies]
    service = [x for t in tallies for x in t.service]
    statuses: dict[str, int] = {}
    for t in tallies:
        for code, n in t.statuses.items():
            statuses[str(code)] = statuses.get(str(code), 0) + n
    completed = len(latencies)
    return {
        "mode": "open" if rate else "closed",
        "connections": connections,
        "seconds": seconds,
        "target_rate": rate,
        "completed": completed,
        "rate": completed / seconds,
        "accepted": sum(t.accepted for t in tallies),
        "accepted_total": sum(t.accepted_total for t in tallies),
        "sent_total": sum(t.sent_total for t in tallies),
        "statuses": statuses,
        "others": [o for t in tallies for o in t.others][:5],
        "errors": [e for t in tallies for e in t.errors][:5],
        "reconnects": sum(c.reconnects for c in pool),
        "latency_ms": _summary(latencies),
        "service_ms": _summary(service) if service else None,
    }


def _count(
    tally: Tally,
    status: int,
    body: bytes,
    measured: bool,
    latency: float,
    service: float | None,
) -> None:
    tally.sent_total += 1
    ok = status == 200 and b'"accepted"' in body
    tally.accepted_total += ok
    if not ok and len(tally.others) < 3:
        tally.others.append(f"{status} {body[:200]!r}")
    if measured:
        tally.statuses[status] = tally.statuses.get(status, 0) + 1
        tally.accepted += ok
        tally.latencies.append(latency)
        if service is not None:
            tally.service.append(service)


def _summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else float("nan"),
        "mean": sum(ms) / len(ms) if ms else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT/hooks/zendesk")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=None, help="requests/s (open loop)")
    parser.add_argument("--tag", default="bench", help="prefix of the invocation ids")
    parser.add_argument("--first-ticket", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    secret = os.environ.get(ENV_SECRET, "")
    if not secret:
        parser.error(f"{ENV_SECRET} is not set")
    result = run(
        args.url,
        secret,
        connections=args.connections,
        seconds=args.seconds,
        warmup=args.warmup,
        rate=args.rate,
        tag=args.tag,
        first_ticket=args.first_ticket,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
