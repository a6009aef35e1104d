# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The core of ``clearml_export``: resolve a dev deployment and write it as a bundle (format v1).

Private to this collection: not a public API, may change without notice.

Steps: resolve (``_deployment``) → download every file into a blob store in a temporary sibling of
``dest`` (blobs of an earlier bundle at ``dest`` are hard-linked first, so an unchanged file is never
written again) → redact task documents → build and validate the manifest → checksums (+ signature) →
compare the content digest with the bundle already at ``dest`` → publish by rename, or discard.

Check mode builds the same bundle in the workspace and never touches ``dest``; it keeps the would-be
bundle's control files (manifest with its blob index, checksums, volatile fields, signature) at
``<dest>.plan/`` (returned as ``plan_path``) so that the downstream roles can plan against it: the
transfer (which blobs a site lacks) and the import (what would be created or updated). Each check run
replaces that directory; a real run removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import unicodedata
import urllib.parse
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle
from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _images
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_base import (
    CONTROL_FILES,
    canonical_json,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._bundle_store import BlobStore
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import (
    ClearmlClient,
    client_from_params,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._deployment import (
    DeploymentReader,
    dataset_ids_used_by,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._redact import Redactor, redact_task

COLLECTION_VERSION = "0.1.0"
# A check run keeps the would-be bundle's control files at <dest> + PLAN_SUFFIX.
PLAN_SUFFIX = ".plan"
_MEDIA = {
    "model": "application/octet-stream",
    "task-record": "application/json",
    "events": "application/x-ndjson",
    "artifact": "application/octet-stream",
    "dataset-state": "application/json",
    "dataset-chunk": "application/zip",
    "preprocess": "text/x-python",
    "git-bundle": "application/x-git-bundle",
    "git-diff": "text/x-diff",
    "debug-image": "application/octet-stream",
    "wheel": "application/zip",
    "image-layer": "application/x-tar",
    "requirements": "text/plain",
}


def _filename(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) or "file"


class ExportCore:
    """Builds the bundle. ``run()`` returns the module result."""

    def __init__(self, params: dict[str, Any], check_mode: bool = False, diff: bool = False) -> None:
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        if not params.get("redact", True) and not params.get("allow_secrets"):
            raise ClearmlModuleError(
                "redact=false would put secrets into the bundle; set allow_secrets=true to confirm"
            )
        self.dest = Path(params["dest"])
        if not self.dest.parent.is_dir():
            raise ClearmlModuleError(f"The parent directory of dest '{self.dest}' does not exist")
        self.client: ClearmlClient = client_from_params(params)
        self.redactor = Redactor(extra_patterns=params.get("redact_patterns") or [])
        self.downloaded = 0
        self.previous: BlobStore | None = None
        self.writer: bundle.BundleWriter
        self._warnings_extra: list[str] = []

    # -- blobs --------------------------------------------------------------------------------------
    def put_file(self, path: Path, kind: str) -> str:
        return self.writer.add_file(path, kind=kind, media_type=_MEDIA.get(kind, "application/octet-stream"))

    def put_bytes(self, data: bytes, kind: str) -> str:
        return self.writer.add_bytes(data, kind=kind, media_type=_MEDIA.get(kind, "application/octet-stream"))

    def fetch(self, url: str, kind: str, known_sha256: str | None = None) -> str:
        """Download ``url`` into the bundle; skipped when ``known_sha256`` is already in the previous bundle."""
        if known_sha256 and self.previous is not None and self.previous.has(known_sha256):
            return self.put_file(self.previous.path_of(known_sha256), kind)
        tmp = Path(self.tmpdir) / "download"
        sha, size = self._download_any(url, tmp, kind)
        if known_sha256 and sha != known_sha256:
            raise ClearmlModuleError(f"{url} has sha256 {sha} but dev recorded {known_sha256}", url=url)
        self.downloaded += size
        try:
            return self.put_file(tmp, kind)
        finally:
            tmp.unlink(missing_ok=True)

    def _download_any(self, url: str, tmp: Path, kind: str) -> tuple[str, int]:
        """Download ``url``; a 404 on a non-ASCII URL is retried with the other encodings of the same name
        (a real ClearML fileserver stores and records such names differently, clearml-api.md §10)."""
        try:
            return self.client.download(url, tmp)
        except ClearmlModuleError as exc:
            first = exc
        for variant in url_variants(url):
            try:
                result = self.client.download(variant, tmp)
            except ClearmlModuleError:
                continue
            self._warnings_extra.append(f"{url} was not found; downloaded it as {variant}")
            return result
        raise ClearmlModuleError(f"{first.msg} (needed for {kind})", url=url) from first

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.tmpdir = tempfile.mkdtemp(prefix=".d2s-export-", dir=str(self.dest.parent))
        try:
            return self._run()
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def _run(self) -> dict[str, Any]:
        self._drop_plan()  # the last check run's plan: stale whatever this run does (or fails to do)
        reader = DeploymentReader(self.client, self.tmpdir)
        p = self.params
        if p.get("serving_id"):
            reader.read_serving(p["serving_id"], p.get("endpoints") or [])
        for model_id in p.get("model_ids") or []:
            reader.add_model(model_id, "requested")
        for task_id in p.get("task_ids") or []:
            reader.add_task(task_id)
        for ds in p.get("dataset_ids") or []:
            reader.add_dataset(ds, "requested")
        dep = reader.dep
        counts = {
            "endpoints": len(dep.endpoints),
            "models": len(dep.models),
            "tasks": len(dep.tasks),
            "datasets": len(dep.datasets),
        }
        old_digest = _existing_digest(self.dest)
        plan = {
            "endpoints": sorted(dep.endpoints),
            "models": {m: d.get("name") for m, d in dep.models.items()},
            "tasks": {t: d.get("name") for t, d in dep.tasks.items()},
            "datasets": {d: doc.get("name") for d, doc in dep.datasets.items()},
        }
        # Check mode builds the bundle the same way in the workspace beside dest (dev is only read),
        # compares its content digest and keeps its control files as the plan (_keep_plan); dest is
        # never written. A partial bundle is also built complete in the workspace first.
        partial = self.params.get("site_digests")
        target = Path(self.tmpdir) / "complete" if (self.check_mode or partial) else self.dest
        self.previous = bundle._previous_store(self.dest)
        with bundle.BundleWriter(
            target,
            tool_version=COLLECTION_VERSION,
            api_host=self.client.api_host,
            web_host=self.client.web_host,
            files_host=self.client.files_host,
            api_version=self.client.server_api_version,
            server_version=self.client.server_version,
            serving_id=dep.serving["id"] if dep.serving else None,
        ) as writer:
            self.writer = writer
            self._fill_manifest(reader, writer.manifest)
            writer.manifest["images"] = self._images(dep)
            writer.manifest["wheels"] = self._wheels()
            volatile = bundle.make_volatile()
            done = writer.finalize(volatile=volatile, private_key=self.params.get("signing_key"))
        digest = done["content_digest"]
        changed = digest != old_digest
        manifest = writer.manifest
        partial_result = None
        if partial:
            site = bundle.read_digest_list(partial)
            missing = set(bundle.missing_blobs(writer.manifest, site))
            have = (
                {p.name for p in (self.dest / "blobs" / "sha256").glob("*")} if self.dest.is_dir() else set()
            )
            changed = digest != old_digest or have != missing
            partial_result = {
                "blobs": len(missing),
                "bytes": sum(writer.manifest["blobs"][d]["size"] for d in missing),
                "skipped_blobs": len(writer.manifest["blobs"]) - len(missing),
            }
            if changed and not self.check_mode:
                staging = self.dest.with_name(self.dest.name + ".partial-tmp")
                shutil.rmtree(staging, ignore_errors=True)
                bundle.make_partial_bundle(target, site, staging)
                if self.dest.exists():
                    shutil.rmtree(self.dest)
                os.rename(staging, self.dest)
        plan_path = self._keep_plan(target) if self.check_mode else None
        bytes_by_kind: dict[str, int] = {}
        for meta in manifest["blobs"].values():
            bytes_by_kind[meta["kind"]] = bytes_by_kind.get(meta["kind"], 0) + meta["size"]
        return {
            "changed": changed,
            "bundle": str(self.dest),
            "digest": digest,
            "counts": {
                **counts,
                "code": len(manifest["code"]),
                "images": len(manifest["images"]),
                "blobs": len(manifest["blobs"]),
            },
            "bytes": {**bytes_by_kind, "total": sum(bytes_by_kind.values()), "downloaded": self.downloaded},
            "redactions": manifest["redactions"],
            "notes": dep.warnings + self._warnings_extra + list(done.get("warnings") or []),
            "plan": plan,
            **({"plan_path": plan_path} if plan_path else {}),
            **({"partial": partial_result} if partial_result else {}),
            **(
                {"diff": {"before": {"digest": old_digest}, "after": {"digest": digest}}} if self.diff else {}
            ),
        }

    # -- check-mode plan -----------------------------------------------------------------------------
    @property
    def plan_dir(self) -> Path:
        """Where a check run keeps the would-be bundle's control files: ``<dest>.plan``."""
        return self.dest.with_name(self.dest.name + PLAN_SUFFIX)

    def _keep_plan(self, built: Path) -> str:
        """Replace ``<dest>.plan`` with the control files of the bundle just built in the workspace.

        No blobs: the manifest holds the blob index (digest, size, kind), which is what the transfer
        and the import plan against; ``bundle_store state=partial`` reads such a directory in check mode.
        """
        staging = Path(self.tmpdir) / "plan"
        staging.mkdir()
        for name in CONTROL_FILES:
            if (built / name).is_file():
                shutil.copyfile(built / name, staging / name)
        os.rename(staging, self.plan_dir)
        return str(self.plan_dir)

    def _drop_plan(self) -> None:
        """Remove the last check run's plan (every run starts so; a check run then writes its own)."""
        if self.plan_dir.is_symlink() or self.plan_dir.is_file():
            self.plan_dir.unlink()
        elif self.plan_dir.exists():
            shutil.rmtree(self.plan_dir)

    # -- manifest -----------------------------------------------------------------------------------
    def _fill_manifest(self, reader: DeploymentReader, manifest: dict[str, Any]) -> None:
        dep = reader.dep
        models = {mid: self._model_entry(reader, doc) for mid, doc in dep.models.items()}
        task_records: dict[str, Any] = {}
        tasks: list[dict[str, Any]] = []
        code: list[dict[str, Any]] = []
        for tid, doc in dep.tasks.items():
            task_records[tid] = self._task_record(reader, doc)
            tasks.append(
                {
                    "id": tid,
                    "name": doc.get("name"),
                    "models": [
                        {"name": m.get("name") or "", "model": m["id"]} for m in dep.task_models.get(tid, [])
                    ],
                    "datasets": dataset_ids_used_by(doc),
                }
            )
            if self.params.get("include_code", True):
                entry = self._code_entry(doc)
                if entry:
                    code.append(entry)
        dataset_versions = {did: self._dataset_entry(reader, did, doc) for did, doc in dep.datasets.items()}
        serving = self._serving_entry(reader) if dep.serving else None
        first_ep = next(iter(dep.endpoints.values()), None)
        first_model = dep.models.get(first_ep.get("model_id")) if first_ep else None
        manifest.update(
            {
                "model": {
                    "id": first_model["id"],
                    "url": first_model.get("uri"),
                    "name": first_model.get("name"),
                }
                if first_model
                else None,
                "tasks": tasks,
                "datasets": {
                    did: {
                        "name": doc.get("name") or "",
                        "project": _dataset_user_project(reader.project_name(doc.get("project"))),
                        "version": (doc.get("runtime") or {}).get("version"),
                    }
                    for did, doc in dep.datasets.items()
                },
                "serving": serving,
                "models": models,
                "task_records": task_records,
                "dataset_versions": dataset_versions,
                "code": code,
                "redactions": [r.as_dict() for r in self.redactor.found],
            }
        )

    def _model_entry(self, reader: DeploymentReader, doc: dict[str, Any]) -> dict[str, Any]:
        uri = doc["uri"]
        try:
            blob = self.fetch(uri, "model")
        except ClearmlModuleError as exc:
            raise ClearmlModuleError(
                f"Model {doc['id']} ({doc.get('name')}): cannot download its weights {uri}: {exc.msg}"
            ) from exc
        design = (
            (doc.get("design") or {}).get("design")
            if isinstance(doc.get("design"), dict)
            else doc.get("design")
        )
        return {
            "name": doc.get("name") or "",
            "project": reader.project_name(doc.get("project")),
            "framework": doc.get("framework"),
            "design": design,
            "labels": {k: int(v) for k, v in (doc.get("labels") or {}).items()},
            "tags": list(doc.get("tags") or []),
            "system_tags": list(doc.get("system_tags") or []),
            "metadata": dict(doc.get("metadata") or {}),
            "ready": bool(doc.get("ready")),
            "task": doc.get("task"),
            "parent": doc.get("parent"),
            "uri": uri,
            "comment": doc.get("comment"),
            "files": [{"path": _filename(uri), "blob": blob}],
        }

    def _artifacts(self, doc: dict[str, Any], kind: str = "artifact") -> list[dict[str, Any]]:
        out = []
        for art in (doc.get("execution") or {}).get("artifacts") or []:
            uri = art.get("uri")
            blob = None
            if uri:
                blob = self.fetch(uri, kind, known_sha256=art.get("hash") or None)
            out.append(
                {
                    "key": art.get("key"),
                    "mode": art.get("mode"),
                    "type": art.get("type"),
                    "filename": _filename(uri) if uri else None,
                    "hash": art.get("hash"),
                    "uri": uri,
                    "blob": blob,
                }
            )
        return out

    def _task_record(self, reader: DeploymentReader, doc: dict[str, Any]) -> dict[str, Any]:
        redacted = redact_task(doc, self.redactor) if self.params.get("redact", True) else doc
        record_blob = self.put_bytes(canonical_json(redacted), "task-record")
        events_blob = None
        event_blobs: list[str] = []
        if self.params.get("include_events", True):
            events = reader.task_events(doc["id"])
            for ev in events.get("training_debug_image", []):
                if ev.get("url"):
                    try:
                        ev["d2s_blob"] = self.fetch(ev["url"], "debug-image")
                        event_blobs.append(ev["d2s_blob"])
                    except ClearmlModuleError as exc:
                        reader.dep.warnings.append(
                            f"Task {doc['id']}: debug image {ev['url']} not exported: {exc.msg}"
                        )
            lines = b"".join(canonical_json(e) + b"\n" for t in sorted(events) for e in events[t])
            events_blob = self.put_bytes(lines, "events")
        return {
            "name": doc.get("name") or "",
            "project": reader.project_name(doc.get("project")),
            "type": doc.get("type") or "training",
            "status": doc.get("status"),
            "parent": doc.get("parent"),
            "record": record_blob,
            "events": events_blob,
            "event_blobs": sorted(set(event_blobs)),
            "artifacts": self._artifacts(doc),
        }

    def _dataset_entry(self, reader: DeploymentReader, did: str, doc: dict[str, Any]) -> dict[str, Any]:
        state = reader.dep.dataset_states[did]
        arts = {a.get("key"): a for a in (doc.get("execution") or {}).get("artifacts") or []}
        state_blob = self.fetch(
            arts["state"]["uri"], "dataset-state", known_sha256=arts["state"].get("hash") or None
        )
        chunks = []
        for key in sorted(arts):
            if key == "data" or (key or "").startswith("data_"):
                art = arts[key]
                chunks.append(
                    {
                        "artifact": key,
                        "blob": self.fetch(art["uri"], "dataset-chunk", art.get("hash") or None),
                    }
                )
        # The files travel inside the version's own chunk zips, byte-identical to dev's (a site's
        # Dataset.get_local_copy() unpacks them); state.json lists every file with its sha256.
        graph = state.get("dependency_graph") or {}
        record = redact_task(doc, self.redactor) if self.params.get("redact", True) else doc
        return {
            "name": doc.get("name") or "",
            "project": _dataset_user_project(reader.project_name(doc.get("project"))),
            "version": (doc.get("runtime") or {}).get("version"),
            "tags": list(doc.get("tags") or []),
            "parents": list(dict.fromkeys(graph.get(did) or [])),
            "record": self.put_bytes(canonical_json(record), "task-record"),
            "state": state_blob,
            "files": [],
            "chunks": chunks,
        }

    def _serving_entry(self, reader: DeploymentReader) -> dict[str, Any]:
        dep = reader.dep
        svc = dep.serving or {}
        arts = {a.get("key"): a for a in (svc.get("execution") or {}).get("artifacts") or []}
        preprocess: dict[str, Any] = {}
        for ep in dep.endpoints.values():
            key = ep.get("preprocess_artifact")
            if key and key in arts and key not in preprocess:
                art = arts[key]
                preprocess[key] = {
                    "blob": self.fetch(art["uri"], "preprocess", known_sha256=art.get("hash") or None),
                    "filename": _filename(art["uri"]),
                    "hash": art.get("hash"),
                    "type": art.get("type"),
                    "uri": art.get("uri"),
                }
        params = {
            f"{section}/{name}": entry.get("value")
            for section, values in (svc.get("hyperparams") or {}).items()
            for name, entry in (values or {}).items()
        }
        record = redact_task(svc, self.redactor) if self.params.get("redact", True) else svc
        return {
            "id": svc["id"],
            "name": svc.get("name") or "",
            "project": reader.project_name(svc.get("project")),
            "record": self.put_bytes(canonical_json(record), "task-record"),
            "parameters": params,
            "endpoints": dep.endpoints,
            "model_monitoring": dep.serving_configs.get("model_monitoring", {}),
            "canary": dep.serving_configs.get("canary", {}),
            "metric_logging": dep.serving_configs.get("metric_logging", {}),
            "preprocess": preprocess,
        }

    # -- wheels -----------------------------------------------------------------------------------
    def _wheels(self) -> list[dict[str, Any]]:
        """Python wheels for offline site hosts (``pip install --no-index``): files or directories of them."""
        found: list[Path] = []
        for entry in self.params.get("wheels") or []:
            path = Path(entry)
            if path.is_dir():
                found.extend(sorted(path.glob("*.whl")))
            elif path.is_file() and path.suffix == ".whl":
                found.append(path)
            else:
                raise ClearmlModuleError(f"Wheel '{entry}' is neither a .whl file nor a directory of wheels")
        out = []
        for wheel in sorted(set(found), key=lambda p: p.name):
            parts = wheel.name[: -len(".whl")].split("-")
            if len(parts) < 5:
                raise ClearmlModuleError(
                    f"'{wheel.name}' is not a wheel file name (name-version-python-abi-platform.whl)"
                )
            out.append(
                {
                    "name": parts[0].replace("_", "-").lower(),
                    "version": parts[1],
                    "filename": wheel.name,
                    "blob": self.put_file(wheel, "wheel"),
                    "purpose": "site",
                }
            )
        return out

    # -- images -----------------------------------------------------------------------------------
    def _images(self, dep: Any) -> list[dict[str, Any]]:
        """``docker save`` the requested images (and the tasks' base images when asked) into blobs."""
        names = list(self.params.get("images") or [])
        if self.params.get("include_task_images"):
            for task in dep.tasks.values():
                image = (task.get("container") or {}).get("image")
                if image and image not in names:
                    if _image_present(image):
                        names.append(image)
                    else:
                        self._warnings_extra.append(
                            f"Task {task['id']}: base image {image} is not on this host; not exported"
                        )
        if not names:
            return []

        def put_stream(fileobj: Any) -> tuple[str, int]:
            digest = self.writer.add_stream(fileobj, kind="image-layer", media_type="application/x-tar")
            return digest, self.writer.manifest["blobs"][digest]["size"]

        def put_file(path: Any) -> tuple[str, int]:
            return self.put_file(Path(path), "image-layer"), Path(path).stat().st_size

        reused = self._unchanged_images(names)
        if reused is not None:
            return reused
        records = _images.export_images(names, put_file, self.tmpdir, put_stream=put_stream)
        return [{**rec, "name": rec.get("name") or names[0]} for rec in records]

    def _unchanged_images(self, names: list[str]) -> list[dict[str, Any]] | None:
        """The previous bundle's image records and blobs, when the images are the same (no docker save).

        Saving and hashing the serving images (hundreds of MB) dominated an export with nothing new.
        """
        if self.previous is None:
            return None
        try:
            manifest = json.loads((self.dest / bundle.MANIFEST_NAME).read_text(encoding="utf-8"))
            previous = manifest.get("images") or []
            index = manifest.get("blobs") or {}
        except (OSError, ValueError, AttributeError):
            return None
        records = _images.unchanged_records(names, previous)
        if records is None:
            return None
        for rec in records:
            for member in rec.get("members") or []:
                digest, size = member["digest"], member["size"]
                entry = index.get(digest) or {}
                kind = entry.get("kind", "image-layer")
                media = entry.get("media_type", _MEDIA.get(kind, "application/octet-stream"))
                if self.writer.reuse_blob(digest, size, kind=kind, media_type=media):
                    continue
                if not self.previous.has(digest):
                    return None
                if self.put_file(self.previous.path_of(digest), kind) != digest:
                    return None
        return records

    # -- code -----------------------------------------------------------------------------------------
    def _code_entry(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        script = doc.get("script") or {}
        repo = script.get("repository")
        if not repo:
            return None
        entry: dict[str, Any] = {
            "role": "training",
            "task": doc["id"],
            "repository": self.redactor.text(repo, "task", doc["id"], "script.repository"),
            "branch": script.get("branch"),
            "commit": script.get("version_num"),
            "tag": script.get("tag"),
            "entry_point": script.get("entry_point"),
            "working_dir": script.get("working_dir"),
            "bundle": None,
            "diff": None,
            "requirements": None,
            "files": [],
        }
        if script.get("diff"):
            diff = self.redactor.text(script["diff"], "task", doc["id"], "script.diff")
            entry["diff"] = self.put_bytes(diff.encode(), "git-diff")
        reqs = script.get("requirements") or {}
        if reqs.get("pip"):
            entry["requirements"] = self.put_bytes(str(reqs["pip"]).encode(), "requirements")
        commit = script.get("version_num")
        if commit:
            entry["bundle"] = self._git_bundle(repo, commit, doc["id"])
        return entry

    def _git_bundle(self, repo: str, commit: str, task_id: str) -> str | None:
        """A git bundle holding ``commit`` (and its history), or None with a warning when unreachable."""
        mirror = Path(self.tmpdir) / f"git-{task_id}"
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        try:
            subprocess.run(
                ["git", "clone", "--quiet", "--bare", "--no-tags", repo, str(mirror)],
                check=True,
                capture_output=True,
                timeout=300,
                env=env,
            )
            subprocess.run(
                ["git", "-C", str(mirror), "update-ref", "refs/heads/d2s-export", commit],
                check=True,
                capture_output=True,
                env=env,
            )
            out = Path(self.tmpdir) / f"{task_id}.bundle"
            subprocess.run(
                [
                    "git",
                    "-C",
                    str(mirror),
                    "-c",
                    "pack.threads=1",
                    "bundle",
                    "create",
                    "--quiet",
                    str(out),
                    "d2s-export",
                ],
                check=True,
                capture_output=True,
                env=env,
            )
            return self.put_file(out, "git-bundle")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            err = getattr(exc, "stderr", b"") or b""
            self._warnings_extra.append(
                f"Task {task_id}: code repository not exported ({err.decode(errors='replace').strip()[:200] or exc})"
            )
            return None
        finally:
            shutil.rmtree(mirror, ignore_errors=True)


def url_variants(url: str) -> list[str]:
    """Other spellings of a URL whose path has non-ASCII letters: NFC/NFD forms, quoted and unquoted."""
    parts = urllib.parse.urlsplit(url)
    raw = urllib.parse.unquote(parts.path)
    if raw.isascii():
        return []
    out: list[str] = []
    for form in ("NFC", "NFD"):
        text = unicodedata.normalize(form, raw)
        for path in (urllib.parse.quote(text), text, urllib.parse.quote(urllib.parse.quote(text))):
            candidate = urllib.parse.urlunsplit(parts._replace(path=path))
            if candidate != url and candidate not in out:
                out.append(candidate)
    return out


def _image_present(name: str) -> bool:
    try:
        return (
            subprocess.run(["docker", "image", "inspect", name], capture_output=True, check=False).returncode
            == 0
        )
    except OSError:
        return False


def _existing_digest(dest: Path) -> str | None:
    """Content digest of the bundle already at ``dest`` (None when there is none or it is unreadable)."""
    try:
        return bundle.content_digest(json.loads((dest / "manifest.json").read_bytes()))
    except (OSError, ValueError):
        return None


def _dataset_user_project(project_name: str | None) -> str | None:
    """``P/.datasets/N`` → ``P`` (the project a user names in ``Dataset.get``)."""
    if project_name and "/.datasets/" in project_name:
        return project_name.split("/.datasets/", 1)[0]
    return project_name
