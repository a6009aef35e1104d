# SPDX-License-Identifier: GPL-3.0-or-later
"""A site asking for GPUs without the NVIDIA container toolkit fails in preflight, before any change."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from d2s_testlib import docker_available, run_tasks

pytestmark = [
    pytest.mark.skipif(not docker_available(), reason="needs a docker daemon"),
    pytest.mark.skipif(
        shutil.which("nvidia-container-cli") is not None,
        reason="this host has the NVIDIA container toolkit: the failure path cannot be shown here",
    ),
]


def test_gpus_without_the_toolkit_fail_before_any_change(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({"format": "deploy2standalone-bundle/1"}))
    repo = tmp_path / "models"
    name = f"d2s-gpu-preflight-{tmp_path.name[-8:]}"
    rc, _, out = run_tasks(
        tmp_path,
        [
            {
                "name": "Serve with GPUs",
                "ansible.builtin.include_role": {"name": "deploy2standalone.clearml.triton_serving"},
                "vars": {
                    "triton_serving_bundle": str(bundle),
                    "triton_serving_gpus": ["all"],
                    "triton_serving_model_repository": str(repo),
                    "triton_serving_container_name": name,
                },
            }
        ],
    )
    assert rc != 0
    assert "no NVIDIA container toolkit" in out and "triton_serving_gpus: []" in out
    # Nothing was written or started.
    assert not repo.exists()
    ps = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"name={name}"], capture_output=True, text=True, check=True
    )
    assert ps.stdout.strip() == ""
