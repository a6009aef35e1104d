# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers of the serving comparison tests: images, Triton, servers, the site host, playbooks, the client.

Everything real: docker on this host (and the site host's own dockerd), d2s/triton-cpu's tritonserver,
the project's local ClearML server, ansible-playbook with this collection. Containers and images made
here carry unique names and are removed by name or ID.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from clearml.utilities.pyhocon import ConfigFactory
from d2s_servers import LocalServer, start_local_server
from d2s_testlib import REPO, VENV_BIN, project_env

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _triton
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import ClearmlClient

HERE = Path(__file__).resolve().parent
CLIENT = HERE / "client.py"
TRITON_CPU = os.environ.get("D2S_TRITON_IMAGE", "d2s/triton-cpu:latest")
SITE_HOST_IMAGE = os.environ.get("D2S_SITE_HOST_IMAGE", "d2s/site-host:latest")
GENERIC_MODEL_PY = REPO / "tools" / "d2s_tools" / "seed" / "assets" / "model.py"
CAPABILITIES = (
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_PTRACE",
    "MKNOD",
    "SETFCAP",
    "NET_RAW",
    "SYS_CHROOT",
    "DAC_READ_SEARCH",
    "IPC_LOCK",
)
# Paths inside the site host.
SITE_BUNDLE = "/srv/d2s/bundle"
SITE_MODELS = "/srv/d2s/triton/models"
SITE_SERVER_DATA = "/srv/d2s/clearml"
SITE_IMPORT_INFO = "/srv/d2s/import_info.json"
SITE_CLIENT = "/srv/d2s/client.py"
ATOL = 1e-6  # seed.json's expected answers are float32 values computed on another path (docs/seed.md)


def docker(
    *args: str, input_bytes: bytes | None = None, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["docker", *args], input=input_bytes, capture_output=True, check=False, timeout=timeout
    )
    out = subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args[:6])} … failed ({proc.returncode}): {out.stderr}{out.stdout}"
        )
    return out


def image_id(ref: str) -> str | None:
    proc = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
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


