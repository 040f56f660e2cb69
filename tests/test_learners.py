"""The learner store on real SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import postgres_url

from assistant.core.errors import ConfigError, NotFoundError
from assistant.core.types import Answer, Citation, Location, Playlist, PlaylistItem
from assistant.planning.learners import LearnerStore
from assistant.planning.passwords import hash_password, verify_password


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LearnerStore]:
    if request.param == "sqlite":
        yield LearnerStore(f"sqlite:///{tmp_path / 'learners.db'}")
        return
    url, reason = postgres_url()
    if url is None:
        pytest.skip(reason)
    yield LearnerStore(url)


def _uid() -> str:
    return f"learner-{uuid.uuid4().hex[:8]}"


def _playlist(goal: str) -> Playlist:
    loc = Location(course_id="c", course_title="C", module="m.md", module_title="M")
    items = [
        PlaylistItem(
            item_id=f"c/m{i}.md",
            kind="module",
            title=f"M{i}",
            course_id="c",
            level="beginner",
            minutes=10,
            location=loc,
            why="because",
        )
        for i in range(3)
    ]
    return Playlist(goal=goal, items=items, total_minutes=30)


def test_progress_persists_and_is_per_learner(store: LearnerStore) -> None:
    alice, bob = _uid(), _uid()
    store.set_progress(alice, "c/m0.md")
    store.set_progress(alice, "c/m1.md")
    store.set_progress(alice, "c/m1.md", done=False)
    assert store.completed(alice) == {"c/m0.md"}
    assert store.completed(bob) == set()
    reopened = LearnerStore(store.url)
    assert reopened.completed(alice) == {"c/m0.md"}


def test_saved_playlists_show_progress_and_stay_private(store: LearnerStore) -> None:
    alice, bob = _uid(), _uid()
    saved = store.save_playlist(alice, _playlist("coaching"))
    store.set_progress(alice, "c/m1.md")
    (mine,) = store.playlists(alice)
    assert mine.id == saved.id
    assert [i.status for i in mine.playlist.items] == ["todo", "done", "todo"]
    assert store.playlists(bob) == []
    with pytest.raises(NotFoundError):
        store.get_playlist(bob, saved.id)


def test_question_log_and_feedback_belong_to_the_asker(store: LearnerStore) -> None:
    alice, bob = _uid(), _uid()
    loc = Location(course_id="c", course_title="C", module="m.md", module_title="M", page=2)
    answer = Answer(
        question="q?",
        standalone_question="q?",
        text="a [1]",
        citations=[Citation(key="1", location=loc, label=loc.label(), snippet="s", chunk_id="x")],
        top_score=0.7,
        timings_ms={"total": 12.5},
    )
    entry = store.log_answer(answer, learner_id=alice, message_id=f"msg-{alice}")
    assert not store.set_feedback(bob, -1, entry_id=entry)
    assert store.set_feedback(alice, -1, message_id=f"msg-{alice}", comment="wrong page")
    (logged,) = store.questions(learner_id=alice)
    assert logged.feedback == -1 and logged.feedback_comment == "wrong page"
    assert logged.citations[0]["page"] == 2 and logged.latency_ms == 12.5


def test_schema_version_is_recorded(store: LearnerStore) -> None:
    assert store.schema_version() >= 1


def test_bad_database_url_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        LearnerStore("postgresql+psycopg://nobody:s3cret@127.0.0.1:1/none")
    assert "COURSEPILOT_DATABASE_URL" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_password_hashes_verify_and_differ() -> None:
    first, second = hash_password("pw"), hash_password("pw")
    assert first != second
    assert verify_password("pw", first) and not verify_password("nope", first)
