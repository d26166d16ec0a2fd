"""``decide()``: one ticket event in, everything the connector should do about it out.

The decision is pure: the connector loads the facts (customer, balance, quota usage, the
ticket's stored state), passes the policy and the time, and then carries the decision out
(ledger postings, ticket state, outbox actions) in one transaction.

The order of reasoning, as an engineer would explain it in the note:

1. plan: fixed when the ticket is created, from the entitlements on its creation day;
2. category: an engineer's tag or field wins; else detection from subject and text, used
   only at or above the confidence threshold;
3. estimate: the category's price (upgrade steps along the release list; a modification's
   figure from the engineer);
4. coverage: included in the plan (within the monthly quota), blocked (an upgrade without an
   upgrade subscription), or paid from credits;
5. paid work: ``question`` is charged at once; other categories need the customer's
   agreement unless pre-approved within a ceiling; a balance too small charges nothing;
6. priority, tags, first-reply due time, queue position and the texts to post.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from rules import business_hours, coverage, credits, detection, entitlements, priorities
from rules.approval import Answer, read_reply
from rules.events import EventType, PriorityLevel, TicketEvent
from rules.messages import Message, Param, language
from rules.model import Facts
from rules.policy import Policy
from rules.releases import ReleaseError


class CategorySource(enum.StrEnum):
    ENGINEER = "engineer"
    DETECTED = "detected"
    NONE = "none"


class ApprovalState(enum.StrEnum):
    NOT_REQUIRED = "not_required"
    PENDING = "pending"
    PREAPPROVED = "preapproved"
    APPROVED = "approved"
    DECLINED = "declined"
    INSUFFICIENT = "insufficient"
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True, slots=True)
class TicketState:
    """What the connector stored about a ticket from earlier events."""

    plan: str
    created_at: datetime
    category: str | None = None
    category_source: CategorySource = CategorySource.NONE
    credits_estimated: int | None = None
    credits_charged: int = 0
    approval_state: ApprovalState = ApprovalState.NOT_APPLICABLE
    counts_quota: bool = False
    #: The amount the pending approval is for (the estimate, or a re-categorisation's extra).
    approval_amount: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything to do for one event. ``changed`` is False when there is nothing to do.

    :param charge: credits to charge now (0 for none); the ledger refuses a negative balance.
    :param credits: the estimate, or ``None`` when it cannot be computed yet.
    :param messages: the internal note and public replies, rendered by the connector.
    """

    changed: bool
    plan: str
    category: str | None
    category_source: CategorySource
    confidence: float
    evidence: tuple[str, ...]
    credits: int | None
    steps: int | None
    charge: int
    approval_required: bool
    approval_state: ApprovalState
    priority: PriorityLevel
    tags: tuple[str, ...]
    first_reply_due: datetime | None
    counts_quota: bool
    language: str
    messages: tuple[Message, ...]
    created_at: datetime
    balance_after: int
    unknown_customer: bool = False
    #: Credits to give back now (a refund, or a re-categorisation to a cheaper category).
    refund: int = 0
    tags_remove: tuple[str, ...] = ()
    approval_amount: int | None = None
    #: Credits charged on the ticket once this decision is carried out.
    charged_total: int = 0

    @property
    def state(self) -> TicketState:
        """The ticket state to store after carrying this decision out."""
        return TicketState(
            plan=self.plan,
            created_at=self.created_at,
            category=self.category,
            category_source=self.category_source,
            credits_estimated=self.credits,
            credits_charged=self.charged_total,
            approval_state=self.approval_state,
            counts_quota=self.counts_quota,
            approval_amount=self.approval_amount,
        )


@dataclass(frozen=True, slots=True)
class _Category:
    key: str | None
    source: CategorySource
    confidence: float
    evidence: tuple[str, ...]
    engineer_credits: int | None
    best_guess: str | None


@dataclass(frozen=True, slots=True)
class _Estimate:
    credits: int | None
    steps: int | None
    explanation_en: str
    explanation_ru: str
    missing: str | None  # "price" or "versions" when the engineer must complete it


