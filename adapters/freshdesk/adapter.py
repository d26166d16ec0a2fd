"""Freshdesk: verify a delivery, key it, and turn it into a :class:`~rules.events.TicketEvent`.

Deliveries are the bodies of the connector's own automation rules (install.py writes them,
schemas.py reads them): ``"care_connector": 1`` and an ``event`` of ``created`` (the
ticket-creation rule), ``reply`` (the requester replied) or ``updated`` (an agent changed
the ticket; ``{{triggered_event}}`` says what first). Any other ``event`` is ignored (200); a
body without ``care_connector`` (a rule written for another integration) is refused (400).

Authentication (Freshdesk signs nothing, https://support.freshdesk.com/support/solutions/
articles/132589): the rule sends a shared secret, either in the header ``X-Care-Secret`` or
as the password of ``Authorization: Basic`` (the action's "Requires Authentication"). It is
compared in constant time with every configured secret, so that two can be in force during
a rotation. There is no timestamp, hence no replay window: a replayed delivery has the same
body, so the same delivery key, and is taken once.

Delivery key: Freshdesk sends no delivery id, so the key is the SHA-256 of the body; the body
carries the ticket's ``updated_at`` and ``{{triggered_event}}``, so two updates differ (two
updates of one ticket in the same second with the same first change would not).
"""

from __future__ import annotations

import base64
import binascii
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
    SignatureError,
    UnsupportedEventError,
)
from adapters.fields import blank_to_none, short_repr
from adapters.freshdesk import install as installer
from adapters.freshdesk.client import FreshdeskClient
from adapters.freshdesk.schemas import (
    EVENT_TYPES,
    PRIORITY_LABELS,
    RULE_EVENTS,
    SECRET_HEADER,
    STATUS_IDS,
    STATUSES,
    RuleBodySchema,
    html_to_text,
    triggered_change,
)
from adapters.signing import body_sha256, compare
from rules.events import Comment, EventType, TicketEvent, TicketStatus

__all__ = ["FreshdeskAdapter"]


def _priority(number: str | None, label: str | None) -> str | None:
    """The desk's priority number as text (``"4"``): ``{{ticket.priority_id}}`` when it
    rendered, else the label (``"Urgent"``) or a number in its place."""
    for value in (number, label):
        text = (value or "").strip()
        if text in PRIORITY_LABELS.values():
            return text
        if text.lower() in PRIORITY_LABELS:
            return PRIORITY_LABELS[text.lower()]
    return None


def _status(number: str | None, name: str | None) -> TicketStatus:
    """Built-in statuses by number; custom ones (6 and up) by name."""
    text = (number or "").strip()
    # Length first: int() refuses strings of thousands of digits (ValueError).
    if text.isascii() and text.isdigit() and len(text) <= 9 and int(text) in STATUS_IDS:
        return STATUS_IDS[int(text)]
    return STATUSES.get((name or "").strip().lower(), TicketStatus.UNKNOWN)


