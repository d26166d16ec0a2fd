"""Zammad: verify a delivery, key it, and turn it into a :class:`~rules.events.TicketEvent`.

Zammad posts from triggers (``app/jobs/trigger_webhook_job.rb``); the body is one of two
shapes, told apart by their content (schemas.py describes both):

* the connector's **custom payload** (``"care_connector": 1``, ``"event": "created"`` or
  ``"updated"``), which install.py puts on the connector's webhooks; another ``event`` value
  is answered "ignored";
* Zammad's **default payload** ``{"ticket": ..., "article": ...}``, for a webhook an admin
  set up without a custom body.

Which event it is: ``created`` when the custom payload says so, or when the default
payload's article is the ticket's first; otherwise an update, ``article``
(:data:`~rules.events.EventType.COMMENT_ADDED`) when the update added an article, else
``updated``.

Signatures (``lib/user_agent.rb``, admin docs ``manage/webhook/add.rst``): with an "HMAC
SHA1 Signature Token" set, Zammad sends ``X-Hub-Signature: sha1=<hex HMAC-SHA1(token, body)>``
over the raw body. There is no timestamp, so no replay window: a replayed delivery is caught
only by its delivery key. Zammad's ``X-Zammad-Delivery`` is the job id, kept across the job's
retries (10, 20, 30, 40 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests

from adapters.base import (
    HeaderSource,
    HelpdeskAdapter,
    HelpdeskClient,
    load_json_object,
    load_schema,
    normalize_headers,
    schema_instance,
)
from adapters.errors import (
    AnomalousPayloadError,
    UnsupportedEventError,
)
from adapters.fields import blank_to_none, short_repr
from adapters.signing import body_sha256
from adapters.zammad import install as installer
from adapters.zammad.client import ZammadClient
from adapters.zammad.schemas import (
    CUSTOM_EVENTS,
    EVENT_TYPES,
    STATUSES,
    CustomBodySchema,
    DefaultBodySchema,
    drop_placeholders,
    field_text,
    html_to_text,
)
from rules.events import Comment, EventType, TicketEvent, TicketStatus

__all__ = ["ZammadAdapter"]

SIGNATURE_HEADER = "x-hub-signature"
DELIVERY_HEADER = "x-zammad-delivery"
#: Longest vendor id taken as a delivery key; anything longer is keyed by the body's hash.
_MAX_KEY = 200


def _status(value: str | None) -> TicketStatus:
    if value is None:
        return TicketStatus.UNKNOWN
    return STATUSES.get(" ".join(value.split()).lower(), TicketStatus.UNKNOWN)


def _body_text(article: Mapping[str, Any]) -> str:
    body = article.get("body") or ""
    content_type = (article.get("content_type") or "").lower()
    return html_to_text(body) if "html" in content_type else body.strip()


class ZammadAdapter(HelpdeskAdapter):
    """Zammad: trigger webhooks in (custom or default payload), the REST client, and
    ``webhooks install``."""

    key = "zammad"
    display_name = "Zammad"
    event_types = EVENT_TYPES

    # ----------------------------------------------------------------------------------------
    # Verification and keys

    def verify(self, headers: HeaderSource, body: bytes, *, now: datetime) -> None:
        """Check ``X-Hub-Signature`` against every configured secret (a rotation lists two).

        :param now: unused: Zammad signs no timestamp.
        :raises MissingSecretError: no secret configured.
        :raises SignatureError: the header missing or not ``sha1=<hex>``, or no secret
            matching.
        """
        self.verify_hex_hmac(
            headers,
            body,
            header="X-Hub-Signature",
            algo="sha1",
            hint="set the webhook's HMAC SHA1 signature token",
        )

    def delivery_key(self, headers: HeaderSource, body: bytes) -> str:
        """The ``X-Zammad-Delivery`` header (the job id, the same on each retry), else the
        SHA-256 of the body."""
        delivery = normalize_headers(headers).get(DELIVERY_HEADER, "").strip()
        # A key is stored as text: one with control characters (NUL) is not taken.
        if 0 < len(delivery) <= _MAX_KEY and delivery.isprintable():
            return delivery
        return body_sha256(body)

    # ----------------------------------------------------------------------------------------
    # Parsing

    def parse(self, headers: HeaderSource, body: bytes, *, delivery_key: str) -> list[TicketEvent]:
        """One :class:`TicketEvent` per delivery (a trigger posts once per ticket change).

        :raises UnsupportedEventError: a custom payload whose ``event`` the connector does
            not handle.
        :raises AnomalousPayloadError: anything that does not parse, with the failing paths.
        """
        data = load_json_object(body, adapter=self.key)
        if "care_connector" in data:
            event = data.get("event")
            if isinstance(event, str) and event.strip() and event not in CUSTOM_EVENTS:
                raise UnsupportedEventError(
                    f"Zammad event {short_repr(event)} is not handled",
                    adapter=self.key,
                    event_type=event,
                )
            return [self._from_custom(data, delivery_key)]
        if "ticket" in data:
            return [self._from_default(data, delivery_key)]
        if set(data) == {"error"}:
            # Zammad sends this when the rendered custom payload is not valid JSON.
            raise AnomalousPayloadError(
                f"Zammad could not render the webhook payload: {short_repr(data['error'])}",
                adapter=self.key,
                errors={"error": ["Zammad's rendering error"]},
            )
        raise AnomalousPayloadError(
            "neither Zammad's trigger payload (\"ticket\") nor the connector's "
            '("care_connector"); install the webhook with `care-connector webhooks install`',
            adapter=self.key,
            errors={
                "ticket": ["expected Zammad's default trigger payload"],
                "care_connector": ["expected the connector's payload"],
            },
        )

    def _from_custom(self, data: dict[str, Any], delivery_key: str) -> TicketEvent:
        loaded = load_schema(
            schema_instance(CustomBodySchema),
            drop_placeholders(data),
            adapter=self.key,
            what="connector payload",
        )
        ticket: dict[str, Any] = loaded["ticket"]
        customer: dict[str, Any] = loaded["customer"] or {}
        article: dict[str, Any] = loaded["article"] or {}
        values: Mapping[str, str] = ticket["field_values"] or {}
        fields = {
            name: values[str(attr)]
            for name, attr in self.desk.fields.items()
            if values.get(str(attr))
        }
        has_article = article.get("id") is not None
        if loaded["event"] == "created":
            kind = EventType.TICKET_CREATED
        else:
            kind = EventType.COMMENT_ADDED if has_article else EventType.TICKET_UPDATED
        return self._event(
            kind,
            ticket,
            customer,
            article if has_article else None,
            fields,
            delivery_key,
            raw=data,
        )

    def _from_default(self, data: dict[str, Any], delivery_key: str) -> TicketEvent:
        loaded = load_schema(
            schema_instance(DefaultBodySchema),
            data,
            adapter=self.key,
            what="Zammad trigger payload",
        )
        ticket: dict[str, Any] = loaded["ticket"]
        customer: dict[str, Any] = ticket["customer"] or {}
        article: dict[str, Any] = loaded["article"] or {}
        raw_ticket = data["ticket"]
        fields: dict[str, str] = {}
        errors: dict[str, list[str]] = {}
        for name, attr in self.desk.fields.items():
            value = raw_ticket.get(str(attr))
            text = field_text(value)
            if text is None and value is not None:
                errors[f"ticket.{attr}"] = ["Not a valid field value."]
            elif text:
                fields[name] = text
        if errors:
            path = next(iter(errors))
            raise AnomalousPayloadError(
                f"Zammad trigger payload: {path}: Not a valid field value.",
                adapter=self.key,
                errors=errors,
            )
        article_id = article.get("id")
        if article_id is None:
            kind = EventType.TICKET_UPDATED
        else:
            ids: tuple[str, ...] = ticket["article_ids"] or ()
            first = min(ids, key=_id_order) if ids else None
            if first is not None:
                is_first = article_id == first
            else:
                is_first = ticket["article_count"] == 1
            kind = EventType.TICKET_CREATED if is_first else EventType.COMMENT_ADDED
        if customer.get("id") is None:
            customer = {**customer, "id": ticket["customer_id"]}
        return self._event(
            kind,
            ticket,
            customer,
            article if article_id is not None else None,
            fields,
            delivery_key,
            raw=data,
            via=ticket["create_article_type"] if kind is EventType.TICKET_CREATED else None,
        )

    def _event(
        self,
        kind: EventType,
        ticket: Mapping[str, Any],
        customer: Mapping[str, Any],
        article: Mapping[str, Any] | None,
        fields: Mapping[str, str],
        delivery_key: str,
        *,
        raw: Mapping[str, object],
        via: str | None = None,
    ) -> TicketEvent:
        requester_id: str | None = ticket["customer_id"] or customer.get("id")
        names = [blank_to_none(customer.get("firstname")), blank_to_none(customer.get("lastname"))]
        comment: Comment | None = None
        description = ""
        actor: str | None = ticket["updated_by_id"]
        occurred = ticket["updated_at"] or ticket["created_at"]
        if kind is EventType.TICKET_CREATED:
            actor = ticket["created_by_id"] or actor
            occurred = ticket["created_at"] or occurred
            if article is not None:
                description = _body_text(article)
                actor = article.get("created_by_id") or actor
                via = via or blank_to_none(article.get("type"))
        elif kind is EventType.COMMENT_ADDED and article is not None:
            author = article.get("origin_by_id") or article.get("created_by_id")
            sender = (article.get("sender") or "").strip().lower()
            by_requester = sender == "customer" or (author is not None and author == requester_id)
            internal = article.get("internal")
            comment = Comment(
                body=_body_text(article),
                # A customer's article is public; an unknown flag is read that way.
                public=by_requester if internal is None else not internal,
                author_id=author,
                by_requester=by_requester,
            )
            # The loop guard's author: who wrote it, even on someone's behalf.
            actor = article.get("created_by_id") or actor
            occurred = article.get("created_at") or occurred
            via = blank_to_none(article.get("type"))
        return TicketEvent(
            desk=self.desk.key,
            delivery_key=delivery_key,
            type=kind,
            ticket_id=ticket["id"],
            occurred_at=occurred,
            ticket_created_at=ticket["created_at"],
            subject=(ticket["title"] or "").strip(),
            description=description,
            requester_id=requester_id,
            requester_email=blank_to_none(customer.get("email")),
            requester_name=" ".join(n for n in names if n) or None,
            actor_id=actor,
            status=_status(ticket["state"]),
            priority=blank_to_none(ticket["priority"]),
            tags=None,  # Zammad's webhook bodies carry no tags
            comment=comment,
            fields=dict(fields),
            via_channel=blank_to_none(via),
            raw=raw,
        )

    # ----------------------------------------------------------------------------------------
    # Client and installation

    def client(self, session: requests.Session | None = None) -> ZammadClient:
        """A :class:`ZammadClient` for this desk.

        :raises ValueError: an unknown ``options.auth`` or ``options.reply_type``.
        """
        return ZammadClient(self.desk, session)

    def install_plan(self, public_url: str) -> installer.ZammadInstallPlan:
        """See :func:`adapters.zammad.install.plan`."""
        return installer.plan(public_url, self.desk)

    def install(
        self, public_url: str, client: HelpdeskClient | None = None
    ) -> installer.ZammadInstallResult:
        """Plan, then :func:`adapters.zammad.install.execute` with ``client`` (default: a new
        one for this desk)."""
        plan = self.install_plan(public_url)
        api = client if client is not None else self.client()
        if not isinstance(api, ZammadClient):
            raise TypeError(f"a Zammad desk needs a ZammadClient, not {type(api).__name__}")
        return installer.execute(api, plan)


def _id_order(value: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order, anything else after them.

    Compared as digit strings (shorter is smaller), not with ``int()``: ``"²".isdigit()`` is
    true and ``int()`` refuses both it and strings of thousands of digits.
    """
    if value.isascii() and value.isdigit():
        digits = value.lstrip("0") or "0"
        return (0, len(digits), digits)
    return (1, 0, value)
