"""The connector's tables (SQLAlchemy 2 declarative models), one ``Base`` for all.

Rows here are storage; the rules never see them. :mod:`connector.customers` turns a customer's
rows into a :class:`rules.model.Customer`.

Conventions:

- Every timestamp is timezone-aware (:class:`UTCDateTime`): stored as UTC, returned as an
  aware UTC ``datetime`` on SQLite and PostgreSQL alike. Naive datetimes are refused.
- Credits are integers. ``customers.balance`` is maintained by :mod:`connector.ledger` only and
  can never go below zero (a CHECK constraint backs the ledger's own test).
- Emails are stored lower-case; lookups lower-case their argument.
- Schema changes go through an Alembic revision in ``connector/migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so migrations can refer to them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC.

    PostgreSQL keeps it in a ``TIMESTAMP WITH TIME ZONE``; SQLite, which has no time zones,
    keeps the naive UTC wall time. Either way the value read back is aware and in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"Naive datetime {value.isoformat()} refused: pass an aware one.")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC (the default of ``created_at``-style columns)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), str: String()}


class Customer(Base):
    """A customer. ``balance`` mirrors the sum of the customer's ledger entries."""

    __tablename__ = "customers"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str] = mapped_column(default="", server_default="")
    locale: Mapped[str] = mapped_column(default="en", server_default="en")
    timezone: Mapped[str | None]
    upgrades_until: Mapped[date | None] = mapped_column(Date)
    upgrades_lifetime: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    balance: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    erased_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Identity(Base):
    """The customer's user id in one desk (``desk`` is the desk's configured key)."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("desk", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    desk: Mapped[str]
    external_id: Mapped[str]


class License(Base):
    """A product license; ``ref`` is the vendor's reference and makes imports idempotent."""

    __tablename__ = "licenses"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('first', 'additional', 'additional_storefront')", name="kind_known"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    ref: Mapped[str] = mapped_column(unique=True)
    product: Mapped[str]
    kind: Mapped[str]
    purchased_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)


