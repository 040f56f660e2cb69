"""Planner properties over random prerequisite DAGs, plus expected paths on the sample library."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.core.errors import PrerequisiteCycleError
from assistant.core.types import Chunk, Course, Evidence, Location, ModuleInfo
from assistant.planning.playlist import module_item_id, parse_budget, plan

LEVELS = ["beginner", "intermediate", "advanced"]


@st.composite
def libraries(draw: st.DrawFn) -> tuple[dict[str, Course], list[Evidence], set[str], int | None]:
    """A random DAG of courses (edges only to lower-numbered courses), evidence, progress and a budget."""
    n = draw(st.integers(min_value=1, max_value=8))
    courses: dict[str, Course] = {}
    for i in range(n):
        prereqs = sorted(draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)) if i else set())
        modules = [
            ModuleInfo(path=f"m{j}.md", title=f"C{i} module {j}", minutes=draw(st.integers(5, 90)))
            for j in range(draw(st.integers(1, 4)))
        ]
        courses[f"c{i}"] = Course(
            id=f"c{i}",
            title=f"Course {i}",
            level=draw(st.sampled_from(LEVELS)),
            prerequisites=[f"c{p}" for p in prereqs],
            modules=modules,
            skills=[f"skill {i}"],
        )
    evidence = []
    hits = draw(st.lists(st.sampled_from(sorted(courses)), min_size=1, max_size=12))
    for rank, course_id in enumerate(hits):
        course = courses[course_id]
        module = course.modules[rank % len(course.modules)]
        loc = Location(
            course_id=course_id, course_title=course.title, module=module.path, module_title=module.title, page=1
        )
        chunk = Chunk(id=f"k{rank}", text=f"text {rank}", location=loc, ordinal=0, tokens=2, content_hash="h")
        evidence.append(Evidence(key=f"S{rank + 1}", chunk=chunk, score=1.0 / (rank + 1)))
    all_items = [module_item_id(c.id, m.path) for c in courses.values() for m in c.modules]
    completed = set(draw(st.lists(st.sampled_from(all_items), max_size=4))) if all_items else set()
    budget = draw(st.one_of(st.none(), st.integers(min_value=10, max_value=600)))
    return courses, evidence, completed, budget


@settings(max_examples=150, deadline=None)
@given(libraries())
def test_plan_respects_prerequisites_progress_and_budget(
    case: tuple[dict[str, Course], list[Evidence], set[str], int | None],
) -> None:
    courses, evidence, completed, budget = case
    path = plan("skill", evidence, courses, completed, budget)
    position = {item.course_id: i for i, item in reversed(list(enumerate(path.items)))}
    last_position = {item.course_id: i for i, item in enumerate(path.items)}
    for item in path.items:
        # No completed item is planned again.
        assert item.item_id not in completed
        for pre in courses[item.course_id].prerequisites:
            if pre in last_position:
                # Every module of a prerequisite course comes before any module of the course needing it.
                assert last_position[pre] < position[item.course_id]
        # A prerequisite is either planned (checked above) or already completed: never silently missing.
        for pre in courses[item.course_id].prerequisites:
            pre_done = all(module_item_id(pre, m.path) in completed for m in courses[pre].modules)
            assert pre in last_position or pre_done
    if budget is not None:
        assert path.total_minutes <= budget
        assert sum(i.minutes for i in path.items) == path.total_minutes
    # Items are unique, and nothing left out is also planned.
    ids = [i.item_id for i in path.items]
    assert len(ids) == len(set(ids))
    assert not set(ids) & {i.item_id for i in path.left_out}
    # Every item says why it is there.
    assert all(i.why for i in path.items)


def test_cycle_names_the_courses() -> None:
    a = Course(id="a", title="A", prerequisites=["b"], modules=[ModuleInfo(path="x.md", title="X")])
    b = Course(id="b", title="B", prerequisites=["a"], modules=[ModuleInfo(path="y.md", title="Y")])
    loc = Location(course_id="a", course_title="A", module="x.md", module_title="X")
    ev = Evidence(key="S1", chunk=Chunk(id="1", text="t", location=loc, ordinal=0, tokens=1, content_hash="h"), score=1)
    with pytest.raises(PrerequisiteCycleError) as info:
        plan("x", [ev], {"a": a, "b": b}, set())
    assert info.value.cycle[0] == info.value.cycle[-1]
    assert {"a", "b"} <= set(info.value.cycle)
    assert "a -> b -> a" in str(info.value) or "b -> a -> b" in str(info.value)


@pytest.mark.parametrize(
    ("goal", "topic", "minutes"),
    [
        ("build me a 3-hour path to become a better coach", "build me a path to become a better coach", 180),
        ("90 minutes on pivot tables", "on pivot tables", 90),
        ("advanced Excel", "advanced Excel", None),
        ("a 1.5 h plan for privacy", "a plan for privacy", 90),
    ],
)
def test_parse_budget(goal: str, topic: str, minutes: int | None) -> None:
    assert parse_budget(goal) == (topic, minutes)
