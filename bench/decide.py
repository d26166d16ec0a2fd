"""Decisions per second of ``rules.decide`` on one core, over a realistic mix of events.

Run: ``.venv/bin/python bench/decide.py [--seconds 10]``. Prints two rates:

- the event stream: each ticket's life as a help desk reports it, one ``ticket.created``
  followed by six later events (a customer reply, an agent reply, an internal note, two
  status changes and an agent's tag change), each decided with the ticket's stored state;
- ticket creations alone, the expensive decision (plan, detection, estimate, texts).

The tickets: five kinds of customer (VIP, Standard, free period, credits, unknown) times
twelve texts in English and Russian (questions, configuration, investigations, upgrades with
version pairs, modifications with and without a price, vague tickets), some pre-approved,
some engineer-categorised, created at different hours so business-hour arithmetic runs over
nights and weekends.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from connector.config import default_policy
from rules.decide import TicketState, decide
from rules.events import Comment, EventType, TicketEvent, TicketStatus
from rules.model import Customer, Facts, License, LicenseKind, Subscription

TEXTS = [
    ("How to set up shipping methods?", "Where can I find the shipping settings in the admin?"),
    ("Как настроить способы оплаты?", "Подскажите, где включить оплату картой?"),
    ("Payment gateway configuration", "PayPal stopped working after we changed the settings."),
    ("Error 500 on checkout", "Server log shows a fatal error, probably the database."),
    ("Белый экран после переноса", "После переноса на новый сервер белый экран, ошибка 500."),
    ("Upgrade our store", "Please upgrade us from 4.3.1 to 4.3.9, we have an add-on."),
    ("Обновление", "Нужно обновить магазин с 4.9.2 до 4.10.1."),
    ("Upgrade", "Upgrade from 4.12.1 to 4.18.3 please."),
    ("Custom modification", "We need a custom modification: add a field to checkout."),
    ("Доработка", "Нужна доработка: добавить кнопку в карточку товара."),
    ("Hello", "Hi, thanks for the help last time!"),
    ("Help", "Something is wrong, please help."),
]

CUSTOMERS: list[Customer | None] = [
    Customer(
        email="vip@shop.example",
        subscriptions=(Subscription("vip", date(2026, 1, 1), date(2026, 12, 31)),),
        upgrades_lifetime=True,
    ),
    Customer(
        email="std@shop.example",
        locale="ru",
        subscriptions=(Subscription("standard", date(2026, 1, 1), date(2026, 12, 31)),),
        upgrades_until=date(2027, 1, 1),
    ),
    Customer(
        email="free@shop.example",
        licenses=(License("L-1", "multi-vendor", LicenseKind.FIRST, date(2026, 3, 1)),),
    ),
    Customer(
        email="credits@shop.example",
        licenses=(License("L-2", "cs-cart", LicenseKind.FIRST, date(2025, 1, 1)),),
        upgrades_until=date(2027, 1, 1),
    ),
    None,
]


def build_cases() -> list[tuple[TicketEvent, Facts, datetime]]:
    start = datetime(2026, 3, 6, 6, 0, tzinfo=UTC)  # a Friday
    cases = []
    extras = [
        ((), {}),
        (("care_preapproved",), {}),
        ((), {"care_preapproval": "30", "care_price": "45"}),
        (("care_category_configuration",), {}),
    ]
    for n, (cust, (subject, text), (tags, fields)) in enumerate(
        itertools.product(CUSTOMERS, TEXTS, extras)
    ):
        created = start + timedelta(hours=7 * n)
        event = TicketEvent(
            desk="zendesk",
            delivery_key=f"d-{n}",
            type=EventType.TICKET_CREATED,
            ticket_id=str(1000 + n),
            ticket_created_at=created,
            subject=subject,
            description=text,
            requester_email=cust.email if cust else "stranger@example.com",
            tags=tags,
            fields=fields,
        )
        facts = Facts(customer=cust, balance=40 + n % 100, modifications_used=n % 9)
        cases.append((event, facts, created + timedelta(seconds=3)))
    return cases


def later_events(created: TicketEvent) -> list[TicketEvent]:
    """Six events after creation, in the shapes adapters produce."""
    after = created.ticket_created_at or created.occurred_at
    assert after is not None

    def later(n: int, kind: EventType, **kw: object) -> TicketEvent:
        return replace(
            created,
            delivery_key=f"{created.delivery_key}-{n}",
            type=kind,
            occurred_at=after + timedelta(hours=n),
            **kw,  # type: ignore[arg-type]
        )

    return [
        later(1, EventType.COMMENT_ADDED, comment=Comment("Thanks, any news?", True, "u-1")),
        later(2, EventType.COMMENT_ADDED, comment=Comment("We are on it.", True, "agent-7")),
        later(3, EventType.COMMENT_ADDED, comment=Comment("checked logs", False, "agent-7")),
        later(4, EventType.STATUS_CHANGED, status=TicketStatus.WAITING),
        later(5, EventType.TAGS_CHANGED, tags=(*(created.tags or ()), "vip_followup")),
        later(6, EventType.STATUS_CHANGED, status=TicketStatus.SOLVED),
    ]


def rate(run: Callable[[], int], seconds: float) -> tuple[int, float]:
    done = 0
    began = time.perf_counter()
    deadline = began + seconds
    while time.perf_counter() < deadline:
        done += run()
    return done, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    policy = default_policy()
    cases = build_cases()
    stream: list[tuple[TicketEvent, Facts, datetime, TicketState | None]] = []
    for event, facts, now in cases:  # warm the caches and build each ticket's stream
        state = decide(event, facts, policy, now).state
        stream.append((event, facts, now, None))
        stream.extend((e, facts, now, state) for e in later_events(event))

    def creations() -> int:
        for event, facts, now in cases:
            decide(event, facts, policy, now)
        return len(cases)

    def events() -> int:
        for event, facts, now, state in stream:
            decide(event, facts, policy, now, state=state)
        return len(stream)

    created_n, created_s = rate(creations, args.seconds / 2)
    stream_n, stream_s = rate(events, args.seconds / 2)
    charged = sum(1 for e, f, n in cases if decide(e, f, policy, n).charge)
    pending = sum(1 for e, f, n in cases if decide(e, f, policy, n).approval_required)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"tickets: {len(cases)} ({charged} charged at once, {pending} awaiting approval)")
    print(f"event stream: {len(stream)} events, 1 creation to 6 later events per ticket")
    print(f"event stream rate: {stream_n / stream_s:,.0f} decisions/s (target >= 20,000)")
    print(f"creations alone: {created_n / created_s:,.0f} decisions/s")


if __name__ == "__main__":
    main()
