"""Ingestion end to end on real files: reports, incremental sync, bad input, both Chroma modes, kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT, make_settings

from assistant.core.errors import IndexMismatchError
from assistant.core.settings import Settings
from assistant.core.text import index_text
from assistant.index.library import LibraryIndex
from assistant.pilot import CoursePilot
from ingest.pipeline import IngestPipeline, IngestReport

MANIFEST = """\
id: dev-basics
title: Developer Basics
description: Everyday tools for developers.
level: beginner
skills: [git, branching]
modules:
  - path: notes.md
    title: Git workflow
    minutes: 20
  - path: guide.docx
    minutes: 15
  - path: outline.pdf
    minutes: 25
"""


def build_library(root: Path) -> Path:
    """A two-course library from the good fixtures: one with a manifest, one inferred."""
    lib = root / "library"
    dev = lib / "dev-basics"
    dev.mkdir(parents=True)
    (dev / "course.yaml").write_text(MANIFEST)
    for name in ("notes.md", "guide.docx", "outline.pdf"):
        shutil.copy(FIXTURES / "good" / name, dev / name)
    slides = lib / "team-slides"
    slides.mkdir()
    for name in ("deck.pptx", "page.html", "safety-notes.txt", "plain.pdf"):
        shutil.copy(FIXTURES / "good" / name, slides / name)
    return lib


def ingest(settings: Settings, lib: Path, full: bool = False) -> IngestReport:
    return IngestPipeline(settings).run(lib, full=full)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return build_library(tmp_path)


def test_first_ingest_reports_every_file_and_rerun_changes_nothing(tmp_path: Path, library: Path) -> None:
    settings = make_settings(tmp_path)
    first = ingest(settings, library)
    assert first.ok
    assert first.documents["added"] == 7
    assert {f.path for f in first.files} == {
        str(p.relative_to(library)) for p in library.rglob("*") if p.is_file() and p.name != "course.yaml"
    }
    assert first.chunks_embedded == first.chunks_total > 0
    assert any("team-slides: no course.yaml" in w for w in first.warnings)

    second = ingest(settings, library)
    assert second.documents["unchanged"] == 7
    assert second.chunks_embedded == 0 and second.chunks_deleted == 0
    assert second.chunks_total == first.chunks_total

    # Touching a file without changing its bytes hashes it, finds it unchanged and embeds nothing.
    os.utime(library / "dev-basics" / "notes.md")
    third = ingest(settings, library)
    assert third.chunks_embedded == 0 and third.documents["unchanged"] == 7


def test_editing_one_section_reembeds_only_that_section(tmp_path: Path, library: Path) -> None:
    settings = make_settings(tmp_path)
    ingest(settings, library)
    index = LibraryIndex(settings)
    before = index.ledger.chunk_hashes("dev-basics/notes.md")
    notes = library / "dev-basics" / "notes.md"
    notes.write_text(notes.read_text().replace("ask for a review.", "ask two teammates for a review first."))

    report = ingest(settings, library)
    changed = [f for f in report.files if f.status == "updated"]
    assert [f.path for f in changed] == ["dev-basics/notes.md"]
    after = index.ledger.chunk_hashes("dev-basics/notes.md")
    new_ids = set(after) - set(before)
    assert report.chunks_embedded == len(new_ids) == 1
    assert report.chunks_deleted == 1
    (new_chunk,) = index.ledger.get_chunks(new_ids).values()
    assert new_chunk.location.section[-1] == "Merging"
    assert "two teammates" in new_chunk.text
    assert index.store.count() == index.ledger.chunk_count()


def test_removed_file_loses_its_chunks_and_full_rebuild_converges(tmp_path: Path, library: Path) -> None:
    settings = make_settings(tmp_path)
    first = ingest(settings, library)
    index = LibraryIndex(settings)
    html_chunks = index.ledger.chunk_hashes("team-slides/page.html")
    assert html_chunks
    (library / "team-slides" / "page.html").unlink()
    report = ingest(settings, library)
    removed = [f for f in report.files if f.status == "removed"]
    assert [f.path for f in removed] == ["team-slides/page.html"]
    assert removed[0].chunks_deleted == len(html_chunks)
    assert report.chunks_total == first.chunks_total - len(html_chunks)
    assert index.store.all_ids() == index.ledger.all_chunk_ids()

    full = ingest(settings, library, full=True)
    assert full.chunks_embedded == full.chunks_total == report.chunks_total
    assert index.store.all_ids() == index.ledger.all_chunk_ids()


def test_stale_vectors_go_in_one_delete_per_flush(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write to the vector store rewrites its HNSW graph file (~85 ms at 100k chunks): three edited files and
    two removed ones cost two deletes, not five."""
    from assistant.index.store import VectorStore

    settings = make_settings(tmp_path)
    ingest(settings, library)
    for name in ("safety-notes.txt", "page.html"):
        path = library / "team-slides" / name
        path.write_text(path.read_text(encoding="utf-8").replace("the", "this") + "\nA closing line.\n")
    (library / "dev-basics" / "notes.md").write_text("# Git workflow\n\nCommit small, with honest messages.\n")
    (library / "team-slides" / "plain.pdf").unlink()
    (library / "team-slides" / "deck.pptx").unlink()
    calls: list[int] = []
    original = VectorStore.delete

    def counting(self: VectorStore, ids: list[str]) -> None:
        if ids and not self.collection_name.endswith("-sections"):  # the chunk vectors, not the headings'
            calls.append(len(ids))
        original(self, ids)

    monkeypatch.setattr(VectorStore, "delete", counting)
    report = ingest(settings, library)
    assert sorted(f.status for f in report.files if f.status != "unchanged") == [
        "removed",
        "removed",
        "updated",
        "updated",
        "updated",
    ]
    assert len(calls) == 2, calls
    index = LibraryIndex(settings)
    assert index.store.all_ids() == index.ledger.all_chunk_ids()


