"""One adapter mechanism: the embedding base class, the registry behind COURSEPILOT_EMBEDDING_PROVIDER, injection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import make_settings

from assistant.core.errors import ConfigError
from assistant.core.settings import EmbeddingSettings, Settings
from assistant.models.embeddings import BaseEmbedder, get_embedder, register_embedder, registered_embedders
from assistant.models.local_embedder import LocalEmbedder
from ingest.pipeline import IngestPipeline

COURSE = """# Feedback Basics

## Giving feedback

Specific feedback names the behaviour, its impact and the change you would like to see next time.

## Receiving feedback

Listen to the end, ask one clarifying question, and thank the person before you answer.
"""


class CountingEmbedder(BaseEmbedder):
    """The bundled local model behind the base class, counting what reaches `_embed`."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        super().__init__(settings)
        self.inner = LocalEmbedder(settings.model_copy(update={"provider": "local"}))
        self.calls: list[tuple[int, bool]] = []

    def _embed(self, texts: Sequence[str], query: bool) -> np.ndarray:
        self.calls.append((len(texts), query))
        return self.inner.embed_documents(texts)


def _library(tmp: Path) -> Path:
    lib = tmp / "library"
    (lib / "feedback").mkdir(parents=True)
    (lib / "feedback" / "basics.md").write_text(COURSE)
    return lib


def test_base_class_handles_empty_input_and_caches_queries() -> None:
    model = CountingEmbedder(EmbeddingSettings(provider="counting", query_cache_size=4))
    empty = model.embed_documents([])
    assert empty.shape[0] == 0 and model.calls == []
    first = model.embed_query("What makes feedback specific?")
    again = model.embed_query("What makes feedback specific?")
    assert model.calls == [(1, True)] and np.array_equal(first, again)
    assert model.dimensions == first.shape[0] == 384
    assert model.embed_documents([]).shape == (0, 384)


def test_base_class_rejects_a_wrong_number_of_vectors() -> None:
    class Short(BaseEmbedder):
        def _embed(self, texts: Sequence[str], query: bool) -> np.ndarray:
            return np.ones((len(texts) - 1, 3), dtype=np.float32)

    from assistant.core.errors import ModelError

    with pytest.raises(ModelError, match="one vector"):
        Short(EmbeddingSettings()).embed_documents(["a", "b"])


def test_registered_provider_is_chosen_by_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    register_embedder("counting", CountingEmbedder)
    assert "counting" in registered_embedders()
    # Its name is part of the vectors' recipe: another provider never shares a collection with 'local'.
    assert make_settings(tmp_path, embedding={"provider": "counting"}).collection_name() != (
        make_settings(tmp_path).collection_name()
    )
    monkeypatch.setenv("COURSEPILOT_EMBEDDING_PROVIDER", "counting")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    model = get_embedder(settings.embedding)
    assert isinstance(model, CountingEmbedder)


def test_unknown_provider_names_the_registered_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        get_embedder(EmbeddingSettings(provider="nope"))
    assert "Unknown embedding provider 'nope'" in caught.value.message
    assert caught.value.fix and "local" in caught.value.fix and "openai" in caught.value.fix
    with pytest.raises(ConfigError, match="not valid"):
        register_embedder("Bad Name!", CountingEmbedder)


def test_ingest_pipeline_embeds_with_the_given_embedder(tmp_path: Path) -> None:
    lib = _library(tmp_path)
    settings = make_settings(tmp_path, library={"dir": str(lib)})
    injected = CountingEmbedder(settings.embedding)
    report = IngestPipeline(settings, embedder=injected).run(lib)
    assert report.ok and report.chunks_embedded > 0
    # The given embedder embeds everything the ingest embeds: chunks and the heading trails of their sections.
    assert sum(n for n, query in injected.calls if not query) == report.chunks_embedded + report.sections_embedded


PLUGIN = """
from pathlib import Path

import numpy as np

from assistant.models.embeddings import BaseEmbedder
from assistant.models.local_embedder import LocalEmbedder


class PluginEmbedder(BaseEmbedder):
    def __init__(self, settings):
        super().__init__(settings)
        self.inner = LocalEmbedder(settings.model_copy(update={"provider": "local"}))

    def _embed(self, texts, query):
        with open(Path(__file__).with_name("used.log"), "a") as log:
            log.write(f"{len(texts)}\\n")
        return self.inner.embed_documents(texts)
"""


def test_entry_point_plugin_is_reachable_from_the_cli(tmp_path: Path) -> None:
    """A package declaring a 'coursepilot.embedders' entry point is selectable by name in a fresh process."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "cp_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = plugins / "cp_test_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cp-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[coursepilot.embedders]\nplugin-minilm = cp_test_plugin:PluginEmbedder\n")
    lib = _library(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSEPILOT_")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(plugins), env.get("PYTHONPATH", "")]),
            "COURSEPILOT_INDEX_DIR": str(tmp_path / "index"),
            "COURSEPILOT_DATABASE_URL": f"sqlite:///{tmp_path / 'cp.db'}",
            "COURSEPILOT_EMBEDDING_PROVIDER": "plugin-minilm",
        }
    )
    cli = [sys.executable, "-m", "assistant.apps.cli"]
    done = subprocess.run([*cli, "ingest", str(lib), "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["chunks_embedded"] > 0
    assert (plugins / "used.log").is_file()

    env["COURSEPILOT_EMBEDDING_PROVIDER"] = "missing"
    bad = subprocess.run([*cli, "ingest", str(lib), "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    error = json.loads(bad.stdout)
    assert error["type"] == "ConfigError" and "'missing'" in error["error"]
    assert "plugin-minilm" in error["fix"] and "local" in error["fix"]
