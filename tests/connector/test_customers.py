"""Customers: validating and importing the import file, loading and finding customers."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from connector import ledger
from connector.config import default_policy
from connector.customers import (
    CustomerImportError,
    ImportCounts,
    UnknownCustomerError,
    find_customer,
    import_customers,
    load_customer,
    validate_entries,
)
from connector.db import Database
from connector.models import (
    CreditPurchase,
    Customer,
    Identity,
    LedgerEntry,
    License,
    Subscription,
)
from rules import model
from rules.policy import Policy

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LATER = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)
DESKS = ("zendesk", "helpscout")


def owner(**changes: Any) -> dict[str, Any]:
    """The architecture document's example entry, with ``changes`` (``None`` drops a key)."""
    entry: dict[str, Any] = {
        "email": "owner@shop.example",
        "name": "Shop Owner",
        "locale": "ru",
        "timezone": "Europe/Berlin",
        "licenses": [
            {"ref": "L-1001", "product": "cs-cart", "kind": "first", "purchased_on": "2026-01-10"}
        ],
        "subscriptions": [{"plan": "vip", "starts_on": "2026-01-01", "ends_on": "2026-12-31"}],
        "upgrades_until": "2027-01-10",
        "credit_purchases": [{"ref": "order-77", "credits": 100, "purchased_on": "2026-02-01"}],
        "identities": {"zendesk": ["8447388090494"], "helpscout": ["29418"]},
    }
    for key, value in changes.items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    return entry


def minimal(email: str, **fields: Any) -> dict[str, Any]:
    return {"email": email, **fields}


def lic(
    ref: str, product: str = "cs-cart", kind: str = "first", on: str = "2026-01-10"
) -> dict[str, Any]:
    return {"ref": ref, "product": product, "kind": kind, "purchased_on": on}


def purchase(ref: str, credits: int = 100, on: str = "2026-02-01") -> dict[str, Any]:
    return {"ref": ref, "credits": credits, "purchased_on": on}


def run(
    database: Database, policy: Policy, entries: list[Any], *, at: datetime = AT
) -> ImportCounts:
    records = validate_entries(entries, policy=policy, desks=DESKS)
    with database.transaction() as session:
        return import_customers(session, records, policy=policy, at=at, actor="tester")


def customer_id(database: Database, email: str) -> int:
    with database.transaction() as session:
        found = session.scalar(select(Customer.id).where(Customer.email == email))
    assert found is not None, email
    return found


def load(database: Database, email: str) -> model.Customer:
    with database.transaction() as session:
        return load_customer(session, customer_id(database, email))


def entries_of(database: Database, email: str) -> list[tuple[str, str, int, int, str]]:
    with database.transaction() as session:
        return [
            (e.key, e.kind, e.amount, e.balance_after, e.source)
            for e in ledger.history(session, customer_id(database, email))
        ]


def balance(database: Database, email: str) -> int:
    with database.transaction() as session:
        return ledger.balance(session, customer_id(database, email))


def row_counts(database: Database) -> dict[str, int]:
    tables = (Customer, License, Subscription, CreditPurchase, Identity, LedgerEntry)
    with database.transaction() as session:
        return {
            t.__tablename__: session.scalar(select(func.count()).select_from(t)) or 0
            for t in tables
        }


def error(policy: Policy, entries: list[Any], *, fast: bool = True) -> str:
    with pytest.raises(CustomerImportError) as caught:
        validate_entries(entries, policy=policy, desks=DESKS, fast=fast)
    return str(caught.value)


# --------------------------------------------------------------------------------------------
# Validation: every problem names the entry's email and the field


def with_license(**fields: Any) -> dict[str, Any]:
    return owner(licenses=[{**lic("L-1"), **fields}])


def without(item: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != key}


