"""Issue 15, ingest side: one bad item never stops a batch, duplicate course ids, bounded parses, course.yaml
messages, the index folder going away and coming back, and questions normalised like course text."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ROOT, make_settings

from assistant.core.errors import ConfigError, CoursePilotError, IndexMissingError, ManifestError
from assistant.core.settings import Settings
from assistant.core.text import normalize_unicode
from assistant.core.types import Answer
from assistant.index.library import LibraryIndex
from assistant.pilot import CoursePilot
from ingest.loaders import LoaderLimits, load_document
from ingest.manifest import load_manifest
from ingest.pipeline import IngestPipeline, IngestReport

WOMBATS = "# Wombats\n\n## Burrows\n\nWombat spreadsheets sort every burrow by depth, deepest first.\n"
GECKOS = "# Geckos\n\n## Feet\n\nGecko feet stick to glass with millions of tiny hairs called setae.\n"


def course(lib: Path, folder: str, files: dict[str, str], manifest: str | None = None) -> Path:
    path = lib / folder
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    if manifest is not None:
        (path / "course.yaml").write_text(manifest)
    return path


def ingest(settings: Settings, lib: Path) -> IngestReport:
    return IngestPipeline(settings).run(lib)


def failures(report: IngestReport) -> dict[str, tuple[str | None, str]]:
    return {f.path: (f.reason, f.message or "") for f in report.files if f.status == "failed"}


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    library = tmp_path / "library"
    course(library, "wombats", {"burrows.md": WOMBATS}, "id: wombats\ntitle: Wombat Studies\n")
    return library


# -- item 2: one bad item never aborts the batch -----------------------------------------------------------
def test_hostile_names_and_files_fail_one_by_one_and_the_batch_goes_on(tmp_path: Path, lib: Path) -> None:
    bad = lib / "geckos"
    course(lib, "geckos", {"feet.md": GECKOS})
    (bad / os.fsdecode(b"caf\xe9-gecko.md")).write_text(GECKOS)  # a name unzipped from a Windows archive
    (lib / os.fsdecode(b"r\xe9sum\xe9s")).mkdir()
    (lib / os.fsdecode(b"r\xe9sum\xe9s") / "notes.md").write_text(GECKOS)
    (bad / "self.md").symlink_to("self.md")  # a symlink loop
    os.mkfifo(tmp_path / "pipe")
    (bad / "pipe.md").symlink_to(tmp_path / "pipe")  # outside the library, refused as before
    os.mkfifo(bad / "fifo-target")
    (bad / "fifo.md").symlink_to(bad / "fifo-target")  # inside: would block the file hash for ever
    course(lib, "nul-path", {"a.md": GECKOS}, 'id: nul-path\ntitle: Nul\nmodules:\n  - path: "a\\0.md"\n')
    deep = "id: deep\ntitle: Deep\nskills:\n" + "".join("  " * i + "-\n" for i in range(3000))
    course(lib, "deep-skills", {"a.md": GECKOS}, deep)
    settings = make_settings(tmp_path, library={"dir": str(lib)})
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSEPILOT_")}
    env |= {"COURSEPILOT_INDEX_DIR": str(tmp_path / "index"), "COURSEPILOT_DATABASE_URL": settings.database.url}
    done = subprocess.run(
        [sys.executable, "-m", "assistant.apps.cli", "ingest", str(lib), "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # the FIFO made the old ingest hang for ever
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    report = json.loads(done.stdout)
    failed = {f["path"]: f for f in report["files"] if f["status"] == "failed"}
    assert failed["geckos/caf\\xe9-gecko.md"]["reason"] == "bad_name"
    assert failed["r\\xe9sum\\xe9s"]["reason"] == "bad_name"
    assert "not valid UTF-8" in failed["geckos/caf\\xe9-gecko.md"]["message"]
    assert failed["geckos/self.md"]["reason"] == "symlink_loop"
    assert failed["geckos/fifo.md"]["reason"] == "not_a_file" and "FIFO" in failed["geckos/fifo.md"]["message"]
    assert failed["geckos/fifo-target"]["reason"] == "not_a_file"
    assert failed["nul-path/course.yaml"]["reason"] == "invalid_manifest"
    assert "U+0000" in failed["nul-path/course.yaml"]["message"]
    assert failed["deep-skills/course.yaml"]["reason"] == "invalid_manifest"
    assert "nested too deeply" in failed["deep-skills/course.yaml"]["message"]
    for item in failed.values():
        assert item["fix"], item
    added = {f["path"] for f in report["files"] if f["status"] == "added"}
    assert {"wombats/burrows.md", "geckos/feet.md"} <= added


def test_a_link_to_a_folder_and_a_listed_folder_get_accurate_messages(tmp_path: Path, lib: Path) -> None:
    (lib / "wombats" / "extra").mkdir()
    (lib / "wombats" / "linked").symlink_to(lib / "wombats" / "extra")
    course(
        lib, "geckos", {"feet.md": GECKOS}, "id: geckos\ntitle: Geckos\nmodules:\n  - path: feet.md\n  - path: sub\n"
    )
    (lib / "geckos" / "sub").mkdir()
    report = ingest(make_settings(tmp_path), lib)
    failed = failures(report)
    assert failed["wombats/linked"][0] == "link_to_folder"
    assert "link to a folder" in failed["wombats/linked"][1] and "(none)" not in failed["wombats/linked"][1]
    assert failed["geckos/sub"][0] == "not_a_file" and "is a folder" in failed["geckos/sub"][1]


def test_bidi_and_control_characters_in_a_file_name_are_warned_about(tmp_path: Path, lib: Path) -> None:
    (lib / "wombats" / "notes\u202egpj.md").write_text(GECKOS)
    report = ingest(make_settings(tmp_path), lib)
    assert any("U+202E" in w and "notes" in w for w in report.warnings), report.warnings
    assert any(f.path == "wombats/notes\u202egpj.md" and f.status == "added" for f in report.files)


# -- item 3: duplicate course ids --------------------------------------------------------------------------
def test_a_duplicate_course_id_is_refused_naming_both_folders_and_the_first_keeps_it(tmp_path: Path, lib: Path) -> None:
    settings = make_settings(tmp_path)
    ingest(settings, lib)
    ledger = LibraryIndex(settings).ledger
    before = {c.id: c.folder for c in ledger.courses().values()}
    # 'a-copy' sorts before 'wombats', and still must not take the id that 'wombats' already has.
    course(lib, "a-copy", {"other.md": GECKOS}, "id: wombats\ntitle: Imposter\n")
    course(lib, "zz-copy", {"more.md": GECKOS}, "id: wombats\ntitle: Another\n")
    report = ingest(settings, lib)
    failed = failures(report)
    for folder in ("a-copy", "zz-copy"):
        reason, message = failed[f"{folder}/course.yaml"]
        assert reason == "duplicate_course_id"
        assert folder in message and "'wombats'" in message
    catalogue = LibraryIndex(settings).ledger.courses()
    assert {c.id: c.folder for c in catalogue.values()} == before
    assert catalogue["wombats"].title == "Wombat Studies"
    assert {c.location.module for c in LibraryIndex(settings).ledger.chunks_of_course("wombats")} == {"burrows.md"}


# -- low: a course folder replaced by a link out of the library keeps what it had ---------------------------
def test_a_course_folder_replaced_by_an_outside_link_keeps_its_content(tmp_path: Path, lib: Path) -> None:
    settings = make_settings(tmp_path)
    course(lib, "geckos", {"feet.md": GECKOS}, "id: geckos\ntitle: Geckos\n")
    first = ingest(settings, lib)
    shutil.move(lib / "geckos", tmp_path / "elsewhere")
    (lib / "geckos").symlink_to(tmp_path / "elsewhere")
    report = ingest(settings, lib)
    assert failures(report)["geckos"][0] == "outside_library"
    assert report.chunks_total == first.chunks_total
    ledger = LibraryIndex(settings).ledger
    assert "geckos" in ledger.courses()
    assert ledger.chunks_of_course("geckos")


# -- course.yaml -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ("id: c\ntitle: C\nminutes: true\n", "minutes", "not true"),
        ("id: c\ntitle: C\nmodules:\n  - path: a.md\n    minutes: yes\n", "modules.minutes", "not true"),
        ("id: c\ntitle: ''\n", "title", "must not be empty"),
        ("id: c\ntitle: C\nmodules:\n  - path: a.md\n  - path: ./a.md\n", "modules.path", "listed twice"),
        ("id: c\ntitle: C\nmodules:\n  - file: a.md\n", "modules[1].file", "unknown key 'file'"),
        ("id: c\ntitle: C\ndurration: 30\n", "durration", "unknown key"),
    ],
)
def test_manifest_mistakes_are_refused_with_the_field_named(tmp_path: Path, body: str, field: str, words: str) -> None:
    folder = course(tmp_path, "c", {"a.md": GECKOS}, body)
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder)
    assert caught.value.field == field and words in caught.value.message


def test_unknown_manifest_keys_suggest_the_nearest_known_one(tmp_path: Path) -> None:
    folder = course(tmp_path, "c", {"a.md": GECKOS}, "id: c\ntitle: C\nmodules:\n  - file: a.md\n")
    with pytest.raises(ManifestError, match="did you mean `path`"):
        load_manifest(folder)
    (folder / "course.yaml").write_text("id: c\ntitle: C\nprerequisits: [b]\n")
    with pytest.raises(ManifestError, match="did you mean `prerequisites`"):
        load_manifest(folder)


# -- item 11: bounded parses -------------------------------------------------------------------------------
def _parsed_chars(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from markdown_it import MarkdownIt

    seen: list[int] = []
    original = MarkdownIt.parse

    def parse(self, src, env=None):  # type: ignore[no-untyped-def]
        seen.append(len(src))
        return original(self, src, env)

    monkeypatch.setattr(MarkdownIt, "parse", parse)
    return seen


@pytest.mark.parametrize(
    "heading",
    ["# h\n", "h\n=\n"],  # ATX headings are counted from the lines; setext ones as the parse goes
    ids=["atx", "setext"],
)
def test_markdown_headings_are_counted_before_a_full_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, heading: str
) -> None:
    path = tmp_path / "headings.md"
    path.write_text(heading * (1_000_000 // len(heading)))  # 1 MB, tens of times the heading limit
    seen = _parsed_chars(monkeypatch)
    with pytest.raises(CoursePilotError) as caught:
        load_document(path)
    assert getattr(caught.value, "reason", None) == "too_many_sections"
    # Stopped within the first pieces, instead of parsing the whole megabyte before counting.
    assert sum(seen) < path.stat().st_size / 10, sum(seen)


@pytest.mark.parametrize(
    "body",
    [
        "- a\n" * 30_000,  # counted from the lines, before any parse
        "| a | b |\n|---|---|\n" + "| 1 | 2 |\n" * 30_000,  # table rows: counted as the parse goes
    ],
    ids=["list-items", "table-rows"],
)
def test_markdown_blocks_are_bounded_before_a_full_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    path = tmp_path / "blocks.md"
    path.write_text(body)
    seen = _parsed_chars(monkeypatch)
    with pytest.raises(CoursePilotError) as caught:
        load_document(path, LoaderLimits(max_blocks=5_000))
    assert getattr(caught.value, "reason", None) == "too_large" and "blocks" in caught.value.message
    assert sum(seen) < path.stat().st_size / 2  # stopped early
    assert max(seen, default=0) <= 70_000  # and never held the whole file's tokens at once


def test_markdown_pieces_read_like_one_parse(tmp_path: Path) -> None:
    path = tmp_path / "big.md"
    body = "".join(
        f"## Part {i}\n\nParagraph {i} with [a link](https://example.org).\n\n- item {i}\n- item {i}b\n\n"
        f"```\n# not a heading {i}\n\nstill code\n```\n\n<!-- hidden\n\ncomment {i} -->\n\n| a | b |\n|---|---|\n| {i} | x |\n\n"
        for i in range(600)
    )
    path.write_text(body)
    doc = load_document(path)
    assert len(doc.sections) == 600
    assert [s.heading_path for s in doc.sections] == [(f"Part {i}",) for i in range(600)]
    for i in (0, 299, 599):
        text = doc.sections[i].text
        assert f"# not a heading {i}\n\nstill code" in text and f"comment {i}" not in text
        assert f"- item {i}b" in text and f"a: {i}; b: x" in text


def test_markdown_nested_deeper_than_the_parser_goes_is_kept_with_the_right_warning(tmp_path: Path) -> None:
    path = tmp_path / "deep.md"
    path.write_text("# Quotes\n\n" + "> " * 40 + "the deepest wombat\n\nafter the quote\n")
    doc = load_document(path)
    text = " ".join(s.text for s in doc.sections)
    assert "the deepest wombat" in text and "after the quote" in text
    assert any("levels deep" in w for w in doc.warnings), doc.warnings
    assert not any("headings but no body" in w for w in doc.warnings)


def test_angle_brackets_that_are_not_html_stay_in_headings_and_text(tmp_path: Path) -> None:
    path = tmp_path / "generics.md"
    path.write_text("## Okapi <T> generics\n\nA `List<T>` or <K, V> map; <b>bold</b> and <span>x</span>.\n")
    (section,) = load_document(path).sections
    assert section.heading_path == ("Okapi <T> generics",)
    assert "<K, V>" in section.text and "<b>" not in section.text and "bold" in section.text


def _pdf(path: Path, empty_pages: int) -> Path:
    import pypdf
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = pypdf.PdfWriter()
    first = writer.add_blank_page(width=300, height=100)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    first[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    content = DecodedStreamObject()
    content.set_data(b"BT /F1 12 Tf 10 50 Td (Wombats dig burrows with their claws.) Tj ET")
    first[NameObject("/Contents")] = writer._add_object(content)
    for _ in range(empty_pages):
        writer.add_blank_page(width=72, height=72)
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def test_pdf_page_warnings_are_grouped_into_one_line(tmp_path: Path) -> None:
    doc = load_document(_pdf(tmp_path / "mostly-empty.pdf", 40))
    assert doc.pages == 41
    assert doc.warnings == ["40 pages (2-41): no extractable text (scanned image?)"]


def test_a_pdf_over_the_page_cap_is_refused_before_its_pages_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.loaders import pdf

    path = _pdf(tmp_path / "long.pdf", 60)
    read: list[object] = []
    original = pdf._page_lines
    monkeypatch.setattr(pdf, "_page_lines", lambda page: read.append(page) or original(page))
    with pytest.raises(CoursePilotError) as caught:
        load_document(path, LoaderLimits(max_pages=50))
    assert getattr(caught.value, "reason", None) == "too_large" and "61 pages" in caught.value.message
    assert not read
    assert LoaderLimits().max_pages < 99_990


# -- the index folder going away and coming back; a damaged embedded store ------------------------------------
def _ask_in_a_new_thread(pilot: CoursePilot, question: str) -> Answer | BaseException:
    """As the chat UI does: each answer on a thread of its own, with its own ledger connection."""
    out: list[Answer | BaseException] = []

    def work() -> None:
        try:
            out.append(pilot.ask(question))
        except BaseException as exc:  # handed back to the test
            out.append(exc)
        finally:
            pilot.index.ledger.close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return out[0]


def test_a_deleted_then_restored_index_folder_is_explained_and_picked_up(tmp_path: Path, lib: Path) -> None:
    from assistant.apps.ui.replies import render_error

    settings = make_settings(tmp_path, library={"dir": str(lib)})
    ingest(settings, lib)
    index_dir = Path(settings.index.dir)
    shutil.copytree(index_dir, tmp_path / "backup")
    question = "What do wombat spreadsheets do?"

    running = CoursePilot(settings)
    assert isinstance(_ask_in_a_new_thread(running, question), Answer)
    shutil.rmtree(index_dir)
    gone = _ask_in_a_new_thread(running, question)
    assert isinstance(gone, IndexMissingError), gone
    assert "missing" in gone.message and "restore it" in (gone.fix or "")
    shutil.copytree(tmp_path / "backup", index_dir)
    back = _ask_in_a_new_thread(running, question)
    assert isinstance(back, Answer) and not back.refused

    # A process that started while the folder was missing recovers when the folder is put back.
    shutil.rmtree(index_dir)
    started_without = CoursePilot(settings)
    missing = _ask_in_a_new_thread(started_without, question)
    assert isinstance(missing, IndexMissingError)
    learner_text = render_error(missing)
    assert "coursepilot" not in learner_text and "not available right now" in learner_text
    shutil.rmtree(index_dir)
    shutil.copytree(tmp_path / "backup", index_dir)
    restored = _ask_in_a_new_thread(started_without, question)
    assert isinstance(restored, Answer) and not restored.refused, restored
    assert restored.evidence[0].dense_score is not None  # the vector store was reopened too, not only BM25


def test_a_damaged_embedded_store_gets_a_fix_about_the_embedded_store(tmp_path: Path) -> None:
    store = tmp_path / "index" / "chroma"
    store.mkdir(parents=True)
    (store / "chroma.sqlite3").write_bytes(b"not a database" * 4096)
    with pytest.raises(ConfigError) as caught:
        LibraryIndex(make_settings(tmp_path))
    fix = caught.value.fix or ""
    assert "chroma run" not in fix and "CHROMA_HOST" not in fix
    assert str(store) in fix and "ingest --full" in fix


# -- questions normalised like course text -----------------------------------------------------------------
def test_normalize_unicode_folds_width_and_drops_invisible_characters() -> None:
    assert normalize_unicode("ｐｉｖｏｔ ｔａｂｌｅ") == "pivot table"
    assert normalize_unicode("piv\u200bot\u00ad ta\u2060ble\ufeff") == "pivot table"
    assert normalize_unicode("ﬁle \u202eabc") == "file abc"


def test_full_width_and_zero_width_questions_get_the_same_answer(tmp_path: Path, lib: Path) -> None:
    settings = make_settings(tmp_path, library={"dir": str(lib)})
    course(lib, "geckos", {"feet.md": GECKOS}, "id: geckos\ntitle: Geckos\n")
    ingest(settings, lib)
    pilot = CoursePilot(settings)
    plain = pilot.ask("How do gecko feet stick to glass?")
    odd = pilot.ask("How do ｇｅｃｋｏ fe\u200bet stick to ｇｌａｓｓ?")
    assert odd.question == "How do gecko feet stick to glass?"
    assert [c.location for c in odd.citations] == [c.location for c in plain.citations]
    assert odd.text == plain.text


def test_course_text_is_normalised_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "odd.md"
    path.write_text("# Ｐｉｖｏｔ ｔａｂｌｅｓ\n\nRe\u200bfresh the ｐｉｖｏｔ with the ﬁle menu.\n")
    (section,) = load_document(path).sections
    assert section.heading_path == ("Pivot tables",)
    assert section.text == "Refresh the pivot with the file menu."


def test_repeated_warnings_become_one_line_with_a_count() -> None:
    from ingest.loaders import group_warnings

    assert group_warnings(["a", "b", "a", "a"]) == ["a (3 times)", "b"]


def test_the_pdf_page_cap_is_a_setting(tmp_path: Path, lib: Path) -> None:
    _pdf(lib / "wombats" / "long.pdf", 40)
    report = ingest(make_settings(tmp_path, limits={"max_pdf_pages": 30}), lib)
    reason, message = failures(report)["wombats/long.pdf"]
    assert reason == "too_large" and "41 pages, over the 30-page limit" in message
