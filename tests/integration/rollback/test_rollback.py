# SPDX-License-Identifier: GPL-3.0-or-later
"""Rollback and removal at a site, through the product's playbooks run by real ansible-playbook.

A copy of the seeded dev server (the session's stays read-only) is exported (v1) and deployed to a
fresh site server with playbooks/import_bundle.yml (the site half of deploy_standalone.yml; the site
host is this machine, local connection). One served model then gets a new version in dev (the SDK and
the clearml-serving CLI, tests/integration/e2e/new_model_version.py), v2 is exported and deployed, and
playbooks/rollback.yml returns the site to v1: the bundle in place, import_info.json and the site
serving service's endpoints (its configuration, which the inference service reads) name v1's site
model ids again. A second rollback changes nothing. playbooks/remove_deployment.yml then takes the
imported objects off (archive, then delete) without touching site-made objects, and removes the
bundles only when asked.

The serving stack (Triton, the inference container) is left out here (triton_serving_enabled and
clearml_serving_enabled false): this proves the configuration the stack serves from.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from d2s_testlib import REPO, VENV_BIN, project_env, run_module

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import ClearmlClient

sys.path.insert(0, str(REPO / "tests" / "integration" / "serving"))
from serving_stack import clone_server, server_endpoints

pytestmark = pytest.mark.slow
ENDPOINT = "iris_custom/2"


def client(server: Any) -> ClearmlClient:
    a = server.module_args()
    return ClearmlClient(a["api_host"], a["access_key"], a["secret_key"], a["web_host"], a["files_host"])


def digest(path: Path) -> str:
    return bundle.load_bundle(path).manifest.content_digest


def site_objects(server: Any) -> dict[str, dict[str, list[str]]]:
    """{kind: {site id: system tags}} of every task (hidden too) and model at the site."""
    c = client(server)
    tasks = c.get_all("tasks.get_all", "tasks", {"search_hidden": True, "only_fields": ["id", "system_tags"]})
    models = c.get_all("models.get_all", "models", {"only_fields": ["id", "system_tags"]})
    return {
        "tasks": {t["id"]: sorted(t.get("system_tags") or []) for t in tasks},
        "models": {m["id"]: sorted(m.get("system_tags") or []) for m in models},
    }


class Site:
    """One site host (this machine) in group standalone, with its paths under ``root``."""

    def __init__(self, root: Path, server: Any) -> None:
        self.root = root
        self.server = server
        self.dest = root / "site" / "bundles" / "current"
        self.info = root / "site" / "import_info.json"
        self.inventory = root / "inventory.yml"
        args = server.module_args()
        site_vars = {
            "ansible_connection": "local",
            "ansible_python_interpreter": str(VENV_BIN / "python"),
            "bundle_transfer_src_host": "localhost",
            "bundle_transfer_outbox": str(root / "outbox"),
            "bundle_transfer_store": str(root / "site" / "store"),
            "bundle_transfer_inbox": str(root / "site" / "inbox"),
            "bundle_transfer_dest": str(self.dest),
            "bundle_transfer_check_docker": False,
            "bundle_transfer_min_free_mb": 1,
            "clearml_import_api_host": args["api_host"],
            "clearml_import_web_host": args["web_host"],
            "clearml_import_files_host": args["files_host"],
            "clearml_import_access_key": args["access_key"],
            "clearml_import_secret_key": args["secret_key"],
            "clearml_import_info_path": str(self.info),
            "clearml_import_site_name": "site_rb",
            "triton_serving_enabled": False,
            "clearml_serving_enabled": False,
        }
        inventory = {"all": {"children": {"standalone": {"hosts": {"site_rb": site_vars}}}}}
        self.inventory.write_text(yaml.safe_dump(inventory))

    def play(self, playbook: str, *extra: str) -> tuple[dict[str, int], str]:
        """Run a product playbook; return the site host's recap counts and the output."""
        proc = subprocess.run(
            [
                str(VENV_BIN / "ansible-playbook"),
                "-i",
                str(self.inventory),
                str(REPO / "playbooks" / playbook),
                *extra,
            ],
            cwd=REPO,
            env=project_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        out = proc.stdout + proc.stderr
        m = re.search(r"^site_rb\s*:\s*(.*)$", proc.stdout, re.M)
        assert m, f"no recap for site_rb (rc={proc.returncode}):\n{out[-6000:]}"
        recap = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}
        return recap, out

    def ok(self, playbook: str, *extra: str) -> dict[str, int]:
        recap, out = self.play(playbook, *extra)
        assert recap["failed"] == 0 and recap["unreachable"] == 0, out[-6000:]
        return recap

    def serving_models(self, serving_id: str) -> dict[str, str]:
        """The site serving service's endpoints → model ids, as clearml-serving reads its configuration."""
        return {url: ep.get("model_id") for url, ep in server_endpoints(self.server, serving_id).items()}