INVALID: list[tuple[str, Any, str]] = [
    (
        "bad license date",
        with_license(purchased_on="2026-13-10"),
        "owner@shop.example: licenses[0].purchased_on: Not a valid date.",
    ),
    (
        "unknown product",
        with_license(product="cs-kart"),
        "owner@shop.example: licenses[0].product: Must be one of: cs-cart, cs-cart-ultimate,"
        " multi-vendor, multi-vendor-plus, multi-vendor-ultimate.",
    ),
    (
        "unknown kind",
        with_license(kind="second"),
        "owner@shop.example: licenses[0].kind: Must be one of: first, additional,"
        " additional_storefront.",
    ),
    (
        "kind the product does not sell",
        with_license(product="multi-vendor", kind="additional_storefront"),
        "owner@shop.example: licenses[0].kind: Multi-Vendor has no additional_storefront"
        " license.",
    ),
    (
        "license without a ref",
        owner(licenses=[without(lic("L-1"), "ref")]),
        "owner@shop.example: licenses[0].ref: Missing data for required field.",
    ),
    (
        "blank license ref",
        with_license(ref="  "),
        "owner@shop.example: licenses[0].ref: Must not be empty.",
    ),
    (
        "unknown license field",
        with_license(price=10),
        "owner@shop.example: licenses[0].price: Unknown field.",
    ),
    (
        "licenses not a list",
        owner(licenses={"ref": "L-1"}),
        "owner@shop.example: licenses: Not a valid list.",
    ),
    (
        "no email",
        owner(email=None),
        "customers[0]: email: Missing data for required field.",
    ),
    (
        "bad email",
        owner(email="owner-at-shop"),
        "owner-at-shop: email: Not a valid email address.",
    ),
    ("name not text", owner(name=5), "owner@shop.example: name: Not a valid string."),
    ("unknown locale", owner(locale="de"), "owner@shop.example: locale: Must be one of: en, ru."),
    (
        "unknown time zone",
        owner(timezone="Mars/Olympus_Mons"),
        "owner@shop.example: timezone: Not a known IANA time zone.",
    ),
    (
        "bad upgrades_until",
        owner(upgrades_until="forever"),
        'owner@shop.example: upgrades_until: Not a valid date or "lifetime".',
    ),
    (
        "subscription to a plan nobody buys",
        owner(
            subscriptions=[{"plan": "credits", "starts_on": "2026-01-01", "ends_on": "2026-02-01"}]
        ),
        "owner@shop.example: subscriptions[0].plan: Must be one of: vip, standard.",
    ),
    (
        "subscription ending before it starts",
        owner(subscriptions=[{"plan": "vip", "starts_on": "2026-02-01", "ends_on": "2026-01-31"}]),
        "owner@shop.example: subscriptions[0].ends_on: Must not be before starts_on.",
    ),
    (
        "subscription without an end",
        owner(subscriptions=[{"plan": "vip", "starts_on": "2026-02-01"}]),
        "owner@shop.example: subscriptions[0].ends_on: Missing data for required field.",
    ),
    (
        "credits as text",
        owner(credit_purchases=[purchase("o-1") | {"credits": "100"}]),
        "owner@shop.example: credit_purchases[0].credits: Not a valid integer.",
    ),
    (
        "fractional credits",
        owner(credit_purchases=[purchase("o-1") | {"credits": 1.5}]),
        "owner@shop.example: credit_purchases[0].credits: Not a valid integer.",
    ),
    (
        "boolean credits",
        owner(credit_purchases=[purchase("o-1") | {"credits": True}]),
        "owner@shop.example: credit_purchases[0].credits: Not a valid integer.",
    ),
    (
        "no credits",
        owner(credit_purchases=[purchase("o-1", credits=0)]),
        "owner@shop.example: credit_purchases[0].credits: Must be a positive number of credits.",
    ),
    (
        "bad purchase date",
        owner(credit_purchases=[purchase("o-1", on="1 Feb 2026")]),
        "owner@shop.example: credit_purchases[0].purchased_on: Not a valid date.",
    ),
    (
        "unconfigured desk",
        owner(identities={"jira": ["1"]}),
        "owner@shop.example: identities.jira: Not a configured desk (desks: helpscout, zendesk).",
    ),
    (
        "identities not a list",
        owner(identities={"zendesk": "1"}),
        "owner@shop.example: identities.zendesk: Not a valid list.",
    ),
    (
        "identity not an id",
        owner(identities={"zendesk": ["1", 1.5]}),
        "owner@shop.example: identities.zendesk[1]: Not a valid user id.",
    ),
    (
        "blank identity",
        owner(identities={"zendesk": [" "]}),
        "owner@shop.example: identities.zendesk[0]: Must not be empty.",
    ),
    ("unknown field", owner(phone="+1 555"), "owner@shop.example: phone: Unknown field."),
    ("entry not an object", "owner@shop.example", "customers[0]: Invalid input type."),
]


