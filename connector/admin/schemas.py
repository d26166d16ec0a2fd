"""marshmallow schemas of the admin API: what requests may carry, and what answers hold.

Request schemas validate at the edge (a bad value is a 422 naming the field); response
schemas dump the dicts :mod:`connector.admin.service` returns and document them in the
generated OpenAPI document. Text fields refuse NUL characters, which PostgreSQL cannot store;
ids are bounded to the database's 32-bit integers. Error answers are flask-smorest's
:class:`ErrorSchema` (``{"code", "status", "message", "errors"}``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_smorest.error_handler import ErrorSchema as ErrorSchema
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from connector.admin.service import DEFAULT_PER_PAGE, MAX_PER_PAGE, OUTBOX_STATES

#: The largest id or amount the database stores (32-bit INTEGER).
MAX_INT = 2**31 - 1
#: The largest page number asked for (beyond it every list is empty anyway).
MAX_PAGE = 1_000_000


def _no_nul(value: str) -> None:
    if "\x00" in value:
        raise ValidationError("Must not contain NUL characters.")


class Text(fields.String):
    """A string without NUL characters, at most ``max_length`` long."""

    def __init__(self, *, max_length: int = 1000, **kwargs: Any) -> None:
        validators: list[Callable[[Any], Any]] = [validate.Length(max=max_length), _no_nul]
        super().__init__(validate=validators, **kwargs)


class _Request(Schema):
    class Meta:
        unknown = RAISE


class _Query(Schema):
    class Meta:
        unknown = EXCLUDE


class PageQuery(_Query):
    page = fields.Integer(
        load_default=1, validate=validate.Range(min=1, max=MAX_PAGE), metadata={"example": 1}
    )
    per_page = fields.Integer(
        load_default=DEFAULT_PER_PAGE, validate=validate.Range(min=1, max=MAX_PER_PAGE)
    )


class CustomerSearchQuery(PageQuery):
    q = Text(load_default="", max_length=200, metadata={"description": "email or name part"})
    include_erased = fields.Boolean(load_default=False)


class TicketQuery(PageQuery):
    customer_id = fields.Integer(validate=validate.Range(min=1, max=MAX_INT))
    desk = Text(max_length=100)
    external_id = Text(max_length=200)


class DeliveryQuery(PageQuery):
    desk = Text(max_length=100)
    outcome = fields.String(
        validate=validate.OneOf(("accepted", "duplicate", "ignored", "refused", "failed"))
    )


class OutboxQuery(PageQuery):
    state = fields.String(load_default="pending", validate=validate.OneOf(OUTBOX_STATES))
    desk = Text(max_length=100)


class AuditQuery(PageQuery):
    target = Text(max_length=200, metadata={"example": "customer:12"})


class DaysQuery(_Query):
    days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=366))


class LedgerExportQuery(_Query):
    customer_id = fields.Integer(validate=validate.Range(min=1, max=MAX_INT))
    since = fields.AwareDateTime(metadata={"description": "entries at or after (ISO 8601)"})
    until = fields.AwareDateTime(metadata={"description": "entries before (ISO 8601)"})


class GrantRequest(_Request):
    credits = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_INT)
    )
    reason = Text(required=True)
    key = Text(
        load_default=None,
        allow_none=True,
        max_length=200,
        metadata={"description": "idempotency key: the same key again grants nothing more"},
    )


class AdjustmentRequest(_Request):
    amount = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=-MAX_INT, max=MAX_INT),
        metadata={"description": "signed credits, not zero"},
    )
    reason = Text(required=True)
    key = Text(load_default=None, allow_none=True, max_length=200)


class ReverseRequest(_Request):
    reason = Text(required=True)


class EndRequest(_Request):
    last_day = fields.Date(
        load_default=None,
        allow_none=True,
        metadata={"description": "the last day included (default: today, support zone)"},
    )


class ImportRequest(_Request):
    customers = fields.List(
        fields.Raw(),
        required=True,
        metadata={"description": "entries as in the CLI's import file"},
    )


# --------------------------------------------------------------------------------------------
# Answers


class _Answer(Schema):
    """An answer's fields, in the order declared (marshmallow 3 keeps it)."""


class PageSchema(_Answer):
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()
    pages = fields.Integer()


class CustomerSchema(_Answer):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    locale = fields.String()
    timezone = fields.String(allow_none=True)
    balance = fields.Integer()
    erased_at = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)


class CustomerPage(PageSchema):
    items = fields.List(fields.Nested(CustomerSchema))


class LicenseSchema(_Answer):
    id = fields.Integer()
    ref = fields.String()
    product = fields.String()
    kind = fields.String()
    purchased_on = fields.String()
    ended_on = fields.String(allow_none=True)


class SubscriptionSchema(_Answer):
    id = fields.Integer()
    plan = fields.String()
    starts_on = fields.String()
    ends_on = fields.String()


class TicketSchema(_Answer):
    id = fields.Integer()
    desk = fields.String()
    external_id = fields.String()
    key = fields.String()
    customer_id = fields.Integer(allow_none=True)
    requester_email = fields.String(allow_none=True)
    subject = fields.String()
    status = fields.String(allow_none=True)
    plan = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    category_source = fields.String(allow_none=True)
    credits_estimated = fields.Integer(allow_none=True)
    credits_charged = fields.Integer()
    approval_state = fields.String()
    approval_amount = fields.Integer(allow_none=True)
    created_at = fields.String(allow_none=True)
    first_reply_due = fields.String(allow_none=True)
    first_agent_reply_at = fields.String(allow_none=True)


class TicketPage(PageSchema):
    items = fields.List(fields.Nested(TicketSchema))


