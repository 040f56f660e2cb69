"""Unit tests of the chat UI's pure parts: rendering, sign-in rules, launch settings and the history data layer."""

from __future__ import annotations

import json
import os
import stat
import tomllib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import SAMPLE_LIBRARY, make_settings, postgres_url

from assistant.answering.answer import NO_ANSWER_TEXT
from assistant.apps.chat import ProgressView
from assistant.apps.ui import launch, learning_paths, render, replies
from assistant.core.errors import ConfigError, CoursePilotError
from assistant.core.types import Answer, Citation, CourseSuggestion, Location, Playlist, PlaylistItem
from assistant.pilot import FindResult
from assistant.planning.learners import LearnerStore, SavedPlaylist
from assistant.planning.passwords import hash_password

SBI = Location(
    course_id="giving-feedback",
    course_title="Giving and Receiving Feedback",
    module="02-the-sbi-model.pdf",
    module_title="The Situation-Behaviour-Impact model",
    section=("Putting it together",),
    page=2,
)
NOTES = Location(
    course_id="giving-feedback",
    course_title="Giving and Receiving Feedback",
    module="04-feedback-conversations-in-practice.txt",
    module_title="Feedback conversations in practice",
)


def citation(key: str, loc: Location, snippet: str = "SBI stands for Situation, Behaviour, Impact.") -> Citation:
    return Citation(key=key, location=loc, label=loc.label(), snippet=snippet, chunk_id=f"c{key}")


def answer(**kw: object) -> Answer:
    data: dict[str, object] = {
        "question": "What is SBI?",
        "standalone_question": "What is SBI?",
        "text": "SBI has three parts. [1] Practise it. [2]\n\nRead next: Giving and Receiving Feedback › X",
        "citations": [citation("1", SBI), citation("2", NOTES, "Practise with a colleague.")],
        "read_next": SBI,
    }
    data.update(kw)
    return Answer.model_validate(data)


def item(n: int, status: str = "todo", **kw: object) -> PlaylistItem:
    data: dict[str, object] = {
        "item_id": f"course-{n}/m{n}.md",
        "kind": "module",
        "title": f"Module {n}",
        "course_id": f"course-{n}",
        "level": "beginner",
        "minutes": 10 * n,
        "why": "Teaches coaching.",
        "status": status,
        "evidence": citation(str(n), SBI),
    }
    data.update(kw)
    return PlaylistItem.model_validate(data)


def playlist(*statuses: str) -> Playlist:
    items = [item(n, s) for n, s in enumerate(statuses, start=1)]
    return Playlist(goal="Become a better coach?", items=items, total_minutes=sum(i.minutes for i in items))


# -- answers ----------------------------------------------------------------------------------------------
def test_answer_lists_numbered_sources_with_pdf_page_and_one_read_next() -> None:
    rendered = render.render_answer(answer(), SAMPLE_LIBRARY, {"giving-feedback": "giving-feedback"})
    md = rendered.markdown
    assert md.count("Read next:") == 1
    assert "**Read next:** Giving and Receiving Feedback › The Situation-Behaviour-Impact model" in md
    assert "SBI has three parts. [1] Practise it. [2]" in md
    names = [s.name for s in rendered.sources]
    assert names == [
        "[1] Giving and Receiving Feedback › The Situation-Behaviour-Impact model › Putting it together (p. 2)",
        "02-the-sbi-model.pdf, p. 2",
        "[2] Giving and Receiving Feedback › Feedback conversations in practice",
    ]
    for name in names:  # Chainlit links an element only where its exact name appears in the message
        assert name in md
    text, pdf = rendered.sources[0], rendered.sources[1]
    assert text.kind == "text" and "> SBI stands for" in text.content and "**Page:** 2" in text.content
    assert "**Section:** Putting it together" in text.content
    assert pdf.kind == "pdf" and pdf.page == 2 and pdf.path == (SAMPLE_LIBRARY / "giving-feedback" / SBI.module)
    assert pdf.course_id == "giving-feedback" and pdf.module == SBI.module


