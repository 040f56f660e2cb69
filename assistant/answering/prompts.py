"""Prompt templates live in prompts/*.md; a template with an unknown or missing variable fails at load."""

from __future__ import annotations

import string
from functools import cache
from importlib import resources

from assistant.core.errors import ConfigError

# The variables each template may use; a typo in a template file fails loudly instead of leaking "{qestion}".
ALLOWED_VARIABLES: dict[str, set[str]] = {
    "system": set(),
    "answer": {"evidence", "history", "question"},
    "rewrite": {"history", "question"},
    "playlist_intro": {"goal", "steps"},
    "router": set(),
    "judge_faithfulness": {"context", "question", "answer"},
    "judge_relevance": {"question", "answer"},
}


class PromptTemplate:
    """A prompt file with named {variables}."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        used = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
        allowed = ALLOWED_VARIABLES.get(name)
        if allowed is None:
            raise ConfigError(f"Unknown prompt '{name}'.", f"use one of: {', '.join(sorted(ALLOWED_VARIABLES))}.")
        unknown = used - allowed
        if unknown:
            raise ConfigError(
                f"prompts/{name}.md uses unknown variable(s) {sorted(unknown)}.",
                f"use only {sorted(allowed) or 'no variables'}; write literal braces as {{{{ and }}}}.",
            )
        missing = allowed - used
        if missing:
            raise ConfigError(
                f"prompts/{name}.md does not use required variable(s) {sorted(missing)}.",
                f"add {', '.join('{' + m + '}' for m in sorted(missing))} to the template.",
            )

    def render(self, **values: str) -> str:
        return self.text.format(**values)


@cache
def load_prompt(name: str) -> PromptTemplate:
    """Load prompts/<name>.md from the installed package."""
    try:
        text = resources.files("prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"Prompt file prompts/{name}.md is missing.", "reinstall CoursePilot.") from exc
    return PromptTemplate(name, text)
