# SPDX-License-Identifier: GPL-3.0-or-later
"""dataset_sync (sync-back): two sites that imported the seeded deployment make things, dev gets them.

A dev server of this module's own (seeded; the session's ``seeded_dev`` is shared read-only and is left
alone) and two site servers (site_a, site_b) that imported dev's bundle. People work at the sites
through the real clearml SDK (flows.py: dataset versions, a new dataset, a retrain of a cloned task run
as clearml-agent runs it); the syncs run through real ansible-playbook runs of the module, the role and
playbooks/sync_back.yml; dev is read back through the real SDK (readback.py) and the REST API.

The tests of this module are one scenario, in order: what a site made in one step is history in the
next (test_1 site_a's first sync; test_2 conflicts between the sites and dev; test_3 a carried disk;
test_4 the periodic job).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from d2s_servers import ACCESS_KEY, SECRET_KEY, LocalServer, run_seed, start_local_server
from d2s_testlib import REPO, VENV_BIN, project_env

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import ClearmlClient
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._export import ExportCore
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._import import ImportCore
from d2s_tools.seed import runner
from d2s_tools.seed.spec import PLANTED_SECRETS

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
TRAIN = REPO / "tools" / "d2s_tools" / "seed" / "assets" / "train.py"
PROJECT, NAME = "d2s-demo", "iris-like"


def client(server: LocalServer) -> ClearmlClient:
    return ClearmlClient(server.urls["api"], ACCESS_KEY, SECRET_KEY, server.urls["web"], server.urls["files"])


def last_json(text: str) -> dict[str, Any]:
    return json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("{")))


@dataclass
class World:
    tmp: Path
    dev: LocalServer
    sites: dict[str, LocalServer]
    seed: dict[str, Any]
    imported: dict[str, dict[str, Any]]  # site → import_info
    made: dict[str, Any] = field(default_factory=dict)
    flows: int = 0

    # -- people at work ----------------------------------------------------------------------------
    def sdk(self, server: LocalServer, script: str, *args: str, timeout: float = 300) -> dict[str, Any]:
        """One SDK flow in a fresh process with its own HOME/cache (d2s_tools.seed.runner)."""
        self.flows += 1
        home = self.tmp / "homes" / f"flow-{self.flows}"
        env = runner.flow_env(server.env(), home)
        # A copy outside the checkout: in a git clone with an origin remote, the SDK's inspection of the
        # script's repository made task.close() hang (seen in the clean-clone CI run).
        scripts = self.tmp / "flow-scripts"
        if not scripts.is_dir():
            shutil.copytree(HERE, scripts, ignore=shutil.ignore_patterns("__pycache__", "test_*.py"))
        flow = runner.run(
            f"flow-{self.flows}",
            [str(scripts / script), *args],
            cwd=home,
            env=env,
            logs=self.tmp / "logs",
            timeout=timeout,
        )
        return last_json(flow.output())

    def version(self, where: str, **spec: Any) -> dict[str, Any]:
        server = self.dev if where == "dev" else self.sites[where]
        folder = self.tmp / "data" / f"{where}-{self.flows}"
        spec.setdefault("project", PROJECT)
        spec.setdefault("name", NAME)
        return self.sdk(server, "flows.py", "version", json.dumps({**spec, "folder": str(folder)}))

    def readback(self, server: LocalServer, **spec: Any) -> dict[str, Any]:
        return self.sdk(server, "readback.py", json.dumps(spec))

    # -- ids -----------------------------------------------------------------------------------------
    def site_id(self, site: str, kind: str, dev_id: str) -> str:
        return self.imported[site]["map"][kind][dev_id]

    @property
    def dev_versions(self) -> list[dict[str, Any]]:
        return self.seed["dataset"]["versions"]

    # -- ansible --------------------------------------------------------------------------------------
    def conn(self, prefix: str, server: LocalServer) -> dict[str, str]:
        return {prefix + k: v for k, v in server.module_args().items()}

    def sync_args(self, site: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.conn("source_", self.sites[site]),
            **self.conn("dest_", self.dev),
            "site_name": site,
            "sync_info_path": str(self.tmp / site / "sync_info.json"),
            "import_info_path": str(self.tmp / "dev-records" / f"{site}.json"),
            **extra,
        }


def playbook(tmp: Path, args: dict[str, Any], *extra: str) -> tuple[list[str], Path]:
    results = tmp / f"result-{time.monotonic_ns()}.json"
    play = [
        {
            "name": "Sync",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Run",
                    "deploy2standalone.clearml.dataset_sync": args,
                    "register": "r",
                    "ignore_errors": True,
                },
                {
                    "name": "Save",
                    "ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(results)},
                    "check_mode": False,
                    "diff": False,
                },
            ],
        }
    ]
    pb = tmp / f"play-{time.monotonic_ns()}.json"
    pb.write_text(json.dumps(play))
    return [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(pb), *extra], results


def sync(world: World, args: dict[str, Any], *extra: str) -> dict[str, Any]:
    cmd, results = playbook(world.tmp, args, *extra)
    env = project_env(ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python"))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert results.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(results.read_text())


def inventory(server: LocalServer) -> dict[str, Any]:
    """Every task (hidden included) and model of a server, with what identifies it."""
    c = client(server)
    tasks = c.get_all(
        "tasks.get_all",
        "tasks",
        {"search_hidden": True, "only_fields": ["id", "name", "system_tags", "status", "runtime.version"]},
    )
    models = c.get_all("models.get_all", "models", {"only_fields": ["id", "name", "system_tags", "uri"]})
    return {
        "tasks": sorted(
            (t["id"], t["name"], tuple(t.get("system_tags") or []), t.get("status")) for t in tasks
        ),
        "models": sorted((m["id"], m["name"], tuple(m.get("system_tags") or [])) for m in models),
    }


def with_tag(server: LocalServer, tag: str) -> dict[str, list[dict[str, Any]]]:
    c = client(server)
    return {
        "tasks": c.get_all(
            "tasks.get_all",
            "tasks",
            {
                "system_tags": [tag],
                "search_hidden": True,
                "only_fields": ["id", "name", "system_tags", "runtime"],
            },
        ),
        "models": c.get_all(
            "models.get_all", "models", {"system_tags": [tag], "only_fields": ["id", "name", "system_tags"]}
        ),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("sync")
    servers: list[LocalServer] = []
    try:
        dev = start_local_server(tmp / "dev")
        servers.append(dev)
        sites = {name: start_local_server(tmp / name) for name in ("site_a", "site_b")}
        servers += sites.values()
        seed = run_seed(dev, tmp / "devseed")
        ExportCore(
            {**dev.module_args(), "serving_id": seed["serving"]["id"], "dest": str(tmp / "bundle")}
        ).run()
        imported = {}
        for name, site in sites.items():
            res = ImportCore({**site.module_args(), "bundle": str(tmp / "bundle"), "site_name": name}).run()
            imported[name] = {"map": res["id_map"]}
        yield World(tmp=tmp, dev=dev, sites=sites, seed=seed, imported=imported)
    finally:
        for server in servers:
            server.stop()


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def test_1_site_a_first_sync(world: World) -> None:
    """Case 1 (new version of an imported dataset), case 2 (a new dataset), case 3 (a retrain), case 5
    (nothing from dev goes back); check mode, a killed run resumed, idempotence."""
    v3 = world.dev_versions[-1]
    a1 = world.version(
        "site_a",
        parent=world.site_id("site_a", "datasets", v3["id"]),
        files={
            "train/site_a/annotated.csv": "f1,f2,f3,f4,label\n5.0,3.4,1.5,0.2,setosa\n",
            "raw/scan.bin": 30 << 20,
        },
    )
    assert a1["version"] == "1.2.1"  # the SDK's next patch of the site's latest (the imported 1.2.0)
    n1 = world.version("site_a", project="field-data", name="annotations", files={"a.csv": "x,y\n1,2\n"})
    n2 = world.version(
        "site_a", project="field-data", name="annotations", parent=n1["id"], files={"b.csv": "x,y\n3,4\n"}
    )
    home = world.tmp / "retrain-a"
    home.mkdir()
    retrain = world.sdk(
        world.sites["site_a"],
        "flows.py",
        "retrain",
        json.dumps(
            {
                "source_task": world.site_id("site_a", "tasks", world.seed["tasks"]["train_seed0"]["id"]),
                "train_script": str(TRAIN),
                "workdir": str(home),
                "name": "train classifier (site_a retrain)",
            }
        ),
    )
    assert retrain["dataset_id"] == a1["id"]  # Dataset.get inside the run picked the site's new version
    world.made.update(a1=a1, n1=n1, n2=n2, retrain=retrain)
    bundle = world.tmp / "site_a" / "bundle"
    args = world.sync_args("site_a", bundle=str(bundle))

    # check mode: the plan; dev untouched
    before = inventory(world.dev)
    plan = sync(world, args, "--check", "--diff")
    assert plan.get("failed") is not True, plan
    assert plan["changed"] is True
    assert set(plan["sent"]["datasets"]) == {a1["id"], n1["id"], n2["id"]}
    assert set(plan["sent"]["tasks"]) == {retrain["id"]}
    assert set(plan["sent"]["models"]) == set(retrain["models"].values())
    assert plan["created"] == {"datasets": 3, "tasks": 1, "models": 3}
    decided = {d["site_id"]: d for d in plan["datasets"]}
    assert decided[a1["id"]]["dev_version"] == "1.2.1@site_a" and decided[a1["id"]]["action"] == "branched"
    assert decided[n1["id"]]["project"] == "site_a/field-data" and decided[n1["id"]]["dev_version"] == "1.0.0"
    assert decided[n2["id"]]["action"] == "kept" and decided[n2["id"]]["dev_version"] == "1.0.1"
    assert plan["diff"]["before"] != plan["diff"]["after"]
    assert inventory(world.dev) == before
    assert not (world.tmp / "site_a" / "sync_info.json").exists()

    # a run killed once the first of site_a's objects exists at dev (a 30 MB chunk is on its way)
    cmd, _ = playbook(world.tmp, args)
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=project_env(ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    killed = False
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if with_tag(world.dev, "d2s-site:site_a")["tasks"]:
            for pid in [*descendants(proc.pid), proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.01)
    proc.wait(timeout=30)
    assert killed, "the sync finished before the kill point"
    half = with_tag(world.dev, "d2s-site:site_a")
    complete = [d for d in half["tasks"] + half["models"] if "d2s-complete" in d["system_tags"]]
    assert len(complete) < 7, "the kill came after the sync was done"

    # the next run completes it
    res = sync(world, args)
    assert res.get("failed") is not True, res
    assert res["changed"] is True
    ids = res["id_map"]
    assert set(ids["datasets"]) == {a1["id"], n1["id"], n2["id"]}
    assert set(ids["tasks"]) == {retrain["id"]}
    assert set(ids["models"]) == set(retrain["models"].values())

    # at dev: exactly the site's objects, once each, complete, tagged with the site; nothing of dev's came back
    mine = with_tag(world.dev, "d2s-site:site_a")
    origins = [
        tag
        for doc in mine["tasks"] + mine["models"]
        for tag in doc["system_tags"]
        if tag.startswith("d2s-origin:")
    ]
    site_made = {a1["id"], n1["id"], n2["id"], retrain["id"], *retrain["models"].values()}
    assert sorted(origins) == sorted(f"d2s-origin:{i}" for i in site_made)
    assert all("d2s-complete" in doc["system_tags"] for doc in mine["tasks"] + mine["models"])
    after = inventory(world.dev)
    assert len(after["tasks"]) == len(before["tasks"]) + 4
    assert len(after["models"]) == len(before["models"]) + 3

    # only the site version's own chunks travelled; dev's versions are references
    manifest = json.loads((bundle / "manifest.json").read_text())
    refs = {d for d, v in manifest["dataset_versions"].items() if v["record"] is None}
    assert refs == {v["id"] for v in world.dev_versions}
    assert all(not manifest["dataset_versions"][d]["chunks"] for d in refs)
    dev_chunks = {
        a["hash"]
        for v in world.dev_versions
        for a in client(world.dev).call("tasks.get_by_id", {"task": v["id"]})["task"]["execution"][
            "artifacts"
        ]
        if a["key"].startswith("data")
    }
    sent_chunks = {d for d, b in manifest["blobs"].items() if b["kind"] == "dataset-chunk"}
    assert sent_chunks and not sent_chunks & dev_chunks
    assert len(manifest["dataset_versions"][a1["id"]]["chunks"]) == len(a1["own_chunks"])
    blob_text = b"".join(
        p.read_bytes() for p in (bundle / "blobs" / "sha256").iterdir() if p.stat().st_size < 1 << 20
    )
    for secret in PLANTED_SECRETS.values():
        assert secret["value"].encode() not in blob_text

    # dev as its users read it
    a1_dev, n2_dev, task_dev = (
        ids["datasets"][a1["id"]],
        ids["datasets"][n2["id"]],
        ids["tasks"][retrain["id"]],
    )
    seen = world.readback(
        world.dev,
        latest=[[PROJECT, NAME], ["site_a/field-data", "annotations"]],
        datasets=[a1_dev, n2_dev],
        tasks=[task_dev],
        models=list(ids["models"].values()),
    )
    assert seen["latest"][f"{PROJECT}/{NAME}"] == {"id": v3["id"], "version": "1.2.0"}  # not the site's
    assert seen["latest"]["site_a/field-data/annotations"] == {"id": n2_dev, "version": "1.0.1"}
    got = seen["datasets"][a1_dev]
    assert got["version"] == "1.2.1@site_a"
    assert got["files"] == a1["files"]
    assert got["graph"][a1_dev] == [v3["id"]]
    assert {k: v for k, v in got["graph"].items() if k != a1_dev} == {
        v["id"]: v["parents"] for v in world.dev_versions
    }
    assert "site:site_a" in got["tags"]
    assert seen["datasets"][n2_dev]["files"] == n2["files"]
    assert seen["datasets"][n2_dev]["graph"] == {
        ids["datasets"][n1["id"]]: [],
        n2_dev: [ids["datasets"][n1["id"]]],
    }
    task = seen["tasks"][task_dev]
    assert task["parent"] == world.seed["tasks"]["train_seed0"]["id"]
    assert task["params"]["Datasets/train_data"] == a1_dev
    assert a1_dev in task["runtime_datasets"] and v3["id"] in task["runtime_datasets"]
    assert task["status"] == "completed"
    assert "site:site_a" in task["tags"] and "d2s-site:site_a" in task["system_tags"]
    assert sorted(task["output_models"]) == sorted(ids["models"].values())
    at_site = world.readback(
        world.sites["site_a"], tasks=[retrain["id"]], models=list(retrain["models"].values())
    )
    assert task["scalars"] == at_site["tasks"][retrain["id"]]["scalars"] and task["scalars"]
    for site_model, dev_model in ids["models"].items():
        assert seen["models"][dev_model]["files"] == at_site["models"][site_model]["files"]
        assert seen["models"][dev_model]["task"] == task_dev
        assert "site:site_a" in seen["models"][dev_model]["tags"]

    # the records on both sides
    sync_info = json.loads((world.tmp / "site_a" / "sync_info.json").read_text())
    assert sync_info["map"]["datasets"][a1["id"]] == a1_dev and sync_info["site"] == "site_a"
    import_info = json.loads((world.tmp / "dev-records" / "site_a.json").read_text())
    assert import_info["map"] == ids and import_info["site"] == "site_a"

    # again: nothing to do
    again = sync(world, args)
    assert again["changed"] is False, again
    assert set(again["skipped"]["already_at_dest"]) == site_made
    assert inventory(world.dev) == after


def _decision(res: dict[str, Any], site_id: str) -> dict[str, Any]:
    return next(d for d in res["datasets"] if d["site_id"] == site_id)


def test_2_conflicts(world: World) -> None:
    """Case 4: promote without a conflict; two sites (fail, then branch); dev moved on (promote)."""
    assert "a1" in world.made, "test_1 makes the history this test starts from"
    v3 = world.dev_versions[-1]
    latest = [[PROJECT, NAME]]

    # site_b's version of the same dataset, promoted: nothing conflicts, it becomes dev's latest
    b1 = world.version(
        "site_b", parent=world.site_id("site_b", "datasets", v3["id"]), files={"b/1.csv": "x\n1\n"}
    )
    assert b1["version"] == "1.2.1"
    res = sync(world, world.sync_args("site_b", promote=True))
    assert res.get("failed") is not True, res
    d = _decision(res, b1["id"])
    assert (d["action"], d["conflict"], d["dev_version"], d["dev_latest"]) == ("kept", None, "1.2.1", "1.2.0")
    b1_dev = res["id_map"]["datasets"][b1["id"]]
    assert world.readback(world.dev, latest=latest)["latest"][f"{PROJECT}/{NAME}"] == {
        "id": b1_dev,
        "version": "1.2.1",
    }

    # site_a's next version (1.2.2, from its 1.2.1): dev's latest is now site_b's, not an ancestor
    a2 = world.version("site_a", parent=world.made["a1"]["id"], files={"train/site_a/more.csv": "f1\n1\n"})
    assert a2["version"] == "1.2.2"
    before = inventory(world.dev)
    res = sync(world, world.sync_args("site_a", promote=True, on_conflict="fail"))
    assert res.get("failed") is True, res
    assert "conflict" in res["msg"] and b1_dev in res["msg"], res["msg"]
    assert inventory(world.dev) == before  # refused before any change
    res = sync(world, world.sync_args("site_a", promote=True))  # on_conflict: branch
    d = _decision(res, a2["id"])
    assert (d["action"], d["dev_version"], d["dev_latest"]) == ("branched", "1.2.2@site_a", "1.2.1")
    assert b1_dev in d["conflict"]
    a2_dev = res["id_map"]["datasets"][a2["id"]]
    assert world.readback(world.dev, latest=latest)["latest"][f"{PROJECT}/{NAME}"]["id"] == b1_dev

    # dev moves on (1.3.0 from its own 1.2.0); site_b's next version is promoted over it
    d130 = world.version("dev", parent=v3["id"], version="1.3.0", files={"dev/new.csv": "y\n2\n"})
    b2 = world.version("site_b", parent=b1["id"], files={"b/2.csv": "x\n2\n"})
    assert b2["version"] == "1.2.2"
    res = sync(world, world.sync_args("site_b", on_conflict="promote"))
    d = _decision(res, b2["id"])
    assert (d["action"], d["dev_version"], d["dev_latest"]) == ("promoted", "1.3.1", "1.3.0")
    assert d130["id"] in d["conflict"]
    b2_dev = res["id_map"]["datasets"][b2["id"]]
    seen = world.readback(world.dev, latest=latest, datasets=[b2_dev])
    assert seen["latest"][f"{PROJECT}/{NAME}"] == {"id": b2_dev, "version": "1.3.1"}
    assert seen["datasets"][b2_dev]["graph"][b2_dev] == [b1_dev]
    assert seen["datasets"][b2_dev]["files"] == b2["files"]
    world.made.update(a2=a2, a2_dev=a2_dev, b1=b1, b2=b2, d130=d130)


def test_3_carried_disk(world: World) -> None:
    """A bundle written at the site (mode export), verified and imported at dev (mode import)."""
    assert "a2" in world.made, "test_2 makes the history this test starts from"
    a3 = world.version("site_a", parent=world.made["a2"]["id"], files={"train/site_a/last.csv": "f1\n3\n"})
    carried = world.tmp / "disk" / "sync-site_a"
    carried.parent.mkdir()
    export = {
        **world.conn("source_", world.sites["site_a"]),
        "mode": "export",
        "site_name": "site_a",
        "bundle": str(carried),
        "sync_info_path": str(world.tmp / "site_a" / "sync_info.json"),
    }
    plan = sync(world, export, "--check")
    assert plan["changed"] is True and a3["id"] in plan["sent"]["datasets"], plan
    assert not carried.exists()
    res = sync(world, export)
    assert res.get("failed") is not True, res
    assert res["changed"] is True
    # the site cannot know what dev has: everything it made travels (dev's own objects never do)
    assert a3["id"] in res["sent"]["datasets"] and world.made["a1"]["id"] in res["sent"]["datasets"]
    assert not {v["id"] for v in world.dev_versions} & set(res["sent"]["datasets"])
    again = sync(world, export)
    assert again["changed"] is False and again["bundle_digest"] == res["bundle_digest"]
    info = json.loads((world.tmp / "site_a" / "sync_info.json").read_text())
    assert info["exports"][-1]["bundle_digest"] == res["bundle_digest"]

    imp = {
        **world.conn("dest_", world.dev),
        "mode": "import",
        "site_name": "site_a",
        "bundle": str(carried),
        "import_info_path": str(world.tmp / "dev-records" / "site_a-carried.json"),
    }
    before = inventory(world.dev)
    # a damaged disk changes nothing
    bad = world.tmp / "disk" / "damaged"
    shutil.copytree(carried, bad)
    blob = max((bad / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 1
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    res = sync(world, {**imp, "bundle": str(bad)})
    assert res.get("failed") is True and "blob" in res["msg"], res
    assert inventory(world.dev) == before
    # check mode: only the new version would be created
    plan = sync(world, imp, "--check")
    assert plan["changed"] is True and plan["created"] == {"datasets": 1}, plan
    assert inventory(world.dev) == before
    res = sync(world, imp)
    assert res["changed"] is True, res
    a3_dev = res["id_map"]["datasets"][a3["id"]]
    d = _decision(res, a3["id"])
    assert d["dev_version"] == f"{a3['version']}@site_a"
    seen = world.readback(world.dev, datasets=[a3_dev])["datasets"][a3_dev]
    assert seen["graph"][a3_dev] == [world.made["a2_dev"]]
    assert seen["files"] == a3["files"]
    assert sync(world, imp)["changed"] is False


def run_playbook(world: World, playbook_path: Path, inventory_path: Path, *extra: str) -> str:
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory_path), str(playbook_path), *extra],
        cwd=REPO,
        env=project_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    return proc.stdout


def recap_changed(output: str) -> int:
    line = next(line for line in output.splitlines() if line.startswith("site-b-sync"))
    return int(line.split("changed=")[1].split()[0])


def test_4_periodic_job(world: World) -> None:
    """playbooks/sync_back.yml installs the periodic job on a host of the standalone group (connection
    settings from the site's clearml_import_* and the dev group's clearml_export_*); the installed cron
    command, run as cron runs it, performs a sync; one run at a time; removal."""
    assert "b2" in world.made, "test_2 makes the history this test starts from"
    home = world.tmp / "job-home"
    cron_file = world.tmp / "cron.d" / "d2s-dataset-sync"
    cron_file.parent.mkdir()
    site_b, dev = world.sites["site_b"], world.dev
    python = str(VENV_BIN / "python")
    inv = {
        "all": {
            "children": {
                "dev": {
                    "hosts": {
                        "dev-host": {
                            "ansible_connection": "local",
                            "clearml_export_api_host": dev.urls["api"],
                            "clearml_export_web_host": dev.urls["web"],
                            "clearml_export_files_host": dev.urls["files"],
                            "clearml_export_access_key": ACCESS_KEY,
                            "clearml_export_secret_key": SECRET_KEY,
                        }
                    }
                },
                "standalone": {
                    "hosts": {
                        "site-b-sync": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": python,
                            "clearml_import_site_name": "site_b",
                            "clearml_import_api_host": site_b.urls["api"],
                            "clearml_import_web_host": site_b.urls["web"],
                            "clearml_import_files_host": site_b.urls["files"],
                            "clearml_import_access_key": ACCESS_KEY,
                            "clearml_import_secret_key": SECRET_KEY,
                            "dataset_sync_home": str(home),
                            "dataset_sync_cron_file": str(cron_file),
                            "dataset_sync_schedule": "*/10 * * * *",
                            "dataset_sync_run": False,
                        }
                    }
                },
            }
        }
    }
    inv_path = world.tmp / "inventory.json"
    inv_path.write_text(json.dumps(inv))
    sync_back = REPO / "playbooks" / "sync_back.yml"
    first = run_playbook(world, sync_back, inv_path)
    assert recap_changed(first) > 0
    assert recap_changed(run_playbook(world, sync_back, inv_path)) == 0  # idempotent
    assert (home / "job.json").stat().st_mode & 0o777 == 0o600
    job = json.loads((home / "job.json").read_text())
    assert job["dest_api_host"] == dev.urls["api"] and job["source_api_host"] == site_b.urls["api"]

    # the cron line, and its command run the way cron runs it (/bin/sh -c, cron's environment)
    lines = [line for line in cron_file.read_text().splitlines() if line and not line.startswith("#")]
    env_lines = dict(line.split("=", 1) for line in lines if "=" in line.split()[0])
    (entry,) = [line for line in lines if "=" not in line.split()[0]]
    fields = entry.split(None, 6)
    assert fields[:5] == ["*/10", "*", "*", "*", "*"] and fields[5] == "root"
    command = fields[6]

    def run_job() -> dict[str, Any]:
        proc = subprocess.run(
            [env_lines.get("SHELL", "/bin/sh"), "-c", command],
            env={
                "PATH": env_lines["PATH"],
                "SHELL": env_lines["SHELL"],
                "HOME": str(world.tmp),
                "LOGNAME": "root",
            },
            cwd="/",
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return last_json((home / "sync.log").read_text())

    b3 = world.version("site_b", parent=world.made["b2"]["id"], files={"b/3.csv": "x\n3\n"})
    done = run_job()
    assert done["changed"] is True and done["mode"] == "online", done
    b3_dev = done["id_map"]["datasets"][b3["id"]]
    at_dev = client(dev).call("tasks.get_by_id", {"task": b3_dev})["task"]
    assert f"d2s-origin:{b3['id']}" in at_dev["system_tags"] and "d2s-site:site_b" in at_dev["system_tags"]
    assert run_job()["changed"] is False

    # one run at a time: while the lock is held, a run is skipped and says so
    b4 = world.version("site_b", parent=b3["id"], files={"b/4.csv": "x\n4\n"})
    holder = subprocess.Popen(["flock", str(home / "sync.lock"), "sleep", "30"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(["flock", "-n", str(home / "sync.lock"), "true"], check=False)
            if probe.returncode != 0:
                break
            time.sleep(0.05)
        proc = subprocess.run(["/bin/sh", "-c", command], check=False, timeout=60)
        assert proc.returncode == 0
        assert (home / "sync.log").read_text().splitlines()[-1].endswith("another sync is running; skipped")
        assert not with_tag(dev, f"d2s-origin:{b4['id']}")["tasks"]
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # flock and its sleep: the group this test started
        holder.wait()
    assert run_job()["changed"] is True
    assert with_tag(dev, f"d2s-origin:{b4['id']}")["tasks"]

    # no schedule: the job goes (its options hold secrets)
    run_playbook(world, sync_back, inv_path, "-e", "dataset_sync_schedule=''")
    assert not cron_file.exists() and not (home / "job.json").exists()


def test_systemd_timer_units(tmp_path: Path) -> None:
    """The role's systemd units, rendered with its own variables, pass systemd-analyze (the timer's
    OnCalendar translated from cron forms); this machine has no systemd to run them."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    role = REPO / "roles" / "dataset_sync"
    cases = {"*/15 * * * *": "*-*-* *:0/15:00", "30 2 * * *": "*-*-* 2:30:00", "@hourly": "hourly"}
    play = [
        {
            "name": "Render",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [str(role / "defaults" / "main.yml"), str(role / "vars" / "main.yml")],
            "tasks": [
                {
                    "name": "Render the units of each schedule",
                    "ansible.builtin.template": {
                        "src": str(role / "templates") + "/{{ unit }}.j2",
                        "dest": str(tmp_path) + "/{{ index }}-{{ unit }}",
                        "mode": "0644",
                    },
                    # task vars are above the role files' precedence, as inventory values are above defaults
                    "vars": {
                        "dataset_sync_schedule": "{{ item.0 }}",
                        "dataset_sync_home": str(tmp_path / "home"),
                        "unit": "{{ item.1 }}",
                        "index": "{{ schedules.index(item.0) }}",
                        "schedules": list(cases),
                    },
                    "loop": "{{ schedules | product(['d2s-dataset-sync.service', 'd2s-dataset-sync.timer']) | list }}",
                }
            ],
        }
    ]
    pb = tmp_path / "render.json"
    pb.write_text(json.dumps(play))
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(pb)],
        cwd=REPO,
        env=project_env(ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python")),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    for i, expected in enumerate(cases.values()):
        timer = (tmp_path / f"{i}-d2s-dataset-sync.timer").read_text()
        on_calendar = next(
            line.split("=", 1)[1] for line in timer.splitlines() if line.startswith("OnCalendar=")
        )
        assert on_calendar == expected
        check = subprocess.run(
            ["systemd-analyze", "calendar", on_calendar], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stderr
        service = (tmp_path / f"{i}-d2s-dataset-sync.service").read_text()
        assert f"ExecStart={tmp_path / 'home'}/bin/d2s-dataset-sync" in service
