# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the triton_image integration tests: the seeded bundle, the own image, one site container.

Everything real: the seeded dev server exported by ``clearml_export`` (through ansible-playbook), the
own image built FROM ``d2s/triton-cpu`` by the module, containers on this host's docker daemon with
host networking on free loopback ports. Every container and image made here has a unique name and is
removed by name/ID at teardown.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from d2s_testlib import docker_available
from triton_image_fixtures import (
    GENERIC_MODEL_PY,
    TRITON_CPU,
    Runner,
    docker,
    free_ports,
    image_id,
    make_wheel,
    run_core,
)


@pytest.fixture(scope="session")
def require_docker() -> None:
    if not docker_available():
        pytest.fail("no docker daemon answers `docker info`: these tests need one (see scripts/setup.sh)")
    if image_id(TRITON_CPU) is None:
        pytest.fail(f"image {TRITON_CPU} is missing: run `bash scripts/build_images.sh` first")


@pytest.fixture(scope="session")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    return Runner(tmp_path_factory.mktemp("playbooks"))


@pytest.fixture(scope="session")
def seeded_bundle(seeded_dev: Any, runner: Runner, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded deployment exported by clearml_export: the bundle a site receives."""
    dest = tmp_path_factory.mktemp("export") / "bundle"
    args = {**seeded_dev.module_args(), "serving_id": seeded_dev.seed["serving"]["id"], "dest": str(dest)}
    result, output = runner("clearml_export", args)
    assert not result.get("failed"), output[-4000:]
    return dest


@pytest.fixture(scope="session")
def own_image(
    require_docker: None, runner: Runner, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    """The own image built FROM d2s/triton-cpu with a wheelhouse, saved into a blob store + record."""
    work = tmp_path_factory.mktemp("own-image")
    name = f"d2s-test/triton-site-{uuid.uuid4().hex[:10]}:test"
    args = {
        "state": "built",
        "image": name,
        "base_image": TRITON_CPU,
        "wheelhouse": str(make_wheel(work / "wheels").parent),
        "image_store": str(work / "store"),
        "image_record": str(work / "store" / "triton-image.json"),
    }
    made: set[str] = set()
    try:
        result, output = runner("triton_image", args)
        assert not result.get("failed"), output[-4000:]
        made.add(result["image"]["id"])
        yield {"name": name, "id": result["image"]["id"], "args": args, "result": result, "work": work}
    finally:
        for ref in [name, *sorted(made)]:
            docker("rmi", "-f", ref, check=False)


@pytest.fixture
def site(
    own_image: dict, seeded_bundle: Path, runner: Runner, tmp_path: Path
) -> Iterator[Callable[..., tuple[dict[str, Any], str]]]:
    """``site(bundle=..., **overrides, flags=[...])`` runs triton_image for one site container (unique
    name, free ports, its own repository); the container is removed at teardown."""
    name = f"d2s-test-triton-{uuid.uuid4().hex[:8]}"
    http_port, grpc_port, metrics_port = free_ports(3)
    base = {
        "state": "started",
        "bundle": str(seeded_bundle),
        "image": own_image["name"],
        "image_store": own_image["args"]["image_store"],
        "image_record": own_image["args"]["image_record"],
        "python_backend_for": ["onnx"],
        "python_model": str(GENERIC_MODEL_PY),
        "model_repository": str(tmp_path / "site" / "models"),
        "name": name,
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "ready_timeout": 120,
    }

    def run(*flags: str, ignore_errors: bool = False, **overrides: Any) -> tuple[dict[str, Any], str]:
        """Through ansible-playbook (``flags`` such as ``--check``, ``--diff``)."""
        args = {**base, **overrides}
        return runner("triton_image", args, *flags, ignore_errors=ignore_errors)

    def core(check_mode: bool = False, **overrides: Any) -> tuple[dict[str, Any], str]:
        """The module's core in this process (no playbook), with the same arguments."""
        return run_core({**base, **overrides}, check_mode=check_mode, diff=True), ""

    run.base = base  # type: ignore[attr-defined]
    run.core = core  # type: ignore[attr-defined]
    try:
        yield run
    finally:
        docker("rm", "-f", "-v", name, check=False)
