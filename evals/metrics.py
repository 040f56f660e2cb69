"""Answer-quality metrics as pure functions. Each returns MetricValue(value, reason); value None = not applicable.

Relevance is binary: a retrieved or cited Location is relevant when it matches any expected location
(see :func:`location_matches`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel

from assistant.core.types import Location, PlaylistItem
from evals.dataset import ExpectedLocation

__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "METRIC_NAMES",
    "MetricValue",
    "budget_respected",
    "citation_precision",
    "citation_recall",
    "find_mrr",
    "find_top_k",
    "hit_at_k",
    "key_point_recall",
    "latency_percentiles",
    "location_matches",
    "matches_any",
    "mrr",
    "must_exclude_respected",
    "must_include_coverage",
    "ndcg_at_k",
    "normalise_text",
    "order_satisfied",
    "percentile",
    "prerequisite_violations",
    "recall_at_k",
    "refusal_correct",
    "refusal_precision_recall",
]


class MetricValue(BaseModel):
    """One metric for one case (or one run): value in [0, 1] (or a count / milliseconds), None if n/a."""

    value: float | None
    reason: str


def _na(reason: str) -> MetricValue:
    return MetricValue(value=None, reason=reason)


# -------------------------------------------------------------------------------------- locations


def _same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def location_matches(location: Location, expected: ExpectedLocation) -> bool:
    """Course must match; module (path or title), section (any heading of the trail, or the module title)
    and pages (overlap, only when both sides have pages) narrow the match when the expectation gives them.
    """
    if not _same(location.course_id, expected.course):
        return False
    if expected.module and not (
        _same(location.module, expected.module) or _same(location.module_title, expected.module)
    ):
        return False
    if expected.section:
        headings = [*location.section, location.module_title]
        if not any(_same(h, expected.section) for h in headings):
            return False
    return not (expected.pages and location.page is not None and location.page not in expected.pages)


def matches_any(location: Location, expected: Sequence[ExpectedLocation]) -> bool:
    """True when the location matches at least one expected location (binary relevance)."""
    return any(location_matches(location, e) for e in expected)


_relevant = matches_any


def _short(location: Location) -> str:
    section = location.section[-1] if location.section else location.module_title
    page = f" p.{location.page}" if location.page else ""
    return f"{location.course_id}/{location.module} › {section}{page}"


# -------------------------------------------------------------------------------------- retrieval


def hit_at_k(retrieved: Sequence[Location], expected: Sequence[ExpectedLocation], k: int) -> MetricValue:
    """1 if any of the top-k retrieved locations matches an expected one, else 0."""
    if not expected:
        return _na("no expected locations")
    for rank, location in enumerate(retrieved[:k], start=1):
        if _relevant(location, expected):
            return MetricValue(value=1.0, reason=f"relevant passage at rank {rank}: {_short(location)}")
    return MetricValue(value=0.0, reason=f"no expected location in the top {k} of {len(retrieved)} passages")


def recall_at_k(retrieved: Sequence[Location], expected: Sequence[ExpectedLocation], k: int) -> MetricValue:
    """Share of expected locations matched by at least one of the top-k retrieved locations."""
    return _coverage(retrieved[:k], expected, f"in the top {k}", "missing")


def _coverage(locations: Sequence[Location], expected: Sequence[ExpectedLocation], how: str, lack: str) -> MetricValue:
    """Share of expected locations that at least one of `locations` matches; the reason names the others."""
    if not expected:
        return _na("no expected locations")
    found = [e for e in expected if any(location_matches(loc, e) for loc in locations)]
    missing = [e.label() for e in expected if e not in found]
    reason = f"{len(found)}/{len(expected)} expected locations {how}"
    if missing:
        reason += f"; {lack}: {'; '.join(missing)}"
    return MetricValue(value=len(found) / len(expected), reason=reason)


def mrr(retrieved: Sequence[Location], expected: Sequence[ExpectedLocation]) -> MetricValue:
    """Reciprocal rank of the first relevant passage (0 when none is relevant)."""
    if not expected:
        return _na("no expected locations")
    for rank, location in enumerate(retrieved, start=1):
        if _relevant(location, expected):
            return MetricValue(value=1.0 / rank, reason=f"first relevant passage at rank {rank}")
    return MetricValue(value=0.0, reason=f"none of {len(retrieved)} passages is relevant")


def ndcg_at_k(retrieved: Sequence[Location], expected: Sequence[ExpectedLocation], k: int = 10) -> MetricValue:
    """Binary-relevance nDCG@k: DCG = sum(rel_i / log2(i + 1)).

    The ideal ranking puts max(len(expected), relevant passages retrieved) relevant passages first (capped at
    k): several passages from one expected section are not penalised, and missing a second expected
    location is.
    """
    if not expected:
        return _na("no expected locations")
    rels = [1.0 if _relevant(loc, expected) else 0.0 for loc in retrieved[:k]]
    dcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(rels))
    ideal_n = min(k, max(len(expected), int(sum(rels))))
    idcg = sum(1.0 / math.log2(i + 2) for i in range(ideal_n))
    value = dcg / idcg if idcg else 0.0
    ranks = [i + 1 for i, rel in enumerate(rels) if rel]
    return MetricValue(value=value, reason=f"relevant at ranks {ranks or 'none'} of top {k}; ideal {ideal_n}")


# -------------------------------------------------------------------------------------- citations


def citation_precision(cited: Sequence[Location], expected: Sequence[ExpectedLocation]) -> MetricValue:
    """Share of citations that point at an expected location (n/a without citations or expectations)."""
    if not expected:
        return _na("no expected locations")
    if not cited:
        return _na("the answer has no citations")
    good = [loc for loc in cited if _relevant(loc, expected)]
    bad = [_short(loc) for loc in cited if not _relevant(loc, expected)]
    reason = f"{len(good)}/{len(cited)} citations point at an expected location"
    if bad:
        reason += f"; off-target: {'; '.join(bad)}"
    return MetricValue(value=len(good) / len(cited), reason=reason)


def citation_recall(cited: Sequence[Location], expected: Sequence[ExpectedLocation]) -> MetricValue:
    """Share of expected locations that at least one citation points at (0 when nothing is cited)."""
    return _coverage(cited, expected, "cited", "not cited")


# -------------------------------------------------------------------------------------- answer text

_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\u00a0": " "})


def normalise_text(text: str) -> str:
    """NFKC, case-folded, typographic quotes/dashes made plain, markdown emphasis dropped, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    text = re.sub(r"[*_`]+", "", text)
    return " ".join(text.split())


