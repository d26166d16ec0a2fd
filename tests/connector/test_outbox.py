"""Outbox details that the end-to-end tests reach only by timing (tests/reliability)."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.outbox import _Claimed, _superseded_left_out

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def action(n: int, kind: str, tags: list[str], *, unclear: bool = True) -> _Claimed:
    return _Claimed(
        id=n,
        desk="freshdesk",
        ticket="7",
        ticket_key="freshdesk:7",
        kind=kind,
        marker=f"1.{n}",
        payload={"tags": tags},
        unclear=unclear,
        attempts=2,
        queued_at=AT,
    )


def test_an_unclear_tag_write_leaves_out_what_a_later_one_decides() -> None:
    earlier = action(1, "tags", ["care_awaiting_approval", "care_plan_credits"])
    later = [
        action(2, "note", []),
        action(3, "remove_tags", ["CARE_AWAITING_APPROVAL"]),
    ]
    assert _superseded_left_out(earlier, later).payload["tags"] == ["care_plan_credits"]


def test_a_clear_write_or_one_nothing_supersedes_is_sent_as_it_is() -> None:
    clear = action(1, "tags", ["care_awaiting_approval"], unclear=False)
    later = [action(2, "remove_tags", ["care_awaiting_approval"])]
    assert _superseded_left_out(clear, later) is clear
    alone = action(1, "remove_tags", ["care_awaiting_approval"])
    assert _superseded_left_out(alone, [action(2, "tags", ["care_approved"])]) is alone
    note = action(1, "note", [])
    assert _superseded_left_out(note, later) is note
