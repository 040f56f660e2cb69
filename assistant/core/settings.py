"""One typed Settings object, read from COURSEPILOT_* env vars and an optional .env file.

Sections nest with a single underscore after the prefix: COURSEPILOT_CHROMA_HOST sets chroma.host,
COURSEPILOT_CHAT_BASE_URL sets chat.base_url.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Bumped whenever chunk boundaries change for the same settings, so old vectors are never mixed in.
CHUNKER_VERSION = 2

# The single demo user that signs in when COURSEPILOT_UI_USERS is empty.
DEMO_ID = "demo"
DEMO_PASSWORD = "demo"


class LibrarySettings(BaseModel):
    dir: Path = Field(default=Path("data/courses"), description="Folder of course folders to ingest and serve.")


class IndexSettings(BaseModel):
    dir: Path = Field(
        default=Path(".coursepilot/index"),
        description="Where the embedded Chroma store and the SQLite ingest ledger live.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL of a shared ingest ledger (postgresql+psycopg://user@host/db), for workers and "
        "an ingest job on several machines. Unset: the ledger is SQLite under index.dir (one machine). May be the "
        "learner database: the ledger keeps to its own schema.",
    )
    database_schema: str = Field(
        default="coursepilot_index",
        pattern=r"^[a-z_][a-z0-9_]{0,39}$",
        description="Prefix of the PostgreSQL schema of each collection's ledger (<prefix>__<collection>).",
    )
    refresh_s: float = Field(
        default=0.0,
        ge=0,
        le=300,
        description="How often a running worker checks the ledger generation and brings its BM25 index (and, with "
        "embedded Chroma, its vector reader) up to a newer ingest. 0: before every question.",
    )


class ChromaSettings(BaseModel):
    host: str | None = Field(default=None, description="Chroma server host. Unset: embedded Chroma under index.dir.")
    port: int = Field(default=8000, description="Chroma server port.")
    ssl: bool = Field(default=False, description="Use HTTPS to reach the Chroma server.")
    tenant: str = Field(default="default_tenant", description="Chroma tenant (server mode).")
    database: str = Field(default="default_database", description="Chroma database (server mode).")
    token: SecretStr | None = Field(default=None, description="Bearer token for a Chroma server with auth.")


class EmbeddingSettings(BaseModel):
    provider: str = Field(
        default="local",
        min_length=1,
        description="'local': sentence-transformers with the bundled all-MiniLM-L6-v2; "
        "'openai': any OpenAI-compatible /embeddings endpoint; or the name of a backend added with "
        "register_embedder() or a 'coursepilot.embedders' entry point.",
    )
    model: str = Field(default="all-MiniLM-L6-v2", description="Embedding model name.")
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="onnx-int8",
        description="Local inference backend. 'onnx-int8' (default): the bundled weights exported to ONNX on first "
        "use and quantized to int8, 2-4x faster than torch and within 0.001 nDCG@10 of it on SciFact; 'onnx': the "
        "same export unquantized; 'torch': sentence-transformers on PyTorch. int8 vectors have their own collection, "
        "so switching to or from it needs a re-ingest.",
    )
    base_url: str | None = Field(default=None, description="Base URL for the openai provider.")
    api_key: SecretStr | None = Field(default=None, description="API key for the openai provider.")
    batch_size: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="Texts per embedding batch (torch and openai; the ONNX backends run one text per call).",
    )
    query_cache_size: int = Field(default=1024, ge=0, description="Query embeddings kept in an LRU cache.")
    cache_dir: Path | None = Field(
        default=None,
        description="Folder for the one-time ONNX export of the local model (default: "
        "$XDG_CACHE_HOME/coursepilot/onnx, else ~/.cache/coursepilot/onnx). Written once, then only read.",
    )

    def vectors_recipe(self) -> str:
        """What decides the vectors. torch and fp32 ONNX agree to cosine 0.9999 and share stored vectors;
        int8 vectors differ measurably, so they get their own collection and caches."""
        recipe = f"{self.provider}|{self.model}"
        return f"{recipe}|int8" if self.provider == "local" and self.backend == "onnx-int8" else recipe


class ChunkingSettings(BaseModel):
    size_tokens: int = Field(default=256, ge=32, le=4096, description="Maximum tokens per chunk (cl100k).")
    overlap_tokens: int = Field(default=32, ge=0, le=1024, description="Tokens shared by consecutive chunks.")


class RetrievalSettings(BaseModel):
    k: int = Field(default=6, ge=1, le=50, description="Evidence passages handed to the answerer.")
    candidates: int = Field(
        default=100,
        ge=5,
        le=1000,
        description="Candidates fetched from each retriever (also the sample the fusion normalises scores over).",
    )
    fusion: Literal["rrf", "weighted"] = Field(
        default="weighted", description="'weighted': z-scored convex fusion; 'rrf': reciprocal rank fusion."
    )
    dense_weight: float = Field(
        default=0.45,
        ge=0,
        le=1,
        description="Weight of the dense score in weighted fusion (tuned on SciFact train).",
    )
    rrf_k: int = Field(default=60, ge=1, description="Constant of reciprocal rank fusion.")
    ranker: Literal["learned", "fusion"] = Field(
        default="learned",
        description="'learned': the shipped logistic ranking step reorders the head of the fused list using "
        "heading-trail, coverage and position signals (fitted on public train splits); 'fusion': the fused order.",
    )
    rerank_pool: int = Field(default=30, ge=1, le=200, description="Head of the fused list the ranking step reorders.")
    distinct_sections: int = Field(
        default=5,
        ge=0,
        le=50,
        description="After the ranking step, the first N places go to the best chunks of N distinct top-level "
        "sections (0: off). 5 by 3-fold cross-validation on the train splits (hit@5 0.978 -> 0.995, hit@1 equal).",
    )
    refusal: Literal["learned", "thresholds"] = Field(
        default="learned",
        description="'learned': one calibrated logistic decision over several signals (needs ranker=learned); "
        "'thresholds': refusal_min_dense and refusal_min_coverage.",
    )
    spell_out_acronyms: bool = Field(
        default=True,
        description="Search a question's acronyms together with their long form as the library spells it out "
        '("BLUF" with "bottom line up front"; see assistant/core/acronyms.py).',
    )
    dedup_similarity: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="Jaccard token overlap above which a passage counts as a near-duplicate.",
    )
    refusal_min_dense: float = Field(
        default=0.335,
        ge=-1,
        le=1,
        description="Refuse when the best passage's cosine similarity is below this (calibrated on SciFact train: "
        "most refusals of unanswerable questions with at most 10% of answerable ones refused).",
    )
    refusal_min_coverage: float = Field(
        default=0.4,
        ge=0,
        le=1,
        description="Refuse when less than this IDF-weighted share of the question's terms appears in the best of "
        "the top 3 passages (calibrated on SciFact train with refusal_min_dense).",
    )


class ChatSettings(BaseModel):
    provider: Literal["none", "openai"] = Field(
        default="none",
        description="'none': extractive answers; 'openai': any OpenAI-compatible chat endpoint.",
    )
    model: str = Field(default="gpt-4o-mini", description="Chat model name.")
    base_url: str | None = Field(default=None, description="Base URL (Azure OpenAI, Ollama, vLLM, llama.cpp...).")
    api_key: SecretStr | None = Field(default=None, description="API key for the chat endpoint.")
    timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout in seconds.")
    max_retries: int = Field(default=2, ge=0, le=10, description="Retries with backoff before falling back.")
    temperature: float = Field(default=0.0, ge=0, le=2, description="Sampling temperature.")


class DatabaseSettings(BaseModel):
    url: str = Field(
        default="sqlite:///.coursepilot/coursepilot.db",
        description="SQLAlchemy URL of the learner store and chat history (postgresql+psycopg://... in production).",
    )


class UISettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="Address the chat UI listens on.")
    port: int = Field(default=8000, description="Port of the chat UI.")
    users: str = Field(
        default="",
        description="Sign-in users as 'id:scrypt-hash:role' separated by commas "
        "(make a hash with `coursepilot hash-password`). Empty: a demo user 'demo' / 'demo' signs in, on loopback "
        "only (see COURSEPILOT_UI_ALLOW_DEMO).",
    )
    auth_secret: SecretStr | None = Field(
        default=None, description="Secret that signs sessions (CHAINLIT_AUTH_SECRET)."
    )
    allow_demo: bool = Field(
        default=False,
        description="Allow the shared demo user 'demo' / 'demo' when the UI listens on an address other than "
        "loopback (127.0.0.1, ::1, localhost). Off: such a start without COURSEPILOT_UI_USERS is refused.",
    )
    allowed_origins: str = Field(
        default="",
        description="Extra browser origins allowed to call the UI's HTTP API and open its socket, separated by "
        "commas (e.g. 'https://lms.example.com'). Empty: only the UI's own origin.",
    )
    session_minutes: int = Field(
        default=480,
        ge=5,
        le=43200,
        description="Lifetime of a sign-in session (its cookie and token) in minutes. Every request also checks "
        "the user and role against COURSEPILOT_UI_USERS, and sign-out revokes the token.",
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Wrong passwords for one user name before sign-in for that name is paused; each further "
        "failure doubles the pause (1 s, 2 s, 4 s ... up to 15 min).",
    )
    login_max_failures_address: int = Field(
        default=30,
        ge=1,
        description="Failed sign-ins from one client address (any user names) before that address is paused, "
        "with the same doubling pause.",
    )
    messages_per_minute: int = Field(
        default=20,
        ge=1,
        description="Chat messages one learner may send per minute; further messages get a 'slow down' reply "
        "and are not stored.",
    )


class LimitsSettings(BaseModel):
    max_file_mb: int = Field(default=50, ge=1, description="Largest course file accepted.")
    max_decompressed_mb: int = Field(default=200, ge=1, description="Largest uncompressed size of a DOCX/PPTX.")
    max_pdf_pages: int = Field(default=2000, ge=1, description="Most pages in one PDF; longer ones are refused unread.")
    max_question_chars: int = Field(default=2000, ge=10, description="Longest question accepted.")


class AnswerSettings(BaseModel):
    sentence_candidates: int = Field(
        default=8,
        ge=0,
        le=64,
        description="Extractive answers: sentences per question without a stored vector that are matched by "
        "meaning with the embedder (cached by text; each costs about one short embedding); 0 = none embedded "
        "(with stored_sentence_vectors=false too: words and passage scores only).",
    )
    stored_sentence_vectors: bool = Field(
        default=False,
        description="true: extractive answers read the sentence vectors stored at ingest (late-chunked, no model "
        "call per question) where the index has them, and embed only the candidate sentences that have none; their "
        "off-topic floors are their own (extractive.STORED_TOPIC_FLOOR, chosen on openstax train). Faster (ask p95 "
        "29 against 42 ms at 100k chunks), but the golden check's key-point recall fell from 0.540 to 0.492, so "
        "the default embeds the best few candidates (see README, Extractive answers).",
    )


class XAPISettings(BaseModel):
    endpoint: str | None = Field(default=None, description="Learning Record Store endpoint; unset disables xAPI.")
    username: str | None = Field(default=None, description="LRS basic-auth user.")
    password: SecretStr | None = Field(default=None, description="LRS basic-auth password.")


class Settings(BaseSettings):
    """Every CoursePilot setting. Env: COURSEPILOT_<SECTION>_<FIELD>, e.g. COURSEPILOT_CHAT_MODEL."""

    model_config = SettingsConfigDict(
        env_prefix="COURSEPILOT_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_file=".env",
        extra="ignore",
    )

    library: LibrarySettings = LibrarySettings()
    index: IndexSettings = IndexSettings()
    chroma: ChromaSettings = ChromaSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    chat: ChatSettings = ChatSettings()
    database: DatabaseSettings = DatabaseSettings()
    ui: UISettings = UISettings()
    limits: LimitsSettings = LimitsSettings()
    xapi: XAPISettings = XAPISettings()
    answer: AnswerSettings = AnswerSettings()

    def collection_name(self) -> str:
        """Name derived from what builds the vectors, so two models or chunkers never share a collection."""
        recipe = (
            f"{self.embedding.vectors_recipe()}|{self.chunking.size_tokens}|"
            f"{self.chunking.overlap_tokens}|v{CHUNKER_VERSION}"
        )
        slug = re.sub(r"[^a-z0-9]+", "-", self.embedding.model.lower()).strip("-")[:32]
        return f"cp-{slug}-{hashlib.sha1(recipe.encode()).hexdigest()[:10]}"

    def effective(self) -> dict[str, Any]:
        """All values with secrets masked, for `coursepilot config`."""
        return self.model_dump(mode="json")

    def described(self) -> list[tuple[str, str, str]]:
        """(env var, effective value, description) for every field."""
        rows: list[tuple[str, str, str]] = []
        for section_name, section_field in type(self).model_fields.items():
            section = getattr(self, section_name)
            for name, field in type(section).model_fields.items():
                value = getattr(section, name)
                shown = "**********" if isinstance(value, SecretStr) else ("" if value is None else str(value))
                env = f"COURSEPILOT_{section_name.upper()}_{name.upper()}"
                rows.append((env, shown, field.description or ""))
            del section_field
        return rows


# The chat server's launcher hands the server process its settings as JSON in this variable.
SETTINGS_ENV = "CP_UI_SETTINGS_JSON"


def settings_from_env() -> Settings:
    """How every process reads its settings: the launcher's (in the chat server), else the environment and .env.

    An invalid value raises CoursePilotError naming the variable to fix.
    """
    import json
    import os

    from pydantic import ValidationError

    from assistant.core.errors import CoursePilotError

    raw = os.environ.get(SETTINGS_ENV)
    try:
        return Settings(_env_file=None, **json.loads(raw)) if raw else Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "COURSEPILOT_" + "_".join(str(p).upper() for p in first["loc"])
        raise CoursePilotError(
            f"Setting {name} is invalid: {first['msg']}.", "fix it in the environment or .env."
        ) from None
