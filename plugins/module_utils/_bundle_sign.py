# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ed25519 signatures of bundles (``manifest.sig``).

Private to this collection: not a public API, may change without notice.

The signed message is ``deploy2standalone-bundle-signature/1\\n`` + the sha256 of ``checksums.sha256``
+ ``\\n`` + the canonical manifest bytes. The checksum list names every other file with its hash, so one
signature covers the whole bundle. Public keys are written in OpenSSH format and fingerprinted the way
``ssh-keygen -lf`` does (``SHA256:<base64>``), so an operator can compare fingerprints with standard tools.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import traceback
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_base import (
    BundleError,
    atomic_write_bytes,
    pretty_json,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_schema import (
    schema_errors,
    sub_schema,
)

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
except ImportError:  # pragma: no cover - ansible-core depends on cryptography
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

SIGNATURE_FORMAT = "deploy2standalone-bundle-signature/1"
_CONTEXT = SIGNATURE_FORMAT.encode("ascii") + b"\n"
_MAX_KEY_FILE = 64 * 1024


def _require_crypto(what: str) -> None:
    if not HAS_CRYPTOGRAPHY:
        raise BundleError(
            f"{what} needs the Python package 'cryptography', which is not installed on this host",
            exception=CRYPTOGRAPHY_IMPORT_ERROR,
        )


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """``SHA256:<base64>`` over the OpenSSH wire form of the key: what ``ssh-keygen -lf key.pub`` prints."""
    raw = _raw_public(key)
    algo = b"ssh-ed25519"
    blob = len(algo).to_bytes(4, "big") + algo + len(raw).to_bytes(4, "big") + raw
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def generate_keypair(
    private_key_path: str | os.PathLike[str],
    public_key_path: str | os.PathLike[str],
    *,
    passphrase: str | bytes | None = None,
    comment: str = "deploy2standalone bundle signing key",
    overwrite: bool = False,
) -> str:
    """Create an Ed25519 key pair; return the public key's fingerprint.

    The private key is PKCS#8 PEM (encrypted when ``passphrase`` is given), mode 0600; the public key is
    one OpenSSH line (``ssh-ed25519 AAAA... comment``), mode 0644. Existing files are kept unless
    ``overwrite``.
    """
    _require_crypto("generating a signing key")
    priv_path, pub_path = Path(private_key_path), Path(public_key_path)
    for p in (priv_path, pub_path):
        if p.exists() and not overwrite:
            raise BundleError(f"refusing to overwrite existing key file '{p}'")
    key = Ed25519PrivateKey.generate()
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    encryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    pub = key.public_key()
    line = pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = line + b" " + comment.encode("utf-8") if comment else line
    atomic_write_bytes(priv_path, pem, mode=0o600)
    atomic_write_bytes(pub_path, line + b"\n", mode=0o644)
    return fingerprint(pub)


def load_private_key(
    path: str | os.PathLike[str], passphrase: str | bytes | None = None
) -> Ed25519PrivateKey:
    """Read an Ed25519 private key (PKCS#8 PEM or OpenSSH format)."""
    _require_crypto("signing a bundle")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read private key '{path}': {exc.strerror}") from None
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    try:
        if b"BEGIN OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, passphrase or None)
        else:
            key = serialization.load_pem_private_key(data, passphrase or None)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"cannot load private key '{path}': {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"private key '{path}' is not an Ed25519 key")
    return key


def load_public_key(value: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Read an Ed25519 public key given as text or as a path to a file holding it.

    Text forms: an OpenSSH line (``ssh-ed25519 AAAA...``), a PEM ``PUBLIC KEY`` block, or the base64 of
    the 32 raw key bytes (as stored in ``manifest.sig``). Anything else is taken as a path.
    """
    _require_crypto("verifying a bundle signature")
    text = os.fspath(value).strip()
    if not (text.startswith(("ssh-ed25519 ", "-----BEGIN")) or _is_raw_b64_key(text)):
        try:
            with open(text, "rb") as f:
                data = f.read(_MAX_KEY_FILE + 1)
        except OSError as exc:
            raise BundleError(f"cannot read public key file '{text}': {exc.strerror}") from None
        if len(data) > _MAX_KEY_FILE:
            raise BundleError(f"public key file '{text}' is too large to be a key")
        text = data.decode("utf-8", "replace").strip()
    try:
        if text.startswith("ssh-ed25519 "):
            key = serialization.load_ssh_public_key(text.encode("ascii"))
        elif text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        elif _is_raw_b64_key(text):
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text))
        else:
            raise ValueError("not an OpenSSH, PEM or raw base64 Ed25519 public key")
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise BundleError(f"cannot load public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError("the public key is not an Ed25519 key")
    return key


def _is_raw_b64_key(text: str) -> bool:
    if len(text) != 44 or not text.endswith("="):
        return False
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except ValueError:
        return False


def _message(canonical_manifest: bytes, checksums_sha256: str) -> bytes:
    return _CONTEXT + checksums_sha256.encode("ascii") + b"\n" + canonical_manifest


def make_signature(
    key: Ed25519PrivateKey, canonical_manifest: bytes, checksums_sha256: str, content_digest: str
) -> bytes:
    """The bytes of ``manifest.sig`` for a manifest and its checksum list."""
    _require_crypto("signing a bundle")
    pub = key.public_key()
    doc = {
        "format": SIGNATURE_FORMAT,
        "algorithm": "ed25519",
        "public_key": base64.b64encode(_raw_public(pub)).decode("ascii"),
        "fingerprint": fingerprint(pub),
        "content_digest": content_digest,
        "checksums_sha256": checksums_sha256,
        "signature": base64.b64encode(key.sign(_message(canonical_manifest, checksums_sha256))).decode(
            "ascii"
        ),
    }
    return pretty_json(doc)


def parse_signature(data: bytes) -> dict[str, Any]:
    """Parse and schema-check ``manifest.sig``."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"manifest.sig is not valid JSON: {exc}") from None
    errors = schema_errors(doc, sub_schema("signature"))
    if errors:
        raise BundleError(f"manifest.sig is malformed: {errors[0]}", problems=errors)
    return doc


def check_signature(
    data: bytes,
    canonical_manifest: bytes,
    checksums_sha256: str,
    content_digest: str,
    trusted_keys: list[Ed25519PublicKey] | None,
) -> dict[str, Any]:
    """Verify ``manifest.sig`` bytes; return ``{signed, verified, trusted, fingerprint}``.

    A signature that does not verify is always fatal (whether or not it is required). With
    ``trusted_keys``, the signing key must be one of them; without, the signature is checked against
    its embedded key and reported as not trusted.
    """
    _require_crypto("verifying a bundle signature")
    doc = parse_signature(data)
    embedded = Ed25519PublicKey.from_public_bytes(base64.b64decode(doc["public_key"]))
    fp = fingerprint(embedded)
    if doc["fingerprint"] != fp:
        raise BundleError(
            f"manifest.sig: the recorded fingerprint {doc['fingerprint']} does not match its key ({fp})"
        )
    if doc["checksums_sha256"] != checksums_sha256:
        raise BundleError(
            "manifest.sig was made for a different checksums.sha256 (the bundle was changed after signing)"
        )
    if doc["content_digest"] != content_digest:
        raise BundleError(
            "manifest.sig was made for a different manifest (the bundle was changed after signing)"
        )
    trusted = None
    if trusted_keys:
        raws = {_raw_public(k) for k in trusted_keys}
        if _raw_public(embedded) not in raws:
            known = ", ".join(fingerprint(k) for k in trusted_keys)
            raise BundleError(f"bundle is signed by key {fp}, which is not the trusted key ({known})")
        trusted = True
    try:
        embedded.verify(base64.b64decode(doc["signature"]), _message(canonical_manifest, checksums_sha256))
    except InvalidSignature:
        raise BundleError(
            f"manifest.sig does not verify with key {fp}: the bundle was tampered with"
        ) from None
    return {"signed": True, "verified": True, "trusted": bool(trusted), "fingerprint": fp}


__all__ = [
    "HAS_CRYPTOGRAPHY",
    "SIGNATURE_FORMAT",
    "check_signature",
    "fingerprint",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "make_signature",
    "parse_signature",
]