@pytest.mark.parametrize("fast", [True, False], ids=["quick-check", "schema-only"])
@pytest.mark.parametrize(
    ("entry", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_an_invalid_entry_is_named_by_email_and_field(
    policy: Policy, entry: Any, message: str, fast: bool
) -> None:
    assert error(policy, [entry], fast=fast) == message


DUPLICATES: list[tuple[str, list[Any], str]] = [
    (
        "email twice, any case",
        [minimal("a@shop.example"), minimal("A@Shop.Example")],
        "A@Shop.Example: email: also in the file as a@shop.example",
    ),
    (
        "license ref under two customers",
        [
            minimal("a@x.example", licenses=[lic("L-1")]),
            minimal("b@x.example", licenses=[lic("L-1")]),
        ],
        "b@x.example: licenses[0].ref: L-1 appears twice in the file (also under a@x.example)",
    ),
    (
        "license ref twice in one customer",
        [minimal("a@x.example", licenses=[lic("L-1"), lic("L-1", kind="additional")])],
        "a@x.example: licenses[1].ref: L-1 appears twice in the file",
    ),
    (
        "purchase ref under two customers",
        [
            minimal("a@x.example", credit_purchases=[purchase("o-1")]),
            minimal("b@x.example", credit_purchases=[purchase("o-1")]),
        ],
        "b@x.example: credit_purchases[0].ref: o-1 appears twice in the file"
        " (also under a@x.example)",
    ),
    (
        "identity under two customers",
        [
            minimal("a@x.example", identities={"zendesk": ["7"]}),
            minimal("b@x.example", identities={"zendesk": ["7"]}),
        ],
        "b@x.example: identities.zendesk[0]: zendesk user 7 is also under a@x.example",
    ),
]


@pytest.mark.parametrize(
    ("entries", "message"), [c[1:] for c in DUPLICATES], ids=[c[0] for c in DUPLICATES]
)
def test_the_same_thing_twice_in_a_file_is_refused(
    policy: Policy, entries: list[Any], message: str
) -> None:
    assert error(policy, entries) == message


def test_the_first_problem_is_shown_with_how_many_more(policy: Policy) -> None:
    entries = [
        minimal("good@shop.example"),
        owner(locale="de"),
        minimal("bad@shop.example", timezone="Nowhere/Land"),
        minimal("worse@shop.example", upgrades_until="soon"),
    ]
    assert error(policy, entries) == (
        "owner@shop.example: locale: Must be one of: en, ru. (and 2 more problems)"
    )


def test_valid_entries_become_records(policy: Policy) -> None:
    [record] = validate_entries([owner(email="Owner@Shop.Example")], policy=policy, desks=DESKS)
    assert record.email == "owner@shop.example"
    assert record.label == "Owner@Shop.Example"
    assert dict(record.scalars) == {
        "name": "Shop Owner",
        "locale": "ru",
        "timezone": "Europe/Berlin",
        "upgrades_until": date(2027, 1, 10),
        "upgrades_lifetime": False,
    }
    assert [(x.ref, x.kind, x.purchased_on) for x in record.licenses] == [
        ("L-1001", model.LicenseKind.FIRST, date(2026, 1, 10))
    ]
    assert [(p.ref, p.credits) for p in record.purchases] == [("order-77", 100)]
    assert [(d, x) for d, x, _ in record.identities] == [
        ("zendesk", "8447388090494"),
        ("helpscout", "29418"),
    ]


def test_integer_identities_are_read_as_text(policy: Policy) -> None:
    [record] = validate_entries(
        [minimal("a@x.example", identities={"zendesk": [8447388090494, "8447388090494"]})],
        policy=policy,
        desks=DESKS,
    )
    assert record.identities == (("zendesk", "8447388090494", "identities.zendesk[0]"),)


# The quick check must agree with the schema on anything: it may only leave entries to it.

# Valid entries, then the same with one value anywhere replaced by something else.
DATES = st.sampled_from(["2026-01-10", "2026-1-5", "2025-12-31"])
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 300),
    st.floats(0, 2),
    st.sampled_from(["", " ", "2026-02-30", "20260110", "Lifetime", "de", "credits", "jira"]),
    st.text(max_size=4),
    st.just([]),
    st.just({}),
)
LICENSES = st.fixed_dictionaries(
    {
        "ref": st.sampled_from(["L-1", "L-2", " L-3 "]),
        "product": st.sampled_from(["cs-cart", "cs-cart-ultimate"]),
        "kind": st.sampled_from(["first", "additional"]),
        "purchased_on": DATES,
    }
)
SUBSCRIPTIONS = st.fixed_dictionaries(
    {
        "plan": st.sampled_from(["vip", "standard"]),
        "starts_on": st.just("2025-01-01"),
        "ends_on": DATES,
    }
)
PURCHASES = st.fixed_dictionaries(
    {
        "ref": st.sampled_from(["o-1", "o-2"]),
        "credits": st.integers(1, 500),
        "purchased_on": DATES,
    }
)
VALID = st.fixed_dictionaries(
    {"email": st.sampled_from(["a@shop.example", "B@Shop.Example"])},
    optional={
        "name": st.text(max_size=5),
        "locale": st.sampled_from(["en", "ru"]),
        "timezone": st.sampled_from(["Europe/Berlin", "UTC", None]),
        "licenses": st.lists(LICENSES, max_size=1),
        "subscriptions": st.lists(SUBSCRIPTIONS, max_size=1),
        "upgrades_until": st.sampled_from(["lifetime", "2027-01-10", None]),
        "credit_purchases": st.lists(PURCHASES, max_size=1),
        "identities": st.dictionaries(
            st.sampled_from(DESKS),
            st.lists(st.one_of(st.integers(0, 9), st.sampled_from(["7", "x1"])), max_size=2),
            max_size=2,
        ),
    },
)
PLACES = [
    (key,) for key in ("email", "name", "locale", "timezone", "licenses", "subscriptions", "phone")
] + [
    ("upgrades_until",),
    ("credit_purchases",),
    ("identities",),
    ("identities", "zendesk"),
    ("identities", "jira"),
    ("identities", "zendesk", 0),
    *[("licenses", 0, key) for key in ("ref", "product", "kind", "purchased_on", "extra")],
    *[("subscriptions", 0, key) for key in ("plan", "starts_on", "ends_on")],
    *[("credit_purchases", 0, key) for key in ("ref", "credits", "purchased_on", "extra")],
    ("licenses", 0),
]


