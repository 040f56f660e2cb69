"""The facade the app calls: one method per learner event, never raising."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.core.settings import Settings
from assistant.integrations.xapi.sender import XAPIClient
from assistant.integrations.xapi.statements import DEFAULT_ACTIVITY_BASE, PLATFORM, StatementFactory

if TYPE_CHECKING:
    from assistant.core.types import Answer
    from assistant.planning.learners import SavedPlaylist

log = logging.getLogger("assistant.integrations.xapi")


class XAPIRecorder:
    """What the app calls: one method per learner event. Never raises; no-op when xAPI is disabled or the
    learner is anonymous (an xAPI actor must be identified)."""

    def __init__(
        self,
        client: XAPIClient,
        activity_base: str = DEFAULT_ACTIVITY_BASE,
        home_page: str | None = None,
        platform: str = PLATFORM,
    ) -> None:
        self.client = client
        self.factory = StatementFactory(activity_base, home_page, platform)

    @classmethod
    def from_settings(
        cls, settings: Settings, queue_path: Path | None = None, activity_base: str = DEFAULT_ACTIVITY_BASE
    ) -> XAPIRecorder:
        return cls(XAPIClient(settings, queue_path), activity_base)

    @property
    def enabled(self) -> bool:
        return self.client.enabled

    def _emit(self, learner_id: str | None, build: Any) -> str | None:
        if not self.client.enabled or not learner_id:
            return None
        try:
            return self.client.enqueue(build())
        except Exception as exc:  # recording must never break answering
            log.warning("xAPI: could not queue a statement: %s", self.client._scrub(f"{type(exc).__name__}: {exc}"))
            return None

    def asked(self, learner_id: str | None, question: str) -> str | None:
        return self._emit(learner_id, lambda: self.factory.asked(str(learner_id), question))

    def answered(self, learner_id: str | None, answer: Answer, asked_id: str | None = None) -> str | None:
        return self._emit(learner_id, lambda: self.factory.answered(str(learner_id), answer, asked_id))

    def answer(self, learner_id: str | None, answer: Answer) -> tuple[str | None, str | None]:
        """'asked' then 'answered' (referring to it) for one finished answer; returns both statement ids."""
        total_ms = answer.timings_ms.get("total", 0.0)
        asked_at = datetime.fromtimestamp(time.time() - total_ms / 1000, UTC).isoformat(timespec="milliseconds")
        asked_id = self._emit(
            learner_id, lambda: self.factory.asked(str(learner_id), answer.question, asked_at.replace("+00:00", "Z"))
        )
        return asked_id, self.answered(learner_id, answer, asked_id)

    def completed(
        self, learner_id: str | None, item_id: str, title: str | None = None, course_title: str | None = None
    ) -> str | None:
        return self._emit(learner_id, lambda: self.factory.completed(str(learner_id), item_id, title, course_title))

    def saved_path(self, learner_id: str | None, saved: SavedPlaylist) -> str | None:
        return self._emit(learner_id, lambda: self.factory.saved_path(str(learner_id), saved.id, saved.playlist))

    def flush(self, timeout: float = 10.0) -> bool:
        return self.client.flush(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        return self.client.close(timeout)


def emit_for_answer(
    client: XAPIClient, learner_id: str | None, answer: Answer, activity_base: str = DEFAULT_ACTIVITY_BASE
) -> tuple[str | None, str | None]:
    """Queue 'asked' + 'answered' for one answer; returns their statement ids (None when not sent)."""
    return XAPIRecorder(client, activity_base).answer(learner_id, answer)
