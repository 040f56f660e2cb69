"""imsmanifest.xml (IMS Content Packaging as profiled by SCORM 1.2 and SCORM 2004 2nd-4th edition).

Read, namespace-agnostically (1.2 uses imscp_rootv1p1p2 / adlcp_rootv1p2 / IMS MD 1.2 'imsmd:lom';
2004 uses imscp_v1p1 / adlcp_v1p3 / IEEE LOM):
- ``metadata/schemaversion`` (the SCORM version), LOM inline or in the file ``adlcp:location`` names:
  general/title, general/description, general/keyword (skills), educational/typicalLearningTime (minutes;
  ISO 8601 ``PT1H30M`` or 1.2's ``hh:mm:ss``);
- the default ``organization`` (``organizations/@default``, else the first) and its ``item`` tree: titles,
  nesting and order; ``isvisible="false"`` items are skipped;
- each item's ``resource`` (``identifierref``): ``href`` and ``file/@href`` list, resolved against the
  ``xml:base`` of manifest, resources and resource. Query strings and fragments are dropped.
A path that is absolute, has '..' or a non-http scheme is refused (``outside_package``); http(s) hrefs are
external resources, reported per item. Sequencing, objectives and mastery scores are not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from assistant.core.errors import LoaderError
from ingest.packages.archive import FIX_REEXPORT, safe_member_name
from ingest.packages.xmlsafe import parse_xml

MANIFEST = "imsmanifest.xml"
FIX_OUTSIDE = "fix the manifest so every href points to a file inside the package, then export it again."


@dataclass
class Resource:
    identifier: str
    href: str | None
    files: list[str] = field(default_factory=list)
    external: str | None = None


@dataclass
class Item:
    identifier: str
    title: str
    resource: Resource | None = None
    children: list[Item] = field(default_factory=list)


@dataclass
class Metadata:
    title: str | None = None
    description: str | None = None
    keywords: list[str] = field(default_factory=list)
    minutes: int | None = None


@dataclass
class Manifest:
    version: str
    title: str
    items: list[Item]
    metadata: Metadata
    resources: dict[str, Resource]


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _kids(el: Any, name: str) -> list[Any]:
    return [c for c in el if _local(c.tag) == name]


def _kid(el: Any, *path: str) -> Any:
    for name in path:
        if el is None:
            return None
        found = _kids(el, name)
        el = found[0] if found else None
    return el


def _text(el: Any) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


def _attr(el: Any, name: str) -> str | None:
    for key, value in el.attrib.items():
        if _local(key) == name.lower():
            return str(value)
    return None


def _lang_text(el: Any) -> str:
    """LOM strings: 2004 '<string language=..>', 1.2 '<langstring xml:lang=..>'; the first one, or plain text."""
    if el is None:
        return ""
    for child in el.iter():
        if _local(child.tag) in ("string", "langstring") and _text(child):
            return _text(child)
    return _text(el)


_ISO = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_CLOCK = re.compile(r"^(\d+):(\d{2})(?::(\d{2})(?:\.\d+)?)?$")


def duration_minutes(value: str) -> int | None:
    """'PT1H30M' -> 90, '00:45:00' -> 45; None when unreadable or zero."""
    value = value.strip().upper()
    match = _ISO.match(value)
    if match and value != "P":
        y, mo, d, h, mi, s = (float(g) if g else 0.0 for g in match.groups())
        minutes = (((y * 365 + mo * 30 + d) * 24 + h) * 60) + mi + s / 60
    elif clock := _CLOCK.match(value):
        minutes = int(clock.group(1)) * 60 + int(clock.group(2)) + int(clock.group(3) or 0) / 60
    else:
        return None
    return max(1, round(minutes)) if minutes > 0 else None


def read_lom(root: Any) -> Metadata:
    """Title, description, keywords and typical learning time of a LOM element (or a tree containing one)."""
    lom = root if _local(root.tag) == "lom" else next((e for e in root.iter() if _local(e.tag) == "lom"), None)
    meta = Metadata()
    if lom is None:
        return meta
    general = _kid(lom, "general")
    if general is not None:
        meta.title = _lang_text(_kid(general, "title")) or None
        meta.description = _lang_text(_kid(general, "description")) or None
        meta.keywords = [k for k in (_lang_text(e) for e in _kids(general, "keyword")) if k]
    learning = _kid(lom, "educational", "typicallearningtime")
    if learning is not None:
        value = _text(_kid(learning, "duration")) or _text(_kid(learning, "datetime")) or _text(learning)
        meta.minutes = duration_minutes(value) if value else None
    return meta


def _join(base: str, href: str, where: str) -> tuple[str | None, str | None]:
    """(member name, external url) for href under base; refuses paths that leave the package."""
    parts = urlsplit(href.strip())
    if parts.scheme in ("http", "https"):
        return None, href.strip()
    if parts.scheme or parts.netloc:
        raise LoaderError(
            where, "outside_package", f"the manifest points to '{href}', outside the package.", FIX_OUTSIDE
        )
    joined = (base + unquote(parts.path)) if base else unquote(parts.path)
    name = safe_member_name(joined)
    if name is None:
        raise LoaderError(
            where, "outside_package", f"the manifest points to '{href}', outside the package.", FIX_OUTSIDE
        )
    return name, None


def _base(el: Any, inherited: str) -> str:
    value = _attr(el, "base")
    if not value:
        return inherited
    return inherited + (value if value.endswith("/") else value + "/")


def parse_manifest(data: bytes, where: str, read_member: Any = None) -> Manifest:
    """Parse imsmanifest.xml bytes; `read_member(name) -> bytes` reads adlcp:location metadata files."""
    root = parse_xml(data, f"{where}:{MANIFEST}")
    if _local(root.tag) != "manifest":
        raise LoaderError(where, "invalid_package", "imsmanifest.xml has no <manifest> root element.", FIX_REEXPORT)
    base = _base(root, "")
    metadata_el = _kid(root, "metadata")
    version_text = _text(_kid(metadata_el, "schemaversion")) if metadata_el is not None else ""
    namespaces = " ".join(str(e.tag) for e in root.iter()) + " " + " ".join(str(k) for k in root.attrib)
    if version_text:
        version = "2004 2nd Edition" if version_text.upper() == "CAM 1.3" else version_text
    else:
        version = "2004" if "adlcp_v1p3" in namespaces or "imscp_v1p1" in namespaces else "1.2"
    meta = Metadata()
    if metadata_el is not None:
        meta = read_lom(metadata_el)
        location = _text(_kid(metadata_el, "location"))
        if location and read_member is not None:
            name, _ = _join(base, location, where)
            if name is not None:
                located = read_lom(parse_xml(read_member(name), f"{where}:{name}"))
                meta = Metadata(
                    title=meta.title or located.title,
                    description=meta.description or located.description,
                    keywords=meta.keywords or located.keywords,
                    minutes=meta.minutes or located.minutes,
                )

    resources: dict[str, Resource] = {}
    resources_el = _kid(root, "resources")
    if resources_el is not None:
        rbase = _base(resources_el, base)
        for res in _kids(resources_el, "resource"):
            own = _base(res, rbase)
            href, external = _join(own, _attr(res, "href") or "", where) if _attr(res, "href") else (None, None)
            files = [n for f in _kids(res, "file") if (n := _join(own, _attr(f, "href") or "", where)[0])]
            ident = _attr(res, "identifier") or f"resource-{len(resources) + 1}"
            resources[ident] = Resource(identifier=ident, href=href, files=files, external=external)

    def item(el: Any) -> Item | None:
        if (_attr(el, "isvisible") or "true").lower() == "false":
            return None
        ref = _attr(el, "identifierref")
        node = Item(
            identifier=_attr(el, "identifier") or "",
            title=_text(_kid(el, "title")) or (_attr(el, "identifier") or "Untitled"),
            resource=resources.get(ref) if ref else None,
        )
        node.children = [c for c in (item(k) for k in _kids(el, "item")) if c is not None]
        return node

    organizations = _kid(root, "organizations")
    orgs = _kids(organizations, "organization") if organizations is not None else []
    default = _attr(organizations, "default") if organizations is not None else None
    org = next((o for o in orgs if _attr(o, "identifier") == default), orgs[0] if orgs else None)
    if org is not None:
        items = [c for c in (item(k) for k in _kids(org, "item")) if c is not None]
        title = _text(_kid(org, "title"))
    else:  # resource-only package: every resource with an href is an item
        items = [Item(r.identifier, r.identifier, r) for r in resources.values() if r.href or r.external]
        title = ""
    return Manifest(
        version=version,
        title=title or meta.title or "",
        items=items,
        metadata=meta,
        resources=resources,
    )
