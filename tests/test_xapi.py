"""xAPI: statement shape and validation, delivery to a local LRS stand-in, outages, restarts, secrets."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, make_settings
from pydantic import SecretStr

from assistant.core.settings import XAPISettings
from assistant.core.types import Answer, Citation, Location, Playlist, PlaylistItem
from assistant.integrations.xapi import (
    VERB_ANSWERED,
    VERB_ASKED,
    VERB_COMPLETED,
    VERB_SAVED,
    StatementFactory,
    XAPIClient,
    XAPIRecorder,
    emit_for_answer,
    validate_statement,
)
from assistant.planning.learners import SavedPlaylist

USER = "lrs-user"
PASSWORD = "pw-Zq8!sekret-7731"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
FAST: dict[str, Any] = {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "poll_s": 0.05, "timeout_s": 2.0}


class Receiver:
    """A tiny LRS: records POSTed statements; can answer 500, reject marked statements, or be switched off."""

    def __init__(self, password: str = PASSWORD) -> None:
        self.expected_auth = "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode()
        self.statements: list[dict[str, Any]] = []
        self.requests: list[dict[str, str | None]] = []
        self.fail = False
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/xapi"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "auth": self.headers.get("Authorization"),
                            "version": self.headers.get("X-Experience-API-Version"),
                        }
                    )
                if self.path != "/xapi/statements":
                    return self._reply(404, {"error": "not found"})
                if self.headers.get("Authorization") != receiver.expected_auth:
                    return self._reply(401, {"error": "unauthorised"})
                if receiver.fail:
                    return self._reply(500, {"error": "LRS down for maintenance"})
                payload = json.loads(body)
                batch = payload if isinstance(payload, list) else [payload]
                if any("reject-me" in s["object"]["id"] for s in batch):
                    return self._reply(400, {"error": "invalid statement"})
                with receiver.lock:
                    receiver.statements.extend(batch)
                self._reply(200, [s["id"] for s in batch])

            def _reply(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def ids(self) -> list[str]:
        with self.lock:
            return [s["id"] for s in self.statements]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def xapi_settings(endpoint: str, password: str = PASSWORD) -> XAPISettings:
    return XAPISettings(endpoint=endpoint, username=USER, password=SecretStr(password))


def sample_answer(refused: bool = False) -> Answer:
    location = Location(
        course_id="excel-basics",
        course_title="Excel Basics",
        module="02-formulas-and-references.pdf",
        module_title="Formulas and cell references",
        section=("Absolute references",),
        page=2,
    )
    citation = Citation(
        key="1", location=location, label=location.label(), snippet="Press F4 to add dollar signs.", chunk_id="c1"
    )
    return Answer(
        question="How do I lock a cell reference?",
        standalone_question="How do I lock a cell reference?",
        text="Put a dollar sign before the column and row, or press F4 [1].",
        citations=[] if refused else [citation],
        refused=refused,
        top_score=0.71,
        timings_ms={"total": 123.4},
    )


def sample_saved() -> SavedPlaylist:
    items = [
        PlaylistItem(
            item_id="excel-basics/01-getting-around-the-workbook.md",
            kind="module",
            title="Getting around the workbook",
            course_id="excel-basics",
            level="beginner",
            minutes=25,
            why="Basics first.",
        ),
        PlaylistItem(
            item_id="excel-pivot-tables",
            kind="course",
            title="Excel Pivot Tables",
            course_id="excel-pivot-tables",
            level="intermediate",
            minutes=120,
            why="Teaches pivots.",
        ),
    ]
    playlist = Playlist(goal="Get good at Excel reporting", items=items, total_minutes=145)
    return SavedPlaylist(
        id="abc123", learner_id="alice", goal=playlist.goal, created_at=datetime.now(UTC), playlist=playlist
    )


def make_statements(factory: StatementFactory, n: int, tag: str = "q") -> list[dict[str, Any]]:
    return [factory.asked(f"learner-{i % 3}", f"Question {tag} {i}?") for i in range(n)]


def wait_for(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


# ------------------------------------------------------------------------------------------------ statements


def test_every_statement_kind_is_valid_xapi() -> None:
    factory = StatementFactory("https://learn.example.org/cp")
    answer = sample_answer()
    asked = factory.asked("alice", answer.question)
    answered = factory.answered("alice", answer, asked["id"])
    refused = factory.answered("alice", sample_answer(refused=True))
    completed = factory.completed("alice", "excel-basics/02-formulas-and-references.pdf", "Formulas", "Excel Basics")
    saved = factory.saved_path("alice", "abc123", sample_saved().playlist)
    for stmt in (asked, answered, refused, completed, saved):
        assert validate_statement(stmt) == [], stmt
        assert stmt["version"] == "1.0.3"
        assert stmt["actor"] == {
            "objectType": "Agent",
            "account": {"homePage": "https://learn.example.org/cp", "name": "alice"},
        }
        assert stmt["context"]["platform"] == "CoursePilot"
        assert stmt["object"]["id"].startswith("https://learn.example.org/cp/")
        assert stmt["verb"]["display"]["en-US"]
        assert datetime.fromisoformat(stmt["timestamp"]).tzinfo is not None
    assert [s["verb"]["id"] for s in (asked, answered, completed, saved)] == [
        VERB_ASKED,
        VERB_ANSWERED,
        VERB_COMPLETED,
        VERB_SAVED,
    ]
    # The same question is the same activity, so an LRS can count how often it is asked.
    assert asked["object"]["id"] == answered["object"]["id"] == factory.asked("bob", answer.question)["object"]["id"]
    assert answered["result"]["success"] is True and "F4" in answered["result"]["response"]
    assert answered["context"]["statement"] == {"objectType": "StatementRef", "id": asked["id"]}
    assert answered["context"]["contextActivities"]["other"][0]["id"].endswith(
        "/courses/excel-basics/modules/02-formulas-and-references.pdf"
    )
    assert refused["result"]["success"] is False
    assert completed["result"] == {"completion": True}
    assert completed["context"]["contextActivities"]["parent"][0]["id"].endswith("/courses/excel-basics")
    assert saved["object"]["definition"]["name"] == {"en-US": "Get good at Excel reporting"}
    assert len(saved["context"]["contextActivities"]["other"]) == 2


def _broken(change: Any) -> dict[str, Any]:
    stmt = StatementFactory().answered("alice", sample_answer())
    change(stmt)
    return stmt


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.pop("actor"), "actor: required"),
        (lambda s: s.pop("verb"), "verb: required"),
        (lambda s: s.pop("object"), "object: required"),
        (lambda s: s["verb"].update(id="asked"), "verb.id"),
        (lambda s: s.update(id="not-a-uuid"), "id: must be a UUID"),
        (lambda s: s.update(timestamp="yesterday at noon"), "timestamp: must be an ISO 8601"),
        (lambda s: s.update(timestamp="2024-05-01T09:30:00"), "time zone"),
        (lambda s: s["actor"].update(mbox="mailto:alice@example.com"), "exactly one of"),
        (lambda s: s.update(actor={"objectType": "Agent", "mbox": "alice@example.com"}), "actor.mbox"),
        (lambda s: s["actor"]["account"].pop("homePage"), "actor.account.homePage"),
        (lambda s: s["actor"]["account"].update(homePage="coursepilot"), "actor.account.homePage"),
        (lambda s: s.update(actor={"objectType": "Group"}), "anonymous Group"),
        (lambda s: s["object"].update(objectType="Thing"), "object.objectType"),
        (lambda s: s["object"].update(id="question 1"), "object.id"),
        (lambda s: s["object"]["definition"].update(name="a question"), "definition.name"),
        (lambda s: s["result"].update(duration="5 seconds"), "result.duration"),
        (lambda s: s["result"].update(success="yes"), "result.success"),
        (lambda s: s["context"].update(registration="r1"), "context.registration"),
        (lambda s: s.update(object={"objectType": "StatementRef", "id": "x"}), "StatementRef"),
        (lambda s: s.update(object={"objectType": "Agent", "name": "Bob"}), "exactly one of"),
        (lambda s: s.update(version="2.0.0"), "version"),
        (lambda s: s.update(mood="happy"), "unknown properties"),
        (lambda s: s["result"].update(score={"scaled": 1.5}), "result.score.scaled"),
        (lambda s: s["context"].update(contextActivities={"cousins": []}), "context.contextActivities"),
        (lambda s: s["context"].update(instructor={"objectType": "Robot"}), "context.instructor.objectType"),
        (lambda s: s.update(object={**s["actor"], "objectType": "SubStatement"}), "object.verb: required"),
    ],
)
def test_validation_catches_spec_violations(change: Any, expected: str) -> None:
    problems = validate_statement(_broken(change))
    assert any(expected in p for p in problems), problems


def test_validation_accepts_other_agent_identifiers_and_substatements() -> None:
    base = StatementFactory().asked("alice", "What is SBI?")
    for actor in (
        {"mbox": "mailto:alice@example.com"},
        {"mbox_sha1sum": "a" * 40, "name": "Alice"},
        {"openid": "https://id.example.com/alice"},
        {"objectType": "Group", "member": [{"mbox": "mailto:a@example.com"}]},
    ):
        assert validate_statement({**base, "actor": actor}) == [], actor
    sub = {
        "objectType": "SubStatement",
        "actor": base["actor"],
        "verb": base["verb"],
        "object": base["object"],
    }
    without_platform = {k: v for k, v in base.items() if k != "context"}
    assert validate_statement({**without_platform, "object": sub}) == []
    # platform/revision describe an Activity: with another kind of object they are an error.
    assert any("context.platform" in p for p in validate_statement({**base, "object": sub}))
    assert (
        validate_statement({"actor": base["actor"], "verb": base["verb"], "object": {"id": "https://x.example/a"}})
        == []
    )


# ------------------------------------------------------------------------------------------------ delivery


def test_recorder_delivers_with_basic_auth_and_version_header(tmp_path: Path, receiver: Receiver) -> None:
    client = XAPIClient(xapi_settings(receiver.endpoint), tmp_path / "queue.sqlite", **FAST)
    recorder = XAPIRecorder(client, "https://learn.example.org/cp")
    asked_id, answered_id = recorder.answer("alice", sample_answer())
    done_id = recorder.completed("alice", "excel-basics/01-getting-around-the-workbook.md", "Getting around")
    saved_id = recorder.saved_path("alice", sample_saved())
    assert recorder.asked(None, "anonymous questions are not recorded") is None
    assert client.flush(10)
    assert recorder.close(2)

    got = {s["id"]: s for s in receiver.statements}
    assert set(got) == {asked_id, answered_id, done_id, saved_id}
    for stmt in got.values():
        assert validate_statement(stmt) == []
    assert got[answered_id]["context"]["statement"]["id"] == asked_id
    assert got[asked_id]["timestamp"] <= got[answered_id]["timestamp"]
    assert {r["auth"] for r in receiver.requests} == {f"Basic {TOKEN}"}
    assert {r["version"] for r in receiver.requests} == {"1.0.3"}
    assert {r["path"] for r in receiver.requests} == {"/xapi/statements"}
    assert emit_for_answer(XAPIClient(XAPISettings()), "alice", sample_answer()) == (None, None)


def test_outage_then_recovery_delivers_every_statement_exactly_once(tmp_path: Path, receiver: Receiver) -> None:
    factory = StatementFactory()
    client = XAPIClient(xapi_settings(receiver.endpoint), tmp_path / "queue.sqlite", **FAST)
    sent: list[str] = []

    receiver.fail = True  # the LRS answers 500
    sent += [client.enqueue(s) for s in make_statements(factory, 10, "a")]  # type: ignore[misc]
    assert wait_for(lambda: len(receiver.requests) >= 2)  # tried, failed, retried
    receiver.stop()  # now connections are refused
    sent += [client.enqueue(s) for s in make_statements(factory, 15, "b")]  # type: ignore[misc]
    assert not client.flush(0.5)
    assert client.pending() == 25
    assert client.last_error and ("ConnectError" in client.last_error or "HTTP 500" in client.last_error)
    assert receiver.statements == []

    receiver.fail = False
    receiver.start()  # same port
    assert client.flush(15)
    assert client.pending() == 0
    ids = receiver.ids()
    assert len(ids) == len(set(ids)) == 25
    assert set(ids) == set(sent)
    client.close(1)


def test_statements_left_by_a_crashed_process_are_sent_by_the_next(tmp_path: Path, receiver: Receiver) -> None:
    queue = tmp_path / "queue.sqlite"
    endpoint = receiver.endpoint
    receiver.stop()  # the LRS is down while the first process runs
    child = f"""
