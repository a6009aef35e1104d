# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs every molecule scenario (molecule/<name>/molecule.yml) through its full test sequence.

Real molecule, real docker driver, real site-host containers: a scenario passes only when molecule's
own sequence (syntax, create, prepare, converge, idempotence, verify, destroy) passes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from d2s_testlib import REPO, VENV_BIN, project_env

SCENARIOS = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))


@pytest.mark.docker
@pytest.mark.molecule
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario: str) -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "molecule"), "test", "-s", scenario],
        cwd=REPO,
        env=project_env(ANSIBLE_COLLECTIONS_PATH=f"{REPO / 'collections'}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    # Keep the whole log in the report of a failure; print the tail always (pytest -rA shows it).
    sys.stdout.write(proc.stdout[-4000:])
    assert proc.returncode == 0, f"molecule test -s {scenario} failed:\n{proc.stdout[-20000:]}"
