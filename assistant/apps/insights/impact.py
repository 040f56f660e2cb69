"""The L&D insights report: content gaps, demand, feedback and re-ingest impact, as HTML, JSON and CSV.

Sections
--------
* **content_gaps**: questions the library could not answer well, grouped by topic. A question is a gap when it
  was *refused*, or when it was answered with *low confidence*: its best passage's cosine similarity
  (``top_score``, the only retrieval signal the question log keeps) is below
  ``max(settings.retrieval.refusal_min_dense + LOW_CONFIDENCE_MARGIN, LOW_CONFIDENCE_FLOOR)``: it only just
  cleared the dense refusal threshold, or (when that threshold is low or off and refusal rests on term
  coverage) no passage is semantically close to it. Gap questions are embedded with the index's embedding model and clustered by
  average-linkage hierarchical clustering on cosine distance (scipy), cut at ``CLUSTER_DISTANCE`` (clusters
  whose questions are, on average, at least ``1 - CLUSTER_DISTANCE`` cosine-similar). Clusters are ranked by
  demand: number of questions, then distinct learners. Each carries a label (the 2-4 words most
  characteristic of it: frequent in the cluster, rare across all gap questions, shown as the learners' most
  common spelling of each stem), up to five example questions (most typical first) and the nearest indexed
  section (the chunk closest to the cluster's centroid).
* **demand**: skills asked about (a question matches a course's declared skill when it contains all of the
  skill's words, or at least half of them including one word no other skill uses), courses cited by answered
  questions, the most common learning-path goals, and how far learners get through their saved paths.
* **feedback**: thumbs-down answers with the question, the answer and its citations.
* **reingest_impact**: saved-path steps and golden-set expectations that point at course material that has
  changed or disappeared since the last snapshot. See "Re-ingest impact" below.

Re-ingest impact
----------------
``snapshot_sections(pilot)`` writes ``<index dir>/<collection>/section_fingerprints.json``: for every indexed
module, one fingerprint per section (heading trail) = sha256 of the section's chunk content hashes in order.
``build_report`` recomputes the fingerprints from the ledger as it is now and checks each target (course,
module, section heading) of every saved-path step and every eval-case expectation:

* ``course_missing`` / ``module_missing`` / ``section_missing``: the index no longer holds it (a section
  heading matches any heading of a chunk's trail, or the module title, as in the eval metrics);
* ``changed``: it is still there but its fingerprint differs from the snapshot;
* ``ok``: unchanged since the snapshot (or added after it).

Without a snapshot only missing targets can be detected; the first ``build_report`` then records one as the
baseline. Afterwards the snapshot is only replaced when asked (``build_report(..., refresh_snapshot=True)`` or
``snapshot_sections(pilot)``), so "changed" means "changed since the content owner last acknowledged it".
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from assistant.core.text import STOPWORDS, tokenize
from assistant.core.types import Chunk, Course, Location

if TYPE_CHECKING:
    from assistant.pilot import CoursePilot
    from assistant.planning.learners import LearnerStore, QuestionLogEntry, SavedPlaylist

__all__ = [
    "CLUSTER_DISTANCE",
    "LOW_CONFIDENCE_FLOOR",
    "LOW_CONFIDENCE_MARGIN",
    "InsightsReport",
    "build_report",
    "load_snapshot",
    "snapshot_path",
    "snapshot_sections",
    "write_csv",
    "write_html",
    "write_json",
]

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
_SNAPSHOT_VERSION = 1

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Question phrasing that says nothing about the topic (on top of the retrieval stop list).
_FILLER = frozenset(
    (  # noqa: SIM905 - a word list reads better as text
        "use using used get getting make making need want way ways best good know tell help like one also just new "
        "some any much many long here work thing things someone anyone must us am not no yes all more most than too "
        "very really please able let lot lots step steps set do does done go going put take don doesn isn aren can won "
        "add create same come start tips keep"
    ).split()
)

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


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything the store writes is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _text(entry: QuestionLogEntry) -> str:
    return (entry.standalone or entry.question).strip()


def _surface_words(text: str) -> list[str]:
    """Topic words as learners spelled them: stop words, question filler and clitics ('s, n't) dropped."""
    out = []
    for word in _WORD.findall(text.lower()):
        word = word.split("'", 1)[0]  # what's -> what, team's -> team, don't -> don
        if word not in STOPWORDS and word not in _FILLER:
            out.append(word)
    return out


def _stem_map(texts: Iterable[str]) -> tuple[list[list[str]], dict[str, Counter[str]]]:
    """Per text, its topic stems in order of first use; per stem, how often each surface spelling was used."""
    stems_per_text: list[list[str]] = []
    surfaces: dict[str, Counter[str]] = defaultdict(Counter)
    for text in texts:
        stems: dict[str, None] = {}
        for word in _surface_words(text):
            if word.isdigit():
                continue
            for stem in tokenize(word):
                stems.setdefault(stem)
                surfaces[stem][word] += 1
        stems_per_text.append(list(stems))
    return stems_per_text, surfaces


def _label_terms(
    members: Sequence[int], stems_per_text: Sequence[list[str]], df_all: Counter[str], n_all: int
) -> list[str]:
    """2-4 stems frequent in the cluster and rare across all gap questions (class-based tf-idf), in the order
    the cluster's most typical question (members[0]) uses them."""
    df: Counter[str] = Counter()
    first_seen: dict[str, tuple[int, int]] = {}
    for position, i in enumerate(members):
        for offset, stem in enumerate(stems_per_text[i]):
            df[stem] += 1
            first_seen.setdefault(stem, (position, offset))
    if not df:
        return []
    need = 2 if len(members) >= 2 else 1

    def ranked(stems: Iterable[str]) -> list[tuple[float, str]]:
        scored = [(df[s] / len(members) * math.log(1.0 + n_all / df_all[s]), s) for s in stems]
        return sorted(scored, key=lambda item: (-item[0], first_seen[item[1]]))

    shared = ranked(s for s in df if df[s] >= need)
    rest = ranked(s for s in df if df[s] < need)
    top = shared[0][0] if shared else 0.0
    chosen = [stem for score, stem in shared if score >= 0.5 * top][:4]
    for _, stem in [*shared, *rest]:
        if len(chosen) >= 2:
            break
        if stem not in chosen:
            chosen.append(stem)
    return sorted(chosen, key=lambda stem: first_seen[stem])