def key_point_recall(text: str, key_points: Sequence[str]) -> MetricValue:
    """Share of key points found in the answer (case-insensitive substring after normalise_text)."""
    if not key_points:
        return _na("no key points")
    body = normalise_text(text)
    found = [p for p in key_points if normalise_text(p) in body]
    missing = [p for p in key_points if p not in found]
    reason = f"{len(found)}/{len(key_points)} key points present"
    if missing:
        reason += f"; missing: {', '.join(repr(p) for p in missing)}"
    return MetricValue(value=len(found) / len(key_points), reason=reason)


# -------------------------------------------------------------------------------------- refusals


def refusal_correct(refused: bool, answerable: bool) -> MetricValue:
    """1 when the system refused exactly when it should have (answerable=False)."""
    if refused == (not answerable):
        return MetricValue(value=1.0, reason="refused as expected" if refused else "answered as expected")
    if refused:
        return MetricValue(value=0.0, reason="refused an answerable question")
    return MetricValue(value=0.0, reason="answered a question the library does not cover")


def refusal_precision_recall(outcomes: Iterable[tuple[bool, bool]]) -> dict[str, MetricValue]:
    """Precision and recall of refusals over a run; positive = should refuse.

    `outcomes` is (should_refuse, refused) per case. Precision: share of refusals that were right.
    Recall: share of should-refuse cases that were refused.
    """
    pairs = list(outcomes)
    tp = sum(1 for should, did in pairs if should and did)
    refused = sum(1 for _, did in pairs if did)
    positives = sum(1 for should, _ in pairs if should)
    precision = (
        MetricValue(value=tp / refused, reason=f"{tp}/{refused} refusals were for unanswerable cases")
        if refused
        else _na("no refusals in the run")
    )
    recall = (
        MetricValue(value=tp / positives, reason=f"{tp}/{positives} unanswerable cases were refused")
        if positives
        else _na("no unanswerable cases in the run")
    )
    return {"refusal_precision": precision, "refusal_recall": recall}


