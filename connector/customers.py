"""Customers: the import file, loading a customer for the rules, matching a requester.

Import
======

``care-connector customers import FILE.json`` reads the file described in architecture.md
("Customer import file") and applies it in ONE transaction: any invalid entry and nothing is
written. The steps:

1. :func:`read_import_file`: the JSON and its top-level shape (``{"customers": [...]}``).
2. :func:`validate_entries`: every entry against the policy (products, license kinds the product
   sells, plans, languages) and the configured desks, with a marshmallow schema (and a quick
   check built from the same marshmallow pieces that passes the valid entries without the
   schema's per-field cost); then across entries (an email, license ref, purchase ref or desk
   identity appearing twice). The first problem becomes one line naming the entry's email and
   the field: ``owner@shop.example: licenses[0].purchased_on: Not a valid date.``
3. :func:`import_customers`: the records against the database (a ref or identity owned by
   another customer is refused the same way), then the writes.

Update rules, per customer (keyed by the lower-cased email):

- ``name``, ``locale``, ``timezone`` and ``upgrades_until`` are replaced by the file's when the
  entry has the key (``null`` clears ``timezone`` and ``upgrades_until``); a key the entry
  leaves out keeps the stored value, so a partial file never blanks data.
- ``subscriptions``, when present, replace the customer's subscriptions (``[]`` removes them).
- ``licenses`` and ``credit_purchases`` are added once by ``ref``; a ref the customer already
  has is skipped as it is (never updated); a ref held by another customer is an error.
- ``identities`` are merged: new ``(desk, id)`` pairs added, none removed.
- Nothing is ever deleted but replaced subscriptions.

Credits: each new license posts its grant (``rules.entitlements.license_credits``: CS-Cart 50 /
30 / 30 by default) and each new purchase its credits, through the ledger with the idempotency
keys ``license:<ref>`` and ``purchase:<ref>`` (source ``import``), so a re-import grants
nothing twice. Existing customers' movements go through :func:`connector.ledger.post` (row lock,
idempotency check). New customers, which cannot have concurrent movements yet, take a bulk
path: their entries are inserted with the running ``balance_after`` and their ``balance`` set at
insert, in the same transaction.

Speed (100,000 customers in well under 30 seconds on SQLite): every write is one bulk
statement for many rows; inserts go to the driver's ``executemany`` with SQLAlchemy's compiled
statement and type processors (:func:`_bulk_insert`), skipping its per-row parameter handling.
Stored rows are looked up by reading the table once when the file covers a good part of it,
else by key, :data:`CHUNK` keys per query. The cyclic garbage collector is paused for the
import (:func:`paused_gc`).
"""

from __future__ import annotations

import functools
import gc
import json
import operator
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)
from sqlalchemy import (
    Row,
    Select,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from connector import ledger
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
from rules.entitlements import license_credits
from rules.policy import Policy

__all__ = [
    "CHUNK",
    "CustomerImportError",
    "CustomerRecord",
    "ImportCounts",
    "LicenseRecord",
    "PurchaseRecord",
    "SubscriptionRecord",
    "UnknownCustomerError",
    "find_customer",
    "import_customers",
    "import_file",
    "load_customer",
    "normalize_email",
    "paused_gc",
    "read_import_file",
    "validate_entries",
]

T = TypeVar("T")

#: How many keys one lookup query carries (well under SQLite's 32,766 bound parameters).
CHUNK = 2_000

LIFETIME = "lifetime"

# The tables behind the models, for Core bulk statements (executemany, no ORM objects).
customers_table = cast(Table, Customer.__table__)
licenses_table = cast(Table, License.__table__)
subscriptions_table = cast(Table, Subscription.__table__)
purchases_table = cast(Table, CreditPurchase.__table__)
identities_table = cast(Table, Identity.__table__)
ledger_table = cast(Table, LedgerEntry.__table__)


class CustomerImportError(Exception):
    """The import file cannot be imported; the message is one line naming what is wrong.

    For an invalid entry it reads ``<email>: <field path>: <problem>``.
    """


class UnknownCustomerError(LookupError):
    """No customer has this id."""

    def __init__(self, customer_id: int) -> None:
        self.customer_id = customer_id
        super().__init__(f"no customer with id {customer_id}")


def normalize_email(email: str) -> str:
    """The stored form of an email: stripped and lower-cased (emails match case-insensitively)."""
    return email.strip().lower()


# --------------------------------------------------------------------------------------------
# Records: a validated entry of the import file


@dataclass(frozen=True, slots=True)
class LicenseRecord:
    ref: str
    product: str
    kind: model.LicenseKind
    purchased_on: date


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    plan: str
    starts_on: date
    ends_on: date


@dataclass(frozen=True, slots=True)
class PurchaseRecord:
    ref: str
    credits: int
    purchased_on: date


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """One validated customer entry.

    :param label: how messages name the entry: its email as written in the file.
    :param scalars: the ``customers`` columns the entry sets (only the keys it has).
    :param subscriptions: the replacement subscriptions, ``None`` when the entry has none.
    :param identities: ``(desk, external_id)`` pairs, with the path of each for messages.
    """

    email: str
    label: str
    scalars: Mapping[str, Any]
    licenses: tuple[LicenseRecord, ...] = ()
    subscriptions: tuple[SubscriptionRecord, ...] | None = None
    purchases: tuple[PurchaseRecord, ...] = ()
    identities: tuple[tuple[str, str, str], ...] = ()


@dataclass
class ImportCounts:
    """What an import changed."""

    customers_created: int = 0
    customers_updated: int = 0
    customers_unchanged: int = 0
    licenses_added: int = 0
    purchases_added: int = 0
    identities_added: int = 0
    credits_granted: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "customers_created": self.customers_created,
            "customers_updated": self.customers_updated,
            "customers_unchanged": self.customers_unchanged,
            "licenses_added": self.licenses_added,
            "purchases_added": self.purchases_added,
            "identities_added": self.identities_added,
            "credits_granted": self.credits_granted,
        }


