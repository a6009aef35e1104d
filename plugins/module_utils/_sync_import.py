# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sync-back, dev side: a site's bundle becomes objects on the dev server.

Private to this collection: not a public API, may change without notice.

``ImportCore`` does the work (verification first, origin tags, id remapping, events, status, resume
after a kill); this subclass adds what is particular to the reverse direction:

- **references**: ids the bundle names that already exist at dev (the dev originals a site's objects
  derive from, written by the site side under their dev ids, or site objects synced earlier) are
  mapped to themselves and never created; a referenced dataset version missing at dev stops the
  import before any change;
- **the site**: every object made at dev carries ``d2s-site:<site>`` in ``system_tags`` and
  ``site:<site>`` in ``tags`` (besides ``d2s-origin:<site id>``);
- **placement**: a new version of a dataset dev has goes next to it (same project and name); a
  dataset the site created goes to ``new_dataset_project`` (``{site}/{project}`` by default);
- **versions and conflicts** (``promote``, ``on_conflict``), see :meth:`SyncImportCore._decide`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _sync_version as versions
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._clearml import ClearmlClient
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._common import ClearmlModuleError
from ansible_collections.deploy2standalone.clearml.plugins.module_utils._import import (
    COMPLETE,
    ORIGIN,
    ImportCore,
    SiteState,
    parents_first,
)

SITE_TAG = "d2s-site:"
USER_SITE_TAG = "site:"
_STRUCT = "Dataset Struct"


