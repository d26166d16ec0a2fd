"""Reading a customer's reply to an estimate: first line, whole words, negations, quotes."""

from __future__ import annotations

import pytest

from rules.approval import Answer, first_line, read_reply
from rules.policy import Policy


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        ("I agree", Answer.APPROVE),
        ("Yes, please go ahead.", Answer.APPROVE),
        ("OK", Answer.APPROVE),
        ("Approved, thanks!", Answer.APPROVE),
        ("agree\n\nbut please hurry", Answer.APPROVE),
        ("Согласен", Answer.APPROVE),
        ("согласна, начинайте", Answer.APPROVE),
        ("Подтверждаю.", Answer.APPROVE),
        ("Да", Answer.APPROVE),
        ("  \n\nI AGREE\n", Answer.APPROVE),
        ("I do not agree", Answer.NONE),  # negated approval: neither, noted for the engineer
        ("I don't agree with this price", Answer.NONE),
        ("Не согласен", Answer.NONE),
        ("No", Answer.DECLINE),
        ("I decline", Answer.DECLINE),
        ("Нет, слишком дорого", Answer.DECLINE),
        ("Отказываюсь", Answer.DECLINE),
        ("Cancel please", Answer.DECLINE),
        ("What does this include?", Answer.NONE),
        ("agreement attached", Answer.NONE),  # "agree" only as a whole word
        ("Yesterday it worked", Answer.NONE),
        ("", Answer.NONE),
        ("Thanks for the estimate.\nI agree", Answer.NONE),  # only the first line counts
    ],
)
def test_read_reply(policy: Policy, body: str, answer: Answer) -> None:
    assert read_reply(body, policy.approval).answer is answer


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("> I agree\nWhat is included?", "What is included?"),
        ("On Mon, 2 Mar 2026 at 10:00, Support wrote:\n> I agree", ""),
        ("Какие сроки?\n\n12.03.2026, Поддержка написал:\n> Согласен", "Какие сроки?"),
        ("##- Please type your reply above this line -##\nI agree", ""),
        ("-----Original Message-----\nyes", ""),
        ("\n\n  Yes  \n", "Yes"),
    ],
)
def test_quoted_text_is_removed(body: str, line: str) -> None:
    assert first_line(body) == line


def test_quoted_approval_does_not_count(policy: Policy) -> None:
    body = "Can you start tomorrow?\n\nOn Tue, Support wrote:\n> Reply I agree to start"
    reading = read_reply(body, policy.approval)
    assert reading.answer is Answer.NONE and reading.line == "Can you start tomorrow?"


def test_reading_names_the_words(policy: Policy) -> None:
    reading = read_reply("Yes, go ahead", policy.approval)
    assert reading.answer is Answer.APPROVE
    assert {w.lower() for w in reading.words} == {"yes", "go ahead"}
