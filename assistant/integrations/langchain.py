"""CoursePilot as LangChain building blocks: a `BaseRetriever` and a runnable that answers.

    from assistant.integrations.langchain import CoursePilotRetriever, answer_runnable

    retriever = CoursePilotRetriever.from_settings(Settings())       # Runnable[str, list[Document]]
    docs = retriever.invoke("How do I give feedback?")               # also batch, ainvoke, astream, `|`
    docs[0].metadata["citation"]  # 'Course › Module › Section (p. 3)'

    answer = answer_runnable(retriever.pilot)                       # Runnable[str | AskInput, Answer]
    answer.invoke("How do I give feedback?").citations

Both run on the same CoursePilot as the CLI and the chat UI: the same hybrid retrieval and filters, the same
refusal, the same cited `Answer` model. Documents carry the location the answer would cite (course, module,
section trail, page, citation label) and the retrieval scores.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import BaseModel, ConfigDict, Field

from assistant.core.settings import Settings
from assistant.core.types import Answer, ChatTurn, Evidence, Level
from assistant.pilot import CoursePilot

__all__ = ["AskInput", "CoursePilotRetriever", "answer_runnable", "evidence_document"]


def evidence_document(evidence: Evidence) -> Document:
    """One retrieved passage as a LangChain Document, with where it lives and how it scored."""
    chunk = evidence.chunk
    location = chunk.location
    metadata: dict[str, Any] = {
        "chunk_id": chunk.id,
        "course_id": location.course_id,
        "course_title": location.course_title,
        "module": location.module,
        "module_title": location.module_title,
        "section": list(location.section),
        "section_title": location.section_title,
        "page": location.page,
        "citation": location.label(),
        "level": chunk.level,
        "score": evidence.score,
        "dense_score": evidence.dense_score,
        "lexical_score": evidence.lexical_score,
    }
    return Document(id=chunk.id, page_content=chunk.text, metadata=metadata)


class CoursePilotRetriever(BaseRetriever):
    """The course library's hybrid retriever (dense + BM25, fused, near-duplicates removed) as a BaseRetriever.

    `k`, `course` and `level` narrow every query as `coursepilot ask --course/--level` does.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pilot: CoursePilot
    k: int | None = Field(default=None, ge=1, le=50, description="Passages per query (default: settings).")
    course: str | None = Field(default=None, description="Only this course id.")
    level: Level | None = Field(default=None, description="Only passages of this level.")

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **fields: Any) -> CoursePilotRetriever:
        return cls(pilot=CoursePilot(settings), **fields)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        self.pilot.index.ensure_ready()
        result = self.pilot.retriever.retrieve(
            query,
            k=self.k,
            course_ids=[self.course] if self.course else None,
            levels=[self.level] if self.level else None,
        )
        return [evidence_document(e) for e in result.evidence]


class AskInput(BaseModel):
    """What the answer runnable takes besides a plain question string."""

    question: str
    history: list[ChatTurn] = Field(default_factory=list)
    course: str | None = None
    level: Level | None = None


def _ask_input(value: str | AskInput | dict[str, Any]) -> AskInput:
    if isinstance(value, AskInput):
        return value
    if isinstance(value, str):
        return AskInput(question=value)
    return AskInput.model_validate(value)


def answer_runnable(pilot: CoursePilot) -> Runnable[str | AskInput | dict[str, Any], Answer]:
    """A runnable that answers like `coursepilot ask`: cited, or a plain refusal with the closest courses."""

    def ask(value: str | AskInput | dict[str, Any]) -> Answer:
        request = _ask_input(value)
        return pilot.ask(request.question, history=request.history, course=request.course, level=request.level)

    async def aask(value: str | AskInput | dict[str, Any]) -> Answer:
        return await asyncio.to_thread(ask, value)

    return RunnableLambda(ask, afunc=aask, name="coursepilot_answer")
