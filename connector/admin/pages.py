"""The admin pages under ``/admin/``: server-rendered HTML over :mod:`connector.admin.service`.

Sign-in takes the same bearer token as the admin API (``[admin]`` in the config), posted in a
form; a good token starts a Flask session holding the token's name, a keyed fingerprint of the
token (so a token removed from or changed in the config ends its sessions) and the sign-in
time (sessions end after :data:`SESSION_HOURS`). A token past its ``expires`` is refused at
sign-in, and a session whose token expires ends on its next request (the connector's clock). A
``read`` token's session sees every page without the change forms and buttons, and any POST
but sign-out is refused (403). Every form carries a CSRF token kept in the session, checked
with the approval page's constant-time helper; the sign-in form has one too (login CSRF).

The session is Flask's signed cookie. When the host app sets no ``secret_key`` (the stand-alone
connector), :class:`AdminSessionInterface` signs the admin pages' cookie with the connector's
own key (:func:`connector.approvals.signing_key`: ``CARE_SECRET_KEY``, else the key kept in
``app_secrets``), names it ``care_admin``, scopes it to the pages' path and leaves every other
request without a session, as Flask does with no key. That cookie is HttpOnly, SameSite=Lax
(unless ``SESSION_COOKIE_SAMESITE`` says otherwise), and Secure when ``SESSION_COOKIE_SECURE``
is set, the connector's public URL (``[server] public_url`` / ``CARE_PUBLIC_URL``) is https,
or the request came over https. A host app that sets a key keeps its own session and its own
cookie settings (``SESSION_COOKIE_*``).

Every change is a POST answered with a redirect (post/redirect/get) and a flashed message. Pages
are never cached or framed and run no script (a strict Content-Security-Policy).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import NullSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from markupsafe import Markup
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from connector.admin import charts, service
from connector.admin.auth import Outcome, check_token, expired_message, read_only_message
from connector.admin.bodies import read_capped
from connector.approvals import signing_key
from connector.blueprints.approvals import csrf_ok
from connector.extension import ConnectorState, state

log = logging.getLogger("care_connector.admin.pages")

admin_pages_bp = Blueprint(
    "care_admin_pages",
    __name__,
    template_folder=str(Path(__file__).resolve().parent.parent / "templates"),
)

#: A session ends this long after sign-in.
SESSION_HOURS = 12
#: The hidden form field holding the CSRF token (the approval page's name).
CSRF_FIELD = "csrf"
#: The largest form accepted (the grant form's reason is the longest field).
MAX_FORM_BYTES = 16 * 1024
#: Seconds a visitor is asked to wait when the database is unreachable.
RETRY_AFTER_SECONDS = 30
#: The session's keys.
_ADMIN, _CSRF = "care_admin", "care_admin_csrf"
#: The cookie's name when the connector provides the session (no host secret key).
COOKIE_NAME = "care_admin"

NAV = (
    ("dashboard", "Dashboard"),
    ("customers", "Customers"),
    ("tickets", "Tickets"),
    ("deliveries", "Deliveries"),
    ("outbox", "Outbox"),
)

R = TypeVar("R")


# --------------------------------------------------------------------------------------------
# The session: Flask's signed cookie, keyed by the connector when the host app has no key.


class AdminSessionInterface(SecureCookieSessionInterface):
    """Flask's cookie session, signed with the connector's key on the admin pages when the
    app has no ``secret_key``; the app's own behaviour everywhere else."""

    def __init__(self, path_prefix: str) -> None:
        self.path_prefix = path_prefix
        self._key: str | None = None
        self._lock = threading.Lock()

    def _owned(self, app: Flask) -> bool:
        """Whether the connector provides the session (the app has no key of its own)."""
        return not app.secret_key

    def _admin_request(self, req: Request) -> bool:
        path = req.path
        return path == self.path_prefix or path.startswith(self.path_prefix + "/")

    def connector_key(self, app: Flask) -> str | None:
        """The connector's signing key, read once; ``None`` while the database is unreachable."""
        if self._key is None:
            with self._lock:
                if self._key is None:
                    st: ConnectorState = app.extensions["care_connector"]
                    try:
                        with st.database.transaction() as db:
                            self._key = signing_key(db)
                    except (OperationalError, DBAPIError):
                        log.error("admin pages: database unreachable, no session key")
                        return None
        return self._key

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not self._owned(app):
            return super().get_signing_serializer(app)
        if not (request and self._admin_request(request)):
            return None  # as Flask does for an app without a key
        key = self.connector_key(app)
        if key is None:
            return None
        return URLSafeTimedSerializer(
            key,
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={
                "key_derivation": self.key_derivation,
                "digest_method": self.digest_method,
            },
        )

    def get_cookie_name(self, app: Flask) -> str:
        return COOKIE_NAME if self._owned(app) else super().get_cookie_name(app)

    def get_cookie_path(self, app: Flask) -> str:
        if not self._owned(app):
            return super().get_cookie_path(app)
        # Under a WSGI mount point the browser sees the pages below it.
        return (request.script_root if request else "") + self.path_prefix

    def get_cookie_httponly(self, app: Flask) -> bool:
        return True if self._owned(app) else super().get_cookie_httponly(app)

    def get_cookie_samesite(self, app: Flask) -> str | None:
        chosen = super().get_cookie_samesite(app)
        return (chosen or "Lax") if self._owned(app) else chosen

    def get_cookie_secure(self, app: Flask) -> bool:
        secure = super().get_cookie_secure(app)
        if secure or not self._owned(app):
            return secure
        st: ConnectorState = app.extensions["care_connector"]
        return st.settings.public_url.startswith("https://") or bool(request and request.is_secure)