def _cluster(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Average-linkage clustering on cosine distance; returns a label (0-based) per row."""
    if len(vectors) == 0:
        return np.zeros(0, dtype=int)
    if len(vectors) == 1:
        return np.zeros(1, dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    distances = np.clip(pdist(vectors.astype(np.float64), metric="cosine"), 0.0, 2.0)
    tree = linkage(distances, method="average")
    return np.asarray(fcluster(tree, t=threshold, criterion="distance"), dtype=int) - 1


def _nearest_section(pilot: CoursePilot, centroid: np.ndarray) -> NearestSection | None:
    norm = float(np.linalg.norm(centroid))
    if norm == 0:
        return None
    index = pilot.index
    hits = index.store.query((centroid / norm).astype(np.float32), 5)
    chunks = index.ledger.get_chunks([cid for cid, _ in hits])
    for cid, score in hits:
        chunk = chunks.get(cid)
        if chunk is None:
            continue  # a vector an interrupted ingest left behind
        loc = chunk.location
        return NearestSection(
            course_id=loc.course_id,
            course_title=loc.course_title,
            module=loc.module,
            module_title=loc.module_title,
            section=list(loc.section),
            page=loc.page,
            label=loc.label(),
            similarity=round(float(score), 4),
        )
    return None


# ------------------------------------------------------------------------------------------------ gaps


def low_confidence_threshold(pilot: CoursePilot) -> float:
    """Answered questions whose best passage's cosine similarity is below this count as low confidence."""
    return max(pilot.settings.retrieval.refusal_min_dense + LOW_CONFIDENCE_MARGIN, LOW_CONFIDENCE_FLOOR)


def _content_gaps(
    pilot: CoursePilot, entries: Sequence[QuestionLogEntry], threshold: float, floor: float
) -> tuple[ContentGaps, int]:
    gaps = [e for e in entries if e.refused or e.top_score < floor]
    dense = pilot.settings.retrieval.refusal_min_dense
    definition = (
        f"Refused questions, plus answered questions whose best passage scored below {floor:.2f} cosine "
        f"similarity (low confidence: the larger of the refusal threshold {dense:.2f} + {LOW_CONFIDENCE_MARGIN:.2f} "
        f"and {LOW_CONFIDENCE_FLOOR:.2f})."
    )
    low_confidence = sum(1 for e in gaps if not e.refused)
    result = ContentGaps(
        definition=definition,
        low_confidence_below=round(floor, 4),
        distance_threshold=threshold,
        questions_considered=len(entries),
        gap_questions=len(gaps),
    )
    if not gaps:
        return result, low_confidence

    # Cluster distinct texts (learners repeat questions); every entry follows its text's cluster.
    texts = list(dict.fromkeys(_text(e) for e in reversed(gaps)))[:MAX_GAP_QUESTIONS]
    position = {t: i for i, t in enumerate(texts)}
    gaps = [e for e in gaps if _text(e) in position]
    from assistant.models.embeddings import get_embedder

    vectors = np.asarray(get_embedder(pilot.settings.embedding).embed_documents(texts), dtype=np.float32)
    labels = _cluster(vectors, threshold)
    stems_per_text, surfaces = _stem_map(texts)
    df_all: Counter[str] = Counter(s for stems in stems_per_text for s in stems)  # stems are unique per text

    members: dict[int, list[QuestionLogEntry]] = defaultdict(list)
    for entry in gaps:
        members[int(labels[position[_text(entry)]])].append(entry)

    clusters: list[GapCluster] = []
    for label_id, group in members.items():
        text_ids = list(dict.fromkeys(position[_text(e)] for e in group))
        centroid = vectors[text_ids].mean(axis=0)
        # Most typical first: closest to the centroid.
        order = sorted(text_ids, key=lambda i: -float(vectors[i] @ centroid))
        stems = _label_terms(order, stems_per_text, df_all, len(texts))
        words = [surfaces[s].most_common(1)[0][0] for s in stems if surfaces.get(s)]
        learners = {e.learner_id for e in group if e.learner_id}
        clusters.append(
            GapCluster(
                rank=0,
                label=", ".join(words) or texts[order[0]][:60],
                terms=words,
                count=len(group),
                learners=len(learners),
                refused=sum(1 for e in group if e.refused),
                low_confidence=sum(1 for e in group if not e.refused),
                examples=[texts[i] for i in order[:5]],
                nearest=_nearest_section(pilot, centroid),
                questions=[
                    GapQuestion(
                        id=e.id,
                        question=e.question,
                        learner_id=e.learner_id,
                        refused=e.refused,
                        top_score=e.top_score,
                        created_at=_aware(e.created_at),
                    )
                    for e in sorted(group, key=lambda e: e.id)
                ],
            )
        )
        del label_id
    clusters.sort(key=lambda c: (-c.count, -c.learners, c.label))
    for rank, cluster in enumerate(clusters, start=1):
        cluster.rank = rank
    result.clusters = clusters
    return result, low_confidence


# ------------------------------------------------------------------------------------------------ demand


def _skill_matchers(catalogue: dict[str, Course]) -> list[tuple[str, list[str], set[str], set[str]]]:
    """(skill, courses declaring it, its stems, its stems no other skill uses)."""
    by_skill: dict[str, tuple[str, list[str]]] = {}
    for course in sorted(catalogue.values(), key=lambda c: c.id):
        for skill in course.skills:
            key = " ".join(skill.lower().split())
            if not key:
                continue
            _, courses = by_skill.setdefault(key, (skill.strip(), []))
            if course.id not in courses:
                courses.append(course.id)
    stems = {key: set(tokenize(key)) for key in by_skill}
    usage: Counter[str] = Counter(s for group in stems.values() for s in group)
    return [
        (name, courses, stems[key], {s for s in stems[key] if usage[s] == 1})
        for key, (name, courses) in by_skill.items()
        if stems[key]
    ]


def _skill_matches(question_stems: set[str], skill_stems: set[str], unique: set[str]) -> bool:
    hits = question_stems & skill_stems
    if hits == skill_stems:
        return True
    return len(skill_stems) >= 2 and len(hits) * 2 >= len(skill_stems) and bool(hits & unique)


def _normal_goal(goal: str) -> str:
    return " ".join(re.sub(r"[^\w\s'-]", " ", goal.lower()).split())


def _bucket(completion: float) -> str:
    if completion >= 1.0:
        return "100%"
    if completion <= 0.0:
        return "0%"
    if completion < 0.25:
        return "1–24%"
    if completion < 0.5:
        return "25–49%"
    if completion < 0.75:
        return "50–74%"
    return "75–99%"


def _path_completion(playlists: Sequence[SavedPlaylist]) -> PathCompletion:
    paths: list[PathProgress] = []
    without = 0
    for saved in playlists:
        items = saved.playlist.items
        if not items:
            without += 1
            continue
        done = sum(1 for i in items if i.status == "done")
        reached = 0
        for item in items:
            if item.status != "done":
                break
            reached += 1
        paths.append(
            PathProgress(
                playlist_id=saved.id,
                learner_id=saved.learner_id,
                goal=saved.goal,
                created_at=_aware(saved.created_at),
                steps=len(items),
                done=done,
                completion=round(done / len(items), 4),
                reached=reached,
            )
        )
    labels = ["0%", "1–24%", "25–49%", "50–74%", "75–99%", "100%"]
    counts = Counter(_bucket(p.completion) for p in paths)
    longest = max((p.steps for p in paths), default=0)
    reach = [
        StepReach(
            step=n,
            playlists=sum(1 for p in paths if p.done >= n),
            share=round(sum(1 for p in paths if p.done >= n) / len(paths), 4),
        )
        for n in range(1, longest + 1)
    ]
    return PathCompletion(
        playlists=len(paths),
        without_steps=without,
        mean_completion=round(sum(p.completion for p in paths) / len(paths), 4) if paths else None,
        completed=sum(1 for p in paths if p.completion >= 1.0),
        not_started=sum(1 for p in paths if p.done == 0),
        distribution=[CompletionBucket(label=label, playlists=counts.get(label, 0)) for label in labels],
        reach=reach,
        paths=paths,
    )


def _demand(
    entries: Sequence[QuestionLogEntry], playlists: Sequence[SavedPlaylist], catalogue: dict[str, Course]
) -> Demand:
    matchers = _skill_matchers(catalogue)
    skill_questions: dict[str, int] = Counter()
    skill_learners: dict[str, set[str]] = defaultdict(set)
    course_questions: Counter[str] = Counter()
    course_citations: Counter[str] = Counter()
    course_learners: dict[str, set[str]] = defaultdict(set)
    course_titles: dict[str, str] = {cid: c.title for cid, c in catalogue.items()}
    for entry in entries:
        stems = set(tokenize(_text(entry)))
        for name, _courses, skill_stems, unique in matchers:
            if _skill_matches(stems, skill_stems, unique):
                skill_questions[name] += 1
                if entry.learner_id:
                    skill_learners[name].add(entry.learner_id)
        if entry.refused:
            continue
        cited: set[str] = set()
        for citation in entry.citations:
            course_id = str(citation.get("course_id") or "")
            if not course_id:
                continue
            course_citations[course_id] += 1
            course_titles.setdefault(course_id, str(citation.get("course_title") or course_id))
            cited.add(course_id)
        for course_id in cited:
            course_questions[course_id] += 1
            if entry.learner_id:
                course_learners[course_id].add(entry.learner_id)

    skills = [
        SkillDemand(skill=name, courses=courses, questions=skill_questions[name], learners=len(skill_learners[name]))
        for name, courses, _, _ in matchers
        if skill_questions.get(name)
    ]
    skills.sort(key=lambda s: (-s.questions, -s.learners, s.skill))
    courses = [
        CourseDemand(
            course_id=cid,
            title=course_titles.get(cid, cid),
            questions=n,
            learners=len(course_learners[cid]),
            citations=course_citations[cid],
        )
        for cid, n in course_questions.items()
    ]
    courses.sort(key=lambda c: (-c.questions, -c.learners, c.course_id))

    goal_count: Counter[str] = Counter()
    goal_learners: dict[str, set[str]] = defaultdict(set)
    goal_spelling: dict[str, Counter[str]] = defaultdict(Counter)
    for saved in playlists:
        key = _normal_goal(saved.goal)
        if not key:
            continue
        goal_count[key] += 1
        goal_learners[key].add(saved.learner_id)
        goal_spelling[key][saved.goal.strip()] += 1
    goals = [
        GoalDemand(goal=goal_spelling[key].most_common(1)[0][0], playlists=n, learners=len(goal_learners[key]))
        for key, n in goal_count.items()
    ]
    goals.sort(key=lambda g: (-g.playlists, -g.learners, g.goal.lower()))
    return Demand(skills=skills, courses=courses, goals=goals, path_completion=_path_completion(playlists))


# ------------------------------------------------------------------------------------------------ feedback


def _citation_label(citation: dict[str, Any]) -> str:
    try:
        return Location.model_validate(citation).label()
    except ValueError:
        return str(citation)


def _feedback(entries: Sequence[QuestionLogEntry]) -> FeedbackSection:
    section = FeedbackSection(
        thumbs_up=sum(1 for e in entries if e.feedback is not None and e.feedback > 0),
        thumbs_down=sum(1 for e in entries if e.feedback is not None and e.feedback < 0),
        without_feedback=sum(1 for e in entries if e.feedback is None),
    )
    section.down = [
        FeedbackItem(
            id=e.id,
            learner_id=e.learner_id,
            question=e.question,
            answer=e.answer,
            refused=e.refused,
            citations=[_citation_label(c) for c in e.citations],
            comment=e.feedback_comment,
            created_at=_aware(e.created_at),
        )
        for e in sorted(entries, key=lambda e: e.id, reverse=True)
        if e.feedback is not None and e.feedback < 0
    ]
    return section


# ------------------------------------------------------------------------------------------------ fingerprints


def _sha(parts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


_TRAIL_SEP = " › "


def current_fingerprints(pilot: CoursePilot) -> dict[str, Any]:
    """{'course_id': {'modules': {module path: {'title', 'sections': {trail: fingerprint}}}}} from the ledger."""
    ledger = pilot.index.ledger
    course_ids = sorted({record.course_id for record in ledger.documents().values()})
    out: dict[str, Any] = {}
    for course_id in course_ids:
        chunks: list[Chunk] = ledger.chunks_of_course(course_id)
        per_module: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        titles: dict[str, str] = {}
        for chunk in chunks:
            loc = chunk.location
            titles[loc.module] = loc.module_title
            per_module[loc.module][_TRAIL_SEP.join(loc.section)].append(chunk.content_hash)
        out[course_id] = {
            "modules": {
                module: {
                    "title": titles[module],
                    "sections": {trail: _sha(hashes) for trail, hashes in sorted(sections.items())},
                }
                for module, sections in sorted(per_module.items())
            }
        }
    return out


def snapshot_path(pilot: CoursePilot) -> Path:
    """Where the section fingerprints of this index are kept: next to its ledger."""
    return Path(pilot.index.dir) / SNAPSHOT_NAME


def snapshot_sections(pilot: CoursePilot, path: Path | None = None) -> Path:
    """Record the current section fingerprints (atomically); later reports flag sections that changed."""
    target = path or snapshot_path(pilot)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": _SNAPSHOT_VERSION,
        "collection": pilot.index.name,
        "generation": pilot.index.ledger.generation,
        "taken_at": datetime.now(UTC).isoformat(),
        "courses": current_fingerprints(pilot),
    }
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True, ensure_ascii=False), encoding="utf-8")
    tmp.replace(target)
    return target


