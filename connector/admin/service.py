"""The admin console's queries and actions, independent of HTTP.

The JSON API (:mod:`connector.admin.api`) and the admin pages call these functions; neither
runs a query of its own. Every function takes a SQLAlchemy ``Session`` and leaves the commit
to the caller (``with st.database.transaction() as session: ...``), except those that take
the whole :class:`~connector.extension.ConnectorState` because they reuse a pipeline step that
manages its own transactions (:func:`replay_delivery`). Results are plain JSON-ready dicts
(dates as ISO strings), so a page can render them and the API can return them as they are.

Every change is recorded in ``admin_audit`` with the actor (the admin token's name), in the
same transaction as the change; credit movements also carry the actor on their ledger entry.
Bad input raises :class:`AdminError` (``status`` 404, 409 or 422, and a message naming what is
wrong), never a database error.

Customers
    - ``search_customers(session, query="", *, page=1, per_page=50, include_erased=False)
      -> Page``: by email or name (case-insensitive substring).
    - ``customer_detail(session, customer_id, *, policy, now) -> dict``: profile, licenses,
      subscriptions, purchases, identities, entitlements, plan today (and why), quota used
      this month, balance, latest tickets.
    - ``customer_id_by_email(session, email) -> int``.
    - ``import_customers_json(session, document, *, policy, desks, actor, now) -> dict``: the
      CLI's import file (``{"customers": [...]}``), all or nothing; returns the counts.
    - ``end_subscription(session, subscription_id, *, last_day, actor, now) -> dict`` and
      ``end_license(session, license_id, *, last_day, actor, now) -> dict``: end early.
    - ``export_personal_data(session, customer_id) -> dict``: everything held about them.
    - ``erase_customer(session, customer_id, *, actor, now) -> dict``: erase personal data;
      ledger amounts stay, so balances and ``credits verify`` still add up.

Credits
    - ``ledger_page(session, customer_id, *, page=1, per_page=50) -> Page``: newest first.
    - ``grant_credits(session, customer_id, credits, *, reason, actor, now, key=None)``,
      ``adjust_credits(session, customer_id, amount, *, reason, actor, now, key=None)``,
      ``reverse_entry(session, entry_id, *, reason, actor, now) -> dict``: the new entry.
    - ``ledger_csv(session, *, customer_id=None, since=None, until=None) -> str``.

Tickets
    - ``list_tickets(session, *, customer_id=None, desk=None, external_id=None, page=1,
      per_page=50) -> Page`` and ``ticket_id_by_key(session, desk, external_id) -> int``.
    - ``ticket_detail(session, ticket_id, *, policy) -> dict``: decision, estimate, approval
      state, events, ledger entries, outbox actions, status history, and ``explanation``:
      the decision step by step (plan, category and how it was found, price, coverage and
      quota, approval, charge, first reply) from :func:`explain_ticket`.
    - ``explain_ticket(session, ticket, *, policy, events=None) -> list[dict]``: those
      steps alone, ``{"step", "title", "outcome", "detail"}`` each, for a ``Ticket`` row.

Deliveries and outbox
    - ``list_deliveries(session, *, desk=None, outcome=None, page=1, per_page=50) -> Page``.
    - ``delivery_detail(session, delivery_id, *, adapters=None) -> dict``: headers with
      secrets masked, body, the answer given, the error, events, and the signature checked
      again when the desk's adapters are passed (``mask_headers(headers)`` does the masking).
    - ``replay_delivery(st, delivery_id, *, actor) -> dict``: :func:`connector.intake.replay`.
    - ``list_outbox(session, *, state="pending", desk=None, page=1, per_page=50) -> Page``:
      ``state`` is one of :data:`OUTBOX_STATES` (``failed`` = retrying after an error,
      ``dead`` = dead-lettered).
    - ``outbox_detail(session, action_id) -> dict``.
    - ``retry_outbox(session, action_id, *, actor, now) -> dict`` and
      ``cancel_outbox(session, action_id, *, actor, now) -> dict``.

Charts and audit
    - ``record(session, *, actor, action, target, now, **details) -> None``: add an audit row.
    - ``daily_credits(session, *, days, now, zone) -> list[dict]``: credits charged and
      refunded per day (support zone), oldest first, every day present.
    - ``first_reply_by_plan(session, *, days, now, plans=()) -> list[dict]``: first-reply
      targets met, missed and still open per plan, for tickets created in the last ``days``
      days (pass ``policy.plans`` to list every plan, in order, even without tickets).
    - ``audit_page(session, *, target=None, page=1, per_page=50) -> Page``.
"""

from __future__ import annotations

import csv
import io
import math
import uuid
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.orm import Session

from adapters.base import HelpdeskAdapter
from adapters.errors import UnsupportedEventError, WebhookError
from connector import intake, ledger
from connector.customers import (
    CustomerImportError,
    import_customers,
    load_customer,
    normalize_email,
    validate_entries,
)
from connector.extension import ConnectorState
from connector.models import (
    AdminAudit,
    CreditPurchase,
    Customer,
    Event,
    ExpiryNotice,
    Identity,
    InboundDelivery,
    LedgerEntry,
    License,
    OutboxAction,
    QuotaUsage,
    RequesterCache,
    Subscription,
    Ticket,
    TicketStatusHistory,
)
from connector.worker import QUOTA_KIND, quota_of
from rules import coverage, credits, detection, entitlements
from rules.decide import ApprovalState, CategorySource
from rules.model import Customer as RulesCustomer
from rules.policy import Policy
from rules.releases import ReleaseError

__all__ = [
    "DEFAULT_PER_PAGE",
    "MAX_PER_PAGE",
    "OUTBOX_STATES",
    "AdminError",
    "Page",
    "adjust_credits",
    "audit_page",
    "cancel_outbox",
    "customer_detail",
    "customer_id_by_email",
    "daily_credits",
    "delivery_detail",
    "end_license",
    "end_subscription",
    "erase_customer",
    "explain_ticket",
    "export_personal_data",
    "first_reply_by_plan",
    "grant_credits",
    "import_customers_json",
    "ledger_csv",
    "ledger_page",
    "list_deliveries",
    "list_outbox",
    "list_tickets",
    "mask_headers",
    "outbox_detail",
    "record",
    "replay_delivery",
    "retry_outbox",
    "reverse_entry",
    "search_customers",
    "ticket_detail",
    "ticket_id_by_key",
]

T = TypeVar("T")

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500

#: The outbox lists: ``failed`` is a row waiting for another try after an error.
OUTBOX_STATES = ("pending", "failed", "dead", "sending", "sent", "cancelled", "all")

#: What replaces a masked header value.
MASK = "********"

#: Header names (lower-case) whose values are secrets, and words that mark one.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_WORDS = ("signature", "token", "secret", "password", "api-key", "apikey", "auth")

#: The ledger sources whose ``reason`` is free text typed by a person (redacted on erasure).
_TYPED_REASON_SOURCES = (ledger.Source.ADMIN.value, ledger.Source.CLI.value)
ERASED_TEXT = "(erased)"


