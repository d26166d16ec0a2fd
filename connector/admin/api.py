# flask-smorest ships no type hints, so its decorators are untyped to mypy.
# mypy: disable-error-code="untyped-decorator"
"""The admin JSON API under ``/admin/api/``, documented at ``/admin/api/openapi.json``.

Every request needs ``Authorization: Bearer <token>`` with one of the ``[admin] tokens``
(compared in constant time); a missing, wrong or expired token, or none configured, is
answered 401. A ``read`` token may only GET (and HEAD): any other method is answered 403.
A body over ``[admin] max_body_bytes`` is answered 413 before it is read whole (checked after
the token, so a stranger's body is never read). The token's name is the actor recorded on
every change. Views only parse the request and
call :mod:`connector.admin.service`; errors are answered in the connector's one JSON shape
``{"code", "status", "message", "errors"}``.

flask-smorest generates the OpenAPI document from the views and
:mod:`connector.admin.schemas`. Its :class:`~flask_smorest.Api` is created per app by
:func:`init_admin_api`, under its own config prefix (``CARE_ADMIN_``), and is kept to this
blueprint: it registers no application-wide error handler and no documentation blueprint
(the document is served here, behind the token), so a host app's own routes and error pages,
or its own flask-smorest Api, are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import flask
from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from flask_smorest import Api, Blueprint
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    NotFound,
    default_exceptions,
)

from adapters.base import flatten_errors
from connector import __version__
from connector.admin import schemas, service
from connector.admin.auth import (
    Outcome,
    bearer_token,
    check_token,
    expired_message,
    read_only_message,
)
from connector.admin.bodies import read_capped
from connector.admin.service import AdminError
from connector.errors import error_body
from connector.extension import ConnectorState, state
from rules.entitlements import local_day

__all__ = ["AdminApi", "admin_api_bp", "init_admin_api"]

log = logging.getLogger("care_connector.admin.api")

#: Where the API is mounted, below ``CARE_URL_PREFIX``.
API_PATH = "/admin/api"
#: Seconds a client is asked to wait when the database is unreachable.
RETRY_AFTER_SECONDS = 30

admin_api_bp = Blueprint(
    "care_admin_api",
    __name__,
    description="The Care Connector's admin API: customers, credits, tickets, deliveries, "
    "write-backs.",
)


class AdminApi(Api):  # type: ignore[misc]
    """flask-smorest's Api kept to the admin blueprint.

    It registers no application-wide ``HTTPException`` handler (the blueprint answers its
    own errors) and no documentation blueprint (the blueprint serves the document, behind
    the token).
    """

    def _register_doc_blueprint(self) -> None:
        pass

    def _register_error_handlers(self) -> None:
        pass


def init_admin_api(app: Flask, prefix: str = "") -> AdminApi:
    """Create the app's admin Api and register the blueprint under ``prefix + /admin/api``.

    Config keys flask-smorest reads are prefixed ``CARE_ADMIN_`` (``CARE_ADMIN_API_TITLE``...),
    so they never clash with a host app's own Api.
    """
    api = AdminApi(
        app,
        config_prefix="CARE_ADMIN_",
        spec_kwargs={
            "title": "Care Connector admin API",
            "version": __version__,
            "openapi_version": "3.0.3",
            "security": [{"bearer": []}],
            "info": {
                "description": "Bearer tokens are named in the [admin] section of the "
                "connector's config; the name is recorded as the actor of every change. "
                'A token of scope "read" may only GET; a token past its expiry is refused.'
            },
        },
    )
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    api.spec.components.response(
        "UNAUTHORIZED",
        {
            "description": "No token, a wrong or expired one, or none configured",
            "content": {"application/json": {"schema": api.ERROR_SCHEMA}},
        },
    )
    api.spec.components.response(
        "FORBIDDEN",
        {
            "description": 'A token of scope "read": it may only GET',
            "content": {"application/json": {"schema": api.ERROR_SCHEMA}},
        },
    )
    api.spec.components.response(
        "TOO_LARGE",
        {
            "description": "The body is larger than [admin] max_body_bytes",
            "content": {"application/json": {"schema": api.ERROR_SCHEMA}},
        },
    )
    api.register_blueprint(admin_api_bp, url_prefix=prefix + API_PATH)
    app.extensions["care_connector_admin_api"] = api
    return api


# --------------------------------------------------------------------------------------------
# Authentication, errors, the document


_REALM = 'Bearer realm="care-connector admin"'


@admin_api_bp.before_request
def _authenticate() -> ResponseReturnValue | None:
    """The token (401), then its scope (403), then the body's size (413), in that order: a
    body is read only for a token allowed to send it."""
    st = state()
    admin = st.settings.admin
    check = check_token(admin, bearer_token(request.headers.get("Authorization")), st.clock())
    if check.outcome is Outcome.EXPIRED and check.name is not None and check.token is not None:
        log.warning("admin API: expired token %s refused", check.name)
        response = _error(401, expired_message(check.name, check.token))
        response.headers["WWW-Authenticate"] = (
            f'{_REALM}, error="invalid_token", error_description="The token expired"'
        )
        return response
    if not check.valid or check.name is None:
        message = (
            "No admin token is configured: set [admin] tokens and their variables."
            if check.outcome is Outcome.NONE_CONFIGURED
            else "A valid admin token is required: Authorization: Bearer <token>."
        )
        response = _error(401, message)
        response.headers["WWW-Authenticate"] = _REALM
        return response
    if not check.allows(request.method):
        response = _error(403, read_only_message(check.name))
        response.headers["WWW-Authenticate"] = f'{_REALM}, error="insufficient_scope"'
        return response
    g.care_admin_actor = check.name
    limit = admin.max_body_bytes
    if read_capped(request, limit) is None:
        return _error(
            413, f"The body is larger than {limit} bytes (the [admin] max_body_bytes cap)."
        )
    return None


def _error(code: int, message: str, errors: dict[str, list[str]] | None = None) -> Response:
    response = jsonify(error_body(code, message, errors))
    response.status_code = code
    return response


def _webargs_errors(messages: Any) -> dict[str, list[str]]:
    """webargs' ``{"json": {...}, "query": {...}}`` as ``{"credits": [..], "query.page": [..]}``."""
    if not isinstance(messages, dict):
        return flatten_errors(messages)
    out: dict[str, list[str]] = {}
    for location, found in messages.items():
        out.update(flatten_errors(found, "" if location == "json" else str(location)))
    return out


