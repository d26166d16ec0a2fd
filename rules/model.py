"""Facts about customers that the rules decide on: licenses, subscriptions, balances."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date


class LicenseKind(enum.StrEnum):
    FIRST = "first"
    ADDITIONAL = "additional"
    ADDITIONAL_STOREFRONT = "additional_storefront"


@dataclass(frozen=True, slots=True)
class License:
    """A product license; what it grants depends on the policy's product table.

    :param ended_on: the last day its support grants cover when it was ended early (an
        admin's decision); ``None`` for a license that runs its full term.
    """

    ref: str
    product: str
    kind: LicenseKind
    purchased_on: date
    ended_on: date | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    """A care subscription; ``ends_on`` is the last day included."""

    plan: str
    starts_on: date
    ends_on: date


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer with everything the rules need to know about them.

    :param upgrades_until: last day of the upgrade subscription; ``None`` for none.
    :param upgrades_lifetime: lifetime upgrades (``upgrades_until`` is then ignored).
    """

    email: str
    name: str = ""
    locale: str = "en"
    timezone: str | None = None
    licenses: tuple[License, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    upgrades_until: date | None = None
    upgrades_lifetime: bool = False
    id: int | None = None

    def has_upgrades_on(self, day: date) -> bool:
        """True while the upgrade subscription covers ``day``."""
        if self.upgrades_lifetime:
            return True
        return self.upgrades_until is not None and day <= self.upgrades_until


@dataclass(frozen=True, slots=True)
class OpenTicket:
    """Another open ticket of the same customer, for the queue position."""

    ticket_id: str
    created_at_iso: str


@dataclass(frozen=True, slots=True)
class Facts:
    """What the connector loaded for one decision.

    :param customer: the matched customer, or ``None`` for an unknown requester.
    :param balance: the customer's credit balance now.
    :param modifications_used: modifications counted in the ticket's month so far.
    :param modifications_allowance: the month's allowance opened by the reset, if known;
        ``None`` means "use the plan's figure".
    :param recent_tickets: the customer's other open tickets created within the queue window,
        oldest first (ids).
    :param holidays: holiday dates resolved from the config (list or country calendar).
    """

    customer: Customer | None
    balance: int = 0
    modifications_used: int = 0
    modifications_allowance: int | None = None
    recent_tickets: tuple[str, ...] = ()
    holidays: frozenset[date] = field(default_factory=frozenset)
