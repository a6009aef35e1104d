# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Docker images in the bundle: ``docker save`` split into content-addressed blobs, and loaded back.

Private to this collection: not a public API, may change without notice.

Export (dev side): one ``docker save`` of the whole set of images is read as a stream; every regular
file of the archive (layer tars, image configs, ``manifest.json``, ``repositories``, OCI blobs,
``index.json``, ``oci-layout``) goes into the blob store through the caller's ``put_file`` (or
``put_stream``), one member at a time: the archive is never held in memory nor written whole. A layer
shared by two images, or already stored by an earlier export, is the same blob (the store dedupes by
digest). Each image gets a record that lists, in archive order, the members that make up a ``docker
save`` of that image alone.

Load (site side): if the daemon already has the image ID, nothing is loaded. Otherwise every member blob
is checked (present, recorded size), the archive is reassembled as a deterministic tar stream (the
recorded order, fixed mtime/owner, the recorded mode) and piped into ``docker load``; the loaded image
ID and tags are then checked (tags re-applied when needed).

Why the ``docker`` CLI and not the docker SDK: saving several images in one archive (so a shared layer
crosses the pipe once) is only public in the CLI (``docker save a b``; the SDK's ``get_image`` takes one
name); the CLI's stdin/stdout pipes give streaming with back-pressure for free, in both directions; and
it honours the operator's ``DOCKER_HOST``/context exactly like the commands they run by hand. The
binary is present wherever a daemon is (site hosts run ``dockerd`` and its CLI). Nothing here imports
the SDK.

The image record (one per image, JSON-ready; the bundle manifest keeps it under ``images``)::

    {"name": "d2s/base:bookworm",            # as asked for (first name of the image)
     "id": "sha256:<config digest>",         # the image ID docker reports (graphdriver store)
     "alt_ids": ["sha256:<manifest digest>"],# OCI index targets: the ID on a containerd image store
     "repo_tags": ["d2s/base:bookworm"],     # tags the archive carries for it
     "layout": "docker-legacy" | "oci",
     "layers": ["sha256:<diff id>", ...],    # its layer blobs, base first
     "members": [{"path": "<archive path>", "digest": "<sha256 hex>", "size": 123, "mode": 420}, ...],
     "size": 123}                            # sum of the members' sizes

