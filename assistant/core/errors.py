"""Errors whose messages say what went wrong, where, and how to fix it."""

from __future__ import annotations


class CoursePilotError(Exception):
    """Base error. `fix` is the action that resolves it; str() includes both. `learner_message`, when set, is what
    a learner is shown instead (the fix is for whoever runs CoursePilot)."""

    learner_message: str | None = None

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(f"{message} Fix: {fix}" if fix else message)


class ConfigError(CoursePilotError):
    """A setting is missing or invalid."""


class ServiceUnavailableError(ConfigError):
    """A service CoursePilot depends on (a Chroma server, the database server) cannot be reached.

    A ConfigError too: the usual fix is a setting (host, port, URL) or starting the service.
    """


class LoaderError(CoursePilotError):
    """A course file cannot be read. `reason` is a short machine-readable code."""

    def __init__(self, path: str, reason: str, message: str, fix: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {message}", fix)


class ManifestError(CoursePilotError):
    """A course.yaml is invalid; names the file and the field."""

    def __init__(self, path: str, field: str, message: str, fix: str) -> None:
        self.path = path
        self.field = field
        super().__init__(f"{path}: field '{field}': {message}", fix)


class PrerequisiteCycleError(CoursePilotError):
    """Course prerequisites form a cycle."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(
            "Course prerequisites form a cycle: " + " -> ".join(cycle) + ".",
            "Remove one of these prerequisites from the course.yaml files involved, then re-ingest.",
        )


# What a learner reads instead of an operator's fix they cannot apply (render_error in the chat UI uses it).
INDEX_UNAVAILABLE = (
    "The course library is not available right now. Please try again in a few minutes, and tell your L&D team if "
    "this goes on."
)


class IndexMismatchError(CoursePilotError):
    """The index was built with another embedding model or chunking settings."""

    learner_message = INDEX_UNAVAILABLE


class IndexMissingError(CoursePilotError):
    """No index exists yet for the configured library (or its folder went missing)."""

    learner_message = INDEX_UNAVAILABLE


class ModelError(CoursePilotError):
    """The chat or embedding model endpoint failed after retries."""


class NotFoundError(CoursePilotError):
    """A learner, playlist or item does not exist."""


class StoreError(ServiceUnavailableError):
    """The learner database cannot be written (read-only) or reached: a service problem, exit 3."""
