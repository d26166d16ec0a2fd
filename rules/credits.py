"""All credit arithmetic of the connector, in one place.

Design overview
---------------
Credits are whole numbers (``int``) everywhere: prices, balances, charges, refunds. Nothing
here accepts a ``float`` or a ``bool`` (``True`` is an ``int`` to Python, never a credit
amount), so a stray ``20.0`` or ``True`` fails loudly with :class:`TypeError` instead of being
rounded somewhere.

- **Prices** come from the policy's category table (:class:`rules.policy.CategoryPolicy`):
  a fixed figure; for an engineer-priced category (``modification``) the engineer's figure,
  which may not be below the table's minimum; for the step-priced category (``upgrade``) the
  formula ``base + per_step × max(0, steps − included_steps)`` over the release list
  (:mod:`rules.releases` counts the steps). :func:`category_price` is the one lookup,
  :func:`quote` the one entry point that also explains the figure in English and Russian.
- **Balances**: :func:`shortfall` is what is missing before a charge can be made (nothing is
  charged when the balance is too small), :func:`balance_after` the balance a reply states
  after a charge or refund; a balance never goes below zero.
- **Re-categorising** a charged ticket changes the charge by :func:`difference`: positive is
  an extra charge (which again needs the customer's agreement), negative a refund.
- **Splitting** a charge over parts (:func:`split`) uses the largest-remainder method, so the
  parts are whole credits that always add up to the total.

The ledger (``connector/ledger.py``) records movements; it does no arithmetic of its own
beyond summing entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rules.policy import CategoryPolicy, Policy, UpgradePricing
from rules.releases import ReleaseIndex

__all__ = [
    "CreditError",
    "InsufficientCreditsError",
    "PriceError",
    "Quote",
    "balance_after",
    "category_price",
    "difference",
    "quote",
    "shortfall",
    "split",
    "upgrade_price",
]


class CreditError(ValueError):
    """Root of the credit-arithmetic errors; the message is one line, fit to show a user."""


class PriceError(CreditError):
    """A price cannot be given: unknown category, a figure that does not apply, a missing
    input, or an engineer's figure below the minimum."""


class InsufficientCreditsError(CreditError):
    """A charge would take the balance below zero.

    :param balance: the balance before the charge.
    :param amount: the charge.
    """

    def __init__(self, balance: int, amount: int) -> None:
        self.balance = balance
        self.amount = amount
        super().__init__(
            f"a charge of {amount} credits exceeds the balance of {balance} credits "
            f"by {amount - balance}"
        )


def _require_int(name: str, value: object) -> int:
    # bool is a subclass of int: reject it explicitly.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number of credits (int), not {value!r}")
    return value


def _require_non_negative(name: str, value: object) -> int:
    number = _require_int(name, value)
    if number < 0:
        raise ValueError(f"{name} must not be negative, got {number}")
    return number


# --- prices -----------------------------------------------------------------------------


def upgrade_price(steps: int, pricing: UpgradePricing) -> int:
    """The upgrade formula: ``base + per_step × max(0, steps − included_steps)``.

    With the published figures: 8 steps cost 20 + 5 × 6 = 50 credits; up to 2 steps, 20.

    :param steps: release steps, service packs not counted (:func:`rules.releases.upgrade_steps`).
    :param pricing: the policy's upgrade pricing.
    :raises TypeError: when ``steps`` is not an int.
    :raises ValueError: when ``steps`` is negative.
    """
    count = _require_non_negative("steps", steps)
    return pricing.base + pricing.per_step * max(0, count - pricing.included_steps)


def category_price(
    category: CategoryPolicy,
    *,
    engineer_credits: int | None = None,
    steps: int | None = None,
    pricing: UpgradePricing,
) -> int:
    """The price of one ticket of ``category``.

    - fixed price: the table's figure;
    - engineer-priced (``modification``): the engineer's figure, by default the table's
      minimum; a figure below the minimum is refused;
    - priced by steps (``upgrade``): :func:`upgrade_price` of ``steps``.

    :param category: the category's policy.
    :param engineer_credits: the engineer's figure (engineer-priced categories only).
    :param steps: release steps (step-priced categories only, and required there).
    :param pricing: the policy's upgrade pricing.
    :raises PriceError: on a figure for a category the engineer does not price, a figure below
        the minimum, steps for a category not priced by steps, or missing steps.
    :raises TypeError: when a figure or step count is not an int.
    """
    if engineer_credits is not None:
        _require_int("engineer_credits", engineer_credits)
        if not category.engineer_priced:
            raise PriceError(
                f"{category.key!r} has a fixed price; only an engineer-priced category "
                "takes the engineer's figure"
            )
    if steps is not None:
        _require_int("steps", steps)
        if not category.priced_by_steps:
            raise PriceError(f"{category.key!r} is not priced by upgrade steps")
    if category.engineer_priced:
        figure = category.credits if engineer_credits is None else engineer_credits
        if figure < category.credits:
            raise PriceError(
                f"{category.key!r} costs at least {category.credits} credits, got {figure}"
            )
        return figure
    if category.priced_by_steps:
        if steps is None:
            raise PriceError(f"{category.key!r} is priced by upgrade steps; steps are required")
        return upgrade_price(steps, pricing)
    return category.credits


