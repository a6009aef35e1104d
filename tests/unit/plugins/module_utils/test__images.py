# SPDX-License-Identifier: GPL-3.0-or-later
"""module_utils._images without a daemon: ``docker save`` archives built here, in the legacy layout
(Docker < 25) and the OCI layout (Docker >= 25, and a containerd image store's), split into a small
content-addressed store and reassembled.

The archives follow what the daemon writes (moby image/tarexport/save.go): lexical member order, one
directory per v1 layer id with ``VERSION``/``json``/``layer.tar`` and symlinks for a layer already saved
(legacy); ``blobs/sha256/<hex>``, ``index.json`` with one descriptor per tag, ``manifest.json``,
``oci-layout`` and ``repositories`` (OCI). ``loadable()`` reads a reassembled archive the way ``docker
load`` does: manifest.json → config → layers whose sha256 are the config's diff_ids.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _images as images
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._images import ImageError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store:
    """The boundary this library is given: ``put_file``/``put_stream`` → (digest, size), ``blob_path``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.new: list[str] = []  # digests written, in order
        self.calls = 0

    def _keep(self, data_path: Path | None, data: bytes | None) -> tuple[str, int]:
        self.calls += 1
        content = data if data is not None else data_path.read_bytes()  # type: ignore[union-attr]
        digest = sha(content)
        if not (self.root / digest).exists():
            (self.root / digest).write_bytes(content)
            self.new.append(digest)
        return digest, len(content)

    def put_file(self, path: Path) -> tuple[str, int]:
        return self._keep(path, None)

    def put_stream(self, fileobj: io.BufferedIOBase) -> tuple[str, int, bool]:
        before = len(self.new)
        digest, size = self._keep(None, fileobj.read())
        return digest, size, len(self.new) > before  # the bundle store's 3-tuple is accepted too

    def blob_path(self, digest: str) -> Path:
        return self.root / digest


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def go_json(obj: Any, newline: bool = False) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + (b"\n" if newline else b"")


@dataclass
class Img:
    tags: list[str]
    layers: list[bytes]
    created: str = "2026-01-01T00:00:00Z"
    config: bytes = b""
    diff_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.diff_ids = ["sha256:" + sha(layer) for layer in self.layers]
        self.config = go_json(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": self.created,
                "config": {"Cmd": ["/bin/true"]},
                "rootfs": {"type": "layers", "diff_ids": self.diff_ids},
            }
        )

    @property
    def id(self) -> str:
        return "sha256:" + sha(self.config)


BASE_LAYER = layer_tar({"etc/os-release": b"NAME=test\n", "bin/tool": b"\x7fELF" + b"x" * 3000})
TOP_LAYER = layer_tar({"app/model.bin": os.urandom(5000)})
# Above _images._SMALL: goes through the store by stream / temporary file, not through memory.
BIG_LAYER = layer_tar({"data/big.bin": os.urandom(images._SMALL + 300_000)})