class AdminError(Exception):
    """An admin request that cannot be carried out; ``status`` is the HTTP status to answer.

    :param status: 404 (no such row), 409 (the row's state forbids it), 422 (bad input).
    :param errors: field path -> messages, as in the connector's error bodies.
    """

    def __init__(
        self, status: int, message: str, errors: Mapping[str, list[str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = dict(errors or {})


def _not_found(what: str, key: object) -> AdminError:
    return AdminError(404, f"No {what} {key}.")


#: Ids are 32-bit integers in the database; a larger one names no row.
_MAX_ID = 2**31 - 1


def _get(session: Session, model: type[T], row_id: int, what: str) -> T:
    """The row of ``model`` with ``row_id``; 404 for none (and for an id no row can have)."""
    if isinstance(row_id, bool) or not isinstance(row_id, int) or not 1 <= row_id <= _MAX_ID:
        raise _not_found(what, row_id)
    row = session.get(model, row_id)
    if row is None:
        raise _not_found(what, row_id)
    return row


@dataclass(frozen=True)
class Page:
    """One page of a list; ``total`` counts every row of the list."""

    items: list[dict[str, Any]]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "page": self.page,
            "per_page": self.per_page,
            "total": self.total,
            "pages": self.pages,
        }


def _paginate(
    session: Session,
    stmt: Select[Any],
    page: int,
    per_page: int,
    render: Any,
) -> Page:
    if page < 1:
        raise AdminError(422, "page must be 1 or more", {"page": ["Must be 1 or more."]})
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise AdminError(
            422,
            f"per_page must be between 1 and {MAX_PER_PAGE}",
            {"per_page": [f"Must be between 1 and {MAX_PER_PAGE}."]},
        )
    total = int(session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())))
    rows = session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)).all()
    return Page([render(row) for row in rows], page, per_page, total)


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def record(
    session: Session, *, actor: str, action: str, target: str, now: datetime, **details: Any
) -> None:
    """Record one admin action in ``admin_audit`` (in the caller's transaction).

    The service's own changes record themselves; callers record what they do beyond them
    (the API records personal-data exports). ``details`` must be JSON values.
    """
    if not actor:
        raise AdminError(422, "an actor is required: who makes the change")
    session.add(AdminAudit(at=now, actor=actor, action=action, target=target, details=details))


# --------------------------------------------------------------------------------------------
# Customers


def _customer(session: Session, customer_id: int) -> Customer:
    return _get(session, Customer, customer_id, "customer")


def _customer_row(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "email": customer.email,
        "name": customer.name,
        "locale": customer.locale,
        "timezone": customer.timezone,
        "balance": customer.balance,
        "erased_at": _iso(customer.erased_at),
        "created_at": _iso(customer.created_at),
    }


def search_customers(
    session: Session,
    query: str = "",
    *,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
    include_erased: bool = False,
) -> Page:
    """Customers whose email or name contains ``query`` (case-insensitive), by email.

    An empty query lists every customer.
    """
    stmt = select(Customer).order_by(Customer.email, Customer.id)
    text = query.strip()
    if text:
        # Escape LIKE's wildcards so "50%" or "a_b" match literally.
        pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern += "%"
        stmt = stmt.where(
            or_(
                Customer.email.like(pattern, escape="\\"),
                func.lower(Customer.name).like(pattern, escape="\\"),
            )
        )
    if not include_erased:
        stmt = stmt.where(Customer.erased_at.is_(None))
    return _paginate(session, stmt, page, per_page, _customer_row)


def customer_id_by_email(session: Session, email: str) -> int:
    """The id of the customer with ``email`` (case-insensitive).

    :raises AdminError: 404 when there is none.
    """
    found = session.scalar(select(Customer.id).where(Customer.email == normalize_email(email)))
    if found is None:
        raise _not_found("customer with email", repr(email))
    return found


def _entitlement_row(period: entitlements.Entitlement, today: date) -> dict[str, Any]:
    return {
        "plan": period.plan,
        "starts_on": period.starts_on.isoformat(),
        "ends_on": period.ends_on.isoformat(),
        "source": period.source,
        "license_ref": period.license_ref,
        "active": period.active_on(today),
    }


def customer_detail(
    session: Session, customer_id: int, *, policy: Policy, now: datetime
) -> dict[str, Any]:
    """Everything the customer page shows.

    The plan today and its reason come from :func:`rules.entitlements.plan_on` on today's
    date in the support zone; quota used and the month's allowance are read as the worker
    reads them for a decision.

    :raises AdminError: 404 for an unknown customer.
    """
    row = _customer(session, customer_id)
    zone = policy.calendar.zone
    today = entitlements.local_day(now, zone)
    rules_customer = load_customer(session, customer_id)
    held = _entitlements(rules_customer, policy)
    choice = entitlements.plan_on(rules_customer, today, policy)
    period = coverage.quota_period(now, zone)
    plan = policy.plans[choice.plan]
    limit = plan.monthly_quota.get(QUOTA_KIND)
    used, allowance = quota_of(session, customer_id, period)
    if limit is not None and allowance is not None:
        limit = allowance
    tickets = list_tickets(session, customer_id=customer_id, per_page=20)
    return {
        **_customer_row(row),
        "upgrades_until": _iso(row.upgrades_until),
        "upgrades_lifetime": row.upgrades_lifetime,
        "has_upgrades_today": rules_customer.has_upgrades_on(today),
        "today": today.isoformat(),
        "plan": {
            "key": choice.plan,
            "title": plan.title_en,
            "reason": choice.reason_en,
            "reason_ru": choice.reason_ru,
        },
        "quota": {
            "kind": QUOTA_KIND,
            "period": period,
            "used": used,
            "limit": limit,
        },
        "entitlements": [_entitlement_row(e, today) for e in held],
        "licenses": [_license_row(lic) for lic in _licenses(session, customer_id)],
        "subscriptions": [_subscription_row(s) for s in _subscriptions(session, customer_id)],
        "credit_purchases": [
            {
                "id": p.id,
                "ref": p.ref,
                "credits": p.credits,
                "purchased_on": p.purchased_on.isoformat(),
            }
            for p in session.scalars(
                select(CreditPurchase)
                .where(CreditPurchase.customer_id == customer_id)
                .order_by(CreditPurchase.purchased_on, CreditPurchase.id)
            )
        ],
        "identities": [
            {"desk": i.desk, "external_id": i.external_id}
            for i in session.scalars(
                select(Identity)
                .where(Identity.customer_id == customer_id)
                .order_by(Identity.desk, Identity.external_id)
            )
        ],
        "tickets": tickets.items,
        "tickets_total": tickets.total,
    }


def _entitlements(customer: RulesCustomer, policy: Policy) -> tuple[entitlements.Entitlement, ...]:
    try:
        return entitlements.entitlements(customer, policy)
    except ValueError:
        # A license of a product the configuration no longer has: show the others.
        known = tuple(lic for lic in customer.licenses if lic.product in policy.products)
        return entitlements.entitlements(
            RulesCustomer(
                email=customer.email,
                licenses=known,
                subscriptions=customer.subscriptions,
            ),
            policy,
        )


def _licenses(session: Session, customer_id: int) -> Sequence[License]:
    return session.scalars(
        select(License)
        .where(License.customer_id == customer_id)
        .order_by(License.purchased_on, License.id)
    ).all()


def _subscriptions(session: Session, customer_id: int) -> Sequence[Subscription]:
    return session.scalars(
        select(Subscription)
        .where(Subscription.customer_id == customer_id)
        .order_by(Subscription.starts_on, Subscription.id)
    ).all()


def _license_row(lic: License) -> dict[str, Any]:
    return {
        "id": lic.id,
        "ref": lic.ref,
        "product": lic.product,
        "kind": lic.kind,
        "purchased_on": lic.purchased_on.isoformat(),
        "ended_on": _iso(lic.ended_on),
    }


def _subscription_row(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "plan": sub.plan,
        "starts_on": sub.starts_on.isoformat(),
        "ends_on": sub.ends_on.isoformat(),
    }


