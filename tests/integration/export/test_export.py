# SPDX-License-Identifier: GPL-3.0-or-later
"""clearml_export against the seeded dev server, through real ansible-playbook runs of the role and module.

What is asserted is read back from the bundle itself (manifest, blobs, git bundle), and the bundle's own
verification must accept it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from d2s_testlib import REPO, VENV_BIN, module_task, run_tasks

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle

pytestmark = pytest.mark.slow


def run_playbook(tmp: Path, tasks: list[dict[str, Any]], *extra: str) -> tuple[int, dict[str, Any], str]:
    """Run tasks on localhost through ansible-playbook; the registered result is under ``"r"``."""
    rc, result, out = run_tasks(tmp, tasks, *extra)
    return rc, {"r": result} if result else {}, out


def export_task(args: dict[str, Any], **flags: Any) -> dict[str, Any]:
    return module_task("clearml_export", args, **flags)


def blob_text(path: Path, digest: str) -> bytes:
    return (path / "blobs" / "sha256" / digest).read_bytes()


def all_blob_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((path / "blobs" / "sha256").iterdir()))


@pytest.fixture(scope="module")
def exported(seeded_dev, tmp_path_factory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("export")
    dest = tmp / "bundle"
    args = {**seeded_dev.module_args(), "serving_id": seeded_dev.seed["serving"]["id"], "dest": str(dest)}
    rc, res, out = run_playbook(tmp, [export_task(args)])
    assert rc == 0, out
    return {"tmp": tmp, "dest": dest, "args": args, "result": res["r"], "seed": seeded_dev.seed}


def test_bundle_verifies_and_holds_every_object(exported) -> None:
    dest, seed, result = exported["dest"], exported["seed"], exported["result"]
    assert result["changed"] is True
    summary = bundle.verify_bundle(dest)
    assert summary["content_digest"] == result["digest"]
    manifest = json.loads((dest / "manifest.json").read_text())
    # serving: every endpoint, canary, metric logging, preprocess code byte-identical
    serving = manifest["serving"]
    assert serving["id"] == seed["serving"]["id"]
    assert set(serving["endpoints"]) == set(seed["serving"]["endpoints"])
    assert serving["canary"]
    assert serving["metric_logging"]
    for key, pre in serving["preprocess"].items():
        assert hashlib.sha256(blob_text(dest, pre["blob"])).hexdigest() == pre["hash"], key
    # every served model with its files byte-identical to what the seed uploaded
    served = {ep["model_id"] for ep in seed["serving"]["endpoints"].values() if ep.get("model_id")}
    assert served <= set(manifest["models"])
    for info in seed["models"].values():
        if info["id"] not in manifest["models"]:
            continue
        entry = manifest["models"][info["id"]]
        assert entry["framework"] == info["framework"]
        (file_entry,) = entry["files"]
        data = blob_text(dest, file_entry["blob"])
        if not info.get("package"):
            ((_, meta),) = info["files"].items()
            assert hashlib.sha256(data).hexdigest() == meta["sha256"]
    # training tasks as JSON records, with events
    for task in seed["tasks"].values():
        if task["id"] not in manifest["task_records"]:
            continue
        rec = manifest["task_records"][task["id"]]
        doc = json.loads(blob_text(dest, rec["record"]))
        assert doc["id"] == task["id"]
        assert doc["script"]["version_num"] == task["script"]["commit"]
        events = [json.loads(line) for line in blob_text(dest, rec["events"]).splitlines()]
        kinds = {e["type"] for e in events}
        assert {"training_stats_scalar", "log"} <= kinds
        assert {a["key"] for a in rec["artifacts"]} >= set(task["artifacts"])
    # datasets: the whole chain with its lineage
    versions = [v["id"] for v in seed["dataset"]["versions"]]
    assert set(versions) <= set(manifest["dataset_versions"])
    for v in seed["dataset"]["versions"]:
        entry = manifest["dataset_versions"][v["id"]]
        assert entry["parents"] == v["parents"]
    # code: a git bundle that holds the recorded commit, and the uncommitted diff
    (code,) = [c for c in manifest["code"] if c["commit"] == seed["repository"]["commit"]][:1]
    gb = dest / "blobs" / "sha256" / code["bundle"]
    listed = subprocess.run(
        ["git", "bundle", "list-heads", str(gb)], capture_output=True, text=True, check=True
    )
    assert seed["repository"]["commit"] in listed.stdout
    assert seed["repository"]["uncommitted_line"].encode() in blob_text(dest, code["diff"])


def test_no_planted_secret_in_bundle(exported) -> None:
    dest, seed = exported["dest"], exported["seed"]
    everything = all_blob_bytes(dest) + (dest / "manifest.json").read_bytes()
    for name, planted in seed["planted_secrets"].items():
        assert planted["value"].encode() not in everything, name
    redactions = exported["result"]["redactions"]
    paths = {r["path"] for r in redactions}
    assert any(p.startswith("container.arguments") for p in paths)
    assert any("aws_secret_access_key" in p for p in paths)


def test_second_export_changes_nothing(exported) -> None:
    dest = exported["dest"]
    before = {p.name: p.stat().st_ino for p in (dest / "blobs" / "sha256").iterdir()}
    rc, res, out = run_playbook(exported["tmp"], [export_task(exported["args"])])
    assert rc == 0, out
    assert res["r"]["changed"] is False
    assert res["r"]["digest"] == exported["result"]["digest"]
    after = {p.name: p.stat().st_ino for p in (dest / "blobs" / "sha256").iterdir()}
    assert after == before  # the same files: no blob was written again


def test_check_mode_writes_nothing(exported, tmp_path) -> None:
    dest = tmp_path / "never"
    args = {**exported["args"], "dest": str(dest)}
    rc, res, out = run_playbook(tmp_path, [export_task(args)], "--check", "--diff")
    assert rc == 0, out
    assert res["r"]["changed"] is True
    assert not dest.exists()
    # Only the plan: the would-be bundle's control files (no blobs), for the downstream roles' check runs.
    leftovers = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(("play-", "result-")))
    assert leftovers == ["never.plan"]
    assert res["r"]["plan_path"] == str(tmp_path / "never.plan")
    plan = tmp_path / "never.plan"
    assert sorted(p.name for p in plan.iterdir()) == [
        "checksums.sha256",
        "manifest.json",
        "manifest.volatile.json",
    ]
    assert bundle.content_digest(json.loads((plan / "manifest.json").read_text())) == res["r"]["digest"]
    rc, res, out = run_playbook(tmp_path, [export_task(exported["args"])], "--check")
    assert rc == 0, out
    assert res["r"]["changed"] is False
    # The plan of an unchanged export is the bundle in place, byte for byte; a real run removes it.
    plan = Path(res["r"]["plan_path"])
    assert (plan / "manifest.json").read_bytes() == (exported["dest"] / "manifest.json").read_bytes()
    rc, res, out = run_playbook(tmp_path, [export_task(exported["args"])])
    assert rc == 0, out
    assert res["r"]["changed"] is False and "plan_path" not in res["r"]
    assert not plan.exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"serving_id": "0" * 32}, "does not exist on the dev server"),
        ({"secret_key": "wrong"}, "rejected the credentials"),
        ({"api_host": "http://127.0.0.1:9"}, "unreachable"),
    ],
)
def test_clear_failures(exported, tmp_path, override, message) -> None:
    args = {**exported["args"], "dest": str(tmp_path / "b"), **override}
    _rc, res, out = run_playbook(tmp_path, [export_task(args, ignore_errors=True)])
    assert res["r"]["failed"] is True
    assert message in res["r"]["msg"], res["r"]["msg"]
    if override.get("secret_key"):
        assert "wrong" not in out  # no_log: the secret never shows
    assert not (tmp_path / "b").exists()


def test_partial_bundle_for_a_site(exported, tmp_path) -> None:
    """With a site's digest list, only the blobs the site lacks are written; the site's store completes it."""
    full = exported["dest"]
    manifest = json.loads((full / "manifest.json").read_text())
    lacking = sorted(manifest["blobs"])[:2]
    digests = tmp_path / "site.digests"
    digests.write_text("".join(f"{d}\n" for d in sorted(manifest["blobs"]) if d not in lacking))
    dest = tmp_path / "partial"
    args = {**exported["args"], "dest": str(dest), "site_digests": str(digests)}
    rc, res, out = run_playbook(tmp_path, [export_task(args)])
    assert rc == 0, out
    assert res["r"]["changed"] is True
    assert res["r"]["partial"]["blobs"] == 2
    assert sorted(p.name for p in (dest / "blobs" / "sha256").iterdir()) == lacking
    summary = bundle.verify_bundle(dest, store=full)  # the site's store: here the complete bundle
    assert summary["content_digest"] == exported["result"]["digest"]
    rc, res, out = run_playbook(tmp_path, [export_task(args)])
    assert rc == 0, out
    assert res["r"]["changed"] is False


@pytest.mark.docker
def test_images_travel_as_layer_blobs(exported, tmp_path) -> None:
    """An image named in `images` is saved into the bundle; its layers are blobs the manifest lists."""
    payload = tmp_path / "rootfs"
    payload.mkdir()
    (payload / "hello.txt").write_text("deploy2standalone export image test\n")
    tarball = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(payload), "-cf", str(tarball), "."], check=True)
    name = f"d2s-test/export-image:{tmp_path.name[-12:].lower()}"
    subprocess.run(["docker", "import", str(tarball), name], check=True, capture_output=True)
    try:
        dest = tmp_path / "with-image"
        args = {**exported["args"], "dest": str(dest), "images": [name], "include_events": False}
        rc, res, out = run_playbook(tmp_path, [export_task(args)])
        assert rc == 0, out
        assert res["r"]["counts"]["images"] == 1
        manifest = json.loads((dest / "manifest.json").read_text())
        (image,) = manifest["images"]
        inspect = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", name],
            capture_output=True,
            text=True,
            check=True,
        )
        assert image["id"] == inspect.stdout.strip()
        assert name in image["repo_tags"]
        assert all(m["digest"] in manifest["blobs"] for m in image["members"])
        bundle.verify_bundle(dest)

        # Unchanged images are not saved again: a docker whose `save` fails cannot stop a second export,
        # which keeps the records and hard-links the same blobs (changed: false).
        wrapper = tmp_path / "no-save-bin"
        wrapper.mkdir()
        real = shutil.which("docker")
        (wrapper / "docker").write_text(
            f'#!/bin/sh\nif [ "$1" = save ]; then echo "docker save called" >&2; exit 97; fi\nexec {real} "$@"\n'
        )
        (wrapper / "docker").chmod(0o755)
        path_env = {"PATH": f"{wrapper}:{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"}
        layer = next(m["digest"] for m in image["members"] if m["size"] > 1024)
        inode = (dest / "blobs" / "sha256" / layer).stat().st_ino
        rc, res, out = run_playbook(tmp_path, [export_task(args, environment=path_env)])
        assert rc == 0, out
        assert res["r"]["changed"] is False
        assert json.loads((dest / "manifest.json").read_text())["images"] == manifest["images"]
        assert (dest / "blobs" / "sha256" / layer).stat().st_ino == inode

        # A rebuilt image under the same tag is a new image: saved again (the wrapper proves it is asked).
        (payload / "hello.txt").write_text("deploy2standalone export image test, rebuilt\n")
        subprocess.run(["tar", "-C", str(payload), "-cf", str(tarball), "."], check=True)
        subprocess.run(["docker", "import", str(tarball), name], check=True, capture_output=True)
        rc, res, out = run_playbook(tmp_path, [export_task(args, environment=path_env, ignore_errors=True)])
        assert res["r"].get("failed") and "docker save called" in json.dumps(res["r"]), out
        rc, res, out = run_playbook(tmp_path, [export_task(args)])
        assert rc == 0, out
        assert res["r"]["changed"] is True
        (rebuilt,) = json.loads((dest / "manifest.json").read_text())["images"]
        inspect = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", name],
            capture_output=True,
            text=True,
            check=True,
        )
        assert rebuilt["id"] == inspect.stdout.strip() != image["id"]
        bundle.verify_bundle(dest)
    finally:
        subprocess.run(["docker", "rmi", "-f", name], capture_output=True, check=False)


def test_wheelhouse_for_site_hosts(exported, tmp_path) -> None:
    """Wheels given to the export travel as blobs with their file names, ready for pip --no-index."""
    wheels = tmp_path / "wheels"
    source = tmp_path / "tools-src"  # a copy: setuptools builds in the source tree
    shutil.copytree(
        REPO / "tools", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    subprocess.run(
        [
            str(VENV_BIN / "pip"),
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(wheels),
            str(REPO / "tools"),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("*.whl")
    dest = tmp_path / "with-wheels"
    args = {**exported["args"], "dest": str(dest), "wheels": [str(wheels)], "include_events": False}
    rc, res, out = run_playbook(tmp_path, [export_task(args)])
    assert rc == 0, out
    manifest = json.loads((dest / "manifest.json").read_text())
    (entry,) = manifest["wheels"]
    assert entry["name"] == "d2s-tools"
    assert entry["filename"] == wheel.name
    assert blob_text(dest, entry["blob"]) == wheel.read_bytes()
    rc, res, out = run_playbook(
        tmp_path, [export_task({**args, "wheels": [str(tmp_path / "nope.whl")]}, ignore_errors=True)]
    )
    assert res["r"]["failed"] is True
    assert "nope.whl" in res["r"]["msg"]


def test_non_ascii_model_url_and_missing_weights(fresh_server, tmp_path) -> None:
    """A model recorded under another encoding of its non-ASCII name is still exported (with a note);
    a model whose weights are gone fails the export with a message naming the model."""
    import unicodedata
    import urllib.parse

    from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import ClearmlClient

    c = ClearmlClient(
        fresh_server.urls["api"],
        "d2s-access-key",
        "d2s-secret-key",
        fresh_server.urls["web"],
        fresh_server.urls["files"],
    )
    project = c.call("projects.create", {"name": "Prüfstand"})["id"]
    name = unicodedata.normalize("NFC", "Prüfstand/träin.abc/models/modèl.bin")
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights" * 100)
    c.upload(weights, c.files_url(name))
    nfd_url = f"{fresh_server.urls['files']}/{urllib.parse.quote(unicodedata.normalize('NFD', name))}"
    moved = c.call(
        "models.create", {"name": "umlaut", "uri": nfd_url, "framework": "Custom", "project": project}
    )["id"]
    gone = c.call(
        "models.create",
        {
            "name": "gone",
            "uri": f"{fresh_server.urls['files']}/nowhere/model.bin",
            "framework": "Custom",
            "project": project,
        },
    )["id"]

    base = {**fresh_server.module_args()}
    rc, res, out = run_playbook(
        tmp_path, [export_task({**base, "model_ids": [moved], "dest": str(tmp_path / "ok")})]
    )
    assert rc == 0, out
    assert any("downloaded it as" in n for n in res["r"]["notes"])
    manifest = json.loads((tmp_path / "ok" / "manifest.json").read_text())
    assert blob_text(tmp_path / "ok", manifest["models"][moved]["files"][0]["blob"]) == weights.read_bytes()

    rc, res, out = run_playbook(
        tmp_path,
        [export_task({**base, "model_ids": [gone], "dest": str(tmp_path / "no")}, ignore_errors=True)],
    )
    assert res["r"]["failed"] is True
    assert gone in res["r"]["msg"] and "404" in res["r"]["msg"], res["r"]["msg"]
    assert not (tmp_path / "no").exists()