def test_answer_shows_the_fallback_reason_and_skips_missing_pdfs() -> None:
    reason = "The AI model is unavailable (timeout), so this answer is quoted from the course text."
    rendered = render.render_answer(answer(fallback_reason=reason), library_dir=None)
    assert rendered.markdown.startswith(f"> ⚠ {reason}")
    assert [s.kind for s in rendered.sources] == ["text", "text"]


def test_refusal_is_plain_with_closest_courses() -> None:
    suggestion = CourseSuggestion(
        course_id="excel-pivot-tables", title="Excel Pivot Tables", level="intermediate", score=1.0, sections=[SBI]
    )
    refused = answer(refused=True, text=NO_ANSWER_TEXT + " The closest…", citations=[], suggestions=[suggestion])
    rendered = render.render_answer(refused)
    assert rendered.sources == []
    assert rendered.markdown.splitlines()[0] == NO_ANSWER_TEXT
    assert "- **Excel Pivot Tables** (intermediate) — The Situation-Behaviour-Impact model › Putting it together" in (
        rendered.markdown
    )


@pytest.mark.parametrize(
    "module", ["../excel-basics/x.pdf", "missing.pdf", "04-feedback-conversations-in-practice.txt"]
)
def test_pdf_path_stays_inside_the_course_folder(module: str) -> None:
    loc = SBI.model_copy(update={"module": module})
    assert render.pdf_path(loc, SAMPLE_LIBRARY, {}) is None


def test_pdf_path_uses_the_catalogue_folder(tmp_path: Path) -> None:
    folder = tmp_path / "Feedback Skills"
    folder.mkdir()
    (folder / SBI.module).write_bytes(b"%PDF-1.4")
    assert render.pdf_path(SBI, tmp_path, {"giving-feedback": "Feedback Skills"}) == folder / SBI.module
    assert render.pdf_path(SBI, tmp_path, {}) is None


# -- find, paths, progress --------------------------------------------------------------------------------
def test_find_lists_courses_and_where_they_teach_it() -> None:
    course = CourseSuggestion(
        course_id="giving-feedback",
        title="Giving and Receiving Feedback",
        level="beginner",
        score=2,
        sections=[SBI, SBI],
    )
    md = render.render_find(FindResult(query="Which course teaches SBI?", courses=[course]))
    assert "1. **Giving and Receiving Feedback** · beginner" in md
    assert md.count("Putting it together (p. 2)") == 1
    assert "couldn't find a course" in render.render_find(FindResult(query="x", courses=[]))


def test_playlist_checklist_counts_and_actions() -> None:
    path = playlist("done", "todo", "todo")
    md = learning_paths.render_playlist(path)
    assert "**1 of 3 done**" in md and learning_paths.progress_line(path) == "1 of 3 done"
    assert "1. [x] ~~Module 1~~ · 10 min" in md and "2. [ ] **Module 2** · 20 min" in md
    assert "Teaches coaching." in md and "Source: Giving and Receiving Feedback ›" in md
    actions = learning_paths.playlist_actions(path)
    assert [a.label for a in actions] == ["Mark step 2 done", "Mark step 3 done", "Save this path"]
    assert actions[0].payload == {"step": 2, "item_id": "course-2/m2.md"}
    assert [a.label for a in learning_paths.playlist_actions(path, saved=True)] == [
        "Mark step 2 done",
        "Mark step 3 done",
    ]
    assert "Saved to your paths" in learning_paths.render_playlist(path, saved=True)

    assert learning_paths.mark_done(path, "course-2/m2.md") and not learning_paths.mark_done(path, "nope")
    assert learning_paths.progress_line(path) == "2 of 3 done"
    learning_paths.apply_progress(path, {"course-3/m3.md"})
    assert [i.status for i in path.items] == ["todo", "todo", "done"]


def test_uncovered_playlist_says_so_without_actions() -> None:
    path = Playlist(goal="sourdough", covered=False, message="The library does not teach this yet.")
    assert learning_paths.render_playlist(path) == "The library does not teach this yet."
    assert learning_paths.playlist_actions(path) == []


