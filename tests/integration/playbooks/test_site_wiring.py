# SPDX-License-Identifier: GPL-3.0-or-later
"""The playbooks with the example inventories: every site's roles resolve to that site's values.

Real ``ansible-playbook`` with the repo's inventories (dev + site_a + site_b loaded together, vaulted
credentials decrypted with the example password); no host is contacted (the plays read variables only).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from d2s_testlib import REPO, VENV_BIN, project_env

VAULT_PASSWORD = "deploy2standalone-example-only"
INVENTORIES = ["inventories/dev", "inventories/site_a", "inventories/site_b"]
PLAYBOOKS = ["deploy_standalone.yml", "export_bundle.yml", "import_bundle.yml", "sync_back.yml"]

SHOWN = [
    "triton_serving_bundle",
    "clearml_import_bundle",
    "clearml_serving_bundle",
    "clearml_serving_import_info",
    "clearml_serving_api_host",
    "clearml_serving_access_key",
    "clearml_serving_triton_grpc_address",
    "triton_serving_image",
    "clearml_serving_image",
    "clearml_import_access_key",
]


def _ansible(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    vault = tmp / "vault-pass"
    vault.write_text(VAULT_PASSWORD)
    inv = [a for i in INVENTORIES for a in ("-i", i)]
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), *inv, "--vault-password-file", str(vault), *args],
        cwd=REPO,
        env=project_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbooks_parse_with_the_example_inventories(tmp_path: Path, playbook: str) -> None:
    proc = _ansible(tmp_path, "--syntax-check", f"playbooks/{playbook}")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_each_site_host_resolves_its_own_site_values(tmp_path: Path) -> None:
    """The site play's vars (playbooks/vars/site_links.yml) follow each site's inventory values."""
    out = tmp_path / "vars"
    play = [
        {
            "name": "Show what the site roles would get",
            "hosts": "standalone",
            "gather_facts": False,
            "connection": "local",
            "vars_files": [str(REPO / "playbooks" / "vars" / "site_links.yml")],
            "tasks": [
                {
                    "name": "Write the resolved values",
                    "ansible.builtin.copy": {
                        "content": "{{ {" + ", ".join(f"'{k}': {k}" for k in SHOWN) + "} | to_json }}",
                        "dest": f"{out}/{{{{ inventory_hostname }}}}.json",
                        "mode": "0600",
                    },
                    "delegate_to": "localhost",
                    "vars": {"ansible_python_interpreter": str(VENV_BIN / "python")},
                }
            ],
        }
    ]
    out.mkdir()
    pb = tmp_path / "show.yml"
    pb.write_text(json.dumps(play))
    proc = _ansible(tmp_path, str(pb))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    a = json.loads((out / "gpu-a-01.site-a.example.json").read_text())
    b = json.loads((out / "cpu-b-01.site-b.example.json").read_text())
    assert a["triton_serving_bundle"] == a["clearml_import_bundle"] == "/var/lib/d2s/bundles/current"
    assert b["triton_serving_bundle"] == b["clearml_serving_bundle"] == "/srv/d2s/bundles/current"
    assert b["clearml_serving_import_info"] == "/srv/d2s/import_info.json"
    assert a["clearml_serving_api_host"] == "https://api.clearml.site-a.example"
    assert b["clearml_serving_api_host"] == "https://api.clearml.site-b.example"
    assert a["clearml_serving_triton_grpc_address"] == "127.0.0.1:8001"
    assert b["clearml_serving_triton_grpc_address"] == "127.0.0.1:9001"
    # The image the dev host builds and exports is the one every site runs.
    assert a["triton_serving_image"] == b["triton_serving_image"] == "d2s/triton-site:24.10"
    assert a["clearml_serving_image"] == "d2s/serving-inference:1.3.5"
    # Credentials: decrypted per site, never the other site's.
    assert a["clearml_serving_access_key"] == a["clearml_import_access_key"]
    assert b["clearml_serving_access_key"] == b["clearml_import_access_key"]
    assert a["clearml_serving_access_key"] != b["clearml_serving_access_key"]
    assert not a["clearml_serving_access_key"].startswith("$ANSIBLE_VAULT")
