# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The own Triton image: built FROM a tritonserver base, saved into a blob store, found or loaded at a site.

Private to this collection: not a public API, may change without notice.

Build (dev side): the context is written into a temporary directory (``DOCKERFILE`` below, the
wheelhouse, the requirement lines and, with ``bake_models``, the model repository) and built with the
legacy builder and no network (``DOCKER_BUILDKIT=0 docker build --network none``). Every input (the base
image's ID, the Dockerfile, the requirement lines, each wheel's sha256, the baked models' digests) goes
into one digest, stored in the label ``org.deploy2standalone.triton.inputs``: an image of that name with
that label is the image these inputs make, and nothing is built (``changed: false``); an image with the
label under another name is tagged instead of rebuilt.

Store: ``_images.export_images`` splits the image's ``docker save`` into the blob store
(``<store>/blobs/sha256/``), and the record (the shape of the bundle manifest's ``images[]`` entries) is
written as JSON. Load (site side): ``_images.load_image`` from a record and a blob store, skipped when
the daemon already has the image ID.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_base import (
    BundleError,
    atomic_write_bytes,
    hash_file,
    pretty_json,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_store import BlobStore
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._images import (
    check_record,
    export_images,
    load_image,
    verify_blobs,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton import (
    RepositoryPlan,
    write_repository,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_container import (
    LABEL_PREFIX,
    DockerCli,
    DockerError,
    docker_env,
)

DEFAULT_BASE_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"
RECIPE_VERSION = 1  # bump when the build logic changes what an image holds
INPUTS_LABEL = f"{LABEL_PREFIX}.inputs"
BASE_LABEL = f"{LABEL_PREFIX}.base"
MODELS_LABEL = f"{LABEL_PREFIX}.models"  # baked models: {name: digest}
BUILD_TMP_PREFIX = "d2s-triton-build-"

# Keep equal to images/triton-site/Dockerfile (tests/unit/plugins/modules/test_triton_image.py checks it):
# the module runs on hosts where the collection's images/ directory is not installed.
DOCKERFILE = """\
# SPDX-License-Identifier: GPL-3.0-or-later
# The site's own Triton image, built by deploy2standalone.clearml.triton_image (state: built) with the
# legacy builder and no network:
#   DOCKER_BUILDKIT=0 docker build --network none --build-arg BASE_IMAGE=<tritonserver image> <context>
# The module writes the context: this file, requirements.txt (pip requirement lines, possibly none),
# wheels/ (the wheelhouse, possibly empty) and models/ (a model repository to bake in; empty when the
# models are mounted from the site's repository at /models). It embeds a copy of this file
# (plugins/module_utils/_triton_image.py DOCKERFILE; a unit test keeps the two equal).
ARG BASE_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3
FROM ${BASE_IMAGE}
COPY requirements.txt /tmp/d2s-build/requirements.txt
COPY wheels/ /tmp/d2s-build/wheels/
# Python-backend dependencies from the wheelhouse only (--no-index): nothing is downloaded, now or
# when the container starts. PIP_BREAK_SYSTEM_PACKAGES: for bases whose Python is externally managed.
RUN if grep -q '[^[:space:]]' /tmp/d2s-build/requirements.txt; then \\
        PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir --no-index \\
            --find-links /tmp/d2s-build/wheels -r /tmp/d2s-build/requirements.txt; \\
    fi \\
    && rm -rf /tmp/d2s-build
COPY models/ /models/
# The python backend imports model.py from the repository: no bytecode cache beside it.
ENV PYTHONDONTWRITEBYTECODE=1
"""
_WHEEL_DIR_IN_IMAGE = "/tmp/d2s-build/wheels"  # noqa: S108 - a path inside the image being built


class TritonImageError(ClearmlModuleError):
    """Building, storing or finding the Triton image failed; the message names the image and the cause."""


# --------------------------------------------------------------------------------------------- build inputs


@dataclass
class BuildInputs:
    """Everything that decides what the image holds; ``digest()`` is the cache key."""

    base_image: str
    base_id: str | None
    requirements: str
    wheels: dict[str, str]  # file name -> sha256
    models: dict[str, str] | None  # baked model name -> digest
    wheel_paths: dict[str, Path] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipe": RECIPE_VERSION,
            "dockerfile": hashlib.sha256(DOCKERFILE.encode()).hexdigest(),
            "base_image": self.base_image,
            "base_id": self.base_id,
            "requirements": self.requirements,
            "wheels": dict(sorted(self.wheels.items())),
            "models": dict(sorted(self.models.items())) if self.models is not None else None,
        }

    def digest(self) -> str:
        data = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def labels(self) -> dict[str, str]:
        labels = {INPUTS_LABEL: self.digest(), BASE_LABEL: self.base_image}
        if self.models is not None:
            labels[MODELS_LABEL] = json.dumps(dict(sorted(self.models.items())), separators=(",", ":"))
        return labels


def wheelhouse(path: str | os.PathLike[str] | None) -> dict[str, Path]:
    """The wheels (``*.whl``) of a wheelhouse directory, by file name."""
    if not path:
        return {}
    root = Path(path)
    if not root.is_dir():
        raise TritonImageError(f"wheelhouse '{root}' is not a directory")
    wheels = {p.name: p for p in sorted(root.iterdir()) if p.name.endswith(".whl") and p.is_file()}
    if not wheels:
        raise TritonImageError(f"wheelhouse '{root}' holds no .whl file")
    return wheels


def requirements_text(python_packages: Sequence[str] | None, wheels: Mapping[str, Path]) -> str:
    """Requirement lines: the packages asked for, else every wheel of the wheelhouse; none without either."""
    lines = [str(p).strip() for p in python_packages or [] if str(p).strip()]
    for line in lines:
        if line.startswith("-") or "\n" in line:
            raise TritonImageError(
                f"python_packages: {line!r} is not a requirement (options are not allowed)"
            )
    if lines and not wheels:
        raise TritonImageError("python_packages needs a wheelhouse: nothing is downloaded during the build")
    if not lines:
        lines = [f"{_WHEEL_DIR_IN_IMAGE}/{name}" for name in sorted(wheels)]
    return "".join(f"{line}\n" for line in lines)


def build_inputs(
    docker: DockerCli,
    *,
    base_image: str,
    wheelhouse_dir: str | None,
    python_packages: Sequence[str] | None,
    plan: RepositoryPlan | None,
) -> BuildInputs:
    wheels = wheelhouse(wheelhouse_dir)
    base = docker.inspect("image", base_image)
    return BuildInputs(
        base_image=base_image,
        base_id=str(base["Id"]) if base else None,
        requirements=requirements_text(python_packages, wheels),
        wheels={name: hash_file(path)[0] for name, path in wheels.items()},
        models={m.name: m.digest for m in plan.models} if plan is not None else None,
        wheel_paths=wheels,
    )


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_context(ctx: Path, inputs: BuildInputs, plan: RepositoryPlan | None) -> None:
    """The build context: Dockerfile, requirements.txt, wheels/ and models/ (empty unless baked)."""
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "requirements.txt").write_text(inputs.requirements)
    (ctx / "wheels").mkdir()
    for name, path in inputs.wheel_paths.items():
        _link_or_copy(path, ctx / "wheels" / name)
        if hash_file(ctx / "wheels" / name)[0] != inputs.wheels[name]:
            raise TritonImageError(f"wheel '{path}' changed while the build context was written")
    models = ctx / "models"
    if plan is not None:
        write_repository(plan, models)  # copies (not links): the context is read by the daemon
    else:
        models.mkdir()
    # The legacy builder sends the context as a tar; the daemon keeps modes and ownership.
    for root, dirs, files in os.walk(ctx):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)  # noqa: S103 - readable context dirs, as COPY keeps modes
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)


def _images_with_label(docker: DockerCli, key: str, value: str) -> list[str]:
    proc = docker.run(
        "images", "--no-trunc", "--quiet", "--filter", f"label={key}={value}",
        action=f"list images labelled {key}",
    )  # fmt: skip
    return sorted({line.strip() for line in proc.stdout.splitlines() if line.strip()})


def check_image_name(image: str) -> str:
    name = image.strip()
    if not name or "@" in name or any(c.isspace() for c in name):
        raise TritonImageError(f"image {image!r} must be a name[:tag] to build (no digest, no spaces)")
    return name


def build_image(
    docker: DockerCli,
    *,
    image: str,
    base_image: str,
    wheelhouse_dir: str | None,
    python_packages: Sequence[str] | None,
    plan: RepositoryPlan | None,
    timeout: int,
    pull: bool = True,
) -> dict[str, Any]:
    """Make ``image`` the image these inputs build; build only when no image carries their digest.

    Returns ``changed``, ``built``, ``tagged``, ``pulled``, ``id`` (None in check mode before a build),
    ``name``, ``inputs_digest``, ``inputs`` and ``base_id``.
    """
    image = check_image_name(image)
    inputs = build_inputs(
        docker,
        base_image=base_image,
        wheelhouse_dir=wheelhouse_dir,
        python_packages=python_packages,
        plan=plan,
    )
    result: dict[str, Any] = {
        "changed": False,
        "built": False,
        "tagged": False,
        "pulled": False,
        "name": image,
        "id": None,
        "base_image": base_image,
        "base_id": inputs.base_id,
        "inputs_digest": None,
        "inputs": None,
        "baked_models": inputs.models,
    }
    if inputs.base_id is None:
        if not pull:
            raise TritonImageError(f"base image {base_image!r} is not on this host (and pull is off)")
        result.update(changed=True, built=True, pulled=True)
        if docker.check_mode:
            return result
        docker.run(
            "pull", base_image, action=f"pull base image {base_image!r}", mutating=True, timeout=timeout
        )
        inputs = build_inputs(
            docker,
            base_image=base_image,
            wheelhouse_dir=wheelhouse_dir,
            python_packages=python_packages,
            plan=plan,
        )
        result["base_id"] = inputs.base_id
    digest = inputs.digest()
    result.update(inputs_digest=digest, inputs=inputs.as_dict())
    current = docker.inspect("image", image)
    if (
        current is not None
        and ((current.get("Config") or {}).get("Labels") or {}).get(INPUTS_LABEL) == digest
    ):
        result["id"] = current["Id"]
        return result
    same = _images_with_label(docker, INPUTS_LABEL, digest)
    if same:
        result.update(changed=True, tagged=True, id=same[0])
        if not docker.check_mode:
            docker.run("tag", same[0], image, action=f"tag {same[0]} as {image}", mutating=True)
        return result
    result.update(changed=True, built=True)
    if docker.check_mode:
        return result
    result["id"] = _docker_build(docker, image, inputs, plan, timeout)
    return result


def _docker_build(
    docker: DockerCli, image: str, inputs: BuildInputs, plan: RepositoryPlan | None, timeout: int
) -> str:
    ctx = Path(tempfile.mkdtemp(prefix=BUILD_TMP_PREFIX))
    try:
        write_context(ctx, inputs, plan)
        args = ["build", "--network", "none", "--rm", "--force-rm", "-t", image]
        args += ["--build-arg", f"BASE_IMAGE={inputs.base_image}"]
        for key, value in sorted(inputs.labels().items()):
            args += ["--label", f"{key}={value}"]
        proc = docker.run(
            *args, str(ctx), action=f"build image {image!r}", mutating=True, timeout=timeout,
            env=docker_env(DOCKER_BUILDKIT="0"), check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).strip().splitlines()
            raise TritonImageError(
                f"docker build of {image!r} FROM {inputs.base_image!r} failed:\n" + "\n".join(out[-40:]),
                build_output=out[-200:],
            )
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    built = docker.inspect("image", image)
    labels = ((built or {}).get("Config") or {}).get("Labels") or {}
    if built is None or labels.get(INPUTS_LABEL) != inputs.digest():
        raise TritonImageError(f"docker build reported success but {image!r} does not carry the inputs label")
    return str(built["Id"])


# --------------------------------------------------------------------------------------------- store


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TritonImageError(f"image record '{path}' does not exist") from None
    except (OSError, ValueError) as exc:
        raise TritonImageError(f"image record '{path}' cannot be read as JSON: {exc}") from None
    try:
        return check_record(data)
    except ClearmlModuleError as exc:
        raise TritonImageError(f"image record '{path}': {exc.msg}") from None


def store_image(
    docker: DockerCli, *, image: str, image_id: str | None, store_root: str, record_path: str
) -> dict[str, Any]:
    """Save ``image`` into the blob store and write its record, unless both already hold it."""
    result: dict[str, Any] = {
        "changed": False,
        "record_path": record_path,
        "store": store_root,
        "record": None,
    }
    existing = None
    with contextlib.suppress(TritonImageError):
        existing = read_record(record_path)
    if existing is not None and image_id is not None and existing["id"] == image_id:
        store_dir = Path(store_root)
        problems = verify_blobs(existing, lambda d: store_dir / "blobs" / "sha256" / d)
        if not problems:
            result["record"] = existing
            return result
    result["changed"] = True
    if docker.check_mode:
        return result
    try:
        store = BlobStore(store_root)
        records = export_images([image], store.put_file, store.root, put_stream=store.put_stream)
        store.sync()
    except BundleError as exc:
        raise TritonImageError(f"cannot store image {image!r} in '{store_root}': {exc.msg}") from None
    (record,) = records
    if image_id is not None and record["id"] != image_id:
        raise TritonImageError(f"image {image!r} changed while it was saved ({image_id} -> {record['id']})")
    Path(record_path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(record_path, pretty_json(record))
    result["record"] = record
    return result


# --------------------------------------------------------------------------------------------- site side


@dataclass
class SiteImage:
    """The image the site runs: the reference to start, its ID, labels, and what loading it did."""

    ref: str
    id: str
    labels: dict[str, str]
    source: str  # "record", "bundle" or "local"
    present: bool  # on the daemon now (False only in check mode before a load)
    load: dict[str, Any] = field(default_factory=dict)

    @property
    def baked_models(self) -> dict[str, str] | None:
        text = self.labels.get(MODELS_LABEL)
        if text is None:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            raise TritonImageError(f"image {self.ref!r}: label {MODELS_LABEL} is not JSON") from None
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.ref,
            "id": self.id,
            "source": self.source,
            "loaded": bool(self.load.get("loaded")),
            "tagged": list(self.load.get("tagged", [])),
            "baked_models": self.baked_models,
            "inputs_digest": self.labels.get(INPUTS_LABEL),
        }


def record_labels(record: Mapping[str, Any], blob_path: Any) -> dict[str, str]:
    """The image's labels from its config blob (the member whose digest is the image ID)."""
    config_hex = str(record["id"]).removeprefix("sha256:")
    for member in record["members"]:
        if member["digest"] == config_hex:
            try:
                config = json.loads(Path(blob_path(config_hex)).read_bytes())
            except (OSError, ValueError):
                return {}
            return dict((config.get("config") or {}).get("Labels") or {})
    return {}


def _manifest_record(images: Sequence[Mapping[str, Any]], name: str) -> dict[str, Any] | None:
    for record in images:
        if record.get("name") == name or name in (record.get("repo_tags") or []):
            return check_record(dict(record))
    return None


def site_image(
    docker: DockerCli,
    *,
    image: str | None,
    record_path: str | None,
    store_root: str | None,
    bundle_path: str | None,
    manifest_images: Sequence[Mapping[str, Any]] = (),
) -> SiteImage:
    """Make the daemon hold the image to run: from a record + blob store, from the bundle, or as present."""
    record = None
    source = "local"
    blob_root: Path | None = None
    if record_path:
        record = read_record(record_path)
        source = "record"
        blob_root = Path(store_root) if store_root else (Path(bundle_path) if bundle_path else None)
        if blob_root is None:
            raise TritonImageError("image_record needs image_store (or bundle) to load the image from")
    elif image and bundle_path:
        record = _manifest_record(manifest_images, image)
        if record is not None:
            source, blob_root = "bundle", Path(bundle_path)
    if record is not None and blob_root is not None:
        blobs = blob_root / "blobs" / "sha256"

        def blob_path(digest: str) -> Path:
            return blobs / digest

        try:
            load = load_image(record, blob_path, check_mode=docker.check_mode, docker=docker.docker)
        except ClearmlModuleError as exc:
            raise TritonImageError(f"cannot load the Triton image: {exc.msg}", **exc.result) from None
        present = docker.inspect("image", load["id"])
        labels = (
            dict(((present or {}).get("Config") or {}).get("Labels") or {})
            if present
            else record_labels(record, blob_path)
        )
        tags = [t for t in record.get("repo_tags", []) if t]
        ref = image if image and image in tags else (tags[0] if tags else load["id"])
        return SiteImage(ref, load["id"], labels, source, present is not None, load)
    if not image:
        raise TritonImageError(
            "give image (a name on this host or in the bundle) or image_record + image_store"
        )
    doc = docker.inspect("image", image)
    if doc is None:
        raise TritonImageError(
            f"image {image!r} is not on this host and no record says how to load it: give image_record and "
            "image_store (state=built writes them), or a bundle whose images include it"
        )
    labels = dict((doc.get("Config") or {}).get("Labels") or {})
    return SiteImage(image, str(doc["Id"]), labels, "local", True)


def remove_image(docker: DockerCli, ref: str) -> bool:
    """``docker rmi`` the image; False when it is not there. Fails while a container uses it."""
    if docker.inspect("image", ref) is None:
        return False
    if not docker.check_mode:
        docker.run("rmi", ref, action=f"remove image {ref!r}", mutating=True)
    return True


__all__ = [
    "DEFAULT_BASE_IMAGE",
    "DOCKERFILE",
    "INPUTS_LABEL",
    "MODELS_LABEL",
    "BuildInputs",
    "DockerError",
    "SiteImage",
    "TritonImageError",
    "build_image",
    "read_record",
    "record_labels",
    "remove_image",
    "requirements_text",
    "site_image",
    "store_image",
    "wheelhouse",
]