class _Note:
    """Collects the internal note's lines."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Param]]] = [("header", {})]

    def add(self, kind: str, **params: Param) -> None:
        self.lines.append((kind, params))

    def message(self) -> Message:
        return Message(kind="note", public=False, lines=tuple(self.lines))


def _engineer_choice(event: TicketEvent, policy: Policy) -> detection.EngineerChoice | None:
    """The category (and price) an engineer set on the ticket, by tag or field."""
    tags = policy.tags
    return detection.engineer_category(
        event.tags or (),
        event.fields,
        categories=policy.categories.keys(),
        tag_prefix=tags.category_prefix,
        category_field=tags.category_field,
        price_field=tags.price_field,
    )


def _category(event: TicketEvent, policy: Policy) -> _Category:
    chosen = _engineer_choice(event, policy)
    if chosen is not None:
        return _Category(chosen.category, CategorySource.ENGINEER, 1.0, (), chosen.credits, None)
    found = detection.detect_category(event.subject, event.description, policy.detection)
    best = max(found.scores, key=lambda k: found.scores[k]) if found.scores else None
    if found.category is None:
        return _Category(None, CategorySource.NONE, found.confidence, found.evidence, None, best)
    return _Category(
        found.category, CategorySource.DETECTED, found.confidence, found.evidence, None, best
    )


def _estimate(event: TicketEvent, category: _Category, policy: Policy) -> _Estimate:
    key = category.key
    assert key is not None
    cat = policy.categories[key]
    engineer_credits = category.engineer_credits
    if cat.engineer_priced and engineer_credits is None:
        # A price set in the field counts even when the category itself was detected.
        raw = str(event.fields.get(policy.tags.price_field, "")).strip()
        if not (raw.isascii() and raw.isdigit() and int(raw) > 0):
            return _Estimate(None, None, "", "", "price")
        engineer_credits = int(raw)
    from_v = event.fields.get(policy.tags.upgrade_from_field)
    to_v = event.fields.get(policy.tags.upgrade_to_field)
    if cat.priced_by_steps and not (from_v and to_v):
        pair = detection.extract_versions(f"{event.subject}\n{event.description}")
        if pair is None:
            return _Estimate(None, None, "", "", "versions")
        from_v, to_v = pair
    try:
        quote = credits.quote(
            policy,
            key,
            from_version=from_v if cat.priced_by_steps else None,
            to_version=to_v if cat.priced_by_steps else None,
            credits=engineer_credits if cat.engineer_priced else None,
        )
    except (ReleaseError, credits.PriceError) as err:
        return _Estimate(
            None, None, str(err), str(err), "versions" if cat.priced_by_steps else "price"
        )
    return _Estimate(quote.credits, quote.steps, quote.explanation_en, quote.explanation_ru, None)


def _preapproval(event: TicketEvent, policy: Policy) -> tuple[bool, int | None]:
    """(pre-approved, ceiling) from the ticket as created."""
    tags = event.tags or ()
    if policy.tags.preapproved in tags:
        return True, None
    raw = event.fields.get(policy.tags.preapproval_field)
    if raw is not None and str(raw).strip().isdigit():
        return True, int(str(raw).strip())
    return False, None


def decide(
    event: TicketEvent,
    facts: Facts,
    policy: Policy,
    now: datetime,
    *,
    state: TicketState | None = None,
    observe: bool = False,
) -> Decision:
    """Decide what to do about ``event``.

    :param facts: the customer (``None`` when the requester matches none), balance, quota usage.
    :param now: the time of receipt (aware); the ticket's creation time comes from the event.
    :param state: the ticket's stored state, ``None`` for a ticket seen for the first time.
    :param observe: the desk runs in observe mode: decide and note, never charge or reply.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if state is not None:
        followup = _followup(event, facts, policy, state, observe)
        if followup is not None:
            return followup
        if not _reconsider(event, state, policy):
            return _unchanged(state, facts, policy)

    zone = policy.calendar.zone
    customer = facts.customer
    created_at = state.created_at if state else event.created_at(now)
    created_day = entitlements.local_day(created_at, zone)
    lang = language(
        event.locale,
        customer.locale if customer else None,
        supported=policy.languages,
        default=policy.default_language,
    )
    if state is not None:
        plan_key, plan_reason = state.plan, ("", "")
    else:
        choice = entitlements.plan_on(customer, created_day, policy)
        plan_key, plan_reason = choice.plan, (choice.reason_en, choice.reason_ru)
    plan = policy.plans[plan_key]
    level = priorities.level_for(plan_key, policy)
    note = _Note()
    tags: list[str] = [policy.tags.plan_prefix + plan_key]
    public: list[Message] = []
    balance = facts.balance
    charge = 0
    approval = ApprovalState.NOT_APPLICABLE
    counts_quota = False

    if customer is None:
        note.add("unknown_customer", email=event.requester_email or event.requester_id or "?")
        tags.append(policy.tags.unknown_customer)
    else:
        plan_title = plan.title_ru if lang == "ru" else plan.title_en
        note.add("plan", plan_title=plan_title, plan_reason=plan_reason[lang == "ru"] or plan_key)

    cat = _category(event, policy)
    estimate = _Estimate(None, None, "", "", None)
    if cat.key is None:
        tags.append(policy.tags.needs_category)
        if cat.best_guess is not None and cat.confidence > 0:
            note.add(
                "category_unsure",
                category=cat.best_guess,
                confidence=round(cat.confidence * 100),
                threshold=round(policy.detection.threshold * 100),
            )
        else:
            note.add("category_none")
    else:
        tags.append(policy.tags.category_prefix + cat.key)
        if cat.source is CategorySource.ENGINEER:
            note.add("category_engineer", category=cat.key)
        else:
            note.add(
                "category_detected",
                category=cat.key,
                confidence=round(cat.confidence * 100),
                evidence=", ".join(cat.evidence),
            )
        estimate = _estimate(event, cat, policy)
        category = policy.categories[cat.key]
        cover = coverage.assess(
            plan_key,
            cat.key,
            policy,
            has_upgrades=customer.has_upgrades_on(created_day) if customer else False,
            quota_used=facts.modifications_used,
            quota_allowance=facts.modifications_allowance,
        )
        explanation = estimate.explanation_ru if lang == "ru" else estimate.explanation_en
        reason = cover.reason_ru if lang == "ru" else cover.reason_en
        if estimate.credits is not None:
            note.add("estimate", credits=estimate.credits, explanation=explanation)
        if cover.quota_limit is not None:
            used = cover.quota_used + (1 if cover.counts_quota else 0)
            note.add("quota", used=used, limit=cover.quota_limit)
        if cover.blocked is not None:
            tags.append(policy.tags.no_upgrade_subscription)
            note.add("no_upgrade_subscription")
            if customer is not None and not observe:
                name = customer.name or event.requester_name or ""
                public.append(Message("no_upgrade_subscription", True, {"name": name}))
        elif not cover.paid:
            counts_quota = cover.counts_quota
            approval = ApprovalState.NOT_REQUIRED
            note.add("covered", reason=reason)
            note.add("approval_not_required")
        else:
            note.add("paid", reason=reason)
            if estimate.credits is None:
                tags.append(policy.tags.needs_estimate)
                if estimate.missing == "price":
                    note.add("needs_price", field=policy.tags.price_field, minimum=category.credits)
                else:
                    note.add("estimate", credits="?", explanation=explanation or "versions?")
            elif customer is None and not policy.unknown_customer_charge:
                pass  # noted above: unknown requesters are never charged by default
            else:
                needs_agreement = coverage.requires_approval(category, paid=True)
                pre, ceiling = _preapproval(event, policy) if state is None else (False, None)
                within = pre and (ceiling is None or estimate.credits <= ceiling)
                amount = estimate.credits
                if needs_agreement and not within:
                    approval = ApprovalState.PENDING
                    tags.append(policy.tags.awaiting_approval)
                    note.add("approval_pending", credits=amount)
                    if not observe:
                        public.append(
                            Message(
                                "approval_request",
                                True,
                                _reply_params(
                                    event, facts, policy, cat.key, amount, explanation, lang
                                ),
                            )
                        )
                elif credits.shortfall(balance, amount) > 0:
                    approval = ApprovalState.INSUFFICIENT
                    tags.append(policy.tags.insufficient_balance)
                    note.add(
                        "insufficient",
                        balance=balance,
                        shortfall=credits.shortfall(balance, amount),
                    )
                    if not observe:
                        public.append(
                            Message(
                                "insufficient_balance",
                                True,
                                _reply_params(
                                    event, facts, policy, cat.key, amount, explanation, lang
                                ),
                            )
                        )
                else:
                    approval = (
                        ApprovalState.PREAPPROVED if needs_agreement else ApprovalState.NOT_REQUIRED
                    )
                    if needs_agreement:
                        ceiling_text = f" (≤ {ceiling})" if ceiling is not None else ""
                        note.add("approval_preapproved", ceiling=ceiling_text)
                    else:
                        note.add("approval_not_required")
                    if not observe:
                        charge = amount
                        tags.append(policy.tags.charged)
                        note.add("charged", credits=amount)
                        note.add(
                            "balance",
                            balance=balance,
                            balance_after=credits.balance_after(balance, amount),
                        )

    if observe:
        note.add("observe")
    due = business_hours.add_business_time(
        created_at, plan.first_reply_hours * 3600, policy.calendar
    )
    note.add("first_reply_due", due=due.isoformat(" ", "minutes"), hours=plan.first_reply_hours)
    parent = event.fields.get(policy.tags.split_field)
    if parent and state is None:
        note.add("split", parent=str(parent))
    if facts.recent_tickets:
        position, total = priorities.queue_position(event.ticket_id, facts.recent_tickets)
        if total > 1:
            note.add("queue", position=position, total=total, window=policy.queue_window_minutes)

    return Decision(
        changed=True,
        plan=plan_key,
        category=cat.key,
        category_source=cat.source,
        confidence=cat.confidence,
        evidence=cat.evidence,
        credits=estimate.credits,
        steps=estimate.steps,
        charge=charge,
        approval_required=approval is ApprovalState.PENDING,
        approval_state=approval,
        priority=level,
        tags=tuple(dict.fromkeys(tags)),
        first_reply_due=due,
        counts_quota=counts_quota,
        language=lang,
        messages=(note.message(), *public),
        created_at=created_at,
        balance_after=balance - charge,
        unknown_customer=customer is None,
        approval_amount=estimate.credits
        if approval in (ApprovalState.PENDING, ApprovalState.INSUFFICIENT)
        else None,
        charged_total=charge,
    )


