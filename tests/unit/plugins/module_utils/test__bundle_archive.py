# SPDX-License-Identifier: GPL-3.0-or-later
"""Archives: deterministic tar+zstd, round trips, and every class of hostile or broken archive refused."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from d2s_testlib import bundle_sample

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle import (
    BundleError,
    ExtractLimits,
)

sample = bundle_sample()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample.build_bundle(tmp_path_factory.mktemp("built"))


@pytest.fixture(scope="module")
def members(built: Path) -> list[tuple[str, bytes]]:
    """The bundle's files in pack order (control files first): material for crafted archives."""
    names = [n for n in bundle.CONTROL_FILES if (built / n).is_file()]
    blobs = sorted(f"blobs/sha256/{p.name}" for p in (built / "blobs" / "sha256").iterdir())
    return [(n, (built / n).read_bytes()) for n in names + blobs]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, **attrs: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    for k, v in attrs.items():
        setattr(info, k, v)
    return info


def craft(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]], *, zstd: bool = False) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    if zstd:  # small blocks, so that a cut stream still yields the data before the cut
        out = io.BytesIO()
        writer = zstandard.ZstdCompressor(write_checksum=True).stream_writer(out, closefd=False)
        for i in range(0, len(raw), 8192):
            writer.write(raw[i : i + 8192])
            writer.flush(zstandard.FLUSH_BLOCK)
        writer.flush(zstandard.FLUSH_FRAME)
        raw = out.getvalue()
    path.write_bytes(raw)
    return path


def regular(entries: list[tuple[str, bytes]]) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [(_info(n, len(d)), d) for n, d in entries]


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


# -- writing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_pack_is_byte_identical_whatever_the_metadata(tmp_path: Path, built: Path, compression: str) -> None:
    other = tmp_path / "copy"
    shutil.copytree(built, other)
    for i, path in enumerate(sorted(other.rglob("*"))):
        if path.is_file():
            path.chmod(0o600 if i % 2 else 0o640)
            os.utime(path, (1_000_000 + i, 2_000_000 + i))
    a = bundle.pack_bundle(built, tmp_path / "a.tar", compression=compression)
    b = bundle.pack_bundle(other, tmp_path / "b.tar", compression=compression)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert a["sha256"] == b["sha256"] == _sha(tmp_path / "a.tar")
    assert a["content_digest"] == bundle.load_bundle(built).manifest.content_digest


def test_pack_member_attributes_and_order(tmp_path: Path, built: Path) -> None:
    archive = tmp_path / "b.tar.zst"
    bundle.pack_bundle(built, archive)
    raw = zstandard.ZstdDecompressor().stream_reader(archive.read_bytes(), read_across_frames=False).read()
    # one zstd frame holds the whole tar: reading across frames gives nothing more
    assert (
        raw
        == zstandard.ZstdDecompressor().stream_reader(archive.read_bytes(), read_across_frames=True).read()
    )
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        infos = tf.getmembers()
    names = [i.name for i in infos]
    assert names[:3] == ["checksums.sha256", "manifest.json", "manifest.volatile.json"]
    assert names[3:] == sorted(names[3:])
    assert all((i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) == (0, 0, 0, "", "", 0o644) for i in infos)
    assert all(i.type == tarfile.REGTYPE for i in infos)


def test_write_tar_determinism_and_modes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "run.sh").write_bytes(b"#!/bin/sh\n")
    (src / "run.sh").chmod(0o700)
    (src / "data").write_bytes(os.urandom(3000))
    out = []
    for i in range(2):
        os.utime(src / "data", (i, i))
        dest = tmp_path / f"t{i}.tar.zst"
        bundle.write_tar({"z/data": src / "data", "a/run.sh": src / "run.sh"}, dest)
        out.append(dest.read_bytes())
    assert out[0] == out[1]
    with tarfile.open(fileobj=io.BytesIO(zstandard.ZstdDecompressor().stream_reader(out[0]).read())) as tf:
        assert [(m.name, m.mode) for m in tf.getmembers()] == [("a/run.sh", 0o755), ("z/data", 0o644)]


