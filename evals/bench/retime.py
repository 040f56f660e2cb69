"""`python -m evals.bench.retime --work-dir DIR`: ask latency again on a library a bench run kept in DIR.

The bench builds its synthetic libraries under `--work-dir` and leaves them there; building the 100k one takes
minutes, timing it seconds. This reopens one (settings from env/.env, as the bench's: the query cache off, the
bench's own database) and times the bench's questions with `measure_latency`, printing its JSON with the load
average before and after. Run it once per code version against the same DIR to compare them back to back.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.core.settings import DatabaseSettings, Settings
from evals.bench.latency import bench_questions, measure_latency
from evals.bench.models import load_avg
from evals.bench.systems import index_settings


def kept_library_settings(settings: Settings, work_dir: Path, library: str) -> Settings:
    """Settings on the index a bench run kept in `work_dir` for `library` (e.g. "synthetic-100000"), as it timed
    it: every query pays for its own embedding."""
    work = work_dir.resolve()
    if not (work / "index" / library).is_dir():
        raise SystemExit(f"no kept index {work / 'index' / library}: run `coursepilot bench --work-dir {work}` first")
    embedding = settings.embedding.model_copy(update={"query_cache_size": 0})
    base = settings.model_copy(
        update={"embedding": embedding, "database": DatabaseSettings(url=f"sqlite:///{work / 'bench.db'}")}
    )
    return index_settings(base, work / "index" / library, work / "libs" / library)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="the bench run's --work-dir")
    parser.add_argument("--library", default="synthetic-100000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)
    settings = kept_library_settings(Settings(), args.work_dir, args.library)
    before = load_avg()
    result: dict[str, Any] = measure_latency(settings, bench_questions(args.queries))
    result.update({"library": args.library, "load_avg_before": before, "load_avg_after": load_avg()})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    raise SystemExit(main())