def _reply_params(
    event: TicketEvent,
    facts: Facts,
    policy: Policy,
    category: str,
    amount: int,
    explanation: str,
    lang: str,
) -> dict[str, Param]:
    cat = policy.categories[category]
    customer = facts.customer
    name = (customer.name if customer else "") or event.requester_name or ""
    return {
        "name": name,
        "category": category,
        "category_title": cat.title_ru if lang == "ru" else cat.title_en,
        "credits": amount,
        "explanation": explanation,
        "balance": facts.balance,
        "balance_after": credits.balance_after(facts.balance, amount)
        if credits.shortfall(facts.balance, amount) == 0
        else 0,
        "shortfall": credits.shortfall(facts.balance, amount),
        "buy_url": policy.approval.buy_credits_url,
    }


def _reconsider(event: TicketEvent, state: TicketState, policy: Policy) -> bool:
    """Whether a later event on a known ticket changes the estimate.

    Before anything is charged, an engineer's category or price re-estimates the ticket.
    Changes after a charge (refunds, extra approvals) are handled by the approval flow.
    """
    if state.credits_charged > 0 or state.approval_state is ApprovalState.APPROVED:
        return False  # after a charge, changes go through _followup
    if event.type not in (
        EventType.TAGS_CHANGED,
        EventType.FIELDS_CHANGED,
        EventType.TICKET_UPDATED,
        EventType.COMMENT_ADDED,
    ):
        return False
    chosen = _engineer_choice(event, policy)
    if chosen is None:
        return False
    if chosen.category != state.category or state.category_source is not CategorySource.ENGINEER:
        return True
    return chosen.credits is not None and chosen.credits != state.credits_estimated


