"""The service behind the approval page: read a link, show the estimate, record the answer.

A link (:func:`connector.approvals.make_token`) names one ticket and one amount. It is
answerable while the ticket waits for agreement to exactly that amount (approval state
``pending``, or ``insufficient`` after an approval the balance could not cover). An answer
becomes an ``approval.approved`` or ``approval.declined`` event, inserted like a webhook's
events (unique per desk and delivery key) and processed at once by the worker, which charges
and queues the write-backs in one transaction; the page then shows what the ticket row says.

Single use: the delivery key is ``approval:<sha256 of the token>``, so a second submit of the
same answer (a double click, a reload, two tabs) finds the first event and records nothing.
After an approval the balance could not cover, the customer may buy credits and answer again
with the same link: each later answer takes the next key (``approval:<sha256>:<n>``), counted
from the answers already stored, so concurrent submits still collide on one key.

Nothing here raises for any input: every outcome, a bad link or an unreachable database
included, is a :class:`Page` with its HTTP status.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from connector import worker
from connector.approvals import Claim, ExpiredLinkError, InvalidLinkError, read_token
from connector.extension import ConnectorState
from connector.intake import insert_events
from connector.models import Customer, Event, Ticket
from rules.decide import ApprovalState
from rules.events import EventType, TicketEvent
from rules.messages import language

#: The languages the page is written in.
PAGE_LANGUAGES = ("en", "ru")
#: Seconds a visitor is asked to wait when the database is unreachable.
RETRY_AFTER_SECONDS = 30

log = logging.getLogger("care_connector.approval_page")

_WAITING = (ApprovalState.PENDING.value, ApprovalState.INSUFFICIENT.value)


class View(enum.StrEnum):
    """Which page to show."""

    ASK = "ask"  # the estimate, with Approve and Decline
    APPROVED = "approved"  # just approved and charged
    INSUFFICIENT = "insufficient"  # just approved, but the balance does not cover it
    DECLINED = "declined"  # just declined
    ALREADY_APPROVED = "already_approved"
    ALREADY_DECLINED = "already_declined"
    ANSWERED = "answered"  # this answer was already submitted (double submit)
    QUEUED = "queued"  # recorded; the worker processes it after the ticket's earlier events
    CHANGED = "changed"  # the ticket now waits for another amount
    CLOSED = "closed"  # the ticket waits for no answer
    INVALID = "invalid"
    EXPIRED = "expired"
    BAD_REQUEST = "bad_request"  # a missing or wrong CSRF token, or an unknown answer
    UNAVAILABLE = "unavailable"  # the database is unreachable


STATUS: dict[View, int] = {
    View.ASK: 200,
    View.APPROVED: 200,
    View.INSUFFICIENT: 200,
    View.DECLINED: 200,
    View.ALREADY_APPROVED: 200,
    View.ALREADY_DECLINED: 200,
    View.ANSWERED: 200,
    View.QUEUED: 202,
    View.CHANGED: 409,
    View.CLOSED: 409,
    View.INVALID: 404,
    View.EXPIRED: 410,
    View.BAD_REQUEST: 400,
    View.UNAVAILABLE: 503,
}


class Answer(enum.StrEnum):
    """The two buttons (the form field ``answer``)."""

    APPROVE = "approve"
    DECLINE = "decline"


@dataclass(frozen=True, slots=True)
class Page:
    """What to show: the view, its language and the figures it mentions.

    :param ticket_ref: the ticket's id in the desk (shown as "Request #...").
    :param balance: the customer's balance now (after a charge on the approved page).
    :param ttl_days: the links' lifetime (the expired page says it).
    """

    view: View
    lang: str = "en"
    subject: str = ""
    ticket_ref: str = ""
    amount: int | None = None
    balance: int | None = None
    buy_url: str = ""
    ttl_days: int = 0

    @property
    def status(self) -> int:
        """The HTTP status of this page."""
        return STATUS[self.view]

    @property
    def shortfall(self) -> int:
        """Credits missing for the amount (0 when the balance covers it or is unknown)."""
        if self.amount is None or self.balance is None:
            return 0
        return max(0, self.amount - self.balance)


def show(st: ConnectorState, token: str, *, lang_hint: str | None = None) -> Page:
    """The page for ``GET /approvals/<token>``.

    :param lang_hint: the visitor's preferred language (``Accept-Language``), used only when
        the link names no ticket to take the language from.
    """
    return _guarded(st, lang_hint, lambda: _show(st, token, lang_hint))


def answer(st: ConnectorState, token: str, choice: str, *, lang_hint: str | None = None) -> Page:
    """Record the customer's answer (``approve`` or ``decline``) and show its outcome.

    The CSRF check is the caller's (it is HTTP's business); this records an answer only for a
    genuine, unexpired link whose amount the ticket still waits for, once.
    """
    return _guarded(st, lang_hint, lambda: _answer(st, token, choice, lang_hint))


def refused(st: ConnectorState, token: str, *, lang_hint: str | None = None) -> Page:
    """The 400 page (a form that failed its CSRF check), in the ticket's language if known."""
    return _guarded(st, lang_hint, lambda: _refused(st, token, lang_hint))


