"""Evidence -> Answer. Extractive without a model; generative with citation keys when one is configured."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from assistant.answering.citations import CitationStream, cite
from assistant.answering.extractive import extract_answer
from assistant.answering.prompts import load_prompt
from assistant.answering.sentence_vectors import SentenceStore, SentenceVectors
from assistant.core.settings import Settings
from assistant.core.types import Answer, ChatTurn, Citation, CourseSuggestion, Evidence, Location
from assistant.models.chat import ModelCallError, complete, stream_with_retries
from assistant.models.embeddings import get_embedder

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import BaseMessage

# The one phrase that means "not in the library", shared by the prompt, the parser and the UI.
CANNOT_ANSWER = "I cannot answer this from the course library."
NO_ANSWER_TEXT = "I couldn't find this in the course library, so I won't guess."


class StreamEvent(BaseModel):
    """One event of a streamed answer, in order: tokens, then one 'answer' event carrying the final Answer.

    'reset': take back the text streamed so far (a model stream dropped midway and is retried, or the model failed
    and an extractive answer follows). 'notice': a short message about this answer for the learner (why it is
    quoted from the course text), shown apart from the answer text.
    """

    type: Literal["token", "notice", "reset", "answer"]
    text: str = ""
    answer: Answer | None = None


def format_evidence(evidence: Sequence[Evidence]) -> str:
    """Evidence blocks with opaque keys; quotes are escaped so passage text cannot close the tag."""
    blocks = []
    for item in evidence:
        body = item.chunk.text.replace("</evidence>", "</ evidence>")
        source = item.chunk.location.label().replace('"', "'")
        blocks.append(f'<evidence key="{item.key}" source="{source}">\n{body}\n</evidence>')
    return "\n\n".join(blocks)


def format_history(history: Sequence[ChatTurn]) -> str:
    if not history:
        return "(none)"
    return "\n".join(f"{turn.role}: {turn.content}" for turn in history[-6:])


def refusal_text(suggestions: Sequence[CourseSuggestion]) -> str:
    if not suggestions:
        return NO_ANSWER_TEXT + " The library has nothing close to this topic yet."
    closest = "; ".join(f"{s.title} ({s.sections[0].label()})" if s.sections else s.title for s in suggestions[:3])
    return f"{NO_ANSWER_TEXT} The closest material is: {closest}."


class Answerer:
    """Composes answers from evidence; uses the chat model when one is configured."""

    def __init__(
        self,
        settings: Settings,
        chat_model: BaseChatModel | None = None,
        stream_model: BaseChatModel | None = None,
        sentence_store: SentenceStore | None = None,
    ) -> None:
        self.settings = settings
        self.chat_model = chat_model
        self.stream_model = stream_model
        # Sentence vectors kept at ingest (the index's sentence representation), when the index has them.
        self.sentence_store = sentence_store

    @cached_property
    def sentence_vectors(self) -> SentenceVectors:
        """Sentence vectors for the extractive path: stored ones where the index keeps them, else embedded with
        the embedder the index already uses."""
        return SentenceVectors(
            get_embedder(self.settings.embedding),
            candidates=self.settings.answer.sentence_candidates,
            store=self.sentence_store,
        )

    def build_messages(
        self, question: str, evidence: Sequence[Evidence], history: Sequence[ChatTurn]
    ) -> list[BaseMessage]:
        """System rules, then evidence as delimited data, then the question."""
        from langchain_core.messages import HumanMessage, SystemMessage

        user = load_prompt("answer").render(
            evidence=format_evidence(evidence), history=format_history(history), question=question.strip()
        )
        return [SystemMessage(content=load_prompt("system").text), HumanMessage(content=user)]

    def extractive(
        self,
        question: str,
        evidence: Sequence[Evidence],
        query_idf: dict[str, float],
        read_next: Location | None,
        topic: str | None = None,
        outline: Sequence[Evidence] = (),
        query_vector: np.ndarray | None = None,
        continued: Sequence[Evidence] = (),
    ) -> tuple[str, list[Citation]]:
        """The quoted answer; `query_vector`: the question's embedding when retrieval already made it; `outline` and
        `continued`: the passages around the evidence (retrieval.outline)."""
        vectors = self.sentence_vectors.for_query(question, query_vector)
        text, citations = extract_answer(
            question, evidence, query_idf, vectors, topic=topic, outline=outline, continued=continued
        )
        if read_next is not None:
            text += f"\n\nRead next: {read_next.label()}"
        return text, citations

    def generate(
        self, question: str, evidence: Sequence[Evidence], history: Sequence[ChatTurn]
    ) -> tuple[str, list[Citation], bool]:
        """Call the model (with retries); returns text with numbered citations, citations, and model-refused."""
        if self.chat_model is None:
            raise ModelCallError("no chat model is configured", 0)
        raw = complete(self.chat_model, self.build_messages(question, evidence, history), self.settings.chat)
        return self._parse(raw, evidence)

    def stream_generate(
        self,
        question: str,
        evidence: Sequence[Evidence],
        history: Sequence[ChatTurn],
        on_token: Callable[[str], None],
        on_reset: Callable[[], None] | None = None,
    ) -> tuple[str, list[Citation], bool]:
        """generate(), streamed: `on_token` gets answer text already numbered as the saved answer will be.

        When a stream drops midway and is retried, `on_reset` is called first: the text given so far is void.
        The concatenated tokens equal the returned text (unless the model refused: then the caller refuses).
        """
        model = self.stream_model or self.chat_model
        if model is None:
            raise ModelCallError("no chat model is configured", 0)
        messages = self.build_messages(question, evidence, history)
        numbering = CitationStream(evidence)

        def token(text: str) -> None:
            shown = numbering.feed(text)
            if shown:
                on_token(shown)

        def reset() -> None:
            nonlocal numbering
            numbering = CitationStream(evidence)
            if on_reset is not None:
                on_reset()

        raw = stream_with_retries(lambda: model.stream(messages), self.settings.chat, token, reset)
        tail = numbering.finish()
        if tail:
            on_token(tail)
        return self._parse(raw, evidence)

    def _parse(self, raw: str, evidence: Sequence[Evidence]) -> tuple[str, list[Citation], bool]:
        if CANNOT_ANSWER.lower().rstrip(".") in raw.lower():
            return raw.strip(), [], True
        text, citations = cite(raw, evidence)
        return text, citations, False


def timed(timings: dict[str, float], name: str) -> Callable[[], None]:
    """Start a timer; calling the result records the elapsed milliseconds under `name`."""
    start = time.perf_counter()

    def stop() -> None:
        timings[name] = round((time.perf_counter() - start) * 1000, 2)

    return stop


async def to_async_iter(
    items: Iterator[StreamEvent], on_thread_exit: Callable[[], None] | None = None
) -> AsyncIterator[StreamEvent]:
    """Drive a blocking event iterator from asyncio: one worker thread per stream, events handed over a queue.

    (Calling next() through the shared executor once per token made 50 concurrent streams queue behind each
    other's tokens.) `on_thread_exit` runs last on that thread, to release what it opened for itself.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def pump() -> None:
        try:
            for item in items:
                loop.call_soon_threadsafe(queue.put_nowait, ("item", item))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
        else:
            loop.call_soon_threadsafe(queue.put_nowait, ("done", None))
        finally:
            if on_thread_exit is not None:
                on_thread_exit()

    threading.Thread(target=pump, name="coursepilot-stream", daemon=True).start()
    while True:
        kind, value = await queue.get()
        if kind == "item":
            yield value
        elif kind == "error":
            raise value
        else:
            return


__all__ = ["CANNOT_ANSWER", "Answerer", "ModelCallError", "StreamEvent", "refusal_text", "to_async_iter"]
