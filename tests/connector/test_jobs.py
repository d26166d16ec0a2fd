"""The scheduled jobs' effects, each period once: quota reset, expiry and approval reminders,
the SLA watch and retention. Runs on SQLite and on PostgreSQL, with the clock set by hand."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from sqlalchemy import func, select, update

from adapters.base import (
    HelpdeskAdapter,
    HelpdeskClient,
    InstallPlan,
    InstallResult,
    Requester,
    TicketEvent,
)
from adapters.errors import UnsupportedOperationError
from connector import create_app, outbox
from connector.config import ConfigError, DeskSettings, default_settings, load_settings
from connector.customers import import_customers, load_customer, validate_entries
from connector.db import Database
from connector.extension import ConnectorState
from connector.jobs import (
    Job,
    JobError,
    Monthly,
    Period,
    jobs_for,
    purchase_window,
    run_period,
)
from connector.models import (
    Customer,
    Event,
    ExpiryNotice,
    InboundDelivery,
    JobRun,
    OutboxAction,
    QuotaAllowance,
    Ticket,
    TicketStatusHistory,
)
from rules.business_hours import add_business_time
from rules.entitlements import grant_periods, plan_on
from rules.model import License, LicenseKind
from tests.adapters.openapi import assert_zendesk_calls

GST = timezone(timedelta(hours=4))  # the support zone, Etc/GMT-4
BASE = "https://shop.zendesk.com"
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """The connector's clock, moved by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def make_state(
    database: Database, monkeypatch: pytest.MonkeyPatch, **sections: Any
) -> ConnectorState:
    monkeypatch.setenv("CARE_JOBS_ZD_TOKEN", "api-token")
    monkeypatch.setenv("CARE_SECRET_KEY", "approval-key")
    zendesk = {
        "adapter": "zendesk",
        "base_url": BASE,
        "email": "bot@shop.example",
        "token_env": "CARE_JOBS_ZD_TOKEN",
        "api_user_id": "900",
    }
    config: dict[str, Any] = {
        "database": {"url": database.url},
        "server": {"public_url": "https://care.shop.example"},
        "desks": {
            "zendesk": zendesk,
            "observer": {**zendesk, "mode": "observe"},
        },
        **sections,
    }
    app = create_app(config)
    st: ConnectorState = app.extensions["care_connector"]
    st.clock = Clock(datetime(2026, 11, 2, 10, 0, tzinfo=GST))
    return st


def add_customers(st: ConnectorState, entries: list[dict[str, Any]]) -> dict[str, int]:
    policy = st.settings.policy
    records = validate_entries(entries, policy=policy, desks=st.settings.desks.keys())
    with st.database.transaction() as session:
        import_customers(session, records, policy=policy, at=datetime(2024, 1, 1, tzinfo=UTC))
        rows = session.execute(select(Customer.email, Customer.id)).all()
    return {row.email: row.id for row in rows}


def set_clock(st: ConnectorState, at: datetime) -> None:
    st.clock = Clock(at)


def period_of(st: ConnectorState, name: str, key: str) -> tuple[Job, Period]:
    job = jobs_for(st)[name]
    return job, job.schedule.parse(key)


@pytest.fixture
def st(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectorState]:
    state = make_state(database, monkeypatch)
    yield state
    state.database.dispose()


# --------------------------------------------------------------------------------------------
# Quota reset


def _random_customers(rng: random.Random) -> list[dict[str, Any]]:
    """Customers with every shape of entitlement, around the checked days."""
    grants = {
        "cs-cart": ["first", "additional", "additional_storefront"],
        "cs-cart-ultimate": ["first", "additional"],
        "multi-vendor": ["first", "additional"],
        "multi-vendor-plus": ["first", "additional"],
        "multi-vendor-ultimate": ["first", "additional"],
    }
    span = (date(2027, 6, 30) - date(2023, 12, 1)).days
    entries: list[dict[str, Any]] = []
    refs = 0
    for n in range(80):
        subscriptions = []
        for _ in range(rng.randint(0, 2)):
            start = date(2023, 12, 1) + timedelta(days=rng.randrange(span))
            end = start + timedelta(days=rng.choice([0, 1, 27, 30, 364, 365, 400]))
            subscriptions.append(
                {
                    "plan": rng.choice(["vip", "standard"]),
                    "starts_on": start.isoformat(),
                    "ends_on": end.isoformat(),
                }
            )
        licenses = []
        for _ in range(rng.randint(0, 2)):
            product = rng.choice(list(grants))
            refs += 1
            bought = date(2023, 12, 1) + timedelta(days=rng.randrange(span))
            licenses.append(
                {
                    "ref": f"R-{refs}",
                    "product": product,
                    "kind": rng.choice(grants[product]),
                    "purchased_on": bought.isoformat(),
                }
            )
        entries.append(
            {"email": f"c{n}@shop.example", "subscriptions": subscriptions, "licenses": licenses}
        )
    return entries


