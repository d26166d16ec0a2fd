"""marshmallow schemas for what Help Scout sends, and the vocabulary of its webhooks.

Every ``convo.*`` webhook except ``convo.deleted`` carries a **v2 Conversation object**
(https://developer.helpscout.com/webhooks/; the shape of the "Get Conversation" answer,
https://developer.helpscout.com/mailbox-api/endpoints/conversations/get/): numeric ids, tags as
``{"id", "color", "tag"}`` objects, custom fields as ``{"id", "name", "value", "text"}``, the
primary customer as a person (``id``, ``first``, ``last``, ``email``) and, where the body embeds
them, the threads under ``_embedded.threads``. ``convo.deleted`` sends ``{"id": ...}`` only.
The event name is the ``X-HelpScout-Event`` header, never in the body.

Read leniently (:class:`~adapters.base.VendorSchema`: unknown keys dropped) but typed: a wrong
type names its path in the 400 answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

from marshmallow import ValidationError, fields

from adapters import fields as shared
from adapters.base import VendorSchema
from adapters.fields import Text, Timestamp
from adapters.text import strip_tags
from rules.events import EventType, TicketStatus

__all__ = [
    "DELETED_EVENT",
    "EVENT_TYPES",
    "LEGACY_KEYS",
    "STATUSES",
    "THREAD_EVENTS",
    "ConversationSchema",
    "DeletedSchema",
    "field_text",
    "html_text",
]

# --------------------------------------------------------------------------------------------
# Vocabulary

#: ``X-HelpScout-Event`` values the connector handles -> canonical type. Others
#: (``convo.assigned``, ``convo.moved``, ``convo.merged``, ``customer.*``, the
#: ``helpscout.test`` ping...) are answered "ignored". A ``convo.status`` to ``spam`` ends the
#: ticket like a deletion (adapter.py).
EVENT_TYPES: Mapping[str, EventType] = {
    "convo.created": EventType.TICKET_CREATED,
    "convo.customer.reply.created": EventType.COMMENT_ADDED,
    "convo.agent.reply.created": EventType.COMMENT_ADDED,
    "convo.note.created": EventType.COMMENT_ADDED,
    "convo.tags": EventType.TAGS_CHANGED,
    "convo.status": EventType.STATUS_CHANGED,
    "convo.custom-fields": EventType.FIELDS_CHANGED,
    "convo.deleted": EventType.TICKET_DELETED,
}

#: The one event whose body is not a conversation.
DELETED_EVENT = "convo.deleted"

#: Thread events -> (who wrote the thread, whether customers see it). The thread is the newest
#: embedded one of that author (a note for ``convo.note.created``).
THREAD_EVENTS: Mapping[str, tuple[str, bool]] = {
    "convo.customer.reply.created": ("customer", True),
    "convo.agent.reply.created": ("user", True),
    "convo.note.created": ("user", False),
}

#: Help Scout status -> canonical status. ``pending`` waits on someone else (the first-reply
#: clock pauses); ``closed`` reopens on the customer's next reply, so it is "solved".
STATUSES: Mapping[str, TicketStatus] = {
    "active": TicketStatus.OPEN,
    "open": TicketStatus.OPEN,
    "pending": TicketStatus.WAITING,
    "closed": TicketStatus.SOLVED,
}

#: Keys of the legacy (v1, deprecated 2021) conversation payload that v2 does not have.
LEGACY_KEYS = ("customer", "mailbox", "threadCount", "owner", "isDraft", "modifiedAt")


# --------------------------------------------------------------------------------------------
# Fields


class Id(shared.Id):
    """A Help Scout id: an integer (or its text), kept as stripped text; ``""`` is no id,
    unless ``blank=False`` (the conversation's own id)."""

    max_length = 64


class TagList(fields.Field):
    """Tags: v2 objects ``{"id": 9150, "color": "#929499", "tag": "vip"}``, or bare strings."""

    default_error_messages = {
        "invalid": "Not a list of tags.",
        "invalid_item": "Not a valid tag.",
    }

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        errors: dict[int, list[str]] = {}
        tags: list[str] = []
        for index, item in enumerate(value):
            name = item.get("tag") if isinstance(item, Mapping) else item
            if isinstance(name, str):
                if name.strip():
                    tags.append(name.strip())
            else:
                errors[index] = [self.error_messages["invalid_item"]]
        if errors:
            raise ValidationError(errors)
        return tuple(tags)


def field_text(value: Any) -> str | None:
    """A custom field's value as text (``None``: no value or an unreadable one)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float):
        return str(value)
    return None


# --------------------------------------------------------------------------------------------
# Thread bodies: HTML to the plain text the rules read

_BLOCKS = frozenset(
    "address article aside blockquote dd div dl dt figure footer h1 h2 h3 h4 h5 h6 header hr "
    "li ol p pre section table tbody td tfoot th thead tr ul".split()
)
_SKIPPED = frozenset(("script", "style", "head", "title"))
_LOOKS_HTML = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>")


class _TextParser(HTMLParser):
    """Block elements end lines, ``<br>`` breaks one; ``<blockquote>`` lines get ``> ``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._line_depth = 0
        self._quote = 0
        self._skip = 0
        self._pre = 0

    def _flush(self) -> None:
        text = "".join(self._line).strip()
        if text:
            self.lines.append("> " * self._line_depth + text)
        else:
            self.lines.append(">" * self._line_depth)
        self._line = []
        self._line_depth = self._quote

    def _paragraph(self) -> None:
        if self._line:
            self._flush()
        self.lines.append(">" * self._quote)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif tag == "br":
            self._flush()
        elif tag in _BLOCKS:
            if tag == "p":
                self._paragraph()
            elif self._line:
                self._flush()
            if tag == "blockquote":
                self._quote += 1
            elif tag == "pre":
                self._pre += 1
            self._line_depth = self._quote

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            if tag == "p":
                self._paragraph()
            elif self._line:
                self._flush()
            if tag == "blockquote":
                self._quote = max(0, self._quote - 1)
            elif tag == "pre":
                self._pre = max(0, self._pre - 1)
            self._line_depth = self._quote

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            first, *rest = data.split("\n")
            self._line.append(first)
            for part in rest:
                self._flush()
                self._line.append(part)
            return
        text = re.sub(r"\s+", " ", data)
        if not self._line:
            self._line_depth = self._quote
            text = text.lstrip()
        if text:
            self._line.append(text)

    def text(self) -> str:
        if self._line:
            self._flush()
        out: list[str] = []
        for line in self.lines:
            if line.strip(">") or (out and out[-1].strip(">")):
                out.append(line)
        while out and not out[-1].strip(">"):
            out.pop()
        return "\n".join(out).strip()


def html_text(body: str) -> str:
    """A thread body as plain text: Help Scout stores threads as HTML (customer e-mails,
    replies written in the editor); a body without markup is returned as it is.

    Never raises: a body the parser cannot read loses its tags by a plain substitution.
    """
    if not _LOOKS_HTML.search(body):
        return body.strip()
    parser = _TextParser()
    try:
        parser.feed(body)
        parser.close()
        return parser.text()
    except Exception:  # HTMLParser's edge cases (bad marked sections) must not escape
        return strip_tags(body)


# --------------------------------------------------------------------------------------------
# The v2 conversation


class PersonSchema(VendorSchema):
    """``createdBy``, ``primaryCustomer``, a thread's ``customer``: id, type and names."""

    id = Id(load_default=None, allow_none=True)
    type = Text(load_default=None, allow_none=True)
    first = Text(load_default=None, allow_none=True)
    last = Text(load_default=None, allow_none=True)
    email = Text(load_default=None, allow_none=True)


class ThreadSchema(VendorSchema):
    """One embedded thread: a customer message, an agent reply (``message``), a ``note``, a
    ``lineitem`` (an action)..."""

    id = Id(load_default=None, allow_none=True)
    type = Text(load_default=None, allow_none=True)
    state = Text(load_default=None, allow_none=True)
    body = Text(load_default=None, allow_none=True)
    created_by = fields.Nested(
        PersonSchema, data_key="createdBy", load_default=None, allow_none=True
    )
    created_at = Timestamp(data_key="createdAt", load_default=None, allow_none=True)


class EmbeddedSchema(VendorSchema):
    threads = fields.List(fields.Nested(ThreadSchema), load_default=list, allow_none=True)


class CustomFieldSchema(VendorSchema):
    """``{"id": 8, "name": "Account Type", "value": "8518", "text": "Free"}``: a dropdown's
    ``value`` is the option id and ``text`` its label; other kinds repeat the value."""

    id = Id(required=True, allow_none=False, blank=False)
    name = Text(load_default=None, allow_none=True)
    value = fields.Raw(load_default=None, allow_none=True)
    text = fields.Raw(load_default=None, allow_none=True)


class SourceSchema(VendorSchema):
    type = Text(load_default=None, allow_none=True)
    via = Text(load_default=None, allow_none=True)


class ConversationSchema(VendorSchema):
    """The v2 Conversation object of every ``convo.*`` webhook but ``convo.deleted``."""

    id = Id(required=True, allow_none=False, blank=False)
    number = Id(load_default=None, allow_none=True)
    subject = Text(load_default=None, allow_none=True)
    preview = Text(load_default=None, allow_none=True)
    status = Text(load_default=None, allow_none=True)
    state = Text(load_default=None, allow_none=True)
    mailbox_id = Id(data_key="mailboxId", load_default=None, allow_none=True)
    created_at = Timestamp(data_key="createdAt", load_default=None, allow_none=True)
    created_by = fields.Nested(
        PersonSchema, data_key="createdBy", load_default=None, allow_none=True
    )
    primary_customer = fields.Nested(PersonSchema, data_key="primaryCustomer", required=True)
    tags = TagList(load_default=(), allow_none=True)
    custom_fields = fields.List(
        fields.Nested(CustomFieldSchema),
        data_key="customFields",
        load_default=list,
        allow_none=True,
    )
    source = fields.Nested(SourceSchema, load_default=None, allow_none=True)
    embedded = fields.Nested(
        EmbeddedSchema, data_key="_embedded", load_default=None, allow_none=True
    )


class DeletedSchema(VendorSchema):
    """The body of ``convo.deleted``: ``{"id": <the deleted conversation>}``."""

    id = Id(required=True, allow_none=False, blank=False)
