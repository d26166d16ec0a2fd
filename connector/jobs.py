"""Scheduled jobs, each run at most once per period.

A job has a :class:`Schedule` (monthly, daily, or every N minutes, on the support zone's wall
clock) that names its periods: ``quota-reset`` runs for ``2026-12``, ``expiry-reminders``
for ``2026-12-01``, ``sla-watch`` for ``2026-12-01T10:05``. :func:`run_period` runs one
period exactly once: in ONE transaction it inserts the ``job_runs`` row under its unique
``(job, period)`` key, carries out the job's effects and records the result. A second
scheduler, a retry or a manual run of the same period finds the row and does nothing; on
PostgreSQL a concurrent run waits on the first one's row and then does nothing; a run that
fails leaves no row and no effect, so the next tick tries again.

The jobs (care-policy.md section 6, architecture.md):

- ``quota-reset``: opens the month's allowances (``monthly_quota`` of the customer's plan on
  the reset day) for every entitled customer in one ``INSERT ... SELECT ... ON CONFLICT DO
  NOTHING`` statement built from the policy (:func:`quota_reset_statement`);
- ``expiry-reminders``: one notice per entitlement (free period, license plan, subscription)
  ending within ``policy.expiry_reminder_days``, sent through the desk as a new message;
- ``approval-reminders``: :func:`connector.reminders.send_approval_reminders`;
- ``sla-watch``: unanswered tickets whose first reply is due within the warning time get a
  tag and an internal note once, and the breach tag once overdue (waiting pauses the clock);
- ``retention``: old raw deliveries and finished write-backs deleted in batches.

Which of a job's periods are due, catching up after downtime, and APScheduler live in
:mod:`connector.scheduler`.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import os
import re
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from time import perf_counter
from typing import Any, Literal, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from adapters.base import marker_tag
from connector.customers import load_customer
from connector.db import Database
from connector.extension import ConnectorState
from connector.models import (
    Base,
    Customer,
    Event,
    ExpiryNotice,
    InboundDelivery,
    JobRun,
    License,
    OutboxAction,
    QuotaAllowance,
    Subscription,
    Ticket,
    TicketStatusHistory,
    UTCDateTime,
)
from rules import business_hours
from rules.entitlements import Entitlement, expiring, grant_periods, plan_on
from rules.events import TicketStatus
from rules.messages import Message, language, render
from rules.model import License as RulesLicense
from rules.model import LicenseKind
from rules.policy import Policy

log = logging.getLogger("care_connector.jobs")

__all__ = [
    "Daily",
    "Every",
    "Job",
    "JobError",
    "LastRun",
    "Monthly",
    "Outcome",
    "Period",
    "Schedule",
    "approval_reminders",
    "expiry_reminders",
    "first_reply_left",
    "jobs_for",
    "last_runs",
    "purchase_window",
    "quota_reset",
    "quota_reset_statement",
    "retention",
    "retention_batches",
    "run_period",
    "runner_name",
    "sla_watch",
]


class JobError(Exception):
    """A job or period that cannot be run as asked (unknown name, malformed or future period)."""


# --------------------------------------------------------------------------------------------
# Periods and schedules


@dataclass(frozen=True, slots=True)
class Period:
    """One period of a job: its key (``2026-12``) and the instant it starts (aware)."""

    key: str
    start: datetime

    def day(self, zone: ZoneInfo) -> date:
        """The calendar day the period starts on, in ``zone``."""
        return self.start.astimezone(zone).date()


class Schedule(Protocol):
    """When a job's periods start, on the wall clock of the support zone."""

    @property
    def zone(self) -> ZoneInfo:
        """The support zone."""
        ...

    def latest(self, now: datetime) -> Period:
        """The last period that has started at ``now`` (its start is ``<= now``)."""
        ...

    def following(self, period: Period) -> Period:
        """The period after ``period``."""
        ...

    def parse(self, key: str) -> Period:
        """The period named ``key``.

        :raises JobError: a key this schedule never gives.
        """
        ...

    def describe(self) -> str:
        """``"monthly, day 1 at 00:00"``, for ``jobs list``."""
        ...


def _wall(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone)


