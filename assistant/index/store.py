"""The only module that imports chromadb: embedded PersistentClient by default, HttpClient when a host is set."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.core.errors import ConfigError, ServiceUnavailableError
from assistant.core.settings import Settings
from assistant.core.types import Chunk

log = logging.getLogger(__name__)

# Chroma caps one request's batch; staying well below it keeps server-mode requests small.
_WRITE_BATCH = 2000
# Collections of extra representations are named "<chunk collection>-<suffix>"; they are not other settings.
EXTRA_COLLECTION_SUFFIXES = ("-sections",)
# Chroma writes a collection's HNSW graph to disk only once `sync_threshold` records (default 1,000) were written
# since the last time. Records after that wait in its log, and every process that opens the collection inserts them
# into the graph again, in parallel, so each load built another graph and approximate search returned other
# candidates: 20 of 61 openstax questions got another dense top 100 in another process (the sample library, 398
# chunks and never written to disk, 20 of 60). Written after every write, the graph is the one the writer built,
# in every process that loads it (a write of 1 record costs ~85 ms more at 100k vectors, ~4 ms at 20k: the file).
SYNC_THRESHOLD = 1
_HNSW = {"space": "cosine", "ef_search": 64, "sync_threshold": SYNC_THRESHOLD}


class VectorStore:
    """A Chroma collection holding chunk vectors, named after the model and chunking that built it."""

    def __init__(self, settings: Settings, collection_name: str | None = None) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaClientSettings

        self.settings = settings
        self.collection_name = collection_name or settings.collection_name()
        client_settings = ChromaClientSettings(anonymized_telemetry=False)
        chroma = settings.chroma
        try:
            if chroma.host:
                headers = {"Authorization": f"Bearer {chroma.token.get_secret_value()}"} if chroma.token else None
                self.client: Any = chromadb.HttpClient(
                    host=chroma.host,
                    port=chroma.port,
                    ssl=chroma.ssl,
                    headers=headers,
                    tenant=chroma.tenant,
                    database=chroma.database,
                    settings=client_settings,
                )
                self.mode = "server"
            else:
                self.client = self._embedded_client()
                self.mode = "embedded"
        except Exception as exc:  # chromadb raises ValueError/ConnectionError variants
            if chroma.host:  # an unreachable server is a service outage (exit 3)
                raise ServiceUnavailableError(
                    f"Cannot open the Chroma store at {chroma.host}:{chroma.port}: {exc}.",
                    "start it with `chroma run --path DIR --port PORT`, or unset COURSEPILOT_CHROMA_HOST "
                    "to use the embedded store.",
                ) from exc
            store = Path(settings.index.dir) / "chroma"
            raise ConfigError(
                f"Cannot open the embedded vector store at {store}: {exc}.",
                f"the store is damaged: move the folder {store} aside (keep it for a bug report), then run "
                f"`coursepilot ingest --full {settings.library.dir}` to rebuild it from the course files.",
            ) from exc
        self._collection: Any = None
        self._settled = False  # this collection's graph is written after every write (see settle)
        self.reopens = 0  # how often the reader was opened again (a question seeing it move retrieves again)

    def _embedded_client(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaClientSettings

        path = Path(self.settings.index.dir) / "chroma"
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=ChromaClientSettings(anonymized_telemetry=False))

    def reopen(self, count: bool = True) -> None:
        """Embedded mode: open a new client, so that what another process wrote since is searched, or a folder
        replaced under this process (restored from a backup, say) is read as it is now.

        Chroma's embedded client loads a collection's HNSW index once per client system and never reloads it, so
        a running chat did not see what `coursepilot ingest` in another process wrote (count() and get() did:
        they read SQLite). Chroma keeps one system per folder for the whole process; that entry is dropped first,
        so the new client loads the index as it is now. Searches still running on the old client finish on it.
        A Chroma server needs none of this: it serves what was written.
        """
        self.reopens += count  # not counted when a writer reopens after changing the collection itself
        if self.mode == "embedded":
            self._new_system()
            log.info("reopened the embedded Chroma store to read what was written since")
        self._collection = None
        self._settled = False

    def _new_system(self) -> None:
        """Embedded mode: a client on a new Chroma system, which loads every collection as it is on disk now."""
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient._identifier_to_system.pop(self.client._identifier, None)
        self.client = self._embedded_client()
        self._collection = None

    def visible(self, ids: Sequence[str]) -> set[str]:
        """Which of these ids nearest-neighbour search can reach (a reader that missed an ingest cannot).

        Their stored vectors are fetched (`vectors`), which asks this reader's vector index itself: Chroma says
        "Error finding id" for an id that index never loaded. A lookup by id took 1.1 ms at 100k chunks; an
        id-filtered query, which this used to be, is a filtered graph search (60-100 ms).
        """
        if not ids:
            return set()
        try:
            return set(self.vectors(ids))
        except Exception as exc:  # Chroma says "Error finding id" when its reader lacks one
            log.debug("lookup by id failed: %s", exc)
            return set()

    @property
    def collection(self) -> Any:
        if self._collection is None:
            self._collection = self.client.get_or_create_collection(
                self.collection_name, configuration={"hnsw": dict(_HNSW)}, embedding_function=None
            )
        return self._collection

    def settle(self) -> bool:
        """Writers: make sure every process loads the same HNSW graph of this collection; True if it had to change.

        A collection made before SYNC_THRESHOLD was set (or by another client) is switched to it, and one of its
        records is written again as it is stored, so that the records still waiting in Chroma's log go into the
        graph file now rather than being inserted anew, differently, by each reader. Chroma's embedded system keeps
        the graph's writer with the threshold it was opened with, so that write goes through a new system. A
        Chroma server takes the new threshold when it next loads the collection. Runs once per store, before its
        first write; an ingest that wrote nothing calls it at the end (LibraryIndex.settle_vectors).
        """
        if self._settled:
            return False
        hnsw = (self.collection.configuration_json or {}).get("hnsw")
        changed = hnsw is not None and hnsw.get("sync_threshold") != SYNC_THRESHOLD
        if changed:
            import warnings

            with warnings.catch_warnings():  # Chroma's note on collections made without an embedding function
                warnings.filterwarnings("ignore", "legacy embedding function config", DeprecationWarning)
                self.collection.modify(configuration={"hnsw": {"sync_threshold": SYNC_THRESHOLD}})
            if self.mode == "embedded":
                self._new_system()
            collection = self.collection
            got = collection.get(limit=1, include=["embeddings", "metadatas"])
            if got["ids"]:
                metadata = (got["metadatas"] or [None])[0]
                collection.upsert(
                    ids=got["ids"],
                    embeddings=np.asarray(got["embeddings"], dtype=np.float32),
                    metadatas=[metadata] if metadata else None,
                )
            log.info("collection %s: its HNSW graph is now written after every write", self.collection_name)
        self._settled = True
        return changed

    def exists(self) -> bool:
        """Whether the collection for the current settings has been created."""
        names = {c if isinstance(c, str) else c.name for c in self.client.list_collections()}
        return self.collection_name in names

    def other_collections(self) -> list[str]:
        """CoursePilot collections built with other settings (to tell the user to re-ingest)."""
        names = [c if isinstance(c, str) else c.name for c in self.client.list_collections()]
        return [
            n
            for n in names
            if n.startswith("cp-") and n != self.collection_name and not n.endswith(EXTRA_COLLECTION_SUFFIXES)
        ]

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Write chunk vectors with the metadata that filters use.

        No documents: the ledger holds the text. Chroma keeps documents in a full-text index, and leaving them
        out made writes 3.7x faster (20k chunks: 1,581/s against 427/s).
        """
        self.settle()
        for start in range(0, len(chunks), _WRITE_BATCH):
            batch = chunks[start : start + _WRITE_BATCH]
            self.collection.upsert(
                ids=[c.id for c in batch],
                embeddings=np.ascontiguousarray(vectors[start : start + _WRITE_BATCH], dtype=np.float32),
                metadatas=[_metadata(c) for c in batch],
            )

    def upsert_vectors(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Write bare vectors by id (extra representations such as section headings carry no filter metadata)."""
        self.settle()
        for start in range(0, len(ids), _WRITE_BATCH):
            self.collection.upsert(
                ids=list(ids[start : start + _WRITE_BATCH]),
                embeddings=np.ascontiguousarray(vectors[start : start + _WRITE_BATCH], dtype=np.float32),
            )

    def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        self.settle()
        for start in range(0, len(ids), _WRITE_BATCH):
            self.collection.delete(ids=list(ids[start : start + _WRITE_BATCH]))

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by chunk id (ids the collection lacks are simply absent; a reader that missed an ingest
        raises for the ids it never loaded, see visible)."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), _WRITE_BATCH):
            got = self.collection.get(ids=list(ids[start : start + _WRITE_BATCH]), include=["embeddings"])
            for cid, vector in zip(got["ids"], got["embeddings"], strict=True):
                found[cid] = np.asarray(vector, dtype=np.float32)
        return found

    def all_ids(self) -> set[str]:
        ids: set[str] = set()
        offset = 0
        while True:
            got = self.collection.get(include=[], limit=10_000, offset=offset)
            ids.update(got["ids"])
            if len(got["ids"]) < 10_000:
                return ids
            offset += 10_000

    def count(self) -> int:
        return int(self.collection.count())

    def query(
        self,
        vector: np.ndarray,
        n: int,
        course_ids: Sequence[str] | None = None,
        levels: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        """Nearest chunks as (chunk id, cosine similarity), best first; equal scores in id order."""
        clauses: list[dict[str, Any]] = []
        if course_ids:
            clauses.append({"course_id": {"$in": list(course_ids)}})
        if levels:
            clauses.append({"level": {"$in": list(levels)}})
        where: dict[str, Any] | None = None
        if len(clauses) == 1:
            where = clauses[0]
        elif clauses:
            where = {"$and": clauses}
        # Chroma 1.x returns what it has when n exceeds the collection, so no count() round trip (16 ms at 100k).
        result = self.collection.query(
            query_embeddings=[vector.tolist()], n_results=n, where=where, include=["distances"]
        )
        ids = result["ids"][0]
        distances = result["distances"][0]
        hits = [(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]
        # Identical texts have identical vectors: their order must not depend on how the graph was walked.
        return sorted(hits, key=lambda hit: (-hit[1], hit[0]))

    def drop(self) -> None:
        """Delete the whole collection (used by --full rebuilds)."""
        if self.exists():
            self.client.delete_collection(self.collection_name)
        self._collection = None
        self._settled = False


def _metadata(chunk: Chunk) -> dict[str, str | int]:
    loc = chunk.location
    meta: dict[str, str | int] = {
        "course_id": loc.course_id,
        "module": loc.module,
        "section": " › ".join(loc.section),
        "level": chunk.level,
    }
    if loc.page is not None:
        meta["page"] = loc.page
    return meta
