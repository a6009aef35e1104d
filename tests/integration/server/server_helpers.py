# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers of the local server's tests: run SDK flow scripts and the clearml-serving CLI as subprocesses.

Every SDK flow is a script in ``flows/`` run by a fresh interpreter with its own HOME and cache (the SDK
keeps process-global state); it writes its results as JSON, which the tests assert on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from d2s_tools.server.testing import ServerHandle

FLOWS = Path(__file__).resolve().parent / "flows"
FLOW_TIMEOUT = 240


class FlowError(AssertionError):
    """A flow subprocess failed: the message has its exit code and output."""


def run_flow(
    server: ServerHandle,
    script: str,
    home: Path,
    *args: str,
    env_extra: dict[str, str] | None = None,
    env_drop: tuple[str, ...] = (),
    timeout: float = FLOW_TIMEOUT,
) -> dict[str, Any]:
    """Run ``flows/<script>`` against ``server``; returns the JSON it wrote."""
    out = home / f"{Path(script).stem}.json"
    out.unlink(missing_ok=True)
    env = server.flow_env(home, extra=env_extra, drop=env_drop)
    # Run a copy outside the checkout: inside a git clone the SDK inspects the repository of the script
    # and its remote (the CI clone's `origin`), and task.close() then hung until the timeout.
    flows = home / "_flows"
    shutil.copytree(FLOWS, flows, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, str(flows / script), str(out), *args],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FlowError(f"{script} timed out\nstdout:\n{exc.stdout}\nstderr:\n{exc.stderr}") from None
    if proc.returncode != 0 or not out.is_file():
        raise FlowError(
            f"{script} failed (exit {proc.returncode})\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    result = json.loads(out.read_text(encoding="utf-8"))
    result["_seconds"] = round(time.monotonic() - started, 1)
    result["_stdout"] = proc.stdout
    return result


def run_cli(server: ServerHandle, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``clearml-serving`` CLI against ``server``."""
    cli = Path(sys.executable).with_name("clearml-serving")
    command = [str(cli)] if cli.is_file() else [sys.executable, "-m", "clearml_serving"]
    proc = subprocess.run(
        [*command, *args],
        env=server.flow_env(home),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=FLOW_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise FlowError(
            f"clearml-serving {' '.join(args)} failed\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


@dataclass
class Background:
    """Flows run in threads, so that several SDK processes work at the same time."""

    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    threads: dict[str, threading.Thread] = field(default_factory=dict)

    def start(self, name: str, func: Callable[[], Any]) -> None:
        def target() -> None:
            try:
                self.results[name] = func()
            except BaseException as exc:
                self.errors[name] = f"{type(exc).__name__}: {exc}"

        thread = threading.Thread(target=target, name=name, daemon=True)
        self.threads[name] = thread
        thread.start()

    def join(self, *names: str, timeout: float = 700) -> None:
        for name in names or list(self.threads):
            self.threads[name].join(timeout)
            if self.threads[name].is_alive():
                self.errors.setdefault(name, "still running after the timeout")

    def get(self, name: str) -> Any:
        if name in self.errors:
            pytest.fail(f"flow {name} failed:\n{self.errors[name]}")
        if name not in self.results:
            pytest.fail(f"flow {name} produced no result")
        return self.results[name]