def test_write_tar_refuses_links_bad_names_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(BundleError, match="link"):
        bundle.write_tar({"link": tmp_path / "link"}, tmp_path / "out.tar")
    with pytest.raises(BundleError, match=r"invalid archive member name '\.\./x'"):
        bundle.write_tar({"../x": tmp_path / "target"}, tmp_path / "out.tar")
    with pytest.raises(BundleError, match="unknown compression"):
        bundle.write_tar({"x": tmp_path / "target"}, tmp_path / "out.tar", compression="gzip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]


def test_pack_refuses_a_damaged_bundle(tmp_path: Path, built: Path) -> None:
    work = tmp_path / "w"
    shutil.copytree(built, work)
    blob = next((work / "blobs" / "sha256").iterdir())
    blob.chmod(0o644)
    blob.write_bytes(b"corrupt")
    with pytest.raises(BundleError, match=f"checksum mismatch for 'blobs/sha256/{blob.name}'"):
        bundle.pack_bundle(work, tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists() and _leftovers(tmp_path) == []


def test_system_tools_read_the_archive(tmp_path: Path, built: Path) -> None:
    archive = tmp_path / "b.tar.zst"
    bundle.pack_bundle(built, archive)
    proc = subprocess.run(["tar", "--zstd", "-tf", str(archive)], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines()[0] == "checksums.sha256"
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(archive), "-C", str(out)], check=True)
    subprocess.run(["sha256sum", "--check", "--quiet", "checksums.sha256"], cwd=out, check=True)


# -- reading -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_round_trip_and_input_untouched(tmp_path: Path, built: Path, compression: str) -> None:
    archive = tmp_path / "b.tar"
    bundle.pack_bundle(built, archive, compression=compression)
    before = (archive.stat().st_mtime_ns, _sha(archive))
    verified = bundle.verify_bundle(archive)
    assert verified["type"] == "archive"
    assert verified["files"] == verified["blobs"] + 3
    result = bundle.unpack_bundle(archive, tmp_path / "out")
    assert (archive.stat().st_mtime_ns, _sha(archive)) == before
    assert result["content_digest"] == verified["content_digest"]
    assert bundle.verify_bundle(tmp_path / "out")["content_digest"] == verified["content_digest"]
    blob = next((tmp_path / "out" / "blobs" / "sha256").iterdir())
    assert blob.stat().st_mode & 0o777 == 0o444
    with pytest.raises(BundleError, match="already exists; refusing to overwrite"):
        bundle.unpack_bundle(archive, tmp_path / "out")


@pytest.mark.parametrize("zstd", [False, True], ids=["tar", "tar-zstd"])
def test_archives_made_by_gnu_tar_are_read(tmp_path: Path, built: Path, zstd: bool) -> None:
    archive = tmp_path / ("gnu.tar.zst" if zstd else "gnu.tar")
    cmd = ["tar", "-C", str(built), "-cf", str(archive), "."]
    subprocess.run([*cmd[:1], "--zstd", *cmd[1:]] if zstd else cmd, check=True)
    result = bundle.unpack_bundle(archive, tmp_path / "out")
    assert result["content_digest"] == bundle.load_bundle(built).manifest.content_digest


def test_partial_archive_with_a_store(tmp_path: Path, built: Path) -> None:
    digests = sorted(bundle.load_bundle(built).manifest.blobs)
    store = bundle.BlobStore(tmp_path / "store")
    for d in digests[:3]:
        store.put_file(built / "blobs" / "sha256" / d)
    partial = tmp_path / "partial"
    bundle.make_partial_bundle(built, store.digests(), partial)
    with pytest.raises(BundleError, match="missing file"):
        bundle.pack_bundle(partial, tmp_path / "p.tar.zst")
    bundle.pack_bundle(partial, tmp_path / "p.tar.zst", allow_partial=True)
    with pytest.raises(BundleError, match="missing file 'blobs/sha256/"):
        bundle.verify_bundle(tmp_path / "p.tar.zst")
    assert bundle.verify_bundle(tmp_path / "p.tar.zst", store=store)["from_store"] == 3
    with pytest.raises(BundleError, match="missing file 'blobs/sha256/"):
        bundle.unpack_bundle(tmp_path / "p.tar.zst", tmp_path / "fails")
    got = bundle.unpack_bundle(tmp_path / "p.tar.zst", tmp_path / "unpacked", store=store)
    assert sorted(got["missing_blobs"]) == digests[:3]
    assembled = bundle.assemble_bundle(tmp_path / "unpacked", store, tmp_path / "whole")
    assert assembled["from_store"] == 3
    assert _leftovers(tmp_path) == []


def _body(members: list[tuple[str, bytes]], name_prefix: str = "blobs/") -> tuple[str, bytes]:
    return next((n, d) for n, d in members if n.startswith(name_prefix))


Crafter = Callable[[list[tuple[str, bytes]], Path], tuple[Path, str]]


def _dotdot(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    return craft(tmp / "a.tar", [*regular(m), (_info("../evil", 4), b"evil")]), "'../evil'"


def _absolute(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    return craft(tmp / "a.tar", [*regular(m), (_info("/etc/cron.d/evil", 4), b"evil")]), "'/etc/cron.d/evil'"


def _backslash(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    return craft(tmp / "a.tar", [*regular(m), (_info("..\\evil", 4), b"evil")]), "backslashes"


def _symlink(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    name, _data = _body(m)
    entries = [e for e in regular(m) if e[0].name != name]
    entries.append((_info(name, kind=tarfile.SYMTYPE, linkname="/etc/passwd"), None))
    return craft(tmp / "a.tar", entries), f"'{name}' is a symbolic link"


def _hardlink(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    name, _data = _body(m)
    entries = [e for e in regular(m) if e[0].name != name]
    entries.append((_info(name, kind=tarfile.LNKTYPE, linkname="manifest.json"), None))
    return craft(tmp / "a.tar", entries), f"'{name}' is a hard link"


def _device(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    dev = _info("blobs/sha256/null", kind=tarfile.CHRTYPE, devmajor=1, devminor=3)
    return craft(tmp / "a.tar", [*regular(m), (dev, None)]), "'blobs/sha256/null' is a device file"


def _fifo(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    return craft(
        tmp / "a.tar", [*regular(m), (_info("pipe", kind=tarfile.FIFOTYPE), None)]
    ), "'pipe' is a FIFO"


def _duplicate(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    name, data = _body(m)
    return craft(tmp / "a.tar", [*regular(m), (_info(name, len(data)), data)]), f"duplicate member '{name}'"


def _extra(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    extra = "blobs/sha256/" + "0" * 64
    return craft(tmp / "a.tar", [*regular(m), (_info(extra, 3), b"abc")]), f"unexpected member '{extra}'"


def _missing(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    name, _data = _body(m)
    return craft(tmp / "a.tar", regular([e for e in m if e[0] != name])), f"missing file '{name}'"


def _flipped_bit(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    name, data = _body(m)
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0x10
    entries = [(n, bytes(bad) if n == name else d) for n, d in m]
    return craft(tmp / "a.tar", regular(entries)), f"checksum mismatch for '{name}'"


def _flipped_bit_zstd(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    path = craft(tmp / "a.tar.zst", regular(m), zstd=True)
    data = bytearray(path.read_bytes())
    data[len(data) * 3 // 4] ^= 0x10
    path.write_bytes(bytes(data))
    # zstd's own block/frame checks or our sha256, depending on where the bit lands; the archive is named
    return path, f"'{path}'"


def _truncated(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    path = craft(tmp / "a.tar", regular(m))
    big = max(m, key=lambda e: len(e[1]))
    data = path.read_bytes()
    cut = data.index(big[1]) + len(big[1]) // 2
    path.write_bytes(data[:cut])
    return path, f"truncated while reading '{big[0]}'"


def _truncated_zstd(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    path = craft(tmp / "a.tar.zst", regular(m), zstd=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path, "truncated while reading 'blobs/sha256/"


def _no_end_marker(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    path = craft(tmp / "a.tar", regular(m))
    data = path.read_bytes().rstrip(b"\0")
    path.write_bytes(data + b"\0" * (-len(data) % 512))
    return path, "end-of-archive marker is missing"


def _declared_size_bomb(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    name, data = _body(m)
    entries = [e for e in regular(m) if e[0].name != name]
    path = craft(tmp / "a.tar", entries)
    # a header claiming 10 GiB for a listed blob, followed by no data at all
    header = _info(name, 10 * 1024**3).tobuf(tarfile.PAX_FORMAT)
    raw = path.read_bytes().rstrip(b"\0")
    raw += b"\0" * (-len(raw) % 512)
    path.write_bytes(raw + header + b"\0" * 1024)
    return path, f"member '{name}' declares 10737418240 bytes, the manifest says {len(data)}"


def _control_too_big(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    entries = [(n, d + b" " * 70000 if n == "manifest.json" else d) for n, d in m]
    return craft(tmp / "a.tar", regular(entries)), "member 'manifest.json' declares"


def _not_an_archive(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    path = tmp / "a.tar"
    path.write_bytes(b"PK\x03\x04 this is a zip, not a tar" * 40)
    return path, "not a readable tar"


def _empty(m: list[tuple[str, bytes]], tmp: Path) -> tuple[Path, str]:
    path = tmp / "a.tar"
    path.write_bytes(b"")
    return path, "not a readable tar"


HOSTILE: list[Crafter] = [
    _dotdot,
    _absolute,
    _backslash,
    _symlink,
    _hardlink,
    _device,
    _fifo,
    _duplicate,
    _extra,
    _missing,
    _flipped_bit,
    _flipped_bit_zstd,
    _truncated,
    _truncated_zstd,
    _no_end_marker,
    _declared_size_bomb,
    _control_too_big,
    _not_an_archive,
    _empty,
]
LIMITS = ExtractLimits(max_control_bytes=64 * 1024)


@pytest.mark.parametrize("crafter", HOSTILE, ids=[f.__name__.strip("_") for f in HOSTILE])
def test_hostile_archives_are_refused(
    tmp_path: Path, members: list[tuple[str, bytes]], crafter: Crafter
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    path, message = crafter(members, src)
    before = (path.stat().st_mtime_ns, _sha(path))
    dest = tmp_path / "sites" / "bundle"
    dest.parent.mkdir()
    with pytest.raises(BundleError) as info:
        bundle.unpack_bundle(path, dest, limits=LIMITS)
    assert message in str(info.value) + " ".join(info.value.problems), str(info.value)
    assert list(dest.parent.iterdir()) == [], "something was left behind"
    assert (path.stat().st_mtime_ns, _sha(path)) == before, "the input was modified"
    with pytest.raises(BundleError) as info2:
        bundle.verify_bundle(path, limits=LIMITS)
    assert message in str(info2.value) + " ".join(info2.value.problems), str(info2.value)


def test_signature_is_checked_before_anything_is_extracted(tmp_path: Path, built: Path) -> None:
    archive = tmp_path / "b.tar.zst"
    bundle.pack_bundle(built, archive)
    priv, pub = tmp_path / "k", tmp_path / "k.pub"
    bundle.generate_keypair(priv, pub)
    dest = tmp_path / "site" / "bundle"
    dest.parent.mkdir()
    with pytest.raises(BundleError, match="is not signed"):
        bundle.unpack_bundle(archive, dest, require_signature=True, public_key=pub)
    assert list(dest.parent.iterdir()) == []


def test_not_enough_space_is_refused_up_front(
    tmp_path: Path, built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "b.tar"
    bundle.pack_bundle(built, archive, compression="none")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage._replace(free=1000))
    with pytest.raises(BundleError, match="not enough space"):
        bundle.unpack_bundle(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- generic archives (manifest_required=False) -----------------------------------------------------------


def test_generic_extraction_of_a_plain_archive(tmp_path: Path) -> None:
    src = tmp_path / "model"
    (src / "1").mkdir(parents=True)
    (src / "config.pbtxt").write_text('name: "m"\n')
    (src / "1" / "model.py").write_text("print(1)\n")
    archive = tmp_path / "m.tar"
    subprocess.run(["tar", "-C", str(src), "-cf", str(archive), "."], check=True)
    result = bundle.unpack_bundle(archive, tmp_path / "out", manifest_required=False)
    assert sorted(result["files"]) == ["1/model.py", "config.pbtxt"]
    assert (tmp_path / "out" / "1" / "model.py").read_text() == "print(1)\n"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([(_info("a", kind=tarfile.SYMTYPE, linkname="/etc"), None)], "'a' is a symbolic link"),
        ([(_info("a/../../b", 1), b"x")], "'a/../../b'"),
        ([(_info("a", 1), b"x"), (_info("a", 1), b"y")], "duplicate member 'a'"),
        ([(_info("a", 1), b"x"), (_info("a/b", 1), b"y")], "a file is in the way"),
    ],
    ids=["symlink", "dotdot", "duplicate", "file-as-directory"],
)
def test_generic_extraction_refusals(
    tmp_path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]], message: str
) -> None:
    archive = craft(tmp_path / "g.tar", entries)
    (tmp_path / "site").mkdir()
    with pytest.raises(BundleError, match=message):
        bundle.unpack_bundle(archive, tmp_path / "site" / "out", manifest_required=False)
    assert list((tmp_path / "site").iterdir()) == []


def test_compression_ratio_bomb_is_refused(tmp_path: Path) -> None:
    zeros = tmp_path / "zeros"
    with open(zeros, "wb") as f:
        f.truncate(16 * 1024 * 1024)
    archive = tmp_path / "bomb.tar.zst"
    bundle.write_tar({"payload": zeros}, archive)
    assert archive.stat().st_size < 16 * 1024
    limits = ExtractLimits(max_ratio=100, ratio_floor=1024 * 1024)
    (tmp_path / "site").mkdir()
    with pytest.raises(BundleError, match="compression ratio above 100 while reading 'payload'"):
        bundle.unpack_bundle(archive, tmp_path / "site" / "out", manifest_required=False, limits=limits)
    assert list((tmp_path / "site").iterdir()) == []
    with pytest.raises(BundleError, match="takes the total past 1000 bytes"):
        bundle.unpack_bundle(
            archive,
            tmp_path / "site" / "out",
            manifest_required=False,
            limits=ExtractLimits(max_total_bytes=1000),
        )
    with pytest.raises(BundleError, match="more than 0 members"):
        bundle.unpack_bundle(
            archive, tmp_path / "site" / "out", manifest_required=False, limits=ExtractLimits(max_members=0)
        )
