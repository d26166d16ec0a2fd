"""Hostile deliveries for every registered adapter, shared by ``tests/adapters/test_hostile.py``
(the adapters alone) and ``tests/connector/blueprints/test_hooks_hostile.py`` (the endpoint).

The desks come from the adapter registry, so a new adapter is covered as soon as it is
registered; its real payloads (``tests/fixtures/<key>/``) are the seeds that the strategies
mutate, and its test support (``tests/adapters/<key>/support.py``) signs them. Signatures are
computed for each example, never pasted.

Hypothesis runs derandomized (the examples follow from each test's source, the same on every
machine and in CI) with no example database and no deadline (the machine is shared), and each
test sets its own ``max_examples``.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from adapters import ADAPTERS
from adapters.base import HeaderSource, HelpdeskAdapter
from adapters.errors import (
    AnomalousPayloadError,
    SignatureError,
    UnsupportedEventError,
    WebhookError,
)
from connector.config import DeskSettings, load_settings
from connector.serialize import event_to_json
from rules.events import TicketEvent
from tests.adapters.support import FIXTURES, AdapterSupport

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
SECRET = "hostile-secret-current"
SECRET_ENV = "CARE_HOSTILE_SECRET"

#: Settings every hostile-input test starts from; each adds its ``max_examples``.
HOSTILE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)

#: Strings that have broken parsers somewhere: control characters, digits that are not ASCII,
#: numbers too long for ``int()``, unrendered placeholders, markup, impossible and
#: out-of-range times, SQL.
SPECIAL_STRINGS = (
    "",
    " ",
    "\x00",
    "\ud800",
    "\udfff",
    "a\x00b",
    "²",
    "٣",
    "9" * 5000,
    "1" * 201,
    "-0",
    "NaN",
    "1e999",
    "\u202e\u200b",
    "\r\n",
    "#{ticket.id / no such method}",
    "{{ticket.id}}",
    "<p>" * 1000,
    "<blockquote>" * 400 + "x",
    "<script>alert(1)</script>",
    "&#0;&#xd800;&#1114112;",
    "2026-13-45T99:99:99Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "2026-03-10 09:58:00 UTC",
    "'; DROP TABLE events; --",
    "zen:event-type:ticket.created",
    "care_connector",
    "user:",
    "sha1=",
)

#: Bytes that make a body invalid UTF-8: a lone continuation byte, a truncated sequence, an
#: overlong slash, an encoded surrogate, a code point above U+10FFFF, bytes never valid.
INVALID_UTF8 = (b"\x80", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff\xfe")

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    """Whether both databases can store ``text`` (PostgreSQL refuses NUL in text; the drivers
    refuse lone surrogates)."""
    return _UNSTORABLE.search(text) is None


@dataclass(frozen=True)
class Seed:
    """A real payload of a desk and the headers it came with (unsigned)."""

    name: str
    body: bytes
    headers: Mapping[str, str]

    def data(self) -> Any:
        return json.loads(self.body)


_ADAPTERS: dict[str, HelpdeskAdapter] = {}


@dataclass(frozen=True)
class Desk:
    """One registered adapter, as the hostile tests drive it."""

    key: str
    support: AdapterSupport | None
    seeds: tuple[Seed, ...]

    def section(self) -> dict[str, Any]:
        """The ``[desks.<key>]`` table, with the hostile secret."""
        base = dict(self.support.desk) if self.support else {"adapter": self.key}
        base.setdefault("base_url", "https://desk.example.com")
        return {**base, "secret_env": [SECRET_ENV]}

    def env(self) -> dict[str, str]:
        """The environment the section names."""
        return {**(self.support.env if self.support else {}), SECRET_ENV: SECRET}

    def settings(self) -> DeskSettings:
        loaded = load_settings({"desks": {self.key: self.section()}}, environ=self.env())
        return loaded.desks[self.key]

    def adapter(self) -> HelpdeskAdapter:
        """The adapter bound to this desk (built once: adapters keep no state between calls)."""
        if self.key not in _ADAPTERS:
            _ADAPTERS[self.key] = ADAPTERS[self.key](self.settings())
        return _ADAPTERS[self.key]

    def sign(
        self, body: bytes, headers: Mapping[str, str], *, at: datetime = NOW, secret: str = SECRET
    ) -> dict[str, str]:
        """``headers`` plus whatever authenticates ``body`` for this desk at ``at``."""
        if self.support is None:
            return dict(headers)
        return self.support.sign(body, headers, secret, at)


def _seeds(key: str, support: AdapterSupport | None) -> tuple[Seed, ...]:
    folder = FIXTURES / key
    if support is not None:
        names = sorted(set(support.event_fixtures.values()))
    else:
        names = sorted(
            p.name for p in folder.glob("*.json") if not p.name.endswith(".headers.json")
        )
    seeds = []
    for name in names:
        sidecar = folder / (name.removesuffix(".json") + ".headers.json")
        headers = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        seeds.append(Seed(name, (folder / name).read_bytes(), headers))
    return tuple(seeds)


def registered_desks() -> list[Desk]:
    """Every adapter of the registry, with its test support where it has one."""
    found = []
    for key in sorted(ADAPTERS):
        module_name = f"tests.adapters.{key}.support"
        try:
            support: AdapterSupport | None = importlib.import_module(module_name).SUPPORT
        except ModuleNotFoundError as err:
            if not module_name.startswith(str(err.name)):
                raise  # the support module exists but fails to import: not ours to hide
            support = None  # an adapter still without tests: its fixtures, unsigned
        found.append(Desk(key, support, _seeds(key, support)))
    return found


# --------------------------------------------------------------------------------------------
# The check: what the intake may get back from an adapter


class Undocumented(AssertionError):
    """An adapter did something its contract (adapters/base.py) does not allow."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise Undocumented(message)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