class FreshdeskAdapter(HelpdeskAdapter):
    """Freshdesk: automation-rule webhooks with a shared secret, the REST client, and
    ``webhooks install``."""

    key = "freshdesk"
    display_name = "Freshdesk"
    event_types = EVENT_TYPES

    # ----------------------------------------------------------------------------------------
    # Verification and keys

    def verify(self, headers: HeaderSource, body: bytes, *, now: datetime) -> None:
        """Check the shared secret (``X-Care-Secret``, else the Basic-auth password) against
        every configured secret, in constant time.

        :raises MissingSecretError: no secret configured.
        :raises SignatureError: no credential, or one matching no secret.
        """
        self.require_secrets()
        found = normalize_headers(headers)
        given = found.get(SECRET_HEADER.lower(), "").strip()
        if not given:
            given = self._basic_password(found.get("authorization", ""))
        # Every secret is compared, so the time taken does not tell which one matched.
        offered = given.encode("utf-8", "surrogatepass")
        matches = [compare(secret, offered) for secret in self.secrets]
        if not any(matches):
            raise SignatureError(
                "the shared secret does not match any configured secret", adapter=self.key
            )

    def _basic_password(self, header: str) -> str:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            raise SignatureError(
                f"missing {SECRET_HEADER} header (or Authorization: Basic with the secret as "
                "the password)",
                adapter=self.key,
            )
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise SignatureError(
                "Authorization: Basic credentials are not base64 of user:password",
                adapter=self.key,
            ) from None
        _, colon, password = decoded.partition(":")
        if not colon:
            raise SignatureError(
                "Authorization: Basic credentials have no password", adapter=self.key
            )
        return password

    def delivery_key(self, headers: HeaderSource, body: bytes) -> str:
        """The SHA-256 of the body (Freshdesk sends no delivery id)."""
        return body_sha256(body)

    # ----------------------------------------------------------------------------------------
    # Parsing

    def parse(self, headers: HeaderSource, body: bytes, *, delivery_key: str) -> list[TicketEvent]:
        """One :class:`TicketEvent` per delivery (one rule, one request).

        :raises UnsupportedEventError: an ``event`` the connector's rules do not send.
        :raises AnomalousPayloadError: anything that does not parse, with the failing paths.
        """
        data = load_json_object(body, adapter=self.key)
        if "care_connector" not in data:
            foreign = "freshdesk_webhook" in data
            raise AnomalousPayloadError(
                "not the connector's rule body"
                + (" (a body written for another integration)" if foreign else "")
                + "; install the rules with `care-connector webhooks install`",
                adapter=self.key,
                errors={"care_connector": ["expected the connector's rule body"]},
            )
        kind = data.get("event")
        if isinstance(kind, str) and kind.strip() and kind.strip() not in RULE_EVENTS:
            raise UnsupportedEventError(
                f"Freshdesk rule event {short_repr(kind)} is not handled",
                adapter=self.key,
                event_type=kind.strip(),
            )
        loaded = load_schema(
            schema_instance(RuleBodySchema), data, adapter=self.key, what="Freshdesk rule body"
        )
        event_name = loaded["event"].strip()
        if event_name not in RULE_EVENTS:  # a non-string "event" read as text
            raise UnsupportedEventError(
                f"Freshdesk rule event {short_repr(event_name)} is not handled",
                adapter=self.key,
                event_type=event_name,
            )
        return [self._event(data, loaded, event_name, delivery_key)]

    def _code(self, event_name: str, triggered: str | None) -> str:
        """The vendor event code (a key of :data:`EVENT_TYPES`)."""
        if event_name != "updated":
            return event_name
        change = triggered_change(triggered)
        if change is None:
            return "updated"
        key, value = change
        if key in ("reply_sent", "status", "priority"):
            return f"updated:{key}"
        if key == "ticket_action" and value.startswith("delet"):
            return "updated:deleted"
        if key == "ticket_action" and "spam" in value and "unspam" not in value:
            return "updated:spam"
        if key.startswith("cf_"):
            return "updated:custom_field"
        return "updated"

    def _event(
        self, data: dict[str, Any], body: dict[str, Any], event_name: str, delivery_key: str
    ) -> TicketEvent:
        ticket: dict[str, Any] = body["ticket"]
        requester: dict[str, Any] = body["requester"] or {}
        requester_id: str | None = requester.get("id")
        event_type = EVENT_TYPES[self._code(event_name, body["triggered_event"])]
        comment: Comment | None = None
        actor_id: str | None = None
        if event_type is EventType.COMMENT_ADDED:
            text = html_to_text((body["comment"] or {}).get("body") or "")
            if event_name == "reply":
                # The rule runs only for replies the requester performed.
                actor_id = requester_id
                comment = Comment(body=text, public=True, author_id=requester_id, by_requester=True)
            else:  # an agent's reply: the rule's performers are agents other than the connector
                comment = Comment(body=text, public=True, author_id=None, by_requester=False)
        values: Mapping[str, str] = ticket["field_values"] or {}
        fields = {
            name: values[str(api_name).strip()]
            for name, api_name in self.desk.fields.items()
            if values.get(str(api_name).strip())
        }
        return TicketEvent(
            desk=self.desk.key,
            delivery_key=delivery_key,
            type=event_type,
            ticket_id=ticket["id"],
            occurred_at=ticket["updated_at"] or ticket["created_at"],
            ticket_created_at=ticket["created_at"],
            subject=ticket["subject"] or "",
            description=ticket["description"] or "",
            requester_id=requester_id,
            requester_email=blank_to_none(requester.get("email")),
            requester_name=blank_to_none(requester.get("name")),
            actor_id=actor_id,
            status=_status(ticket["status_id"], ticket["status"]),
            priority=_priority(ticket["priority_id"], ticket["priority"]),
            tags=ticket["tags"],
            comment=comment,
            fields=fields,
            locale=blank_to_none(requester.get("language")),
            via_channel=blank_to_none(ticket["source"]),
            raw=data,
        )

    # ----------------------------------------------------------------------------------------
    # Client and installation

    def client(self, session: requests.Session | None = None) -> FreshdeskClient:
        """A :class:`FreshdeskClient` for this desk."""
        return FreshdeskClient(self.desk, session)

    def install_plan(self, public_url: str) -> installer.FreshdeskInstallPlan:
        """See :func:`adapters.freshdesk.install.plan`."""
        return installer.plan(public_url, self.desk)

    def install(
        self, public_url: str, client: HelpdeskClient | None = None
    ) -> installer.FreshdeskInstallResult:
        """Plan, then :func:`adapters.freshdesk.install.execute` with ``client`` (default: a
        new one for this desk)."""
        plan = self.install_plan(public_url)
        api = client if client is not None else self.client()
        if not isinstance(api, FreshdeskClient):
            raise TypeError(f"a Freshdesk desk needs a FreshdeskClient, not {type(api).__name__}")
        return installer.execute(api, plan)
