"""Proposing a ticket's category from its subject and text, and reading the engineer's choice.

The engineer assigns the category; the connector only proposes one. The proposal comes from the
keyword rules of the configuration (:class:`rules.policy.DetectionPolicy`), in any language:

Matching
    A pattern matches whole words, case-insensitively (Unicode-aware, so Cyrillic too). A
    phrase (``blank page``) matches its words separated by spaces, line breaks or hyphens
    (``set up`` also matches ``set-up``). A ``*`` at the end of a word matches any ending
    (``обнов*``: обновить, обновление; ``ошибк* 500``: ошибка 500, ошибку 500). ``е`` and ``ё``
    are the same letter, and so are the apostrophes ``'``, ``’`` and ``ʼ``. Where patterns
    overlap, the longest one that fits at a position wins and consumes its words, so a phrase
    such as ``как настроить`` (a question) keeps ``настро*`` (configuration) from counting too.

Scoring
    Every distinct pattern that matches adds its weight to its category once, doubled when it
    appears in the subject (:data:`SUBJECT_FACTOR`); repeating a word adds nothing. The leading
    category's *share* is its score over the total of all categories. Thin evidence is damped:
    below a score of :data:`FULL_EVIDENCE` the share is scaled by ``score / FULL_EVIDENCE``,
    so one weak word in the body cannot reach the threshold on its own. The confidence is that
    damped share, in ``[0, 1]``.

Decision
    The leading category is proposed when its confidence reaches the policy's threshold. When
    nothing matches, two categories tie for the lead, or the confidence is below the threshold,
    no category is proposed: the connector charges nothing and asks the engineer.

Patterns are compiled once per :class:`DetectionPolicy` and cached, because detection runs for
every new ticket: one regular expression over all patterns finds where a match starts, and only
the few patterns that begin with those letters are then tried there.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from rules.policy import DetectionPolicy

__all__ = [
    "FULL_EVIDENCE",
    "MAX_TEXT_CHARS",
    "SUBJECT_FACTOR",
    "Detection",
    "EngineerChoice",
    "detect_category",
    "engineer_category",
    "extract_versions",
    "validate_detection",
]

#: A pattern found in the subject counts this many times its weight.
SUBJECT_FACTOR = 2.0
#: The score a category needs before its share counts in full (see the module docstring).
FULL_EVIDENCE = 3.0
#: Only this much of the text is read: pasted logs and quoted threads add nothing but time.
MAX_TEXT_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class Detection:
    """A proposed category with the reasons for it.

    :param category: the proposed category; ``None`` when nothing matched, the lead is tied, or
        the confidence is below the threshold.
    :param confidence: the leading category's damped share of the score, in ``[0, 1]``; it is
        reported even when it falls below the threshold.
    :param evidence: the words that matched for the leading category (for every tied leader on
        a tie), as written in the ticket, subject first, each once.
    :param scores: every category that scored, highest first, with its score.
    """

    category: str | None
    confidence: float
    evidence: tuple[str, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class EngineerChoice:
    """The category an engineer set on a ticket, and the price they set, if any.

    :param credits: the engineer's price in credits (a positive integer), else ``None``. It is
        read whatever the category; the caller uses it where the category is engineer-priced.
    """

    category: str
    credits: int | None = None


# --- compiling patterns -----------------------------------------------------------------------
#
# Two passes keep this fast in pure Python. One regular expression, built as a character trie
# over all patterns, finds (in C) the next position where any pattern matches. There, each
# pattern that could start with those letters is tried on its own, and the longest match wins.
# A flat alternation of a few hundred patterns would be some ten times slower, and one with a
# capturing group per pattern slower still.

# Text and patterns are compared lower-cased, with ё read as е and one apostrophe; every
# replacement keeps the length, so positions found in the folded text hold in the original.
_FOLD = str.maketrans({"ё": "е", "\u2019": "'", "\u02bc": "'", "`": "'"})
# Between the words of a phrase: spaces, line breaks, hyphens and dashes.
_GAP = r"[\s\-\u2010-\u2015]+"
_STAR = r"\w*"
_PREFIX = 3  # candidates are looked up by up to this many leading letters


def _fold(text: str) -> str:
    return text.lower().translate(_FOLD)


def _atoms(pattern: str) -> tuple[str, ...]:
    """A pattern as regex atoms: escaped characters, phrase gaps and word-ending stars."""
    words = _fold(pattern).replace("-", " ").split()
    if not words:
        raise ValueError("detection pattern is empty")
    atoms: list[str] = []
    for word in words:
        star = word.endswith("*")
        stem = word[:-1] if star else word
        if not stem or "*" in stem:
            raise ValueError(
                f"detection pattern {pattern!r}: '*' is allowed only at the end of a word"
            )
        if atoms:
            atoms.append(_GAP)
        atoms.extend(re.escape(char) for char in stem)
        if star:
            atoms.append(_STAR)
    return tuple(atoms)


def _literal_prefix(atoms: tuple[str, ...]) -> str:
    prefix: list[str] = []
    for atom in atoms[:_PREFIX]:
        if atom in (_GAP, _STAR):
            break
        prefix.append(re.sub(r"\\(.)", r"\1", atom))
    return "".join(prefix)


def _trie_regex(sequences: Iterable[tuple[str, ...]]) -> str:
    root: dict[str, Any] = {}
    for atoms in sequences:
        node = root
        for atom in atoms:
            node = node.setdefault(atom, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [atom + emit(child) for atom, child in node.items() if atom]
        if not branches:
            return ""
        if len(branches) == 1 and "" not in node:
            return branches[0]
        return "(?:" + "|".join(branches) + (")?" if "" in node else ")")

    return emit(root)


# eq=False: hashed by identity, since patterns are dictionary keys on the hot path.
@dataclass(frozen=True, slots=True, eq=False)
class _Pattern:
    regex: re.Pattern[str]
    targets: tuple[tuple[str, float], ...]  # (category, weight)


@dataclass(frozen=True, slots=True)
class _Compiled:
    scan: re.Pattern[str] | None
    # Leading letters (up to _PREFIX) -> the patterns that start with them.
    candidates: Mapping[str, tuple[_Pattern, ...]]


def _build(detection: DetectionPolicy) -> _Compiled:
    validate_detection(detection)
    weights: dict[tuple[str, ...], dict[str, float]] = {}
    for rule in detection.rules:
        per_category = weights.setdefault(_atoms(rule.pattern), {})
        # The same pattern listed twice for a category counts once, at its highest weight.
        per_category[rule.category] = max(rule.weight, per_category.get(rule.category, 0.0))
    if not weights:
        return _Compiled(scan=None, candidates={})
    candidates: dict[str, list[_Pattern]] = {}
    for atoms, per_category in weights.items():
        regex = re.compile("".join(atoms) + r"(?!\w)")
        pattern = _Pattern(regex=regex, targets=tuple(per_category.items()))
        candidates.setdefault(_literal_prefix(atoms), []).append(pattern)
    scan = re.compile(rf"(?<!\w)(?:{_trie_regex(weights)})(?!\w)")
    return _Compiled(scan=scan, candidates={k: tuple(v) for k, v in candidates.items()})


_compile = functools.lru_cache(maxsize=16)(_build)

# A frozen dataclass hashes all its rules on every call; an identity check avoids that on the
# hot path, where the same policy object comes back for every ticket.
_BY_IDENTITY: dict[int, tuple[DetectionPolicy, _Compiled]] = {}


def _compiled(detection: DetectionPolicy) -> _Compiled:
    hit = _BY_IDENTITY.get(id(detection))
    if hit is not None and hit[0] is detection:
        return hit[1]
    compiled = _compile(detection)
    if len(_BY_IDENTITY) >= 16:
        _BY_IDENTITY.clear()
    _BY_IDENTITY[id(detection)] = (detection, compiled)
    return compiled


def _matches(compiled: _Compiled, text: str) -> Iterator[tuple[_Pattern, int, int]]:
    """Each longest pattern match in ``text`` (folded), left to right, without overlaps."""
    assert compiled.scan is not None
    position = 0
    while (found := compiled.scan.search(text, position)) is not None:
        start = found.start()
        best: tuple[_Pattern, int] | None = None
        for size in range(1, _PREFIX + 1):
            for pattern in compiled.candidates.get(text[start : start + size], ()):
                match = pattern.regex.match(text, start)
                if match is not None and (best is None or match.end() > best[1]):
                    best = (pattern, match.end())
        if best is None:  # cannot happen: the scan and the candidates hold the same patterns
            position = start + 1
            continue
        yield best[0], start, best[1]
        position = best[1]


def validate_detection(detection: DetectionPolicy) -> None:
    """Check a detection policy; the configuration loader calls it to fail early.

    :raises ValueError: a one-line message naming the threshold, rule or pattern at fault.
    """
    if not 0.0 <= detection.threshold <= 1.0:
        raise ValueError(f"detection threshold must be between 0 and 1, not {detection.threshold}")
    for rule in detection.rules:
        if not rule.category.strip():
            raise ValueError(f"detection pattern {rule.pattern!r} has no category")
        if not rule.weight > 0:
            raise ValueError(
                f"detection pattern {rule.pattern!r} ({rule.category}): "
                f"weight must be positive, not {rule.weight}"
            )
        _atoms(rule.pattern)


# --- detecting --------------------------------------------------------------------------------


def detect_category(subject: str, text: str, detection: DetectionPolicy) -> Detection:
    """Propose a category for a ticket from its subject and text.

    See the module docstring for how words match and how the score is made.

    :param subject: the ticket's subject.
    :param text: the ticket's description or first comment (only the first
        :data:`MAX_TEXT_CHARS` characters are read).
    :param detection: the keyword rules and the threshold.
    :returns: the proposal; ``category`` is ``None`` when the connector should ask the engineer.
    :raises ValueError: a pattern or the threshold in ``detection`` is invalid.
    """
    compiled = _compiled(detection)
    if compiled.scan is None:
        return Detection(category=None, confidence=0.0, scores=MappingProxyType({}))

    factors: dict[_Pattern, float] = {}  # each pattern's best factor (subject or text)
    found: list[tuple[_Pattern, str]] = []  # (pattern, the words as written), in reading order
    for factor, part in ((SUBJECT_FACTOR, subject), (1.0, text[:MAX_TEXT_CHARS])):
        folded = _fold(part)
        # lower() lengthens a rare letter (İ); the evidence then shows the folded text.
        written = part if len(folded) == len(part) else folded
        for pattern, start, end in _matches(compiled, folded):
            if factor > factors.get(pattern, 0.0):
                factors[pattern] = factor
            found.append((pattern, " ".join(written[start:end].split())))

    scores: dict[str, float] = {}
    for pattern, factor in factors.items():
        for category, weight in pattern.targets:
            scores[category] = scores.get(category, 0.0) + weight * factor
    if not scores:
        return Detection(category=None, confidence=0.0, scores=MappingProxyType({}))

    ranked = dict(sorted(scores.items(), key=lambda item: (-item[1], item[0])))
    top = next(iter(ranked.values()))
    leaders = {category for category, score in ranked.items() if score == top}
    share = top / sum(ranked.values())
    confidence = max(0.0, min(1.0, share * min(1.0, top / FULL_EVIDENCE)))

    evidence: list[str] = []
    seen: set[str] = set()
    for pattern, words in found:
        key = _fold(words)
        if key not in seen and any(category in leaders for category, _ in pattern.targets):
            seen.add(key)
            evidence.append(words)

    proposed = next(iter(leaders)) if len(leaders) == 1 else None
    if confidence < detection.threshold:
        proposed = None
    return Detection(
        category=proposed,
        confidence=confidence,
        evidence=tuple(evidence),
        scores=MappingProxyType(ranked),
    )


# --- versions ---------------------------------------------------------------------------------

# 4.3.1, 4.10.1, 4.9.2.SP4, 4.9.2 sp4; not part of a longer dotted number (an IP address).
_VERSION = r"(?<![\w.])v?(\d+\.\d+\.\d+(?:[.\s_-]?sp\s?\d+)?)(?!\.?\w)"
_ARROW = r"\s*(?:-+>|=+>|[→⟶➔➜])\s*"
_TO_WORD = r"\s+(?:up\s+)?(?:to|into|до|на|по)\s+(?:the\s+)?(?:version\s+|версии\s+|версию\s+)?"
_DIRECT = re.compile(rf"{_VERSION}(?:{_ARROW}|{_TO_WORD}){_VERSION}", re.IGNORECASE)
_ANY_VERSION = re.compile(_VERSION, re.IGNORECASE)
_TARGET = re.compile(
    rf"(?<!\w)(?:to|into|до|на)\s+(?:the\s+)?(?:latest\s+)?"
    rf"(?:version\s+|versions\s+|версии\s+|версию\s+)?{_VERSION}",
    re.IGNORECASE,
)
_SOURCE = re.compile(
    rf"(?<!\w)(?:from|с|со|c)\s+(?:the\s+)?(?:version\s+|версии\s+)?{_VERSION}",
    re.IGNORECASE,
)


def extract_versions(text: str) -> tuple[str, str] | None:
    """Find the upgrade a ticket asks for: the versions from and to, as written.

    Recognised: ``from 4.3.1 to 4.3.9``, ``4.3.1 -> 4.3.9``, ``4.3.1 → 4.3.9``,
    ``upgrade 4.9.2 to 4.9.2.SP4``, ``с 4.3.1 до 4.3.9``, ``с версии 4.3.1 на 4.3.9``,
    ``обновить 4.10.1 до 4.12.2``. Failing a direct pair, a version after *to* / *до* / *на* is
    the target, and the source is a version after *from* / *с*, else the only other version in
    the text (``we run 4.3.1 ... please upgrade to 4.3.9``).

    A version has at least three numbers (``4.3.1``; a price such as ``9.99`` is not one) and an
    optional service pack (``.SP4``, any case). The strings are returned as written, without a
    leading ``v``; comparing and normalising them is the pricing module's job.

    :returns: ``(from, to)``, or ``None`` when the text names no such pair.
    """
    text = text[:MAX_TEXT_CHARS]
    direct = _DIRECT.search(text)
    if direct is not None:
        return direct.group(1), direct.group(2)
    target = _TARGET.search(text)
    if target is None:
        return None
    to_version = target.group(1)
    source = _SOURCE.search(text)
    if source is not None and source.group(1).casefold() != to_version.casefold():
        return source.group(1), to_version
    others = {
        found.casefold(): found
        for found in _ANY_VERSION.findall(text)
        if found.casefold() != to_version.casefold()
    }
    if len(others) == 1:
        return next(iter(others.values())), to_version
    return None


# --- the engineer's choice --------------------------------------------------------------------

_POSITIVE_INT = re.compile(r"\+?0*[1-9]\d{0,8}")


def engineer_category(
    tags: Iterable[str],
    fields: Mapping[str, str],
    *,
    categories: Collection[str],
    tag_prefix: str = "care_category_",
    category_field: str = "care_category",
    price_field: str = "care_price",
) -> EngineerChoice | None:
    """Read the category (and price) an engineer set on a ticket.

    The field, when it names a known category, wins: it holds one current value, while tags
    can linger after a re-categorisation. Otherwise the tags ``<tag_prefix><name>`` count, and
    of several the **last in the given order** wins (pass the tags in the order they were
    added where the desk reports it). Names compare case-insensitively; a field value may also
    carry the tag prefix (Zendesk drop-down values are tags). Unknown names are ignored.

    :param tags: the ticket's tags.
    :param fields: the ticket's custom fields by name.
    :param categories: the category keys of the policy.
    :param price_field: a field holding the engineer's price in credits; read when it holds a
        positive integer (``"30"``, ``" 30 "``), ignored otherwise.
    :returns: the choice, or ``None`` when no known category is set (a price alone is ignored).
    """
    known = {key.casefold(): key for key in categories}
    prefix = tag_prefix.casefold()

    def lookup(name: str) -> str | None:
        name = name.strip().casefold()
        if prefix and name.startswith(prefix):
            name = name[len(prefix) :]
        return known.get(name)

    chosen = lookup(str(fields.get(category_field) or ""))
    if chosen is None:
        for tag in tags:
            if tag.strip().casefold().startswith(prefix):
                chosen = lookup(tag) or chosen
    if chosen is None:
        return None

    raw_price = str(fields.get(price_field) or "").strip()
    credits = int(raw_price) if _POSITIVE_INT.fullmatch(raw_price) else None
    return EngineerChoice(category=chosen, credits=credits)