# ------------------------------------------------------------------------------------------ images
def build_serving_image() -> dict[str, Any]:
    """images/serving-inference/build.py (cached by input hash: a no-op when the image is current)."""
    path = REPO / "images" / "serving-inference" / "build.py"
    spec = importlib.util.spec_from_file_location("d2s_serving_image_build", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.build().as_dict()


# ----------------------------------------------------------------------------------------- servers
def clone_server(source: LocalServer, dest: Path) -> LocalServer:
    """A copy of a running server's data (SQLite online backup + its files), served by a new instance.

    The dev stack runs against the copy: an inference container marks its serving task started and
    creates a "serve instance" task, and the session's seeded dev server stays read-only. URLs inside
    (model and artifact files) still name the source's fileserver, which only gets GETs.
    """
    src = Path(source.urls.get("data_dir") or source.data_dir)
    dest.mkdir(parents=True)
    with sqlite3.connect(f"file:{src / 'clearml.sqlite3'}?mode=ro", uri=True) as reader:
        writer = sqlite3.connect(dest / "clearml.sqlite3")
        reader.backup(writer)
        writer.close()
    shutil.copytree(src / "files", dest / "files")
    return start_local_server(dest)


def client_of(server: LocalServer) -> ClearmlClient:
    args = server.module_args()
    return ClearmlClient(
        args["api_host"], args["access_key"], args["secret_key"], args["web_host"], args["files_host"]
    )


def server_endpoints(server: LocalServer, serving_id: str) -> dict[str, Any]:
    """The serving task's ``endpoints`` configuration object, parsed as clearml-serving reads it."""
    task = client_of(server).call("tasks.get_by_id", {"task": serving_id})["task"]
    text = task["configuration"]["endpoints"]["value"]
    return json.loads(json.dumps(ConfigFactory.parse_string(text).as_plain_ordered_dict()))


def repository_from_server(server: LocalServer, serving_id: str, dest: Path) -> list[str]:
    """Dev's Triton model repository: the endpoints and model files as the dev server holds them."""
    client = client_of(server)
    endpoints = server_endpoints(server, serving_id)
    models: dict[str, Any] = {}
    for ep in endpoints.values():
        if ep.get("engine_type") != "triton":
            continue
        doc = client.call("models.get_by_id", {"model": ep["model_id"]})["model"]
        local = dest.parent / "downloads" / ep["model_id"] / Path(doc["uri"]).name
        local.parent.mkdir(parents=True, exist_ok=True)
        client.download(doc["uri"], local)
        models[ep["model_id"]] = {
            "framework": doc.get("framework"),
            "package": "package" in (doc.get("system_tags") or []),
            "files": [{"path": local.name, "local": str(local)}],
        }
    plan = _triton.plan_repository(
        endpoints, models, python_backend_for=["onnx"], python_model=GENERIC_MODEL_PY
    )
    _triton.write_repository(plan, dest)
    return [m.name for m in plan.models]


def repository_from_bundle(bundle: Path, dest: Path) -> list[str]:
    """The site's Triton model repository: the bundle's endpoints and model blobs."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    endpoints = manifest["serving"]["endpoints"]
    models = {
        mid: {
            "framework": m.get("framework"),
            "package": "package" in (m.get("system_tags") or []),
            "files": [
                {
                    "path": f["path"],
                    "local": str(bundle / "blobs" / "sha256" / f["blob"]),
                    "sha256": f["blob"],
                }
                for f in m["files"]
            ],
        }
        for mid, m in manifest["models"].items()
        if any(ep.get("model_id") == mid and ep.get("engine_type") == "triton" for ep in endpoints.values())
    }
    plan = _triton.plan_repository(
        endpoints, models, python_backend_for=["onnx"], python_model=GENERIC_MODEL_PY
    )
    _triton.write_repository(plan, dest)
    return [m.name for m in plan.models]


def triton_args(name: str, repository: str, ports: list[int], models: list[str]) -> list[str]:
    http_port, grpc_port, metrics_port = ports
    args = ["run", "-d", "--name", name, "--network", "host", "--shm-size", "256m"]
    args += ["-v", f"{repository}:/models:ro", TRITON_CPU, "tritonserver", "--model-repository=/models"]
    args += ["--model-control-mode=explicit", *[f"--load-model={m}" for m in models]]
    args += [f"--http-port={http_port}", f"--grpc-port={grpc_port}", f"--metrics-port={metrics_port}"]
    return [*args, "--http-address=127.0.0.1", "--grpc-address=127.0.0.1"]


TRITON_READY = """
import sys, time, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
base, models, deadline = sys.argv[1], sys.argv[2:], time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        if all(opener.open(base + p, timeout=5).status == 200
               for p in ["/v2/health/ready", *[f"/v2/models/{m}/ready" for m in models]]):
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(1)
"""


def wait_triton(http_port: int, models: list[str], name: str, site: str | None = None) -> None:
    """Triton answers ready with every model READY (asked from the site host when ``site``)."""
    base = f"http://127.0.0.1:{http_port}"
    if site:
        ok = docker(
            "exec", site, "python3", "-c", TRITON_READY, base, *models, check=False, timeout=180
        ).returncode
        logs = ("exec", site, "docker", "logs", "--tail", "30", name)
    else:
        ok = subprocess.run(
            [sys.executable, "-c", TRITON_READY, base, *models], check=False, timeout=180
        ).returncode
        logs = ("logs", "--tail", "30", name)
    if ok != 0:
        said = docker(*logs, check=False)
        raise AssertionError(f"Triton never became ready with {models}: {said.stdout}{said.stderr}")


# --------------------------------------------------------------------------------------- site host
def start_site_host(label: str) -> str:
    args = ["run", "-d", "--network", "none", "--cgroupns", "host", "--label", label]
    args += [f"--cap-add={cap}" for cap in CAPABILITIES]
    args += ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined"]
    args += ["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/var/lib/docker", SITE_HOST_IMAGE]
    cid = docker(*args).stdout.strip()
    ready = docker("exec", cid, "d2s-dockerd-wait", "120", check=False, timeout=180)
    if ready.returncode != 0:
        logs = docker("logs", cid, check=False)
        docker("rm", "-f", "-v", cid, check=False)
        raise AssertionError(
            f"the site host's dockerd never answered: {ready.stderr}{logs.stdout}{logs.stderr}"
        )
    return cid


def site_exec(
    cid: str, *cmd: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return docker("exec", cid, *cmd, check=check, timeout=timeout)


def copy_into(cid: str, src: Path, dest: str) -> None:
    site_exec(cid, "mkdir", "-p", str(Path(dest).parent))
    docker("cp", str(src), f"{cid}:{dest}")


def load_image_into(cid: str, ref: str) -> None:
    """``docker save`` here, ``docker load`` in the site host's own daemon (a pipe, no network)."""
    with subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE) as save:
        load = subprocess.run(
            ["docker", "exec", "-i", cid, "docker", "load"],
            stdin=save.stdout,
            capture_output=True,
            check=False,
        )
    assert save.returncode == 0 and load.returncode == 0, load.stderr.decode(errors="replace")


