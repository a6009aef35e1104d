# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the project's local images, each cached by the hash of its inputs.

Images (see docs/images.md):

* ``d2s/base:bookworm``: Debian bookworm from debootstrap (minbase), imported with ``docker import``.
* ``d2s/site-host:latest``: base + Debian's docker.io; an offline site host with its own dockerd.
* ``d2s/triton-cpu:latest``: base + tritonserver and its python backend from the nvidia-pytriton wheel.

Every image also carries a tag made of its input hash (``d2s/base:bookworm-<hash>`` and
``d2s/<name>:<hash>``) and the label ``org.deploy2standalone.inputs=<full hash>``. An image whose
hash-tag exists with that label is not rebuilt; a changed input rebuilds that image and the images
built FROM it. Downloads (the debootstrap rootfs, the wheelhouse) are cached under the cache dir,
``$D2S_CACHE_DIR`` or ``~/.cache/d2s``. Run through ``scripts/build_images.sh``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "images"
LABEL = "org.deploy2standalone.inputs"
# Bump a recipe version to force a rebuild when the logic here (not a file under images/) changes.
RECIPES = {"base": "base-1", "site-host": "site-host-1", "triton-cpu": "triton-cpu-1"}
ORDER = ("base", "site-host", "triton-cpu")
# Libraries of the wheel that no file we ship needs: the python 3.13 stub's own libpython.
SKIP_LIBS = ("libpython3-",)


class BuildError(RuntimeError):
    """A build step failed; the message says which and where its log is."""


@dataclass
class Context:
    """Settings of one run."""

    cache: Path
    venv: Path
    verbose: bool
    force: frozenset[str]


@dataclass
class Result:
    """What became of one image."""

    name: str
    ref: str
    status: str
    seconds: float


def log(msg: str) -> None:
    print(f"build_images: {msg}", file=sys.stderr, flush=True)


def sha256_files(paths: Iterable[tuple[str, Path]]) -> hashlib._Hash:
    """Hash (name, file) pairs: names, executable bits and contents, in the order given."""
    digest = hashlib.sha256()
    for name, path in paths:
        digest.update(name.encode() + b"\0")
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest


def tree_files(root: Path) -> list[tuple[str, Path]]:
    """Every regular file under root, sorted by relative path (caches and editor debris skipped)."""
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and "__pycache__" not in rel and not rel.endswith(("~", ".swp", ".pyc")):
            files.append((rel, path))
    return files


def input_hash(
    recipe: str, parents: Sequence[str], files: Iterable[tuple[str, Path]], extra: str = ""
) -> str:
    digest = sha256_files(files)
    digest.update(f"\0{recipe}\0{','.join(parents)}\0{extra}".encode())
    return digest.hexdigest()


