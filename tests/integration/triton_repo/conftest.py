# SPDX-License-Identifier: GPL-3.0-or-later
"""The real tritonserver from the nvidia-pytriton wheel, run directly on the host (no container).

The wheel ships ``pytriton/tritonserver/{bin/tritonserver, backends/python, caches}``, the python
backend stubs per Python version in ``python_backend_stubs/<X.Y>/`` and the shared libraries in
``site-packages/nvidia_pytriton.libs``. pytriton itself (pytriton/triton.py, server/triton_server.py)
copies the tree into a workspace, puts the stub of the running Python into ``backends/python/``,
prepends the venv's ``bin`` to PATH (the stub embeds Python and finds the venv's site-packages from
there), appends ``nvidia_pytriton.libs`` to LD_LIBRARY_PATH and passes ``--backend-directory`` and a
per-process ``shm-region-prefix-name`` to the python backend. ``TritonInstall`` does the same, copying
only the python backend (3 MB).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import tritonclient.http as httpclient
from d2s_testlib import VENV_BIN
from pytriton.utils.distribution import get_libs_path, get_root_module_path, get_stub_path
from tritonclient.utils import InferenceServerException

WHEEL_TRITON = get_root_module_path() / "tritonserver"


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (bound together, so the kernel hands out different ones)."""
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


@dataclass
class TritonInstall:
    """A backend directory with the python backend and the stub for this interpreter."""

    binary: Path
    backends: Path
    libs: Path

    @classmethod
    def prepare(cls, root: Path) -> TritonInstall:
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        stub = get_stub_path(version)
        if not stub.is_file():
            pytest.fail(f"nvidia-pytriton has no python backend stub for Python {version} ({stub})")
        python_backend = root / "backends" / "python"
        python_backend.mkdir(parents=True)
        for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
            shutil.copy2(WHEEL_TRITON / "backends" / "python" / name, python_backend / name)
        shutil.copy2(stub, python_backend / "triton_python_backend_stub")
        return cls(
            binary=WHEEL_TRITON / "bin" / "tritonserver", backends=root / "backends", libs=get_libs_path()
        )

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (env.get("LD_LIBRARY_PATH"), str(self.libs)) if p)
        return env


class TritonServer:
    """One tritonserver process on free loopback ports, EXPLICIT model control, stopped by its PID."""

    def __init__(self, install: TritonInstall, repo: Path, load: Sequence[str], log: Path) -> None:
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        self.log = log
        self.args = [
            str(install.binary),
            f"--model-repository={repo}",
            "--model-control-mode=explicit",
            *(f"--load-model={name}" for name in load),
            "--http-address=127.0.0.1",
            f"--http-port={self.http_port}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={self.metrics_port}",
            f"--backend-directory={install.backends}",
            f"--backend-config=python,shm-region-prefix-name=d2s{os.getpid()}x{self.http_port}",
            "--exit-on-error=false",  # one bad model must not stop the server
            "--exit-timeout-secs=15",
            "--log-verbose=0",
        ]
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen(self.args, stdout=fh, stderr=subprocess.STDOUT, env=install.env())
        self.client = httpclient.InferenceServerClient(
            url=f"127.0.0.1:{self.http_port}", network_timeout=60.0
        )

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_live(self, timeout: float = 120.0) -> None:
        """Until the HTTP endpoint answers (startup models have been tried by then)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, InferenceServerException):
                if self.client.is_server_live():
                    return
            if self.proc.poll() is not None:
                pytest.fail(f"tritonserver exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"tritonserver not live after {timeout}s:\n{self.logs()[-4000:]}")
            time.sleep(0.25)

    def stop(self) -> None:
        self.client.close()  # Triton waits for open HTTP connections before it shuts down
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Triton's graceful shutdown (unloads models, stubs exit)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def triton_install(tmp_path_factory: pytest.TempPathFactory) -> TritonInstall:
    return TritonInstall.prepare(tmp_path_factory.mktemp("tritonserver"))


@pytest.fixture
def start_triton(triton_install: TritonInstall, tmp_path: Path) -> Iterator:
    """``start_triton(repo, load=[...])`` -> a live ``TritonServer``; every one is stopped at teardown."""
    servers: list[TritonServer] = []

    def start(repo: Path, load: Sequence[str]) -> TritonServer:
        server = TritonServer(triton_install, repo, load, tmp_path / f"tritonserver{len(servers)}.log")
        servers.append(server)
        server.wait_live()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