def _month_day(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True, slots=True)
class Monthly:
    """A period per month, starting on ``day`` at ``at``; keys ``YYYY-MM``."""

    day: int
    at: time
    zone: ZoneInfo

    def _start(self, year: int, month: int) -> Period:
        return Period(
            f"{year:04d}-{month:02d}", _wall(_month_day(year, month, self.day), self.at, self.zone)
        )

    def latest(self, now: datetime) -> Period:
        local = now.astimezone(self.zone)
        period = self._start(local.year, local.month)
        if period.start > now:
            year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
            period = self._start(year, month)
        return period

    def following(self, period: Period) -> Period:
        year, month = int(period.key[:4]), int(period.key[5:7])
        return self._start(*((year, month + 1) if month < 12 else (year + 1, 1)))

    def parse(self, key: str) -> Period:
        match = re.fullmatch(r"(\d{4})-(\d{2})", key)
        if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1:
            raise JobError(f"period {key!r}: expected a month, YYYY-MM (e.g. 2026-12)")
        return self._start(int(match[1]), int(match[2]))

    def describe(self) -> str:
        return f"monthly, day {self.day} at {self.at:%H:%M}"


@dataclass(frozen=True, slots=True)
class Daily:
    """A period per day, starting at ``at``; keys ``YYYY-MM-DD``."""

    at: time
    zone: ZoneInfo

    def _start(self, day: date) -> Period:
        return Period(day.isoformat(), _wall(day, self.at, self.zone))

    def latest(self, now: datetime) -> Period:
        local = now.astimezone(self.zone)
        period = self._start(local.date())
        return period if period.start <= now else self._start(local.date() - timedelta(days=1))

    def following(self, period: Period) -> Period:
        return self._start(date.fromisoformat(period.key) + timedelta(days=1))

    def parse(self, key: str) -> Period:
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", key):
                raise ValueError(key)
            return self._start(date.fromisoformat(key))
        except ValueError:
            raise JobError(
                f"period {key!r}: expected a day, YYYY-MM-DD (e.g. 2026-12-01)"
            ) from None

    def describe(self) -> str:
        return f"daily at {self.at:%H:%M}"


@dataclass(frozen=True, slots=True)
class Every:
    """A period every ``minutes`` minutes, aligned on the Unix epoch (so on whole hours for
    any divisor of 60); keys ``YYYY-MM-DDTHH:MM`` on the zone's wall clock."""

    minutes: int
    zone: ZoneInfo

    def _start(self, instant: datetime) -> Period:
        local = instant.astimezone(self.zone)
        return Period(f"{local:%Y-%m-%dT%H:%M}", local)

    def latest(self, now: datetime) -> Period:
        step = self.minutes * 60
        stamp = int(now.timestamp()) // step * step
        return self._start(datetime.fromtimestamp(stamp, self.zone))

    def following(self, period: Period) -> Period:
        return self._start(period.start + timedelta(minutes=self.minutes))

    def parse(self, key: str) -> Period:
        problem = f"period {key!r}: expected YYYY-MM-DDTHH:MM on a {self.minutes}-minute step"
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", key):
            raise JobError(problem)
        try:
            start = datetime.fromisoformat(key).replace(tzinfo=self.zone)
        except ValueError:
            raise JobError(problem) from None
        if int(start.timestamp()) % (self.minutes * 60):
            raise JobError(problem)
        return self._start(start)

    def describe(self) -> str:
        return f"every {self.minutes} min"


# --------------------------------------------------------------------------------------------
# Jobs and their runs

Body = Callable[[ConnectorState, Session, Period, datetime], dict[str, int]]
Prepare = Callable[[ConnectorState, Period, datetime], dict[str, int]]


