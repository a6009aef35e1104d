# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The core of ``dataset_sync``: sync-back, what sites made brought home to dev.

Private to this collection: not a public API, may change without notice.

The same verified bundle format as the dev → site direction, in reverse:

1. **select** at the site (``SourceIndex``): finalized dataset versions and completed training tasks
   that were made at the site. An object the site's import made carries ``d2s-origin:<dev id>``; a
   task cloned from it carries the same system tags (ClearML copies them), so per origin only the
   first-created object counts as dev's: the import's own. Those are never sent; they are *known*
   ({site id: dev id}), as are site objects dev already has (online mode asks dev for
   ``d2s-origin:<site id>``);
2. **export** them (``_sync_export.SyncExportCore``: ExportCore's downloads, redaction, checksums,
   signature), references to known objects written as dev ids;
3. **import** at dev (``_sync_import.SyncImportCore``: ImportCore's verification, origin tags, remapping,
   events, status and resume), with the site's tags, placement and the dataset version policy.

Modes: ``online`` does 1-3 on one host that reaches both servers; ``export`` (at the site) writes the
bundle for a carried disk; ``import`` (at dev) reads it. ``sync_info.json`` records at the site what was
sent (and, online, the dev ids); ``import_info.json`` records at dev what came from which site.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import (
    ClearmlClient,
    client_from_params,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import (
    CLEARML_COMMON_ARGS,
    ClearmlModuleError,
    generate_argspec,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._deployment import SERVING_TAG
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._import import ORIGIN
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._sync_export import SyncExportCore
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._sync_import import (
    SyncImportCore,
    earliest,
    find_by_origin,
)

DONE = ("completed", "published")
KINDS = ("datasets", "tasks", "models")
_CONNECTION = tuple(CLEARML_COMMON_ARGS)
_REQUIRED_CONNECTION = ("api_host", "access_key", "secret_key")


def sync_argument_spec() -> dict[str, Any]:
    """The module's argument spec (also used by the periodic job's entry point, ``_sync_job``)."""
    spec: dict[str, Any] = {}
    for prefix in ("source_", "dest_"):
        for name, opts in generate_argspec(prefix).items():
            spec[name] = {k: v for k, v in opts.items() if k != "required"}  # required per mode
    spec.update(
        mode={"type": "str", "choices": ["online", "export", "import"], "default": "online"},
        site_name={"type": "str", "required": True},
        bundle={"type": "path"},
        include={
            "type": "list",
            "elements": "str",
            "choices": ["datasets", "tasks"],
            "default": ["datasets", "tasks"],
        },
        projects={"type": "list", "elements": "str", "default": []},
        tags={"type": "list", "elements": "str", "default": []},
        task_types={"type": "list", "elements": "str", "default": ["training"]},
        new_dataset_project={"type": "str", "default": "{site}/{project}"},
        promote={"type": "bool", "default": False},
        on_conflict={"type": "str", "choices": ["branch", "fail", "promote"], "default": "branch"},
        include_events={"type": "bool", "default": True},
        redact_patterns={"type": "list", "elements": "str", "default": [], "no_log": False},
        signing_key={"type": "path", "no_log": False},
        require_signature={"type": "bool", "default": False},
        public_key={"type": "list", "elements": "str", "no_log": False},
        sync_info_path={"type": "path"},
        import_info_path={"type": "path"},
    )
    return spec


def _required(prefix: str) -> tuple[str, ...]:
    return tuple(prefix + n for n in _REQUIRED_CONNECTION)


SYNC_REQUIRED_IF: list[tuple[Any, ...]] = [
    ("mode", "online", _required("source_") + _required("dest_")),
    ("mode", "export", (*_required("source_"), "bundle")),
    ("mode", "import", (*_required("dest_"), "bundle")),
    ("require_signature", True, ("public_key",)),
]


SYNC_REQUIRED_BY: dict[str, tuple[str, ...]] = {
    "source_api_host": ("source_access_key", "source_secret_key"),
    "dest_api_host": ("dest_access_key", "dest_secret_key"),
}


def _unprefixed(params: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {name: params.get(prefix + name) for name in _CONNECTION}


class SourceIndex:
    """Every task and model at the source (site) server, split into dev's and the site's own."""

    def __init__(
        self, tasks: list[dict[str, Any]], models: list[dict[str, Any]], project_names: dict[str, str]
    ) -> None:
        self.tasks = tasks
        self.models = models
        self.project_names = project_names
        self.from_dev: dict[str, str] = {}  # site id → dev id: what an import made
        self.copies: list[str] = []  # site objects with an origin tag the import did not make (clones)
        for docs in (self.tasks, self.models):
            groups: dict[str, list[dict[str, Any]]] = {}
            for doc in docs:
                for tag in doc.get("system_tags") or []:
                    if tag.startswith(ORIGIN):
                        groups.setdefault(tag[len(ORIGIN) :], []).append(doc)
            for dev_id, group in groups.items():
                first = earliest(group)
                if first is None:
                    continue
                self.from_dev[first["id"]] = dev_id
                self.copies += [d["id"] for d in group if d["id"] != first["id"]]

    @classmethod
    def read(cls, client: ClearmlClient) -> SourceIndex:
        """Every task (hidden included), model and project name of the server."""
        tasks = client.get_all(
            "tasks.get_all",
            "tasks",
            {
                "search_hidden": True,
                "only_fields": ["id", "name", "type", "status", "system_tags", "tags", "project", "created"],
            },
        )
        models = client.get_all(
            "models.get_all",
            "models",
            {"only_fields": ["id", "name", "system_tags", "tags", "project", "created", "task"]},
        )
        projects = client.get_all(
            "projects.get_all", "projects", {"search_hidden": True, "only_fields": ["id", "name"]}
        )
        return cls(tasks, models, {p["id"]: p["name"] for p in projects})

    def own_ids(self) -> dict[str, list[str]]:
        """Ids of every object the site made (dev's left out), per kind."""
        own_tasks = [t["id"] for t in self.tasks if t["id"] not in self.from_dev]
        own_models = [m["id"] for m in self.models if m["id"] not in self.from_dev]
        return {"tasks": own_tasks, "models": own_models}

    def _project(self, doc: dict[str, Any]) -> str:
        name = self.project_names.get(doc.get("project") or "", "")
        return name.split("/.datasets/", 1)[0] if "/.datasets/" in name else name

    def select(self, params: dict[str, Any], exclude: set[str]) -> dict[str, list[str]]:
        """The site-made objects to send: finalized dataset versions and done tasks of ``task_types``,
        filtered by ``projects`` (globs) and ``tags`` (any), minus ``exclude`` (what dev has)."""
        include = params.get("include") or ["datasets", "tasks"]
        patterns = params.get("projects") or []
        tags = set(params.get("tags") or [])
        types = set(params.get("task_types") or ["training"])
        out: dict[str, list[str]] = {"datasets": [], "tasks": []}
        for doc in self.tasks:
            system = set(doc.get("system_tags") or [])
            if doc["id"] in self.from_dev or doc["id"] in exclude or "archived" in system:
                continue
            if doc.get("status") not in DONE:
                continue
            if patterns and not any(fnmatch.fnmatchcase(self._project(doc), p) for p in patterns):
                continue
            if tags and not tags & set(doc.get("tags") or []):
                continue
            if "dataset" in system and doc.get("type") == "data_processing":
                if "datasets" in include:
                    out["datasets"].append(doc["id"])
            elif doc.get("type") in types and SERVING_TAG not in system and "tasks" in include:
                out["tasks"].append(doc["id"])
        return out


def at_dest(dest: ClearmlClient, own: dict[str, list[str]]) -> dict[str, str]:
    """{site id: dev id} of the site's objects that a sync already brought to dev (complete)."""
    found: dict[str, str] = {}
    for kind in ("tasks", "models"):
        for origin, doc in find_by_origin(dest, kind, own[kind]).items():
            if "d2s-complete" in (doc.get("system_tags") or []):
                found[origin] = doc["id"]
    return found


def _write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, dest)


def _read_json(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_bundle(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a sync-back bundle sends (reference entries left out): per kind, site id → summary."""
    datasets = {
        did: {"name": v["name"], "project": v.get("project"), "version": v.get("version")}
        for did, v in manifest["dataset_versions"].items()
        if not (v.get("record") is None and not v.get("files") and not v.get("chunks"))
    }
    return {
        "datasets": datasets,
        "tasks": {
            tid: {"name": r["name"], "project": r.get("project")}
            for tid, r in manifest["task_records"].items()
        },
        "models": {mid: {"name": m["name"], "task": m.get("task")} for mid, m in manifest["models"].items()},
    }


class SyncCore:
    """Runs one sync-back in the requested mode; ``run()`` returns the module result."""

    def __init__(self, params: dict[str, Any], check_mode: bool = False, diff: bool = False) -> None:
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.site = params["site_name"]
        self.warnings: list[str] = []

    # -- pieces --------------------------------------------------------------------------------------
    def _export_params(self, dest: Path) -> dict[str, Any]:
        return {
            **_unprefixed(self.params, "source_"),
            "dest": str(dest),
            "include_events": self.params.get("include_events", True),
            "redact": True,
            "redact_patterns": self.params.get("redact_patterns") or [],
            "signing_key": self.params.get("signing_key"),
        }

    def _import_params(self, bundle: Path) -> dict[str, Any]:
        p = self.params
        return {
            **_unprefixed(p, "dest_"),
            "bundle": str(bundle),
            "site_name": self.site,
            "import_info_path": p.get("import_info_path"),
            "require_signature": p.get("require_signature", False),
            "public_key": p.get("public_key"),
            "new_dataset_project": p.get("new_dataset_project"),
            "promote": p.get("promote", False),
            "on_conflict": p.get("on_conflict", "branch"),
        }

    def _select(
        self, dest: ClearmlClient | None
    ) -> tuple[SourceIndex, dict[str, list[str]], dict[str, str], dict[str, str]]:
        source = client_from_params(self.params, "source_")
        index = SourceIndex.read(source)
        already = at_dest(dest, index.own_ids()) if dest is not None else {}
        selection = index.select(self.params, exclude=set(already))
        known = {**index.from_dev, **already}
        return index, selection, known, already

    def _export(
        self, dest: Path, selection: dict[str, list[str]], known: dict[str, str], check: bool
    ) -> tuple[SyncExportCore, dict[str, Any]]:
        core = SyncExportCore(
            self._export_params(dest), selection["datasets"], selection["tasks"], known, check_mode=check
        )
        res = core.run()
        self.warnings += list(res.get("warnings") or res.get("notes") or [])
        return core, res

    def _import(self, bundle: Path, check: bool) -> tuple[SyncImportCore, dict[str, Any]]:
        core = SyncImportCore(self._import_params(bundle), check_mode=check, diff=self.diff)
        res = core.run()
        self.warnings += list(res.get("warnings") or res.get("notes") or [])
        self.warnings += [f"reference to {ref} (not at dev) dropped" for ref in core.dropped]
        return core, res

    # -- modes ---------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        mode = self.params.get("mode") or "online"
        if mode == "import":
            return self._run_import()
        if mode == "export":
            return self._run_export()
        return self._run_online()

    def _base(self, mode: str, changed: bool) -> dict[str, Any]:
        return {"changed": changed, "mode": mode, "site_name": self.site, "warnings": self.warnings}

    def _run_online(self) -> dict[str, Any]:
        dest = client_from_params(self.params, "dest_")
        index, selection, known, already = self._select(dest)
        result = self._base("online", False)
        result.update(
            skipped={"from_dev": len(index.from_dev), "already_at_dest": dict(sorted(already.items()))},
            selected={k: len(v) for k, v in selection.items()},
        )
        if not any(selection.values()):
            result.update(
                sent={k: {} for k in KINDS}, id_map={k: {} for k in KINDS}, datasets=[], bundle=None
            )
            if self.diff:
                result["diff"] = {"before": {}, "after": {}}
            return result
        keep = self.params.get("bundle")
        tmp = tempfile.mkdtemp(prefix="d2s-sync-")
        try:
            # check mode builds the bundle in a scratch directory (the site is only read) and plans the
            # import against dev (only read); a real run keeps the bundle at ``bundle`` when asked
            target = Path(keep) if keep and not self.check_mode else Path(tmp) / "bundle"
            if keep and not self.check_mode:
                target.parent.mkdir(parents=True, exist_ok=True)
            _exporter, exported = self._export(target, selection, known, check=False)
            importer, imported = self._import(target, check=self.check_mode)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        manifest = importer.manifest
        changed = bool(imported.get("changed"))
        result.update(
            changed=changed,
            bundle=str(target) if keep and not self.check_mode else None,
            bundle_digest=exported["digest"],
            sent=describe_bundle(manifest),
            id_map=importer.new_map(),
            created={k: v for k, v in (imported.get("created") or {}).items() if k in KINDS},
            datasets=importer.decisions,
            redactions=exported.get("redactions") or [],
        )
        if "import_info" in imported:
            result["import_info"] = imported["import_info"]
        if changed and not self.check_mode:
            result["sync_info"] = self._write_sync_info(
                "online", exported["digest"], importer.new_map(), dest.api_host
            )
        if self.diff:
            result["diff"] = {
                "before": {"at_dest": {k: {} for k in KINDS}},
                "after": {"at_dest": importer.new_map() if not self.check_mode else result["sent"]},
            }
        return result

    def _run_export(self) -> dict[str, Any]:
        _index, selection, known, _already = self._select(None)
        dest = Path(self.params["bundle"])
        if not dest.parent.is_dir():
            raise ClearmlModuleError(f"The parent directory of bundle '{dest}' does not exist")
        result = self._base("export", False)
        result["selected"] = {k: len(v) for k, v in selection.items()}
        core, exported = self._export(dest, selection, known, check=self.check_mode)
        changed = bool(exported.get("changed"))
        sent = describe_bundle(core.writer.manifest)  # check mode too: the bundle it would write
        result.update(
            changed=changed,
            bundle=str(dest),
            bundle_digest=exported["digest"],
            sent=sent,
            redactions=exported.get("redactions") or [],
            bytes=exported.get("bytes"),
        )
        if changed and not self.check_mode:
            objects = {k: sorted(v) for k, v in sent.items()}
            result["sync_info"] = self._write_sync_info("export", exported["digest"], None, None, objects)
        if self.diff:
            result["diff"] = {
                "before": {"digest": (exported.get("diff") or {}).get("before", {}).get("digest")},
                "after": {"digest": exported["digest"]},
            }
        return result

    def _run_import(self) -> dict[str, Any]:
        importer, imported = self._import(Path(self.params["bundle"]), check=self.check_mode)
        result = self._base("import", bool(imported.get("changed")))
        result.update(
            bundle=str(self.params["bundle"]),
            bundle_digest=imported.get("bundle_digest"),
            sent=describe_bundle(importer.manifest),
            id_map=importer.new_map(),
            created={k: v for k, v in (imported.get("created") or {}).items() if k in KINDS},
            datasets=importer.decisions,
        )
        if "import_info" in imported:
            result["import_info"] = imported["import_info"]
        if self.diff and "diff" in imported:
            result["diff"] = imported["diff"]
        return result

    # -- the site's record ---------------------------------------------------------------------------
    def _write_sync_info(
        self,
        mode: str,
        digest: str,
        id_map: dict[str, dict[str, str]] | None,
        dest_api_host: str | None,
        exported: dict[str, list[str]] | None = None,
    ) -> dict[str, Any] | None:
        path = self.params.get("sync_info_path")
        info = copy.deepcopy(_read_json(path))
        now = datetime.now(UTC).isoformat()
        info.update(
            {"site": self.site, "source_api_host": self.params.get("source_api_host"), "updated_on": now}
        )
        info.setdefault("map", {k: {} for k in KINDS})
        if id_map is not None:
            for kind in KINDS:
                info["map"].setdefault(kind, {}).update(id_map.get(kind) or {})
            info["last_sync"] = {"bundle_digest": digest, "dest_api_host": dest_api_host, "synced_on": now}
        if exported is not None:
            runs = list(info.get("exports") or [])
            runs.append(
                {
                    "bundle_digest": digest,
                    "bundle": self.params.get("bundle"),
                    "exported_on": now,
                    "objects": exported,
                }
            )
            info["exports"] = runs[-20:]
        if path:
            _write_json(path, info)
        return info