@admin_pages_bp.record_once
def _install_session(setup: Any) -> None:
    app: Flask = setup.app
    prefix = (setup.url_prefix or "").rstrip("/") + "/admin"
    # A host app with a session interface of its own keeps it (and must set a secret key).
    if type(app.session_interface) is SecureCookieSessionInterface:
        app.session_interface = AdminSessionInterface(prefix)


# --------------------------------------------------------------------------------------------
# Who is signed in.


@dataclass(frozen=True, slots=True)
class Admin:
    """The signed-in admin: the token's name (the actor of every change), the CSRF token and
    the token's scope (``read``: no change forms, every POST but sign-out refused)."""

    name: str
    csrf: str
    scope: str = "write"

    @property
    def actor(self) -> str:
        return self.name

    @property
    def can_change(self) -> bool:
        return self.scope == "write"


def _fingerprint(token: str) -> str:
    """A keyed digest of ``token``, kept in the session (never the token itself)."""
    key = _session_secret()
    return hmac.new(
        key.encode(), b"care-admin-session:" + token.encode(), hashlib.sha256
    ).hexdigest()


def _session_secret() -> str:
    app = current_app
    if app.secret_key:
        return str(app.secret_key)
    interface = app.session_interface
    key = interface.connector_key(app) if isinstance(interface, AdminSessionInterface) else None
    if key is None:  # a session exists only once the key is known: not reached
        raise RuntimeError("the admin session has no key")
    return key


def _signed_in(st: ConnectorState) -> Admin | None:
    """The admin of this request's session, if it is still valid (see :func:`_session`)."""
    return _session(st)[0]


def _session(st: ConnectorState) -> tuple[Admin | None, str | None]:
    """The admin of this request's session if it is still valid, else ``None`` and, when
    its token has expired, the message saying so.

    Valid: signed in less than :data:`SESSION_HOURS` ago, with a token whose name is still
    configured, whose value is unchanged and which has not expired (the connector's clock);
    the scope is the token's as configured now.
    """
    data = session.get(_ADMIN)
    if not isinstance(data, dict):
        return None, None
    name, fingerprint, at = data.get("name"), data.get("fp"), data.get("at")
    if not (isinstance(name, str) and isinstance(fingerprint, str) and isinstance(at, int)):
        return None, None
    if not 0 <= wall_clock() - at <= SESSION_HOURS * 3600:
        return None, None
    admin = st.settings.admin
    value = admin.tokens.get(name)
    if value is None or not hmac.compare_digest(_fingerprint(value), fingerprint):
        return None, None
    token = admin.token(name)
    if token.expired(st.clock()):
        return None, expired_message(name, token)
    return Admin(name=name, csrf=_csrf_token(), scope=token.scope), None