def test_moved_or_repaged_text_reuses_its_vectors(tmp_path: Path, library: Path) -> None:
    """New ids whose embedded text is already indexed take the stored vectors; --full embeds everything again."""
    from pypdf import PdfReader, PdfWriter

    from assistant.models.embeddings import get_embedder

    settings = make_settings(tmp_path)
    ingest(settings, library)
    index = LibraryIndex(settings)
    course = library / "dev-basics"
    # A page inserted at the front: every later chunk moves one page on (new ids, same text).
    writer = PdfWriter(clone_from=PdfReader(course / "outline.pdf"))
    writer.insert_blank_page(index=0)
    with (course / "outline.pdf").open("wb") as fh:
        writer.write(fh)
    # A renamed module file, the manifest following it (same title, so the same text is embedded).
    (course / "notes.md").rename(course / "git-notes.md")
    (course / "course.yaml").write_text(MANIFEST.replace("path: notes.md", "path: git-notes.md"))

    report = ingest(settings, library)
    by_path = {f.path: f for f in report.files}
    repaged, renamed = by_path["dev-basics/outline.pdf"], by_path["dev-basics/git-notes.md"]
    assert repaged.status == "updated" and renamed.status == "added"
    for item in (repaged, renamed):
        assert item.chunks > 0 and (item.chunks_embedded, item.chunks_reused) == (0, item.chunks), item
    assert by_path["dev-basics/notes.md"].status == "removed"
    assert report.chunks_embedded == 0
    assert index.store.all_ids() == index.ledger.all_chunk_ids()

    # A reused vector is the one the model gives that text.
    moved = [c for c in index.ledger.chunks_of_course("dev-basics") if c.location.module == "git-notes.md"]
    stored = index.store.vectors([c.id for c in moved])
    fresh = get_embedder(settings.embedding).embed_documents([index_text(c) for c in moved])
    for chunk, vector in zip(moved, fresh, strict=True):
        assert float(stored[chunk.id] @ vector) > 0.9999

    full = ingest(settings, library, full=True)
    assert full.chunks_reused == 0 and full.chunks_embedded == full.chunks_total


def test_a_running_pilot_sees_each_reingest(tmp_path: Path, library: Path) -> None:
    """The per-question caches (catalogue, readiness) follow the ledger: a long-lived UI process never serves stale."""
    from assistant.core.errors import IndexMissingError

    settings = make_settings(tmp_path)
    ingest(settings, library)
    pilot = CoursePilot(settings)
    assert pilot.catalogue()["dev-basics"].title == "Developer Basics"
    assert not pilot.ask("How do I create a branch in git?").refused
    filtered = pilot.ask("How do I create a branch in git?", course="team-slides")
    assert all(c.location.course_id == "team-slides" for c in filtered.citations)

    manifest = library / "dev-basics" / "course.yaml"
    manifest.write_text(MANIFEST.replace("title: Developer Basics", "title: Developer Foundations"))
    ingest(settings, library)
    assert pilot.catalogue()["dev-basics"].title == "Developer Foundations"

    shutil.rmtree(library / "dev-basics")
    shutil.rmtree(library / "team-slides")
    ingest(settings, library)
    with pytest.raises(IndexMissingError):
        pilot.ask("How do I create a branch in git?")