def replaced(entry: dict[str, Any], place: tuple[Any, ...], value: Any) -> Any:
    """``entry`` with the value at ``place`` replaced (or added); unchanged if there is none."""
    entry = copy.deepcopy(entry)
    target: Any = entry
    for step in place[:-1]:
        try:
            target = target[step]
        except (KeyError, IndexError, TypeError):
            return entry
    if isinstance(target, list) and not target:
        return entry
    if isinstance(target, dict | list):
        target[place[-1]] = value
    return entry


MUTATED = st.builds(replaced, VALID, st.sampled_from(PLACES), ODD)


def outcome(entry: Any, *, fast: bool) -> object:
    try:
        return validate_entries([entry], policy=default_policy(), desks=DESKS, fast=fast)
    except CustomerImportError as err:
        return str(err)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entry=st.one_of(VALID, MUTATED, ODD))
def test_the_quick_check_agrees_with_the_schema(entry: Any) -> None:
    assert outcome(copy.deepcopy(entry), fast=True) == outcome(copy.deepcopy(entry), fast=False)


# --------------------------------------------------------------------------------------------
# Importing


def test_a_new_customer_is_created_with_everything(database: Database, policy: Policy) -> None:
    counts = run(database, policy, [owner(email="Owner@Shop.Example")])
    assert counts == ImportCounts(
        customers_created=1,
        licenses_added=1,
        purchases_added=1,
        identities_added=2,
        credits_granted=150,
    )
    assert load(database, "owner@shop.example") == model.Customer(
        id=1,
        email="owner@shop.example",
        name="Shop Owner",
        locale="ru",
        timezone="Europe/Berlin",
        licenses=(model.License("L-1001", "cs-cart", model.LicenseKind.FIRST, date(2026, 1, 10)),),
        subscriptions=(model.Subscription("vip", date(2026, 1, 1), date(2026, 12, 31)),),
        upgrades_until=date(2027, 1, 10),
        upgrades_lifetime=False,
    )
    assert entries_of(database, "owner@shop.example") == [
        ("license:L-1001", "license_grant", 50, 50, "import"),
        ("purchase:order-77", "purchase", 100, 150, "import"),
    ]
    assert balance(database, "owner@shop.example") == 150
    with database.transaction() as session:
        assert ledger.verify(session) == []
        created = session.scalars(select(Customer)).one()
        entry = session.scalars(select(LedgerEntry)).first()
    assert created.created_at == created.updated_at == AT
    assert entry is not None and (entry.actor, entry.at) == ("tester", AT)


def test_defaults_of_a_customer_given_only_an_email(database: Database, policy: Policy) -> None:
    run(database, policy, [minimal("bare@shop.example")])
    assert load(database, "bare@shop.example") == model.Customer(
        id=1, email="bare@shop.example", name="", locale="en"
    )
    assert entries_of(database, "bare@shop.example") == []


@pytest.mark.parametrize(
    ("product", "kind", "credits"),
    [
        ("cs-cart", "first", 50),
        ("cs-cart", "additional", 30),
        ("cs-cart", "additional_storefront", 30),
        ("cs-cart-ultimate", "first", 0),
        ("multi-vendor", "additional", 0),
        ("multi-vendor-plus", "first", 0),
        ("multi-vendor-ultimate", "first", 0),
    ],
)
def test_licenses_grant_the_policys_credits(
    database: Database, policy: Policy, product: str, kind: str, credits: int
) -> None:
    counts = run(database, policy, [minimal("a@x.example", licenses=[lic("L-1", product, kind)])])
    assert (counts.licenses_added, counts.credits_granted) == (1, credits)
    expected = [("license:L-1", "license_grant", credits, credits, "import")] if credits else []
    assert entries_of(database, "a@x.example") == expected


