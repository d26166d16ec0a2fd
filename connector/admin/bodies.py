"""Request bodies of the admin console, read only up to a cap.

A ``Content-Length`` over the cap is refused before a byte is read. A body without one
(chunked) is read at most one byte past the cap: werkzeug stops at ``max_content_length``
without an error, so reading exactly up to the cap would take a longer body cut there. The
body read is cached on the request, so ``request.get_json()``, ``request.form`` and webargs
read it from memory afterwards.
"""

from __future__ import annotations

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

__all__ = ["read_capped"]


def read_capped(request: Request, limit: int) -> bytes | None:
    """The request's body when it is at most ``limit`` bytes, else ``None`` (too large).

    A server that neither sends ``Content-Length`` nor marks the input terminated gives an
    empty body (werkzeug's safe fallback): nothing is read.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        return None
    request.max_content_length = limit + 1
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        return None
    return body if len(body) <= limit else None
