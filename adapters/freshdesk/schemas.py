"""marshmallow schemas for what Freshdesk sends, and its vocabulary.

Freshdesk has no webhook schema of its own: an automation rule's "Trigger Webhook" action
posts whatever body the rule defines, with Liquid placeholders rendered in it
(https://support.freshdesk.com/support/solutions/articles/132589-using-webhooks-in-automation-rules).
The connector defines that body (:func:`adapters.freshdesk.install.rule_body`), so there is
one shape, :class:`RuleBodySchema`, versioned by ``"care_connector": 1``. What the placeholders
render, as read in Freshdesk's own ``Helpdesk::TicketDrop``:

* ``{{ticket.priority}}`` and ``{{ticket.status}}`` are labels (``"High"``, ``"Waiting on
  Customer"``); ``{{ticket.priority_id}}`` and ``{{ticket.status_id}}`` the numbers;
* ``{{ticket.tags}}`` is the tag names joined by ``", "``;
* ``{{ticket.created_on}}`` and ``{{ticket.modified_on}}`` are Ruby times, written
  ``2025-02-03 15:59:12 UTC`` or ``2025-02-03 19:59:12 +0400`` (ISO-8601 is read too);
* ``{{ticket.latest_public_comment}}`` is HTML;
* an unknown placeholder renders as ``""``.

``{{triggered_event}}`` renders Freshdesk's pseudo-JSON without quotes, naming only the first
matching change: ``{ticket_action:created}``, ``{status:{from:4,to:6}}``,
``{priority:{from:3,to:1}}``, ``{note_type:private}`` (zulip/zulip
``zerver/webhooks/freshdesk/view.py``). :func:`triggered_change` reads its first key.

Values are read leniently (a placeholder left empty is no value, unknown keys are dropped)
but typed: a wrong JSON type names its path in the 400 answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from marshmallow import ValidationError, fields, validate

from adapters import fields as shared
from adapters.base import VendorSchema
from adapters.fields import Text, as_text
from adapters.text import quoted_text, strip_tags
from rules.events import EventType, TicketStatus

__all__ = [
    "EVENT_TYPES",
    "PRIORITIES",
    "PRIORITY_LABELS",
    "RULE_EVENTS",
    "SECRET_HEADER",
    "STATUSES",
    "STATUS_IDS",
    "RuleBodySchema",
    "html_to_text",
    "parse_time",
    "triggered_change",
]

# --------------------------------------------------------------------------------------------
# Vocabulary

#: The header the connector's rules send the shared secret in (Freshdesk signs nothing).
SECRET_HEADER = "X-Care-Secret"

#: The ``event`` values of the connector's rule bodies (one rule each, install.py).
RULE_EVENTS = ("created", "reply", "updated")

#: Vendor event code -> canonical type. The code is the rule body's ``event``; for the agent
#: update rule, ``updated:`` plus what ``{{triggered_event}}`` names first (a change of a
#: property the table does not list is a plain ``updated``).
EVENT_TYPES: Mapping[str, EventType] = {
    "created": EventType.TICKET_CREATED,
    "reply": EventType.COMMENT_ADDED,
    "updated": EventType.TICKET_UPDATED,
    "updated:reply_sent": EventType.COMMENT_ADDED,
    "updated:status": EventType.STATUS_CHANGED,
    "updated:priority": EventType.PRIORITY_CHANGED,
    "updated:custom_field": EventType.FIELDS_CHANGED,
    "updated:deleted": EventType.TICKET_DELETED,
    "updated:spam": EventType.TICKET_DELETED,
}

#: Freshdesk priorities: 1 Low, 2 Medium, 3 High, 4 Urgent (python-freshdesk
#: ``freshdesk/v2/models.py``); placeholders render the label.
PRIORITIES: Mapping[int, str] = {1: "Low", 2: "Medium", 3: "High", 4: "Urgent"}
PRIORITY_LABELS: Mapping[str, str] = {label.lower(): str(n) for n, label in PRIORITIES.items()}

#: Built-in statuses by number: 2 Open, 3 Pending, 4 Resolved, 5 Closed; custom statuses are
#: 6 and up and read by name. Pending and the stock "Waiting on ..." statuses wait on someone
#: else: the first-reply clock pauses.
STATUS_IDS: Mapping[int, TicketStatus] = {
    2: TicketStatus.OPEN,
    3: TicketStatus.WAITING,
    4: TicketStatus.SOLVED,
    5: TicketStatus.CLOSED,
}
STATUSES: Mapping[str, TicketStatus] = {
    "open": TicketStatus.OPEN,
    "pending": TicketStatus.WAITING,
    "waiting on customer": TicketStatus.WAITING,
    "waiting on third party": TicketStatus.WAITING,
    "resolved": TicketStatus.SOLVED,
    "closed": TicketStatus.CLOSED,
}

_TRIGGER_KEY = re.compile(r"\s*\{\s*([A-Za-z0-9_]+)\s*:\s*\{?\s*([^,{}]*)")
_RUBY_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)\s*"
    r"(Z|UTC|GMT|[+-]\d{2}:?\d{2})"
)


def triggered_change(value: str | None) -> tuple[str, str] | None:
    """The first key of ``{{triggered_event}}`` and its value (for a property change, the
    part before the first comma: ``from:4``): ``("status", "from:4")``, ``("ticket_action",
    "deleted")``; ``None`` when it does not read."""
    if not value:
        return None
    match = _TRIGGER_KEY.match(value)
    if match is None:
        return None
    return match.group(1).lower(), match.group(2).strip().lower()


def parse_time(value: str) -> datetime | None:
    """A time as a placeholder renders it (``2025-02-03 15:59:12 UTC``, ``... +0400``, or
    ISO-8601 with a zone); ``None`` when it does not read or has no zone."""
    text = value.strip()
    match = _RUBY_TIME.fullmatch(text)
    if match is None:
        return None
    day, clock, zone = match.groups()
    if len(clock) == 5:
        clock += ":00"
    if "." in clock:  # Python reads at most microseconds
        whole, fraction = clock.split(".")
        clock = f"{whole}.{fraction[:6].ljust(6, '0')}"
    if zone in ("Z", "UTC", "GMT"):
        zone = "+00:00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    try:
        parsed = datetime.fromisoformat(f"{day}T{clock}{zone}")
        # A time near year 1 or 9999 may have no UTC equivalent: it does not read either.
        return parsed.astimezone(UTC) if parsed.utcoffset() is not None else None
    except (ValueError, OverflowError):
        return None


_BLOCKS = frozenset(
    {"p", "div", "li", "ul", "ol", "tr", "table", "blockquote", "pre", "h1", "h2", "h3", "h4"}
)
_SPACE = re.compile(r"[ \t\r\n\f]+")


class _TextParser(HTMLParser):
    """HTML to lines of text; lines inside ``<blockquote>`` are quoted with ``> ``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []
        self.current = ""
        self.depth = 0
        self.line_depth = 0

    def _break(self, *, hard: bool = True) -> None:
        """End the line; a block's edge (``hard=False``) ends only a line with text in it."""
        if hard or self.current.strip():
            self.lines.append((self.line_depth, self.current))
        self.current = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._break()
        elif tag in _BLOCKS:
            self._break(hard=False)
        if tag == "blockquote":
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self._break(hard=False)
        if tag == "blockquote" and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        text = _SPACE.sub(" ", data)
        if not self.current.strip():
            self.current, self.line_depth = "", self.depth
            text = text.lstrip()
        self.current += text


