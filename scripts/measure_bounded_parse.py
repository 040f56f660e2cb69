"""Seconds and peak memory of parsing the hostile files of issue 15 item 11, one fresh process per file.

    .venv/bin/python scripts/measure_bounded_parse.py --json            # all cases
    .venv/bin/python scripts/measure_bounded_parse.py --case md-lists   # one case

Each case writes its file into a temp folder, then a child process runs `load_document` on it with the default
limits and reports the outcome (sections, or the failure reason), the number of warnings and their JSON size, the
wall time and the child's peak resident memory (ru_maxrss). Nothing is embedded: this measures the parse.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = ("md-lists", "md-headings", "pdf-empty-pages")

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from assistant.core.errors import LoaderError
from ingest.loaders import load_document
path = Path(sys.argv[1])
start = time.perf_counter()
out = {}
try:
    doc = load_document(path)
    out.update(outcome="loaded", sections=len(doc.sections), warnings=len(doc.warnings),
               warnings_json_bytes=len(json.dumps(doc.warnings)))
except LoaderError as exc:
    out.update(outcome=exc.reason, message=exc.message[-160:])
out["seconds"] = round(time.perf_counter() - start, 2)
out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(out))
"""


def make_case(name: str, folder: Path) -> Path:
    """The hostile file for one case (5 MB of Markdown list items or headings, a PDF of 99,990 empty pages)."""
    if name == "md-lists":
        path = folder / "lists.md"
        line = "- a\n"
        path.write_text(line * (5_000_000 // len(line)))
    elif name == "md-headings":
        path = folder / "headings.md"
        line = "# h\n"
        path.write_text(line * (5_000_000 // len(line)))
    elif name == "pdf-empty-pages":
        import pypdf

        path = folder / "empty-pages.pdf"
        from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

        writer = pypdf.PdfWriter()
        first = writer.add_blank_page(width=300, height=100)  # one page with text, then 99,989 empty ones
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
        content.set_data(b"BT /F1 12 Tf 10 50 Td (Only the first page has text.) Tj ET")
        first[NameObject("/Contents")] = writer._add_object(content)
        for _ in range(99_989):
            writer.add_blank_page(width=72, height=72)
        writer.compress_identical_objects()
        with path.open("wb") as fh:
            writer.write(fh)
    else:
        raise SystemExit(f"unknown case {name!r}; choose from {', '.join(CASES)}")
    return path


def measure(name: str, folder: Path) -> dict[str, object]:
    path = make_case(name, folder)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode != 0:
        return {"case": name, "bytes": path.stat().st_size, "error": done.stderr.strip()[-400:]}
    return {"case": name, "bytes": path.stat().st_size, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=CASES, action="append", help="run only this case (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.case or CASES:
            result = measure(name, Path(tmp))
            results.append(result)
            if not args.json:
                print(json.dumps(result), flush=True)
    if args.json:
        print(json.dumps({"cases": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
