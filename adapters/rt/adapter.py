"""Request Tracker: verify a delivery of the connector's scrip, key it, and turn it into a
:class:`~rules.events.TicketEvent`.

RT has no webhooks; the scrip that ``webhooks install`` puts in RT (install.py) posts one JSON
body per ticket transaction (schemas.py describes it) with two headers:

* ``X-Care-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>``, computed by the scrip
  with ``Digest::SHA::hmac_sha256_hex``. No timestamp is signed, so there is no replay
  window: a replayed delivery is caught by its delivery key;
* ``X-Care-Delivery: <transaction id>``: RT's transaction id, the delivery key (one
  transaction, one delivery; the scrip's own retry sends the same id).

Which event it is: ``Create`` -> created; ``Correspond`` (public) and ``Comment`` (internal)
-> a comment; ``CustomField`` -> fields changed (the ticket's field values come along, the
connector's multi-value field as its tags); ``Status`` -> status changed, ``deleted`` being a
deleted ticket. Anything else (an admin widened the scrip's condition) is answered "ignored".
"""

from __future__ import annotations

import re
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
from adapters.rt import install as installer
from adapters.rt.client import DEFAULT_TAGS_FIELD, RTClient
from adapters.rt.schemas import EVENT_TYPES, STATUSES, BodySchema, event_code
from adapters.signing import body_sha256
from rules.events import Comment, EventType, TicketEvent, TicketStatus

__all__ = ["DELIVERY_HEADER", "SIGNATURE_HEADER", "RTAdapter"]

SIGNATURE_HEADER = "x-care-signature"
DELIVERY_HEADER = "x-care-delivery"
#: RT transaction ids are positive integers.
_DELIVERY_RE = re.compile(r"[0-9]{1,18}")


def _status(value: str | None) -> TicketStatus:
    if value is None:
        return TicketStatus.UNKNOWN
    return STATUSES.get(value.strip().lower(), TicketStatus.UNKNOWN)


