"""Zendesk's REST API: the write-back calls, the reads the worker needs, and the calls the
installer makes.

Shapes follow Zendesk's OpenAPI documents (``support-api.yaml``, ``webhooks-api.yaml``; the
tests validate every request against them). Authentication, chosen with the desk option
``auth``:

* ``"token"`` (default): API token, ``Authorization: Basic base64("{email}/token:{token}")``
  with the desk's ``email`` and ``token``;
* ``"oauth"``: an OAuth access token in ``token``, ``Authorization: Bearer {token}``.

A desk without credentials sends none; Zendesk then answers 401, a permanent error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
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
from adapters.fields import blank_to_none, describe_account

__all__ = ["AUTH_MODES", "ZendeskClient"]

#: Values of the desk option ``auth``.
AUTH_MODES = ("token", "oauth")

_NUMERIC_ID = re.compile(r"[0-9]{1,20}")
_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _numeric(kind: str, value: str | int) -> str:
    text = str(value).strip()
    if not _NUMERIC_ID.fullmatch(text):
        raise ValueError(f"Zendesk {kind} id must be a number, got {value!r}")
    return text


def _token(kind: str, value: str | int) -> str:
    text = str(value).strip()
    if not _TOKEN_ID.fullmatch(text):
        raise ValueError(f"Zendesk {kind} id must be letters and digits, got {value!r}")
    return text


class ZendeskClient(HelpdeskClient):
    """REST client for one Zendesk account (``https://<subdomain>.zendesk.com``).

    :param desk: the desk; ``options.auth`` picks the authentication (see the module).
    :raises ValueError: an unknown ``options.auth``.
    """

    #: Comments and list pages per request (Zendesk's maximum is 100).
    page_size: ClassVar[int] = 100
    #: A safety stop for pagination.
    max_pages: ClassVar[int] = 500

    def __init__(self, desk: DeskConfig, session: requests.Session | None = None) -> None:
        auth = option_choice(desk, "auth", AUTH_MODES, "token")
        self.auth = auth
        super().__init__(desk, session)

    def _auth_headers(self) -> dict[str, str]:
        token = (self.desk.token or "").strip()
        if not token:
            return {}
        if self.auth == "oauth":
            return {"Authorization": f"Bearer {token}"}
        email = (self.desk.email or "").strip()
        if not email:
            return {}
        return basic_authorization(f"{email}/token", token)

    # ----------------------------------------------------------------------------------------
    # Write-back

    def set_priority(self, ticket_id: str, value: str) -> None:
        """``PUT /api/v2/tickets/{id}`` ``{"ticket": {"priority": value}}`` (API values are
        lower case: ``urgent``, ``high``, ``normal``, ``low``)."""
        tid = _numeric("ticket", ticket_id)
        self._put(f"/api/v2/tickets/{tid}", {"ticket": {"priority": value.strip().lower()}})

    def add_tags(self, ticket_id: str, tags: Sequence[str]) -> None:
        """``PUT /api/v2/tickets/{id}/tags``: Zendesk's "Add Tags", which keeps existing tags
        (updating the ticket's ``tags`` would replace them all)."""
        wanted = _tag_list(tags)
        if wanted:
            tid = _numeric("ticket", ticket_id)
            self._put(f"/api/v2/tickets/{tid}/tags", {"tags": wanted})

    def remove_tags(self, ticket_id: str, tags: Sequence[str]) -> None:
        """``DELETE /api/v2/tickets/{id}/tags`` with the tags to remove."""
        unwanted = _tag_list(tags)
        if unwanted:
            tid = _numeric("ticket", ticket_id)
            self._delete(f"/api/v2/tickets/{tid}/tags", {"tags": unwanted})

    def add_note(self, ticket_id: str, body: str, *, marker: str) -> None:
        """An internal note: a ticket update with ``comment.public = false``."""
        self._comment(ticket_id, body, marker=marker, public=False)

    def add_reply(self, ticket_id: str, body: str, *, marker: str) -> None:
        """A public reply: a ticket update with ``comment.public = true``."""
        self._comment(ticket_id, body, marker=marker, public=True)

    def _comment(self, ticket_id: str, body: str, *, marker: str, public: bool) -> None:
        self._check_marker(body, marker)
        tid = _numeric("ticket", ticket_id)
        # "public" is always sent: otherwise Zendesk reuses the ticket's first comment's value.
        self._put(
            f"/api/v2/tickets/{tid}", {"ticket": {"comment": {"body": body, "public": public}}}
        )

    def notify_customer(self, email: str, subject: str, body: str, *, marker: str) -> None:
        """``POST /api/v2/tickets``: a new ticket whose requester is the customer (created as
        an end user if Zendesk has none with this address), the message as its first, public
        comment, so that Zendesk emails it to them.

        The ticket's ``external_id`` is ``care:<marker>``: before creating, ``GET
        /api/v2/tickets?external_id=...`` looks for it, so a retry after a timeout does not
        send the notice twice.

        :raises ValueError: ``email`` is not an address, or ``body`` lacks its marker line.
        """
        self._check_marker(body, marker)
        address = email.strip()
        if "@" not in address or any(ch.isspace() for ch in address):
            raise ValueError(f"not an email address: {email!r}")
        external_id = f"care:{marker}"
        found = self._get("/api/v2/tickets", params={"external_id": external_id})
        tickets = found.get("tickets") if isinstance(found, dict) else None
        if not isinstance(tickets, list):
            raise HelpdeskAPIError(
                "GET /api/v2/tickets: the answer has no 'tickets' list", permanent=False
            )
        if tickets:
            return  # created by an earlier try whose answer was lost
        self._post(
            "/api/v2/tickets",
            {
                "ticket": {
                    "subject": subject,
                    "comment": {"body": body, "public": True},
                    "requester": {"email": address},
                    "external_id": external_id,
                }
            },
        )

    # ----------------------------------------------------------------------------------------
    # Reads

    def has_marker(self, ticket_id: str, marker: str) -> bool:
        """``GET /api/v2/tickets/{id}/comments``, newest first, every page: does a comment's
        body carry ``[care:<marker>]``?"""
        tid = _numeric("ticket", ticket_id)
        needle = marker_tag(marker)
        for comment in self._paginate(
            f"/api/v2/tickets/{tid}/comments", "comments", params={"sort": "-created_at"}
        ):
            for key in ("body", "plain_body", "html_body"):
                value = comment.get(key)
                if isinstance(value, str) and needle in value:
                    return True
        return False

    def get_requester(self, user_id: str) -> Requester | None:
        """``GET /api/v2/users/{id}``; ``None`` on 404."""
        uid = _numeric("user", user_id)
        try:
            data = self._get(f"/api/v2/users/{uid}")
        except HelpdeskAPIError as err:
            if err.status == 404:
                return None
            raise
        user = data.get("user") if isinstance(data, dict) else None
        if not isinstance(user, dict):
            raise HelpdeskAPIError(
                f"GET /api/v2/users/{uid}: the answer has no user object", permanent=False
            )
        return Requester(
            email=blank_to_none(user.get("email")),
            name=blank_to_none(user.get("name")),
            locale=blank_to_none(user.get("locale")),
        )

    def get_priority(self, ticket_id: str) -> str | None:
        """``GET /api/v2/tickets/{id}``: the ticket's priority, lower case, or ``None``."""
        tid = _numeric("ticket", ticket_id)
        data = self._get(f"/api/v2/tickets/{tid}")
        ticket = data.get("ticket") if isinstance(data, dict) else None
        if not isinstance(ticket, dict):
            raise HelpdeskAPIError(
                f"GET /api/v2/tickets/{tid}: the answer has no ticket object", permanent=False
            )
        priority = blank_to_none(ticket.get("priority"))
        return priority.lower() if priority else None

    def _paginate(
        self, path: str, key: str, *, params: Mapping[str, str | int] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint: cursor pagination (``meta.has_more`` and
        ``meta.after_cursor``), or the offset ``next_page`` link where that is all the answer
        gives."""
        query: dict[str, str | int] | None = {"page[size]": self.page_size, **(params or {})}
        url = path
        seen: set[str] = set()
        for _ in range(self.max_pages):
            data = self._get(url, params=query)
            items = data.get(key) if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise HelpdeskAPIError(
                    f"GET {path}: the answer has no {key!r} list", permanent=False
                )
            yield from (item for item in items if isinstance(item, dict))
            assert isinstance(data, dict)
            meta = data.get("meta")
            if isinstance(meta, dict):
                cursor = meta.get("after_cursor")
                if meta.get("has_more") is True and isinstance(cursor, str) and cursor not in seen:
                    seen.add(cursor)
                    query = {**(query or {}), "page[after]": cursor}
                    continue
                return
            next_page = data.get("next_page")
            if isinstance(next_page, str) and next_page and next_page not in seen:
                if not next_page.startswith(self.base_url + "/"):
                    raise HelpdeskAPIError(
                        f"GET {path}: next page {next_page!r} is not on {self.base_url}",
                        permanent=True,
                    )
                seen.add(next_page)
                url, query = next_page, None
                continue
            return
        raise HelpdeskAPIError(f"GET {path}: more than {self.max_pages} pages", permanent=True)

    # ----------------------------------------------------------------------------------------
    # Installation (webhooks, triggers)

    def list_webhooks(self, name_contains: str) -> list[dict[str, Any]]:
        """``GET /api/v2/webhooks?filter[name_contains]=...``, every page."""
        return list(
            self._paginate(
                "/api/v2/webhooks", "webhooks", params={"filter[name_contains]": name_contains}
            )
        )

    def create_webhook(self, webhook: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v2/webhooks``; the created webhook (with its ``id``)."""
        data = self._post("/api/v2/webhooks", {"webhook": dict(webhook)})
        created = data.get("webhook") if isinstance(data, dict) else None
        if not isinstance(created, dict) or not created.get("id"):
            raise HelpdeskAPIError("POST /api/v2/webhooks: the answer has no webhook id")
        return created

    def update_webhook(self, webhook_id: str, webhook: Mapping[str, Any]) -> None:
        """``PUT /api/v2/webhooks/{id}`` (the signing secret cannot be changed this way)."""
        wid = _token("webhook", webhook_id)
        self._put(f"/api/v2/webhooks/{wid}", {"webhook": dict(webhook)})

    def webhook_signing_secret(self, webhook_id: str) -> str:
        """``GET /api/v2/webhooks/{id}/signing_secret``: the secret Zendesk signs with."""
        wid = _token("webhook", webhook_id)
        data = self._get(f"/api/v2/webhooks/{wid}/signing_secret")
        block = data.get("signing_secret") if isinstance(data, dict) else None
        secret = block.get("secret") if isinstance(block, dict) else None
        if not isinstance(secret, str) or not secret:
            raise HelpdeskAPIError(
                f"GET /api/v2/webhooks/{wid}/signing_secret: the answer has no secret"
            )
        return secret

    def list_triggers(self) -> list[dict[str, Any]]:
        """``GET /api/v2/triggers``, every page."""
        return list(self._paginate("/api/v2/triggers", "triggers"))

    def create_trigger(self, trigger: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v2/triggers``; the created trigger (with its ``id``)."""
        data = self._post("/api/v2/triggers", {"trigger": dict(trigger)})
        created = data.get("trigger") if isinstance(data, dict) else None
        if not isinstance(created, dict) or created.get("id") is None:
            raise HelpdeskAPIError("POST /api/v2/triggers: the answer has no trigger id")
        return created

    def update_trigger(self, trigger_id: str, trigger: Mapping[str, Any]) -> None:
        """``PUT /api/v2/triggers/{id}`` with the whole trigger (conditions and actions are
        replaced together)."""
        tid = _numeric("trigger", trigger_id)
        self._put(f"/api/v2/triggers/{tid}", {"trigger": dict(trigger)})

    def list_trigger_categories(self) -> list[dict[str, Any]]:
        """``GET /api/v2/trigger_categories``, every page."""
        return list(self._paginate("/api/v2/trigger_categories", "trigger_categories"))

    def create_trigger_category(self, name: str) -> dict[str, Any]:
        """``POST /api/v2/trigger_categories``; the created category (with its ``id``)."""
        data = self._post("/api/v2/trigger_categories", {"trigger_category": {"name": name}})
        created = data.get("trigger_category") if isinstance(data, dict) else None
        if not isinstance(created, dict) or created.get("id") is None:
            raise HelpdeskAPIError("POST /api/v2/trigger_categories: the answer has no category id")
        return created

    # ----------------------------------------------------------------------------------------
    # Configuration check

    def check_credentials(self) -> str:
        """``GET /api/v2/users/me``. Zendesk answers it without credentials too, as an
        anonymous user with no id: that answer is a refusal."""
        if "Authorization" not in self._headers:
            raise HelpdeskAPIError(
                f"desk {self.desk.key!r} has no API credentials: set email and token_env "
                '(or token_env with options.auth = "oauth")',
                permanent=True,
            )
        data = self._get("/api/v2/users/me")
        user = data.get("user") if isinstance(data, dict) else None
        if not isinstance(user, dict) or user.get("id") is None:
            raise HelpdeskAPIError(
                "GET /api/v2/users/me: Zendesk did not accept the credentials "
                "(it answered as an anonymous user)",
                permanent=True,
            )
        account = describe_account(
            "user", user["id"], blank_to_none(user.get("name")), blank_to_none(user.get("email"))
        )
        role = user.get("role")
        return account + (f", {role}" if role else "")


def _tag_list(tags: Sequence[str]) -> list[str]:
    if isinstance(tags, str):  # a lone string would be sent letter by letter
        raise TypeError("tags must be a sequence of strings, not a string")
    return list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))
