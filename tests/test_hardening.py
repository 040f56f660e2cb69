"""Load through the API, secrets kept out of logs and errors, and settings that fail clearly."""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ROOT, make_settings
from fake_openai import FakeOpenAIServer, Reply

from assistant.core.settings import Settings
from assistant.pilot import CoursePilot

SECRET = "sk-live-DO-NOT-LEAK-4242"


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """`coursepilot ARGS` in a fresh process with exactly `env`, as a user's shell would run it."""
    return subprocess.run(
        [sys.executable, "-m", "assistant.apps.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


QUESTIONS = [
    "How do I refresh a pivot table?",
    "What does SBI stand for in feedback?",
    "How often should I hold one-on-ones?",
    "What counts as personal data?",
    "How do I remove duplicate rows in Power Query?",
    "What is the GROW model?",
    "How do I freeze the top row in Excel?",
    "What should I do after a data breach?",
    "How do I install pandas?",
    "What does RACI stand for?",
]


@pytest.mark.slow
def test_twenty_concurrent_asks_have_no_errors_and_no_cross_talk(pilot: CoursePilot) -> None:
    pilot.warm_up()
    jobs = [QUESTIONS[i % len(QUESTIONS)] + f" (learner {i})" for i in range(20)]

    def one(question: str) -> tuple[str, float, str | None]:
        start = time.perf_counter()
        try:
            answer = pilot.ask(question)
        except Exception as exc:  # recorded, then asserted on below
            return question, time.perf_counter() - start, repr(exc)
        # Cross-talk check: the answer is about the question that was asked.
        return answer.question, time.perf_counter() - start, None if answer.question == question else "cross-talk"

    with ThreadPoolExecutor(max_workers=20) as pool:
        started = time.perf_counter()
        results = list(pool.map(one, jobs))
        wall = time.perf_counter() - started
    errors = [r for r in results if r[2] is not None]
    latencies = sorted(r[1] * 1000 for r in results)
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    record = {"calls": 20, "errors": len(errors), "p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "wall_s": wall}
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    (ROOT / "test-artifacts" / "load-api.json").write_text(json.dumps(record, indent=2))
    print("API load:", record)
    assert not errors, errors
    assert sorted(r[0] for r in results) == sorted(jobs)


def test_api_key_never_reaches_logs_or_messages(
    sample_settings: Settings, fake_openai: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openai.script(Reply.error(401), Reply.error(500), Reply.error(500), Reply.error(500))
    chat = sample_settings.chat.model_copy(
        update={
            "provider": "openai",
            "base_url": fake_openai.base_url,
            "api_key": SECRET,
            "max_retries": 1,
            "timeout_s": 2.0,
        }
    )
    pilot = CoursePilot(sample_settings.model_copy(update={"chat": chat}))
    with caplog.at_level(logging.DEBUG):
        first = pilot.ask("How do I refresh a pivot table?")
        second = pilot.ask("How do I refresh a pivot table with Alt+F5?")
    assert first.fallback_reason and "not authorised" in first.fallback_reason
    assert second.fallback_reason and "HTTP 500" in second.fallback_reason
    dumped = first.model_dump_json() + second.model_dump_json() + caplog.text
    assert SECRET not in dumped
    assert fake_openai.chat_requests()[0]["headers"]["authorization"] == f"Bearer {SECRET}"


def test_config_command_masks_secrets(tmp_path: Path) -> None:
    env = {
        "COURSEPILOT_CHAT_API_KEY": SECRET,
        "COURSEPILOT_XAPI_PASSWORD": SECRET,
        "COURSEPILOT_INDEX_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    result = run_cli(["config", "--json"], env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["COURSEPILOT_CHAT_API_KEY"]["value"] == "**********"
    assert values["COURSEPILOT_INDEX_DIR"]["value"] == str(tmp_path)
    assert SECRET not in result.stdout + result.stderr
    assert all(v["description"] for v in values.values())


def test_invalid_setting_names_the_variable(tmp_path: Path) -> None:
    env = {"COURSEPILOT_RETRIEVAL_K": "lots", "PATH": "/usr/bin:/bin"}
    result = run_cli(["config"], env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "COURSEPILOT_RETRIEVAL_K" in result.stderr and "Traceback" not in result.stderr


def test_ask_before_ingest_says_what_to_run(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    env = {"COURSEPILOT_INDEX_DIR": str(settings.index.dir), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    result = run_cli(["ask", "What is a pivot table?", "--json"], env, cwd=ROOT, timeout=300)
    assert result.returncode == 2
    payload = json.loads(result.stdout)
    assert "coursepilot ingest" in payload["fix"] and "Traceback" not in result.stderr


def test_unwritable_model_cache_is_named_with_a_fix(tmp_path: Path) -> None:
    """The int8 export is written once; a cache folder that cannot be created gets a message, not a traceback."""
    library = tmp_path / "library" / "team-notes"
    library.mkdir(parents=True)
    (library / "notes.md").write_text("# Notes\n\nFeedback works best when it is specific and timely.\n")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    env = {
        "PATH": "/usr/bin:/bin",
        "HF_HUB_OFFLINE": "1",
        "COURSEPILOT_INDEX_DIR": str(tmp_path / "index"),
        "COURSEPILOT_EMBEDDING_CACHE_DIR": str(blocker / "onnx"),
    }
    result = run_cli(["ingest", str(tmp_path / "library"), "--json"], env, cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    payload = json.loads(result.stdout)
    assert str(blocker / "onnx") in payload["error"] and "COURSEPILOT_EMBEDDING_CACHE_DIR" in payload["fix"]
    assert "Traceback" not in result.stdout + result.stderr


def test_a_damaged_ledger_is_named_with_how_to_rebuild(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    ledger = Path(settings.index.dir) / settings.collection_name() / "ledger.sqlite"
    ledger.parent.mkdir(parents=True)
    ledger.write_bytes(b"this is not a database" * 100)
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "COURSEPILOT_INDEX_DIR": str(settings.index.dir)}
    result = run_cli(["ask", "What is SBI?", "--json"], env, cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    payload = json.loads(result.stdout)
    assert str(ledger) in payload["error"] and "ingest --full" in payload["fix"]
    assert "Traceback" not in result.stdout + result.stderr


def test_an_unexpected_error_is_one_line_with_exit_code_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A bug never shows the user a traceback: one line and a fix on stderr, exit 4, the trace in the debug log."""
    from assistant.apps import cli

    def broken() -> None:
        raise RuntimeError("an invariant broke")

    monkeypatch.setattr(cli, "app", broken)
    with caplog.at_level(logging.DEBUG, logger="coursepilot"), pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 4
    err = capsys.readouterr().err
    assert "Unexpected error" in err and "an invariant broke" in err and "COURSEPILOT_LOG_LEVEL=DEBUG" in err
    assert "Traceback" not in err
    assert any(record.exc_info for record in caplog.records)