EDGE_CUSTOMERS: list[dict[str, Any]] = [
    # Multi-Vendor Ultimate bought on 29 February: VIP through 28 February 2025.
    {
        "email": "leap@shop.example",
        "licenses": [
            {
                "ref": "E-1",
                "product": "multi-vendor-ultimate",
                "kind": "first",
                "purchased_on": "2024-02-29",
            }
        ],
    },
    # VIP ends on 28 February 2027 / on 1 March 2027.
    {
        "email": "mvu-ends-feb@shop.example",
        "licenses": [
            {
                "ref": "E-2",
                "product": "multi-vendor-ultimate",
                "kind": "additional",
                "purchased_on": "2026-03-01",
            }
        ],
    },
    {
        "email": "mvu-ends-mar@shop.example",
        "licenses": [
            {
                "ref": "E-3",
                "product": "multi-vendor-ultimate",
                "kind": "first",
                "purchased_on": "2026-03-02",
            }
        ],
    },
    # Both plans: VIP wins. A free period under Standard: Standard's quota.
    {
        "email": "both@shop.example",
        "subscriptions": [
            {"plan": "standard", "starts_on": "2026-01-01", "ends_on": "2027-12-31"},
            {"plan": "vip", "starts_on": "2026-12-01", "ends_on": "2026-12-01"},
        ],
    },
    {
        "email": "std-free@shop.example",
        "subscriptions": [{"plan": "standard", "starts_on": "2026-11-01", "ends_on": "2026-12-01"}],
        "licenses": [
            {"ref": "E-4", "product": "multi-vendor", "kind": "first", "purchased_on": "2026-11-20"}
        ],
    },
    # Ended the day before; starts the day after; a free period only: no allowance.
    {
        "email": "ended@shop.example",
        "subscriptions": [{"plan": "vip", "starts_on": "2026-01-01", "ends_on": "2026-11-30"}],
    },
    {
        "email": "later@shop.example",
        "subscriptions": [{"plan": "vip", "starts_on": "2026-12-02", "ends_on": "2027-12-01"}],
    },
    {
        "email": "free@shop.example",
        "licenses": [
            {
                "ref": "E-5",
                "product": "multi-vendor-plus",
                "kind": "first",
                "purchased_on": "2026-11-01",
            }
        ],
    },
    {
        "email": "erased@shop.example",
        "subscriptions": [{"plan": "vip", "starts_on": "2026-01-01", "ends_on": "2027-12-31"}],
    },
]


@pytest.mark.parametrize("key", ["2025-02", "2025-03", "2026-12", "2027-03"])
def test_quota_reset_opens_what_plan_on_says_for_every_customer(
    st: ConnectorState, key: str
) -> None:
    ids = add_customers(st, _random_customers(random.Random(7)) + EDGE_CUSTOMERS)
    with st.database.transaction() as session:
        session.execute(
            update(Customer)
            .where(Customer.email == "erased@shop.example")
            .values(erased_at=datetime(2026, 6, 1, tzinfo=UTC))
        )
    job, period = period_of(st, "quota-reset", key)
    set_clock(st, period.start + timedelta(hours=1))
    outcome = run_period(st, job, period)

    policy = st.settings.policy
    day = date.fromisoformat(f"{key}-01")
    expected: dict[int, int] = {}
    with st.database.transaction(read_only=True) as session:
        for email, customer_id in ids.items():
            if email == "erased@shop.example":
                continue
            plan = plan_on(load_customer(session, customer_id), day, policy).plan
            allowance = policy.plans[plan].monthly_quota.get("modification")
            if allowance is not None:
                expected[customer_id] = allowance
        rows = session.execute(
            select(QuotaAllowance.customer_id, QuotaAllowance.allowance, QuotaAllowance.kind).where(
                QuotaAllowance.period == key
            )
        ).all()
    assert {row.customer_id: row.allowance for row in rows} == expected
    assert {row.kind for row in rows} <= {"modification"}
    assert outcome.status == "ran" and outcome.result == {"opened": len(expected)}
    assert len(expected) > 10  # the random set holds many entitled customers


@pytest.mark.parametrize(
    ("email", "key", "allowance"),
    [
        ("leap@shop.example", "2025-02", 7),
        ("leap@shop.example", "2025-03", None),
        ("mvu-ends-feb@shop.example", "2027-02", 7),
        ("mvu-ends-feb@shop.example", "2027-03", None),
        ("mvu-ends-mar@shop.example", "2027-03", 7),
        ("both@shop.example", "2026-12", 7),
        ("std-free@shop.example", "2026-12", 4),
        ("ended@shop.example", "2026-12", None),
        ("later@shop.example", "2026-12", None),
        ("free@shop.example", "2026-12", None),
        ("erased@shop.example", "2026-12", None),
    ],
)
def test_quota_reset_edges(st: ConnectorState, email: str, key: str, allowance: int | None) -> None:
    ids = add_customers(st, EDGE_CUSTOMERS)
    with st.database.transaction() as session:
        session.execute(
            update(Customer)
            .where(Customer.email == "erased@shop.example")
            .values(erased_at=datetime(2026, 6, 1, tzinfo=UTC))
        )
    job, period = period_of(st, "quota-reset", key)
    set_clock(st, period.start)
    run_period(st, job, period)
    with st.database.transaction(read_only=True) as session:
        got = session.scalar(
            select(QuotaAllowance.allowance).where(
                QuotaAllowance.customer_id == ids[email], QuotaAllowance.period == key
            )
        )
    assert got == allowance


