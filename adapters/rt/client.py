"""Request Tracker's REST 2.0 API (``<base_url>/REST/2.0``): the write-back calls and the reads
the worker needs.

``base_url`` is RT's web root, with its ``WebPath`` (``https://rt.example.com/rt``).
Authentication, chosen with the desk option ``auth`` (default: ``basic`` when the desk has a
``username``, else ``token``):

* ``"token"``: an RT auth token (RT 5, *Settings > Auth Tokens*), ``Authorization: token …``;
* ``"basic"``: the desk's ``username`` and ``password``.

RT has no tags: the connector's tags are the values of one multi-value custom field (desk
option ``tags_field``, default ``Care``) that ``webhooks install`` creates. RT's REST API sets
a multi-value field to exactly the list it is given, so adding or removing a tag reads the
ticket's values first and writes the new set; the outbox sends one ticket's write-backs in
order, so no write of the connector's own is lost in between.

RT answers ``PUT`` with ``200`` and a list of messages whatever happened; a message saying
``Permission Denied`` is read as a refusal (permanent), and a custom field that does not
apply to the ticket (RT skips it silently) is checked before writing.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from adapters.base import (
    DeskConfig,
    HelpdeskClient,
    Requester,
    basic_authorization,
    marker_tag,
    option_choice,
)
from adapters.errors import HelpdeskAPIError
from adapters.fields import blank_to_none

__all__ = ["API", "AUTH_MODES", "DEFAULT_QUEUE", "DEFAULT_TAGS_FIELD", "RTClient"]

#: The REST 2.0 prefix under RT's web root.
API = "/REST/2.0"
#: Values of the desk option ``auth``.
AUTH_MODES = ("token", "basic")
#: The custom field holding the connector's tags, unless ``options.tags_field`` names another.
DEFAULT_TAGS_FIELD = "Care"
#: The queue of the tickets :meth:`RTClient.notify_customer` opens, unless
#: ``options.notice_queue`` names another.
DEFAULT_QUEUE = "General"

_NUMERIC_ID = re.compile(r"[0-9]{1,18}")
_DENIED = ("permission denied", "you are not allowed", "unauthorized")


def _numeric(kind: str, value: str | int) -> str:
    text = str(value).strip()
    if not _NUMERIC_ID.fullmatch(text):
        raise ValueError(f"RT {kind} id must be a number, got {value!r}")
    return text


def _sql_string(value: str) -> str:
    """``value`` as a TicketSQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _decoded(content: str) -> str:
    """An attachment's content: RT sends it as text in listings and base64 on its own page."""
    compact = "".join(content.split())
    if not compact or len(compact) % 4:
        return content
    try:
        return base64.b64decode(compact, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return content


class RTClient(HelpdeskClient):
    """REST 2.0 client for one RT instance.

    :param desk: the desk; ``options.auth``, ``options.tags_field`` and
        ``options.notice_queue`` are read.
    :raises ValueError: an unknown ``options.auth``.
    """

    #: Items per page when reading a ticket's attachments or a search.
    page_size: ClassVar[int] = 100
    #: A safety stop for pagination.
    max_pages: ClassVar[int] = 50

    def __init__(self, desk: DeskConfig, session: requests.Session | None = None) -> None:
        default = "basic" if (desk.username or "").strip() else "token"
        auth = option_choice(desk, "auth", AUTH_MODES, default)
        self.auth = auth
        self.tags_field = str(desk.options.get("tags_field", DEFAULT_TAGS_FIELD)).strip()
        self.notice_queue = str(desk.options.get("notice_queue", DEFAULT_QUEUE)).strip()
        super().__init__(desk, session)

    def _auth_headers(self) -> dict[str, str]:
        if self.auth == "basic":
            user, password = (self.desk.username or "").strip(), self.desk.password or ""
            if not user or not password:
                return {}
            return basic_authorization(user, password)
        token = (self.desk.token or "").strip()
        return {"Authorization": f"token {token}"} if token else {}

    # ----------------------------------------------------------------------------------------
    # Write-back

    def set_priority(self, ticket_id: str, value: str) -> None:
        """``PUT /ticket/{id}`` ``{"Priority": N}`` (a number on RT's 0-99 scale; a name such
        as ``High`` is sent as text, for queues with ``PriorityAsString``)."""
        tid = _numeric("ticket", ticket_id)
        text = value.strip()
        priority: int | str = int(text) if text.isdigit() else text
        self._update(tid, {"Priority": priority})

    def add_tags(self, ticket_id: str, tags: Sequence[str]) -> None:
        """Add ``tags`` to the ticket's values of the tags field, keeping the others."""
        tid = _numeric("ticket", ticket_id)
        wanted = _tag_list(tags)
        current = self._tag_values(tid)
        missing = [tag for tag in wanted if tag not in current]
        if missing:
            self._update(tid, {"CustomFields": {self.tags_field: [*current, *missing]}})

    def remove_tags(self, ticket_id: str, tags: Sequence[str]) -> None:
        """Remove ``tags`` from the ticket's values of the tags field, keeping the others."""
        tid = _numeric("ticket", ticket_id)
        unwanted = set(_tag_list(tags))
        current = self._tag_values(tid)
        kept = [tag for tag in current if tag not in unwanted]
        if len(kept) != len(current):
            self._update(tid, {"CustomFields": {self.tags_field: kept}})

    def add_note(self, ticket_id: str, body: str, *, marker: str) -> None:
        """An internal comment: ``POST /ticket/{id}/comment`` (agents only)."""
        self._check_marker(body, marker)
        tid = _numeric("ticket", ticket_id)
        self._post(f"{API}/ticket/{tid}/comment", {"Content": body, "ContentType": "text/plain"})

    def add_reply(self, ticket_id: str, body: str, *, marker: str) -> None:
        """Public correspondence: ``POST /ticket/{id}/correspond``; RT mails it to the
        requestors through its own scrips."""
        self._check_marker(body, marker)
        tid = _numeric("ticket", ticket_id)
        self._post(f"{API}/ticket/{tid}/correspond", {"Content": body, "ContentType": "text/plain"})

    def notify_customer(self, email: str, subject: str, body: str, *, marker: str) -> None:
        """A new ticket for the requestor ``email`` in ``options.notice_queue``
        (``POST /ticket``); RT's create scrips mail it. Idempotent per marker: a ticket of that
        requestor and subject that already carries the marker is not opened again."""
        self._check_marker(body, marker)
        address = email.strip()
        if not address or "@" not in address:
            raise ValueError(f"not an email address: {email!r}")
        query = (
            f"Requestor.EmailAddress = {_sql_string(address)} "
            f"AND Subject = {_sql_string(subject)}"
        )
        for item in self._pages(f"{API}/tickets", {"query": query, "orderby": "id"}):
            found = item.get("id")
            if found is not None and self.has_marker(str(found), marker):
                return
        self._post(
            f"{API}/ticket",
            {
                "Queue": self.notice_queue,
                "Requestor": address,
                "Subject": subject,
                "Content": body,
                "ContentType": "text/plain",
            },
        )

    # ----------------------------------------------------------------------------------------
    # Reads

    def has_marker(self, ticket_id: str, marker: str) -> bool:
        """Whether one of the ticket's messages carries ``[care:<marker>]``: its history's
        attachments (``GET /ticket/{id}/attachments``), every page."""
        tid = _numeric("ticket", ticket_id)
        needle = marker_tag(marker)
        for item in self._pages(
            f"{API}/ticket/{tid}/attachments", {"fields": "Content,ContentType"}
        ):
            content = item.get("Content")
            if isinstance(content, str) and (needle in content or needle in _decoded(content)):
                return True
        return False

    def get_requester(self, user_id: str) -> Requester | None:
        """``GET /user/{id}``: email, real name and language; ``None`` on 404."""
        uid = _numeric("user", user_id)
        try:
            user = self._get(f"{API}/user/{uid}")
        except HelpdeskAPIError as err:
            if err.status == 404:
                return None
            raise
        if not isinstance(user, dict):
            raise HelpdeskAPIError(f"GET {API}/user/{uid}: the answer is not a user")
        return Requester(
            email=blank_to_none(user.get("EmailAddress")),
            name=blank_to_none(user.get("RealName")),
            locale=blank_to_none(user.get("Lang")),
        )

    def get_priority(self, ticket_id: str) -> str | None:
        """``GET /ticket/{id}``: the ticket's priority, or ``None``."""
        ticket = self.get_ticket(ticket_id)
        value = ticket.get("Priority")
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return blank_to_none(value)

    def get_tags(self, ticket_id: str) -> tuple[str, ...]:
        """The ticket's values of the tags field."""
        return tuple(self._tag_values(_numeric("ticket", ticket_id)))

    def get_ticket(self, ticket_id: str) -> dict[str, Any]:
        """``GET /ticket/{id}``."""
        tid = _numeric("ticket", ticket_id)
        ticket = self._get(f"{API}/ticket/{tid}")
        if not isinstance(ticket, dict):
            raise HelpdeskAPIError(f"GET {API}/ticket/{tid}: the answer is not a ticket")
        return ticket

    def check_credentials(self) -> str:
        """``GET /rt`` (RT's version) with the credentials; with basic auth also
        ``GET /user/{username}``, whose id must be ``api_user_id`` (the scrip's loop guard).

        :raises HelpdeskAPIError: no credentials, RT refused them, or they belong to another
            user than ``api_user_id``.
        """
        if "Authorization" not in self._headers:
            what = "username and password_env" if self.auth == "basic" else "token_env"
            raise HelpdeskAPIError(
                f"desk {self.desk.key!r} has no API credentials: set {what}", permanent=True
            )
        info = self._get(f"{API}/rt")
        version = blank_to_none(info.get("Version")) if isinstance(info, dict) else None
        rt = f"RT {version}" if version else "RT"
        if self.auth != "basic":
            return f"token accepted ({rt})"
        name = (self.desk.username or "").strip()
        user = self._get(f"{API}/user/{quote(name, safe='@')}")
        if not isinstance(user, dict) or user.get("id") is None:
            raise HelpdeskAPIError(f"GET {API}/user/{name}: the answer is not a user")
        uid = str(user["id"])
        own = (self.desk.api_user_id or "").strip()
        if own and own != uid:
            raise HelpdeskAPIError(
                f"the credentials belong to RT user {uid} ({name}), but api_user_id is {own}: "
                "the scrip's loop guard would let the connector's own writes through",
                permanent=True,
            )
        return f"user {uid} {name} ({rt})"

    # ----------------------------------------------------------------------------------------
    # Helpers

    def _update(self, tid: str, body: dict[str, Any]) -> None:
        """``PUT /ticket/{id}``; RT answers 200 with messages, a refusal among them."""
        answer = self._put(f"{API}/ticket/{tid}", body)
        messages = answer if isinstance(answer, list) else []
        for message in messages:
            if isinstance(message, str) and any(d in message.lower() for d in _DENIED):
                raise HelpdeskAPIError(
                    f"PUT {API}/ticket/{tid}: RT refused: {message}", permanent=True
                )

    def _tag_values(self, tid: str) -> list[str]:
        """The tags field's values on the ticket, in RT's order.

        :raises HelpdeskAPIError: permanent when the field does not apply to the ticket.
        """
        ticket = self.get_ticket(tid)
        for field in ticket.get("CustomFields") or []:
            if not isinstance(field, dict):
                continue
            if str(field.get("name", "")).strip().casefold() == self.tags_field.casefold():
                values = field.get("values") or []
                return [v for v in values if isinstance(v, str) and v.strip()]
        raise HelpdeskAPIError(
            f"RT ticket {tid} has no custom field {self.tags_field!r} (or the connector's user "
            "may not see it): run `care-connector webhooks install` for this desk, or set "
            "options.tags_field",
            permanent=True,
        )

    def _pages(self, path: str, params: dict[str, str | int]) -> Iterator[dict[str, Any]]:
        """The items of a paged REST 2.0 collection."""
        for page in range(1, self.max_pages + 1):
            data = self._get(path, params={**params, "page": page, "per_page": self.page_size})
            items = data.get("items") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise HelpdeskAPIError(f"GET {path}: the answer has no items list")
            yield from (item for item in items if isinstance(item, dict))
            pages = data.get("pages")
            if not items or not isinstance(pages, int) or page >= pages:
                return


def _tag_list(tags: Sequence[str]) -> list[str]:
    """Tags stripped, empty ones dropped, each once, in order."""
    out: list[str] = []
    for tag in tags:
        text = tag.strip()
        if text and text not in out:
            out.append(text)
    return out