def test_reimporting_the_same_file_changes_nothing(database: Database, policy: Policy) -> None:
    entries = [owner(), minimal("b@x.example", licenses=[lic("L-2", kind="additional")])]
    run(database, policy, entries)
    before = row_counts(database)
    with database.transaction() as session:
        stamps = session.execute(select(Customer.email, Customer.updated_at)).all()

    again = run(database, policy, entries, at=LATER)

    assert again == ImportCounts(customers_unchanged=2)
    assert row_counts(database) == before
    with database.transaction() as session:
        assert session.execute(select(Customer.email, Customer.updated_at)).all() == stamps
    assert balance(database, "owner@shop.example") == 150
    assert balance(database, "b@x.example") == 30


def test_emails_match_case_insensitively(database: Database, policy: Policy) -> None:
    run(database, policy, [owner()])
    counts = run(database, policy, [owner(email="OWNER@shop.EXAMPLE", name="Renamed")], at=LATER)
    assert (counts.customers_created, counts.customers_updated) == (0, 1)
    assert load(database, "owner@shop.example").name == "Renamed"


UPDATES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # (case, changes to the second import's entry, expected fields of the loaded customer)
    ("name replaced", {"name": "New Name"}, {"name": "New Name"}),
    ("name kept when absent", {"name": None}, {"name": "Shop Owner"}),
    ("locale replaced", {"locale": "en"}, {"locale": "en"}),
    ("locale kept when absent", {"locale": None}, {"locale": "ru"}),
    ("timezone replaced", {"timezone": "Asia/Dubai"}, {"timezone": "Asia/Dubai"}),
    ("timezone kept when absent", {"timezone": None}, {"timezone": "Europe/Berlin"}),
    (
        "upgrade date replaced",
        {"upgrades_until": "2028-01-10"},
        {"upgrades_until": date(2028, 1, 10), "upgrades_lifetime": False},
    ),
    (
        "upgrades made lifetime",
        {"upgrades_until": "lifetime"},
        {"upgrades_until": None, "upgrades_lifetime": True},
    ),
    (
        "upgrade date kept when absent",
        {"upgrades_until": None},
        {"upgrades_until": date(2027, 1, 10), "upgrades_lifetime": False},
    ),
    (
        "subscriptions replaced",
        {
            "subscriptions": [
                {"plan": "standard", "starts_on": "2027-01-01", "ends_on": "2027-06-30"}
            ]
        },
        {"subscriptions": (model.Subscription("standard", date(2027, 1, 1), date(2027, 6, 30)),)},
    ),
    ("subscriptions emptied", {"subscriptions": []}, {"subscriptions": ()}),
    (
        "subscriptions kept when absent",
        {"subscriptions": None},
        {"subscriptions": (model.Subscription("vip", date(2026, 1, 1), date(2026, 12, 31)),)},
    ),
]