def html_to_text(value: str) -> str:
    """Plain text of the HTML Freshdesk renders for comments: one line per block or ``<br>``,
    quoted blocks prefixed with ``> ``, entities decoded."""
    parser = _TextParser()
    try:
        parser.feed(value)
        parser.close()
    except Exception:  # a parser failure on odd markup must not refuse the delivery
        return strip_tags(value)
    parser._break(hard=False)
    return quoted_text((depth, line.replace("\xa0", " ").strip()) for depth, line in parser.lines)


# --------------------------------------------------------------------------------------------
# Fields


class Id(shared.Id):
    """An id as stripped text; ``""`` (an empty placeholder) is no id unless ``blank=False``."""

    max_length = 200


class Time(fields.Field):
    """A rendered time (see :func:`parse_time`); ``""`` or an unreadable rendering is no time,
    since the placeholder's format is Freshdesk's to choose."""

    default_error_messages = {"invalid": "Not a time string."}

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> datetime | None:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        return parse_time(value)


class TagList(fields.Field):
    """Tags: ``{{ticket.tags}}`` renders them joined by ``", "``; a JSON list is read too."""

    default_error_messages = {"invalid": "Not a list of tags.", "invalid_item": "Not a tag."}

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> tuple[str, ...]:
        if isinstance(value, str):
            items: list[Any] = value.split(",")
        elif isinstance(value, list):
            items = value
        else:
            raise self.make_error("invalid")
        errors: dict[int, list[str]] = {}
        tags: list[str] = []
        for index, item in enumerate(items):
            if not isinstance(item, str):
                errors[index] = [self.error_messages["invalid_item"]]
            elif item.strip():
                tags.append(item.strip())
        if errors:
            raise ValidationError(errors)
        return tuple(dict.fromkeys(tags))


def _rule_field_text(value: Any) -> str | None:
    """A rendered field value as stripped text (a boolean as ``true``/``false``); ``None``:
    no value, or one that is not text, a number or a boolean."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = as_text(value)
    return None if text is None else text.strip()


class FieldValues(shared.FieldValues):
    """Custom field values by API name: ``{"cf_care_price": "35"}``; empty values dropped."""

    def value_text(self, value: Any) -> str | None:
        return _rule_field_text(value)


# --------------------------------------------------------------------------------------------
# The connector's rule body


class RuleTicketSchema(VendorSchema):
    id = Id(required=True, allow_none=False, blank=False)
    subject = Text(load_default=None, allow_none=True)
    description = Text(load_default=None, allow_none=True)
    status = Text(load_default=None, allow_none=True)
    status_id = Text(load_default=None, allow_none=True)
    priority = Text(load_default=None, allow_none=True)
    priority_id = Text(load_default=None, allow_none=True)
    tags = TagList(load_default=None, allow_none=True)
    created_at = Time(load_default=None, allow_none=True)
    updated_at = Time(load_default=None, allow_none=True)
    source = Text(load_default=None, allow_none=True)
    # "fields" would shadow Schema.fields
    field_values = FieldValues(data_key="fields", load_default=dict, allow_none=True)


class RuleRequesterSchema(VendorSchema):
    id = Id(load_default=None, allow_none=True)
    email = Text(load_default=None, allow_none=True)
    name = Text(load_default=None, allow_none=True)
    language = Text(load_default=None, allow_none=True)


class RuleCommentSchema(VendorSchema):
    body = Text(load_default="", allow_none=True)


class RuleBodySchema(VendorSchema):
    """The body of the connector's automation rules (``care_connector`` is the template
    version; Freshdesk may send the number as text)."""

    care_connector = Text(
        required=True, validate=validate.Equal("1", error="Unknown template version.")
    )
    event = Text(required=True)
    triggered_event = Text(load_default=None, allow_none=True)
    ticket = fields.Nested(RuleTicketSchema, required=True)
    requester = fields.Nested(RuleRequesterSchema, load_default=None, allow_none=True)
    comment = fields.Nested(RuleCommentSchema, load_default=None, allow_none=True)
