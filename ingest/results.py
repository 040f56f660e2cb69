"""What happened to one file during an ingest (shared by discovery and the pipeline)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

FileStatus = Literal["added", "updated", "unchanged", "removed", "failed"]


class FileResult(BaseModel):
    """What happened to one file."""

    path: str = Field(description="Path relative to the library folder.")
    course_id: str | None = None
    status: FileStatus
    reason: str | None = Field(default=None, description="Machine-readable failure code, e.g. 'encrypted'.")
    message: str | None = None
    fix: str | None = None
    chunks: int = 0
    chunks_embedded: int = Field(default=0, description="New chunks run through the embedding model.")
    chunks_reused: int = Field(
        default=0, description="New chunks whose embedded text was already indexed (moved, re-paged, duplicated)."
    )
    chunks_deleted: int = 0
    warnings: list[str] = Field(default_factory=list)
