"""Priority levels, desk mappings and the queue position (care-policy.md section 2)."""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path

import pytest

from rules.events import PriorityLevel
from rules.policy import Policy
from rules.priorities import PriorityMap, level_for, priority_update, queue_position

HIGHEST = PriorityLevel.HIGHEST
HIGH = PriorityLevel.HIGH
REGULAR = PriorityLevel.REGULAR
LEVELS = [HIGHEST, HIGH, REGULAR]

# The desk table of care-policy.md section 2.
SPEC_MAPS = {
    "zendesk": PriorityMap("field", "urgent", "high", "normal"),
    "freshdesk": PriorityMap("field", "4", "3", "2"),
    "zammad": PriorityMap("field", "3 high", "3 high", "2 normal"),
    "helpscout": PriorityMap("tag", "care_priority_highest", "care_priority_high", ""),
    "rt": PriorityMap("field", "90", "70", "50"),
}


def shipped_priorities() -> dict[str, dict[str, object]]:
    path = Path(__file__).resolve().parents[2] / "connector" / "defaults.toml"
    with path.open("rb") as fh:
        table = tomllib.load(fh)["priorities"]
    assert isinstance(table, dict)
    return table


SHIPPED = shipped_priorities()
DESKS = sorted(SHIPPED)


def test_every_shipped_desk_is_tested() -> None:
    assert set(SHIPPED) == set(SPEC_MAPS)


@pytest.mark.parametrize("desk", DESKS)
def test_shipped_maps_match_the_policy(desk: str) -> None:
    assert PriorityMap.from_mapping(SHIPPED[desk]) == SPEC_MAPS[desk]


@pytest.mark.parametrize(
    ("plan", "level"),
    [("vip", HIGHEST), ("standard", HIGH), ("free_period", REGULAR), ("credits", REGULAR)],
)
def test_level_for(policy: Policy, plan: str, level: PriorityLevel) -> None:
    assert level_for(plan, policy) is level


def test_level_for_unknown_plan(policy: Policy) -> None:
    with pytest.raises(ValueError, match="unknown plan 'gold'"):
        level_for("gold", policy)


# What each desk writes for a new ticket (no priority yet), per target level.
@pytest.mark.parametrize(
    ("desk", "target", "written"),
    [
        ("zendesk", HIGHEST, "urgent"),
        ("zendesk", HIGH, "high"),
        ("zendesk", REGULAR, "normal"),
        ("freshdesk", HIGHEST, "4"),
        ("freshdesk", HIGH, "3"),
        ("freshdesk", REGULAR, "2"),
        ("zammad", HIGHEST, "3 high"),
        ("zammad", HIGH, "3 high"),
        ("zammad", REGULAR, "2 normal"),
        ("helpscout", HIGHEST, "care_priority_highest"),
        ("helpscout", HIGH, "care_priority_high"),
        ("helpscout", REGULAR, None),  # no tag for regular
        ("rt", HIGHEST, "90"),
        ("rt", HIGH, "70"),
        ("rt", REGULAR, "50"),
    ],
)
def test_new_ticket(desk: str, target: PriorityLevel, written: str | None) -> None:
    pmap = PriorityMap.from_mapping(SHIPPED[desk])
    assert priority_update(None, target, pmap) == written
    assert priority_update("", target, pmap) == written


# Every desk, every current level (as the desk writes it) and every target: the connector
# raises, leaves equal alone, and never lowers.
MATRIX = [
    (desk, current, target)
    for desk in DESKS
    for current, target in itertools.product(LEVELS, LEVELS)
    if SPEC_MAPS[desk].value(current) is not None
]


@pytest.mark.parametrize(("desk", "current", "target"), MATRIX)
def test_never_lowers(desk: str, current: PriorityLevel, target: PriorityLevel) -> None:
    pmap = PriorityMap.from_mapping(SHIPPED[desk])
    current_value = pmap.value(current)
    result = priority_update(current_value, target, pmap)
    if current.rank >= target.rank or current_value == pmap.value(target):
        assert result is None
    else:
        assert result == pmap.value(target)


