# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers shared by the test suite: paths and the environment every subprocess gets."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

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
