"""``GET|POST /approvals/<token>``: the customer's approval page.

Server-rendered, no JavaScript. The POST is protected by a double-submit CSRF token: a random
value in the cookie ``care_csrf`` (HttpOnly, SameSite=Strict, Secure over https, scoped to
the approvals path) repeated in a hidden field of each form, compared in constant time. The
page is never framed (clickjacking of the Approve button), never cached, and sends no
Referer, since its URL is the credential.
"""

from __future__ import annotations

import hmac
import re
import secrets
from pathlib import Path

from flask import Blueprint, Response, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from connector import approval_page
from connector.approval_page import Page, View
from connector.extension import state

approvals_bp = Blueprint(
    "care_approvals",
    __name__,
    template_folder=str(Path(__file__).resolve().parent.parent / "templates"),
)

CSRF_COOKIE = "care_csrf"
CSRF_FIELD = "csrf"
#: The two small form fields fit in far less; anything larger is refused unread.
MAX_FORM_BYTES = 4096
# What secrets.token_urlsafe(32) makes; a cookie of any other shape is replaced.
_CSRF_VALUE = re.compile(r"[A-Za-z0-9_\-]{43}")


@approvals_bp.route("/approvals/<token>", methods=["GET", "POST"])
def approval(token: str) -> Response:
    st = state()
    hint = request.accept_languages.best_match(approval_page.PAGE_LANGUAGES)
    if request.method == "GET":
        return _render(approval_page.show(st, token, lang_hint=hint), token)
    request.max_content_length = MAX_FORM_BYTES
    try:
        form = request.form
    except RequestEntityTooLarge:
        page = approval_page.refused(st, token, lang_hint=hint)
        return _render(page, token, status=413)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not csrf_ok(cookie, form.get(CSRF_FIELD, "")):
        return _render(approval_page.refused(st, token, lang_hint=hint), token)
    page = approval_page.answer(st, token, form.get("answer", ""), lang_hint=hint)
    return _render(page, token)


def csrf_ok(cookie: str, sent: str) -> bool:
    """Whether the CSRF value ``sent`` with a form equals ``cookie`` (a well-formed token),
    compared in constant time."""
    if not _CSRF_VALUE.fullmatch(cookie):
        return False
    return hmac.compare_digest(cookie.encode(), sent.encode("utf-8", "replace"))


def _render(page: Page, token: str, *, status: int | None = None) -> Response:
    csrf = None
    if page.view is View.ASK:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        csrf = cookie if _CSRF_VALUE.fullmatch(cookie) else secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(16)
    html = render_template(
        f"approvals/{'ask' if page.view is View.ASK else 'message'}.html",
        page=page,
        t=approval_page.texts(page),
        csrf=csrf,
        csrf_field=CSRF_FIELD,
        nonce=nonce,
        # The form's target, and the "open the page again" link of the 400 page.
        action=url_for("care_approvals.approval", token=token)
        if page.view in (View.ASK, View.BAD_REQUEST)
        else None,
    )
    response = Response(html, status=status or page.status, mimetype="text/html")
    if csrf is not None:
        response.set_cookie(
            CSRF_COOKIE,
            csrf,
            path=url_for("care_approvals.approval", token="x")[:-1],
            secure=request.is_secure,
            httponly=True,
            samesite="Strict",
        )
    headers = response.headers
    headers["Cache-Control"] = "no-store"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Robots-Tag"] = "noindex"
    headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    if page.view is View.UNAVAILABLE:
        headers["Retry-After"] = str(approval_page.RETRY_AFTER_SECONDS)
    return response
