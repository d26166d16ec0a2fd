"""What the shared adapter contract suite needs to know about each adapter's tests.

Every adapter's test package provides ``SUPPORT`` (an :class:`AdapterSupport`) in
``tests/adapters/<key>/support.py``; :data:`ALL` lists them, and ``tests/adapters/
test_contract.py`` runs the same checks over each. Signatures are computed, never pasted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import responses

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

#: A delivery: the raw body and the headers the desk sends with it (unsigned).
Delivery = tuple[bytes, dict[str, str]]


def desk_fixture(folder: str, name: str) -> bytes:
    """The raw bytes of ``tests/fixtures/<folder>/<name>``."""
    return (FIXTURES / folder / name).read_bytes()


def desk_fixture_json(folder: str, name: str) -> dict[str, Any]:
    """A fixture payload, parsed (to build variants of it)."""
    data: dict[str, Any] = json.loads(desk_fixture(folder, name))
    return data


def desk_fixture_headers(folder: str, name: str) -> dict[str, str]:
    """The headers the desk sent with fixture ``name`` (its ``.headers.json``)."""
    data = json.loads(desk_fixture(folder, name.removesuffix(".json") + ".headers.json"))
    return {str(k): str(v) for k, v in data.items()}


@dataclass(frozen=True)
class AdapterSupport:
    """How to drive one adapter in tests.

    :param key: the adapter key (``"freshdesk"``).
    :param desk: the desk section for a config dict (``adapter``, ``base_url``, credentials as
        ``*_env`` names, ``api_user_id``, ``fields``; secrets come from ``secret_env`` below).
    :param env: environment variables the desk section names (credentials), except secrets.
    :param sign: headers that authenticate ``body`` for ``secret`` at ``now`` (computed: an HMAC,
        a shared-secret header or basic auth, whatever the desk does), merged over ``headers``.
    :param event_fixtures: every vendor event code the adapter handles -> a fixture file name
        under ``tests/fixtures/<key>/``; each must parse into at least one event.
    :param unknown_event: a delivery of an event type the connector does not handle.
    :param ticket_created: a ticket-created delivery for a requester (ticket id, requester id,
        requester email, subject, description), the same ticket on every desk.
    :param stub_writes: register 200 answers for every write-back call on that ticket (priority,
        tags, notes, replies, and any read the client makes first) on a ``responses`` mock.
    :param priority_value: how the desk writes each level (``"urgent"``, ``"4"``, a tag...).
    """

    key: str
    desk: Mapping[str, Any]
    env: Mapping[str, str]
    sign: Callable[[bytes, Mapping[str, str], str, datetime], dict[str, str]]
    event_fixtures: Mapping[str, str]
    unknown_event: Callable[[], Delivery]
    ticket_created: Callable[[str, str, str, str, str], Delivery]
    stub_writes: Callable[[responses.RequestsMock, str], None]

    def fixture(self, name: str) -> bytes:
        return desk_fixture(self.key, name)

    def fixture_headers(self, name: str) -> dict[str, str]:
        """The sibling ``<name minus .json>.headers.json``, if any."""
        sidecar = FIXTURES / self.key / (name.removesuffix(".json") + ".headers.json")
        if not sidecar.exists():
            return {}
        return {str(k): str(v) for k, v in json.loads(sidecar.read_text()).items()}


#: Pass as the value to :func:`set_path` to delete the key instead.
DELETE = object()


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set (or, with :data:`DELETE`, remove) ``a.b.0.c`` in a payload, to build a variant of a
    fixture; a numeric part indexes a list."""
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is DELETE:
        if isinstance(node, list):
            del node[int(last)]
        else:
            del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def sent_requests(mock: responses.RequestsMock) -> list[tuple[str, str, Any]]:
    """Every request the mock answered, in order: method, URL and the JSON body (or None)."""
    out = []
    for call in mock.calls:
        request = call.request
        body = json.loads(request.body) if request.body else None
        out.append((request.method or "", request.url or "", body))
    return out