# -------------------------------------------------------------------------------------- find


def find_top_k(course_ids: Sequence[str], expected_courses: Sequence[str], k: int) -> MetricValue:
    """1 if an expected course is among the top-k suggested courses."""
    if not expected_courses:
        return _na("no expected courses")
    wanted = {c.casefold() for c in expected_courses}
    for rank, course_id in enumerate(course_ids[:k], start=1):
        if course_id.casefold() in wanted:
            return MetricValue(value=1.0, reason=f"{course_id} at rank {rank}")
    shown = ", ".join(course_ids[:k]) or "no courses"
    return MetricValue(value=0.0, reason=f"top {k}: {shown}; expected {', '.join(expected_courses)}")


def find_mrr(course_ids: Sequence[str], expected_courses: Sequence[str]) -> MetricValue:
    """Reciprocal rank of the first expected course among the suggestions."""
    if not expected_courses:
        return _na("no expected courses")
    wanted = {c.casefold() for c in expected_courses}
    for rank, course_id in enumerate(course_ids, start=1):
        if course_id.casefold() in wanted:
            return MetricValue(value=1.0 / rank, reason=f"{course_id} at rank {rank}")
    return MetricValue(value=0.0, reason=f"no expected course among {len(course_ids)} suggestions")


# -------------------------------------------------------------------------------------- playlists


def _first_index(items: Sequence[PlaylistItem], ref: str) -> int | None:
    """Position of the first item that an id refers to: 'course' matches any item of that course;
    'course/module' matches that module item or a whole-course item of that course."""
    course, _, module = ref.partition("/")
    for i, item in enumerate(items):
        if item.course_id != course:
            continue
        if not module or item.item_id == ref or item.kind == "course":
            return i
    return None


def _is_completed(ref: str, completed: Sequence[str]) -> bool:
    course = ref.partition("/")[0]
    return ref in completed or course in completed


def prerequisite_violations(
    items: Sequence[PlaylistItem], prerequisites: Mapping[str, Sequence[str]], completed: Sequence[str] = ()
) -> MetricValue:
    """Count of (course, prerequisite) pairs where the prerequisite is neither completed nor planned before
    the course's first item. Lower is better; 0 is correct."""
    violations: list[str] = []
    seen: set[str] = set()
    for item in items:
        if item.course_id in seen:
            continue
        seen.add(item.course_id)
        start = _first_index(items, item.course_id)
        for prereq in prerequisites.get(item.course_id, ()):
            if _is_completed(prereq, completed):
                continue
            where = _first_index(items, prereq)
            if where is None:
                violations.append(f"{item.course_id} needs {prereq}, which is not planned or completed")
            elif start is not None and where >= start:
                violations.append(f"{prereq} is planned after {item.course_id}, which needs it")
    if not violations:
        return MetricValue(value=0.0, reason=f"all prerequisites of {len(seen)} planned courses respected")
    return MetricValue(value=float(len(violations)), reason="; ".join(violations))


def must_include_coverage(items: Sequence[PlaylistItem], must_include: Sequence[str]) -> MetricValue:
    """Share of must-include ids present in the plan."""
    if not must_include:
        return _na("no must_include ids")
    missing = [ref for ref in must_include if _first_index(items, ref) is None]
    found = len(must_include) - len(missing)
    reason = f"{found}/{len(must_include)} must-include ids planned"
    if missing:
        reason += f"; missing: {', '.join(missing)}"
    return MetricValue(value=found / len(must_include), reason=reason)


