# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Content-addressed blob store: ``<root>/blobs/sha256/<digest>``.

Private to this collection: not a public API, may change without notice.

A bundle directory is a store (its blobs live under the same path), and so is each site host's
long-lived store that differential transfers fill. Writes hash the data while copying it into a
temporary file inside the store, fsync it and rename it into place: a blob is either complete under
its digest or absent; ``sync()`` after a batch makes the new names durable. Nothing is ever held whole in memory (1 MiB chunks). Blobs are made read-only
(0444) because they are shared by hard links between the store and assembled bundles.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_base import (
    BLOB_DIR,
    CHUNK_SIZE,
    BundleError,
    atomic_write_bytes,
    check_digest,
    fsync_dir,
    hash_file,
    is_digest,
)

BLOB_MODE = 0o444
_TMP_PREFIX = ".tmp-"


class BlobStore:
    """Blobs under ``<root>/blobs/sha256/``; ``root`` may be a bundle directory or a site store."""

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True, fsync: bool = True) -> None:
        self.root = Path(root)
        self.dir = self.root / BLOB_DIR
        self.fsync = fsync
        if create:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BundleError(
                    f"cannot create blob store directory '{self.dir}': {exc.strerror}"
                ) from None
        elif not self.dir.is_dir():
            raise BundleError(f"no blob store at '{self.root}' (missing directory '{self.dir}')")

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    # -- reading -------------------------------------------------------------------------------------

    def path_of(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it is present)."""
        return self.dir / check_digest(digest, "blob digest")

    def has(self, digest: str) -> bool:
        try:
            return self.path_of(digest).is_file()
        except BundleError:
            return False

    def size_of(self, digest: str) -> int:
        try:
            return self.path_of(digest).stat().st_size
        except FileNotFoundError:
            raise BundleError(f"blob {digest} is not in the store '{self.root}'") from None

    def open(self, digest: str) -> IO[bytes]:
        """Open a blob for reading (binary)."""
        try:
            return open(self.path_of(digest), "rb")
        except FileNotFoundError:
            raise BundleError(f"blob {digest} is not in the store '{self.root}'") from None

    def digests(self) -> list[str]:
        """Sorted digests of the blobs present (temporary files and stray names are ignored)."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if is_digest(n))

    def __iter__(self) -> Iterator[str]:
        return iter(self.digests())

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, str) and self.has(digest)

    def verify(self, digest: str) -> int:
        """Re-hash one blob; return its size, raise ``BundleError`` if it is missing or corrupt."""
        path = self.path_of(digest)
        try:
            actual, size = hash_file(path)
        except FileNotFoundError:
            raise BundleError(f"blob {digest} is not in the store '{self.root}'") from None
        if actual != digest:
            raise BundleError(f"blob '{path}' is corrupt: its content hashes to {actual}")
        return size

    # -- writing -------------------------------------------------------------------------------------

    def put_stream(self, fileobj: IO[bytes], *, expected_digest: str | None = None) -> tuple[str, int, bool]:
        """Copy a binary stream into the store; return ``(digest, size, written)``.

        ``written`` is False when the blob was already present (the copy is then discarded and nothing
        in the store changes). ``expected_digest`` makes a mismatch fatal before anything is stored.
        """
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self.dir)
        try:
            h = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = fileobj.read(CHUNK_SIZE)
                    if not chunk:
                        break
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                if self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            digest = h.hexdigest()
            if expected_digest is not None and digest != expected_digest:
                raise BundleError(f"content hashes to {digest}, expected {expected_digest}")
            final = self.dir / digest
            if final.is_file():
                os.unlink(tmp)
                return digest, size, False
            os.chmod(tmp, BLOB_MODE)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return digest, size, True

    def put_file(self, path: str | os.PathLike[str]) -> tuple[str, int, bool]:
        """Copy a file into the store (hash on write); see ``put_stream``."""
        try:
            with open(path, "rb") as f:
                return self.put_stream(f)
        except OSError as exc:
            raise BundleError(f"cannot add '{path}' to the blob store: {exc.strerror or exc}") from None

    def put_bytes(self, data: bytes) -> tuple[str, int, bool]:
        """Store a small in-memory value (JSON records); see ``put_stream``."""
        digest = hashlib.sha256(data).hexdigest()
        final = self.dir / digest
        if final.is_file():
            return digest, len(data), False
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                if self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            os.chmod(tmp, BLOB_MODE)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return digest, len(data), True

    def link_from(self, path: str | os.PathLike[str], digest: str) -> bool:
        """Add an already verified file as blob ``digest`` by hard link (copy across filesystems).

        The caller vouches for the content (it was hashed on the way in); returns True if added.
        """
        final = self.path_of(digest)
        if final.is_file():
            return False
        link_or_copy(path, final)
        return True

    def sync(self) -> None:
        """Make the names of the blobs added so far durable (one directory fsync for a batch of puts).

        Each blob's data is fsynced before its atomic rename, so a crash never leaves a partial blob
        under a digest; without ``sync()`` a crash may only forget recently added names (the blob is
        then sent again).
        """
        if self.fsync:
            fsync_dir(self.dir)

    def cleanup_temp(self, older_than: float = 3600.0) -> int:
        """Remove temporary files left by interrupted writes (older than ``older_than`` seconds)."""
        removed = 0
        now = time.time()
        try:
            entries = list(os.scandir(self.dir))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name.startswith(_TMP_PREFIX):
                try:
                    if now - entry.stat(follow_symlinks=False).st_mtime >= older_than:
                        os.unlink(entry.path)
                        removed += 1
                except OSError:
                    continue
        return removed


def link_or_copy(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> str:
    """Hard-link ``src`` to ``dest`` (which must not exist); copy when linking is impossible.

    Returns ``"link"`` or ``"copy"``. The copy goes through a temporary file and a rename.
    """
    try:
        os.link(src, dest)
        return "link"
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=dest.parent)
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, CHUNK_SIZE)
            fout.flush()
            os.fsync(fout.fileno())
        os.chmod(tmp, BLOB_MODE)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return "copy"


def read_digest_list(path: str | os.PathLike[str]) -> list[str]:
    """Read a site's digest list: one sha256 hex digest per line (blank lines and ``#`` comments ignored)."""
    digests = set()
    try:
        with open(path, encoding="ascii") as f:
            for number, raw in enumerate(f, 1):
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                if not is_digest(line):
                    raise BundleError(
                        f"digest list '{path}' line {number}: {line[:80]!r} is not a sha256 digest"
                    )
                digests.add(line)
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot read digest list '{path}': {exc}") from None
    return sorted(digests)


def write_digest_list(path: str | os.PathLike[str], digests: Iterable[str]) -> int:
    """Write a digest list atomically (sorted, one per line); return how many digests it holds."""
    unique = sorted({check_digest(d) for d in digests})
    atomic_write_bytes(path, "".join(d + "\n" for d in unique).encode("ascii"))
    return len(unique)
