# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the bundle library against the shell tools doing the same work (not a test).

~200 MiB of synthetic files (incompressible weights, a compressible layer tar, many small dataset
files) go through: blob store put (hash on write), full verification, deterministic pack (zstd and
plain tar), and safe unpack. Each is compared with ``cp``/``sha256sum``/``tar``/``zstd`` doing the
equivalent, in the same run on the same (warm) page cache. Prints seconds, MiB/s and the ratio
ours/baseline (lower is better; 1.0 = as fast as the shell).

    .venv/bin/python bench/bench_bundle.py [--mib 200] [--repeat 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "collections"))

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle

MIB = 1024 * 1024


def make_sources(root: Path, total_mib: int) -> list[Path]:
    """72% weights (random), 16% one layer tar (text-like), 12% small files of 12 KiB."""
    rnd = random.Random(42)  # noqa: S311 - synthetic data
    root.mkdir(parents=True)
    files = []
    weights = int(total_mib * 0.72)
    for i in range(3):
        path = root / f"weights{i}.bin"
        with open(path, "wb") as f:
            for _ in range(weights // 3):
                f.write(rnd.randbytes(MIB))
        files.append(path)
    words = [rnd.randbytes(6).hex().encode() for _ in range(4096)]
    layer = root / "layer.tar"
    with open(layer, "wb") as f:
        for _ in range(int(total_mib * 0.16)):
            f.write(b" ".join(rnd.choices(words, k=MIB // 13))[:MIB].ljust(MIB, b"\n"))
    files.append(layer)
    small = root / "dataset"
    small.mkdir()
    for i in range(int(total_mib * 0.12 * 1024 / 12)):
        path = small / f"{i:05d}.png"
        path.write_bytes(rnd.randbytes(12 * 1024))
        files.append(path)
    return files


def build(dest: Path, files: list[Path], fsync: bool) -> None:
    with bundle.BundleWriter(dest, tool_version="bench", api_host="http://127.0.0.1:8008", fsync=fsync) as w:
        refs = [{"path": f"f{i:05d}", "blob": w.add_file(p, kind="model")} for i, p in enumerate(files)]
        w.manifest["models"]["bench"] = {"name": "bench", "framework": None, "ready": True, "files": refs}
        w.finalize(volatile={"exported_on": "bench"})


def timed(fn: Callable[[], object], repeat: int, reset: Callable[[], None] | None = None) -> float:
    best = float("inf")
    for _ in range(repeat):
        if reset:
            reset()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def sh(cmd: str, cwd: Path | None = None) -> None:
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="work directory to use (default: a temporary one, removed)")
    args = parser.parse_args()
    for tool in ("tar", "zstd", "sha256sum", "cp"):
        if not shutil.which(tool):
            print(f"missing tool: {tool}", file=sys.stderr)
            return 2
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        src = work / "src"
        if src.exists():
            shutil.rmtree(src)
        files = make_sources(src, args.mib)
        total = sum(p.stat().st_size for p in files)
        print(
            f"{len(files)} files, {total / MIB:.0f} MiB, zstandard={bundle.HAS_ZSTD}, cpus={os.cpu_count()}"
        )
        b = work / "bundle"
        rows: list[tuple[str, float, float, int]] = []

        def clean(*paths: Path) -> Callable[[], None]:
            def reset() -> None:
                for p in paths:
                    if p.is_dir():
                        shutil.rmtree(p)
                    elif p.exists():
                        p.unlink()

            return reset

        for fsync in (True, False):
            ours = timed(lambda fsync=fsync: build(b, files, fsync), args.repeat, clean(b))
            base = timed(
                lambda: sh(f"cp -r {src} {work}/cp && find {work}/cp -type f -print0 | xargs -0 sha256sum"),
                args.repeat,
                clean(work / "cp"),
            )
            rows.append(
                (f"store put {'(fsync)' if fsync else '(no fsync)'} vs cp + sha256sum", ours, base, total)
            )

        ours = timed(lambda: bundle.verify_bundle(b), args.repeat)
        base = timed(lambda: sh("sha256sum --check --quiet --strict checksums.sha256", cwd=b), args.repeat)
        rows.append(("verify dir vs sha256sum -c", ours, base, total))

        z, t = work / "b.tar.zst", work / "b.tar"
        ours = timed(lambda: bundle.pack_bundle(b, z), args.repeat, clean(z))
        base = timed(
            lambda: sh(
                f"tar --sort=name --mtime=@0 --owner=0 --group=0 -C {b} -cf - . | zstd -3 -q -f -o {z}.sh"
            ),
            args.repeat,
        )
        rows.append((f"pack zstd (ratio {total / z.stat().st_size:.2f}) vs tar | zstd -3", ours, base, total))
        ours = timed(lambda: bundle.pack_bundle(b, t, compression="none"), args.repeat, clean(t))
        base = timed(lambda: sh(f"tar --sort=name -C {b} -cf {t}.sh ."), args.repeat)
        rows.append(("pack tar vs tar -c", ours, base, total))

        ours = timed(lambda: bundle.verify_bundle(z), args.repeat)
        base = timed(lambda: sh(f"zstd -dc {z} | tar -xO -f - | sha256sum"), args.repeat)
        rows.append(("verify .tar.zst (streamed) vs zstd -d | tar -xO | sha256sum", ours, base, total))

        out, sh_out = work / "out", work / "sh-out"
        ours = timed(lambda: bundle.unpack_bundle(z, out), args.repeat, clean(out))
        base = timed(
            lambda: sh(
                f"mkdir -p {sh_out} && zstd -dc {z} | tar -x -C {sh_out} && "
                f"cd {sh_out} && sha256sum --check --quiet checksums.sha256"
            ),
            args.repeat,
            clean(sh_out),
        )
        rows.append(("unpack .tar.zst + verify vs zstd -d | tar -x + sha256sum -c", ours, base, total))

        print(f"\n{'operation':66} {'ours s':>8} {'MiB/s':>7} {'base s':>8} {'MiB/s':>7} {'ratio':>6}")
        for name, ours, base, size in rows:
            print(
                f"{name:66} {ours:8.2f} {size / MIB / ours:7.0f} {base:8.2f} {size / MIB / base:7.0f} {ours / base:6.2f}"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
