"""Entitlements: which plan a ticket is handled under (care-policy.md sections 1, 2 and 6).

A customer's subscriptions and license grants become :class:`Entitlement` periods of whole
calendar days in the support zone; :func:`plan_on` picks the plan for one day by the order of
``policy.plans`` (highest first). Products and what they grant are data
(``policy.products[product].grants[kind]``): nothing here knows a product by name.

Day arithmetic:

- "N days from purchase" covers the purchase day and the N - 1 days after it.
- ``ends_on`` is the last day included.
- "N years" ends the day before the same date N years later; for a 29 February purchase that
  date does not exist in a common year, so the period ends on 28 February.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rules.model import Customer, License, LicenseKind
from rules.policy import LicenseGrant, Policy

__all__ = [
    "Entitlement",
    "PlanChoice",
    "entitlements",
    "expiring",
    "grant_periods",
    "license_credits",
    "local_day",
    "plan_on",
]

# Russian names of the license kinds, for the Russian reasons; product titles are brand names
# and stay as configured.
_KIND_RU: dict[LicenseKind, str] = {
    LicenseKind.FIRST: "первая",
    LicenseKind.ADDITIONAL: "дополнительная",
    LicenseKind.ADDITIONAL_STOREFRONT: "дополнительная витрина",
}


@dataclass(frozen=True, slots=True)
class Entitlement:
    """A period of whole days during which the customer is entitled to ``plan``.

    :param plan: the plan key (``vip``, ``standard``, ``free_period``...).
    :param starts_on: the first day included.
    :param ends_on: the last day included.
    :param source: where it comes from, in English: ``subscription vip`` or
        ``license L-1001 (Multi-Vendor, first)``.
    :param source_ru: the same in Russian (empty: use ``source``).
    :param license_ref: the license it comes from, ``None`` for a subscription; reminders key
        on it.
    """

    plan: str
    starts_on: date
    ends_on: date
    source: str
    source_ru: str = ""
    license_ref: str | None = None

    def active_on(self, day: date) -> bool:
        """True when ``day`` lies within the period, both ends included."""
        return self.starts_on <= day <= self.ends_on


@dataclass(frozen=True, slots=True)
class PlanChoice:
    """The plan a ticket is handled under and why.

    :param entitlement: the period that gave the plan; ``None`` for the fallback plan.
    """

    plan: str
    entitlement: Entitlement | None
    reason_en: str
    reason_ru: str


def local_day(at: datetime, zone: str) -> date:
    """The calendar day of the instant ``at`` in the time zone ``zone``.

    :param at: an aware datetime.
    :param zone: an IANA zone name, e.g. ``Etc/GMT-4`` (UTC+4: POSIX inverts the sign).
    :raises ValueError: ``at`` is naive or ``zone`` is not a known time zone.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}: an aware datetime is required")
    return at.astimezone(_zone(zone)).date()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _grant(license: License, policy: Policy) -> LicenseGrant | None:
    """What the license grants, ``None`` for a kind the product does not sell ("n/a")."""
    product = policy.products.get(license.product)
    if product is None:
        known = ", ".join(sorted(policy.products)) or "none"
        raise ValueError(
            f"license {license.ref}: unknown product {license.product!r} (known: {known})"
        )
    return product.grants.get(license.kind)