def delivery_key(token: str, answered_before: int = 0) -> str:
    """The event key of an answer given with ``token``; see the module docstring."""
    base = f"approval:{hashlib.sha256(token.encode()).hexdigest()}"
    return base if answered_before == 0 else f"{base}:{answered_before}"


# --------------------------------------------------------------------------------------------


def _guarded(st: ConnectorState, hint: str | None, fn: Callable[[], Page]) -> Page:
    try:
        return fn()
    except (OperationalError, DBAPIError):
        log.error("approval page: database unreachable")
        return Page(View.UNAVAILABLE, _lang(st, hint))


def _show(st: ConnectorState, token: str, hint: str | None) -> Page:
    with st.database.transaction(read_only=True) as session:
        found = _open(st, session, token, hint)
        if isinstance(found, Page):
            return found
        ticket, claim, lang = found
        return _state_page(st, session, ticket, claim, lang, just_answered=False)


def _refused(st: ConnectorState, token: str, hint: str | None) -> Page:
    with st.database.transaction(read_only=True) as session:
        found = _open(st, session, token, hint)
        lang = found.lang if isinstance(found, Page) else found[2]
    return Page(View.BAD_REQUEST, lang)


def _answer(st: ConnectorState, token: str, choice: str, hint: str | None) -> Page:
    with st.database.transaction() as session:
        found = _open(st, session, token, hint)
        if isinstance(found, Page):
            return found
        ticket, claim, lang = found
        try:
            given = Answer(choice)
        except ValueError:
            return Page(View.BAD_REQUEST, lang)
        waiting = _state_page(st, session, ticket, claim, lang, just_answered=False)
        if waiting.view is not View.ASK:
            return waiting
        event_id = _record(st, session, ticket, claim, token, given)
        if event_id is None:
            return Page(View.ANSWERED, lang, ticket.subject, ticket.external_id, claim.amount)
        blocked = _earlier_pending(session, event_id)
    if not blocked:
        worker.process_event(st, event_id)
    with st.database.transaction(read_only=True) as session:
        after = session.get(Ticket, claim.ticket_id)
        event = session.get(Event, event_id)
        assert after is not None and event is not None
        if event.status != "done":
            # Waits behind an earlier event of the ticket, or failed once and will be retried:
            # the worker finishes it and the confirmation reaches the ticket.
            return Page(View.QUEUED, lang, after.subject, after.external_id, claim.amount)
        return _state_page(st, session, after, claim, lang, just_answered=True)


def _open(
    st: ConnectorState, session: Session, token: str, hint: str | None
) -> Page | tuple[Ticket, Claim, str]:
    """The ticket and claim of a genuine link, else the page that refuses it."""
    approval = st.settings.policy.approval
    try:
        claim = read_token(session, token, max_age=approval.link_ttl_days * 86400)
    except ExpiredLinkError as err:
        lang = _lang(st, hint)
        if err.claim is not None:
            ticket = session.get(Ticket, err.claim.ticket_id)
            if ticket is not None:
                lang = _ticket_lang(st, session, ticket)
        return Page(View.EXPIRED, lang, ttl_days=approval.link_ttl_days)
    except InvalidLinkError:
        return Page(View.INVALID, _lang(st, hint))
    ticket = session.get(Ticket, claim.ticket_id)
    if ticket is None or st.desk(ticket.desk) is None:
        return Page(View.INVALID, _lang(st, hint))
    return ticket, claim, _ticket_lang(st, session, ticket)


