"""What every help-desk adapter implements, and the pieces they share.

An adapter is the vendor knowledge the connector needs for one help desk:

* :class:`HelpdeskAdapter`: the static descriptor (``key``, ``display_name``, the vendor's
  event codes) plus, per configured desk, ``verify`` (signature), ``delivery_key``
  (idempotency), ``parse`` (delivery -> :class:`~rules.events.TicketEvent`), ``client``
  (REST write-back) and the webhook installation (``install_plan``, ``install``);
* :class:`HelpdeskClient`: the write-back surface, on top of :class:`BaseHelpdeskClient`,
  which owns the ``requests`` session, the timeouts and the mapping of failures to
  :mod:`adapters.errors`.

The connector runs the pipeline (architecture.md: store, verify, parse, dedupe, decide, write
back); adapters never import ``connector``. Vendor payloads are read with marshmallow schemas
built on :class:`VendorSchema` and nothing else, so that a bad body names the failing path.
"""

from __future__ import annotations

import abc
import base64
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import metadata
from typing import Any, ClassVar, Protocol, TypeVar

import requests
from marshmallow import EXCLUDE, Schema, ValidationError

from adapters.errors import (
    AnomalousPayloadError,
    HelpdeskAPIError,
    HelpdeskHostError,
    HelpdeskTimeoutError,
    MissingSecretError,
    SignatureError,
    UnsupportedOperationError,
)
from adapters.fields import short_repr
from adapters.signing import SIGNATURE_MISMATCH, compare, hmac_hex
from rules.events import EventType, TicketEvent
from rules.priorities import PriorityMap

__all__ = [
    "BaseHelpdeskClient",
    "DeskConfig",
    "HeaderSource",
    "HelpdeskAdapter",
    "HelpdeskClient",
    "InstallPlan",
    "InstallResult",
    "Requester",
    "TicketEvent",
    "VendorSchema",
    "flatten_errors",
    "hook_endpoint",
    "load_json_object",
    "load_schema",
    "basic_authorization",
    "marker_tag",
    "normalize_headers",
    "option_choice",
    "secret_env_name",
    "user_agent",
]


# --------------------------------------------------------------------------------------------
# Configuration and small values


class DeskConfig(Protocol):
    """The attributes an adapter reads from one configured desk.

    :class:`connector.config.DeskSettings` provides them; an empty string means "not set".
    Members are read-only properties so that frozen dataclasses satisfy the protocol.
    """

    @property
    def key(self) -> str:
        """The desk key: ``/hooks/<key>``."""

    @property
    def adapter(self) -> str:
        """The adapter key (``"zendesk"``)."""

    @property
    def base_url(self) -> str:
        """The desk's API host, ``https://acme.zendesk.com``, no trailing slash."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Webhook secrets in force (several during a rotation; none: refuse everything)."""

    @property
    def secret_env(self) -> tuple[str, ...]:
        """The NAMES of the environment variables holding the secrets, for messages."""

    @property
    def email(self) -> str | None:
        """API login e-mail (Zendesk API token auth)."""

    @property
    def token(self) -> str | None:
        """API token, or OAuth access token."""

    @property
    def api_key(self) -> str | None:
        """API key (Freshdesk)."""

    @property
    def client_id(self) -> str | None:
        """OAuth client id (Help Scout)."""

    @property
    def client_secret(self) -> str | None:
        """OAuth client secret (Help Scout)."""

    @property
    def username(self) -> str | None:
        """Basic-auth user."""

    @property
    def password(self) -> str | None:
        """Basic-auth password."""

    @property
    def api_user_id(self) -> str | None:
        """The connector's own user in the desk; events it caused are ignored."""

    @property
    def timeout(self) -> float:
        """Seconds per API request."""

    @property
    def fields(self) -> Mapping[str, str]:
        """Logical field name (``care_category``) -> the desk's custom field id."""

    @property
    def options(self) -> Mapping[str, Any]:
        """Adapter-specific options (``[desks.<key>.options]``)."""

    @property
    def priority(self) -> PriorityMap:
        """How this desk writes the three priority levels."""


