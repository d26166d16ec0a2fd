"""The policy as data: plans, products, categories, prices, calendar, keywords.

Every value here comes from the configuration (``connector/defaults.toml`` ships the vendor's
published policy); nothing about CS-Cart is hard-wired in code. ``connector.config`` builds a
:class:`Policy` from the validated TOML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time

from rules.events import PriorityLevel
from rules.model import LicenseKind


@dataclass(frozen=True, slots=True)
class PlanPolicy:
    """One care plan.

    :param key: ``vip``, ``standard``, ``free_period``, ``credits`` (or a vendor's own).
    :param covers: categories handled without a charge under this plan.
    :param monthly_quota: per category, how many covered tickets a month are included
        (``{"modification": 7}``); beyond it the ticket is handled as paid.
    :param first_reply_hours: first-reply target in business hours.
    """

    key: str
    title_en: str
    title_ru: str
    priority: PriorityLevel
    first_reply_hours: int
    covers: frozenset[str] = frozenset()
    monthly_quota: Mapping[str, int] = field(default_factory=dict)
    senior_staff: bool = False
    live_chat: bool = False
    mobile_app: bool = False


@dataclass(frozen=True, slots=True)
class LicenseGrant:
    """What one license of a product and kind grants at purchase.

    :param credits: credits granted once.
    :param free_days: a free support period of this many days from the purchase day.
    :param plan: a plan granted for ``plan_years`` years from the purchase day (MV Ultimate: VIP).
    """

    credits: int = 0
    free_days: int = 0
    plan: str | None = None
    plan_years: int = 0


@dataclass(frozen=True, slots=True)
class ProductPolicy:
    key: str
    title: str
    grants: Mapping[LicenseKind, LicenseGrant]


@dataclass(frozen=True, slots=True)
class CategoryPolicy:
    """A ticket category and its price.

    :param credits: the fixed price; for an engineer-priced category, the minimum.
    :param engineer_priced: the engineer sets the figure (``modification``).
    :param approval: the customer must agree before work starts (when paid).
    :param needs_upgrade_subscription: only handled under an active upgrade subscription.
    :param priced_by_steps: priced by the upgrade formula over the release list.
    """

    key: str
    title_en: str
    title_ru: str
    credits: int
    approval: bool
    engineer_priced: bool = False
    needs_upgrade_subscription: bool = False
    priced_by_steps: bool = False


@dataclass(frozen=True, slots=True)
class UpgradePricing:
    """Price = base + per_step × max(0, steps − included_steps)."""

    base: int = 20
    included_steps: int = 2
    per_step: int = 5


@dataclass(frozen=True, slots=True)
class Release:
    version: str
    service_pack: bool = False


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Support hours: ``weekdays`` are ``date.weekday()`` numbers (Monday 0)."""

    zone: str = "Etc/GMT-4"
    weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    start: time = time(9, 0)
    end: time = time(18, 0)
    holidays: frozenset[date] = frozenset()


@dataclass(frozen=True, slots=True)
class KeywordRule:
    """A word or phrase that points at a category, in any language.

    ``pattern`` matches whole words, case-insensitive; a trailing ``*`` matches any ending
    (``обнов*`` matches обновить, обновление).
    """

    category: str
    pattern: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class DetectionPolicy:
    threshold: float = 0.5
    rules: tuple[KeywordRule, ...] = ()


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    approve_words: tuple[str, ...] = ()
    decline_words: tuple[str, ...] = ()
    negations: tuple[str, ...] = ()
    link_ttl_days: int = 14
    reminder_business_days: int = 2
    buy_credits_url: str = ""
    refund_on_delete: bool = True


@dataclass(frozen=True, slots=True)
class TagPolicy:
    """Tag names the connector reads and writes."""

    prefix: str = "care_"
    unknown_customer: str = "care_unknown_customer"
    awaiting_approval: str = "care_awaiting_approval"
    approved: str = "care_approved"
    declined: str = "care_declined"
    preapproved: str = "care_preapproved"
    needs_category: str = "care_needs_category"
    needs_estimate: str = "care_needs_estimate"
    #: The field naming the parent ticket of a ticket split off by an engineer.
    split_field: str = "care_split_from"
    no_upgrade_subscription: str = "care_no_upgrade_subscription"
    insufficient_balance: str = "care_insufficient_balance"
    charged: str = "care_charged"
    refund: str = "care_refund"
    category_prefix: str = "care_category_"
    plan_prefix: str = "care_plan_"
    preapproval_field: str = "care_preapproval"
    category_field: str = "care_category"
    price_field: str = "care_price"
    upgrade_from_field: str = "care_upgrade_from"
    upgrade_to_field: str = "care_upgrade_to"


@dataclass(frozen=True, slots=True)
class Policy:
    """The whole policy. ``plans`` is in precedence order, highest first."""

    plans: Mapping[str, PlanPolicy]
    products: Mapping[str, ProductPolicy]
    categories: Mapping[str, CategoryPolicy]
    releases: tuple[Release, ...]
    upgrade: UpgradePricing = UpgradePricing()
    calendar: BusinessCalendar = BusinessCalendar()
    detection: DetectionPolicy = DetectionPolicy()
    approval: ApprovalPolicy = ApprovalPolicy()
    tags: TagPolicy = TagPolicy()
    languages: tuple[str, ...] = ("en", "ru")
    default_language: str = "en"
    fallback_plan: str = "credits"
    free_period_plan: str = "free_period"
    free_category: str = "question"
    queue_window_minutes: int = 10
    expiry_reminder_days: int = 7
    unknown_customer_charge: bool = False
    unknown_customer_reply: bool = False

    def plan(self, key: str) -> PlanPolicy:
        return self.plans[key]

    def category(self, key: str) -> CategoryPolicy:
        return self.categories[key]
