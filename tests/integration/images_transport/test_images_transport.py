# SPDX-License-Identifier: GPL-3.0-or-later
"""Images through the bundle's blob store with the real docker daemon.

Two tiny images made here from scratch (no registry): a base from ``docker import`` of a small tar, and
an app ``FROM`` it with one more layer (``docker build --network none``). Both are exported in one
``docker save``; the app is removed and loaded back from the blobs. Every image this test makes has a
unique name and is removed by name/ID at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _images as images
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._images import ImageError

pytestmark = pytest.mark.docker


def docker(*args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=300, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr}{proc.stdout}"
        )
    return proc


def image_id(ref: str) -> str | None:
    proc = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


class Store:
    """A stand-in for the bundle's blob store: sha256 + copy into a directory; counts what it writes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.written: list[str] = []

    def put_file(self, path: Path) -> tuple[str, int]:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        hexd, size = digest.hexdigest(), path.stat().st_size
        if not (self.root / hexd).exists():
            shutil.copyfile(path, self.root / hexd)
            self.written.append(hexd)
        return hexd, size

    def blob_path(self, digest: str) -> Path:
        return self.root / digest


@pytest.fixture(scope="module")
def two_images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if docker("info", check=False).returncode != 0:
        pytest.fail(
            "no docker daemon answers `docker info`: the docker tests need one (see scripts/setup.sh)"
        )
    ctx = tmp_path_factory.mktemp("images-ctx")
    repo = f"d2s-test/images-transport-{uuid.uuid4().hex[:10]}"
    names = {"base": f"{repo}:base", "app": f"{repo}:app", "alias": f"{repo}:alias"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("etc/d2s-base", b"base layer\n"), ("opt/tool.bin", bytes(range(256)) * 64)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (ctx / "base.tar").write_bytes(buf.getvalue())
    (ctx / "app.bin").write_bytes(uuid.uuid4().bytes * 512)
    (ctx / "Dockerfile").write_text(f"FROM {names['base']}\nCOPY app.bin /opt/app.bin\n")
    created: list[str] = []
    try:
        docker("import", str(ctx / "base.tar"), names["base"])
        created.append(names["base"])
        # The classic builder: it reads FROM from the local image store and needs no network.
        env = dict(os.environ, DOCKER_BUILDKIT="0")
        docker("build", "--network", "none", "-q", "-t", names["app"], str(ctx), env=env)
        created.append(names["app"])
        names["base_id"] = image_id(names["base"]) or ""
        names["app_id"] = image_id(names["app"]) or ""
        yield names
    finally:
        ids = {image_id(n) for n in (names["base"], names["app"], names["alias"])} - {None}
        for ref in (names["alias"], names["app"], names["base"]):
            docker("rmi", ref, check=False)
        for ref in sorted(i for i in ids if i):
            docker("rmi", ref, check=False)


def server_major() -> int:
    return int(docker("version", "--format", "{{.Server.Version}}").stdout.strip().split(".")[0])


def test_export_shares_layer_and_loads_back(two_images: dict[str, str], tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    work = tmp_path / "work"
    work.mkdir()
    base, app = images.export_images([two_images["base"], two_images["app"]], store.put_file, work)
    assert list(work.iterdir()) == []
    assert (base["id"], app["id"]) == (two_images["base_id"], two_images["app_id"])
    assert (base["repo_tags"], app["repo_tags"]) == ([two_images["base"]], [two_images["app"]])
    assert (
        base["layout"]
        == app["layout"]
        == (images.LAYOUT_OCI if server_major() >= 25 else images.LAYOUT_LEGACY)
    )
    # The base layer is the app's first layer: one blob, stored once, listed by both records.
    assert len(base["layers"]) == 1 and len(app["layers"]) == 2
    shared = base["layers"][0].removeprefix("sha256:")
    assert app["layers"][0] == base["layers"][0]
    assert store.written.count(shared) == 1
    assert shared in {m["digest"] for m in base["members"]} & {m["digest"] for m in app["members"]}
    assert len(store.written) == len(set(store.written)) == len(list(store.root.iterdir()))
    # Layer blobs are the layers docker knows (diff ids).
    rootfs = json.loads(
        docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", two_images["app"]).stdout
    )
    assert app["layers"] == rootfs

    # An export repeated later stores nothing new.
    before = list(store.written)
    again = images.export_images([two_images["app"], two_images["base"]], store.put_file, work)
    assert [r["id"] for r in again] == [app["id"], base["id"]]
    assert store.written == before

    # The site lacks the app image: check mode says it would load it, and loads nothing.
    docker("rmi", two_images["app"])
    assert image_id(app["id"]) is None
    checked = images.load_image(app, store.blob_path, check_mode=True)
    assert checked["changed"] is True and checked["loaded"] is True
    assert "would load image" in checked["msg"]
    assert image_id(app["id"]) is None

    loaded = images.load_image(app, store.blob_path)
    assert loaded["changed"] is True and loaded["loaded"] is True
    assert image_id(two_images["app"]) == app["id"]
    assert loaded["id"] == app["id"]

    again_loaded = images.load_image(app, store.blob_path)
    assert again_loaded["changed"] is False and again_loaded["loaded"] is False
    assert images.load_image(app, store.blob_path, check_mode=True)["changed"] is False


def test_missing_tag_is_reapplied_without_a_load(two_images: dict[str, str], tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    [app] = images.export_images([two_images["app"]], store.put_file, tmp_path)
    # The image stays (under another tag); its recorded tag goes.
    docker("tag", two_images["app"], two_images["alias"])
    docker("rmi", two_images["app"])
    try:
        for blob in store.root.iterdir():
            blob.unlink()  # no blob is needed to re-tag an image that is present
        checked = images.load_image(app, store.blob_path, check_mode=True)
        assert (checked["changed"], checked["loaded"], checked["tagged"]) == (
            True,
            False,
            [two_images["app"]],
        )
        assert image_id(two_images["app"]) is None
        result = images.load_image(app, store.blob_path)
        assert (result["changed"], result["loaded"], result["tagged"]) == (True, False, [two_images["app"]])
        assert image_id(two_images["app"]) == app["id"]
        assert images.load_image(app, store.blob_path)["changed"] is False
    finally:
        docker("tag", two_images["alias"], two_images["app"], check=False)
        docker("rmi", two_images["alias"], check=False)


def test_two_names_of_one_image_make_one_record(two_images: dict[str, str], tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    docker("tag", two_images["app"], two_images["alias"])
    try:
        records = images.export_images(
            [two_images["app"], two_images["alias"], two_images["app_id"]], store.put_file, tmp_path
        )
    finally:
        docker("rmi", two_images["alias"], check=False)
    [record] = records
    assert record["name"] == two_images["app"]
    assert sorted(record["repo_tags"]) == sorted([two_images["app"], two_images["alias"]])
    # Loading it brings back both tags.
    result = images.load_image(record, store.blob_path)
    assert (result["changed"], result["loaded"], result["tagged"]) == (True, False, [two_images["alias"]])
    assert image_id(two_images["alias"]) == record["id"]
    docker("rmi", two_images["alias"])


def test_store_failure_stops_the_save(two_images: dict[str, str], tmp_path: Path) -> None:
    def full_disk(path: Path) -> tuple[str, int]:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left on device"):
        images.export_images([two_images["base"], two_images["app"]], full_disk, tmp_path)
    assert list(tmp_path.iterdir()) == [], "temporary files left behind"


def test_export_refuses_a_missing_image(two_images: dict[str, str], tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    ghost = two_images["base"].rsplit(":", 1)[0] + ":no-such-tag"
    with pytest.raises(ImageError, match=rf"not found locally.*'{ghost}'") as err:
        images.export_images([two_images["base"], ghost], store.put_file, tmp_path)
    assert err.value.result["missing"] == [ghost]
    assert store.written == []


def test_load_failures(two_images: dict[str, str], tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    [app] = images.export_images([two_images["app"]], store.put_file, tmp_path)
    fake_id = "sha256:" + hashlib.sha256(b"not this image").hexdigest()
    absent = dict(app, id=fake_id)  # a record of an image the daemon does not have

    biggest = max(absent["members"], key=lambda m: m["size"])
    blob = store.blob_path(biggest["digest"])
    content = blob.read_bytes()
    blob.write_bytes(content[:100])
    with pytest.raises(
        ImageError, match=rf"cannot load image .*blob {biggest['digest']} .* has 100 bytes, the record says"
    ):
        images.load_image(absent, store.blob_path)
    with pytest.raises(ImageError, match="has 100 bytes"):
        images.load_image(absent, store.blob_path, check_mode=True)
    blob.unlink()
    with pytest.raises(ImageError, match=rf"blob {biggest['digest']} \(.*\) is missing") as err:
        images.load_image(absent, store.blob_path)
    assert err.value.result["problems"] == [f"blob {biggest['digest']} ({biggest['path']}) is missing"]
    blob.write_bytes(content)

    # The blobs load the real app image, not the one the record claims.
    with pytest.raises(ImageError, match=rf"produced another image than {fake_id}"):
        images.load_image(absent, store.blob_path)

    # A blob whose content changed but not its size: docker load refuses the layer.
    layer = next(m for m in app["members"] if m["digest"] == app["layers"][-1].removeprefix("sha256:"))
    docker("rmi", two_images["app"])
    try:
        data = bytearray(store.blob_path(layer["digest"]).read_bytes())
        data[600] ^= 0xFF
        store.blob_path(layer["digest"]).write_bytes(bytes(data))
        with pytest.raises(ImageError, match=r"docker failed to load image|produced another image"):
            images.load_image(app, store.blob_path)
    finally:
        data[600] ^= 0xFF
        store.blob_path(layer["digest"]).write_bytes(bytes(data))
        images.load_image(app, store.blob_path)
    assert image_id(two_images["app"]) == app["id"]
