"""Release versions and upgrade steps over the ordered release list.

The release list (``connector/data/cscart-releases.csv``, plus any ``extra_releases`` from the
config) is a tuple of :class:`rules.policy.Release` in release order, service packs marked.
The number of upgrade steps from A to B is the number of releases after A up to and including
B, service packs not counted: 4.3.1 → 4.3.9 is 8 steps, 4.3.9 → 4.4.1 is 2 (4.3.10, 4.4.1),
4.9.2 → 4.9.2.SP4 is 0.

Versions are compared after normalising: surrounding whitespace and a leading ``v`` are
dropped, case does not matter (``4.9.2.sp4`` is ``4.9.2.SP4``) and numbers compare as numbers
(``4.03.1`` is ``4.3.1``). A version that is not in the list is an error naming it, never a
guess at the nearest release.

:class:`ReleaseIndex` precomputes positions and step counts once per release list, so a step
count is two dictionary lookups; :func:`upgrade_steps` reuses the index of a list it has seen.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from rules.policy import Release

__all__ = [
    "DowngradeError",
    "MalformedVersionError",
    "ReleaseError",
    "ReleaseIndex",
    "SameVersionError",
    "UnknownVersionError",
    "Version",
    "normalize_version",
    "parse_version",
    "upgrade_steps",
]

# Dotted decimal numbers, optionally ending in ".SP<n>". ASCII digits only: ``\d`` would also
# accept other scripts' digits.
_VERSION_RE = re.compile(r"v?([0-9]+(?:\.[0-9]+)*)(?:\.sp([0-9]+))?", re.IGNORECASE)


class ReleaseError(ValueError):
    """Root of the release-list errors; the message is one line, fit to show a user."""


class MalformedVersionError(ReleaseError):
    """The text is not a version such as ``4.3.1`` or ``4.9.2.SP4``.

    :param text: the text as given.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(
            f"malformed version {text!r}: expected numbers separated by dots, "
            "optionally ending in .SP<n> (for example 4.3.1 or 4.9.2.SP4)"
        )


class UnknownVersionError(ReleaseError):
    """The version is well formed but not in the release list.

    :param version: the version as given (whitespace stripped).
    """

    def __init__(self, version: str, *, first: str | None = None, last: str | None = None) -> None:
        self.version = version
        known = f" ({first} … {last})" if first is not None and last is not None else ""
        super().__init__(f"unknown version {version!r}: not in the release list{known}")


class SameVersionError(ReleaseError):
    """The upgrade goes from a version to itself.

    :param version: the version as given (whitespace stripped).
    """

    def __init__(self, version: str) -> None:
        self.version = version
        super().__init__(f"from and to are the same version ({version}): nothing to upgrade")


class DowngradeError(ReleaseError):
    """The target release comes before the source release in the list.

    :param from_version: the source as given (whitespace stripped).
    :param to_version: the target as given (whitespace stripped).
    """

    def __init__(self, from_version: str, to_version: str) -> None:
        self.from_version = from_version
        self.to_version = to_version
        super().__init__(
            f"{from_version} → {to_version} is a downgrade: "
            f"{to_version} comes before {from_version} in the release list"
        )


class Version(NamedTuple):
    """A parsed version: the dotted numbers and the service-pack number (``None`` for none)."""

    numbers: tuple[int, ...]
    service_pack: int | None

    def __str__(self) -> str:
        base = ".".join(str(n) for n in self.numbers)
        return base if self.service_pack is None else f"{base}.SP{self.service_pack}"


# Versions arrive from webhooks and the CLI many times a second; parsing is cached (bounded).
@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Version:
    match = _VERSION_RE.fullmatch(text.strip())
    if match is None:
        raise MalformedVersionError(text)
    numbers = tuple(int(part) for part in match.group(1).split("."))
    sp = match.group(2)
    return Version(numbers, None if sp is None else int(sp))


