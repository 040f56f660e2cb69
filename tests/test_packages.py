"""SCORM packages as courses: manifests, authoring-tool layouts, hostile archives, incremental ingest, PPTX sections."""

from __future__ import annotations

import base64
import io
import os
import shutil
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FIXTURES, SAMPLE_LIBRARY, make_settings

sys.path.insert(0, str(FIXTURES))
import packages as pkgs

from assistant.core.errors import LoaderError
from assistant.pilot import CoursePilot
from ingest.loaders import LoaderLimits, load_document
from ingest.packages.archive import PackageLimits
from ingest.packages.course import read_package
from ingest.packages.jsdata import as_json, call_arguments, read_literal
from ingest.pipeline import IngestPipeline, IngestReport

LIMITS = LoaderLimits()


# -- manifests and layouts -------------------------------------------------------------------------------
@pytest.mark.parametrize("folder", [False, True], ids=["zip", "unpacked-folder"])
def test_scorm12_manifest_gives_course_modules_and_lom(tmp_path: Path, folder: bool) -> None:
    content = read_package(pkgs.scorm12_html(tmp_path, folder=folder), LIMITS)
    course = content.course
    assert content.version == "1.2"
    assert course.title == "Warehouse Safety Walk"  # the organization's title wins over LOM's
    assert course.description == "Finding and fixing hazards on the floor."
    assert course.skills == ["hazard spotting", "incident reporting"]
    assert course.minutes == 45
    modules = [(m.path, m.title) for m in course.modules]
    assert modules == [("sco1/index.html", "Before the shift"), ("sco2/hazards.vtt", "On the floor")]
    html = content.docs[0].doc
    assert [s.heading_path for s in html.sections] == [
        ("Checking the fire exits",),
        ("Checking the fire exits", "Blocked doors"),
    ]
    assert all("Hidden quiz" not in d.doc.model_dump_json() for d in content.docs)  # isvisible="false"
    assert "never run" not in html.model_dump_json()  # scripts are dropped, not run
    assert not content.failures  # a video page's captions are its content


def test_scorm2004_reads_lom_from_adlcp_location_and_h5p(tmp_path: Path) -> None:
    content = read_package(pkgs.scorm2004_h5p(tmp_path), LIMITS)
    assert content.version == "2004 4th Edition"
    assert content.course.minutes == 90 and content.course.skills == ["minute taking"]
    assert content.course.description == "Recording decisions and owners in meetings."
    doc = content.docs[0].doc
    assert doc.kind == "h5p"
    assert [s.heading_path for s in doc.sections] == [
        ("Writing action items", "Slide 1"),
        ("Writing action items", "Slide 2"),
    ]
    text = "\n".join(s.text for s in doc.sections)
    assert "Exactly one named person" in text and "one owner and a due date" in text
    assert "Check" not in text.split("\n")  # l10n button labels are not content


def test_standalone_h5p_file_is_a_document(tmp_path: Path) -> None:
    doc = load_document(pkgs.h5p_file(tmp_path))
    assert (doc.kind, doc.title) == ("h5p", "Writing action items")
    assert "Exactly one named person" in doc.sections[1].text


def test_storyline_slides_are_read_from_data_files_without_running_them(tmp_path: Path) -> None:
    doc = read_package(pkgs.storyline(tmp_path), LIMITS).docs[0].doc
    assert doc.kind == "storyline"
    assert [(s.heading_path, s.page) for s in doc.sections] == [
        (("Listening first", "Let the customer finish"), 1),
        (("Listening first", "Acknowledge the problem"), 2),
    ]
    assert doc.sections[0].text == "Do not interrupt; note the three key facts."
    assert "code string" not in doc.model_dump_json()  # player scripts are not content


def test_rise_course_data_is_decoded_from_the_export_page(tmp_path: Path) -> None:
    doc = read_package(pkgs.rise(tmp_path), LIMITS).docs[0].doc
    assert doc.kind == "rise"
    assert doc.sections[0].heading_path == ("Getting ready", "Camera and sound")
    assert "Call on remote attendees before the room." in doc.sections[0].text
    assert "Join muted and unmute to speak." in doc.sections[0].text


@pytest.mark.parametrize(
    ("build", "kind", "phrase"),
    [
        (pkgs.captivate, "captivate", "Press Windows key and L together."),
        (pkgs.ispring, "ispring", "Every visitor signs in at reception and wears a badge."),
    ],
)
def test_captivate_and_ispring_accessible_text_is_read(
    tmp_path: Path, build: Callable[[Path], Path], kind: str, phrase: str
) -> None:
    doc = read_package(build(tmp_path), LIMITS).docs[0].doc
    assert doc.kind == kind
    assert phrase in doc.sections[0].text


