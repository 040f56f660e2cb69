"""The sample library end to end: answers, find-a-course, playlists, progress, the router and the CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from conftest import make_settings
from fake_openai import FakeOpenAIServer, Reply
from typer.testing import CliRunner

from assistant.apps.chat import ChatRouter, route
from assistant.apps.cli import app
from assistant.core.settings import Settings
from assistant.pilot import CoursePilot


def env_for(settings: Settings) -> dict[str, str]:
    return {
        "COURSEPILOT_INDEX_DIR": str(settings.index.dir),
        "COURSEPILOT_LIBRARY_DIR": str(settings.library.dir),
        "COURSEPILOT_DATABASE_URL": settings.database.url,
    }


@pytest.mark.parametrize(
    ("question", "course", "section_word"),
    [
        ("How do I refresh a pivot table?", "excel-pivot-tables", "refresh"),
        ("What are the steps of the GROW model?", "coaching-and-mentoring", "grow"),
        ("How long do we have to report a personal data breach?", "data-privacy-basics", "breach"),
        ("What does each letter in RACI stand for?", "working-across-teams", "raci"),
    ],
)
def test_answers_cite_the_right_course_and_section(
    pilot: CoursePilot, question: str, course: str, section_word: str
) -> None:
    answer = pilot.ask(question)
    assert not answer.refused, answer.text
    first = answer.citations[0].location
    assert first.course_id == course
    assert section_word in (first.section_title + " " + first.module_title).lower()


@pytest.mark.parametrize(
    "question",
    ["How do I write a VBA macro to automate a report?", "What is our company's parental leave policy?"],
)
def test_questions_outside_the_library_are_refused(pilot: CoursePilot, question: str) -> None:
    answer = pilot.ask(question)
    assert answer.refused and not answer.citations
    assert "couldn't find this in the course library" in answer.text


@pytest.mark.parametrize(
    ("covered", "uncovered"),
    [
        ("how to refresh pivot table pls, urgent!!", "pls how do I write a VBA macro, urgent"),
        ("hi! quick question: whats the SBI model?", "hi! quick question: whats our parental leave policy?"),
    ],
)
def test_chat_filler_neither_refuses_nor_rescues_a_question(pilot: CoursePilot, covered: str, uncovered: str) -> None:
    """Learners write "pls", "urgent", "quick question": words no course uses must not read as missing topics."""
    answer = pilot.ask(covered)
    assert not answer.refused, answer.text
    assert answer.citations[0].location.course_id in {"excel-pivot-tables", "giving-feedback"}
    assert pilot.ask(uncovered).refused


@pytest.mark.parametrize("apostrophe", ["'", "\u2019"])
def test_a_contracted_stop_word_is_not_a_search_term(pilot: CoursePilot, apostrophe: str) -> None:
    """ "What's" searched for "what" (a term only contractions leave in the index): a coaching passage full of
    "What's on your mind?" came first for "What's BLUF in emails?". "What’s" (phones type that apostrophe) was
    split into "what" and "s", a term every possessive in the library matches."""
    from assistant.core.text import tokenize

    assert tokenize(f"What{apostrophe}s BLUF? I don{apostrophe}t know, you{apostrophe}re right") == [
        "bluf",
        "not",
        "know",
        "right",
    ]
    assert tokenize(f"the manager{apostrophe}s view") == tokenize("the managers view")
    lists = pilot.retriever.candidates(f"What{apostrophe}s BLUF in emails?")
    best = pilot.index.ledger.get_chunks(lists.lexical.ids[:1])[lists.lexical.ids[0]]
    assert "bottom line up front" in best.text.lower()


def test_find_a_course_ranks_courses_with_sections(pilot: CoursePilot) -> None:
    result = pilot.find("Which course teaches pivot tables?")
    assert result.courses[0].course_id == "excel-pivot-tables"
    assert result.courses[0].sections and result.courses[0].sections[0].course_id == "excel-pivot-tables"


GOALS = [
    ("I want to get good at advanced Excel", "excel-power-query", None),
    ("build me a 3-hour path to become a better coach", "coaching-and-mentoring", 180),
    ("learn Python for data analysis", "python-for-analysts", None),
    ("I'm a new manager, what should I learn?", "first-time-manager", None),
    ("handle personal data safely at work", "data-privacy-basics", 120),
]


@pytest.mark.parametrize(("goal", "course", "budget"), GOALS)
def test_playlists_respect_prerequisites_and_budget(
    pilot: CoursePilot, goal: str, course: str, budget: int | None
) -> None:
    path = pilot.playlist(goal)
    assert path.covered and path.items
    assert course in {i.course_id for i in path.items}
    catalogue = pilot.catalogue()
    first_seen: dict[str, int] = {}
    for index, item in enumerate(path.items):
        first_seen.setdefault(item.course_id, index)
        assert item.why and item.evidence is not None and item.minutes > 0
        for pre in catalogue[item.course_id].prerequisites:
            if pre in first_seen or pre in {i.course_id for i in path.items}:
                assert first_seen[pre] < first_seen[item.course_id]
    if budget:
        assert path.total_minutes <= budget


def test_progress_persists_and_changes_the_next_playlist(sample_settings: Settings, tmp_path: Path) -> None:
    settings = sample_settings.model_copy(update={"database": make_settings(tmp_path).database})
    pilot = CoursePilot(settings)
    before = pilot.playlist("I want to get good at advanced Excel", learner_id="ana")
    first = before.items[0].item_id
    CoursePilot(settings).learners.set_progress("ana", first)
    after = CoursePilot(settings).playlist("I want to get good at advanced Excel", learner_id="ana")
    assert first not in {i.item_id for i in after.items} and first in after.skipped_done
    assert (
        CoursePilot(settings).playlist("I want to get good at advanced Excel", learner_id="bo").items[0].item_id
        == first
    )


def test_uncovered_goal_lists_closest_material_and_no_items(pilot: CoursePilot) -> None:
    path = pilot.playlist("become a certified Kubernetes administrator")
    assert not path.covered and not path.items
    assert "does not teach this yet" in path.message


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("How do I refresh a pivot table?", "question"),
        ("Which course teaches pivot tables?", "find"),
        ("Where can I learn about GDPR?", "find"),
        ("Build me a 3-hour path to become a better coach", "playlist"),
        ("I want to get good at advanced Excel", "playlist"),
        ("Show my progress", "progress"),
    ],
)
def test_rule_router(message: str, intent: str) -> None:
    assert route(message) == intent


def test_model_router_uses_langchain_tools(sample_settings: Settings, fake_openai: FakeOpenAIServer) -> None:
    chat = sample_settings.chat.model_copy(
        update={"provider": "openai", "base_url": fake_openai.base_url, "api_key": "k", "max_retries": 0}
    )
    pilot = CoursePilot(sample_settings.model_copy(update={"chat": chat}))
    fake_openai.script(Reply.tool("build_learning_path", {"goal": "coaching"}))
    intent, text, routed_by = ChatRouter(pilot).choose("can you sort me out with something on coaching")
    assert (intent, text, routed_by) == ("playlist", "coaching", "model")
    tools = {t["function"]["name"] for t in fake_openai.last_request["body"]["tools"]}
    assert tools == {"ask_library", "find_course", "build_learning_path", "show_progress"}
    fake_openai.script(Reply.error(500))
    assert ChatRouter(pilot).choose("Which course teaches pivot tables?")[2] == "rules"


def test_model_intro_cannot_change_the_planned_items(sample_settings: Settings, fake_openai: FakeOpenAIServer) -> None:
    plain = CoursePilot(sample_settings).playlist("I want to get good at advanced Excel")
    chat = sample_settings.chat.model_copy(
        update={"provider": "openai", "base_url": fake_openai.base_url, "api_key": "k", "max_retries": 0}
    )
    fake_openai.script("Welcome! 1. Skip everything and do Kubernetes instead. 2. Reorder as you like.")
    with_model = CoursePilot(sample_settings.model_copy(update={"chat": chat})).playlist(
        "I want to get good at advanced Excel"
    )
    assert with_model.intro and "Welcome" in with_model.intro
    assert [i.item_id for i in with_model.items] == [i.item_id for i in plain.items]
    assert "must not change" in fake_openai.last_prompt()


def test_cli_commands_speak_json_and_csv(sample_settings: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    env = env_for(sample_settings) | {"COURSEPILOT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    asked = runner.invoke(app, ["ask", "How do I refresh a pivot table?", "--json"], env=env)
    assert asked.exit_code == 0, asked.output
    payload = json.loads(asked.stdout)
    assert {"text", "citations", "refused", "evidence", "timings_ms", "standalone_question"} <= payload.keys()
    found = runner.invoke(app, ["find", "Which course teaches pivot tables?", "--json"], env=env)
    assert json.loads(found.stdout)["courses"][0]["course_id"] == "excel-pivot-tables"
    planned = runner.invoke(app, ["playlist", "advanced Excel", "--csv", "--minutes", "300"], env=env)
    rows = list(csv.DictReader(io.StringIO(planned.stdout)))
    assert rows and sum(int(r["minutes"]) for r in rows) <= 300
    done = runner.invoke(app, ["progress", "ana", "--done", rows[0]["item_id"], "--json"], env=env)
    assert [p["item_id"] for p in json.loads(done.stdout)["progress"]] == [rows[0]["item_id"]]
    markdown = runner.invoke(app, ["playlist", "advanced Excel", "--learner", "ana", "--markdown"], env=env)
    assert markdown.exit_code == 0 and rows[0]["item_id"] not in markdown.stdout
    bad = runner.invoke(app, ["playlist", "advanced Excel", "--level", "expert", "--json"], env=env)
    assert bad.exit_code == 2 and "beginner" in json.loads(bad.stdout)["fix"]
