"""Every XML the ingester reads goes through defusedxml: DTDs, entities and external references are refused.

`parse_xml` parses one document; `check_office_xml` runs over every XML part of a DOCX/PPTX before
python-docx / python-pptx (lxml) see it, so a billion-laughs or external-entity part is refused up front.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from assistant.core.errors import LoaderError

FIX_XML = (
    "re-export the file from its authoring tool; XML with a DOCTYPE or entity declarations is refused "
    "because entity expansion can exhaust memory or read other files."
)


def parse_xml(data: bytes, where: str) -> Any:
    """The root Element of `data`, parsed with DTDs and entities forbidden."""
    import defusedxml.ElementTree as safe_et
    from defusedxml import DefusedXmlException

    try:
        return safe_et.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise LoaderError(where, "xml_entities", f"contains a DTD or entity declarations ({exc}).", FIX_XML) from exc
    except safe_et.ParseError as exc:
        raise LoaderError(
            where, "corrupt", f"is not well-formed XML ({exc}).", "re-export it from its authoring tool."
        ) from exc


def check_office_xml(path: Path, fix_corrupt: str) -> None:
    """Refuse an Office (zip) file whose XML parts declare a DTD or entities; run after check_zip."""
    where = str(path)
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.lower().endswith((".xml", ".rels")):
                continue
            try:
                parse_xml(zf.read(info), f"{where}:{info.filename}")
            except LoaderError as exc:
                if exc.reason == "xml_entities":
                    raise LoaderError(
                        where, "xml_entities", f"its part '{info.filename}' declares a DTD or entities.", FIX_XML
                    ) from exc
                raise LoaderError(
                    where, "corrupt", f"its part '{info.filename}' is not valid XML.", fix_corrupt
                ) from exc
