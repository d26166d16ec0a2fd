"""Oversized bodies: no route reads a large body from a client that is not let in.

Every route of the app that takes a body (the webhooks, the approval page, the admin pages
and the admin API), sent a 64 MiB body with no credentials, answers without a 500 and
without reading more than 64 KiB of it: a refusal comes from the Content-Length or the
credentials, before the body. The webhook cap itself, chunked bodies included, is tested in
tests/connector/blueprints/test_hooks_hostile.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.adapters.hostile import Desk
from tests.connector.conftest import CountingBody
from tests.security.pipeline import DESKS

SIZE = 64 * 1024 * 1024
ZENDESK = next(d for d in DESKS if d.key == "zendesk")


@pytest.fixture
def desk() -> Desk:
    """Zendesk alone: the ``app`` of tests/security/conftest.py is built for it."""
    return ZENDESK


def routes(app: Flask) -> Iterator[tuple[str, str]]:
    values = {"desk": "zendesk", "token": "x" * 40, "rest": "x"}
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}):
            path = rule.rule
            for name in rule.arguments:
                path = path.replace(f"<int:{name}>", "1").replace(f"<path:{name}>", "x")
                path = path.replace(f"<{name}>", values.get(name, "x"))
            yield method, path


def test_no_route_reads_a_large_body_from_a_stranger(app: Flask) -> None:
    seen = 0
    for method, path in routes(app):
        for content_type in ("application/json", "application/x-www-form-urlencoded"):
            environ = EnvironBuilder(path=path, method=method, content_type=content_type)
            built = environ.get_environ()
            body = CountingBody(SIZE)
            built.update({"wsgi.input": body, "CONTENT_LENGTH": str(SIZE)})
            _, status, _ = run_wsgi_app(app.wsgi_app, built, buffered=True)
            code = int(status.split()[0])
            assert code < 500, (method, path, status)
            assert body.read_bytes <= 64 * 1024, (method, path, status, body.read_bytes)
            seen += 1
    assert seen >= 20, f"only {seen} routes with a body: the route list is wrong"
