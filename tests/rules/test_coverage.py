"""Coverage, quotas and approval against the default policy (care-policy.md sections 2, 3, 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rules.coverage import Coverage, assess, quota_period, requires_approval
from rules.policy import Policy

CATEGORIES = ["question", "configuration", "modification", "investigation", "upgrade"]

# The plan table of care-policy.md section 2, one cell per plan and category, with the
# upgrade subscription active and nothing used this month: (covered, paid, counts_quota).
C = (True, False, False)  # covered, not metered
Q = (True, False, True)  # covered, takes a quota unit
P = (False, True, False)  # paid per ticket
PLAN_TABLE = {
    "vip": dict(zip(CATEGORIES, [C, C, Q, C, C], strict=True)),
    "standard": dict(zip(CATEGORIES, [C, C, Q, C, C], strict=True)),
    "free_period": dict(zip(CATEGORIES, [C, C, P, P, P], strict=True)),
    "credits": dict(zip(CATEGORIES, [P, P, P, P, P], strict=True)),
}
CELLS = [(plan, cat, *cell) for plan, row in PLAN_TABLE.items() for cat, cell in row.items()]


@pytest.mark.parametrize(("plan", "category", "covered", "paid", "counts"), CELLS)
def test_every_plan_and_category(
    policy: Policy, plan: str, category: str, covered: bool, paid: bool, counts: bool
) -> None:
    result = assess(plan, category, policy, has_upgrades=True, quota_used=0)
    assert (result.covered, result.paid, result.counts_quota) == (covered, paid, counts)
    assert result.blocked is None
    assert result.quota_used == (1 if counts else 0)
    assert result.reason_en
    assert result.reason_ru


def test_table_covers_every_plan_and_category(policy: Policy) -> None:
    assert set(PLAN_TABLE) == set(policy.plans)
    assert set(CATEGORIES) == set(policy.categories)


@pytest.mark.parametrize("plan", list(PLAN_TABLE))
def test_upgrade_without_upgrade_subscription_is_blocked(policy: Policy, plan: str) -> None:
    result = assess(plan, "upgrade", policy, has_upgrades=False, quota_used=0)
    assert result == Coverage(
        covered=False,
        paid=False,
        counts_quota=False,
        blocked="no_upgrade_subscription",
        quota_limit=None,
        quota_used=0,
        reason_en="Upgrade needs an active upgrade subscription: nothing charged",
        reason_ru="Обновление: нужна действующая подписка на обновления, оплата не списана",
    )


@pytest.mark.parametrize("plan", list(PLAN_TABLE))
@pytest.mark.parametrize("category", ["question", "configuration", "modification", "investigation"])
def test_upgrade_subscription_matters_only_for_upgrades(
    policy: Policy, plan: str, category: str
) -> None:
    with_upgrades = assess(plan, category, policy, has_upgrades=True, quota_used=0)
    without = assess(plan, category, policy, has_upgrades=False, quota_used=0)
    assert with_upgrades == without


# Monthly modification quotas: 7 for VIP, 4 for Standard; beyond, paid as under credits.
QUOTA_ROWS = [("vip", used, 7, used < 7) for used in range(0, 10)] + [
    ("standard", used, 4, used < 4) for used in range(0, 7)
]


@pytest.mark.parametrize(("plan", "used", "limit", "included"), QUOTA_ROWS)
def test_modification_quota(
    policy: Policy, plan: str, used: int, limit: int, included: bool
) -> None:
    result = assess(plan, "modification", policy, has_upgrades=True, quota_used=used)
    assert result.quota_limit == limit
    assert result.covered is included
    assert result.paid is not included
    assert result.counts_quota is included
    assert result.blocked is None
    if included:
        assert result.quota_used == used + 1
        assert f"{used + 1} of {limit} used this month" in result.reason_en
        assert f"использовано {used + 1} из {limit}" in result.reason_ru
    else:
        assert result.quota_used == used
        assert f"{used} of {limit} used this month" in result.reason_en
        assert "paid per ticket" in result.reason_en


@pytest.mark.parametrize(
    ("plan", "used", "allowance", "included"),
    [
        ("vip", 2, 3, True),
        ("vip", 3, 3, False),
        ("standard", 5, 7, True),  # a VIP month's allowance kept after a change to Standard
        ("standard", 0, 0, False),
    ],
)
def test_allowance_from_the_monthly_reset_wins(
    policy: Policy, plan: str, used: int, allowance: int, included: bool
) -> None:
    result = assess(
        plan,
        "modification",
        policy,
        has_upgrades=True,
        quota_used=used,
        quota_allowance=allowance,
    )
    assert result.quota_limit == allowance
    assert result.covered is included
    assert result.paid is not included


@pytest.mark.parametrize(
    ("plan", "category"), [("vip", "question"), ("free_period", "configuration")]
)
def test_allowance_ignored_for_unmetered_category(policy: Policy, plan: str, category: str) -> None:
    result = assess(plan, category, policy, has_upgrades=True, quota_used=5, quota_allowance=0)
    assert (result.covered, result.counts_quota, result.quota_limit) == (True, False, None)


def test_uncovered_reason(policy: Policy) -> None:
    result = assess("free_period", "investigation", policy, has_upgrades=True, quota_used=0)
    assert result.reason_en == (
        "Investigation: server settings, modified files, database data is not included in"
        " Free support period: paid per ticket"
    )


@pytest.mark.parametrize(
    ("plan", "category", "used", "allowance", "message"),
    [
        ("gold", "modification", 0, None, "unknown plan 'gold'"),
        ("vip", "hosting", 0, None, "unknown category 'hosting'"),
        ("vip", "modification", -1, None, "quota_used must be 0 or more"),
        ("vip", "modification", 0, -2, "quota_allowance must be 0 or more"),
    ],
)
def test_bad_input(
    policy: Policy, plan: str, category: str, used: int, allowance: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        assess(
            plan, category, policy, has_upgrades=True, quota_used=used, quota_allowance=allowance
        )


# Approval (section 3): question never; the others when paid.
@pytest.mark.parametrize(
    ("category", "paid", "needed"),
    [
        ("question", True, False),
        ("question", False, False),
        ("configuration", True, True),
        ("configuration", False, False),
        ("modification", True, True),
        ("modification", False, False),
        ("investigation", True, True),
        ("investigation", False, False),
        ("upgrade", True, True),
        ("upgrade", False, False),
    ],
)
def test_requires_approval(policy: Policy, category: str, paid: bool, needed: bool) -> None:
    assert requires_approval(policy.categories[category], paid=paid) is needed


@pytest.mark.parametrize(
    ("plan", "category", "needed"),
    [
        ("vip", "configuration", False),
        ("free_period", "configuration", False),
        ("free_period", "investigation", True),
        ("credits", "question", False),
        ("credits", "configuration", True),
        ("standard", "modification", False),
    ],
)
def test_approval_follows_coverage(policy: Policy, plan: str, category: str, needed: bool) -> None:
    result = assess(plan, category, policy, has_upgrades=True, quota_used=0)
    assert requires_approval(policy.categories[category], paid=result.paid) is needed


def test_beyond_quota_needs_approval(policy: Policy) -> None:
    result = assess("vip", "modification", policy, has_upgrades=True, quota_used=7)
    assert requires_approval(policy.categories["modification"], paid=result.paid)


UTC = UTC


@pytest.mark.parametrize(
    ("at", "period"),
    [
        # Month ends at midnight GMT+4, i.e. 20:00 UTC the evening before.
        (datetime(2026, 3, 31, 19, 59, 59, tzinfo=UTC), "2026-03"),
        (datetime(2026, 3, 31, 20, 0, 0, tzinfo=UTC), "2026-04"),
        (datetime(2025, 12, 31, 19, 59, 59, tzinfo=UTC), "2025-12"),
        (datetime(2025, 12, 31, 20, 0, 0, tzinfo=UTC), "2026-01"),
        (datetime(2026, 4, 1, 0, 30, tzinfo=timezone(timedelta(hours=5))), "2026-03"),
    ],
)
def test_quota_period(policy: Policy, at: datetime, period: str) -> None:
    assert quota_period(at, policy.calendar.zone) == period


def test_quota_period_needs_aware_time(policy: Policy) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        quota_period(datetime(2026, 3, 31, 20, 0), policy.calendar.zone)