def load_snapshot(pilot: CoursePilot, path: Path | None = None) -> dict[str, Any] | None:
    """The last snapshot, or None if there is none (or it is unreadable)."""
    target = path or snapshot_path(pilot)
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != _SNAPSHOT_VERSION:
        return None
    return data


def _same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _find_module(modules: dict[str, Any], module: str) -> str | None:
    for path, info in modules.items():
        if _same(path, module) or _same(str(info.get("title", "")), module):
            return path
    return None


def _target_fingerprint(course: dict[str, Any], module: str | None, section: str | None) -> str | None:
    """Fingerprint of what a (module, section) target covers inside one course's fingerprints; None if absent.

    No module: the whole course (or every module's sections with that heading). No section: the whole module.
    """
    modules: dict[str, Any] = course.get("modules", {})
    if module is None:
        paths = sorted(modules)
    else:
        found = _find_module(modules, module)
        if found is None:
            return None
        paths = [found]
    matched: list[str] = []
    for path in paths:
        info = modules[path]
        trails: dict[str, str] = info["sections"]
        whole = section is None or _same(str(info.get("title", "")), section)
        for trail, fingerprint in sorted(trails.items()):
            if whole or any(_same(h, section or "") for h in trail.split(_TRAIL_SEP) if h):
                matched.append(f"{path}\0{trail}\0{fingerprint}")
    if not matched:
        return None
    return _sha(matched)


