# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fileserver's storage: safe paths, durable writes, and a streaming multipart/form-data parser."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .util import fsync_dir

CHUNK = 1024 * 1024


class BadPath(ValueError):
    """The object path would leave the storage root or is otherwise unusable."""


class BadUpload(ValueError):
    """The request body is not the multipart upload we expect."""


def safe_path(root: Path, raw: str) -> Path:
    """Map an object path (raw, already percent-decoded) to a file under ``root``."""
    if "\x00" in raw:
        raise BadPath("NUL in path")
    parts = [p for p in raw.replace("\\", "/").split("/") if p]
    if not parts:
        raise BadPath("empty path")
    for part in parts:
        if part in (".", ".."):
            raise BadPath(f"path segment {part!r} is not allowed")
        if len(part.encode("utf-8")) > 255:
            raise BadPath("path segment longer than 255 bytes")
    return root.joinpath(*parts)


def object_name(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


class BodyReader:
    """Reads a request body of known length, or a chunked one."""

    def __init__(self, rfile: BinaryIO, length: int | None, chunked: bool) -> None:
        self.rfile = rfile
        self.remaining = length
        self.chunked = chunked
        self._chunk_left = 0
        self._done = False

    def read(self, size: int = CHUNK) -> bytes:
        if self._done:
            return b""
        if not self.chunked:
            if self.remaining is None:
                raise BadUpload("a Content-Length (or chunked transfer encoding) is required")
            if self.remaining <= 0:
                self._done = True
                return b""
            data = self.rfile.read(min(size, self.remaining))
            if not data:
                raise BadUpload("the client closed the connection before the end of the body")
            self.remaining -= len(data)
            return data
        if self._chunk_left == 0:
            line = self.rfile.readline(65537).strip()
            try:
                self._chunk_left = int(line.split(b";")[0], 16)
            except ValueError:
                raise BadUpload("bad chunked encoding") from None
            if self._chunk_left == 0:
                while self.rfile.readline(65537).strip():  # trailers
                    pass
                self._done = True
                return b""
        data = self.rfile.read(min(size, self._chunk_left))
        if not data:
            raise BadUpload("the client closed the connection in the middle of a chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self.rfile.readline(3)  # CRLF after the chunk
        return data

    def read_all(self, limit: int = 1 << 31) -> bytes:
        parts = []
        total = 0
        while True:
            data = self.read()
            if not data:
                return b"".join(parts)
            total += len(data)
            if total > limit:
                raise BadUpload("request body too large")
            parts.append(data)

    def drain(self) -> None:
        while self.read():
            pass


class DurableFile:
    """A file written in ``tmp_dir`` (same file system as the target), fsync'd and renamed into place on
    ``commit``: readers never see a partial file, and a crash leaves debris only in ``tmp_dir``."""

    def __init__(self, target: Path, tmp_dir: Path) -> None:
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
        self.handle = open(self.tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        self.size = 0

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.size += len(data)

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.target)
        fsync_dir(self.target.parent)

    def abort(self) -> None:
        try:
            self.handle.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def _parse_disposition(value: str) -> dict[str, str]:
    """Parameters of a Content-Disposition header (quoted values may hold ';')."""
    params: dict[str, str] = {}
    i = value.find(";")
    rest = value[i + 1 :] if i >= 0 else ""
    while rest:
        rest = rest.lstrip(" ;\t")
        if not rest:
            break
        eq = rest.find("=")
        if eq < 0:
            break
        key = rest[:eq].strip().lower()
        rest = rest[eq + 1 :].lstrip()
        if rest.startswith('"'):
            j, out = 1, []
            while j < len(rest):
                ch = rest[j]
                if ch == "\\" and j + 1 < len(rest):
                    out.append(rest[j + 1])
                    j += 2
                    continue
                if ch == '"':
                    break
                out.append(ch)
                j += 1
            params[key] = "".join(out)
            rest = rest[j + 1 :]
        else:
            end = rest.find(";")
            params[key] = (rest if end < 0 else rest[:end]).strip()
            rest = "" if end < 0 else rest[end:]
    return params


class _MultipartStream:
    """A buffer over the body that finds delimiters without holding more than a chunk in memory."""

    def __init__(self, reader: BodyReader, boundary: bytes) -> None:
        self.reader = reader
        self.delimiter = b"--" + boundary
        self.buffer = b""

    def fill(self) -> bool:
        data = self.reader.read()
        if not data:
            return False
        self.buffer += data
        return True

    def skip_preamble(self) -> None:
        while True:
            index = self.buffer.find(self.delimiter)
            if index >= 0:
                self.buffer = self.buffer[index + len(self.delimiter) :]
                return
            self.buffer = self.buffer[-len(self.delimiter) :]
            if not self.fill():
                raise BadUpload("no multipart boundary found in the body")

    def at_end(self) -> bool:
        """After a delimiter: ``--`` closes the body, CRLF starts another part."""
        while len(self.buffer) < 2 and self.fill():
            pass
        if self.buffer.startswith(b"--"):
            return True
        if self.buffer.startswith(b"\r\n"):
            self.buffer = self.buffer[2:]
        return False

    def part_headers(self) -> dict[str, str]:
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > 65536 or not self.fill():
                raise BadUpload("bad multipart part headers")
        raw, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        headers: dict[str, str] = {}
        for line in raw.decode("utf-8", "surrogateescape").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return headers

    def copy_part(self, sink: DurableFile | None) -> None:
        """Move the part's bytes (up to the next delimiter) into ``sink`` (None = discard)."""
        end_marker = b"\r\n" + self.delimiter
        keep = len(end_marker) - 1
        while True:
            index = self.buffer.find(end_marker)
            if index >= 0:
                if sink is not None:
                    sink.write(self.buffer[:index])
                self.buffer = self.buffer[index + len(end_marker) :]
                return
            if len(self.buffer) > keep:
                if sink is not None:
                    sink.write(self.buffer[:-keep])
                self.buffer = self.buffer[-keep:]
            if not self.fill():
                raise BadUpload("the multipart body ended in the middle of a part")


def parse_multipart(
    reader: BodyReader, boundary: bytes, open_part: Callable[[str], DurableFile | None]
) -> list[str]:
    """Stream each form-data part to the file ``open_part(name)`` returns; returns the part names."""
    stream = _MultipartStream(reader, boundary)
    saved: list[str] = []
    stream.skip_preamble()
    while not stream.at_end():
        params = _parse_disposition(stream.part_headers().get("content-disposition", ""))
        name = params.get("filename") or params.get("name") or ""
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        sink = open_part(name) if name else None
        try:
            stream.copy_part(sink)
        except BaseException:
            if sink is not None:
                sink.abort()
            raise
        if sink is not None:
            sink.commit()
            saved.append(name)
    reader.drain()
    return saved