def import_customers_json(
    session: Session,
    document: Any,
    *,
    policy: Policy,
    desks: Collection[str],
    actor: str,
    now: datetime,
) -> dict[str, int]:
    """Import customers from the CLI's import document (``{"customers": [...]}``).

    The same validation and update rules as ``care-connector customers import``
    (:mod:`connector.customers`); any invalid entry and nothing is written.

    :raises AdminError: 422 naming the entry's email and the field.
    """
    if not isinstance(document, Mapping) or "customers" not in document:
        raise AdminError(422, 'expected an object {"customers": [...]}', {"$": ["Missing."]})
    extra = sorted(set(document) - {"customers"})
    if extra:
        raise AdminError(422, f"unknown top-level key {extra[0]!r}", {extra[0]: ["Unknown."]})
    entries = document["customers"]
    if not isinstance(entries, list):
        raise AdminError(
            422, "customers: expected a list of customers", {"customers": ["Not a list."]}
        )
    try:
        records = validate_entries(entries, policy=policy, desks=desks)
        counts = import_customers(session, records, policy=policy, at=now, actor=actor)
    except CustomerImportError as err:
        raise AdminError(422, str(err), {"customers": [str(err)]}) from err
    result = counts.as_dict()
    record(
        session,
        actor=actor,
        action="customers.import",
        target="customers",
        now=now,
        entries=len(records),
        **result,
    )
    return result


def _check_last_day(last_day: date, first_day: date, current_end: date | None, what: str) -> None:
    if last_day < first_day:
        raise AdminError(
            422,
            f"last_day {last_day.isoformat()} is before the {what} starts"
            f" ({first_day.isoformat()})",
            {"last_day": [f"Must be {first_day.isoformat()} or later."]},
        )
    if current_end is not None and last_day >= current_end:
        raise AdminError(
            422,
            f"last_day {last_day.isoformat()} does not end the {what} early: it ends on"
            f" {current_end.isoformat()} already",
            {"last_day": [f"Must be before {current_end.isoformat()}."]},
        )


def end_subscription(
    session: Session, subscription_id: int, *, last_day: date, actor: str, now: datetime
) -> dict[str, Any]:
    """End a subscription early: ``last_day`` becomes its last day included.

    Tickets already created keep their plan (a plan is fixed at creation). A later import of
    a file that still lists the subscription replaces it again, as imports do.

    :raises AdminError: 404 unknown subscription; 422 a day before it starts or not earlier
        than its current end.
    """
    sub = _get(session, Subscription, subscription_id, "subscription")
    _check_last_day(last_day, sub.starts_on, sub.ends_on, "subscription")
    before = sub.ends_on
    sub.ends_on = last_day
    record(
        session,
        actor=actor,
        action="subscription.end",
        target=f"customer:{sub.customer_id}",
        now=now,
        subscription_id=sub.id,
        plan=sub.plan,
        ends_on_before=before.isoformat(),
        ends_on=last_day.isoformat(),
    )
    return _subscription_row(sub)


def end_license(
    session: Session, license_id: int, *, last_day: date, actor: str, now: datetime
) -> dict[str, Any]:
    """End what a license grants early: its support periods stop after ``last_day``.

    Credits the license granted stay (take them back with :func:`adjust_credits` if due).

    :raises AdminError: 404 unknown license; 422 a day before its purchase, or not earlier
        than an end already set.
    """
    lic = _get(session, License, license_id, "license")
    _check_last_day(last_day, lic.purchased_on, lic.ended_on, "license")
    before = lic.ended_on
    lic.ended_on = last_day
    record(
        session,
        actor=actor,
        action="license.end",
        target=f"customer:{lic.customer_id}",
        now=now,
        license_id=lic.id,
        ref=lic.ref,
        ended_on_before=_iso(before),
        ended_on=last_day.isoformat(),
    )
    return _license_row(lic)


# --------------------------------------------------------------------------------------------
# Credits


def _entry_row(entry: LedgerEntry) -> dict[str, Any]:
    """An entry in the shape of ``credits history --json``, plus ``reverses_id``."""
    return {**ledger.entry_json(entry), "reverses_id": entry.reverses_id}


def ledger_page(
    session: Session, customer_id: int, *, page: int = 1, per_page: int = DEFAULT_PER_PAGE
) -> Page:
    """The customer's ledger entries, newest first.

    :raises AdminError: 404 for an unknown customer.
    """
    _customer(session, customer_id)
    stmt = (
        select(LedgerEntry)
        .where(LedgerEntry.customer_id == customer_id)
        .order_by(LedgerEntry.id.desc())
    )
    return _paginate(session, stmt, page, per_page, _entry_row)


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise AdminError(422, "a reason is required", {"reason": ["Say why the credits move."]})
    return text


def _move(session: Session, customer_id: int, **kwargs: Any) -> LedgerEntry:
    """A ledger posting with the ledger's errors turned into admin errors."""
    _customer(session, customer_id)
    try:
        return ledger.post(session, customer_id=customer_id, **kwargs)
    except ledger.InsufficientCreditsError as err:
        raise AdminError(
            409,
            f"insufficient credits: balance {err.balance}, short by {err.shortfall}",
            {"amount": [f"The balance is {err.balance}."]},
        ) from err
    except ledger.IdempotencyConflictError as err:
        raise AdminError(
            409, f"key {err.key!r} is already used by another movement", {"key": [str(err)]}
        ) from err
    except ledger.InvalidEntryError as err:
        raise AdminError(422, str(err), {"amount": [str(err)]}) from err


