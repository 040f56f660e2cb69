"""Chroma server mode: copying an embedded index's vectors to a running `chroma run` server."""

from __future__ import annotations

import time

import numpy as np

from assistant.core.settings import Settings


def copy_to_server(embedded: Settings, server: Settings, page: int = 5000) -> float:
    """Copy the embedded collection's vectors and metadata to the server (no re-embedding); seconds."""
    from assistant.index.store import VectorStore

    started = time.perf_counter()
    source = VectorStore(embedded)
    target = VectorStore(server)
    target.drop()
    offset = 0
    while True:
        got = source.collection.get(include=["embeddings", "metadatas"], limit=page, offset=offset)
        ids = got["ids"]
        if not ids:
            break
        for start in range(0, len(ids), 2000):
            end = start + 2000
            target.collection.add(
                ids=ids[start:end],
                embeddings=np.asarray(got["embeddings"][start:end], dtype=np.float32),
                metadatas=got["metadatas"][start:end],
            )
        offset += len(ids)
        if len(ids) < page:
            break
    return time.perf_counter() - started
