# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Triton container: its desired spec, the ``docker run`` arguments, and the docker CLI calls.

Private to this collection: not a public API, may change without notice.

Like ``_images.py`` this drives the ``docker`` CLI (no SDK): site hosts have the CLI wherever they have a
daemon, and it honours the operator's ``DOCKER_HOST``/context. Every call goes through ``DockerCli``,
which records it and refuses a mutating call in check mode (the unit tests read the record).

The container's desired configuration is a ``ContainerSpec``; its canonical JSON is stored in a label,
so comparing a running container with what is wanted is a comparison of two dicts (plus the image ID
and the command docker reports), and the diff shows exactly what differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError

LABEL_PREFIX = "org.deploy2standalone.triton"
MANAGED_LABEL = f"{LABEL_PREFIX}.managed"
SPEC_LABEL = f"{LABEL_PREFIX}.spec"
SPEC_DIGEST_LABEL = f"{LABEL_PREFIX}.spec-digest"
CONTAINER_REPOSITORY = "/models"
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
DEFAULT_TIMEOUT = 120  # seconds, for short docker commands
STOP_TIMEOUT = 40  # Triton's own exit timeout is 30 s
_DAEMON_DOWN = (
    "cannot connect to the docker daemon",
    "error during connect",
    "is the docker daemon running",
    "permission denied while trying to connect",
)


class DockerError(ClearmlModuleError):
    """A docker CLI call failed; the message names the operation and what docker said."""


def _bin(docker: str) -> str:
    found = shutil.which(docker)
    if not found:
        raise DockerError(f"docker CLI {docker!r} not found on PATH: install the docker client on this host")
    return found


