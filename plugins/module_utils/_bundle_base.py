# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bundle format v1: the error type, names, constants and small file helpers shared by ``_bundle*``.

Private to this collection: not a public API, may change without notice. Import the public names from
``_bundle``; see docs/bundle-format.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError

FORMAT_NAME = "deploy2standalone-bundle"
FORMAT_VERSION = "1.0"
SUPPORTED_MAJOR = 1
SUPPORTED_MINOR = 0

MANIFEST_NAME = "manifest.json"
VOLATILE_NAME = "manifest.volatile.json"
CHECKSUMS_NAME = "checksums.sha256"
SIGNATURE_NAME = "manifest.sig"
BLOB_DIR = "blobs/sha256"
# Files every bundle has at its root, in archive order; the signature is optional.
CONTROL_FILES = (CHECKSUMS_NAME, MANIFEST_NAME, VOLATILE_NAME, SIGNATURE_NAME)
# Covered by checksums.sha256 (the checksum list never lists itself or the signature).
CHECKSUMMED_CONTROL_FILES = (MANIFEST_NAME, VOLATILE_NAME)

CHUNK_SIZE = 1024 * 1024
DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_MAX_NAME = 4096
_MAX_COMPONENT = 255


class BundleError(ClearmlModuleError):
    """Every failure of the bundle library: a readable message that names the file or field.

    A ``ClearmlModuleError``, so a module's ``main()`` reports it with ``fail_json`` like any other
    core error. ``problems`` lists every finding when there are several (verification).
    """

    def __init__(self, msg: str, *, problems: list[str] | None = None, **result: Any) -> None:
        if problems:
            result["problems"] = problems
        super().__init__(msg, **result)
        self.problems = problems or []


def is_digest(value: object) -> bool:
    """True for a lower-case hex sha256 digest (the name of a blob)."""
    return isinstance(value, str) and DIGEST_RE.fullmatch(value) is not None


def check_digest(value: object, what: str = "digest") -> str:
    if not is_digest(value):
        raise BundleError(f"invalid {what} {value!r}: expected 64 lower-case hex characters (sha256)")
    return value  # type: ignore[return-value]


def blob_relpath(digest: str) -> str:
    """Path of a blob inside a bundle or store: ``blobs/sha256/<digest>``."""
    return f"{BLOB_DIR}/{check_digest(digest)}"


def check_relpath(name: object, what: str = "path", *, allow_colon: bool = True) -> str:
    """Validate a relative path taken from an archive or a manifest; return it unchanged.

    Rejected: non-strings, empty names, absolute paths, backslashes, ``.`` or ``..`` components, empty
    components (``a//b``, trailing ``/``), control characters and NUL, over-long names, and with
    ``allow_colon=False`` (archive members) colons. Dataset file names may carry colons (timestamps),
    so manifest paths allow them; site hosts are Linux.
    """
    if not isinstance(name, str) or not name:
        raise BundleError(f"invalid {what} {name!r}: empty or not a string")
    if len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME:
        raise BundleError(f"invalid {what} {name[:80]!r}...: longer than {_MAX_NAME} bytes")
    if name.startswith("/"):
        raise BundleError(f"invalid {what} {name!r}: absolute paths are not allowed")
    if "\\" in name:
        raise BundleError(f"invalid {what} {name!r}: backslashes are not allowed")
    if not allow_colon and ":" in name:
        raise BundleError(f"invalid {what} {name!r}: colons (drive letters, streams) are not allowed")
    if _CONTROL_CHARS.search(name):
        raise BundleError(f"invalid {what} {name!r}: control characters are not allowed")
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise BundleError(f"invalid {what} {name!r}: empty, '.' or '..' path components are not allowed")
        if len(part.encode("utf-8", "surrogateescape")) > _MAX_COMPONENT:
            raise BundleError(f"invalid {what} {name!r}: a component is longer than {_MAX_COMPONENT} bytes")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise BundleError(f"invalid {what} {name!r}: not valid UTF-8") from None
    return name


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8, no NaN/Infinity."""
    try:
        return json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise BundleError(f"cannot serialise to canonical JSON: {exc}") from None


def pretty_json(obj: Any) -> bytes:
    """The on-disk form of manifests: sorted keys, two-space indent, UTF-8, final newline."""
    try:
        text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise BundleError(f"cannot serialise to JSON: {exc}") from None
    return (text + "\n").encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_fileobj(fileobj: IO[bytes], chunk_size: int = CHUNK_SIZE) -> tuple[str, int]:
    """sha256 and size of the rest of a binary file object, read in chunks."""
    h = hashlib.sha256()
    size = 0
    while True:
        chunk = fileobj.read(chunk_size)
        if not chunk:
            break
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(sha256 hex digest, size) of a file, streamed in 1 MiB chunks."""
    with open(path, "rb") as f:
        return hash_fileobj(f)


def read_capped(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """Read a small control file whole, refusing anything over ``limit`` bytes."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise BundleError(f"{what} '{path}' is larger than {limit} bytes")
    return data


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or a new entry in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def summarize_problems(problems: Iterable[str], limit: int = 5) -> str:
    """Join the first ``limit`` problems into one message, with a count of the rest."""
    problems = list(problems)
    text = "; ".join(problems[:limit])
    if len(problems) > limit:
        text += f" (and {len(problems) - limit} more)"
    return text
