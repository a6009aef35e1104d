# SPDX-License-Identifier: GPL-3.0-or-later
"""Prepare fixture of the clearml_serving scenario: a local ClearML server holding a small serving service.

Starts the project's local server (tools/d2s_tools/server) on free loopback ports, makes the service
with the real clearml-serving CLI (create, model upload, model add with custom preprocess code, a canary),
stops the server and writes ``service.json`` (id, server URLs, expected answer). Its data directory then
moves into the network-less site host, where the same server serves it on the same ports.

    python make_service.py OUT_DIR
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
VENV_BIN = Path(sys.executable).parent
ENDPOINT = "molecule_sum"
CANARY = "molecule_canary"
SCALE = 2.0
REQUEST = {"values": [1.0, 2.0, 3.5]}


def cli(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [str(VENV_BIN / "clearml-serving"), "--yes", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if proc.returncode != 0:
        raise SystemExit(f"clearml-serving {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data, ready = out / "server", out / "server.ready.json"
    ready.unlink(missing_ok=True)
    server = subprocess.Popen(
        [
            str(VENV_BIN / "python"),
            "-m",
            "d2s_tools.server",
            "--data-dir",
            str(data),
            "--api-port",
            "0",
            "--files-port",
            "0",
            "--web-port",
            "0",
            "--ready-file",
            str(ready),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO / "tools")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (ready.is_file() and ready.stat().st_size):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the local ClearML server did not start")
            time.sleep(0.1)
        urls = json.loads(ready.read_text())
        home = out / "home"
        home.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
        env.update(
            CLEARML_API_HOST=urls["api"],
            CLEARML_WEB_HOST=urls["web"],
            CLEARML_FILES_HOST=urls["files"],
            CLEARML_API_ACCESS_KEY="d2s-access-key",
            CLEARML_API_SECRET_KEY="d2s-secret-key",  # noqa: S106 - the local server's public default
            HOME=str(home),
            CLEARML_CACHE_DIR=str(home / "cache"),
            HTTPS_PROXY="http://127.0.0.1:9",
            HTTP_PROXY="http://127.0.0.1:9",
            NO_PROXY="127.0.0.1,localhost",
        )
        said = cli(env, "create", "--name", "molecule serving", "--project", "d2s-molecule/serving")
        service_id = re.search(r"id=([0-9a-f]{32})", said).group(1)  # type: ignore[union-attr]
        weights = out / "scale.json"
        weights.write_text(json.dumps({"scale": SCALE}))
        said = cli(
            env,
            "--id",
            service_id,
            "model",
            "upload",
            "--name",
            "molecule scale",
            "--project",
            "d2s-molecule",
            "--framework",
            "custom",
            "--path",
            str(weights),
        )
        model_id = re.search(r"Model ID=([0-9a-f]{32})", said).group(1)  # type: ignore[union-attr]
        cli(
            env,
            "--id",
            service_id,
            "model",
            "add",
            "--engine",
            "custom",
            "--endpoint",
            ENDPOINT,
            "--model-id",
            model_id,
            "--preprocess",
            str(HERE / "preprocess_sum.py"),
        )
        cli(
            env,
            "--id",
            service_id,
            "model",
            "canary",
            "--endpoint",
            CANARY,
            "--weights",
            "1",
            "--input-endpoints",
            ENDPOINT,
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    answer = {"sum": SCALE * sum(REQUEST["values"]), "count": len(REQUEST["values"])}
    service = {
        "id": service_id,
        "model_id": model_id,
        "urls": {k: urls[k] for k in ("api", "web", "files")},
        "ports": {k: int(urls[k].rsplit(":", 1)[1]) for k in ("api", "web", "files")},
        "data_dir": str(data),
        "smoke_requests": {
            ENDPOINT: {"request": REQUEST, "response": answer},
            CANARY: {"request": REQUEST, "expected_one_of": [answer]},
        },
    }
    (out / "service.json").write_text(json.dumps(service, indent=2, sort_keys=True))
    print(json.dumps(service))
    return 0


if __name__ == "__main__":
    sys.exit(main())
