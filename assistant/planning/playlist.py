"""Learning-path planner: relevance from the retriever, prerequisites from manifests, progress, time budget."""

from __future__ import annotations

import heapq
import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.core.errors import PrerequisiteCycleError
from assistant.core.text import tokenize
from assistant.core.types import LEVEL_ORDER, Citation, Course, Evidence, Location, Playlist, PlaylistItem

_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)\s*-?\s*(?P<unit>hours?|hrs?|h|minutes?|mins?|m)\b", re.IGNORECASE)
# Share of the best course's relevance a course needs to be a target of the path.
_TARGET_SHARE = 0.35
_MAX_TARGETS = 3
_RANK_OFFSET = 5


def parse_budget(goal: str) -> tuple[str, int | None]:
    """'a 3-hour path to coaching' -> ('a path to coaching', 180)."""
    match = _DURATION.search(goal)
    if not match:
        return goal, None
    value = float(match.group("value"))
    minutes = round(value * 60) if match.group("unit").lower().startswith("h") else round(value)
    cleaned = (goal[: match.start()] + goal[match.end() :]).strip()
    return re.sub(r"\s{2,}", " ", cleaned), minutes


@dataclass
class _Candidate:
    item: PlaylistItem
    course: Course
    position: int


def module_item_id(course_id: str, module_path: str) -> str:
    return f"{course_id}/{module_path}"