def _state_page(
    st: ConnectorState,
    session: Session,
    ticket: Ticket,
    claim: Claim,
    lang: str,
    *,
    just_answered: bool,
) -> Page:
    """The page the ticket's approval state calls for, for a link of ``claim.amount``."""
    balance = _balance(session, ticket.customer_id)
    page = Page(
        View.CLOSED,
        lang,
        subject=ticket.subject,
        ticket_ref=ticket.external_id,
        amount=claim.amount,
        balance=balance,
        buy_url=st.settings.policy.approval.buy_credits_url,
    )
    state = ticket.approval_state
    if state == ApprovalState.APPROVED.value:
        view = View.APPROVED if just_answered else View.ALREADY_APPROVED
    elif state == ApprovalState.DECLINED.value:
        view = View.DECLINED if just_answered else View.ALREADY_DECLINED
    elif state in _WAITING and ticket.approval_amount != claim.amount:
        view = View.CHANGED
    elif state == ApprovalState.INSUFFICIENT.value and just_answered:
        view = View.INSUFFICIENT
    elif state in _WAITING:
        view = View.ASK
    else:
        view = View.CLOSED
    return replace(page, view=view)


def _record(
    st: ConnectorState,
    session: Session,
    ticket: Ticket,
    claim: Claim,
    token: str,
    given: Answer,
) -> int | None:
    """Insert the answer's event; ``None`` when this answer is already stored."""
    first = delivery_key(token)
    # Narrowed to the ticket's events first (indexed), where a prefix match is cheap.
    answered_before = session.scalar(
        select(func.count(Event.id)).where(
            Event.ticket_key == f"{ticket.desk}:{ticket.external_id}",
            Event.desk == ticket.desk,
            (Event.delivery_key == first) | Event.delivery_key.startswith(f"{first}:"),
        )
    )
    if answered_before and ticket.approval_state != ApprovalState.INSUFFICIENT.value:
        # Stored but not yet carried out (another request is processing it right now).
        return None
    key = delivery_key(token, int(answered_before or 0))
    now = st.clock()
    event = TicketEvent(
        desk=ticket.desk,
        delivery_key=key,
        type=EventType.APPROVED if given is Answer.APPROVE else EventType.DECLINED,
        ticket_id=ticket.external_id,
        occurred_at=now,
        # The ticket's language, so the confirmation reply is written in it.
        locale=ticket.locale,
        answer_amount=claim.amount,
    )
    # No inbound delivery: the answer came from the page, not from a desk's webhook (the
    # column is nullable; intake's hint is narrower than it).
    inserted = insert_events(
        session,
        ticket.desk,
        key,
        None,
        [event],
        now,
    )
    return inserted[0] if inserted else None


def _earlier_pending(session: Session, event_id: int) -> bool:
    row = session.get(Event, event_id)
    assert row is not None
    earlier = session.scalar(
        select(func.count(Event.id)).where(
            Event.ticket_key == row.ticket_key, Event.id < event_id, Event.status == "pending"
        )
    )
    return bool(earlier)


def _balance(session: Session, customer_id: int | None) -> int | None:
    if customer_id is None:
        return None
    return session.scalar(select(Customer.balance).where(Customer.id == customer_id))


def _supported(st: ConnectorState) -> list[str]:
    return [lang for lang in st.settings.policy.languages if lang in PAGE_LANGUAGES] or ["en"]


def _lang(st: ConnectorState, hint: str | None) -> str:
    policy = st.settings.policy
    default = policy.default_language if policy.default_language in PAGE_LANGUAGES else "en"
    return language(hint, supported=_supported(st), default=default)


