"""Query latency: the benchmark's questions and the timed `CoursePilot.ask` loop."""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.core.settings import Settings
from evals.bench.models import GOLDEN, SCIFACT_DIR, WARMUP_QUERIES
from evals.metrics import percentile


def bench_questions(n: int, scifact_dir: Path | None = SCIFACT_DIR, seed: int = 11) -> list[str]:
    """`n + WARMUP_QUERIES` distinct questions: the golden set's questions interleaved with SciFact claims."""
    import yaml

    golden: list[str] = []
    if GOLDEN.is_file():
        data = yaml.safe_load(GOLDEN.read_text(encoding="utf-8")) or {}
        golden = [str(c["question"]) for c in data.get("cases", []) if c.get("question")]
    claims: list[str] = []
    if scifact_dir is not None and (scifact_dir / "queries.jsonl").is_file():
        with open(scifact_dir / "queries.jsonl", encoding="utf-8") as fh:
            claims = [str(json.loads(line)["text"]) for line in fh if line.strip()]
    rng = random.Random(seed)
    rng.shuffle(golden)
    rng.shuffle(claims)
    out: list[str] = []
    seen: set[str] = set()
    for pair in zip(golden + [""] * len(claims), claims + [""] * len(golden), strict=False):
        for q in pair:
            if q and q not in seen:
                seen.add(q)
                out.append(q)
    need = n + WARMUP_QUERIES
    base = list(out) or ["How do I give useful feedback?"]
    i = 0
    while len(out) < need:  # more queries than questions: vary them (the query cache is off anyway)
        out.append(f"{base[i % len(base)]} ({i // len(base) + 2})")
        i += 1
    return out[:need]


def measure_latency(settings: Settings, questions: Sequence[str]) -> dict[str, Any]:
    """Warm up, then time `CoursePilot.ask` over `questions[WARMUP_QUERIES:]`."""
    from assistant.pilot import CoursePilot

    pilot = CoursePilot(settings)
    pilot.warm_up()
    for q in questions[:WARMUP_QUERIES]:
        pilot.ask(q)
    times: list[float] = []
    stages: dict[str, list[float]] = {}
    refused = 0
    for q in questions[WARMUP_QUERIES:]:
        started = time.perf_counter()
        answer = pilot.ask(q)
        times.append((time.perf_counter() - started) * 1000)
        refused += int(answer.refused)
        for name, value in answer.timings_ms.items():
            stages.setdefault(name, []).append(float(value))
    pilot.index.ledger.close()
    return {
        "queries": len(times),
        "p50_ms": round(statistics.median(times), 2) if times else 0.0,
        "p95_ms": round(percentile(times, 95), 2) if times else 0.0,
        "mean_ms": round(statistics.fmean(times), 2) if times else 0.0,
        "max_ms": round(max(times), 2) if times else 0.0,
        "stage_p50_ms": {k: round(statistics.median(v), 2) for k, v in sorted(stages.items())},
        "refused": refused,
    }