def _unchanged(state: TicketState, facts: Facts, policy: Policy) -> Decision:
    return Decision(
        changed=False,
        plan=state.plan,
        category=state.category,
        category_source=state.category_source,
        confidence=1.0 if state.category_source is CategorySource.ENGINEER else 0.0,
        evidence=(),
        credits=state.credits_estimated,
        steps=None,
        charge=0,
        approval_required=state.approval_state is ApprovalState.PENDING,
        approval_state=state.approval_state,
        priority=priorities.level_for(state.plan, policy),
        tags=(),
        first_reply_due=None,
        counts_quota=state.counts_quota,
        language=policy.default_language,
        messages=(),
        created_at=state.created_at,
        balance_after=facts.balance,
        approval_amount=state.approval_amount,
        charged_total=state.credits_charged,
    )


# --- after the first decision: answers, re-categorisation after a charge, refunds -----------


def _followup(
    event: TicketEvent, facts: Facts, policy: Policy, state: TicketState, observe: bool
) -> Decision | None:
    """A later event that answers the estimate, refunds, or re-prices a charged ticket.

    ``None`` when the event is none of these (the caller then re-estimates or does nothing).
    """
    tags = set(event.tags or ())
    lang = language(
        event.locale,
        facts.customer.locale if facts.customer else None,
        supported=policy.languages,
        default=policy.default_language,
    )
    charged = state.credits_charged
    if charged > 0 and not observe:
        if event.type is EventType.TICKET_DELETED and policy.approval.refund_on_delete:
            return _refund(event, facts, policy, state, lang, charged, "deleted or spam")
        if policy.tags.refund in tags:
            return _refund(event, facts, policy, state, lang, charged, policy.tags.refund)
    waiting = state.approval_state in (ApprovalState.PENDING, ApprovalState.INSUFFICIENT)
    if waiting and state.approval_amount is not None and not observe:
        answer, via, line = _answer(event, policy, tags)
        if answer is Answer.APPROVE and event.answer_amount not in (None, state.approval_amount):
            note = _Note()
            note.add("stale_answer", amount=event.answer_amount, pending=state.approval_amount)
            return _followup_decision(state, facts, policy, lang, note, messages=())
        if answer is Answer.APPROVE:
            return _approve(event, facts, policy, state, lang, via)
        if answer is Answer.DECLINE:
            note = _Note()
            note.add("declined", via=via)
            return _followup_decision(
                state,
                facts,
                policy,
                lang,
                note,
                approval=ApprovalState.DECLINED,
                tags=(policy.tags.declined,),
                tags_remove=(policy.tags.awaiting_approval, policy.tags.insufficient_balance),
                approval_amount=None,
            )
        if line is not None:
            note = _Note()
            note.add("reply_noted", line=line[:200])
            return _followup_decision(state, facts, policy, lang, note)
    if charged > 0 and not observe:
        return _reprice(event, facts, policy, state, lang)
    return None


