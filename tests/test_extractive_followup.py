"""Follow-ups without a model: a pronoun follow-up stays with the subject its conversation named."""

from __future__ import annotations

import pytest
from conftest import ingest_courses

from assistant.core.settings import Settings
from assistant.core.types import ChatTurn
from assistant.pilot import CoursePilot

THEORIES = """# Theories of motivation

## Maslow's hierarchy of needs

Abraham Maslow arranged human needs in a hierarchy of five levels: physiological, safety, social, esteem and
self-actualization. A need that is satisfied no longer motivates; the next level up becomes the motivator.
Managers use the hierarchy to see which unmet needs drive an employee, and so which rewards will motivate.

## Herzberg's two factors

Frederick Herzberg separated hygiene factors, such as pay and working conditions, from motivators, such as
achievement and recognition.
"""

PRACTICE = """# Motivation at work

## Understanding human motivation

Understanding human motivation helps managers design jobs, set goals and give feedback that people respond
to. Motivation is the set of forces that start, direct and sustain effort toward a goal.

## Goal setting

Specific, challenging goals lead to higher performance than vague goals, when people accept them.
"""

OTHER = """# Accounting basics

## The balance sheet

The balance sheet lists assets, liabilities and owners' equity at one moment in time.
"""


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    tmp = tmp_path_factory.mktemp("followup")
    files = {
        ("motivation", "Motivating Employees", "01-theories.md"): THEORIES,
        ("motivation", "Motivating Employees", "02-practice.md"): PRACTICE,
        ("accounting", "Accounting", "01-basics.md"): OTHER,
    }
    return ingest_courses(tmp, files)


def test_a_pronoun_follow_up_keeps_the_subject_the_conversation_named(settings: Settings) -> None:
    """'it' is Maslow's hierarchy: searched inside the course on its own words, the follow-up lands on the
    general section on understanding motivation, which has left the conversation's subject."""
    pilot = CoursePilot(settings)
    first = "What is Maslow's hierarchy of needs?"
    history = [ChatTurn(role="user", content=first), ChatTurn(role="assistant", content=pilot.ask(first).text)]
    answer = pilot.ask("how does it help in understanding human motivation?", history=history)
    assert not answer.refused and answer.citations
    assert {c.location.section[-1] for c in answer.citations} == {"Maslow's hierarchy of needs"}