@admin_api_bp.errorhandler(AdminError)
def _admin_error(err: AdminError) -> Response:
    return _error(err.status, err.message, err.errors)


@admin_api_bp.errorhandler(OperationalError)
def _database_down(err: OperationalError) -> Response:
    log.error("database unreachable in the admin API: %s", err.__class__.__name__)
    response = _error(503, "The database is unreachable; retry later.")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@admin_api_bp.errorhandler(HTTPException)
def _http_error(err: HTTPException) -> Response:
    code = err.code or 500
    data = getattr(err, "data", None) or {}
    if isinstance(err, InternalServerError):
        original = err.original_exception
        if original is not None:
            log.error("admin API error", exc_info=original)
        message = "The admin API failed on this request; the error is logged."
    elif code == 422:
        message = "The request is not valid: see errors."
    elif code == 400 and data:
        message = "The request could not be read: see errors."
    else:
        message = err.description or HTTPException.description or ""
    errors = _webargs_errors(data.get("messages", {})) if data else {}
    response = _error(code, str(message), errors)
    for key, value in (data.get("headers") or {}).items():
        response.headers[key] = value
    if isinstance(err, MethodNotAllowed) and err.valid_methods:
        response.headers["Allow"] = ", ".join(err.valid_methods)
    return response


# Flask looks for a handler of the error's code before one of its class, the app's included:
# registering ours per code keeps a host app's own 404 or 500 page away from the API.
for _code in default_exceptions:
    admin_api_bp.register_error_handler(_code, _http_error)