def _check_error(err: WebhookError) -> None:
    _require(bool(err.message) and storable(err.message), f"bad message {err.message!r:.300}")
    _require(all(storable(s) for s in _strings(err.errors)), f"bad errors {err.errors!r:.300}")


def handle(
    desk: Desk, adapter: HelpdeskAdapter, headers: HeaderSource, body: bytes, *, signed: bool
) -> list[TicketEvent] | None:
    """Verify, key and parse as the intake does; :class:`Undocumented` (or the adapter's own
    exception) on anything the contract does not allow.

    ``verify`` passes or raises :class:`SignatureError` (always passes when ``signed`` and
    the desk has test support to sign with); ``delivery_key`` returns a storable key;
    ``parse`` returns events or raises :class:`UnsupportedEventError` or
    :class:`AnomalousPayloadError`. Keys, events and messages must be storable as they are:
    JSON-serializable, no NUL, no lone surrogate, every time with a UTC equivalent.
    """
    try:
        adapter.verify(headers, body, now=NOW)
    except SignatureError as err:
        _check_error(err)
        _require(not (signed and desk.support is not None), f"signed, refused: {err.message}")
    key = adapter.delivery_key(headers, body)
    _require(
        isinstance(key, str) and 0 < len(key) <= 300 and storable(key), f"bad key {key!r:.200}"
    )
    try:
        events = adapter.parse(headers, body, delivery_key=key)
    except (UnsupportedEventError, AnomalousPayloadError) as err:
        _check_error(err)
        return None
    _require(isinstance(events, list), f"parse returned {type(events).__name__}")
    for event in events:
        _require(isinstance(event, TicketEvent) and event.desk == desk.key, f"bad {event!r:.200}")
        _require(
            isinstance(event.ticket_id, str) and bool(event.ticket_id.strip()),
            f"bad ticket id {event.ticket_id!r:.200}",
        )
        payload = event_to_json(event)
        json.dumps(payload)  # what the intake stores
        _require(all(storable(s) for s in _strings(payload)), f"unstorable {payload!r:.300}")
        for moment in (event.occurred_at, event.ticket_created_at):
            if moment is not None:
                _require(moment.utcoffset() is not None, f"naive time {moment!r}")
                moment.astimezone(UTC)  # every time has a UTC equivalent
    return events


# --------------------------------------------------------------------------------------------
# Paths in a payload


Path = tuple[str | int, ...]


def paths(node: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every path in ``node``, the root first, containers and leaves alike."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


def string_paths(node: Any) -> list[Path]:
    found = []
    for path in paths(node):
        if isinstance(get(node, path), str):
            found.append(path)
    return found


def get(node: Any, path: Path) -> Any:
    for part in path:
        node = node[part]
    return node


def put(node: Any, path: Path, value: Any) -> Any:
    """``node`` with ``path`` set to ``value`` (the root replaced when ``path`` is empty)."""
    if not path:
        return value
    get(node, path[:-1])[path[-1]] = value
    return node


def delete(node: Any, path: Path) -> Any:
    if path:
        del get(node, path[:-1])[path[-1]]
    return node


#: Stands for a value that is spliced in as raw JSON text (too deep or too long to dump).
_MARK = "\x1ehostile-splice\x1e"


def splice(data: Any, path: Path, raw: str) -> bytes:
    """The JSON of ``data`` with the value at ``path`` replaced by the raw JSON text ``raw``."""
    text = json.dumps(put(data, path, _MARK))
    marker = json.dumps(_MARK)
    return text.replace(marker, raw, 1).encode()


# --------------------------------------------------------------------------------------------
# Strategies


def texts() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(SPECIAL_STRINGS), st.text(max_size=40))


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, NaN and the infinities included (Python's json writes and reads them)."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**400]),
        st.floats(allow_nan=True, allow_infinity=True),
        texts(),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(
                st.one_of(texts(), st.sampled_from(["id", "value", "type"])), inner, max_size=4
            ),
        ),
        max_leaves=12,
    )