def _check_target(
    now: dict[str, Any], before: dict[str, Any] | None, course_id: str, module: str | None, section: str | None
) -> tuple[ImpactStatus, str]:
    course = next((c for cid, c in now.items() if _same(cid, course_id)), None)
    if course is None:
        return "course_missing", f"course '{course_id}' is no longer indexed"
    if module is not None and _find_module(course["modules"], module) is None:
        return "module_missing", f"module '{module}' is no longer in {course_id}"
    current = _target_fingerprint(course, module, section)
    if current is None:
        return "section_missing", f"no heading '{section}' in {course_id}/{module}"
    if before is None:
        return "ok", "no snapshot to compare with"
    old_course = next((c for cid, c in before.items() if _same(cid, course_id)), None)
    old = _target_fingerprint(old_course, module, section) if old_course is not None else None
    if old is None:
        return "ok", "added since the snapshot"
    if old != current:
        return "changed", "content differs from the snapshot"
    return "ok", ""


def _playlist_targets(saved: SavedPlaylist) -> Iterable[tuple[str, str, str | None, str | None]]:
    """(ref, course, module, section heading) per step of a saved path."""
    for number, item in enumerate(saved.playlist.items, start=1):
        ref = f"{saved.id}#{number}"
        if item.kind == "course":
            yield ref, item.course_id, None, None
            continue
        loc = item.location
        module = loc.module if loc is not None else item.item_id.split("/", 1)[-1]
        section = loc.section[-1] if loc is not None and loc.section else None
        yield ref, item.course_id, module, section