def test_unreadable_items_are_reported_with_reason_and_fix(tmp_path: Path) -> None:
    content = read_package(pkgs.unreadable(tmp_path), LIMITS)
    assert [d.module for d in content.docs] == ["welcome.html"]
    reasons = {f.module: f for f in content.failures}
    assert reasons["sitemap.swf"].reason == "flash_only" and "HTML5" in reasons["sitemap.swf"].fix
    assert reasons["org.html"].reason == "no_text" and "accessible text" in reasons["org.html"].fix


def test_course_yaml_overrides_the_manifest(tmp_path: Path) -> None:
    package = pkgs.scorm12_html(tmp_path)
    (tmp_path / "warehouse-safety.course.yaml").write_text(
        "id: floor-safety\nlevel: intermediate\nprerequisites: [site-induction]\n"
    )
    course = read_package(package, LIMITS).course
    assert (course.id, course.level, course.prerequisites) == ("floor-safety", "intermediate", ["site-induction"])
    assert course.title == "Warehouse Safety Walk"
    folder = pkgs.scorm12_html(tmp_path / "f", folder=True)
    (folder / "course.yaml").write_text("level: advanced\nmodules: []\n")
    with pytest.raises(LoaderError) as err:
        read_package(folder, LIMITS)
    assert err.value.reason == "invalid_manifest" and "modules" in str(err.value)


def test_js_data_files_are_read_as_literals_never_evaluated() -> None:
    text = (
        "window.globalProvideData('slide', '{\\\"title\\\": \\\"Caf\\\\u00e9 \\\\ud83d\\\\ude00\\\"}');\n"
        "globalProvideData('data', buildData());  // a call, not a literal: not read\n"
        "var t = `${fetch('https://example.invalid')}`;"
    )
    calls = call_arguments(text, "globalProvideData")
    assert calls == [["slide", '{"title": "Caf\\u00e9 \\ud83d\\ude00"}'], ["data"]]
    assert as_json(calls[0][1]) == {"title": "Café 😀"}
    assert read_literal(text, text.index("`")) is None  # a template with code is not data
    assert as_json(base64.b64encode(b'{"course": {"lessons": []}}').decode()) == {"course": {"lessons": []}}


# -- hostile packages --------------------------------------------------------------------------------------
def _hostile(tmp: Path, case: str) -> tuple[Path, PackageLimits | None]:
    path = tmp / f"{case}.zip"
    if case == "zip_slip":
        return pkgs.zip_with_member(path, "../../evil.html"), None
    if case == "absolute_path":
        return pkgs.zip_with_member(path, "/etc/cron.d/evil"), None
    if case == "symlink":
        return pkgs.zip_with_member(path, "link.html", b"/etc/passwd", symlink=True), None
    if case == "too_many_files":
        return pkgs.write_zip(path, {**pkgs.minimal(), **{f"f{i}.txt": "x" for i in range(30)}}), PackageLimits(
            max_files=10
        )
    if case == "total_size":
        return pkgs.write_zip(path, {**pkgs.minimal(), "big.txt": "y" * 200_000}), PackageLimits(
            max_total_bytes=100_000
        )
    if case == "bomb_declared":
        return pkgs.zip_bomb_declared(path), None
    if case == "bomb_actual":
        return pkgs.zip_bomb_forged(path), None
    if case == "manifest_outside":
        return pkgs.write_zip(path, pkgs.minimal("../../../etc/passwd")), None
    if case == "manifest_file_url":
        return pkgs.write_zip(path, pkgs.minimal("file:///etc/passwd")), None
    if case == "entity_expansion":
        return pkgs.write_zip(path, {"imsmanifest.xml": pkgs.BILLION_LAUGHS}), None
    if case == "external_entity":
        xxe = '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><manifest>&x;</manifest>'
        return pkgs.write_zip(path, {"imsmanifest.xml": xxe}), None
    if case == "not_a_package":
        return pkgs.write_zip(path, {"readme.txt": "just a zip"}), None
    raise AssertionError(case)