def test_locations_carry_course_module_section_and_page(tmp_path: Path, library: Path) -> None:
    settings = make_settings(tmp_path)
    ingest(settings, library)
    ledger = LibraryIndex(settings).ledger
    chunks = ledger.chunks_of_course("dev-basics")
    notes = [c for c in chunks if c.location.module == "notes.md"]
    assert notes[0].location.course_title == "Developer Basics"
    assert notes[0].location.module_title == "Git workflow"
    trails = {c.location.section for c in notes}
    assert ("Git Basics", "Branching", "Naming Branches") in trails
    assert all("# not a heading" not in " ".join(t) for t in trails)
    pdf = [c for c in chunks if c.location.module == "outline.pdf"]
    assert pdf and all(c.location.page is not None and c.location.page >= 1 for c in pdf)
    assert len({c.location.page for c in pdf}) > 1
    slides = ledger.chunks_of_course("team-slides")
    deck = [c for c in slides if c.location.module == "deck.pptx"]
    assert {c.location.page for c in deck} >= {1, 2}
    assert any("Speaker notes" in c.text for c in deck)
    for chunk in chunks + slides:
        assert chunk.tokens <= settings.chunking.size_tokens


def test_bad_files_fail_with_reasons_and_nothing_indexed_is_lost(tmp_path: Path, library: Path) -> None:
    settings = make_settings(tmp_path)
    ingest(settings, library)
    pilot = CoursePilot(settings)
    before = pilot.ask("How should I name a branch?")
    assert not before.refused

    bad = library / "bad-uploads"
    bad.mkdir()
    for item in (FIXTURES / "bad").iterdir():
        shutil.copy(item, bad / item.name)
    # A good file that was indexed, then replaced by a corrupt one, keeps its last good chunks.
    shutil.copy(FIXTURES / "bad" / "truncated.pdf", library / "dev-basics" / "outline.pdf")
    report = ingest(settings, library)
    failed = {f.path: f for f in report.files if f.status == "failed"}
    reasons = {Path(p).name: f.reason for p, f in failed.items()}
    assert reasons["truncated.pdf"] == "corrupt"
    assert reasons["encrypted.pdf"] == "encrypted"
    assert reasons["scanned.pdf"] == "no_text"
    assert reasons["empty.md"] == "empty"
    assert reasons["garbage.docx"] == "corrupt"
    assert reasons["zipbomb.docx"] == "too_large"
    assert reasons["unsupported.xyz"] == "unsupported"
    assert reasons["outline.pdf"] == "corrupt"
    for f in failed.values():
        assert Path(f.path).name in (f.message or "") and f.fix
    assert not report.ok
    # The healthy files in the bad folder still went in.
    assert any(f.path == "bad-uploads/latin1.txt" and f.status == "added" for f in report.files)
    after = pilot.ask("How should I name a branch?")
    assert [c.location for c in after.citations] == [c.location for c in before.citations]
    assert LibraryIndex(settings).ledger.chunk_hashes("dev-basics/outline.pdf")


def test_broken_manifest_keeps_the_course_indexed(tmp_path: Path, library: Path) -> None:
    settings = make_settings(tmp_path)
    first = ingest(settings, library)
    (library / "dev-basics" / "course.yaml").write_text(MANIFEST.replace("level: beginner", "level: expert"))
    report = ingest(settings, library)
    (failure,) = [f for f in report.files if f.status == "failed"]
    assert failure.reason == "invalid_manifest"
    assert "course.yaml" in (failure.message or "") and "level" in (failure.message or "")
    assert "beginner, intermediate, advanced" in (failure.fix or "")
    assert report.chunks_total == first.chunks_total
    assert "dev-basics" in LibraryIndex(settings).ledger.courses()