def _openapi_json() -> Response:
    api: AdminApi = flask.current_app.extensions["care_connector_admin_api"]
    return jsonify(api.spec.to_dict())


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _unknown(rest: str) -> Response:
    """Any other path below the API: 405 when the path exists for other methods, else 404."""
    urls = flask.current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in _METHODS:
        try:
            endpoint, _ = urls.match(request.path, method=method)
        except HTTPException:
            continue
        if endpoint != f"{admin_api_bp.name}._unknown":
            allowed.append(method)
    if allowed:
        raise MethodNotAllowed(valid_methods=allowed)
    raise NotFound(f"No admin API resource at {request.path}.")


# Served outside the documented operations (plain Flask rules on the same blueprint, so the
# token check and the error shape apply).
flask.Blueprint.add_url_rule(admin_api_bp, "/openapi.json", "openapi_json", _openapi_json)
flask.Blueprint.add_url_rule(
    admin_api_bp, "/<path:rest>", "_unknown", _unknown, methods=[*_METHODS]
)


def _st() -> ConnectorState:
    return state()


def _actor() -> str:
    return str(g.care_admin_actor)


def _now() -> datetime:
    return _st().clock()


def _today() -> date:
    st = _st()
    return local_day(st.clock(), st.settings.policy.calendar.zone)


def _changes(view: Callable[..., Any]) -> Callable[..., Any]:
    """Document what every change operation may also answer: 403 for a ``read`` token, 413
    for a body over the cap."""
    view = admin_api_bp.alt_response(403, response="FORBIDDEN")(view)
    return admin_api_bp.alt_response(413, response="TOO_LARGE")(view)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Customers


@admin_api_bp.route("/customers")
@admin_api_bp.arguments(schemas.CustomerSearchQuery, location="query")
@admin_api_bp.response(200, schemas.CustomerPage)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
def customers(args: dict[str, Any]) -> dict[str, Any]:
    """Search customers by email or name.

    A case-insensitive part of the email or name; an empty ``q`` lists every customer.
    """
    with _st().database.transaction(read_only=True) as session:
        return service.search_customers(
            session,
            args["q"],
            page=args["page"],
            per_page=args["per_page"],
            include_erased=args["include_erased"],
        ).as_dict()


