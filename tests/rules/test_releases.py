"""Release versions and upgrade steps over the shipped release list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.policy import Release
from rules.releases import (
    DowngradeError,
    MalformedVersionError,
    ReleaseError,
    ReleaseIndex,
    SameVersionError,
    UnknownVersionError,
    Version,
    normalize_version,
    parse_version,
    upgrade_steps,
)

Releases = tuple[Release, ...]


def naive_steps(releases: Releases, from_v: str, to_v: str) -> int:
    """An independent count, straight from the policy's wording, for cross-checks."""
    names = [r.version.upper() for r in releases]
    start, end = names.index(from_v.upper()), names.index(to_v.upper())
    return sum(1 for r in releases[start + 1 : end + 1] if not r.service_pack)


@pytest.mark.parametrize(
    ("from_v", "to_v", "steps"),
    [
        # The policy page's worked example and its cross-branch and service-pack examples.
        ("4.3.1", "4.3.9", 8),
        ("4.3.9", "4.4.1", 2),
        ("4.9.2", "4.9.2.SP4", 0),
        # Within a branch and across branches.
        ("4.3.1", "4.3.2", 1),
        ("4.3.10", "4.4.1", 1),
        ("4.2.4", "4.3.1", 1),
        ("4.17.2", "4.19.1", 4),
        # A service pack as the source: the next release is one step.
        ("4.4.2.SP1", "4.4.3", 1),
        ("4.4.2.SP2", "4.4.3", 1),
        ("4.9.2.SP4", "4.9.3", 1),
        ("4.9.2.SP4", "4.10.1", 2),
        ("4.17.2.SP3", "4.19.1", 4),
        # A service pack as the target: its base release counts, the pack does not.
        ("4.4.1", "4.4.2.SP2", 1),
        ("4.4.2", "4.4.2.SP1", 0),
        ("4.8.2", "4.9.2.SP3", 2),
        # Service pack to service pack.
        ("4.4.2.SP1", "4.4.2.SP2", 0),
        ("4.4.2.SP2", "4.5.1.SP1", 2),
        # The whole list.
        ("4.0.1", "4.19.1", 65),
    ],
)
def test_upgrade_steps(cscart_releases: Releases, from_v: str, to_v: str, steps: int) -> None:
    assert upgrade_steps(cscart_releases, from_v, to_v) == steps
    assert naive_steps(cscart_releases, from_v, to_v) == steps


@pytest.mark.parametrize(
    ("from_v", "to_v", "steps"),
    [
        ("4.9.2.sp4", "4.9.3", 1),
        ("4.9.2", "4.9.2.sp4", 0),
        ("4.4.2.Sp1", "4.4.3", 1),
        ("v4.3.1", "V4.3.9", 8),
        ("  4.3.1\t", "\n4.3.9 ", 8),
        ("4.03.01", "4.3.9", 8),
        ("4.9.2.SP04", "4.10.1", 2),
    ],
)
def test_versions_compare_normalised(
    cscart_releases: Releases, from_v: str, to_v: str, steps: int
) -> None:
    assert upgrade_steps(cscart_releases, from_v, to_v) == steps


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("4.9.2.sp4", "4.9.2.SP4"),
        ("4.9.2.SP4", "4.9.2.SP4"),
        ("v4.3.1", "4.3.1"),
        ("V4.3.1", "4.3.1"),
        ("  4.3.10 ", "4.3.10"),
        ("4.03.1", "4.3.1"),
        ("4.9.2.Sp04", "4.9.2.SP4"),
        ("5", "5"),
    ],
)
def test_normalize_version(text: str, canonical: str) -> None:
    assert normalize_version(text) == canonical


def test_parse_version_parts() -> None:
    assert parse_version("4.9.2.sp4") == Version((4, 9, 2), 4)
    assert parse_version("4.3.10") == Version((4, 3, 10), None)


MALFORMED = ["4..3", "abc", "", "   ", "4.3.", ".4.3", "4.3.1.sp", "4.3.1-sp1", "vv4.3.1",
             "4.3.1 SP1", "4.3.1.SP1.2", "4,3,1", "٤.٣.١", "4.3.1x", "v", "SP1"]  # fmt: skip


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_version_is_named(cscart_releases: Releases, text: str) -> None:
    with pytest.raises(MalformedVersionError) as as_from:
        upgrade_steps(cscart_releases, text, "4.3.9")
    assert as_from.value.text == text
    assert repr(text) in str(as_from.value)
    with pytest.raises(MalformedVersionError) as as_to:
        upgrade_steps(cscart_releases, "4.3.1", text)
    assert as_to.value.text == text


@pytest.mark.parametrize("value", [431, 4.3, None, b"4.3.1"])
def test_version_must_be_text(value: object) -> None:
    with pytest.raises(TypeError):
        parse_version(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("from_v", "to_v", "unknown"),
    [
        ("4.3.99", "4.4.1", "4.3.99"),
        ("4.3.1", "5.0.1", "5.0.1"),
        ("4.3.1", "4.3.9.SP1", "4.3.9.SP1"),
        ("3.9.9", "9.9.9", "3.9.9"),  # the source is checked first
        ("4.3", "4.3.9", "4.3"),
        (" 4.20.1 ", "4.3.9", "4.20.1"),
    ],
)
def test_unknown_version_is_named(
    cscart_releases: Releases, from_v: str, to_v: str, unknown: str
) -> None:
    with pytest.raises(UnknownVersionError) as err:
        upgrade_steps(cscart_releases, from_v, to_v)
    assert err.value.version == unknown
    assert repr(unknown) in str(err.value)


