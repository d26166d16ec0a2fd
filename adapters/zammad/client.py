"""Zammad's REST API (``/api/v1``): the write-back calls, the reads the worker needs, and the
calls the installer makes.

Shapes follow zammad-documentation ``api/*.rst`` (tickets, articles, tags, priorities,
users, webhooks, triggers). Authentication, chosen with the desk option ``auth``:

* ``"token"`` (default): a user access token, ``Authorization: Token token={token}``;
* ``"oauth"``: an OAuth2 access token in ``token``, ``Authorization: Bearer {token}``;
* ``"basic"``: the desk's ``username`` and ``password`` (Zammad may have it disabled).

A desk without credentials sends none; Zammad then answers 401, a permanent error. Zammad
documents no rate limit; a 429 (a proxy's, or a future version's) is read like the other
desks': retryable, with ``Retry-After`` when sent.

Priorities are written by id (``{"priority_id": 3}``): the desk's configuration names them
(``"3 high"``, renamable by admins), so the client reads ``GET /api/v1/ticket_priorities`` once
and keeps the names; an unknown name is read again once before it is refused.

Notices outside a ticket (:meth:`ZammadClient.notify_customer`) open a ticket in the group
``options.group`` (a name, or a number for the group's id; default ``"Users"``, the group a
new Zammad starts with); that group's email address sends them.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

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
from adapters.fields import blank_to_none, describe_account, full_name

__all__ = ["AUTH_MODES", "DEFAULT_NOTICE_GROUP", "REPLY_TYPES", "ZammadClient"]

#: Values of the desk option ``auth``.
AUTH_MODES = ("token", "oauth", "basic")
#: Values of the desk option ``reply_type``: how a public reply is written.
REPLY_TYPES = ("email", "note")
#: The group notices open their ticket in when the desk option ``group`` is not set.
DEFAULT_NOTICE_GROUP = "Users"

_NUMERIC_ID = re.compile(r"[0-9]{1,18}")
#: Notice markers go into a search query as they are: no character the search reads as syntax.
_SEARCHABLE_MARKER = re.compile(r"[A-Za-z0-9._]{1,200}")


def _numeric(kind: str, value: str | int) -> str:
    text = str(value).strip()
    if not _NUMERIC_ID.fullmatch(text):
        raise ValueError(f"Zammad {kind} id must be a number, got {value!r}")
    return text


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


class ZammadClient(HelpdeskClient):
    """REST client for one Zammad instance (``https://support.example.com``).

    :param desk: the desk; ``options.auth`` picks the authentication,
        ``options.reply_type`` how replies go out (see :meth:`add_reply`) and
        ``options.group`` where notices open their ticket (see :meth:`notify_customer`).
    :raises ValueError: an unknown ``options.auth`` or ``options.reply_type``, or an
        ``options.group`` that is neither a name nor a group id.
    """

    #: Objects per page when listing webhooks and triggers (Zammad's default page is 500).
    page_size: ClassVar[int] = 100
    #: A safety stop for pagination.
    max_pages: ClassVar[int] = 100

    def __init__(self, desk: DeskConfig, session: requests.Session | None = None) -> None:
        auth = option_choice(desk, "auth", AUTH_MODES, "token")
        reply_type = option_choice(desk, "reply_type", REPLY_TYPES, "email")
        self.auth = auth
        self.reply_type = reply_type
        self.notice_group = _notice_group(desk)
        # name (normalised) -> id of the active priorities, and id -> name of all of them;
        # read once per client, under a lock (worker threads share the client).
        self._priority_ids: dict[str, int] | None = None
        self._priority_names: dict[str, str] = {}
        self._priority_lock = threading.Lock()
        super().__init__(desk, session)

    def _auth_headers(self) -> dict[str, str]:
        if self.auth == "basic":
            user, password = (self.desk.username or "").strip(), self.desk.password or ""
            if not user or not password:
                return {}
            return basic_authorization(user, password)
        token = (self.desk.token or "").strip()
        if not token:
            return {}
        if self.auth == "oauth":
            return {"Authorization": f"Bearer {token}"}
        return {"Authorization": f"Token token={token}"}

    # ----------------------------------------------------------------------------------------
    # Write-back

    def set_priority(self, ticket_id: str, value: str) -> None:
        """``PUT /api/v1/tickets/{id}`` ``{"priority_id": N}``, ``N`` being the id of the
        priority named ``value`` (case and spacing ignored).

        :raises HelpdeskAPIError: permanent when Zammad has no active priority of that name.
        """
        tid = _numeric("ticket", ticket_id)
        priority_id = self.priority_id(value)
        self._put(f"/api/v1/tickets/{tid}", {"priority_id": priority_id})

    def add_tags(self, ticket_id: str, tags: Sequence[str]) -> None:
        """``POST /api/v1/tags/add`` once per tag: Zammad adds one tag per call and keeps the
        others (adding a tag already there is a no-op)."""
        tid = int(_numeric("ticket", ticket_id))
        for tag in _tag_list(tags):
            self._post("/api/v1/tags/add", {"object": "Ticket", "o_id": tid, "item": tag})

    def remove_tags(self, ticket_id: str, tags: Sequence[str]) -> None:
        """``DELETE /api/v1/tags/remove`` once per tag (same body as adding)."""
        tid = int(_numeric("ticket", ticket_id))
        for tag in _tag_list(tags):
            self._delete("/api/v1/tags/remove", {"object": "Ticket", "o_id": tid, "item": tag})

    def add_note(self, ticket_id: str, body: str, *, marker: str) -> None:
        """An internal note: ``POST /api/v1/ticket_articles`` with ``"type": "note"`` and
        ``"internal": true`` (a note sends no mail)."""
        self._check_marker(body, marker)
        tid = int(_numeric("ticket", ticket_id))
        self._post(
            "/api/v1/ticket_articles",
            {
                "ticket_id": tid,
                "body": body,
                "content_type": "text/plain",
                "type": "note",
                "internal": True,
            },
        )

    def add_reply(self, ticket_id: str, body: str, *, marker: str) -> None:
        """A public reply that reaches the customer.

        With ``options.reply_type = "email"`` (default) it is an ``email`` article to the
        ticket's customer: Zammad mails an agent's email article to its ``to`` (from the
        group's email address), so the customer's address is read first
        (``GET /api/v1/tickets/{id}``, then ``GET /api/v1/users/{customer_id}``). A customer
        without an email address, or ``reply_type = "note"``, gets a public ``note``
        (``"internal": false``): shown in the customer portal, but mailed by no one unless a
        trigger does it.
        """
        self._check_marker(body, marker)
        tid = _numeric("ticket", ticket_id)
        article: dict[str, Any] = {
            "ticket_id": int(tid),
            "body": body,
            "content_type": "text/plain",
            "type": "note",
            "internal": False,
        }
        if self.reply_type == "email":
            recipient = self._customer_email(tid)
            if recipient is not None:
                article.update(type="email", to=recipient)
        self._post("/api/v1/ticket_articles", article)

    def notify_customer(self, email: str, subject: str, body: str, *, marker: str) -> None:
        """``POST /api/v1/tickets``: a new, closed ticket in the notice group whose customer
        is ``guess:<email>`` (Zammad finds the user by address, or creates one), with the
        message as its first article, an ``email`` to the customer, which Zammad sends from
        the group's email address. A reply from the customer reopens the ticket as Zammad's
        follow-up settings say.

        Before creating, ``GET /api/v1/tickets/search?query=<marker>`` looks for a ticket an
        earlier try created, and each one found is confirmed by its articles
        (:meth:`has_marker`): if one carries ``[care:<marker>]``, nothing is sent.

        Limitation: Zammad has no field to look a ticket up by directly, so the read-back is
        a search. Without Elasticsearch it reads the database (titles and article bodies) and
        sees a ticket as soon as it exists; with Elasticsearch it sees a ticket once Zammad's
        background job has indexed it (usually seconds), and a retry inside that window can
        send the notice a second time.

        :raises ValueError: ``email`` is not an address, ``body`` lacks its marker line, or
            ``marker`` has characters other than letters, digits, ``.`` and ``_``.
        """
        self._check_marker(body, marker)
        address = _address(email)
        if not _SEARCHABLE_MARKER.fullmatch(marker):
            raise ValueError(
                f"a notice marker must be letters, digits, '.' and '_' (it is searched for), "
                f"got {marker!r}"
            )
        found = self._get("/api/v1/tickets/search", params={"query": marker, "limit": 20})
        ids = found.get("tickets") if isinstance(found, dict) else None
        if not isinstance(ids, list):
            raise HelpdeskAPIError(
                "GET /api/v1/tickets/search: the answer has no 'tickets' list", permanent=False
            )
        for ticket_id in ids:
            if isinstance(ticket_id, int) and not isinstance(ticket_id, bool):
                if self.has_marker(str(ticket_id), marker):
                    return  # created by an earlier try whose answer was lost
        group_key = "group_id" if isinstance(self.notice_group, int) else "group"
        self._post(
            "/api/v1/tickets",
            {
                "title": subject,
                group_key: self.notice_group,
                "customer_id": f"guess:{address}",
                "state": "closed",
                "article": {
                    "subject": subject,
                    "body": body,
                    "content_type": "text/plain",
                    "type": "email",
                    "to": address,
                    "internal": False,
                },
            },
        )

    def _customer_email(self, tid: str) -> str | None:
        ticket = self._get(f"/api/v1/tickets/{tid}")
        if not isinstance(ticket, dict):
            raise HelpdeskAPIError(
                f"GET /api/v1/tickets/{tid}: the answer is not a ticket", permanent=False
            )
        customer_id = ticket.get("customer_id")
        if customer_id is None or isinstance(customer_id, bool):
            return None
        requester = self.get_requester(str(customer_id))
        return requester.email if requester is not None else None

    # ----------------------------------------------------------------------------------------
    # Reads

    def has_marker(self, ticket_id: str, marker: str) -> bool:
        """``GET /api/v1/ticket_articles/by_ticket/{id}`` (every article of the ticket, in one
        answer): does an article's body carry ``[care:<marker>]``?"""
        tid = _numeric("ticket", ticket_id)
        needle = marker_tag(marker)
        articles = self._get(f"/api/v1/ticket_articles/by_ticket/{tid}")
        if not isinstance(articles, list):
            raise HelpdeskAPIError(
                f"GET /api/v1/ticket_articles/by_ticket/{tid}: the answer is not a list",
                permanent=False,
            )
        for article in articles:
            body = article.get("body") if isinstance(article, dict) else None
            if isinstance(body, str) and (needle in body or needle in html.unescape(body)):
                return True
        return False

    def get_requester(self, user_id: str) -> Requester | None:
        """``GET /api/v1/users/{id}``: email, ``firstname lastname`` and the locale from
        ``preferences.locale``; ``None`` on 404."""
        uid = _numeric("user", user_id)
        try:
            user = self._get(f"/api/v1/users/{uid}")
        except HelpdeskAPIError as err:
            if err.status == 404:
                return None
            raise
        if not isinstance(user, dict):
            raise HelpdeskAPIError(
                f"GET /api/v1/users/{uid}: the answer is not a user", permanent=False
            )
        preferences = user.get("preferences")
        locale = preferences.get("locale") if isinstance(preferences, dict) else None
        return Requester(
            email=blank_to_none(user.get("email")),
            name=full_name(user.get("firstname"), user.get("lastname")),
            locale=blank_to_none(locale),
        )

    def get_priority(self, ticket_id: str) -> str | None:
        """``GET /api/v1/tickets/{id}``: the name of the ticket's priority (from its
        ``priority_id``), or ``None``."""
        tid = _numeric("ticket", ticket_id)
        ticket = self._get(f"/api/v1/tickets/{tid}")
        if not isinstance(ticket, dict):
            raise HelpdeskAPIError(
                f"GET /api/v1/tickets/{tid}: the answer is not a ticket", permanent=False
            )
        named = ticket.get("priority")
        if isinstance(named, str) and named.strip():
            return named.strip()
        raw = ticket.get("priority_id")
        if raw is None or isinstance(raw, bool):
            return None
        return self.priority_name(str(raw))

    def get_tags(self, ticket_id: str) -> tuple[str, ...]:
        """``GET /api/v1/tags?object=Ticket&o_id={id}``: the ticket's tags (webhook bodies do
        not carry them)."""
        tid = _numeric("ticket", ticket_id)
        data = self._get("/api/v1/tags", params={"object": "Ticket", "o_id": tid})
        tags = data.get("tags") if isinstance(data, dict) else None
        if not isinstance(tags, list):
            raise HelpdeskAPIError("GET /api/v1/tags: the answer has no tags list", permanent=False)
        return tuple(tag for tag in tags if isinstance(tag, str))

    # ----------------------------------------------------------------------------------------
    # Priorities by name

    def priority_id(self, name: str) -> int:
        """The id of the active priority called ``name``.

        :raises HelpdeskAPIError: permanent when there is none, after one fresh read.
        """
        wanted = _norm(name)
        found = self._priorities().get(wanted)
        if found is None:
            found = self._priorities(refresh=True).get(wanted)
        if found is None:
            known = ", ".join(sorted(self._priority_names.values())) or "none"
            raise HelpdeskAPIError(
                f"Zammad has no active priority named {name!r} (it has: {known}); "
                "check [priorities.zammad] or the desk's priority table",
                permanent=True,
            )
        return found

    def priority_name(self, priority_id: str) -> str | None:
        """The name of priority ``priority_id``; ``None`` when Zammad has none."""
        self._priorities()
        name = self._priority_names.get(priority_id)
        if name is None:
            self._priorities(refresh=True)
            name = self._priority_names.get(priority_id)
        return name

    def _priorities(self, *, refresh: bool = False) -> dict[str, int]:
        with self._priority_lock:
            if self._priority_ids is not None and not refresh:
                return self._priority_ids
            data = self._get("/api/v1/ticket_priorities")
            if not isinstance(data, list):
                raise HelpdeskAPIError(
                    "GET /api/v1/ticket_priorities: the answer is not a list", permanent=False
                )
            ids: dict[str, int] = {}
            names: dict[str, str] = {}
            for item in data:
                if not isinstance(item, dict):
                    continue
                raw_id, name = item.get("id"), item.get("name")
                if not isinstance(raw_id, int) or isinstance(raw_id, bool):
                    continue
                if not isinstance(name, str) or not name.strip():
                    continue
                names[str(raw_id)] = name.strip()
                if item.get("active", True) is not False:
                    ids.setdefault(_norm(name), raw_id)
            self._priority_ids, self._priority_names = ids, names
            return ids

    # ----------------------------------------------------------------------------------------
    # Installation (webhooks, triggers)

    def current_user(self) -> dict[str, Any]:
        """``GET /api/v1/users/me``: the user the credentials belong to."""
        data = self._get("/api/v1/users/me")
        if not isinstance(data, dict) or data.get("id") is None:
            raise HelpdeskAPIError("GET /api/v1/users/me: the answer has no user id")
        return data

    def list_webhooks(self) -> list[dict[str, Any]]:
        """``GET /api/v1/webhooks``, every page."""
        return self._list("/api/v1/webhooks")

    def create_webhook(self, webhook: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/webhooks``; the created webhook (with its ``id``)."""
        return self._created("/api/v1/webhooks", "webhook", self._post("/api/v1/webhooks", webhook))

    def update_webhook(self, webhook_id: str, webhook: Mapping[str, Any]) -> None:
        """``PUT /api/v1/webhooks/{id}``."""
        wid = _numeric("webhook", webhook_id)
        self._put(f"/api/v1/webhooks/{wid}", dict(webhook))

    def list_triggers(self) -> list[dict[str, Any]]:
        """``GET /api/v1/triggers``, every page."""
        return self._list("/api/v1/triggers")

    def create_trigger(self, trigger: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/triggers``; the created trigger (with its ``id``)."""
        return self._created("/api/v1/triggers", "trigger", self._post("/api/v1/triggers", trigger))

    def update_trigger(self, trigger_id: str, trigger: Mapping[str, Any]) -> None:
        """``PUT /api/v1/triggers/{id}`` with the whole trigger."""
        tid = _numeric("trigger", trigger_id)
        self._put(f"/api/v1/triggers/{tid}", dict(trigger))

    def _list(self, path: str) -> list[dict[str, Any]]:
        """Every object of an index endpoint: ``page``/``per_page`` until a short page."""
        out: list[dict[str, Any]] = []
        for page in range(1, self.max_pages + 1):
            data = self._get(path, params={"page": page, "per_page": self.page_size})
            if not isinstance(data, list):
                raise HelpdeskAPIError(f"GET {path}: the answer is not a list", permanent=False)
            out.extend(item for item in data if isinstance(item, dict))
            if len(data) < self.page_size:
                return out
        raise HelpdeskAPIError(f"GET {path}: more than {self.max_pages} pages", permanent=True)

    @staticmethod
    def _created(path: str, kind: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or data.get("id") is None:
            raise HelpdeskAPIError(f"POST {path}: the answer has no {kind} id")
        return data

    # ----------------------------------------------------------------------------------------
    # Configuration check

    def check_credentials(self) -> str:
        """``GET /api/v1/users/me``: the user the credentials belong to."""
        if "Authorization" not in self._headers:
            what = "username and password_env" if self.auth == "basic" else "token_env"
            raise HelpdeskAPIError(
                f"desk {self.desk.key!r} has no API credentials: set {what}", permanent=True
            )
        user = self.current_user()
        name = full_name(user.get("firstname"), user.get("lastname"))
        return describe_account("user", user["id"], name, blank_to_none(user.get("email")))


def _notice_group(desk: DeskConfig) -> str | int:
    """``options.group``: a group name (a string), or a group id (a number)."""
    raw = desk.options.get("group", DEFAULT_NOTICE_GROUP)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return raw
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    raise ValueError(
        f"desk {desk.key!r}: options.group must be a Zammad group name or id, got {raw!r}"
    )


def _address(email: str) -> str:
    address = email.strip()
    if "@" not in address or any(ch.isspace() for ch in address):
        raise ValueError(f"not an email address: {email!r}")
    return address


def _tag_list(tags: Sequence[str]) -> list[str]:
    if isinstance(tags, str):  # a lone string would be sent letter by letter
        raise TypeError("tags must be a sequence of strings, not a string")
    return list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))
