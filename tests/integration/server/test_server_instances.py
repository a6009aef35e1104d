# SPDX-License-Identifier: GPL-3.0-or-later
"""Running the server: start-up time, ports, persistence across restarts and SIGKILL, several instances
side by side, one process per data directory, TLS with a self-signed certificate, the standard library
as the only runtime dependency, and the installable wheel with its console script."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import requests
from server_helpers import Background, run_flow

from d2s_tools.server.testing import TOOLS_DIR, ServerHandle, start_server

pytestmark = pytest.mark.timeout(600)


def test_starts_fast_on_free_ports(tmp_path: Path) -> None:
    started = time.monotonic()
    server = start_server(tmp_path / "data")
    try:
        elapsed = time.monotonic() - started
        assert elapsed < 5, elapsed
        ports = {server.api_port, server.files_port, server.web_port}
        assert len(ports) == 3 and 0 not in ports
        ready = json.loads((server.data_dir / "ready.json").read_text())
        assert ready["api"] == server.api_url and ready["pid"] == server.pid
        assert requests.get(server.web_url, timeout=30).status_code == 200
        assert requests.get(f"{server.files_url}/", timeout=30).text == "OK"
    finally:
        server.stop()


def test_one_process_per_data_dir(clearml_server: ServerHandle) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "d2s_tools.server",
            "--data-dir",
            str(clearml_server.data_dir),
            "--api-port",
            "0",
            "--files-port",
            "0",
            "--web-port",
            "0",
        ],
        env={**os.environ, "PYTHONPATH": str(TOOLS_DIR)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3
    assert "in use by another d2s-clearml-server" in proc.stderr


def test_port_in_use_is_reported(clearml_server: ServerHandle, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "d2s_tools.server",
            "--data-dir",
            str(tmp_path / "d"),
            "--api-port",
            str(clearml_server.api_port),
        ],
        env={**os.environ, "PYTHONPATH": str(TOOLS_DIR)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "cannot start" in proc.stderr


def _populate(server: ServerHandle, tag: str) -> dict[str, Any]:
    token = server.token()
    project = server.call("projects.create", token=token, name=f"Persist/{tag}")["data"]["id"]
    task = server.call("tasks.create", token=token, name="persisted", type="training", project=project)[
        "data"
    ]["id"]
    server.call("tasks.edit", token=token, task=task, runtime={"k": "v"})
    model = server.call("models.create", token=token, uri="http://x/m", name="persisted model", task=task)[
        "data"
    ]["id"]
    lines = "\n".join(
        json.dumps({"type": "log", "task": task, "msg": f"line {i}", "timestamp": 1000 + i})
        for i in range(50)
    )
    reply = requests.post(
        f"{server.api_url}/v2.23/events.add_batch",
        data=lines,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json-lines"},
        timeout=30,
    )
    assert reply.json()["data"]["added"] == 50
    path = f"/Persist/{tag}/file.txt"
    requests.post(f"{server.files_url}/", files={path: (path, tag.encode())}, timeout=30).raise_for_status()
    return {"token": token, "project": project, "task": task, "model": model, "tag": tag}


def _check(server: ServerHandle, ids: dict[str, Any]) -> None:
    token = ids["token"]  # issued before the restart: the signing secret is kept in the data directory
    task = server.call("tasks.get_by_id", token=token, task=ids["task"])["data"]["task"]
    assert (task["name"], task["project"], task["runtime"]) == ("persisted", ids["project"], {"k": "v"})
    assert (
        server.call("models.get_by_id", token=token, model=ids["model"])["data"]["model"]["task"]
        == ids["task"]
    )
    log = server.call("events.get_task_log", token=token, task=ids["task"], batch_size=100, order="asc")[
        "data"
    ]
    assert [e["msg"] for e in log["events"]] == [f"line {i}" for i in range(50)]
    names = {p["name"] for p in server.call("projects.get_all", token=token)["data"]["projects"]}
    assert {"Persist", f"Persist/{ids['tag']}"} <= names
    assert (
        requests.get(f"{server.files_url}/Persist/{ids['tag']}/file.txt", timeout=30).content
        == ids["tag"].encode()
    )


def test_restart_and_sigkill_keep_everything(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        ids = _populate(server, "first")
        urls = (server.api_url, server.files_url, server.web_url)
        listing = [p["id"] for p in server.call("projects.get_all")["data"]["projects"]]
        server.call("projects.update", project=listing[0], description="edited: keeps its place")
        server.restart()
        assert (server.api_url, server.files_url, server.web_url) == urls
        _check(server, ids)
        # no order_by: creation order, as Mongo's natural order, also after edits and a restart
        assert [p["id"] for p in server.call("projects.get_all")["data"]["projects"]] == listing
        old_pid = server.pid
        server.kill()  # SIGKILL: no shutdown code runs
        with pytest.raises(ProcessLookupError):
            os.kill(old_pid, 0)
        server.start()
        _check(server, ids)
        more = _populate(server, "second")
        os.kill(server.pid, signal.SIGKILL)
        server.process.wait()
        server.process = None
        server.start()
        _check(server, more)
        _check(server, ids)
    finally:
        server.stop()


def test_two_instances_side_by_side(clearml_server_factory: Any, tmp_path: Path) -> None:
    first, second = clearml_server_factory("side-a"), clearml_server_factory("side-b")
    assert len({first.api_port, second.api_port, first.files_port, second.files_port}) == 4
    work = Background()
    for name, server in (("a", first), ("b", second)):
        work.start(
            name,
            lambda server=server, name=name: run_flow(
                server, "small.py", tmp_path / name, str(tmp_path / f"w{name}"), "Same/Project"
            ),
        )
    work.join()
    a, b = work.get("a"), work.get("b")
    for result, server in ((a, first), (b, second)):
        assert result["parse_warnings"] == []
        assert result["api_host"] == server.api_url
        assert result["found_id"] == result["task_id"]
        assert result["artifact_sha256"] == result["model_sha256"] == result["expected_sha256"]
    assert a["task_id"] != b["task_id"]
    # each instance has only its own objects
    for mine, theirs, server in ((a, b, first), (b, a, second)):
        ids = [t["id"] for t in server.call("tasks.get_all")["data"]["tasks"]]
        assert mine["task_id"] in ids and theirs["task_id"] not in ids
        reply = server.call("models.get_by_id", model=theirs["model_id"])
        assert reply["meta"]["result_subcode"] == 201


def test_tls_with_self_signed_certificate(
    clearml_server_factory: Any, tls_material: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = tls_material
    server = clearml_server_factory("tls", tls_cert=cert, tls_key=key)
    assert server.api_url.startswith("https://") and server.files_url.startswith("https://")
    assert server.env()["CLEARML_API_HOST_VERIFY_CERT"] == str(cert)

    # without the CA, a client must refuse the server (not the SDK: it retries SSL errors forever)
    with pytest.raises(urllib.error.URLError) as refused:
        urllib.request.urlopen(f"{server.files_url}/", timeout=30)  # noqa: S310 - https to our own server
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
    context = ssl.create_default_context(cafile=str(cert))
    with urllib.request.urlopen(f"{server.files_url}/", timeout=30, context=context) as reply:  # noqa: S310
        assert reply.read() == b"OK"

    work = Background()
    # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override the SDK's verify setting: drop them to
    # see the SDK's own setting (CLEARML_API_HOST_VERIFY_CERT=<CA file>) at work
    work.start(
        "sdk-setting",
        lambda: run_flow(
            server,
            "small.py",
            tmp_path / "a",
            str(tmp_path / "wa"),
            "TLS/a",
            env_drop=("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"),
        ),
    )
    # and the standard requests variable only
    work.start(
        "requests-bundle",
        lambda: run_flow(
            server,
            "small.py",
            tmp_path / "b",
            str(tmp_path / "wb"),
            "TLS/b",
            env_extra={"REQUESTS_CA_BUNDLE": str(cert)},
            env_drop=("CLEARML_API_HOST_VERIFY_CERT", "CURL_CA_BUNDLE"),
        ),
    )
    # env() as is: the SDK setting plus a bundle of the system CAs and this one
    work.start("env", lambda: run_flow(server, "small.py", tmp_path / "c", str(tmp_path / "wc"), "TLS/c"))
    work.join()
    for name in ("sdk-setting", "requests-bundle", "env"):
        result = work.get(name)
        assert result["api_host"] == server.api_url
        assert result["parse_warnings"] == []
        assert result["artifact_sha256"] == result["model_sha256"] == result["expected_sha256"]


def _start_and_login(command: list[str], env: dict[str, str], ready: Path) -> None:
    """Start a server command with --ready-file ``ready``, log in once, stop it with SIGTERM."""
    proc = subprocess.Popen(
        [*command, "--api-port", "0", "--files-port", "0", "--web-port", "0", "--ready-file", str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.stderr.read().decode() if proc.poll() is not None else "not ready"
        api = json.loads(ready.read_text())["api"]
        reply = requests.get(f"{api}/auth.login", auth=("d2s-access-key", "d2s-secret-key"), timeout=30)
        assert reply.status_code == 200 and reply.json()["data"]["token"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_runs_on_the_standard_library_alone(tmp_path: Path) -> None:
    """``python -S -E`` (no site-packages at all) starts the server and serves a login."""
    code = (
        f"import sys; sys.path.insert(0, {str(TOOLS_DIR)!r}); from d2s_tools.server.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    command = [sys.executable, "-S", "-E", "-c", code, "--data-dir", str(tmp_path / "d")]
    _start_and_login(command, dict(os.environ), tmp_path / "ready.json")


@pytest.mark.slow
def test_wheel_installs_with_console_script(tmp_path: Path) -> None:
    """Build the d2s-tools wheel, install it with --no-deps into an empty venv, start the console script."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(TOOLS_DIR)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("d2s_tools-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    listed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format", "json"], check=True, capture_output=True, text=True
    )
    installed = {p["name"] for p in json.loads(listed.stdout)}
    assert installed <= {"d2s-tools", "pip", "setuptools"}, installed
    script = venv / "bin" / "d2s-clearml-server"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    help_text = subprocess.run(
        [str(script), "--help"], check=True, capture_output=True, text=True, env=env
    ).stdout
    assert "--data-dir" in help_text and "--tls-cert" in help_text
    _start_and_login([str(script), "--data-dir", str(tmp_path / "data")], env, tmp_path / "ready.json")
