"""The Zammad REST client: exact requests, authentication, the priority cache, and the
mapping of every failure."""

from __future__ import annotations

import base64
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
from adapters.zammad import ZammadAdapter, ZammadClient
from tests.adapters.support import sent_requests
from tests.adapters.zammad.support import API, PRIORITIES, zammad_desk

NOTE = "Estimate: 10 credits.\n[care:t1042-note-1]"
MARKER = "t1042-note-1"


@pytest.fixture
def client() -> ZammadClient:
    return ZammadAdapter(zammad_desk()).client()


# --------------------------------------------------------------------------------------------
# Write-back: exact method, URL and body


def test_set_priority_looks_the_name_up_and_writes_the_id(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    mocked.get(f"{API}/ticket_priorities", json=PRIORITIES)
    mocked.put(
        f"{API}/tickets/1042",
        json={"id": 1042, "priority_id": 3},
        match=[matchers.json_params_matcher({"priority_id": 3})],
    )
    client.set_priority("1042", "3 high")
    assert sent_requests(mocked) == [
        ("GET", f"{API}/ticket_priorities", None),
        ("PUT", f"{API}/tickets/1042", {"priority_id": 3}),
    ]
    assert mocked.calls[1].request.headers["Content-Type"] == "application/json"


def test_priorities_are_read_once_per_client(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    mocked.get(f"{API}/ticket_priorities", json=PRIORITIES)
    mocked.put(f"{API}/tickets/1", json={"id": 1})
    mocked.put(f"{API}/tickets/2", json={"id": 2})
    client.set_priority("1", "3 high")
    client.set_priority("2", " 2  NORMAL ")  # case and spacing do not matter
    assert [m for m, _, _ in sent_requests(mocked)] == ["GET", "PUT", "PUT"]
    assert sent_requests(mocked)[2][2] == {"priority_id": 2}
    # A new client (a restart) reads them again.
    fresh = ZammadAdapter(zammad_desk()).client()
    mocked.put(f"{API}/tickets/3", json={"id": 3})
    fresh.set_priority("3", "1 low")
    assert [m for m, _, _ in sent_requests(mocked)][3:] == ["GET", "PUT"]


def test_a_renamed_priority_is_read_again_once(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    renamed = [{**p, "name": "3 urgent"} if p["id"] == 3 else p for p in PRIORITIES]
    mocked.get(f"{API}/ticket_priorities", json=PRIORITIES)
    mocked.get(f"{API}/ticket_priorities", json=renamed)
    mocked.put(f"{API}/tickets/1", json={"id": 1})
    mocked.put(f"{API}/tickets/2", json={"id": 2})
    client.set_priority("1", "2 normal")
    client.set_priority("2", "3 urgent")
    assert [m for m, _, _ in sent_requests(mocked)] == ["GET", "PUT", "GET", "PUT"]
    assert sent_requests(mocked)[3][2] == {"priority_id": 3}


def test_an_unknown_or_inactive_priority_is_a_permanent_error(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    listed = [*PRIORITIES, {"id": 4, "name": "4 disaster", "active": False}]
    mocked.get(f"{API}/ticket_priorities", json=listed)
    mocked.get(f"{API}/ticket_priorities", json=listed)
    with pytest.raises(HelpdeskAPIError, match="no active priority named '4 disaster'") as caught:
        client.set_priority("1042", "4 disaster")
    assert caught.value.permanent is True
    assert "1 low, 2 normal, 3 high, 4 disaster" in caught.value.message
    assert all(m == "GET" for m, _, _ in sent_requests(mocked))  # nothing written


def test_add_tags_one_call_per_tag(mocked: responses.RequestsMock, client: ZammadClient) -> None:
    for tag in ("care_plan_vip", "care_category_question"):
        mocked.post(
            f"{API}/tags/add",
            status=201,
            json=True,
            match=[matchers.json_params_matcher({"object": "Ticket", "o_id": 1042, "item": tag})],
        )
    client.add_tags("1042", ["care_plan_vip", " care_category_question ", "care_plan_vip", " "])
    assert sent_requests(mocked) == [
        ("POST", f"{API}/tags/add", {"object": "Ticket", "o_id": 1042, "item": "care_plan_vip"}),
        (
            "POST",
            f"{API}/tags/add",
            {"object": "Ticket", "o_id": 1042, "item": "care_category_question"},
        ),
    ]


def test_remove_tags_one_call_per_tag(mocked: responses.RequestsMock, client: ZammadClient) -> None:
    mocked.delete(
        f"{API}/tags/remove",
        json=True,
        match=[
            matchers.json_params_matcher(
                {"object": "Ticket", "o_id": 1042, "item": "care_needs_category"}
            )
        ],
    )
    client.remove_tags("1042", ["care_needs_category"])
    assert sent_requests(mocked) == [
        (
            "DELETE",
            f"{API}/tags/remove",
            {"object": "Ticket", "o_id": 1042, "item": "care_needs_category"},
        )
    ]


def test_add_note_is_an_internal_plain_text_note(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    body = {
        "ticket_id": 1042,
        "body": NOTE,
        "content_type": "text/plain",
        "type": "note",
        "internal": True,
    }
    mocked.post(
        f"{API}/ticket_articles",
        status=201,
        json={"id": 5010},
        match=[matchers.json_params_matcher(body)],
    )
    client.add_note("1042", NOTE, marker=MARKER)
    assert sent_requests(mocked) == [("POST", f"{API}/ticket_articles", body)]


def test_add_reply_mails_the_customer(mocked: responses.RequestsMock, client: ZammadClient) -> None:
    body = {
        "ticket_id": 1042,
        "body": NOTE,
        "content_type": "text/plain",
        "type": "email",
        "internal": False,
        "to": "owner@shop.example",
    }
    mocked.get(f"{API}/tickets/1042", json={"id": 1042, "customer_id": 27, "group_id": 1})
    mocked.get(f"{API}/users/27", json={"id": 27, "email": "owner@shop.example"})
    mocked.post(
        f"{API}/ticket_articles",
        status=201,
        json={"id": 5011},
        match=[matchers.json_params_matcher(body)],
    )
    client.add_reply("1042", NOTE, marker=MARKER)
    assert sent_requests(mocked) == [
        ("GET", f"{API}/tickets/1042", None),
        ("GET", f"{API}/users/27", None),
        ("POST", f"{API}/ticket_articles", body),
    ]


@pytest.mark.parametrize(
    ("user", "options"),
    [
        ({"id": 27, "email": ""}, {}),  # a phone-only customer: no address to mail
        (None, {"reply_type": "note"}),  # the desk asks for public notes
    ],
)
def test_add_reply_as_a_public_note(
    mocked: responses.RequestsMock, user: dict[str, Any] | None, options: dict[str, str]
) -> None:
    client = ZammadAdapter(zammad_desk(options=options)).client()
    body = {
        "ticket_id": 1042,
        "body": NOTE,
        "content_type": "text/plain",
        "type": "note",
        "internal": False,
    }
    if user is not None:
        mocked.get(f"{API}/tickets/1042", json={"id": 1042, "customer_id": 27})
        mocked.get(f"{API}/users/27", json=user)
    mocked.post(
        f"{API}/ticket_articles",
        status=201,
        json={"id": 5012},
        match=[matchers.json_params_matcher(body)],
    )
    client.add_reply("1042", NOTE, marker=MARKER)
    assert sent_requests(mocked)[-1] == ("POST", f"{API}/ticket_articles", body)


def test_add_reply_to_a_ticket_that_is_gone_is_permanent(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    mocked.get(f"{API}/tickets/1042", status=404, json={"error": "Not found"})
    with pytest.raises(HelpdeskAPIError) as caught:
        client.add_reply("1042", NOTE, marker=MARKER)
    assert (caught.value.status, caught.value.permanent) == (404, True)


def test_no_tags_means_no_request(mocked: responses.RequestsMock, client: ZammadClient) -> None:
    mocked.assert_all_requests_are_fired = False
    client.add_tags("1042", [])
    client.remove_tags("1042", ["  "])
    assert len(mocked.calls) == 0


def test_a_lone_string_is_not_a_tag_list(client: ZammadClient) -> None:
    with pytest.raises(TypeError, match="not a string"):
        client.add_tags("1042", "care_plan_vip")


@pytest.mark.parametrize("method", ["add_note", "add_reply"])
def test_notes_must_carry_their_marker(client: ZammadClient, method: str) -> None:
    with pytest.raises(ValueError, match=r"\[care:m-1\]"):
        getattr(client, method)("1042", "Estimate: 10 credits.", marker="m-1")


@pytest.mark.parametrize("ticket_id", ["", "abc", "1042/../../users/1", "1 2", "-3", "r-910"])
def test_ids_are_checked_before_they_go_into_a_path(client: ZammadClient, ticket_id: str) -> None:
    with pytest.raises(ValueError, match="must be a number"):
        client.set_priority(ticket_id, "3 high")
    with pytest.raises(ValueError, match="must be a number"):
        client.add_tags(ticket_id, ["x"])
    with pytest.raises(ValueError, match="must be a number"):
        client.get_requester(ticket_id)


# --------------------------------------------------------------------------------------------
# Authentication and headers


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "Token token=zammad-token"),
        ({"options": {"auth": "oauth"}, "token": "oauth-access"}, "Bearer oauth-access"),
        (
            {"options": {"auth": "Basic"}, "username": "care-bot", "password": "pw:1"},
            "Basic " + base64.b64encode(b"care-bot:pw:1").decode(),
        ),
        ({"token": ""}, None),
        ({"options": {"auth": "basic"}, "username": "care-bot"}, None),
    ],
)
def test_authentication(
    mocked: responses.RequestsMock, overrides: dict[str, Any], expected: str | None
) -> None:
    mocked.get(f"{API}/users/27", json={"id": 27})
    ZammadAdapter(zammad_desk(**overrides)).client().get_requester("27")
    assert mocked.calls[0].request.headers.get("Authorization") == expected
    assert mocked.calls[0].request.headers["User-Agent"] == user_agent("zammad")
    assert mocked.calls[0].request.headers["Accept"] == "application/json"


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"auth": "password"}, "options.auth must be one of token, oauth, basic"),
        ({"reply_type": "sms"}, "options.reply_type must be one of email, note"),
        ({"group": " "}, "options.group must be a Zammad group name or id"),
        ({"group": 0}, "options.group must be a Zammad group name or id"),
        ({"group": True}, "options.group must be a Zammad group name or id"),
    ],
)
def test_unknown_options_are_clear_errors(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        ZammadAdapter(zammad_desk(options=options)).client()


def test_timeouts_come_from_the_desk(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}/users/27", json={"id": 27})
    ZammadAdapter(zammad_desk(timeout=3.0)).client().get_requester("27")
    assert cast(Any, mocked.calls[0].request).req_kwargs["timeout"] == (3.0, 3.0)


def test_a_shared_session_is_used(mocked: responses.RequestsMock) -> None:
    session = requests.Session()
    client = ZammadAdapter(zammad_desk()).client(session)
    assert client.session is session
    mocked.get(f"{API}/tickets/1", json={"id": 1, "priority": "2 normal"})
    assert client.get_priority("1") == "2 normal"


# --------------------------------------------------------------------------------------------
# Reads


def _articles(*bodies: str) -> list[dict[str, Any]]:
    return [
        {"id": 5000 + i, "ticket_id": 1042, "body": body, "type": "note", "internal": True}
        for i, body in enumerate(bodies)
    ]


@pytest.mark.parametrize(
    ("articles", "found"),
    [
        (_articles("Hello", "Estimate: 5.\n[care:t1042-note-0]", NOTE), True),
        (_articles("<p>Estimate</p><p>[care:t1042-note-1]</p>"), True),
        (_articles("&#91;care:t1042-note-1&#93;"), True),  # HTML-escaped by an editor
        ([], False),
        (_articles("[care:t1042-note-10]", "care:t1042-note-1", "[care:t1042-note-1 ]"), False),
        ([{"id": 1, "body": None}, "junk"], False),
    ],
)
def test_has_marker(
    mocked: responses.RequestsMock, client: ZammadClient, articles: list[Any], found: bool
) -> None:
    mocked.get(f"{API}/ticket_articles/by_ticket/1042", json=articles)
    assert client.has_marker("1042", MARKER) is found


def test_has_marker_needs_a_list(mocked: responses.RequestsMock, client: ZammadClient) -> None:
    mocked.get(f"{API}/ticket_articles/by_ticket/1042", json={"error": "?"})
    with pytest.raises(HelpdeskAPIError, match="not a list") as caught:
        client.has_marker("1042", MARKER)
    assert caught.value.permanent is False


def test_get_requester(mocked: responses.RequestsMock, client: ZammadClient) -> None:
    mocked.get(
        f"{API}/users/27",
        json={
            "id": 27,
            "login": "owner@shop.example",
            "email": "owner@shop.example",
            "firstname": "Shop",
            "lastname": "Owner",
            "preferences": {"locale": "de-de", "notification_sound": {}},
        },
    )
    assert client.get_requester("27") == Requester(
        email="owner@shop.example", name="Shop Owner", locale="de-de"
    )


def test_get_requester_with_little(mocked: responses.RequestsMock, client: ZammadClient) -> None:
    mocked.get(f"{API}/users/1", json={"id": 1, "email": "", "firstname": " ", "preferences": []})
    assert client.get_requester("1") == Requester(email=None, name=None, locale=None)


def test_get_requester_404_is_none(mocked: responses.RequestsMock, client: ZammadClient) -> None:
    mocked.get(f"{API}/users/1", status=404, json={"error": "Couldn't find User with 'id'=1"})
    assert client.get_requester("1") is None


@pytest.mark.parametrize("answer", [[], "user", None])
def test_get_requester_odd_answers_are_errors(
    mocked: responses.RequestsMock, client: ZammadClient, answer: Any
) -> None:
    mocked.get(f"{API}/users/1", json=answer)
    with pytest.raises(HelpdeskAPIError, match="not a user"):
        client.get_requester("1")


@pytest.mark.parametrize(
    ("ticket", "expected"),
    [
        ({"id": 1042, "priority_id": 3}, "3 high"),
        ({"id": 1042, "priority_id": 2, "priority": "2 normal"}, "2 normal"),
        ({"id": 1042, "priority_id": None}, None),
        ({"id": 1042, "priority_id": 99}, None),  # not listed, even after a fresh read
    ],
)
def test_get_priority(
    mocked: responses.RequestsMock,
    client: ZammadClient,
    ticket: dict[str, Any],
    expected: str | None,
) -> None:
    mocked.assert_all_requests_are_fired = False
    mocked.get(f"{API}/tickets/1042", json=ticket)
    mocked.get(f"{API}/ticket_priorities", json=PRIORITIES)
    assert client.get_priority("1042") == expected


def test_get_tags(mocked: responses.RequestsMock, client: ZammadClient) -> None:
    mocked.get(
        f"{API}/tags",
        json={"tags": ["care_plan_vip", "shipping", 5]},
        match=[matchers.query_param_matcher({"object": "Ticket", "o_id": "1042"})],
    )
    assert client.get_tags("1042") == ("care_plan_vip", "shipping")


# --------------------------------------------------------------------------------------------
# Failures, one test each


def test_connection_refused_is_a_host_error(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    mocked.post(f"{API}/tags/add", body=requests.ConnectionError("Connection refused"))
    with pytest.raises(HelpdeskHostError, match="cannot reach the desk") as caught:
        client.add_tags("1042", ["x"])
    assert (caught.value.status, caught.value.permanent) == (None, False)
    assert isinstance(caught.value.__cause__, requests.ConnectionError)


def test_a_read_timeout_is_a_timeout_error(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    mocked.post(f"{API}/ticket_articles", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(HelpdeskTimeoutError, match="no answer within 10 s") as caught:
        client.add_note("1042", NOTE, marker=MARKER)
    assert caught.value.permanent is False
    assert isinstance(caught.value.__cause__, requests.Timeout)


def test_a_connect_timeout_is_a_host_error_since_nothing_was_sent(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    mocked.post(f"{API}/ticket_articles", body=requests.ConnectTimeout("connect timed out"))
    with pytest.raises(HelpdeskHostError, match="could not connect within 5 s"):
        client.add_note("1042", NOTE, marker=MARKER)


def test_404_is_permanent(mocked: responses.RequestsMock, client: ZammadClient) -> None:
    mocked.post(
        f"{API}/ticket_articles",
        status=404,
        json={"error": "Couldn't find Ticket with 'id'=1042"},
    )
    with pytest.raises(HelpdeskAPIError) as caught:
        client.add_note("1042", NOTE, marker=MARKER)
    assert (caught.value.status, caught.value.permanent) == (404, True)
    assert "Couldn't find Ticket" in caught.value.body


def test_422_is_permanent(mocked: responses.RequestsMock, client: ZammadClient) -> None:
    mocked.post(f"{API}/tags/add", status=422, json={"error": "Tag is not allowed"})
    with pytest.raises(HelpdeskAPIError) as caught:
        client.add_tags("1042", ["x"])
    assert (caught.value.status, caught.value.permanent) == (422, True)


def test_429_with_retry_after_seconds(mocked: responses.RequestsMock, client: ZammadClient) -> None:
    mocked.put(
        f"{API}/tickets/1042",
        status=429,
        body="Too Many Requests",
        content_type="text/plain",
        headers={"Retry-After": "7"},
    )
    mocked.get(f"{API}/ticket_priorities", json=PRIORITIES)
    with pytest.raises(HelpdeskAPIError) as caught:
        client.set_priority("1042", "3 high")
    error = caught.value
    assert (error.status, error.retry_after, error.permanent, error.body) == (
        429,
        7.0,
        False,
        "Too Many Requests",
    )


def test_429_with_retry_after_as_an_http_date(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    mocked.delete(
        f"{API}/tags/remove",
        status=429,
        json={"error": "Too Many Requests"},
        headers={"Retry-After": format_datetime(later, usegmt=True)},
    )
    with pytest.raises(HelpdeskAPIError) as caught:
        client.remove_tags("1042", ["x"])
    assert caught.value.retry_after is not None
    assert 100.0 < caught.value.retry_after <= 120.0
    assert caught.value.permanent is False


def test_429_without_retry_after_is_retryable_with_no_wait(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    mocked.get(f"{API}/ticket_priorities", status=429, body="slow down")
    with pytest.raises(HelpdeskAPIError) as caught:
        client.set_priority("1042", "3 high")
    assert (caught.value.status, caught.value.retry_after, caught.value.permanent) == (
        429,
        None,
        False,
    )


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retryable(
    mocked: responses.RequestsMock, client: ZammadClient, status: int
) -> None:
    mocked.get(f"{API}/ticket_articles/by_ticket/1042", status=status, body="<html>oops</html>")
    with pytest.raises(HelpdeskAPIError) as caught:
        client.has_marker("1042", MARKER)
    assert (caught.value.status, caught.value.permanent, caught.value.retry_after) == (
        status,
        False,
        None,
    )
    assert str(caught.value) == (
        f"GET {API}/ticket_articles/by_ticket/1042: HTTP {status}: <html>oops</html>"
    )


def test_a_200_that_is_not_json_is_retryable(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    mocked.get(f"{API}/ticket_priorities", status=200, body="<html>maintenance</html>")
    with pytest.raises(HelpdeskAPIError, match="not JSON") as caught:
        client.set_priority("1042", "3 high")
    assert caught.value.permanent is False


# --------------------------------------------------------------------------------------------
# Installer calls


def test_lists_follow_pages_until_a_short_one(
    mocked: responses.RequestsMock, client: ZammadClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ZammadClient, "page_size", 2)
    mocked.get(
        f"{API}/triggers",
        json=[{"id": 1}, {"id": 2}],
        match=[matchers.query_param_matcher({"page": "1", "per_page": "2"})],
    )
    mocked.get(
        f"{API}/triggers",
        json=[{"id": 3}],
        match=[matchers.query_param_matcher({"page": "2", "per_page": "2"})],
    )
    assert [t["id"] for t in client.list_triggers()] == [1, 2, 3]


def test_lists_stop_at_the_safety_limit(
    mocked: responses.RequestsMock, client: ZammadClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ZammadClient, "page_size", 1)
    monkeypatch.setattr(ZammadClient, "max_pages", 3)
    mocked.get(f"{API}/webhooks", json=[{"id": 1}])
    with pytest.raises(HelpdeskAPIError, match="more than 3 pages"):
        client.list_webhooks()
    assert len(mocked.calls) == 3


@pytest.mark.parametrize(
    ("call", "path"),
    [
        (lambda c: c.create_webhook({"name": "x"}), "/webhooks"),
        (lambda c: c.create_trigger({"name": "x"}), "/triggers"),
    ],
)
def test_creations_must_answer_an_id(
    mocked: responses.RequestsMock,
    client: ZammadClient,
    call: Callable[[ZammadClient], Any],
    path: str,
) -> None:
    mocked.post(f"{API}{path}", status=201, json={"name": "x"})
    with pytest.raises(HelpdeskAPIError, match="has no"):
        call(client)


# --------------------------------------------------------------------------------------------
# Notices outside a ticket: a new ticket with an email article, read back by a search first

NOTICE_MARKER = "expiry.7.20261203.0a1b2c3d4e5f"
NOTICE = f"Hello Fred,\n\nYour Free support period ends on 2026-12-03.\n\n[care:{NOTICE_MARKER}]"
SEARCH = f"{API}/tickets/search"


def _search(mock: responses.RequestsMock, ticket_ids: list[int]) -> None:
    mock.get(
        SEARCH,
        json={"tickets": ticket_ids, "tickets_count": len(ticket_ids), "assets": {}},
        match=[matchers.query_param_matcher({"query": NOTICE_MARKER, "limit": "20"})],
    )


@pytest.mark.parametrize(
    ("options", "group"),
    [
        ({}, {"group": "Users"}),
        ({"group": " Customer Care "}, {"group": "Customer Care"}),
        ({"group": 4}, {"group_id": 4}),
    ],
)
def test_notify_customer_opens_a_closed_ticket_with_an_email_to_the_customer(
    mocked: responses.RequestsMock, options: dict[str, Any], group: dict[str, Any]
) -> None:
    _search(mocked, [])
    mocked.post(f"{API}/tickets", status=201, json={"id": 19, "article_ids": [30]})
    client = ZammadAdapter(zammad_desk(options=options)).client()
    client.notify_customer(
        " fred@shop.example ", "Your Free support period ends", NOTICE, marker=NOTICE_MARKER
    )
    assert sent_requests(mocked) == [
        ("GET", f"{SEARCH}?query={NOTICE_MARKER}&limit=20", None),
        (
            "POST",
            f"{API}/tickets",
            {
                "title": "Your Free support period ends",
                **group,
                "customer_id": "guess:fred@shop.example",
                "state": "closed",
                "article": {
                    "subject": "Your Free support period ends",
                    "body": NOTICE,
                    "content_type": "text/plain",
                    "type": "email",
                    "to": "fred@shop.example",
                    "internal": False,
                },
            },
        ),
    ]


def test_notify_customer_confirms_search_hits_by_their_articles(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    # The search matched two tickets that merely mention the marker's text.
    _search(mocked, [31, 32])
    mocked.get(f"{API}/ticket_articles/by_ticket/31", json=_articles(f"see {NOTICE_MARKER}"))
    mocked.get(
        f"{API}/ticket_articles/by_ticket/32",
        json=_articles("[care:expiry.7.20261203.0a1b2c3d4e5]"),
    )
    mocked.post(f"{API}/tickets", status=201, json={"id": 33})
    client.notify_customer("fred@shop.example", "s", NOTICE, marker=NOTICE_MARKER)
    assert [(method, url) for method, url, _ in sent_requests(mocked)][1:] == [
        ("GET", f"{API}/ticket_articles/by_ticket/31"),
        ("GET", f"{API}/ticket_articles/by_ticket/32"),
        ("POST", f"{API}/tickets"),
    ]


def test_notify_customer_sends_nothing_when_an_earlier_try_created_the_ticket(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    _search(mocked, [31, 40])
    mocked.get(f"{API}/ticket_articles/by_ticket/31", json=_articles("Where is my order?"))
    mocked.get(f"{API}/ticket_articles/by_ticket/40", json=_articles(NOTICE))
    client.notify_customer("fred@shop.example", "s", NOTICE, marker=NOTICE_MARKER)
    assert [method for method, _, _ in sent_requests(mocked)] == ["GET", "GET", "GET"]


@pytest.mark.parametrize(
    ("email", "body", "marker", "words"),
    [
        ("fred", NOTICE, NOTICE_MARKER, "not an email address"),
        ("fred@shop.example", "no marker", NOTICE_MARKER, "must carry its marker line"),
        ("fred@shop.example", "x\n[care:a:b]", "a:b", "letters, digits"),
        ("fred@shop.example", 'x\n[care:a"b]', 'a"b', "letters, digits"),
    ],
)
def test_notify_customer_refuses_bad_input_before_any_request(
    mocked: responses.RequestsMock,
    client: ZammadClient,
    email: str,
    body: str,
    marker: str,
    words: str,
) -> None:
    with pytest.raises(ValueError, match=words):
        client.notify_customer(email, "s", body, marker=marker)
    assert len(mocked.calls) == 0


def test_notify_customer_refuses_an_odd_search_answer(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    mocked.get(SEARCH, json=[{"id": 31}])
    with pytest.raises(HelpdeskAPIError, match="no 'tickets' list") as caught:
        client.notify_customer("fred@shop.example", "s", NOTICE, marker=NOTICE_MARKER)
    assert caught.value.permanent is False


def test_a_422_on_the_notice_is_permanent(
    mocked: responses.RequestsMock, client: ZammadClient
) -> None:
    _search(mocked, [])
    mocked.post(f"{API}/tickets", status=422, json={"error": "No such group 'Users'"})
    with pytest.raises(HelpdeskAPIError, match="No such group") as caught:
        client.notify_customer("fred@shop.example", "s", NOTICE, marker=NOTICE_MARKER)
    assert caught.value.permanent is True
