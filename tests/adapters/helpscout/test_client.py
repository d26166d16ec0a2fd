"""The Help Scout REST client: exact requests, the OAuth token (cached, refreshed, retried
once on 401), tags merged by read-modify-write, and the mapping of every failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, cast
from urllib.parse import parse_qs

import pytest
import requests
import responses
from responses import matchers

from adapters.base import Requester, user_agent
from adapters.errors import HelpdeskAPIError, HelpdeskHostError, HelpdeskTimeoutError
from adapters.helpscout import HelpScoutAdapter, HelpScoutClient
from tests.adapters.helpscout.support import (
    API,
    TOKEN_URL,
    conversation_answer,
    make_desk,
    token_answer,
)

NOTE = "Estimate: 50 credits.\n\n[care:41.2]"
CONV = f"{API}/conversations/2391938111"
TOKEN_FORM = {
    "grant_type": "client_credentials",
    "client_id": "app-id-1",
    "client_secret": "app-secret-1",
}


class Clock:
    """Monotonic seconds the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(clock: Clock) -> HelpScoutClient:
    return HelpScoutClient(make_desk(), clock=clock)


def _token(mock: responses.RequestsMock, token: str = "tok-1", expires_in: int = 172800) -> None:
    mock.post(
        TOKEN_URL,
        json=token_answer(token, expires_in),
        match=[matchers.urlencoded_params_matcher(TOKEN_FORM)],
    )


def _sent(mock: responses.RequestsMock, index: int) -> tuple[str, str, Any]:
    request = mock.calls[index].request
    body = json.loads(request.body) if request.body else None
    return request.method or "", request.url or "", body


def _bearer(mock: responses.RequestsMock, index: int) -> str | None:
    return mock.calls[index].request.headers.get("Authorization")


# --------------------------------------------------------------------------------------------
# The token