class RTAdapter(HelpdeskAdapter):
    """Request Tracker 5: the connector's scrip in, REST 2.0 out, and ``webhooks install``
    (an initialdata file for ``rt-setup-database``)."""

    key = "rt"
    display_name = "Request Tracker"
    event_types = EVENT_TYPES

    @property
    def tags_field(self) -> str:
        """The multi-value custom field that holds the connector's tags (``options.tags_field``,
        default ``Care``)."""
        raw = self.desk.options.get("tags_field", DEFAULT_TAGS_FIELD)
        return str(raw).strip() or DEFAULT_TAGS_FIELD

    # ----------------------------------------------------------------------------------------
    # Verification and keys

    def verify(self, headers: HeaderSource, body: bytes, *, now: datetime) -> None:
        """Check ``X-Care-Signature`` against every configured secret (a rotation lists two).

        :param now: unused: the scrip signs no timestamp.
        :raises MissingSecretError: no secret configured.
        :raises SignatureError: the header missing or not ``sha256=<hex>``, or no secret
            matching.
        """
        self.verify_hex_hmac(
            headers,
            body,
            header="X-Care-Signature",
            algo="sha256",
            hint="install the scrip with `care-connector webhooks install`",
        )

    def delivery_key(self, headers: HeaderSource, body: bytes) -> str:
        """The ``X-Care-Delivery`` header (RT's transaction id), else the SHA-256 of the
        body."""
        delivery = normalize_headers(headers).get(DELIVERY_HEADER, "").strip()
        if _DELIVERY_RE.fullmatch(delivery):
            return delivery
        return body_sha256(body)

    # ----------------------------------------------------------------------------------------
    # Parsing

    def parse(self, headers: HeaderSource, body: bytes, *, delivery_key: str) -> list[TicketEvent]:
        """One :class:`TicketEvent` per delivery (the scrip posts once per transaction).

        :raises UnsupportedEventError: a transaction type the connector does not handle.
        :raises AnomalousPayloadError: anything that does not parse, with the failing paths.
        """
        data = load_json_object(body, adapter=self.key)
        if "care_connector" not in data:
            raise AnomalousPayloadError(
                'not the connector\'s RT payload (no "care_connector"); install the scrip with '
                "`care-connector webhooks install`",
                adapter=self.key,
                errors={"care_connector": ["expected the connector's payload"]},
            )
        # An unhandled transaction is ignored whatever the rest of its body looks like.
        transaction = data.get("transaction")
        kind = transaction.get("type") if isinstance(transaction, Mapping) else None
        if isinstance(kind, str) and kind.strip():
            new_value = transaction.get("new_value") if isinstance(transaction, Mapping) else None
            code = event_code(kind, new_value if isinstance(new_value, str) else None)
            if code not in EVENT_TYPES:
                raise UnsupportedEventError(
                    f"RT transaction type {short_repr(kind)} is not handled",
                    adapter=self.key,
                    event_type=kind,
                )
        loaded = load_schema(
            schema_instance(BodySchema), data, adapter=self.key, what="RT scrip payload"
        )
        return [self._event(loaded, delivery_key, raw=data)]

    def _event(
        self, loaded: Mapping[str, Any], delivery_key: str, *, raw: Mapping[str, object]
    ) -> TicketEvent:
        txn: Mapping[str, Any] = loaded["transaction"]
        ticket: Mapping[str, Any] = loaded["ticket"]
        code = event_code(txn["type"], txn["new_value"])
        kind = EVENT_TYPES[code]
        requestors: list[Mapping[str, Any]] = ticket["requestors"] or []
        requester: Mapping[str, Any] = next(
            (r for r in requestors if blank_to_none(r.get("email"))),
            requestors[0] if requestors else {},
        )
        requestor_ids = {r["id"] for r in requestors if r.get("id")}
        creator: Mapping[str, Any] = txn["creator"] or {}
        author = creator.get("id")
        values: Mapping[str, tuple[str, ...]] = ticket["custom_fields"] or {}
        tags = values.get(self.tags_field, ())
        fields = {
            name: " ".join(values[str(field)])
            for name, field in self.desk.fields.items()
            if values.get(str(field))
        }
        description = ""
        comment: Comment | None = None
        text = (txn["content"] or "").strip()
        if kind is EventType.TICKET_CREATED:
            description = text
        elif kind is EventType.COMMENT_ADDED:
            comment = Comment(
                body=text,
                public=txn["type"] == "Correspond",
                author_id=author,
                author_email=blank_to_none(creator.get("email")),
                by_requester=author is not None and author in requestor_ids,
            )
        return TicketEvent(
            desk=self.desk.key,
            delivery_key=delivery_key,
            type=kind,
            ticket_id=ticket["id"],
            occurred_at=txn["created"],
            ticket_created_at=ticket["created"],
            subject=(ticket["subject"] or "").strip(),
            description=description,
            requester_id=requester.get("id"),
            requester_email=blank_to_none(requester.get("email")),
            requester_name=blank_to_none(requester.get("real_name")),
            actor_id=author,
            status=_status(ticket["status"]),
            priority=blank_to_none(ticket["priority"]),
            tags=tuple(tags),
            comment=comment,
            fields=fields,
            locale=blank_to_none(requester.get("lang")),
            via_channel=None,
            raw=raw,
        )

    # ----------------------------------------------------------------------------------------
    # Client and installation

    def client(self, session: requests.Session | None = None) -> RTClient:
        """An :class:`RTClient` for this desk.

        :raises ValueError: an unknown ``options.auth``.
        """
        return RTClient(self.desk, session)

    def install_plan(self, public_url: str) -> installer.RTInstallPlan:
        """See :func:`adapters.rt.install.plan`."""
        return installer.plan(public_url, self.desk)

    def install(
        self, public_url: str, client: HelpdeskClient | None = None
    ) -> installer.RTInstallResult:
        """Plan, then :func:`adapters.rt.install.execute`: apply the initialdata file with
        ``rt-setup-database`` when RT runs on this machine, else hand it to the RT admin.

        ``client`` is unused: RT's REST API cannot create scrips.
        """
        return installer.execute(self.install_plan(public_url))