def _ticket_lang(st: ConnectorState, session: Session, ticket: Ticket) -> str:
    """The ticket's locale, else the customer's, else the policy's default (care-policy §5)."""
    customer_locale = None
    if ticket.customer_id is not None:
        customer_locale = session.scalar(
            select(Customer.locale).where(Customer.id == ticket.customer_id)
        )
    policy = st.settings.policy
    default = policy.default_language if policy.default_language in PAGE_LANGUAGES else "en"
    return language(ticket.locale, customer_locale, supported=_supported(st), default=default)


# --------------------------------------------------------------------------------------------
# Texts: every string of the page, in English and Russian.


def credits_text(n: int, lang: str) -> str:
    """``n`` credits with the noun agreeing with the number ("1 credit", "21 кредит")."""
    return f"{n} {_plural(n, lang, ('credit', 'credits'), ('кредит', 'кредита', 'кредитов'))}"


def days_text(n: int, lang: str) -> str:
    """``n`` days, the noun agreeing with the number."""
    return f"{n} {_plural(n, lang, ('day', 'days'), ('день', 'дня', 'дней'))}"


def _plural(n: int, lang: str, en: tuple[str, str], ru: tuple[str, str, str]) -> str:
    if lang != "ru":
        return en[0] if n == 1 else en[1]
    if n % 10 == 1 and n % 100 != 11:
        return ru[0]
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return ru[1]
    return ru[2]


_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Estimate approval",
        "request": "Request",
        "estimate": "Estimate",
        "balance": "Your balance",
        "balance_after": "Balance after the charge",
        "approve": "Approve and charge {amount}",
        "decline": "Decline",
        "buy": "Buy credits",
        "retry": "Open the page again",
        "short": "Your balance is {shortfall} short of the estimate. You can approve once you "
        "have bought more credits.",
    },
    "ru": {
        "title": "Согласование оценки",
        "request": "Запрос",
        "estimate": "Оценка",
        "balance": "Ваш баланс",
        "balance_after": "Останется после списания",
        "approve": "Согласиться и списать {amount}",
        "decline": "Отказаться",
        "buy": "Купить кредиты",
        "retry": "Открыть страницу снова",
        "short": "Для этой оценки на балансе не хватает: нужно ещё {shortfall}. Подтвердить "
        "можно после покупки кредитов.",
    },
}