# --- quotes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quote:
    """A price with its explanation.

    :param category: the category key.
    :param credits: the price.
    :param steps: release steps for a step-priced category, else ``None``.
    :param explanation_en: how the figure comes about, in English.
    :param explanation_ru: the same in Russian.
    """

    category: str
    credits: int
    steps: int | None
    explanation_en: str
    explanation_ru: str


def _en_plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _ru_form(n: int, one: str, few: str, many: str) -> str:
    """Russian noun form for ``n``: 1 кредит, 2 кредита, 5 кредитов, 21 кредит, 11 кредитов."""
    tail, tail2 = abs(n) % 10, abs(n) % 100
    if tail == 1 and tail2 != 11:
        return one
    if 2 <= tail <= 4 and not 12 <= tail2 <= 14:
        return few
    return many


def _ru_credits(n: int) -> str:
    return f"{n} {_ru_form(n, 'кредит', 'кредита', 'кредитов')}"


def _ru_steps_acc(n: int) -> str:
    # "за N шаг/шага/шагов": the accusative after a numeral.
    return f"{n} {_ru_form(n, 'шаг', 'шага', 'шагов')}"


def _ru_steps_gen(n: int) -> str:
    # "до N шага/шагов": the genitive after "до".
    return f"{n} {_ru_form(n, 'шага', 'шагов', 'шагов')}"


def _explain_steps(credits: int, steps: int, pricing: UpgradePricing) -> tuple[str, str]:
    steps_en = _en_plural(steps, "release step", "release steps")
    steps_ru = f"{_ru_steps_acc(steps)} обновления"
    if steps > pricing.included_steps:
        formula = f"{pricing.base} + {pricing.per_step} × ({steps} − {pricing.included_steps}) = "
        return (
            f"{formula}{_en_plural(credits, 'credit', 'credits')} for {steps_en}",
            f"{formula}{_ru_credits(credits)} за {steps_ru}",
        )
    included = pricing.included_steps
    return (
        f"{_en_plural(credits, 'credit', 'credits')} for {steps_en} "
        f"(up to {_en_plural(included, 'step', 'steps')} included)",
        f"{_ru_credits(credits)} за {steps_ru} "
        f"(до {_ru_steps_gen(included)} входят в базовую цену)",
    )


def _explain(
    category: CategoryPolicy, credits: int, engineer_credits: int | None
) -> tuple[str, str]:
    en = f"{category.title_en} ({category.key}): {_en_plural(credits, 'credit', 'credits')}"
    ru = f"{category.title_ru} ({category.key}): {_ru_credits(credits)}"
    if not category.engineer_priced:
        return f"{en}, fixed price", f"{ru}, фиксированная цена"
    minimum_en = _en_plural(category.credits, "credit", "credits")
    minimum_ru = _ru_credits(category.credits)
    if engineer_credits is None:
        return (
            f"{en}, the minimum; the engineer sets the final figure",
            f"{ru}, минимальная цена; окончательную сумму назначает инженер",
        )
    return (
        f"{en}, set by the engineer (minimum {minimum_en})",
        f"{ru}, сумма назначена инженером (минимум {minimum_ru})",
    )


def _find_category(policy: Policy, category: str) -> CategoryPolicy:
    if not isinstance(category, str):
        raise TypeError(f"a category must be a string, not {type(category).__name__}")
    key = category.strip()
    found = policy.categories.get(key)
    if found is None:
        # Keys are lower-case in the shipped policy; accept "Upgrade" for "upgrade".
        matches = [c for k, c in policy.categories.items() if k.casefold() == key.casefold()]
        if len(matches) == 1:
            found = matches[0]
    if found is None:
        known = ", ".join(policy.categories)
        raise PriceError(f"unknown category {category.strip()!r}; known categories: {known}")
    return found


