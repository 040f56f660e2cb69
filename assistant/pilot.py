"""CoursePilot: the one API that the chat UI, the CLI and the evals call."""

from __future__ import annotations

import asyncio
import queue
import re
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from assistant.answer import Answerer, StreamEvent, refusal_text, timed, to_async_iter
from assistant.errors import CoursePilotError
from assistant.finder import rank_courses
from assistant.index import LibraryIndex
from assistant.lexical import tokenize
from assistant.providers import ModelCallError, get_chat_model
from assistant.retriever import RetrievalResult, Retriever
from assistant.settings import Settings
from assistant.types import Answer, ChatTurn, Course, CourseSuggestion

_FOLLOW_UP = re.compile(
    r"^(and|also|but|so|then|what about|how about|why)\b|\b(it|its|this|that|these|those|they|them|there|one)\b",
    re.IGNORECASE,
)


class FindResult(BaseModel):
    """Courses that teach what the learner asked about, best first."""

    query: str
    courses: list[CourseSuggestion]


def rule_rewrite(question: str, history: Sequence[ChatTurn]) -> str:
    """Without a model: a short or pronoun-led follow-up borrows the previous question's words."""
    previous = next((t.content for t in reversed(history) if t.role == "user"), None)
    if not previous:
        return question
    content_words = tokenize(question)
    if _FOLLOW_UP.search(question) or len(content_words) <= 3:
        return f"{previous.strip().rstrip('?')}: {question.strip()}"
    return question


