"""A train-only check of extractive answers on a library question set (openstax-intro-business format).

For each question the library is searched once (as `CoursePilot.ask` does, no model), then the extractive answer
is made from that evidence. Measured, per split:

* answer citation precision: the share of the answer's citations that are gold hits (the benchmark's rule), micro
  over citations; and the same limited to questions whose gold section is among the evidence ("choice
  precision": the extractive step's own share, retrieval misses left out);
* answered: the share of supported questions that get a non-empty extractive answer (every question of the set is
  answerable, so an empty one is a false refusal of the extractive step);
* with the gold course left out (`excluded`): the share that would still be answered, i.e. retrieval's refusal
  let it through and the extractive step quoted something (lower is better: those quotes are off the topic);
* term coverage: the IDF-weighted share of the question's content words that the answer holds (a proxy for
  covering every part of "Explain X, Y and Z"; not a key-point score);
* follow-ups (`--follow-ups`): a two-part question whose second part leans on the first ("What is global
  vision, and why is it important?") is asked as a conversation, and the second turn's citations are judged;
* the extractive step's latency (p50 / p95, milliseconds), sentence cache cold at the start.

`--sentence-vectors` picks where the sentence vectors come from: `stored` (the index's late-chunked ones where it
has them, the rest embedded: the default setting), `embedded` (every candidate embedded at query time), or `both`
(one report per mode, same index, same run); without it, the settings decide.

Run: ``python -m evals.answer_check ../shared/benchmarks/openstax-intro-business --work-dir .bench --split train``.
It reads the benchmark's questions and gold only, never the golden set.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from assistant.core.text import chat_filler_terms, tokenize
from assistant.core.types import Evidence
from evals.openstax import LibraryQuestion, is_hit, library_settings, load_questions, open_library_index

__all__ = ["AnswerCheck", "QuestionOutcome", "check_answers", "check_follow_ups", "follow_up_pairs", "summarise"]


class QuestionOutcome(BaseModel):
    """One question's extractive answer, judged against its gold section."""

    id: str
    supported: bool
    gold_in_evidence: bool
    citations: int = 0
    hits: int = 0
    coverage: float = 0.0
    extract_ms: float = 0.0
    text: str = ""


class AnswerCheck(BaseModel):
    """The figures of one condition (gold course present or left out)."""

    questions: int
    citation_precision: float | None
    choice_precision: float | None
    answered: float
    term_coverage: float | None
    extract_p50_ms: float | None
    extract_p95_ms: float | None


Extract = Callable[[str, Sequence[Evidence], dict[str, float]], tuple[str, list]]


def _coverage(question: str, text: str, idf: dict[str, float]) -> float:
    filler = chat_filler_terms()
    weights = {t: w for t, w in idf.items() if t not in filler}
    total = sum(weights.values())
    present = set(tokenize(text))
    return sum(w for t, w in weights.items() if t in present) / total if total > 0 else 0.0


def check_answers(
    pilot: object, questions: Sequence[LibraryQuestion], exclude_gold_course: bool = False
) -> list[QuestionOutcome]:
    """Retrieve and answer every question extractively (as CoursePilot.ask does without a model)."""
    from assistant.pilot import CoursePilot
    from assistant.retrieval.outline import continuations, outline

    assert isinstance(pilot, CoursePilot)
    pilot.index.ensure_ready()
    courses = sorted(pilot.index.ledger.courses())
    out: list[QuestionOutcome] = []
    for q in questions:
        course_ids = [c for c in courses if c != q.course] if exclude_gold_course else None
        result = pilot.retriever.retrieve(q.q, course_ids=course_ids)
        supported = pilot._supported(result)
        gold = any(is_hit(e.chunk.location, q) for e in result.evidence)
        outcome = QuestionOutcome(id=q.id, supported=supported, gold_in_evidence=gold)
        if supported:
            searched = result.searched or q.q
            idf = pilot.index.lexical().idf(tokenize(searched))
            start = time.perf_counter()
            subsections = outline(pilot.index, result.evidence)
            first_key = len(result.evidence) + len(subsections) + 1
            text, citations = pilot.answerer.extractive(
                searched,
                result.evidence,
                idf,
                None,
                outline=subsections,
                continued=continuations(pilot.index, result.evidence, first_key),
            )
            outcome.extract_ms = (time.perf_counter() - start) * 1000
            outcome.citations = len(citations)
            outcome.hits = sum(is_hit(c.location, q) for c in citations)
            outcome.coverage = _coverage(q.q, text, idf)
            outcome.text = text
        out.append(outcome)
    return out


# A two-part question whose second part leans on the first ("What is global vision, and why is it important?")
# is a conversation: the first part asked, then the second as a follow-up.
_SECOND_PART = re.compile(r"(?<=\?)\s+|,\s+and\s+(?=(?:why|how|what|when|who|which)\b)", re.IGNORECASE)


