"""Zendesk: verify a delivery, key it, and turn it into a :class:`~rules.events.TicketEvent`.

Deliveries come in two shapes, told apart by their content (schemas.py describes both):

* an **event subscription** envelope: ``"type": "zen:event-type:..."``; the types in
  :data:`~adapters.zendesk.schemas.EVENT_TYPES` are handled, any other is ignored (200);
* the connector's own **trigger body**: ``"care_connector": 1`` (install.py writes it).

Signatures (https://developer.zendesk.com/documentation/webhooks/verifying/):
``X-Zendesk-Webhook-Signature = base64(HMAC-SHA256(secret, timestamp + body))`` over the raw
body bytes, the timestamp being the ``X-Zendesk-Webhook-Signature-Timestamp`` header
(ISO-8601) exactly as sent. The secret is used as the string Zendesk shows, not
base64-decoded. (An older copy of that page says body + timestamp; its test vector matches
that order, but the current page and every implementation checked use timestamp + body.)
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
    SignatureError,
    UnsupportedEventError,
)
from adapters.fields import blank_to_none, field_text, short_repr
from adapters.signing import (
    SIGNATURE_MISMATCH,
    body_sha256,
    check_timestamp,
    compare,
    hmac_b64,
    parse_iso_timestamp,
)
from adapters.zendesk import install as installer
from adapters.zendesk.client import ZendeskClient
from adapters.zendesk.schemas import (
    EVENT_TYPES,
    STATUSES,
    TRIGGER_EVENTS,
    CommentAddedSchema,
    CustomFieldChangedSchema,
    EnvelopeSchema,
    TagsChangedSchema,
    TriggerBodySchema,
    ValueChangedSchema,
)
from rules.events import Comment, EventType, TicketEvent, TicketStatus

__all__ = ["ZendeskAdapter"]

SIGNATURE_HEADER = "x-zendesk-webhook-signature"
TIMESTAMP_HEADER = "x-zendesk-webhook-signature-timestamp"
INVOCATION_HEADER = "x-zendesk-webhook-invocation-id"
EVENT_PREFIX = "zen:event-type:"
#: Longest vendor id taken as a delivery key; anything longer is keyed by the body's hash.
_MAX_KEY = 200


def _status(value: str | None) -> TicketStatus:
    if value is None:
        return TicketStatus.UNKNOWN
    return STATUSES.get(value.strip().lower(), TicketStatus.UNKNOWN)


def _priority(value: str | None) -> str | None:
    """The API's lower-case value (events send ``LOW``, placeholders ``Low``); a placeholder's
    ``-`` (no priority) is ``None``."""
    text = (value or "").strip().lower()
    return None if text in ("", "-") else text


class ZendeskAdapter(HelpdeskAdapter):
    """Zendesk Support: event subscriptions and trigger webhooks, the REST client, and
    ``webhooks install``."""

    key = "zendesk"
    display_name = "Zendesk"
    event_types = EVENT_TYPES

    @property
    def _field_names(self) -> dict[str, str]:
        """The desk's field id -> logical name (``"360001" -> "care_category"``)."""
        return {str(field_id): name for name, field_id in self.desk.fields.items()}

    # ----------------------------------------------------------------------------------------
    # Verification and keys

    def verify(self, headers: HeaderSource, body: bytes, *, now: datetime) -> None:
        """Check ``X-Zendesk-Webhook-Signature`` against every configured secret (a rotation
        lists two), then the timestamp window, both ways.

        :raises MissingSecretError: no secret configured.
        :raises SignatureError: a header missing, no secret matching, or the timestamp
            outside ``now ± tolerance``.
        """
        self.require_secrets()
        found = normalize_headers(headers)
        signature = found.get(SIGNATURE_HEADER, "")
        stamp = found.get(TIMESTAMP_HEADER, "")
        if not signature.strip():
            raise SignatureError("missing X-Zendesk-Webhook-Signature header", adapter=self.key)
        if not stamp.strip():
            raise SignatureError(
                "missing X-Zendesk-Webhook-Signature-Timestamp header", adapter=self.key
            )
        message = stamp.encode("utf-8", "surrogatepass") + body
        if not any(compare(hmac_b64(secret, message), signature) for secret in self.secrets):
            raise SignatureError(SIGNATURE_MISMATCH, adapter=self.key)
        try:
            when = parse_iso_timestamp(stamp)
        except ValueError:
            raise SignatureError(
                f"signature timestamp {short_repr(stamp)} is not an ISO-8601 time with a zone",
                adapter=self.key,
            ) from None
        check_timestamp(when, now, self.tolerance, adapter=self.key)

    def delivery_key(self, headers: HeaderSource, body: bytes) -> str:
        """The envelope ``id`` of an event subscription, else the
        ``X-Zendesk-Webhook-Invocation-Id`` header (kept across retries of one invocation),
        else the SHA-256 of the body."""
        try:
            data: dict[str, Any] | None = load_json_object(body, adapter=self.key)
        except AnomalousPayloadError:
            data = None
        if data is not None:
            kind, event_id = data.get("type"), data.get("id")
            if (
                isinstance(kind, str)
                and kind.startswith(EVENT_PREFIX)
                and isinstance(event_id, str)
                and 0 < len(event_id.strip()) <= _MAX_KEY
            ):
                return event_id.strip()
        invocation = normalize_headers(headers).get(INVOCATION_HEADER, "").strip()
        if 0 < len(invocation) <= _MAX_KEY and invocation.isprintable():
            return invocation
        return body_sha256(body)

    # ----------------------------------------------------------------------------------------
    # Parsing

    def parse(self, headers: HeaderSource, body: bytes, *, delivery_key: str) -> list[TicketEvent]:
        """One :class:`TicketEvent` per delivery (Zendesk sends one event per request).

        :raises UnsupportedEventError: a ``zen:event-type:*`` the connector does not handle.
        :raises AnomalousPayloadError: anything that does not parse, with the failing paths.
        """
        data = load_json_object(body, adapter=self.key)
        if "care_connector" in data:
            return [self._from_trigger(data, delivery_key)]
        kind = data.get("type")
        if isinstance(kind, str) and kind.startswith(EVENT_PREFIX):
            event_type = EVENT_TYPES.get(kind)
            if event_type is None:
                raise UnsupportedEventError(
                    f"Zendesk event {short_repr(kind)} is not handled",
                    adapter=self.key,
                    event_type=kind,
                )
            return [self._from_event(data, kind, event_type, delivery_key)]
        raise AnomalousPayloadError(
            'neither a Zendesk event ("type": "zen:event-type:...") nor the connector\'s '
            'trigger body ("care_connector"); install the webhook with `care-connector '
            "webhooks install`",
            adapter=self.key,
            errors={
                "type": ['expected "zen:event-type:..." (event subscription)'],
                "care_connector": ["expected the connector's trigger body"],
            },
        )

    def _from_event(
        self, data: dict[str, Any], kind: str, event_type: EventType, delivery_key: str
    ) -> TicketEvent:
        what = f"{kind} event"
        envelope = load_schema(schema_instance(EnvelopeSchema), data, adapter=self.key, what=what)
        detail: dict[str, Any] = envelope["detail"]
        payload: Mapping[str, Any] = envelope["event"] or {}
        requester_id: str | None = detail["requester_id"]
        status = detail["status"]
        priority = detail["priority"]
        comment: Comment | None = None
        tags_added: tuple[str, ...] = ()
        tags_removed: tuple[str, ...] = ()
        fields: dict[str, str] = {}

        def load(schema: Any) -> dict[str, Any]:
            return load_schema(schema, payload, adapter=self.key, what=what, prefix="event")

        if event_type is EventType.COMMENT_ADDED:
            found = load(schema_instance(CommentAddedSchema))["comment"]
            author = (found["author"] or {}).get("id")
            by_requester = author is not None and author == requester_id
            public = found["is_public"]
            comment = Comment(
                body=found["body"] or "",
                public=by_requester if public is None else public,
                author_id=author,
                by_requester=by_requester,
            )
        elif event_type is EventType.TAGS_CHANGED:
            change = load(schema_instance(TagsChangedSchema))
            tags_added = tuple(change["tags_added"] or ())
            tags_removed = tuple(change["tags_removed"] or ())
        elif event_type is EventType.FIELDS_CHANGED:
            change = load(schema_instance(CustomFieldChangedSchema))
            name = self._field_names.get(change["custom_field"]["id"])
            value = field_text(change["current"])
            if name is not None and value:
                fields[name] = value
        elif event_type in (EventType.STATUS_CHANGED, EventType.PRIORITY_CHANGED):
            current = load(schema_instance(ValueChangedSchema))["current"]
            if event_type is EventType.STATUS_CHANGED and status is None:
                status = current
            if event_type is EventType.PRIORITY_CHANGED and priority is None:
                priority = current

        via = detail["via"] or {}
        return TicketEvent(
            desk=self.desk.key,
            delivery_key=delivery_key,
            type=event_type,
            ticket_id=detail["id"],
            occurred_at=envelope["time"],
            ticket_created_at=detail["created_at"],
            subject=detail["subject"] or "",
            description=detail["description"] or "",
            requester_id=requester_id,
            actor_id=detail["actor_id"],
            status=_status(status),
            priority=_priority(priority),
            tags=detail["tags"],
            tags_added=tags_added,
            tags_removed=tags_removed,
            comment=comment,
            fields=fields,
            via_channel=blank_to_none(via.get("channel")),
            raw=data,
        )

    def _from_trigger(self, data: dict[str, Any], delivery_key: str) -> TicketEvent:
        body = load_schema(
            schema_instance(TriggerBodySchema),
            data,
            adapter=self.key,
            what="connector trigger body",
        )
        ticket: dict[str, Any] = body["ticket"]
        requester: dict[str, Any] = body["requester"] or {}
        user: dict[str, Any] = body["current_user"] or {}
        event_type = TRIGGER_EVENTS[body["event"]]
        requester_id: str | None = requester.get("id")
        comment: Comment | None = None
        if event_type is EventType.COMMENT_ADDED:
            found = body["comment"]
            if found is None:
                raise AnomalousPayloadError(
                    "connector trigger body: comment: missing for a comment event",
                    adapter=self.key,
                    errors={"comment": ["Missing data for required field."]},
                )
            author = found["author_id"]
            by_requester = author is not None and author == requester_id
            # An end user's comment is public; an unrendered flag is read that way.
            public = found["public"]
            comment = Comment(
                body=found["body"] or "",
                public=by_requester if public is None else public,
                author_id=author,
                by_requester=by_requester,
            )
        values: Mapping[str, str] = ticket["field_values"] or {}
        fields = {
            name: values[str(field_id)]
            for name, field_id in self.desk.fields.items()
            if values.get(str(field_id))
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
            actor_id=user.get("id"),
            status=_status(ticket["status"]),
            priority=_priority(ticket["priority"]),
            tags=ticket["tags"],
            comment=comment,
            fields=fields,
            locale=blank_to_none(requester.get("locale")),
            via_channel=blank_to_none(ticket["via"]),
            raw=data,
        )

    # ----------------------------------------------------------------------------------------
    # Client and installation

    def client(self, session: requests.Session | None = None) -> ZendeskClient:
        """A :class:`ZendeskClient` for this desk.

        :raises ValueError: an unknown ``options.auth``.
        """
        return ZendeskClient(self.desk, session)

    def install_plan(self, public_url: str) -> installer.ZendeskInstallPlan:
        """See :func:`adapters.zendesk.install.plan`."""
        return installer.plan(public_url, self.desk)

    def install(
        self, public_url: str, client: HelpdeskClient | None = None
    ) -> installer.ZendeskInstallResult:
        """Plan, then :func:`adapters.zendesk.install.execute` with ``client`` (default: a
        new one for this desk)."""
        plan = self.install_plan(public_url)
        api = client if client is not None else self.client()
        if not isinstance(api, ZendeskClient):
            raise TypeError(f"a Zendesk desk needs a ZendeskClient, not {type(api).__name__}")
        return installer.execute(api, plan)