def parse_version(text: str) -> Version:
    """Parse a version such as ``4.3.1``, ``v4.9.2.sp4`` or `` 4.9.2.SP4 ``.

    :param text: the version text.
    :returns: the parsed version.
    :raises MalformedVersionError: when ``text`` is not a version.
    :raises TypeError: when ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"a version must be a string, not {type(text).__name__}")
    return _parse(text)


def normalize_version(text: str) -> str:
    """The canonical spelling of a version: ``" v4.9.2.sp04"`` → ``"4.9.2.SP4"``.

    :param text: the version text.
    :raises MalformedVersionError: when ``text`` is not a version.
    """
    return str(parse_version(text))


class ReleaseIndex:
    """Positions and cumulative step counts of one release list, built once.

    :param releases: the release list, in release order.
    :raises ReleaseError: when a version is malformed or listed twice, or a version named as a
        service pack (``….SP<n>``) is not marked as one.
    """

    __slots__ = ("releases", "_position", "_steps_through")

    def __init__(self, releases: Sequence[Release]) -> None:
        self.releases: tuple[Release, ...] = tuple(releases)
        self._position: dict[Version, int] = {}
        # _steps_through[i]: how many releases that are not service packs lie in releases[0..i].
        self._steps_through: list[int] = []
        count = 0
        for i, release in enumerate(self.releases):
            version = parse_version(release.version)
            if version in self._position:
                raise ReleaseError(f"release {release.version!r} is listed twice")
            # The flag is authoritative (a vendor may name service packs differently), but a
            # ".SP<n>" name without the flag is a config slip that would silently add a step.
            if version.service_pack is not None and not release.service_pack:
                raise ReleaseError(
                    f"release {release.version!r} is named as a service pack "
                    "but not marked as one"
                )
            self._position[version] = i
            if not release.service_pack:
                count += 1
            self._steps_through.append(count)

    _cache: ClassVar[dict[int, tuple[tuple[Release, ...], ReleaseIndex]]] = {}
    _CACHE_SIZE: ClassVar[int] = 8
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def for_releases(cls, releases: tuple[Release, ...]) -> ReleaseIndex:
        """The index of ``releases``, built on first use and then reused.

        The cache is keyed by the tuple's identity (``Policy.releases`` is one tuple for the
        life of the settings), so a hit costs no hashing of the whole list; a different tuple
        with equal contents builds its own index. It keeps at most a few lists.

        :param releases: the release list, in release order.
        """
        entry = cls._cache.get(id(releases))
        # The entry holds a reference to its tuple, so the id cannot be reused while cached;
        # the identity check still guards against any mix-up.
        if entry is not None and entry[0] is releases:
            return entry[1]
        index = cls(releases)
        # Only a miss takes the lock; hits above read the dict without it (atomic under the GIL).
        with cls._lock:
            if len(cls._cache) >= cls._CACHE_SIZE:
                cls._cache.pop(next(iter(cls._cache)))
            cls._cache[id(releases)] = (releases, index)
        return index

    def __len__(self) -> int:
        return len(self.releases)

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, str):
            return False
        try:
            return parse_version(version) in self._position
        except MalformedVersionError:
            return False

    def position(self, version: str) -> int:
        """Where ``version`` stands in the list (0 for the first release).

        :raises MalformedVersionError: when ``version`` is not a version.
        :raises UnknownVersionError: when it is not in the list.
        """
        found = self._position.get(parse_version(version))
        if found is None:
            first = self.releases[0].version if self.releases else None
            last = self.releases[-1].version if self.releases else None
            raise UnknownVersionError(version.strip(), first=first, last=last)
        return found

    def canonical(self, version: str) -> str:
        """The version as the release list spells it (``4.9.2.sp4`` → ``4.9.2.SP4``).

        :raises MalformedVersionError: when ``version`` is not a version.
        :raises UnknownVersionError: when it is not in the list.
        """
        return self.releases[self.position(version)].version

    def steps(self, from_version: str, to_version: str) -> int:
        """Releases after ``from_version`` up to and including ``to_version``, service packs
        not counted.

        :raises MalformedVersionError: when either is not a version.
        :raises UnknownVersionError: when either is not in the list (the source is checked
            first).
        :raises SameVersionError: when both are the same release.
        :raises DowngradeError: when ``to_version`` comes before ``from_version``.
        """
        start = self.position(from_version)
        end = self.position(to_version)
        if start == end:
            raise SameVersionError(self.releases[start].version)
        if end < start:
            raise DowngradeError(from_version.strip(), to_version.strip())
        return self._steps_through[end] - self._steps_through[start]


def upgrade_steps(releases: tuple[Release, ...], from_v: str, to_v: str) -> int:
    """The number of upgrade steps from ``from_v`` to ``to_v``.

    That is the number of releases after ``from_v`` up to and including ``to_v``, service
    packs not counted: 4.3.1 → 4.3.9 is 8, 4.3.9 → 4.4.1 is 2, 4.9.2 → 4.9.2.SP4 is 0.

    :param releases: the release list in release order (``Policy.releases``).
    :param from_v: the installed version.
    :param to_v: the target version.
    :raises MalformedVersionError: when either is not a version.
    :raises UnknownVersionError: when either is not in the list.
    :raises SameVersionError: when both are the same release.
    :raises DowngradeError: when ``to_v`` comes before ``from_v``.
    """
    return ReleaseIndex.for_releases(releases).steps(from_v, to_v)
