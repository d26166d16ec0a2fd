"""Prices, quotes and the credit arithmetic, against the shipped price table."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.credits import (
    CreditError,
    InsufficientCreditsError,
    PriceError,
    Quote,
    balance_after,
    category_price,
    difference,
    quote,
    shortfall,
    split,
    upgrade_price,
)
from rules.policy import CategoryPolicy, Policy, UpgradePricing
from rules.releases import (
    DowngradeError,
    MalformedVersionError,
    ReleaseError,
    SameVersionError,
    UnknownVersionError,
)

PUBLISHED = UpgradePricing(base=20, included_steps=2, per_step=5)

# --- the price table --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "credits"),
    [
        # care-policy.md section 3: the fixed prices, and the minimum of a modification.
        ("question", 5),
        ("configuration", 10),
        ("modification", 20),
        ("investigation", 20),
    ],
)
def test_price_table(shipped_pricing_policy: Policy, category: str, credits: int) -> None:
    cat = shipped_pricing_policy.category(category)
    assert category_price(cat, pricing=shipped_pricing_policy.upgrade) == credits
    result = quote(shipped_pricing_policy, category)
    assert (result.category, result.credits, result.steps) == (category, credits, None)


def test_shipped_upgrade_pricing_is_the_published_one(shipped_pricing_policy: Policy) -> None:
    assert shipped_pricing_policy.upgrade == PUBLISHED


@pytest.mark.parametrize(
    ("steps", "credits"),
    [(0, 20), (1, 20), (2, 20), (3, 25), (4, 30), (8, 50), (10, 60), (65, 335)],
)
def test_upgrade_price(steps: int, credits: int) -> None:
    assert upgrade_price(steps, PUBLISHED) == credits


@pytest.mark.parametrize(
    ("pricing", "steps", "credits"),
    [
        (UpgradePricing(base=30, included_steps=0, per_step=7), 3, 51),
        (UpgradePricing(base=30, included_steps=0, per_step=7), 0, 30),
        (UpgradePricing(base=10, included_steps=5, per_step=1), 5, 10),
        (UpgradePricing(base=10, included_steps=5, per_step=1), 6, 11),
    ],
)
def test_upgrade_price_follows_the_config(
    pricing: UpgradePricing, steps: int, credits: int
) -> None:
    assert upgrade_price(steps, pricing) == credits


def test_upgrade_price_rejects_negative_steps() -> None:
    with pytest.raises(ValueError, match="negative"):
        upgrade_price(-1, PUBLISHED)


@pytest.mark.parametrize(("engineer", "credits"), [(None, 20), (20, 20), (35, 35), (200, 200)])
def test_modification_takes_the_engineers_figure(
    shipped_pricing_policy: Policy, engineer: int | None, credits: int
) -> None:
    cat = shipped_pricing_policy.category("modification")
    price = category_price(cat, engineer_credits=engineer, pricing=PUBLISHED)
    assert price == credits
    assert quote(shipped_pricing_policy, "modification", credits=engineer).credits == credits


@pytest.mark.parametrize("engineer", [19, 0, -5])
def test_modification_below_the_minimum(shipped_pricing_policy: Policy, engineer: int) -> None:
    cat = shipped_pricing_policy.category("modification")
    with pytest.raises(PriceError, match="at least 20"):
        category_price(cat, engineer_credits=engineer, pricing=PUBLISHED)
    with pytest.raises(PriceError, match="at least 20"):
        quote(shipped_pricing_policy, "modification", credits=engineer)


@pytest.mark.parametrize("category", ["question", "configuration", "investigation", "upgrade"])
def test_engineer_figure_only_on_an_engineer_priced_category(
    shipped_pricing_policy: Policy, category: str
) -> None:
    cat = shipped_pricing_policy.category(category)
    with pytest.raises(PriceError, match="fixed price"):
        category_price(cat, engineer_credits=30, steps=3, pricing=PUBLISHED)
    with pytest.raises(PriceError, match="modification"):
        quote(shipped_pricing_policy, category, credits=30)


@pytest.mark.parametrize("category", ["question", "configuration", "modification"])
def test_steps_only_on_a_step_priced_category(
    shipped_pricing_policy: Policy, category: str
) -> None:
    cat = shipped_pricing_policy.category(category)
    with pytest.raises(PriceError, match="not priced by upgrade steps"):
        category_price(cat, steps=3, pricing=PUBLISHED)


def test_step_priced_category_needs_steps(shipped_pricing_policy: Policy) -> None:
    cat = shipped_pricing_policy.category("upgrade")
    with pytest.raises(PriceError, match="steps are required"):
        category_price(cat, pricing=PUBLISHED)
    assert category_price(cat, steps=8, pricing=PUBLISHED) == 50


# --- quotes -----------------------------------------------------------------------------


def test_worked_example_from_the_page(shipped_pricing_policy: Policy) -> None:
    result = quote(shipped_pricing_policy, "upgrade", from_version="4.3.1", to_version="4.3.9")
    assert result == Quote(
        category="upgrade",
        credits=50,
        steps=8,
        explanation_en="20 + 5 × (8 − 2) = 50 credits for 8 release steps",
        explanation_ru="20 + 5 × (8 − 2) = 50 кредитов за 8 шагов обновления",
    )


@pytest.mark.parametrize(
    ("from_v", "to_v", "steps", "credits"),
    [
        ("4.3.9", "4.4.1", 2, 20),  # across branches: 4.3.10, 4.4.1
        ("4.9.2", "4.9.2.SP4", 0, 20),  # service packs only
        ("4.4.2.SP1", "4.4.3", 1, 20),  # a service pack as the source
        ("4.4.1", "4.4.2.SP2", 1, 20),  # a service pack as the target
        ("4.9.2.SP4", "4.10.1", 2, 20),
        ("4.3.1", "4.4.1", 10, 60),
        ("4.17.2.sp3", "4.19.1", 4, 30),  # case-insensitive
        ("V4.3.1", " 4.3.9 ", 8, 50),
        ("4.0.1", "4.19.1", 65, 335),
    ],
)
def test_upgrade_quotes(
    shipped_pricing_policy: Policy, from_v: str, to_v: str, steps: int, credits: int
) -> None:
    result = quote(shipped_pricing_policy, "upgrade", from_version=from_v, to_version=to_v)
    assert (result.category, result.steps, result.credits) == ("upgrade", steps, credits)
    assert result.credits == upgrade_price(steps, shipped_pricing_policy.upgrade)


@pytest.mark.parametrize(
    ("from_v", "to_v", "en", "ru"),
    [
        (
            "4.9.2",
            "4.9.2.SP4",
            "20 credits for 0 release steps (up to 2 steps included)",
            "20 кредитов за 0 шагов обновления (до 2 шагов входят в базовую цену)",
        ),
        (
            "4.4.2",
            "4.4.3",
            "20 credits for 1 release step (up to 2 steps included)",
            "20 кредитов за 1 шаг обновления (до 2 шагов входят в базовую цену)",
        ),
        (
            "4.3.1",
            "4.3.4",
            "20 + 5 × (3 − 2) = 25 credits for 3 release steps",
            "20 + 5 × (3 − 2) = 25 кредитов за 3 шага обновления",
        ),
        (
            "4.3.1",
            "4.4.2",
            "20 + 5 × (11 − 2) = 65 credits for 11 release steps",
            "20 + 5 × (11 − 2) = 65 кредитов за 11 шагов обновления",
        ),
    ],
)
def test_upgrade_explanations(
    shipped_pricing_policy: Policy, from_v: str, to_v: str, en: str, ru: str
) -> None:
    result = quote(shipped_pricing_policy, "upgrade", from_version=from_v, to_version=to_v)
    assert (result.explanation_en, result.explanation_ru) == (en, ru)


@pytest.mark.parametrize(
    ("credits", "ru_credits"),
    [(21, "21 кредит"), (22, "22 кредита"), (25, "25 кредитов"), (101, "101 кредит"),
     (111, "111 кредитов"), (112, "112 кредитов"), (124, "124 кредита")],
)  # fmt: skip
def test_russian_plural_of_credits(
    shipped_pricing_policy: Policy, credits: int, ru_credits: str
) -> None:
    result = quote(shipped_pricing_policy, "modification", credits=credits)
    assert f"): {ru_credits}, сумма назначена инженером (минимум 20 кредитов)" in (
        result.explanation_ru
    )
    assert f"): {credits} credits, set by the engineer (minimum 20 credits)" in (
        result.explanation_en
    )


@pytest.mark.parametrize(
    ("category", "en", "ru"),
    [
        ("question", "(question): 5 credits, fixed price", "(question): 5 кредитов, фикси"),
        ("configuration", "(configuration): 10 credits, fixed", "(configuration): 10 кредитов"),
        ("modification", "(modification): 20 credits, the minimum", "20 кредитов, минимальная"),
    ],
)
def test_fixed_and_default_explanations(
    shipped_pricing_policy: Policy, category: str, en: str, ru: str
) -> None:
    result = quote(shipped_pricing_policy, category)
    title = shipped_pricing_policy.category(category)
    assert result.explanation_en.startswith(title.title_en) and en in result.explanation_en
    assert result.explanation_ru.startswith(title.title_ru) and ru in result.explanation_ru


def test_upgrade_pricing_comes_from_the_policy(shipped_pricing_policy: Policy) -> None:
    policy = dataclasses.replace(
        shipped_pricing_policy, upgrade=UpgradePricing(base=30, included_steps=1, per_step=10)
    )
    result = quote(policy, "upgrade", from_version="4.3.1", to_version="4.3.9")
    assert (result.credits, result.steps) == (100, 8)
    assert result.explanation_en == "30 + 10 × (8 − 1) = 100 credits for 8 release steps"


@pytest.mark.parametrize("spelling", ["Upgrade", "UPGRADE", " upgrade "])
def test_category_is_case_insensitive(shipped_pricing_policy: Policy, spelling: str) -> None:
    result = quote(shipped_pricing_policy, spelling, from_version="4.3.1", to_version="4.3.9")
    assert (result.category, result.credits) == ("upgrade", 50)


@pytest.mark.parametrize("category", ["bogus", "", "upgrades", "question?"])
def test_unknown_category(shipped_pricing_policy: Policy, category: str) -> None:
    with pytest.raises(PriceError, match="unknown category") as err:
        quote(shipped_pricing_policy, category)
    assert repr(category.strip()) in str(err.value)
    assert "question" in str(err.value)  # lists the known ones


@pytest.mark.parametrize(
    ("category", "from_v", "to_v"),
    [
        ("question", "4.3.1", "4.3.9"),
        ("configuration", "4.3.1", None),
        ("modification", None, "4.3.9"),
        ("investigation", "4.3.1", "4.3.9"),
    ],
)
def test_versions_only_on_an_upgrade(
    shipped_pricing_policy: Policy, category: str, from_v: str | None, to_v: str | None
) -> None:
    with pytest.raises(PriceError, match="versions apply only") as err:
        quote(shipped_pricing_policy, category, from_version=from_v, to_version=to_v)
    assert "upgrade" in str(err.value)


@pytest.mark.parametrize(("from_v", "to_v"), [(None, None), ("4.3.1", None), (None, "4.3.9")])
def test_upgrade_needs_both_versions(
    shipped_pricing_policy: Policy, from_v: str | None, to_v: str | None
) -> None:
    with pytest.raises(PriceError, match="both"):
        quote(shipped_pricing_policy, "upgrade", from_version=from_v, to_version=to_v)


@pytest.mark.parametrize(
    ("from_v", "to_v", "error", "named"),
    [
        ("4.3.99", "4.3.9", UnknownVersionError, "4.3.99"),
        ("4.3.1", "5.0", UnknownVersionError, "5.0"),
        ("4.9.2.sp4", "4.9.2.SP4", SameVersionError, "4.9.2.SP4"),
        ("4.3.9", "4.3.1", DowngradeError, "4.3.9 → 4.3.1"),
        ("4..3", "4.3.9", MalformedVersionError, "4..3"),
        ("4.3.1", "abc", MalformedVersionError, "abc"),
    ],
)
def test_version_errors_propagate(
    shipped_pricing_policy: Policy,
    from_v: str,
    to_v: str,
    error: type[ReleaseError],
    named: str,
) -> None:
    with pytest.raises(error) as err:
        quote(shipped_pricing_policy, "upgrade", from_version=from_v, to_version=to_v)
    assert named in str(err.value)


@pytest.mark.parametrize("bad", [True, 20.0, "20"])
def test_quote_rejects_a_non_int_figure(shipped_pricing_policy: Policy, bad: object) -> None:
    with pytest.raises(TypeError):
        quote(shipped_pricing_policy, "modification", credits=bad)  # type: ignore[arg-type]


def test_errors_share_one_root() -> None:
    assert issubclass(PriceError, CreditError)
    assert issubclass(InsufficientCreditsError, CreditError)
    assert issubclass(CreditError, ValueError)


def test_quote_is_frozen(shipped_pricing_policy: Policy) -> None:
    result = quote(shipped_pricing_policy, "question")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.credits = 1  # type: ignore[misc]


def test_a_vendor_category_is_priced_from_the_config(shipped_pricing_policy: Policy) -> None:
    extra = CategoryPolicy("audit", "Security audit", "Аудит безопасности", 40, approval=True)
    policy = dataclasses.replace(
        shipped_pricing_policy, categories={**shipped_pricing_policy.categories, "audit": extra}
    )
    result = quote(policy, "audit")
    assert (result.credits, result.explanation_ru) == (
        40,
        "Аудит безопасности (audit): 40 кредитов, фиксированная цена",
    )


# --- balances and charges ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "amount", "missing"),
    [(100, 50, 0), (50, 50, 0), (30, 50, 20), (0, 5, 5), (0, 0, 0), (7, 0, 0)],
)
def test_shortfall(balance: int, amount: int, missing: int) -> None:
    assert shortfall(balance, amount) == missing


@pytest.mark.parametrize(
    ("balance", "amount", "after"),
    [(100, 50, 50), (50, 50, 0), (30, -10, 40), (0, -20, 20), (12, 0, 12)],
)
def test_balance_after(balance: int, amount: int, after: int) -> None:
    assert balance_after(balance, amount) == after


@pytest.mark.parametrize(("balance", "amount"), [(30, 50), (0, 5), (19, 20)])
def test_balance_never_goes_below_zero(balance: int, amount: int) -> None:
    with pytest.raises(InsufficientCreditsError) as err:
        balance_after(balance, amount)
    assert (err.value.balance, err.value.amount) == (balance, amount)
    assert f"by {shortfall(balance, amount)}" in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "change"),
    [
        (50, 10, -40),  # upgrade re-categorised to configuration: a refund
        (10, 20, 10),  # configuration to investigation: an extra charge
        (20, 20, 0),
        (0, 5, 5),
        (5, 0, -5),
    ],
)
def test_difference(old: int, new: int, change: int) -> None:
    assert difference(old, new) == change
    assert balance_after(100 - old, difference(old, new)) == 100 - new


@pytest.mark.parametrize(
    "call",
    [
        lambda: shortfall(10, -1),
        lambda: difference(-1, 5),
        lambda: difference(5, -1),
    ],
)
def test_negative_amounts_are_refused(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="negative"):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: upgrade_price(True, PUBLISHED),
        lambda: upgrade_price(2.0, PUBLISHED),  # type: ignore[arg-type]
        lambda: shortfall(10, 2.5),  # type: ignore[arg-type]
        lambda: shortfall(True, 2),
        lambda: balance_after(10.0, 2),  # type: ignore[arg-type]
        lambda: balance_after(10, False),
        lambda: difference(5.0, 10),  # type: ignore[arg-type]
        lambda: difference(5, True),
        lambda: split(10.0, [1, 1]),  # type: ignore[arg-type]
        lambda: split(True, [1, 1]),
        lambda: split(10, [1.5, 1]),  # type: ignore[list-item]
        lambda: split(10, [True, 1]),
    ],
)
def test_bool_and_float_amounts_are_refused(call: Callable[[], object]) -> None:
    with pytest.raises(TypeError, match="whole number of credits"):
        call()


# --- splitting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        (10, [1, 1, 1], [4, 3, 3]),
        (5, [2, 1], [3, 2]),
        (100, [1], [100]),
        (7, [0, 1], [0, 7]),
        (0, [3, 4], [0, 0]),
        (50, [1, 1, 1, 1, 1, 1], [9, 9, 8, 8, 8, 8]),
        (20, [1, 2, 3, 4], [2, 4, 6, 8]),
        (1, [1, 1, 1], [1, 0, 0]),
        (11, [1, 3], [3, 8]),
    ],
)
def test_split_examples(total: int, weights: list[int], parts: list[int]) -> None:
    assert split(total, weights) == parts


@pytest.mark.parametrize(
    ("total", "weights"),
    [(10, []), (10, [0, 0]), (-1, [1]), (10, [1, -1])],
)
def test_split_refuses(total: int, weights: list[int]) -> None:
    with pytest.raises(ValueError):
        split(total, weights)


@given(
    total=st.integers(0, 10**9),
    weights=st.lists(st.integers(0, 10**6), min_size=1, max_size=30).filter(any),
)
def test_split_properties(total: int, weights: list[int]) -> None:
    parts = split(total, weights)
    weight_sum = sum(weights)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert isinstance(part, int) and not isinstance(part, bool)
        # Within one credit of the exact share total × weight / weight_sum.
        assert abs(part * weight_sum - total * weight) < weight_sum
        if weight == 0:
            assert part == 0
    for i, wi in enumerate(weights):
        for j, wj in enumerate(weights):
            if wi > wj:
                assert parts[i] >= parts[j]
