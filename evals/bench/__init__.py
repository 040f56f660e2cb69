"""Performance benchmark: CoursePilot against a plain LangChain pipeline, everything measured in one run.

What is compared
----------------
* **CoursePilot**: `IngestPipeline` (structure-aware chunks of `chunking.size_tokens` cl100k tokens, incremental by
  content hash, Chroma + ledger + BM25) and `CoursePilot.ask` (hybrid retrieval + extractive answer).
* **Baseline**: the plain LangChain recipe. Files are read with CoursePilot's own loaders and each file's text is
  concatenated (section heading + text, sections joined by blank lines: "simple text extraction" that still reads
  PDF/DOCX/PPTX/HTML), split by `RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)`, and written to
  `langchain_chroma.Chroma`. Every ingest is a full rebuild: the collection is deleted and every chunk re-added.
  Its embeddings are the same all-MiniLM-L6-v2 model wrapped in a LangChain `Embeddings`, run by
  sentence-transformers on PyTorch (what `HuggingFaceEmbeddings` would run); CoursePilot uses the backend its
  settings name (`embedding.backend`), which the report records.

Libraries
---------
* the sample library (``settings.library.dir``, copied so that its edit never touches the original);
* synthetic libraries of about N chunks each (`sizes`), written by `generate_library`: course folders with a
  course.yaml and Markdown modules (H1, H2 sections, paragraphs) whose sentences are recombined from the sample
  library and the SciFact corpus, seeded, sized with the product's own chunk-packing rule.

Vectors at sizes the model cannot embed here
--------------------------------------------
MiniLM costs ~12 GFLOP per 256-token chunk; on a shared 2-core machine that is a few chunks per second, so a 100k
library cannot be embedded inside a benchmark. Libraries above `model_max_chunks` are therefore ingested with
**proxy vectors**: a chunk's vector is the normalised mean of the real model vectors of the pool passages its
sentences were drawn from (the pool is embedded by the real model first). Every other stage (loading, chunking,
ledger, BM25, Chroma writes and HNSW build) is the real code; query vectors always come from the real model. Rows
say which vectors they used (``vectors: model | proxy``); proxy-vector ingest rates exclude model inference and are
never compared with model rates. The re-ingest after one edit always embeds the changed chunks with the real model.

A real (onnx) library also stores one late-chunked vector per sentence, which the extractive answer can read instead
of embedding (``answer.stored_sentence_vectors=true``; off by default). A proxy library stores them too, for the same sentence spans, written by the real ingest
(`ProxyEmbedder.embed_with_spans` gives them; ingest's `SentenceUpdates.sync` calls `SentenceStore.sync`): a
sentence's proxy vector is the normalised mean of the real vector of the pool passage it came from and its chunk's
proxy vector (the context a late-chunked vector carries), plus a little seeded noise. Each synthetic library's
latency is measured twice on the same index: with the shipped setting (the best candidate sentences embedded),
then with the stored sentence vectors read (``answer.stored_sentence_vectors=true``; ``sentence_vectors`` on each row).

Definitions
-----------
* pages: PDF pages and PPTX slides as the loader counts them; any other file counts ``words / 500`` pages (so a
  Markdown page is ~500 words).
* latency: wall time of `CoursePilot.ask` (retrieval + extractive answer, no chat model), query-embedding cache
  off, after 5 warm-up questions; p50/p95 over `queries` distinct questions (golden questions + SciFact claims).
* memory: RSS high-water mark of this process (`getrusage(RUSAGE_SELF).ru_maxrss`), and the peak RSS sampled every
  0.1 s by psutil during each phase (the whole process, so phases include what earlier phases left allocated).
"""

from __future__ import annotations

from evals.bench.command import bench_command, main
from evals.bench.embedders import ProxyEmbedder
from evals.bench.library import TextPool, build_pool, edit_one_file, generate_library
from evals.bench.models import BenchReport, IngestRun, LatencyRun, ReingestRun, StartupRun, TargetCheck
from evals.bench.render import render_growth, render_markdown, render_table, write_plot
from evals.bench.run import run_bench
from evals.bench.targets import evaluate_targets, growth_table

__all__ = [
    "BenchReport",
    "IngestRun",
    "LatencyRun",
    "ProxyEmbedder",
    "ReingestRun",
    "StartupRun",
    "TargetCheck",
    "TextPool",
    "bench_command",
    "build_pool",
    "edit_one_file",
    "evaluate_targets",
    "generate_library",
    "growth_table",
    "main",
    "render_growth",
    "render_markdown",
    "render_table",
    "run_bench",
    "write_plot",
]
