# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The bundle format v1: manifest, blob store, checksums, signature, archives, verification.

Private to this collection: not a public API, may change without notice. The format is documented
field by field in docs/bundle-format.md; this module is the one place that reads and writes it, for
export, transfer, import and sync-back alike. Pure Python (stdlib, ``cryptography`` for signatures,
optional ``zstandard`` and ``jsonschema``); every failure is a ``BundleError`` naming the file or field.

A bundle directory::

    manifest.json            what the bundle holds (content; its canonical form gives the digest)
    manifest.volatile.json   export time, exporter user and host (not part of the content digest)
    checksums.sha256         sha256sum format: every file except itself and the signature
    manifest.sig             optional Ed25519 signature over the manifest and the checksum list
    blobs/sha256/<digest>    every model file, record, dataset file, image member, wheel... once
"""

from __future__ import annotations

import concurrent.futures
import datetime
import functools
import getpass
import json
import os
import re
import socket
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_archive import (
    COMPRESSIONS,
    DEFAULT_LIMITS,
    HAS_ZSTD,
    ExtractLimits,
    fresh_dir_beside,
    publish_dir,
    read_control_members,
    remove_tree,
    safe_extract,
    scan_archive,
    write_tar,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_base import (
    BLOB_DIR,
    CHECKSUMMED_CONTROL_FILES,
    CHECKSUMS_NAME,
    CONTROL_FILES,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    SUPPORTED_MAJOR,
    SUPPORTED_MINOR,
    VOLATILE_NAME,
    BundleError,
    atomic_write_bytes,
    blob_relpath,
    canonical_json,
    check_relpath,
    hash_file,
    is_digest,
    pretty_json,
    read_capped,
    sha256_bytes,
    summarize_problems,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_schema import (
    HAS_JSONSCHEMA,
    MANIFEST_SCHEMA,
    relaxed_schema,
    schema_errors,
    sub_schema,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_sign import (
    HAS_CRYPTOGRAPHY,
    check_signature,
    fingerprint,
    generate_keypair,
    load_private_key,
    load_public_key,
    make_signature,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_store import (
    BlobStore,
    link_or_copy,
    read_digest_list,
    write_digest_list,
)

__all__ = [
    "CHECKSUMS_NAME",
    "COMPRESSIONS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HAS_CRYPTOGRAPHY",
    "HAS_JSONSCHEMA",
    "HAS_ZSTD",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "SIGNATURE_NAME",
    "VOLATILE_NAME",
    "BlobStore",
    "BundleControl",
    "BundleError",
    "BundleWriter",
    "ExtractLimits",
    "Manifest",
    "assemble_bundle",
    "blob_relpath",
    "bundle_listing",
    "canonical_json",
    "content_digest",
    "describe_bundle",
    "fingerprint",
    "format_checksums",
    "generate_keypair",
    "hash_file",
    "iter_blob_refs",
    "load_bundle",
    "load_manifest",
    "load_public_key",
    "load_volatile",
    "make_partial_bundle",
    "make_volatile",
    "missing_blobs",
    "new_manifest",
    "pack_bundle",
    "parse_checksums",
    "read_digest_list",
    "safe_extract",
    "sign_bundle",
    "unpack_bundle",
    "validate_manifest",
    "verify_bundle",
    "write_digest_list",
    "write_tar",
]

_VERSION_RE = re.compile(r"([0-9]{1,4})\.([0-9]{1,4})")
_CHECKSUM_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")
_URL_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://([^/@\s]*)@")
_HASH_WORKERS = max(1, min(4, os.cpu_count() or 1))
# jsonschema (when importable) validates manifests up to this many blobs; past it, the built-in validator
# does: jsonschema takes ~0.2 ms per file entry, which is minutes for a dataset of a million files.
JSONSCHEMA_MAX_BLOBS = 2000


# ======================================================================================================
# Manifest


class Manifest:
    """A validated manifest: ``data`` (the parsed manifest.json), ``warnings`` and derived values."""

    def __init__(self, data: dict[str, Any], warnings: list[str] | None = None) -> None:
        self.data = data
        self.warnings = list(warnings or [])
        self._digest: str | None = None

    @property
    def version(self) -> str:
        return str(self.data["format"]["version"])

    @property
    def blobs(self) -> dict[str, dict[str, Any]]:
        return self.data["blobs"]

    @property
    def content_digest(self) -> str:
        """``sha256:<hex>`` of the canonical manifest: same content, same digest."""
        if self._digest is None:
            self._digest = content_digest(self.data)
        return self._digest

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.data)

    def blob_files(self) -> dict[str, tuple[str, int]]:
        """``blobs/sha256/<d>`` → (digest, size) for every blob of the bundle."""
        return {blob_relpath(d): (d, int(info["size"])) for d, info in self.blobs.items()}

    def total_bytes(self) -> int:
        return sum(int(info["size"]) for info in self.blobs.values())

    def bytes_by_kind(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for info in self.blobs.values():
            totals[info["kind"]] = totals.get(info["kind"], 0) + int(info["size"])
        return dict(sorted(totals.items()))


def content_digest(manifest: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical JSON of a manifest dict (volatile fields are not in it)."""
    return "sha256:" + sha256_bytes(canonical_json(manifest))


def new_manifest(
    *,
    tool_version: str,
    api_host: str,
    web_host: str | None = None,
    files_host: str | None = None,
    api_version: str | None = None,
    server_version: str | None = None,
    serving_id: str | None = None,
) -> dict[str, Any]:
    """An empty format-1.0 manifest for an exporter to fill."""
    return {
        "format": {"name": FORMAT_NAME, "version": FORMAT_VERSION},
        "tool": {"name": "deploy2standalone.clearml", "version": tool_version},
        "source": {
            "api_host": api_host,
            "web_host": web_host,
            "files_host": files_host,
            "api_version": api_version,
            "server_version": server_version,
        },
        "serving_id": serving_id,
        "model": None,
        "tasks": [],
        "datasets": {},
        "serving": None,
        "models": {},
        "task_records": {},
        "dataset_versions": {},
        "code": [],
        "images": [],
        "wheels": [],
        "redactions": [],
        "blobs": {},
    }


def make_volatile(
    *,
    developer: str | None = None,
    exported_on: str | None = None,
    user: str | None = None,
    host: str | None = None,
) -> dict[str, Any]:
    """The content of manifest.volatile.json; defaults: now (UTC, ISO 8601), this user and host."""
    if user is None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = None
    return {
        "exported_on": exported_on or datetime.datetime.now(datetime.UTC).isoformat(),
        "developer": developer if developer is not None else user,
        "exporter": {"user": user, "host": host if host is not None else socket.gethostname()},
    }