@dataclass(frozen=True)
class Job:
    """A scheduled job.

    :param run: the effects of one period, in the transaction that records the run; returns
        counts for the record.
    :param prepare: work done before that transaction, in transactions of its own, for work
        too large for one (retention's batches); it must be safe to repeat. Its counts are
        added to the result.
    :param catch_up: ``"all"``: every period missed since the last recorded run is run at
        start, oldest first (at most ``jobs.catch_up_periods``); ``"latest"``: only the latest
        (jobs that look at the current state).
    """

    name: str
    schedule: Schedule
    run: Body
    description: str
    catch_up: Literal["all", "latest"] = "latest"
    prepare: Prepare | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What :func:`run_period` did: ``ran`` (``result`` holds the counts) or ``done-before``
    (the period was already recorded; ``finished_at`` is when)."""

    job: str
    period: str
    status: Literal["ran", "done-before"]
    result: Mapping[str, int] = field(default_factory=dict)
    finished_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.job}:{self.period}"


def runner_name(kind: str = "scheduler") -> str:
    """Who ran a period, for the record: ``"scheduler host:pid"``."""
    return f"{kind} {socket.gethostname()}:{os.getpid()}"


def _table(model: type[Base]) -> Table:
    # Core inserts: the ORM's bulk-insert path reports no row count.
    return cast(Table, model.__table__)


def _claim(session: Session, job: str, period: str, now: datetime, runner: str) -> bool:
    """Insert the run's row; ``False`` when the period is already recorded.

    On PostgreSQL a concurrent insert of the same key waits for the other transaction: if it
    commits, this one is the duplicate; if it rolls back, this one goes on.
    """
    values = {"job": job, "period": period, "started_at": now, "runner": runner}
    if session.get_bind().dialect.name == "postgresql":
        stmt: Any = postgresql.insert(_table(JobRun)).values(values)
    else:
        stmt = sqlite.insert(_table(JobRun)).values(values)
    stmt = stmt.on_conflict_do_nothing(index_elements=["job", "period"])
    result = session.execute(stmt.execution_options(preserve_rowcount=True))
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def _recorded(session: Session, job: str, period: str) -> JobRun | None:
    return session.execute(
        select(JobRun).where(JobRun.job == job, JobRun.period == period)
    ).scalar_one_or_none()


def run_period(
    st: ConnectorState, job: Job, period: Period, *, runner: str | None = None
) -> Outcome:
    """Run ``job`` for ``period`` unless that period is already recorded.

    :raises Exception: whatever the job raised; nothing of the run is then kept.
    """
    runner = runner or runner_name()
    with st.database.transaction(read_only=True) as session:
        done = _recorded(session, job.name, period.key)
        if done is not None:
            return Outcome(job.name, period.key, "done-before", done.result or {}, done.finished_at)
    started = perf_counter()
    counts: dict[str, int] = {}
    if job.prepare is not None:
        counts.update(job.prepare(st, period, st.clock()))

    def body(session: Session) -> Outcome:
        now = st.clock()
        if not _claim(session, job.name, period.key, now, runner):
            done = _recorded(session, job.name, period.key)
            finished = done.finished_at if done is not None else None
            result = (done.result or {}) if done is not None else {}
            return Outcome(job.name, period.key, "done-before", result, finished)
        result = dict(counts)
        for name, value in job.run(st, session, period, now).items():
            result[name] = result.get(name, 0) + value
        session.execute(
            update(JobRun)
            .where(JobRun.job == job.name, JobRun.period == period.key)
            .values(finished_at=st.clock(), result=result)
        )
        return Outcome(job.name, period.key, "ran", result, st.clock())

    outcome = st.database.run_in_transaction(body)
    if outcome.status == "ran":
        st.metrics.job_ran(job.name, perf_counter() - started)
    return outcome


@dataclass(frozen=True, slots=True)
class LastRun:
    """The latest recorded period of a job."""

    period: str
    started_at: datetime
    finished_at: datetime | None
    result: Mapping[str, int]
    runner: str


def last_runs(database: Database, names: Sequence[str]) -> dict[str, LastRun]:
    """The latest recorded period of each job (period keys sort as their starts do)."""
    out: dict[str, LastRun] = {}
    with database.transaction(read_only=True) as session:
        for name in names:
            row = session.execute(
                select(JobRun).where(JobRun.job == name).order_by(JobRun.period.desc()).limit(1)
            ).scalar_one_or_none()
            if row is not None:
                out[name] = LastRun(
                    row.period, row.started_at, row.finished_at, row.result or {}, row.runner
                )
    return out


def jobs_for(st: ConnectorState) -> dict[str, Job]:
    """The connector's jobs with their times from ``[jobs]``, by name, in run order."""
    cfg = st.settings.jobs
    zone = ZoneInfo(st.settings.policy.calendar.zone)
    jobs = [
        Job(
            "quota-reset",
            Monthly(cfg.quota_reset_day, cfg.quota_reset_time, zone),
            quota_reset,
            "open the month's modification allowances",
            catch_up="all",
        ),
        Job(
            "expiry-reminders",
            Daily(cfg.expiry_reminder_time, zone),
            expiry_reminders,
            "remind customers whose plan or free period ends soon",
        ),
        Job(
            "approval-reminders",
            Every(cfg.approval_reminder_minutes, zone),
            approval_reminders,
            "remind customers of estimates waiting for their agreement",
        ),
        Job(
            "sla-watch",
            Every(cfg.sla_watch_minutes, zone),
            sla_watch,
            "flag unanswered tickets near or past their first-reply time",
        ),
        Job(
            "retention",
            Daily(cfg.retention_time, zone),
            retention,
            "delete old raw deliveries and finished write-backs",
            prepare=retention_batches,
        ),
    ]
    return {job.name: job for job in jobs}


