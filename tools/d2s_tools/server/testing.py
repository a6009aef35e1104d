# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Start, stop, restart and kill local server instances from tests and scripts.

    from d2s_tools.server.testing import start_server

    server = start_server(tmp_path / "server")        # a subprocess on free 127.0.0.1 ports
    env = server.flow_env(tmp_path / "home")          # complete environment for an SDK subprocess
    subprocess.run([sys.executable, "flow.py"], env=env, check=True)
    server.kill(); server.start()                     # SIGKILL, then the same ports and data again
    server.stop()

Each instance is one ``python -m d2s_tools.server`` process; its stdout/stderr go to
``<data_dir>/server.log``. The SDK keeps process-global state, so run every SDK flow in a fresh process
with its own HOME and cache: :meth:`ServerHandle.flow_env` builds exactly that environment.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .cli import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

TOOLS_DIR = Path(__file__).resolve().parents[2]
CLOSED_PROXY = "http://127.0.0.1:9"
READY_FILE = "ready.json"
LOG_FILE = "server.log"


class ServerError(RuntimeError):
    """The server did not come up (or went away); the message carries the tail of its log."""


@dataclass
class ServerHandle:
    """One server instance run as a subprocess. Ports are fixed after the first start, so a
    :meth:`restart` (or :meth:`kill` + :meth:`start`) keeps every URL valid for running clients."""

    data_dir: Path
    host: str = "127.0.0.1"
    api_port: int = 0
    files_port: int = 0
    web_port: int = 0
    access_key: str = DEFAULT_ACCESS_KEY
    secret_key: str = DEFAULT_SECRET_KEY
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ca_file: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    python: str = sys.executable
    startup_timeout: float = 20.0
    api_url: str = ""
    web_url: str = ""
    files_url: str = ""
    process: subprocess.Popen[bytes] | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def log_file(self) -> Path:
        return self.data_dir / LOG_FILE

    def command(self) -> list[str]:
        cmd = [
            self.python,
            "-m",
            "d2s_tools.server",
            "--data-dir",
            str(self.data_dir),
            "--host",
            self.host,
            "--api-port",
            str(self.api_port),
            "--files-port",
            str(self.files_port),
            "--web-port",
            str(self.web_port),
            "--access-key",
            self.access_key,
            "--secret-key",
            self.secret_key,
            "--ready-file",
            str(self.data_dir / READY_FILE),
        ]
        if self.tls_cert:
            cmd += ["--tls-cert", str(self.tls_cert)]
        if self.tls_key:
            cmd += ["--tls-key", str(self.tls_key)]
        return cmd + list(self.extra_args)

    def start(self) -> ServerHandle:
        """Start the process (again) and wait until all three ports listen."""
        if self.running:
            raise ServerError(f"server already running (pid {self.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ready = self.data_dir / READY_FILE
        ready.unlink(missing_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            dict.fromkeys([str(TOOLS_DIR), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
        )
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if ready.is_file():
                info = json.loads(ready.read_text(encoding="utf-8"))
                self.api_url, self.web_url, self.files_url = info["api"], info["web"], info["files"]
                # keep the ports: restarts must come back where the clients expect them
                self.api_port = urlsplit(self.api_url).port or self.api_port
                self.files_port = urlsplit(self.files_url).port or self.files_port
                self.web_port = urlsplit(self.web_url).port or self.web_port
                return self
            if self.process.poll() is not None:
                raise ServerError(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
            time.sleep(0.05)
        self.kill()
        raise ServerError(f"server not ready after {self.startup_timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL if it does not exit in ``timeout``)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill(self) -> None:
        """SIGKILL the server process by pid (no chance to flush anything) and reap it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def restart(self) -> ServerHandle:
        """Graceful stop, then start on the same ports with the same data."""
        self.stop()
        return self.start()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- client side --------------------------------------------------------------------------------
    def env(self, block_outside: bool = True) -> dict[str, str]:
        """The variables that point the ClearML SDK (and clearml-serving) at this server.

        ``CLEARML_API_HOST``/``CLEARML_WEB_HOST``/``CLEARML_FILES_HOST`` (all three: the SDK cannot guess
        web and files hosts on non-standard ports), ``CLEARML_API_ACCESS_KEY``/``CLEARML_API_SECRET_KEY``;
        with TLS ``CLEARML_API_HOST_VERIFY_CERT`` (the CA file) and ``REQUESTS_CA_BUNDLE`` (the system CAs
        plus this CA: requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` from the environment override
        the SDK's own verify setting); with ``block_outside`` the proxy variables that send anything not on
        the loopback (the SDK's update check to updates.clear.ml) to a closed local port.
        """
        env = {
            "CLEARML_API_HOST": self.api_url,
            "CLEARML_WEB_HOST": self.web_url,
            "CLEARML_FILES_HOST": self.files_url,
            "CLEARML_API_ACCESS_KEY": self.access_key,
            "CLEARML_API_SECRET_KEY": self.secret_key,
        }
        if self.ca_file:
            env["CLEARML_API_HOST_VERIFY_CERT"] = str(self.ca_file)
            env["REQUESTS_CA_BUNDLE"] = str(self.client_ca_bundle())
        if block_outside:
            hosts = {"127.0.0.1", "localhost", "::1", self.host}
            for url in (self.api_url, self.web_url, self.files_url):
                hosts.add(urlsplit(url).hostname or "127.0.0.1")
            no_proxy = ",".join(sorted(h for h in hosts if h and h not in ("0.0.0.0", "::")))  # noqa: S104
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                env[name] = CLOSED_PROXY
            env["NO_PROXY"] = env["no_proxy"] = no_proxy
        return env

    def client_ca_bundle(self) -> Path:
        """A CA bundle for clients: the system's CAs (as requests would use them) plus ``ca_file``."""
        if not self.ca_file:
            raise ServerError("no ca_file: the server does not use TLS")
        bundle = self.data_dir / "client-ca-bundle.pem"
        parts = []
        system = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        system = system or ssl.get_default_verify_paths().cafile
        if system and Path(system).is_file() and Path(system).resolve() != bundle.resolve():
            parts.append(Path(system).read_text(encoding="utf-8", errors="replace").rstrip("\n") + "\n")
        parts.append(Path(self.ca_file).read_text(encoding="utf-8"))
        text = "".join(parts)
        if not bundle.is_file() or bundle.read_text(encoding="utf-8", errors="replace") != text:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            bundle.write_text(text, encoding="utf-8")
        return bundle

    def flow_env(
        self,
        home: Path,
        base: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
        drop: tuple[str, ...] = (),
    ) -> dict[str, str]:
        """A complete environment for one SDK process: ``base`` (default ``os.environ``) without any
        ``CLEARML_*``/``TRAINS_*``/proxy variable, then :meth:`env`, a private ``HOME`` and
        ``CLEARML_CACHE_DIR``, ``CLEARML_TASK_NO_REUSE=1`` and ``PYTHONPATH`` with ``d2s_tools``; then
        ``extra``, and the names in ``drop`` removed."""
        home = Path(home)
        home.mkdir(parents=True, exist_ok=True)
        source = os.environ if base is None else base
        proxies = {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}
        env = {
            k: v
            for k, v in source.items()
            if not k.startswith(("CLEARML_", "TRAINS_")) and k.lower() not in proxies
        }
        env.update(self.env())
        pythonpath = [str(TOOLS_DIR), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env.update(
            {
                "HOME": str(home),
                "CLEARML_CACHE_DIR": str(home / ".clearml" / "cache"),
                "CLEARML_TASK_NO_REUSE": "1",
                "PYTHONPATH": os.pathsep.join(dict.fromkeys(pythonpath)),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra or {})
        for name in drop:
            env.pop(name, None)
        write_flow_config(home)
        return env

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.api_url.startswith("https"):
            return None
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def token(self) -> str:
        """A fresh API token (``auth.login`` with the key pair)."""
        basic = base64.b64encode(f"{self.access_key}:{self.secret_key}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310 - our own http(s) URL
            f"{self.api_url}/auth.login", headers={"Authorization": f"Basic {basic}"}, method="GET"
        )
        with urllib.request.urlopen(request, timeout=30, context=self._ssl_context()) as response:  # noqa: S310
            return json.loads(response.read())["data"]["token"]

    def call(self, endpoint: str, token: str | None = None, **body: Any) -> dict[str, Any]:
        """Raw API call (``tasks.get_all`` etc.); returns the whole envelope, also for error replies."""
        request = urllib.request.Request(  # noqa: S310 - our own http(s) URL
            f"{self.api_url}/v2.23/{endpoint}",
            data=json.dumps(body).encode("utf-8"),
            headers={"Authorization": f"Bearer {token or self.token()}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60, context=self._ssl_context()) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())


def start_server(
    data_dir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    api_port: int = 0,
    files_port: int = 0,
    web_port: int = 0,
    access_key: str = DEFAULT_ACCESS_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    extra_args: list[str] | None = None,
    startup_timeout: float = 20.0,
) -> ServerHandle:
    """Start a server subprocess on ``data_dir`` (port 0 = a free port) and wait until it is ready.

    ``ca_file`` is what clients should trust for TLS (``env()`` hands it to the SDK); with a self-signed
    certificate pass the certificate itself.
    """
    handle = ServerHandle(
        data_dir=Path(data_dir).resolve(),
        host=host,
        api_port=api_port,
        files_port=files_port,
        web_port=web_port,
        access_key=access_key,
        secret_key=secret_key,
        tls_cert=Path(tls_cert) if tls_cert else None,
        tls_key=Path(tls_key) if tls_key else None,
        ca_file=Path(ca_file) if ca_file else (Path(tls_cert) if tls_cert else None),
        extra_args=list(extra_args or []),
        startup_timeout=startup_timeout,
    )
    return handle.start()


class FlowFailed(AssertionError):
    """An SDK flow subprocess failed; the message carries its output."""


def run_python(
    code: str,
    env: dict[str, str],
    *args: str,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 300.0,
    python: str = sys.executable,
) -> Any:
    """Run ``code`` in a fresh interpreter with ``env``; it must print one JSON document as its last
    stdout line, which is returned parsed. Raises :class:`FlowFailed` with the output otherwise."""
    try:
        proc = subprocess.run(
            [python, "-c", code, *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FlowFailed(
            f"flow timed out after {timeout:.0f}s\nstdout:\n{exc.stdout}\nstderr:\n{exc.stderr}"
        ) from None
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise FlowFailed(
            f"flow failed (exit {proc.returncode})\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        raise FlowFailed(
            f"the flow's last line is not JSON\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        ) from None


FLOW_CONFIG = """\
# Written by d2s_tools.server.testing.flow_env.
# clearml 2.1.x forks its reporter process after opening pooled keep-alive connections; parent and
# child then interleave requests on one socket and one of them waits the SDK's 300 s read timeout
# (seen against this server and a real one, about one run in three on a loaded machine). Report from
# threads instead; it also makes task.close() take ~1 s instead of 10-16 s.
sdk.development.report_use_subprocess: false
"""


def write_flow_config(home: Path) -> Path:
    """``<home>/clearml.conf`` for an SDK flow (kept if the flow already has one)."""
    conf = Path(home) / "clearml.conf"
    if not conf.exists():
        conf.write_text(FLOW_CONFIG, encoding="utf-8")
    return conf
