"""Help-desk events, normalised: what every adapter turns a delivery into."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


class EventType(enum.StrEnum):
    """What happened to a ticket, in the connector's own terms."""

    TICKET_CREATED = "ticket.created"
    COMMENT_ADDED = "ticket.comment_added"
    TAGS_CHANGED = "ticket.tags_changed"
    STATUS_CHANGED = "ticket.status_changed"
    PRIORITY_CHANGED = "ticket.priority_changed"
    FIELDS_CHANGED = "ticket.fields_changed"
    TICKET_UPDATED = "ticket.updated"
    TICKET_DELETED = "ticket.deleted"
    #: The customer's answer on the signed approval page (``answer_amount`` names the amount).
    APPROVED = "approval.approved"
    DECLINED = "approval.declined"
    UNKNOWN = "unknown"


class PriorityLevel(enum.StrEnum):
    """The connector's three priority levels; each desk writes them in its own terms."""

    HIGHEST = "highest"
    HIGH = "high"
    REGULAR = "regular"

    @property
    def rank(self) -> int:
        """Higher is more urgent."""
        return {"regular": 0, "high": 1, "highest": 2}[self.value]


class TicketStatus(enum.StrEnum):
    """Ticket status, normalised; WAITING pauses the first-reply clock."""

    NEW = "new"
    OPEN = "open"
    WAITING = "waiting"
    SOLVED = "solved"
    CLOSED = "closed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment (article, note, reply) that an event carries."""

    body: str
    public: bool
    author_id: str | None = None
    author_email: str | None = None
    by_requester: bool = False


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """One ticket event from one delivery, in the connector's terms.

    :param desk: the desk key the delivery came to (``/hooks/<desk>``).
    :param delivery_key: the idempotency key of the delivery (vendor event id, else SHA-256).
    :param ticket_id: the ticket's id in the desk, as a string.
    :param occurred_at: when the desk says it happened (aware); ``None`` if it does not say.
    :param ticket_created_at: when the ticket was created, where the event says so.
    :param actor_id: the desk user who caused the event (loop guard), where known.
    :param tags: the ticket's tags after the event, where the event carries them.
    :param fields: custom fields by name (``care_preapproval``, a category field...).
    :param priority: the desk's own priority value after the event, as sent.
    :param raw: the vendor payload, for the record; rules never read it.
    """

    desk: str
    delivery_key: str
    type: EventType
    ticket_id: str
    occurred_at: datetime | None = None
    ticket_created_at: datetime | None = None
    subject: str = ""
    description: str = ""
    requester_id: str | None = None
    requester_email: str | None = None
    requester_name: str | None = None
    actor_id: str | None = None
    status: TicketStatus = TicketStatus.UNKNOWN
    priority: str | None = None
    tags: tuple[str, ...] | None = None
    tags_added: tuple[str, ...] = ()
    tags_removed: tuple[str, ...] = ()
    comment: Comment | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    locale: str | None = None
    via_channel: str | None = None
    answer_amount: int | None = None
    raw: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)

    def created_at(self, received_at: datetime) -> datetime:
        """The ticket's creation time as the desk reports it, else the time of receipt."""
        return self.ticket_created_at or self.occurred_at or received_at
