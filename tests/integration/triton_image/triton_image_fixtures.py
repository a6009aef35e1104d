# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers of the triton_image integration tests: docker, free ports, a hand-made wheel, variant bundles.

Everything real: the seeded dev server exported by ``clearml_export`` (through ansible-playbook), the
own image built FROM ``d2s/triton-cpu`` by the module, containers on this host's docker daemon with
host networking on free loopback ports. Every container and image made here has a unique name and is
removed by name/ID at teardown.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import zipfile
from pathlib import Path
from typing import Any

from d2s_testlib import REPO, VENV_BIN, project_env

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_serve import TritonImageCore
from ansible_collections.deploy2standalone.clearml.plugins.modules import triton_image

TRITON_CPU = os.environ.get("D2S_TRITON_IMAGE", "d2s/triton-cpu:latest")
GENERIC_MODEL_PY = REPO / "tools" / "d2s_tools" / "seed" / "assets" / "model.py"
PROBE_PACKAGE = "d2s_triton_probe"
BROKEN_MODEL_PY = """\
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("d2s-test: this model refuses to start")

    def execute(self, requests):
        return []
"""


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr}{proc.stdout}"
        )
    return proc


def image_id(ref: str) -> str | None:
    proc = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def container_id(name: str) -> str | None:
    proc = docker("container", "inspect", "--format", "{{.Id}}", name, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def make_wheel(dest: Path, name: str = PROBE_PACKAGE, version: str = "1.0") -> Path:
    """A pure-Python wheel written by hand (no build backend, no network): ``import name`` -> VALUE."""

    def record_hash(data: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = 'probe {version}'\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: d2s-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{p},{record_hash(d)},{len(d)}\n" for p, d in files.items()) + f"{info}/RECORD,,\n"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in [*files.items(), (f"{info}/RECORD", record.encode())]:
            zf.writestr(zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return path


def run_core(args: dict[str, Any], *, check_mode: bool = False, diff: bool = False) -> dict[str, Any]:
    """The module's core in this process (defaults as AnsibleModule fills them): quicker than a playbook,
    for the tests that run the module many times; a failure comes back as ``failed`` with its ``msg``."""
    params = {name: spec.get("default") for name, spec in triton_image.ARGUMENT_SPEC.items()}
    params.update(args)
    try:
        return TritonImageCore(params, check_mode=check_mode, diff=diff).run()
    except ClearmlModuleError as exc:
        return {**exc.result, "failed": True, "msg": exc.msg}


class Runner:
    """Runs ``deploy2standalone.clearml.*`` tasks through ansible-playbook on localhost."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.count = 0

    def __call__(
        self, module: str, args: dict[str, Any], *flags: str, ignore_errors: bool = False
    ) -> tuple[dict[str, Any], str]:
        self.count += 1
        results = self.tmp / f"results-{self.count}.json"
        task: dict[str, Any] = {"name": "Run", f"deploy2standalone.clearml.{module}": args, "register": "r"}
        if ignore_errors:
            task["ignore_errors"] = True
        play = [
            {
                "name": "Test play",
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [
                    task,
                    {
                        "name": "Save the result",
                        "ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(results)},
                        "check_mode": False,
                        "diff": False,
                    },
                ],
            }
        ]
        pb = self.tmp / f"play-{self.count}.yml"
        pb.write_text(json.dumps(play))
        proc = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(pb), *flags],
            cwd=REPO,
            env=project_env(ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python")),
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        output = proc.stdout + proc.stderr
        if not results.exists():
            raise AssertionError(
                f"ansible-playbook ended with {proc.returncode} and no result:\n{output[-6000:]}"
            )
        return json.loads(results.read_text()), output


def variant_bundle(
    source: Path,
    dest: Path,
    *,
    endpoints: dict[str, dict[str, Any]],
    models: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A bundle like ``source`` with other serving endpoints and extra models (``{id: {framework,
    files: {name: local path}, package}}``), written by the bundle library and verified."""
    control = bundle.load_bundle(source)
    data = json.loads(json.dumps(control.manifest.data))
    with bundle.BundleWriter(dest, tool_version="0.0.0-test", api_host=data["source"]["api_host"]) as writer:
        for digest, entry in data["blobs"].items():
            writer.add_file(
                source / "blobs" / "sha256" / digest, kind=entry["kind"], media_type=entry["media_type"]
            )
        for model_id, extra in (models or {}).items():
            files = [
                {"path": name, "blob": writer.add_file(path, kind="model")}
                for name, path in extra["files"].items()
            ]
            data["models"][model_id] = {
                "name": f"test model {model_id[:6]}",
                "project": None,
                "framework": extra["framework"],
                "ready": True,
                "tags": [],
                "system_tags": ["package"] if extra.get("package") else [],
                "files": files,
            }
        data["blobs"] = writer.manifest["blobs"]
        data["serving"]["endpoints"] = endpoints
        writer.manifest.clear()
        writer.manifest.update(data)
        writer.finalize(volatile=control.volatile)
    bundle.verify_bundle(dest)
    return dest


def broken_package(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w") as zf:
        zf.writestr("model.py", BROKEN_MODEL_PY)
    return dest
