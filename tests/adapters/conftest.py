"""Fixtures for the adapter tests: a strict ``responses`` mock, desks, fixture payloads,
Zendesk signatures, and the OpenAPI request check (``tests/adapters/openapi.py``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from connector.config import DeskSettings
from rules.priorities import PriorityMap
from tests.adapters import openapi

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

#: The custom fields of the test desk (logical name -> Zendesk field id).
DESK_FIELDS = {
    "care_category": "360001234567",
    "care_price": "360001234568",
    "care_preapproval": "360001234569",
}


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """A ``responses`` mock in which every registered answer must be asked for."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def fixtures_dir() -> Path:
    """``tests/fixtures``."""
    return FIXTURES


@pytest.fixture
def zendesk_fixture() -> Callable[[str], bytes]:
    """The raw bytes of ``tests/fixtures/zendesk/<name>``."""

    def read(name: str) -> bytes:
        return (FIXTURES / "zendesk" / name).read_bytes()

    return read


@pytest.fixture
def zendesk_json(zendesk_fixture: Callable[[str], bytes]) -> Callable[[str], dict[str, Any]]:
    """A fixture payload, parsed (to build variants of it)."""

    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(zendesk_fixture(name))
        return data

    return load


@pytest.fixture
def make_desk() -> Callable[..., DeskSettings]:
    """A Zendesk desk as the config builds it; keyword arguments override fields."""

    def make(**overrides: Any) -> DeskSettings:
        values: dict[str, Any] = {
            "key": "zendesk",
            "adapter": "zendesk",
            "base_url": "https://acme.zendesk.com",
            "priority": PriorityMap(kind="field", highest="urgent", high="high", regular="normal"),
            "secret_env": ("CARE_ZENDESK_SECRET",),
            "secrets": ("s3cret-current",),
            "email": "care-bot@acme.example",
            "token_env": "CARE_ZENDESK_TOKEN",
            "token": "tok-123",
            "api_user_id": "8447388090999",
            "fields": dict(DESK_FIELDS),
            "timeout": 10.0,
        }
        values.update(overrides)
        return DeskSettings(**values)

    return make


@pytest.fixture
def sign_like_zendesk() -> Callable[[str, str, bytes], str]:
    """Zendesk's signature, computed here independently of the adapter:
    ``base64(HMAC-SHA256(secret, timestamp + body))``."""

    def sign(secret: str, ts: str, body: bytes) -> str:
        digest = hmac.new(secret.encode(), ts.encode() + body, hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    return sign


@pytest.fixture
def assert_zendesk_request() -> Callable[..., None]:
    """``assert_zendesk_request(method, url, body)`` of ``tests/adapters/openapi.py``."""
    check: Callable[..., None] = openapi.assert_zendesk_request
    return check


@pytest.fixture
def assert_zendesk_calls() -> Callable[..., int]:
    """``assert_zendesk_calls(responses.calls)`` of ``tests/adapters/openapi.py``."""
    check: Callable[..., int] = openapi.assert_zendesk_calls
    return check
