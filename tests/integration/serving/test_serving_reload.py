# SPDX-License-Identifier: GPL-3.0-or-later
"""A changed serving configuration is served at once: serving_service replaces the inference container.

clearml-serving's inference service reads its serving task's configuration when it starts and then
every ``CLEARML_SERVING_POLL_FREQ`` minutes (5 by default). After an import changed the site's serving
service (a redeploy pointed an endpoint at a new model, a rollback pointed it back), the answers must
change without waiting for that poll. ``serving_service`` keeps a fingerprint of the service's
configuration in a container label and replaces the container when it differs.

Real components: a copy of the seeded dev server (the project's local ClearML server) holding the
seeded serving service, whose Triton endpoint is removed with the clearml-serving CLI first (this test
is about the custom engine; no Triton runs), the d2s/serving-inference container on this host run by
the module through ansible-playbook, and the clearml-serving CLI that changes the endpoint as an ML
engineer (or an import) would.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from d2s_servers import LocalServer
from serving_stack import ATOL, Playbooks, ask, clone_server, docker, free_ports

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._serving import CONFIG_LABEL
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._serving_probe import differences
from d2s_tools.seed import runner, serving, spec

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1200)]

ENDPOINT = "iris_custom/2"


def _cli(server: LocalServer, home: Path, *args: str) -> str:
    """The real clearml-serving CLI against ``server`` (a private HOME, no proxy but a closed one)."""
    env = runner.flow_env(server.env(), home)
    proc = subprocess.run(
        [*serving.cli_prefix(), "--yes", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"clearml-serving {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def reload_stack(
    seeded_dev: Any, serving_image: dict[str, Any], work: Path, playbooks: Playbooks
) -> Iterator[dict[str, Any]]:
    seed = seeded_dev.seed
    serving_id = seed["serving"]["id"]
    server = clone_server(seeded_dev, work / "reload-server")
    name = f"d2s-test-reload-{uuid.uuid4().hex[:8]}"
    try:
        # Custom engines only: the Triton endpoint (and its metric logging) leave the service.
        _cli(
            server,
            work / "reload-home",
            "--id",
            serving_id,
            "model",
            "remove",
            "--endpoint",
            spec.TRITON_ENDPOINT,
        )
        (port,) = free_ports(1)
        args = {
            **server.module_args(),
            "serving_id": serving_id,
            "image": serving_image["tags"][0],
            "name": name,
            "port": port,
            "listen_address": "127.0.0.1",
            "triton_grpc_address": "127.0.0.1:1",
            "atol": ATOL,
            "ready_timeout": 240,
        }

        def run(smoke: dict[str, Any], *flags: str) -> dict[str, Any]:
            result, output = playbooks("serving_service", {**args, "smoke_requests": smoke}, "--diff", *flags)
            assert not result.get("failed"), output[-6000:]
            return result

        yield {"server": server, "run": run, "url": f"http://127.0.0.1:{port}", "name": name}
    finally:
        docker("rm", "-f", name, check=False)
        server.stop()


def _label(name: str) -> str:
    return docker(
        "inspect", "--format", f'{{{{index .Config.Labels "{CONFIG_LABEL}"}}}}', name
    ).stdout.strip()


def test_changed_configuration_replaces_the_container(
    seeded_dev: Any, reload_stack: dict[str, Any], work: Path
) -> None:
    seed = seeded_dev.seed
    run, url, name = reload_stack["run"], reload_stack["url"], reload_stack["name"]
    old = seed["inference"][ENDPOINT]  # single_seed1's answer
    new = seed["inference"]["iris_custom/1"]  # what single_seed0 answers: the model the endpoint gets
    assert old["response"] != new["response"]
    request = old["request"]

    first = run({ENDPOINT: {"request": request, "response": old["response"]}})
    assert first["changed"] is True and first["container"]["action"] == "create"
    fingerprint = first["service"]["fingerprint"]
    assert len(fingerprint) == 64 and _label(name) == fingerprint
    assert first["diff"]["after"]["container"]["service_config"] == fingerprint
    again = run({ENDPOINT: {"request": request}})
    assert again["changed"] is False and again["container"]["action"] == "none"
    assert again["service"]["fingerprint"] == fingerprint

    # The endpoint is pointed at another model, as a redeploy's import would do at a site.
    _cli(
        reload_stack["server"],
        work / "reload-home",
        "--id",
        seed["serving"]["id"],
        "model",
        "add",
        "--engine",
        "custom",
        "--endpoint",
        ENDPOINT.split("/", maxsplit=1)[0],
        "--version",
        ENDPOINT.split("/")[1],
        "--model-id",
        seed["models"][new["model"]]["id"],
        "--preprocess",
        str(spec.ASSETS_DIR / seed["serving"]["endpoints"][ENDPOINT]["preprocess_file"]),
    )
    # The running service still answers with the old model: it reads the change only at its next poll.
    (stale,) = ask(url, [(ENDPOINT, request)])
    assert stale["status"] == 200 and differences(stale["body"], old["response"], atol=ATOL) == []

    planned = run({ENDPOINT: {"request": request}}, "--check")
    assert planned["changed"] is True and planned["container"]["action"] == "recreate"
    assert planned["container"]["id"] == first["container"]["id"]  # check mode touched nothing
    assert _label(name) == fingerprint

    changed = run({ENDPOINT: {"request": request, "response": new["response"]}})
    assert changed["changed"] is True and changed["container"]["action"] == "recreate"
    assert any("serving service's configuration changed" in r for r in changed["container"]["reasons"])
    assert changed["container"]["id"] != first["container"]["id"]
    new_fingerprint = changed["service"]["fingerprint"]
    assert new_fingerprint != fingerprint and _label(name) == new_fingerprint
    assert changed["diff"]["before"]["container"]["service_config"] == fingerprint
    assert changed["diff"]["after"]["container"]["service_config"] == new_fingerprint
    assert changed["smoke"][ENDPOINT]["as_expected"] is True
    (fresh,) = ask(url, [(ENDPOINT, request)])
    assert fresh["status"] == 200 and differences(fresh["body"], new["response"], atol=ATOL) == []

    # Nothing changed since: the container stays.
    steady = run({ENDPOINT: {"request": request}})
    assert steady["changed"] is False and steady["container"]["action"] == "none"
    assert steady["container"]["id"] == changed["container"]["id"]
    assert steady["service"]["fingerprint"] == new_fingerprint
