"""H5P loader (.h5p): an H5P export is a zip with h5p.json and content/content.json at its root.

Read with the package reader's archive checks (zip-slip, symlinks, caps, zip bombs) and its H5P extractor
(text fields of the content, Course Presentation slides and Interactive Book chapters as sections).
"""

from __future__ import annotations

from pathlib import Path

from assistant.core.errors import LoaderError
from assistant.core.types import LoadedDocument
from ingest.loaders import LoaderLimits, pick_title, register


@register(".h5p")
def load_h5p(path: Path, limits: LoaderLimits) -> LoadedDocument:
    from ingest.packages.archive import PackageArchive, PackageLimits
    from ingest.packages.tools import FIX_NO_TEXT, h5p_document

    caps = PackageLimits(max_total_bytes=limits.max_decompressed_bytes, max_member_bytes=limits.max_file_bytes)
    with PackageArchive(path, caps) as archive:
        if not archive.exists("h5p.json"):
            raise LoaderError(str(path), "corrupt", "has no h5p.json at its root.", "export it from H5P again.")
        title, extracted = h5p_document(archive, "h5p.json")
    if not extracted.sections:
        raise LoaderError(str(path), "no_text", "the H5P content has no readable text.", FIX_NO_TEXT)
    return LoadedDocument(path=str(path), kind="h5p", title=pick_title(title, path=path), sections=extracted.sections)