@dataclass(frozen=True, slots=True)
class Requester:
    """A desk user as the connector needs it to find the customer."""

    email: str | None
    name: str | None = None
    locale: str | None = None


class HeaderSource(Protocol):
    """Request headers: a ``dict`` or werkzeug's ``Headers``, anything with ``items()``."""

    def items(self) -> Iterable[tuple[str, str]]: ...


def normalize_headers(headers: HeaderSource) -> dict[str, str]:
    """Headers keyed by lower-case name (HTTP header names are case-insensitive).

    Where a name repeats, the first value wins.
    """
    out: dict[str, str] = {}
    for name, value in headers.items():
        out.setdefault(str(name).lower(), str(value))
    return out


def basic_authorization(user: str, password: str) -> dict[str, str]:
    """The ``Authorization`` header of HTTP Basic authentication for ``user:password``."""
    basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {basic}"}


def marker_tag(marker: str) -> str:
    """The text that marks a note or reply as the connector's: ``[care:<marker>]``.

    The caller puts it as the last line of the body; ``has_marker`` looks for it.
    """
    return f"[care:{marker}]"


_Choice = TypeVar("_Choice", bound=str)


def option_choice(
    desk: DeskConfig, name: str, choices: Sequence[_Choice], default: _Choice
) -> _Choice:
    """The desk option ``name`` (lower-cased), one of ``choices``; ``default`` when unset.

    :raises ValueError: any other value, naming the desk, the option and the choices.
    """
    value = str(desk.options.get(name, default)).strip().lower()
    for choice in choices:
        if choice == value:
            return choice
    raise ValueError(
        f"desk {desk.key!r}: options.{name} must be one of {', '.join(choices)}, got {value!r}"
    )


def secret_env_name(desk: DeskConfig) -> str:
    """The environment variable that holds the desk's webhook secret: the first of its
    ``secret_env``, else ``CARE_<DESK KEY>_SECRET``."""
    return next(iter(desk.secret_env), "") or f"CARE_{desk.key.upper().replace('-', '_')}_SECRET"


#: A public URL the connector can be reached at: http(s), a host, an optional path.
_PUBLIC_URL_RE = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")


def hook_endpoint(public_url: str, desk_key: str) -> str:
    """Where the desk posts its deliveries: ``<public_url>/hooks/<desk key>``.

    :raises ValueError: ``public_url`` is not an http(s) URL.
    """
    url = public_url.strip().rstrip("/")
    if not _PUBLIC_URL_RE.fullmatch(url):
        raise ValueError(f"not an http(s) URL: {public_url!r} (e.g. https://care.example.com)")
    return f"{url}/hooks/{desk_key}"


@functools.cache
def _version() -> str:
    try:
        return metadata.version("care-connector")
    except metadata.PackageNotFoundError:
        return "0"


def user_agent(desk_key: str) -> str:
    """``care-connector/<version>-<desk key>``: the User-Agent of every API request."""
    return f"care-connector/{_version()}-{desk_key}"


class InstallPlan(Protocol):
    """What ``webhooks install`` would create or update on a desk (no IO)."""

    def describe(self) -> list[str]:
        """One line per webhook, trigger or subscription, for the CLI."""
        ...


class InstallResult(Protocol):
    """What ``webhooks install`` did.

    ``secret`` is the webhook signing secret now in force (``None`` where the desk signs
    nothing); ``secret_env`` the variable the operator must set it in.
    """

    @property
    def secret(self) -> str | None: ...

    @property
    def secret_env(self) -> str: ...

    def describe(self) -> list[str]:
        """One line per object created, updated or left unchanged."""
        ...


# --------------------------------------------------------------------------------------------
# Payloads: JSON at the edge, marshmallow with dotted-path errors