def follow_up_pairs(questions: Sequence[LibraryQuestion]) -> list[tuple[LibraryQuestion, str, str]]:
    """(question, first turn, follow-up) for the questions whose second part is a follow-up."""
    from assistant.answering.followup import is_follow_up

    out = []
    for q in questions:
        parts = [p for p in _SECOND_PART.split(q.q) if p and p.strip()]
        if len(parts) >= 2 and is_follow_up(parts[1]):
            out.append((q, parts[0].strip(), parts[1].strip()))
    return out


def check_follow_ups(pilot: object, questions: Sequence[LibraryQuestion]) -> list[QuestionOutcome]:
    """The follow-up turn of each pair, asked after the first turn and CoursePilot's answer to it."""
    from assistant.core.types import ChatTurn
    from assistant.pilot import CoursePilot

    assert isinstance(pilot, CoursePilot)
    out = []
    for q, first, second in follow_up_pairs(questions):
        history = [ChatTurn(role="user", content=first), ChatTurn(role="assistant", content=pilot.ask(first).text)]
        answer = pilot.ask(second, history=history)
        outcome = QuestionOutcome(
            id=q.id,
            supported=True,
            gold_in_evidence=any(is_hit(e.chunk.location, q) for e in answer.evidence),
            citations=len(answer.citations),
            hits=sum(is_hit(c.location, q) for c in answer.citations),
            extract_ms=answer.timings_ms.get("extract", 0.0),
            text=answer.text,
        )
        out.append(outcome)
    return out


def summarise(outcomes: Sequence[QuestionOutcome]) -> AnswerCheck:
    supported = [o for o in outcomes if o.supported]
    answered = [o for o in supported if o.citations]
    chosen = [o for o in answered if o.gold_in_evidence]

    def precision(items: Sequence[QuestionOutcome]) -> float | None:
        cited = sum(o.citations for o in items)
        return round(sum(o.hits for o in items) / cited, 4) if cited else None

    times = [o.extract_ms for o in supported]
    return AnswerCheck(
        questions=len(outcomes),
        citation_precision=precision(answered),
        choice_precision=precision(chosen),
        answered=round(len(answered) / len(outcomes), 4) if outcomes else 0.0,
        term_coverage=round(float(np.mean([o.coverage for o in answered])), 4) if answered else None,
        extract_p50_ms=round(float(np.percentile(times, 50)), 2) if times else None,
        extract_p95_ms=round(float(np.percentile(times, 95)), 2) if times else None,
    )


def main(argv: Sequence[str] | None = None) -> None:
    from assistant.core.settings import settings_from_env
    from assistant.pilot import CoursePilot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", type=Path, help="folder with questions.jsonl and library/")
    parser.add_argument("--work-dir", type=Path, required=True, help="holds the index under <benchmark name>/")
    parser.add_argument("--split", default="train")
    parser.add_argument("--excluded", action="store_true", help="also ask with each gold course left out")
    parser.add_argument("--follow-ups", action="store_true", help="also ask two-part questions as a conversation")
    parser.add_argument("--out", type=Path, help="write every question's outcome here (JSONL; the first mode's)")
    parser.add_argument(
        "--sentence-vectors",
        choices=["settings", "stored", "embedded", "both"],
        default="settings",
        help="stored: the index's sentence vectors where it has them; embedded: every candidate embedded; both",
    )
    args = parser.parse_args(argv)
    settings = library_settings(settings_from_env(), args.work_dir / args.benchmark.name)
    index = open_library_index(args.benchmark / "library", settings)  # incremental: no-op when built
    questions = load_questions(args.benchmark / "questions.jsonl", args.split)
    choice: dict[str, list[bool | None]] = {"settings": [None], "stored": [True], "embedded": [False]}
    modes = choice.get(args.sentence_vectors, [True, False])
    reports: dict[str, dict[str, object]] = {}
    for stored in modes:
        answer = settings.answer
        if stored is not None:
            answer = answer.model_copy(update={"stored_sentence_vectors": stored})
        pilot = CoursePilot(settings.model_copy(update={"answer": answer}))
        pilot.index = index
        report: dict[str, object] = {}
        present = check_answers(pilot, questions)
        report["present"] = summarise(present).model_dump()
        if args.excluded:
            report["excluded"] = summarise(check_answers(pilot, questions, exclude_gold_course=True)).model_dump()
        if args.follow_ups:
            report["follow_ups"] = summarise(check_follow_ups(pilot, questions)).model_dump()
        if args.out and not reports:  # the first mode's outcomes
            args.out.write_text("".join(o.model_dump_json() + "\n" for o in present), encoding="utf-8")
        reports["stored" if answer.stored_sentence_vectors else "embedded"] = report
    print(json.dumps(reports if len(modes) > 1 else next(iter(reports.values())), indent=1))


if __name__ == "__main__":
    main()
