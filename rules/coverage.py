"""Coverage: whether a plan includes a ticket's category, monthly quotas, and approval.

care-policy.md sections 2, 3 and 6: a category a plan covers is handled without a charge
while the plan's monthly quota for it lasts; beyond the quota, and for a category the plan does
not cover, the ticket is handled as under ``credits`` (estimate, approval, charge). An upgrade
needs an active upgrade subscription under every plan; without one nothing is charged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rules.entitlements import local_day
from rules.policy import CategoryPolicy, Policy

__all__ = ["BLOCKED_NO_UPGRADES", "Coverage", "assess", "quota_period", "requires_approval"]

#: ``Coverage.blocked`` for an upgrade without an upgrade subscription.
BLOCKED_NO_UPGRADES = "no_upgrade_subscription"


@dataclass(frozen=True, slots=True)
class Coverage:
    """How a plan handles one ticket of one category.

    :param covered: included in the plan, nothing to pay.
    :param paid: handled as under ``credits``: priced, and approved where the category says so.
    :param counts_quota: the ticket takes one unit of the plan's monthly quota.
    :param blocked: why the ticket cannot be handled at all (``"no_upgrade_subscription"``),
        else ``None``; a blocked ticket is neither covered nor paid.
    :param quota_limit: the month's allowance for the category, ``None`` when not metered.
    :param quota_used: units used this month, this ticket included when it counts.
    """

    covered: bool
    paid: bool
    counts_quota: bool
    blocked: str | None
    quota_limit: int | None
    quota_used: int
    reason_en: str
    reason_ru: str


def assess(
    plan: str,
    category: str,
    policy: Policy,
    *,
    has_upgrades: bool,
    quota_used: int,
    quota_allowance: int | None = None,
) -> Coverage:
    """Decide how ``plan`` handles a ticket of ``category``.

    :param has_upgrades: the customer's upgrade subscription is active on the ticket's day.
    :param quota_used: units of the category's quota used in the ticket's month, this ticket
        not included.
    :param quota_allowance: the month's allowance opened by the monthly reset, if known; it
        replaces the plan's figure for a category the plan meters (so a plan change mid-month
        does not rewrite the month) and is ignored for one it does not meter.
    :raises ValueError: unknown plan or category, or a negative count.
    """
    if plan not in policy.plans:
        raise ValueError(f"unknown plan {plan!r}")
    if category not in policy.categories:
        raise ValueError(f"unknown category {category!r}")
    if quota_used < 0:
        raise ValueError(f"quota_used must be 0 or more, got {quota_used}")
    if quota_allowance is not None and quota_allowance < 0:
        raise ValueError(f"quota_allowance must be 0 or more, got {quota_allowance}")
    plan_policy = policy.plans[plan]
    cat = policy.categories[category]

    if cat.needs_upgrade_subscription and not has_upgrades:
        return Coverage(
            covered=False,
            paid=False,
            counts_quota=False,
            blocked=BLOCKED_NO_UPGRADES,
            quota_limit=None,
            quota_used=quota_used,
            reason_en=f"{cat.title_en} needs an active upgrade subscription: nothing charged",
            reason_ru=(
                f"{cat.title_ru}: нужна действующая подписка на обновления, оплата не списана"
            ),
        )

    if category not in plan_policy.covers:
        return Coverage(
            covered=False,
            paid=True,
            counts_quota=False,
            blocked=None,
            quota_limit=None,
            quota_used=quota_used,
            reason_en=(
                f"{cat.title_en} is not included in {plan_policy.title_en}: paid per ticket"
            ),
            reason_ru=(
                f"{cat.title_ru}: не входит в план «{plan_policy.title_ru}», оплата за обращение"
            ),
        )

    limit = plan_policy.monthly_quota.get(category)
    if limit is not None and quota_allowance is not None:
        limit = quota_allowance
    if limit is None:
        return Coverage(
            covered=True,
            paid=False,
            counts_quota=False,
            blocked=None,
            quota_limit=None,
            quota_used=quota_used,
            reason_en=f"{cat.title_en} is included in {plan_policy.title_en}",
            reason_ru=f"{cat.title_ru}: входит в план «{plan_policy.title_ru}»",
        )
    if quota_used < limit:
        used = quota_used + 1
        return Coverage(
            covered=True,
            paid=False,
            counts_quota=True,
            blocked=None,
            quota_limit=limit,
            quota_used=used,
            reason_en=(
                f"{cat.title_en} is included in {plan_policy.title_en}:"
                f" {used} of {limit} used this month"
            ),
            reason_ru=(
                f"{cat.title_ru}: входит в план «{plan_policy.title_ru}»,"
                f" использовано {used} из {limit} в этом месяце"
            ),
        )
    return Coverage(
        covered=False,
        paid=True,
        counts_quota=False,
        blocked=None,
        quota_limit=limit,
        quota_used=quota_used,
        reason_en=(
            f"Monthly quota of {plan_policy.title_en} used up ({quota_used} of {limit} used"
            f" this month): {cat.title_en} paid per ticket"
        ),
        reason_ru=(
            f"Месячная квота плана «{plan_policy.title_ru}» исчерпана (использовано"
            f" {quota_used} из {limit}): {cat.title_ru}, оплата за обращение"
        ),
    )


def requires_approval(category: CategoryPolicy, *, paid: bool) -> bool:
    """True when the customer must agree before work starts: a paid ticket whose category
    asks for approval (``question`` never does; covered work never does)."""
    return paid and category.approval


def quota_period(at: datetime, zone: str) -> str:
    """The quota month (``YYYY-MM``) of the instant ``at`` in the support zone.

    :raises ValueError: ``at`` is naive or ``zone`` is unknown.
    """
    return local_day(at, zone).strftime("%Y-%m")