def find_cycle(courses: dict[str, Course], start: Sequence[str]) -> list[str] | None:
    """A prerequisite cycle reachable from `start`, as a closed list of course ids."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in courses[node].prerequisites if node in courses else []:
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt in courses and nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in start:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def prerequisite_closure(courses: dict[str, Course], targets: Sequence[str]) -> list[str]:
    """Every course the targets need, transitively (targets excluded)."""
    cycle = find_cycle(courses, targets)
    if cycle:
        raise PrerequisiteCycleError(cycle)
    needed: list[str] = []
    stack = list(targets)
    while stack:
        for pre in courses[stack.pop()].prerequisites:
            if pre in courses and pre not in needed and pre not in targets:
                needed.append(pre)
                stack.append(pre)
    return needed


def topological_courses(courses: dict[str, Course], chosen: Sequence[str], relevance: dict[str, float]) -> list[str]:
    """Kahn's algorithm over the chosen courses; ties go to the lower level, then the more relevant."""
    chosen_set = set(chosen)
    indegree = {c: 0 for c in chosen}
    dependents: dict[str, list[str]] = {c: [] for c in chosen}
    for course_id in chosen:
        for pre in courses[course_id].prerequisites:
            if pre in chosen_set:
                indegree[course_id] += 1
                dependents[pre].append(course_id)

    def key(course_id: str) -> tuple[int, float, str]:
        return (LEVEL_ORDER[courses[course_id].level], -relevance.get(course_id, 0.0), course_id)

    ready = [key(c) for c, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, _, course_id = heapq.heappop(ready)
        order.append(course_id)
        for nxt in dependents[course_id]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(ready, key(nxt))
    if len(order) != len(chosen):
        cycle = find_cycle(courses, [c for c in chosen if c not in order]) or sorted(set(chosen) - set(order))
        raise PrerequisiteCycleError(cycle)
    return order


def _citation(evidence: Evidence) -> Citation:
    loc = evidence.chunk.location
    snippet = evidence.chunk.text if len(evidence.chunk.text) <= 280 else evidence.chunk.text[:277].rstrip() + "…"
    return Citation(key="1", location=loc, label=loc.label(), snippet=snippet, chunk_id=evidence.chunk.id)


def plan(
    goal: str,
    evidence: Sequence[Evidence],
    courses: dict[str, Course],
    completed: set[str],
    budget_minutes: int | None = None,
    level: str | None = None,
    first_chunks: dict[str, Evidence] | None = None,
) -> Playlist:
    """An ordered, prerequisite-respecting, budget-fitting path of module steps for a goal."""
    first_chunks = first_chunks or {}
    goal_terms = set(tokenize(goal))
    module_score: dict[str, float] = {}
    module_best: dict[str, Evidence] = {}
    course_score: dict[str, float] = {}
    for rank, item in enumerate(evidence):
        loc = item.chunk.location
        if loc.course_id not in courses:
            continue
        weight = 1.0 / (_RANK_OFFSET + rank)
        key = module_item_id(loc.course_id, loc.module)
        module_score[key] = module_score.get(key, 0.0) + weight
        module_best.setdefault(key, item)
        course_score[loc.course_id] = course_score.get(loc.course_id, 0.0) + weight
    skills_hit: dict[str, list[str]] = {}
    for course_id, course in courses.items():
        hits = [s for s in course.skills if set(tokenize(s)) & goal_terms]
        if hits:
            skills_hit[course_id] = hits
            if course_id in course_score:
                course_score[course_id] += 0.05 * len(hits)

    done_courses = {
        c.id
        for c in courses.values()
        if c.id in completed or (c.modules and all(module_item_id(c.id, m.path) in completed for m in c.modules))
    }
    ranked = sorted(course_score.items(), key=lambda kv: -kv[1])
    best = ranked[0][1] if ranked else 0.0
    targets = [cid for cid, score in ranked if score >= _TARGET_SHARE * best][:_MAX_TARGETS]
    learner_level = LEVEL_ORDER.get(level or "", -1)
    prereqs = [
        cid
        for cid in prerequisite_closure(courses, targets)
        if cid not in done_courses and LEVEL_ORDER[courses[cid].level] >= learner_level
    ]
    skipped_below_level = [
        cid
        for cid in prerequisite_closure(courses, targets)
        if cid not in done_courses and LEVEL_ORDER[courses[cid].level] < learner_level
    ]
    chosen = [c for c in targets if c not in done_courses] + prereqs
    relevance = {cid: course_score.get(cid, 0.0) for cid in chosen}
    order = topological_courses(courses, chosen, relevance)

    candidates: list[_Candidate] = []
    skipped_done: list[str] = sorted(c for c in done_courses if c in targets or c in prereqs)
    for course_id in order:
        course = courses[course_id]
        is_pre = course_id in prereqs
        # The course that needs this one, named so the learner knows why a prerequisite is there.
        needed_by = [courses[t].title for t in chosen if course_id in courses[t].prerequisites]
        for position, module in enumerate(course.modules):
            item_id = module_item_id(course_id, module.path)
            if item_id in completed:
                skipped_done.append(item_id)
                continue
            ev = module_best.get(item_id) or first_chunks.get(item_id)
            score = module_score.get(item_id, 0.0)
            matched = skills_hit.get(course_id, [])
            if is_pre:
                why = f"Prerequisite for {', '.join(needed_by) or 'a course on this path'}."
            elif score > 0:
                taught = ", ".join(matched) if matched else "what your goal asks for"
                part = ev.chunk.location.section[-1] if ev is not None and ev.chunk.location.section else None
                why = f"Teaches {taught}" + (f"; most relevant part: {part}." if part else ".")
            else:
                why = f"Part of {course.title}, which matches your goal."
            location = (
                ev.chunk.location
                if ev
                else Location(
                    course_id=course_id, course_title=course.title, module=module.path, module_title=module.title
                )
            )
            candidates.append(
                _Candidate(
                    item=PlaylistItem(
                        item_id=item_id,
                        kind="module",
                        title=module.title,
                        course_id=course_id,
                        level=course.level,
                        minutes=module.minutes,
                        location=location,
                        why=why,
                        skills_matched=matched,
                        evidence=_citation(ev) if ev else None,
                        is_prerequisite=is_pre,
                        relevance=round(score + 0.01 * relevance.get(course_id, 0.0), 5),
                    ),
                    course=course,
                    position=position,
                )
            )

    left_out: list[PlaylistItem] = []
    if budget_minutes is not None:
        candidates, left_out = _fit_budget(candidates, courses, budget_minutes)
    items = [c.item for c in candidates]
    total = sum(i.minutes for i in items)
    message = _summary(goal, items, left_out, skipped_done, skipped_below_level, budget_minutes, courses)
    return Playlist(
        goal=goal,
        budget_minutes=budget_minutes,
        total_minutes=total,
        items=items,
        left_out=left_out,
        skipped_done=skipped_done,
        covered=bool(items) or bool(skipped_done),
        message=message,
    )


def _fit_budget(
    candidates: list[_Candidate], courses: dict[str, Course], budget: int
) -> tuple[list[_Candidate], list[PlaylistItem]]:
    """Drop the least relevant non-prerequisite steps, then prerequisites no longer needed, until it fits."""
    kept = list(candidates)
    dropped: list[PlaylistItem] = []

    def total() -> int:
        return sum(c.item.minutes for c in kept)

    def required_by_others() -> set[str]:
        """Courses some other kept course needs (transitively): dropping one would break an order."""
        kept_courses = {c.item.course_id for c in kept}
        required: set[str] = set()
        stack = [p for cid in kept_courses for p in courses[cid].prerequisites]
        while stack:
            pre = stack.pop()
            if pre in courses and pre not in required:
                required.add(pre)
                stack.extend(courses[pre].prerequisites)
        return required

    while total() > budget:
        required = required_by_others()
        optional = [c for c in kept if not c.item.is_prerequisite and c.item.course_id not in required]
        # Least relevant first; among equals, the later step in its course goes first.
        victim = min(optional, key=lambda c: (c.item.relevance, -c.position)) if optional else kept[-1]
        kept.remove(victim)
        dropped.append(victim.item)
        remaining_targets = {c.item.course_id for c in kept if not c.item.is_prerequisite}
        still_needed = set(prerequisite_closure(courses, sorted(remaining_targets))) if remaining_targets else set()
        for c in [c for c in kept if c.item.is_prerequisite and c.item.course_id not in still_needed]:
            kept.remove(c)
            dropped.append(c.item)
    return kept, dropped


def _summary(
    goal: str,
    items: Sequence[PlaylistItem],
    left_out: Sequence[PlaylistItem],
    skipped_done: Sequence[str],
    skipped_below_level: Sequence[str],
    budget: int | None,
    courses: dict[str, Course],
) -> str:
    parts = [f"{len(items)} step(s), {sum(i.minutes for i in items)} minutes, for: {goal}."]
    if budget is not None:
        parts.append(f"Time budget: {budget} minutes.")
    if left_out:
        parts.append(
            f"Left out to fit the time: {', '.join(i.title for i in left_out)} "
            f"({sum(i.minutes for i in left_out)} minutes)."
        )
    if skipped_done:
        parts.append(f"Skipped because you have done them: {len(skipped_done)} item(s).")
    if skipped_below_level:
        names = ", ".join(courses[c].title for c in skipped_below_level)
        parts.append(f"Assumed known at your level: {names}.")
    return " ".join(parts)
