"""The openstax-intro-business benchmark: its questions, its gold matching, and an index of its library.

Gold (from the benchmark's README): a location is a hit when course and module file match and either the
file is not a PPTX and the gold book section is one of the parts of the heading trail, or it is a PPTX and the
slide number lies in the gold slide range.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

from assistant.core.errors import CoursePilotError
from assistant.core.settings import ChromaSettings, IndexSettings, Settings
from assistant.core.types import Location
from assistant.index.library import LibraryIndex


class LibraryQuestion(BaseModel):
    """One question of a library benchmark with its gold course, file and section."""

    id: str
    q: str
    course: str
    section: str
    file: str
    split: str = ""
    slides: list[int] | None = Field(default=None, description="PPTX: [first, last] 1-based slide of the gold.")


def load_questions(path: Path, split: str | None = None) -> list[LibraryQuestion]:
    """Questions of `split` (all when None) from a questions.jsonl."""
    if not path.is_file():
        raise CoursePilotError(f"{path} does not exist.", "pass the benchmark folder that holds questions.jsonl.")
    out: list[LibraryQuestion] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                question = LibraryQuestion.model_validate(json.loads(line))
            except ValueError as exc:
                raise CoursePilotError(
                    f"{path}:{number} is not a valid question ({exc}).", "fix or remove that line."
                ) from exc
            if split is None or question.split == split:
                out.append(question)
    return out


def is_hit(location: Location, question: LibraryQuestion) -> bool:
    """The benchmark's gold rule (see the module docstring)."""
    if location.course_id != question.course or location.module != question.file:
        return False
    if question.file.lower().endswith(".pptx") and question.slides:
        return location.page is not None and question.slides[0] <= location.page <= question.slides[-1]
    return question.section in location.section


def library_settings(settings: Settings, work_dir: Path) -> Settings:
    """The caller's settings with an embedded index under `work_dir`."""
    return settings.model_copy(update={"index": IndexSettings(dir=work_dir), "chroma": ChromaSettings()})


def open_library_index(library: Path, settings: Settings) -> LibraryIndex:
    """Ingest (incrementally: a second run re-embeds nothing) `library` into the index of `settings`."""
    from ingest.pipeline import IngestPipeline

    index = LibraryIndex(settings)
    report = IngestPipeline(settings, index=index).run(library)
    if report.chunks_total == 0:
        raise CoursePilotError(f"Nothing could be indexed from {library}.", "pass a folder of course folders.")
    return index
