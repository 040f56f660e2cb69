"""Synthetic libraries: a text pool from the sample library and SciFact, course folders written from it."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from evals.bench.models import CHUNKS_PER_MODULE, MODULES_PER_COURSE, SCIFACT_DIR, WORDS_PER_PAGE

if TYPE_CHECKING:
    from assistant.core.types import LoadedDocument


@dataclass
class _Source:
    title: str
    sentences: list[str]
    tokens: list[int]
    origin: str


@dataclass
class TextPool:
    """Passages to recombine: sample-library sections and SciFact abstracts, split into sentences."""

    sources: list[_Source]
    headings: list[str]
    sentence_source: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, source in enumerate(self.sources):
            for sentence in source.sentences:
                self.sentence_source.setdefault(sentence, i)

    def fingerprint(self) -> str:
        digest = hashlib.sha1()
        for source in self.sources:
            digest.update(source.origin.encode() + b"\0" + "\n".join(source.sentences).encode() + b"\0")
        return digest.hexdigest()[:16]

    def source_text(self, i: int) -> str:
        source = self.sources[i]
        return f"{source.title}\n{' '.join(source.sentences)}"


def iter_documents(library: Path) -> Iterator[tuple[Path, LoadedDocument]]:
    """Every supported file under `library` (hidden files left out) as our loaders read it; a broken one is skipped."""
    from ingest.loaders import load_document, supported_suffixes

    suffixes = supported_suffixes()
    for path in sorted(library.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in suffixes or path.name.startswith("."):
            continue
        try:
            doc = load_document(path)
        except Exception:  # a broken file only leaves it out
            continue
        yield path, doc


def build_pool(sample_library: Path, scifact_dir: Path | None = SCIFACT_DIR, scifact_docs: int = 1200) -> TextPool:
    """Sentences from every section of the sample library (via our loaders) and the first SciFact abstracts."""
    from assistant.core.text import count_tokens, split_sentences

    sources: list[_Source] = []
    headings: list[str] = []
    for path, doc in iter_documents(sample_library):
        for i, section in enumerate(doc.sections):
            sentences = [s for s in split_sentences(section.text) if len(s.split()) >= 4]
            if not sentences:
                continue
            title = section.heading_path[-1] if section.heading_path else doc.title
            headings.append(title)
            sources.append(_Source(title, sentences, [count_tokens(s) for s in sentences], f"sample:{path.name}#{i}"))
    if scifact_dir is not None and (scifact_dir / "corpus.jsonl").is_file() and scifact_docs > 0:
        added = 0
        with open(scifact_dir / "corpus.jsonl", encoding="utf-8") as fh:
            for line in fh:
                if added >= scifact_docs:
                    break
                row = json.loads(line)
                sentences = [s for s in split_sentences(str(row.get("text") or "")) if len(s.split()) >= 4]
                title = " ".join(str(row.get("title") or "").split()[:9]).rstrip(".:,;")
                if not sentences or not title:
                    continue
                headings.append(title)
                sources.append(_Source(title, sentences, [count_tokens(s) for s in sentences], f"scifact:{row['_id']}"))
                added += 1
    if not sources:
        raise ValueError(f"no text found to build synthetic libraries from ({sample_library}, {scifact_dir})")
    return TextPool(sources=sources, headings=headings)


def _simulated_chunks(tokens: Sequence[int], size: int, overlap: int) -> int:
    """How many chunks `ingest.chunker.pack` makes of sentences with these token counts (same greedy rule)."""
    units: list[int] = []
    for t in tokens:
        units.extend([size] * (t // size) + ([t % size] if t % size else []) if t > size else [t])
    count = 0
    current: list[int] = []
    used = 0
    for unit in units:
        if current and used + unit > size:
            count += 1
            carried: list[int] = []
            carried_tokens = 0
            for prev in reversed(current):
                if carried_tokens + prev > overlap or carried_tokens + prev + unit > size:
                    break
                carried.insert(0, prev)
                carried_tokens += prev
            current, used = carried, carried_tokens
        current.append(unit)
        used += unit
    return count + (1 if current else 0)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "module"


class SyntheticLibrary(BaseModel):
    path: str
    target_chunks: int
    expected_chunks: int
    courses: int
    files: int
    words: int
    pages: float


def generate_library(
    root: Path, target_chunks: int, pool: TextPool, size_tokens: int = 256, overlap_tokens: int = 32, seed: int = 7
) -> SyntheticLibrary:
    """Write course folders of Markdown modules totalling about `target_chunks` chunks (deterministic per seed).

    Each course draws on a cluster of ~30 pool passages; each H2 section interleaves runs of consecutive sentences
    from 2-3 of them, sized (with the chunker's packing rule) to make 1-3 chunks.
    """
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = random.Random(seed * 1_000_003 + target_chunks)
    n = len(pool.sources)
    modules_total = max(1, math.ceil(target_chunks / CHUNKS_PER_MODULE))
    courses = max(1, math.ceil(modules_total / MODULES_PER_COURSE))
    made = words = files = 0
    levels = ["beginner", "intermediate", "advanced"]
    for c in range(courses):
        if made >= target_chunks:
            break
        cluster = [rng.randrange(n) for _ in range(30)]
        title = pool.sources[cluster[0]].title
        course_id = f"syn-{c:04d}"
        folder = root / f"{course_id}-{_slug(title)[:24]}"
        folder.mkdir()
        skills = sorted({pool.sources[i].title.split(" ")[0].lower() for i in cluster[:5]})
        manifest = {
            "id": course_id,
            "title": f"{title} ({c + 1})",
            "description": " ".join(pool.sources[cluster[1]].sentences[:2]),
            "level": levels[c % 3],
            "skills": skills,
        }
        (folder / "course.yaml").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        for m in range(MODULES_PER_COURSE):
            if made >= target_chunks:
                break
            want = min(CHUNKS_PER_MODULE, target_chunks - made)
            module_title = pool.headings[rng.randrange(len(pool.headings))]
            lines = [f"# {module_title}", ""]
            got = 0
            while got < want:
                goal = min(rng.choice([1, 1, 2, 2, 3]), want - got)
                heading = pool.headings[rng.randrange(len(pool.headings))]
                level = "###" if rng.random() < 0.2 else "##"
                picks = [cluster[rng.randrange(len(cluster))] for _ in range(rng.choice([2, 3]))]
                runs = []
                for i in picks:
                    src = pool.sources[i]
                    start = rng.randrange(len(src.sentences))
                    runs.append([(src.sentences[j], src.tokens[j]) for j in range(start, len(src.sentences))])
                chosen: list[tuple[str, int]] = []
                turn, left_in_run = 0, rng.choice([2, 3, 4])
                while True:
                    run = runs[turn % len(runs)]
                    if not run or left_in_run == 0:
                        turn += 1
                        left_in_run = rng.choice([2, 3, 4])
                        if not any(runs):  # the passages ran out: top up from another passage of the course
                            src = pool.sources[cluster[rng.randrange(len(cluster))]]
                            runs.append(list(zip(src.sentences, src.tokens, strict=True)))
                        continue
                    candidate = run.pop(0)
                    left_in_run -= 1
                    tokens = [t for _, t in chosen] + [candidate[1]]
                    if chosen and _simulated_chunks(tokens, size_tokens, overlap_tokens) > goal:
                        break
                    chosen.append(candidate)
                lines += [f"{level} {heading}", ""]
                i = 0
                while i < len(chosen):
                    step = rng.choice([2, 3, 4, 5])
                    lines += [" ".join(s for s, _ in chosen[i : i + step]), ""]
                    i += step
                words += sum(len(s.split()) for s, _ in chosen)
                got += _simulated_chunks([t for _, t in chosen], size_tokens, overlap_tokens)
            (folder / f"{m + 1:02d}-{_slug(module_title)}.md").write_text("\n".join(lines), encoding="utf-8")
            files += 1
            made += got
    return SyntheticLibrary(
        path=str(root),
        target_chunks=target_chunks,
        expected_chunks=made,
        courses=courses,
        files=files,
        words=words,
        pages=round(words / WORDS_PER_PAGE, 1),
    )


def edit_one_file(library: Path) -> Path:
    """Edit one Markdown module in the middle of the library: reword one paragraph, append a short section."""
    files = sorted(p for p in library.rglob("*.md") if p.is_file())
    if not files:
        raise ValueError(f"{library} has no Markdown module to edit")
    path = files[len(files) // 2]
    lines = path.read_text(encoding="utf-8").split("\n")
    body = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith(("#", "-", "|", "```"))]
    if body:
        i = body[len(body) // 2]
        lines[i] = lines[i] + " This paragraph was revised for the benchmark's one-file edit."
    lines += [
        "",
        "## Revision notes",
        "",
        "This module was revised to reflect the latest guidance. The examples were checked again, "
        "and one paragraph was reworded so that the key point comes first.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def library_stats(library: Path) -> tuple[int, int, float]:
    """(files, words, pages) of a library as our loaders read it (pages as defined in DEFINITIONS)."""
    files = words = 0
    pages = 0.0
    for _path, doc in iter_documents(library):
        n = sum(len(s.text.split()) for s in doc.sections)
        files += 1
        words += n
        pages += doc.pages if doc.pages else n / WORDS_PER_PAGE
    return files, words, round(pages, 1)