class DockerCli:
    """Runs ``docker`` commands; records each one; refuses mutating ones in check mode."""

    def __init__(self, docker: str = "docker", *, check_mode: bool = False) -> None:
        self.docker = _bin(docker)
        self.check_mode = check_mode
        self.calls: list[tuple[bool, list[str]]] = []  # (mutating, args)

    def run(
        self,
        *args: str,
        action: str,
        mutating: bool = False,
        timeout: float | None = DEFAULT_TIMEOUT,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        if mutating and self.check_mode:
            raise DockerError(f"internal error: tried to {action} in check mode")
        self.calls.append((mutating, list(args)))
        try:
            proc = subprocess.run(
                [self.docker, *args],
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout,
                env=dict(env) if env is not None else None,
            )
        except subprocess.TimeoutExpired:
            raise DockerError(f"docker did not finish within {timeout}s while trying to {action}") from None
        if check and proc.returncode != 0:
            raise daemon_error(action, proc.stderr or proc.stdout)
        return proc

    def inspect(self, kind: str, ref: str) -> dict[str, Any] | None:
        """``docker <kind> inspect ref`` (kind: ``image`` or ``container``); None when there is none."""
        proc = self.run(kind, "inspect", ref, action=f"inspect {kind} {ref!r}", check=False)
        if proc.returncode != 0:
            if "no such" in proc.stderr.lower():
                return None
            raise daemon_error(f"inspect {kind} {ref!r}", proc.stderr)
        try:
            docs = json.loads(proc.stdout)
        except ValueError:
            raise DockerError(
                f"docker {kind} inspect {ref!r} printed no JSON: {proc.stdout[:200]!r}"
            ) from None
        return docs[0] if docs else None

    def logs_tail(self, container: str, lines: int = 40) -> str:
        proc = self.run("logs", "--tail", str(lines), container, action="read container logs", check=False)
        return (proc.stdout + proc.stderr).strip()


def daemon_error(action: str, stderr: str) -> DockerError:
    text = (stderr or "").strip() or "(no output)"
    if any(marker in text.lower() for marker in _DAEMON_DOWN):
        return DockerError(f"docker daemon unreachable while trying to {action}: {text}")
    return DockerError(f"docker failed to {action}: {text}")


# --------------------------------------------------------------------------------------------- GPUs


def gpu_request(gpus: Sequence[str] | None) -> str | None:
    """The value of ``docker run --gpus`` for the ``gpus`` option; None for a CPU-only container.

    ``[]``/None: no GPU. ``["all"]``: every GPU. ``["count=2"]``: any two GPUs. Otherwise device
    indexes or UUIDs, always named (a bare ``2`` would mean a count to docker): ``["0"]`` ->
    ``device=0``, ``["0", "2"]`` -> ``"device=0,2"`` (quoted: docker parses the value as CSV).
    """
    if not gpus:
        return None
    items = [str(g).strip() for g in gpus]
    if any(not g for g in items):
        raise ClearmlModuleError(f"gpus: empty device name in {list(gpus)!r}")
    if items == ["all"]:
        return "all"
    if len(items) == 1 and items[0].startswith("count="):
        count = items[0].removeprefix("count=")
        if not count.isdigit() or int(count) < 1:
            raise ClearmlModuleError(f"gpus: {items[0]!r} needs a positive number of GPUs")
        return count
    if "all" in items or any(g.startswith("count=") for g in items):
        raise ClearmlModuleError(f"gpus: 'all' and 'count=N' stand alone, got {items!r}")
    bad = [g for g in items if any(c in g for c in ',"= ')]
    if bad:
        raise ClearmlModuleError(f"gpus: invalid device name(s) {bad!r} (device indexes or GPU UUIDs)")
    if len(items) == 1:
        return f"device={items[0]}"
    return '"device={}"'.format(",".join(items))


# --------------------------------------------------------------------------------------------- spec


def _probe_host(address: str) -> str:
    """Where the module reaches Triton: its listen address, loopback for a wildcard."""
    if address in ("0.0.0.0", "", "::"):  # noqa: S104 - the wildcard Triton listens on, probed on loopback
        return "127.0.0.1"
    return address


def tritonserver_command(
    *,
    server_id: str,
    address: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    shm_prefix: str,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The tritonserver command line: EXPLICIT model control, every model of the repository loaded at start.

    ``--load-model=*`` makes a restarted container (restart policy, host reboot) serve again by itself;
    ``--exit-on-error=false`` keeps it up when one model fails; readiness is judged per model by the
    module, so ``--strict-readiness=false`` lets ``/v2/health/ready`` say whether the server itself is up.
    ``--id`` lets the module check that the server answering on the port is this one.
    """
    cmd = [
        "tritonserver",
        f"--model-repository={CONTAINER_REPOSITORY}",
        "--model-control-mode=explicit",
        "--load-model=*",
        "--exit-on-error=false",
        "--strict-readiness=false",
        f"--id={server_id}",
        f"--http-address={address}",
        f"--http-port={http_port}",
    ]
    if grpc_port:
        cmd += [f"--grpc-address={address}", f"--grpc-port={grpc_port}"]
    else:
        cmd.append("--allow-grpc=false")
    if metrics_port:
        cmd += [f"--metrics-address={address}", f"--metrics-port={metrics_port}"]
    else:
        cmd.append("--allow-metrics=false")
    cmd.append(f"--backend-config=python,shm-region-prefix-name={shm_prefix}")
    cmd.extend(str(a) for a in extra_args)
    return cmd


@dataclass
class ContainerSpec:
    """Everything the module sets on the container (the image as a reference; its ID is compared apart)."""

    name: str
    image: str
    command: list[str]
    restart_policy: str = "unless-stopped"
    memory: str | None = None
    cpus: float | None = None
    gpus: str | None = None
    shm_size: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)  # "src:dst[:ro]"
    network: str = "host"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("image")  # an image name may move to another ID; the ID is compared on its own
        data["env"] = dict(sorted(self.env.items()))
        return data

    def canonical(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()

    def run_args(self) -> list[str]:
        """``docker run`` arguments (after ``run``), detached, labelled with the spec."""
        args = ["-d", "--name", self.name, "--network", self.network, "--restart", self.restart_policy]
        if self.memory:
            args += ["--memory", self.memory]
        if self.cpus:
            args += ["--cpus", _cpus_text(self.cpus)]
        if self.gpus:
            args += ["--gpus", self.gpus]
        if self.shm_size:
            args += ["--shm-size", self.shm_size]
        for key, value in sorted(self.env.items()):
            args += ["-e", f"{key}={value}"]
        for mount in self.mounts:
            args += ["-v", mount]
        args += [
            "--label",
            f"{MANAGED_LABEL}=true",
            "--label",
            f"{SPEC_LABEL}={self.canonical()}",
            "--label",
            f"{SPEC_DIGEST_LABEL}={self.digest()}",
            self.image,
            *self.command,
        ]
        return args


def _cpus_text(cpus: float) -> str:
    return str(int(cpus)) if float(cpus).is_integer() else repr(float(cpus))


def build_spec(params: Mapping[str, Any], *, image: str, repository: str | None) -> ContainerSpec:
    """The container spec from the module's options; ``repository`` None when the models are baked in."""
    name = params["name"]
    address = params.get("listen_address") or "127.0.0.1"
    ports = {k: int(params.get(k) or 0) for k in ("http_port", "grpc_port", "metrics_port")}
    if not ports["http_port"]:
        raise ClearmlModuleError("http_port must be set: the module talks to Triton over HTTP")
    used = [p for p in ports.values() if p]
    if len(set(used)) != len(used):
        raise ClearmlModuleError(f"http_port, grpc_port and metrics_port must differ, got {ports}")
    for key, port in ports.items():
        if not 0 <= port <= 65535:
            raise ClearmlModuleError(f"{key} {port} is not a TCP port")
    restart = params.get("restart_policy") or "unless-stopped"
    if restart not in RESTART_POLICIES:
        raise ClearmlModuleError(f"restart_policy {restart!r} is not one of {', '.join(RESTART_POLICIES)}")
    cpus = params.get("cpus")
    if cpus is not None and float(cpus) <= 0:
        raise ClearmlModuleError(f"cpus must be positive, got {cpus}")
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    for key, value in (params.get("env") or {}).items():
        if not key or "=" in key:
            raise ClearmlModuleError(f"env: invalid variable name {key!r}")
        env[str(key)] = str(value)
    mounts = [f"{os.path.abspath(repository)}:{CONTAINER_REPOSITORY}:ro"] if repository else []
    return ContainerSpec(
        name=name,
        image=image,
        command=tritonserver_command(
            server_id=f"d2s-{name}",
            address=address,
            shm_prefix=f"d2s-{name}-",
            extra_args=params.get("extra_args") or [],
            **ports,
        ),
        restart_policy=restart,
        memory=params.get("memory") or None,
        cpus=float(cpus) if cpus else None,
        gpus=gpu_request(params.get("gpus")),
        shm_size=params.get("shm_size") or None,
        env=env,
        mounts=mounts,
    )


def probe_address(params: Mapping[str, Any]) -> tuple[str, int]:
    return _probe_host(params.get("listen_address") or "127.0.0.1"), int(params["http_port"])


# --------------------------------------------------------------------------------------------- current state


@dataclass
class ContainerState:
    """What ``docker container inspect`` says about the container of that name."""

    id: str
    image_id: str
    running: bool
    status: str
    command: list[str]
    spec: dict[str, Any] | None  # from the label; None when the container is not ours or predates it
    restarting: bool = False

    @classmethod
    def from_inspect(cls, doc: Mapping[str, Any]) -> ContainerState:
        config = doc.get("Config") or {}
        labels = config.get("Labels") or {}
        state = doc.get("State") or {}
        try:
            spec = json.loads(labels[SPEC_LABEL]) if SPEC_LABEL in labels else None
        except ValueError:
            spec = None
        return cls(
            id=str(doc.get("Id", "")),
            image_id=str(doc.get("Image", "")),
            running=bool(state.get("Running")),
            status=str(state.get("Status", "")),
            command=list(config.get("Cmd") or []),
            spec=spec,
            restarting=bool(state.get("Restarting")),
        )


def container_differences(current: ContainerState | None, desired: ContainerSpec, image_id: str) -> list[str]:
    """Why the current container cannot be kept (empty: it matches; a stopped match is only started)."""
    if current is None:
        return ["container does not exist"]
    found = []
    if current.image_id != image_id:
        found.append(f"image: {current.image_id or '?'} -> {image_id}")
    if current.spec is None:
        found.append("container was not created by this module (no spec label)")
        return found
    want = desired.as_dict()
    for key in sorted(set(want) | set(current.spec)):
        if current.spec.get(key) != want.get(key):
            found.append(f"{key}: {current.spec.get(key)!r} -> {want.get(key)!r}")
    if current.command != desired.command and not any(d.startswith("command:") for d in found):
        found.append("command: changed outside this module")
    return found


def current_container(docker: DockerCli, name: str) -> ContainerState | None:
    doc = docker.inspect("container", name)
    return ContainerState.from_inspect(doc) if doc else None


def remove_container(docker: DockerCli, name: str) -> None:
    """Stop gracefully (Triton unloads its models), then remove with its anonymous volumes."""
    docker.run(
        "stop", "-t", str(STOP_TIMEOUT), name, action=f"stop container {name!r}", mutating=True,
        timeout=STOP_TIMEOUT + 60, check=False,
    )  # fmt: skip
    proc = docker.run("rm", "-f", "-v", name, action=f"remove container {name!r}", mutating=True, check=False)
    if proc.returncode != 0 and "no such container" not in proc.stderr.lower():
        raise daemon_error(f"remove container {name!r}", proc.stderr)


def run_container(docker: DockerCli, spec: ContainerSpec) -> str:
    proc = docker.run(
        "run", *spec.run_args(), action=f"start container {spec.name!r}", mutating=True, timeout=300
    )
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def start_container(docker: DockerCli, name: str) -> None:
    docker.run("start", name, action=f"start container {name!r}", mutating=True)


def docker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env
