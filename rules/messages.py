"""Every text the connector posts, in English and Russian.

A decision carries :class:`Message` values (a kind and its parameters), not finished text: the
connector adds what only it knows (the approval link) and renders them with :func:`render`.
Every message that mentions a charge also states the balance after it (care-policy.md §5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

Param = str | int | None


@dataclass(frozen=True, slots=True)
class Message:
    """A message to post: ``public`` replies reach the customer, others are internal notes."""

    kind: str
    public: bool
    params: Mapping[str, Param] = field(default_factory=dict)
    lines: tuple[tuple[str, Mapping[str, Param]], ...] = ()


# Public replies. Placeholders are filled from Message.params (plus what the connector adds).
REPLIES: Mapping[str, Mapping[str, str]] = {
    "approval_request": {
        "en": (
            "Hello {name},\n\n"
            "We have assessed your request as: {category_title}.\n"
            "Estimate: {credits} credits ({explanation}).\n"
            "Your balance: {balance} credits; after this charge it would be {balance_after}.\n\n"
            'To agree, open {approval_url} or reply to this message with "I agree". '
            "We start work once you agree; nothing is charged until then."
        ),
        "ru": (
            "Здравствуйте, {name}!\n\n"
            "Мы отнесли ваш запрос к категории: {category_title}.\n"
            "Оценка: {credits} кредитов ({explanation}).\n"
            "Ваш баланс: {balance} кредитов; после списания останется {balance_after}.\n\n"
            "Чтобы согласиться, откройте {approval_url} или ответьте на это сообщение "
            "«Согласен». Мы начнём работу после вашего согласия; до этого ничего не списывается."
        ),
    },
    "insufficient_balance": {
        "en": (
            "Hello {name},\n\n"
            "This request ({category_title}) is estimated at {credits} credits, but your "
            "balance is {balance} credits: {shortfall} more are needed. Nothing has been "
            "charged. You can buy credits at {buy_url}; once your balance covers the estimate, "
            'open {approval_url} or reply "I agree" and we will start.'
        ),
        "ru": (
            "Здравствуйте, {name}!\n\n"
            "Этот запрос ({category_title}) оценён в {credits} кредитов, но на вашем балансе "
            "{balance} кредитов: не хватает {shortfall}. Ничего не списано. Купить кредиты "
            "можно здесь: {buy_url}; когда баланса будет достаточно, откройте {approval_url} или "
            "ответьте «Согласен», и мы начнём."
        ),
    },
    "no_upgrade_subscription": {
        "en": (
            "Hello {name},\n\n"
            "We can upgrade your store only with an active upgrade subscription (or lifetime "
            "upgrades), and we do not see one on your account. Nothing has been charged. "
            "Please renew the upgrade subscription and let us know in this ticket."
        ),
        "ru": (
            "Здравствуйте, {name}!\n\n"
            "Мы можем обновить ваш магазин только при активной подписке на обновления (или "
            "пожизненных обновлениях), а у вашей учётной записи её нет. Ничего не списано. "
            "Продлите подписку на обновления и сообщите нам в этом тикете."
        ),
    },
    "refunded": {
        "en": (
            "Hello {name},\n\n"
            "We have refunded {credits} credits for this request ({reason}). "
            "Your balance is now {balance_after} credits."
        ),
        "ru": (
            "Здравствуйте, {name}!\n\n"
            "Мы вернули {credits} кредитов за этот запрос ({reason}). "
            "Ваш баланс: {balance_after} кредитов."
        ),
    },
    "approval_reminder": {
        "en": (
            "Hello {name},\n\n"
            "A reminder: we are waiting for your agreement to the estimate of {credits} credits "
            "for this request ({category_title}) before we start. Your balance is {balance} "
            'credits. To agree, open {approval_url} or reply "I agree".'
        ),
        "ru": (
            "Здравствуйте, {name}!\n\n"
            "Напоминаем: мы ждём вашего согласия с оценкой {credits} кредитов за этот запрос "
            "({category_title}), чтобы начать работу. Ваш баланс: {balance} кредитов. Чтобы "
            "согласиться, откройте {approval_url} или ответьте «Согласен»."
        ),
    },
    "charged": {
        "en": (
            "Hello {name},\n\n"
            "Thank you: {credits} credits have been charged for this request "
            "({category_title}). Your balance is now {balance_after} credits."
        ),
        "ru": (
            "Здравствуйте, {name}!\n\n"
            "Спасибо: за этот запрос ({category_title}) списано {credits} кредитов. "
            "Ваш баланс: {balance_after} кредитов."
        ),
    },
    # Sent by the expiry-reminder job as a new conversation: the subject, then the body.
    "expiry_reminder_subject": {
        "en": "Your {plan_title} ends on {ends_on}",
        "ru": "{plan_title}: последний день {ends_on}",
    },
    "expiry_reminder": {
        "en": (
            "Hello {name},\n\n"
            "Your {plan_title} ({source}) ends on {ends_on}, the last day included. From "
            "{next_day} your requests will be handled under {next_plan_title}. Your credit "
            "balance is {balance} credits.\n\n"
            "To keep your support as it is, see {care_url}."
        ),
        "ru": (
            "Здравствуйте, {name}!\n\n"
            "{plan_title} ({source}) действует по {ends_on} включительно. С {next_day} ваши "
            "запросы будут обслуживаться по плану «{next_plan_title}». Ваш баланс: {balance} "
            "кредитов.\n\n"
            "Чтобы сохранить поддержку в прежнем объёме, загляните сюда: {care_url}."
        ),
    },
}

# Lines of the internal note an engineer reads, one template per line kind.
NOTE_LINES: Mapping[str, Mapping[str, str]] = {
    "header": {"en": "Care Connector estimate", "ru": "Оценка Care Connector"},
    "plan": {
        "en": "Plan: {plan_title} ({plan_reason})",
        "ru": "План: {plan_title} ({plan_reason})",
    },
    "unknown_customer": {
        "en": "Requester {email} matches no customer: handled as credits with a balance of 0; "
        "nothing charged, no reply sent. Import the customer or link the requester.",
        "ru": "Заявитель {email} не найден среди клиентов: обработан как «за кредиты» с "
        "балансом 0; ничего не списано, ответ не отправлен. Импортируйте клиента или "
        "привяжите заявителя.",
    },
    "category_engineer": {
        "en": "Category: {category} (set by an engineer)",
        "ru": "Категория: {category} (задана инженером)",
    },
    "category_detected": {
        "en": "Category: {category} (detected, confidence {confidence}%; words: {evidence})",
        "ru": "Категория: {category} (определена автоматически, уверенность {confidence}%; "
        "слова: {evidence})",
    },
    "category_unsure": {
        "en": "Category: not certain (best guess {category}, confidence {confidence}%, "
        "below {threshold}%). Nothing charged: set the category with a tag "
        "care_category_<name>.",
        "ru": "Категория: не определена уверенно (вероятно {category}, уверенность "
        "{confidence}%, ниже {threshold}%). Ничего не списано: задайте категорию тегом "
        "care_category_<name>.",
    },
    "category_none": {
        "en": "Category: none detected. Nothing charged: set the category with a tag "
        "care_category_<name>.",
        "ru": "Категория: не определена. Ничего не списано: задайте категорию тегом "
        "care_category_<name>.",
    },
    "estimate": {
        "en": "Estimate: {credits} credits ({explanation})",
        "ru": "Оценка: {credits} кредитов ({explanation})",
    },
    "needs_price": {
        "en": "Modification: set the price in the field {field} (at least {minimum} credits) "
        "to send the estimate to the customer.",
        "ru": "Доработка: укажите цену в поле {field} (не меньше {minimum} кредитов), чтобы "
        "отправить оценку клиенту.",
    },
    "covered": {"en": "Covered by the plan: {reason}", "ru": "Входит в план: {reason}"},
    "paid": {"en": "Paid from credits: {reason}", "ru": "Оплачивается кредитами: {reason}"},
    "quota": {
        "en": "Modifications this month: {used} of {limit} used",
        "ru": "Доработок в этом месяце: использовано {used} из {limit}",
    },
    "balance": {
        "en": "Balance: {balance} credits before, {balance_after} after",
        "ru": "Баланс: {balance} кредитов до, {balance_after} после",
    },
    "charged": {
        "en": "Charged: {credits} credits",
        "ru": "Списано: {credits} кредитов",
    },
    "insufficient": {
        "en": "Insufficient balance: {balance} credits, {shortfall} missing. Nothing charged; "
        "the customer was told.",
        "ru": "Недостаточно кредитов: {balance}, не хватает {shortfall}. Ничего не списано; "
        "клиент уведомлён.",
    },
    "approval_pending": {
        "en": "Approval: requested from the customer for {credits} credits; do not start "
        "work until they agree.",
        "ru": "Согласование: запрошено у клиента на {credits} кредитов; не начинайте работу "
        "до согласия.",
    },
    "approval_preapproved": {
        "en": "Approval: pre-approved by the customer{ceiling}.",
        "ru": "Согласование: клиент согласился заранее{ceiling}.",
    },
    "approval_not_required": {
        "en": "Approval: not required",
        "ru": "Согласование: не требуется",
    },
    "no_upgrade_subscription": {
        "en": "Upgrade: the customer has no active upgrade subscription; nothing charged, "
        "the customer was told.",
        "ru": "Обновление: у клиента нет активной подписки на обновления; ничего не списано, "
        "клиент уведомлён.",
    },
    "queue": {
        "en": "Queue: ticket {position} of {total} opened by this customer within "
        "{window} minutes",
        "ru": "Очередь: тикет {position} из {total}, открытых клиентом за {window} минут",
    },
    "first_reply_due": {
        "en": "First reply due: {due} ({hours} business hours)",
        "ru": "Первый ответ до: {due} ({hours} рабочих часов)",
    },
    "approved": {
        "en": "Approval: the customer agreed ({via}).",
        "ru": "Согласование: клиент согласился ({via}).",
    },
    "declined": {
        "en": "Approval: the customer declined ({via}); nothing charged.",
        "ru": "Согласование: клиент отказался ({via}); ничего не списано.",
    },
    "reply_noted": {
        "en": "A reply from the customer was not read as an answer to the estimate: «{line}». "
        "Nothing changed; set care_approved or care_declined if it was one.",
        "ru": "Ответ клиента не распознан как ответ на оценку: «{line}». Ничего не изменилось; "
        "поставьте care_approved или care_declined, если это был ответ.",
    },
    "stale_answer": {
        "en": "An answer for {amount} credits came in, but {pending} are pending now: ignored.",
        "ru": "Пришёл ответ на {amount} кредитов, но сейчас ожидается {pending}: не учтён.",
    },
    "refunded": {
        "en": "Refunded: {credits} credits ({reason}).",
        "ru": "Возвращено: {credits} кредитов ({reason}).",
    },
    "recategorised": {
        "en": "Re-categorised after the charge: {old} ({old_credits} credits) → {new} "
        "({new_credits} credits).",
        "ru": "Категория изменена после списания: {old} ({old_credits} кредитов) → {new} "
        "({new_credits} кредитов).",
    },
    "extra_approval": {
        "en": "Approval: the difference of {credits} credits was requested from the customer.",
        "ru": "Согласование: у клиента запрошена разница в {credits} кредитов.",
    },
    "split": {
        "en": "Split from ticket {parent}: estimated and charged on its own.",
        "ru": "Выделен из тикета {parent}: оценивается и оплачивается отдельно.",
    },
    "observe": {
        "en": "Observe mode: nothing charged and no public reply sent.",
        "ru": "Режим наблюдения: ничего не списано, публичные ответы не отправляются.",
    },
    # The SLA watch's internal notes.
    "sla_warning": {
        "en": "First reply due soon: by {due} ({left} business minutes left, {plan_title}). "
        "The customer has no answer from an agent yet.",
        "ru": "Скоро срок первого ответа: до {due} (осталось {left} рабочих минут, "
        "{plan_title}). Клиент ещё не получил ответа от инженера.",
    },
    "sla_breached": {
        "en": "First reply overdue: it was due by {due} ({plan_title}) and the customer has no "
        "answer from an agent yet.",
        "ru": "Срок первого ответа истёк: ответ был нужен до {due} ({plan_title}), а клиент ещё "
        "не получил ответа от инженера.",
    },
}


def language(*candidates: str | None, supported: Sequence[str], default: str) -> str:
    """The first candidate locale whose language is supported (``ru-RU`` → ``ru``)."""
    for locale in candidates:
        if locale:
            lang = locale.replace("_", "-").split("-", 1)[0].lower()
            if lang in supported:
                return lang
    return default


class _Defaulting(dict[str, Param]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(template: str, params: Mapping[str, Param]) -> str:
    return template.format_map(_Defaulting({k: "" if v is None else v for k, v in params.items()}))


def render(message: Message, lang: str, extra: Mapping[str, Param] | None = None) -> str:
    """The message's text in ``lang`` (``en`` when the language has no text).

    :param extra: parameters only the connector knows (``approval_url``).
    """
    params: dict[str, Param] = dict(message.params)
    if extra:
        params.update(extra)
    if message.lines:
        out = []
        for kind, line_params in message.lines:
            texts = NOTE_LINES[kind]
            out.append(_fill(texts.get(lang, texts["en"]), {**params, **line_params}))
        return "\n".join(out)
    texts = REPLIES[message.kind]
    return _fill(texts.get(lang, texts["en"]), params)
