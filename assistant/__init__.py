"""CoursePilot: answers from your course library with citations, course finding and learning paths.

`from assistant import CoursePilot` is cheap: models and indexes load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.core.settings import Settings
    from assistant.pilot import CoursePilot

__all__ = ["CoursePilot", "Settings"]


def __getattr__(name: str) -> Any:
    if name == "CoursePilot":
        from assistant.pilot import CoursePilot

        return CoursePilot
    if name == "Settings":
        from assistant.core.settings import Settings

        return Settings
    raise AttributeError(name)