def test_progress_shows_saved_paths_with_counts() -> None:
    saved = SavedPlaylist(
        id="p1",
        learner_id="ann",
        goal="coaching",
        created_at=datetime(2026, 1, 5, tzinfo=UTC),
        playlist=playlist("done", "todo"),
    )
    md = learning_paths.render_progress(ProgressView(learner_id="ann", completed=["course-1/m1.md"], playlists=[saved]))
    assert "You have completed 1 item." in md
    assert "1. **coaching** — 1 of 2 done · next: Module 2 · saved 05 Jan 2026" in md
    assert "haven't saved a learning path" in learning_paths.render_progress(ProgressView(learner_id="ann"))


# -- errors, limits, history ------------------------------------------------------------------------------
def test_errors_are_friendly_and_never_leak_details() -> None:
    text = replies.render_error(CoursePilotError("The question is empty.", "type a question."))
    assert text == "Sorry, I couldn't do that: The question is empty. Try this: type a question."
    leaked = replies.render_error(RuntimeError("Traceback: secret at /srv/db password=hunter2"))
    assert leaked == replies.GENERIC_ERROR and "hunter2" not in leaked
    assert "2,500 characters" in replies.too_long(2500, 2000) and "2,000" in replies.too_long(2500, 2000)


def test_history_from_resumed_steps_prefers_plain_answer_text() -> None:
    steps = [
        {"type": "run", "output": "ignored"},
        {"type": "user_message", "output": "What is SBI?"},
        {"type": "assistant_message", "output": "markdown + sources", "metadata": {"cp": {"history": "plain"}}},
        {"type": "assistant_message", "output": ""},
        {"type": "user_message", "output": "and GROW?"},
    ]
    turns = replies.history_turns(steps)
    assert [(t.role, t.content) for t in turns] == [
        ("user", "What is SBI?"),
        ("assistant", "plain"),
        ("user", "and GROW?"),
    ]
    assert len(replies.history_turns(steps, limit=1)) == 1


# -- sign-in ----------------------------------------------------------------------------------------------
def test_users_parse_and_authenticate() -> None:
    spec = f"ann:{hash_password('pw-ann')}:learner, lee:{hash_password('pw-lee')}:lnd,kim:{hash_password('k')}"
    users = launch.parse_users(spec)
    assert {u: e.role for u, e in users.items()} == {"ann": "learner", "lee": "lnd", "kim": "learner"}
    assert launch.authenticate(users, "lee", "pw-lee") == users["lee"]
    assert launch.authenticate(users, "lee", "pw-ann") is None
    assert launch.authenticate(users, "nobody", "pw-ann") is None
    assert "pw-" not in repr(users["ann"])


def test_demo_user_only_when_none_configured() -> None:
    users = launch.parse_users("  ")
    assert list(users) == ["demo"] and users["demo"].role == "learner"
    assert launch.authenticate(users, "demo", "demo") is not None
    assert launch.authenticate(users, "demo", "wrong") is None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("ann:plaintext:learner", "not an scrypt hash"),
        ("ann:scrypt$aa$bb:admin", "unknown role 'admin'"),
        ("ann:scrypt$aa$bb,ann:scrypt$aa$bb", "twice"),
        ("a n:scrypt$aa$bb", "not a valid user id"),
        ("ann", "is not 'id:scrypt-hash:role'"),
    ],
)
def test_bad_user_entries_name_the_problem(spec: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace("$", r"\$")):
        launch.parse_users(spec)


# -- launching --------------------------------------------------------------------------------------------
def test_settings_travel_to_the_server_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = make_settings(
        tmp_path,
        database={"url": "sqlite:///rel/cp.db"},
        chat={"api_key": "sk-secret"},
        index={"dir": "rel-index"},
    )
    data = json.loads(launch.settings_to_json(settings))
    assert data["chat"]["api_key"] == "sk-secret"
    assert data["index"]["dir"] == str(tmp_path / "rel-index")
    assert data["database"]["url"] == f"sqlite:///{tmp_path / 'rel' / 'cp.db'}"
    monkeypatch.setenv(launch.SETTINGS_ENV, launch.settings_to_json(settings))
    again = launch.settings_from_env()
    assert again.chat.api_key is not None and again.chat.api_key.get_secret_value() == "sk-secret"
    assert again.collection_name() == settings.collection_name()
    assert launch.absolute_database_url("postgresql+psycopg://u:p@h/db") == "postgresql+psycopg://u:p@h/db"