# --------------------------------------------------------------------------------------------
# Entitlement windows as purchase-date ranges (so SQL needs no date arithmetic)


def _grant_ends(policy: Policy, product: str, kind: LicenseKind, index: int, bought: date) -> date:
    probe = RulesLicense(ref="probe", product=product, kind=kind, purchased_on=bought)
    return grant_periods(probe, policy)[index].ends_on


def _first_bought(policy: Policy, product: str, kind: LicenseKind, index: int, day: date) -> date:
    """The earliest purchase date whose ``index``-th granted period ends on or after ``day``.

    A period's end never moves back as its purchase date moves forward, so this is a binary
    search over :func:`rules.entitlements.grant_periods` itself: the rules' own day arithmetic
    (29 February included) is what the SQL then compares with, never a copy of it.
    """
    grant = policy.products[product].grants[kind]
    longest = max(grant.free_days, 366 * grant.plan_years + 1) + 2
    lo, hi = day - timedelta(days=longest), day  # ends(lo) < day <= ends(hi)
    while (hi - lo).days > 1:
        mid = lo + (hi - lo) // 2
        if _grant_ends(policy, product, kind, index, mid) >= day:
            hi = mid
        else:
            lo = mid
    return hi


def purchase_window(
    policy: Policy, product: str, kind: LicenseKind, index: int, ends_from: date, ends_to: date
) -> tuple[date, date] | None:
    """The purchase dates of licenses whose ``index``-th granted period (as
    :func:`rules.entitlements.grant_periods` gives it) ends between ``ends_from`` and
    ``ends_to``, both included, as ``(first, last)``; ``None`` when there are none."""
    first = _first_bought(policy, product, kind, index, ends_from)
    last = _first_bought(policy, product, kind, index, ends_to + timedelta(days=1))
    last -= timedelta(days=1)
    return (first, last) if first <= last else None


def _license_periods(policy: Policy) -> Iterator[tuple[str, LicenseKind, int, str]]:
    """``(product, kind, index, plan)`` of every period a license can grant."""
    probe_day = date(2001, 1, 1)
    for product in policy.products.values():
        for kind in product.grants:
            probe = RulesLicense(
                ref="probe", product=product.key, kind=kind, purchased_on=probe_day
            )
            for index, period in enumerate(grant_periods(probe, policy)):
                yield product.key, kind, index, period.plan


def _active_licenses(policy: Policy, day: date, ranks: Mapping[str, int]) -> Select[Any] | None:
    """``(customer_id, rank)`` of every license granting a ranked plan on ``day``."""
    arms: list[tuple[int, ColumnElement[bool]]] = []
    for product, kind, index, plan in _license_periods(policy):
        if plan not in ranks:
            continue
        # Active on day: bought on or before it, and the period ends on or after it.
        condition = and_(
            License.product == product,
            License.kind == kind.value,
            License.purchased_on.between(_first_bought(policy, product, kind, index, day), day),
            # A license ended early grants nothing after its last day.
            or_(License.ended_on.is_(None), License.ended_on >= day),
        )
        arms.append((ranks[plan], condition))
    if not arms:
        return None
    arms.sort(key=lambda arm: arm[0])  # a license granting two plans counts as the better one
    rank = case(*[(condition, value) for value, condition in arms])
    return select(License.customer_id.label("customer_id"), rank.label("rank")).where(
        or_(*[condition for _, condition in arms])
    )