def _admin_movement(
    session: Session,
    customer_id: int,
    *,
    verb: str,
    kind: ledger.EntryKind,
    amount: int,
    key: str | None,
    reason: str,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Post a grant or adjustment from the console and audit it as ``credits.<verb>``."""
    entry = _move(
        session,
        customer_id,
        kind=kind,
        amount=amount,
        key=f"admin:{key}" if key else f"admin:{verb}:{uuid.uuid4()}",
        actor=actor,
        source=ledger.Source.ADMIN,
        reason=_reason(reason),
        at=now,
    )
    record(
        session,
        actor=actor,
        action=f"credits.{verb}",
        target=f"customer:{customer_id}",
        now=now,
        entry_id=entry.id,
        amount=entry.amount,
    )
    return _entry_row(entry)


def grant_credits(
    session: Session,
    customer_id: int,
    credits: int,
    *,
    reason: str,
    actor: str,
    now: datetime,
    key: str | None = None,
) -> dict[str, Any]:
    """Give the customer ``credits`` (a positive whole number) through the ledger.

    :param key: an idempotency key chosen by the caller: the same key again returns the
        first entry instead of granting twice. Default: a new random key.
    :raises AdminError: 404 unknown customer; 422 a bad amount or no reason; 409 a key
        already used by another movement.
    """
    if isinstance(credits, bool) or not isinstance(credits, int) or credits <= 0:
        raise AdminError(
            422, "credits must be a positive whole number", {"credits": ["Must be > 0."]}
        )
    return _admin_movement(
        session,
        customer_id,
        verb="grant",
        kind=ledger.EntryKind.GRANT,
        amount=credits,
        key=key,
        reason=reason,
        actor=actor,
        now=now,
    )


def adjust_credits(
    session: Session,
    customer_id: int,
    amount: int,
    *,
    reason: str,
    actor: str,
    now: datetime,
    key: str | None = None,
) -> dict[str, Any]:
    """Correct the balance by ``amount`` credits (signed, not zero): an ``adjustment`` entry.

    :raises AdminError: 404 unknown customer; 422 a zero or non-integer amount or no reason;
        409 when the balance would go below zero, or a key already used.
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
        raise AdminError(
            422,
            "amount must be a whole number of credits, not zero",
            {"amount": ["Must not be 0."]},
        )
    return _admin_movement(
        session,
        customer_id,
        verb="adjust",
        kind=ledger.EntryKind.ADJUSTMENT,
        amount=amount,
        key=key,
        reason=reason,
        actor=actor,
        now=now,
    )


def reverse_entry(
    session: Session, entry_id: int, *, reason: str, actor: str, now: datetime
) -> dict[str, Any]:
    """Undo a ledger entry with an opposite ``adjustment`` (:func:`connector.ledger.reverse`).

    :raises AdminError: 404 unknown entry; 409 already reversed, or the balance would go
        below zero; 422 no reason.
    """
    why = _reason(reason)
    _get(session, LedgerEntry, entry_id, "ledger entry")
    try:
        entry = ledger.reverse(
            session, entry_id, actor=actor, source=ledger.Source.ADMIN, reason=why, at=now
        )
    except ledger.UnknownEntryError as err:
        raise _not_found("ledger entry", entry_id) from err
    except ledger.AlreadyReversedError as err:
        raise AdminError(409, str(err)) from err
    except ledger.InsufficientCreditsError as err:
        raise AdminError(
            409, f"insufficient credits: balance {err.balance}, short by {err.shortfall}"
        ) from err
    record(
        session,
        actor=actor,
        action="credits.reverse",
        target=f"customer:{entry.customer_id}",
        now=now,
        entry_id=entry.id,
        reverses_id=entry_id,
        amount=entry.amount,
    )
    return _entry_row(entry)


#: The columns of the ledger CSV export, in order.
LEDGER_CSV_COLUMNS = (
    "id",
    "at",
    "customer_id",
    "email",
    "kind",
    "amount",
    "balance_after",
    "ticket",
    "actor",
    "source",
    "reason",
    "key",
    "reverses_id",
)


def ledger_csv(
    session: Session,
    *,
    customer_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> str:
    """Ledger entries as CSV (header row first), oldest first.

    :param since: entries at or after this instant; ``until``: strictly before it.
    :raises AdminError: 404 for an unknown customer.
    """
    stmt = (
        select(LedgerEntry, Customer.email)
        .join(Customer, Customer.id == LedgerEntry.customer_id)
        .order_by(LedgerEntry.id)
    )
    if customer_id is not None:
        _customer(session, customer_id)
        stmt = stmt.where(LedgerEntry.customer_id == customer_id)
    if since is not None:
        stmt = stmt.where(LedgerEntry.at >= since)
    if until is not None:
        stmt = stmt.where(LedgerEntry.at < until)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(LEDGER_CSV_COLUMNS)
    for entry, email in session.execute(stmt):
        row = _entry_row(entry)
        row["customer_id"], row["email"] = entry.customer_id, email
        writer.writerow(["" if row[c] is None else _csv_safe(row[c]) for c in LEDGER_CSV_COLUMNS])
    return out.getvalue()


def _csv_safe(value: object) -> object:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# --------------------------------------------------------------------------------------------
# Personal data: export and erasure


def _customer_tickets(session: Session, customer: Customer) -> list[Ticket]:
    return list(
        session.scalars(
            select(Ticket)
            .where(or_(Ticket.customer_id == customer.id, Ticket.requester_email == customer.email))
            .order_by(Ticket.id)
        )
    )


def _ticket_key(ticket: Ticket) -> str:
    return f"{ticket.desk}:{ticket.external_id}"


def _notice_key_pattern(customer_id: int) -> str:
    # Expiry notices queue under "<desk>:notice:<customer id>" (see connector.jobs).
    return f"%:notice:{customer_id}"


def _customer_outbox(session: Session, customer_id: int, keys: list[str]) -> list[OutboxAction]:
    conditions = [OutboxAction.ticket_key.like(_notice_key_pattern(customer_id))]
    if keys:
        conditions.append(OutboxAction.ticket_key.in_(keys))
    return list(
        session.scalars(select(OutboxAction).where(or_(*conditions)).order_by(OutboxAction.id))
    )


def export_personal_data(session: Session, customer_id: int) -> dict[str, Any]:
    """Everything the connector holds about one customer, as JSON.

    The profile, identities, licenses, subscriptions, purchases, ledger entries, tickets
    with their events (the text received) and the messages written back to them.

    :raises AdminError: 404 for an unknown customer.
    """
    customer = _customer(session, customer_id)
    tickets = _customer_tickets(session, customer)
    keys = [_ticket_key(t) for t in tickets]
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if keys:
        for event in session.scalars(
            select(Event).where(Event.ticket_key.in_(keys)).order_by(Event.id)
        ):
            events[event.ticket_key].append(
                {
                    "id": event.id,
                    "type": event.type,
                    "received_at": _iso(event.created_at),
                    "payload": event.payload,
                }
            )
    messages = [
        {
            "id": a.id,
            "ticket": a.ticket_key,
            "kind": a.kind,
            "status": a.status,
            "payload": a.payload,
            "sent_at": _iso(a.sent_at),
        }
        for a in _customer_outbox(session, customer_id, keys)
        if a.kind in ("note", "reply", "notify")
    ]
    cached = session.scalars(
        select(RequesterCache).where(RequesterCache.email == customer.email)
    ).all()
    return {
        "customer": {
            **_customer_row(customer),
            "upgrades_until": _iso(customer.upgrades_until),
            "upgrades_lifetime": customer.upgrades_lifetime,
            "updated_at": _iso(customer.updated_at),
        },
        "identities": [
            {"desk": i.desk, "external_id": i.external_id}
            for i in session.scalars(select(Identity).where(Identity.customer_id == customer_id))
        ],
        "licenses": [_license_row(lic) for lic in _licenses(session, customer_id)],
        "subscriptions": [_subscription_row(s) for s in _subscriptions(session, customer_id)],
        "credit_purchases": [
            {"ref": p.ref, "credits": p.credits, "purchased_on": p.purchased_on.isoformat()}
            for p in session.scalars(
                select(CreditPurchase).where(CreditPurchase.customer_id == customer_id)
            )
        ],
        "ledger": [
            _entry_row(e)
            for e in session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.customer_id == customer_id)
                .order_by(LedgerEntry.id)
            )
        ],
        "tickets": [{**_ticket_row(t), "events": events.get(_ticket_key(t), [])} for t in tickets],
        "messages": messages,
        "requester_cache": [
            {"desk": c.desk, "external_id": c.external_id, "name": c.name, "locale": c.locale}
            for c in cached
        ],
        "expiry_notices": [
            {"source": n.source, "plan": n.plan, "ends_on": n.ends_on.isoformat()}
            for n in session.scalars(
                select(ExpiryNotice).where(ExpiryNotice.customer_id == customer_id)
            )
        ],
    }


#: Fields of a stored event payload that hold what a person wrote or who they are.
_EVENT_PERSONAL = ("subject", "description", "requester_email", "requester_name")