def test_manifest_module_path_escaping_the_course_is_refused(tmp_path: Path, library: Path) -> None:
    settings = make_settings(tmp_path)
    (library / "dev-basics" / "course.yaml").write_text(MANIFEST + "  - path: ../../etc/passwd\n")
    report = ingest(settings, library)
    (failure,) = [f for f in report.files if f.status == "failed"]
    assert failure.reason == "invalid_manifest" and "outside the course folder" in (failure.message or "")


def test_symlink_outside_library_is_not_read(tmp_path: Path, library: Path) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("# Secret\n\nThe payroll password is hunter2.")
    (library / "team-slides" / "linked.md").symlink_to(secret)
    settings = make_settings(tmp_path)
    report = ingest(settings, library)
    (failure,) = [f for f in report.files if f.status == "failed"]
    assert failure.reason == "outside_library"
    texts = " ".join(c.text for c in LibraryIndex(settings).ledger.chunks_of_course("team-slides"))
    assert "hunter2" not in texts


def test_prerequisite_cycle_is_reported_with_the_courses(tmp_path: Path, library: Path) -> None:
    (library / "dev-basics" / "course.yaml").write_text(MANIFEST + "prerequisites: [ops-basics]\n")
    ops = library / "ops-basics"
    ops.mkdir()
    (ops / "course.yaml").write_text("id: ops-basics\ntitle: Ops Basics\nprerequisites: [dev-basics]\n")
    shutil.copy(FIXTURES / "good" / "page.html", ops / "page.html")
    report = ingest(make_settings(tmp_path), library)
    assert report.problems and "dev-basics" in report.problems[0] and "ops-basics" in report.problems[0]
    assert not report.ok


def test_changing_the_embedding_settings_asks_for_a_reingest(tmp_path: Path, library: Path) -> None:
    ingest(make_settings(tmp_path), library)
    other = make_settings(tmp_path, chunking={"size_tokens": 128})
    assert other.collection_name() != make_settings(tmp_path).collection_name()
    with pytest.raises(IndexMismatchError, match="coursepilot ingest"):
        CoursePilot(other).ask("How should I name a branch?")


def test_chroma_server_mode(tmp_path: Path, library: Path, chroma_server: tuple[str, int]) -> None:
    host, port = chroma_server
    settings = make_settings(tmp_path, chroma={"host": host, "port": port})
    first = ingest(settings, library)
    assert first.ok and first.chunks_embedded > 0
    index = LibraryIndex(settings)
    assert index.store.mode == "server"
    assert index.store.count() == first.chunks_total
    assert ingest(settings, library).chunks_embedded == 0
    answer = CoursePilot(settings).ask("How should I name a branch?")
    assert not answer.refused and answer.citations[0].location.module == "notes.md"


def _run_ingest(settings: Settings, lib: Path, pause_at: str | None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSEPILOT_")}
    env.update(
        COURSEPILOT_INDEX_DIR=str(settings.index.dir),
        COURSEPILOT_DATABASE_URL=settings.database.url,
        HF_HUB_OFFLINE="1",
    )
    if pause_at:
        env["COURSEPILOT_DEBUG_PAUSE_AT"] = pause_at
    return subprocess.Popen(
        [sys.executable, "-m", "assistant.apps.cli", "ingest", str(lib), "--json"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("pause_at", ["after_upsert", "after_ledger"])
def test_ingest_killed_midway_converges_on_next_run(tmp_path: Path, library: Path, pause_at: str) -> None:
    clean = make_settings(tmp_path / "clean")
    ingest(clean, library)
    clean_index = LibraryIndex(clean)

    settings = make_settings(tmp_path / "killed")
    ingest(settings, library)
    notes = library / "dev-basics" / "notes.md"
    notes.write_text(notes.read_text().replace("ask for a review.", "ask two teammates for a review first."))
    ingest(clean, library)  # the clean index also sees the edit

    proc = _run_ingest(settings, library, pause_at)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith(f"PAUSED {pause_at}"):
            break
    # While the run is frozen mid-write, queries keep working on a consistent view.
    during = CoursePilot(settings).ask("How should I name a branch?")
    assert not during.refused
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    rerun = _run_ingest(settings, library, None)
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out
    assert json.loads(out)["chunks_total"] == clean_index.ledger.chunk_count()
    index = LibraryIndex(settings)
    assert index.ledger.all_chunk_ids() == clean_index.ledger.all_chunk_ids()
    assert index.store.all_ids() == clean_index.store.all_ids()
    assert set(index.lexical().ids) == set(clean_index.lexical().ids)
