"""xAPI 1.0.3 statements (split by job in the next commit)."""

from assistant.integrations.xapi.sender import *  # noqa: F403
from assistant.integrations.xapi.sender import XAPIRecorder

__all__ = ["XAPIRecorder"]