def _redacted_event(payload: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(payload)
    for name in _EVENT_PERSONAL:
        if data.get(name) is not None:
            data[name] = "" if name in ("subject", "description") else None
    comment = data.get("comment")
    if isinstance(comment, Mapping):
        data["comment"] = {**comment, "body": "", "author_email": None}
    return data


def erase_customer(
    session: Session, customer_id: int, *, actor: str, now: datetime
) -> dict[str, Any]:
    """Erase a customer's personal data on request; the credit history stays, anonymised.

    Kept: the customer row (as ``erased-<id>@erased.invalid``, no name or time zone) with its
    balance, licenses, subscriptions and purchases (the vendor's commercial records, which
    the ledger's keys refer to), and every ledger entry with its amount and balance, so
    balances and ``credits verify`` still add up; a reason typed by a person is replaced.
    Removed: desk identities and cached requester details. Blanked: the tickets' requester
    and subject, the received text of their events and deliveries, and the bodies of notes,
    replies and notices; notices and replies still waiting to be sent are cancelled. An
    erased customer is never matched to a requester again.

    :returns: counts of what was erased.
    :raises AdminError: 404 unknown customer; 409 already erased.
    """
    customer = _customer(session, customer_id)
    if customer.erased_at is not None:
        raise AdminError(
            409, f"Customer {customer_id} was erased on {customer.erased_at.isoformat()}."
        )
    email = customer.email
    tickets = _customer_tickets(session, customer)
    keys = [_ticket_key(t) for t in tickets]
    identities = session.scalars(select(Identity).where(Identity.customer_id == customer_id)).all()
    pairs = [(i.desk, i.external_id) for i in identities]

    cache_conditions = [RequesterCache.email == email]
    for desk, external_id in pairs:
        cache_conditions.append(
            (RequesterCache.desk == desk) & (RequesterCache.external_id == external_id)
        )
    cached = session.execute(delete(RequesterCache).where(or_(*cache_conditions)))
    session.execute(delete(Identity).where(Identity.customer_id == customer_id))

    for ticket in tickets:
        ticket.requester_email = None
        ticket.subject = ""
    delivery_ids: set[int] = set()
    events = 0
    if keys:
        for event in session.scalars(select(Event).where(Event.ticket_key.in_(keys))):
            event.payload = _redacted_event(event.payload)
            events += 1
            if event.delivery_id is not None:
                delivery_ids.add(event.delivery_id)
    for delivery in (
        session.scalars(select(InboundDelivery).where(InboundDelivery.id.in_(delivery_ids)))
        if delivery_ids
        else []
    ):
        delivery.body = b""
        delivery.headers = mask_headers(delivery.headers)
        delivery.error = "body erased on request"
    cancelled = 0
    messages = 0
    for action in _customer_outbox(session, customer_id, keys):
        if action.kind not in ("note", "reply", "notify"):
            continue
        if action.status == "pending" and action.kind in ("reply", "notify"):
            action.status = "cancelled"
            cancelled += 1
        payload = dict(action.payload)
        for name in ("body", "subject"):
            if name in payload:
                payload[name] = ERASED_TEXT
        if "email" in payload:
            payload["email"] = None
        action.payload = payload
        messages += 1
    reasons = 0
    for entry in session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.customer_id == customer_id,
            LedgerEntry.source.in_(_TYPED_REASON_SOURCES),
            LedgerEntry.reason != "",
        )
    ):
        # Only the free text: amounts and balances are never rewritten.
        entry.reason = ERASED_TEXT
        reasons += 1
    customer.email = f"erased-{customer_id}@erased.invalid"
    customer.name = ""
    customer.timezone = None
    customer.erased_at = now
    counts = {
        "identities": len(pairs),
        "cached_requesters": int(cached.rowcount or 0),  # type: ignore[attr-defined]
        "tickets": len(tickets),
        "events": events,
        "deliveries": len(delivery_ids),
        "messages": messages,
        "cancelled": cancelled,
        "ledger_reasons": reasons,
    }
    record(
        session,
        actor=actor,
        action="customer.erase",
        target=f"customer:{customer_id}",
        now=now,
        **counts,
    )
    return {"id": customer_id, "erased_at": now.isoformat(), "balance": customer.balance, **counts}


# --------------------------------------------------------------------------------------------
# Tickets


def _ticket_row(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "desk": ticket.desk,
        "external_id": ticket.external_id,
        "key": _ticket_key(ticket),
        "customer_id": ticket.customer_id,
        "requester_email": ticket.requester_email,
        "subject": ticket.subject,
        "status": ticket.status,
        "plan": ticket.plan,
        "category": ticket.category,
        "category_source": ticket.category_source,
        "credits_estimated": ticket.credits_estimated,
        "credits_charged": ticket.credits_charged,
        "approval_state": ticket.approval_state,
        "approval_amount": ticket.approval_amount,
        "created_at": _iso(ticket.created_at),
        "first_reply_due": _iso(ticket.first_reply_due),
        "first_agent_reply_at": _iso(ticket.first_agent_reply_at),
    }