@pytest.mark.parametrize(
    ("desk", "current", "target", "written"),
    [
        # Zendesk sends any casing; all mean the same level.
        ("zendesk", "URGENT", HIGH, None),
        ("zendesk", "Urgent", HIGHEST, None),
        ("zendesk", " urgent ", REGULAR, None),
        ("zendesk", "HIGH", HIGHEST, "urgent"),
        ("zendesk", "High", HIGH, None),
        ("zendesk", "NORMAL", HIGH, "high"),
        ("zendesk", "low", REGULAR, "normal"),  # below every level: raised
        ("zendesk", "low", HIGHEST, "urgent"),
        # Freshdesk: 1 is low, below regular.
        ("freshdesk", "1", REGULAR, "2"),
        ("freshdesk", "4", HIGH, None),
        ("freshdesk", "3", HIGHEST, "4"),
        # Zammad: "3 high" is both highest and high; nothing to write either way.
        ("zammad", "3 high", HIGHEST, None),
        ("zammad", "3 HIGH", HIGH, None),
        ("zammad", "3 high", REGULAR, None),
        ("zammad", "2 normal", HIGHEST, "3 high"),
        ("zammad", "1 low", REGULAR, "2 normal"),
        # Request Tracker: numbers between the levels count by number.
        ("rt", "95", HIGHEST, None),  # an agent went beyond highest
        ("rt", "80", HIGHEST, "90"),
        ("rt", "80", HIGH, None),  # an agent raised a standard ticket: kept
        ("rt", "60", HIGH, "70"),
        ("rt", "60", REGULAR, None),
        ("rt", "10", REGULAR, "50"),
        # Help Scout: the priority tag present, if any.
        ("helpscout", "care_priority_highest", HIGH, None),
        ("helpscout", "CARE_PRIORITY_HIGH", HIGHEST, "care_priority_highest"),
        ("helpscout", "care_priority_high", HIGH, None),
        ("helpscout", "care_priority_high", REGULAR, None),
    ],
)
def test_desk_values(desk: str, current: str, target: PriorityLevel, written: str | None) -> None:
    pmap = PriorityMap.from_mapping(SHIPPED[desk])
    assert priority_update(current, target, pmap) == written


@pytest.mark.parametrize(
    ("desk", "value", "level"),
    [
        ("zendesk", "URGENT", HIGHEST),
        ("zendesk", "urgent", HIGHEST),
        ("zendesk", "Urgent", HIGHEST),
        ("zendesk", "normal", REGULAR),
        ("zendesk", "low", None),
        ("zendesk", None, None),
        ("zendesk", "   ", None),
        ("zammad", "3 high", HIGHEST),  # shared value: the higher level
        ("zammad", "2 normal", REGULAR),
        ("zammad", "1 low", None),
        ("zammad", "5 very high", HIGHEST),
        ("freshdesk", "2", REGULAR),
        ("freshdesk", "1", None),
        ("rt", "99", HIGHEST),
        ("rt", "70", HIGH),
        ("rt", "69", REGULAR),
        ("rt", "49", None),
        ("rt", "high", None),
        ("helpscout", "care_priority_highest", HIGHEST),
        ("helpscout", "some_other_tag", None),
    ],
)
def test_level_of(desk: str, value: str | None, level: PriorityLevel | None) -> None:
    assert PriorityMap.from_mapping(SHIPPED[desk]).level_of(value) == level


def test_words_are_not_compared_by_number() -> None:
    # A map with word values never reads a number as a level.
    assert SPEC_MAPS["zendesk"].level_of("5") is None


@pytest.mark.parametrize(
    ("tags", "current"),
    [
        ((), None),
        (("vip", "billing"), None),
        (("care_priority_high",), "care_priority_high"),
        (("care_priority_high", "CARE_PRIORITY_HIGHEST"), "care_priority_highest"),
    ],
)
def test_current_tag(tags: tuple[str, ...], current: str | None) -> None:
    assert SPEC_MAPS["helpscout"].current_tag(tags) == current


def test_value_of_empty_is_none() -> None:
    assert SPEC_MAPS["helpscout"].value(REGULAR) is None
    assert SPEC_MAPS["rt"].value(REGULAR) == "50"


def test_from_mapping_accepts_integers() -> None:
    pmap = PriorityMap.from_mapping({"kind": "field", "highest": 4, "high": 3, "regular": 2})
    assert pmap == SPEC_MAPS["freshdesk"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "field", "highest": "a", "high": "b"}, "missing key 'regular'"),
        (
            {"kind": "field", "highest": "a", "high": "b", "regular": "c", "low": "d"},
            "unknown key 'low'",
        ),
        (
            {"kind": "flag", "highest": "a", "high": "b", "regular": "c"},
            "kind must be 'field' or 'tag'",
        ),
        (
            {"kind": "field", "highest": ["a"], "high": "b", "regular": "c"},
            "'highest' must be a string",
        ),
        (
            {"kind": "field", "highest": True, "high": "b", "regular": "c"},
            "'highest' must be a string",
        ),
    ],
)
def test_from_mapping_errors(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PriorityMap.from_mapping(data)


def test_bad_kind_in_constructor() -> None:
    with pytest.raises(ValueError, match="kind must be 'field' or 'tag'"):
        PriorityMap("flag", "a", "b", "c")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ticket", "recent", "expected"),
    [
        ("7", [], (1, 1)),
        ("7", ["5", "6"], (3, 3)),  # not listed: the newest
        ("5", ["5", "6", "7"], (1, 3)),
        ("6", ["5", "6", "7"], (2, 3)),
        ("7", ["5", "6", "7"], (3, 3)),
        ("6", ["5", "5", "6"], (2, 2)),  # duplicates counted once
    ],
)
def test_queue_position(ticket: str, recent: list[str], expected: tuple[int, int]) -> None:
    assert queue_position(ticket, recent) == expected


def test_queue_position_needs_a_ticket() -> None:
    with pytest.raises(ValueError, match="ticket_id must not be empty"):
        queue_position("", ["1"])
