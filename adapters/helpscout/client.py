"""Help Scout's Mailbox API 2.0: the write-back calls, the reads the worker needs, and the calls
the installer makes (https://developer.helpscout.com/mailbox-api/).

Authentication is OAuth2 only. With the desk's ``client_id`` and ``client_secret`` the client
uses the *client credentials* flow: ``POST /v2/oauth2/token`` (form fields ``grant_type``,
``client_id``, ``client_secret``) answers ``{"access_token", "expires_in", "token_type"}``
(``expires_in`` is 172800 s, two days, in Help Scout's own example). The token is kept in the
client, shared by the worker threads under a lock, and fetched again a minute before it
expires; a 401 drops it and the request is sent once more with a new one. A desk with only a
``token`` uses it as a fixed Bearer token (no refresh).

Help Scout has no priority field: a desk's priority map is of kind ``"tag"`` and the worker adds
the priority tag with the other tags, so :meth:`HelpScoutClient.set_priority` refuses.

Rate limits answer 429 with ``X-RateLimit-Retry-After`` (seconds), not ``Retry-After``
(https://developer.helpscout.com/mailbox-api/overview/rate-limiting); both are read. Writes
count twice against the limit, so tag writes that change nothing are not sent.

Notices outside a conversation (:meth:`HelpScoutClient.notify_customer`) open a conversation
in the mailbox ``options.mailbox_id``, or the only one ``options.mailbox_ids`` lists.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import requests

from adapters.base import DeskConfig, HelpdeskClient, Requester, marker_tag
from adapters.errors import (
    HelpdeskAPIError,
    HelpdeskHostError,
    HelpdeskTimeoutError,
    parse_retry_after,
)
from adapters.fields import blank_to_none, describe_account, full_name
from adapters.helpscout.schemas import html_text

__all__ = ["HelpScoutClient", "TOKEN_PATH"]

#: The OAuth2 token endpoint, on the API host.
TOKEN_PATH = "/v2/oauth2/token"
#: Help Scout's rate-limit wait header (seconds).
RATE_LIMIT_HEADER = "X-RateLimit-Retry-After"

_NUMERIC_ID = re.compile(r"[0-9]{1,20}")
#: Notice markers go into a search query as they are: no character the search reads as syntax.
_SEARCHABLE_MARKER = re.compile(r"[A-Za-z0-9._]{1,200}")


def _numeric(kind: str, value: str | int) -> str:
    text = str(value).strip()
    if not _NUMERIC_ID.fullmatch(text):
        raise ValueError(f"Help Scout {kind} id must be a number, got {value!r}")
    return text


def _embedded(data: Any, key: str, what: str) -> list[dict[str, Any]]:
    """``data["_embedded"][key]``, the list of a HAL answer (an absent ``_embedded`` is an
    empty list: Help Scout leaves it out when there is nothing to list)."""
    if not isinstance(data, dict):
        raise HelpdeskAPIError(f"{what}: the answer is not a JSON object", permanent=False)
    embedded = data.get("_embedded")
    if embedded is None:
        return []
    items = embedded.get(key) if isinstance(embedded, dict) else None
    if not isinstance(items, list):
        raise HelpdeskAPIError(f"{what}: the answer has no {key!r} list", permanent=False)
    return [item for item in items if isinstance(item, dict)]


def tag_names(conversation: Mapping[str, Any]) -> list[str]:
    """The tag names of a conversation object (``tags: [{"tag": "vip"}, ...]``)."""
    raw = conversation.get("tags")
    names: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        name = item.get("tag") if isinstance(item, Mapping) else item
        if isinstance(name, str) and name.strip():
            names.append(name.strip())
    return names


class HelpScoutClient(HelpdeskClient):
    """REST client for one Help Scout account (``base_url`` ``https://api.helpscout.net``).

    :param desk: the desk; ``client_id`` and ``client_secret`` (or a fixed ``token``), and
        the mailbox notices go to (``options.mailbox_id``, see :meth:`notify_customer`).
    :param clock: monotonic seconds, for the token's expiry (tests pass their own).
    :raises ValueError: an ``options.mailbox_id`` that is not a mailbox id.
    """

    #: Threads and webhooks per page are Help Scout's; this stops a runaway pagination.
    max_pages: ClassVar[int] = 200
    #: The token is fetched again this long before Help Scout says it expires.
    refresh_margin: ClassVar[float] = 60.0
    #: ``expires_in`` assumed when the token answer has none.
    default_lifetime: ClassVar[float] = 300.0
    #: Conversations whose customer id is remembered (for replies).
    customer_cache_size: ClassVar[int] = 1024

    def __init__(
        self,
        desk: DeskConfig,
        session: requests.Session | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(desk, session)
        self.clock = clock
        self.notice_mailbox = _notice_mailbox(desk)
        self._client_id = (desk.client_id or "").strip()
        self._client_secret = (desk.client_secret or "").strip()
        fixed = (desk.token or "").strip()
        self._refreshable = bool(self._client_id and self._client_secret)
        self._token: str | None = None if self._refreshable else (fixed or None)
        self._expires_at = float("inf")
        self._token_lock = threading.Lock()
        self._customers: OrderedDict[str, str] = OrderedDict()
        self._customers_lock = threading.Lock()

    # ----------------------------------------------------------------------------------------
    # Transport: the bearer token, its refresh, and Help Scout's rate-limit header

    def _send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        token: str | None = None,
    ) -> requests.Response:
        """One HTTP exchange; transport failures become the typed errors, any status is
        returned. (The base class raises on a non-2xx answer before its headers can be read,
        and sends its fixed headers only; a token that changes needs its own.)"""
        headers = dict(self._headers)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            return self.session.request(
                method,
                url,
                json=json,
                data=dict(data) if data is not None else None,
                params=dict(params) if params is not None else None,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.ConnectTimeout as err:
            raise HelpdeskHostError(
                f"{method} {url}: could not connect within {self.timeout[0]:g} s",
                method=method,
                url=url,
            ) from err
        except requests.Timeout as err:
            raise HelpdeskTimeoutError(
                f"{method} {url}: no answer within {self.timeout[1]:g} s", method=method, url=url
            ) from err
        except requests.ConnectionError as err:
            raise HelpdeskHostError(
                f"{method} {url}: cannot reach the desk: {err}", method=method, url=url
            ) from err
        except requests.RequestException as err:
            raise HelpdeskAPIError(
                f"{method} {url}: {err}", permanent=False, method=method, url=url
            ) from err

    @staticmethod
    def _error(response: requests.Response) -> HelpdeskAPIError:
        """The error for a non-2xx answer; the wait from ``Retry-After`` or, Help Scout's
        own, ``X-RateLimit-Retry-After``."""
        error = HelpdeskAPIError.from_response(response)
        if error.retry_after is None:
            error.retry_after = parse_retry_after(response.headers.get(RATE_LIMIT_HEADER))
        return error

    def _fetch_token(self) -> None:
        """``POST /v2/oauth2/token`` with the client credentials; the caller holds the lock."""
        url = self._url(TOKEN_PATH)
        response = self._send(
            "POST",
            url,
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
        )
        if not 200 <= response.status_code < 300:
            raise self._error(response)
        data = self._json(response)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise HelpdeskAPIError(
                f"POST {url}: the answer has no access_token", permanent=False, url=url
            )
        lifetime = data.get("expires_in") if isinstance(data, dict) else None
        seconds = (
            float(lifetime)
            if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > 0
            else self.default_lifetime
        )
        self._token = token.strip()
        self._expires_at = self.clock() + seconds

    def _access_token(self) -> str:
        """The token in force, fetched when missing or within ``refresh_margin`` of expiry.

        :raises HelpdeskAPIError: no credentials (permanent), or the token call failed.
        """
        if not self._refreshable:
            if self._token is None:
                raise HelpdeskAPIError(
                    f"desk {self.desk.key!r} has no Help Scout credentials: set client_id_env "
                    "and client_secret_env (an OAuth app of the connector's user)",
                    permanent=True,
                )
            return self._token
        with self._token_lock:
            if self._token is None or self.clock() >= self._expires_at - self.refresh_margin:
                self._fetch_token()
            assert self._token is not None
            return self._token

    def _drop_token(self, token: str) -> None:
        """Forget ``token`` after a 401 (unless another thread already replaced it)."""
        with self._token_lock:
            if self._token == token:
                self._token = None

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
    ) -> requests.Response:
        """Send one authenticated request; return the 2xx response.

        A 401 with a refreshable token drops the token and sends the request once more (a
        401 was not applied, so a write is not doubled).

        :raises HelpdeskTimeoutError: no answer in time (the write may have happened).
        :raises HelpdeskHostError: the desk could not be reached.
        :raises HelpdeskAPIError: any non-2xx answer, the token call's included.
        """
        url = self._url(path)
        token = self._access_token()
        response = self._send(method, url, json=json, params=params, token=token)
        if response.status_code == 401 and self._refreshable:
            self._drop_token(token)
            token = self._access_token()
            response = self._send(method, url, json=json, params=params, token=token)
        if not 200 <= response.status_code < 300:
            raise self._error(response)
        return response

    # ----------------------------------------------------------------------------------------
    # Conversations

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        """``GET /v2/conversations/{id}``; remembers its primary customer for replies."""
        cid = _numeric("conversation", conversation_id)
        data = self._get(f"/v2/conversations/{cid}")
        if not isinstance(data, dict) or data.get("id") is None:
            raise HelpdeskAPIError(
                f"GET /v2/conversations/{cid}: the answer is not a conversation", permanent=False
            )
        customer = data.get("primaryCustomer")
        customer_id = customer.get("id") if isinstance(customer, dict) else None
        if isinstance(customer_id, int | str) and not isinstance(customer_id, bool):
            self._remember_customer(cid, str(customer_id))
        return data

    def _remember_customer(self, conversation_id: str, customer_id: str) -> None:
        with self._customers_lock:
            self._customers[conversation_id] = customer_id
            self._customers.move_to_end(conversation_id)
            while len(self._customers) > self.customer_cache_size:
                self._customers.popitem(last=False)

    def customer_of(self, conversation_id: str) -> str:
        """The conversation's primary customer id: remembered, else read from the desk.

        :raises HelpdeskAPIError: the conversation has no customer (permanent).
        """
        cid = _numeric("conversation", conversation_id)
        with self._customers_lock:
            known = self._customers.get(cid)
        if known is not None:
            return known
        self.get_conversation(cid)
        with self._customers_lock:
            found = self._customers.get(cid)
        if found is None:
            raise HelpdeskAPIError(
                f"GET /v2/conversations/{cid}: the conversation has no primary customer to "
                "reply to",
                permanent=True,
            )
        return found

    # ----------------------------------------------------------------------------------------
    # Write-back

    def set_priority(self, ticket_id: str, value: str) -> None:
        """Refused: Help Scout conversations have no priority field.

        :raises HelpdeskAPIError: always (permanent), naming the configuration to fix.
        """
        raise HelpdeskAPIError(
            f"desk {self.desk.key!r}: Help Scout has no priority field; the priority map must "
            f'be of kind "tag" ([priorities.helpscout]) so that the level is written as a tag '
            f"(asked to set {value!r} on conversation {ticket_id})",
            permanent=True,
        )

    def add_tags(self, ticket_id: str, tags: Sequence[str]) -> None:
        """``GET`` the conversation, then ``PUT /v2/conversations/{id}/tags`` with its tags
        plus ``tags`` ("omitted tags are removed", so the whole list is sent). Nothing is
        sent when every tag is already there."""
        wanted = _tag_list(tags)
        if not wanted:
            return
        cid = _numeric("conversation", ticket_id)
        current = tag_names(self.get_conversation(cid))
        present = {tag.casefold() for tag in current}
        added = [tag for tag in wanted if tag.casefold() not in present]
        if added:
            self._put(f"/v2/conversations/{cid}/tags", {"tags": current + added})

    def remove_tags(self, ticket_id: str, tags: Sequence[str]) -> None:
        """``GET`` the conversation, then ``PUT .../tags`` without ``tags`` (case-insensitive,
        as Help Scout's tags are); nothing is sent when none of them is there."""
        unwanted = {tag.casefold() for tag in _tag_list(tags)}
        if not unwanted:
            return
        cid = _numeric("conversation", ticket_id)
        current = tag_names(self.get_conversation(cid))
        kept = [tag for tag in current if tag.casefold() not in unwanted]
        if len(kept) != len(current):
            self._put(f"/v2/conversations/{cid}/tags", {"tags": kept})

    def add_note(self, ticket_id: str, body: str, *, marker: str) -> None:
        """``POST /v2/conversations/{id}/notes`` ``{"text": body}``: an internal note."""
        self._check_marker(body, marker)
        cid = _numeric("conversation", ticket_id)
        self._post(f"/v2/conversations/{cid}/notes", {"text": body})

    def add_reply(self, ticket_id: str, body: str, *, marker: str) -> None:
        """``POST /v2/conversations/{id}/reply`` ``{"customer": {"id": ...}, "text": body}``,
        to the conversation's primary customer (read once per conversation, then
        remembered). Help Scout e-mails it to the customer."""
        self._check_marker(body, marker)
        cid = _numeric("conversation", ticket_id)
        customer = self.customer_of(cid)
        customer_id: int | str = int(customer) if _NUMERIC_ID.fullmatch(customer) else customer
        self._post(
            f"/v2/conversations/{cid}/reply", {"customer": {"id": customer_id}, "text": body}
        )

    def notify_customer(self, email: str, subject: str, body: str, *, marker: str) -> None:
        """``POST /v2/conversations``: a new, closed email conversation in the notice
        mailbox with the customer (created by Help Scout if it has none with this address),
        whose one thread is a ``reply`` to them: Help Scout emails it from the mailbox. A
        reply from the customer reopens the conversation.

        Before creating, ``GET /v2/conversations?mailbox=...&status=all
        &query=(body:"<marker>")`` looks for a conversation an earlier try created, and each
        one found is confirmed by its threads (:meth:`has_marker`): if one carries
        ``[care:<marker>]``, nothing is sent.

        Limitation: Help Scout has no field to look a conversation up by directly, so the
        read-back is a search, which sees a new conversation only once Help Scout has indexed
        it; a retry inside that window can send the notice a second time.

        :raises ValueError: ``email`` is not an address, ``body`` lacks its marker line, or
            ``marker`` has characters other than letters, digits, ``.`` and ``_``.
        :raises HelpdeskAPIError: permanent when no notice mailbox is configured.
        """
        self._check_marker(body, marker)
        address = email.strip()
        if "@" not in address or any(ch.isspace() for ch in address):
            raise ValueError(f"not an email address: {email!r}")
        if not _SEARCHABLE_MARKER.fullmatch(marker):
            raise ValueError(
                f"a notice marker must be letters, digits, '.' and '_' (it is searched for), "
                f"got {marker!r}"
            )
        mailbox = self.notice_mailbox
        if mailbox is None:
            raise HelpdeskAPIError(
                f"desk {self.desk.key!r}: no Help Scout mailbox to send the notice from; set "
                "options.mailbox_id",
                permanent=True,
            )
        query: dict[str, str | int] = {
            "mailbox": mailbox,
            "status": "all",
            "query": f'(body:"{marker}")',
        }
        for conversation in self._pages("/v2/conversations", "conversations", params=query):
            found = conversation.get("id")
            if isinstance(found, int | str) and not isinstance(found, bool):
                if _NUMERIC_ID.fullmatch(str(found)) and self.has_marker(str(found), marker):
                    return  # created by an earlier try whose answer was lost
        self._post(
            "/v2/conversations",
            {
                "subject": subject,
                "customer": {"email": address},
                "mailboxId": mailbox,
                "type": "email",
                "status": "closed",
                "threads": [{"type": "reply", "customer": {"email": address}, "text": body}],
            },
        )

    # ----------------------------------------------------------------------------------------
    # Reads

    def has_marker(self, ticket_id: str, marker: str) -> bool:
        """``GET /v2/conversations/{id}/threads``, newest first, every page: does a thread's
        body carry ``[care:<marker>]`` (as sent, or once Help Scout made it HTML)?"""
        cid = _numeric("conversation", ticket_id)
        needle = marker_tag(marker)
        for thread in self._pages(f"/v2/conversations/{cid}/threads", "threads"):
            for key in ("body", "text"):
                value = thread.get(key)
                if isinstance(value, str) and (needle in value or needle in html_text(value)):
                    return True
        return False

    def get_requester(self, user_id: str) -> Requester | None:
        """``GET /v2/customers/{id}``: the first of the customer's e-mails
        (``_embedded.emails[].value``) and the name; ``None`` on 404. Help Scout keeps no
        locale for customers."""
        uid = _numeric("customer", user_id)
        try:
            data = self._get(f"/v2/customers/{uid}")
        except HelpdeskAPIError as err:
            if err.status == 404:
                return None
            raise
        if not isinstance(data, dict):
            raise HelpdeskAPIError(
                f"GET /v2/customers/{uid}: the answer is not a customer", permanent=False
            )
        name = full_name(data.get("firstName"), data.get("lastName"))
        return Requester(email=_first_email(data), name=name, locale=None)

    def get_priority(self, ticket_id: str) -> str | None:
        """The conversation's priority *tag* (the most urgent of the desk's map present), or
        ``None``: what the desk has instead of a priority value."""
        tags = tag_names(self.get_conversation(ticket_id))
        return self.desk.priority.current_tag(tags)

    def _pages(
        self, path: str, key: str, *, params: Mapping[str, str | int] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a HAL list: ``_embedded.<key>``, page after page while
        ``page.number < page.totalPages``."""
        number = 1
        for _ in range(self.max_pages):
            query: dict[str, str | int] = {**(params or {})}
            if number > 1:
                query["page"] = number
            data = self._get(path, params=query or None)
            yield from _embedded(data, key, f"GET {path}")
            page = data.get("page") if isinstance(data, dict) else None
            current = page.get("number") if isinstance(page, dict) else None
            total = page.get("totalPages") if isinstance(page, dict) else None
            if not (isinstance(current, int) and isinstance(total, int) and current < total):
                return
            if current < number:  # the desk did not move on: stop rather than loop
                return
            number = current + 1
        raise HelpdeskAPIError(f"GET {path}: more than {self.max_pages} pages", permanent=True)

    # ----------------------------------------------------------------------------------------
    # Installation (webhooks)

    def list_webhooks(self) -> list[dict[str, Any]]:
        """``GET /v2/webhooks``, every page."""
        return list(self._pages("/v2/webhooks", "webhooks"))

    def create_webhook(self, webhook: Mapping[str, Any]) -> str:
        """``POST /v2/webhooks``; the new id, from the ``Resource-ID`` header (201, no body),
        else the end of ``Location``."""
        response = self._request("POST", "/v2/webhooks", json=dict(webhook))
        found = (response.headers.get("Resource-ID") or "").strip()
        if not found:
            location = (response.headers.get("Location") or "").rstrip("/")
            found = location.rsplit("/", 1)[-1] if location else ""
        if not _NUMERIC_ID.fullmatch(found):
            raise HelpdeskAPIError(
                "POST /v2/webhooks: the answer names no webhook id (Resource-ID)", permanent=False
            )
        return found

    def update_webhook(self, webhook_id: str, webhook: Mapping[str, Any]) -> None:
        """``PUT /v2/webhooks/{id}`` with the whole webhook (204)."""
        wid = _numeric("webhook", webhook_id)
        self._put(f"/v2/webhooks/{wid}", dict(webhook))

    # ----------------------------------------------------------------------------------------
    # Configuration check

    def check_credentials(self) -> str:
        """``GET /v2/users/me`` (after fetching a token with the client credentials): the
        user the OAuth app acts as."""
        data = self._get("/v2/users/me")
        if not isinstance(data, dict) or data.get("id") is None:
            raise HelpdeskAPIError("GET /v2/users/me: the answer has no user id")
        name = full_name(data.get("firstName"), data.get("lastName"))
        return describe_account("user", data["id"], name, blank_to_none(data.get("email")))


def _notice_mailbox(desk: DeskConfig) -> int | None:
    """``options.mailbox_id``, else the only entry of ``options.mailbox_ids``; ``None``
    when neither names one.

    :raises ValueError: ``options.mailbox_id`` is not a number.
    """
    raw = desk.options.get("mailbox_id")
    if raw is not None:
        text = str(raw).strip()
        if isinstance(raw, bool) or not _NUMERIC_ID.fullmatch(text):
            raise ValueError(
                f"desk {desk.key!r}: options.mailbox_id must be a Help Scout mailbox id "
                f"(a number), got {raw!r}"
            )
        return int(text)
    listed = desk.options.get("mailbox_ids", ())
    values = listed if isinstance(listed, list | tuple) else [listed]
    if len(values) == 1 and not isinstance(values[0], bool):
        text = str(values[0]).strip()
        if _NUMERIC_ID.fullmatch(text):
            return int(text)
    return None


def _first_email(customer: Mapping[str, Any]) -> str | None:
    embedded = customer.get("_embedded")
    candidates: list[Any] = []
    if isinstance(embedded, Mapping) and isinstance(embedded.get("emails"), list):
        candidates.extend(embedded["emails"])
    if isinstance(customer.get("emails"), list):
        candidates.extend(customer["emails"])
    for entry in candidates:
        value = entry.get("value") if isinstance(entry, Mapping) else entry
        found = blank_to_none(value)
        if found:
            return found
    return blank_to_none(customer.get("email"))


def _tag_list(tags: Sequence[str]) -> list[str]:
    if isinstance(tags, str):  # a lone string would be sent letter by letter
        raise TypeError("tags must be a sequence of strings, not a string")
    return list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))
