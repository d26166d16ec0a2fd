"""TicketEvents to JSON and back, for the events table (what the worker reads)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rules.events import Comment, EventType, TicketEvent, TicketStatus


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def event_to_json(event: TicketEvent) -> dict[str, Any]:
    """A JSON-ready dict of ``event`` (its ``raw`` payload is kept with the delivery, not here)."""
    comment = event.comment
    return {
        "desk": event.desk,
        "delivery_key": event.delivery_key,
        "type": event.type.value,
        "ticket_id": event.ticket_id,
        "occurred_at": _dt(event.occurred_at),
        "ticket_created_at": _dt(event.ticket_created_at),
        "subject": event.subject,
        "description": event.description,
        "requester_id": event.requester_id,
        "requester_email": event.requester_email,
        "requester_name": event.requester_name,
        "actor_id": event.actor_id,
        "status": event.status.value,
        "priority": event.priority,
        "tags": list(event.tags) if event.tags is not None else None,
        "tags_added": list(event.tags_added),
        "tags_removed": list(event.tags_removed),
        "comment": None
        if comment is None
        else {
            "body": comment.body,
            "public": comment.public,
            "author_id": comment.author_id,
            "author_email": comment.author_email,
            "by_requester": comment.by_requester,
        },
        "fields": dict(event.fields),
        "locale": event.locale,
        "via_channel": event.via_channel,
        "answer_amount": event.answer_amount,
    }


def event_from_json(data: dict[str, Any]) -> TicketEvent:
    """The inverse of :func:`event_to_json`."""
    comment = data.get("comment")
    tags = data.get("tags")
    return TicketEvent(
        desk=data["desk"],
        delivery_key=data["delivery_key"],
        type=EventType(data["type"]),
        ticket_id=data["ticket_id"],
        occurred_at=_parse_dt(data.get("occurred_at")),
        ticket_created_at=_parse_dt(data.get("ticket_created_at")),
        subject=data.get("subject") or "",
        description=data.get("description") or "",
        requester_id=data.get("requester_id"),
        requester_email=data.get("requester_email"),
        requester_name=data.get("requester_name"),
        actor_id=data.get("actor_id"),
        status=TicketStatus(data.get("status") or "unknown"),
        priority=data.get("priority"),
        tags=tuple(tags) if tags is not None else None,
        tags_added=tuple(data.get("tags_added") or ()),
        tags_removed=tuple(data.get("tags_removed") or ()),
        comment=None if comment is None else Comment(**comment),
        fields=dict(data.get("fields") or {}),
        locale=data.get("locale"),
        via_channel=data.get("via_channel"),
        answer_amount=data.get("answer_amount"),
    )
