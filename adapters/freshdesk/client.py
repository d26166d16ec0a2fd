"""Freshdesk's REST API v2: the write-back calls, the reads the worker needs, and the calls
the installer makes.

Authentication: HTTP Basic with the agent's API key as the user and ``X`` as the password
(https://support.freshdesk.com/support/solutions/folders/272646; python-freshdesk and
Pipedream do the same). A desk without ``api_key`` sends none; Freshdesk answers 401.

Calls (API v2; shapes as python-freshdesk and Pipedream send them):

==========================  ==============================================================
priority                    ``PUT /api/v2/tickets/{id}`` ``{"priority": 4}`` (an integer)
tags                        no "add tags" call: ``GET`` the ticket, merge, ``PUT
                            /api/v2/tickets/{id}`` ``{"tags": [...]}`` (replaces the list)
internal note               ``POST /api/v2/tickets/{id}/notes`` ``{"body", "private": true}``
public reply                ``POST /api/v2/tickets/{id}/reply`` ``{"body"}``
marker read-back            ``GET /api/v2/tickets/{id}/conversations`` (paginated)
requester                   ``GET /api/v2/contacts/{id}``
notice to a customer        ``POST /api/v2/tickets/outbound_email`` (see
                            :meth:`FreshdeskClient.notify_customer`)
==========================  ==============================================================

Bodies of notes and replies are HTML in Freshdesk: the connector's plain text is escaped and
its line breaks become ``<br>``; the marker line survives both unchanged.

**Tags and the race with agents.** The outbox already sends one ticket's write-backs one at a
time, so the connector never races itself; an agent saving the ticket can. After each tag
write the ticket is read again: if the ticket was written since the first read (its
``updated_at`` moved) and the connector's change is not there (an agent's save with a stale
tag list overwrote it), the read-merge-write runs once more on the fresh list; if it still
does not hold, a retryable error (409) sends the row back to the outbox, which retries with
backoff. Each round re-reads, so a tag an agent removed meanwhile is not put back. A read-back
with an unchanged ``updated_at`` does not show the accepted write yet, and is no conflict.
What no read can see is an agent's tag added between the connector's read and its write (one
round trip): Freshdesk has no conditional update, so that window stays.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import requests

from adapters.base import DeskConfig, HelpdeskClient, Requester, basic_authorization, marker_tag
from adapters.errors import HelpdeskAPIError
from adapters.fields import blank_to_none, describe_account

__all__ = ["FreshdeskClient", "text_to_html"]

_NUMERIC_ID = re.compile(r"[0-9]{1,20}")
#: Freshdesk's priority numbers (1 Low ... 4 Urgent).
_PRIORITIES = range(1, 5)


def _numeric(kind: str, value: str | int) -> str:
    text = str(value).strip()
    if not _NUMERIC_ID.fullmatch(text):
        raise ValueError(f"Freshdesk {kind} id must be a number, got {value!r}")
    return text


def text_to_html(body: str) -> str:
    """The connector's plain text as the HTML Freshdesk expects: escaped, lines joined by
    ``<br>``."""
    return "<br>".join(html.escape(line, quote=False) for line in body.split("\n"))


def _tag_list(tags: Sequence[str]) -> list[str]:
    if isinstance(tags, str):  # a lone string would be sent letter by letter
        raise TypeError("tags must be a sequence of strings, not a string")
    return list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))


def _fold(tags: Sequence[str]) -> set[str]:
    return {tag.casefold() for tag in tags}


def _address(email: str) -> str:
    address = email.strip()
    if "@" not in address or any(ch.isspace() for ch in address):
        raise ValueError(f"not an email address: {email!r}")
    return address


class FreshdeskClient(HelpdeskClient):
    """REST client for one Freshdesk account (``https://<domain>.freshdesk.com``)."""

    #: Items per list page (Freshdesk's maximum is 100).
    page_size: ClassVar[int] = 100
    #: A safety stop for pagination.
    max_pages: ClassVar[int] = 300

    def __init__(self, desk: DeskConfig, session: requests.Session | None = None) -> None:
        raw = desk.options.get("email_config_id")
        text = "" if raw is None else str(raw).strip()
        if isinstance(raw, bool) or (text and not _NUMERIC_ID.fullmatch(text)):
            raise ValueError(
                f"desk {desk.key!r}: options.email_config_id must be a Freshdesk email config "
                f"id (a number), got {raw!r}"
            )
        #: The email config notices are sent from: the option, else the desk's primary one
        #: (read once, by :meth:`notice_email_config`).
        self._email_config_id: int | None = int(text) if text else None
        super().__init__(desk, session)

    def _auth_headers(self) -> dict[str, str]:
        key = (self.desk.api_key or "").strip()
        if not key:
            return {}
        return basic_authorization(key, "X")

    # ----------------------------------------------------------------------------------------
    # Write-back

    def set_priority(self, ticket_id: str, value: str) -> None:
        """``PUT /api/v2/tickets/{id}`` ``{"priority": n}``; ``value`` is the desk's number as
        text (``"4"``), sent as an integer.

        :raises ValueError: not 1-4.
        """
        tid = _numeric("ticket", ticket_id)
        text = str(value).strip()
        if not text.isascii() or not text.isdigit() or int(text) not in _PRIORITIES:
            raise ValueError(f"Freshdesk priority must be 1, 2, 3 or 4, got {value!r}")
        self._put(f"/api/v2/tickets/{tid}", {"priority": int(text)})

    def add_tags(self, ticket_id: str, tags: Sequence[str]) -> None:
        """Add ``tags`` by read-merge-write, keeping the ticket's other tags (see the module
        on the race with agents).

        :raises HelpdeskAPIError: 409 (retryable) when an agent's save undid the change twice.
        """
        wanted = _tag_list(tags)
        if not wanted:
            return
        tid = _numeric("ticket", ticket_id)

        def merged(current: list[str]) -> list[str] | None:
            present = _fold(current)
            missing = [tag for tag in wanted if tag.casefold() not in present]
            return current + missing if missing else None

        self._rewrite_tags(tid, merged, f"add {wanted}")

    def remove_tags(self, ticket_id: str, tags: Sequence[str]) -> None:
        """Remove ``tags`` (any case) by read-merge-write, keeping the others."""
        unwanted = _fold(_tag_list(tags))
        if not unwanted:
            return
        tid = _numeric("ticket", ticket_id)

        def kept(current: list[str]) -> list[str] | None:
            rest = [tag for tag in current if tag.casefold() not in unwanted]
            return rest if len(rest) != len(current) else None

        self._rewrite_tags(tid, kept, f"remove {sorted(unwanted)}")

    def _rewrite_tags(
        self, tid: str, change: Callable[[list[str]], list[str] | None], what: str
    ) -> None:
        """Read, ``change(current) -> new list | None`` (``None``: nothing to do), write, and
        read back; once more on the fresh list if someone else wrote over the change."""
        path = f"/api/v2/tickets/{tid}"
        current, stamp = self._ticket_tags(tid)
        for _ in range(2):
            new = change(current)
            if new is None:
                return
            self._put(path, {"tags": new})
            after, after_stamp = self._ticket_tags(tid)
            # An unchanged updated_at: the read does not show the accepted write yet, which
            # is no sign of anyone else's; only a later write without the change is.
            if change(after) is None or after_stamp == stamp:
                return
            current, stamp = after, after_stamp
        raise HelpdeskAPIError(
            f"PUT {self.base_url}{path}: tags ({what}) were changed again by someone else; "
            "will retry",
            status=409,
            permanent=False,
            method="PUT",
            url=f"{self.base_url}{path}",
        )

    def _ticket(self, tid: str) -> dict[str, Any]:
        data = self._get(f"/api/v2/tickets/{tid}")
        if not isinstance(data, dict) or data.get("id") is None:
            raise HelpdeskAPIError(
                f"GET /api/v2/tickets/{tid}: the answer is not a ticket", permanent=False
            )
        return data

    def _ticket_tags(self, tid: str) -> tuple[list[str], object]:
        """The ticket's tags and its ``updated_at`` (as sent, for comparison only)."""
        ticket = self._ticket(tid)
        tags = ticket.get("tags")
        if tags is None:
            return [], ticket.get("updated_at")
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise HelpdeskAPIError(
                f"GET /api/v2/tickets/{tid}: tags are not a list of strings", permanent=False
            )
        return list(tags), ticket.get("updated_at")

    def add_note(self, ticket_id: str, body: str, *, marker: str) -> None:
        """``POST /api/v2/tickets/{id}/notes`` ``{"body": html, "private": true}``."""
        self._check_marker(body, marker)
        tid = _numeric("ticket", ticket_id)
        self._post(f"/api/v2/tickets/{tid}/notes", {"body": text_to_html(body), "private": True})

    def add_reply(self, ticket_id: str, body: str, *, marker: str) -> None:
        """``POST /api/v2/tickets/{id}/reply`` ``{"body": html}`` (emailed to the requester)."""
        self._check_marker(body, marker)
        tid = _numeric("ticket", ticket_id)
        self._post(f"/api/v2/tickets/{tid}/reply", {"body": text_to_html(body)})

    def notify_customer(self, email: str, subject: str, body: str, *, marker: str) -> None:
        """``POST /api/v2/tickets/outbound_email``: Freshdesk's outbound email, a new ticket
        whose requester is the customer (added as a contact if Freshdesk has none with this
        address) and whose description, the message as HTML, Freshdesk emails to them from
        the email config :meth:`notice_email_config` names. Freshdesk creates it closed (its
        default for outbound email), so it waits in no queue until the customer answers.

        Before creating, the customer's tickets are read back: ``GET
        /api/v2/contacts?email=...``, then ``GET /api/v2/tickets?requester_id=...
        &include=description`` (Freshdesk lists the tickets of the last 30 days, which covers
        every retry); one whose description carries ``[care:<marker>]`` was created by an
        earlier try whose answer was lost, and nothing is sent.

        :raises ValueError: ``email`` is not an address, or ``body`` lacks its marker line.
        :raises HelpdeskAPIError: permanent when no email config can be found.
        """
        self._check_marker(body, marker)
        address = _address(email)
        if self._notice_sent(address, marker):
            return
        self._post(
            "/api/v2/tickets/outbound_email",
            {
                "email": address,
                "subject": subject,
                "description": text_to_html(body),
                "email_config_id": self.notice_email_config(),
            },
        )

    def _notice_sent(self, address: str, marker: str) -> bool:
        """Whether a ticket of the contact ``address`` carries ``marker`` in its description."""
        contacts = self._get("/api/v2/contacts", params={"email": address})
        if not isinstance(contacts, list):
            raise HelpdeskAPIError(
                "GET /api/v2/contacts: the answer is not a list", permanent=False
            )
        needles = {marker_tag(marker), html.escape(marker_tag(marker), quote=False)}
        for contact in contacts:
            contact_id = contact.get("id") if isinstance(contact, dict) else None
            if not isinstance(contact_id, int) or isinstance(contact_id, bool):
                continue
            params: dict[str, str | int] = {"requester_id": contact_id, "include": "description"}
            for ticket in self._pages("/api/v2/tickets", params=params):
                for key in ("description_text", "description"):
                    value = ticket.get(key)
                    if isinstance(value, str) and any(needle in value for needle in needles):
                        return True
        return False

    def notice_email_config(self) -> int:
        """The email config notices go out from: ``options.email_config_id``, else the
        desk's primary active one, the lowest id if several products have one (``GET
        /api/v2/email_configs``, read once per client).

        :raises HelpdeskAPIError: permanent when the desk has no primary email config.
        """
        if self._email_config_id is not None:
            return self._email_config_id
        configs = self._get("/api/v2/email_configs")
        if not isinstance(configs, list):
            raise HelpdeskAPIError(
                "GET /api/v2/email_configs: the answer is not a list", permanent=False
            )
        primary: list[int] = sorted(
            config["id"]
            for config in configs
            if isinstance(config, dict)
            and config.get("primary_role") is True
            and config.get("active", True) is not False
            and isinstance(config.get("id"), int)
            and not isinstance(config.get("id"), bool)
        )
        if not primary:
            raise HelpdeskAPIError(
                f"desk {self.desk.key!r}: Freshdesk lists no active primary email config to "
                "send the notice from; set options.email_config_id",
                permanent=True,
            )
        self._email_config_id = primary[0]
        return primary[0]

    # ----------------------------------------------------------------------------------------
    # Reads

    def has_marker(self, ticket_id: str, marker: str) -> bool:
        """``GET /api/v2/tickets/{id}/conversations``, every page: does a note's or reply's
        ``body`` or ``body_text`` carry ``[care:<marker>]``?"""
        tid = _numeric("ticket", ticket_id)
        needles = {marker_tag(marker), html.escape(marker_tag(marker), quote=False)}
        for item in self._pages(f"/api/v2/tickets/{tid}/conversations"):
            for key in ("body_text", "body"):
                value = item.get(key)
                if isinstance(value, str) and any(needle in value for needle in needles):
                    return True
        return False

    def get_requester(self, user_id: str) -> Requester | None:
        """``GET /api/v2/contacts/{id}``; ``None`` on 404, and for an id that is not a number
        (Freshdesk's ids are numbers: no such contact can exist)."""
        if not _NUMERIC_ID.fullmatch(str(user_id).strip()):
            return None
        uid = str(user_id).strip()
        try:
            data = self._get(f"/api/v2/contacts/{uid}")
        except HelpdeskAPIError as err:
            if err.status == 404:
                return None
            raise
        if not isinstance(data, dict):
            raise HelpdeskAPIError(
                f"GET /api/v2/contacts/{uid}: the answer is not a contact", permanent=False
            )
        return Requester(
            email=blank_to_none(data.get("email")),
            name=blank_to_none(data.get("name")),
            locale=blank_to_none(data.get("language")),
        )

    def get_priority(self, ticket_id: str) -> str | None:
        """``GET /api/v2/tickets/{id}``: the priority number as text (``"3"``), or ``None``."""
        tid = _numeric("ticket", ticket_id)
        priority = self._ticket(tid).get("priority")
        if isinstance(priority, int) and not isinstance(priority, bool):
            return str(priority)
        return None

    def _pages(
        self, path: str, *, key: str | None = None, params: Mapping[str, str | int] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, ``?page=N&per_page=100``: the next page is asked
        for while the answer has a ``Link: <...>; rel="next"`` header, or, without one, while
        pages come back full.

        :param key: the answer is ``{key: [...]}`` (a bare list is read too).
        """
        for page in range(1, self.max_pages + 1):
            query: dict[str, str | int] = {
                **(params or {}),
                "page": page,
                "per_page": self.page_size,
            }
            response = self._request("GET", path, params=query)
            data = self._json(response)
            items = data.get(key) if key is not None and isinstance(data, dict) else data
            if not isinstance(items, list):
                raise HelpdeskAPIError(
                    f"GET {path}: the answer is not a list" + (f" of {key!r}" if key else ""),
                    permanent=False,
                )
            yield from (item for item in items if isinstance(item, dict))
            if "next" in response.links:
                continue
            if response.headers.get("Link") is not None or len(items) < self.page_size:
                return
        raise HelpdeskAPIError(f"GET {path}: more than {self.max_pages} pages", permanent=True)

    # ----------------------------------------------------------------------------------------
    # Installation (automation rules)

    def list_agents(self) -> list[dict[str, Any]]:
        """``GET /api/v2/agents``, every page."""
        return list(self._pages("/api/v2/agents"))

    def list_rules(self, automation_type: int) -> list[dict[str, Any]]:
        """``GET /api/v2/automations/{type}/rules``, every page (1 ticket creation, 4 ticket
        updates). The answer is ``{"rules": [...]}``; a bare list is read too."""
        path = f"/api/v2/automations/{_automation_type(automation_type)}/rules"
        return list(self._pages(path, key="rules"))

    def create_rule(self, automation_type: int, rule: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v2/automations/{type}/rules``; the created rule (with its ``id``)."""
        path = f"/api/v2/automations/{_automation_type(automation_type)}/rules"
        created = self._post(path, dict(rule))
        if not isinstance(created, dict) or created.get("id") is None:
            raise HelpdeskAPIError(f"POST {path}: the answer has no rule id")
        return created

    def update_rule(self, automation_type: int, rule_id: str, rule: Mapping[str, Any]) -> None:
        """``PUT /api/v2/automations/{type}/rules/{id}`` with the whole rule."""
        rid = _numeric("automation rule", rule_id)
        path = f"/api/v2/automations/{_automation_type(automation_type)}/rules/{rid}"
        self._put(path, dict(rule))

    # ----------------------------------------------------------------------------------------
    # Configuration check

    def check_credentials(self) -> str:
        """``GET /api/v2/agents/me``: the agent the API key belongs to."""
        if "Authorization" not in self._headers:
            raise HelpdeskAPIError(
                f"desk {self.desk.key!r} has no API key: set api_key_env", permanent=True
            )
        data = self._get("/api/v2/agents/me")
        if not isinstance(data, dict) or data.get("id") is None:
            raise HelpdeskAPIError("GET /api/v2/agents/me: the answer has no agent id")
        contact = data.get("contact")
        if not isinstance(contact, dict):
            contact = {}
        return describe_account(
            "agent",
            data["id"],
            blank_to_none(contact.get("name")),
            blank_to_none(contact.get("email")),
        )


def _automation_type(value: int) -> int:
    if value not in (1, 3, 4):
        raise ValueError(f"Freshdesk automation type must be 1, 3 or 4, got {value!r}")
    return value
