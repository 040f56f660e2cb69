"""Shared fixtures: settings in temp dirs, an ingested sample library, a real Chroma server, the fake model."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["ANONYMIZED_TELEMETRY"] = "False"
# Settings must come from what the tests pass in, never from a developer's shell or .env.
for _name in [n for n in os.environ if n.startswith("COURSEPILOT_")]:
    del os.environ[_name]

from fake_openai import fake_openai  # noqa: E402,F401

from assistant.apps.ui.launch import ui_process  # noqa: E402
from assistant.core.processes import chroma_command, free_port, stop_process  # noqa: E402
from assistant.core.processes import chroma_server as run_chroma_server  # noqa: E402
from assistant.core.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_LIBRARY = ROOT / "data" / "courses"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ARTIFACTS = ROOT / "test-artifacts"


DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_url() -> tuple[str | None, str]:
    """(URL, "") of the PostgreSQL server the tests use (CP_TEST_POSTGRES_URL, else the local one), or (None, why)."""
    url = os.environ.get("CP_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
    try:
        import psycopg
        from sqlalchemy.engine import make_url

        parts = make_url(url)
        with psycopg.connect(
            host=parts.host, port=parts.port or 5432, user=parts.username, dbname=parts.database, connect_timeout=3
        ):
            return url, ""
    except Exception as exc:  # any failure means: skip, and say why
        return None, f"PostgreSQL at {url} is not reachable: {type(exc).__name__}"


def make_settings(tmp: Path, **sections: dict) -> Settings:
    """Settings whose every path lives under `tmp` (index, database), plus overrides per section."""
    data = {
        "library": {"dir": str(SAMPLE_LIBRARY)},
        "index": {"dir": str(tmp / "index")},
        "database": {"url": f"sqlite:///{tmp / 'coursepilot.db'}"},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return Settings(_env_file=None, **data)  # type: ignore[call-arg]


def small_library(tmp: Path) -> Path:
    """Two courses of the sample library (coaching, feedback) copied under tmp/library."""
    import shutil

    library = tmp / "library"
    for course in ("coaching-and-mentoring", "giving-feedback"):
        shutil.copytree(SAMPLE_LIBRARY / course, library / course)
    return library


def synthetic_case(qid: str, features, gold: int, dataset: str = "openstax"):  # type: ignore[no-untyped-def]
    """A ranking case over made-up candidate features: one gold candidate, the pool itself as the fused order."""
    from evals.ranking import QueryCase

    pool = [f"{qid}-{i}" for i in range(len(features))]
    return QueryCase(
        dataset=dataset,
        qid=qid,
        pool=pool,
        features=features,
        grades={pool[gold]: 1},
        relevant={pool[gold]: 1},
        rankings={"fusion": pool},
        max_dense=0.0,
        best_heading_dense=0.0,
    )


def ingest_courses(tmp: Path, files: dict[tuple[str, str, str], str]) -> Settings:
    """Write {(course id, course title, file name): text} as course folders under `tmp`, ingest them, and return
    settings on that index."""
    from ingest.pipeline import IngestPipeline

    lib = tmp / "library"
    for (course, title, name), text in files.items():
        folder = lib / course
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
        (folder / "course.yaml").write_text(f"id: {course}\ntitle: {title}\n", encoding="utf-8")
    settings = make_settings(tmp, library={"dir": str(lib)})
    assert IngestPipeline(settings).run(lib).chunks_total > 0
    return settings


@pytest.fixture(scope="session")
def sample_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings with the bundled sample library ingested once for the whole session."""
    from ingest.pipeline import IngestPipeline

    tmp = tmp_path_factory.mktemp("sample")
    settings = make_settings(tmp)
    report = IngestPipeline(settings).run(SAMPLE_LIBRARY)
    assert report.ok, [f for f in report.files if f.status == "failed"]
    return settings


@pytest.fixture(scope="session")
def pilot(sample_settings: Settings):  # type: ignore[no-untyped-def]
    from assistant.pilot import CoursePilot

    return CoursePilot(sample_settings)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real `chroma run` server on loopback for the client-server tests."""
    if chroma_command() is None:
        pytest.skip("the `chroma` command (from the chromadb package) is not installed")
    with run_chroma_server(tmp_path_factory.mktemp("chroma-server") / "data", timeout=60) as (host, port, _pid):
        yield host, port


def chroma_database(host: str, port: int) -> str:
    """A fresh database on the shared test server, so this test's collections meet no other test's."""
    import uuid

    import chromadb
    from chromadb.config import Settings as ChromaClientSettings

    name = f"workers-{uuid.uuid4().hex[:8]}"
    admin = chromadb.AdminClient(
        ChromaClientSettings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI",
            chroma_server_host=host,
            chroma_server_http_port=port,
            anonymized_telemetry=False,
        )
    )
    admin.create_database(name)
    return name


def wait_for_health(base: str, proc: subprocess.Popen, log_path: Path, what: str, timeout: float = 120) -> None:
    """Poll `base`/health until it answers 200; fail with the server's log if it exits or takes too long."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"{what} did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


@contextlib.contextmanager
def running_chat_server(
    settings: Settings, tmp: Path, users: str, log_artifact: str, auth_secret: str | None = None, **ui: object
) -> Iterator[tuple[str, Settings]]:
    """A real Chainlit server on a free loopback port for `settings` with sign-in `users`; its log is kept.

    Workers meant to run side by side get the same `auth_secret`, so a sign-in on one is valid on the others.
    `ui` sets other UI settings (e.g. messages_per_minute=5).
    """
    import secrets

    from pydantic import SecretStr

    from assistant.core.settings import UISettings

    settings = settings.model_copy(
        update={
            "ui": UISettings(users=users, auth_secret=SecretStr(auth_secret or secrets.token_urlsafe(32)), **ui)  # type: ignore[arg-type]
        }
    )
    port = free_port()
    spec = ui_process(settings, "127.0.0.1", port, headless=True)
    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(spec.argv, env=spec.env, cwd=spec.cwd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, proc, log_path, "the chat server")
        yield base, settings
    finally:
        stop_process(proc, timeout=20)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / log_artifact).write_text(log_path.read_text())


# -- no silent skips -----------------------------------------------------------------------------------------
_SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With CP_TEST_FAIL_ON_SKIP=1 (scripts/test.sh) a skipped test fails the run and says why."""
    if os.environ.get("CP_TEST_FAIL_ON_SKIP") == "1" and _SKIPPED and exitstatus == 0:
        print(f"\n{len(_SKIPPED)} test(s) skipped, which scripts/test.sh does not allow:", file=sys.stderr)
        for line in _SKIPPED:
            print(f"  {line}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