Layouts read: ``docker-legacy`` (Docker < 25: ``<config hex>.json``, ``<v1 id>/{VERSION,json,layer.tar}``,
``manifest.json``, ``repositories``; layers shared inside one archive are symlinks) and ``oci``
(Docker >= 25: ``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``, plus the ``manifest.json`` and
``repositories`` Docker still writes; archives of a containerd image store may lack ``manifest.json``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError

LAYOUT_LEGACY = "docker-legacy"
LAYOUT_OCI = "oci"
LAYOUTS = (LAYOUT_LEGACY, LAYOUT_OCI)

# Reassembled archives: every member a regular file, owned by 0:0, this mtime, the recorded mode.
TAR_MTIME = 0
_BLOCK = 512
_CHUNK = 1024 * 1024
# Regular members up to this size are read into memory (JSON documents are parsed from it).
_SMALL = 1024 * 1024
_DOCKER_TIMEOUT = 120  # seconds, for the short commands (inspect, tag); save/load are streamed
_HEX_RE = re.compile(r"[0-9a-f]{64}")
_ID_PREFIX_RE = re.compile(r"(?:sha256:)?[0-9a-f]{12,64}")
_OCI_BLOB_RE = re.compile(r"blobs/sha256/([0-9a-f]{64})")
_LEGACY_CONFIG_RE = re.compile(r"([0-9a-f]{64})\.json")
_DAEMON_DOWN = (
    "cannot connect to the docker daemon",
    "error during connect",
    "is the docker daemon running",
    "permission denied while trying to connect",
)

PutFile = Callable[[Path], Any]  # -> (sha256 hex, size[, ...])
PutStream = Callable[[IO[bytes]], Any]  # -> (sha256 hex, size[, ...])
BlobPath = Callable[[str], Path]


class ImageError(ClearmlModuleError):
    """A failure of image export or load; the message names the image and the cause."""


# --------------------------------------------------------------------------------------------- docker CLI


def _docker_bin(docker: str) -> str:
    found = shutil.which(docker)
    if not found:
        raise ImageError(f"docker CLI {docker!r} not found on PATH: install the docker client on this host")
    return found


def _daemon_error(action: str, stderr: str) -> ImageError:
    text = stderr.strip() or "(no output)"
    if any(marker in text.lower() for marker in _DAEMON_DOWN):
        return ImageError(f"docker daemon unreachable while trying to {action}: {text}")
    return ImageError(f"docker failed to {action}: {text}")


def _run(docker: str, *args: str, action: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [docker, *args], capture_output=True, text=True, check=False, timeout=_DOCKER_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise ImageError(
            f"docker did not answer within {_DOCKER_TIMEOUT}s while trying to {action}"
        ) from None


def inspect_image(ref: str, *, docker: str = "docker") -> dict[str, Any] | None:
    """``docker image inspect ref``: the image's document, or None when the daemon has no such image."""
    proc = _run(docker, "image", "inspect", ref, action=f"inspect image {ref!r}")
    if proc.returncode != 0:
        if "no such image" in proc.stderr.lower():
            return None
        raise _daemon_error(f"inspect image {ref!r}", proc.stderr)
    try:
        docs = json.loads(proc.stdout)
    except ValueError:
        raise ImageError(f"docker image inspect {ref!r} printed no JSON: {proc.stdout[:200]!r}") from None
    if not docs:
        return None
    return docs[0]


def _save_ref(name: str, image_id: str) -> str:
    """The reference to pass to ``docker save`` for ``name``.

    ``docker save repo`` (no tag) saves every tag of the repository, while ``docker image inspect repo``
    means ``repo:latest``: a bare name is made ``repo:latest`` so both agree. IDs and digests are kept.
    """
    if "@" in name:
        return name
    if _ID_PREFIX_RE.fullmatch(name) and image_id.removeprefix("sha256:").startswith(
        name.removeprefix("sha256:")
    ):
        return name
    if ":" not in name.rsplit("/", 1)[-1]:
        return f"{name}:latest"
    return name


# --------------------------------------------------------------------------------------------- archive model


@dataclass
class _Member:
    path: str
    digest: str
    size: int
    mode: int
    data: bytes | None = None  # kept for small JSON documents (they are parsed)
    stored: bool = True  # JSON documents are stored only once a record lists them


@dataclass
class _Archive:
    order: list[str] = field(default_factory=list)  # regular members and links, archive order
    files: dict[str, _Member] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # path -> target path (archive-rooted)

    def resolve(self, path: str) -> _Member | None:
        seen: set[str] = set()
        while path in self.links and path not in seen:
            seen.add(path)
            path = self.links[path]
        return self.files.get(path)

    def json(self, path: str) -> Any:
        member = self.resolve(path)
        if member is None:
            return None
        if member.data is None:
            raise ImageError(f"docker save archive: {path!r} is too large to be an index document")
        try:
            return json.loads(member.data)
        except ValueError as exc:
            raise ImageError(f"docker save archive: {path!r} is not valid JSON: {exc}") from None


@dataclass
class _Image:
    config_path: str
    config_digest: str
    repo_tags: list[str]
    layer_paths: list[str]
    entry: dict[str, Any] | None = None  # its manifest.json entry
    descriptors: list[dict[str, Any]] = field(default_factory=list)  # its index.json descriptors
    blob_paths: set[str] = field(default_factory=set)  # OCI blobs reachable from its descriptors

    @property
    def alt_ids(self) -> list[str]:
        """Digests a containerd image store reports as this image's ID (its index.json targets)."""
        return sorted({d["digest"] for d in self.descriptors if d.get("digest") != self.config_digest})


def _safe_member_path(name: str) -> str:
    """Normalize an archive member name (``./x`` → ``x``); refuse absolute, ``..`` and empty names."""
    clean = name
    while clean.startswith("./"):
        clean = clean[2:]
    clean = clean.rstrip("/")
    parts = clean.split("/")
    if not clean or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in clean:
        raise ImageError(f"docker save archive: unsafe member name {name!r}")
    return clean


def _result_pair(result: Any, what: str) -> tuple[str, int]:
    """(digest, size) from a store callable's answer: ``(digest, size)`` or ``(digest, size, new)``."""
    try:
        digest, size = result[0], int(result[1])
    except (TypeError, IndexError, ValueError):
        raise ImageError(f"blob store returned {result!r} for {what}: expected (digest, size)") from None
    if not isinstance(digest, str) or not _HEX_RE.fullmatch(digest):
        raise ImageError(f"blob store returned an invalid digest {digest!r} for {what}")
    return digest, size


class _Store:
    """Puts bytes or a stream into the caller's blob store, through a temporary file when needed."""

    def __init__(
        self, put_file: PutFile, workdir: str | os.PathLike[str], put_stream: PutStream | None
    ) -> None:
        self.put_file = put_file
        self.put_stream = put_stream
        self.workdir = Path(workdir)
        if not self.workdir.is_dir():
            raise ImageError(f"image export work directory '{self.workdir}' does not exist")

    def _via_file(self, write: Callable[[IO[bytes]], None], what: str) -> tuple[str, int]:
        fd, tmp = tempfile.mkstemp(prefix=".d2s-image-", dir=self.workdir)
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
            return _result_pair(self.put_file(Path(tmp)), what)
        finally:
            with contextlib.suppress(FileNotFoundError):  # the store may have moved it into place
                os.unlink(tmp)

    def put_bytes(self, data: bytes, what: str) -> tuple[str, int]:
        if self.put_stream is not None:
            return _result_pair(self.put_stream(io.BytesIO(data)), what)
        return self._via_file(lambda out: out.write(data), what)

    def put_fileobj(self, src: IO[bytes], what: str) -> tuple[str, int]:
        if self.put_stream is not None:
            return _result_pair(self.put_stream(src), what)
        return self._via_file(lambda out: shutil.copyfileobj(src, out, _CHUNK), what)


def _scan_member(tar: tarfile.TarFile, info: tarfile.TarInfo, archive: _Archive, store: _Store) -> None:
    path = _safe_member_path(info.name)
    if info.isdir():
        return
    if path in archive.files or path in archive.links:
        raise ImageError(f"docker save archive: member {path!r} appears twice")
    if info.issym() or info.islnk():
        base = posixpath.dirname(path) if info.issym() else ""
        archive.links[path] = _safe_member_path(posixpath.normpath(posixpath.join(base, info.linkname)))
        archive.order.append(path)
        return
    src = tar.extractfile(info) if info.isreg() else None
    if src is None:
        raise ImageError(f"docker save archive: member {path!r} is not a regular file, link or directory")
    mode = info.mode & 0o7777
    if info.size <= _SMALL:
        data = src.read()
        if len(data) != info.size:
            raise ImageError(f"docker save archive: member {path!r} is truncated")
        if data.lstrip()[:1] in (b"{", b"["):
            # A JSON document (index, config, manifest): kept in memory, stored when a record lists it,
            # so the index files of a multi-image archive, which no record lists, are not stored.
            member = _Member(path, hashlib.sha256(data).hexdigest(), len(data), mode, data, stored=False)
            archive.files[path] = member
            archive.order.append(path)
            return
        digest, size = store.put_bytes(data, path)
    else:
        digest, size = store.put_fileobj(src, path)
    if size != info.size:
        raise ImageError(
            f"docker save archive: member {path!r} stored as {size} bytes, the archive says {info.size}"
        )
    archive.files[path] = _Member(path, digest, size, mode)
    archive.order.append(path)


def _scan(stream: IO[bytes], store: _Store) -> _Archive:
    """Read a ``docker save`` tar stream once; store every regular member; note links."""
    archive = _Archive()
    try:
        tar = tarfile.open(fileobj=stream, mode="r|", bufsize=_CHUNK)  # noqa: SIM115 - closed below
    except tarfile.TarError as exc:
        raise ImageError(f"docker save output is not a tar archive: {exc}") from None
    with tar:
        try:
            for info in tar:
                _scan_member(tar, info, archive, store)
        except tarfile.TarError as exc:
            raise ImageError(f"docker save archive is truncated or corrupt: {exc}") from None
    for path, target in archive.links.items():
        if archive.resolve(path) is None:
            raise ImageError(f"docker save archive: link {path!r} points to missing member {target!r}")
    _check_names(archive)
    return archive


def _check_names(archive: _Archive) -> None:
    """Content-addressed names must match the content (a corrupt stream is caught here)."""
    for path, member in archive.files.items():
        match = _OCI_BLOB_RE.fullmatch(path) or _LEGACY_CONFIG_RE.fullmatch(path)
        if match and match.group(1) != member.digest:
            raise ImageError(
                f"docker save archive: {path!r} has sha256 {member.digest}, not the digest its name says"
            )


def _layout(archive: _Archive) -> str:
    names = set(archive.order)
    if "oci-layout" in names or "index.json" in names:
        return LAYOUT_OCI
    if "manifest.json" in names:
        return LAYOUT_LEGACY
    raise ImageError("docker save archive has neither manifest.json nor index.json: not an image archive")


def _blob_path(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    return f"blobs/{algo}/{hexd}"


def _closure(archive: _Archive, descriptor: dict[str, Any], out: set[str], configs: list[str]) -> None:
    """Add the blobs reachable from an OCI descriptor that are in the archive (other platforms are not)."""
    digest = descriptor.get("digest")
    if not isinstance(digest, str) or ":" not in digest:
        return
    path = _blob_path(digest)
    if path in out or archive.resolve(path) is None:
        return
    out.add(path)
    media = str(descriptor.get("mediaType", ""))
    if "layer" in media or media.endswith("config.v1+json"):
        return
    member = archive.resolve(path)
    doc = archive.json(path) if member is not None and member.data is not None else None
    if not isinstance(doc, dict):
        return
    config = doc.get("config")
    if isinstance(config, dict):
        cfg_path = _blob_path(str(config.get("digest", "")))
        if archive.resolve(cfg_path) is not None:
            out.add(cfg_path)
            configs.append(cfg_path)
    for layer in doc.get("layers") or []:
        if isinstance(layer, dict):
            layer_path = _blob_path(str(layer.get("digest", "")))
            if archive.resolve(layer_path) is not None:
                out.add(layer_path)
    for child in doc.get("manifests") or []:
        if isinstance(child, dict):
            _closure(archive, child, out, configs)


def _oci_layers(archive: _Archive, blob_paths: set[str], config_path: str) -> list[str]:
    """Layer paths of the OCI manifest (among ``blob_paths``) whose config is ``config_path``."""
    for path in sorted(blob_paths):
        member = archive.resolve(path)
        doc = archive.json(path) if member is not None and member.data is not None else None
        config = doc.get("config") if isinstance(doc, dict) else None
        if isinstance(config, dict) and _blob_path(str(config.get("digest", ""))) == config_path:
            return [_blob_path(str(layer.get("digest", ""))) for layer in doc.get("layers") or []]
    return []


def _manifest_images(archive: _Archive) -> list[_Image]:
    """The images manifest.json lists, in its order (none without manifest.json)."""
    images: list[_Image] = []
    manifest = archive.json("manifest.json") if "manifest.json" in archive.order else None
    if manifest is not None:
        if not isinstance(manifest, list):
            raise ImageError("docker save archive: manifest.json is not a list")
        for entry in manifest:
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
                raise ImageError(f"docker save archive: manifest.json entry without Config: {entry!r}")
            config_path = _safe_member_path(entry["Config"])
            config = archive.resolve(config_path)
            if config is None:
                raise ImageError(f"docker save archive: image config {config_path!r} is missing")
            layers = [_safe_member_path(p) for p in entry.get("Layers") or []]
            for layer in layers:
                if archive.resolve(layer) is None:
                    raise ImageError(f"docker save archive: layer {layer!r} of {config_path!r} is missing")
            tags = [str(t) for t in entry.get("RepoTags") or []]
            images.append(_Image(config_path, "sha256:" + config.digest, tags, layers, entry=entry))
    return images


def _attach_index(archive: _Archive, images: list[_Image]) -> None:
    """Give each image its index.json descriptors and their blobs; add images only index.json names."""
    index = archive.json("index.json") if "index.json" in archive.order else None
    descriptors = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(descriptors, list):
        raise ImageError("docker save archive: index.json has no manifests list")
    by_config = {img.config_path: img for img in images}
    for desc in descriptors:
        if not isinstance(desc, dict):
            raise ImageError(f"docker save archive: index.json descriptor is not an object: {desc!r}")
        reach: set[str] = set()
        configs: list[str] = []
        _closure(archive, desc, reach, configs)
        owner = next((by_config[c] for c in configs if c in by_config), None)
        if owner is None:  # no manifest.json (containerd image store): the index is all there is
            config = archive.resolve(configs[0]) if configs else None
            if config is None:
                raise ImageError(
                    f"docker save archive: no image config reachable from {desc.get('digest')!r}"
                )
            owner = _Image(configs[0], "sha256:" + config.digest, [], [])
            images.append(owner)
            by_config[owner.config_path] = owner
        owner.descriptors.append(desc)
        owner.blob_paths |= reach
        name = (desc.get("annotations") or {}).get("io.containerd.image.name")
        if owner.entry is None and name and _familiar(str(name)) not in owner.repo_tags:
            owner.repo_tags.append(_familiar(str(name)))
    for img in images:
        if not img.layer_paths:
            img.layer_paths = _oci_layers(archive, img.blob_paths, img.config_path)


def _images(archive: _Archive, layout: str) -> list[_Image]:
    """The images of an archive, from manifest.json (and index.json for OCI), in manifest order."""
    images = _manifest_images(archive)
    if layout == LAYOUT_OCI:
        _attach_index(archive, images)
    if not images:
        raise ImageError("docker save archive lists no image")
    return images


def _familiar(ref: str) -> str:
    """``docker.io/library/x:t`` → ``x:t``, ``docker.io/u/x:t`` → ``u/x:t`` (how docker prints tags)."""
    if ref.startswith("docker.io/"):
        ref = ref[len("docker.io/") :]
        if ref.startswith("library/") and "/" not in ref[len("library/") :]:
            ref = ref[len("library/") :]
    return ref


def _split_tag(tag: str) -> tuple[str, str]:
    repo, _, name = tag.rpartition(":")
    if not repo or "/" in name:
        return tag, "latest"
    return repo, name


def _go_json(obj: Any, newline: bool) -> bytes:
    """Compact JSON as Go's encoder writes it (``json.NewEncoder`` adds a newline)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + (
        b"\n" if newline else b""
    )


def _subset(archive: _Archive, layout: str, image: _Image) -> tuple[set[str], dict[str, bytes]]:
    """What one image of a multi-image archive needs: its members, and index files naming it alone.

    Loading one image must not load (nor re-tag) the others saved with it. Blobs that no index refers to
    (Docker 25 writes the v1 layer configs as blobs) are dropped: ``docker load`` does not read them.
    """
    wanted = {image.config_path, *image.layer_paths, *image.blob_paths}
    if layout == LAYOUT_LEGACY:
        for layer in image.layer_paths:
            folder = posixpath.dirname(layer)
            wanted |= {posixpath.join(folder, "json"), posixpath.join(folder, "VERSION")}
    rewritten: dict[str, bytes] = {}
    if image.entry is not None:
        # Parent links only hold between images of one archive; there is one image now.
        entry = {k: v for k, v in image.entry.items() if k != "Parent"}
        rewritten["manifest.json"] = _go_json([entry], newline=True)
    repos = archive.json("repositories") if "repositories" in archive.order else None
    if isinstance(repos, dict):
        kept: dict[str, dict[str, Any]] = {}
        for tag in image.repo_tags:
            repo, tag_name = _split_tag(tag)
            if tag_name in (repos.get(repo) or {}):
                kept.setdefault(repo, {})[tag_name] = repos[repo][tag_name]
        if kept:
            rewritten["repositories"] = _go_json(kept, newline=True)
    if layout == LAYOUT_OCI:
        index = archive.json("index.json")
        rewritten["index.json"] = _go_json({**index, "manifests": image.descriptors}, newline=False)
        wanted.add("oci-layout")
    return wanted | set(rewritten), rewritten


def _record(
    archive: _Archive, layout: str, image: _Image, images: list[_Image], name: str, store: _Store
) -> dict[str, Any]:
    """The record of one image: the members of a ``docker save`` of that image alone, in archive order.

    The archive of a single image is kept whole; links become regular members with their target's blob.
    """
    if len(images) == 1:
        wanted, rewritten = set(archive.order), {}
    else:
        wanted, rewritten = _subset(archive, layout, image)
    members: list[dict[str, Any]] = []
    for path in archive.order:
        if path not in wanted:
            continue
        if path in rewritten:
            original = archive.resolve(path)
            digest, size = store.put_bytes(rewritten[path], f"{path} of {name}")
            mode = original.mode if original is not None else 0o644
        else:
            member = archive.resolve(path)
            if member is None:  # pragma: no cover - _scan checked every link
                raise ImageError(f"docker save archive: {path!r} is missing")
            if not member.stored:
                assert member.data is not None  # noqa: S101 - only JSON documents are deferred
                if store.put_bytes(member.data, path) != (member.digest, member.size):
                    raise ImageError(
                        f"blob store stored {path!r} under another digest or size than its sha256"
                    )
                member.stored = True
            digest, size, mode = member.digest, member.size, member.mode
        members.append({"path": path, "digest": digest, "size": size, "mode": mode})
    layer_digests = []
    for layer in image.layer_paths:
        member = archive.resolve(layer)
        if member is not None:
            layer_digests.append("sha256:" + member.digest)
    return {
        "name": name,
        "id": image.config_digest,
        "alt_ids": image.alt_ids,
        "repo_tags": list(image.repo_tags),
        "layout": layout,
        "layers": layer_digests,
        "members": members,
        "size": sum(m["size"] for m in members),
    }


def split_save_stream(
    stream: IO[bytes],
    put_file: PutFile,
    workdir: str | os.PathLike[str],
    *,
    put_stream: PutStream | None = None,
    wanted: Iterable[tuple[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Split a ``docker save`` tar stream into blobs; return one record per image.

    ``wanted``: ``(name, image id)`` pairs, one record each (the ID as ``docker image inspect`` reports
    it: the config digest, or an index.json target digest on a containerd store). ``None``: every image
    of the archive, named by its first tag (else its ID).
    """
    store = _Store(put_file, workdir, put_stream)
    archive = _scan(stream, store)
    layout = _layout(archive)
    images = _images(archive, layout)
    if wanted is None:
        pairs = [
            (img.repo_tags[0] if img.repo_tags else img.config_digest, img.config_digest) for img in images
        ]
    else:
        pairs = list(wanted)
    records = []
    for name, image_id in pairs:
        image = next(
            (img for img in images if image_id == img.config_digest or image_id in img.alt_ids), None
        )
        if image is None:
            raise ImageError(f"image {name!r} ({image_id}) is not in the docker save archive")
        records.append(_record(archive, layout, image, images, name, store))
    return records


def _resolve_names(names: list[str], docker: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``(name, image id)`` per distinct image, and the references to save; refuse names docker lacks."""
    found: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for name in names:
        info = inspect_image(name, docker=docker)
        if info is None:
            missing.append(name)
        else:
            found[name] = info
    if missing:
        raise ImageError(
            "docker image(s) not found locally, build or load them before export: "
            + ", ".join(repr(n) for n in missing),
            missing=missing,
        )
    wanted: list[tuple[str, str]] = []
    refs: list[str] = []
    for name in names:
        image_id = str(found[name]["Id"])
        refs.append(_save_ref(name, image_id))
        if all(image_id != seen for _, seen in wanted):
            wanted.append((name, image_id))
    return wanted, list(dict.fromkeys(refs))


def unchanged_records(
    names: list[str], previous: list[dict[str, Any]], *, docker: str = "docker"
) -> list[dict[str, Any]] | None:
    """The previous bundle's image records when a new ``docker save`` of ``names`` would write them again.

    ``docker save`` of the same references of the same images gives the same archive, so when every name
    is an explicit ``repo:tag`` that still resolves to the image id its record names, with the same names
    per image in the same order, the records (and their blobs) can be reused without saving anything.
    None when anything differs (a rebuilt or re-tagged image, another set of names, a name by id or
    without a tag): the caller saves as usual.
    """
    if not names or not previous:
        return None
    ids: dict[str, str] = {}
    for name in names:
        if "@" in name or ":" not in name.rsplit("/", 1)[-1]:
            return None
        info = inspect_image(name, docker=_docker_bin(docker))
        if info is None:
            return None
        ids[name] = str(info["Id"])
    wanted: list[tuple[str, str]] = []
    for name in names:
        if all(ids[name] != seen for _, seen in wanted):
            wanted.append((name, ids[name]))
    if [(r.get("name"), r.get("id")) for r in previous] != wanted:
        return None
    for rec in previous:
        tags = sorted(n for n in names if ids.get(n) == rec["id"])
        if sorted(rec.get("repo_tags") or []) != tags:
            return None
    return previous


def export_images(
    names: list[str],
    put_file: PutFile,
    workdir: str | os.PathLike[str],
    *,
    put_stream: PutStream | None = None,
    docker: str = "docker",
) -> list[dict[str, Any]]:
    """``docker save`` the local images ``names`` once, store their members as blobs, return their records.

    One record per distinct image, in the order first named (two names of one image give one record
    carrying both tags). ``put_file(path) -> (digest, size)`` stores a file in the blob store and must be
    idempotent; ``put_stream(fileobj) -> (digest, size)``, when given, is used instead and spares the
    temporary file. Temporary files go to ``workdir`` (best on the store's filesystem).
    """
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ImageError(f"image names must be a non-empty list of non-empty strings, got {names!r}")
    if not Path(workdir).is_dir():
        raise ImageError(f"image export work directory '{workdir}' does not exist")
    docker = _docker_bin(docker)
    wanted, refs = _resolve_names(names, docker)
    with tempfile.TemporaryFile(dir=workdir) as err:
        proc = subprocess.Popen([docker, "save", *refs], stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None  # noqa: S101 - stdout=PIPE
        try:
            records = split_save_stream(proc.stdout, put_file, workdir, put_stream=put_stream, wanted=wanted)
            while proc.stdout.read(_CHUNK):
                pass  # the end-of-archive padding
        except BaseException as exc:
            # Give a docker that failed mid-stream the chance to exit and say why; stop one still writing.
            try:
                rc = proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            if rc > 0 and isinstance(exc, ImageError):
                err.seek(0)
                raise _daemon_error(f"save {', '.join(refs)}", err.read().decode(errors="replace")) from exc
            raise
        finally:
            proc.stdout.close()
        if proc.wait() != 0:
            err.seek(0)
            raise _daemon_error(f"save {', '.join(refs)}", err.read().decode(errors="replace"))
    return records


# --------------------------------------------------------------------------------------------- load


def _is_id(value: object) -> bool:
    return isinstance(value, str) and value.startswith("sha256:") and _HEX_RE.fullmatch(value[7:]) is not None


def _is_count(value: object, top: int | None = None) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= 0
        and (top is None or value <= top)
    )


def _check_member(member: Any, label: str, seen: set[str]) -> None:
    if not isinstance(member, dict):
        raise ImageError(f"image record {label}: member {member!r} is not a mapping")
    path = member.get("path")
    try:
        safe = isinstance(path, str) and _safe_member_path(path) == path and len(path.encode()) <= 4096
    except (ImageError, UnicodeEncodeError):
        safe = False
    if not safe:
        raise ImageError(f"image record {label}: unsafe member path {path!r}")
    if path in seen:
        raise ImageError(f"image record {label}: member {path!r} listed twice")
    seen.add(path)
    if not isinstance(member.get("digest"), str) or not _HEX_RE.fullmatch(member["digest"]):
        raise ImageError(
            f"image record {label}: member {path!r} has an invalid digest {member.get('digest')!r}"
        )
    if not _is_count(member.get("size")):
        raise ImageError(f"image record {label}: member {path!r} has an invalid size {member.get('size')!r}")
    if not _is_count(member.get("mode"), 0o7777):
        raise ImageError(f"image record {label}: member {path!r} has an invalid mode {member.get('mode')!r}")


def check_record(record: Any) -> dict[str, Any]:
    """Validate an image record (from a bundle manifest); return it. Raises ImageError naming the field."""
    if not isinstance(record, dict):
        raise ImageError(f"image record must be a mapping, got {type(record).__name__}")
    name = record.get("name")
    label = repr(name) if isinstance(name, str) else "(unnamed)"
    if not _is_id(record.get("id")):
        raise ImageError(f"image record {label}: invalid id {record.get('id')!r}")
    alt_ids = record.get("alt_ids", [])
    if not isinstance(alt_ids, list) or not all(_is_id(i) for i in alt_ids):
        raise ImageError(f"image record {label}: alt_ids must be a list of sha256 ids")
    if record.get("layout") not in LAYOUTS:
        raise ImageError(f"image record {label}: unknown layout {record.get('layout')!r}")
    tags = record.get("repo_tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise ImageError(f"image record {label}: repo_tags must be a list of strings")
    members = record.get("members")
    if not isinstance(members, list) or not members:
        raise ImageError(f"image record {label}: no members")
    seen: set[str] = set()
    for member in members:
        _check_member(member, label, seen)
    return record


def verify_blobs(record: dict[str, Any], blob_path: BlobPath) -> list[str]:
    """Problems with the record's member blobs: missing, not a file, or another size than recorded."""
    problems = []
    for member in record["members"]:
        digest = member["digest"]
        try:
            actual = os.stat(blob_path(digest)).st_size
        except FileNotFoundError:
            problems.append(f"blob {digest} ({member['path']}) is missing")
            continue
        except OSError as exc:
            problems.append(f"blob {digest} ({member['path']}) cannot be read: {exc.strerror or exc}")
            continue
        if actual != member["size"]:
            problems.append(
                f"blob {digest} ({member['path']}) has {actual} bytes, the record says {member['size']}"
            )
    return problems


def _header(member: dict[str, Any]) -> bytes:
    info = tarfile.TarInfo(member["path"])
    info.size = member["size"]
    info.mode = member["mode"]
    info.mtime = TAR_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_image_tar(record: dict[str, Any], blob_path: BlobPath, out: IO[bytes] | int) -> int:
    """Write the record's ``docker save`` archive to ``out`` (binary file object or fd); return its size.

    Deterministic: the recorded member order, regular files only, mtime ``TAR_MTIME``, owner 0:0, the
    recorded mode. Blob contents go through ``os.sendfile`` when ``out`` has a file descriptor.
    """
    fd: int | None = out if isinstance(out, int) else None
    if fd is None:
        try:
            out.flush()  # type: ignore[union-attr]
            fd = out.fileno()  # type: ignore[union-attr]
        except (AttributeError, OSError, io.UnsupportedOperation):
            fd = None

    def emit(data: bytes) -> None:
        if fd is not None:
            _write_all(fd, data)
        else:
            out.write(data)  # type: ignore[union-attr]

    total = 0
    for member in record["members"]:
        size = member["size"]
        header = _header(member)
        emit(header)
        with open(blob_path(member["digest"]), "rb") as src:
            sent = 0
            if fd is not None:
                while sent < size:
                    n = os.sendfile(fd, src.fileno(), sent, min(size - sent, 1 << 30))
                    if n == 0:
                        break
                    sent += n
            else:
                while sent < size:
                    chunk = src.read(min(_CHUNK, size - sent))
                    if not chunk:
                        break
                    out.write(chunk)  # type: ignore[union-attr]
                    sent += len(chunk)
        if sent != size:
            raise ImageError(
                f"blob {member['digest']} ({member['path']}) ended after {sent} bytes, the record says {size}"
            )
        pad = -size % _BLOCK
        emit(b"\0" * pad)
        total += len(header) + size + pad
    emit(b"\0" * (2 * _BLOCK))
    return total + 2 * _BLOCK


def _present_id(record: dict[str, Any], docker: str) -> str | None:
    for candidate in [record["id"], *record.get("alt_ids", [])]:
        info = inspect_image(candidate, docker=docker)
        if info is not None and info.get("Id") == candidate:
            return candidate
    return None


def _tags_to_fix(record: dict[str, Any], image_id: str, docker: str) -> list[str]:
    fix = []
    for tag in record.get("repo_tags", []):
        info = inspect_image(tag, docker=docker)
        if info is None or info.get("Id") != image_id:
            fix.append(tag)
    return fix


def _tag(docker: str, image_id: str, tags: list[str]) -> None:
    for tag in tags:
        proc = _run(docker, "tag", image_id, tag, action=f"tag {image_id} as {tag}")
        if proc.returncode != 0:
            raise _daemon_error(f"tag {image_id} as {tag}", proc.stderr)


def _docker_load(record: dict[str, Any], blob_path: BlobPath, docker: str, label: str) -> str:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([docker, "load"], stdin=subprocess.PIPE, stdout=out, stderr=err)
        assert proc.stdin is not None  # noqa: S101 - stdin=PIPE
        try:
            write_image_tar(record, blob_path, proc.stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # docker load stopped reading: its exit status and stderr say why
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        rc = proc.wait()
        out.seek(0)
        err.seek(0)
        said = (out.read() + err.read()).decode(errors="replace").strip()
    if rc != 0:
        raise _daemon_error(f"load image {label} (docker load)", said)
    return said


def load_image(
    record: dict[str, Any], blob_path: BlobPath, *, check_mode: bool = False, docker: str = "docker"
) -> dict[str, Any]:
    """Make the daemon hold the record's image with its tags; load it from the blobs if it lacks it.

    Returns ``changed``, ``loaded`` (the image was, or in check mode would be, loaded), ``tagged`` (tags
    (re)applied), ``id``, ``repo_tags``, ``size`` and ``msg``. Raises ImageError for a malformed record,
    a missing or wrong-size blob, an unreachable daemon, a failed load, or a load that produced another
    image ID.
    """
    check_record(record)
    label = repr(record.get("name") or record["id"])
    docker = _docker_bin(docker)
    result: dict[str, Any] = {
        "changed": False,
        "loaded": False,
        "tagged": [],
        "id": record["id"],
        "repo_tags": list(record.get("repo_tags", [])),
        "size": sum(m["size"] for m in record["members"]),
    }
    present = _present_id(record, docker)
    if present is not None:
        fix = _tags_to_fix(record, present, docker)
        if fix and not check_mode:
            _tag(docker, present, fix)
        result.update(changed=bool(fix), tagged=fix, id=present)
        verb = "would tag" if check_mode else "tagged"
        result["msg"] = f"image {label} present as {present}" + (f"; {verb} {', '.join(fix)}" if fix else "")
        return result
    problems = verify_blobs(record, blob_path)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ImageError(f"cannot load image {label}: {shown}", problems=problems)
    if check_mode:
        result.update(changed=True, loaded=True, tagged=result["repo_tags"])
        result["msg"] = f"would load image {label} ({record['id']}, {result['size']} bytes)"
        return result
    said = _docker_load(record, blob_path, docker, label)
    present = _present_id(record, docker)
    if present is None:
        raise ImageError(
            f"loading image {label} produced another image than {record['id']}: docker load said: {said}",
            docker_output=said,
        )
    fix = _tags_to_fix(record, present, docker)
    _tag(docker, present, fix)
    result.update(changed=True, loaded=True, tagged=result["repo_tags"], id=present)
    result["msg"] = f"loaded image {label} as {present}"
    return result
