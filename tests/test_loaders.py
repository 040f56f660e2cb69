"""Document loaders on the fixtures of tests/fixtures/build_fixtures.py (regenerate them with it)."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ingest.loaders as loaders
from assistant.core.errors import LoaderError
from assistant.core.types import LoadedDocument, Section
from ingest.loaders import LoaderLimits, load_document, register, supported_suffixes

FIXTURES = Path(__file__).parent / "fixtures"
GOOD = FIXTURES / "good"
BAD = FIXTURES / "bad"


def trails(doc: LoadedDocument) -> list[tuple[tuple[str, ...], int | None]]:
    return [(s.heading_path, s.page) for s in doc.sections]


def section(doc: LoadedDocument, *heading_path: str, page: int | None = None) -> Section:
    matches = [s for s in doc.sections if s.heading_path == heading_path and (page is None or s.page == page)]
    assert len(matches) == 1, f"{heading_path} p{page}: {trails(doc)}"
    return matches[0]


def assert_clean(doc: LoadedDocument) -> None:
    for s in doc.sections:
        assert s.text.strip(), s
        assert s.text == s.text.strip()
        assert "  " not in s.text or "```" in s.text
        assert "\n\n" not in s.text


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_supported_suffixes() -> None:
    assert {".pdf", ".docx", ".pptx", ".md", ".markdown", ".html", ".htm", ".txt"} <= supported_suffixes()


def test_import_is_cheap() -> None:
    code = (
        "import sys, ingest.loaders as l; l.supported_suffixes(); "
        "heavy = [m for m in ('pypdf', 'docx', 'pptx', 'bs4', 'markdown_it', 'lxml') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_register_custom_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(loaders._REGISTRY, ".zzz", loaders._REGISTRY.get(".txt"))  # restored on teardown

    @register("ZZZ")
    def load_zzz(path: Path, limits: LoaderLimits) -> LoadedDocument:
        return LoadedDocument(path=str(path), kind="zzz", title="Z", sections=[Section(text="z")])

    f = tmp_path / "a.ZZZ"
    f.write_text("x")
    assert ".zzz" in supported_suffixes()
    assert load_document(f).kind == "zzz"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LoaderError) as err:
        load_document(tmp_path / "nope.pdf")
    assert err.value.reason == "missing"
    assert "nope.pdf" in str(err.value)


def test_too_large_file_on_disk(tmp_path: Path) -> None:
    f = tmp_path / "big.txt"
    f.write_text("word " * 1000)
    with pytest.raises(LoaderError) as err:
        load_document(f, LoaderLimits(max_file_bytes=1000))
    assert err.value.reason == "too_large"
    assert err.value.fix


def test_parser_crash_becomes_corrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(path: Path, limits: LoaderLimits) -> LoadedDocument:
        raise KeyError("bad structure")

    monkeypatch.setitem(loaders._REGISTRY, ".boom", boom)
    f = tmp_path / "x.boom"
    f.write_text("x")
    with pytest.raises(LoaderError) as err:
        load_document(f)
    assert err.value.reason == "corrupt" and err.value.fix


# ---------------------------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------------------------


def test_pdf_with_outline() -> None:
    doc = load_document(GOOD / "outline.pdf")
    assert doc.kind == "pdf"
    assert doc.title == "Spreadsheet Basics"  # metadata title
    assert doc.pages == 3
    assert doc.warnings == []
    assert trails(doc) == [
        (("Getting Started",), 1),
        (("Getting Started", "Opening a Workbook"), 1),
        (("Getting Started", "Opening a Workbook"), 2),  # section spans pages 1-2: one Section per page
        (("Getting Started", "Entering Data"), 2),
        (("Formulas",), 3),
        (("Formulas", "Cell References"), 3),
    ]
    assert_clean(doc)
    first = section(doc, "Getting Started")
    assert first.text.startswith("This module introduces the spreadsheet application")
    assert "Getting Started" not in first.text  # the heading line is not body text
    cont = section(doc, "Getting Started", "Opening a Workbook", page=2)
    # lines that continue a sentence are re-joined
    assert cont.text == (
        "Workbooks stored on the shared drive open in read-only mode until you choose Enable Editing in the yellow bar."
    )
    entering = section(doc, "Getting Started", "Entering Data")
    assert "Each spreadsheet cell holds a number" in entering.text  # 'spread-\nsheet' de-hyphenated
    assert "Entering Data" not in entering.text
    assert section(doc, "Formulas", "Cell References").text.endswith("such as $A$1 stays fixed.")


def test_pdf_without_outline_uses_font_sizes() -> None:
    doc = load_document(GOOD / "plain.pdf")
    assert doc.title == "Pivot Tables"  # no metadata title ('untitled' is ignored): first H1
    assert doc.pages == 2
    assert trails(doc) == [
        (("Pivot Tables",), 1),
        (("Pivot Tables", "1.1 Building the Table"), 1),
        (("Pivot Tables", "1.1 Building the Table"), 2),
        (("Pivot Tables", "1.2 Filtering Results"), 2),
    ]
    assert_clean(doc)
    building = section(doc, "Pivot Tables", "1.1 Building the Table", page=1)
    # short Title Case lines in the body font are not headings
    assert "\nTotal Revenue\nUnits Sold\n" in building.text
    assert section(doc, "Pivot Tables", "1.1 Building the Table", page=2).text == (
        "Rename the value fields to make the report easier to read."
    )


def _pdf_bytes(pages: list[list[str]], title: str | None = None) -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, invariant=1)
    if title:
        c.setTitle(title)
    for lines in pages:
        y = 750
        for line in lines:
            c.drawString(72, y, line)
            y -= 15
        c.showPage()
    c.save()
    return buf.getvalue()


def test_pdf_blank_page_warns(tmp_path: Path) -> None:
    f = tmp_path / "02-with_blank.pdf"
    f.write_bytes(_pdf_bytes([["Some body text on the first page."], [], ["More text on page three."]]))
    doc = load_document(f)
    assert doc.pages == 3
    assert [s.page for s in doc.sections] == [1, 3]
    assert all(s.heading_path == () for s in doc.sections)
    assert any("page 2" in w for w in doc.warnings)
    assert doc.title == "With blank"  # file stem, prettified


def test_pdf_running_headers_and_footers_dropped(tmp_path: Path) -> None:
    f = tmp_path / "running.pdf"
    bodies = ["Open the file.", "Check the totals.", "Save a copy as CSV.", "Share it with the team."]
    pages = [["Acme Training", body, f"Page {n} of 4"] for n, body in enumerate(bodies, start=1)]
    f.write_bytes(_pdf_bytes(pages))
    doc = load_document(f)
    assert [s.text for s in doc.sections] == bodies
    assert [s.page for s in doc.sections] == [1, 2, 3, 4]


def test_pdf_owner_password_only_opens(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(GOOD / "plain.pdf"))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    f = tmp_path / "restricted.pdf"
    with f.open("wb") as out:
        writer.write(out)
    doc = load_document(f)
    assert doc.title == "Pivot Tables"
    assert len(doc.sections) == 4


def test_pdf_heading_heuristics_without_font_info() -> None:
    from ingest.loaders.pdf import Line, _detect_headings

    page = [
        Line("Introduction"),
        Line("This paragraph explains the purpose of the course in plenty of words."),
        Line("2.1 Setting up"),
        Line("Install the tools before the first session and check that they start."),
        Line("It ends with a period."),
        Line("Short Title Case Line"),
    ]
    found = _detect_headings([page])
    assert found == {(0, 0): 1, (0, 2): 2}


@pytest.mark.parametrize(
    ("name", "reason", "fix_word"),
    [
        ("truncated.pdf", "corrupt", "re-export"),
        ("encrypted.pdf", "encrypted", "password"),
        ("scanned.pdf", "no_text", "OCR"),
    ],
)
def test_bad_pdfs(name: str, reason: str, fix_word: str) -> None:
    with pytest.raises(LoaderError) as err:
        load_document(BAD / name)
    assert err.value.reason == reason
    assert name in str(err.value) and err.value.path.endswith(name)
    assert err.value.fix and fix_word in err.value.fix


# ---------------------------------------------------------------------------------------------
# DOCX
# ---------------------------------------------------------------------------------------------


def test_docx() -> None:
    doc = load_document(GOOD / "guide.docx")
    assert doc.kind == "docx"
    assert doc.title == "New Starter Guide"
    assert doc.pages is None
    assert trails(doc) == [
        ((), None),
        (("Welcome",), None),
        (("Welcome", "Your First Week"), None),
        (("Welcome", "Your First Week", "Accounts to Request"), None),
        (("Welcome", "Policies", "Expenses"), None),  # 'Policies' has no body: dropped, still in the trail
        (("Next Steps",), None),
    ]
    assert_clean(doc)
    assert section(doc).text == "Read this guide before your first day."
    assert section(doc, "Welcome", "Your First Week").text == (
        "During your first week you will:\n- Meet your buddy\n- Set up your laptop\n- Complete the safety training"
    )
    # table rendered as readable rows, in document order between the paragraphs around it
    assert section(doc, "Welcome", "Your First Week", "Accounts to Request").text == (
        "Ask for these accounts on day one.\n"
        "System: Email; Owner: IT; How to request: Service desk form\n"
        "System: Payroll; Owner: HR; How to request: Email hr@example.com\n"
        "Your manager approves every request."
    )


def test_docx_heading_depth_folding(tmp_path: Path) -> None:
    doc = load_document(GOOD / "guide.docx", LoaderLimits(max_heading_depth=2))
    assert ("Welcome", "Accounts to Request") in [s.heading_path for s in doc.sections]
    assert ("Welcome", "Expenses") in [s.heading_path for s in doc.sections]


@pytest.mark.parametrize("suffix", [".docx", ".pptx"])
def test_office_garbage_is_corrupt(tmp_path: Path, suffix: str) -> None:
    f = tmp_path / f"garbage{suffix}"
    shutil.copy(BAD / "garbage.docx", f)
    with pytest.raises(LoaderError) as err:
        load_document(f)
    assert err.value.reason == "corrupt"
    assert f.name in str(err.value)
    assert "save it again" in (err.value.fix or "")


def test_garbage_docx_fixture() -> None:
    with pytest.raises(LoaderError) as err:
        load_document(BAD / "garbage.docx")
    assert err.value.reason == "corrupt"
    assert "garbage.docx" in str(err.value)
    assert err.value.fix == "open it in Word and save it again as .docx, then re-add it."


def test_zip_without_document_part_is_corrupt(tmp_path: Path) -> None:
    import zipfile

    f = tmp_path / "notadoc.docx"
    with zipfile.ZipFile(f, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(LoaderError) as err:
        load_document(f)
    assert err.value.reason == "corrupt"


def test_zipbomb_refused_quickly() -> None:
    start = time.perf_counter()
    with pytest.raises(LoaderError) as err:
        load_document(BAD / "zipbomb.docx")
    assert time.perf_counter() - start < 2.0
    assert err.value.reason == "too_large"
    assert "zipbomb.docx" in str(err.value)
    assert "MB uncompressed" in err.value.message
    assert err.value.fix and "embedded media" in err.value.fix


def test_zipbomb_member_ratio_check() -> None:
    # total under a raised limit, but one member inflates > 10 MB at > 200:1
    with pytest.raises(LoaderError) as err:
        load_document(BAD / "zipbomb.docx", LoaderLimits(max_decompressed_bytes=10**10))
    assert err.value.reason == "too_large"
    assert "word/document.xml" in err.value.message


# ---------------------------------------------------------------------------------------------
# PPTX
# ---------------------------------------------------------------------------------------------


def test_pptx() -> None:
    doc = load_document(GOOD / "deck.pptx")
    assert doc.kind == "pptx"
    assert doc.title == "Customer Service Essentials"
    assert doc.pages == 3
    deck = "Customer Service Essentials"
    assert trails(doc) == [
        ((deck, deck), 1),
        ((deck, "Active Listening"), 2),
        ((deck, "Handling Complaints"), 3),
    ]
    assert_clean(doc)
    s1, s2, s3 = doc.sections
    assert s1.text == "Module 1: Foundations\nSpeaker notes: Welcome the group and explain the agenda."
    assert s2.text == (
        "Let the customer finish\nRepeat the key facts back\nAsk clarifying questions\n"
        "Speaker notes: Demonstrate with a role play."
    )
    assert "Active Listening" not in s2.text  # the title is the heading, not body
    assert s3.text == (
        "Step: 1; Action: Apologise\nStep: 2; Action: Offer a fix\nSpeaker notes: Share a real example from last month."
    )


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def test_markdown() -> None:
    doc = load_document(GOOD / "notes.md")
    assert doc.kind == "markdown"
    assert doc.title == "Git Workflow"  # front matter title
    assert doc.pages is None
    assert [s.heading_path for s in doc.sections] == [
        (),
        ("Git Basics",),
        ("Git Basics", "Branching"),
        ("Git Basics", "Branching", "Naming Branches"),
        ("Git Basics", "Branching", "Naming Branches", "Prefixes"),
        ("Git Basics", "Merging"),  # setext heading
        ("Git Basics", "Empty Heading", "Under Empty"),
        ("Reference",),
    ]
    assert all(s.page is None for s in doc.sections)
    assert section(doc).text == "This guide covers the everyday Git workflow."  # front matter skipped
    assert "tags" not in " ".join(s.text for s in doc.sections)
    # the fenced '# not a heading' stays body text of its section
    assert section(doc, "Git Basics", "Branching").text == (
        "Create a branch for every change:\n# not a heading\ngit switch -c feature/login"
    )
    assert not any("not a heading" in part for s in doc.sections for part in s.heading_path)
    assert section(doc, "Git Basics", "Branching", "Naming Branches", "Prefixes").text == (
        "- feature/ for new work\n- fix/ for bug fixes"
    )
    assert section(doc, "Reference").text == (
        "Command: git status; Purpose: Show changes\nCommand: git log; Purpose: Show history"
    )


def test_markdown_heading_depth_folded() -> None:
    doc = load_document(GOOD / "notes.md", LoaderLimits(max_heading_depth=2))
    paths = [s.heading_path for s in doc.sections]
    assert ("Git Basics", "Naming Branches") in paths
    assert ("Git Basics", "Prefixes") in paths
    assert ("Git Basics", "Under Empty") in paths
    assert max(len(p) for p in paths) == 2


def test_markdown_title_falls_back_to_h1_then_stem(tmp_path: Path) -> None:
    a = tmp_path / "a.md"
    a.write_text("Intro\n\n# First Heading\n\nBody.\n\n# Second\n\nMore.\n", encoding="utf-8")
    assert load_document(a).title == "First Heading"
    b = tmp_path / "03_team-rituals.markdown"
    b.write_text("## Only a Subheading\n\nBody text.\n", encoding="utf-8")
    doc = load_document(b)
    assert doc.title == "Team rituals"
    assert doc.sections[0].heading_path == ("Only a Subheading",)


def test_markdown_html_blocks(tmp_path: Path) -> None:
    f = tmp_path / "h.md"
    f.write_text(
        "# T\n\n<script>\nvar x = 1;\n</script>\n\n<!-- hidden -->\n\n<div>\nShown text\n</div>\n",
        encoding="utf-8",
    )
    assert load_document(f).sections == [Section(heading_path=("T",), text="Shown text")]


def test_markdown_bom_and_crlf(tmp_path: Path) -> None:
    f = tmp_path / "bom.md"
    f.write_bytes("\ufeff# Título\r\n\r\nLínea   uno\r\ncontinúa.\r\n".encode())
    doc = load_document(f)
    assert doc.warnings == []
    assert doc.sections == [Section(heading_path=("Título",), text="Línea uno continúa.")]


def test_empty_md() -> None:
    with pytest.raises(LoaderError) as err:
        load_document(BAD / "empty.md")
    assert err.value.reason == "empty"
    assert "empty.md" in str(err.value) and err.value.fix


def test_deep_md_too_many_sections() -> None:
    with pytest.raises(LoaderError) as err:
        load_document(BAD / "deep.md")
    assert err.value.reason == "too_many_sections"
    assert "deep.md" in str(err.value)
    assert err.value.fix and "split" in err.value.fix


def test_deep_md_fine_with_higher_limit_and_depth_folded() -> None:
    doc = load_document(BAD / "deep.md", LoaderLimits(max_sections=20_000, max_heading_depth=3))
    assert len(doc.sections) == 6000
    assert max(len(s.heading_path) for s in doc.sections) == 3
    # '#### Heading 3' folds into level 3 and replaces 'Heading 2' there
    assert doc.sections[3].heading_path == ("Heading 0", "Heading 1", "Heading 3")


def test_huge_markdown_too_large(tmp_path: Path) -> None:
    f = tmp_path / "huge.md"
    para = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 20
    with f.open("w", encoding="utf-8") as out:
        for i in range(2000):
            out.write(f"## Part {i}\n\n{para}\n\n")
    size = f.stat().st_size
    assert size > 2_000_000
    with pytest.raises(LoaderError) as err:
        load_document(f, LoaderLimits(max_file_bytes=1_000_000))
    assert err.value.reason == "too_large" and "huge.md" in str(err.value)
    with pytest.raises(LoaderError) as err:
        load_document(f, LoaderLimits(max_chars=100_000))
    assert err.value.reason == "too_large" and err.value.fix


def test_too_many_sections_custom_limit(tmp_path: Path) -> None:
    f = tmp_path / "many.md"
    f.write_text("".join(f"# H{i}\n\ntext {i}\n\n" for i in range(30)), encoding="utf-8")
    assert len(load_document(f).sections) == 30
    with pytest.raises(LoaderError) as err:
        load_document(f, LoaderLimits(max_sections=10))
    assert err.value.reason == "too_many_sections"


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------


def test_html() -> None:
    doc = load_document(GOOD / "page.html")
    assert doc.kind == "html"
    assert doc.title == "Effective Meetings"  # <title>
    h1 = "Running Effective Meetings"
    assert [s.heading_path for s in doc.sections] == [
        (h1,),
        (h1, "Before the Meeting"),
        (h1, "During the Meeting"),
        (h1, "During the Meeting", "Taking Notes"),
    ]
    assert_clean(doc)
    everything = " ".join(s.text for s in doc.sections)
    for dropped in ("tracking", "console.log", "font-family", "Home", "Courses"):
        assert dropped not in everything
    assert section(doc, h1).text == "Good meetings have a clear purpose and end on time."
    assert section(doc, h1, "Before the Meeting").text == "- Share an agenda\n- Invite only the people who are needed"
    assert section(doc, h1, "During the Meeting", "Taking Notes").text == (
        "Record decisions and owners.\nSend the notes the same day.\n"
        "Role: Chair; Duty: Keeps time\nRole: Scribe; Duty: Writes notes"
    )


def test_html_title_from_h1(tmp_path: Path) -> None:
    f = tmp_path / "x.htm"
    f.write_text("<h1>Main <em>Topic</em></h1><p>Hello <b>there</b>, world.</p>", encoding="utf-8")
    doc = load_document(f)
    assert doc.title == "Main Topic"
    assert doc.sections == [Section(heading_path=("Main Topic",), text="Hello there, world.")]


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


def test_txt() -> None:
    doc = load_document(GOOD / "safety-notes.txt")
    assert doc.kind == "text"
    assert doc.title == "Safety notes"
    # A short capitalised line on its own, followed by text, is a heading.
    assert doc.sections == [
        Section(
            heading_path=("Workplace Safety Notes",),
            text=(
                "Always report hazards to your supervisor before the end of your shift.\n"
                "- Keep exits clear\n- Wear protective equipment"
            ),
        )
    ]


def test_latin1_txt_decodes_with_warning() -> None:
    doc = load_document(BAD / "latin1.txt")
    assert doc.sections[0].text == "Café menu: crème brûlée – € 3.50"
    assert doc.warnings == ["decoded as cp1252; save as UTF-8"]


def test_latin1_fallback_never_crashes(tmp_path: Path) -> None:
    f = tmp_path / "odd.txt"
    f.write_bytes(b"caf\xe9 \x81\x8d ok")  # bytes undefined in cp1252
    doc = load_document(f)
    assert doc.sections[0].text.startswith("café")
    assert doc.warnings == ["decoded as latin-1; save as UTF-8"]


def test_binary_txt_is_corrupt() -> None:
    with pytest.raises(LoaderError) as err:
        load_document(BAD / "binary.txt")
    assert err.value.reason == "corrupt"
    assert "binary.txt" in str(err.value) and err.value.fix


def test_unsupported_suffix() -> None:
    with pytest.raises(LoaderError) as err:
        load_document(BAD / "unsupported.xyz")
    assert err.value.reason == "unsupported"
    assert "unsupported.xyz" in str(err.value)
    assert err.value.fix and ".pdf" in err.value.fix


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    f = tmp_path / "NOTES.TXT"
    f.write_text("hello", encoding="utf-8")
    assert load_document(f).sections[0].text == "hello"


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


def test_fixtures_are_small() -> None:
    files = [p for p in FIXTURES.glob("*/*") if p.is_file()]
    assert len(files) >= 16
    for p in files:
        assert p.stat().st_size < 300_000, p
