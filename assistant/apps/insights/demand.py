"""Demand (skills asked about, courses cited, goals, path completion) and thumbs-down feedback."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from assistant.apps.insights.models import (
    CompletionBucket,
    CourseDemand,
    Demand,
    FeedbackItem,
    FeedbackSection,
    GoalDemand,
    PathCompletion,
    PathProgress,
    SkillDemand,
    StepReach,
    aware,
    question_text,
)
from assistant.core.text import tokenize
from assistant.core.types import Course, Location

if TYPE_CHECKING:
    from assistant.planning.learners import QuestionLogEntry, SavedPlaylist


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
                created_at=aware(saved.created_at),
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


def demand_section(
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
        stems = set(tokenize(question_text(entry)))
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


def feedback_section(entries: Sequence[QuestionLogEntry]) -> FeedbackSection:
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
            created_at=aware(e.created_at),
        )
        for e in sorted(entries, key=lambda e: e.id, reverse=True)
        if e.feedback is not None and e.feedback < 0
    ]
    return section
