"""Acronyms are searched with the long form the library spells out ("BLUF" with "bottom line up front")."""

from __future__ import annotations

import pytest

from assistant.core.acronyms import asks_what_it_is, library_long_form, long_forms, question_acronyms, spell_out
from assistant.pilot import CoursePilot
from assistant.retrieval.retriever import Retriever


def test_question_acronyms() -> None:
    assert question_acronyms("What's BLUF in emails?") == ["BLUF"]
    assert question_acronyms("Why do LLCs appeal more than an LLC's rival?") == ["LLC"]
    assert question_acronyms("How do a LAN and a WAN differ?") == ["LAN", "WAN"]
    assert question_acronyms("WHAT IS THE GROW MODEL?") == []  # shouting, not acronyms
    assert question_acronyms("What is a pivot table?") == []
    assert question_acronyms("Does type II diabetes differ?") == []  # a Roman numeral
    # A question that defines an acronym itself needs nothing from the library.
    assert question_acronyms("Does nucleoside triphosphate (NTP) bind?") == []
    assert question_acronyms("Does the World Trade Organization (WTO) help?") == []


def test_only_a_question_about_what_something_is_is_spelled_out() -> None:
    for asks in (
        "What's BLUF in emails?",
        "What does RACI stand for?",
        "hi! quick question: whats the SBI model?",
        "Describe the purpose and role of the WTO.",
        "What makes a goal SMART?",
    ):
        assert asks_what_it_is(asks), asks
    for uses in ("How do I use SBI with my team?", "HIV trans-activator protein crosses cell membranes."):
        assert not asks_what_it_is(uses), uses


@pytest.mark.parametrize(
    ("acronym", "text", "expected"),
    [
        (
            "NAFTA",
            "The North American Free Trade Agreement (NAFTA) created a free-trade zone.",
            "North American Free Trade Agreement",
        ),
        ("SBI", "Use SBI (Situation-Behaviour-Impact) for every piece of feedback.", "Situation-Behaviour-Impact"),
        ("SBI", "Situation-Behaviour-Impact, usually shortened to SBI, is a structure.", "Situation-Behaviour-Impact"),
        (
            "BLUF",
            "Start with the request. This is often called BLUF, for bottom line up front.",
            "bottom line up front",
        ),
        (
            "FDIC",
            "It created the Federal Deposit Insurance Corporation (FDIC) to insure deposits.",
            "Federal Deposit Insurance Corporation",
        ),
        ("DOL", "Ask the Department of Labor (DOL) for the rules.", "Department of Labor"),
        (
            "GROW",
            "Coaching › What GROW stands for\nGoal: what do you want?\nReality: what is happening now?\n"
            "Options: what could you do?\nWill: what will you do?",
            "Goal, Reality, Options, Will",
        ),
        (
            "SMART",
            "The SMART checklist:\n- Specific: exact.\n- Measurable: a number.\n- Achievable: realistic.\n"
            "- Relevant: it matters.\n- Time-bound: it has a deadline.",
            "Specific, Measurable, Achievable, Relevant, Time-bound",
        ),
    ],
)
def test_long_forms_in_the_ways_course_text_spells_them_out(acronym: str, text: str, expected: str) -> None:
    assert long_forms(acronym, [text]) == [expected]


@pytest.mark.parametrize(
    ("acronym", "text"),
    [
        ("SBI", "Situation-Behaviour-Impact is a structure for feedback."),  # the passage never uses the acronym
        ("IT", "IT is the team that keeps laptops running; it takes requests by ticket."),  # two letters by chance
        ("BLUF", "Be brief. Lead with the ask. BLUF: Use few fillers."),  # the letters cross sentences
        ("DNA", "Oxidative DNA did not appear to change."),  # spelled by chance, nothing says it names the acronym
        ("ATP", "ATP assembly, thereby providing energy."),  # a comma between lowercase words is not a list
        ("GROW", "GROW sales:\n- Growth comes first.\n- Revenue follows."),  # a list that spells only part of it
    ],
)
def test_no_long_form_is_made_up(acronym: str, text: str) -> None:
    assert long_forms(acronym, [text]) == []


def test_the_most_often_spelled_long_form_wins() -> None:
    texts = [
        "The PPA (Primary Planning Area) is shown on the map.",
        "Book the Project Planning Approval (PPA) early.",
        "A PPA, or project planning approval, takes two weeks.",
    ]
    assert long_forms("PPA", texts) == ["Project Planning Approval", "Primary Planning Area"]
    assert library_long_form("PPA", texts) == "Project Planning Approval"
    # Passages that disagree as often as they agree define nothing.
    assert library_long_form("PPA", texts[:2]) is None


def test_spell_out_adds_each_long_form_once_and_not_when_the_question_has_it() -> None:
    forms = {"BLUF": "bottom line up front"}
    assert spell_out("What's BLUF in emails?", forms) == "What's BLUF (bottom line up front) in emails?"
    assert spell_out("Is BLUF (bottom line up front) rude?", forms) == "Is BLUF (bottom line up front) rude?"


def test_an_acronym_question_is_answered_from_the_section_that_spells_it_out(pilot: CoursePilot) -> None:
    """ "What's BLUF in emails?" was refused: the section that teaches it is headed "Put the bottom line up front"
    and uses "BLUF" once. "What does RACI stand for?" quoted a lead-in to the list of RACI's variants."""
    assert (
        pilot.retriever.spell_out_acronyms("What's BLUF in emails?") == "What's BLUF (bottom line up front) in emails?"
    )
    bluf = pilot.ask("What's BLUF in emails?")
    assert not bluf.refused, bluf.text
    assert bluf.citations[0].location.section[-1] == "Put the bottom line up front"
    raci = pilot.ask("What does RACI stand for?")
    assert raci.citations[0].location.section[-1] == "The four RACI roles"
    for role in ("Responsible", "Accountable", "Consulted", "Informed"):
        assert role in raci.text


def test_spelling_out_can_be_switched_off(pilot: CoursePilot) -> None:
    settings = pilot.settings.retrieval.model_copy(update={"spell_out_acronyms": False})
    retriever = Retriever(pilot.index, settings)
    assert retriever.spell_out_acronyms("What's BLUF in emails?") == "What's BLUF in emails?"
    assert retriever.retrieve("What's BLUF in emails?").searched is None


def test_course_text_is_never_read_as_a_pattern() -> None:
    """A long form is spliced in as text: a backslash or a group reference in a course is not a regex pattern."""
    assert spell_out("What is SBI?", {"SBI": r"Sit\1 \g<0>"}) == r"What is SBI (Sit\1 \g<0>)?"
    assert long_forms("SBI", ["SBI (Situation-Behaviour-Impact) " + "SBI (Sit\\1) " * 10_000]) == [
        "Situation-Behaviour-Impact"
    ]
