"""Hostile-package checks and bounded reads over a SCORM zip or an unpacked package folder.

Refused (LoaderError with a reason code, a message and a fix):
- ``unsafe_path``: a member with '..', an absolute or drive path, or a backslash path (zip-slip);
- ``symlink``: a member stored as a symbolic link (zip) or a link inside a package folder;
- ``too_many_files`` / ``too_large``: more members or more declared bytes than the caps;
- ``zip_bomb``: a member whose compression ratio is absurd, or that inflates to more than it declares
  (reads are counted as they happen and stop at the cap; Python's zipfile never inflates past the declared
  size and fails the CRC check instead, which is reported as the same reason).
Nothing is ever extracted to disk; members are read into memory one at a time, within the caps.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field

from assistant.core.errors import LoaderError

MB = 1024 * 1024
FIX_REEXPORT = "export the package again from the authoring tool (SCORM 1.2 or 2004 zip) and re-add it."
FIX_UNSAFE = "this archive is unsafe; ask its author for a clean export, and do not unzip it by hand."


class PackageLimits(BaseModel):
    """Caps applied to every package before and while it is read."""

    model_config = ConfigDict(frozen=True)

    max_files: int = Field(default=5000, gt=0, description="Most members in one package.")
    max_total_bytes: int = Field(default=500 * MB, gt=0, description="Most uncompressed bytes in one package.")
    max_member_bytes: int = Field(default=50 * MB, gt=0, description="Largest member that is read (text, data).")
    max_ratio: int = Field(default=200, gt=1, description="Largest compression ratio of a member over 1 MB.")


def safe_member_name(name: str) -> str | None:
    """The normalised posix member name, or None when it is absolute, has '..' or a drive letter."""
    if not name or "\\" in name or name.startswith("/") or "\x00" in name:
        return None
    parts = PurePosixPath(name).parts
    if any(p == ".." for p in parts) or (parts and ":" in parts[0]):
        return None
    return "/".join(p for p in parts if p not in ("", "."))


class PackageArchive:
    """Read-only view of a package (zip or folder) whose member names were all checked up front."""

    def __init__(self, path: Path, limits: PackageLimits | None = None) -> None:
        self.path = path
        self.limits = limits or PackageLimits()
        self.where = path.name
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, int] = {}  # name -> declared size
        self._read_total = 0
        if path.is_dir():
            self._scan_folder()
        else:
            self._scan_zip()

    # -- scanning ---------------------------------------------------------------------------------
    def _refuse(self, reason: str, message: str, fix: str = FIX_UNSAFE) -> LoaderError:
        return LoaderError(self.where, reason, message, fix)

    def _check_caps(self, count: int, total: int) -> None:
        if count > self.limits.max_files:
            raise self._refuse(
                "too_many_files",
                f"has {count:,} files, over the {self.limits.max_files:,} file limit.",
                "remove unused media from the course and export it again, or raise the limit.",
            )
        if total > self.limits.max_total_bytes:
            raise self._refuse(
                "too_large",
                f"expands to {total / MB:.1f} MB, over the {self.limits.max_total_bytes / MB:.0f} MB limit.",
                "remove or compress large media in the course and export it again.",
            )

    def _scan_zip(self) -> None:
        try:
            zf = zipfile.ZipFile(self.path)
            infos = zf.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            raise self._refuse("corrupt", f"is not a valid zip file ({exc}).", FIX_REEXPORT) from exc
        self._zip = zf
        self._check_caps(len(infos), sum(i.file_size for i in infos))
        for info in infos:
            name = safe_member_name(info.filename)
            if name is None:
                raise self._refuse("unsafe_path", f"contains the unsafe path '{info.filename}' (zip-slip).")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise self._refuse("symlink", f"contains the symbolic link '{info.filename}'.")
            if info.is_dir():
                continue
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > MB and ratio > self.limits.max_ratio:
                raise self._refuse(
                    "zip_bomb",
                    f"member '{info.filename}' declares {info.file_size / MB:.0f} MB at a {ratio:.0f}:1 "
                    "compression ratio (a zip bomb).",
                )
            self._members[name] = info.file_size

    def _scan_folder(self) -> None:
        root = self.path.resolve()
        total = 0
        for item in sorted(self.path.rglob("*")):
            rel = item.relative_to(self.path).as_posix()
            if item.is_symlink():
                raise self._refuse("symlink", f"contains the symbolic link '{rel}'.", "replace links with copies.")
            if not item.is_file():
                continue
            if not item.resolve().is_relative_to(root):
                raise self._refuse("unsafe_path", f"'{rel}' resolves outside the package folder.")
            size = item.stat().st_size
            total += size
            self._members[rel] = size
            self._check_caps(len(self._members), total)

    # -- reading ----------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self._members)

    def exists(self, name: str) -> bool:
        return name in self._members

    def read(self, name: str) -> bytes:
        """A member's bytes, bounded by the member and total caps as they are actually inflated."""
        if name not in self._members:
            raise LoaderError(f"{self.where}:{name}", "missing", "is not in the package.", FIX_REEXPORT)
        cap = min(self.limits.max_member_bytes, self.limits.max_total_bytes - self._read_total)
        if self._members[name] > cap:
            raise LoaderError(
                f"{self.where}:{name}",
                "too_large",
                f"is {self._members[name] / MB:.1f} MB, over the {cap / MB:.0f} MB limit for one file.",
                "split the content or remove the large file from the package.",
            )
        data = self._read_bounded(name, cap)
        self._read_total += len(data)
        return data

    def _read_bounded(self, name: str, cap: int) -> bytes:
        if self._zip is None:
            with (self.path / name).open("rb") as fh:
                data = fh.read(cap + 1)
        else:
            chunks: list[bytes] = []
            size = 0
            try:
                with self._zip.open(name) as fh:
                    while block := fh.read(64 * 1024):
                        size += len(block)
                        if size > cap:
                            break
                        chunks.append(block)
            except RuntimeError as exc:  # zipfile: "File ... is encrypted, password required"
                raise LoaderError(
                    f"{self.where}:{name}",
                    "encrypted",
                    "is encrypted; the package cannot be read.",
                    "export the package again without a password.",
                ) from exc
            except (zipfile.BadZipFile, EOFError, ValueError, OSError, NotImplementedError) as exc:
                raise LoaderError(
                    f"{self.where}:{name}",
                    "zip_bomb",
                    f"does not inflate to the size it declares ({exc}); the archive is damaged or forged.",
                    FIX_UNSAFE,
                ) from exc
            data = b"".join(chunks)
            size = max(size, len(data))
            if size > cap:
                data = data + b"x"  # over the cap: reported below
        if len(data) > cap:
            raise LoaderError(
                f"{self.where}:{name}",
                "zip_bomb",
                f"inflates past the {cap / MB:.0f} MB limit, more than it declares.",
                FIX_UNSAFE,
            )
        return data

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> PackageArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