class CoursePilot:
    """Ask questions, find courses and plan learning paths over one indexed course library."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()

    # Heavy parts open on first use, so constructing CoursePilot (and importing it) is cheap.
    @cached_property
    def index(self) -> LibraryIndex:
        return LibraryIndex(self.settings)

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.index)

    @cached_property
    def answerer(self) -> Answerer:
        return Answerer(
            self.settings,
            chat_model=get_chat_model(self.settings.chat),
            stream_model=get_chat_model(self.settings.chat, streaming=True),
        )

    def catalogue(self) -> dict[str, Course]:
        return self.index.ledger.courses()

    def warm_up(self) -> None:
        """Load the model and indexes now rather than on the first question."""
        self.index.ensure_ready()
        self.retriever.retrieve("warm up", k=1)

    # -- questions ----------------------------------------------------------------------------------------
    def _check_question(self, question: str) -> str:
        text = (question or "").strip()
        if not text:
            raise CoursePilotError("The question is empty.", "type a question about the course library.")
        limit = self.settings.limits.max_question_chars
        if len(text) > limit:
            raise CoursePilotError(
                f"The question is {len(text)} characters long; the limit is {limit}.",
                "ask a shorter question, or set COURSEPILOT_LIMITS_MAX_QUESTION_CHARS.",
            )
        return text

    def standalone_question(self, question: str, history: Sequence[ChatTurn]) -> str:
        """Resolve a follow-up against the conversation (model rewrite when configured, else a rule)."""
        if not history:
            return question
        if self.answerer.chat_model is not None:
            from langchain_core.messages import HumanMessage

            from assistant.answer import format_history
            from assistant.prompts import load_prompt
            from assistant.providers import call_with_retries

            prompt = load_prompt("rewrite").render(history=format_history(history), question=question)
            try:
                rewritten = call_with_retries(
                    lambda: self.answerer.chat_model.invoke([HumanMessage(content=prompt)]),
                    self.settings.chat,
                ).strip()
                if rewritten:
                    return rewritten.splitlines()[0][: self.settings.limits.max_question_chars]
            except ModelCallError:
                pass
        return rule_rewrite(question, history)

    def _retrieve(
        self, question: str, history: Sequence[ChatTurn], course: str | None, level: str | None
    ) -> tuple[str, RetrievalResult, dict[str, float]]:
        self.index.ensure_ready()
        timings: dict[str, float] = {}
        stop = timed(timings, "rewrite")
        standalone = self.standalone_question(question, history)
        stop()
        stop = timed(timings, "retrieve")
        result = self.retriever.retrieve(
            standalone, course_ids=[course] if course else None, levels=[level] if level else None
        )
        stop()
        timings.update({f"retrieve.{k}": round(v, 2) for k, v in result.timings_ms.items()})
        return standalone, result, timings

    def _supported(self, result: RetrievalResult) -> bool:
        cfg = self.settings.retrieval
        return bool(result.evidence) and (
            result.max_dense >= cfg.refusal_min_dense and result.coverage >= cfg.refusal_min_coverage
        )

    def _refusal(self, question: str, standalone: str, result: RetrievalResult, timings: dict[str, float]) -> Answer:
        suggestions = rank_courses(standalone, result.evidence, self.catalogue(), limit=3)
        return Answer(
            question=question,
            standalone_question=standalone,
            text=refusal_text(suggestions),
            refused=True,
            suggestions=suggestions,
            evidence=result.evidence,
            top_score=round(result.max_dense, 4),
            timings_ms=timings,
        )

    def ask(
        self,
        question: str,
        history: Sequence[ChatTurn] | None = None,
        course: str | None = None,
        level: str | None = None,
    ) -> Answer:
        """Answer a question with citations, or refuse plainly with the closest courses."""
        answer: Answer | None = None
        for event in self.stream(question, history, course, level, _emit_tokens=False):
            if event.answer is not None:
                answer = event.answer
        assert answer is not None
        return answer

    async def aask(
        self,
        question: str,
        history: Sequence[ChatTurn] | None = None,
        course: str | None = None,
        level: str | None = None,
    ) -> Answer:
        """ask() without blocking the event loop."""
        return await asyncio.to_thread(self.ask, question, history, course, level)

    def stream(
        self,
        question: str,
        history: Sequence[ChatTurn] | None = None,
        course: str | None = None,
        level: str | None = None,
        _emit_tokens: bool = True,
    ) -> Iterator[StreamEvent]:
        """Yield token events as the answer is written, then one event carrying the final Answer."""
        question = self._check_question(question)
        history = list(history or [])
        total = timed({}, "total")
        standalone, result, timings = self._retrieve(question, history, course, level)
        if not self._supported(result):
            answer = self._refusal(question, standalone, result, timings)
            if _emit_tokens:
                yield StreamEvent(type="token", text=answer.text)
            yield self._final(answer, total, timings)
            return
        evidence = result.evidence
        read_next = evidence[0].chunk.location
        query_idf = self.index.lexical().idf(tokenize(standalone))
        answerer = self.answerer
        base: dict[str, Any] = {
            "question": question,
            "standalone_question": standalone,
            "evidence": evidence,
            "top_score": round(result.max_dense, 4),
            "read_next": read_next,
            "timings_ms": timings,
        }
        if answerer.chat_model is not None:
            stop = timed(timings, "generate")
            try:
                if _emit_tokens:
                    events: queue.Queue[StreamEvent | None] = queue.Queue()
                    outcome: dict[str, Any] = {}

                    def work() -> None:
                        renumber = _StreamRenumberer()
                        try:
                            outcome["value"] = answerer.stream_generate(
                                standalone, evidence, history, lambda t: events.put(renumber.feed(t))
                            )
                        except BaseException as exc:  # re-raised in the consumer thread
                            outcome["error"] = exc
                        finally:
                            events.put(None)

                    threading.Thread(target=work, daemon=True).start()
                    while (event := events.get()) is not None:
                        if event.text:
                            yield event
                    if "error" in outcome:
                        raise outcome["error"]
                    text, citations, model_refused = outcome["value"]
                else:
                    text, citations, model_refused = answerer.generate(standalone, evidence, history)
                stop()
                if model_refused:
                    yield self._final(self._refusal(question, standalone, result, timings), total, timings)
                    return
                answer = Answer(text=text, citations=citations, mode="generative", **base)
                yield self._final(answer, total, timings)
                return
            except ModelCallError as exc:
                stop()
                notice = f"The AI model is unavailable ({exc.reason}), so this answer is quoted from the course text."
                if _emit_tokens:
                    yield StreamEvent(type="reset", text=notice)
                text, citations = answerer.extractive(standalone, evidence, query_idf, read_next)
                answer = Answer(text=text, citations=citations, fallback_reason=notice, **base)
                if _emit_tokens:
                    yield StreamEvent(type="token", text=text)
                yield self._final(answer, total, timings)
                return
        stop = timed(timings, "extract")
        text, citations = answerer.extractive(standalone, evidence, query_idf, read_next)
        stop()
        if not citations:
            yield self._final(self._refusal(question, standalone, result, timings), total, timings)
            return
        answer = Answer(text=text, citations=citations, **base)
        if _emit_tokens:
            for piece in re.findall(r"\S+\s*", text):
                yield StreamEvent(type="token", text=piece)
        yield self._final(answer, total, timings)

    @staticmethod
    def _final(answer: Answer, total: Any, timings: dict[str, float]) -> StreamEvent:
        total()
        answer.timings_ms = {**timings, **answer.timings_ms}
        return StreamEvent(type="answer", answer=answer)

    async def astream(
        self,
        question: str,
        history: Sequence[ChatTurn] | None = None,
        course: str | None = None,
        level: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """stream() for asyncio callers (the chat UI)."""
        async for event in to_async_iter(self.stream(question, history, course, level)):
            yield event

    # -- find a course ------------------------------------------------------------------------------------
    def find(self, query: str, limit: int = 5) -> FindResult:
        """Courses that teach a skill, with the sections and pages where it is taught."""
        query = self._check_question(query)
        self.index.ensure_ready()
        topic = _strip_find_phrasing(query)
        result = self.retriever.retrieve(topic, k=30)
        courses = rank_courses(topic, result.evidence, self.catalogue(), limit=limit) if self._supported(result) else []
        return FindResult(query=query, courses=courses)


_FIND_PHRASES = re.compile(
    r"^(which|what|is there a|are there any|do we have a|where can i learn|where is|where do i learn|"
    r"i want to learn|find)\b.*?\b(course|courses|module|modules|training|teaches|taught|covers|about|learn)\b\s*",
    re.IGNORECASE,
)


def _strip_find_phrasing(query: str) -> str:
    """'Which course teaches pivot tables?' -> 'pivot tables' (the topic carries the signal)."""
    topic = _FIND_PHRASES.sub("", query).strip(" ?.!")
    topic = re.sub(r"^(teaches|teach|covers|cover|about|on|for)\s+", "", topic, flags=re.IGNORECASE)
    return topic or query


class _StreamRenumberer:
    """Turns streamed [S3] keys into the [1], [2] numbering of the final answer as tokens arrive."""

    def __init__(self) -> None:
        self.buffer = ""
        self.order: dict[str, int] = {}

    def feed(self, token: str) -> StreamEvent:
        self.buffer += token
        cut = self.buffer.rfind("[")
        if cut != -1 and "]" not in self.buffer[cut:]:
            ready, self.buffer = self.buffer[:cut], self.buffer[cut:]
        else:
            ready, self.buffer = self.buffer, ""

        def number(match: re.Match[str]) -> str:
            key = match.group(1)
            self.order.setdefault(key, len(self.order) + 1)
            return f"[{self.order[key]}]"

        return StreamEvent(type="token", text=re.sub(r"\[(S\d+)\]", number, ready))