# --------------------------------------------------------------------------------------------
# Reading and validating the file


def read_import_file(path: str | Path) -> list[Any]:
    """The raw entries of an import file (``{"customers": [...]}``), not yet validated.

    :raises CustomerImportError: the file cannot be read, is not JSON, or has another shape.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise CustomerImportError(f"{path}: cannot read the file: {reason}") from err
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise CustomerImportError(
            f"{path}: not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
        ) from err
    if not isinstance(document, dict) or "customers" not in document:
        raise CustomerImportError(f'{path}: expected an object {{"customers": [...]}}')
    extra = sorted(set(document) - {"customers"})
    if extra:
        raise CustomerImportError(f"{path}: unknown top-level key {extra[0]!r}")
    entries = document["customers"]
    if not isinstance(entries, list):
        raise CustomerImportError(f"{path}: customers: expected a list of customers")
    return entries


def validate_entries(
    entries: Sequence[Any], *, policy: Policy, desks: Collection[str], fast: bool = True
) -> list[CustomerRecord]:
    """Validate raw entries against the policy and the configured desks.

    The rules are the marshmallow schema's (:func:`_customer_schema`). Running a marshmallow
    schema costs about 0.3 ms an entry, too slow for 100,000, so a quick check built from the
    same marshmallow fields and validators goes first; it accepts only the entries the schema
    accepts, with the same result, and leaves every other entry to the schema, which names the
    problem. ``fast=False`` runs the schema on every entry (the tests compare both).

    :param desks: the configured desk keys (the keys ``identities`` may use).
    :raises CustomerImportError: naming the first invalid entry by email and the field, and
        how many more problems the file has.
    """
    desk_keys = frozenset(desks)
    quick = _QuickCheck(policy, desk_keys) if fast else None
    results: list[CustomerRecord | None] = [
        None if quick is None else quick.record(entry) for entry in entries
    ]
    problems: list[str] = []
    schema: Schema | None = None
    for index, result in enumerate(results):
        if result is not None:
            continue
        schema = schema or _customer_schema(policy, desk_keys)
        try:
            results[index] = schema.load(entries[index])
        except ValidationError as err:
            path, text = _first_message(err.messages)
            problems.append(_problem(_label(entries[index], index), path, text))
    if problems:
        raise CustomerImportError(_summary(problems))
    records = [result for result in results if result is not None]
    duplicates = _duplicates(records)
    if duplicates:
        raise CustomerImportError(_summary(duplicates))
    return records


def _summary(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{problems[0]} (and {len(problems) - 1} more problems)"


def _problem(label: str, path: str, text: str) -> str:
    return f"{label}: {path}: {text}" if path else f"{label}: {text}"


def _label(entry: Any, index: int) -> str:
    if isinstance(entry, dict):
        email = entry.get("email")
        if isinstance(email, str) and email.strip():
            return email.strip()
    return f"customers[{index}]"


def _first_message(messages: Any, path: str = "") -> tuple[str, str]:
    """The first leaf of a marshmallow error tree, as (``a.b[0].c``, text)."""
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
        if key == "_schema":
            step = ""
        elif isinstance(key, int):
            step = f"[{key}]"
        else:
            step = f".{key}" if path else str(key)
        return _first_message(value, path + step)
    if isinstance(messages, list) and messages:
        return _first_message(messages[0], path)
    return path, str(messages)


def _duplicates(records: Sequence[CustomerRecord]) -> list[str]:
    """Problems across entries: the same email, ref or identity twice in one file."""
    problems: list[str] = []
    emails: dict[str, str] = {}
    licenses: dict[str, str] = {}
    purchases: dict[str, str] = {}
    identities: dict[tuple[str, str], str] = {}
    for record in records:
        label = record.label
        first = emails.setdefault(record.email, label)
        if first is not label:
            problems.append(f"{label}: email: also in the file as {first}")
        for what, refs, seen in (
            ("licenses", [x.ref for x in record.licenses], licenses),
            ("credit_purchases", [x.ref for x in record.purchases], purchases),
        ):
            for i, ref in enumerate(refs):
                owner = seen.setdefault(ref, label)
                if owner is not label:
                    problems.append(
                        f"{label}: {what}[{i}].ref: {ref} appears twice in the file"
                        f" (also under {owner})"
                    )
                elif ref in refs[:i]:
                    problems.append(f"{label}: {what}[{i}].ref: {ref} appears twice in the file")
        for desk, external_id, path in record.identities:
            owner = identities.setdefault((desk, external_id), label)
            if owner is not label:
                problems.append(f"{label}: {path}: {desk} user {external_id} is also under {owner}")
    return problems


# The schema: the rules of an entry, and its error messages.

_CUSTOMER_KEYS = frozenset(
    {
        "email",
        "name",
        "locale",
        "timezone",
        "licenses",
        "subscriptions",
        "upgrades_until",
        "credit_purchases",
        "identities",
    }
)
_LICENSE_KEYS = frozenset({"ref", "product", "kind", "purchased_on"})
_SUBSCRIPTION_KEYS = frozenset({"plan", "starts_on", "ends_on"})
_PURCHASE_KEYS = frozenset({"ref", "credits", "purchased_on"})
_KINDS = tuple(kind.value for kind in model.LicenseKind)


@functools.lru_cache(maxsize=1024)
def _zone_exists(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _nonblank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be empty.")


_DATE = fields.Date()
_EMAIL = validate.Email()


@functools.lru_cache(maxsize=65_536)
def _date(text: str) -> date | None:
    """marshmallow's reading of a date string (cached: an import repeats the same dates)."""
    try:
        value: date = _DATE.deserialize(text)
    except ValidationError:
        return None
    return value


