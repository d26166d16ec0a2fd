"""Category detection, version extraction and the engineer's choice.

The ticket texts below are written as customers write them: typos, shouting, Russian
inflections, mixed languages. They run against the shipped keyword rules of
``connector/defaults.toml``, so a change to those rules shows up here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.detection import (
    FULL_EVIDENCE,
    MAX_TEXT_CHARS,
    SUBJECT_FACTOR,
    Detection,
    EngineerChoice,
    detect_category,
    engineer_category,
    extract_versions,
    validate_detection,
)
from rules.policy import DetectionPolicy, KeywordRule

DEFAULTS = Path(__file__).resolve().parents[2] / "connector" / "defaults.toml"
CATEGORIES = ("question", "configuration", "modification", "investigation", "upgrade")


def _load_defaults() -> dict[str, object]:
    with DEFAULTS.open("rb") as handle:
        return tomllib.load(handle)


def _detection_from_toml(section: dict[str, object]) -> DetectionPolicy:
    rules = section.get("rules", [])
    assert isinstance(rules, list)
    threshold = section["threshold"]
    assert isinstance(threshold, float | int)
    return DetectionPolicy(
        threshold=float(threshold),
        rules=tuple(
            KeywordRule(category=group["category"], pattern=word, weight=float(group["weight"]))
            for group in rules
            for word in group["words"]
        ),
    )


@pytest.fixture(scope="module")
def defaults_toml() -> dict[str, object]:
    return _load_defaults()


@pytest.fixture(scope="module")
def detection(defaults_toml: dict[str, object]) -> DetectionPolicy:
    """The shipped keyword rules, built from the ``[detection]`` section of the defaults."""
    section = defaults_toml["detection"]
    assert isinstance(section, dict)
    return _detection_from_toml(section)


def _policy(*rules: tuple[str, str, float], threshold: float = 0.5) -> DetectionPolicy:
    return DetectionPolicy(
        threshold=threshold,
        rules=tuple(KeywordRule(category=c, pattern=p, weight=w) for c, p, w in rules),
    )


# --- the shipped rules ------------------------------------------------------------------------


def test_shipped_rules_are_valid_and_name_known_categories(
    defaults_toml: dict[str, object], detection: DetectionPolicy
) -> None:
    validate_detection(detection)
    categories = defaults_toml["categories"]
    assert isinstance(categories, list)
    keys = {category["key"] for category in categories}
    assert {rule.category for rule in detection.rules} == keys
    assert detection.threshold == 0.5
    assert len(detection.rules) > 150


def test_shipped_rules_cover_both_languages(detection: DetectionPolicy) -> None:
    for category in CATEGORIES:
        patterns = [rule.pattern for rule in detection.rules if rule.category == category]
        assert any(p.isascii() for p in patterns), category
        assert any(any("а" <= ch <= "я" for ch in p) for p in patterns), category


TICKETS = [
    # --- question ---
    pytest.param(
        "How to change the logo?",
        "Hi, where can I change the logo in the storefront? thanks",
        "question",
        ("How to", "where can I"),
        id="en-question-logo",
    ),
    pytest.param(
        "Question about taxes",
        "Hello, is it possible to show prices with tax included on the product page?",
        "question",
        ("is it possible",),
        id="en-question-tax",
    ),
    pytest.param(
        "hi",
        "how can i chnage the adress on the invoice?? cant find it",
        "question",
        ("how can i",),
        id="en-question-typos",
    ),
    pytest.param(
        "Help with vendors",
        "How do I configure vendor commissions? I read the docs but still confused",
        "question",
        ("How do I",),
        id="en-question-how-do-i-configure",
    ),
    pytest.param(
        "Как настроить доставку?",
        "Здравствуйте! Подскажите, как настроить доставку Почтой России?",
        "question",
        ("Как настроить", "Подскажите"),
        id="ru-question-shipping",
    ),
    pytest.param(
        "вопрос",
        "Где в админке можно поменять текст письма о новом заказе?",
        "question",
        ("вопрос", "Где"),
        id="ru-question-where",
    ),
    pytest.param(
        "Можно ли скрыть цены для гостей",
        "Можно ли сделать так, чтобы незарегистрированные покупатели не видели цены?",
        "question",
        ("Можно ли",),
        id="ru-question-can-one",
    ),
    pytest.param(
        "Вопрос по обновлению",
        "Подскажите, можно ли обновиться самим?",
        "question",
        ("Вопрос", "Подскажите", "можно ли"),
        id="ru-question-about-upgrading",
    ),
    pytest.param(
        "ЧПУ",
        "Добрый день. Каким образом включаются SEO-ссылки для категорий? Спасибо",
        "question",
        ("Каким образом",),
        id="ru-question-how",
    ),
    # --- configuration ---
    pytest.param(
        "shipping",
        "Hello, we want to set up UPS shipping for US customers, could you configure it for "
        "us? Our settings screenshot is attached",
        "configuration",
        ("set up", "configure it for us", "settings"),
        id="en-configuration-ups",
    ),
    pytest.param(
        "Payment method not working after changing settings",
        "Paypal stopped working after i changed the settings in Administration > Payment methods",
        "configuration",
        ("after changing settings", "after i changed the settings"),
        id="en-configuration-after-settings",
    ),
    pytest.param(
        "Need advice",
        "We plan to run 3 storefronts with one catalog, what architecture would you recommend?",
        "configuration",
        ("advice", "architecture", "recommend"),
        id="en-configuration-architecture",
    ),
    pytest.param(
        "plz setup stripe",
        "we bought license, pls setup stripe paymnt gateway and shipping methods for us",
        "configuration",
        ("setup", "shipping methods"),
        id="en-configuration-typos",
    ),
    pytest.param(
        "Настройка оплаты",
        "Нужно настроить приём платежей через ЮKassa, сами не разобрались, настройте пожалуйста",
        "configuration",
        ("Настройка", "настройте"),
        id="ru-configuration-payments",
    ),
    pytest.param(
        "Не работает после изменения настроек",
        "После изменения настроек налогов перестал считаться итог в корзине",
        "configuration",
        ("после изменения настроек",),
        id="ru-configuration-after-settings",
    ),
    pytest.param(
        "консультация",
        "Нужна консультация по архитектуре маркетплейса: один склад на несколько продавцов",
        "configuration",
        ("консультация", "архитектуре"),
        id="ru-configuration-architecture",
    ),
    # --- modification ---
    pytest.param(
        "Custom field on checkout",
        "We need to add a field 'Company VAT' to the checkout page and save it with the order. "
        "Please give an estimate.",
        "modification",
        ("Custom", "add a field"),
        id="en-modification-field",
    ),
    pytest.param(
        "Add button to product page",
        'Can you add a button "Ask a question" next to Add to cart that opens a form?',
        "modification",
        ("Add button", "add a button"),
        id="en-modification-button",
    ),
    pytest.param(
        "customization request",
        "we want to change behaviour of the cart: minimum order amount per vendor. Our "
        "developer says it needs custom code",
        "modification",
        ("customization", "change behaviour", "custom code"),
        id="en-modification-behaviour",
    ),
    pytest.param(
        "",
        "Can we get an estimate for a custom module that syncs stock with our ERP?",
        "modification",
        ("custom",),
        id="en-modification-polite-request",
    ),
    pytest.param(
        "Доработка карточки товара",
        "Нужно доработать карточку товара: добавить поле «Срок изготовления» и вывести его в "
        "каталоге",
        "modification",
        ("Доработка", "доработать", "добавить поле"),
        id="ru-modification-field",
    ),
    pytest.param(
        "изменить функционал корзины",
        "Хотим изменить функционал: чтобы заказ от разных продавцов оформлялся одним платежом. "
        "Сколько будет стоить доработка?",
        "modification",
        ("изменить функционал", "доработка"),
        id="ru-modification-functionality",
    ),
    pytest.param(
        "Доработки",
        "Нужны доработки по личному кабинету продавца, ТЗ во вложении",
        "modification",
        ("Доработки",),
        id="ru-modification-inflected",
    ),
    # --- investigation ---
    pytest.param(
        "500 Internal Server Error",
        "After we moved to a new hosting the site gives 500 error on every page",
        "investigation",
        ("Internal Server Error", "hosting", "500 error"),
        id="en-investigation-500",
    ),
    pytest.param(
        "blank page in admin",
        "when i open orders i get a blank white page, error log attached",
        "investigation",
        ("blank page", "white page", "error log"),
        id="en-investigation-blank",
    ),
    pytest.param(
        "site is very slow",
        "Store became extremly slow, pages take 20 sec to load. Maybe database problem?",
        "investigation",
        ("very slow", "database"),
        id="en-investigation-slow",
    ),
    pytest.param(
        "WHITE SCREEN AFTER MOVING TO NEW SERVER",
        "PLEASE CHECK ASAP, CUSTOMERS CANT ORDER",
        "investigation",
        ("WHITE SCREEN", "AFTER MOVING", "NEW SERVER"),
        id="en-investigation-shouting",
    ),
    pytest.param(
        "checkout broken",
        "Our developer modified some core files and now the checkout is broken",
        "investigation",
        ("broken", "core files"),
        id="en-investigation-core-files",
    ),
    pytest.param(
        "Ошибка 500",
        "После переезда на новый хостинг сайт выдает ошибку 500, в логах ошибок ничего нет",
        "investigation",
        ("Ошибка 500", "ошибку 500", "переезда", "хостинг", "логах ошибок"),
        id="ru-investigation-500",
    ),
    pytest.param(
        "Белый экран",
        "в админке белый экран после того как программист поправил шаблон",
        "investigation",
        ("Белый экран",),
        id="ru-investigation-white-screen",
    ),
    pytest.param(
        "Тормозит сайт",
        "Сайт очень медленно работает, страницы грузятся по 15 секунд. Сервер мощный.",
        "investigation",
        ("Тормозит", "медленно", "Сервер"),
        id="ru-investigation-slow",
    ),
    pytest.param(
        "проблема с базой данных",
        "Пропали товары из каталога, в базе данных видим дубли записей",
        "investigation",
        ("базой данных", "базе данных"),
        id="ru-investigation-database",
    ),
    # --- upgrade ---
    pytest.param(
        "Upgrade to 4.18.1",
        "Please upgrade our store from 4.16.2 to 4.18.1",
        "upgrade",
        ("Upgrade",),
        id="en-upgrade-versions",
    ),
    pytest.param(
        "Updating CS-Cart",
        "Can you update our Multi-Vendor to the latest version? currently 4.15.1",
        "upgrade",
        ("Updating", "latest version"),
        id="en-upgrade-latest",
    ),
    pytest.param(
        "Error after upgrade",
        "After upgrading to 4.17.2 the checkout shows a fatal error",
        "upgrade",
        ("upgrade", "upgrading"),
        id="en-upgrade-issue-during",
    ),
    pytest.param(
        "Обновление",
        "Хотим обновить магазин с 4.10.1 до 4.12.2",
        "upgrade",
        ("Обновление", "обновить"),
        id="ru-upgrade-versions",
    ),
    pytest.param(
        "обновление версии",
        "Здравствуйте, нужно обновление с версии 4.3.1 на 4.3.9, подписка на обновления есть",
        "upgrade",
        ("обновление", "обновления"),
        id="ru-upgrade-subscription",
    ),
    pytest.param(
        "проблема",
        "Обновили до последней версии и теперь не работает оплата",
        "upgrade",
        ("Обновили", "последней версии"),
        id="ru-upgrade-inflected",
    ),
    # --- nothing to go on, or too mixed ---
    pytest.param("Hello", "Hi there, thanks!", None, (), id="en-none-greeting"),
    pytest.param("help", "please help asap", None, (), id="en-none-vague"),
    pytest.param(
        "Order issue", "the order email doesnt look right", None, (), id="en-none-no-keywords"
    ),
    pytest.param("Здравствуйте", "Добрый день! Спасибо за помощь.", None, (), id="ru-none-thanks"),
    pytest.param("Срочно!!!", "Ничего не работает, помогите", None, (), id="ru-none-vague"),
    pytest.param(
        "Several things",
        "1) how do i add a custom field to registration 2) site is very slow after moving "
        "server 3) upgrade to 4.18",
        None,
        ("very slow", "after moving", "server"),
        id="en-none-mixed",
    ),
    pytest.param(
        "Несколько вопросов",
        "1) сайт тормозит после переезда 2) нужно доработать фильтр 3) как настроить налоги",
        None,
        ("тормозит", "переезда"),
        id="ru-none-mixed",
    ),
    pytest.param(
        "",
        "There is an error on the product page",
        None,
        ("error",),
        id="en-none-weak-word",
    ),
]


@pytest.mark.parametrize(("subject", "body", "expected", "evidence"), TICKETS)
def test_detects_category(
    detection: DetectionPolicy,
    subject: str,
    body: str,
    expected: str | None,
    evidence: tuple[str, ...],
) -> None:
    result = detect_category(subject, body, detection)
    assert result.category == expected, result
    assert 0.0 <= result.confidence <= 1.0
    for word in evidence:
        assert word in result.evidence, result
    ticket = f"{subject}\n{body}".casefold()
    for word in result.evidence:
        assert word.casefold() in ticket
    if expected is not None:
        assert result.confidence >= detection.threshold
        assert next(iter(result.scores)) == expected
    elif not evidence:
        assert result == Detection(category=None, confidence=0.0, evidence=(), scores={})


# --- how words match --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "matched"),
    [
        ("upgrade", "Please UPGRADE us", ("UPGRADE",)),
        ("upgrade", "we upgraded last week", ()),
        ("set", "see the settings page", ()),
        ("обнов*", "Обновление прошло, обновили", ("Обновление", "обновили")),
        ("обнов*", "обнов", ("обнов",)),
        ("ошибк* 500", "выдаёт ОШИБКУ 500 на главной", ("ОШИБКУ 500",)),
        ("blank page", "a blank\n  page again", ("blank page",)),
        ("set up", "please set-up the tax", ("set-up",)),
        ("set-up", "please set up the tax", ("set up",)),
        ("изменённые файлы", "проверьте измененные файлы", ("измененные файлы",)),
        ("измененные файлы", "проверьте изменённые файлы", ("изменённые файлы",)),
        ("doesn't work", "it doesn\u2019t work", ("doesn\u2019t work",)),
        ("500", "error 500.", ("500",)),
        ("500", "error 5000", ()),
        ("сервер", "на сервере", ()),
        ("blank page", "blank, page", ()),
        ("бд", "ошибка в БД!", ("БД",)),
    ],
)
def test_pattern_matching(pattern: str, text: str, matched: tuple[str, ...]) -> None:
    result = detect_category("", text, _policy(("x", pattern, 3.0)))
    assert result.evidence == matched
    assert result.category == ("x" if matched else None)


def test_longest_pattern_wins_and_consumes_its_words() -> None:
    policy = _policy(("question", "как настроить", 4.0), ("configuration", "настро*", 2.0))
    result = detect_category("", "Как настроить доставку?", policy)
    assert result.evidence == ("Как настроить",)
    assert dict(result.scores) == {"question": 4.0}
    # Alone, the shorter pattern still counts.
    assert detect_category("", "Настройте доставку", policy).category == "configuration"


def test_star_phrase_beats_a_shorter_exact_word() -> None:
    policy = _policy(("a", "обновить", 1.0), ("b", "обнов* до", 3.0))
    assert detect_category("", "обновить до 4.18.1", policy).evidence == ("обновить до",)


def test_a_pattern_for_two_categories_scores_for_both() -> None:
    policy = _policy(("a", "server", 2.0), ("b", "server", 1.0), ("b", "server", 0.5))
    result = detect_category("", "the server", policy)
    assert dict(result.scores) == {"a": 2.0, "b": 1.0}


_VOCABULARY = ("alpha", "alphas", "Alpha", "beta", "BETAS", "gamma", "delta", "deltas", "x")
_SEPARATORS = (" ", "-", ", ", "\n", "  ")
_PATTERNS = ("alpha", "alp*", "alpha beta", "be*", "gamma delta*", "del*", "x gamma")


def _reference_evidence(patterns: tuple[str, ...], text: str) -> tuple[str, ...]:
    """The documented semantics, the slow and obvious way: every pattern on its own, the
    leftmost match first, the longest at one position, no overlaps."""
    regexes = [
        re.compile(
            r"(?<!\w)"
            + r"[\s\-]+".join(
                re.escape(word.rstrip("*")) + (r"\w*" if word.endswith("*") else "")
                for word in pattern.split()
            )
            + r"(?!\w)",
            re.IGNORECASE,
        )
        for pattern in patterns
    ]
    found: list[str] = []
    position = 0
    while True:
        matches = [m for rx in regexes if (m := rx.search(text, position)) is not None]
        if not matches:
            break
        best = min(matches, key=lambda m: (m.start(), -m.end()))
        words = " ".join(best.group().split())
        if words.casefold() not in {f.casefold() for f in found}:
            found.append(words)
        position = best.end()
    return tuple(found)


@given(st.lists(st.tuples(st.sampled_from(_VOCABULARY), st.sampled_from(_SEPARATORS)), max_size=12))
def test_matching_agrees_with_the_obvious_implementation(
    pieces: list[tuple[str, str]],
) -> None:
    text = "".join(word + separator for word, separator in pieces)
    policy = _policy(*(("a", pattern, 1.0) for pattern in _PATTERNS))
    assert detect_category("", text, policy).evidence == _reference_evidence(_PATTERNS, text)


# --- scoring ----------------------------------------------------------------------------------


def test_confidence_is_the_damped_share_of_the_leader() -> None:
    policy = _policy(("a", "alpha", 3.0), ("b", "beta", 1.0))
    result = detect_category("", "alpha and beta", policy)
    assert dict(result.scores) == {"a": 3.0, "b": 1.0}
    assert result.confidence == pytest.approx(3.0 / 4.0)
    assert result.category == "a"
    assert result.evidence == ("alpha",)


def test_the_subject_counts_more_than_the_body() -> None:
    policy = _policy(("a", "alpha", 3.0), ("b", "beta", 2.0))
    in_body = detect_category("", "alpha beta", policy)
    in_subject = detect_category("beta", "alpha", policy)
    assert in_body.category == "a"
    assert dict(in_subject.scores) == {"b": 2.0 * SUBJECT_FACTOR, "a": 3.0}
    assert in_subject.category == "b"
    assert in_subject.confidence == pytest.approx(4.0 / 7.0)


def test_repeating_a_word_adds_nothing_but_other_words_do() -> None:
    policy = _policy(("a", "slow", 1.0), ("a", "slowly", 1.0))
    assert dict(detect_category("", "slow slow slow", policy).scores) == {"a": 1.0}
    assert dict(detect_category("slow", "slow", policy).scores) == {"a": SUBJECT_FACTOR}
    assert dict(detect_category("", "slow, slowly", policy).scores) == {"a": 2.0}


def test_thin_evidence_is_damped() -> None:
    policy = _policy(("a", "error", 1.0), ("a", "fatal", 1.0), ("a", "crash", 1.0))
    one = detect_category("", "an error", policy)
    assert one.confidence == pytest.approx(1.0 / FULL_EVIDENCE)
    assert one.category is None
    assert one.evidence == ("error",)
    three = detect_category("", "fatal error, crash", policy)
    assert three.confidence == pytest.approx(1.0)
    assert three.category == "a"


def test_a_tie_proposes_nothing_and_shows_both_sides() -> None:
    policy = _policy(("a", "alpha", 3.0), ("b", "beta", 3.0), threshold=0.0)
    result = detect_category("", "beta then alpha", policy)
    assert result.category is None
    assert result.confidence == pytest.approx(0.5)
    assert result.evidence == ("beta", "alpha")


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(0.0, "a"), (0.5, "a"), (0.6, "a"), (0.61, None), (1.0, None)],
)
def test_threshold(threshold: float, expected: str | None) -> None:
    # a scores 3 of 5: confidence 0.6.
    policy = _policy(("a", "alpha", 3.0), ("b", "beta", 2.0), threshold=threshold)
    result = detect_category("", "alpha beta", policy)
    assert result.confidence == pytest.approx(0.6)
    assert result.category == expected
    assert result.evidence == ("alpha",)


def test_threshold_on_the_shipped_rules(detection: DetectionPolicy) -> None:
    subject, body = "checkout", "Since the upgrade we get a fatal error on checkout"
    result = detect_category(subject, body, detection)
    assert result.category == "upgrade"
    strict = DetectionPolicy(threshold=0.95, rules=detection.rules)
    assert detect_category(subject, body, strict).category is None
    assert detect_category(subject, body, strict).confidence == result.confidence


def test_nothing_matches_proposes_nothing_even_at_threshold_zero() -> None:
    result = detect_category("Hello", "Thanks a lot", _policy(("a", "alpha", 1.0), threshold=0))
    assert result == Detection(category=None, confidence=0.0, evidence=(), scores={})


def test_no_rules_proposes_nothing() -> None:
    assert detect_category("upgrade", "upgrade", DetectionPolicy()).category is None


def test_scores_are_highest_first_and_read_only() -> None:
    policy = _policy(("a", "alpha", 1.0), ("b", "beta", 2.0), ("c", "gamma", 3.0))
    result = detect_category("", "alpha beta gamma", policy)
    assert list(result.scores) == ["c", "b", "a"]
    with pytest.raises(TypeError):
        result.scores["d"] = 1.0  # type: ignore[index]


def test_only_the_start_of_a_long_text_is_read() -> None:
    policy = _policy(("a", "alpha", 3.0))
    padding = "x " * (MAX_TEXT_CHARS // 2)
    assert detect_category("", padding + "alpha", policy).category is None
    assert detect_category("", "alpha " + padding, policy).category == "a"


def test_same_policy_gives_same_answer_and_equal_policies_agree(
    detection: DetectionPolicy,
) -> None:
    subject, body = "Ошибка 500", "после переезда на другой сервер"
    first = detect_category(subject, body, detection)
    assert detect_category(subject, body, detection) == first
    copy = DetectionPolicy(threshold=detection.threshold, rules=tuple(detection.rules))
    assert copy is not detection
    assert detect_category(subject, body, copy) == first


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (_policy(("a", "об*нов", 1.0)), "'*' is allowed only at the end of a word"),
        (_policy(("a", "*", 1.0)), "'*' is allowed only at the end of a word"),
        (_policy(("a", "   ", 1.0)), "detection pattern is empty"),
        (_policy(("a", "alpha", 0.0)), "weight must be positive"),
        (_policy(("", "alpha", 1.0)), "has no category"),
        (_policy(("a", "alpha", 1.0), threshold=1.5), "threshold must be between 0 and 1"),
    ],
)
def test_invalid_policy_is_a_one_line_error(policy: DetectionPolicy, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        validate_detection(policy)
    assert "\n" not in str(raised.value)
    with pytest.raises(ValueError, match=message):
        detect_category("alpha", "alpha", policy)


# --- versions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Please upgrade our store from 4.3.1 to 4.3.9.", ("4.3.1", "4.3.9")),
        ("UPGRADE FROM 4.3.1 TO 4.3.9 ASAP", ("4.3.1", "4.3.9")),
        ("upgrade 4.3.1 -> 4.3.9 please", ("4.3.1", "4.3.9")),
        ("4.3.1→4.3.9", ("4.3.1", "4.3.9")),
        ("4.3.9 => 4.4.1", ("4.3.9", "4.4.1")),
        ("upgrade 4.9.2 to 4.9.2.SP4", ("4.9.2", "4.9.2.SP4")),
        ("from 4.17.2.sp1 to the version 4.18.1", ("4.17.2.sp1", "4.18.1")),
        ("upgrade to 4.18.1 from 4.16.2, thanks", ("4.16.2", "4.18.1")),
        ("We run v4.3.1. Please upgrade us to 4.3.9 asap", ("4.3.1", "4.3.9")),
        ("Хотим обновить магазин с 4.3.1 до 4.3.9", ("4.3.1", "4.3.9")),
        ("нужно обновление с версии 4.3.1 на 4.3.9", ("4.3.1", "4.3.9")),
        ("обновить 4.10.1 до 4.12.2", ("4.10.1", "4.12.2")),
        ("обновите до версии 4.18.2, сейчас стоит 4.17.2 SP3", ("4.17.2 SP3", "4.18.2")),
        ("обновить c 4.14.3.SP1 на 4.15.2 (c латинская)", ("4.14.3.SP1", "4.15.2")),
        ("Обновление до 4.19.1, текущая версия 4.18.3", ("4.18.3", "4.19.1")),
        ("from 4.3.1 to 4.3.1", ("4.3.1", "4.3.1")),
        ("upgrade to 4.18.1", None),
        ("we use version 4.3.1 and get an error", None),
        ("change the price from 9.99 to 19.99", None),
        ("move the site from 192.168.1.10 to 10.0.0.1", None),
        ("stores on 4.3.1 and 4.3.5, upgrade both to 4.3.9", None),
        ("обновление до последней версии", None),
        ("", None),
    ],
)
def test_extract_versions(text: str, expected: tuple[str, str] | None) -> None:
    assert extract_versions(text) == expected


# --- the engineer's choice --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "fields", "expected"),
    [
        (["vip", "care_category_upgrade"], {}, EngineerChoice("upgrade")),
        (
            ["care_category_question", "care_category_investigation"],
            {},
            EngineerChoice("investigation"),
        ),
        (["care_category_investigation", "care_category_question"], {}, EngineerChoice("question")),
        (["Care_Category_Configuration"], {}, EngineerChoice("configuration")),
        (["care_category_upgrade", "care_category_bogus"], {}, EngineerChoice("upgrade")),
        ([], {"care_category": "modification"}, EngineerChoice("modification")),
        ([], {"care_category": " Modification "}, EngineerChoice("modification")),
        ([], {"care_category": "care_category_modification"}, EngineerChoice("modification")),
        (
            ["care_category_question"],
            {"care_category": "modification"},
            EngineerChoice("modification"),
        ),
        (["care_category_question"], {"care_category": "nonsense"}, EngineerChoice("question")),
        (["care_category_question"], {"care_category": ""}, EngineerChoice("question")),
        (
            [],
            {"care_category": "modification", "care_price": "35"},
            EngineerChoice("modification", 35),
        ),
        (
            ["care_category_modification"],
            {"care_price": " 40 "},
            EngineerChoice("modification", 40),
        ),
        (
            ["care_category_modification"],
            {"care_price": "thirty"},
            EngineerChoice("modification"),
        ),
        (["care_category_modification"], {"care_price": "-5"}, EngineerChoice("modification")),
        (["care_category_modification"], {"care_price": "0"}, EngineerChoice("modification")),
        (["care_category_modification"], {"care_price": "12.5"}, EngineerChoice("modification")),
        (["care_category_modification"], {"care_price": ""}, EngineerChoice("modification")),
        (["care_category_modification"], {"care_price": "9" * 40}, EngineerChoice("modification")),
        (["care_category_bogus"], {}, None),
        (["care_categor_upgrade", "upgrade"], {}, None),
        ([], {"care_price": "30"}, None),
        ([], {}, None),
    ],
)
def test_engineer_category(
    tags: list[str], fields: dict[str, str], expected: EngineerChoice | None
) -> None:
    assert engineer_category(tags, fields, categories=CATEGORIES) == expected


def test_engineer_category_with_own_tag_and_field_names() -> None:
    choice = engineer_category(
        iter(["cat_upgrade"]),
        {"Type": "Modification", "Price": "25"},
        categories=CATEGORIES,
        tag_prefix="cat_",
        category_field="Type",
        price_field="Price",
    )
    assert choice == EngineerChoice("modification", 25)
    assert engineer_category(["cat_upgrade"], {}, categories=CATEGORIES, tag_prefix="cat_") == (
        EngineerChoice("upgrade")
    )


def test_engineer_category_tolerates_non_string_field_values() -> None:
    fields: dict[str, object] = {"care_category": None, "care_price": 30}
    choice = engineer_category(
        ["care_category_modification"],
        fields,  # type: ignore[arg-type]
        categories=CATEGORIES,
    )
    assert choice == EngineerChoice("modification", 30)