def test_quota_reset_runs_once_and_never_rewrites_an_opened_month(st: ConnectorState) -> None:
    ids = add_customers(st, EDGE_CUSTOMERS)
    job, period = period_of(st, "quota-reset", "2026-12")
    set_clock(st, period.start)
    with st.database.transaction() as session:
        # Opened earlier under another plan: kept as it is.
        session.add(
            QuotaAllowance(
                customer_id=ids["both@shop.example"],
                period="2026-12",
                kind="modification",
                allowance=2,
                opened_at=period.start,
            )
        )
    first = run_period(st, job, period)
    second = run_period(st, job, period, runner="manual")
    with st.database.transaction(read_only=True) as session:
        runs = session.execute(select(JobRun.job, JobRun.period, JobRun.result)).all()
        kept = session.scalar(
            select(QuotaAllowance.allowance).where(
                QuotaAllowance.customer_id == ids["both@shop.example"]
            )
        )
        opened = session.scalar(select(func.count()).select_from(QuotaAllowance))
    assert first.status == "ran" and second.status == "done-before"
    # Two Multi-Vendor Ultimate VIPs, the Standard customer and the (not erased) VIP.
    assert second.result == first.result == {"opened": 4}
    assert runs == [("quota-reset", "2026-12", {"opened": 4})]
    assert kept == 2 and opened == 5


def test_a_failing_job_keeps_nothing_of_its_run(st: ConnectorState) -> None:
    add_customers(st, EDGE_CUSTOMERS)
    real = jobs_for(st)["quota-reset"]

    def reset_then_fail(*args: Any) -> dict[str, int]:
        real.run(*args)
        raise RuntimeError("disk full")

    job = replace(real, run=reset_then_fail)
    period = job.schedule.parse("2026-12")
    set_clock(st, period.start)
    with pytest.raises(RuntimeError, match="disk full"):
        run_period(st, job, period)
    with st.database.transaction(read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(QuotaAllowance)) == 0
        assert session.scalar(select(func.count()).select_from(JobRun)) == 0
    assert run_period(st, real, period).result == {"opened": 5}


@pytest.mark.parametrize(
    ("product", "kind", "index", "ends_from", "ends_to", "window"),
    [
        # 45 days from purchase: the last day is purchase + 44.
        ("multi-vendor", "first", 0, "2026-12-01", "2026-12-07", ("2026-10-18", "2026-10-24")),
        # One year: 29 February 2024 ends on 28 February 2025, as 1 March 2024 does.
        (
            "multi-vendor-ultimate",
            "first",
            0,
            "2025-02-27",
            "2025-02-28",
            ("2024-02-28", "2024-03-01"),
        ),
        (
            "multi-vendor-ultimate",
            "first",
            0,
            "2025-03-01",
            "2025-03-01",
            ("2024-03-02", "2024-03-02"),
        ),
        ("multi-vendor-ultimate", "first", 0, "2026-12-01", "2026-11-30", None),
    ],
)
def test_purchase_windows_follow_the_rules_day_arithmetic(
    product: str, kind: str, index: int, ends_from: str, ends_to: str, window: Any
) -> None:
    policy = default_settings().policy
    got = purchase_window(
        policy,
        product,
        LicenseKind(kind),
        index,
        date.fromisoformat(ends_from),
        date.fromisoformat(ends_to),
    )
    want = None if window is None else tuple(date.fromisoformat(d) for d in window)
    assert got == want
    if got is not None:  # both ends really do end inside the range, per the rules
        for bought in got:
            lic = License("x", product, LicenseKind(kind), bought)
            ends = grant_periods(lic, policy)[index].ends_on
            assert date.fromisoformat(ends_from) <= ends <= date.fromisoformat(ends_to)


# --------------------------------------------------------------------------------------------
# Expiry reminders

EXPIRY_CUSTOMERS: list[dict[str, Any]] = [
    {
        "email": "free@shop.example",
        "name": "Fred",
        "licenses": [
            # 45 days from 20 October: the last day is 3 December.
            {
                "ref": "MV-9",
                "product": "multi-vendor",
                "kind": "first",
                "purchased_on": "2026-10-20",
            }
        ],
        "credit_purchases": [{"ref": "o-1", "credits": 40, "purchased_on": "2026-10-21"}],
    },
    {
        "email": "mvu@shop.example",
        "name": "Мария",
        "locale": "ru",
        "licenses": [
            {
                "ref": "MVU-1",
                "product": "multi-vendor-ultimate",
                "kind": "first",
                "purchased_on": "2025-12-01",
            }
        ],
    },
    {
        "email": "renewed@shop.example",
        "subscriptions": [
            {"plan": "vip", "starts_on": "2026-01-01", "ends_on": "2026-12-03"},
            {"plan": "vip", "starts_on": "2026-12-04", "ends_on": "2027-12-03"},
        ],
    },
    {
        "email": "vip-free@shop.example",
        "subscriptions": [{"plan": "vip", "starts_on": "2026-01-01", "ends_on": "2027-12-31"}],
        "licenses": [
            {
                "ref": "MV-10",
                "product": "multi-vendor",
                "kind": "first",
                "purchased_on": "2026-10-20",
            }
        ],
    },
    {
        "email": "std@shop.example",
        "subscriptions": [{"plan": "standard", "starts_on": "2026-01-01", "ends_on": "2026-12-10"}],
    },
    {
        "email": "gone@shop.example",
        "licenses": [
            {
                "ref": "MV-11",
                "product": "multi-vendor",
                "kind": "first",
                "purchased_on": "2026-10-12",
            }
        ],
    },
]