def test_auth_secret_is_configured_or_generated_once(tmp_path: Path) -> None:
    secret_file = tmp_path / ".coursepilot" / "auth_secret"
    configured = make_settings(tmp_path, ui={"auth_secret": "s" * 40})
    assert launch.auth_secret(configured, secret_file) == "s" * 40
    assert not secret_file.exists()
    settings = make_settings(tmp_path)
    first = launch.auth_secret(settings, secret_file)
    assert len(first) >= 40 and launch.auth_secret(settings, secret_file) == first
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600


def test_ui_process_command_env_and_project_folder(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ui={"auth_secret": "x" * 40, "port": 8123})
    spec = launch.ui_process(settings, headless=True)
    assert spec.argv[1:4] == ["-m", "chainlit", "run"] and spec.argv[4].endswith("assistant/apps/ui/app.py")
    assert spec.argv[-5:] == ["--host", "127.0.0.1", "--port", "8123", "--headless"]
    assert "--headless" not in launch.ui_process(settings, headless=False).argv
    assert spec.env["CHAINLIT_AUTH_SECRET"] == "x" * 40
    assert Path(spec.env["CHAINLIT_APP_ROOT"]) == spec.cwd
    assert (spec.cwd / "chainlit.md").is_file() and (spec.cwd / ".chainlit" / "config.toml").is_file()
    with pytest.raises(ConfigError):
        launch.ui_process(make_settings(tmp_path, ui={"users": "ann:pw"}))


def test_chainlit_config_disables_uploads_and_names_the_app() -> None:
    config = tomllib.loads((launch.PROJECT_ROOT / ".chainlit" / "config.toml").read_text())
    assert config["features"]["spontaneous_file_upload"]["enabled"] is False
    assert config["UI"]["name"] == "CoursePilot"
    assert config["UI"]["custom_js"] == "/public/coursepilot.js"
    for asset in ("coursepilot.css", "coursepilot.js", "logo_light.svg", "logo_dark.svg"):
        assert (launch.PROJECT_ROOT / "public" / asset).is_file()


# -- chat history data layer ------------------------------------------------------------------------------
def test_async_urls_and_schema_sql() -> None:
    from assistant.apps.ui.datalayer import async_url, create_table_sql

    assert async_url("sqlite:///x/cp.db") == "sqlite+aiosqlite:///x/cp.db"
    assert async_url("postgresql+psycopg://u:p@h:5432/db") == "postgresql+asyncpg://u:p@h:5432/db"
    assert async_url("postgres://u:p@h/db?sslmode=require") == "postgresql+asyncpg://u:p@h/db?ssl=require"
    with pytest.raises(ConfigError):
        async_url("mysql://u:p@h/db")
    pg = create_table_sql("steps", "postgresql")
    assert pg.startswith("CREATE TABLE IF NOT EXISTS steps") and '"id" UUID PRIMARY KEY' in pg
    assert '"tags" TEXT[]' in pg and '"autoCollapse" BOOLEAN' in pg
    assert '"metadata" TEXT' in create_table_sql("steps", "sqlite")