def _eval_targets(dataset_path: Path) -> Iterable[tuple[str, str, str, str | None, str | None]]:
    """(case id, question or goal, course, module, section) per expectation of the golden set."""
    from evals.dataset import AnswerCase, FindCase, PlaylistCase, load_dataset

    dataset = load_dataset(dataset_path)
    for case in dataset.cases:
        if isinstance(case, AnswerCase | FindCase):
            seen: set[tuple[str, str | None, str | None]] = set()
            for expected in case.expected:
                key = (expected.course, expected.module, expected.section)
                if key not in seen:
                    seen.add(key)
                    yield case.id, case.question, expected.course, expected.module, expected.section
        elif isinstance(case, PlaylistCase):
            for ref in case.must_include:
                course, _, module = ref.partition("/")
                yield case.id, case.goal, course, module or None, None


def _reingest_impact(
    pilot: CoursePilot,
    playlists: Sequence[SavedPlaylist],
    eval_dataset: Path | None,
    refresh_snapshot: bool,
) -> ReingestImpact:
    path = snapshot_path(pilot)
    snapshot = load_snapshot(pilot, path)
    now = current_fingerprints(pilot)
    before = snapshot["courses"] if snapshot else None
    impact = ReingestImpact(
        snapshot_path=str(path),
        snapshot_taken_at=datetime.fromisoformat(snapshot["taken_at"]) if snapshot else None,
        eval_dataset=str(eval_dataset) if eval_dataset else None,
    )
    items: list[ImpactItem] = []
    for saved in playlists:
        for ref, course, module, section in _playlist_targets(saved):
            status, note = _check_target(now, before, course, module, section)
            items.append(
                ImpactItem(
                    source="playlist",
                    ref=ref,
                    learner_id=saved.learner_id,
                    context=saved.goal,
                    course_id=course,
                    module=module,
                    section=section,
                    status=status,
                    note=note,
                )
            )
    if eval_dataset is not None:
        for case_id, text, course, module, section in _eval_targets(eval_dataset):
            status, note = _check_target(now, before, course, module, section)
            items.append(
                ImpactItem(
                    source="eval",
                    ref=case_id,
                    context=text,
                    course_id=course,
                    module=module,
                    section=section,
                    status=status,
                    note=note,
                )
            )
    impact.checked = len(items)
    impact.counts = dict(Counter(i.status for i in items))
    impact.flagged = [i for i in items if i.status != "ok"]
    if snapshot is None:
        impact.note = (
            "No earlier snapshot: only missing material can be detected. This report recorded the current "
            "fingerprints as the baseline for the next one."
        )
        snapshot_sections(pilot, path)
        impact.snapshot_created = True
    elif refresh_snapshot:
        snapshot_sections(pilot, path)
        impact.snapshot_refreshed = True
        impact.note = "The snapshot was refreshed after this comparison."
    else:
        impact.note = "Compared with the snapshot; refresh it once the flagged items are dealt with."
    return impact


# ------------------------------------------------------------------------------------------------ report


def build_report(
    store: LearnerStore,
    pilot: CoursePilot,
    since: datetime | None = None,
    eval_dataset: Path | None = None,
    *,
    refresh_snapshot: bool = False,
    cluster_distance: float = CLUSTER_DISTANCE,
    low_confidence_below: float | None = None,
) -> InsightsReport:
    """The L&D insights report for questions and saved paths since `since` (all when None).

    `eval_dataset`: a golden set whose expected locations are checked for re-ingest impact.
    `refresh_snapshot`: replace the section-fingerprint snapshot after comparing with it.
    `low_confidence_below`: override low_confidence_threshold(pilot) (e.g. for another embedding model's scale).
    """
    since = _aware(since) if since is not None else None
    entries = store.questions(since=since)
    playlists = [p for p in store.all_playlists() if since is None or _aware(p.created_at) >= since]
    catalogue = pilot.catalogue()
    floor = low_confidence_below if low_confidence_below is not None else low_confidence_threshold(pilot)
    gaps, low_confidence = _content_gaps(pilot, entries, cluster_distance, floor)
    created = [_aware(e.created_at) for e in entries]
    totals = Totals(
        questions=len(entries),
        answered=sum(1 for e in entries if not e.refused),
        refused=sum(1 for e in entries if e.refused),
        low_confidence=low_confidence,
        learners=len({e.learner_id for e in entries if e.learner_id}),
        playlists=len(playlists),
        first_question_at=min(created, default=None),
        last_question_at=max(created, default=None),
    )
    return InsightsReport(
        generated_at=datetime.now(UTC),
        since=since,
        collection=pilot.index.name,
        totals=totals,
        content_gaps=gaps,
        demand=_demand(entries, playlists, catalogue),
        feedback=_feedback(entries),
        reingest_impact=_reingest_impact(pilot, playlists, eval_dataset, refresh_snapshot),
    )


