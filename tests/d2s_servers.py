# SPDX-License-Identifier: GPL-3.0-or-later
"""Local ClearML-compatible servers for tests: start one through its command line, seed it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from d2s_testlib import REPO, VENV_BIN

ACCESS_KEY = "d2s-access-key"
SECRET_KEY = "d2s-secret-key"


@dataclass
class LocalServer:
    """A running local server (started by this test session, stopped by its PID)."""

    data_dir: Path
    proc: subprocess.Popen[bytes]
    urls: dict[str, str]
    log: Path
    seed: dict = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            "CLEARML_API_HOST": self.urls["api"],
            "CLEARML_WEB_HOST": self.urls["web"],
            "CLEARML_FILES_HOST": self.urls["files"],
            "CLEARML_API_ACCESS_KEY": ACCESS_KEY,
            "CLEARML_API_SECRET_KEY": SECRET_KEY,
        }

    def module_args(self) -> dict[str, str]:
        return {
            "api_host": self.urls["api"],
            "web_host": self.urls["web"],
            "files_host": self.urls["files"],
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


def start_local_server(data_dir: Path) -> LocalServer:
    data_dir.mkdir(parents=True, exist_ok=True)
    ready = data_dir.parent / f"{data_dir.name}.ready.json"
    ready.unlink(missing_ok=True)
    log = data_dir.parent / f"{data_dir.name}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO / "tools")}
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "d2s_tools.server",
                "--data-dir",
                str(data_dir),
                "--api-port",
                "0",
                "--files-port",
                "0",
                "--web-port",
                "0",
                "--ready-file",
                str(ready),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ready.exists() and ready.stat().st_size:
            try:
                urls = json.loads(ready.read_text())
            except ValueError:
                urls = None
            if urls:
                return LocalServer(data_dir=data_dir, proc=proc, urls=urls, log=log)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"local ClearML server did not start: {log.read_text()[-2000:]}")


def run_seed(server: LocalServer, workdir: Path) -> dict:
    out = workdir / "seed.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(server.env())
    env["PYTHONPATH"] = str(REPO / "tools")
    proc = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-m",
            "d2s_tools.seed",
            "--out",
            str(out),
            "--workdir",
            str(workdir / "seed"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, f"seed failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text())