HOSTILE = {
    "zip_slip": "unsafe_path",
    "absolute_path": "unsafe_path",
    "symlink": "symlink",
    "too_many_files": "too_many_files",
    "total_size": "too_large",
    "bomb_declared": "zip_bomb",
    "bomb_actual": "zip_bomb",
    "manifest_outside": "outside_package",
    "manifest_file_url": "outside_package",
    "entity_expansion": "xml_entities",
    "external_entity": "xml_entities",
    "not_a_package": "not_a_package",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_package_is_refused_with_reason_and_fix(tmp_path: Path, case: str) -> None:
    path, limits = _hostile(tmp_path, case)
    with pytest.raises(LoaderError) as err:
        read_package(path, LIMITS, limits)
    assert err.value.reason == HOSTILE[case], str(err.value)
    assert err.value.fix


def test_symlink_inside_an_unpacked_package_is_refused(tmp_path: Path) -> None:
    folder = pkgs.write_folder(tmp_path / "pkg", pkgs.minimal())
    os.symlink("/etc/passwd", folder / "passwd.html")
    with pytest.raises(LoaderError) as err:
        read_package(folder, LIMITS)
    assert err.value.reason == "symlink"


def _with_doctype(source: Path, target: Path, part: str) -> Path:
    out = io.BytesIO()
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == part:
                body = data.split(b"?>", 1)[1]
                data = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>' + body
            zout.writestr(info, data)
    target.write_bytes(out.getvalue())
    return target


@pytest.mark.parametrize(("name", "part"), [("guide.docx", "word/document.xml"), ("deck.pptx", "ppt/presentation.xml")])
def test_office_files_with_entity_declarations_are_refused(tmp_path: Path, name: str, part: str) -> None:
    path = _with_doctype(FIXTURES / "good" / name, tmp_path / name, part)
    with pytest.raises(LoaderError) as err:
        load_document(path)
    assert err.value.reason == "xml_entities"


# -- PPTX sections ---------------------------------------------------------------------------------------
P14 = "http://schemas.microsoft.com/office/powerpoint/2010/main"


def _deck(path: Path, sections: list[tuple[str, list[int]]] | None, section_header_at: int | None = None) -> Path:
    import pptx

    deck = pptx.Presentation()
    titles = ["Working From Home", "Your desk", "Your chair", "Breaks", "Screen breaks"]
    for number, title in enumerate(titles):
        layout = deck.slide_layouts[2 if number == section_header_at else (0 if number == 0 else 1)]
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = title
        if number > 0 and number != section_header_at:
            slide.placeholders[1].text = f"Body of {title.lower()}."
            slide.notes_slide.notes_text_frame.text = f"Notes for {title.lower()}."
    buffer = io.BytesIO()
    deck.save(buffer)
    ids = [s.slide_id for s in deck.slides]
    data = buffer.getvalue()
    if sections:
        lst = "".join(
            f'<p14:section name="{name}" id="{{0000000{i}-0000-0000-0000-000000000000}}"><p14:sldIdLst>'
            + "".join(f'<p14:sldId id="{ids[n]}"/>' for n in members)
            + "</p14:sldIdLst></p14:section>"
            for i, (name, members) in enumerate(sections)
        )
        ext = (
            '<p:extLst><p:ext uri="{521415D9-36F7-43E2-AB2F-B90AF26B5E84}">'
            f'<p14:sectionLst xmlns:p14="{P14}">{lst}</p14:sectionLst></p:ext></p:extLst>'
        )
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
            for info in zin.infolist():
                part = zin.read(info)
                if info.filename == "ppt/presentation.xml":
                    part = part.replace(b"</p:presentation>", ext.encode() + b"</p:presentation>")
                zout.writestr(info, part)
        data = out.getvalue()
    path.write_bytes(data)
    return path


def test_pptx_sections_give_deck_section_slide_trail(tmp_path: Path) -> None:
    path = _deck(tmp_path / "wfh.pptx", [("Setting up", [0, 1, 2]), ("Staying well", [3, 4])])
    doc = load_document(path)
    trails = {s.page: s.heading_path for s in doc.sections}
    assert trails[2] == ("Working From Home", "Setting up", "Your desk")
    assert trails[5] == ("Working From Home", "Staying well", "Screen breaks")
    assert "Notes for your chair." in next(s.text for s in doc.sections if s.page == 3)


def test_pptx_section_header_slides_give_the_trail_without_sections(tmp_path: Path) -> None:
    doc = load_document(_deck(tmp_path / "wfh.pptx", None, section_header_at=3))
    trails = {s.page: s.heading_path for s in doc.sections}
    assert trails[5] == ("Working From Home", "Breaks", "Screen breaks")
    assert trails[2] == ("Working From Home", "Your desk")


# -- the pipeline: mixed library, citations, incremental, nothing lost ------------------------------------
def _library(root: Path) -> Path:
    lib = root / "library"
    lib.mkdir()
    shutil.copytree(SAMPLE_LIBRARY / "giving-feedback", lib / "giving-feedback")
    pkgs.scorm12_html(lib)
    pkgs.scorm2004_h5p(lib)
    pkgs.storyline(lib)
    pkgs.rise(lib)
    pkgs.unreadable(lib)
    pkgs.zip_with_member(lib / "slip.zip", "../evil.html")
    talks = lib / "team-talks"
    talks.mkdir()
    (talks / "standup.srt").write_text(
        "1\n00:00:02,000 --> 00:00:06,000\nKeep the stand-up to fifteen minutes.\n\n"
        "2\n00:01:40,500 --> 00:01:45,000\nPark long discussions for after the stand-up.\n"
    )
    return lib


def _by_path(report: IngestReport) -> dict[str, str]:
    return {f.path: f.status for f in report.files}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, IngestReport]:
    tmp = tmp_path_factory.mktemp("mixed")
    lib = _library(tmp)
    report = IngestPipeline(make_settings(tmp, library={"dir": str(lib)})).run(lib)
    return tmp, lib, report