class VendorSchema(Schema):
    """Base of every vendor payload schema: lenient, since vendors add fields all the time.

    Unknown keys are dropped (``EXCLUDE``); use ``data_key=`` for vendor names.
    """

    class Meta:
        unknown = EXCLUDE


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow ``err.messages`` as ``{"detail.tags.0": ["Not a valid string."]}``.

    Schema-level messages (``_schema``) are reported on their parent path; the body itself
    is ``"$"``.
    """
    out: dict[str, list[str]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, path if key == "_schema" else (f"{path}.{key}" if path else str(key)))
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item, path)
        else:
            out.setdefault(path or "$", []).append(str(node))

    walk(messages, prefix)
    return out


def load_json_object(body: bytes, *, adapter: str) -> dict[str, Any]:
    """The body as a JSON object; NUL and lone surrogates (``\\u0000``, ``\\ud800``) in its
    strings are read as U+FFFD, so that everything taken from it can be stored.

    :raises AnomalousPayloadError: not UTF-8, not JSON, not an object, or nested more than
        :data:`MAX_JSON_DEPTH` levels.
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise AnomalousPayloadError(
            f"body is not UTF-8 text (byte {err.start})",
            adapter=adapter,
            errors={"$": ["not UTF-8"]},
        ) from None
    except RecursionError:
        raise AnomalousPayloadError(
            "body is nested too deeply", adapter=adapter, errors={"$": ["nested too deeply"]}
        ) from None
    except ValueError as err:
        raise AnomalousPayloadError(
            f"body is not JSON: {err}", adapter=adapter, errors={"$": ["not JSON"]}
        ) from None
    if not isinstance(data, dict):
        kind = "an array" if isinstance(data, list) else type(data).__name__
        raise AnomalousPayloadError(
            f"body is {kind}, expected a JSON object",
            adapter=adapter,
            errors={"$": ["expected a JSON object"]},
        )
    # Fewer brackets than the limit cannot nest deeper than it: most bodies skip the walk.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _too_deep(data):
        raise AnomalousPayloadError(
            f"body is nested more than {MAX_JSON_DEPTH} levels deep",
            adapter=adapter,
            errors={"$": ["nested too deeply"]},
        )
    if _SUSPECT_ESCAPE.search(body):
        cleaned: dict[str, Any] = _storable(data)
        return cleaned
    return data


#: The deepest JSON body accepted. Vendor payloads nest about ten levels; the limit keeps the
#: recursive helpers that read a payload (placeholders, ``{"value": ...}`` options) far from
#: Python's recursion limit.
MAX_JSON_DEPTH = 64


