"""marshmallow schemas for what Zendesk sends: the two delivery shapes.

* **Event subscriptions** (``zen:event-type:ticket.*``): Zendesk's fixed envelope
  ``{account_id, detail, event, id, subject, time, type, zendesk_event_version}``. ``detail``
  is the ticket after the event; ids are strings and enumerations UPPER CASE
  (``"priority": "LOW"``). ``event`` holds what changed, one shape per type.
  https://developer.zendesk.com/api-reference/webhooks/event-types/ticket-events/
* **Trigger webhooks**: the JSON body the connector itself defines
  (:func:`adapters.zendesk.install.trigger_body`), rendered by Zendesk's placeholders:
  display-case values (``"Normal"``), tags as one space-separated string, and an empty
  string wherever a placeholder has no value.

Both are read leniently (:class:`~adapters.base.VendorSchema`: unknown keys dropped) but
typed: a wrong type names its path in the 400 answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate

from adapters.base import VendorSchema
from adapters.fields import FieldValues, Flag, Id, Text, Timestamp
from rules.events import EventType, TicketStatus

__all__ = [
    "EVENT_TYPES",
    "PRIORITIES",
    "STATUSES",
    "TRIGGER_EVENTS",
    "CommentAddedSchema",
    "CustomFieldChangedSchema",
    "EnvelopeSchema",
    "TagsChangedSchema",
    "TriggerBodySchema",
    "ValueChangedSchema",
]

# --------------------------------------------------------------------------------------------
# Vocabulary

#: Event-subscription types the connector handles -> canonical type. Other
#: ``zen:event-type:*`` codes are answered "ignored". Spam and soft deletion both end the
#: ticket for the connector (nothing more is charged or answered).
EVENT_TYPES: Mapping[str, EventType] = {
    "zen:event-type:ticket.created": EventType.TICKET_CREATED,
    "zen:event-type:ticket.comment_added": EventType.COMMENT_ADDED,
    "zen:event-type:ticket.tags_changed": EventType.TAGS_CHANGED,
    "zen:event-type:ticket.status_changed": EventType.STATUS_CHANGED,
    "zen:event-type:ticket.priority_changed": EventType.PRIORITY_CHANGED,
    "zen:event-type:ticket.custom_field_changed": EventType.FIELDS_CHANGED,
    "zen:event-type:ticket.soft_deleted": EventType.TICKET_DELETED,
    "zen:event-type:ticket.marked_as_spam": EventType.TICKET_DELETED,
}

#: ``event`` of the connector's trigger body -> canonical type.
TRIGGER_EVENTS: Mapping[str, EventType] = {
    "created": EventType.TICKET_CREATED,
    "comment": EventType.COMMENT_ADDED,
    "updated": EventType.TICKET_UPDATED,
}

#: Zendesk status, lower case (events send ``OPEN``, placeholders ``Open``, the API ``open``;
#: placeholders write on-hold as ``On-hold``) -> canonical status. Pending and on-hold wait
#: on someone else: the first-reply clock pauses.
STATUSES: Mapping[str, TicketStatus] = {
    "new": TicketStatus.NEW,
    "open": TicketStatus.OPEN,
    "pending": TicketStatus.WAITING,
    "hold": TicketStatus.WAITING,
    "on-hold": TicketStatus.WAITING,
    "on hold": TicketStatus.WAITING,
    "solved": TicketStatus.SOLVED,
    "closed": TicketStatus.CLOSED,
}

#: The API's priority values; events send them upper case, placeholders capitalised.
PRIORITIES = ("urgent", "high", "normal", "low")


class TagList(fields.Field):
    """Tags: a JSON list of strings (events) or one space-separated string (the trigger
    placeholder ``{{ticket.tags}}``)."""

    default_error_messages = {
        "invalid": "Not a list of tags.",
        "invalid_item": "Not a valid tag.",
    }

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> tuple[str, ...]:
        if isinstance(value, str):
            return tuple(value.split())
        if not isinstance(value, list):
            raise self.make_error("invalid")
        errors: dict[int, list[str]] = {}
        tags: list[str] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                tags.append(item)
            else:
                errors[index] = [self.error_messages["invalid_item"]]
        if errors:
            raise ValidationError(errors)
        return tuple(tags)


# --------------------------------------------------------------------------------------------
# Event subscriptions


class ViaSchema(VendorSchema):
    channel = Text(load_default=None, allow_none=True)


class DetailSchema(VendorSchema):
    """``detail``: the ticket after the event."""

    id = Id(required=True, allow_none=False, blank=False)
    actor_id = Id(load_default=None, allow_none=True)
    requester_id = Id(load_default=None, allow_none=True)
    created_at = Timestamp(load_default=None, allow_none=True)
    updated_at = Timestamp(load_default=None, allow_none=True)
    subject = Text(load_default=None, allow_none=True)
    description = Text(load_default=None, allow_none=True)
    status = Text(load_default=None, allow_none=True)
    priority = Text(load_default=None, allow_none=True)
    tags = TagList(load_default=None, allow_none=True)
    via = fields.Nested(ViaSchema, load_default=None, allow_none=True)


class EnvelopeSchema(VendorSchema):
    """The fixed envelope of an event-subscription delivery."""

    id = Text(required=True, validate=validate.Length(min=1, max=200))
    type = Text(required=True)
    time = Timestamp(load_default=None, allow_none=True)
    subject = Text(load_default=None, allow_none=True)
    detail = fields.Nested(DetailSchema, required=True)
    event = fields.Dict(load_default=dict, allow_none=True)


class AuthorSchema(VendorSchema):
    id = Id(load_default=None, allow_none=True)
    name = Text(load_default=None, allow_none=True)
    is_staff = Flag(load_default=None, allow_none=True)


class CommentSchema(VendorSchema):
    id = Id(load_default=None, allow_none=True)
    body = Text(load_default="", allow_none=True)
    is_public = Flag(load_default=None, allow_none=True)
    author = fields.Nested(AuthorSchema, load_default=None, allow_none=True)


class CommentAddedSchema(VendorSchema):
    """``event`` of ``ticket.comment_added``."""

    comment = fields.Nested(CommentSchema, required=True)


class TagsChangedSchema(VendorSchema):
    """``event`` of ``ticket.tags_changed``."""

    tags_added = TagList(load_default=(), allow_none=True)
    tags_removed = TagList(load_default=(), allow_none=True)


class ValueChangedSchema(VendorSchema):
    """``event`` of ``ticket.status_changed`` and ``ticket.priority_changed``."""

    current = Text(load_default=None, allow_none=True)
    previous = Text(load_default=None, allow_none=True)


class CustomFieldSchema(VendorSchema):
    id = Id(required=True, allow_none=False, blank=False)
    title = Text(load_default=None, allow_none=True)
    type = Text(load_default=None, allow_none=True)


class CustomFieldChangedSchema(VendorSchema):
    """``event`` of ``ticket.custom_field_changed``; ``current`` may be a value, a list
    (multi-select) or ``{"value": ...}``."""

    custom_field = fields.Nested(CustomFieldSchema, required=True)
    current = fields.Raw(load_default=None, allow_none=True)
    previous = fields.Raw(load_default=None, allow_none=True)


# --------------------------------------------------------------------------------------------
# The connector's trigger body


class TriggerTicketSchema(VendorSchema):
    id = Id(required=True, allow_none=False, blank=False)
    subject = Text(load_default=None, allow_none=True)
    description = Text(load_default=None, allow_none=True)
    status = Text(load_default=None, allow_none=True)
    priority = Text(load_default=None, allow_none=True)
    tags = TagList(load_default=None, allow_none=True)
    created_at = Timestamp(load_default=None, allow_none=True)
    updated_at = Timestamp(load_default=None, allow_none=True)
    via = Text(load_default=None, allow_none=True)
    # "fields" would shadow Schema.fields
    field_values = FieldValues(data_key="fields", load_default=dict, allow_none=True)


class TriggerRequesterSchema(VendorSchema):
    id = Id(load_default=None, allow_none=True)
    email = Text(load_default=None, allow_none=True)
    name = Text(load_default=None, allow_none=True)
    locale = Text(load_default=None, allow_none=True)


class TriggerUserSchema(VendorSchema):
    id = Id(load_default=None, allow_none=True)


class TriggerCommentSchema(VendorSchema):
    body = Text(load_default="", allow_none=True)
    public = Flag(load_default=None, allow_none=True)
    author_id = Id(load_default=None, allow_none=True)


class TriggerBodySchema(VendorSchema):
    """The body of the connector's triggers (``care_connector`` is the template version)."""

    care_connector = fields.Integer(
        required=True, strict=True, validate=validate.Equal(1, error="Unknown template version.")
    )
    event = Text(
        required=True,
        validate=validate.OneOf(("created", "updated", "comment"), error="Unknown trigger event."),
    )
    ticket = fields.Nested(TriggerTicketSchema, required=True)
    requester = fields.Nested(TriggerRequesterSchema, load_default=None, allow_none=True)
    current_user = fields.Nested(TriggerUserSchema, load_default=None, allow_none=True)
    comment = fields.Nested(TriggerCommentSchema, load_default=None, allow_none=True)
