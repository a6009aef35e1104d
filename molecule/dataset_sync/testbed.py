# SPDX-License-Identifier: GPL-3.0-or-later
"""The dataset_sync scenario's servers, on the controller's loopback (the sync host shares it).

    python testbed.py up STATE     a dev server (seeded) and a site server that imported dev's bundle,
                                   plus a new version of the imported dataset made at the site through
                                   the real SDK; writes STATE/testbed.json (URLs, PIDs, ids)
    python testbed.py down STATE   stops both servers by the PIDs recorded, if they still run them

Run with the repository's venv and PYTHONPATH=<repo>/collections:<repo>/tools.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._export import ExportCore
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._import import ImportCore
from d2s_tools.seed import runner

KEYS = {"access_key": "d2s-access-key", "secret_key": "d2s-secret-key"}
REPO = Path(__file__).resolve().parents[2]


def start(state: Path, name: str) -> dict[str, str]:
    ready = state / f"{name}.ready.json"
    ready.unlink(missing_ok=True)
    with open(state / f"{name}.log", "ab") as log:
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "d2s_tools.server",
                "--data-dir",
                str(state / name),
                *("--api-port", "0", "--files-port", "0", "--web-port", "0"),
                *("--ready-file", str(ready)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this script; `down` stops it
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ready.exists() and ready.stat().st_size:
            return json.loads(ready.read_text())
        time.sleep(0.1)
    raise SystemExit(f"the {name} server did not start: {(state / f'{name}.log').read_text()[-2000:]}")


def sdk_env(urls: dict[str, str]) -> dict[str, str]:
    return {
        "CLEARML_API_HOST": urls["api"],
        "CLEARML_WEB_HOST": urls["web"],
        "CLEARML_FILES_HOST": urls["files"],
        "CLEARML_API_ACCESS_KEY": KEYS["access_key"],
        "CLEARML_API_SECRET_KEY": KEYS["secret_key"],
    }


def module_args(urls: dict[str, str]) -> dict[str, str]:
    return {"api_host": urls["api"], "web_host": urls["web"], "files_host": urls["files"], **KEYS}


def up(state: Path) -> None:
    state.mkdir(parents=True, exist_ok=True)
    dev, site = start(state, "dev"), start(state, "site")
    seed_out = state / "seed.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    subprocess.run(
        [sys.executable, "-m", "d2s_tools.seed", "--out", str(seed_out), "--workdir", str(state / "seed")],
        env={**env, **sdk_env(dev)},
        check=True,
        capture_output=True,
        timeout=600,
    )
    seed = json.loads(seed_out.read_text())
    ExportCore({**module_args(dev), "serving_id": seed["serving"]["id"], "dest": str(state / "bundle")}).run()
    imported = ImportCore({**module_args(site), "bundle": str(state / "bundle"), "site_name": "site_a"}).run()
    latest = seed["dataset"]["versions"][-1]["id"]
    spec = {
        "project": seed["dataset"]["project"],
        "name": seed["dataset"]["name"],
        "parent": imported["id_map"]["datasets"][latest],
        "folder": str(state / "site-data"),
        "files": {"train/site_a/annotated.csv": "f1,f2,f3,f4,label\n5.0,3.4,1.5,0.2,setosa\n"},
    }
    home = state / "homes" / "site-version"
    # a copy outside the checkout: in a git clone with an origin remote, the SDK's inspection of the
    # script's repository can hang task.close() (seen by the sync tests in a clean-clone CI run)
    script = state / "flows.py"
    shutil.copyfile(REPO / "tests" / "integration" / "sync" / "flows.py", script)
    flow = runner.run(
        "site-version",
        [str(script), "version", json.dumps(spec)],
        cwd=state,
        env=runner.flow_env(sdk_env(site), home),
        logs=state / "logs",
        timeout=300,
    )
    made = json.loads([line for line in flow.output().splitlines() if line.startswith("{")][-1])
    (state / "testbed.json").write_text(
        json.dumps(
            {
                "dev": dev,
                "site": site,
                **KEYS,
                "dev_latest": latest,
                "site_version": made,
                "dataset": {"project": spec["project"], "name": spec["name"]},
            },
            indent=2,
        )
    )


def down(state: Path) -> None:
    for name in ("dev", "site"):
        ready = state / f"{name}.ready.json"
        if not ready.exists():
            continue
        pid = int(json.loads(ready.read_text())["pid"])
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            cmdline = ""
        if str(state / name) in cmdline:
            os.kill(pid, signal.SIGTERM)
            for _ in range(150):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)
        ready.unlink()


if __name__ == "__main__":
    {"up": up, "down": down}[sys.argv[1]](Path(sys.argv[2]))
