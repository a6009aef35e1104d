# SPDX-License-Identifier: GPL-3.0-or-later
"""Run each SDK flow as its own process with its own HOME and cache, as separate users would.

A fresh process per flow avoids the SDK's process-global state (the current task, URL-keyed caches,
task reuse, the API version picked by the first call). Every flow gets:

- ``HOME`` and ``CLEARML_CACHE_DIR`` in a directory of its own, ``CLEARML_TASK_NO_REUSE=1``;
- the target server from the ``CLEARML_*`` variables of the caller;
- ``HTTPS_PROXY``/``HTTP_PROXY`` pointing at a closed local port with ``NO_PROXY`` for the loopback, so
  the SDK's update check (``https://updates.clear.ml``) fails at once instead of leaving the machine;
- ``PYTHONPATH`` that makes ``d2s_tools`` importable;
- a ``~/clearml.conf`` that only sets ``sdk.development.report_use_subprocess: false``.

Why the last one: on Linux the SDK forks its reporter (``report_use_subprocess``, default true) after it
has opened keep-alive connections, and parent and child then share the pooled sockets. Seen on the
wire (a logging proxy between the SDK and the server): the parent's ``models.get_by_id`` headers, the
child's whole ``events.add_batch``, then the parent's body, all on one TCP connection; the server
answers garbage with 400, one process reads the other's reply and the other waits out the SDK's 300 s
read timeout, then resends (duplicate log lines). About one seed run in three hit it with two training
processes. Reporting from threads (the SDK's own alternative) avoids the fork.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

SERVER_ENV = (
    "CLEARML_API_HOST",
    "CLEARML_WEB_HOST",
    "CLEARML_FILES_HOST",
    "CLEARML_API_ACCESS_KEY",
    "CLEARML_API_SECRET_KEY",
)
# Anything else that could point the SDK somewhere else, or change its behaviour, is dropped.
_DROPPED_PREFIXES = ("CLEARML_", "TRAINS_")
_CLOSED_PROXY = "http://127.0.0.1:9"
TOOLS_DIR = Path(__file__).resolve().parents[2]


class FlowError(RuntimeError):
    """A flow subprocess failed; the message carries the tail of its log."""


def server_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The five ``CLEARML_*`` variables that name the target server; all are required."""
    source = os.environ if environ is None else environ
    missing = [name for name in SERVER_ENV if not source.get(name)]
    if missing:
        raise FlowError(f"missing environment variables for the target server: {', '.join(missing)}")
    return {name: source[name] for name in SERVER_ENV}


def _no_proxy(server: dict[str, str]) -> str:
    hosts = {"127.0.0.1", "localhost", "::1"}
    for name in ("CLEARML_API_HOST", "CLEARML_WEB_HOST", "CLEARML_FILES_HOST"):
        host = urlsplit(server[name]).hostname
        if host:
            hosts.add(host)
    return ",".join(sorted(hosts))


def flow_env(server: dict[str, str], home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of one flow process: a private HOME/cache and only the target server's settings."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES)}
    for key in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        env.pop(key, None)
    no_proxy = _no_proxy(server)
    pythonpath = [str(TOOLS_DIR), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(server)
    env.update(
        {
            "HOME": str(home),
            "CLEARML_CACHE_DIR": str(home / ".clearml" / "cache"),
            "CLEARML_TASK_NO_REUSE": "1",
            "HTTP_PROXY": _CLOSED_PROXY,
            "HTTPS_PROXY": _CLOSED_PROXY,
            "http_proxy": _CLOSED_PROXY,
            "https_proxy": _CLOSED_PROXY,
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
            "PYTHONPATH": os.pathsep.join(dict.fromkeys(pythonpath)),
            "PYTHONUNBUFFERED": "1",
            "PYTHONHASHSEED": "0",
        }
    )
    env.update(extra or {})
    (home / "clearml.conf").write_text(_CLEARML_CONF, encoding="utf-8")
    return env


_CLEARML_CONF = """# written by d2s_tools.seed: report from threads, not from a forked subprocess (see runner.py)
sdk {
  development {
    report_use_subprocess: false
  }
}
"""


@dataclass
class Flow:
    """One running flow process, its log and timing."""

    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    def __post_init__(self) -> None:
        # Note the exit time when it happens, not when someone gets round to wait() for it.
        def watch() -> None:
            self.process.wait()
            self.ended = time.monotonic()

        threading.Thread(target=watch, name=f"watch-{self.name}", daemon=True).start()

    @property
    def seconds(self) -> float | None:
        return None if self.ended is None else round(self.ended - self.started, 2)

    def wait(self, timeout: float) -> Flow:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise FlowError(f"{self.name}: timed out after {timeout:.0f}s\n{self.tail()}") from None
        if self.ended is None:  # the watcher has not run yet
            self.ended = time.monotonic()
        if code != 0:
            raise FlowError(f"{self.name}: exit code {code}\n{self.tail()}")
        return self

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start(
    name: str, argv: list[str], *, cwd: Path, env: dict[str, str], logs: Path, python: bool = True
) -> Flow:
    """Start ``argv`` (prefixed with this interpreter when ``python``) with output to ``logs/<name>.log``."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    command = [sys.executable, *argv] if python else argv
    with log.open("wb") as handle:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return Flow(name=name, argv=command, log=log, process=process)


def run(
    name: str,
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    logs: Path,
    timeout: float,
    python: bool = True,
) -> Flow:
    """Start a flow and wait for it; raise :class:`FlowError` with its log tail when it fails."""
    return start(name, argv, cwd=cwd, env=env, logs=logs, python=python).wait(timeout)


def stop_all(flows: list[Flow]) -> None:
    """Kill flows still running (after a sibling failed)."""
    for flow in flows:
        if flow.process.poll() is None:
            flow.process.kill()
            flow.process.wait()
