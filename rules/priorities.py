"""Priorities: a plan's level, how each desk writes it, and the queue position.

care-policy.md section 2: plans map to three levels (``highest``, ``high``, ``regular``); each
desk writes them in its own terms (a field value, or a tag where the desk has no priority
field); the connector never lowers a priority an agent has raised.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from rules.events import PriorityLevel
from rules.policy import Policy

__all__ = ["PriorityMap", "level_for", "priority_update", "queue_position"]

PriorityKind = Literal["field", "tag"]

# Most urgent first: where one desk value stands for several levels, the first wins.
_LEVELS_DESC: tuple[PriorityLevel, ...] = tuple(
    sorted(PriorityLevel, key=lambda level: level.rank, reverse=True)
)
_LEADING_INT = re.compile(r"\s*(-?\d+)(?!\d)")


def level_for(plan: str, policy: Policy) -> PriorityLevel:
    """The priority level of ``plan``.

    :raises ValueError: the plan is not in ``policy.plans``.
    """
    try:
        return policy.plans[plan].priority
    except KeyError:
        raise ValueError(f"unknown plan {plan!r}") from None


def _norm(value: str) -> str:
    return value.strip().casefold()


def _leading_int(value: str) -> int | None:
    match = _LEADING_INT.match(value)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class PriorityMap:
    """How one desk writes the three levels.

    :param kind: ``"field"``: the ticket's priority field; ``"tag"``: a tag per level.
    :param highest: the desk value (or tag) for ``highest``; ``""`` for none.
    :param high: the same for ``high``.
    :param regular: the same for ``regular`` (Help Scout: ``""``, no tag).
    """

    kind: PriorityKind
    highest: str
    high: str
    regular: str

    def __post_init__(self) -> None:
        if self.kind not in ("field", "tag"):
            raise ValueError(f"priority kind must be 'field' or 'tag', got {self.kind!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> PriorityMap:
        """Build from a config table: ``{"kind": ..., "highest": ..., "high": ...,
        "regular": ...}``. Integers are accepted as values (``highest = 4``).

        :raises ValueError: a key is missing, unknown, or of the wrong type.
        """
        expected = ("kind", "highest", "high", "regular")
        unknown = sorted(set(data) - set(expected))
        if unknown:
            raise ValueError(f"priority map: unknown key {unknown[0]!r}")
        values: dict[str, str] = {}
        for key in expected:
            if key not in data:
                raise ValueError(f"priority map: missing key {key!r}")
            raw = data[key]
            if isinstance(raw, bool) or not isinstance(raw, str | int):
                raise ValueError(f"priority map: {key!r} must be a string, got {raw!r}")
            values[key] = str(raw)
        kind: PriorityKind
        if values["kind"] == "field":
            kind = "field"
        elif values["kind"] == "tag":
            kind = "tag"
        else:
            raise ValueError(f"priority map: kind must be 'field' or 'tag', got {values['kind']!r}")
        return cls(
            kind=kind, highest=values["highest"], high=values["high"], regular=values["regular"]
        )

    def value(self, level: PriorityLevel) -> str | None:
        """The desk value (or tag) for ``level``; ``None`` where the map has none."""
        raw = {
            PriorityLevel.HIGHEST: self.highest,
            PriorityLevel.HIGH: self.high,
            PriorityLevel.REGULAR: self.regular,
        }[level]
        return raw or None

    def level_of(self, desk_value: str | None) -> PriorityLevel | None:
        """The level a desk value stands for, ``None`` when it stands for none.

        Matching ignores case and surrounding blanks (Zendesk sends ``URGENT`` as well as
        ``urgent``). Where one value stands for several levels (Zammad writes ``3 high`` for
        both ``highest`` and ``high``), the *most urgent* is returned: the connector must
        never lower what an agent set, so in doubt it assumes the higher level, and at worst
        leaves alone a value it would have rewritten to the same text anyway.

        Desks with ordered numeric priorities (Freshdesk ``1``-``4``, Request Tracker
        ``0``-``99``, Zammad ``1 low``...) are compared by number when every configured value
        and the desk value start with an integer: the level is the highest one whose number is
        at or below the desk value (an agent's ``95`` in RT is ``highest``, ``80`` is
        ``high``); a number below ``regular`` gives ``None``. Any other unmatched value
        (Zendesk ``low``) gives ``None``: no level, so the connector may set its own.
        """
        if desk_value is None or not desk_value.strip():
            return None
        wanted = _norm(desk_value)
        for level in _LEVELS_DESC:
            mapped = self.value(level)
            if mapped is not None and _norm(mapped) == wanted:
                return level
        number = _leading_int(desk_value)
        if number is None:
            return None
        ranks: list[tuple[PriorityLevel, int]] = []
        for level in _LEVELS_DESC:
            mapped = self.value(level)
            if mapped is None:
                continue
            mapped_number = _leading_int(mapped)
            if mapped_number is None:
                return None
            ranks.append((level, mapped_number))
        for level, mapped_number in ranks:
            if mapped_number <= number:
                return level
        return None

    def current_tag(self, tags: Iterable[str]) -> str | None:
        """For a ``tag`` map: the priority tag among ``tags`` of the most urgent level, as the
        ``current`` to pass to :func:`priority_update`; ``None`` when there is none."""
        present = {_norm(tag) for tag in tags}
        for level in _LEVELS_DESC:
            mapped = self.value(level)
            if mapped is not None and _norm(mapped) in present:
                return mapped
        return None


def priority_update(current: str | None, target: PriorityLevel, pmap: PriorityMap) -> str | None:
    """The desk value (or, for a ``tag`` map, the tag to add) that sets ``target``.

    ``None`` means write nothing: the map has no value for ``target`` (Help Scout's regular
    level has no tag), the current value already stands for ``target``, or it stands for a
    higher level, which an agent set and the connector never lowers. A current value that
    stands for no level (``None``, empty, Zendesk ``low``) is replaced.

    :param current: the desk's priority value now; for a ``tag`` map, the priority tag
        present (see :meth:`PriorityMap.current_tag`).
    """
    wanted = pmap.value(target)
    if wanted is None:
        return None
    level = pmap.level_of(current)
    if level is not None and level.rank >= target.rank:
        return None
    return wanted


def queue_position(ticket_id: str, recent_ticket_ids: Sequence[str]) -> tuple[int, int]:
    """The ticket's place among the customer's open tickets of the queue window.

    :param recent_ticket_ids: the customer's open tickets created within the window, oldest
        first; the ticket itself may be among them or not. When it is not, it is taken as the
        newest (the decision is made when the ticket is created).
    :returns: ``(position, total)``, position 1-based: ``(1, 1)`` for a lone ticket.
    :raises ValueError: ``ticket_id`` is empty.
    """
    if not ticket_id:
        raise ValueError("ticket_id must not be empty")
    order = list(dict.fromkeys(recent_ticket_ids))  # keeps the first of any duplicate
    if ticket_id not in order:
        order.append(ticket_id)
    return order.index(ticket_id) + 1, len(order)