def _years_later(day: date, years: int) -> date:
    """The same date ``years`` later; 1 March when it is a 29 February that does not exist."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def grant_periods(license: License, policy: Policy) -> tuple[Entitlement, ...]:
    """The periods a license grants: a free support period and/or a plan for some years.

    A free period of ``free_days`` days is under ``policy.free_period_plan``; a
    ``plan``/``plan_years`` grant is under that plan. A kind the product does not sell, or a
    grant of credits only, gives no period. A license ended early (``ended_on``) has its
    periods cut at that day.

    :raises ValueError: the license's product is not in ``policy.products``.
    """
    grant = _grant(license, policy)
    if grant is None:
        return ()
    title = policy.products[license.product].title
    kind_ru = _KIND_RU.get(license.kind, license.kind.value)
    source = f"license {license.ref} ({title}, {license.kind.value})"
    source_ru = f"лицензия {license.ref} ({title}, {kind_ru})"
    start = license.purchased_on
    periods: list[Entitlement] = []
    if grant.free_days > 0:
        periods.append(
            Entitlement(
                plan=policy.free_period_plan,
                starts_on=start,
                ends_on=start + timedelta(days=grant.free_days - 1),
                source=source,
                source_ru=source_ru,
                license_ref=license.ref,
            )
        )
    if grant.plan is not None and grant.plan_years > 0:
        periods.append(
            Entitlement(
                plan=grant.plan,
                starts_on=start,
                ends_on=_years_later(start, grant.plan_years) - timedelta(days=1),
                source=source,
                source_ru=source_ru,
                license_ref=license.ref,
            )
        )
    if license.ended_on is not None:
        # Ended early: every period stops on that day; one that had not begun is gone.
        periods = [
            replace(p, ends_on=min(p.ends_on, license.ended_on))
            for p in periods
            if p.starts_on <= license.ended_on
        ]
    return tuple(periods)


def license_credits(license: License, policy: Policy) -> int:
    """The credits a license grants once at purchase (0 for a kind the product does not sell).

    :raises ValueError: the license's product is not in ``policy.products``.
    """
    grant = _grant(license, policy)
    return 0 if grant is None else grant.credits


def entitlements(customer: Customer, policy: Policy) -> tuple[Entitlement, ...]:
    """Every period the customer holds: subscriptions first, then license grants.

    A subscription whose plan is not in ``policy.plans`` gives nothing: a plan the vendor
    removed from the configuration cannot be honoured, and guessing another would be worse.

    :raises ValueError: a license names a product not in ``policy.products``.
    """
    periods: list[Entitlement] = [
        Entitlement(
            plan=sub.plan,
            starts_on=sub.starts_on,
            ends_on=sub.ends_on,
            source=f"subscription {sub.plan}",
            source_ru=f"подписка {sub.plan}",
        )
        for sub in customer.subscriptions
        if sub.plan in policy.plans
    ]
    for lic in customer.licenses:
        periods.extend(grant_periods(lic, policy))
    return tuple(periods)


def _latest(periods: Iterable[Entitlement]) -> Entitlement | None:
    """The period ending last (the first of those on a tie)."""
    best: Entitlement | None = None
    for period in periods:
        if best is None or period.ends_on > best.ends_on:
            best = period
    return best


def plan_on(customer: Customer | None, day: date, policy: Policy) -> PlanChoice:
    """The plan a ticket created on ``day`` (in the support zone) is handled under.

    The first plan of ``policy.plans`` with an active period wins; of several periods for that
    plan, the one ending last is cited. Without any, ``policy.fallback_plan`` applies. An
    unknown customer (``None``) gets the fallback plan.

    :raises ValueError: the fallback plan is not in ``policy.plans``, or a license names an
        unknown product.
    """
    fallback = policy.plans.get(policy.fallback_plan)
    if fallback is None:
        raise ValueError(f"fallback plan {policy.fallback_plan!r} is not among the plans")
    if customer is None:
        return PlanChoice(
            plan=fallback.key,
            entitlement=None,
            reason_en=f"Unknown customer: handled under {fallback.title_en}",
            reason_ru=f"Неизвестный клиент: обслуживание по плану «{fallback.title_ru}»",
        )
    held = entitlements(customer, policy)
    active = [e for e in held if e.active_on(day)]
    for key, plan in policy.plans.items():
        chosen = _latest(e for e in active if e.plan == key)
        if chosen is not None:
            return PlanChoice(
                plan=key,
                entitlement=chosen,
                reason_en=f"{plan.title_en}: {chosen.source} until {chosen.ends_on.isoformat()}",
                reason_ru=(
                    f"{plan.title_ru}: {chosen.source_ru or chosen.source}"
                    f" до {chosen.ends_on.isoformat()} включительно"
                ),
            )
    reason_en = f"No active subscription or free support period: {fallback.title_en}"
    reason_ru = f"Нет действующей подписки или бесплатного периода: {fallback.title_ru}"
    # Name the last period that ended, so the engineer sees why a customer lost a plan.
    ended = _latest(e for e in held if e.ends_on < day and e.plan in policy.plans)
    if ended is not None:
        reason_en += f" ({ended.source} ended on {ended.ends_on.isoformat()})"
        reason_ru += (
            f" ({ended.source_ru or ended.source}: последний день {ended.ends_on.isoformat()})"
        )
    return PlanChoice(plan=fallback.key, entitlement=None, reason_en=reason_en, reason_ru=reason_ru)


def expiring(
    customer: Customer, day: date, within_days: int, policy: Policy
) -> tuple[Entitlement, ...]:
    """Periods active on ``day`` whose last day is within the next ``within_days`` days.

    A period qualifies when ``day <= ends_on <= day + within_days``: with 7, a period ending
    a week from today is listed today, and one ending today is still listed. The caller
    filters by kind (``license_ref`` is set for license grants) and keys reminders on
    ``(license_ref or source, ends_on)`` so each is sent once.

    :raises ValueError: ``within_days`` is negative, or a license names an unknown product.
    """
    if within_days < 0:
        raise ValueError(f"within_days must be 0 or more, got {within_days}")
    last = day + timedelta(days=within_days)
    return tuple(
        e for e in entitlements(customer, policy) if e.active_on(day) and e.ends_on <= last
    )
