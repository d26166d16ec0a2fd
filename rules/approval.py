"""Reading a customer's answer to an estimate (care-policy.md, "Approval and charging").

Agreement counts only from the first line of a reply by the requester, after quoted text is
removed, holding an approve keyword as a whole word and no negation. Decline keywords decline.
Anything else changes nothing and is noted for the engineer. Keywords come from the config.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

from rules.policy import ApprovalPolicy


class Answer(enum.StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Reading:
    """What a reply says: the answer, the line it was read from, and the words that decided."""

    answer: Answer
    line: str
    words: tuple[str, ...] = ()


# Where quoted text starts: "On Mon, ... wrote:", "... написал(а):", forwarded or original
# message separators, and help desks' "reply above this line" markers.
_QUOTE_START = re.compile(
    r"^\s*(?:on\s.+\swrote:|.+\s(?:написал|написала|пишет)\s*:|-{2,}\s*original message\s*-{2,}"
    r"|-{2,}\s*исходное сообщение\s*-{2,}|#{1,2}-.*-#{1,2}|_{5,}|from:\s.+)\s*$",
    re.IGNORECASE,
)


def _phrase_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    cleaned = [w.strip().lower() for w in words if w.strip()]
    if not cleaned:
        return None
    alternatives = sorted(
        (re.escape(w).replace(r"\ ", r"\s+") for w in cleaned), key=len, reverse=True
    )
    return re.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)", re.IGNORECASE)


@functools.lru_cache(maxsize=16)
def _patterns(
    policy: ApprovalPolicy,
) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None, re.Pattern[str] | None]:
    return (
        _phrase_pattern(policy.approve_words),
        _phrase_pattern(policy.decline_words),
        _phrase_pattern(policy.negations),
    )


def first_line(body: str) -> str:
    """The first non-empty line of ``body`` before any quoted text."""
    for raw in body.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if _QUOTE_START.match(line):
            return ""
        if not line or line.startswith(">"):
            continue
        return line
    return ""


def read_reply(body: str, policy: ApprovalPolicy) -> Reading:
    """Whether a reply agrees to the estimate, declines it, or neither."""
    line = first_line(body)
    approve, decline, negation = _patterns(policy)
    text = line.replace("’", "'")
    negated = tuple(m.group(0) for m in negation.finditer(text)) if negation else ()
    agreed = tuple(m.group(0) for m in approve.finditer(text)) if approve else ()
    if agreed and not negated:
        return Reading(Answer.APPROVE, line, agreed)
    declined = tuple(m.group(0) for m in decline.finditer(text)) if decline else ()
    if declined:
        return Reading(Answer.DECLINE, line, declined)
    return Reading(Answer.NONE, line, agreed + negated)
