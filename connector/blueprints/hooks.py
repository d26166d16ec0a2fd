"""``POST /hooks/<desk>``: where help desks deliver ticket events."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from connector.errors import error_body
from connector.extension import state
from connector.intake import receive

hooks_bp = Blueprint("care_hooks", __name__)


@hooks_bp.post("/hooks/<desk>")
def hook(desk: str) -> Response:
    st = state()
    if st.desk(desk) is None:
        return _json(error_body(404, f"Unknown desk {desk!r}."), 404)
    # The cap applies before the body is read whole: a Content-Length over it is refused
    # unread; a chunked body is read up to one byte past it. (Reading exactly up to the cap
    # would silently cut a longer chunked body there: werkzeug stops at the limit quietly.)
    limit = st.max_body_bytes
    body: bytes | None = None
    declared = request.content_length
    if declared is None or declared <= limit:
        request.max_content_length = limit + 1
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:
            body = None
    if body is None or len(body) > limit:
        st.metrics.delivery(desk, 413)
        return _json(error_body(413, f"The body is larger than {limit} bytes."), 413)
    try:
        result = receive(
            st,
            desk,
            request.headers,
            body,
            content_type=request.content_type,
            remote_ip=request.remote_addr,
        )
    except Exception:
        st.metrics.delivery(desk, 500)
        raise
    st.metrics.delivery(desk, result.status, result.body)
    response = _json(result.body, result.status)
    response.headers.update(result.headers)
    return response


@hooks_bp.route("/hooks/<desk>", methods=["GET", "PUT", "PATCH", "DELETE"])
def other_methods(desk: str) -> Response:
    response = _json(error_body(405, "Webhooks are delivered with POST."), 405)
    response.headers["Allow"] = "POST"
    return response


def _json(body: object, status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
