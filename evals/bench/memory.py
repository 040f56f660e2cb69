"""Memory measurement: RSS sampled per phase (this process and the Chroma server), and ru_maxrss."""

from __future__ import annotations

import contextlib
import resource
import sys
import threading
from collections.abc import Iterator
from typing import Any


class MemorySampler:
    """Samples this process's RSS (and optionally another process's) every `interval` seconds, per phase."""

    def __init__(self, interval: float = 0.1) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._phase: str | None = None
        self.phases: dict[str, float] = {}
        self.external_peak: float | None = None
        self._external: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._thread.start()

    def watch(self, pid: int | None) -> None:
        import psutil

        self._external = psutil.Process(pid) if pid else None

    def _sample(self) -> None:
        rss = self._proc.memory_info().rss / 2**20
        if self._phase is not None:
            self.phases[self._phase] = max(self.phases.get(self._phase, 0.0), rss)
        if self._external is not None:
            with contextlib.suppress(Exception):
                ext = self._external.memory_info().rss / 2**20
                self.external_peak = max(self.external_peak or 0.0, ext)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):
                self._sample()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        previous = self._phase
        self._phase = name
        self._sample()
        try:
            yield
        finally:
            self._sample()
            self._phase = previous

    def peak(self, name: str) -> float | None:
        value = self.phases.get(name)
        return round(value, 1) if value is not None else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def ru_maxrss_mb() -> float:
    # Linux reports kilobytes, macOS bytes.
    raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(raw / (2**20 if sys.platform == "darwin" else 1024), 1)
