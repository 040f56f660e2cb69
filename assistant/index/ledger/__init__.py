"""The ingest ledger: one interface (`Ledger`), two implementations (SQLite by default, PostgreSQL when
COURSEPILOT_INDEX_DATABASE_URL is set). `open_ledger` picks one from the settings."""

from __future__ import annotations

from pathlib import Path

from assistant.core.settings import Settings
from assistant.index.ledger.base import Delta, DocumentRecord, IngestBusyError, Ledger

__all__ = ["Delta", "DocumentRecord", "IngestBusyError", "Ledger", "open_ledger"]


def open_ledger(settings: Settings, collection: str, folder: Path) -> Ledger:
    """The ledger of one collection: PostgreSQL when a ledger database URL is set, else SQLite under `folder`."""
    url = settings.index.database_url
    if url:
        from assistant.index.ledger.postgres import PostgresLedger

        return PostgresLedger(url.get_secret_value(), collection, settings.index.database_schema)
    from assistant.index.ledger.sqlite import SqliteLedger

    return SqliteLedger(folder / "ledger.sqlite", collection)
