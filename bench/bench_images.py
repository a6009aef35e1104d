# SPDX-License-Identifier: GPL-3.0-or-later
"""Images through the blob store vs plain ``docker save``/``docker load``, on the local daemon.

    .venv/bin/python bench/bench_images.py [--image d2s/base:bookworm] [--repeat 3] [--keep-tmp]

1. Export of ``--image`` (default ``d2s/base:bookworm``; a private image is built when it is absent):
   ``export_images`` (save + split + hash + store) vs ``docker save -o x.tar`` + ``sha256sum x.tar``.
   Two stores: the test stand-in's ``put_file`` (temporary file, then hash + copy: the data is written
   twice) and a ``put_stream`` store (hash while writing: once).
2. Two private images sharing a base (``docker import`` of host files, then ``FROM`` it with one more
   layer): the bytes stored for the second after the first, vs a second full ``docker save``.
3. Load of the second image, absent from the daemon: ``load_image`` from blobs vs ``docker load -i``.

Times are medians of ``--repeat`` runs (page cache warm after the first). Only images this script
creates are removed; ``--image`` is only read.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _images as images  # noqa: E402

HOST_DIRS = ("/usr/lib/python3.11", "/usr/lib/python3", "/usr/share/perl", "/usr/share/zoneinfo")


def docker(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)} failed: {proc.stderr}")
    return proc


def image_id(ref: str) -> str | None:
    proc = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


class CopyStore:
    """The tests' stand-in: ``put_file`` hashes the file, then copies it in when new."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.new_bytes = 0

    def put_file(self, path: Path) -> tuple[str, int]:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        hexd, size = digest.hexdigest(), path.stat().st_size
        if not (self.root / hexd).exists():
            shutil.copyfile(path, self.root / hexd)
            self.new_bytes += size
        return hexd, size

    def blob_path(self, digest: str) -> Path:
        return self.root / digest


class StreamStore(CopyStore):
    """``put_stream``: hash while writing a temporary file inside the store, rename on a new digest."""

    def put_stream(self, src: IO[bytes]) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        final = self.root / digest.hexdigest()
        if final.exists():
            os.unlink(tmp)
        else:
            os.replace(tmp, final)
            self.new_bytes += size
        return digest.hexdigest(), size


