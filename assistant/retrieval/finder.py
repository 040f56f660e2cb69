"""Find a course: which courses (and which sections) teach a skill."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.core.text import tokenize
from assistant.core.types import Course, CourseSuggestion, Evidence, Location

# Rank discount of reciprocal-rank aggregation: a course with several strong passages beats one lucky hit.
_RANK_OFFSET = 5


def rank_courses(
    query: str, evidence: Sequence[Evidence], catalogue: dict[str, Course], limit: int = 5, sections: int = 3
) -> list[CourseSuggestion]:
    """Aggregate passage ranks up to courses; a declared skill that the query names adds weight."""
    query_terms = set(tokenize(query))
    scores: dict[str, float] = {}
    locations: dict[str, list[Location]] = {}
    for rank, item in enumerate(evidence):
        course_id = item.chunk.location.course_id
        scores[course_id] = scores.get(course_id, 0.0) + 1.0 / (_RANK_OFFSET + rank)
        found = locations.setdefault(course_id, [])
        if item.chunk.location not in found and len(found) < sections:
            found.append(item.chunk.location)
    for course_id in scores:
        course = catalogue.get(course_id)
        if course is None:
            continue
        for skill in course.skills:
            skill_terms = set(tokenize(skill))
            if skill_terms and skill_terms <= query_terms:
                scores[course_id] += 0.1
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])[:limit]
    out: list[CourseSuggestion] = []
    for course_id, score in ranked:
        course = catalogue.get(course_id)
        first = locations[course_id][0]
        out.append(
            CourseSuggestion(
                course_id=course_id,
                title=course.title if course else first.course_title,
                level=course.level if course else "beginner",
                score=round(score, 4),
                sections=locations[course_id],
            )
        )
    return out
