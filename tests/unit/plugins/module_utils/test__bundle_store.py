# SPDX-License-Identifier: GPL-3.0-or-later
"""The content-addressed blob store: hash on write, dedup, atomicity, bounded memory, digest lists."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle import (
    BlobStore,
    BundleError,
    read_digest_list,
    write_digest_list,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_base import CHUNK_SIZE


class RecordingReader(io.RawIOBase):
    """A stream that records how much each read asked for (to prove chunked reading)."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self.buf = io.BytesIO(data)
        self.requests: list[int] = []
        self.fail_after = fail_after

    def read(self, n: int = -1) -> bytes:
        self.requests.append(n)
        if self.fail_after is not None and self.buf.tell() >= self.fail_after:
            raise OSError("connection reset")
        return self.buf.read(n)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_bytes_file_and_stream_dedup(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    data = os.urandom(3 * CHUNK_SIZE + 17)
    src = tmp_path / "src.bin"
    src.write_bytes(data)

    assert store.put_file(src) == (sha(data), len(data), True)
    blob = store.path_of(sha(data))
    before = blob.stat()
    assert store.put_stream(io.BytesIO(data)) == (sha(data), len(data), False)
    assert store.put_bytes(data) == (sha(data), len(data), False)
    after = blob.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns), "existing blob rewritten"
    assert blob.read_bytes() == data
    assert stat.S_IMODE(after.st_mode) == 0o444
    assert store.digests() == [sha(data)]
    assert os.listdir(store.dir) == [sha(data)], "temporary files left behind"


@pytest.mark.parametrize(
    "payload", [b"", b"x", b"a" * (CHUNK_SIZE + 1)], ids=["empty", "one-byte", "chunk-plus-one"]
)
def test_put_bytes_edge_sizes(tmp_path: Path, payload: bytes) -> None:
    store = BlobStore(tmp_path)
    digest, size, written = store.put_bytes(payload)
    assert (digest, size, written) == (sha(payload), len(payload), True)
    assert store.has(digest) and digest in store
    assert store.size_of(digest) == len(payload)
    with store.open(digest) as f:
        assert f.read() == payload
    assert store.verify(digest) == len(payload)


def test_stream_is_read_in_bounded_chunks(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    reader = RecordingReader(os.urandom(5 * CHUNK_SIZE))
    store.put_stream(reader)
    assert reader.requests, "nothing was read"
    assert all(0 < n <= CHUNK_SIZE for n in reader.requests), set(reader.requests)


def test_failed_stream_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(OSError, match="connection reset"):
        store.put_stream(RecordingReader(os.urandom(4 * CHUNK_SIZE), fail_after=2 * CHUNK_SIZE))
    assert os.listdir(store.dir) == []


def test_expected_digest_mismatch_stores_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(BundleError, match=f"expected {'0' * 64}"):
        store.put_stream(io.BytesIO(b"data"), expected_digest="0" * 64)
    assert os.listdir(store.dir) == []


def test_digests_ignore_temporary_and_stray_files(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    d, _s, _w = store.put_bytes(b"one")
    (store.dir / ".tmp-abandoned").write_bytes(b"half")
    (store.dir / "README").write_text("not a blob")
    assert store.digests() == [d]
    assert store.cleanup_temp(older_than=0) == 1
    assert not (store.dir / ".tmp-abandoned").exists()


def test_verify_detects_a_corrupt_blob(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    d, _s, _w = store.put_bytes(b"payload")
    path = store.path_of(d)
    path.chmod(0o644)
    path.write_bytes(b"pAyload")
    with pytest.raises(BundleError, match=f"blob '{path}' is corrupt"):
        store.verify(d)


@pytest.mark.parametrize("digest", ["../../etc/passwd", "A" * 64, "a" * 63, "", "a" * 64 + "/x"])
def test_invalid_digests_are_refused(tmp_path: Path, digest: str) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(BundleError, match="invalid blob digest"):
        store.path_of(digest)
    assert not store.has(digest)


def test_missing_blob_errors_name_the_digest(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    missing = "f" * 64
    for call in (store.open, store.size_of, store.verify):
        with pytest.raises(BundleError, match=missing):
            call(missing)


def test_store_without_create_requires_the_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no blob store"):
        BlobStore(tmp_path / "absent", create=False)


def test_put_file_missing_source_names_it(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"absent\.bin"):
        BlobStore(tmp_path / "s").put_file(tmp_path / "absent.bin")


def test_link_from_adds_by_hard_link(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    src = tmp_path / "verified.bin"
    src.write_bytes(b"verified elsewhere")
    d = sha(b"verified elsewhere")
    assert store.link_from(src, d) is True
    assert store.link_from(src, d) is False
    assert store.path_of(d).stat().st_ino == src.stat().st_ino


def test_digest_list_round_trip(tmp_path: Path) -> None:
    digests = [sha(b"b"), sha(b"a"), sha(b"a")]
    path = tmp_path / "digests.txt"
    assert write_digest_list(path, digests) == 2
    assert path.read_text().splitlines() == sorted({sha(b"a"), sha(b"b")})
    path.write_text("# site A\n\n" + path.read_text())
    assert read_digest_list(path) == sorted({sha(b"a"), sha(b"b")})
    path.write_text("not-a-digest\n")
    with pytest.raises(BundleError, match="line 1"):
        read_digest_list(path)
