"""evals/answer_check.py: the train-only check of extractive answers (pairs and figures, no index needed)."""

from __future__ import annotations

from evals.answer_check import QuestionOutcome, follow_up_pairs, summarise
from evals.openstax import LibraryQuestion


def question(text: str) -> LibraryQuestion:
    return LibraryQuestion(id=text[:10], q=text, course="c", section="s", file="f.md")


def test_two_part_questions_become_conversations() -> None:
    pairs = follow_up_pairs(
        [
            question("What is global vision, and why is it important?"),
            question("What is an income statement? How does it differ from the balance sheet?"),
            question("What is a business cycle? How do businesses adapt to periods of contraction?"),
            question("What is the role of an entrepreneur in society?"),
        ]
    )
    assert [(first, second) for _, first, second in pairs] == [
        ("What is global vision", "why is it important?"),
        ("What is an income statement?", "How does it differ from the balance sheet?"),
    ]


def test_figures() -> None:
    outcomes = [
        QuestionOutcome(id="a", supported=True, gold_in_evidence=True, citations=2, hits=2, coverage=1.0),
        QuestionOutcome(id="b", supported=True, gold_in_evidence=False, citations=2, hits=0, coverage=0.5),
        QuestionOutcome(id="c", supported=True, gold_in_evidence=True, citations=0),
        QuestionOutcome(id="d", supported=False, gold_in_evidence=False),
    ]
    check = summarise(outcomes)
    assert check.citation_precision == 0.5 and check.choice_precision == 1.0
    assert check.answered == 0.5 and check.term_coverage == 0.75