def timed(fn: Callable[[], Any], repeat: int, before: Callable[[], Any] | None = None) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def build_private_images(ctx: Path) -> tuple[str, str]:
    """A base from host files (plus a random file: its layer is its own) and an app FROM it."""
    repo = f"d2s-bench/images-{uuid.uuid4().hex[:8]}"
    base, app = f"{repo}:base", f"{repo}:app"
    with tarfile.open(ctx / "base.tar", "w") as tar:
        for folder in HOST_DIRS:
            if os.path.isdir(folder):
                tar.add(folder, arcname=folder.lstrip("/"))
        unique = os.urandom(1 << 20)
        info = tarfile.TarInfo("etc/d2s-bench-unique")
        info.size = len(unique)
        tar.addfile(info, io.BytesIO(unique))
    docker("import", str(ctx / "base.tar"), base)
    (ctx / "base.tar").unlink()
    (ctx / "app.bin").write_bytes(os.urandom(32 << 20))
    (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY app.bin /opt/app.bin\n")
    docker("build", "--network", "none", "-q", "-t", app, str(ctx), env=dict(os.environ, DOCKER_BUILDKIT="0"))
    return base, app


def mib(n: float) -> str:
    return f"{n / (1 << 20):8.1f} MiB"


def bench_export(tmp: Path, subject: str, repeat: int) -> None:
    """save + split + hash + store vs ``docker save -o`` + ``sha256sum``."""
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    stores: list[Any] = [None]

    def baseline_save() -> int:
        subprocess.run(["docker", "save", "-o", str(tmp / "x.tar"), subject], check=True)
        subprocess.run(["sha256sum", str(tmp / "x.tar")], check=True, capture_output=True)
        return (tmp / "x.tar").stat().st_size

    def fresh(cls: type[CopyStore]) -> Callable[[], None]:
        def reset() -> None:
            shutil.rmtree(tmp / "store", ignore_errors=True)
            stores[0] = cls(tmp / "store")

        return reset

    t_base, tar_size = timed(baseline_save, repeat)
    (tmp / "x.tar").unlink()
    t_copy, _ = timed(
        lambda: images.export_images([subject], stores[0].put_file, work), repeat, fresh(CopyStore)
    )
    t_stream, records = timed(
        lambda: images.export_images([subject], stores[0].put_file, work, put_stream=stores[0].put_stream),
        repeat,
        fresh(StreamStore),
    )
    shutil.rmtree(tmp / "store")
    assert records[0]["size"] <= tar_size
    print(f"export of {subject} ({mib(tar_size).strip()} docker save archive, {repeat} runs, median)")
    print(f"  docker save -o x.tar + sha256sum x.tar       {t_base:7.2f} s   1.00x")
    print(f"  export_images, put_file (temp + hash + copy) {t_copy:7.2f} s   {t_copy / t_base:.2f}x")
    print(f"  export_images, put_stream (hash on write)    {t_stream:7.2f} s   {t_stream / t_base:.2f}x")


def bench_shared_base(tmp: Path, base: str, app: str) -> tuple[StreamStore, dict[str, Any], int]:
    """Bytes stored for the second of two images sharing a base vs a second full ``docker save``."""
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    store = StreamStore(tmp / "store")
    images.export_images([base], store.put_file, work, put_stream=store.put_stream)
    first = store.new_bytes
    [app_record] = images.export_images([app], store.put_file, work, put_stream=store.put_stream)
    second = store.new_bytes - first
    subprocess.run(["docker", "save", "-o", str(tmp / "app.tar"), app], check=True)
    full = (tmp / "app.tar").stat().st_size
    print(f"second image sharing a base ({app})")
    print(f"  first image stored                           {mib(first)}")
    print(f"  second image: new blobs stored               {mib(second)}   {second / full:.3f}x")
    print(f"  second image: a full docker save             {mib(full)}   1.000x")
    return store, app_record, full


def bench_load(tmp: Path, base: str, app: str, repeat: int) -> None:
    """``load_image`` from blobs vs ``docker load -i``, the image and its base layer absent."""
    store, app_record, full = bench_shared_base(tmp, base, app)

    def remove() -> None:
        for ref in (app, base):
            subprocess.run(["docker", "rmi", ref], capture_output=True, check=False)
        assert image_id(app_record["id"]) is None

    def docker_load() -> None:
        subprocess.run(["docker", "load", "-q", "-i", str(tmp / "app.tar")], check=True, capture_output=True)

    t_load_base, _ = timed(docker_load, repeat, remove)
    t_load, result = timed(lambda: images.load_image(app_record, store.blob_path), repeat, remove)
    assert result["loaded"] and image_id(app) == app_record["id"]
    t_noop, again = timed(lambda: images.load_image(app_record, store.blob_path), repeat)
    assert again["changed"] is False
    print(f"load of {app} ({mib(full).strip()}), absent from the daemon ({repeat} runs, median)")
    print(f"  docker load -i app.tar                       {t_load_base:7.2f} s   1.00x")
    print(f"  load_image from blobs                        {t_load:7.2f} s   {t_load / t_load_base:.2f}x")
    print(f"  load_image, image present (changed: false)   {t_noop:7.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="d2s/base:bookworm")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep-tmp", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-images-"))
    created: list[str] = []
    try:
        base, app = build_private_images(tmp)
        created += [app, base]
        bench_export(tmp, args.image if image_id(args.image) else base, args.repeat)
        bench_load(tmp, base, app, args.repeat)
        return 0
    finally:
        for ref in created:
            ref_id = image_id(ref)
            subprocess.run(["docker", "rmi", ref], capture_output=True, check=False)
            if ref_id:
                subprocess.run(["docker", "rmi", ref_id], capture_output=True, check=False)
        if args.keep_tmp:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
