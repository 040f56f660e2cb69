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

from assistant.apps.insights.build import build_report
from assistant.apps.insights.export import write_csv, write_json
from assistant.apps.insights.impact import load_snapshot, snapshot_path, snapshot_sections
from assistant.apps.insights.models import (
    CLUSTER_DISTANCE,
    LOW_CONFIDENCE_FLOOR,
    LOW_CONFIDENCE_MARGIN,
    InsightsReport,
)
from assistant.apps.insights.render import render_html, write_html

__all__ = [
    "CLUSTER_DISTANCE",
    "LOW_CONFIDENCE_FLOOR",
    "LOW_CONFIDENCE_MARGIN",
    "InsightsReport",
    "build_report",
    "load_snapshot",
    "render_html",
    "snapshot_path",
    "snapshot_sections",
    "write_csv",
    "write_html",
    "write_json",
]
