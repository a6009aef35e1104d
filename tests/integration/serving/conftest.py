# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the serving comparison: one dev stack, one site stack, the same images in both.

* dev: a copy of the seeded dev server (the session's ``seeded_dev`` stays read-only), Triton
  (d2s/triton-cpu) with a model repository made from the dev server's endpoints and model files, and
  the inference container (d2s/serving-inference) started by ``serving_service`` on this host;
* the bundle: ``clearml_export`` of the seeded dev server with the inference image among its images;
* site: a fresh site server into which ``clearml_import`` imports the bundle (on this host), whose data
  then moves into a network-less site host (d2s/site-host with its own dockerd) and is served there by
  the d2s-tools wheel on the same loopback ports; Triton (the d2s/triton-cpu image loaded into the site
  daemon) with the repository made from the bundle; and ``serving_service`` run *inside* the site host
  through the docker connection, loading the inference image from the bundle's blobs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from d2s_servers import start_local_server
from d2s_testlib import docker_available
from serving_stack import (
    ATOL,
    CLIENT,
    SITE_BUNDLE,
    SITE_CLIENT,
    SITE_IMPORT_INFO,
    SITE_MODELS,
    TRITON_CPU,
    Playbooks,
    build_serving_image,
    build_tools_wheel,
    clone_server,
    copy_into,
    docker,
    free_ports,
    image_id,
    load_image_into,
    repository_from_bundle,
    repository_from_server,
    site_exec,
    start_site_host,
    start_site_server,
    triton_args,
    wait_triton,
)


@pytest.fixture(scope="module")
def serving_image() -> dict[str, Any]:
    """The inference image, built by images/serving-inference/build.py (a no-op when current).

    Like d2s/triton-cpu it is a cached project image, kept after the tests (the next run reuses it).
    """
    if not docker_available():
        pytest.fail("no docker daemon answers `docker info`: these tests need one (see scripts/setup.sh)")
    for ref in ("d2s/base:bookworm", TRITON_CPU, "d2s/site-host:latest"):
        if image_id(ref) is None:
            pytest.fail(f"image {ref} is missing: run `bash scripts/build_images.sh` first")
    return build_serving_image()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="module")
def playbooks(work: Path) -> Playbooks:
    (work / "playbooks").mkdir()
    return Playbooks(work / "playbooks")


def serving_args(port: int, grpc_port: int, name: str, smoke: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "port": port,
        "listen_address": "127.0.0.1",
        "triton_grpc_address": f"127.0.0.1:{grpc_port}",
        "smoke_requests": smoke,
        "atol": ATOL,
        "ready_timeout": 240,
    }


@pytest.fixture(scope="module")
def dev_stack(
    seeded_dev: Any, serving_image: dict[str, Any], work: Path, playbooks: Playbooks
) -> Iterator[dict]:
    tag = uuid.uuid4().hex[:8]
    triton, serving = f"d2s-test-dev-triton-{tag}", f"d2s-test-dev-serving-{tag}"
    clone = clone_server(seeded_dev, work / "dev-clone")
    try:
        serving_id = seeded_dev.seed["serving"]["id"]
        repository = work / "dev-triton" / "models"
        models = repository_from_server(clone, serving_id, repository)
        ports = free_ports(4)
        docker(*triton_args(triton, str(repository), ports[:3], models))
        wait_triton(ports[0], models, triton)
        args = {
            **clone.module_args(),
            "serving_id": serving_id,
            "image": serving_image["tags"][0],
            **serving_args(ports[3], ports[1], serving, seeded_dev.seed["inference"]),
        }
        result, output = playbooks("serving_service", args)
        assert not result.get("failed"), output[-6000:]
        yield {"url": f"http://127.0.0.1:{ports[3]}", "result": result, "models": models, "args": args}
    finally:
        for name in (serving, triton):
            docker("rm", "-f", name, check=False)
        clone.stop()


@pytest.fixture(scope="module")
def bundle(seeded_dev: Any, serving_image: dict[str, Any], work: Path, playbooks: Playbooks) -> Path:
    """The seeded deployment exported with the inference image among the bundle's images."""
    dest = work / "bundle"
    args = {
        **seeded_dev.module_args(),
        "serving_id": seeded_dev.seed["serving"]["id"],
        "dest": str(dest),
        "images": [serving_image["tags"][0]],
    }
    result, output = playbooks("clearml_export", args)
    assert not result.get("failed"), output[-6000:]
    return dest


@pytest.fixture(scope="module")
def site_stack(
    seeded_dev: Any, serving_image: dict[str, Any], bundle: Path, work: Path, playbooks: Playbooks
) -> Iterator[dict]:
    # 1. import into a fresh site server (on this host), then move its data into the site host
    server = start_local_server(work / "site-server")
    try:
        info_path = work / "import_info.json"
        result, output = playbooks(
            "clearml_import",
            {
                **server.module_args(),
                "bundle": str(bundle),
                "site_name": "site_serving",
                "import_info_path": str(info_path),
            },
        )
        assert not result.get("failed"), output[-6000:]
    finally:
        server.stop()
    wheel = build_tools_wheel(work / "tools-wheel")
    site = start_site_host(f"d2s.test=serving-{uuid.uuid4().hex[:8]}")
    try:
        urls = start_site_server(site, wheel, server.data_dir, server.urls)
        assert {k: urls[k] for k in ("api", "web", "files")} == {
            k: server.urls[k] for k in ("api", "web", "files")
        }
        # 2. Triton in the site host's own daemon, the repository written from the bundle
        repository = work / "site-triton" / "models"
        models = repository_from_bundle(bundle, repository)
        copy_into(site, repository, SITE_MODELS)
        load_image_into(site, TRITON_CPU)
        ports = free_ports(4)
        site_exec(site, "docker", *triton_args("d2s-triton", SITE_MODELS, ports[:3], models))
        wait_triton(ports[0], models, "d2s-triton", site=site)
        # 3. the bundle, import_info.json and the test client on the site host
        copy_into(site, bundle, SITE_BUNDLE)
        copy_into(site, info_path, SITE_IMPORT_INFO)
        copy_into(site, CLIENT, SITE_CLIENT)
        args = {
            **server.module_args(),
            "bundle": SITE_BUNDLE,
            "import_info": SITE_IMPORT_INFO,
            **serving_args(ports[3], ports[1], "d2s-serving-inference", seeded_dev.seed["inference"]),
        }
        yield {
            "site": site,
            "url": f"http://127.0.0.1:{ports[3]}",
            "args": args,
            "id_map": json.loads(info_path.read_text())["map"],
            "models": models,
            "playbooks": playbooks,
        }
    finally:
        docker("rm", "-f", "-v", site, check=False)
