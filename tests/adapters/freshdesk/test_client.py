"""The Freshdesk REST client: exact requests, the tag read-merge-write and its race,
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
from adapters.freshdesk import FreshdeskAdapter, FreshdeskClient
from adapters.freshdesk.client import text_to_html
from tests.adapters.freshdesk.support import API, API_KEY, fixture_json, freshdesk_desk

TICKET = f"{API}/tickets/1042"
NOTE = "Estimate: 10 credits.\n<b>not markup</b> & more\n[care:t1042-note-1]"
NOTE_HTML = (
    "Estimate: 10 credits.<br>&lt;b&gt;not markup&lt;/b&gt; &amp; more<br>[care:t1042-note-1]"
)


@pytest.fixture
def client() -> FreshdeskClient:
    return FreshdeskAdapter(freshdesk_desk()).client()


def _sent(mock: responses.RequestsMock, index: int = 0) -> tuple[str, str, Any]:
    request = mock.calls[index].request
    body = json.loads(request.body) if request.body else None
    return request.method or "", request.url or "", body


def _ticket(tags: list[str], **extra: Any) -> dict[str, Any]:
    """The API's ticket (python-freshdesk's sample) with these tags."""
    data = fixture_json("api_view_ticket_response.json")
    data.update(id=1042, tags=tags, **extra)
    return data


# --------------------------------------------------------------------------------------------
# Write-back: exact method, URL and body


@pytest.mark.parametrize(
    ("call", "method", "url", "body", "answer"),
    [
        (
            lambda c: c.set_priority("1042", "4"),
            "PUT",
            TICKET,
            {"priority": 4},
            {"id": 1042, "priority": 4},
        ),
        (
            lambda c: c.set_priority(" 1042 ", " 2 "),
            "PUT",
            TICKET,
            {"priority": 2},
            {"id": 1042, "priority": 2},
        ),
        (
            lambda c: c.add_note("1042", NOTE, marker="t1042-note-1"),
            "POST",
            f"{TICKET}/notes",
            {"body": NOTE_HTML, "private": True},
            fixture_json("api_create_note_response.json"),
        ),
        (
            lambda c: c.add_reply("1042", NOTE, marker="t1042-note-1"),
            "POST",
            f"{TICKET}/reply",
            {"body": NOTE_HTML},
            fixture_json("api_create_reply_response.json"),
        ),
    ],
)
def test_write_back_requests(
    mocked: responses.RequestsMock,
    client: FreshdeskClient,
    call: Callable[[FreshdeskClient], None],
    method: str,
    url: str,
    body: dict[str, Any],
    answer: dict[str, Any],
) -> None:
    mocked.add(method, url, json=answer, match=[matchers.json_params_matcher(body)])
    call(client)
    assert len(mocked.calls) == 1
    assert _sent(mocked) == (method, url, body)
    assert mocked.calls[0].request.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("value", ["5", "0", "urgent", "", "4.0", "٤"])
def test_only_freshdesk_priorities_are_sent(client: FreshdeskClient, value: str) -> None:
    with pytest.raises(ValueError, match="1, 2, 3 or 4"):
        client.set_priority("1042", value)


def test_text_to_html_keeps_the_marker() -> None:
    assert text_to_html("a\n\n[care:m-1]") == "a<br><br>[care:m-1]"
    assert text_to_html('say "hi" <x>') == 'say "hi" &lt;x&gt;'


@pytest.mark.parametrize("method", ["add_note", "add_reply"])
def test_notes_must_carry_their_marker(client: FreshdeskClient, method: str) -> None:
    with pytest.raises(ValueError, match=r"\[care:m-1\]"):
        getattr(client, method)("1042", "Estimate: 10 credits.", marker="m-1")


@pytest.mark.parametrize("ticket_id", ["", "abc", "1042/../../contacts/1", "1 2", "-3"])
def test_ids_are_checked_before_they_go_into_a_path(
    client: FreshdeskClient, ticket_id: str
) -> None:
    with pytest.raises(ValueError, match="must be a number"):
        client.set_priority(ticket_id, "3")
    with pytest.raises(ValueError, match="must be a number"):
        client.add_tags(ticket_id, ["x"])


# --------------------------------------------------------------------------------------------
# Tags: read, merge, write, read back


def test_add_tags_reads_merges_writes_and_reads_back(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    merged = ["foo", "bar", "care_plan_vip", "care_category_question"]
    mocked.get(TICKET, json=_ticket(["foo", "bar"]))
    mocked.put(TICKET, json=_ticket(merged), match=[matchers.json_params_matcher({"tags": merged})])
    mocked.get(TICKET, json=_ticket(merged))
    client.add_tags("1042", ["care_plan_vip", "care_category_question", "care_plan_vip", " "])
    assert [(c.request.method, c.request.url) for c in mocked.calls] == [
        ("GET", TICKET),
        ("PUT", TICKET),
        ("GET", TICKET),
    ]
    assert _sent(mocked, 1) == ("PUT", TICKET, {"tags": merged})


def test_tags_already_there_mean_no_write(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    mocked.get(TICKET, json=_ticket(["Care_Plan_VIP", "foo"]))
    client.add_tags("1042", ["care_plan_vip"])
    client.remove_tags("1042", ["care_not_there"])
    assert [c.request.method for c in mocked.calls] == ["GET", "GET"]


def test_a_ticket_without_tags(mocked: responses.RequestsMock, client: FreshdeskClient) -> None:
    mocked.get(TICKET, json={"id": 1042, "tags": None})
    mocked.put(TICKET, json={"id": 1042}, match=[matchers.json_params_matcher({"tags": ["a"]})])
    mocked.get(TICKET, json={"id": 1042, "tags": ["a"]})
    client.add_tags("1042", ["a"])
    assert len(mocked.calls) == 3


def test_an_agents_stale_save_is_merged_again_once(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    # After the first write an agent's save (with the tag list of before) drops the new tag
    # and adds "escalated"; the second round merges into that list, keeping "escalated".
    mocked.get(TICKET, json=_ticket(["foo"], updated_at="2025-02-03T17:00:00Z"))
    mocked.put(
        TICKET, json={"id": 1042}, match=[matchers.json_params_matcher({"tags": ["foo", "vip"]})]
    )
    mocked.get(TICKET, json=_ticket(["foo", "escalated"], updated_at="2025-02-03T17:00:02Z"))
    mocked.put(
        TICKET,
        json={"id": 1042},
        match=[matchers.json_params_matcher({"tags": ["foo", "escalated", "vip"]})],
    )
    mocked.get(TICKET, json=_ticket(["foo", "escalated", "vip"]))
    client.add_tags("1042", ["vip"])
    assert [c.request.method for c in mocked.calls] == ["GET", "PUT", "GET", "PUT", "GET"]


def test_a_change_undone_twice_is_a_retryable_conflict(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    # Each read-back shows a later write (updated_at moves) without the tag.
    for second in range(3):
        mocked.get(TICKET, json=_ticket(["foo"], updated_at=f"2025-02-03T17:00:0{second}Z"))
    mocked.put(TICKET, json={"id": 1042})
    with pytest.raises(HelpdeskAPIError, match="changed again by someone else") as caught:
        client.add_tags("1042", ["vip"])
    assert (caught.value.status, caught.value.permanent) == (409, False)
    assert [c.request.method for c in mocked.calls] == ["GET", "PUT", "GET", "PUT", "GET"]


def test_a_read_back_that_does_not_show_the_write_yet_is_no_conflict(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    # Same updated_at before and after: the write was accepted, the read is behind.
    mocked.get(TICKET, json=_ticket(["foo"], updated_at="2025-02-03T17:00:00Z"))
    mocked.put(TICKET, json={"id": 1042})
    client.add_tags("1042", ["vip"])
    client.remove_tags("1042", ["foo"])
    assert [c.request.method for c in mocked.calls] == ["GET", "PUT", "GET"] * 2


def test_a_tag_an_agent_removed_meanwhile_is_not_put_back(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    # The read-back shows our tag but no longer "foo": an agent removed it; nothing more is sent.
    mocked.get(TICKET, json=_ticket(["foo"]))
    mocked.put(TICKET, json={"id": 1042})
    mocked.get(TICKET, json=_ticket(["vip"]))
    client.add_tags("1042", ["vip"])
    assert [c.request.method for c in mocked.calls] == ["GET", "PUT", "GET"]


def test_remove_tags_keeps_the_others(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    mocked.get(TICKET, json=_ticket(["foo", "Care_Needs_Category", "bar", "care_x"]))
    mocked.put(
        TICKET, json={"id": 1042}, match=[matchers.json_params_matcher({"tags": ["foo", "bar"]})]
    )
    mocked.get(TICKET, json=_ticket(["foo", "bar"]))
    client.remove_tags("1042", ["care_needs_category", "care_x"])
    assert _sent(mocked, 1) == ("PUT", TICKET, {"tags": ["foo", "bar"]})


def test_no_tags_means_no_request(mocked: responses.RequestsMock, client: FreshdeskClient) -> None:
    mocked.assert_all_requests_are_fired = False
    client.add_tags("1042", [])
    client.remove_tags("1042", ["  "])
    assert len(mocked.calls) == 0


def test_a_lone_string_is_not_a_tag_list(client: FreshdeskClient) -> None:
    with pytest.raises(TypeError, match="not a string"):
        client.add_tags("1042", "care_plan_vip")


@pytest.mark.parametrize(
    "answer", [[], {"tags": []}, {"id": 1042, "tags": "a, b"}, {"id": 1, "tags": [1]}]
)
def test_odd_ticket_answers_are_errors(
    mocked: responses.RequestsMock, client: FreshdeskClient, answer: Any
) -> None:
    mocked.get(TICKET, json=answer)
    with pytest.raises(HelpdeskAPIError, match="not a ticket|not a list") as caught:
        client.add_tags("1042", ["x"])
    assert caught.value.permanent is False


# --------------------------------------------------------------------------------------------
# Authentication and headers


def test_api_key_authentication(mocked: responses.RequestsMock, client: FreshdeskClient) -> None:
    mocked.get(TICKET, json={"id": 1042, "priority": 3})
    assert client.get_priority("1042") == "3"
    expected = "Basic " + base64.b64encode(f"{API_KEY}:X".encode()).decode()
    headers = mocked.calls[0].request.headers
    assert headers["Authorization"] == expected
    assert headers["User-Agent"] == user_agent("freshdesk")
    assert headers["Accept"] == "application/json"


def test_no_api_key_sends_no_credentials(mocked: responses.RequestsMock) -> None:
    mocked.get(TICKET, status=401, json={"code": "invalid_credentials"})
    client = FreshdeskAdapter(freshdesk_desk(api_key="")).client()
    with pytest.raises(HelpdeskAPIError) as caught:
        client.get_priority("1042")
    assert "Authorization" not in mocked.calls[0].request.headers
    assert (caught.value.status, caught.value.permanent) == (401, True)


def test_timeouts_come_from_the_desk(mocked: responses.RequestsMock) -> None:
    mocked.get(TICKET, json={"id": 1042, "priority": 1})
    FreshdeskAdapter(freshdesk_desk(timeout=3.0)).client().get_priority("1042")
    assert cast(Any, mocked.calls[0].request).req_kwargs["timeout"] == (3.0, 3.0)


def test_a_shared_session_is_used(mocked: responses.RequestsMock) -> None:
    session = requests.Session()
    client = FreshdeskAdapter(freshdesk_desk()).client(session)
    assert client.session is session
    mocked.get(TICKET, json={"id": 1042, "priority": 4})
    assert client.get_priority("1042") == "4"


# --------------------------------------------------------------------------------------------
# Reads


def _conversations(*bodies: str, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": start + i, "body": f"<div>{b}</div>", "body_text": b, "private": True}
        for i, b in enumerate(bodies)
    ]


def test_has_marker_reads_every_page(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    url = f"{TICKET}/conversations"
    first = _conversations(*(f"reply {i}" for i in range(100)))
    mocked.get(
        url,
        json=first,
        headers={"Link": f'<{url}?page=2&per_page=100>; rel="next"'},
        match=[matchers.query_param_matcher({"page": "1", "per_page": "100"})],
    )
    mocked.get(
        url,
        json=_conversations("Estimate: 10.\n[care:t1042-note-1]", start=100),
        match=[matchers.query_param_matcher({"page": "2", "per_page": "100"})],
    )
    assert client.has_marker("1042", "t1042-note-1") is True
    assert len(mocked.calls) == 2


def test_has_marker_asks_for_the_next_page_while_pages_are_full(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    url = f"{TICKET}/conversations"
    mocked.get(
        url,
        json=_conversations(*(f"r{i}" for i in range(100))),
        match=[matchers.query_param_matcher({"page": "1", "per_page": "100"})],
    )
    mocked.get(url, json=[], match=[matchers.query_param_matcher({"page": "2", "per_page": "100"})])
    assert client.has_marker("1042", "m-1") is False
    assert len(mocked.calls) == 2


def test_has_marker_stops_at_the_first_match(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    url = f"{TICKET}/conversations"
    mocked.get(
        url, json=_conversations("x [care:m-9] y"), headers={"Link": f'<{url}?page=2>; rel="next"'}
    )
    assert client.has_marker("1042", "m-9") is True
    assert len(mocked.calls) == 1


@pytest.mark.parametrize(
    "items",
    [
        [],
        _conversations("[care:m-10]", "care:m-1", "[care:m-1 ]"),
        [{"id": 1, "body": None, "body_text": 5}],
    ],
)
def test_has_marker_is_false_when_no_body_carries_it(
    mocked: responses.RequestsMock, client: FreshdeskClient, items: list[dict[str, Any]]
) -> None:
    mocked.get(f"{TICKET}/conversations", json=items)
    assert client.has_marker("1042", "m-1") is False


def test_has_marker_reads_the_html_body_too(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    mocked.get(
        f"{TICKET}/conversations",
        json=[{"id": 1, "body": "<div>a &amp; b<br>[care:m&amp;1]</div>"}],
    )
    assert client.has_marker("1042", "m&1") is True


def test_has_marker_refuses_an_answer_that_is_not_a_list(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    mocked.get(f"{TICKET}/conversations", json={"conversations": []})
    with pytest.raises(HelpdeskAPIError, match="not a list"):
        client.has_marker("1042", "m-1")


def test_get_requester(mocked: responses.RequestsMock, client: FreshdeskClient) -> None:
    mocked.get(
        f"{API}/contacts/43026449322",
        json={
            "id": 43026449322,
            "name": "Shop Owner",
            "email": "owner@shop.example",
            "language": "ru",
            "active": True,
        },
    )
    assert client.get_requester("43026449322") == Requester(
        email="owner@shop.example", name="Shop Owner", locale="ru"
    )
    assert _sent(mocked)[:2] == ("GET", f"{API}/contacts/43026449322")


def test_get_requester_without_email(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    mocked.get(f"{API}/contacts/1", json={"id": 1, "email": None, "name": " ", "language": 5})
    assert client.get_requester("1") == Requester(email=None, name=None, locale=None)


def test_get_requester_404_is_none(mocked: responses.RequestsMock, client: FreshdeskClient) -> None:
    mocked.get(f"{API}/contacts/1", status=404, json={"code": "access_denied"})
    assert client.get_requester("1") is None


@pytest.mark.parametrize("user_id", ["r-910", "", "1/../2"])
def test_get_requester_of_an_id_freshdesk_cannot_have(
    mocked: responses.RequestsMock, client: FreshdeskClient, user_id: str
) -> None:
    mocked.assert_all_requests_are_fired = False
    assert client.get_requester(user_id) is None
    assert len(mocked.calls) == 0


def test_get_requester_odd_answer_is_an_error(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    mocked.get(f"{API}/contacts/1", json=[{"id": 1}])
    with pytest.raises(HelpdeskAPIError, match="not a contact"):
        client.get_requester("1")


@pytest.mark.parametrize(("priority", "expected"), [(4, "4"), (1, "1"), (None, None), ("3", None)])
def test_get_priority(
    mocked: responses.RequestsMock, client: FreshdeskClient, priority: Any, expected: str | None
) -> None:
    mocked.get(TICKET, json=_ticket([], priority=priority))
    assert client.get_priority("1042") == expected


# --------------------------------------------------------------------------------------------
# Failures, one test each


def test_connection_refused_is_a_host_error(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    mocked.put(TICKET, body=requests.ConnectionError("Connection refused"))
    with pytest.raises(HelpdeskHostError, match="cannot reach the desk") as caught:
        client.set_priority("1042", "3")
    assert (caught.value.status, caught.value.permanent) == (None, False)
    assert isinstance(caught.value.__cause__, requests.ConnectionError)


def test_a_read_timeout_is_a_timeout_error(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    mocked.post(f"{TICKET}/notes", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(HelpdeskTimeoutError, match="no answer within 10 s") as caught:
        client.add_note("1042", NOTE, marker="t1042-note-1")
    assert caught.value.permanent is False
    assert isinstance(caught.value.__cause__, requests.Timeout)


def test_a_connect_timeout_is_a_host_error_since_nothing_was_sent(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    mocked.post(f"{TICKET}/reply", body=requests.ConnectTimeout("connect timed out"))
    with pytest.raises(HelpdeskHostError, match="could not connect within 5 s"):
        client.add_reply("1042", NOTE, marker="t1042-note-1")


def test_404_is_permanent(mocked: responses.RequestsMock, client: FreshdeskClient) -> None:
    mocked.get(TICKET, status=404, json={"code": "access_denied", "message": "not found"})
    with pytest.raises(HelpdeskAPIError) as caught:
        client.add_tags("1042", ["vip"])
    assert (caught.value.status, caught.value.permanent) == (404, True)
    assert "access_denied" in caught.value.body


def test_429_with_retry_after_seconds(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    mocked.post(
        f"{TICKET}/reply",
        status=429,
        json={"message": "You have exceeded the limit of requests per minute"},
        headers={
            "Retry-After": "37",
            "X-RateLimit-Total": "200",
            "X-RateLimit-Remaining": "0",
        },
    )
    with pytest.raises(HelpdeskAPIError) as caught:
        client.add_reply("1042", NOTE, marker="t1042-note-1")
    error = caught.value
    assert (error.status, error.retry_after, error.permanent) == (429, 37.0, False)
    assert "exceeded the limit" in error.body


def test_429_with_retry_after_as_an_http_date(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    mocked.put(
        TICKET, status=429, body="", headers={"Retry-After": format_datetime(later, usegmt=True)}
    )
    with pytest.raises(HelpdeskAPIError) as caught:
        client.set_priority("1042", "4")
    assert caught.value.retry_after is not None
    assert 100.0 < caught.value.retry_after <= 120.0
    assert caught.value.permanent is False


def test_500_is_retryable(mocked: responses.RequestsMock, client: FreshdeskClient) -> None:
    mocked.get(TICKET, status=502, body="<html>bad gateway</html>")
    with pytest.raises(HelpdeskAPIError) as caught:
        client.get_priority("1042")
    assert (caught.value.status, caught.value.permanent, caught.value.retry_after) == (
        502,
        False,
        None,
    )
    assert str(caught.value) == f"GET {TICKET}: HTTP 502: <html>bad gateway</html>"


def test_a_400_names_freshdesks_complaint(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    errors = {
        "description": "Validation failed",
        "errors": [{"field": "priority", "code": "invalid_value"}],
    }
    mocked.put(TICKET, status=400, json=errors)
    with pytest.raises(HelpdeskAPIError, match="Validation failed") as caught:
        client.set_priority("1042", "4")
    assert caught.value.permanent is True


def test_a_200_that_is_not_json_is_retryable(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    mocked.get(TICKET, status=200, body="<html>maintenance</html>")
    with pytest.raises(HelpdeskAPIError, match="not JSON") as caught:
        client.get_priority("1042")
    assert caught.value.permanent is False


# --------------------------------------------------------------------------------------------
# Notices outside a ticket: outbound email, read back by the marker first

NOTICE_MARKER = "expiry.7.20261203.0a1b2c3d4e5f"
NOTICE = f"Hello Fred,\n\nYour Free support period ends on 2026-12-03.\n\n[care:{NOTICE_MARKER}]"
NOTICE_HTML = (
    "Hello Fred,<br><br>Your Free support period ends on 2026-12-03.<br><br>"
    f"[care:{NOTICE_MARKER}]"
)
CONTACTS = f"{API}/contacts"
TICKETS = f"{API}/tickets"
OUTBOUND = f"{API}/tickets/outbound_email"


def _notice_client(**options: Any) -> FreshdeskClient:
    return FreshdeskAdapter(freshdesk_desk(options=options)).client()


def _contacts(mock: responses.RequestsMock, answer: list[dict[str, Any]]) -> None:
    mock.get(
        CONTACTS,
        json=answer,
        match=[matchers.query_param_matcher({"email": "fred@shop.example"})],
    )


def _customer_tickets(mock: responses.RequestsMock, descriptions: list[str]) -> None:
    tickets = [
        {"id": 500 + i, "description": f"<div>{text}</div>", "description_text": text}
        for i, text in enumerate(descriptions)
    ]
    mock.get(
        TICKETS,
        json=tickets,
        match=[
            matchers.query_param_matcher(
                {"requester_id": "77", "include": "description", "page": "1", "per_page": "100"}
            )
        ],
    )


def test_notify_customer_sends_an_outbound_email_from_the_configured_config(
    mocked: responses.RequestsMock,
) -> None:
    _contacts(mocked, [])
    mocked.post(OUTBOUND, status=201, json={"id": 9001, "status": 5})
    client = _notice_client(email_config_id=5000123)
    client.notify_customer(
        " fred@shop.example ", "Your Free support period ends", NOTICE, marker=NOTICE_MARKER
    )
    assert [(c.request.method, c.request.url) for c in mocked.calls] == [
        ("GET", f"{CONTACTS}?email=fred%40shop.example"),
        ("POST", OUTBOUND),
    ]
    assert _sent(mocked, 1)[2] == {
        "email": "fred@shop.example",
        "subject": "Your Free support period ends",
        "description": NOTICE_HTML,
        "email_config_id": 5000123,
    }


def test_notify_customer_reads_the_customers_tickets_and_sends_when_none_carries_the_marker(
    mocked: responses.RequestsMock,
) -> None:
    _contacts(mocked, [{"id": 77, "email": "fred@shop.example"}])
    _customer_tickets(mocked, ["Where is my order?", "[care:expiry.7.20261203.ffffffffffff]"])
    mocked.post(OUTBOUND, status=201, json={"id": 9001})
    _notice_client(email_config_id="5000123").notify_customer(
        "fred@shop.example", "s", NOTICE, marker=NOTICE_MARKER
    )
    assert [c.request.method for c in mocked.calls] == ["GET", "GET", "POST"]
    assert _sent(mocked, 2)[2]["email_config_id"] == 5000123


@pytest.mark.parametrize(
    "ticket",
    [
        {"id": 501, "description_text": NOTICE, "description": NOTICE_HTML},
        {"id": 501, "description": f"<div>{NOTICE_HTML}</div>"},  # no plain text kept
    ],
)
def test_notify_customer_sends_nothing_when_an_earlier_try_created_the_ticket(
    mocked: responses.RequestsMock, ticket: dict[str, Any]
) -> None:
    _contacts(mocked, [{"id": 77}])
    mocked.get(TICKETS, json=[{"id": 500, "description_text": "older"}, ticket])
    _notice_client(email_config_id=5000123).notify_customer(
        "fred@shop.example", "s", NOTICE, marker=NOTICE_MARKER
    )
    assert [c.request.method for c in mocked.calls] == ["GET", "GET"]


def test_notify_customer_uses_the_desks_primary_email_config_read_once(
    mocked: responses.RequestsMock,
) -> None:
    configs = [
        {"id": 300, "name": "Sales", "primary_role": False, "active": True},
        {"id": 250, "name": "Old support", "primary_role": True, "active": False},
        {"id": 220, "name": "Product B", "primary_role": True, "active": True},
        {"id": 210, "name": "Support", "primary_role": True},
    ]
    mocked.get(f"{API}/email_configs", json=configs)
    mocked.get(CONTACTS, json=[])
    mocked.post(OUTBOUND, status=201, json={"id": 9001})
    client = _notice_client()
    client.notify_customer("fred@shop.example", "s", NOTICE, marker=NOTICE_MARKER)
    client.notify_customer("fred@shop.example", "s", NOTICE, marker=NOTICE_MARKER)
    posts = [json.loads(c.request.body) for c in mocked.calls if c.request.method == "POST"]
    assert [body["email_config_id"] for body in posts] == [210, 210]
    configs_read = [c for c in mocked.calls if c.request.url == f"{API}/email_configs"]
    assert len(configs_read) == 1


def test_notify_customer_without_any_email_config_is_a_permanent_error(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(CONTACTS, json=[])
    mocked.get(f"{API}/email_configs", json=[{"id": 300, "primary_role": False}])
    with pytest.raises(HelpdeskAPIError, match="set options.email_config_id") as caught:
        _notice_client().notify_customer("fred@shop.example", "s", NOTICE, marker=NOTICE_MARKER)
    assert caught.value.permanent is True
    assert all(c.request.method == "GET" for c in mocked.calls)


@pytest.mark.parametrize("value", ["support", -3, True, "12a"])
def test_a_bad_email_config_option_is_refused_when_the_client_is_built(value: object) -> None:
    with pytest.raises(ValueError, match="options.email_config_id must be"):
        _notice_client(email_config_id=value)


@pytest.mark.parametrize(
    ("email", "body", "words"),
    [
        ("fred", NOTICE, "not an email address"),
        ("fred @shop.example", NOTICE, "not an email address"),
        ("fred@shop.example", "no marker here", "must carry its marker line"),
    ],
)
def test_notify_customer_refuses_bad_input_before_any_request(
    mocked: responses.RequestsMock, email: str, body: str, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        _notice_client(email_config_id=1).notify_customer(email, "s", body, marker=NOTICE_MARKER)
    assert len(mocked.calls) == 0


def test_notify_customer_refuses_an_odd_contacts_answer(mocked: responses.RequestsMock) -> None:
    mocked.get(CONTACTS, json={"contacts": []})
    with pytest.raises(HelpdeskAPIError, match="not a list") as caught:
        _notice_client(email_config_id=1).notify_customer(
            "fred@shop.example", "s", NOTICE, marker=NOTICE_MARKER
        )
    assert caught.value.permanent is False