def _parse_json(data: bytes, what: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    if not isinstance(data, (bytes, bytearray)):
        raise BundleError(f"{what} must be bytes, not {type(data).__name__}")
    try:
        text = bytes(data).decode("utf-8")
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except UnicodeDecodeError as exc:
        raise BundleError(f"{what} is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise BundleError(f"{what} is nested too deeply") from None
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{what} is not valid JSON: {exc}") from None


def _version_of(data: Any) -> tuple[int, int]:
    if not isinstance(data, dict):
        raise BundleError(f"manifest.json must hold a JSON object, not {type(data).__name__}")
    fmt = data.get("format")
    if not isinstance(fmt, dict) or fmt.get("name") != FORMAT_NAME:
        name = fmt.get("name") if isinstance(fmt, dict) else None
        raise BundleError(f"not a {FORMAT_NAME} manifest (format.name is {name!r})")
    version = fmt.get("version")
    match = _VERSION_RE.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise BundleError(f"manifest format.version {version!r} is not of the form MAJOR.MINOR")
    return int(match.group(1)), int(match.group(2))


@functools.lru_cache(maxsize=1)
def _relaxed() -> dict[str, Any]:
    return relaxed_schema()


def _schema_for(minor: int) -> dict[str, Any]:
    return MANIFEST_SCHEMA if minor <= SUPPORTED_MINOR else _relaxed()


def validate_manifest(data: Any, *, engine: str = "auto") -> Manifest:
    """Check a parsed manifest: format and version, the JSON Schema, then the cross-references.

    ``engine``: ``jsonschema``, ``builtin`` or ``auto`` (jsonschema when importable, unless the manifest
    has more than ``JSONSCHEMA_MAX_BLOBS`` blobs). An unknown MAJOR version is refused with a message naming it; a newer MINOR version is accepted
    with a warning, and fields this version does not know are then allowed.
    """
    major, minor = _version_of(data)
    warnings: list[str] = []
    if major != SUPPORTED_MAJOR:
        raise BundleError(
            f"bundle format version {major}.{minor} is not supported: this collection reads format "
            f"{SUPPORTED_MAJOR}.x (version {FORMAT_VERSION}); use a deploy2standalone.clearml release that "
            f"reads format {major}"
        )
    if minor > SUPPORTED_MINOR:
        warnings.append(
            f"bundle format version {major}.{minor} is newer than {FORMAT_VERSION}, the version this collection "
            "writes; fields it does not know are ignored"
        )
    if engine == "auto" and isinstance(data.get("blobs"), dict) and len(data["blobs"]) > JSONSCHEMA_MAX_BLOBS:
        engine = "builtin"  # same verdicts (the tests prove it), ~20x faster on big manifests
    errors = schema_errors(data, _schema_for(minor), engine=engine)
    if errors:
        raise BundleError(
            f"manifest.json does not match the format {FORMAT_VERSION} schema: {summarize_problems(errors, 3)}",
            problems=errors,
        )
    problems, more_warnings = _cross_check(data)
    if problems:
        raise BundleError(
            f"manifest.json is inconsistent: {summarize_problems(problems, 3)}", problems=problems
        )
    return Manifest(data, warnings + more_warnings)


def load_manifest(data: bytes, *, engine: str = "auto") -> Manifest:
    """Parse and validate the bytes of manifest.json. Raises only ``BundleError``."""
    parsed = _parse_json(data, MANIFEST_NAME)
    try:
        return validate_manifest(parsed, engine=engine)
    except RecursionError:
        raise BundleError("manifest.json is nested too deeply") from None


def load_volatile(data: bytes, *, minor: int = SUPPORTED_MINOR) -> dict[str, Any]:
    """Parse and validate manifest.volatile.json."""
    parsed = _parse_json(data, VOLATILE_NAME)
    schema = sub_schema("volatile", _schema_for(minor))
    errors = schema_errors(parsed, schema)
    if errors:
        raise BundleError(f"{VOLATILE_NAME} is malformed: {summarize_problems(errors, 3)}", problems=errors)
    return parsed


def _files(items: Iterable[Mapping[str, Any]], where: str) -> Iterator[tuple[str, str]]:
    for i, item in enumerate(items):
        yield f"{where}[{i}]", item["blob"]


def iter_blob_refs(data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every blob the manifest references, as ``(where, digest)``."""
    serving = data.get("serving") or {}
    if serving.get("record"):
        yield "serving.record", serving["record"]
    for key, item in serving.get("preprocess", {}).items():
        yield f"serving.preprocess[{key!r}]", item["blob"]
    for mid, model in data["models"].items():
        yield from _files(model["files"], f"models[{mid!r}].files")
    yield from _task_refs(data)
    for did, ds in data["dataset_versions"].items():
        yield f"dataset_versions[{did!r}].state", ds["state"]
        if ds.get("record"):
            yield f"dataset_versions[{did!r}].record", ds["record"]
        yield from _files(ds["files"], f"dataset_versions[{did!r}].files")
        yield from _files(ds.get("chunks", []), f"dataset_versions[{did!r}].chunks")
    for i, code in enumerate(data["code"]):
        for key in ("bundle", "diff", "requirements"):
            if code.get(key):
                yield f"code[{i}].{key}", code[key]
        yield from _files(code.get("files", []), f"code[{i}].files")
    for i, image in enumerate(data["images"]):
        for j, member in enumerate(image["members"]):
            yield f"images[{i}].members[{j}]", member["digest"]
    for i, wheel in enumerate(data["wheels"]):
        yield f"wheels[{i}]", wheel["blob"]


def _task_refs(data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for tid, task in data["task_records"].items():
        yield f"task_records[{tid!r}].record", task["record"]
        if task.get("events"):
            yield f"task_records[{tid!r}].events", task["events"]
        for i, digest in enumerate(task.get("event_blobs", [])):
            yield f"task_records[{tid!r}].event_blobs[{i}]", digest
        for i, art in enumerate(task.get("artifacts", [])):
            if art.get("blob"):
                yield f"task_records[{tid!r}].artifacts[{i}]", art["blob"]


def _file_lists(data: Mapping[str, Any]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for mid, model in data["models"].items():
        yield f"models[{mid!r}].files", model["files"]
    for did, ds in data["dataset_versions"].items():
        yield f"dataset_versions[{did!r}].files", ds["files"]
    for i, code in enumerate(data["code"]):
        yield f"code[{i}].files", code.get("files", [])
    for i, image in enumerate(data["images"]):
        yield f"images[{i}].members", image["members"]


def _url_has_credentials(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    match = _URL_USERINFO.match(url.strip())
    if not match:
        return False
    scheme, userinfo = match.group(1).lower(), match.group(2)
    return ":" in userinfo or scheme in ("http", "https")


def _urls(data: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in data["source"].items():
        yield f"source.{key}", value
    if data.get("model"):
        yield "model.url", data["model"].get("url")
    for mid, model in data["models"].items():
        yield f"models[{mid!r}].uri", model.get("uri")
    for i, code in enumerate(data["code"]):
        yield f"code[{i}].repository", code.get("repository")
    for tid, task in data["task_records"].items():
        for i, art in enumerate(task.get("artifacts", [])):
            yield f"task_records[{tid!r}].artifacts[{i}].uri", art.get("uri")
    for key, item in ((data.get("serving") or {}).get("preprocess") or {}).items():
        yield f"serving.preprocess[{key!r}].uri", item.get("uri")


def _cross_check(data: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The rules JSON Schema cannot say; returns (problems, warnings)."""
    problems: list[str] = []
    referenced: set[str] = set()
    for where, digest in iter_blob_refs(data):
        referenced.add(digest)
        if digest not in data["blobs"]:
            problems.append(f"{where} references blob {digest}, which is not in the blobs index")
    for where, files in _file_lists(data):
        problems.extend(_file_list_problems(where, files))
    for i, image in enumerate(data["images"]):
        for member in image["members"]:
            blob = data["blobs"].get(member["digest"])
            if blob is not None and blob["size"] != member["size"]:
                problems.append(
                    f"images[{i}] member '{member['path']}' has size {member['size']}, its blob {blob['size']}"
                )
    problems.extend(_lineage_problems(data["dataset_versions"]))
    problems.extend(_reference_problems(data))
    for where, url in _urls(data):
        if _url_has_credentials(url):
            problems.append(f"{where} carries credentials in its URL; redact them at export")
    warnings = []
    unreferenced = sorted(set(data["blobs"]) - referenced)
    if unreferenced:
        warnings.append(f"{len(unreferenced)} blob(s) in the index are not referenced by the manifest")
    return problems, warnings


def _file_list_problems(where: str, files: list[dict[str, Any]]) -> list[str]:
    """Paths are safe relative paths, unique, and no path is also another's directory."""
    problems = []
    paths: set[str] = set()
    for i, item in enumerate(files):
        try:
            check_relpath(item["path"], f"{where}[{i}].path")
        except BundleError as exc:
            problems.append(exc.msg)
            continue
        if item["path"] in paths:
            problems.append(f"{where}: path '{item['path']}' appears twice")
        paths.add(item["path"])
    for path in sorted(paths):
        parts = path.split("/")
        for n in range(1, len(parts)):
            if "/".join(parts[:n]) in paths:
                problems.append(
                    f"{where}: '{'/'.join(parts[:n])}' is both a file and the directory of '{path}'"
                )
    return problems


def _lineage_problems(versions: Mapping[str, Any]) -> list[str]:
    problems = [
        f"dataset_versions[{did!r}] has parent {parent!r}, which is not in dataset_versions "
        "(a bundle carries the whole lineage)"
        for did, ds in versions.items()
        for parent in ds["parents"]
        if parent not in versions
    ]
    return problems + _lineage_cycles(versions)


def _reference_problems(data: Mapping[str, Any]) -> list[str]:
    problems = []
    serving = data.get("serving")
    if serving is not None:
        if data.get("serving_id") != serving["id"]:
            problems.append(
                f"serving_id {data.get('serving_id')!r} differs from serving.id {serving['id']!r}"
            )
        for url, endpoint in serving["endpoints"].items():
            model_id = endpoint.get("model_id")
            if model_id is not None and model_id not in data["models"]:
                problems.append(
                    f"serving.endpoints[{url!r}] serves model {model_id!r}, which is not in models"
                )
    model = data.get("model")
    if model is not None and data["models"] and model["id"] not in data["models"]:
        problems.append(f"model.id {model['id']!r} is not in models")
    known_datasets = set(data["datasets"]) | set(data["dataset_versions"])
    for i, task in enumerate(data["tasks"]):
        for ds in task["datasets"]:
            if ds not in known_datasets:
                problems.append(
                    f"tasks[{i}] uses dataset {ds!r}, which is neither in datasets nor dataset_versions"
                )
    return problems


def _lineage_cycles(versions: Mapping[str, Any]) -> list[str]:
    state: dict[str, int] = {}
    problems: list[str] = []
    for start in versions:
        if state.get(start):
            continue
        stack = [(start, iter(versions[start]["parents"]))]
        state[start] = 1
        while stack:
            node, parents = stack[-1]
            parent = next(parents, None)
            if parent is None:
                state[node] = 2
                stack.pop()
            elif parent in versions:
                if state.get(parent) == 1:
                    problems.append(f"dataset_versions: lineage cycle through {parent!r}")
                elif not state.get(parent):
                    state[parent] = 1
                    stack.append((parent, iter(versions[parent]["parents"])))
    return problems


# ======================================================================================================
# Checksums


def format_checksums(entries: Mapping[str, str]) -> bytes:
    """checksums.sha256: ``<sha256>  <path>`` lines sorted by path (``sha256sum -c`` reads it)."""
    lines = []
    for name in sorted(entries):
        check_relpath(name, "checksummed path", allow_colon=False)
        if not is_digest(entries[name]):
            raise BundleError(f"invalid sha256 {entries[name]!r} for '{name}'")
        lines.append(f"{entries[name]}  {name}\n")
    return "".join(lines).encode("utf-8")


def parse_checksums(data: bytes) -> dict[str, str]:
    """Parse checksums.sha256 (text or binary sha256sum lines); path → sha256."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError(f"{CHECKSUMS_NAME} is not UTF-8") from None
    entries: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        match = _CHECKSUM_LINE.fullmatch(line)
        if match is None:
            raise BundleError(f"{CHECKSUMS_NAME} line {number} is not '<sha256>  <path>': {line[:100]!r}")
        digest, name = match.groups()
        check_relpath(name, f"{CHECKSUMS_NAME} line {number} path", allow_colon=False)
        if name in entries:
            raise BundleError(f"{CHECKSUMS_NAME} lists '{name}' twice")
        entries[name] = digest
    if not entries:
        raise BundleError(f"{CHECKSUMS_NAME} is empty")
    return entries


# ======================================================================================================
# Reading and verifying


class BundleControl:
    """The control files of a bundle (directory or archive), parsed and cross-checked."""

    def __init__(self, raw: Mapping[str, bytes], where: str) -> None:
        self.where = where
        self.raw = dict(raw)
        for name in (CHECKSUMS_NAME, MANIFEST_NAME, VOLATILE_NAME):
            if name not in raw:
                raise BundleError(f"'{where}' is not a complete bundle: {name} is missing")
        self.checksums = parse_checksums(raw[CHECKSUMS_NAME])
        self.manifest = load_manifest(raw[MANIFEST_NAME])
        _major, minor = _version_of(self.manifest.data)
        self.volatile = load_volatile(raw[VOLATILE_NAME], minor=minor)
        self.signature = raw.get(SIGNATURE_NAME)
        self.checksums_sha256 = sha256_bytes(raw[CHECKSUMS_NAME])
        self._check_listing()

    @property
    def warnings(self) -> list[str]:
        return self.manifest.warnings

    def _check_listing(self) -> None:
        problems = []
        blob_files = self.manifest.blob_files()
        expected = set(CHECKSUMMED_CONTROL_FILES) | set(blob_files)
        for name in sorted(set(self.checksums) - expected):
            problems.append(f"{CHECKSUMS_NAME} lists '{name}', which the manifest does not account for")
        for name in sorted(expected - set(self.checksums)):
            problems.append(f"'{name}' is not listed in {CHECKSUMS_NAME}")
        for name, (digest, _size) in blob_files.items():
            if name in self.checksums and self.checksums[name] != digest:
                problems.append(f"{CHECKSUMS_NAME} gives '{name}' the hash {self.checksums[name]}")
        for name in CHECKSUMMED_CONTROL_FILES:
            actual = sha256_bytes(self.raw[name])
            if name in self.checksums and self.checksums[name] != actual:
                problems.append(f"checksum mismatch for '{name}' (content hashes to {actual})")
        if problems:
            raise BundleError(
                f"bundle '{self.where}' failed verification: {summarize_problems(problems)}",
                problems=problems,
            )

    def check_signature(self, *, require_signature: bool = False, public_key: Any = None) -> dict[str, Any]:
        """Verify manifest.sig; see docs/bundle-format.md "Signature" for the rules."""
        keys = _public_keys(public_key)
        if require_signature and not keys:
            raise BundleError("require_signature needs the public key(s) to trust (public_key)")
        if self.signature is None:
            if require_signature:
                raise BundleError(f"bundle '{self.where}' is not signed, and a signature is required")
            return {"signed": False, "verified": False, "trusted": False, "fingerprint": None}
        if not HAS_CRYPTOGRAPHY:
            if require_signature:
                raise BundleError("verifying the required signature needs the Python package 'cryptography'")
            self.manifest.warnings.append("manifest.sig was not checked: the cryptography package is missing")
            return {"signed": True, "verified": False, "trusted": False, "fingerprint": None}
        info = check_signature(
            self.signature,
            self.manifest.canonical_bytes(),
            self.checksums_sha256,
            self.manifest.content_digest,
            keys or None,
        )
        if not keys:
            self.manifest.warnings.append(
                f"bundle is signed by {info['fingerprint']}, but no public_key was given to trust it"
            )
        return info

    def expected_files(self) -> dict[str, tuple[str, int]]:
        """Every file of the complete bundle: name → (sha256, size), control files included."""
        files = {
            name: (sha256_bytes(self.raw[name]), len(self.raw[name]))
            for name in CONTROL_FILES
            if name in self.raw
        }
        files.update(self.manifest.blob_files())
        return files


def _public_keys(public_key: Any) -> list[Any]:
    if not public_key:
        return []
    values = public_key if isinstance(public_key, (list, tuple)) else [public_key]
    return [v if not isinstance(v, (str, os.PathLike)) else load_public_key(v) for v in values]


def _read_dir_control(path: Path) -> dict[str, bytes]:
    raw = {}
    for name in CONTROL_FILES:
        p = path / name
        if p.is_symlink():
            raise BundleError(f"bundle '{path}': '{name}' is a symbolic link")
        if p.is_file():
            raw[name] = read_capped(p, DEFAULT_LIMITS.max_control_bytes, "control file")
    if not raw:
        raise BundleError(f"'{path}' is not a bundle: it has none of {', '.join(CONTROL_FILES[:3])}")
    return raw


def load_bundle(path: str | os.PathLike[str], *, limits: ExtractLimits | None = None) -> BundleControl:
    """Read and check the control files of a bundle directory or archive (no blob is hashed)."""
    path = Path(path)
    if path.is_dir():
        return BundleControl(_read_dir_control(path), str(path))
    if not path.exists():
        raise BundleError(f"bundle '{path}' does not exist")
    raw = read_control_members(path, CONTROL_FILES, first=CHECKSUMS_NAME, limits=limits)
    if not raw:
        raise BundleError(f"archive '{path}' holds no bundle: no {CHECKSUMS_NAME} or {MANIFEST_NAME}")
    return BundleControl(raw, str(path))


def _walk_files(root: Path) -> tuple[set[str], set[str], list[str]]:
    """Regular files and directories under ``root`` (relative names), plus problems (links, devices)."""
    files: set[str] = set()
    dirs: set[str] = set()
    problems: list[str] = []
    stack = [("", root)]
    while stack:
        rel, path = stack.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                name = f"{rel}{entry.name}"
                if entry.is_symlink():
                    problems.append(f"'{name}' is a symbolic link")
                elif entry.is_dir(follow_symlinks=False):
                    dirs.add(name)
                    stack.append((name + "/", Path(entry.path)))
                elif entry.is_file(follow_symlinks=False):
                    files.add(name)
                else:
                    problems.append(f"'{name}' is not a regular file")
    return files, dirs, problems


def _hash_all(paths: Mapping[str, Path]) -> dict[str, tuple[str, int] | None]:
    """Hash files in parallel (hashlib and reads release the GIL); None for a vanished file."""

    def one(item: tuple[str, Path]) -> tuple[str, tuple[str, int] | None]:
        try:
            return item[0], hash_file(item[1])
        except FileNotFoundError:
            return item[0], None

    items = sorted(paths.items())
    if len(items) < 2 or _HASH_WORKERS == 1:
        return dict(map(one, items))
    with concurrent.futures.ThreadPoolExecutor(max_workers=_HASH_WORKERS) as pool:
        return dict(pool.map(one, items))


def _parents(names: Iterable[str]) -> set[str]:
    out = set()
    for name in names:
        parts = name.split("/")
        out.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return out


def verify_bundle(
    path: str | os.PathLike[str],
    *,
    require_signature: bool = False,
    public_key: Any = None,
    store: BlobStore | str | os.PathLike[str] | None = None,
    limits: ExtractLimits | None = None,
) -> dict[str, Any]:
    """Verify a bundle directory or archive completely, without changing anything.

    Manifest, schema, checksum list and signature are checked before any blob is hashed. Then every
    file is hashed: a missing, extra or mismatched file fails, naming the file. With ``store`` (a site
    blob store), blobs absent from the bundle are taken from the store and verified there: this is
    how a partial bundle is verified as the whole it assembles to. Returns a summary.
    """
    return _verify(path, require_signature, public_key, store, limits)[0]


def _verify(
    path: str | os.PathLike[str],
    require_signature: bool,
    public_key: Any,
    store: BlobStore | str | os.PathLike[str] | None,
    limits: ExtractLimits | None,
) -> tuple[dict[str, Any], BundleControl]:
    path = Path(path)
    store = _as_store(store)
    control = load_bundle(path, limits=limits)
    signature = control.check_signature(require_signature=require_signature, public_key=public_key)
    expected = control.expected_files()
    if path.is_dir():
        verified, problems, missing = _verify_dir(path, expected)
    else:
        seen = scan_archive(path, expected=expected, limits=limits)
        verified, problems = len(seen), []
        missing = sorted(set(expected) - set(seen))
    from_store, store_problems = _verify_from_store(missing, store, expected)
    problems.extend(store_problems)
    if problems:
        raise BundleError(
            f"bundle '{path}' failed verification: {summarize_problems(problems)}",
            problems=problems,
            content_digest=control.manifest.content_digest,
        )
    manifest = control.manifest
    summary = {
        "path": str(path),
        "type": "directory" if path.is_dir() else "archive",
        "format_version": manifest.version,
        "content_digest": manifest.content_digest,
        "files": verified + from_store,
        "blobs": len(manifest.blobs),
        "bytes": manifest.total_bytes(),
        "from_store": from_store,
        "partial": from_store > 0,
        "signature": signature,
        "warnings": list(control.warnings),
    }
    return summary, control


def _as_store(store: BlobStore | str | os.PathLike[str] | None) -> BlobStore | None:
    if store is None or isinstance(store, BlobStore):
        return store
    return BlobStore(store, create=False)


def _verify_dir(
    path: Path, expected: Mapping[str, tuple[str, int]], skip: set[str] | frozenset[str] = frozenset()
) -> tuple[int, list[str], list[str]]:
    files, dirs, problems = _walk_files(path)
    allowed_dirs = _parents(expected)
    for name in sorted(files - set(expected)):
        problems.append(f"extra file '{name}' (not listed in {CHECKSUMS_NAME})")
    for name in sorted(dirs - allowed_dirs):
        if not any(f.startswith(name + "/") for f in files):
            problems.append(f"extra directory '{name}'")
    missing = sorted(set(expected) - files)
    missing_blobs = [m for m in missing if m.startswith(BLOB_DIR + "/")]
    problems.extend(f"missing file '{name}'" for name in missing if name not in missing_blobs)
    if problems:
        return 0, problems, missing_blobs
    present = {name: path / name for name in expected if name in files and name not in skip}
    for name, result in _hash_all(present).items():
        want_sha, want_size = expected[name]
        if result is None:
            problems.append(f"missing file '{name}' (it vanished during verification)")
        elif result[0] != want_sha:
            problems.append(
                f"checksum mismatch for '{name}' (content hashes to {result[0]}, expected {want_sha})"
            )
        elif result[1] != want_size:
            problems.append(f"size mismatch for '{name}' ({result[1]} bytes, the manifest says {want_size})")
    return len(present), problems, missing_blobs


def _verify_from_store(
    missing: list[str], store: BlobStore | None, expected: Mapping[str, tuple[str, int]]
) -> tuple[int, list[str]]:
    problems = []
    if store is None:
        return 0, [f"missing file '{name}'" for name in missing]
    found = {}
    for name in missing:
        digest = expected[name][0]
        if store.has(digest):
            found[name] = store.path_of(digest)
        else:
            problems.append(f"missing file '{name}' (not in the bundle nor in the store '{store.root}')")
    for name, result in _hash_all(found).items():
        digest, size = expected[name]
        if result is None:
            problems.append(f"missing file '{name}' (vanished from the store '{store.root}')")
        elif result[0] != digest:
            problems.append(f"blob '{digest}' in the store '{store.root}' is corrupt (hashes to {result[0]})")
        elif result[1] != size:
            problems.append(
                f"blob '{digest}' in the store '{store.root}' has {result[1]} bytes, expected {size}"
            )
    return len(found), problems


# ======================================================================================================
# Writing


class BundleWriter:
    """Builds a bundle directory: add blobs, fill ``manifest``, then ``finalize()``.

    Everything is written into a fresh directory beside ``dest`` and published by a rename. If
    ``dest`` already holds a verified bundle with the same content digest (and the same signer), it is
    kept and ``changed`` is False: re-exporting unchanged content changes nothing. Blobs already in
    that bundle are hard-linked instead of copied. Use as a context manager; an exception discards
    the work.
    """

    def __init__(
        self,
        dest: str | os.PathLike[str],
        *,
        tool_version: str,
        api_host: str,
        fsync: bool = True,
        **source: Any,
    ) -> None:
        self.dest = Path(dest)
        if os.path.lexists(self.dest) and not self.dest.is_dir():
            raise BundleError(f"bundle destination '{self.dest}' exists and is not a directory")
        self.manifest = new_manifest(tool_version=tool_version, api_host=api_host, **source)
        self._tmp = fresh_dir_beside(self.dest)
        self.store = BlobStore(self._tmp, fsync=fsync)
        self._previous = _previous_store(self.dest)
        self._reused: set[str] = set()  # blobs of the previous bundle, re-hashed and linked
        self._done = False

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type: object, *_exc: object) -> None:
        if not self._done:
            self.abort()

    def abort(self) -> None:
        """Discard everything written so far."""
        remove_tree(self._tmp)
        self._done = True

    def _register(self, digest: str, size: int, kind: str, media_type: str) -> str:
        self.manifest["blobs"].setdefault(digest, {"size": size, "kind": kind, "media_type": media_type})
        return digest

    def add_file(
        self, path: str | os.PathLike[str], *, kind: str, media_type: str = "application/octet-stream"
    ) -> str:
        """Add a file as a blob (streamed); return its digest."""
        if self._previous is not None:
            digest, size = hash_file(path)
            if self.store.has(digest):
                return self._register(digest, size, kind, media_type)
            if self._reuse(digest, size):
                return self._register(digest, size, kind, media_type)
            try:
                with open(path, "rb") as f:
                    self.store.put_stream(f, expected_digest=digest)
            except BundleError as exc:
                raise BundleError(f"'{path}' changed while it was added to the bundle: {exc.msg}") from None
            return self._register(digest, size, kind, media_type)
        digest, size, _written = self.store.put_file(path)
        return self._register(digest, size, kind, media_type)

    def _reuse(self, digest: str, size: int) -> bool:
        """Hard-link a blob of the previous bundle after re-hashing it (a rotten copy is not reused)."""
        if self._previous is None or not self._previous.has(digest) or self._previous.size_of(digest) != size:
            return False
        if digest not in self._reused:
            try:
                self._previous.verify(digest)
            except BundleError:
                return False
        link_or_copy(self._previous.path_of(digest), self.store.path_of(digest))
        self._reused.add(digest)
        return True

    def reuse_blob(
        self, digest: str, size: int, *, kind: str, media_type: str = "application/octet-stream"
    ) -> bool:
        """Add a blob of the previous bundle at ``dest`` by its digest (re-hashed once, then hard-linked).

        False when the previous bundle lacks it or its copy is rotten: the caller then adds the content
        the usual way.
        """
        if self.store.has(digest) and self.store.size_of(digest) == size:
            self._register(digest, size, kind, media_type)
            return True
        if self._reuse(digest, size):
            self._register(digest, size, kind, media_type)
            return True
        return False

    def add_stream(
        self, fileobj: IO[bytes], *, kind: str, media_type: str = "application/octet-stream"
    ) -> str:
        digest, size, _written = self.store.put_stream(fileobj)
        return self._register(digest, size, kind, media_type)

    def add_bytes(self, data: bytes, *, kind: str, media_type: str = "application/octet-stream") -> str:
        digest, size, _written = self.store.put_bytes(data)
        return self._register(digest, size, kind, media_type)

    def add_json(self, obj: Any, *, kind: str, media_type: str = "application/json") -> str:
        """Add a JSON record (canonical form, so equal records are one blob)."""
        return self.add_bytes(canonical_json(obj), kind=kind, media_type=media_type)

    def finalize(
        self,
        *,
        volatile: Mapping[str, Any] | None = None,
        private_key: str | os.PathLike[str] | None = None,
        passphrase: str | bytes | None = None,
    ) -> dict[str, Any]:
        """Validate, write the control files, sign, publish; return ``{path, content_digest, changed, ...}``."""
        if self._done:
            raise BundleError("this BundleWriter was already finalized or aborted")
        try:
            manifest = validate_manifest(self.manifest)
            absent = [d for d in manifest.blobs if not self.store.has(d)]
            if absent:
                raise BundleError(
                    f"the blobs index lists {len(absent)} blob(s) never added, e.g. {absent[0]}"
                )
            stray = set(self.store.digests()) - set(manifest.blobs)
            if stray:
                raise BundleError(f"{len(stray)} stored blob(s) are missing from the blobs index")
            vol = dict(volatile) if volatile is not None else make_volatile()
            vol_bytes = pretty_json(vol)
            load_volatile(vol_bytes)
            man_bytes = pretty_json(manifest.data)
            entries = {MANIFEST_NAME: sha256_bytes(man_bytes), VOLATILE_NAME: sha256_bytes(vol_bytes)}
            entries.update({blob_relpath(d): d for d in manifest.blobs})
            sums = format_checksums(entries)
            files = {MANIFEST_NAME: man_bytes, VOLATILE_NAME: vol_bytes, CHECKSUMS_NAME: sums}
            signer = None
            if private_key is not None:
                key = load_private_key(private_key, passphrase)
                signer = fingerprint(key.public_key())
                files[SIGNATURE_NAME] = make_signature(
                    key, manifest.canonical_bytes(), sha256_bytes(sums), manifest.content_digest
                )
            for name, data in files.items():
                atomic_write_bytes(self._tmp / name, data)
            changed = self._publish(manifest.content_digest, signer)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return {
            "path": str(self.dest),
            "content_digest": manifest.content_digest,
            "changed": changed,
            "blobs": len(manifest.blobs),
            "bytes": manifest.total_bytes(),
            "signer": signer,
            "warnings": manifest.warnings,
        }

    def _publish(self, digest: str, signer: str | None) -> bool:
        if not os.path.lexists(self.dest):
            publish_dir(self._tmp, self.dest)
            return True
        if self._previous is not None and _same_bundle(self.dest, digest, signer, self._reused):
            remove_tree(self._tmp)
            return False
        if self._previous is None and any(self.dest.iterdir()):
            raise BundleError(f"'{self.dest}' exists and is not a bundle; refusing to replace it")
        old = fresh_dir_beside(self.dest)
        os.rmdir(old)
        os.rename(self.dest, old)
        try:
            publish_dir(self._tmp, self.dest)
        except BaseException:
            os.rename(old, self.dest)
            raise
        remove_tree(old)
        return True


def _previous_store(dest: Path) -> BlobStore | None:
    if (dest / MANIFEST_NAME).is_file() and (dest / BLOB_DIR).is_dir():
        return BlobStore(dest, create=False)
    return None


def _same_bundle(path: Path, digest: str, signer: str | None, verified: set[str]) -> bool:
    """Is the bundle at ``path`` intact, with this content digest and signer?

    Blobs in ``verified`` were re-hashed when they were linked into the new bundle (same inodes) and
    are not hashed again.
    """
    try:
        control = load_bundle(path)
        if control.manifest.content_digest != digest or control.check_signature()["fingerprint"] != signer:
            return False
        expected = control.expected_files()
        skip = {blob_relpath(d) for d in verified}
        _count, problems, missing = _verify_dir(path, expected, skip=skip)
    except BundleError:
        return False
    return not problems and not missing


def sign_bundle(
    bundle_dir: str | os.PathLike[str],
    private_key: str | os.PathLike[str],
    *,
    passphrase: str | bytes | None = None,
) -> dict[str, Any]:
    """Verify a bundle directory, then write (or replace) its manifest.sig; return the summary."""
    bundle_dir = Path(bundle_dir)
    verify_bundle(bundle_dir)
    control = load_bundle(bundle_dir)
    key = load_private_key(private_key, passphrase)
    data = make_signature(
        key, control.manifest.canonical_bytes(), control.checksums_sha256, control.manifest.content_digest
    )
    atomic_write_bytes(bundle_dir / SIGNATURE_NAME, data)
    return {
        "path": str(bundle_dir),
        "content_digest": control.manifest.content_digest,
        "fingerprint": fingerprint(key.public_key()),
    }


# ======================================================================================================
# Differential transfer: partial bundles, assembly at the site


def missing_blobs(manifest: Manifest | Mapping[str, Any], site_digests: Iterable[str]) -> list[str]:
    """The bundle's blob digests a site does not hold (sorted)."""
    blobs = manifest.blobs if isinstance(manifest, Manifest) else manifest["blobs"]
    have = set(site_digests)
    return sorted(d for d in blobs if d not in have)


def make_partial_bundle(
    bundle_dir: str | os.PathLike[str], site_digests: Iterable[str], dest: str | os.PathLike[str]
) -> dict[str, Any]:
    """Write the complete control files and only the blobs a site lacks into the new directory ``dest``.

    Each copied blob is verified as it is copied. The site verifies the result with its store
    (``verify_bundle(dest, store=...)`` or ``assemble_bundle``).
    """
    bundle_dir, dest = Path(bundle_dir), Path(dest)
    if os.path.lexists(dest):
        raise BundleError(f"partial bundle destination '{dest}' already exists")
    control = load_bundle(bundle_dir)
    wanted = missing_blobs(control.manifest, site_digests)
    source = BlobStore(bundle_dir, create=False)
    tmp = fresh_dir_beside(dest)
    try:
        for name, data in control.raw.items():
            atomic_write_bytes(tmp / name, data)
        out = BlobStore(tmp)
        total = 0
        for digest in wanted:
            try:
                with source.open(digest) as f:
                    _d, size, _w = out.put_stream(f, expected_digest=digest)
            except BundleError as exc:
                raise BundleError(
                    f"cannot copy blob '{blob_relpath(digest)}' of '{bundle_dir}': {exc.msg}"
                ) from None
            total += size
        publish_dir(tmp, dest)
    except BaseException:
        remove_tree(tmp)
        raise
    return {
        "path": str(dest),
        "content_digest": control.manifest.content_digest,
        "blobs": len(wanted),
        "bytes": total,
        "skipped_blobs": len(control.manifest.blobs) - len(wanted),
    }


def assemble_bundle(
    partial_dir: str | os.PathLike[str],
    store: BlobStore | str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    require_signature: bool = False,
    public_key: Any = None,
    ingest: bool = False,
) -> dict[str, Any]:
    """Assemble a complete bundle at ``dest`` from a partial (or complete) bundle and a site store.

    Control files, manifest and signature are checked first; every listed blob must be in the partial
    bundle or the store, and nothing unlisted may be in the partial bundle. Blobs are hard-linked
    (copied across filesystems) into a fresh directory, the whole is verified, then renamed to
    ``dest``. With ``ingest``, the blobs that came with the partial bundle are added to the store.
    """
    partial, dest = Path(partial_dir), Path(dest)
    store = _as_store(store)
    if store is None:
        raise BundleError("assemble_bundle needs a blob store")
    if os.path.lexists(dest):
        raise BundleError(f"assembled bundle destination '{dest}' already exists")
    if not partial.is_dir():
        raise BundleError(
            f"partial bundle '{partial}' is not a directory (unpack it with allow_partial first)"
        )
    control = load_bundle(partial)
    control.check_signature(require_signature=require_signature, public_key=public_key)
    origin, from_store = _plan_assembly(partial, control, store)
    tmp = fresh_dir_beside(dest)
    try:
        for name, data in control.raw.items():
            atomic_write_bytes(tmp / name, data)
        (tmp / BLOB_DIR).mkdir(parents=True)
        for name, src in origin.items():
            link_or_copy(src, tmp / name)
        try:
            summary = verify_bundle(tmp, require_signature=require_signature, public_key=public_key)
        except BundleError as exc:
            raise BundleError(
                f"the assembled bundle failed verification: {exc.msg} (blobs from the partial bundle "
                f"'{partial}' and the store '{store.root}')",
                problems=exc.problems,
            ) from None
        publish_dir(tmp, dest)
    except BaseException:
        remove_tree(tmp)
        raise
    ingested = 0
    if ingest:
        for name, src in origin.items():
            if src.parent != store.dir and store.link_from(dest / name, name.rsplit("/", 1)[1]):
                ingested += 1
        store.sync()
    summary.update(
        path=str(dest), from_store=from_store, from_partial=len(origin) - from_store, ingested=ingested
    )
    return summary


# ======================================================================================================
# Archives


def _plan_assembly(partial: Path, control: BundleControl, store: BlobStore) -> tuple[dict[str, Path], int]:
    """Where each file of the assembled bundle comes from; fails on extra or unavailable files."""
    expected = control.expected_files()
    files, _dirs, problems = _walk_files(partial)
    problems += [f"extra file '{n}' (not listed in {CHECKSUMS_NAME})" for n in sorted(files - set(expected))]
    origin: dict[str, Path] = {}
    from_store = 0
    missing = []
    for name, (digest, _size) in control.manifest.blob_files().items():
        if name in files:
            origin[name] = partial / name
        elif store.has(digest):
            origin[name] = store.path_of(digest)
            from_store += 1
        else:
            missing.append(digest)
            problems.append(
                f"missing file '{name}' (not in the partial bundle nor in the store '{store.root}')"
            )
    if problems:
        raise BundleError(
            f"cannot assemble '{partial}': {summarize_problems(problems)}",
            problems=problems,
            missing_blobs=sorted(missing),
        )
    return origin, from_store


def _archive_order(name: str) -> tuple[int, str]:
    return (CONTROL_FILES.index(name), "") if name in CONTROL_FILES else (len(CONTROL_FILES), name)


def pack_bundle(
    bundle_dir: str | os.PathLike[str],
    archive_path: str | os.PathLike[str],
    *,
    compression: str = "zstd",
    allow_partial: bool = False,
) -> dict[str, Any]:
    """Pack a bundle directory into one deterministic archive (control files first, then blobs sorted).

    Every file is hashed as it is packed and must match the checksum list, so a corrupt bundle is
    never shipped. Extra files are refused; missing blobs too unless ``allow_partial``.
    """
    bundle_dir = Path(bundle_dir)
    control = load_bundle(bundle_dir)
    control.check_signature()
    expected = control.expected_files()
    files, _dirs, problems = _walk_files(bundle_dir)
    problems += [f"extra file '{n}' (not listed in {CHECKSUMS_NAME})" for n in sorted(files - set(expected))]
    missing = sorted(set(expected) - files)
    if not allow_partial:
        problems += [f"missing file '{n}'" for n in missing]
    if problems:
        raise BundleError(f"cannot pack '{bundle_dir}': {summarize_problems(problems)}", problems=problems)
    members = {name: bundle_dir / name for name in expected if name in files}
    result = write_tar(
        members,
        archive_path,
        compression,
        sort_key=_archive_order,
        expected={name: sha for name, (sha, _size) in expected.items()},
    )
    result.update(
        content_digest=control.manifest.content_digest, partial=bool(missing), missing_blobs=len(missing)
    )
    return result


def _bundle_file_mode(name: str, _member: Any) -> int:
    return 0o444 if name.startswith(BLOB_DIR + "/") else 0o644


def unpack_bundle(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    manifest_required: bool = True,
    allow_partial: bool = False,
    store: BlobStore | str | os.PathLike[str] | None = None,
    require_signature: bool = False,
    public_key: Any = None,
    limits: ExtractLimits | None = None,
) -> dict[str, Any]:
    """Safely extract a bundle archive into the new directory ``dest``.

    First pass: the control files are read and checked (manifest, schema, checksum list, signature)
    before anything is written. Second pass: only the listed regular files are extracted into a fresh
    directory beside ``dest``, each checked against its declared size and hash; then the directory is
    renamed to ``dest``. Blobs may be absent when ``allow_partial`` or when ``store`` holds them.
    ``manifest_required=False`` extracts any archive with the same safety rules but no listing.
    """
    if not manifest_required:
        return safe_extract(archive, dest, limits=limits)
    control = load_bundle(archive, limits=limits)
    signature = control.check_signature(require_signature=require_signature, public_key=public_key)
    expected = control.expected_files()
    blobs = control.manifest.blob_files()
    st = _as_store(store)
    if allow_partial:
        optional = set(blobs)
    elif st is not None:
        optional = {name for name, (digest, _size) in blobs.items() if st.has(digest)}
    else:
        optional = set()
    result = safe_extract(
        archive, dest, expected=expected, optional=optional, limits=limits, file_mode=_bundle_file_mode
    )
    missing = [name for name in result["missing"] if name in blobs]
    return {
        "path": str(dest),
        "archive": str(archive),
        "content_digest": control.manifest.content_digest,
        "format_version": control.manifest.version,
        "files": len(result["files"]),
        "bytes": result["bytes"],
        "missing_blobs": [name.rsplit("/", 1)[1] for name in missing],
        "partial": bool(missing),
        "signature": signature,
        "warnings": list(control.warnings),
    }


# ======================================================================================================
# Listing (bundle_info)


def _file_rows(files: list[dict[str, Any]], blobs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"path": f["path"], "digest": f["blob"], "size": blobs[f["blob"]]["size"]} for f in files]


def bundle_listing(manifest: Manifest, volatile: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A readable description of a manifest: what bundle_info returns (besides the verification)."""
    data, blobs = manifest.data, manifest.blobs
    models = data["models"]
    serving = data.get("serving")
    endpoints = []
    if serving:
        for url, ep in sorted(serving["endpoints"].items()):
            model_id = ep.get("model_id")
            endpoints.append(
                {
                    "url": url,
                    "engine_type": ep.get("engine_type"),
                    "serving_url": ep.get("serving_url"),
                    "version": ep.get("version"),
                    "model_id": model_id,
                    "model_name": models[model_id]["name"] if model_id in models else None,
                    "preprocess_artifact": ep.get("preprocess_artifact"),
                }
            )
    model_rows = []
    for mid, model in sorted(models.items()):
        rows = _file_rows(model["files"], blobs)
        model_rows.append(
            {
                "id": mid,
                "name": model["name"],
                "project": model.get("project"),
                "framework": model.get("framework"),
                "ready": model["ready"],
                "files": rows,
                "bytes": sum(r["size"] for r in rows),
            }
        )
    seed_tasks = {t["id"]: t for t in data["tasks"]}
    task_rows = []
    for tid in sorted(set(seed_tasks) | set(data["task_records"])):
        record = data["task_records"].get(tid, {})
        seed = seed_tasks.get(tid, {})
        task_rows.append(
            {
                "id": tid,
                "name": record.get("name") or seed.get("name"),
                "project": record.get("project"),
                "type": record.get("type"),
                "status": record.get("status"),
                "models": seed.get("models", []),
                "datasets": seed.get("datasets", []),
                "artifacts": len(record.get("artifacts", [])),
                "events": bool(record.get("events")),
                "record": tid in data["task_records"],
            }
        )
    dataset_rows = []
    for did in sorted(set(data["dataset_versions"]) | set(data["datasets"])):
        ds = data["dataset_versions"].get(did)
        info = data["datasets"].get(did, {})
        rows = _file_rows(ds["files"], blobs) if ds else []
        dataset_rows.append(
            {
                "id": did,
                "name": (ds or info).get("name"),
                "project": (ds or info).get("project"),
                "version": (ds or {}).get("version") or info.get("version"),
                "parents": (ds or {}).get("parents", []),
                "files": len(rows),
                "bytes": sum(r["size"] for r in rows),
            }
        )
    code_rows = [
        {
            "role": c["role"],
            "task": c.get("task"),
            "repository": c.get("repository"),
            "branch": c.get("branch"),
            "commit": c.get("commit"),
            "git_bundle": bool(c.get("bundle")),
            "diff": bool(c.get("diff")),
            "files": len(c.get("files", [])),
        }
        for c in data["code"]
    ]
    image_rows = [
        {
            "name": i["name"],
            "id": i["id"],
            "repo_tags": i.get("repo_tags", []),
            "role": i.get("role"),
            "layout": i["layout"],
            "members": len(i["members"]),
            "bytes": sum(blobs[d]["size"] for d in {m["digest"] for m in i["members"]}),
        }
        for i in data["images"]
    ]
    wheel_rows = [
        {
            "name": w["name"],
            "version": w["version"],
            "filename": w["filename"],
            "bytes": blobs[w["blob"]]["size"],
        }
        for w in data["wheels"]
    ]
    volatile = volatile or {}
    exporter = volatile.get("exporter") or {}
    return {
        "format_version": manifest.version,
        "content_digest": manifest.content_digest,
        "exporter": {
            "developer": volatile.get("developer"),
            "user": exporter.get("user"),
            "host": exporter.get("host"),
            "exported_on": volatile.get("exported_on"),
        },
        "tool": data["tool"],
        "source": data["source"],
        "serving_id": data.get("serving_id"),
        "serving": {k: serving[k] for k in ("id", "name", "project")} if serving else None,
        "endpoints": endpoints,
        "models": model_rows,
        "tasks": task_rows,
        "datasets": dataset_rows,
        "code": code_rows,
        "images": image_rows,
        "wheels": wheel_rows,
        "redactions": data["redactions"],
        "blob_count": len(blobs),
        "total_bytes": manifest.total_bytes(),
        "bytes_by_kind": manifest.bytes_by_kind(),
    }


def describe_bundle(
    path: str | os.PathLike[str],
    *,
    require_signature: bool = False,
    public_key: Any = None,
    store: BlobStore | str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Verify a bundle (directory or archive, optionally with a site store) and describe it."""
    summary, control = _verify(path, require_signature, public_key, store, None)
    listing = bundle_listing(control.manifest, control.volatile)
    listing.update(
        path=summary["path"],
        type=summary["type"],
        signature=summary["signature"],
        files_verified=summary["files"],
        from_store=summary["from_store"],
        partial=summary["partial"],
        warnings=summary["warnings"],
    )
    return listing
