"""Typed values that cross module boundaries: locations, chunks, evidence, answers, playlists."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["beginner", "intermediate", "advanced"]
LEVEL_ORDER: dict[str, int] = {"beginner": 0, "intermediate": 1, "advanced": 2}


class Location(BaseModel):
    """Where a passage lives: course › module › section (page)."""

    model_config = ConfigDict(frozen=True)

    course_id: str
    course_title: str
    module: str = Field(description="Module file path relative to the course folder, e.g. '02-pivots.pdf'.")
    module_title: str
    section: tuple[str, ...] = Field(default=(), description="Heading trail inside the module.")
    page: int | None = Field(default=None, description="1-based page (PDF) or slide (PPTX) number.")
    timestamp: float | None = Field(default=None, description="Seconds into the video or audio (captions).")

    @property
    def section_title(self) -> str:
        return " › ".join(self.section) if self.section else self.module_title

    def label(self) -> str:
        """Human-readable 'Course › Module › Section (p. N)'."""
        parts = [self.course_title, self.module_title]
        if self.section:
            parts.append(self.section[-1])
        text = " › ".join(parts)
        if self.timestamp is not None:
            return f"{text} (at {format_timestamp(self.timestamp)})"
        return f"{text} (p. {self.page})" if self.page else text


def format_timestamp(seconds: float) -> str:
    """252.4 -> '04:12'; an hour or more -> '1:02:03'."""
    total = max(int(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Section(BaseModel):
    """One structural section a loader found: its heading trail, text and page."""

    heading_path: tuple[str, ...] = ()
    text: str
    page: int | None = None
    start: float | None = Field(default=None, description="Seconds into the media where the passage starts.")


class LoadedDocument(BaseModel):
    """What a loader returns for one file."""

    path: str
    kind: str
    title: str
    sections: list[Section]
    pages: int | None = Field(default=None, description="Page or slide count where the format has pages.")
    warnings: list[str] = Field(default_factory=list)


class ModuleInfo(BaseModel):
    """A module (one file) of a course as the manifest declares or the pipeline infers it."""

    path: str
    title: str
    minutes: int = 30


class Course(BaseModel):
    """A course as declared by its course.yaml (or inferred from its folder)."""

    id: str
    title: str
    description: str = ""
    level: Level = "beginner"
    minutes: int = 60
    skills: list[str] = Field(default_factory=list)
    prerequisites: list[str] = Field(default_factory=list)
    modules: list[ModuleInfo] = Field(default_factory=list)
    folder: str = ""
    inferred: bool = False


class Chunk(BaseModel):
    """A retrievable passage that never crosses a section boundary."""

    id: str
    text: str
    location: Location
    ordinal: int
    tokens: int
    content_hash: str
    level: Level = "beginner"


class Evidence(BaseModel):
    """A retrieved chunk with the key the answerer cites it by and its scores."""

    key: str
    chunk: Chunk
    score: float = Field(description="Fused relevance score (higher is better).")
    dense_score: float | None = Field(default=None, description="Cosine similarity from the vector store.")
    lexical_score: float | None = Field(default=None, description="BM25 score.")
    dense_rank: int | None = None
    lexical_rank: int | None = None


class Citation(BaseModel):
    """A resolved citation: the key the answer used and the location it points at."""

    key: str
    location: Location
    label: str
    snippet: str
    chunk_id: str


class CourseSuggestion(BaseModel):
    """A course close to a question, with the sections where it is taught."""

    course_id: str
    title: str
    level: Level
    score: float
    sections: list[Location] = Field(default_factory=list)


class ChatTurn(BaseModel):
    """One prior message in a conversation."""

    role: Literal["user", "assistant"]
    content: str


class Answer(BaseModel):
    """The answer to one learner question, whichever path produced it."""

    question: str
    standalone_question: str
    text: str
    citations: list[Citation] = Field(default_factory=list)
    refused: bool = False
    mode: Literal["extractive", "generative"] = "extractive"
    fallback_reason: str | None = Field(
        default=None, description="Set when the generative path failed and the extractive answer was used."
    )
    read_next: Location | None = None
    suggestions: list[CourseSuggestion] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    top_score: float = 0.0
    timings_ms: dict[str, float] = Field(default_factory=dict)


class PlaylistItem(BaseModel):
    """One step of a learning path."""

    item_id: str = Field(description="Stable id: 'course_id' or 'course_id/module_path'.")
    kind: Literal["course", "module"]
    title: str
    course_id: str
    level: Level
    minutes: int
    location: Location | None = None
    why: str
    skills_matched: list[str] = Field(default_factory=list)
    evidence: Citation | None = None
    is_prerequisite: bool = False
    relevance: float = 0.0
    status: Literal["todo", "done"] = "todo"


class Playlist(BaseModel):
    """An ordered learning path for a goal."""

    goal: str
    learner_id: str | None = None
    budget_minutes: int | None = None
    total_minutes: int = 0
    items: list[PlaylistItem] = Field(default_factory=list)
    left_out: list[PlaylistItem] = Field(default_factory=list)
    skipped_done: list[str] = Field(default_factory=list)
    covered: bool = True
    message: str = ""
    intro: str | None = None
    suggestions: list[CourseSuggestion] = Field(default_factory=list)
    created_at: datetime | None = None
