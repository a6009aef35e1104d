# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers shared by the test suite: paths and the environment every subprocess gets."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"


def project_env(**extra: str) -> dict[str, str]:
    """Environment for ansible/molecule/SDK subprocesses: venv first, this checkout's ansible.cfg."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env.setdefault("PY_COLORS", "0")
    env.setdefault("NO_COLOR", "1")
    env.update(extra)
    return env


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def playbook_cmd(tmp: Path, tasks: list[dict], *extra: str) -> tuple[list[str], Path]:
    """A one-play playbook on localhost running ``tasks`` (which register ``r``), then saving ``r``.

    Returns the ansible-playbook command line and where ``r`` is saved (JSON).
    """
    stamp = time.monotonic_ns()
    results = tmp / f"result-{stamp}.json"
    play = [
        {
            "name": "Test play",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                *tasks,
                {
                    "name": "Save the result",
                    "ansible.builtin.copy": {
                        "content": "{{ r | default({}) | to_json }}",
                        "dest": str(results),
                    },
                    "check_mode": False,
                    "diff": False,
                },
            ],
        }
    ]
    pb = tmp / f"play-{stamp}.yml"
    pb.write_text(json.dumps(play))
    return [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(pb), *extra], results


def run_tasks(tmp: Path, tasks: list[dict], *extra: str) -> tuple[int, dict, str]:
    """Run tasks through real ansible-playbook on localhost; return rc, the registered ``r``, the output."""
    cmd, results = playbook_cmd(tmp, tasks, *extra)
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=project_env(ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python")),
        capture_output=True,
        text=True,
        check=False,
    )
    data = json.loads(results.read_text()) if results.exists() else {}
    return proc.returncode, data, proc.stdout + proc.stderr


def module_task(module: str, args: dict, **flags: object) -> dict:
    return {"name": "Run the module", f"deploy2standalone.clearml.{module}": args, "register": "r", **flags}


def run_module(tmp: Path, module: str, args: dict, *extra: str) -> dict:
    """Run one module of the collection (errors ignored) and return its result."""
    rc, result, out = run_tasks(tmp, [module_task(module, args, ignore_errors=True)], *extra)
    assert result, f"ansible-playbook rc={rc} saved no result:\n{out[-4000:]}"
    return result


def bundle_sample() -> ModuleType:
    """tests/unit/fixtures/bundle/sample.py (small complete bundles), loaded once per session."""
    if "d2s_bundle_sample" not in sys.modules:
        path = REPO / "tests" / "unit" / "fixtures" / "bundle" / "sample.py"
        spec = importlib.util.spec_from_file_location("d2s_bundle_sample", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["d2s_bundle_sample"] = module
        spec.loader.exec_module(module)
    return sys.modules["d2s_bundle_sample"]