def test_resumed_steps_list_a_parent_before_its_children_at_the_same_instant() -> None:
    from assistant.apps.ui.datalayer import in_display_order

    at, later = "2026-11-29T10:00:00.000001Z", "2026-11-29T10:00:00.000002Z"
    # As PostgreSQL may return them: sorted by time, the tie in any order.
    steps = [
        {"id": "answer", "parentId": "run", "createdAt": at},
        {"id": "tool", "parentId": "answer", "createdAt": at},
        {"id": "run", "parentId": None, "createdAt": at},
        {"id": "next-run", "parentId": None, "createdAt": later},
        {"id": "orphan", "parentId": "gone", "createdAt": at},
    ]
    assert [s["id"] for s in in_display_order(steps)] == ["run", "orphan", "answer", "tool", "next-run"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_data_layer_keeps_threads_elements_and_feedback(tmp_path: Path, backend: str) -> None:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    if backend == "postgresql":
        found, reason = postgres_url()
        if found is None:
            pytest.skip(reason)
        url = found
    import chainlit as cl
    from chainlit.context import init_http_context
    from chainlit.types import Feedback
    from chainlit.user import User

    from assistant.apps.ui.datalayer import CoursePilotDataLayer, ensure_schema

    ensure_schema(url)  # idempotent
    layer = CoursePilotDataLayer(url)
    store = LearnerStore(url)
    try:
        ann_id = f"ann-{uuid.uuid4().hex[:8]}"  # fresh per run: a PostgreSQL database outlives the test
        ann = await layer.create_user(User(identifier=ann_id, metadata={"role": "learner"}))
        assert ann is not None and ann.metadata == {"role": "learner"}
        thread_id = str(uuid.uuid4())
        init_http_context(thread_id=thread_id)
        await layer.update_thread(thread_id, name="What is SBI?", user_id=ann.id, metadata={"k": 1}, tags=["t"])
        run_id, msg_id = str(uuid.uuid4()), str(uuid.uuid4())
        now = datetime.now(UTC).isoformat()
        await layer.create_step(
            {"id": run_id, "name": "on_message", "type": "run", "threadId": thread_id, "streaming": False,
             "createdAt": now, "autoCollapse": False, "defaultOpen": False, "metadata": {}}
        )  # fmt: skip
        await layer.create_step(
            {"id": msg_id, "name": "CoursePilot", "type": "assistant_message", "threadId": thread_id,
             "parentId": run_id, "streaming": False, "output": "SBI [1]", "createdAt": now,
             "metadata": {"cp": {"history": "SBI"}}, "modes": {"m": "x"}}
        )  # fmt: skip
        passage = cl.Text(name="[1] Feedback › SBI", content="> quoted passage", display="side", for_id=msg_id)
        passage.thread_id = thread_id
        await layer.create_element(passage)
        pdf = cl.Pdf(name="sbi.pdf, p. 2", url="/coursepilot/source/giving-feedback/sbi.pdf", page=2, for_id=msg_id)
        pdf.thread_id = thread_id
        await layer.create_element(pdf)

        thread = await layer.get_thread(thread_id)
        assert thread is not None and thread["userIdentifier"] == ann_id and thread["metadata"] == {"k": 1}
        assert thread["tags"] == ["t"]
        assert [s["id"] for s in thread["steps"]] == [run_id, msg_id]
        assert thread["steps"][1]["metadata"] == {"cp": {"history": "SBI"}}
        elements = {e["name"]: e for e in thread["elements"]}
        assert elements["[1] Feedback › SBI"]["url"].startswith("data:text/plain;charset=utf-8;base64,")
        assert elements["sbi.pdf, p. 2"]["url"] == "/coursepilot/source/giving-feedback/sbi.pdf"
        assert elements["sbi.pdf, p. 2"]["page"] == 2
        assert await layer.get_thread_author(thread_id) == ann_id

        entry = store.log_answer(
            Answer(question="What is SBI?", standalone_question="What is SBI?", text="SBI [1]"), ann_id, msg_id
        )
        # Chainlit rates the run that produced the message; thumbs down is 0 in Chainlit, -1 in the store.
        await layer.upsert_feedback(Feedback(forId=run_id, value=0, threadId=thread_id, comment="too short"))
        logged = next(q for q in store.questions(learner_id=ann_id) if q.id == entry)
        assert (logged.feedback, logged.feedback_comment) == (-1, "too short")
        assert await layer.record_feedback(msg_id, 1, thread_id=thread_id)
        assert next(q for q in store.questions(learner_id=ann_id) if q.id == entry).feedback == 1
        assert not await layer.record_feedback(msg_id, 0, thread_id=str(uuid.uuid4()))  # another thread's id
        assert not await layer.record_feedback(str(uuid.uuid4()), 0)
    finally:
        await layer.close()