@pytest.mark.parametrize(
    ("from_v", "to_v"),
    [
        ("4.3.1", "4.3.1"),
        ("4.9.2.sp4", "4.9.2.SP4"),
        ("v4.3.1", " 4.3.1"),
        ("4.03.1", "4.3.1"),
    ],
)
def test_same_version(cscart_releases: Releases, from_v: str, to_v: str) -> None:
    with pytest.raises(SameVersionError) as err:
        upgrade_steps(cscart_releases, from_v, to_v)
    assert err.value.version == normalize_version(to_v)
    assert normalize_version(to_v) in str(err.value)


@pytest.mark.parametrize(
    ("from_v", "to_v"),
    [
        ("4.3.9", "4.3.1"),
        ("4.4.1", "4.3.10"),
        ("4.9.2.SP4", "4.9.2"),
        ("4.9.2.SP2", "4.9.2.SP1"),
        ("4.19.1", "4.0.1"),
    ],
)
def test_downgrade_names_both(cscart_releases: Releases, from_v: str, to_v: str) -> None:
    with pytest.raises(DowngradeError) as err:
        upgrade_steps(cscart_releases, from_v, to_v)
    assert (err.value.from_version, err.value.to_version) == (from_v, to_v)
    assert from_v in str(err.value) and to_v in str(err.value)


@pytest.mark.parametrize(
    "error",
    [MalformedVersionError, UnknownVersionError, SameVersionError, DowngradeError],
)
def test_errors_share_one_root(error: type[Exception]) -> None:
    assert issubclass(error, ReleaseError)
    assert issubclass(error, ValueError)


@pytest.mark.parametrize(
    ("from_v", "to_v"),
    [("4..3", "4.3.1"), ("4.3.1", "4.3.99"), ("4.3.1", "4.3.1"), ("4.3.9", "4.3.1")],
)
def test_error_messages_are_one_line(cscart_releases: Releases, from_v: str, to_v: str) -> None:
    with pytest.raises(ReleaseError) as err:
        upgrade_steps(cscart_releases, from_v, to_v)
    assert str(err.value) and "\n" not in str(err.value)


def test_extra_releases_appended_after_the_list(cscart_releases: Releases) -> None:
    extended = (*cscart_releases, Release("4.19.2"), Release("4.19.2.SP1", service_pack=True))
    assert upgrade_steps(extended, "4.18.3", "4.19.2") == 2
    assert upgrade_steps(extended, "4.19.2", "4.19.2.SP1") == 0
    with pytest.raises(UnknownVersionError):
        upgrade_steps(cscart_releases, "4.19.1", "4.19.2")


def test_service_pack_flag_decides() -> None:
    # A vendor naming a service pack without ".SP" marks it with the flag alone.
    releases = (Release("1.0"), Release("1.0.1", service_pack=True), Release("1.1"))
    assert upgrade_steps(releases, "1.0", "1.0.1") == 0
    assert upgrade_steps(releases, "1.0", "1.1") == 1


@pytest.mark.parametrize(
    ("releases", "message"),
    [
        ((Release("4.3.1"), Release("4.3.2"), Release("4.3.1")), "listed twice"),
        ((Release("4.3.1"), Release("v4.3.01")), "listed twice"),
        ((Release("4.3.1"), Release("4.3.1.SP1")), "not marked"),
    ],
)
def test_index_rejects_a_broken_list(releases: Releases, message: str) -> None:
    with pytest.raises(ReleaseError, match=message):
        ReleaseIndex(releases)


def test_index_rejects_a_malformed_release() -> None:
    with pytest.raises(MalformedVersionError):
        ReleaseIndex((Release("4.3.1"), Release("4..3")))


def test_index_is_built_once_per_list(cscart_releases: Releases) -> None:
    first = ReleaseIndex.for_releases(cscart_releases)
    assert ReleaseIndex.for_releases(cscart_releases) is first
    copy = tuple(list(cscart_releases))
    assert copy is not cscart_releases
    assert ReleaseIndex.for_releases(copy).steps("4.3.1", "4.3.9") == 8


def test_index_lookups(cscart_releases: Releases) -> None:
    index = ReleaseIndex.for_releases(cscart_releases)
    assert len(index) == len(cscart_releases)
    assert "4.9.2.sp4" in index
    assert "4.3.99" not in index and "4..3" not in index and 431 not in index
    assert index.canonical(" v4.9.2.sp4") == "4.9.2.SP4"
    assert index.position("4.0.1") == 0


def test_empty_list_knows_no_version() -> None:
    with pytest.raises(UnknownVersionError):
        upgrade_steps((), "4.3.1", "4.3.9")


@given(data=st.data())
def test_steps_match_a_naive_count_and_add_up(
    cscart_releases: Releases, data: st.DataObject
) -> None:
    releases = cscart_releases
    n = len(releases)
    a = data.draw(st.integers(0, n - 3))
    b = data.draw(st.integers(a + 1, n - 2))
    c = data.draw(st.integers(b + 1, n - 1))
    va, vb, vc = (releases[i].version for i in (a, b, c))
    ab, bc, ac = (upgrade_steps(releases, x, y) for x, y in ((va, vb), (vb, vc), (va, vc)))
    assert ab == naive_steps(releases, va, vb)
    assert ab + bc == ac
    assert 0 <= ab <= b - a
    with pytest.raises(DowngradeError):
        upgrade_steps(releases, vb, va)


def test_index_cache_keeps_working_past_its_size() -> None:
    lists = [tuple(Release(f"{major}.{minor}") for minor in range(n + 2)) for major, n in
             enumerate(range(12))]  # fmt: skip
    for n, releases in enumerate(lists):
        assert upgrade_steps(releases, releases[0].version, releases[-1].version) == n + 1
    first = lists[0]
    assert upgrade_steps(first, "0.0", "0.1") == 1
