"""``decide()`` as stories: one ticket per plan and path, asserting the whole decision."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from rules.decide import ApprovalState, CategorySource, Decision, TicketState, decide
from rules.events import Comment, EventType, PriorityLevel, TicketEvent
from rules.messages import render
from rules.model import Customer, Facts, License, LicenseKind, Subscription
from rules.policy import Policy

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # a Tuesday, 14:00 at GMT+4
CREATED = datetime(2026, 3, 10, 9, 55, tzinfo=UTC)


def event(subject: str, text: str = "", **kw: object) -> TicketEvent:
    base: dict[str, object] = dict(
        desk="zendesk",
        delivery_key="d-1",
        type=EventType.TICKET_CREATED,
        ticket_id="5158",
        ticket_created_at=CREATED,
        subject=subject,
        description=text,
        requester_id="u-1",
        requester_email="owner@shop.example",
        tags=(),
    )
    base.update(kw)
    return TicketEvent(**base)  # type: ignore[arg-type]


def customer(**kw: object) -> Customer:
    base: dict[str, object] = dict(email="owner@shop.example", name="Anna", locale="en")
    base.update(kw)
    return Customer(**base)  # type: ignore[arg-type]


VIP = customer(subscriptions=(Subscription("vip", date(2026, 1, 1), date(2026, 12, 31)),))
STANDARD = customer(subscriptions=(Subscription("standard", date(2026, 1, 1), date(2026, 12, 31)),))
FREE = customer(licenses=(License("L-1", "multi-vendor", LicenseKind.FIRST, date(2026, 3, 1)),))
CREDITS = customer(
    licenses=(License("L-2", "cs-cart", LicenseKind.FIRST, date(2025, 1, 10)),),
    upgrades_until=date(2027, 1, 10),
)

QUESTION = ("How to set up shipping methods?", "Where can I find the shipping settings?")
UPGRADE = ("Upgrade our store", "Please upgrade our store from 4.3.1 to 4.3.9.")
INVESTIGATION = ("Error 500 on checkout", "The server log shows a fatal error in the database.")
MODIFICATION = (
    "Custom modification",
    "We need a custom modification: add a new field to checkout.",
)


def run(policy: Policy, cust: Customer | None, ev: TicketEvent, **facts: object) -> Decision:
    return decide(ev, Facts(customer=cust, **facts), policy, NOW)  # type: ignore[arg-type]


def texts(d: Decision, lang: str | None = None) -> list[str]:
    return [
        render(m, lang or d.language, {"approval_url": "https://care.example/a/t"})
        for m in d.messages
    ]


@pytest.mark.parametrize(
    ("cust", "plan", "priority", "hours"),
    [
        (VIP, "vip", PriorityLevel.HIGHEST, 2),
        (STANDARD, "standard", PriorityLevel.HIGH, 8),
        (FREE, "free_period", PriorityLevel.REGULAR, 16),
        (CREDITS, "credits", PriorityLevel.REGULAR, 16),
    ],
)
def test_a_question_under_each_plan(
    policy: Policy, cust: Customer, plan: str, priority: PriorityLevel, hours: int
) -> None:
    d = run(policy, cust, event(*QUESTION), balance=50)
    assert d.plan == plan
    assert d.priority is priority
    assert d.category == "question"
    assert d.category_source is CategorySource.DETECTED
    assert d.credits == 5
    assert f"care_plan_{plan}" in d.tags
    assert "care_category_question" in d.tags
    assert not d.approval_required
    # Only the credits plan pays for a question, at once, without asking.
    assert d.charge == (5 if plan == "credits" else 0)
    assert d.balance_after == (45 if plan == "credits" else 50)
    assert [m.public for m in d.messages] == [False]
    # First reply due: created 13:55 GMT+4 plus the plan's business hours (9 hours a day).
    assert d.first_reply_due is not None
    assert (
        d.first_reply_due
        == {
            2: datetime(2026, 3, 10, 15, 55, tzinfo=d.first_reply_due.tzinfo),
            8: datetime(2026, 3, 11, 12, 55, tzinfo=d.first_reply_due.tzinfo),
            16: datetime(2026, 3, 12, 11, 55, tzinfo=d.first_reply_due.tzinfo),
        }[hours]
    )
    assert d.first_reply_due.utcoffset() == timedelta(hours=4)


def test_credits_upgrade_asks_for_agreement_with_the_steps(policy: Policy) -> None:
    d = run(policy, CREDITS, event(*UPGRADE), balance=120)
    assert (d.plan, d.category, d.credits, d.steps) == ("credits", "upgrade", 50, 8)
    assert d.approval_required and d.approval_state is ApprovalState.PENDING
    assert d.charge == 0 and d.balance_after == 120
    assert "care_awaiting_approval" in d.tags
    note, reply = texts(d)
    assert "50 credits" in note and "Approval: requested" in note
    assert reply.startswith("Hello Anna")
    assert "50 credits" in reply and "120" in reply and "70" in reply
    assert "https://care.example/a/t" in reply


def test_russian_customer_gets_russian_texts(policy: Policy) -> None:
    d = run(policy, replace(CREDITS, locale="ru"), event(*UPGRADE), balance=120)
    assert d.language == "ru"
    note, reply = texts(d)
    assert reply.startswith("Здравствуйте, Anna")
    assert "50 кредитов" in reply and "Согласен" in reply
    assert "Оценка: 50 кредитов" in note


def test_ticket_locale_wins_over_customer_locale(policy: Policy) -> None:
    d = run(policy, replace(CREDITS, locale="ru"), event(*UPGRADE, locale="en-US"), balance=120)
    assert d.language == "en"


def test_upgrade_without_upgrade_subscription_is_blocked(policy: Policy) -> None:
    d = run(
        policy, replace(CREDITS, upgrades_until=date(2025, 12, 31)), event(*UPGRADE), balance=500
    )
    assert d.charge == 0 and not d.approval_required
    assert "care_no_upgrade_subscription" in d.tags
    assert [m.kind for m in d.messages] == ["note", "no_upgrade_subscription"]
    reply = texts(d)[1]
    assert "upgrade subscription" in reply
    assert reply.startswith(f"Hello {CREDITS.name},") and "{" not in reply


def test_vip_upgrade_is_included_but_still_needs_an_upgrade_subscription(policy: Policy) -> None:
    assert run(policy, replace(VIP, upgrades_lifetime=True), event(*UPGRADE)).charge == 0
    blocked = run(policy, VIP, event(*UPGRADE))
    assert "care_no_upgrade_subscription" in blocked.tags


def test_insufficient_balance_for_a_question_charges_nothing(policy: Policy) -> None:
    d = run(policy, CREDITS, event(*QUESTION), balance=3)
    assert d.charge == 0 and d.approval_state is ApprovalState.INSUFFICIENT
    assert "care_insufficient_balance" in d.tags
    reply = texts(d)[1]
    assert "balance is 3 credits: 2 more are needed" in reply


@pytest.mark.parametrize(
    ("used", "counts", "charge_path"),
    [(0, True, False), (6, True, False), (7, False, True), (9, False, True)],
)
def test_vip_modification_quota(policy: Policy, used: int, counts: bool, charge_path: bool) -> None:
    ev = event(*MODIFICATION, fields={"care_price": "40"})
    d = run(policy, VIP, ev, balance=100, modifications_used=used)
    assert d.category == "modification"
    assert d.counts_quota is counts
    assert d.approval_required is charge_path
    note = texts(d)[0]
    assert f"{used + 1 if counts else used} of 7 used" in note


def test_standard_quota_is_four(policy: Policy) -> None:
    ev = event(*MODIFICATION, fields={"care_price": "40"})
    assert run(policy, STANDARD, ev, modifications_used=3).counts_quota
    beyond = run(policy, STANDARD, ev, modifications_used=4, balance=100)
    assert beyond.approval_required and beyond.credits == 40


def test_modification_without_a_price_waits_for_the_engineer(policy: Policy) -> None:
    d = run(policy, CREDITS, event(*MODIFICATION), balance=100)
    assert d.category == "modification" and d.credits is None
    assert d.charge == 0 and not d.approval_required
    assert "care_needs_estimate" in d.tags
    assert "care_price" in texts(d)[0]


def test_free_period_covers_configuration_but_not_investigation(policy: Policy) -> None:
    ev = event("Shipping settings", "configure", tags=("care_category_configuration",))
    covered = run(policy, FREE, ev)
    assert covered.plan == "free_period" and covered.charge == 0 and not covered.approval_required
    paid = run(policy, FREE, event(*INVESTIGATION), balance=100)
    assert paid.plan == "free_period" and paid.category == "investigation"
    assert paid.approval_required and paid.credits == 20


@pytest.mark.parametrize(
    ("tags", "fields", "charged"),
    [
        (("care_preapproved",), {}, 50),
        ((), {"care_preapproval": "60"}, 50),
        ((), {"care_preapproval": "50"}, 50),
        ((), {"care_preapproval": "40"}, 0),
    ],
)
def test_preapproval_within_the_ceiling_charges_at_once(
    policy: Policy, tags: tuple[str, ...], fields: dict[str, str], charged: int
) -> None:
    d = run(policy, CREDITS, event(*UPGRADE, tags=tags, fields=fields), balance=120)
    assert d.charge == charged
    assert d.approval_required is (charged == 0)
    if charged:
        assert d.approval_state is ApprovalState.PREAPPROVED
        assert "Charged: 50 credits" in texts(d)[0]
        assert "120 credits before, 70 after" in texts(d)[0]


def test_preapproved_but_short_of_credits(policy: Policy) -> None:
    d = run(policy, CREDITS, event(*UPGRADE, tags=("care_preapproved",)), balance=30)
    assert d.charge == 0 and d.approval_state is ApprovalState.INSUFFICIENT


def test_unknown_customer_is_tagged_noted_never_charged_or_answered(policy: Policy) -> None:
    d = run(policy, None, event(*QUESTION))
    assert d.plan == "credits" and d.unknown_customer
    assert d.charge == 0
    assert "care_unknown_customer" in d.tags
    assert [m.public for m in d.messages] == [False]
    assert "owner@shop.example matches no customer" in texts(d)[0]


def test_unknown_customer_upgrade_gets_no_reply(policy: Policy) -> None:
    d = run(policy, None, event(*UPGRADE))
    assert [m.public for m in d.messages] == [False] and d.charge == 0


def test_no_category_detected_asks_the_engineer(policy: Policy) -> None:
    d = run(policy, CREDITS, event("Hello", "Hi there, thanks!"), balance=100)
    assert d.category is None and d.charge == 0
    assert "care_needs_category" in d.tags
    assert "set the category" in texts(d)[0]


def test_engineer_category_wins_over_detection(policy: Policy) -> None:
    ev = event(*QUESTION, tags=("care_category_investigation",))
    d = run(policy, CREDITS, ev, balance=100)
    assert d.category == "investigation" and d.category_source is CategorySource.ENGINEER
    assert d.credits == 20 and d.approval_required


def test_upgrade_versions_from_fields_win_over_text(policy: Policy) -> None:
    ev = event(*UPGRADE, fields={"care_upgrade_from": "4.3.9", "care_upgrade_to": "4.4.1"})
    d = run(policy, CREDITS, ev, balance=100)
    assert (d.credits, d.steps) == (20, 2)


def test_upgrade_with_an_unknown_version_asks_for_an_estimate(policy: Policy) -> None:
    d = run(policy, CREDITS, event("Upgrade", "upgrade from 4.3.1 to 9.9.9"), balance=100)
    assert d.category == "upgrade" and d.credits is None and d.charge == 0
    assert "care_needs_estimate" in d.tags
    assert "9.9.9" in texts(d)[0]


def test_observe_mode_decides_and_notes_but_never_charges_or_replies(policy: Policy) -> None:
    d = decide(event(*QUESTION), Facts(customer=CREDITS, balance=50), policy, NOW, observe=True)
    assert d.charge == 0 and d.credits == 5
    assert [m.public for m in d.messages] == [False]
    assert "Observe mode" in texts(d)[0]


def test_plan_is_fixed_at_creation_time_not_receipt(policy: Policy) -> None:
    # Free period of 45 days from 2026-03-01 ends 2026-04-14; a ticket created on the last day
    # and received a day later is still handled under it.
    created = datetime(2026, 4, 14, 19, 0, tzinfo=UTC)  # 23:00 GMT+4 on the 14th
    later = datetime(2026, 4, 15, 8, 0, tzinfo=UTC)
    d = decide(event(*QUESTION, ticket_created_at=created), Facts(customer=FREE), policy, later)
    assert d.plan == "free_period"
    after = datetime(2026, 4, 14, 20, 0, tzinfo=UTC)  # 00:00 GMT+4 on the 15th
    d2 = decide(event(*QUESTION, ticket_created_at=after), Facts(customer=FREE), policy, later)
    assert d2.plan == "credits"


def test_queue_position_among_recent_tickets(policy: Policy) -> None:
    d = run(policy, VIP, event(*QUESTION), recent_tickets=("5150", "5155"))
    assert "ticket 3 of 3" in texts(d)[0]


def test_a_later_event_without_an_engineer_change_changes_nothing(policy: Policy) -> None:
    first = run(policy, CREDITS, event(*UPGRADE), balance=120)
    later = event("", type=EventType.COMMENT_ADDED, tags=("care_awaiting_approval",))
    d = decide(later, Facts(customer=CREDITS, balance=120), policy, NOW, state=first.state)
    assert not d.changed and d.charge == 0 and d.messages == ()
    assert d.approval_state is ApprovalState.PENDING


def test_engineer_recategorises_before_a_charge(policy: Policy) -> None:
    first = run(policy, CREDITS, event(*UPGRADE), balance=120)
    ev = event("", type=EventType.TAGS_CHANGED, tags=("care_category_configuration",))
    d = decide(ev, Facts(customer=CREDITS, balance=120), policy, NOW, state=first.state)
    assert d.changed and d.plan == "credits"
    assert d.category == "configuration" and d.credits == 10 and d.approval_required
    # The same tags again: nothing new to do.
    again = decide(ev, Facts(customer=CREDITS, balance=120), policy, NOW, state=d.state)
    assert not again.changed


def test_state_keeps_the_plan_even_if_entitlements_changed(policy: Policy) -> None:
    state = TicketState(plan="vip", created_at=CREATED)
    ev = event("", type=EventType.TAGS_CHANGED, tags=("care_category_question",))
    d = decide(ev, Facts(customer=CREDITS, balance=10), policy, NOW, state=state)
    assert d.plan == "vip" and d.charge == 0


def test_naive_now_is_refused(policy: Policy) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(event(*QUESTION), Facts(customer=VIP), policy, datetime(2026, 1, 1))


# --- answers, re-categorisation after a charge, refunds ------------------------------------


def pending_upgrade(policy: Policy, balance: int = 120) -> Decision:
    return run(policy, CREDITS, event(*UPGRADE), balance=balance)


def later(kind: EventType, **kw: object) -> TicketEvent:
    return event("", type=kind, **kw)


def reply(body: str, *, author: str = "u-1") -> TicketEvent:
    return later(EventType.COMMENT_ADDED, comment=Comment(body, True, author))


def follow(policy: Policy, d: Decision, ev: TicketEvent, balance: int) -> Decision:
    return decide(ev, Facts(customer=CREDITS, balance=balance), policy, NOW, state=d.state)


@pytest.mark.parametrize(
    "answer",
    [
        reply("I agree"),
        reply("Согласен"),
        later(EventType.TAGS_CHANGED, tags=("care_approved",)),
        later(EventType.APPROVED, answer_amount=50),
    ],
)
def test_agreement_charges_the_estimate(policy: Policy, answer: TicketEvent) -> None:
    first = pending_upgrade(policy)
    d = follow(policy, first, answer, 120)
    assert d.charge == 50 and d.balance_after == 70
    assert d.approval_state is ApprovalState.APPROVED and not d.approval_required
    assert "care_approved" in d.tags and "care_awaiting_approval" in d.tags_remove
    note, confirmation = texts(d)
    assert "Charged: 50 credits" in note
    assert "50 credits have been charged" in confirmation and "70 credits" in confirmation
    # Agreeing again changes nothing: charged once.
    again = follow(policy, d, answer, 70)
    assert again.charge == 0 and again.approval_state is ApprovalState.APPROVED


def test_a_reply_by_someone_else_is_not_agreement(policy: Policy) -> None:
    d = follow(policy, pending_upgrade(policy), reply("I agree", author="agent-7"), 120)
    assert d.charge == 0 and d.approval_state is ApprovalState.PENDING


@pytest.mark.parametrize(
    "answer",
    [reply("No, thanks"), later(EventType.TAGS_CHANGED, tags=("care_declined",))],
)
def test_decline_charges_nothing(policy: Policy, answer: TicketEvent) -> None:
    d = follow(policy, pending_upgrade(policy), answer, 120)
    assert d.charge == 0 and d.approval_state is ApprovalState.DECLINED
    assert "care_declined" in d.tags and "care_awaiting_approval" in d.tags_remove
    assert [m.public for m in d.messages] == [False]


def test_any_other_reply_is_noted_for_the_engineer(policy: Policy) -> None:
    d = follow(policy, pending_upgrade(policy), reply("How long will it take?"), 120)
    assert d.charge == 0 and d.approval_state is ApprovalState.PENDING
    assert "How long will it take?" in texts(d)[0]


def test_agreement_with_too_little_balance_then_after_a_top_up(policy: Policy) -> None:
    first = pending_upgrade(policy, balance=30)
    short = follow(policy, first, reply("I agree"), 30)
    assert short.charge == 0 and short.approval_state is ApprovalState.INSUFFICIENT
    assert "20 more are needed" in texts(short)[1]
    topped_up = follow(policy, short, reply("Yes, I bought credits"), 130)
    assert topped_up.charge == 50 and topped_up.balance_after == 80


def test_a_page_answer_for_an_old_amount_is_ignored(policy: Policy) -> None:
    d = follow(policy, pending_upgrade(policy), later(EventType.APPROVED, answer_amount=20), 120)
    assert d.charge == 0 and "20 credits came in, but 50 are pending" in texts(d)[0]


def charged_upgrade(policy: Policy) -> Decision:
    return follow(policy, pending_upgrade(policy), reply("I agree"), 120)


def test_recategorised_cheaper_after_the_charge_refunds_the_difference(policy: Policy) -> None:
    charged = charged_upgrade(policy)
    ev = later(EventType.TAGS_CHANGED, tags=("care_approved", "care_category_configuration"))
    d = follow(policy, charged, ev, 70)
    assert d.refund == 40 and d.charge == 0 and d.balance_after == 110
    assert d.category == "configuration" and d.state.credits_charged == 10
    note, message = texts(d)
    assert "upgrade (50 credits) → configuration (10 credits)" in note
    assert "refunded 40 credits" in message and "110 credits" in message


def test_recategorised_dearer_after_the_charge_asks_for_the_difference(policy: Policy) -> None:
    charged = charged_upgrade(policy)
    ev = later(
        EventType.FIELDS_CHANGED,
        tags=("care_approved",),
        fields={"care_category": "modification", "care_price": "80"},
    )
    d = follow(policy, charged, ev, 70)
    assert d.charge == 0 and d.approval_required and d.approval_amount == 30
    assert "care_awaiting_approval" in d.tags
    assert "30 credits" in texts(d)[1]
    # The customer agrees to the difference: 30 more are charged.
    paid = follow(policy, d, reply("ok"), 70)
    assert paid.charge == 30 and paid.state.credits_charged == 80


@pytest.mark.parametrize(
    "ev",
    [
        later(EventType.TAGS_CHANGED, tags=("care_approved", "care_refund")),
        later(EventType.TICKET_DELETED),
    ],
)
def test_refund_tag_and_deleted_ticket_refund_in_full(policy: Policy, ev: TicketEvent) -> None:
    d = follow(policy, charged_upgrade(policy), ev, 70)
    assert d.refund == 50 and d.balance_after == 120 and d.state.credits_charged == 0
    assert "Refunded: 50 credits" in texts(d)[0]
    # Refunded once: the tag staying on the ticket refunds nothing more.
    assert follow(policy, d, ev, 120).refund == 0


def test_split_ticket_is_estimated_on_its_own(policy: Policy) -> None:
    d = run(policy, CREDITS, event(*QUESTION, fields={"care_split_from": "5150"}), balance=50)
    assert d.charge == 5 and "Split from ticket 5150" in texts(d)[0]
