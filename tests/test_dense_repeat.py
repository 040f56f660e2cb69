"""Dense candidates are the same in every process that opens one index (two workers serving one library agree).

Chroma wrote a collection's HNSW graph to disk only every 1,000 written records; what came after stayed in its
log, and each process that opened the collection inserted those records into the graph again, in parallel, so each
load searched another graph. The same question then got another dense top 100 (a third of the sample library's
questions did) with other fused scores, and a borderline refusal could flip between two workers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT, SAMPLE_LIBRARY

from assistant.core.settings import IndexSettings, Settings

GOLDEN = yaml.safe_load((ROOT / "evals" / "datasets" / "golden.yaml").read_text(encoding="utf-8"))["cases"]
QUESTIONS = [case["question"] for case in GOLDEN if "question" in case][:30]

# One fresh worker: the retriever's own dense list (ids best first, cosine scores) for each question.
WORKER = """
import json, sys
from assistant.core.settings import Settings
from assistant.index.library import LibraryIndex
from assistant.retrieval.retriever import Retriever

retriever = Retriever(LibraryIndex(Settings(_env_file=None, index={"dir": sys.argv[1]})))
out = []
for question in json.loads(sys.argv[2]):
    dense = retriever.candidates(question).dense
    out.append([[i, s] for i, s in zip(dense.ids, dense.scores)])
print(json.dumps(out))
"""


def _dense_lists(index_dir: Path, processes: int = 3) -> list[list[list[list[object]]]]:
    """Each fresh process's dense lists for QUESTIONS, the processes started together."""
    args = [sys.executable, "-c", WORKER, str(index_dir), json.dumps(QUESTIONS)]
    procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(processes)]
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr.decode()[-2000:]
        outputs.append(json.loads(stdout.decode().strip().splitlines()[-1]))
    return outputs


def _differing(lists: list[list[list[list[object]]]]) -> str:
    """'' when every process got the same lists, else how many questions differed."""
    differing = [q for n, q in enumerate(QUESTIONS) if any(other[n] != lists[0][n] for other in lists[1:])]
    return f"{len(differing)} of {len(QUESTIONS)} questions, e.g. {differing[:2]}" if differing else ""


def test_dense_scores_and_order_are_the_same_in_every_process(sample_settings: Settings) -> None:
    lists = _dense_lists(Path(sample_settings.index.dir))
    assert all(len(run[0]) == sample_settings.retrieval.candidates for run in lists)
    assert _differing(lists) == ""


def test_an_index_built_before_is_settled_by_the_next_ingest(sample_settings: Settings, tmp_path: Path) -> None:
    """A chunk collection as the previous release wrote it (default sync threshold, records left in Chroma's log):
    an ingest that finds nothing changed still leaves a graph every process loads alike."""
    import chromadb
    from chromadb.config import Settings as ChromaClientSettings

    from ingest.pipeline import IngestPipeline

    index_dir = tmp_path / "index"
    shutil.copytree(sample_settings.index.dir, index_dir)
    settings = sample_settings.model_copy(update={"index": IndexSettings(dir=index_dir)})
    name = settings.collection_name()
    client = chromadb.PersistentClient(
        path=str(index_dir / "chroma"), settings=ChromaClientSettings(anonymized_telemetry=False)
    )
    got = client.get_collection(name).get(include=["embeddings", "metadatas"], limit=100_000)
    client.delete_collection(name)
    legacy = client.create_collection(
        name, configuration={"hnsw": {"space": "cosine", "ef_search": 64}}, embedding_function=None
    )
    for start in range(0, len(got["ids"]), 60):  # several writes, as an ingest's flushes make them
        legacy.upsert(
            ids=got["ids"][start : start + 60],
            embeddings=got["embeddings"][start : start + 60],
            metadatas=got["metadatas"][start : start + 60],
        )

    report = IngestPipeline(settings).run(SAMPLE_LIBRARY)
    assert report.chunks_embedded == 0 and report.documents.get("unchanged")

    assert _differing(_dense_lists(index_dir)) == ""


def test_equal_scores_come_in_id_order_whatever_order_they_were_written_in(tmp_path: Path) -> None:
    """Identical texts have identical vectors; their order must not be the order the graph was built in."""
    import numpy as np
    from conftest import make_settings

    from assistant.core.types import Chunk, Location
    from assistant.index.store import VectorStore

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((40, 384)).astype(np.float32)
    vectors[:3] = vectors[0]  # three copies of one passage
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = ["c-zulu", "c-mike", "c-alpha", *(f"c-other-{n:02d}" for n in range(37))]
    where = Location(course_id="c", course_title="C", module="m.md", module_title="M")
    chunks = [Chunk(id=i, text=i, location=where, ordinal=n, tokens=1, content_hash=i) for n, i in enumerate(ids)]
    store = VectorStore(make_settings(tmp_path))
    store.upsert(chunks, vectors)
    hits = store.query(vectors[0], 5)
    assert [cid for cid, _ in hits[:3]] == ["c-alpha", "c-mike", "c-zulu"]
    assert len({score for _, score in hits[:3]}) == 1
