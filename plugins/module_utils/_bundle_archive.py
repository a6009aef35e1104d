# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deterministic tar(+zstd) writing and safe, verifying archive reading.

Private to this collection: not a public API, may change without notice.

Writing: members sorted, mtime 0, uid/gid 0, empty owner names, modes 0644/0755, PAX format, one zstd
frame (level 3, checksum, no content size, zstd's multi-threaded mode, whose output does not depend on
the number of workers): identical input gives identical bytes (for a given zstd library version).

Reading never trusts the archive (CVE-2007-4559, CVE-2025-4517): only regular files, names validated
(no ``..``, absolute paths, backslashes, colons, control characters), no links, devices or FIFOs, no
duplicates, and when a list of expected files is given only those, each with its declared size checked
before any byte is read and its sha256 checked as it is written. Total size, member count and the
compression ratio are capped against bombs; a truncated archive or one without its end marker is
refused. Extraction goes into a fresh temporary directory beside the destination, which is renamed
into place only when everything checked out; on failure nothing is left behind. The input is only read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_base import (
    CHUNK_SIZE,
    BundleError,
    check_relpath,
    fsync_dir,
)

try:
    import zstandard
except ImportError:  # pragma: no cover - optional on site hosts; archives may be uncompressed
    HAS_ZSTD = False
    ZSTD_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_ZSTD = True
    ZSTD_IMPORT_ERROR = None

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_LEVEL = 3
COMPRESSIONS = ("zstd", "none")
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE)
_MAX_TRAILING = 1024 * 1024
# tarfile's read-ahead: small enough that a decompression error is reported with the member being read
_TAR_BUFSIZE = 64 * 1024
_END_MARKER = 2 * tarfile.BLOCKSIZE


@dataclass(frozen=True)
class ExtractLimits:
    """Caps applied while reading an archive.

    ``max_total_bytes``: total of member sizes (None: the free space of the destination filesystem
    when extracting, unlimited when only verifying). ``max_ratio``: decompressed/compressed bytes,
    checked once ``ratio_floor`` bytes were decompressed. ``max_control_bytes``: size of each control
    file (manifest, checksums, signature) read into memory.
    """

    max_total_bytes: int | None = None
    max_members: int = 1_000_000
    max_ratio: float = 1000.0
    ratio_floor: int = 1024 * 1024 * 1024
    max_control_bytes: int = 256 * 1024 * 1024


DEFAULT_LIMITS = ExtractLimits()


# ------------------------------------------------------------------------------------------------------
# Writing


class _HashingWriter:
    """Counts and hashes what goes to the archive file."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.size = 0
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


class _HashingReader:
    """Hashes a source file as tarfile copies it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        return data