class Subscription(Base):
    """A care subscription; ``ends_on`` is the last day included."""

    __tablename__ = "subscriptions"
    __table_args__ = (CheckConstraint("starts_on <= ends_on", name="dates_ordered"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    plan: Mapped[str]
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)


class CreditPurchase(Base):
    """Credits bought; ``ref`` (the order) makes imports idempotent."""

    __tablename__ = "credit_purchases"
    __table_args__ = (CheckConstraint("credits > 0", name="credits_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    ref: Mapped[str] = mapped_column(unique=True)
    credits: Mapped[int] = mapped_column(Integer)
    purchased_on: Mapped[date] = mapped_column(Date)


class QuotaAllowance(Base):
    """A month's allowance of covered tickets of one kind, opened by the monthly reset.

    Keyed by (customer, period, kind) with no surrogate id and no foreign key: rows are only
    derived from subscriptions and licenses, which hold theirs, and customers are never
    deleted (erasure anonymises them); the per-row check doubled the reset's time.
    """

    __tablename__ = "quota_allowances"

    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)  # "YYYY-MM"
    kind: Mapped[str] = mapped_column(primary_key=True)
    allowance: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)


class Ticket(Base):
    """A help-desk ticket as the connector knows it."""

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("desk", "external_id"),
        # A customer's tickets by creation time: the worker's "other recent tickets" query.
        Index("ix_tickets_customer_id_created_at", "customer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    desk: Mapped[str]
    external_id: Mapped[str]
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    requester_email: Mapped[str | None]
    subject: Mapped[str] = mapped_column(Text, default="", server_default="")
    locale: Mapped[str | None]
    plan: Mapped[str | None]
    category: Mapped[str | None]
    category_source: Mapped[str | None]
    credits_estimated: Mapped[int | None] = mapped_column(Integer)
    credits_charged: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # none | pending | approved | declined | insufficient | ... (the workflow's states).
    approval_state: Mapped[str] = mapped_column(default="none", server_default="none")
    approval_amount: Mapped[int | None] = mapped_column(Integer)
    # When the pending approval was asked for, and when it was last reminded (once).
    approval_requested_at: Mapped[datetime | None]
    approval_reminded_at: Mapped[datetime | None]
    first_reply_due: Mapped[datetime | None]
    first_agent_reply_at: Mapped[datetime | None]
    status: Mapped[str | None]
    created_at: Mapped[datetime]  # The desk's creation time, not the row's.
    # The SLA watch: when the first-reply warning and the breach were queued (once each).
    sla_warned_at: Mapped[datetime | None]
    sla_breached_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TicketStatusHistory(Base):
    __tablename__ = "ticket_status_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    status: Mapped[str]
    at: Mapped[datetime]


class QuotaUsage(Base):
    """One ticket counted against a month's quota of one kind (at most once)."""

    __tablename__ = "quota_usage"
    __table_args__ = (
        UniqueConstraint("ticket_id", "kind"),
        Index("ix_quota_usage_customer_period", "customer_id", "period", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    period: Mapped[str] = mapped_column(String(7))
    kind: Mapped[str]
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))


class LedgerEntry(Base):
    """One credit movement; append-only (written by :mod:`connector.ledger` only).

    ``amount`` is signed: positive credits the customer, negative charges them.
    ``balance_after`` is the customer's balance once this entry is applied. ``key`` is the
    idempotency key: posting the same movement twice finds this row instead of a second one.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
        Index("ix_ledger_entries_customer_id_id", "customer_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    at: Mapped[datetime]
    kind: Mapped[str]
    amount: Mapped[int] = mapped_column(Integer)
    balance_after: Mapped[int] = mapped_column(Integer)
    ticket: Mapped[str | None] = mapped_column(index=True)  # "<desk>:<external_id>"
    actor: Mapped[str]
    source: Mapped[str]
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    key: Mapped[str] = mapped_column(unique=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))


class InboundDelivery(Base):
    """Every raw webhook delivery, retries included (never unique), kept even when refused.

    Stored with its outcome (and its events, when accepted) in one transaction after the
    signature check and parse, so a refused delivery keeps its error; pruned by the retention
    job.
    """

    __tablename__ = "inbound_deliveries"
    __table_args__ = (Index("ix_inbound_deliveries_desk_id", "desk", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    desk: Mapped[str]
    received_at: Mapped[datetime] = mapped_column(index=True)
    remote_ip: Mapped[str | None]
    content_type: Mapped[str | None]
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    delivery_key: Mapped[str | None]
    # The answer given: 200 accepted/duplicate/ignored, 400, 401, ...
    status_code: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None]  # accepted | duplicate | ignored | refused
    error: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    """One parsed ticket event, unique per (desk, delivery key): the deduplication point.

    ``status``: pending (waiting for the worker), done, ignored (the connector's own change),
    failed (the worker could not process it; ``error`` says why).
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("desk", "delivery_key"),
        Index("ix_events_status_id", "status", "id"),
        Index("ix_events_ticket_key_id", "ticket_key", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    desk: Mapped[str]
    delivery_key: Mapped[str]
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_deliveries.id"))
    ticket_key: Mapped[str]  # "<desk>:<ticket id>", the unit of ordering
    type: Mapped[str]
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    decision: Mapped[dict[str, object] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]


class OutboxAction(Base):
    """One write-back to a help desk, sent in order per ticket, applied once per marker.

    ``status``: pending, sending (claimed; a stale claim is an unclear failure), sent, dead
    (dead-lettered after ``attempts`` tries or a permanent error), cancelled.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        # The pending rows in id order, and only those: the claim reads the queue's heads
        # from it without sorting, however many rows were sent before.
        Index(
            "ix_outbox_pending_id",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # Each ticket's open rows (pending or being sent) in order: "is there an earlier one".
        Index(
            "ix_outbox_open_ticket_key_id",
            "ticket_key",
            "id",
            postgresql_where=text("status IN ('pending', 'sending')"),
            sqlite_where=text("status IN ('pending', 'sending')"),
        ),
        Index("ix_outbox_ticket_key_id", "ticket_key", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    desk: Mapped[str]
    ticket_id: Mapped[str]
    ticket_key: Mapped[str]
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    kind: Mapped[str]  # priority | tags | remove_tags | note | reply | notify (no ticket)
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    marker: Mapped[str] = mapped_column(unique=True)
    status: Mapped[str] = mapped_column(default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    unclear: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    next_attempt_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class RequesterCache(Base):
    """A desk user's email, name and locale as the desk's API gave them (identity cache)."""

    __tablename__ = "requester_cache"
    __table_args__ = (UniqueConstraint("desk", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    desk: Mapped[str]
    external_id: Mapped[str]
    email: Mapped[str | None]
    name: Mapped[str | None]
    locale: Mapped[str | None]
    fetched_at: Mapped[datetime]


class AppSecret(Base):
    """Secrets the connector makes for itself (the approval-link signing key), so the embedded
    default needs no set-up; ``CARE_SECRET_KEY`` overrides the stored key."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobRun(Base):
    """One scheduled job's run for one period (``quota-reset`` / ``2026-12``), at most once.

    The row is inserted in the same transaction as the run's effects, so it exists exactly
    when they do: a second scheduler, a retry or a manual run of the period finds it and does
    nothing. ``result`` holds the run's counts (``{"opened": 1200}``).
    """

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str]
    period: Mapped[str]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    result: Mapped[dict[str, int] | None] = mapped_column(JSON)
    runner: Mapped[str] = mapped_column(default="", server_default="")  # "scheduler host:pid"


class Heartbeat(Base):
    """The latest sign of life of one background process: a worker, an outbox worker or a
    scheduler (``kind``) in one process (``runner``, ``"host:pid"``). Kept in the database so
    that ``/healthz`` on any web process sees every worker; rows of processes gone for a week
    are deleted by the next beat."""

    __tablename__ = "heartbeats"
    __table_args__ = (UniqueConstraint("kind", "runner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str]  # worker | outbox | scheduler
    runner: Mapped[str]
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime] = mapped_column(index=True)


class ExpiryNotice(Base):
    """The notice sent to a customer before an entitlement ends: one per (customer, source,
    last day). ``source`` is the license ref, or ``subscription <plan>``."""

    __tablename__ = "expiry_notices"
    __table_args__ = (UniqueConstraint("customer_id", "source", "ends_on"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    source: Mapped[str]
    plan: Mapped[str]
    ends_on: Mapped[date] = mapped_column(Date)
    desk: Mapped[str]
    marker: Mapped[str] = mapped_column(unique=True)
    queued_at: Mapped[datetime]


class AdminAudit(Base):
    """One change made through the admin console: who (the admin token's name), what, to what.

    ``target`` names the row changed (``customer:12``, ``outbox:7``); ``details`` holds the
    change's figures (amounts, dates, counts), never a secret.
    """

    __tablename__ = "admin_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str]
    action: Mapped[str]
    target: Mapped[str] = mapped_column(index=True)
    details: Mapped[dict[str, object]] = mapped_column(JSON)


__all__: list[str] = [
    "AdminAudit",
    "AppSecret",
    "Base",
    "Event",
    "ExpiryNotice",
    "Heartbeat",
    "JobRun",
    "InboundDelivery",
    "OutboxAction",
    "RequesterCache",
    "CreditPurchase",
    "Customer",
    "Identity",
    "LedgerEntry",
    "License",
    "QuotaAllowance",
    "QuotaUsage",
    "Subscription",
    "Ticket",
    "TicketStatusHistory",
    "UTCDateTime",
    "utcnow",
]