def wall_clock() -> float:
    """Seconds since the epoch: sessions are timed on the wall clock, as signed cookies are
    (``st.clock`` may be a fixed time in tests and ``simulate``)."""
    return time.time()


def _csrf_token() -> str:
    """The session's CSRF token, made on first use."""
    token = session.get(_CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[_CSRF] = token
    return token


def _csrf_checked() -> bool:
    """Whether the posted form's CSRF field matches the session's token (constant time)."""
    return csrf_ok(str(session.get(_CSRF, "")), request.form.get(CSRF_FIELD, ""))


def _safe_next(value: str | None) -> str | None:
    """``value`` when it is a path of the admin pages on this site, else ``None``."""
    if not value or "\\" in value or any(ord(c) < 32 for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return None
    home = url_for("care_admin_pages.dashboard")
    return value if value.startswith(home) else None


# --------------------------------------------------------------------------------------------
# Every request: the session, the size of a form, sign-in and CSRF; the answer's headers.


@admin_pages_bp.before_request
def _guard() -> BaseResponse | None:
    g.care_nonce = secrets.token_urlsafe(16)
    if isinstance(session, NullSession):
        if isinstance(current_app.session_interface, AdminSessionInterface):
            # The connector's own key could not be read: the database is unreachable.
            return _unavailable()
        return _message(
            503,
            "Sign-in is not available",
            "The application has no secret key to sign sessions with: set Flask's SECRET_KEY.",
        )
    if request.method == "POST":
        # Read now, at most one byte past the cap (chunked too), so a too large form is
        # refused here; the form is then parsed from the bytes read.
        too_large = read_capped(request, MAX_FORM_BYTES) is None
        if not too_large:
            try:
                request.form  # noqa: B018
            except RequestEntityTooLarge:
                too_large = True
        if too_large:
            return _message(413, "Form too large", "The form is larger than this page accepts.")
    if request.endpoint == "care_admin_pages.sign_in":
        return None
    admin, ended = _session(state())
    if admin is None:
        if ended is not None:
            session.pop(_ADMIN, None)
            log.info("admin session ended: %s", ended)
        if request.method == "POST":
            flash(
                (ended + " " if ended else "Your session has ended: sign in again. ")
                + "Nothing was changed.",
                "error",
            )
            return redirect(url_for("care_admin_pages.sign_in"), 303)
        if ended is not None:
            flash(ended, "error")
        back = request.script_root + request.full_path.rstrip("?")
        home = url_for("care_admin_pages.dashboard")
        return redirect(url_for("care_admin_pages.sign_in", next=None if back == home else back))
    g.care_admin = admin
    if request.method == "POST" and not _csrf_checked():
        return _message(
            400,
            "Please try again",
            "The form could not be checked (it may have been open too long, or come from "
            "another site). Nothing was changed. Go back, reload the page and submit again.",
        )
    if (
        request.method == "POST"
        and not admin.can_change
        and request.endpoint != "care_admin_pages.sign_out"
    ):
        log.warning("admin %s (read-only token) refused %s", admin.name, request.path)
        return _message(403, "Read-only token", read_only_message(admin.name))
    return None


@admin_pages_bp.after_request
def _headers(response: BaseResponse) -> BaseResponse:
    nonce = g.get("care_nonce", "")
    headers = response.headers
    headers["Cache-Control"] = "no-store"
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Robots-Tag"] = "noindex"
    headers["Referrer-Policy"] = "same-origin"
    headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response


@admin_pages_bp.errorhandler(OperationalError)
@admin_pages_bp.errorhandler(DBAPIError)
def _database_error(err: Exception) -> BaseResponse:
    log.error("admin pages: database error: %s", err.__class__.__name__)
    return _unavailable()


def _unavailable() -> BaseResponse:
    response = _message(
        503,
        "Please try again in a minute",
        "The database is unreachable right now; nothing was changed.",
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


# --------------------------------------------------------------------------------------------
# Rendering and database helpers.


def _render(
    template: str,
    *,
    status: int = 200,
    section: str | None = None,
    csrf: str | None = None,
    **context: Any,
) -> BaseResponse:
    """``admin/<template>`` as an HTML answer.

    :param csrf: the CSRF token of a page shown before sign-in (the sign-in form); a
        signed-in admin's pages use the session's.
    """
    admin: Admin | None = g.get("care_admin")
    html = render_template(
        f"admin/{template}",
        admin=admin,
        csrf=admin.csrf if admin is not None else csrf,
        csrf_field=CSRF_FIELD,
        nonce=g.get("care_nonce", ""),
        nav=NAV,
        section=section,
        when=_when,
        pretty=_pretty,
        **context,
    )
    return Response(html, status=status, mimetype="text/html")


def _message(status: int, heading: str, text: str) -> BaseResponse:
    return _render("message.html", status=status, heading=heading, text=text)


def _admin_error(err: service.AdminError) -> BaseResponse:
    headings = {404: "Not found", 409: "Not possible now", 422: "Check the input"}
    return _message(err.status, headings.get(err.status, "Refused"), err.message)


def _read(fn: Callable[[Session], R]) -> R:
    """``fn(session)`` in a read-only transaction."""
    with state().database.transaction(read_only=True) as db:
        return fn(db)


def _write(fn: Callable[[Session], R]) -> R:
    """``fn(session)`` in a write transaction (retried on a serialization failure)."""
    return state().database.run_in_transaction(fn)


def _actor() -> str:
    admin: Admin = g.care_admin
    return admin.actor


def _when(value: str | None) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM UTC`` (a date, or nothing, as it is)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pretty(value: Any) -> str:
    """JSON (a value, or text that parses as JSON) indented for reading; other text as is."""
    if isinstance(value, str):
        text: str = value
        try:
            value = json.loads(text)
        except ValueError:
            return text
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _page_number() -> int:
    """The ``page`` query argument: a positive whole number, else 1."""
    page = _number_arg("page")
    return page if page is not None and 0 < page < 1_000_000 else 1


def _number_arg(name: str) -> int | None:
    """A query argument of ASCII digits as an ``int``, else ``None``."""
    raw = request.args.get(name, "")
    return int(raw) if re.fullmatch(r"[0-9]{1,9}", raw) else None


def _arg(name: str, limit: int = 200) -> str:
    return request.args.get(name, "").strip()[:limit]


# --------------------------------------------------------------------------------------------
# Sign-in and sign-out.


@admin_pages_bp.route("/admin/sign-in", methods=["GET", "POST"])
def sign_in() -> BaseResponse:
    st = state()
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if _signed_in(st) is not None:
            return redirect(next_url or url_for("care_admin_pages.dashboard"))
        return _render("sign_in.html", csrf=_csrf_token(), next_url=next_url)
    if not _csrf_checked():
        return _render(
            "sign_in.html",
            status=400,
            csrf=_csrf_token(),
            next_url=next_url,
            error="The form could not be checked (cookies may be blocked, or the page was "
            "open too long). Try again.",
        )
    admin = st.settings.admin
    check = check_token(admin, request.form.get("token", "").strip(), st.clock())
    if not check.valid or check.name is None:
        if check.outcome is Outcome.EXPIRED and check.name and check.token:
            log.warning("admin sign-in with the expired token %s refused", check.name)
            error = expired_message(check.name, check.token)
        else:
            log.warning("admin sign-in refused from %s", request.remote_addr)
            error = (
                "That token is not valid."
                if check.outcome is Outcome.UNKNOWN
                else "No admin token is configured: add one under [admin] tokens in the "
                "configuration, and set its environment variable."
            )
        return _render(
            "sign_in.html", status=401, csrf=_csrf_token(), next_url=next_url, error=error
        )
    name = check.name
    value = admin.tokens[name]
    session.clear()
    session[_ADMIN] = {"name": name, "fp": _fingerprint(value), "at": int(wall_clock())}
    session[_CSRF] = secrets.token_urlsafe(32)
    log.info("admin %s signed in", name)
    return redirect(next_url or url_for("care_admin_pages.dashboard"), 303)


@admin_pages_bp.post("/admin/sign-out")
def sign_out() -> BaseResponse:
    session.clear()
    flash("Signed out.")
    return redirect(url_for("care_admin_pages.sign_in"), 303)


# --------------------------------------------------------------------------------------------
# Dashboard: the charts and what needs attention.

#: The chart windows offered, in days.
CHART_DAYS = (7, 30, 90)


@admin_pages_bp.get("/admin/")
def dashboard() -> BaseResponse:
    st = state()
    policy = st.settings.policy
    asked = _number_arg("days")
    days = asked if asked in CHART_DAYS else 30
    now = st.clock()

    def load(db: Session) -> dict[str, Any]:
        counts = {
            name: service.list_outbox(db, state=name, per_page=1).total
            for name in ("pending", "failed", "dead")
        }
        refused = service.list_deliveries(db, outcome="refused", per_page=1).total
        daily = service.daily_credits(db, days=days, now=now, zone=policy.calendar.zone)
        replies = service.first_reply_by_plan(db, days=days, now=now, plans=tuple(policy.plans))
        return {"counts": counts, "refused": refused, "daily": daily, "replies": replies}

    data = _read(load)
    daily = data["daily"]
    charged_chart = charts.daily_bars(
        [(date.fromisoformat(row["day"]), row["charged"]) for row in daily],
        title=f"Credits charged per day, last {days} days",
    )
    titles = {key: plan.title_en for key, plan in policy.plans.items()}
    replies = data["replies"]
    reply_chart = charts.share_bars(
        [
            charts.Share(
                titles.get(row["plan"], row["plan"]), row["met"], row["missed"], row["open"]
            )
            for row in replies
        ],
        title=f"First-reply targets met per plan, tickets of the last {days} days",
    )
    return _render(
        "dashboard.html",
        section="dashboard",
        days=days,
        chart_days=CHART_DAYS,
        counts=data["counts"],
        refused=data["refused"],
        daily=daily,
        charged_total=sum(row["charged"] for row in daily),
        refunded_total=sum(row["refunded"] for row in daily),
        charged_chart=Markup(charged_chart),
        replies=replies,
        titles=titles,
        reply_chart=Markup(reply_chart),
        desks=sorted(st.adapters),
    )


# --------------------------------------------------------------------------------------------
# Customers: search, the customer's page, credits.


@admin_pages_bp.get("/admin/customers")
def customers() -> BaseResponse:
    query = _arg("q")
    page = _page_number()
    found = _read(lambda db: service.search_customers(db, query, page=page))
    return _render("customers.html", section="customers", query=query, found=found)


@admin_pages_bp.get("/admin/customers/<int:customer_id>")
def customer(customer_id: int) -> BaseResponse:
    try:
        context = _read(lambda db: _customer_context(db, customer_id, _page_number()))
    except service.AdminError as err:
        return _admin_error(err)
    return _render("customer.html", section="customers", form=_blank_form(), **context)


@admin_pages_bp.post("/admin/customers/<int:customer_id>/credits")
def move_credits(customer_id: int) -> BaseResponse:
    """The grant/adjust form: a grant (positive) or an adjustment (signed), with a reason.

    The form's hidden ``key`` (new on every render) is the ledger's idempotency key, so a
    double submit moves the credits once.
    """
    form = {
        "kind": request.form.get("kind", "grant"),
        "amount": request.form.get("amount", "").strip(),
        "reason": request.form.get("reason", "").strip(),
        "key": request.form.get("key", "").strip(),
    }
    errors: dict[str, list[str]] = {}
    if form["kind"] not in ("grant", "adjust"):
        errors.setdefault("form", []).append("Choose grant or adjust.")
    amount = _whole_number(form["amount"])
    if amount is None:
        errors["amount"] = ["A whole number of credits, like 20 (or -5 for an adjustment)."]
    if not _FORM_KEY.fullmatch(form["key"]):
        errors.setdefault("form", []).append("The form is incomplete: reload the page.")
    st = state()
    if not errors:
        assert amount is not None
        now = st.clock()
        move = service.grant_credits if form["kind"] == "grant" else service.adjust_credits
        try:
            entry = _write(
                lambda db: move(
                    db,
                    customer_id,
                    amount,
                    reason=form["reason"],
                    actor=_actor(),
                    now=now,
                    key=f"page:{form['key']}",
                )
            )
        except service.AdminError as err:
            if err.status == 404:
                return _admin_error(err)
            errors = {("amount" if k == "credits" else k): v for k, v in err.errors.items()}
            errors.setdefault("form", [err.message])
            status = err.status
        else:
            verb = "Granted" if form["kind"] == "grant" else "Adjusted by"
            flash(
                f"{verb} {entry['amount']:+d} credits; the balance is now {entry['balance_after']}."
            )
            return redirect(url_for("care_admin_pages.customer", customer_id=customer_id), 303)
    else:
        status = 422
    try:
        context = _read(lambda db: _customer_context(db, customer_id, 1))
    except service.AdminError as err:
        return _admin_error(err)
    return _render(
        "customer.html", status=status, section="customers", form=form, errors=errors, **context
    )


#: The shape of the grant form's idempotency key (what :func:`secrets.token_urlsafe` makes).
_FORM_KEY = re.compile(r"[A-Za-z0-9_\-]{16,64}")


def _whole_number(text: str) -> int | None:
    """``text`` as a signed whole number that fits the ledger (32-bit), else ``None``."""
    if not re.fullmatch(r"[+-]?[0-9]{1,9}", text):
        return None
    return int(text)


def _blank_form() -> dict[str, str]:
    return {"kind": "grant", "amount": "", "reason": "", "key": secrets.token_urlsafe(16)}


def _customer_context(db: Session, customer_id: int, page: int) -> dict[str, Any]:
    st = state()
    policy = st.settings.policy
    detail = service.customer_detail(db, customer_id, policy=policy, now=st.clock())
    entries = service.ledger_page(db, customer_id, page=page, per_page=LEDGER_PER_PAGE)
    audit = service.audit_page(db, target=f"customer:{customer_id}", per_page=10)
    return {"c": detail, "entries": entries, "audit": audit}


#: Ledger entries per page on the customer's page.
LEDGER_PER_PAGE = 25


# --------------------------------------------------------------------------------------------
# Tickets: find one, and its decision step by step.


@admin_pages_bp.get("/admin/tickets")
def tickets() -> BaseResponse:
    desk = _arg("desk")
    ref = _arg("ref")
    page = _page_number()
    found = _read(
        lambda db: service.list_tickets(db, desk=desk or None, external_id=ref or None, page=page)
    )
    if ref and found.total == 1:
        return redirect(url_for("care_admin_pages.ticket", ticket_id=found.items[0]["id"]))
    return _render(
        "tickets.html",
        section="tickets",
        desk=desk,
        ref=ref,
        found=found,
        desks=sorted(state().adapters),
    )


@admin_pages_bp.get("/admin/tickets/<int:ticket_id>")
def ticket(ticket_id: int) -> BaseResponse:
    policy = state().settings.policy
    try:
        detail = _read(lambda db: service.ticket_detail(db, ticket_id, policy=policy))
    except service.AdminError as err:
        return _admin_error(err)
    return _render("ticket.html", section="tickets", t=detail)


# --------------------------------------------------------------------------------------------
# Deliveries: the raw webhooks, and replaying one.

#: The outcomes a delivery can have (the list's filter).
DELIVERY_OUTCOMES = ("accepted", "duplicate", "ignored", "refused", "failed")


@admin_pages_bp.get("/admin/deliveries")
def deliveries() -> BaseResponse:
    desk = _arg("desk")
    outcome = _arg("outcome")
    if outcome not in DELIVERY_OUTCOMES:
        outcome = ""
    page = _page_number()
    found = _read(
        lambda db: service.list_deliveries(
            db, desk=desk or None, outcome=outcome or None, page=page
        )
    )
    return _render(
        "deliveries.html",
        section="deliveries",
        desk=desk,
        outcome=outcome,
        outcomes=DELIVERY_OUTCOMES,
        found=found,
        desks=sorted(state().adapters),
    )


@admin_pages_bp.get("/admin/deliveries/<int:delivery_id>")
def delivery(delivery_id: int) -> BaseResponse:
    adapters = state().adapters
    try:
        detail = _read(lambda db: service.delivery_detail(db, delivery_id, adapters=adapters))
    except service.AdminError as err:
        return _admin_error(err)
    return _render("delivery.html", section="deliveries", d=detail)


@admin_pages_bp.post("/admin/deliveries/<int:delivery_id>/replay")
def replay(delivery_id: int) -> BaseResponse:
    try:
        done = service.replay_delivery(state(), delivery_id, actor=_actor())
    except service.AdminError as err:
        return _admin_error(err)
    result = done["result"]
    said = result.get("status") or result.get("message") or ""
    events = len(done["events"])
    flash(
        f"Replayed delivery {delivery_id}: the intake answered {done['status_code']}"
        + (f" ({said})" if said else "")
        + f"; {events} event{'s' if events != 1 else ''} set pending.",
        "message" if done["status_code"] < 400 else "error",
    )
    return redirect(url_for("care_admin_pages.delivery", delivery_id=delivery_id), 303)


# --------------------------------------------------------------------------------------------
# Outbox: the write-backs, retrying and cancelling them.

#: The outbox tabs, in order, with their labels.
OUTBOX_TABS = (
    ("pending", "Pending"),
    ("failed", "Failed, retrying"),
    ("dead", "Dead-lettered"),
    ("sent", "Sent"),
    ("cancelled", "Cancelled"),
    ("all", "All"),
)


@admin_pages_bp.get("/admin/outbox")
def outbox() -> BaseResponse:
    tab = _arg("state") or "pending"
    if tab not in service.OUTBOX_STATES:
        tab = "pending"
    desk = _arg("desk")
    page = _page_number()

    def load(db: Session) -> tuple[service.Page, dict[str, int]]:
        found = service.list_outbox(db, state=tab, desk=desk or None, page=page)
        counts = {
            name: service.list_outbox(db, state=name, desk=desk or None, per_page=1).total
            for name in ("pending", "failed", "dead")
        }
        return found, counts

    found, counts = _read(load)
    return _render(
        "outbox.html",
        section="outbox",
        tab=tab,
        tabs=OUTBOX_TABS,
        counts=counts,
        desk=desk,
        found=found,
        desks=sorted(state().adapters),
        here=request.full_path.rstrip("?"),
    )


@admin_pages_bp.get("/admin/outbox/<int:action_id>")
def outbox_action(action_id: int) -> BaseResponse:
    try:
        detail = _read(lambda db: service.outbox_detail(db, action_id))
    except service.AdminError as err:
        return _admin_error(err)
    return _render("outbox_action.html", section="outbox", a=detail, here=request.path)


@admin_pages_bp.post("/admin/outbox/<int:action_id>/retry")
def retry(action_id: int) -> BaseResponse:
    return _outbox_change(action_id, service.retry_outbox, "queued to be sent again now")


@admin_pages_bp.post("/admin/outbox/<int:action_id>/cancel")
def cancel(action_id: int) -> BaseResponse:
    return _outbox_change(action_id, service.cancel_outbox, "cancelled: it will not be sent")


def _outbox_change(
    action_id: int, change: Callable[..., dict[str, Any]], done: str
) -> BaseResponse:
    now = state().clock()
    back = _safe_next(request.form.get("next")) or url_for(
        "care_admin_pages.outbox_action", action_id=action_id
    )
    try:
        _write(lambda db: change(db, action_id, actor=_actor(), now=now))
    except service.AdminError as err:
        if err.status == 404:
            return _admin_error(err)
        flash(err.message, "error")
    else:
        flash(f"Write-back {action_id} {done}.")
    return redirect(back, 303)