def quota_reset_statement(
    policy: Policy, period: str, day: date, now: datetime, dialect: str
) -> Any | None:
    """The one statement that opens ``period``'s allowances for every customer entitled on
    ``day``; ``None`` when no plan meters anything.

    Entitled means what :func:`rules.entitlements.plan_on` says: the first plan of
    ``policy.plans`` with an active subscription or license grant (a free period, a license
    plan such as Multi-Vendor Ultimate's first-year VIP) wins, and its ``monthly_quota`` is the
    allowance. Erased customers get none. Existing rows are kept (``ON CONFLICT DO NOTHING``),
    so a plan change never rewrites a month already opened.
    """
    ranks = {key: index for index, key in enumerate(policy.plans)}
    kinds = sorted({kind for plan in policy.plans.values() for kind in plan.monthly_quota})
    if not kinds:
        return None
    arms: list[Select[Any]] = [
        select(
            Subscription.customer_id.label("customer_id"),
            case(ranks, value=Subscription.plan).label("rank"),
        ).where(
            Subscription.starts_on <= day,
            Subscription.ends_on >= day,
            Subscription.plan.in_(list(ranks)),
        )
    ]
    licenses = _active_licenses(policy, day, ranks)
    if licenses is not None:
        arms.append(licenses)
    entitled = union_all(*arms).subquery("entitled")
    # Erased customers are few: excluding them is a hashed lookup, not a join of every row.
    erased = select(Customer.id).where(Customer.erased_at.is_not(None))
    best = (
        select(entitled.c.customer_id, func.min(entitled.c.rank).label("rank"))
        .where(entitled.c.customer_id.not_in(erased))
        .group_by(entitled.c.customer_id)
        .subquery("best")
    )
    opened_at = literal(now, UTCDateTime())
    selects = []
    for kind in kinds:
        allowance = {
            ranks[plan.key]: plan.monthly_quota[kind]
            for plan in policy.plans.values()
            if kind in plan.monthly_quota
        }
        selects.append(
            select(
                best.c.customer_id,
                literal(period),
                literal(kind),
                case(allowance, value=best.c.rank),
                opened_at,
            ).where(best.c.rank.in_(list(allowance)))
        )
    # Rows in customer order: the unique index and the foreign-key checks then touch their
    # pages in order instead of at random (about a third faster for a million customers).
    if len(selects) == 1:
        source: Any = selects[0].order_by(best.c.customer_id)
    else:
        union = union_all(*selects)
        source = union.order_by(union.selected_columns[0])
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    columns = ["customer_id", "period", "kind", "allowance", "opened_at"]
    return (
        insert(_table(QuotaAllowance))
        .from_select(columns, source)
        .on_conflict_do_nothing(index_elements=["customer_id", "period", "kind"])
        # SQLAlchemy reports an INSERT's row count only when asked to keep it.
        .execution_options(preserve_rowcount=True)
    )


# --------------------------------------------------------------------------------------------
# The jobs


def quota_reset(
    st: ConnectorState, session: Session, period: Period, now: datetime
) -> dict[str, int]:
    """Open the allowances of the month ``period.key`` for the customers entitled on the
    period's first day (the reset day, in the support zone)."""
    policy = st.settings.policy
    day = period.day(ZoneInfo(policy.calendar.zone))
    dialect = session.get_bind().dialect.name
    stmt = quota_reset_statement(policy, period.key, day, now, dialect)
    if stmt is None:
        return {"opened": 0}
    if dialect == "postgresql":
        # Enough memory to group and sort a million customers without spilling to disk; for
        # this transaction only.
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    result = session.execute(stmt)
    return {"opened": int(result.rowcount or 0)}  # type: ignore[attr-defined]


def _notice_source(entitlement: Entitlement) -> str:
    return entitlement.license_ref or entitlement.source


