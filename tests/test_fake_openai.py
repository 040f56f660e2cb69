"""The fake OpenAI server is compatible with the real ``openai`` and ``langchain_openai`` clients."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from fake_openai import (  # noqa: F401  (fake_openai: the fixture, used via request.getfixturevalue)
    EMBEDDING_DIM,
    REFUSAL,
    FakeOpenAIServer,
    Reply,
    default_answer,
    embed_text,
    fake_openai,
)
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

pytestmark = pytest.mark.timeout(10)

EVIDENCE = (
    '<evidence key="S1" source="Python 101 › Functions › Recursion (p. 3)">\n'
    "Recursion is when a function calls itself. Every recursive function needs a base case.\n"
    "</evidence>\n"
    '<evidence key="S2" source="Python 101 › Data › Stacks (p. 7)">\n'
    "A stack is a last-in, first-out structure! It supports push and pop.\n"
    "</evidence>\n"
    '<evidence key="S3" source="Python 101 › Data › Queues (p. 9)">\n'
    "A queue is first-in, first-out.\n"
    "</evidence>"
)
EXPECTED = "Recursion is when a function calls itself. [S1] A stack is a last-in, first-out structure! [S2]"


def rag_messages(question: str = "What is recursion?", evidence: str = EVIDENCE) -> list[Any]:
    return [
        {"role": "system", "content": "Answer only from the evidence.\n" + evidence},
        {"role": "user", "content": f"<question>{question}</question>"},
    ]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def client(srv: FakeOpenAIServer, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 2.0)
    return openai.OpenAI(base_url=srv.base_url, api_key="test", **kwargs)


def chat_model(srv: FakeOpenAIServer, **kwargs: Any) -> ChatOpenAI:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 2.0)
    return ChatOpenAI(base_url=srv.base_url, api_key=SecretStr("test"), model="fake", **kwargs)


def delta_text(chunk: Any) -> str | None:
    return chunk.choices[0].delta.content if chunk.choices else None


# ------------------------------------------------------------------------------------ answer policy


def test_default_policy() -> None:
    assert default_answer(rag_messages()) == EXPECTED
    assert default_answer(rag_messages(evidence="")) == REFUSAL
    assert default_answer(rag_messages("Is this UNANSWERABLE?")) == REFUSAL
    # evidence may also live in the user message; attributes in any order
    user_only = [
        {
            "role": "user",
            "content": '<evidence source="x" key="K9">One. Two.</evidence><question>q</question>',
        }
    ]
    assert default_answer(user_only) == "One. [K9]"
    rewrite = [
        {"role": "system", "content": "Rewrite the query."},
        {"role": "user", "content": "recursion basics"},
    ]
    assert default_answer(rewrite) == "REWRITE: recursion basics"
    parts = [{"role": "user", "content": [{"type": "text", "text": "follow-up"}]}]
    assert default_answer(parts) == "REWRITE: follow-up"


# ----------------------------------------------------------------------------------- openai client


def test_openai_plain(server: FakeOpenAIServer) -> None:
    resp = client(server).chat.completions.create(model="fake", messages=rag_messages())
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == "fake"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == EXPECTED
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens

    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == "Bearer test"
    assert [m["role"] for m in req["body"]["messages"]] == ["system", "user"]
    assert '<evidence key="S1"' in server.last_prompt()
    assert server.last_messages()[-1]["content"] == "<question>What is recursion?</question>"


def test_openai_streaming_with_usage(server: FakeOpenAIServer) -> None:
    stream = client(server).chat.completions.create(
        model="fake",
        messages=rag_messages(),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) > 5  # observable streaming, word-ish chunks
    assert "".join(content) == EXPECTED
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert server.last_request["body"]["stream"] is True


def test_refusal_and_rewrite_over_http(server: FakeOpenAIServer) -> None:
    c = client(server)
    no_evidence = c.chat.completions.create(model="fake", messages=rag_messages(evidence=""))
    assert no_evidence.choices[0].message.content == REFUSAL
    rewrite = c.chat.completions.create(model="fake", messages=[{"role": "user", "content": "stacks vs queues"}])
    assert rewrite.choices[0].message.content == "REWRITE: stacks vs queues"


def test_script_fifo_then_default_and_rules(server: FakeOpenAIServer) -> None:
    c = client(server)
    server.script("first", Reply(text="second"))
    server.when(r"^special", Reply(text="rule hit"), times=1)

    def ask(text: str) -> str | None:
        messages: list[Any] = [{"role": "user", "content": text}]
        return c.chat.completions.create(model="fake", messages=messages).choices[0].message.content

    assert ask("special request") == "rule hit"  # rules win and don't consume the queue
    assert ask("a") == "first"
    assert ask("special again") == "second"  # rule exhausted (times=1)
    assert server.pending() == 0
    assert ask("b") == "REWRITE: b"


def test_api_key_enforced_and_models(server: FakeOpenAIServer) -> None:
    assert [m.id for m in client(server).models.list()] == ["fake", "fake-embedding"]
    server.api_key = "sekret"
    with pytest.raises(openai.AuthenticationError):
        client(server).chat.completions.create(model="fake", messages=rag_messages())
    ok = openai.OpenAI(base_url=server.base_url, api_key="sekret", max_retries=0, timeout=2)
    assert ok.chat.completions.create(model="fake", messages=rag_messages()).choices[0].message.content


# -------------------------------------------------------------------------------- langchain client


def test_langchain_invoke(server: FakeOpenAIServer) -> None:
    llm = chat_model(server)
    msg = llm.invoke([SystemMessage("Use evidence.\n" + EVIDENCE), HumanMessage("<question>recursion?</question>")])
    assert msg.content == EXPECTED
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.usage_metadata is not None and msg.usage_metadata["output_tokens"] > 0
    body = server.last_request["body"]
    assert body["model"] == "fake"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert server.last_request["headers"]["authorization"] == "Bearer test"


def test_langchain_stream(server: FakeOpenAIServer) -> None:
    llm = chat_model(server)
    chunks = list(llm.stream([SystemMessage(EVIDENCE), HumanMessage("<question>recursion?</question>")]))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    texts = [c.content for c in chunks if c.content]
    assert len(texts) > 5
    assert "".join(str(t) for t in texts) == EXPECTED
    assert server.last_request["body"]["stream"] is True


async def test_langchain_async(server: FakeOpenAIServer) -> None:
    llm = chat_model(server)
    msg = await llm.ainvoke([HumanMessage("shorter query please")])
    assert msg.content == "REWRITE: shorter query please"
    parts = [c.content async for c in llm.astream([SystemMessage(EVIDENCE), HumanMessage("<question>q</question>")])]
    assert "".join(str(p) for p in parts) == EXPECTED


def test_langchain_tool_call(server: FakeOpenAIServer) -> None:
    def find_lessons(skill: str) -> str:
        """Find lessons teaching a skill."""
        return skill

    llm = chat_model(server).bind_tools([find_lessons])
    server.script(Reply.tool("find_lessons", {"skill": "recursion"}))
    msg = llm.invoke("Where is recursion taught?")
    assert msg.tool_calls and msg.tool_calls[0]["name"] == "find_lessons"
    assert msg.tool_calls[0]["args"] == {"skill": "recursion"}
    assert msg.response_metadata["finish_reason"] == "tool_calls"
    assert server.last_request["body"]["tools"][0]["function"]["name"] == "find_lessons"

    server.script(Reply.tool("find_lessons", {"skill": "loops"}))
    gathered: Any = None
    for chunk in llm.stream("Where are loops taught?"):
        gathered = chunk if gathered is None else gathered + chunk
    assert gathered.tool_calls[0]["args"] == {"skill": "loops"}

    # without tools in the request a scripted tool call degrades to a text answer
    server.script(Reply(text="plain", tool_call=("find_lessons", {})))
    assert chat_model(server).invoke("hi").content == "plain"


# ---------------------------------------------------------------------------------- fault injection


def test_rate_limit_then_success_uses_client_retries(server: FakeOpenAIServer) -> None:
    server.script(Reply.rate_limited(retry_after=0.05))
    start = time.monotonic()
    resp = client(server, max_retries=2).chat.completions.create(model="fake", messages=rag_messages())
    assert resp.choices[0].message.content == EXPECTED
    assert len(server.chat_requests()) == 2
    assert time.monotonic() - start >= 0.05


def test_rate_limit_surfaces_without_retries(server: FakeOpenAIServer) -> None:
    server.script(Reply.rate_limited(retry_after=1))
    with pytest.raises(openai.RateLimitError) as info:
        client(server).chat.completions.create(model="fake", messages=rag_messages())
    assert info.value.response.headers["retry-after"] == "1"


def test_server_error(server: FakeOpenAIServer) -> None:
    server.script(Reply.error(500, "boom"))
    with pytest.raises(openai.InternalServerError) as info:
        client(server, max_retries=0).chat.completions.create(model="fake", messages=rag_messages())
    assert "boom" in str(info.value)
    assert len(server.requests) == 1


def test_context_length_error_code(server: FakeOpenAIServer) -> None:
    server.script(Reply.error(400, "too long", code="context_length_exceeded"))
    with pytest.raises(openai.BadRequestError) as info:
        client(server).chat.completions.create(model="fake", messages=rag_messages())
    assert info.value.code == "context_length_exceeded"


def test_malformed_body(server: FakeOpenAIServer) -> None:
    server.script(Reply.garbage())
    with pytest.raises((ValueError, openai.APIError)):
        client(server).chat.completions.create(model="fake", messages=rag_messages())
    server.script(Reply.garbage())
    with pytest.raises((ValueError, openai.APIError)):
        list(client(server).chat.completions.create(model="fake", messages=rag_messages(), stream=True))


def test_stream_drop_raises_on_iteration(server: FakeOpenAIServer) -> None:
    server.script(Reply(stream_drop_after=3))
    stream = client(server).chat.completions.create(model="fake", messages=rag_messages(), stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            if text := delta_text(chunk):
                received.append(text)
    assert "".join(received) == "Recursion is when"


def test_langchain_stream_drop_raises(server: FakeOpenAIServer) -> None:
    server.script(Reply.dropped(after=2))
    with pytest.raises(openai.APIConnectionError):
        list(chat_model(server).stream([SystemMessage(EVIDENCE), HumanMessage("<question>q</question>")]))


def test_delay_beyond_timeout(server: FakeOpenAIServer) -> None:
    server.script(Reply.slow(1.5))
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client(server, timeout=0.3).chat.completions.create(model="fake", messages=rag_messages())
    assert time.monotonic() - start < 1.2


def test_default_delay(server: FakeOpenAIServer) -> None:
    server.set_default_delay(1.0)
    with pytest.raises(openai.APITimeoutError):
        client(server, timeout=0.2).chat.completions.create(model="fake", messages=rag_messages())
    server.set_default_delay(0.1)
    start = time.monotonic()
    client(server).chat.completions.create(model="fake", messages=rag_messages())
    assert time.monotonic() - start >= 0.1


def test_stream_stall_times_out(server: FakeOpenAIServer) -> None:
    server.script(Reply.stalled(1.5))
    stream = client(server, timeout=0.3).chat.completions.create(
        model="fake",
        messages=rag_messages(),
        stream=True,
    )
    received: list[str] = []
    with pytest.raises(openai.APITimeoutError):
        for chunk in stream:
            if text := delta_text(chunk):
                received.append(text)
    assert "".join(received) == "Recursion is"


def test_concurrent_requests(server: FakeOpenAIServer) -> None:
    server.set_default_delay(0.5)
    results: list[str | None] = []

    def worker() -> None:
        c = client(server)
        results.append(c.chat.completions.create(model="fake", messages=rag_messages()).choices[0].message.content)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [EXPECTED] * 8
    assert time.monotonic() - start < 2.0  # served in parallel (serially: 4 s)


# ---------------------------------------------------------------------------------------- embeddings


def test_embeddings(server: FakeOpenAIServer) -> None:
    c = client(server)
    texts = [
        "recursion needs a base case",
        "recursion needs a base case",
        "a base case stops recursion",
        "bake bread",
    ]
    resp = c.embeddings.create(model="fake-embedding", input=texts)  # default: base64 on the wire
    vecs = [d.embedding for d in resp.data]
    assert server.last_request["body"]["encoding_format"] == "base64"
    assert all(len(v) == EMBEDDING_DIM for v in vecs)
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vecs)
    assert vecs[0] == vecs[1]

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vecs[0], vecs[2]) > 0.7 > 0.3 > cos(vecs[0], vecs[3])
    plain = c.embeddings.create(model="fake-embedding", input="bake bread", encoding_format="float")
    assert plain.data[0].embedding == pytest.approx(embed_text("bake bread"))
    assert plain.data[0].embedding == pytest.approx(vecs[3], abs=1e-6)


def test_embedding_faults_are_separate_from_chat(server: FakeOpenAIServer) -> None:
    server.script("chat only")
    server.script_embeddings(Reply.error(503))
    c = client(server)
    with pytest.raises(openai.InternalServerError):
        c.embeddings.create(model="fake-embedding", input="x")
    assert len(c.embeddings.create(model="fake-embedding", input="x").data[0].embedding) == EMBEDDING_DIM
    assert (
        c.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
        == "chat only"
    )


# ----------------------------------------------------------------------------------------- lifecycle


def test_fixture_yields_started_server(request: pytest.FixtureRequest) -> None:
    srv = request.getfixturevalue("fake_openai")
    assert isinstance(srv, FakeOpenAIServer)
    resp = client(srv).chat.completions.create(model="fake", messages=rag_messages())
    assert resp.choices[0].message.content == EXPECTED


def test_stop_is_prompt_even_with_sleeping_handler() -> None:
    srv = FakeOpenAIServer().start()
    srv.script(Reply.slow(30))

    def call() -> None:
        with pytest.raises(openai.APIError):
            client(srv, timeout=5).chat.completions.create(model="fake", messages=rag_messages())

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    assert srv.wait_for_requests(1)
    start = time.monotonic()
    srv.stop()
    assert time.monotonic() - start < 1.0
    thread.join(timeout=2)
    assert not thread.is_alive()
    srv.stop()  # idempotent


def test_raw_record_is_json(server: FakeOpenAIServer) -> None:
    client(server).chat.completions.create(model="fake", messages=rag_messages(), temperature=0)
    rec = server.last_request
    assert json.loads(rec["raw"]) == rec["body"]
    assert rec["body"]["temperature"] == 0
