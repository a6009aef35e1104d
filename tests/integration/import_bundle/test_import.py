# SPDX-License-Identifier: GPL-3.0-or-later
"""clearml_import: seeded dev → bundle (clearml_export) → fresh site server, through real ansible-playbook runs.

Fidelity is measured object by object (fidelity.py): zero unexpected differences is the bar. The site
is also read through the real clearml SDK the way a site user reads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import fidelity
import pytest
from d2s_servers import start_local_server
from d2s_testlib import REPO, VENV_BIN, module_task, playbook_cmd, project_env, run_module

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import ClearmlClient

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


def playbook(tmp: Path, module: str, args: dict[str, Any], *extra: str) -> tuple[list[str], Path]:
    return playbook_cmd(tmp, [module_task(module, args, ignore_errors=True)], *extra)


def run(tmp: Path, module: str, args: dict[str, Any], *extra: str) -> dict[str, Any]:
    return run_module(tmp, module, args, *extra)


def client(server) -> ClearmlClient:
    return ClearmlClient(
        server.urls["api"], "d2s-access-key", "d2s-secret-key", server.urls["web"], server.urls["files"]
    )


def site_inventory(server) -> dict[str, Any]:
    """Every object at the site: tasks (all, hidden included) and models, with their system tags."""
    c = client(server)
    tasks = c.get_all(
        "tasks.get_all",
        "tasks",
        {"search_hidden": True, "only_fields": ["id", "name", "system_tags", "status"]},
    )
    models = c.get_all("models.get_all", "models", {"only_fields": ["id", "name", "system_tags", "uri"]})
    return {
        "tasks": sorted((t["name"], tuple(t.get("system_tags") or []), t.get("status")) for t in tasks),
        "models": sorted((m["name"], tuple(m.get("system_tags") or [])) for m in models),
    }


@pytest.fixture(scope="module")
def bundle_dir(seeded_dev, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("bundle")
    dest = tmp / "bundle"
    res = run(
        tmp,
        "clearml_export",
        {**seeded_dev.module_args(), "serving_id": seeded_dev.seed["serving"]["id"], "dest": str(dest)},
    )
    assert res.get("failed") is not True, res
    return dest


def import_args(site, bundle: Path, tmp: Path) -> dict[str, Any]:
    return {
        **site.module_args(),
        "bundle": str(bundle),
        "site_name": "site_a",
        "import_info_path": str(tmp / "import_info.json"),
    }


def all_differences(dev, site, id_map: dict[str, dict[str, str]]) -> list[str]:
    d, s = client(dev), client(site)
    flat = {k: v for kind in id_map.values() for k, v in kind.items()}
    problems: list[str] = []
    for kind in ("tasks", "datasets", "serving"):
        for dev_id, site_id in id_map[kind].items():
            problems += fidelity.compare_task(d, s, dev_id, site_id, flat)
    for dev_id, site_id in id_map["models"].items():
        problems += fidelity.compare_model(d, s, dev_id, site_id, flat)
    for dev_id, site_id in id_map["tasks"].items():
        problems += fidelity.compare_events(d, s, dev_id, site_id, flat)
    return problems


def sdk_readback(site, seed: dict[str, Any], info: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """Read the site as a user does, with the real SDK in a fresh process."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    env.update(site.env())
    env.update(
        {
            "HOME": str(home),
            "CLEARML_CACHE_DIR": str(home / "cache"),
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    proc = subprocess.run(
        [str(VENV_BIN / "python"), str(HERE / "sdk_readback.py"), json.dumps(seed), json.dumps(info)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_round_trip_fidelity_and_idempotence(seeded_dev, bundle_dir, fresh_server, tmp_path) -> None:
    args = import_args(fresh_server, bundle_dir, tmp_path)
    # check mode: the plan, and the site is untouched
    before = site_inventory(fresh_server)
    plan = run(tmp_path, "clearml_import", args, "--check", "--diff")
    assert plan["changed"] is True, plan
    assert plan["created"] == {"datasets": 3, "tasks": 2, "models": 6, "serving": 1}
    assert site_inventory(fresh_server) == before
    # the import
    res = run(tmp_path, "clearml_import", args)
    assert res.get("failed") is not True, res
    assert res["changed"] is True
    info = json.loads((tmp_path / "import_info.json").read_text())
    assert info["map"] == res["id_map"]
    problems = all_differences(seeded_dev, fresh_server, res["id_map"])
    assert problems == [], "\n".join(problems)
    # the site as users read it
    seen = sdk_readback(fresh_server, seeded_dev.seed, info, tmp_path)
    assert seen["dataset_get_id"] == seen["expected_latest"]
    assert seen["files_equal"] is True
    assert seen["lineage_isomorphic"] is True
    assert seen["endpoint_models_mapped"] is True
    assert seen["models_byte_equal"] is True
    assert seen["user_tags_untouched"] is True
    # a second import changes nothing, also after the site server restarts
    after_first = site_inventory(fresh_server)
    again = run(tmp_path, "clearml_import", args)
    assert again["changed"] is False, again
    assert again["id_map"] == res["id_map"]
    fresh_server.stop()
    server2 = start_local_server(fresh_server.data_dir)  # same data, new process
    try:
        third = run(tmp_path, "clearml_import", import_args(server2, bundle_dir, tmp_path))
        assert third["changed"] is False, third
        assert site_inventory(server2) == after_first
    finally:
        server2.stop()


@pytest.mark.parametrize("kill_after_objects", [1, 4, 9])
def test_killed_import_resumes_to_the_same_state(
    seeded_dev, bundle_dir, fresh_server, tmp_path, kill_after_objects
) -> None:
    """SIGKILL the import once the site holds N objects; the next run completes it, without duplicates."""
    args = import_args(fresh_server, bundle_dir, tmp_path)
    cmd, _results = playbook(tmp_path, "clearml_import", args)
    env = project_env(ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python"))
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    c = client(fresh_server)
    killed = False
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        n = len(c.call("tasks.get_all", {"search_hidden": True, "only_fields": ["id"]})["tasks"])
        n += len(c.call("models.get_all", {"only_fields": ["id"]})["models"])
        if n >= kill_after_objects:
            # ansible's workers start their own sessions: kill the whole tree this test started, by PID
            for pid in [*descendants(proc.pid), proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed = n
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert killed, "the import finished before the kill point; the test must kill it mid-way"
    res = run(tmp_path, "clearml_import", args)
    assert res.get("failed") is not True, res
    assert res["changed"] is True, f"killed at {killed} objects: {res}"
    # no duplicates: each origin exactly once, every object complete
    inv = site_inventory(fresh_server)
    origins = [
        tag for _n, tags, *_ in inv["tasks"] + inv["models"] for tag in tags if tag.startswith("d2s-origin:")
    ]
    assert len(origins) == len(set(origins)) == 12
    assert all(
        "d2s-complete" in tags
        for _n, tags, *_ in inv["tasks"] + inv["models"]
        if any(t.startswith("d2s-origin:") for t in tags)
    )
    problems = all_differences(seeded_dev, fresh_server, res["id_map"])
    assert problems == [], "\n".join(problems)


def descendants(root: int) -> list[int]:
    """PIDs of every process below ``root`` (from /proc), deepest last."""
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


def _tamper(bundle: Path, tmp: Path, how: str) -> Path:
    bad = tmp / f"bad-{how}"
    shutil.copytree(bundle, bad)
    blobs = sorted((bad / "blobs" / "sha256").iterdir())
    if how == "flipped-bit":
        data = bytearray(blobs[0].read_bytes())
        data[len(data) // 2] ^= 0x01
        blobs[0].write_bytes(bytes(data))
    elif how == "missing":
        blobs[-1].unlink()
    elif how == "extra":
        (bad / "blobs" / "sha256" / ("0" * 64)).write_bytes(b"not listed")
    elif how == "manifest-edit":
        m = json.loads((bad / "manifest.json").read_text())
        m["serving_id"] = "f" * 32
        (bad / "manifest.json").write_text(json.dumps(m, indent=2, sort_keys=True))
    elif how == "symlink":
        target = blobs[0]
        target.unlink()
        target.symlink_to("/etc/passwd")
    return bad


@pytest.mark.parametrize("how", ["flipped-bit", "missing", "extra", "manifest-edit", "symlink"])
def test_tampered_bundle_changes_nothing(bundle_dir, fresh_server, tmp_path, how) -> None:
    bad = _tamper(bundle_dir, tmp_path, how)
    before = site_inventory(fresh_server)
    res = run(tmp_path, "clearml_import", import_args(fresh_server, bad, tmp_path))
    assert res.get("failed") is True, res
    assert any(word in res["msg"] for word in ("bundle", "blob", "manifest")), res["msg"]
    assert site_inventory(fresh_server) == before
    assert not (tmp_path / "import_info.json").exists()


def test_name_clash_policy(seeded_dev, bundle_dir, fresh_server, tmp_path) -> None:
    """A dataset of the same name and version made at the site by hand: fail refuses before any change."""
    c = client(fresh_server)
    seed = seeded_dev.seed
    project = f"{seed['dataset']['project']}/.datasets/{seed['dataset']['name']}"
    pid = c.call("projects.create", {"name": project, "system_tags": ["hidden", "dataset"]})["id"]
    version = seed["dataset"]["versions"][0]["version"]
    tid = c.call(
        "tasks.create",
        {
            "name": seed["dataset"]["name"],
            "type": "data_processing",
            "project": pid,
            "system_tags": ["dataset"],
        },
    )["id"]
    c.call("tasks.edit", {"task": tid, "force": True, "runtime": {"version": version}})
    before = site_inventory(fresh_server)
    res = run(tmp_path, "clearml_import", import_args(fresh_server, bundle_dir, tmp_path))
    assert res.get("failed") is True
    assert "Name clash" in res["msg"] and version in res["msg"], res["msg"]
    assert site_inventory(fresh_server) == before
    res = run(
        tmp_path, "clearml_import", {**import_args(fresh_server, bundle_dir, tmp_path), "on_clash": "coexist"}
    )
    assert res.get("failed") is not True, res
    assert any("name clash" in w for w in res["notes"])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-x"]))


def test_newer_bundle_creates_only_what_is_new(seeded_dev, bundle_dir, fresh_server, tmp_path) -> None:
    """A first bundle with part of the endpoints, then the full one: shared objects are not created
    again, the new ones are, and the site's serving service follows the newer bundle."""
    small = tmp_path / "small"
    args = {
        **seeded_dev.module_args(),
        "serving_id": seeded_dev.seed["serving"]["id"],
        "dest": str(small),
        "endpoints": ["iris_custom/1"],
        "include_code": False,
    }
    res = run(tmp_path, "clearml_export", args)
    assert res.get("failed") is not True, res
    first = run(tmp_path, "clearml_import", import_args(fresh_server, small, tmp_path))
    assert first.get("failed") is not True, first
    c = client(fresh_server)
    svc_id = next(iter(first["id_map"]["serving"].values()))
    eps = c.call("tasks.get_by_id", {"task": svc_id})["task"]["configuration"]["endpoints"]["value"]
    before = site_inventory(fresh_server)
    second = run(tmp_path, "clearml_import", import_args(fresh_server, bundle_dir, tmp_path))
    assert second.get("failed") is not True, second
    assert second["changed"] is True
    assert second["existing"].get("tasks") == first["created"].get("tasks")
    assert second["existing"].get("datasets") == 3
    assert second["updated"] == {"serving": 1}
    # same ids for what was there, nothing duplicated
    for kind, mapping in first["id_map"].items():
        for dev_id, site_id in mapping.items():
            assert second["id_map"][kind][dev_id] == site_id
    after = site_inventory(fresh_server)
    assert len(after["tasks"]) == len(before["tasks"]) + sum(
        v for k, v in second["created"].items() if k != "models"
    )
    eps2 = c.call("tasks.get_by_id", {"task": svc_id})["task"]["configuration"]["endpoints"]["value"]
    assert eps2 != eps
    problems = all_differences(seeded_dev, fresh_server, second["id_map"])
    assert problems == [], "\n".join(problems)
    third = run(tmp_path, "clearml_import", import_args(fresh_server, bundle_dir, tmp_path))
    assert third["changed"] is False, third
