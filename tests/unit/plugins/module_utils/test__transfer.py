# SPDX-License-Identifier: GPL-3.0-or-later
"""bundle_store's core: assembling keeps the replaced bundle, rollback swaps to it (verified, recorded)."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from d2s_testlib import bundle_sample

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle
from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _transfer
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._transfer import TransferCore

sample = bundle_sample()


def digest_of(path: Path) -> str:
    return bundle.load_bundle(path).manifest.content_digest


def core(state: str, dest: Path, check_mode: bool = False, diff: bool = True, **extra: Any) -> dict[str, Any]:
    params = {"state": state, "dest": str(dest), "require_signature": False, "public_key": None, **extra}
    return TransferCore(params, check_mode=check_mode, diff=diff).run()


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Any]:
    """A site that assembled v1, then v2: dest holds v2, dest.previous v1."""
    v1 = sample.build_bundle(tmp_path / "dev", name="v1", extra_model=False)
    v2 = sample.build_bundle(tmp_path / "dev", name="v2")
    dest = tmp_path / "site" / "current"
    store = tmp_path / "site" / "store"
    for src in (v1, v2):
        res = core("assembled", dest, src=str(src), path=str(store))
        assert res["changed"] is True
    assert res["previous"] == str(dest) + ".previous"
    return {"dest": dest, "v1": digest_of(v1), "v2": digest_of(v2), "store": store, "v2_src": v2}


def test_rollback_swaps_after_verifying_and_a_second_run_is_a_no_op(site: dict[str, Any]) -> None:
    dest, v1, v2 = site["dest"], site["v1"], site["v2"]
    plan = core("rolled_back", dest, check_mode=True)
    assert plan["changed"] is True and plan["content_digest"] == v1
    assert plan["diff"] == {
        "before": {"current": v2, "previous": v1},
        "after": {"current": v1, "previous": v2},
    }
    assert digest_of(dest) == v2 and not _transfer.record_of(dest).exists()  # check mode wrote nothing

    res = core("rolled_back", dest)
    assert res["changed"] is True and res["rolled_back"] is True
    assert (res["content_digest"], res["previous_digest"]) == (v1, v2)
    assert digest_of(dest) == v1 and digest_of(_transfer.previous_of(dest)) == v2
    assert json.loads(_transfer.record_of(dest).read_text())["from"] == v2
    bundle.verify_bundle(dest)

    again = core("rolled_back", dest)
    assert again["changed"] is False and again["rolled_back"] is True
    assert again["diff"]["before"] == again["diff"]["after"]
    assert digest_of(dest) == v1


def test_roll_forward_only_from_a_recorded_rollback(site: dict[str, Any]) -> None:
    dest, v1, v2 = site["dest"], site["v1"], site["v2"]
    nothing = core("rolled_forward", dest)
    assert nothing["changed"] is False and digest_of(dest) == v2
    core("rolled_back", dest)
    fwd = core("rolled_forward", dest)
    assert fwd["changed"] is True and fwd["rolled_back"] is False
    assert (digest_of(dest), digest_of(_transfer.previous_of(dest))) == (v2, v1)
    assert not _transfer.record_of(dest).exists()
    assert core("rolled_forward", dest)["changed"] is False
    # rolling back again after a roll-forward is a new rollback
    assert core("rolled_back", dest)["changed"] is True and digest_of(dest) == v1


def test_assembling_a_new_bundle_ends_the_rollback(site: dict[str, Any]) -> None:
    dest, v1, v2 = site["dest"], site["v1"], site["v2"]
    core("rolled_back", dest)
    # re-deploying v2 (its blobs are all in the store) rolls forward the ordinary way
    res = core("assembled", dest, src=str(site["v2_src"]), path=str(site["store"]))
    assert res["changed"] is True
    assert (digest_of(dest), digest_of(_transfer.previous_of(dest))) == (v2, v1)
    assert not _transfer.record_of(dest).exists()
    assert core("rolled_back", dest)["changed"] is True and digest_of(dest) == v1


def test_no_previous_bundle_fails_clearly(tmp_path: Path) -> None:
    src = sample.build_bundle(tmp_path / "dev", name="v1")
    dest = tmp_path / "site" / "current"
    core("assembled", dest, src=str(src), path=str(tmp_path / "store"))
    with pytest.raises(
        ClearmlModuleError, match=r"No previous bundle to roll back to: '.*current\.previous'"
    ):
        core("rolled_back", dest)
    assert digest_of(dest) == digest_of(src)


def test_a_damaged_previous_bundle_leaves_the_current_one(site: dict[str, Any]) -> None:
    dest, v2 = site["dest"], site["v2"]
    previous = _transfer.previous_of(dest)
    manifest = json.loads((previous / "manifest.json").read_text())
    digest = next(d for d, info in manifest["blobs"].items() if info["kind"] == "model")
    victim = previous / "blobs" / "sha256" / digest
    # the store shares the inode: break the link before damaging the copy in .previous
    data = bytearray(victim.read_bytes())
    victim.unlink()
    data[0] ^= 1
    victim.write_bytes(bytes(data))
    for check_mode in (True, False):
        with pytest.raises(ClearmlModuleError, match="failed verification, so the current one stays"):
            core("rolled_back", dest, check_mode=check_mode)
    assert digest_of(dest) == v2 and not _transfer.record_of(dest).exists()


def test_a_required_signature_is_checked_on_the_bundle_that_becomes_current(site: dict[str, Any]) -> None:
    with pytest.raises(ClearmlModuleError, match="failed verification"):
        core("rolled_back", site["dest"], require_signature=True, public_key=["AAAA"])
    assert digest_of(site["dest"]) == site["v2"]


@pytest.mark.parametrize("cut_after", [1, 2])
def test_a_swap_cut_between_renames_is_completed(site: dict[str, Any], cut_after: int) -> None:
    """The non-atomic path (no renameat2): a crash after one or two of its three renames."""
    dest, v1 = site["dest"], site["v1"]
    previous, tmp = _transfer.previous_of(dest), _transfer._swap_name(dest)
    _transfer._write_record(dest, {"from": site["v2"], "to": v1})
    os.rename(dest, tmp)
    if cut_after == 2:
        os.rename(previous, dest)
    res = core("rolled_back", dest)
    assert digest_of(dest) == v1 and digest_of(previous) == site["v2"] and not tmp.exists()
    # cut after 1: nothing had swapped, the run swaps; cut after 2: the swap is finished, a no-op
    assert res["changed"] is (cut_after == 1)


def test_three_rename_fallback(site: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_transfer, "_exchange", lambda a, b: False)
    res = core("rolled_back", site["dest"])
    assert res["changed"] is True and digest_of(site["dest"]) == site["v1"]
    assert not _transfer._swap_name(site["dest"]).exists()


# -- packs: a partial bundle sent as a few tar files ------------------------------------------------


def _packed_partial(tmp_path: Path, pack_mib: int) -> tuple[Path, Path, dict[str, Any]]:
    src = sample.build_bundle(tmp_path / "dev", name="v2")
    out = tmp_path / "outbox" / "site"
    res = core("partial", out, src=str(src), site_digests=[], pack_size=pack_mib)
    return src, out, res


def test_partial_with_packs_holds_every_blob_in_packs_and_is_deterministic(tmp_path: Path) -> None:
    src, out, res = _packed_partial(tmp_path, 1)
    assert res["changed"] is True and res["packs"] >= 1
    assert not list((out / "blobs" / "sha256").iterdir())  # every blob moved into a pack
    index = json.loads((out / "packs" / "index.json").read_text())
    listed = sorted(d for group in index.values() for d in group)
    assert listed == sorted(bundle.load_bundle(src).manifest.blobs)
    first = {p.name: p.read_bytes() for p in (out / "packs").iterdir()}
    again = core("partial", out, src=str(src), site_digests=[], pack_size=1)
    assert again["changed"] is False  # same bundle, same packs: nothing rewritten
    # Written afresh, the packs are byte-identical (a resumed copy skips those already there).
    core("partial", out, src=str(src), site_digests=[], pack_size=0)
    core("partial", out, src=str(src), site_digests=[], pack_size=1)
    assert {p.name: p.read_bytes() for p in (out / "packs").iterdir()} == first


def test_assembly_unpacks_verifies_and_drops_the_packs(tmp_path: Path) -> None:
    src, out, _ = _packed_partial(tmp_path, 1)
    inbox = tmp_path / "site" / "inbox"
    shutil.copytree(out, inbox)
    dest, store = tmp_path / "site" / "current", tmp_path / "site" / "store"
    res = core("assembled", dest, src=str(inbox), path=str(store))
    assert res["changed"] is True and res["content_digest"] == digest_of(src)
    bundle.verify_bundle(dest)
    assert not (inbox / "packs").exists()


def test_a_missing_or_tampered_pack_fails_before_anything_is_published(tmp_path: Path) -> None:
    src, out, _ = _packed_partial(tmp_path, 0)
    # One blob per pack: write_packs takes bytes, and a 1-byte budget puts every blob alone.
    shutil.rmtree(out)
    bundle.make_partial_bundle(src, [], out)
    index = _transfer.write_packs(out, 1)
    assert len(index) == len(bundle.load_bundle(src).manifest.blobs)  # one blob per pack
    dest, store = tmp_path / "site" / "current", tmp_path / "site" / "store"

    missing = tmp_path / "missing"
    shutil.copytree(out, missing)
    (missing / "packs" / sorted(index)[0]).unlink()
    with pytest.raises(ClearmlModuleError, match="transfer is incomplete"):
        core("assembled", dest, src=str(missing), path=str(store))
    assert not dest.exists()

    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    name = sorted(index)[0]
    digest = index[name][0]
    pack = tampered / "packs" / name
    pack.unlink()
    with tarfile.open(pack, "w") as tar:
        data = b"not the blob"
        info = tarfile.TarInfo(f"blobs/sha256/{digest}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ClearmlModuleError, match="does not match its digest"):
        core("assembled", dest, src=str(tampered), path=str(store))
    assert not dest.exists()

    evil = tmp_path / "evil"
    shutil.copytree(out, evil)
    pack = evil / "packs" / name
    pack.unlink()
    with tarfile.open(pack, "w") as tar:
        info = tarfile.TarInfo("../../escape")
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ClearmlModuleError, match="unexpected member"):
        core("assembled", dest, src=str(evil), path=str(store))
    assert not (tmp_path / "escape").exists() and not dest.exists()