def _answer(event: TicketEvent, policy: Policy, tags: set[str]) -> tuple[Answer, str, str | None]:
    """(answer, how it was given, the reply's first line when a reply said neither)."""
    if event.type is EventType.APPROVED:
        return Answer.APPROVE, "approval page", None
    if event.type is EventType.DECLINED:
        return Answer.DECLINE, "approval page", None
    if policy.tags.approved in tags:
        return Answer.APPROVE, f"tag {policy.tags.approved}", None
    if policy.tags.declined in tags:
        return Answer.DECLINE, f"tag {policy.tags.declined}", None
    comment = event.comment
    if event.type is EventType.COMMENT_ADDED and comment is not None and comment.public:
        by_requester = comment.by_requester or (
            comment.author_id is not None and comment.author_id == event.requester_id
        )
        if by_requester:
            reading = read_reply(comment.body, policy.approval)
            return reading.answer, "reply", reading.line if reading.answer is Answer.NONE else None
    return Answer.NONE, "", None


def _approve(
    event: TicketEvent, facts: Facts, policy: Policy, state: TicketState, lang: str, via: str
) -> Decision:
    amount = state.approval_amount
    assert amount is not None
    note = _Note()
    note.add("approved", via=via)
    params = _answer_params(event, facts, policy, state, amount, lang)
    missing = credits.shortfall(facts.balance, amount)
    if missing > 0:
        note.add("insufficient", balance=facts.balance, shortfall=missing)
        return _followup_decision(
            state,
            facts,
            policy,
            lang,
            note,
            approval=ApprovalState.INSUFFICIENT,
            tags=(policy.tags.insufficient_balance,),
            messages=(Message("insufficient_balance", True, params),),
        )
    after = credits.balance_after(facts.balance, amount)
    note.add("charged", credits=amount)
    note.add("balance", balance=facts.balance, balance_after=after)
    params["balance_after"] = after
    return _followup_decision(
        state,
        facts,
        policy,
        lang,
        note,
        approval=ApprovalState.APPROVED,
        charge=amount,
        tags=(policy.tags.approved, policy.tags.charged),
        tags_remove=(policy.tags.awaiting_approval, policy.tags.insufficient_balance),
        messages=(Message("charged", True, params),),
        approval_amount=None,
    )


def _refund(
    event: TicketEvent,
    facts: Facts,
    policy: Policy,
    state: TicketState,
    lang: str,
    amount: int,
    reason: str,
) -> Decision:
    note = _Note()
    note.add("refunded", credits=amount, reason=reason)
    params = _answer_params(event, facts, policy, state, amount, lang)
    params.update(reason=reason, balance_after=facts.balance + amount)
    public = (
        (Message("refunded", True, params),)
        if facts.customer is not None and event.type is not EventType.TICKET_DELETED
        else ()
    )
    return _followup_decision(
        state,
        facts,
        policy,
        lang,
        note,
        refund=amount,
        tags_remove=(policy.tags.charged,),
        messages=public,
    )