def export(dev: Any, serving_id: str, dest: Path, tmp: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    res = run_module(
        tmp, "clearml_export", {**dev.module_args(), "serving_id": serving_id, "dest": str(dest)}
    )
    assert res.get("failed") is not True, res
    return dest


def new_model_version(dev: Any, seed: dict[str, Any], work: Path) -> dict[str, Any]:
    (work / "seed.json").write_text(json.dumps(seed))
    env = project_env(**dev.env(), PYTHONPATH=str(REPO / "tools"))
    env = {k: v for k, v in env.items() if not k.startswith("TRAINS_")}
    proc = subprocess.run(
        [
            str(VENV_BIN / "python"),
            str(REPO / "tests" / "integration" / "e2e" / "new_model_version.py"),
            "--seed",
            str(work / "seed.json"),
            "--endpoint",
            ENDPOINT,
            "--workdir",
            str(work / "new-model"),
            "--out",
            str(work / "new_model.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((work / "new_model.json").read_text())


@pytest.fixture(scope="module")
def deployed(seeded_dev: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """v1 deployed, one model changed in dev, v2 deployed: the site before any rollback."""
    from d2s_servers import start_local_server

    root = tmp_path_factory.mktemp("rollback")
    dev = clone_server(seeded_dev, root / "dev-server")
    site_server = start_local_server(root / "site-server")
    try:
        serving_id = seeded_dev.seed["serving"]["id"]
        site = Site(root, site_server)
        v1 = export(dev, serving_id, root / "dev" / "v1", root)
        site.ok("import_bundle.yml", "-e", f"bundle_transfer_src={v1}")
        v1_info = json.loads(site.info.read_text())
        changed = new_model_version(dev, seeded_dev.seed, root)
        v2 = export(dev, serving_id, root / "dev" / "v2", root)
        site.ok("import_bundle.yml", "-e", f"bundle_transfer_src={v2}")
        v2_info = json.loads(site.info.read_text())
        site_serving = next(iter(v1_info["map"]["serving"].values()))
        yield {
            "site": site,
            "v1": digest(v1),
            "v2": digest(v2),
            "v1_info": v1_info,
            "v2_info": v2_info,
            "changed": changed,
            "serving": site_serving,
        }
    finally:
        site_server.stop()
        dev.stop()


def test_rollback_returns_the_site_to_v1_and_a_second_one_is_a_no_op(deployed: dict[str, Any]) -> None:
    site: Site = deployed["site"]
    v1_map, v2_map = deployed["v1_info"]["map"], deployed["v2_info"]["map"]
    new_model = deployed["changed"]["new_model"]
    # v2 is in place: the changed endpoint serves the new model's site id
    assert digest(site.dest) == deployed["v2"]
    served_v2 = site.serving_models(deployed["serving"])
    assert served_v2[ENDPOINT] == v2_map["models"][new_model]
    v1_served = dict(served_v2)
    v1_served[ENDPOINT] = v1_map["models"][deployed["changed"]["old_model"]]

    # check mode: the plan, nothing changes
    before = site_objects(site.server)
    recap = site.ok("rollback.yml", "--check", "--diff")
    assert recap["changed"] > 0
    assert digest(site.dest) == deployed["v2"]
    assert site.serving_models(deployed["serving"]) == served_v2
    assert site_objects(site.server) == before
    assert json.loads(site.info.read_text())["bundle_digest"] == deployed["v2"]

    # the rollback
    site.ok("rollback.yml")
    assert digest(site.dest) == deployed["v1"]
    assert digest(Path(str(site.dest) + ".previous")) == deployed["v2"]
    assert site.serving_models(deployed["serving"]) == v1_served
    info = json.loads(site.info.read_text())
    assert info["bundle_digest"] == deployed["v1"] and info["map"] == v1_map
    # nothing was deleted: v2's new model is still at the site, the serving service just no longer names it
    assert v2_map["models"][new_model] in site_objects(site.server)["models"]

    # a second rollback (the other spelling) changes nothing
    after = site_objects(site.server)
    recap = site.ok("deploy_standalone.yml", "-e", "rollback=true")
    assert recap["changed"] == 0, recap
    assert digest(site.dest) == deployed["v1"]
    assert site_objects(site.server) == after

    # deploying v2 again goes forward
    recap = site.ok("import_bundle.yml", "-e", f"bundle_transfer_src={site.root / 'dev' / 'v2'}")
    assert digest(site.dest) == deployed["v2"]
    assert site.serving_models(deployed["serving"]) == served_v2


def test_removal_archives_then_deletes_only_what_the_imports_made(deployed: dict[str, Any]) -> None:
    site: Site = deployed["site"]
    c = client(site.server)
    v2_map = deployed["v2_info"]["map"]
    imported = {i for kind in v2_map.values() for i in kind.values()} | {
        i for kind in deployed["v1_info"]["map"].values() for i in kind.values()
    }
    # site-made objects: a retraining clone of an imported task (it carries the same origin tags) and a model
    train_id = next(iter(v2_map["tasks"].values()))
    clone = c.call(
        "tasks.clone", {"task": train_id, "new_task_name": "site retrain", "new_task_parent": train_id}
    )["id"]
    site_model = c.call("models.create", {"name": "site model", "uri": "file:///tmp/site.bin"})["id"]
    site_made = {clone, site_model}

    before = site_objects(site.server)
    recap = site.ok("remove_deployment.yml", "--check", "--diff")
    assert recap["changed"] > 0
    assert site_objects(site.server) == before and site.info.exists()

    site.ok("remove_deployment.yml")
    after = site_objects(site.server)
    for kind, docs in after.items():
        for site_id, tags in docs.items():
            if site_id in imported:
                assert "archived" in tags and "d2s-removed" in tags, (kind, site_id, tags)
            else:
                assert tags == before[kind][site_id], (kind, site_id)
    assert not site.info.exists()
    assert digest(site.dest)  # the bundles stay without remove_bundles
    recap = site.ok("remove_deployment.yml")
    assert recap["changed"] == 0, recap
    assert site_objects(site.server) == after

    site.ok("import_bundle.yml", "-e", f"bundle_transfer_src={site.root / 'dev' / 'v2'}")
    # deploying v2 again restores v2's objects (and import_info.json); v1's old model is not part of v2
    restored = site_objects(site.server)
    v2_ids = {i for kind in v2_map.values() for i in kind.values()}
    for docs in restored.values():
        for site_id, tags in docs.items():
            assert ("d2s-removed" in tags) is (site_id in imported - v2_ids), (site_id, tags)
    old_model = deployed["v1_info"]["map"]["models"][deployed["changed"]["old_model"]]
    assert "archived" in restored["models"][old_model]
    assert json.loads(site.info.read_text())["map"] == v2_map

    # delete: everything the imports made goes, except the task the site's clone descends from
    site.ok("remove_deployment.yml", "-e", "removal=delete")
    left = site_objects(site.server)
    left_ids = {i for docs in left.values() for i in docs}
    assert site_made <= left_ids
    assert left_ids & imported == {train_id}
    assert "d2s-removed" in left["tasks"][train_id]
    assert site.ok("remove_deployment.yml", "-e", "removal=delete")["changed"] == 0

    site.ok("remove_deployment.yml", "-e", "remove_bundles=true")
    for path in (site.dest, Path(str(site.dest) + ".previous"), site.root / "site" / "store"):
        assert not path.exists(), path