def test_the_token_request_is_the_client_credentials_grant(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.post(f"{CONV}/notes", status=201, match=[matchers.json_params_matcher({"text": NOTE})])
    client.add_note("2391938111", NOTE, marker="41.2")
    token_call = mocked.calls[0].request
    assert (token_call.method, token_call.url) == ("POST", TOKEN_URL)
    assert token_call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(str(token_call.body)) == {k: [v] for k, v in TOKEN_FORM.items()}
    assert "Authorization" not in token_call.headers
    assert _bearer(mocked, 1) == "Bearer tok-1"
    assert mocked.calls[1].request.headers["User-Agent"] == user_agent("helpscout")


def test_the_token_is_kept_until_a_minute_before_it_expires(
    mocked: responses.RequestsMock, client: HelpScoutClient, clock: Clock
) -> None:
    _token(mocked, "tok-1", expires_in=600)
    _token(mocked, "tok-2", expires_in=600)
    mocked.get(f"{API}/customers/1", json={"id": 1})
    for _ in range(3):
        client.get_requester("1")
    clock.now += 539  # 61 s left: still good
    client.get_requester("1")
    clock.now += 1  # 60 s left: fetched again
    client.get_requester("1")
    bearers = [c.request.headers.get("Authorization") for c in mocked.calls]
    assert [c.request.url for c in mocked.calls].count(TOKEN_URL) == 2
    assert bearers[1:5] == ["Bearer tok-1"] * 4
    assert bearers[-1] == "Bearer tok-2"


def test_a_token_answer_without_lifetime_is_kept_five_minutes(
    mocked: responses.RequestsMock, client: HelpScoutClient, clock: Clock
) -> None:
    mocked.post(TOKEN_URL, json={"access_token": "short"})
    mocked.get(f"{API}/customers/1", json={"id": 1})
    client.get_requester("1")
    clock.now += 239
    client.get_requester("1")
    clock.now += 1
    client.get_requester("1")
    assert [c.request.url for c in mocked.calls].count(TOKEN_URL) == 2


def test_a_401_refreshes_the_token_once_and_retries(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked, "stale")
    _token(mocked, "fresh")
    mocked.post(
        f"{CONV}/notes",
        status=401,
        json={"error": "invalid_token"},
        match=[matchers.header_matcher({"Authorization": "Bearer stale"})],
    )
    mocked.post(
        f"{CONV}/notes",
        status=201,
        match=[
            matchers.header_matcher({"Authorization": "Bearer fresh"}),
            matchers.json_params_matcher({"text": NOTE}),
        ],
    )
    client.add_note("2391938111", NOTE, marker="41.2")
    assert [(c.request.method, c.request.url) for c in mocked.calls] == [
        ("POST", TOKEN_URL),
        ("POST", f"{CONV}/notes"),
        ("POST", TOKEN_URL),
        ("POST", f"{CONV}/notes"),
    ]


def test_a_second_401_is_a_permanent_error(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked, "a")
    _token(mocked, "b")
    mocked.post(f"{CONV}/notes", status=401, json={"error": "invalid_token"})
    with pytest.raises(HelpdeskAPIError) as caught:
        client.add_note("2391938111", NOTE, marker="41.2")
    assert (caught.value.status, caught.value.permanent) == (401, True)
    assert len(mocked.calls) == 4  # token, note, token, note: one retry only


def test_bad_client_credentials_are_a_permanent_error(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    mocked.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
    with pytest.raises(HelpdeskAPIError, match="oauth2/token: HTTP 401") as caught:
        client.add_note("2391938111", NOTE, marker="41.2")
    assert (caught.value.status, caught.value.permanent) == (401, True)
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("answer", [{}, {"access_token": ""}, {"access_token": 5}, ["x"]])
def test_a_token_answer_without_a_token_is_retryable(
    mocked: responses.RequestsMock, client: HelpScoutClient, answer: Any
) -> None:
    mocked.post(TOKEN_URL, json=answer)
    with pytest.raises(HelpdeskAPIError, match="no access_token") as caught:
        client.get_requester("1")
    assert caught.value.permanent is False


def test_threads_share_one_token(mocked: responses.RequestsMock, client: HelpScoutClient) -> None:
    _token(mocked)
    mocked.get(f"{API}/customers/1", json={"id": 1})
    errors: list[BaseException] = []

    def work() -> None:
        try:
            client.get_requester("1")
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    workers = [threading.Thread(target=work) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert [c.request.url for c in mocked.calls].count(TOKEN_URL) == 1
    assert len(mocked.calls) == 9


def test_a_fixed_token_is_used_as_it_is(mocked: responses.RequestsMock) -> None:
    client = HelpScoutClient(make_desk(client_id="", client_secret="", token="pre-issued"))
    mocked.get(f"{API}/customers/1", json={"id": 1})
    client.get_requester("1")
    assert [c.request.url for c in mocked.calls] == [f"{API}/customers/1"]
    assert _bearer(mocked, 0) == "Bearer pre-issued"


def test_no_credentials_is_a_permanent_error_without_a_call(
    mocked: responses.RequestsMock,
) -> None:
    client = HelpScoutClient(make_desk(client_id="app-id-1", client_secret="", token=""))
    with pytest.raises(HelpdeskAPIError, match="no Help Scout credentials") as caught:
        client.add_note("2391938111", NOTE, marker="41.2")
    assert caught.value.permanent is True
    assert len(mocked.calls) == 0


# --------------------------------------------------------------------------------------------
# Write-back: exact method, URL and body


def test_add_tags_merges_with_the_conversations_tags(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.get(CONV, json=conversation_answer("2391938111", ["vip", "Upgrade"]))
    merged = {"tags": ["vip", "Upgrade", "care_plan_credits", "care_priority_high"]}
    mocked.put(f"{CONV}/tags", status=204, match=[matchers.json_params_matcher(merged)])
    client.add_tags(
        "2391938111", ["care_plan_credits", "upgrade", "care_priority_high", "care_plan_credits"]
    )
    assert _sent(mocked, 1) == ("GET", CONV, None)
    assert _sent(mocked, 2) == ("PUT", f"{CONV}/tags", merged)
    assert mocked.calls[2].request.headers["Content-Type"] == "application/json"


def test_add_tags_already_there_sends_no_write(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.get(CONV, json=conversation_answer("2391938111", ["vip", "care_plan_vip"]))
    client.add_tags("2391938111", ["care_plan_vip", "VIP"])
    assert [c.request.method for c in mocked.calls] == ["POST", "GET"]


def test_remove_tags_keeps_the_others(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.get(
        CONV, json=conversation_answer("2391938111", ["vip", "care_needs_category", "upgrade"])
    )
    kept = {"tags": ["vip", "upgrade"]}
    mocked.put(f"{CONV}/tags", status=204, match=[matchers.json_params_matcher(kept)])
    client.remove_tags("2391938111", ["CARE_NEEDS_CATEGORY", "not-there"])
    assert _sent(mocked, 2) == ("PUT", f"{CONV}/tags", kept)


def test_remove_tags_not_there_sends_no_write(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.get(CONV, json=conversation_answer("2391938111", ["vip"]))
    client.remove_tags("2391938111", ["care_needs_category"])
    assert [c.request.method for c in mocked.calls] == ["POST", "GET"]


def test_an_empty_tag_list_means_no_request(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    client.add_tags("2391938111", [])
    client.remove_tags("2391938111", ["  "])
    assert len(mocked.calls) == 0


def test_a_lone_string_is_not_a_tag_list(client: HelpScoutClient) -> None:
    with pytest.raises(TypeError, match="not a string"):
        client.add_tags("2391938111", "care_plan_vip")


def test_add_note(mocked: responses.RequestsMock, client: HelpScoutClient) -> None:
    _token(mocked)
    mocked.post(f"{CONV}/notes", status=201, headers={"Resource-ID": "8801000009"})
    client.add_note("2391938111", NOTE, marker="41.2")
    assert _sent(mocked, 1) == ("POST", f"{CONV}/notes", {"text": NOTE})


def test_add_reply_reads_the_customer_once_per_conversation(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.get(CONV, json=conversation_answer("2391938111", [], customer_id=238604))
    body = {"customer": {"id": 238604}, "text": NOTE}
    mocked.post(f"{CONV}/reply", status=201, match=[matchers.json_params_matcher(body)])
    client.add_reply("2391938111", NOTE, marker="41.2")
    client.add_reply("2391938111", NOTE, marker="41.2")
    assert [(c.request.method, c.request.url) for c in mocked.calls] == [
        ("POST", TOKEN_URL),
        ("GET", CONV),
        ("POST", f"{CONV}/reply"),
        ("POST", f"{CONV}/reply"),
    ]
    assert _sent(mocked, 3) == ("POST", f"{CONV}/reply", body)


def test_a_tag_read_also_teaches_the_replys_customer(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.get(CONV, json=conversation_answer("2391938111", ["vip"], customer_id=77))
    mocked.post(
        f"{CONV}/reply",
        status=201,
        match=[matchers.json_params_matcher({"customer": {"id": 77}, "text": NOTE})],
    )
    client.add_tags("2391938111", ["vip"])
    client.add_reply("2391938111", NOTE, marker="41.2")
    assert [c.request.method for c in mocked.calls] == ["POST", "GET", "POST"]


def test_a_conversation_without_customer_cannot_be_replied_to(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    answer = conversation_answer("2391938111", [])
    answer["primaryCustomer"] = None
    mocked.get(CONV, json=answer)
    with pytest.raises(HelpdeskAPIError, match="no primary customer") as caught:
        client.add_reply("2391938111", NOTE, marker="41.2")
    assert caught.value.permanent is True


def test_set_priority_is_refused_for_a_desk_without_priorities(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    with pytest.raises(HelpdeskAPIError, match='priority map must be of kind "tag"') as caught:
        client.set_priority("2391938111", "urgent")
    assert caught.value.permanent is True
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("method", ["add_note", "add_reply"])
def test_notes_must_carry_their_marker(client: HelpScoutClient, method: str) -> None:
    with pytest.raises(ValueError, match=r"\[care:m-1\]"):
        getattr(client, method)("2391938111", "Estimate: 10 credits.", marker="m-1")


@pytest.mark.parametrize("ticket_id", ["", "abc", "1/../../users/1", "1 2", "-3", "1.5"])
def test_ids_are_checked_before_they_go_into_a_path(
    client: HelpScoutClient, ticket_id: str
) -> None:
    with pytest.raises(ValueError, match="must be a number"):
        client.add_note(ticket_id, NOTE, marker="41.2")
    with pytest.raises(ValueError, match="must be a number"):
        client.get_requester(ticket_id)


# --------------------------------------------------------------------------------------------
# Reads


def _threads(*bodies: str, number: int = 1, total: int = 1) -> dict[str, Any]:
    return {
        "_embedded": {
            "threads": [
                {"id": 100 + i, "type": "note", "body": body, "createdBy": {"id": 1}}
                for i, body in enumerate(bodies)
            ]
        },
        "page": {"size": 2, "totalElements": 2 * total, "totalPages": total, "number": number},
    }


def test_has_marker_reads_every_page(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    url = f"{CONV}/threads"
    mocked.get(
        url,
        json=_threads("Hello", "[care:41.1]", total=2),
        match=[matchers.query_param_matcher({})],
    )
    mocked.get(
        url,
        json=_threads("<p>Estimate</p><p>[care:41.2]</p>", number=2, total=2),
        match=[matchers.query_param_matcher({"page": "2"})],
    )
    assert client.has_marker("2391938111", "41.2") is True
    assert [c.request.url for c in mocked.calls[1:]] == [url, f"{url}?page=2"]


def test_has_marker_stops_at_the_first_match(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.get(f"{CONV}/threads", json=_threads("x [care:m-9] y", total=5))
    assert client.has_marker("2391938111", "m-9") is True
    assert len(mocked.calls) == 2


@pytest.mark.parametrize(
    "answer",
    [
        _threads(),
        _threads("[care:m-10]", "care:m-1", "[care:m-1 ]"),
        {"page": {"number": 1, "totalPages": 0}},  # no _embedded: nothing to list
    ],
)
def test_has_marker_is_false_when_no_body_carries_it(
    mocked: responses.RequestsMock, client: HelpScoutClient, answer: dict[str, Any]
) -> None:
    _token(mocked)
    mocked.get(f"{CONV}/threads", json=answer)
    assert client.has_marker("2391938111", "m-1") is False


def test_has_marker_does_not_loop_on_a_page_that_stays(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.get(f"{CONV}/threads", json=_threads("a", number=1, total=3))
    mocked.get(f"{CONV}/threads", json=_threads("b", number=1, total=3))
    assert client.has_marker("2391938111", "m-1") is False
    assert len(mocked.calls) == 3


@pytest.mark.parametrize("answer", [[], {"_embedded": {"threads": "x"}}, {"_embedded": []}])
def test_odd_thread_lists_are_errors(
    mocked: responses.RequestsMock, client: HelpScoutClient, answer: Any
) -> None:
    _token(mocked)
    mocked.get(f"{CONV}/threads", json=answer)
    with pytest.raises(HelpdeskAPIError) as caught:
        client.has_marker("2391938111", "m-1")
    assert caught.value.permanent is False


def test_get_requester(mocked: responses.RequestsMock, client: HelpScoutClient) -> None:
    _token(mocked)
    mocked.get(
        f"{API}/customers/238604",
        json={
            "id": 238604,
            "firstName": "Vernon",
            "lastName": "Bear",
            "_embedded": {
                "emails": [
                    {"id": 1, "value": "", "type": "home"},
                    {"id": 2, "value": "vbear@mywork.com", "type": "work"},
                ]
            },
        },
    )
    assert client.get_requester("238604") == Requester(
        email="vbear@mywork.com", name="Vernon Bear", locale=None
    )
    assert _sent(mocked, 1) == ("GET", f"{API}/customers/238604", None)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"id": 1, "emails": [{"value": "a@b.example"}]}, Requester("a@b.example")),
        ({"id": 1, "email": "c@d.example", "firstName": "C"}, Requester("c@d.example", "C")),
        ({"id": 1, "firstName": " ", "_embedded": {"emails": []}}, Requester(None)),
    ],
)
def test_get_requester_in_other_shapes(
    mocked: responses.RequestsMock,
    client: HelpScoutClient,
    answer: dict[str, Any],
    expected: Requester,
) -> None:
    _token(mocked)
    mocked.get(f"{API}/customers/1", json=answer)
    assert client.get_requester("1") == expected


def test_get_requester_404_is_none(mocked: responses.RequestsMock, client: HelpScoutClient) -> None:
    _token(mocked)
    mocked.get(f"{API}/customers/1", status=404, json={"message": "Not Found"})
    assert client.get_requester("1") is None


def test_get_requester_odd_answer_is_an_error(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.get(f"{API}/customers/1", json=["x"])
    with pytest.raises(HelpdeskAPIError, match="not a customer"):
        client.get_requester("1")


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["vip", "care_priority_high"], "care_priority_high"),
        (["care_priority_high", "CARE_PRIORITY_HIGHEST"], "care_priority_highest"),
        (["vip"], None),
    ],
)
def test_get_priority_is_the_priority_tag(
    mocked: responses.RequestsMock, client: HelpScoutClient, tags: list[str], expected: str | None
) -> None:
    _token(mocked)
    mocked.get(CONV, json=conversation_answer("2391938111", tags))
    assert client.get_priority("2391938111") == expected


def test_a_shared_session_and_the_desks_timeouts_are_used(mocked: responses.RequestsMock) -> None:
    session = requests.Session()
    client = HelpScoutAdapter(make_desk(timeout=3.0)).client(session)
    assert client.session is session
    _token(mocked)
    mocked.get(f"{API}/customers/1", json={"id": 1})
    client.get_requester("1")
    for call in mocked.calls:
        assert cast(Any, call.request).req_kwargs["timeout"] == (3.0, 3.0)


# --------------------------------------------------------------------------------------------
# Failures, one test each


def test_429_waits_for_help_scouts_own_header(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.post(
        f"{CONV}/notes",
        status=429,
        body="Too Many Requests",
        content_type="text/plain",
        headers={
            "X-RateLimit-Retry-After": "23",
            "X-RateLimit-Limit-Minute": "200",
            "X-RateLimit-Remaining-Minute": "0",
        },
    )
    with pytest.raises(HelpdeskAPIError) as caught:
        client.add_note("2391938111", NOTE, marker="41.2")
    error = caught.value
    assert (error.status, error.retry_after, error.permanent, error.body) == (
        429,
        23.0,
        False,
        "Too Many Requests",
    )


def test_429_with_a_standard_retry_after_date(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    later = datetime.now(UTC) + timedelta(seconds=120)
    mocked.get(
        CONV,
        status=429,
        json={"error": "slow"},
        headers={"Retry-After": format_datetime(later, usegmt=True)},
    )
    with pytest.raises(HelpdeskAPIError) as caught:
        client.add_tags("2391938111", ["x"])
    assert caught.value.retry_after is not None and 100.0 < caught.value.retry_after <= 120.0


def test_429_on_the_token_endpoint_carries_the_wait(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    mocked.post(TOKEN_URL, status=429, headers={"X-RateLimit-Retry-After": "9"}, body="")
    with pytest.raises(HelpdeskAPIError) as caught:
        client.add_note("2391938111", NOTE, marker="41.2")
    assert (caught.value.status, caught.value.retry_after, caught.value.permanent) == (
        429,
        9.0,
        False,
    )


def test_500_is_retryable(mocked: responses.RequestsMock, client: HelpScoutClient) -> None:
    _token(mocked)
    mocked.get(CONV, status=500, body="<html>oops</html>")
    with pytest.raises(HelpdeskAPIError) as caught:
        client.get_priority("2391938111")
    assert (caught.value.status, caught.value.permanent, caught.value.retry_after) == (
        500,
        False,
        None,
    )
    assert str(caught.value) == f"GET {CONV}: HTTP 500: <html>oops</html>"


def test_404_is_permanent(mocked: responses.RequestsMock, client: HelpScoutClient) -> None:
    _token(mocked)
    mocked.post(f"{CONV}/notes", status=404, json={"message": "Conversation not found"})
    with pytest.raises(HelpdeskAPIError) as caught:
        client.add_note("2391938111", NOTE, marker="41.2")
    assert (caught.value.status, caught.value.permanent) == (404, True)
    assert "Conversation not found" in caught.value.body


def test_a_read_timeout_is_a_timeout_error(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.post(f"{CONV}/notes", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(HelpdeskTimeoutError, match="no answer within 10 s") as caught:
        client.add_note("2391938111", NOTE, marker="41.2")
    assert caught.value.permanent is False
    assert isinstance(caught.value.__cause__, requests.Timeout)


def test_a_connect_timeout_is_a_host_error_since_nothing_was_sent(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    mocked.post(TOKEN_URL, body=requests.ConnectTimeout("connect timed out"))
    with pytest.raises(HelpdeskHostError, match="could not connect within 5 s"):
        client.add_note("2391938111", NOTE, marker="41.2")


def test_connection_refused_is_a_host_error(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.post(f"{CONV}/reply", body=requests.ConnectionError("Connection refused"))
    mocked.get(CONV, json=conversation_answer("2391938111", []))
    with pytest.raises(HelpdeskHostError, match="cannot reach the desk") as caught:
        client.add_reply("2391938111", NOTE, marker="41.2")
    assert (caught.value.status, caught.value.permanent) == (None, False)
    assert isinstance(caught.value.__cause__, requests.ConnectionError)


def test_a_200_that_is_not_json_is_retryable(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    _token(mocked)
    mocked.get(CONV, status=200, body="<html>maintenance</html>")
    with pytest.raises(HelpdeskAPIError, match="not JSON") as caught:
        client.get_priority("2391938111")
    assert caught.value.permanent is False


def test_the_adapter_builds_this_client() -> None:
    adapter = HelpScoutAdapter(make_desk())
    built: Callable[[], HelpScoutClient] = adapter.client
    assert isinstance(built(), HelpScoutClient)


# --------------------------------------------------------------------------------------------
# Notices outside a conversation: a new conversation with a reply, read back by a search first

NOTICE_MARKER = "expiry.7.20261203.0a1b2c3d4e5f"
NOTICE = f"Hello Fred,\n\nYour Free support period ends on 2026-12-03.\n\n[care:{NOTICE_MARKER}]"
CONVERSATIONS = f"{API}/conversations"
NOTICE_SEARCH = {"mailbox": "301234", "status": "all", "query": f'(body:"{NOTICE_MARKER}")'}


def _notice_client(clock: Clock, **options: Any) -> HelpScoutClient:
    return HelpScoutClient(make_desk(options=options), clock=clock)


def _found(*ids: int, number: int = 1, total: int = 1) -> dict[str, Any]:
    conversations = [{"id": cid, "number": 9000 + cid, "mailboxId": 301234} for cid in ids]
    return {
        "_embedded": {"conversations": conversations},
        "page": {"size": 25, "totalElements": len(ids), "totalPages": total, "number": number},
    }


@pytest.mark.parametrize(
    "options", [{"mailbox_id": 301234}, {"mailbox_id": "301234"}, {"mailbox_ids": [301234]}]
)
def test_notify_customer_opens_a_closed_conversation_with_a_reply_to_the_customer(
    mocked: responses.RequestsMock, clock: Clock, options: dict[str, Any]
) -> None:
    _token(mocked)
    mocked.get(CONVERSATIONS, json=_found(), match=[matchers.query_param_matcher(NOTICE_SEARCH)])
    mocked.post(CONVERSATIONS, status=201, headers={"Resource-ID": "2391940000"})
    _notice_client(clock, **options).notify_customer(
        " fred@shop.example ", "Your Free support period ends", NOTICE, marker=NOTICE_MARKER
    )
    assert len(mocked.calls) == 3
    assert _sent(mocked, 2) == (
        "POST",
        CONVERSATIONS,
        {
            "subject": "Your Free support period ends",
            "customer": {"email": "fred@shop.example"},
            "mailboxId": 301234,
            "type": "email",
            "status": "closed",
            "threads": [
                {"type": "reply", "customer": {"email": "fred@shop.example"}, "text": NOTICE}
            ],
        },
    )
    assert _bearer(mocked, 2) == "Bearer tok-1"


def test_notify_customer_confirms_search_hits_by_their_threads(
    mocked: responses.RequestsMock, clock: Clock
) -> None:
    _token(mocked)
    mocked.get(
        CONVERSATIONS,
        json=_found(501, total=2),
        match=[matchers.query_param_matcher(NOTICE_SEARCH)],
    )
    mocked.get(
        CONVERSATIONS,
        json=_found(502, number=2, total=2),
        match=[matchers.query_param_matcher({**NOTICE_SEARCH, "page": "2"})],
    )
    # Both only quote the marker's text: neither carries the marker line.
    mocked.get(f"{CONVERSATIONS}/501/threads", json=_threads(f"about {NOTICE_MARKER}"))
    mocked.get(f"{CONVERSATIONS}/502/threads", json=_threads("[care:expiry.7.20261203.0a1b]"))
    mocked.post(CONVERSATIONS, status=201, headers={"Resource-ID": "2391940000"})
    _notice_client(clock, mailbox_id=301234).notify_customer(
        "fred@shop.example", "s", NOTICE, marker=NOTICE_MARKER
    )
    assert [c.request.method for c in mocked.calls][-1] == "POST"
    assert len(mocked.calls) == 6


def test_notify_customer_sends_nothing_when_an_earlier_try_created_the_conversation(
    mocked: responses.RequestsMock, clock: Clock
) -> None:
    _token(mocked)
    mocked.get(CONVERSATIONS, json=_found(501))
    html = "<div>Hello Fred,<br><br>Your Free support period ends on 2026-12-03.<br><br>"
    mocked.get(f"{CONVERSATIONS}/501/threads", json=_threads(f"{html}[care:{NOTICE_MARKER}]</div>"))
    _notice_client(clock, mailbox_id=301234).notify_customer(
        "fred@shop.example", "s", NOTICE, marker=NOTICE_MARKER
    )
    assert [c.request.method for c in mocked.calls] == ["POST", "GET", "GET"]  # token, reads


@pytest.mark.parametrize("options", [{}, {"mailbox_ids": [301234, 301235]}])
def test_notify_customer_without_a_mailbox_is_a_permanent_error_without_a_call(
    mocked: responses.RequestsMock, clock: Clock, options: dict[str, Any]
) -> None:
    with pytest.raises(HelpdeskAPIError, match="set options.mailbox_id") as caught:
        _notice_client(clock, **options).notify_customer(
            "fred@shop.example", "s", NOTICE, marker=NOTICE_MARKER
        )
    assert caught.value.permanent is True
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("value", ["Support", True, -1, 12.5])
def test_a_bad_mailbox_option_is_refused_when_the_client_is_built(
    clock: Clock, value: object
) -> None:
    with pytest.raises(ValueError, match="options.mailbox_id must be"):
        _notice_client(clock, mailbox_id=value)


@pytest.mark.parametrize(
    ("email", "body", "marker", "words"),
    [
        ("fred", NOTICE, NOTICE_MARKER, "not an email address"),
        ("fred@shop.example", "no marker", NOTICE_MARKER, "must carry its marker line"),
        ("fred@shop.example", 'x\n[care:a"b]', 'a"b', "letters, digits"),
        ("fred@shop.example", "x\n[care:a b]", "a b", "letters, digits"),
    ],
)
def test_notify_customer_refuses_bad_input_before_any_request(
    mocked: responses.RequestsMock, clock: Clock, email: str, body: str, marker: str, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        _notice_client(clock, mailbox_id=301234).notify_customer(email, "s", body, marker=marker)
    assert len(mocked.calls) == 0
