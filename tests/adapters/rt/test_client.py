"""The RT REST 2.0 client: exact requests, authentication, tags as a custom field, markers read
back from the ticket's history, and the mapping of failures."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from adapters.base import Requester, user_agent
from adapters.errors import HelpdeskAPIError, HelpdeskHostError, HelpdeskTimeoutError
from adapters.rt import RTAdapter, RTClient
from tests.adapters.rt.support import API, rt_desk, ticket_answer
from tests.adapters.support import sent_requests

NOTE = "Estimate: 20 credits.\n\n[care:41.2]"
MARKER = "41.2"
JSON_CT = "application/json"


@pytest.fixture
def client() -> RTClient:
    return RTAdapter(rt_desk()).client()


def _page(items: list[dict[str, Any]], page: int = 1, pages: int = 1) -> dict[str, Any]:
    return {"items": items, "page": page, "pages": pages, "per_page": 100, "count": len(items)}


# --------------------------------------------------------------------------------------------
# Write-back


def test_set_priority_writes_the_number(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.put(
        f"{API}/ticket/12",
        json=["Priority changed from '0' to '90'"],
        match=[matchers.json_params_matcher({"Priority": 90})],
    )
    client.set_priority("12", "90")


def test_a_priority_name_is_sent_as_text(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.put(
        f"{API}/ticket/12", json=[], match=[matchers.json_params_matcher({"Priority": "High"})]
    )
    client.set_priority("12", " High ")


def test_a_refusal_in_rts_messages_is_permanent(
    mocked: responses.RequestsMock, client: RTClient
) -> None:
    mocked.put(f"{API}/ticket/12", json=["Permission Denied"])
    with pytest.raises(HelpdeskAPIError, match="Permission Denied") as caught:
        client.set_priority("12", "90")
    assert caught.value.permanent


def test_add_tags_keeps_the_values_there(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.get(f"{API}/ticket/12", json=ticket_answer("12", tags=["care_plan_vip"]))
    mocked.put(
        f"{API}/ticket/12",
        json=["care_charged added as a value for Care"],
        match=[
            matchers.json_params_matcher(
                {"CustomFields": {"Care": ["care_plan_vip", "care_charged"]}}
            )
        ],
    )
    client.add_tags("12", ["care_plan_vip", " care_charged ", "care_charged", ""])


def test_add_tags_already_there_writes_nothing(
    mocked: responses.RequestsMock, client: RTClient
) -> None:
    mocked.get(f"{API}/ticket/12", json=ticket_answer("12", tags=["a", "b"]))
    client.add_tags("12", ["b", "a"])
    assert [method for method, _, _ in sent_requests(mocked)] == ["GET"]


def test_remove_tags_keeps_the_others(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.get(f"{API}/ticket/12", json=ticket_answer("12", tags=["a", "b", "c"]))
    mocked.put(
        f"{API}/ticket/12",
        json=[],
        match=[matchers.json_params_matcher({"CustomFields": {"Care": ["a", "c"]}})],
    )
    client.remove_tags("12", ["b", "zzz"])


def test_removing_the_last_tag_writes_an_empty_list(
    mocked: responses.RequestsMock, client: RTClient
) -> None:
    mocked.get(f"{API}/ticket/12", json=ticket_answer("12", tags=["a"]))
    mocked.put(
        f"{API}/ticket/12",
        json=[],
        match=[matchers.json_params_matcher({"CustomFields": {"Care": []}})],
    )
    client.remove_tags("12", ["a"])


def test_a_ticket_without_the_tags_field_is_a_permanent_error(
    mocked: responses.RequestsMock, client: RTClient
) -> None:
    answer = ticket_answer("12")
    answer["CustomFields"] = [{"id": "9", "name": "Other", "values": []}]
    mocked.get(f"{API}/ticket/12", json=answer)
    with pytest.raises(HelpdeskAPIError, match="webhooks install") as caught:
        client.add_tags("12", ["care_plan_vip"])
    assert caught.value.permanent


def test_the_tags_field_name_comes_from_the_desk(mocked: responses.RequestsMock) -> None:
    client = RTAdapter(rt_desk(options={"tags_field": "Care category"})).client()
    mocked.get(f"{API}/ticket/12", json=ticket_answer("12"))
    mocked.put(
        f"{API}/ticket/12",
        json=[],
        match=[matchers.json_params_matcher({"CustomFields": {"Care category": ["x"]}})],
    )
    client.add_tags("12", ["x"])


def test_add_note_is_an_internal_comment(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.post(
        f"{API}/ticket/12/comment",
        status=201,
        json=["Comments added"],
        match=[matchers.json_params_matcher({"Content": NOTE, "ContentType": "text/plain"})],
    )
    client.add_note("12", NOTE, marker=MARKER)


def test_add_reply_is_correspondence(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.post(
        f"{API}/ticket/12/correspond",
        status=201,
        json=["Correspondence added"],
        match=[matchers.json_params_matcher({"Content": NOTE, "ContentType": "text/plain"})],
    )
    client.add_reply("12", NOTE, marker=MARKER)


@pytest.mark.parametrize("method", ["add_note", "add_reply"])
def test_notes_must_carry_their_marker(client: RTClient, method: str) -> None:
    with pytest.raises(ValueError, match="marker"):
        getattr(client, method)("12", "no marker", marker=MARKER)


@pytest.mark.parametrize("ticket_id", ["", "12/../1", "abc", "1 2", "-1"])
def test_ids_are_checked_before_they_go_into_a_path(client: RTClient, ticket_id: str) -> None:
    with pytest.raises(ValueError, match="must be a number"):
        client.set_priority(ticket_id, "90")
    with pytest.raises(ValueError, match="must be a number"):
        client.get_requester(ticket_id)


# --------------------------------------------------------------------------------------------
# Reads


def test_has_marker_reads_every_page_of_the_attachments(
    mocked: responses.RequestsMock, client: RTClient
) -> None:
    mocked.get(
        f"{API}/ticket/12/attachments",
        json=_page([{"Content": "hello", "ContentType": "text/plain"}], 1, 2),
        match=[
            matchers.query_param_matcher(
                {"fields": "Content,ContentType", "page": "1", "per_page": "100"}
            )
        ],
    )
    mocked.get(
        f"{API}/ticket/12/attachments",
        json=_page([{"Content": NOTE, "ContentType": "text/plain"}], 2, 2),
        match=[
            matchers.query_param_matcher(
                {"fields": "Content,ContentType", "page": "2", "per_page": "100"}
            )
        ],
    )
    assert client.has_marker("12", MARKER)


def test_has_marker_reads_base64_content(mocked: responses.RequestsMock, client: RTClient) -> None:
    encoded = base64.b64encode(NOTE.encode()).decode()
    mocked.get(f"{API}/ticket/12/attachments", json=_page([{"Content": encoded}]))
    assert client.has_marker("12", MARKER)


def test_has_marker_false(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.get(
        f"{API}/ticket/12/attachments",
        json=_page([{"Content": "[care:41.20]"}, {"Content": None}, "odd"]),  # type: ignore[list-item]
    )
    assert not client.has_marker("12", MARKER)


def test_has_marker_needs_a_list(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.get(f"{API}/ticket/12/attachments", json={"message": "odd"})
    with pytest.raises(HelpdeskAPIError, match="no items list"):
        client.has_marker("12", MARKER)


def test_get_requester(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.get(
        f"{API}/user/45",
        json={"id": 45, "EmailAddress": "ann@shop.example", "RealName": "Ann", "Lang": "ru"},
    )
    assert client.get_requester("45") == Requester("ann@shop.example", "Ann", "ru")


def test_get_requester_with_little(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.get(f"{API}/user/45", json={"id": 45, "EmailAddress": "", "RealName": None})
    assert client.get_requester("45") == Requester(None, None, None)


def test_get_requester_404_is_none(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.get(f"{API}/user/45", status=404, json={"message": "Not Found"})
    assert client.get_requester("45") is None


def test_get_requester_403_is_a_permanent_error(
    mocked: responses.RequestsMock, client: RTClient
) -> None:
    mocked.get(f"{API}/user/45", status=403, json={"message": "Forbidden"})
    with pytest.raises(HelpdeskAPIError) as caught:
        client.get_requester("45")
    assert caught.value.permanent


def test_get_priority_and_tags(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.get(f"{API}/ticket/12", json=ticket_answer("12", tags=["a", " "], priority=70))
    assert client.get_priority("12") == "70"
    assert client.get_tags("12") == ("a",)


def test_get_priority_unset(mocked: responses.RequestsMock, client: RTClient) -> None:
    answer = ticket_answer("12")
    answer["Priority"] = None
    mocked.get(f"{API}/ticket/12", json=answer)
    assert client.get_priority("12") is None


def test_a_ticket_that_is_not_an_object_is_an_error(
    mocked: responses.RequestsMock, client: RTClient
) -> None:
    mocked.get(f"{API}/ticket/12", json=["odd"])
    with pytest.raises(HelpdeskAPIError, match="not a ticket"):
        client.get_priority("12")


# --------------------------------------------------------------------------------------------
# notify_customer


def _search(email: str, subject: str) -> Any:
    query = f"Requestor.EmailAddress = '{email}' AND Subject = '{subject}'"
    return matchers.query_param_matcher(
        {"query": query, "orderby": "id", "page": "1", "per_page": "100"}
    )


def test_notify_customer_opens_a_ticket_for_the_requestor(
    mocked: responses.RequestsMock, client: RTClient
) -> None:
    mocked.get(f"{API}/tickets", json=_page([]), match=[_search("ann@shop.example", "Ends soon")])
    mocked.post(
        f"{API}/ticket",
        status=201,
        json={"id": "77", "type": "ticket"},
        match=[
            matchers.json_params_matcher(
                {
                    "Queue": "General",
                    "Requestor": "ann@shop.example",
                    "Subject": "Ends soon",
                    "Content": NOTE,
                    "ContentType": "text/plain",
                }
            )
        ],
    )
    client.notify_customer(" ann@shop.example ", "Ends soon", NOTE, marker=MARKER)


def test_notify_customer_quotes_the_search(
    mocked: responses.RequestsMock,
) -> None:
    client = RTAdapter(rt_desk(options={"notice_queue": "Notices"})).client()
    mocked.get(
        f"{API}/tickets", json=_page([]), match=[_search("o\\'neil@shop.example", "It\\'s ending")]
    )
    mocked.post(
        f"{API}/ticket",
        status=201,
        json={"id": "78"},
        match=[matchers.json_params_matcher({"Queue": "Notices"}, strict_match=False)],
    )
    client.notify_customer("o'neil@shop.example", "It's ending", NOTE, marker=MARKER)


def test_notify_customer_sends_nothing_when_an_earlier_try_opened_the_ticket(
    mocked: responses.RequestsMock, client: RTClient
) -> None:
    mocked.get(f"{API}/tickets", json=_page([{"id": "70"}, {"id": "77"}]))
    mocked.get(f"{API}/ticket/70/attachments", json=_page([{"Content": "other"}]))
    mocked.get(f"{API}/ticket/77/attachments", json=_page([{"Content": NOTE}]))
    client.notify_customer("ann@shop.example", "Ends soon", NOTE, marker=MARKER)
    assert all(method == "GET" for method, _, _ in sent_requests(mocked))


def test_notify_customer_refuses_bad_input_before_any_request(client: RTClient) -> None:
    with pytest.raises(ValueError, match="email"):
        client.notify_customer("nobody", "s", NOTE, marker=MARKER)
    with pytest.raises(ValueError, match="marker"):
        client.notify_customer("a@b.example", "s", "no marker", marker=MARKER)


# --------------------------------------------------------------------------------------------
# Authentication, options, sessions


def test_basic_authentication(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.get(f"{API}/ticket/12", json=ticket_answer("12"))
    client.get_priority("12")
    request = mocked.calls[0].request
    expected = base64.b64encode(b"care-connector:rt-password").decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.headers["User-Agent"] == user_agent("rt")
    assert request.headers["Accept"] == JSON_CT


def test_token_authentication(mocked: responses.RequestsMock) -> None:
    desk = rt_desk(username="", password="", token="1-14-abcdef")
    client = RTAdapter(desk).client()
    assert client.auth == "token"
    mocked.get(f"{API}/ticket/12", json=ticket_answer("12"))
    client.get_priority("12")
    assert mocked.calls[0].request.headers["Authorization"] == "token 1-14-abcdef"


def test_no_credentials_send_no_header(mocked: responses.RequestsMock) -> None:
    client = RTAdapter(rt_desk(username="", password="", token="")).client()
    mocked.get(f"{API}/ticket/12", json=ticket_answer("12"))
    client.get_priority("12")
    assert "Authorization" not in mocked.calls[0].request.headers


def test_an_unknown_auth_option_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="options.auth must be one of token, basic"):
        RTAdapter(rt_desk(options={"auth": "oauth"})).client()


def test_a_web_path_is_kept(mocked: responses.RequestsMock) -> None:
    client = RTAdapter(rt_desk(base_url="https://rt.example.com/rt")).client()
    mocked.get("https://rt.example.com/rt/REST/2.0/ticket/12", json=ticket_answer("12"))
    client.get_priority("12")


def test_timeouts_come_from_the_desk() -> None:
    client = RTAdapter(rt_desk(timeout=20.0)).client()
    assert client.timeout == (5.0, 20.0)


# --------------------------------------------------------------------------------------------
# Failures


def test_connection_refused_is_a_host_error(
    mocked: responses.RequestsMock, client: RTClient
) -> None:
    mocked.post(f"{API}/ticket/12/comment", body=requests.ConnectionError("refused"))
    with pytest.raises(HelpdeskHostError) as caught:
        client.add_note("12", NOTE, marker=MARKER)
    assert not caught.value.permanent


def test_a_read_timeout_is_unclear(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.post(f"{API}/ticket/12/correspond", body=requests.ReadTimeout("slow"))
    with pytest.raises(HelpdeskTimeoutError):
        client.add_reply("12", NOTE, marker=MARKER)


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (404, True), (500, False)])
def test_statuses(
    mocked: responses.RequestsMock, client: RTClient, status: int, permanent: bool
) -> None:
    mocked.post(f"{API}/ticket/12/comment", status=status, json={"message": "x"})
    with pytest.raises(HelpdeskAPIError) as caught:
        client.add_note("12", NOTE, marker=MARKER)
    assert (caught.value.status, caught.value.permanent) == (status, permanent)


def test_429_waits_as_asked(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.put(f"{API}/ticket/12", status=429, headers={"Retry-After": "30"}, body="slow")
    with pytest.raises(HelpdeskAPIError) as caught:
        client.set_priority("12", "90")
    assert (caught.value.retry_after, caught.value.permanent) == (30, False)


def test_pages_stop_at_the_safety_limit(mocked: responses.RequestsMock) -> None:
    class Short(RTClient):
        max_pages = 2

    client = Short(rt_desk())
    for page in (1, 2):
        mocked.get(f"{API}/ticket/12/attachments", json=_page([{"Content": "x"}], page, 9))
    assert not client.has_marker("12", MARKER)


# --------------------------------------------------------------------------------------------
# config check


def test_check_credentials_names_the_user(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.get(f"{API}/rt", json={"Version": "5.0.3", "Plugins": []})
    mocked.get(f"{API}/user/care-connector", json={"id": 33, "Name": "care-connector"})
    assert client.check_credentials() == "user 33 care-connector (RT 5.0.3)"


def test_check_credentials_of_another_user_fail(mocked: responses.RequestsMock) -> None:
    client = RTAdapter(rt_desk(api_user_id="12")).client()
    mocked.get(f"{API}/rt", json={"Version": "5.0.3"})
    mocked.get(f"{API}/user/care-connector", json={"id": 33})
    with pytest.raises(HelpdeskAPIError, match="api_user_id is 12") as caught:
        client.check_credentials()
    assert caught.value.permanent


def test_check_credentials_with_a_token(mocked: responses.RequestsMock) -> None:
    client = RTAdapter(rt_desk(username="", password="", token="1-2-abc")).client()
    mocked.get(f"{API}/rt", json={"Version": "5.0.3"})
    assert client.check_credentials() == "token accepted (RT 5.0.3)"


def test_check_credentials_refused(mocked: responses.RequestsMock, client: RTClient) -> None:
    mocked.get(f"{API}/rt", status=401, json={"message": "Unauthorized"})
    with pytest.raises(HelpdeskAPIError, match="401"):
        client.check_credentials()


def test_check_credentials_needs_credentials() -> None:
    client = RTAdapter(rt_desk(username="", password="", token="")).client()
    with pytest.raises(HelpdeskAPIError, match="set token_env"):
        client.check_credentials()
