"""``webhooks install`` for Freshdesk: the plan, the rule body, and the idempotent executor
of automation rules."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import responses
from responses import matchers

from adapters.base import HelpdeskClient
from adapters.freshdesk import FreshdeskAdapter, FreshdeskClient
from adapters.freshdesk.install import (
    ALWAYS,
    FreshdeskInstallPlan,
    execute,
    plan,
    rule_body,
)
from rules.events import Comment, EventType, TicketStatus
from tests.adapters.freshdesk.support import API, API_USER, SECRET, freshdesk_desk

PUBLIC = "https://care.example.com"
ENDPOINT = "https://care.example.com/hooks/freshdesk"
CREATE_RULES = f"{API}/automations/1/rules"
UPDATE_RULES = f"{API}/automations/4/rules"
AGENTS = [{"id": 43000000001}, {"id": 43000000002}, {"id": 43000000003}]
OTHER_AGENTS = [43000000002, 43000000003]


@pytest.fixture
def client() -> FreshdeskClient:
    return FreshdeskClient(freshdesk_desk())


def _render(content: Any, values: dict[str, str]) -> bytes:
    """Render placeholders the way a JSON webhook does: each value JSON-escaped in place."""

    def value(match: re.Match[str]) -> str:
        return json.dumps(values.get(match.group(1), ""), ensure_ascii=False)[1:-1]

    return re.sub(r"\{\{([a-z_.0-9]+)\}\}", value, json.dumps(content)).encode()


RENDERED = {
    "triggered_event": "{status:{from:2,to:3}}",
    "ticket.id": "1042",
    "ticket.subject": 'He said "hi"\\ and left',
    "ticket.description_text": 'Line one\nLine two\twith a tab \u2028 and "quotes"',
    "ticket.status": "Pending",
    "ticket.status_id": "3",
    "ticket.priority": "Urgent",
    "ticket.priority_id": "4",
    "ticket.tags": "upgrade, care_preapproved",
    "ticket.created_on": "2025-02-03 15:59:12 UTC",
    "ticket.modified_on": "2025-02-03 19:10:00 +0400",
    "ticket.source": "Email",
    "ticket.cf_care_category": "question",
    "ticket.cf_care_preapproval": "60",
    "ticket.requester.id": "43026449322",
    "ticket.requester.email": "owner@shop.example",
    "ticket.requester.name": 'O\'Brien "Shop" Owner',
    "ticket.requester.language": "en",
    "ticket.latest_public_comment": "<div>Yes, I agree.</div><blockquote>quoted</blockquote>",
}


# --------------------------------------------------------------------------------------------
# The plan


def test_the_plan() -> None:
    install = plan(PUBLIC + "/", freshdesk_desk())
    assert (install.endpoint, install.mode, install.secret_env) == (
        ENDPOINT,
        "api",
        "CARE_FRESHDESK_SECRET",
    )
    assert install.warnings == ()
    created, reply, updated = install.rules
    assert (created.automation_type, created.name, created.event, created.performer) == (
        1,
        "Care Connector (freshdesk): ticket created",
        "created",
        None,
    )
    assert (reply.automation_type, reply.name, reply.performer, reply.events) == (
        4,
        "Care Connector (freshdesk): customer reply",
        "requester",
        ({"field_name": "reply_sent"},),
    )
    assert (updated.automation_type, updated.performer) == (4, "agents")
    assert updated.events == (
        {"field_name": "reply_sent"},
        {"field_name": "status", "from": "--", "to": "--"},
        {"field_name": "priority", "from": "--", "to": "--"},
        {"field_name": "cf_care_category", "from": "--", "to": "--"},
        {"field_name": "cf_care_price", "from": "--", "to": "--"},
        {"field_name": "cf_care_preapproval", "from": "--", "to": "--"},
        {"field_name": "ticket_action", "value": "delete"},
        {"field_name": "ticket_action", "value": "marked_spam"},
    )
    assert [rule.content["event"] for rule in install.rules] == ["created", "reply", "updated"]
    assert install.describe() == [
        f"rule 'Care Connector (freshdesk): ticket created' (automation type 1): POST {ENDPOINT}",
        "rule 'Care Connector (freshdesk): customer reply' (automation type 4, by the "
        f"requester): POST {ENDPOINT}",
        f"rule 'Care Connector (freshdesk): agent update' (automation type 4, by agents): "
        f"POST {ENDPOINT}",
    ]


def test_the_rule_as_the_api_takes_it() -> None:
    install = plan(PUBLIC, freshdesk_desk())
    created, reply, updated = install.rules
    body = updated.body(ENDPOINT, "sek", [3, 1, 2])
    assert body["performer"] == {"type": 1, "members": [1, 2, 3]}
    assert body["events"] == [dict(e) for e in updated.events]
    assert body["conditions"] == [ALWAYS]
    assert body["actions"] == [
        {
            "field_name": "trigger_webhook",
            "request_type": "POST",
            "url": ENDPOINT,
            "content_type": "JSON",
            "content_layout": "2",
            "content": updated.content,
            "custom_headers": {"X-Care-Secret": "sek"},
        }
    ]
    assert reply.body(ENDPOINT, "sek")["performer"] == {"type": 2}
    first = created.body(ENDPOINT, "sek")
    assert "performer" not in first and "events" not in first
    assert first["name"] == "Care Connector (freshdesk): ticket created" and first["active"]


def test_the_loop_guard_is_the_performer_not_the_channel() -> None:
    install = plan(PUBLIC, freshdesk_desk())
    by_agents = [rule for rule in install.rules if rule.performer == "agents"]
    assert len(by_agents) == 1
    body = by_agents[0].body(ENDPOINT, "s", OTHER_AGENTS)
    assert int(API_USER) not in body["performer"]["members"]
    assert {rule.performer for rule in install.rules} == {None, "requester", "agents"}


def test_without_api_user_there_is_no_agent_rule() -> None:
    install = plan(PUBLIC, freshdesk_desk(api_user_id="", secret_env=(), key="support"))
    assert [rule.event for rule in install.rules] == ["created", "reply"]
    assert install.warnings and "api_user_id" in install.warnings[0]
    assert install.secret_env == "CARE_SUPPORT_SECRET"
    assert install.describe()[-1].startswith("warning: no api_user_id")
    assert install.rules[0].name == "Care Connector (support): ticket created"


@pytest.mark.parametrize(
    ("overrides", "url", "words"),
    [
        ({}, "care.example.com", "not an http"),
        ({}, "ftp://care.example.com", "not an http"),
        ({}, "https://care example.com", "not an http"),
        ({"options": {"install": "email"}}, PUBLIC, "options.install must be"),
        ({"fields": {"care_category": "360001"}}, PUBLIC, "fields.care_category must be"),
        ({"fields": {"care_price": "cf_price}}"}}, PUBLIC, "fields.care_price must be"),
    ],
)
def test_plan_refuses_bad_settings(overrides: dict[str, Any], url: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        plan(url, freshdesk_desk(**overrides))


def test_the_body_template_has_a_placeholder_per_value() -> None:
    desk = freshdesk_desk()
    template = rule_body(desk, "reply")
    assert template["care_connector"] == 1
    assert template["triggered_event"] == "{{triggered_event}}"
    assert template["ticket"]["fields"] == {
        "cf_care_category": "{{ticket.cf_care_category}}",
        "cf_care_price": "{{ticket.cf_care_price}}",
        "cf_care_preapproval": "{{ticket.cf_care_preapproval}}",
    }
    assert template["ticket"]["updated_at"] == "{{ticket.modified_on}}"
    assert template["requester"]["id"] == "{{ticket.requester.id}}"
    assert template["comment"] == {"body": "{{ticket.latest_public_comment}}"}
    assert "comment" not in rule_body(desk, "created")


@pytest.mark.parametrize("event", ["created", "reply", "updated"])
def test_a_rendered_template_parses_into_the_event(event: Any) -> None:
    desk = freshdesk_desk()
    body = _render(rule_body(desk, event), RENDERED)
    (parsed,) = FreshdeskAdapter(desk).parse({}, body, delivery_key="k")
    assert (
        parsed.type
        is {
            "created": EventType.TICKET_CREATED,
            "reply": EventType.COMMENT_ADDED,
            "updated": EventType.STATUS_CHANGED,
        }[event]
    )
    assert parsed.subject == 'He said "hi"\\ and left'
    assert parsed.description == RENDERED["ticket.description_text"]
    assert parsed.requester_name == 'O\'Brien "Shop" Owner'
    assert (parsed.ticket_id, parsed.priority, parsed.status) == ("1042", "4", TicketStatus.WAITING)
    assert parsed.fields == {"care_category": "question", "care_preapproval": "60"}
    assert parsed.tags == ("upgrade", "care_preapproved")
    assert parsed.occurred_at is not None and parsed.occurred_at.isoformat() == (
        "2025-02-03T15:10:00+00:00"
    )
    if event == "reply":
        assert parsed.comment == Comment(
            body="Yes, I agree.\n> quoted",
            public=True,
            author_id="43026449322",
            by_requester=True,
        )
    else:
        assert parsed.comment is None


# --------------------------------------------------------------------------------------------
# The executor


def _api_rule(body: dict[str, Any], rule_id: int, **extra: Any) -> dict[str, Any]:
    """A rule as the API returns it."""
    return {**body, "id": rule_id, "position": 3, "automation_type_id": 4, **extra}


def _wanted(install: FreshdeskInstallPlan, secret: str = SECRET) -> list[dict[str, Any]]:
    return [rule.body(ENDPOINT, secret, OTHER_AGENTS) for rule in install.rules]


def test_first_install_creates_every_rule(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    install = plan(PUBLIC, freshdesk_desk())
    created, reply, updated = _wanted(install)
    mocked.get(
        f"{API}/agents",
        json=AGENTS,
        match=[matchers.query_param_matcher({"page": "1", "per_page": "100"})],
    )
    mocked.get(CREATE_RULES, json={"rules": [{"id": 7, "name": "Assign to billing"}]})
    mocked.post(
        CREATE_RULES,
        status=201,
        json=_api_rule(created, 101),
        match=[matchers.json_params_matcher(created)],
    )
    mocked.get(UPDATE_RULES, json={"rules": []})
    for rule_id, body in ((102, reply), (103, updated)):
        mocked.post(
            UPDATE_RULES,
            status=201,
            json=_api_rule(body, rule_id),
            match=[matchers.json_params_matcher(body)],
        )

    result = execute(client, install, make_secret=lambda: pytest.fail("the desk has a secret"))

    assert [(o.name.split(": ")[1], o.id, o.action) for o in result.objects] == [
        ("ticket created", "101", "created"),
        ("customer reply", "102", "created"),
        ("agent update", "103", "created"),
    ]
    assert result.secret is None  # the configured one is in force: nothing to set
    assert updated["performer"] == {"type": 1, "members": OTHER_AGENTS}
    assert created["actions"][0]["custom_headers"] == {"X-Care-Secret": SECRET}
    assert [(c.request.method, (c.request.url or "").split("?")[0]) for c in mocked.calls] == [
        ("GET", f"{API}/agents"),
        ("GET", CREATE_RULES),
        ("POST", CREATE_RULES),
        ("GET", UPDATE_RULES),
        ("POST", UPDATE_RULES),
        ("POST", UPDATE_RULES),
    ]
    assert result.describe() == [
        "created rule 'Care Connector (freshdesk): ticket created' (101)",
        "created rule 'Care Connector (freshdesk): customer reply' (102)",
        "created rule 'Care Connector (freshdesk): agent update' (103)",
    ]


def test_a_second_run_changes_nothing(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    install = plan(PUBLIC, freshdesk_desk())
    created, reply, updated = _wanted(install)
    mocked.get(f"{API}/agents", json=list(reversed(AGENTS)))
    mocked.get(CREATE_RULES, json={"rules": [_api_rule(created, 101, automation_type_id=1)]})
    # Members read back in another order are the same performer.
    updated_back = {**updated, "performer": {"type": 1, "members": OTHER_AGENTS[::-1]}}
    mocked.get(UPDATE_RULES, json=[_api_rule(reply, 102), _api_rule(updated_back, 103)])
    result = execute(client, install)
    assert [o.action for o in result.objects] == ["unchanged", "unchanged", "unchanged"]
    assert all(call.request.method == "GET" for call in mocked.calls)
    assert len(mocked.calls) == 3


def test_a_changed_install_is_updated_in_place(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    install = plan("https://new-host.example.com", freshdesk_desk())
    new = [
        rule.body("https://new-host.example.com/hooks/freshdesk", SECRET, OTHER_AGENTS)
        for rule in install.rules
    ]
    old = _wanted(install)  # the old URL
    # A new agent joined since the last run: the performer list grows.
    mocked.get(f"{API}/agents", json=[*AGENTS, {"id": 43000000004}])
    new[2]["performer"]["members"] = [*OTHER_AGENTS, 43000000004]
    mocked.get(CREATE_RULES, json={"rules": [_api_rule(old[0], 101)]})
    mocked.put(
        f"{CREATE_RULES}/101",
        json=_api_rule(new[0], 101),
        match=[matchers.json_params_matcher(new[0])],
    )
    mocked.get(UPDATE_RULES, json={"rules": [_api_rule(new[1], 102), _api_rule(old[2], 103)]})
    mocked.put(
        f"{UPDATE_RULES}/103",
        json=_api_rule(new[2], 103),
        match=[matchers.json_params_matcher(new[2])],
    )
    result = execute(client, install)
    assert [(o.id, o.action) for o in result.objects] == [
        ("101", "updated"),
        ("102", "unchanged"),
        ("103", "updated"),
    ]


def test_rules_are_found_on_every_page_and_never_duplicated(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    install = plan(PUBLIC, freshdesk_desk(api_user_id=""))
    created, reply = (rule.body(ENDPOINT, SECRET) for rule in install.rules)
    others = [{"id": 1000 + i, "name": f"rule {i}"} for i in range(100)]
    mocked.get(CREATE_RULES, json={"rules": [_api_rule(created, 101)]})
    mocked.get(
        UPDATE_RULES,
        json={"rules": others},
        match=[matchers.query_param_matcher({"page": "1", "per_page": "100"})],
    )
    mocked.get(
        UPDATE_RULES,
        json={"rules": [_api_rule(reply, 102)]},
        match=[matchers.query_param_matcher({"page": "2", "per_page": "100"})],
    )
    result = execute(client, install)
    assert [(o.id, o.action) for o in result.objects] == [
        ("101", "unchanged"),
        ("102", "unchanged"),
    ]
    assert not any(call.request.method == "POST" for call in mocked.calls)
    assert result.describe()[-1].startswith("warning: no api_user_id")


def test_a_new_secret_is_generated_when_the_desk_has_none(
    mocked: responses.RequestsMock,
) -> None:
    desk = freshdesk_desk(secrets=(), api_user_id="")
    install = plan(PUBLIC, desk)
    created, reply = (rule.body(ENDPOINT, "generated-secret") for rule in install.rules)
    mocked.get(
        CREATE_RULES,
        json={"rules": [_api_rule(rule.body(ENDPOINT, "old"), 101) for rule in install.rules[:1]]},
    )
    mocked.put(
        f"{CREATE_RULES}/101", json={"id": 101}, match=[matchers.json_params_matcher(created)]
    )
    mocked.get(UPDATE_RULES, json={"rules": []})
    mocked.post(UPDATE_RULES, json={"id": 102}, match=[matchers.json_params_matcher(reply)])
    result = execute(FreshdeskClient(desk), install, make_secret=lambda: "generated-secret")
    assert result.secret == "generated-secret"
    assert result.describe()[-1] == (
        "set CARE_FRESHDESK_SECRET=generated-secret (the rules send it in X-Care-Secret)"
    )


def test_the_agent_rule_is_skipped_when_the_api_user_is_the_only_agent(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    install = plan(PUBLIC, freshdesk_desk())
    created, reply, _ = _wanted(install)
    mocked.get(f"{API}/agents", json=[{"id": int(API_USER)}])
    mocked.get(CREATE_RULES, json={"rules": [_api_rule(created, 101)]})
    mocked.get(UPDATE_RULES, json={"rules": [_api_rule(reply, 102)]})
    result = execute(client, install)
    assert [o.action for o in result.objects] == ["unchanged", "unchanged", "skipped"]
    assert "no agent other than the API user 43000000001" in result.describe()[-1]
    assert not any(call.request.method in ("POST", "PUT") for call in mocked.calls)


def test_manual_mode_calls_nothing_and_prints_the_rules(mocked: responses.RequestsMock) -> None:
    desk = freshdesk_desk(options={"install": "manual"})
    result = FreshdeskAdapter(desk).install(PUBLIC)
    assert len(mocked.calls) == 0
    lines = result.describe()
    assert "X-Care-Secret: <the value of CARE_FRESHDESK_SECRET>" in lines[0]
    assert SECRET not in "\n".join(lines)
    assert lines[1] == "- 'Care Connector (freshdesk): ticket created' (Ticket creation)"
    assert "  performed by: Requester" in lines
    assert f"  performed by: every agent except user {API_USER}" in lines
    contents = [
        json.loads(line.split(": ", 1)[1]) for line in lines if line.startswith("  content: ")
    ]
    assert [c["event"] for c in contents] == ["created", "reply", "updated"]
    assert result.secret is None


def test_a_refusal_stops_the_run_and_names_freshdesks_answer(
    mocked: responses.RequestsMock, client: FreshdeskClient
) -> None:
    from adapters.errors import HelpdeskAPIError

    install = plan(PUBLIC, freshdesk_desk(api_user_id=""))
    mocked.get(CREATE_RULES, json={"rules": []})
    mocked.post(
        CREATE_RULES,
        status=400,
        json={"description": "Validation failed", "errors": [{"field": "actions", "message": "x"}]},
    )
    with pytest.raises(HelpdeskAPIError, match="Validation failed") as caught:
        execute(client, install)
    assert caught.value.permanent is True


def test_adapter_install_runs_plan_and_executor(mocked: responses.RequestsMock) -> None:
    desk = freshdesk_desk(api_user_id="")
    adapter = FreshdeskAdapter(desk)
    created, reply = (rule.body(ENDPOINT, SECRET) for rule in adapter.install_plan(PUBLIC).rules)
    mocked.get(CREATE_RULES, json=[_api_rule(created, 101)])
    mocked.get(UPDATE_RULES, json=[_api_rule(reply, 102)])
    result = adapter.install(PUBLIC)
    assert [o.action for o in result.objects] == ["unchanged", "unchanged"]


def test_adapter_install_needs_a_freshdesk_client() -> None:
    class Other(HelpdeskClient):
        set_priority = add_tags = remove_tags = add_note = add_reply = None  # type: ignore[assignment]
        has_marker = get_requester = get_priority = None  # type: ignore[assignment]

    desk = freshdesk_desk()
    with pytest.raises(TypeError, match="needs a FreshdeskClient"):
        FreshdeskAdapter(desk).install(PUBLIC, Other(desk))
