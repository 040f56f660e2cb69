"""CoursePilot through LangChain's own interfaces: the BaseRetriever and the answer runnable on the sample library."""

from __future__ import annotations

import asyncio

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda

from assistant.core.types import Answer
from assistant.integrations.langchain import AskInput, CoursePilotRetriever, answer_runnable
from assistant.pilot import CoursePilot

FEEDBACK = "What does the SBI feedback model stand for?"
PHISHING = "How should I handle a phishing email?"
OFF_LIBRARY = "What is the statutory notice period for resigning in Germany?"


def test_retriever_returns_documents_with_their_location(pilot: CoursePilot) -> None:
    retriever = CoursePilotRetriever(pilot=pilot, k=4)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke(FEEDBACK)
    expected = pilot.retriever.retrieve(FEEDBACK, k=4).evidence
    assert [d.id for d in docs] == [e.chunk.id for e in expected] and len(docs) == 4
    for doc, evidence in zip(docs, expected, strict=True):
        location = evidence.chunk.location
        assert isinstance(doc, Document) and doc.page_content == evidence.chunk.text
        assert doc.metadata["course_id"] == location.course_id
        assert doc.metadata["module"] == location.module
        assert doc.metadata["section"] == list(location.section)
        assert doc.metadata["page"] == location.page
        assert doc.metadata["citation"] == location.label()
        assert doc.metadata["score"] == evidence.score


def test_retriever_batch_and_ainvoke_agree_with_invoke(pilot: CoursePilot) -> None:
    retriever = CoursePilotRetriever(pilot=pilot, k=3)
    one = [retriever.invoke(q) for q in (FEEDBACK, PHISHING)]
    batched = retriever.batch([FEEDBACK, PHISHING])
    awaited = asyncio.run(retriever.ainvoke(PHISHING))
    assert [[d.id for d in docs] for docs in batched] == [[d.id for d in docs] for docs in one]
    assert [d.id for d in awaited] == [d.id for d in one[1]]
    assert {d.metadata["course_id"] for d in one[0]} != {d.metadata["course_id"] for d in one[1]}


def test_retriever_filters_and_composes_into_a_chain(pilot: CoursePilot) -> None:
    course = CoursePilotRetriever(pilot=pilot).invoke(PHISHING)[0].metadata["course_id"]
    elsewhere = CoursePilotRetriever(pilot=pilot, course=f"{course}-nope").invoke(PHISHING)
    assert elsewhere == []
    chain = CoursePilotRetriever(pilot=pilot, course=course) | RunnableLambda(
        lambda docs: [d.metadata["citation"] for d in docs]
    )
    labels = chain.invoke(PHISHING)
    assert labels and all(label.startswith(labels[0].split(" › ")[0]) for label in labels)


def test_answer_runnable_answers_with_the_answer_model(pilot: CoursePilot) -> None:
    runnable = answer_runnable(pilot)
    assert isinstance(runnable, Runnable)
    answer = runnable.invoke(FEEDBACK)
    direct = pilot.ask(FEEDBACK)
    assert isinstance(answer, Answer) and not answer.refused and answer.citations
    assert (answer.text, answer.citations) == (direct.text, direct.citations)
    batched = runnable.batch([FEEDBACK, AskInput(question=OFF_LIBRARY), {"question": PHISHING}])
    assert [a.question for a in batched] == [FEEDBACK, OFF_LIBRARY, PHISHING]
    assert [a.refused for a in batched] == [False, True, False]
    assert batched[0].text == answer.text
    awaited = asyncio.run(runnable.ainvoke({"question": OFF_LIBRARY}))
    assert awaited.refused and awaited.suggestions is not None and not awaited.citations
