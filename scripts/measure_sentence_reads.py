"""Cost of reading a question's candidates' sentence vectors from the ledger, and their size, at scale.

    .venv/bin/python scripts/measure_sentence_reads.py --chunks 100000                      # SQLite
    .venv/bin/python scripts/measure_sentence_reads.py --chunks 100000 \
        --postgres postgresql://postgres@127.0.0.1:5432/test                               # PostgreSQL

Writes `--chunks` rows of `--sentences` random int8 sentence vectors each (384 dimensions) into a throwaway ledger
(a temp SQLite file, or a schema dropped afterwards), then times `SentenceStore.sentences(ids)` and
`best_cosine(query, ids)` for `--reads` random draws of 30 chunk ids (what one question's candidates ask) and prints
p50/p95 in ms; then the seconds of listing every row's text key and of a sync that changes nothing (the end of an
ingest of an unchanged library); the bytes of the blobs and, on SQLite, the file's size.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from assistant.index.ledger.base import Ledger
from assistant.index.sentences import SENTENCES_VERSION, SentenceStore, encode_sentences

DIM = 384


def _fill(ledger: Ledger, chunks: int, sentences: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    ids = [f"chunk-{k:07d}" for k in range(chunks)]
    spans = [(40 * k, 40 * k + 39) for k in range(sentences)]
    for start in range(0, chunks, 5000):
        rows = []
        for cid in ids[start : start + 5000]:
            vectors = rng.normal(size=(sentences, DIM)).astype(np.float32)
            dim, n, body = encode_sentences(spans, vectors)
            rows.append((cid, f"key-{cid}", SENTENCES_VERSION, dim, n, body))
        ledger.write_sentences(SENTENCES_VERSION, [], rows, [], 1)
    return ids


def _ms(times: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(times, 50)) * 1000, 3),
        "p95": round(float(np.percentile(times, 95)) * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--sentences", type=int, default=10, help="sentences per chunk")
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL: measure there instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ledger: Ledger
        if args.postgres:
            from assistant.index.ledger.postgres import PostgresLedger

            ledger = PostgresLedger(args.postgres, "sentence-reads", f"measure_{uuid.uuid4().hex[:8]}")
        else:
            from assistant.index.ledger.sqlite import SqliteLedger

            ledger = SqliteLedger(Path(tmp) / "ledger.sqlite", "sentence-reads")
        try:
            started = time.perf_counter()
            ids = _fill(ledger, args.chunks, args.sentences)
            write_s = time.perf_counter() - started
            store = SentenceStore(ledger)
            rng = np.random.default_rng(1)
            query = rng.normal(size=DIM).astype(np.float32)
            read, best = [], []
            for _ in range(args.reads):
                pick = [ids[i] for i in rng.choice(len(ids), size=30, replace=False)]
                t0 = time.perf_counter()
                got = store.sentences(pick)
                t1 = time.perf_counter()
                scores = store.best_cosine(query, pick)
                t2 = time.perf_counter()
                assert len(got) == 30 and not np.isnan(scores).any()
                read.append(t1 - t0)
                best.append(t2 - t1)
            t0 = time.perf_counter()
            keys = store.chunk_keys()
            keys_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            store.sync(keys, {}, 2)  # what the end of an ingest that changed nothing does
            sync_s = time.perf_counter() - t0
            rows, sentences, blob_bytes = ledger.sentence_totals()
            out = {
                "backend": ledger.backend,
                "chunks": rows,
                "sentences": sentences,
                "write_s": round(write_s, 1),
                "sentences_ms": _ms(read),
                "best_cosine_ms": _ms(best),
                "chunk_keys_s": round(keys_s, 3),
                "unchanged_sync_s": round(sync_s, 3),
                "blob_bytes": blob_bytes,
            }
            if not args.postgres:
                ledger.close()
                out["file_bytes"] = (Path(tmp) / "ledger.sqlite").stat().st_size
            else:
                row = ledger._execute("SELECT pg_total_relation_size('sentences')").fetchone()
                out["table_bytes"] = int(row[0])
            print(json.dumps(out))
        finally:
            if args.postgres:
                ledger.drop_schema()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