# ------------------------------------------------------------------------------------------------ writers


def write_json(report: InsightsReport, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return path


def _csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
    return path


def write_csv(report: InsightsReport, folder: Path) -> dict[str, Path]:
    """One CSV per table: content_gaps, gap_questions, demand_skills, demand_courses, demand_goals,
    path_completion, feedback, reingest_impact. Returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gaps = report.content_gaps.clusters
    demand = report.demand
    out = {
        "content_gaps": _csv(
            folder / "content_gaps.csv",
            [
                "rank",
                "label",
                "questions",
                "learners",
                "refused",
                "low_confidence",
                "nearest_section",
                "nearest_similarity",
                "examples",
            ],
            (
                [
                    c.rank,
                    c.label,
                    c.count,
                    c.learners,
                    c.refused,
                    c.low_confidence,
                    c.nearest.label if c.nearest else "",
                    c.nearest.similarity if c.nearest else "",
                    " | ".join(c.examples),
                ]
                for c in gaps
            ),
        ),
        "gap_questions": _csv(
            folder / "gap_questions.csv",
            [
                "cluster_rank",
                "cluster_label",
                "question_id",
                "learner_id",
                "refused",
                "top_score",
                "created_at",
                "question",
            ],
            (
                [c.rank, c.label, q.id, q.learner_id, q.refused, q.top_score, q.created_at.isoformat(), q.question]
                for c in gaps
                for q in c.questions
            ),
        ),
        "demand_skills": _csv(
            folder / "demand_skills.csv",
            ["skill", "courses", "questions", "learners"],
            ([s.skill, " ".join(s.courses), s.questions, s.learners] for s in demand.skills),
        ),
        "demand_courses": _csv(
            folder / "demand_courses.csv",
            ["course_id", "title", "questions", "learners", "citations"],
            ([c.course_id, c.title, c.questions, c.learners, c.citations] for c in demand.courses),
        ),
        "demand_goals": _csv(
            folder / "demand_goals.csv",
            ["goal", "playlists", "learners"],
            ([g.goal, g.playlists, g.learners] for g in demand.goals),
        ),
        "path_completion": _csv(
            folder / "path_completion.csv",
            ["playlist_id", "learner_id", "goal", "created_at", "steps", "done", "completion", "reached"],
            (
                [
                    p.playlist_id,
                    p.learner_id,
                    p.goal,
                    p.created_at.isoformat(),
                    p.steps,
                    p.done,
                    p.completion,
                    p.reached,
                ]
                for p in demand.path_completion.paths
            ),
        ),
        "feedback": _csv(
            folder / "feedback.csv",
            ["id", "learner_id", "created_at", "question", "answer", "refused", "citations", "comment"],
            (
                [
                    f.id,
                    f.learner_id,
                    f.created_at.isoformat(),
                    f.question,
                    f.answer,
                    f.refused,
                    " | ".join(f.citations),
                    f.comment,
                ]
                for f in report.feedback.down
            ),
        ),
        "reingest_impact": _csv(
            folder / "reingest_impact.csv",
            ["source", "ref", "learner_id", "status", "course_id", "module", "section", "context", "note"],
            (
                [i.source, i.ref, i.learner_id, i.status, i.course_id, i.module, i.section, i.context, i.note]
                for i in report.reingest_impact.flagged
            ),
        ),
    }
    return out


def _short(text: str, limit: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _barh_svg(labels: Sequence[str], values: Sequence[float], xlabel: str, notes: Sequence[str] | None = None) -> str:
    """Horizontal bars, largest on top, the value (and a note) written at the end of each bar."""
    from evals.report import _BLUE, _INK, _pyplot, _svg

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, max(1.8, 0.36 * len(labels) + 0.8)))
    try:
        if not labels:
            ax.text(0.5, 0.5, "no data in this period", ha="center", va="center", color="#6b7280")
            ax.set_axis_off()
            return _svg(fig)
        ys = list(range(len(labels)))[::-1]
        ax.barh(ys, list(values), height=0.62, color=_BLUE)
        top = max(values) or 1
        for i, (y, v) in enumerate(zip(ys, values, strict=True)):
            note = f"  {notes[i]}" if notes else ""
            ax.text(v + top * 0.01, y, f"{v:g}{note}", va="center", fontsize=8.5, color=_INK)
        ax.set_yticks(ys)
        ax.set_yticklabels([_short(label) for label in labels])
        ax.set_xlim(0, top * 1.3)
        ax.xaxis.grid(True, color="#eef0f3")
        ax.set_axisbelow(True)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel(xlabel)
        return _svg(fig)
    finally:
        plt.close(fig)


def _completion_svg(completion: PathCompletion) -> str:
    from evals.report import _BLUE, _INK, _pyplot, _svg

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    try:
        if not completion.playlists:
            ax.text(0.5, 0.5, "no saved paths in this period", ha="center", va="center", color="#6b7280")
            ax.set_axis_off()
            return _svg(fig)
        labels = [b.label for b in completion.distribution]
        counts = [b.playlists for b in completion.distribution]
        bars = ax.bar(range(len(labels)), counts, color=_BLUE, width=0.7)
        for bar, n in zip(bars, counts, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, n, f"{n}", ha="center", va="bottom", fontsize=8.5, color=_INK)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels)
        ax.set_xlabel("share of path steps done")
        ax.set_ylabel("saved paths")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_ylim(0, max(counts) * 1.2 + 0.5)
        return _svg(fig)
    finally:
        plt.close(fig)


def _charts(report: InsightsReport) -> dict[str, str]:
    gaps = report.content_gaps.clusters[:12]
    demand = report.demand
    return {
        "gap-clusters": _barh_svg(
            [c.label for c in gaps],
            [c.count for c in gaps],
            "questions refused or answered with low confidence",
            [f"({c.learners} learner{'s' if c.learners != 1 else ''})" for c in gaps],
        ),
        "skills": _barh_svg(
            [s.skill for s in demand.skills[:12]], [s.questions for s in demand.skills[:12]], "questions"
        ),
        "courses": _barh_svg(
            [c.title for c in demand.courses[:12]],
            [c.questions for c in demand.courses[:12]],
            "answered questions citing the course",
        ),
        "goals": _barh_svg(
            [g.goal for g in demand.goals[:10]], [g.playlists for g in demand.goals[:10]], "saved paths"
        ),
        "path-completion": _completion_svg(demand.path_completion),
    }


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Learning insights · CoursePilot</title>
<style>
  :root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f8fafc; --blue:#2563eb; --red:#dc2626; --amber:#b45309; --green:#15803d; }
  * { box-sizing:border-box; }
  body { margin:0; background:var(--bg); color:var(--ink); font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
  main { max-width:1080px; margin:0 auto; padding:32px 24px 64px; }
  h1 { font-size:26px; margin:0 0 4px; letter-spacing:-.01em; }
  h2 { font-size:20px; margin:40px 0 6px; } h3 { font-size:16px; margin:24px 0 8px; }
  .sub, .explain { color:var(--muted); margin:0 0 14px; font-size:14px; }
  .card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:16px 18px; }
  .cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(140px,1fr)); gap:12px; margin:18px 0; }
  .stat .n { font-size:24px; font-weight:650; } .stat .l { color:var(--muted); font-size:13px; }
  figure.chart { margin:0 0 14px; background:#fff; border:1px solid var(--line); border-radius:10px; padding:14px; }
  figure.chart svg { width:100%; height:auto; display:block; }
  figcaption { color:var(--muted); font-size:13px; margin-top:6px; }
  .wrap { overflow-x:auto; border:1px solid var(--line); border-radius:10px; background:#fff; }
  table { width:100%; border-collapse:collapse; font-size:14px; }
  th, td { text-align:left; padding:8px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
  th { font-weight:600; color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; background:#fbfcfd; }
  td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
  ul.ex { margin:0; padding-left:18px; font-size:13px; } ul.ex li { margin:2px 0; }
  .muted { color:var(--muted); font-size:13px; }
  .answer { white-space:pre-wrap; max-height:10em; overflow:auto; font-size:13px; }
  .tag { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; }
  .tag.changed { background:#fef3c7; color:var(--amber); } .tag.missing { background:#fee2e2; color:var(--red); }
  .empty { color:var(--muted); font-style:italic; }
</style>
</head>
<body>
<main>
<header>
  <h1>Learning insights</h1>
  <p class="sub">Generated {{ r.generated_at.strftime('%Y-%m-%d %H:%M UTC') }} ·
    {% if r.since %}questions since {{ r.since.strftime('%Y-%m-%d %H:%M') }}{% else %}all logged questions{% endif %}
    · index <code>{{ r.collection }}</code></p>
  <div class="cards">
    <div class="card stat"><div class="n">{{ t.questions }}</div><div class="l">questions</div></div>
    <div class="card stat"><div class="n">{{ t.learners }}</div><div class="l">learners</div></div>
    <div class="card stat"><div class="n">{{ t.refused }}</div><div class="l">refused</div></div>
    <div class="card stat"><div class="n">{{ t.low_confidence }}</div><div class="l">low-confidence answers</div></div>
    <div class="card stat"><div class="n">{{ r.content_gaps.clusters|length }}</div><div class="l">gap topics</div></div>
    <div class="card stat"><div class="n">{{ r.feedback.thumbs_down }}</div><div class="l">thumbs down</div></div>
    <div class="card stat"><div class="n">{{ pct(r.demand.path_completion.mean_completion) }}</div><div class="l">mean path completion</div></div>
  </div>
</header>

<section id="content-gaps">
  <h2>Content gaps</h2>
  <p class="explain">{{ r.content_gaps.definition }} Similar questions are grouped by meaning (average-linkage
    clustering of their embeddings, cosine distance ≤ {{ r.content_gaps.distance_threshold }}) and ranked by how
    many were asked, then by how many learners asked.</p>
  <figure class="chart" data-chart="gap-clusters">{{ charts['gap-clusters']|safe }}
    <figcaption>Gap topics by number of questions (learners in brackets).</figcaption></figure>
  {% if r.content_gaps.clusters %}
  <div class="wrap"><table id="gaps-table">
    <thead><tr><th class="num">#</th><th>Topic</th><th class="num">Questions</th><th class="num">Learners</th><th>Examples</th><th>Nearest existing material</th></tr></thead>
    <tbody>{% for c in r.content_gaps.clusters %}
      <tr data-cluster="{{ c.rank }}"><td class="num">{{ c.rank }}</td><td><strong>{{ c.label }}</strong>
        <div class="muted">{{ c.refused }} refused · {{ c.low_confidence }} low confidence</div></td>
        <td class="num">{{ c.count }}</td><td class="num">{{ c.learners }}</td>
        <td><ul class="ex">{% for q in c.examples %}<li>{{ q }}</li>{% endfor %}</ul></td>
        <td>{% if c.nearest %}{{ c.nearest.label }}<div class="muted">similarity {{ '%.2f'|format(c.nearest.similarity) }}</div>{% else %}<span class="empty">none</span>{% endif %}</td></tr>
    {% endfor %}</tbody></table></div>
  {% else %}<p class="empty">No refused or low-confidence questions in this period.</p>{% endif %}
</section>

<section id="demand">
  <h2>Demand</h2>
  <p class="explain">What learners ask about and plan for. A question counts towards a skill when it uses the words of
    a skill a course declares; a course counts once per answered question that cites it.</p>
  <figure class="chart" data-chart="skills">{{ charts['skills']|safe }}<figcaption>Most-asked skills (courses' declared skills matched in questions).</figcaption></figure>
  <figure class="chart" data-chart="courses">{{ charts['courses']|safe }}<figcaption>Most-cited courses.</figcaption></figure>
  <figure class="chart" data-chart="goals">{{ charts['goals']|safe }}<figcaption>Most common learning-path goals.</figcaption></figure>
  <h3>Learning-path completion</h3>
  {% set pc = r.demand.path_completion %}
  <p class="explain">{{ pc.playlists }} saved path{{ '' if pc.playlists == 1 else 's' }} with steps{% if pc.without_steps %} ({{ pc.without_steps }} more with none: goal not covered){% endif %}:
    mean completion {{ pct(pc.mean_completion) }}, {{ pc.completed }} finished, {{ pc.not_started }} not started.</p>
  <figure class="chart" data-chart="path-completion">{{ charts['path-completion']|safe }}
    <figcaption>How far learners get: saved paths by share of steps done.</figcaption></figure>
  {% if pc.reach %}<div class="wrap"><table id="reach-table"><thead><tr><th>Steps done</th>{% for s in pc.reach %}<th class="num">≥ {{ s.step }}</th>{% endfor %}</tr></thead>
    <tbody><tr><td>Paths</td>{% for s in pc.reach %}<td class="num">{{ s.playlists }} ({{ pct(s.share) }})</td>{% endfor %}</tr></tbody></table></div>{% endif %}
</section>

<section id="feedback">
  <h2>Feedback</h2>
  <p class="explain">{{ r.feedback.thumbs_up }} thumbs up, {{ r.feedback.thumbs_down }} thumbs down, {{ r.feedback.without_feedback }} answers without feedback.</p>
  {% if r.feedback.down %}
  <div class="wrap"><table id="feedback-table">
    <thead><tr><th>Question</th><th>Answer</th><th>Citations</th></tr></thead>
    <tbody>{% for f in r.feedback.down %}<tr><td>{{ f.question }}<div class="muted">{{ f.learner_id or 'anonymous' }} · {{ f.created_at.strftime('%Y-%m-%d') }}{% if f.comment %} · “{{ f.comment }}”{% endif %}</div></td>
      <td><div class="answer">{{ f.answer }}</div></td>
      <td><ul class="ex">{% for c in f.citations %}<li>{{ c }}</li>{% else %}<li class="empty">none</li>{% endfor %}</ul></td></tr>{% endfor %}</tbody></table></div>
  {% else %}<p class="empty">No thumbs-down answers in this period.</p>{% endif %}
</section>

<section id="reingest-impact">
  <h2>Re-ingest impact</h2>
  {% set ri = r.reingest_impact %}
  <p class="explain">Saved-path steps{% if ri.eval_dataset %} and golden-set expectations ({{ ri.eval_dataset }}){% endif %} checked against the index:
    {{ ri.checked }} checked{% for k, v in ri.counts.items() %}, {{ v }} {{ k.replace('_', ' ') }}{% endfor %}.
    {% if ri.snapshot_taken_at %}Snapshot of {{ ri.snapshot_taken_at.strftime('%Y-%m-%d %H:%M UTC') }}.{% endif %} {{ ri.note }}</p>
  {% if ri.flagged %}
  <div class="wrap"><table id="impact-table">
    <thead><tr><th>Status</th><th>Where</th><th>Points to</th><th>Note</th></tr></thead>
    <tbody>{% for i in ri.flagged %}<tr data-status="{{ i.status }}"><td><span class="tag {{ 'changed' if i.status == 'changed' else 'missing' }}">{{ i.status.replace('_', ' ') }}</span></td>
      <td>{{ 'Saved path' if i.source == 'playlist' else 'Eval case' }} <code>{{ i.ref }}</code><div class="muted">{{ i.context }}{% if i.learner_id %} · {{ i.learner_id }}{% endif %}</div></td>
      <td>{{ i.course_id }}{% if i.module %} › {{ i.module }}{% endif %}{% if i.section %} › {{ i.section }}{% endif %}</td><td class="muted">{{ i.note }}</td></tr>{% endfor %}</tbody></table></div>
  {% else %}<p class="empty">Nothing points at changed or missing material.</p>{% endif %}
</section>
</main>
</body>
</html>
"""


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def render_html(report: InsightsReport) -> str:
    from jinja2 import Environment

    env = Environment(autoescape=True)
    template = env.from_string(_TEMPLATE)
    return template.render(r=report, t=report.totals, charts=_charts(report), pct=_pct)


def write_html(report: InsightsReport, path: Path) -> Path:
    """A self-contained HTML page (inline CSS and SVG charts, no network) with charts tagged data-chart."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
