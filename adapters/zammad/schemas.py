"""marshmallow schemas for what Zammad sends: the two trigger-webhook bodies.

Zammad posts only from a trigger (or scheduler) whose action is "Notification > Webhook";
the webhook decides the body (``app/jobs/trigger_webhook_job.rb``):

* the **default payload** ``{"ticket": {...}, "article": {...}}``: the ticket's attributes
  with its associations expanded into objects (``customer``, ``priority``, ``owner``...;
  ``state`` stays a name), custom ticket attributes as top-level ticket keys, and the article
  of the update (``{}`` when the update added none). Real example:
  ``tests/fixtures/zammad/ticket_trigger_default.json``;
* the connector's own **custom payload** (``"care_connector": 1``,
  :func:`adapters.zammad.install.custom_payload`), rendered by Zammad's ``#{...}``
  replacements: integers and booleans come as JSON numbers and booleans (older Zammad
  versions write them as strings), times as Rails' ``2026-03-10 09:58:00 UTC``, a ``nil`` as
  ``""``, and a replacement that cannot be resolved (no article in the update) as the
  placeholder itself with the reason: ``"#{article.id / no such method}"``.

Neither body carries the ticket's tags, nor the customer's locale (Zammad strips user
``preferences`` from webhook bodies). Both are read leniently (unknown keys dropped) but typed:
a wrong type names its path in the 400 answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from marshmallow import ValidationError, fields, validate

from adapters import fields as shared
from adapters.base import VendorSchema
from adapters.fields import Flag, Text, as_text
from adapters.signing import parse_iso_timestamp
from adapters.text import quoted_text, strip_tags
from rules.events import EventType, TicketStatus

__all__ = [
    "CUSTOM_EVENTS",
    "EVENT_TYPES",
    "STATUSES",
    "CustomBodySchema",
    "DefaultBodySchema",
    "drop_placeholders",
    "field_text",
    "html_to_text",
    "parse_zammad_time",
]

# --------------------------------------------------------------------------------------------
# Vocabulary

#: The events the adapter tells apart -> canonical type. ``created``: a trigger on ticket
#: creation (its article is the ticket's first); ``updated``: an update that added no
#: article (state, priority, custom fields...); ``article``: an update that added one (a
#: reply, a note).
EVENT_TYPES: Mapping[str, EventType] = {
    "created": EventType.TICKET_CREATED,
    "updated": EventType.TICKET_UPDATED,
    "article": EventType.COMMENT_ADDED,
}

#: ``event`` values of the connector's custom payload (one webhook each). Any other value is
#: an event the connector does not handle (answered "ignored").
CUSTOM_EVENTS = ("created", "updated")

#: Zammad's default state names, lower case -> canonical status. Pending states wait on
#: someone else: the first-reply clock pauses. A merged or removed ticket is over.
STATUSES: Mapping[str, TicketStatus] = {
    "new": TicketStatus.NEW,
    "open": TicketStatus.OPEN,
    "pending reminder": TicketStatus.WAITING,
    "pending close": TicketStatus.WAITING,
    "pending action": TicketStatus.WAITING,
    "closed": TicketStatus.CLOSED,
    "merged": TicketStatus.CLOSED,
    "removed": TicketStatus.CLOSED,
}

# A replacement Zammad left as is: "#{ticket.x / no such method}", "#{no object provided}".
_PLACEHOLDER = re.compile(r"#\{[^{}]*\}")
# Rails' TimeWithZone#to_s: "2026-03-10 09:58:00 UTC" or "2026-03-10 13:58:00 +0400".
_RAILS_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)\s*(UTC|Z|[+-]\d{2}:?\d{2})"
)


def drop_placeholders(value: Any) -> Any:
    """``value`` with every string that is a whole unresolved replacement made ``None``."""
    if isinstance(value, str):
        return None if _PLACEHOLDER.fullmatch(value.strip()) else value
    if isinstance(value, Mapping):
        return {key: drop_placeholders(item) for key, item in value.items()}
    if isinstance(value, list):
        return [drop_placeholders(item) for item in value]
    return value


def parse_zammad_time(value: str) -> datetime:
    """An ISO-8601 time with a zone (the default payload) or Rails' ``to_s`` of a time
    (the custom payload: ``2026-03-10 09:58:00 UTC``).

    :raises ValueError: neither, or no zone.
    """
    text = value.strip()
    match = _RAILS_TIME.fullmatch(text)
    if match is not None:
        day, clock, zone = match.groups()
        zone = "+00:00" if zone in ("UTC", "Z") else zone
        if len(zone) == 5:  # +0400
            zone = f"{zone[:3]}:{zone[3:]}"
        text = f"{day}T{clock}{zone}"
    return parse_iso_timestamp(text)


# --------------------------------------------------------------------------------------------
# HTML bodies

_BREAK_TAGS = frozenset({"br"})
_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "li",
        "ul",
        "ol",
        "tr",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "pre",
        "hr",
        "section",
        "article",
        "header",
        "footer",
    }
)
_SKIP_TAGS = frozenset({"script", "style", "head", "title"})


class _TextExtractor(HTMLParser):
    """Text lines of an HTML body; lines inside ``<blockquote>`` are prefixed ``> `` so that
    quoted mail reads as quoted. ``<br>`` ends a line (an empty one too); a block element
    only starts a new line when the current one has text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []
        self._parts: list[str] = []
        self._depth = 0
        self._line_depth = 0
        self._skip = 0

    def _end_line(self, *, force: bool) -> None:
        text = " ".join("".join(self._parts).split())
        if text or force:
            self.lines.append((self._line_depth, text))
        self._parts = []
        self._line_depth = self._depth

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BREAK_TAGS:
            self._end_line(force=True)
        elif tag == "blockquote":
            self._end_line(force=False)
            self._depth += 1
            self._line_depth = self._depth
        elif tag in _BLOCK_TAGS:
            self._end_line(force=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAK_TAGS:
            self._end_line(force=True)
        elif tag in _BLOCK_TAGS:
            self._end_line(force=False)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "blockquote":
            self._end_line(force=False)
            self._depth = max(0, self._depth - 1)
            self._line_depth = self._depth
        elif tag in _BLOCK_TAGS:
            self._end_line(force=False)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if not "".join(self._parts).strip():
            self._line_depth = self._depth
        self._parts.append(data)

    def text(self) -> str:
        self._end_line(force=False)
        return quoted_text(self.lines)


def html_to_text(body: str) -> str:
    """Plain text of an HTML article body (Zammad stores mail and web UI articles as HTML):
    block elements and ``<br>`` end lines, entities are decoded, quoted mail becomes ``> ``
    lines, scripts and styles are dropped."""
    parser = _TextExtractor()
    try:
        parser.feed(body)
        parser.close()
    except Exception:  # HTMLParser is lenient; whatever it still refuses is read as text
        return strip_tags(body)
    return parser.text().replace("\xa0", " ")


# --------------------------------------------------------------------------------------------
# Fields


class Name(fields.Field):
    """A named record: its name as a string, or the expanded object's ``name`` (the default
    payload writes ``"priority": {"id": 2, "name": "2 normal", ...}``)."""

    default_error_messages = {"invalid": "Not a name or an object with a name."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        if isinstance(value, Mapping):
            value = value.get("name")
            if value is None:
                return None
        if not isinstance(value, str):
            raise self.make_error("invalid")
        return value.strip() or None


class Id(shared.Id):
    """A Zammad id: an integer, or its text (older Zammad renders replacements as strings);
    kept as stripped text. ``""`` is no id, unless ``blank=False``."""

    max_length = 200


class IdList(fields.Field):
    """A list of ids (``article_ids``)."""

    default_error_messages = {"invalid": "Not a list of ids."}

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        out: list[str] = []
        errors: dict[int, list[str]] = {}
        for index, item in enumerate(value):
            text = as_text(item) if not isinstance(item, float) else None
            if text is None:
                errors[index] = ["Not a valid id."]
            else:
                out.append(text.strip())
        if errors:
            raise ValidationError(errors)
        return tuple(out)


class Timestamp(shared.Timestamp):
    """A time with a zone: ISO-8601 or Rails' ``2026-03-10 09:58:00 UTC``; ``""`` is none."""

    default_error_messages = {"invalid": "Not a time with a zone."}

    def parse(self, value: str) -> datetime:
        return parse_zammad_time(value)


def field_text(value: Any) -> str | None:
    """A custom attribute's value as text (``None``: no value, or not one a field can hold).

    A multi-select is its items separated by spaces (booleans are no items); an external data
    source's ``{"value": ..., "label": ...}`` is its value.
    """
    return shared.field_text(value, bool_items=False)


class FieldValues(shared.FieldValues):
    """Custom attribute values by attribute name (``{"care_category": "question"}``)."""

    default_error_messages = {"invalid": "Not an object of custom attribute values."}

    def value_text(self, value: Any) -> str | None:
        return field_text(value)


# --------------------------------------------------------------------------------------------
# The default payload


class UserSchema(VendorSchema):
    """An expanded user (``customer``, ``created_by``...), ``preferences`` stripped."""

    id = Id(load_default=None, allow_none=True)
    email = Text(load_default=None, allow_none=True)
    login = Text(load_default=None, allow_none=True)
    firstname = Text(load_default=None, allow_none=True)
    lastname = Text(load_default=None, allow_none=True)


class DefaultTicketSchema(VendorSchema):
    """``ticket`` of the default payload (custom attributes are read apart: their names are
    the desk's)."""

    id = Id(required=True, allow_none=False, blank=False)
    number = Text(load_default=None, allow_none=True)
    title = Text(load_default=None, allow_none=True)
    state = Name(load_default=None, allow_none=True)
    priority = Name(load_default=None, allow_none=True)
    customer_id = Id(load_default=None, allow_none=True)
    customer = fields.Nested(UserSchema, load_default=None, allow_none=True)
    created_by_id = Id(load_default=None, allow_none=True)
    updated_by_id = Id(load_default=None, allow_none=True)
    created_at = Timestamp(load_default=None, allow_none=True)
    updated_at = Timestamp(load_default=None, allow_none=True)
    article_ids = IdList(load_default=(), allow_none=True)
    article_count = fields.Integer(strict=True, load_default=None, allow_none=True)
    create_article_type = Name(load_default=None, allow_none=True)


class ArticleSchema(VendorSchema):
    """``article``: the one the update added; ``{}`` (every key missing) when none."""

    id = Id(load_default=None, allow_none=True)
    body = Text(load_default="", allow_none=True)
    content_type = Text(load_default=None, allow_none=True)
    internal = Flag(load_default=None, allow_none=True)
    sender = Name(load_default=None, allow_none=True)
    type = Name(load_default=None, allow_none=True)
    created_by_id = Id(load_default=None, allow_none=True)
    origin_by_id = Id(load_default=None, allow_none=True)
    created_at = Timestamp(load_default=None, allow_none=True)


class DefaultBodySchema(VendorSchema):
    """The default payload: ``{"ticket": ..., "article": ...}``."""

    ticket = fields.Nested(DefaultTicketSchema, required=True)
    article = fields.Nested(ArticleSchema, load_default=None, allow_none=True)


# --------------------------------------------------------------------------------------------
# The connector's custom payload


class CustomTicketSchema(VendorSchema):
    id = Id(required=True, allow_none=False, blank=False)
    number = Text(load_default=None, allow_none=True)
    title = Text(load_default=None, allow_none=True)
    state = Name(load_default=None, allow_none=True)
    priority = Name(load_default=None, allow_none=True)
    customer_id = Id(load_default=None, allow_none=True)
    created_by_id = Id(load_default=None, allow_none=True)
    updated_by_id = Id(load_default=None, allow_none=True)
    created_at = Timestamp(load_default=None, allow_none=True)
    updated_at = Timestamp(load_default=None, allow_none=True)
    # "fields" would shadow Schema.fields
    field_values = FieldValues(data_key="fields", load_default=dict, allow_none=True)


class CustomBodySchema(VendorSchema):
    """The connector's payload (``care_connector`` is the template's version)."""

    care_connector = fields.Integer(
        required=True, strict=True, validate=validate.Equal(1, error="Unknown template version.")
    )
    event = Text(required=True, validate=validate.OneOf(CUSTOM_EVENTS, error="Unknown event."))
    ticket = fields.Nested(CustomTicketSchema, required=True)
    customer = fields.Nested(UserSchema, load_default=None, allow_none=True)
    article = fields.Nested(ArticleSchema, load_default=None, allow_none=True)