def _notices(st: ConnectorState) -> list[tuple[str, str, str]]:
    with st.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(Customer.email, ExpiryNotice.source, ExpiryNotice.ends_on)
            .join(Customer, Customer.id == ExpiryNotice.customer_id)
            .order_by(ExpiryNotice.id)
        ).all()
    return [(row.email, row.source, row.ends_on.isoformat()) for row in rows]


def _run_daily(st: ConnectorState, name: str, day: str) -> Any:
    job, period = period_of(st, name, day)
    set_clock(st, period.start)
    return run_period(st, job, period)


def test_expiry_reminders_one_notice_per_ending_never_twice(st: ConnectorState) -> None:
    add_customers(st, EXPIRY_CUSTOMERS)
    first = _run_daily(st, "expiry-reminders", "2026-11-28")
    again = _run_daily(st, "expiry-reminders", "2026-11-29")
    later = _run_daily(st, "expiry-reminders", "2026-12-03")
    assert (first.result, again.result, later.result) == (
        {"queued": 2, "skipped": 0},
        {"queued": 0, "skipped": 0},
        {"queued": 1, "skipped": 0},
    )
    assert _notices(st) == [
        ("free@shop.example", "MV-9", "2026-12-03"),
        ("mvu@shop.example", "MVU-1", "2026-11-30"),
        ("std@shop.example", "subscription standard", "2026-12-10"),
    ]
    with st.database.transaction(read_only=True) as session:
        rows = list(session.scalars(select(OutboxAction).order_by(OutboxAction.id)))
    assert [(row.kind, row.desk, row.ticket_id) for row in rows] == [("notify", "zendesk", "")] * 3
    english, russian = rows[0].payload, rows[1].payload
    assert english["email"] == "free@shop.example"
    assert english["subject"] == "Your Free support period ends on 2026-12-03"
    assert english["body"] == (
        "Hello Fred,\n\n"
        "Your Free support period (license MV-9 (Multi-Vendor, first)) ends on 2026-12-03, "
        "the last day included. From 2026-12-04 your requests will be handled under "
        "Credit-based support. Your credit balance is 40 credits.\n\n"
        "To keep your support as it is, see https://www.cs-cart.com/customer-care.html."
        f"\n\n[care:{rows[0].marker}]"
    )
    assert russian["subject"] == "VIP-поддержка: последний день 2026-11-30"
    assert "Здравствуйте, Мария!" in str(russian["body"])
    assert "«Поддержка за кредиты»" in str(russian["body"])


def test_expiry_notice_goes_out_as_a_new_zendesk_ticket_once(st: ConnectorState) -> None:
    add_customers(st, EXPIRY_CUSTOMERS[:1])
    _run_daily(st, "expiry-reminders", "2026-11-28")
    with st.database.transaction(read_only=True) as session:
        marker = session.scalar(select(OutboxAction.marker))
    with responses.RequestsMock() as mock:
        mock.get(f"{BASE}/api/v2/tickets", json={"tickets": [], "count": 0})
        mock.post(f"{BASE}/api/v2/tickets", json={"ticket": {"id": 7001}}, status=201)
        sent = outbox.run_once(st)
        calls = [(c.request.method, c.request.url, c.request.body) for c in mock.calls]
        assert_zendesk_calls(mock.calls)
    assert [s.status for s in sent] == ["sent"]
    assert calls[0][:2] == ("GET", f"{BASE}/api/v2/tickets?external_id=care%3A{marker}")
    body = json.loads(calls[1][2])
    assert calls[1][:2] == ("POST", f"{BASE}/api/v2/tickets")
    assert body["ticket"]["requester"] == {"email": "free@shop.example"}
    assert body["ticket"]["external_id"] == f"care:{marker}"
    assert body["ticket"]["subject"] == "Your Free support period ends on 2026-12-03"
    assert body["ticket"]["comment"]["public"] is True
    assert body["ticket"]["comment"]["body"].endswith(f"[care:{marker}]")

    # A retry after a lost answer finds the ticket by its external id and sends nothing.
    client = st.client("zendesk")
    with responses.RequestsMock() as mock:
        mock.get(f"{BASE}/api/v2/tickets", json={"tickets": [{"id": 7001}], "count": 1})
        client.notify_customer("free@shop.example", "s", f"b\n[care:{marker}]", marker=marker)
        assert len(mock.calls) == 1


#: The other built-in desks, each with what its notice needs: credentials (environment
#: variable -> value) and the desk's notice options.
NOTICE_DESKS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "freshdesk": (
        {
            "adapter": "freshdesk",
            "base_url": "https://shop.freshdesk.com",
            "api_key_env": "CARE_JOBS_FD_KEY",
            "options": {"email_config_id": 5000123},
        },
        {"CARE_JOBS_FD_KEY": "fd-key"},
    ),
    "zammad": (
        {
            "adapter": "zammad",
            "base_url": "https://support.shop.example",
            "token_env": "CARE_JOBS_ZM_TOKEN",
            "options": {"group": "Customer Care"},
        },
        {"CARE_JOBS_ZM_TOKEN": "zm-token"},
    ),
    "helpscout": (
        {
            "adapter": "helpscout",
            "base_url": "https://api.helpscout.net",
            "token_env": "CARE_JOBS_HS_TOKEN",
            "options": {"mailbox_id": 301234},
        },
        {"CARE_JOBS_HS_TOKEN": "hs-token"},
    ),
}


