"""Which packages to read this run: an unchanged package (same size and mtime as recorded) is not opened.

The ledger meta key ``package:<name>`` keeps the package's signature, course id and item failures, so an
unchanged package re-reports its failed items without being unzipped, and its course comes from the catalogue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from assistant.core.errors import LoaderError
from assistant.core.types import Course
from assistant.index.ledger import DocumentRecord, Ledger
from ingest.loaders import LoaderLimits
from ingest.packages.archive import FIX_REEXPORT, PackageLimits
from ingest.packages.course import PackageDoc, PackageFailure, find_packages, read_package, signature


@dataclass
class PackagePlan:
    name: str
    size: int
    mtime_ns: int
    course: Course | None = None
    unchanged: list[str] = field(default_factory=list)
    docs: list[PackageDoc] = field(default_factory=list)
    failures: list[PackageFailure] = field(default_factory=list)
    refused: bool = False  # the whole package was refused: keep what was indexed from it
    warnings: list[str] = field(default_factory=list)

    def rel(self, module: str) -> str:
        return f"{self.name}/{module}"


def _meta_key(name: str) -> str:
    return f"package:{name}"


def plan_packages(
    library: Path,
    ledger: Ledger,
    full: bool,
    limits: LoaderLimits,
    package_limits: PackageLimits | None = None,
) -> list[PackagePlan]:
    documents: dict[str, DocumentRecord] = ledger.documents()
    courses = ledger.courses()
    plans: list[PackagePlan] = []
    for package in find_packages(library):
        size, mtime = signature(package)
        plan = PackagePlan(name=package.name, size=size, mtime_ns=mtime)
        plans.append(plan)
        try:
            recorded = json.loads(ledger.get_meta(_meta_key(package.name)) or "{}")
        except json.JSONDecodeError:
            recorded = {}
        prefix = package.name + "/"
        previous = sorted(rel for rel in documents if rel.startswith(prefix))
        if (
            not full
            and previous
            and recorded.get("size") == size
            and recorded.get("mtime_ns") == mtime
            and recorded.get("course_id") in courses
        ):
            plan.course = courses[recorded["course_id"]]
            plan.unchanged = previous
            plan.failures = [PackageFailure(**f) for f in recorded.get("failures", [])]
            continue
        try:
            content = read_package(package, limits, package_limits)
        except LoaderError as exc:
            plan.refused = True
            plan.failures.append(PackageFailure("", exc.reason, exc.message, exc.fix or ""))
            continue
        except Exception as exc:  # never let one package stop the batch
            plan.refused = True
            reason = "unreadable" if isinstance(exc, OSError) else "corrupt"
            message = f"{package.name}: cannot be read ({type(exc).__name__}: {exc})."
            plan.failures.append(PackageFailure("", reason, message, FIX_REEXPORT))
            continue
        plan.course = content.course
        plan.docs = content.docs
        plan.failures = content.failures
        plan.warnings = content.warnings
    return plans


def remember(ledger: Ledger, plan: PackagePlan) -> None:
    """Record the signature once the package's documents are in the ledger (never for a refused package)."""
    if plan.refused or plan.course is None:
        return
    value = {
        "size": plan.size,
        "mtime_ns": plan.mtime_ns,
        "course_id": plan.course.id,
        "failures": [f.__dict__ for f in plan.failures],
    }
    ledger.set_meta(_meta_key(plan.name), json.dumps(value))
