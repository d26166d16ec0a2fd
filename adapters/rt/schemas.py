"""Request Tracker: the body the connector's scrip posts, and RT's vocabulary.

RT has no webhooks of its own. ``care-connector webhooks install`` puts a scrip in RT (see
install.py) whose action posts one JSON body per ticket transaction; this module reads it. The
body's version is ``care_connector``; what the scrip writes:

.. code-block:: json

    {"care_connector": 1,
     "rt": {"name": "rt.example.com", "version": "5.0.3"},
     "transaction": {"id": 431, "type": "Correspond", "created": "2026-03-10T09:58:00Z",
                     "field": "", "old_value": "", "new_value": "",
                     "creator": {"id": 27, "name": "ann@shop.example", "email": "ann@shop.example",
                                 "real_name": "Ann", "lang": "ru"},
                     "content": "I agree", "content_type": "text/plain"},
     "ticket": {"id": 12, "subject": "Upgrade", "queue": "General", "status": "open",
                "priority": 50, "created": "2026-03-10T09:55:00Z",
                "requestors": [{"id": 27, "name": "ann@shop.example", ...}],
                "custom_fields": {"Care": ["care_plan_credits"]}}}

Times are RT's ``W3CDTF`` in UTC (``null`` for RT's unset date); ``content`` is the
transaction's text (RT converts an HTML-only message to text) and is present for ``Create``,
``Correspond`` and ``Comment`` only; custom field values are lists (a single-value field has
at most one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate

from adapters.base import VendorSchema
from adapters.fields import Id, Text, Timestamp, field_text
from rules.events import EventType, TicketStatus

__all__ = [
    "EVENT_TYPES",
    "STATUSES",
    "BodySchema",
    "CustomFieldValues",
    "event_code",
]

#: The transactions the adapter handles -> canonical type. ``Delete`` is RT's ``Status``
#: transaction to ``deleted`` (RT deletes a ticket by setting that status).
EVENT_TYPES: Mapping[str, EventType] = {
    "Create": EventType.TICKET_CREATED,
    "Correspond": EventType.COMMENT_ADDED,
    "Comment": EventType.COMMENT_ADDED,
    "CustomField": EventType.FIELDS_CHANGED,
    "Status": EventType.STATUS_CHANGED,
    "Delete": EventType.TICKET_DELETED,
}

#: RT's default lifecycle, lower case -> canonical status. ``stalled`` waits on someone else:
#: the first-reply clock pauses.
STATUSES: Mapping[str, TicketStatus] = {
    "new": TicketStatus.NEW,
    "open": TicketStatus.OPEN,
    "stalled": TicketStatus.WAITING,
    "resolved": TicketStatus.SOLVED,
    "rejected": TicketStatus.CLOSED,
    "deleted": TicketStatus.CLOSED,
}


def event_code(transaction_type: str, new_value: str | None) -> str:
    """The adapter's event code of a transaction: its type, ``Delete`` for a ``Status``
    transaction to ``deleted``."""
    if transaction_type == "Status" and (new_value or "").strip().lower() == "deleted":
        return "Delete"
    return transaction_type


class CustomFieldValues(fields.Field):
    """``{"Care": ["care_plan_vip"], "Category": ["upgrade"]}``: each field's values as a
    tuple of non-empty strings (a bare value is read as a list of one)."""

    default_error_messages = {"invalid": "Not an object of custom field values."}

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> dict[str, tuple[str, ...]]:
        if not isinstance(value, Mapping):
            raise self.make_error("invalid")
        out: dict[str, tuple[str, ...]] = {}
        errors: dict[str, list[str]] = {}
        for name, raw in value.items():
            items = raw if isinstance(raw, list) else [raw]
            texts: list[str] = []
            for item in items:
                if item is None:
                    continue
                text = field_text(item, bool_items=False)
                if text is None or isinstance(item, list | bool):
                    errors[str(name)] = ["Not a valid field value."]
                    break
                if text:
                    texts.append(text)
            out[str(name)] = tuple(texts)
        if errors:
            raise ValidationError(errors)
        return out


class UserSchema(VendorSchema):
    """An RT user as the scrip writes it (requestor, transaction creator)."""

    id = Id(load_default=None, allow_none=True)
    name = Text(load_default=None, allow_none=True)
    email = Text(load_default=None, allow_none=True)
    real_name = Text(load_default=None, allow_none=True)
    lang = Text(load_default=None, allow_none=True)


class TransactionSchema(VendorSchema):
    id = Id(required=True, allow_none=False, blank=False)
    # A type is a word (RT's are CamelCase): anything else is a broken body, not an unknown
    # transaction.
    type = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Za-z]+$", error="Not a transaction type.")
    )
    created = Timestamp(load_default=None, allow_none=True)
    field = Text(load_default=None, allow_none=True)
    old_value = Text(load_default=None, allow_none=True)
    new_value = Text(load_default=None, allow_none=True)
    creator = fields.Nested(UserSchema, load_default=None, allow_none=True)
    content = Text(load_default="", allow_none=True)
    content_type = Text(load_default=None, allow_none=True)


class TicketSchema(VendorSchema):
    id = Id(required=True, allow_none=False, blank=False)
    subject = Text(load_default="", allow_none=True)
    queue = Text(load_default=None, allow_none=True)
    status = Text(load_default=None, allow_none=True)
    priority = Text(load_default=None, allow_none=True)
    created = Timestamp(load_default=None, allow_none=True)
    requestors = fields.List(fields.Nested(UserSchema), load_default=list, allow_none=True)
    custom_fields = CustomFieldValues(load_default=dict, allow_none=True)


class BodySchema(VendorSchema):
    """The whole body; ``care_connector`` is the scrip's payload version."""

    care_connector = fields.Integer(
        required=True, strict=True, validate=validate.Equal(1, error="Unknown payload version.")
    )
    transaction = fields.Nested(TransactionSchema, required=True)
    ticket = fields.Nested(TicketSchema, required=True)
