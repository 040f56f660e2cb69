"""Content gaps: refused and low-confidence questions, embedded, clustered, labelled and ranked."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from assistant.apps.insights.models import (
    LOW_CONFIDENCE_FLOOR,
    LOW_CONFIDENCE_MARGIN,
    MAX_GAP_QUESTIONS,
    ContentGaps,
    GapCluster,
    GapQuestion,
    NearestSection,
    aware,
    question_text,
)
from assistant.core.text import STOPWORDS, tokenize

if TYPE_CHECKING:
    from assistant.pilot import CoursePilot
    from assistant.planning.learners import QuestionLogEntry

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


def content_gaps(
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
    texts = list(dict.fromkeys(question_text(e) for e in reversed(gaps)))[:MAX_GAP_QUESTIONS]
    position = {t: i for i, t in enumerate(texts)}
    gaps = [e for e in gaps if question_text(e) in position]
    from assistant.models.embeddings import get_embedder

    vectors = np.asarray(get_embedder(pilot.settings.embedding).embed_documents(texts), dtype=np.float32)
    labels = _cluster(vectors, threshold)
    stems_per_text, surfaces = _stem_map(texts)
    df_all: Counter[str] = Counter(s for stems in stems_per_text for s in stems)  # stems are unique per text

    members: dict[int, list[QuestionLogEntry]] = defaultdict(list)
    for entry in gaps:
        members[int(labels[position[question_text(entry)]])].append(entry)

    clusters: list[GapCluster] = []
    for label_id, group in members.items():
        text_ids = list(dict.fromkeys(position[question_text(e)] for e in group))
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
                        created_at=aware(e.created_at),
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
