# SPDX-License-Identifier: GPL-3.0-or-later
"""``deploy_standalone.yml --check`` gives the plan per site and changes nothing anywhere.

Real runs of the real playbook (playbooks/deploy_standalone.yml) against the seeded dev server and a
fresh local site server; the "site host" is this machine through the local connection, with its own
store, inbox and bundle paths (as in inventories/local). The export's check run keeps the would-be
bundle's control files at ``<dest>.plan``; the transfer plans which blobs the site lacks from it, the
import what it would create, update or keep; Triton and the inference service wait for a bundle.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from d2s_servers import ACCESS_KEY, SECRET_KEY
from d2s_testlib import REPO, VENV_BIN, module_task, project_env, run_tasks

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle

pytestmark = pytest.mark.slow


def inventory(tmp: Path, dev: Any, site: Any) -> Path:
    dest = tmp / "dev" / "bundle"
    site_root = tmp / "site"
    inv = {
        "all": {
            "children": {
                "dev": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": str(VENV_BIN / "python"),
                            **{f"clearml_export_{k}": v for k, v in dev.module_args().items()},
                            "clearml_export_serving_id": dev.seed["serving"]["id"],
                            "clearml_export_dest": str(dest),
                            "clearml_export_include_events": False,
                        }
                    }
                },
                "standalone": {
                    "children": {
                        "plan_site": {
                            "hosts": {
                                "plan-site-host": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": str(VENV_BIN / "python"),
                                }
                            },
                            "vars": {
                                "bundle_transfer_src": str(dest),
                                "bundle_transfer_outbox": str(tmp / "outbox"),
                                "bundle_transfer_store": str(site_root / "store"),
                                "bundle_transfer_inbox": str(site_root / "inbox"),
                                "bundle_transfer_dest": str(site_root / "bundles" / "current"),
                                "bundle_transfer_check_docker": False,
                                "bundle_transfer_clearml_api_host": site.urls["api"],
                                "clearml_import_api_host": site.urls["api"],
                                "clearml_import_web_host": site.urls["web"],
                                "clearml_import_files_host": site.urls["files"],
                                "clearml_import_access_key": ACCESS_KEY,
                                "clearml_import_secret_key": SECRET_KEY,
                                "clearml_import_info_path": str(site_root / "import_info.json"),
                                "clearml_import_plan_manifest": f"{dest}.plan/manifest.json",
                                "triton_serving_model_repository": str(site_root / "triton" / "models"),
                            },
                        }
                    }
                },
            }
        }
    }
    path = tmp / "inventory.json"
    path.write_text(json.dumps(inv))
    return path


def deploy(inv: Path, *extra: str) -> tuple[int, str]:
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(inv),
            str(REPO / "playbooks/deploy_standalone.yml"),
            *extra,
        ],
        cwd=REPO,
        env=project_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` (but a check run's ``*.plan``) with its size and mtime."""
    if not root.exists():
        return {}
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not rel.parts[0].endswith(".plan"):
            out[str(rel)] = (path.lstat().st_size, path.lstat().st_mtime_ns)
    return out


def site_counts(site: Any) -> dict[str, int]:
    """Objects on the site server, read through its REST API as the SDK reads them."""
    api = site.urls["api"]
    token = requests.get(f"{api}/auth.login", auth=(ACCESS_KEY, SECRET_KEY), timeout=30).json()["data"][
        "token"
    ]
    out = {}
    for kind in ("tasks", "models", "projects"):
        reply = requests.post(
            f"{api}/{kind}.get_all",
            json={"only_fields": ["id"], "search_hidden": True, "size": 500},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        out[kind] = len(reply.json()["data"][kind])
    return out


def lines(out: str, needle: str) -> list[str]:
    return [m for m in re.findall(r'"msg": "([^"]*)"', out) if needle in m]


def test_check_run_plans_each_site_and_changes_nothing(seeded_dev, fresh_server, tmp_path) -> None:
    inv = inventory(tmp_path, seeded_dev, fresh_server)
    dest = tmp_path / "dev" / "bundle"
    plan = Path(f"{dest}.plan")
    (tmp_path / "dev").mkdir()
    before_counts = site_counts(fresh_server)

    # 1. A fresh site: nothing exported, nothing sent yet. The whole plan, nothing written but <dest>.plan.
    rc, out = deploy(inv, "--check", "--diff")
    assert rc == 0, out[-6000:]
    assert not dest.exists()
    assert not (tmp_path / "site").exists() or sorted(p.name for p in (tmp_path / "site").iterdir()) == []
    assert not (tmp_path / "outbox").exists()
    assert sorted(p.name for p in plan.iterdir()) == [
        "checksums.sha256",
        "manifest.json",
        "manifest.volatile.json",
    ]
    manifest = json.loads((plan / "manifest.json").read_text())
    digest = bundle.content_digest(manifest)
    total = sum(b["size"] for b in manifest["blobs"].values())
    (send,) = lines(out, "would send")
    assert f"would send {len(manifest['blobs'])} blobs, {total} bytes of bundle {digest}" in send, send
    assert "0 blobs already at the site" in send
    (imp,) = lines(out, "would create")
    expected = {
        "datasets": len(manifest["dataset_versions"]),
        "tasks": len(manifest["task_records"]),
        "models": len(manifest["models"]),
        "serving": 1,
    }
    for kind, count in expected.items():
        assert f"'{kind}': {count}" in imp, imp
    assert "would keep nothing" in imp
    # Triton and the inference service wait for a bundle (and its import) instead of failing.
    assert len(lines(out, "is planned once the bundle is")) == 2, out[-6000:]
    assert site_counts(fresh_server) == before_counts

    # 2. Deploy for real (without the serving stack: no images here), then check again: nothing to send,
    #    nothing to create, the plan replaced; a real run removes the plan.
    rc, out = deploy(inv, "-e", "triton_serving_enabled=false", "-e", "clearml_serving_enabled=false")
    assert rc == 0, out[-6000:]
    assert not plan.exists()
    after_counts = site_counts(fresh_server)
    assert after_counts["models"] == before_counts["models"] + len(manifest["models"])
    state = {
        "dev": tree(tmp_path / "dev"),
        "site": tree(tmp_path / "site"),
        "outbox": tree(tmp_path / "outbox"),
    }
    rc, out = deploy(
        inv, "--check", "-e", "triton_serving_enabled=false", "-e", "clearml_serving_enabled=false"
    )
    assert rc == 0, out[-6000:]
    assert lines(out, "would send") == []  # the site's bundle is the would-be bundle
    (imp,) = lines(out, "would create")
    assert "would create nothing" in imp and "would update nothing" in imp, imp
    assert f"'models': {len(manifest['models'])}" in imp
    assert {
        "dev": tree(tmp_path / "dev"),
        "site": tree(tmp_path / "site"),
        "outbox": tree(tmp_path / "outbox"),
    } == state
    assert site_counts(fresh_server) == after_counts


def test_plan_manifest_is_check_mode_only(seeded_dev, fresh_server, tmp_path) -> None:
    args = {**fresh_server.module_args(), "bundle": str(tmp_path / "none"), "plan_manifest": {"format": "x"}}
    _rc, result, _out = run_tasks(tmp_path, [module_task("clearml_import", args, ignore_errors=True)])
    assert result["failed"] is True
    assert "check mode only" in result["msg"]
    _rc, result, _out = run_tasks(
        tmp_path, [module_task("clearml_import", args, ignore_errors=True)], "--check"
    )
    assert result["failed"] is True
    assert "manifest" in result["msg"]