def test_mixed_library_reports_every_item(mixed: tuple[Path, Path, IngestReport]) -> None:
    _, _, report = mixed
    status = _by_path(report)
    assert status["warehouse-safety.zip/sco1/index.html"] == "added"
    assert status["warehouse-safety.zip/sco2/hazards.vtt"] == "added"
    assert status["minute-taking.zip/index.html"] == "added"
    assert status["customer-complaints.zip/story.html"] == "added"
    assert status["hybrid-meetings.zip/scormdriver/indexAPI.html"] == "added"
    assert status["team-talks/standup.srt"] == "added"
    failed = {f.path: f for f in report.files if f.status == "failed"}
    assert failed["legacy-induction.zip/sitemap.swf"].reason == "flash_only"
    assert failed["legacy-induction.zip/org.html"].reason == "no_text"
    assert failed["slip.zip"].reason == "unsafe_path" and failed["slip.zip"].fix
    assert not any(p.endswith(".mp4") for p in status)  # media are companions, not unsupported files


def test_package_answers_cite_the_package_titles_and_captions_carry_time(
    mixed: tuple[Path, Path, IngestReport],
) -> None:
    tmp, lib, _ = mixed
    pilot = CoursePilot(make_settings(tmp, library={"dir": str(lib)}))
    answer = pilot.ask("What should I do about a loose carpet tile near dock four?")
    assert not answer.refused, answer.text
    top = answer.citations[0]
    assert top.label == "Warehouse Safety Walk › On the floor › Spotting trip hazards (at 04:10)"
    answer = pilot.ask("Who should own an action item from a meeting?")
    assert answer.citations[0].location.course_id == "minute-taking"
    assert answer.citations[0].label.startswith("Minute-Taking Essentials › Writing action items › Slide")
    catalogue = pilot.catalogue()
    assert catalogue["customer-complaints"].title == "Handling Customer Complaints"


def test_unchanged_package_is_skipped_without_unzipping(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    package = pkgs.storyline(lib)
    settings = make_settings(tmp_path, library={"dir": str(lib)})
    IngestPipeline(settings).run(lib)
    stat = package.stat()
    package.write_bytes(b"\x00" * stat.st_size)  # unreadable if it were opened...
    os.utime(package, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ...but same size and mtime
    report = IngestPipeline(settings).run(lib)
    assert _by_path(report) == {"customer-complaints.zip/story.html": "unchanged"}


def test_reexported_package_with_the_same_text_reuses_its_vectors(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    pkgs.scorm12_html(lib)
    settings = make_settings(tmp_path, library={"dir": str(lib)})
    first = IngestPipeline(settings).run(lib)
    assert first.chunks_embedded > 0
    package = lib / "warehouse-safety.zip"
    files = {n: zipfile.ZipFile(package).read(n) for n in zipfile.ZipFile(package).namelist()}
    files["sco1/index.html"] = files["sco1/index.html"].replace(b"<title>", b"<!-- re-exported --><title>")
    pkgs.write_zip(package, files, time=(2025, 6, 1, 12, 0, 0))
    again = IngestPipeline(settings).run(lib)
    assert again.chunks_embedded == 0 and again.chunks_deleted == 0
    assert {f.status for f in again.files} <= {"unchanged", "updated"}


def test_a_package_turned_hostile_keeps_what_was_indexed(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    pkgs.rise(lib)
    settings = make_settings(tmp_path, library={"dir": str(lib)})
    first = IngestPipeline(settings).run(lib)
    total = first.chunks_total
    pkgs.zip_with_member(lib / "hybrid-meetings.zip", "../../evil.html")
    report = IngestPipeline(settings).run(lib)
    assert _by_path(report) == {"hybrid-meetings.zip": "failed"}
    assert report.chunks_total == total and report.chunks_deleted == 0
    assert "hybrid-meetings" in CoursePilot(settings).catalogue()