def _reprice(
    event: TicketEvent, facts: Facts, policy: Policy, state: TicketState, lang: str
) -> Decision | None:
    """An engineer's new category or price on a charged ticket: refund or ask for more."""
    chosen = _engineer_choice(event, policy)
    if chosen is None:
        return None
    cat = _Category(chosen.category, CategorySource.ENGINEER, 1.0, (), chosen.credits, None)
    estimate = _estimate(event, cat, policy)
    if estimate.credits is None or (
        chosen.category == state.category and estimate.credits == state.credits_estimated
    ):
        return None
    plan = policy.plans[state.plan]
    covered = chosen.category in plan.covers
    new_price = 0 if covered else estimate.credits
    delta = credits.difference(state.credits_charged, new_price)
    note = _Note()
    note.add(
        "recategorised",
        old=state.category or "?",
        old_credits=state.credits_charged,
        new=chosen.category,
        new_credits=new_price,
    )
    moved = replace_state(state, category=chosen.category, estimate=estimate.credits)
    if delta < 0:
        return _refund_difference(event, facts, policy, moved, lang, note, -delta)
    if delta == 0:
        return _followup_decision(moved, facts, policy, lang, note)
    note.add("extra_approval", credits=delta)
    params = _answer_params(event, facts, policy, moved, delta, lang)
    explanation = estimate.explanation_ru if lang == "ru" else estimate.explanation_en
    params["explanation"] = explanation
    return _followup_decision(
        moved,
        facts,
        policy,
        lang,
        note,
        approval=ApprovalState.PENDING,
        tags=(policy.tags.awaiting_approval,),
        tags_remove=(policy.tags.approved,),
        messages=(Message("approval_request", True, params),),
        approval_amount=delta,
    )


def _refund_difference(
    event: TicketEvent,
    facts: Facts,
    policy: Policy,
    state: TicketState,
    lang: str,
    note: _Note,
    amount: int,
) -> Decision:
    note.add("refunded", credits=amount, reason="re-categorised")
    params = _answer_params(event, facts, policy, state, amount, lang)
    params.update(reason="re-categorised", balance_after=facts.balance + amount)
    return _followup_decision(
        state,
        facts,
        policy,
        lang,
        note,
        refund=amount,
        messages=(Message("refunded", True, params),),
    )


def replace_state(state: TicketState, *, category: str, estimate: int) -> TicketState:
    """``state`` with a new category (set by an engineer) and estimate."""
    return TicketState(
        plan=state.plan,
        created_at=state.created_at,
        category=category,
        category_source=CategorySource.ENGINEER,
        credits_estimated=estimate,
        credits_charged=state.credits_charged,
        approval_state=state.approval_state,
        counts_quota=state.counts_quota,
        approval_amount=state.approval_amount,
    )


def _answer_params(
    event: TicketEvent, facts: Facts, policy: Policy, state: TicketState, amount: int, lang: str
) -> dict[str, Param]:
    category = state.category or policy.free_category
    return _reply_params(event, facts, policy, category, amount, "", lang)


_KEEP = object()


def _followup_decision(
    state: TicketState,
    facts: Facts,
    policy: Policy,
    lang: str,
    note: _Note,
    *,
    approval: ApprovalState | None = None,
    charge: int = 0,
    refund: int = 0,
    tags: tuple[str, ...] = (),
    tags_remove: tuple[str, ...] = (),
    messages: tuple[Message, ...] = (),
    approval_amount: int | None | object = _KEEP,
) -> Decision:
    amount = state.approval_amount if approval_amount is _KEEP else approval_amount
    assert amount is None or isinstance(amount, int)
    approval_state = approval or state.approval_state
    return Decision(
        changed=True,
        plan=state.plan,
        category=state.category,
        category_source=state.category_source,
        confidence=1.0,
        evidence=(),
        credits=state.credits_estimated,
        steps=None,
        charge=charge,
        approval_required=approval_state is ApprovalState.PENDING,
        approval_state=approval_state,
        priority=priorities.level_for(state.plan, policy),
        tags=tags,
        first_reply_due=None,
        counts_quota=state.counts_quota,
        language=lang,
        messages=(note.message(), *messages),
        created_at=state.created_at,
        balance_after=facts.balance - charge + refund,
        refund=refund,
        tags_remove=tags_remove,
        approval_amount=amount,
        charged_total=state.credits_charged + charge - refund,
    )