# A JSON escape that may decode to text no database stores: NUL, or a UTF-16 surrogate (a
# lone one stays a surrogate in Python; the drivers refuse to encode it).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(node: Any) -> Any:
    """``node`` with NUL and lone surrogates in its strings and keys made U+FFFD, so that
    ids, keys and texts taken from it can be stored (PostgreSQL refuses NUL in text, both
    drivers refuse surrogates). Called on bodies already known to nest at most
    :data:`MAX_JSON_DEPTH` levels."""
    if isinstance(node, str):
        return _UNSTORABLE.sub("\ufffd", node)
    if isinstance(node, dict):
        return {_UNSTORABLE.sub("\ufffd", key): _storable(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_storable(item) for item in node]
    return node


def _too_deep(data: dict[str, Any] | list[Any]) -> bool:
    """Whether ``data`` nests deeper than :data:`MAX_JSON_DEPTH` (walked without recursion)."""
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


@functools.cache
def schema_instance(cls: type[Schema]) -> Schema:
    """One instance per schema class, built once: building a schema binds and copies all its
    fields, which costs more than loading a payload with it. Loading does not change it."""
    return cls()


def load_schema(
    schema: Schema, data: Mapping[str, Any], *, adapter: str, what: str, prefix: str = ""
) -> dict[str, Any]:
    """``schema.load(data)``, a :class:`ValidationError` becoming an
    :class:`AnomalousPayloadError` whose ``errors`` name the failing paths.

    :param what: what the payload is, for the message (``"ticket.created event"``).
    :param prefix: the path of ``data`` inside the body (``"detail"``).
    """
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as err:
        errors = flatten_errors(err.messages, prefix)
        first = next(iter(errors.items()), ("$", ["invalid"]))
        raise AnomalousPayloadError(
            f"{what}: {first[0]}: {first[1][0]}", adapter=adapter, errors=errors
        ) from None
    return loaded


# --------------------------------------------------------------------------------------------
# The adapter


class HelpdeskAdapter(abc.ABC):
    """One help desk's vendor knowledge, bound to one configured desk.

    Subclasses set the class attributes and implement the abstract methods; the connector
    calls them in the order of architecture.md (verify, delivery key, parse).

    :param desk: the configured desk this instance serves.
    """

    #: The adapter key, as in ``adapter = "zendesk"``.
    key: ClassVar[str]
    #: The vendor's own spelling ("Help Scout").
    display_name: ClassVar[str]
    #: Vendor event code -> canonical type, for every event the adapter handles.
    event_types: ClassVar[Mapping[str, EventType]]
    #: Accepted clock skew of a signature timestamp, both ways, unless the desk's
    #: ``options.signature_tolerance`` (seconds) says otherwise.
    signature_tolerance: ClassVar[timedelta] = timedelta(minutes=5)

    def __init__(self, desk: DeskConfig) -> None:
        self.desk = desk

    @property
    def secrets(self) -> tuple[str, ...]:
        """The desk's non-empty webhook secrets."""
        return tuple(secret for secret in self.desk.secrets if secret)

    def require_secrets(self) -> tuple[str, ...]:
        """The desk's webhook secrets, for a ``verify`` that fails closed without one.

        :raises MissingSecretError: none configured: every delivery is refused.
        """
        if not self.secrets:
            names = ", ".join(self.desk.secret_env) or f"[desks.{self.desk.key}] secret_env"
            raise MissingSecretError(
                f"desk {self.desk.key!r} has no webhook secret (set {names}): "
                "every delivery is refused",
                adapter=self.key,
            )
        return self.secrets

    def verify_hex_hmac(
        self, headers: HeaderSource, body: bytes, *, header: str, algo: str, hint: str
    ) -> None:
        """Check a ``<algo>=<hex HMAC of the body>`` header against every configured secret
        (a rotation lists two), for desks that sign the body alone.

        :param header: the header's name as the desk documents it (``X-Hub-Signature``).
        :param algo: the :mod:`hashlib` name that prefixes the digest (``sha1``, ``sha256``).
        :param hint: how to make the desk send the header, for the message when it is missing.
        :raises MissingSecretError: no secret configured.
        :raises SignatureError: the header missing or not ``<algo>=<hex>``, or no secret
            matching.
        """
        secrets = self.require_secrets()
        given = normalize_headers(headers).get(header.lower(), "").strip()
        if not given:
            raise SignatureError(f"missing {header} header ({hint})", adapter=self.key)
        prefix, _, digest = given.partition("=")
        if prefix.strip().lower() != algo or not digest.strip():
            raise SignatureError(
                f"{header} {short_repr(given)} is not {algo}=<hex>", adapter=self.key
            )
        digest = digest.strip().lower()
        if not any(compare(hmac_hex(secret, body, algo), digest) for secret in secrets):
            raise SignatureError(SIGNATURE_MISMATCH, adapter=self.key)

    @property
    def tolerance(self) -> timedelta:
        """The signature window for this desk."""
        raw = self.desk.options.get("signature_tolerance")
        if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0:
            return timedelta(seconds=float(raw))
        return self.signature_tolerance

    @abc.abstractmethod
    def verify(self, headers: HeaderSource, body: bytes, *, now: datetime) -> None:
        """Check that the delivery comes from the desk, over the raw body bytes.

        :param now: the time of receipt (aware), for the timestamp window.
        :raises MissingSecretError: the desk has no secret: fail closed.
        :raises SignatureError: missing or bad signature, timestamp outside the window.
        """

    @abc.abstractmethod
    def delivery_key(self, headers: HeaderSource, body: bytes) -> str:
        """The idempotency key of the delivery (the vendor's event id where there is one,
        else the SHA-256 of the body). Never raises, whatever the body."""

    @abc.abstractmethod
    def parse(self, headers: HeaderSource, body: bytes, *, delivery_key: str) -> list[TicketEvent]:
        """The events the delivery carries.

        :raises UnsupportedEventError: an event type the connector does not handle.
        :raises AnomalousPayloadError: anything else that does not parse. No other
            exception, for any input.
        """

    @abc.abstractmethod
    def client(self, session: requests.Session | None = None) -> HelpdeskClient:
        """A REST client for this desk; pass a session to share its connection pool."""

    @abc.abstractmethod
    def install_plan(self, public_url: str) -> InstallPlan:
        """What ``webhooks install`` creates on the desk for ``<public_url>/hooks/<key>``.

        :raises ValueError: ``public_url`` is not an http(s) URL.
        """

    @abc.abstractmethod
    def install(self, public_url: str, client: HelpdeskClient | None = None) -> InstallResult:
        """Create or update what :meth:`install_plan` describes; idempotent (objects are
        found by name and updated, never duplicated).

        :raises HelpdeskAPIError: a call failed; what was done before stays done.
        """

    def is_own_event(self, event: TicketEvent) -> bool:
        """Whether the connector's own API user caused ``event`` (the loop guard).

        Keyed on the author, never on the channel alone: another integration writing through
        the API is not the connector.
        """
        own = (self.desk.api_user_id or "").strip()
        if not own:
            return False
        author = event.actor_id
        if author is None and event.comment is not None:
            author = event.comment.author_id
        return author is not None and author.strip() == own


# --------------------------------------------------------------------------------------------
# REST clients


class BaseHelpdeskClient:
    """A ``requests`` session bound to one desk: base URL, timeouts, User-Agent, auth, and
    the mapping of every failure to :mod:`adapters.errors`.

    No retries here: the outbox retries, with backoff and ``Retry-After``.

    :param desk: the desk to talk to.
    :param session: a session to reuse (connection pooling); a new one by default. The
        client never changes the session's own headers: it sends its own with each request.
    """

    #: Upper bound of the connect timeout; the read timeout is the desk's ``timeout``.
    connect_timeout: ClassVar[float] = 5.0

    def __init__(self, desk: DeskConfig, session: requests.Session | None = None) -> None:
        self.desk = desk
        self.base_url = desk.base_url.rstrip("/")
        self.timeout: tuple[float, float] = (
            min(float(desk.timeout), self.connect_timeout),
            float(desk.timeout),
        )
        self.session = session if session is not None else requests.Session()
        self._headers = {
            "User-Agent": user_agent(desk.key),
            "Accept": "application/json",
            **self._auth_headers(),
        }

    def _auth_headers(self) -> dict[str, str]:
        """Authentication headers for every request; none by default."""
        return {}

    def _url(self, path: str) -> str:
        if path.startswith(self.base_url + "/"):
            return path  # a pagination link the desk returned
        if not path.startswith("/"):
            # Credentials go with every request: never to another host.
            raise ValueError(f"refusing to call {path!r}: not on {self.base_url}")
        return self.base_url + path

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
    ) -> requests.Response:
        """Send one request; return the 2xx response.

        :param path: ``/api/v2/...`` on the desk, or a full URL the desk returned.
        :raises HelpdeskTimeoutError: no answer in time (the write may have happened).
        :raises HelpdeskHostError: the desk could not be reached.
        :raises HelpdeskAPIError: any non-2xx answer (``from_response``).
        """
        url = self._url(path)
        try:
            response = self.session.request(
                method,
                url,
                json=json,
                params=dict(params) if params is not None else None,
                headers=self._headers,
                timeout=self.timeout,
            )
        except requests.ConnectTimeout as err:
            # Nothing was sent: a host problem, not an unclear write.
            raise HelpdeskHostError(
                f"{method} {url}: could not connect within {self.timeout[0]:g} s",
                method=method,
                url=url,
            ) from err
        except requests.Timeout as err:
            raise HelpdeskTimeoutError(
                f"{method} {url}: no answer within {self.timeout[1]:g} s",
                method=method,
                url=url,
            ) from err
        except requests.ConnectionError as err:
            raise HelpdeskHostError(
                f"{method} {url}: cannot reach the desk: {err}", method=method, url=url
            ) from err
        except requests.RequestException as err:
            raise HelpdeskAPIError(
                f"{method} {url}: {err}", permanent=False, method=method, url=url
            ) from err
        if not 200 <= response.status_code < 300:
            raise HelpdeskAPIError.from_response(response)
        return response

    def _get(self, path: str, *, params: Mapping[str, str | int] | None = None) -> Any:
        return self._json(self._request("GET", path, params=params))

    def _post(self, path: str, body: Any) -> Any:
        return self._json(self._request("POST", path, json=body))

    def _put(self, path: str, body: Any) -> Any:
        return self._json(self._request("PUT", path, json=body))

    def _delete(self, path: str, body: Any = None) -> Any:
        return self._json(self._request("DELETE", path, json=body))

    @staticmethod
    def _json(response: requests.Response) -> Any:
        """The response's JSON; ``None`` for an empty body (204).

        :raises HelpdeskAPIError: a body that is not JSON (retryable: a proxy's page).
        """
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            request = response.request
            method = (request.method or "") if request is not None else ""
            url = (request.url or "") if request is not None else ""
            raise HelpdeskAPIError(
                f"{method} {url}: HTTP {response.status_code} with a body that is not JSON",
                status=response.status_code,
                body=response.text,
                permanent=False,
                method=method,
                url=url,
            ) from None


