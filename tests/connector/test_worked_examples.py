"""The ledger as worked examples: short business stories, every balance asserted after each step.

Prices come from the shipped policy through :mod:`rules.credits`, so a story reads like the
care page: "an upgrade 4.3.1 → 4.3.9 costs 50 credits". Each story runs on SQLite and, with
``CARE_TEST_DATABASE_URL`` set, on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from connector import ledger
from connector.config import default_policy
from connector.db import Database
from connector.ledger import EntryKind, Source
from connector.models import Customer
from rules import credits
from rules.model import LicenseKind

POLICY = default_policy()
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def price(category: str, **options: object) -> int:
    return credits.quote(POLICY, category, **options).credits  # type: ignore[arg-type]


@dataclass
class Story:
    """One customer's account, told step by step; each step returns the balance after it."""

    database: Database
    customer_id: int
    clock: datetime = MONDAY

    def post(self, kind: EntryKind, amount: int, key: str, **extra: object) -> ledger.LedgerEntry:
        self.clock += timedelta(minutes=10)
        with self.database.transaction() as session:
            entry = ledger.post(
                session,
                customer_id=self.customer_id,
                kind=kind,
                amount=amount,
                key=key,
                actor=str(extra.pop("actor", "system")),
                source=Source(str(extra.pop("source", Source.WEBHOOK))),
                at=self.clock,
                **extra,  # type: ignore[arg-type]
            )
        return entry

    def buys(self, n: int, order: str) -> int:
        return self.post(EntryKind.PURCHASE, n, order, source=Source.IMPORT).balance_after

    def charged(self, n: int, ticket: str, key: str) -> int:
        return self.post(EntryKind.CHARGE, -n, key, ticket=ticket).balance_after

    def refunded(self, n: int, ticket: str, key: str) -> int:
        return self.post(EntryKind.REFUND, n, key, ticket=ticket).balance_after

    def granted(self, n: int, key: str, reason: str) -> int:
        entry = self.post(EntryKind.GRANT, n, key, source=Source.ADMIN, reason=reason)
        return entry.balance_after

    def reversed(self, entry_id: int) -> int:
        with self.database.transaction() as session:
            entry = ledger.reverse(
                session,
                entry_id,
                actor="lead",
                source=Source.ADMIN,
                reason="mistake",
                at=self.clock,
            )
        return entry.balance_after

    @property
    def balance(self) -> int:
        with self.database.transaction() as session:
            return ledger.balance(session, self.customer_id)

    def history(self) -> list[tuple[str, int, int]]:
        with self.database.transaction() as session:
            return [
                (e.kind, e.amount, e.balance_after)
                for e in ledger.history(session, self.customer_id)
            ]

    def consistent(self) -> bool:
        with self.database.transaction() as session:
            return ledger.verify(session) == []


@pytest.fixture
def story(database: Database) -> Story:
    with database.transaction() as session:
        customer = Customer(email="owner@shop.example", name="Shop Owner")
        session.add(customer)
        session.flush()
        return Story(database, customer.id)


def test_buy_upgrade_recategorise_grant_retry_and_refusal(story: Story) -> None:
    # The customer buys 100 credits.
    assert story.buys(100, "order-77") == 100
    # An upgrade 4.3.1 -> 4.3.9 is 8 steps: 20 + 5 x 6 = 50 credits, charged on agreement.
    upgrade = price("upgrade", from_version="4.3.1", to_version="4.3.9")
    assert upgrade == 50
    assert story.charged(upgrade, "zendesk:101", "zendesk:101:charge") == 50
    # A second ticket, an investigation, costs 20.
    assert story.charged(price("investigation"), "zendesk:102", "zendesk:102:charge") == 30
    # The engineer re-categorises it to a configuration (10): the difference is refunded.
    change = credits.difference(price("investigation"), price("configuration"))
    assert change == -10
    assert story.refunded(-change, "zendesk:102", "zendesk:102:recategorised") == 40
    # Support grants 5 credits for a slow answer.
    assert story.granted(5, "goodwill:2026-03", "slow first reply") == 45
    # The help desk delivers the upgrade's approval again: the same key returns the first
    # charge (its balance_after is still the 50 it left then) and nothing moves.
    assert story.charged(upgrade, "zendesk:101", "zendesk:101:charge") == 50
    assert story.balance == 45
    # A modification the engineer prices at 60 is refused: 15 credits are missing.
    modification = price("modification", credits=60)
    with pytest.raises(ledger.InsufficientCreditsError) as refused:
        story.charged(modification, "zendesk:103", "zendesk:103:charge")
    assert (refused.value.balance, refused.value.shortfall) == (45, 15)
    assert refused.value.shortfall == credits.shortfall(45, modification)
    assert story.balance == 45

    assert story.history() == [
        ("purchase", 100, 100),
        ("charge", -50, 50),
        ("charge", -20, 30),
        ("refund", 10, 40),
        ("grant", 5, 45),
    ]
    assert story.consistent()