def _stub_notice(mock: responses.RequestsMock, key: str, marker: str, *, there: bool) -> None:
    """The desk's read-back (finding the notice when ``there``) and, when not, its create."""
    line = f"Hello Fred,\n\n[care:{marker}]"
    if key == "freshdesk":
        api = "https://shop.freshdesk.com/api/v2"
        mock.get(f"{api}/contacts", json=[{"id": 77}])
        mock.get(f"{api}/tickets", json=[{"id": 501, "description_text": line}] if there else [])
        if not there:
            mock.post(f"{api}/tickets/outbound_email", status=201, json={"id": 502})
    elif key == "zammad":
        api = "https://support.shop.example/api/v1"
        mock.get(f"{api}/tickets/search", json={"tickets": [31] if there else []})
        if there:
            mock.get(f"{api}/ticket_articles/by_ticket/31", json=[{"id": 1, "body": line}])
        else:
            mock.post(f"{api}/tickets", status=201, json={"id": 32})
    else:
        api = "https://api.helpscout.net/v2"
        found = [{"id": 501}] if there else []
        mock.get(f"{api}/conversations", json={"_embedded": {"conversations": found}})
        if there:
            threads = {"_embedded": {"threads": [{"id": 1, "type": "reply", "body": line}]}}
            mock.get(f"{api}/conversations/501/threads", json=threads)
        else:
            mock.post(f"{api}/conversations", status=201, headers={"Resource-ID": "502"})


def _created_notice(key: str, body: dict[str, Any]) -> tuple[str, str, str]:
    """(email, subject, text) of the create request each desk was sent."""
    if key == "freshdesk":
        return body["email"], body["subject"], body["description"].replace("<br>", "\n")
    if key == "zammad":
        article = body["article"]
        assert body["customer_id"] == f"guess:{article['to']}"
        return article["to"], body["title"], article["body"]
    (thread,) = body["threads"]
    assert thread["customer"] == body["customer"]
    return body["customer"]["email"], body["subject"], thread["text"]