@pytest.mark.parametrize(
    ("changes", "expected"), [c[1:] for c in UPDATES], ids=[c[0] for c in UPDATES]
)
def test_update_rules_for_an_existing_customer(
    database: Database, policy: Policy, changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    run(database, policy, [owner()])
    counts = run(database, policy, [owner(**changes)], at=LATER)
    loaded = load(database, "owner@shop.example")
    assert {key: getattr(loaded, key) for key in expected} == expected
    replaced = any(getattr(load_default(), k) != v for k, v in expected.items())
    assert (counts.customers_updated, counts.customers_unchanged) == (
        (1, 0) if replaced else (0, 1)
    )


def load_default() -> model.Customer:
    """The example entry as loaded after its first import."""
    return model.Customer(
        email="owner@shop.example",
        name="Shop Owner",
        locale="ru",
        timezone="Europe/Berlin",
        subscriptions=(model.Subscription("vip", date(2026, 1, 1), date(2026, 12, 31)),),
        upgrades_until=date(2027, 1, 10),
    )


def test_null_clears_timezone_and_upgrade_date(database: Database, policy: Policy) -> None:
    run(database, policy, [owner(upgrades_until="lifetime")])
    run(database, policy, [owner() | {"timezone": None, "upgrades_until": None}], at=LATER)
    loaded = load(database, "owner@shop.example")
    assert (loaded.timezone, loaded.upgrades_until, loaded.upgrades_lifetime) == (
        None,
        None,
        False,
    )


def test_lifetime_upgrades(database: Database, policy: Policy) -> None:
    run(database, policy, [owner(upgrades_until="lifetime")])
    loaded = load(database, "owner@shop.example")
    assert (loaded.upgrades_until, loaded.upgrades_lifetime) == (None, True)
    assert loaded.has_upgrades_on(date(2099, 12, 31))


def test_an_update_stamps_updated_at_only(database: Database, policy: Policy) -> None:
    run(database, policy, [owner()])
    run(database, policy, [owner(name="Renamed")], at=LATER)
    with database.transaction() as session:
        row = session.scalars(select(Customer)).one()
    assert (row.created_at, row.updated_at) == (AT, LATER)


def test_new_licenses_and_purchases_are_added_and_granted_once(
    database: Database, policy: Policy
) -> None:
    run(database, policy, [owner()])
    more = owner(
        licenses=[lic("L-1001"), lic("L-1002", kind="additional")],
        credit_purchases=[purchase("order-77"), purchase("order-78", credits=40)],
    )
    counts = run(database, policy, [more], at=LATER)
    assert (counts.customers_updated, counts.licenses_added, counts.purchases_added) == (1, 1, 1)
    assert counts.credits_granted == 70
    assert entries_of(database, "owner@shop.example") == [
        ("license:L-1001", "license_grant", 50, 50, "import"),
        ("purchase:order-77", "purchase", 100, 150, "import"),
        ("license:L-1002", "license_grant", 30, 180, "import"),
        ("purchase:order-78", "purchase", 40, 220, "import"),
    ]
    assert run(database, policy, [more], at=LATER) == ImportCounts(customers_unchanged=1)
    with database.transaction() as session:
        assert ledger.verify(session) == []


def test_a_stored_license_is_never_changed(database: Database, policy: Policy) -> None:
    run(database, policy, [owner()])
    changed = lic("L-1001", product="multi-vendor", kind="additional", on="2025-05-05")
    counts = run(database, policy, [owner(licenses=[changed])], at=LATER)
    assert (counts.licenses_added, counts.credits_granted, counts.customers_unchanged) == (0, 0, 1)
    assert load(database, "owner@shop.example").licenses == (
        model.License("L-1001", "cs-cart", model.LicenseKind.FIRST, date(2026, 1, 10)),
    )


def test_licenses_load_oldest_first(database: Database, policy: Policy) -> None:
    licenses = [lic("L-3", on="2026-03-01"), lic("L-1", on="2025-01-01", kind="additional")]
    run(database, policy, [minimal("a@x.example", licenses=licenses)])
    assert [x.ref for x in load(database, "a@x.example").licenses] == ["L-1", "L-3"]


def test_identities_are_merged(database: Database, policy: Policy) -> None:
    run(database, policy, [owner()])
    counts = run(
        database,
        policy,
        [owner(identities={"zendesk": ["8447388090494", "111"], "helpscout": []})],
        at=LATER,
    )
    assert (counts.identities_added, counts.customers_updated) == (1, 1)
    with database.transaction() as session:
        pairs = session.execute(select(Identity.desk, Identity.external_id)).all()
    assert sorted(pairs) == [
        ("helpscout", "29418"),
        ("zendesk", "111"),
        ("zendesk", "8447388090494"),
    ]


CONFLICTS: list[tuple[str, dict[str, Any], str]] = [
    (
        "license",
        {"licenses": [lic("L-1001")]},
        "other@x.example: licenses[0].ref: L-1001 belongs to another customer"
        " (owner@shop.example)",
    ),
    (
        "purchase",
        {"credit_purchases": [purchase("order-77")]},
        "other@x.example: credit_purchases[0].ref: order-77 belongs to another customer"
        " (owner@shop.example)",
    ),
    (
        "identity",
        {"identities": {"helpscout": ["29418"]}},
        "other@x.example: identities.helpscout[0]: helpscout user 29418 belongs to another"
        " customer (owner@shop.example)",
    ),
]


@pytest.mark.parametrize(
    ("fields", "message"), [c[1:] for c in CONFLICTS], ids=[c[0] for c in CONFLICTS]
)
def test_something_stored_for_another_customer_is_refused(
    database: Database, policy: Policy, fields: dict[str, Any], message: str
) -> None:
    run(database, policy, [owner()])
    before = row_counts(database)
    entries = [
        minimal("new@x.example", licenses=[lic("L-9")]),
        minimal("other@x.example", **fields),
    ]
    with pytest.raises(CustomerImportError) as caught:
        run(database, policy, entries, at=LATER)
    assert str(caught.value) == message
    assert row_counts(database) == before  # Nothing imported, not even the good entry.


def test_one_bad_entry_among_good_ones_imports_nothing(database: Database, policy: Policy) -> None:
    good = [minimal(f"c{n}@x.example", licenses=[lic(f"L-{n}")]) for n in range(5)]
    bad = minimal("bad@x.example", licenses=[lic("L-bad", on="2026-02-30")])
    with pytest.raises(CustomerImportError, match=r"bad@x.example: licenses\[0\].purchased_on"):
        run(database, policy, [*good[:3], bad, *good[3:]])
    assert set(row_counts(database).values()) == {0}


def test_a_failure_while_writing_rolls_everything_back(database: Database, policy: Policy) -> None:
    """A ledger key already used by a different movement is found before any write."""
    run(database, policy, [minimal("a@x.example")])
    a_id = customer_id(database, "a@x.example")
    with database.transaction() as session:
        ledger.grant(
            session,
            customer_id=a_id,
            credits=5,
            key="license:L-7",
            actor="agent",
            source=ledger.Source.ADMIN,
            at=AT,
        )
    before = row_counts(database)
    with pytest.raises(CustomerImportError) as caught:
        run(
            database,
            policy,
            [minimal("new@x.example"), minimal("a@x.example", licenses=[lic("L-7")])],
        )
    assert str(caught.value) == (
        "a@x.example: licenses[0].ref: the ledger key license:L-7 is already used by a"
        " different movement"
    )
    assert row_counts(database) == before


def test_a_grant_already_in_the_ledger_is_not_granted_again(
    database: Database, policy: Policy
) -> None:
    run(database, policy, [minimal("a@x.example")])
    with database.transaction() as session:
        ledger.grant(
            session,
            customer_id=customer_id(database, "a@x.example"),
            credits=50,
            key="license:L-7",
            kind=ledger.EntryKind.LICENSE_GRANT,
            actor="agent",
            source=ledger.Source.ADMIN,
            at=AT,
        )
    counts = run(database, policy, [minimal("a@x.example", licenses=[lic("L-7")])], at=LATER)
    assert (counts.licenses_added, counts.credits_granted) == (1, 0)
    assert balance(database, "a@x.example") == 50


def test_an_existing_customers_grant_goes_through_the_ledger(
    database: Database, policy: Policy
) -> None:
    """Existing customers may have movements of their own: the grant adds to the balance."""
    run(database, policy, [minimal("a@x.example", credit_purchases=[purchase("o-1", 100)])])
    with database.transaction() as session:
        ledger.charge(
            session,
            customer_id=customer_id(database, "a@x.example"),
            credits=60,
            key="zendesk:1:charge",
            actor="system",
            source=ledger.Source.WEBHOOK,
            ticket="zendesk:1",
            at=AT,
        )
    run(database, policy, [minimal("a@x.example", licenses=[lic("L-1")])], at=LATER)
    assert [e[3] for e in entries_of(database, "a@x.example")] == [100, 40, 90]
    with database.transaction() as session:
        assert ledger.verify(session) == []


def test_a_small_import_into_a_large_table_finds_stored_rows(
    database: Database, policy: Policy
) -> None:
    """Few keys against many stored rows: looked up by key rather than by reading it all."""
    many = [
        minimal(
            f"c{n}@x.example",
            licenses=[lic(f"L-{n}")],
            credit_purchases=[purchase(f"o-{n}")],
            identities={"zendesk": [str(n)]},
            subscriptions=[{"plan": "vip", "starts_on": "2026-01-01", "ends_on": "2026-12-31"}],
        )
        for n in range(12)
    ]
    run(database, policy, many)
    with pytest.raises(CustomerImportError, match="zendesk user 3 belongs to another customer"):
        run(database, policy, [minimal("new@x.example", identities={"zendesk": ["3"]})])
    counts = run(database, policy, [many[5] | {"name": "Five"}], at=LATER)
    assert counts == ImportCounts(customers_updated=1)
    assert load(database, "c5@x.example").name == "Five"


def test_erased_customers_keep_their_rows_on_import(database: Database, policy: Policy) -> None:
    run(database, policy, [owner()])
    with database.transaction() as session:
        session.execute(update(Customer).values(erased_at=AT))
    assert run(database, policy, [owner()], at=LATER) == ImportCounts(customers_unchanged=1)


# --------------------------------------------------------------------------------------------
# Loading and finding


def test_load_customer_round_trip(database: Database, policy: Policy) -> None:
    run(database, policy, [owner(upgrades_until="lifetime")])
    loaded = load(database, "owner@shop.example")
    assert loaded == model.Customer(
        id=customer_id(database, "owner@shop.example"),
        email="owner@shop.example",
        name="Shop Owner",
        locale="ru",
        timezone="Europe/Berlin",
        licenses=(model.License("L-1001", "cs-cart", model.LicenseKind.FIRST, date(2026, 1, 10)),),
        subscriptions=(model.Subscription("vip", date(2026, 1, 1), date(2026, 12, 31)),),
        upgrades_until=None,
        upgrades_lifetime=True,
    )


def test_load_customer_orders_licenses_and_subscriptions_by_their_dates(
    database: Database, policy: Policy
) -> None:
    run(database, policy, [owner()])
    owner_id = customer_id(database, "owner@shop.example")
    with database.transaction() as session:  # added out of date order
        session.add_all(
            [
                License(
                    customer_id=owner_id,
                    ref="L-3",
                    product="multi-vendor",
                    kind="additional",
                    purchased_on=date(2026, 5, 1),
                    ended_on=date(2026, 9, 30),
                ),
                License(
                    customer_id=owner_id,
                    ref="L-0",
                    product="cs-cart",
                    kind="additional_storefront",
                    purchased_on=date(2025, 6, 1),
                ),
                Subscription(
                    customer_id=owner_id,
                    plan="standard",
                    starts_on=date(2025, 1, 1),
                    ends_on=date(2025, 12, 31),
                ),
            ]
        )
    loaded = load(database, "owner@shop.example")
    assert [(x.ref, x.purchased_on, x.ended_on) for x in loaded.licenses] == [
        ("L-0", date(2025, 6, 1), None),
        ("L-1001", date(2026, 1, 10), None),
        ("L-3", date(2026, 5, 1), date(2026, 9, 30)),
    ]
    assert [x.kind for x in loaded.licenses] == [
        model.LicenseKind.ADDITIONAL_STOREFRONT,
        model.LicenseKind.FIRST,
        model.LicenseKind.ADDITIONAL,
    ]
    assert loaded.licenses[2].product == "multi-vendor"
    assert loaded.subscriptions == (
        model.Subscription("standard", date(2025, 1, 1), date(2025, 12, 31)),
        model.Subscription("vip", date(2026, 1, 1), date(2026, 12, 31)),
    )


def test_load_customer_with_no_licenses_or_subscriptions(
    database: Database, policy: Policy
) -> None:
    run(database, policy, [minimal("other@x.example", name="Other")])
    loaded = load(database, "other@x.example")
    assert (loaded.email, loaded.name) == ("other@x.example", "Other")
    assert (loaded.licenses, loaded.subscriptions) == ((), ())


def test_load_customer_of_an_unknown_id(database: Database) -> None:
    with (
        pytest.raises(UnknownCustomerError, match="no customer with id 42"),
        database.transaction() as s,
    ):
        load_customer(s, 42)


@pytest.fixture
def two_customers(database: Database, policy: Policy) -> Database:
    run(
        database,
        policy,
        [
            owner(),
            minimal("other@x.example", identities={"zendesk": ["555"]}),
        ],
    )
    return database


FIND: list[tuple[str, dict[str, Any], str | None]] = [
    (
        "identity in the desk",
        {"desk": "zendesk", "external_id": "8447388090494"},
        "owner@shop.example",
    ),
    ("integer identity", {"desk": "zendesk", "external_id": 555}, "other@x.example"),
    (
        "identity wins over email",
        {"desk": "zendesk", "external_id": "555", "email": "owner@shop.example"},
        "other@x.example",
    ),
    (
        "same id in another desk falls back to email",
        {"desk": "helpscout", "external_id": "555", "email": "OWNER@shop.example"},
        "owner@shop.example",
    ),
    ("email any case", {"email": "  Owner@SHOP.example "}, "owner@shop.example"),
    ("unknown identity and email", {"desk": "zendesk", "external_id": "1", "email": "x@y.z"}, None),
    ("nothing to go on", {}, None),
]


@pytest.mark.parametrize(("query", "expected"), [c[1:] for c in FIND], ids=[c[0] for c in FIND])
def test_find_customer(
    two_customers: Database, query: dict[str, Any], expected: str | None
) -> None:
    with two_customers.transaction() as session:
        found = find_customer(session, **query)
    assert found == (None if expected is None else customer_id(two_customers, expected))


def test_erased_customers_are_not_found(two_customers: Database) -> None:
    with two_customers.transaction() as session:
        session.execute(
            update(Customer).where(Customer.email == "owner@shop.example").values(erased_at=AT)
        )
    with two_customers.transaction() as session:
        assert find_customer(session, email="owner@shop.example") is None
        assert find_customer(session, desk="zendesk", external_id="8447388090494") is None