@st.composite
def mutated(draw: st.DrawFn, desk: Desk) -> tuple[bytes, dict[str, str]]:
    """A real payload with one to three of its values replaced by a value of any type, or
    deleted."""
    seed = draw(st.sampled_from(desk.seeds))
    data = seed.data()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(paths(data))))
        if path and draw(st.booleans()) and draw(st.booleans()):
            data = delete(data, path)
        else:
            data = put(data, path, draw(json_values()))
    return json.dumps(data).encode(), dict(seed.headers)


@st.composite
def deep(draw: st.DrawFn, desk: Desk) -> tuple[bytes, dict[str, str]]:
    """A real payload with one value nested ``depth`` levels deep: arrays, objects, or the
    ``{"value": ...}`` chains that custom field readers follow."""
    seed = draw(st.sampled_from(desk.seeds))
    data = seed.data()
    path = draw(st.sampled_from(list(paths(data))))
    depth = draw(st.sampled_from([63, 64, 65, 100, 500, 900, 990, 1000, 10_000]))
    opening, closing = draw(
        st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"value":', "}"), ('{"id":', "}")])
    )
    raw = opening * depth + "1" + closing * depth
    return splice(data, path, raw), dict(seed.headers)


@st.composite
def huge_string(
    draw: st.DrawFn, desk: Desk, sizes: tuple[int, ...]
) -> tuple[bytes, dict[str, str]]:
    """A real payload with one string (or the whole body) made ``size`` characters long."""
    seed = draw(st.sampled_from(desk.seeds))
    data = seed.data()
    size = draw(st.sampled_from(sizes))
    unit = draw(st.sampled_from(["x", "9", "é", "<p>", "\\u0000", "\\ud800", " "]))
    raw = '"' + unit * (size // len(unit)) + '"'
    candidates = string_paths(data) or [()]
    path = draw(st.sampled_from(candidates))
    return splice(data, path, raw), dict(seed.headers)


@st.composite
def huge_number(draw: st.DrawFn, desk: Desk) -> tuple[bytes, dict[str, str]]:
    """A real payload with one value made a number too long for ``int()`` or a float."""
    seed = draw(st.sampled_from(desk.seeds))
    data = seed.data()
    path = draw(st.sampled_from(list(paths(data))))
    raw = draw(st.sampled_from(["9" * 5000, "-" + "9" * 4301, "1e99999", "0." + "0" * 5000 + "1"]))
    return splice(data, path, raw), dict(seed.headers)


@st.composite
def invalid_utf8(draw: st.DrawFn, desk: Desk) -> tuple[bytes, dict[str, str]]:
    """A real payload with bytes that are not UTF-8 inserted, or a JSON escape of NUL or of
    a lone surrogate put inside one of its strings."""
    seed = draw(st.sampled_from(desk.seeds))
    body = seed.body
    if draw(st.booleans()):
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.sampled_from(INVALID_UTF8)) + body[at:], dict(seed.headers)
    data = seed.data()
    candidates = string_paths(data) or [()]
    path = draw(st.sampled_from(candidates))
    escape = draw(st.sampled_from(["\\u0000", "\\ud800", "\\udc00x", "\\ud83d", "a\\u0000b"]))
    return splice(data, path, '"' + escape + '"'), dict(seed.headers)


@st.composite
def random_bytes(draw: st.DrawFn, desk: Desk) -> tuple[bytes, dict[str, str]]:
    """Bytes of any kind, or JSON of any shape, with a real payload's headers."""
    seed = draw(st.sampled_from(desk.seeds))
    body = draw(
        st.one_of(
            st.binary(max_size=2048),
            json_values().map(lambda value: json.dumps(value).encode()),
            st.dictionaries(texts(), json_values(), max_size=6).map(
                lambda value: json.dumps(value).encode()
            ),
        )
    )
    return body, dict(seed.headers)


def hostile_bodies(desk: Desk) -> st.SearchStrategy[tuple[bytes, dict[str, str]]]:
    """Every kind above, except the huge ones (which each test sizes for itself)."""
    return st.one_of(
        random_bytes(desk),
        mutated(desk),
        deep(desk),
        huge_number(desk),
        invalid_utf8(desk),
    )