def _expiring_customers(session: Session, policy: Policy, first: date, last: date) -> list[int]:
    """Customers holding a subscription or license grant that ends between the two days."""
    arms: list[Select[Any]] = [
        select(Subscription.customer_id).where(
            Subscription.ends_on.between(first, last), Subscription.plan.in_(list(policy.plans))
        )
    ]
    conditions = []
    for product, kind, index, _plan in _license_periods(policy):
        window = purchase_window(policy, product, kind, index, first, last)
        if window is not None:
            conditions.append(
                and_(
                    License.product == product,
                    License.kind == kind.value,
                    License.purchased_on.between(*window),
                )
            )
    if conditions:
        arms.append(select(License.customer_id).where(or_(*conditions)))
    ids = union_all(*arms).subquery("ending")
    return list(
        session.scalars(
            select(Customer.id)
            .where(Customer.id.in_(select(ids.c.customer_id)), Customer.erased_at.is_(None))
            .order_by(Customer.id)
        )
    )


def _notice_desk(st: ConnectorState, session: Session, customer_id: int) -> str | None:
    configured = st.settings.jobs.notice_desk
    if configured:
        return configured if configured in st.adapters else None
    latest = session.scalars(
        select(Ticket.desk)
        .where(Ticket.customer_id == customer_id, Ticket.desk.in_(list(st.adapters)))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(1)
    ).first()
    return latest or next(iter(st.adapters), None)


def expiry_reminders(
    st: ConnectorState, session: Session, period: Period, now: datetime
) -> dict[str, int]:
    """One notice per entitlement ending within ``policy.expiry_reminder_days`` of the
    period's day, never twice for the same (customer, source, last day).

    No notice where the customer keeps the plan (or a better one) the day after, through
    another subscription or license; nor through a desk in observe mode.
    """
    policy = st.settings.policy
    zone = ZoneInfo(policy.calendar.zone)
    day = period.day(zone)
    within = policy.expiry_reminder_days
    ranks = {key: index for index, key in enumerate(policy.plans)}
    queued = skipped = 0
    for customer_id in _expiring_customers(session, policy, day, day + timedelta(days=within)):
        customer = load_customer(session, customer_id)
        for ending in expiring(customer, day, within, policy):
            source = _notice_source(ending)
            already = session.execute(
                select(ExpiryNotice.id).where(
                    ExpiryNotice.customer_id == customer_id,
                    ExpiryNotice.source == source,
                    ExpiryNotice.ends_on == ending.ends_on,
                )
            ).first()
            if already is not None:
                continue
            next_day = ending.ends_on + timedelta(days=1)
            after = plan_on(customer, next_day, policy)
            if ranks.get(after.plan, len(ranks)) <= ranks.get(ending.plan, len(ranks)):
                continue  # renewed, or covered by something as good: nothing changes
            desk = _notice_desk(st, session, customer_id)
            if desk is None or st.settings.desks[desk].observe:
                skipped += 1
                continue
            _queue_notice(st, session, customer_id, ending, after.plan, desk, now)
            queued += 1
    return {"queued": queued, "skipped": skipped}


def _queue_notice(
    st: ConnectorState,
    session: Session,
    customer_id: int,
    ending: Entitlement,
    next_plan: str,
    desk: str,
    now: datetime,
) -> None:
    policy = st.settings.policy
    row = session.get(Customer, customer_id)
    assert row is not None
    lang = language(row.locale, supported=policy.languages, default=policy.default_language)
    plan, following = policy.plans[ending.plan], policy.plans[next_plan]
    russian = lang == "ru"
    params: dict[str, str | int | None] = {
        "name": row.name or row.email,
        "plan_title": plan.title_ru if russian else plan.title_en,
        "source": (ending.source_ru or ending.source) if russian else ending.source,
        "ends_on": ending.ends_on.isoformat(),
        "next_day": (ending.ends_on + timedelta(days=1)).isoformat(),
        "next_plan_title": following.title_ru if russian else following.title_en,
        "balance": row.balance,
        "care_url": policy.approval.buy_credits_url,
    }
    source = _notice_source(ending)
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    marker = f"expiry.{customer_id}.{ending.ends_on:%Y%m%d}.{digest}"
    subject = render(Message("expiry_reminder_subject", True, params), lang)
    body = render(Message("expiry_reminder", True, params), lang)
    session.add(
        ExpiryNotice(
            customer_id=customer_id,
            source=source,
            plan=ending.plan,
            ends_on=ending.ends_on,
            desk=desk,
            marker=marker,
            queued_at=now,
        )
    )
    session.add(
        OutboxAction(
            desk=desk,
            ticket_id="",
            # Notices to one customer go out in order, apart from their tickets.
            ticket_key=f"{desk}:notice:{customer_id}",
            kind="notify",
            payload={
                "email": row.email,
                "subject": subject,
                "body": f"{body}\n\n{marker_tag(marker)}",
                "kind": "expiry_reminder",
            },
            marker=marker,
            next_attempt_at=now,
        )
    )


