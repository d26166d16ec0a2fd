"""Reminders for pending approvals: one per request, after the configured business time.

``send_approval_reminders`` is what the scheduled job calls; it is safe to run from several
processes at once (rows are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, and a
ticket's ``approval_reminded_at`` is set in the same transaction as its outbox row).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from adapters.base import marker_tag
from connector.approvals import approval_link
from connector.extension import ConnectorState
from connector.models import Customer, OutboxAction, Ticket
from rules import business_hours
from rules.messages import Message, language, render


def business_day_seconds(st: ConnectorState) -> int:
    """The length of one business day of the calendar, in seconds."""
    cal = st.settings.policy.calendar
    start = cal.start.hour * 3600 + cal.start.minute * 60
    end = cal.end.hour * 3600 + cal.end.minute * 60
    return (end - start) % 86400 or 86400


def send_approval_reminders(st: ConnectorState, now: datetime | None = None) -> int:
    """Queue one reminder for each approval pending longer than the configured business time.

    :returns: how many reminders were queued.
    """
    now = now or st.clock()
    policy = st.settings.policy
    wait = policy.approval.reminder_business_days * business_day_seconds(st)
    sent = 0
    with st.database.transaction() as session:
        stmt = (
            select(Ticket)
            .where(
                Ticket.approval_state == "pending",
                Ticket.approval_requested_at.is_not(None),
                Ticket.approval_reminded_at.is_(None),
                Ticket.approval_amount.is_not(None),
            )
            .order_by(Ticket.id)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        for ticket in session.scalars(stmt):
            assert ticket.approval_requested_at is not None and ticket.approval_amount is not None
            waited = business_hours.business_seconds_between(
                ticket.approval_requested_at, now, policy.calendar
            )
            if waited < wait or ticket.desk not in st.adapters:
                continue
            customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
            lang = language(
                ticket.locale,
                customer.locale if customer else None,
                supported=policy.languages,
                default=policy.default_language,
            )
            category = policy.categories.get(ticket.category or "")
            title = (category.title_ru if lang == "ru" else category.title_en) if category else ""
            message = Message(
                "approval_reminder",
                True,
                {
                    "name": customer.name if customer else "",
                    "credits": ticket.approval_amount,
                    "category_title": title,
                    "balance": customer.balance if customer else 0,
                },
            )
            link = approval_link(st, session, ticket, ticket.approval_amount)
            marker = f"reminder.{ticket.id}.{int(ticket.approval_requested_at.timestamp())}"
            body = render(message, lang, {"approval_url": link})
            session.add(
                OutboxAction(
                    desk=ticket.desk,
                    ticket_id=ticket.external_id,
                    ticket_key=f"{ticket.desk}:{ticket.external_id}",
                    kind="reply",
                    payload={
                        "body": f"{body}\n\n{marker_tag(marker)}",
                        "kind": "approval_reminder",
                    },
                    marker=marker,
                    next_attempt_at=now,
                )
            )
            ticket.approval_reminded_at = now
            sent += 1
    return sent
