"""Hostile input against ``POST /hooks/<desk>`` (connector/blueprints/hooks.py), every registered
desk at once, on SQLite and on PostgreSQL.

For any body, content type and headers, with a valid signature computed for each example:
never a 500 (nor a 503: the database is up, so a 503 would mean a delivery the database
refused), and the delivery is stored, whatever the answer, except a body over the cap,
which is refused (413) before it is read. Replays outside a desk's time window are refused;
on desks that sign no time they are taken once. Hypothesis settings: tests/adapters/hostile.py.
"""

from __future__ import annotations

import select as io_select
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from werkzeug.datastructures import Headers
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from connector import create_app
from connector.db import Database
from connector.extension import ConnectorState
from connector.models import Event, InboundDelivery
from tests.adapters.hostile import (
    HOSTILE,
    NOW,
    Desk,
    hostile_bodies,
    huge_string,
    mutated,
    registered_desks,
    texts,
)
from tests.connector.conftest import CountingBody, post_stream

DESKS = registered_desks()
#: Answers the intake may give to a delivery it read.
READ_ANSWERS = {200, 400, 401}
CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/vnd.api+json",
    "application/json; charset=latin-1",
    "text/plain",
    "text/html; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=hostile",
    "application/xml",
    "",
    ";;;",
    "application/json\x7f",
)