@pytest.mark.parametrize("key", sorted(NOTICE_DESKS))
def test_expiry_notice_goes_out_through_every_other_builtin_desk_once(
    database: Database, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    desk, env = NOTICE_DESKS[key]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    st = make_state(database, monkeypatch, desks={key: desk})
    add_customers(st, EXPIRY_CUSTOMERS[:1])
    assert _run_daily(st, "expiry-reminders", "2026-11-28").result == {"queued": 1, "skipped": 0}
    with st.database.transaction(read_only=True) as session:
        row = session.execute(select(OutboxAction)).scalar_one()
        marker, payload = row.marker, dict(row.payload)
    assert row.desk == key
    with responses.RequestsMock() as mock:
        _stub_notice(mock, key, marker, there=False)
        sent = outbox.run_once(st)
        (create,) = [c.request for c in mock.calls if c.request.method == "POST"]
    assert [s.status for s in sent] == ["sent"]
    email, subject, text = _created_notice(key, json.loads(create.body))
    assert (email, subject) == ("free@shop.example", payload["subject"])
    assert text == payload["body"]
    assert text.endswith(f"\n\n[care:{marker}]")

    # A retry after a lost answer finds the notice by its marker and sends nothing.
    with responses.RequestsMock() as mock:
        _stub_notice(mock, key, marker, there=True)
        st.client(key).notify_customer(email, subject, text, marker=marker)
        assert all(c.request.method == "GET" for c in mock.calls)
    st.database.dispose()


@pytest.mark.parametrize(
    ("jobs", "queued", "skipped"),
    [({"notice_desk": "observer"}, 0, 1), ({"notice_desk": "zendesk"}, 1, 0)],
)
def test_expiry_notices_go_through_the_configured_desk_never_an_observed_one(
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    jobs: dict[str, str],
    queued: int,
    skipped: int,
) -> None:
    st = make_state(database, monkeypatch, jobs=jobs)
    add_customers(st, EXPIRY_CUSTOMERS[:1])
    outcome = _run_daily(st, "expiry-reminders", "2026-11-28")
    assert outcome.result == {"queued": queued, "skipped": skipped}
    assert len(_notices(st)) == queued
    st.database.dispose()


class _LegacyClient(HelpdeskClient):
    """A desk client written before notify_customer existed."""

    def set_priority(self, ticket_id: str, value: str) -> None: ...
    def add_tags(self, ticket_id: str, tags: Any) -> None: ...
    def remove_tags(self, ticket_id: str, tags: Any) -> None: ...
    def add_note(self, ticket_id: str, body: str, *, marker: str) -> None: ...
    def add_reply(self, ticket_id: str, body: str, *, marker: str) -> None: ...
    def has_marker(self, ticket_id: str, marker: str) -> bool:
        return False

    def get_requester(self, user_id: str) -> Requester | None:
        return None

    def get_priority(self, ticket_id: str) -> str | None:
        return None


class _LegacyAdapter(HelpdeskAdapter):
    key = "legacy"
    display_name = "Legacy Desk"
    event_types = {}

    def verify(self, headers: Any, body: bytes, *, now: datetime) -> None: ...
    def delivery_key(self, headers: Any, body: bytes) -> str:
        return ""

    def parse(self, headers: Any, body: bytes, *, delivery_key: str) -> list[TicketEvent]:
        return []

    def client(self, session: requests.Session | None = None) -> HelpdeskClient:
        return _LegacyClient(self.desk, session)

    # A desk written before notify_customer existed has no installer either.
    def install_plan(self, public_url: str) -> InstallPlan:
        raise UnsupportedOperationError("install_plan", adapter=self.key)

    def install(self, public_url: str, client: HelpdeskClient | None = None) -> InstallResult:
        raise UnsupportedOperationError("install", adapter=self.key)


def test_a_desk_without_notify_dead_letters_the_notice_saying_why(st: ConnectorState) -> None:
    legacy = DeskSettings(
        key="legacy",
        adapter="legacy",
        base_url="https://desk.example",
        priority=st.settings.desks["zendesk"].priority,
    )
    st.settings = replace(st.settings, desks={"legacy": legacy})
    st.adapters = {"legacy": _LegacyAdapter(legacy)}
    add_customers(st, EXPIRY_CUSTOMERS[:1])
    assert _run_daily(st, "expiry-reminders", "2026-11-28").result == {"queued": 1, "skipped": 0}
    sent = outbox.run_once(st)
    with st.database.transaction(read_only=True) as session:
        row = session.execute(select(OutboxAction)).scalar_one()
    assert [s.status for s in sent] == ["dead"]
    assert row.status == "dead"
    assert row.last_error == (
        "UnsupportedOperationError: the legacy adapter does not support notify_customer"
    )
    with pytest.raises(UnsupportedOperationError) as caught:
        _LegacyAdapter(legacy).client().notify_customer("a@b.example", "s", "b", marker="m")
    assert caught.value.permanent is True


# --------------------------------------------------------------------------------------------
# Approval reminders


def _ticket(
    st: ConnectorState,
    external_id: str,
    created_at: datetime,
    *,
    plan: str = "vip",
    desk: str = "zendesk",
    locale: str = "en",
    **values: Any,
) -> int:
    policy = st.settings.policy
    due = add_business_time(
        created_at, policy.plans[plan].first_reply_hours * 3600, policy.calendar
    )
    with st.database.transaction() as session:
        customer_id = session.scalar(select(Customer.id).order_by(Customer.id))
        ticket = Ticket(
            desk=desk,
            external_id=external_id,
            customer_id=customer_id,
            subject="Help",
            locale=locale,
            plan=plan,
            created_at=created_at,
            first_reply_due=due,
            **{"status": "new", **values},
        )
        session.add(ticket)
        session.flush()
        session.add(TicketStatusHistory(ticket_id=ticket.id, status="new", at=created_at))
        return ticket.id


@pytest.mark.parametrize(
    ("checks", "reminded"),
    [
        # Asked Monday 10:00; two business days (18 h) later is Wednesday 10:00.
        (["2026-11-25T09:00"], 0),
        (["2026-11-25T09:00", "2026-11-25T10:00"], 1),
        (["2026-11-25T10:00", "2026-11-25T11:00", "2026-11-26T10:00"], 1),
    ],
)
def test_approval_reminders_go_out_once(
    st: ConnectorState, checks: list[str], reminded: int
) -> None:
    add_customers(st, EXPIRY_CUSTOMERS[:1])
    asked = datetime(2026, 11, 23, 10, 0, tzinfo=GST)
    _ticket(
        st,
        "501",
        asked,
        plan="credits",
        approval_state="pending",
        approval_amount=10,
        approval_requested_at=asked,
        category="configuration",
    )
    for key in checks:
        job, period = period_of(st, "approval-reminders", key)
        set_clock(st, period.start)
        run_period(st, job, period)
    with st.database.transaction(read_only=True) as session:
        replies = session.execute(select(OutboxAction.kind, OutboxAction.ticket_id)).all()
        runs = session.scalar(select(func.count()).select_from(JobRun))
    assert replies == [("reply", "501")] * reminded
    assert runs == len(checks)


# --------------------------------------------------------------------------------------------
# SLA watch


def _sla_outbox(st: ConnectorState) -> list[tuple[str, str, Any]]:
    with st.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(OutboxAction.ticket_id, OutboxAction.kind, OutboxAction.payload).order_by(
                OutboxAction.id
            )
        ).all()
    out = []
    for row in rows:
        what = row.payload["tags"] if row.kind == "tags" else row.payload["kind"]
        out.append((row.ticket_id, row.kind, what))
    return out


def _watch(st: ConnectorState, at: datetime) -> dict[str, int]:
    job, _ = period_of(st, "sla-watch", "2026-11-02T10:00")
    period = job.schedule.latest(at)
    set_clock(st, at)
    return dict(run_period(st, job, period).result)


WARN = [("T", "tags", ["care_sla_warning"]), ("T", "note", "sla_warning")]
BREACH = [("T", "tags", ["care_sla_breached"])]


