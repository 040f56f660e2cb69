"""Follow-up questions without a model: keep the conversation's topic, chosen by the evidence.

"what about if they get defensive?" after a question on giving feedback means "...when giving feedback". Gluing
the previous question in front of it (the old rule) lets the previous question's words dominate, so retrieval
lands on the section that was already quoted. So the follow-up is retrieved three ways:

* alone, over the whole library;
* alone, inside the course where the conversation's topic is taught (the top passage for the previous turns);
* combined with the previous turns' question (the old rule).

Each candidate is judged on its top passage: does it hold the words the follow-up adds to the conversation
(IDF-weighted), is it on the conversation's topic (same course), would it be answered at all (the refusal
decision), and does it say something new (another section than the previous turns' own top passage).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel

from assistant.core.text import chat_filler_terms, index_text, tokenize
from assistant.core.types import ChatTurn
from assistant.retrieval.retriever import RetrievalResult, Retriever

log = logging.getLogger(__name__)

FOLLOW_UP = re.compile(
    r"^(and|also|but|so|then|what about|how about|what if|why)\b|\b(it|its|this|that|these|those|they|them|there|one)\b",
    re.IGNORECASE,
)
# The words that only say "this continues": retrieval for the follow-up alone leaves them out.
_LEAD_IN = re.compile(r"^\s*(and|also|but|so|then|ok(ay)?|what about|how about|what if)\b(\s+if\b)?[\s,]*", re.I)
# How many earlier user turns make up the topic (a follow-up of a follow-up reaches back to the first question).
_TOPIC_TURNS = 3


class FollowUpChoice(BaseModel):
    """The query used for a follow-up, how it was made, and its retrieval."""

    query: str
    strategy: Literal["alone", "in-topic", "combined"]
    result: RetrievalResult


def is_follow_up(question: str) -> bool:
    """Pronoun-led or very short questions lean on what was said before."""
    return bool(FOLLOW_UP.search(question)) or len(tokenize(question)) <= 2


def topic_question(history: Sequence[ChatTurn]) -> str | None:
    """The previous user turns that carry the topic: back to the last question that stands on its own."""
    asked = [t.content.strip() for t in history if t.role == "user" and t.content.strip()]
    if not asked:
        return None
    parts: list[str] = []
    for text in reversed(asked[-_TOPIC_TURNS:]):
        parts.insert(0, text.rstrip("?"))
        if not is_follow_up(text):
            break
    return ": ".join(parts)


def rule_rewrite(question: str, history: Sequence[ChatTurn]) -> str:
    """The plain rule: a short or pronoun-led follow-up borrows the previous question's words."""
    previous = next((t.content for t in reversed(history) if t.role == "user"), None)
    if not previous:
        return question
    if is_follow_up(question):
        return f"{previous.strip().rstrip('?')}: {question.strip()}"
    return question


def _share(terms: dict[str, float], text: str) -> float:
    total = sum(terms.values())
    if total <= 0:
        return 0.0
    present = set(tokenize(text))
    return sum(w for t, w in terms.items() if t in present) / total


def retrieve_follow_up(
    retriever: Retriever,
    question: str,
    history: Sequence[ChatTurn],
    course_ids: Sequence[str] | None,
    levels: Sequence[str] | None,
    supported: Callable[[RetrievalResult], bool],
    answered: Callable[[RetrievalResult], bool] | None = None,
) -> FollowUpChoice:
    """Retrieve for `question` after `history`, keeping the topic when the evidence says it is kept.

    `supported` weighs the candidates; `answered` is the decision the caller will make on a question asked
    alone (default: `supported`). A question that stands on its own is kept alone only if that decision answers
    it: "what do I need to put in the report?" after a question on a data breach, refused alone, is looked
    for inside the conversation's course too."""
    answered = answered or supported
    topic = topic_question(history)
    if topic is None or not is_follow_up(question):
        alone = retriever.retrieve(question, course_ids=course_ids, levels=levels)
        if topic is None or answered(alone):
            return FollowUpChoice(query=question, strategy="alone", result=alone)
    own = _LEAD_IN.sub("", question).strip() or question
    alone = retriever.retrieve(own, course_ids=course_ids, levels=levels)
    combined_query = f"{topic}: {question.strip()}"
    candidates: list[FollowUpChoice] = [
        FollowUpChoice(
            query=combined_query,
            strategy="combined",
            result=retriever.retrieve(combined_query, course_ids=course_ids, levels=levels),
        ),
    ]
    before = retriever.retrieve(topic, k=3, course_ids=course_ids, levels=levels)
    topic_top = before.evidence[0].chunk.location if before.evidence else None
    if topic_top is not None and not course_ids:
        inside = retriever.retrieve(own, course_ids=[topic_top.course_id], levels=levels)
        candidates.append(FollowUpChoice(query=own, strategy="in-topic", result=inside))
    candidates.append(FollowUpChoice(query=own, strategy="alone", result=alone))

    index = retriever.index
    filler = chat_filler_terms()
    topic_terms = set(tokenize(topic))
    new_terms = index.lexical().idf([t for t in tokenize(own) if t not in topic_terms and t not in filler])

    def judge(choice: FollowUpChoice) -> float:
        evidence = choice.result.evidence
        if not evidence:
            return -2.0
        top = evidence[0].chunk
        score = _share(new_terms, index_text(top)) if new_terms else 0.0
        if topic_top is not None and top.location.course_id == topic_top.course_id:
            score += 0.5
        if topic_top is not None and top.location != topic_top:
            score += 0.1
        if not supported(choice.result):
            score -= 1.0
        return score

    # Ties go to a candidate that asks the learner's own words (in-topic, then alone), then to combined: with the
    # learned ranking step the combined query often reaches the same passage, and then the topic's words add
    # nothing but the risk of drifting back to the topic's own section.
    preference = {"in-topic": 2, "alone": 1, "combined": 0}
    scored = [(judge(c), preference[c.strategy], c) for c in candidates]
    best = max(scored, key=lambda s: (s[0], s[1]))[2]
    log.debug("follow-up %r: %s", question, {c.strategy: round(s, 3) for s, _, c in scored})
    return best


__all__ = ["FOLLOW_UP", "FollowUpChoice", "is_follow_up", "retrieve_follow_up", "rule_rewrite", "topic_question"]
