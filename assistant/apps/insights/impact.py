"""Re-ingest impact: section fingerprints, their snapshot, and the saved-path steps and eval expectations that
point at changed or missing material."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.apps.insights.models import SNAPSHOT_NAME, SNAPSHOT_VERSION, ImpactItem, ImpactStatus, ReingestImpact
from assistant.core.types import Chunk

if TYPE_CHECKING:
    from assistant.pilot import CoursePilot
    from assistant.planning.learners import SavedPlaylist


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
        "version": SNAPSHOT_VERSION,
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
    if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
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


def reingest_impact(
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
