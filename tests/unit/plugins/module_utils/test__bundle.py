# SPDX-License-Identifier: GPL-3.0-or-later
"""Bundle directories: writing, checksums, verification, signatures, partial and assembled bundles."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from d2s_testlib import bundle_sample

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle import BlobStore, BundleError

sample = bundle_sample()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("keys")
    out: dict[str, Any] = {}
    for name in ("good", "other"):
        priv, pub = root / f"{name}.pem", root / f"{name}.pub"
        out[name] = {"priv": priv, "pub": pub, "fp": bundle.generate_keypair(priv, pub)}
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine bundle; tests copy it before changing anything."""
    return sample.build_bundle(tmp_path_factory.mktemp("built"))


@pytest.fixture
def work(built: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "bundle"
    shutil.copytree(built, dest)
    for path in dest.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    return dest


def _blob_of(bundle_dir: Path, kind: str) -> Path:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    digest = next(d for d, info in manifest["blobs"].items() if info["kind"] == kind)
    return bundle_dir / "blobs" / "sha256" / digest


# -- writing -------------------------------------------------------------------------------------------


def test_written_bundle_layout_and_sha256sum_compatibility(built: Path) -> None:
    names = sorted(str(p.relative_to(built)) for p in built.rglob("*") if p.is_file())
    manifest = json.loads((built / "manifest.json").read_text())
    assert names == sorted(
        ["checksums.sha256", "manifest.json", "manifest.volatile.json"]
        + [f"blobs/sha256/{d}" for d in manifest["blobs"]]
    )
    lines = (built / "checksums.sha256").read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in lines] == sorted(line.split("  ", 1)[1] for line in lines)
    assert "exported_on" not in manifest and "developer" not in manifest
    proc = subprocess.run(
        ["sha256sum", "--check", "--strict", "checksums.sha256"],
        cwd=built,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_content_digest_ignores_volatile_fields(tmp_path: Path) -> None:
    a = sample.build_bundle(tmp_path, name="a")
    b = sample.build_bundle(
        tmp_path,
        name="b",
        volatile={
            "exported_on": "2030-01-01T00:00:00+00:00",
            "developer": "Else",
            "exporter": {"user": "x", "host": "y"},
        },
    )
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
    assert (a / "manifest.volatile.json").read_bytes() != (b / "manifest.volatile.json").read_bytes()
    assert bundle.verify_bundle(a)["content_digest"] == bundle.verify_bundle(b)["content_digest"]


def test_rewriting_unchanged_content_keeps_the_bundle(tmp_path: Path) -> None:
    first = sample.build_bundle(tmp_path)
    inode = (first / "manifest.volatile.json").stat().st_ino
    srcs = sample.write_sources(tmp_path / "src2")
    with bundle.BundleWriter(first, tool_version="0.1.0", api_host="http://127.0.0.1:8008") as w:
        d = w.add_file(srcs["weights"], kind="model")
        w.manifest["models"]["m"] = {
            "name": "x",
            "framework": None,
            "ready": True,
            "files": [{"path": "m", "blob": d}],
        }
        changed = w.finalize(volatile=sample.VOLATILE)
    assert changed["changed"] is True
    again = sample.write_sources(tmp_path / "src3")
    with bundle.BundleWriter(first, tool_version="0.1.0", api_host="http://127.0.0.1:8008") as w:
        d = w.add_file(again["weights"], kind="model")
        w.manifest["models"]["m"] = {
            "name": "x",
            "framework": None,
            "ready": True,
            "files": [{"path": "m", "blob": d}],
        }
        same = w.finalize(volatile={"exported_on": "later"})
    assert same["changed"] is False
    assert same["content_digest"] == changed["content_digest"]
    assert (
        json.loads((first / "manifest.volatile.json").read_text())["exported_on"]
        == sample.VOLATILE["exported_on"]
    )
    assert (
        inode != (first / "manifest.volatile.json").stat().st_ino
    )  # the first rewrite replaced the old bundle
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "working directories left behind"


def test_rewrite_over_a_rotten_previous_bundle_does_not_reuse_its_blob(tmp_path: Path) -> None:
    dest = sample.build_bundle(tmp_path)
    weights = _blob_of(dest, "model")
    inode = weights.stat().st_ino
    weights.chmod(0o644)
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF
    weights.write_bytes(bytes(data))  # same size, other content: bit rot
    with pytest.raises(BundleError):
        bundle.verify_bundle(dest)
    again = sample.build_bundle(tmp_path)  # same content, same dest
    assert again == dest
    assert bundle.verify_bundle(dest)["content_digest"] == bundle.load_bundle(dest).manifest.content_digest
    assert _blob_of(dest, "model").stat().st_ino != inode


def test_unchanged_rewrite_links_the_previous_blobs(tmp_path: Path) -> None:
    dest = sample.build_bundle(tmp_path)
    inodes = {p.name: p.stat().st_ino for p in (dest / "blobs" / "sha256").iterdir()}
    sample.build_bundle(tmp_path, volatile={"exported_on": "later"})
    assert {p.name: p.stat().st_ino for p in (dest / "blobs" / "sha256").iterdir()} == inodes
    assert json.loads((dest / "manifest.volatile.json").read_text())["exported_on"] != "later"


def test_writer_refuses_an_invalid_manifest_and_leaves_nothing(tmp_path: Path) -> None:
    w = bundle.BundleWriter(tmp_path / "b", tool_version="0.1.0", api_host="http://127.0.0.1:8008")
    w.manifest["models"]["m"] = {"name": "x", "framework": None, "ready": True, "files": []}
    with pytest.raises(BundleError, match="models"):
        w.finalize()
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_index_entries_without_blobs(tmp_path: Path) -> None:
    w = bundle.BundleWriter(tmp_path / "b", tool_version="0.1.0", api_host="http://127.0.0.1:8008")
    w.manifest["blobs"]["0" * 64] = {"size": 1, "kind": "model", "media_type": "application/octet-stream"}
    with pytest.raises(BundleError, match="never added"):
        w.finalize()
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_to_replace_a_directory_that_is_not_a_bundle(tmp_path: Path) -> None:
    dest = tmp_path / "home"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    w = bundle.BundleWriter(dest, tool_version="0.1.0", api_host="http://127.0.0.1:8008")
    with pytest.raises(BundleError, match="is not a bundle; refusing to replace it"):
        w.finalize()
    assert (dest / "notes.txt").read_text() == "mine"


# -- verification --------------------------------------------------------------------------------------


def test_verify_complete_bundle(built: Path) -> None:
    before = sample.tree_state(built)
    summary = bundle.verify_bundle(built)
    manifest = json.loads((built / "manifest.json").read_text())
    assert summary["files"] == len(manifest["blobs"]) + 3
    assert summary["blobs"] == len(manifest["blobs"])
    assert summary["bytes"] == sum(b["size"] for b in manifest["blobs"].values())
    assert summary["signature"] == {"signed": False, "verified": False, "trusted": False, "fingerprint": None}
    assert summary["partial"] is False
    assert sample.tree_state(built) == before


def _flip_weights(d: Path) -> str:
    blob = _blob_of(d, "model")
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    return f"checksum mismatch for 'blobs/sha256/{blob.name}'"


def _drop_blob(d: Path) -> str:
    blob = _blob_of(d, "wheel")
    blob.unlink()
    return f"missing file 'blobs/sha256/{blob.name}'"


def _extra_file(d: Path) -> str:
    (d / "blobs" / "sha256" / "evil.sh").write_text("#!/bin/sh\n")
    return "extra file 'blobs/sha256/evil.sh'"


def _extra_root_file(d: Path) -> str:
    (d / "README").write_text("hi")
    return "extra file 'README'"


def _symlink(d: Path) -> str:
    blob = _blob_of(d, "dataset")
    blob.unlink()
    blob.symlink_to("/etc/passwd")
    return f"'blobs/sha256/{blob.name}' is a symbolic link"


def _truncate(d: Path) -> str:
    blob = _blob_of(d, "model")
    blob.write_bytes(blob.read_bytes()[:-1])
    return f"checksum mismatch for 'blobs/sha256/{blob.name}'"


def _edit_manifest(d: Path) -> str:
    m = json.loads((d / "manifest.json").read_text())
    m["tool"]["version"] = "9.9.9"
    (d / "manifest.json").write_text(json.dumps(m))
    return "checksum mismatch for 'manifest.json'"


def _edit_volatile(d: Path) -> str:
    (d / "manifest.volatile.json").write_text('{"exported_on": "forged"}')
    return "checksum mismatch for 'manifest.volatile.json'"


def _unlisted_in_checksums(d: Path) -> str:
    sums = (d / "checksums.sha256").read_text().splitlines()
    dropped = next(line for line in sums if "blobs/" in line)
    (d / "checksums.sha256").write_text("\n".join(line for line in sums if line != dropped) + "\n")
    return f"'{dropped.split('  ')[1]}' is not listed in checksums.sha256"


def _missing_checksums(d: Path) -> str:
    (d / "checksums.sha256").unlink()
    return "checksums.sha256 is missing"


def _fifo(d: Path) -> str:
    os.mkfifo(d / "blobs" / "pipe")
    return "'blobs/pipe' is not a regular file"


DAMAGE = [
    _flip_weights,
    _drop_blob,
    _extra_file,
    _extra_root_file,
    _symlink,
    _truncate,
    _edit_manifest,
    _edit_volatile,
    _unlisted_in_checksums,
    _missing_checksums,
    _fifo,
]


@pytest.mark.parametrize("damage", DAMAGE, ids=[f.__name__.strip("_") for f in DAMAGE])
def test_verify_fails_naming_the_file(work: Path, damage: Any) -> None:
    message = damage(work)
    before = sample.tree_state(work)
    with pytest.raises(BundleError) as info:
        bundle.verify_bundle(work)
    assert message in str(info.value) + " ".join(info.value.problems)
    assert sample.tree_state(work) == before, "verification changed the bundle"


def test_verify_reports_every_problem(work: Path) -> None:
    expected = [_drop_blob(work), _extra_file(work), _extra_root_file(work)]
    with pytest.raises(BundleError) as info:
        bundle.verify_bundle(work)
    assert len(info.value.problems) == len(expected), info.value.problems
    for message in expected:
        assert any(p.startswith(message) for p in info.value.problems), (message, info.value.problems)


# -- signatures ----------------------------------------------------------------------------------------


def test_keypair_files_and_fingerprint_match_ssh_keygen(keys: dict[str, Any]) -> None:
    good = keys["good"]
    assert (good["priv"].stat().st_mode & 0o777) == 0o600
    assert good["pub"].read_text().startswith("ssh-ed25519 ")
    assert good["fp"].startswith("SHA256:")
    if shutil.which("ssh-keygen"):
        out = subprocess.run(
            ["ssh-keygen", "-lf", str(good["pub"])], capture_output=True, text=True, check=True
        ).stdout
        assert good["fp"] in out
    with pytest.raises(BundleError, match="refusing to overwrite"):
        bundle.generate_keypair(good["priv"], good["pub"])


def test_encrypted_private_key(tmp_path: Path, work: Path) -> None:
    priv, pub = tmp_path / "k.pem", tmp_path / "k.pub"
    fp = bundle.generate_keypair(priv, pub, passphrase="correct horse")
    assert b"ENCRYPTED" in priv.read_bytes()
    with pytest.raises(BundleError, match="cannot load private key"):
        bundle.sign_bundle(work, priv)
    assert bundle.sign_bundle(work, priv, passphrase="correct horse")["fingerprint"] == fp
    assert bundle.verify_bundle(work, require_signature=True, public_key=pub)["signature"]["trusted"] is True


def test_signed_bundle_verifies_with_each_key_format(tmp_path: Path, keys: dict[str, Any]) -> None:
    good = keys["good"]
    signed = sample.build_bundle(tmp_path, private_key=good["priv"])
    pub_line = good["pub"].read_text()
    key = bundle.load_public_key(good["pub"])
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    raw = json.loads((signed / "manifest.sig").read_text())["public_key"]
    for form in (good["pub"], str(good["pub"]), pub_line, pem, raw, [keys["other"]["pub"], good["pub"]]):
        summary = bundle.verify_bundle(signed, require_signature=True, public_key=form)
        assert summary["signature"] == {
            "signed": True,
            "verified": True,
            "trusted": True,
            "fingerprint": good["fp"],
        }
    # without a key to trust: checked against its own key, reported untrusted, with a warning
    summary = bundle.verify_bundle(signed)
    assert summary["signature"]["verified"] is True and summary["signature"]["trusted"] is False
    assert any("no public_key was given" in w for w in summary["warnings"])


def test_sign_existing_bundle_then_tamper(work: Path, keys: dict[str, Any]) -> None:
    good = keys["good"]
    assert bundle.sign_bundle(work, good["priv"])["fingerprint"] == good["fp"]
    assert bundle.verify_bundle(work, require_signature=True, public_key=good["pub"])["signature"]["trusted"]

    # consistent tampering (blob, manifest index and checksums all rewritten): only the signature catches it
    blob = _blob_of(work, "preprocess")
    payload = b"import os; os.system('id')\n"
    new = bundle.BlobStore(work).put_bytes(payload)[0]
    m = json.loads((work / "manifest.json").read_text())
    m["blobs"][new] = dict(m["blobs"].pop(blob.name), size=len(payload))
    m["serving"]["preprocess"]["py_code_mnist"]["blob"] = new
    blob.unlink()
    (work / "manifest.json").write_bytes(bundle.canonical_json(m))
    sums = bundle.parse_checksums((work / "checksums.sha256").read_bytes())
    del sums[f"blobs/sha256/{blob.name}"]
    sums[f"blobs/sha256/{new}"] = new
    sums["manifest.json"] = bundle.hash_file(work / "manifest.json")[0]
    (work / "checksums.sha256").write_bytes(bundle.format_checksums(sums))

    with pytest.raises(BundleError, match="changed after signing"):
        bundle.verify_bundle(work)
    with pytest.raises(BundleError, match="changed after signing"):
        bundle.verify_bundle(work, require_signature=True, public_key=good["pub"])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unsigned", "is not signed, and a signature is required"),
        ("other-key", "which is not the trusted key"),
        ("no-key", "require_signature needs the public key"),
        ("bad-signature", "does not verify with key"),
        ("forged-fingerprint", "does not match its key"),
        ("garbage-sig", "manifest.sig is not valid JSON"),
        ("malformed-sig", "manifest.sig is malformed"),
    ],
)
def test_required_signature_refusals(work: Path, keys: dict[str, Any], case: str, message: str) -> None:
    good, other = keys["good"], keys["other"]
    public_key: Any = good["pub"]
    if case != "unsigned":
        bundle.sign_bundle(work, good["priv"])
    sig_path = work / "manifest.sig"
    if case == "other-key":
        public_key = other["pub"]
    elif case == "no-key":
        public_key = None
    elif case in ("bad-signature", "forged-fingerprint"):
        doc = json.loads(sig_path.read_text())
        if case == "bad-signature":
            sig = bytearray(base64.b64decode(doc["signature"]))
            sig[0] ^= 1
            doc["signature"] = base64.b64encode(bytes(sig)).decode()
        else:
            doc["fingerprint"] = other["fp"]
        sig_path.write_text(json.dumps(doc))
    elif case == "garbage-sig":
        sig_path.write_bytes(b"\x00\x01")
    elif case == "malformed-sig":
        sig_path.write_text('{"format": "x"}')
    with pytest.raises(BundleError, match=message):
        bundle.verify_bundle(work, require_signature=True, public_key=public_key)


