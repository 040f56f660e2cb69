"""The insights report's data types, its thresholds, and the two helpers every section uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from assistant.planning.learners import QuestionLogEntry

# An answered question whose best passage scored below refusal_min_dense + this margin is "low confidence"...
LOW_CONFIDENCE_MARGIN = 0.10
# ...and so is one below this cosine similarity, whatever the refusal threshold (all-MiniLM-L6-v2 scale: on the
# golden set, passages that answer a question score ~0.45 and up; off-library questions ~0.13-0.44).
LOW_CONFIDENCE_FLOOR = 0.45
# Cut of the average-linkage dendrogram, in cosine distance (1 - similarity).
CLUSTER_DISTANCE = 0.65
# Hierarchical clustering needs n² memory; beyond this many distinct gap questions the newest are kept.
MAX_GAP_QUESTIONS = 4000
SNAPSHOT_NAME = "section_fingerprints.json"
SNAPSHOT_VERSION = 1


ImpactStatus = Literal["ok", "changed", "section_missing", "module_missing", "course_missing"]


# ------------------------------------------------------------------------------------------------ models


class Totals(BaseModel):
    questions: int = 0
    answered: int = 0
    refused: int = 0
    low_confidence: int = 0
    learners: int = 0
    playlists: int = 0
    first_question_at: datetime | None = None
    last_question_at: datetime | None = None


class NearestSection(BaseModel):
    """The indexed passage closest to a gap cluster: where related material already lives."""

    course_id: str
    course_title: str
    module: str
    module_title: str
    section: list[str] = Field(default_factory=list)
    page: int | None = None
    label: str
    similarity: float


class GapQuestion(BaseModel):
    id: int
    question: str
    learner_id: str | None
    refused: bool
    top_score: float
    created_at: datetime


class GapCluster(BaseModel):
    rank: int
    label: str
    terms: list[str]
    count: int = Field(description="Questions in the cluster.")
    learners: int = Field(description="Distinct learners who asked them.")
    refused: int
    low_confidence: int
    examples: list[str] = Field(description="Up to five questions, most typical first.")
    nearest: NearestSection | None = None
    questions: list[GapQuestion] = Field(default_factory=list)


class ContentGaps(BaseModel):
    definition: str
    low_confidence_below: float
    distance_threshold: float
    questions_considered: int
    gap_questions: int
    clusters: list[GapCluster] = Field(default_factory=list)


class SkillDemand(BaseModel):
    skill: str
    courses: list[str]
    questions: int
    learners: int


class CourseDemand(BaseModel):
    course_id: str
    title: str
    questions: int = Field(description="Answered questions citing the course.")
    learners: int
    citations: int


class GoalDemand(BaseModel):
    goal: str
    playlists: int
    learners: int


class PathProgress(BaseModel):
    playlist_id: str
    learner_id: str
    goal: str
    created_at: datetime
    steps: int
    done: int
    completion: float
    reached: int = Field(description="Steps done in order from the first before the first step still to do.")


class CompletionBucket(BaseModel):
    label: str
    playlists: int


class StepReach(BaseModel):
    step: int
    playlists: int = Field(description="Paths with at least this many steps done.")
    share: float


class PathCompletion(BaseModel):
    playlists: int = 0
    without_steps: int = Field(default=0, description="Saved paths with no steps (goal not covered).")
    mean_completion: float | None = None
    completed: int = 0
    not_started: int = 0
    distribution: list[CompletionBucket] = Field(default_factory=list)
    reach: list[StepReach] = Field(default_factory=list)
    paths: list[PathProgress] = Field(default_factory=list)


class Demand(BaseModel):
    skills: list[SkillDemand] = Field(default_factory=list)
    courses: list[CourseDemand] = Field(default_factory=list)
    goals: list[GoalDemand] = Field(default_factory=list)
    path_completion: PathCompletion = Field(default_factory=PathCompletion)


class FeedbackItem(BaseModel):
    id: int
    learner_id: str | None
    question: str
    answer: str
    refused: bool
    citations: list[str]
    comment: str | None
    created_at: datetime


class FeedbackSection(BaseModel):
    thumbs_up: int = 0
    thumbs_down: int = 0
    without_feedback: int = 0
    down: list[FeedbackItem] = Field(default_factory=list)


class ImpactItem(BaseModel):
    source: Literal["playlist", "eval"]
    ref: str = Field(description="Saved playlist id (with step number) or eval case id.")
    learner_id: str | None = None
    context: str = Field(description="The playlist goal or the eval question.")
    course_id: str
    module: str | None = None
    section: str | None = None
    status: ImpactStatus
    note: str = ""


class ReingestImpact(BaseModel):
    snapshot_path: str
    snapshot_taken_at: datetime | None = None
    snapshot_created: bool = Field(default=False, description="No snapshot existed; this report recorded one.")
    snapshot_refreshed: bool = False
    eval_dataset: str | None = None
    checked: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    flagged: list[ImpactItem] = Field(default_factory=list)
    note: str = ""


class InsightsReport(BaseModel):
    generated_at: datetime
    since: datetime | None = None
    collection: str
    totals: Totals
    content_gaps: ContentGaps
    demand: Demand
    feedback: FeedbackSection
    reingest_impact: ReingestImpact


# ------------------------------------------------------------------------------------------------ helpers


def aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything the store writes is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def question_text(entry: QuestionLogEntry) -> str:
    return (entry.standalone or entry.question).strip()