class _JoinedDatabase:
    """Stands in for :class:`~connector.db.Database` so that a helper written against
    :class:`ConnectorState` (which opens ``st.database.transaction()``) runs inside the job's
    own transaction, the one that records the run."""

    def __init__(self, session: Session) -> None:
        self._session = session

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        yield self._session


def approval_reminders(
    st: ConnectorState, session: Session, period: Period, now: datetime
) -> dict[str, int]:
    """One reminder per approval pending longer than the configured business time."""
    from connector.reminders import send_approval_reminders

    joined = replace(st, database=cast(Database, _JoinedDatabase(session)))
    return {"reminders": send_approval_reminders(joined, now)}


_WAITING = TicketStatus.WAITING.value
_FINISHED = (TicketStatus.SOLVED.value, TicketStatus.CLOSED.value)


def _pauses(
    history: Sequence[tuple[str, datetime]], now: datetime
) -> list[tuple[datetime, datetime]]:
    """The intervals a ticket spent waiting on the customer, from its status history."""
    pauses: list[tuple[datetime, datetime]] = []
    since: datetime | None = None
    for status, at in history:
        if status == _WAITING and since is None:
            since = at
        elif status != _WAITING and since is not None:
            pauses.append((since, at))
            since = None
    if since is not None:
        pauses.append((since, now))
    return pauses


def first_reply_left(
    created_at: datetime,
    due: datetime,
    history: Sequence[tuple[str, datetime]],
    now: datetime,
    policy: Policy,
) -> int:
    """Business seconds left before the first reply is due at ``now`` (negative: overdue).

    The target is the business time from creation to the due time the pipeline recorded;
    time spent waiting on the customer is not counted against it.
    """
    cal = policy.calendar
    target = business_hours.business_seconds_between(created_at, due, cal)
    used = business_hours.business_seconds_between(
        created_at, now, cal, paused=_pauses(history, now)
    )
    return target - used


