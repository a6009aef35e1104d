# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The core of ``clearml_import``: a verified bundle becomes objects on a site's ClearML server.

Private to this collection: not a public API, may change without notice.

Order: verify the whole bundle (nothing is touched before) → name-clash check → projects → datasets,
parents first (state remapped) → training tasks (created, artifacts, output models, input refs, events,
status) → models without a task → the serving service (configuration with site model ids, preprocess
artifacts with the same keys and hashes) → ``import_info.json``.

Idempotence and resume: every object created at the site carries ``d2s-origin:<dev id>`` in its
``system_tags`` from its first call on, and ``d2s-complete`` once every step for it is done. A re-run
maps complete objects and changes nothing; an object left incomplete by a killed run is deleted and
made again, so the end state equals an uninterrupted import.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import (
    ClearmlClient,
    client_from_params,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError

ORIGIN = "d2s-origin:"
BUNDLE_TAG = "d2s-bundle:"
COMPLETE = "d2s-complete"
_HEX32 = re.compile(r"\b[0-9a-f]{32}\b")
# Fields of a task document that tasks.edit accepts and that travel as they are (ids remapped).
_EDIT_FIELDS = ("comment", "script", "hyperparams", "configuration", "container", "runtime")
_EVENT_DROP = ("_id", "id", "@timestamp", "worker", "company", "task", "allow_locking")


def _esc(name: str) -> str:
    return "^" + re.escape(name) + "$"


def remap_ids(value: Any, mapping: dict[str, str]) -> Any:
    """Replace every dev id (32 hex) that ``mapping`` knows, in strings, keys and nested structures."""
    if isinstance(value, str):
        return _HEX32.sub(lambda m: mapping.get(m.group(0), m.group(0)), value)
    if isinstance(value, list):
        return [remap_ids(v, mapping) for v in value]
    if isinstance(value, dict):
        return {remap_ids(k, mapping): remap_ids(v, mapping) for k, v in value.items()}
    return value


def parents_first(versions: dict[str, dict[str, Any]]) -> list[str]:
    """Dataset version ids ordered so that every parent comes before its children (stable by id)."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(vid: str) -> None:
        if state.get(vid) == 2:
            return
        if state.get(vid) == 1:
            raise ClearmlModuleError(f"Dataset lineage has a cycle through {vid}")
        state[vid] = 1
        for parent in versions[vid].get("parents") or []:
            if parent in versions:
                visit(parent)
        state[vid] = 2
        order.append(vid)

    for vid in sorted(versions):
        visit(vid)
    return order


class SiteState:
    """What already exists at the site, found by origin tags."""

    def __init__(self, client: ClearmlClient) -> None:
        self.client = client

    def find_task(self, dev_id: str) -> dict[str, Any] | None:
        found = self.client.call(
            "tasks.get_all",
            {
                "system_tags": [ORIGIN + dev_id],
                "search_hidden": True,
                "only_fields": ["id", "system_tags", "status"],
                # A user's clone of an imported task carries its system tags too: the import's own is the oldest.
                "order_by": ["created"],
            },
        ).get("tasks")
        return found[0] if found else None

    def find_model(self, dev_id: str) -> dict[str, Any] | None:
        found = self.client.call(
            "models.get_all",
            {
                "system_tags": [ORIGIN + dev_id],
                "only_fields": ["id", "system_tags", "uri"],
                "order_by": ["created"],
            },
        ).get("models")
        return found[0] if found else None


class ImportCore:
    """Imports a bundle; ``run()`` returns the module result."""

    def __init__(self, params: dict[str, Any], check_mode: bool = False, diff: bool = False) -> None:
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.path = Path(params["bundle"])
        self.client = client_from_params(params)
        self.site = SiteState(self.client)
        self.map: dict[str, dict[str, str]] = {
            "projects": {},
            "datasets": {},
            "tasks": {},
            "models": {},
            "serving": {},
        }
        self.created: dict[str, list[str]] = {k: [] for k in self.map}
        self.existing: dict[str, list[str]] = {k: [] for k in self.map}
        self.warnings: list[str] = []
        self.updated: list[str] = []
        self.tmp = ""

    # -- helpers -------------------------------------------------------------------------------------
    @property
    def id_map(self) -> dict[str, str]:
        flat: dict[str, str] = {}
        for kind in ("datasets", "tasks", "models", "serving"):
            flat.update(self.map[kind])
        return flat

    def blob(self, digest: str) -> Path:
        return self.path / "blobs" / "sha256" / digest

    def blob_json(self, digest: str) -> Any:
        return json.loads(self.blob(digest).read_bytes())

    def system_tags(self, dev_id: str, dev_tags: Iterable[str] = ()) -> list[str]:
        tags = [t for t in dev_tags if not t.startswith(("d2s-", "archived"))]
        return sorted({*tags, ORIGIN + dev_id, BUNDLE_TAG + self.digest[7:19]})

    def project_id(self, name: str | None, system_tags: list[str] | None = None) -> str | None:
        if not name:
            return None
        if name in self.map["projects"]:
            return self.map["projects"][name]
        found = self.client.call("projects.get_all", {"name": _esc(name), "search_hidden": True}).get(
            "projects"
        )
        if found:
            pid = found[0]["id"]
            self.existing["projects"].append(name)
        else:
            body: dict[str, Any] = {"name": name, "description": "imported by deploy2standalone"}
            if system_tags:
                body["system_tags"] = system_tags
            pid = self.client.call("projects.create", body)["id"]
            self.created["projects"].append(name)
        self.map["projects"][name] = pid
        return pid

    def storage_url(self, object_path: str) -> str:
        """Where an imported file goes: the site's fileserver, or ``storage_uri`` (S3-compatible) when set."""
        base = (self.params.get("storage_uri") or "").rstrip("/")
        if base:
            return f"{base}/{object_path.lstrip('/')}"
        return self.client.files_url(object_path)

    def upload(self, digest: str, object_path: str) -> str:
        url = self.storage_url(object_path)
        self.client.upload(self.blob(digest), url)
        return url

    def _claim(self, kind: str, dev_id: str, found: dict[str, Any] | None) -> str | None:
        """An existing complete object is mapped; an incomplete one (a killed run) is removed."""
        if found is None:
            return None
        if COMPLETE in (found.get("system_tags") or []):
            self.map[kind][dev_id] = found["id"]
            self.existing[kind].append(dev_id)
            return found["id"]
        if kind == "models":
            self.client.call("models.delete", {"model": found["id"], "force": True})
        else:
            self.client.call("tasks.delete", {"task": found["id"], "force": True})
        return None

    def _complete_task(self, site_id: str) -> None:
        doc = self.client.call("tasks.get_by_id", {"task": site_id})["task"]
        tags = sorted({*(doc.get("system_tags") or []), COMPLETE})
        self.client.call("tasks.edit", {"task": site_id, "force": True, "system_tags": tags})

    # -- the run -------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        if self.params.get("plan_manifest"):
            self._load_plan_manifest(self.params["plan_manifest"])
        else:
            verify = bundle.verify_bundle(
                self.path,
                require_signature=self.params.get("require_signature", False),
                public_key=self.params.get("public_key"),
            )
            self.digest = verify["content_digest"]
            control = bundle.load_bundle(self.path)
            self.manifest = control.manifest.data
        self.tmp = tempfile.mkdtemp(prefix="d2s-import-")
        try:
            plan = self._plan()
            pending = bool(plan["to_create"] or plan["to_update"])
            if self.check_mode or not pending:
                return self._result(plan, changed=pending)
            self._clash_check(plan)
            self._import_all()
            info = self._write_import_info()
            return self._result(plan, changed=True, import_info=info)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _load_plan_manifest(self, data: Any) -> None:
        """Check mode against a would-be bundle: the manifest (as clearml_export's check run keeps it at
        ``<dest>.plan/manifest.json``) instead of the bundle at ``bundle``; the site only answers queries."""
        if not self.check_mode:
            raise ClearmlModuleError(
                "plan_manifest is for check mode only (a real import reads the verified bundle at 'bundle')"
            )
        if isinstance(data, str):
            data = bundle.load_manifest(data.encode()).data
        manifest = bundle.validate_manifest(data)
        self.digest = manifest.content_digest
        self.manifest = manifest.data

    def _plan(self) -> dict[str, Any]:
        """What exists (complete) and what would be created, per kind, by dev id."""
        m = self.manifest
        plan: dict[str, Any] = {"existing": {}, "to_create": {}, "to_update": {}}

        def note(kind: str, dev_id: str, found: dict[str, Any] | None) -> None:
            if found and COMPLETE in (found.get("system_tags") or []):
                plan["existing"].setdefault(kind, {})[dev_id] = found["id"]
                self.map[kind][dev_id] = found["id"]
            else:
                plan["to_create"].setdefault(kind, []).append(dev_id)

        for dev_id in m["dataset_versions"]:
            note("datasets", dev_id, self.site.find_task(dev_id))
        for dev_id in m["task_records"]:
            note("tasks", dev_id, self.site.find_task(dev_id))
        for dev_id in m["models"]:
            note("models", dev_id, self.site.find_model(dev_id))
        if m.get("serving"):
            found = self.site.find_task(m["serving"]["id"])
            note("serving", m["serving"]["id"], found)
            tags = (found or {}).get("system_tags") or []
            if COMPLETE in tags and BUNDLE_TAG + self.digest[7:19] not in tags:
                # The serving service follows the newest bundle: its endpoints may have changed in dev.
                plan["to_update"] = {"serving": [m["serving"]["id"]]}
        return plan

    def _clash_check(self, plan: dict[str, Any]) -> None:
        """Name clashes: a site object with a dev object's name and project but another origin."""
        policy = self.params.get("on_clash", "fail")
        clashes = []
        for dev_id in plan["to_create"].get("datasets", []):
            v = self.manifest["dataset_versions"][dev_id]
            clashes.extend(
                self._same_named_tasks(
                    v["name"], f"{v['project']}/.datasets/{v['name']}", dev_id, v.get("version")
                )
            )
        for dev_id in plan["to_create"].get("tasks", []):
            rec = self.manifest["task_records"][dev_id]
            clashes.extend(self._same_named_tasks(rec["name"], rec.get("project"), dev_id, None))
        if clashes and policy == "fail":
            raise ClearmlModuleError(
                "Name clash at the site (on_clash=fail): "
                + "; ".join(clashes[:10])
                + ". Nothing was imported.",
                clashes=clashes,
            )
        self.warnings.extend(f"name clash, imported alongside (on_clash=coexist): {c}" for c in clashes)

    def _same_named_tasks(
        self, name: str, project: str | None, dev_id: str, version: str | None
    ) -> list[str]:
        if not project:
            return []
        projects = self.client.call("projects.get_all", {"name": _esc(project), "search_hidden": True}).get(
            "projects"
        )
        if not projects:
            return []
        tasks = (
            self.client.call(
                "tasks.get_all",
                {
                    "name": _esc(name),
                    "project": [p["id"] for p in projects],
                    "search_hidden": True,
                    "only_fields": ["id", "system_tags", "runtime"],
                },
            ).get("tasks")
            or []
        )
        out = []
        for t in tasks:
            tags = t.get("system_tags") or []
            if any(tag.startswith(ORIGIN) for tag in tags):
                continue
            if version is not None and (t.get("runtime") or {}).get("version") != version:
                continue
            out.append(
                f"'{project}/{name}'"
                + (f" version {version}" if version else "")
                + f" exists as {t['id']} (dev {dev_id})"
            )
        return out

    def _import_all(self) -> None:
        m = self.manifest
        for dev_id in parents_first(m["dataset_versions"]):
            self._import_dataset(dev_id, m["dataset_versions"][dev_id])
        for dev_id, rec in m["task_records"].items():
            self._import_task(dev_id, rec)
        for dev_id, model in m["models"].items():
            if dev_id not in self.map["models"]:
                self._import_model(dev_id, model, site_task=None)
        if m.get("serving"):
            self._import_serving(m["serving"])

    # -- datasets ------------------------------------------------------------------------------------
    def _import_dataset(self, dev_id: str, version: dict[str, Any]) -> None:
        if self._claim("datasets", dev_id, self.site.find_task(dev_id)):
            return
        record = self._dataset_record(dev_id)
        project = version.get("project") or ""
        ds_project = f"{project}/.datasets/{version['name']}" if project else f".datasets/{version['name']}"
        if project:
            self.project_id(project)
            self.project_id(f"{project}/.datasets", ["hidden"])
        pid = self.project_id(ds_project, ["hidden", "dataset"])
        site_id = self._create_task(dev_id, record, pid)
        self.map["datasets"][dev_id] = site_id
        ids = self.id_map
        # state.json: every id remapped (own id, parents, file entries, graph, chunk lookup)
        state = remap_ids(self.blob_json(version["state"]), ids)
        state_path = Path(self.tmp) / "state.json"
        state_path.write_text(json.dumps(state, indent=4, sort_keys=True))
        base = f"{ds_project}/{record['name']}.{site_id}/artifacts"
        artifacts = []
        for art in record.get("execution", {}).get("artifacts") or []:
            key = art.get("key")
            new = {k: v for k, v in art.items() if k not in ("uri",)}
            if key == "state":
                url = self.storage_url(f"{base}/state/state.json")
                self.client.upload(state_path, url)
                new["hash"] = bundle.hash_file(state_path)[0]
                new["content_size"] = state_path.stat().st_size
            else:
                chunk = next((c for c in version.get("chunks") or [] if c["artifact"] == key), None)
                if chunk is None:
                    continue
                fname = (art.get("uri") or "").rsplit("/", 1)[-1].replace(
                    dev_id, site_id
                ) or f"dataset.{site_id}.zip"
                url = self.upload(chunk["blob"], f"{base}/{key}/{_unquote(fname)}")
            new["uri"] = url
            artifacts.append(new)
        if artifacts:
            self.client.call(
                "tasks.add_or_update_artifacts", {"task": site_id, "artifacts": artifacts, "force": True}
            )
        self._edit_task(
            site_id, record, ids, output_dest=self.params.get("storage_uri") or self.client.files_host
        )
        self._restore_status(site_id, record)
        self._complete_task(site_id)
        self.created["datasets"].append(dev_id)

    def _dataset_record(self, dev_id: str) -> dict[str, Any]:
        """The dataset's task document: the bundle stores it among task records or builds it from the state."""
        version = self.manifest["dataset_versions"][dev_id]
        record = version.get("record")
        if record:
            return self.blob_json(record)
        # Format 1.0 keeps no dataset task document: rebuild what Dataset.get needs.
        return {
            "id": dev_id,
            "name": version["name"],
            "type": "data_processing",
            "status": "published" if "published" in (version.get("tags") or []) else "completed",
            "system_tags": ["dataset"],
            "tags": version.get("tags") or [],
            "runtime": {
                "version": version.get("version"),
                "orig_dataset_name": version["name"],
                "orig_dataset_id": dev_id,
            },
            "execution": {
                "artifacts": [{"key": "state", "type": "dict", "mode": "output"}]
                + [
                    {"key": c["artifact"], "type": "custom", "mode": "output"}
                    for c in version.get("chunks") or []
                ]
            },
        }

    # -- tasks ---------------------------------------------------------------------------------------
    def _create_task(self, dev_id: str, record: dict[str, Any], project_id: str | None) -> str:
        body = {
            "name": record.get("name") or dev_id,
            "type": record.get("type") or "training",
            "system_tags": self.system_tags(dev_id, record.get("system_tags") or []),
            "tags": list(record.get("tags") or []),
            "comment": record.get("comment") or "",
        }
        if project_id:
            body["project"] = project_id
        return self.client.call("tasks.create", body)["id"]

    def _edit_task(
        self, site_id: str, record: dict[str, Any], ids: dict[str, str], output_dest: str | None = None
    ) -> None:
        body: dict[str, Any] = {"task": site_id, "force": True}
        for key in _EDIT_FIELDS:
            if key in record and record[key] is not None:
                body[key] = remap_ids(record[key], ids)
        execution = dict(record.get("execution") or {})
        execution.pop("artifacts", None)
        execution.pop("model", None)
        if execution:
            body["execution"] = remap_ids(execution, ids)
        if record.get("parent") and record["parent"] in ids:
            body["parent"] = ids[record["parent"]]
        if output_dest:
            body["output_dest"] = output_dest
        self.client.call("tasks.edit", body)

    def _restore_status(self, site_id: str, record: dict[str, Any]) -> None:
        """Walk the site task to the dev status, ending with dev's status reason and message."""
        status = record.get("status") or "created"
        if status in ("created", "queued"):
            return
        why = {
            "status_reason": record.get("status_reason") or "",
            "status_message": record.get("status_message") or "",
        }
        self.client.call("tasks.started", {"task": site_id, "force": True})
        if status in ("completed", "published", "closed"):
            final = why if status == "completed" else {}
            self.client.call("tasks.completed", {"task": site_id, "force": True, "publish": False, **final})
        elif status == "stopped":
            self.client.call("tasks.stopped", {"task": site_id, "force": True, **why})
        elif status == "failed":
            self.client.call("tasks.failed", {"task": site_id, "force": True, **why})
        if status == "published":
            self.client.call("tasks.publish", {"task": site_id, "force": True, "publish_model": False, **why})
        elif status == "closed":
            self.client.call("tasks.close", {"task": site_id, "force": True, **why})

    def _import_task(self, dev_id: str, rec: dict[str, Any]) -> None:
        if self._claim("tasks", dev_id, self.site.find_task(dev_id)):
            self._map_task_models(dev_id)
            return
        record = self.blob_json(rec["record"])
        pid = self.project_id(rec.get("project"))
        site_id = self._create_task(dev_id, record, pid)
        self.map["tasks"][dev_id] = site_id
        folder = f"{rec.get('project') or 'imported'}/{record.get('name')}.{site_id}"
        # output models first, so that every reference of the task can be remapped. A task and its
        # output models complete together: models left by a killed run point at the removed task.
        for model_id, model in self.manifest["models"].items():
            if model.get("task") != dev_id:
                continue
            stale = self.site.find_model(model_id)
            if stale:
                self.client.call("models.delete", {"model": stale["id"], "force": True})
                self.map["models"].pop(model_id, None)
            self._import_model(model_id, model, site_task=site_id, folder=folder)
        ids = self.id_map
        self._edit_task(site_id, record, ids, output_dest=self.client.files_host)
        artifacts = []
        for art in rec.get("artifacts") or []:
            doc = next(
                (
                    a
                    for a in (record.get("execution") or {}).get("artifacts") or []
                    if a.get("key") == art["key"]
                ),
                {},
            )
            new = {k: v for k, v in doc.items() if k != "uri"} or {
                "key": art["key"],
                "type": art.get("type") or "custom",
            }
            if art.get("blob"):
                new["uri"] = self.upload(
                    art["blob"],
                    f"{folder}/artifacts/{art['key']}/{_unquote(art.get('filename') or art['key'])}",
                )
            artifacts.append(new)
        if artifacts:
            self.client.call(
                "tasks.add_or_update_artifacts", {"task": site_id, "artifacts": artifacts, "force": True}
            )
        models = record.get("models") or {}
        edit_models = {
            kind: [
                {**ref, "model": ids.get(ref.get("model"), ref.get("model"))}
                for ref in models.get(kind) or []
                if ids.get(ref.get("model"))
            ]
            for kind in ("input", "output")
        }
        if any(edit_models.values()):
            self.client.call("tasks.edit", {"task": site_id, "force": True, "models": edit_models})
        if rec.get("events"):
            self._replay_events(site_id, rec["events"], folder)
        self._restore_status(site_id, record)
        self._complete_task(site_id)
        self.created["tasks"].append(dev_id)

    def _map_task_models(self, dev_id: str) -> None:
        for model_id, model in self.manifest["models"].items():
            if model.get("task") == dev_id and model_id not in self.map["models"]:
                found = self.site.find_model(model_id)
                if found:
                    self.map["models"][model_id] = found["id"]

    def _replay_events(self, site_id: str, digest: str, folder: str) -> None:
        batch: list[str] = []
        ids = self.id_map
        for line in self.blob(digest).read_bytes().splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            blob = event.pop("d2s_blob", None)
            if blob and event.get("url"):
                name = _unquote(event["url"].rsplit("/", 1)[-1])
                event["url"] = self.upload(
                    blob,
                    f"{folder}/metrics/{event.get('metric', 'image')}/{event.get('variant', 'image')}/{name}",
                )
            for key in _EVENT_DROP:
                event.pop(key, None)
            event["task"] = site_id
            batch.append(json.dumps(remap_ids(event, ids)))
            if len(batch) >= 500:
                self._send_events(batch)
                batch = []
        if batch:
            self._send_events(batch)

    def _send_events(self, lines: list[str]) -> None:
        data = self.client.call_lines("events.add_batch", [json.loads(line) for line in lines])
        if data and data.get("errors"):
            raise ClearmlModuleError(
                f"The site server refused {data['errors']} event(s): {data.get('errors_info')}"
            )

    # -- models --------------------------------------------------------------------------------------
    def _import_model(
        self, dev_id: str, model: dict[str, Any], site_task: str | None, folder: str | None = None
    ) -> None:
        if self._claim("models", dev_id, self.site.find_model(dev_id)):
            return
        pid = self.project_id(model.get("project"))
        folder = folder or f"{model.get('project') or 'imported'}/models/{dev_id}"
        (file_entry,) = model["files"][:1]
        body: dict[str, Any] = {
            "name": model.get("name") or dev_id,
            "uri": "file:///uploading_file",
            "framework": model.get("framework"),
            "labels": model.get("labels") or {},
            "tags": model.get("tags") or [],
            "system_tags": self.system_tags(dev_id, model.get("system_tags") or []),
            "comment": remap_ids(model.get("comment") or "", self.id_map),
            "ready": False,
        }
        if model.get("design") is not None:
            body["design"] = {"design": model["design"]}
        if pid:
            body["project"] = pid
        if site_task:
            body["task"] = site_task
        site_id = self.client.call("models.create", body)["id"]
        self.map["models"][dev_id] = site_id
        url = self.upload(file_entry["blob"], f"{folder}/models/{_unquote(file_entry['path'])}")
        edit: dict[str, Any] = {"model": site_id, "uri": url}
        if model.get("parent") and model["parent"] in self.map["models"]:
            edit["parent"] = self.map["models"][model["parent"]]
        self.client.call("models.edit", edit)
        if model.get("metadata"):
            self.client.call(
                "models.add_or_update_metadata",
                {"model": site_id, "metadata": list(model["metadata"].values())},
            )
        if model.get("ready"):
            self.client.call(
                "models.set_ready", {"model": site_id, "publish_task": False, "force_publish_task": False}
            )
        tags = sorted({*body["system_tags"], COMPLETE})
        self.client.call("models.edit", {"model": site_id, "system_tags": tags})
        self.created["models"].append(dev_id)

    # -- serving -------------------------------------------------------------------------------------
    def _import_serving(self, serving: dict[str, Any]) -> None:
        dev_id = serving["id"]
        site_id = self._claim("serving", dev_id, self.site.find_task(dev_id))
        if site_id:
            tags = self.client.call("tasks.get_by_id", {"task": site_id})["task"].get("system_tags") or []
            if BUNDLE_TAG + self.digest[7:19] not in tags:
                self._update_serving(serving, site_id)
            return
        record = (
            self.blob_json(serving["record"])
            if serving.get("record")
            else {"name": serving["name"], "type": "service"}
        )
        pid = self.project_id(serving.get("project"))
        site_id = self._create_task(dev_id, record, pid)
        self.map["serving"][dev_id] = site_id
        ids = self.id_map
        self._edit_task(site_id, record, ids)
        folder = f"{serving.get('project') or 'DevOps'}/{record.get('name')}.{site_id}"
        artifacts = []
        docs = {a.get("key"): a for a in (record.get("execution") or {}).get("artifacts") or []}
        order = {key: i for i, key in enumerate(docs)}
        for key, pre in sorted(
            (serving.get("preprocess") or {}).items(), key=lambda kv: order.get(kv[0], len(order))
        ):
            new = {
                k: v
                for k, v in docs.get(key, {"key": key, "type": pre.get("type") or "custom"}).items()
                if k != "uri"
            }
            new["uri"] = self.upload(pre["blob"], f"{folder}/artifacts/{key}/{_unquote(pre['filename'])}")
            new["hash"] = pre.get("hash") or new.get("hash")
            artifacts.append(new)
        if artifacts:
            self.client.call(
                "tasks.add_or_update_artifacts", {"task": site_id, "artifacts": artifacts, "force": True}
            )
        inputs = [
            {**ref, "model": ids[ref["model"]]}
            for ref in (record.get("models") or {}).get("input") or []
            if ref.get("model") in ids
        ]
        if inputs:
            self.client.call(
                "tasks.edit", {"task": site_id, "force": True, "models": {"input": inputs, "output": []}}
            )
        self._complete_task(site_id)
        self.created["serving"].append(dev_id)

    def _update_serving(self, serving: dict[str, Any], site_id: str) -> None:
        """Bring an imported serving service to this bundle's state: configuration objects (site-written
        ones such as ``model_monitoring_eps`` are kept), hyperparameters, preprocess artifacts, input models."""
        record = self.blob_json(serving["record"])
        ids = self.id_map
        current = self.client.call("tasks.get_by_id", {"task": site_id})["task"]
        configuration = dict(current.get("configuration") or {})
        configuration.update(remap_ids(record.get("configuration") or {}, ids))
        self.client.call(
            "tasks.edit",
            {
                "task": site_id,
                "force": True,
                "configuration": configuration,
                "hyperparams": remap_ids(record.get("hyperparams") or {}, ids),
            },
        )
        folder = f"{serving.get('project') or 'DevOps'}/{record.get('name')}.{site_id}"
        have = list((current.get("execution") or {}).get("artifacts") or [])
        docs = {a.get("key"): a for a in (record.get("execution") or {}).get("artifacts") or []}
        order = {key: i for i, key in enumerate(docs)}
        wanted = sorted(serving.get("preprocess") or {}, key=lambda k: order.get(k, len(order)))
        have_keys = [a.get("key") for a in have if a.get("key") in docs or a.get("key") in wanted]
        same = have_keys == wanted and all(
            next(a for a in have if a.get("key") == k).get("hash") == serving["preprocess"][k].get("hash")
            for k in wanted
        )
        if not same:
            # Re-add every preprocess artifact in dev's order (the server appends new keys at the end).
            if have_keys:
                self.client.call(
                    "tasks.delete_artifacts",
                    {
                        "task": site_id,
                        "artifacts": [{"key": k, "mode": "output"} for k in have_keys],
                        "force": True,
                    },
                )
            artifacts = []
            for key in wanted:
                pre = serving["preprocess"][key]
                new = {
                    k: v
                    for k, v in docs.get(key, {"key": key, "type": pre.get("type") or "custom"}).items()
                    if k != "uri"
                }
                new["uri"] = self.upload(pre["blob"], f"{folder}/artifacts/{key}/{_unquote(pre['filename'])}")
                new["hash"] = pre.get("hash") or new.get("hash")
                artifacts.append(new)
            self.client.call(
                "tasks.add_or_update_artifacts", {"task": site_id, "artifacts": artifacts, "force": True}
            )
        inputs = [
            {**ref, "model": ids[ref["model"]]}
            for ref in (record.get("models") or {}).get("input") or []
            if ref.get("model") in ids
        ]
        self.client.call(
            "tasks.edit", {"task": site_id, "force": True, "models": {"input": inputs, "output": []}}
        )
        tags = [t for t in current.get("system_tags") or [] if not t.startswith(BUNDLE_TAG)]
        self.client.call(
            "tasks.edit",
            {"task": site_id, "force": True, "system_tags": sorted({*tags, BUNDLE_TAG + self.digest[7:19]})},
        )
        self.updated.append(serving["id"])

    # -- result --------------------------------------------------------------------------------------
    def _write_import_info(self) -> dict[str, Any]:
        info = {
            "bundle_digest": self.digest,
            "site": self.params.get("site_name"),
            "site_api_host": self.client.api_host,
            "imported_on": datetime.now(UTC).isoformat(),
            "map": {k: dict(sorted(v.items())) for k, v in self.map.items() if k != "projects"},
        }
        dest = self.params.get("import_info_path")
        if dest:
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(str(dest) + ".tmp")
            tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, dest)
        return info

    def _result(
        self, plan: dict[str, Any], changed: bool, import_info: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        id_map = {k: dict(sorted(v.items())) for k, v in self.map.items() if k != "projects"}
        result: dict[str, Any] = {
            "changed": changed,
            "bundle_digest": self.digest,
            "id_map": id_map,
            "created": {k: len(v) for k, v in plan["to_create"].items()},
            "existing": {k: len(v) for k, v in plan["existing"].items()},
            "updated": {k: len(v) for k, v in plan["to_update"].items()},
            "notes": self.warnings,
        }
        if import_info is not None:
            result["import_info"] = import_info
        if self.check_mode:
            result["plan"] = {
                "to_create": plan["to_create"],
                "to_update": plan["to_update"],
                "existing": {k: sorted(v) for k, v in plan["existing"].items()},
            }
        if self.diff:
            before = {k: dict(sorted(v.items())) for k, v in plan["existing"].items()}
            result["diff"] = {
                "before": json.dumps(before, indent=2, sort_keys=True) + "\n",
                "after": json.dumps(
                    id_map if not self.check_mode else {**before, "to_create": plan["to_create"]},
                    indent=2,
                    sort_keys=True,
                )
                + "\n",
            }
        return result


def _unquote(name: str) -> str:
    return urllib.parse.unquote(name)
