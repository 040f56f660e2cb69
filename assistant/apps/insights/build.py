"""Gathering: the question log and saved paths of a period, through every section, into one report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.apps.insights.demand import demand_section, feedback_section
from assistant.apps.insights.gaps import content_gaps, low_confidence_threshold
from assistant.apps.insights.impact import reingest_impact
from assistant.apps.insights.models import CLUSTER_DISTANCE, InsightsReport, Totals, aware

if TYPE_CHECKING:
    from assistant.pilot import CoursePilot
    from assistant.planning.learners import LearnerStore


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
    since = aware(since) if since is not None else None
    entries = store.questions(since=since)
    playlists = [p for p in store.all_playlists() if since is None or aware(p.created_at) >= since]
    catalogue = pilot.catalogue()
    floor = low_confidence_below if low_confidence_below is not None else low_confidence_threshold(pilot)
    gaps, low_confidence = content_gaps(pilot, entries, cluster_distance, floor)
    created = [aware(e.created_at) for e in entries]
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
        demand=demand_section(entries, playlists, catalogue),
        feedback=feedback_section(entries),
        reingest_impact=reingest_impact(pilot, playlists, eval_dataset, refresh_snapshot),
    )
