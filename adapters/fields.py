"""marshmallow fields and small value helpers shared by the help-desk adapters.

Every desk sends loosely typed JSON (a template placeholder may render a number as text, an
empty placeholder as ``""``), so the fields here read values leniently but typed: a value of
the wrong JSON type fails with a one-line message naming it. What differs per desk (an id's
longest length, how a time is written, how a custom field value reads) is a class attribute
or a method an adapter's subclass overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from marshmallow import ValidationError, fields

from adapters.signing import parse_iso_timestamp

__all__ = [
    "FieldValues",
    "Flag",
    "Id",
    "Text",
    "Timestamp",
    "as_text",
    "blank_to_none",
    "describe_account",
    "field_text",
    "full_name",
    "short_repr",
]


def as_text(value: Any) -> str | None:
    """``value`` as text when it is a string or a number (not a boolean), else ``None``."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def blank_to_none(value: object) -> str | None:
    """``value`` stripped; ``None`` for no value, one a placeholder left empty, or one that
    is not a string (a JSON answer's ``null``, number or object where text was expected)."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


def full_name(*parts: object) -> str | None:
    """The non-blank text parts joined by spaces (``firstname``, ``lastname``); ``None``
    when there is none."""
    return " ".join(text for text in map(blank_to_none, parts) if text) or None


def describe_account(kind: str, account_id: object, name: str | None, email: str | None) -> str:
    """Whose credentials they are, as ``check_credentials`` says it:
    ``"user 900 Care Bot <bot@example.com>"``."""
    who = " ".join(part for part in (name, f"<{email}>" if email else None) if part)
    return f"{kind} {account_id}" + (f" {who}" if who else "")


def short_repr(value: object) -> str:
    """``repr(value)`` cut to 80 characters, for a one-line error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def field_text(value: Any, *, bool_items: bool = True) -> str | None:
    """A custom field value as text (``None``: no value, or not one a field can hold).

    A multi-select (a list of strings or integers) is its items separated by spaces; an
    object ``{"value": ...}`` (an external data source's option) is its value.

    :param bool_items: whether a list item may be a boolean (written ``True``/``False``).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(
        isinstance(item, str | int) and (bool_items or not isinstance(item, bool)) for item in value
    ):
        return " ".join(str(item) for item in value)
    if isinstance(value, Mapping) and "value" in value:
        return field_text(value["value"], bool_items=bool_items)
    return None


class Text(fields.Field):
    """A string; a number is taken as its text (a rendered placeholder may arrive unquoted)."""

    default_error_messages = {"invalid": "Not a valid string."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = as_text(value)
        if text is None:
            raise self.make_error("invalid")
        return text


class Id(fields.Field):
    """An id: a string or an integer, kept as stripped text; ``""`` (an empty placeholder) is
    no id, unless ``blank=False`` (a ticket's own id). A subclass may cap its length with
    :attr:`max_length`."""

    #: Longest id accepted (``None``: any length).
    max_length: ClassVar[int | None] = None

    default_error_messages = {"invalid": "Not a valid id.", "blank": "Must not be empty."}

    def __init__(self, *, blank: bool = True, **kwargs: Any) -> None:
        self._blank = blank
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        text = None if isinstance(value, float) else as_text(value)
        if text is None or (self.max_length is not None and len(text) > self.max_length):
            raise self.make_error("invalid")
        if not text.strip() and not self._blank:
            raise self.make_error("blank")
        return text.strip() or None


class Timestamp(fields.Field):
    """A time with a zone, read by :meth:`parse` (ISO-8601 here, nanoseconds allowed);
    ``""`` is no time."""

    default_error_messages = {"invalid": "Not an ISO-8601 time with a zone."}

    def parse(self, value: str) -> datetime:
        """The time ``value`` names.

        :raises ValueError: it does not read as a time with a zone.
        """
        return parse_iso_timestamp(value)

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> datetime | None:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if not value.strip():
            return None
        try:
            return self.parse(value)
        except ValueError:
            raise self.make_error("invalid") from None


class Flag(fields.Field):
    """A boolean, or its text (``"true"``/``"false"``, ``"1"``/``"0"``, ``"yes"``/``"no"``);
    ``""`` is unknown."""

    default_error_messages = {"invalid": "Not a boolean."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool | None:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            if not text:
                return None
        raise self.make_error("invalid")


class FieldValues(fields.Field):
    """Custom field values by key (``{"care_category": "question"}``), each read by
    :meth:`value_text`; empty values are dropped, unreadable ones named in the error."""

    default_error_messages = {"invalid": "Not an object of custom field values."}

    def value_text(self, value: Any) -> str | None:
        """One value as text (``None``: no value, or an unreadable one when not ``None``)."""
        return field_text(value)

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise self.make_error("invalid")
        errors: dict[str, list[str]] = {}
        out: dict[str, str] = {}
        for key, item in value.items():
            text = self.value_text(item)
            if text is None and item is not None:
                errors[str(key)] = ["Not a valid field value."]
            elif text:
                out[str(key)] = text
        if errors:
            raise ValidationError(errors)
        return out