def test_a_bad_signature_is_fatal_even_when_not_required(work: Path, keys: dict[str, Any]) -> None:
    bundle.sign_bundle(work, keys["good"]["priv"])
    doc = json.loads((work / "manifest.sig").read_text())
    doc["checksums_sha256"] = "0" * 64
    (work / "manifest.sig").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=r"different checksums\.sha256"):
        bundle.verify_bundle(work)


# -- partial and assembled bundles ----------------------------------------------------------------------


def _site_store(tmp_path: Path, source: Path, digests: list[str]) -> BlobStore:
    store = BlobStore(tmp_path / "site-store")
    src = BlobStore(source, create=False)
    for d in digests:
        with src.open(d) as f:
            store.put_stream(f)
    return store


def test_partial_bundle_verifies_and_assembles_with_the_site_store(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    full = sample.build_bundle(tmp_path, private_key=keys["good"]["priv"])
    control = bundle.load_bundle(full)
    all_digests = sorted(control.manifest.blobs)
    site_has = all_digests[::2]
    store = _site_store(tmp_path, full, site_has)

    assert bundle.missing_blobs(control.manifest, store.digests()) == sorted(set(all_digests) - set(site_has))
    partial = tmp_path / "partial"
    made = bundle.make_partial_bundle(full, store.digests(), partial)
    assert made["blobs"] == len(all_digests) - len(site_has) and made["skipped_blobs"] == len(site_has)
    assert sorted(p.name for p in (partial / "blobs" / "sha256").iterdir()) == bundle.missing_blobs(
        control.manifest, site_has
    )

    with pytest.raises(BundleError, match="missing file 'blobs/sha256/"):
        bundle.verify_bundle(partial)
    summary = bundle.verify_bundle(
        partial, store=store, require_signature=True, public_key=keys["good"]["pub"]
    )
    assert summary["from_store"] == len(site_has) and summary["partial"] is True
    assert summary["content_digest"] == control.manifest.content_digest

    before = sample.tree_state(partial)
    assembled = bundle.assemble_bundle(
        partial,
        store,
        tmp_path / "assembled",
        require_signature=True,
        public_key=keys["good"]["pub"],
        ingest=True,
    )
    assert sample.tree_state(partial) == before
    assert assembled["from_store"] == len(site_has)
    assert assembled["from_partial"] == len(all_digests) - len(site_has)
    assert assembled["ingested"] == len(all_digests) - len(site_has)
    assert store.digests() == all_digests
    assert bundle.verify_bundle(tmp_path / "assembled")["content_digest"] == control.manifest.content_digest
    # the assembled bundle shares inodes with the store instead of copying
    d = site_has[0]
    assert (tmp_path / "assembled" / "blobs" / "sha256" / d).stat().st_ino == store.path_of(d).stat().st_ino


def test_assembly_fails_before_writing_when_a_blob_is_unavailable(tmp_path: Path, built: Path) -> None:
    digests = sorted(bundle.load_bundle(built).manifest.blobs)
    store = _site_store(tmp_path, built, digests[1:])
    partial = tmp_path / "partial"
    bundle.make_partial_bundle(built, digests, partial)  # site claims it has everything
    with pytest.raises(BundleError, match=f"missing file 'blobs/sha256/{digests[0]}'") as info:
        bundle.assemble_bundle(partial, store, tmp_path / "out")
    assert info.value.result["missing_blobs"] == [digests[0]]
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_assembly_detects_a_corrupt_store_blob(tmp_path: Path, built: Path) -> None:
    digests = sorted(bundle.load_bundle(built).manifest.blobs)
    store = _site_store(tmp_path, built, digests)
    victim = store.path_of(digests[0])
    victim.chmod(0o644)
    victim.write_bytes(b"rotten")
    partial = tmp_path / "partial"
    bundle.make_partial_bundle(built, digests, partial)
    with pytest.raises(BundleError, match=f"blob '{digests[0]}' in the store '.*' is corrupt"):
        bundle.verify_bundle(partial, store=store)
    with pytest.raises(BundleError, match=f"checksum mismatch for 'blobs/sha256/{digests[0]}'.*the store"):
        bundle.assemble_bundle(partial, store, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_assembly_refuses_extra_files_in_the_partial_bundle(tmp_path: Path, built: Path) -> None:
    digests = sorted(bundle.load_bundle(built).manifest.blobs)
    store = _site_store(tmp_path, built, digests)
    partial = tmp_path / "partial"
    bundle.make_partial_bundle(built, digests, partial)
    (partial / "blobs" / "sha256" / ("0" * 64)).write_bytes(b"smuggled")
    with pytest.raises(BundleError, match=f"extra file 'blobs/sha256/{'0' * 64}'"):
        bundle.assemble_bundle(partial, store, tmp_path / "out")


# -- listing -------------------------------------------------------------------------------------------


def test_describe_bundle_lists_everything(built: Path) -> None:
    info = bundle.describe_bundle(built)
    assert info["format_version"] == "1.0"
    assert info["exporter"] == {
        "developer": "Kai",
        "user": "kai",
        "host": "dev1",
        "exported_on": sample.VOLATILE["exported_on"],
    }
    assert info["serving_id"] == sample.SERVING
    assert [e["url"] for e in info["endpoints"]] == ["mnist"]
    assert info["endpoints"][0]["model_name"] == "mnist"
    assert {m["id"]: m["framework"] for m in info["models"]} == {
        sample.MODEL: "ONNX",
        sample.MODEL2: "PyTorch",
    }
    assert info["models"][0]["files"][0]["size"] == 64 * 1024
    datasets = {d["id"]: d for d in info["datasets"]}
    assert datasets[sample.DS2]["parents"] == [sample.DS1] and datasets[sample.DS2]["version"] == "1.0.1"
    assert info["tasks"][0]["datasets"] == [sample.DS2] and info["tasks"][0]["events"] is True
    manifest = json.loads((built / "manifest.json").read_text())
    cfg = manifest["images"][0]["id"].split(":")[1]
    assert info["images"][0]["bytes"] == 20000 + manifest["blobs"][cfg]["size"]
    assert info["wheels"][0]["filename"] == "pkg-1.0-py3-none-any.whl"
    assert info["redactions"][0]["rule"] == "secret-name"
    assert info["bytes_by_kind"]["model"] == 64 * 1024 + 4096
    assert sum(info["bytes_by_kind"].values()) == info["total_bytes"]
    assert info["files_verified"] == info["blob_count"] + 3


@pytest.mark.skipif(
    not (shutil.which("openssl") and shutil.which("ssh-keygen")), reason="needs openssl and ssh-keygen"
)
def test_keys_made_by_openssl_and_ssh_keygen(tmp_path: Path, work: Path) -> None:
    ossl, ossl_pub = tmp_path / "ossl.pem", tmp_path / "ossl.pub.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(ossl)], check=True, capture_output=True
    )
    subprocess.run(["openssl", "pkey", "-in", str(ossl), "-pubout", "-out", str(ossl_pub)], check=True)
    fp = bundle.sign_bundle(work, ossl)["fingerprint"]
    assert (
        bundle.verify_bundle(work, require_signature=True, public_key=ossl_pub)["signature"]["fingerprint"]
        == fp
    )

    key = tmp_path / "ssh"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    fp = bundle.sign_bundle(work, key)["fingerprint"]
    summary = bundle.verify_bundle(work, require_signature=True, public_key=key.with_suffix(".pub"))
    assert summary["signature"]["fingerprint"] == fp
    listed = subprocess.run(
        ["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True, text=True, check=True
    ).stdout
    assert fp in listed
    with pytest.raises(BundleError, match="which is not the trusted key"):
        bundle.verify_bundle(work, require_signature=True, public_key=ossl_pub)
