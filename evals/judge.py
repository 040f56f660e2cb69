"""Optional LLM-judge metrics (faithfulness, answer relevance) using the configured chat model.

Used only when settings.chat.provider == "openai". The prompts live in prompts/judge_faithfulness.md
({context}, {question}, {answer}) and prompts/judge_relevance.md ({question}, {answer}).

Why not ragas: ragas 0.4's current metrics (ragas.metrics.collections) only accept its instructor-based
LLMs, not a LangChain ChatOpenAI; its deprecated LangChain path imports a module removed from
langchain-community 0.4, and installing it downgrades openai and adds pandas/pyarrow/datasets.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from assistant.core.errors import ConfigError
from assistant.core.settings import Settings
from assistant.core.types import Answer
from assistant.models.chat import ModelCallError, complete, get_chat_model
from evals.metrics import MetricValue

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

__all__ = ["JUDGE_PROMPT_VARIABLES", "Judge", "judge_enabled", "make_judge", "parse_judge_json"]

# What each judge prompt must use (to be mirrored in assistant.answering.prompts.ALLOWED_VARIABLES).
JUDGE_PROMPT_VARIABLES: dict[str, set[str]] = {
    "judge_faithfulness": {"context", "question", "answer"},
    "judge_relevance": {"question", "answer"},
}
_MAX_CONTEXT_CHARS = 12_000


def _render(name: str, **values: str) -> str:
    """Render prompts/<name>.md; through assistant.answering.prompts once the prompt is registered there."""
    from assistant.answering import prompts

    if name in prompts.ALLOWED_VARIABLES:
        return prompts.load_prompt(name).render(**values)
    try:
        text = resources.files("prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"Prompt file prompts/{name}.md is missing.", "reinstall CoursePilot.") from exc
    used = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    if used != JUDGE_PROMPT_VARIABLES[name]:
        raise ConfigError(
            f"prompts/{name}.md uses variables {sorted(used)}; expected {sorted(JUDGE_PROMPT_VARIABLES[name])}.",
            "use exactly the expected variables; write literal braces as {{ and }}.",
        )
    return text.format(**values)


def parse_judge_json(raw: str) -> dict[str, Any]:
    """The first JSON object in a model reply (tolerates code fences and surrounding prose)."""
    text = raw.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    start = text.find("{")
    if start == -1:
        raise ValueError("no JSON object in the reply")
    value, _ = json.JSONDecoder().raw_decode(text[start:])
    if not isinstance(value, dict):
        raise ValueError("the reply is not a JSON object")
    return value


def judge_enabled(settings: Settings) -> bool:
    return settings.chat.provider == "openai"


class Judge:
    """Scores answers with a chat model. Every failure becomes MetricValue(None, reason), never an exception."""

    def __init__(self, settings: Settings, chat_model: BaseChatModel | None = None) -> None:
        self.settings = settings
        model = chat_model if chat_model is not None else get_chat_model(settings.chat)
        if model is None:
            raise ConfigError(
                "The LLM judge needs a chat model.", "set COURSEPILOT_CHAT_PROVIDER=openai and its base URL / key."
            )
        self.chat_model: BaseChatModel = model

    @property
    def model_name(self) -> str:
        return self.settings.chat.model

    def _ask(self, prompt: str) -> dict[str, Any]:
        raw = complete(self.chat_model, prompt, self.settings.chat)
        return parse_judge_json(raw)

    def faithfulness(self, question: str, answer: str, contexts: Sequence[str]) -> MetricValue:
        """Share of the answer's claims that the passages support."""
        if not answer.strip():
            return MetricValue(value=None, reason="empty answer")
        if not contexts:
            return MetricValue(value=None, reason="no passages to judge against")
        context = "\n\n".join(f"[{i}] {c.strip()}" for i, c in enumerate(contexts, start=1))[:_MAX_CONTEXT_CHARS]
        prompt = _render("judge_faithfulness", context=context, question=question, answer=answer)
        try:
            data = self._ask(prompt)
            claims = data.get("claims")
            if not isinstance(claims, list):
                raise ValueError("'claims' is missing or not a list")
            verdicts = [bool(c.get("supported")) for c in claims if isinstance(c, dict)]
        except ModelCallError as exc:
            return MetricValue(value=None, reason=f"judge unavailable: {exc.reason}")
        except ValueError as exc:
            return MetricValue(value=None, reason=f"judge reply not understood: {exc}")
        if not verdicts:
            return MetricValue(value=None, reason="the judge found no claims")
        unsupported = [str(c.get("claim", "")) for c in claims if isinstance(c, dict) and not c.get("supported")]
        reason = f"{sum(verdicts)}/{len(verdicts)} claims supported"
        if unsupported:
            reason += f"; unsupported: {'; '.join(unsupported)[:300]}"
        return MetricValue(value=sum(verdicts) / len(verdicts), reason=reason)

    def answer_relevance(self, question: str, answer: str) -> MetricValue:
        """1-5 judge score mapped to [0, 1]: (score - 1) / 4."""
        if not answer.strip():
            return MetricValue(value=None, reason="empty answer")
        prompt = _render("judge_relevance", question=question, answer=answer)
        try:
            data = self._ask(prompt)
            score = float(data["score"])
        except ModelCallError as exc:
            return MetricValue(value=None, reason=f"judge unavailable: {exc.reason}")
        except (ValueError, KeyError, TypeError) as exc:
            return MetricValue(value=None, reason=f"judge reply not understood: {exc}")
        if not 1 <= score <= 5:
            return MetricValue(value=None, reason=f"judge score {score:g} is outside 1-5")
        return MetricValue(value=(score - 1) / 4, reason=f"score {score:g}/5: {str(data.get('reason', ''))[:200]}")

    def score(self, answer: Answer) -> dict[str, MetricValue]:
        """Both metrics for one answer; n/a for refusals (they are scored by refusal metrics)."""
        if answer.refused:
            na = MetricValue(value=None, reason="refused; not judged")
            return {"faithfulness": na, "answer_relevance": na}
        contexts = [e.chunk.text for e in answer.evidence]
        return {
            "faithfulness": self.faithfulness(answer.question, answer.text, contexts),
            "answer_relevance": self.answer_relevance(answer.question, answer.text),
        }


def make_judge(settings: Settings) -> Judge | None:
    """A Judge when a chat model is configured, else None."""
    return Judge(settings) if judge_enabled(settings) else None