def earliest(found: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The object an import or sync made among those carrying one origin tag: the first created.
    (A task cloned from it carries the same system tags; on clearml-server too, which strips only
    ``development`` and ``archived`` when cloning.)"""
    items = sorted(found, key=lambda d: (str(d.get("created") or ""), d["id"]))
    return items[0] if items else None


def find_by_origin(client: ClearmlClient, kind: str, origin_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{origin id: earliest object carrying ``d2s-origin:<origin id>``} for ``kind`` tasks or models."""
    ids = list(dict.fromkeys(origin_ids))
    groups: dict[str, list[dict[str, Any]]] = {}
    endpoint, key = ("tasks.get_all", "tasks") if kind == "tasks" else ("models.get_all", "models")
    for start in range(0, len(ids), 100):
        body: dict[str, Any] = {
            "system_tags": [ORIGIN + i for i in ids[start : start + 100]],
            "only_fields": ["id", "system_tags", "created", "status", "project", "name"],
        }
        if kind == "tasks":
            body["search_hidden"] = True
        for doc in client.get_all(endpoint, key, body):
            for tag in doc.get("system_tags") or []:
                if tag.startswith(ORIGIN):
                    groups.setdefault(tag[len(ORIGIN) :], []).append(doc)
    return {oid: found for oid, docs in groups.items() if oid in ids and (found := earliest(docs))}


def existing_ids(client: ClearmlClient, kind: str, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` exist at the server as ``kind`` (tasks, hidden included, or models)."""
    wanted = list(dict.fromkeys(ids))
    out: set[str] = set()
    for start in range(0, len(wanted), 100):
        chunk = wanted[start : start + 100]
        if kind == "tasks":
            docs = client.call("tasks.get_all", {"id": chunk, "search_hidden": True, "only_fields": ["id"]})
            out.update(d["id"] for d in docs.get("tasks") or [])
        else:
            docs = client.call("models.get_all", {"id": chunk, "only_fields": ["id"]})
            out.update(d["id"] for d in docs.get("models") or [])
    return out


class SyncSiteState(SiteState):
    """What dev already has: references (mapped, complete by definition) and earlier syncs."""

    def __init__(self, client: ClearmlClient, known: dict[str, str]) -> None:
        super().__init__(client)
        self.known = known

    def find_task(self, dev_id: str) -> dict[str, Any] | None:
        if dev_id in self.known:
            return {"id": self.known[dev_id], "system_tags": [COMPLETE]}
        return find_by_origin(self.client, "tasks", [dev_id]).get(dev_id)

    def find_model(self, dev_id: str) -> dict[str, Any] | None:
        if dev_id in self.known:
            return {"id": self.known[dev_id], "system_tags": [COMPLETE]}
        return find_by_origin(self.client, "models", [dev_id]).get(dev_id)


def is_reference(version: dict[str, Any]) -> bool:
    """A dataset entry the site side wrote for a version dev has: no record, no files, no chunks."""
    return version.get("record") is None and not version.get("files") and not version.get("chunks")


class SyncImportCore(ImportCore):
    """Imports a sync-back bundle into dev; ``run()`` returns ImportCore's result plus ``self.decisions``.

    ``params``: clearml_import's (unprefixed dev connection, ``bundle``, ``import_info_path``,
    ``require_signature``, ``public_key``) plus ``site_name``, ``new_dataset_project``, ``promote`` and
    ``on_conflict``.
    """

    def __init__(self, params: dict[str, Any], check_mode: bool = False, diff: bool = False) -> None:
        super().__init__(params, check_mode=check_mode, diff=diff)
        self.site_name: str = params["site_name"]
        self.known: dict[str, str] = {}
        self.site = SyncSiteState(self.client, self.known)
        self.placement: dict[str, str | None] = {}  # bundle dataset id → dev (user) project
        self.renamed: dict[str, str] = {}  # bundle dataset id → version string at dev
        self.decisions: list[dict[str, Any]] = []
        self.dropped: list[str] = []

    # -- ids -----------------------------------------------------------------------------------------
    @property
    def id_map(self) -> dict[str, str]:
        return {**self.known, **super().id_map}

    def system_tags(self, dev_id: str, dev_tags: Iterable[str] = ()) -> list[str]:
        return sorted({*super().system_tags(dev_id, dev_tags), SITE_TAG + self.site_name})

    def _with_site_tag(self, tags: Iterable[str] | None) -> list[str]:
        return list(dict.fromkeys([*(tags or []), USER_SITE_TAG + self.site_name]))

    def _create_task(self, dev_id: str, record: dict[str, Any], project_id: str | None) -> str:
        return super()._create_task(
            dev_id, {**record, "tags": self._with_site_tag(record.get("tags"))}, project_id
        )

    def _import_model(
        self, dev_id: str, model: dict[str, Any], site_task: str | None, folder: str | None = None
    ) -> None:
        model = {**model, "tags": self._with_site_tag(model.get("tags"))}
        super()._import_model(dev_id, model, site_task, folder)

    # -- plan ----------------------------------------------------------------------------------------
    def _plan(self) -> dict[str, Any]:
        self._resolve_references()
        plan = super()._plan()
        self._decide(plan)
        return plan

    def _clash_check(self, plan: dict[str, Any]) -> None:
        """Replaced by the dataset version policy (``_decide``, run with the plan, check mode too).
        Tasks of the same name are normal at dev (a retrained task keeps its name): no clash rule."""

    def _resolve_references(self) -> None:
        m = self.manifest
        entries = {*m["dataset_versions"], *m["task_records"], *m["models"]}
        if m.get("serving"):
            entries.add(m["serving"]["id"])
        ref_datasets = [d for d, v in m["dataset_versions"].items() if is_reference(v)]
        ref_tasks: list[str] = []
        ref_models: list[str] = []
        for rec in m["task_records"].values():
            doc = self.blob_json(rec["record"])
            if doc.get("parent"):
                ref_tasks.append(doc["parent"])
            ref_models += [
                r.get("model") for r in (doc.get("models") or {}).get("input") or [] if r.get("model")
            ]
        ref_models += [model["parent"] for model in m["models"].values() if model.get("parent")]
        ref_tasks = [t for t in dict.fromkeys(ref_tasks) if t not in entries]
        ref_models = [x for x in dict.fromkeys(ref_models) if x not in entries]
        here = existing_ids(self.client, "tasks", ref_datasets + ref_tasks)
        here_models = existing_ids(self.client, "models", ref_models)
        self.known.update({i: i for i in here | here_models})
        missing_tasks = [i for i in ref_datasets + ref_tasks if i not in here]
        missing_models = [i for i in ref_models if i not in here_models]
        # site objects synced earlier are known at dev by their origin tag
        for kind, missing in (("tasks", missing_tasks), ("models", missing_models)):
            for origin, found in find_by_origin(self.client, kind, missing).items():
                if COMPLETE in (found.get("system_tags") or []):
                    self.known[origin] = found["id"]
        absent = [d for d in ref_datasets if d not in self.known]
        if absent:
            names = [
                f"{m['dataset_versions'][d]['name']} {m['dataset_versions'][d].get('version')} ({d})"
                for d in absent
            ]
            raise ClearmlModuleError(
                f"The bundle from site {self.site_name} builds on dataset versions that are not on the dev "
                f"server {self.client.api_host}: {', '.join(names[:10])}. Was it made for another dev server? "
                "Nothing was imported.",
                missing_datasets=absent,
            )
        self.dropped = [i for i in ref_tasks + ref_models if i not in self.known]

    # -- dataset placement and versions ----------------------------------------------------------------
    def _dev_docs(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        docs = self.client.call(
            "tasks.get_all",
            {
                "id": ids,
                "search_hidden": True,
                "only_fields": ["id", "name", "project", "runtime", "system_tags"],
            },
        ).get("tasks")
        return {d["id"]: d for d in docs or []}

    def _project_name(self, project_id: str | None) -> str | None:
        if not project_id:
            return None
        found = self.client.call("projects.get_all", {"id": [project_id], "search_hidden": True}).get(
            "projects"
        )
        name = found[0]["name"] if found else None
        if name and "/.datasets/" in name:
            return name.split("/.datasets/", 1)[0]
        if name and name.startswith(".datasets/"):
            return None
        return name

    def _dev_versions(self, project: str | None, name: str) -> list[dict[str, Any]]:
        """Versions of dataset ``project``/``name`` at dev, newest ``last_update`` first (as the SDK lists
        them), without this bundle's own leftovers (an incomplete object of a killed run is made again)."""
        hidden = f"{project}/.datasets/{name}" if project else f".datasets/{name}"
        projects = self.client.call(
            "projects.get_all", {"name": "^" + re.escape(hidden) + "$", "search_hidden": True}
        ).get("projects")
        if not projects:
            return []
        docs = self.client.get_all(
            "tasks.get_all",
            "tasks",
            {
                "project": [p["id"] for p in projects],
                "name": "^" + re.escape(name) + "$",
                "type": ["data_processing"],
                "system_tags": ["__$all", "dataset", "__$not", "archived"],
                "order_by": ["-last_update"],
                "search_hidden": True,
                "only_fields": ["id", "name", "runtime", "system_tags", "last_update"],
            },
        )
        ours = {ORIGIN + d for d in self.manifest["dataset_versions"]}
        return [d for d in docs if d.get("name") == name and not ours & set(d.get("system_tags") or [])]

    def _decide(self, plan: dict[str, Any]) -> None:
        """Where each new dataset version goes at dev and under which version string.

        A version whose dataset (dev project and name) has, at dev, versions not made by this site is a
        version of a *shared* dataset; otherwise (a dataset the site created) it keeps its version.
        For a shared dataset, the version is in *conflict* when the version ``Dataset.get`` returns at
        dev now is not one of its ancestors (dev or another site moved on since the site's version was
        made), or when its version string is taken there. Then:

        - default (``promote: false``, ``on_conflict: branch``): ``<version>@<site>``, which the SDK never
          picks as latest: ``Dataset.get(project, name)`` at dev returns what it returned before;
        - ``promote: true``: without a conflict the site's version is kept (it becomes the latest when it
          is the highest); with one, ``on_conflict`` decides (``branch``: as by default);
        - ``on_conflict: fail``: any conflict stops the import before any change;
        - ``on_conflict: promote`` (implies ``promote``): the version becomes dev's latest, under its own
          version when that is higher than dev's latest and free, else under dev's latest bumped.
        """
        m = self.manifest["dataset_versions"]
        to_create = set(plan["to_create"].get("datasets", []))
        mapped = {**self.known, **self.map["datasets"]}
        dev_docs = self._dev_docs(sorted({mapped[d] for d in m if d in mapped}))
        pools: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
        conflicts: list[str] = []
        for did in parents_first(m):
            v = m[did]
            if did in mapped:  # at dev already: its children go where it is
                doc = dev_docs.get(mapped[did])
                self.placement[did] = self._project_name(doc.get("project")) if doc else v.get("project")
                continue
            if did not in to_create:
                continue
            project = self.placement[did] = self._place(v)
            key = (project, v["name"])
            if key not in pools:
                pools[key] = [
                    {
                        "id": d["id"],
                        "version": (d.get("runtime") or {}).get("version"),
                        "ours": SITE_TAG + self.site_name in (d.get("system_tags") or []),
                    }
                    for d in self._dev_versions(project, v["name"])
                ]
            decision = self._decision(did, v, project)
            final = self._version_for(did, v, pools[key], mapped, decision)
            if decision["action"] == "failed":
                conflicts.append(f"{project}/{v['name']} {v.get('version')} ({did}): {decision['conflict']}")
            decision["dev_version"] = final
            if final != v.get("version"):
                self.renamed[did] = str(final)
            pools[key].insert(0, {"id": "bundle:" + did, "version": final, "ours": True})
            self.decisions.append(decision)
        if conflicts:
            raise ClearmlModuleError(
                "Dataset version conflict at dev (on_conflict=fail): "
                + "; ".join(conflicts[:10])
                + ". Nothing was imported.",
                conflicts=conflicts,
                datasets=self.decisions,
            )

    def _place(self, v: dict[str, Any]) -> str | None:
        """A version of a dataset goes where its parent of the same name and project went; a dataset the
        site created goes to ``new_dataset_project``."""
        m = self.manifest["dataset_versions"]
        for p in v.get("parents") or []:
            if p in m and m[p]["name"] == v["name"] and m[p].get("project") == v.get("project"):
                return self.placement.get(p, v.get("project"))
        template = self.params.get("new_dataset_project") or "{site}/{project}"
        return template.format(site=self.site_name, project=v.get("project") or "").strip("/") or None

    def _version_for(
        self,
        did: str,
        v: dict[str, Any],
        pool: list[dict[str, Any]],
        mapped: dict[str, str],
        decision: dict[str, Any],
    ) -> str | None:
        """The version string at dev (see ``_decide`` and ``_sync_version.decide``); fills ``decision``."""
        ancestors = {mapped.get(a, "bundle:" + a) for a in self._ancestors(did)}
        outcome = versions.decide(
            v.get("version"),
            pool,
            ancestors,
            site=self.site_name,
            promote=bool(self.params.get("promote")),
            on_conflict=self.params.get("on_conflict") or "branch",
        )
        decision.update(action=outcome.action, conflict=outcome.conflict, dev_latest=outcome.dev_latest)
        return outcome.version

    def _decision(self, did: str, v: dict[str, Any], project: str | None) -> dict[str, Any]:
        return {
            "site_id": did,
            "name": v["name"],
            "site_project": v.get("project"),
            "project": project,
            "site_version": v.get("version"),
            "parents": list(v.get("parents") or []),
            "conflict": None,
            "dev_latest": None,
            "action": None,
            "dev_version": None,
            "dev_id": None,
        }

    def _tags_of(self, dev_id: str, docs: list[dict[str, Any]]) -> list[str]:
        for d in docs:
            if d["id"] == dev_id:
                return list(d.get("system_tags") or [])
        return []

    def _ancestors(self, did: str) -> set[str]:
        m = self.manifest["dataset_versions"]
        out: set[str] = set()
        todo = list(m[did].get("parents") or [])
        while todo:
            p = todo.pop()
            if p in out:
                continue
            out.add(p)
            todo.extend((m.get(p) or {}).get("parents") or [])
        return out

    # -- records with the decisions applied ----------------------------------------------------------
    def _dataset_record(self, dev_id: str) -> dict[str, Any]:
        record = super()._dataset_record(dev_id)
        if dev_id in self.renamed:
            new = self.renamed[dev_id]
            record.setdefault("runtime", {})["version"] = new
            props = (record.get("hyperparams") or {}).get("properties") or {}
            if "version" in props:
                props["version"]["value"] = new
        struct = (record.get("configuration") or {}).get(_STRUCT)
        if struct and self.renamed:
            try:
                data = json.loads(struct.get("value") or "{}")
            except ValueError:
                data = None
            if isinstance(data, dict):
                for item in data.values():
                    if isinstance(item, dict) and item.get("job_id") in self.renamed:
                        item["version"] = self.renamed[item["job_id"]]
                struct["value"] = json.dumps(data, indent=2)
        return record

    def _import_dataset(self, dev_id: str, version: dict[str, Any]) -> None:
        super()._import_dataset(
            dev_id, {**version, "project": self.placement.get(dev_id, version.get("project"))}
        )

    # -- result --------------------------------------------------------------------------------------
    def _write_import_info(self) -> dict[str, Any]:
        for d in self.decisions:
            d["dev_id"] = self.map["datasets"].get(d["site_id"])
        info = {
            "direction": "sync-back",
            "bundle_digest": self.digest,
            "site": self.site_name,
            "dest_api_host": self.client.api_host,
            "imported_on": datetime.now(UTC).isoformat(),
            "map": self.new_map(),
            "references": dict(sorted(self.known.items())),
            "datasets": self.decisions,
        }
        dest = self.params.get("import_info_path")
        if dest:
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(str(dest) + ".tmp")
            tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, dest)
        return info

    def new_map(self) -> dict[str, dict[str, str]]:
        """{kind: {site id: dev id}} for the bundle's own objects (references left out)."""
        return {
            kind: dict(sorted((k, v) for k, v in self.map[kind].items() if k not in self.known))
            for kind in ("datasets", "tasks", "models")
        }