def sla_watch(
    st: ConnectorState, session: Session, period: Period, now: datetime
) -> dict[str, int]:
    """Tag and note unanswered tickets whose first reply is due within the warning time
    (once), and tag them again once overdue (once). Tickets waiting on the customer, solved,
    closed or of an unknown desk are left alone."""
    policy, cfg = st.settings.policy, st.settings.jobs
    warn = int(cfg.sla_warn_business_hours * 3600)
    # Pauses only move a due time later, so nothing due after this can be within the warning.
    horizon = business_hours.add_business_time(now, warn, policy.calendar)
    stmt = (
        select(Ticket)
        .where(
            Ticket.first_agent_reply_at.is_(None),
            Ticket.first_reply_due.is_not(None),
            Ticket.first_reply_due <= horizon,
            Ticket.sla_breached_at.is_(None),
            or_(Ticket.status.is_(None), Ticket.status.not_in([_WAITING, *_FINISHED])),
            Ticket.desk.in_(list(st.adapters)),
        )
        .order_by(Ticket.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)  # a worker busy with it: next tick
    warned = breached = 0
    for ticket in session.scalars(stmt):
        assert ticket.first_reply_due is not None
        history = session.execute(
            select(TicketStatusHistory.status, TicketStatusHistory.at)
            .where(TicketStatusHistory.ticket_id == ticket.id)
            .order_by(TicketStatusHistory.at, TicketStatusHistory.id)
        ).all()
        left = first_reply_left(
            ticket.created_at,
            ticket.first_reply_due,
            [(row.status, row.at) for row in history],
            now,
            policy,
        )
        if left <= 0:
            note = None if ticket.sla_warned_at else "sla_breached"
            _queue_sla(st, session, ticket, "breach", cfg.sla_breach_tag, note, left, now)
            ticket.sla_breached_at = now
            ticket.sla_warned_at = ticket.sla_warned_at or now
            breached += 1
        elif left <= warn and ticket.sla_warned_at is None:
            _queue_sla(st, session, ticket, "warn", cfg.sla_warn_tag, "sla_warning", left, now)
            ticket.sla_warned_at = now
            warned += 1
    return {"warned": warned, "breached": breached}


def _queue_sla(
    st: ConnectorState,
    session: Session,
    ticket: Ticket,
    step: str,
    tag: str,
    note: str | None,
    left: int,
    now: datetime,
) -> None:
    policy = st.settings.policy
    desk = st.settings.desks[ticket.desk]
    actions: list[tuple[str, dict[str, object]]] = []
    if not desk.observe:  # observe mode: internal notes only
        actions.append(("tags", {"tags": [tag]}))
    if note is not None:
        lang = language(ticket.locale, supported=policy.languages, default=policy.default_language)
        plan = policy.plans.get(ticket.plan or "")
        title = (plan.title_ru if lang == "ru" else plan.title_en) if plan else ""
        assert ticket.first_reply_due is not None
        due = ticket.first_reply_due.astimezone(ZoneInfo(policy.calendar.zone))
        params: dict[str, str | int | None] = {
            "due": due.isoformat(" ", "minutes"),
            "left": max(0, left) // 60,
            "plan_title": title,
        }
        text = render(Message(note, False, lines=((note, params),)), lang)
        actions.append(("note", {"body": text, "kind": note}))
    for kind, payload in actions:
        marker = f"sla-{step}.{ticket.id}.{kind}"
        if kind == "note":
            payload = {**payload, "body": f"{payload['body']}\n\n{marker_tag(marker)}"}
        session.add(
            OutboxAction(
                desk=ticket.desk,
                ticket_id=ticket.external_id,
                ticket_key=f"{ticket.desk}:{ticket.external_id}",
                kind=kind,
                payload=payload,
                marker=marker,
                next_attempt_at=now,
            )
        )


def _retention_round(st: ConnectorState, session: Session, now: datetime) -> tuple[int, int]:
    """Delete one batch of old deliveries and one of finished write-backs."""
    cfg = st.settings.jobs
    cutoff = now - timedelta(days=cfg.retention_days)
    postgres = session.get_bind().dialect.name == "postgresql"
    deliveries = (
        select(InboundDelivery.id)
        .where(InboundDelivery.received_at < cutoff)
        .order_by(InboundDelivery.id)
        .limit(cfg.batch_size)
    )
    if postgres:
        deliveries = deliveries.with_for_update(skip_locked=True)
    ids = list(session.scalars(deliveries))
    if ids:
        # Events outlive their raw delivery (they are the deduplication record).
        session.execute(update(Event).where(Event.delivery_id.in_(ids)).values(delivery_id=None))
        session.execute(delete(InboundDelivery).where(InboundDelivery.id.in_(ids)))
    finished = (
        select(OutboxAction.id)
        .where(
            or_(
                and_(OutboxAction.status == "sent", OutboxAction.sent_at < cutoff),
                and_(OutboxAction.status == "cancelled", OutboxAction.created_at < cutoff),
            )
        )
        .order_by(OutboxAction.id)
        .limit(cfg.batch_size)
    )
    if postgres:
        finished = finished.with_for_update(skip_locked=True)
    rows = list(session.scalars(finished))
    if rows:
        session.execute(delete(OutboxAction).where(OutboxAction.id.in_(rows)))
    return len(ids), len(rows)


def retention_batches(st: ConnectorState, period: Period, now: datetime) -> dict[str, int]:
    """Batches of :func:`_retention_round`, each its own transaction, until one comes back
    short; safe to repeat (it only ever deletes old rows)."""
    size = st.settings.jobs.batch_size
    totals = {"deliveries": 0, "outbox": 0, "batches": 0}
    while True:
        deliveries, outbox = st.database.run_in_transaction(
            lambda session: _retention_round(st, session, now)
        )
        totals["deliveries"] += deliveries
        totals["outbox"] += outbox
        totals["batches"] += 1
        if deliveries < size and outbox < size:
            return totals


def retention(
    st: ConnectorState, session: Session, period: Period, now: datetime
) -> dict[str, int]:
    """The last batch, in the transaction that records the run (usually empty by then)."""
    deliveries, outbox = _retention_round(st, session, now)
    return {"deliveries": deliveries, "outbox": outbox, "batches": 1}