def run(cmd: Sequence[str], ctx: Context, logfile: Path, *, cwd: Path | None = None) -> None:
    """Run cmd, its output appended to logfile (and echoed when verbose); raise BuildError on failure."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for line in proc.stdout or ():
            out.write(line)
            if ctx.verbose:
                sys.stderr.buffer.write(line)
                sys.stderr.flush()
        rc = proc.wait()
    if rc != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-40:]
        raise BuildError(
            f"command failed (exit {rc}): {' '.join(cmd)}\n--- last lines of {logfile} ---\n"
            + "\n".join(tail)
        )


def docker_label(ref: str) -> str | None:
    """The inputs label of a local image, or None when the image does not exist."""
    proc = subprocess.run(
        ["docker", "image", "inspect", "--format", f'{{{{ index .Config.Labels "{LABEL}" }}}}', ref],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def docker_tag(src: str, dst: str) -> None:
    subprocess.run(["docker", "tag", src, dst], check=True, capture_output=True)


def ensure(
    name: str,
    digest: str,
    ref: str,
    aliases: Sequence[str],
    ctx: Context,
    build: Callable[[], None],
) -> Result:
    """Build ref with build() unless it exists with this digest; point aliases at it."""
    start = time.monotonic()
    status = "cached"
    if name in ctx.force or docker_label(ref) != digest:
        log(f"{name}: building {ref} (inputs {digest[:12]})")
        build()
        if docker_label(ref) != digest:
            raise BuildError(f"{name}: {ref} missing or without label {LABEL}={digest} after the build")
        status = "built"
    for alias in aliases:
        docker_tag(ref, alias)
    return Result(name, ref, status, time.monotonic() - start)


def build_base(ctx: Context, digest: str, ref: str) -> None:
    src = IMAGES / "base"
    tarball = ctx.cache / "base" / f"rootfs-{digest[:16]}.tar.gz"
    logfile = ctx.cache / "logs" / "base.log"
    if not tarball.is_file():
        tarball.parent.mkdir(parents=True, exist_ok=True)
        # debootstrap executes in its target: the work dir lives in the cache, not a noexec /tmp.
        work = Path(tempfile.mkdtemp(prefix="base-work-", dir=ctx.cache))
        cmd = ["bash", str(src / "build-rootfs.sh"), str(tarball), str(work)]
        if os.geteuid() != 0:
            cmd = ["sudo", "-n", "--preserve-env=D2S_DEBIAN_MIRROR", *cmd]
        try:
            run(cmd, ctx, logfile)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        # Keep only the newest rootfs: the old ones belong to superseded package lists.
        for old in tarball.parent.glob("rootfs-*.tar.gz"):
            if old != tarball:
                old.unlink()
    changes = [
        f"LABEL {LABEL}={digest}",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["bash"]',
    ]
    cmd = ["docker", "import"]
    for change in changes:
        cmd += ["--change", change]
    run([*cmd, "--message", f"d2s base rootfs {tarball.name}", str(tarball), ref], ctx, logfile)


def docker_build(ctx: Context, name: str, context: Path, digest: str, ref: str, base_ref: str) -> None:
    cmd = [
        "docker",
        "build",
        "--network",
        "host",
        "--build-arg",
        f"BASE_IMAGE={base_ref}",
        "--label",
        f"{LABEL}={digest}",
        "--force-rm",
        "-t",
        ref,
        str(context),
    ]
    env_note = ctx.cache / "logs" / f"{name}.log"
    os.environ.setdefault("DOCKER_BUILDKIT", "0")  # the daemon is 20.10 and buildx may be absent
    run(cmd, ctx, env_note)


def build_site_host(ctx: Context, digest: str, ref: str, base_ref: str) -> None:
    docker_build(ctx, "site-host", IMAGES / "site-host", digest, ref, base_ref)


def pytriton_dir(ctx: Context) -> tuple[Path, Path]:
    """The nvidia-pytriton package dir and its RECORD (which hashes every file the wheel installed)."""
    site = sorted((ctx.venv / "lib").glob("python3*/site-packages"))
    for sp in site:
        records = sorted(sp.glob("nvidia_pytriton-*.dist-info/RECORD"))
        if records and (sp / "pytriton" / "tritonserver" / "bin" / "tritonserver").is_file():
            return sp, records[0]
    raise BuildError(
        f"nvidia-pytriton with its tritonserver is not installed in the venv {ctx.venv}; "
        "install the test requirements first (the lead's scripts/setup.sh does)"
    )


def wheelhouse(ctx: Context, requirements: Path) -> Path:
    """Download the pinned wheels of requirements into a cache dir keyed on the file's content."""
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    dest = ctx.cache / "wheels" / f"triton-cpu-{key}"
    if dest.is_dir():
        return dest
    tmp = Path(tempfile.mkdtemp(prefix="wheels-", dir=ctx.cache))
    cmd = [
        str(ctx.venv / "bin" / "python"),
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        "3.11",
        "--abi",
        "cp311",
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]
    for plat in (
        "manylinux_2_28_x86_64",
        "manylinux_2_27_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
    ):
        cmd += ["--platform", plat]
    cmd += ["-r", str(requirements), "-d", str(tmp)]
    try:
        run(cmd, ctx, ctx.cache / "logs" / "triton-cpu.log")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_triton(ctx: Context, digest: str, ref: str, base_ref: str) -> None:
    site, _record = pytriton_dir(ctx)
    server = site / "pytriton" / "tritonserver"
    libs = site / "nvidia_pytriton.libs"
    wheels = wheelhouse(ctx, IMAGES / "triton-cpu" / "requirements.txt")
    stage = Path(tempfile.mkdtemp(prefix="triton-ctx-", dir=ctx.cache))
    try:
        for rel, path in tree_files(IMAGES / "triton-cpu"):
            link_or_copy(path, stage / rel)
        for whl in sorted(wheels.iterdir()):
            link_or_copy(whl, stage / "wheels" / whl.name)
        # NGC layout: bin/, lib/, backends/python/ (with the stub), caches/.
        out = stage / "tritonserver"
        link_or_copy(server / "bin" / "tritonserver", out / "bin" / "tritonserver")
        for lib in sorted(libs.iterdir()):
            if not lib.name.startswith(SKIP_LIBS):
                link_or_copy(lib, out / "lib" / lib.name)
        for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
            link_or_copy(server / "backends" / "python" / name, out / "backends" / "python" / name)
        stub = server / "python_backend_stubs" / "3.11" / "triton_python_backend_stub"
        link_or_copy(stub, out / "backends" / "python" / "triton_python_backend_stub")
        for rel, path in tree_files(server / "caches"):
            link_or_copy(path, out / "caches" / rel)
        docker_build(ctx, "triton-cpu", stage, digest, ref, base_ref)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "images", nargs="*", metavar="IMAGE", help=f"images to build: {', '.join(ORDER)} (default: all)"
    )
    parser.add_argument("--force", action="append", default=[], choices=ORDER, help="rebuild this image")
    parser.add_argument("-v", "--verbose", action="store_true", help="stream build output")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("D2S_CACHE_DIR", Path.home() / ".cache" / "d2s")),
    )
    parser.add_argument("--venv", type=Path, default=Path(os.environ.get("D2S_VENV", REPO / ".venv")))
    args = parser.parse_args(argv)
    wanted = set(args.images or ORDER)
    if unknown := wanted - set(ORDER):
        parser.error(f"unknown image(s): {', '.join(sorted(unknown))}; known: {', '.join(ORDER)}")
    ctx = Context(args.cache_dir.resolve(), args.venv, args.verbose, frozenset(args.force))
    ctx.cache.mkdir(parents=True, exist_ok=True)

    with (ctx.cache / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results: list[Result] = []
        try:
            base_digest = input_hash(RECIPES["base"], [], tree_files(IMAGES / "base"))
            base_ref = f"d2s/base:bookworm-{base_digest[:12]}"
            results.append(
                ensure(
                    "base",
                    base_digest,
                    base_ref,
                    ["d2s/base:bookworm"],
                    ctx,
                    lambda: build_base(ctx, base_digest, base_ref),
                )
            )
            if "site-host" in wanted:
                digest = input_hash(RECIPES["site-host"], [base_digest], tree_files(IMAGES / "site-host"))
                ref = f"d2s/site-host:{digest[:12]}"
                results.append(
                    ensure(
                        "site-host",
                        digest,
                        ref,
                        ["d2s/site-host:latest"],
                        ctx,
                        lambda: build_site_host(ctx, digest, ref, base_ref),
                    )
                )
            if "triton-cpu" in wanted:
                _site, record = pytriton_dir(ctx)
                files = [*tree_files(IMAGES / "triton-cpu"), ("pytriton/RECORD", record)]
                tdigest = input_hash(RECIPES["triton-cpu"], [base_digest], files)
                tref = f"d2s/triton-cpu:{tdigest[:12]}"
                results.append(
                    ensure(
                        "triton-cpu",
                        tdigest,
                        tref,
                        ["d2s/triton-cpu:latest"],
                        ctx,
                        lambda: build_triton(ctx, tdigest, tref, base_ref),
                    )
                )
        except (BuildError, subprocess.CalledProcessError, OSError) as exc:
            for res in results:
                print(f"{res.name:<11} {res.status:<6} {res.seconds:7.1f}s  {res.ref}")
            log(f"ERROR: {exc}")
            return 1
    for res in results:
        print(f"{res.name:<11} {res.status:<6} {res.seconds:7.1f}s  {res.ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
