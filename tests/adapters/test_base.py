"""The adapter base: headers, payload errors, the error family, the client base, the registry."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, cast

import pytest
import requests
import responses
from marshmallow import ValidationError, fields
from werkzeug.datastructures import Headers

from adapters import ADAPTERS, ENTRY_POINT_GROUP, AdapterRegistryError, load_adapters
from adapters.base import (
    BaseHelpdeskClient,
    DeskConfig,
    HelpdeskAdapter,
    VendorSchema,
    flatten_errors,
    load_json_object,
    load_schema,
    marker_tag,
    normalize_headers,
    user_agent,
)
from adapters.errors import (
    AnomalousPayloadError,
    HelpdeskAPIError,
    HelpdeskHostError,
    HelpdeskTimeoutError,
    MissingSecretError,
    SignatureError,
    UnsupportedEventError,
    WebhookError,
    parse_retry_after,
)
from adapters.zendesk import ZendeskAdapter
from connector.config import ADAPTER_ENTRY_POINTS, DeskSettings
from rules.events import Comment, EventType, TicketEvent

NOW = datetime(2025, 1, 8, 12, 0, tzinfo=UTC)


def test_desk_settings_provide_what_adapters_read(make_desk: Callable[..., DeskSettings]) -> None:
    desk: DeskConfig = make_desk()  # checked by mypy as well
    for name in DeskConfig.__dict__:
        if not name.startswith("_"):
            assert hasattr(desk, name), name


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Zendesk-Webhook-Id": "01F", "content-type": "application/json"},
        Headers([("X-Zendesk-Webhook-Id", "01F"), ("Content-Type", "application/json")]),
    ],
)
def test_normalize_headers_lowercases_names(headers: Any) -> None:
    assert normalize_headers(headers) == {
        "x-zendesk-webhook-id": "01F",
        "content-type": "application/json",
    }


def test_normalize_headers_keeps_the_first_of_repeated_names() -> None:
    assert normalize_headers(Headers([("X-A", "1"), ("x-a", "2")])) == {"x-a": "1"}


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            {"id": ["Missing data for required field."]},
            {"id": ["Missing data for required field."]},
        ),
        (
            {"detail": {"id": ["Not a valid id."], "tags": {1: ["Not a valid tag."]}}},
            {"detail.id": ["Not a valid id."], "detail.tags.1": ["Not a valid tag."]},
        ),
        ({"_schema": ["Invalid input type."]}, {"$": ["Invalid input type."]}),
        ({"detail": {"_schema": ["Invalid input type."]}}, {"detail": ["Invalid input type."]}),
        (["one", "two"], {"$": ["one", "two"]}),
    ],
)
def test_flatten_errors(messages: Any, expected: dict[str, list[str]]) -> None:
    assert flatten_errors(messages) == expected


def test_flatten_errors_with_a_prefix() -> None:
    assert flatten_errors({"comment": {"body": ["x"]}}, "event") == {"event.comment.body": ["x"]}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\xff\xfe{}", "UTF-8"),
        (b"", "not JSON"),
        (b"{'single': 'quotes'}", "not JSON"),
        (b'{"a": 1', "not JSON"),
        (b"[1, 2]", "an array"),
        (b'"text"', "str"),
        (b"42", "int"),
        (b"null", "NoneType"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_load_json_object_refuses_what_is_not_an_object(body: bytes, words: str) -> None:
    with pytest.raises(AnomalousPayloadError, match=words) as caught:
        load_json_object(body, adapter="zendesk")
    assert caught.value.http_status == 400
    assert list(caught.value.errors) == ["$"]
    assert caught.value.adapter == "zendesk"


def test_load_json_object_returns_the_object() -> None:
    assert load_json_object('{"ключ": [1, true]}'.encode(), adapter="x") == {"ключ": [1, True]}


class _Sample(VendorSchema):
    id = fields.String(required=True)


def test_vendor_schemas_drop_unknown_keys_and_load_schema_names_paths() -> None:
    assert _Sample().load({"id": "1", "new_vendor_key": 2}) == {"id": "1"}
    with pytest.raises(AnomalousPayloadError) as caught:
        load_schema(_Sample(), {"id": 5}, adapter="zendesk", what="sample", prefix="detail")
    assert caught.value.errors == {"detail.id": ["Not a valid string."]}
    assert str(caught.value) == "sample: detail.id: Not a valid string."
    with pytest.raises(ValidationError):
        _Sample().load({})


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (SignatureError("x"), 401, "bad_signature"),
        (MissingSecretError("x"), 401, "no_secret"),
        (AnomalousPayloadError("x"), 400, "bad_payload"),
        (UnsupportedEventError("x", event_type="zen:event-type:user.created"), 200, "ignored"),
    ],
)
def test_webhook_errors_carry_their_http_status(
    error: WebhookError, status: int, code: str
) -> None:
    assert error.http_status == status
    assert error.code == code
    assert isinstance(error, WebhookError)


def test_missing_secret_is_a_signature_error() -> None:
    assert issubclass(MissingSecretError, SignatureError)


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (None, False),
        (400, True),
        (401, True),
        (403, True),
        (404, True),
        (408, False),
        (409, False),
        (422, True),
        (429, False),
        (500, False),
        (503, False),
    ],
)
def test_permanent_follows_the_status(status: int | None, permanent: bool) -> None:
    assert HelpdeskAPIError("x", status=status).permanent is permanent


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("inf", None),
        ("soon", None),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
        ("Wed, 08 Jan 2025 12:02:00 GMT", 120.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def _response(status: int, body: bytes, headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers.update(headers)
    response.request = requests.Request(
        "PUT", "https://acme.zendesk.com/api/v2/tickets/1"
    ).prepare()
    return response


def test_from_response_reads_a_plain_text_429() -> None:
    error = HelpdeskAPIError.from_response(
        _response(429, b"Too Many Requests", {"Retry-After": "1", "Content-Type": "text/plain"})
    )
    assert (error.status, error.retry_after, error.body, error.permanent) == (
        429,
        1.0,
        "Too Many Requests",
        False,
    )
    assert error.method == "PUT"
    assert (
        str(error) == "PUT https://acme.zendesk.com/api/v2/tickets/1: HTTP 429: Too Many Requests"
    )


def test_from_response_keeps_a_bounded_body() -> None:
    error = HelpdeskAPIError.from_response(_response(502, b"<html>" + b"x" * 10_000, {}))
    assert len(error.body) == 2000
    assert len(str(error)) < 300


def test_host_and_timeout_errors_are_retryable() -> None:
    assert HelpdeskHostError("x").permanent is False
    assert HelpdeskTimeoutError("x").permanent is False
    assert issubclass(HelpdeskTimeoutError, HelpdeskAPIError)


def test_marker_tag() -> None:
    assert marker_tag("t42-note-1") == "[care:t42-note-1]"


def test_user_agent_names_the_desk() -> None:
    assert user_agent("zendesk").startswith("care-connector/0.1.0-zendesk")


# --------------------------------------------------------------------------------------------
# The client base


class _Client(BaseHelpdeskClient):
    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer t"}


@responses.activate
def test_base_client_sends_its_headers_and_timeouts(make_desk: Callable[..., DeskSettings]) -> None:
    session = requests.Session()
    session.headers["X-Own"] = "kept"
    client = _Client(make_desk(timeout=30.0, base_url="https://acme.zendesk.com/"), session)
    responses.get("https://acme.zendesk.com/api/v2/x", json={"ok": True})
    assert client._get("/api/v2/x", params={"a": 1}) == {"ok": True}
    request = responses.calls[0].request
    assert request.url == "https://acme.zendesk.com/api/v2/x?a=1"
    assert request.headers["User-Agent"] == user_agent("zendesk")
    assert request.headers["Authorization"] == "Bearer t"
    assert request.headers["X-Own"] == "kept"
    assert cast(Any, request).req_kwargs["timeout"] == (5.0, 30.0)
    assert "Authorization" not in session.headers


def test_base_client_never_sends_credentials_to_another_host(
    make_desk: Callable[..., DeskSettings],
) -> None:
    client = _Client(make_desk())
    with pytest.raises(ValueError, match="not on https://acme.zendesk.com"):
        client._request("GET", "https://evil.example/api/v2/x")
    with pytest.raises(ValueError):
        client._request("GET", "https://acme.zendesk.com.evil.example/x")


@responses.activate
def test_base_client_empty_answer_is_none_and_garbage_is_an_error(
    make_desk: Callable[..., DeskSettings],
) -> None:
    client = _Client(make_desk())
    responses.put("https://acme.zendesk.com/api/v2/a", status=204)
    responses.get("https://acme.zendesk.com/api/v2/b", body="<html>proxy</html>", status=200)
    assert client._put("/api/v2/a", {"x": 1}) is None
    with pytest.raises(HelpdeskAPIError, match="not JSON") as caught:
        client._get("/api/v2/b")
    assert caught.value.permanent is False


# --------------------------------------------------------------------------------------------
# The adapter base


def _event(**overrides: Any) -> TicketEvent:
    values: dict[str, Any] = {
        "desk": "zendesk",
        "delivery_key": "k",
        "type": EventType.TICKET_UPDATED,
        "ticket_id": "1",
    }
    values.update(overrides)
    return TicketEvent(**values)


@pytest.mark.parametrize(
    ("api_user_id", "event", "own"),
    [
        ("900", _event(actor_id="900"), True),
        ("900", _event(actor_id=" 900 "), True),
        ("900", _event(actor_id="901"), False),
        ("900", _event(), False),
        ("900", _event(comment=Comment(body="b", public=True, author_id="900")), True),
        (
            "900",
            _event(actor_id="1", comment=Comment(body="b", public=True, author_id="900")),
            False,
        ),
        ("", _event(actor_id=""), False),
        ("", _event(), False),
    ],
)
def test_is_own_event_keys_on_the_author(
    make_desk: Callable[..., DeskSettings], api_user_id: str, event: TicketEvent, own: bool
) -> None:
    adapter = ZendeskAdapter(make_desk(api_user_id=api_user_id))
    assert adapter.is_own_event(event) is own


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, timedelta(minutes=5)),
        ({"signature_tolerance": 60}, timedelta(seconds=60)),
        ({"signature_tolerance": 0.5}, timedelta(seconds=0.5)),
        ({"signature_tolerance": 0}, timedelta(minutes=5)),
        ({"signature_tolerance": "60"}, timedelta(minutes=5)),
        ({"signature_tolerance": True}, timedelta(minutes=5)),
    ],
)
def test_tolerance_from_the_desk_options(
    make_desk: Callable[..., DeskSettings], options: dict[str, Any], expected: timedelta
) -> None:
    assert ZendeskAdapter(make_desk(options=options)).tolerance == expected


def test_secrets_skip_empty_values(make_desk: Callable[..., DeskSettings]) -> None:
    adapter = ZendeskAdapter(make_desk(secrets=("", "new", "old")))
    assert adapter.secrets == ("new", "old")


def test_adapters_must_implement_the_whole_interface(
    make_desk: Callable[..., DeskSettings],
) -> None:
    class Partial(HelpdeskAdapter):
        key = "partial"

    with pytest.raises(TypeError, match="abstract"):
        Partial(make_desk())  # type: ignore[abstract]


# --------------------------------------------------------------------------------------------
# The registry


class _EntryPoint:
    def __init__(self, name: str, value: str, loaded: Any) -> None:
        self.name, self.value, self._loaded = name, value, loaded

    def load(self) -> Any:
        if isinstance(self._loaded, Exception):
            raise self._loaded
        return self._loaded


class _PluginAdapter(ZendeskAdapter):
    key = "plugdesk"
    display_name = "Plug Desk"


def test_registry_lists_the_builtin_adapters() -> None:
    assert ADAPTERS["zendesk"] is ZendeskAdapter
    assert {"zendesk", "freshdesk", "zammad", "helpscout"} <= set(ADAPTERS)
    assert all(key == cls.key for key, cls in ADAPTERS.items())
    assert ENTRY_POINT_GROUP == ADAPTER_ENTRY_POINTS


def test_load_adapters_reads_the_installed_entry_points() -> None:
    assert load_adapters()["zendesk"] is ZendeskAdapter


def test_load_adapters_adds_a_plugin() -> None:
    before = dict(ADAPTERS)
    found = load_adapters([_EntryPoint("plugdesk", "plug.desk:Adapter", _PluginAdapter)])
    assert found == {**before, "plugdesk": _PluginAdapter}
    assert ADAPTERS == before  # the built-in registry itself is not changed


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        (
            [_EntryPoint("zendesk", "other.pkg:Zendesk", _PluginAdapter)],
            "already registered by adapters",
        ),
        (
            [
                _EntryPoint("plugdesk", "one:A", _PluginAdapter),
                _EntryPoint("plugdesk", "two:B", _PluginAdapter),
            ],
            "already registered by one:A",
        ),
        ([_EntryPoint("plugdesk", "plug:A", ImportError("no module plug"))], "failed to load"),
        ([_EntryPoint("plugdesk", "plug:A", object)], "not a HelpdeskAdapter"),
        ([_EntryPoint("other", "plug:A", _PluginAdapter)], "name must be its key"),
    ],
)
def test_load_adapters_refuses_bad_plugins(entries: list[_EntryPoint], words: str) -> None:
    with pytest.raises(AdapterRegistryError, match=words):
        load_adapters(entries)


def test_payload_errors_serialise_for_the_error_body() -> None:
    error = AnomalousPayloadError("x", adapter="zendesk", errors={"detail.id": ["missing"]})
    assert json.loads(json.dumps(error.errors)) == {"detail.id": ["missing"]}


def test_adapters_never_import_the_connector_or_flask() -> None:
    # A fresh interpreter, so nothing this test session imported can hide a dependency.
    code = (
        "import json, sys\n"
        "import adapters, adapters.zendesk.install\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert "adapters.zendesk.adapter" in loaded
    forbidden = [m for m in loaded if m.split(".")[0] in ("connector", "flask", "sqlalchemy")]
    assert forbidden == []
