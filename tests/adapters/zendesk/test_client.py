"""The Zendesk REST client: exact requests (checked against Zendesk's OpenAPI documents),
authentication, pagination, and the mapping of every failure."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, cast

import pytest
import requests
import responses
from responses import matchers

from adapters.base import Requester, user_agent
from adapters.errors import HelpdeskAPIError, HelpdeskHostError, HelpdeskTimeoutError
from adapters.zendesk import ZendeskAdapter, ZendeskClient
from connector.config import DeskSettings

API = "https://acme.zendesk.com/api/v2"
NOTE = "Estimate: 10 credits.\n[care:t5158-note-1]"


@pytest.fixture
def client(make_desk: Callable[..., DeskSettings]) -> ZendeskClient:
    return ZendeskAdapter(make_desk()).client()


def _sent(mock: responses.RequestsMock, index: int = 0) -> tuple[str, str, Any]:
    request = mock.calls[index].request
    body = json.loads(request.body) if request.body else None
    return request.method or "", request.url or "", body


# --------------------------------------------------------------------------------------------
# Write-back: exact method, URL and body, each one documented by Zendesk


@pytest.mark.parametrize(
    ("call", "method", "url", "body"),
    [
        (
            lambda c: c.set_priority("5158", "urgent"),
            "PUT",
            f"{API}/tickets/5158",
            {"ticket": {"priority": "urgent"}},
        ),
        (
            lambda c: c.set_priority("5158", " High "),
            "PUT",
            f"{API}/tickets/5158",
            {"ticket": {"priority": "high"}},
        ),
        (
            lambda c: c.add_tags(
                "5158", ["care_plan_vip", "care_category_question", "care_plan_vip"]
            ),
            "PUT",
            f"{API}/tickets/5158/tags",
            {"tags": ["care_plan_vip", "care_category_question"]},
        ),
        (
            lambda c: c.remove_tags("5158", ["care_needs_category"]),
            "DELETE",
            f"{API}/tickets/5158/tags",
            {"tags": ["care_needs_category"]},
        ),
        (
            lambda c: c.add_note("5158", NOTE, marker="t5158-note-1"),
            "PUT",
            f"{API}/tickets/5158",
            {"ticket": {"comment": {"body": NOTE, "public": False}}},
        ),
        (
            lambda c: c.add_reply("5158", NOTE, marker="t5158-note-1"),
            "PUT",
            f"{API}/tickets/5158",
            {"ticket": {"comment": {"body": NOTE, "public": True}}},
        ),
    ],
)
def test_write_back_requests(
    mocked: responses.RequestsMock,
    client: ZendeskClient,
    assert_zendesk_calls: Callable[..., int],
    call: Callable[[ZendeskClient], None],
    method: str,
    url: str,
    body: dict[str, Any],
) -> None:
    mocked.add(method, url, json={"ok": True}, match=[matchers.json_params_matcher(body)])
    call(client)
    assert _sent(mocked) == (method, url, body)
    assert mocked.calls[0].request.headers["Content-Type"] == "application/json"
    assert assert_zendesk_calls(mocked.calls) == 1


def test_a_priority_the_api_does_not_know_is_refused_by_the_contract(
    assert_zendesk_request: Callable[..., None],
) -> None:
    # What the desk's priority map must never hold: the OpenAPI check catches it.
    with pytest.raises(AssertionError, match="not one of"):
        assert_zendesk_request("PUT", f"{API}/tickets/5158", {"ticket": {"priority": "URGENT!"}})
    with pytest.raises(AssertionError, match="Path not found|PathNotFound"):
        assert_zendesk_request("PUT", f"{API}/ticket/5158", {"ticket": {"priority": "high"}})


def test_no_tags_means_no_request(mocked: responses.RequestsMock, client: ZendeskClient) -> None:
    mocked.assert_all_requests_are_fired = False
    client.add_tags("5158", [])
    client.remove_tags("5158", ["  "])
    assert len(mocked.calls) == 0


def test_a_lone_string_is_not_a_tag_list(client: ZendeskClient) -> None:
    with pytest.raises(TypeError, match="not a string"):
        client.add_tags("5158", "care_plan_vip")


@pytest.mark.parametrize("method", ["add_note", "add_reply"])
def test_notes_must_carry_their_marker(client: ZendeskClient, method: str) -> None:
    with pytest.raises(ValueError, match=r"\[care:m-1\]"):
        getattr(client, method)("5158", "Estimate: 10 credits.", marker="m-1")


@pytest.mark.parametrize("ticket_id", ["", "abc", "5158/../../users/1", "1 2", "-3"])
def test_ids_are_checked_before_they_go_into_a_path(client: ZendeskClient, ticket_id: str) -> None:
    with pytest.raises(ValueError, match="must be a number"):
        client.set_priority(ticket_id, "high")
    with pytest.raises(ValueError, match="must be a number"):
        client.get_requester(ticket_id)


# --------------------------------------------------------------------------------------------
# Authentication and headers


def _auth(mock: responses.RequestsMock) -> str | None:
    return mock.calls[0].request.headers.get("Authorization")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {},
            "Basic " + base64.b64encode(b"care-bot@acme.example/token:tok-123").decode(),
        ),
        ({"options": {"auth": "oauth"}, "token": "oauth-access"}, "Bearer oauth-access"),
        ({"options": {"auth": "OAuth"}, "token": "oauth-access"}, "Bearer oauth-access"),
        ({"token": ""}, None),
        ({"email": ""}, None),
    ],
)
def test_authentication(
    mocked: responses.RequestsMock,
    make_desk: Callable[..., DeskSettings],
    overrides: dict[str, Any],
    expected: str | None,
) -> None:
    mocked.get(f"{API}/tickets/5158", json={"ticket": {"priority": None}})
    ZendeskAdapter(make_desk(**overrides)).client().get_priority("5158")
    assert _auth(mocked) == expected
    assert mocked.calls[0].request.headers["User-Agent"] == user_agent("zendesk")


def test_an_unknown_auth_option_is_a_clear_error(make_desk: Callable[..., DeskSettings]) -> None:
    with pytest.raises(ValueError, match="options.auth must be one of token, oauth"):
        ZendeskAdapter(make_desk(options={"auth": "password"})).client()


def test_timeouts_come_from_the_desk(
    mocked: responses.RequestsMock, make_desk: Callable[..., DeskSettings]
) -> None:
    mocked.get(f"{API}/tickets/5158", json={"ticket": {"priority": "low"}})
    ZendeskAdapter(make_desk(timeout=3.0)).client().get_priority("5158")
    assert cast(Any, mocked.calls[0].request).req_kwargs["timeout"] == (3.0, 3.0)


def test_a_shared_session_is_used(
    mocked: responses.RequestsMock, make_desk: Callable[..., DeskSettings]
) -> None:
    session = requests.Session()
    client = ZendeskAdapter(make_desk()).client(session)
    assert client.session is session
    mocked.get(f"{API}/tickets/1", json={"ticket": {"priority": "low"}})
    assert client.get_priority("1") == "low"


# --------------------------------------------------------------------------------------------
# Reads


def _comments(*bodies: str, has_more: bool = False, after: str | None = None) -> dict[str, Any]:
    return {
        "comments": [
            {"id": 100 + i, "type": "Comment", "body": body, "public": False, "author_id": 1}
            for i, body in enumerate(bodies)
        ],
        "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": None},
        "links": {"next": None, "prev": None},
    }


def test_has_marker_follows_the_cursor_to_the_end(
    mocked: responses.RequestsMock, client: ZendeskClient, assert_zendesk_calls: Callable[..., int]
) -> None:
    url = f"{API}/tickets/5158/comments"
    mocked.get(
        url,
        json=_comments("Hello", "Estimate: 5.\n[care:t5158-note-0]", has_more=True, after="c1"),
        match=[matchers.query_param_matcher({"page[size]": "100", "sort": "-created_at"})],
    )
    mocked.get(
        url,
        json=_comments("Estimate: 10.\n[care:t5158-note-1]"),
        match=[
            matchers.query_param_matcher(
                {"page[size]": "100", "sort": "-created_at", "page[after]": "c1"}
            )
        ],
    )
    assert client.has_marker("5158", "t5158-note-1") is True
    assert assert_zendesk_calls(mocked.calls) == 2


def test_has_marker_stops_at_the_first_match(
    mocked: responses.RequestsMock, client: ZendeskClient
) -> None:
    mocked.get(
        f"{API}/tickets/5158/comments",
        json=_comments("x [care:m-9] y", has_more=True, after="c1"),
    )
    assert client.has_marker("5158", "m-9") is True
    assert len(mocked.calls) == 1


@pytest.mark.parametrize(
    "comments",
    [
        _comments(),
        _comments("[care:m-10]", "care:m-1", "[care:m-1 ]"),
    ],
)
def test_has_marker_is_false_when_no_body_carries_it(
    mocked: responses.RequestsMock, client: ZendeskClient, comments: dict[str, Any]
) -> None:
    mocked.get(f"{API}/tickets/5158/comments", json=comments)
    assert client.has_marker("5158", "m-1") is False


def test_has_marker_reads_the_plain_and_html_bodies_too(
    mocked: responses.RequestsMock, client: ZendeskClient
) -> None:
    mocked.get(
        f"{API}/tickets/5158/comments",
        json={
            "comments": [{"id": 1, "html_body": "<p>[care:m-1]</p>"}],
            "meta": {"has_more": False},
        },
    )
    assert client.has_marker("5158", "m-1") is True


def test_has_marker_follows_offset_links_on_the_desk_only(
    mocked: responses.RequestsMock, client: ZendeskClient
) -> None:
    mocked.get(
        f"{API}/tickets/5158/comments",
        json={"comments": [{"body": "a"}], "next_page": f"{API}/tickets/5158/comments.json?page=2"},
    )
    mocked.get(
        f"{API}/tickets/5158/comments.json",
        json={"comments": [{"body": "[care:m-1]"}], "next_page": None},
        match=[matchers.query_param_matcher({"page": "2"})],
    )
    assert client.has_marker("5158", "m-1") is True

    mocked.get(
        f"{API}/tickets/6/comments",
        json={"comments": [], "next_page": "https://elsewhere.example/api/v2/x"},
    )
    with pytest.raises(HelpdeskAPIError, match="not on https://acme.zendesk.com") as caught:
        client.has_marker("6", "m-1")
    assert caught.value.permanent is True


def test_has_marker_does_not_loop_on_a_repeated_cursor(
    mocked: responses.RequestsMock, client: ZendeskClient
) -> None:
    mocked.get(f"{API}/tickets/5158/comments", json=_comments("a", has_more=True, after="same"))
    assert client.has_marker("5158", "m-1") is False
    assert len(mocked.calls) == 2


def test_get_requester(
    mocked: responses.RequestsMock, client: ZendeskClient, assert_zendesk_calls: Callable[..., int]
) -> None:
    mocked.get(
        f"{API}/users/8447388090494",
        json={
            "user": {
                "id": 8447388090494,
                "email": "owner@shop.example",
                "name": "Shop Owner",
                "locale": "ru",
                "role": "end-user",
            }
        },
    )
    assert client.get_requester("8447388090494") == Requester(
        email="owner@shop.example", name="Shop Owner", locale="ru"
    )
    assert assert_zendesk_calls(mocked.calls) == 1


def test_get_requester_without_email(mocked: responses.RequestsMock, client: ZendeskClient) -> None:
    mocked.get(f"{API}/users/1", json={"user": {"id": 1, "email": None, "name": "", "locale": 5}})
    assert client.get_requester("1") == Requester(email=None, name=None, locale=None)


def test_get_requester_404_is_none(mocked: responses.RequestsMock, client: ZendeskClient) -> None:
    mocked.get(
        f"{API}/users/1",
        status=404,
        json={"error": "RecordNotFound", "description": "Not found"},
    )
    assert client.get_requester("1") is None


@pytest.mark.parametrize("answer", [{"users": []}, [], {"user": "x"}])
def test_get_requester_odd_answers_are_errors(
    mocked: responses.RequestsMock, client: ZendeskClient, answer: Any
) -> None:
    mocked.get(f"{API}/users/1", json=answer)
    with pytest.raises(HelpdeskAPIError, match="no user object"):
        client.get_requester("1")


@pytest.mark.parametrize(
    ("priority", "expected"), [("urgent", "urgent"), ("HIGH", "high"), (None, None), ("", None)]
)
def test_get_priority(
    mocked: responses.RequestsMock,
    client: ZendeskClient,
    assert_zendesk_calls: Callable[..., int],
    priority: str | None,
    expected: str | None,
) -> None:
    mocked.get(f"{API}/tickets/5158", json={"ticket": {"id": 5158, "priority": priority}})
    assert client.get_priority("5158") == expected
    assert assert_zendesk_calls(mocked.calls) == 1


# --------------------------------------------------------------------------------------------
# Failures, one test each


def test_connection_refused_is_a_host_error(
    mocked: responses.RequestsMock, client: ZendeskClient
) -> None:
    mocked.put(f"{API}/tickets/5158", body=requests.ConnectionError("Connection refused"))
    with pytest.raises(HelpdeskHostError, match="cannot reach the desk") as caught:
        client.set_priority("5158", "high")
    assert (caught.value.status, caught.value.permanent) == (None, False)
    assert isinstance(caught.value.__cause__, requests.ConnectionError)


def test_a_read_timeout_is_a_timeout_error(
    mocked: responses.RequestsMock, client: ZendeskClient
) -> None:
    mocked.put(f"{API}/tickets/5158", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(HelpdeskTimeoutError, match="no answer within 10 s") as caught:
        client.add_note("5158", NOTE, marker="t5158-note-1")
    assert caught.value.permanent is False
    assert isinstance(caught.value.__cause__, requests.Timeout)


def test_a_connect_timeout_is_a_host_error_since_nothing_was_sent(
    mocked: responses.RequestsMock, client: ZendeskClient
) -> None:
    mocked.put(f"{API}/tickets/5158", body=requests.ConnectTimeout("connect timed out"))
    with pytest.raises(HelpdeskHostError, match="could not connect within 5 s"):
        client.set_priority("5158", "high")


def test_404_is_permanent(mocked: responses.RequestsMock, client: ZendeskClient) -> None:
    mocked.put(f"{API}/tickets/5158", status=404, json={"error": "RecordNotFound"})
    with pytest.raises(HelpdeskAPIError) as caught:
        client.set_priority("5158", "high")
    assert (caught.value.status, caught.value.permanent) == (404, True)
    assert "RecordNotFound" in caught.value.body


def test_409_is_retryable(mocked: responses.RequestsMock, client: ZendeskClient) -> None:
    mocked.put(f"{API}/tickets/5158/tags", status=409, json={"error": "UpdateConflict"})
    with pytest.raises(HelpdeskAPIError) as caught:
        client.add_tags("5158", ["care_plan_vip"])
    assert (caught.value.status, caught.value.permanent) == (409, False)


def test_429_with_retry_after_seconds_and_a_plain_text_body(
    mocked: responses.RequestsMock, client: ZendeskClient
) -> None:
    mocked.put(
        f"{API}/tickets/5158",
        status=429,
        body="Too Many Requests",
        content_type="text/plain",
        headers={"Retry-After": "7", "X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "0"},
    )
    with pytest.raises(HelpdeskAPIError) as caught:
        client.add_reply("5158", NOTE, marker="t5158-note-1")
    error = caught.value
    assert (error.status, error.retry_after, error.permanent, error.body) == (
        429,
        7.0,
        False,
        "Too Many Requests",
    )


def test_429_with_retry_after_as_an_http_date(
    mocked: responses.RequestsMock, client: ZendeskClient
) -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    mocked.delete(
        f"{API}/tickets/5158/tags",
        status=429,
        json={"error": "TooManyRequests"},
        headers={"Retry-After": format_datetime(later, usegmt=True)},
    )
    with pytest.raises(HelpdeskAPIError) as caught:
        client.remove_tags("5158", ["x"])
    assert caught.value.retry_after is not None
    assert 100.0 < caught.value.retry_after <= 120.0
    assert caught.value.permanent is False


def test_500_is_retryable(mocked: responses.RequestsMock, client: ZendeskClient) -> None:
    mocked.get(f"{API}/tickets/5158", status=500, body="<html>oops</html>")
    with pytest.raises(HelpdeskAPIError) as caught:
        client.get_priority("5158")
    assert (caught.value.status, caught.value.permanent, caught.value.retry_after) == (
        500,
        False,
        None,
    )
    assert str(caught.value) == f"GET {API}/tickets/5158: HTTP 500: <html>oops</html>"


def test_a_200_that_is_not_json_is_retryable(
    mocked: responses.RequestsMock, client: ZendeskClient
) -> None:
    mocked.get(f"{API}/tickets/5158", status=200, body="<html>maintenance</html>")
    with pytest.raises(HelpdeskAPIError, match="not JSON") as caught:
        client.get_priority("5158")
    assert caught.value.permanent is False