def _normalised_info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = st.st_size
    info.mtime = 0
    info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_tar(
    members: Mapping[str, str | os.PathLike[str]] | Iterable[tuple[str, str | os.PathLike[str]]],
    dest: str | os.PathLike[str],
    compression: str = "zstd",
    *,
    level: int = ZSTD_LEVEL,
    sort_key: Callable[[str], Any] | None = None,
    expected: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write a deterministic archive of regular files; return ``{path, members, tar_bytes, size, sha256}``.

    ``members``: archive name → source file. Sources must be regular files (symlinks are refused).
    ``sort_key`` orders the members (default: by name). ``expected``: archive name → sha256; each
    source is hashed as it is copied and a mismatch aborts (``pack_bundle`` verifies on the fly).
    The archive is written beside ``dest`` and renamed into place when complete.
    """
    if compression not in COMPRESSIONS:
        raise BundleError(f"unknown compression {compression!r}; expected one of {', '.join(COMPRESSIONS)}")
    if compression == "zstd" and not HAS_ZSTD:
        raise BundleError(
            "zstd compression needs the Python package 'zstandard', which is not installed",
            exception=ZSTD_IMPORT_ERROR,
        )
    items = list(members.items()) if isinstance(members, Mapping) else list(members)
    seen: set[str] = set()
    for name, _src in items:
        check_relpath(name, "archive member name", allow_colon=False)
        if name in seen:
            raise BundleError(f"duplicate archive member name '{name}'")
        seen.add(name)
    items.sort(key=(lambda item: sort_key(item[0])) if sort_key else (lambda item: item[0]))

    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tar_bytes = 0
    try:
        with os.fdopen(fd, "wb") as raw:
            out = _HashingWriter(raw)
            compressor = None
            if compression == "zstd":
                # threads=-1: zstd's multi-threaded mode, whose output is the same for any number of
                # workers >= 1 (unlike threads=0); the worker also overlaps compression with our I/O.
                cctx = zstandard.ZstdCompressor(
                    level=level, write_checksum=True, write_content_size=False, threads=-1
                )
                compressor = cctx.stream_writer(out, closefd=False, write_size=CHUNK_SIZE)
                target: Any = compressor
            else:
                target = out
            with tarfile.open(fileobj=target, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK_SIZE) as tf:
                tf.copybufsize = CHUNK_SIZE
                for name, src in items:
                    _add_member(tf, name, src, expected)
                tar_bytes = tf.offset
            if compressor is not None:
                compressor.flush(zstandard.FLUSH_FRAME)
                compressor.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(dest.parent)
    return {
        "path": str(dest),
        "members": len(items),
        "tar_bytes": tar_bytes,
        "size": out.size,
        "sha256": out.sha.hexdigest(),
        "compression": compression,
    }


def _add_member(
    tf: tarfile.TarFile, name: str, src: str | os.PathLike[str], expected: Mapping[str, str] | None
) -> None:
    try:
        fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise BundleError(f"cannot read '{src}' for archive member '{name}': {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not _is_regular(st):
            raise BundleError(f"'{src}' (archive member '{name}') is not a regular file")
        reader = _HashingReader(f)
        try:
            tf.addfile(_normalised_info(name, st), reader)
        except OSError as exc:
            raise BundleError(f"'{src}' changed while it was archived as '{name}': {exc}") from None
        if expected is not None and name in expected and reader.sha.hexdigest() != expected[name]:
            raise BundleError(
                f"checksum mismatch for '{name}': the file hashes to {reader.sha.hexdigest()}, "
                f"checksums.sha256 says {expected[name]}"
            )


def _is_regular(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)


# ------------------------------------------------------------------------------------------------------
# Reading


class _CountingReader:
    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data

    def readinto(self, buf: Any) -> int:  # zstandard may prefer readinto
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


class _RatioGuard(_CountingReader):
    """The decompressed stream: counts bytes and enforces the compression-ratio cap."""

    def __init__(
        self, raw: Any, compressed: _CountingReader | None, limits: ExtractLimits, archive: str
    ) -> None:
        super().__init__(raw)
        self.compressed = compressed
        self.limits = limits
        self.archive = archive
        self.current = "(archive header)"

    def read(self, n: int = -1) -> bytes:
        data = super().read(n)
        if (
            self.compressed is not None
            and self.count > self.limits.ratio_floor
            and self.count > self.limits.max_ratio * max(self.compressed.count, 1)
        ):
            raise BundleError(
                f"archive '{self.archive}': compression ratio above {self.limits.max_ratio:g} while reading "
                f"'{self.current}' ({self.count} bytes from {self.compressed.count}); refusing a possible bomb"
            )
        return data


_READ_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, OSError, ValueError)
if HAS_ZSTD:
    _READ_ERRORS = (*_READ_ERRORS, zstandard.ZstdError)


class ArchiveReader:
    """Sequential, checked access to the members of a tar or tar+zstd archive (detected by content)."""

    def __init__(self, path: str | os.PathLike[str], limits: ExtractLimits | None = None) -> None:
        self.path = str(path)
        self.limits = limits or DEFAULT_LIMITS
        self.compressed = False
        self.members_seen = 0
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - owned by the reader, closed in close()
        except OSError as exc:
            raise BundleError(f"cannot open archive '{self.path}': {exc.strerror}") from None
        try:
            magic = self._file.read(4)
            self._file.seek(0)
            raw = _CountingReader(self._file)
            if magic == ZSTD_MAGIC:
                if not HAS_ZSTD:
                    raise BundleError(
                        f"archive '{self.path}' is zstd-compressed, but the Python package 'zstandard' is "
                        "not installed on this host",
                        exception=ZSTD_IMPORT_ERROR,
                    )
                self.compressed = True
                stream = zstandard.ZstdDecompressor().stream_reader(
                    raw, read_size=CHUNK_SIZE, read_across_frames=True, closefd=False
                )
                self._out = _RatioGuard(stream, raw, self.limits, self.path)
            else:
                self._out = _RatioGuard(raw, None, self.limits, self.path)
            try:
                self._tar = tarfile.open(fileobj=self._out, mode="r|", bufsize=_TAR_BUFSIZE)  # noqa: SIM115
            except _READ_ERRORS as exc:
                raise BundleError(
                    f"'{self.path}' is not a readable tar or tar+zstd archive (corrupt or truncated at its start): {exc}"
                ) from None
        except BaseException:
            self._file.close()
            raise

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, exc: BaseException) -> BundleError:
        return BundleError(
            f"archive '{self.path}' is corrupt or truncated while reading '{self._out.current}': {exc}"
        )

    def __iter__(self) -> Iterator[tuple[str, tarfile.TarInfo]]:
        """Yield ``(normalised name, member)``; a leading ``./`` is dropped, ``.`` itself skipped."""
        while True:
            try:
                member = self._tar.next()
            except BundleError:
                raise
            except _READ_ERRORS as exc:
                raise self._fail(exc) from None
            if member is None:
                return
            self.members_seen += 1
            if self.members_seen > self.limits.max_members:
                raise BundleError(f"archive '{self.path}' has more than {self.limits.max_members} members")
            name = member.name
            if name.startswith("./"):
                name = name[2:]
            if name in ("", ".") and member.isdir():
                continue
            self._out.current = name
            yield name, member

    def chunks(self, member: tarfile.TarInfo) -> Iterator[bytes]:
        """The data of the current member, in chunks of at most 1 MiB."""
        try:
            f = self._tar.extractfile(member)
            if f is None:
                raise BundleError(f"archive member '{self._out.current}' has no data")
            remaining = member.size
            while remaining > 0:
                chunk = f.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    raise EOFError("unexpected end of data")
                remaining -= len(chunk)
                yield chunk
        except BundleError:
            raise
        except _READ_ERRORS as exc:
            raise self._fail(exc) from None

    def finish(self) -> None:
        """After the last member: require the end-of-archive marker and no more than 1 MiB after it."""
        end = self._tar.offset
        self._out.current = "(end of archive)"
        try:
            while self._out.count - end <= _MAX_TRAILING and self._out.read(CHUNK_SIZE):
                pass
        except BundleError:
            raise
        except _READ_ERRORS as exc:
            raise self._fail(exc) from None
        if self._out.count < end + _END_MARKER:
            raise BundleError(f"archive '{self.path}' is truncated: the end-of-archive marker is missing")
        if self._out.count - end > _MAX_TRAILING:
            raise BundleError(f"archive '{self.path}' has unexpected data after its end-of-archive marker")


_REFUSED_TYPES: tuple[tuple[Callable[[tarfile.TarInfo], bool], Callable[[tarfile.TarInfo], str]], ...] = (
    (tarfile.TarInfo.issym, lambda m: f"symbolic link (to '{m.linkname}')"),
    (tarfile.TarInfo.islnk, lambda m: f"hard link (to '{m.linkname}')"),
    (lambda m: m.ischr() or m.isblk(), lambda m: "device file"),
    (tarfile.TarInfo.isfifo, lambda m: "FIFO"),
    (tarfile.TarInfo.isdir, lambda m: "directory"),
    (tarfile.TarInfo.issparse, lambda m: "sparse file"),
)


def describe_member_type(member: tarfile.TarInfo) -> str | None:
    """None for a regular file, else a readable reason why the member is refused."""
    if member.type in _REGULAR:
        return None
    for test, reason in _REFUSED_TYPES:
        if test(member):
            return reason(member)
    return f"entry of tar type {member.type!r}"


def read_control_members(
    path: str | os.PathLike[str],
    names: Iterable[str],
    *,
    first: str | None = None,
    limits: ExtractLimits | None = None,
) -> dict[str, bytes]:
    """Read the small named files of an archive (pass 1, before anything is extracted).

    When the first member is ``first`` and there are no directory entries (the order ``pack_bundle``
    writes), reading stops at the first member that is not one of ``names``; otherwise (archives made
    by other tools) the whole archive is scanned. Every member passes
    the same name and type checks as extraction, so a hostile archive fails here already.
    """
    limits = limits or DEFAULT_LIMITS
    wanted = set(names)
    found: dict[str, bytes] = {}
    ordered = None
    with ArchiveReader(path, limits) as reader:
        for name, member in reader:
            _check_member(reader, name, member, allow_dirs=True)
            if ordered is None:
                ordered = first is not None and name == first
            if member.isdir():  # our archives have no directory entries: another tool's order
                ordered = False
            if name in wanted and not member.isdir():
                if name in found:
                    raise BundleError(f"archive '{reader.path}': duplicate member '{name}'")
                if member.size > limits.max_control_bytes:
                    raise BundleError(
                        f"archive '{reader.path}': member '{name}' declares {member.size} bytes, more than "
                        f"the {limits.max_control_bytes} allowed for a control file"
                    )
                found[name] = b"".join(reader.chunks(member))
            elif ordered:
                break
            elif not member.isdir():
                for _chunk in reader.chunks(member):
                    pass
    return found


def _check_member(reader: ArchiveReader, name: str, member: tarfile.TarInfo, *, allow_dirs: bool) -> None:
    try:
        check_relpath(name, "archive member name", allow_colon=False)
    except BundleError as exc:
        raise BundleError(f"archive '{reader.path}': {exc.msg}") from None
    reason = describe_member_type(member)
    if reason is not None and not (allow_dirs and member.isdir()):
        raise BundleError(
            f"archive '{reader.path}': member '{name}' is a {reason}; only regular files are allowed"
        )


def scan_archive(
    path: str | os.PathLike[str],
    *,
    expected: Mapping[str, tuple[str | None, int | None]] | None,
    dest_dir: str | os.PathLike[str] | None = None,
    limits: ExtractLimits | None = None,
    file_mode: Callable[[str, tarfile.TarInfo], int] | None = None,
) -> dict[str, tuple[str, int]]:
    """Read every member, check it and hash it; write it under ``dest_dir`` when given.

    ``expected``: name → (sha256 or None, size or None). With it, any other name is refused, a
    declared size must match before any data is read, and the hash must match afterwards. Without it
    (generic archives), names and types are still checked and sizes capped. ``dest_dir`` must be a
    fresh empty directory owned by the caller. Returns name → (sha256, size) of the files read.
    Missing expected names are the caller's business (partial bundles).
    """
    scan = _Scan(
        expected, Path(dest_dir) if dest_dir is not None else None, limits or DEFAULT_LIMITS, file_mode
    )
    with ArchiveReader(path, scan.limits) as reader:
        for name, member in reader:
            _check_member(reader, name, member, allow_dirs=True)
            if member.isdir():
                scan.directory(reader, name)
            else:
                scan.file(reader, name, member)
        reader.finish()
    return scan.seen


class _Scan:
    """State of one pass over an archive (see ``scan_archive``)."""

    def __init__(
        self,
        expected: Mapping[str, tuple[str | None, int | None]] | None,
        dest: Path | None,
        limits: ExtractLimits,
        file_mode: Callable[[str, tarfile.TarInfo], int] | None,
    ) -> None:
        self.expected = expected
        self.dest = dest
        self.limits = limits
        self.file_mode = file_mode
        self.cap = limits.max_total_bytes
        if self.cap is None and dest is not None:
            self.cap = shutil.disk_usage(dest).free
        self.parents: set[str] = set()
        for name in expected or ():
            parts = name.split("/")
            self.parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
        self.seen: dict[str, tuple[str, int]] = {}
        self.dirs: set[str] = set()
        self.total = 0

    def directory(self, reader: ArchiveReader, name: str) -> None:
        if self.expected is not None and name not in self.parents:
            raise BundleError(
                f"archive '{reader.path}': unexpected directory '{name}' (no listed file lives in it)"
            )
        if name in self.seen:
            raise BundleError(f"archive '{reader.path}': '{name}' is both a file and a directory")
        self.dirs.add(name)
        if self.dest is not None and self.expected is None:
            _mkdirs(self.dest, name)

    def _declared(self, reader: ArchiveReader, name: str, member: tarfile.TarInfo) -> str | None:
        """Check name and declared size before any data is read; return the expected sha256."""
        if name in self.seen or name in self.dirs:
            raise BundleError(f"archive '{reader.path}': duplicate member '{name}'")
        want_sha = None
        if self.expected is not None:
            if name not in self.expected:
                raise BundleError(
                    f"archive '{reader.path}': unexpected member '{name}' (not listed in checksums.sha256)"
                )
            want_sha, want_size = self.expected[name]
            if want_size is not None and member.size != want_size:
                raise BundleError(
                    f"archive '{reader.path}': member '{name}' declares {member.size} bytes, "
                    f"the manifest says {want_size}"
                )
        self.total += member.size
        if self.cap is not None and self.total > self.cap:
            raise BundleError(
                f"archive '{reader.path}': member '{name}' takes the total past {self.cap} bytes "
                "(size cap or free space)"
            )
        return want_sha

    def file(self, reader: ArchiveReader, name: str, member: tarfile.TarInfo) -> None:
        want_sha = self._declared(reader, name, member)
        sha = hashlib.sha256()
        out = _open_new(self.dest, name) if self.dest is not None else None
        try:
            for chunk in reader.chunks(member):
                sha.update(chunk)
                if out is not None:
                    out.write(chunk)
            if out is not None:
                out.flush()
                os.fsync(out.fileno())
        finally:
            if out is not None:
                out.close()
        digest = sha.hexdigest()
        if want_sha is not None and digest != want_sha:
            raise BundleError(
                f"archive '{reader.path}': checksum mismatch for '{name}' "
                f"(content hashes to {digest}, expected {want_sha})"
            )
        if self.dest is not None:
            mode = (
                self.file_mode(name, member) if self.file_mode else (0o755 if member.mode & 0o111 else 0o644)
            )
            os.chmod(self.dest / name, mode)
        self.seen[name] = (digest, member.size)


def _mkdirs(root: Path, rel: str) -> Path:
    path = root
    for part in rel.split("/"):
        path = path / part
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            if path.is_symlink() or not path.is_dir():
                raise BundleError(f"cannot create directory '{rel}': a file is in the way") from None
    return path


def _open_new(root: Path, rel: str) -> IO[bytes]:
    parent = rel.rpartition("/")[0]
    if parent:
        _mkdirs(root, parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(root / rel, flags, 0o600)
    except OSError as exc:
        raise BundleError(f"cannot create '{rel}' in the extraction directory: {exc.strerror}") from None
    return os.fdopen(fd, "wb")


def fresh_dir_beside(dest: str | os.PathLike[str]) -> Path:
    """A new empty directory next to ``dest`` (same filesystem, so a rename can publish it)."""
    dest = Path(dest)
    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise BundleError(f"cannot create a working directory beside '{dest}': {exc.strerror}") from None


def publish_dir(tmp: Path, dest: str | os.PathLike[str]) -> None:
    """Rename a finished temporary directory to ``dest``, which must not exist.

    Files were fsynced as they were written; the directories are fsynced here, once, before the rename.
    """
    dest = Path(dest)
    if os.path.lexists(dest):
        raise BundleError(f"'{dest}' appeared while it was being written; refusing to replace it")
    for dirpath, _dirs, _files in os.walk(tmp):
        fsync_dir(dirpath)
    os.rename(tmp, dest)
    fsync_dir(dest.parent)


def remove_tree(path: Path) -> None:
    """Remove a working directory (cleanup on failure: never masks the error being raised)."""
    shutil.rmtree(path, ignore_errors=True)


def safe_extract(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    expected: Mapping[str, tuple[str | None, int | None]] | None = None,
    optional: Iterable[str] = (),
    limits: ExtractLimits | None = None,
    file_mode: Callable[[str, tarfile.TarInfo], int] | None = None,
) -> dict[str, Any]:
    """Extract an archive into the new directory ``dest`` (which must not exist), checking everything.

    With ``expected`` (name → (sha256, size)), exactly those files (minus any in ``optional``) must
    be present with those hashes and sizes; without, any regular files with safe names are accepted.
    Returns ``{dest, files: {name: [sha256, size]}, bytes, missing}``.
    """
    dest = Path(dest)
    if os.path.lexists(dest):
        raise BundleError(f"extraction destination '{dest}' already exists; refusing to overwrite it")
    optional = set(optional)
    if expected is not None:
        need = sum(size or 0 for name, (_sha, size) in expected.items() if name not in optional)
        free = shutil.disk_usage(dest.parent if dest.parent.exists() else Path.cwd()).free
        if need > free:
            raise BundleError(
                f"not enough space to extract '{archive}' into '{dest}': {need} bytes needed, {free} free"
            )
    tmp = fresh_dir_beside(dest)
    try:
        seen = scan_archive(archive, expected=expected, dest_dir=tmp, limits=limits, file_mode=file_mode)
        missing = sorted(set(expected or ()) - set(seen))
        fatal = [m for m in missing if m not in optional]
        if fatal:
            raise BundleError(
                f"archive '{archive}': missing file '{fatal[0]}'"
                + (f" and {len(fatal) - 1} more" if len(fatal) > 1 else ""),
                problems=[f"missing file '{m}'" for m in fatal],
            )
        publish_dir(tmp, dest)
    except BaseException:
        remove_tree(tmp)
        raise
    return {
        "dest": str(dest),
        "files": {name: [sha, size] for name, (sha, size) in sorted(seen.items())},
        "bytes": sum(size for _sha, size in seen.values()),
        "missing": missing,
    }
