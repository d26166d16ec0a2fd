"""Entitlements and plan choice against the default policy (care-policy.md sections 1, 2, 6)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from rules.entitlements import (
    Entitlement,
    entitlements,
    expiring,
    grant_periods,
    license_credits,
    local_day,
    plan_on,
)
from rules.model import Customer, License, LicenseKind, Subscription
from rules.policy import LicenseGrant, Policy, ProductPolicy

FIRST = LicenseKind.FIRST
ADDITIONAL = LicenseKind.ADDITIONAL
STOREFRONT = LicenseKind.ADDITIONAL_STOREFRONT
PURCHASE = date(2026, 1, 10)


def lic(product: str, kind: LicenseKind = FIRST, on: date = PURCHASE, ref: str = "L-1") -> License:
    return License(ref=ref, product=product, kind=kind, purchased_on=on)


def sub(plan: str, starts: str, ends: str) -> Subscription:
    return Subscription(
        plan=plan, starts_on=date.fromisoformat(starts), ends_on=date.fromisoformat(ends)
    )


def customer(*items: License | Subscription) -> Customer:
    return Customer(
        email="owner@shop.example",
        licenses=tuple(i for i in items if isinstance(i, License)),
        subscriptions=tuple(i for i in items if isinstance(i, Subscription)),
    )


# The license table of care-policy.md section 1, every cell:
# (product, kind, credits, free days, VIP years); all zero is "n/a".
LICENSE_TABLE = [
    ("cs-cart", FIRST, 50, 0, 0),
    ("cs-cart", ADDITIONAL, 30, 0, 0),
    ("cs-cart", STOREFRONT, 30, 0, 0),
    ("cs-cart-ultimate", FIRST, 0, 30, 0),
    ("cs-cart-ultimate", ADDITIONAL, 0, 30, 0),
    ("cs-cart-ultimate", STOREFRONT, 0, 0, 0),
    ("multi-vendor", FIRST, 0, 45, 0),
    ("multi-vendor", ADDITIONAL, 0, 45, 0),
    ("multi-vendor", STOREFRONT, 0, 0, 0),
    ("multi-vendor-plus", FIRST, 0, 90, 0),
    ("multi-vendor-plus", ADDITIONAL, 0, 90, 0),
    ("multi-vendor-plus", STOREFRONT, 0, 0, 0),
    ("multi-vendor-ultimate", FIRST, 0, 0, 1),
    ("multi-vendor-ultimate", ADDITIONAL, 0, 0, 1),
    ("multi-vendor-ultimate", STOREFRONT, 0, 0, 0),
]


@pytest.mark.parametrize(("product", "kind", "credits", "free_days", "vip_years"), LICENSE_TABLE)
def test_license_table(
    policy: Policy, product: str, kind: LicenseKind, credits: int, free_days: int, vip_years: int
) -> None:
    license = lic(product, kind)
    assert license_credits(license, policy) == credits
    periods = grant_periods(license, policy)
    expected: list[tuple[str, date, date]] = []
    if free_days:
        expected.append(("free_period", PURCHASE, PURCHASE + timedelta(days=free_days - 1)))
    if vip_years:
        expected.append(("vip", PURCHASE, date(2027, 1, 9)))
    assert [(p.plan, p.starts_on, p.ends_on) for p in periods] == expected
    for period in periods:
        assert period.license_ref == "L-1"
        assert period.source == f"license L-1 ({policy.products[product].title}, {kind.value})"


def test_license_credits_are_ints(policy: Policy) -> None:
    assert type(license_credits(lic("cs-cart"), policy)) is int


# First and last day of each free period, and the days either side.
@pytest.mark.parametrize(
    ("product", "last_day"),
    [
        ("cs-cart-ultimate", date(2026, 2, 8)),  # 30 days: 10 Jan .. 8 Feb
        ("multi-vendor", date(2026, 2, 23)),  # 45 days: 10 Jan .. 23 Feb
        ("multi-vendor-plus", date(2026, 4, 9)),  # 90 days: 10 Jan .. 9 Apr
    ],
)
@pytest.mark.parametrize("kind", [FIRST, ADDITIONAL])
def test_free_period_boundaries(
    policy: Policy, product: str, kind: LicenseKind, last_day: date
) -> None:
    who = customer(lic(product, kind))
    one = timedelta(days=1)
    assert plan_on(who, PURCHASE - one, policy).plan == "credits"
    first = plan_on(who, PURCHASE, policy)
    assert first.plan == "free_period"
    assert first.entitlement is not None
    assert first.entitlement.ends_on == last_day
    assert plan_on(who, last_day, policy).plan == "free_period"
    after = plan_on(who, last_day + one, policy)
    assert after.plan == "credits"
    assert after.entitlement is None
    assert f"ended on {last_day.isoformat()}" in after.reason_en


# Multi-Vendor Ultimate: VIP for one year, ending the day before the same date next year.
@pytest.mark.parametrize(
    ("purchased", "last_day"),
    [
        (date(2026, 3, 15), date(2027, 3, 14)),
        (date(2026, 1, 1), date(2026, 12, 31)),
        (date(2024, 2, 29), date(2025, 2, 28)),  # no 29 Feb in 2025
        (date(2023, 3, 1), date(2024, 2, 29)),  # the year ends on a leap day
    ],
)
def test_mv_ultimate_year(policy: Policy, purchased: date, last_day: date) -> None:
    who = customer(lic("multi-vendor-ultimate", on=purchased))
    one = timedelta(days=1)
    assert plan_on(who, purchased - one, policy).plan == "credits"
    for day in (purchased, last_day):
        choice = plan_on(who, day, policy)
        assert choice.plan == "vip"
        assert choice.entitlement is not None
        assert choice.entitlement.ends_on == last_day
    assert plan_on(who, last_day + one, policy).plan == "credits"


@pytest.mark.parametrize("plan", ["vip", "standard"])
@pytest.mark.parametrize(
    ("day", "active"),
    [
        (date(2025, 12, 31), False),
        (date(2026, 1, 1), True),
        (date(2026, 6, 30), True),
        (date(2026, 12, 31), True),
        (date(2027, 1, 1), False),
    ],
)
def test_subscription_boundaries(policy: Policy, plan: str, day: date, active: bool) -> None:
    who = customer(sub(plan, "2026-01-01", "2026-12-31"))
    choice = plan_on(who, day, policy)
    assert choice.plan == (plan if active else "credits")
    assert (choice.entitlement is not None) is active


@pytest.mark.parametrize(
    ("items", "day", "plan"),
    [
        # VIP subscription beats a free period.
        ((sub("vip", "2026-01-01", "2026-12-31"), lic("multi-vendor")), PURCHASE, "vip"),
        # A Multi-Vendor Ultimate year beats a Standard subscription.
        (
            (sub("standard", "2026-01-01", "2026-12-31"), lic("multi-vendor-ultimate")),
            PURCHASE,
            "vip",
        ),
        # Standard beats a free period.
        (
            (sub("standard", "2026-01-01", "2026-12-31"), lic("multi-vendor-plus")),
            PURCHASE,
            "standard",
        ),
        # A free period beats credits from another license.
        ((lic("cs-cart", ref="L-2"), lic("cs-cart-ultimate")), PURCHASE, "free_period"),
        # Standard after the MV Ultimate year is over.
        (
            (sub("standard", "2026-01-01", "2027-12-31"), lic("multi-vendor-ultimate")),
            date(2027, 1, 10),
            "standard",
        ),
        # Everything expired.
        (
            (
                sub("vip", "2024-01-01", "2024-12-31"),
                sub("standard", "2025-01-01", "2025-12-31"),
                lic("multi-vendor", on=date(2025, 1, 1)),
                lic("multi-vendor-ultimate", on=date(2024, 6, 1), ref="L-2"),
            ),
            date(2026, 1, 1),
            "credits",
        ),
        # A subscription that has not started yet.
        ((sub("vip", "2026-02-01", "2026-12-31"),), PURCHASE, "credits"),
        # Credits-only license, no subscription.
        ((lic("cs-cart"),), PURCHASE, "credits"),
        # Nothing at all.
        ((), PURCHASE, "credits"),
    ],
)
def test_precedence(
    policy: Policy, items: tuple[License | Subscription, ...], day: date, plan: str
) -> None:
    assert plan_on(customer(*items), day, policy).plan == plan


def test_precedence_follows_policy_order(policy: Policy) -> None:
    reordered = dataclasses.replace(
        policy,
        plans={key: policy.plans[key] for key in ("standard", "vip", "free_period", "credits")},
    )
    who = customer(
        sub("standard", "2026-01-01", "2026-12-31"), sub("vip", "2026-01-01", "2026-12-31")
    )
    assert plan_on(who, PURCHASE, policy).plan == "vip"
    assert plan_on(who, PURCHASE, reordered).plan == "standard"


def test_reason_names_the_period(policy: Policy) -> None:
    who = customer(sub("vip", "2026-01-01", "2026-12-31"), sub("vip", "2025-06-01", "2026-03-31"))
    choice = plan_on(who, PURCHASE, policy)
    # Of two overlapping VIP periods, the one ending last is cited.
    assert choice.entitlement == Entitlement(
        "vip", date(2026, 1, 1), date(2026, 12, 31), "subscription vip", "подписка vip"
    )
    assert choice.reason_en == "VIP Customer Care: subscription vip until 2026-12-31"
    assert choice.reason_ru == "VIP-поддержка: подписка vip до 2026-12-31 включительно"


def test_reason_names_the_license(policy: Policy) -> None:
    choice = plan_on(customer(lic("multi-vendor", ref="L-1001")), PURCHASE, policy)
    assert choice.reason_en == (
        "Free support period: license L-1001 (Multi-Vendor, first) until 2026-02-23"
    )
    assert "лицензия L-1001 (Multi-Vendor, первая)" in choice.reason_ru


def test_unknown_customer(policy: Policy) -> None:
    choice = plan_on(None, PURCHASE, policy)
    assert choice.plan == policy.fallback_plan == "credits"
    assert choice.entitlement is None
    assert choice.reason_en.startswith("Unknown customer")
    assert choice.reason_ru.startswith("Неизвестный клиент")


def test_subscription_to_unknown_plan_is_ignored(policy: Policy) -> None:
    who = customer(sub("platinum", "2026-01-01", "2026-12-31"), lic("multi-vendor"))
    assert [e.plan for e in entitlements(who, policy)] == ["free_period"]
    assert plan_on(who, PURCHASE, policy).plan == "free_period"


def test_entitlements_lists_subscriptions_then_licenses(policy: Policy) -> None:
    who = customer(
        lic("cs-cart", ref="L-1"),
        lic("multi-vendor-ultimate", ref="L-2"),
        sub("standard", "2026-01-01", "2026-12-31"),
    )
    assert [(e.plan, e.license_ref) for e in entitlements(who, policy)] == [
        ("standard", None),
        ("vip", "L-2"),
    ]


def test_products_are_data(policy: Policy) -> None:
    trial = ProductPolicy(
        key="marketplace-lite",
        title="Marketplace Lite",
        grants={FIRST: LicenseGrant(credits=7, free_days=14, plan="standard", plan_years=2)},
    )
    custom = dataclasses.replace(policy, products={**policy.products, trial.key: trial})
    license = lic("marketplace-lite", on=date(2026, 5, 1))
    assert license_credits(license, custom) == 7
    assert [(p.plan, p.ends_on) for p in grant_periods(license, custom)] == [
        ("free_period", date(2026, 5, 14)),
        ("standard", date(2028, 4, 30)),
    ]
    assert grant_periods(lic("marketplace-lite", ADDITIONAL), custom) == ()


def test_unknown_product_is_a_clear_error(policy: Policy) -> None:
    with pytest.raises(ValueError, match=r"^license L-1: unknown product 'nope' \(known: "):
        license_credits(lic("nope"), policy)
    with pytest.raises(ValueError, match="unknown product 'nope'"):
        plan_on(customer(lic("nope")), PURCHASE, policy)


GMT4 = "Etc/GMT-4"


@pytest.mark.parametrize(
    ("at", "day"),
    [
        # 23:59:59 at GMT+4 is still 1 March; a second later it is 2 March.
        (datetime(2026, 3, 1, 19, 59, 59, tzinfo=UTC), date(2026, 3, 1)),
        (datetime(2026, 3, 1, 20, 0, 0, tzinfo=UTC), date(2026, 3, 2)),
        # The same instants written in another zone give the same support day.
        (datetime(2026, 3, 1, 11, 59, 59, tzinfo=timezone(timedelta(hours=-8))), date(2026, 3, 1)),
        (datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=-8))), date(2026, 3, 2)),
    ],
)
def test_local_day_at_midnight(at: datetime, day: date) -> None:
    assert local_day(at, GMT4) == day


def test_ticket_day_decides_the_plan(policy: Policy) -> None:
    # A free period ending 8 Feb: a ticket at 23:59 GMT+4 on 8 Feb is still covered.
    who = customer(lic("cs-cart-ultimate"))
    before = datetime(2026, 2, 8, 19, 59, tzinfo=UTC)
    after = datetime(2026, 2, 8, 20, 0, tzinfo=UTC)
    assert plan_on(who, local_day(before, policy.calendar.zone), policy).plan == "free_period"
    assert plan_on(who, local_day(after, policy.calendar.zone), policy).plan == "credits"


@pytest.mark.parametrize(
    ("at", "zone", "message"),
    [
        (datetime(2026, 3, 1, 12, 0), GMT4, "naive datetime"),
        (datetime(2026, 3, 1, 12, 0, tzinfo=UTC), "Mars/Olympus", "unknown time zone"),
        (datetime(2026, 3, 1, 12, 0, tzinfo=UTC), "", "unknown time zone"),
    ],
)
def test_local_day_bad_input(at: datetime, zone: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        local_day(at, zone)


@pytest.mark.parametrize(
    ("today", "within", "expected"),
    [
        (date(2026, 2, 1), 7, ["L-1"]),  # ends 8 Feb: exactly 7 days ahead
        (date(2026, 1, 31), 7, []),  # 8 days ahead
        (date(2026, 2, 8), 7, ["L-1"]),  # its last day
        (date(2026, 2, 8), 0, ["L-1"]),
        (date(2026, 2, 9), 7, []),  # already over
        (date(2026, 1, 5), 60, []),  # not started yet
    ],
)
def test_expiring(policy: Policy, today: date, within: int, expected: list[str]) -> None:
    who = customer(lic("cs-cart-ultimate"), sub("vip", "2026-01-01", "2026-12-31"))
    assert [e.license_ref for e in expiring(who, today, within, policy)] == expected


def test_expiring_lists_subscriptions_too(policy: Policy) -> None:
    who = customer(sub("standard", "2026-01-01", "2026-03-31"))
    found = expiring(who, date(2026, 3, 25), policy.expiry_reminder_days, policy)
    assert [(e.source, e.ends_on) for e in found] == [("subscription standard", date(2026, 3, 31))]


def test_expiring_rejects_negative_window(policy: Policy) -> None:
    with pytest.raises(ValueError, match="within_days must be 0 or more"):
        expiring(customer(), PURCHASE, -1, policy)


def test_a_license_ended_early_grants_nothing_after_its_last_day(policy: Policy) -> None:
    ultimate = dataclasses.replace(lic("multi-vendor-ultimate"), ended_on=date(2026, 3, 31))
    periods = grant_periods(ultimate, policy)
    assert [(p.plan, p.ends_on) for p in periods] == [("vip", date(2026, 3, 31))]
    assert plan_on(customer(ultimate), date(2026, 3, 31), policy).plan == "vip"
    assert plan_on(customer(ultimate), date(2026, 4, 1), policy).plan == "credits"
    # Ended before its grant began (or on a day after it ends anyway): nothing, or no change.
    assert grant_periods(dataclasses.replace(ultimate, ended_on=date(2026, 1, 9)), policy) == ()
    late = dataclasses.replace(ultimate, ended_on=date(2030, 1, 1))
    assert grant_periods(late, policy) == grant_periods(lic("multi-vendor-ultimate"), policy)
