"""CoursePilot: the one API that the chat UI, the CLI and the evals call."""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from assistant.answering.answer import Answerer, StreamEvent, refusal_text, timed, to_async_iter
from assistant.answering.followup import is_follow_up, retrieve_follow_up, rule_rewrite, topic_question
from assistant.core.errors import CoursePilotError
from assistant.core.settings import Settings
from assistant.core.text import normalize_unicode, tokenize
from assistant.core.types import Answer, ChatTurn, Course, CourseSuggestion, Evidence, Playlist
from assistant.index.library import LibraryIndex
from assistant.models.chat import ModelCallError, complete, get_chat_model
from assistant.planning.learners import LearnerStore
from assistant.planning.playlist import parse_budget, plan
from assistant.retrieval.finder import rank_courses
from assistant.retrieval.outline import continuations, outline
from assistant.retrieval.retriever import RetrievalResult, Retriever

log = logging.getLogger(__name__)


class FindResult(BaseModel):
    """Courses that teach what the learner asked about, best first."""

    query: str
    courses: list[CourseSuggestion]


class CoursePilot:
    """Ask questions, find courses and plan learning paths over one indexed course library."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._catalogue: tuple[int, dict[str, Course]] | None = None

    # Heavy parts open on first use, so constructing CoursePilot (and importing it) is cheap.
    @cached_property
    def index(self) -> LibraryIndex:
        return LibraryIndex(self.settings)

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.index)

    @cached_property
    def answerer(self) -> Answerer:
        store = None
        if self.settings.answer.stored_sentence_vectors:
            from assistant.answering.sentence_vectors import SpanSentences

            store = SpanSentences(self.index.sentence_store)
        return Answerer(
            self.settings,
            chat_model=get_chat_model(self.settings.chat),
            stream_model=get_chat_model(self.settings.chat, streaming=True),
            sentence_store=store,
        )

    def catalogue(self) -> dict[str, Course]:
        """The course catalogue, re-read only after an ingest rewrote it (refusals rank courses from it)."""
        version = self.index.ledger.courses_version
        cached = self._catalogue
        if cached is None or cached[0] != version:
            cached = (version, self.index.ledger.courses())
            self._catalogue = cached
        return cached[1]

    def warm_up(self) -> None:
        """Load the model and indexes now rather than on the first question."""
        self.index.ensure_ready()
        self.retriever.retrieve("warm up", k=1)

    # -- questions ----------------------------------------------------------------------------------------
    def _check_question(self, question: str) -> str:
        # Normalised like course text (NFKC, zero-width removed), so "ｐｉｖｏｔ" or "piv\u200bot" finds "pivot".
        text = normalize_unicode(question or "").strip()
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
        model = self.answerer.chat_model
        if model is not None:
            from assistant.answering.answer import format_history
            from assistant.answering.prompts import load_prompt

            prompt = load_prompt("rewrite").render(history=format_history(history), question=question)
            try:
                rewritten = complete(model, prompt, self.settings.chat).strip()
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
        course_ids, levels = ([course] if course else None), ([level] if level else None)
        if history and self.answerer.chat_model is None:  # no model to rewrite it: let the evidence decide
            stop = timed(timings, "retrieve")
            # The follow-up chooser weighs its candidates with the two-threshold support (it was tuned on it);
            # the answer's own refusal below is still the calibrated decision.
            choice = retrieve_follow_up(
                self.retriever,
                question,
                history,
                course_ids,
                levels,
                lambda r: self._supported(r, question=False),
                answered=self._supported,  # a question kept alone is answered by the calibrated decision below
            )
            stop()
            standalone, result = choice.query, choice.result
            if choice.strategy != "alone":
                # The calibrated refusal was calibrated on whole questions; a follow-up read inside the
                # conversation's topic ("they get defensive?") is judged by the two thresholds instead.
                result = result.model_copy(update={"supported": None})
        else:
            stop = timed(timings, "rewrite")
            standalone = self.standalone_question(question, history)
            stop()
            stop = timed(timings, "retrieve")
            result = self.retriever.retrieve(standalone, course_ids=course_ids, levels=levels)
            stop()
        timings.update({f"retrieve.{k}": round(v, 2) for k, v in result.timings_ms.items()})
        return standalone, result, timings

    def _supported(self, result: RetrievalResult, question: bool = True) -> bool:
        cfg = self.settings.retrieval
        # The calibrated decision (retrieval.refusal = learned) was calibrated on questions; a find-a-course topic
        # ("pivot tables") is a bare phrase, so it keeps the two thresholds.
        if question and result.supported is not None:
            return bool(result.evidence) and result.supported
        return bool(result.evidence) and (
            result.max_dense >= cfg.refusal_min_dense and result.coverage >= cfg.refusal_min_coverage
        )

    def _refusal(
        self,
        question: str,
        standalone: str,
        result: RetrievalResult,
        timings: dict[str, float],
        reason: str = "retrieval",
    ) -> Answer:
        suggestions = rank_courses(standalone, result.evidence, self.catalogue(), limit=3)
        # What decided, in numbers (never the question's text): a refusal a learner reports can be read off the log.
        log.info(
            "refused (%s): decision=%s answer_probability=%s max_dense=%.3f coverage=%.2f generation=%d evidence=%s",
            reason,
            "thresholds" if result.supported is None else "calibrated",
            "-" if result.answer_probability is None else f"{result.answer_probability:.3f}",
            result.max_dense,
            result.coverage,
            self.index.lexical_generation,
            ",".join(f"{e.chunk.id}:{e.dense_score or 0:.2f}" for e in result.evidence[:3]) or "-",
        )
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
        # The answer is chosen for the question as it was searched (its acronyms spelled out).
        searched = result.searched or standalone
        query_idf = self.index.lexical().idf(tokenize(searched))
        # A follow-up's sentences are matched against the conversation's topic too.
        topic = topic_question(history) if is_follow_up(question) else None
        # The subsections a short introduction announces: the model reads them too, the quote may list them.
        subsections = outline(self.index, evidence)
        # The rest of a list that a passage's end cut (a page break): the model reads it, the quote goes on.
        continued = continuations(self.index, evidence, len(evidence) + len(subsections) + 1)
        answerer = self.answerer
        if answerer.chat_model is not None:
            evidence = [*evidence, *subsections, *continued]
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
                        try:
                            outcome["value"] = answerer.stream_generate(
                                standalone,
                                evidence,
                                history,
                                lambda t: events.put(StreamEvent(type="token", text=t)),
                                lambda: events.put(StreamEvent(type="reset")),
                            )
                        except BaseException as exc:  # re-raised in the consumer thread
                            outcome["error"] = exc
                        finally:
                            events.put(None)

                    threading.Thread(target=work, daemon=True).start()
                    while (event := events.get()) is not None:
                        yield event
                    if "error" in outcome:
                        raise outcome["error"]
                    text, citations, model_refused = outcome["value"]
                else:
                    text, citations, model_refused = answerer.generate(standalone, evidence, history)
                stop()
                if model_refused:
                    yield self._final(self._refusal(question, standalone, result, timings, "the model"), total, timings)
                    return
                answer = Answer(text=text, citations=citations, mode="generative", **base)
                yield self._final(answer, total, timings)
                return
            except ModelCallError as exc:
                stop()
                notice = f"The AI model is unavailable ({exc.reason}), so this answer is quoted from the course text."
                if _emit_tokens:
                    yield StreamEvent(type="reset")
                    yield StreamEvent(type="notice", text=notice)
                text, citations = answerer.extractive(
                    searched,
                    result.evidence,
                    query_idf,
                    read_next,
                    topic,
                    subsections,
                    result.vector_for(searched),
                    continued,
                )
                answer = Answer(text=text, citations=citations, fallback_reason=notice, **base)
                if _emit_tokens:
                    yield StreamEvent(type="token", text=text)
                yield self._final(answer, total, timings)
                return
        stop = timed(timings, "extract")
        text, citations = answerer.extractive(
            searched, evidence, query_idf, read_next, topic, subsections, result.vector_for(searched), continued
        )
        stop()
        if not citations:
            refusal = self._refusal(question, standalone, result, timings, "no sentence on topic")
            yield self._final(refusal, total, timings)
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
        # The stream's thread opens its own ledger connection; close it with the thread rather than leave it to GC.
        events = to_async_iter(self.stream(question, history, course, level), on_thread_exit=self.index.ledger.close)
        async for event in events:
            yield event

    # -- find a course ------------------------------------------------------------------------------------
    def find(self, query: str, limit: int = 5) -> FindResult:
        """Courses that teach a skill, with the sections and pages where it is taught."""
        query = self._check_question(query)
        self.index.ensure_ready()
        topic = _strip_find_phrasing(query)
        result = self.retriever.retrieve(topic, k=30)
        courses = (
            rank_courses(topic, result.evidence, self.catalogue(), limit=limit)
            if self._supported(result, question=False)
            else []
        )
        return FindResult(query=query, courses=courses)

    # -- learning paths -----------------------------------------------------------------------------------
    @cached_property
    def learners(self) -> LearnerStore:
        return LearnerStore(self.settings.database.url)

    def playlist(
        self,
        goal: str,
        learner_id: str | None = None,
        minutes: int | None = None,
        level: str | None = None,
        completed: Sequence[str] | None = None,
    ) -> Playlist:
        """An ordered learning path for a goal that respects prerequisites, progress and the time budget."""
        goal = self._check_question(goal)
        self.index.ensure_ready()
        topic, stated_minutes = parse_budget(goal)
        budget = minutes if minutes is not None else stated_minutes
        if budget is not None and budget <= 0:
            raise CoursePilotError(f"The time budget must be positive, not {budget}.", "pass --minutes 120, say.")
        done = set(completed or [])
        if learner_id:
            done |= self.learners.completed(learner_id)
        search = _strip_goal_phrasing(topic)
        result = self.retriever.retrieve(search, k=40)
        catalogue = self.catalogue()
        if not self._supported(result):
            suggestions = rank_courses(search, result.evidence, catalogue, limit=3)
            names = "; ".join(s.title for s in suggestions) or "nothing close yet"
            return Playlist(
                goal=goal,
                learner_id=learner_id,
                budget_minutes=budget,
                covered=False,
                suggestions=suggestions,
                message=f"The library does not teach this yet, so I won't invent a path. Closest material: {names}.",
                created_at=datetime.now(UTC),
            )
        firsts = self.index.ledger.first_chunk_ids(list(catalogue))
        first_chunks = {
            key: Evidence(key="S0", chunk=chunk, score=0.0)
            for key, chunk_id in firsts.items()
            if (chunk := self.index.ledger.get_chunks([chunk_id]).get(chunk_id)) is not None
        }
        path = plan(search, result.evidence, catalogue, done, budget, level, first_chunks)
        path.goal = goal
        path.learner_id = learner_id
        path.created_at = datetime.now(UTC)
        if self.answerer.chat_model is not None and path.items:
            path.intro = self._playlist_intro(path)
        return path

    def _playlist_intro(self, path: Playlist) -> str | None:
        """A friendlier introduction written by the model; the items and their order stay the planner's."""
        from assistant.answering.prompts import load_prompt

        model = self.answerer.chat_model
        if model is None:
            return None
        steps = "\n".join(f"{i}. {item.title} ({item.minutes} min): {item.why}" for i, item in enumerate(path.items, 1))
        prompt = load_prompt("playlist_intro").render(goal=path.goal, steps=steps)
        try:
            text = complete(model, prompt, self.settings.chat)
        except ModelCallError:
            return None
        return text.strip() or None


_GOAL_PHRASES = re.compile(
    r"^(i want to|i'd like to|i would like to|help me|build me|make me|give me|plan|create)\b.*?"
    r"\b(get good at|get better at|become|learn|learning|master|improve|path to|path for|path on|plan for|on|at)\b\s*",
    re.IGNORECASE,
)


def _strip_goal_phrasing(goal: str) -> str:
    """'I want to get good at advanced Excel' -> 'advanced Excel'."""
    topic = _GOAL_PHRASES.sub("", goal).strip(" ?.!")
    return topic or goal


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
