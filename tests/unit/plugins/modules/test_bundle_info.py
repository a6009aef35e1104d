# SPDX-License-Identifier: GPL-3.0-or-later
"""bundle_info: documentation against the argspec, main() in-process, and the module run by real ansible."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from d2s_testlib import REPO, VENV_BIN, bundle_sample, project_env

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle
from ansible_collections.deploy2standalone.clearml.plugins.modules import bundle_info

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    from unittest import mock

    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes

    @contextlib.contextmanager
    def patch_module_args(args: dict[str, Any] | None = None) -> Iterator[None]:
        with mock.patch.object(
            basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}))
        ):
            yield


sample = bundle_sample()


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("info")
    priv, pub = root / "sign.pem", root / "sign.pub"
    bundle.generate_keypair(priv, pub)
    directory = sample.build_bundle(root, private_key=priv)
    archive = root / "bundle.tar.zst"
    bundle.pack_bundle(directory, archive)
    return {"dir": directory, "archive": archive, "pub": pub, "root": root}


def run_main(args: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        bundle_info.main()
    return int(info.value.code or 0), json.loads(capsys.readouterr().out)


# -- documentation ---------------------------------------------------------------------------------------


def test_documentation_matches_the_argspec() -> None:
    doc = yaml.safe_load(bundle_info.DOCUMENTATION)
    assert doc["module"] == "bundle_info"
    assert doc["version_added"] == "0.1.0"
    options = doc["options"]
    assert set(options) == set(bundle_info.ARGUMENT_SPEC)
    for name, spec in bundle_info.ARGUMENT_SPEC.items():
        assert options[name]["type"] == spec["type"], name
        assert options[name].get("required", False) == spec.get("required", False), name
        assert options[name].get("default") == spec.get("default"), name
        assert options[name]["description"], name


def test_examples_are_named_fqcn_tasks() -> None:
    tasks = yaml.safe_load(bundle_info.EXAMPLES)
    assert tasks
    for task in tasks:
        assert task["name"][0].isupper(), task
        modules = [k for k in task if k not in ("name", "register", "when")]
        assert len(modules) == 1 and modules[0].count(".") == 2, task


def test_return_documents_every_listed_key(signed: dict[str, Path]) -> None:
    ret = yaml.safe_load(bundle_info.RETURN)["bundle"]
    documented = set(ret["contains"])
    listing = bundle.describe_bundle(signed["dir"])
    assert set(listing) == documented
    for key, spec in ret["contains"].items():
        assert {"description", "type", "sample"} <= set(spec), key


def test_ansible_doc_renders() -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "deploy2standalone.clearml.bundle_info"],
        cwd=REPO,
        env=project_env(ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections")),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "require_signature" in proc.stdout and "RETURN VALUES" in proc.stdout


# -- main() in-process ------------------------------------------------------------------------------------


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
@pytest.mark.parametrize("kind", ["dir", "archive"])
def test_main_lists_a_signed_bundle(
    signed: dict[str, Path], capsys: pytest.CaptureFixture[str], kind: str, check_mode: bool
) -> None:
    before = sample.tree_state(signed["root"])
    args = {"path": str(signed[kind]), "require_signature": True, "public_key": str(signed["pub"])}
    if check_mode:
        args["_ansible_check_mode"] = True
    rc, out = run_main(args, capsys)
    assert rc == 0, out
    assert out["changed"] is False
    info = out["bundle"]
    assert info["type"] == ("directory" if kind == "dir" else "archive")
    assert info["signature"]["trusted"] is True
    assert info["signature"]["fingerprint"] == bundle.fingerprint(bundle.load_public_key(signed["pub"]))
    assert [e["url"] for e in info["endpoints"]] == ["mnist"]
    assert info["content_digest"] == bundle.load_bundle(signed["dir"]).manifest.content_digest
    assert sample.tree_state(signed["root"]) == before


def test_main_partial_bundle_with_store(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digests = sorted(bundle.load_bundle(signed["dir"]).manifest.blobs)
    store = bundle.BlobStore(tmp_path / "store")
    for d in digests[:4]:
        store.put_file(signed["dir"] / "blobs" / "sha256" / d)
    partial = tmp_path / "partial"
    bundle.make_partial_bundle(signed["dir"], store.digests(), partial)
    rc, out = run_main({"path": str(partial)}, capsys)
    assert rc == 1 and out["failed"] is True
    assert "missing file 'blobs/sha256/" in out["msg"]
    rc, out = run_main({"path": str(partial), "store": str(tmp_path / "store")}, capsys)
    assert rc == 0, out
    assert out["bundle"]["from_store"] == 4 and out["bundle"]["partial"] is True
    assert any("no public_key was given" in w for w in out["bundle"]["warnings"])
    assert any("no public_key was given" in str(w) for w in out["warnings"]), out.get("warnings")


def test_main_fails_naming_the_damaged_file(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "b"
    shutil.copytree(signed["dir"], work)
    victim = next((work / "blobs" / "sha256").iterdir())
    victim.chmod(0o644)
    victim.write_bytes(b"tampered")
    rc, out = run_main({"path": str(work)}, capsys)
    assert rc == 1 and out["failed"] is True
    assert f"checksum mismatch for 'blobs/sha256/{victim.name}'" in out["msg"]
    assert any(victim.name in p for p in out["problems"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"require_signature": True},
            "require_signature is True but all of the following are missing: public_key",
        ),
        ({"require_signature": True, "public_key": "ssh-ed25519 AAAA"}, "cannot load public key"),
        ({"path": "/nonexistent/bundle"}, "bundle '/nonexistent/bundle' does not exist"),
        ({"store": "/nonexistent/store"}, "no blob store at '/nonexistent/store'"),
    ],
    ids=["no-key", "bad-key", "no-bundle", "no-store"],
)
def test_main_argument_failures(
    signed: dict[str, Path], capsys: pytest.CaptureFixture[str], args: dict[str, Any], message: str
) -> None:
    rc, out = run_main({"path": str(signed["dir"]), **args}, capsys)
    assert rc == 1 and message in out["msg"], out


# -- the real thing: ansible runs the module (AnsiballZ packs the module_utils it imports) ----------------


PLAYBOOK = """
- name: Verify bundles with the real module
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Verify the signed archive in check mode
      deploy2standalone.clearml.bundle_info:
        path: "{{ archive }}"
        require_signature: true
        public_key: "{{ pub }}"
      check_mode: true
    - name: Verify a damaged bundle
      deploy2standalone.clearml.bundle_info:
        path: "{{ damaged }}"
      ignore_errors: true
"""


def test_ansible_playbook_runs_the_module(signed: dict[str, Path], tmp_path: Path) -> None:
    """AnsiballZ must find every module_utils the module imports: the real packaging path."""
    work = tmp_path / "b"
    shutil.copytree(signed["dir"], work)
    (work / "blobs" / "sha256" / "extra").write_bytes(b"x")
    playbook = tmp_path / "verify.yml"
    playbook.write_text(PLAYBOOK)
    before = sample.tree_state(signed["root"])
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            str(playbook),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            json.dumps({"archive": str(signed["archive"]), "pub": str(signed["pub"]), "damaged": str(work)}),
        ],
        cwd=REPO,
        env=project_env(
            ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
            ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
            ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    ok, bad = (t["hosts"]["localhost"] for t in tasks)
    assert ok.get("failed") is not True, ok
    assert ok["changed"] is False and ok["bundle"]["signature"]["trusted"] is True
    assert ok["bundle"]["models"][0]["files"][0]["size"] == 64 * 1024
    assert bad["failed"] is True and "extra file 'blobs/sha256/extra'" in bad["msg"]
    assert sample.tree_state(signed["root"]) == before
