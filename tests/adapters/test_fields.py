"""The marshmallow fields and text helpers shared by the adapters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from marshmallow import Schema, ValidationError

from adapters.fields import (
    FieldValues,
    Flag,
    Id,
    Text,
    Timestamp,
    as_text,
    blank_to_none,
    field_text,
    short_repr,
)
from adapters.text import quoted_text, strip_tags


class ShortId(Id):
    max_length: ClassVar[int | None] = 5


class Sample(Schema):
    text = Text()
    id = Id()
    own = Id(blank=False)
    short = ShortId()
    at = Timestamp()
    flag = Flag()
    fields = FieldValues()


@pytest.mark.parametrize(
    ("value", "text"), [("a", "a"), (7, "7"), (1.5, "1.5"), (True, None), (None, None), ([], None)]
)
def test_as_text(value: Any, text: str | None) -> None:
    assert as_text(value) == text


def test_small_helpers() -> None:
    assert (
        blank_to_none("  x ") == "x" and blank_to_none("  ") is None and blank_to_none(None) is None
    )
    assert short_repr("x" * 200).endswith("...") and len(short_repr("x" * 200)) == 80
    assert field_text(["a", 2]) == "a 2" and field_text({"value": 3}) == "3"
    assert field_text([True]) == "True" and field_text([True], bool_items=False) is None
    assert field_text(True) == "true" and field_text({"x": 1}) is None


def test_sample_schema_reads_every_field() -> None:
    data = Sample().load(
        {
            "text": 12,
            "id": " 42 ",
            "own": "7",
            "short": "12345",
            "at": "2026-03-10T09:58:00Z",
            "flag": "yes",
            "fields": {"care_price": 40, "empty": "", "none": None},
        }
    )
    assert data == {
        "text": "12",
        "id": "42",
        "own": "7",
        "short": "12345",
        "at": datetime(2026, 3, 10, 9, 58, tzinfo=UTC),
        "flag": True,
        "fields": {"care_price": "40"},
    }
    assert Sample().load({"id": "", "at": "", "flag": ""}) == {"id": None, "at": None, "flag": None}


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"text": True}, "text"),
        ({"id": 1.5}, "id"),
        ({"own": " "}, "own"),
        ({"short": "123456"}, "short"),
        ({"at": "yesterday"}, "at"),
        ({"at": 5}, "at"),
        ({"flag": "maybe"}, "flag"),
        ({"fields": {"x": {"nested": 1}}}, "fields"),
        ({"fields": []}, "fields"),
    ],
)
def test_bad_values_name_their_field(payload: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Sample().load(payload)
    assert path in caught.value.messages


def test_text_helpers() -> None:
    assert strip_tags("<p>a &amp; b</p>").split() == ["a", "&", "b"]
    lines = [(0, ""), (0, "Thanks"), (0, ""), (0, ""), (1, "I agree"), (2, "old"), (0, "")]
    assert quoted_text(lines) == "Thanks\n\n> I agree\n> > old"