def must_exclude_respected(items: Sequence[PlaylistItem], must_exclude: Sequence[str]) -> MetricValue:
    """1 if no must-exclude id appears in the plan, else 0."""
    if not must_exclude:
        return _na("no must_exclude ids")
    present = [ref for ref in must_exclude if _first_index(items, ref) is not None]
    if present:
        return MetricValue(value=0.0, reason=f"planned although excluded: {', '.join(present)}")
    return MetricValue(value=1.0, reason=f"none of {len(must_exclude)} excluded ids planned")


def order_satisfied(
    items: Sequence[PlaylistItem], order: Sequence[tuple[str, str] | Sequence[str]], completed: Sequence[str] = ()
) -> MetricValue:
    """Share of [before, after] pairs honoured: both planned with `before` first, or `before` completed
    and `after` planned."""
    if not order:
        return _na("no order constraints")
    failures: list[str] = []
    for pair in order:
        before, after = pair[0], pair[1]
        a = _first_index(items, after)
        if a is None:
            failures.append(f"{after} not planned")
            continue
        if _is_completed(before, completed):
            continue
        b = _first_index(items, before)
        if b is None:
            failures.append(f"{before} not planned (needed before {after})")
        elif b >= a:
            failures.append(f"{before} planned after {after}")
    ok = len(order) - len(failures)
    reason = f"{ok}/{len(order)} order constraints satisfied"
    if failures:
        reason += f"; {'; '.join(failures)}"
    return MetricValue(value=ok / len(order), reason=reason)


def budget_respected(items: Sequence[PlaylistItem], minutes: int | None) -> MetricValue:
    """1 if the planned minutes (sum of items) fit the budget, else 0; n/a without a budget."""
    if minutes is None:
        return _na("no time budget")
    total = sum(item.minutes for item in items)
    if total <= minutes:
        return MetricValue(value=1.0, reason=f"{total} of {minutes} minutes planned")
    return MetricValue(value=0.0, reason=f"{total} minutes planned, over the {minutes}-minute budget")


# -------------------------------------------------------------------------------------- latency


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), q in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of an empty sequence")
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_percentiles(latencies_ms: Sequence[float]) -> dict[str, MetricValue]:
    """p50 and p95 of per-case latency in milliseconds."""
    if not latencies_ms:
        return {"latency_p50_ms": _na("no timed cases"), "latency_p95_ms": _na("no timed cases")}
    n = len(latencies_ms)
    return {
        "latency_p50_ms": MetricValue(value=percentile(latencies_ms, 50), reason=f"median of {n} cases"),
        "latency_p95_ms": MetricValue(value=percentile(latencies_ms, 95), reason=f"95th percentile of {n} cases"),
    }


# -------------------------------------------------------------------------------------- directions

# Every metric name summary.json can hold, in report order.
METRIC_NAMES: tuple[str, ...] = (
    "pass_rate",
    "hit@1",
    "hit@3",
    "hit@5",
    "recall@5",
    "mrr",
    "ndcg@10",
    "citation_precision",
    "citation_recall",
    "key_point_recall",
    "refusal_correct",
    "refusal_precision",
    "refusal_recall",
    "faithfulness",
    "answer_relevance",
    "find_top1",
    "find_top3",
    "find_mrr",
    "prerequisite_violations",
    "must_include_coverage",
    "must_exclude_respected",
    "order_satisfied",
    "budget_respected",
    "latency_p50_ms",
    "latency_p95_ms",
)
LOWER_IS_BETTER: tuple[str, ...] = ("prerequisite_violations", "latency_p50_ms", "latency_p95_ms")
HIGHER_IS_BETTER: tuple[str, ...] = tuple(name for name in METRIC_NAMES if name not in LOWER_IS_BETTER)