def _expect(ticket: str, actions: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    return [(ticket, kind, what) for _, kind, what in actions]


def test_sla_watch_friday_evening_ticket_warns_monday_then_breaches(st: ConnectorState) -> None:
    add_customers(st, EXPIRY_CUSTOMERS[:1])
    # VIP (2 business hours) opened Friday 17:30: 30 minutes on Friday, 90 on Monday.
    _ticket(st, "601", datetime(2026, 11, 27, 17, 30, tzinfo=GST))
    steps = [
        (datetime(2026, 11, 27, 17, 59, tzinfo=GST), {"warned": 0, "breached": 0}),
        (datetime(2026, 11, 29, 23, 0, tzinfo=GST), {"warned": 0, "breached": 0}),
        (datetime(2026, 11, 30, 9, 29, 59, tzinfo=GST), {"warned": 0, "breached": 0}),
        (datetime(2026, 11, 30, 9, 30, tzinfo=GST), {"warned": 1, "breached": 0}),
        (datetime(2026, 11, 30, 9, 35, tzinfo=GST), {"warned": 0, "breached": 0}),
        (datetime(2026, 11, 30, 10, 29, 59, tzinfo=GST), {"warned": 0, "breached": 0}),
        (datetime(2026, 11, 30, 10, 30, tzinfo=GST), {"warned": 0, "breached": 1}),
        (datetime(2026, 11, 30, 10, 35, tzinfo=GST), {"warned": 0, "breached": 0}),
    ]
    assert [_watch(st, at) for at, _ in steps] == [result for _, result in steps]
    assert _sla_outbox(st) == _expect("601", WARN + BREACH)
    with st.database.transaction(read_only=True) as session:
        note = session.scalar(select(OutboxAction.payload).where(OutboxAction.kind == "note"))
        ticket = session.execute(select(Ticket)).scalar_one()
    assert str(note["body"]).startswith(
        "First reply due soon: by 2026-11-30 10:30+04:00 (60 business minutes left, "
        "VIP Customer Care)."
    )
    assert ticket.sla_warned_at == datetime(2026, 11, 30, 9, 30, tzinfo=GST)
    assert ticket.sla_breached_at == datetime(2026, 11, 30, 10, 30, tzinfo=GST)


def test_sla_watch_skips_a_holiday(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    st = make_state(database, monkeypatch, hours={"holidays": ["2026-12-31"]})
    add_customers(st, EXPIRY_CUSTOMERS[:1])
    # VIP opened Wednesday 30 December 17:30: 30 minutes, the holiday, 90 minutes on Friday.
    _ticket(st, "602", datetime(2026, 12, 30, 17, 30, tzinfo=GST), locale="ru")
    assert _watch(st, datetime(2026, 12, 31, 12, 0, tzinfo=GST)) == {"warned": 0, "breached": 0}
    assert _watch(st, datetime(2027, 1, 1, 9, 25, tzinfo=GST)) == {"warned": 0, "breached": 0}
    assert _watch(st, datetime(2027, 1, 1, 9, 30, tzinfo=GST)) == {"warned": 1, "breached": 0}
    assert _sla_outbox(st) == _expect("602", WARN)
    with st.database.transaction(read_only=True) as session:
        note = session.scalar(select(OutboxAction.payload).where(OutboxAction.kind == "note"))
    assert str(note["body"]).startswith("Скоро срок первого ответа: до 2027-01-01 10:30+04:00")
    st.database.dispose()


def _status(st: ConnectorState, ticket_id: int, status: str, at: datetime) -> None:
    with st.database.transaction() as session:
        session.add(TicketStatusHistory(ticket_id=ticket_id, status=status, at=at))
        session.execute(update(Ticket).where(Ticket.id == ticket_id).values(status=status))


def test_sla_watch_pauses_while_waiting_on_the_customer(st: ConnectorState) -> None:
    add_customers(st, EXPIRY_CUSTOMERS[:1])
    created = datetime(2026, 11, 24, 10, 0, tzinfo=GST)  # Tuesday; VIP due at 12:00
    ticket = _ticket(st, "603", created)
    _status(st, ticket, "waiting", datetime(2026, 11, 24, 10, 30, tzinfo=GST))
    # Waiting: past the unpaused due time, nothing happens.
    assert _watch(st, datetime(2026, 11, 24, 15, 0, tzinfo=GST)) == {"warned": 0, "breached": 0}
    _status(st, ticket, "open", datetime(2026, 11, 25, 10, 0, tzinfo=GST))
    # 30 minutes used before the pause: 90 left from Wednesday 10:00.
    assert _watch(st, datetime(2026, 11, 25, 10, 25, tzinfo=GST)) == {"warned": 0, "breached": 0}
    assert _watch(st, datetime(2026, 11, 25, 10, 30, tzinfo=GST)) == {"warned": 1, "breached": 0}
    assert _watch(st, datetime(2026, 11, 25, 11, 25, tzinfo=GST)) == {"warned": 0, "breached": 0}
    assert _watch(st, datetime(2026, 11, 25, 11, 30, tzinfo=GST)) == {"warned": 0, "breached": 1}
    assert _sla_outbox(st) == _expect("603", WARN + BREACH)


def test_sla_watch_leaves_answered_and_notes_only_on_observed_desks(st: ConnectorState) -> None:
    add_customers(st, EXPIRY_CUSTOMERS[:1])
    created = datetime(2026, 11, 24, 10, 0, tzinfo=GST)
    _ticket(st, "604", created, first_agent_reply_at=created + timedelta(minutes=5))
    _ticket(st, "605", created, desk="observer")
    _ticket(st, "606", created, status="solved")
    # First seen already overdue: the breach tag and a breach note, at once.
    assert _watch(st, datetime(2026, 11, 24, 12, 0, tzinfo=GST)) == {"warned": 0, "breached": 1}
    assert _sla_outbox(st) == [("605", "note", "sla_breached")]


# --------------------------------------------------------------------------------------------
# Retention


def test_retention_deletes_old_rows_in_batches_and_keeps_the_rest(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = make_state(database, monkeypatch, jobs={"batch_size": 3, "retention_days": 30})
    now = datetime(2026, 11, 28, 3, 0, tzinfo=GST)
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    with st.database.transaction() as session:
        deliveries = []
        for n in range(14):
            row = InboundDelivery(
                desk="zendesk",
                received_at=old if n < 10 else recent,
                headers={},
                body=b"{}",
            )
            session.add(row)
            deliveries.append(row)
        session.flush()
        for n, row in enumerate(deliveries[8:12]):
            session.add(
                Event(
                    desk="zendesk",
                    delivery_key=f"k{n}",
                    delivery_id=row.id,
                    ticket_key="zendesk:1",
                    type="comment_added",
                    payload={},
                    status="done",
                )
            )
        for n, (status, at) in enumerate(
            [("sent", old), ("cancelled", old), ("dead", old), ("pending", old), ("sent", recent)]
        ):
            session.add(
                OutboxAction(
                    desk="zendesk",
                    ticket_id="1",
                    ticket_key="zendesk:1",
                    kind="note",
                    payload={},
                    marker=f"m{n}",
                    status=status,
                    next_attempt_at=at,
                    created_at=at,
                    sent_at=at if status == "sent" else None,
                )
            )
    job, period = period_of(st, "retention", "2026-11-28")
    set_clock(st, now)
    outcome = run_period(st, job, period)
    # 10 old deliveries in batches of 3: 3, 3, 3, 1; then the recorded round finds none.
    assert outcome.result == {"deliveries": 10, "outbox": 2, "batches": 5}
    with st.database.transaction(read_only=True) as session:
        kept = session.scalars(select(InboundDelivery.received_at)).all()
        events = session.execute(
            select(Event.delivery_key, Event.delivery_id).order_by(Event.id)
        ).all()
        statuses = session.scalars(select(OutboxAction.status).order_by(OutboxAction.id)).all()
    assert kept == [recent] * 4
    assert [e.delivery_key for e in events] == ["k0", "k1", "k2", "k3"]
    assert [e.delivery_id is None for e in events] == [True, True, False, False]
    assert statuses == ["dead", "pending", "sent"]
    assert run_period(st, job, period).status == "done-before"
    st.database.dispose()


# --------------------------------------------------------------------------------------------
# Configuration


def test_the_example_file_has_the_default_job_settings() -> None:
    assert load_settings(ROOT / "config.example.toml").jobs == default_settings().jobs
    jobs = default_settings().jobs
    assert (jobs.quota_reset_day, jobs.quota_reset_time.isoformat("minutes")) == (1, "00:00")


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ({"quota_reset_day": 29}, "jobs.quota_reset_day: must be 1 to 28 (got 29)"),
        ({"quota_reset_time": "24:00"}, "jobs.quota_reset_time: not a time '24:00'"),
        ({"sla_warn_business_hours": 0}, "jobs.sla_warn_business_hours: must be > 0"),
        ({"batch_size": 0}, "jobs.batch_size: must be >= 1"),
        ({"notice_desk": "nowhere"}, "jobs.notice_desk: no desk 'nowhere'"),
        ({"every": 5}, "jobs.every: unknown key"),
    ],
)
def test_bad_job_settings_are_one_line_errors(jobs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"jobs": jobs})
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "start"),
    [
        ("2026-12", datetime(2026, 12, 1, 0, 0, tzinfo=GST)),
        ("2027-01", datetime(2027, 1, 1, 0, 0, tzinfo=GST)),
    ],
)
def test_monthly_periods_start_at_midnight_in_the_support_zone(key: str, start: datetime) -> None:
    schedule = jobs_for_default()["quota-reset"].schedule
    assert isinstance(schedule, Monthly)
    assert schedule.parse(key).start == start
    assert schedule.latest(start).key == key
    assert schedule.latest(start - timedelta(seconds=1)).key != key
    with pytest.raises(JobError):
        schedule.parse("2026-13")


def jobs_for_default() -> dict[str, Job]:
    st = ConnectorState(settings=default_settings(), database=Database.from_url("sqlite://"))
    return jobs_for(st)


def test_quota_reset_opens_every_kind_a_plan_meters(st: ConnectorState) -> None:
    ids = add_customers(st, EDGE_CUSTOMERS)
    policy = st.settings.policy
    vip = replace(policy.plans["vip"], monthly_quota={"modification": 7, "investigation": 2})
    plans = {**policy.plans, "vip": vip}
    st.settings = replace(st.settings, policy=replace(policy, plans=plans))
    job, period = period_of(st, "quota-reset", "2026-12")
    set_clock(st, period.start)
    assert run_period(st, job, period).result == {"opened": 9}  # 4 VIPs twice, 1 Standard
    with st.database.transaction(read_only=True) as session:
        rows = session.execute(
            select(QuotaAllowance.kind, QuotaAllowance.allowance).where(
                QuotaAllowance.customer_id == ids["both@shop.example"]
            )
        ).all()
    assert sorted(rows) == [("investigation", 2), ("modification", 7)]
