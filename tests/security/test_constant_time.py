"""Secrets are compared in constant time, everywhere one is checked.

Two checks: a scan of the source of ``adapters/`` and ``connector/`` for ``==``/``!=`` with an
operand named like a secret (a signature, token, digest, password, CSRF value, fingerprint);
and, at run time, :func:`hmac.compare_digest` seen doing the comparison in every registered
adapter's ``verify`` (once per configured secret, so that the time taken does not tell which
secret matched), the approval page's CSRF check and the admin token check.
"""

from __future__ import annotations

import ast
import hmac
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.errors import SignatureError
from connector.admin.auth import Outcome, check_token, token_name
from connector.blueprints.approvals import csrf_ok
from connector.config import AdminSettings, AdminToken, load_settings
from tests.adapters.hostile import NOW, Desk, registered_desks

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("adapters", "connector")
SECRET_NAME = re.compile(
    r"(secret|signature|^sig$|token|digest|password|passwd|csrf|api_key|fingerprint|^fp$|hmac)",
    re.IGNORECASE,
)
#: ``==`` on a secret-like name that is not a check of something presented from outside.
ALLOWED = {
    # The cached OAuth token compared with the one a failed request carried, both the
    # connector's own (dropping the cache after a 401): nothing presented is checked here.
    ("adapters/helpscout/client.py", "self._token == token"),
}


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "get" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant):
                return str(first.value)
        return _name(func) if isinstance(func, ast.Name | ast.Attribute) else ""
    return ""


def _is_column(node: ast.expr) -> bool:
    """``Model.column``: an attribute of a capitalised name (a SQLAlchemy model)."""
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id[:1].isupper()
    )


def equality_on_secrets() -> Iterator[tuple[str, int, str]]:
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            for node in ast.walk(ast.parse(source)):
                if not isinstance(node, ast.Compare):
                    continue
                if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                    continue
                operands = [node.left, *node.comparators]
                # A comparison with a literal (None, "", "basic") checks a shape, not a secret;
                # one with a model's column (OutboxAction.claimed_at == lease.token) builds
                # SQL, which the database evaluates.
                if any(isinstance(o, ast.Constant) or _is_column(o) for o in operands):
                    continue
                if any(SECRET_NAME.search(_name(o)) for o in operands):
                    relative = path.relative_to(ROOT).as_posix()
                    yield relative, node.lineno, ast.get_source_segment(source, node) or ""


def test_no_secret_is_compared_with_equality() -> None:
    found = [
        f"{path}:{line}: {code}"
        for path, line, code in equality_on_secrets()
        if (path, code) not in ALLOWED
    ]
    assert not found, "compare secrets with hmac.compare_digest:\n" + "\n".join(found)


def test_the_allowed_list_is_still_needed() -> None:
    seen = {(path, code) for path, _, code in equality_on_secrets()}
    assert ALLOWED <= seen, ALLOWED - seen


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Every :func:`hmac.compare_digest` call, with its arguments as bytes."""
    calls: list[tuple[bytes, bytes]] = []
    real: Callable[[Any, Any], bool] = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append(
            (
                a if isinstance(a, bytes) else str(a).encode(),
                b if isinstance(b, bytes) else str(b).encode(),
            )
        )
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    return calls


DESKS = [d for d in registered_desks() if d.support is not None]


@pytest.mark.parametrize("desk", DESKS, ids=lambda d: d.key)
def test_every_adapter_compares_each_secret_in_constant_time(
    desk: Desk, spy: list[tuple[bytes, bytes]]
) -> None:
    """Two secrets in force (a rotation): a forged signature is compared with both; a good
    one with the second secret is found, and the first was compared too."""
    section = {**desk.section(), "secret_env": ["CARE_CT_OLD", "CARE_CT_NEW"]}
    environ = {**desk.env(), "CARE_CT_OLD": "constant-old", "CARE_CT_NEW": "constant-new"}
    settings = load_settings({"desks": {desk.key: section}}, environ=environ).desks[desk.key]
    from adapters import ADAPTERS

    adapter = ADAPTERS[desk.key](settings)
    seed = desk.seeds[0]
    forged = desk.sign(seed.body, seed.headers, secret="not-a-configured-secret")
    with pytest.raises(SignatureError):
        adapter.verify(forged, seed.body, now=NOW)
    assert len(spy) >= 2, f"{desk.key}: {len(spy)} constant-time comparisons for 2 secrets"
    spy.clear()
    good = desk.sign(seed.body, seed.headers, secret="constant-new")
    adapter.verify(good, seed.body, now=NOW)
    assert len(spy) >= 2, f"{desk.key}: the matching secret was not compared with the others"


def test_the_approval_csrf_check_is_constant_time(spy: list[tuple[bytes, bytes]]) -> None:
    value = "c" * 43
    assert csrf_ok(value, value)
    assert not csrf_ok(value, "d" * 43)
    assert len(spy) == 2


def test_admin_tokens_are_all_compared_in_constant_time(spy: list[tuple[bytes, bytes]]) -> None:
    tokens = {"alice": "alice-token-value", "bob": "bob-token-value", "carol": "carol-value"}
    assert token_name(tokens, "alice-token-value") == "alice"
    assert len(spy) == 3  # the first matched; the other two were compared all the same
    spy.clear()
    assert token_name(tokens, "nobody") is None
    assert len(spy) == 3


def test_expiry_and_scope_are_looked_at_after_every_token_is_compared(
    spy: list[tuple[bytes, bytes]],
) -> None:
    """An expired or read-only token costs the same comparisons as any other: the match
    comes first, over every token; its expiry and scope (public, in the config) after."""
    admin = AdminSettings(
        token_env={"alice": "A", "old": "O", "reader": "R"},
        tokens={"alice": "alice-token-value", "old": "old-token-value", "reader": "read-value"},
        access={
            "alice": AdminToken(env="A"),
            "old": AdminToken(env="O", expires=NOW - timedelta(days=1)),
            "reader": AdminToken(env="R", scope="read"),
        },
    )
    for presented, outcome in (
        ("old-token-value", Outcome.EXPIRED),
        ("read-value", Outcome.VALID),
        ("alice-token-value", Outcome.VALID),
        ("nobody", Outcome.UNKNOWN),
    ):
        spy.clear()
        assert check_token(admin, presented, NOW).outcome is outcome
        assert len(spy) == 3, presented