class HelpdeskClient(BaseHelpdeskClient, abc.ABC):
    """The write-back surface every adapter's client implements.

    Bodies are plain text. Notes and replies carry a marker: the caller ends the body with
    the line :func:`marker_tag` and, after an unclear failure, asks :meth:`has_marker`
    before sending again, so that each note is applied once.
    """

    @abc.abstractmethod
    def set_priority(self, ticket_id: str, value: str) -> None:
        """Set the ticket's priority field to the desk's own ``value`` (``kind = "field"``)."""

    @abc.abstractmethod
    def add_tags(self, ticket_id: str, tags: Sequence[str]) -> None:
        """Add ``tags``, keeping every tag already there."""

    @abc.abstractmethod
    def remove_tags(self, ticket_id: str, tags: Sequence[str]) -> None:
        """Remove ``tags``, keeping the others."""

    @abc.abstractmethod
    def add_note(self, ticket_id: str, body: str, *, marker: str) -> None:
        """Add an internal note (agents only)."""

    @abc.abstractmethod
    def add_reply(self, ticket_id: str, body: str, *, marker: str) -> None:
        """Add a public reply (reaches the customer)."""

    @abc.abstractmethod
    def has_marker(self, ticket_id: str, marker: str) -> bool:
        """Whether a note or reply carrying ``marker`` is already on the ticket."""

    @abc.abstractmethod
    def get_requester(self, user_id: str) -> Requester | None:
        """The desk user ``user_id``; ``None`` when the desk has no such user (404)."""

    @abc.abstractmethod
    def get_priority(self, ticket_id: str) -> str | None:
        """The ticket's current priority value, ``None`` when unset (for "never lower")."""

    def get_tags(self, ticket_id: str) -> tuple[str, ...] | None:
        """The ticket's tags, for desks whose webhook bodies do not carry them (Zammad).

        ``None`` (this default) means the desk's events carry their tags, so the worker has
        nothing to read.
        """
        return None

    def notify_customer(self, email: str, subject: str, body: str, *, marker: str) -> None:
        """Send the customer at ``email`` a message outside any ticket (an expiry reminder):
        a new ticket or conversation addressed to them, as the desk allows.

        ``body`` ends with the line :func:`marker_tag`; an adapter should make the call
        idempotent per ``marker`` (the outbox may retry it after a timeout).

        :raises UnsupportedOperationError: this adapter cannot (the default): permanent, so
            the outbox dead-letters the notice with a message saying so.
        """
        raise UnsupportedOperationError("notify_customer", adapter=self.desk.adapter)

    def check_credentials(self) -> str:
        """Make one cheap authenticated read (``care-connector config check``) and say whose
        credentials they are (``"user 900 Care Bot <bot@example.com>"``).

        :raises HelpdeskAPIError: the desk refused the credentials, or could not be reached.
        :raises UnsupportedOperationError: this adapter has no such check (the default).
        """
        raise UnsupportedOperationError("check_credentials", adapter=self.desk.adapter)

    @staticmethod
    def _check_marker(body: str, marker: str) -> None:
        if marker_tag(marker) not in body:
            raise ValueError(f"the body must carry its marker line {marker_tag(marker)!r}")