def build_tools_wheel(dest: Path) -> Path:
    """The d2s-tools wheel (the local ClearML server) from ``tools/``, built in a copy of the tree."""
    src = dest / "src"
    shutil.copytree(REPO / "tools", src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    proc = subprocess.run(
        [
            str(VENV_BIN / "pip"),
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            str(src),
            "-w",
            str(dest),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    wheels = sorted(dest.glob("d2s_tools-*.whl"))
    assert proc.returncode == 0 and wheels, proc.stdout + proc.stderr
    return wheels[0]


SERVER_READY = """
import json, sys, time, pathlib
path, deadline = pathlib.Path(sys.argv[1]), time.monotonic() + 60
while time.monotonic() < deadline:
    if path.is_file() and path.stat().st_size:
        try:
            print(json.dumps(json.loads(path.read_text()))); sys.exit(0)
        except ValueError:
            pass
    time.sleep(0.2)
sys.exit(1)
"""


def start_site_server(cid: str, wheel: Path, data: Path, urls: dict[str, str]) -> dict[str, str]:
    """Install the d2s-tools wheel in the site host (offline) and serve ``data`` on the ports of ``urls``."""
    copy_into(cid, wheel, f"/tmp/{wheel.name}")
    site_exec(cid, "python3", "-m", "venv", "/opt/d2s-tools")
    site_exec(cid, "/opt/d2s-tools/bin/pip", "install", "-q", "--no-index", "--no-deps", f"/tmp/{wheel.name}")
    copy_into(cid, data, SITE_SERVER_DATA)
    ports = {k: str(urls[k].rsplit(":", 1)[1]) for k in ("api", "files", "web")}
    ready = "/srv/d2s/clearml.ready.json"
    site_exec(
        cid,
        "sh",
        "-c",
        f"nohup /opt/d2s-tools/bin/d2s-clearml-server --data-dir {SITE_SERVER_DATA} --api-port {ports['api']} "
        f"--files-port {ports['files']} --web-port {ports['web']} --ready-file {ready} "
        ">/srv/d2s/clearml.log 2>&1 &",
    )
    proc = site_exec(cid, "python3", "-c", SERVER_READY, ready, check=False, timeout=90)
    if proc.returncode != 0:
        log = site_exec(cid, "cat", "/srv/d2s/clearml.log", check=False)
        raise AssertionError(f"the site server did not start in the site host: {log.stdout}{log.stderr}")
    return json.loads(proc.stdout)


# --------------------------------------------------------------------------------------- playbooks
class Playbooks:
    """Runs one ``deploy2standalone.clearml.*`` module task through ansible-playbook; returns its result."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.count = 0

    def __call__(
        self, module: str, args: dict[str, Any], *flags: str, site: str | None = None
    ) -> tuple[dict[str, Any], str]:
        self.count += 1
        results = self.tmp / f"result-{self.count}.json"
        inventory = self.tmp / f"inventory-{self.count}.ini"
        if site:
            inventory.write_text(
                "[site]\nsite-host ansible_connection=community.docker.docker "
                f"ansible_host={site} ansible_python_interpreter=/usr/bin/python3\n"
            )
        else:
            inventory.write_text(
                f"[site]\nlocalhost ansible_connection=local ansible_python_interpreter={VENV_BIN}/python\n"
            )
        play = [
            {
                "name": "Test play",
                "hosts": "site",
                "gather_facts": False,
                "tasks": [
                    {
                        "name": "Run",
                        f"deploy2standalone.clearml.{module}": args,
                        "register": "r",
                        "ignore_errors": True,
                    },
                    {
                        "name": "Save the result",
                        "ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(results)},
                        "delegate_to": "localhost",
                        "check_mode": False,
                        "diff": False,
                        "vars": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": str(VENV_BIN / "python"),
                        },
                    },
                ],
            }
        ]
        playbook = self.tmp / f"play-{self.count}.yml"
        playbook.write_text(json.dumps(play))
        proc = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *flags],
            cwd=REPO,
            env=project_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=1200,
        )
        output = proc.stdout + proc.stderr
        if not results.exists():
            raise AssertionError(
                f"ansible-playbook ended with {proc.returncode} and no result:\n{output[-6000:]}"
            )
        return json.loads(results.read_text()), output


# ------------------------------------------------------------------------------------------ client
def ask(base_url: str, requests: list[tuple[str, Any]], site: str | None = None) -> list[dict[str, Any]]:
    """The answers of a serving stack to ``requests`` (``[(endpoint, body)]``), asked by client.py."""
    plan = json.dumps({"base_url": base_url, "requests": requests}).encode()
    if site:
        proc = docker("exec", "-i", site, "python3", SITE_CLIENT, input_bytes=plan, timeout=900)
        return json.loads(proc.stdout)
    done = subprocess.run(
        [sys.executable, str(CLIENT)], input=plan, capture_output=True, check=True, timeout=900
    )
    return json.loads(done.stdout)
