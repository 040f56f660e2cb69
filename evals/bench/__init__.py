"""The performance benchmark (`coursepilot bench`, `python -m evals.bench`)."""

from evals.bench.run import *  # noqa: F403
from evals.bench.run import bench_command

__all__ = ["bench_command"]