class _Credits(fields.Integer):
    """A positive whole number of credits: ``true``, ``1.5`` and ``"100"`` are refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.make_error("invalid")
        if value <= 0:
            raise ValidationError("Must be a positive number of credits.")
        return value


class _UpgradesUntil(fields.Field):
    """``"lifetime"``, a date (as :class:`marshmallow.fields.Date` reads it), or ``null``;
    loaded as ``(until, lifetime)``."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> tuple[date | None, bool]:
        if value == LIFETIME:
            return None, True
        day = _date(value) if isinstance(value, str) else None
        if day is None:
            raise ValidationError('Not a valid date or "lifetime".')
        return day, False


class _Identities(fields.Field):
    """``{desk: [user id, ...]}``: desk keys must be configured; ids are strings or integers.

    Loaded as ``((desk, external_id, path), ...)`` without repeats; ``path`` names the id in
    messages (``identities.zendesk[0]``).
    """

    def __init__(self, desks: frozenset[str], **kwargs: Any) -> None:
        self.desks = desks
        super().__init__(**kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> tuple[tuple[str, str, str], ...]:
        if not isinstance(value, dict):
            raise ValidationError("Not a valid mapping of desk to user ids.")
        pairs: dict[tuple[str, str], str] = {}
        for desk, ids in value.items():
            if desk not in self.desks:
                known = ", ".join(sorted(self.desks)) or "none"
                raise ValidationError({desk: [f"Not a configured desk (desks: {known})."]})
            if not isinstance(ids, list):
                raise ValidationError({desk: ["Not a valid list."]})
            for i, external_id in enumerate(ids):
                if isinstance(external_id, bool) or not isinstance(external_id, str | int):
                    raise ValidationError({desk: {i: ["Not a valid user id."]}})
                text = str(external_id).strip()
                if not text:
                    raise ValidationError({desk: {i: ["Must not be empty."]}})
                pairs.setdefault((desk, text), f"identities.{desk}[{i}]")
        return tuple((desk, external_id, path) for (desk, external_id), path in pairs.items())


class _ImportSchema(Schema):
    class Meta:
        unknown = RAISE


def _customer_record(data: Mapping[str, Any]) -> CustomerRecord:
    """A record from a loaded entry (nested records already built)."""
    scalars: dict[str, Any] = {
        key: data[key] for key in ("name", "locale", "timezone") if key in data
    }
    if "upgrades_until" in data:
        until, lifetime = data["upgrades_until"] or (None, False)
        scalars["upgrades_until"] = until
        scalars["upgrades_lifetime"] = lifetime
    subscriptions = data.get("subscriptions")
    return CustomerRecord(
        email=normalize_email(data["email"]),
        label=data["email"].strip(),
        scalars=scalars,
        licenses=tuple(data.get("licenses", ())),
        subscriptions=None if subscriptions is None else tuple(subscriptions),
        purchases=tuple(data.get("credit_purchases", ())),
        identities=data.get("identities", ()),
    )


def _subscription_plans(policy: Policy) -> list[str]:
    """Plans a customer subscribes to: all but the fallback and the free-period plans, which
    nobody buys (``vip`` and ``standard`` by default)."""
    return [
        key for key in policy.plans if key not in (policy.fallback_plan, policy.free_period_plan)
    ]


def _customer_schema(policy: Policy, desks: frozenset[str]) -> Schema:
    """The schema of one entry, built for this policy and these desks."""

    class LicenseSchema(_ImportSchema):
        ref = fields.String(required=True, validate=_nonblank)
        product = fields.String(required=True, validate=validate.OneOf(list(policy.products)))
        kind = fields.String(required=True, validate=validate.OneOf(_KINDS))
        purchased_on = fields.Date(required=True)

        @validates_schema
        def _sold(self, data: dict[str, Any], **kwargs: Any) -> None:
            product = policy.products[data["product"]]
            if model.LicenseKind(data["kind"]) not in product.grants:
                raise ValidationError(f"{product.title} has no {data['kind']} license.", "kind")

        @post_load
        def _record(self, data: dict[str, Any], **kwargs: Any) -> LicenseRecord:
            return LicenseRecord(
                ref=data["ref"],
                product=data["product"],
                kind=model.LicenseKind(data["kind"]),
                purchased_on=data["purchased_on"],
            )

    class SubscriptionSchema(_ImportSchema):
        plan = fields.String(required=True, validate=validate.OneOf(_subscription_plans(policy)))
        starts_on = fields.Date(required=True)
        ends_on = fields.Date(required=True)

        @validates_schema
        def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
            if data["ends_on"] < data["starts_on"]:
                raise ValidationError("Must not be before starts_on.", "ends_on")

        @post_load
        def _record(self, data: dict[str, Any], **kwargs: Any) -> SubscriptionRecord:
            return SubscriptionRecord(**data)

    class PurchaseSchema(_ImportSchema):
        ref = fields.String(required=True, validate=_nonblank)
        credits = _Credits(required=True)
        purchased_on = fields.Date(required=True)

        @post_load
        def _record(self, data: dict[str, Any], **kwargs: Any) -> PurchaseRecord:
            return PurchaseRecord(**data)

    class CustomerSchema(_ImportSchema):
        email = fields.Email(required=True)
        name = fields.String()
        locale = fields.String(validate=validate.OneOf(list(policy.languages)))
        timezone = fields.String(allow_none=True)
        licenses = fields.List(fields.Nested(LicenseSchema))
        subscriptions = fields.List(fields.Nested(SubscriptionSchema))
        upgrades_until = _UpgradesUntil(allow_none=True)
        credit_purchases = fields.List(fields.Nested(PurchaseSchema))
        identities = _Identities(desks)

        @validates_schema
        def _zone(self, data: dict[str, Any], **kwargs: Any) -> None:
            zone = data.get("timezone")
            if zone is not None and not _zone_exists(zone):
                raise ValidationError("Not a known IANA time zone.", "timezone")

        @post_load
        def _record(self, data: dict[str, Any], **kwargs: Any) -> CustomerRecord:
            return _customer_record(data)

    return CustomerSchema()


class _QuickCheck:
    """The schema's rules for entries that pass them, without marshmallow's per-field cost.

    Uses the schema's own pieces (marshmallow's date reading and email validator, the same
    choice lists, :class:`_Credits`, :class:`_UpgradesUntil`, :class:`_Identities`) and gives
    up, returning ``None``, at the first thing it does not accept; the schema then runs on that
    entry. It must never accept an entry the schema refuses (the tests check it does not).
    """

    def __init__(self, policy: Policy, desks: frozenset[str]) -> None:
        self.sold = {
            key: frozenset(kind.value for kind in product.grants)
            for key, product in policy.products.items()
        }
        self.plans = frozenset(_subscription_plans(policy))
        self.languages = frozenset(policy.languages)
        self.credits = _Credits()
        self.upgrades = _UpgradesUntil(allow_none=True)
        self.identities = _Identities(desks)

    def record(self, entry: Any) -> CustomerRecord | None:
        try:
            return self._record(entry)
        except (ValidationError, _GiveUp):
            return None

    def _record(self, entry: Any) -> CustomerRecord:
        if type(entry) is not dict or not entry.keys() <= _CUSTOMER_KEYS:
            raise _GiveUp
        email = entry.get("email")
        if type(email) is not str:
            raise _GiveUp
        _EMAIL(email)
        data: dict[str, Any] = {"email": email}
        if "name" in entry:
            data["name"] = _text(entry["name"])
        if "locale" in entry:
            data["locale"] = _choice(entry["locale"], self.languages)
        if "timezone" in entry:
            zone = entry["timezone"]
            if zone is not None and (type(zone) is not str or not _zone_exists(zone)):
                raise _GiveUp
            data["timezone"] = zone
        # These fields have no validators: for a value other than null, deserialize() is
        # their _deserialize(); the schema refuses a null identities, allows null upgrades.
        if "upgrades_until" in entry:
            until = entry["upgrades_until"]
            data["upgrades_until"] = (
                None if until is None else self.upgrades._deserialize(until, None, None)
            )
        if "identities" in entry:
            if entry["identities"] is None:
                raise _GiveUp
            data["identities"] = self.identities._deserialize(entry["identities"], None, None)
        if "licenses" in entry:
            data["licenses"] = [self._license(item) for item in _items(entry["licenses"])]
        if "subscriptions" in entry:
            data["subscriptions"] = [
                self._subscription(item) for item in _items(entry["subscriptions"])
            ]
        if "credit_purchases" in entry:
            data["credit_purchases"] = [
                self._purchase(item) for item in _items(entry["credit_purchases"])
            ]
        return _customer_record(data)

    def _license(self, item: Any) -> LicenseRecord:
        if type(item) is not dict or item.keys() != _LICENSE_KEYS:
            raise _GiveUp
        product = _choice(item["product"], self.sold)
        kind = _choice(item["kind"], self.sold[product])
        return LicenseRecord(
            ref=_ref(item["ref"]),
            product=product,
            kind=model.LicenseKind(kind),
            purchased_on=_day(item["purchased_on"]),
        )

    def _subscription(self, item: Any) -> SubscriptionRecord:
        if type(item) is not dict or item.keys() != _SUBSCRIPTION_KEYS:
            raise _GiveUp
        starts_on, ends_on = _day(item["starts_on"]), _day(item["ends_on"])
        if ends_on < starts_on:
            raise _GiveUp
        plan = _choice(item["plan"], self.plans)
        return SubscriptionRecord(plan=plan, starts_on=starts_on, ends_on=ends_on)

    def _purchase(self, item: Any) -> PurchaseRecord:
        if type(item) is not dict or item.keys() != _PURCHASE_KEYS:
            raise _GiveUp
        return PurchaseRecord(
            ref=_ref(item["ref"]),
            credits=self.credits._deserialize(item["credits"], None, None),
            purchased_on=_day(item["purchased_on"]),
        )


class _GiveUp(Exception):
    """The quick check leaves this entry to the schema."""


def _items(value: Any) -> list[Any]:
    if type(value) is not list:
        raise _GiveUp
    return value


def _text(value: Any) -> str:
    if type(value) is not str:
        raise _GiveUp
    return value


def _ref(value: Any) -> str:
    if type(value) is not str or not value.strip():
        raise _GiveUp
    return value


def _choice(value: Any, choices: Collection[str]) -> str:
    if type(value) is not str or value not in choices:
        raise _GiveUp
    return value


def _day(value: Any) -> date:
    day = _date(value) if type(value) is str else None
    if day is None:
        raise _GiveUp
    return day


# --------------------------------------------------------------------------------------------
# Importing

_SCALARS = ("name", "locale", "timezone", "upgrades_until", "upgrades_lifetime")


@dataclass(frozen=True, slots=True)
class _Movement:
    """A credit movement the import posts; ``path`` names its source in messages."""

    kind: ledger.EntryKind
    key: str
    amount: int
    reason: str
    path: str


@dataclass(frozen=True, slots=True)
class _Conflict:
    """Something in the file that stored data gives to another customer."""

    label: str
    path: str
    what: str
    owner_id: int


@dataclass
class _Work:
    """What the import does to one customer, worked out before anything is written."""

    record: CustomerRecord
    customer_id: int | None
    values: dict[str, Any]
    changed: bool = False
    replace_subscriptions: bool = False
    licenses: list[LicenseRecord] = field(default_factory=list)
    purchases: list[PurchaseRecord] = field(default_factory=list)
    identities: list[tuple[str, str]] = field(default_factory=list)
    movements: list[_Movement] = field(default_factory=list)


def import_customers(
    session: Session,
    records: Sequence[CustomerRecord],
    *,
    policy: Policy,
    at: datetime,
    actor: str = "import",
) -> ImportCounts:
    """Apply validated records in the caller's transaction (the module's update rules).

    Every check against stored data runs before the first write (a license or purchase ref,
    or a desk identity, held by another customer; a ledger key already used by a different
    movement), so a refused import has written nothing. The caller owns the transaction.

    :param at: when the import runs: ``created_at``/``updated_at`` and the ledger entries'
        time (aware).
    :param actor: recorded on the ledger entries (who ran the import).
    :raises CustomerImportError: a record conflicts with stored data; the message names the
        entry's email and the field.
    """
    works = _plan(session, records, policy)
    _drop_posted_movements(session, works)

    new = [work for work in works if work.customer_id is None]
    existing = [work for work in works if work.customer_id is not None]
    _insert_customers(session, new, at)  # Gives the new works their ids.
    changed = [work for work in existing if work.changed]
    _update_customers(session, changed, at)
    _replace_subscriptions(session, [work for work in works if work.replace_subscriptions])
    counts = ImportCounts(
        customers_created=len(new),
        customers_updated=len(changed),
        customers_unchanged=len(existing) - len(changed),
    )
    counts.licenses_added = _insert_children(
        session,
        licenses_table,
        [
            {
                "customer_id": work.customer_id,
                "ref": lic.ref,
                "product": lic.product,
                "kind": lic.kind.value,
                "purchased_on": lic.purchased_on,
                "ended_on": None,
            }
            for work in works
            for lic in work.licenses
        ],
    )
    counts.purchases_added = _insert_children(
        session,
        purchases_table,
        [
            {
                "customer_id": work.customer_id,
                "ref": p.ref,
                "credits": p.credits,
                "purchased_on": p.purchased_on,
            }
            for work in works
            for p in work.purchases
        ],
    )
    counts.identities_added = _insert_children(
        session,
        identities_table,
        [
            {"customer_id": work.customer_id, "desk": desk, "external_id": external_id}
            for work in works
            for desk, external_id in work.identities
        ],
    )
    counts.credits_granted = _post_new(session, new, at=at, actor=actor)
    counts.credits_granted += _post_existing(session, existing, at=at, actor=actor)
    return counts


def _plan(session: Session, records: Sequence[CustomerRecord], policy: Policy) -> list[_Work]:
    """Match records to stored customers and work out every change; refuse conflicts."""
    stored = _stored_customers(session, [record.email for record in records])
    license_owners = _owners(
        session, licenses_table, [lic.ref for record in records for lic in record.licenses]
    )
    purchase_owners = _owners(
        session, purchases_table, [p.ref for record in records for p in record.purchases]
    )
    identity_owners = _identity_owners(
        session, [(desk, xid) for record in records for desk, xid, _ in record.identities]
    )
    stored_subscriptions = _stored_subscriptions(
        session,
        [
            stored[record.email]["id"]
            for record in records
            if record.subscriptions is not None and record.email in stored
        ],
    )
    defaults: dict[str, Any] = {
        "name": "",
        "locale": policy.default_language,
        "timezone": None,
        "upgrades_until": None,
        "upgrades_lifetime": False,
    }
    credits_of: dict[tuple[str, model.LicenseKind], int] = {}

    works: list[_Work] = []
    conflicts: list[_Conflict] = []
    for record in records:
        row = stored.get(record.email)
        customer_id: int | None = None if row is None else row["id"]
        current = defaults if row is None else {key: row[key] for key in _SCALARS}
        work = _Work(record=record, customer_id=customer_id, values=current | dict(record.scalars))
        label = record.label

        for i, lic in enumerate(record.licenses):
            owner = license_owners.get(lic.ref)
            if owner is None:
                work.licenses.append(lic)
                product_kind = (lic.product, lic.kind)
                if product_kind not in credits_of:
                    probe = model.License(lic.ref, lic.product, lic.kind, lic.purchased_on)
                    credits_of[product_kind] = license_credits(probe, policy)
                credits = credits_of[product_kind]
                if credits:
                    work.movements.append(
                        _Movement(
                            kind=ledger.EntryKind.LICENSE_GRANT,
                            key=f"license:{lic.ref}",
                            amount=credits,
                            reason=f"license {lic.ref} ({lic.product}, {lic.kind.value})",
                            path=f"licenses[{i}].ref",
                        )
                    )
            elif owner != customer_id:
                conflicts.append(_Conflict(label, f"licenses[{i}].ref", lic.ref, owner))
        for i, purchase in enumerate(record.purchases):
            owner = purchase_owners.get(purchase.ref)
            if owner is None:
                work.purchases.append(purchase)
                work.movements.append(
                    _Movement(
                        kind=ledger.EntryKind.PURCHASE,
                        key=f"purchase:{purchase.ref}",
                        amount=purchase.credits,
                        reason=f"credit purchase {purchase.ref}",
                        path=f"credit_purchases[{i}].ref",
                    )
                )
            elif owner != customer_id:
                conflicts.append(
                    _Conflict(label, f"credit_purchases[{i}].ref", purchase.ref, owner)
                )
        for desk, external_id, path in record.identities:
            owner = identity_owners.get((desk, external_id))
            if owner is None:
                work.identities.append((desk, external_id))
            elif owner != customer_id:
                conflicts.append(_Conflict(label, path, f"{desk} user {external_id}", owner))

        if record.subscriptions is not None:
            wanted = sorted((s.plan, s.starts_on, s.ends_on) for s in record.subscriptions)
            have = [] if customer_id is None else stored_subscriptions.get(customer_id, [])
            work.replace_subscriptions = wanted != have
        if customer_id is not None:
            work.changed = (
                work.values != current
                or work.replace_subscriptions
                or bool(work.licenses or work.purchases or work.identities)
            )
        works.append(work)
    if conflicts:
        emails = _emails_of(session, {conflict.owner_id for conflict in conflicts})
        raise CustomerImportError(
            _summary(
                [
                    f"{c.label}: {c.path}: {c.what} belongs to another customer"
                    f" ({emails.get(c.owner_id, c.owner_id)})"
                    for c in conflicts
                ]
            )
        )
    return works


def _drop_posted_movements(session: Session, works: list[_Work]) -> None:
    """Leave out movements whose ledger key is taken by the same movement; refuse others.

    A license or purchase whose row is new normally has no entry yet; a taken key means the
    ledger already holds it (posted by hand, say). The same customer, kind and amount: already
    granted, skip it. Anything else: one key would name two movements, so refuse.
    """
    taken = _taken_keys(session, [m.key for work in works for m in work.movements])
    if not taken:
        return
    problems: list[str] = []
    for work in works:
        keep: list[_Movement] = []
        for movement in work.movements:
            entry = taken.get(movement.key)
            if entry is None:
                keep.append(movement)
            elif entry != (work.customer_id, movement.kind.value, movement.amount):
                problems.append(
                    f"{work.record.label}: {movement.path}: the ledger key {movement.key} is"
                    " already used by a different movement"
                )
        work.movements = keep
    if problems:
        raise CustomerImportError(_summary(problems))


def _insert_customers(session: Session, works: list[_Work], at: datetime) -> None:
    """Insert new customers with their balance (the sum of their movements); set their ids."""
    if not works:
        return
    c = customers_table.c
    before = session.scalar(select(func.coalesce(func.max(c.id), 0))) or 0
    _bulk_insert(
        session,
        customers_table,
        [
            {
                "email": work.record.email,
                **work.values,
                "balance": sum(m.amount for m in work.movements),
                "erased_at": None,
                "created_at": at,
                "updated_at": at,
            }
            for work in works
        ],
    )
    # The new rows are those above the largest id before the insert (another transaction's
    # rows in that range, if any, are not in the map and are skipped).
    by_email = {work.record.email: work for work in works}
    for customer_id, email in session.execute(select(c.id, c.email).where(c.id > before)):
        work = by_email.get(email)
        if work is not None:
            work.customer_id = customer_id
    missing = [work.record.label for work in works if work.customer_id is None]
    if missing:  # pragma: no cover - would mean the insert lost rows
        raise CustomerImportError(f"{missing[0]}: the new customer's row was not found")


def _update_customers(session: Session, works: list[_Work], at: datetime) -> None:
    if not works:
        return
    stmt = update(customers_table).where(customers_table.c.id == bindparam("customer_id"))
    rows = [{"customer_id": work.customer_id, **work.values, "updated_at": at} for work in works]
    session.execute(stmt, rows)


def _replace_subscriptions(session: Session, works: list[_Work]) -> None:
    existing = [work.customer_id for work in works if work.customer_id is not None]
    for chunk in _chunks(existing):
        session.execute(
            delete(subscriptions_table).where(subscriptions_table.c.customer_id.in_(chunk))
        )
    _insert_children(
        session,
        subscriptions_table,
        [
            {
                "customer_id": work.customer_id,
                "plan": s.plan,
                "starts_on": s.starts_on,
                "ends_on": s.ends_on,
            }
            for work in works
            for s in work.record.subscriptions or ()
        ],
    )


def _insert_children(session: Session, table: Table, rows: list[dict[str, Any]]) -> int:
    _bulk_insert(session, table, rows)
    return len(rows)


def _post_new(session: Session, works: list[_Work], *, at: datetime, actor: str) -> int:
    """The ledger entries of new customers, in bulk.

    A new customer's row was inserted with the sum of these movements as its balance, and no
    other transaction can move credits of a customer that did not exist before this one, so
    the entries are written directly with their running ``balance_after``: the rows
    :func:`connector.ledger.post` would write one at a time (a lock and three statements each).
    """
    rows: list[dict[str, Any]] = []
    for work in works:
        running = 0
        for movement in work.movements:
            running += movement.amount
            rows.append(
                {
                    "customer_id": work.customer_id,
                    "at": at,
                    "kind": movement.kind.value,
                    "amount": movement.amount,
                    "balance_after": running,
                    "ticket": None,
                    "actor": actor,
                    "source": ledger.Source.IMPORT.value,
                    "reason": movement.reason,
                    "key": movement.key,
                    "reverses_id": None,
                }
            )
    _bulk_insert(session, ledger_table, rows)
    return sum(row["amount"] for row in rows)


def _post_existing(session: Session, works: list[_Work], *, at: datetime, actor: str) -> int:
    """Existing customers' movements, one :func:`connector.ledger.post` each (row lock)."""
    total = 0
    for work in works:
        for movement in work.movements:
            assert work.customer_id is not None
            ledger.post(
                session,
                customer_id=work.customer_id,
                kind=movement.kind,
                amount=movement.amount,
                key=movement.key,
                actor=actor,
                source=ledger.Source.IMPORT,
                reason=movement.reason,
                at=at,
            )
            total += movement.amount
    return total


def _bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """``INSERT`` ``rows`` (dicts with the same keys) in one go, in the session's transaction.

    SQLite: one DBAPI ``executemany`` of SQLAlchemy's compiled statement. PostgreSQL:
    ``COPY ... FROM STDIN`` (psycopg), an order of magnitude faster than row-by-row inserts.
    Values go through the column types' bind processors (UTC timestamps, SQLite dates), once
    per distinct value; SQLAlchemy's per-row parameter handling, which costs more than the
    insert itself at this volume, is skipped.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    names = list(rows[0])
    processors: dict[str, Callable[[Any], Any]] = {}
    for name in names:
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = functools.lru_cache(maxsize=4096)(process)
    # Column by column: zip, map and the caches run at C speed, a Python loop per value would
    # not.
    columns = [tuple(map(operator.itemgetter(name), rows)) for name in names]
    for index, name in enumerate(names):
        if name in processors:
            columns[index] = tuple(map(processors[name], columns[index]))
    values = list(zip(*columns, strict=True))
    if dialect.name == "postgresql":
        quote = dialect.identifier_preparer.quote
        listed = ", ".join(quote(name) for name in names)
        statement = f"COPY {quote(table.name)} ({listed}) FROM STDIN"
        driver = connection.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for value in values:
                copy.write_row(value)
        return
    compiled = insert(table).compile(dialect=dialect, column_keys=names)
    # The compiled statement must take exactly these columns, in this order (no defaults
    # added by SQLAlchemy), since the rows are passed positionally.
    if compiled.positiontup != names:
        raise RuntimeError(f"unexpected parameters for {table.name}: {compiled.positiontup}")
    connection.exec_driver_sql(compiled.string, values)


# Lookups of stored rows. A lookup of many keys reads the whole table once (one query); a
# lookup of few keys in a large table asks for them, CHUNK keys per query.


def _chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _rows(
    session: Session,
    table: Table,
    query: Select[Any],
    key: Any,
    keys: Collection[Any],
    *,
    scan: bool = True,
) -> Iterator[Row[Any]]:
    """Rows of ``query`` (over ``table``) whose ``key`` is in ``keys``, and maybe others.

    :param scan: read the whole table when it has at most four rows per key wanted.
    """
    if not keys:
        return
    stored = session.scalar(select(func.count()).select_from(table)) or 0
    if not stored:
        return
    if scan and stored <= 4 * len(keys):
        yield from session.execute(query)
        return
    for chunk in _chunks(keys):
        yield from session.execute(query.where(key.in_(chunk)))


def _stored_customers(session: Session, emails: Collection[str]) -> dict[str, dict[str, Any]]:
    c = customers_table.c
    query = select(c.id, c.email, *(c[key] for key in _SCALARS))
    wanted = set(emails)
    return {
        row.email: row._asdict()
        for row in _rows(session, customers_table, query, c.email, wanted)
        if row.email in wanted
    }


def _owners(session: Session, table: Table, refs: Collection[str]) -> dict[str, int]:
    query = select(table.c.ref, table.c.customer_id)
    return {ref: owner for ref, owner in _rows(session, table, query, table.c.ref, refs)}


def _identity_owners(
    session: Session, pairs: Collection[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    i = identities_table.c
    query = select(i.desk, i.external_id, i.customer_id)
    key = tuple_(i.desk, i.external_id)
    return {
        (desk, external_id): owner
        for desk, external_id, owner in _rows(session, identities_table, query, key, pairs)
    }


def _stored_subscriptions(
    session: Session, customer_ids: Collection[int]
) -> dict[int, list[tuple[str, date, date]]]:
    s = subscriptions_table.c
    query = select(s.customer_id, s.plan, s.starts_on, s.ends_on)
    found: dict[int, list[tuple[str, date, date]]] = defaultdict(list)
    for customer_id, plan, starts_on, ends_on in _rows(
        session, subscriptions_table, query, s.customer_id, customer_ids
    ):
        found[customer_id].append((plan, starts_on, ends_on))
    for subscriptions in found.values():
        subscriptions.sort()
    return found


def _taken_keys(session: Session, keys: Collection[str]) -> dict[str, tuple[int, str, int]]:
    e = ledger_table.c
    query = select(e.key, e.customer_id, e.kind, e.amount)
    # Never a scan: the ledger grows with every charge, and most of it is not the import's.
    rows = _rows(session, ledger_table, query, e.key, keys, scan=False)
    return {key: (customer_id, kind, amount) for key, customer_id, kind, amount in rows}


def _emails_of(session: Session, customer_ids: Collection[int]) -> dict[int, str]:
    c = customers_table.c
    found: dict[int, str] = {}
    for chunk in _chunks(customer_ids):
        for customer_id, email in session.execute(select(c.id, c.email).where(c.id.in_(chunk))):
            found[customer_id] = email
    return found


def import_file(
    database: Database,
    path: str | Path,
    *,
    policy: Policy,
    desks: Collection[str],
    at: datetime,
    actor: str = "import",
) -> ImportCounts:
    """Read, validate and import a file in one transaction (``customers import``).

    :raises CustomerImportError: the file is unreadable or invalid, or conflicts with stored
        data; nothing was imported.
    """
    with paused_gc():
        records = validate_entries(read_import_file(path), policy=policy, desks=desks)

        def run(session: Session) -> ImportCounts:
            return import_customers(session, records, policy=policy, at=at, actor=actor)

        return database.run_in_transaction(run)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block.

    An import allocates millions of objects that all live until it ends; every automatic
    collection would walk them again, which doubles the import's time. Nothing here creates
    reference cycles worth collecting early.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --------------------------------------------------------------------------------------------
# Loading and matching


# The reads below run for every event the worker decides: each statement is built once, with
# bound parameters, on the tables (Core, no ORM entity), so a call costs SQLAlchemy a cache
# lookup and the database a round trip.
_CUSTOMERS = Customer.__table__
_IDENTITIES = Identity.__table__
_LICENSES = License.__table__
_SUBSCRIPTIONS = Subscription.__table__

# A customer's licenses and subscriptions: the licenses first by purchase date, then the
# subscriptions by start date.
_HOLDINGS = union_all(
    select(
        literal("license", String).label("what"),
        _LICENSES.c.ref.label("ref_or_plan"),
        _LICENSES.c.product,
        _LICENSES.c.kind,
        _LICENSES.c.purchased_on.label("starts_on"),
        _LICENSES.c.ended_on.label("ends_on"),
        _LICENSES.c.id.label("holding_id"),
    ).where(_LICENSES.c.customer_id == bindparam("customer_id")),
    select(
        literal("subscription", String),
        _SUBSCRIPTIONS.c.plan,
        null().cast(String),
        null().cast(String),
        _SUBSCRIPTIONS.c.starts_on,
        _SUBSCRIPTIONS.c.ends_on,
        _SUBSCRIPTIONS.c.id,
    ).where(_SUBSCRIPTIONS.c.customer_id == bindparam("customer_id")),
).subquery("holdings")
# The customer with their holdings in one statement (one round trip, not two): a row per
# holding, the customer's columns repeated on each, or one row with no holding.
_CUSTOMER_WITH_HOLDINGS = (
    select(
        _CUSTOMERS.c.email,
        _CUSTOMERS.c.name,
        _CUSTOMERS.c.locale,
        _CUSTOMERS.c.timezone,
        _CUSTOMERS.c.upgrades_until,
        _CUSTOMERS.c.upgrades_lifetime,
        _HOLDINGS,
    )
    .select_from(_CUSTOMERS.outerjoin(_HOLDINGS, true()))
    .where(_CUSTOMERS.c.id == bindparam("customer_id"))
    .order_by(_HOLDINGS.c.what, _HOLDINGS.c.starts_on, _HOLDINGS.c.holding_id)
)
# The customer a requester is, in one statement: by their identity in the desk first, else by
# email (``rank`` orders the two).
_BY_IDENTITY = (
    select(_IDENTITIES.c.customer_id, literal(0).label("rank"))
    .join(_CUSTOMERS, _CUSTOMERS.c.id == _IDENTITIES.c.customer_id)
    .where(
        _IDENTITIES.c.desk == bindparam("desk"),
        _IDENTITIES.c.external_id == bindparam("external_id"),
        _CUSTOMERS.c.erased_at.is_(None),
    )
)
_BY_EMAIL = select(_CUSTOMERS.c.id, literal(1)).where(
    _CUSTOMERS.c.email == bindparam("email"), _CUSTOMERS.c.erased_at.is_(None)
)
_BY_IDENTITY_OR_EMAIL = union_all(_BY_IDENTITY, _BY_EMAIL).order_by("rank").limit(1)


def _core(session: Session, flush: bool) -> Any:
    """The session's connection, its pending changes flushed first unless ``flush`` is off
    (the reads below bypass the ORM's autoflush)."""
    if flush:
        session.flush()
    return session.connection()


def load_customer(session: Session, customer_id: int, *, flush: bool = True) -> model.Customer:
    """The customer with ``customer_id`` as the rules see it: licenses by purchase date,
    subscriptions by start date.

    :param flush: send the session's pending changes first; a caller whose pending changes
        touch no customer, license or subscription may skip it.

    :raises UnknownCustomerError: no customer has this id.
    """
    key = {"customer_id": customer_id}
    rows = _core(session, flush).execute(_CUSTOMER_WITH_HOLDINGS, key).all()
    if not rows:
        raise UnknownCustomerError(customer_id)
    row = rows[0]
    licenses = [h for h in rows if h.what == "license"]
    subscriptions = [h for h in rows if h.what == "subscription"]
    return model.Customer(
        id=customer_id,
        email=row.email,
        name=row.name,
        locale=row.locale,
        timezone=row.timezone,
        licenses=tuple(
            model.License(
                ref=lic.ref_or_plan,
                product=lic.product,
                kind=model.LicenseKind(lic.kind),
                purchased_on=lic.starts_on,
                ended_on=lic.ends_on,
            )
            for lic in licenses
        ),
        subscriptions=tuple(
            model.Subscription(plan=s.ref_or_plan, starts_on=s.starts_on, ends_on=s.ends_on)
            for s in subscriptions
        ),
        upgrades_until=row.upgrades_until,
        upgrades_lifetime=bool(row.upgrades_lifetime),
    )


def find_customer(
    session: Session,
    *,
    desk: str | None = None,
    external_id: str | int | None = None,
    email: str | None = None,
    flush: bool = True,
) -> int | None:
    """The id of the customer a requester is: by their user id in ``desk``, else by email.

    The email matches case-insensitively. Erased customers are never found.

    :param flush: as for :func:`load_customer`, with customers and identities.

    :returns: the customer's id, or ``None`` for an unknown requester.
    """
    external = str(external_id).strip() if desk and external_id is not None else ""
    address = normalize_email(email) if email and email.strip() else ""
    if not (external or address):
        return None
    params = {"desk": desk, "external_id": external or None, "email": address or None}
    found = _core(session, flush).execute(_BY_IDENTITY_OR_EMAIL, params).scalar()
    return None if found is None else int(found)
