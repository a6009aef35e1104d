# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``clearml_import`` with ``state=absent``: take a deployment's imported objects off a site's ClearML server.

Private to this collection: not a public API, may change without notice.

Which objects: the dev ids named by the bundles (the current one and ``.previous``) and by
``import_info.json`` are looked up by their ``d2s-origin:<dev id>`` system tag; of the objects carrying a
tag only the first created is the import's own (a user's clone of an imported task carries the same
system tags and is left alone, as is everything without an origin tag: the site's retrained models,
new dataset versions, its own tasks).

``archive`` (the default) adds ``archived`` and ``d2s-removed`` to their system tags: nothing is lost,
lineage of site-made objects stays intact, and a later import of the deployment (``restore``) takes the
marks off again. ``delete`` deletes them, except those a site-made object still depends on (a child
task or model, a task using the model, another version in the same dataset), which are archived and
reported as kept. Projects and files on the fileserver are left in place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _bundle as bundle
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import (
    ClearmlClient,
    client_from_params,
)
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._sync_import import find_by_origin

REMOVED = "d2s-removed"
ARCHIVED = "archived"
# Deletion order: what refers to others first.
_ORDER = ("serving", "tasks", "models", "datasets")


def dev_ids(manifest: dict[str, Any]) -> dict[str, set[str]]:
    """Dev ids per kind that a bundle's manifest imports."""
    out: dict[str, set[str]] = {
        "datasets": set(manifest.get("dataset_versions") or {}),
        "tasks": set(manifest.get("task_records") or {}),
        "models": set(manifest.get("models") or {}),
        "serving": set(),
    }
    if manifest.get("serving"):
        out["serving"].add(manifest["serving"]["id"])
    return out