@pytest.fixture
def app(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    for desk in DESKS:
        for name, value in desk.env().items():
            monkeypatch.setenv(name, value)
    app = create_app(
        {
            "database": {"url": database.url},
            "desks": {desk.key: desk.section() for desk in DESKS},
        }
    )
    st_: ConnectorState = app.extensions["care_connector"]
    st_.clock = lambda: NOW
    yield app
    st_.database.dispose()


@pytest.fixture(params=DESKS, ids=lambda d: d.key)
def desk(request: pytest.FixtureRequest) -> Desk:
    return request.param  # type: ignore[no-any-return]


def counts(app: Flask) -> tuple[int, int]:
    """(deliveries stored, events stored)."""
    st_: ConnectorState = app.extensions["care_connector"]
    with st_.database.transaction(read_only=True) as session:
        deliveries = session.scalar(select(func.count()).select_from(InboundDelivery)) or 0
        events = session.scalar(select(func.count()).select_from(Event)) or 0
    return deliveries, events


def post(
    app: Flask,
    desk: str,
    body: bytes,
    headers: Headers | dict[str, str],
    content_type: str | None = "application/json",
) -> TestResponse:
    sent = Headers(list(headers.items()))
    if content_type is not None:
        sent["Content-Type"] = content_type
    return app.test_client().post(f"/hooks/{quote(desk, safe='')}", data=body, headers=sent)


def deliver_and_check(
    app: Flask, desk: Desk, body: bytes, headers: Headers | dict[str, str], content_type: str | None
) -> TestResponse:
    """Post one delivery and check the intake's promise: a documented answer, the delivery
    stored, and an accepted delivery's events with it."""
    before = counts(app)
    answer = post(app, desk.key, body, headers, content_type)
    assert answer.status_code in READ_ANSWERS, (answer.status_code, answer.get_data()[:300])
    payload = answer.get_json()
    assert isinstance(payload, dict)
    after = counts(app)
    assert after[0] == before[0] + 1, "the delivery was not stored"
    if answer.status_code == 200 and payload.get("status") == "accepted":
        assert after[1] > before[1], "accepted, but no event stored"
    else:
        assert after[1] == before[1]
    if answer.status_code != 200:
        assert payload["code"] == answer.status_code and payload["message"]
    return answer


# --------------------------------------------------------------------------------------------
# Properties


@settings(HOSTILE, max_examples=25)
@given(data=st.data())
def test_signed_hostile_bodies_are_answered_and_stored(
    app: Flask, desk: Desk, data: st.DataObject
) -> None:
    body, headers = data.draw(hostile_bodies(desk))
    signed = desk.sign(body, headers)
    content_type = data.draw(
        st.one_of(
            st.just(signed.get("Content-Type", "application/json")), st.sampled_from(CONTENT_TYPES)
        )
    )
    deliver_and_check(app, desk, body, signed, content_type)


@settings(HOSTILE, max_examples=15)
@given(data=st.data())
def test_missing_duplicated_and_garbled_headers(
    app: Flask, desk: Desk, data: st.DataObject
) -> None:
    body, unsigned = data.draw(mutated(desk))
    signed = desk.sign(body, unsigned)
    headers = Headers()
    for name, value in signed.items():
        action = data.draw(st.sampled_from(["keep", "drop", "before", "after", "garble"]))
        bogus = data.draw(texts()).replace("\r", " ").replace("\n", " ").replace("\x00", " ")
        if action in ("keep", "after"):
            headers.add(name, value)
        if action in ("before", "after", "garble"):
            headers.add(name, bogus)
        if action == "before":
            headers.add(name, value)
    deliver_and_check(app, desk, body, headers, headers.get("Content-Type", "application/json"))


@settings(HOSTILE, max_examples=2)
@given(data=st.data())
def test_bodies_just_under_the_cap(app: Flask, desk: Desk, data: st.DataObject) -> None:
    cap = app.extensions["care_connector"].max_body_bytes
    body, headers = data.draw(huge_string(desk, (cap - 8 * 1024,)))
    if len(body) > cap:  # a multi-byte unit: cut back under the cap
        body, headers = body[: cap - 1], headers
    deliver_and_check(app, desk, body, desk.sign(body, headers), "application/json")


@settings(HOSTILE, max_examples=10)
@given(name=st.text(min_size=1, max_size=40))
def test_unknown_desk_names_get_404(app: Flask, name: str) -> None:
    if name in {d.key for d in DESKS}:
        return
    answer = app.test_client().post(
        "/hooks/" + quote(name, safe=""), data=b"{}", content_type="application/json"
    )
    # 308: werkzeug's redirect of a path like /hooks/. to its canonical form.
    assert answer.status_code in (308, 404, 405), answer.status_code


# --------------------------------------------------------------------------------------------
# Content types and headers, one by one


def test_every_content_type_is_answered_and_stored(app: Flask, desk: Desk) -> None:
    seed = desk.seeds[0]
    signed = {k: v for k, v in desk.sign(seed.body, seed.headers).items() if k != "Content-Type"}
    for content_type in (*CONTENT_TYPES, None):
        answer = deliver_and_check(app, desk, seed.body, signed, content_type)
        media = (content_type or "").split(";")[0].strip().lower()
        if media not in ("application/json", "application/vnd.api+json"):
            assert answer.status_code == 400, content_type
            assert "JSON" in answer.get_json()["message"]


def test_each_signed_header_missing(app: Flask, desk: Desk) -> None:
    seed = desk.seeds[0]
    signed = desk.sign(seed.body, seed.headers)
    for name in signed:
        left = {k: v for k, v in signed.items() if k != name}
        deliver_and_check(app, desk, seed.body, left, left.get("Content-Type", "application/json"))


# --------------------------------------------------------------------------------------------
# Replays


def test_replay_is_refused_or_taken_once(app: Flask, desk: Desk) -> None:
    """The same delivery again, signed more than the tolerance ago: refused (401) where the
    desk signs a time, else answered "duplicate"; either way no second event."""
    if desk.support is None:
        pytest.skip(f"{desk.key}: no tests/adapters/{desk.key}/support.py to sign with")
    adapter = app.extensions["care_connector"].adapter(desk.key)
    body, headers = desk.support.ticket_created("7301", "r-7301", "a@shop.example", "Hi", "Help")
    fresh = desk.sign(body, headers, at=NOW)
    stale = desk.sign(body, headers, at=NOW - adapter.tolerance - timedelta(seconds=1))
    first = deliver_and_check(app, desk, body, fresh, fresh.get("Content-Type", "application/json"))
    assert first.get_json() == {"status": "accepted"}
    _, events = counts(app)
    again = deliver_and_check(app, desk, body, stale, stale.get("Content-Type", "application/json"))
    if stale != fresh:
        assert again.status_code == 401 and "replay" in again.get_json()["message"]
    else:
        assert again.get_json() == {"status": "duplicate"}
    assert counts(app)[1] == events
    if stale != fresh:
        # A new delivery signed too long ago is refused too (not only a repeated one).
        body2, headers2 = desk.support.ticket_created("7302", "r-7302", "a@shop.example", "Hi", "x")
        old = desk.sign(body2, headers2, at=NOW - adapter.tolerance - timedelta(minutes=1))
        late = deliver_and_check(app, desk, body2, old, old.get("Content-Type", "application/json"))
        assert late.status_code == 401


# --------------------------------------------------------------------------------------------
# The body cap: refused before the body is read whole


class CountReads:
    """WSGI middleware recording how many bytes the app read from ``wsgi.input``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.read = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        stream = environ["wsgi.input"]
        outer = self

        class Counted:
            def read(self, *args: Any) -> bytes:
                chunk: bytes = stream.read(*args)
                outer.read += len(chunk)
                return chunk

            def readline(self, *args: Any) -> bytes:
                line: bytes = stream.readline(*args)
                outer.read += len(line)
                return line

        environ["wsgi.input"] = Counted()
        return self.app(environ, start_response)


def call(app: Flask, stream: CountingBody, **environ: Any) -> tuple[int, Any]:
    """POST ``stream`` to ``/hooks/zendesk`` with the given environ keys and no computed
    Content-Length; the status and JSON."""
    return post_stream(app, "/hooks/zendesk", stream, **environ)


def test_content_length_over_the_cap_is_refused_unread(app: Flask) -> None:
    cap = app.extensions["care_connector"].max_body_bytes
    stream = CountingBody(50 * cap)
    before = counts(app)
    status, payload = call(app, stream, CONTENT_LENGTH=str(50 * cap))
    assert (status, payload["code"]) == (413, 413)
    assert stream.read_bytes == 0
    assert counts(app) == before  # nothing read, nothing stored
    # One byte over is refused unread too.
    stream = CountingBody(cap + 1)
    assert call(app, stream, CONTENT_LENGTH=str(cap + 1))[0] == 413
    assert stream.read_bytes == 0


def test_chunked_body_over_the_cap_is_refused_at_the_cap(app: Flask) -> None:
    """No Content-Length (chunked): the server marks the input terminated
    (``wsgi.input_terminated``, as gunicorn and werkzeug do) and the app stops reading one
    byte past the cap. Reading exactly up to the cap would take a longer body cut there."""
    cap = app.extensions["care_connector"].max_body_bytes
    for size in (cap + 1, 50 * cap):
        stream = CountingBody(size)
        status, payload = call(app, stream, **{"wsgi.input_terminated": True})
        assert (status, payload["code"]) == (413, 413), size
        assert stream.read_bytes == cap + 1


def test_chunked_body_at_the_cap_is_taken(app: Flask) -> None:
    cap = app.extensions["care_connector"].max_body_bytes
    stream = CountingBody(cap)
    before = counts(app)
    status, payload = call(app, stream, **{"wsgi.input_terminated": True})
    assert stream.read_bytes == cap
    assert status == 401 and payload["code"] == 401  # read whole, then refused: unsigned
    assert counts(app)[0] == before[0] + 1


def test_chunked_body_without_a_terminated_input_is_not_read(app: Flask) -> None:
    """A server that neither sends Content-Length nor marks the input terminated gives the
    app an empty body (werkzeug's safe fallback): nothing is read, the empty body is refused."""
    stream = CountingBody(50 * 1024 * 1024)
    status, _ = call(app, stream)
    assert stream.read_bytes == 0
    assert status in (400, 401)


@pytest.fixture
def server(app: Flask) -> Iterator[tuple[int, CountReads]]:
    """The app behind werkzeug's threaded HTTP server on loopback, counting body bytes read."""
    counter = CountReads(app.wsgi_app)
    app.wsgi_app = counter  # type: ignore[method-assign]
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_port, counter
    httpd.shutdown()
    thread.join(5)


def _status_line(sock: socket.socket) -> bytes:
    received = b""
    while b"\r\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received.split(b"\r\n", 1)[0]


def test_over_the_wire_content_length_is_refused_without_waiting(
    server: tuple[int, CountReads], app: Flask
) -> None:
    """Headers announcing 100 MB, and only a few bytes sent: the 413 comes at once."""
    port, counter = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /hooks/zendesk HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{"
        )
        started = time.monotonic()
        status = _status_line(sock)
    assert status.startswith(b"HTTP/1.1 413"), status
    assert time.monotonic() - started < 5
    assert counter.read == 0


def test_over_the_wire_chunked_body_is_cut_at_the_cap(
    server: tuple[int, CountReads], app: Flask
) -> None:
    """Chunks keep coming: the server answers 413 once the cap is passed, having read about
    the cap, not the whole body."""
    port, counter = server
    cap = app.extensions["care_connector"].max_body_bytes
    chunk = b" " * (64 * 1024)
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /hooks/zendesk HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            while sent < 40 * cap:
                sock.sendall(framed)
                sent += len(chunk)
                if io_select.select([sock], [], [], 0)[0]:
                    break  # the answer came: stop sending
        except OSError:
            pass  # the server answered and closed: it reads no more
        status = _status_line(sock)
    assert status.startswith(b"HTTP/1.1 413"), status
    assert counter.read <= cap + 2 * len(framed), counter.read
    assert sent < 40 * cap