class CustomerDetailSchema(CustomerSchema):
    upgrades_until = fields.String(allow_none=True)
    upgrades_lifetime = fields.Boolean()
    has_upgrades_today = fields.Boolean()
    today = fields.String()
    plan = fields.Dict(metadata={"description": "key, title, reason, reason_ru"})
    quota = fields.Dict(metadata={"description": "kind, period, used, limit"})
    entitlements = fields.List(fields.Dict())
    licenses = fields.List(fields.Nested(LicenseSchema))
    subscriptions = fields.List(fields.Nested(SubscriptionSchema))
    credit_purchases = fields.List(fields.Dict())
    identities = fields.List(fields.Dict())
    tickets = fields.List(fields.Nested(TicketSchema))
    tickets_total = fields.Integer()


class EntrySchema(_Answer):
    id = fields.Integer()
    at = fields.String()
    kind = fields.String()
    amount = fields.Integer()
    balance_after = fields.Integer()
    ticket = fields.String(allow_none=True)
    actor = fields.String()
    source = fields.String()
    reason = fields.String()
    key = fields.String()
    reverses_id = fields.Integer(allow_none=True)


class EntryPage(PageSchema):
    items = fields.List(fields.Nested(EntrySchema))


class ImportCountsSchema(_Answer):
    customers_created = fields.Integer()
    customers_updated = fields.Integer()
    customers_unchanged = fields.Integer()
    licenses_added = fields.Integer()
    purchases_added = fields.Integer()
    identities_added = fields.Integer()
    credits_granted = fields.Integer()


class ErasureSchema(_Answer):
    id = fields.Integer()
    erased_at = fields.String()
    balance = fields.Integer()
    identities = fields.Integer()
    cached_requesters = fields.Integer()
    tickets = fields.Integer()
    events = fields.Integer()
    deliveries = fields.Integer()
    messages = fields.Integer()
    cancelled = fields.Integer()
    ledger_reasons = fields.Integer()


class PersonalDataSchema(_Answer):
    customer = fields.Dict()
    identities = fields.List(fields.Dict())
    licenses = fields.List(fields.Dict())
    subscriptions = fields.List(fields.Dict())
    credit_purchases = fields.List(fields.Dict())
    ledger = fields.List(fields.Dict())
    tickets = fields.List(fields.Dict())
    messages = fields.List(fields.Dict())
    requester_cache = fields.List(fields.Dict())
    expiry_notices = fields.List(fields.Dict())


class EventSchema(_Answer):
    id = fields.Integer()
    desk = fields.String()
    delivery_key = fields.String()
    delivery_id = fields.Integer(allow_none=True)
    ticket_key = fields.String()
    type = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    error = fields.String(allow_none=True)
    decision = fields.Dict(allow_none=True)
    created_at = fields.String(allow_none=True)
    processed_at = fields.String(allow_none=True)


class OutboxSchema(_Answer):
    id = fields.Integer()
    desk = fields.String()
    ticket_id = fields.String()
    ticket_key = fields.String()
    event_id = fields.Integer(allow_none=True)
    kind = fields.String()
    payload = fields.Dict()
    marker = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    unclear = fields.Boolean()
    next_attempt_at = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)
    sent_at = fields.String(allow_none=True)


class OutboxDetailSchema(OutboxSchema):
    ticket = fields.Integer(allow_none=True, metadata={"description": "the ticket's id here"})


class OutboxPage(PageSchema):
    items = fields.List(fields.Nested(OutboxSchema))


class StepSchema(_Answer):
    step = fields.String()
    title = fields.String()
    outcome = fields.String()
    detail = fields.String()


class TicketDetailSchema(TicketSchema):
    customer = fields.Dict(allow_none=True)
    approval = fields.Dict()
    events = fields.List(fields.Nested(EventSchema))
    ledger = fields.List(fields.Nested(EntrySchema))
    outbox = fields.List(fields.Nested(OutboxSchema))
    status_history = fields.List(fields.Dict())
    explanation = fields.List(fields.Nested(StepSchema))


class DeliverySchema(_Answer):
    id = fields.Integer()
    desk = fields.String()
    received_at = fields.String(allow_none=True)
    remote_ip = fields.String(allow_none=True)
    content_type = fields.String(allow_none=True)
    delivery_key = fields.String(allow_none=True)
    status_code = fields.Integer(allow_none=True)
    outcome = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    size = fields.Integer()


class DeliveryPage(PageSchema):
    items = fields.List(fields.Nested(DeliverySchema))


class VerificationSchema(_Answer):
    checked = fields.Boolean()
    valid = fields.Boolean(allow_none=True)
    message = fields.String()


class DeliveryDetailSchema(DeliverySchema):
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    body = fields.String()
    verification = fields.Nested(VerificationSchema)
    events = fields.List(fields.Nested(EventSchema))


class ReplaySchema(_Answer):
    delivery_id = fields.Integer()
    status_code = fields.Integer(metadata={"description": "the intake's answer to it now"})
    result = fields.Dict()
    events = fields.List(fields.Integer())


class DailyCreditsSchema(_Answer):
    day = fields.String()
    charged = fields.Integer()
    refunded = fields.Integer()


class FirstReplySchema(_Answer):
    plan = fields.String()
    met = fields.Integer()
    missed = fields.Integer()
    open = fields.Integer()
    total = fields.Integer()


class AuditSchema(_Answer):
    id = fields.Integer()
    at = fields.String()
    actor = fields.String()
    action = fields.String()
    target = fields.String()
    details = fields.Dict()


class AuditPage(PageSchema):
    items = fields.List(fields.Nested(AuditSchema))