def deployment_ids(bundles: list[str], import_info_path: str | None) -> tuple[dict[str, set[str]], list[str]]:
    """Dev ids per kind from every bundle that exists and from ``import_info.json``; and the sources read."""
    ids: dict[str, set[str]] = {k: set() for k in _ORDER}
    sources = []
    for path in bundles:
        if not (Path(path) / bundle.MANIFEST_NAME).is_file():
            continue
        try:
            manifest = bundle.load_bundle(path).manifest.data
        except bundle.BundleError as exc:
            raise ClearmlModuleError(f"Cannot read the manifest of the bundle '{path}': {exc}") from None
        for kind, found in dev_ids(manifest).items():
            ids[kind] |= found
        sources.append(str(path))
    if import_info_path and os.path.isfile(import_info_path):
        try:
            info = json.loads(Path(import_info_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ClearmlModuleError(f"Cannot read '{import_info_path}': {exc}") from None
        for kind, mapping in (info.get("map") or {}).items():
            if kind in ids:
                ids[kind] |= set(mapping)
        sources.append(str(import_info_path))
    return ids, sources


def _tags(doc: dict[str, Any]) -> list[str]:
    return list(doc.get("system_tags") or [])


def _set_tags(client: ClearmlClient, kind: str, site_id: str, tags: list[str]) -> None:
    if kind == "models":
        client.call("models.edit", {"model": site_id, "system_tags": sorted(set(tags))})
    else:
        client.call("tasks.edit", {"task": site_id, "force": True, "system_tags": sorted(set(tags))})


def restore(client: ClearmlClient, id_map: dict[str, dict[str, str]], check_mode: bool) -> list[str]:
    """Take the removal marks off the objects of ``id_map`` that a removal archived; return their site ids.

    Only objects carrying ``d2s-removed`` are touched: an object a user archived stays archived.
    """
    restored = []
    for kind, mapping in id_map.items():
        site_ids = list(mapping.values())
        if not site_ids:
            continue
        if kind == "models":
            docs = client.call("models.get_all", {"id": site_ids, "only_fields": ["id", "system_tags"]})[
                "models"
            ]
        else:
            docs = client.call(
                "tasks.get_all", {"id": site_ids, "search_hidden": True, "only_fields": ["id", "system_tags"]}
            )["tasks"]
        for doc in docs or []:
            tags = _tags(doc)
            if REMOVED not in tags:
                continue
            restored.append(doc["id"])
            if not check_mode:
                _set_tags(
                    client,
                    "models" if kind == "models" else "tasks",
                    doc["id"],
                    [t for t in tags if t not in (REMOVED, ARCHIVED)],
                )
    return sorted(restored)


class RemoveCore:
    """Archives or deletes the imported objects of a deployment; ``run()`` returns the module result."""

    def __init__(self, params: dict[str, Any], check_mode: bool = False, diff: bool = False) -> None:
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.mode = params.get("removal") or "archive"
        self.client = client_from_params(params)

    def run(self) -> dict[str, Any]:
        bundles = [self.params["bundle"], *(self.params.get("extra_bundles") or [])]
        info_path = self.params.get("import_info_path")
        ids, sources = deployment_ids(bundles, info_path)
        found = self._find(ids)
        todo, kept, done = self._plan(found)
        changed = bool(todo["delete"] or todo["archive"])
        info_exists = bool(info_path) and os.path.lexists(info_path)
        if info_exists:
            changed = True
        if changed and not self.check_mode:
            self._apply(todo, found)
            if info_exists:
                os.unlink(info_path)  # the serving stack must not start on a removed service
        result: dict[str, Any] = {
            "changed": changed,
            "removal": self.mode,
            "sources": sources,
            "deleted": todo["delete"],
            "archived": todo["archive"],
            "kept": kept,
            "already_removed": done,
            "import_info_removed": info_exists,
        }
        if not sources:
            result["msg"] = (
                "No bundle and no import_info.json at the site: nothing names a deployment to remove."
            )
        if self.diff:
            before = {kind: sorted(docs) for kind, docs in found.items() if docs}
            gone = {i for ids in todo["delete"].values() for i in ids}
            after = {kind: sorted(i for i in docs if i not in gone) for kind, docs in found.items() if docs}
            result["diff"] = {
                "before": json.dumps({"objects": before, "archived": done}, indent=2, sort_keys=True) + "\n",
                "after": json.dumps(
                    {
                        "objects": after,
                        "archived": sorted({*done, *(i for ids in todo["archive"].values() for i in ids)}),
                    },
                    indent=2,
                    sort_keys=True,
                )
                + "\n",
            }
        return result

    def _find(self, ids: dict[str, set[str]]) -> dict[str, dict[str, dict[str, Any]]]:
        """{kind: {site id: doc}} of the objects the imports made (the first created per origin tag)."""
        found: dict[str, dict[str, dict[str, Any]]] = {}
        for kind in _ORDER:
            if not ids[kind]:
                found[kind] = {}
                continue
            by_origin = find_by_origin(
                self.client, "models" if kind == "models" else "tasks", sorted(ids[kind])
            )
            found[kind] = {doc["id"]: doc for doc in by_origin.values()}
        return found

    def _plan(
        self, found: dict[str, dict[str, dict[str, Any]]]
    ) -> tuple[dict[str, dict[str, list[str]]], dict[str, str], list[str]]:
        todo: dict[str, dict[str, list[str]]] = {"delete": {}, "archive": {}}
        kept: dict[str, str] = {}
        done: list[str] = []
        needed = self._needed_by_site(found) if self.mode == "delete" else {}
        for kind in _ORDER:
            for site_id, doc in sorted(found[kind].items()):
                archived = REMOVED in _tags(doc)
                if self.mode == "delete" and site_id not in needed:
                    todo["delete"].setdefault(kind, []).append(site_id)
                    continue
                if site_id in needed:
                    kept[site_id] = needed[site_id]
                if archived:
                    done.append(site_id)
                else:
                    todo["archive"].setdefault(kind, []).append(site_id)
        return todo, kept, sorted(done)

    def _needed_by_site(self, found: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str]:
        """Imported objects that a site object outside the removal still refers to: {site id: why}."""
        removing = {i for docs in found.values() for i in docs}
        tasks = self.client.get_all(
            "tasks.get_all",
            "tasks",
            {
                "search_hidden": True,
                "only_fields": ["id", "name", "parent", "models", "project", "system_tags"],
            },
        )
        models = self.client.get_all(
            "models.get_all", "models", {"only_fields": ["id", "name", "parent", "task"]}
        )
        needed: dict[str, str] = {}
        dataset_projects = {
            doc.get("project") for doc in tasks if doc["id"] in set(found["datasets"]) and doc.get("project")
        }
        for doc in tasks:
            if doc["id"] in removing:
                continue
            what = f"site task '{doc.get('name')}' ({doc['id']})"
            if doc.get("parent") in removing:
                needed.setdefault(doc["parent"], f"parent of {what}")
            for ref in (doc.get("models") or {}).get("input") or []:
                if ref.get("model") in removing:
                    needed.setdefault(ref["model"], f"input model of {what}")
            if doc.get("project") in dataset_projects:
                for ds_id, ds in found["datasets"].items():
                    if ds.get("project") == doc.get("project"):
                        needed.setdefault(ds_id, f"a version of the dataset of {what}")
        for doc in models:
            if doc["id"] in removing:
                continue
            what = f"site model '{doc.get('name')}' ({doc['id']})"
            if doc.get("parent") in removing:
                needed.setdefault(doc["parent"], f"parent of {what}")
            if doc.get("task") in removing:
                needed.setdefault(doc["task"], f"task of {what}")
        return needed

    def _apply(
        self, todo: dict[str, dict[str, list[str]]], found: dict[str, dict[str, dict[str, Any]]]
    ) -> None:
        for kind in _ORDER:
            for site_id in todo["archive"].get(kind, []):
                tags = [*_tags(found[kind][site_id]), ARCHIVED, REMOVED]
                _set_tags(self.client, "models" if kind == "models" else "tasks", site_id, tags)
        for kind in _ORDER:
            for site_id in todo["delete"].get(kind, []):
                if kind == "models":
                    self.client.call("models.delete", {"model": site_id, "force": True})
                else:
                    self.client.call(
                        "tasks.delete",
                        {
                            "task": site_id,
                            "force": True,
                            "delete_output_models": False,
                            "return_file_urls": False,
                        },
                    )