@admin_api_bp.route("/customers/import", methods=["POST"])
@_changes
@admin_api_bp.arguments(schemas.ImportRequest)
@admin_api_bp.response(200, schemas.ImportCountsSchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
def import_customers(body: dict[str, Any]) -> dict[str, int]:
    """Import customers (the CLI's import file).

    Same rules as ``care-connector customers import``: any invalid entry and nothing is
    imported (422 naming the email and the field).
    """
    st = _st()

    def run(session: Any) -> dict[str, int]:
        return service.import_customers_json(
            session,
            body,
            policy=st.settings.policy,
            desks=st.settings.desks.keys(),
            actor=_actor(),
            now=st.clock(),
        )

    return st.database.run_in_transaction(run)


@admin_api_bp.route("/customers/<int:customer_id>")
@admin_api_bp.response(200, schemas.CustomerDetailSchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
def customer(customer_id: int) -> dict[str, Any]:
    """A customer: entitlements, plan today, quota used, balance, latest tickets."""
    st = _st()
    with st.database.transaction(read_only=True) as session:
        return service.customer_detail(
            session, customer_id, policy=st.settings.policy, now=st.clock()
        )


@admin_api_bp.route("/customers/<int:customer_id>/ledger")
@admin_api_bp.arguments(schemas.PageQuery, location="query")
@admin_api_bp.response(200, schemas.EntryPage)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
def customer_ledger(args: dict[str, Any], customer_id: int) -> dict[str, Any]:
    """A customer's ledger entries, newest first."""
    with _st().database.transaction(read_only=True) as session:
        return service.ledger_page(
            session, customer_id, page=args["page"], per_page=args["per_page"]
        ).as_dict()


@admin_api_bp.route("/customers/<int:customer_id>/grants", methods=["POST"])
@_changes
@admin_api_bp.arguments(schemas.GrantRequest)
@admin_api_bp.response(201, schemas.EntrySchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
@admin_api_bp.alt_response(409, schema=schemas.ErrorSchema)
def grant(body: dict[str, Any], customer_id: int) -> dict[str, Any]:
    """Grant credits, with a reason.

    ``key`` makes the request safe to repeat: the same key returns the first entry.
    """
    st = _st()
    return st.database.run_in_transaction(
        lambda session: service.grant_credits(
            session,
            customer_id,
            body["credits"],
            reason=body["reason"],
            actor=_actor(),
            now=st.clock(),
            key=body["key"],
        )
    )


@admin_api_bp.route("/customers/<int:customer_id>/adjustments", methods=["POST"])
@_changes
@admin_api_bp.arguments(schemas.AdjustmentRequest)
@admin_api_bp.response(201, schemas.EntrySchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
@admin_api_bp.alt_response(409, schema=schemas.ErrorSchema)
def adjust(body: dict[str, Any], customer_id: int) -> dict[str, Any]:
    """Adjust the balance by a signed amount, with a reason (409 below zero)."""
    st = _st()
    return st.database.run_in_transaction(
        lambda session: service.adjust_credits(
            session,
            customer_id,
            body["amount"],
            reason=body["reason"],
            actor=_actor(),
            now=st.clock(),
            key=body["key"],
        )
    )


@admin_api_bp.route("/customers/<int:customer_id>/personal-data")
@admin_api_bp.response(200, schemas.PersonalDataSchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
def personal_data(customer_id: int) -> dict[str, Any]:
    """Everything held about a customer, as JSON (a data subject's export)."""
    st = _st()
    with st.database.transaction() as session:
        data = service.export_personal_data(session, customer_id)
        service.record(
            session,
            actor=_actor(),
            action="customer.export",
            target=f"customer:{customer_id}",
            now=st.clock(),
        )
        return data


@admin_api_bp.route("/customers/<int:customer_id>/erasure", methods=["POST"])
@_changes
@admin_api_bp.response(200, schemas.ErasureSchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
@admin_api_bp.alt_response(409, schema=schemas.ErrorSchema)
def erasure(customer_id: int) -> dict[str, Any]:
    """Erase a customer's personal data; the ledger keeps anonymised entries.

    Balances and ``credits verify`` still add up. 409 when already erased.
    """
    st = _st()
    return st.database.run_in_transaction(
        lambda session: service.erase_customer(session, customer_id, actor=_actor(), now=st.clock())
    )


@admin_api_bp.route("/subscriptions/<int:subscription_id>/end", methods=["POST"])
@_changes
@admin_api_bp.arguments(schemas.EndRequest)
@admin_api_bp.response(200, schemas.SubscriptionSchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
def end_subscription(body: dict[str, Any], subscription_id: int) -> dict[str, Any]:
    """End a subscription early: ``last_day`` (default today) is its last day included."""
    st = _st()
    last_day = body["last_day"] or _today()
    return st.database.run_in_transaction(
        lambda session: service.end_subscription(
            session, subscription_id, last_day=last_day, actor=_actor(), now=st.clock()
        )
    )


@admin_api_bp.route("/licenses/<int:license_id>/end", methods=["POST"])
@_changes
@admin_api_bp.arguments(schemas.EndRequest)
@admin_api_bp.response(200, schemas.LicenseSchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
def end_license(body: dict[str, Any], license_id: int) -> dict[str, Any]:
    """End what a license grants early: its support periods stop after ``last_day``."""
    st = _st()
    last_day = body["last_day"] or _today()
    return st.database.run_in_transaction(
        lambda session: service.end_license(
            session, license_id, last_day=last_day, actor=_actor(), now=st.clock()
        )
    )


# --------------------------------------------------------------------------------------------
# Ledger


@admin_api_bp.route("/ledger/<int:entry_id>/reverse", methods=["POST"])
@_changes
@admin_api_bp.arguments(schemas.ReverseRequest)
@admin_api_bp.response(201, schemas.EntrySchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
@admin_api_bp.alt_response(409, schema=schemas.ErrorSchema)
def reverse(body: dict[str, Any], entry_id: int) -> dict[str, Any]:
    """Undo a ledger entry with an opposite adjustment (once per entry)."""
    st = _st()
    return st.database.run_in_transaction(
        lambda session: service.reverse_entry(
            session, entry_id, reason=body["reason"], actor=_actor(), now=st.clock()
        )
    )


@admin_api_bp.route("/ledger/export.csv")
@admin_api_bp.arguments(schemas.LedgerExportQuery, location="query")
@admin_api_bp.response(200, content_type="text/csv", description="Ledger entries as CSV")
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
def ledger_export(args: dict[str, Any]) -> Response:
    """Ledger entries as CSV, oldest first, optionally of one customer and a time range."""
    st = _st()
    with st.database.transaction(read_only=True) as session:
        text = service.ledger_csv(
            session,
            customer_id=args.get("customer_id"),
            since=args.get("since"),
            until=args.get("until"),
        )
    stamp = st.clock().strftime("%Y%m%d-%H%M%S")
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="ledger-{stamp}.csv"'},
    )


# --------------------------------------------------------------------------------------------
# Tickets


@admin_api_bp.route("/tickets")
@admin_api_bp.arguments(schemas.TicketQuery, location="query")
@admin_api_bp.response(200, schemas.TicketPage)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
def tickets(args: dict[str, Any]) -> dict[str, Any]:
    """Tickets, newest first, by customer, desk or the desk's ticket id."""
    with _st().database.transaction(read_only=True) as session:
        return service.list_tickets(
            session,
            customer_id=args.get("customer_id"),
            desk=args.get("desk"),
            external_id=args.get("external_id"),
            page=args["page"],
            per_page=args["per_page"],
        ).as_dict()


@admin_api_bp.route("/tickets/<int:ticket_id>")
@admin_api_bp.response(200, schemas.TicketDetailSchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
def ticket(ticket_id: int) -> dict[str, Any]:
    """A ticket: decision, estimate, approval, ledger entries, write-backs, and the decision
    explained step by step."""
    st = _st()
    with st.database.transaction(read_only=True) as session:
        return service.ticket_detail(session, ticket_id, policy=st.settings.policy)


# --------------------------------------------------------------------------------------------
# Deliveries


@admin_api_bp.route("/deliveries")
@admin_api_bp.arguments(schemas.DeliveryQuery, location="query")
@admin_api_bp.response(200, schemas.DeliveryPage)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
def deliveries(args: dict[str, Any]) -> dict[str, Any]:
    """Raw webhook deliveries, newest first."""
    with _st().database.transaction(read_only=True) as session:
        return service.list_deliveries(
            session,
            desk=args.get("desk"),
            outcome=args.get("outcome"),
            page=args["page"],
            per_page=args["per_page"],
        ).as_dict()


@admin_api_bp.route("/deliveries/<int:delivery_id>")
@admin_api_bp.response(200, schemas.DeliveryDetailSchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
def delivery(delivery_id: int) -> dict[str, Any]:
    """A delivery: headers (secrets masked), body, answer, error, and the signature checked
    again."""
    st = _st()
    with st.database.transaction(read_only=True) as session:
        return service.delivery_detail(session, delivery_id, adapters=st.adapters)


@admin_api_bp.route("/deliveries/<int:delivery_id>/replay", methods=["POST"])
@_changes
@admin_api_bp.response(200, schemas.ReplaySchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
def replay(delivery_id: int) -> dict[str, Any]:
    """Take a stored delivery again (as ``care-connector replay``).

    ``status_code`` is the intake's answer now: 200 accepted or duplicate, 401 when the
    signature does not hold. Events already taken are not duplicated.
    """
    return service.replay_delivery(_st(), delivery_id, actor=_actor())


# --------------------------------------------------------------------------------------------
# Outbox


@admin_api_bp.route("/outbox")
@admin_api_bp.arguments(schemas.OutboxQuery, location="query")
@admin_api_bp.response(200, schemas.OutboxPage)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
def outbox(args: dict[str, Any]) -> dict[str, Any]:
    """Write-backs by state: pending, failed (retrying), dead (dead-lettered), ..."""
    with _st().database.transaction(read_only=True) as session:
        return service.list_outbox(
            session,
            state=args["state"],
            desk=args.get("desk"),
            page=args["page"],
            per_page=args["per_page"],
        ).as_dict()


@admin_api_bp.route("/outbox/<int:action_id>")
@admin_api_bp.response(200, schemas.OutboxDetailSchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
def outbox_action(action_id: int) -> dict[str, Any]:
    """One write-back."""
    with _st().database.transaction(read_only=True) as session:
        return service.outbox_detail(session, action_id)


@admin_api_bp.route("/outbox/<int:action_id>/retry", methods=["POST"])
@_changes
@admin_api_bp.response(200, schemas.OutboxSchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
@admin_api_bp.alt_response(409, schema=schemas.ErrorSchema)
def retry(action_id: int) -> dict[str, Any]:
    """Send a dead-lettered, cancelled or failing write-back again now."""
    st = _st()
    return st.database.run_in_transaction(
        lambda session: service.retry_outbox(session, action_id, actor=_actor(), now=st.clock())
    )


@admin_api_bp.route("/outbox/<int:action_id>/cancel", methods=["POST"])
@_changes
@admin_api_bp.response(200, schemas.OutboxSchema)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
@admin_api_bp.alt_response(404, schema=schemas.ErrorSchema)
@admin_api_bp.alt_response(409, schema=schemas.ErrorSchema)
def cancel(action_id: int) -> dict[str, Any]:
    """Give up a pending, failing or dead-lettered write-back."""
    st = _st()
    return st.database.run_in_transaction(
        lambda session: service.cancel_outbox(session, action_id, actor=_actor(), now=st.clock())
    )


# --------------------------------------------------------------------------------------------
# Charts and audit


@admin_api_bp.route("/charts/credits")
@admin_api_bp.arguments(schemas.DaysQuery, location="query")
@admin_api_bp.response(200, schemas.DailyCreditsSchema(many=True))
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
def chart_credits(args: dict[str, Any]) -> list[dict[str, Any]]:
    """Credits charged and refunded per day (support zone), oldest first."""
    st = _st()
    with st.database.transaction(read_only=True) as session:
        return service.daily_credits(
            session, days=args["days"], now=st.clock(), zone=st.settings.policy.calendar.zone
        )


@admin_api_bp.route("/charts/first-reply")
@admin_api_bp.arguments(schemas.DaysQuery, location="query")
@admin_api_bp.response(200, schemas.FirstReplySchema(many=True))
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
def chart_first_reply(args: dict[str, Any]) -> list[dict[str, Any]]:
    """First-reply targets met, missed and open per plan."""
    st = _st()
    with st.database.transaction(read_only=True) as session:
        return service.first_reply_by_plan(
            session, days=args["days"], now=st.clock(), plans=list(st.settings.policy.plans)
        )


@admin_api_bp.route("/audit")
@admin_api_bp.arguments(schemas.AuditQuery, location="query")
@admin_api_bp.response(200, schemas.AuditPage)
@admin_api_bp.alt_response(401, response="UNAUTHORIZED")
def audit(args: dict[str, Any]) -> dict[str, Any]:
    """Changes made through the admin console, newest first, with their actor."""
    with _st().database.transaction(read_only=True) as session:
        return service.audit_page(
            session, target=args.get("target"), page=args["page"], per_page=args["per_page"]
        ).as_dict()