def list_tickets(
    session: Session,
    *,
    customer_id: int | None = None,
    desk: str | None = None,
    external_id: str | None = None,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> Page:
    """Tickets, newest first, optionally of one customer, desk or desk ticket id."""
    stmt = select(Ticket).order_by(Ticket.created_at.desc(), Ticket.id.desc())
    if customer_id is not None:
        stmt = stmt.where(Ticket.customer_id == customer_id)
    if desk:
        stmt = stmt.where(Ticket.desk == desk)
    if external_id:
        stmt = stmt.where(Ticket.external_id == external_id.strip())
    return _paginate(session, stmt, page, per_page, _ticket_row)


def ticket_id_by_key(session: Session, desk: str, external_id: str) -> int:
    """The connector's id of the desk's ticket ``external_id``.

    :raises AdminError: 404 when the connector has not seen it.
    """
    found = session.scalar(
        select(Ticket.id).where(Ticket.desk == desk, Ticket.external_id == external_id)
    )
    if found is None:
        raise _not_found("ticket", f"{desk}:{external_id}")
    return found


def _action_row(action: OutboxAction) -> dict[str, Any]:
    return {
        "id": action.id,
        "desk": action.desk,
        "ticket_id": action.ticket_id,
        "ticket_key": action.ticket_key,
        "event_id": action.event_id,
        "kind": action.kind,
        "payload": action.payload,
        "marker": action.marker,
        "status": action.status,
        "attempts": action.attempts,
        "unclear": action.unclear,
        "next_attempt_at": _iso(action.next_attempt_at),
        "last_error": action.last_error,
        "created_at": _iso(action.created_at),
        "sent_at": _iso(action.sent_at),
    }


def _event_row(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "desk": event.desk,
        "delivery_key": event.delivery_key,
        "delivery_id": event.delivery_id,
        "ticket_key": event.ticket_key,
        "type": event.type,
        "status": event.status,
        "attempts": event.attempts,
        "error": event.error,
        "decision": event.decision,
        "created_at": _iso(event.created_at),
        "processed_at": _iso(event.processed_at),
    }


def ticket_detail(session: Session, ticket_id: int, *, policy: Policy) -> dict[str, Any]:
    """A ticket with its decision and everything that came of it.

    :raises AdminError: 404 for an unknown ticket.
    """
    ticket = _get(session, Ticket, ticket_id, "ticket")
    key = _ticket_key(ticket)
    events = session.scalars(select(Event).where(Event.ticket_key == key).order_by(Event.id)).all()
    entries = session.scalars(
        select(LedgerEntry).where(LedgerEntry.ticket == key).order_by(LedgerEntry.id)
    ).all()
    actions = session.scalars(
        select(OutboxAction).where(OutboxAction.ticket_key == key).order_by(OutboxAction.id)
    ).all()
    history = session.scalars(
        select(TicketStatusHistory)
        .where(TicketStatusHistory.ticket_id == ticket.id)
        .order_by(TicketStatusHistory.at, TicketStatusHistory.id)
    ).all()
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    return {
        **_ticket_row(ticket),
        "customer": None
        if customer is None
        else {"id": customer.id, "email": customer.email, "name": customer.name},
        "approval": {
            "state": ticket.approval_state,
            "amount": ticket.approval_amount,
            "requested_at": _iso(ticket.approval_requested_at),
            "reminded_at": _iso(ticket.approval_reminded_at),
        },
        "events": [_event_row(e) for e in events],
        "ledger": [_entry_row(e) for e in entries],
        "outbox": [_action_row(a) for a in actions],
        "status_history": [{"status": h.status, "at": h.at.isoformat()} for h in history],
        "explanation": explain_ticket(session, ticket, policy=policy, events=events),
    }


def _step(step: str, title: str, outcome: str, detail: str = "") -> dict[str, str]:
    return {"step": step, "title": title, "outcome": outcome, "detail": detail}


_APPROVAL_TEXT = {
    ApprovalState.NOT_REQUIRED.value: "no agreement needed (covered work, or a question)",
    ApprovalState.PENDING.value: "waiting for the customer to agree to the estimate",
    ApprovalState.PREAPPROVED.value: "agreed in advance when the ticket was created",
    ApprovalState.APPROVED.value: "the customer agreed",
    ApprovalState.DECLINED.value: "the customer declined: nothing charged",
    ApprovalState.INSUFFICIENT.value: "the balance was too small: nothing charged",
    ApprovalState.NOT_APPLICABLE.value: "no approval applies (no priced category yet)",
}


def explain_ticket(
    session: Session,
    ticket: Ticket,
    *,
    policy: Policy,
    events: Sequence[Event] | None = None,
) -> list[dict[str, str]]:
    """The decision on a ticket, step by step, as :func:`rules.decide.decide` took it.

    Each step is ``{"step", "title", "outcome", "detail"}``: plan, category, estimate,
    coverage, approval, charge, first reply. Outcomes are the stored decision; details are
    worked out again with the same pure rules (entitlements on the creation day, detection
    over the ticket's text, the price quote, the coverage of the plan) from the data as it is
    now, and say so where that data has changed since.
    """
    key = _ticket_key(ticket)
    if events is None:
        events = session.scalars(
            select(Event).where(Event.ticket_key == key).order_by(Event.id)
        ).all()
    zone = policy.calendar.zone
    created_day = entitlements.local_day(ticket.created_at, zone)
    decided = [e for e in events if e.decision and e.decision.get("changed")]
    last = decided[-1].decision if decided else None
    first_text = next(
        (e.payload for e in events if e.payload.get("subject") or e.payload.get("description")),
        events[0].payload if events else {},
    )
    latest_payload = events[-1].payload if events else {}
    steps: list[dict[str, str]] = []

    # 1. Plan: fixed when the ticket is created.
    customer: RulesCustomer | None = None
    if ticket.customer_id is not None:
        try:
            customer = load_customer(session, ticket.customer_id)
        except LookupError:
            customer = None
    if ticket.plan is None:
        steps.append(_step("plan", "Plan", "not decided yet", "No event has been processed."))
    elif customer is None:
        steps.append(
            _step(
                "plan",
                "Plan",
                ticket.plan,
                "The requester matched no customer: handled under the fallback plan "
                f"{policy.fallback_plan!r}; nothing is charged.",
            )
        )
    else:
        choice = _plan_choice(customer, created_day, policy)
        detail = f"Fixed on the creation day {created_day.isoformat()} (support zone {zone}). "
        if choice is not None and choice.plan == ticket.plan:
            detail += choice.reason_en + "."
        elif choice is not None:
            detail += (
                f"With the customer's entitlements as they are now that day gives "
                f"{choice.plan!r} ({choice.reason_en}); they have changed since the ticket "
                "was decided, and a ticket keeps its plan."
            )
        steps.append(_step("plan", "Plan", ticket.plan, detail))

    # 2. Category: an engineer's choice wins; else detection over subject and text.
    steps.append(_category_step(ticket, policy, first_text, latest_payload))

    # 3. Estimate: the category's price.
    steps.append(_estimate_step(ticket, policy, first_text, latest_payload, last))

    # 4. Coverage and quota.
    steps.append(_coverage_step(session, ticket, policy, customer, created_day))

    # 5. Approval.
    state = ticket.approval_state
    approval_detail = _APPROVAL_TEXT.get(state, state)
    if ticket.approval_amount is not None:
        approval_detail += f"; amount asked: {ticket.approval_amount} credits"
    if ticket.approval_requested_at is not None:
        approval_detail += f"; asked at {ticket.approval_requested_at.isoformat()}"
    steps.append(_step("approval", "Approval", state, approval_detail))

    # 6. Charge: what the ledger holds for the ticket.
    entries = session.scalars(
        select(LedgerEntry).where(LedgerEntry.ticket == key).order_by(LedgerEntry.id)
    ).all()
    moved = ", ".join(f"{e.kind} {e.amount:+d} (entry {e.id})" for e in entries) or "none"
    charge_detail = f"Ledger entries for {key}: {moved}."
    if last is not None and last.get("balance_before") is not None:
        charge_detail += (
            f" Balance at the last decision: {last.get('balance_before')} before,"
            f" {last.get('balance_after')} after."
        )
    steps.append(
        _step("charge", "Credits charged", f"{ticket.credits_charged} credits", charge_detail)
    )

    # 7. First reply.
    steps.append(_first_reply_step(ticket, policy))
    return steps


def _plan_choice(
    customer: RulesCustomer, day: date, policy: Policy
) -> entitlements.PlanChoice | None:
    try:
        return entitlements.plan_on(customer, day, policy)
    except ValueError:
        return None


def _category_step(
    ticket: Ticket, policy: Policy, text: Mapping[str, Any], latest: Mapping[str, Any]
) -> dict[str, str]:
    threshold = round(policy.detection.threshold * 100)
    found = detection.detect_category(
        str(text.get("subject") or ""), str(text.get("description") or ""), policy.detection
    )
    words = ", ".join(found.evidence) or "no keyword"
    if ticket.category_source == CategorySource.ENGINEER.value:
        tags = policy.tags
        chosen = detection.engineer_category(
            latest.get("tags") or (),
            latest.get("fields") or {},
            categories=policy.categories.keys(),
            tag_prefix=tags.category_prefix,
            category_field=tags.category_field,
            price_field=tags.price_field,
        )
        tag = f"{tags.category_prefix}{ticket.category}"
        if chosen is not None and chosen.category != ticket.category:
            how = f"since changed on the ticket to {chosen.category!r}"
        elif tag in (latest.get("tags") or ()):
            how = f"tag {tag}"
        else:
            how = f"field {tags.category_field!r}"
        return _step(
            "category",
            "Category",
            str(ticket.category),
            f"Set by an engineer ({how}); an engineer's category always wins over detection.",
        )
    if ticket.category_source == CategorySource.DETECTED.value:
        return _step(
            "category",
            "Category",
            str(ticket.category),
            f"Detected from the subject and text: {round(found.confidence * 100)}% confidence "
            f"(threshold {threshold}%), matched: {words}.",
        )
    best = max(found.scores, key=lambda k: found.scores[k]) if found.scores else None
    detail = "No category: an engineer must set one (nothing is charged until then)."
    if best is not None:
        detail = (
            f"Best guess {best!r} at {round(found.confidence * 100)}% is below the threshold "
            f"of {threshold}% (matched: {words}); " + detail[len("No category: ") :]
        )
    return _step("category", "Category", "none", detail)


def _estimate_step(
    ticket: Ticket,
    policy: Policy,
    text: Mapping[str, Any],
    latest: Mapping[str, Any],
    last: Mapping[str, Any] | None,
) -> dict[str, str]:
    if ticket.category is None or ticket.category not in policy.categories:
        return _step("estimate", "Estimate", "none", "No category, so no price.")
    cat = policy.categories[ticket.category]
    if ticket.credits_estimated is None:
        missing = "the engineer's figure" if cat.engineer_priced else "both versions"
        return _step(
            "estimate", "Estimate", "incomplete", f"{cat.title_en} needs {missing} to be priced."
        )
    fields = {**(text.get("fields") or {}), **(latest.get("fields") or {})}
    tags = policy.tags
    try:
        if cat.priced_by_steps:
            from_v, to_v = fields.get(tags.upgrade_from_field), fields.get(tags.upgrade_to_field)
            if not (from_v and to_v):
                pair = detection.extract_versions(
                    f"{text.get('subject') or ''}\n{text.get('description') or ''}"
                )
                from_v, to_v = pair if pair is not None else (None, None)
            quote = credits.quote(policy, cat.key, from_version=from_v, to_version=to_v)
            detail = f"{quote.explanation_en} ({from_v} → {to_v})."
        else:
            quote = credits.quote(
                policy,
                cat.key,
                credits=ticket.credits_estimated if cat.engineer_priced else None,
            )
            detail = quote.explanation_en + "."
    except (credits.PriceError, ReleaseError, TypeError, ValueError) as err:
        detail = f"{cat.title_en}: {ticket.credits_estimated} credits ({err})."
    else:
        if quote.credits != ticket.credits_estimated:
            detail += f" The stored estimate is {ticket.credits_estimated} credits."
    if last is not None and last.get("steps") is not None:
        detail += f" Release steps: {last['steps']}."
    return _step("estimate", "Estimate", f"{ticket.credits_estimated} credits", detail)


def _coverage_step(
    session: Session,
    ticket: Ticket,
    policy: Policy,
    customer: RulesCustomer | None,
    created_day: date,
) -> dict[str, str]:
    if ticket.plan is None or ticket.category is None:
        return _step("coverage", "Coverage", "not assessed", "Needs a plan and a category.")
    if ticket.plan not in policy.plans or ticket.category not in policy.categories:
        return _step(
            "coverage", "Coverage", "not assessed", "The plan or category is no longer configured."
        )
    period = coverage.quota_period(ticket.created_at, policy.calendar.zone)
    counted = (
        session.scalar(select(QuotaUsage.id).where(QuotaUsage.ticket_id == ticket.id)) is not None
    )
    used_before = 0
    allowance = None
    if ticket.customer_id is not None:
        # Units of the month taken by tickets created before this one.
        used_before = int(
            session.scalar(
                select(func.count())
                .select_from(QuotaUsage)
                .join(Ticket, Ticket.id == QuotaUsage.ticket_id)
                .where(
                    QuotaUsage.customer_id == ticket.customer_id,
                    QuotaUsage.period == period,
                    QuotaUsage.kind == QUOTA_KIND,
                    QuotaUsage.ticket_id != ticket.id,
                    Ticket.created_at <= ticket.created_at,
                )
            )
            or 0
        )
        allowance = quota_of(session, ticket.customer_id, period)[1]
    cover = coverage.assess(
        ticket.plan,
        ticket.category,
        policy,
        has_upgrades=customer.has_upgrades_on(created_day) if customer is not None else False,
        quota_used=used_before,
        quota_allowance=allowance,
    )
    if cover.blocked is not None:
        outcome = "blocked"
    elif cover.covered:
        outcome = "included in the plan"
    else:
        outcome = "paid from credits"
    detail = cover.reason_en + "."
    if cover.quota_limit is not None:
        detail += (
            f" Quota {QUOTA_KIND} {period}: {'counted' if counted else 'not counted'}"
            f" for this ticket."
        )
    return _step("coverage", "Coverage", outcome, detail)


def _first_reply_step(ticket: Ticket, policy: Policy) -> dict[str, str]:
    due = ticket.first_reply_due
    if due is None:
        return _step("first_reply", "First reply", "no target", "")
    plan = policy.plans.get(ticket.plan or "")
    hours = plan.first_reply_hours if plan is not None else None
    target = f"Target: {hours} business hours, due {due.isoformat()}." if hours else ""
    replied = ticket.first_agent_reply_at
    if replied is None:
        return _step("first_reply", "First reply", "not yet", target)
    outcome = "met" if replied <= due else "missed"
    return _step("first_reply", "First reply", outcome, f"{target} Replied {replied.isoformat()}.")


# --------------------------------------------------------------------------------------------
# Deliveries


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with every secret value masked: signatures, authorization, tokens,
    secrets, passwords, API keys and cookies (matched by name, case-insensitively)."""
    masked: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        secret = lower in _SECRET_HEADERS or any(word in lower for word in _SECRET_WORDS)
        masked[name] = MASK if secret and value else value
    return masked


def _delivery_row(row: InboundDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "desk": row.desk,
        "received_at": _iso(row.received_at),
        "remote_ip": row.remote_ip,
        "content_type": row.content_type,
        "delivery_key": row.delivery_key,
        "status_code": row.status_code,
        "outcome": row.outcome,
        "error": row.error,
        "size": len(row.body),
    }


def list_deliveries(
    session: Session,
    *,
    desk: str | None = None,
    outcome: str | None = None,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> Page:
    """Raw deliveries, newest first, optionally of one desk or outcome (accepted,
    duplicate, ignored, refused, failed)."""
    stmt = select(InboundDelivery).order_by(InboundDelivery.id.desc())
    if desk:
        stmt = stmt.where(InboundDelivery.desk == desk)
    if outcome:
        stmt = stmt.where(InboundDelivery.outcome == outcome)
    return _paginate(session, stmt, page, per_page, _delivery_row)


def _verification(
    row: InboundDelivery, adapters: Mapping[str, HelpdeskAdapter] | None
) -> dict[str, Any]:
    """The signature checked again, anchored at the time of receipt (as a replay does)."""
    if adapters is None:
        return {"checked": False, "valid": None, "message": "not checked"}
    adapter = adapters.get(row.desk)
    if adapter is None:
        return {
            "checked": False,
            "valid": None,
            "message": f"desk {row.desk!r} is no longer configured",
        }
    try:
        adapter.verify(dict(row.headers), row.body, now=row.received_at)
    except UnsupportedEventError as err:
        return {"checked": True, "valid": True, "message": err.message}
    except WebhookError as err:
        return {"checked": True, "valid": False, "message": err.message}
    return {"checked": True, "valid": True, "message": "signature valid"}


def delivery_detail(
    session: Session,
    delivery_id: int,
    *,
    adapters: Mapping[str, HelpdeskAdapter] | None = None,
) -> dict[str, Any]:
    """One raw delivery: masked headers, body, the answer given, the error, its events.

    :param adapters: the desks' adapters (``st.adapters``): when given, the signature is
        checked again and reported under ``verification``.
    :raises AdminError: 404 for an unknown delivery.
    """
    row = _get(session, InboundDelivery, delivery_id, "delivery")
    events = session.scalars(
        select(Event).where(Event.delivery_id == delivery_id).order_by(Event.id)
    ).all()
    return {
        **_delivery_row(row),
        "headers": mask_headers(row.headers),
        "body": row.body.decode("utf-8", errors="replace"),
        "verification": _verification(row, adapters),
        "events": [_event_row(e) for e in events],
    }


def replay_delivery(st: ConnectorState, delivery_id: int, *, actor: str) -> dict[str, Any]:
    """Take a stored delivery again (:func:`connector.intake.replay`): the signature is
    checked again, events already taken are not duplicated, failed ones are set pending.

    :returns: ``{"delivery_id", "status_code", "result", "events"}``; ``status_code`` is the
        answer the intake gives the delivery now (401 for a signature that does not hold).
    :raises AdminError: 404 for an unknown delivery or a desk no longer configured.
    """
    with st.database.transaction(read_only=True) as session:
        _get(session, InboundDelivery, delivery_id, "delivery")
    result = intake.replay(st, delivery_id)
    if result.status == 404:
        raise AdminError(404, str(result.body.get("message", f"No delivery {delivery_id}.")))
    with st.database.transaction() as session:
        record(
            session,
            actor=actor,
            action="delivery.replay",
            target=f"delivery:{delivery_id}",
            now=st.clock(),
            status_code=result.status,
            events=list(result.events),
        )
    return {
        "delivery_id": delivery_id,
        "status_code": result.status,
        "result": result.body,
        "events": list(result.events),
    }


# --------------------------------------------------------------------------------------------
# Outbox


def _outbox_filter(stmt: Select[Any], state: str) -> Select[Any]:
    if state == "pending":
        return stmt.where(OutboxAction.status == "pending", OutboxAction.last_error.is_(None))
    if state == "failed":
        return stmt.where(OutboxAction.status == "pending", OutboxAction.last_error.is_not(None))
    if state == "all":
        return stmt
    return stmt.where(OutboxAction.status == state)


def list_outbox(
    session: Session,
    *,
    state: str = "pending",
    desk: str | None = None,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> Page:
    """Write-backs in one state (see :data:`OUTBOX_STATES`), newest first.

    ``pending``: waiting for their first try; ``failed``: waiting for another try after an
    error; ``dead``: dead-lettered; ``sending``, ``sent``, ``cancelled``; ``all``.

    :raises AdminError: 422 for an unknown state.
    """
    if state not in OUTBOX_STATES:
        raise AdminError(
            422,
            f"unknown outbox state {state!r} (one of {', '.join(OUTBOX_STATES)})",
            {"state": [f"Must be one of: {', '.join(OUTBOX_STATES)}."]},
        )
    stmt = _outbox_filter(select(OutboxAction).order_by(OutboxAction.id.desc()), state)
    if desk:
        stmt = stmt.where(OutboxAction.desk == desk)
    return _paginate(session, stmt, page, per_page, _action_row)


def outbox_detail(session: Session, action_id: int) -> dict[str, Any]:
    """One write-back, with the ticket it belongs to (its id here, when known).

    :raises AdminError: 404 for an unknown action.
    """
    action = _get(session, OutboxAction, action_id, "outbox action")
    ticket = session.scalar(
        select(Ticket.id).where(Ticket.desk == action.desk, Ticket.external_id == action.ticket_id)
    )
    return {**_action_row(action), "ticket": ticket}


def retry_outbox(session: Session, action_id: int, *, actor: str, now: datetime) -> dict[str, Any]:
    """Send a dead-lettered, cancelled or failing write-back again, now, with a fresh count
    of tries. A note or reply that may have gone through (``unclear``) is read back first
    by the outbox worker, so it is never posted twice.

    :raises AdminError: 404 unknown action; 409 one already sent or being sent.
    """
    action = _get(session, OutboxAction, action_id, "outbox action")
    if action.status in ("sent", "sending"):
        raise AdminError(409, f"Outbox action {action_id} is {action.status}: nothing to retry.")
    before = action.status
    action.status = "pending"
    action.attempts = 0
    action.next_attempt_at = now
    action.claimed_at = None
    record(
        session,
        actor=actor,
        action="outbox.retry",
        target=f"outbox:{action_id}",
        now=now,
        status_before=before,
        last_error=action.last_error,
    )
    return _action_row(action)


def cancel_outbox(session: Session, action_id: int, *, actor: str, now: datetime) -> dict[str, Any]:
    """Give up a pending, failing or dead-lettered write-back: it is never sent.

    :raises AdminError: 404 unknown action; 409 one already sent, being sent or cancelled.
    """
    action = _get(session, OutboxAction, action_id, "outbox action")
    if action.status not in ("pending", "dead"):
        raise AdminError(
            409, f"Outbox action {action_id} is {action.status}: it cannot be cancelled."
        )
    before = action.status
    action.status = "cancelled"
    record(
        session,
        actor=actor,
        action="outbox.cancel",
        target=f"outbox:{action_id}",
        now=now,
        status_before=before,
    )
    return _action_row(action)


# --------------------------------------------------------------------------------------------
# Charts and audit


def _window(days: int) -> None:
    if not 1 <= days <= 366:
        raise AdminError(422, "days must be between 1 and 366", {"days": ["Must be 1 to 366."]})


def daily_credits(session: Session, *, days: int, now: datetime, zone: str) -> list[dict[str, Any]]:
    """Credits charged and refunded per day over the last ``days`` days (today included),
    days in the support ``zone``, oldest first; a day without movements shows zeros.

    ``charged`` sums the ``charge`` entries, ``refunded`` the ``refund`` entries.
    """
    _window(days)
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    rows = session.execute(
        select(LedgerEntry.at, LedgerEntry.kind, LedgerEntry.amount).where(
            LedgerEntry.at >= start,
            LedgerEntry.kind.in_((ledger.EntryKind.CHARGE.value, ledger.EntryKind.REFUND.value)),
        )
    ).all()
    charged: dict[date, int] = defaultdict(int)
    refunded: dict[date, int] = defaultdict(int)
    for at, kind, amount in rows:
        day = at.astimezone(tz).date()
        if kind == ledger.EntryKind.CHARGE.value:
            charged[day] += -amount
        else:
            refunded[day] += amount
    return [
        {
            "day": (first + timedelta(days=n)).isoformat(),
            "charged": charged[first + timedelta(days=n)],
            "refunded": refunded[first + timedelta(days=n)],
        }
        for n in range(days)
    ]


def first_reply_by_plan(
    session: Session, *, days: int, now: datetime, plans: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """First-reply targets per plan for tickets created in the last ``days`` days.

    ``met``: the first agent reply came by the due time; ``missed``: it came later, or it
    has not come and the time is past; ``open``: no reply yet, still within the time.
    Plans are listed in ``plans`` order (the policy's), then any other plan found.
    """
    _window(days)
    rows = session.execute(
        select(Ticket.plan, Ticket.first_reply_due, Ticket.first_agent_reply_at).where(
            Ticket.created_at >= now - timedelta(days=days),
            Ticket.first_reply_due.is_not(None),
            Ticket.plan.is_not(None),
        )
    ).all()
    counts: dict[str, dict[str, int]] = {plan: {"met": 0, "missed": 0, "open": 0} for plan in plans}
    for plan, due, replied in rows:
        bucket = counts.setdefault(plan, {"met": 0, "missed": 0, "open": 0})
        if replied is not None:
            bucket["met" if replied <= due else "missed"] += 1
        else:
            bucket["missed" if now > due else "open"] += 1
    return [
        {"plan": plan, **c, "total": c["met"] + c["missed"] + c["open"]}
        for plan, c in counts.items()
    ]


def audit_page(
    session: Session,
    *,
    target: str | None = None,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> Page:
    """The admin audit log, newest first, optionally of one target (``customer:12``)."""
    stmt = select(AdminAudit).order_by(AdminAudit.id.desc())
    if target:
        stmt = stmt.where(AdminAudit.target == target)
    return _paginate(
        session,
        stmt,
        page,
        per_page,
        lambda a: {
            "id": a.id,
            "at": a.at.isoformat(),
            "actor": a.actor,
            "action": a.action,
            "target": a.target,
            "details": a.details,
        },
    )