#: (heading, text) of each view.
_VIEWS: dict[View, dict[str, tuple[str, str]]] = {
    View.ASK: {
        "en": (
            "Do you agree to this estimate?",
            "We start work on this request once you agree. Nothing is charged until then, "
            "and nothing at all if you decline.",
        ),
        "ru": (
            "Вы согласны с оценкой?",
            "Мы начнём работу по запросу после вашего согласия. До этого ничего не "
            "списывается, а если вы откажетесь, не спишется ничего.",
        ),
    },
    View.APPROVED: {
        "en": (
            "Thank you: the estimate is approved",
            "We have charged {amount} for this request. Your balance is now {balance}. "
            "Work has started; we will answer in the ticket.",
        ),
        "ru": (
            "Спасибо, оценка подтверждена",
            "За этот запрос списано {amount}. Ваш баланс теперь {balance}. Мы начали "
            "работу и ответим в тикете.",
        ),
    },
    View.INSUFFICIENT: {
        "en": (
            "Your balance is too small",
            "The estimate is {amount}, but your balance is {balance}: you need {shortfall} "
            "more. Nothing has been charged. Buy credits, then open this link again to approve.",
        ),
        "ru": (
            "Недостаточно кредитов",
            "Оценка: {amount}, а на вашем балансе {balance}, нужно ещё {shortfall}. Ничего "
            "не списано. Купите кредиты и откройте эту ссылку снова, чтобы подтвердить.",
        ),
    },
    View.DECLINED: {
        "en": (
            "You have declined the estimate",
            "Nothing has been charged. We have let the support team know; they will answer "
            "in the ticket.",
        ),
        "ru": (
            "Вы отказались от оценки",
            "Ничего не списано. Мы сообщили об этом службе поддержки; вам ответят в тикете.",
        ),
    },
    View.ALREADY_APPROVED: {
        "en": (
            "This estimate is already approved",
            "Nothing more is needed from you, and nothing is charged twice. We will answer in "
            "the ticket.",
        ),
        "ru": (
            "Оценка уже подтверждена",
            "От вас больше ничего не нужно, повторно ничего не списывается. Мы ответим в "
            "тикете.",
        ),
    },
    View.ALREADY_DECLINED: {
        "en": (
            "This estimate is already declined",
            "Nothing has been charged. If you have changed your mind, reply in the ticket.",
        ),
        "ru": (
            "От этой оценки уже отказались",
            "Ничего не списано. Если вы передумали, ответьте в тикете.",
        ),
    },
    View.ANSWERED: {
        "en": (
            "Your answer is already recorded",
            "This link has already been used. Nothing more is needed from you.",
        ),
        "ru": (
            "Ваш ответ уже получен",
            "Эта ссылка уже использована. От вас больше ничего не нужно.",
        ),
    },
    View.QUEUED: {
        "en": ("Your answer is recorded", "We will confirm it in the ticket shortly."),
        "ru": ("Ваш ответ получен", "Мы подтвердим его в тикете в ближайшее время."),
    },
    View.CHANGED: {
        "en": (
            "This estimate has changed",
            "The estimate for this request is no longer the one in this link. Use the newest "
            "link we sent in the ticket.",
        ),
        "ru": (
            "Оценка изменилась",
            "Оценка этого запроса уже не та, что в этой ссылке. Воспользуйтесь самой новой "
            "ссылкой из тикета.",
        ),
    },
    View.CLOSED: {
        "en": (
            "No answer is needed",
            "This request is not waiting for your agreement any more.",
        ),
        "ru": ("Ответ не требуется", "Этот запрос больше не ждёт вашего согласия."),
    },
    View.INVALID: {
        "en": (
            "This link is not valid",
            "Check that you opened the whole link from the ticket, or reply in the ticket and "
            "we will send you a new one.",
        ),
        "ru": (
            "Ссылка недействительна",
            "Проверьте, что ссылка из тикета открыта целиком, или ответьте в тикете, и мы "
            "пришлём новую.",
        ),
    },
    View.EXPIRED: {
        "en": (
            "This link has expired",
            "Approval links work for {days}. Reply in the ticket and we will send you a new one.",
        ),
        "ru": (
            "Срок действия ссылки истёк",
            "Ссылка для согласования действует {days}. Ответьте в тикете, и мы пришлём новую.",
        ),
    },
    View.BAD_REQUEST: {
        "en": (
            "Please try again",
            "We could not check the form: the page may have been open too long, or cookies "
            "are blocked. Nothing has been recorded. Open the page again and choose once more.",
        ),
        "ru": (
            "Попробуйте ещё раз",
            "Не удалось проверить форму: возможно, страница была открыта слишком долго или в "
            "браузере отключены cookie. Ничего не сохранено. Откройте страницу снова и "
            "выберите ещё раз.",
        ),
    },
    View.UNAVAILABLE: {
        "en": (
            "Please try again in a minute",
            "The service is unavailable right now; nothing has been recorded.",
        ),
        "ru": (
            "Попробуйте через минуту",
            "Сервис сейчас недоступен; ничего не сохранено.",
        ),
    },
}


def texts(page: Page) -> dict[str, str]:
    """Every string ``page`` shows, in its language, with its figures filled in."""
    lang = page.lang if page.lang in PAGE_LANGUAGES else "en"
    figures: dict[str, Any] = {
        "amount": credits_text(page.amount or 0, lang),
        "balance": credits_text(page.balance or 0, lang),
        "shortfall": credits_text(page.shortfall, lang),
        "days": days_text(page.ttl_days, lang),
    }
    heading, text = _VIEWS[page.view][lang]
    out = {key: value.format(**figures) for key, value in _LABELS[lang].items()}
    out.update(heading=heading.format(**figures), text=text.format(**figures))
    out.update(amount_value=figures["amount"], balance_value=figures["balance"])
    if page.amount is not None and page.balance is not None:
        out["balance_after_value"] = credits_text(max(0, page.balance - page.amount), lang)
    return out


__all__ = [
    "PAGE_LANGUAGES",
    "STATUS",
    "Answer",
    "Page",
    "View",
    "answer",
    "credits_text",
    "days_text",
    "delivery_key",
    "refused",
    "show",
    "texts",
]
