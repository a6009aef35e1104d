# SPDX-License-Identifier: GPL-3.0-or-later
"""Lint is part of the test suite: ruff and ansible-lint (production profile), zero findings."""

from __future__ import annotations

import subprocess

from d2s_testlib import REPO, VENV_BIN, project_env


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, env=project_env(), capture_output=True, text=True, check=False)


def test_ruff_check() -> None:
    proc = _run(str(VENV_BIN / "ruff"), "check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format() -> None:
    proc = _run(str(VENV_BIN / "ruff"), "format", "--no-cache", "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_production_profile() -> None:
    proc = _run(
        str(VENV_BIN / "ansible-lint"), "--offline", "--profile", "production", "-f", "pep8", "--nocolor"
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Profile 'production' was required, and it passed" in out, out