class TarBuilder:
    def __init__(self) -> None:
        self.entries: list[tuple[tarfile.TarInfo, bytes | None]] = []

    def dir(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        self.entries.append((info, None))

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        info.mtime = 1_700_000_000
        self.entries.append((info, data))

    def symlink(self, name: str, target: str) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        info.mode = 0o777
        self.entries.append((info, None))

    def build(self, sort: bool = True) -> bytes:
        entries = sorted(self.entries, key=lambda e: e[0].name) if sort else self.entries
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for info, data in entries:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()


def legacy_archive(*imgs: Img) -> bytes:
    """What Docker 20.10's ``docker save`` writes for ``imgs`` (one v1 dir per image and layer)."""
    tar = TarBuilder()
    manifest, repos = [], {}
    saved: dict[str, str] = {}  # diff id -> path of its layer.tar
    for img in imgs:
        tar.file(img.id[7:] + ".json", img.config)
        paths, parent = [], ""
        for i, (layer, diff_id) in enumerate(zip(img.layers, img.diff_ids, strict=True)):
            top = i == len(img.layers) - 1
            v1 = sha(f"{parent}|{diff_id}|{img.id if top else ''}".encode())
            tar.dir(v1 + "/")
            tar.file(v1 + "/VERSION", b"1.0")
            tar.file(v1 + "/json", go_json({"id": v1, "parent": parent} if parent else {"id": v1}))
            if diff_id in saved:
                tar.symlink(v1 + "/layer.tar", "../" + saved[diff_id])
            else:
                tar.file(v1 + "/layer.tar", layer)
                saved[diff_id] = v1 + "/layer.tar"
            paths.append(v1 + "/layer.tar")
            parent = v1
        entry = {"Config": img.id[7:] + ".json", "RepoTags": img.tags, "Layers": paths}
        if manifest and img.layers[0] == imgs[0].layers[0] and len(img.layers) > len(imgs[0].layers):
            entry["Parent"] = imgs[0].id
        manifest.append(entry)
        for tag in img.tags:
            repo, name = tag.rsplit(":", 1)
            repos.setdefault(repo, {})[name] = parent
    tar.file("manifest.json", go_json(manifest))
    if repos:
        tar.file("repositories", go_json(repos, newline=True))
    return tar.build()


def oci_archive(*imgs: Img, containerd: bool = False, full_manifest: bool = False) -> bytes:
    """What Docker >= 25 writes (``containerd=True``: a containerd image store's archive, no manifest.json).

    Docker 25's OCI manifest lists only foreign layers (``full_manifest=False``); manifest.json has them.
    """
    tar = TarBuilder()
    tar.dir("blobs/")
    tar.dir("blobs/sha256/")
    blobs: dict[str, bytes] = {}
    manifest, repos, descriptors = [], {}, []
    for img in imgs:
        for layer in img.layers:
            blobs[sha(layer)] = layer
        blobs[img.id[7:]] = img.config
        if not containerd:  # Docker 25 also writes each v1 layer config as a blob no index refers to
            v1 = go_json({"id": sha(img.config + b"v1"), "created": "1970-01-01T00:00:00Z"})
            blobs[sha(v1)] = v1
        layers = [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(x)}
            for d, x in zip(img.diff_ids, img.layers, strict=True)
        ]
        oci_manifest = go_json(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": img.id,
                    "size": len(img.config),
                },
                "layers": layers if (full_manifest or containerd) else [],
            }
        )
        blobs[sha(oci_manifest)] = oci_manifest
        for tag in img.tags:
            repo, name = tag.rsplit(":", 1)
            full = tag if "/" in repo else f"library/{tag}"
            descriptors.append(
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + sha(oci_manifest),
                    "size": len(oci_manifest),
                    "annotations": {
                        "io.containerd.image.name": f"docker.io/{full}",
                        "org.opencontainers.image.ref.name": name,
                    },
                }
            )
            repos.setdefault(repo, {})[name] = img.diff_ids[-1][7:]
        manifest.append(
            {
                "Config": "blobs/sha256/" + img.id[7:],
                "RepoTags": img.tags,
                "Layers": ["blobs/sha256/" + d[7:] for d in img.diff_ids],
            }
        )
    for digest, data in blobs.items():
        tar.file("blobs/sha256/" + digest, data)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": descriptors,
    }
    tar.file("index.json", go_json(index))
    tar.file("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    if not containerd:
        tar.file("manifest.json", go_json(manifest, newline=True))
        tar.file("repositories", go_json(repos, newline=True))
    return tar.build()


def read_tar(data: bytes) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar:
            content = tar.extractfile(info).read() if info.isreg() else None  # type: ignore[union-attr]
            out.append((info, content))
    return out


def resolved_files(data: bytes) -> list[tuple[str, bytes]]:
    """Regular members of an archive with links replaced by their targets' content, in order."""
    members = read_tar(data)
    files = {info.name: content for info, content in members if info.isreg()}
    out = []
    for info, content in members:
        if info.isreg():
            out.append((info.name, content))
        elif info.issym():
            target = os.path.normpath(os.path.join(os.path.dirname(info.name), info.linkname))
            out.append((info.name, files[target]))
    return out  # type: ignore[return-value]


def loadable(data: bytes) -> list[dict[str, Any]]:
    """Read an archive as ``docker load`` does; return its images as {id, tags, layers}."""
    files = dict(resolved_files(data))
    found = []
    if "manifest.json" in files:
        for entry in json.loads(files["manifest.json"]):
            config = files[entry["Config"]]
            diff_ids = json.loads(config)["rootfs"]["diff_ids"]
            layers = ["sha256:" + sha(files[p]) for p in entry["Layers"]]
            assert layers == diff_ids, "layers do not match the config's diff_ids"
            found.append(
                {"id": "sha256:" + sha(config), "tags": entry.get("RepoTags") or [], "layers": layers}
            )
    else:
        index = json.loads(files["index.json"])
        for desc in index["manifests"]:
            manifest = json.loads(files["blobs/sha256/" + desc["digest"][7:]])
            config = files["blobs/sha256/" + manifest["config"]["digest"][7:]]
            layers = [
                "sha256:" + sha(files["blobs/sha256/" + lay["digest"][7:]]) for lay in manifest["layers"]
            ]
            assert layers == json.loads(config)["rootfs"]["diff_ids"]
            name = desc["annotations"]["io.containerd.image.name"]
            found.append({"id": "sha256:" + sha(config), "tags": [name], "layers": layers})
    for digest_path, content in files.items():
        if digest_path.startswith("blobs/sha256/"):
            assert sha(content) == digest_path.rsplit("/", 1)[1]
    return found


def reassemble(record: dict[str, Any], store: Store) -> bytes:
    out = io.BytesIO()
    size = images.write_image_tar(record, store.blob_path, out)
    assert size == len(out.getvalue())
    return out.getvalue()


def split(data: bytes, store: Store, tmp_path: Path, **kw: Any) -> list[dict[str, Any]]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    records = images.split_save_stream(io.BytesIO(data), store.put_file, work, **kw)
    assert list(work.iterdir()) == [], "temporary member files left behind"
    return records


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


BASE = Img(["d2s/base:bookworm"], [BASE_LAYER])
APP = Img(["d2s/app:1", "d2s/app:latest"], [BASE_LAYER, TOP_LAYER], created="2026-01-02T00:00:00Z")


# ------------------------------------------------------------------------------------------- legacy layout


def test_legacy_single_image_round_trip(store: Store, tmp_path: Path) -> None:
    archive = legacy_archive(APP)
    [record] = split(archive, store, tmp_path)
    assert record["name"] == "d2s/app:1"
    assert record["id"] == APP.id
    assert record["alt_ids"] == []
    assert record["layout"] == images.LAYOUT_LEGACY
    assert record["repo_tags"] == APP.tags
    assert record["layers"] == APP.diff_ids
    # Every regular member, in archive order; directories are not members.
    assert [m["path"] for m in record["members"]] == [name for name, _ in resolved_files(archive)]
    assert record["size"] == sum(m["size"] for m in record["members"])
    for member in record["members"]:
        assert member["mode"] == 0o644
        assert store.blob_path(member["digest"]).stat().st_size == member["size"]
    rebuilt = reassemble(record, store)
    assert resolved_files(rebuilt) == resolved_files(archive)
    assert loadable(rebuilt) == [{"id": APP.id, "tags": APP.tags, "layers": APP.diff_ids}]


def test_legacy_two_images_share_a_layer_stored_once(store: Store, tmp_path: Path) -> None:
    archive = legacy_archive(BASE, APP)
    assert any(info.issym() for info, _ in read_tar(archive)), "the fixture must have docker's layer symlink"
    base, app = split(archive, store, tmp_path)
    assert (base["id"], app["id"]) == (BASE.id, APP.id)
    assert store.new.count(sha(BASE_LAYER)) == 1
    assert len(store.new) == len(set(store.new))
    # Nothing is stored that no record lists (the two-image manifest.json and repositories are not).
    assert set(store.new) == {m["digest"] for r in (base, app) for m in r["members"]}
    # The shared layer is one blob, listed by both records (the symlink became a regular member).
    base_layer = [m for m in base["members"] if m["digest"] == sha(BASE_LAYER)]
    app_layer = [m for m in app["members"] if m["digest"] == sha(BASE_LAYER)]
    assert len(base_layer) == len(app_layer) == 1
    assert base_layer[0]["path"] != app_layer[0]["path"]
    # Each record is a docker save of its image alone: its own manifest.json and repositories.
    for record, img in ((base, BASE), (app, APP)):
        rebuilt = reassemble(record, store)
        assert loadable(rebuilt) == [{"id": img.id, "tags": img.tags, "layers": img.diff_ids}]
        files = dict(resolved_files(rebuilt))
        [entry] = json.loads(files["manifest.json"])
        assert "Parent" not in entry
        assert sorted(json.loads(files["repositories"])) == sorted({t.rsplit(":", 1)[0] for t in img.tags})
        assert all(path in files for path in entry["Layers"])
        paths = [m["path"] for m in record["members"]]
        archive_order = [name for name, _ in resolved_files(archive)]
        assert paths == [p for p in archive_order if p in paths], "members keep the archive order"
    # The base record does not carry the app's layer or config.
    assert sha(TOP_LAYER) not in {m["digest"] for m in base["members"]}
    assert APP.id[7:] + ".json" not in {m["path"] for m in base["members"]}


def test_second_export_stores_nothing_new(store: Store, tmp_path: Path) -> None:
    archive = legacy_archive(BASE, APP)
    first = split(archive, store, tmp_path)
    written = list(store.new)
    second = split(archive, store, tmp_path)
    assert second == first
    assert store.new == written, "an earlier export's blobs are reused, not written again"
    # A later save of the app alone adds only its own manifest.json/repositories (the blobs are there).
    [alone] = split(legacy_archive(APP), store, tmp_path)
    assert {m["digest"] for m in alone["members"] if m["size"] > 1000} <= set(written)


def test_wanted_selects_and_names_records(store: Store, tmp_path: Path) -> None:
    archive = legacy_archive(BASE, APP)
    [record] = split(archive, store, tmp_path, wanted=[("my-app", APP.id)])
    assert record["name"] == "my-app"
    assert record["id"] == APP.id
    with pytest.raises(ImageError, match=r"image 'ghost' \(sha256:0+\) is not in the docker save archive"):
        split(archive, store, tmp_path, wanted=[("ghost", "sha256:" + "0" * 64)])


def test_large_member_goes_through_the_store_not_memory(store: Store, tmp_path: Path) -> None:
    img = Img(["big:1"], [BASE_LAYER, BIG_LAYER])
    for kw in ({}, {"put_stream": store.put_stream}):
        [record] = split(legacy_archive(img), store, tmp_path, **kw)
        assert sha(BIG_LAYER) in {m["digest"] for m in record["members"]}
        assert loadable(reassemble(record, store))[0]["layers"] == img.diff_ids


def test_put_stream_gives_the_same_records(tmp_path: Path) -> None:
    archive = legacy_archive(BASE, APP)
    by_file = split(archive, Store(tmp_path / "a"), tmp_path)
    streamed_store = Store(tmp_path / "b")
    by_stream = split(archive, streamed_store, tmp_path, put_stream=streamed_store.put_stream)
    assert by_stream == by_file


# ------------------------------------------------------------------------------------------------ OCI layout


@pytest.mark.parametrize("full_manifest", [False, True], ids=["docker25-foreign-only", "full-oci-manifest"])
def test_oci_single_image_round_trip(store: Store, tmp_path: Path, full_manifest: bool) -> None:
    archive = oci_archive(APP, full_manifest=full_manifest)
    [record] = split(archive, store, tmp_path)
    assert record["layout"] == images.LAYOUT_OCI
    assert record["id"] == APP.id
    assert record["repo_tags"] == APP.tags
    assert record["layers"] == APP.diff_ids
    assert len(record["alt_ids"]) == 1  # the OCI manifest a containerd store would call the image ID
    # One image: the archive is kept whole (also the v1 config blob no index refers to).
    assert [(m["path"]) for m in record["members"]] == [name for name, _ in resolved_files(archive)]
    rebuilt = reassemble(record, store)
    assert resolved_files(rebuilt) == resolved_files(archive)
    assert loadable(rebuilt) == [{"id": APP.id, "tags": APP.tags, "layers": APP.diff_ids}]


def test_oci_two_images_share_a_layer_stored_once(store: Store, tmp_path: Path) -> None:
    archive = oci_archive(BASE, APP)
    base, app = split(archive, store, tmp_path)
    assert store.new.count(sha(BASE_LAYER)) == 1
    # Docker 25's v1 layer configs and the two-image index files are listed by no record, nor stored.
    assert set(store.new) == {m["digest"] for r in (base, app) for m in r["members"]}
    for record, img in ((base, BASE), (app, APP)):
        rebuilt = reassemble(record, store)
        assert loadable(rebuilt) == [{"id": img.id, "tags": img.tags, "layers": img.diff_ids}]
        files = dict(resolved_files(rebuilt))
        index = json.loads(files["index.json"])
        assert [d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"]] == [
            t.rsplit(":", 1)[1] for t in img.tags
        ]
        assert "oci-layout" in files
        # Only blobs the image's index or manifest entry refers to: config, layers, its OCI manifest.
        blobs = {p for p in files if p.startswith("blobs/")}
        assert len(blobs) == 1 + len(img.layers) + 1
    assert base["alt_ids"] != app["alt_ids"]


def test_oci_containerd_store_archive_without_manifest_json(store: Store, tmp_path: Path) -> None:
    archive = oci_archive(BASE, APP, containerd=True)
    records = split(archive, store, tmp_path)
    assert [r["repo_tags"] for r in records] == [["d2s/base:bookworm"], ["d2s/app:1", "d2s/app:latest"]]
    base, app = records
    assert app["layers"] == APP.diff_ids
    # A containerd store reports the manifest digest as the image ID: it selects the image too.
    [by_alt] = split(archive, store, tmp_path, wanted=[("app", app["alt_ids"][0])])
    assert by_alt["id"] == APP.id
    rebuilt = reassemble(app, store)
    assert [i["id"] for i in loadable(rebuilt)] == [APP.id, APP.id]  # two tags, one image
    assert "manifest.json" not in dict(resolved_files(rebuilt))
    assert base["id"] == BASE.id


def test_docker_hub_names_are_shown_as_docker_does() -> None:
    assert images._familiar("docker.io/library/busybox:1") == "busybox:1"
    assert images._familiar("docker.io/d2s/base:bookworm") == "d2s/base:bookworm"
    assert images._familiar("registry.local:5000/x/y:2") == "registry.local:5000/x/y:2"


# ------------------------------------------------------------------------------------------ deterministic tar


def test_reassembled_archive_is_deterministic(store: Store, tmp_path: Path) -> None:
    [record] = split(legacy_archive(APP), store, tmp_path)
    record["members"][0]["mode"] = 0o600
    first, second = reassemble(record, store), reassemble(record, store)
    assert first == second
    infos = [info for info, _ in read_tar(first)]
    assert [i.name for i in infos] == [m["path"] for m in record["members"]]
    assert all(i.mtime == images.TAR_MTIME and i.uid == 0 and i.gid == 0 and i.isreg() for i in infos)
    assert all(i.uname == "" and i.gname == "" for i in infos)
    assert infos[0].mode == 0o600
    # The same bytes through a file descriptor (os.sendfile) as through a file object.
    with open(tmp_path / "x.tar", "wb") as out:
        size = images.write_image_tar(record, store.blob_path, out)
    assert (tmp_path / "x.tar").read_bytes() == first
    assert size == len(first)


def test_blob_shorter_than_recorded_fails_mid_stream(store: Store, tmp_path: Path) -> None:
    [record] = split(legacy_archive(APP), store, tmp_path)
    layer = store.blob_path(sha(TOP_LAYER))
    layer.write_bytes(TOP_LAYER[:1000])
    for out in (io.BytesIO(), open(tmp_path / "y.tar", "wb")):  # noqa: SIM115 - closed below
        with pytest.raises(
            ImageError, match=rf"blob {sha(TOP_LAYER)} \(.*/layer.tar\) ended after 1000 bytes"
        ):
            images.write_image_tar(record, store.blob_path, out)
        out.close()


# ----------------------------------------------------------------------------------------- broken archives


def _with(extra: list[tarfile.TarInfo], base: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
        if base:
            for info, data in read_tar(base):
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 1, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info


def _oci_with_bad_blob() -> bytes:
    tar = TarBuilder()
    tar.file("blobs/sha256/" + "a" * 64, b"not what the name says")
    tar.file("index.json", b'{"manifests":[]}')
    tar.file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    return tar.build()


def _legacy_without(path_suffix: str) -> bytes:
    tar = TarBuilder()
    for info, data in read_tar(legacy_archive(APP)):
        if info.name.endswith(path_suffix) and info.name != "manifest.json":
            continue
        tar.entries.append((info, data))
    return tar.build(sort=False)


BROKEN = {
    "not-a-tar": (b"this is not a tar archive" * 40, r"not a tar archive|truncated or corrupt"),
    "parent-escape": (_with([_info("../evil")]), r"unsafe member name '../evil'"),
    "absolute": (_with([_info("/etc/passwd")]), r"unsafe member name '/etc/passwd'"),
    "device": (
        _with([_info("dev", tarfile.CHRTYPE)]),
        r"member 'dev' is not a regular file, link or directory",
    ),
    "fifo": (_with([_info("pipe", tarfile.FIFOTYPE)]), r"member 'pipe' is not a regular file"),
    "duplicate": (_with([_info("a"), _info("a")]), r"member 'a' appears twice"),
    "dangling-link": (
        _with([_info("l", tarfile.SYMTYPE, link="nowhere")]),
        r"link 'l' points to missing member",
    ),
    "link-escape": (_with([_info("l", tarfile.SYMTYPE, link="../../etc/x")]), r"unsafe member name"),
    "no-index": (_with([_info("a")]), r"neither manifest.json nor index.json"),
    "blob-name-mismatch": (
        _oci_with_bad_blob(),
        r"blobs/sha256/a{64}' has sha256 [0-9a-f]{64}, not the digest",
    ),
    "missing-config": (_legacy_without(".json"), r"image config '[0-9a-f]{64}.json' is missing"),
    "missing-layer": (_legacy_without("/layer.tar"), r"layer '[0-9a-f]{64}/layer.tar' of .* is missing"),
    "truncated": (legacy_archive(APP)[:6000], r"truncated or corrupt|is truncated"),
    "empty-archive": (TarBuilder().build(), r"not a tar archive|neither manifest.json"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_archives_are_refused(store: Store, tmp_path: Path, case: str) -> None:
    data, message = BROKEN[case]
    with pytest.raises(ImageError, match=message):
        split(data, store, tmp_path)


def test_archive_without_images_is_refused(store: Store, tmp_path: Path) -> None:
    tar = TarBuilder()
    tar.file("manifest.json", b"[]")
    with pytest.raises(ImageError, match="lists no image"):
        split(tar.build(), store, tmp_path)


def test_store_answers_are_checked(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    with pytest.raises(ImageError, match=r"blob store returned None for .*expected \(digest, size\)"):
        images.split_save_stream(io.BytesIO(legacy_archive(APP)), lambda p: None, tmp_path / "w")
    with pytest.raises(ImageError, match="invalid digest 'XYZ'"):
        images.split_save_stream(io.BytesIO(legacy_archive(APP)), lambda p: ("XYZ", 1), tmp_path / "w")
    with pytest.raises(ImageError, match=r"work directory .* does not exist"):
        images.split_save_stream(io.BytesIO(b""), lambda p: None, tmp_path / "missing")


# ------------------------------------------------------------------------------------------- records


def good_record(store: Store, tmp_path: Path) -> dict[str, Any]:
    [record] = split(legacy_archive(APP), store, tmp_path)
    return record


BAD_RECORDS = {
    "id": (lambda r: r.update(id="sha256:xyz"), r"invalid id 'sha256:xyz'"),
    "id-no-algo": (lambda r: r.update(id="0" * 64), r"invalid id"),
    "alt-ids": (lambda r: r.update(alt_ids=["nope"]), r"alt_ids must be a list of sha256 ids"),
    "layout": (lambda r: r.update(layout="zip"), r"unknown layout 'zip'"),
    "tags": (lambda r: r.update(repo_tags="x:1"), r"repo_tags must be a list of strings"),
    "no-members": (lambda r: r.update(members=[]), r"no members"),
    "member-type": (lambda r: r["members"].append("x"), r"member 'x' is not a mapping"),
    "path-escape": (lambda r: r["members"][0].update(path="../x"), r"unsafe member path '../x'"),
    "path-absolute": (lambda r: r["members"][0].update(path="/x"), r"unsafe member path '/x'"),
    "path-dot": (lambda r: r["members"][0].update(path="./x"), r"unsafe member path './x'"),
    "path-type": (lambda r: r["members"][0].update(path=3), r"unsafe member path 3"),
    "path-twice": (lambda r: r["members"].append(dict(r["members"][0])), r"listed twice"),
    "digest": (lambda r: r["members"][0].update(digest="sha256:" + "0" * 64), r"invalid digest"),
    "size": (lambda r: r["members"][0].update(size=-1), r"invalid size -1"),
    "size-bool": (lambda r: r["members"][0].update(size=True), r"invalid size True"),
    "mode": (lambda r: r["members"][0].update(mode=0o17777), r"invalid mode 8191"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_malformed_records_are_refused(store: Store, tmp_path: Path, case: str) -> None:
    record = good_record(store, tmp_path)
    images.check_record(record)
    change, message = BAD_RECORDS[case]
    change(record)
    with pytest.raises(ImageError, match=message) as err:
        images.load_image(record, store.blob_path, docker="/nonexistent/docker")
    assert "'d2s/app:1'" in str(err.value)
    assert isinstance(err.value, ClearmlModuleError)


def test_record_must_be_a_mapping() -> None:
    with pytest.raises(ImageError, match="image record must be a mapping, got list"):
        images.check_record([])


def test_verify_blobs_reports_missing_and_wrong_size(store: Store, tmp_path: Path) -> None:
    record = good_record(store, tmp_path)
    assert images.verify_blobs(record, store.blob_path) == []
    store.blob_path(sha(TOP_LAYER)).unlink()
    store.blob_path(sha(BASE_LAYER)).write_bytes(b"short")
    problems = images.verify_blobs(record, store.blob_path)
    assert set(problems) == {
        f"blob {sha(BASE_LAYER)} ({_path_of(record, BASE_LAYER)}) has 5 bytes, the record says {len(BASE_LAYER)}",
        f"blob {sha(TOP_LAYER)} ({_path_of(record, TOP_LAYER)}) is missing",
    }


def _path_of(record: dict[str, Any], data: bytes) -> str:
    return next(m["path"] for m in record["members"] if m["digest"] == sha(data))


# ------------------------------------------------------------------------------------------- docker CLI


@pytest.mark.parametrize(
    ("name", "image_id", "ref"),
    [
        ("d2s/base", "sha256:" + "1" * 64, "d2s/base:latest"),
        ("d2s/base:bookworm", "sha256:" + "1" * 64, "d2s/base:bookworm"),
        ("localhost:5000/x", "sha256:" + "1" * 64, "localhost:5000/x:latest"),
        ("localhost:5000/x:2", "sha256:" + "1" * 64, "localhost:5000/x:2"),
        ("x@sha256:" + "2" * 64, "sha256:" + "1" * 64, "x@sha256:" + "2" * 64),
        ("111111111111", "sha256:" + "1" * 64, "111111111111"),
        ("sha256:" + "1" * 64, "sha256:" + "1" * 64, "sha256:" + "1" * 64),
        ("abcdefabcdef", "sha256:" + "1" * 64, "abcdefabcdef:latest"),  # hex-looking repo, not this ID
    ],
)
def test_save_reference(name: str, image_id: str, ref: str) -> None:
    assert images._save_ref(name, image_id) == ref


def test_missing_docker_cli_is_reported(store: Store, tmp_path: Path) -> None:
    record = good_record(store, tmp_path)
    with pytest.raises(ImageError, match=r"docker CLI '/nonexistent/docker' not found on PATH"):
        images.load_image(record, store.blob_path, docker="/nonexistent/docker")
    with pytest.raises(ImageError, match=r"docker CLI '/nonexistent/docker' not found"):
        images.export_images(["x:1"], store.put_file, tmp_path, docker="/nonexistent/docker")


def test_export_arguments_are_checked(store: Store, tmp_path: Path) -> None:
    for names in ([], "x:1", [""], [3]):
        with pytest.raises(ImageError, match="non-empty list of non-empty strings"):
            images.export_images(names, store.put_file, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match=r"work directory .*nowhere' does not exist"):
        images.export_images(["x:1"], store.put_file, tmp_path / "nowhere")


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI binary (no daemon needed)")
def test_unreachable_daemon_is_reported(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = good_record(store, tmp_path)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    with pytest.raises(ImageError, match=r"docker daemon unreachable while trying to inspect image 'sha256:"):
        images.load_image(record, store.blob_path)
    with pytest.raises(ImageError, match=r"docker daemon unreachable while trying to inspect image 'x:1'"):
        images.export_images(["x:1"], store.put_file, tmp_path)


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI binary (no daemon needed)")
def test_unreachable_daemon_message_is_docker_s(tmp_path: Path) -> None:
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/no-daemon.sock")
    proc = subprocess.run(
        ["docker", "image", "inspect", "x"], capture_output=True, text=True, env=env, check=False
    )
    err = images._daemon_error("inspect image 'x'", proc.stderr)
    assert str(err).startswith("docker daemon unreachable while trying to inspect image 'x': ")
    assert str(images._daemon_error("save x", "Error response from daemon: boom")) == (
        "docker failed to save x: Error response from daemon: boom"
    )