def quote(
    policy: Policy,
    category: str,
    *,
    from_version: str | None = None,
    to_version: str | None = None,
    credits: int | None = None,
) -> Quote:
    """Price one ticket of ``category`` under ``policy`` and explain the figure.

    With the published policy, ``quote(policy, "upgrade", from_version="4.3.1",
    to_version="4.3.9")`` is 50 credits for 8 steps, explained as
    "20 + 5 × (8 − 2) = 50 credits for 8 release steps".

    :param policy: the policy (categories, upgrade pricing, release list).
    :param category: a category key (case-insensitive).
    :param from_version: the installed version (step-priced categories only).
    :param to_version: the target version (step-priced categories only).
    :param credits: the engineer's figure (engineer-priced categories only).
    :raises PriceError: on an unknown category, an engineer's figure where it does not apply
        or below the minimum, versions on a category not priced by steps, or an upgrade
        without both versions.
    :raises rules.releases.ReleaseError: on a malformed or unknown version, equal versions or
        a downgrade.
    :raises TypeError: when ``credits`` is not an int.
    """
    cat = _find_category(policy, category)
    if credits is not None:
        _require_int("credits", credits)
        if not cat.engineer_priced:
            raise PriceError(
                f"{cat.key!r} has a fixed price; an engineer's figure applies only to "
                + ", ".join(k for k, c in policy.categories.items() if c.engineer_priced)
            )
    steps: int | None = None
    if cat.priced_by_steps:
        if from_version is None or to_version is None:
            raise PriceError(f"{cat.key!r} needs both the from and the to version")
        steps = ReleaseIndex.for_releases(policy.releases).steps(from_version, to_version)
    elif from_version is not None or to_version is not None:
        step_priced = ", ".join(k for k, c in policy.categories.items() if c.priced_by_steps)
        raise PriceError(
            f"versions apply only to a category priced by upgrade steps ({step_priced}), "
            f"not to {cat.key!r}"
        )
    price = category_price(cat, engineer_credits=credits, steps=steps, pricing=policy.upgrade)
    if steps is not None:
        en, ru = _explain_steps(price, steps, policy.upgrade)
    else:
        en, ru = _explain(cat, price, credits)
    return Quote(cat.key, price, steps, en, ru)


# --- balances and charges ---------------------------------------------------------------


def shortfall(balance: int, amount: int) -> int:
    """How many credits are missing before ``amount`` can be charged (0 when none).

    :param balance: the current balance.
    :param amount: the charge (not negative).
    :raises TypeError: when either is not an int.
    :raises ValueError: when ``amount`` is negative.
    """
    have = _require_int("balance", balance)
    need = _require_non_negative("amount", amount)
    return max(0, need - have)


def balance_after(balance: int, amount: int) -> int:
    """The balance after a charge (``amount`` > 0) or a refund (``amount`` < 0).

    A negative ``amount`` is what :func:`difference` returns for a refund, so
    ``balance_after(balance, difference(old, new))`` applies a re-categorisation.

    :param balance: the current balance.
    :param amount: the charge; negative for a refund.
    :raises TypeError: when either is not an int.
    :raises InsufficientCreditsError: when the charge exceeds the balance (nothing may be
        charged then: check :func:`shortfall` first).
    """
    have = _require_int("balance", balance)
    charge = _require_int("amount", amount)
    if charge > have:
        raise InsufficientCreditsError(have, charge)
    return have - charge


def difference(old_charge: int, new_price: int) -> int:
    """How a charge changes when a ticket is re-priced: positive is an extra charge,
    negative a refund, 0 nothing.

    :param old_charge: what was charged (not negative).
    :param new_price: the new price (not negative).
    :raises TypeError: when either is not an int.
    :raises ValueError: when either is negative.
    """
    return _require_non_negative("new_price", new_price) - _require_non_negative(
        "old_charge", old_charge
    )


def split(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` credits in proportion to ``weights``, in whole credits.

    Largest remainder: every part gets the floor of its exact share, and the credits left
    over go one each to the parts with the largest remainders (ties to the earlier part). The
    parts always add up to ``total``; a part with weight 0 gets 0.

    >>> split(10, [1, 1, 1])
    [4, 3, 3]

    :param total: the credits to split (not negative).
    :param weights: one non-negative weight per part, not all zero.
    :raises TypeError: when the total or a weight is not an int.
    :raises ValueError: when the total or a weight is negative, or there is no positive weight.
    """
    amount = _require_non_negative("total", total)
    parts_weights = [_require_non_negative("weight", w) for w in weights]
    weight_sum = sum(parts_weights)
    if weight_sum == 0:
        raise ValueError("split needs at least one positive weight")
    shares = [divmod(amount * w, weight_sum) for w in parts_weights]
    parts = [whole for whole, _ in shares]
    left = amount - sum(parts)
    # left < len(parts): each remainder is below weight_sum, so they add up to less than
    # len(parts) whole shares.
    by_remainder = sorted(range(len(parts)), key=lambda i: (-shares[i][1], i))
    for i in by_remainder[:left]:
        parts[i] += 1
    assert sum(parts) == amount, f"split({amount}, {parts_weights}) gave {parts}"
    return parts