import json, os, sys
from pydantic import SecretStr
from assistant.core.settings import XAPISettings
from assistant.integrations.xapi import StatementFactory, XAPIClient
client = XAPIClient(XAPISettings(endpoint={endpoint!r}, username={USER!r}, password=SecretStr({PASSWORD!r})),
                    {str(queue)!r}, backoff_base_s=0.05, backoff_max_s=0.2)
f = StatementFactory()
ids = [client.enqueue(f.asked("alice", f"Question {{i}}?")) for i in range(6)]
print(json.dumps(ids), flush=True)
os._exit(0)  # no flush, no close: as if the process was killed
"""
    out = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    queued = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(queued) == 6

    receiver.start()
    client = XAPIClient(xapi_settings(endpoint), queue, **FAST)
    assert client.flush(30)  # a lease the killed process held expires within timeout + 10 s
    ids = receiver.ids()
    assert sorted(ids) == sorted(queued) and len(ids) == len(set(ids))
    client.close(1)


def test_new_client_on_the_same_queue_file_sends_what_the_first_left(tmp_path: Path, receiver: Receiver) -> None:
    queue = tmp_path / "queue.sqlite"
    receiver.stop()
    first = XAPIClient(xapi_settings(receiver.endpoint), queue, **FAST)
    queued = [first.enqueue(s) for s in make_statements(StatementFactory(), 5)]
    assert not first.close(0.2)  # could not deliver: stays on disk
    receiver.start()
    second = XAPIClient(xapi_settings(receiver.endpoint), queue, **FAST)
    assert second.pending() == 5
    assert second.flush(10)
    assert sorted(receiver.ids()) == sorted(queued)  # type: ignore[type-var]
    second.close(1)


def test_a_statement_the_lrs_rejects_is_kept_aside_and_the_rest_delivered(tmp_path: Path, receiver: Receiver) -> None:
    client = XAPIClient(xapi_settings(receiver.endpoint), tmp_path / "queue.sqlite", start=False, **FAST)
    factory = StatementFactory()
    good = make_statements(factory, 3)
    bad = factory.statement("alice", VERB_ASKED, {"objectType": "Activity", "id": "https://x.example/reject-me"})
    client.enqueue_many([good[0], bad, *good[1:]])
    client.start()
    assert client.flush(10)
    assert sorted(receiver.ids()) == sorted(s["id"] for s in good)
    (rejected,) = client.rejected()
    assert rejected["id"] == bad["id"] and "HTTP 400" in rejected["last_error"]
    client.close(1)


def test_invalid_statements_are_refused_before_queueing(tmp_path: Path, receiver: Receiver) -> None:
    client = XAPIClient(xapi_settings(receiver.endpoint), tmp_path / "queue.sqlite", **FAST)
    with pytest.raises(ValueError, match=r"verb\.id"):
        client.enqueue({"actor": {"mbox": "mailto:a@example.com"}, "verb": {"id": "asked"}, "object": {"id": "x:y"}})
    assert client.pending() == 0
    client.close(1)


def test_password_never_appears_in_logs_or_errors(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    # Wrong credentials (401: retried, not dropped), then the LRS goes away (connection refused).
    wrong = Receiver(password="something-else")
    client = XAPIClient(xapi_settings(wrong.endpoint), tmp_path / "q1.sqlite", **FAST)
    client.enqueue(StatementFactory().asked("alice", "What is SBI?"))
    assert not client.flush(0.4)
    errors.append(str(client.last_error))
    assert "HTTP 401" in str(client.last_error)
    wrong.stop()
    assert not client.flush(0.4)
    errors.append(str(client.last_error))
    errors.append(repr(client))
    try:
        client.enqueue({"actor": {}, "verb": {}, "object": {}})
    except ValueError as exc:
        errors.append(str(exc))
    client.close(0)

    # Credentials in the endpoint URL are taken out of it and used as basic auth.
    in_url = receiver.endpoint.replace("http://", f"http://{USER}:{PASSWORD}@")
    url_client = XAPIClient(XAPISettings(endpoint=in_url), tmp_path / "q2.sqlite", **FAST)
    assert PASSWORD not in url_client.endpoint
    url_client.enqueue(StatementFactory().asked("alice", "What is SBI?"))
    assert url_client.flush(10)
    assert receiver.requests[-1]["auth"] == f"Basic {TOKEN}"
    receiver.stop()
    url_client.enqueue(StatementFactory().asked("alice", "What is GROW?"))
    assert not url_client.flush(0.4)
    errors.append(str(url_client.last_error))
    url_client.close(0)

    assert any(r.name == "assistant.integrations.xapi" for r in caplog.records)  # the outage was logged...
    text = caplog.text + "\n".join(errors)
    assert PASSWORD not in text and TOKEN not in text  # ...without the secret


def test_disabled_without_an_endpoint(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    client = XAPIClient(settings)
    assert not client.enabled
    assert client.queue_path == tmp_path / "xapi_queue.sqlite"
    recorder = XAPIRecorder(client)
    assert recorder.answer("alice", sample_answer()) == (None, None)
    assert recorder.saved_path("alice", sample_saved()) is None
    assert client.enqueue(StatementFactory().asked("alice", "Hi?")) is None
    assert client.flush(0.1) and client.close(0.1)
    assert not client.queue_path.exists()
    enabled = XAPIClient(make_settings(tmp_path, xapi={"endpoint": "http://127.0.0.1:9/xapi"}), start=False)
    assert enabled.enabled and enabled.queue_path == tmp_path / "xapi_queue.sqlite"
