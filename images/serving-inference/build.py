# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the clearml-serving inference image ``d2s/serving-inference:<clearml-serving version>``.

The image runs clearml-serving's inference app (FastAPI under uvicorn, or gunicorn) exactly as its
upstream image does, but is built from the pinned PyPI release with every package its app imports
installed at build time: ``docker build --network none`` from a wheelhouse downloaded here with
``pip download``; nothing is pip-installed when the container starts. See docs/serving.md.

    python images/serving-inference/build.py [--base-image REF] [--extra-requirements FILE] [-v]
    python images/serving-inference/build.py lock      # re-resolve requirements.in -> requirements.txt

Caching follows scripts/images_build.py (whose helpers this reuses): the image carries a tag made of
its input hash (``d2s/serving-inference:<version>-<hash12>``) and the label
``org.deploy2standalone.inputs=<full hash>``; the inputs are every file of this directory, the base
image's ID, the extra requirements and a recipe version. When the hash tag exists with that label,
nothing is built. Wheels are cached under ``$D2S_CACHE_DIR`` (default ``~/.cache/d2s``) keyed on the
requirement files.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NAME = "serving-inference"
DEFAULT_IMAGE = "d2s/serving-inference"
DEFAULT_BASE = "d2s/base:bookworm"
# Bump to rebuild when the logic here (not a file of this directory) changes.
RECIPE = "serving-inference-1"
VERSION_LABEL = "org.deploy2standalone.clearml-serving"
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_12_x86_64",
    "manylinux2010_x86_64",
    "manylinux_2_5_x86_64",
    "manylinux1_x86_64",
)
# Files of this directory that are build tooling, not image inputs.
NOT_CONTEXT = ("build.py", "requirements.in")
_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _images_build() -> ModuleType:
    """scripts/images_build.py, the local image builder whose helpers (hashing, logging, caching) we reuse."""
    spec = importlib.util.spec_from_file_location("d2s_images_build", REPO / "scripts" / "images_build.py")
    if spec is None or spec.loader is None:  # pragma: no cover - the file is part of the checkout
        raise RuntimeError("scripts/images_build.py is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ib = _images_build()
BuildError = ib.BuildError


@dataclass
class Built:
    """What the build produced (``as_dict()`` is what ``--json`` prints)."""

    ref: str
    tags: list[str]
    id: str
    version: str
    inputs: str
    status: str
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def pinned(requirements: Path) -> dict[str, str]:
    """``{normalised name: version}`` of the ``name==version`` lines of a requirements file."""
    pins: dict[str, str] = {}
    for line in requirements.read_text().splitlines():
        match = _PIN_RE.match(line.strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def serving_version(requirements: Path = HERE / "requirements.txt") -> str:
    version = pinned(requirements).get("clearml-serving")
    if not version:
        raise BuildError(f"{requirements} pins no clearml-serving version")
    return version


def _pip_download(ctx: object, args: Sequence[str], dest: Path, logfile: Path) -> None:
    cmd = [
        str(ctx.venv / "bin" / "python"),  # type: ignore[attr-defined]
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
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
    for plat in PLATFORMS:
        cmd += ["--platform", plat]
    ib.run([*cmd, *args, "-d", str(dest)], ctx, logfile)


def wheelhouse(ctx: object, files: Sequence[Path], extra: Path | None) -> Path:
    """The wheels of the lock (hash-checked), pip, and the extra requirements, cached by their content."""
    digest = hashlib.sha256()
    for path in [*files, *([extra] if extra else [])]:
        digest.update(path.read_bytes() + b"\0")
    cache: Path = ctx.cache  # type: ignore[attr-defined]
    dest = cache / "wheels" / f"{NAME}-{digest.hexdigest()[:16]}"
    if dest.is_dir():
        return dest
    logfile = cache / "logs" / f"{NAME}.log"
    tmp = Path(tempfile.mkdtemp(prefix="wheels-", dir=cache))
    try:
        for req in files:
            _pip_download(ctx, ["--no-deps", "--require-hashes", "-r", str(req)], tmp, logfile)
        if extra:
            # The extra packages resolve against the lock: they may add packages, never move a pinned one.
            plain = tmp / "lock-constraints.txt"
            plain.write_text("".join(f"{n}=={v}\n" for n, v in pinned(HERE / "requirements.txt").items()))
            _pip_download(ctx, ["-c", str(plain), "-r", str(extra)], tmp, logfile)
            plain.unlink()
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def docker_image_id(ref: str) -> str | None:
    proc = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def context_files() -> list[tuple[str, Path]]:
    return [(rel, path) for rel, path in ib.tree_files(HERE) if rel not in NOT_CONTEXT]


def inputs_digest(base_id: str, extra: Path | None) -> str:
    files = context_files()
    if extra:
        files.append(("extra-requirements.txt", extra))
    return ib.input_hash(RECIPE, [base_id], files)


def build(
    *,
    base_image: str = DEFAULT_BASE,
    image: str = DEFAULT_IMAGE,
    extra_requirements: Path | None = None,
    cache_dir: Path | None = None,
    venv: Path | None = None,
    force: bool = False,
    verbose: bool = False,
) -> Built:
    """Build (or find cached) the inference image; return its refs, ID and inputs hash."""
    start = time.monotonic()
    cache = (cache_dir or Path(os.environ.get("D2S_CACHE_DIR", Path.home() / ".cache" / "d2s"))).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    ctx = ib.Context(cache, venv or Path(os.environ.get("D2S_VENV", REPO / ".venv")), verbose, frozenset())
    base_id = docker_image_id(base_image)
    if base_id is None:
        raise BuildError(
            f"base image {base_image} is not on this host (bash scripts/build_images.sh builds it)"
        )
    version = serving_version()
    extra = extra_requirements.resolve() if extra_requirements else None
    digest = inputs_digest(base_id, extra)
    ref = f"{image}:{version}-{digest[:12]}"
    alias = f"{image}:{version}"
    status = "cached"
    with (cache / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if force or ib.docker_label(ref) != digest:
            ib.log(f"{NAME}: building {ref} (inputs {digest[:12]}) FROM {base_image}")
            _docker_build(ctx, digest, ref, base_image, version, extra)
            if ib.docker_label(ref) != digest:
                raise BuildError(
                    f"{NAME}: {ref} missing or without label {ib.LABEL}={digest} after the build"
                )
            status = "built"
        ib.docker_tag(ref, alias)
    image_id = docker_image_id(ref) or ""
    return Built(ref, [alias, ref], image_id, version, digest, status, time.monotonic() - start)


def _docker_build(ctx: object, digest: str, ref: str, base: str, version: str, extra: Path | None) -> None:
    lock_files = [HERE / "requirements.txt", HERE / "build-requirements.txt"]
    wheels = wheelhouse(ctx, lock_files, extra)
    stage = Path(tempfile.mkdtemp(prefix=f"{NAME}-ctx-", dir=ctx.cache))  # type: ignore[attr-defined]
    try:
        for rel, path in context_files():
            ib.link_or_copy(path, stage / rel)
        (stage / "extra-requirements.txt").write_bytes(extra.read_bytes() if extra else b"")
        for whl in sorted(wheels.iterdir()):
            ib.link_or_copy(whl, stage / "wheels" / whl.name)
        cmd = [
            "docker",
            "build",
            "--network",
            "none",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--label",
            f"{ib.LABEL}={digest}",
            "--label",
            f"{VERSION_LABEL}={version}",
            "--force-rm",
            "-t",
            ref,
            str(stage),
        ]
        os.environ["DOCKER_BUILDKIT"] = "0"  # the legacy builder: the daemon is 20.10, buildx may be absent
        ib.run(cmd, ctx, ctx.cache / "logs" / f"{NAME}.log")  # type: ignore[attr-defined]
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _hashed_pins(wheels: Path) -> str:
    lines = []
    for whl in sorted(wheels.iterdir(), key=lambda p: p.name.lower()):
        name, version = whl.name.split("-")[:2]
        sha = hashlib.sha256(whl.read_bytes()).hexdigest()
        lines.append(f"{name.replace('_', '-').lower()}=={version} \\\n    --hash=sha256:{sha}\n")
    return "".join(lines)


def lock(venv: Path, verbose: bool) -> Path:
    """Resolve requirements.in (against constraints.txt) and write the closure with hashes."""
    cache = Path(tempfile.mkdtemp(prefix="serving-lock-"))
    try:
        ctx = ib.Context(cache, venv, verbose, frozenset())
        dest = cache / "wheels"
        _pip_download(
            ctx,
            ["-c", str(REPO / "constraints.txt"), "-r", str(HERE / "requirements.in")],
            dest,
            cache / "lock.log",
        )
        out = HERE / "requirements.txt"
        out.write_text(
            "# The exact closure of requirements.in for CPython 3.11 on manylinux x86_64, with the hashes of\n"
            "# the wheels: written by `python images/serving-inference/build.py lock`, do not edit by hand.\n"
            + _hashed_pins(dest)
        )
        # pip itself, run from its wheel in the build stage only (the venv's pip version).
        pip_version = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import pip; print(pip.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        tools = cache / "tools"
        _pip_download(ctx, ["--no-deps", f"pip=={pip_version}"], tools, cache / "lock.log")
        (HERE / "build-requirements.txt").write_text(
            "# pip, run from its wheel to install the wheelhouse in the build stage (not in the final image).\n"
            "# Written by `python images/serving-inference/build.py lock`.\n" + _hashed_pins(tools)
        )
        return out
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", nargs="?", default="build", choices=["build", "lock"])
    parser.add_argument("--base-image", default=os.environ.get("D2S_SERVING_BASE_IMAGE", DEFAULT_BASE))
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="repository of the image (tags are added)")
    parser.add_argument(
        "--extra-requirements",
        type=Path,
        help="more packages (e.g. what endpoints' preprocess code imports), resolved against the lock",
    )
    parser.add_argument("--force", action="store_true", help="rebuild although the inputs did not change")
    parser.add_argument("-v", "--verbose", action="store_true", help="stream build output")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--venv", type=Path, default=Path(os.environ.get("D2S_VENV", REPO / ".venv")))
    args = parser.parse_args(argv)
    try:
        if args.action == "lock":
            print(lock(args.venv, args.verbose))
            return 0
        built = build(
            base_image=args.base_image,
            image=args.image,
            extra_requirements=args.extra_requirements,
            cache_dir=args.cache_dir,
            venv=args.venv,
            force=args.force,
            verbose=args.verbose,
        )
    except (BuildError, subprocess.CalledProcessError, OSError) as exc:
        ib.log(f"ERROR: {exc}")
        return 1
    if args.json:
        print(json.dumps(built.as_dict(), sort_keys=True))
    else:
        print(f"{NAME:<11} {built.status:<6} {built.seconds:7.1f}s  {built.ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