def test_license_credits_are_granted_once(story: Story) -> None:
    # A first CS-Cart license grants 50 credits; importing the file twice grants nothing more.
    grant = POLICY.products["cs-cart"].grants[LicenseKind.FIRST].credits
    assert grant == 50
    first = story.post(EntryKind.LICENSE_GRANT, grant, "license:L-1001", source=Source.IMPORT)
    assert first.balance_after == 50
    again = story.post(EntryKind.LICENSE_GRANT, grant, "license:L-1001", source=Source.IMPORT)
    assert (again.id, story.balance) == (first.id, 50)
    # An additional license is another ref and grants its own 30.
    extra = POLICY.products["cs-cart"].grants[LicenseKind.ADDITIONAL].credits
    assert story.post(EntryKind.LICENSE_GRANT, extra, "license:L-1002").balance_after == 80
    assert story.balance == 80
    assert story.consistent()


def test_spending_to_zero_then_topping_up(story: Story) -> None:
    assert story.buys(20, "order-1") == 20
    # Two configuration questions use the whole balance.
    assert story.charged(price("configuration"), "rt:1", "rt:1:charge") == 10
    assert story.charged(price("configuration"), "rt:2", "rt:2:charge") == 0
    # A question (5) now finds nothing: the whole price is missing.
    with pytest.raises(ledger.InsufficientCreditsError) as refused:
        story.charged(price("question"), "rt:3", "rt:3:charge")
    assert (refused.value.balance, refused.value.shortfall) == (0, 5)
    assert story.balance == 0
    # The customer buys more; the same charge, retried under the same key, now goes through.
    assert story.buys(50, "order-2") == 50
    assert story.charged(price("question"), "rt:3", "rt:3:charge") == 45
    assert story.balance == 45
    assert story.consistent()


def test_a_mistaken_double_charge_is_reversed_not_deleted(story: Story) -> None:
    assert story.buys(100, "order-1") == 100
    assert story.charged(20, "freshdesk:9", "freshdesk:9:charge") == 80
    # An operator charges the same ticket again by hand, under another key.
    mistake = story.post(EntryKind.CHARGE, -20, "manual-1", source=Source.ADMIN, actor="ops")
    assert mistake.balance_after == 60
    # The lead reverses it: a new entry gives the 20 back; the mistake stays in the history.
    assert story.reversed(mistake.id) == 80
    assert story.reversed(mistake.id) == 80  # Asking twice changes nothing.
    assert story.balance == 80
    assert story.history() == [
        ("purchase", 100, 100),
        ("charge", -20, 80),
        ("charge", -20, 60),
        ("adjustment", 20, 80),
    ]
    assert story.consistent()


def test_a_gift_already_spent_cannot_be_taken_back(story: Story) -> None:
    gift = story.post(EntryKind.GRANT, 30, "gift-1", source=Source.ADMIN)
    assert gift.balance_after == 30
    assert story.charged(price("investigation"), "zammad:5", "zammad:5:charge") == 10
    # Reversing the gift would need 30 credits; only 10 are left.
    with pytest.raises(ledger.InsufficientCreditsError) as refused:
        story.reversed(gift.id)
    assert (refused.value.balance, refused.value.shortfall) == (10, 20)
    assert story.balance == 10
    assert story.consistent()
